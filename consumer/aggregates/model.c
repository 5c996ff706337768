/* SPDX-License-Identifier: MIT */
/*
 * model.c - the aggregates model: in-memory metric state (aggregates.h).
 *
 * Layout: a family per metric name (type fixed by its first sample), series
 * owned by their family, and one open-addressing index from the decoder's
 * 64-bit series key hash to the series, so applying a sample is one probe
 * plus a label comparison (the hash comes from untrusted producers, so a
 * colliding hash must never merge two series). Series folded by the
 * cardinality guard get index entries that point at their family's overflow
 * series, so a hot folded series costs one probe as well.
 *
 * Locking: one mutex. The applying thread (the exporters' log follower)
 * holds it per event; snapshot() holds it only while copying, then sorts the
 * copy unlocked. Nothing here is reachable from the drain thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agg_internal.h"
#include "catalog.h"
#include "util.h"

uint64_t atel__agg_fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* ---- families ------------------------------------------------------------ */

void atel__agg_series_free(struct series *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nlabels; i++) {
		free(s->keys[i]);
		free(s->values[i]);
	}
	free(s->keys);
	free(s->values);
	free(s->buckets);
	free(s);
}

static void family_free(struct family *f)
{
	if (!f)
		return;
	for (uint32_t i = 0; i < f->nseries; i++)
		atel__agg_series_free(f->series[i]);
	atel__agg_series_free(f->overflow);
	free(f->series);
	for (uint32_t i = 0; i < f->nbsets; i++)
		free(f->bsets[i].b);
	free(f->bsets);
	free(f->name);
	free(f);
}

struct family *atel__agg_family_find(const struct atel_agg *a, const char *name, uint64_t h)
{
	if (!a->fidx_cap)
		return NULL;
	for (uint32_t i = (uint32_t)mix(h) & (a->fidx_cap - 1);; i = (i + 1) & (a->fidx_cap - 1)) {
		uint32_t v = a->fidx[i];
		if (!v)
			return NULL;
		if (a->fams[v - 1]->name_hash == h && !strcmp(a->fams[v - 1]->name, name))
			return a->fams[v - 1];
	}
}

static int fidx_rebuild(struct atel_agg *a, uint32_t cap)
{
	uint32_t *n = calloc(cap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (uint32_t f = 0; f < a->nfams; f++) {
		uint32_t i = (uint32_t)mix(a->fams[f]->name_hash) & (cap - 1);
		while (n[i])
			i = (i + 1) & (cap - 1);
		n[i] = f + 1;
	}
	free(a->fidx);
	a->fidx = n;
	a->fidx_cap = cap;
	return 0;
}

struct family *atel__agg_family_add(struct atel_agg *a, const char *name, uint8_t mtype)
{
	const struct atel_catalog_metric *cat;
	struct family *f;

	if (a->nfams == a->fams_cap) {
		uint32_t cap = a->fams_cap ? a->fams_cap * 2 : 32;
		struct family **n = realloc(a->fams, cap * sizeof(*n));
		if (!n)
			return NULL;
		a->fams = n;
		a->fams_cap = cap;
	}
	if ((a->nfams + 1) * 2 > a->fidx_cap &&
	    fidx_rebuild(a, a->fidx_cap ? a->fidx_cap * 2 : 64) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->name = strdup(name))) {
		free(f);
		return NULL;
	}
	f->name_hash = atel__agg_fnv1a(name);
	f->mtype = mtype;
	cat = atel__catalog_find(name);
	f->help = cat ? cat->help : NULL;
	a->fams[a->nfams++] = f;
	{
		uint32_t i = (uint32_t)mix(f->name_hash) & (a->fidx_cap - 1);
		while (a->fidx[i])
			i = (i + 1) & (a->fidx_cap - 1);
		a->fidx[i] = a->nfams;
	}
	return f;
}

/* Index of the family's bucket set equal to (n, b), added if new; UINT32_MAX on ENOMEM. */
uint32_t atel__agg_family_bset(struct family *f, uint32_t n, const double *b)
{
	struct bset *nb;

	for (uint32_t i = 0; i < f->nbsets; i++)
		if (f->bsets[i].n == n && (n == 0 || !memcmp(f->bsets[i].b, b, n * sizeof(double))))
			return i;
	nb = realloc(f->bsets, (f->nbsets + 1) * sizeof(*nb));
	if (!nb)
		return UINT32_MAX;
	f->bsets = nb;
	nb[f->nbsets].n = n;
	nb[f->nbsets].b = malloc((n ? n : 1) * sizeof(double));
	if (!nb[f->nbsets].b)
		return UINT32_MAX;
	if (n)
		memcpy(nb[f->nbsets].b, b, n * sizeof(double));
	return f->nbsets++;
}

