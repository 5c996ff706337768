/* SPDX-License-Identifier: MIT */
/*
 * End-to-end tests of the indexer over real segment files (written with
 * tests/common/synth through the log writer): the indexer thread follows a
 * growing log, resumes after kill -9 at random moments without losing or
 * doubling an event, survives a database locked by another connection, and
 * atel__reindex rebuilds exactly the rows the live indexer wrote.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include <sqlite3.h>

#include "daemon.h"
#include "index.h"
#include "logread.h"
#include "synth.h"

#define T0 1700000000000000000ull
#define INSTANCE 0x5eed1234ull

struct env {
	char dir[512];
	struct atel_config cfg;
	struct atel_daemon d;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	assert_int_equal(atel_synth_tmpdir(e->dir, sizeof(e->dir), "ixlog"), 0);
	atel__config_defaults(&e->cfg);
	free(e->cfg.data_dir);
	e->cfg.data_dir = strdup(e->dir);
	/* synthetic timestamps are from 2023: keep retention from deleting them */
	e->cfg.retention.metrics_days = 0;
	e->cfg.retention.traces_days = 0;
	e->cfg.retention.aggregates_days = 0;
	free(e->cfg.index.mode); /* these tests read the raw rows */
	e->cfg.index.mode = strdup("full");
	assert_int_equal(atel__daemon_init(&e->d, &e->cfg), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	atel__daemon_fini(&e->d);
	atel__config_free(&e->cfg);
	atel_synth_rmtree(e->dir);
	free(e);
	return 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* One value from a fresh read-only connection (as the CLI would read); -1 if
 * the table does not exist yet. */
static int64_t db_scalar(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		sqlite3_busy_timeout(db, 1000);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int64_t indexed_events(const struct env *e)
{
	return db_scalar(e->d.db_path, "SELECT events FROM telemetry_index_cursor");
}

/* Polls until the index holds `want` events (generous bound: shared 2-core machine). */
static void wait_events(const struct env *e, int64_t want)
{
	struct timespec t0, t;
	int64_t got = -1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		got = indexed_events(e);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (got >= want || t.tv_sec - t0.tv_sec > 60)
			break;
		sleep_ms(2);
	}
	assert_int_equal(got, want);
}

struct counts {
	int64_t events, samples, spans, span_events, losses;
};

/* What the log holds, read with the same reader the indexer uses. */
static struct counts count_log(const char *segdir)
{
	struct atel_log_reader_opts o = { .segments_dir = segdir };
	struct atel_log_reader *r = NULL;
	struct counts c = { 0 };
	struct atel_event ev;
	int rc;

	assert_int_equal(atel__log_open(&r, &o), 0);
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		c.events++;
		c.samples += ev.kind == ATEL_EV_SAMPLE;
		c.spans += ev.kind == ATEL_EV_SPAN_START;
		c.span_events += ev.kind == ATEL_EV_SPAN_EVENT || ev.kind == ATEL_EV_SPAN_ERROR;
		c.losses += ev.kind == ATEL_EV_LOSS;
	}
	assert_int_equal(rc, 0);
	atel__log_close(r);
	return c;
}

static char *dump(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	int rc;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
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
	sqlite3_close(db);
	return out;
}

/* Every derived table, in a stable order (exports are not in the log). */
static const char *const compare_sql[] = {
	"SELECT * FROM telemetry_metrics ORDER BY id",
	"SELECT * FROM telemetry_aggregates ORDER BY series_hash, interval_s, bucket_start_ns",
	"SELECT * FROM telemetry_series ORDER BY series_hash",
	"SELECT * FROM telemetry_spans ORDER BY trace_id, span_id",
	"SELECT * FROM telemetry_span_events ORDER BY id",
	"SELECT * FROM telemetry_losses ORDER BY id",
	"SELECT file_seq, frame_off, rec_idx, events FROM telemetry_index_cursor",
};

