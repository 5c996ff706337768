#!/usr/bin/python3
"""atel-bench smoke test: the ring section runs (quick), its consumer saw every
record in order (the section fails otherwise), and --json has the documented
shape: rows of section/figure/value/unit/baseline/ratio/target/met/method."""
import json
import subprocess
import sys

exe = sys.argv[1]
out = subprocess.run([exe, "--quick", "--only", "ring", "--json"], capture_output=True, text=True, timeout=300)
if out.returncode != 0:
    sys.exit(f"atel-bench exited {out.returncode}: {out.stderr}")
doc = json.loads(out.stdout)
assert doc["tool"] == "atel-bench" and doc["quick"] is True and doc["failed_sections"] == 0, doc
rows = {r["figure"]: r for r in doc["rows"]}
for r in doc["rows"]:
    assert set(r) == {"section", "figure", "value", "unit", "baseline", "ratio", "target", "met", "method"}, r
    assert r["section"] == "ring", r
    assert r["value"] >= 0, r
    if r["baseline"] is not None:
        assert abs(r["ratio"] - r["value"] / r["baseline"]) < 1e-9, r
for fig in ("record write p50", "record write p99", "record write p99.9"):
    r = rows[fig]
    assert r["unit"] == "ns" and r["value"] > 0 and r["baseline"] > 0, r
    # 1M accepted writes unless the consumer was starved of CPU for 50M calls
    assert int(r["method"].split()[0]) > 0 and " writes (1000000 baseline)" in r["method"], r
assert rows["record write p50"]["target"] == "<= 1.5x baseline"
assert rows["record write p99"]["target"] == "< 100 ns"
assert rows["record write p50"]["value"] <= rows["record write p99"]["value"] <= rows["record write p99.9"]["value"]
# unknown section: refused, not an empty success
bad = subprocess.run([exe, "--only", "no_such_section"], capture_output=True, text=True, timeout=60)
assert bad.returncode == 2 and "no section 'no_such_section'" in bad.stderr, bad
print("ok:", ", ".join(f"{k} {v['value']:.1f} {v['unit']}" for k, v in rows.items()))
