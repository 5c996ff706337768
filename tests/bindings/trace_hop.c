/* SPDX-License-Identifier: MIT */
/*
 * trace_hop: the C link of the Node -> C -> Python trace test. Joins the
 * trace its parent left in TRACEPARENT/TRACESTATE as span "c-sub-agent",
 * puts its own span's context into the environment and runs argv[1..] as its
 * own sub-agent, then ends its span with the child's outcome. Prints one
 * line: "<extract rc> <own traceparent> <child exit status>".
 *   trace_hop PROGRAM [ARGS...]      exit 0, or 1 if the child failed
 */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

#include <atel.h>

extern char **environ;

int main(int argc, char **argv)
{
	atel_span_context ctx;
	char mine[64] = "-";
	int rc, status = -1, ok;
	pid_t pid;
	atel_span s;

	if (argc < 2) {
		fprintf(stderr, "usage: trace_hop PROGRAM [ARGS...]\n");
		return 2;
	}
	atel_init(NULL);
	rc = atel_env_extract(&ctx);
	s = atel_trace_continue(rc == 0 ? &ctx : NULL, "c-sub-agent", ATEL_SPAN_INTERNAL);
	atel_span_set_str(&s, "language", "c");
	atel_propagate(&s, mine, sizeof(mine));
	atel_env_inject(&s);
	if (posix_spawnp(&pid, argv[1], NULL, NULL, argv + 1, environ) == 0 && waitpid(pid, &status, 0) == pid)
		status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
	ok = status == 0;
	if (!ok)
		atel_span_record_error(&s, "SubAgentFailed", "the python sub-agent failed");
	atel_span_end(&s, ok ? ATEL_STATUS_OK : ATEL_STATUS_ERROR, NULL);
	printf("%d %s %d\n", rc, mine, status);
	atel_shutdown();
	return ok ? 0 : 1;
}