static void assert_same_rows(const char *a, const char *b)
{
	for (size_t i = 0; i < sizeof(compare_sql) / sizeof(compare_sql[0]); i++) {
		char *x = dump(a, compare_sql[i]), *y = dump(b, compare_sql[i]);

		if (strcmp(x, y))
			fprintf(stderr, "differs: %s\n", compare_sql[i]);
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
}

/* The indexed rows match what the log holds, each exactly once. */
static void assert_complete(const struct env *e, const struct counts *c)
{
	const char *db = e->d.db_path;

	assert_int_equal(db_scalar(db, "SELECT events FROM telemetry_index_cursor"), c->events);
	assert_int_equal(db_scalar(db, "SELECT count(*) FROM telemetry_metrics"), c->samples);
	assert_int_equal(db_scalar(db, "SELECT count(*) FROM (SELECT DISTINCT ring, seq FROM telemetry_metrics)"),
			 c->samples);
	assert_int_equal(db_scalar(db, "SELECT sum(count) FROM telemetry_aggregates"), c->samples);
	assert_int_equal(db_scalar(db, "SELECT count(*) FROM telemetry_spans"), c->spans);
	assert_int_equal(db_scalar(db, "SELECT count(*) FROM telemetry_span_events"), c->span_events);
	assert_int_equal(db_scalar(db, "SELECT count(*) FROM telemetry_losses"), c->losses);
}

static const double bounds[] = { 0.5, 1, 5 };

/* A small stream with known content on ring 0. */
static void exact_stream(struct atel_synth *s)
{
	uint8_t tr[16], other[16], root[8], child[8];
	uint32_t c, h, b;

	atel_synth_init(s, 0, 1, 4242, 4243, T0);
	atel_synth_begin(s, "agent-a");
	c = atel_synth_series(s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "Probe", "status", "success", NULL);
	b = atel_synth_bounds(s, bounds, 3);
	h = atel_synth_series(s, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", b, "tool", "Probe", NULL);
	atel_synth_sample(s, c, 1, false);
	atel_synth_sample(s, h, 0.25, false);
	atel_synth_sample(s, c, 1, false);
	atel_synth_sample(s, h, 2, false);
	atel_synth_sample(s, c, 1, false);
	atel_synth_sample(s, h, 9, false);
	atel_synth_ids(1, tr, root);
	atel_synth_ids(2, other, child); /* child: same trace, its own span id */
	atel_synth_span_start(s, tr, root, NULL, "orchestration-session", 2);
	atel_synth_attr_str(s, tr, root, "sessionId", "session-123", false);
	atel_synth_span_start(s, tr, child, root, "coder-execution", 1);
	atel_synth_span_event(s, tr, child, "code_generation_started", 1);
	atel_synth_attr_int(s, tr, child, "files", 3, true);
	atel_synth_span_error(s, tr, child, "TimeoutError", "tool timed out");
	atel_synth_span_end(s, tr, child, 1, NULL);
	atel_synth_span_end(s, tr, root, 1, "done");
	atel_synth_loss(s, ATEL_LOSS_RING_FULL, 5, T0, T0 + 10);
	atel_synth_end(s);
}

static void write_rings(const struct env *e, struct atel_synth **rings, unsigned n)
{
	struct atel_synth_log_opts o = { .batch = 512, .flush_each_round = true };

	assert_int_equal(atel_synth_write_log(e->d.segments_dir, INSTANCE, rings, n, &o), 0);
}

static void workload(struct atel_synth *s, uint32_t ring, uint64_t seed, uint64_t samples)
{
	atel_synth_init(s, ring, 1, 5000 + (int32_t)ring, 6000 + (int32_t)ring, T0 + ring * 1000000000ull);
	atel_synth_begin(s, "swarm");
	atel_synth_agent_workload(s, seed, samples, 40);
	atel_synth_end(s);
}

static void test_follow_exact_and_reindex(void **state)
{
	struct env *e = *state;
	struct atel_synth s0, s1, s2;
	struct atel_synth *part1[] = { &s0, &s1 }, *part2[] = { &s2 };
	struct atel_indexer *ix = NULL;
	struct atel_export_row row = { .ts_ns = T0, .exporter = "otlp", .signal = "metrics", .items = 7,
				       .bytes = 1234, .status = 200 };
	struct counts c;
	char rpath[700], err[512];
	char *got;

	exact_stream(&s0);
	workload(&s1, 1, 11, 3000);
	write_rings(e, part1, 2);
	c = count_log(e->d.segments_dir);

	assert_int_equal(atel__indexer_start(&ix, &e->d), 0);
	wait_events(e, c.events);
	assert_complete(e, &c);

	/* the log grows while the indexer follows it */
	workload(&s2, 2, 22, 5000);
	write_rings(e, part2, 1);
	c = count_log(e->d.segments_dir);
	atel__export_row_push(&e->d, &row);
	wait_events(e, c.events);
	for (int i = 0; i < 5000 && db_scalar(e->d.db_path, "SELECT count(*) FROM telemetry_exports") < 1; i++)
		sleep_ms(2);
	atel__indexer_stop(ix);
	assert_complete(e, &c);
	assert_int_equal(atomic_load(&e->d.stats.indexer_lag_records), 0);
	assert_true(atomic_load(&e->d.stats.index_rows) >= (uint64_t)c.samples);

	/* exact content of ring 0 */
	got = dump(e->d.db_path,
		   "SELECT name, labels, metric_type, value, op, pid FROM telemetry_metrics WHERE ring = 0 ORDER BY id");
	assert_string_equal(got,
			    "tool_calls_total|{\"status\":\"success\",\"tool\":\"Probe\"}|counter|1.0|add|4242\n"
			    "tool_call_duration_seconds|{\"tool\":\"Probe\"}|histogram|0.25|observe|4242\n"
			    "tool_calls_total|{\"status\":\"success\",\"tool\":\"Probe\"}|counter|1.0|add|4242\n"
			    "tool_call_duration_seconds|{\"tool\":\"Probe\"}|histogram|2.0|observe|4242\n"
			    "tool_calls_total|{\"status\":\"success\",\"tool\":\"Probe\"}|counter|1.0|add|4242\n"
			    "tool_call_duration_seconds|{\"tool\":\"Probe\"}|histogram|9.0|observe|4242\n");
	free(got);
	got = dump(e->d.db_path,
		   "SELECT name, count, sum, min, max, last, bounds, buckets FROM telemetry_aggregates "
		   "WHERE labels LIKE '%Probe%' ORDER BY name");
	assert_string_equal(got, "tool_call_duration_seconds|3|11.25|0.25|9.0|9.0|[0.5,1,5]|[1,0,1,1]\n"
				 "tool_calls_total|3|3.0|1.0|1.0|1.0|NULL|NULL\n");
	free(got);
	got = dump(e->d.db_path,
		   "SELECT s.name, s.kind, s.parent_span_id IS NULL, s.status_code, s.status_message, s.attributes, "
		   "s.end_ns > s.start_ns, s.service, s.pid, s.tid FROM telemetry_spans s WHERE s.pid = 4242 "
		   "ORDER BY s.start_ns");
	assert_string_equal(got, "orchestration-session|2|1|1|done|{\"sessionId\":\"session-123\"}|1|agent-a|4242|4243\n"
				 "coder-execution|1|0|2|tool timed out|{}|1|agent-a|4242|4243\n");
	free(got);
	got = dump(e->d.db_path,
		   "SELECT ev.name, ev.attributes FROM telemetry_span_events ev JOIN telemetry_spans s "
		   "USING (trace_id, span_id) WHERE s.pid = 4242 ORDER BY ev.id");
	assert_string_equal(got, "code_generation_started|{\"files\":3}\n"
				 "exception|{\"exception.message\":\"tool timed out\",\"exception.type\":\"TimeoutError\"}\n");
	free(got);
	got = dump(e->d.db_path, "SELECT ring, cause, count FROM telemetry_losses WHERE ring = 0");
	assert_string_equal(got, "0|ring_full|5\n");
	free(got);
	got = dump(e->d.db_path, "SELECT exporter, signal, items, bytes, status, error FROM telemetry_exports");
	assert_string_equal(got, "otlp|metrics|7|1234|200|NULL\n");
	free(got);
	got = dump(e->d.db_path, "SELECT root_name, span_count, error_count, open_count FROM v_trace_summary "
				 "WHERE root_name = 'orchestration-session' AND span_count = 2");
	assert_string_equal(got, "orchestration-session|2|1|0\n");
	free(got);

	/* reindex from the segments alone gives the same rows */
	snprintf(rpath, sizeof(rpath), "%s/reindexed.db", e->dir);
	err[0] = '\0';
	assert_int_equal(atel__reindex_mode(e->d.segments_dir, rpath, 0, err, sizeof(err)), 0);
	assert_same_rows(e->d.db_path, rpath);
	/* and in place, keeping the export history */
	assert_int_equal(atel__reindex(e->d.segments_dir, e->d.db_path, err, sizeof(err)), 0);
	assert_same_rows(e->d.db_path, rpath);
	assert_int_equal(db_scalar(e->d.db_path, "SELECT count(*) FROM telemetry_exports"), 1);

	atel_synth_free(&s0);
	atel_synth_free(&s1);
	atel_synth_free(&s2);
}

/* kill -9 the indexing process at several moments; each restart resumes at
 * the committed cursor. The end result equals a reindex: nothing lost or doubled. */
static void test_kill9_resume(void **state)
{
	struct env *e = *state;
	struct atel_synth s[3];
	struct atel_synth *rings[] = { &s[0], &s[1], &s[2] };
	struct atel_indexer *ix = NULL;
	struct counts c;
	char rpath[700], err[512];
	int mid_log_kills = 0;

	for (uint32_t i = 0; i < 3; i++)
		workload(&s[i], i, 100 + i, 12000);
	write_rings(e, rings, 3);
	c = count_log(e->d.segments_dir);

	srand((unsigned)getpid());
	for (int round = 1; round <= 5; round++) {
		int64_t target = c.events * round / 7 + rand() % 2000, at_kill;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			struct atel_indexer *cix = NULL;

			if (atel__indexer_start(&cix, &e->d))
				_exit(3);
			for (;;)
				pause();
		}
		for (int i = 0; i < 30000 && indexed_events(e) < target; i++)
			sleep_ms(1);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		at_kill = indexed_events(e);
		if (at_kill < c.events)
			mid_log_kills++;
	}
	assert_true(mid_log_kills >= 4); /* each target is below the total: kills land mid-log */

	assert_int_equal(atel__indexer_start(&ix, &e->d), 0);
	wait_events(e, c.events);
	atel__indexer_stop(ix);
	assert_complete(e, &c);

	snprintf(rpath, sizeof(rpath), "%s/reindexed.db", e->dir);
	assert_int_equal(atel__reindex_mode(e->d.segments_dir, rpath, 0, err, sizeof(err)), 0);
	assert_same_rows(e->d.db_path, rpath);
	for (int i = 0; i < 3; i++)
		atel_synth_free(&s[i]);
}

/* Another connection holds the write lock: the indexer keeps its place,
 * loses nothing, and catches up when the lock goes away. */
static void test_locked_database(void **state)
{
	struct env *e = *state;
	struct atel_synth s1, s2;
	struct atel_synth *p1[] = { &s1 }, *p2[] = { &s2 };
	struct atel_indexer *ix = NULL;
	struct counts c1, c2;
	sqlite3 *other = NULL;

	workload(&s1, 1, 7, 2000);
	write_rings(e, p1, 1);
	c1 = count_log(e->d.segments_dir);
	assert_int_equal(atel__indexer_start(&ix, &e->d), 0);
	wait_events(e, c1.events);

	assert_int_equal(sqlite3_open(e->d.db_path, &other), SQLITE_OK);
	sqlite3_busy_timeout(other, 10000);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	workload(&s2, 2, 8, 4000);
	write_rings(e, p2, 1); /* the log is written while the database is locked */
	c2 = count_log(e->d.segments_dir);
	sleep_ms(400);         /* the indexer meets the lock (and backs off) meanwhile */
	assert_int_equal(indexed_events(e), c1.events);
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);

	wait_events(e, c2.events);
	atel__indexer_stop(ix);
	assert_complete(e, &c2);
	atel_synth_free(&s1);
	atel_synth_free(&s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_follow_exact_and_reindex, setup, teardown),
#if !defined(__SANITIZE_THREAD__) /* TSan runs (suite concurrent) check the threads; fork+kill stays in unit */
		cmocka_unit_test_setup_teardown(test_kill9_resume, setup, teardown),
#endif
		cmocka_unit_test_setup_teardown(test_locked_database, setup, teardown),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
