/* SPDX-License-Identifier: MIT */
/*
 * logprom.c - the log as scraped series (logprom.h): one pass of the log
 * reader, per log series the state /metrics would show, emitted as samples.
 */
#include "logprom.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atel_abi.h"
#include "buf.h"
#include "logread.h"
#include "segformat.h"
#include "util.h"

#define NONE_T INT64_MIN
#define SKIP_ID UINT32_MAX
#define CACHE_SNAPS 8

/* A series definition kept by the cache (deep copy of a decoder's). */
struct cdef {
	uint64_t hash;
	struct atel_dec_series ds;   /* pointers into mem and bounds */
	char *mem;
	double *bounds;
};

/* One series' state at a file boundary. */
struct cstate {
	const struct cdef *def;
	double value, sum;
	uint64_t count;
	int64_t pending_t, last_emit;
	bool pending;
};

/* Every series' state at the start of file resume_seq. */
struct csnap {
	uint64_t resume_seq;
	uint64_t nbefore;            /* files before resume_seq when taken */
	int64_t hiwater;             /* latest event time before resume_seq */
	int64_t last_ms, res, carry;
	size_t n, cap;
	struct cstate *st;           /* in first-appearance order */
	uint64_t *bk;                /* histogram buckets, in that order */
	size_t nbk, capbk;
};

struct atel_logprom_cache {
	char *dir;
	uint64_t oldest;
	struct cdef **dtab;          /* open addressing by hash */
	size_t dcap, dn;
	struct csnap snaps[CACHE_SNAPS]; /* by resume_seq */
	size_t nsnaps;
	uint64_t files_skipped, restores;
};

struct lser {
	uint64_t hash;
	uint8_t mtype;
	bool skip;                   /* no exposed series wanted */
	bool pending;                /* state changed since the last emitted sample */
	uint32_t nb;                 /* histogram bounds */
	uint32_t nexp;               /* exposed series */
	uint32_t *ids;               /* nexp: SKIP_ID or the caller's id */
	uint64_t *buckets;           /* nb + 1, per bucket */
	double value, sum;
	uint64_t count;
	int64_t pending_t, last_emit;
	const struct cdef *def;      /* with a cache */
};

struct scan {
	const struct atel_logprom_opts *o;
	struct lser **tab;           /* open addressing by hash */
	size_t cap, n;
	struct lser **all;
	size_t nall, capall;
	int64_t carry, res;
	uint64_t samples;
	struct atel_logprom_cache *cache; /* tracks every series' state */
	int64_t hiwater;             /* latest (adjusted) event time so far */
	int64_t last_ms;
	struct csnap cand;           /* latest boundary entirely before mint_ms */
	bool have_cand;
};

static size_t mix(uint64_t h, size_t cap)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)(h & (cap - 1));
}

static struct lser *lookup(struct scan *s, uint64_t h)
{
	if (!s->cap)
		return NULL;
	for (size_t i = mix(h, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (!s->tab[i])
			return NULL;
		if (s->tab[i]->hash == h)
			return s->tab[i];
	}
}

static int insert(struct scan *s, struct lser *l)
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		struct lser **t = calloc(nc, sizeof(*t));
		if (!t)
			return -ENOMEM;
		for (size_t k = 0; k < s->cap; k++)
			if (s->tab[k]) {
				size_t i = mix(s->tab[k]->hash, nc);
				while (t[i])
					i = (i + 1) & (nc - 1);
				t[i] = s->tab[k];
			}
		free(s->tab);
		s->tab = t;
		s->cap = nc;
	}
	if (s->nall == s->capall) {
		size_t nc = s->capall ? s->capall * 2 : 256;
		struct lser **a = realloc(s->all, nc * sizeof(*a));
		if (!a)
			return -ENOMEM;
		s->all = a;
		s->capall = nc;
	}
	size_t i = mix(l->hash, s->cap);
	while (s->tab[i])
		i = (i + 1) & (s->cap - 1);
	s->tab[i] = l;
	s->n++;
	s->all[s->nall++] = l;
	return 0;
}

