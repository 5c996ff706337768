/* SPDX-License-Identifier: MIT */
/*
 * peers_c: the C section of bench/peers (run.py runs it, one process per
 * round, and prints the table). In one process, interleaved in chunks of 500
 * calls so every figure sees the same machine state:
 *
 *   baseline   relaxed atomic_fetch_add on a private counter
 *   baseline   CLOCK_REALTIME vDSO read + 64-byte store (what a record write minimally is)
 *   libatel    atel_add on a warm counter; atel_trace_start + atel_span_end
 *   LTTng-UST  one tracepoint (a series id and a double: a metric sample's
 *              payload) under the active session run.py created
 *
 * Each call is timed with lfence;rdtsc .. rdtscp;lfence minus the median
 * empty pair; the mean comes from CLOCK_MONOTONIC around whole chunks
 * (untimed calls). Then a flat-out phase: --flat calls back to back per
 * recorder, no timing per call, for throughput and what got through.
 *
 * Written/delivered: libatel reports records published and dropped
 * (atel_stats_get deltas around each figure's chunks; ateld writes every
 * published record to its log, which tests/integration daemon_libatel checks
 * exactly). LTTng's delivered count is read from the trace by run.py
 * (babeltrace2): this program prints what it wrote.
 *
 *   peers_c [--calls N] [--flat N] [--round R]    JSON rows on stdout
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atel.h>

#include "peer_timing.h"

#ifndef PEERS_NO_LTTNG
#include "atelpeer_tp.h"
#endif

#define CHUNK 500
#define WARMUP 20000

enum op { OP_ATOMIC, OP_STORE, OP_ADD, OP_SPAN, OP_LTTNG, OP_COUNT };

static const char *const op_figure[OP_COUNT] = {
	"relaxed atomic_fetch_add", "clock_gettime + 64 B store", "counter add (atel_add)",
	"span start+end", "tracepoint (id + double)",
};
static const char *const op_peer[OP_COUNT] = { "baseline", "baseline", "libatel", "libatel", "LTTng-UST" };

static _Atomic uint64_t counter;
static uint64_t sink[8] __attribute__((aligned(64)));
static atel_series c_lat, c_flat;

static inline void bare_store(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	sink[0] = 0x06;
	sink[1] = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	for (int i = 2; i < 8; i++)
		sink[i] = 0;
	__asm__ volatile("" : : "r"(sink) : "memory");
}

static inline void do_op(enum op op, uint64_t i)
{
	switch (op) {
	case OP_ATOMIC:
		atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
		break;
	case OP_STORE:
		bare_store();
		break;
	case OP_ADD:
		atel_add(c_lat, 1);
		break;
	case OP_SPAN: {
		atel_span s = atel_trace_start("peer-span", ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
		break;
	}
	case OP_LTTNG:
#ifndef PEERS_NO_LTTNG
		lttng_ust_tracepoint(atelpeer, lat, i, (double)i);
#endif
		break;
	default:
		break;
	}
}

static uint64_t atel_dropped(const atel_stats *s)
{
	return s->drops_ring_full + s->drops_no_ring + s->drops_no_def + s->drops_no_sidecar + s->drops_reentrant;
}

int main(int argc, char **argv)
{
	uint64_t calls = 200000, flat = 1000000;
	int round = 0;
	struct pt_samples smp[OP_COUNT];
	uint64_t mean_ns[OP_COUNT] = { 0 }, nmean[OP_COUNT] = { 0 };
	uint64_t written[OP_COUNT] = { 0 }, published[OP_COUNT] = { 0 }, dropped[OP_COUNT] = { 0 };
	double tick;
	uint64_t ovh;
	bool lttng = true;
	char note[160];

#ifdef PEERS_NO_LTTNG
	lttng = false;
#endif
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--flat") && i + 1 < argc)
			flat = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--round") && i + 1 < argc)
			round = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-lttng"))
			lttng = false;
	}
	int rc = atel_init(NULL);
	if (rc != 0)
		fprintf(stderr, "peers_c: atel_init: %d (no sidecar: libatel figures are no-op costs)\n", rc);
	c_lat = atel_counter("peer_calls_total", "phase", "latency", NULL);
	c_flat = atel_counter("peer_calls_total", "phase", "flat", NULL);
	for (int o = 0; o < OP_COUNT; o++)
		if (pt_init(&smp[o], calls + CHUNK)) {
			fprintf(stderr, "peers_c: out of memory\n");
			return 1;
		}
	tick = pt_ns_per_tick();
	ovh = pt_overhead();
	/* warm-up: ring claimed, names interned, tracepoint registered */
	for (uint64_t i = 0; i < WARMUP; i++)
		for (int o = 0; o < OP_COUNT; o++)
			if (o != OP_LTTNG || lttng)
				do_op((enum op)o, i);
	usleep(20000);

	for (uint64_t done = 0; done < calls; done += CHUNK) {
		for (int k = 0; k < OP_COUNT; k++) {
			enum op o = (enum op)((k + done / CHUNK) % OP_COUNT); /* rotate the order */
			atel_stats s0, s1;
			uint64_t t0, n0;

			if (o == OP_LTTNG && !lttng)
				continue;
			atel_stats_get(&s0);
			for (uint64_t i = 0; i < CHUNK; i++) {
				t0 = pt_t0();
				do_op(o, i);
				pt_add(&smp[o], t0, pt_t1(), ovh);
			}
			n0 = pt_now_ns();
			for (uint64_t i = 0; i < CHUNK; i++)
				do_op(o, i);
			mean_ns[o] += pt_now_ns() - n0;
			nmean[o] += CHUNK;
			atel_stats_get(&s1);
			written[o] += 2 * CHUNK;
			published[o] += s1.records - s0.records;
			dropped[o] += atel_dropped(&s1) - atel_dropped(&s0);
		}
		usleep(200); /* let the consumers (ateld, lttng-consumerd) keep up, as an agent's pace would */
	}
	for (int o = 0; o < OP_COUNT; o++) {
		double p50, p99;

		if (o == OP_LTTNG && !lttng)
			continue;
		p50 = pt_pct(&smp[o], 0.5) * tick;
		p99 = pt_pct(&smp[o], 0.99) * tick;
		if (o == OP_ADD)
			pt_row(op_figure[o], op_peer[o], p50, p99, (double)mean_ns[o] / (double)nmean[o],
			       (double)written[o], (double)published[o], "delivered: published to the ring");
		else if (o == OP_SPAN)
			/* two records per call (start, end) */
			pt_row(op_figure[o], op_peer[o], p50, p99, (double)mean_ns[o] / (double)nmean[o],
			       (double)written[o], (double)published[o] / 2, "delivered: spans published (start and end)");
		else if (o == OP_LTTNG)
			/* the warm-up's events are in the trace too */
			pt_row(op_figure[o], op_peer[o], p50, p99, (double)mean_ns[o] / (double)nmean[o],
			       (double)(written[o] + WARMUP), -1, "lttng:lat");
		else
			pt_row(op_figure[o], op_peer[o], p50, p99, (double)mean_ns[o] / (double)nmean[o], -1, -1, "");
	}

	/* flat out: back to back, one recorder at a time */
	{
		atel_stats s0, s1;
		uint64_t t0;

		usleep(100000);
		atel_stats_get(&s0);
		t0 = pt_now_ns();
		for (uint64_t i = 0; i < flat; i++)
			atel_add(c_flat, 1);
		double ns = (double)(pt_now_ns() - t0);
		atel_stats_get(&s1);
		snprintf(note, sizeof(note), "flat out: %.2f M calls/s; %llu dropped (ring full)", flat / ns * 1e3,
			 (unsigned long long)(s1.drops_ring_full - s0.drops_ring_full));
		pt_row("counter add, flat out", "libatel", -1, -1, ns / (double)flat, (double)flat,
		       (double)(s1.records - s0.records), note);

		usleep(100000);
		atel_stats_get(&s0);
		t0 = pt_now_ns();
		for (uint64_t i = 0; i < flat; i++) {
			atel_span s = atel_trace_start("peer-flat-span", ATEL_SPAN_INTERNAL);
			atel_span_end(&s, ATEL_STATUS_OK, NULL);
		}
		ns = (double)(pt_now_ns() - t0);
		atel_stats_get(&s1);
		snprintf(note, sizeof(note), "flat out: %.2f M spans/s; %llu records dropped (ring full)",
			 flat / ns * 1e3, (unsigned long long)(s1.drops_ring_full - s0.drops_ring_full));
		pt_row("span start+end, flat out", "libatel", -1, -1, ns / (double)flat, (double)flat,
		       (double)(s1.records - s0.records) / 2, note);

		if (lttng) {
			usleep(100000);
			t0 = pt_now_ns();
#ifndef PEERS_NO_LTTNG
			for (uint64_t i = 0; i < flat; i++)
				lttng_ust_tracepoint(atelpeer, flat, i, (double)i);
#endif
			ns = (double)(pt_now_ns() - t0);
			snprintf(note, sizeof(note), "lttng:flat; flat out: %.2f M events/s", flat / ns * 1e3);
			pt_row("tracepoint, flat out", "LTTng-UST", -1, -1, ns / (double)flat, (double)flat, -1, note);
		}
	}
	printf("{\"round\":%d,\"counter\":%llu}\n", round, (unsigned long long)atomic_load(&counter));
	atel_shutdown();
	return 0;
}
