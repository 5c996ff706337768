/* SPDX-License-Identifier: MIT */
/*
 * atel_abi.h - the shared-memory ABI spoken by libatel (producers) and ateld
 * (the consumer). docs/abi.md is the normative description; every size and
 * offset in it is pinned below with _Static_assert. Any change to the layout
 * bumps ATEL_ABI_MAJOR.
 *
 * Internal header: agents include only producer/include/atel.h.
 */
#ifndef ATEL_ABI_H
#define ATEL_ABI_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ATEL_SHM_MAGIC      0x314D48534C455441ull /* "ATELSHM1" little-endian */
#define ATEL_SHM_ENDIAN     0x01020304u
#define ATEL_ABI_MAJOR      2
#define ATEL_ABI_MINOR      1 /* 2.1: owner liveness locks (ring_desc.owner_flags, docs/abi.md 5.1) */
#define ATEL_HEADER_SIZE    4096u
#define ATEL_RECORD_SIZE    64u
#define ATEL_DIR_ENTRY_SIZE 192u
#define ATEL_PAGE           4096u

#define ATEL_RING_COUNT_MAX    65536u
#define ATEL_RING_CAP_MIN      64u
#define ATEL_RING_CAP_MAX      (1u << 24)

#define ATEL_STR_MAX        4096u  /* bytes in a string definition or inline string */
#define ATEL_LABELS_MAX     16u    /* label pairs per series */
#define ATEL_BOUNDS_MAX     64u    /* histogram bucket bounds */
#define ATEL_EVENT_ATTRS_MAX 32u   /* attributes per span event */
#define ATEL_ID_MAX         (1u << 20) /* largest string/series/bounds id a consumer accepts */

/* header flags */
#define ATEL_SHM_READY 0x1u

/*
 * ring_desc.owner_flags (ABI 2.1, docs/abi.md 5.1). ATEL_OWNER_LOCKED: the
 * claiming process holds an OFD write lock (fcntl F_OFD_SETLK) on byte
 * ATEL_LIVENESS_LOCK_BASE + ring of the segment file for as long as it owns
 * the ring; that lock, not the pid, says whether the owner is alive.
 */
#define ATEL_OWNER_LOCKED 0x1u
#define ATEL_LIVENESS_LOCK_BASE (1ull << 62)

/* ring states (struct atel_ring_desc.state) */
enum atel_ring_state {
	ATEL_RING_FREE = 0,
	ATEL_RING_CLAIMING = 1,
	ATEL_RING_ACTIVE = 2,
	ATEL_RING_DRAINING = 3,
	ATEL_RING_QUARANTINED = 4,
};

/* record types written by producers into rings */
enum atel_rec_type {
	ATEL_REC_BEGIN = 1,
	ATEL_REC_END = 2,
	ATEL_REC_STRDEF = 3,
	ATEL_REC_SERIESDEF = 4,
	ATEL_REC_BOUNDS = 5,
	ATEL_REC_SAMPLE = 6,
	ATEL_REC_SPAN_START = 7,
	ATEL_REC_SPAN_END = 8,
	ATEL_REC_SPAN_ATTR = 9,
	ATEL_REC_SPAN_EVENT = 10,
	ATEL_REC_SPAN_ERROR = 11,
	ATEL_REC_LOSS = 12,          /* ABI 1 producers only (kept for old segment files) */
	ATEL_REC_HISTFOLD = 13,      /* folded histogram observations (docs/abi.md 2.3) */
	ATEL_REC_PRODUCER_MAX = 13,
	/* 0x40..0x7f: consumer-only records in segment files (docs/segment-format.md) */
	ATEL_REC_LOG_MIN = 0x40,
	ATEL_REC_LOG_MAX = 0x7f,
};

enum atel_loss_cause {
	ATEL_LOSS_RING_FULL = 1,
	ATEL_LOSS_NO_RING = 2,
	ATEL_LOSS_INVALID = 3,
	ATEL_LOSS_NO_DEF = 4,
	ATEL_LOSS_PRODUCER_DIED = 5,
	ATEL_LOSS_NO_SIDECAR = 6,
	ATEL_LOSS_REENTRANT = 7,
	ATEL_LOSS_CAUSE_MAX = 7,
	/* not a record cause: spans dropped whole (LOSS_TOTAL markers, docs/segment-format.md 4.3) */
	ATEL_LOSS_SPANS = 16,
};

enum atel_metric_type {
	ATEL_MT_COUNTER = 1,
	ATEL_MT_GAUGE = 2,
	ATEL_MT_HISTOGRAM = 3,
};

