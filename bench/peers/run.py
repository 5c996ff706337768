#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/peers: libatel and its Node.js and Python bindings measured beside
their peers, in one run, one section per language:

  C       libatel (atel_add, span start+end) beside LTTng-UST 2.13 tracepoints
          under an active session, prometheus-cpp's counter and histogram,
          and the baselines: a relaxed atomic_fetch_add and a CLOCK_REALTIME
          read plus a 64-byte store;
  Node    the binding beside @opentelemetry/api + sdk-metrics (counter add,
          histogram record) + sdk-trace-base (span start/end), prom-client,
          and a method-call baseline;
  Python  the binding beside Debian's python3-prometheus-client, and a
          method-call baseline.

Rounds are interleaved (round 1 of every program, then round 2, ...), and
each program interleaves its figures chunk by chunk, so every figure is taken
beside its language's baseline under the same machine state. A figure is the
median over rounds; written/delivered are summed over rounds.

This script starts what it needs and stops it again: an ateld (temp data dir,
a file-path shm segment, large rings, no index, no exporters) for libatel and
both bindings; an LTTng session daemon if none runs (--no-kernel) and its own
session, whose trace babeltrace2 counts afterwards.

    run.py [--build DIR] [--rounds N] [--quick] [--json FILE]

--build: the meson build with ateld, libatel, the addon and bench/peers
(default build-release, what `make bench` builds). Exit 0 unless a program
failed; a peer that cannot run here (no LTTng session daemon, say) is a row
saying why, never a silent gap.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))


def log(msg):
    print("peers: " + msg, file=sys.stderr, flush=True)


