/* SPDX-License-Identifier: MIT */
/*
 * aggregates.c - in-memory metric state (exporters/aggregates.h).
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
 *
 * Checkpoint file (little-endian, host order; written and read by the same
 * build on the same machine):
 *   "ATELAGG1" u32 version u32 0 | log pos: u64 file_seq u64 frame_off u32 rec_idx u32 0
 *   u64 overflow u64 type_clashes u64 rejected | u32 nfolded, u64 folded[]
 *   u32 nfamilies, per family: str name, u8 mtype, u32 nbsets {u32 n, f64[n]},
 *     u32 nseries, per series: u64 hash, u8 overflow, u32 nlabels {str k, str v},
 *     u32 bset (UINT32_MAX: none), f64 value, u64 count, f64 sum,
 *     u64 buckets[n+1], u64 start_ns, u64 last_ns
 *   u32 crc32 (zlib) of everything before it.      str = u32 len, bytes
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
#include <zlib.h>

#include "aggregates.h"
#include "buf.h"
#include "catalog.h"
#include "daemon.h"

#define CKPT_MAGIC "ATELAGG1"
#define CKPT_VERSION 1u
/* Distinct folded series remembered (to count each once); beyond this every
 * folded sample of an unremembered series counts again: bounded memory wins. */
#define FOLDED_MAX (1u << 20)
/* Metric names held: the per-name series limit cannot bound a producer that
 * invents names; samples of names beyond this count as rejected. */
#define FAMILIES_MAX 65536u
/* Regular series held over all names; beyond it new label sets fold into
 * their metric's overflow series like the per-name limit. */
#define SERIES_TOTAL_MAX (1u << 20)

struct bset {
	uint32_t n;
	double *b;
};

struct series {
	uint64_t key_hash;
	struct family *fam;
	uint32_t nlabels;
	char **keys, **values;
	bool overflow;
	double value;
	uint64_t count;
	double sum;
	uint32_t bset;          /* index into fam->bsets, UINT32_MAX if none */
	uint64_t *buckets;      /* bsets[bset].n + 1 */
	uint64_t start_ns, last_ns;
};

struct family {
	char *name;
	uint64_t name_hash;
	const char *help;       /* catalog text or NULL */
	uint8_t mtype;
	uint32_t nseries, cap;  /* regular series (the guard counts these) */
	struct series **series;
	struct series *overflow;
	uint32_t nbsets;
	struct bset *bsets;
};

struct ient {
	uint64_t h;
	struct series *s;       /* NULL: empty slot */
};

struct atel_agg {
	pthread_mutex_t lock;
	uint32_t series_limit;
	struct family **fams;
	uint32_t nfams, fams_cap;
	uint32_t *fidx;         /* name index: family number + 1, 0 empty */
	uint32_t fidx_cap;
	struct ient *idx;
	uint32_t idx_len, idx_cap;
	uint64_t *folded;       /* set of folded key hashes, 0 = empty (hash 0 stored as 1) */
	uint32_t folded_len, folded_cap;
	uint64_t overflow, type_clashes, rejected;
	uint32_t nseries_total;
};

static uint64_t fnv1a(const char *s)
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

static void series_free(struct series *s)
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
		series_free(f->series[i]);
	series_free(f->overflow);
	free(f->series);
	for (uint32_t i = 0; i < f->nbsets; i++)
		free(f->bsets[i].b);
	free(f->bsets);
	free(f->name);
	free(f);
}

static struct family *family_find(const struct atel_agg *a, const char *name, uint64_t h)
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

static struct family *family_add(struct atel_agg *a, const char *name, uint8_t mtype)
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
	f->name_hash = fnv1a(name);
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
static uint32_t family_bset(struct family *f, uint32_t n, const double *b)
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

static int idx_put(struct atel_agg *a, uint64_t h, struct series *s)
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
static bool folded_insert(struct atel_agg *a, uint64_t h)
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

static struct series *series_new(struct family *f, uint64_t h, uint32_t nlabels, const char *const *keys,
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
		s->bset = family_bset(f, nbounds, bounds);
		if (s->bset == UINT32_MAX || !(s->buckets = calloc(nbounds + 1, sizeof(uint64_t))))
			goto fail;
	}
	return s;
fail:
	series_free(s);
	return NULL;
}

