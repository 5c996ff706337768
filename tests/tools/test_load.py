#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`atel load` against a real ateld, checked through the other verbs.

test_load.py ATEL ATELD: starts ateld (private shm name and data dir,
Prometheus off), runs a fixed-size swarm (2 processes x 2 threads, 25
sessions per thread), waits for the log and the index to catch up (polling
`atel status --json`, bounded), then checks that what the load report says
it produced is exactly what `atel replay`, `atel metrics` (the log), `atel
query`/`stats` (the index) and `atel traces` show; also `atel status` while
the daemon runs, and that `clear all`/`reindex` refuse while it runs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATEL, ATELD = sys.argv[1], sys.argv[2]
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def main():
    tmp = tempfile.mkdtemp(prefix="atel-load-%d-" % os.getpid())
    data = os.path.join(tmp, "var")
    shm = "atel-test-load-%d" % os.getpid()
    env = dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data, NO_COLOR="1")
    cfg = os.path.join(tmp, "ateld.json")
    json.dump({"prometheus": {"enabled": False}, "index": {"enabled": True}}, open(cfg, "w"))
    log = open(os.path.join(tmp, "ateld.log"), "w")
    d = subprocess.Popen([ATELD, "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)

    def atel(*args, timeout=120):
        p = subprocess.run([ATEL] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    try:
        deadline = time.time() + 30
        up = False
        while time.time() < deadline and d.poll() is None:
            rc, out, _ = atel("status", "--json")
            if rc == 0 and json.loads(out)["up"]:
                up = True
                break
            time.sleep(0.1)
        check(up, "ateld came up (status exit 0, up true)")
        if not up:
            return
        rc, out, err = atel("load", "--agents", "2", "--threads", "2", "--sessions", "25", "--seed", "7", "--json")
        check(rc == 0, "load exits 0 (%d: %s)" % (rc, err))
        rep = json.loads(out)
        lib = rep["libatel"]
        check(rep["processes_attached"] == 2 and rep["workers_failed"] == 0, "both agent processes attached")
        check(rep["sessions"] == 100, "2 x 2 x 25 sessions (got %d)" % rep["sessions"])
        check(lib["drops_total"] == 0, "no drops at this size: %s" % lib["drops"])

        # wait until the log holds every record and the index has applied it
        want = lib["records"] + lib["definitions"] + lib["meta"]
        deadline = time.time() + 60
        st = {}
        while time.time() < deadline:
            rc, out, _ = atel("status", "--json")
            st = json.loads(out)
            dm = st.get("daemon") or {}
            drained = dm.get("stats", {}).get("records_drained", 0)
            lag = dm.get("indexer", {}).get("lag_records", 1)
            if drained >= want and lag == 0 and st["lag_records"] == 0:
                break
            time.sleep(0.2)
        dm = st.get("daemon") or {}
        check(dm.get("stats", {}).get("records_drained", 0) == want,
              "ateld drained exactly what libatel wrote: %s vs %d" % (dm.get("stats", {}).get("records_drained"), want))
        check(dm.get("io_path") in ("io_uring", "pwritev"), "status shows the io path")
        check(st["segments"]["files"] >= 1 and st["disk_bytes"] > 0, "status shows segments and disk use")

        # the log: replay and metrics
        rc, out, err = atel("replay", os.path.join(data, "segments"), "--json")
        r = json.loads(out)
        check(rc == 0 and r["corrupt_frames"] == 0, "replay of the live log is clean (%d)" % rc)
        bt = r["by_type"]
        data_types = ("sample", "span_start", "span_end", "span_attr", "span_event", "span_error")
        check(sum(bt.get(t, 0) for t in data_types) == lib["records"],
              "replay data records %d == libatel records %d" % (sum(bt.get(t, 0) for t in data_types),
                                                                lib["records"]))
        check(bt.get("span_start", 0) == rep["spans"], "span_start records == spans started")
        rc, out, err = atel("metrics", "--json")
        fams = {f["name"]: f for f in json.loads(out)["metrics"]}

        def total(name):
            return sum(s["value"] for s in fams[name]["series"]) if name in fams else -1

        ae = rep["agent_executions"]
        check(total("agent_execution_total") == ae["total"], "metrics agent_execution_total == report")
        check(total("tool_calls_total") == rep["tool_calls"]["total"], "metrics tool_calls_total == report")
        check(total("tool_call_failure_total") == rep["tool_calls"]["failure"], "tool failures == report")
        check(total("agent_tokens_used") == rep["tokens"], "tokens == report")
        check(total("error_total") == rep["errors"], "error_total == report")
        by_type = {}
        for s in fams["agent_execution_total"]["series"]:
            t = s["labels"]["agent_type"]
            by_type.setdefault(t, {"success": 0, "failure": 0})[s["labels"]["status"]] += s["value"]
        check(by_type == ae["by_type"], "agent executions by type and status: %s vs %s" % (by_type, ae["by_type"]))
        hist = sum(s["count"] for s in fams["tool_call_duration_seconds"]["series"])
        check(hist == rep["tool_calls"]["total"], "tool_call_duration_seconds observations == tool calls")

        # the default compact index keeps no raw samples: stats read them from the log
        rc, out, err = atel("stats", "tool_calls_total", "--since", "1h", "--json")
        s = json.loads(out)
        check(rc == 0 and s["source"] == "segments" and s["groups"][0]["increase"] == rep["tool_calls"]["total"],
              "compact index: tool_calls_total increase (from the log) == report")
        rc, out, err = atel("status", "--json")
        dc = json.loads(out).get("disk_cost", {})
        check(rc == 0 and dc.get("samples", 0) > 0 and dc.get("spans", 0) > 0 and dc.get("bytes_per_sample"),
              "status disk_cost counts samples and spans: %s" % dc)
        rc, out, err = atel("query", "agent_execution_total", "--since", "1h", "--agg", "sum", "--interval", "1h",
                            "--by", "status", "--json")
        q = {x["labels"]["status"]: sum(p["value"] for p in x["points"]) for x in json.loads(out)["series"]}
        check(q == {"success": ae["success"], "failure": ae["failure"]}, "index: executions by status %s" % q)
        rc, out, err = atel("traces", "--limit", "0", "--json")
        tr = json.loads(out)["traces"]
        check(len(tr) == rep["sessions"] and all(t["root"] == "orchestration-session" for t in tr),
              "one trace per session (%d)" % len(tr))
        check(sum(t["spans"] for t in tr) == rep["spans"], "spans in the index == spans started")

        # refusals while ateld runs
        rc, out, err = atel("clear", "all", "--yes")
        check(rc == 4, "clear all refuses while ateld runs (%d)" % rc)
        rc, out, err = atel("reindex")
        check(rc == 4, "reindex refuses while ateld runs (%d)" % rc)
        check(shm in err and data in err and "kill -TERM" in err, "the refusal names the segment and what to do: %r"
              % err)
        rc, out, err = atel("reindex", "--force")
        check(rc == 4 and "--force does not override" in err, "reindex --force refuses too (%d: %s)" % (rc, err))
        rc, out, err = atel("status")
        check(rc == 0 and out.startswith("ateld: up"), "human status: %r" % out[:40])
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=40)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        log.close()
        if FAILS:
            print(open(os.path.join(tmp, "ateld.log")).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.unlink("/dev/shm/" + shm)
        except OSError:
            pass
    rc, out, err = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True,
                                  env=dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data)).returncode, "", ""
    check(rc == 3, "status after SIGTERM: down, exit 3 (%d)" % rc)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
