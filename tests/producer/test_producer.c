/* SPDX-License-Identifier: MIT */
/*
 * libatel unit tests: what the library writes into its ring, byte for byte;
 * validation; the catalog helpers; ring-full behaviour of definitions vs
 * uses; shutdown; no-sidecar and late attach. Each test attaches to its own
 * segment file and shuts the library down at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <cmocka.h>

#include "atel_test.h"
#include "catalog.h"
#include "ptest.h"

static char path[256];
static struct atel_segment seg;

static int setup_seg(uint32_t rings, uint32_t cap)
{
	static int n;
	char tag[32];

	snprintf(tag, sizeof(tag), "u%d", n++);
	pt_path(path, sizeof(path), tag);
	if (pt_create(&seg, path, rings, cap))
		return -1;
	return atel_init(path);
}

static void teardown_seg(void)
{
	atel_shutdown();
	atel__segment_detach(&seg);
	unlink(path);
}

static int my_ring(void)
{
	int tid = (int)syscall(SYS_gettid);

	for (uint32_t i = 0; i < seg.ring_count; i++) {
		struct atel_ring_desc *d = atel__seg_desc(&seg, i);
		if (atomic_load(&d->state) == ATEL_RING_ACTIVE && d->owner_tid == tid)
			return (int)i;
	}
	return -1;
}

/* Finds the series id whose SERIESDEF names `name` with label value `v0` for its first pair (or any). */
static uint32_t series_id(const struct pt_ring *r, const char *name, const char *v0)
{
	for (size_t i = 0; i < r->n; i++) {
		const union atel_slot *s = r->recs[i].s;
		if (s->h.type != ATEL_REC_SERIESDEF || strcmp(pt_str(r, s->seriesdef.name_id), name) != 0)
			continue;
		if (!v0 || (s->seriesdef.nlabels && strcmp(pt_str(r, s->seriesdef.pairs[0].value_id), v0) == 0))
			return s->h.id;
	}
	return 0;
}

/* Sum of SAMPLE values for a series id; *n gets the count. */
static double samples_of(const struct pt_ring *r, uint32_t id, size_t *n)
{
	double sum = 0;

	*n = 0;
	for (size_t i = 0; i < r->n; i++) {
		const union atel_slot *s = r->recs[i].s;
		if (s->h.type == ATEL_REC_SAMPLE && s->h.id == id) {
			sum += s->sample.value;
			(*n)++;
		}
	}
	return sum;
}

static void test_catalog(void **state)
{
	const struct atel_catalog_metric *m;

	(void)state;
	assert_int_equal(ATEL_CATALOG_COUNT, 16);
	m = atel__catalog_find("tool_calls_total");
	assert_non_null(m);
	assert_int_equal(m->mtype, ATEL_MT_COUNTER);
	assert_int_equal(m->nlabels, 2);
	assert_string_equal(m->labels[0], "tool");
	assert_string_equal(m->labels[1], "status");
	assert_string_equal(m->help, "Total tool invocations");
	m = atel__catalog_find("agent_tokens_used");
	assert_non_null(m);
	assert_int_equal(m->mtype, ATEL_MT_COUNTER);
	assert_ptr_equal(atel__catalog_find_exposed("agent_tokens_used_total"), m);
	assert_null(atel__catalog_find("agent_tokens_used_total"));
	assert_ptr_equal(atel__catalog_find_exposed("tool_call_duration_seconds_bucket"),
			 atel__catalog_find("tool_call_duration_seconds"));
	for (unsigned i = 0; i < ATEL_CATALOG_COUNT; i++) {
		m = &atel__catalog[i];
		assert_ptr_equal(atel__catalog_find(m->name), m);
		assert_int_equal(m->mtype == ATEL_MT_HISTOGRAM, m->nbounds > 0);
		for (uint32_t b = 1; b < m->nbounds; b++)
			assert_true(m->bounds[b] > m->bounds[b - 1]);
	}
	m = atel__catalog_find("agent_execution_duration_seconds");
	assert_true(m->bounds[0] <= 0.005 && m->bounds[m->nbounds - 1] >= 1800);
	m = atel__catalog_find("tool_call_duration_seconds");
	assert_true(m->bounds[0] <= 0.001 && m->bounds[m->nbounds - 1] >= 120);
}

