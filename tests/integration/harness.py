"""Shared helpers of the Python integration tests (real ateld, real servers on loopback)."""
import socket
import time
import urllib.request


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers, r.read().decode("utf-8")


def wait_for(what, pred, timeout=60.0, procs=()):
    """Polls pred() every 0.2 s until it is truthy (returned), a process in
    procs [(name, Popen)] exits (Fail), or timeout seconds pass (Fail)."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        for name, p in procs:
            if p is not None and p.poll() is not None:
                raise Fail("%s exited (%s) while waiting for %s" % (name, p.returncode, what))
        try:
            v = pred()
            if v:
                return v
            last = v
        except (OSError, ValueError, KeyError, IndexError) as e:
            last = e
        time.sleep(0.2)
    raise Fail("timed out waiting for %s (last: %r)" % (what, last))