/* ---- the cache's definitions ---- */

static void cdef_free(struct cdef *d)
{
	if (d) {
		free(d->mem);
		free(d->bounds);
		free(d);
	}
}

/* The cache's copy of ds (made on first sight). NULL: out of memory. */
static const struct cdef *cdef_get(struct atel_logprom_cache *c, const struct atel_dec_series *ds)
{
	if (c->dcap) {
		for (size_t i = mix(ds->key_hash, c->dcap);; i = (i + 1) & (c->dcap - 1)) {
			if (!c->dtab[i])
				break;
			if (c->dtab[i]->hash == ds->key_hash)
				return c->dtab[i];
		}
	}
	if ((c->dn + 1) * 2 > c->dcap) {
		size_t nc = c->dcap ? c->dcap * 2 : 256;
		struct cdef **t = calloc(nc, sizeof(*t));
		if (!t)
			return NULL;
		for (size_t k = 0; k < c->dcap; k++)
			if (c->dtab[k]) {
				size_t i = mix(c->dtab[k]->hash, nc);
				while (t[i])
					i = (i + 1) & (nc - 1);
				t[i] = c->dtab[k];
			}
		free(c->dtab);
		c->dtab = t;
		c->dcap = nc;
	}
	struct cdef *d = calloc(1, sizeof(*d));
	uint32_t nl = ds->nlabels > ATEL_LABELS_MAX ? ATEL_LABELS_MAX : ds->nlabels;
	size_t len = strlen(ds->name) + 1;
	for (uint32_t i = 0; i < nl; i++)
		len += strlen(ds->keys[i]) + strlen(ds->values[i]) + 2;
	if (!d || !(d->mem = malloc(len)) ||
	    (ds->nbounds && !(d->bounds = malloc(ds->nbounds * sizeof(double))))) {
		cdef_free(d);
		return NULL;
	}
	d->hash = ds->key_hash;
	d->ds = *ds;
	char *p = d->mem;
#define CDEF_PUT(dst, src) do { size_t m_ = strlen(src) + 1; memcpy(p, src, m_); (dst) = p; p += m_; } while (0)
	CDEF_PUT(d->ds.name, ds->name);
	for (uint32_t i = 0; i < nl; i++) {
		CDEF_PUT(d->ds.keys[i], ds->keys[i]);
		CDEF_PUT(d->ds.values[i], ds->values[i]);
	}
#undef CDEF_PUT
	d->ds.nlabels = nl;
	if (ds->nbounds)
		memcpy(d->bounds, ds->bounds, ds->nbounds * sizeof(double));
	d->ds.bounds = d->bounds;
	size_t i = mix(d->hash, c->dcap);
	while (c->dtab[i])
		i = (i + 1) & (c->dcap - 1);
	c->dtab[i] = d;
	c->dn++;
	return d;
}

static void csnap_free(struct csnap *n)
{
	free(n->st);
	free(n->bk);
	memset(n, 0, sizeof(*n));
}

/* Forgets everything (another log, or retention removed files). */
static void cache_reset(struct atel_logprom_cache *c)
{
	for (size_t i = 0; i < c->nsnaps; i++)
		csnap_free(&c->snaps[i]);
	c->nsnaps = 0;
	for (size_t k = 0; k < c->dcap; k++)
		cdef_free(c->dtab[k]);
	free(c->dtab);
	c->dtab = NULL;
	c->dcap = c->dn = 0;
	free(c->dir);
	c->dir = NULL;
}

struct atel_logprom_cache *atel__logprom_cache_new(void)
{
	return calloc(1, sizeof(struct atel_logprom_cache));
}

void atel__logprom_cache_free(struct atel_logprom_cache *c)
{
	if (!c)
		return;
	cache_reset(c);
	free(c);
}

void atel__logprom_cache_stats(const struct atel_logprom_cache *c, uint64_t *files_skipped, uint64_t *restores)
{
	*files_skipped = c ? c->files_skipped : 0;
	*restores = c ? c->restores : 0;
}