static void test_sample_bytes(void **state)
{
	struct pt_ring r;
	atel_series c, g;
	const union atel_slot *s;
	long i;
	int ring;
	atel_stats st0, st1;

	(void)state;
	assert_int_equal(setup_seg(4, 1024), 0);
	atel_stats_get(&st0);
	c = atel_counter("jobs_done_total", "zone", "eu", "kind", "build", NULL);
	assert_non_null(c);
	/* same series regardless of pair order */
	assert_ptr_equal(atel_counter("jobs_done_total", "kind", "build", "zone", "eu", NULL), c);
	g = atel_gauge("queue_depth", NULL);
	atel_add(c, 2);
	atel_add(c, 3.5);
	atel_set(g, -7);
	atel_add(g, 1);
	ring = my_ring();
	assert_true(ring >= 0);
	assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	/* BEGIN */
	s = r.recs[0].s;
	assert_int_equal(s->h.type, ATEL_REC_BEGIN);
	assert_int_equal(s->h.id, atel__seg_desc(&seg, (uint32_t)ring)->generation);
	assert_int_equal(s->begin.pid, getpid());
	assert_int_equal(s->begin.tid, (int)syscall(SYS_gettid));
	assert_int_equal(s->begin.ring, (uint32_t)ring);
	assert_int_equal(s->begin.start, atel__proc_start_time(getpid()));
	assert_int_equal(s->begin.reserved0, 0);
	assert_int_equal(s->begin.reserved1, 0);
	/* SERIESDEF for the counter: pairs sorted by key (kind < zone) */
	i = pt_find(&r, ATEL_REC_SERIESDEF, 0);
	assert_true(i > 0);
	s = r.recs[i].s;
	assert_int_equal(s->seriesdef.mtype, ATEL_MT_COUNTER);
	assert_int_equal(s->seriesdef.nlabels, 2);
	assert_string_equal(pt_str(&r, s->seriesdef.name_id), "jobs_done_total");
	assert_string_equal(pt_str(&r, s->seriesdef.pairs[0].key_id), "kind");
	assert_string_equal(pt_str(&r, s->seriesdef.pairs[0].value_id), "build");
	assert_string_equal(pt_str(&r, s->seriesdef.pairs[1].key_id), "zone");
	assert_string_equal(pt_str(&r, s->seriesdef.pairs[1].value_id), "eu");
	assert_int_equal(s->seriesdef.bounds_id, 0);
	assert_int_equal(s->seriesdef.reserved0, 0);
	assert_int_equal(s->seriesdef.reserved1, 0);
	assert_int_equal(s->seriesdef.pairs[2].key_id, 0);
	assert_int_equal(s->seriesdef.pairs[3].value_id, 0);
	/* the four samples, in order, with exact values and flags */
	i = pt_find(&r, ATEL_REC_SAMPLE, 0);
	s = r.recs[i].s;
	assert_int_equal(s->h.id, r.recs[pt_find(&r, ATEL_REC_SERIESDEF, 0)].s->h.id);
	assert_true(s->sample.value == 2.0);
	assert_int_equal(s->h.flags, 0);
	assert_int_equal(s->sample.count, 0); /* not folded */
	assert_int_equal(s->sample.first_ns, 0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(s->sample.reserved[k], 0);
	assert_true(r.recs[pt_find(&r, ATEL_REC_SAMPLE, 1)].s->sample.value == 3.5);
	s = r.recs[pt_find(&r, ATEL_REC_SAMPLE, 2)].s;
	assert_true(s->sample.value == -7.0);
	assert_int_equal(s->h.flags, ATEL_RECF_SET);
	assert_int_equal(s->h.id, r.recs[pt_find(&r, ATEL_REC_SERIESDEF, 1)].s->h.id);
	s = r.recs[pt_find(&r, ATEL_REC_SAMPLE, 3)].s;
	assert_int_equal(s->h.flags, 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 4);
	/* timestamps are wall-clock ns, non-decreasing */
	for (size_t k = 1; k < r.n; k++)
		assert_true(r.recs[k].s->h.ts_ns >= r.recs[k - 1].s->h.ts_ns);
	assert_true(llabs((long long)(r.recs[r.n - 1].s->h.ts_ns / 1000000000ull) - (long long)time(NULL)) < 5);
	atel_stats_get(&st1);
	assert_int_equal(st1.records - st0.records, 4);
	/* defs: 2 SERIESDEF + strings jobs_done_total kind build zone eu queue_depth */
	assert_int_equal(st1.definitions - st0.definitions, 8);
	assert_int_equal(pt_count(&r, ATEL_REC_STRDEF), 6);
	pt_free(&r);
	teardown_seg();
}

static void test_shutdown_end(void **state)
{
	struct pt_ring r;
	int ring;
	uint32_t gen;

	(void)state;
	assert_int_equal(setup_seg(2, 256), 0);
	atel_add(atel_counter("x_total", NULL), 1);
	ring = my_ring();
	assert_true(ring >= 0);
	gen = atel__seg_desc(&seg, (uint32_t)ring)->generation;
	atel_shutdown();
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->state), ATEL_RING_FREE);
	assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
	assert_int_equal(r.recs[r.n - 1].s->h.type, ATEL_REC_END);
	assert_int_equal(r.recs[r.n - 1].s->h.id, gen);
	pt_free(&r);
	/* after shutdown: calls are no-ops, nothing more is written */
	atel_add(atel_counter("x_total", NULL), 1);
	assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
	assert_int_equal(r.recs[r.n - 1].s->h.type, ATEL_REC_END);
	pt_free(&r);
	atel__segment_detach(&seg);
	unlink(path);
}

