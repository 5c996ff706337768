/* SPDX-License-Identifier: MIT */
/*
 * logshadow tests (consumer/index/logshadow.h): the log read into a full
 * index in memory, for the web view and `atel top` on a compact index. On a
 * realistic workload (metrics of the reference catalog, span trees) its rows
 * must be exactly those of `atel reindex --mode full` over the same log:
 * in one sync, and in many syncs each cut short by the interrupt (the cursor
 * resumes without losing or repeating an event). min_ns skips older samples
 * only; the memory cap fails with -ENOSPC, and stays failed; no log is -ENOENT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "atel_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "index.h"
#include "logshadow.h"
#include "synth.h"

#define T0_NS 1700000000000000000ull

static const char *const queries[] = {
	"SELECT COUNT(*), TOTAL(value), MIN(ts_ns), MAX(ts_ns), COUNT(DISTINCT series_hash), COUNT(DISTINCT pid) "
	"FROM telemetry_metrics",
	"SELECT name, labels, metric_type, samples, last_value, first_ns, last_ns FROM telemetry_series "
	"ORDER BY name, labels",
	"SELECT trace_id, span_id, parent_span_id, name, start_ns, end_ns, status_code, attributes FROM telemetry_spans "
	"ORDER BY trace_id, span_id",
	"SELECT trace_id, span_id, ts_ns, name FROM telemetry_span_events ORDER BY trace_id, span_id, ts_ns, name",
};

/* Every row of q as text, "|" between columns, "\n" between rows (malloc'd). */
static char *dump(sqlite3 *db, const char *q)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	out[0] = 0;
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
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
	sqlite3_finalize(st);
	return out;
}

static void same_rows(sqlite3 *a, sqlite3 *b)
{
	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
		char *x = dump(a, queries[i]), *y = dump(b, queries[i]);
		assert_true(strlen(x) > 10); /* the workload has rows of every kind */
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
}

static int always(void *arg)
{
	(*(unsigned *)arg)++;
	return 1;
}

struct world {
	char dir[512], seg[600], db[600];
	sqlite3 *ref; /* atel reindex --mode full over the log */
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct atel_synth s, *sp[1] = { &s };
	char err[256];

	assert_non_null(w);
	assert_int_equal(atel_synth_tmpdir(w->dir, sizeof(w->dir), "logshadow"), 0);
	snprintf(w->seg, sizeof(w->seg), "%s/segments", w->dir);
	snprintf(w->db, sizeof(w->db), "%s/telemetry.db", w->dir);
	atel_synth_init(&s, 0, 1, 10, 11, T0_NS);
	atel_synth_agent_workload(&s, 7, 30000, 40);
	assert_int_equal(atel_synth_write_log(w->seg, 0x77, sp, 1, NULL), 0);
	atel_synth_free(&s);
	assert_int_equal(atel__reindex_mode(w->seg, w->db, 0, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_open_v2(w->db, &w->ref, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	sqlite3_close(w->ref);
	atel_synth_rmtree(w->dir);
	free(w);
	return 0;
}

static void test_equals_full_reindex(void **state)
{
	struct world *w = *state;
	struct atel_logshadow *s = NULL;
	char err[256];

	assert_int_equal(atel__logshadow_open(&s, w->seg, 1ull << 30, err, sizeof(err)), 0);
	assert_int_equal(atel__logshadow_sync(s, 0, NULL, NULL, err, sizeof(err)), 0);
	same_rows(w->ref, atel__logshadow_db(s));
	/* nothing appended: a second sync changes nothing */
	assert_int_equal(atel__logshadow_sync(s, 0, NULL, NULL, err, sizeof(err)), 0);
	same_rows(w->ref, atel__logshadow_db(s));
	atel__logshadow_close(s);
}

static void test_interrupted_syncs_resume(void **state)
{
	struct world *w = *state;
	struct atel_logshadow *s = NULL;
	unsigned asked = 0, syncs = 0;
	char err[256];
	int rc;

	assert_int_equal(atel__logshadow_open(&s, w->seg, 1ull << 30, err, sizeof(err)), 0);
	while ((rc = atel__logshadow_sync(s, 0, always, &asked, err, sizeof(err))) == -EINTR)
		syncs++;
	assert_int_equal(rc, 0);
	assert_true(syncs >= 5); /* the log has many times 4096 events: it was really cut */
	same_rows(w->ref, atel__logshadow_db(s));
	atel__logshadow_close(s);
}

static void test_min_ns_skips_old_samples(void **state)
{
	struct world *w = *state;
	struct atel_logshadow *s = NULL;
	sqlite3_stmt *st;
	char err[256], *x, *y, q[256];
	uint64_t mid;

	assert_int_equal(sqlite3_prepare_v2(w->ref, "SELECT (MIN(ts_ns) + MAX(ts_ns)) / 2 FROM telemetry_metrics", -1,
					    &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	mid = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	assert_int_equal(atel__logshadow_open(&s, w->seg, 1ull << 30, err, sizeof(err)), 0);
	assert_int_equal(atel__logshadow_sync(s, mid, NULL, NULL, err, sizeof(err)), 0);
	snprintf(q, sizeof(q), "SELECT name, COUNT(*), TOTAL(value) FROM telemetry_metrics WHERE ts_ns >= %llu "
		 "GROUP BY name ORDER BY name", (unsigned long long)mid);
	x = dump(w->ref, q);
	y = dump(atel__logshadow_db(s), q);
	assert_true(strlen(x) > 10);
	assert_string_equal(x, y);
	free(x);
	free(y);
	snprintf(q, sizeof(q), "SELECT COUNT(*) FROM telemetry_metrics WHERE ts_ns < %llu", (unsigned long long)mid);
	x = dump(atel__logshadow_db(s), q);
	assert_string_equal(x, "0\n");
	free(x);
	/* spans are not samples: all of them */
	x = dump(w->ref, queries[2]);
	y = dump(atel__logshadow_db(s), queries[2]);
	assert_string_equal(x, y);
	free(x);
	free(y);
	atel__logshadow_close(s);
}

static void test_cap_and_no_log(void **state)
{
	struct world *w = *state;
	struct atel_logshadow *s = NULL;
	char err[256], nolog[700];

	assert_int_equal(atel__logshadow_open(&s, w->seg, 256 << 10, err, sizeof(err)), 0);
	assert_int_equal(atel__logshadow_sync(s, 0, NULL, NULL, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "outgrew"));
	assert_int_equal(atel__logshadow_sync(s, 0, NULL, NULL, err, sizeof(err)), -ENOSPC);
	atel__logshadow_close(s);

	snprintf(nolog, sizeof(nolog), "%s/no-such-dir", w->dir);
	assert_int_equal(atel__logshadow_open(&s, nolog, 1 << 20, err, sizeof(err)), 0);
	assert_int_equal(atel__logshadow_sync(s, 0, NULL, NULL, err, sizeof(err)), -ENOENT);
	atel__logshadow_close(s);
	atel__logshadow_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equals_full_reindex),
		cmocka_unit_test(test_interrupted_syncs_resume),
		cmocka_unit_test(test_min_ns_skips_old_samples),
		cmocka_unit_test(test_cap_and_no_log),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
