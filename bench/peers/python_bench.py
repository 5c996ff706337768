#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python section of bench/peers (run.py runs it once per round, with
Debian's /usr/bin/python3 so that python3-prometheus-client is importable):
the atel binding (bindings/python, ctypes) beside prometheus_client, and a
baseline: a method call that increments an attribute (what a pure-Python
counter minimally is).

Method: chunks of 500 calls, figures interleaved chunk by chunk (order
rotated), each chunk timed with time.perf_counter_ns(); mean = total / calls,
p50/p99 over the chunk means. Delivered: atel, records published into the ring
(libatel's counters); prometheus_client, the value read back.

    python_bench.py [--calls N] [--round R]      JSON rows on stdout
"""
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bindings", "python"))
import atel  # noqa: E402
from atel import metrics_collector, trace_context  # noqa: E402

try:
    import prometheus_client
except ImportError:  # reported as a row, not a crash
    prometheus_client = None


def arg(name, dflt):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else dflt


CALLS, ROUND, CHUNK = arg("--calls", 100000), arg("--round", 0), 500


class Base:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1


def main():
    base = Base()
    a_counter = metrics_collector.counter("peer_calls_total", {"phase": "python"})
    a_hist = metrics_collector.histogram("peer_seconds", {"phase": "python"})
    start_trace, end_span = trace_context.start_trace, trace_context.end_span

    def a_span(i):
        end_span(start_trace("peer-span"))

    def a_span_with(i):
        with start_trace("peer-span"):
            pass

    ops = [
        ("method call incrementing an attribute", "baseline", lambda i: base.inc()),
        ("counter add", "atel", lambda i: a_counter.add(1)),
        ("histogram observe", "atel", lambda i: a_hist.observe((i & 255) * 0.01)),
        ("span start+end", "atel", a_span),
        ("span start+end (with-block)", "atel", a_span_with),
        ("track_tool_usage helper (3 series)", "atel",
         lambda i: metrics_collector.track_tool_usage(tool="Read", duration=250, success=True)),
    ]
    p_counter = p_hist = None
    if prometheus_client is not None:
        reg = prometheus_client.CollectorRegistry()
        p_counter = prometheus_client.Counter("peer_calls_total", "calls", ["phase"], registry=reg).labels(
            phase="latency")
        p_hist = prometheus_client.Histogram("peer_seconds", "seconds", ["phase"], registry=reg).labels(
            phase="latency")
        ops += [
            ("counter add", "prometheus_client", lambda i: p_counter.inc()),
            ("histogram observe", "prometheus_client", lambda i: p_hist.observe((i & 255) * 0.01)),
        ]
    st = {o: {"means": [], "total": 0, "calls": 0, "pub": 0} for o in range(len(ops))}
    warm = 5000
    for fig, peer, fn in ops:
        for i in range(warm):
            fn(i)
    clock = time.perf_counter_ns
    for done in range(0, CALLS, CHUNK):
        for k in range(len(ops)):
            o = (k + done // CHUNK) % len(ops)
            fn = ops[o][2]
            s0 = atel.stats()["records"] if ops[o][1] == "atel" else 0
            t0 = clock()
            for i in range(CHUNK):
                fn(i)
            dt = clock() - t0
            s = st[o]
            s["total"] += dt
            s["calls"] += CHUNK
            s["means"].append(dt / CHUNK)
            if ops[o][1] == "atel":
                s["pub"] += atel.stats()["records"] - s0
    for o, (fig, peer, fn) in enumerate(ops):
        s = st[o]
        m = sorted(s["means"])
        row = {"figure": fig, "peer": peer, "p50_ns": m[len(m) // 2], "p99_ns": m[min(len(m) - 1, int(0.99 * len(m)))],
               "mean_ns": s["total"] / s["calls"], "written": -1, "delivered": -1,
               "note": "ns/call from chunk means (500 calls)"}
        if peer == "atel":
            per = 2 if fig.startswith("span") else 3 if fig.startswith("track") else 1
            row["written"], row["delivered"] = s["calls"], s["pub"] / per
            row["note"] += "; delivered: published to the ring"
        elif peer == "prometheus_client":
            row["written"] = s["calls"] + warm
            if fig == "counter add":
                row["delivered"] = p_counter._value.get()
            else:
                row["delivered"] = sum(b.get() for b in p_hist._buckets)
            row["note"] += "; delivered: value read back"
        print(json.dumps(row))
    if prometheus_client is None:
        print(json.dumps({"figure": "counter add", "peer": "prometheus_client", "p50_ns": -1, "p99_ns": -1,
                          "mean_ns": -1, "written": -1, "delivered": -1,
                          "note": "not measured: python3-prometheus-client is not importable by %s" % sys.executable}))
    print(json.dumps({"round": ROUND, "baseline": base.n}))
    atel.shutdown()


if __name__ == "__main__":
    main()
