/* SPDX-License-Identifier: MIT */
/*
 * writer.c - the index writer (index.h): decoded log events into the rows of
 * schema/telemetry.sql (docs/schema.md), the log cursor committed in the
 * same transaction, rollups, retention. ateld's indexer thread
 * (consumer/indexer.c) and atel__reindex (reindex.c) drive it.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "buf.h"
#include "index.h"
#include "metricrow.h"
#include "ring.h"
#include "util.h"

extern const char atel__schema_sql[];

#define SCHEMA_VERSION "1"

/* ---- compact JSON text ---------------------------------------------------
 * Hand-written rather than cJSON: labels and attributes must be byte-stable
 * (sorted keys, no spaces, shortest round-trip doubles, 64-bit integers kept
 * exact), and this runs once per event on the indexer's hot path. Strings go
 * through the helpers room's JSON writer (buf.h). */

/* A double as JSON: the shortest round-trip text (util.h); with force_real a
 * ".0" keeps an integral double typed as real in SQLite's json functions. */
static void jb_double(struct atel_buf *b, double v, bool force_real)
{
	char tmp[ATEL_FMT_DOUBLE_MAX];
	size_t n;

	if (isnan(v)) {
		atel__buf_puts(b, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		atel__buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	n = atel__fmt_double(tmp, v);
	atel__buf_put(b, tmp, n);
	if (force_real && !strpbrk(tmp, ".eE"))
		atel__buf_put(b, ".0", 2);
}

static void jb_attr_value(struct atel_buf *b, const struct atel_attr_value *v)
{
	char tmp[32];

	switch (v->vtype) {
	case ATEL_VT_STR:
		atel__json_strn(b, v->s ? v->s : "", v->s ? v->slen : 0);
		break;
	case ATEL_VT_INT:
		snprintf(tmp, sizeof(tmp), "%" PRId64, v->i);
		atel__buf_puts(b, tmp);
		break;
	case ATEL_VT_DOUBLE:
		jb_double(b, v->d, true);
		break;
	case ATEL_VT_BOOL:
		atel__buf_puts(b, v->b ? "true" : "false");
		break;
	default:
		atel__buf_puts(b, "null");
		break;
	}
}

/* Parses a JSON array of numbers ("[1,2.5]") into out[0..max). @return count or -1. */
static int parse_num_array(const char *s, double *out, int max)
{
	int n = 0;
	char *end;

	if (!s)
		return -1;
	while (*s == ' ')
		s++;
	if (*s++ != '[')
		return -1;
	while (*s == ' ')
		s++;
	if (*s == ']')
		return 0;
	for (;;) {
		double v = strtod(s, &end);

		if (end == s || n >= max)
			return -1;
		out[n++] = v;
		s = end;
		while (*s == ' ')
			s++;
		if (*s == ']')
			return n;
		if (*s++ != ',')
			return -1;
	}
}

/* ---- the writer ----------------------------------------------------------- */

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_METRIC,
	ST_SERIES_GET,
	ST_SERIES_PUT,
	ST_AGG_GET,
	ST_AGG_PUT,
	ST_SPAN_START,
	ST_SPAN_END,
	ST_SPAN_ATTR,
	ST_SPAN_ERROR,
	ST_EVENT,
	ST_EVENT_ATTR,
	ST_DEATH,
	ST_LOSS,
	ST_EXPORT,
	ST_CURSOR_GET,
	ST_CURSOR_PUT,
	ST_DATA_VERSION,
	ST_SEGMENT_PUT,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_METRIC] = "INSERT INTO telemetry_metrics(ts_ns, name, labels, series_hash, metric_type, value, op, pid, "
		      "ring, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	[ST_SERIES_GET] = "SELECT name, labels, metric_type, bounds, first_ns, last_ns, samples, last_value "
			  "FROM telemetry_series WHERE series_hash = ?1",
	[ST_SERIES_PUT] = "INSERT OR REPLACE INTO telemetry_series(series_hash, name, labels, metric_type, bounds, "
			  "first_ns, last_ns, samples, last_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_AGG_GET] = "SELECT count, sum, min, max, last, buckets, last_ns FROM telemetry_aggregates "
		       "WHERE series_hash = ?1 AND interval_s = ?2 AND bucket_start_ns = ?3",
	[ST_AGG_PUT] = "INSERT OR REPLACE INTO telemetry_aggregates(name, labels, series_hash, metric_type, "
		       "bucket_start_ns, interval_s, count, sum, min, max, last, bounds, buckets, last_ns) "
		       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[ST_SPAN_START] = "INSERT INTO telemetry_spans(trace_id, span_id, parent_span_id, name, kind, start_ns, pid, "
			  "tid, ring, generation, service, trace_flags) "
			  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
			  "ON CONFLICT(trace_id, span_id) DO UPDATE SET parent_span_id = excluded.parent_span_id, "
			  "name = excluded.name, kind = excluded.kind, start_ns = excluded.start_ns, "
			  "pid = excluded.pid, tid = excluded.tid, ring = excluded.ring, "
			  "generation = excluded.generation, service = excluded.service, "
			  "trace_flags = excluded.trace_flags",
	/* status: ERROR wins; a message comes with the status that wins */
	[ST_SPAN_END] = "INSERT INTO telemetry_spans(trace_id, span_id, name, kind, end_ns, status_code, "
			"status_message, pid, tid, ring, generation, service) "
			"VALUES (?1, ?2, '', 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
			"ON CONFLICT(trace_id, span_id) DO UPDATE SET end_ns = excluded.end_ns, "
			"status_message = CASE WHEN excluded.status_code >= status_code "
			"THEN coalesce(excluded.status_message, status_message) ELSE status_message END, "
			"status_code = max(status_code, excluded.status_code)",
	[ST_SPAN_ATTR] = "INSERT INTO telemetry_spans(trace_id, span_id, name, kind, attributes, pid, tid, ring, "
			 "generation, service) VALUES (?1, ?2, '', 0, ?3, ?4, ?5, ?6, ?7, ?8) "
			 "ON CONFLICT(trace_id, span_id) DO UPDATE SET "
			 "attributes = json_patch(attributes, excluded.attributes)",
	[ST_SPAN_ERROR] = "INSERT INTO telemetry_spans(trace_id, span_id, name, kind, status_code, status_message, "
			  "pid, tid, ring, generation, service) VALUES (?1, ?2, '', 0, 2, ?3, ?4, ?5, ?6, ?7, ?8) "
			  "ON CONFLICT(trace_id, span_id) DO UPDATE SET "
			  "status_message = CASE WHEN status_code < 2 OR status_message IS NULL "
			  "THEN excluded.status_message ELSE status_message END, status_code = 2",
	[ST_EVENT] = "INSERT INTO telemetry_span_events(trace_id, span_id, ts_ns, name, attributes) "
		     "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_EVENT_ATTR] = "UPDATE telemetry_span_events SET attributes = json_patch(attributes, ?3) "
			  "WHERE id = (SELECT max(id) FROM telemetry_span_events WHERE trace_id = ?1 AND span_id = ?2)",
	[ST_DEATH] = "UPDATE telemetry_spans SET end_ns = ?1, status_code = 2, status_message = 'producer exited' "
		     "WHERE ring = ?2 AND generation = ?3 AND end_ns IS NULL AND (?4 IS NULL OR pid IS ?4)",
	[ST_LOSS] = "INSERT INTO telemetry_losses(ts_ns, ring, generation, pid, cause, count, first_ns, last_ns) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_EXPORT] = "INSERT INTO telemetry_exports(ts_ns, exporter, signal, items, bytes, status, error) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_CURSOR_GET] = "SELECT file_seq, frame_off, rec_idx, events FROM telemetry_index_cursor WHERE id = 1",
	[ST_CURSOR_PUT] = "UPDATE telemetry_index_cursor SET file_seq = ?1, frame_off = ?2, rec_idx = ?3, "
			  "events = events + ?4, updated_ns = ?5 WHERE id = 1",
	[ST_DATA_VERSION] = "PRAGMA data_version",
	[ST_SEGMENT_PUT] = "INSERT INTO telemetry_segments(file_seq, first_ns, last_ns, samples, spans) "
			   "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(file_seq) DO UPDATE SET "
			   "first_ns = min(coalesce(first_ns, excluded.first_ns), excluded.first_ns), "
			   "last_ns = max(coalesce(last_ns, excluded.last_ns), excluded.last_ns), "
			   "samples = samples + excluded.samples, spans = spans + excluded.spans",
};

