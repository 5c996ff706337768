/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the index writer (consumer/index/index.h) fed with
 * hand-built decoded events: every table and view with exact values, the
 * cursor, resume and rollback without duplicates, a locked database,
 * retention, and DEATH closing open spans.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include <sqlite3.h>

#include "index.h"

#define S 1000000000ull           /* one second in ns */
#define T0 (1700000000ull * S)    /* a minute boundary (1700000000 % 60 == 20: see bucket()) */

static char dbpath[256];
static int dbn;

static uint64_t bucket(uint64_t ts, uint32_t interval_s)
{
	return ts - ts % ((uint64_t)interval_s * S);
}

static void unlink_db(const char *p)
{
	char b[300];

	unlink(p);
	snprintf(b, sizeof(b), "%s-wal", p);
	unlink(b);
	snprintf(b, sizeof(b), "%s-shm", p);
	unlink(b);
}

static int setup(void **state)
{
	snprintf(dbpath, sizeof(dbpath), "/tmp/atel-test-ix-%d-%d.db", (int)getpid(), dbn++);
	unlink_db(dbpath);
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	atel__ixw_close(*state);
	unlink_db(dbpath);
	return 0;
}

static struct atel_ixw *open_w(uint32_t interval_s)
{
	struct atel_ixw_opts o = { .rollup_interval_s = interval_s };
	struct atel_ixw *w = NULL;
	char err[512] = "";
	int rc = atel__ixw_open(&w, dbpath, &o, err, sizeof(err));

	if (rc)
		fprintf(stderr, "open: %s\n", err);
	assert_int_equal(rc, 0);
	return w;
}

/* All rows of a query, columns joined by '|', rows by '\n'. Caller frees. */
static char *dump(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 1024, len = 0;
	char *out = malloc(cap);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
	assert_int_equal(rc, SQLITE_OK);
	out[0] = '\0';
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			size_t need = len + (v ? strlen(v) : 4) + 3;

			if (need > cap) {
				cap = need * 2;
				out = realloc(out, cap);
			}
			len += (size_t)sprintf(out + len, "%s%s", i ? "|" : "", v ? v : "NULL");
		}
		out[len++] = '\n';
		out[len] = '\0';
	}
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	return out;
}

static void expect_rows(struct atel_ixw *w, const char *sql, const char *want)
{
	char *got = dump(atel__ixw_db(w), sql);

	if (strcmp(got, want))
		fprintf(stderr, "query: %s\n--- got:\n%s--- want:\n%s", sql, got, want);
	assert_string_equal(got, want);
	free(got);
}

