/* SPDX-License-Identifier: MIT */
/*
 * Folding: metric values survive a full ring (docs/abi.md 2.3).
 *
 * A counter increment, gauge value or histogram observation that finds the
 * thread's ring full is folded into a per-thread table, one entry per series:
 * counters keep the sum, gauges the last set plus the adds after it (or the
 * sum of adds when no set was folded), histograms per-bucket counts and the
 * sum. While anything is pending, t->slow has ATEL__SLOW_FOLD, so every call
 * of the thread takes the slow path, which writes the pending entries (as
 * FOLDED SAMPLE and HISTFOLD records) before its own record: a gauge's newer
 * value never lands before an older folded one. Entries are written in the
 * order their series were first folded, resuming where the ring filled up.
 *
 * The directory's folded_pending counts the calls folded and not yet written,
 * so a consumer that finds the owner dead knows how many it lost
 * (PRODUCER_DIED); folded_total counts every fold.
 *
 * Bounded: ATEL__FOLD_SERIES series (ATEL__FOLD_HISTS of them histograms)
 * per thread; a call whose series finds no entry is a counted RING_FULL
 * drop. The table is mapped on the first fold and kept for the thread's life.
 * Only the owner thread touches it (and atel_shutdown, which runs when no
 * other thread records). Async-signal-safe once mapped: a handler that
 * interrupts a call is refused by the reentrancy guard before it gets here.
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/*
 * Maps the table. Called at the thread's first ring claim (a slow path that
 * makes system calls anyway), so that folding under load makes none: the
 * pages are zero-fill-on-demand and cost memory only once touched.
 * @return 0 or -ENOMEM.
 */
