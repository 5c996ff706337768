/* SPDX-License-Identifier: MIT */
/*
 * atel_log tests (consumer/index/logvtab.c): telemetry_metrics as a virtual
 * table over the segment log must answer exactly the rows of `atel reindex
 * --mode full` over the same files (ids, values, label text, types), on a
 * workload of counters, gauges (set and add), histograms, a NaN sample and a
 * series redefined with another type, written into many segment files.
 *
 * Constraint pushdown: once a scan has read the files, later scans skip
 * whole files by their ts_ns range, names and id range. Each constrained
 * query below is compared with the same query on the full index, and the
 * ones that should skip are checked to skip (atel_log_stats()): a boundary
 * off by one, a file skipped wrongly, or a gauge's running value not carried
 * over a skipped file makes a comparison fail. The reference views, copied
 * to temp by atel__logvtab_shadow, answer as the full index's. Deleting the
 * oldest file (retention) drops the summaries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "atel_test.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "index.h"
#include "logread.h"
#include "logvtab.h"
#include "segformat.h"
#include "synth.h"

#define T0_NS 1700000000000000000ull
#define MAXF 256

struct world {
	char dir[512], seg[600], db[600];
	sqlite3 *db_; /* main: the full index; temp.telemetry_metrics: the log */
	int nfiles;
	uint64_t seqs[MAXF];
	uint64_t fmin[MAXF], fmax[MAXF]; /* sample ts_ns range of each file */
};

/* Every row of q as text, "|" between columns, "\n" between rows (malloc'd). */
static char *dump(sqlite3 *db, const char *q)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	int rc;

	assert_non_null(out);
	out[0] = 0;
	rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
	if (rc != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < sqlite3_column_count(st); i++) {
			const unsigned char *t = sqlite3_column_text(st, i);
			size_t n = t ? strlen((const char *)t) : 4;
			while (len + n + 2 >= cap) {
				cap *= 2;
				out = realloc(out, cap);
				assert_non_null(out);
			}
			memcpy(out + len, t ? (const char *)t : "NULL", n);
			len += n;
			out[len++] = i + 1 < sqlite3_column_count(st) ? '|' : '\n';
			out[len] = 0;
		}
	}
	if (rc != SQLITE_DONE)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return out;
}

