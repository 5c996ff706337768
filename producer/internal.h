/* SPDX-License-Identifier: MIT */
/*
 * internal.h - libatel internals shared by its translation units. Not installed.
 *
 * State:
 *  - struct atel__global g: the attached segment, an epoch bumped by
 *    atel_shutdown, atel_init and fork (in the child), the registry of live
 *    thread states (for stats and shutdown), folded counters of exited threads.
 *  - struct atel__tls: one per thread, in initial-exec TLS so the hot path
 *    reaches it with one %fs-relative access. It holds the ring writer, the
 *    per-ring "defined" bitmaps, the folded metric values waiting for ring
 *    space (fold.c), the span reserve, the id generator and counters.
 *  - interned strings, series and bounds (intern.c): process-global, dense
 *    ids from 1, immutable once published, lock-free lookup.
 *
 * A thread's ring state is valid iff t->epoch == g.epoch and t->w.desc != NULL.
 * Anything that is not the plain case (no ring, pending BEGIN record, folded
 * values waiting, undefined series) leaves the inline hot path for an
 * out-of-line slow path.
 */
#ifndef ATEL_PRODUCER_INTERNAL_H
#define ATEL_PRODUCER_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "atel.h"
#include "atel_abi.h"
#include "claim.h"
#include "ring.h"
#include "segment.h"

#define ATEL__LIKELY(x) __builtin_expect(!!(x), 1)
#define ATEL__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ATEL__HIDDEN __attribute__((visibility("hidden")))

/* ids are dense from 1 and stay below the consumer's per-ring limit */
#define ATEL__STR_IDS    (1u << 20)
#define ATEL__SERIES_IDS (1u << 20)
#define ATEL__BOUNDS_IDS 4096u
#define ATEL__CHUNK      1024u

/* ------------------------------------------------------------------------ */
/* interned objects (immutable once published)                              */

struct atel__str {
	uint64_t hash;
	uint32_t id;
	uint32_t len;
	/* metric-name registration (written once under the intern lock, read with acquire) */
	_Atomic uint8_t mtype;      /* 0: not a metric name */
	uint32_t bounds_id;         /* histograms */
	uint64_t keyset;            /* hash of the sorted label keys of the first series */
	uint8_t nkeys;
	char s[];                   /* NUL-terminated */
};

struct atel__bounds {
	uint32_t id;
	uint32_t count;
	double b[];
};

struct atel__series {
	uint64_t hash;
	uint32_t id;
	uint8_t mtype;
	uint8_t nlabels;
	uint16_t reserved;
	uint32_t bounds_id;
	const struct atel__str *name;
	const struct atel__str *keys[ATEL_LABELS_MAX];   /* sorted by key */
	const struct atel__str *values[ATEL_LABELS_MAX];
};

/* ------------------------------------------------------------------------ */
/* per-thread state                                                         */

enum {
	ATEL__SLOW_BEGIN = 1u, /* the BEGIN record of this claim is not written yet */
	ATEL__SLOW_FOLD = 2u,  /* folded metric values wait for ring space: write them first */
};

struct atel__tls_stats {
	_Atomic uint64_t records, definitions, meta, slots;
	_Atomic uint64_t drops[ATEL_LOSS_CAUSE_MAX + 1]; /* by enum atel_loss_cause (REENTRANT included) */
	_Atomic uint64_t invalid, claimed, released;
	_Atomic uint64_t folded, folded_records, spans_dropped, waits, wait_timeouts;
};

/* Per-span counts of dropped attributes and events, reported in SPAN_END. */
#define ATEL__SPAN_DROPS 8u
struct atel__span_drops {
	uint64_t span;      /* span id bytes as u64; 0: free */
	uint32_t attrs, events;
};

/*
 * Folded metric values (fold.c, docs/abi.md 2.3): one entry per series,
 * open addressing by series id. Mapped on the first fold of a thread.
 */
