#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ateld's OTLP/HTTP receiver (issue 19 item 2) against the OpenTelemetry JS
SDK from the npm registry (tests/exporters/otlp-client, installed by
scripts/deps-node.sh), and against hostile requests.

    test_otlp_receiver.py ATEL_CLI     (meson; exit 0 pass, 1 fail, 77 skip)

1. A span tree sent by the SDK's OTLP exporters (http/protobuf and
   http/json, each plain and gzip, streamed with chunked transfer coding)
   arrives whole in `atel traces ID` with the SDK's trace id, span ids,
   parents, kinds, attributes, events and status.
2. SDK metrics (cumulative and delta temporality, two exports each) show on
   /metrics with exact values: counters, an up-down counter, a gauge and an
   explicit-bucket histogram.
3. Hostile requests get the documented status (400 garbage protobuf, bad
   gzip, bad JSON, bad chunked framing; 413 over the cap, also once
   inflated; 415 unknown Content-Type or Content-Encoding; 404 other paths),
   partial success rejects only the invalid spans, ateld keeps running, and
   after a SIGTERM the log still holds everything accepted before.
4. kill -9 of ateld right after a 200 loses none of the accepted spans.
5. Cumulative state across restarts: one SDK process keeps exporting
   cumulative counters and a histogram while ateld is stopped cleanly,
   killed with SIGKILL and restarted; /metrics always equals the SDK's own
   totals (<data_dir>/state/otlp-receiver.streams). A corrupt state file: a
   warning naming it, ateld runs, and the first point after it counts whole
   (documented).
"""
import gzip
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Fail, check, free_port, wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(os.path.join(HERE, "..", "..", "build"))
ATELD = os.path.join(BUILD, "consumer", "ateld")
CLIENT_DIR = os.path.join(HERE, "otlp-client")
MAX_BODY = 65536


def post(port, path, body, ctype, enc=None, timeout=30):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=body, method="POST")
    if ctype:
        req.add_header("Content-Type", ctype)
    if enc:
        req.add_header("Content-Encoding", enc)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def raw(port, data, timeout=30):
    """Sends raw bytes, returns the status code of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.1 (\d+)", buf)
    check(m, "no HTTP status line in %r" % buf[:200])
    return int(m.group(1))


