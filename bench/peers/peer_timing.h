/* SPDX-License-Identifier: MIT */
/*
 * peer_timing.h - per-call timing for the peer benches (peers_c.c,
 * peers_promcpp.cc): lfence;rdtsc .. rdtscp;lfence around one call, minus the
 * median cost of an empty pair, collected into an array and sorted for
 * percentiles; and batch means (CLOCK_MONOTONIC around k calls) for calls so
 * short that the timer pair dominates. C and C++. The clocks are
 * bench/bench.h's.
 */
#ifndef ATEL_PEER_TIMING_H
#define ATEL_PEER_TIMING_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../bench.h"

/* the clocks of atel-bench (static inline there: nothing of atel-bench.c is linked) */
#define pt_now_ns bench_now_ns
#define pt_t0 bench_t0
#define pt_t1 bench_t1

static int pt_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Samples of one figure: ticks per call, overhead already subtracted. */
struct pt_samples {
	uint64_t *v;
	size_t n, cap;
};

static inline void pt_add(struct pt_samples *s, uint64_t t0, uint64_t t1, uint64_t overhead)
{
	uint64_t d = t1 - t0;

	if (s->n < s->cap)
		s->v[s->n++] = d > overhead ? d - overhead : 0;
}

static inline int pt_init(struct pt_samples *s, size_t cap)
{
	s->v = (uint64_t *)malloc(cap * sizeof(uint64_t));
	s->n = 0;
	s->cap = s->v ? cap : 0;
	return s->v ? 0 : -1;
}

/* p in [0,1], in ticks; sorts the samples. */
static inline double pt_pct(struct pt_samples *s, double p)
{
	size_t i;

	if (!s->n)
		return 0;
	qsort(s->v, s->n, sizeof(uint64_t), pt_cmp_u64);
	i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return (double)s->v[i];
}

/* ns per tick, calibrated against CLOCK_MONOTONIC over ~50 ms. */
static inline double pt_ns_per_tick(void)
{
	uint64_t n0 = pt_now_ns(), c0 = pt_t0(), n1, c1;

	do
		n1 = pt_now_ns();
	while (n1 - n0 < 50000000ull);
	c1 = pt_t1();
	return (double)(n1 - n0) / (double)(c1 - c0 ? c1 - c0 : 1);
}

/* Median ticks of an empty t0/t1 pair. */
static inline uint64_t pt_overhead(void)
{
	static uint64_t v[10001];
	uint64_t t0;

	for (int i = 0; i < 10001; i++) {
		t0 = pt_t0();
		v[i] = pt_t1() - t0;
	}
	qsort(v, 10001, sizeof(uint64_t), pt_cmp_u64);
	return v[5000];
}

/* One JSON row of the peers table on stdout (run.py collects them). */
static inline void pt_row(const char *figure, const char *peer, double p50_ns, double p99_ns, double mean_ns,
			  double written, double delivered, const char *note)
{
	printf("{\"figure\":\"%s\",\"peer\":\"%s\",\"p50_ns\":%.2f,\"p99_ns\":%.2f,\"mean_ns\":%.2f,"
	       "\"written\":%.0f,\"delivered\":%.0f,\"note\":\"%s\"}\n",
	       figure, peer, p50_ns, p99_ns, mean_ns, written, delivered, note ? note : "");
	fflush(stdout);
}

#endif /* ATEL_PEER_TIMING_H */
