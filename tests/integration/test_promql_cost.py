#!/usr/bin/python3
"""The query API reads only what a recent range needs (issue 16, query cost).

A real ateld with storage.rotate_bytes at its 64 KiB minimum records the
demo's swarm (`atel load`) into many segment files. Range queries over the
last seconds of the load, with short windows (so that their selectors start
well after the oldest file), are asked twice: the first scan reads every
file and caches every series' state at the last file boundary before the
range; the second must skip files (atel_promql_files_skipped_total grows)
and give exactly the same answer, which must also be the answer of
`atel query 'PromQL'` (the offline engine, no cache, every file read) on the
same data directory. The expressions include raw cumulative counter values
(max_over_time of a _total), so a wrong cumulative base would show.
argv[1]: the atel CLI.
"""
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check  # noqa: E402
import test_prometheus as tp  # noqa: E402  (its World: temp dirs, ports, ateld)

EXPRS = [
    "max_over_time(agent_execution_total[2s])",
    "sum by (agent_type) (max_over_time(agent_tokens_used_total[2s]))",
    "sum by (status) (increase(agent_execution_total[3s]))",
    "last_over_time(agent_execution_duration_seconds_count[2s])",
    "histogram_quantile(0.9, sum by (le) (rate(agent_execution_duration_seconds_bucket[3s])))",
    "max_over_time(task_queue_size[2s])",
]


def api(port, params):
    url = "http://127.0.0.1:%d/api/v1/query_range?%s" % (port, urllib.parse.urlencode(params))
    r = json.loads(urllib.request.urlopen(url, timeout=300).read())
    check(r["status"] == "success", "query %s: %s" % (params, r))
    return r["data"]


def canon(data):
    return sorted((json.dumps(s["metric"], sort_keys=True), [(float(t), float(v)) for t, v in s["values"]])
                  for s in data["result"])


def skipped(port):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60).read().decode()
    for line in body.splitlines():
        if line.startswith("atel_promql_files_skipped_total "):
            return float(line.split()[1])
    raise Fail("no atel_promql_files_skipped_total in /metrics")


def main():
    atel = sys.argv[1]
    w = tp.World()
    try:
        w.cfg["json"]["enabled"] = False
        w.cfg["storage"] = {"rotate_bytes": 65536}
        w.cfg["prometheus"]["query_resolution_ms"] = 1000
        w.cfg["prometheus"]["query_carry_ms"] = 60000  # as the CLI's (it carries to the last event only)
        with open(w.cfg_path, "w") as f:
            json.dump(w.cfg, f)
        w.start_ateld()
        t0 = time.time()
        subprocess.run([atel, "--shm", w.shm, "load", "--agents", "4", "--threads", "2", "--duration", "10s",
                        "--rate", "25", "--allow-loss"], check=True, stdout=subprocess.DEVNULL, timeout=600)
        t1 = time.time()
        seg = os.path.join(w.data, "segments")
        deadline = time.time() + 120
        while time.time() < deadline and len(os.listdir(seg)) < 6:
            time.sleep(0.5)
        time.sleep(3)  # the drain's linger
        nfiles = len(os.listdir(seg))
        check(nfiles >= 6, "only %d segment files (rotate_bytes 65536)" % nfiles)
        # 2 s near the end of the load, well inside it
        end = t1 - 1.5
        start = max(end - 2, t0 + 5)
        params = {"start": "%.3f" % start, "end": "%.3f" % end, "step": "1"}
        check(skipped(w.mport) == 0, "files skipped before any query")
        first = {e: canon(api(w.mport, dict(params, query=e))) for e in EXPRS}
        s1 = skipped(w.mport)
        again = {e: canon(api(w.mport, dict(params, query=e))) for e in EXPRS}
        s2 = skipped(w.mport)
        check(s2 > s1, "the second round skipped no file (%s, then %s; %d files)" % (s1, s2, nfiles))
        check(s2 - s1 >= len(EXPRS), "too few files skipped: %s of %d per query" % ((s2 - s1) / len(EXPRS), nfiles))
        for e in EXPRS:
            check(first[e], "%s: no data in the range" % e)
            check(again[e] == first[e], "%s: with files skipped:\n%s\nwithout:\n%s" % (e, again[e], first[e]))
            out = subprocess.run([atel, "--data-dir", w.data, "query", "--json", e, "--start", params["start"],
                                  "--end", params["end"], "--step", "1s", "--resolution", "1s"],
                                 capture_output=True, text=True, timeout=300)
            check(out.returncode == 0, "atel query %s: %s %s" % (e, out.returncode, out.stderr))
            cli = canon(json.loads(out.stdout)["data"])
            check(cli == first[e], "%s: ateld and the offline CLI differ:\n%s\n%s" % (e, first[e], cli))
        w.stop_ateld()
        print("promql_cost: %d files; %d expressions equal with and without skipping and to the CLI; "
              "%.0f files skipped in the second round" % (nfiles, len(EXPRS), s2 - s1))
    finally:
        w.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        sys.exit(1)
