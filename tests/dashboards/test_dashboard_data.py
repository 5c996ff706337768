#!/usr/bin/python3
"""Every expression of dashboards/overview.json returns data from a real
Prometheus that scraped ateld while `atel load` (the demo's agent swarm) ran.

Reuses test_prometheus.World (ateld + Debian's prometheus on free loopback
ports). Grafana's variables are replaced as Grafana would with "All" selected
($agent_type, $tool -> .*; $__rate_interval -> 1m; $__range -> 5m). While the
swarm runs, each expression must return at least one series, the p95 panels a
finite value, and sum(agent_execution_total) after the swarm must equal the
agent executions `atel load --json` reports.
argv[1]: the atel binary. Exit 77 (skip) if prometheus is missing.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from test_prometheus import Fail, World, check, http_get, wait_for  # noqa: E402

SRC = os.environ.get("ATEL_SOURCE_ROOT") or os.path.join(os.path.dirname(__file__), "..", "..")


def substitute(expr):
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
    return re.sub(r"\$\{?([A-Za-z_]+)\}?", ".*", expr)


def query_all(w, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (w.pport, urllib.parse.urlencode({"query": q}))
    r = json.loads(http_get(url)[2])
    check(r["status"] == "success", "query %s: %s" % (q, r))
    return r["data"]["result"]


def main():
    if not shutil.which("prometheus"):
        print("prometheus not installed")
        return 77
    atel = sys.argv[1]
    dash = json.load(open(os.path.join(SRC, "dashboards", "overview.json")))
    exprs = [(p["title"], substitute(t["expr"])) for p in dash["panels"] if p["type"] != "row"
             for t in p["targets"]]
    w = World()
    try:
        w.start_ateld()
        w.start_prometheus()
        report_path = os.path.join(w.dir, "load.json")
        with open(report_path, "w") as out:
            load = subprocess.Popen([atel, "--shm", w.shm, "load", "--agents", "2", "--threads", "2",
                                     "--duration", "25s", "--rate", "40", "--json"],
                                    stdout=out, stderr=subprocess.STDOUT)
        missing = {}

        def all_have_data():
            missing.clear()
            for title, e in exprs:
                res = query_all(w, e)
                if not res:
                    missing[title] = e
                elif "histogram_quantile" in e and not any(math.isfinite(float(s["value"][1])) for s in res):
                    missing[title] = "non-finite p95: " + e
            return not missing

        try:
            wait_for("every dashboard expression to return data (missing: %s)" % missing, all_have_data,
                     timeout=60, procs=[("ateld", w.ateld), ("prometheus", w.prom)])
        except Fail:
            raise Fail("dashboard expressions without data: %s" % json.dumps(missing, indent=1))
        rc = load.wait(120)
        check(rc == 0, "atel load exited %d: %s" % (rc, open(report_path).read()[-2000:]))
        report = json.load(open(report_path))
        execs = report.get("agent_executions", {})
        total = execs.get("total") if isinstance(execs, dict) else execs
        check(isinstance(total, int) and total > 0, "load report has no agent execution total: %s" % report)
        seen = []

        def total_matches():
            seen.append(w.query("sum(agent_execution_total)"))
            return seen[-1] == total

        try:
            wait_for("sum(agent_execution_total) == %d" % total, total_matches, timeout=90,
                     procs=[("ateld", w.ateld)])
        except Fail:
            raise Fail("sum(agent_execution_total) is %r, atel load reported %d executions (libatel: %s)"
                       % (seen[-1] if seen else None, total, json.dumps(report.get("libatel"))))
        w.stop_ateld()
        print("dashboard: %d expressions returned data; sum(agent_execution_total) = %d as reported by atel load"
              % (len(exprs), total))
        return 0
    except Fail as e:
        print("FAIL:", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