#define ATEL__FOLD_SERIES 2048u                  /* pending series per thread */
#define ATEL__FOLD_SLOTS  (2 * ATEL__FOLD_SERIES) /* hash slots (load <= 1/2) */
#define ATEL__FOLD_HISTS  128u                   /* of which histograms */

struct atel__fold_ent {
	const struct atel__series *s; /* NULL: free slot */
	double v;                     /* counter: sum; gauge: value (set) or sum of adds */
	uint64_t n;                   /* calls folded and not written; 0: written (slot kept) */
	uint64_t first_ns, last_ns;
	uint16_t hist;                /* histograms: 1 + index into fold.hist */
	uint8_t set;                  /* gauge: a set was folded (v is absolute) */
};

struct atel__fold_hist {
	double sum;
	uint64_t b[ATEL_BOUNDS_MAX + 1]; /* per-bucket counts, the last is +Inf */
};

struct atel__fold {
	/* per-span dropped-record counts (trace.c): kept here, not in TLS, whose
	 * initial-exec size must stay small for programs that dlopen libatel */
	unsigned sdrop_next;
	struct atel__span_drops sdrop[ATEL__SPAN_DROPS];
	uint32_t used;                      /* slots holding a series */
	uint32_t pending;                   /* of which with n > 0 */
	uint32_t nhist;
	uint32_t cursor;                    /* next index of order[] to write */
	uint32_t order[ATEL__FOLD_SERIES];  /* slots in first-fold order */
	struct atel__fold_ent ent[ATEL__FOLD_SLOTS];
	struct atel__fold_hist hist[ATEL__FOLD_HISTS];
};



/* Per-thread memo of the last series of each catalog metric (see metrics.c cat_series). */
struct atel__cat_cache {
	const char *v[4];                /* caller's value pointers, REFERENCE order (compared, not kept) */
	const struct atel__series *s;
	uint32_t m;                      /* catalog index */
};
#define ATEL__CAT_CACHE_N 64             /* direct-mapped by (metric, value pointers); 64 x 48 B < 4 KiB */

struct atel__tls {
	uint64_t epoch;              /* == g.epoch: w, bitmaps, rng are current */
	struct atel_ring_writer w;   /* w.desc NULL: no ring */
	uint32_t slow;               /* ATEL__SLOW_* */
	volatile sig_atomic_t busy;  /* inside a recording call (signal reentrancy guard) */
	uint64_t *def_str;           /* bitmaps, by id, of what this ring generation has defined */
	uint64_t *def_series;
	uint64_t *def_bounds;
	struct atel__cat_cache *cat_cache; /* ATEL__CAT_CACHE_N entries, in the same mapping */
	struct {
		const char *p;
		uint32_t len;
		uint64_t h;
	} hmemo[6];                  /* value hashes within one helper call (metrics.c) */
	unsigned nhmemo;
	uint64_t next_claim_ns;      /* no ring: next claim attempt (CLOCK_MONOTONIC_COARSE) */
	struct atel__fold *fold;     /* folded values (NULL until the first fold) */
	uint32_t span_res;           /* END slots held back for open spans of this claim (w.limit) */
	uint16_t span_tag;           /* random non-zero tag of this claim, kept in atel_span.reserved */
	const struct atel__str *span_name; /* the last span name interned (interned strings are immortal) */
	uint64_t mask0;              /* signal mask at the first recording call (waits only with it; the
					kernel's mask is 64 bits: the first word of a sigset_t) */
	uint64_t rng[2];             /* xorshift128+ state; never both zero */
	uint64_t rng_epoch;          /* == g.epoch: rng seeded in this process */
	int32_t tid;
	int32_t pid;
	bool registered;
	const char *err;             /* atel_last_error */
	struct atel__tls_stats st;
	struct atel__tls *prev, *next;
};

/*
 * initial-exec TLS comes out of glibc's small static surplus when a program
 * dlopen()s libatel (the Python binding, ctypes): at 776 bytes it failed
 * with "cannot allocate memory in static TLS block". Keep it small; cold
 * per-thread state goes into the thread's mappings (defs, fold table).
 */
