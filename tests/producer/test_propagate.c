/* SPDX-License-Identifier: MIT */
/*
 * propagate/extract/continue across a real fork+exec: the parent puts its
 * span's context into the environment (atel_env_inject), execs trace_child,
 * which joins the trace; the parent checks trace id, parent id, flags and
 * tracestate. Also TRACE_CONTEXT as an alias and an invalid TRACEPARENT
 * (the child starts a new trace). argv[1]: the trace_child binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "atel_test.h"
#include "atel.h"

static const char *child_bin;

struct seen {
	int rc;
	char parent_tp[64], child_tp[64], child_parent[20], ts[600];
};

static void run_child(struct seen *out)
{
	int fds[2], status;
	char buf[1024] = "";
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl(child_bin, child_bin, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	close(fds[0]);
	waitpid(pid, &status, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_int_equal(sscanf(buf, "%d %63s %63s %19s %599s", &out->rc, out->parent_tp, out->child_tp,
				out->child_parent, out->ts), 5);
}

static void clear_env(void)
{
	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
	unsetenv("TRACE_CONTEXT");
}

static void test_env_roundtrip(void **state)
{
	atel_span_context ctx;
	atel_span root, span;
	char tp[64], sid[17], tid[33];
	struct seen s;

	(void)state;
	clear_env();
	root = atel_trace_start("coordinator", ATEL_SPAN_SERVER);
	assert_int_equal(atel_propagate(&root, tp, sizeof(tp)), 55);
	/* give the span a tracestate by continuing a context that has one */
	assert_int_equal(atel_extract(tp, &ctx), 0);
	assert_int_equal(atel_extract_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", &ctx), 0);
	span = atel_trace_continue(&ctx, "dispatch", ATEL_SPAN_PRODUCER);
	assert_int_equal(atel_env_inject(&span), 0);
	assert_int_equal(atel_propagate(&span, tp, sizeof(tp)), 55);
	run_child(&s);
	assert_int_equal(s.rc, 0);
	assert_string_equal(s.parent_tp, tp);
	atel_trace_id_hex(&span.ctx, tid);
	atel_span_id_hex(&span.ctx, sid);
	/* same trace, parent = our span, a fresh span id, flags kept */
	assert_memory_equal(s.child_tp, "00-", 3);
	assert_memory_equal(s.child_tp + 3, tid, 32);
	assert_string_equal(s.child_parent, sid);
	assert_memory_not_equal(s.child_tp + 36, sid, 16);
	assert_string_equal(s.child_tp + 52, "-03");
	assert_string_equal(s.ts, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
	clear_env();
}

static void test_trace_context_alias(void **state)
{
	struct seen s;

	(void)state;
	clear_env();
	setenv("TRACE_CONTEXT", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", 1);
	run_child(&s);
	assert_int_equal(s.rc, 0);
	assert_memory_equal(s.child_tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
	assert_string_equal(s.child_parent, "00f067aa0ba902b7");
	assert_string_equal(s.child_tp + 52, "-00"); /* not sampled stays not sampled */
	assert_string_equal(s.ts, "-");
	clear_env();
}

static void test_invalid_env_restarts(void **state)
{
	struct seen s;

	(void)state;
	clear_env();
	setenv("TRACEPARENT", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", 1);
	setenv("TRACESTATE", "foo=1", 1);
	run_child(&s);
	assert_int_equal(s.rc, -22);
	assert_memory_not_equal(s.child_tp + 3, "00000000000000000000000000000000", 32);
	assert_string_equal(s.child_parent, "0000000000000000"); /* a root span */
	assert_string_equal(s.ts, "-");                      /* tracestate dropped with its traceparent */
	clear_env();
	run_child(&s);
	assert_int_equal(s.rc, -2); /* -ENOENT */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_roundtrip),
		cmocka_unit_test(test_trace_context_alias),
		cmocka_unit_test(test_invalid_env_restarts),
	};

	if (argc < 2)
		return 1;
	child_bin = argv[1];
	setenv("ATEL_SHM", "/nonexistent-dir/atel-propagate-test", 1);
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
