#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Multi-process tests of ateld: real daemon, real producer processes (tprod,
which speaks the shm ABI directly), the log read back with logcheck.

    daemon_test.py NAME     (run by meson; exit 0 pass, 1 fail, 77 skip)

Each test uses its own temp directory (data dir, config, and a file-path shm
segment inside it) and kills every process it started.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
ATELD = os.path.join(BUILD, "consumer", "ateld")
TPROD = os.path.join(BUILD, "tests", "integration", "tprod")
LOGCHECK = os.path.join(BUILD, "tests", "integration", "logcheck")
TAGENT = os.path.join(BUILD, "tests", "integration", "tagent")
ATEL_CLI = os.path.join(BUILD, "tools", "atel")


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Env:
    """One test's world: temp dir, config, daemon and producers."""

    def __init__(self, name, config=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="atel-it-%s-%d-" % (name, os.getpid()))
        self.data = os.path.join(self.dir, "data")
        self.shm = os.path.join(self.dir, "seg")
        self.cfg_path = os.path.join(self.dir, "ateld.json")
        cfg = {
            "data_dir": self.data,
            "log_level": "info",
            "shm": {"name": self.shm, "rings": 16, "ring_capacity": 4096},
            "storage": {"rotate_bytes": 1 << 20, "fsync_interval_ms": 200},
            "index": {"enabled": False},
            "prometheus": {"enabled": False},
        }
        for k, v in (config or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.cfg = cfg
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        self.daemon = None
        self.daemon_log = None
        self.procs = []
        self.nstarts = 0

    # -- daemon -----------------------------------------------------------
    def start(self, env=None, wait=True):
        self.nstarts += 1
        self.daemon_log = os.path.join(self.dir, "ateld-%d.log" % self.nstarts)
        e = dict(os.environ)
        for k in ("ATEL_FORCE_PWRITEV", "ATEL_FAULT_WRITE", "ATEL_IO", "ATEL_SHM", "ATEL_DATA_DIR"):
            e.pop(k, None)
        e.update(env or {})
        with open(self.daemon_log, "w") as log:
            self.daemon = subprocess.Popen([ATELD, "--config", self.cfg_path, "--foreground"],
                                           stdout=log, stderr=subprocess.STDOUT, env=e)
        if wait:
            self.wait_running()
        return self.daemon

    def status(self):
        try:
            with open(os.path.join(self.data, "ateld.status.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait_for(self, what, pred, timeout=30.0):
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            if self.daemon is not None and self.daemon.poll() is not None:
                raise Fail("ateld exited (%s) while waiting for %s; log:\n%s" %
                           (self.daemon.returncode, what, self.log_text()))
            time.sleep(0.05)
        raise Fail("timed out waiting for %s; log:\n%s" % (what, self.log_text()))

    def wait_running(self):
        pid = self.daemon.pid
        self.wait_for("ateld status 'running'", lambda: (lambda s: s and s.get("pid") == pid and
                                                         s.get("state") == "running")(self.status()))

    def log_text(self):
        try:
            with open(self.daemon_log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self, timeout=60):
        self.daemon.send_signal(signal.SIGTERM)
        try:
            rc = self.daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            raise Fail("ateld did not stop within %d s after SIGTERM; log:\n%s" % (timeout, self.log_text()))
        return rc

    def kill9(self):
        self.daemon.kill()
        self.daemon.wait()

    # -- producers --------------------------------------------------------
    def produce(self, pid_id, threads, records, *extra):
        args = [TPROD, "--shm", self.shm, "--id", str(pid_id), "--threads", str(threads),
                "--records", str(records)] + [str(x) for x in extra]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    @staticmethod
    def result(p, timeout=60):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise Fail("producer %s did not finish within %d s; its stderr: %s" % (p.args[:6], timeout, err))
        if p.returncode != 0:
            raise Fail("tprod failed (%s): %s" % (p.returncode, err))
        return json.loads(out)

    def logcheck(self):
        r = subprocess.run([LOGCHECK, os.path.join(self.data, "segments")], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise Fail("logcheck failed: %s" % r.stderr)
        if r.stderr:
            sys.stdout.write(r.stderr)
        return json.loads(r.stdout)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        if os.environ.get("ATEL_KEEP_TEST_DIR"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def expect_exact(log, results, block=True):
    """Every producer thread's samples are in the log exactly once: written minus drops."""
    total = 0
    for res in results:
        for t in res["threads"]:
            key = "%d:%d" % (res["producer"], t["thread"])
            s = log["series"].get(key)
            written = t["written"]
            total += written
            if written == 0:
                check(s is None, "%s: nothing written but %s in the log" % (key, s))
                continue
            check(s is not None, "%s: no samples in the log (wrote %d)" % (key, written))
            check(s["count"] == s["distinct"], "%s: %d duplicates" % (key, s["count"] - s["distinct"]))
            check(s["count"] == written, "%s: log has %d samples, producer wrote %d (dropped %d)" %
                  (key, s["count"], written, t["dropped"]))
            if block:
                check(t["dropped"] == 0, "%s: blocking producer dropped %d" % (key, t["dropped"]))
                check(s["min"] == 0 and s["max"] == written - 1,
                      "%s: sequence range %d..%d, expected 0..%d" % (key, s["min"], s["max"], written - 1))
    return total


# ---------------------------------------------------------------------------
# tests

def t_multi(env_extra=None, name="multi"):
    """3 blocking processes x 3 threads plus 2 dropping ones x 2 threads; SIGTERM; exact."""
    e = Env(name)
    try:
        e.start(env_extra)
        ps = [e.produce(i, 3, 60000, "--block") for i in range(1, 4)]
        ps += [e.produce(i, 2, 60000) for i in range(4, 6)]
        res = [Env.result(p) for p in ps]
        rc = e.stop()
        check(rc == 0, "ateld exit status %d after SIGTERM; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        expect_exact(log, res[:3], block=True)
        expect_exact(log, res[3:], block=False)
        dropped = sum(t["dropped"] for r in res for t in r["threads"])
        check(log["loss"]["ring_full"] == dropped,
              "LOSS(ring_full) in the log sums to %d, producers dropped %d" % (log["loss"]["ring_full"], dropped))
        check(log["corrupt"] == 0 and log["invalid"] == 0, "corrupt/invalid records in a clean run: %s" % log)
        st = e.status()
        check(st["state"] == "stopped", "final status state %s" % st["state"])
        check(st["stats"]["records_invalid"] == 0, "records_invalid %d" % st["stats"]["records_invalid"])
        check(st["stats"]["drops"]["ring_full"] == dropped, "status drops.ring_full %d != %d" %
              (st["stats"]["drops"]["ring_full"], dropped))
        print("multi: %d samples exact, %d dropped and reported; io_path %s; %d files, %d bytes compressed "
              "for %d raw" % (sum(t["written"] for r in res for t in r["threads"]), dropped, st["io_path"],
                              log["files"], log["bytes_compressed"], log["bytes_raw"]))
        return st
    finally:
        e.close()


def t_iopaths():
    st = t_multi({"ATEL_FORCE_PWRITEV": "1"}, name="pwritev")
    check(st["io_path"] == "pwritev", "ATEL_FORCE_PWRITEV=1 but io_path is %s" % st["io_path"])
    st = t_multi({}, name="auto")
    check(st["io_path"] in ("io_uring", "pwritev"), "io_path %s" % st["io_path"])
    print("default io path here: %s" % st["io_path"])


def t_kill9():
    """kill -9 ateld >= 5 times at random moments under steady load; exactly once."""
    e = Env("kill9")
    rnd = random.Random(int(os.environ.get("ATEL_TEST_SEED", str(os.getpid()))))
    try:
        e.start()
        ps = [e.produce(i, 2, 150000, "--block", "--rate", 25000) for i in range(1, 5)]
        kills = early = 0
        while kills < 5 or all(p.poll() is None for p in ps) and kills < 12:
            time.sleep(rnd.uniform(0.2, 1.2))
            e.kill9()
            kills += 1
            if kills % 3 == 0:
                # also kill during start-up (segment attach, log recovery, first passes)
                e.start(wait=False)
                time.sleep(rnd.uniform(0.0, 0.03))
                e.kill9()
                kills += 1
                early += 1
            e.start()
            if all(p.poll() is not None for p in ps):
                break
        res = [Env.result(p, timeout=120) for p in ps]
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        n = expect_exact(log, res, block=True)
        check(kills >= 5, "only %d kills" % kills)
        print("kill9: %d kill -9 + restarts (%d during start-up), %d samples each exactly once" % (kills, early, n))
    finally:
        e.close()


def t_torn():
    """A torn write (injected: half a frame, then ENOSPC), kill -9, restart: exactly once.
    Then a torn tail appended to a finished file and a corrupted last frame: ateld starts
    and keeps logging."""
    e = Env("torn")
    try:
        e.start({"ATEL_FAULT_WRITE": "1000000"})
        p = e.produce(1, 2, 20000, "--block")
        e.wait_for("a failed write", lambda: "cannot write segment" in e.log_text())
        e.kill9()
        e.start()
        r1 = Env.result(p)
        check(e.stop() == 0, "ateld exit status after torn write recovery")
        log = e.logcheck()
        expect_exact(log, [r1])

        # torn tail: junk after the last frame of the newest file
        segs = sorted(os.listdir(os.path.join(e.data, "segments")))
        newest = os.path.join(e.data, "segments", segs[-1])
        with open(newest, "ab") as f:
            f.write(b"\x28\xb5\x2f\xfd" + os.urandom(3000))
        e.start()
        r2 = Env.result(e.produce(2, 2, 20000, "--block"))
        check(e.stop() == 0, "ateld exit status after a torn tail")
        log = e.logcheck()
        expect_exact(log, [r1, r2])
        check(log["corrupt"] == 0, "the torn tail was not cut at start-up: %d corrupt frames" % log["corrupt"])

        # corrupted (not torn) last frame of the newest file: data loss is confined to it
        segs = sorted(os.listdir(os.path.join(e.data, "segments")))
        newest = os.path.join(e.data, "segments", segs[-1])
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:
            f.seek(size - 40)
            f.write(os.urandom(32))
        e.start()
        r3 = Env.result(e.produce(3, 1, 20000, "--block"))
        check(e.stop() == 0, "ateld exit status after a corrupted tail")
        log = e.logcheck()
        expect_exact(log, [r1, r3])  # producer 3 came after the damage: intact
        print("torn: injected torn write + kill -9 recovered exactly; torn tail cut; corrupted tail survived")
    finally:
        e.close()


def t_faultwrite():
    """Injected write failures (ENOSPC): producers stall, ateld retries and recovers by itself."""
    e = Env("faultwrite")
    try:
        e.start({"ATEL_FAULT_WRITE": "10"})
        res = [Env.result(e.produce(i, 2, 40000, "--block")) for i in (1,)]
        e.wait_for("recovery message", lambda: "work again" in e.log_text())
        rc = e.stop()
        check(rc == 0, "ateld exit status %d" % rc)
        st = e.status()
        check(st["stats"]["write_errors"] >= 1, "no write errors counted")
        log = e.logcheck()
        expect_exact(log, res)
        print("faultwrite: %d write errors, recovered, exact" % st["stats"]["write_errors"])
    finally:
        e.close()


def t_diskfull():
    """A real full filesystem (tmpfs, root only): stall, then recovery when space returns."""
    if os.geteuid() != 0:
        print("diskfull: needs root to mount a tmpfs; skipped")
        sys.exit(77)
    e = Env("diskfull")
    mnt = e.data
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "atel-test", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        e.close()
        print("diskfull: cannot mount tmpfs (%s); skipped" % r.stderr.strip())
        sys.exit(77)
    try:
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
                    os.fsync(f.fileno())
                    st = os.statvfs(mnt)
                    if st.f_bavail * st.f_frsize < 160 * 1024:
                        break
            except OSError:
                pass
        e.start()
        p = e.produce(1, 2, 150000, "--block")
        e.wait_for("a failed write", lambda: "cannot write segment" in e.log_text(), timeout=40)
        time.sleep(0.5)
        check(p.poll() is None, "producer finished although the disk is full")
        os.unlink(filler)
        res = [Env.result(p, timeout=60)]
        e.wait_for("recovery message", lambda: "work again" in e.log_text())
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        expect_exact(log, res)
        print("diskfull: stalled on ENOSPC, recovered when space returned, exact")
    finally:
        if e.daemon is not None and e.daemon.poll() is None:
            e.daemon.kill()
            e.daemon.wait()
        subprocess.run(["umount", "-l", mnt])
        e.close()


def t_garbage():
    """Garbage and undefined ids in one ring, a ring whose head jumps: ateld survives,
    other rings intact, damage counted exactly."""
    e = Env("garbage")
    try:
        e.start()
        pg = e.produce(1, 2, 30000, "--block", "--garbage", 100, "--bad-ids", 50)
        pq = e.produce(2, 2, 30000, "--block", "--corrupt-head")
        pn = e.produce(3, 2, 30000, "--block")
        rg, rq, rn = Env.result(pg), Env.result(pq), Env.result(pn)
        e.wait_for("quarantine", lambda: (e.status() or {}).get("stats", {}).get("rings_quarantined", 0) >= 1)
        e.wait_for("quarantined ring freed", lambda: "quarantined ring" in e.log_text())
        check(e.daemon.poll() is None, "ateld died")
        rc = e.stop()
        check(rc == 0, "ateld exit status %d" % rc)
        log = e.logcheck()
        expect_exact(log, [rg, rn])
        # the corrupted thread's samples may have been drained before its head jumped
        key = "2:1"
        s = log["series"].get(key)
        if s:
            check(s["count"] == s["distinct"] and s["count"] <= rq["threads"][1]["written"],
                  "%s: %s" % (key, s))
        expect_exact(log, [{"producer": 2, "threads": [rq["threads"][0]]}])
        st = e.status()
        check(st["stats"]["records_invalid"] == 150, "records_invalid %d, expected 100 garbage slots + 50 bad ids"
              % st["stats"]["records_invalid"])
        check(log["loss"]["invalid"] == 150, "LOSS(invalid) in the log sums to %d, expected 150" %
              log["loss"]["invalid"])
        check(st["stats"]["rings_quarantined"] == 1, "rings_quarantined %d" % st["stats"]["rings_quarantined"])
        print("garbage: survived; 150 invalid counted and logged; 1 ring quarantined and freed; others exact")
    finally:
        e.close()


def t_death():
    """A producer killed with -9 while owning rings: drained, DEATH logged, rings reclaimed."""
    e = Env("death")
    try:
        e.start()
        p = e.produce(1, 2, 10000000, "--block", "--rate", 50000)
        e.wait_for("records flowing", lambda: (e.status() or {}).get("stats", {}).get("records_drained", 0) > 20000)
        p.kill()
        p.wait()
        e.wait_for("2 reclaims", lambda: (e.status() or {}).get("stats", {}).get("producers_reclaimed", 0) >= 2)
        st = e.status()
        check(all(r["state"] == "free" for r in st["rings"]), "rings not free: %s" % st["rings"])
        rc = e.stop()
        check(rc == 0, "ateld exit status %d" % rc)
        log = e.logcheck()
        check(log["deaths"] == 2, "DEATH markers: %d, expected 2" % log["deaths"])
        for t in (0, 1):
            s = log["series"]["1:%d" % t]
            check(s["count"] == s["distinct"] and s["min"] == 0 and s["max"] == s["count"] - 1,
                  "thread %d: not a contiguous prefix: %s" % (t, s))
        print("death: 2 rings of a killed producer drained (%d, %d samples), DEATH logged, reclaimed" %
              (log["series"]["1:0"]["count"], log["series"]["1:1"]["count"]))
    finally:
        e.close()


def run_ateld(args, env=None, timeout=30):
    e = dict(os.environ)
    for k in ("ATEL_SHM", "ATEL_DATA_DIR", "ATEL_PROMETHEUS_PORT", "ATEL_LOG_LEVEL", "ATEL_FORCE_PWRITEV",
              "ATEL_IO", "ATEL_EXPORT_INTERVAL_MS", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([ATELD] + args, capture_output=True, text=True, env=e, timeout=timeout)


def t_config():
    """Config errors each produce their message; --check-config; --help; usage errors."""
    d = tempfile.mkdtemp(prefix="atel-it-config-%d-" % os.getpid())
    try:
        cases = [
            ('{"prometheus": {"port": "abc"}}', 'prometheus.port: expected an integer 1..65535, got "abc"'),
            ('{"prometheus": {"prot": 1}}', "prometheus.prot: unknown key (expected one of: enabled, bind, port"),
            ('{"drain": {"idle_sleep_max_us": 50000}}',
             "drain.idle_sleep_max_us: expected an integer 1..10000, got 50000"),
            ('{"shm": {"ring_capacity": 1000}}', "shm.ring_capacity: expected a power of two 64..16777216, got 1000"),
            ('{"storage": {"io": "aio"}}', 'storage.io: expected one of "auto", "io_uring", "pwritev", got "aio"'),
            ('{"json": {"enabled": 1}}', "json.enabled: expected true or false, got 1"),
            ('{"opentelemetry": {"headers": {"Authorization": 5}}}',
             "opentelemetry.headers.Authorization: expected a single-line string, got a number"),
            ('{"data_dir": "x",\n "oops"}', "line 2, column"),
        ]
        for i, (text, want) in enumerate(cases):
            path = os.path.join(d, "bad%d.json" % i)
            with open(path, "w") as f:
                f.write(text)
            for args in (["--check-config", path], ["--config", path]):
                r = run_ateld(args)
                check(r.returncode == 1, "%s %s: exit %d, expected 1" % (args[0], text, r.returncode))
                check(("%s: %s" % (path, want)) in r.stderr, "%s: stderr %r lacks %r" % (args[0], r.stderr, want))
        good = os.path.join(d, "good.json")
        with open(good, "w") as f:
            json.dump({"data_dir": os.path.join(d, "data"), "opentelemetry": {
                "enabled": True, "endpoint": "https://user:pw@collector:4318",
                "headers": {"Authorization": "Bearer SECRET-TOKEN"}},
                "prometheus": {"bearer_token": "PROM-SECRET"}}, f)
        r = run_ateld(["--check-config", good])
        check(r.returncode == 0, "--check-config good: exit %d: %s" % (r.returncode, r.stderr))
        check("configuration OK" in r.stdout, r.stdout)
        for secret in ("SECRET-TOKEN", "PROM-SECRET", "pw@"):
            check(secret not in r.stdout, "--check-config printed a secret (%s)" % secret)
        eff = json.loads(r.stdout.split("\n", 1)[1])
        check(eff["opentelemetry"]["headers"] == {"Authorization": "(set, not shown)"},
              "--check-config shows header names, not a count: %r" % eff["opentelemetry"]["headers"])
        r = run_ateld(["--check-config", os.path.join(d, "missing.json")])
        check(r.returncode == 1 and "missing.json: cannot open: No such file or directory" in r.stderr, r.stderr)
        r = run_ateld(["--check-config", good], env={"ATEL_PROMETHEUS_PORT": "abc"})
        check(r.returncode == 1 and "environment ATEL_PROMETHEUS_PORT" in r.stderr, r.stderr)
        r = run_ateld(["--help"])
        check(r.returncode == 0, "--help exit %d" % r.returncode)
        for opt in ("--config", "--shm", "--data-dir", "--check-config", "--reindex", "--foreground", "--help",
                    "--version", "SIGTERM", "SIGHUP", "Exit status"):
            check(opt in r.stdout, "--help does not mention %s" % opt)
        r = run_ateld(["--version"])
        check(r.returncode == 0 and r.stdout.startswith("ateld "), r.stdout)
        r = run_ateld(["--bogus"])
        check(r.returncode == 1 and "unknown option '--bogus'" in r.stderr, r.stderr)
        r = run_ateld(["--config"])
        check(r.returncode == 1 and "needs an argument" in r.stderr, r.stderr)
        r = run_ateld(["stray"])
        check(r.returncode == 1 and "unexpected argument 'stray'" in r.stderr, r.stderr)
        print("config: %d error messages, --check-config, --help, usage errors OK" % len(cases))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def t_lifecycle():
    """One ateld per data dir and per segment; SIGHUP starts a new file; a second
    SIGTERM during a stuck shutdown exits at once with status 2; status file schema."""
    e = Env("lifecycle")
    try:
        e.start()
        st = e.status()
        for k in ("pid", "version", "state", "start_ns", "heartbeat_ns", "shm", "io_path", "current_segment",
                  "stats", "rings", "exporters", "config"):
            check(k in st, "status file lacks %s" % k)
        for k in ("name", "instance_id", "rings", "ring_capacity"):
            check(k in st["shm"], "status.shm lacks %s" % k)
        for k in ("prometheus", "json", "otlp"):
            check(k in st["exporters"], "status.exporters lacks %s" % k)
        check(st["shm"]["rings"] == 16 and st["shm"]["ring_capacity"] == 4096, st["shm"])
        hb1 = st["heartbeat_ns"]
        e.wait_for("heartbeat moving", lambda: (e.status() or {}).get("heartbeat_ns", 0) > hb1)

        hold = e.produce(9, 2, 100, "--block", "--hold-ms", 3000)
        e.wait_for("rings_active == 2", lambda: (e.status() or {}).get("stats", {}).get("rings_active") == 2)
        Env.result(hold)
        e.wait_for("rings_active == 0", lambda: (e.status() or {}).get("stats", {}).get("rings_active") == 0)

        r = run_ateld(["--config", e.cfg_path])  # same data dir
        check(r.returncode == 2 and "another ateld (pid %d)" % e.daemon.pid in r.stderr, r.stderr)
        r = run_ateld(["--config", e.cfg_path, "--data-dir", os.path.join(e.dir, "other")])  # same segment
        check(r.returncode == 2 and "already drained by another ateld" in r.stderr, r.stderr)

        first = e.status()["current_segment"]
        e.daemon.send_signal(signal.SIGHUP)
        e.wait_for("a new segment file after SIGHUP",
                   lambda: (e.status() or {}).get("current_segment", first) != first)
        Env.result(e.produce(1, 1, 1000, "--block"))
        check(e.stop() == 0, "exit status after SIGTERM")
        check(e.status()["state"] == "stopped", "state after stop")

        # stuck shutdown (every write fails) + second SIGTERM: immediate exit 2
        e.start({"ATEL_FAULT_WRITE": "1000000"})
        p = e.produce(2, 1, 5000, "--block")
        e.wait_for("a failed write", lambda: "cannot write segment" in e.log_text())
        e.daemon.send_signal(signal.SIGTERM)
        e.wait_for("stopping", lambda: "stopping" in e.log_text())
        e.daemon.send_signal(signal.SIGTERM)
        rc = e.daemon.wait(20)
        check(rc == 2, "second SIGTERM: exit %d, expected 2" % rc)
        # nothing lost: the next ateld logs what the stuck one could not
        e.start()
        r2 = Env.result(p)
        check(e.stop() == 0, "exit status after restart")
        log = e.logcheck()
        expect_exact(log, [r2])
        print("lifecycle: locks, SIGHUP rotation, double SIGTERM, status schema OK")
    finally:
        e.close()


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def t_idle():
    """Idle CPU over 10 s and burst pickup latency (reported, not asserted)."""
    e = Env("idle")
    try:
        e.start()
        time.sleep(1)
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = cpu_ticks(e.daemon.pid), time.time()
        time.sleep(10)
        c1, t1 = cpu_ticks(e.daemon.pid), time.time()
        idle_pct = 100.0 * (c1 - c0) / hz / (t1 - t0)
        r = Env.result(e.produce(1, 1, 0, "--latency", 200))
        lat = r["latency_us"]
        check(e.stop() == 0, "exit status")
        log = e.logcheck()
        check(log["series"]["1:0"]["count"] == 200, "latency samples in the log: %s" % log["series"])
        print("idle: ateld idle CPU %.2f%% of one core over %.1f s (drain.idle_sleep_max_us=1000); "
              "burst pickup (publish -> in the log and released) p50 %.0f us, p99 %.0f us, max %.0f us "
              "over %d probes" % (idle_pct, t1 - t0, lat["p50"], lat["p99"], lat["max"], lat["n"]))
    finally:
        e.close()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def db_dump(path):
    import sqlite3
    con = sqlite3.connect(path)
    try:
        out = {}
        for table in ("telemetry_metrics", "telemetry_spans", "telemetry_span_events", "telemetry_aggregates"):
            cols = [r[1] for r in con.execute("PRAGMA table_info(%s)" % table)]
            rows = sorted(tuple(map(repr, r)) for r in con.execute("SELECT * FROM %s" % table))
            out[table] = (cols, rows)
        return out
    finally:
        con.close()


def t_full():
    """Every part on: index and /metrics follow the log; SIGTERM; then --reindex
    rebuilds the same rows from the segments alone."""
    import urllib.request
    port = free_port()
    e = Env("full", {"index": {"enabled": True, "mode": "full"}, "prometheus": {"enabled": True, "port": port},
                     "export_interval_ms": 500})
    try:
        e.start()
        res = [Env.result(e.produce(i, 2, 5000, "--block")) for i in (1, 2)]
        want = 'tprod_seq{p="1",t="0"} 4999'
        def scrape():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return ""
        e.wait_for("/metrics shows the last sample", lambda: want in scrape())
        e.wait_for("index caught up", lambda: (lambda s: s and s["indexer"]["running"] and
                                               s["stats"]["indexer_lag_records"] == 0 and
                                               s["stats"]["index_rows"] >= 20000)(e.status()), timeout=300)
        check(e.status()["exporters"]["prometheus"]["enabled"], "prometheus not reported enabled")
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        expect_exact(e.logcheck(), res)
        db = os.path.join(e.data, "telemetry.db")
        before = db_dump(db)
        n = len(before["telemetry_metrics"][1])
        check(n == 20000, "telemetry_metrics has %d rows, expected 20000 samples" % n)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        r = run_ateld(["--config", e.cfg_path, "--reindex"], timeout=120)
        check(r.returncode == 0, "--reindex exit %d: %s" % (r.returncode, r.stderr))
        after = db_dump(db)
        for table in before:
            check(before[table] == after[table], "%s differs after --reindex (%d rows before, %d after)" %
                  (table, len(before[table][1]), len(after[table][1])))
        # refused while ateld runs on the same data dir
        e.start()
        r = run_ateld(["--config", e.cfg_path, "--reindex"])
        check(r.returncode == 2 and "another ateld" in r.stderr, r.stderr)
        # the /metrics port is taken: a clear error and exit status 2
        r = run_ateld(["--config", e.cfg_path, "--data-dir", os.path.join(e.dir, "d2"),
                       "--shm", os.path.join(e.dir, "seg2")])
        check(r.returncode == 2 and "exporters:" in r.stderr, "port in use: exit %d: %s" % (r.returncode, r.stderr))
        check(e.stop() == 0, "exit status")
        print("full: /metrics and the index follow the log; --reindex rebuilt %d identical metric rows" % n)
    finally:
        e.close()


def t_libatel():
    """Real libatel agents (4 processes x 3 threads, metrics + 3 nested spans per iteration):
    after SIGTERM the log holds exactly the records libatel reports published, the
    drops it reports come back as LOSS records, and every span nests and ends."""
    e = Env("libatel", {"shm": {"rings": 32, "ring_capacity": 16384}, "index": {"enabled": True, "mode": "full"}})
    procs, threads, iters = 4, 3, 3000
    try:
        e.start()
        ps = []
        for i in range(1, procs + 1):
            ps.append(subprocess.Popen([TAGENT, "--shm", e.shm, "--id", str(i), "--threads", str(threads),
                                        "--iters", str(iters), "--pace-us", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True))
        e.procs += ps
        res = [Env.result(p) for p in ps]
        e.wait_for("index caught up", lambda: (lambda s: s and s["stats"]["indexer_lag_records"] == 0 and
                                               s["stats"]["index_rows"] > 0)(e.status()), timeout=300)
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        drops = 0
        for r in res:
            c = log["pids"].get(str(r["pid"]))
            check(c is not None, "agent %d (pid %d): nothing in the log" % (r["producer"], r["pid"]))
            check(c["data"] == r["records"], "agent %d: log has %d data records, libatel published %d" %
                  (r["producer"], c["data"], r["records"]))
            # libatel reports drops in-band when space returns; the last ones may only be in its counters
            check(c["loss_ring_full"] <= r["drops_ring_full"], "agent %d: LOSS(ring_full) %d, libatel dropped %d"
                  % (r["producer"], c["loss_ring_full"], r["drops_ring_full"]))
            check(r["invalid"] == 0 and r["drops_no_def"] == 0 and r["drops_no_ring"] == 0 and
                  r["drops_no_sidecar"] == 0, "agent %d: unexpected drops/invalid: %s" % (r["producer"], r))
            drops += r["drops_ring_full"]
            if r["drops_ring_full"] == 0:
                check(c["span_start"] == 3 * threads * iters and c["span_end"] == 3 * threads * iters,
                      "agent %d: %d span starts, %d ends, expected %d" % (r["producer"], c["span_start"],
                                                                          c["span_end"], 3 * threads * iters))
                check(c["span_error"] == threads * iters // 10, "agent %d: %d span errors" %
                      (r["producer"], c["span_error"]))
                for t in range(threads):
                    s = log["series"].get("agent%d:%d" % (r["producer"], t))
                    check(s and s["count"] == iters and s["distinct"] == iters and s["max"] == iters - 1,
                          "agent %d thread %d: tagent_seq %s" % (r["producer"], t, s))
        if drops == 0:
            sp = log["spans"]
            check(sp["orphans"] == 0 and sp["unended"] == 0 and sp["end_without_start"] == 0 and
                  sp["double_start"] == 0, "span structure: %s" % sp)
            import sqlite3
            con = sqlite3.connect(os.path.join(e.data, "telemetry.db"))
            n = con.execute("SELECT count(*) FROM telemetry_spans").fetchone()[0]
            nerr = con.execute("SELECT count(*) FROM telemetry_spans WHERE status_code = 2").fetchone()[0]
            con.close()
            check(n == 3 * procs * threads * iters, "telemetry_spans has %d rows, expected %d" %
                  (n, 3 * procs * threads * iters))
            check(nerr == procs * threads * iters // 10, "telemetry_spans has %d ERROR spans" % nerr)
        print("libatel: %d agents x %d threads x %d iterations: log == published (%d records), %d drops "
              "counted by libatel, spans nested and ended%s" % (procs, threads, iters, sum(r["records"] for r in res),
                                                              drops, "" if drops else ", index rows exact"))
    finally:
        e.close()


def t_columns():
    """storage.encoding "columns": kill -9 twice under load, restart, SIGTERM; the log
    holds every sample exactly once, the index has every row, zstd -t accepts every
    file, `atel replay --emit raw` gives back the records, and the files are smaller
    than the same records would be in the default encoding."""
    e = Env("columns", {"storage": {"encoding": "columns"}, "index": {"enabled": True, "mode": "full"}})
    try:
        e.start()
        ps = [e.produce(i, 2, 40000, "--block", "--rate", 40000) for i in (1, 2)]
        for _ in range(2):
            time.sleep(0.4)
            e.kill9()
            e.start()
        res = [Env.result(p, timeout=120) for p in ps]
        st = e.status()
        check(st["config"]["storage"]["encoding"] == "columns", "status config: %s" % st["config"]["storage"])
        # ateld's stop gives the indexer 10 s to reach the end of the log; under ASan on a
        # loaded machine 160,000 rows take longer, so wait for it here (the rest would be
        # indexed at the next start, which this test does not make)
        import sqlite3

        def index_rows():
            try:
                con = sqlite3.connect(os.path.join(e.data, "telemetry.db"), timeout=5)
                try:
                    return con.execute("SELECT count(*) FROM telemetry_metrics").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.Error:
                return -1
        want = sum(t["written"] for r in res for t in r["threads"])
        e.wait_for("index caught up", lambda: (lambda s: s and s["stats"]["indexer_lag_records"] == 0 and
                                               index_rows() >= want)(e.status()), timeout=300)
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        n = expect_exact(log, res, block=True)
        check(log["corrupt"] == 0 and log["invalid"] == 0, "corrupt/invalid records: %s" % log)
        import sqlite3
        con = sqlite3.connect(os.path.join(e.data, "telemetry.db"))
        rows = con.execute("SELECT count(*) FROM telemetry_metrics").fetchone()[0]
        con.close()
        check(rows == n, "telemetry_metrics has %d rows for %d samples" % (rows, n))
        segs = os.path.join(e.data, "segments")
        files = sorted(os.path.join(segs, f) for f in os.listdir(segs) if f.endswith(".atseg"))
        r = subprocess.run(["zstd", "-q", "-t"] + files, capture_output=True, text=True)
        check(r.returncode == 0, "zstd -t refused a COLUMNS file: %s" % r.stderr)
        raw = os.path.join(e.dir, "raw.bin")
        r = subprocess.run([ATEL_CLI, "replay", segs, "--emit", "raw", "-o", raw], capture_output=True, text=True)
        check(r.returncode == 0, "atel replay --emit raw: exit %d: %s" % (r.returncode, r.stderr))
        data = open(raw, "rb").read()
        check(len(data) == log["bytes_raw"] and len(data) % 64 == 0,
              "--emit raw wrote %d bytes, the reader decoded %d" % (len(data), log["bytes_raw"]))
        check(data[0] == 0x40, "--emit raw does not start with a CHUNK record (0x%02x)" % data[0])
        # the same records in the default encoding, for comparison
        plain = subprocess.run(["zstd", "-q", "-3", "-c"], input=data, capture_output=True).stdout
        comp = sum(os.path.getsize(f) for f in files)
        check(comp * 10 < len(plain) * 9, "columns files %d bytes, plain zstd -3 of the records %d" % (comp, len(plain)))
        print("columns: %d samples exactly once through 2 kill -9, %d index rows; %d bytes on disk, %d as "
              "plain zstd -3 of the same records" % (n, rows, comp, len(plain)))
    finally:
        e.close()


def scrape_metrics(port):
    """{(name, frozenset(labels)): value} from /metrics (Prometheus text 0.0.4)."""
    import re
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(m, name, **labels):
    return m.get((name, frozenset(labels.items())))


def run_agents(e, n, threads, burst, *extra):
    # The exit wait (default 100 ms) bounds how long a thread's folded values wait for
    # ring space at exit before they become counted drops. These tests assert that no
    # value is lost while a sidecar drains, so they give the sidecar time to drain even
    # on a CI machine with a load average of 20 (ASan, other suites): the maximum, 10 s.
    env = dict(os.environ, ATEL_EXIT_WAIT_MS="10000")
    ps = []
    for i in range(1, n + 1):
        ps.append(subprocess.Popen([TAGENT, "--shm", e.shm, "--id", str(i), "--threads", str(threads),
                                    "--burst", str(burst)] + [str(x) for x in extra],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    e.procs += ps
    return [Env.result(p, timeout=240) for p in ps]


def loss_of(res, key):
    return sum(r[key] for r in res)


def t_burst():
    """Issue 11's burst, more producers than cores: 3 processes x 4 threads, each adding 1
    to its own counter 100,000 times flat out (a 200 us pause every 1,024 adds) and
    observing a histogram as often, into small rings. No value is lost: every counter
    is exactly 100,000 and every histogram's buckets, count and sum exact on /metrics
    and in the log, libatel counts no drop, and the full rings show up as folds."""
    port = free_port()
    e = Env("burst", {"shm": {"rings": 16, "ring_capacity": 1024}, "prometheus": {"enabled": True, "port": port},
                      "export_interval_ms": 200})
    procs, threads, n = 3, 4, 100000
    try:
        e.start()
        res = run_agents(e, procs, threads, n, "--hist", 1)
        folded = loss_of(res, "folded")
        for r in res:
            check(r["drops_ring_full"] == 0 and r["drops_no_ring"] == 0 and r["drops_no_sidecar"] == 0,
                  "agent %d dropped: %s" % (r["producer"], r))
        def all_exact():
            m = scrape_metrics(port)
            return all(metric(m, "tagent_burst_total", p=str(p), t=str(t)) == n
                       for p in range(1, procs + 1) for t in range(threads))
        e.wait_for("/metrics shows every counter at %d" % n, all_exact, timeout=60)
        m = scrape_metrics(port)
        # the histograms too, folded observations included: n/4 of each value 0, .3, .6, .9
        for p in range(1, procs + 1):
            for t in range(threads):
                lab = {"p": str(p), "t": str(t)}
                got = [metric(m, "tagent_burst_seconds_bucket", le=le, **lab) for le in ("0.25", "0.5", "1", "+Inf")]
                check(got == [n / 4, n / 2, n, n] and metric(m, "tagent_burst_seconds_count", **lab) == n and
                      abs(metric(m, "tagent_burst_seconds_sum", **lab) - n / 4 * 1.8) < 1e-6 * n,
                      "/metrics histogram p=%d t=%d: buckets %s count %s sum %s" %
                      (p, t, got, metric(m, "tagent_burst_seconds_count", **lab),
                       metric(m, "tagent_burst_seconds_sum", **lab)))
        check(metric(m, "atel_records_dropped_total", reason="ring_full") == 0,
              "/metrics ring_full drops: %s" % metric(m, "atel_records_dropped_total", reason="ring_full"))
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        for p in range(1, procs + 1):
            for t in range(threads):
                b = log["burst"].get("%d:%d" % (p, t))
                check(b and b["sum"] == n and b["calls"] == n, "log: counter p=%d t=%d: %s" % (p, t, b))
        check(log["loss"]["ring_full"] == 0, "log loss: %s" % log["loss"])
        check(metric(m, "atel_drain_pressure_episodes_total") >= 1,
              "the rings filled, yet the drain never compressed at the pressure level")
        print("burst: %d x %d threads x %d adds and observations: every counter and histogram exact on "
              "/metrics and in the log; %d calls folded while rings were full (%.1f%%), 0 dropped" %
              (procs, threads, n, folded, 100.0 * folded / (2 * procs * threads * n)))
    finally:
        e.close()


def t_burst_spans():
    """Spans under overload: 3 x 4 threads, a span per add, tiny rings. Spans that cannot
    be recorded are dropped whole: the log holds as many ends as starts, and every
    figure of loss agrees exactly with what the producers counted: the log
    (LOSS_TOTAL), /metrics and the status file, by cause, with spans counted as spans."""
    port = free_port()
    e = Env("burst_spans", {"shm": {"rings": 16, "ring_capacity": 512}, "prometheus": {"enabled": True, "port": port},
                            "export_interval_ms": 200})
    procs, threads, n = 3, 4, 30000
    try:
        e.start()
        res = run_agents(e, procs, threads, n, "--spans", 1)
        spans_dropped = loss_of(res, "spans_dropped")
        full = loss_of(res, "drops_ring_full")
        reent = loss_of(res, "drops_reentrant")
        check(spans_dropped > 0, "no span was dropped: the rings never filled (%s)" % res)
        e.wait_for("/metrics shows the producers' drops", lambda: metric(scrape_metrics(port),
                   "atel_records_dropped_total", reason="ring_full") == full, timeout=30)
        m = scrape_metrics(port)
        check(metric(m, "atel_spans_dropped_total") == spans_dropped,
              "/metrics spans dropped %s, producers %d" % (metric(m, "atel_spans_dropped_total"), spans_dropped))
        e.wait_for("the status file shows the producers' drops",
                   lambda: (lambda st: st and st["stats"]["drops"]["ring_full"] == full and
                            st["stats"]["spans_dropped"] == spans_dropped)(e.status()))
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        sp = log["spans"]
        check(sp["unended"] == 0 and sp["end_without_start"] == 0 and sp["double_start"] == 0,
              "partial spans in the log: %s" % sp)
        check(sp["started"] + spans_dropped == procs * threads * n,
              "log has %d spans + %d dropped, agents started %d" % (sp["started"], spans_dropped,
                                                                    procs * threads * n))
        check(log["loss"]["ring_full"] == full, "log ring_full %d, producers %d" % (log["loss"]["ring_full"], full))
        check(log["loss"]["spans"] == spans_dropped, "log spans %d, producers %d" % (log["loss"]["spans"],
                                                                                     spans_dropped))
        check(log["loss"]["reentrant"] == reent, "log reentrant %d, producers %d" % (log["loss"]["reentrant"], reent))
        # atel replay counts the same loss from the same files
        rp = subprocess.run([ATEL_CLI, "replay", os.path.join(e.data, "segments"), "--json"], capture_output=True,
                            text=True, timeout=120)
        check(rp.returncode == 0, "atel replay exit %d: %s" % (rp.returncode, rp.stderr))
        rl = json.loads(rp.stdout)["losses"]
        check(rl["ring_full"] == full and rl["spans"] == spans_dropped, "atel replay losses %s, producers "
              "ring_full %d spans %d" % (rl, full, spans_dropped))
        for p in range(1, procs + 1):
            for t in range(threads):
                b = log["burst"].get("%d:%d" % (p, t))
                check(b and b["sum"] == n, "log: counter p=%d t=%d: %s" % (p, t, b))
        print("burst_spans: %d spans whole in the log, %d dropped whole; %d ring_full drops equal in the log, "
              "/metrics and status" % (sp["started"], spans_dropped, full))
    finally:
        e.close()


def t_loss_restart():
    """Drops while no sidecar ran, and across kill -9: ateld is killed, a producer fills
    its ring and drops; ateld restarts (re-attaching the same segment) and logs the
    drops; killed again and restarted, nothing is counted twice. The log's ring_full
    loss equals what the producers counted, and the status file agrees."""
    e = Env("loss_restart", {"shm": {"rings": 4, "ring_capacity": 256}})
    try:
        e.start()
        e.kill9()
        # nobody drains: about 250 fit, the rest drop (no END: it would wait for room forever)
        r1 = Env.result(e.produce(1, 1, 5000, "--no-end"))
        check(r1["threads"][0]["dropped"] > 4000, "tprod dropped only %s" % r1)
        e.start()
        e.wait_for("status shows the drops", lambda: (lambda s: s and s["stats"]["drops"]["ring_full"] ==
                                                      r1["threads"][0]["dropped"])(e.status()))
        e.kill9()
        e.start()
        try:
            r2 = Env.result(e.produce(2, 1, 3000, "--block"), timeout=150)
        except Fail as f:
            raise Fail("%s\nstatus: %s\nateld log:\n%s" % (f, json.dumps(e.status()), e.log_text()))
        dropped = r1["threads"][0]["dropped"] + r2["threads"][0]["dropped"]
        e.wait_for("status shows the drops after a second restart",
                   lambda: (lambda s: s and s["stats"]["drops"]["ring_full"] == dropped)(e.status()))
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        check(log["loss"]["ring_full"] == dropped, "log ring_full %d, producers dropped %d (LOSS_TOTAL records: %d)"
              % (log["loss"]["ring_full"], dropped, log["loss_totals"]))
        print("loss_restart: %d drops made while ateld was down, counted once through 2 kill -9" % dropped)
    finally:
        e.close()


def t_loss_kill():
    """SIGKILL of a producer mid-burst: what it had folded and not written dies with it and
    is counted (producer_died); calls made = log + ring_full + producer_died, within the
    one call the kill may have interrupted per thread."""
    import mmap
    e = Env("loss_kill", {"shm": {"rings": 8, "ring_capacity": 256}})
    threads = 4
    try:
        e.start()
        prog = os.path.join(e.dir, "progress")
        p = subprocess.Popen([TAGENT, "--shm", e.shm, "--id", "1", "--threads", str(threads), "--burst", "5000000",
                              "--progress", prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        e.procs.append(p)
        e.wait_for("the agent folds", lambda: (lambda s: s and s["stats"].get("metric_folds", 0) > 1000)(e.status()))
        p.send_signal(signal.SIGKILL)
        p.wait()
        with open(prog, "rb") as f:
            raw = f.read(threads * 16)
        import struct
        vals = struct.unpack("<%dQ" % (2 * threads), raw)
        started, done = sum(vals[0::2]), sum(vals[1::2])
        e.wait_for("the dead agent's rings reclaimed", lambda: (lambda s: s and
                   s["stats"]["producers_reclaimed"] >= threads)(e.status()), timeout=30)
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        got = sum(b["calls"] for b in log["burst"].values())
        died, full = log["loss"]["producer_died"], log["loss"]["ring_full"]
        total = got + died + full
        check(done <= total <= started, "calls done %d, started %d; log %d + producer_died %d + ring_full %d = %d"
              % (done, started, got, died, full, total))
        print("loss_kill: agent killed after %d calls; log %d + died %d + ring_full %d accounts for all" %
              (done, got, died, full))
    finally:
        e.close()


def t_size_retention():
    """retention.max_bytes: with small segment files and a 400 KB limit, the oldest
    finished files are deleted (counted in segments_deleted) until the finished files
    plus the data dir's own files (telemetry.db, its WAL, the status file) fit."""
    limit = 400000
    e = Env("size_retention", {"storage": {"rotate_bytes": 65536}, "retention": {"max_bytes": limit}})
    try:
        e.start()
        res = Env.result(e.produce(1, 2, 300000, "--block"), timeout=300)
        check(sum(t["written"] for t in res["threads"]) == 600000, "producer wrote everything")
        seg = os.path.join(e.data, "segments")

        def size(p):  # retention may remove a file between the listing and this
            try:
                return os.path.getsize(p)
            except FileNotFoundError:
                return 0

        def fits():
            files = sorted(f for f in os.listdir(seg) if f.endswith(".atseg"))
            finished = sum(size(os.path.join(seg, f)) for f in files[:-1])
            own = sum(size(os.path.join(e.data, f)) for f in os.listdir(e.data)
                      if os.path.isfile(os.path.join(e.data, f)))
            st = e.status() or {}
            deleted = st.get("stats", {}).get("segments_deleted", 0)
            last[:] = [finished, own, deleted, len(files)]
            return (finished + own <= limit and deleted > 0) and (finished, own, deleted, len(files))
        last = []
        try:
            got = e.wait_for("the data dir within retention.max_bytes", fits, timeout=120)
        except Fail as ex:
            raise Fail("%s (last: finished, own, deleted, files = %s)" % (str(ex)[:300], last))
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        print("size_retention: %d B finished segments + %d B data dir files <= %d, %d files deleted, %d left" %
              (got[0], got[1], limit, got[2], got[3]))
    finally:
        e.close()


def t_upgrade():
    """A data dir written by 0.1.0 (index.mode did not exist: a full index with a row
    per sample and span; fixtures/datadir-0.1.0-full.tar.gz, made by that ateld and
    `atel load`) opens with the default compact index: the log says so, the old rows
    stay, the file is marked compact, and `atel query`/`traces` give the same answers
    (now from the log) as before the upgrade, new data included after more records."""
    import sqlite3
    import tarfile
    atel = os.path.join(BUILD, "tools", "atel")
    fx = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "datadir-0.1.0-full.tar.gz")
    e = Env("upgrade", {"index": {"enabled": True},
                        "retention": {"metrics_days": 0, "traces_days": 0, "aggregates_days": 0,
                                      "segments_days": 0}})
    try:
        os.makedirs(e.data)
        with tarfile.open(fx) as t:
            t.extractall(e.data)
        rng = ["--start", "1700000000", "--end", "4000000000"]

        def q(metric):
            r = subprocess.run([atel, "--data-dir", e.data, "query", metric, *rng, "--json"],
                               capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, "atel query %s: %s" % (metric, r.stderr))
            return json.loads(r.stdout)

        def traces():
            r = subprocess.run([atel, "--data-dir", e.data, "traces", "--json", "--limit", "0"],
                               capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, "atel traces: %s" % r.stderr)
            return json.loads(r.stdout)

        old_q, old_t = q("tool_calls_total"), traces()
        check(old_q["source"] == "db" and old_q["series"], "the 0.1.0 index answers from its rows: %s" % old_q["source"])
        con = sqlite3.connect(os.path.join(e.data, "telemetry.db"))
        old_rows = con.execute("SELECT count(*) FROM telemetry_metrics").fetchone()[0]
        con.close()
        e.start()
        res = Env.result(e.produce(1, 1, 2000, "--block"))
        check(sum(t["written"] for t in res["threads"]) == 2000, "producer wrote everything")
        e.wait_for("index caught up", lambda: (lambda s: s and s["stats"]["indexer_lag_records"] == 0 and
                                                s["stats"]["records_drained"] >= 2000)(e.status()), timeout=120)
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        check("this full index keeps its raw rows" in e.log_text(), "the log says the index became compact")
        con = sqlite3.connect(os.path.join(e.data, "telemetry.db"))
        mode = con.execute("SELECT value FROM telemetry_meta WHERE key = 'index_mode'").fetchone()[0]
        rows = con.execute("SELECT count(*) FROM telemetry_metrics").fetchone()[0]
        segs = con.execute("SELECT sum(samples) FROM telemetry_segments").fetchone()[0]
        con.close()
        check(mode == "compact", "index_mode after the upgrade: %s" % mode)
        check(rows == old_rows, "old telemetry_metrics rows kept (%d, were %d)" % (rows, old_rows))
        check(segs and segs >= 2000, "telemetry_segments counts the new samples: %s" % segs)
        new_q, new_t = q("tool_calls_total"), traces()
        check(new_q["source"] == "segments", "a compact index: the log answers (%s)" % new_q["source"])
        check(new_q["series"] == old_q["series"], "tool_calls_total: the same answer before and after")
        check(new_t["traces"] == old_t["traces"], "traces: the same list before and after")
        print("upgrade: 0.1.0 data dir (%d indexed samples) opened compact; query and traces unchanged" % old_rows)
    finally:
        e.close()


TESTS = {
    "multi": t_multi, "iopaths": t_iopaths, "kill9": t_kill9, "torn": t_torn, "faultwrite": t_faultwrite,
    "diskfull": t_diskfull, "garbage": t_garbage, "death": t_death, "config": t_config,
    "lifecycle": t_lifecycle, "idle": t_idle, "full": t_full,
    "libatel": t_libatel, "columns": t_columns,
    "burst": t_burst, "burst_spans": t_burst_spans, "loss_restart": t_loss_restart, "loss_kill": t_loss_kill,
    "size_retention": t_size_retention, "upgrade": t_upgrade,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: daemon_test.py {%s}" % "|".join(TESTS))
        return 2
    for exe in (ATELD, TPROD, LOGCHECK):
        if not os.access(exe, os.X_OK):
            print("missing %s" % exe)
            return 1
    try:
        TESTS[sys.argv[1]]()
    except Fail as ex:
        print("FAIL %s: %s" % (sys.argv[1], ex))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
