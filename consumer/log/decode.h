/* SPDX-License-Identifier: MIT */
/*
 * decode.h - turns raw 64-byte records (from a ring or from a segment file)
 * into resolved events: names, labels and bounds looked up in the definitions
 * that appeared earlier in the same ring and generation.
 *
 * Shared memory and segment files are untrusted: every id, length and count
 * is checked; an invalid record yields ATEL_EV_INVALID with a reason and
 * changes no state. A decoder is single-threaded; one per reader.
 */
#ifndef ATEL_DECODE_H
#define ATEL_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "util.h"

/* A resolved series definition. Label pairs are sorted by key. Pointers stay
 * valid until the ring's generation changes (BEGIN) or the decoder is freed. */
struct atel_dec_series {
	uint32_t id;
	uint8_t mtype;               /* enum atel_metric_type */
	const char *name;
	uint32_t nlabels;
	const char *keys[ATEL_LABELS_MAX];
	const char *values[ATEL_LABELS_MAX];
	uint32_t nbounds;            /* histogram only */
	const double *bounds;        /* strictly increasing, finite */
	uint64_t key_hash;           /* FNV-1a 64 of name and sorted labels: equal across rings/processes */
};

enum atel_ev_kind {
	ATEL_EV_BEGIN = 1,   /* a producer thread claimed the ring (generation starts) */
	ATEL_EV_END,         /* it released the ring */
	ATEL_EV_SAMPLE,
	ATEL_EV_SPAN_START,
	ATEL_EV_SPAN_END,
	ATEL_EV_SPAN_ATTR,
	ATEL_EV_SPAN_EVENT,
	ATEL_EV_SPAN_ERROR,
	ATEL_EV_LOSS,
	ATEL_EV_DEATH,       /* consumer-only: the owner died (docs/abi.md 5) */
	ATEL_EV_INVALID,     /* the record was rejected; see .invalid.why */
	ATEL_EV_HISTFOLD,    /* folded histogram observations (docs/abi.md 2.3) */
	ATEL_EV_LOSS_TOTAL,  /* consumer-only: a loss counter's cumulative value (docs/segment-format.md 4.3) */
};

struct atel_attr_value {
	uint8_t vtype;       /* enum atel_attr_vtype */
	int64_t i;
	double d;
	bool b;
	const char *s;       /* NUL-terminated copy, valid until the next decode call */
	uint32_t slen;
};

struct atel_event {
	enum atel_ev_kind kind;
	uint8_t rec_type;    /* raw record type */
	uint32_t ring;
	uint32_t generation;
	uint64_t seq;        /* position of the record's header slot in its ring */
	uint64_t ts_ns;
	int32_t pid;         /* producer of this generation (from BEGIN); 0 if unknown */
	int32_t tid;
	const char *comm;    /* producer's command name ("" if unknown) */
	union {
		struct { int32_t pid, tid; uint64_t start; const char *comm; } begin;
		struct {
			const struct atel_dec_series *series;
			double value;
			bool set;
			bool folded;                 /* the value folds `count` calls (docs/abi.md 2.3) */
			uint64_t count;              /* calls this record stands for: 1, or the folded count */
			uint64_t first_ns;           /* folded: time of the first call (ts_ns is the last); else ts_ns */
		} sample;
		struct {
			const struct atel_dec_series *series; /* a histogram */
			uint64_t count;              /* observations, = sum of buckets */
			double sum;
			uint64_t first_ns;
			uint32_t nbuckets;           /* series->nbounds + 1 */
			const uint64_t *buckets;     /* per bucket, not cumulative; valid until the next decode call */
		} histfold;
		struct {
			uint8_t trace_id[16], span_id[8], parent_id[8];
			uint8_t kind, flags;
			const char *name;
		} span_start;
		struct {
			uint8_t trace_id[16], span_id[8];
			uint8_t status;              /* 0 unset, 1 ok, 2 error */
			const char *msg;             /* NUL-terminated; "" if none */
			uint32_t msg_len;
			uint16_t dropped_attrs;      /* attributes / events the span lost to a full ring */
			uint16_t dropped_events;
		} span_end;
		struct {
			uint8_t trace_id[16], span_id[8];
			const char *key;
			struct atel_attr_value v;
			bool event_attr;             /* belongs to the preceding SPAN_EVENT */
		} span_attr;
		struct {
			uint8_t trace_id[16], span_id[8];
			const char *name;
			uint16_t nattrs;
		} span_event;
		struct {
			uint8_t trace_id[16], span_id[8];
			const char *type;
			const char *msg;
			uint32_t msg_len;
		} span_error;
		struct { uint32_t cause; uint64_t count, first_ns, last_ns; } loss;
		struct {
			uint32_t cause;              /* enum atel_loss_cause, or ATEL_LOSS_SPANS */
			uint32_t ring;               /* ring index, or ATEL_LOSS_RING_SEGMENT for header counters */
			uint64_t total;              /* cumulative value for (segment instance, ring, cause) */
			uint64_t delta;              /* increase since this consumer's previous reading */
			uint64_t since_ns;           /* time of that previous reading (0: first) */
		} loss_total;
		struct { int32_t pid; uint64_t start; uint32_t generation; } death;
		struct { const char *why; } invalid;
	};
};

