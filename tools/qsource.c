/* SPDX-License-Identifier: MIT */
/*
 * qsource.c - series selection from the SQLite index or the segment log.
 */
#include "qsource.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "atel_abi.h"
#include "ring.h"
#include "util.h"
#include "logread.h"

static void series_free(struct atel_qseries *s)
{
	free(s->name);
	for (size_t i = 0; i < s->nlabels; i++) {
		free(s->keys[i]);
		free(s->values[i]);
	}
	free(s->keys);
	free(s->values);
	free(s->bounds);
	free(s->pts);
}

void atel_qresult_free(struct atel_qresult *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		series_free(&r->s[i]);
	free(r->s);
	free(r->slots);
	memset(r, 0, sizeof(*r));
}

static size_t hslot(uint64_t h, size_t nslots)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)(h & (nslots - 1));
}

/* @return the series index for hash, or SIZE_MAX */
static size_t find_series(const struct atel_qresult *r, uint64_t hash)
{
	if (!r->nslots)
		return SIZE_MAX;
	for (size_t i = hslot(hash, r->nslots);; i = (i + 1) & (r->nslots - 1)) {
		size_t v = r->slots[i];
		if (!v)
			return SIZE_MAX;
		if (r->s[v - 1].hash == hash)
			return v - 1;
	}
}

static int rehash(struct atel_qresult *r, size_t nslots)
{
	size_t *ns = calloc(nslots, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t k = 0; k < r->n; k++) {
		size_t i = hslot(r->s[k].hash, nslots);
		while (ns[i])
			i = (i + 1) & (nslots - 1);
		ns[i] = k + 1;
	}
	free(r->slots);
	r->slots = ns;
	r->nslots = nslots;
	return 0;
}

/* Adds a series (takes ownership of *s's allocations on success). */
static int add_series(struct atel_qresult *r, struct atel_qseries *s, size_t *idx)
{
	if ((r->n + 1) * 2 > r->nslots) {
		int rc = rehash(r, r->nslots ? r->nslots * 2 : 64);
		if (rc < 0)
			return rc;
	}
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 16;
		struct atel_qseries *n = realloc(r->s, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		r->s = n;
		r->cap = nc;
	}
	r->s[r->n] = *s;
	size_t i = hslot(s->hash, r->nslots);
	while (r->slots[i])
		i = (i + 1) & (r->nslots - 1);
	r->slots[i] = r->n + 1;
	*idx = r->n++;
	return 0;
}

static int push_point(struct atel_qseries *s, uint64_t ts, double v)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 64;
		struct atel_qpoint *n = realloc(s->pts, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->pts = n;
		s->cap = nc;
	}
	s->pts[s->n++] = (struct atel_qpoint){ ts, v };
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	const struct atel_qseries *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	for (size_t i = 0; i < x->nlabels && i < y->nlabels; i++) {
		if ((c = strcmp(x->keys[i], y->keys[i])) != 0)
			return c;
		if ((c = strcmp(x->values[i], y->values[i])) != 0)
			return c;
	}
	return (x->nlabels > y->nlabels) - (x->nlabels < y->nlabels);
}

/* Drops excluded series, sorts points and series. */
static int finish(struct atel_qresult *r)
{
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (r->s[i].excluded) {
			series_free(&r->s[i]);
			continue;
		}
		int rc = atel_q_sort_points(r->s[i].pts, r->s[i].n);
		if (rc < 0)
			return rc;
		r->s[k++] = r->s[i];
	}
	r->n = k;
	if (r->n > 1)
		qsort(r->s, r->n, sizeof(*r->s), cmp_series);
	free(r->slots);
	r->slots = NULL;
	r->nslots = 0;
	return 0;
}

