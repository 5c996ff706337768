# SPDX-License-Identifier: MIT
"""A loopback OTLP/HTTP collector for tests (run with /usr/bin/python3).

otlp_collector.py --record FILE [--port-file FILE] [--port N] [--script LIST]

Listens on 127.0.0.1 (port N, or a free one written to --port-file), accepts
POST /v1/traces and /v1/metrics in http/protobuf and http/json, gzip or not,
decodes every body strictly with the official protos (otlp_proto.py; a body
that does not decode gets 400, as from a real collector) and appends one JSON
line per request to FILE:
  {"n", "t" (monotonic s), "path", "kind", "content_type", "content_encoding",
   "headers" {lowercase name: value}, "bytes", "valid", "error", "status",
   "items" (summaries: spans with hex ids/names/status/attributes/events, or
   metrics with name/type/points)}
Responses follow --script, a comma list consumed one per request (then 200):
  200            success (empty Export*ServiceResponse)
  partial:N[:M]  200 with partial_success rejected N, error_message M
  429:S          429 with "Retry-After: S" (seconds)
  429d:S         429 with Retry-After as an HTTP date S seconds ahead
  502 503 504    that status
  400            400 with a text body
  400echo        400 whose body echoes the Authorization header (a server
                 that leaks it: the exporter must not log it)
  close          drop the connection without an answer
Responses use the request's encoding (JSON or protobuf).
"""
import argparse
import email.utils
import gzip
import json
import os
import signal
import socket
import sys
import time
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otlp_proto  # noqa: E402

ARGS = None
STATE = {"n": 0, "script": []}
LOCK = threading.Lock()  # one thread per connection (keep-alive per signal)


def record(entry):
    with open(ARGS.record, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def status_of(step):
    code = step.split(":", 1)[0]
    return {"close": 0, "200": 200, "partial": 200, "429": 429, "429d": 429,
            "502": 502, "503": 503, "504": 504}.get(code, 400)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _send(self, status, body=b"", ctype="application/x-protobuf", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        enc = self.headers.get("Content-Encoding", "")
        kind = "traces" if self.path.endswith("/v1/traces") else "metrics" if self.path.endswith("/v1/metrics") else ""
        is_json = ctype.startswith("application/json")
        entry = {"n": 0, "t": time.monotonic(), "path": self.path, "kind": kind, "content_type": ctype,
                 "content_encoding": enc, "headers": {k.lower(): v for k, v in self.headers.items()},
                 "bytes": len(raw), "valid": False, "error": "", "items": []}
        with LOCK:
            n = STATE["n"]
            STATE["n"] += 1
            step = STATE["script"].pop(0) if STATE["script"] else "200"
        entry["n"] = n
        try:
            body = gzip.decompress(raw) if enc == "gzip" else raw
            if not kind:
                raise ValueError("unknown path %s" % self.path)
            if is_json:
                msg = otlp_proto.parse_json(body.decode("utf-8"), kind)
            elif ctype.startswith("application/x-protobuf"):
                msg = otlp_proto.parse_pb(body, kind)
            else:
                raise ValueError("unsupported Content-Type %r" % ctype)
            entry["items"] = otlp_proto.summarize(msg, kind)
            entry["valid"] = True
        except Exception as e:  # noqa: BLE001
            entry["error"] = "%s: %s" % (type(e).__name__, e)
            step = "400"
        # record before answering: once the exporter has its answer, the
        # record must already be there for the test to read
        entry["status"] = status_of(step)
        with LOCK:
            record(entry)
        self.answer(step, kind, is_json)

    def answer(self, step, kind, is_json):
        ctype = "application/json" if is_json else "application/x-protobuf"
        parts = step.split(":", 2)
        code = parts[0]
        if code == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return 0
        if code in ("200", "partial"):
            resp_cls = otlp_proto.load()[kind + "_resp"] if kind else None
            body = b"{}" if is_json else b""
            if code == "partial" and resp_cls:
                r = resp_cls()
                rejected = int(parts[1])
                text = parts[2] if len(parts) > 2 else "rejected by test collector"
                if kind == "traces":
                    r.partial_success.rejected_spans = rejected
                else:
                    r.partial_success.rejected_data_points = rejected
                r.partial_success.error_message = text
                if is_json:
                    from google.protobuf import json_format
                    body = json_format.MessageToJson(r).encode()
                else:
                    body = r.SerializeToString()
            self._send(200, body, ctype)
            return 200
        if code == "429":
            self._send(429, b"slow down", "text/plain", {"Retry-After": parts[1]})
            return 429
        if code == "429d":
            when = email.utils.formatdate(time.time() + int(parts[1]), usegmt=True)
            self._send(429, b"slow down", "text/plain", {"Retry-After": when})
            return 429
        if code in ("502", "503", "504"):
            self._send(int(code), b"unavailable", "text/plain")
            return int(code)
        if code == "400echo":
            auth = self.headers.get("Authorization", "")
            self._send(400, ("echo: %s" % auth).encode(), "text/plain")
            return 400
        self._send(400, b"bad request from test collector", "text/plain")
        return 400


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--record", required=True)
    p.add_argument("--port-file")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--script", default="")
    ARGS = p.parse_args()
    STATE["script"] = [s for s in ARGS.script.split(",") if s]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    otlp_proto.load()
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, ARGS.port_file)
    try:
        srv.serve_forever()
    finally:
        import shutil
        shutil.rmtree(otlp_proto.load()["dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