/* The exposition's name rules (exporters/encode/prometheus.c put_name). */
static void put_name(struct atel_buf *b, const char *s, bool label)
{
	if (!*s || (*s >= '0' && *s <= '9') || (label && s[0] == '_' && s[1] == '_'))
		atel__buf_putc(b, label ? 'x' : '_');
	for (; *s; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			  (c == ':' && !label);
		atel__buf_putc(b, ok ? c : '_');
	}
}

static bool ends_with(const char *s, size_t n, const char *suf)
{
	size_t m = strlen(suf);
	return n >= m && !memcmp(s + n - m, suf, m);
}

/* Creates the state of a log series and asks the caller about its exposed series. */
static int new_series(struct scan *s, const struct atel_dec_series *ds, struct lser **out)
{
	const struct atel_logprom_opts *o = s->o;
	struct lser *l = calloc(1, sizeof(*l));
	struct atel_buf base = { 0 }, lab = { 0 }, nm = { 0 };
	const char *keys[ATEL_LABELS_MAX + 2], *vals[ATEL_LABELS_MAX + 2];
	size_t loff[ATEL_LABELS_MAX + 1];
	char le[64];
	int rc = 0;

	if (!l)
		return -ENOMEM;
	if (s->cache && !(l->def = cdef_get(s->cache, ds))) {
		free(l);
		return -ENOMEM;
	}
	l->hash = ds->key_hash;
	l->mtype = ds->mtype;
	l->last_emit = NONE_T;
	l->pending_t = NONE_T;
	put_name(&base, ds->name, false);
	if (l->mtype == ATEL_MT_COUNTER && !ends_with(base.data, base.len, "_total"))
		atel__buf_puts(&base, "_total");
	atel__buf_putc(&base, '\0');
	if (l->mtype == ATEL_MT_HISTOGRAM) {
		l->nb = ds->nbounds;
		l->nexp = l->nb + 3;
		l->buckets = calloc(l->nb + 1, sizeof(*l->buckets));
	} else if (l->mtype == ATEL_MT_COUNTER || l->mtype == ATEL_MT_GAUGE) {
		l->nexp = 1;
	} else {
		l->nexp = 0;
	}
	l->ids = calloc(l->nexp ? l->nexp : 1, sizeof(*l->ids));
	if (!l->ids || (l->mtype == ATEL_MT_HISTOGRAM && !l->buckets) || base.oom) {
		rc = -ENOMEM;
		goto out;
	}
	if (o->family && l->nexp)
		o->family(o->arg, base.data, l->mtype);
	/* label text, NUL-separated */
	uint32_t nl = ds->nlabels > ATEL_LABELS_MAX ? ATEL_LABELS_MAX : ds->nlabels;
	for (uint32_t i = 0; i < nl; i++) {
		loff[i] = lab.len;
		if (l->mtype == ATEL_MT_HISTOGRAM && !strcmp(ds->keys[i], "le"))
			atel__buf_puts(&lab, "exported_le");
		else
			put_name(&lab, ds->keys[i], true);
		atel__buf_putc(&lab, '\0');
	}
	if (lab.oom) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nl; i++) {
		keys[i + 1] = lab.data + loff[i];
		vals[i + 1] = ds->values[i];
	}
	keys[0] = "__name__";
	l->skip = true;
	for (uint32_t e = 0; e < l->nexp; e++) {
		size_t n = nl + 1;
		atel__buf_reset(&nm);
		atel__buf_puts(&nm, base.data);
		if (l->mtype == ATEL_MT_HISTOGRAM) {
			if (e <= l->nb) {
				atel__buf_puts(&nm, "_bucket");
				if (e < l->nb) {
					struct atel_buf t = { 0 };
					atel__buf_double(&t, ds->bounds[e]);
					snprintf(le, sizeof(le), "%.*s", t.oom ? 0 : (int)t.len, t.data ? t.data : "");
					atel__buf_free(&t);
				} else {
					snprintf(le, sizeof(le), "+Inf");
				}
				keys[n] = "le";
				vals[n++] = le;
			} else {
				atel__buf_puts(&nm, e == l->nb + 1 ? "_sum" : "_count");
			}
		}
		atel__buf_putc(&nm, '\0');
		if (nm.oom) {
			rc = -ENOMEM;
			goto out;
		}
		vals[0] = nm.data;
		l->ids[e] = SKIP_ID;
		if (o->name_hint && strcmp(o->name_hint, nm.data))
			continue;
		uint32_t id = 0;
		rc = o->series(o->arg, keys, vals, n, &id);
		if (rc < 0)
			goto out;
		if (rc > 0) {
			l->ids[e] = id;
			l->skip = false;
		}
		rc = 0;
	}
