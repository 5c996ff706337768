#!/usr/bin/python3
"""Query latency of the dashboard's panel queries: ateld's own /api/v1 (the
PromQL engine over the log) beside a real Prometheus that scraped the same
ateld every 1 s during the same load (when `prometheus` is installed).

  bench/promql_latency.py BUILD_DIR [LOAD_SECONDS]   (default 60)

Runs ateld on free loopback ports in a temporary directory, the demo's swarm
(`atel load --agents 4 --threads 2 --rate 25`, as scripts/demo.sh) for
LOAD_SECONDS, then times every expression of dashboards/overview.json
(Grafana's "All" substitutions) as an instant query and as a range query
over the load (step 15 s), best of 3, and prints one row per expression.
Not part of `make bench` yet (it needs minutes of load to mean anything).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import test_prometheus as tp  # noqa: E402


def sub(e):
    e = e.replace("$__rate_interval", "1m").replace("$__range", "5m")
    return re.sub(r"\$\{?([A-Za-z_]+)\}?", ".*", e)


def timed(port, path, params):
    best = None
    for _ in range(3):
        url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(params))
        t0 = time.perf_counter()
        r = json.loads(urllib.request.urlopen(url, timeout=300).read())
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best * 1000, len(r["data"]["result"]) if r["status"] == "success" else -1


def main():
    build = sys.argv[1]
    secs = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    os.environ["ATEL_BUILD_ROOT"] = os.path.abspath(build)
    tp.ATELD = os.path.join(os.path.abspath(build), "consumer", "ateld")
    atel = os.path.join(os.path.abspath(build), "tools", "atel")
    dash = json.load(open(os.path.join(HERE, "..", "dashboards", "overview.json")))
    exprs = [sub(t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]
    w = tp.World()
    try:
        w.cfg["json"]["enabled"] = False
        with open(w.cfg_path, "w") as f:
            json.dump(w.cfg, f)
        w.start_ateld()
        prom = shutil.which("prometheus") is not None
        if prom:
            w.start_prometheus()
        t_start = time.time()
        subprocess.run([atel, "--shm", w.shm, "load", "--agents", "4", "--threads", "2", "--duration",
                        "%ds" % secs, "--rate", "25"], check=True, stdout=subprocess.DEVNULL)
        time.sleep(3)
        t_end = time.time()
        seg = os.path.join(w.data, "segments")
        size = sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg))
        print("load %d s, log %.1f MB; best of 3, ms (series)" % (secs, size / 1e6))
        print("%-10s %-10s %-10s %-10s  %s" % ("ateld", "ateld", "prom", "prom", "expression"))
        print("%-10s %-10s %-10s %-10s" % ("instant", "range", "instant", "range"))
        for e in exprs:
            row = []
            for port in ([w.mport, w.pport] if prom else [w.mport]):
                i = timed(port, "/api/v1/query", {"query": e, "time": "%.3f" % t_end})
                r = timed(port, "/api/v1/query_range", {"query": e, "start": "%.3f" % t_start,
                                                         "end": "%.3f" % t_end, "step": "15"})
                row += ["%.1f(%d)" % i, "%.1f(%d)" % r]
            while len(row) < 4:
                row.append("-")
            print("%-10s %-10s %-10s %-10s  %s" % (row[0], row[1], row[2], row[3], e[:80]))
        w.stop_ateld()
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
