#!/usr/bin/python3
"""OTLP export through a real ateld to the loopback test collector.

ateld is configured as in docs/reference.md's example (endpoint
".../v1/metrics", protocol "http", an Authorization header); the collector
(tests/exporters/otlp_collector.py) decodes every request with the official
protos. Producer processes (otlp_producer.c, libatel's public API) record
traces; then:
  1. the first traces and metrics posts get 503 and are retried; every span
     arrives exactly once, with parents, attributes, events, error status;
     a span left open by a producer that exited arrives as ERROR
     "producer exited"; metrics arrive as a cumulative Sum;
  2. the collector goes down, more traces are recorded, ateld is stopped
     (SIGTERM) and started again, the collector comes back, more traces are
     recorded: every span of every round arrives exactly once;
  3. the bearer token is never in ateld's log, `atel status --json`, or the
     telemetry_exports rows, which record the attempts (503 and 200).
argv[1]: otlp_producer; argv[2]: the atel CLI.
"""
import glob
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, free_port  # noqa: E402
from harness import wait_for as _wait_for  # noqa: E402


def wait_for(what, pred, timeout=90.0, procs=()):
    return _wait_for(what, pred, timeout, procs)


BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("ATEL_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ATELD = os.path.join(BUILD, "consumer", "ateld")
COLLECTOR = os.path.join(SRC, "tests", "exporters", "otlp_collector.py")
TOKEN = "itest-s3cret-T0KEN-42"


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="atel-otlp-it-%d-" % os.getpid())
        self.data = os.path.join(self.dir, "data")
        self.shm = os.path.join(self.dir, "seg")
        self.mport = free_port()
        self.cport = free_port()
        self.ateld = None
        self.coll = None
        self.nstarts = 0
        self.ncoll = 0
        cfg = {
            "data_dir": self.data,
            "log_level": "debug",
            "shm": {"name": self.shm, "rings": 32, "ring_capacity": 16384},
            "export_interval_ms": 500,
            "prometheus": {"enabled": True, "bind": "127.0.0.1", "port": self.mport, "path": "/metrics"},
            "opentelemetry": {
                "enabled": True,
                "endpoint": "http://127.0.0.1:%d/v1/metrics" % self.cport,
                "protocol": "http",
                "headers": {"Authorization": "Bearer " + TOKEN},
            },
        }
        self.cfg_path = os.path.join(self.dir, "ateld.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return f.read()
        except OSError:
            return ""

    def start_collector(self, script=""):
        self.ncoll += 1
        rec = os.path.join(self.dir, "collector-%d.jsonl" % self.ncoll)
        log = open(os.path.join(self.dir, "collector-%d.log" % self.ncoll), "w")
        self.coll = subprocess.Popen(["/usr/bin/python3", COLLECTOR, "--record", rec, "--port", str(self.cport),
                                      "--port-file", rec + ".port", "--script", script],
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_for("collector up", lambda: os.path.exists(rec + ".port"), procs=[("collector", self.coll)])

    def stop_collector(self):
        self.coll.send_signal(signal.SIGTERM)
        self.coll.wait(30)
        self.coll = None

    def start_ateld(self):
        self.nstarts += 1
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("OTEL_") or k in ("ATEL_SHM", "ATEL_DATA_DIR", "ATEL_PROMETHEUS_PORT"):
                env.pop(k)
        log = open(os.path.join(self.dir, "ateld-%d.log" % self.nstarts), "w")
        self.ateld = subprocess.Popen([ATELD, "--config", self.cfg_path, "--foreground"],
                                      stdout=log, stderr=subprocess.STDOUT, env=env)

        def healthy():
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.mport, timeout=5) as r:
                return r.status == 200
        wait_for("ateld /healthz", healthy, procs=[("ateld", self.ateld)])

    def stop_ateld(self):
        self.ateld.send_signal(signal.SIGTERM)
        try:
            rc = self.ateld.wait(90)
        except subprocess.TimeoutExpired:
            self.ateld.kill()
            raise Fail("ateld ignored SIGTERM")
        check(rc == 0, "ateld exited %d" % rc)
        self.ateld = None

    def produce(self, tag, n, *extra):
        out = os.path.join(self.dir, "producer-%s.log" % tag)
        with open(out, "w") as f:
            rc = subprocess.run([sys.argv[1], self.shm, tag, str(n)] + list(extra), stdout=f,
                                stderr=subprocess.STDOUT, timeout=120).returncode
        check(rc == 0, "producer %s exited %d: %s" % (tag, rc, self.read("producer-%s.log" % tag)))

    def records(self):
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "collector-*.jsonl"))):
            recs = []
            with open(path) as f:
                for line in f:
                    if line.strip():
                        recs.append(json.loads(line))
            out += sorted(recs, key=lambda r: r["n"])  # arrival order (connections are concurrent)
        return out

    def delivered_spans(self):
        """name -> list of span summaries from requests answered 200."""
        spans = {}
        for r in self.records():
            if r["kind"] == "traces" and r["status"] == 200 and r["valid"]:
                for s in r["items"]:
                    spans.setdefault(s["name"], []).append(s)
        return spans

    def close(self):
        for p in (self.ateld, self.coll):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)  # the collector removes its compiled protos on SIGTERM
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not os.environ.get("ATEL_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)


def expect_round(w, tag, n, procs):
    names = ["%s-%d-%s" % (tag, i, k) for i in range(n) for k in ("root", "ok", "fail")]
    wait_for("%d spans of round %s" % (len(names), tag),
             lambda: all(x in w.delivered_spans() for x in names), procs=procs)
    return names


def check_once(w, names):
    spans = w.delivered_spans()
    for x in names:
        check(len(spans.get(x, [])) == 1, "span %s delivered %d times" % (x, len(spans.get(x, []))))


def main():
    w = World()
    try:
        # 1. retries, content, producer death, metrics
        w.start_collector("503,503")
        w.start_ateld()
        w.produce("a", 40, "open")
        names_a = expect_round(w, "a", 40, [("ateld", w.ateld)])
        wait_for("the open span of the dead producer", lambda: "a-open" in w.delivered_spans(),
                 procs=[("ateld", w.ateld)])
        spans = w.delivered_spans()
        for i in range(40):
            root, ok, fail = (spans["a-%d-%s" % (i, k)][0] for k in ("root", "ok", "fail"))
            check(root["parentSpanId"] == "" and root["kind"] == 2 and root["status"] == 1, "root %d: %s" % (i, root))
            check(ok["parentSpanId"] == root["spanId"] and fail["parentSpanId"] == root["spanId"],
                  "parents of trace %d" % i)
            check(ok["traceId"] == root["traceId"] == fail["traceId"], "trace ids of trace %d" % i)
            check(ok["attributes"] == {"agent.type": "coder", "index": i, "ratio": 0.5, "cached": True},
                  "attributes: %s" % ok["attributes"])
            check([e["name"] for e in ok["events"]] == ["code_generation_started"] and
                  ok["events"][0]["attributes"] == {"files": 3}, "event: %s" % ok["events"])
            check(fail["status"] == 2 and fail["statusMessage"] == "tool failed", "fail status: %s" % fail)
            check(any(e["name"] == "exception" and e["attributes"].get("exception.type") == "ToolError"
                      for e in fail["events"]), "exception event: %s" % fail["events"])
            check(root["service"] == "atel" and root["scope"] == "atel", "resource/scope: %s" % root)
        op = spans["a-open"][0]
        check(op["status"] == 2 and op["statusMessage"] == "producer exited", "open span: %s" % op)

        def metrics_ok():
            for r in w.records():
                if r["kind"] == "metrics" and r["status"] == 200 and r["valid"]:
                    m = {x["name"]: x for x in r["items"]}
                    if m.get("agent_execution_total", {}).get("type") == "sum":
                        return True
            return False
        wait_for("metrics with agent_execution_total", metrics_ok, procs=[("ateld", w.ateld)])
        recs = w.records()
        check(recs[0]["status"] == 503 and recs[1]["status"] == 503, "first two answers were 503")
        check(any(r["path"] == "/v1/traces" for r in recs) and any(r["path"] == "/v1/metrics" for r in recs),
              "both signal URLs derived from the .../v1/metrics endpoint")
        for r in recs:
            check(r["headers"].get("authorization") == "Bearer " + TOKEN, "Authorization header sent")
            check(r["content_type"] == "application/x-protobuf" and r["content_encoding"] == "gzip",
                  "http/protobuf + gzip: %s %s" % (r["content_type"], r["content_encoding"]))

        # 2. outage across an ateld restart
        w.stop_collector()
        w.produce("b", 30)
        wait_for("a failed attempt while the collector is down",
                 lambda: "Couldn't connect" in w.read("ateld-%d.log" % w.nstarts), procs=[("ateld", w.ateld)])
        w.stop_ateld()
        w.start_collector()
        w.start_ateld()
        w.produce("c", 20)
        names_b = expect_round(w, "b", 30, [("ateld", w.ateld)])
        names_c = expect_round(w, "c", 20, [("ateld", w.ateld)])
        time.sleep(1.0)  # a late duplicate would show up by now: assert there is none
        check_once(w, names_a + names_b + names_c + ["a-open"])

        # 3. the token stays secret
        st = subprocess.run([sys.argv[2], "--data-dir", w.data, "--shm", w.shm, "status", "--json"],
                            capture_output=True, text=True, timeout=60)
        check(TOKEN not in st.stdout + st.stderr, "token in atel status output")
        w.stop_ateld()
        logs = "".join(w.read("ateld-%d.log" % i) for i in range(1, w.nstarts + 1))
        check("otlp" in logs and TOKEN not in logs, "token in the ateld log")
        db = os.path.join(w.data, "telemetry.db")
        check(os.path.exists(db), "no %s (the index is on by default)" % db)
        con = sqlite3.connect(db)
        rows = con.execute("SELECT signal, status, items, bytes, COALESCE(error,'') FROM telemetry_exports "
                           "WHERE exporter = 'otlp'").fetchall()
        con.close()
        check(rows, "no otlp rows in telemetry_exports")
        check(any(r[1] == 503 for r in rows) and any(r[1] == 200 and r[0] == "traces" for r in rows)
              and any(r[1] == 200 and r[0] == "metrics" for r in rows),
              "telemetry_exports has the 503 and 200 attempts of both signals: %s" % rows[:5])
        check(any(r[1] < 0 and "connect" in r[4].lower() for r in rows), "the outage's transport errors are rows")
        check(all(r[2] > 0 and r[3] > 0 for r in rows if r[0] == "traces"), "traces rows carry items and bytes")
        check(all(TOKEN not in r[4] for r in rows), "token in telemetry_exports")
        for path in glob.glob(os.path.join(w.data, "**", "*"), recursive=True):
            if os.path.isfile(path) and not path.endswith(".atseg"):
                with open(path, "rb") as f:
                    check(TOKEN.encode() not in f.read(), "token stored in %s" % path)
        total = len(names_a) + len(names_b) + len(names_c) + 1
        print("otlp: %d spans over 2 ateld runs and a collector outage, each delivered once; token kept secret"
              % total)
        return 0
    except Fail as e:
        print("FAIL:", e)
        for i in range(1, w.nstarts + 1):
            print("--- ateld-%d log (tail):\n%s" % (i, w.read("ateld-%d.log" % i)[-4000:]))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