out:
	atel__buf_free(&base);
	atel__buf_free(&lab);
	atel__buf_free(&nm);
	if (rc == 0)
		rc = insert(s, l);
	if (rc < 0) {
		free(l->ids);
		free(l->buckets);
		free(l);
		return rc;
	}
	*out = l;
	return 0;
}

/* The current state as samples at t. */
static int emit(struct scan *s, struct lser *l, int64_t t)
{
	const struct atel_logprom_opts *o = s->o;
	int rc;

	l->last_emit = t;
	if (t < o->mint_ms || t > o->maxt_ms)
		return 0;
	if (l->mtype != ATEL_MT_HISTOGRAM) {
		if (l->ids[0] == SKIP_ID)
			return 0;
		s->samples++;
		if ((rc = o->sample(o->arg, l->ids[0], t, l->value)) > 0) {
			l->ids[0] = SKIP_ID; /* the caller has seen enough of it */
			l->skip = true;
			rc = 0;
		}
		return rc;
	}
	uint64_t cum = 0;
	bool wanted = false;
	for (uint32_t e = 0; e < l->nexp; e++) {
		double v;
		if (e <= l->nb) {
			cum += l->buckets[e];
			v = (double)cum;
		} else {
			v = e == l->nb + 1 ? l->sum : (double)l->count;
		}
		if (l->ids[e] == SKIP_ID)
			continue;
		s->samples++;
		if ((rc = o->sample(o->arg, l->ids[e], t, v)) < 0)
			return rc;
		if (rc > 0)
			l->ids[e] = SKIP_ID;
		else
			wanted = true;
	}
	if (!wanted)
		l->skip = true;
	return 0;
}

/* Repeats the last state every carry ms after the last sample, up to upto
 * (exclusive unless incl). */
static int carry(struct scan *s, struct lser *l, int64_t upto, bool incl)
{
	const struct atel_logprom_opts *o = s->o;
	int rc;

	if (s->carry <= 0 || l->last_emit == NONE_T)
		return 0;
	int64_t p = l->last_emit + s->carry;
	if (p < o->mint_ms) {
		int64_t k = (o->mint_ms - l->last_emit + s->carry - 1) / s->carry;
		p = l->last_emit + k * s->carry;
	}
	for (; incl ? p <= upto : p < upto; p += s->carry) {
		if (p > o->maxt_ms || l->skip)
			break;
		if ((rc = emit(s, l, p)) < 0)
			return rc;
	}
	return 0;
}

