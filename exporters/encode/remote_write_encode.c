/* SPDX-License-Identifier: MIT */
/*
 * remote_write_encode.c - prometheus.WriteRequest (remote write 1.0) from an
 * aggregates snapshot (remote_write_encode.h). Hand-written protobuf: four
 * small messages, and the OTLP encoder next door does the same.
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }   (milliseconds)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prometheus.h"
#include "remote_write_encode.h"
#include "ring.h"

#define LBL_MAX (ATEL_LABELS_MAX + 8)

static void put_varint(struct atel_buf *b, uint64_t v)
{
	unsigned char t[10];
	size_t n = 0;

	do {
		t[n++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
		v >>= 7;
	} while (v);
	atel__buf_put(b, t, n);
}

static void put_len_field(struct atel_buf *b, unsigned field, const void *p, size_t n)
{
	put_varint(b, (uint64_t)field << 3 | 2);
	put_varint(b, n);
	atel__buf_put(b, p, n);
}

/* One label as offsets into the scratch buffer (it may move while growing). */
struct lbl {
	size_t name, name_len, value, value_len;
};

struct enc {
	struct atel_buf scratch;       /* label names and values of the current series */
	struct lbl l[LBL_MAX];
	uint32_t nl;
	uint32_t base;                 /* labels shared by every sample of the series */
	struct atel_buf ts, req, lb;   /* TimeSeries, WriteRequest, one label */
	uint32_t nsamples;
};

static void lbl_add(struct enc *e, const char *name, bool sanitise, const char *value)
{
	struct lbl *l;

	if (e->nl >= LBL_MAX || !value || !*value) /* an empty value is no label (Prometheus) */
		return;
	l = &e->l[e->nl++];
	l->name = e->scratch.len;
	if (sanitise)
		atel__prom_name(&e->scratch, name, true);
	else
		atel__buf_puts(&e->scratch, name);
	l->name_len = e->scratch.len - l->name;
	l->value = e->scratch.len;
	atel__buf_utf8(&e->scratch, value);
	l->value_len = e->scratch.len - l->value;
}