static int64_t scalar(struct atel_ixw *w, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(atel__ixw_db(w), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---- hand-built events ---------------------------------------------------- */

static uint64_t seqno;

static struct atel_event base(enum atel_ev_kind k, uint64_t ts)
{
	struct atel_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = k;
	ev.ring = 3;
	ev.generation = 2;
	ev.seq = seqno++;
	ev.ts_ns = ts;
	ev.pid = 4242;
	ev.tid = 4243;
	ev.comm = "agent-a";
	return ev;
}

static struct atel_event sample(const struct atel_dec_series *s, uint64_t ts, double v, bool set)
{
	struct atel_event ev = base(ATEL_EV_SAMPLE, ts);

	ev.sample.series = s;
	ev.sample.value = v;
	ev.sample.set = set;
	return ev;
}

static void ids(uint8_t *trace, uint8_t *span, uint8_t t, uint8_t s)
{
	if (trace) {
		memset(trace, 0, 16);
		trace[0] = 0xab;
		trace[15] = t;
	}
	memset(span, 0, 8);
	span[0] = 0xcd;
	span[7] = s;
}

static struct atel_event span_start(uint8_t t, uint8_t s, uint8_t parent, const char *name, uint64_t ts)
{
	struct atel_event ev = base(ATEL_EV_SPAN_START, ts);

	ids(ev.span_start.trace_id, ev.span_start.span_id, t, s);
	if (parent)
		ids(NULL, ev.span_start.parent_id, t, parent);
	ev.span_start.kind = 1;
	ev.span_start.flags = 1;
	ev.span_start.name = name;
	return ev;
}

static struct atel_event span_end(uint8_t t, uint8_t s, uint8_t status, const char *msg, uint64_t ts)
{
	struct atel_event ev = base(ATEL_EV_SPAN_END, ts);

	ids(ev.span_end.trace_id, ev.span_end.span_id, t, s);
	ev.span_end.status = status;
	ev.span_end.msg = msg ? msg : "";
	ev.span_end.msg_len = msg ? (uint32_t)strlen(msg) : 0;
	return ev;
}

static struct atel_event span_attr(uint8_t t, uint8_t s, const char *key, struct atel_attr_value v, bool ev_attr)
{
	struct atel_event ev = base(ATEL_EV_SPAN_ATTR, 0);

	ids(ev.span_attr.trace_id, ev.span_attr.span_id, t, s);
	ev.span_attr.key = key;
	ev.span_attr.v = v;
	ev.span_attr.event_attr = ev_attr;
	return ev;
}

static struct atel_attr_value vstr(const char *s)
{
	return (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = s, .slen = (uint32_t)strlen(s) };
}

static void apply(struct atel_ixw *w, struct atel_event ev)
{
	assert_int_equal(atel__ixw_apply(w, &ev), 0);
}

static const char *k_exec[] = { "agent_type", "phase", "status" };
static const char *v_exec_ok[] = { "coder", "code", "success" };
static const char *v_exec_bad[] = { "coder", "code", "failure" };
static const char *v_exec_plan[] = { "planner", "plan", "success" };
static const char *k_dur[] = { "agent_type", "phase" };
static const char *v_dur[] = { "coder", "code" };
static const char *k_q[] = { "priority" };
static const char *v_q[] = { "high \"urgent\"" };
static const double dur_bounds[] = { 0.5, 1, 5 };

static struct atel_dec_series mk(uint8_t mt, const char *name, uint32_t n, const char **k, const char **v,
				 uint64_t hash)
{
	struct atel_dec_series s;

	memset(&s, 0, sizeof(s));
	s.id = (uint32_t)hash;
	s.mtype = mt;
	s.name = name;
	s.nlabels = n;
	for (uint32_t i = 0; i < n; i++) {
		s.keys[i] = k[i];
		s.values[i] = v[i];
	}
	s.key_hash = hash;
	if (mt == ATEL_MT_HISTOGRAM) {
		s.nbounds = 3;
		s.bounds = dur_bounds;
	}
	return s;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_metrics_and_rollups(void **state)
{
	struct atel_ixw *w = open_w(60);
	/* 0xF0.. hashes are stored as negative signed 64-bit integers */
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_ok,
				      0xF000000000000001ull);
	struct atel_dec_series g = mk(ATEL_MT_GAUGE, "task_queue_size", 1, k_q, v_q, 2);
	struct atel_dec_series h = mk(ATEL_MT_HISTOGRAM, "agent_execution_duration_seconds", 2, k_dur, v_dur, 3);
	struct atel_log_pos pos = { 7, 4096, 3 }, got;
	uint64_t b0 = bucket(T0, 60);

	*state = w;
	seqno = 100;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, b0 + 1 * S, 1, false));
	apply(w, sample(&c, b0 + 2 * S, 2, false));
	apply(w, sample(&g, b0 + 3 * S, 10, true));
	apply(w, sample(&g, b0 + 4 * S, -3, false)); /* gauge add: 10 - 3 = 7 */
	apply(w, sample(&h, b0 + 5 * S, 0.25, false));
	apply(w, sample(&h, b0 + 6 * S, 1, false));  /* le=1 */
	apply(w, sample(&h, b0 + 7 * S, 9, false));  /* +Inf */
	apply(w, sample(&c, b0 + 61 * S, 4, false)); /* next minute */
	apply(w, sample(&g, b0 + 62 * S, 5, false)); /* 7 + 5 = 12 */
	{
		struct atel_event nan = sample(&g, b0 + 63 * S, NAN, true); /* not indexable: skipped */

		apply(w, nan);
	}
	assert_int_equal(atel__ixw_commit(w, &pos), 0);

	expect_rows(w,
		    "SELECT ts_ns - " "(SELECT min(ts_ns) FROM telemetry_metrics), name, labels, series_hash, "
		    "metric_type, value, op, pid, ring, seq FROM telemetry_metrics ORDER BY id",
		    "0|agent_execution_total|{\"agent_type\":\"coder\",\"phase\":\"code\",\"status\":\"success\"}|"
		    "-1152921504606846975|counter|1.0|add|4242|3|100\n"
		    "1000000000|agent_execution_total|{\"agent_type\":\"coder\",\"phase\":\"code\",\"status\":\"success\"}|"
		    "-1152921504606846975|counter|2.0|add|4242|3|101\n"
		    "2000000000|task_queue_size|{\"priority\":\"high \\\"urgent\\\"\"}|2|gauge|10.0|set|4242|3|102\n"
		    "3000000000|task_queue_size|{\"priority\":\"high \\\"urgent\\\"\"}|2|gauge|7.0|add|4242|3|103\n"
		    "4000000000|agent_execution_duration_seconds|{\"agent_type\":\"coder\",\"phase\":\"code\"}|3|"
		    "histogram|0.25|observe|4242|3|104\n"
		    "5000000000|agent_execution_duration_seconds|{\"agent_type\":\"coder\",\"phase\":\"code\"}|3|"
		    "histogram|1.0|observe|4242|3|105\n"
		    "6000000000|agent_execution_duration_seconds|{\"agent_type\":\"coder\",\"phase\":\"code\"}|3|"
		    "histogram|9.0|observe|4242|3|106\n"
		    "60000000000|agent_execution_total|{\"agent_type\":\"coder\",\"phase\":\"code\",\"status\":\"success\"}|"
		    "-1152921504606846975|counter|4.0|add|4242|3|107\n"
		    "61000000000|task_queue_size|{\"priority\":\"high \\\"urgent\\\"\"}|2|gauge|12.0|add|4242|3|108\n");
	/* labels are valid JSON usable by json_extract */
	expect_rows(w, "SELECT DISTINCT json_extract(labels, '$.priority') FROM telemetry_metrics WHERE series_hash = 2",
		    "high \"urgent\"\n");

	char want[2048];

	snprintf(want, sizeof(want),
		 "-1152921504606846975|%llu|60|1|4.0|4.0|4.0|4.0|NULL|NULL\n"
		 "-1152921504606846975|%llu|60|2|3.0|1.0|2.0|2.0|NULL|NULL\n"
		 "2|%llu|60|1|12.0|12.0|12.0|12.0|NULL|NULL\n"
		 "2|%llu|60|2|17.0|7.0|10.0|7.0|NULL|NULL\n"
		 "3|%llu|60|3|10.25|0.25|9.0|9.0|[0.5,1,5]|[1,1,0,1]\n",
		 (unsigned long long)(b0 + 60 * S), (unsigned long long)b0, (unsigned long long)(b0 + 60 * S),
		 (unsigned long long)b0, (unsigned long long)b0);
	expect_rows(w,
		    "SELECT series_hash, bucket_start_ns, interval_s, count, sum, min, max, last, bounds, buckets "
		    "FROM telemetry_aggregates ORDER BY series_hash, bucket_start_ns DESC",
		    want);
	expect_rows(w, "SELECT name, metric_type, samples, last_value, bounds FROM telemetry_series ORDER BY series_hash",
		    "agent_execution_total|counter|3|4.0|NULL\n"
		    "task_queue_size|gauge|3|12.0|NULL\n"
		    "agent_execution_duration_seconds|histogram|3|9.0|[0.5,1,5]\n");
	expect_rows(w, "SELECT name, value, op, samples FROM v_recent_metrics ORDER BY series_hash",
		    "agent_execution_total|4.0|add|3\n"
		    "task_queue_size|12.0|add|3\n"
		    "agent_execution_duration_seconds|9.0|observe|3\n");
	assert_int_equal(atel__ixw_cursor(w, &got), 0);
	assert_int_equal(got.file_seq, 7);
	assert_int_equal(got.frame_off, 4096);
	assert_int_equal(got.rec_idx, 3);
	assert_int_equal(scalar(w, "SELECT events FROM telemetry_index_cursor"), 10);
	/* 9 metric rows + 5 aggregate rows + 3 series rows */
	assert_int_equal(atel__ixw_rows(w), 17);
	assert_int_equal(atel__ixw_events(w), 10);
}

