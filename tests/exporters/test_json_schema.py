#!/usr/bin/python3
"""The JSON export document validates against docs/json-export.schema.json
(jsonschema, Draft 2020-12) and keeps the invariants the schema cannot say:
cumulative buckets ending in +Inf == count, every catalog metric present,
non-finite numbers as strings, invalid UTF-8 replaced, spans' exception
events. argv[1]: the prom_dump binary (run as `prom_dump json`)."""
import json
import os
import subprocess
import sys

import jsonschema


def main():
    src = os.environ.get("ATEL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
    schema = json.load(open(os.path.join(src, "docs", "json-export.schema.json")))
    raw = subprocess.run([sys.argv[1], "json"], check=True, capture_output=True).stdout
    doc = json.loads(raw.decode("utf-8"))  # strict UTF-8: invalid bytes would fail here
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)

    names = {m["name"] for m in doc["metrics"]}
    for want in ("agent_execution_total", "agent_execution_duration_seconds", "agent_tokens_used",
                 "tool_calls_total", "task_duration_seconds", "context_window_utilization"):
        assert want in names, want
    hist = 0
    for m in doc["metrics"]:
        for s in m["series"]:
            if m["type"] == "histogram":
                hist += 1
                counts = [b["count"] for b in s["buckets"]]
                assert counts == sorted(counts), (m["name"], counts)
                assert s["buckets"][-1]["le"] == "+Inf" and counts[-1] == s["count"], m["name"]
                les = [b["le"] for b in s["buckets"][:-1]]
                assert les == sorted(les), les
    assert hist > 0
    nf = next(m for m in doc["metrics"] if m["name"] == "x_nonfinite")
    assert nf["series"][0]["value"] == "+Inf", nf
    assert len(doc["spans"]) == 5 and doc["spans_completed"] == 5 and doc["spans_dropped"] == 0
    sp = doc["spans"][1]
    assert sp["name"] == 'tool "call"\n', sp["name"]
    assert sp["parent_span_id"] == "2020202020202020" and doc["spans"][0]["parent_span_id"] == ""
    assert sp["attributes"] == {"s": "v\x01\ufffd", "i": -42, "d": 0.5, "b": True}, sp["attributes"]
    assert doc["spans"][3]["attributes"]["d"] == "+Inf"
    ex = sp["events"][1]
    assert ex["name"] == "exception" and ex["attributes"] == {
        "exception.type": "Timeout", "exception.message": "tool took too long"}, ex
    assert doc["spans"][2]["status"] == {"code": 2, "name": "error", "message": "failed"}
    assert doc["spans"][0]["duration_ms"] == 250.0
    print("json export: schema-valid, %d families, %d spans" % (len(doc["metrics"]), len(doc["spans"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
