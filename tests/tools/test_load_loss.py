#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`atel load` never hides loss: it prints delivered/dropped and the share lost,
and exits 6 when records were dropped unless --allow-loss.

test_load_loss.py ATEL ATELD: ateld with a single ring, a swarm of one process x
2 threads for 2 s: the second thread finds no ring (counted no_ring drops), so
the run loses records deterministically. A lossless run (1 thread) exits 0.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATEL, ATELD = sys.argv[1], sys.argv[2]
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def main():
    tmp = tempfile.mkdtemp(prefix="atel-loss-%d-" % os.getpid())
    data = os.path.join(tmp, "var")
    shm = "atel-test-loss-%d" % os.getpid()
    env = dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data, NO_COLOR="1")
    cfg = os.path.join(tmp, "ateld.json")
    json.dump({"prometheus": {"enabled": False}, "index": {"enabled": False}, "shm": {"rings": 1}}, open(cfg, "w"))
    log = open(os.path.join(tmp, "ateld.log"), "w")
    d = subprocess.Popen([ATELD, "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)

    def atel(*args, timeout=300):
        p = subprocess.run([ATEL] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    try:
        deadline = time.time() + 120
        up = False
        while time.time() < deadline and d.poll() is None:
            rc, out, _ = atel("status", "--json")
            if rc == 0 and json.loads(out)["up"]:
                up = True
                break
            time.sleep(0.1)
        check(up, "ateld came up")
        if not up:
            return
        # segment discovery: no --shm, no $ATEL_SHM: the running ateld's status file names it
        env_nos = dict(env)
        env_nos.pop("ATEL_SHM")
        deadline = time.time() + 60  # the status file is written a moment after the segment is up
        while True:
            p = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True, env=env_nos, timeout=60)
            st = json.loads(p.stdout) if p.returncode == 0 else {}
            if st.get("shm") == shm or time.time() > deadline:
                break
            time.sleep(0.2)
        check(st.get("shm") == shm and "status file" in st.get("shm_from", ""),
              "status finds the running ateld's segment: %s %s" % (st.get("shm"), st.get("shm_from")))
        p = subprocess.run([ATEL, "load", "--agents", "1", "--threads", "1", "--sessions", "5"],
                           capture_output=True, text=True, env=env_nos, timeout=300)
        check(p.returncode == 0 and "dropped 0:" in p.stdout, "load finds it too (%d: %s)" % (p.returncode, p.stderr))
        p = subprocess.run([ATEL, "--shm", shm + "-none", "load", "--sessions", "1"],
                           capture_output=True, text=True, env=env_nos, timeout=60)
        check(p.returncode == 3 and "(from --shm)" in p.stderr and "$ATEL_SHM" in p.stderr,
              "no daemon on the named segment: exit 3, says where it looked (%d: %s)" % (p.returncode, p.stderr))
        p = subprocess.run([ATEL, "--data-dir", os.path.join(tmp, "nodir"), "load", "--sessions", "1"],
                           capture_output=True, text=True, env=env_nos, timeout=60)
        check(p.returncode == 3 and "no running ateld found" in p.stderr and "(from the default)" in p.stderr,
              "nothing found: exit 3 and a clear error (%d: %s)" % (p.returncode, p.stderr))
        rc, out, err = atel("load", "--agents", "1", "--threads", "1", "--sessions", "5")
        check(rc == 0, "a lossless run exits 0 (%d: %s)" % (rc, err))
        check("dropped 0: 0.00% lost" in out, "a lossless run says so: %r" % out)
        rc, out, err = atel("load", "--agents", "1", "--threads", "2", "--duration", "2s")
        check(rc == 6, "a lossy run exits 6 (%d)" % rc)
        check("% lost" in out and "dropped 0:" not in out, "the report gives the loss share: %r" % out)
        check("--allow-loss" in err, "the error names --allow-loss: %r" % err)
        rc, out, err = atel("load", "--agents", "1", "--threads", "2", "--duration", "2s", "--allow-loss", "--json")
        check(rc == 0, "--allow-loss exits 0 (%d: %s)" % (rc, err))
        lib = json.loads(out)["libatel"] if rc == 0 else {}
        check(lib.get("drops_total", 0) > 0 and 0 < lib.get("loss_share", 0) < 1 and
              lib.get("delivered") == lib.get("records"), "JSON: drops, delivered and loss_share %s" % lib)
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=120)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        log.close()
        if FAILS:
            print(open(os.path.join(tmp, "ateld.log")).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.unlink("/dev/shm/" + shm)
        except OSError:
            pass
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
