/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `drain`: adversarial ring contents through the real drain
 * (consumer/drain.c, via tests/consumer/drain_rig.h: a 4-ring segment of 64
 * slots in a scratch directory, a fresh one per input).
 *
 * Structured, not only random bytes. The input is a series of steps; each
 * step starts with an op byte:
 *   op % 8 == 0  directory entry of ring (op>>3)&3: state, generation delta,
 *                owner pid (self, none, negative, a pid that cannot exist,
 *                init with a wrong start time), loss counters (small, huge,
 *                backwards)
 *   op % 8 == 1  a record from a template (BEGIN with a hostile generation,
 *                definitions, SAMPLE, HISTFOLD, SPAN_START/END, END, LOSS),
 *                with a timestamp chosen from now, 1970, 2554, a day ago,
 *                an hour ahead, and an id chosen from the input
 *   op % 8 == 2  64 raw bytes from the input as one slot
 *   op % 8 == 3  head moved by a signed amount (jumps, backwards)
 *   op % 8 == 4  the segment header: one byte of its first 256 overwritten
 *   op % 8 >= 5  the drain runs (1..4 passes, with a tick on each side)
 * Contract: no crash, no sanitizer report, the drain's positions stay
 * inside what it was shown, and a final step completes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "drain_rig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RINGS 4u
#define CAP 64u

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint32_t u32(struct in *in)
{
	return (uint32_t)u8(in) | (uint32_t)u8(in) << 8 | (uint32_t)u8(in) << 16 | (uint32_t)u8(in) << 24;
}

static uint64_t pick_ts(uint8_t k)
{
	uint64_t now = atel__now_ns();

	switch (k % 8) {
	case 0: return now;
	case 1: return 0;
	case 2: return 1000000000ull;                /* 1970 */
	case 3: return 18446744073709551000ull;      /* 2554 */
	case 4: return now - 86400ull * 1000000000ull;
	case 5: return now + 3600ull * 1000000000ull;
	case 6: return now + 30ull * 1000000000ull;  /* inside the slack */
	default: return now - 1000000ull;
	}
}

static uint64_t pick_count(uint8_t k)
{
	switch (k % 6) {
	case 0: return k;
	case 1: return 1ull << (k % 64);
	case 2: return 10000000000000000000ull; /* 10^19 */
	case 3: return 0;
	case 4: return UINT64_MAX;
	default: return (uint64_t)k << 20;
	}
}

static void op_dir(struct rig *r, struct in *in, uint32_t ring)
{
	struct atel_ring_desc *d = atel__seg_desc(r->seg, ring);
	uint8_t st = u8(in), gd = u8(in), who = u8(in), lk = u8(in);
	static const uint32_t states[8] = { ATEL_RING_FREE, ATEL_RING_CLAIMING, ATEL_RING_ACTIVE, ATEL_RING_DRAINING,
					    ATEL_RING_QUARANTINED, 5, 0xdeadbeefu, ATEL_RING_ACTIVE };

	atomic_store_explicit(&d->state, states[st % 8], memory_order_release);
	d->generation += (uint32_t)(int32_t)(int8_t)gd;
	switch (who % 5) {
	case 0:
		d->owner_pid = getpid();
		d->owner_start = atel__proc_start_time(getpid());
		break;
	case 1: d->owner_pid = 0; break;
	case 2: d->owner_pid = -7; break;
	case 3: d->owner_pid = 0x3ffffff0; d->owner_start = 12345; break; /* above any pid_max */
	default: d->owner_pid = 1; d->owner_start = 1; break;             /* alive, another start */
	}
	switch (lk % 4) {
	case 0: break;
	case 1: atomic_store_explicit(&d->drops_full, pick_count(u8(in)), memory_order_relaxed); break;
	case 2: atomic_store_explicit(&d->drops_nodef, pick_count(u8(in)), memory_order_relaxed); break;
	default: atomic_store_explicit(&d->folded_pending, pick_count(u8(in)), memory_order_relaxed); break;
	}
}

