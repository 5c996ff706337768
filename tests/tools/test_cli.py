#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""End-to-end test of the `atel` CLI over synthetic data directories.

test_cli.py ATEL MKDATA: MKDATA writes real segment files (tests/common/synth)
and expect.json (what it wrote, computed from the record streams); this script
runs `atel` on them and checks exact output: replay --json and --emit jsonl,
gaps, corrupt frames with file and offset and exit code 2, reindex, traces
(waterfall and OTLP JSON, from the index and from the segments), query and
stats values (index and segments must agree), clear, and argument errors.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ATEL, MKDATA = sys.argv[1], sys.argv[2]
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def run(*args, env_extra=None, stdin=None):
    env = dict(os.environ)
    env.pop("ATEL_DATA_DIR", None)
    env["ATEL_SHM"] = "atel-test-cli-%d" % os.getpid()  # no such segment: no daemon
    env["NO_COLOR"] = "1"
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([ATEL] + list(args), capture_output=True, text=True, env=env, timeout=120,
                       stdin=stdin if stdin is not None else subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="atel-cli-%d-" % os.getpid())
    try:
        body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


def body(tmp):
    subprocess.run([MKDATA, tmp], check=True)
    exp = json.load(open(os.path.join(tmp, "expect.json")))
    good = os.path.join(tmp, "good")
    gseg = os.path.join(good, "segments")
    eg = exp["good"]

    # ---- replay --json: exact counts ------------------------------------------------
    rc, out, err = run("replay", gseg, "--json")
    check(rc == 0, "replay good exits 0 (got %d: %s)" % (rc, err))
    r = json.loads(out)
    bt = dict(r["by_type"])
    check(bt.pop("chunk", 0) >= 1, "replay counts CHUNK framing records")
    check(bt == eg["by_type"], "replay by_type %s == %s" % (bt, eg["by_type"]))
    check(r["records"] == eg["records_without_chunks"], "records %d" % r["records"])
    check(r["events"] == eg["events"], "events %d == %d" % (r["events"], eg["events"]))
    check(r["files"] == 1 and r["corrupt_frames"] == 0 and r["corrupt"] == [], "one clean file")
    check(r["time_range"] == {"first_ns": eg["first_ns"], "last_ns": eg["last_ns"]},
          "time range %s" % r["time_range"])
    check(r["series"] == [
        {"metric": "task_queue_size", "labels": {"priority": "high"}, "type": "gauge", "samples": 2, "last": 7},
        {"metric": "tool_call_duration_seconds", "labels": {"tool": "grep"}, "type": "histogram", "samples": 4,
         "sum": 2.95},
        {"metric": "tool_calls_total", "labels": {"status": "ok", "tool": "grep"}, "type": "counter",
         "samples": 3, "sum": 3},
        {"metric": "tool_calls_total", "labels": {"status": "ok", "tool": "read"}, "type": "counter",
         "samples": 2, "sum": 2}], "replay series %s" % r["series"])
    prods = [(p["pid"], p["comm"], p["records"], p["rings"]) for p in r["producers"]]
    check(prods == [(4242, "agent", 22, 1), (5000, "planner", 4, 1)], "producers %s" % prods)
    check(r["gaps"] == [], "no gaps in the good set")

    # ---- replay --emit jsonl: one object per event, names resolved ---------------------
    rc, out, err = run("replay", gseg, "--emit", "jsonl")
    check(rc == 0, "replay --emit exits 0")
    lines = [json.loads(l) for l in out.splitlines()]
    check(len(lines) == eg["events"], "jsonl has %d lines, want %d" % (len(lines), eg["events"]))
    samples = [l for l in lines if l["type"] == "sample"]
    check(samples[0] == {"type": "sample", "ts_ns": eg["first_sample_ts"], "ring": 0, "generation": 1,
                         "seq": eg["first_sample_seq"], "pid": 4242, "metric": "tool_calls_total",
                         "metric_type": "counter", "labels": {"status": "ok", "tool": "grep"}, "value": 1,
                         "op": "add"}, "first sample line %s" % samples[0])
    check([s["op"] for s in samples] == ["add"] * 3 + ["set"] * 2 + ["observe"] * 4 + ["add"] * 2,
          "sample ops")
    starts = [l for l in lines if l["type"] == "span_start"]
    check([(s["name"], s["span_id"], s["parent_span_id"]) for s in starts] ==
          [("orchestration-session", eg["root_span"], None),
           ("coder-execution", eg["child_span"], eg["root_span"]),
           ("tool.Bash", eg["tool_span"], eg["child_span"])], "span_start lines")
    check(all(s["trace_id"] == eg["trace_id"] for s in starts), "trace ids in hex")
    errs = [l for l in lines if l["type"] == "span_error"]
    check(len(errs) == 1 and errs[0]["error_type"] == "timeout" and errs[0]["message"] == "took too long",
          "span_error line %s" % errs)
    attrs = [l for l in lines if l["type"] == "span_attr"]
    check([(a["key"], a["value"], a["event_attr"]) for a in attrs] ==
          [("sessionId", "s-1", False), ("files", 3, True), ("duration_ms", 812.5, False)], "attr lines")
    outf = os.path.join(tmp, "out.jsonl")
    rc, out2, err2 = run("replay", gseg, "--emit", "jsonl", "-o", outf)
    check(rc == 0 and open(outf).read() == out, "--emit -o FILE writes the same lines")
    # --emit raw: byte for byte what stock zstd -d gives for the default encoding
    rawf = os.path.join(tmp, "out.raw")
    rc, out3, err3 = run("replay", gseg, "--emit", "raw", "-o", rawf)
    files = sorted(os.path.join(gseg, f) for f in os.listdir(gseg) if f.endswith(".atseg"))
    want = subprocess.run(["zstd", "-q", "-d", "-c"] + files, capture_output=True).stdout
    got = open(rawf, "rb").read()
    check(rc == 0 and len(got) > 0 and got == want,
          "--emit raw: %d bytes, zstd -d: %d bytes (rc %d, %s)" % (len(got), len(want), rc, err3))

    # ---- gaps ------------------------------------------------------------------------
    rc, out, err = run("replay", os.path.join(tmp, "gap", "segments"), "--json")
    g = json.loads(out)
    check(rc == 0, "a gap alone is not corruption (rc %d)" % rc)
    check(len(g["gaps"]) == 1 and g["gaps"][0]["ring"] == 0 and
          g["gaps"][0]["expected_pos"] == exp["gap"]["expected_pos"] and
          g["gaps"][0]["found_pos"] == exp["gap"]["found_pos"] and g["gaps"][0]["missing_slots"] == 5 and
          g["gaps"][0]["file"] == "0000000000000002.atseg", "gap report %s" % g["gaps"])

    # ---- corrupt frame: reported with file and offset, exit 2 --------------------------
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    src = os.path.join(gseg, sorted(os.listdir(gseg))[0])
    dst = os.path.join(bad, os.path.basename(src))
    data = bytearray(open(src, "rb").read())
    hdr = 8 + int.from_bytes(data[4:8], "little")  # the skippable header frame
    for i in range(hdr + 20, min(hdr + 40, len(data) - 8)):
        data[i] ^= 0x5A
    open(dst, "wb").write(bytes(data))
    rc, out, err = run("replay", dst, "--json")
    check(rc == 2, "corrupt file exits 2 (got %d)" % rc)
    c = json.loads(out)
    check(c["corrupt_frames"] >= 1 and c["ok"] is False, "corrupt frame counted")
    check(any(e["file"] == os.path.basename(dst) and e["offset"] == hdr for e in c["corrupt"]),
          "corrupt frame reported at %s offset %d: %s" % (os.path.basename(dst), hdr, c["corrupt"]))
    rc, out, err = run("replay", dst)
    check(rc == 2 and ("offset %d" % hdr) in out, "human replay names the offset")

    # ---- queries straight from segments (no index yet) -------------------------------------
    rng = ["--start", "1699990000", "--end", "1700000100"]
    rc, out, err = run("--data-dir", good, "stats", "tool_call_duration_seconds", *rng, "--json")
    check(rc == 0, "stats from segments: rc %d %s" % (rc, err))
    s_log = json.loads(out)
    check(s_log["source"] == "segments", "no index: source is segments")
    grp = s_log["groups"][0]
    check(grp["count"] == 4 and grp["min"] == 0.05 and grp["max"] == 2.0, "stats count/min/max %s" % grp)
    check(abs(grp["avg"] - 0.7375) < 1e-12 and abs(grp["p50"] - 0.45) < 1e-12, "stats avg/p50 %s" % grp)
    # buckets {0.1:1, 0.5:1, 1:1, +Inf:1}: rank 2 in (0.1, 0.5] -> 0.5
    check(abs(grp["bucket_p50"] - 0.5) < 1e-12, "bucket_p50 (histogram_quantile) %s" % grp.get("bucket_p50"))
    rc, out, err = run("--data-dir", good, "query", "tool_calls_total", *rng, "--agg", "sum", "--interval", "1h",
                       "--by", "tool", "--json")
    q = json.loads(out)
    sums = {s["labels"]["tool"]: s["points"][0]["value"] for s in q["series"]}
    check(rc == 0 and sums == {"grep": 3, "read": 2}, "query sum by tool %s" % sums)
    check(q["series"][0]["points"][0]["ts_ns"] == 1699999200 * 10**9, "bucket start aligned to the hour")

    # ---- a trace whose start record was lost: what is known, the rest marked ------------------------
    nos = os.path.join(tmp, "nostart")
    rc, out, err = run("--data-dir", nos, "traces", "--json")
    tl = json.loads(out)["traces"] if rc == 0 else []
    mine = [t for t in tl if t["trace_id"] == exp["nostart"]["trace"]]
    check(len(mine) == 1 and mine[0]["start_lost"] and mine[0]["root"] == "(start lost)" and
          abs(mine[0]["start_ns"] - eg["first_ns"]) < 3600 * 10**9 and mine[0]["duration_ns"] < 3600 * 10**9,
          "lost start: start_lost, what is known of start and duration (%s)" % mine)
    rc, out, err = run("--data-dir", nos, "traces")
    check(rc == 0 and "(start lost)" in out and ">= " in out and "2554" not in out,
          "human list marks the lost start: %r" % out)
    rc, out, err = run("--data-dir", nos, "traces", exp["nostart"]["trace"])
    check(rc == 0 and "(start lost)" in out and " h " not in out and "coder-execution" in out,
          "waterfall shows what is known and marks the lost start: %r" % out)

    # ---- replay names what it skips -------------------------------------------------------------
    junk = os.path.join(tmp, "junk")
    os.makedirs(junk)
    open(os.path.join(junk, "notes.txt"), "w").write("x")
    rc, out, err = run("replay", junk)
    check(rc == 2 and "skipped 1 file(s)" in err and "notes.txt" in err and "no segment files" in err,
          "replay of a directory without segment files: exit 2, names the skipped file (%d: %s)" % (rc, err))
    mixed = os.path.join(tmp, "mixed")
    shutil.copytree(gseg, mixed)
    open(os.path.join(mixed, "segment-old.bin"), "w").write("x")
    rc, out, err = run("replay", mixed, "--json")
    check(rc == 0 and "skipped 1 file(s)" in err and "segment-old.bin" in err,
          "replay reads the segments and says what it skipped (%d: %s)" % (rc, err))

    # ---- reindex, then the same from the index --------------------------------------------
    # the default (compact) index keeps no raw rows: the log answers, the same
    rc, out, err = run("--data-dir", good, "reindex")
    check(rc == 0, "reindex rc %d %s" % (rc, err))
    check(os.path.exists(os.path.join(good, "telemetry.db")), "reindex wrote telemetry.db")
    rc, out, err = run("--data-dir", good, "stats", "tool_call_duration_seconds", *rng, "--json")
    s_c = json.loads(out)
    check(s_c["source"] == "segments", "compact index: source is segments")
    check(s_c["groups"] == s_log["groups"], "stats agree between a compact index and segments")
    rc, out, err = run("--data-dir", good, "reindex", "--mode", "full")
    check(rc == 0, "reindex --mode full rc %d %s" % (rc, err))
    rc, out, err = run("--data-dir", good, "stats", "tool_call_duration_seconds", *rng, "--json")
    s_db = json.loads(out)
    check(s_db["source"] == "db", "full index present: source is db")
    check(s_db["groups"] == s_log["groups"], "stats agree between index and segments")
    rc, out, err = run("--data-dir", good, "query", "task_queue_size", *rng, "--json")
    pts = [p["value"] for p in json.loads(out)["series"][0]["points"]]
    check(pts == [5, 7], "raw gauge points %s" % pts)

    rc, out, err = run("--data-dir", good, "query", "task_queue_size", *rng, "--moving-average", "2", "--json")
    pts = [p["value"] for p in json.loads(out)["series"][0]["points"]]
    check(rc == 0 and pts == [5, 6], "movingAverage(2) of 5,7: %s" % pts)
    rc, out, err = run("--data-dir", good, "query", "tool_calls_total{tool=\"grep\"}", *rng, "--rate", "1m",
                       "--json")
    ser = json.loads(out)["series"]
    # cumulative 1,2,3 one microsecond apart, evaluated at each sample over (t-60s, t]: the
    # start is far (>= 1.1 x spacing) so it extrapolates half a spacing (0.5 us; the zero
    # point is further), the end is the sample itself. t=15us: 1 * 1.5us/1us / 60 s;
    # t=16us: 2 * 2.5us/2us / 60 s.
    vals = [p["value"] for p in ser[0]["points"]]
    check(rc == 0 and len(ser) == 1 and len(vals) == 2 and abs(vals[0] - 1.5 / 60) < 1e-9 and
          abs(vals[1] - 2.5 / 60) < 1e-9, "rate(1m) of 1,2,3: %s" % vals)
    rc, out, err = run("--data-dir", good, "query", "tool_call_duration_seconds", *rng, "--anomalies", "1",
                       "--window", "3", "--json")
    an = json.loads(out)["series"][0]["points"]
    # 0.7 after {0.05, 0.2}: mean 0.125, sd 0.075, z = 7.667; 2.0 after {0.05, 0.2, 0.7}:
    # mean 0.31667, population sd 0.27789, z = 6.0576; 0.2 after {0.05} has one reference point
    check(rc == 0 and [a["value"] for a in an] == [0.7, 2.0] and abs(an[0]["score"] - 23 / 3) < 1e-9 and
          abs(an[1]["score"] - 6.0576) < 1e-4, "anomalies: %s" % an)
    idx = os.path.join(tmp, "into.db")
    rc, out, err = run("replay", src, "--into", idx)
    check(rc == 0, "replay FILE --into DB rc %d %s" % (rc, err))
    import sqlite3
    con = sqlite3.connect(idx)
    n_m = con.execute("SELECT COUNT(*) FROM telemetry_metrics").fetchone()[0]
    n_s = con.execute("SELECT COUNT(*) FROM telemetry_spans").fetchone()[0]
    con.close()
    check(n_m == 11 and n_s == 3, "--into index holds 11 samples and 3 spans (%d, %d)" % (n_m, n_s))

    # ---- traces --------------------------------------------------------------------------
    rc, out, err = run("--data-dir", good, "traces", "--json")
    t = json.loads(out)["traces"]
    check(rc == 0 and len(t) == 1 and t[0]["trace_id"] == eg["trace_id"] and t[0]["root"] ==
          "orchestration-session" and t[0]["spans"] == 3 and t[0]["errors"] == 1, "trace list %s" % t)
    check(t[0]["duration_ns"] == eg["root_end_ns"] - eg["root_start_ns"], "trace duration = root span")
    rc, out, err = run("--data-dir", good, "traces", eg["trace_id"][:8])
    check(rc == 0, "waterfall by prefix rc %d %s" % (rc, err))
    wl = out.splitlines()
    names = [l for l in wl if "[" in l and "]" in l and ("session" in l or "execution" in l or "tool." in l)]
    check(len(names) == 3 and "orchestration-session [server]" in names[0] and
          "└ coder-execution [internal]" in names[1] and "└ tool.Bash [client]" in names[2],
          "waterfall tree order/indent: %s" % names)
    check("ERROR" in names[2] and "OK" in names[0], "waterfall status column")
    check(any('sessionId="s-1"' in l for l in wl), "waterfall attributes")
    check(any("code_generation_started" in l and "@" in l for l in wl) and any("files=3" in l for l in wl),
          "waterfall events with attributes")
    check(any("error: timeout" in l for l in wl), "waterfall error message")

    def otlp(source):
        rc2, o, e = run("--data-dir", good, "traces", eg["trace_id"], "--json", "--source", source)
        check(rc2 == 0, "otlp %s rc %d %s" % (source, rc2, e))
        spans = [s for rs in json.loads(o)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
        return {s["spanId"]: s for s in spans}

    for src in ("db", "log"):
        sp = otlp(src)
        check(set(sp) == {eg["root_span"], eg["child_span"], eg["tool_span"]}, "%s: span ids" % src)
        root, child, tool = sp[eg["root_span"]], sp[eg["child_span"]], sp[eg["tool_span"]]
        check("parentSpanId" not in root and child["parentSpanId"] == eg["root_span"] and
              tool["parentSpanId"] == eg["child_span"], "%s: parents" % src)
        check(root["kind"] == 2 and child["kind"] == 1 and tool["kind"] == 3, "%s: kinds" % src)
        check(root["status"] == {"code": 1} and tool["status"]["code"] == 2, "%s: status %s" % (src, tool["status"]))
        check(root["attributes"] == [{"key": "sessionId", "value": {"stringValue": "s-1"}}],
              "%s: root attributes %s" % (src, root["attributes"]))
        check(tool["attributes"] == [{"key": "duration_ms", "value": {"doubleValue": 812.5}}],
              "%s: double attribute %s" % (src, tool["attributes"]))
        ev = child["events"]
        check(len(ev) == 1 and ev[0]["name"] == "code_generation_started" and
              ev[0]["attributes"] == [{"key": "files", "value": {"intValue": "3"}}], "%s: events %s" % (src, ev))
        check(root["startTimeUnixNano"] == str(eg["root_start_ns"]) and
              root["endTimeUnixNano"] == str(eg["root_end_ns"]), "%s: exact ns times" % src)
        exc = [e for e in tool["events"] if e["name"] == "exception"]
        check(len(exc) == 1, "%s: recorded error as an exception event %s" % (src, tool["events"]))
    rc, out, err = run("--data-dir", good, "traces", "0123456789abcdef0123456789abcdef")
    check(rc == 5, "unknown trace exits 5 (got %d)" % rc)

    # ---- metrics / export ---------------------------------------------------------------------
    rc, out, err = run("--data-dir", good, "metrics", "tool_calls_total", "--json")
    m = json.loads(out)["metrics"]
    vals = {s["labels"]["tool"]: s["value"] for s in m[0]["series"]}
    check(rc == 0 and vals == {"grep": 3, "read": 2}, "metrics counter totals %s" % vals)
    rc, out, err = run("--data-dir", good, "metrics", "tool_call_duration_seconds", "--json")
    h = json.loads(out)["metrics"][0]["series"][0]
    check(h["count"] == 4 and abs(h["sum"] - 2.95) < 1e-12 and abs(h["p50"] - 0.5) < 1e-12,
          "metrics histogram %s" % h)
    rc, out, err = run("--data-dir", good, "metrics", "tool_call_duration_seconds")
    check(rc == 0 and "n=4 p50=500 ms p95=1 s p99=1 s" in out, "human metrics line: %r" % out)
    rc, out, err = run("--data-dir", good, "export", "--format", "prometheus")
    check(rc == 0 and 'tool_calls_total{status="ok",tool="grep"} 3' in out and
          'tool_call_duration_seconds_bucket{tool="grep",le="+Inf"} 4' in out, "prometheus export")
    snap = os.path.join(tmp, "snap.json")
    rc, out, err = run("--data-dir", good, "export", "-o", snap)
    check(rc == 0 and json.load(open(snap))["metrics"], "json snapshot written")
    check("(%d bytes, json)" % os.path.getsize(snap) in out, "export reports the file's size: %r" % out)
    rc, out, err = run("--data-dir", good, "export", "--format")
    check(rc == 1 and err.count("\n") == 1, "export --format without a value: one error (%r)" % err)
    rc, out, err = run("--data-dir", good, "query", "tool_calls_total", "--labels", "tool")
    check(rc == 1 and "--by tool" in err and "metric name" not in err, "--labels with a bare name: %r" % err)

    # ---- bulk: index and segments agree on query results -----------------------------------------
    bulk = os.path.join(tmp, "bulk")
    brng = ["--start", "1699999000", "--end", "1700010000"]
    qargs = ["tool_call_duration_seconds", *brng, "--agg", "p95", "--interval", "1m", "--by", "tool", "--json"]
    rc, out_log, err = run("--data-dir", bulk, "query", *qargs)
    check(rc == 0, "bulk query from segments rc %d %s" % (rc, err))
    rc, out, err = run("--data-dir", bulk, "reindex", "--mode", "full")
    check(rc == 0, "bulk reindex")
    rc, out_db, err = run("--data-dir", bulk, "query", *qargs)
    a, b = json.loads(out_log), json.loads(out_db)
    check(a["series"] == b["series"] and len(a["series"]) > 0, "bulk p95 by tool: index == segments")
    for agg in ("rate", "count", "avg"):
        args = ["agent_execution_total", *brng, "--agg", agg, "--interval", "2m", "--json"]
        x = json.loads(run("--data-dir", bulk, "query", *args, "--source", "log")[1])
        y = json.loads(run("--data-dir", bulk, "query", *args, "--source", "db")[1])
        check(x["series"] == y["series"], "bulk %s: index == segments" % agg)

    # ---- query --plot (issue 17): the chart's ranges and legend are the --json numbers ----------------
    import time as _time
    pargs = ["agent_execution_total", *brng, "--agg", "sum", "--interval", "1s"]
    js = json.loads(run("--data-dir", bulk, "query", *pargs, "--json")[1])
    pts = js["series"][0]["points"] if len(js["series"]) == 1 else []
    check(len(pts) > 100, "plot workload: one series of >100 1s buckets (%d)" % len(pts))

    def iso(ns):
        return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(ns // 10**9))
    if pts:
        vals = [p["value"] for p in pts]
        utf = {"LANG": "C.UTF-8", "LC_ALL": "", "LC_CTYPE": ""}
        rc, out, err = run("--data-dir", bulk, "query", *pargs, "--plot", "--width", "60", env_extra=utf)
        lines = out.splitlines()
        check(rc == 0 and lines[0] == "max %g" % max(vals) and lines[2] == "min %g" % min(vals),
              "plot y range %r" % lines[:3])
        row = lines[1] if len(lines) > 1 else ""
        check(row.startswith(" 1 \u2502") and len(row) == 60 and set(row[4:]) <= set("\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588 "),
              "plot row: 56 block columns (buckets averaged) %r" % row)
        # wide enough for one column per 1s bucket: the row is exactly the JSON values on 8 levels
        lo, hi, t0 = min(vals), max(vals), pts[0]["ts_ns"]
        want = [" "] * ((pts[-1]["ts_ns"] - t0) // 10**9 + 1)
        for p in pts:
            want[(p["ts_ns"] - t0) // 10**9] = chr(0x2581 + min(7, int((p["value"] - lo) / (hi - lo) * 7 + 0.5)))
        rc, wout, err = run("--data-dir", bulk, "query", *pargs, "--plot", "--width", "1000", env_extra=utf)
        wl = wout.splitlines()
        check(rc == 0 and len(wl) > 3 and wl[1] == " 1 \u2502" + "".join(want).rstrip()
              and wl[3].endswith("(%d columns)" % len(want)), "plot wide row == JSON values %r" % wl[1:4])
        check(len(lines) > 3 and lines[3] == "   \u2514 %s .. %s (56 columns)" % (iso(pts[0]["ts_ns"]), iso(pts[-1]["ts_ns"])),
              "plot x range %r" % lines[3:4])
        check(len(lines) > 4 and lines[4] == " 1 {}  min %g  max %g  last %g" % (min(vals), max(vals), vals[-1]),
              "plot legend %r" % lines[4:5])
        # ASCII: with --ascii, and when the locale is not UTF-8 (LANG=C); $COLUMNS gives the width
        for extra, env in ((["--ascii", "--width", "60"], utf), ([], {"LANG": "C", "LC_ALL": "", "LC_CTYPE": "", "COLUMNS": "60"})):
            rc, aout, err = run("--data-dir", bulk, "query", *pargs, "--plot", *extra, env_extra=env)
            al = aout.splitlines()
            check(rc == 0 and aout.isascii() and len(al) > 4 and al[1].startswith(" 1 |") and len(al[1]) == 60
                  and al[0] == lines[0] and al[2:3] == lines[2:3] and al[4] == lines[4],
                  "plot ascii %s: %r" % (extra or env["LANG"], al[:5]))
        rc, out, err = run("--data-dir", bulk, "query", "agent_execution_total", *brng, "--plot")
        check(rc == 1 and "--plot goes with --agg or --interval" in err, "--plot without --agg: %r" % err)

    # ---- reindex shows progress on a terminal ------------------------------------------------------
    import pty
    master, slave = pty.openpty()
    env = dict(os.environ, ATEL_SHM="atel-test-cli-%d" % os.getpid(), NO_COLOR="1")
    env.pop("ATEL_DATA_DIR", None)
    p = subprocess.run([ATEL, "--data-dir", bulk, "reindex"], stdout=subprocess.PIPE, stderr=slave, env=env,
                       timeout=300)
    os.close(slave)
    tty = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    os.close(master)
    check(p.returncode == 0 and b"reindex: " in tty and b" events" in tty and b".atseg" in tty,
          "reindex on a terminal shows progress: %r" % tty[-300:])

    # ---- clear ----------------------------------------------------------------------------------
    rc, out, err = run("--data-dir", good, "clear", "traces")
    check(rc == 1 and "--yes" in err, "clear without a terminal needs --yes")
    # on a terminal clear asks; "n" keeps the data, exit 1
    import pty
    master, slave = pty.openpty()
    os.write(master, b"n\n")
    rc, out, err = run("--data-dir", good, "clear", "traces", stdin=slave)
    os.close(slave)
    os.close(master)
    check(rc == 1 and "[y/N]" in err and "not cleared" in err, "terminal confirmation refused: %r" % err)
    rc, out, err = run("--data-dir", good, "traces", "--json")
    check(len(json.loads(out)["traces"]) == 1, "nothing cleared after 'n'")
    rc, out, err = run("--data-dir", good, "clear", "traces", "--yes", "--json")
    # 3 spans, the event, and the exception event of the recorded error
    check(rc == 0 and json.loads(out)["rows_deleted"] == 5, "clear traces deletes 3 spans + 2 events: %s" % out)
    rc, out, err = run("--data-dir", good, "traces", eg["trace_id"], "--source", "db")
    check(rc == 5, "cleared trace is gone from the index")
    rc, out, err = run("--data-dir", good, "traces", eg["trace_id"], "--source", "log")
    check(rc == 0, "...but still in the segments")
    rc, out, err = run("--data-dir", good, "clear", "all", "--yes")
    check(rc == 0 and not os.listdir(gseg) and not os.path.exists(os.path.join(good, "telemetry.db")),
          "clear all removes segments and index")

    # ---- status without a daemon, usage errors ------------------------------------------------------
    rc, out, err = run("--data-dir", good, "status", "--json")
    check(rc == 3 and json.loads(out)["up"] is False, "status: down, exit 3")
    for args, why in [(["frobnicate"], "unknown verb"), (["query"], "missing metric"),
                      (["query", "x", "--agg", "median"], "bad --agg"),
                      (["query", "x", "--interval", "5x"], "bad --interval"),
                      (["query", "x{a=~\"(\"}"], "bad regex"),
                      (["query", "x", "--since", "1h", "--start", "now"], "--since with --start"),
                      (["replay"], "missing PATH"), (["replay", gseg, "--emit", "csv"], "bad --emit"),
                      (["traces", "xyz"], "bad trace id"), (["clear", "everything", "--yes"], "bad clear target"),
                      (["load", "--agents", "0"], "bad --agents"), (["--data-dir"], "missing value"),
                      (["stats", "x", "--agg", "avg"], "stats takes no --agg")]:
        rc, out, err = run(*args)
        check(rc == 1, "%s exits 1 (got %d)" % (why, rc))
        check(err.startswith("atel") or err.startswith("usage"), "%s: message on stderr: %r" % (why, err))
    rc, out, err = run("replay", os.path.join(tmp, "nonexistent"))
    check(rc == 2, "missing replay path exits 2")
    rc, out, err = run("--data-dir", os.path.join(tmp, "empty"), "query", "x")
    check(rc == 2 and "no data" in err, "no data source exits 2")
    rc, out, err = run("load", "--sessions", "1")
    check(rc == 3, "load without ateld exits 3")
    for verb in ("status", "metrics", "export", "query", "traces", "stats", "clear", "replay", "reindex", "load"):
        rc, out, err = run(verb, "--help")
        check(rc == 0 and out.startswith("usage: atel " + verb), "%s --help" % verb)


if __name__ == "__main__":
    main()