/* A metric series as the index knows it: the catalog row, and the rollup
 * bucket currently being filled. Names and labels are those of the first
 * definition seen for the series hash (in log order, so reindex agrees). */
struct ix_series {
	uint64_t hash;
	char *name, *labels, *bounds_json;
	uint8_t mtype;
	uint32_t nbounds;
	double *bounds;
	uint64_t first_ns, last_ns, samples;
	double last_value;
	bool dirty;                 /* telemetry_series row to write at commit */
	bool queued;                /* on the dirty list */
	bool have_bucket, bucket_dirty;
	int64_t bstart;
	uint64_t bcount, blast_ns;
	double bsum, bmin, bmax, blast;
	uint64_t *bcounts;          /* nbounds + 1, the last is +Inf */
};

struct atel_ixw {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	uint32_t interval_s;
	bool txn;
	bool compact;                       /* index.mode compact: no raw sample/span rows */
	char mode_note[200];                /* a mode change at open, for the daemon's log */
	uint64_t seg_samples, seg_spans;    /* pending telemetry_segments counts */
	uint64_t seg_first, seg_last;
	/* series cache: open addressing on the hash */
	struct ix_series **slots;
	uint32_t cap, nseries;
	struct ix_series **dirty;
	uint32_t ndirty, dirty_cap;
	uint64_t rows, events;              /* committed */
	uint64_t rows_pending, events_pending;
	uint64_t skipped, type_clashes;
	int64_t data_version;               /* changes when another connection commits */
	struct atel_buf jb, jb2;
	char errmsg[256];
};