static void op_record(struct rig *r, struct in *in, uint32_t ring)
{
	struct atel_ring_desc *d = atel__seg_desc(r->seg, ring);
	union atel_slot s;
	uint8_t t = u8(in), tk = u8(in), idk = u8(in);

	memset(&s, 0, sizeof(s));
	s.raw[0] = 0;
	s.sample.h.ts_ns = pick_ts(tk);
	s.sample.h.id = idk % 8;
	switch (t % 9) {
	case 0:
		s.begin.h.type = ATEL_REC_BEGIN;
		s.begin.h.id = d->generation + (uint32_t)(int32_t)(int8_t)u8(in) % 4;
		s.begin.pid = (idk & 1) ? getpid() : (int32_t)u32(in);
		s.begin.start = (idk & 2) ? atel__proc_start_time(getpid()) : (uint64_t)u32(in) << 20;
		s.begin.ring = (idk & 4) ? ring : u8(in);
		break;
	case 1:
		s.strdef.h.type = ATEL_REC_STRDEF;
		s.strdef.len = u8(in) % 40;
		memset(s.strdef.bytes, 'a' + (int)(idk % 26), sizeof(s.strdef.bytes));
		break;
	case 2:
		s.seriesdef.h.type = ATEL_REC_SERIESDEF;
		s.seriesdef.mtype = u8(in) % 5;
		s.seriesdef.nlabels = u8(in) % 3;
		s.seriesdef.name_id = u8(in) % 8;
		s.seriesdef.pairs[0].key_id = 1;
		s.seriesdef.pairs[0].value_id = 2;
		break;
	case 3:
		s.sample.h.type = ATEL_REC_SAMPLE;
		s.sample.h.flags = u8(in) & 3;
		s.sample.value = (double)(int8_t)u8(in);
		s.sample.count = pick_count(u8(in));
		s.sample.first_ns = pick_ts(u8(in));
		break;
	case 4:
		s.histfold.h.type = ATEL_REC_HISTFOLD;
		s.histfold.count = pick_count(u8(in));
		s.histfold.nbuckets = u8(in);
		s.histfold.first_ns = pick_ts(u8(in));
		break;
	case 5:
		s.span_start.h.type = ATEL_REC_SPAN_START;
		break;
	case 6:
		s.span_end.h.type = ATEL_REC_SPAN_END;
		break;
	case 7:
		s.end.h.type = ATEL_REC_END;
		s.end.h.id = d->generation + (uint32_t)(u8(in) % 3);
		break;
	default:
		s.loss.h.type = ATEL_REC_LOSS;
		s.loss.count = pick_count(u8(in));
		break;
	}
	rig_put(r, ring, &s, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	struct in in = { data, size };
	struct rig r;
	char err[512];
	unsigned steps = 0;

	if (!quiet) {
		quiet = 1;
		setenv("ATEL_RIG_LOG", "error", 0);
	}
	if (rig_open(&r, RINGS, CAP, err, sizeof(err)) != 0) {
		rig_close(&r);
		return 0; /* the environment, not the input */
	}
	/* every ring starts owned by this process, as after real claims */
	for (uint32_t i = 0; i < RINGS; i++) {
		struct atel_owner who = { getpid(), getpid(), atel__proc_start_time(getpid()) };

		(void)atel__ring_claim(r.seg, &who, i);
	}
	while (in.n && steps++ < 256) {
		uint8_t op = u8(&in);
		uint32_t ring = (op >> 3) & (RINGS - 1);

		switch (op % 8) {
		case 0:
			op_dir(&r, &in, ring);
			break;
		case 1:
			op_record(&r, &in, ring);
			break;
		case 2: {
			union atel_slot s;

			memset(&s, 0, sizeof(s));
			for (unsigned i = 0; i < sizeof(s.raw) && in.n; i++)
				s.raw[i] = u8(&in);
			rig_put(&r, ring, &s, 1);
			break;
		}
		case 3: {
			struct atel_ring_desc *d = atel__seg_desc(r.seg, ring);
			int16_t delta = (int16_t)(u8(&in) | u8(&in) << 8);

			atomic_store_explicit(&d->head, atomic_load(&d->head) + (uint64_t)(int64_t)delta,
					      memory_order_release);
			break;
		}
		case 4: {
			uint8_t off = u8(&in), v = u8(&in);

			((volatile uint8_t *)r.seg->hdr)[off] = v;
			break;
		}
		default:
			(void)atel__drain_step(r.dr, 1u + op % 4u);
			break;
		}
	}
	(void)atel__drain_step(r.dr, 2);
	rig_close(&r);
	return 0;
}
