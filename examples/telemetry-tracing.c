/* SPDX-License-Identifier: MIT */
/*
 * telemetry-tracing: docs/reference.md's "Span Lifecycle" and "Propagating
 * Context" with libatel. The coordinator starts a trace and runs itself as a
 * sub-agent; the child joins the trace through TRACEPARENT/TRACESTATE.
 * The segment name comes from $ATEL_SHM (default "atel").
 */
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <atel.h>

extern char **environ;

static int sub_agent(void)
{
	atel_span_context ctx;

	/* Sub-agent: read the context the coordinator put into the environment */
	if (atel_env_extract(&ctx) != 0)
		fprintf(stderr, "sub-agent: no valid TRACEPARENT, starting a new trace\n");
	atel_span sub = atel_trace_continue(&ctx, "sub-agent-work", ATEL_SPAN_INTERNAL);
	atel_span_set_int(&sub, "files", 3);
	atel_span_end(&sub, ATEL_STATUS_OK, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	char traceparent[64];
	pid_t pid;
	int status = 1;

	atel_init(NULL);
	if (argc > 1 && strcmp(argv[1], "sub-agent") == 0) {
		int rc = sub_agent();
		atel_shutdown();
		return rc;
	}

	/* 1. Start root trace */
	atel_span root = atel_trace_start("orchestration-session", ATEL_SPAN_SERVER);

	/* 2. Set attributes */
	atel_span_set_str(&root, "sessionId", "session-123");
	atel_span_set_str(&root, "coordinator", "hierarchical");
	atel_span_set_int(&root, "totalAgents", 5);

	/* 3. Create child spans for sub-agents */
	atel_span child = atel_span_start(&root, "coder-execution", ATEL_SPAN_INTERNAL);

	/* 4. Add events */
	atel_span_add_event_attrs(&child, "code_generation_started",
				  (atel_attr[]){ ATEL_ATTR_I("files", 3), ATEL_ATTR_S("language", "typescript") }, 2);

	/* 5. Handle errors */
	atel_span_record_error(&child, "LintError", "2 files failed lint");

	/* Propagate context: pass it to a sub-agent through the environment */
	atel_propagate(&child, traceparent, sizeof(traceparent));
	atel_env_inject(&child);
	if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, (char *[]){ argv[0], "sub-agent", NULL }, environ) == 0)
		waitpid(pid, &status, 0);

	/* 6. End spans */
	atel_span_end(&child, ATEL_STATUS_OK, NULL);
	atel_span_end(&root, ATEL_STATUS_OK, NULL);

	printf("telemetry-tracing: trace %.32s, sub-agent exit %d\n", traceparent + 3,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	atel_shutdown();
	return 0;
}