static size_t nlines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static long long scalar(sqlite3 *db, const char *q)
{
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* The files the last finished scan skipped (atel_log_stats()). */
static long long last_skipped(sqlite3 *db)
{
	return scalar(db, "SELECT json_extract(atel_log_stats(), '$.files_skipped')");
}

/* The log's rows equal the full index's for WHERE w, from the table with
 * the rows cache (temp.telemetry_metrics, answering from memory once it has
 * read the log) and from the one without (temp.nc: files and summaries),
 * queried last so that atel_log_stats() is its scan's. @return how many. */
static size_t same(struct world *w, const char *where)
{
	static const char *const tables[] = { "temp.telemetry_metrics", "temp.nc" };
	char q1[1024], q2[1024];

	snprintf(q1, sizeof(q1), "SELECT * FROM main.telemetry_metrics WHERE %s ORDER BY id", where);
	char *a = dump(w->db_, q1);
	for (int t = 0; t < 2; t++) {
		snprintf(q2, sizeof(q2), "SELECT * FROM %s WHERE %s", tables[t], where); /* in id order */
		char *b = dump(w->db_, q2);
		if (strcmp(a, b) != 0)
			fail_msg("%s WHERE %s: the log's %zu rows differ from the full index's %zu", tables[t], where,
				 nlines(b), nlines(a));
		free(b);
	}
	size_t n = nlines(a);
	free(a);
	return n;
}

static void file_ranges(struct world *w)
{
	uint64_t *seqs = NULL;
	int n = atel__seg_list(w->seg, &seqs);

	print_message("%d segment files\n", n);
	if (n < 6 || n > MAXF)
		fail_msg("%d segment files", n);
	w->nfiles = n;
	for (int i = 0; i < n; i++) {
		char p[700];
		struct atel_log_reader_opts o = { .single_file = p };
		struct atel_log_reader *r = NULL;
		struct atel_event ev;

		snprintf(p, sizeof(p), "%s/%016" PRIx64 ATEL_SEG_SUFFIX, w->seg, seqs[i]);
		w->seqs[i] = seqs[i];
		w->fmin[i] = UINT64_MAX;
		w->fmax[i] = 0;
		assert_int_equal(atel__log_open(&r, &o), 0);
		while (atel__log_next(r, &ev, NULL) == 1) {
			if (ev.kind != ATEL_EV_SAMPLE)
				continue;
			if (ev.ts_ns < w->fmin[i])
				w->fmin[i] = ev.ts_ns;
			if (ev.ts_ns > w->fmax[i])
				w->fmax[i] = ev.ts_ns;
		}
		atel__log_close(r);
	}
	free(seqs);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct atel_synth a[3], g, x, *sp[5] = { &a[0], &a[1], &a[2], &g, &x };
	/* a flush after each round: files rotate at the same records every run
	 * (7 files); without it the size check follows write completions, and
	 * under load the count fell to 5 */
	struct atel_synth_log_opts lo = { .batch = 512, .rotate_bytes = 24 << 10, .frame_bytes = 64 << 10,
					  .flush_each_round = true, .encoding = ATEL_SEG_ENC_COLUMNS };
	char err[256];
	int nv = 0;

	assert_non_null(w);
	assert_int_equal(atel_synth_tmpdir(w->dir, sizeof(w->dir), "logvtab"), 0);
	snprintf(w->seg, sizeof(w->seg), "%s/segments", w->dir);
	snprintf(w->db, sizeof(w->db), "%s/full.db", w->dir);
	for (int i = 0; i < 3; i++) {
		atel_synth_init(&a[i], (uint32_t)i, 1, 100 + i, 200 + i, T0_NS);
		atel_synth_begin(&a[i], "agent");
		atel_synth_agent_workload(&a[i], 11 + (uint64_t)i, 12000, 0);
	}
	/* ring 3: a gauge moved by adds (its value carries across files), a
	 * counter with NaN samples (no row), a histogram */
	atel_synth_init(&g, 3, 1, 300, 301, T0_NS);
	g.ts_step = 9000;
	atel_synth_begin(&g, "gauges");
	uint32_t ga = atel_synth_series(&g, ATEL_MT_GAUGE, "vt_gauge", 0, "k", "a", NULL);
	uint32_t cn = atel_synth_series(&g, ATEL_MT_COUNTER, "vt_nan", 0, "k", "a", NULL);
	static const double hb[] = { 1, 2, 4 };
	uint32_t hid = atel_synth_series(&g, ATEL_MT_HISTOGRAM, "vt_hist", atel_synth_bounds(&g, hb, 3), "k", "a",
					 NULL);
	atel_synth_sample(&g, ga, 10, true);
	for (int i = 0; i < 4000; i++) {
		atel_synth_sample(&g, ga, i % 997 == 0 ? 100 + i : 0.25 + (i % 3), i % 997 == 0);
		atel_synth_sample(&g, cn, i % 400 == 0 ? NAN : 1, false);
		atel_synth_sample(&g, hid, (double)(i % 7), false);
	}
	/* ring 4: vt_gauge{k="a"} again, as a counter: not the series' first type, no rows */
	atel_synth_init(&x, 4, 1, 400, 401, T0_NS + 5000);
	x.ts_step = 500000;
	atel_synth_begin(&x, "clash");
	uint32_t xc = atel_synth_series(&x, ATEL_MT_COUNTER, "vt_gauge", 0, "k", "a", NULL);
	for (int i = 0; i < 50; i++)
		atel_synth_sample(&x, xc, 1, false);
	assert_int_equal(atel_synth_write_log(w->seg, 0x5151, sp, 5, &lo), 0);
	for (int i = 0; i < 5; i++)
		atel_synth_free(sp[i]);
	file_ranges(w);

	assert_int_equal(atel__reindex_mode(w->seg, w->db, 0, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open_v2(w->db, &w->db_, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(atel__logvtab_register(w->db_), SQLITE_OK);
	if (atel__logvtab_shadow(w->db_, w->dir, &nv, err, sizeof(err)) != 0)
		fail_msg("shadow: %s", err);
	assert_int_equal(nv, 5); /* the five views that read telemetry_metrics */
	char sql[800];
	snprintf(sql, sizeof(sql), "CREATE VIRTUAL TABLE temp.nc USING atel_log('%s', 'cache_rows=0')", w->dir);
	assert_int_equal(sqlite3_exec(w->db_, sql, NULL, NULL, NULL), SQLITE_OK);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	if (!w)
		return 0;
	sqlite3_close(w->db_);
	atel_synth_rmtree(w->dir);
	free(w);
	return 0;
}

/* Every row, in id order, equals the full index's: the first scan reads every file. */
static void test_all_rows(void **state)
{
	struct world *w = *state;
	size_t n = same(w, "1");

	assert_true(n > 36000);
	assert_int_equal(last_skipped(w->db_), 0);
	/* the table with a cache answers from it now, the other does not */
	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics"), (long long)n);
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 1);
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.files_read')"), 0);
	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM temp.nc"), (long long)n);
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 0);
	/* a log with more rows than the cache takes: no cache, the same rows */
	char sql[800];
	snprintf(sql, sizeof(sql), "CREATE VIRTUAL TABLE temp.small USING atel_log('%s', 'cache_rows=1000')", w->dir);
	assert_int_equal(sqlite3_exec(w->db_, sql, NULL, NULL, NULL), SQLITE_OK);
	for (int i = 0; i < 2; i++) {
		char *a = dump(w->db_, "SELECT * FROM main.telemetry_metrics WHERE name = 'vt_gauge' ORDER BY id");
		char *b = dump(w->db_, "SELECT * FROM temp.small WHERE name = 'vt_gauge'");
		assert_string_equal(a, b);
		free(a);
		free(b);
		assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 0);
	}
	assert_int_equal(sqlite3_exec(w->db_, "DROP TABLE temp.small", NULL, NULL, NULL), SQLITE_OK);
	/* a bad option */
	assert_int_not_equal(sqlite3_exec(w->db_, "CREATE VIRTUAL TABLE temp.bad USING atel_log('/', 'cache=1')", NULL,
					  NULL, NULL),
			     SQLITE_OK);
	/* the workload has what the rules are about */
	assert_true(scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics WHERE name = 'vt_gauge' AND op = 'add'") >
		    3000);
	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics WHERE name = 'vt_nan'"), 3990);
	assert_int_equal(scalar(w->db_, "SELECT count(DISTINCT metric_type) FROM temp.telemetry_metrics"), 3);
	/* and the same again, now from the summaries where it can */
	assert_int_equal(same(w, "1"), n);
}

static void test_time_pushdown(void **state)
{
	struct world *w = *state;
	char q[512];
	size_t total;

	total = same(w, "1"); /* every file read: summaries of all but the newest */
	for (int k = 1; k + 1 < w->nfiles; k++) {
		uint64_t lo = w->fmin[k], hi = w->fmax[k], prev_hi = w->fmax[k - 1], next_lo = w->fmin[k + 1];
		size_t n;

		snprintf(q, sizeof(q), "ts_ns >= %" PRIu64, lo);
		n = same(w, q);
		assert_true(n > 0 && n < total);
		if (k >= 2 && prev_hi < lo)
			assert_true(last_skipped(w->db_) >= 1);
		snprintf(q, sizeof(q), "ts_ns > %" PRIu64, prev_hi);
		same(w, q);
		snprintf(q, sizeof(q), "ts_ns <= %" PRIu64, hi);
		n = same(w, q);
		assert_true(n > 0);
		snprintf(q, sizeof(q), "ts_ns < %" PRIu64, next_lo);
		same(w, q);
		snprintf(q, sizeof(q), "ts_ns BETWEEN %" PRIu64 " AND %" PRIu64, lo, hi);
		n = same(w, q);
		assert_true(n > 0);
		if (k >= 2 && prev_hi < lo)
			assert_true(last_skipped(w->db_) >= 1);
		snprintf(q, sizeof(q), "ts_ns = %" PRIu64, lo);
		assert_true(same(w, q) >= 1);
		snprintf(q, sizeof(q), "ts_ns = %" PRIu64, hi);
		assert_true(same(w, q) >= 1);
		/* the gauge's running value over the skipped files */
		snprintf(q, sizeof(q), "name = 'vt_gauge' AND ts_ns >= %" PRIu64, lo);
		assert_true(same(w, q) > 0);
		/* a real number as the bound */
		snprintf(q, sizeof(q), "ts_ns > %" PRIu64 ".5 AND ts_ns < %" PRIu64 ".0", lo, hi);
		same(w, q);
	}
	/* the middle file alone: the files before and after it are skipped */
	int k = w->nfiles / 2;
	snprintf(q, sizeof(q), "ts_ns BETWEEN %" PRIu64 " AND %" PRIu64, w->fmin[k], w->fmax[k]);
	same(w, q);
	if (w->fmax[k - 2] < w->fmin[k])
		assert_true(last_skipped(w->db_) >= k - 1);
	/* past every row, before every row */
	uint64_t last = 0;
	for (int i = 0; i < w->nfiles; i++)
		last = w->fmax[i] > last ? w->fmax[i] : last; /* the newest file may be empty */
	snprintf(q, sizeof(q), "ts_ns > %" PRIu64, last);
	assert_int_equal(same(w, q), 0);
	assert_int_equal(same(w, "ts_ns < 5"), 0);
	same(w, "ts_ns > 'text'"); /* a text bound prunes nothing, SQLite decides */
}

static void test_name_and_id_pushdown(void **state)
{
	struct world *w = *state;
	size_t total = same(w, "1");
	long long n;

	assert_true(same(w, "name = 'vt_gauge'") > 3000);
	assert_true(same(w, "name = 'tool_calls_total'") > 1000);
	assert_true(same(w, "name IN ('vt_hist', 'agent_execution_total')") > 4000);
	assert_true(same(w, "name IN ('vt_hist') AND name = 'vt_hist'") > 3000);
	assert_int_equal(same(w, "name = 'vt_hist' AND name = 'vt_gauge'"), 0);
	/* no such name: every summarised file is skipped */
	assert_int_equal(same(w, "name = 'no_such_metric'"), 0);
	assert_int_equal(last_skipped(w->db_), w->nfiles - 1);
	assert_int_equal(same(w, "name = 5"), 0);
	/* ids: the row's place in the log, as the full index numbers it */
	n = (long long)total;
	char q[256];
	snprintf(q, sizeof(q), "id = %lld", n / 2);
	assert_int_equal(same(w, q), 1);
	assert_true(last_skipped(w->db_) >= 1);
	snprintf(q, sizeof(q), "rowid = %lld", n);
	assert_int_equal(same(w, q), 1);
	snprintf(q, sizeof(q), "id > %lld", n - 10);
	assert_int_equal(same(w, q), 10);
	snprintf(q, sizeof(q), "id BETWEEN %lld AND %lld", n / 3, n / 3 + 99);
	assert_int_equal(same(w, q), 100);
	assert_int_equal(same(w, "id < 1"), 0);
	assert_int_equal(same(w, "id = 0.5"), 0);
	snprintf(q, sizeof(q), "name = 'vt_gauge' AND id > %lld AND ts_ns >= %" PRIu64, n / 2, w->fmin[2]);
	same(w, q);
}

static void test_views(void **state)
{
	struct world *w = *state;
	static const char *const views[] = { "v_recent_metrics", "v_agent_performance", "v_tool_usage",
					     "v_context_utilization", "v_error_rate" };

	for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		char q1[256], q2[256];
		snprintf(q1, sizeof(q1), "SELECT * FROM main.%s ORDER BY 1, 2", views[i]);
		snprintf(q2, sizeof(q2), "SELECT * FROM %s ORDER BY 1, 2", views[i]); /* temp first */
		char *a = dump(w->db_, q1), *b = dump(w->db_, q2);
		assert_string_equal(a, b);
		if (i < 4)
			assert_true(strlen(a) > 10);
		free(a);
		free(b);
	}
	/* the views in temp read the log: main's telemetry_metrics is not involved */
	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM sqlite_temp_schema WHERE type = 'view'"), 5);
}