static void test_spans_events_errors(void **state)
{
	struct atel_ixw *w = open_w(60);
	struct atel_event ev;

	*state = w;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, span_start(1, 1, 0, "orchestration-session", T0 + 10));
	apply(w, span_start(1, 2, 1, "coder-execution", T0 + 20));
	apply(w, span_attr(1, 1, "sessionId", vstr("session-123"), false));
	apply(w, span_attr(1, 1, "totalAgents", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = INT64_MAX }, false));
	apply(w, span_attr(1, 1, "ratio", (struct atel_attr_value){ .vtype = ATEL_VT_DOUBLE, .d = 2.0 }, false));
	apply(w, span_attr(1, 1, "ok", (struct atel_attr_value){ .vtype = ATEL_VT_BOOL, .b = true }, false));
	apply(w, span_attr(1, 1, "sessionId", vstr("session-456"), false)); /* later value wins */
	apply(w, span_attr(1, 1, "bad\xff\x01utf", vstr("line\nbreak"), false));
	ev = base(ATEL_EV_SPAN_EVENT, T0 + 30);
	ids(ev.span_event.trace_id, ev.span_event.span_id, 1, 2);
	ev.span_event.name = "code_generation_started";
	ev.span_event.nattrs = 2;
	apply(w, ev);
	apply(w, span_attr(1, 2, "files", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = 3 }, true));
	apply(w, span_attr(1, 2, "language", vstr("typescript"), true));
	ev = base(ATEL_EV_SPAN_ERROR, T0 + 40);
	ids(ev.span_error.trace_id, ev.span_error.span_id, 1, 2);
	ev.span_error.type = "TimeoutError";
	ev.span_error.msg = "tool timed out";
	ev.span_error.msg_len = 14;
	apply(w, ev);
	apply(w, span_end(1, 2, 1, NULL, T0 + 50));       /* ends OK after an error: stays ERROR */
	apply(w, span_end(1, 1, 1, "done", T0 + 100));
	/* an end whose start is not in the log (e.g. removed by retention) */
	apply(w, span_end(2, 9, 2, "lost start", T0 + 70));
	assert_int_equal(atel__ixw_commit(w, NULL), 0);

	expect_rows(w,
		    "SELECT trace_id, span_id, parent_span_id, name, kind, start_ns - " "1700000000000000000, "
		    "end_ns - 1700000000000000000, status_code, status_message, attributes, pid, tid, ring, "
		    "generation, service FROM telemetry_spans ORDER BY trace_id, span_id",
		    "ab000000000000000000000000000001|cd00000000000001|NULL|orchestration-session|1|10|100|1|done|"
		    "{\"sessionId\":\"session-456\",\"totalAgents\":9223372036854775807,\"ratio\":2.0,\"ok\":true,"
		    "\"bad\xef\xbf\xbd\\u0001utf\":\"line\\nbreak\"}|4242|4243|3|2|agent-a\n"
		    "ab000000000000000000000000000001|cd00000000000002|cd00000000000001|coder-execution|1|20|50|2|"
		    "tool timed out|{}|4242|4243|3|2|agent-a\n"
		    "ab000000000000000000000000000002|cd00000000000009|NULL||0|NULL|70|2|lost start|{}|4242|4243|3|2|"
		    "agent-a\n");
	/* typed values survive in SQLite's JSON functions */
	expect_rows(w,
		    "SELECT json_type(attributes, '$.totalAgents'), json_type(attributes, '$.ratio'), "
		    "json_type(attributes, '$.ok'), json_extract(attributes, '$.sessionId') FROM telemetry_spans "
		    "WHERE span_id = 'cd00000000000001'",
		    "integer|real|true|session-456\n");
	expect_rows(w,
		    "SELECT trace_id, span_id, ts_ns - 1700000000000000000, name, attributes FROM telemetry_span_events "
		    "ORDER BY id",
		    "ab000000000000000000000000000001|cd00000000000002|30|code_generation_started|"
		    "{\"files\":3,\"language\":\"typescript\"}\n"
		    "ab000000000000000000000000000001|cd00000000000002|40|exception|"
		    "{\"exception.message\":\"tool timed out\",\"exception.type\":\"TimeoutError\"}\n");
	expect_rows(w,
		    "SELECT trace_id, root_name, start_ns - 1700000000000000000, duration_ns, span_count, error_count, "
		    "open_count, service FROM v_trace_summary ORDER BY trace_id",
		    "ab000000000000000000000000000001|orchestration-session|10|90|2|1|0|agent-a\n"
		    "ab000000000000000000000000000002||NULL|NULL|1|1|0|agent-a\n");
}