static int cmp_lbl(const void *x, const void *y, void *arg)
{
	const struct lbl *a = x, *b = y;
	const char *scr = arg;
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(scr + a->name, scr + b->name, n);

	return c ? c : (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Writes one TimeSeries of the current labels (sorted copy) into e->req. */
static void put_series(struct enc *e, double v, int64_t ts_ms)
{
	struct lbl sorted[LBL_MAX];
	unsigned char sample[32];
	size_t sn = 0;
	uint64_t bits;

	if (e->scratch.oom)
		return;
	memcpy(sorted, e->l, e->nl * sizeof(struct lbl));
	qsort_r(sorted, e->nl, sizeof(struct lbl), cmp_lbl, e->scratch.data);
	atel__buf_reset(&e->ts);
	for (uint32_t i = 0; i < e->nl; i++) {
		/* equal names after sanitising: keep the first (Prometheus rejects duplicates) */
		if (i && !cmp_lbl(&sorted[i - 1], &sorted[i], e->scratch.data))
			continue;
		atel__buf_reset(&e->lb);
		put_len_field(&e->lb, 1, e->scratch.data + sorted[i].name, sorted[i].name_len);
		put_len_field(&e->lb, 2, e->scratch.data + sorted[i].value, sorted[i].value_len);
		put_len_field(&e->ts, 1, e->lb.data, e->lb.len);
	}
	memcpy(&bits, &v, 8);
	sample[sn++] = 0x09; /* field 1, fixed64 */
	for (int k = 0; k < 8; k++)
		sample[sn++] = (unsigned char)(bits >> (8 * k));
	sample[sn++] = 0x10; /* field 2, varint */
	{
		uint64_t t = (uint64_t)ts_ms;
		do {
			sample[sn++] = (unsigned char)((t & 0x7f) | (t >= 0x80 ? 0x80 : 0));
			t >>= 7;
		} while (t);
	}
	put_len_field(&e->ts, 2, sample, sn);
	put_len_field(&e->req, 1, e->ts.data, e->ts.len);
	e->nsamples++;
}

static int flush(struct enc *e, int (*emit)(void *, const void *, size_t, uint32_t), void *arg)
{
	int rc;

	if (e->req.oom || e->scratch.oom || e->ts.oom || e->lb.oom)
		return -ENOMEM;
	if (!e->nsamples)
		return 0;
	rc = emit(arg, e->req.data, e->req.len, e->nsamples);
	atel__buf_reset(&e->req);
	e->nsamples = 0;
	return rc;
}

uint64_t atel__rw_samples(const struct atel_agg_snapshot *snap)
{
	uint64_t n = 0;

	for (uint32_t i = 0; snap && i < snap->nfamilies; i++) {
		const struct atel_agg_family *f = &snap->families[i];
		for (uint32_t j = 0; j < f->nseries; j++)
			n += f->mtype == ATEL_MT_HISTOGRAM ? f->series[j].nbounds + 3u : 1u;
	}
	return n;
}

static bool is_extra(const struct atel_rw_label *extra, uint32_t n, const char *name)
{
	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(extra[i].name, name))
			return true;
	return false;
}

int atel__rw_encode(const struct atel_agg_snapshot *snap, int64_t ts_ms, const struct atel_rw_label *extra,
		    uint32_t n_extra, uint32_t max_samples,
		    int (*emit)(void *arg, const void *data, size_t len, uint32_t nsamples), void *arg)
{
	struct enc e;
	struct atel_buf name = { 0 }, le = { 0 };
	int rc = 0;

	memset(&e, 0, sizeof(e));
	for (uint32_t i = 0; snap && i < snap->nfamilies && !rc; i++) {
		const struct atel_agg_family *f = &snap->families[i];
		bool hist = f->mtype == ATEL_MT_HISTOGRAM;

		atel__buf_reset(&name);
		atel__prom_name(&name, f->name, false);
		if (f->mtype == ATEL_MT_COUNTER &&
		    !(name.len >= 6 && !memcmp(name.data + name.len - 6, "_total", 6)))
			atel__buf_put(&name, "_total", 6);
		atel__buf_putc(&name, '\0');
		if (name.oom) {
			rc = -ENOMEM;
			break;
		}
		for (uint32_t j = 0; j < f->nseries && !rc; j++) {
			const struct atel_agg_series *s = &f->series[j];
			uint32_t per = hist ? s->nbounds + 3u : 1u;

			if (max_samples && e.nsamples && e.nsamples + per > max_samples && (rc = flush(&e, emit, arg)))
				break;
			atel__buf_reset(&e.scratch);
			e.nl = 0;
			for (uint32_t k = 0; k < n_extra; k++)
				lbl_add(&e, extra[k].name, false, extra[k].value);
			for (uint32_t k = 0; k < s->nlabels; k++) {
				char ren[ATEL_STR_MAX + 16];
				const char *ln = s->keys[k];
				if ((hist && !strcmp(ln, "le")) || is_extra(extra, n_extra, ln) || !strcmp(ln, "__name__")) {
					snprintf(ren, sizeof(ren), "exported_%s", ln);
					ln = ren;
				}
				lbl_add(&e, ln, true, s->values[k]);
			}
			e.base = e.nl;
			if (!hist) {
				lbl_add(&e, "__name__", false, name.data);
				put_series(&e, s->value, ts_ms);
				continue;
			}
			{
				/* _bucket{le} (cumulative), _sum, _count, as /metrics */
				uint64_t cum = 0;
				size_t nlen = strlen(name.data);
				char *n2 = malloc(nlen + 8);
				if (!n2) {
					rc = -ENOMEM;
					break;
				}
				for (uint32_t k = 0; k <= s->nbounds; k++) {
					cum += s->buckets ? s->buckets[k] : 0;
					e.nl = e.base;
					atel__buf_reset(&le);
					if (k < s->nbounds)
						atel__buf_double(&le, s->bounds[k]);
					else
						atel__buf_puts(&le, "+Inf");
					atel__buf_putc(&le, '\0');
					snprintf(n2, nlen + 8, "%s_bucket", name.data);
					lbl_add(&e, "__name__", false, n2);
					if (!le.oom)
						lbl_add(&e, "le", false, le.data);
					put_series(&e, (double)cum, ts_ms);
				}
				e.nl = e.base;
				snprintf(n2, nlen + 8, "%s_sum", name.data);
				lbl_add(&e, "__name__", false, n2);
				put_series(&e, s->sum, ts_ms);
				e.nl = e.base;
				snprintf(n2, nlen + 8, "%s_count", name.data);
				lbl_add(&e, "__name__", false, n2);
				put_series(&e, (double)cum, ts_ms);
				free(n2);
			}
		}
	}
	if (!rc)
		rc = flush(&e, emit, arg);
	atel__buf_free(&e.scratch);
	atel__buf_free(&e.ts);
	atel__buf_free(&e.req);
	atel__buf_free(&e.lb);
	atel__buf_free(&name);
	atel__buf_free(&le);
	return rc;
}
