#!/usr/bin/python3
"""Differential test: ateld's own PromQL answers against a real Prometheus.

The setup of test_prometheus.py (its World): a real ateld, Debian's
prometheus scraping its /metrics every 1 s, the prom_producer workload. The
workload runs in three rounds 4 s apart; once Prometheus has scraped the
final totals, a set of instant queries is evaluated by both at the same time
T and must agree:

  exactly (relative 1e-9): plain counter values, sums and groupings of them,
    classic histogram buckets and histogram_quantile over them, ratios,
    topk, resets(), max_over_time of a subquery: these depend only on the
    cumulative values, which are the same numbers in /metrics and in the log;
  within 10%: rate() / increase() / histogram_quantile over rate(), over a
    window that starts in the pause after round 1 (both views flat there).
    They depend on sample times: Prometheus has one sample per scrape (1 s
    phase of its own), ateld one per series and resolution window at the
    time of the last event in it plus a repeat every query_carry_ms (set to
    the scrape interval here), so the extrapolation at the window edges differs
    by up to a scrape interval at each edge of the window (2 s of ~25 s).

Not compared because the data models differ: changes(), count_over_time()
and timestamp() (they count or show sample times), windows that begin before a
series' first scrape (Prometheus' first sample already holds the increments
made before it; the log starts at the first increment), and atel_* self-metrics
(in /metrics only, not in the log). Also: promtool query instant / range /
series / labels (a real client) against ateld.
argv[1]: prom_producer. Exit 77 if prometheus is missing.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, http_get, wait_for  # noqa: E402
import test_prometheus as tp  # noqa: E402

REL_EXACT = 1e-9
REL_RATE = 0.10


def query(port, q, t):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q, "time": "%.3f" % t}))
    _, _, body = http_get(url, timeout=120)
    r = json.loads(body)
    check(r["status"] == "success", "%d: %s: %s" % (port, q, body))
    d = r["data"]
    if d["resultType"] == "scalar":
        return {"{}": float(d["result"][1])}
    out = {}
    for s in d["result"]:
        m = {k: v for k, v in s["metric"].items() if k not in ("job", "instance")}
        out[json.dumps(m, sort_keys=True)] = float(s["value"][1])
    return out


def close(a, b, rel):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("prometheus/promtool not installed")
        return 77
    w = tp.World()
    try:
        w.cfg["prometheus"].update({"query_carry_ms": 1000, "query_resolution_ms": 1000})
        w.cfg["json"]["enabled"] = False
        with open(w.cfg_path, "w") as f:
            json.dump(w.cfg, f)
        w.start_ateld()
        w.start_prometheus()
        time.sleep(2)
        marks = []
        for r in range(3):
            t0 = time.time()
            w.produce("r%d" % r)
            marks.append((t0, time.time()))
            time.sleep(4)
        total = 3 * tp.TOTAL
        wait_for("Prometheus scraped the final totals",
                 lambda: (query(w.pport, "sum(agent_execution_total)", time.time()) or {}).get("{}") == total,
                 procs=[("ateld", w.ateld), ("prometheus", w.prom)])
        time.sleep(max(0.0, marks[2][1] + 16 - time.time()))  # a longer window: edges weigh less
        T = time.time() - 1
        W = int(math.ceil(T - (marks[1][0] - 1.5)))
        check(T - W > marks[0][1] + 1, "round 1 took too long for the window: %s" % marks)
        exact = [
            "sum(agent_execution_total)",
            "sum by (agent_type, status) (agent_execution_total)",
            "sum by (agent_type) (agent_tokens_used_total)",
            "sum by (le) (agent_execution_duration_seconds_bucket)",
            "histogram_quantile(0.5, sum by (le) (agent_execution_duration_seconds_bucket))",
            "histogram_quantile(0.75, sum by (le) (agent_execution_duration_seconds_bucket))",
            "histogram_quantile(0.9, sum by (le) (agent_execution_duration_seconds_bucket))",
            "histogram_quantile(0.99, sum by (le, agent_type) (agent_execution_duration_seconds_bucket))",
            "sum(agent_execution_duration_seconds_sum) / sum(agent_execution_duration_seconds_count)",
            'sum(agent_execution_total{status="failure"}) / sum(agent_execution_total)',
            "count(agent_execution_total)",
            "topk(1, sum by (agent_type, status) (agent_execution_total))",
            "max by (agent_type) (agent_execution_duration_seconds_count)",
            "sum(resets(agent_execution_total[%ds]))" % W,
            "max_over_time(sum(agent_execution_total)[%ds:1s])" % W,
            "sum(agent_execution_total) > bool 1000",
        ]
        rates = [
            "sum(rate(agent_execution_total[%ds]))" % W,
            "sum by (agent_type) (increase(agent_execution_total[%ds]))" % W,
            "sum(increase(agent_tokens_used_total[%ds]))" % W,
            "sum by (status) (rate(agent_execution_total[%ds]))" % W,
            "histogram_quantile(0.9, sum by (le) (rate(agent_execution_duration_seconds_bucket[%ds])))" % W,
            "sum(irate(agent_execution_total[%ds])) * 0 + sum(rate(agent_tokens_used_total[%ds]))" % (W, W),
        ]
        worst = 0.0
        for qs, rel in ((exact, REL_EXACT), (rates, REL_RATE)):
            for q in qs:
                p = query(w.pport, q, T)
                a = query(w.mport, q, T)
                check(p, "Prometheus has no answer for %s" % q)
                check(sorted(p) == sorted(a), "%s: label sets differ: Prometheus %s, ateld %s" % (q, p, a))
                for k in p:
                    check(close(p[k], a[k], rel), "%s %s: Prometheus %r, ateld %r (tolerance %g)" %
                          (q, k, p[k], a[k], rel))
                    if rel == REL_RATE and p[k]:
                        worst = max(worst, abs(p[k] - a[k]) / abs(p[k]))
        # promtool, a real client of the API, against ateld
        base = "http://127.0.0.1:%d" % w.mport
        r = subprocess.run(["promtool", "query", "instant", "--time=%.3f" % T, base, "sum(agent_execution_total)"],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and ("=> %d @" % total) in r.stdout, "promtool query instant: %s %s" %
              (r.stdout, r.stderr))
        r = subprocess.run(["promtool", "query", "range", "--start=%.3f" % (T - 20), "--end=%.3f" % T, "--step=5s",
                            base, "sum(agent_execution_total)"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and ("%d @[" % total) in r.stdout, "promtool query range: %s %s" % (r.stdout, r.stderr))
        r = subprocess.run(["promtool", "query", "series", "--match=agent_execution_total", base],
                           capture_output=True, text=True, timeout=120)
        check(r.returncode == 0 and r.stdout.count("agent_execution_total") == 3, "promtool query series: %s %s" %
              (r.stdout, r.stderr))
        r = subprocess.run(["promtool", "query", "labels", base, "agent_type"], capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0 and r.stdout.split() == ["coder", "planner"], "promtool query labels: %s %s" %
              (r.stdout, r.stderr))
        print("promql_diff: %d exact and %d rate expressions agree with Prometheus (window %d s; largest rate "
              "difference %.2f%%, tolerance %d%%); promtool instant/range/series/labels ok"
              % (len(exact), len(rates), W, 100 * worst, 100 * REL_RATE))
        w.stop_ateld()
        return 0
    except Fail as e:
        print("FAIL:", e)
        print(w.log("ateld-%d.log" % w.nstarts))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