static void test_death_closes_open_spans(void **state)
{
	struct atel_ixw *w = open_w(60);
	struct atel_event ev;

	*state = w;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, span_start(5, 1, 0, "root", T0 + 1));       /* ring 3 gen 2: open -> closed */
	apply(w, span_start(5, 2, 1, "child", T0 + 2));      /* open -> closed */
	apply(w, span_start(5, 3, 1, "done", T0 + 3));
	apply(w, span_end(5, 3, 1, NULL, T0 + 4));           /* already ended: untouched */
	ev = span_start(5, 4, 1, "other-gen", T0 + 5);        /* ring 3 gen 1: untouched */
	ev.generation = 1;
	apply(w, ev);
	ev = span_start(5, 5, 1, "other-ring", T0 + 6);       /* ring 4 gen 2: untouched */
	ev.ring = 4;
	apply(w, ev);
	ev = base(ATEL_EV_DEATH, T0 + 1000);
	ev.death.pid = 4242;
	ev.death.generation = 2;
	ev.death.start = 77;
	apply(w, ev);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	expect_rows(w,
		    "SELECT name, end_ns - 1700000000000000000, status_code, status_message FROM telemetry_spans "
		    "ORDER BY start_ns",
		    "root|1000|2|producer exited\n"
		    "child|1000|2|producer exited\n"
		    "done|4|1|NULL\n"
		    "other-gen|NULL|0|NULL\n"
		    "other-ring|NULL|0|NULL\n");
	expect_rows(w, "SELECT error_count, open_count FROM v_trace_summary", "2|2\n");
}