/* Fills labels from a JSON object text; sorted by key. */
static int labels_from_json(struct atel_qseries *s, const char *text)
{
	cJSON *j = cJSON_Parse(text ? text : "{}");
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return -EINVAL;
	}
	size_t n = (size_t)cJSON_GetArraySize(j);
	s->keys = calloc(n ? n : 1, sizeof(char *));
	s->values = calloc(n ? n : 1, sizeof(char *));
	if (!s->keys || !s->values) {
		cJSON_Delete(j);
		return -ENOMEM;
	}
	cJSON *it;
	size_t k = 0;
	cJSON_ArrayForEach(it, j)
	{
		const char *v = cJSON_IsString(it) ? it->valuestring : "";
		s->keys[k] = strdup(it->string ? it->string : "");
		s->values[k] = strdup(v);
		if (!s->keys[k] || !s->values[k]) {
			free(s->keys[k]);
			free(s->values[k]);
			s->nlabels = k;
			cJSON_Delete(j);
			return -ENOMEM;
		}
		k++;
	}
	s->nlabels = k;
	cJSON_Delete(j);
	/* the index stores keys sorted; sort anyway (bubble: at most 16 labels) */
	for (size_t a = 1; a < k; a++)
		for (size_t b = a; b > 0 && strcmp(s->keys[b - 1], s->keys[b]) > 0; b--) {
			char *t = s->keys[b];
			s->keys[b] = s->keys[b - 1];
			s->keys[b - 1] = t;
			t = s->values[b];
			s->values[b] = s->values[b - 1];
			s->values[b - 1] = t;
		}
	return 0;
}

static int bounds_from_json(struct atel_qseries *s, const char *text)
{
	if (!text)
		return 0;
	cJSON *j = cJSON_Parse(text);
	if (!j || !cJSON_IsArray(j)) {
		cJSON_Delete(j);
		return 0; /* bounds are optional: bucket estimates are then unavailable */
	}
	size_t n = (size_t)cJSON_GetArraySize(j);
	s->bounds = malloc((n ? n : 1) * sizeof(double));
	if (!s->bounds) {
		cJSON_Delete(j);
		return -ENOMEM;
	}
	size_t k = 0;
	cJSON *it;
	cJSON_ArrayForEach(it, j)
	{
		if (cJSON_IsNumber(it) && isfinite(it->valuedouble) && (k == 0 || it->valuedouble > s->bounds[k - 1]))
			s->bounds[k++] = it->valuedouble;
	}
	s->nbounds = k;
	cJSON_Delete(j);
	return 0;
}

