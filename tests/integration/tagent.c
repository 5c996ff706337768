/* SPDX-License-Identifier: MIT */
/*
 * tagent - a test agent built on the real libatel (producer/include/atel.h):
 * T threads, each running N iterations of an agent loop with metrics and
 * three nested spans (root SERVER -> tool CLIENT -> llm INTERNAL, an event,
 * attributes, an error on every 10th tool call), then atel_shutdown().
 *
 *   tagent --shm NAME --id P [--threads T] [--iters N] [--pace-us US]
 *          [--burst N] [--progress FILE] [--spans 0|1]
 *
 * --pace-us US  sleep US microseconds after each iteration (an agent does other work)
 * --burst N     instead of the agent loop: each thread adds 1 to its own counter
 *               tagent_burst_total{p,t} N times as fast as it can, pausing 200 us
 *               every 1024 adds (issue 11's burst); with --spans 1 it also starts and
 *               ends one span per add (name "burst"); with --hist 1 it also observes
 *               tagent_burst_seconds{p,t} (bounds .25 .5 1) with 0, .3, .6, .9 in turn
 * --progress FILE  (burst) each thread keeps {started, done} add counts in FILE
 *               (MAP_SHARED u64 pairs, one per thread), so a test that kills the
 *               agent knows how many calls were made
 *
 * Prints what libatel reports it published and dropped:
 *   {"producer":P,"pid":..,"threads":T,"iters":N,"records":..,"definitions":..,
 *    "meta":..,"drops_ring_full":..,"drops_no_ring":..,"drops_no_def":..,
 *    "drops_no_sidecar":..,"invalid":..}
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atel.h"

static int g_id, g_iters, g_pace_us, g_burst, g_spans, g_hist;
static _Atomic uint64_t *g_progress; /* [2 * thread]: started, [2 * thread + 1]: done */

static void *burst(void *arg)
{
	int t = (int)(intptr_t)arg;
	char p[16], ts[16];
	atel_series c, h;
	_Atomic uint64_t *pr = g_progress ? &g_progress[2 * t] : NULL;

	snprintf(p, sizeof(p), "%d", g_id);
	snprintf(ts, sizeof(ts), "%d", t);
	c = atel_counter("tagent_burst_total", "p", p, "t", ts, NULL);
	h = atel_histogram_bounds("tagent_burst_seconds", (const double[]){ 0.25, 0.5, 1 }, 3, "p", p, "t", ts, NULL);
	for (int i = 0; i < g_burst; i++) {
		if (pr)
			atomic_store_explicit(&pr[0], (uint64_t)i + 1, memory_order_relaxed);
		atel_add(c, 1);
		if (g_hist)
			atel_observe(h, (double)(i % 4) * 0.3); /* 0, 0.3, 0.6, 0.9: buckets 0.25, 0.5, 1, 1 */
		if (g_spans) {
			atel_span s = atel_trace_start("burst", ATEL_SPAN_INTERNAL);
			atel_span_end(&s, ATEL_STATUS_OK, NULL);
		}
		if (pr)
			atomic_store_explicit(&pr[1], (uint64_t)i + 1, memory_order_relaxed);
		if ((i & 1023) == 1023)
			usleep(200);
	}
	return NULL;
}

static void *agent(void *arg)
{
	int t = (int)(intptr_t)arg;
	char p[16], ts[16];
	atel_series it_total, it_seq, lat;

	snprintf(p, sizeof(p), "%d", g_id);
	snprintf(ts, sizeof(ts), "%d", t);
	it_total = atel_counter("tagent_iterations_total", "p", p, "t", ts, NULL);
	it_seq = atel_gauge("tagent_seq", "p", p, "t", ts, NULL);
	lat = atel_histogram("tagent_latency_seconds", "p", p, NULL);
	for (int i = 0; i < g_iters; i++) {
		atel_span root = atel_trace_start("agent-iteration", ATEL_SPAN_SERVER);
		atel_span tool, llm;

		atel_span_set_int(&root, "p", g_id);
		atel_span_set_int(&root, "t", t);
		atel_span_set_int(&root, "i", i);
		tool = atel_span_start(&root, "tool-call", ATEL_SPAN_CLIENT);
		atel_span_set_str(&tool, "tool", i % 2 ? "Read" : "Write");
		llm = atel_span_start(&tool, "llm", ATEL_SPAN_INTERNAL);
		atel_span_add_event(&llm, "tokens_streamed");
		atel_span_set_double(&llm, "temperature", 0.5);
		atel_span_end(&llm, ATEL_STATUS_OK, NULL);
		if (i % 10 == 0) {
			atel_span_record_error(&tool, "ToolError", "the tool failed on purpose");
			atel_span_end(&tool, ATEL_STATUS_ERROR, "tool failed");
		} else {
			atel_span_end(&tool, ATEL_STATUS_OK, NULL);
		}
		atel_span_end(&root, ATEL_STATUS_OK, NULL);
		atel_add(it_total, 1);
		atel_set(it_seq, i);
		atel_observe(lat, (double)(i % 100) / 100.0);
		atel_track_tool_usage(&(atel_tool_usage){ .tool = i % 2 ? "Read" : "Write", .duration_ms = 1.5,
							  .success = i % 10 != 0, .error_type = i % 10 ? NULL : "ToolError" });
		if (g_pace_us)
			usleep((useconds_t)g_pace_us);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *shm = NULL;
	int threads = 2, rc;
	pthread_t th[64];
	atel_stats st;

	g_iters = 1000;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--shm"))
			shm = argv[i + 1];
		else if (!strcmp(argv[i], "--id"))
			g_id = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--threads"))
			threads = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--iters"))
			g_iters = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--pace-us"))
			g_pace_us = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--burst"))
			g_burst = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--spans"))
			g_spans = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hist"))
			g_hist = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--progress")) {
			int fd = open(argv[i + 1], O_RDWR | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || ftruncate(fd, 64 * 16) != 0) {
				perror("tagent: --progress");
				return 1;
			}
			g_progress = mmap(NULL, 64 * 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (g_progress == MAP_FAILED) {
				perror("tagent: --progress mmap");
				return 1;
			}
		}
	}
	if (!shm || threads < 1 || threads > 64) {
		fprintf(stderr, "usage: tagent --shm NAME --id P [--threads T] [--iters N]\n");
		return 1;
	}
	rc = atel_init(shm);
	if (rc) {
		fprintf(stderr, "tagent: atel_init(%s): %d\n", shm, rc);
		return 1;
	}
	for (int t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, g_burst ? burst : agent, (void *)(intptr_t)t);
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	atel_shutdown();
	atel_stats_get(&st);
	printf("{\"producer\":%d,\"pid\":%d,\"threads\":%d,\"iters\":%d,\"records\":%" PRIu64 ",\"definitions\":%" PRIu64
	       ",\"meta\":%" PRIu64 ",\"drops_ring_full\":%" PRIu64 ",\"drops_no_ring\":%" PRIu64
	       ",\"drops_no_def\":%" PRIu64 ",\"drops_no_sidecar\":%" PRIu64 ",\"drops_reentrant\":%" PRIu64
	       ",\"invalid\":%" PRIu64 ",\"folded\":%" PRIu64 ",\"spans_dropped\":%" PRIu64 "}\n",
	       g_id, (int)getpid(), threads, g_iters, st.records, st.definitions, st.meta, st.drops_ring_full,
	       st.drops_no_ring, st.drops_no_def, st.drops_no_sidecar, st.drops_reentrant, st.invalid, st.folded,
	       st.spans_dropped);
	return 0;
}