static const char *k_tool[] = { "status", "tool" };
static const char *v_read_ok[] = { "success", "Read" };
static const char *v_read_bad[] = { "failure", "Read" };
static const char *k_tooldur[] = { "tool" };
static const char *v_read[] = { "Read" };
static const char *k_ctx[] = { "agent_id", "session_id" };
static const char *v_ctx[] = { "coder-123", "s1" };
static const char *k_agent[] = { "agent_id" };
static const char *v_agent[] = { "coder-123" };
static const char *k_err[] = { "component", "error_type", "severity" };
static const char *v_err[] = { "drain", "timeout", "high" };
static const char *k_erate[] = { "component", "error_type" };
static const char *v_erate[] = { "drain", "timeout" };
static const char *k_tok[] = { "agent_type", "model" };
static const char *v_tok[] = { "coder", "opus" };

static void test_views(void **state)
{
	struct atel_ixw *w = open_w(60);
	struct atel_dec_series ok = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_ok, 11);
	struct atel_dec_series bad = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_bad, 12);
	struct atel_dec_series plan = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_plan, 13);
	struct atel_dec_series dur = mk(ATEL_MT_HISTOGRAM, "agent_execution_duration_seconds", 2, k_dur, v_dur, 14);
	struct atel_dec_series tok = mk(ATEL_MT_COUNTER, "agent_tokens_used", 2, k_tok, v_tok, 15);
	struct atel_dec_series tok_ok = mk(ATEL_MT_COUNTER, "tool_calls_total", 2, k_tool, v_read_ok, 16);
	struct atel_dec_series tok_bad = mk(ATEL_MT_COUNTER, "tool_calls_total", 2, k_tool, v_read_bad, 17);
	struct atel_dec_series tdur = mk(ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", 1, k_tooldur, v_read, 18);
	struct atel_dec_series util = mk(ATEL_MT_GAUGE, "context_window_utilization", 2, k_ctx, v_ctx, 19);
	struct atel_dec_series used = mk(ATEL_MT_GAUGE, "context_window_used_tokens", 1, k_agent, v_agent, 20);
	struct atel_dec_series size = mk(ATEL_MT_GAUGE, "context_window_size_tokens", 1, k_agent, v_agent, 21);
	struct atel_dec_series err = mk(ATEL_MT_COUNTER, "error_total", 3, k_err, v_err, 22);
	struct atel_dec_series erate = mk(ATEL_MT_GAUGE, "error_rate", 2, k_erate, v_erate, 23);

	*state = w;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&ok, T0 + 1 * S, 1, false));
	apply(w, sample(&ok, T0 + 2 * S, 1, false));
	apply(w, sample(&ok, T0 + 3 * S, 1, false));
	apply(w, sample(&bad, T0 + 4 * S, 1, false));
	apply(w, sample(&plan, T0 + 5 * S, 2, false));
	apply(w, sample(&dur, T0 + 6 * S, 2, false));
	apply(w, sample(&dur, T0 + 7 * S, 4, false));
	apply(w, sample(&tok, T0 + 8 * S, 1500, false));
	apply(w, sample(&tok, T0 + 9 * S, 500, false));
	apply(w, sample(&tok_ok, T0 + 10 * S, 1, false));
	apply(w, sample(&tok_ok, T0 + 11 * S, 1, false));
	apply(w, sample(&tok_ok, T0 + 12 * S, 1, false));
	apply(w, sample(&tok_bad, T0 + 13 * S, 1, false));
	apply(w, sample(&tdur, T0 + 14 * S, 0.25, false));
	apply(w, sample(&tdur, T0 + 15 * S, 0.75, false));
	apply(w, sample(&util, T0 + 16 * S, 37.5, true));
	apply(w, sample(&util, T0 + 17 * S, 62.5, true));
	apply(w, sample(&util, T0 + 18 * S, 50, true));
	apply(w, sample(&used, T0 + 19 * S, 100000, true));
	apply(w, sample(&size, T0 + 20 * S, 200000, true));
	apply(w, sample(&err, T0 + 21 * S, 1, false));
	apply(w, sample(&err, T0 + 23 * S, 3, false));
	apply(w, sample(&erate, T0 + 24 * S, 0.5, true));
	assert_int_equal(atel__ixw_commit(w, NULL), 0);

	expect_rows(w,
		    "SELECT agent_type, executions, successes, failures, success_rate, timed_executions, avg_duration_s, "
		    "min_duration_s, max_duration_s, tokens_used, last_ns - 1700000000000000000 "
		    "FROM v_agent_performance ORDER BY agent_type",
		    "coder|4.0|3.0|1.0|0.75|2|3.0|2.0|4.0|2000.0|9000000000\n"
		    "planner|2.0|2.0|0.0|1.0|0|NULL|NULL|NULL|0|5000000000\n");
	expect_rows(w,
		    "SELECT tool, calls, successes, failures, success_rate, timed_calls, avg_duration_s, max_duration_s "
		    "FROM v_tool_usage",
		    "Read|4.0|3.0|1.0|0.75|2|0.5|0.75\n");
	expect_rows(w,
		    "SELECT agent_id, session_id, samples, avg_utilization, min_utilization, max_utilization, "
		    "last_utilization, used_tokens, size_tokens FROM v_context_utilization",
		    "coder-123|s1|3|50.0|37.5|62.5|50.0|100000.0|200000.0\n");
	expect_rows(w,
		    "SELECT component, error_type, severity, errors, last_ns - first_ns, errors_per_second, reported_rate "
		    "FROM v_error_rate",
		    "drain|timeout|high|4.0|2000000000|2.0|0.5\n");
	assert_int_equal(scalar(w, "SELECT count(*) FROM v_recent_metrics"), 13);
}