struct atel_decoder;

/*
 * What resolving a SAMPLE needs from one ring's dictionary. The decoder
 * keeps it as the first member of its per-ring state, at an address that
 * stays valid until the decoder is freed (atel__decoder_ring); its fields
 * change only inside atel__decode (BEGIN and definitions) and
 * atel__decoder_reset_ring. A reader walking a chunk of one ring holds the
 * pointer and resolves samples with atel__decode_sample, without a call and
 * a decoder -> ring lookup per record: samples are most of a log, and that
 * call was a large part of the log reader's own cost per record.
 * Read-only outside decode.c.
 */
struct atel_dec_ring {
	struct atel_dec_series **ser;  /* by series id; NULL: undefined in this generation */
	uint32_t ser_cap;
	bool have_begin;
	uint32_t generation;
	int32_t pid, tid;
	char comm[17];
};

/* @return a new decoder, or NULL on allocation failure. */
struct atel_decoder *atel__decoder_new(void);

/* NULL-safe. */
void atel__decoder_free(struct atel_decoder *d);

/* Tests: the decoder-wide limit of definition slots (default: what a segment
 * header holds, 256 MiB; see decode.c). */
void atel__decoder_set_def_slots_max(struct atel_decoder *d, uint64_t n);

/*
 * Decodes one record: rec[0] is its header slot, rec[1..nslots-1] its
 * continuation slots (contiguous; copy out of the ring first if it wraps).
 * Definitions update the ring's dictionary and produce no event.
 * @return 1 and *ev filled; 0 for a definition (no event); -EINVAL for an
 * invalid record (*ev is ATEL_EV_INVALID with .invalid.why; nothing changed).
 */
int atel__decode(struct atel_decoder *d, uint32_t ring, uint64_t seq, const union atel_slot *rec,
		 unsigned nslots, struct atel_event *ev);

/* ring's dictionary as the fast path sees it, or NULL while the ring has none
 * (nothing decoded for it yet: every sample would be invalid, and
 * atel__decode says why). */
const struct atel_dec_ring *atel__decoder_ring(const struct atel_decoder *d, uint32_t ring);

/*
 * atel__decode for the common case only: a one-slot SAMPLE (reserved byte
 * and continuation count zero) whose series is defined in rg, the ring's
 * dictionary (may be NULL). That is the complete check of such a record,
 * and the event is the one atel__decode would give.
 * @return 1 with *ev filled; 0 (nothing written) for any other record,
 * valid or not: the caller hands it to atel__decode.
 */
static inline int atel__decode_sample(const struct atel_dec_ring *rg, uint32_t ring, uint64_t seq,
				      const union atel_slot *rec, struct atel_event *ev)
{
	const struct atel_dec_series *s;

	if (rec->h.type != ATEL_REC_SAMPLE || rec->h.reserved || rec->h.cont || (rec->h.flags & ATEL_RECF_FOLDED) ||
	    !rg || rec->h.id >= rg->ser_cap)
		return 0;
	s = rg->ser[rec->h.id];
	if (!s)
		return 0;
	ev->kind = ATEL_EV_SAMPLE;
	ev->rec_type = ATEL_REC_SAMPLE;
	ev->ring = ring;
	ev->seq = seq;
	ev->ts_ns = rec->h.ts_ns;
	if (rg->have_begin) {
		ev->generation = rg->generation;
		ev->pid = rg->pid;
		ev->tid = rg->tid;
		ev->comm = rg->comm;
	} else {
		ev->generation = 0;
		ev->pid = 0;
		ev->tid = 0;
		ev->comm = "";
	}
	ev->sample.series = s;
	ev->sample.value = rec->sample.value;
	ev->sample.set = rec->h.flags & ATEL_RECF_SET;
	ev->sample.folded = false;
	ev->sample.count = 1;
	ev->sample.first_ns = rec->h.ts_ns;
	return 1;
}

/*
 * Re-emits, as raw records, every definition live in `ring` (BEGIN first,
 * then strings, bounds, series) so that a new segment file can carry them in
 * its header frame. emit returns 0 to continue, non-zero to stop (returned).
 */
int atel__decoder_defs(const struct atel_decoder *d, uint32_t ring,
		       int (*emit)(void *arg, const union atel_slot *rec, unsigned nslots), void *arg);

/* Forgets ring's dictionary (a new generation or a reclaimed ring). */
void atel__decoder_reset_ring(struct atel_decoder *d, uint32_t ring);

/* atel__hex (lowercase hex of ids) is the helpers room's: util.h. */

#endif /* ATEL_DECODE_H */
