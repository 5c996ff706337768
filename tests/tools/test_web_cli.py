#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The CLI side of issue 17 on a real ateld with a known workload (tagent:
2 threads x 50 iterations, 3 spans per trace, every 10th tool call an error).

    test_web_cli.py trace_formats TAGENT ATEL
        `atel traces ID --format chrome`: the Chrome trace event JSON Perfetto
        and about:tracing open (every span a complete event on its pid/tid
        track, nested in its parent's interval, attributes and ids as args,
        span events as instants, process and thread names as metadata);
        `--format otlp-json`: parsed strictly into ExportTraceServiceRequest
        compiled from third_party/opentelemetry-proto (unknown fields refused),
        with the spans and parent links the index holds.
    test_web_cli.py top TAGENT ATEL [compact|full]
        `atel top --once --json` and the text snapshot count the workload;
        then the live view in tmux (if installed): it draws, 's' switches the
        sort, 'q' quits.
The index mode (last argument) is compact by default, as in the default
config: top's tables then come from the segment log, and the index on disk
is checked to hold no raw rows.
Exit 0 pass, 1 fail, 77 skip (protoc/python3-protobuf or tmux missing, where needed).
"""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "exporters"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Fail, check, wait_for  # noqa: E402
import test_webui  # noqa: E402


def error_trace(w):
    errs = test_webui.api(w.port, "/api/ui/traces?limit=1000&status=error&name=agent-iteration")["traces"]
    check(errs, "no error trace")
    return errs[0]["trace_id"], test_webui.api(w.port, "/api/ui/trace?id=" + errs[0]["trace_id"])


def trace_formats(w):
    tid, api_trace = error_trace(w)
    by = {s["span_id"]: s for s in api_trace["spans"]}

    # -- chrome
    doc = json.loads(w.atel("traces", tid, "--format", "chrome"))
    evs = doc["traceEvents"]
    check(isinstance(evs, list) and doc.get("displayTimeUnit") in ("ns", "ms"), "top-level shape")
    for e in evs:
        check(e["ph"] in ("X", "i", "M", "s", "f"), "phase %r" % e["ph"])
        check(isinstance(e["name"], str) and isinstance(e["pid"], int) and isinstance(e["tid"], int),
              "name/pid/tid types: %s" % e)
        check(isinstance(e["ts"], (int, float)) and e["ts"] >= 0, "ts %r" % e.get("ts"))
    xs = [e for e in evs if e["ph"] == "X"]
    check(len(xs) == 3 and {e["args"]["span_id"] for e in xs} == set(by), "one X event per span")
    procs = {e["pid"] for e in evs if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]) for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    check(procs == {e["pid"] for e in xs} and threads == {(e["pid"], e["tid"]) for e in xs},
          "process and thread tracks named")
    xby = {e["args"]["span_id"]: e for e in xs}
    for sid, e in xby.items():
        s = by[sid]
        check(e["name"] == s["name"] and e["pid"] == s["pid"] and e["tid"] == s["tid"], "span %s" % s["name"])
        check(abs(e["dur"] * 1000 - s["duration_ns"]) <= 1, "dur of %s" % s["name"])
        check(abs(e["ts"] * 1000 - s["offset_ns"]) <= 1, "ts of %s" % s["name"])
        if s["parent_span_id"]:
            p = xby[s["parent_span_id"]]
            check(e["args"]["parent_span_id"] == s["parent_span_id"], "parent id arg")
            check(e["ts"] >= p["ts"] - 1e-3 and e["ts"] + e["dur"] <= p["ts"] + p["dur"] + 1e-3,
                  "%s nested in its parent's interval (a viewer stacks it)" % s["name"])
        for k, v in s["attributes"].items():
            check(e["args"].get(k) == v, "attribute %s of %s: %r != %r" % (k, s["name"], e["args"].get(k), v))
    tool = [e for e in xs if e["name"] == "tool-call"][0]
    check(tool["args"]["status"] in ("ERROR", "error") and tool["args"]["status_message"] == "tool failed",
          "error status as args: %s" % tool["args"])
    inst = [e for e in evs if e["ph"] == "i"]
    check(sorted(e["name"] for e in inst) == ["exception", "tokens_streamed"] and all(e["s"] == "t" for e in inst),
          "span events as instants: %s" % inst)
    exc = [e for e in inst if e["name"] == "exception"][0]
    check(exc["args"]["exception.type"] == "ToolError" and exc["args"]["span_id"] == tool["args"]["span_id"],
          "the recorded error on the tool-call track: %s" % exc)

    # -- otlp-json, against the vendored protos
    try:
        import otlp_proto
        otlp_proto.load()
    except (ImportError, OSError, subprocess.CalledProcessError) as e:
        print("SKIP otlp-json validation: %s" % e)
        return 77
    text = w.atel("traces", tid, "--format", "otlp-json")
    msg = otlp_proto.parse_json(text, "traces")
    spans = otlp_proto.summarize(msg, "traces")
    check(len(spans) == 3 and {s["spanId"] for s in spans} == set(by), "OTLP spans")
    for s in spans:
        check(s["traceId"] == tid, "traceId")
        check(s["parentSpanId"] == (by[s["spanId"]]["parent_span_id"] or ""), "parentSpanId of %s" % s["name"])
    check({s["name"]: s["status"] for s in spans}["tool-call"] == 2, "ERROR status code 2")
    # the text form still works, and --format without an id is a usage error
    check("tool-call" in w.atel("traces", tid, "--format", "text"), "text waterfall")
    r = subprocess.run([w.cli, "--data-dir", w.data, "traces", "--format", "chrome"], capture_output=True)
    check(r.returncode == 1, "--format without TRACE_ID: exit %d" % r.returncode)
    r = subprocess.run([w.cli, "--data-dir", w.data, "traces", tid, "--format", "svg"], capture_output=True)
    check(r.returncode == 1, "--format svg: exit %d" % r.returncode)
    return 0


def top(w):
    n = test_webui.THREADS * test_webui.ITERS
    # the status file is rewritten every second: wait until it has seen the workload
    wait_for("the status file to count the workload", lambda: json.loads(
        w.atel("top", "--once", "--json", "--window", "1h"))["records_drained"] >= n * 3, 60)
    snap = json.loads(w.atel("top", "--once", "--json", "--window", "1h"))
    m = {x["name"]: x for x in snap["metrics"]}
    check(m["tagent_iterations_total"]["samples"] == n, "top: samples of tagent_iterations_total %s" %
          m.get("tagent_iterations_total"))
    check(abs(m["tagent_iterations_total"]["samples_per_s"] - n / 3600.0) < 1e-9, "samples/s over the window")
    check(sum(a["samples"] for a in snap["agents"]) >= n * 3, "per-producer samples %s" % snap["agents"])
    check(all(v == 0 for v in snap["drops"].values()), "drops %s" % snap["drops"])
    check(isinstance(snap["rings"], list) and all(0 <= r["fill"] <= 1 for r in snap["rings"]), "rings %s" % snap["rings"])
    check(snap["records_drained"] >= n * 3, "records drained %s" % snap["records_drained"])
    f = json.loads(w.atel("top", "--once", "--json", "--window", "1h", "--filter", "tagent_seq"))
    check([x["name"] for x in f["metrics"]] == ["tagent_seq"], "--filter")
    # per agent type: the synthetic swarm's executions by agent_type
    r = subprocess.run([w.cli, "--shm", w.shm, "--data-dir", w.data, "load", "--agents", "1", "--threads", "1",
                        "--sessions", "3", "--json"], capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "atel load: %s" % r.stderr)
    by_type = {k: v["success"] + v["failure"] for k, v in json.loads(r.stdout)["agent_executions"]["by_type"].items()}

    def types_seen():
        t = json.loads(w.atel("top", "--once", "--json", "--window", "1h"))["agent_types"]
        return {x["agent_type"]: x["executions"] for x in t} == by_type
    wait_for("top's executions per agent_type == atel load's report %s" % by_type, types_seen, 120)
    text = w.atel("top", "--window", "1h")  # stdout is a pipe: one snapshot
    check("AGENT TYPE" in text, "agent types in the text snapshot")
    check("tagent_iterations_total" in text and "RING" in text and "drops:" in text, "text snapshot:\n" + text)
    r = subprocess.run([w.cli, "--data-dir", w.data, "top", "--interval", "1ms"], capture_output=True)
    check(r.returncode == 1, "bad interval is a usage error")

    if not shutil.which("tmux"):
        print("SKIP the live view: tmux is not installed")
        return 0
    sock = "atel-top-%d" % os.getpid()
    tm = ["tmux", "-L", sock]
    subprocess.run(tm + ["new-session", "-d", "-x", "160", "-y", "50", "-s", "top",
                         "%s --data-dir %s top --window 1h --interval 200ms; echo TOP-EXITED $?; sleep 60" %
                         (w.cli, w.data)], check=True)
    try:
        def pane():
            return subprocess.run(tm + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                                  text=True).stdout
        wait_for("atel top to draw", lambda: "tagent_iterations_total" in pane() and "sort rate" in pane(), 60)
        subprocess.run(tm + ["send-keys", "-t", "top", "s"], check=True)
        wait_for("the sort to switch", lambda: "sort name" in pane(), 30)
        subprocess.run(tm + ["send-keys", "-t", "top", "q"], check=True)
        wait_for("atel top to quit", lambda: "TOP-EXITED 0" in pane(), 30)
    finally:
        subprocess.run(tm + ["kill-server"], capture_output=True)
    return 0


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("trace_formats", "top"):
        print("usage: test_web_cli.py trace_formats|top TAGENT ATEL [compact|full]", file=sys.stderr)
        return 1
    mode = sys.argv[4] if len(sys.argv) > 4 else "compact"  # the default config's index.mode
    w = test_webui.World(sys.argv[2], sys.argv[3], mode)
    rc = 1
    try:
        w.start()
        w.workload()
        rc = trace_formats(w) if sys.argv[1] == "trace_formats" else top(w)
        w.check_index_mode()  # compact: no raw rows on disk, so top counted from the log
        print("%s (index.mode %s): ok" % (sys.argv[1], mode))
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
    finally:
        if not w.stop() and rc in (0, 77):
            rc = 1
        if rc == 0:
            shutil.rmtree(w.dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