static void test_histogram_and_cont(void **state)
{
	static const double b7[] = { 1, 2, 4, 8, 16, 32, 64 };
	struct pt_ring r;
	atel_series h, wide;
	const union atel_slot *s;
	const char *kv[32];
	char keys[16][8], vals[16][8];
	char longname[120];
	long i;

	(void)state;
	assert_int_equal(setup_seg(2, 1024), 0);
	h = atel_histogram_bounds("payload_bytes", b7, 7, "route", "a", NULL);
	assert_non_null(h);
	atel_observe(h, 5);
	for (int k = 0; k < 16; k++) {
		snprintf(keys[k], sizeof(keys[k]), "k%02d", 15 - k);
		snprintf(vals[k], sizeof(vals[k]), "v%02d", 15 - k);
		kv[2 * k] = keys[k];
		kv[2 * k + 1] = vals[k];
	}
	wide = atel_series_get(ATEL_GAUGE, "wide_gauge", kv, 16);
	assert_non_null(wide);
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "long_", 5);
	longname[sizeof(longname) - 1] = '\0';
	atel_set(wide, 1);
	atel_add(atel_counter(longname, NULL), 1);
	assert_int_equal(pt_read(&seg, (uint32_t)my_ring(), &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	/* BOUNDS: 7 values, 5 inline + 1 continuation slot */
	i = pt_find(&r, ATEL_REC_BOUNDS, 0);
	assert_true(i > 0);
	s = r.recs[i].s;
	assert_int_equal(s->bounds.count, 7);
	assert_int_equal(s->h.cont, 1);
	assert_int_equal(r.recs[i].nslots, 2);
	assert_true(s->bounds.bounds[4] == 16.0);
	{
		const union atel_slot *c = s + 1;
		double d5, d6, d7;
		memcpy(&d5, &c->words[0], 8);
		memcpy(&d6, &c->words[1], 8);
		memcpy(&d7, &c->words[2], 8);
		assert_true(d5 == 32.0 && d6 == 64.0);
		assert_true(d7 == 0.0);
	}
	i = pt_find(&r, ATEL_REC_SERIESDEF, 0);
	s = r.recs[i].s;
	assert_int_equal(s->seriesdef.mtype, ATEL_MT_HISTOGRAM);
	assert_int_equal(s->seriesdef.bounds_id, r.recs[pt_find(&r, ATEL_REC_BOUNDS, 0)].s->h.id);
	/* 16 labels: 4 inline + 12 in two continuation slots, sorted k00..k15 */
	i = pt_find(&r, ATEL_REC_SERIESDEF, 1);
	s = r.recs[i].s;
	assert_int_equal(s->seriesdef.nlabels, 16);
	assert_int_equal(s->h.cont, 2);
	{
		const struct atel_label_pair *p = (const struct atel_label_pair *)(const void *)(s + 1)->raw;
		assert_string_equal(pt_str(&r, s->seriesdef.pairs[0].key_id), "k00");
		assert_string_equal(pt_str(&r, s->seriesdef.pairs[3].value_id), "v03");
		assert_string_equal(pt_str(&r, p[0].key_id), "k04");
		assert_string_equal(pt_str(&r, p[11].value_id), "v15");
		assert_int_equal(p[12].key_id, 0); /* padding of the last slot is zero */
	}
	/* a 119-byte name: 44 inline + 75 in two continuation slots */
	for (size_t k = 0; k < r.n; k++) {
		s = r.recs[k].s;
		if (s->h.type == ATEL_REC_STRDEF && s->strdef.len == 119) {
			assert_int_equal(s->h.cont, 2);
			assert_string_equal(pt_str(&r, s->h.id), longname);
			assert_int_equal((s + 2)->raw[63], 0);
		}
	}
	pt_free(&r);
	/* 17 labels are rejected */
	kv[0] = "a";
	assert_null(atel_series_get(ATEL_GAUGE, "wide_gauge", kv, 17));
	teardown_seg();
}

static void test_validation(void **state)
{
	struct pt_ring r;
	atel_stats st0, st1;
	atel_series c;
	size_t before;

	(void)state;
	assert_int_equal(setup_seg(2, 1024), 0);
	c = atel_counter("ok_total", "a", "1", NULL);
	atel_add(c, 1);
	assert_int_equal(pt_read(&seg, (uint32_t)my_ring(), &r), 0);
	before = r.n;
	pt_free(&r);
	atel_stats_get(&st0);
	assert_null(atel_counter("9bad", NULL));
	assert_non_null(strstr(atel_last_error(), "'9bad' is invalid"));
	assert_null(atel_counter("bad-name", NULL));
	assert_null(atel_counter("ok_total", "__reserved", "x", NULL));
	assert_non_null(strstr(atel_last_error(), "__reserved"));
	assert_null(atel_counter("ok_total", "a-b", "x", NULL));
	assert_null(atel_counter("ok_total", "a", "1", "a", "2", NULL));
	assert_non_null(strstr(atel_last_error(), "given twice"));
	assert_null(atel_counter("ok_total", "a", "", NULL));
	assert_null(atel_counter("ok_total", "a", "\xff\xfe", NULL));
	/* type clash with the existing counter and with a catalog metric */
	assert_null(atel_gauge("ok_total", "a", "1", NULL));
	assert_non_null(strstr(atel_last_error(), "is a counter, not a gauge"));
	assert_null(atel_gauge("tool_calls_total", "tool", "x", "status", "success", NULL));
	assert_null(atel_histogram("agent_tokens_used", "agent_type", "x", "model", "y", NULL));
	/* label set clash: same metric, other keys */
	assert_null(atel_counter("ok_total", "b", "1", NULL));
	assert_non_null(strstr(atel_last_error(), "label keys differ"));
	assert_null(atel_counter("tool_calls_total", "tool", "x", NULL));
	/* histogram 'le' label, bad bounds */
	assert_null(atel_histogram("lat_seconds", "le", "1", NULL));
	assert_null(atel_histogram_bounds("lat2_seconds", (const double[]){ 1, 1 }, 2, NULL));
	assert_null(atel_histogram_bounds("lat3_seconds", (const double[]){ 1, NAN }, 2, NULL));
	/* values */
	atel_add(c, -1);
	assert_non_null(strstr(atel_last_error(), ">= 0"));
	atel_add(c, NAN);
	atel_set(c, 1);
	assert_string_equal(atel_last_error(), "atel_set on a series that is not a gauge");
	atel_observe(c, 1);
	atel_add(NULL, 1);
	atel_stats_get(&st1);
	assert_int_equal(st1.invalid - st0.invalid, 20);
	assert_int_equal(st1.records, st0.records);
	/* nothing was written for any of them */
	assert_int_equal(pt_read(&seg, (uint32_t)my_ring(), &r), 0);
	assert_int_equal(r.n, before);
	pt_free(&r);
	/* the catalog metrics accept their reference label sets */
	assert_non_null(atel_counter("tool_calls_total", "status", "success", "tool", "Read", NULL));
	teardown_seg();
}

static void test_helpers(void **state)
{
	struct pt_ring r;
	size_t n;
	uint32_t id;
	int ring;

	(void)state;
	assert_int_equal(setup_seg(2, 4096), 0);
	atel_track_tool_usage(&(atel_tool_usage){ .tool = "Read", .duration_ms = 250, .success = true });
	atel_track_tool_usage(&(atel_tool_usage){ .tool = "Read", .duration_ms = 50, .success = false,
						   .error_type = "timeout" });
	atel_track_agent_execution(&(atel_agent_execution){ .agent_id = "coder-123", .agent_type = "coder",
							    .duration_ms = 5000, .tokens = 1500, .success = true,
							    .phase = "code" });
	atel_track_context_usage(&(atel_context_usage){ .used = 75000, .total = 200000, .agent_id = "coder-123" });
	atel_track_task(&(atel_task_info){ .task_type = "build", .duration_ms = 1500, .success = false,
					    .error_type = "oom" });
	atel_track_queue_size("high", 7);
	atel_track_error(&(atel_error_info){ .component = "planner", .error_type = "parse" });
	ring = my_ring();
	assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	{
		/* the per-thread memo of helper series must see a reused buffer's new contents */
		char buf[16];
		atel_stats st0, st1;
		struct pt_ring r2;
		strcpy(buf, "Alpha");
		atel_track_queue_size(buf, 1);
		strcpy(buf, "Beta");
		atel_track_queue_size(buf, 2);
		atel_stats_get(&st0);
		atel_track_queue_size(buf, 3);
		atel_stats_get(&st1);
		assert_int_equal(st1.definitions, st0.definitions);
		assert_int_equal(pt_read(&seg, (uint32_t)ring, &r2), 0);
		assert_true(samples_of(&r2, series_id(&r2, "task_queue_size", "Alpha"), &n) == 1.0 && n == 1);
		assert_true(samples_of(&r2, series_id(&r2, "task_queue_size", "Beta"), &n) == 5.0 && n == 2);
		pt_free(&r2);
	}
	/* tool calls: tool_calls_total{tool,status} x2, duration x2, success 1, failure 1 */
	id = series_id(&r, "tool_calls_total", NULL);
	assert_true(id);
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	{
		/* the failure series: pairs sorted (status < tool) */
		uint32_t fid = 0;
		for (size_t i = 0; i < r.n; i++) {
			const union atel_slot *s = r.recs[i].s;
			if (s->h.type == ATEL_REC_SERIESDEF &&
			    !strcmp(pt_str(&r, s->seriesdef.name_id), "tool_calls_total") &&
			    !strcmp(pt_str(&r, s->seriesdef.pairs[0].value_id), "failure"))
				fid = s->h.id;
		}
		assert_true(fid && fid != id);
		assert_true(samples_of(&r, fid, &n) == 1.0 && n == 1);
	}
	id = series_id(&r, "tool_call_duration_seconds", "Read");
	assert_true(fabs(samples_of(&r, id, &n) - 0.3) < 1e-12 && n == 2);
	id = series_id(&r, "tool_call_success_total", "Read");
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	id = series_id(&r, "tool_call_failure_total", "timeout"); /* error_type sorts before tool */
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	/* agent execution */
	id = series_id(&r, "agent_execution_total", "coder");
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	id = series_id(&r, "agent_execution_duration_seconds", "coder");
	assert_true(samples_of(&r, id, &n) == 5.0 && n == 1);
	id = series_id(&r, "agent_tokens_used", "coder");
	assert_true(samples_of(&r, id, &n) == 1500.0 && n == 1);
	/* context */
	id = series_id(&r, "context_window_utilization", "coder-123");
	assert_true(samples_of(&r, id, &n) == 37.5 && n == 1);
	id = series_id(&r, "context_window_size_tokens", "coder-123");
	assert_true(samples_of(&r, id, &n) == 200000.0 && n == 1);
	id = series_id(&r, "context_window_used_tokens", "coder-123");
	assert_true(samples_of(&r, id, &n) == 75000.0 && n == 1);
	/* tasks and queue */
	id = series_id(&r, "task_duration_seconds", NULL);
	assert_true(samples_of(&r, id, &n) == 1.5 && n == 1);
	assert_int_equal(series_id(&r, "task_success_total", NULL), 0);
	id = series_id(&r, "task_failure_total", "oom");
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	id = series_id(&r, "task_queue_size", "high");
	assert_true(samples_of(&r, id, &n) == 7.0 && n == 1);
	/* errors: error_total += 1, error_rate = 1/60 after the first error */
	id = series_id(&r, "error_total", "planner");
	assert_true(samples_of(&r, id, &n) == 1.0 && n == 1);
	id = series_id(&r, "error_rate", "planner");
	assert_true(fabs(samples_of(&r, id, &n) - 1.0 / 60) < 1e-9 && n == 1);
	/* exactly these series and no others: 16 catalog series touched minus task_success, plus the tool/status pair */
	assert_int_equal(pt_count(&r, ATEL_REC_SERIESDEF), 16);
	assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 17);
	pt_free(&r);
	teardown_seg();
}