/* ---- series index ---------------------------------------------------------- */

static int idx_grow(struct atel_agg *a)
{
	uint32_t cap = a->idx_cap ? a->idx_cap * 2 : 1024;
	struct ient *n = calloc(cap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (uint32_t j = 0; j < a->idx_cap; j++) {
		if (!a->idx[j].s)
			continue;
		uint32_t i = (uint32_t)mix(a->idx[j].h) & (cap - 1);
		while (n[i].s)
			i = (i + 1) & (cap - 1);
		n[i] = a->idx[j];
	}
	free(a->idx);
	a->idx = n;
	a->idx_cap = cap;
	return 0;
}

int atel__agg_idx_put(struct atel_agg *a, uint64_t h, struct series *s)
{
	uint32_t i;

	if ((a->idx_len + 1) * 4 > a->idx_cap * 3 && idx_grow(a) < 0)
		return -ENOMEM;
	i = (uint32_t)mix(h) & (a->idx_cap - 1);
	while (a->idx[i].s)
		i = (i + 1) & (a->idx_cap - 1);
	a->idx[i].h = h;
	a->idx[i].s = s;
	a->idx_len++;
	return 0;
}

static bool series_matches(const struct series *s, const struct atel_dec_series *d)
{
	if (strcmp(s->fam->name, d->name))
		return false;
	if (s->overflow)            /* a folded series' entry: the hash identifies it */
		return true;
	if (s->nlabels != d->nlabels)
		return false;
	for (uint32_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->keys[i], d->keys[i]) || strcmp(s->values[i], d->values[i]))
			return false;
	return true;
}

static struct series *idx_find(const struct atel_agg *a, const struct atel_dec_series *d)
{
	if (!a->idx_cap)
		return NULL;
	for (uint32_t i = (uint32_t)mix(d->key_hash) & (a->idx_cap - 1);; i = (i + 1) & (a->idx_cap - 1)) {
		const struct ient *e = &a->idx[i];
		if (!e->s)
			return NULL;
		if (e->h == d->key_hash && series_matches(e->s, d))
			return e->s;
	}
}

/* @return true if h was not in the folded set (and is now, space permitting). */
bool atel__agg_folded_insert(struct atel_agg *a, uint64_t h)
{
	uint32_t i;

	h = h ? h : 1;
	if ((a->folded_len + 1) * 2 > a->folded_cap) {
		uint32_t cap = a->folded_cap ? a->folded_cap * 2 : 1024;
		uint64_t *n;
		if (a->folded_len >= FOLDED_MAX || !(n = calloc(cap, sizeof(*n))))
			return true;
		for (uint32_t j = 0; j < a->folded_cap; j++) {
			if (!a->folded[j])
				continue;
			uint32_t k = (uint32_t)mix(a->folded[j]) & (cap - 1);
			while (n[k])
				k = (k + 1) & (cap - 1);
			n[k] = a->folded[j];
		}
		free(a->folded);
		a->folded = n;
		a->folded_cap = cap;
	}
	for (i = (uint32_t)mix(h) & (a->folded_cap - 1); a->folded[i]; i = (i + 1) & (a->folded_cap - 1))
		if (a->folded[i] == h)
			return false;
	a->folded[i] = h;
	a->folded_len++;
	return true;
}

struct series *atel__agg_series_new(struct family *f, uint64_t h, uint32_t nlabels, const char *const *keys,
				 const char *const *values, bool overflow, uint32_t nbounds, const double *bounds)
{
	struct series *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->key_hash = h;
	s->fam = f;
	s->overflow = overflow;
	s->bset = UINT32_MAX;
	if (nlabels) {
		s->keys = calloc(nlabels, sizeof(char *));
		s->values = calloc(nlabels, sizeof(char *));
		if (!s->keys || !s->values)
			goto fail;
		for (uint32_t i = 0; i < nlabels; i++) {
			s->nlabels = i + 1;
			if (!(s->keys[i] = strdup(keys[i])) || !(s->values[i] = strdup(values[i])))
				goto fail;
		}
	}
	if (f->mtype == ATEL_MT_HISTOGRAM) {
		s->bset = atel__agg_family_bset(f, nbounds, bounds);
		if (s->bset == UINT32_MAX || !(s->buckets = calloc(nbounds + 1, sizeof(uint64_t))))
			goto fail;
	}
	return s;
fail:
	atel__agg_series_free(s);
	return NULL;
}

