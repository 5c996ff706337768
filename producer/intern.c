/* SPDX-License-Identifier: MIT */
/*
 * Interning: strings, series and histogram bounds become dense 32-bit ids
 * (from 1), process-wide.
 *
 * Concurrency. Entries are immutable once published. Each table is an
 * open-addressing array of entry pointers; readers load the table pointer and
 * the slots with acquire (pairs with the writer's release stores below) and
 * never lock. Writers serialise on `lock`, re-probe, insert with a release
 * store, and grow by building a new table off to the side and publishing it
 * with one release store. Old tables are kept (a reader may still probe them;
 * they hold the same entries) and freed never: total memory stays under twice
 * the final table. id -> entry arrays are two-level (chunks of 1024 slots
 * allocated once), so an entry found by id never moves.
 *
 * Why hand-written: no Debian library offers a lock-free-read hash table with
 * stable dense ids that is usable from a signal handler.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct ptab {
	uint64_t mask;
	struct ptab *prev;  /* the table this one replaced: lock-free readers may still be in it, so it is
			       never freed, only kept reachable */
	_Atomic(void *) slot[];
};

struct proot {
	_Atomic(struct ptab *) cur;
	uint64_t count;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct proot strs, series;
static _Atomic(struct atel__str *) *str_chunks[ATEL__STR_IDS / ATEL__CHUNK];
static _Atomic(struct atel__bounds *) bounds_by_id[ATEL__BOUNDS_IDS];
static uint32_t next_str_id = 1, next_series_id = 1, next_bounds_id = 1;

/* Prometheus' default histogram buckets (client libraries' DefBuckets). */
static const double default_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };

void atel__intern_lock(void)
{
	pthread_mutex_lock(&lock);
}

void atel__intern_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

void atel__intern_atfork_child(void)
{
	pthread_mutex_init(&lock, NULL);
}