static void test_spans(void **state)
{
	struct pt_ring r;
	atel_span root, child, copy;
	const union atel_slot *s;
	char longmsg[100];
	long i;

	(void)state;
	assert_int_equal(setup_seg(2, 1024), 0);
	root = atel_trace_start("orchestration-session", ATEL_SPAN_SERVER);
	assert_int_equal(root.state, 1);
	atel_span_set_str(&root, "sessionId", "session-123");
	atel_span_set_int(&root, "totalAgents", 5);
	atel_span_set_double(&root, "ratio", 0.25);
	atel_span_set_bool(&root, "retry", true);
	child = atel_span_start(&root, "coder-execution", ATEL_SPAN_INTERNAL);
	assert_memory_equal(child.ctx.trace_id, root.ctx.trace_id, 16);
	assert_memory_equal(child.parent_id, root.ctx.span_id, 8);
	assert_memory_not_equal(child.ctx.span_id, root.ctx.span_id, 8);
	atel_span_add_event_attrs(&child, "code_generation_started",
				  (atel_attr[]){ ATEL_ATTR_I("files", 3), ATEL_ATTR_S("language", "typescript") }, 2);
	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	atel_span_record_error(&child, "TimeoutError", longmsg);
	atel_span_end(&child, ATEL_STATUS_ERROR, "boom");
	copy = child;
	atel_span_end(&child, ATEL_STATUS_OK, NULL); /* second end: ignored */
	assert_int_equal(child.state, 2);
	atel_span_end(&root, ATEL_STATUS_OK, NULL);
	(void)copy;
	assert_int_equal(pt_read(&seg, (uint32_t)my_ring(), &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_START), 2);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_END), 2);
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_START, 0)].s;
	assert_string_equal(pt_str(&r, s->h.id), "orchestration-session");
	assert_memory_equal(s->span_start.trace_id, root.ctx.trace_id, 16);
	assert_memory_equal(s->span_start.span_id, root.ctx.span_id, 8);
	assert_true(s->span_start.parent_id[0] == 0 && !memcmp(s->span_start.parent_id, "\0\0\0\0\0\0\0\0", 8));
	assert_int_equal(s->span_start.kind, ATEL_SPAN_SERVER);
	assert_int_equal(s->span_start.trace_flags, 3);
	for (int k = 0; k < 14; k++)
		assert_int_equal(s->span_start.reserved[k], 0);
	/* attributes, typed */
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_ATTR, 0)].s;
	assert_string_equal(pt_str(&r, s->h.id), "sessionId");
	assert_int_equal(s->span_attr.vtype, ATEL_VT_STR);
	assert_int_equal(s->span_attr.vlen, 11);
	assert_memory_equal(s->span_attr.v.s, "session-123\0\0\0\0\0", 16);
	assert_int_equal(s->h.flags, 0);
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_ATTR, 1)].s;
	assert_int_equal(s->span_attr.vtype, ATEL_VT_INT);
	assert_int_equal(s->span_attr.v.i, 5);
	assert_int_equal(s->span_attr.vlen, 0);
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_ATTR, 2)].s;
	assert_true(s->span_attr.v.d == 0.25);
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_ATTR, 3)].s;
	assert_int_equal(s->span_attr.vtype, ATEL_VT_BOOL);
	assert_int_equal(s->span_attr.v.b, 1);
	/* event followed directly by its two EVENT_ATTR records */
	i = pt_find(&r, ATEL_REC_SPAN_EVENT, 0);
	s = r.recs[i].s;
	assert_string_equal(pt_str(&r, s->h.id), "code_generation_started");
	assert_int_equal(s->span_event.nattrs, 2);
	assert_memory_equal(s->span_event.span_id, child.ctx.span_id, 8);
	assert_int_equal(r.recs[i + 1].s->h.type, ATEL_REC_SPAN_ATTR);
	assert_int_equal(r.recs[i + 1].s->h.flags, ATEL_RECF_EVENT_ATTR);
	assert_string_equal(pt_str(&r, r.recs[i + 1].s->h.id), "files");
	assert_int_equal(r.recs[i + 2].s->h.flags, ATEL_RECF_EVENT_ATTR);
	assert_string_equal(pt_str(&r, r.recs[i + 2].s->h.id), "language");
	assert_int_equal(r.recs[i + 2].s->span_attr.vlen, 10);
	/* error: 99-byte message, 20 inline + 79 in two continuation slots */
	i = pt_find(&r, ATEL_REC_SPAN_ERROR, 0);
	s = r.recs[i].s;
	assert_string_equal(pt_str(&r, s->h.id), "TimeoutError");
	assert_int_equal(s->span_error.msg_len, 99);
	assert_int_equal(s->h.cont, 2);
	assert_memory_equal(s->span_error.msg, longmsg, 20);
	assert_memory_equal((s + 1)->raw, longmsg + 20, 64);
	assert_int_equal((s + 2)->raw[14], 'm');
	assert_int_equal((s + 2)->raw[15], 0);
	/* ends: child ERROR "boom" (once), root OK */
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_END, 0)].s;
	assert_memory_equal(s->span_end.span_id, child.ctx.span_id, 8);
	assert_int_equal(s->span_end.status, ATEL_STATUS_ERROR);
	assert_int_equal(s->span_end.msg_len, 4);
	assert_memory_equal(s->span_end.msg, "boom\0", 5);
	s = r.recs[pt_find(&r, ATEL_REC_SPAN_END, 1)].s;
	assert_memory_equal(s->span_end.span_id, root.ctx.span_id, 8);
	assert_int_equal(s->span_end.status, ATEL_STATUS_OK);
	assert_int_equal(s->span_end.msg_len, 0);
	pt_free(&r);
	teardown_seg();
}

/*
 * Span names: the last name a thread used is checked first (producer/trace.c
 * span_new). The same buffer rewritten between starts, a prefix, an
 * extension and a name longer than ATEL_STR_MAX (recorded capped) must each
 * record their own name, and the span's name_id must match the START's.
 */