/* Applies an event's value; false if the aggregates model would reject it. */
static bool apply(struct lser *l, const struct atel_event *ev)
{
	if (ev->kind == ATEL_EV_HISTFOLD) {
		if (l->mtype != ATEL_MT_HISTOGRAM || ev->histfold.nbuckets != l->nb + 1)
			return false;
		for (uint32_t i = 0; i <= l->nb; i++)
			l->buckets[i] += ev->histfold.buckets[i];
		l->count += ev->histfold.count;
		l->sum += ev->histfold.sum;
		return true;
	}
	double v = ev->sample.value;
	switch (l->mtype) {
	case ATEL_MT_COUNTER:
		if (ev->sample.set) {
			if (!(v >= l->value) || isinf(v))
				return false;
			l->value = v;
		} else {
			if (!(v >= 0) || isinf(v))
				return false;
			l->value += v;
		}
		return true;
	case ATEL_MT_GAUGE:
		l->value = ev->sample.set ? v : l->value + v;
		return true;
	case ATEL_MT_HISTOGRAM: {
		/* a folded histogram SAMPLE has no buckets: only plain observations */
		if (isnan(v) || ev->sample.folded)
			return false;
		uint32_t lo = 0, hi = l->nb;
		const double *b = ev->sample.series->bounds;
		if (ev->sample.series->nbounds != l->nb)
			return false;
		while (lo < hi) { /* first bound >= v: le is inclusive */
			uint32_t mid = (lo + hi) / 2;
			if (b[mid] < v)
				lo = mid + 1;
			else
				hi = mid;
		}
		l->buckets[lo]++;
		l->count++;
		l->sum += v;
		return true;
	}
	default:
		return false;
	}
}

static int on_event(struct scan *s, const struct atel_dec_series *ds, const struct atel_event *ev)
{
	struct lser *l = lookup(s, ds->key_hash);
	int64_t t = (int64_t)(ev->ts_ns / 1000000u);
	int rc;

	if (!l && (rc = new_series(s, ds, &l)) < 0)
		return rc;
	/* with a cache, every series' state is kept (a later query may want it) */
	if ((l->skip && !s->cache) || l->mtype != ds->mtype)
		return 0;
	if (l->pending && t < l->pending_t)
		t = l->pending_t; /* rings interleave: time never goes back within a series */
	if (l->last_emit != NONE_T && t <= l->last_emit)
		t = l->last_emit + 1;
	if (t > s->hiwater)
		s->hiwater = t;
	if (l->pending && (s->res > 1 ? t / s->res != l->pending_t / s->res : t != l->pending_t)) {
		if ((rc = emit(s, l, l->pending_t)) < 0)
			return rc;
		l->pending = false;
	}
	if (!l->pending && (rc = carry(s, l, t, false)) < 0)
		return rc;
	if (!apply(l, ev))
		return 0;
	l->pending = true;
	l->pending_t = t;
	return 0;
}

/* ---- cache: capture and restore ---- */

/* Every series' state, now, into the candidate copy (resuming at file resume_seq). */
static int capture(struct scan *s, uint64_t resume_seq, uint64_t nbefore)
{
	struct csnap *n = &s->cand;
	size_t nbk = 0;

	for (size_t i = 0; i < s->nall; i++)
		if (s->all[i]->mtype == ATEL_MT_HISTOGRAM)
			nbk += s->all[i]->nb + 1;
	if (s->nall > n->cap) {
		struct cstate *st = realloc(n->st, s->nall * sizeof(*st));
		if (!st)
			return -ENOMEM;
		n->st = st;
		n->cap = s->nall;
	}
	if (nbk > n->capbk) {
		uint64_t *bk = realloc(n->bk, nbk * sizeof(*bk));
		if (!bk)
			return -ENOMEM;
		n->bk = bk;
		n->capbk = nbk;
	}
	n->resume_seq = resume_seq;
	n->nbefore = nbefore;
	n->hiwater = s->hiwater;
	n->last_ms = s->last_ms;
	n->res = s->res;
	n->carry = s->carry;
	n->n = s->nall;
	n->nbk = 0;
	for (size_t i = 0; i < s->nall; i++) {
		const struct lser *l = s->all[i];
		n->st[i] = (struct cstate){ .def = l->def, .value = l->value, .sum = l->sum, .count = l->count,
					    .pending_t = l->pending_t, .last_emit = l->last_emit, .pending = l->pending };
		if (l->mtype == ATEL_MT_HISTOGRAM) {
			memcpy(n->bk + n->nbk, l->buckets, (l->nb + 1) * sizeof(*l->buckets));
			n->nbk += l->nb + 1;
		}
	}
	s->have_cand = true;
	return 0;
}

