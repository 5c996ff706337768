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


def atel_cli(e, *args):
    return subprocess.run([dt.ATEL_CLI, "--data-dir", e.data, "--shm", e.shm] + list(args),
                          capture_output=True, text=True, timeout=120)


def stat_of(e, key):
    return ((e.status() or {}).get("stats") or {}).get(key)


def visible(e, port, key, prom, text, want):
    """A hardening counter shows the same value in the status file, `atel status --json`,
    `atel status` (its text label) and /metrics."""
    v = stat_of(e, key)
    check(v == want, "status file stats.%s = %s, expected %s" % (key, v, want))
    r = atel_cli(e, "status", "--json")
    try:
        j = json.loads(r.stdout)
    except ValueError:
        raise Fail("atel status --json: not JSON (exit %d): %s %s" % (r.returncode, r.stdout[-400:], r.stderr))
    found = []

    def walk(o):
        if isinstance(o, dict):
            for k, x in o.items():
                if k == key:
                    found.append(x)
                walk(x)
        elif isinstance(o, list):
            for x in o:
                walk(x)
    walk(j)
    check(want in found, "atel status --json: %s = %s, expected %s" % (key, found, want))
    r = atel_cli(e, "status")
    check(text in r.stdout, "atel status lacks %r:\n%s" % (text, r.stdout))
    if port:
        code, body = http_get(port)
        check(code == 200, "/metrics answered %d" % code)
        m = metric(body, prom)
        check(m == want, "/metrics %s = %s, expected %s" % (prom, m, want))


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


# ---------------------------------------------------------------------------
# 2-3. hostile shared memory, through a real daemon (the segment is a file: mmap it)

HDR_MAGIC_OFF = 0
DIR_OFF = 4096         # docs/abi.md: the directory follows the 4096-byte header
DESC_SIZE = 192        # three cache lines per ring
RING_STATE, RING_GEN, RING_PID = 0, 4, 8
RING_HEAD, RING_DROPS_FULL = 64, 80


def shm_map(e):
    f = open(e.shm, "r+b")
    m = mmap.mmap(f.fileno(), 0)
    f.close()
    return m


def prom_cfg(port):
    return {"prometheus": {"enabled": True, "port": port}}


def t_hostile():
    """A hostile writer of the segment: garbage timestamps, a loss counter claiming 10^19,
    an unknown ring state, a live ring's owner pid overwritten, the header's magic
    overwritten. ateld keeps running, refuses and counts each, keeps a live producer's
    ring, restores the header; a libatel agent attaches afterwards."""
    port = free_port()
    e = Env("hostile", prom_cfg(port))
    try:
        e.start()
        hold = e.produce(1, 1, 1000, "--block", "--hold-ms", "60000")
        e.wait_for("ring 0 active", lambda: any(r.get("state") == "active" for r in (e.status() or {}).get("rings", [])),
                   timeout=120)
        m = shm_map(e)
        rings = struct.unpack_from("<I", m, 24)[0]
        live = [r["ring"] for r in e.status()["rings"] if r.get("state") == "active"][0]
        spare = [r for r in range(rings) if r != live][:2]
        # loss counter of the live ring: 10^19
        struct.pack_into("<Q", m, DIR_OFF + live * DESC_SIZE + RING_DROPS_FULL, 10 ** 19)
        # an unknown state on a free ring
        struct.pack_into("<I", m, DIR_OFF + spare[0] * DESC_SIZE + RING_STATE, 0xDEADBEEF)
        # the live ring's owner pid: a pid that cannot exist
        struct.pack_into("<i", m, DIR_OFF + live * DESC_SIZE + RING_PID, 0x3ffffff0)
        # the header's magic
        struct.pack_into("<Q", m, HDR_MAGIC_OFF, 0x4141414141414141)
        e.wait_for("header restored", lambda: (stat_of(e, "segment_header_repairs") or 0) >= 1, timeout=120)
        e.wait_for("damaged rings counted", lambda: (stat_of(e, "rings_damaged") or 0) >= 2, timeout=120)
        e.wait_for("loss reading refused", lambda: (stat_of(e, "loss_readings_refused") or 0) >= 1, timeout=120)
        check(struct.unpack_from("<Q", m, 0)[0] != 0x4141414141414141, "header magic still garbage")
        st = e.status()
        check(st["stats"]["drops"]["ring_full"] == 0, "10^19 drops believed: %s" % st["stats"]["drops"])
        check(st["stats"]["producers_reclaimed"] == 0, "a live producer's ring was reclaimed")
        state = struct.unpack_from("<I", m, DIR_OFF + live * DESC_SIZE + RING_STATE)[0]
        check(state == 2, "live ring state %d, expected ACTIVE (2): taken from its producer" % state)
        visible(e, port, "rings_damaged", "atel_rings_damaged_total", "damaged rings 2", 2)
        visible(e, port, "segment_header_repairs", "atel_segment_header_repairs_total", "repairs 1", 1)
        # a new agent attaches to the repaired segment and its data arrives
        p = e.produce(2, 1, 500, "--block")
        r2 = Env.result(p, timeout=120)
        check(r2["threads"][0]["written"] == 500, "new producer after the repair: %s" % r2)
        m.close()
        hold.kill()
        hold.wait()
        rc = e.stop()
        check(rc == 0, "ateld exit %d after SIGTERM; log:\n%s" % (rc, e.log_text()))
        log = e.logcheck()
        key = "2:0"
        check(log["series"].get(key, {}).get("count") == 500, "log has %s for the new producer" % log["series"].get(key))
        print("hostile: header restored, %d damaged rings, live ring kept" % st["stats"]["rings_damaged"])
    finally:
        e.close()