static void test_span_name_cache(void **state)
{
	static const char *const want[] = { "tool-call", "tool-cal", "tool-call", "tool-calls", "plan", "plan",
					    "tool-call" };
	struct pt_ring r;
	char buf[32], longname[ATEL_STR_MAX + 40];
	uint32_t ids[8];
	size_t n = 0, i;

	(void)state;
	assert_int_equal(setup_seg(2, 1024), 0);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		atel_span sp;

		snprintf(buf, sizeof(buf), "%s", want[i]); /* one buffer, rewritten in place */
		sp = atel_trace_start(buf, ATEL_SPAN_INTERNAL);
		assert_int_equal(sp.state, 1);
		ids[n++] = sp.name_id;
		atel_span_end(&sp, ATEL_STATUS_OK, NULL);
	}
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (int k = 0; k < 2; k++) { /* twice: the capped entry must not be taken for the long name's equal */
		atel_span sp = atel_trace_start(longname, ATEL_SPAN_INTERNAL);
		assert_int_equal(sp.state, 1);
		atel_span_end(&sp, ATEL_STATUS_OK, NULL);
	}
	assert_int_equal(pt_read(&seg, (uint32_t)my_ring(), &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_START), n + 2);
	for (i = 0; i < n; i++) {
		const union atel_slot *s = r.recs[pt_find(&r, ATEL_REC_SPAN_START, i)].s;

		assert_string_equal(pt_str(&r, s->h.id), want[i]);
		assert_int_equal(s->h.id, ids[i]);
	}
	assert_int_equal(ids[0], ids[2]);
	assert_int_not_equal(ids[0], ids[1]);
	assert_int_not_equal(ids[0], ids[3]);
	for (i = n; i < n + 2; i++) {
		const union atel_slot *s = r.recs[pt_find(&r, ATEL_REC_SPAN_START, i)].s;

		assert_int_equal(strlen(pt_str(&r, s->h.id)), ATEL_STR_MAX);
	}
	pt_free(&r);
	teardown_seg();
}

/*
 * Ring full: metric values fold (docs/abi.md 2.3); nothing is written without
 * its definition; once space returns the folded values come first, in the
 * order their series were first folded, with exact sums and call counts.
 */
static void test_ring_full(void **state)
{
	struct pt_ring r;
	atel_series a, b;
	atel_stats st0, st1;
	char longname[120];
	const union atel_slot *s;

	(void)state;
	assert_int_equal(setup_seg(1, 64), 0);
	atel_stats_get(&st0);
	a = atel_counter("fill_total", NULL);
	for (int k = 0; k < 59; k++)
		atel_add(a, 1);
	assert_int_equal(my_ring(), 0);
	/* BEGIN + STRDEF + SERIESDEF + 59 samples: 62 of 64 slots; the long name needs 3 */
	memset(longname, 'g', sizeof(longname));
	longname[sizeof(longname) - 1] = '\0';
	b = atel_gauge(longname, NULL);
	assert_non_null(b);
	atel_set(b, 42);                         /* folds: its definition does not fit */
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->head), 62);
	atel_add(a, 2);                          /* folds behind it: order is kept */
	for (int k = 0; k < 100; k++)
		atel_add(a, 1);
	atel_set(b, 1);                          /* the gauge's last value wins */
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->head), 62);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->drops_full), 0);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->drops_nodef), 0);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->folded_pending), 103);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->folded_total), 103);
	atel_stats_get(&st1);
	assert_int_equal(st1.drops_ring_full - st0.drops_ring_full, 0);
	assert_int_equal(st1.folded - st0.folded, 103);
	assert_int_equal(st1.records - st0.records, 59);
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	assert_int_equal(pt_check_defs(&r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SERIESDEF), 1); /* never the gauge's */
	pt_free(&r);
	/* space returns: the gauge's definitions, its folded value, the counter's, then the use */
	pt_drain(&seg, 0);
	atel_set(b, 43);
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	assert_int_equal(r.n, 5);
	assert_int_equal(r.recs[0].s->h.type, ATEL_REC_STRDEF);
	assert_int_equal(r.recs[0].nslots, 3);
	assert_string_equal(pt_str(&r, r.recs[0].s->h.id), longname);
	assert_int_equal(r.recs[1].s->h.type, ATEL_REC_SERIESDEF);
	s = r.recs[2].s;
	assert_int_equal(s->h.type, ATEL_REC_SAMPLE);
	assert_int_equal(s->h.id, r.recs[1].s->h.id);
	assert_int_equal(s->h.flags, ATEL_RECF_SET | ATEL_RECF_FOLDED);
	assert_true(s->sample.value == 1.0);
	assert_int_equal(s->sample.count, 2);
	assert_true(s->sample.first_ns <= s->h.ts_ns);
	assert_int_equal(s->sample.reserved[0] | s->sample.reserved[1] | s->sample.reserved[2], 0);
	s = r.recs[3].s;
	assert_int_equal(s->h.type, ATEL_REC_SAMPLE);
	assert_int_not_equal(s->h.id, r.recs[1].s->h.id);
	assert_int_equal(s->h.flags, ATEL_RECF_FOLDED);
	assert_true(s->sample.value == 102.0);
	assert_int_equal(s->sample.count, 101);
	s = r.recs[4].s;
	assert_int_equal(s->h.flags, ATEL_RECF_SET);
	assert_true(s->sample.value == 43.0);
	assert_int_equal(s->sample.count, 0);
	pt_free(&r);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->folded_pending), 0);
	atel_stats_get(&st1);
	assert_int_equal(st1.folded_records - st0.folded_records, 2);
	/* the counter's definition still holds in this generation: no redefinition */
	atel_add(a, 5);
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	assert_int_equal(r.n, 6);
	assert_int_equal(r.recs[5].s->h.type, ATEL_REC_SAMPLE);
	assert_int_equal(r.recs[5].s->h.flags, 0);
	pt_free(&r);
	teardown_seg();
}