/* The candidate into the cache (kept sorted by resume_seq, at most CACHE_SNAPS, thinned evenly). */
static void commit(struct scan *s)
{
	struct atel_logprom_cache *c = s->cache;
	size_t at = 0;

	for (; at < c->nsnaps && c->snaps[at].resume_seq <= s->cand.resume_seq; at++)
		if (c->snaps[at].resume_seq == s->cand.resume_seq && c->snaps[at].res == s->cand.res &&
		    c->snaps[at].carry == s->cand.carry)
			return; /* have it (the candidate's buffers stay the scan's) */
	if (c->nsnaps == CACHE_SNAPS) {
		size_t drop = c->nsnaps - 1;
		uint64_t best = UINT64_MAX;
		for (size_t i = 1; i + 1 < c->nsnaps; i++) {
			uint64_t gap = c->snaps[i + 1].resume_seq - c->snaps[i - 1].resume_seq;
			if (gap < best) {
				best = gap;
				drop = i;
			}
		}
		csnap_free(&c->snaps[drop]);
		memmove(&c->snaps[drop], &c->snaps[drop + 1], (c->nsnaps - drop - 1) * sizeof(c->snaps[0]));
		c->nsnaps--;
		if (at > drop)
			at--;
	}
	memmove(&c->snaps[at + 1], &c->snaps[at], (c->nsnaps - at) * sizeof(c->snaps[0]));
	c->snaps[at] = s->cand;
	c->nsnaps++;
	memset(&s->cand, 0, sizeof(s->cand));
	s->have_cand = false;
}

static uint64_t count_before(const uint64_t *seqs, int n, uint64_t seq)
{
	uint64_t k = 0;
	for (int i = 0; i < n && seqs[i] < seq; i++)
		k++;
	return k;
}

/* Restores the best copy for this scan. @return the file to start at (0: the oldest), or -errno. */
static int64_t restore(struct scan *s, const uint64_t *seqs, int nseqs, uint64_t *skipped)
{
	const struct atel_logprom_opts *o = s->o;
	struct atel_logprom_cache *c = s->cache;
	const struct csnap *best = NULL;
	int rc;

	if (nseqs <= 0)
		return 0;
	if (!c->dir || strcmp(c->dir, o->segments_dir) || c->oldest != seqs[0]) {
		cache_reset(c);
		if (!(c->dir = strdup(o->segments_dir)))
			return -ENOMEM;
		c->oldest = seqs[0];
	}
	for (size_t i = 0; i < c->nsnaps; i++) {
		const struct csnap *n = &c->snaps[i];
		if (n->res == s->res && n->carry == s->carry && n->hiwater < o->mint_ms &&
		    count_before(seqs, nseqs, n->resume_seq) == n->nbefore)
			best = n;
	}
	if (!best)
		return 0;
	size_t b = 0;
	for (size_t i = 0; i < best->n; i++) {
		const struct cstate *cs = &best->st[i];
		struct lser *l;
		if ((rc = new_series(s, &cs->def->ds, &l)) < 0)
			return rc;
		l->value = cs->value;
		l->sum = cs->sum;
		l->count = cs->count;
		l->pending_t = cs->pending_t;
		l->last_emit = cs->last_emit;
		l->pending = cs->pending;
		if (l->mtype == ATEL_MT_HISTOGRAM) {
			if (b + l->nb + 1 > best->nbk)
				return -EINVAL; /* cannot happen: the copy was taken from these definitions */
			memcpy(l->buckets, best->bk + b, (l->nb + 1) * sizeof(*l->buckets));
			b += l->nb + 1;
		}
	}
	s->hiwater = best->hiwater;
	s->last_ms = best->last_ms;
	*skipped = best->nbefore;
	c->files_skipped += best->nbefore;
	c->restores++;
	return (int64_t)best->resume_seq;
}

struct corrupt_ctx {
	uint64_t n;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	(void)file;
	(void)offset;
	(void)why;
	((struct corrupt_ctx *)arg)->n++;
}

