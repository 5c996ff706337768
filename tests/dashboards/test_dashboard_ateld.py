#!/usr/bin/python3
"""dashboards/overview.json with ateld itself as the Prometheus data source
(issue 16): every panel expression, sent to ateld's /api/v1/query as Grafana
would with "All" selected ($agent_type, $tool -> .*; $__rate_interval -> 1m;
$__range -> 5m), returns data while `atel load` (the demo's agent swarm)
runs, the p95 panels a finite value; no Prometheus server is involved. The
atel_* panels read ateld's self-metrics history (sampled every 5 s). After
the swarm, sum(agent_execution_total) equals what `atel load --json` reports.
Also Grafana's own start-up requests: buildinfo, labels, label values of the
dashboard variables, metadata. argv[1]: the atel binary.
"""
import json
import math
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from test_prometheus import Fail, World, check, http_get, wait_for  # noqa: E402
from test_dashboard_data import SRC, substitute  # noqa: E402


def api(w, path, params=None):
    url = "http://127.0.0.1:%d%s?%s" % (w.mport, path, urllib.parse.urlencode(params or {}))
    r = json.loads(http_get(url, timeout=60)[2])
    check(r["status"] == "success", "%s %s: %s" % (path, params, r))
    return r["data"]


def main():
    atel = sys.argv[1]
    dash = json.load(open(os.path.join(SRC, "dashboards", "overview.json")))
    exprs = [(p["title"], substitute(t["expr"])) for p in dash["panels"] if p["type"] != "row"
             for t in p["targets"]]
    w = World()
    try:
        w.cfg["json"]["enabled"] = False
        with open(w.cfg_path, "w") as f:
            json.dump(w.cfg, f)
        w.start_ateld()
        report_path = os.path.join(w.dir, "load.json")
        with open(report_path, "w") as out:
            load = subprocess.Popen([atel, "--shm", w.shm, "load", "--agents", "2", "--threads", "2",
                                     "--duration", "25s", "--rate", "40", "--json"],
                                    stdout=out, stderr=subprocess.STDOUT)
        missing = {}

        def all_have_data():
            missing.clear()
            for title, e in exprs:
                res = api(w, "/api/v1/query", {"query": e})["result"]
                if not res:
                    missing[title] = e
                elif "histogram_quantile" in e and not any(math.isfinite(float(s["value"][1])) for s in res):
                    missing[title] = "non-finite p95: " + e
            return not missing

        try:
            wait_for("every dashboard expression to return data from ateld (missing: %s)" % missing, all_have_data,
                     timeout=90, procs=[("ateld", w.ateld)])
        except Fail:
            raise Fail("dashboard expressions without data from ateld: %s" % json.dumps(missing, indent=1))
        # what Grafana asks when the data source is added and the variables load
        check(api(w, "/api/v1/status/buildinfo")["version"], "buildinfo")
        check("agent_type" in api(w, "/api/v1/labels"), "labels")
        for var in dash.get("templating", {}).get("list", []):
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if isinstance(q, str) and q.startswith("label_values("):
                inner = q[len("label_values("):-1]
                metric, _, label = inner.rpartition(",")
                params = {"match[]": metric.strip()} if metric.strip() else {}
                vals = api(w, "/api/v1/label/%s/values" % label.strip(), params)
                check(vals, "variable %s (%s): no values" % (var.get("name"), q))
        check(api(w, "/api/v1/metadata"), "metadata")
        rc = load.wait(120)
        check(rc == 0, "atel load exited %d: %s" % (rc, open(report_path).read()[-2000:]))
        report = json.load(open(report_path))
        execs = report.get("agent_executions", {})
        total = execs.get("total") if isinstance(execs, dict) else execs
        check(isinstance(total, int) and total > 0, "load report has no agent execution total: %s" % report)
        seen = []

        def total_matches():
            res = api(w, "/api/v1/query", {"query": "sum(agent_execution_total)"})["result"]
            seen.append(float(res[0]["value"][1]) if res else None)
            return seen[-1] == total

        try:
            wait_for("sum(agent_execution_total) == %d" % total, total_matches, timeout=90,
                     procs=[("ateld", w.ateld)])
        except Fail:
            raise Fail("ateld: sum(agent_execution_total) is %r, atel load reported %d" %
                       (seen[-1] if seen else None, total))
        w.stop_ateld()
        print("dashboard on ateld: %d expressions returned data; sum(agent_execution_total) = %d as reported "
              "by atel load" % (len(exprs), total))
        return 0
    except Fail as e:
        print("FAIL:", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