static int sqlerr(struct atel_ixw *w, int rc)
{
	snprintf(w->errmsg, sizeof(w->errmsg), "%s", sqlite3_errmsg(w->db));
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* Runs a prepared statement that returns no rows; counts changed rows. */
static int step_done(struct atel_ixw *w, sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return sqlerr(w, rc);
	w->rows_pending += (uint64_t)sqlite3_changes(w->db);
	return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* 0 (unknown) binds NULL */
static void bind_id(sqlite3_stmt *s, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

static void series_free(struct ix_series *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->labels);
	free(s->bounds_json);
	free(s->bounds);
	free(s->bcounts);
	free(s);
}

static void cache_clear(struct atel_ixw *w)
{
	for (uint32_t i = 0; i < w->cap; i++) {
		series_free(w->slots[i]);
		w->slots[i] = NULL;
	}
	w->nseries = 0;
	w->ndirty = 0;
}

static uint32_t slot_of(const struct atel_ixw *w, uint64_t hash)
{
	uint64_t h = hash * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(h >> 32) & (w->cap - 1);
}

static struct ix_series *cache_find(const struct atel_ixw *w, uint64_t hash)
{
	if (!w->cap)
		return NULL;
	for (uint32_t i = slot_of(w, hash);; i = (i + 1) & (w->cap - 1)) {
		if (!w->slots[i])
			return NULL;
		if (w->slots[i]->hash == hash)
			return w->slots[i];
	}
}

static int cache_insert(struct atel_ixw *w, struct ix_series *s)
{
	if ((w->nseries + 1) * 2 > w->cap) { /* keep the load under 1/2 */
		uint32_t ncap = w->cap ? w->cap * 2 : 1024;
		struct ix_series **old = w->slots, **ns = calloc(ncap, sizeof(*ns));
		uint32_t ocap = w->cap;

		if (!ns)
			return -ENOMEM;
		w->slots = ns;
		w->cap = ncap;
		for (uint32_t i = 0; i < ocap; i++) {
			if (!old[i])
				continue;
			uint32_t j = slot_of(w, old[i]->hash);

			while (w->slots[j])
				j = (j + 1) & (w->cap - 1);
			w->slots[j] = old[i];
		}
		free(old);
	}
	uint32_t j = slot_of(w, s->hash);

	while (w->slots[j])
		j = (j + 1) & (w->cap - 1);
	w->slots[j] = s;
	w->nseries++;
	return 0;
}

static int mark_dirty(struct atel_ixw *w, struct ix_series *s)
{
	if (s->queued)
		return 0;
	if (w->ndirty == w->dirty_cap) {
		uint32_t ncap = w->dirty_cap ? w->dirty_cap * 2 : 256;
		struct ix_series **nd = realloc(w->dirty, ncap * sizeof(*nd));

		if (!nd)
			return -ENOMEM;
		w->dirty = nd;
		w->dirty_cap = ncap;
	}
	w->dirty[w->ndirty++] = s;
	s->queued = true;
	return 0;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static int bounds_json(struct atel_buf *b, const double *bounds, uint32_t n)
{
	atel__buf_reset(b);
	atel__buf_put(b, "[", 1);
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			atel__buf_put(b, ",", 1);
		jb_double(b, bounds[i], false);
	}
	atel__buf_put(b, "]", 1);
	return b->oom ? -ENOMEM : 0;
}

/* Builds a cache entry from a decoder definition. */
static int series_from_def(struct atel_ixw *w, const struct atel_dec_series *ds, struct ix_series *s)
{
	struct atel_buf *b = &w->jb;

	if (atel__mrow_labels_json(b, ds)) /* the same text as the log's virtual table (logvtab.c) */
		return -ENOMEM;
	s->labels = strdup(b->data);
	s->name = xstrdup(ds->name);
	s->mtype = ds->mtype;
	if (!s->labels || !s->name)
		return -ENOMEM;
	if (ds->mtype == ATEL_MT_HISTOGRAM) {
		s->nbounds = ds->nbounds > ATEL_BOUNDS_MAX ? ATEL_BOUNDS_MAX : ds->nbounds;
		if (s->nbounds) {
			s->bounds = malloc(s->nbounds * sizeof(double));
			if (!s->bounds)
				return -ENOMEM;
			memcpy(s->bounds, ds->bounds, s->nbounds * sizeof(double));
		}
		if (bounds_json(b, s->bounds, s->nbounds) || !(s->bounds_json = strdup(b->data)))
			return -ENOMEM;
	}
	return 0;
}

/* Finds the series in the cache, else in telemetry_series, else defines it. */
static int series_get(struct atel_ixw *w, const struct atel_dec_series *ds, struct ix_series **out)
{
	struct ix_series *s = cache_find(w, ds->key_hash);
	sqlite3_stmt *st = w->st[ST_SERIES_GET];
	int rc;

	if (s) {
		*out = s;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->hash = ds->key_hash;
	sqlite3_bind_int64(st, 1, (int64_t)ds->key_hash);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *bj = (const char *)sqlite3_column_text(st, 3);

		s->name = xstrdup((const char *)sqlite3_column_text(st, 0));
		s->labels = xstrdup((const char *)sqlite3_column_text(st, 1));
		s->mtype = (uint8_t)atel__metric_type_of((const char *)sqlite3_column_text(st, 2));
		s->first_ns = (uint64_t)sqlite3_column_int64(st, 4);
		s->last_ns = (uint64_t)sqlite3_column_int64(st, 5);
		s->samples = (uint64_t)sqlite3_column_int64(st, 6);
		s->last_value = sqlite3_column_double(st, 7);
		rc = (!s->name || !s->labels) ? -ENOMEM : 0;
		if (!rc && bj) {
			double tmp[ATEL_BOUNDS_MAX];
			int n = parse_num_array(bj, tmp, (int)ATEL_BOUNDS_MAX);

			s->bounds_json = strdup(bj);
			if (n < 0)
				n = 0;
			s->nbounds = (uint32_t)n;
			s->bounds = malloc((size_t)(n ? n : 1) * sizeof(double));
			if (!s->bounds || !s->bounds_json)
				rc = -ENOMEM;
			else
				memcpy(s->bounds, tmp, (size_t)n * sizeof(double));
		}
	} else if (rc == SQLITE_DONE) {
		rc = series_from_def(w, ds, s);
	} else {
		rc = sqlerr(w, rc);
	}
	sqlite3_reset(st);
	if (!rc && s->mtype == ATEL_MT_HISTOGRAM) {
		s->bcounts = calloc(s->nbounds + 1, sizeof(uint64_t));
		if (!s->bcounts)
			rc = -ENOMEM;
	}
	if (!rc)
		rc = cache_insert(w, s);
	if (rc) {
		series_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static int agg_put(struct atel_ixw *w, struct ix_series *s)
{
	sqlite3_stmt *st = w->st[ST_AGG_PUT];
	struct atel_buf *b = &w->jb2;

	sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->labels, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)s->hash);
	sqlite3_bind_text(st, 4, atel__metric_type_name(s->mtype), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, s->bstart);
	sqlite3_bind_int64(st, 6, w->interval_s);
	sqlite3_bind_int64(st, 7, (int64_t)s->bcount);
	sqlite3_bind_double(st, 8, s->bsum);
	sqlite3_bind_double(st, 9, s->bmin);
	sqlite3_bind_double(st, 10, s->bmax);
	sqlite3_bind_double(st, 11, s->blast);
	if (s->mtype == ATEL_MT_HISTOGRAM) {
		char tmp[24];

		atel__buf_reset(b);
		atel__buf_put(b, "[", 1);
		for (uint32_t i = 0; i <= s->nbounds; i++) {
			snprintf(tmp, sizeof(tmp), "%s%" PRIu64, i ? "," : "", s->bcounts[i]);
			atel__buf_puts(b, tmp);
		}
		atel__buf_put(b, "]", 1);
		if (b->oom) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return -ENOMEM;
		}
		bind_text(st, 12, s->bounds_json);
		sqlite3_bind_text(st, 13, b->data, (int)b->len, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, 14, (int64_t)s->blast_ns);
	return step_done(w, st);
}

/* Makes bstart the series' current rollup bucket: writes the previous one
 * if it changed, loads the stored row for bstart if there is one. */
static int bucket_switch(struct atel_ixw *w, struct ix_series *s, int64_t bstart)
{
	sqlite3_stmt *st = w->st[ST_AGG_GET];
	int rc;

	if (s->have_bucket && s->bstart == bstart)
		return 0;
	if (s->have_bucket && s->bucket_dirty) {
		rc = agg_put(w, s);
		if (rc)
			return rc;
	}
	s->have_bucket = true;
	s->bucket_dirty = false;
	s->bstart = bstart;
	s->bcount = 0;
	s->bsum = 0;
	s->bmin = INFINITY;
	s->bmax = -INFINITY;
	s->blast = 0;
	s->blast_ns = 0;
	if (s->bcounts)
		memset(s->bcounts, 0, (s->nbounds + 1) * sizeof(uint64_t));
	sqlite3_bind_int64(st, 1, (int64_t)s->hash);
	sqlite3_bind_int64(st, 2, w->interval_s);
	sqlite3_bind_int64(st, 3, bstart);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		s->bcount = (uint64_t)sqlite3_column_int64(st, 0);
		s->bsum = sqlite3_column_double(st, 1);
		s->bmin = sqlite3_column_double(st, 2);
		s->bmax = sqlite3_column_double(st, 3);
		s->blast = sqlite3_column_double(st, 4);
		s->blast_ns = (uint64_t)sqlite3_column_int64(st, 6);
		if (s->bcounts) {
			double tmp[ATEL_BOUNDS_MAX + 1];
			int n = parse_num_array((const char *)sqlite3_column_text(st, 5), tmp,
						(int)ATEL_BOUNDS_MAX + 1);

			for (int i = 0; i < n && (uint32_t)i <= s->nbounds; i++)
				s->bcounts[i] = (uint64_t)tmp[i];
		}
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = sqlerr(w, rc);
	}
	sqlite3_reset(st);
	return rc;
}

static int apply_sample(struct atel_ixw *w, const struct atel_event *ev)
{
	const struct atel_dec_series *ds = ev->sample.series;
	struct ix_series *s;
	sqlite3_stmt *st = w->st[ST_METRIC];
	const char *op;
	double v = ev->sample.value, val;
	uint64_t interval_ns = (uint64_t)w->interval_s * 1000000000ull;
	int rc;

	if (!ds)
		return 0;
	if (ev->ts_ns <= INT64_MAX) {
		w->seg_samples++;
		if (!w->seg_first || ev->ts_ns < w->seg_first)
			w->seg_first = ev->ts_ns;
		if (ev->ts_ns > w->seg_last)
			w->seg_last = ev->ts_ns;
	}
	if (w->compact) /* the sample, its series and rollups stay in the log only */
		return 0;
	rc = series_get(w, ds, &s);
	if (rc)
		return rc;
	if (ds->mtype != s->mtype) { /* same name and labels, other type: ignored, as by the aggregates */
		w->type_clashes++;
		return 0;
	}
	switch (s->mtype) {
	case ATEL_MT_GAUGE:
		op = ev->sample.set ? "set" : "add";
		val = ev->sample.set ? v : (s->samples ? s->last_value : 0) + v;
		break;
	case ATEL_MT_HISTOGRAM:
		op = "observe";
		val = v;
		break;
	default:
		op = "add";
		val = v;
		break;
	}
	/* SQLite stores NaN as NULL: a NaN sample (or one that would make its
	 * rollup sum NaN, +Inf plus -Inf) cannot be indexed; it stays in the log. */
	if (isnan(val) || ev->ts_ns > INT64_MAX) {
		w->skipped++;
		return 0;
	}
	rc = bucket_switch(w, s, (int64_t)(ev->ts_ns - ev->ts_ns % interval_ns));
	if (rc)
		return rc;
	if (isnan(s->bsum + val)) {
		w->skipped++;
		return 0;
	}
	if (!w->compact) { /* compact: the raw sample stays in the log only */
		sqlite3_bind_int64(st, 1, (int64_t)ev->ts_ns);
		sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, s->labels, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (int64_t)s->hash);
		sqlite3_bind_text(st, 5, atel__metric_type_name(s->mtype), -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 6, val);
		sqlite3_bind_text(st, 7, op, -1, SQLITE_STATIC);
		bind_id(st, 8, ev->pid);
		sqlite3_bind_int64(st, 9, ev->ring);
		sqlite3_bind_int64(st, 10, (int64_t)ev->seq);
		rc = step_done(w, st);
		if (rc)
			return rc;
	}

	if (!s->samples || ev->ts_ns < s->first_ns)
		s->first_ns = ev->ts_ns;
	if (ev->ts_ns > s->last_ns)
		s->last_ns = ev->ts_ns;
	s->samples++;
	s->last_value = val;
	s->dirty = true;
	s->bcount++;
	s->bsum += val;
	if (val < s->bmin)
		s->bmin = val;
	if (val > s->bmax)
		s->bmax = val;
	s->blast = val;
	if (ev->ts_ns >= s->blast_ns)
		s->blast_ns = ev->ts_ns;
	if (s->bcounts) {
		uint32_t i = 0;

		while (i < s->nbounds && !(val <= s->bounds[i])) /* Prometheus `le` */
			i++;
		s->bcounts[i]++;
	}
	s->bucket_dirty = true;
	return mark_dirty(w, s);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Binds the producer columns (pid, tid, ring, generation, service) at first.. */
static void bind_producer(sqlite3_stmt *st, int first, const struct atel_event *ev)
{
	bind_id(st, first, ev->pid);
	bind_id(st, first + 1, ev->tid);
	sqlite3_bind_int64(st, first + 2, ev->ring);
	sqlite3_bind_int64(st, first + 3, ev->generation);
	if (ev->comm && ev->comm[0])
		sqlite3_bind_text(st, first + 4, ev->comm, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, first + 4);
}

static int apply_span(struct atel_ixw *w, const struct atel_event *ev)
{
	char tid[33], sid[17], pid[17];
	sqlite3_stmt *st;
	struct atel_buf *b = &w->jb;

	switch (ev->kind) {
	case ATEL_EV_SPAN_START:
		st = w->st[ST_SPAN_START];
		atel__hex(ev->span_start.trace_id, 16, tid);
		atel__hex(ev->span_start.span_id, 8, sid);
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		if (all_zero(ev->span_start.parent_id, 8)) {
			sqlite3_bind_null(st, 3);
		} else {
			atel__hex(ev->span_start.parent_id, 8, pid);
			sqlite3_bind_text(st, 3, pid, -1, SQLITE_TRANSIENT);
		}
		sqlite3_bind_text(st, 4, ev->span_start.name ? ev->span_start.name : "", -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, ev->span_start.kind);
		sqlite3_bind_int64(st, 6, (int64_t)ev->ts_ns);
		bind_producer(st, 7, ev);
		sqlite3_bind_int(st, 12, ev->span_start.flags);
		return step_done(w, st);
	case ATEL_EV_SPAN_END:
		st = w->st[ST_SPAN_END];
		atel__hex(ev->span_end.trace_id, 16, tid);
		atel__hex(ev->span_end.span_id, 8, sid);
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, (int64_t)ev->ts_ns);
		sqlite3_bind_int(st, 4, ev->span_end.status <= 2 ? ev->span_end.status : 0);
		if (ev->span_end.msg && ev->span_end.msg_len)
			sqlite3_bind_text(st, 5, ev->span_end.msg, (int)ev->span_end.msg_len, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 5);
		bind_producer(st, 6, ev);
		return step_done(w, st);
	case ATEL_EV_SPAN_ATTR:
		atel__hex(ev->span_attr.trace_id, 16, tid);
		atel__hex(ev->span_attr.span_id, 8, sid);
		atel__buf_reset(b);
		atel__buf_put(b, "{", 1);
		atel__json_str(b, ev->span_attr.key);
		atel__buf_put(b, ":", 1);
		jb_attr_value(b, &ev->span_attr.v);
		atel__buf_put(b, "}", 1);
		if (b->oom)
			return -ENOMEM;
		st = w->st[ev->span_attr.event_attr ? ST_EVENT_ATTR : ST_SPAN_ATTR];
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, b->data, (int)b->len, SQLITE_STATIC);
		if (!ev->span_attr.event_attr)
			bind_producer(st, 4, ev);
		return step_done(w, st);
	case ATEL_EV_SPAN_EVENT:
		st = w->st[ST_EVENT];
		atel__hex(ev->span_event.trace_id, 16, tid);
		atel__hex(ev->span_event.span_id, 8, sid);
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, (int64_t)ev->ts_ns);
		sqlite3_bind_text(st, 4, ev->span_event.name ? ev->span_event.name : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, "{}", 2, SQLITE_STATIC);
		return step_done(w, st);
	case ATEL_EV_SPAN_ERROR: {
		const char *msg = ev->span_error.msg ? ev->span_error.msg : "";
		uint32_t mlen = ev->span_error.msg ? ev->span_error.msg_len : 0;
		int rc;

		atel__hex(ev->span_error.trace_id, 16, tid);
		atel__hex(ev->span_error.span_id, 8, sid);
		/* OpenTelemetry: an "exception" event, and the span in ERROR */
		atel__buf_reset(b);
		atel__buf_puts(b, "{\"exception.message\":");
		atel__json_strn(b, msg, mlen);
		atel__buf_puts(b, ",\"exception.type\":");
		atel__json_str(b, ev->span_error.type);
		atel__buf_put(b, "}", 1);
		if (b->oom)
			return -ENOMEM;
		st = w->st[ST_EVENT];
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, (int64_t)ev->ts_ns);
		sqlite3_bind_text(st, 4, "exception", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, b->data, (int)b->len, SQLITE_STATIC);
		rc = step_done(w, st);
		if (rc)
			return rc;
		st = w->st[ST_SPAN_ERROR];
		sqlite3_bind_text(st, 1, tid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, sid, -1, SQLITE_TRANSIENT);
		if (mlen)
			sqlite3_bind_text(st, 3, msg, (int)mlen, SQLITE_STATIC);
		else
			bind_text(st, 3, ev->span_error.type && ev->span_error.type[0] ? ev->span_error.type : NULL);
		bind_producer(st, 4, ev);
		return step_done(w, st);
	}
	default:
		return 0;
	}
}