/* The same events applied in one pass, in two writers (close/reopen between)
 * and through a rolled-back attempt give identical tables. */
static void feed(struct atel_ixw *w, int from, int to, const struct atel_dec_series *g,
		 const struct atel_dec_series *h)
{
	for (int i = from; i < to; i++) {
		uint64_t ts = T0 + (uint64_t)i * 7 * S;

		apply(w, sample(g, ts, (double)(i % 5) - 1.5, (i % 7) == 0));
		apply(w, sample(h, ts + 1, (double)i / 10.0, false));
		if (i % 3 == 0) {
			apply(w, span_start(9, (uint8_t)i, 0, "s", ts));
			apply(w, span_attr(9, (uint8_t)i, "i", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = i },
					   false));
		}
		if (i % 3 == 1)
			apply(w, span_end(9, (uint8_t)(i - 1), 1, "ok", ts));
	}
}

#define COMPARE_SQL                                                                                         \
	"SELECT 'm', id, ts_ns, name, labels, series_hash, metric_type, value, op, pid, ring, seq FROM "    \
	"telemetry_metrics UNION ALL SELECT 'a', name, labels, series_hash, metric_type, bucket_start_ns, " \
	"interval_s, count, sum, min, max, last || bounds || buckets FROM telemetry_aggregates UNION ALL "  \
	"SELECT 's', trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, "        \
	"status_message, attributes, service FROM telemetry_spans UNION ALL SELECT 'r', series_hash, name, " \
	"labels, metric_type, bounds, first_ns, last_ns, samples, last_value, 0, 0 FROM telemetry_series "  \
	"ORDER BY 1, 2, 3, 4, 5, 6, 7"

static void test_resume_and_rollback(void **state)
{
	struct atel_dec_series g = mk(ATEL_MT_GAUGE, "task_queue_size", 1, k_q, v_q, 31);
	struct atel_dec_series h = mk(ATEL_MT_HISTOGRAM, "task_duration_seconds", 2, k_dur, v_dur, 32);
	struct atel_ixw *w = open_w(60);
	struct atel_log_pos p1 = { 1, 100, 5 }, got;
	char *one, *two;

	/* reference: one pass */
	seqno = 0;
	assert_int_equal(atel__ixw_begin(w), 0);
	feed(w, 0, 40, &g, &h);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	one = dump(atel__ixw_db(w), COMPARE_SQL);
	atel__ixw_close(w);
	unlink_db(dbpath);

	/* split: 0..17 committed; 17..30 rolled back (a failed batch); reopen;
	 * 17..40 again */
	w = open_w(60);
	seqno = 0;
	assert_int_equal(atel__ixw_begin(w), 0);
	feed(w, 0, 17, &g, &h);
	assert_int_equal(atel__ixw_commit(w, &p1), 0);
	uint64_t seq_at = seqno;

	assert_int_equal(atel__ixw_begin(w), 0);
	feed(w, 17, 30, &g, &h);
	atel__ixw_rollback(w);
	atel__ixw_close(w);
	w = open_w(60);
	*state = w;
	assert_int_equal(atel__ixw_cursor(w, &got), 0);
	assert_int_equal(got.file_seq, 1);
	assert_int_equal(got.frame_off, 100);
	assert_int_equal(got.rec_idx, 5);
	seqno = seq_at;
	assert_int_equal(atel__ixw_begin(w), 0);
	feed(w, 17, 25, &g, &h);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	assert_int_equal(atel__ixw_begin(w), 0); /* a second batch on the same writer */
	feed(w, 25, 40, &g, &h);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	two = dump(atel__ixw_db(w), COMPARE_SQL);
	assert_string_equal(one, two);
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_metrics"), 80);
	free(one);
	free(two);
}

