/* SPDX-License-Identifier: MIT */
/*
 * prom_producer SHM THREADS N: an agent process for test_prometheus.py.
 * Each thread records N agent executions through libatel's public API:
 * agent_type alternates coder/planner, durations alternate 0.3 s and 3 s
 * (so the median of the whole distribution is 0.5 and the 0.75 quantile 3.75
 * under Prometheus' linear bucket interpolation), every 4th fails, 10 tokens
 * each. It paces itself so no ring ever fills, then checks its own drop
 * counters: exit 0 only if every record was published.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "atel.h"

static long n_per_thread;

static void *worker(void *arg)
{
	(void)arg;
	for (long i = 0; i < n_per_thread; i++) {
		atel_agent_execution e = {
			.agent_id = "it-agent",
			.agent_type = i % 2 ? "coder" : "planner",
			.phase = "code",
			.model = "m1",
			.duration_ms = i % 2 ? 300.0 : 3000.0,
			.tokens = 10,
			.success = i % 4 != 3,
		};
		atel_track_agent_execution(&e);
		if (i % 256 == 255) { /* pacing: the sidecar drains far faster than this */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[64];
	atel_stats st;
	int threads, rc;

	if (argc != 4 || (threads = atoi(argv[2])) < 1 || threads > 64 || (n_per_thread = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: prom_producer SHM THREADS N\n");
		return 2;
	}
	if ((rc = atel_init(argv[1])) != 0) {
		fprintf(stderr, "prom_producer: atel_init(%s) = %d\n", argv[1], rc);
		return 1;
	}
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	atel_stats_get(&st);
	atel_shutdown();
	printf("records=%llu drops=%llu invalid=%llu\n", (unsigned long long)st.records,
	       (unsigned long long)(st.drops_ring_full + st.drops_no_ring + st.drops_no_def + st.drops_no_sidecar +
				    st.drops_reentrant),
	       (unsigned long long)st.invalid);
	if (st.drops_ring_full || st.drops_no_ring || st.drops_no_def || st.drops_no_sidecar || st.drops_reentrant ||
	    st.invalid) {
		fprintf(stderr, "prom_producer: records were dropped or rejected; counts would not match\n");
		return 1;
	}
	return 0;
}
