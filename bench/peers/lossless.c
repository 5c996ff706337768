/* SPDX-License-Identifier: MIT */
/*
 * lossless - what an agent gets from libatel under load (issue 11's
 * "lossless burst"): T threads go through the real libatel (not a writer that
 * spins on a full ring) against a running ateld, for S seconds, either paced
 * at a total rate R or flat out (R = 0), and the program prints what was
 * attempted, what the library dropped and what was delivered, per workload:
 *
 *   spans     atel_trace_start + atel_span_end per call (2 records)
 *   counter   atel_add(+1) per call (values fold when the ring is full: a
 *             "drop" here is a value lost, which folding should make 0)
 *
 *   lossless --shm NAME --threads T --seconds S --rate R --workload spans|counter
 *
 * One JSON line: {"workload":..,"threads":T,"rate":R,"seconds":..,"attempted":..,
 * "dropped":..,"folded":..,"delivered_per_s":..}. Pacing: each thread owns
 * R/T of the rate and sleeps until its schedule says the next batch of 32 is
 * due, so a thread that falls behind (ring full, machine busy) catches up by
 * not sleeping, never by skipping calls.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atel.h"

static double g_secs;
static double g_rate_per_thread; /* 0: flat out */
static int g_spans;
static atomic_ulong g_attempted;
static atel_series g_counter;

static double mono(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *worker(void *arg)
{
	double t0 = mono(), end = t0 + g_secs;
	unsigned long n = 0;

	(void)arg;
	for (;;) {
		double t = mono();

		if (t >= end)
			break;
		if (g_rate_per_thread > 0) {
			double due = t0 + (double)n / g_rate_per_thread;
			if (due > t) {
				struct timespec ts = { 0, (long)((due - t) * 1e9) };
				nanosleep(&ts, NULL);
				continue;
			}
		}
		for (int k = 0; k < 32; k++) {
			if (g_spans) {
				atel_span s = atel_trace_start("lossless", ATEL_SPAN_INTERNAL);
				atel_span_end(&s, ATEL_STATUS_OK, NULL);
			} else {
				atel_add(g_counter, 1);
			}
		}
		n += 32;
	}
	atomic_fetch_add(&g_attempted, n);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *shm = NULL, *workload = "spans";
	int threads = 1;
	double rate = 0;
	pthread_t th[256];
	atel_stats s0, s1;
	double t0, el;
	unsigned long att, dropped;

	g_secs = 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--shm"))
			shm = argv[i + 1];
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			g_secs = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
		else if (!strcmp(argv[i], "--workload"))
			workload = argv[i + 1];
	}
	if (!shm || threads < 1 || threads > 256 || g_secs <= 0 ||
	    (strcmp(workload, "spans") && strcmp(workload, "counter"))) {
		fprintf(stderr, "usage: lossless --shm NAME --threads T --seconds S --rate R --workload spans|counter\n");
		return 2;
	}
	if (atel_init(shm) != 0) {
		fprintf(stderr, "lossless: %s\n", atel_last_error());
		return 1;
	}
	g_spans = !strcmp(workload, "spans");
	g_counter = atel_counter("lossless_total", NULL);
	g_rate_per_thread = rate / threads;
	/* warm up: the span name interned, each thread's ring claimed in its first call */
	atel_stats_get(&s0);
	t0 = mono();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	el = mono() - t0;
	atel_shutdown(); /* every thread's folded values written before we count (thread exit already did) */
	atel_stats_get(&s1);
	att = atomic_load(&g_attempted);
	dropped = g_spans ? (unsigned long)(s1.spans_dropped - s0.spans_dropped)
			  : (unsigned long)(s1.drops_ring_full - s0.drops_ring_full);
	printf("{\"workload\":\"%s\",\"threads\":%d,\"rate\":%.0f,\"seconds\":%.3f,\"attempted\":%lu,\"dropped\":%lu,"
	       "\"folded\":%llu,\"no_ring\":%llu,\"delivered_per_s\":%.0f}\n",
	       workload, threads, rate, el, att, dropped, (unsigned long long)(s1.folded - s0.folded),
	       (unsigned long long)(s1.drops_no_ring - s0.drops_no_ring), (double)(att - dropped) / el);
	return 0;
}