/* A histogram folds per bucket: the HISTFOLD record holds exact bucket counts and sum. */
static void test_histogram_fold(void **state)
{
	static const double bounds[] = { 1, 2, 5 };
	struct pt_ring r;
	atel_series h;
	const union atel_slot *s;
	long i;

	(void)state;
	assert_int_equal(setup_seg(1, 64), 0);
	h = atel_histogram_bounds("fold_seconds", bounds, 3, NULL);
	assert_non_null(h);
	while (atomic_load(&atel__seg_desc(&seg, 0)->folded_pending) == 0)
		atel_observe(h, 0.5); /* fills the ring, then folds */
	/* one folded so far (0.5); add 2 in (1,2], 1 exactly at 5, 3 above */
	atel_observe(h, 1.5);
	atel_observe(h, 2.0);
	atel_observe(h, 5.0);
	atel_observe(h, 7.0);
	atel_observe(h, 1e9);
	atel_observe(h, INFINITY);
	pt_drain(&seg, 0);
	atel_observe(h, 0.25); /* flushes, then writes itself */
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	i = pt_find(&r, ATEL_REC_HISTFOLD, 0);
	assert_int_equal(i, 0);
	s = r.recs[i].s;
	assert_int_equal(r.recs[i].nslots, 1 + 1); /* 4 buckets: 2 inline, 2 in one continuation */
	assert_int_equal(s->h.cont, 1);
	assert_int_equal(s->histfold.count, 7);
	assert_int_equal(s->histfold.nbuckets, 4);
	assert_int_equal(s->histfold.buckets[0], 1); /* 0.5 */
	assert_int_equal(s->histfold.buckets[1], 2); /* 1.5, 2.0 (le is inclusive) */
	assert_int_equal((s + 1)->words[0], 1);      /* 5.0 */
	assert_int_equal((s + 1)->words[1], 3);      /* 7, 1e9, +Inf */
	for (int k = 2; k < 8; k++)
		assert_int_equal((s + 1)->words[k], 0);
	assert_true(isinf(s->histfold.sum));
	assert_true(s->histfold.first_ns <= s->h.ts_ns);
	assert_int_equal(r.recs[1].s->h.type, ATEL_REC_SAMPLE);
	assert_true(r.recs[1].s->sample.value == 0.25);
	pt_free(&r);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->folded_pending), 0);
	teardown_seg();
}

/* The pending table is bounded: a series beyond it is a counted RING_FULL drop. */
static void test_fold_table_full(void **state)
{
	atel_stats st0, st1;
	atel_series first;
	char name[32];

	(void)state;
	assert_int_equal(setup_seg(1, 64), 0);
	first = atel_counter("bound_total", "i", "x", NULL);
	while (atomic_load(&atel__seg_desc(&seg, 0)->folded_pending) == 0)
		atel_add(first, 1);
	atel_stats_get(&st0);
	for (int k = 0; k < 2048 + 10; k++) {
		snprintf(name, sizeof(name), "%d", k);
		atel_add(atel_counter("bound_total", "i", name, NULL), 1);
	}
	atel_stats_get(&st1);
	/* 2048 series fit, "x" among them: 2047 new ones fold, 11 are dropped */
	assert_int_equal(st1.folded - st0.folded, 2047);
	assert_int_equal(st1.drops_ring_full - st0.drops_ring_full, 11);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->drops_full), 11);
	/* a series already pending still folds */
	atel_add(first, 1);
	atel_stats_get(&st1);
	assert_int_equal(st1.folded - st0.folded, 2048);
	teardown_seg();
}

struct drainer {
	struct atel_segment *seg;
	atomic_bool stop;
	double counter_sum;   /* of every SAMPLE seen, folded or not */
	uint64_t calls;       /* calls those samples stand for */
};

/* A minimal consumer: heartbeat, drain ring 0, sum its samples. */
static void *drainer_main(void *p)
{
	struct drainer *d = p;

	while (!atomic_load(&d->stop)) {
		uint64_t tail, head;

		atomic_store(&d->seg->hdr->heartbeat_ns, atel__now_ns());
		if (atel__ring_poll(d->seg, 0, &tail, &head) == 0 && head > tail) {
			for (uint64_t q = tail; q < head;) {
				const union atel_slot *s = atel__ring_at(d->seg, 0, q);
				int n = atel__rec_check(s, head - q, NULL);

				if (n <= 0)
					break;
				if (s->h.type == ATEL_REC_SAMPLE) { /* the test's only series */
					d->counter_sum += s->sample.value;
					d->calls += (s->h.flags & ATEL_RECF_FOLDED) ? s->sample.count : 1;
				}
				q += (uint64_t)n;
			}
			usleep(2000); /* slow consumer: the ring fills between drains */
			atel__ring_release(d->seg, 0, head);
		}
		usleep(500);
	}
	return NULL;
}

static void *burst_thread(void *p)
{
	atel_series c = p;

	for (int k = 0; k < 200000; k++)
		atel_add(c, 1);
	return NULL; /* thread exit writes what is still folded */
}

/* A burst far bigger than the ring through a slow consumer: every increment arrives. */
static void test_burst_exact(void **state)
{
	struct drainer d = { .seg = &seg };
	pthread_t dt, bt;
	atel_series c;
	atel_stats st0, st1;

	(void)state;
	assert_int_equal(setup_seg(1, 256), 0);
	c = atel_counter("burst_total", NULL);
	atel_stats_get(&st0);
	assert_int_equal(pthread_create(&dt, NULL, drainer_main, &d), 0);
	assert_int_equal(pthread_create(&bt, NULL, burst_thread, (void *)c), 0);
	pthread_join(bt, NULL);
	usleep(50000);
	atomic_store(&d.stop, true);
	pthread_join(dt, NULL);
	{
		uint64_t tail, head;
		assert_int_equal(atel__ring_poll(&seg, 0, &tail, &head), 0);
		assert_int_equal(head, tail); /* everything drained */
	}
	atel_stats_get(&st1);
	assert_true(st1.folded - st0.folded > 0); /* the ring did fill */
	assert_int_equal(st1.drops_ring_full - st0.drops_ring_full, 0);
	assert_true(d.counter_sum == 200000.0);
	assert_int_equal(d.calls, 200000);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->folded_pending), 0);
	teardown_seg();
}

static void *fold_then_exit(void *p)
{
	atel_series c = p;

	while (atomic_load(&atel__seg_desc(&seg, 1)->folded_pending) == 0 &&
	       atomic_load(&atel__seg_desc(&seg, 0)->folded_pending) == 0)
		atel_add(c, 1);
	for (int k = 0; k < 9; k++)
		atel_add(c, 1);
	return NULL;
}

/* Without a consumer, thread exit does not wait: what is still folded is counted, not lost silently. */
static void test_exit_without_consumer(void **state)
{
	atel_stats st0, st1;
	atel_series c;
	pthread_t th;
	struct timespec t0, t1;

	(void)state;
	assert_int_equal(setup_seg(2, 64), 0);
	atomic_store(&seg.hdr->heartbeat_ns, 0); /* no consumer */
	c = atel_counter("exitfold_total", NULL);
	atel_stats_get(&st0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&th, NULL, fold_then_exit, (void *)c), 0);
	pthread_join(th, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atel_stats_get(&st1);
	assert_int_equal(st1.folded - st0.folded, 10);
	assert_int_equal(st1.drops_ring_full - st0.drops_ring_full, 10);
	for (uint32_t r = 0; r < 2; r++)
		assert_int_equal(atomic_load(&atel__seg_desc(&seg, r)->folded_pending), 0);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->drops_full) +
			 atomic_load(&atel__seg_desc(&seg, 1)->drops_full), 10);
	teardown_seg();
}