_Static_assert(sizeof(struct atel__tls) <= 576, "struct atel__tls outgrows the initial-exec TLS budget");

extern __thread struct atel__tls atel__t __attribute__((tls_model("initial-exec"))) ATEL__HIDDEN;

/*
 * This thread's state. The empty asm hides from the optimiser that the
 * pointer is a TLS address: GCC's -fsanitize=null otherwise checks the
 * segment-relative offset (0 with UBSan) and reports a null pointer. No cost.
 */
static inline struct atel__tls *atel__self(void)
{
	struct atel__tls *t = &atel__t;

	__asm__("" : "+r"(t));
	return t;
}

struct atel__global {
	_Atomic uint64_t epoch;
	_Atomic(struct atel_segment *) seg; /* NULL: not attached */
	struct atel_segment seg_storage;
	_Atomic int state;                 /* 0 never initialised, 1 initialised, 2 shut down */
	_Atomic uint64_t next_attach_ns;   /* CLOCK_MONOTONIC_COARSE */
	_Atomic uint64_t attach_attempts;
	char name[256];
	pthread_mutex_t lock;              /* registry, attach, folded stats */
	struct atel__tls *threads;
	struct atel__tls_stats dead;       /* counters of exited threads */
	struct atel_owner owner;           /* pid and start time of this process (tid per thread) */
	_Atomic uint64_t nosidecar_pending;/* NO_SIDECAR drops not yet added to the segment header */
	_Atomic uint64_t block_timeout_ns; /* span records wait up to this for room (0: never) */
	_Atomic uint64_t exit_wait_ns;     /* release waits up to this for folded values to fit */
};

extern struct atel__global atel__g ATEL__HIDDEN;

/* ------------------------------------------------------------------------ */
/* core.c                                                                   */

/* Relaxed per-thread counter increment: only the owner thread writes. */
static inline void atel__bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline bool atel__bit(const uint64_t *map, uint32_t id)
{
	return (map[id >> 6] >> (id & 63)) & 1u;
}

static inline void atel__setbit(uint64_t *map, uint32_t id)
{
	map[id >> 6] |= 1ull << (id & 63);
}

/* Runs the one-time process setup (catalog, fork and exit handlers). One load after the first call. */
extern _Atomic int atel__once_done ATEL__HIDDEN;
void atel__once_slow(void) ATEL__HIDDEN;
static inline void atel__once(void)
{
	if (ATEL__UNLIKELY(!atomic_load_explicit(&atel__once_done, memory_order_acquire)))
		atel__once_slow();
}

/* CLOCK_MONOTONIC_COARSE ns (vDSO, a few ns): rate limits only. */
uint64_t atel__coarse_ns(void) ATEL__HIDDEN;

/*
 * Makes t ready to write: refreshes the epoch (fork, shutdown), lazily
 * initialises, attaches (rate-limited), claims a ring (rate-limited), writes
 * the pending BEGIN record and folded values.
 * @return ATEL__PREP_OK if t->w is usable and t->slow == 0;
 * ATEL__PREP_FULL if the thread holds a ring but it is full (BEGIN or folded
 * values still pending; nothing counted: the caller folds, waits or drops);
 * ATEL__PREP_DROP if there is no ring (the cause was counted for `nrec`
 * records).
 */
enum { ATEL__PREP_OK = 0, ATEL__PREP_FULL = 1, ATEL__PREP_DROP = 2 };
int atel__prepare(struct atel__tls *t, uint64_t nrec, uint64_t now) ATEL__HIDDEN;

/* The fast test of atel__prepare. */
static inline bool atel__ready(struct atel__tls *t)
{
	return ATEL__LIKELY(t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed) &&
			    t->w.desc != NULL && t->slow == 0);
}

