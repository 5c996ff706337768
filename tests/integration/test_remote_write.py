#!/usr/bin/python3
"""Prometheus remote write from ateld's log: exact over outages, refusals, restarts and kill -9 (issue 19 item 1).

Part 1, a strict mock receiver (rw_receiver.py: snappy and protobuf decoded by
hand, Prometheus' TSDB rules for out-of-order and duplicate samples), with
producer rounds of a known workload (prom_producer.c, TOTAL executions each):
  a. plain delivery: the receiver's newest agent_execution_total{instance} sums to TOTAL;
  b. outage: every request answered 503 + Retry-After: 1 while a round runs;
     ateld counts failed requests, keeps the batch, and delivers after it;
  c. 429 then 400: the 400 drops a batch (counted in
     atel_remote_write_samples_dropped_total); the next round's batch
     carries the cumulative values, so the totals are exact again;
  d. kill -9 mid-send: requests held 3 s, ateld killed while one is in
     flight (the receiver then stores it), restarted: the pending batch from
     the outbox is sent again and stored once;
  e. SIGTERM restart and one more round.
  After each: totals exact (executions, tokens, histogram count), no counter
  ever went down, and the receiver never had to refuse a sample as out of
  order or duplicate.
Part 2, a real Prometheus (--web.enable-remote-write-receiver): a round, the
Prometheus stopped while a round runs and started again on the same TSDB,
a round with ateld killed -9 right after it; sum(agent_execution_total) and
the histogram count exact, resets() 0, and Prometheus answered no write with 400.
argv[1]: prom_producer. Exit 77 if prometheus is missing (part 1 still runs first).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, free_port, http_get, wait_for  # noqa: E402
import rw_receiver  # noqa: E402
import test_prometheus as tp  # noqa: E402

TOTAL = tp.TOTAL


def make_world(url, instance, headers=None):
    w = tp.World()
    w.cfg["json"]["enabled"] = False
    w.cfg["remote_write"] = {"url": url, "instance": instance, "interval_ms": 200, "batch": 50,
                             "backoff_max_ms": 1000, "timeout_ms": 5000}
    if headers:
        w.cfg["remote_write"]["headers"] = headers
    with open(w.cfg_path, "w") as f:
        json.dump(w.cfg, f)
    return w


def start_ateld(w):
    """w.start_ateld(), on another port if a parallel test took ours between free_port() and ateld's bind."""
    for attempt in range(3):
        try:
            return w.start_ateld()
        except Fail:
            if attempt == 2 or "Address already in use" not in w.log("ateld-%d.log" % w.nstarts):
                raise
            w.mport = free_port()
            w.cfg["prometheus"]["port"] = w.mport
            with open(w.cfg_path, "w") as f:
                json.dump(w.cfg, f)


def self_metric(w, name):
    text = http_get("http://127.0.0.1:%d/metrics" % w.mport)[2]
    for ln in text.splitlines():
        if ln.startswith(name + " "):
            return float(ln.rsplit(" ", 1)[1])
    return None


def all_logs(w):
    """Every ateld log of the world, whole (w.log() keeps only the tail)."""
    text = ""
    for i in range(1, w.nstarts + 1):
        try:
            with open(os.path.join(w.dir, "ateld-%d.log" % i)) as f:
                text += f.read()
        except OSError:
            pass
    return text


