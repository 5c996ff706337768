/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the SPSC ring protocol (docs/abi.md sections 3 and 6).
 *
 * Producer side: a thread owns a struct atel_ring_writer (thread-local, not in
 * shared memory) for the ring it claimed. reserve/commit are inline and make
 * no system call. Consumer side: poll/validate/release, all checked against
 * untrusted shared memory.
 */
#ifndef ATEL_RING_H
#define ATEL_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "atel_abi.h"
#include "segment.h"

/* ------------------------------------------------------------------------ */
/* producer                                                                 */

struct atel_ring_writer {
	struct atel_ring_desc *desc;
	union atel_slot *slots;
	uint64_t mask;        /* capacity - 1 */
	uint64_t capacity;
	uint64_t limit;       /* capacity minus slots held back for span ENDs (docs/abi.md 2.4) */
	uint64_t head;        /* private copy of desc->head (only we write it) */
	uint64_t cached_tail; /* last tail we loaded (A2) */
	uint32_t ring;
	uint32_t generation;
};

/* Points w at ring `ring` of seg; loads head and tail. Called after a claim. */
static inline void atel__ring_writer_init(struct atel_ring_writer *w, const struct atel_segment *seg,
					  uint32_t ring)
{
	w->desc = atel__seg_desc(seg, ring);
	w->slots = atel__seg_slots(seg, ring);
	w->capacity = seg->ring_capacity;
	w->limit = seg->ring_capacity;
	w->mask = (uint64_t)seg->ring_capacity - 1;
	w->head = atomic_load_explicit(&w->desc->head, memory_order_relaxed);
	w->cached_tail = atomic_load_explicit(&w->desc->tail, memory_order_acquire);
	w->ring = ring;
	w->generation = w->desc->generation;
}

/*
 * Reserves n consecutive positions, leaving the slots held back for span
 * ENDs (capacity - limit) free. @return true if they are free; then write
 * them with atel__ring_slot(w, 0..n-1) and publish with atel__ring_commit.
 * False: the ring is full (the caller folds or counts the drop).
 */
static inline bool atel__ring_reserve(struct atel_ring_writer *w, uint64_t n)
{
	if (__builtin_expect(w->head + n - w->cached_tail <= w->limit, 1))
		return true;
	/* A2: pairs with the consumer's store_release(tail) (R2) */
	w->cached_tail = atomic_load_explicit(&w->desc->tail, memory_order_acquire);
	w->desc->cached_tail = w->cached_tail;
	return w->head + n - w->cached_tail <= w->limit;
}

/* Free slots now (reloads tail), held-back slots included. */
static inline uint64_t atel__ring_free(struct atel_ring_writer *w)
{
	w->cached_tail = atomic_load_explicit(&w->desc->tail, memory_order_acquire); /* A2 */
	w->desc->cached_tail = w->cached_tail;
	return w->capacity - (w->head - w->cached_tail);
}

/* The i-th reserved slot (wraps around the ring end). */
static inline union atel_slot *atel__ring_slot(const struct atel_ring_writer *w, uint64_t i)
{
	return &w->slots[(w->head + i) & w->mask];
}

/* Publishes n reserved slots. R1: pairs with the consumer's load_acquire(head). */
static inline void atel__ring_commit(struct atel_ring_writer *w, uint64_t n)
{
	w->head += n;
	atomic_store_explicit(&w->desc->head, w->head, memory_order_release);
}

/* ------------------------------------------------------------------------ */
/* consumer                                                                 */

/*
 * Reads the readable window of a ring. A1: load_acquire(head) pairs with the
 * producer's commit (R1). @return 0 with *tail and *head set (head - tail is the
 * number of readable slots, possibly 0); -EBADMSG if head went backwards or
 * jumped past capacity (the caller quarantines the ring).
 */
static inline int atel__ring_poll(const struct atel_segment *seg, uint32_t ring, uint64_t *tail,
				  uint64_t *head)
{
	struct atel_ring_desc *d = atel__seg_desc(seg, ring);
	uint64_t t = atomic_load_explicit(&d->tail, memory_order_relaxed);
	uint64_t h = atomic_load_explicit(&d->head, memory_order_acquire);
	*tail = t;
	*head = h;
	if (h < t || h - t > seg->ring_capacity)
		return -EBADMSG;
	d->cached_head = h;
	return 0;
}

/* Slot at absolute position pos. */
static inline const union atel_slot *atel__ring_at(const struct atel_segment *seg, uint32_t ring,
						   uint64_t pos)
{
	return &atel__seg_slots(seg, ring)[pos & ((uint64_t)seg->ring_capacity - 1)];
}

/* Frees positions below new_tail. R2: pairs with the producer's A2. */
static inline void atel__ring_release(const struct atel_segment *seg, uint32_t ring, uint64_t new_tail)
{
	atomic_store_explicit(&atel__seg_desc(seg, ring)->tail, new_tail, memory_order_release);
}

/*
 * Structural check of the record whose header slot is `h`, with `avail` slots
 * readable from it (header included): type known, reserved byte zero, cont
 * within the type's bound and within avail, lengths and counts within their
 * limits. Ids are not checked here (that needs the ring's definitions).
 * @return the number of slots the record occupies (1 + cont), or -EINVAL
 * (*why, if non-NULL, gets a static string saying what was wrong), or
 * -EAGAIN if the record is well-formed so far but runs past avail.
 */
int atel__rec_check(const union atel_slot *h, uint64_t avail, const char **why);

/* Human name of a record type ("sample", "span_start", ...); "unknown" otherwise. */
const char *atel__rec_type_name(unsigned type);

/* Human name of a loss cause ("ring_full", ...). */
const char *atel__loss_cause_name(unsigned cause);

/* Name of a metric type ("counter", "gauge", "histogram"; "unknown"
 * otherwise), and back (0 for a name that is none of them). */
const char *atel__metric_type_name(unsigned mtype);
unsigned atel__metric_type_of(const char *name);

#endif /* ATEL_RING_H */
