/* SPDX-License-Identifier: MIT */
/*
 * checkpoint.c - the aggregates model's checkpoint (aggregates.h): its
 * state and the log position it reflects, so that counters stay monotonic
 * across restarts and no sample is counted twice.
 *
 * Checkpoint file (little-endian, host order; written and read by the same
 * build on the same machine):
 *   "ATELAGG1" u32 version u32 0 | log pos: u64 file_seq u64 frame_off u32 rec_idx u32 0
 *   u64 overflow u64 type_clashes u64 rejected [u64 expired: version 2] | u32 nfolded, u64 folded[]
 *   u32 nfamilies, per family: str name, u8 mtype, u32 nbsets {u32 n, f64[n]},
 *     u32 nseries, per series: u64 hash, u8 overflow, u32 nlabels {str k, str v},
 *     u32 bset (UINT32_MAX: none), f64 value, u64 count, f64 sum,
 *     u64 buckets[n+1], u64 start_ns, u64 last_ns
 *   u32 crc32 (zlib) of everything before it.      str = u32 len, bytes
 * Version 2 (series_ttl) added the expired counter; version 1 files still load.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "agg_internal.h"
#include "util.h"

#define CKPT_MAGIC "ATELAGG1"
#define CKPT_VERSION 2u

static void put_u32(struct atel_buf *b, uint32_t v)
{
	atel__buf_put(b, &v, sizeof(v));
}

static void put_u64(struct atel_buf *b, uint64_t v)
{
	atel__buf_put(b, &v, sizeof(v));
}

static void put_f64(struct atel_buf *b, double v)
{
	atel__buf_put(b, &v, sizeof(v));
}

static void put_str(struct atel_buf *b, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);

	put_u32(b, n);
	atel__buf_put(b, s, n);
}

int atel__agg_save(struct atel_agg *a, const char *path, const struct atel_log_pos *pos)
{
	struct atel_buf b = { 0 };
	struct atel_log_pos zero = { 0 };
	uint32_t crc;
	int rc;

	if (!a || !path)
		return -EINVAL;
	if (!pos)
		pos = &zero;
	atel__buf_put(&b, CKPT_MAGIC, 8);
	put_u32(&b, CKPT_VERSION);
	put_u32(&b, 0);
	put_u64(&b, pos->file_seq);
	put_u64(&b, pos->frame_off);
	put_u32(&b, pos->rec_idx);
	put_u32(&b, 0);
	pthread_mutex_lock(&a->lock);
	put_u64(&b, a->overflow);
	put_u64(&b, a->type_clashes);
	put_u64(&b, a->rejected);
	put_u64(&b, a->expired);
	put_u32(&b, a->folded_len);
	for (uint32_t i = 0; i < a->folded_cap; i++)
		if (a->folded[i])
			put_u64(&b, a->folded[i]);
	put_u32(&b, a->nfams);
	for (uint32_t i = 0; i < a->nfams; i++) {
		const struct family *f = a->fams[i];
		uint32_t ns = f->nseries + (f->overflow ? 1 : 0);
		put_str(&b, f->name);
		atel__buf_putc(&b, (char)f->mtype);
		put_u32(&b, f->nbsets);
		for (uint32_t k = 0; k < f->nbsets; k++) {
			put_u32(&b, f->bsets[k].n);
			atel__buf_put(&b, f->bsets[k].b, f->bsets[k].n * sizeof(double));
		}
		put_u32(&b, ns);
		for (uint32_t j = 0; j < ns; j++) {
			const struct series *s = j < f->nseries ? f->series[j] : f->overflow;
			put_u64(&b, s->key_hash);
			atel__buf_putc(&b, (char)s->overflow);
			put_u32(&b, s->nlabels);
			for (uint32_t l = 0; l < s->nlabels; l++) {
				put_str(&b, s->keys[l]);
				put_str(&b, s->values[l]);
			}
			put_u32(&b, s->bset);
			put_f64(&b, s->value);
			put_u64(&b, s->count);
			put_f64(&b, s->sum);
			if (s->bset != UINT32_MAX)
				atel__buf_put(&b, s->buckets, (f->bsets[s->bset].n + 1) * sizeof(uint64_t));
			put_u64(&b, s->start_ns);
			put_u64(&b, s->last_ns);
		}
	}
	pthread_mutex_unlock(&a->lock);
	if (b.oom) {
		atel__buf_free(&b);
		return -ENOMEM;
	}
	crc = (uint32_t)crc32(0L, (const Bytef *)b.data, (uInt)b.len);
	put_u32(&b, crc);
	rc = b.oom ? -ENOMEM : atel__write_file_atomic(path, b.data, b.len, atel__file_mode());
	atel__buf_free(&b);
	return rc;
}

/* Bounds-checked reader over the checkpoint bytes. */
struct rd {
	const unsigned char *p;
	size_t len, off;
	bool bad;
};