static void test_locked_database(void **state)
{
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "tool_calls_total", 2, k_tool, v_read_ok, 41);
	struct atel_ixw *w = open_w(60);
	sqlite3 *other = NULL;

	*state = w;
	assert_int_equal(sqlite3_open(dbpath, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(atel__ixw_begin(w), -EBUSY);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	/* a reader does not block the writer (WAL) */
	assert_int_equal(sqlite3_exec(other, "BEGIN; SELECT count(*) FROM telemetry_metrics", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, T0, 1, false));
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_metrics"), 1);
	expect_rows(w, "PRAGMA journal_mode", "wal\n");
}

/* `atel clear metrics` from another connection: the next batch starts over
 * from what the tables hold instead of rewriting cleared rollups. */
static void test_cleared_by_other_connection(void **state)
{
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "tool_calls_total", 2, k_tool, v_read_ok, 61);
	struct atel_dec_series g = mk(ATEL_MT_GAUGE, "task_queue_size", 1, k_q, v_q, 62);
	struct atel_ixw *w = open_w(60);
	uint64_t b0 = bucket(T0, 60);
	sqlite3 *other = NULL;

	*state = w;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, b0 + 1 * S, 5, false));
	apply(w, sample(&c, b0 + 2 * S, 5, false));
	apply(w, sample(&g, b0 + 3 * S, 10, true));
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	assert_int_equal(sqlite3_open(dbpath, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "DELETE FROM telemetry_metrics; DELETE FROM telemetry_aggregates", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(other);
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, b0 + 4 * S, 1, false));
	apply(w, sample(&g, b0 + 5 * S, 2, false)); /* the gauge continues from telemetry_series: 12 */
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	expect_rows(w, "SELECT series_hash, count, sum, last FROM telemetry_aggregates ORDER BY series_hash",
		    "61|1|1.0|1.0\n62|1|12.0|12.0\n");
	expect_rows(w, "SELECT series_hash, samples, last_value FROM telemetry_series ORDER BY series_hash",
		    "61|3|1.0\n62|2|12.0\n");
}

static void test_retention(void **state)
{
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "tool_calls_total", 2, k_tool, v_read_ok, 51);
	struct atel_ixw *w = open_w(3600);
	const uint64_t day = 86400ull * S, now = T0 + 100 * day;
	struct atel_export_row ex = { .exporter = "otlp", .signal = "traces", .items = 3, .bytes = 99, .status = 200 };
	uint64_t deleted = 0;

	*state = w;
	assert_int_equal(atel__ixw_begin(w), 0);
	/* metrics: 31 d old (deleted), 29 d old (kept) */
	apply(w, sample(&c, now - 31 * day, 1, false));
	apply(w, sample(&c, now - 29 * day, 2, false));
	apply(w, sample(&c, now - 1 * day, 3, false));
	/* spans: 8 d (deleted, with its event), 6 d (kept) */
	apply(w, span_start(7, 1, 0, "old", now - 8 * day));
	{
		struct atel_event ev = base(ATEL_EV_SPAN_EVENT, now - 8 * day + 1);

		ids(ev.span_event.trace_id, ev.span_event.span_id, 7, 1);
		ev.span_event.name = "e-old";
		apply(w, ev);
	}
	apply(w, span_start(7, 2, 0, "new", now - 6 * day));
	{
		struct atel_event ev = base(ATEL_EV_SPAN_EVENT, now - 6 * day + 1);

		ids(ev.span_event.trace_id, ev.span_event.span_id, 7, 2);
		ev.span_event.name = "e-new";
		apply(w, ev);
	}
	ex.ts_ns = now - 40 * day;
	assert_int_equal(atel__ixw_export_row(w, &ex), 0);
	ex.ts_ns = now - 2 * day;
	snprintf(ex.error, sizeof(ex.error), "HTTP 503");
	ex.status = 503;
	assert_int_equal(atel__ixw_export_row(w, &ex), 0);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	/* aggregates: buckets of 31 d, 29 d and 1 d ago; 90 d retention keeps all,
	 * 30 d drops the oldest */
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_aggregates"), 3);
	expect_rows(w, "SELECT exporter, signal, items, bytes, status, error FROM telemetry_exports ORDER BY id",
		    "otlp|traces|3|99|200|NULL\notlp|traces|3|99|503|HTTP 503\n");

	assert_int_equal(atel__ixw_retention(w, now, 30, 7, 90, &deleted), 0);
	assert_int_equal(deleted, 4); /* 1 metric, 1 export, 1 span, 1 event */
	expect_rows(w, "SELECT value FROM telemetry_metrics ORDER BY id", "2.0\n3.0\n");
	expect_rows(w, "SELECT name FROM telemetry_spans", "new\n");
	expect_rows(w, "SELECT name FROM telemetry_span_events", "e-new\n");
	expect_rows(w, "SELECT status FROM telemetry_exports", "503\n");
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_aggregates"), 3);
	assert_int_equal(atel__ixw_retention(w, now, 30, 7, 30, &deleted), 0);
	assert_int_equal(deleted, 1);
	expect_rows(w, "SELECT sum FROM telemetry_aggregates ORDER BY bucket_start_ns", "2.0\n3.0\n");
	/* 0 days keeps everything */
	assert_int_equal(atel__ixw_retention(w, now + 1000 * day, 0, 0, 0, &deleted), 0);
	assert_int_equal(deleted, 0);
}