/* The log grows (ateld appends) while a statement reads the table: scans
 * inside that statement (another cursor of the table is open) keep the
 * cached log as the statement's first scan saw it; the next statement
 * sees the new rows. */
static void test_growth_within_statement(void **state)
{
	struct world *w = *state;
	struct atel_synth n, *sp[1] = { &n };
	sqlite3_stmt *outer = NULL;
	long long before, after;

	before = scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics");
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 1);
	assert_int_equal(sqlite3_prepare_v2(w->db_, "SELECT id FROM temp.telemetry_metrics", -1, &outer, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(outer), SQLITE_ROW); /* a statement in progress */

	atel_synth_init(&n, 7, 1, 700, 701, T0_NS + 3000000000ull);
	atel_synth_begin(&n, "late");
	uint32_t c = atel_synth_series(&n, ATEL_MT_COUNTER, "vt_late", 0, NULL);
	for (int i = 0; i < 100; i++)
		atel_synth_sample(&n, c, 1, false);
	assert_int_equal(atel_synth_write_log(w->seg, 0x6262, sp, 1, NULL), 0);
	atel_synth_free(&n);

	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics"), before);
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 1);
	sqlite3_finalize(outer);
	after = scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics");
	assert_int_equal(after, before + 100);
	assert_int_equal(scalar(w->db_, "SELECT json_extract(atel_log_stats(), '$.cached')"), 0); /* read again */
	assert_int_equal(scalar(w->db_, "SELECT max(id) FROM temp.telemetry_metrics WHERE name = 'vt_late'"), after);
	assert_int_equal(scalar(w->db_, "SELECT count(*) FROM temp.nc"), after);
}