static bool rd_take(struct rd *r, void *dst, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return false;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return true;
}

static uint32_t rd_u32(struct rd *r)
{
	uint32_t v = 0;

	rd_take(r, &v, sizeof(v));
	return v;
}

static uint64_t rd_u64(struct rd *r)
{
	uint64_t v = 0;

	rd_take(r, &v, sizeof(v));
	return v;
}

static double rd_f64(struct rd *r)
{
	double v = 0;

	rd_take(r, &v, sizeof(v));
	return v;
}

/* A malloc'd NUL-terminated copy, or NULL (r->bad set) if invalid. */
static char *rd_str(struct rd *r)
{
	uint32_t n = rd_u32(r);
	char *s;

	if (r->bad || n > ATEL_STR_MAX || r->len - r->off < n || memchr(r->p + r->off, 0, n)) {
		r->bad = true;
		return NULL;
	}
	if (!(s = malloc((size_t)n + 1))) {
		r->bad = true;
		return NULL;
	}
	memcpy(s, r->p + r->off, n);
	s[n] = '\0';
	r->off += n;
	return s;
}

static int load_body(struct atel_agg *a, struct rd *r, struct atel_log_pos *pos)
{
	char magic[8];
	uint32_t nf, nfold, version;

	if (!rd_take(r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8))
		return -EINVAL;
	version = rd_u32(r);
	if (version < 1 || version > CKPT_VERSION)
		return -EINVAL;
	rd_u32(r);
	pos->file_seq = rd_u64(r);
	pos->frame_off = rd_u64(r);
	pos->rec_idx = rd_u32(r);
	rd_u32(r);
	a->overflow = rd_u64(r);
	a->type_clashes = rd_u64(r);
	a->rejected = rd_u64(r);
	a->expired = version >= 2 ? rd_u64(r) : 0;
	nfold = rd_u32(r);
	if (r->bad || nfold > FOLDED_MAX || (r->len - r->off) / 8 < nfold)
		return -EINVAL;
	for (uint32_t i = 0; i < nfold; i++)
		atel__agg_folded_insert(a, rd_u64(r));
	nf = rd_u32(r);
	if (r->bad || nf > (r->len - r->off))
		return -EINVAL;
	for (uint32_t i = 0; i < nf; i++) {
		char *name = rd_str(r);
		uint8_t mtype = 0;
		uint32_t nb, ns;
		struct family *f;

		if (!name)
			return -EINVAL;
		rd_take(r, &mtype, 1);
		if (r->bad || mtype < ATEL_MT_COUNTER || mtype > ATEL_MT_HISTOGRAM ||
		    atel__agg_family_find(a, name, atel__agg_fnv1a(name)) || !(f = atel__agg_family_add(a, name, mtype))) {
			free(name);
			return -EINVAL;
		}
		free(name);
		nb = rd_u32(r);
		if (r->bad || nb > 1024)
			return -EINVAL;
		for (uint32_t k = 0; k < nb; k++) {
			uint32_t n = rd_u32(r);
			double bounds[ATEL_BOUNDS_MAX];
			if (r->bad || n > ATEL_BOUNDS_MAX || !rd_take(r, bounds, n * sizeof(double)))
				return -EINVAL;
			for (uint32_t j = 0; j < n; j++)
				if (!isfinite(bounds[j]) || (j && !(bounds[j] > bounds[j - 1])))
					return -EINVAL;
			if (atel__agg_family_bset(f, n, bounds) != k) /* duplicates would break indexes */
				return -EINVAL;
		}
		ns = rd_u32(r);
		if (r->bad || ns > (r->len - r->off))
			return -EINVAL;
		for (uint32_t j = 0; j < ns; j++) {
			const char *keys[ATEL_LABELS_MAX], *vals[ATEL_LABELS_MAX];
			char *own[2 * ATEL_LABELS_MAX];
			uint32_t nl, bs, nown = 0;
			uint64_t h = rd_u64(r);
			uint8_t ovf = 0;
			struct series *s = NULL;
			int rc = -EINVAL;

			rd_take(r, &ovf, 1);
			nl = rd_u32(r);
			if (r->bad || nl > ATEL_LABELS_MAX || ovf > 1)
				return -EINVAL;
			for (uint32_t l = 0; l < nl; l++) {
				char *k = rd_str(r), *v = rd_str(r);
				if (k)
					own[nown++] = k;
				if (v)
					own[nown++] = v;
				keys[l] = k;
				vals[l] = v;
			}
			bs = rd_u32(r);
			if (r->bad || (mtype == ATEL_MT_HISTOGRAM) != (bs != UINT32_MAX) ||
			    (bs != UINT32_MAX && bs >= f->nbsets) || (ovf && f->overflow))
				goto series_done;
			s = atel__agg_series_new(f, h, nl, keys, vals, ovf, bs == UINT32_MAX ? 0 : f->bsets[bs].n,
				       bs == UINT32_MAX ? NULL : f->bsets[bs].b);
			if (!s) {
				rc = -ENOMEM;
				goto series_done;
			}
			s->value = rd_f64(r);
			s->count = rd_u64(r);
			s->sum = rd_f64(r);
			if (bs != UINT32_MAX)
				rd_take(r, s->buckets, (f->bsets[bs].n + 1) * sizeof(uint64_t));
			s->start_ns = rd_u64(r);
			s->last_ns = rd_u64(r);
			if (r->bad)
				goto series_done;
			if (ovf) {
				f->overflow = s;
			} else if (atel__agg_family_append(f, s) < 0 || atel__agg_idx_put(a, h, s) < 0) {
				rc = -ENOMEM;
				goto series_done;
			} else {
				a->nseries_total++;
			}
			s = NULL;
			rc = 0;
series_done:
			for (uint32_t o = 0; o < nown; o++)
				free(own[o]);
			if (rc) {
				if (s && f->nseries && f->series[f->nseries - 1] == s)
					f->nseries--;
				atel__agg_series_free(s);
				return rc;
			}
		}
	}
	if (r->bad || r->off != r->len)
		return -EINVAL;
	return 0;
}

int atel__agg_load(struct atel_agg *a, const char *path, struct atel_log_pos *pos)
{
	struct atel_log_pos p = { 0 };
	char *data = NULL;
	size_t len = 0;
	struct rd r = { 0 };
	uint32_t crc;
	int rc;

	if (!a || !path)
		return -EINVAL;
	rc = atel__read_file(path, (size_t)1 << 32, &data, &len, NULL, 0);
	if (rc)
		return rc == -EFBIG ? -EINVAL : rc;
	if (len < 12) {
		rc = -EINVAL;
		goto out;
	}
	memcpy(&crc, data + len - 4, 4);
	if (crc != (uint32_t)crc32(0L, (const Bytef *)data, (uInt)(len - 4))) {
		rc = -EINVAL;
		goto out;
	}
	r.p = (const unsigned char *)data;
	r.len = len - 4;
	pthread_mutex_lock(&a->lock);
	atel__agg_clear(a);
	rc = load_body(a, &r, &p);
	if (rc)
		atel__agg_clear(a);
	pthread_mutex_unlock(&a->lock);
	if (!rc && pos)
		*pos = p;
out:
	free(data);
	return rc;
}
