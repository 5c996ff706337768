# SPDX-License-Identifier: MIT
"""The Python binding against a real ateld (started by run.py, which sets
ATEL_SHM and the ATEL_TEST_* variables): what is recorded through `import atel`
arrives in /metrics and in `atel traces`, exactly."""
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

import atel
from atel import SpanKind, SpanStatusCode, metrics_collector, trace_context

ENV = os.environ


def wait_for(what, pred, timeout=30.0):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = pred()
            if last:
                return last
        except (OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics():
    with urllib.request.urlopen(ENV["ATEL_TEST_METRICS_URL"], timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if line.startswith("#") or not m:
            continue
        out[(m.group(1), frozenset(_LABEL.findall(m.group(2) or "")))] = float(m.group(3))
    return out


def expect_metrics(rows):
    want = {(n, frozenset(l.items())): v for n, l, v in rows}

    def ok():
        got = metrics()
        return all(got.get(k) == v for k, v in want.items())
    try:
        wait_for("metrics", ok)
    except AssertionError:
        got = metrics()
        bad = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
        raise AssertionError("metrics differ (want, got): %r" % bad)


def trace_spans(trace_id, n):
    def get():
        r = subprocess.run([ENV["ATEL_TEST_CLI"], "--data-dir", ENV["ATEL_TEST_DATA_DIR"], "traces", trace_id,
                            "--json"], capture_output=True, text=True)
        if r.returncode != 0:
            return None
        spans = [s for rs in json.loads(r.stdout)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
        return spans if len(spans) >= n and all(s.get("endTimeUnixNano") for s in spans) else None
    return wait_for("%d spans of trace %s" % (n, trace_id), get)


def attr(attrs, key):
    for a in attrs:
        if a["key"] == key:
            v = a["value"]
            if "intValue" in v:
                return int(v["intValue"])
            for k in ("stringValue", "doubleValue", "boolValue"):
                if k in v:
                    return v[k]
    return None


class TestPythonBinding(unittest.TestCase):
    def test_00_attached(self):
        self.assertEqual(atel.init(), 0)
        self.assertTrue(atel.attached())

    def test_metrics(self):
        c = metrics_collector.counter("py_jobs_done_total", {"queue": "build", "lang": "py"})
        for _ in range(1000):
            c.add(1)
        c.inc(0.5)
        self.assertIs(metrics_collector.counter("py_jobs_done_total", {"lang": "py", "queue": "build"}), c)
        metrics_collector.increment_counter("py_jobs_done_total", 2, {"queue": "test", "lang": "py"})
        g = metrics_collector.gauge("py_queue_depth", {"queue": "build"})
        g.set(10)
        g.inc(5)
        g.dec(2)
        metrics_collector.set_gauge("py_temperature", -3.25)
        h = metrics_collector.histogram("py_step_seconds", {"step": "lint"}, [0.1, 1, 10])
        for v in (0.05, 0.5, 0.5, 5, 50):
            h.observe(v)
        expect_metrics([
            ("py_jobs_done_total", {"queue": "build", "lang": "py"}, 1000.5),
            ("py_jobs_done_total", {"queue": "test", "lang": "py"}, 2),
            ("py_queue_depth", {"queue": "build"}, 13),
            ("py_temperature", {}, -3.25),
            ("py_step_seconds_bucket", {"step": "lint", "le": "0.1"}, 1),
            ("py_step_seconds_bucket", {"step": "lint", "le": "1"}, 3),
            ("py_step_seconds_bucket", {"step": "lint", "le": "+Inf"}, 5),
            ("py_step_seconds_count", {"step": "lint"}, 5),
            ("py_step_seconds_sum", {"step": "lint"}, 56.05),
        ])

    def test_helpers(self):
        metrics_collector.track_agent_execution(agent_id="coder-1", agent_type="py-coder", duration=5000,
                                                tokens=1500, success=True, phase="code", model="opus")
        metrics_collector.track_agent_execution(agent_type="py-coder", duration=250, success=False, phase="code")
        metrics_collector.track_tool_usage(tool="PyRead", duration=250, success=True)
        metrics_collector.track_tool_usage(tool="PyRead", duration=1250, success=False, error_type="ENOENT")
        metrics_collector.track_context_usage(used=75000, total=200000, agent_id="py-coder-1", session_id="s-1")
        metrics_collector.track_error(component="py-planner", error_type="timeout", severity="warning")
        metrics_collector.track_task(task_type="py-build", duration=2000, success=False, error_type="exit1")
        metrics_collector.track_queue_size("py-high", 7)
        expect_metrics([
            ("agent_execution_total", {"agent_type": "py-coder", "phase": "code", "status": "success"}, 1),
            ("agent_execution_total", {"agent_type": "py-coder", "phase": "code", "status": "failure"}, 1),
            ("agent_execution_duration_seconds_sum", {"agent_type": "py-coder", "phase": "code"}, 5.25),
            ("agent_tokens_used_total", {"agent_type": "py-coder", "model": "opus"}, 1500),
            ("tool_calls_total", {"tool": "PyRead", "status": "success"}, 1),
            ("tool_call_failure_total", {"tool": "PyRead", "error_type": "ENOENT"}, 1),
            ("tool_call_duration_seconds_sum", {"tool": "PyRead"}, 1.5),
            ("context_window_utilization", {"agent_id": "py-coder-1", "session_id": "s-1"}, 37.5),
            ("context_window_used_tokens", {"agent_id": "py-coder-1"}, 75000),
            ("error_total", {"component": "py-planner", "error_type": "timeout", "severity": "warning"}, 1),
            ("task_failure_total", {"task_type": "py-build", "error_type": "exit1"}, 1),
            ("task_queue_size", {"priority": "py-high"}, 7),
        ])

    def test_invalid_input_is_counted_not_raised(self):
        before = atel.stats()["invalid"]
        bad = metrics_collector.counter("bad name")
        self.assertFalse(bad)
        self.assertIn("bad name", atel.last_error())
        bad.add(1)
        metrics_collector.counter("py_jobs_done_total", {"queue": "build", "lang": "py"}).add(-1)
        metrics_collector.track_tool_usage(tool="PyRead", duration=float("nan"), success=True)
        empty = trace_context.start_trace("")
        self.assertFalse(empty.is_recording)
        trace_context.end_span(empty)
        self.assertGreaterEqual(atel.stats()["invalid"], before + 4)
        # wrong types: counted as invalid values, never raised
        before = atel.stats()["invalid"]
        metrics_collector.counter("py_jobs_done_total", {"queue": "build", "lang": "py"}).add("three")
        metrics_collector.gauge("py_queue_depth", {"queue": "build"}).set(None)
        metrics_collector.histogram("py_step_seconds", {"step": "lint"}, [0.1, 1, 10]).observe([])
        metrics_collector.track_queue_size("py-high", None)
        metrics_collector.track_context_usage(used=None, total="x", agent_id="py-coder-1", session_id="s-1")
        self.assertGreaterEqual(atel.stats()["invalid"], before + 4)

    def test_spans_and_context_managers(self):
        with trace_context.start_trace("py-orchestration", SpanKind.SERVER) as root:
            trace_context.set_attributes(root, {"sessionId": "session-123", "totalAgents": 5, "ratio": 0.25,
                                                "dryRun": False})
            with trace_context.start_span(root, "py-coder") as child:
                self.assertEqual(child.trace_id, root.trace_id)
                self.assertEqual(child.parent_span_id, root.span_id)
                trace_context.add_event(child, "code_generation_started", {"files": 3, "language": "python"})
            with self.assertRaises(KeyError):
                with trace_context.start_span(root, "py-failing") as failing:
                    raise KeyError("missing")
        self.assertTrue(root.ended and child.ended and failing.ended)
        self.assertIsNone(root.parent_span_id)
        spans = {s["name"]: s for s in trace_spans(root.trace_id, 3)}
        self.assertEqual(set(spans), {"py-orchestration", "py-coder", "py-failing"})
        r, c, f = spans["py-orchestration"], spans["py-coder"], spans["py-failing"]
        self.assertEqual(r["kind"], 2)
        self.assertEqual(attr(r["attributes"], "sessionId"), "session-123")
        self.assertEqual(attr(r["attributes"], "totalAgents"), 5)
        self.assertEqual(attr(r["attributes"], "ratio"), 0.25)
        self.assertEqual(attr(r["attributes"], "dryRun"), False)
        self.assertEqual(c["parentSpanId"], root.span_id)
        self.assertEqual(c["status"].get("code", 0), 0)
        ev = [e for e in c["events"] if e["name"] == "code_generation_started"][0]
        self.assertEqual(attr(ev["attributes"], "files"), 3)
        self.assertEqual(f["status"]["code"], 2)
        ex = [e for e in f["events"] if e["name"] == "exception"][0]
        self.assertEqual(attr(ex["attributes"], "exception.type"), "KeyError")
        self.assertEqual(attr(ex["attributes"], "exception.message"), "'missing'")

    def test_propagation(self):
        root = trace_context.start_trace("py-client", SpanKind.CLIENT)
        h = trace_context.inject(root)
        self.assertEqual(h["traceparent"], "00-%s-%s-03" % (root.trace_id, root.span_id))
        ctx = trace_context.extract(h)
        self.assertEqual((ctx.trace_id, ctx.span_id), (root.trace_id, root.span_id))
        server = trace_context.continue_trace(
            trace_context.extract({"TraceParent": h["traceparent"], "tracestate": "vendor=abc, other=1"}),
            "py-server", SpanKind.SERVER)
        self.assertEqual(server.trace_id, root.trace_id)
        self.assertEqual(server.parent_span_id, root.span_id)
        self.assertEqual(trace_context.inject(server)["tracestate"], "vendor=abc,other=1")
        self.assertIsNone(trace_context.extract("00-%s-00f067aa0ba902b7-01" % ("0" * 32)))
        self.assertIsNone(trace_context.extract({}))
        env = trace_context.inject_env(server, {})
        self.assertEqual(env["TRACEPARENT"], trace_context.propagate(server))
        self.assertEqual(trace_context.extract_env({"TRACE_CONTEXT": env["TRACEPARENT"]}).span_id, server.span_id)
        fresh = trace_context.continue_trace(None, "py-fresh")
        self.assertNotEqual(fresh.trace_id, root.trace_id)
        for s in (fresh, server, root):
            trace_context.end_span(s)

    def test_threads_exact(self):
        n, per = 4, 2000

        def work():
            c = metrics_collector.counter("py_thread_ops_total", {"pool": "t"})
            for _ in range(per):
                c.add(1)
        ts = [threading.Thread(target=work) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        expect_metrics([("py_thread_ops_total", {"pool": "t"}, n * per)])
        self.assertEqual(atel.stats()["drops_ring_full"], 0)

    def test_without_sidecar(self):
        code = ("import atel, json\n"
                "from atel import metrics_collector as m, trace_context as t\n"
                "m.counter('x_total').add(1)\n"
                "m.track_tool_usage(tool='Read', duration=1, success=True)\n"
                "s = t.start_trace('no-sidecar'); tp = t.propagate(s); t.end_span(s)\n"
                "st = atel.stats()\n"
                "print(json.dumps({'attached': st['attached'], 'records': st['records'],"
                " 'drops': st['drops_no_sidecar'], 'tp': tp}))\n")
        env = dict(os.environ, ATEL_SHM=os.path.join(ENV["ATEL_TEST_TMP"], "no-such-segment"))
        r = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout)
        self.assertFalse(r["attached"])
        self.assertEqual(r["records"], 0)
        self.assertGreaterEqual(r["drops"], 5)
        self.assertRegex(r["tp"], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-03$")


if __name__ == "__main__":
    unittest.main()
