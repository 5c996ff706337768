#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Hardening tests of ateld (issue 12): file modes, hostile shared memory,
ring reclaim, damaged log tail / index / segment header, the HTTP connection
cap and the disk reserve. Real daemon and producers (daemon_test.Env).

    harden_test.py NAME     (run by meson; exit 0 pass, 1 fail, 77 skip)

No test asserts wall-clock time; every wait has a generous timeout.
"""
import json
import mmap
import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_test as dt  # noqa: E402
from daemon_test import Env, Fail, check  # noqa: E402


class Skip(Exception):
    pass


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def atel_status_json(e):
    r = subprocess.run([dt.ATEL_CLI, "status", "--json", "--data-dir", e.data, "--shm", e.shm],
                       capture_output=True, text=True, timeout=60)
    return r


def http_get(port, path="/metrics", timeout=30.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return code, body.decode("utf-8", "replace")


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# ---------------------------------------------------------------------------
# 1. storage.file_mode

def t_file_mode():
    """Under umask 000, every file ateld writes gets storage.file_mode (default 0600;
    0640 when configured); a mode with other-access bits is refused with a clear error."""
    old = os.umask(0)
    try:
        for want, cfg in ((0o600, {}), (0o640, {"storage": {"file_mode": "0640"}})):
            c = {"index": {"enabled": True}, "export_interval_ms": 200,
                 "json": {"enabled": True, "rotateInterval": 1000}}
            for k, v in cfg.items():
                c.setdefault(k, {}).update(v)
            e = Env("filemode", c)
            try:
                e.start()
                res = Env.result(e.produce(1, 1, 2000, "--block"))
                check(res["threads"][0]["written"] == 2000, "producer wrote %s" % res)
                exports = os.path.join(e.data, "exports")
                e.wait_for("a JSON export file", lambda: os.path.isdir(exports) and
                           any(not n.startswith(".") for n in os.listdir(exports)), timeout=120)
                e.wait_for("the index -wal file", lambda: os.path.exists(os.path.join(e.data, "telemetry.db-wal")),
                           timeout=120)
                files = [os.path.join(e.data, "telemetry.db"), os.path.join(e.data, "telemetry.db-wal"),
                         os.path.join(e.data, "ateld.status.json"), os.path.join(e.data, "ateld.lock")]
                seg = os.path.join(e.data, "segments")
                files += [os.path.join(seg, n) for n in os.listdir(seg) if n.endswith(".atseg")]
                files += [os.path.join(exports, n) for n in os.listdir(exports) if not n.startswith(".")]
                if os.path.exists(os.path.join(e.data, "telemetry.db-shm")):
                    files.append(os.path.join(e.data, "telemetry.db-shm"))
                check(any(f.endswith(".atseg") for f in files), "no segment file")
                for f in files:
                    check(mode_of(f) == want, "%s has mode %04o, expected %04o (umask 000)" % (f, mode_of(f), want))
                for dname in (seg, exports):
                    m = mode_of(dname)
                    check(m & 0o007 == 0, "directory %s is open to other users: %04o" % (dname, m))
                rc = e.stop()
                check(rc == 0, "ateld exit %d" % rc)
                print("file_mode %04o: %d files checked" % (want, len(files)))
            finally:
                e.close()
    finally:
        os.umask(old)
    d = tempfile.mkdtemp(prefix="atel-it-fmode-%d-" % os.getpid())
    try:
        for bad, why in (("0644", "access for other users is not allowed"),
                         ("0666", "access for other users is not allowed"),
                         ("0440", "the owner needs read and write access")):
            p = os.path.join(d, "bad.json")
            with open(p, "w") as f:
                json.dump({"data_dir": os.path.join(d, "data"), "storage": {"file_mode": bad}}, f)
            r = subprocess.run([dt.ATELD, "--check-config", p], capture_output=True, text=True, timeout=60)
            check(r.returncode == 1, "file_mode %s accepted (exit %d)" % (bad, r.returncode))
            check("storage.file_mode: %s refused: %s" % (bad, why) in r.stderr, "stderr: %r" % r.stderr)
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


TESTS = {
    "file_mode": t_file_mode,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in TESTS:
        print("usage: harden_test.py {%s}" % "|".join(TESTS))
        return 2
    for exe in (dt.ATELD, dt.TPROD, dt.LOGCHECK):
        if not os.access(exe, os.X_OK):
            print("missing %s" % exe)
            return 1
    try:
        TESTS[sys.argv[1]]()
    except Skip as ex:
        print("SKIP %s: %s" % (sys.argv[1], ex))
        return 77
    except Fail as ex:
        print("FAIL %s: %s" % (sys.argv[1], ex))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