int atel__ixw_apply(struct atel_ixw *w, const struct atel_event *ev)
{
	sqlite3_stmt *st;
	int rc = 0;

	if (!w->txn)
		return -EINVAL;
	switch (ev->kind) {
	case ATEL_EV_SAMPLE:
		rc = apply_sample(w, ev);
		break;
	case ATEL_EV_SPAN_START:
	case ATEL_EV_SPAN_END:
	case ATEL_EV_SPAN_ATTR:
	case ATEL_EV_SPAN_EVENT:
	case ATEL_EV_SPAN_ERROR:
		if (ev->kind == ATEL_EV_SPAN_END && ev->ts_ns <= INT64_MAX) {
			w->seg_spans++;
			if (!w->seg_first || ev->ts_ns < w->seg_first)
				w->seg_first = ev->ts_ns;
			if (ev->ts_ns > w->seg_last)
				w->seg_last = ev->ts_ns;
		}
		if (!w->compact) /* compact: spans stay in the log only */
			rc = apply_span(w, ev);
		break;
	case ATEL_EV_DEATH:
		st = w->st[ST_DEATH];
		sqlite3_bind_int64(st, 1, (int64_t)ev->ts_ns);
		sqlite3_bind_int64(st, 2, ev->ring);
		sqlite3_bind_int64(st, 3, ev->death.generation);
		bind_id(st, 4, ev->death.pid);
		rc = step_done(w, st);
		break;
	case ATEL_EV_LOSS:
		st = w->st[ST_LOSS];
		sqlite3_bind_int64(st, 1, (int64_t)ev->ts_ns);
		sqlite3_bind_int64(st, 2, ev->ring);
		sqlite3_bind_int64(st, 3, ev->generation);
		bind_id(st, 4, ev->pid);
		sqlite3_bind_text(st, 5, atel__loss_cause_name(ev->loss.cause), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (int64_t)ev->loss.count);
		sqlite3_bind_int64(st, 7, (int64_t)ev->loss.first_ns);
		sqlite3_bind_int64(st, 8, (int64_t)ev->loss.last_ns);
		rc = step_done(w, st);
		break;
	default: /* BEGIN, END, INVALID: nothing to index */
		break;
	}
	if (!rc)
		w->events_pending++;
	return rc;
}

