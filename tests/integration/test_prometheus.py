#!/usr/bin/python3
"""A real Prometheus server scrapes a real ateld.

Debian's `prometheus` is started on a free loopback port with a temporary
storage directory and a 1 s scrape interval; producer processes (libatel's
public API, tests/integration/prom_producer.c) record a known workload; PromQL
through Prometheus' HTTP API must return exactly what they wrote:
  sum(agent_execution_total), its failure share, sum(agent_tokens_used_total),
  histogram_quantile over a known distribution (0.5 -> 0.5 s, 0.75 -> 3.75 s).
Then ateld is restarted (SIGTERM, start again), the producers run again, and
Prometheus must see the doubled totals with resets() == 0: the counters stayed
monotonic across the restart (restored from the aggregates checkpoint).
Also: promtool check metrics on the live /metrics reports nothing, and the
JSON exporter of the same ateld (rotateInterval 1 s, maxFiles 2) keeps exactly
two files whose newest holds the final totals.
argv[1]: the prom_producer binary. Exit 77 (skip) if prometheus is missing.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, free_port, http_get, wait_for  # noqa: E402

BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ATELD = os.path.join(BUILD, "consumer", "ateld")
PROCS, THREADS, N = 2, 2, 2000
TOTAL = PROCS * THREADS * N


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="atel-prom-%d-" % os.getpid())
        self.data = os.path.join(self.dir, "data")
        self.shm = os.path.join(self.dir, "seg")
        self.mport = free_port()
        self.pport = free_port()
        self.ateld = None
        self.prom = None
        self.nstarts = 0
        cfg = {
            "data_dir": self.data,
            "log_level": "info",
            "shm": {"name": self.shm, "rings": 32, "ring_capacity": 16384},
            "index": {"enabled": False},
            "export_interval_ms": 1000,
            "prometheus": {"enabled": True, "bind": "127.0.0.1", "port": self.mport, "path": "/metrics"},
            "json": {"enabled": True, "outputDir": os.path.join(self.dir, "exports"), "rotateInterval": 1000,
                     "maxFiles": 2},
        }
        self.cfg = cfg
        self.cfg_path = os.path.join(self.dir, "ateld.json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name)) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def start_ateld(self):
        self.nstarts += 1
        env = dict(os.environ)
        for k in ("ATEL_SHM", "ATEL_DATA_DIR", "ATEL_PROMETHEUS_PORT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(k, None)
        log = open(os.path.join(self.dir, "ateld-%d.log" % self.nstarts), "w")
        self.ateld = subprocess.Popen([ATELD, "--config", self.cfg_path, "--foreground"],
                                      stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for("ateld /healthz", lambda: http_get("http://127.0.0.1:%d/healthz" % self.mport)[0] == 200,
                 procs=[("ateld", self.ateld)])

    def stop_ateld(self):
        self.ateld.send_signal(signal.SIGTERM)
        try:
            rc = self.ateld.wait(60)
        except subprocess.TimeoutExpired:
            self.ateld.kill()
            raise Fail("ateld ignored SIGTERM")
        check(rc == 0, "ateld exited %d; log:\n%s" % (rc, self.log("ateld-%d.log" % self.nstarts)))
        self.ateld = None

    def start_prometheus(self):
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: atel\n    metrics_path: /metrics\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % self.mport)
        log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.prom = subprocess.Popen(
            ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.dir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.pport, "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_for("prometheus ready", lambda: http_get("http://127.0.0.1:%d/-/ready" % self.pport)[0] == 200,
                 procs=[("prometheus", self.prom)])

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.pport, urllib.parse.urlencode({"query": q}))
        _, _, body = http_get(url)
        r = json.loads(body)
        check(r["status"] == "success", "query %s: %s" % (q, body))
        res = r["data"]["result"]
        if not res:
            return None
        check(len(res) == 1, "query %s: expected one series, got %s" % (q, res))
        return float(res[0]["value"][1])

    def produce(self, tag):
        procs = []
        for i in range(PROCS):
            out = open(os.path.join(self.dir, "producer-%s-%d.log" % (tag, i)), "w")
            procs.append(subprocess.Popen([sys.argv[1], self.shm, str(THREADS), str(N)],
                                          stdout=out, stderr=subprocess.STDOUT))
        for i, p in enumerate(procs):
            rc = p.wait(120)
            check(rc == 0, "producer %d exited %d: %s" % (i, rc, self.log("producer-%s-%d.log" % (tag, i))))

    def close(self):
        for p in (self.prom, self.ateld):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if not os.environ.get("ATEL_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)


def expect_totals(w, rounds):
    total = TOTAL * rounds
    # Prometheus has scraped a sample with everything in it
    wait_for("sum(agent_execution_total) == %d in Prometheus" % total,
             lambda: w.query("sum(agent_execution_total)") == total, procs=[("ateld", w.ateld)])
    checks = [
        ("sum(agent_execution_total)", total),
        ('sum(agent_execution_total{status="failure"})', total // 4),
        ('sum(agent_execution_total{status="success"})', total - total // 4),
        ('sum(agent_execution_total{agent_type="coder"})', total // 2),
        ("sum(agent_tokens_used_total)", 10 * total),
        ("sum(agent_execution_duration_seconds_count)", total),
        ('sum(agent_execution_duration_seconds_bucket{le="+Inf"})', total),
        ('sum(agent_execution_duration_seconds_bucket{le="0.5"})', total // 2),
        ("sum(agent_execution_duration_seconds_sum)", total // 2 * 0.3 + total // 2 * 3.0),
        ("histogram_quantile(0.5, sum by (le) (agent_execution_duration_seconds_bucket))", 0.5),
        ("histogram_quantile(0.75, sum by (le) (agent_execution_duration_seconds_bucket))", 3.75),
        ('up{job="atel"}', 1),
    ]
    for q, want in checks:
        got = w.query(q)
        check(got is not None and abs(got - want) <= 1e-9 * max(1.0, abs(want)),
              "PromQL %s = %r, want %r" % (q, got, want))
    return checks


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("prometheus/promtool not installed")
        return 77
    w = World()
    try:
        w.start_ateld()
        # a second sidecar on the same port refuses to start, saying why
        cfg2 = dict(w.cfg, data_dir=os.path.join(w.dir, "data2"), shm={"name": os.path.join(w.dir, "seg2")})
        cfg2_path = os.path.join(w.dir, "ateld2.json")
        with open(cfg2_path, "w") as f:
            json.dump(cfg2, f)
        r = subprocess.run([ATELD, "--config", cfg2_path, "--foreground"], capture_output=True, text=True,
                           timeout=60)
        check(r.returncode != 0 and "cannot listen on 127.0.0.1:%d: Address already in use" % w.mport in r.stderr,
              "second ateld on a taken port: exit %d, stderr %s" % (r.returncode, r.stderr[-500:]))
        w.start_prometheus()
        w.produce("a")
        checks = expect_totals(w, 1)

        # the live exposition is clean for promtool
        status, headers, text = http_get("http://127.0.0.1:%d/metrics" % w.mport)
        check(headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", headers["Content-Type"])
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
              "promtool check metrics on live /metrics: %s %s" % (r.stdout, r.stderr))

        # restart ateld: counters continue (no reset seen by Prometheus)
        w.stop_ateld()
        w.start_ateld()
        w.produce("b")
        checks = expect_totals(w, 2)
        resets = w.query("sum(resets(agent_execution_total[10m]))")
        check(resets == 0, "Prometheus saw %r counter resets across the ateld restart" % resets)
        targets = json.loads(http_get("http://127.0.0.1:%d/api/v1/targets" % w.pport)[2])
        t = targets["data"]["activeTargets"][0]
        check(t["health"] == "up" and t["lastError"] == "", "target: %s" % t)
        w.stop_ateld()

        # JSON files: retention kept two, the newest (written at shutdown) has the totals
        exports = os.path.join(w.dir, "exports")
        files = sorted(f for f in os.listdir(exports) if f.startswith("atel-metrics-") and f.endswith(".json"))
        check(len(files) == 2, "JSON exporter kept %d files, want 2: %s" % (len(files), files))
        check(not [f for f in os.listdir(exports) if f.endswith(".tmp")], "tmp files left in %s" % exports)
        with open(os.path.join(exports, files[-1])) as f:
            doc = json.load(f)
        fam = next(m for m in doc["metrics"] if m["name"] == "agent_execution_total")
        got = sum(sr["value"] for sr in fam["series"])
        check(got == 2 * TOTAL, "newest JSON file: agent_execution_total sums to %r, want %d" % (got, 2 * TOTAL))
        print("prometheus: %d PromQL checks exact over 2 ateld runs (%d executions), 0 resets; JSON files: 2 kept"
              % (len(checks), 2 * TOTAL))
        return 0
    except Fail as e:
        print("FAIL:", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        print("--- prometheus log:\n" + w.log("prometheus.log"))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