static void test_loss_rows(void **state)
{
	struct atel_ixw *w = open_w(60);
	struct atel_event ev = base(ATEL_EV_LOSS, T0 + 5);

	*state = w;
	ev.loss.cause = ATEL_LOSS_RING_FULL;
	ev.loss.count = 17;
	ev.loss.first_ns = T0 + 1;
	ev.loss.last_ns = T0 + 4;
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, ev);
	ev = base(ATEL_EV_BEGIN, T0 + 6); /* nothing indexed */
	apply(w, ev);
	assert_int_equal(atel__ixw_commit(w, NULL), 0);
	expect_rows(w, "SELECT ring, generation, pid, cause, count, last_ns - first_ns FROM telemetry_losses",
		    "3|2|4242|ring_full|17|3\n");
}

/* index.mode compact: samples and spans leave no raw rows (nor series or
 * rollups), telemetry_segments counts them per file, the mode is recorded;
 * a full file opened compact says so and becomes compact; a compact file
 * opened full stays marked compact (it lacks the older rows). */
static void test_compact_mode(void **state)
{
	struct atel_ixw_opts o = { .rollup_interval_s = 60, .compact = true };
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_ok, 11);
	struct atel_log_pos p1 = { 1, 4096, 0 }, p2 = { 2, 128, 1 };
	struct atel_ixw *w = open_w(60); /* a full file with a row in it */
	char err[512];

	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, T0, 1, false));
	assert_int_equal(atel__ixw_commit(w, &p1), 0);
	assert_null(atel__ixw_mode_note(w));
	assert_int_equal(atel__ix_mode_compact(atel__ixw_db(w)), 0);
	atel__ixw_close(w);
	*state = NULL;

	assert_int_equal(atel__ixw_open(&w, dbpath, &o, err, sizeof(err)), 0);
	*state = w;
	assert_non_null(atel__ixw_mode_note(w));
	assert_int_equal(atel__ix_mode_compact(atel__ixw_db(w)), 1);
	assert_int_equal(atel__ixw_begin(w), 0);
	apply(w, sample(&c, T0 + 10, 2, false));
	apply(w, sample(&c, T0 + 20, 3, false));
	apply(w, span_start(1, 1, 0, "root", T0 + 30));
	apply(w, span_end(1, 1, 1, NULL, T0 + 40));
	assert_int_equal(atel__ixw_commit(w, &p2), 0);
	/* the full era's row stays; nothing new */
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_metrics"), 1);
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_spans"), 0);
	assert_int_equal(scalar(w, "SELECT count(*) FROM telemetry_aggregates WHERE count > 1"), 0);
	expect_rows(w, "SELECT file_seq, samples, spans, last_ns - first_ns FROM telemetry_segments ORDER BY file_seq",
		    "1|1|0|0\n2|2|1|30\n");
	atel__ixw_close(w);
	*state = NULL;

	o.compact = false; /* compact -> full: stays marked compact */
	assert_int_equal(atel__ixw_open(&w, dbpath, &o, err, sizeof(err)), 0);
	*state = w;
	assert_non_null(atel__ixw_mode_note(w));
	assert_int_equal(atel__ix_mode_compact(atel__ixw_db(w)), 1);
}

/* compact: the WAL stays small (checkpoint every 128 pages, truncated to 1
 * MiB after each), where SQLite's defaults left 4 MB beside a small database */
static void test_compact_wal_small(void **state)
{
	struct atel_ixw_opts o = { .rollup_interval_s = 60, .compact = true };
	struct atel_dec_series c = mk(ATEL_MT_COUNTER, "agent_execution_total", 3, k_exec, v_exec_ok, 11);
	struct atel_ixw *w;
	char err[512], wal[300];
	struct stat st;

	assert_int_equal(atel__ixw_open(&w, dbpath, &o, err, sizeof(err)), 0);
	*state = w;
	assert_int_equal(scalar(w, "PRAGMA wal_autocheckpoint"), 128);
	assert_int_equal(scalar(w, "PRAGMA journal_size_limit"), 1048576);
	for (int i = 0; i < 3000; i++) {
		struct atel_log_pos p = { 1 + (uint64_t)i / 100, 4096 + (uint64_t)i * 64, 0 };
		assert_int_equal(atel__ixw_begin(w), 0);
		apply(w, sample(&c, T0 + (uint64_t)i * 1000000000ull, 1, false));
		assert_int_equal(atel__ixw_commit(w, &p), 0);
	}
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	assert_int_equal(stat(wal, &st), 0);
	print_message("WAL after 3000 commits: %lld bytes\n", (long long)st.st_size);
	assert_true(st.st_size <= (off_t)(1536 << 10));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_metrics_and_rollups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spans_events_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_death_closes_open_spans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_views, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_and_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleared_by_other_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loss_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_wal_small, setup, teardown),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