/* Spans are kept or dropped whole (docs/abi.md 2.4): every START that was written gets its END. */
static void test_spans_whole(void **state)
{
	struct pt_ring r;
	atel_span sp[64];
	atel_stats st0, st1;
	int n = 0, dropped = 0;
	long i;
	char longmsg[200];

	(void)state;
	assert_int_equal(setup_seg(1, 64), 0);
	atel_stats_get(&st0);
	/* 43 of 64 slots: BEGIN, STRDEF, SERIESDEF and 40 samples */
	for (int k = 0; k < 40; k++)
		atel_add(atel_counter("before_spans_total", NULL), 1);
	/* open spans until the ring refuses one: each START holds a slot back for its END */
	for (n = 0; n < 64; n++) {
		sp[n] = atel_trace_start("held", ATEL_SPAN_INTERNAL);
		if (sp[n].state == ATEL_SPAN_ST_DROPPED)
			break;
	}
	assert_int_equal(n, 10); /* 43 + STRDEF + 10 STARTs + 10 held back = 64 (under the cap of 16) */
	/* dropped whole: its calls write nothing and are not counted again */
	atel_span_set_int(&sp[n], "k", 1);
	atel_span_add_event(&sp[n], "e");
	atel_span_end(&sp[n], ATEL_STATUS_OK, NULL);
	dropped++;
	/* an attribute of a recorded span that meets the full ring: counted, reported in its END */
	atel_span_set_int(&sp[0], "k", 1);
	atel_span_add_event(&sp[0], "e");
	memset(longmsg, 'm', sizeof(longmsg));
	longmsg[sizeof(longmsg) - 1] = '\0';
	/* every END fits in its held slot, even with the ring otherwise full (a long message is shortened) */
	for (int k = n - 1; k >= 0; k--)
		atel_span_end(&sp[k], ATEL_STATUS_ERROR, longmsg);
	atel_stats_get(&st1);
	assert_int_equal(st1.spans_dropped - st0.spans_dropped, dropped);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->spans_dropped), dropped);
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_START), (size_t)n);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_END), (size_t)n);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_ATTR), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_EVENT), 0);
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, 0)->head), 64);
	i = pt_find(&r, ATEL_REC_SPAN_END, (size_t)n - 1); /* sp[0] ends last */
	assert_memory_equal(r.recs[i].s->span_end.span_id, sp[0].ctx.span_id, 8);
	assert_int_equal(r.recs[i].s->h.id, 1u | 1u << 16); /* one attribute, one event dropped */
	assert_int_equal(r.recs[i].s->h.cont, 0);
	assert_int_equal(r.recs[i].s->span_end.msg_len, 20);
	assert_memory_equal(r.recs[i].s->span_end.msg, longmsg, 20);
	assert_int_equal(r.recs[pt_find(&r, ATEL_REC_SPAN_END, 0)].s->h.id, 0);
	pt_free(&r);
	/* drained: ENDs carry their whole message again, and nothing is held back any more */
	pt_drain(&seg, 0);
	sp[0] = atel_trace_start("again", ATEL_SPAN_INTERNAL);
	atel_span_end(&sp[0], ATEL_STATUS_ERROR, longmsg);
	assert_int_equal(pt_read(&seg, 0, &r), 0);
	i = pt_find(&r, ATEL_REC_SPAN_END, 0);
	assert_int_equal(r.recs[i].s->span_end.msg_len, sizeof(longmsg) - 1);
	pt_free(&r);
	teardown_seg();
}

struct span_drainer {
	struct atel_segment *seg;
	atomic_bool stop;
	uint64_t starts, ends;
};

static void *span_drainer_main(void *p)
{
	struct span_drainer *d = p;

	while (!atomic_load(&d->stop)) {
		uint64_t tail, head;

		atomic_store(&d->seg->hdr->heartbeat_ns, atel__now_ns());
		for (uint32_t r = 0; r < d->seg->ring_count; r++) {
			if (atel__ring_poll(d->seg, r, &tail, &head) != 0 || head == tail)
				continue;
			for (uint64_t q = tail; q < head;) {
				const union atel_slot *s = atel__ring_at(d->seg, r, q);
				int n = atel__rec_check(s, head - q, NULL);

				if (n <= 0)
					break;
				d->starts += s->h.type == ATEL_REC_SPAN_START;
				d->ends += s->h.type == ATEL_REC_SPAN_END;
				q += (uint64_t)n;
			}
			usleep(1000); /* slower than the producer: the ring fills */
			atel__ring_release(d->seg, r, head);
		}
		usleep(200);
	}
	return NULL;
}