int atel__ixw_export_row(struct atel_ixw *w, const struct atel_export_row *row)
{
	sqlite3_stmt *st = w->st[ST_EXPORT];
	char ex[sizeof(row->exporter) + 1], sig[sizeof(row->signal) + 1], er[sizeof(row->error) + 1];

	if (!w->txn)
		return -EINVAL;
	/* copy: the fixed arrays need not be NUL-terminated */
	snprintf(ex, sizeof(ex), "%.*s", (int)sizeof(row->exporter), row->exporter);
	snprintf(sig, sizeof(sig), "%.*s", (int)sizeof(row->signal), row->signal);
	snprintf(er, sizeof(er), "%.*s", (int)sizeof(row->error), row->error);
	sqlite3_bind_int64(st, 1, (int64_t)row->ts_ns);
	sqlite3_bind_text(st, 2, ex, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 3, sig, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 4, (int64_t)row->items);
	sqlite3_bind_int64(st, 5, (int64_t)row->bytes);
	sqlite3_bind_int(st, 6, row->status);
	if (er[0])
		sqlite3_bind_text(st, 7, er, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 7);
	return step_done(w, st);
}

int atel__ixw_begin(struct atel_ixw *w)
{
	int rc;

	if (w->txn)
		return 0;
	rc = sqlite3_step(w->st[ST_BEGIN]);
	sqlite3_reset(w->st[ST_BEGIN]);
	if (rc != SQLITE_DONE)
		return sqlerr(w, rc);
	w->txn = true;
	w->rows_pending = 0;
	w->events_pending = 0;
	w->seg_samples = w->seg_spans = w->seg_first = w->seg_last = 0;
	/* another connection (`atel clear`) may have deleted rows the cached
	 * rollup buckets and gauge values were built from: reload them */
	rc = sqlite3_step(w->st[ST_DATA_VERSION]);
	if (rc == SQLITE_ROW) {
		int64_t v = sqlite3_column_int64(w->st[ST_DATA_VERSION], 0);

		if (v != w->data_version)
			cache_clear(w);
		w->data_version = v;
	}
	sqlite3_reset(w->st[ST_DATA_VERSION]);
	return 0;
}

