#!/usr/bin/python3
"""Checks dashboards/overview.json: valid against Grafana's dashboard JSON schema
(third_party/grafana-dashboard-schema), the docs/reference.md panels present, every panel and target on the
$datasource variable, every target has an expr, and every expr parses
(`promtool check rules` on the expressions wrapped as recording rules).
Prints "N passed, M failed" and exits non-zero on any failure."""
import json
import os
import re
import subprocess
import sys
import tempfile

import jsonschema

src = os.environ.get("ATEL_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
third_party = os.environ.get("ATEL_THIRD_PARTY_DIR", os.path.join(src, "third_party"))
dash_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(src, "dashboards", "overview.json")
schema_path = os.path.join(third_party, "grafana-dashboard-schema", "dashboard.jsonschema.json")

REFERENCE_PANELS = [
    "Agent Execution Rate", "Active Agents", "Error Rate", "Total Tokens Used",
    "Context Window Utilization", "Agent Execution Duration (p95)", "Tool Call Success Rate",
    "Top Tools by Usage", "Task Queue Size", "Error Breakdown by Type", "Agent Execution Timeline",
]
HEALTH_PANELS = ["Dropped Records by Cause", "Ring Lag", "Export Failures"]

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {name}{': ' + detail if detail else ''}")


def substitute(expr):
    """Grafana's variables replaced by values Prometheus accepts."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$__interval", "30s")
    return re.sub(r"\$\{?([A-Za-z_]+)\}?", ".*", expr)


def promtool_ok(exprs):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("groups:\n  - name: dashboard\n    rules:\n")
        for i, e in enumerate(exprs):
            f.write(f"      - record: atel:dashboard_expr_{i}\n        expr: {json.dumps(e)}\n")
        path = f.name
    try:
        r = subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr
    finally:
        os.unlink(path)


def main():
    dash = json.load(open(dash_path))
    schema = json.load(open(schema_path))
    try:
        jsonschema.validate(dash, schema)
        check("schema", True)
    except jsonschema.ValidationError as e:
        check("schema", False, e.message)

    # the validator must reject a broken dashboard, or the check above proves nothing
    broken = json.loads(json.dumps(dash))
    broken["panels"][1]["gridPos"] = {"x": "left"}
    try:
        jsonschema.validate(broken, schema)
        check("schema rejects a broken gridPos", False)
    except jsonschema.ValidationError:
        check("schema rejects a broken gridPos", True)

    check("title", dash.get("title") == "Golden Armada - Agent Orchestration Overview", dash.get("title"))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("datasource", {})
    check("datasource variable", ds.get("type") == "datasource" and ds.get("query") == "prometheus")
    for name in ("agent_type", "tool"):
        check(f"{name} variable", name in variables and variables[name]["datasource"]["uid"] == "${datasource}")

    panels = [p for p in dash["panels"] if p["type"] != "row"]
    titles = [p["title"] for p in panels]
    for t in REFERENCE_PANELS + HEALTH_PANELS:
        check(f"panel '{t}' present", t in titles)
    check("panel ids unique", len({p["id"] for p in dash["panels"]}) == len(dash["panels"]))

    exprs = []
    for p in panels:
        check(f"panel '{p['title']}' datasource", p.get("datasource", {}).get("uid") == "${datasource}")
        check(f"panel '{p['title']}' has targets", len(p.get("targets", [])) > 0)
        for t in p.get("targets", []):
            check(f"panel '{p['title']}' target datasource", t.get("datasource", {}).get("uid") == "${datasource}")
            e = t.get("expr", "")
            check(f"panel '{p['title']}' target has expr", bool(e.strip()))
            exprs.append(substitute(e))

    ok, out = promtool_ok(exprs)
    check("promtool check rules on every expr", ok, out)
    ok, _ = promtool_ok(["sum by (tool (rate(tool_calls_total[1m]))"])
    check("promtool rejects a malformed expr", not ok)

    print(f"dashboard: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
