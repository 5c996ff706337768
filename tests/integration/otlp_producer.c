/* SPDX-License-Identifier: MIT */
/*
 * otlp_producer SHM TAG N [open]: an agent process for test_otlp.py. Records
 * N traces through libatel's public API, each a SERVER root "TAG-i-root"
 * with two INTERNAL children: "TAG-i-ok" (attributes of every type, an event
 * with an attribute, status OK) and "TAG-i-fail" (a recorded error, status
 * ERROR "tool failed"). Plus one agent execution per trace (metrics).
 * With "open", it also starts "TAG-open" and exits without ending it (its
 * producer died: ateld exports it as ERROR "producer exited").
 * Exit 0 only if every record was published (drop counters zero).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atel.h"

int main(int argc, char **argv)
{
	char name[96];
	atel_stats st;
	long n;
	int rc;

	if (argc < 4 || (n = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: otlp_producer SHM TAG N [open]\n");
		return 2;
	}
	if ((rc = atel_init(argv[1])) != 0) {
		fprintf(stderr, "otlp_producer: atel_init(%s) = %d\n", argv[1], rc);
		return 1;
	}
	for (long i = 0; i < n; i++) {
		atel_span root, ok, fail;
		atel_attr ev[] = { ATEL_ATTR_I("files", 3) };
		atel_agent_execution e = { .agent_id = "a1", .agent_type = "coder", .phase = "code", .model = "m",
					   .duration_ms = 250, .tokens = 100, .success = true };

		snprintf(name, sizeof(name), "%s-%ld-root", argv[2], i);
		root = atel_trace_start(name, ATEL_SPAN_SERVER);
		snprintf(name, sizeof(name), "%s-%ld-ok", argv[2], i);
		ok = atel_span_start(&root, name, ATEL_SPAN_INTERNAL);
		atel_span_set_str(&ok, "agent.type", "coder");
		atel_span_set_int(&ok, "index", i);
		atel_span_set_double(&ok, "ratio", 0.5);
		atel_span_set_bool(&ok, "cached", true);
		atel_span_add_event_attrs(&ok, "code_generation_started", ev, 1);
		atel_span_end(&ok, ATEL_STATUS_OK, NULL);
		snprintf(name, sizeof(name), "%s-%ld-fail", argv[2], i);
		fail = atel_span_start(&root, name, ATEL_SPAN_INTERNAL);
		atel_span_record_error(&fail, "ToolError", "tool failed");
		atel_span_end(&fail, ATEL_STATUS_ERROR, "tool failed");
		atel_span_end(&root, ATEL_STATUS_OK, NULL);
		atel_track_agent_execution(&e);
		if (i % 64 == 63) { /* pacing: never fill a ring */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	if (argc > 4 && !strcmp(argv[4], "open")) {
		snprintf(name, sizeof(name), "%s-open", argv[2]);
		atel_span open = atel_trace_start(name, ATEL_SPAN_INTERNAL);
		(void)open;
		atel_stats_get(&st);
		fflush(stdout);
		_Exit(st.drops_ring_full || st.drops_no_ring || st.drops_no_def || st.invalid ? 1 : 0); /* "dies" */
	}
	atel_stats_get(&st);
	atel_shutdown();
	if (st.drops_ring_full || st.drops_no_ring || st.drops_no_def || st.drops_no_sidecar || st.drops_reentrant ||
	    st.invalid) {
		fprintf(stderr, "otlp_producer: records were dropped or rejected\n");
		return 1;
	}
	return 0;
}