int atel__ixw_commit(struct atel_ixw *w, const struct atel_log_pos *pos)
{
	sqlite3_stmt *st;
	int rc;

	if (!w->txn)
		return -EINVAL;
	for (uint32_t i = 0; i < w->ndirty; i++) {
		struct ix_series *s = w->dirty[i];

		if (s->bucket_dirty && (rc = agg_put(w, s)))
			return rc;
		if (s->dirty) {
			st = w->st[ST_SERIES_PUT];
			sqlite3_bind_int64(st, 1, (int64_t)s->hash);
			sqlite3_bind_text(st, 2, s->name, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, s->labels, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, atel__metric_type_name(s->mtype), -1, SQLITE_STATIC);
			bind_text(st, 5, s->bounds_json);
			sqlite3_bind_int64(st, 6, (int64_t)s->first_ns);
			sqlite3_bind_int64(st, 7, (int64_t)s->last_ns);
			sqlite3_bind_int64(st, 8, (int64_t)s->samples);
			sqlite3_bind_double(st, 9, s->last_value);
			if ((rc = step_done(w, st)))
				return rc;
		}
	}
	if (pos && (w->seg_samples || w->seg_spans)) {
		uint64_t before = w->rows_pending;

		st = w->st[ST_SEGMENT_PUT];
		sqlite3_bind_int64(st, 1, (int64_t)pos->file_seq);
		sqlite3_bind_int64(st, 2, (int64_t)w->seg_first);
		sqlite3_bind_int64(st, 3, (int64_t)w->seg_last);
		sqlite3_bind_int64(st, 4, (int64_t)w->seg_samples);
		sqlite3_bind_int64(st, 5, (int64_t)w->seg_spans);
		if ((rc = step_done(w, st)))
			return rc;
		w->rows_pending = before; /* bookkeeping, not an index row */
	}
	if (pos) {
		uint64_t before = w->rows_pending;

		st = w->st[ST_CURSOR_PUT];
		sqlite3_bind_int64(st, 1, (int64_t)pos->file_seq);
		sqlite3_bind_int64(st, 2, (int64_t)pos->frame_off);
		sqlite3_bind_int64(st, 3, pos->rec_idx);
		sqlite3_bind_int64(st, 4, (int64_t)w->events_pending);
		sqlite3_bind_int64(st, 5, (int64_t)atel__now_ns());
		if ((rc = step_done(w, st)))
			return rc;
		w->rows_pending = before; /* the cursor is not an index row */
	}
	rc = sqlite3_step(w->st[ST_COMMIT]);
	sqlite3_reset(w->st[ST_COMMIT]);
	if (rc != SQLITE_DONE)
		return sqlerr(w, rc);
	w->txn = false;
	for (uint32_t i = 0; i < w->ndirty; i++) {
		w->dirty[i]->dirty = false;
		w->dirty[i]->bucket_dirty = false;
		w->dirty[i]->queued = false;
	}
	w->ndirty = 0;
	w->rows += w->rows_pending;
	w->events += w->events_pending;
	w->rows_pending = 0;
	w->events_pending = 0;
	w->seg_samples = w->seg_spans = w->seg_first = w->seg_last = 0;
	return 0;
}