int atel__agg_family_append(struct family *f, struct series *s)
{
	if (f->nseries == f->cap) {
		uint32_t cap = f->cap ? f->cap * 2 : 8;
		struct series **n = realloc(f->series, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		f->series = n;
		f->cap = cap;
	}
	f->series[f->nseries++] = s;
	return 0;
}

/* ---- public: lifecycle ----------------------------------------------------- */

int atel__agg_new(struct atel_agg **out, uint32_t series_limit)
{
	struct atel_agg *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	if (pthread_mutex_init(&a->lock, NULL)) {
		free(a);
		return -ENOMEM;
	}
	a->series_limit = series_limit ? series_limit : UINT32_MAX;
	*out = a;
	return 0;
}

void atel__agg_clear(struct atel_agg *a)
{
	for (uint32_t i = 0; i < a->nfams; i++)
		family_free(a->fams[i]);
	free(a->fams);
	free(a->fidx);
	free(a->idx);
	free(a->folded);
	a->fams = NULL;
	a->fidx = NULL;
	a->idx = NULL;
	a->folded = NULL;
	a->nfams = a->fams_cap = a->fidx_cap = a->idx_len = a->idx_cap = 0;
	a->folded_len = a->folded_cap = 0;
	a->overflow = a->type_clashes = a->rejected = a->expired = 0;
	a->nseries_total = 0;
}

void atel__agg_free(struct atel_agg *a)
{
	if (!a)
		return;
	atel__agg_clear(a);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* ---- public: apply ---------------------------------------------------------- */

static bool same_bounds(const struct series *s, const struct atel_dec_series *d)
{
	const struct bset *b = &s->fam->bsets[s->bset];

	return b->n == d->nbounds && (b->n == 0 || !memcmp(b->b, d->bounds, b->n * sizeof(double)));
}

/* Applies the value; false if the sample is not valid for the series' type. */
static bool series_update(struct series *s, const struct atel_event *ev)
{
	double v = ev->sample.value;

	if (ev->kind == ATEL_EV_HISTFOLD) {
		/* folded observations (docs/abi.md 2.3): the buckets, count and sum add up exactly */
		const struct bset *b = &s->fam->bsets[s->bset];

		if (s->fam->mtype != ATEL_MT_HISTOGRAM || ev->histfold.nbuckets != b->n + 1)
			return false;
		for (uint32_t i = 0; i < ev->histfold.nbuckets; i++)
			s->buckets[i] += ev->histfold.buckets[i];
		s->count += ev->histfold.count;
		s->sum += ev->histfold.sum;
		goto done;
	}
	switch (s->fam->mtype) {
	case ATEL_MT_COUNTER:
		/* Counters only go up: a negative or NaN increment would break
		 * every rate() downstream, so it is rejected and counted. */
		if (ev->sample.set) {
			if (!(v >= s->value) || isinf(v))
				return false;
			s->value = v;
		} else {
			if (!(v >= 0) || isinf(v))
				return false;
			s->value += v;
		}
		break;
	case ATEL_MT_GAUGE:
		s->value = ev->sample.set ? v : s->value + v;
		break;
	case ATEL_MT_HISTOGRAM: {
		const struct bset *b = &s->fam->bsets[s->bset];
		uint32_t lo = 0, hi = b->n;
		if (isnan(v))
			return false;
		while (lo < hi) { /* first bound >= v: Prometheus' le is inclusive */
			uint32_t mid = (lo + hi) / 2;
			if (b->b[mid] < v)
				lo = mid + 1;
			else
				hi = mid;
		}
		s->buckets[lo]++;
		s->count++;
		s->sum += v;
		break;
	}
	default:
		return false;
	}
done:
	if (!s->start_ns)
		s->start_ns = ev->ts_ns ? ev->ts_ns : 1;
	s->last_ns = ev->ts_ns;
	return true;
}

void atel__agg_apply(struct atel_agg *a, const struct atel_event *ev)
{
	const struct atel_dec_series *d;
	struct family *f;
	struct series *s;

	if (!a || !ev)
		return;
	/* a sample, or folded histogram observations (docs/abi.md 2.3) */
	d = ev->kind == ATEL_EV_SAMPLE ? ev->sample.series : ev->kind == ATEL_EV_HISTFOLD ? ev->histfold.series : NULL;
	if (!d || !d->name)
		return;
	pthread_mutex_lock(&a->lock);
	s = idx_find(a, d);
	if (s) {
		if (s->fam->mtype != d->mtype || (d->mtype == ATEL_MT_HISTOGRAM && !same_bounds(s, d)))
			a->type_clashes++;
		else if (!series_update(s, ev))
			a->rejected++;
		goto out;
	}
	f = atel__agg_family_find(a, d->name, atel__agg_fnv1a(d->name));
	if (!f) {
		if (d->mtype < ATEL_MT_COUNTER || d->mtype > ATEL_MT_HISTOGRAM) {
			a->type_clashes++;
			goto out;
		}
		if (a->nfams >= FAMILIES_MAX) { /* the guard for metric names themselves */
			a->rejected++;
			goto out;
		}
		if (!(f = atel__agg_family_add(a, d->name, d->mtype)))
			goto out;
	}
	if (f->mtype != d->mtype) {
		a->type_clashes++;
		goto out;
	}
	if (f->nseries >= a->series_limit || a->nseries_total >= SERIES_TOTAL_MAX) {
		/* Cardinality guard: the family keeps its first series_limit
		 * label sets; everything else lands in one overflow series. */
		if (!f->overflow) {
			static const char *const k[] = { "atel_overflow" }, *const v[] = { "true" };
			f->overflow = atel__agg_series_new(f, 0, 1, k, v, true, d->nbounds, d->bounds);
			if (!f->overflow)
				goto out;
		}
		s = f->overflow;
		if (atel__agg_folded_insert(a, d->key_hash))
			a->overflow++;
		if (d->mtype == ATEL_MT_HISTOGRAM && !same_bounds(s, d)) {
			a->type_clashes++;
			goto out;
		}
		atel__agg_idx_put(a, d->key_hash, s); /* ENOMEM: the next sample probes the slow path again */
	} else {
		s = atel__agg_series_new(f, d->key_hash, d->nlabels, d->keys, d->values, false, d->nbounds, d->bounds);
		if (!s)
			goto out;
		if (atel__agg_family_append(f, s) < 0) {
			atel__agg_series_free(s);
			goto out;
		}
		if (atel__agg_idx_put(a, d->key_hash, s) < 0) {
			f->nseries--;
			atel__agg_series_free(s);
			goto out;
		}
		a->nseries_total++;
	}
	if (!series_update(s, ev))
		a->rejected++;
out:
	pthread_mutex_unlock(&a->lock);
}

uint64_t atel__agg_overflow(const struct atel_agg *a)
{
	uint64_t v;

	if (!a)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&a->lock);
	v = a->overflow;
	pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
	return v;
}

uint64_t atel__agg_type_clashes(const struct atel_agg *a)
{
	uint64_t v;

	if (!a)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&a->lock);
	v = a->type_clashes;
	pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
	return v;
}

