# SPDX-License-Identifier: MIT
"""Validates the OTLP encoders against the official protocol definitions.

test_otlp_payloads.py GEN: runs GEN (otlp_payload_gen) into a temp dir, then
 1. trusts the validator: the vendored examples/*.json parse with it, and a
    payload that breaks each OTLP/JSON rule is rejected;
 2. decodes every .pb with `protoc --decode` (the reference decoder) and with
    python3-protobuf, parses every .json strictly (unknown fields rejected,
    OTLP rules checked), and checks decoded fields against the known input;
 3. checks that the protobuf and JSON encodings decode to the same message.
Exit 0 pass, 1 fail.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import otlp_proto  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def protoc_decode(path, kind):
    vendor = otlp_proto.vendor_dir()
    typ = {"traces": "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
           "metrics": "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"}[kind]
    proto = {"traces": "opentelemetry/proto/collector/trace/v1/trace_service.proto",
             "metrics": "opentelemetry/proto/collector/metrics/v1/metrics_service.proto"}[kind]
    with open(path, "rb") as f:
        r = subprocess.run(["protoc", "--decode=" + typ, "-I", vendor, proto], stdin=f,
                           capture_output=True, cwd=vendor)
    check(r.returncode == 0, "protoc --decode %s: %s" % (path, r.stderr.decode(errors="replace")))
    return r.stdout.decode()


def validator_self_test():
    ex = os.path.join(otlp_proto.vendor_dir(), "examples")
    for name, kind in (("trace.json", "traces"), ("metrics.json", "metrics")):
        with open(os.path.join(ex, name)) as f:
            text = f.read()
        try:
            m = otlp_proto.parse_json(text, kind, lowercase_ids=False)
            check(m.ByteSize() > 0, "vendor example %s parsed empty" % name)
        except Exception as e:  # noqa: BLE001
            check(False, "vendor example %s rejected: %s" % (name, e))
    good = ('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"%s","spanId":"%s",'
            '"startTimeUnixNano":%s,"kind":%s}]}]}]}')
    ok = good % ("00" * 16, "11" * 8, '"1"', "1")
    otlp_proto.parse_json(ok, "traces")
    bad = {
        "uppercase hex id": good % ("AB" * 16, "11" * 8, '"1"', "1"),
        "short id": good % ("00" * 15, "11" * 8, '"1"', "1"),
        "int64 as number": good % ("00" * 16, "11" * 8, "1", "1"),
        "enum as name": good % ("00" * 16, "11" * 8, '"1"', '"SPAN_KIND_INTERNAL"'),
        "unknown field": ok.replace('"kind":1', '"kind":1,"bogus":2'),
        "snake_case key": ok.replace('"kind":1', '"trace_state":""'),
    }
    for what, text in bad.items():
        try:
            otlp_proto.parse_json(text, "traces")
            check(False, "validator accepted a payload with %s" % what)
        except (otlp_proto.OtlpJsonError, ValueError):
            pass


def attrs(kvs):
    return {kv.key: kv.value for kv in kvs}


def check_spans(m, fmt):
    tag = "spans.%s" % fmt
    check(len(m.resource_spans) == 1, tag + ": one ResourceSpans")
    rs = m.resource_spans[0]
    ra = attrs(rs.resource.attributes)
    check(ra["service.name"].string_value == "svc-test", tag + ": service.name")
    check(ra["deployment.environment"].string_value == "ci", tag + ": resource attribute")
    ss = rs.scope_spans[0]
    check(ss.scope.name == "atel" and ss.scope.version == "0.1.0", tag + ": scope name/version")
    sp = ss.spans
    check(len(sp) == 6, tag + ": 6 spans, got %d" % len(sp))
    s0, s1 = sp[0], sp[1]
    check(s0.trace_id.hex() == "101112131415161718191a1b1c1d1e1f", tag + ": trace id")
    check(s0.span_id.hex() == "a0a1a2a3a4a5a6a7", tag + ": span id")
    check(s0.parent_span_id == b"", tag + ": root has no parent")
    check(s0.kind == 2 and s0.flags == 1, tag + ": kind SERVER, flags sampled")
    check(s0.start_time_unix_nano == 1700000000000000000 and s0.end_time_unix_nano == 1700000001000000000,
          tag + ": span times")
    check(s0.status.code == 1 and s0.status.message == "", tag + ": status OK")
    check(s1.parent_span_id.hex() == "a0a1a2a3a4a5a6a7", tag + ": parent id")
    check(s1.name == "coder-execution" and s1.kind == 1, tag + ": child name/kind")
    check(s1.status.code == 2 and s1.status.message == "disk full", tag + ": status ERROR + message")
    a = attrs(s1.attributes)
    check(a["s"].string_value == 'h\u00e9llo "q" \\ \n\t\x01', tag + ": string attr with escapes")
    check(a["i"].int_value == -9007199254740993, tag + ": negative int64 beyond 2^53 exact")
    check(a["big"].int_value == 2**63 - 1, tag + ": INT64_MAX")
    check(a["d"].double_value == 0.1, tag + ": double attr")
    check(a["b"].bool_value is True and a["b"].WhichOneof("value") == "bool_value", tag + ": bool attr")
    check(math.isnan(a["nan"].double_value), tag + ": NaN attr")
    check(a["inf"].double_value == -math.inf, tag + ": -Inf attr")
    check([e.name for e in s1.events] == ["code_generation_started", "exception"], tag + ": events")
    ea = attrs(s1.events[0].attributes)
    check(ea["files"].int_value == 3 and ea["language"].string_value == "c", tag + ": event attributes")
    xa = attrs(s1.events[1].attributes)
    check(xa["exception.type"].string_value == "ToolError" and
          xa["exception.message"].string_value == "disk full", tag + ": exception event")
    check(s1.events[1].time_unix_nano == 1700000000600000000, tag + ": event time")
    check([s.kind for s in sp[2:5]] == [3, 4, 5], tag + ": CLIENT/PRODUCER/CONSUMER kinds")
    check(sp[2].status.code == 0, tag + ": UNSET status")
    check(sp[5].name == "bad\ufffd\ufffd-utf8\ufffd\ufffd", tag + ": invalid UTF-8 repaired (one U+FFFD per bad byte), got %r" % sp[5].name)
    check(sp[5].kind == 0, tag + ": unspecified kind")


def check_metrics(m, fmt):
    tag = "metrics.%s" % fmt
    sm = m.resource_metrics[0].scope_metrics[0]
    check(sm.scope.name == "atel", tag + ": scope")
    ms = {x.name: x for x in sm.metrics}
    check(sorted(ms) == ["agent_execution_total", "context_window_utilization", "tool_call_duration_seconds",
                         "zz_number_formatting"], tag + ": metric names")
    zz = [p.as_double for p in ms["zz_number_formatting"].gauge.data_points]
    check(len(zz) == 400 and zz[0] == 0.1 + 0.2 and zz[1] == 1e-5 and zz[5] == 5e-324,
          tag + ": number formatting values")
    c = ms["agent_execution_total"]
    check(c.WhichOneof("data") == "sum", tag + ": counter is a Sum")
    check(c.sum.is_monotonic and c.sum.aggregation_temporality == 2, tag + ": monotonic cumulative")
    check(c.description == "Total agent executions", tag + ": description")
    p = c.sum.data_points
    check(len(p) == 2 and p[0].as_double == 42 and p[1].as_double == 0.5, tag + ": counter values")
    check(p[0].start_time_unix_nano == 1000 and p[0].time_unix_nano == 1700000002000000000, tag + ": times")
    check({kv.key: kv.value.string_value for kv in p[0].attributes} ==
          {"agent_type": "coder", "phase": "code", "status": "success"}, tag + ": labels as attributes")
    g = ms["context_window_utilization"]
    check(g.WhichOneof("data") == "gauge", tag + ": gauge")
    gv = [x.as_double for x in g.gauge.data_points]
    check(len(gv) == 3 and math.isnan(gv[0]) and gv[1] == math.inf and gv[2] == -math.inf,
          tag + ": NaN/Inf/-Inf gauge values, got %r" % gv)
    h = ms["tool_call_duration_seconds"]
    check(h.WhichOneof("data") == "histogram" and h.histogram.aggregation_temporality == 2,
          tag + ": cumulative histogram")
    check(h.unit == "s", tag + ": unit s")
    hp = h.histogram.data_points[0]
    check(hp.count == 10 and hp.sum == 12.25, tag + ": count/sum")
    check(list(hp.explicit_bounds) == [0.1, 0.5, 1, 5], tag + ": bounds")
    check(list(hp.bucket_counts) == [1, 2, 3, 0, 4], tag + ": bucket counts (one longer than bounds)")
    check(len(hp.bucket_counts) == len(hp.explicit_bounds) + 1, tag + ": bucketCounts length")


def main():
    out = tempfile.mkdtemp(prefix="atel-otlp-payloads-%d-" % os.getpid())
    try:
        return run(sys.argv[1], out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(gen, out):
    otlp_proto.load(os.path.join(out, "py"))
    subprocess.run([gen, out], check=True)
    validator_self_test()
    decoded = {}
    for base, kind in (("spans", "traces"), ("metrics", "metrics"), ("big_spans", "traces")):
        pb_path = os.path.join(out, base + ".pb")
        text = protoc_decode(pb_path, kind)
        check(len(text) > 0, base + ".pb: protoc decoded nothing")
        with open(pb_path, "rb") as f:
            mpb = otlp_proto.parse_pb(f.read(), kind)
        with open(os.path.join(out, base + ".json")) as f:
            js = f.read()
        try:
            json.loads(js)
        except ValueError as e:
            check(False, base + ".json is not valid JSON: %s" % e)
            continue
        try:
            mjs = otlp_proto.parse_json(js, kind)
        except otlp_proto.OtlpJsonError as e:
            check(False, base + ".json rejected: %s" % e)
            continue
        decoded[base] = (mpb, mjs)
        # NaN != NaN, so compare the serialized forms
        check(mpb.SerializeToString(deterministic=True) == mjs.SerializeToString(deterministic=True),
              base + ": protobuf and JSON encodings decode to different messages")
    if "spans" in decoded:
        check_spans(decoded["spans"][0], "pb")
        check_spans(decoded["spans"][1], "json")
        txt = protoc_decode(os.path.join(out, "spans.pb"), "traces")
        check('name: "coder-execution"' in txt and "code: STATUS_CODE_ERROR" in txt,
              "protoc text output has the span name and status")
    if "metrics" in decoded:
        check_metrics(decoded["metrics"][0], "pb")
        check_metrics(decoded["metrics"][1], "json")
        txt = protoc_decode(os.path.join(out, "metrics.pb"), "metrics")
        check("aggregation_temporality: AGGREGATION_TEMPORALITY_CUMULATIVE" in txt and
              "is_monotonic: true" in txt, "protoc text output has temporality and monotonicity")
    if "big_spans" in decoded:
        sp = decoded["big_spans"][0].resource_spans[0].scope_spans[0].spans
        check(len(sp) == 300 and all(s.name == "n" * 300 for s in sp), "big: 300 spans with 300-byte names")
        check(len({s.span_id for s in sp}) == 300, "big: distinct span ids")
    print("%d passed, %d failed" % (1 if not FAILS else 0, 1 if FAILS else 0))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