void atel__ixw_rollback(struct atel_ixw *w)
{
	if (!w)
		return;
	if (w->txn || !sqlite3_get_autocommit(w->db)) {
		sqlite3_step(w->st[ST_ROLLBACK]);
		sqlite3_reset(w->st[ST_ROLLBACK]);
	}
	w->txn = false;
	w->rows_pending = 0;
	w->events_pending = 0;
	w->seg_samples = w->seg_spans = w->seg_first = w->seg_last = 0;
	/* rollups and gauge values in memory may include rolled-back samples */
	cache_clear(w);
}

int atel__ixw_cursor(struct atel_ixw *w, struct atel_log_pos *pos)
{
	sqlite3_stmt *st = w->st[ST_CURSOR_GET];
	int rc = sqlite3_step(st);

	memset(pos, 0, sizeof(*pos));
	if (rc == SQLITE_ROW) {
		pos->file_seq = (uint64_t)sqlite3_column_int64(st, 0);
		pos->frame_off = (uint64_t)sqlite3_column_int64(st, 1);
		pos->rec_idx = (uint32_t)sqlite3_column_int64(st, 2);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = sqlerr(w, rc);
	}
	sqlite3_reset(st);
	return rc;
}

uint64_t atel__ixw_rows(const struct atel_ixw *w)
{
	return w ? w->rows : 0;
}

uint64_t atel__ixw_events(const struct atel_ixw *w)
{
	return w ? w->events : 0;
}

struct sqlite3 *atel__ixw_db(struct atel_ixw *w)
{
	return w ? w->db : NULL;
}

/* Deletes rows of `sql` (one bound cutoff) in batches, each its own transaction,
 * so the write lock is never held long. */
static int delete_batched(struct atel_ixw *w, const char *sql, int64_t cutoff, uint64_t *deleted)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(w->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return sqlerr(w, rc);
	for (;;) {
		int n;

		rc = sqlite3_step(w->st[ST_BEGIN]);
		sqlite3_reset(w->st[ST_BEGIN]);
		if (rc != SQLITE_DONE) {
			rc = sqlerr(w, rc);
			break;
		}
		sqlite3_bind_int64(st, 1, cutoff);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		n = sqlite3_changes(w->db);
		if (rc == SQLITE_DONE) {
			rc = sqlite3_step(w->st[ST_COMMIT]);
			sqlite3_reset(w->st[ST_COMMIT]);
		}
		if (rc != SQLITE_DONE) {
			rc = sqlerr(w, rc);
			sqlite3_step(w->st[ST_ROLLBACK]);
			sqlite3_reset(w->st[ST_ROLLBACK]);
			break;
		}
		rc = 0;
		*deleted += (uint64_t)n;
		if (n < 20000)
			break;
	}
	sqlite3_finalize(st);
	return rc;
}

int atel__ixw_retention(struct atel_ixw *w, uint64_t now_ns, uint32_t metrics_days, uint32_t traces_days,
			uint32_t aggregates_days, uint64_t *deleted)
{
	static const struct {
		int which; /* 0 metrics, 1 traces, 2 aggregates */
		const char *sql;
	} dels[] = {
		{ 0, "DELETE FROM telemetry_metrics WHERE id IN "
		     "(SELECT id FROM telemetry_metrics WHERE ts_ns < ?1 LIMIT 20000)" },
		{ 0, "DELETE FROM telemetry_exports WHERE id IN "
		     "(SELECT id FROM telemetry_exports WHERE ts_ns < ?1 LIMIT 20000)" },
		{ 0, "DELETE FROM telemetry_losses WHERE id IN "
		     "(SELECT id FROM telemetry_losses WHERE ts_ns < ?1 LIMIT 20000)" },
		{ 1, "DELETE FROM telemetry_span_events WHERE id IN "
		     "(SELECT id FROM telemetry_span_events WHERE ts_ns < ?1 LIMIT 20000)" },
		{ 1, "DELETE FROM telemetry_spans WHERE rowid IN (SELECT rowid FROM telemetry_spans "
		     "WHERE coalesce(start_ns, end_ns) < ?1 LIMIT 20000)" },
		{ 2, "DELETE FROM telemetry_aggregates WHERE rowid IN (SELECT rowid FROM telemetry_aggregates "
		     "WHERE bucket_start_ns < ?1 LIMIT 20000)" },
	};
	const uint32_t days[3] = { metrics_days, traces_days, aggregates_days };
	uint64_t total = 0;
	int rc = 0;

	if (w->txn)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(dels) / sizeof(dels[0]) && !rc; i++) {
		uint64_t keep_ns = (uint64_t)days[dels[i].which] * 86400ull * 1000000000ull;

		if (!keep_ns || keep_ns >= now_ns)
			continue;
		rc = delete_batched(w, dels[i].sql, (int64_t)(now_ns - keep_ns), &total);
	}
	if (deleted)
		*deleted = total;
	return rc;
}