def scrape(port):
    """/metrics as {(name, frozenset(labels)): value}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def key_of(text):
    """'name{a="x",b="y"}' -> (name, frozenset)"""
    m = re.match(r'^([^{]+)(\{(.*)\})?$', text)
    return m.group(1), frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))


class World:
    def __init__(self, cli):
        self.cli = cli
        self.dir = tempfile.mkdtemp(prefix="atel-otlprecv-%d-" % os.getpid())
        self.data = os.path.join(self.dir, "data")
        self.shm = os.path.join(self.dir, "seg")
        self.prom = free_port()
        self.port = free_port()
        cfg = {
            "data_dir": self.data,
            "shm": {"name": self.shm, "rings": 8, "ring_capacity": 4096},
            "storage": {"fsync_interval_ms": 100},
            "index": {"enabled": False},
            "prometheus": {"enabled": True, "port": self.prom, "query_enabled": False},
            "otlp_receiver": {"enabled": True, "port": self.port, "max_body_bytes": MAX_BODY},
        }
        self.cfg_path = os.path.join(self.dir, "ateld.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        self.log = os.path.join(self.dir, "ateld.log")
        self.daemon = None

    def start(self):
        env = dict(os.environ)
        for k in ("ATEL_SHM", "ATEL_DATA_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(k, None)
        with open(self.log, "w") as log:
            self.daemon = subprocess.Popen([ATELD, "--config", self.cfg_path], stdout=log,
                                           stderr=subprocess.STDOUT, env=env)
        wait_for("the receiver's /healthz", lambda: self.healthy(), timeout=60, procs=[("ateld", self.daemon)])

    def healthy(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.port, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def alive(self):
        check(self.daemon.poll() is None, "ateld exited (%s); log:\n%s" % (self.daemon.returncode, self.logtext()))

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        self.daemon.send_signal(signal.SIGTERM)
        rc = self.daemon.wait(120)
        check(rc == 0, "ateld exit status %d after SIGTERM; log:\n%s" % (rc, self.logtext()))

    def atel(self, *args):
        r = subprocess.run([self.cli, "--data-dir", self.data, "--shm", self.shm, "--json"] + list(args),
                           capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout, r.stderr

    def trace(self, tid):
        rc, out, err = self.atel("traces", tid)
        if rc != 0:
            return None
        spans = []
        for rs in json.loads(out).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                spans.extend(ss.get("spans", []))
        return spans

    def node(self, *args):
        r = subprocess.run(["node", os.path.join(CLIENT_DIR, "client.js")] + list(args),
                           capture_output=True, text=True, timeout=180)
        check(r.returncode == 0, "client.js %s: exit %d\nstdout: %s\nstderr: %s\nateld log:\n%s" %
              (" ".join(args), r.returncode, r.stdout[-2000:], r.stderr[-2000:], self.logtext()))
        return json.loads(r.stdout.strip().splitlines()[-1])

    def close(self):
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Steps:
    """client.js steps: one SDK process exporting cumulative points on command."""

    def __init__(self, w, tag):
        self.w = w
        self.p = subprocess.Popen(["node", os.path.join(CLIENT_DIR, "client.js"), "steps",
                                   "http://127.0.0.1:%d" % w.port, "proto", "none", tag],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cmd(self, c):
        self.p.stdin.write(c + "\n")
        self.p.stdin.flush()
        r, _, _ = select.select([self.p.stdout], [], [], 180)
        line = self.p.stdout.readline() if r else ""
        check(line, "client.js steps: no answer to %s (exit %s): %s" % (c, self.p.poll(), self.p.stderr.read()
                                                                         if self.p.poll() is not None else ""))
        return json.loads(line)

    def export(self, c="add"):
        """One round; an export that failed is flushed again (the SDK's cumulative values: a retry)."""
        r = self.cmd(c)
        for _ in range(5):
            if r["code"] == 0:
                break
            time.sleep(1)
            r = self.cmd("flush")
        check(r["code"] == 0, "the SDK's export failed: %s; ateld log:\n%s" % (r, self.w.logtext()))
        return {key_of(k): v for k, v in r["expect"].items()}

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def wait_exact(w, expect, what):
    def exact():
        got = scrape(w.prom)
        return all(got.get(k) == v for k, v in expect.items())
    try:
        wait_for("exact values on /metrics " + what, exact, timeout=60, procs=[("ateld", w.daemon)])
    except Fail:
        got = scrape(w.prom)
        raise Fail("%s: metrics differ (got, want): %s" % (what, {"%s%s" % (k[0], sorted(k[1])): (got.get(k), v)
                                                                  for k, v in expect.items() if got.get(k) != v}))


def state_restarts(w):
    """5. cumulative streams stay exact through clean restarts, kill -9 and a corrupt state file."""
    state = os.path.join(w.data, "state", "otlp-receiver.streams")
    w.start()
    sdk = Steps(w, "st")
    try:
        wait_exact(w, sdk.export(), "after the first export")
        wait_exact(w, sdk.export(), "after the second export")
        w.stop()
        check(os.path.isfile(state), "no state file %s after a clean stop" % state)
        w.start()
        wait_exact(w, sdk.export(), "after a clean restart")
        for i in range(2):
            w.daemon.kill()
            w.daemon.wait()
            w.start()
            wait_exact(w, sdk.export(), "after kill -9 #%d" % (i + 1))
        # an export the SDK repeats (same cumulative values) adds nothing, also across kill -9
        w.daemon.kill()
        w.daemon.wait()
        w.start()
        wait_exact(w, sdk.export("flush"), "after kill -9 and a repeated export")
        wait_exact(w, sdk.export(), "after the export that follows the repeated one")
        # a corrupt state file: a warning that names it, ateld runs, the first point counts whole
        w.stop()
        with open(state, "r+b") as f:
            f.seek(20)
            f.write(b"garbage")
        w.start()
        check(state in w.logtext() and "checksum mismatch" in w.logtext(),
              "no warning naming the corrupt state file; log:\n%s" % w.logtext())
        before = sdk.export("flush")
        # /metrics showed the SDK's totals T before; T is counted whole once more
        wait_exact(w, {k: 2 * v for k, v in before.items()},
                   "after a corrupt state file (documented: the first point counts whole)")
        after = sdk.export()
        wait_exact(w, {k: v + before[k] for k, v in after.items()}, "after the export that follows")
        w.alive()
        w.stop()
    finally:
        sdk.close()
    print("cumulative state: /metrics equals the SDK's totals after a clean restart, 3 x kill -9 and a "
          "repeated export; a corrupt state file: warning, the first point counts whole once")


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        (t, v), = a["value"].items()
        out[a["key"]] = v
    return out


def check_tree(w, sent, tag):
    """The trace the SDK sent, whole and exact."""
    tid = sent["trace_id"]
    spans = wait_for("trace %s with 4 spans" % tid, lambda: (lambda s: s if s and len(s) == 4 else None)(w.trace(tid)),
                     timeout=60, procs=[("ateld", w.daemon)])
    by = {s["name"]: s for s in spans}
    check(sorted(by) == sorted(x["name"] for x in sent["spans"]), "span names %s" % sorted(by))
    for x in sent["spans"]:
        s = by[x["name"]]
        check(s["traceId"] == tid, "%s: trace id %s, sent %s" % (x["name"], s["traceId"], tid))
        check(s["spanId"] == x["span_id"], "%s: span id %s, sent %s" % (x["name"], s["spanId"], x["span_id"]))
        check(s.get("parentSpanId", "") == x["parent"], "%s: parent %s, sent %s" %
              (x["name"], s.get("parentSpanId"), x["parent"]))
    root, plan, call, write = by["session-" + tag], by["plan"], by["tool.call"], by["write"]
    check([root["kind"], plan["kind"], call["kind"], write["kind"]] == [2, 1, 3, 4],
          "kinds %s" % [root["kind"], plan["kind"], call["kind"], write["kind"]])
    svc = "otlp-client-" + tag
    want_root = {"agent.id": "agent-" + tag, "tokens": "1234", "ratio": 0.25, "ok": True,
                 "tools": '["Read","Edit"]', "service.name": svc}
    check(attrs(root) == want_root, "root attributes %s" % attrs(root))
    check(attrs(call) == {"tool": "Bash", "service.name": svc}, "tool.call attributes %s" % attrs(call))
    check(plan.get("status", {}).get("code") == 1, "plan status %s" % plan.get("status"))
    check(call.get("status") == {"code": 2, "message": "tool failed"} or
          call.get("status") == {"message": "tool failed", "code": 2}, "tool.call status %s" % call.get("status"))
    ev = plan.get("events", [])
    check(len(ev) == 1 and ev[0]["name"] == "step" and attrs(ev[0]) == {"step.n": "1", "step.name": "think"},
          "plan events %s" % ev)
    ev = call.get("events", [])
    check(len(ev) == 1 and ev[0]["name"] == "exception" and
          attrs(ev[0]) == {"exception.type": "ToolError", "exception.message": "exit status 2"},
          "tool.call events %s" % ev)
    for s in spans:
        check(int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 1.6e18, "times of %s" % s["name"])
    return tid


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if not shutil.which("node"):
        print("SKIP: node is not installed (scripts/deps.sh installs it)")
        return 77
    check(os.path.isdir(os.path.join(CLIENT_DIR, "node_modules", "@opentelemetry", "sdk-trace-base")),
          "the JS SDK is not installed: run scripts/deps-node.sh tests/exporters/otlp-client "
          "(make test does, through scripts/deps.sh)")
    w = World(os.path.abspath(sys.argv[1]))
    try:
        w.start()
        # 1. traces: each protocol and compression of the SDK
        tids = []
        for proto, comp in (("proto", "none"), ("proto", "gzip"), ("json", "none"), ("json", "gzip")):
            tag = proto + comp
            sent = w.node("traces", "http://127.0.0.1:%d" % w.port, proto, comp, tag)
            tids.append((check_tree(w, sent, tag), tag))
        print("traces: 4 trees of 4 spans arrived whole (proto/json x none/gzip)")

        # 2. metrics: cumulative (protobuf) and delta (JSON, gzip)
        expect = {}
        for proto, comp, temp, tag in (("proto", "none", "cumulative", "pc"), ("json", "gzip", "delta", "jd"),
                                       ("proto", "gzip", "delta", "pd")):
            sent = w.node("metrics", "http://127.0.0.1:%d" % w.port, proto, comp, temp, tag)
            for k, v in sent["expect"].items():
                expect[key_of(k)] = v

        def metrics_exact():
            got = scrape(w.prom)
            return all(got.get(k) == v for k, v in expect.items())
        try:
            wait_for("exact metric values on /metrics", metrics_exact, timeout=60, procs=[("ateld", w.daemon)])
        except Fail:
            got = scrape(w.prom)
            raise Fail("metrics differ: %s" % {"%s%s" % (k[0], sorted(k[1])): (got.get(k), v)
                                                for k, v in expect.items() if got.get(k) != v})
        print("metrics: %d series exact on /metrics (counters, up-down counter, gauge, histogram)" % len(expect))

        # 3. hostile requests
        p = w.port
        st, h, b = post(p, "/v1/traces", b"\xff\xff\xff\xff\x0f", "application/x-protobuf")
        check(st == 400 and b"protobuf" in b, "garbage protobuf: %d %r" % (st, b[:200]))
        st, h, b = post(p, "/v1/traces", b"not gzip at all", "application/x-protobuf", "gzip")
        check(st == 400 and b"gzip" in b, "bad gzip: %d %r" % (st, b[:200]))
        st, h, b = post(p, "/v1/metrics", b'{"resourceMetrics": [', "application/json")
        check(st == 400 and b"JSON" in b, "bad JSON: %d %r" % (st, b[:200]))
        st, h, b = post(p, "/v1/traces", b'{"resourceSpans": {"x": 1}}', "application/json")
        check(st == 400 and b"resourceSpans" in b, "JSON of the wrong shape: %d %r" % (st, b[:200]))
        st, h, b = post(p, "/v1/traces", b"x" * (MAX_BODY + 1), "application/x-protobuf")
        check(st == 413, "oversized body: %d" % st)
        bomb = gzip.compress(b"\0" * (MAX_BODY * 4))
        check(len(bomb) < MAX_BODY, "the bomb is small")
        st, h, b = post(p, "/v1/traces", bomb, "application/x-protobuf", "gzip")
        check(st == 413, "inflating past the cap: %d %r" % (st, b[:200]))
        st, h, b = post(p, "/v1/traces", b"{}", "text/plain")
        check(st == 415, "wrong content type: %d" % st)
        st, h, b = post(p, "/v1/traces", b"{}", "application/json", "br")
        check(st == 415, "unknown content encoding: %d" % st)
        st, h, b = post(p, "/v1/logs", b"{}", "application/json")
        check(st == 404, "/v1/logs: %d" % st)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/v1/traces" % p, timeout=10)
            check(False, "GET /v1/traces answered 2xx")
        except urllib.error.HTTPError as e:
            check(e.code == 405 and e.headers.get("Allow") == "POST", "GET /v1/traces: %d" % e.code)
        check(raw(p, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n") == 400, "bad chunk size")
        check(raw(p, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n") == 400,
              "chunked and Content-Length together")
        check(raw(p, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 10)) == 413, "chunk over the cap")
        w.alive()
        # partial success: one good span, one with an all-zero trace id, one without a name
        now = time.time_ns()
        good_tid = "5" * 32

        def span(tid, sid, name):
            return {"traceId": tid, "spanId": sid, "name": name, "kind": 1,
                    "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000)}
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            span(good_tid, "6" * 16, "kept"), span("0" * 32, "7" * 16, "zero-trace"),
            span(good_tid, "8" * 16, "")]}]}]}).encode()
        st, h, b = post(p, "/v1/traces", body, "application/json")
        ans = json.loads(b)
        check(st == 200 and ans["partialSuccess"]["rejectedSpans"] == "2" and
              "trace id" in ans["partialSuccess"]["errorMessage"], "partial success: %d %r" % (st, b))
        check(h.get("Content-Type") == "application/json", "answer type %s" % h.get("Content-Type"))
        st, h, b = post(p, "/v1/traces", gzip.compress(body), "application/json", "gzip")
        check(st == 200 and json.loads(b)["partialSuccess"]["rejectedSpans"] == "2", "gzip partial: %r" % b)
        kept = wait_for("the kept span", lambda: w.trace(good_tid), timeout=60, procs=[("ateld", w.daemon)])
        check(len(kept) == 1 and kept[0]["name"] == "kept", "kept spans %s" % kept)
        # metrics: a summary and a type clash with the SDK's counter are rejected, the gauge kept
        body = json.dumps({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "otel.kept.gauge", "gauge": {"dataPoints": [{"timeUnixNano": str(now), "asDouble": 2.5}]}},
            {"name": "otel.jobs.pc", "gauge": {"dataPoints": [{"timeUnixNano": str(now), "asInt": "1"}]}},
            {"name": "otel.summary", "summary": {"dataPoints": [{"timeUnixNano": str(now), "count": "1"}]}},
        ]}]}]}).encode()
        st, h, b = post(p, "/v1/metrics", body, "application/json")
        ans = json.loads(b)
        check(st == 200 and ans["partialSuccess"]["rejectedDataPoints"] == "2", "metrics partial: %d %r" % (st, b))
        expect[("otel_kept_gauge", frozenset())] = 2.5
        # a full success answers an empty ExportTraceServiceResponse in protobuf
        w.alive()
        check(w.healthy(), "the receiver still answers")

        # self-metrics: exact counts of what the receiver answered
        # (/metrics reuses a body for 100 ms: wait past that instead of reading a cached one)
        time.sleep(0.3)
        got = scrape(w.prom)
        c400 = got.get(("atel_otlp_receiver_requests_total", frozenset({("code", "400")})))
        c413 = got.get(("atel_otlp_receiver_requests_total", frozenset({("code", "413")})))
        c415 = got.get(("atel_otlp_receiver_requests_total", frozenset({("code", "415")})))
        c404 = got.get(("atel_otlp_receiver_requests_total", frozenset({("code", "404")})))
        check((c400, c413, c415, c404) == (4, 1, 2, 1), "requests by code 400/413/415/404: %s; %s" %
              ([c400, c413, c415, c404], sorted((k, v) for k, v in got.items() if "otlp_receiver" in k[0])))
        check(got.get(("atel_otlp_receiver_spans_rejected_total", frozenset())) == 4,
              "spans rejected %s" % got.get(("atel_otlp_receiver_spans_rejected_total", frozenset())))
        check(got.get(("atel_otlp_receiver_data_points_rejected_total", frozenset())) == 2,
              "points rejected %s" % got.get(("atel_otlp_receiver_data_points_rejected_total", frozenset())))
        check(got.get(("atel_otlp_receiver_spans_accepted_total", frozenset())) == 18,
              "spans accepted %s" % got.get(("atel_otlp_receiver_spans_accepted_total", frozenset())))

        # the status file (atel status) counts what /metrics counts
        def status_rx():
            try:
                with open(os.path.join(w.data, "ateld.status.json")) as f:
                    rx = json.load(f).get("otlp_receiver", {})
            except (OSError, ValueError):
                return None
            want = (18, 4, 2, {"400": 4, "413": 1, "415": 2, "404": 1})
            have = (rx.get("spans_accepted"), rx.get("spans_rejected"), rx.get("data_points_rejected"),
                    {k: rx.get("requests", {}).get(k) for k in ("400", "413", "415", "404")})
            return rx if have == want and rx.get("enabled") is True else None
        last = {}
        try:
            wait_for("status file's otlp_receiver = /metrics' counts", lambda: last.update(
                     s=status_rx()) or last["s"], timeout=30, procs=[("ateld", w.daemon)])
        except Fail:
            with open(os.path.join(w.data, "ateld.status.json")) as f:
                raise Fail("status file's otlp_receiver: %s" % json.load(f).get("otlp_receiver"))
        rc, out, err = w.atel("status")
        check(rc == 0 and (json.loads(out).get("daemon") or {}).get("otlp_receiver", {}).get("spans_accepted") == 18,
              "atel status --json has no otlp_receiver: rc %d %s" % (rc, (out + err)[-500:]))
        wait_for("the kept gauge and unchanged SDK metrics", metrics_exact, timeout=60, procs=[("ateld", w.daemon)])

        # the log keeps everything after a clean stop (read offline)
        w.stop()
        for tid, tag in tids:
            spans = w.trace(tid)
            check(spans and len(spans) == 4, "after stop: trace %s has %s" % (tid, spans and len(spans)))
        print("hostile requests answered 400/413/415/404, partial success exact, ateld kept running; "
              "the log holds every accepted span after SIGTERM")

        # 4. a 200 is a promise: kill -9 of ateld right after it loses nothing (the ring
        # stays in the segment; the next ateld re-attaches and drains it)
        w.start()
        now = time.time_ns()
        tid9 = "9" * 32
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": tid9, "spanId": "%016x" % (i + 1), "name": "k9-%d" % i, "kind": 1,
             "parentSpanId": "" if i == 0 else "%016x" % 1,
             "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000 + i)} for i in range(50)]}]}]}).encode()
        st, h, b = post(w.port, "/v1/traces", body, "application/json")
        check(st == 200 and json.loads(b) == {}, "before kill -9: %d %r" % (st, b))
        w.daemon.kill()
        w.daemon.wait()
        w.start()
        spans = wait_for("the 50 spans accepted before kill -9",
                         lambda: (lambda s: s if s and len(s) == 50 else None)(w.trace(tid9)),
                         timeout=60, procs=[("ateld", w.daemon)])
        check(sorted(x["name"] for x in spans) == sorted("k9-%d" % i for i in range(50)), "names after kill -9")
        st, h, b = post(w.port, "/v1/traces", body, "application/json")
        check(st == 200, "the restarted receiver accepts: %d" % st)
        w.stop()
        print("kill -9 right after a 200: all 50 spans in the log after the restart")

        # 5. cumulative state across restarts
        state_restarts(w)
        return 0
    finally:
        w.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        print("FAIL: %s" % e)
        sys.exit(1)
