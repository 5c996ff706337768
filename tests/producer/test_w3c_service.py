#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Loopback test of tests/producer/w3c_service: the request shape the W3C
Trace Context conformance harness uses (POST [{"url", "arguments"}]), with
the harness's cases re-enacted against a local sink, plus a two-hop chain
(service -> service -> sink).  Usage: test_w3c_service.py W3C_SERVICE_BINARY
"""
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading

TID = "12345678901234567890123456789012"
PID = "1234567890123456"
TP_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

received = []
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        with lock:
            received.append((self.path, self.headers.items(), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def post(port, headers, calls):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    body = json.dumps(calls).encode()
    c.putrequest("POST", "/test")
    for k, v in headers:
        c.putheader(k, v)
    c.putheader("Content-Type", "application/json")
    c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def trace_headers(items):
    tps = [v for k, v in items if k.lower() == "traceparent"]
    tss = [v for k, v in items if k.lower() == "tracestate"]
    return tps, tss


def parse_ts(values):
    out = {}
    for v in values:
        for m in v.split(","):
            m = m.strip()
            if m:
                k, _, val = m.partition("=")
                out[k] = val
    return out


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run_case(svc_port, sink_port, name, headers, count=1):
    """Sends headers to the service, asks for `count` callbacks; returns [(traceparent match, tracestate dict)]."""
    with lock:
        received.clear()
    calls = [{"url": "http://127.0.0.1:%d/%s/%d" % (sink_port, name, i), "arguments": []} for i in range(count)]
    status = post(svc_port, headers, calls)
    check(status == 200, "%s: service answered %d" % (name, status))
    with lock:
        got = list(received)
    check(len(got) == count, "%s: %d callbacks, expected %d" % (name, len(got), count))
    out = []
    for _, items, body in got:
        tps, tss = trace_headers(items)
        check(len(tps) == 1, "%s: %d traceparent headers in the callback" % (name, len(tps)))
        m = TP_RE.match(tps[0]) if tps else None
        check(m is not None, "%s: callback traceparent %r is not version 00" % (name, tps))
        check(body == b"[]", "%s: callback body %r, expected the arguments []" % (name, body))
        out.append((m, parse_ts(tss)))
    return out


def main():
    svc_bin = sys.argv[1]
    env = dict(os.environ, ATEL_SHM="/nonexistent-dir/atel-w3c-service-test")
    svc = subprocess.Popen([svc_bin, "0"], stdout=subprocess.PIPE, env=env, text=True)
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        line = svc.stdout.readline()
        m = re.match(r"listening on (\d+)", line)
        if not m:
            print("service did not start:", line)
            return 1
        sp, kp = int(m.group(1)), sink.server_address[1]
        tp_ok = "00-%s-%s-01" % (TID, PID)

        def same_trace(name, headers):
            (m1, ts), = run_case(sp, kp, name, headers)
            check(m1 and m1.group(1) == TID, "%s: trace id not kept" % name)
            check(m1 and m1.group(2) != PID, "%s: parent id not replaced" % name)
            return ts

        def new_trace(name, headers, bad_tid=TID):
            (m1, ts), = run_case(sp, kp, name, headers)
            check(m1 and m1.group(1) != bad_tid and m1.group(1) != "0" * 32, "%s: trace id not restarted" % name)
            return ts

        (m1, ts), = run_case(sp, kp, "none", [])
        check(m1 is not None and not ts, "none: no tracestate expected")
        same_trace("valid", [("traceparent", tp_ok)])
        for name in ("TraceParent", "TrAcEpArEnT", "TRACEPARENT"):
            same_trace("casing-" + name, [(name, tp_ok)])
        new_trace("dup", [("traceparent", "00-%s-%s-01" % ("1" * 32, PID)), ("traceparent", tp_ok)])
        new_trace("name-dash", [("trace-parent", tp_ok)])
        new_trace("name-dot", [("trace.parent", tp_ok)])
        same_trace("v-cc", [("traceparent", "cc-%s-%s-01" % (TID, PID))])
        same_trace("v-cc-future", [("traceparent", "cc-%s-%s-01-what-the-future-will-be-like" % (TID, PID))])
        new_trace("v-cc-dot", [("traceparent", "cc-%s-%s-01.what-the-future-will-be-like" % (TID, PID))])
        new_trace("v-00-trailing", [("traceparent", tp_ok + ".")])
        new_trace("v-00-future", [("traceparent", tp_ok + "-what-the-future-will-be-like")])
        new_trace("v-ff", [("traceparent", "ff-%s-%s-01" % (TID, PID))])
        new_trace("tid-zero", [("traceparent", "00-%s-%s-01" % ("0" * 32, PID))], "0" * 32)
        new_trace("pid-zero", [("traceparent", "00-%s-%s-01" % (TID, "0" * 16))])
        new_trace("flags-long", [("traceparent", tp_ok + "1")])
        new_trace("upper", [("traceparent", "00-%s-%s-01" % ("ABCDEF" + TID[6:], PID))], "abcdef" + TID[6:])
        for ows in (" " + tp_ok, "\t" + tp_ok, tp_ok + " ", tp_ok + "\t", "\t " + tp_ok + " \t"):
            same_trace("ows", [("traceparent", ows)])
        tp00 = "00-%s-%s-00" % (TID, PID)
        ts = same_trace("ts-inherit", [("traceparent", tp00), ("tracestate", "foo=1,bar=2")])
        check(ts == {"foo": "1", "bar": "2"}, "ts-inherit: %r" % ts)
        ts = same_trace("ts-multi", [("traceparent", tp00), ("tracestate", "foo=1,bar=2"),
                                     ("tracestate", "rojo=1,congo=2"), ("tracestate", "baz=3")])
        check(list(ts) == ["foo", "bar", "rojo", "congo", "baz"], "ts-multi: order %r" % list(ts))
        ts = same_trace("ts-empty", [("traceparent", tp00), ("tracestate", ""), ("tracestate", "foo=1")])
        check(ts == {"foo": "1"}, "ts-empty: %r" % ts)
        # the suite's STRICT_LEVEL=2 cases, as of w3c/trace-context test/test.py (Level 2 key grammar)
        for bad in ("FOO=1", "foo.bar=1", "foo =1", "@foo=1,bar=2", "foo=bar=baz", "foo=,bar=3"):
            ts = same_trace("ts-bad", [("traceparent", tp00), ("tracestate", bad)])
            check(ts == {}, "ts-bad %r: not discarded: %r" % (bad, ts))
        for key in ("foo@", "foo@@bar", "foo@bar@baz"):  # test_tracestate_key_illegal_vendor_format
            ts = same_trace("ts-at", [("traceparent", tp00), ("tracestate", key + "=1,bar=2")])
            check(ts.get(key) == "1" and ts.get("bar") == "2", "ts-at %r: %r" % (key, ts))
        # test_tracestate_duplicated_keys: inherited, one of the duplicates kept
        for hdrs in ([("tracestate", "foo=1,foo=1")], [("tracestate", "foo=1,foo=2")],
                     [("tracestate", "foo=1"), ("tracestate", "foo=1")],
                     [("tracestate", "foo=1"), ("tracestate", "foo=2")]):
            ts = same_trace("ts-dup", [("traceparent", tp00)] + hdrs)
            check(ts.get("foo") in ("1", "2") and len(ts) == 1, "ts-dup %r: %r" % (hdrs, ts))
        members = ["bar%02d=%02d" % (i, i) for i in range(1, 34)]
        ts = same_trace("ts-32", [("traceparent", tp00), ("tracestate", ",".join(members[:32]))])
        check(len(ts) == 32, "ts-32: %d members" % len(ts))
        ts = same_trace("ts-33", [("traceparent", tp00), ("tracestate", ",".join(members))])
        check(ts == {}, "ts-33: not discarded")
        ts = same_trace("ts-key-256", [("traceparent", tp00), ("tracestate", "foo=1"), ("tracestate", "z" * 256 + "=1")])
        check(ts.get("foo") == "1", "ts-key-256")
        ts = same_trace("ts-key-257", [("traceparent", tp00), ("tracestate", "foo=1"), ("tracestate", "z" * 257 + "=1")])
        check(ts == {}, "ts-key-257")
        # test_tracestate_key_length_limit: '@' within the 256 characters
        for key in ("t" * 241 + "@" + "v" * 14, "t" * 242 + "@v", "t@" + "v" * 254):
            ts = same_trace("ts-key-at", [("traceparent", tp00), ("tracestate", "foo=1"), ("tracestate", key + "=1")])
            check(ts.get("foo") == "1" and ts.get(key) == "1", "ts-key-at %d: %r" % (len(key), sorted(ts)))
        ts = same_trace("ts-key-at-257", [("traceparent", tp00), ("tracestate", "foo=1"),
                                          ("tracestate", "t" * 250 + "@" * 7 + "=1")])
        check(ts == {}, "ts-key-at-257")
        ts = new_trace("ts-no-tp", [("tracestate", "foo=1")])
        check(ts == {}, "ts-no-tp: tracestate kept without a traceparent")
        # three callbacks: one trace, three different parent ids
        res = run_case(sp, kp, "multi", [("traceparent", tp_ok)], 3)
        check(len({m.group(1) for m, _ in res if m}) == 1, "multi: trace ids differ")
        check(len({m.group(2) for m, _ in res if m}) == 3, "multi: parent ids not distinct")
        # a chain: harness -> service -> service -> sink keeps the trace and the tracestate
        with lock:
            received.clear()
        chain = [{"url": "http://127.0.0.1:%d/hop" % sp,
                  "arguments": [{"url": "http://127.0.0.1:%d/end" % kp, "arguments": []}]}]
        post(sp, [("traceparent", tp_ok), ("tracestate", "congo=t61rcWkgMzE")], chain)
        with lock:
            got = list(received)
        check(len(got) == 1, "chain: %d callbacks" % len(got))
        if got:
            tps, tss = trace_headers(got[0][1])
            m = TP_RE.match(tps[0]) if tps else None
            check(m and m.group(1) == TID and m.group(2) != PID, "chain: %r" % tps)
            check(parse_ts(tss) == {"congo": "t61rcWkgMzE"}, "chain: tracestate %r" % tss)
    finally:
        svc.kill()
        svc.wait()
        sink.shutdown()
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
