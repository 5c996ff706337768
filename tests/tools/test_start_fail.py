#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A failed ateld start (its Prometheus port is taken) leaves no shared-memory
segment, segment file or database behind that it created, keeps what was
there before (a re-attached segment, earlier segment files, the index), and
`atel status` shows the reason from the status file.

test_start_fail.py ATEL ATELD
"""
import json
import os
import shutil
import signal
import socket
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
    tmp = tempfile.mkdtemp(prefix="atel-startfail-%d-" % os.getpid())
    data = os.path.join(tmp, "var")
    shm = "atel-test-startfail-%d" % os.getpid()
    env = dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data, NO_COLOR="1")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    cfg = os.path.join(tmp, "ateld.json")
    json.dump({"prometheus": {"enabled": True, "port": port, "bind": "127.0.0.1"}, "index": {"enabled": True}},
              open(cfg, "w"))
    segs = os.path.join(data, "segments")

    def files():
        return sorted(os.listdir(segs)) if os.path.isdir(segs) else []
    try:
        p = subprocess.run([ATELD, "--config", cfg], env=env, capture_output=True, text=True, timeout=300)
        check(p.returncode != 0, "ateld fails to start on a taken port (%d)" % p.returncode)
        check(not os.path.exists("/dev/shm/" + shm), "no shared-memory segment left behind")
        check(files() == [] and not os.path.exists(os.path.join(data, "telemetry.db")),
              "no segment file or database left behind: %s" % files())
        r = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
        st = json.loads(r.stdout) if r.stdout else {}
        dm = st.get("daemon") or {}
        check(r.returncode == 3 and dm.get("state") == "stopped" and dm.get("reason"),
              "status: down, state stopped, with a reason (%d, %s)" % (r.returncode, dm.get("reason")))
        r = subprocess.run([ATEL, "status"], capture_output=True, text=True, env=env, timeout=60)
        check("reason: " in r.stdout, "human status shows the reason: %r" % r.stdout[:300])

        # a data directory in use before: a good start, a clean stop, then a failed start
        ok_cfg = os.path.join(tmp, "ok.json")
        json.dump({"prometheus": {"enabled": False}, "index": {"enabled": True}}, open(ok_cfg, "w"))
        d = subprocess.Popen([ATELD, "--config", ok_cfg], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        for _ in range(1200):
            r = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
            if r.returncode == 0 and json.loads(r.stdout)["up"]:
                break
            time.sleep(0.1)
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=120)
        before = files()
        check(before and os.path.exists(os.path.join(data, "telemetry.db")), "a first run left its log and index")
        p = subprocess.run([ATELD, "--config", cfg], env=env, capture_output=True, text=True, timeout=300)
        check(p.returncode != 0, "the second start fails on the taken port")
        check(files() == before and os.path.exists(os.path.join(data, "telemetry.db")) and
              os.path.exists("/dev/shm/" + shm), "what was there before is kept: %s vs %s" % (files(), before))
    finally:
        blocker.close()
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
