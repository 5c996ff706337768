/* SPDX-License-Identifier: MIT */
/* Helpers shared by the shm tests: a minimal producer that writes records the way libatel does. */
#ifndef ATEL_SHM_TEST_UTIL_H
#define ATEL_SHM_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ring.h"

/* A SAMPLE whose value carries a sequence number; @return false (and counts drops_full) if full. */
static inline bool tu_write_sample(struct atel_ring_writer *w, uint32_t id, uint64_t seq)
{
	union atel_slot *s;

	if (!atel__ring_reserve(w, 1)) {
		atomic_fetch_add_explicit(&w->desc->drops_full, 1, memory_order_relaxed);
		return false;
	}
	s = atel__ring_slot(w, 0);
	memset(s, 0, sizeof(*s));
	s->h.type = ATEL_REC_SAMPLE;
	s->h.id = id;
	s->h.ts_ns = seq;
	s->sample.value = (double)seq;
	atel__ring_commit(w, 1);
	return true;
}

/* A STRDEF of len bytes, byte i = (seed + i) & 0xff; continuation slots as the ABI says. */
static inline bool tu_write_strdef(struct atel_ring_writer *w, uint32_t id, unsigned len, unsigned seed)
{
	unsigned cont = atel__cont_for(len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
	union atel_slot *s;

	if (!atel__ring_reserve(w, 1 + cont)) {
		atomic_fetch_add_explicit(&w->desc->drops_full, 1, memory_order_relaxed);
		return false;
	}
	s = atel__ring_slot(w, 0);
	memset(s, 0, sizeof(*s));
	s->h.type = ATEL_REC_STRDEF;
	s->h.id = id;
	s->h.cont = (uint8_t)cont;
	s->strdef.len = (uint16_t)len;
	for (unsigned i = 0; i < len; i++) {
		unsigned char b = (unsigned char)((seed + i) & 0xff);
		if (i < ATEL_STRDEF_INLINE)
			s->strdef.bytes[i] = (char)b;
		else
			atel__ring_slot(w, 1 + (i - ATEL_STRDEF_INLINE) / 64)->raw[(i - ATEL_STRDEF_INLINE) % 64] = b;
	}
	atel__ring_commit(w, 1 + cont);
	return true;
}

/* Checks a delivered STRDEF against tu_write_strdef's pattern. */
static inline bool tu_strdef_ok(const union atel_slot *rec, unsigned nslots, unsigned seed)
{
	unsigned len = rec->strdef.len;
	const unsigned char *tail = (const unsigned char *)(rec + 1);

	if (rec->h.type != ATEL_REC_STRDEF || nslots != 1 + atel__cont_for(len, ATEL_STRDEF_INLINE, 64))
		return false;
	for (unsigned i = 0; i < len; i++) {
		unsigned char want = (unsigned char)((seed + i) & 0xff);
		unsigned char got = i < ATEL_STRDEF_INLINE ? (unsigned char)rec->strdef.bytes[i]
							  : tail[i - ATEL_STRDEF_INLINE];
		if (got != want)
			return false;
	}
	return true;
}

#endif /* ATEL_SHM_TEST_UTIL_H */