enum atel_attr_vtype {
	ATEL_VT_STR = 1,
	ATEL_VT_INT = 2,
	ATEL_VT_DOUBLE = 3,
	ATEL_VT_BOOL = 4,
};

/* record flags */
#define ATEL_RECF_SET        0x01u /* SAMPLE: gauge set (else add/observe) */
#define ATEL_RECF_FOLDED     0x02u /* SAMPLE: the value folds `count` calls (docs/abi.md 2.3) */
#define ATEL_RECF_EVENT_ATTR 0x01u /* SPAN_ATTR: belongs to the preceding SPAN_EVENT */

/* inline capacities of the first slot */
#define ATEL_STRDEF_INLINE   44u
#define ATEL_SERIES_INLINE_PAIRS 4u
#define ATEL_PAIRS_PER_CONT  8u
#define ATEL_BOUNDS_INLINE   5u
#define ATEL_BOUNDS_PER_CONT 8u
#define ATEL_MSG_INLINE      20u
#define ATEL_ATTR_STR_INLINE 16u
#define ATEL_HISTFOLD_INLINE 2u    /* bucket counts in a HISTFOLD header slot */
#define ATEL_HISTFOLD_PER_CONT 8u
#define ATEL_SPAN_DROPPED_MAX 0xffffu /* saturation of each SPAN_END dropped count */

/* span states (atel_span.state, producer side; docs/abi.md 2.4) */
#define ATEL_SPAN_ST_NONE  0u
#define ATEL_SPAN_ST_LIVE  1u
#define ATEL_SPAN_ST_ENDED 2u
#define ATEL_SPAN_ST_DROPPED 3u /* START refused: the span is dropped whole */

/* ------------------------------------------------------------------------ */
/* segment header                                                           */

struct atel_shm_header {
	uint64_t magic;
	uint32_t endian;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t header_size;
	uint32_t record_size;
	uint32_t ring_count;
	uint32_t ring_capacity;
	uint64_t dir_offset;
	uint32_t dir_entry_size;
	_Atomic uint32_t flags;
	uint64_t rings_offset;
	uint64_t ring_stride;
	uint64_t total_size;
	uint64_t instance_id;
	int32_t consumer_pid;
	uint32_t reserved0;
	uint64_t consumer_start;
	_Atomic uint64_t heartbeat_ns;
	_Atomic uint64_t drops_no_ring;
	_Atomic uint64_t claims_total;
	_Atomic uint64_t drops_no_sidecar;
	uint64_t reserved[16];
};

/* ------------------------------------------------------------------------ */
/* ring directory entry: three cache lines                                  */

struct atel_ring_desc {
	/* line 0: ownership */
	alignas(64) _Atomic uint32_t state;
	uint32_t generation;
	int32_t owner_pid;
	int32_t owner_tid;
	uint64_t owner_start;
	uint64_t claim_ns;
	uint32_t owner_flags;   /* ABI 2.1: ATEL_OWNER_LOCKED (docs/abi.md 5.1); 0 from older producers */
	uint32_t reserved0a;    /* 0 */
	uint64_t reserved0[3];
	/* line 1: producer (only the current owner writes; cumulative over the ring's life) */
	alignas(64) _Atomic uint64_t head;
	uint64_t cached_tail;
	_Atomic uint64_t drops_full;
	_Atomic uint64_t drops_nodef;
	_Atomic uint64_t drops_reentrant;
	_Atomic uint64_t spans_dropped;
	_Atomic uint64_t folded_pending;
	_Atomic uint64_t folded_total;
	/* line 2: consumer */
	alignas(64) _Atomic uint64_t tail;
	uint64_t cached_head;
	_Atomic uint64_t drops_died;
	_Atomic uint64_t drops_invalid; /* display only: the log's LOSS(INVALID) markers are the count */
	uint64_t reserved2[4];
};

/* ------------------------------------------------------------------------ */
/* records                                                                  */

struct atel_rec_hdr {
	uint8_t type;
	uint8_t flags;
	uint8_t cont;
	uint8_t reserved;
	uint32_t id;
	uint64_t ts_ns;
};

struct atel_rec_begin {
	struct atel_rec_hdr h; /* id = generation */
	int32_t pid;
	int32_t tid;
	uint64_t start;
	uint32_t ring;
	uint32_t reserved0;
	char comm[16];
	uint64_t reserved1;
};

struct atel_rec_end {
	struct atel_rec_hdr h; /* id = generation */
	uint64_t reserved[6];
};

