/* SPDX-License-Identifier: MIT */
/*
 * libatel core: attach, per-thread rings (claim, BEGIN/END, release at thread
 * exit, shutdown and fork), definitions, loss accounting, stats, errors.
 *
 * Ring protocol (docs/abi.md 3 and 4): a thread claims a ring lazily on its
 * first record (atel__ring_claim, one CAS), writes BEGIN before anything
 * else, then only it writes that ring's slots and head (R1 via
 * atel__ring_commit). Definitions precede their first use in each claim
 * (per-thread bitmaps, reset at every claim). Refused records are counted in
 * the directory's cumulative loss counters (docs/abi.md 1.2), which the
 * consumer logs; metric values that meet a full ring are folded (fold.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "internal.h"
#include "sigbus.h"

__thread struct atel__tls atel__t __attribute__((tls_model("initial-exec")));
struct atel__global atel__g = { .epoch = 1, .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static __thread char errbuf[1024];

#define RETRY_NS 1000000000ull /* attach / claim retry interval */

#define DEF_STR_BYTES    (ATEL__STR_IDS / 8)
#define DEF_SERIES_BYTES (ATEL__SERIES_IDS / 8)
#define DEF_BOUNDS_BYTES (ATEL__BOUNDS_IDS / 8)
#define DEF_BYTES        (DEF_STR_BYTES + DEF_SERIES_BYTES + DEF_BOUNDS_BYTES + 4096)

uint64_t atel__coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* errors                                                                   */

void atel__invalid(struct atel__tls *t, const char *why)
{
	t->err = why;
	atel__bump(&t->st.invalid, 1);
}

void atel__invalidf(struct atel__tls *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	atel__invalid(t, errbuf);
}

const char *atel_last_error(void)
{
	return atel__self()->err ? atel__self()->err : "";
}

/* ------------------------------------------------------------------------ */
/* thread registry and stats                                                */

static void stats_add(struct atel__tls_stats *to, const struct atel__tls_stats *from)
{
#define ADD(f) atomic_store_explicit(&to->f, atomic_load_explicit(&to->f, memory_order_relaxed) + \
				     atomic_load_explicit(&from->f, memory_order_relaxed), memory_order_relaxed)
	ADD(records);
	ADD(definitions);
	ADD(meta);
	ADD(slots);
	for (unsigned i = 0; i <= ATEL_LOSS_CAUSE_MAX; i++)
		ADD(drops[i]);
	ADD(invalid);
	ADD(claimed);
	ADD(released);
	ADD(folded);
	ADD(folded_records);
	ADD(spans_dropped);
	ADD(waits);
	ADD(wait_timeouts);
#undef ADD
}

static void stats_reset(struct atel__tls_stats *s)
{
	memset(s, 0, sizeof(*s));
}

/* Caller holds g.lock. */
static void registry_add(struct atel__tls *t)
{
	if (t->registered)
		return;
	t->prev = NULL;
	t->next = atel__g.threads;
	if (t->next)
		t->next->prev = t;
	atel__g.threads = t;
	t->registered = true;
}

/* Caller holds g.lock. */
static void registry_remove(struct atel__tls *t)
{
	if (!t->registered)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		atel__g.threads = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->registered = false;
}

/* What atel_stats_get wrote before atel_stats grew (0.1): binaries built then call it. */
#define STATS_V1_SIZE offsetof(atel_stats, folded)

#undef atel_stats_get
void atel_stats_get(atel_stats *out)
{
	atel_stats_get_sized(out, STATS_V1_SIZE);
}

void atel_stats_get_sized(atel_stats *out, size_t size)
{
	struct atel__tls_stats sum;
	atel_stats all;

	if (!out || size < STATS_V1_SIZE)
		return;
	stats_reset(&sum);
	pthread_mutex_lock(&atel__g.lock);
	stats_add(&sum, &atel__g.dead);
	for (struct atel__tls *t = atel__g.threads; t; t = t->next)
		stats_add(&sum, &t->st);
	/* the calling thread may have counted drops before it ever registered */
	if (!atel__self()->registered)
		stats_add(&sum, &atel__self()->st);
	pthread_mutex_unlock(&atel__g.lock);
	memset(&all, 0, sizeof(all));
	all.records = sum.records;
	all.definitions = sum.definitions;
	all.meta = sum.meta;
	all.slots = sum.slots;
	all.drops_ring_full = sum.drops[ATEL_LOSS_RING_FULL];
	all.drops_no_ring = sum.drops[ATEL_LOSS_NO_RING];
	all.drops_no_def = sum.drops[ATEL_LOSS_NO_DEF];
	all.drops_no_sidecar = sum.drops[ATEL_LOSS_NO_SIDECAR];
	all.drops_reentrant = sum.drops[ATEL_LOSS_REENTRANT];
	all.invalid = sum.invalid;
	all.rings_claimed = sum.claimed;
	all.rings_released = sum.released;
	all.attach_attempts = atomic_load_explicit(&atel__g.attach_attempts, memory_order_relaxed);
	all.attached = atel_attached();
	all.folded = sum.folded;
	all.folded_records = sum.folded_records;
	all.spans_dropped = sum.spans_dropped;
	all.block_waits = sum.waits;
	all.block_timeouts = sum.wait_timeouts;
	all.segment_faults = atel__sigbus_absorbed();
	memcpy(out, &all, size < sizeof(all) ? size : sizeof(all));
}