uint64_t atel__agg_rejected(const struct atel_agg *a)
{
	uint64_t v;

	if (!a)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&a->lock);
	v = a->rejected;
	pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
	return v;
}

/* ---- public: expiry ---------------------------------------------------------- */

uint64_t atel__agg_expired(const struct atel_agg *a)
{
	uint64_t v;

	if (!a)
		return 0;
	pthread_mutex_lock((pthread_mutex_t *)&a->lock);
	v = a->expired;
	pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
	return v;
}

static bool stale(const struct series *s, uint64_t cutoff)
{
	return s->last_ns < cutoff;
}

/*
 * One pass over every series; if any went, the series index is rebuilt from
 * the survivors (open addressing has no cheap delete, and expiry is rare:
 * at most once a second, from the follower). Index entries of folded series
 * pointed at their family's overflow series and are not rebuilt: their next
 * sample takes the slow path, and becomes a regular series if the expiry
 * made room under series_limit (the folded set keeps it counted once).
 */
uint64_t atel__agg_expire(struct atel_agg *a, uint64_t now_ns, uint64_t ttl_ns)
{
	uint64_t cutoff, removed = 0;
	uint32_t nf = 0;

	if (!a || !ttl_ns || now_ns <= ttl_ns)
		return 0;
	cutoff = now_ns - ttl_ns;
	pthread_mutex_lock(&a->lock);
	for (uint32_t i = 0; i < a->nfams; i++) {
		struct family *f = a->fams[i];
		uint32_t keep = 0;

		for (uint32_t j = 0; j < f->nseries; j++) {
			if (stale(f->series[j], cutoff)) {
				atel__agg_series_free(f->series[j]);
				removed++;
				a->nseries_total--;
			} else {
				f->series[keep++] = f->series[j];
			}
		}
		f->nseries = keep;
		if (f->overflow && stale(f->overflow, cutoff)) {
			atel__agg_series_free(f->overflow);
			f->overflow = NULL;
			removed++;
		}
		if (!f->nseries && !f->overflow)
			family_free(f);
		else
			a->fams[nf++] = f;
	}
	if (removed) {
		a->nfams = nf;
		a->expired += removed;
		/* rebuild both indexes from the survivors (fewer than before: no growth) */
		memset(a->idx, 0, (size_t)a->idx_cap * sizeof(*a->idx));
		a->idx_len = 0;
		for (uint32_t i = 0; i < a->nfams; i++)
			for (uint32_t j = 0; j < a->fams[i]->nseries; j++)
				atel__agg_idx_put(a, a->fams[i]->series[j]->key_hash, a->fams[i]->series[j]);
		/* in place, at the same capacity: no allocation can fail here */
		memset(a->fidx, 0, (size_t)a->fidx_cap * sizeof(*a->fidx));
		for (uint32_t f = 0; f < a->nfams; f++) {
			uint32_t k = (uint32_t)mix(a->fams[f]->name_hash) & (a->fidx_cap - 1);
			while (a->fidx[k])
				k = (k + 1) & (a->fidx_cap - 1);
			a->fidx[k] = f + 1;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return removed;
}

/* ---- public: snapshot ------------------------------------------------------- */

/* Bump allocator over one block: the whole snapshot is a single free(). */
struct arena {
	char *p;
	size_t off, cap;
};

static void *arena_take(struct arena *ar, size_t n, size_t align)
{
	size_t off = (ar->off + align - 1) & ~(align - 1);
	void *p = ar->p + off;

	ar->off = off + n;
	return p; /* sizes were summed beforehand: cannot overrun */
}

static const char *arena_str(struct arena *ar, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = arena_take(ar, n, 1);

	memcpy(d, s, n);
	return d;
}

#define GENERIC_HELP_FMT "atel metric %s (not in the metric catalog)"

static int cmp_family(const void *x, const void *y)
{
	return strcmp(((const struct atel_agg_family *)x)->name, ((const struct atel_agg_family *)y)->name);
}

static int cmp_series(const void *x, const void *y)
{
	const struct atel_agg_series *a = x, *b = y;
	uint32_t n = a->nlabels < b->nlabels ? a->nlabels : b->nlabels;
	int c;

	if (a->overflow != b->overflow)
		return a->overflow ? 1 : -1;
	for (uint32_t i = 0; i < n; i++) {
		if ((c = strcmp(a->keys[i], b->keys[i])) || (c = strcmp(a->values[i], b->values[i])))
			return c;
	}
	return (a->nlabels > b->nlabels) - (a->nlabels < b->nlabels);
}

int atel__agg_snapshot(struct atel_agg *a, struct atel_agg_snapshot **out)
{
	struct atel_agg_snapshot *snap;
	struct arena ar = { 0 };
	size_t need = sizeof(*snap) + 64;

	*out = NULL;
	pthread_mutex_lock(&a->lock);
	/* pass 1: size everything (upper bounds incl. alignment slack) */
	need += (size_t)a->nfams * (sizeof(struct atel_agg_family) + 8);
	for (uint32_t i = 0; i < a->nfams; i++) {
		const struct family *f = a->fams[i];
		uint32_t ns = f->nseries + (f->overflow ? 1 : 0);
		need += strlen(f->name) + 1 + (f->help ? strlen(f->help) + 1 : strlen(f->name) + sizeof(GENERIC_HELP_FMT));
		need += (size_t)ns * (sizeof(struct atel_agg_series) + 8);
		need += 64; /* alignment slack of this family's arrays */
		for (uint32_t b = 0; b < f->nbsets; b++)
			need += f->bsets[b].n * sizeof(double) + 8 + sizeof(double *);
		for (uint32_t j = 0; j < ns; j++) {
			const struct series *s = j < f->nseries ? f->series[j] : f->overflow;
			need += 2 * s->nlabels * sizeof(char *) + 16;
			for (uint32_t l = 0; l < s->nlabels; l++)
				need += strlen(s->keys[l]) + strlen(s->values[l]) + 2;
			if (s->bset != UINT32_MAX)
				need += (f->bsets[s->bset].n + 1) * sizeof(uint64_t) + 8;
		}
	}
	ar.p = malloc(need);
	if (!ar.p) {
		pthread_mutex_unlock(&a->lock);
		return -ENOMEM;
	}
	ar.cap = need;
	snap = arena_take(&ar, sizeof(*snap), 16);
	memset(snap, 0, sizeof(*snap));
	snap->nfamilies = a->nfams;
	snap->families = arena_take(&ar, (size_t)a->nfams * sizeof(struct atel_agg_family), 16);
	for (uint32_t i = 0; i < a->nfams; i++) {
		const struct family *f = a->fams[i];
		struct atel_agg_family *sf = &snap->families[i];
		uint32_t ns = f->nseries + (f->overflow ? 1 : 0);
		const double **bcopy = NULL;

		sf->name = arena_str(&ar, f->name);
		if (f->help) {
			sf->help = arena_str(&ar, f->help);
		} else {
			size_t n = strlen(f->name) + sizeof(GENERIC_HELP_FMT);
			char *h = arena_take(&ar, n, 1);
			snprintf(h, n, GENERIC_HELP_FMT, f->name);
			sf->help = h;
		}
		sf->mtype = f->mtype;
		sf->nseries = ns;
		sf->series = arena_take(&ar, (size_t)ns * sizeof(struct atel_agg_series), 16);
		if (f->nbsets) {
			/* one copy per distinct bucket set: encoders cache per pointer */
			bcopy = arena_take(&ar, f->nbsets * sizeof(*bcopy), 8);
			for (uint32_t b = 0; b < f->nbsets; b++) {
				double *d = arena_take(&ar, f->bsets[b].n * sizeof(double), 8);
				if (f->bsets[b].n)
					memcpy(d, f->bsets[b].b, f->bsets[b].n * sizeof(double));
				bcopy[b] = d;
			}
		}
		for (uint32_t j = 0; j < ns; j++) {
			const struct series *s = j < f->nseries ? f->series[j] : f->overflow;
			struct atel_agg_series *ss = &sf->series[j];
			const char **k = arena_take(&ar, (s->nlabels ? s->nlabels : 1) * sizeof(char *), 8);
			const char **v = arena_take(&ar, (s->nlabels ? s->nlabels : 1) * sizeof(char *), 8);

			memset(ss, 0, sizeof(*ss));
			ss->key_hash = s->key_hash;
			ss->nlabels = s->nlabels;
			for (uint32_t l = 0; l < s->nlabels; l++) {
				k[l] = arena_str(&ar, s->keys[l]);
				v[l] = arena_str(&ar, s->values[l]);
			}
			ss->keys = k;
			ss->values = v;
			ss->overflow = s->overflow;
			ss->value = s->value;
			ss->count = s->count;
			ss->sum = s->sum;
			ss->start_ns = s->start_ns;
			ss->last_ns = s->last_ns;
			if (s->bset != UINT32_MAX) {
				uint32_t n = f->bsets[s->bset].n;
				uint64_t *bk = arena_take(&ar, (n + 1) * sizeof(uint64_t), 8);
				memcpy(bk, s->buckets, (n + 1) * sizeof(uint64_t));
				ss->nbounds = n;
				ss->bounds = bcopy[s->bset];
				ss->buckets = bk;
			}
		}
	}
	pthread_mutex_unlock(&a->lock);
	snap->ts_ns = atel__now_ns();
	qsort(snap->families, snap->nfamilies, sizeof(struct atel_agg_family), cmp_family);
	for (uint32_t i = 0; i < snap->nfamilies; i++)
		qsort(snap->families[i].series, snap->families[i].nseries, sizeof(struct atel_agg_series),
		      cmp_series);
	*out = snap;
	return 0;
}

void atel__agg_snapshot_free(struct atel_agg_snapshot *s)
{
	free(s); /* the arena block starts with the snapshot header */
}