void atel__ixw_close(struct atel_ixw *w)
{
	if (!w)
		return;
	if (w->txn)
		atel__ixw_rollback(w);
	cache_clear(w);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(w->st[i]);
	sqlite3_close(w->db);
	free(w->slots);
	free(w->dirty);
	atel__buf_free(&w->jb);
	atel__buf_free(&w->jb2);
	free(w);
}

const char *atel__ixw_mode_note(const struct atel_ixw *w)
{
	return w->mode_note[0] ? w->mode_note : NULL;
}

int atel__ix_mode_compact(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT value FROM telemetry_meta WHERE key = 'index_mode'", -1, &st, NULL);

	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return -EIO;
	}
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? (sqlite3_column_text(st, 0) &&
				 strcmp((const char *)sqlite3_column_text(st, 0), "compact") == 0)
			      : rc == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	return rc;
}

int atel__ixw_open(struct atel_ixw **out, const char *path, const struct atel_ixw_opts *o, char *err,
		   size_t errlen)
{
	struct atel_ixw *w = calloc(1, sizeof(*w));
	sqlite3_stmt *st = NULL;
	char *emsg = NULL;
	char pragmas[256];
	int rc;

	*out = NULL;
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	w->interval_s = o && o->rollup_interval_s ? o->rollup_interval_s : 60;
	w->compact = o && o->compact;
	rc = sqlite3_open_v2(path, &w->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open: %s", path, w->db ? sqlite3_errmsg(w->db) : "out of memory");
		rc = w->db ? sqlerr(w, rc) : -ENOMEM;
		goto fail;
	}
	sqlite3_extended_result_codes(w->db, 0);
	sqlite3_busy_timeout(w->db, o && o->busy_timeout_ms ? (int)o->busy_timeout_ms : 50);
	/* WAL: readers (atel CLI) never block the writer nor it them */
	/* compact: a few pages per commit; SQLite's default checkpoint every 1000
	 * pages then left a 4 MB WAL beside a 130 KB database, most of the disk
	 * `atel status` counted after `make demo`. Checkpoint every 128 pages and
	 * truncate the WAL to 1 MiB after each (journal_size_limit). */
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA temp_store=MEMORY; "
		 "PRAGMA cache_size=-16384;%s",
		 o && o->bulk ? "OFF" : "NORMAL",
		 w->compact ? " PRAGMA wal_autocheckpoint=128; PRAGMA journal_size_limit=1048576;" : "");
	rc = sqlite3_exec(w->db, pragmas, NULL, NULL, &emsg);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(w->db, atel__schema_sql, NULL, NULL, &emsg);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: schema: %s", path, emsg ? emsg : sqlite3_errmsg(w->db));
		sqlite3_free(emsg);
		rc = sqlerr(w, rc);
		goto fail;
	}
	rc = sqlite3_prepare_v2(w->db, "SELECT value FROM telemetry_meta WHERE key = 'schema_version'", -1, &st,
				NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), SCHEMA_VERSION) != 0) {
		snprintf(err, errlen, "%s: schema version %s, this ateld writes version %s; run `atel reindex`", path,
			 (const char *)sqlite3_column_text(st, 0), SCHEMA_VERSION);
		sqlite3_finalize(st);
		rc = -EPROTO;
		goto fail;
	}
	sqlite3_finalize(st);
	/* atel__reindex rebuilds with the width the live index used */
	/* The recorded mode tells readers where raw rows are. full -> compact:
	 * from now on the log (which holds everything) answers; the old rows stay
	 * until retention. compact -> full: rows before now are missing, so the
	 * file stays marked compact (readers keep using the log) until a reindex. */
	{
		bool stored_compact = w->compact, known = false;

		rc = sqlite3_prepare_v2(w->db, "SELECT value FROM telemetry_meta WHERE key = 'index_mode'", -1, &st,
					NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
			stored_compact = strcmp((const char *)sqlite3_column_text(st, 0), "compact") == 0;
			known = true;
		}
		sqlite3_finalize(st);
		st = NULL;
		if (!known) { /* a file from before index.mode with rows in it was full */
			rc = sqlite3_prepare_v2(w->db, "SELECT 1 FROM telemetry_metrics UNION ALL "
						"SELECT 1 FROM telemetry_spans LIMIT 1", -1, &st, NULL);
			if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
				stored_compact = false;
			sqlite3_finalize(st);
			st = NULL;
		}
		if (w->compact && !stored_compact)
			snprintf(w->mode_note, sizeof(w->mode_note),
				 "index.mode compact: this full index keeps its raw rows until retention; new samples "
				 "and spans are read from the segment log");
		else if (!w->compact && stored_compact)
			snprintf(w->mode_note, sizeof(w->mode_note),
				 "index.mode full: this index was compact and lacks older raw rows; queries keep "
				 "reading the segment log until `ateld --reindex`");
		snprintf(pragmas, sizeof(pragmas),
			 "INSERT OR REPLACE INTO telemetry_meta(key, value) VALUES ('rollup_interval_s', '%u'), "
			 "('index_mode', '%s')",
			 w->interval_s, w->compact || stored_compact ? "compact" : "full");
	}
	rc = sqlite3_exec(w->db, pragmas, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(w->db));
		rc = sqlerr(w, rc);
		goto fail;
	}
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(w->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &w->st[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errlen, "%s: preparing statement %d: %s", path, i, sqlite3_errmsg(w->db));
			rc = sqlerr(w, rc);
			goto fail;
		}
	}
	*out = w;
	return 0;
fail:
	atel__ixw_close(w);
	return rc;
}