/* A file deleted under the table (retention): the summaries are dropped,
 * and the answers are a fresh table's over the files left. */
static void test_oldest_file_deleted(void **state)
{
	struct world *w = *state;
	char p[700], *a, *b;

	/* both tables have read the log (summaries, cache) before the file goes */
	assert_true(scalar(w->db_, "SELECT count(*) FROM temp.telemetry_metrics") ==
		    scalar(w->db_, "SELECT count(*) FROM temp.nc"));
	snprintf(p, sizeof(p), "%s/%016" PRIx64 ATEL_SEG_SUFFIX, w->seg, w->seqs[0]);
	assert_int_equal(unlink(p), 0);
	char sql[800];
	snprintf(sql, sizeof(sql), "CREATE VIRTUAL TABLE temp.fresh USING atel_log('%s')", w->dir);
	assert_int_equal(sqlite3_exec(w->db_, sql, NULL, NULL, NULL), SQLITE_OK);
	for (int round = 0; round < 4; round++) {
		char q1[256], q2[256];
		snprintf(q1, sizeof(q1), "SELECT * FROM %s WHERE ts_ns >= %" PRIu64,
			 round % 2 ? "temp.nc" : "temp.telemetry_metrics", w->fmin[2]);
		snprintf(q2, sizeof(q2), "SELECT * FROM temp.fresh WHERE ts_ns >= %" PRIu64, w->fmin[2]);
		a = dump(w->db_, q1);
		b = dump(w->db_, q2);
		assert_string_equal(a, b);
		assert_true(strlen(a) > 0);
		free(a);
		free(b);
	}
	/* ids number the rows of the files still there */
	assert_int_equal(scalar(w->db_, "SELECT min(id) FROM temp.telemetry_metrics"), 1);
	assert_int_equal(scalar(w->db_, "SELECT max(id) - count(*) FROM temp.telemetry_metrics"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_rows),
		cmocka_unit_test(test_time_pushdown),
		cmocka_unit_test(test_name_and_id_pushdown),
		cmocka_unit_test(test_views),
		cmocka_unit_test(test_growth_within_statement),
		cmocka_unit_test(test_oldest_file_deleted),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