int atel_qs_select_db(sqlite3 *db, const struct atel_qselector *sel, uint64_t start_ns, uint64_t end_ns,
		      struct atel_qresult *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *metric = sel ? sel->metric : NULL;
	sqlite3_stmt *q = NULL, *qb = NULL, *qs = NULL;
	int rc = 0;
	const char *sql = "SELECT m.ts_ns, m.series_hash, m.name, m.labels, m.metric_type, m.value "
			  "FROM telemetry_metrics m WHERE (?1 IS NULL OR m.name = ?1) AND m.ts_ns BETWEEN ?2 AND ?3";
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		goto sqlerr;
	if (metric)
		sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)(start_ns > INT64_MAX ? INT64_MAX : start_ns));
	sqlite3_bind_int64(q, 3, (sqlite3_int64)(end_ns > INT64_MAX ? INT64_MAX : end_ns));
	int step;
	while ((step = sqlite3_step(q)) == SQLITE_ROW) {
		out->samples++;
		uint64_t hash = (uint64_t)sqlite3_column_int64(q, 1);
		size_t idx = find_series(out, hash);
		if (idx == SIZE_MAX) {
			struct atel_qseries s = { 0 };
			s.hash = hash;
			s.name = strdup((const char *)sqlite3_column_text(q, 2));
			s.mtype = (uint8_t)atel__metric_type_of((const char *)sqlite3_column_text(q, 4));
			if (!s.name) {
				rc = -ENOMEM;
				goto out;
			}
			int lr = labels_from_json(&s, (const char *)sqlite3_column_text(q, 3));
			if (lr == -ENOMEM) {
				series_free(&s);
				rc = lr;
				goto out;
			}
			s.excluded = lr < 0 || !atel_q_selector_match(sel, (const char *const *)s.keys,
								      (const char *const *)s.values, s.nlabels);
			if ((rc = add_series(out, &s, &idx)) < 0) {
				series_free(&s);
				goto out;
			}
		}
		struct atel_qseries *s = &out->s[idx];
		if (s->excluded)
			continue;
		if ((rc = push_point(s, (uint64_t)sqlite3_column_int64(q, 0), sqlite3_column_double(q, 5))) < 0)
			goto out;
	}
	if (step != SQLITE_DONE)
		goto sqlerr;
	/* counter bases and histogram bounds, per matching series */
	if (sqlite3_prepare_v2(db,
			       "SELECT COALESCE(SUM(value), 0) FROM telemetry_metrics WHERE series_hash = ?1 AND ts_ns < ?2",
			       -1, &qb, NULL) != SQLITE_OK)
		goto sqlerr;
	if (sqlite3_prepare_v2(db, "SELECT bounds FROM telemetry_series WHERE series_hash = ?1", -1, &qs, NULL) !=
	    SQLITE_OK) {
		qs = NULL; /* an older index without telemetry_series: no bucket estimates */
	}
	for (size_t i = 0; i < out->n; i++) {
		struct atel_qseries *s = &out->s[i];
		if (s->excluded)
			continue;
		if (s->mtype == ATEL_MT_COUNTER) {
			sqlite3_reset(qb);
			sqlite3_bind_int64(qb, 1, (sqlite3_int64)s->hash);
			sqlite3_bind_int64(qb, 2, (sqlite3_int64)(start_ns > INT64_MAX ? INT64_MAX : start_ns));
			if (sqlite3_step(qb) == SQLITE_ROW)
				s->base = sqlite3_column_double(qb, 0);
		} else if (s->mtype == ATEL_MT_HISTOGRAM && qs) {
			sqlite3_reset(qs);
			sqlite3_bind_int64(qs, 1, (sqlite3_int64)s->hash);
			if (sqlite3_step(qs) == SQLITE_ROW &&
			    (rc = bounds_from_json(s, (const char *)sqlite3_column_text(qs, 0))) < 0)
				goto out;
		}
	}
	rc = finish(out);
	goto out;
sqlerr:
	atel__seterr(err, errlen, "telemetry.db: %s", sqlite3_errmsg(db));
	rc = -EIO;
out:
	sqlite3_finalize(q);
	sqlite3_finalize(qb);
	sqlite3_finalize(qs);
	if (rc < 0)
		atel_qresult_free(out);
	return rc;
}

struct corrupt_ctx {
	uint64_t n;
	char *err;
	size_t errlen;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct corrupt_ctx *c = arg;
	if (c->n++ == 0)
		atel__seterr(c->err, c->errlen, "%s: offset %llu: %s", file, (unsigned long long)offset, why);
}

/* Reads samples from the log (opened with o) into out, which may already
 * hold series (the index's, for a tail read); out->slots must be built.
 * *events counts the samples read (of any metric). */