uint64_t atel__hash_bytes(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0x243f6a8885a308d3ull ^ (n * 0x9e3779b97f4a7c15ull);
	uint64_t w;

	while (n >= 8) {
		memcpy(&w, b, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		b += 8;
		n -= 8;
	}
	if (n) {
		w = 0;
		memcpy(&w, b, n);
		h = (h ^ w) * 0x94d049bb133111ebull;
		h ^= h >> 29;
	}
	return h;
}

/* ------------------------------------------------------------------------ */
/* generic table plumbing (writer side, under lock)                          */

static struct ptab *ptab_new(uint64_t size)
{
	struct ptab *t = calloc(1, sizeof(*t) + size * sizeof(t->slot[0]));

	if (t)
		t->mask = size - 1;
	return t;
}

static void ptab_put(struct ptab *t, void *e)
{
	uint64_t h = *(const uint64_t *)e; /* both entry types start with their hash */
	uint64_t i = h & t->mask;

	while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
		i = (i + 1) & t->mask;
	/* pairs with the readers' acquire load of the slot */
	atomic_store_explicit(&t->slot[i], e, memory_order_release);
}

/* Inserts e (caller holds lock and checked absence). @return 0 or -ENOMEM. */
static int proot_insert(struct proot *r, void *e)
{
	struct ptab *t = atomic_load_explicit(&r->cur, memory_order_relaxed);

	if (!t || (r->count + 1) * 2 > t->mask + 1) {
		uint64_t size = t ? (t->mask + 1) * 2 : 1024;
		struct ptab *n = ptab_new(size);

		if (!n)
			return -ENOMEM;
		for (uint64_t i = 0; t && i <= t->mask; i++) {
			void *o = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
			if (o)
				ptab_put(n, o);
		}
		n->prev = t;
		/* publishes the filled table; pairs with the readers' acquire of cur */
		atomic_store_explicit(&r->cur, n, memory_order_release);
		t = n;
	}
	ptab_put(t, e);
	r->count++;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* strings                                                                  */

static const struct atel__str *str_find_h(const char *s, size_t len, uint64_t h)
{
	struct ptab *t = atomic_load_explicit(&strs.cur, memory_order_acquire);
	uint64_t i;

	if (!t)
		return NULL;
	for (i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct atel__str *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (!e)
			return NULL;
		if (e->hash == h && e->len == len && memcmp(e->s, s, len) == 0)
			return e;
	}
}

const struct atel__str *atel__str_find(const char *s, size_t len)
{
	return str_find_h(s, len, atel__hash_bytes(s, len));
}

const struct atel__str *atel__str_by_id(uint32_t id)
{
	_Atomic(struct atel__str *) *c;

	if (id == 0 || id >= ATEL__STR_IDS)
		return NULL;
	c = __atomic_load_n(&str_chunks[id / ATEL__CHUNK], __ATOMIC_ACQUIRE);
	return c ? atomic_load_explicit(&c[id % ATEL__CHUNK], memory_order_acquire) : NULL;
}

/* Caller holds lock. */
static const struct atel__str *intern_locked(const char *s, size_t len, uint64_t h)
{
	const struct atel__str *f = str_find_h(s, len, h);
	struct atel__str *e;
	uint32_t id;

	if (f)
		return f;
	if (next_str_id >= ATEL__STR_IDS || len == 0 || len > ATEL_STR_MAX)
		return NULL;
	id = next_str_id;
	if (!str_chunks[id / ATEL__CHUNK]) {
		void *c = calloc(ATEL__CHUNK, sizeof(_Atomic(struct atel__str *)));
		if (!c)
			return NULL;
		__atomic_store_n(&str_chunks[id / ATEL__CHUNK], c, __ATOMIC_RELEASE);
	}
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->hash = h;
	e->id = id;
	e->len = (uint32_t)len;
	memcpy(e->s, s, len);
	if (proot_insert(&strs, e)) {
		free(e);
		return NULL;
	}
	atomic_store_explicit(&str_chunks[id / ATEL__CHUNK][id % ATEL__CHUNK], e, memory_order_release);
	next_str_id++;
	return e;
}

const struct atel__str *atel__intern(const char *s, size_t len)
{
	uint64_t h = atel__hash_bytes(s, len);
	const struct atel__str *e = str_find_h(s, len, h);

	if (e)
		return e;
	pthread_mutex_lock(&lock);
	e = intern_locked(s, len, h);
	pthread_mutex_unlock(&lock);
	return e;
}

/* ------------------------------------------------------------------------ */
/* bounds                                                                   */

const struct atel__bounds *atel__bounds_by_id(uint32_t id)
{
	if (id == 0 || id >= ATEL__BOUNDS_IDS)
		return NULL;
	return atomic_load_explicit(&bounds_by_id[id], memory_order_acquire);
}

/* Caller holds lock. */
static uint32_t bounds_locked(const double *b, uint32_t n)
{
	struct atel__bounds *e;

	for (uint32_t id = 1; id < next_bounds_id; id++) {
		const struct atel__bounds *o = atomic_load_explicit(&bounds_by_id[id], memory_order_relaxed);
		if (o->count == n && memcmp(o->b, b, n * sizeof(double)) == 0)
			return id;
	}
	if (next_bounds_id >= ATEL__BOUNDS_IDS)
		return 0;
	e = malloc(sizeof(*e) + n * sizeof(double));
	if (!e)
		return 0;
	e->id = next_bounds_id++;
	e->count = n;
	memcpy(e->b, b, n * sizeof(double));
	atomic_store_explicit(&bounds_by_id[e->id], e, memory_order_release);
	return e->id;
}

uint32_t atel__bounds_intern(const double *b, uint32_t n)
{
	uint32_t id;

	pthread_mutex_lock(&lock);
	id = bounds_locked(b, n);
	pthread_mutex_unlock(&lock);
	return id;
}

/* ------------------------------------------------------------------------ */
/* series                                                                   */

uint64_t atel__series_hash(const struct atel__lookup *l)
{
	uint64_t h = atel__hash_mix(0x452821e638d01377ull, l->name_hash);

	for (uint32_t i = 0; i < l->n; i++) {
		h = atel__hash_mix(h, l->khash[i]);
		h = atel__hash_mix(h, l->vhash[i]);
	}
	return h;
}

static bool str_eq(const struct atel__str *e, const char *s, uint32_t len)
{
	return e->s == s || (e->len == len && memcmp(e->s, s, len) == 0);
}

static bool series_eq(const struct atel__series *e, const struct atel__lookup *l)
{
	if (e->nlabels != l->n || !str_eq(e->name, l->name, l->name_len))
		return false;
	for (uint32_t i = 0; i < l->n; i++)
		if (!str_eq(e->keys[i], l->k[i], l->klen[i]) || !str_eq(e->values[i], l->v[i], l->vlen[i]))
			return false;
	return true;
}

const struct atel__series *atel__series_find(const struct atel__lookup *l, uint64_t h)
{
	struct ptab *t = atomic_load_explicit(&series.cur, memory_order_acquire);

	if (!t)
		return NULL;
	for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
		const struct atel__series *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (!e)
			return NULL;
		if (e->hash == h && series_eq(e, l))
			return e;
	}
}

static uint64_t keyset_hash(const char *const *keys, const uint32_t *klen, unsigned n)
{
	uint64_t h = 0x13198a2e03707344ull;

	for (unsigned i = 0; i < n; i++)
		h = atel__hash_mix(h, atel__hash_bytes(keys[i], klen[i]));
	return h;
}

/*
 * Registers or checks the metric `name` (caller holds lock).
 * @return 0, or -EINVAL with a message (type / key set / bounds clash), -ENOMEM.
 */
static int register_locked(struct atel__tls *t, struct atel__str *nm, atel_metric_type type, uint64_t ks,
			   unsigned nkeys, const double *bounds, uint32_t nbounds)
{
	uint8_t have = atomic_load_explicit(&nm->mtype, memory_order_relaxed);
	uint32_t bid = 0;

	if (have) {
		if (have != type) {
			if (t)
				atel__invalidf(t, "metric '%s' is a %s, not a %s", nm->s, atel__metric_type_name(have),
					       atel__metric_type_name(type));
			return -EINVAL;
		}
		if (nm->keyset != ks || nm->nkeys != nkeys) {
			if (t)
				atel__invalidf(t, "metric '%s': label keys differ from its first series", nm->s);
			return -EINVAL;
		}
		if (type == ATEL_HISTOGRAM && bounds) {
			const struct atel__bounds *b = atel__bounds_by_id(nm->bounds_id);
			if (!b || b->count != nbounds || memcmp(b->b, bounds, nbounds * sizeof(double)) != 0) {
				if (t)
					atel__invalidf(t, "histogram '%s' already has other bucket bounds", nm->s);
				return -EINVAL;
			}
		}
		return 0;
	}
	if (type == ATEL_HISTOGRAM) {
		if (!bounds) {
			bounds = default_bounds;
			nbounds = (uint32_t)(sizeof(default_bounds) / sizeof(default_bounds[0]));
		}
		bid = bounds_locked(bounds, nbounds);
		if (!bid) {
			if (t)
				atel__invalidf(t, "histogram '%s': out of bounds ids or memory", nm->s);
			return -ENOMEM;
		}
	}
	nm->bounds_id = bid;
	nm->keyset = ks;
	nm->nkeys = (uint8_t)nkeys;
	/* publishes the registration; read under the lock (or acquire) */
	atomic_store_explicit(&nm->mtype, (uint8_t)type, memory_order_release);
	return 0;
}

int atel__metric_register(const char *name, atel_metric_type type, const char *const *sorted_keys,
			  unsigned nkeys, const double *bounds, uint32_t nbounds)
{
	uint32_t klen[ATEL_LABELS_MAX];
	struct atel__str *nm;
	int rc = -ENOMEM;

	for (unsigned i = 0; i < nkeys; i++)
		klen[i] = (uint32_t)strlen(sorted_keys[i]);
	pthread_mutex_lock(&lock);
	nm = (struct atel__str *)intern_locked(name, strlen(name), atel__hash_bytes(name, strlen(name)));
	for (unsigned i = 0; nm && i < nkeys; i++)
		if (!intern_locked(sorted_keys[i], klen[i], atel__hash_bytes(sorted_keys[i], klen[i])))
			nm = NULL;
	if (nm)
		rc = register_locked(NULL, nm, type, keyset_hash(sorted_keys, klen, nkeys), nkeys, bounds, nbounds);
	pthread_mutex_unlock(&lock);
	return rc;
}

const struct atel__series *atel__series_create(struct atel__tls *t, atel_metric_type type,
					       const struct atel__lookup *l, uint64_t h,
					       const double *bounds, uint32_t nbounds)
{
	struct atel__series *e = NULL;
	const struct atel__series *f;
	struct atel__str *nm;

	pthread_mutex_lock(&lock);
	f = atel__series_find(l, h);
	if (f) {
		if (f->mtype != type) {
			atel__invalidf(t, "metric '%s' is a %s, not a %s", f->name->s, atel__metric_type_name(f->mtype),
				       atel__metric_type_name(type));
			f = NULL;
		} else if (type == ATEL_HISTOGRAM && bounds) {
			if (register_locked(t, (struct atel__str *)f->name, type, f->name->keyset, f->nlabels, bounds,
					    nbounds))
				f = NULL;
		}
		goto out;
	}
	if (next_series_id >= ATEL__SERIES_IDS) {
		atel__invalidf(t, "too many series (%u)", ATEL__SERIES_IDS - 1);
		goto out;
	}
	e = calloc(1, sizeof(*e));
	nm = (struct atel__str *)intern_locked(l->name, l->name_len, l->name_hash);
	if (!e || !nm)
		goto nomem;
	if (register_locked(t, nm, type, keyset_hash(l->k, l->klen, l->n), l->n, bounds, nbounds))
		goto fail;
	e->hash = h;
	e->mtype = (uint8_t)type;
	e->nlabels = (uint8_t)l->n;
	e->bounds_id = type == ATEL_HISTOGRAM ? nm->bounds_id : 0;
	e->name = nm;
	for (uint32_t i = 0; i < l->n; i++) {
		e->keys[i] = intern_locked(l->k[i], l->klen[i], l->khash[i]);
		e->values[i] = intern_locked(l->v[i], l->vlen[i], l->vhash[i]);
		if (!e->keys[i] || !e->values[i])
			goto nomem;
	}
	e->id = next_series_id;
	if (proot_insert(&series, e))
		goto nomem;
	next_series_id++;
	f = e;
	goto out;
nomem:
	atel__invalidf(t, "out of memory or string ids interning '%s'", l->name);
fail:
	free(e);
	f = NULL;
out:
	pthread_mutex_unlock(&lock);
	return f;
}