int atel__logprom_scan(const struct atel_logprom_opts *o, struct atel_logprom_stats *st, char *err, size_t errlen)
{
	struct scan s = { .o = o };
	struct corrupt_ctx cc = { 0 };
	struct atel_log_reader_opts ro = {
		.segments_dir = o->single_file ? NULL : o->segments_dir,
		.single_file = o->single_file,
		.follow = true,
		.on_corrupt = on_corrupt,
		.arg = &cc,
	};
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	struct atel_log_pos pos;
	uint64_t events = 0, cur_seq = 0, skipped = 0, *seqs = NULL;
	int nseqs = 0;
	int64_t resume = 0;
	int rc;

	s.carry = o->carry_ms == 0 ? 60000 : o->carry_ms;
	s.res = o->resolution_ms > 1 ? o->resolution_ms : 1;
	s.hiwater = INT64_MIN;
	if (o->cache && !o->single_file && o->segments_dir) {
		s.cache = o->cache;
		nseqs = atel__seg_list(o->segments_dir, &seqs);
		if ((resume = restore(&s, seqs, nseqs, &skipped)) < 0) {
			rc = (int)resume;
			goto out;
		}
		ro.start.file_seq = (uint64_t)resume;
	}
	if ((rc = atel__log_open(&r, &ro)) < 0) {
		atel__seterr(err, errlen, "%s: %s", o->single_file ? o->single_file : o->segments_dir, strerror(-rc));
		goto out;
	}
	while ((rc = atel__log_next(r, &ev, &pos)) == 1) {
		const struct atel_dec_series *ds;
		if (pos.file_seq != cur_seq) {
			/* a file boundary: every earlier file is sealed */
			if (s.cache && cur_seq && s.hiwater < o->mint_ms &&
			    (rc = capture(&s, pos.file_seq, count_before(seqs, nseqs, pos.file_seq))) < 0)
				break;
			cur_seq = pos.file_seq;
		}
		if (ev.kind == ATEL_EV_SAMPLE)
			ds = ev.sample.series;
		else if (ev.kind == ATEL_EV_HISTFOLD)
			ds = ev.histfold.series;
		else
			continue;
		if (!ds)
			continue;
		if ((++events & 4095) == 0 && o->interrupt && (rc = o->interrupt(o->arg)) != 0)
			break;
		if ((int64_t)(ev.ts_ns / 1000000u) > s.last_ms)
			s.last_ms = (int64_t)(ev.ts_ns / 1000000u);
		if ((rc = on_event(&s, ds, &ev)) < 0)
			break;
	}
	if (rc < 0 && rc != -ENOMEM && !o->interrupt)
		atel__seterr(err, errlen, "reading the log: %s", strerror(-rc));
	/* a copy taken at a boundary is whole even if the scan stopped later
	 * (timeout, limits): a log too long for one timeout is read in steps */
	if (s.cache && s.have_cand)
		commit(&s);
	if (rc >= 0) {
		int64_t end = o->end_ms ? o->end_ms : s.last_ms;
		rc = 0;
		for (size_t i = 0; i < s.nall && rc == 0; i++) {
			struct lser *l = s.all[i];
			if (l->skip)
				continue;
			if (l->pending && (rc = emit(&s, l, l->pending_t)) < 0)
				break;
			l->pending = false;
			rc = carry(&s, l, end, true);
		}
	}
	if (st) {
		struct atel_log_read_stats rs;
		atel__log_stats(r, &rs);
		st->events = events;
		st->samples = s.samples;
		st->series = s.nall;
		st->corrupt_frames = rs.corrupt_frames > cc.n ? rs.corrupt_frames : cc.n;
		st->last_ms = s.last_ms;
		st->files_skipped = skipped;
		st->resume_seq = (uint64_t)resume;
	}
out:
	atel__log_close(r);
	for (size_t i = 0; i < s.nall; i++) {
		free(s.all[i]->ids);
		free(s.all[i]->buckets);
		free(s.all[i]);
	}
	free(s.all);
	free(s.tab);
	free(seqs);
	csnap_free(&s.cand);
	return rc;
}
