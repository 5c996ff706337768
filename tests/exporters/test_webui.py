#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The web view's JSON API (docs/webui.md) on a real ateld with a known workload.

tagent (libatel) runs 2 threads x 50 iterations: per thread one series of
tagent_iterations_total{p,t} (+1 each), one trace per iteration (3 spans:
agent-iteration > tool-call > llm with one event), every 10th tool call an
error. Every endpoint's values are checked against that, the token is
required, hostile parameters get 400 with a message, and the page and its
assets come with a strict Content-Security-Policy.

argv[1]: tagent, argv[2]: atel (CLI; its answers must equal the API's);
argv[3] (optional): the index mode, "compact" (the default config: the
metric, series and trace pages read the segment log) or "full" (they read
telemetry.db's rows). The same numbers are asserted in both.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Fail, check, free_port, wait_for  # noqa: E402

BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ATELD = os.path.join(BUILD, "consumer", "ateld")
TOKEN = "s3cret-web-token"
THREADS, ITERS = 2, 50


def get(port, path, token=TOKEN):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8")


def api(port, path):
    st, _, body = get(port, path)
    check(st == 200, "%s: status %d: %s" % (path, st, body[:300]))
    return json.loads(body)


class World:
    """ateld with the index on, /metrics and the web view behind a token, and a known workload."""

    def __init__(self, tagent, cli, mode="compact"):
        self.tagent, self.cli, self.mode = tagent, cli, mode
        self.dir = tempfile.mkdtemp(prefix="atel-webui-%d-" % os.getpid())
        self.data = os.path.join(self.dir, "data")
        self.shm = os.path.join(self.dir, "seg")
        self.port = free_port()
        cfg = {
            "data_dir": self.data, "log_level": "info",
            "shm": {"name": self.shm, "rings": 16, "ring_capacity": 4096},
            "index": {"enabled": True},
            "export_interval_ms": 1000,
            "prometheus": {"enabled": True, "bind": "127.0.0.1", "port": self.port, "bearer_token": TOKEN},
        }
        if mode == "full":  # compact is the default: left out of the file on purpose
            cfg["index"]["mode"] = "full"
        self.cfg_path = os.path.join(self.dir, "ateld.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        self.ateld = None

    def start(self):
        env = dict(os.environ)
        for k in ("ATEL_SHM", "ATEL_DATA_DIR", "ATEL_PROMETHEUS_PORT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(k, None)
        self.log = os.path.join(self.dir, "ateld.log")
        with open(self.log, "w") as log:
            self.ateld = subprocess.Popen([ATELD, "--config", self.cfg_path, "--foreground"],
                                          stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for("ateld /healthz", lambda: get(self.port, "/healthz", None)[0] == 200, timeout=120,
                 procs=[("ateld", self.ateld)])

    def workload(self):
        r = subprocess.run([self.tagent, "--shm", self.shm, "--id", "1", "--threads", str(THREADS),
                            "--iters", str(ITERS)], capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "tagent failed: %s" % r.stderr)
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        check(rep.get("drops_ring_full", 0) == 0, "tagent dropped records: %s" % rep)
        # the index (or the log, compact) has every trace and sample; a 503 (still reading) is retried
        def soft(path):
            st, _, body = get(self.port, path)
            return json.loads(body) if st == 200 else {}
        wait_for("the index to hold the workload",
                 lambda: len(soft("/api/ui/traces?limit=1000&name=agent-iteration")["traces"]) ==
                 THREADS * ITERS and
                 sum(s["samples"] for s in soft("/api/ui/metrics?name=tagent_iterations_total")["series"])
                 == THREADS * ITERS, timeout=300, procs=[("ateld", self.ateld)])
        self.check_index_mode()

    def check_index_mode(self):
        """The index on disk is the mode asked for: compact holds no raw rows, so the answers came from the log."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data, "telemetry.db"), uri=True, timeout=30)
        try:
            mode = db.execute("SELECT value FROM telemetry_meta WHERE key = 'index_mode'").fetchone()
            raw = db.execute("SELECT (SELECT COUNT(*) FROM telemetry_metrics) + "
                             "(SELECT COUNT(*) FROM telemetry_spans)").fetchone()[0]
        finally:
            db.close()
        check(mode and mode[0] == self.mode, "index_mode %r, expected %s" % (mode, self.mode))
        check((raw == 0) == (self.mode == "compact"), "%s index holds %d raw rows" % (self.mode, raw))

    def atel(self, *args):
        r = subprocess.run([self.cli, "--data-dir", self.data] + list(args), capture_output=True, text=True,
                           timeout=120)
        check(r.returncode == 0, "atel %s: %d %s" % (" ".join(args), r.returncode, r.stderr))
        return r.stdout

    def stop(self):
        """SIGTERM; returns True if ateld exited 0 and logged no sanitizer report."""
        if not self.ateld:
            return True
        if self.ateld.poll() is None:
            self.ateld.send_signal(signal.SIGTERM)
            try:
                self.ateld.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.ateld.kill()
                self.ateld.wait()
        try:
            with open(self.log) as f:
                log = f.read()
        except OSError:
            log = ""
        clean = self.ateld.returncode == 0 and "runtime error" not in log and "Sanitizer" not in log
        if not clean:
            print("FAIL: ateld exited %s; log tail:\n%s" % (self.ateld.returncode, log[-3000:]), file=sys.stderr)
        return clean


def run(w):
    p = w.port
    # -- the token: the API refuses without it; the page (no data) does not need it
    st, hdr, body = get(p, "/api/ui/overview", None)
    check(st == 401 and "Bearer" in (hdr.get("WWW-Authenticate") or ""), "no token: %d %s" % (st, body))
    check(json.loads(body)["error"], "401 body has a message")
    check(get(p, "/api/ui/overview", "wrong")[0] == 401, "a wrong token is refused")
    for path, ctype in (("/", "text/html"), ("/ui.js", "text/javascript"), ("/ui.css", "text/css")):
        st, hdr, body = get(p, path, None)
        check(st == 200 and hdr["Content-Type"].startswith(ctype), "%s: %d %s" % (path, st, hdr["Content-Type"]))
        csp = hdr.get("Content-Security-Policy") or ""
        check("default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp,
              "%s: CSP %r" % (path, csp))
        check(len(body) > 100, "%s: embedded asset is empty" % path)
    st, _, body = get(p, "/", None)
    check("http://" not in body and "https://" not in body, "the page fetches nothing external")
    check(get(p, "/nope", None)[0] == 404, "unknown path is 404")
    for method, want in (("POST", 405), ("HEAD", 200)):
        req = urllib.request.Request("http://127.0.0.1:%d/api/ui/overview" % p, method=method,
                                     data=b"x" if method == "POST" else None,
                                     headers={"Authorization": "Bearer " + TOKEN})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                st, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            st, body = e.code, b""
        check(st == want, "%s /api/ui/overview: %d" % (method, st))
        check(method == "POST" or body == b"", "HEAD has no body")
    check(get(p, "/api/ui/nope")[0] == 404, "unknown endpoint is 404")

    w.workload()
    n = THREADS * ITERS

    # -- overview: the drain's counters
    ov = api(p, "/api/ui/overview")
    check(ov["records_drained"] >= n * 3, "overview records_drained %d" % ov["records_drained"])
    check(ov["drops_total"] == 0 and ov["drops"]["ring_full"] == 0, "overview drops %s" % ov["drops"])
    check(ov["bytes_per_record"] > 0, "bytes_per_record %r" % ov["bytes_per_record"])
    check(set(ov["exporters"]) == {"prometheus", "json", "otlp"}, "exporters %s" % ov["exporters"])
    check(ov["start_ns"] <= ov["now_ns"], "times")

    # -- metrics: names with counts, then one metric's series
    ms = api(p, "/api/ui/metrics")["metrics"]
    it = [m for m in ms if m["name"] == "tagent_iterations_total"]
    check(len(it) == 1 and it[0]["series"] == THREADS and it[0]["samples"] == n and it[0]["type"] == "counter",
          "metrics: %s" % it)
    comp = api(p, "/api/ui/metrics?prefix=tagent_")["metrics"]
    check({m["name"] for m in comp} == {"tagent_iterations_total", "tagent_seq", "tagent_latency_seconds"},
          "completion by prefix: %s" % [m["name"] for m in comp])
    check(api(p, "/api/ui/metrics?prefix=%25")["metrics"] == [], "a % prefix is literal, not a wildcard")
    ser = api(p, "/api/ui/metrics?name=tagent_iterations_total")["series"]
    check(sorted(s["labels"]["t"] for s in ser) == ["0", "1"] and all(s["samples"] == ITERS for s in ser),
          "series of tagent_iterations_total: %s" % ser)
    # the CLI's metric list agrees
    cli = json.loads(w.atel("metrics", "--json"))
    cli_names = {m.get("name") for m in (cli if isinstance(cli, list) else cli.get("metrics", []))}
    check("tagent_iterations_total" in cli_names, "atel metrics --json lacks the metric: %s" % cli_names)

    # -- series: sums, counts, label selection, quantiles
    s = api(p, "/api/ui/series?name=tagent_iterations_total&since=1h&agg=sum")
    check(s["samples"] == n and abs(sum(v for _, v in s["points"]) - n) < 1e-9, "series sum: %s" % s["samples"])
    check(len(s["points"]) <= 2000 and s["step_ms"] >= 1000, "series buckets")
    s = api(p, "/api/ui/series?name=tagent_iterations_total&labels=t%3D1,p%3D1&since=1h&agg=count&step=1m")
    check(s["samples"] == ITERS and sum(v for _, v in s["points"]) == ITERS, "series label selection: %d" %
          s["samples"])
    s = api(p, "/api/ui/series?name=tagent_latency_seconds&since=1h&step=1h&agg=max")
    vals = [v for _, v in s["points"] if v is not None]
    check(vals and max(vals) == 0.49, "histogram max observation 0.49: %s" % vals)
    s = api(p, "/api/ui/series?name=tagent_latency_seconds&since=1h&step=1h&agg=p50")
    vals = [v for _, v in s["points"] if v is not None]
    check(vals and abs(max(vals) - 0.24) < 1e-9, "p50 of 0..0.49 (each twice) is 0.24: %s" % vals)
    s = api(p, "/api/ui/series?name=no_such_metric&since=1h&agg=p99")
    check(s["samples"] == 0 and all(v is None for _, v in s["points"]), "p99 of nothing is null")
    s = api(p, "/api/ui/series?name=tagent_iterations_total&labels=t%3D7&since=1h&agg=sum")
    check(s["samples"] == 0, "no series for t=7")

    # -- traces: list with filters, and one trace's tree
    tr = api(p, "/api/ui/traces?limit=1000&since=1h")["traces"]
    mine = [t for t in tr if t["root"] == "agent-iteration"]
    check(len(mine) == n and all(t["spans"] == 3 for t in mine), "traces: %d" % len(mine))
    errs = api(p, "/api/ui/traces?limit=1000&status=error&name=agent-iteration")["traces"]
    check(len(errs) == n // 10 and all(t["errors"] == 1 for t in errs), "error traces: %d" % len(errs))
    check(len(api(p, "/api/ui/traces?limit=1000&status=ok&name=agent-iteration")["traces"]) == n - n // 10,
          "ok traces")
    check(api(p, "/api/ui/traces?name=agent-iteration&min_ms=3600000")["traces"] == [], "min_ms filters")
    svc = mine[0]["service"]
    check(svc and len(api(p, "/api/ui/traces?limit=1000&name=agent-iteration&service=" + svc)["traces"]) == n,
          "service filter %r" % svc)
    check(api(p, "/api/ui/traces?service=nobody")["traces"] == [], "unknown service")
    tid = errs[0]["trace_id"]
    t = api(p, "/api/ui/trace?id=" + tid.upper())
    check(t["trace_id"] == tid and len(t["spans"]) == 3, "trace %s" % tid)
    by = {s["name"]: s for s in t["spans"]}
    check(by["agent-iteration"]["parent_span_id"] is None, "root has no parent")
    check(by["tool-call"]["parent_span_id"] == by["agent-iteration"]["span_id"], "tool-call's parent")
    check(by["llm"]["parent_span_id"] == by["tool-call"]["span_id"], "llm's parent")
    check(by["tool-call"]["status_code"] == 2 and by["tool-call"]["status_message"] == "tool failed", "error span")
    check([e["name"] for e in by["llm"]["events"]] == ["tokens_streamed"], "llm's event")
    check(by["tool-call"]["attributes"].get("tool") in ("Read", "Write"), "attributes %s" %
          by["tool-call"]["attributes"])
    check(by["agent-iteration"]["offset_ns"] == 0, "root offset")
    # the CLI's OTLP form of the same trace has the same spans
    otlp = json.loads(w.atel("traces", tid, "--format", "otlp-json"))
    names = sorted(sp["name"] for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"])
    check(names == sorted(by), "CLI and API trace differ: %s" % names)
    st, _, body = get(p, "/api/ui/trace?id=" + "0" * 32)
    check(st == 404 and "no such trace" in body, "unknown trace: %d" % st)

    # -- rings: from the status file
    def rings_seen():
        r = api(p, "/api/ui/rings")
        return r if r["rings_total"] == 16 and r["ring_capacity"] == 4096 else None
    r = wait_for("rings in the status file", rings_seen, timeout=60)
    for ring in r["rings"]:
        check(0 <= ring["fill"] <= 1 and ring["drops_full"] == 0, "ring %s" % ring)

    # -- hostile parameters: 400 with a message, never 500
    hostile = [
        "/api/ui/series", "/api/ui/series?name=", "/api/ui/series?name=x&agg=median",
        "/api/ui/series?name=x&since=-1h", "/api/ui/series?name=x&since=99999999d",
        "/api/ui/series?name=x&step=1ms&since=1h", "/api/ui/series?name=x&labels=a",
        "/api/ui/series?name=x&labels=a%27)--=1", "/api/ui/series?name=x&from=2000&to=1000",
        "/api/ui/series?name=x&since=1h&from=1", "/api/ui/series?name=x&name=y", "/api/ui/series?name=%zz",
        "/api/ui/series?name=%00", "/api/ui/series?name=x&bogus=1", "/api/ui/overview?x=1",
        "/api/ui/trace?id=xyz", "/api/ui/trace?id=" + "g" * 32, "/api/ui/trace", "/api/ui/traces?limit=0",
        "/api/ui/traces?limit=100000", "/api/ui/traces?status=weird", "/api/ui/traces?min_ms=1e3",
        "/api/ui/metrics?name", "/api/ui/series?name=x&labels=" + ",".join("k%d=v" % i for i in range(9)),
        "/api/ui/series?name=" + "a" * 1100, "/api/ui/series?name=x&to=99999999999999999",
    ]
    for h in hostile:
        st, hdr, body = get(p, h)
        check(st == 400, "%s: expected 400, got %d %s" % (h, st, body[:200]))
        msg = json.loads(body)["error"]
        check(isinstance(msg, str) and len(msg) > 5, "%s: message %r" % (h, msg))
    # the server is still healthy after all that
    check(get(p, "/healthz", None)[0] == 200, "healthz after hostile requests")
    check(get(p, "/metrics")[0] == 200, "/metrics with the token")


def main():
    if len(sys.argv) < 3:
        print("usage: test_webui.py TAGENT ATEL", file=sys.stderr)
        return 1
    mode = sys.argv[3] if len(sys.argv) > 3 else "compact"
    w = World(sys.argv[1], sys.argv[2], mode)
    ok = False
    try:
        w.start()
        run(w)
        ok = True
        print("webui (index.mode %s): every endpoint matches the workload" % mode)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        try:
            with open(w.log) as f:
                sys.stderr.write(f.read()[-3000:])
        except (OSError, AttributeError):
            pass
    finally:
        ok = w.stop() and ok
        if ok:
            shutil.rmtree(w.dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
