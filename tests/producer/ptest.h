/* SPDX-License-Identifier: MIT */
/*
 * ptest.h - helpers for libatel's tests: create a segment (acting as the
 * consumer), read back what a ring holds, resolve string ids, drain.
 */
#ifndef ATEL_PTEST_H
#define ATEL_PTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atel.h"
#include "atel_abi.h"
#include "ring.h"
#include "segment.h"

#define PT_MAX_RECS 200000

struct pt_rec {
	const union atel_slot *s; /* header slot (copied contiguous) */
	unsigned nslots;
	uint64_t pos;
};

struct pt_ring {
	union atel_slot *copy;     /* contiguous copy of [tail, head) */
	struct pt_rec *recs;
	size_t n;
	char *strs[1 << 12];       /* string id -> bytes (ids < 4096 in tests) */
};

static inline void pt_path(char *buf, size_t len, const char *tag)
{
	snprintf(buf, len, "/tmp/atel-ptest-%s-%d", tag, (int)getpid());
}

static inline int pt_create(struct atel_segment *seg, const char *path, uint32_t rings, uint32_t cap)
{
	struct atel_segment_config cfg = { .ring_count = rings, .ring_capacity = cap, .mode = 0600 };
	char err[256];

	unlink(path);
	return atel__segment_create(seg, path, &cfg, err, sizeof(err));
}

/* Reads ring `r` from tail to head (not releasing). Returns 0, or -1 on a malformed record. */
static inline int pt_read(const struct atel_segment *seg, uint32_t r, struct pt_ring *out)
{
	uint64_t tail, head, p;

	memset(out, 0, sizeof(*out));
	if (atel__ring_poll(seg, r, &tail, &head))
		return -1;
	out->copy = calloc(head - tail + 1, sizeof(union atel_slot));
	out->recs = calloc(head - tail + 1, sizeof(struct pt_rec));
	for (p = tail; p < head; p++)
		memcpy(&out->copy[p - tail], atel__ring_at(seg, r, p), sizeof(union atel_slot));
	for (p = tail; p < head;) {
		const union atel_slot *s = &out->copy[p - tail];
		const char *why = NULL;
		int n = atel__rec_check(s, head - p, &why);

		if (n <= 0) {
			fprintf(stderr, "ring %u pos %llu: invalid record (%s)\n", r, (unsigned long long)p,
				why ? why : "truncated");
			return -1;
		}
		if (s->h.type == ATEL_REC_STRDEF && s->h.id < (1u << 12)) {
			char *str = malloc(s->strdef.len + 1u);
			memcpy(str, s->raw + 20, s->strdef.len); /* contiguous copy: continuation follows */
			str[s->strdef.len] = '\0';
			free(out->strs[s->h.id]);
			out->strs[s->h.id] = str;
		}
		out->recs[out->n].s = s;
		out->recs[out->n].nslots = (unsigned)n;
		out->recs[out->n].pos = p;
		out->n++;
		p += (uint64_t)n;
	}
	return 0;
}

static inline void pt_free(struct pt_ring *r)
{
	for (size_t i = 0; i < sizeof(r->strs) / sizeof(r->strs[0]); i++)
		free(r->strs[i]);
	free(r->copy);
	free(r->recs);
	memset(r, 0, sizeof(*r));
}

static inline const char *pt_str(const struct pt_ring *r, uint32_t id)
{
	return id < (1u << 12) && r->strs[id] ? r->strs[id] : "?";
}

/* Count records of a type. */
static inline size_t pt_count(const struct pt_ring *r, unsigned type)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n; i++)
		n += r->recs[i].s->h.type == type;
	return n;
}

/* Index of the k-th record of a type, or -1. */
static inline long pt_find(const struct pt_ring *r, unsigned type, size_t k)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->recs[i].s->h.type == type && k-- == 0)
			return (long)i;
	return -1;
}

/* The consumer's side of a drain: frees everything written so far. */
static inline void pt_drain(const struct atel_segment *seg, uint32_t r)
{
	uint64_t tail, head;

	if (atel__ring_poll(seg, r, &tail, &head) == 0)
		atel__ring_release(seg, r, head);
}

/* Ring owned by pid/tid, or -1. */
static inline int pt_ring_of(const struct atel_segment *seg, int pid)
{
	for (uint32_t i = 0; i < seg->ring_count; i++) {
		struct atel_ring_desc *d = atel__seg_desc(seg, i);
		if (atomic_load(&d->state) == ATEL_RING_ACTIVE && d->owner_pid == pid)
			return (int)i;
	}
	return -1;
}

/*
 * Checks a ring's generation is self-describing: BEGIN first, and every
 * string/series/bounds id is defined before use. Returns 0 or -1.
 */
static inline int pt_check_defs(const struct pt_ring *r)
{
	static unsigned char sdef[1 << 16], ser[1 << 16], bnd[1 << 12];

	memset(sdef, 0, sizeof(sdef));
	memset(ser, 0, sizeof(ser));
	memset(bnd, 0, sizeof(bnd));
	for (size_t i = 0; i < r->n; i++) {
		const union atel_slot *s = r->recs[i].s;
		uint32_t id = s->h.id;
		switch (s->h.type) {
		case ATEL_REC_BEGIN:
			memset(sdef, 0, sizeof(sdef));
			memset(ser, 0, sizeof(ser));
			memset(bnd, 0, sizeof(bnd));
			break;
		case ATEL_REC_STRDEF:
			sdef[id & 0xffff] = 1;
			break;
		case ATEL_REC_BOUNDS:
			bnd[id & 0xfff] = 1;
			break;
		case ATEL_REC_SERIESDEF: {
			const struct atel_label_pair *p = s->seriesdef.pairs;
			if (!sdef[s->seriesdef.name_id & 0xffff])
				return -1;
			if (s->seriesdef.mtype == ATEL_MT_HISTOGRAM && !bnd[s->seriesdef.bounds_id & 0xfff])
				return -1;
			for (unsigned k = 0; k < s->seriesdef.nlabels; k++)
				if (!sdef[p[k].key_id & 0xffff] || !sdef[p[k].value_id & 0xffff])
					return -1;
			ser[id & 0xffff] = 1;
			break;
		}
		case ATEL_REC_SAMPLE:
			if (!ser[id & 0xffff])
				return -1;
			break;
		case ATEL_REC_SPAN_START:
		case ATEL_REC_SPAN_ATTR:
		case ATEL_REC_SPAN_EVENT:
		case ATEL_REC_SPAN_ERROR:
			if (!sdef[id & 0xffff])
				return -1;
			break;
		default:
			break;
		}
		if (i == 0 && s->h.type != ATEL_REC_BEGIN)
			return -1;
	}
	return 0;
}

#endif /* ATEL_PTEST_H */