bool atel_attached(void)
{
	return atomic_load_explicit(&atel__g.seg, memory_order_acquire) != NULL;
}

/* ------------------------------------------------------------------------ */
/* loss                                                                     */

void atel__drop(struct atel__tls *t, unsigned cause, uint64_t nrec)
{
	const struct atel_segment *seg;
	bool own = t->w.desc && t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed);

	atel__bump(&t->st.drops[cause], nrec);
	switch (cause) {
	case ATEL_LOSS_RING_FULL:
		if (own)
			atel__dir_bump(&t->w.desc->drops_full, nrec);
		break;
	case ATEL_LOSS_NO_DEF:
		if (own)
			atel__dir_bump(&t->w.desc->drops_nodef, nrec);
		break;
	case ATEL_LOSS_REENTRANT:
		if (own)
			atel__dir_bump(&t->w.desc->drops_reentrant, nrec);
		break;
	case ATEL_LOSS_NO_RING:
		seg = atomic_load_explicit(&atel__g.seg, memory_order_acquire);
		if (seg)
			atomic_fetch_add_explicit(&seg->hdr->drops_no_ring, nrec, memory_order_relaxed);
		break;
	default: /* NO_SIDECAR: reported to the segment when the process attaches */
		atomic_fetch_add_explicit(&atel__g.nosidecar_pending, nrec, memory_order_relaxed);
		break;
	}
}

/* Adds the process's NO_SIDECAR drops to the attached segment's header, once. */
static void report_nosidecar(const struct atel_segment *seg)
{
	uint64_t n;

	if (!seg || !atomic_load_explicit(&atel__g.nosidecar_pending, memory_order_relaxed))
		return;
	n = atomic_exchange_explicit(&atel__g.nosidecar_pending, 0, memory_order_relaxed);
	if (n)
		atomic_fetch_add_explicit(&seg->hdr->drops_no_sidecar, n, memory_order_relaxed);
}