struct atel_rec_strdef {
	struct atel_rec_hdr h; /* id = string id */
	uint16_t len;
	uint16_t reserved;
	char bytes[ATEL_STRDEF_INLINE];
};

struct atel_label_pair {
	uint32_t key_id;
	uint32_t value_id;
};

struct atel_rec_seriesdef {
	struct atel_rec_hdr h; /* id = series id */
	uint8_t mtype;
	uint8_t nlabels;
	uint16_t reserved0;
	uint32_t name_id;
	uint32_t bounds_id;
	uint32_t reserved1;
	struct atel_label_pair pairs[ATEL_SERIES_INLINE_PAIRS];
};

struct atel_rec_bounds {
	struct atel_rec_hdr h; /* id = bounds id */
	uint32_t count;
	uint32_t reserved;
	double bounds[ATEL_BOUNDS_INLINE];
};

struct atel_rec_sample {
	struct atel_rec_hdr h; /* id = series id; flags: ATEL_RECF_SET, ATEL_RECF_FOLDED */
	double value;
	uint64_t count;        /* FOLDED only: calls folded (>= 1); else 0 */
	uint64_t first_ns;     /* FOLDED only: time of the first folded call; else 0 */
	uint64_t reserved[3];
};

struct atel_rec_histfold {
	struct atel_rec_hdr h; /* id = series id (a histogram); cont = ceil((nbuckets-2)/8) */
	uint64_t count;        /* observations folded (>= 1) = sum of the bucket counts */
	double sum;
	uint64_t first_ns;
	uint16_t nbuckets;     /* bounds + 1 (the last bucket is +Inf) */
	uint16_t reserved0;
	uint32_t reserved1;
	uint64_t buckets[ATEL_HISTFOLD_INLINE]; /* per-bucket (not cumulative) counts; more in continuation slots */
};

struct atel_rec_span_start {
	struct atel_rec_hdr h; /* id = name string id */
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t parent_id[8];
	uint8_t kind;
	uint8_t trace_flags;
	uint8_t reserved[14];
};

struct atel_rec_span_end {
	struct atel_rec_hdr h; /* id = dropped attributes (bits 0-15) | dropped events (16-31) */
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t status;
	uint8_t reserved;
	uint16_t msg_len;
	char msg[ATEL_MSG_INLINE];
};

struct atel_rec_span_attr {
	struct atel_rec_hdr h; /* id = key string id; flags: ATEL_RECF_EVENT_ATTR */
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t vtype;
	uint8_t reserved0;
	uint16_t vlen;
	uint32_t reserved1;
	union {
		int64_t i;
		double d;
		uint8_t b;
		char s[ATEL_ATTR_STR_INLINE];
	} v;
};

struct atel_rec_span_event {
	struct atel_rec_hdr h; /* id = name string id */
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint16_t nattrs;
	uint8_t reserved[22];
};

struct atel_rec_span_error {
	struct atel_rec_hdr h; /* id = exception type string id */
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint16_t reserved;
	uint16_t msg_len;
	char msg[ATEL_MSG_INLINE];
};

struct atel_rec_loss {
	struct atel_rec_hdr h; /* id = enum atel_loss_cause */
	uint64_t count;
	uint64_t first_ns;
	uint64_t last_ns;
	uint64_t reserved[3];
};

/* One 64-byte slot, as stored in a ring and in a segment file. */
union atel_slot {
	struct atel_rec_hdr h;
	struct atel_rec_begin begin;
	struct atel_rec_end end;
	struct atel_rec_strdef strdef;
	struct atel_rec_seriesdef seriesdef;
	struct atel_rec_bounds bounds;
	struct atel_rec_sample sample;
	struct atel_rec_histfold histfold;
	struct atel_rec_span_start span_start;
	struct atel_rec_span_end span_end;
	struct atel_rec_span_attr span_attr;
	struct atel_rec_span_event span_event;
	struct atel_rec_span_error span_error;
	struct atel_rec_loss loss;
	unsigned char raw[ATEL_RECORD_SIZE];
	uint64_t words[ATEL_RECORD_SIZE / 8];
};

/* ------------------------------------------------------------------------ */
/* pinned layout                                                            */

#define ATEL__OFF(t, f, o) _Static_assert(offsetof(t, f) == (o), #t "." #f " must be at offset " #o)
#define ATEL__SIZE(t, s) _Static_assert(sizeof(t) == (s), #t " must be " #s " bytes")

