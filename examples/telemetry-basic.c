/* SPDX-License-Identifier: MIT */
/*
 * telemetry-basic: docs/reference.md's "Basic Usage" with libatel.
 * Run with a sidecar (ateld) up, or without one: the calls are then counted
 * no-ops. The segment name comes from $ATEL_SHM (default "atel").
 */
#include <stdio.h>

#include <atel.h>

int main(void)
{
	atel_stats st;

	atel_init(NULL); /* never fails hard: without a sidecar, calls are cheap no-ops */

	/* Track agent execution */
	atel_track_agent_execution(&(atel_agent_execution){
		.agent_id = "coder-123", .agent_type = "coder", .duration_ms = 5000, .tokens = 1500,
		.success = true, .phase = "code" });

	/* Track tool usage */
	atel_track_tool_usage(&(atel_tool_usage){ .tool = "Read", .duration_ms = 250, .success = true });

	/* Track context window usage */
	atel_track_context_usage(&(atel_context_usage){ .used = 75000, .total = 200000, .agent_id = "coder-123" });

	/* Start distributed tracing */
	atel_span root = atel_trace_start("orchestration-session", ATEL_SPAN_INTERNAL);
	atel_span_set_str(&root, "sessionId", "session-123");
	atel_span_set_str(&root, "coordinator", "hierarchical");

	/* Create child span for sub-agent */
	atel_span child = atel_span_start(&root, "coder-execution", ATEL_SPAN_INTERNAL);
	/* ... execute agent work ... */
	atel_span_end(&child, ATEL_STATUS_UNSET, NULL);
	atel_span_end(&root, ATEL_STATUS_UNSET, NULL);

	atel_stats_get(&st);
	printf("telemetry-basic: %llu records written, %llu dropped (sidecar %s)\n",
	       (unsigned long long)st.records,
	       (unsigned long long)(st.drops_ring_full + st.drops_no_ring + st.drops_no_def + st.drops_no_sidecar),
	       st.attached ? "attached" : "absent");
	atel_shutdown();
	return 0;
}
