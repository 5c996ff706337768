#!/usr/bin/python3
"""A fleet in network namespaces (issue 19 item 3).

Builds one central host and three agent hosts as network namespaces joined
by veth links (10.200.N.2 on host N, 10.200.N.1 on the central side, the
central namespace routing between hosts). Every agent host runs its own
ateld (/metrics on its link address, remote write to the central host) and
producer rounds of a known workload (prom_producer.c); the central host runs
Debian's Prometheus, scraping every ateld and receiving their remote write.
On the way:
  - two traces cross hosts over HTTP with `traceparent` (host 1 -> host 2,
    host 3 -> host 2; tests/bindings/trace_hop.c on each side, a small HTTP
    hop server on host 2);
  - host 1's link is cut for 30 s while it runs a round, then restored;
  - host 2's ateld is killed with SIGKILL right after a round and restarted.
At the end the central Prometheus holds, for every host, exactly the
executions its agents recorded, both through remote write
({job="atel",instance="hostN"}) and through scraping
({job="fleet-scrape",instance="10.200.N.2:9464"}), and each cross-host trace
is whole across the hosts' stores (`atel traces ID --json`: the root span on
the calling host, its child on host 2 with the root as parent).
Traffic stays inside the namespaces the test made; it deletes them.
argv[1]: prom_producer, argv[2]: trace_hop, argv[3]: atel CLI.
Exit 77 (skip, with the reason) without root, `ip netns`, prometheus or curl.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, wait_for  # noqa: E402

BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ATELD = os.path.join(BUILD, "consumer", "ateld")
PROCS, THREADS, N = 2, 2, 1000
TOTAL = PROCS * THREADS * N
HOSTS = (1, 2, 3)
CUT_S = 30

HOP_SERVER = r'''
import http.server, os, subprocess, sys
hop, shm = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        env = dict(os.environ, ATEL_SHM=shm, TRACEPARENT=self.headers.get("traceparent", ""))
        out = subprocess.run([hop, "true"], env=env, capture_output=True, text=True).stdout.strip()
        data = out.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
http.server.HTTPServer((sys.argv[3], 8080), H).serve_forever()
'''

HOP_CLIENT = r'''
import os, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"traceparent": os.environ["TRACEPARENT"]})
with urllib.request.urlopen(req, timeout=20) as r:
    sys.stdout.write(r.read().decode() + "\n")
'''


def skip(msg):
    print("SKIP: " + msg)
    return 77


def run(*cmd, check_rc=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise Fail("%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r


class Fleet:
    def __init__(self):
        self.tag = "af%d" % (os.getpid() % 10000000)
        self.dir = tempfile.mkdtemp(prefix="atel-fleet-%d-" % os.getpid())
        self.central = self.tag + "c"
        self.ns = {n: "%sh%d" % (self.tag, n) for n in HOSTS}
        self.made = []
        self.procs = {}
        self.ateld = {}
        self.starts = {n: 0 for n in HOSTS}

    def veth(self, n, side):
        return "%s%s%d" % (self.tag, side, n)

    def build(self):
        run("ip", "netns", "add", self.central)
        self.made.append(self.central)
        run("ip", "-n", self.central, "link", "set", "lo", "up")
        run("ip", "netns", "exec", self.central, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for n in HOSTS:
            ns = self.ns[n]
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "link", "add", self.veth(n, "c"), "netns", self.central, "type", "veth", "peer", "name",
                self.veth(n, "h"), "netns", ns)
            run("ip", "-n", self.central, "addr", "add", "10.200.%d.1/24" % n, "dev", self.veth(n, "c"))
            run("ip", "-n", self.central, "link", "set", self.veth(n, "c"), "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", ns, "addr", "add", "10.200.%d.2/24" % n, "dev", self.veth(n, "h"))
            run("ip", "-n", ns, "link", "set", self.veth(n, "h"), "up")
            run("ip", "-n", ns, "route", "add", "10.200.0.0/16", "via", "10.200.%d.1" % n)

    def teardown(self):
        for p in list(self.procs.values()) + list(self.ateld.values()):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if not os.environ.get("ATEL_KEEP_TEST_DIR"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def get(self, ns, url):
        r = subprocess.run(["ip", "netns", "exec", ns, "curl", "-sf", "--max-time", "5", url],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise OSError("curl %s in %s: exit %d" % (url, ns, r.returncode))
        return r.stdout

    def hostdir(self, n):
        return os.path.join(self.dir, "host%d" % n)

    def start_ateld(self, n):
        d = self.hostdir(n)
        os.makedirs(d, exist_ok=True)
        cfg = {
            "data_dir": os.path.join(d, "data"),
            "shm": {"name": os.path.join(d, "seg"), "rings": 32, "ring_capacity": 16384},
            "export_interval_ms": 1000,
            "prometheus": {"enabled": True, "bind": "10.200.%d.2" % n, "port": 9464},
            "remote_write": {"url": "http://10.200.%d.1:9090/api/v1/write" % n, "instance": "host%d" % n,
                             "interval_ms": 500, "backoff_max_ms": 2000, "timeout_ms": 3000},
        }
        with open(os.path.join(d, "ateld.json"), "w") as f:
            json.dump(cfg, f)
        self.starts[n] += 1
        log = open(os.path.join(d, "ateld-%d.log" % self.starts[n]), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ATEL_", "OTEL_"))}
        self.ateld[n] = subprocess.Popen(["ip", "netns", "exec", self.ns[n], ATELD, "--config",
                                          os.path.join(d, "ateld.json"), "--foreground"],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for("ateld on host%d" % n, lambda: self.get(self.ns[n], "http://10.200.%d.2:9464/healthz" % n),
                 procs=[("ateld host%d" % n, self.ateld[n])])

    def log(self, n):
        try:
            with open(os.path.join(self.hostdir(n), "ateld-%d.log" % self.starts[n])) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def start_prometheus(self):
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: fleet-scrape\n    static_configs:\n      - targets: [%s]\n"
                    % ", ".join("'10.200.%d.2:9464'" % n for n in HOSTS))
        log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.procs["prom"] = subprocess.Popen(
            ["ip", "netns", "exec", self.central, "prometheus", "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.dir, "tsdb"), "--web.listen-address=0.0.0.0:9090",
             "--web.enable-remote-write-receiver", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_for("central prometheus", lambda: self.get(self.central, "http://127.0.0.1:9090/-/ready"),
                 procs=[("prometheus", self.procs["prom"])])

    def query(self, q):
        import urllib.parse
        r = json.loads(self.get(self.central, "http://127.0.0.1:9090/api/v1/query?" +
                                urllib.parse.urlencode({"query": q})))
        check(r["status"] == "success", "query %s: %s" % (q, r))
        res = r["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    def produce(self, n, producer):
        """Starts a round on host n (the producer needs no network: shared memory)."""
        ps = []
        for i in range(PROCS):
            out = open(os.path.join(self.hostdir(n), "producer-%d-%d.log" % (n, time.monotonic_ns())), "w")
            ps.append(subprocess.Popen([producer, os.path.join(self.hostdir(n), "seg"), str(THREADS), str(N)],
                                       stdout=out, stderr=subprocess.STDOUT))
        return ps


def wait_rounds(ps):
    for p in ps:
        check(p.wait(180) == 0, "a producer failed (exit %s)" % p.returncode)


def spans_of(cli, datadir, trace_id):
    r = subprocess.run([cli, "--data-dir", datadir, "traces", trace_id, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return []
    return [s for rs in json.loads(r.stdout)["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]


def main():
    producer, hop, cli = (os.path.abspath(a) for a in sys.argv[1:4])
    if os.geteuid() != 0:
        return skip("network namespaces need root")
    for tool in ("ip", "prometheus", "curl"):
        if not shutil.which(tool):
            return skip("%s is not installed" % tool)
    probe = "atelprobe%d" % os.getpid()
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return skip("this machine does not allow `ip netns add`")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    f = Fleet()
    rounds = {n: 0 for n in HOSTS}
    try:
        f.build()
        f.start_prometheus()
        for n in HOSTS:
            f.start_ateld(n)
        # round 1 everywhere, at once
        ps = [p for n in HOSTS for p in f.produce(n, producer)]
        wait_rounds(ps)
        for n in HOSTS:
            rounds[n] += 1
            wait_for("host%d's first round in the central store" % n,
                     lambda: f.query('sum(agent_execution_total{job="atel",instance="host%d"})' % n) == TOTAL,
                     timeout=120, procs=[("ateld host%d" % n, f.ateld[n])])

        # cross-host traces: host1 -> host2 and host3 -> host2 over HTTP with traceparent
        f.procs["hop"] = subprocess.Popen(["ip", "netns", "exec", f.ns[2], sys.executable, "-c", HOP_SERVER, hop,
                                           os.path.join(f.hostdir(2), "seg"), "10.200.2.2"])
        wait_for("hop server on host2", lambda: subprocess.run(
            ["ip", "netns", "exec", f.ns[2], "curl", "-sf", "-o", "/dev/null", "--max-time", "5",
             "http://10.200.2.2:8080/"], capture_output=True).returncode == 0, procs=[("hop", f.procs["hop"])])
        traces = []
        for n in (1, 3):
            env = {k: v for k, v in os.environ.items() if k not in ("TRACEPARENT", "TRACESTATE", "TRACE_CONTEXT")}
            env["ATEL_SHM"] = os.path.join(f.hostdir(n), "seg")
            r = subprocess.run(["ip", "netns", "exec", f.ns[n], hop, sys.executable, "-c", HOP_CLIENT,
                                "http://10.200.2.2:8080/hop"], env=env, capture_output=True, text=True, timeout=60)
            lines = r.stdout.strip().splitlines()
            check(r.returncode == 0 and len(lines) == 2, "hop from host%d: %r %r" % (n, r.stdout, r.stderr))
            remote, local = lines[0].split(), lines[1].split()  # child's output first, then trace_hop's own line
            check(local[2] == "0" and remote[0] == "0", "hop from host%d: %r" % (n, lines))
            _, tid, root, _ = local[1].split("-")
            _, tid2, child, _ = remote[1].split("-")
            check(tid == tid2, "host2 continued another trace: %s vs %s" % (tid, tid2))
            traces.append((n, tid, root, child))

        # host1's link is cut for CUT_S seconds while its agents run a round
        run("ip", "-n", f.central, "link", "set", f.veth(1, "c"), "down")
        cut_at = time.monotonic()
        ps = f.produce(1, producer)
        wait_rounds(ps)
        rounds[1] += 1
        wait_for("host1's remote write notices the cut", lambda: float(
            [ln for ln in f.get(f.ns[1], "http://10.200.1.2:9464/metrics").splitlines()
             if ln.startswith("atel_remote_write_pending_samples ")][0].split()[1]) > 0,
            procs=[("ateld host1", f.ateld[1])])
        check(f.query('sum(agent_execution_total{job="atel",instance="host1"})') == TOTAL,
              "host1's second round reached the central store through a cut link")
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        run("ip", "-n", f.central, "link", "set", f.veth(1, "c"), "up")

        # host2's ateld killed with SIGKILL right after a round, then restarted
        ps = f.produce(2, producer)
        wait_rounds(ps)
        rounds[2] += 1
        f.ateld[2].send_signal(signal.SIGKILL)
        f.ateld[2].wait(30)
        f.start_ateld(2)

        # the central store holds exactly what every host's agents recorded
        for n in HOSTS:
            want = rounds[n] * TOTAL
            wait_for("host%d: %d executions by remote write" % (n, want),
                     lambda: f.query('sum(agent_execution_total{job="atel",instance="host%d"})' % n) == want,
                     timeout=180, procs=[("ateld host%d" % n, f.ateld[n]), ("prometheus", f.procs["prom"])])
            wait_for("host%d: %d executions by scrape" % (n, want),
                     lambda: f.query('sum(agent_execution_total{job="fleet-scrape",instance="10.200.%d.2:9464"})'
                                     % n) == want,
                     timeout=180, procs=[("ateld host%d" % n, f.ateld[n]), ("prometheus", f.procs["prom"])])
            check(f.query('sum(agent_tokens_used_total{job="atel",instance="host%d"})' % n) == 10 * want,
                  "host%d tokens" % n)
            check(f.query('sum(resets(agent_execution_total{job="atel",instance="host%d"}[1h]))' % n) == 0,
                  "host%d: counter resets in the remote-written series" % n)
        bad = f.query('sum(prometheus_http_requests_total{handler="/api/v1/write",code=~"4.."})')
        check(not bad, "the central Prometheus refused %r writes" % bad)

        # every cross-host trace is whole across the hosts' stores
        for n, tid, root, child in traces:
            got = wait_for("trace %s root on host%d" % (tid, n), lambda: [
                s for s in spans_of(cli, os.path.join(f.hostdir(n), "data"), tid) if s["spanId"] == root])
            check(not got[0].get("parentSpanId"), "root span has a parent: %s" % got[0])
            got = wait_for("trace %s child on host2" % tid, lambda: [
                s for s in spans_of(cli, os.path.join(f.hostdir(2), "data"), tid) if s["spanId"] == child])
            check(got[0].get("parentSpanId") == root, "host2's span parent %s, want %s" %
                  (got[0].get("parentSpanId"), root))
        for n in HOSTS:
            f.ateld[n].send_signal(signal.SIGTERM)
            check(f.ateld[n].wait(60) == 0, "ateld host%d exit" % n)
        print("fleet: 3 hosts in netns, %s executions exact in the central Prometheus by remote write and by "
              "scrape, through a %d s link cut and a kill -9; %d cross-host traces whole"
              % ({("host%d" % n): rounds[n] * TOTAL for n in HOSTS}, CUT_S, len(traces)))
        return 0
    except Fail as e:
        print("FAIL:", e)
        for n in HOSTS:
            print("--- ateld host%d log:\n%s" % (n, f.log(n)))
        try:
            with open(os.path.join(f.dir, "prometheus.log")) as fh:
                print("--- prometheus log:\n" + fh.read()[-2000:])
        except OSError:
            pass
        return 1
    finally:
        f.teardown()


if __name__ == "__main__":
    sys.exit(main())