static void *span_burst(void *p)
{
	int n = *(int *)p;

	for (int k = 0; k < n; k++) {
		atel_span s = atel_trace_start("burst", ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
	return NULL;
}

static atomic_int sig_spans;

static void span_in_handler(int sig)
{
	(void)sig;
	for (int k = 0; k < 100; k++) {
		atel_span s = atel_trace_start("burst", ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
	atomic_fetch_add(&sig_spans, 1);
}

/*
 * A burst of spans bigger than the ring through a slow consumer: without a
 * block timeout some spans are dropped, but only whole; with one, none is.
 * A signal handler never waits.
 */
static void test_spans_block_timeout(void **state)
{
	struct span_drainer d = { .seg = &seg };
	pthread_t dt, bt;
	atel_stats st0, st1;
	int n = 20000;

	(void)state;
	assert_int_equal(setup_seg(2, 256), 0);
	span_burst(&(int){ 1 }); /* the span name is interned and defined, the ring claimed */
	pt_drain(&seg, 0);
	pt_drain(&seg, 1);
	/* the burst thread's ring: the other one (its BEGIN, STRDEF and first START are not counted) */
	/* no timeout: the ring overflows, spans drop whole */
	atel_set_block_timeout_us(0);
	atel_stats_get(&st0);
	assert_int_equal(pthread_create(&dt, NULL, span_drainer_main, &d), 0);
	assert_int_equal(pthread_create(&bt, NULL, span_burst, &n), 0);
	pthread_join(bt, NULL);
	usleep(30000);
	atomic_store(&d.stop, true);
	pthread_join(dt, NULL);
	atel_stats_get(&st1);
	assert_true(st1.spans_dropped > st0.spans_dropped);
	assert_int_equal(d.starts, d.ends);
	assert_int_equal(d.starts + (st1.spans_dropped - st0.spans_dropped), (uint64_t)n);
	assert_int_equal(st1.block_waits, st0.block_waits);
	/* with a generous timeout every span arrives (this thread's ring) */
	memset(&d, 0, sizeof(d));
	d.seg = &seg;
	atel_set_block_timeout_us(2000000);
	atel_stats_get(&st0);
	assert_int_equal(pthread_create(&dt, NULL, span_drainer_main, &d), 0);
	span_burst(&n);
	/* the handler's spans meet a full ring too, but never wait there */
	signal(SIGUSR1, span_in_handler);
	for (int k = 0; k < 20; k++) {
		raise(SIGUSR1);
		span_burst(&(int){ 500 });
	}
	atel_stats_get(&st1);
	usleep(30000);
	atomic_store(&d.stop, true);
	pthread_join(dt, NULL);
	assert_true(st1.block_waits > st0.block_waits);
	assert_int_equal(st1.block_timeouts, st0.block_timeouts);
	assert_int_equal(atomic_load(&sig_spans), 20);
	/* only the handler's spans may have been dropped; the thread's own all arrived */
	assert_true(st1.spans_dropped - st0.spans_dropped <= 20 * 100);
	assert_int_equal(d.starts + (st1.spans_dropped - st0.spans_dropped), (uint64_t)n + 20 * 500 + 20 * 100);
	assert_int_equal(d.starts, d.ends);
	signal(SIGUSR1, SIG_DFL);
	atel_set_block_timeout_us(0);
	teardown_seg();
}

/* Without a sidecar: cheap counted no-ops; the attach happens by itself once the segment exists. */
static void test_late_sidecar(void **state)
{
	struct pt_ring r;
	atel_stats st0, st1;
	atel_series c;
	atel_span sp;
	char tp[64];
	int rc, ring = -1;
	uint64_t t0;

	(void)state;
	pt_path(path, sizeof(path), "late");
	unlink(path);
	atel_stats_get(&st0);
	rc = atel_init(path);
	assert_int_equal(rc, -ENOENT);
	assert_false(atel_attached());
	c = atel_counter("late_total", NULL);
	assert_non_null(c);
	for (int k = 0; k < 1000; k++)
		atel_add(c, 1);
	/* spans still get real ids and propagate */
	sp = atel_trace_start("offline", ATEL_SPAN_INTERNAL);
	assert_int_equal(atel_propagate(&sp, tp, sizeof(tp)), 55);
	atel_span_end(&sp, ATEL_STATUS_OK, NULL);
	atel_stats_get(&st1);
	/* 1000 adds and the span's start: the span is dropped whole, its end counts nothing more */
	assert_int_equal(st1.drops_no_sidecar - st0.drops_no_sidecar, 1001);
	assert_int_equal(st1.spans_dropped - st0.spans_dropped, 1);
	/* at most one attach attempt per second, whatever the call rate */
	assert_true(st1.attach_attempts - st0.attach_attempts <= 2);
	assert_int_equal(pt_create(&seg, path, 2, 256), 0);
	t0 = (uint64_t)time(NULL);
	while (ring < 0 && (uint64_t)time(NULL) - t0 < 10) {
		atel_add(c, 1);
		ring = my_ring();
		if (ring < 0)
			usleep(20000);
	}
	assert_true(ring >= 0);
	assert_true(atel_attached());
	assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
	assert_int_equal(r.recs[0].s->h.type, ATEL_REC_BEGIN);
	assert_int_equal(pt_count(&r, ATEL_REC_LOSS), 0); /* ABI 2: loss is counted in shared memory */
	assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 1);
	/* every NO_SIDECAR drop of the process reached the segment header when it attached, once */
	atel_stats_get(&st1);
	assert_int_equal(atomic_load(&seg.hdr->drops_no_sidecar), st1.drops_no_sidecar - st0.drops_no_sidecar);
	pt_free(&r);
	teardown_seg();
}

static void *no_ring_worker(void *p)
{
	for (int k = 0; k < 50; k++)
		atel_add((atel_series)p, 1);
	return NULL;
}

/* Every ring taken: the thread's records are counted drops (directory counter and stats), nothing else. */
static void test_no_ring(void **state)
{
	atel_series c;
	atel_stats st0, st1;
	pthread_t th;

	(void)state;
	assert_int_equal(setup_seg(1, 256), 0);
	c = atel_counter("no_ring_total", NULL);
	atel_add(c, 1);
	assert_int_equal(my_ring(), 0);
	atel_stats_get(&st0);
	assert_int_equal(pthread_create(&th, NULL, no_ring_worker, (void *)c), 0);
	pthread_join(th, NULL);
	atel_stats_get(&st1);
	assert_int_equal(atomic_load(&seg.hdr->drops_no_ring), 50);
	assert_int_equal(st1.drops_no_ring - st0.drops_no_ring, 50);
	assert_int_equal(st1.records, st0.records);
	assert_int_equal(atomic_load(&seg.hdr->claims_total), 1);
	teardown_seg();
}

/* The sidecar restarted with a new segment (other geometry) under the same name: the producer follows. */
static void test_segment_replaced(void **state)
{
	struct atel_segment old;
	atel_series c;
	int ring = -1, n = 0;
	uint64_t t0;

	(void)state;
	assert_int_equal(setup_seg(1, 64), 0);
	c = atel_counter("replaced_total", NULL);
	for (int k = 0; k < 100; k++)
		atel_add(c, 1); /* ring full now: nobody drains */
	old = seg;
	/* the old consumer is gone (stale heartbeat); a new one creates another geometry */
	atomic_store(&old.hdr->heartbeat_ns, atel__now_ns() - 10000000000ull);
	unlink(path);
	assert_int_equal(pt_create(&seg, path, 2, 128), 0);
	t0 = (uint64_t)time(NULL);
	while (ring < 0 && (uint64_t)time(NULL) - t0 < 10) {
		atel_add(c, 1);
		n++;
		ring = my_ring();
		if (ring < 0)
			usleep(20000);
	}
	assert_true(ring >= 0);
	{
		/* the values folded in the abandoned ring follow the thread into the new segment */
		struct pt_ring r;
		double sum = 0;
		uint64_t calls = 0;

		assert_int_equal(pt_read(&seg, (uint32_t)ring, &r), 0);
		assert_int_equal(pt_check_defs(&r), 0);
		assert_int_equal(r.recs[0].s->h.type, ATEL_REC_BEGIN);
		assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 2);
		for (size_t k = 0; k < r.n; k++) {
			const union atel_slot *s = r.recs[k].s;
			if (s->h.type != ATEL_REC_SAMPLE)
				continue;
			sum += s->sample.value;
			calls += (s->h.flags & ATEL_RECF_FOLDED) ? s->sample.count : 1;
		}
		/* 64 slots held BEGIN, STRDEF, SERIESDEF and 61 samples; everything else is here */
		assert_true(sum == (double)(100 + n - 61));
		assert_int_equal(calls, 100 + n - 61);
		pt_free(&r);
	}
	teardown_seg();
	atel__segment_detach(&old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_catalog),
		cmocka_unit_test(test_sample_bytes),
		cmocka_unit_test(test_shutdown_end),
		cmocka_unit_test(test_histogram_and_cont),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_span_name_cache),
		cmocka_unit_test(test_ring_full),
		cmocka_unit_test(test_histogram_fold),
		cmocka_unit_test(test_fold_table_full),
		cmocka_unit_test(test_burst_exact),
		cmocka_unit_test(test_exit_without_consumer),
		cmocka_unit_test(test_spans_whole),
		cmocka_unit_test(test_spans_block_timeout),
		cmocka_unit_test(test_late_sidecar),
		cmocka_unit_test(test_segment_replaced),
		cmocka_unit_test(test_no_ring),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
