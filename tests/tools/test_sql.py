#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`atel sql` and the atel_sqlite extension on a compact index (issue 13).

test_sql.py ATEL ATELD EXT: ateld with the default index.mode (compact) and
columns-encoded segment files rotated small, `atel load` through it, then
ateld stopped. Checks:
  - the compact index holds no raw rows, yet `atel sql` answers
    telemetry_metrics: every row equals `atel replay --emit jsonl`'s samples
    (log order = id order; gauges: the running value), and equals the rows
    of `atel reindex --mode full` over a copy of the same segments;
  - the reference views answer on the compact index (and with no
    telemetry.db at all) exactly as the full index's own views;
  - writes are refused (exit 1, "read-only"), the file is unchanged;
  - the built-in module (no extension found) answers the same;
  - --json is an array of row objects, the human output an aligned table;
  - the sqlite3 shell loads EXT, atel_shadow() binds the views, they answer.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATEL, ATELD, EXT = sys.argv[1], sys.argv[2], sys.argv[3]
FAILS = []
VIEWS = ["v_recent_metrics", "v_agent_performance", "v_tool_usage", "v_context_utilization", "v_error_rate"]


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def close(a, b):
    """Equal rows, floats to 1e-12 relative: an aggregate's sum depends on the
    order SQLite visits the rows in (the full index walks its (name, ts_ns)
    index, the log is read in log order)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b))
    return a == b


def main():
    tmp = tempfile.mkdtemp(prefix="atel-sql-%d-" % os.getpid())
    data = os.path.join(tmp, "var")
    shm = "atel-test-sql-%d" % os.getpid()
    env = dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data, NO_COLOR="1")
    env.pop("ATEL_SQLITE_EXT", None)
    cfg = os.path.join(tmp, "ateld.json")
    json.dump({"prometheus": {"enabled": False}, "index": {"enabled": True},
               "storage": {"encoding": "columns", "rotate_bytes": 65536}}, open(cfg, "w"))
    log = open(os.path.join(tmp, "ateld.log"), "w")
    d = subprocess.Popen([ATELD, "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)

    def atel(*args, data_dir=None, extra_env=None, timeout=300):
        e = dict(env)
        e.update(extra_env or {})
        if data_dir:
            e["ATEL_DATA_DIR"] = data_dir
        p = subprocess.run([ATEL] + list(args), capture_output=True, text=True, env=e, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def sql_json(q, **kw):
        rc, out, err = atel("--json", "sql", q, **kw)
        check(rc == 0, "atel sql --json %r exits 0 (%d: %s)" % (q[:60], rc, err.strip()))
        return json.loads(out) if rc == 0 else None

    try:
        deadline = time.time() + 60
        up = False
        while time.time() < deadline and d.poll() is None:
            rc, out, _ = atel("status", "--json")
            if rc == 0 and json.loads(out)["up"]:
                up = True
                break
            time.sleep(0.1)
        check(up, "ateld came up")
        if not up:
            return
        # three loads, SIGHUP between them: several segment files
        want = 0
        executions = 0
        for run in range(3):
            rc, out, err = atel("load", "--agents", "2", "--threads", "2", "--sessions", "6", "--seed",
                                str(5 + run), "--json")
            check(rc == 0, "load exits 0 (%d: %s)" % (rc, err))
            rep = json.loads(out)
            lib = rep["libatel"]
            want += lib["records"] + lib["definitions"] + lib["meta"]
            executions += rep["agent_executions"]["success"] + rep["agent_executions"]["failure"]
            deadline = time.time() + 120
            while time.time() < deadline:
                rc, out, _ = atel("status", "--json")
                st = json.loads(out)
                dm = st.get("daemon") or {}
                if dm.get("stats", {}).get("records_drained", 0) >= want and dm.get("indexer", {}).get(
                        "lag_records", 1) == 0:
                    break
                time.sleep(0.2)
            if run < 2:
                d.send_signal(signal.SIGHUP)
                time.sleep(0.5)
        d.send_signal(signal.SIGTERM)
        check(d.wait(timeout=120) == 0, "ateld exits 0 on SIGTERM")
        segs = sorted(f for f in os.listdir(os.path.join(data, "segments")) if f.endswith(".atseg"))
        check(len(segs) >= 3, "several segment files (%d)" % len(segs))

        # the index is compact: no raw rows of its own
        meta = sql_json("SELECT value FROM telemetry_meta WHERE key = 'index_mode'")
        check(meta == [{"value": "compact"}], "index_mode compact (%s)" % meta)
        n_main = sql_json("SELECT count(*) AS n FROM main.telemetry_metrics")
        check(n_main == [{"n": 0}], "the compact index holds no telemetry_metrics rows (%s)" % n_main)

        # every row equals the log reader's samples, in log order
        rows = sql_json("SELECT * FROM telemetry_metrics ORDER BY id")
        rc, out, err = atel("replay", os.path.join(data, "segments"), "--emit", "jsonl")
        check(rc == 0, "replay --emit jsonl exits 0 (%d: %s)" % (rc, err))
        samples = [s for s in (json.loads(l) for l in out.splitlines() if l.strip()) if s.get("type") == "sample"]
        check(rows and len(rows) == len(samples) and len(rows) > 1000,
              "one row per sample of the log (%d rows, %d samples)" % (len(rows or []), len(samples)))
        running = {}
        bad = 0
        for i, (r, s) in enumerate(zip(rows or [], samples)):
            lab = json.loads(r["labels"])
            v = s["value"]
            if r["metric_type"] == "gauge":
                key = r["series_hash"]
                v = v if s["op"] == "set" else running.get(key, 0) + v
                running[key] = v
            if (r["id"] != i + 1 or r["ts_ns"] != s["ts_ns"] or r["name"] != s["metric"] or lab != s["labels"] or
                    r["op"] != s["op"] or abs(r["value"] - v) > 1e-9 * max(1, abs(v))):
                bad += 1
                if bad <= 3:
                    print("row", r, "sample", s)
        check(bad == 0, "rows equal the replayed samples (%d differ)" % bad)
        types = {r["metric_type"] for r in rows or []}
        check(types == {"counter", "gauge", "histogram"}, "counters, gauges and histograms (%s)" % types)
        check(list(json.loads((rows or [{}])[0].get("labels", "{}")).keys()) ==
              sorted(json.loads((rows or [{}])[0].get("labels", "{}")).keys()), "labels keys sorted")

        # the same rows as a full index built from the same segments
        full = os.path.join(tmp, "full")
        os.makedirs(full)
        shutil.copytree(os.path.join(data, "segments"), os.path.join(full, "segments"))
        rc, out, err = atel("reindex", "--mode", "full", data_dir=full)
        check(rc == 0, "reindex --mode full exits 0 (%d: %s)" % (rc, err))
        full_rows = sql_json("SELECT * FROM main.telemetry_metrics ORDER BY id", data_dir=full)
        check(full_rows == rows, "the log's telemetry_metrics equals the full index's rows (%d vs %d)" %
              (len(rows or []), len(full_rows or [])))

        # SQLite's binding rule, the reason for the temp copies: a view of main
        # reads main.telemetry_metrics even when temp has one (empty here),
        # the temp copy reads temp's (the log)
        m = sql_json("SELECT count(*) AS n FROM main.v_tool_usage")
        t = sql_json("SELECT count(*) AS n FROM v_tool_usage")
        check(m == [{"n": 0}] and t and t[0]["n"] > 0, "main.v_tool_usage binds main (%s), v_tool_usage temp (%s)" %
              (m, t))

        # the reference views: compact (the log) = full (its own rows) = no db at all
        bare = os.path.join(tmp, "bare")
        os.makedirs(bare)
        shutil.copytree(os.path.join(data, "segments"), os.path.join(bare, "segments"))
        for v in VIEWS:
            q = "SELECT * FROM %s ORDER BY 1, 2" % v
            a = sql_json(q)
            b = sql_json("SELECT * FROM main.%s ORDER BY 1, 2" % v, data_dir=full)
            c = sql_json(q, data_dir=bare)
            check(close(a, b), "%s on the compact index equals the full index's (%s vs %s)" % (v, a and a[:1], b and b[:1]))
            check(close(c, a), "%s without telemetry.db equals it too" % v)
            if v != "v_error_rate":
                check(bool(a), "%s has rows" % v)
        perf = sql_json("SELECT sum(executions) AS e FROM v_agent_performance")
        check(perf and perf[0]["e"] == executions, "v_agent_performance counts the loads' executions (%s vs %s)" %
              (perf, executions))

        # built in, when no extension is found
        rc, out, _ = atel("sql", "--help", extra_env={"ATEL_SQLITE_EXT": "/nonexistent/atel_sqlite.so"})
        check(rc == 0 and "built-in module" in out, "--help says the built-in module is used")
        rc, out, _ = atel("sql", "--help")
        check(rc == 0 and "atel_sqlite.so" in out.splitlines()[-1], "--help names the extension found")
        a = sql_json("SELECT * FROM v_tool_usage ORDER BY 1", extra_env={"ATEL_SQLITE_EXT": "/nonexistent"})
        b = sql_json("SELECT * FROM v_tool_usage ORDER BY 1")
        check(a == b and a, "the built-in module answers as the extension")

        # human output: an aligned table and a row count
        rc, out, err = atel("sql", "SELECT name, count(*) AS n FROM telemetry_metrics GROUP BY name ORDER BY name")
        lines = out.splitlines()
        check(rc == 0 and lines[0].split() == ["name", "n"] and lines[-1].endswith("rows"),
              "human table with a header and a row count (%r)" % out[:200])
        check(len({len(l) for l in lines[:-1]}) == 1, "aligned columns")

        # writes are refused, the file is untouched
        db = os.path.join(data, "telemetry.db")
        before = (os.path.getsize(db), os.stat(db).st_mtime_ns)
        for q in ["DELETE FROM telemetry_metrics", "DELETE FROM telemetry_exports",
                  "INSERT INTO telemetry_losses(ts_ns, ring, generation, cause, count) VALUES (1, 1, 1, 'x', 1)",
                  "DROP VIEW v_tool_usage", "CREATE TABLE t(x)", "UPDATE telemetry_meta SET value = 'full'",
                  "VACUUM INTO '%s'" % os.path.join(tmp, "copy.db"), "SELECT atel_shadow('/tmp')"]:
            rc, out, err = atel("sql", q)
            check(rc == 1 and "read-only" in err, "refused with exit 1: %s (%d: %s)" % (q, rc, err.strip()))
        check(not os.path.exists(os.path.join(tmp, "copy.db")), "VACUUM INTO wrote nothing")
        check((os.path.getsize(db), os.stat(db).st_mtime_ns) == before, "telemetry.db unchanged")
        rc, _, err = atel("sql", "SELECT 1; SELECT 2")
        check(rc == 1 and "one statement" in err, "two statements refused")
        rc, _, err = atel("sql", "SELEC 1")
        check(rc == 1 and "syntax" in err, "a syntax error is exit 1")
        rc, _, err = atel("sql", "SELECT 1", data_dir=os.path.join(tmp, "nothing"))
        check(rc == 2, "no data: exit 2 (%d)" % rc)

        # the sqlite3 shell loads the extension
        sqlite3 = shutil.which("sqlite3")
        if not sqlite3:
            print("SKIP: no sqlite3 shell")
        else:
            e = dict(os.environ)
            ldd = subprocess.run(["ldd", EXT], capture_output=True, text=True).stdout
            if "libasan" in ldd:  # an ASan build: the runtime must come first in a plain binary
                pre = [subprocess.run(["gcc", "-print-file-name=" + lib], capture_output=True,
                                      text=True).stdout.strip() for lib in ("libasan.so", "libubsan.so")]
                e["LD_PRELOAD"] = " ".join(pre)
                e["ASAN_OPTIONS"] = "detect_leaks=0"
            ext = os.path.splitext(EXT)[0]  # `.load` without the suffix, as documented
            p = subprocess.run([sqlite3, "-readonly", "-json", db, ".load " + ext,
                                "SELECT atel_shadow('%s') AS views" % data,
                                "SELECT count(*) AS n FROM telemetry_metrics",
                                "SELECT * FROM v_tool_usage ORDER BY 1, 2"],
                               capture_output=True, text=True, env=e, timeout=300)
            check(p.returncode == 0, "sqlite3 .load + atel_shadow exits 0 (%s)" % p.stderr.strip())
            outs = []
            dec = json.JSONDecoder()
            s = p.stdout.strip()
            while s:
                o, i = dec.raw_decode(s)
                outs.append(o)
                s = s[i:].strip()
            check(len(outs) == 3 and outs[0] == [{"views": 5}], "atel_shadow copied the five views (%s)" % outs[:1])
            if len(outs) == 3:
                check(outs[1] == [{"n": len(rows or [])}], "the shell counts the same rows (%s)" % outs[1])
                mine = sql_json("SELECT * FROM v_tool_usage ORDER BY 1, 2")
                check(len(outs[2]) == len(mine or []) and outs[2] and
                      [r["tool"] for r in outs[2]] == [r["tool"] for r in mine],
                      "the shell's v_tool_usage has atel sql's tools")
            # the exact form the README gives
            p = subprocess.run([sqlite3, ":memory:", ".load " + ext,
                                "CREATE VIRTUAL TABLE temp.m USING atel_log('%s')" % data,
                                "SELECT count(*) FROM m WHERE name = 'tool_calls_total'"],
                               capture_output=True, text=True, env=e, timeout=300)
            want_n = sum(1 for r in rows or [] if r["name"] == "tool_calls_total")
            check(p.returncode == 0 and p.stdout.strip() == str(want_n),
                  "CREATE VIRTUAL TABLE ... USING atel_log in the shell (%r, want %d; %s)" %
                  (p.stdout.strip(), want_n, p.stderr.strip()))
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=60)
            except subprocess.TimeoutExpired:
                d.kill()
        if not FAILS:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    print("%d failure(s)" % len(FAILS))
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