bool atel__consumer_alive(void)
{
	const struct atel_segment *seg = atomic_load_explicit(&atel__g.seg, memory_order_acquire);
	uint64_t hb, now;

	if (!seg)
		return false;
	hb = atomic_load_explicit(&seg->hdr->heartbeat_ns, memory_order_relaxed);
	now = realtime_coarse_ns();
	return hb && (now < hb || now - hb < 1000000000ull);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

bool atel__wait_step(struct atel__tls *t, uint64_t *deadline)
{
	uint64_t timeout, now = atel__coarse_ns();
	sigset_t cur;

	if (!*deadline) {
		timeout = atomic_load_explicit(&atel__g.block_timeout_ns, memory_order_relaxed);
		if (!timeout || !t->w.desc || !atel__consumer_alive())
			return false;
		/* a signal handler runs with its signal blocked: never wait there (the kernel
		 * fills only its own sigset size: clear the rest before comparing) */
		memset(&cur, 0, sizeof(cur));
		if (pthread_sigmask(SIG_BLOCK, NULL, &cur) != 0 || memcmp(&cur, &t->mask0, sizeof(t->mask0)) != 0)
			return false;
		atel__bump(&t->st.waits, 1);
		*deadline = now + timeout;
		return true; /* the caller retries once at once (tail reloaded), then sleeps */
	}
	if (now >= *deadline || !atel__consumer_alive()) {
		atel__bump(&t->st.wait_timeouts, 1);
		return false;
	}
	/* the consumer frees space a batch at a time, about every few ms under load */
	sleep_ns(50000);
	return true;
}

/* ------------------------------------------------------------------------ */
/* writing helpers                                                          */

void atel__write_cont(struct atel__tls *t, const char *bytes, size_t len)
{
	for (uint64_t i = 1; len; i++) {
		union atel_slot *d = atel__ring_slot(&t->w, i);
		size_t n = len < ATEL_RECORD_SIZE ? len : ATEL_RECORD_SIZE;

		memcpy(d->raw, bytes, n);
		if (n < ATEL_RECORD_SIZE)
			memset(d->raw + n, 0, ATEL_RECORD_SIZE - n);
		bytes += n;
		len -= n;
	}
}

bool atel__def_str(struct atel__tls *t, const struct atel__str *s, uint64_t now)
{
	unsigned cont;
	size_t first;
	union atel_slot *d;

	if (atel__bit(t->def_str, s->id))
		return true;
	cont = atel__cont_for(s->len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
	if (!atel__ring_reserve(&t->w, 1 + cont))
		return false;
	d = atel__ring_slot(&t->w, 0);
	d->words[0] = atel__hdr_word(ATEL_REC_STRDEF, 0, cont, s->id);
	d->words[1] = now;
	d->strdef.len = (uint16_t)s->len;
	d->strdef.reserved = 0;
	first = s->len < ATEL_STRDEF_INLINE ? s->len : ATEL_STRDEF_INLINE;
	memcpy(d->strdef.bytes, s->s, first);
	memset(d->strdef.bytes + first, 0, ATEL_STRDEF_INLINE - first);
	atel__write_cont(t, s->s + first, s->len - first);
	atel__publish(t, 1 + cont, 1, 1);
	atel__setbit(t->def_str, s->id);
	return true;
}

static bool def_bounds(struct atel__tls *t, uint32_t id, uint64_t now)
{
	const struct atel__bounds *b = atel__bounds_by_id(id);
	unsigned cont;
	union atel_slot *d;

	if (!b)
		return false;
	if (atel__bit(t->def_bounds, id))
		return true;
	cont = atel__cont_for(b->count, ATEL_BOUNDS_INLINE, ATEL_BOUNDS_PER_CONT);
	if (!atel__ring_reserve(&t->w, 1 + cont))
		return false;
	d = atel__ring_slot(&t->w, 0);
	memset(d, 0, sizeof(*d));
	d->words[0] = atel__hdr_word(ATEL_REC_BOUNDS, 0, cont, id);
	d->words[1] = now;
	d->bounds.count = b->count;
	for (uint32_t i = 0; i < b->count && i < ATEL_BOUNDS_INLINE; i++)
		d->bounds.bounds[i] = b->b[i];
	for (unsigned c = 0; c < cont; c++) {
		union atel_slot *s = atel__ring_slot(&t->w, 1 + c);
		memset(s, 0, sizeof(*s));
		for (uint32_t j = 0; j < ATEL_BOUNDS_PER_CONT; j++) {
			uint32_t k = ATEL_BOUNDS_INLINE + c * ATEL_BOUNDS_PER_CONT + j;
			if (k < b->count)
				memcpy(&s->words[j], &b->b[k], 8);
		}
	}
	atel__publish(t, 1 + cont, 1, 1);
	atel__setbit(t->def_bounds, id);
	return true;
}

bool atel__def_series(struct atel__tls *t, const struct atel__series *s, uint64_t now)
{
	unsigned cont;
	union atel_slot *d;

	if (atel__bit(t->def_series, s->id))
		return true;
	if (!atel__def_str(t, s->name, now))
		return false;
	for (unsigned i = 0; i < s->nlabels; i++)
		if (!atel__def_str(t, s->keys[i], now) || !atel__def_str(t, s->values[i], now))
			return false;
	if (s->mtype == ATEL_MT_HISTOGRAM && !def_bounds(t, s->bounds_id, now))
		return false;
	cont = atel__cont_for(s->nlabels, ATEL_SERIES_INLINE_PAIRS, ATEL_PAIRS_PER_CONT);
	if (!atel__ring_reserve(&t->w, 1 + cont))
		return false;
	d = atel__ring_slot(&t->w, 0);
	memset(d, 0, sizeof(*d));
	d->words[0] = atel__hdr_word(ATEL_REC_SERIESDEF, 0, cont, s->id);
	d->words[1] = now;
	d->seriesdef.mtype = s->mtype;
	d->seriesdef.nlabels = s->nlabels;
	d->seriesdef.name_id = s->name->id;
	d->seriesdef.bounds_id = s->mtype == ATEL_MT_HISTOGRAM ? s->bounds_id : 0;
	for (unsigned i = 0; i < s->nlabels && i < ATEL_SERIES_INLINE_PAIRS; i++) {
		d->seriesdef.pairs[i].key_id = s->keys[i]->id;
		d->seriesdef.pairs[i].value_id = s->values[i]->id;
	}
	for (unsigned c = 0; c < cont; c++) {
		union atel_slot *x = atel__ring_slot(&t->w, 1 + c);
		struct atel_label_pair *p = (struct atel_label_pair *)(void *)x->raw;
		memset(x, 0, sizeof(*x));
		for (unsigned j = 0; j < ATEL_PAIRS_PER_CONT; j++) {
			unsigned k = ATEL_SERIES_INLINE_PAIRS + c * ATEL_PAIRS_PER_CONT + j;
			if (k < s->nlabels) {
				p[j].key_id = s->keys[k]->id;
				p[j].value_id = s->values[k]->id;
			}
		}
	}
	atel__publish(t, 1 + cont, 1, 1);
	atel__setbit(t->def_series, s->id);
	return true;
}

/* ------------------------------------------------------------------------ */
/* ring claim / release                                                     */

static bool write_begin(struct atel__tls *t, uint64_t now)
{
	union atel_slot *d;
	char comm[16] = "";

	if (!atel__ring_reserve(&t->w, 1))
		return false;
	(void)prctl(PR_GET_NAME, comm, 0, 0, 0);
	d = atel__ring_slot(&t->w, 0);
	memset(d, 0, sizeof(*d));
	d->words[0] = atel__hdr_word(ATEL_REC_BEGIN, 0, 0, t->w.generation);
	d->words[1] = now;
	d->begin.pid = atel__g.owner.pid;
	d->begin.tid = t->tid;
	d->begin.start = __atomic_load_n(&atel__g.owner.start, __ATOMIC_RELAXED);
	d->begin.ring = t->w.ring;
	memcpy(d->begin.comm, comm, sizeof(comm));
	d->begin.comm[15] = '\0';
	atel__publish(t, 1, 2, 1);
	t->slow &= ~(uint32_t)ATEL__SLOW_BEGIN;
	return true;
}

/*
 * Writes the folded values still pending (waiting for room up to the exit
 * wait while a consumer drains; what still does not fit is counted as
 * RING_FULL), then END if there is room, then frees the ring.
 */
static void release_ring(struct atel__tls *t, const struct atel_segment *seg)
{
	union atel_slot *d;

	if (!t->w.desc)
		return;
	/* open spans of this claim will not end here: their held-back slots are free again */
	t->w.limit = t->w.capacity;
	t->span_res = 0;
	if ((t->slow & ATEL__SLOW_BEGIN) && t->fold && t->fold->pending)
		(void)write_begin(t, atel__now_ns());
	if (!(t->slow & ATEL__SLOW_BEGIN) && t->fold && t->fold->pending && !atel__fold_flush(t, atel__now_ns())) {
		uint64_t wait = atomic_load_explicit(&atel__g.exit_wait_ns, memory_order_relaxed);
		uint64_t deadline = atel__coarse_ns() + wait;

		while (wait && atel__consumer_alive() && atel__coarse_ns() < deadline) {
			sleep_ns(200000);
			if (atel__fold_flush(t, atel__now_ns()))
				break;
		}
	}
	if (t->fold && t->fold->pending)
		atel__fold_drop_all(t);
	if (!(t->slow & ATEL__SLOW_BEGIN) && atel__ring_reserve(&t->w, 1)) {
		d = atel__ring_slot(&t->w, 0);
		memset(d, 0, sizeof(*d));
		d->words[0] = atel__hdr_word(ATEL_REC_END, 0, 0, t->w.generation);
		d->words[1] = atel__now_ns();
		atel__publish(t, 1, 2, 1);
	}
	atel__ring_unclaim_live(seg, t->w.ring, seg->live_fd);
	atel__bump(&t->st.released, 1);
	memset(&t->w, 0, sizeof(t->w));
	t->slow = 0;
}


static int alloc_defs(struct atel__tls *t)
{
	void *p;

	if (t->def_str) {
		/* a new claim starts a new generation: nothing is defined in it yet */
		(void)madvise(t->def_str, DEF_BYTES, MADV_DONTNEED);
		return 0;
	}
	p = mmap(NULL, DEF_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	t->def_str = p;
	t->def_series = (uint64_t *)(void *)((char *)p + DEF_STR_BYTES);
	t->def_bounds = (uint64_t *)(void *)((char *)p + DEF_STR_BYTES + DEF_SERIES_BYTES);
	t->cat_cache = (struct atel__cat_cache *)(void *)((char *)p + DEF_STR_BYTES + DEF_SERIES_BYTES +
							   DEF_BOUNDS_BYTES);
	return 0;
}

static void free_defs(struct atel__tls *t)
{
	if (t->def_str)
		munmap(t->def_str, DEF_BYTES);
	t->def_str = t->def_series = t->def_bounds = NULL;
	t->cat_cache = NULL;
}

/* $ATEL_SHM_OWNER: the sidecar's user (uid or name), trusted like our own; -1 if unset. */
static long trusted_uid = -1;

/*
 * Maps the segment, refuses one this process should not write into
 * (atel__segment_trusted), and guards the mapping against truncation
 * (shm/sigbus.h). @return 0 or -errno (err says why).
 */
static int attach(struct atel_segment *seg, char *err, size_t errlen)
{
	int rc = atel__segment_attach(seg, atel__g.name, err, errlen);

	if (rc)
		return rc;
	rc = atel__segment_trusted(seg, trusted_uid, err, errlen);
	if (rc == 0 && (rc = atel__sigbus_guard(seg->base, seg->size)) != 0)
		snprintf(err, errlen, "cannot guard the mapping against truncation: %s", strerror(-rc));
	if (rc) {
		atel__segment_detach(seg);
		return rc;
	}
	/* our own open file description for the liveness locks (docs/abi.md 5.1); none: pid checks */
	seg->live_fd = atel__segment_reopen(seg, O_RDWR);
	if (seg->live_fd < 0)
		seg->live_fd = -1;
	return 0;
}

static void detach(struct atel_segment *seg)
{
	if (seg && seg->base)
		atel__sigbus_unguard(seg->base);
	if (seg && seg->live_fd >= 0)
		close(seg->live_fd); /* drops every liveness lock this process still held there */
	if (seg)
		seg->live_fd = -1;
	atel__segment_detach(seg);
}

/*
 * After fork the child shares the parent's open file description of the
 * segment, and with it the parent's liveness locks: it closes its copy of
 * the fd (the parent's keeps the locks; close() drops OFD locks only with the
 * description's last fd) and opens its own at its first claim.
 */
static void live_fd_atfork_child(struct atel_segment *seg, bool reopen)
{
	if (!seg)
		return;
	if (seg->live_fd >= 0)
		close(seg->live_fd);
	if (seg->live_fd >= 0 || seg->live_fd == ATEL_LIVE_FD_REOPEN)
		seg->live_fd = reopen ? ATEL_LIVE_FD_REOPEN : -1;
}

/* Attach attempt, at most once per RETRY_NS process-wide. */
static void maybe_attach(uint64_t mono)
{
	uint64_t next = atomic_load_explicit(&atel__g.next_attach_ns, memory_order_relaxed);
	char err[256];

	if (mono < next)
		return;
	if (!atomic_compare_exchange_strong_explicit(&atel__g.next_attach_ns, &next, mono + RETRY_NS,
						     memory_order_relaxed, memory_order_relaxed))
		return;
	pthread_mutex_lock(&atel__g.lock);
	if (atomic_load_explicit(&atel__g.state, memory_order_relaxed) == 1 &&
	    !atomic_load_explicit(&atel__g.seg, memory_order_relaxed)) {
		atomic_fetch_add_explicit(&atel__g.attach_attempts, 1, memory_order_relaxed);
		if (attach(&atel__g.seg_storage, err, sizeof(err)) == 0) {
			atomic_store_explicit(&atel__g.seg, &atel__g.seg_storage, memory_order_release);
			report_nosidecar(&atel__g.seg_storage);
		}
	}
	pthread_mutex_unlock(&atel__g.lock);
}

/*
 * A full ring and a silent consumer: has the sidecar restarted with a new
 * segment under our name (other geometry: the old one was unlinked)? Checked
 * at most once per RETRY_NS, only from ring-full drops. If so, switch every
 * thread to the new segment (new epoch: each thread forgets its ring in the
 * old one and claims anew). The old mapping is left mapped on purpose: other
 * threads may be writing into it right now.
 */
#define STALE_NS 3000000000ull

static _Atomic uint64_t next_replace_check;
static struct atel_segment *retired[16]; /* replaced segments, still mapped (under g.lock) */
static unsigned nretired;

void atel__check_replaced(void)
{
	uint64_t mono = atel__coarse_ns(), next = atomic_load_explicit(&next_replace_check, memory_order_relaxed);
	uint64_t hb, now;
	struct atel_segment *cur, *fresh;
	char err[256];

	if (mono < next || !atomic_compare_exchange_strong_explicit(&next_replace_check, &next, mono + RETRY_NS,
								     memory_order_relaxed, memory_order_relaxed))
		return;
	cur = atomic_load_explicit(&atel__g.seg, memory_order_acquire);
	/* a truncated segment (its pages now private zeros) is as good as abandoned; a heartbeat a
	 * little ahead of the coarse clock is fresh, not 2^64 ns old */
	if (!cur)
		return;
	hb = atomic_load_explicit(&cur->hdr->heartbeat_ns, memory_order_relaxed);
	now = realtime_coarse_ns();
	if (!atel__sigbus_truncated(cur->base) && (hb >= now || now - hb < STALE_NS))
		return;
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return;
	pthread_mutex_lock(&atel__g.lock);
	if (atomic_load_explicit(&atel__g.seg, memory_order_relaxed) == cur &&
	    attach(fresh, err, sizeof(err)) == 0) {
		if (fresh->hdr->instance_id != cur->hdr->instance_id && nretired < 16) {
			retired[nretired++] = cur;
			atomic_store_explicit(&atel__g.seg, fresh, memory_order_release);
			report_nosidecar(fresh);
			atomic_fetch_add_explicit(&atel__g.epoch, 1, memory_order_release);
			fresh = NULL;
		} else {
			detach(fresh);
		}
	}
	pthread_mutex_unlock(&atel__g.lock);
	free(fresh);
}

static void global_once(void);

/* A thread state from another epoch (shutdown, fork): forget its ring without touching shared memory. */
static void refresh_epoch(struct atel__tls *t, uint64_t ep)
{
	memset(&t->w, 0, sizeof(t->w));
	t->span_res = 0;
	/* folded values stay: they are written into the next ring this thread claims */
	t->slow = (t->fold && t->fold->pending) ? ATEL__SLOW_FOLD : 0;
	t->next_claim_ns = 0;
	t->tid = (int32_t)syscall(SYS_gettid);
	t->epoch = ep;
}

int atel__prepare(struct atel__tls *t, uint64_t nrec, uint64_t now)
{
	uint64_t ep = atomic_load_explicit(&atel__g.epoch, memory_order_acquire);
	const struct atel_segment *seg;
	uint64_t mono;
	int st, rc;

	if (ATEL__UNLIKELY(t->epoch != ep)) {
		refresh_epoch(t, ep);
	}
	if (ATEL__UNLIKELY(!t->registered)) {
		/* counted from the first call on, ring or not: stats and the exit destructor see this thread */
		atel__once();
		pthread_mutex_lock(&atel__g.lock);
		registry_add(t);
		pthread_mutex_unlock(&atel__g.lock);
		pthread_setspecific(exit_key, t);
		/* the usual mask: a call that runs with another one (a signal handler) never waits */
		{
			sigset_t m;

			memset(&m, 0, sizeof(m));
			(void)pthread_sigmask(SIG_BLOCK, NULL, &m);
			memcpy(&t->mask0, &m, sizeof(t->mask0));
		}
	}
	st = atomic_load_explicit(&atel__g.state, memory_order_acquire);
	if (ATEL__UNLIKELY(st != 1)) {
		if (st == 0) {
			(void)atel_init(NULL);
			st = atomic_load_explicit(&atel__g.state, memory_order_acquire);
		}
		if (st != 1) {
			atel__drop(t, ATEL_LOSS_NO_SIDECAR, nrec);
			return ATEL__PREP_DROP;
		}
	}
	if (!t->w.desc) {
		seg = atomic_load_explicit(&atel__g.seg, memory_order_acquire);
		mono = atel__coarse_ns();
		if (!seg) {
			maybe_attach(mono);
			seg = atomic_load_explicit(&atel__g.seg, memory_order_acquire);
			if (!seg) {
				atel__drop(t, ATEL_LOSS_NO_SIDECAR, nrec);
				return ATEL__PREP_DROP;
			}
		}
		if (mono < t->next_claim_ns) {
			/* the last attempt found no ring (or no READY segment) */
			atel__drop(t, (atomic_load_explicit(&seg->hdr->flags, memory_order_relaxed) & ATEL_SHM_READY)
					      ? ATEL_LOSS_NO_RING : ATEL_LOSS_NO_SIDECAR, nrec);
			return ATEL__PREP_DROP;
		}
		if (ATEL__UNLIKELY(!__atomic_load_n(&atel__g.owner.start, __ATOMIC_RELAXED) ||
				   __atomic_load_n(&seg->live_fd, __ATOMIC_ACQUIRE) == ATEL_LIVE_FD_REOPEN)) {
			/* after fork: the child's start time and its own lock descriptor (not in the atfork handler) */
			pthread_mutex_lock(&atel__g.lock);
			if (!__atomic_load_n(&atel__g.owner.start, __ATOMIC_RELAXED))
				__atomic_store_n(&atel__g.owner.start, atel__proc_start_time(atel__g.owner.pid),
						 __ATOMIC_RELAXED);
			if (__atomic_load_n(&seg->live_fd, __ATOMIC_RELAXED) == ATEL_LIVE_FD_REOPEN) {
				int fd = atel__segment_reopen(seg, O_RDWR);

				__atomic_store_n(&((struct atel_segment *)seg)->live_fd, fd < 0 ? -1 : fd,
						 __ATOMIC_RELEASE);
			}
			pthread_mutex_unlock(&atel__g.lock);
		}
		if (alloc_defs(t) || atel__fold_alloc(t)) {
			atel__drop(t, ATEL_LOSS_NO_RING, nrec);
			t->next_claim_ns = mono + RETRY_NS;
			return ATEL__PREP_DROP;
		}
		rc = atel__ring_claim_live(seg, &(struct atel_owner){ atel__g.owner.pid, t->tid,
							      __atomic_load_n(&atel__g.owner.start, __ATOMIC_RELAXED) },
					   (uint32_t)t->tid * 2654435761u, __atomic_load_n(&seg->live_fd, __ATOMIC_ACQUIRE));
		if (rc < 0) {
			t->next_claim_ns = mono + RETRY_NS;
			atel__drop(t, rc == -EAGAIN ? ATEL_LOSS_NO_RING : ATEL_LOSS_NO_SIDECAR, nrec);
			return ATEL__PREP_DROP;
		}
		atel__ring_writer_init(&t->w, seg, (uint32_t)rc);
		t->slow |= ATEL__SLOW_BEGIN;
		t->span_res = 0;
		do
			t->span_tag = (uint16_t)(atel__now_ns() * 0x9e3779b97f4a7c15ull >> 48) ^ (uint16_t)t->tid;
		while (!t->span_tag);
		atel__bump(&t->st.claimed, 1);
		report_nosidecar(seg);
	}
	if (t->slow) {
		if (!now)
			now = atel__now_ns();
		if ((t->slow & ATEL__SLOW_BEGIN) && !write_begin(t, now))
			return ATEL__PREP_FULL;
		if ((t->slow & ATEL__SLOW_FOLD) && !atel__fold_flush(t, now))
			return ATEL__PREP_FULL;
	}
	return ATEL__PREP_OK;
}

/* ------------------------------------------------------------------------ */
/* thread exit, process exit, fork                                          */

static void thread_exit(void *arg)
{
	struct atel__tls *t = arg;
	const struct atel_segment *seg;

	if (t != atel__self())
		return;
	pthread_mutex_lock(&atel__g.lock);
	seg = atomic_load_explicit(&atel__g.seg, memory_order_relaxed);
	if (seg && t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed) && t->w.desc)
		release_ring(t, seg);
	registry_remove(t);
	stats_add(&atel__g.dead, &t->st);
	stats_reset(&t->st);
	pthread_mutex_unlock(&atel__g.lock);
	free_defs(t);
	atel__fold_free(t);
}

/* exit() does not run TLS destructors: release the exiting thread's ring. */
static void process_exit(void)
{
	struct atel__tls *t = atel__self();
	const struct atel_segment *seg;

	pthread_mutex_lock(&atel__g.lock);
	seg = atomic_load_explicit(&atel__g.seg, memory_order_relaxed);
	if (seg && t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed) && t->w.desc)
		release_ring(t, seg);
	pthread_mutex_unlock(&atel__g.lock);
}

static void atfork_prepare(void)
{
	pthread_mutex_lock(&atel__g.lock);
	atel__intern_lock();
}

static void atfork_parent(void)
{
	atel__intern_unlock();
	pthread_mutex_unlock(&atel__g.lock);
}

/*
 * The child shares the parent's mapping but must never write the parent's
 * rings: a new epoch makes its thread forget the ring and claim its own.
 * Ids and interned tables stay valid (same memory); counters start at zero;
 * the id generator is reseeded (rng_epoch).
 */
static void atfork_child(void)
{
	struct atel__tls *t = atel__self();

	atel__intern_atfork_child();
	pthread_mutex_init(&atel__g.lock, NULL);
	atel__live_atfork_child();
	live_fd_atfork_child(atomic_load_explicit(&atel__g.seg, memory_order_relaxed), true);
	for (unsigned i = 0; i < nretired; i++)
		live_fd_atfork_child(retired[i], false);
	atel__g.threads = NULL;
	stats_reset(&atel__g.dead);
	t->registered = false;
	t->prev = t->next = NULL;
	stats_reset(&t->st);
	atel__fold_forget(t); /* the parent writes its folded values itself */
	atomic_store_explicit(&atel__g.nosidecar_pending, 0, memory_order_relaxed);
	atel__g.owner.pid = getpid();
	atel__g.owner.start = 0; /* read lazily: /proc parsing is not for an atfork handler */
	atomic_store_explicit(&atel__g.next_attach_ns, 0, memory_order_relaxed);
	atomic_fetch_add_explicit(&atel__g.epoch, 1, memory_order_release);
}

/* A non-negative integer environment variable, or dflt (a bad value is ignored). */
static uint64_t env_u64(const char *name, uint64_t dflt, uint64_t max)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (!v || !*v)
		return dflt;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || *v == '-' || x > max)
		return dflt;
	return x;
}

