/* SPDX-License-Identifier: MIT */
/*
 * Runs examples/telemetry-basic and examples/telemetry-tracing against a
 * segment file and checks what they wrote: the helper series of the reference's
 * basic usage, and a trace that crosses a fork+exec (the sub-agent's span has
 * the coordinator's trace id and its parent span id, from another pid).
 * argv: the two example binaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "atel_test.h"
#include "ptest.h"

static const char *bin_basic, *bin_tracing;

static int run(const char *bin, const char *shm)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		setenv("ATEL_SHM", shm, 1);
		unsetenv("TRACEPARENT");
		unsetenv("TRACE_CONTEXT");
		execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Reads every ring; calls fn per non-empty ring. */
static size_t count_all(const struct atel_segment *seg, unsigned type)
{
	size_t n = 0;

	for (uint32_t r = 0; r < seg->ring_count; r++) {
		struct pt_ring pr;
		assert_int_equal(pt_read(seg, r, &pr), 0);
		assert_int_equal(pt_check_defs(&pr), 0);
		n += pt_count(&pr, type);
		pt_free(&pr);
	}
	return n;
}

static void test_basic(void **state)
{
	char path[256];
	struct atel_segment seg;
	struct pt_ring pr;
	int names = 0;

	(void)state;
	pt_path(path, sizeof(path), "exbasic");
	assert_int_equal(pt_create(&seg, path, 4, 1024), 0);
	assert_int_equal(run(bin_basic, path), 0);
	/* agent: 3 samples, tool: 3, context: 3; 2 spans */
	assert_int_equal(count_all(&seg, ATEL_REC_SAMPLE), 9);
	assert_int_equal(count_all(&seg, ATEL_REC_SPAN_START), 2);
	assert_int_equal(count_all(&seg, ATEL_REC_SPAN_END), 2);
	assert_int_equal(count_all(&seg, ATEL_REC_END), 1);
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		assert_int_equal(pt_read(&seg, r, &pr), 0);
		for (size_t i = 0; i < pr.n; i++) {
			const union atel_slot *s = pr.recs[i].s;
			if (s->h.type == ATEL_REC_SERIESDEF) {
				const char *nm = pt_str(&pr, s->seriesdef.name_id);
				names += !strcmp(nm, "agent_execution_total") || !strcmp(nm, "tool_calls_total") ||
					 !strcmp(nm, "context_window_utilization");
			}
		}
		pt_free(&pr);
	}
	assert_int_equal(names, 3);
	atel__segment_detach(&seg);
	unlink(path);
}

static void test_tracing(void **state)
{
	char path[256];
	struct atel_segment seg;
	uint8_t coder_trace[16] = { 0 }, coder_span[8] = { 0 };
	int have_coder = 0, have_sub = 0, pids = 0;
	int32_t coord_pid = 0;

	(void)state;
	pt_path(path, sizeof(path), "extrace");
	assert_int_equal(pt_create(&seg, path, 4, 1024), 0);
	assert_int_equal(run(bin_tracing, path), 0);
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		struct pt_ring pr;
		assert_int_equal(pt_read(&seg, r, &pr), 0);
		for (size_t i = 0; i < pr.n; i++) {
			const union atel_slot *s = pr.recs[i].s;
			if (s->h.type == ATEL_REC_SPAN_START && !strcmp(pt_str(&pr, s->h.id), "coder-execution")) {
				memcpy(coder_trace, s->span_start.trace_id, 16);
				memcpy(coder_span, s->span_start.span_id, 8);
				coord_pid = pr.recs[0].s->begin.pid;
				have_coder = 1;
			}
		}
		pids += pr.n > 0;
		pt_free(&pr);
	}
	assert_true(have_coder);
	assert_int_equal(pids, 2); /* coordinator and sub-agent: two processes, two rings */
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		struct pt_ring pr;
		assert_int_equal(pt_read(&seg, r, &pr), 0);
		for (size_t i = 0; i < pr.n; i++) {
			const union atel_slot *s = pr.recs[i].s;
			if (s->h.type == ATEL_REC_SPAN_START && !strcmp(pt_str(&pr, s->h.id), "sub-agent-work")) {
				assert_memory_equal(s->span_start.trace_id, coder_trace, 16);
				assert_memory_equal(s->span_start.parent_id, coder_span, 8);
				assert_int_not_equal(pr.recs[0].s->begin.pid, coord_pid);
				have_sub = 1;
			}
		}
		pt_free(&pr);
	}
	assert_true(have_sub);
	assert_int_equal(count_all(&seg, ATEL_REC_SPAN_ERROR), 1);
	assert_int_equal(count_all(&seg, ATEL_REC_SPAN_EVENT), 1);
	assert_int_equal(count_all(&seg, ATEL_REC_SPAN_END), 3);
	atel__segment_detach(&seg);
	unlink(path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_tracing),
	};

	if (argc < 3) {
		fprintf(stderr, "usage: %s telemetry-basic telemetry-tracing\n", argv[0]);
		return 1;
	}
	bin_basic = argv[1];
	bin_tracing = argv[2];
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
