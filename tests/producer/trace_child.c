/* SPDX-License-Identifier: MIT */
/*
 * trace_child: the sub-agent side of the fork+exec propagation test. Joins
 * the trace from TRACEPARENT/TRACE_CONTEXT/TRACESTATE and prints one line:
 *   <extract rc> <parent traceparent seen> <child span traceparent> <child parent id> <tracestate or ->
 */
#include <stdio.h>

#include "atel.h"

int main(void)
{
	atel_span_context ctx = { 0 };
	char seen[64] = "-", mine[64], parent[17], ts[600];
	int rc = atel_env_extract(&ctx);
	atel_span s;

	if (rc == 0) {
		atel_span tmp = { .ctx = ctx, .state = 1 };
		atel_propagate(&tmp, seen, sizeof(seen));
	}
	s = atel_trace_continue(rc == 0 ? &ctx : NULL, "child", ATEL_SPAN_INTERNAL);
	atel_propagate(&s, mine, sizeof(mine));
	atel_span_id_hex(&(atel_span_context){ .span_id = { s.parent_id[0], s.parent_id[1], s.parent_id[2],
							    s.parent_id[3], s.parent_id[4], s.parent_id[5],
							    s.parent_id[6], s.parent_id[7] } },
			 parent);
	if (atel_propagate_tracestate(&s, ts, sizeof(ts)) <= 0)
		snprintf(ts, sizeof(ts), "-");
	atel_span_end(&s, ATEL_STATUS_OK, NULL);
	printf("%d %s %s %s %s\n", rc, seen, mine, parent, ts);
	return 0;
}
