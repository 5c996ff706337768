"""A Prometheus remote-write 1.0 receiver for tests, strict like the real one.

It decodes snappy (block format) and the WriteRequest protobuf by hand (no
third-party module), and stores samples with the rules of Prometheus' TSDB
head as its remote-write handler applies them (storage/remote/write_handler.go):
a whole request is rolled back and answered 400 if any sample is older than
its series' newest (out of order) or has the same timestamp with another
value (duplicate); the same timestamp with the same value is accepted and
stored once. Missing or wrong headers, bad snappy or bad protobuf are 400.
A success is 204. Tests script failures (`fail_next`) to act like a receiver
that is down (503 + Retry-After), rate limiting (429) or refusing (400),
and can hold requests (`delay`) to catch ateld mid-send.
"""
import http.server
import struct
import threading
import time


class Bad(Exception):
    pass


def snappy_decompress(b):
    pos, n, shift = 0, 0, 0
    while True:
        if pos >= len(b):
            raise Bad("snappy: truncated length")
        c = b[pos]
        pos += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            break
    out = bytearray()
    while pos < len(b):
        tag = b[pos]
        pos += 1
        t = tag & 3
        if t == 0:
            ln = tag >> 2
            if ln >= 60:
                nb = ln - 59
                ln = int.from_bytes(b[pos:pos + nb], "little")
                pos += nb
            ln += 1
            if pos + ln > len(b):
                raise Bad("snappy: literal past the end")
            out += b[pos:pos + ln]
            pos += ln
            continue
        if t == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | b[pos]
            pos += 1
        elif t == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(b[pos:pos + 2], "little")
            pos += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(b[pos:pos + 4], "little")
            pos += 4
        if off == 0 or off > len(out):
            raise Bad("snappy: bad copy offset")
        for _ in range(ln):
            out.append(out[-off])
    if len(out) != n:
        raise Bad("snappy: length %d, header says %d" % (len(out), n))
    return bytes(out)


def _varint(b, pos):
    v, shift = 0, 0
    while True:
        if pos >= len(b) or shift > 63:
            raise Bad("protobuf: bad varint")
        c = b[pos]
        pos += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, pos


def _fields(b):
    pos = 0
    while pos < len(b):
        key, pos = _varint(b, pos)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = _varint(b, pos)
        elif wt == 1:
            if pos + 8 > len(b):
                raise Bad("protobuf: truncated fixed64")
            v = b[pos:pos + 8]
            pos += 8
        elif wt == 2:
            ln, pos = _varint(b, pos)
            if pos + ln > len(b):
                raise Bad("protobuf: truncated field")
            v = b[pos:pos + ln]
            pos += ln
        elif wt == 5:
            v = b[pos:pos + 4]
            pos += 4
        else:
            raise Bad("protobuf: wire type %d" % wt)
        yield f, wt, v


def parse_write_request(b):
    """[(labels tuple sorted as sent, [(ts_ms, value)])]"""
    out = []
    for f, wt, v in _fields(b):
        if f != 1 or wt != 2:
            continue
        labels, samples = [], []
        for f2, wt2, v2 in _fields(v):
            if f2 == 1 and wt2 == 2:
                name = value = ""
                for f3, wt3, v3 in _fields(v2):
                    if f3 == 1:
                        name = v3.decode("utf-8")
                    elif f3 == 2:
                        value = v3.decode("utf-8")
                labels.append((name, value))
            elif f2 == 2 and wt2 == 2:
                val, ts = None, 0
                for f3, wt3, v3 in _fields(v2):
                    if f3 == 1 and wt3 == 1:
                        val = struct.unpack("<d", v3)[0]
                    elif f3 == 2 and wt3 == 0:
                        ts = v3 - (1 << 64) if v3 >= 1 << 63 else v3
                samples.append((ts, val))
        if labels != sorted(labels):
            raise Bad("labels not sorted: %s" % labels)
        if len({n for n, _ in labels}) != len(labels):
            raise Bad("duplicate label names: %s" % labels)
        if not any(n == "__name__" for n, _ in labels):
            raise Bad("no __name__: %s" % labels)
        out.append((tuple(labels), samples))
    return out


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.series = {}          # labels -> [(ts, value)]
        self.script = []          # [(status, {header: value})] answered before the rules apply
        self.delay = 0.0
        self.requests = 0
        self.accepted = 0
        self.refused_by_rules = []  # (why) 400s from the TSDB rules: must stay empty in the tests
        self.scripted = {}        # status -> count answered from the script
        self.in_flight = 0
        self.watch = ()           # header names whose values are recorded per request
        self.watched = {}         # name -> set of the values seen (None: a request without it)
        recv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status, headers, msg = recv.handle(self.path, self.headers, body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                data = msg.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client killed mid-request (the kill -9 round) is expected, not an error

        self.httpd = Server(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/api/v1/write" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail_next(self, n, status, headers=None):
        with self.lock:
            self.script += [(status, headers or {})] * n

    def handle(self, path, headers, body):
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            for name in self.watch:
                self.watched.setdefault(name, set()).add(headers.get(name))
        try:
            if self.delay:
                time.sleep(self.delay)
            with self.lock:
                if self.script:
                    st, h = self.script.pop(0)
                    self.scripted[st] = self.scripted.get(st, 0) + 1
                    return st, h, "scripted %d\n" % st
            if path != "/api/v1/write":
                return 404, {}, "not found\n"
            if headers.get("Content-Encoding") != "snappy" or \
                    headers.get("Content-Type") != "application/x-protobuf" or \
                    not headers.get("X-Prometheus-Remote-Write-Version", "").startswith("0.1."):
                return 400, {}, "bad headers %s\n" % dict(headers)
            try:
                req = parse_write_request(snappy_decompress(body))
            except (Bad, UnicodeDecodeError) as e:
                return 400, {}, "bad request: %s\n" % e
            with self.lock:
                staged = {}
                for labels, samples in req:
                    cur = staged.get(labels, list(self.series.get(labels, [])))
                    for ts, v in samples:
                        if cur and ts < cur[-1][0]:
                            self.refused_by_rules.append("out of order %s %d < %d" % (labels, ts, cur[-1][0]))
                            return 400, {}, "out of order sample\n"
                        if cur and ts == cur[-1][0]:
                            if cur[-1][1] != v:
                                self.refused_by_rules.append("duplicate %s at %d" % (labels, ts))
                                return 400, {}, "duplicate sample for timestamp\n"
                            continue
                        cur.append((ts, v))
                    staged[labels] = cur
                self.series.update(staged)
                self.accepted += 1
            return 204, {}, ""
        finally:
            with self.lock:
                self.in_flight -= 1

    def latest_sum(self, name, **match):
        """Sum over series named name (and matching labels) of their newest value."""
        tot = 0.0
        with self.lock:
            for labels, samples in self.series.items():
                d = dict(labels)
                if d.get("__name__") == name and all(d.get(k) == v for k, v in match.items()) and samples:
                    tot += samples[-1][1]
        return tot

    def decreases(self, name):
        """Series of name whose values ever went down (a counter must not)."""
        bad = []
        with self.lock:
            for labels, samples in self.series.items():
                if dict(labels).get("__name__") == name:
                    if any(b[1] < a[1] for a, b in zip(samples, samples[1:])):
                        bad.append(labels)
        return bad
