#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A failed ateld start (its Prometheus port is taken) leaves no shared-memory
segment behind, and `atel status` shows the reason from the status file.

test_start_fail.py ATEL ATELD
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

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
    json.dump({"prometheus": {"enabled": True, "port": port, "bind": "127.0.0.1"}, "index": {"enabled": False}},
              open(cfg, "w"))
    try:
        p = subprocess.run([ATELD, "--config", cfg], env=env, capture_output=True, text=True, timeout=300)
        check(p.returncode != 0, "ateld fails to start on a taken port (%d)" % p.returncode)
        check(not os.path.exists("/dev/shm/" + shm), "no shared-memory segment left behind")
        r = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True, env=env, timeout=60)
        st = json.loads(r.stdout) if r.stdout else {}
        dm = st.get("daemon") or {}
        check(r.returncode == 3 and dm.get("state") == "stopped" and dm.get("reason"),
              "status: down, state stopped, with a reason (%d, %s)" % (r.returncode, dm.get("reason")))
        r = subprocess.run([ATEL, "status"], capture_output=True, text=True, env=env, timeout=60)
        check("reason: " in r.stdout, "human status shows the reason: %r" % r.stdout[:300])
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