static int log_into(const struct atel_log_reader_opts *o, const char *what, const struct atel_qselector *sel,
		    uint64_t start_ns, uint64_t end_ns, struct atel_qresult *out, uint64_t *events, char *err,
		    size_t errlen)
{
	struct atel_log_reader *r = NULL;
	int rc = atel__log_open(&r, o);
	if (rc < 0) {
		atel__seterr(err, errlen, "%s: %s", what, strerror(-rc));
		return rc;
	}
	const char *metric = sel ? sel->metric : NULL;
	struct atel_event ev;
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		if (ev.kind != ATEL_EV_SAMPLE || !ev.sample.series)
			continue;
		(*events)++;
		const struct atel_dec_series *ds = ev.sample.series;
		if (metric && strcmp(ds->name, metric) != 0)
			continue;
		out->samples++;
		size_t idx = find_series(out, ds->key_hash);
		if (idx == SIZE_MAX) {
			struct atel_qseries s = { 0 };
			int e = 0;
			s.hash = ds->key_hash;
			s.mtype = ds->mtype;
			s.name = strdup(ds->name);
			s.keys = calloc(ds->nlabels + 1, sizeof(char *));
			s.values = calloc(ds->nlabels + 1, sizeof(char *));
			if (!s.name || !s.keys || !s.values) {
				series_free(&s);
				rc = -ENOMEM;
				break;
			}
			for (uint32_t i = 0; i < ds->nlabels; i++) {
				s.keys[i] = strdup(ds->keys[i]);
				s.values[i] = strdup(ds->values[i]);
				s.nlabels = i + 1;
				if (!s.keys[i] || !s.values[i]) {
					e = -ENOMEM;
					break;
				}
			}
			if (e == 0 && ds->nbounds) {
				s.bounds = malloc(ds->nbounds * sizeof(double));
				if (!s.bounds) {
					e = -ENOMEM;
				} else {
					memcpy(s.bounds, ds->bounds, ds->nbounds * sizeof(double));
					s.nbounds = ds->nbounds;
				}
			}
			if (e == 0) {
				s.excluded = !atel_q_selector_match(sel, (const char *const *)s.keys,
								    (const char *const *)s.values, s.nlabels);
				e = add_series(out, &s, &idx);
			}
			if (e < 0) {
				series_free(&s);
				rc = e;
				break;
			}
		}
		struct atel_qseries *s = &out->s[idx];
		if (s->excluded)
			continue;
		double v = ev.sample.value;
		if (s->mtype == ATEL_MT_GAUGE) {
			/* a gauge add moves the running value; the sample is the value after it */
			s->running = ev.sample.set ? v : s->running + v;
			v = s->running;
		}
		if (ev.ts_ns < start_ns) {
			if (s->mtype == ATEL_MT_COUNTER)
				s->base += v;
			continue;
		}
		if (ev.ts_ns > end_ns)
			continue;
		if ((rc = push_point(s, ev.ts_ns, v)) < 0)
			break;
	}
	struct atel_log_read_stats st;
	atel__log_stats(r, &st);
	const struct corrupt_ctx *cc = o->arg;
	out->corrupt_frames += st.corrupt_frames > cc->n ? st.corrupt_frames : cc->n;
	atel__log_close(r);
	if (rc < 0)
		atel__seterr(err, errlen, "%s: %s", what, strerror(-rc));
	return rc < 0 ? rc : 0;
}

int atel_qs_select_log(const char *segments_dir, const char *single_file, const struct atel_qselector *sel,
		       uint64_t start_ns, uint64_t end_ns, struct atel_qresult *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct corrupt_ctx cc = { 0, err, errlen };
	struct atel_log_reader_opts o = {
		.segments_dir = single_file ? NULL : segments_dir,
		.single_file = single_file,
		.on_corrupt = on_corrupt,
		.arg = &cc,
	};
	uint64_t events = 0;
	int rc = log_into(&o, single_file ? single_file : segments_dir, sel, start_ns, end_ns, out, &events, err,
			  errlen);
	if (rc == 0)
		rc = finish(out);
	if (rc < 0)
		atel_qresult_free(out);
	return rc;
}

int atel_qs_db_cursor(sqlite3 *db, struct atel_log_pos *pos)
{
	sqlite3_stmt *q = NULL;
	int rc = -ENOENT;
	memset(pos, 0, sizeof(*pos));
	if (sqlite3_prepare_v2(db, "SELECT file_seq, frame_off, rec_idx FROM telemetry_index_cursor WHERE id = 1", -1,
			       &q, NULL) != SQLITE_OK)
		return -ENOENT; /* an index without a cursor table */
	if (sqlite3_step(q) == SQLITE_ROW) {
		pos->file_seq = (uint64_t)sqlite3_column_int64(q, 0);
		pos->frame_off = (uint64_t)sqlite3_column_int64(q, 1);
		pos->rec_idx = (uint32_t)sqlite3_column_int64(q, 2);
		rc = 0;
	}
	sqlite3_finalize(q);
	return rc;
}