#define EXIT_WAIT_MS_DEFAULT 100u
#define WAIT_US_MAX 10000000ull /* 10 s */

static void global_once(void)
{
	atomic_store_explicit(&atel__g.block_timeout_ns, env_u64("ATEL_BLOCK_TIMEOUT_US", 0, WAIT_US_MAX) * 1000,
			      memory_order_relaxed);
	atomic_store_explicit(&atel__g.exit_wait_ns,
			      env_u64("ATEL_EXIT_WAIT_MS", EXIT_WAIT_MS_DEFAULT, WAIT_US_MAX / 1000) * 1000000,
			      memory_order_relaxed);
	{
		const char *o = getenv("ATEL_SHM_OWNER");
		char *end;

		if (o && *o) {
			long v = strtol(o, &end, 10);
			struct passwd *pw;

			if (!*end && v >= 0)
				trusted_uid = v;
			else if ((pw = getpwnam(o)) != NULL)
				trusted_uid = (long)pw->pw_uid;
		}
	}
	pthread_key_create(&exit_key, thread_exit);
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	atexit(process_exit);
	atel__g.owner.pid = getpid();
	atel__g.owner.start = atel__proc_start_time(atel__g.owner.pid);
	atel__catalog_preload();
	atomic_store_explicit(&atel__once_done, 1, memory_order_release);
}

