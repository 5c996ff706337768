#!/usr/bin/python3
"""ateld answers Prometheus' HTTP query API (issue 16) over real HTTP.

A real ateld (bearer token set) on a loopback port; the known workload of
test_prometheus.py (prom_producer: 2 processes x 2 threads x 2000 agent
executions, coder/planner alternating, 0.3 s / 3 s durations, every 4th
fails, 10 tokens each) is recorded; then /api/v1/query must give exactly the
totals, shares and quantiles that workload implies, /api/v1/series the label
sets /metrics shows, and labels, label values, metadata, buildinfo, range
queries, POST forms, the auth token and Prometheus' error answers (400
bad_data, 422 execution, 503 timeout, 404, 401) behave as Prometheus'.
`atel query 'PromQL'` on the same data directory gives the same numbers.
argv[1]: prom_producer, argv[2]: the atel CLI.
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, wait_for  # noqa: E402
import test_prometheus as tp  # noqa: E402  (its World: temp dirs, ports, ateld, producers)

TOKEN = "s3cret-token"
TOTAL = tp.TOTAL


def api(w, path, params=None, post=False, token=TOKEN):
    """(status, parsed JSON body) of an API request to ateld."""
    url = "http://127.0.0.1:%d%s" % (w.mport, path)
    data = None
    enc = urllib.parse.urlencode(params or {}, doseq=True)
    if post:
        data = enc.encode()
    elif enc:
        url += "?" + enc
    req = urllib.request.Request(url, data=data)
    if post:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read().decode()
            check(r.headers["Content-Type"] == "application/json", "content type %s" % r.headers["Content-Type"])
            return r.status, json.loads(body)
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body


def scalar_of(w, q, **kw):
    st, r = api(w, "/api/v1/query", dict({"query": q}, **kw))
    check(st == 200 and r["status"] == "success", "query %s: %s %s" % (q, st, r))
    res = r["data"]["result"]
    if r["data"]["resultType"] == "scalar":
        return float(res[1])
    if not res:
        return None
    check(len(res) == 1, "query %s: one series expected, got %s" % (q, res))
    return float(res[0]["value"][1])


def expect_error(w, path, params, code, etype, text=None, post=False):
    st, r = api(w, path, params, post=post)
    check(st == code and isinstance(r, dict) and r.get("status") == "error" and r.get("errorType") == etype,
          "%s %s: want %d %s, got %s %s" % (path, params, code, etype, st, r))
    if text:
        check(text in r["error"], "%s %s: error %r lacks %r" % (path, params, r["error"], text))


def main():
    w = tp.World()
    try:
        w.cfg["prometheus"].update({"bearer_token": TOKEN, "query_timeout_ms": 60000, "query_resolution_ms": 1000,
                                    "query_carry_ms": 15000})
        w.cfg["json"]["enabled"] = False
        with open(w.cfg_path, "w") as f:
            json.dump(w.cfg, f)
        w.start_ateld()
        w.produce("a")
        wait_for("ateld's log holds the workload",
                 lambda: scalar_of(w, "sum(agent_execution_total)") == TOTAL, timeout=120,
                 procs=[("ateld", w.ateld)])
        t_now = time.time()
        checks = [
            ("sum(agent_execution_total)", TOTAL),
            ('sum(agent_execution_total{status="failure"})', TOTAL // 4),
            ('sum(agent_execution_total{status="success"})', TOTAL - TOTAL // 4),
            ('sum(agent_execution_total{agent_type="coder"})', TOTAL // 2),
            ('sum(agent_execution_total{agent_type=~"cod.*"})', TOTAL // 2),
            ('sum(agent_execution_total{agent_type!="coder"})', TOTAL // 2),
            ("sum(agent_tokens_used_total)", 10 * TOTAL),
            ("sum(agent_execution_duration_seconds_count)", TOTAL),
            ('sum(agent_execution_duration_seconds_bucket{le="+Inf"})', TOTAL),
            ('sum(agent_execution_duration_seconds_bucket{le="0.5"})', TOTAL // 2),
            ("sum(agent_execution_duration_seconds_sum)", TOTAL // 2 * 0.3 + TOTAL // 2 * 3.0),
            ("histogram_quantile(0.5, sum by (le) (agent_execution_duration_seconds_bucket))", 0.5),
            ("histogram_quantile(0.75, sum by (le) (agent_execution_duration_seconds_bucket))", 3.75),
            ('sum(agent_execution_total{status="failure"}) / sum(agent_execution_total)', 0.25),
            ("count(agent_execution_total)", 3),  # planner never fails (i % 4 == 3 is odd: coder)
            ("sum(resets(agent_execution_total[10m]))", 0),
            ("scalar(sum(agent_execution_total)) * 2", 2 * TOTAL),
            ("sum(agent_execution_total offset 1h)", None),
        ]
        for q, want in checks:
            got = scalar_of(w, q)
            ok = got is None if want is None else (got is not None and abs(got - want) <= 1e-9 * max(1, abs(want)))
            check(ok, "PromQL %s = %r, want %r" % (q, got, want))
        # POST form gives the same answer as GET; explicit time as RFC 3339 and as Unix seconds
        st, r = api(w, "/api/v1/query", {"query": "sum(agent_execution_total)", "time": "%.3f" % t_now}, post=True)
        check(st == 200 and float(r["data"]["result"][0]["value"][1]) == TOTAL, "POST: %s %s" % (st, r))
        check(abs(r["data"]["result"][0]["value"][0] - t_now) < 0.002, "query time echoed: %s" % r)
        rfc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t_now) + 1))
        check(scalar_of(w, "sum(agent_execution_total)", time=rfc) == TOTAL, "RFC 3339 time")
        # range query: monotonic cumulative, ending at the total
        st, r = api(w, "/api/v1/query_range", {"query": "sum(agent_execution_total)", "start": "%.3f" % (t_now - 105),
                                               "end": "%.3f" % (t_now + 30), "step": "15s"})
        check(st == 200 and r["data"]["resultType"] == "matrix" and r["data"]["result"], "query_range: %s %s" % (st, r))
        vals = [float(v[1]) for v in r["data"]["result"][0]["values"]]
        check(vals[-1] == TOTAL and vals == sorted(vals), "query_range values %s" % vals)
        steps = [v[0] for v in r["data"]["result"][0]["values"]]
        check(all(abs((b - a) - 15) < 1e-9 for a, b in zip(steps, steps[1:])), "steps %s" % steps)

        # series: exactly the label sets /metrics shows for the family
        st, r = api(w, "/api/v1/series", {"match[]": "agent_execution_total"})
        check(st == 200, "series: %s %s" % (st, r))
        got = sorted(json.dumps(s, sort_keys=True) for s in r["data"])
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % w.mport,
                                     headers={"Authorization": "Bearer " + TOKEN})
        text = urllib.request.urlopen(req, timeout=30).read().decode()
        want = []
        for line in text.splitlines():
            if line.startswith("agent_execution_total{"):
                body = line[len("agent_execution_total{"):line.rindex("}")]
                labels = {"__name__": "agent_execution_total"}
                for kv in body.split('",'):
                    k, v = kv.split('="', 1)
                    labels[k] = v.rstrip('"')
                want.append(json.dumps(labels, sort_keys=True))
        check(got == sorted(want) and len(got) == 3, "series %s, /metrics %s" % (got, sorted(want)))
        st, r = api(w, "/api/v1/series", {"match[]": ['agent_execution_total{status="failure"}',
                                                      "agent_tokens_used_total"]})
        check(st == 200 and len(r["data"]) == 1 + len([x for x in text.splitlines()
                                                          if x.startswith("agent_tokens_used_total")]),
              "series with two match[]: %s" % r)
        st, r = api(w, "/api/v1/series", {"match[]": "agent_execution_total", "limit": "1"})
        check(st == 200 and len(r["data"]) == 1 and r.get("warnings"), "series limit=1: %s" % r)
        st, r = api(w, "/api/v1/labels")
        check(st == 200 and {"__name__", "agent_type", "le", "status"} <= set(r["data"]) and
              r["data"] == sorted(r["data"]), "labels: %s" % r)
        st, r = api(w, "/api/v1/labels", {"match[]": "agent_execution_total"})
        check(st == 200 and "le" not in r["data"] and "status" in r["data"], "labels match[]: %s" % r)
        st, r = api(w, "/api/v1/label/agent_type/values")
        check(st == 200 and r["data"] == ["coder", "planner"], "label values: %s" % r)
        st, r = api(w, "/api/v1/label/__name__/values")
        check(st == 200 and {"agent_execution_total", "agent_execution_duration_seconds_bucket",
                             "agent_tokens_used_total"} <= set(r["data"]), "__name__ values: %s" % r)
        st, r = api(w, "/api/v1/metadata")
        check(st == 200 and r["data"]["agent_execution_duration_seconds"][0]["type"] == "histogram" and
              r["data"]["agent_execution_total"][0]["type"] == "counter", "metadata: %s" % r)
        st, r = api(w, "/api/v1/status/buildinfo")
        check(st == 200 and r["status"] == "success" and r["data"]["version"], "buildinfo: %s" % r)

        # Prometheus' error answers
        expect_error(w, "/api/v1/query", {"query": "sum("}, 400, "bad_data", "1:5: parse error")
        expect_error(w, "/api/v1/query", {"query": "up", "time": "yesterday"}, 400, "bad_data",
                     'invalid parameter "time"')
        expect_error(w, "/api/v1/query_range", {"query": "up", "start": "0", "end": "10"}, 400, "bad_data",
                     'invalid parameter "step"')
        expect_error(w, "/api/v1/query_range", {"query": "up", "start": "10", "end": "0", "step": "1"}, 400,
                     "bad_data", "end timestamp must not be before start time")
        expect_error(w, "/api/v1/query_range", {"query": "up", "start": "0", "end": "100000", "step": "1"}, 400,
                     "bad_data", "exceeded maximum resolution of 11,000 points")
        expect_error(w, "/api/v1/query_range", {"query": "up", "start": "0", "end": "10", "step": "-1"}, 400,
                     "bad_data", "zero or negative")
        expect_error(w, "/api/v1/series", {}, 400, "bad_data", "no match[] parameter provided")
        expect_error(w, "/api/v1/series", {"match[]": "{"}, 400, "bad_data")
        expect_error(w, "/api/v1/query", {"query": 'label_replace(agent_execution_total, "status", "x", "", "")'},
                     422, "execution")
        t0 = int(t_now)
        expect_error(w, "/api/v1/query_range",
                     {"query": "sum(rate(agent_execution_total[5m:1s]))", "start": str(t0 - 10999),
                      "end": str(t0), "step": "1", "timeout": "0.000001"}, 503, "timeout")
        expect_error(w, "/api/v1/nonexistent", {}, 404, "not_found")
        st, r = api(w, "/api/v1/query", {"query": "1"}, token=None)
        check(st == 401, "no token: %s" % st)
        st, r = api(w, "/api/v1/query", {"query": "1"}, token="wrong")
        check(st == 401, "wrong token: %s" % st)
        # a scalar and a string
        st, r = api(w, "/api/v1/query", {"query": "1+1", "time": "100"})
        check(st == 200 and r["data"] == {"resultType": "scalar", "result": [100, "2"]}, "scalar: %s" % r)
        st, r = api(w, "/api/v1/query", {"query": '"x"', "time": "100.5"})
        check(st == 200 and r["data"] == {"resultType": "string", "result": [100.5, "x"]}, "string: %s" % r)

        # the CLI on the same data directory, offline engine, same numbers
        out = subprocess.run([sys.argv[2], "--data-dir", w.data, "query", "--json",
                              "sum by (status) (agent_execution_total)"], capture_output=True, text=True, timeout=120)
        check(out.returncode == 0, "atel query: %s %s" % (out.returncode, out.stderr))
        res = json.loads(out.stdout)["data"]["result"]
        got = {s["metric"]["status"]: float(s["value"][1]) for s in res}
        check(got == {"success": TOTAL - TOTAL // 4, "failure": TOTAL // 4}, "atel query: %s" % got)
        out = subprocess.run([sys.argv[2], "--data-dir", w.data, "query",
                              "histogram_quantile(0.75, sum by (le) (agent_execution_duration_seconds_bucket))"],
                             capture_output=True, text=True, timeout=120)
        check(out.returncode == 0 and out.stdout.split()[-1] == "3.75", "atel query quantile: %r" % out.stdout)
        out = subprocess.run([sys.argv[2], "--data-dir", w.data, "query", "sum(", "--time", "now"],
                             capture_output=True, text=True, timeout=60)
        check(out.returncode == 1 and "parse error" in out.stderr, "atel query bad PromQL: %s" % out.stderr)
        # the flag form still answers a plain metric name
        out = subprocess.run([sys.argv[2], "--data-dir", w.data, "query", "agent_execution_total", "--agg", "count",
                              "--since", "1h", "--json"], capture_output=True, text=True, timeout=120)
        check(out.returncode == 0 and json.loads(out.stdout).get("metric") == "agent_execution_total",
              "flag form: %s %s" % (out.returncode, out.stdout[:300]))
        w.stop_ateld()
        print("promql_api: %d exact queries, series/labels/metadata/buildinfo, 10 error answers, CLI: ok"
              % len(checks))
        return 0
    except Fail as e:
        print("FAIL:", e)
        print(w.log("ateld-%d.log" % w.nstarts))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
