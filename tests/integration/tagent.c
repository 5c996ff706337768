/* SPDX-License-Identifier: MIT */
/*
 * tagent - a test agent built on the real libatel (producer/include/atel.h):
 * T threads, each running N iterations of an agent loop with metrics and
 * three nested spans (root SERVER -> tool CLIENT -> llm INTERNAL, an event,
 * attributes, an error on every 10th tool call), then atel_shutdown().
 *
 *   tagent --shm NAME --id P [--threads T] [--iters N] [--pace-us US]
 *
 * --pace-us US  sleep US microseconds after each iteration (an agent does other work)
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
#include <unistd.h>

#include "atel.h"

static int g_id, g_iters, g_pace_us;

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
		pthread_create(&th[t], NULL, agent, (void *)(intptr_t)t);
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	atel_shutdown();
	atel_stats_get(&st);
	printf("{\"producer\":%d,\"pid\":%d,\"threads\":%d,\"iters\":%d,\"records\":%" PRIu64 ",\"definitions\":%" PRIu64
	       ",\"meta\":%" PRIu64 ",\"drops_ring_full\":%" PRIu64 ",\"drops_no_ring\":%" PRIu64
	       ",\"drops_no_def\":%" PRIu64 ",\"drops_no_sidecar\":%" PRIu64 ",\"invalid\":%" PRIu64 "}\n",
	       g_id, (int)getpid(), threads, g_iters, st.records, st.definitions, st.meta, st.drops_ring_full,
	       st.drops_no_ring, st.drops_no_def, st.drops_no_sidecar, st.invalid);
	return 0;
}