ATEL__SIZE(struct atel_shm_header, 256);
ATEL__OFF(struct atel_shm_header, magic, 0);
ATEL__OFF(struct atel_shm_header, endian, 8);
ATEL__OFF(struct atel_shm_header, abi_major, 12);
ATEL__OFF(struct atel_shm_header, abi_minor, 14);
ATEL__OFF(struct atel_shm_header, header_size, 16);
ATEL__OFF(struct atel_shm_header, record_size, 20);
ATEL__OFF(struct atel_shm_header, ring_count, 24);
ATEL__OFF(struct atel_shm_header, ring_capacity, 28);
ATEL__OFF(struct atel_shm_header, dir_offset, 32);
ATEL__OFF(struct atel_shm_header, dir_entry_size, 40);
ATEL__OFF(struct atel_shm_header, flags, 44);
ATEL__OFF(struct atel_shm_header, rings_offset, 48);
ATEL__OFF(struct atel_shm_header, ring_stride, 56);
ATEL__OFF(struct atel_shm_header, total_size, 64);
ATEL__OFF(struct atel_shm_header, instance_id, 72);
ATEL__OFF(struct atel_shm_header, consumer_pid, 80);
ATEL__OFF(struct atel_shm_header, reserved0, 84);
ATEL__OFF(struct atel_shm_header, consumer_start, 88);
ATEL__OFF(struct atel_shm_header, heartbeat_ns, 96);
ATEL__OFF(struct atel_shm_header, drops_no_ring, 104);
ATEL__OFF(struct atel_shm_header, claims_total, 112);
ATEL__OFF(struct atel_shm_header, drops_no_sidecar, 120);
ATEL__OFF(struct atel_shm_header, reserved, 128);

ATEL__SIZE(struct atel_ring_desc, ATEL_DIR_ENTRY_SIZE);
ATEL__OFF(struct atel_ring_desc, state, 0);
ATEL__OFF(struct atel_ring_desc, generation, 4);
ATEL__OFF(struct atel_ring_desc, owner_pid, 8);
ATEL__OFF(struct atel_ring_desc, owner_tid, 12);
ATEL__OFF(struct atel_ring_desc, owner_start, 16);
ATEL__OFF(struct atel_ring_desc, claim_ns, 24);
ATEL__OFF(struct atel_ring_desc, owner_flags, 32);
ATEL__OFF(struct atel_ring_desc, reserved0a, 36);
ATEL__OFF(struct atel_ring_desc, reserved0, 40);
ATEL__OFF(struct atel_ring_desc, head, 64);
ATEL__OFF(struct atel_ring_desc, cached_tail, 72);
ATEL__OFF(struct atel_ring_desc, drops_full, 80);
ATEL__OFF(struct atel_ring_desc, drops_nodef, 88);
ATEL__OFF(struct atel_ring_desc, drops_reentrant, 96);
ATEL__OFF(struct atel_ring_desc, spans_dropped, 104);
ATEL__OFF(struct atel_ring_desc, folded_pending, 112);
ATEL__OFF(struct atel_ring_desc, folded_total, 120);
ATEL__OFF(struct atel_ring_desc, tail, 128);
ATEL__OFF(struct atel_ring_desc, cached_head, 136);
ATEL__OFF(struct atel_ring_desc, drops_died, 144);
ATEL__OFF(struct atel_ring_desc, drops_invalid, 152);

ATEL__SIZE(struct atel_rec_hdr, 16);
ATEL__OFF(struct atel_rec_hdr, type, 0);
ATEL__OFF(struct atel_rec_hdr, flags, 1);
ATEL__OFF(struct atel_rec_hdr, cont, 2);
ATEL__OFF(struct atel_rec_hdr, reserved, 3);
ATEL__OFF(struct atel_rec_hdr, id, 4);
ATEL__OFF(struct atel_rec_hdr, ts_ns, 8);

ATEL__SIZE(struct atel_rec_begin, 64);
ATEL__OFF(struct atel_rec_begin, pid, 16);
ATEL__OFF(struct atel_rec_begin, tid, 20);
ATEL__OFF(struct atel_rec_begin, start, 24);
ATEL__OFF(struct atel_rec_begin, ring, 32);
ATEL__OFF(struct atel_rec_begin, comm, 40);
ATEL__OFF(struct atel_rec_begin, reserved1, 56);

ATEL__SIZE(struct atel_rec_end, 64);

ATEL__SIZE(struct atel_rec_strdef, 64);
ATEL__OFF(struct atel_rec_strdef, len, 16);
ATEL__OFF(struct atel_rec_strdef, bytes, 20);