/* Counts nrec records dropped for `cause`: the thread's stats and the
 * segment's cumulative counter (directory entry, header, or the process's
 * NO_SIDECAR count until it attaches). Async-signal-safe. */
void atel__drop(struct atel__tls *t, unsigned cause, uint64_t nrec) ATEL__HIDDEN;

/*
 * A full ring and a silent consumer: has the sidecar restarted with a new
 * segment under our name? If so every thread moves to it (new epoch).
 * Rate-limited (once a second); call from the recording path when a ring is
 * full, never with g.lock held.
 */
void atel__check_replaced(void) ATEL__HIDDEN;

/* Bumps a directory loss counter of this thread's ring (owner-only writer, docs/abi.md 1.2). */
static inline void atel__dir_bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Is a consumer draining the segment (heartbeat younger than 1 s)? */
bool atel__consumer_alive(void) ATEL__HIDDEN;

/*
 * One step of waiting for ring space, if the process asked for it
 * (atel_set_block_timeout_us; docs/abi.md 2.5). *deadline is 0 on the first
 * call: the step then checks that a consumer is alive and that the signal
 * mask is the thread's usual one (never in a signal handler) and sets it.
 * Sleeps a little. @return true: try again; false: give up (no waiting
 * allowed, or the timeout passed).
 */
bool atel__wait_step(struct atel__tls *t, uint64_t *deadline) ATEL__HIDDEN;

/* Records an invalid call: counted, message kept for atel_last_error (static string). */
void atel__invalid(struct atel__tls *t, const char *why) ATEL__HIDDEN;

/* Same with a formatted message in a thread-local buffer (not signal-safe). */
void atel__invalidf(struct atel__tls *t, const char *fmt, ...) ATEL__HIDDEN __attribute__((format(printf, 2, 3)));

/* Definitions: write the record if the ring lacks it. @return false if it could not be written. */
bool atel__def_str(struct atel__tls *t, const struct atel__str *s, uint64_t now) ATEL__HIDDEN;
bool atel__def_series(struct atel__tls *t, const struct atel__series *s, uint64_t now) ATEL__HIDDEN;

/* Publishes n reserved slots holding nrec records and counts them. kind: 0 data, 1 definition, 2 meta. */
static inline void atel__publish(struct atel__tls *t, uint64_t n, int kind, uint64_t nrec)
{
	atel__ring_commit(&t->w, n);
	atel__bump(kind == 0 ? &t->st.records : kind == 1 ? &t->st.definitions : &t->st.meta, nrec);
	atel__bump(&t->st.slots, n);
}

/* Copies `len` bytes into continuation slots 1.. of the current reservation. */
void atel__write_cont(struct atel__tls *t, const char *bytes, size_t len) ATEL__HIDDEN;

/* Enter/leave a recording call (signal reentrancy guard). @return false if re-entered. */
static inline bool atel__enter(struct atel__tls *t)
{
	if (ATEL__UNLIKELY(t->busy)) {
		atel__drop(t, ATEL_LOSS_REENTRANT, 1);
		return false;
	}
	t->busy = 1;
	atomic_signal_fence(memory_order_seq_cst);
	return true;
}

static inline void atel__leave(struct atel__tls *t)
{
	atomic_signal_fence(memory_order_seq_cst);
	t->busy = 0;
}

static inline uint64_t atel__hdr_word(unsigned type, unsigned flags, unsigned cont, uint32_t id)
{
	return (uint64_t)type | ((uint64_t)flags << 8) | ((uint64_t)cont << 16) | ((uint64_t)id << 32);
}

/* ------------------------------------------------------------------------ */
/* intern.c                                                                 */

/* Hash of a byte string (8 bytes per step); the component hash of strings and series. */
uint64_t atel__hash_bytes(const void *p, size_t n) ATEL__HIDDEN;

static inline uint64_t atel__hash_mix(uint64_t h, uint64_t x)
{
	h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 32);
}

