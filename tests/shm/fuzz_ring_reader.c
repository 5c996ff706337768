/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target "ring_reader": arbitrary bytes become a ring's positions
 * and contents; the validating reader must never crash, never read outside
 * the ring (the ring is an exact-size heap block, so ASan sees any overrun),
 * and must keep its contract (positions within the window, nslots = 1 + cont,
 * delivered records structurally valid). The same bytes are also fed to the
 * segment header check as a mapping.
 *
 * Input layout: [0..8) head, [8..16) tail, [16] capacity selector (64 << (b % 4)),
 * [17] flags (bit 0: final; bit 1: scan the raw window without atel__ring_poll),
 * [18..) slot bytes (zero-padded to the capacity).
 */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "ring.h"
#include "segment.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ctx {
	uint64_t from, to, last_end;
	unsigned long sum;
};

static int on_rec(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct ctx *c = arg;

	if (pos < c->last_end || pos >= c->to || nslots < 1 || nslots > 65 || pos + nslots > c->to)
		abort();
	if (nslots != 1u + rec->h.cont)
		abort();
	if (atel__rec_check(rec, nslots, NULL) != (int)nslots)
		abort();
	/* touch every delivered byte: ASan flags a short private copy */
	for (unsigned i = 0; i < nslots; i++)
		for (unsigned k = 0; k < 64; k++)
			c->sum += rec[i].raw[k];
	c->last_end = pos + nslots;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_segment seg;
	struct atel_ring_desc *desc;
	struct atel_shm_header *hdr;
	union atel_slot *slots;
	struct atel_scan_stats st = { 0 };
	struct ctx c = { 0 };
	uint64_t head = 0, tail = 0, t, h, done;
	uint32_t cap;
	size_t nbytes;
	int final, raw;
	char err[256];

	(void)atel__segment_check(data, size, err, sizeof(err));
	if (size < 18)
		return 0;
	memcpy(&head, data, 8);
	memcpy(&tail, data + 8, 8);
	cap = 64u << (data[16] % 4);
	final = data[17] & 1;
	raw = data[17] & 2;
	data += 18;
	size -= 18;

	desc = aligned_alloc(64, sizeof(*desc));
	hdr = calloc(1, sizeof(*hdr));
	slots = malloc((size_t)cap * sizeof(*slots));
	if (!desc || !hdr || !slots)
		abort();
	memset(desc, 0, sizeof(*desc));
	nbytes = size < (size_t)cap * 64 ? size : (size_t)cap * 64;
	memset(slots, 0, (size_t)cap * sizeof(*slots));
	memcpy(slots, data, nbytes);
	atomic_store(&desc->head, head);
	atomic_store(&desc->tail, tail);

	memset(&seg, 0, sizeof(seg));
	seg.hdr = hdr;
	seg.dir = desc;
	seg.rings = (unsigned char *)slots;
	seg.ring_count = 1;
	seg.ring_capacity = cap;
	seg.ring_stride = (uint64_t)cap * 64;

	if (raw) {
		/* the reader must refuse a window the caller did not validate */
		t = tail;
		h = head;
	} else if (atel__ring_poll(&seg, 0, &t, &h) != 0) {
		goto out;
	}
	c.from = t;
	c.to = h;
	c.last_end = t;
	done = atel__ring_scan(&seg, 0, t, h, final, on_rec, &c, &st);
	if (h < t || h - t > cap) {
		if (done != t || st.records || st.invalid_slots)
			abort();
		goto out;
	}
	if (done < t || done > h)
		abort();
	if (st.slots + st.invalid_slots != done - t)
		abort();
	if (final && done != h)
		abort();
	if (atomic_load(&desc->drops_invalid) != st.invalid_slots)
		abort();
out:
	free(slots);
	free(hdr);
	free(desc);
	return 0;
}
