/* SPDX-License-Identifier: MIT */
/*
 * The consumer's validating ring reader (docs/abi.md section 6).
 *
 * Ring memory is untrusted and may change under us (a buggy or hostile
 * producer can rewrite slots it already published). So every record is first
 * copied into a private buffer, checked on the copy, and delivered from the
 * copy: a length checked once cannot change afterwards (no time-of-check /
 * time-of-use gap), and a record that wraps the ring end arrives contiguous.
 */
#include "reader.h"

#include <stdalign.h>
#include <string.h>

/* Largest record: 4096-byte string = header + 64 continuation slots. */
#define REC_MAX_SLOTS 65u
/* slots to prefetch ahead of the scan (a few cache-miss latencies' worth of records) */
#define PREFETCH_AHEAD 8u

static void copy_slots(const struct atel_segment *seg, uint32_t ring, uint64_t pos, unsigned n,
		       union atel_slot *dst)
{
	const union atel_slot *base = atel__seg_slots(seg, ring);
	uint64_t mask = (uint64_t)seg->ring_capacity - 1;
	uint64_t first = pos & mask;
	uint64_t run = seg->ring_capacity - first; /* slots before the ring end */

	if (run >= n) {
		memcpy(dst, &base[first], (size_t)n * sizeof(*dst));
	} else {
		memcpy(dst, &base[first], (size_t)run * sizeof(*dst));
		memcpy(dst + run, base, (size_t)(n - run) * sizeof(*dst));
	}
}

uint64_t atel__ring_scan(const struct atel_segment *seg, uint32_t ring, uint64_t from, uint64_t to,
			 int final, atel_scan_fn fn, void *arg, struct atel_scan_stats *st)
{
	alignas(64) union atel_slot buf[REC_MAX_SLOTS];
	struct atel_scan_stats local = { 0 };
	uint64_t pos = from;
	uint64_t bad = 0;      /* invalid slots, added to drops_invalid once at the end */
	int in_garbage = 0;
	const union atel_slot *slots;
	uint64_t mask;

	if (!seg || ring >= seg->ring_count || to < from || to - from > seg->ring_capacity)
		return from; /* a window the caller did not validate (atel__ring_poll) */
	slots = atel__seg_slots(seg, ring);
	mask = (uint64_t)seg->ring_capacity - 1;
	while (pos < to) {
		uint64_t avail = to - pos;
		int rc;

		/* constant-size copy (inlined); prefetch ahead: the lines usually sit in the producer's cache */
		buf[0] = slots[pos & mask];
		if (avail > PREFETCH_AHEAD) /* never touch unpublished slots: the producer owns those lines */
			__builtin_prefetch(&slots[(pos + PREFETCH_AHEAD) & mask]);
		rc = atel__rec_check(&buf[0], avail, NULL);
		if (rc == -EAGAIN) {
			/* well-formed so far, but its continuation is not published yet */
			if (!final && 1u + buf[0].h.cont <= seg->ring_capacity)
				break;
			rc = -EINVAL; /* never completes: the owner is dead, or it cannot fit */
		}
		if (rc < 0 || (unsigned)rc > REC_MAX_SLOTS) {
			bad++;
			if (!in_garbage)
				local.resyncs++;
			in_garbage = 1;
			pos++;
			continue;
		}
		if (rc > 1)
			copy_slots(seg, ring, pos + 1, (unsigned)rc - 1, &buf[1]);
		if (fn && fn(arg, pos, buf, (unsigned)rc) != 0)
			break;
		in_garbage = 0;
		local.records++;
		local.slots += (unsigned)rc;
		pos += (unsigned)rc;
	}
	local.invalid_slots = bad;
	if (bad)
		atomic_fetch_add_explicit(&atel__seg_desc(seg, ring)->drops_invalid, bad, memory_order_relaxed);
	if (st) {
		st->records += local.records;
		st->slots += local.slots;
		st->invalid_slots += local.invalid_slots;
		st->resyncs += local.resyncs;
	}
	return pos;
}
