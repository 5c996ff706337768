#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Spans per second ateld's OTLP receiver accepts (issue 19 item 2): 200
ExportTraceServiceRequests of 512 spans (two attributes each) over one
keep-alive connection, http/protobuf then http/json; checks the receiver's
own counters afterwards. Not part of make test or make bench.

    bench/otlp_receiver_rate.py [BUILD_DIR]     (default: build)
"""
import http.client, json, os, socket, struct, subprocess, sys, time, gzip, tempfile
ATELD = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "consumer", "ateld")
d = tempfile.mkdtemp(prefix="otlprecv-measure-")
def fp():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
port, prom = fp(), fp()
cfg = {"data_dir": d + "/data", "shm": {"name": d + "/seg", "rings": 8, "ring_capacity": 16384},
       "index": {"enabled": False}, "prometheus": {"port": prom, "query_enabled": False},
       "otlp_receiver": {"enabled": True, "port": port}}
json.dump(cfg, open(d + "/c.json", "w"))
p = subprocess.Popen([ATELD, "--config", d + "/c.json"], stderr=open(d + "/log", "w"))
time.sleep(1.5)
def varint(v):
    o = b""
    while v >= 0x80: o += bytes([v & 0x7f | 0x80]); v >>= 7
    return o + bytes([v])
ld = lambda f, b: varint(f << 3 | 2) + varint(len(b)) + b
f64 = lambda f, v: varint(f << 3 | 1) + struct.pack("<Q", v)
now = time.time_ns()
def pb_body(n, k):
    spans = b""
    for i in range(n):
        spans += ld(2, ld(1, struct.pack(">QQ", k + 1, 7)) + ld(2, struct.pack(">Q", i + 1)) + ld(5, b"tool.call") +
                    varint(6 << 3) + varint(3) + f64(7, now) + f64(8, now + 1000) +
                    ld(9, ld(1, b"tool") + ld(2, ld(1, b"Bash"))) + ld(9, ld(1, b"tokens") + ld(2, varint(3 << 3) + varint(1234))))
    return ld(1, ld(2, spans))
def js_body(n, k):
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "%016x%016x" % (k + 1, 7), "spanId": "%016x" % (i + 1), "name": "tool.call", "kind": 3,
         "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1000),
         "attributes": [{"key": "tool", "value": {"stringValue": "Bash"}}, {"key": "tokens", "value": {"intValue": "1234"}}]}
        for i in range(n)]}]}]}).encode()
for name, ctype, mk in (("protobuf", "application/x-protobuf", pb_body), ("json", "application/json", js_body)):
    bodies = [mk(512, k) for k in range(200)]
    c = http.client.HTTPConnection("127.0.0.1", port)
    t0 = time.time(); n503 = 0
    for b in bodies:
        c.request("POST", "/v1/traces", body=b, headers={"Content-Type": ctype})
        r = c.getresponse(); r.read()
        if r.status == 503: n503 += 1
        elif r.status != 200: print("status", r.status)
    dt = time.time() - t0
    print("%s: %d requests x 512 spans in %.2f s = %.0f spans/s (%d x 503), body %d bytes" %
          (name, len(bodies), dt, 200 * 512 / dt, n503, len(bodies[0])))
time.sleep(1)
import urllib.request
txt = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % prom).read().decode()
print([l for l in txt.splitlines() if l.startswith("atel_otlp_receiver_spans") or l.startswith("atel_records_drained") or 'code="503"' in l])
p.terminate(); p.wait()
import shutil
shutil.rmtree(d, ignore_errors=True)