ATEL__SIZE(struct atel_rec_seriesdef, 64);
ATEL__OFF(struct atel_rec_seriesdef, mtype, 16);
ATEL__OFF(struct atel_rec_seriesdef, nlabels, 17);
ATEL__OFF(struct atel_rec_seriesdef, name_id, 20);
ATEL__OFF(struct atel_rec_seriesdef, bounds_id, 24);
ATEL__OFF(struct atel_rec_seriesdef, pairs, 32);

ATEL__SIZE(struct atel_rec_bounds, 64);
ATEL__OFF(struct atel_rec_bounds, count, 16);
ATEL__OFF(struct atel_rec_bounds, bounds, 24);

ATEL__SIZE(struct atel_rec_sample, 64);
ATEL__OFF(struct atel_rec_sample, value, 16);
ATEL__OFF(struct atel_rec_sample, count, 24);
ATEL__OFF(struct atel_rec_sample, first_ns, 32);

ATEL__SIZE(struct atel_rec_histfold, 64);
ATEL__OFF(struct atel_rec_histfold, count, 16);
ATEL__OFF(struct atel_rec_histfold, sum, 24);
ATEL__OFF(struct atel_rec_histfold, first_ns, 32);
ATEL__OFF(struct atel_rec_histfold, nbuckets, 40);
ATEL__OFF(struct atel_rec_histfold, buckets, 48);

ATEL__SIZE(struct atel_rec_span_start, 64);
ATEL__OFF(struct atel_rec_span_start, trace_id, 16);
ATEL__OFF(struct atel_rec_span_start, span_id, 32);
ATEL__OFF(struct atel_rec_span_start, parent_id, 40);
ATEL__OFF(struct atel_rec_span_start, kind, 48);
ATEL__OFF(struct atel_rec_span_start, trace_flags, 49);

ATEL__SIZE(struct atel_rec_span_end, 64);
ATEL__OFF(struct atel_rec_span_end, trace_id, 16);
ATEL__OFF(struct atel_rec_span_end, span_id, 32);
ATEL__OFF(struct atel_rec_span_end, status, 40);
ATEL__OFF(struct atel_rec_span_end, msg_len, 42);
ATEL__OFF(struct atel_rec_span_end, msg, 44);

ATEL__SIZE(struct atel_rec_span_attr, 64);
ATEL__OFF(struct atel_rec_span_attr, trace_id, 16);
ATEL__OFF(struct atel_rec_span_attr, span_id, 32);
ATEL__OFF(struct atel_rec_span_attr, vtype, 40);
ATEL__OFF(struct atel_rec_span_attr, vlen, 42);
ATEL__OFF(struct atel_rec_span_attr, v, 48);

ATEL__SIZE(struct atel_rec_span_event, 64);
ATEL__OFF(struct atel_rec_span_event, trace_id, 16);
ATEL__OFF(struct atel_rec_span_event, span_id, 32);
ATEL__OFF(struct atel_rec_span_event, nattrs, 40);

ATEL__SIZE(struct atel_rec_span_error, 64);
ATEL__OFF(struct atel_rec_span_error, trace_id, 16);
ATEL__OFF(struct atel_rec_span_error, span_id, 32);
ATEL__OFF(struct atel_rec_span_error, msg_len, 42);
ATEL__OFF(struct atel_rec_span_error, msg, 44);

ATEL__SIZE(struct atel_rec_loss, 64);
ATEL__OFF(struct atel_rec_loss, count, 16);
ATEL__OFF(struct atel_rec_loss, first_ns, 24);
ATEL__OFF(struct atel_rec_loss, last_ns, 32);

ATEL__SIZE(union atel_slot, ATEL_RECORD_SIZE);

/* ------------------------------------------------------------------------ */
/* helpers shared by both sides                                             */

/* Continuation slots needed for n bytes/items beyond an inline capacity. */
static inline unsigned atel__cont_for(unsigned n, unsigned inline_cap, unsigned per_cont)
{
	return n <= inline_cap ? 0u : (n - inline_cap + per_cont - 1u) / per_cont;
}

/* Bytes of the directory, rounded to a page. */
static inline uint64_t atel__dir_bytes(uint32_t ring_count)
{
	uint64_t b = (uint64_t)ring_count * ATEL_DIR_ENTRY_SIZE;
	return (b + ATEL_PAGE - 1) & ~(uint64_t)(ATEL_PAGE - 1);
}

static inline uint64_t atel__segment_bytes(uint32_t ring_count, uint32_t ring_capacity)
{
	return ATEL_HEADER_SIZE + atel__dir_bytes(ring_count) +
	       (uint64_t)ring_count * ring_capacity * ATEL_RECORD_SIZE;
}

#endif /* ATEL_ABI_H */
