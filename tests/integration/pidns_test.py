#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Owner liveness by OFD lock (docs/abi.md 5.1): ateld must judge a producer by
the lock it holds on the segment, not by its pid, which means nothing across
PID namespaces (Kubernetes pods, docker without --pid).

    pidns_test.py NAME     (exit 0 pass, 1 fail, 77 skip)

life  a libatel agent in its own PID namespace (unshare --pid --fork
      --mount-proc) writes 3,000 paced adds: all delivered exactly, 0 invalid,
      no "died" while it lives; a second one is SIGKILLed mid-burst: its ring is
      reclaimed and calls = log + ring_full + producer_died exactly.
two   two agents in two PID namespaces at once (both pid 2 there): neither
      loses its ring, both exact.
fork  an agent forks (its child claims its own ring); the parent is SIGKILLed
      while the child lives: the parent's ring is reclaimed, the child's not,
      and the child's adds are all delivered. In a PID namespace if permitted.
"""
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
from daemon_test import Env, Fail, check  # noqa: E402

TPIDNS = os.path.join(dt.BUILD, "tests", "integration", "tpidns")
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def unshare_ok():
    try:
        r = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as ex:
        return False, str(ex)
    return r.returncode == 0, r.stderr.strip()


def in_ns(args):
    """args run as pid 2 of a new PID namespace (a shell is its init, so killing the
    agent does not tear the namespace down and a forked child outlives its parent)."""
    q = " ".join("'%s'" % a.replace("'", "'\\''") for a in args)
    return UNSHARE + ["/bin/sh", "-c", "%s; sleep 1000000" % q]


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def host_pid_of_agent(e, launcher):
    """The host pid of the tpidns process under unshare -> sh (-> tpidns)."""
    def find():
        for sh in children(launcher.pid):
            for c in children(sh):
                try:
                    with open("/proc/%d/comm" % c) as f:
                        if f.read().strip() == "tpidns":
                            return c
                except OSError:
                    pass
        return None
    return e.wait_for("the agent's host pid", find)


def start_agent(e, pid_id, adds, pace_us, ns=True, extra=()):
    args = [TPIDNS, "--shm", e.shm, "--id", str(pid_id), "--adds", str(adds), "--pace-us", str(pace_us),
            "--out", os.path.join(e.dir, "out%d" % pid_id)] + list(extra)
    p = subprocess.Popen(in_ns(args) if ns else args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    e.procs.append(p)
    return p


def out_of(e, pid_id, t, timeout=120):
    path = os.path.join(e.dir, "out%d.%d" % (pid_id, t))
    e.wait_for("%s written" % path, lambda: os.path.exists(path) and os.path.getsize(path) > 0 and
               open(path).read().endswith("\n"), timeout=timeout)
    with open(path) as f:
        return json.load(f)


def full_log(e):
    with open(e.daemon_log) as f:
        return f.read()


def died_lines(e):
    return [ln for ln in full_log(e).splitlines() if ") died" in ln or "reclaimed at" in ln]


def ns_pid(pid):
    """pid as its own PID namespace sees it (the last NSpid of /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("NSpid:"):
                return int(ln.split()[-1])
    return pid


def stat(e, key):
    return ((e.status() or {}).get("stats") or {}).get(key, 0)


def progress(path, t):
    with open(path, "rb") as f:
        raw = f.read(64)
    v = struct.unpack("<8Q", raw)
    return v[2 * t], v[2 * t + 1]


def wait_exit(e, pid, what, timeout=120):
    def gone():
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True
    e.wait_for(what, gone, timeout=timeout)


def exact(log, key, written, who):
    b = log["burst"].get(key)
    check(b is not None, "%s: nothing in the log (wrote %d)" % (who, written))
    check(b["calls"] == written and b["sum"] == written,
          "%s: log has %d calls (sum %s), the agent made %d" % (who, b["calls"], b["sum"], written))


def t_life():
    """One agent in a PID namespace: exact while alive; SIGKILLed: reclaimed, loss exact."""
    e = Env("pidns_life", {"shm": {"rings": 8, "ring_capacity": 256}})
    n = 3000
    try:
        e.start()
        launcher = start_agent(e, 1, n, 1000)
        agent = host_pid_of_agent(e, launcher)
        e.wait_for("the agent's ring active with a liveness lock",
                   lambda: any(r["state"] == "active" and r.get("liveness") == "lock"
                               for r in (e.status() or {}).get("rings", [])))
        # its directory pid is the namespace's: in ateld's namespace it names
        # another process (pid 1 or 2 here: init, kthreadd), whose name the
        # status must not show as the agent's
        ring = [r for r in e.status()["rings"] if r["state"] == "active" and r.get("liveness") == "lock"][0]
        check(ring["pid"] == ns_pid(agent), "ring pid %d, agent's namespaced pid %d" % (ring["pid"], ns_pid(agent)))
        check(ring["comm"] in ("", "tpidns"),
              "status names the namespaced agent's ring %r (pid %d of this namespace)" % (ring["comm"], ring["pid"]))
        res = out_of(e, 1, 0, timeout=180)
        wait_exit(e, agent, "the agent's exit")
        e.wait_for("everything drained", lambda: all(r["lag"] == 0 for r in (e.status() or {}).get("rings", [])))
        # while it lived (and at its clean exit) ateld never judged it dead
        dl = died_lines(e)
        check(not dl, "ateld judged the live namespaced agent dead:\n%s" % "\n".join(dl))
        check(stat(e, "producers_reclaimed") == 0, "producers_reclaimed %d" % stat(e, "producers_reclaimed"))
        check(res["written"] == n and res["drops"] == 0, "agent result %s" % res)

        # phase 2: a namespaced agent killed mid-burst (tiny rings: it folds)
        prog = os.path.join(e.dir, "progress")
        launcher2 = start_agent(e, 2, 0, 0, extra=["--progress", prog])
        agent2 = host_pid_of_agent(e, launcher2)
        e.wait_for("the agent folds", lambda: stat(e, "metric_folds") > 1000)
        check(not died_lines(e), "ateld judged the live agent 2 dead:\n%s" % "\n".join(died_lines(e)))
        os.kill(agent2, signal.SIGKILL)
        wait_exit(e, agent2, "agent 2's death")
        started, done = progress(prog, 0)
        e.wait_for("the dead agent's ring reclaimed", lambda: stat(e, "producers_reclaimed") >= 1, timeout=60)
        e.wait_for("its ring freed", lambda: all(r["state"] == "free" for r in (e.status() or {}).get("rings", [])))
        st = e.status()
        inv = st["stats"]["records_invalid"]
        rc = e.stop()
        check(rc == 0, "ateld exit status %d; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        exact(log, "1:0", n, "agent 1")
        check(inv == 0 and log["invalid"] == 0 and log["loss"]["invalid"] == 0,
              "invalid records: status %d, log %d, LOSS(invalid) %d" % (inv, log["invalid"], log["loss"]["invalid"]))
        check(log["deaths"] == 1, "DEATH markers %d, expected 1 (agent 2)" % log["deaths"])
        b = log["burst"].get("2:0", {"calls": 0})
        died, full = log["loss"]["producer_died"], log["loss"]["ring_full"]
        total = b["calls"] + died + full
        check(done <= total <= started, "agent 2: calls done %d, started %d; log %d + producer_died %d + "
              "ring_full %d = %d" % (done, started, b["calls"], died, full, total))
        print("pidns_life: namespaced agent: %d of %d adds delivered, 0 invalid, never judged dead; killed "
              "agent after %d calls: log %d + died %d + ring_full %d, ring reclaimed" %
              (log["burst"]["1:0"]["calls"], n, done, b["calls"], died, full))
    finally:
        e.close()


def t_two():
    """Two agents in two PID namespaces (both pid 2 there) at once: nobody loses a ring.
    The segment is a shm_open name here (/dev/shm/NAME); pidns_life uses a file path."""
    name = "atel-pidns-two-%d" % os.getpid()
    e = Env("pidns_two", {"shm": {"name": name, "rings": 4, "ring_capacity": 1024}})
    e.shm = name
    n = 3000
    try:
        e.start()
        ls = [start_agent(e, i, n, 1000) for i in (1, 2)]
        agents = [host_pid_of_agent(e, p) for p in ls]
        host = start_agent(e, 3, n, 1000, ns=False)  # and one in ateld's own namespace
        e.wait_for("three rings active with liveness locks",
                   lambda: sum(r["state"] == "active" and r.get("liveness") == "lock"
                               for r in (e.status() or {}).get("rings", [])) == 3)
        # the command name: the host agent's is shown; a namespaced agent's pid (2)
        # names another process here, whose name must not be shown as the agent's
        for r in e.status()["rings"]:
            if r["state"] != "active":
                continue
            if r["pid"] == host.pid:
                check(r["comm"] == "tpidns", "host agent's ring: comm %r" % r["comm"])
            else:
                check(r["comm"] in ("", "tpidns"), "namespaced agent's ring (pid %d here): comm %r" %
                      (r["pid"], r["comm"]))
        res = [out_of(e, i, 0, timeout=180) for i in (1, 2, 3)]
        for a in agents + [host.pid]:
            wait_exit(e, a, "agent exit")
        e.wait_for("everything drained", lambda: all(r["lag"] == 0 for r in (e.status() or {}).get("rings", [])))
        dl = died_lines(e)
        check(not dl, "ateld judged a live namespaced agent dead:\n%s" % "\n".join(dl))
        inv = stat(e, "records_invalid")
        check(e.stop() == 0, "ateld exit status")
        log = e.logcheck()
        for i, r in zip((1, 2, 3), res):
            check(r["written"] == n and r["drops"] == 0, "agent %d result %s" % (i, r))
            exact(log, "%d:0" % i, n, "agent %d" % i)
        check(inv == 0 and log["invalid"] == 0 and log["deaths"] == 0,
              "invalid %d / %d, deaths %d" % (inv, log["invalid"], log["deaths"]))
        print("pidns_two: 2 agents in 2 PID namespaces (segment /dev/shm/%s): %d + %d adds delivered exactly, "
              "0 invalid, 0 deaths" % (name, log["burst"]["1:0"]["calls"], log["burst"]["2:0"]["calls"]))
    finally:
        e.close()
        try:
            os.unlink("/dev/shm/" + name)
        except OSError:
            pass


def t_fork():
    """A forked child claims its own ring; the parent SIGKILLed: its ring reclaimed, the child's not."""
    ns, why = unshare_ok()
    e = Env("pidns_fork", {"shm": {"rings": 8, "ring_capacity": 1024}})
    try:
        e.start()
        prog = os.path.join(e.dir, "progress")
        launcher = start_agent(e, 1, 0, 2000, ns=ns, extra=["--fork", "--progress", prog])
        if ns:
            parent = host_pid_of_agent(e, launcher)
        else:
            parent = launcher.pid
        e.wait_for("parent and child adding", lambda: os.path.exists(prog) and os.path.getsize(prog) >= 64 and
                   progress(prog, 0)[1] > 50 and progress(prog, 1)[1] > 50)
        e.wait_for("two rings active with liveness locks",
                   lambda: sum(r["state"] == "active" and r.get("liveness") == "lock"
                               for r in (e.status() or {}).get("rings", [])) == 2)
        child = e.wait_for("the child's host pid", lambda: (children(parent) or [None])[0])
        rings = {r["pid"]: r for r in e.status()["rings"] if r["state"] == "active"}
        pp, cp = ns_pid(parent), ns_pid(child)
        check(pp in rings and cp in rings, "rings %s: expected parent pid %d and child pid %d" % (rings, pp, cp))
        parent_ring, child_ring = rings[pp]["ring"], rings[cp]
        os.kill(parent, signal.SIGKILL)
        wait_exit(e, parent, "the parent's death")
        p_started, p_done = progress(prog, 0)
        e.wait_for("the parent's ring reclaimed", lambda: stat(e, "producers_reclaimed") >= 1, timeout=60)
        # the child lives on: 30 liveness ticks later its ring is still its own and it still writes
        c0 = progress(prog, 1)[1]
        time.sleep(3)
        check(progress(prog, 1)[1] > c0, "the child stopped adding")
        st = e.status()
        check(st["stats"]["producers_reclaimed"] == 1, "producers_reclaimed %d, expected 1 (the parent only)"
              % st["stats"]["producers_reclaimed"])
        now = {r["ring"]: r for r in st["rings"]}
        pr = now.get(parent_ring, {"state": "free"})  # a drained free ring is not listed
        check(pr["state"] == "free", "the parent's ring %d: %s" % (parent_ring, pr))
        c = now[child_ring["ring"]]
        check(c["state"] == "active" and c["pid"] == cp and c["generation"] == child_ring["generation"],
              "the child's ring changed hands: %s, before %s" % (c, child_ring))
        os.kill(child, signal.SIGTERM)
        res = out_of(e, 1, 1)
        wait_exit(e, child, "the child's exit")
        e.wait_for("everything drained", lambda: all(r["lag"] == 0 for r in (e.status() or {}).get("rings", [])))
        dl = died_lines(e)
        check(len(dl) == 2 and all(re.search(r"ring %d\b" % parent_ring, ln) for ln in dl),
              "expected one death and reclaim (the parent's ring %d), ateld logged:\n%s" % (parent_ring, "\n".join(dl)))
        inv = stat(e, "records_invalid")
        check(e.stop() == 0, "ateld exit status")
        log = e.logcheck()
        exact(log, "1:1", res["written"], "the child")
        check(res["drops"] == 0, "child result %s" % res)
        b = log["burst"].get("1:0", {"calls": 0})
        died, full = log["loss"]["producer_died"], log["loss"]["ring_full"]
        total = b["calls"] + died + full
        check(p_done <= total <= p_started, "parent: calls done %d, started %d; log %d + died %d + full %d"
              % (p_done, p_started, b["calls"], died, full))
        check(inv == 0 and log["invalid"] == 0 and log["deaths"] == 1,
              "invalid %d / %d, deaths %d" % (inv, log["invalid"], log["deaths"]))
        print("pidns_fork (%s): parent killed after %d adds, its ring reclaimed; the child's %d adds all "
              "delivered, its ring kept" % ("own PID namespace" if ns else "host PID namespace: " + why, p_done,
                                            res["written"]))
    finally:
        e.close()


TESTS = {"life": t_life, "two": t_two, "fork": t_fork}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: pidns_test.py {%s}" % "|".join(TESTS))
        return 2
    for exe in (dt.ATELD, TPIDNS, dt.LOGCHECK):
        if not os.access(exe, os.X_OK):
            print("missing %s" % exe)
            return 1
    if sys.argv[1] != "fork":
        ok, why = unshare_ok()
        if not ok:
            print("SKIP pidns_%s: 'unshare --pid --fork --mount-proc' is not permitted here (%s); run as root "
                  "or with user namespaces enabled" % (sys.argv[1], why or "no reason given"))
            return 77
    try:
        TESTS[sys.argv[1]]()
    except Fail as ex:
        print("FAIL pidns_%s: %s" % (sys.argv[1], ex))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