/* A series key being looked up: name and pairs sorted by key, with lengths and hashes. */
struct atel__lookup {
	const char *name;
	uint32_t name_len;
	uint32_t n;
	uint64_t name_hash;
	const char *k[ATEL_LABELS_MAX], *v[ATEL_LABELS_MAX];
	uint32_t klen[ATEL_LABELS_MAX], vlen[ATEL_LABELS_MAX];
	uint64_t khash[ATEL_LABELS_MAX], vhash[ATEL_LABELS_MAX];
};

/* Lookup-or-insert. @return the entry, or NULL (out of ids or memory). */
const struct atel__str *atel__intern(const char *s, size_t len) ATEL__HIDDEN;
/* Lookup only (lock-free). */
const struct atel__str *atel__str_find(const char *s, size_t len) ATEL__HIDDEN;
const struct atel__str *atel__str_by_id(uint32_t id) ATEL__HIDDEN;
const struct atel__bounds *atel__bounds_by_id(uint32_t id) ATEL__HIDDEN;
/* Lookup-or-insert of a bounds array (validated by the caller). @return id or 0. */
uint32_t atel__bounds_intern(const double *b, uint32_t n) ATEL__HIDDEN;

/* Series hash of a filled lookup key. */
uint64_t atel__series_hash(const struct atel__lookup *l) ATEL__HIDDEN;

/* Lock-free lookup of an existing series. @return it or NULL. */
const struct atel__series *atel__series_find(const struct atel__lookup *l, uint64_t hash) ATEL__HIDDEN;

/*
 * Lookup-or-create under the intern lock, with the metric registration
 * checks: the name's type, its label key set and its bounds are fixed by its
 * first series. l must be validated (names, values, sorted unique keys).
 * bounds NULL: the metric's registered bounds, else Prometheus' defaults.
 * @return the series, or NULL with a message via atel__invalidf.
 */
const struct atel__series *atel__series_create(struct atel__tls *t, atel_metric_type type,
					       const struct atel__lookup *l, uint64_t hash,
					       const double *bounds, uint32_t nbounds) ATEL__HIDDEN;

/* Registers a metric name (catalog preload). @return 0 or -ENOMEM. */
int atel__metric_register(const char *name, atel_metric_type type, const char *const *sorted_keys,
			  unsigned nkeys, const double *bounds, uint32_t nbounds) ATEL__HIDDEN;

void atel__intern_lock(void) ATEL__HIDDEN;
void atel__intern_unlock(void) ATEL__HIDDEN;
void atel__intern_atfork_child(void) ATEL__HIDDEN;

/* ------------------------------------------------------------------------ */
/* fold.c                                                                   */

/* Maps the thread's table (at its first claim; no system call when folding later). @return 0 or -ENOMEM. */
int atel__fold_alloc(struct atel__tls *t) ATEL__HIDDEN;
/* Unmaps it (thread exit). */
void atel__fold_free(struct atel__tls *t) ATEL__HIDDEN;

/* Folds one metric call that found the ring full (counted as a drop if the
 * pending table is full). `flags` as in the SAMPLE record (ATEL_RECF_SET). */
void atel__fold_add(struct atel__tls *t, const struct atel__series *s, double v, unsigned flags,
		    uint64_t now) ATEL__HIDDEN;

/* Writes pending folded values while they fit. @return true if none is left. */
bool atel__fold_flush(struct atel__tls *t, uint64_t now) ATEL__HIDDEN;

/* Counts every value still pending as a RING_FULL drop and empties the table. */
void atel__fold_drop_all(struct atel__tls *t) ATEL__HIDDEN;

/* Empties the table without counting (fork child: the values are the parent's). */
void atel__fold_forget(struct atel__tls *t) ATEL__HIDDEN;

/* ------------------------------------------------------------------------ */
/* metrics.c / trace.c                                                      */

void atel__catalog_preload(void) ATEL__HIDDEN;
void atel__rng_seed(struct atel__tls *t) ATEL__HIDDEN;

#endif /* ATEL_PRODUCER_INTERNAL_H */