_Atomic int atel__once_done;

void atel__once_slow(void)
{
	pthread_once(&once, global_once);
}

/* ------------------------------------------------------------------------ */
/* init / shutdown                                                          */

int atel_init(const char *shm_name)
{
	const char *name = shm_name;
	char err[256];
	int rc;

	pthread_once(&once, global_once);
	if (!name || !*name)
		name = getenv("ATEL_SHM");
	if (!name || !*name)
		name = "atel";
	if (strlen(name) >= sizeof(atel__g.name)) {
		atel__self()->err = "atel_init: segment name longer than 255 bytes";
		return -EINVAL;
	}
	pthread_mutex_lock(&atel__g.lock);
	if (atomic_load_explicit(&atel__g.state, memory_order_relaxed) == 1 &&
	    atomic_load_explicit(&atel__g.seg, memory_order_relaxed)) {
		pthread_mutex_unlock(&atel__g.lock);
		return 0;
	}
	if (!__atomic_load_n(&atel__g.owner.start, __ATOMIC_RELAXED))
		__atomic_store_n(&atel__g.owner.start, atel__proc_start_time(atel__g.owner.pid), __ATOMIC_RELAXED);
	snprintf(atel__g.name, sizeof(atel__g.name), "%s", name);
	atomic_fetch_add_explicit(&atel__g.attach_attempts, 1, memory_order_relaxed);
	rc = attach(&atel__g.seg_storage, err, sizeof(err));
	if (rc == 0) {
		atomic_store_explicit(&atel__g.seg, &atel__g.seg_storage, memory_order_release);
		report_nosidecar(&atel__g.seg_storage);
	} else {
		if (strchr(atel__g.name, '/'))
			snprintf(errbuf, sizeof(errbuf), "atel_init: %s (segment file '%s')", err[0] ? err : strerror(-rc),
				 atel__g.name);
		else
			snprintf(errbuf, sizeof(errbuf), "atel_init: %s (looked for /dev/shm/%s: is ateld running with "
				 "--shm %s? set ATEL_SHM or pass the name)", err[0] ? err : strerror(-rc), atel__g.name,
				 atel__g.name);
		atel__self()->err = errbuf;
	}
	atomic_store_explicit(&atel__g.next_attach_ns, atel__coarse_ns() + RETRY_NS, memory_order_relaxed);
	atomic_store_explicit(&atel__g.state, 1, memory_order_release);
	pthread_mutex_unlock(&atel__g.lock);
	return rc;
}

