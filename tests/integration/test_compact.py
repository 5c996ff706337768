#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The background compactor in a real ateld (consumer/compactor.c;
docs/segment-format.md section 9).

    test_compact.py NAME     (run by meson; exit 0 pass, 1 fail)

restart: small segment files (storage.rotate_bytes 64 KiB), a compaction
    pass every second, `atel load` through libatel; once files were
    compacted, kill -9 and restart. Then /metrics totals and `atel replay`
    counts equal exactly what the load reported (nothing lost or counted
    twice across compaction and kill -9), the index answers `atel query` as
    the log does, the rewritten files are smaller and `zstd -t` accepts
    every file.
pin: a stale remote_write.outbox (remote write disabled) pins file 1:
    nothing is compacted and ateld says why at INFO; once it is removed the
    files are compacted.
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
from daemon_test import Env, Fail, check  # noqa: E402


def atel(e, *args, timeout=120):
    # ATEL_EXIT_WAIT_MS: agents wait for ring space at exit (daemon_test.run_agents says why)
    env = dict(os.environ, ATEL_SHM=e.shm, ATEL_DATA_DIR=e.data, NO_COLOR="1", ATEL_EXIT_WAIT_MS="10000")
    p = subprocess.run([dt.ATEL_CLI, "--data-dir", e.data, "--shm", e.shm] + list(args), capture_output=True,
                       text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def stats(e):
    s = e.status()
    return s["stats"] if s and "stats" in s else {}


def seg_files(e):
    return sorted(glob.glob(os.path.join(e.data, "segments", "*.atseg")))


def t_restart():
    port = dt.free_port()
    e = Env("compact", {"shm": {"rings": 32, "ring_capacity": 16384},
                        "storage": {"rotate_bytes": 65536, "compact_interval_s": 1,
                                    "compact_frame_bytes": 1 << 20},
                        "index": {"enabled": True},
                        "prometheus": {"enabled": True, "port": port},
                        "export_interval_ms": 500})
    try:
        e.start()
        # bulk samples in 5 ms frames (tprod: exact sequences, checked with logcheck) beside
        # the agent workload of `atel load` (counters, histograms, spans: checked against its report)
        ps = [e.produce(i, 2, 150000, "--block", "--rate", 40000) for i in (1, 2)]
        rc, out, err = atel(e, "load", "--agents", "2", "--threads", "2", "--sessions", "100", "--rate", "50",
                            "--seed", "13", "--json", timeout=300)
        res = [Env.result(p, timeout=240) for p in ps]
        check(rc == 0, "atel load exit %d: %s" % (rc, err))
        rep = json.loads(out)
        lib = rep["libatel"]
        check(lib["drops_total"] == 0, "load dropped records: %s" % lib["drops"])
        want = lib["records"] + lib["definitions"] + lib["meta"] + sum(t["written"] for r in res for t in r["threads"])
        e.wait_for("every record drained", lambda: stats(e).get("records_drained", 0) >= want, timeout=120)
        check(len(seg_files(e)) >= 4, "only %d segment files: the load is too small" % len(seg_files(e)))
        e.wait_for("files compacted", lambda: stats(e).get("compact_files", 0) >= 2, timeout=240)
        st = stats(e)
        before, after = st["compact_bytes_before"], st["compact_bytes_after"]
        check(0 < after < before, "compaction did not make files smaller: %d -> %d bytes" % (before, after))
        check(st["compact_failures"] == 0, "compaction failures: %d" % st["compact_failures"])
        m = dt.scrape_metrics(port)
        check(dt.metric(m, "atel_compaction_files_total") >= 2, "atel_compaction_files_total %s" %
              dt.metric(m, "atel_compaction_files_total"))
        check(dt.metric(m, "atel_compaction_bytes_saved_total") > 0, "atel_compaction_bytes_saved_total %s" %
              dt.metric(m, "atel_compaction_bytes_saved_total"))
        rc, out, _ = atel(e, "status")
        line = [x for x in out.splitlines() if x.startswith("compaction: ")]
        check(len(line) == 1 and re.match(r"compaction: \d+ files, [\d.]+ MB -> [\d.]+ MB \([-+]\d+%\), \d+ pending, "
                                          r"0 failed$", line[0]), "atel status compaction line: %s" % line)
        print(line[0])

        # kill -9 (compaction may be half way through a file) and restart
        e.kill9()
        # what a kill -9 between writing and exchanging leaves: the next start removes it
        stray = seg_files(e)[0] + ".compact"
        with open(stray, "wb") as f:
            f.write(b"\x28\xb5\x2f\xfd" + os.urandom(1000))
        e.start()
        # a little more after the restart: the readers move into the newest file and
        # release the one before it (a position at its end pins it)
        res.append(Env.result(e.produce(3, 1, 1000, "--block")))
        e.wait_for("index caught up", lambda: (lambda s: s and s["indexer"]["running"] and
                                               s["stats"]["indexer_lag_records"] == 0)(e.status()), timeout=240)
        e.wait_for("every finished file compacted", lambda: (lambda s: s.get("compact_pending", 1) == 0 and
                                                             s.get("compact_failures", 1) == 0)(stats(e)),
                   timeout=240)
        check(not glob.glob(os.path.join(e.data, "segments", "*.compact")), "a .compact file was left behind")
        # (2 when the kill -9 also caught a file being rewritten)
        check(re.search(r"removed \d+ unfinished \.compact file", open(e.daemon_log).read()), "no word of the stray .compact file removed")
        st2 = stats(e)
        saved = dt.metric(dt.scrape_metrics(port), "atel_compaction_bytes_saved_total")
        check(saved == st2["compact_bytes_before"] - st2["compact_bytes_after"],
              "atel_compaction_bytes_saved_total %s, status %d - %d" % (saved, st2["compact_bytes_before"],
                                                                       st2["compact_bytes_after"]))
        with open(os.path.join(e.data, "state", "compact.done")) as f:
            done = int(f.read())
        newest = int(os.path.basename(seg_files(e)[-1]).split(".")[0], 16)
        check(0 < done < newest, "compact.done %d, newest file %d" % (done, newest))

        # /metrics: the counters' totals are exactly the load's
        def totals():
            m = dt.scrape_metrics(port)
            tot = {}
            for (name, _labels), v in m.items():
                tot[name] = tot.get(name, 0) + v
            return tot
        expect = {"tool_calls_total": rep["tool_calls"]["total"],
                  "agent_execution_total": rep["agent_executions"]["total"],
                  "tool_call_failure_total": rep["tool_calls"]["failure"],
                  "error_total": rep["errors"]}
        got = {}

        def metrics_exact():
            t = totals()
            got.update({k: t.get(k) for k in expect})
            return got == expect
        try:
            e.wait_for("/metrics totals equal the load's", metrics_exact, timeout=60)
        except Fail:
            raise Fail("/metrics totals %s, load reported %s" % (got, expect))

        # the log: atel replay counts exactly what libatel delivered
        rc, out, err = atel(e, "replay", os.path.join(e.data, "segments"), "--json")
        check(rc == 0, "atel replay exit %d: %s" % (rc, err))
        r = json.loads(out)
        check(r["corrupt_frames"] == 0, "replay: %d corrupt frames" % r["corrupt_frames"])
        bt = r["by_type"]
        data_types = ("sample", "span_start", "span_end", "span_attr", "span_event", "span_error")
        n = sum(bt.get(t, 0) for t in data_types)
        ntprod = sum(t["written"] for r in res for t in r["threads"])
        check(n == lib["records"] + ntprod, "replay: %d data records, libatel delivered %d and tprod wrote %d" %
              (n, lib["records"], ntprod))
        check(bt.get("span_start", 0) == rep["spans"], "replay: %d span starts, load %d" %
              (bt.get("span_start", 0), rep["spans"]))

        # the index (its cursor resumed after the kill) answers as the log does
        q = ["query", "agent_execution_total", "--since", "1h", "--agg", "sum", "--interval", "1h", "--by",
             "status", "--json"]
        rc1, o1, e1 = atel(e, *q)
        rc2, o2, e2 = atel(e, *(q + ["--source", "log"]))
        check(rc1 == 0 and rc2 == 0, "atel query exit %d/%d: %s %s" % (rc1, rc2, e1, e2))

        def by_status(text):
            return {x["labels"]["status"]: sum(p["value"] for p in x["points"]) for x in json.loads(text)["series"]}
        a, b = by_status(o1), by_status(o2)
        ae = rep["agent_executions"]
        check(a == b == {"success": ae["success"], "failure": ae["failure"]},
              "query: index %s, log %s, load %s/%s" % (a, b, ae["success"], ae["failure"]))

        # every file is a valid zstd stream
        for p in seg_files(e):
            z = subprocess.run(["zstd", "-q", "-t", p], capture_output=True, text=True)
            check(z.returncode == 0, "zstd -t %s: %s" % (p, z.stderr))
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        nt = dt.expect_exact(e.logcheck(), res)
        print("restart: %d files compacted before kill -9, %d -> %d bytes (%.0f%%); after restart /metrics, "
              "replay (%d records) and the index agree with the load exactly, %d tprod samples exactly once" %
              (st["compact_files"], before, after, 100.0 * (after - before) / before, n, nt))
    finally:
        e.close()


def t_pin():
    e = Env("compact_pin", {"storage": {"rotate_bytes": 65536, "compact_interval_s": 1}})
    try:
        state = os.path.join(e.data, "state")
        os.makedirs(state)
        # a remote write outbox left from when remote write was on: it resumes at file 1
        outbox = os.path.join(state, "remote_write.outbox")
        with open(outbox, "wb") as f:
            f.write(b"ATELRWO1" + struct.pack("<IIQQII", 1, 0, 1, 4096, 0, 0) + struct.pack("<qI", 0, 0) +
                    b"\0\0\0\0")
        e.start()
        res = [Env.result(e.produce(i, 2, 40000, "--block")) for i in (1, 2)]
        check(all(t["dropped"] == 0 for r in res for t in r["threads"]), "producer drops")
        e.wait_for("several finished files pending", lambda: stats(e).get("compact_pending", 0) >= 3, timeout=60)
        sizes = {p: os.stat(p).st_size for p in seg_files(e)}
        inodes = {p: os.stat(p).st_ino for p in seg_files(e)}
        e.wait_for("the INFO line naming the pin",
                   lambda: "held back: remote_write.outbox holds log position file 1 offset 4096" in e.log_text(),
                   timeout=60)
        time.sleep(3)  # three more passes
        check(stats(e).get("compact_files", -1) == 0, "files compacted despite the pin: %s" % stats(e))
        for p in sizes:
            check(os.stat(p).st_size == sizes[p] and os.stat(p).st_ino == inodes[p],
                  "%s changed despite the pin" % p)
        check(not os.path.exists(os.path.join(state, "compact.done")), "compact.done written despite the pin")
        # the pin gone, the same files are compacted
        os.unlink(outbox)
        e.wait_for("files compacted once the pin is gone", lambda: stats(e).get("compact_files", 0) >= 2,
                   timeout=120)
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        dt.expect_exact(e.logcheck(), res)
        print("pin: a stale remote_write.outbox at file 1 held %d files back; without it %d were compacted" %
              (len(sizes) - 1, stats(e).get("compact_files", 0)))
    finally:
        e.close()


TESTS = {"restart": t_restart, "pin": t_pin}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: test_compact.py {%s}" % "|".join(TESTS))
        return 2
    try:
        TESTS[sys.argv[1]]()
    except Fail as ex:
        print("FAIL %s: %s" % (sys.argv[1], ex))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