def part_mock():
    rx = rw_receiver.Receiver()
    # remote_write.headers: sent on every request, the values never logged or shown
    secret = "s3cret-%d" % os.getpid()
    rx.watch = ("X-Scope-OrgID", "X-Atel-Test-Token")
    w = make_world(rx.url, "rw-mock", {"X-Scope-OrgID": "tenant-rw", "X-Atel-Test-Token": secret})
    inst = {"instance": "rw-mock", "job": "atel"}

    def expect(rounds, what):
        want = rounds * TOTAL
        wait_for("%s: receiver holds %d executions" % (what, want),
                 lambda: rx.latest_sum("agent_execution_total", **inst) == want, timeout=120,
                 procs=[("ateld", w.ateld)])
        check(rx.latest_sum("agent_tokens_used_total", **inst) == 10 * want, "%s: tokens" % what)
        check(rx.latest_sum("agent_execution_duration_seconds_count", **inst) == want, "%s: histogram count" % what)
        check(rx.latest_sum("agent_execution_duration_seconds_bucket", le="+Inf", **inst) == want,
              "%s: +Inf bucket" % what)
        check(not rx.refused_by_rules, "%s: receiver refused samples: %s" % (what, rx.refused_by_rules[:3]))
        check(not rx.decreases("agent_execution_total"), "%s: a counter went down" % what)

    try:
        start_ateld(w)
        # a. plain
        w.produce("a")
        expect(1, "a")
        # the receiver stores a batch before it answers, and ateld counts it sent when the answer
        # arrives: wait for that answer rather than read the counter the moment the data is there
        wait_for("atel_remote_write_samples_sent_total > 0",
                 lambda: (self_metric(w, "atel_remote_write_samples_sent_total") or 0) > 0,
                 timeout=30, procs=[("ateld", w.ateld)])
        with rx.lock:
            seen = {k: set(v) for k, v in rx.watched.items()}
        check(seen.get("X-Scope-OrgID") == {"tenant-rw"}, "X-Scope-OrgID on the requests: %s" % seen)
        check(seen.get("X-Atel-Test-Token") == {secret}, "the configured header not on every request")
        with open(os.path.join(w.data, "ateld.status.json")) as f:
            status = f.read()
        shown = json.loads(status)["config"]["remote_write"]["headers"]
        check(shown == {"X-Scope-OrgID": "(set, not shown)", "X-Atel-Test-Token": "(set, not shown)"},
              "status file's remote_write.headers: %s" % shown)
        check(secret not in status, "a header value is in the status file")
        # the status file (atel status) counts what /metrics counts
        def status_rw():
            with open(os.path.join(w.data, "ateld.status.json")) as f:
                return json.load(f).get("remote_write", {})
        wait_for("status file's remote_write.samples_sent = atel_remote_write_samples_sent_total",
                 lambda: status_rw().get("samples_sent") ==
                 self_metric(w, "atel_remote_write_samples_sent_total") > 0, procs=[("ateld", w.ateld)])
        srw = status_rw()
        check(srw.get("enabled") is True and srw.get("samples_dropped") == 0 and srw.get("requests_ok", 0) > 0
              and srw.get("last_sent_ms", 0) > 0, "status file's remote_write: %s" % srw)

        # b. outage: 503 + Retry-After: 1 for a while
        rx.fail_next(1000000, 503, {"Retry-After": "1"})
        w.produce("b")
        wait_for("requests failing during the outage", lambda: rx.scripted.get(503, 0) >= 3,
                 procs=[("ateld", w.ateld)])
        check(rx.latest_sum("agent_execution_total", **inst) == TOTAL, "delivered during the outage?")
        text = http_get("http://127.0.0.1:%d/metrics" % w.mport)[2]
        failed = [ln for ln in text.splitlines() if ln.startswith('atel_remote_write_requests_total{outcome="failed"}')]
        check(failed and float(failed[0].rsplit(" ", 1)[1]) >= 3, "failed requests not counted: %s" % failed)
        check(self_metric(w, "atel_remote_write_pending_samples") > 0, "no pending samples during the outage")
        with rx.lock:
            rx.script = []
        expect(2, "b")

        # c. 429 (Retry-After 0) then 400: a batch dropped, totals still exact
        rx.fail_next(1, 429, {"Retry-After": "0"})
        rx.fail_next(1, 400)
        w.produce("c")
        wait_for("the 429 and the 400 answered", lambda: rx.scripted.get(400) == 1, procs=[("ateld", w.ateld)])
        check(rx.scripted.get(429) == 1, "script: %s" % rx.scripted)
        wait_for("the 400 counted as dropped",
                 lambda: (self_metric(w, "atel_remote_write_samples_dropped_total") or 0) > 0,
                 procs=[("ateld", w.ateld)])
        # the dropped batch may have been round c's last: the next round's batch carries the cumulative values
        w.produce("c2")
        expect(4, "c")

        # d. kill -9 while a request is in flight
        rx.delay = 3.0
        w.produce("d")
        wait_for("a request in flight", lambda: rx.in_flight > 0, procs=[("ateld", w.ateld)])
        w.ateld.send_signal(signal.SIGKILL)
        w.ateld.wait(30)
        w.ateld = None
        time.sleep(3.5)  # the held request completes at the receiver (stored), ateld never saw the answer
        rx.delay = 0
        start_ateld(w)
        expect(5, "d (kill -9)")
        check("resending the pending batch" in w.log("ateld-%d.log" % w.nstarts),
              "the restarted ateld did not resend the batch it was killed sending")

        # e. SIGTERM restart, one more round
        w.stop_ateld()
        start_ateld(w)
        w.produce("e")
        expect(6, "e")
        w.stop_ateld()
        with rx.lock:
            seen = {k: set(v) for k, v in rx.watched.items()}
        check(seen.get("X-Atel-Test-Token") == {secret} and seen.get("X-Scope-OrgID") == {"tenant-rw"},
              "after restarts, a request without the configured headers")
        check(secret not in all_logs(w), "a header value is in ateld's log")
        print("remote write (mock): headers X-Scope-OrgID and a secret sent on all %d requests, the secret "
              "in no log or status file" % rx.requests)
        print("remote write (mock): 6 rounds exact (%d executions) through 503 outage, 429, a dropped 400 batch, "
              "kill -9 mid-send and a restart; %d requests, %d stored, 0 refused by the TSDB rules"
              % (6 * TOTAL, rx.requests, rx.accepted))
        return 0
    except Fail as e:
        print("FAIL (mock):", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        return 1
    finally:
        w.close()
        rx.close()


class Prom:
    def __init__(self, d, port):
        self.dir, self.port, self.p = d, port, None

    def start(self):
        conf = os.path.join(self.dir, "prometheus-rw.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        log = open(os.path.join(self.dir, "prometheus.log"), "a")
        self.p = subprocess.Popen(
            ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.dir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--web.enable-remote-write-receiver",
             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_for("prometheus ready", lambda: http_get("http://127.0.0.1:%d/-/ready" % self.port)[0] == 200,
                 procs=[("prometheus", self.p)])

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)
        self.p = None

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.port, urllib.parse.urlencode({"query": q}))
        r = json.loads(http_get(url)[2])
        check(r["status"] == "success", "query %s: %s" % (q, r))
        res = r["data"]["result"]
        return float(res[0]["value"][1]) if res else None


def part_prometheus():
    if not shutil.which("prometheus"):
        print("prometheus not installed: part 2 skipped")
        return 77
    pport = free_port()
    w = make_world("http://127.0.0.1:%d/api/v1/write" % pport, "rw-prom")
    prom = Prom(w.dir, pport)
    sel = '{instance="rw-prom",job="atel"}'

    def expect(rounds, what):
        want = rounds * TOTAL
        wait_for("%s: Prometheus holds %d executions" % (what, want),
                 lambda: prom.query("sum(agent_execution_total%s)" % sel) == want, timeout=120,
                 procs=[("ateld", w.ateld), ("prometheus", prom.p)])
        check(prom.query("sum(agent_tokens_used_total%s)" % sel) == 10 * want, "%s: tokens" % what)
        check(prom.query("sum(agent_execution_duration_seconds_count%s)" % sel) == want, "%s: count" % what)
        check(prom.query("sum(resets(agent_execution_total%s[1h]))" % sel) == 0, "%s: counter resets" % what)
        bad = prom.query('sum(prometheus_http_requests_total{handler="/api/v1/write",code=~"4.."})')
        check(not bad, "%s: Prometheus refused %r writes" % (what, bad))

    try:
        prom.start()
        start_ateld(w)
        w.produce("a")
        expect(1, "a")
        # the central Prometheus goes away while agents work, and comes back
        prom.stop()
        w.produce("b")
        wait_for("ateld notices the outage", lambda: (self_metric(w, "atel_remote_write_pending_samples") or 0) > 0,
                 procs=[("ateld", w.ateld)])
        prom.start()
        expect(2, "b (outage)")
        # kill -9 right after a round: whatever was pending comes from the outbox or the log
        w.produce("c")
        w.ateld.send_signal(signal.SIGKILL)
        w.ateld.wait(30)
        w.ateld = None
        start_ateld(w)
        expect(3, "c (kill -9)")
        w.stop_ateld()
        print("remote write (Prometheus %s): 3 rounds exact (%d executions) through a receiver outage and kill -9, "
              "0 resets, 0 refused writes" % (subprocess.run(["prometheus", "--version"], capture_output=True,
                                                              text=True).stdout.split()[2], 3 * TOTAL))
        return 0
    except Fail as e:
        print("FAIL (prometheus):", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        print("--- prometheus log:\n" + w.log("prometheus.log"))
        return 1
    finally:
        if prom.p is not None:
            prom.p.kill()
            prom.p.wait()
        w.close()


def main():
    rc = part_mock()
    if rc:
        return rc
    rc = part_prometheus()
    return 0 if rc == 77 else rc


if __name__ == "__main__":
    sys.exit(main())