void atel_shutdown(void)
{
	struct atel_segment *seg;

	pthread_once(&once, global_once);
	pthread_mutex_lock(&atel__g.lock);
	seg = atomic_load_explicit(&atel__g.seg, memory_order_relaxed);
	if (seg) {
		uint64_t ep = atomic_load_explicit(&atel__g.epoch, memory_order_relaxed);
		for (struct atel__tls *t = atel__g.threads; t; t = t->next)
			if (t->epoch == ep && t->w.desc)
				release_ring(t, seg);
	}
	atomic_store_explicit(&atel__g.seg, NULL, memory_order_release);
	atomic_store_explicit(&atel__g.state, 2, memory_order_release);
	atomic_fetch_add_explicit(&atel__g.epoch, 1, memory_order_release);
	if (seg)
		detach(seg);
	if (seg != &atel__g.seg_storage)
		free(seg);
	/* replaced segments: no thread writes them any more (shutdown's contract) */
	for (unsigned i = 0; i < nretired; i++) {
		detach(retired[i]);
		if (retired[i] != &atel__g.seg_storage)
			free(retired[i]);
	}
	nretired = 0;
	pthread_mutex_unlock(&atel__g.lock);
}

void atel_set_block_timeout_us(uint64_t us)
{
	atomic_store_explicit(&atel__g.block_timeout_ns, (us > WAIT_US_MAX ? WAIT_US_MAX : us) * 1000,
			      memory_order_relaxed);
}

void atel_set_exit_wait_ms(uint32_t ms)
{
	uint64_t m = ms > WAIT_US_MAX / 1000 ? WAIT_US_MAX / 1000 : ms;

	atomic_store_explicit(&atel__g.exit_wait_ns, m * 1000000, memory_order_relaxed);
}