def t_timestamps():
    """Records with timestamps from 1970, 2554 and an hour ahead (tprod --bad-ts) are
    refused and counted as records_implausible; the good ones arrive exactly."""
    port = free_port()
    e = Env("tsbad", prom_cfg(port))
    try:
        e.start()
        res = Env.result(e.produce(1, 1, 3000, "--block", "--bad-ts", "30"), timeout=120)
        e.wait_for("implausible counted", lambda: stat_of(e, "records_implausible") == 30, timeout=120)
        visible(e, port, "records_implausible", "atel_records_implausible_total", "implausible records 30", 30)
        rc = e.stop()
        check(rc == 0, "ateld exit %d" % rc)
        log = e.logcheck()
        dt.expect_exact(log, [res], block=True)
    finally:
        e.close()


# ---------------------------------------------------------------------------
# 4. log tail, index, header

def t_segment_header():
    """Garbage in the shared-memory header (magic, a reserved word, the ring count)
    would lock new agents out (atel_init -EPROTO): ateld restores it, logs and counts
    it (segment_header_repairs; segment_header_ok back to 1), and a real libatel
    agent started afterwards attaches and its records reach the log."""
    port = free_port()
    e = Env("header", prom_cfg(port))
    try:
        e.start()
        m = shm_map(e)
        struct.pack_into("<Q", m, HDR_MAGIC_OFF, 0x4242424242424242)
        struct.pack_into("<I", m, 24, 0x7fffffff)           # ring_count
        struct.pack_into("<Q", m, 256 - 8, 0xfeedface)       # a reserved word
        e.wait_for("header restored", lambda: stat_of(e, "segment_header_repairs") == 1, timeout=120)
        check("segment header was overwritten" in open(e.daemon_log).read(), "no log line for the repair")
        check(stat_of(e, "segment_header_ok") == 1, "segment_header_ok %s" % stat_of(e, "segment_header_ok"))
        visible(e, port, "segment_header_repairs", "atel_segment_header_repairs_total", "repairs 1", 1)
        m.close()
        p = subprocess.Popen([dt.TAGENT, "--shm", e.shm, "--id", "1", "--threads", "1", "--iters", "50"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=120)
        check(p.returncode == 0, "libatel agent after the repair: exit %d: %s" % (p.returncode, err))
        r = json.loads(out)
        check(r["records"] > 0 and r["drops_no_sidecar"] == 0, "agent report %s" % r)
        check(e.stop() == 0, "ateld exit status")
        log = e.logcheck()
        c = log["pids"].get(str(r["pid"]))
        check(c is not None and c["data"] == r["records"], "log has %s for the agent, it published %d" %
              (c, r["records"]))
        print("segment_header: restored, a libatel agent attached and logged %d records" % r["records"])
    finally:
        e.close()


def t_tail_cut():
    """A torn tail on the newest segment file is cut at the next start, logged and
    counted (log_tail_cuts); the log still holds every record exactly once."""
    port = free_port()
    e = Env("tailcut", prom_cfg(port))
    try:
        e.start()
        res = Env.result(e.produce(1, 1, 5000, "--block"), timeout=120)
        check(e.stop() == 0, "ateld exit status")
        seg = os.path.join(e.data, "segments")
        newest = sorted(n for n in os.listdir(seg) if n.endswith(".atseg"))[-1]
        with open(os.path.join(seg, newest), "ab") as f:
            # the start of a zstd frame (magic, a frame header) and then nothing: torn
            f.write(b"\x28\xb5\x2f\xfd\x64\x00\x10\x55" + os.urandom(40))
        e.start()
        e.wait_for("tail cut counted", lambda: stat_of(e, "log_tail_cuts") == 1, timeout=120)
        check("torn tail" in open(e.daemon_log).read(), "no log line for the cut:\n%s" % e.log_text())
        visible(e, port, "log_tail_cuts", "atel_log_tail_cuts_total", "log tail cuts 1", 1)
        check(e.stop() == 0, "ateld exit status")
        log = e.logcheck()
        dt.expect_exact(log, [res], block=True)
        check(log["corrupt"] == 0, "corrupt frames left: %s" % log["corrupt"])
    finally:
        e.close()


def index_rows(db):
    import sqlite3
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
        try:
            return c.execute("select count(*) from telemetry_metrics").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0


def t_index_reopen():
    """telemetry.db deleted under the running indexer: noticed, reopened, rebuilt from the
    log (index_reopened); the new file holds the rows again."""
    port = free_port()
    c = prom_cfg(port)
    c["index"] = {"enabled": True, "mode": "full"}  # counts raw rows
    e = Env("ixreopen", c)
    try:
        e.start()
        Env.result(e.produce(1, 1, 2000, "--block"), timeout=120)
        db = os.path.join(e.data, "telemetry.db")
        e.wait_for("rows indexed", lambda: index_rows(db) >= 2000, timeout=300)
        os.unlink(db)
        e.wait_for("index reopened", lambda: stat_of(e, "index_reopened") == 1, timeout=120)
        e.wait_for("index rebuilt", lambda: os.path.exists(db) and index_rows(db) >= 2000, timeout=300)
        visible(e, port, "index_reopened", "atel_index_reopened_total", "index reopened 1", 1)
        check(e.stop() == 0, "ateld exit status")
    finally:
        e.close()


# ---------------------------------------------------------------------------
# 5. HTTP connection cap

def own_ip():
    """A non-loopback address of this machine, or None."""
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(("10.255.255.255", 1))
        ip = u.getsockname()[0]
        u.close()
        return None if ip.startswith("127.") else ip
    except OSError:
        return None


def closed(sk):
    t = sk.gettimeout()
    sk.setblocking(False)
    try:
        return sk.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sk.settimeout(t)


def t_http_flood():
    """300 idle and slow connections from one local client, reopened as they are cut,
    do not starve scrapes: every one of 30 scrapes gets 200 (the oldest idle connection
    is cut instead, counted as http_conns_evicted). An HTTP/2 preface gets 505. One
    non-loopback address holds at most half of the 256 slots."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    port = free_port()
    ip = own_ip()
    c = prom_cfg(port)
    if ip:
        c["prometheus"]["bind"] = "0.0.0.0"
    e = Env("httpflood", c)
    flood = []
    try:
        e.start()
        Env.result(e.produce(1, 1, 1000, "--block"), timeout=120)

        def dial(host="127.0.0.1", slow=False):
            sk = socket.create_connection((host, port), timeout=30)
            if slow:
                sk.sendall(b"GET /metrics HTTP/1.1\r\n")
            return sk
        for i in range(300):
            flood.append(dial(slow=i % 2 == 1))
        ok = 0
        for k in range(30):
            for i, sk in enumerate(flood):  # reopen what was cut
                if closed(sk):
                    sk.close()
                    flood[i] = dial(slow=i % 2 == 1)
            code, body = http_get(port)
            ok += code == 200 and "atel_records_drained_total" in body
        check(ok == 30, "%d of 30 scrapes answered 200 under a flood of 300 connections" % ok)
        ev = stat_of(e, "http_conns_evicted") or 0
        e.wait_for("evictions in the status file", lambda: (stat_of(e, "http_conns_evicted") or 0) >= 44, timeout=60)
        for sk in flood:
            sk.close()
        flood = []
        # HTTP/2 preface
        sk = socket.create_connection(("127.0.0.1", port), timeout=30)
        sk.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        head = sk.recv(200)
        sk.close()
        check(head.startswith(b"HTTP/1.1 505 "), "HTTP/2 preface answered %r" % head[:40])
        # counters everywhere (the scrape in visible() itself may evict nothing now)
        ev = stat_of(e, "http_conns_evicted")
        code, body = http_get(port)
        check(metric(body, "atel_http_conns_evicted_total") >= ev, "/metrics evictions %s < %s" %
              (metric(body, "atel_http_conns_evicted_total"), ev))
        r = atel_cli(e, "status")
        check("connections evicted at the cap" in r.stdout, r.stdout)
        print("http_flood: 30 of 30 scrapes answered, %d connections evicted" % ev)
        if ip:
            ev0 = stat_of(e, "http_conns_evicted")
            remote = [dial(ip) for _ in range(200)]
            local = [dial() for _ in range(100)]
            time.sleep(0)  # no timing assumption: wait on the counter below
            e.wait_for("remote share enforced", lambda: stat_of(e, "http_conns_evicted") - ev0 >= 72, timeout=60)
            code, _ = http_get(port)
            check(code == 200, "scrape with 200 remote connections open: %d" % code)
            lost = sum(closed(sk) for sk in local)
            check(lost == 0, "%d local connections cut while a remote address exceeded its half" % lost)
            held = sum(not closed(sk) for sk in remote)
            check(held <= 128, "remote address holds %d connections (at most 128)" % held)
            for sk in remote + local:
                sk.close()
            print("http_flood: remote %s held %d of 200, local 100 kept" % (ip, held))
        else:
            print("http_flood: no non-loopback address; remote share not tested")
        check(e.stop() == 0, "ateld exit status")
    finally:
        for sk in flood:
            sk.close()
        e.close()


# ---------------------------------------------------------------------------
# 6. disk reserve

def t_disk_reserve():
    """On a small tmpfs: filling the disk below index.reserve_bytes pauses the indexer
    (index_paused, data_free_bytes, a log line) while the log keeps every record; the
    indexer resumes and catches up when the space returns."""
    if os.geteuid() != 0:
        raise Skip("mounting a tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="atel-it-tmpfs-%d-" % os.getpid())
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        raise Skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    port = free_port()
    c = prom_cfg(port)
    c["index"] = {"enabled": True, "mode": "full", "reserve_bytes": 16 << 20}  # counts raw rows
    e = Env("reserve", c)
    data = os.path.join(mnt, "data")
    e.data = data
    e.cfg["data_dir"] = data
    with open(e.cfg_path, "w") as f:
        json.dump(e.cfg, f)
    filler = os.path.join(mnt, "filler")
    try:
        e.start()
        res = [Env.result(e.produce(1, 1, 2000, "--block"), timeout=120)]
        db = os.path.join(data, "telemetry.db")
        e.wait_for("first rows indexed", lambda: index_rows(db) >= 2000, timeout=300)
        check(stat_of(e, "index_paused") == 0, "index paused with the disk empty")
        vs = os.statvfs(mnt)
        free = vs.f_bavail * vs.f_frsize
        with open(filler, "wb") as f:  # leave 8 MiB: below the 16 MiB reserve
            left = free - (8 << 20)
            chunk = b"\0" * (1 << 20)
            while left > 0:
                f.write(chunk[:min(left, len(chunk))])
                left -= len(chunk)
        e.wait_for("indexer paused", lambda: stat_of(e, "index_paused") == 1, timeout=120)
        check("indexer: paused" in open(e.daemon_log).read(), "no log line for the pause")
        visible(e, port, "index_paused", "atel_index_paused", "index PAUSED for disk space", 1)
        fb = stat_of(e, "data_free_bytes")
        check(0 < fb < (16 << 20), "data_free_bytes %s while paused" % fb)
        rows = index_rows(db)
        # the log keeps writing while the index waits
        res.append(Env.result(e.produce(2, 1, 3000, "--block"), timeout=300))
        e.wait_for("drained", lambda: (stat_of(e, "records_drained") or 0) >= 5000, timeout=300)
        check(index_rows(db) == rows, "index grew while paused: %d -> %d" % (rows, index_rows(db)))
        os.unlink(filler)
        e.wait_for("indexer resumed", lambda: stat_of(e, "index_paused") == 0, timeout=120)
        e.wait_for("index caught up", lambda: index_rows(db) >= 5000, timeout=300)
        check(stat_of(e, "index_pauses") == 1, "index_pauses %s" % stat_of(e, "index_pauses"))
        check(e.stop() == 0, "ateld exit status")
        dt.expect_exact(e.logcheck(), res, block=True)
        print("disk_reserve: paused at %d bytes free, log kept 3000 records, index caught up" % fb)
    finally:
        e.close()
        if os.path.exists(filler):
            os.unlink(filler)
        subprocess.run(["umount", mnt], capture_output=True)
        os.rmdir(mnt)


# ---------------------------------------------------------------------------
# issue 12.3: a third process truncates the shared segment

def t_truncate():
    """Producers write; a third process ftruncate()s the segment file to two pages.
    ateld stays alive, stops reading the segment, logs it, counts it
    (segment_truncations in the status file, `atel status`, /metrics), runs
    degraded (state "degraded", shm.truncated), keeps every record it drained
    (the log after a clean stop holds exactly the first producer's 3000 records
    and, for the agent, no more than it published), and the libatel agent that
    was writing survives (exit 0, no signal)."""
    port = free_port()
    e = Env("truncate", prom_cfg(port))
    try:
        e.start()
        res = Env.result(e.produce(1, 1, 3000, "--block"), timeout=120)
        check(res["threads"][0]["written"] == 3000, "producer wrote %s" % res)
        e.wait_for("3000 records drained", lambda: (stat_of(e, "records_drained") or 0) >= 3000, timeout=120)
        ag = subprocess.Popen([dt.TAGENT, "--shm", e.shm, "--id", "2", "--threads", "2", "--iters", "20000",
                               "--pace-us", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        e.procs.append(ag)
        e.wait_for("the agent's records drained", lambda: (stat_of(e, "records_drained") or 0) >= 3500, timeout=120)
        check(ag.poll() is None, "the agent finished before the truncation; raise --iters")
        size = os.path.getsize(e.shm)
        os.truncate(e.shm, 8192)  # the third process: header page and part of the ring directory stay
        e.wait_for("truncation counted", lambda: stat_of(e, "segment_truncations") == 1, timeout=120)
        check(e.daemon.poll() is None, "ateld died (exit %s); log:\n%s" % (e.daemon.poll(), e.log_text()))
        st = e.wait_for("status degraded", lambda: (e.status() or {}).get("state") == "degraded" and e.status(),
                        timeout=60)
        check(st["shm"].get("truncated") is True, "shm.truncated %s" % st["shm"].get("truncated"))
        check(st["stats"].get("segment_truncated") == 1, "segment_truncated %s" % st["stats"].get("segment_truncated"))
        check("was truncated by another process (file now 8192 bytes, the mapping is %d" % size in open(e.daemon_log).read(),
              "no precise log line for the truncation:\n%s" % e.log_text()[-2000:])
        visible(e, port, "segment_truncations", "atel_segment_truncations_total", "segment truncations 1", 1)
        code, body = http_get(port)
        check(metric(body, "atel_segment_truncated") == 1, "/metrics atel_segment_truncated %s" %
              metric(body, "atel_segment_truncated"))
        out, err = ag.communicate(timeout=600)
        check(ag.returncode == 0, "libatel agent after the truncation: exit %d (signal if < 0): %s" %
              (ag.returncode, err[-1000:]))
        r = json.loads(out)
        check(e.daemon.poll() is None, "ateld died after the agent finished")
        rc = e.stop()
        check(rc == 0, "ateld exit %d after SIGTERM; log:\n%s" % (rc, e.log_text()[-3000:]))
        log = e.logcheck()
        got = log["series"].get("1:0", {}).get("count")
        check(got == 3000, "log has %s records of the first producer, it wrote 3000" % got)
        a = log["pids"].get(str(r["pid"]), {})
        check(0 < a.get("data", 0) <= r["records"], "log has %s data records of the agent, it published %d" %
              (a.get("data"), r["records"]))
        total = sum(v.get("data", 0) for v in log["pids"].values())
        rp = subprocess.run([dt.ATEL_CLI, "replay", os.path.join(e.data, "segments"), "--json"],
                            capture_output=True, text=True, timeout=300)
        check(rp.returncode == 0, "atel replay exit %d: %s %s" % (rp.returncode, rp.stderr[-500:], rp.stdout[:600]))
        rj = json.loads(rp.stdout)
        check(rj.get("corrupt_frames") == 0 and rj.get("invalid_records") == 0, "replay: %s" %
              {k: rj.get(k) for k in ("corrupt_frames", "invalid_records", "corrupt")})
        # every record ateld drained (its final records_drained, status file at stop) is in the
        # log exactly: each record type replay counts, continuation slots ("chunk") aside
        # (records drained from pages cut away before they were compressed into a frame cannot be
        # read any more: they are dropped and counted in records_lost_truncation, never logged as zeros)
        drained = stat_of(e, "records_drained")
        lost = stat_of(e, "records_lost_truncation")
        inlog = sum(v for k, v in rj["by_type"].items() if k != "chunk")
        check(inlog == drained - lost, "the log holds %d records, ateld drained %d, lost %d: %s" %
              (inlog, drained, lost, rj["by_type"]))
        check(rj["by_type"].get("type_0") is None, "zeros logged: %s" % rj["by_type"])
        # the documented way out: a restart creates a new segment, and agents attach to it
        e.start()
        st2 = e.status()
        check(st2["shm"].get("truncated") is False and os.path.getsize(e.shm) == size,
              "after a restart: shm %s, file %d bytes" % (st2["shm"], os.path.getsize(e.shm)))
        p = subprocess.Popen([dt.TAGENT, "--shm", e.shm, "--id", "3", "--threads", "1", "--iters", "50"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out3, err3 = p.communicate(timeout=300)
        check(p.returncode == 0, "agent after the restart: exit %d: %s" % (p.returncode, err3[-500:]))
        r3 = json.loads(out3)
        check(r3["records"] > 0 and r3["drops_no_sidecar"] == 0, "agent after the restart: %s" % r3)
        check(e.stop() == 0, "ateld exit status after the restart")
        log2 = e.logcheck()
        c3 = log2["pids"].get(str(r3["pid"]), {})
        check(c3.get("data") == r3["records"], "log has %s of the new agent's %d records" % (c3, r3["records"]))
        print("truncate: ateld degraded and alive, drained %d, lost at the cut %d, log holds %d data records "
              "(%d of 3000 + %d of the agent's %d published)" % (drained, lost, total, got, a.get("data", 0),
                                                                 r["records"]))
    finally:
        e.close()


TESTS = {
    "file_mode": t_file_mode,
    "disk_reserve": t_disk_reserve,
    "http_flood": t_http_flood,
    "hostile": t_hostile,
    "timestamps": t_timestamps,
    "tail_cut": t_tail_cut,
    "segment_header": t_segment_header,
    "index_reopen": t_index_reopen,
    "truncate": t_truncate,
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