int atel__fold_alloc(struct atel__tls *t)
{
	void *p;

	if (t->fold)
		return 0;
	p = mmap(NULL, sizeof(struct atel__fold), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	t->fold = p;
	return 0;
}

void atel__fold_free(struct atel__tls *t)
{
	if (t->fold)
		munmap(t->fold, sizeof(struct atel__fold));
	t->fold = NULL;
}

static inline uint32_t slot_of(uint32_t id)
{
	return (id * 2654435761u) & (ATEL__FOLD_SLOTS - 1);
}

/* The entry of s, created if needed. @return it, or NULL if the table is full. */
static struct atel__fold_ent *entry(struct atel__fold *f, const struct atel__series *s)
{
	uint32_t i = slot_of(s->id);
	struct atel__fold_ent *e;

	for (;; i = (i + 1) & (ATEL__FOLD_SLOTS - 1)) {
		e = &f->ent[i];
		if (e->s == s)
			return e;
		if (!e->s)
			break;
	}
	/* load stays <= 1/2, so the probe above always ends at a free slot */
	if (f->used >= ATEL__FOLD_SERIES)
		return NULL;
	if (s->mtype == ATEL_MT_HISTOGRAM) {
		if (f->nhist >= ATEL__FOLD_HISTS)
			return NULL;
		memset(&f->hist[f->nhist], 0, sizeof(f->hist[0]));
		e->hist = (uint16_t)(++f->nhist);
	} else {
		e->hist = 0;
	}
	e->s = s;
	e->n = 0;
	f->order[f->used++] = i;
	return e;
}

/* Bucket of v: the first bound >= v (Prometheus' le), else +Inf (the last). */
static uint32_t bucket_of(const struct atel__bounds *b, double v)
{
	uint32_t lo = 0, hi = b->count;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v <= b->b[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void atel__fold_add(struct atel__tls *t, const struct atel__series *s, double v, unsigned flags, uint64_t now)
{
	struct atel__fold *f = t->fold;
	struct atel__fold_ent *e;

	atel__check_replaced();
	if (!now)
		now = atel__now_ns();
	e = f ? entry(f, s) : NULL;
	/* CLOCK_REALTIME may step back: a folded record's interval must not end before it starts */
	if (e && e->n && now < e->last_ns)
		now = e->last_ns;
	if (!e) {
		atel__drop(t, ATEL_LOSS_RING_FULL, 1);
		return;
	}
	if (e->hist) {
		const struct atel__bounds *b = atel__bounds_by_id(s->bounds_id);
		struct atel__fold_hist *h = &f->hist[e->hist - 1];

		if (!b) {
			atel__drop(t, ATEL_LOSS_NO_DEF, 1);
			return;
		}
		h->b[bucket_of(b, v)]++;
		h->sum += v;
	} else if (flags & ATEL_RECF_SET) {
		e->v = v;
		e->set = 1;
	} else {
		if (!e->n) {
			e->v = 0;
			e->set = 0;
		}
		e->v += v;
	}
	if (!e->n) {
		e->first_ns = now;
		f->pending++;
	}
	e->n++;
	e->last_ns = now;
	t->slow |= ATEL__SLOW_FOLD;
	atel__bump(&t->st.folded, 1);
	if (t->w.desc) {
		atel__dir_bump(&t->w.desc->folded_pending, 1);
		atel__dir_bump(&t->w.desc->folded_total, 1);
	}
}

/* Writes the record(s) of one pending entry. @return false if the ring is full. */
static bool put_entry(struct atel__tls *t, struct atel__fold *f, struct atel__fold_ent *e)
{
	union atel_slot *d;
	uint64_t bits;

	if (!atel__def_series(t, e->s, e->last_ns))
		return false;
	if (!e->hist) {
		if (!atel__ring_reserve(&t->w, 1))
			return false;
		d = atel__ring_slot(&t->w, 0);
		memcpy(&bits, &e->v, 8);
		d->words[0] = atel__hdr_word(ATEL_REC_SAMPLE, ATEL_RECF_FOLDED | (e->set ? ATEL_RECF_SET : 0), 0,
					     e->s->id);
		d->words[1] = e->last_ns;
		d->words[2] = bits;
		d->words[3] = e->n;
		d->words[4] = e->first_ns;
		d->words[5] = d->words[6] = d->words[7] = 0;
		atel__publish(t, 1, 0, 1);
	} else {
		const struct atel__bounds *b = atel__bounds_by_id(e->s->bounds_id);
		struct atel__fold_hist *h = &f->hist[e->hist - 1];
		unsigned nb, cont;

		if (!b)
			return false;
		nb = b->count + 1;
		cont = atel__cont_for(nb, ATEL_HISTFOLD_INLINE, ATEL_HISTFOLD_PER_CONT);
		if (!atel__ring_reserve(&t->w, 1 + cont))
			return false;
		d = atel__ring_slot(&t->w, 0);
		memset(d, 0, sizeof(*d));
		d->words[0] = atel__hdr_word(ATEL_REC_HISTFOLD, 0, cont, e->s->id);
		d->words[1] = e->last_ns;
		d->histfold.count = e->n;
		d->histfold.sum = h->sum;
		d->histfold.first_ns = e->first_ns;
		d->histfold.nbuckets = (uint16_t)nb;
		for (unsigned i = 0; i < nb && i < ATEL_HISTFOLD_INLINE; i++)
			d->histfold.buckets[i] = h->b[i];
		for (unsigned c = 0; c < cont; c++) {
			union atel_slot *x = atel__ring_slot(&t->w, 1 + c);
			memset(x, 0, sizeof(*x));
			for (unsigned j = 0; j < ATEL_HISTFOLD_PER_CONT; j++) {
				unsigned k = ATEL_HISTFOLD_INLINE + c * ATEL_HISTFOLD_PER_CONT + j;
				if (k < nb)
					x->words[j] = h->b[k];
			}
		}
		atel__publish(t, 1 + cont, 0, 1);
		memset(h, 0, sizeof(*h));
	}
	atel__bump(&t->st.folded_records, 1);
	if (t->w.desc) {
		uint64_t p = atomic_load_explicit(&t->w.desc->folded_pending, memory_order_relaxed);
		/* the entry may have been folded under an earlier ring (epoch change): never below 0 */
		atomic_store_explicit(&t->w.desc->folded_pending, p > e->n ? p - e->n : 0, memory_order_relaxed);
	}
	e->n = 0;
	f->pending--;
	return true;
}

/* Forgets every entry (all written or counted). */
static void reset(struct atel__fold *f)
{
	for (uint32_t k = 0; k < f->used; k++)
		memset(&f->ent[f->order[k]], 0, sizeof(f->ent[0]));
	f->used = f->pending = f->nhist = f->cursor = 0;
}

bool atel__fold_flush(struct atel__tls *t, uint64_t now)
{
	struct atel__fold *f = t->fold;

	(void)now;
	if (!f || !f->pending) {
		t->slow &= ~(uint32_t)ATEL__SLOW_FOLD;
		return true;
	}
	/* resume where the ring filled up last time, wrapping once around order[] */
	for (uint32_t k = 0; k < f->used && f->pending; k++) {
		uint32_t at = (f->cursor + k) % f->used;
		struct atel__fold_ent *e = &f->ent[f->order[at]];

		if (e->n && !put_entry(t, f, e)) {
			f->cursor = at;
			return false;
		}
	}
	reset(f);
	t->slow &= ~(uint32_t)ATEL__SLOW_FOLD;
	return true;
}

void atel__fold_drop_all(struct atel__tls *t)
{
	struct atel__fold *f = t->fold;
	uint64_t n = 0;

	if (!f)
		return;
	for (uint32_t k = 0; k < f->used; k++)
		n += f->ent[f->order[k]].n;
	if (n) {
		atel__drop(t, ATEL_LOSS_RING_FULL, n);
		if (t->w.desc) {
			uint64_t p = atomic_load_explicit(&t->w.desc->folded_pending, memory_order_relaxed);
			atomic_store_explicit(&t->w.desc->folded_pending, p > n ? p - n : 0, memory_order_relaxed);
		}
	}
	reset(f);
	t->slow &= ~(uint32_t)ATEL__SLOW_FOLD;
}

void atel__fold_forget(struct atel__tls *t)
{
	if (t->fold) {
		reset(t->fold);
		memset(t->fold->sdrop, 0, sizeof(t->fold->sdrop));
	}
	t->slow &= ~(uint32_t)ATEL__SLOW_FOLD;
}
