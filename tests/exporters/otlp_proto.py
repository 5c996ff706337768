# SPDX-License-Identifier: MIT
"""OTLP message classes compiled at run time from the vendored official
.proto files (third_party/opentelemetry-proto), and a strict
validator of OTLP/JSON payloads.

Used by test_otlp_payloads.py and otlp_collector.py. Needs Debian's
python3-protobuf and protoc (run with /usr/bin/python3).
"""
import base64
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile

PROTOS = [
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/metrics/v1/metrics.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
]

# OTLP/JSON fields whose protobuf type is a 64-bit integer: the JSON mapping
# writes them as decimal strings (ints are accepted by protobuf parsers, but
# the OTLP spec and the exporter use strings).
INT64_KEYS = {"timeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "count",
              "bucketCounts", "asInt", "intValue", "zeroCount", "observedTimeUnixNano"}
ID_KEYS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
ENUM_KEYS = {"kind", "code", "aggregationTemporality"}


def vendor_dir():
    third_party = os.environ.get("ATEL_THIRD_PARTY_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "third_party")
    return os.path.join(third_party, "opentelemetry-proto")


_mods = None


def load(tmpdir=None):
    """Compiles the protos with protoc --python_out into a temp dir and
    imports them. Returns a dict of the request/response classes."""
    global _mods
    if _mods:
        return _mods
    vendor = vendor_dir()
    out = tmpdir or tempfile.mkdtemp(prefix="atel-otlp-py-%d-" % os.getpid())
    os.makedirs(out, exist_ok=True)
    subprocess.run(["protoc", "-I", vendor, "--python_out=" + out] + PROTOS,
                   check=True, cwd=vendor)
    sys.path.insert(0, out)
    ts = importlib.import_module("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    ms = importlib.import_module("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")
    _mods = {
        "traces": ts.ExportTraceServiceRequest,
        "metrics": ms.ExportMetricsServiceRequest,
        "traces_resp": ts.ExportTraceServiceResponse,
        "metrics_resp": ms.ExportMetricsServiceResponse,
        "dir": out,
    }
    return _mods


class OtlpJsonError(Exception):
    pass


def _check_rules(node, path, errors, lower=True):
    """OTLP/JSON rules that json_format does not enforce: hex ids, int64 as
    strings, enums as integers, lowerCamelCase keys."""
    if isinstance(node, dict):
        for k, v in node.items():
            p = path + "." + k
            if "_" in k:
                errors.append("%s: key is not lowerCamelCase" % p)
            if k in ID_KEYS:
                n = ID_KEYS[k]
                pat = "[0-9a-f]{%d}" if lower else "[0-9a-fA-F]{%d}"
                if not isinstance(v, str) or not (v == "" or re.fullmatch(pat % (2 * n), v)):
                    errors.append("%s: expected %d-byte %shex id, got %r" % (p, n, "lowercase " if lower else "", v))
            elif k in INT64_KEYS:
                vals = v if isinstance(v, list) else [v]
                for x in vals:
                    if not isinstance(x, str) or not re.fullmatch(r"-?[0-9]+", x):
                        errors.append("%s: expected a decimal string (64-bit integer), got %r" % (p, x))
            elif k in ENUM_KEYS:
                if not isinstance(v, int) or isinstance(v, bool):
                    errors.append("%s: expected an integer enum, got %r" % (p, v))
            else:
                _check_rules(v, p, errors, lower)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_rules(v, "%s[%d]" % (path, i), errors, lower)


def _hex_ids_to_base64(node):
    # OTLP/JSON deviates from the protobuf JSON mapping for ids: hex, not
    # base64. Convert so json_format can parse strictly.
    if isinstance(node, dict):
        for k, v in list(node.items()):
            if k in ID_KEYS and isinstance(v, str):
                node[k] = base64.b64encode(bytes.fromhex(v)).decode()
            else:
                _hex_ids_to_base64(v)
    elif isinstance(node, list):
        for v in node:
            _hex_ids_to_base64(v)


def parse_json(text, kind, check_rules=True, lowercase_ids=True):
    """Parses an OTLP/JSON request strictly (unknown fields rejected) into
    the protobuf message. Raises OtlpJsonError listing every violation."""
    from google.protobuf import json_format
    cls = load()[kind]
    obj = json.loads(text)
    errors = []
    if check_rules:
        _check_rules(obj, "$", errors, lowercase_ids)
    if errors:
        raise OtlpJsonError("; ".join(errors[:20]))
    _hex_ids_to_base64(obj)
    msg = cls()
    try:
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise OtlpJsonError("json_format: %s" % e)
    return msg


def parse_pb(data, kind):
    cls = load()[kind]
    msg = cls()
    msg.ParseFromString(data)
    return msg


def summarize(msg, kind):
    """A small JSON-able summary: spans (hex ids, names, status, attributes)
    or metrics (name, type, points)."""
    out = []
    if kind == "traces":
        for rs in msg.resource_spans:
            res = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out.append({
                        "traceId": s.trace_id.hex(), "spanId": s.span_id.hex(),
                        "parentSpanId": s.parent_span_id.hex(), "name": s.name,
                        "kind": s.kind, "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                        "status": s.status.code, "statusMessage": s.status.message,
                        "attributes": {kv.key: _anyvalue(kv.value) for kv in s.attributes},
                        "events": [{"name": e.name, "time": e.time_unix_nano,
                                    "attributes": {kv.key: _anyvalue(kv.value) for kv in e.attributes}}
                                   for e in s.events],
                        "scope": ss.scope.name, "service": res.get("service.name", ""),
                    })
    else:
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    pts = getattr(m, which).data_points
                    out.append({"name": m.name, "type": which, "points": len(pts)})
    return out


def _anyvalue(v):
    w = v.WhichOneof("value")
    x = getattr(v, w) if w else None
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return repr(x)  # keep the summary valid JSON
    return x


if __name__ == "__main__":
    # otlp_proto.py traces|metrics json|pb FILE: validate one payload
    kind, fmt, path = sys.argv[1:4]
    with open(path, "rb") as f:
        data = f.read()
    m = parse_json(data.decode(), kind) if fmt == "json" else parse_pb(data, kind)
    print(json.dumps(summarize(m, kind), indent=1))
