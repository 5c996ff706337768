#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Driver of the binding suites: starts a real ateld (temp data dir, a file-path
shm segment inside it, /metrics on a free loopback port, the SQLite index on),
runs one language's suite against it, stops ateld with SIGTERM and checks that
it exits 0.

    run.py node TRACE_HOP        node --test tests/bindings/test_node.js
    run.py python TRACE_HOP      python3 -m unittest tests/bindings/test_python.py

The suites read where things are from the environment: ATEL_SHM (the
segment), ATEL_TEST_METRICS_URL, ATEL_TEST_DATA_DIR, ATEL_TEST_CLI (atel),
ATEL_TEST_TRACE_HOP (the C link of the Node -> C -> Python trace),
ATEL_TEST_PYTHON, PYTHONPATH (bindings/python) and NODE_PATH (a folder with a
link named atel to bindings/node, so `require('atel')` works as for a user).
Exit 0 pass, 1 fail, 77 skip (node or the addon missing, with the reason).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ATEL_SOURCE_ROOT") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.join(SRC, "build")
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from harness import Fail, free_port, http_get, wait_for  # noqa: E402

ATELD = os.path.join(BUILD, "consumer", "ateld")
ATEL_CLI = os.path.join(BUILD, "tools", "atel")
ADDON = os.path.join(BUILD, "bindings", "node", "atel.node")
STAMP = os.path.join(BUILD, "bindings", "atel-node.stamp")


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def main():
    lang, hop = sys.argv[1], os.path.abspath(sys.argv[2])
    node = shutil.which("node")
    if lang == "node":
        if not node:
            skip("node is not installed (scripts/deps.sh installs it)")
        if not os.path.exists(ADDON):
            why = open(STAMP).read().strip() if os.path.exists(STAMP) else "no build stamp"
            skip("the Node addon was not built (%s)" % why)
    d = tempfile.mkdtemp(prefix="atel-bind-%s-%d-" % (lang, os.getpid()))
    data, seg, port = os.path.join(d, "data"), os.path.join(d, "seg"), free_port()
    cfg = {
        "data_dir": data,
        "log_level": "info",
        "shm": {"name": seg, "rings": 32, "ring_capacity": 16384},
        "index": {"enabled": True},
        "export_interval_ms": 1000,
        "prometheus": {"enabled": True, "bind": "127.0.0.1", "port": port, "path": "/metrics"},
    }
    with open(os.path.join(d, "ateld.json"), "w") as f:
        json.dump(cfg, f)
    nodepath = os.path.join(d, "node_path")
    os.makedirs(nodepath)
    os.symlink(os.path.join(SRC, "bindings", "node"), os.path.join(nodepath, "atel"))
    log = open(os.path.join(d, "ateld.log"), "w")
    env = dict(os.environ)
    for k in ("ATEL_SHM", "ATEL_DATA_DIR", "TRACEPARENT", "TRACESTATE", "TRACE_CONTEXT"):
        env.pop(k, None)
    daemon = subprocess.Popen([ATELD, "--config", os.path.join(d, "ateld.json"), "--foreground"],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    rc = 1
    try:
        url = "http://127.0.0.1:%d" % port
        wait_for("ateld /healthz", lambda: http_get(url + "/healthz")[0] == 200, procs=[("ateld", daemon)])
        env.update({
            "ATEL_SHM": seg,
            "ATEL_TEST_METRICS_URL": url + "/metrics",
            "ATEL_TEST_DATA_DIR": data,
            "ATEL_TEST_CLI": ATEL_CLI,
            "ATEL_TEST_TRACE_HOP": hop,
            "ATEL_TEST_PYTHON": sys.executable,
            "ATEL_BUILD_ROOT": BUILD,
            "ATEL_SOURCE_ROOT": SRC,
            "PYTHONPATH": os.path.join(SRC, "bindings", "python"),
            "NODE_PATH": nodepath,
            "ATEL_TEST_TMP": d,
        })
        if lang == "node":
            cmd = [node, "--test", "--test-concurrency=1", os.path.join(HERE, "test_node.js")]
        else:
            cmd = [sys.executable, "-m", "unittest", "-v", "test_python"]
        rc = subprocess.run(cmd, env=env, cwd=HERE).returncode
        daemon.send_signal(signal.SIGTERM)
        drc = daemon.wait(60)
        if drc != 0:
            raise Fail("ateld exited %d after SIGTERM" % drc)
    except Fail as e:
        print("FAIL: %s" % e)
        rc = 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
        if rc != 0:
            with open(os.path.join(d, "ateld.log")) as f:
                sys.stdout.write("ateld log (tail):\n" + f.read()[-3000:])
        if os.environ.get("ATEL_KEEP_TEST_DIR"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