bool atel_qs_index_behind(sqlite3 *db, const char *segments_dir)
{
	struct atel_log_pos cur;
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	if (atel_qs_db_cursor(db, &cur) < 0)
		return false;
	struct atel_log_reader_opts o = { .segments_dir = segments_dir, .start = cur, .follow = true };
	if (atel__log_open(&r, &o) < 0)
		return false;
	bool behind = atel__log_next(r, &ev, NULL) == 1;
	atel__log_close(r);
	return behind;
}

int atel_qs_add_log_tail(sqlite3 *db, const char *segments_dir, const struct atel_log_pos *from,
			 const struct atel_qselector *sel, uint64_t start_ns, uint64_t end_ns, struct atel_qresult *out,
			 uint64_t *tail_events, char *err, size_t errlen)
{
	struct corrupt_ctx cc = { 0, err, errlen };
	struct atel_log_reader_opts o = {
		.segments_dir = segments_dir,
		.start = *from,
		.follow = true, /* ateld may be writing the newest file */
		.on_corrupt = on_corrupt,
		.arg = &cc,
	};
	*tail_events = 0;
	size_t ns = 64;
	while (ns < (out->n + 1) * 2)
		ns *= 2;
	int rc = rehash(out, ns);
	/* a gauge `add` in the tail moves the value the index ends with */
	for (size_t i = 0; rc == 0 && i < out->n; i++)
		if (out->s[i].mtype == ATEL_MT_GAUGE && out->s[i].n)
			out->s[i].running = out->s[i].pts[out->s[i].n - 1].v;
	size_t n_db = out->n;
	if (rc == 0)
		rc = log_into(&o, segments_dir, sel, start_ns, end_ns, out, tail_events, err, errlen);
	/* a counter first seen in the tail: its increments before the range are in the index */
	sqlite3_stmt *qb = NULL;
	for (size_t i = n_db; rc == 0 && db && i < out->n; i++) {
		struct atel_qseries *s = &out->s[i];
		if (s->excluded || s->mtype != ATEL_MT_COUNTER)
			continue;
		if (!qb && sqlite3_prepare_v2(db,
					      "SELECT COALESCE(SUM(value), 0) FROM telemetry_metrics "
					      "WHERE series_hash = ?1 AND ts_ns < ?2",
					      -1, &qb, NULL) != SQLITE_OK) {
			atel__seterr(err, errlen, "telemetry.db: %s", sqlite3_errmsg(db));
			rc = -EIO;
			break;
		}
		sqlite3_reset(qb);
		sqlite3_bind_int64(qb, 1, (sqlite3_int64)s->hash);
		sqlite3_bind_int64(qb, 2, (sqlite3_int64)(start_ns > INT64_MAX ? INT64_MAX : start_ns));
		if (sqlite3_step(qb) == SQLITE_ROW)
			s->base += sqlite3_column_double(qb, 0);
	}
	sqlite3_finalize(qb);
	if (rc == 0)
		rc = finish(out);
	if (rc < 0)
		atel_qresult_free(out);
	return rc;
}

void atel_qs_cumulative(const struct atel_qseries *s, struct atel_qpoint *out)
{
	double acc = s->mtype == ATEL_MT_COUNTER ? s->base : 0;
	for (size_t i = 0; i < s->n; i++) {
		out[i].ts_ns = s->pts[i].ts_ns;
		if (s->mtype == ATEL_MT_COUNTER) {
			if (!isnan(s->pts[i].v))
				acc += s->pts[i].v;
			out[i].v = acc;
		} else if (s->mtype == ATEL_MT_HISTOGRAM) {
			acc += 1;
			out[i].v = acc;
		} else {
			out[i].v = s->pts[i].v;
		}
	}
}

char *atel_qs_labels_json(const struct atel_qseries *s)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	for (size_t i = 0; i < s->nlabels; i++)
		cJSON_AddStringToObject(o, s->keys[i], s->values[i]);
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return t;
}