static int family_append(struct family *f, struct series *s)
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

static void agg_clear(struct atel_agg *a)
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
	a->overflow = a->type_clashes = a->rejected = 0;
	a->nseries_total = 0;
}

void atel__agg_free(struct atel_agg *a)
{
	if (!a)
		return;
	agg_clear(a);
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

	if (!a || !ev || ev->kind != ATEL_EV_SAMPLE || !(d = ev->sample.series) || !d->name)
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
	f = family_find(a, d->name, fnv1a(d->name));
	if (!f) {
		if (d->mtype < ATEL_MT_COUNTER || d->mtype > ATEL_MT_HISTOGRAM) {
			a->type_clashes++;
			goto out;
		}
		if (a->nfams >= FAMILIES_MAX) { /* the guard for metric names themselves */
			a->rejected++;
			goto out;
		}
		if (!(f = family_add(a, d->name, d->mtype)))
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
			f->overflow = series_new(f, 0, 1, k, v, true, d->nbounds, d->bounds);
			if (!f->overflow)
				goto out;
		}
		s = f->overflow;
		if (folded_insert(a, d->key_hash))
			a->overflow++;
		if (d->mtype == ATEL_MT_HISTOGRAM && !same_bounds(s, d)) {
			a->type_clashes++;
			goto out;
		}
		idx_put(a, d->key_hash, s); /* ENOMEM: the next sample probes the slow path again */
	} else {
		s = series_new(f, d->key_hash, d->nlabels, d->keys, d->values, false, d->nbounds, d->bounds);
		if (!s)
			goto out;
		if (family_append(f, s) < 0) {
			series_free(s);
			goto out;
		}
		if (idx_put(a, d->key_hash, s) < 0) {
			f->nseries--;
			series_free(s);
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

/* ---- checkpoint --------------------------------------------------------------- */

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
	rc = b.oom ? -ENOMEM : atel__write_file_atomic(path, b.data, b.len, 0600);
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
	uint32_t nf, nfold;

	if (!rd_take(r, magic, 8) || memcmp(magic, CKPT_MAGIC, 8) || rd_u32(r) != CKPT_VERSION)
		return -EINVAL;
	rd_u32(r);
	pos->file_seq = rd_u64(r);
	pos->frame_off = rd_u64(r);
	pos->rec_idx = rd_u32(r);
	rd_u32(r);
	a->overflow = rd_u64(r);
	a->type_clashes = rd_u64(r);
	a->rejected = rd_u64(r);
	nfold = rd_u32(r);
	if (r->bad || nfold > FOLDED_MAX || (r->len - r->off) / 8 < nfold)
		return -EINVAL;
	for (uint32_t i = 0; i < nfold; i++)
		folded_insert(a, rd_u64(r));
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
		    family_find(a, name, fnv1a(name)) || !(f = family_add(a, name, mtype))) {
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
			if (family_bset(f, n, bounds) != k) /* duplicates would break indexes */
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
			s = series_new(f, h, nl, keys, vals, ovf, bs == UINT32_MAX ? 0 : f->bsets[bs].n,
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
			} else if (family_append(f, s) < 0 || idx_put(a, h, s) < 0) {
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
				series_free(s);
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
	unsigned char *data = NULL;
	struct stat st;
	struct rd r = { 0 };
	uint32_t crc;
	int fd, rc;

	if (!a || !path)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (st.st_size < 12 || st.st_size > (off_t)1 << 32) {
		rc = -EINVAL;
		goto out;
	}
	if (!(data = malloc((size_t)st.st_size))) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t got = 0; got < (size_t)st.st_size;) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EINVAL;
			goto out;
		}
		got += (size_t)n;
	}
	memcpy(&crc, data + st.st_size - 4, 4);
	if (crc != (uint32_t)crc32(0L, data, (uInt)(st.st_size - 4))) {
		rc = -EINVAL;
		goto out;
	}
	r.p = data;
	r.len = (size_t)st.st_size - 4;
	pthread_mutex_lock(&a->lock);
	agg_clear(a);
	rc = load_body(a, &r, &p);
	if (rc)
		agg_clear(a);
	pthread_mutex_unlock(&a->lock);
	if (!rc && pos)
		*pos = p;
out:
	free(data);
	close(fd);
	return rc;
}