def run_rows(cmd, env, timeout=900):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr[-2000:]))
    rows = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            if "figure" in d:
                rows.append(d)
    return rows


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Ateld:
    def __init__(self, build, tmp, default_config=False):
        """default_config: what a user gets (index, /metrics, no JSON files, the
        default ring geometry); else large rings and nothing but the log."""
        os.makedirs(tmp, exist_ok=True)
        self.data = os.path.join(tmp, "data")
        self.seg = os.path.join(tmp, "seg")
        cfg = {"data_dir": self.data, "log_level": "warn",
               "shm": {"name": self.seg, "rings": 64, "ring_capacity": 65536},
               "index": {"enabled": False}, "prometheus": {"enabled": False}}
        if default_config:
            cfg = {"data_dir": self.data, "log_level": "warn", "shm": {"name": self.seg},
                   "prometheus": {"port": free_port()}}
        self.cfg = os.path.join(tmp, "ateld.json")
        with open(self.cfg, "w") as f:
            json.dump(cfg, f)
        self.logf = open(os.path.join(tmp, "ateld.log"), "w")
        self.p = subprocess.Popen([os.path.join(build, "consumer", "ateld"), "--config", self.cfg, "--foreground"],
                                  stdout=self.logf, stderr=subprocess.STDOUT)
        status = os.path.join(self.data, "ateld.status.json")
        end = time.time() + 30
        while time.time() < end:
            try:
                with open(status) as f:
                    s = json.load(f)
                if s.get("pid") == self.p.pid and s.get("state") == "running":
                    return
            except (OSError, ValueError):
                pass
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("ateld did not start (see %s)" % self.logf.name)

    def status(self):
        with open(os.path.join(self.data, "ateld.status.json")) as f:
            return json.load(f)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Lttng:
    """An LTTng-UST session around the C rounds; why not, when it cannot be had."""

    def __init__(self, tmp):
        self.why_not = None
        self.sessiond = None
        self.session = "atel-peers-%d" % os.getpid()
        self.out = os.path.join(tmp, "lttng-trace")
        self.env = dict(os.environ)
        if not shutil.which("lttng") or not shutil.which("lttng-sessiond"):
            self.why_not = "lttng-tools is not installed"
            return
        if subprocess.run(["lttng", "list"], capture_output=True).returncode != 0:
            # no session daemon reachable: start one (user-space only) and stop it at the end
            pidfile = os.path.join(tmp, "sessiond.pid")
            r = subprocess.run(["lttng-sessiond", "--daemonize", "--no-kernel", "--pidfile", pidfile],
                               capture_output=True, text=True)
            if r.returncode != 0:
                self.why_not = "lttng-sessiond would not start: " + (r.stderr.strip().splitlines() or ["?"])[-1]
                return
            try:
                with open(pidfile) as f:
                    self.sessiond = int(f.read().strip())
            except (OSError, ValueError):
                self.sessiond = None
        for cmd in (["lttng", "create", self.session, "--output=" + self.out],
                    ["lttng", "enable-event", "-u", "-s", self.session, "atelpeer:*"],
                    ["lttng", "start", self.session]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                self.why_not = "%s: %s" % (" ".join(cmd), r.stderr.strip() or r.stdout.strip())
                self.close()
                return

    def count(self):
        """{event name: events in the trace}, and the discarded-events count babeltrace2 reports."""
        subprocess.run(["lttng", "stop", self.session], capture_output=True)
        counts, discarded = {}, 0
        if not shutil.which("babeltrace2"):
            return None, "babeltrace2 is not installed"
        p = subprocess.Popen(["babeltrace2", self.out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in p.stdout:
            i = line.find("atelpeer:")
            if i >= 0:
                name = line[i:].split(":")[1]
                counts[name] = counts.get(name, 0) + 1
        err = p.stderr.read()
        p.wait()
        for line in err.splitlines():
            if "discarded" in line.lower():
                for w in line.replace(",", " ").split():
                    if w.isdigit():
                        discarded += int(w)
                        break
        return counts, discarded

    def close(self):
        subprocess.run(["lttng", "destroy", self.session], capture_output=True)
        if self.sessiond:
            try:
                os.kill(self.sessiond, signal.SIGTERM)
            except OSError:
                pass


def merge(rows_by_round):
    """Median over rounds of p50/p99/mean; written/delivered summed."""
    out = {}
    order = []
    for rows in rows_by_round:
        for r in rows:
            k = (r["figure"], r["peer"])
            if k not in out:
                out[k] = []
                order.append(k)
            out[k].append(r)
    merged = []
    for k in order:
        rs = out[k]
        m = dict(rs[0])
        for f in ("p50_ns", "p99_ns", "mean_ns"):
            vals = [r[f] for r in rs if r[f] >= 0]
            m[f] = statistics.median(vals) if vals else -1
        for f in ("written", "delivered"):
            vals = [r[f] for r in rs]
            m[f] = sum(vals) if all(v >= 0 for v in vals) else -1
        m["rounds"] = len(rs)
        merged.append(m)
    return merged


def fmt_ns(v):
    if v is None or v < 0:
        return ""
    return "%.0f ns" % v if v >= 100 else "%.1f ns" % v


def table(sections, notes):
    lines = ["| section | figure | peer | p50 | p99 | mean | mean vs baseline | delivered / written |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in sections:
        base = next((r for r in rows if r["peer"] == "baseline"), None)
        for r in rows:
            ratio = ""
            if base and r is not base and r["mean_ns"] > 0 and base["mean_ns"] > 0:
                ratio = "%.1fx" % (r["mean_ns"] / base["mean_ns"])
            dw = ""
            if r["written"] > 0 and r["delivered"] >= 0:
                dw = "%.0f / %.0f (%.1f%%)" % (r["delivered"], r["written"], 100.0 * r["delivered"] / r["written"])
            elif r.get("why_not"):
                dw = "not measured: " + r["why_not"]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, r["figure"], r["peer"], fmt_ns(r["p50_ns"]), fmt_ns(r["p99_ns"]), fmt_ns(r["mean_ns"]),
                ratio, dw))
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def find(rows, figure, peer):
    return next((r for r in rows if r["figure"] == figure and r["peer"] == peer), None)


LADDER = (125e3, 250e3, 500e3, 1e6, 2e6, 4e6, 8e6)


def lossless_section(build, tmp, quick, lttng_rate):
    """Issue 11's lossless burst: producers through the real libatel against an
    ateld with the default configuration (index and /metrics on, JSON files
    off, 64 rings of 16,384 slots), 1, 4 and 12 threads, rates rising in steps of 2x;
    the highest total rate at which no span was dropped, the flat-out rate
    delivered, the drain's own throughput in that flat-out run (records/s), and
    LTTng-UST's delivered rate from this run's C section."""
    prog = os.path.join(build, "bench", "peers", "lossless")
    if not os.path.exists(prog):
        return [], ["lossless burst: not measured (bench/peers/lossless not built)"]
    secs = "0.5" if quick else "1.5"
    lines = ["| workload | threads | highest lossless rate (total) | flat out: attempted/s | delivered/s | "
             "delivered | drain records/s (flat out) |", "|---|---|---|---|---|---|---|"]
    notes = []
    d = Ateld(build, os.path.join(tmp, "lossless"), default_config=True)
    try:
        env = dict(os.environ)
        for k in ("TRACEPARENT", "TRACESTATE", "TRACE_CONTEXT"):
            env.pop(k, None)
        st = d.status()
        rings, cap = st["config"]["shm"]["rings"], st["config"]["shm"]["ring_capacity"]
        notes.append("lossless burst: ateld with the default configuration (index and /metrics on, JSON files off), "
                     "%d rings x %d slots = %.0f MiB of shared memory; each step %s s" %
                     (rings, cap, rings * cap * 64 / 2**20, secs))

        def run(workload, threads, rate):
            r = subprocess.run([prog, "--shm", d.seg, "--threads", str(threads), "--seconds", secs,
                                "--rate", str(int(rate)), "--workload", workload],
                               env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("lossless failed: " + r.stderr[-500:])
            return json.loads(r.stdout.strip().splitlines()[-1])

        for workload in ("spans", "counter"):
            for threads in (1, 4, 12):
                best = None
                for rate in LADDER:
                    row = run(workload, threads, rate)
                    if row["dropped"] or row["no_ring"]:
                        break
                    best = rate
                before = d.status()["stats"]["records_drained"]
                t0 = time.time()
                flat = run(workload, threads, 0)
                time.sleep(0.3)
                drained = (d.status()["stats"]["records_drained"] - before) / (time.time() - t0)
                att = flat["attempted"] / flat["seconds"]
                lines.append("| %s | %d | %s | %.2fM | %.2fM | %.1f%% | %.2fM |" % (
                    workload if workload == "spans" else "counter (values fold: none lost)", threads,
                    ("%.0fk/s" % (best / 1e3)) if best else "below %.0fk/s" % (LADDER[0] / 1e3),
                    att / 1e6, flat["delivered_per_s"] / 1e6,
                    100.0 * (flat["attempted"] - flat["dropped"]) / max(flat["attempted"], 1), drained / 1e6))
        if lttng_rate:
            notes.append("LTTng-UST in this run's C section, one thread flat out: %.2fM events/s delivered" %
                         (lttng_rate / 1e6))
        notes.append("a span is 2 records (start, end); 'delivered' for spans counts spans kept whole, for "
                     "counters calls whose value reached the log (folded or not)")
    finally:
        d.stop()
    return lines, notes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build-release"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="fewer calls (a smoke run; figures less stable)")
    ap.add_argument("--json", help="also write the rows as JSON to this file")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    c_calls, c_flat, n_calls, p_calls = (20000, 100000, 20000, 5000) if a.quick else (200000, 1000000, 200000, 50000)

    peers_c = os.path.join(build, "bench", "peers", "peers_c")
    peers_cpp = os.path.join(build, "bench", "peers", "peers_promcpp")
    addon = os.path.join(build, "bindings", "node", "atel.node")
    node = shutil.which("node")
    node_ok = node and os.path.exists(addon) and os.path.isdir(os.path.join(HERE, "node", "node_modules"))
    if node and not os.path.isdir(os.path.join(HERE, "node", "node_modules")):
        log("installing the Node peers (npm ci in bench/peers/node)")
        r = subprocess.run([os.path.join(SRC, "scripts", "deps-node.sh"), "bench/peers/node"])
        node_ok = r.returncode == 0 and os.path.exists(addon)
    sys_python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

    tmp = tempfile.mkdtemp(prefix="atel-peers-%d-" % os.getpid())
    d = None
    lt = None
    rounds = {"C": [], "C++": [], "Node": [], "Python": []}
    try:
        d = Ateld(build, tmp)
        lt = Lttng(tmp)
        if lt.why_not:
            log("LTTng not measured: " + lt.why_not)
        env = dict(os.environ, ATEL_SHM=d.seg, ATEL_NODE_ADDON=addon, ATEL_BUILD_ROOT=build,
                   ATEL_LIBRARY=os.path.join(build, "producer", "libatel.so"))
        for k in ("TRACEPARENT", "TRACESTATE", "TRACE_CONTEXT"):
            env.pop(k, None)
        for rnd in range(a.rounds):
            log("round %d/%d" % (rnd + 1, a.rounds))
            if os.path.exists(peers_c):
                args = [peers_c, "--calls", str(c_calls), "--flat", str(c_flat), "--round", str(rnd)]
                if lt.why_not:
                    args.append("--no-lttng")
                rounds["C"].append(run_rows(args, env))
            if os.path.exists(peers_cpp):
                rounds["C++"].append(run_rows([peers_cpp, "--calls", str(c_calls)], env))
            if node_ok:
                rounds["Node"].append(run_rows([node, os.path.join(HERE, "node", "bench.js"), "--calls", str(n_calls),
                                                "--round", str(rnd)], dict(env, NODE_PATH="")))
            rounds["Python"].append(run_rows([sys_python, os.path.join(HERE, "python_bench.py"), "--calls",
                                              str(p_calls), "--round", str(rnd)], env))
        c_rows = merge(rounds["C"])
        cpp_rows = merge(rounds["C++"])
        notes = []
        if not lt.why_not:
            counts, discarded = lt.count()
            if counts is None:
                notes.append("LTTng delivered not counted: " + discarded)
            else:
                for r in c_rows:
                    if r["peer"] == "LTTng-UST":
                        ev = "flat" if "flat" in r["note"] else "lat"
                        r["delivered"] = counts.get(ev, 0)
                notes.append("LTTng-UST: babeltrace2 read %s events from the session's trace; it reported %d "
                             "discarded" % (sum(counts.values()), discarded))
        # the C section: baselines of peers_c, then libatel, LTTng, prometheus-cpp (its own atomic baseline aside)
        c_section = [r for r in c_rows if r["peer"] == "baseline"]
        c_section += [r for r in c_rows if r["peer"] != "baseline"]
        cpp_base = find(cpp_rows, "relaxed atomic_fetch_add", "baseline")
        for r in cpp_rows:
            if r["peer"] != "baseline":
                if cpp_base:
                    r["note"] += "; atomic baseline in its process %.1f ns" % cpp_base["mean_ns"]
                c_section.append(r)
        if not os.path.exists(peers_c):
            c_section.append({"figure": "all", "peer": "libatel/LTTng-UST", "p50_ns": -1, "p99_ns": -1,
                              "mean_ns": -1, "written": -1, "delivered": -1, "why_not": "peers_c not built"})
        if lt.why_not:
            c_section.append({"figure": "tracepoint", "peer": "LTTng-UST", "p50_ns": -1, "p99_ns": -1,
                              "mean_ns": -1, "written": -1, "delivered": -1, "why_not": lt.why_not})
        if not os.path.exists(peers_cpp):
            c_section.append({"figure": "counter add", "peer": "prometheus-cpp", "p50_ns": -1, "p99_ns": -1,
                              "mean_ns": -1, "written": -1, "delivered": -1,
                              "why_not": "peers_promcpp not built (prometheus-cpp-dev, g++)"})
        node_rows = merge(rounds["Node"])
        if not node_ok:
            node_rows = [{"figure": "all", "peer": "atel / OpenTelemetry JS / prom-client", "p50_ns": -1,
                          "p99_ns": -1, "mean_ns": -1, "written": -1, "delivered": -1,
                          "why_not": "node, the addon or bench/peers/node/node_modules missing"}]
        py_rows = merge(rounds["Python"])
        sections = [("C", c_section), ("Node", node_rows), ("Python", py_rows)]

        # the targets
        def ratio(rows, fig, a_peer, b_peer, field="p50_ns"):
            x, y = find(rows, fig, a_peer), find(rows, fig, b_peer)
            return (y[field] / x[field]) if x and y and x[field] > 0 and y[field] > 0 else None
        for fig in ("counter add", "span start+end"):
            for field in ("p50_ns", "mean_ns"):
                q = ratio(node_rows, fig, "atel", "OpenTelemetry JS", field)
                if q is not None:
                    notes.append("target: Node %s %s at least 5x faster than the OpenTelemetry JS SDK: %.1fx (%s)"
                                 % (fig, field.split("_")[0], q, "met" if q >= 5 else "MISSED"))
        sp, tp = find(c_rows, "span start+end", "libatel"), find(c_rows, "tracepoint (id + double)", "LTTng-UST")
        if sp and tp:
            notes.append("target: libatel span start+end p50 <= LTTng-UST tracepoint p50: %.1f vs %.1f ns (%s)" %
                         (sp["p50_ns"], tp["p50_ns"], "met" if sp["p50_ns"] <= tp["p50_ns"] else "MISSED"))
            notes.append("target: libatel span start+end p99 < LTTng-UST tracepoint p99: %.1f vs %.1f ns (%s)" %
                         (sp["p99_ns"], tp["p99_ns"], "met" if sp["p99_ns"] < tp["p99_ns"] else "MISSED"))
        notes.append("method: C, per-call lfence;rdtsc..rdtscp;lfence minus the empty pair (p50/p99; this VM's TSC "
                     "advances in steps of about 10 ns) and CLOCK_MONOTONIC chunk means (mean); Node and Python, "
                     "chunk means of 500 calls (p50/p99 over chunks); median of %d interleaved rounds. "
                     "delivered: libatel and the bindings, records published into the ring (ateld logs all of "
                     "them); LTTng-UST, events babeltrace2 read back; OpenTelemetry spans, spans the "
                     "BatchSpanProcessor exported; in-process aggregates (prometheus-cpp, prom-client, "
                     "OpenTelemetry metrics, prometheus_client), the value read back." % a.rounds)
        lttng_rate = None
        tf = find(c_rows, "tracepoint, flat out", "LTTng-UST")
        if tf and tf["mean_ns"] > 0 and tf["written"] > 0 and tf["delivered"] >= 0:
            lttng_rate = 1e9 / tf["mean_ns"] * tf["delivered"] / tf["written"]
        ll_lines, ll_notes = lossless_section(build, tmp, a.quick, lttng_rate)
        print(table(sections, notes))
        if ll_lines:
            print("\n" + "\n".join(ll_lines))
        print("\n".join(ll_notes))
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"sections": [{"name": n, "rows": r} for n, r in sections], "notes": notes}, f, indent=1)
        return 0
    finally:
        if lt is not None and not lt.why_not:
            lt.close()
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
