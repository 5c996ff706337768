#!/usr/bin/python3
"""Query latency of the dashboard's panel queries: ateld's own /api/v1 (the
PromQL engine over the log) beside a real Prometheus that scraped the same
ateld every 1 s during the same load (when `prometheus` is installed).

  bench/promql_latency.py BUILD_DIR [LOAD_SECONDS] [--rotate-bytes N] [--recent-only]
  (LOAD_SECONDS default 60)

Runs ateld on free loopback ports in a temporary directory, the demo's swarm
(`atel load --agents 4 --threads 2 --rate 25`, as scripts/demo.sh) for
LOAD_SECONDS, then times every expression of dashboards/overview.json
(Grafana's "All" substitutions) as an instant query and as a range query
over the load (step 15 s), best of 3, and prints one row per expression.
Not part of `make bench` yet (it needs minutes of load to mean anything).

First, the "recent range" rows (issue 16, query cost): range queries over
the last 2 s of the load with 2 s windows, so that their selectors start
well after the oldest segment file. "cold" is the first query after the
load (it reads every file and caches the series state at the last file
boundary before its range), "warm" the best of 3 after it (it reads only
the files from that boundary on). --rotate-bytes sets storage.rotate_bytes
(min 65536) for many files. --recent-only skips the dashboard rows.
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


RECENT = [
    "sum by (agent_type) (rate(agent_execution_total[2s]))",
    "max_over_time(agent_tokens_used_total[2s])",
    "histogram_quantile(0.95, sum by (le) (rate(agent_execution_duration_seconds_bucket[2s])))",
]


def timed(port, path, params, n=3):
    best = None
    for _ in range(n):
        url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(params))
        t0 = time.perf_counter()
        r = json.loads(urllib.request.urlopen(url, timeout=300).read())
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best * 1000, len(r["data"]["result"]) if r["status"] == "success" else -1


def main():
    args = sys.argv[1:]
    recent_only = "--recent-only" in args
    args = [a for a in args if a != "--recent-only"]
    rotate = None
    if "--rotate-bytes" in args:
        i = args.index("--rotate-bytes")
        rotate = int(args[i + 1])
        del args[i:i + 2]
    build = args[0]
    secs = int(args[1]) if len(args) > 1 else 60
    os.environ["ATEL_BUILD_ROOT"] = os.path.abspath(build)
    tp.ATELD = os.path.join(os.path.abspath(build), "consumer", "ateld")
    atel = os.path.join(os.path.abspath(build), "tools", "atel")
    dash = json.load(open(os.path.join(HERE, "..", "dashboards", "overview.json")))
    exprs = [sub(t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]
    w = tp.World()
    try:
        w.cfg["json"]["enabled"] = False
        w.cfg["prometheus"]["query_timeout_ms"] = 300000  # a full read of a big log takes long
        if rotate:
            w.cfg["storage"] = {"rotate_bytes": rotate}
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
        print("load %d s, log %.1f MB in %d files; best of 3, ms (series)" % (secs, size / 1e6, len(os.listdir(seg))))
        rp = {"start": "%.3f" % (t_end - 5), "end": "%.3f" % (t_end - 3), "step": "1"}
        print("recent range (last 2 s of the load, step 1 s): cold = first query, warm = best of 3 after it")
        print("%-10s %-10s  %s" % ("cold", "warm", "expression"))
        for e in RECENT:
            c = timed(w.mport, "/api/v1/query_range", dict(rp, query=e), n=1)
            h = timed(w.mport, "/api/v1/query_range", dict(rp, query=e))
            print("%-10s %-10s  %s" % ("%.1f(%d)" % c, "%.1f(%d)" % h, e))
        if recent_only:
            w.stop_ateld()
            return 0
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
