/* SPDX-License-Identifier: MIT */
/*
 * drain.c - rings -> segment log, exactly once (see drain.h for the contract).
 *
 * Per ring the drain keeps, privately (shared memory is untrusted):
 *   pos           next position to scan: every slot below it was appended to
 *                 the log or skipped as garbage;
 *   appended_end  end of the last run handed to the log;
 *   released      the tail we last stored into the ring.
 * After a successful flush a ring is released up to `pos` if the log has
 * written everything appended (written_pos >= appended_end), else up to
 * written_pos: a slot is never freed before its record is in the file.
 *
 * Ring lifecycle as seen here (docs/abi.md 4-6): NORMAL; DEAD (owner died:
 * ring moved to DRAINING by us, drained to its head with final=1, DEATH
 * marker, reclaimed); QUAR (positions impossible: quarantined until its owner
 * is gone, then reset to head and freed).
 *
 * Loss (docs/abi.md 1.2): producers count what they refuse in cumulative
 * counters of shared memory. Every tick the drain reads them, believes an
 * increase only if it is plausible (never backwards, at most one per
 * nanosecond since the previous reading) and logs each changed cumulative
 * value as a LOSS_TOTAL record; readers keep the largest value per (segment
 * instance, ring, cause), so a value logged twice counts once.
 */
#include "drain.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "livelock.h"
#include "decode.h"
#include "reader.h"
#include "ring.h"
#include "seglog.h"
#include "sigbus.h"
#include "segformat.h"
#include "uring.h"

#define TICK_NS 100000000ull        /* dead-producer checks, stats, on_tick */
/* A pass that appended records does not flush at once: the open frame keeps
 * filling for up to FLUSH_DELAY_NS (or until a ring is half held back), so a
 * lightly loaded drain writes a few large frames instead of one tiny frame
 * per pass (measured: 10 bytes per sample with a flush per ~100 records
 * against 7 with full frames). Full frames are written as they fill anyway. */
#define FLUSH_DELAY_NS 5000000ull
#define SPIN_PASSES 64u             /* empty passes before the first sleep */
#define SLEEP_MIN_US 8u
#define RETRY_MIN_NS 10000000ull    /* first retry of a failed flush after 10 ms ... */
#define RETRY_MAX_NS 1000000000ull  /* ... doubling up to 1 s */

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

enum ring_mode { M_NORMAL = 0, M_DEAD, M_QUAR };

/* One loss counter of shared memory, as the drain believes and logs it. */
struct loss_track {
	uint64_t raw;       /* value at the last reading */
	uint64_t total;     /* believed cumulative value */
	uint64_t logged;    /* value of the last LOSS_TOTAL written */
	uint64_t read_ns, logged_ns;
	bool seen;
};

/* The per-ring counters (docs/abi.md 1.2) and the cause each is logged as. */
enum { LT_FULL, LT_NODEF, LT_REENTRANT, LT_SPANS, LT_DIED, LT_RING_N };
static const uint32_t lt_cause[LT_RING_N] = {
	[LT_FULL] = ATEL_LOSS_RING_FULL, [LT_NODEF] = ATEL_LOSS_NO_DEF, [LT_REENTRANT] = ATEL_LOSS_REENTRANT,
	[LT_SPANS] = ATEL_LOSS_SPANS, [LT_DIED] = ATEL_LOSS_PRODUCER_DIED,
};
/* the segment header's counters */
enum { LT_NORING, LT_NOSIDECAR, LT_SEG_N };
static const uint32_t lt_seg_cause[LT_SEG_N] = { ATEL_LOSS_NO_RING, ATEL_LOSS_NO_SIDECAR };

/* A first reading above this is not believed (2^50: 48 days at LOSS_RATE_MAX). */
#define LOSS_FIRST_MAX (1ull << 50)
/* An increase may exceed what LOSS_RATE_MAX allows since the last reading by this much (coarse clocks, batches). */
#define LOSS_SLACK (1ull << 20)
/* Hardening (issue 12): no producer refuses more than 2^28 calls per second per counter
 * (one call takes more than 4 ns); a faster-growing counter is garbage. */
#define LOSS_RATE_MAX (1ull << 28)

/* Plausibility of what records say (issue 12): a record time beyond now + TS_FUTURE_NS,
 * before 2001-01-01 or before its producer process started (less TS_START_SLACK_NS for
 * coarse and stepped clocks) is refused and counted, as is a BEGIN whose generation is
 * ahead of the ring directory or not after the previous one of the ring. */
#define TS_FUTURE_NS (60ull * 1000000000ull)
#define TS_MIN_NS (978307200ull * 1000000000ull)
#define TS_START_SLACK_NS (60ull * 1000000000ull)
/* Ticks (100 ms) a quarantined or half-claimed ring without a provable owner must stay
 * untouched (head unchanged) before it is freed. */
#define OWNERLESS_STABLE_TICKS 20u

struct ring_st {
	uint64_t pos;
	uint64_t appended_end;
	uint64_t released;
	uint64_t stop_head;       /* head when stopping was seen */
	uint64_t invalid;         /* invalid records/slots not yet reported by a LOSS marker */
	uint64_t inv_first_ns, inv_last_ns;
	uint32_t gen;             /* generation of the records being appended */
	uint8_t mode;
	bool death_logged;
	int32_t dead_pid, dead_tid;
	uint64_t dead_start;
	struct loss_track lt[LT_RING_N];
	bool lt_warned;           /* an implausible reading of this ring was logged */

	/* hardening (issue 12) */
	uint64_t ts_floor;        /* earliest plausible record time of this generation (its producer's start) */
	uint32_t begin_gen;       /* generation of the last BEGIN accepted */
	bool begin_seen;
	bool ts_warned;
	bool inv_warned;        /* an invalid record of this ring was logged (once per ring) */
	bool owner_known;         /* owner_*: the claimer of generation owner_gen as the drain first saw it */
	uint32_t owner_gen;
	int32_t owner_pid, owner_tid;
	uint64_t owner_start;
	uint32_t owner_flags;     /* ATEL_OWNER_LOCKED: the liveness lock decides (docs/abi.md 5.1) */
	uint64_t quar_head;       /* head at the last tick, while quarantined or half-claimed */
	uint32_t quar_stable;     /* ticks the head has not moved */
	bool damaged;             /* this damage episode was counted */
};

/* ------------------------------------------------------------------------ */
/* segment header guard (issue 12)                                          */

/* The header fields nobody but ateld writes, as ateld set them. */
struct hdr_copy {
	uint64_t magic, dir_offset, rings_offset, ring_stride, total_size, instance_id, consumer_start;
	uint32_t endian, header_size, record_size, ring_count, ring_capacity, dir_entry_size;
	uint16_t abi_major, abi_minor;
	int32_t consumer_pid;
};

static void hdr_save(struct hdr_copy *c, const struct atel_shm_header *h);

struct atel_drain {
	struct atel_daemon *d;
	const struct atel_config *cfg;
	struct atel_segment seg;
	bool seg_open;
	struct atel_decoder *dec;
	struct atel_seglog *log;
	struct ring_st *rs;
	uint32_t nrings;
	uint32_t rr;              /* first ring of the next pass (round-robin) */
	uint64_t appends;         /* successful appends and markers */
	bool unflushed;           /* records appended since the last successful flush */
	uint64_t unflushed_since; /* atel__mono_ns() of the first of them */
	int tick_err;             /* last error of atel__seglog_tick, logged once */
	struct atel_drain_opts o;
	atomic_bool reopen;

	/* failed-flush state */
	bool stalled;
	uint64_t stall_since_ns, retry_at_ns, retry_step_ns;
	int last_err;

	pthread_mutex_t info_lock;
	char io_path[16];
	char cur_file[4096];

	struct loss_track seg_lt[LT_SEG_N];
	uint64_t pass_fill_max;   /* largest unreleased backlog of a ring in this pass */
	bool pressure;            /* frames at storage.zstd_level_pressure */
	uint64_t pressure_until;
	uint64_t invalid_total;   /* records found invalid by this run (LOSS(INVALID) markers) */
	uint64_t boot_ns;         /* boot time on the wall clock (/proc/stat btime): producer start times */
	struct hdr_copy hdr0;     /* the segment header as this ateld set it */
	int seg_fd;               /* the segment's name opened read-only: fstat says if it shrank, and
				   * F_OFD_GETLK tests owners' liveness locks through it (-1: none) */
	bool seg_guarded;         /* the mapping is registered with the SIGBUS guard (shm/sigbus.h) */
	atomic_bool truncated;    /* the segment was truncated: nothing here reads the mapping any more */
	uint64_t ticks;
	long clk_tck;
};

/* Scan callback state for one ring. */
struct scan_ctx {
	struct atel_drain *dr;
	uint32_t ring;
	struct ring_st *st;
	bool have_run;
	uint64_t run_start, run_end;
	uint32_t run_gen;
	uint64_t run_records;     /* records in the current run */
	uint64_t records;         /* records handed to the log by this scan */
	uint64_t now;             /* wall clock at the start of the scan (plausibility bounds) */
	int err;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void sleep_us(uint32_t us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* appending                                                                */

/* Hands positions [start, end) of ring to the log, straight from ring memory
 * (two pieces when the run wraps the ring end). */
static int append_run(struct atel_drain *dr, uint32_t ring, uint32_t gen, uint64_t start, uint64_t end)
{
	const struct atel_segment *seg = &dr->seg;
	uint64_t cap = seg->ring_capacity, n = end - start;
	uint64_t first = start & (cap - 1), na = cap - first < n ? cap - first : n;
	const union atel_slot *slots = atel__seg_slots(seg, ring);
	int rc;

	rc = atel__seglog_append(dr->log, ring, gen, start, &slots[first], na, na < n ? slots : NULL, n - na);
	if (rc == 0) {
		dr->rs[ring].appended_end = end;
		dr->appends++;
	}
	return rc;
}

static int emit_run(struct scan_ctx *c)
{
	int rc;

	if (!c->have_run)
		return 0;
	rc = append_run(c->dr, c->ring, c->run_gen, c->run_start, c->run_end);
	if (rc)
		return rc;
	c->records += c->run_records;
	c->run_records = 0;
	c->have_run = false;
	return 0;
}

static void note_invalid(struct ring_st *st, uint64_t n, uint64_t now)
{
	if (!n)
		return;
	if (!st->invalid)
		st->inv_first_ns = now;
	st->inv_last_ns = now;
	st->invalid += n;
}

/* One LOSS(INVALID) marker per ring and pass that found damage. */
static int emit_invalid_marker(struct atel_drain *dr, uint32_t ring)
{
	struct ring_st *st = &dr->rs[ring];
	union atel_slot rec;
	int rc;

	if (!st->invalid)
		return 0;
	memset(&rec, 0, sizeof(rec));
	rec.loss.h.type = ATEL_REC_LOSS;
	rec.loss.h.id = ATEL_LOSS_INVALID;
	rec.loss.h.ts_ns = st->inv_last_ns;
	rec.loss.count = st->invalid;
	rec.loss.first_ns = st->inv_first_ns;
	rec.loss.last_ns = st->inv_last_ns;
	rc = atel__seglog_append_marker(dr->log, ring, &rec);
	if (rc == 0) {
		st->invalid = 0;
		dr->appends++;
	}
	return rc;
}

/* The DEATH marker (docs/segment-format.md): the owner of `ring` died. */
static int emit_death_marker(struct atel_drain *dr, uint32_t ring)
{
	struct ring_st *st = &dr->rs[ring];
	union atel_slot rec;
	struct atel_rec_death *dm = (struct atel_rec_death *)(void *)&rec;
	int rc;

	memset(&rec, 0, sizeof(rec));
	dm->h.type = ATEL_LOGREC_DEATH;
	dm->h.id = st->gen;
	dm->h.ts_ns = atel__now_ns();
	dm->pid = st->dead_pid;
	dm->tid = st->dead_tid;
	dm->start = st->dead_start;
	dm->ring = ring;
	rc = atel__seglog_append_marker(dr->log, ring, &rec);
	if (rc == 0)
		dr->appends++;
	return rc;
}

/* Wall-clock start of a process from its /proc start time (clock ticks since boot); 0 unknown. */
static uint64_t start_wall_ns(const struct atel_drain *dr, uint64_t start_ticks)
{
	if (!dr->boot_ns || dr->clk_tck <= 0 || start_ticks > (1ull << 40))
		return 0;
	return dr->boot_ns + start_ticks / (uint64_t)dr->clk_tck * 1000000000ull +
	       start_ticks % (uint64_t)dr->clk_tck * 1000000000ull / (uint64_t)dr->clk_tck;
}

/*
 * Bounds a record by what a real producer can write (issue 12). Definitions
 * (strings, series, bounds) are not bounded by time: nothing downstream reads
 * their timestamps. @return NULL if plausible, else why not.
 */
static const char *implausible(struct atel_drain *dr, uint32_t ring, struct ring_st *st, const union atel_slot *rec,
			       uint64_t now)
{
	uint64_t ts = rec->h.ts_ns;

	switch (rec->h.type) {
	case ATEL_REC_BEGIN:
	case ATEL_REC_END:
	case ATEL_REC_SAMPLE:
	case ATEL_REC_HISTFOLD:
	case ATEL_REC_SPAN_START:
	case ATEL_REC_SPAN_END:
	case ATEL_REC_SPAN_ATTR:
	case ATEL_REC_SPAN_EVENT:
	case ATEL_REC_SPAN_ERROR:
		break;
	default:
		return NULL;
	}
	if (ts > now + TS_FUTURE_NS)
		return "timestamp more than 60 s in the future";
	if (ts < TS_MIN_NS)
		return "timestamp before 2001";
	if (rec->h.type == ATEL_REC_BEGIN) {
		uint32_t dir_gen = LD(&atel__seg_desc(&dr->seg, ring)->generation);
		uint64_t start = start_wall_ns(dr, rec->begin.start);

		if (rec->h.id > dir_gen)
			return "begin record's generation is ahead of the ring directory";
		if (st->begin_seen && rec->h.id <= st->begin_gen)
			return "begin record's generation does not advance";
		/* a start time in the future (garbage, or a time namespace's boot offset) is
		 * not used as a floor: the generation's own timestamps still are bounded */
		if (start && start <= now && ts + TS_START_SLACK_NS < start)
			return "begin record's timestamp is before its process started";
		return NULL;
	}
	if (st->ts_floor && ts + TS_START_SLACK_NS < st->ts_floor)
		return "timestamp before its producer process started";
	return NULL;
}

static int scan_cb(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct scan_ctx *c = arg;
	struct atel_drain *dr = c->dr;
	struct atel_event ev;
	const char *inv_why = NULL;
	int rc;

	/* A gap (skipped garbage) or a new generation ends the current run, so
	 * every run is contiguous and of one generation. Emitted before decoding:
	 * if the log refuses the run, this record is left for the next pass with
	 * the decoder untouched. */
	if (c->have_run && (pos != c->run_end || rec->h.type == ATEL_REC_BEGIN)) {
		if ((rc = emit_run(c))) {
			c->err = rc;
			return 1;
		}
	}
	{
		const char *why = implausible(dr, c->ring, c->st, rec, c->now);

		if (why) {
			stat_add(&dr->d->stats.records_implausible, 1);
			if (!c->st->ts_warned) {
				c->st->ts_warned = true;
				atel__log(dr->d, ATEL_LOG_WARN,
					  "ring %u: record type %u at position %llu refused: %s (further refusals "
					  "of this ring are only counted: records_implausible)",
					  c->ring, rec->h.type, (unsigned long long)pos, why);
			}
			rc = -EINVAL;
			goto refused;
		}
	}
	rc = atel__decode(dr->dec, c->ring, pos, rec, nslots, &ev);
	if (rc < 0 && ev.kind == ATEL_EV_INVALID)
		inv_why = ev.invalid.why;
	if (rc == 1 && ev.kind == ATEL_EV_LOSS) {
		/* ABI 2 producers count loss in shared memory, never in-band (docs/abi.md 2.2) */
		rc = -EINVAL;
	}
refused:
	if (rc < 0) {
		/* semantically invalid: not logged, counted, reported by a marker;
		 * the first of each ring is also said, with the decoder's reason (a
		 * producer past the definitions budget loses every later sample of
		 * its new series, and that must not be silent) */
		if (!c->st->inv_warned && inv_why) {
			c->st->inv_warned = true;
			atel__log(dr->d, ATEL_LOG_WARN,
				  "ring %u (pid %d): record type %u at position %llu refused: %s (further refusals of "
				  "this ring are only counted: records_invalid)",
				  c->ring, (int)__atomic_load_n(&atel__seg_desc(&dr->seg, c->ring)->owner_pid, __ATOMIC_RELAXED),
				  rec->h.type, (unsigned long long)pos, inv_why);
		}
		if ((rc = emit_run(c))) {
			c->err = rc;
			return 1;
		}
		note_invalid(c->st, 1, atel__now_ns());
		atomic_fetch_add_explicit(&atel__seg_desc(&dr->seg, c->ring)->drops_invalid, 1,
					  memory_order_relaxed);
		stat_add(&dr->d->stats.records_invalid, 1);
		dr->invalid_total++;
		return 0;
	}
	if (rc == 1 && ev.kind == ATEL_EV_BEGIN) {
		c->st->gen = ev.generation;
		c->st->begin_gen = ev.generation;
		c->st->begin_seen = true;
		c->st->ts_floor = start_wall_ns(dr, rec->begin.start);
		if (c->st->ts_floor > c->now)
			c->st->ts_floor = 0; /* see implausible() */
	}
	if (!c->have_run) {
		c->have_run = true;
		c->run_start = pos;
		c->run_gen = c->st->gen;
	}
	c->run_end = pos + nslots;
	c->run_records++;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* rings                                                                    */

static void quarantine(struct atel_drain *dr, uint32_t ring, uint64_t head, const char *why)
{
	struct ring_st *st = &dr->rs[ring];

	atel__ring_quarantine(&dr->seg, ring);
	st->mode = M_QUAR;
	st->quar_head = head;
	st->quar_stable = 0;
	stat_add(&dr->d->stats.rings_quarantined, 1);
	atel__log(dr->d, ATEL_LOG_WARN,
		  "ring %u quarantined: %s (head %llu, consumer position %llu, capacity %u); "
		  "its records are not read until its owner (pid %d) is gone",
		  ring, why, (unsigned long long)head, (unsigned long long)st->pos, dr->seg.ring_capacity,
		  (int)LD(&atel__seg_desc(&dr->seg, ring)->owner_pid));
}

/*
 * Drains up to one batch of `ring`. @return slots consumed (0: nothing to do),
 * or -errno if the log refused an append (the pass stops appending).
 */
static int64_t drain_ring(struct atel_drain *dr, uint32_t ring, bool stopping)
{
	struct ring_st *st = &dr->rs[ring];
	struct atel_ring_desc *desc = atel__seg_desc(&dr->seg, ring);
	uint64_t cap = dr->seg.ring_capacity, head, to, end, batch;
	struct atel_scan_stats ss = { 0 };
	struct scan_ctx c = { .dr = dr, .ring = ring, .st = st };
	int final, rc = 0;

	if (st->mode == M_QUAR)
		return 0;
	/* A1: pairs with the producer's commit (R1) */
	head = atomic_load_explicit(&desc->head, memory_order_acquire);
	if (head == st->pos)
		goto markers;
	if (head < st->pos || head - st->released > cap) {
		quarantine(dr, ring, head, head < st->pos ? "head went backwards" : "head jumped past capacity");
		return 0;
	}
	if (head - st->released > dr->pass_fill_max)
		dr->pass_fill_max = head - st->released;
	batch = dr->cfg->drain.batch_records < cap ? dr->cfg->drain.batch_records : cap;
	to = head - st->pos > batch ? st->pos + batch : head;
	/* final: nobody will complete a partially published record (dead owner,
	 * or the final drain of a shutdown) */
	final = (st->mode == M_DEAD || stopping) && to == head;
	c.now = atel__now_ns(); /* one clock read per batch, not per record */
	end = atel__ring_scan(&dr->seg, ring, st->pos, to, final, scan_cb, &c, &ss);
	if (c.err == 0 && (rc = emit_run(&c)))
		c.err = rc;
	if (c.err) {
		/* the unappended tail of the scan is read again next pass */
		end = c.have_run ? c.run_start : end;
		if (end < st->pos)
			end = st->pos;
	}
	note_invalid(st, ss.invalid_slots, atel__now_ns());
	if (ss.invalid_slots) {
		stat_add(&dr->d->stats.records_invalid, ss.invalid_slots);
		dr->invalid_total += ss.invalid_slots;
	}
	stat_add(&dr->d->stats.records_drained, c.records);
	st->pos = end;
	if (c.err)
		return c.err;
markers:
	if (st->invalid && (rc = emit_invalid_marker(dr, ring)))
		return rc;
	if (st->mode == M_DEAD && !st->death_logged && st->pos == head) {
		if ((rc = emit_death_marker(dr, ring)))
			return rc;
		st->death_logged = true;
	}
	return head == st->pos ? 0 : 1;
}

/* After a successful flush: free what the log holds. */
static void release_all(struct atel_drain *dr)
{
	if (atomic_load_explicit(&dr->truncated, memory_order_relaxed))
		return; /* the tails are in the lost pages (issue 12.3) */
	for (uint32_t r = 0; r < dr->nrings; r++) {
		struct ring_st *st = &dr->rs[r];
		uint64_t w, rel;

		if (st->mode == M_QUAR)
			continue;
		w = atel__seglog_written_pos(dr->log, r);
		rel = w >= st->appended_end ? st->pos : w;
		if (rel > st->pos)
			rel = st->pos;
		if (st->mode == M_DEAD && st->death_logged && rel == st->pos && !st->invalid) {
			/* everything of the dead owner is in the file: reclaim (tail = head, FREE) */
			atel__ring_reclaim_end(&dr->seg, r, st->pos);
			st->released = st->pos;
			st->mode = M_NORMAL;
			st->death_logged = false;
			atel__decoder_reset_ring(dr->dec, r);
			stat_add(&dr->d->stats.producers_reclaimed, 1);
			atel__log(dr->d, ATEL_LOG_INFO, "ring %u of dead producer pid %d reclaimed at position %llu",
				  r, (int)st->dead_pid, (unsigned long long)st->pos);
			continue;
		}
		if (rel > st->released) {
			atel__ring_release(&dr->seg, r, rel); /* R2 */
			st->released = rel;
		}
	}
}

/*
 * Ring reclaim, hardened (issue 12). A ring is taken from its owner only when
 * the owner is provably gone: a positive pid with no such process, or a
 * process with another start time (the pid was reused). The owner checked is
 * the one the drain saw when the generation was claimed (owner_*), not what
 * the directory says now, so garbage written into the directory later cannot
 * make a live producer look dead. A directory entry in an unknown state, a
 * DRAINING the drain did not set, or owner fields that change without a new
 * claim are counted (rings_damaged) and the ring is quarantined or left to
 * its owner; a ring with no provable owner is freed only after its head has
 * stood still for OWNERLESS_STABLE_TICKS.
 */

/*
 * 1: the owner of ring r is provably gone. An owner that announced a
 * liveness lock (owner_flags ATEL_OWNER_LOCKED, docs/abi.md 5.1) is alive
 * exactly while its lock byte is held: its pid may belong to another PID
 * namespace and prove nothing, so the pid is then not consulted (unless the
 * lock cannot be tested at all). Otherwise (ABI 2.0 producers): a positive
 * pid with no such process, or a process with another start time.
 */
static int owner_gone(struct atel_drain *dr, uint32_t r, int32_t pid, uint64_t start, uint32_t flags)
{
	if (pid <= 0)
		return 0;
	if (flags & ATEL_OWNER_LOCKED) {
		int h = atel__live_held(dr->seg_fd, r);

		if (h >= 0)
			return !h;
	}
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return 1;
	if (!start)
		return 0;
	return atel__proc_alive(pid, start) ? 0 : 1;
}

/* The owner to judge: the snapshot of the current generation, else the directory's fields. */
static void ring_owner(struct atel_drain *dr, uint32_t r, int32_t *pid, int32_t *tid, uint64_t *start,
		       uint32_t *flags)
{
	struct ring_st *st = &dr->rs[r];
	struct atel_ring_desc *desc = atel__seg_desc(&dr->seg, r);

	if (st->owner_known && st->owner_gen == LD(&desc->generation)) {
		*pid = st->owner_pid;
		*tid = st->owner_tid;
		*start = st->owner_start;
		*flags = st->owner_flags;
		return;
	}
	*pid = LD(&desc->owner_pid);
	*tid = LD(&desc->owner_tid);
	*start = LD(&desc->owner_start);
	*flags = LD(&desc->owner_flags);
}

static void ring_damaged(struct atel_drain *dr, uint32_t r, const char *why)
{
	struct ring_st *st = &dr->rs[r];

	if (st->damaged)
		return;
	st->damaged = true;
	stat_add(&dr->d->stats.rings_damaged, 1);
	atel__log(dr->d, ATEL_LOG_WARN, "ring %u: damaged directory entry: %s", r, why);
}

/* Counts ticks the ring's head has not moved; @return the count. */
static uint32_t head_stable(struct atel_drain *dr, uint32_t r)
{
	struct ring_st *st = &dr->rs[r];
	uint64_t head = atomic_load_explicit(&atel__seg_desc(&dr->seg, r)->head, memory_order_acquire);

	if (head != st->quar_head) {
		st->quar_head = head;
		st->quar_stable = 0;
	} else if (st->quar_stable < UINT32_MAX) {
		st->quar_stable++;
	}
	return st->quar_stable;
}

/* The owner is gone (or there is none and the ring has stood still long enough). */
static bool may_take(struct atel_drain *dr, uint32_t r)
{
	int32_t pid, tid;
	uint64_t start;
	uint32_t flags;
	uint32_t stable = head_stable(dr, r);

	ring_owner(dr, r, &pid, &tid, &start, &flags);
	if (pid <= 0)
		return stable >= OWNERLESS_STABLE_TICKS;
	return owner_gone(dr, r, pid, start, flags) == 1;
}

/* Moves ring r (its state now DRAINING) to M_DEAD: drained to its head, DEATH marker, freed. */
static void begin_dead(struct atel_drain *dr, uint32_t r)
{
	struct ring_st *st = &dr->rs[r];
	struct atel_ring_desc *desc = atel__seg_desc(&dr->seg, r);
	uint64_t start;
	uint32_t flags;

	ring_owner(dr, r, &st->dead_pid, &st->dead_tid, &start, &flags);
	st->dead_start = start;
	/* DRAINING: nobody writes the ring any more. Its folded metric calls died with it. */
	{
		uint64_t lost = atomic_load_explicit(&desc->folded_pending, memory_order_relaxed);
		if (lost) {
			atomic_store_explicit(&desc->drops_died,
					      atomic_load_explicit(&desc->drops_died, memory_order_relaxed) + lost,
					      memory_order_relaxed);
			atomic_store_explicit(&desc->folded_pending, 0, memory_order_relaxed);
		}
	}
	st->mode = M_DEAD;
	st->death_logged = false;
	atel__log(dr->d, ATEL_LOG_INFO, "producer pid %d (ring %u) died; draining %llu unread slots", (int)st->dead_pid,
		  r, (unsigned long long)(atomic_load_explicit(&desc->head, memory_order_acquire) - st->pos));
}

/* Dead owners and quarantined rings whose owner is gone (every tick). */
static void check_owners(struct atel_drain *dr)
{
	for (uint32_t r = 0; r < dr->nrings; r++) {
		struct ring_st *st = &dr->rs[r];
		struct atel_ring_desc *desc = atel__seg_desc(&dr->seg, r);
		uint32_t s = atomic_load_explicit(&desc->state, memory_order_acquire);
		uint32_t gen = LD(&desc->generation);

		if (st->mode == M_QUAR) {
			uint64_t head;

			if (s != ATEL_RING_QUARANTINED) {
				/* someone moved the state of a ring we distrust: take it back */
				atel__ring_quarantine(&dr->seg, r);
				continue;
			}
			/* records appended before the quarantine may sit in the open frame, which
			 * is compressed straight from ring memory: only once they are written may
			 * a new owner reuse the slots */
			if (atel__seglog_written_pos(dr->log, r) < st->appended_end)
				continue;
			if (!may_take(dr, r) || atel__ring_reclaim_begin(&dr->seg, r) != 0)
				continue;
			/* the owner is gone: nobody writes any more; restart the ring at its head */
			head = atomic_load_explicit(&desc->head, memory_order_acquire);
			atel__ring_reclaim_end(&dr->seg, r, head);
			st->pos = st->released = st->appended_end = head;
			st->mode = M_NORMAL;
			st->damaged = false;
			st->owner_known = false;
			atel__decoder_reset_ring(dr->dec, r);
			atel__log(dr->d, ATEL_LOG_INFO, "quarantined ring %u freed at position %llu", r,
				  (unsigned long long)head);
			continue;
		}
		if (st->mode != M_NORMAL)
			continue;
		if (s > ATEL_RING_QUARANTINED) {
			char why[64];

			snprintf(why, sizeof(why), "unknown state %u", s);
			ring_damaged(dr, r, why);
			quarantine(dr, r, atomic_load_explicit(&desc->head, memory_order_acquire), why);
			continue;
		}
		if (s == ATEL_RING_FREE) {
			st->damaged = false;
			continue;
		}
		if (s == ATEL_RING_QUARANTINED) {
			/* quarantined by someone else (a producer, or garbage): distrust it as well */
			ring_damaged(dr, r, "quarantined by another process");
			quarantine(dr, r, atomic_load_explicit(&desc->head, memory_order_acquire),
				   "quarantined by another process");
			continue;
		}
		if (s == ATEL_RING_DRAINING) {
			/* only the drain moves a ring to DRAINING: a foreign writer did this. The
			 * records are still read; the ring is reclaimed once its owner is gone. */
			ring_damaged(dr, r, "DRAINING set by another process");
			if (may_take(dr, r))
				begin_dead(dr, r);
			continue;
		}
		if (s == ATEL_RING_ACTIVE) {
			int32_t pid = LD(&desc->owner_pid), tid = LD(&desc->owner_tid);
			uint64_t start = LD(&desc->owner_start);

			if (!st->owner_known || st->owner_gen != gen) {
				st->owner_known = true;
				st->owner_gen = gen;
				st->owner_pid = pid;
				st->owner_tid = tid;
				st->owner_start = start;
				st->owner_flags = LD(&desc->owner_flags);
				st->damaged = false;
			} else if (pid != st->owner_pid || start != st->owner_start) {
				ring_damaged(dr, r, "owner fields changed without a new claim");
			}
			if (st->owner_pid <= 0) {
				ring_damaged(dr, r, "active ring without an owner pid");
				quarantine(dr, r, atomic_load_explicit(&desc->head, memory_order_acquire),
					   "active ring without an owner pid");
				continue;
			}
			if (owner_gone(dr, r, st->owner_pid, st->owner_start, st->owner_flags) != 1)
				continue;
		} else { /* CLAIMING: the claimer may be between its CAS and its owner stores */
			if (!may_take(dr, r))
				continue;
		}
		if (atel__ring_reclaim_begin(&dr->seg, r) != 0)
			continue;
		begin_dead(dr, r);
	}
}

static void update_stats(struct atel_drain *dr, uint64_t now)
{
	uint64_t lag_max = 0, oldest = 0;
	uint32_t active = 0;

	for (uint32_t r = 0; r < dr->nrings; r++) {
		struct ring_st *st = &dr->rs[r];
		uint64_t head = atomic_load_explicit(&atel__seg_desc(&dr->seg, r)->head, memory_order_acquire);

		active += atomic_load_explicit(&atel__seg_desc(&dr->seg, r)->state, memory_order_relaxed) ==
			  ATEL_RING_ACTIVE;

		if (st->mode == M_QUAR || head <= st->pos || head - st->pos > dr->seg.ring_capacity)
			continue;
		if (head - st->pos > lag_max)
			lag_max = head - st->pos;
		/* the timestamp is untrusted: only a plausible past time counts */
		uint64_t ts = LD(&atel__ring_at(&dr->seg, r, st->pos)->h.ts_ns);
		if (ts && ts <= now && now - ts > oldest)
			oldest = now - ts;
	}
	atomic_store_explicit(&dr->d->stats.ring_lag_max, lag_max, memory_order_relaxed);
	atomic_store_explicit(&dr->d->stats.rings_active, active, memory_order_relaxed);
	atomic_store_explicit(&dr->d->stats.oldest_unread_ns, oldest, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* loss counters                                                            */

/* The largest believable increase of a loss counter in dt_ns: LOSS_RATE_MAX per second plus slack. */
static uint64_t loss_allowed(uint64_t dt_ns)
{
	uint64_t s = dt_ns / 1000000000ull, frac = dt_ns % 1000000000ull;

	if (s >= (1ull << 30))
		return UINT64_MAX;
	return s * LOSS_RATE_MAX + frac * LOSS_RATE_MAX / 1000000000ull + LOSS_SLACK;
}

/* A new reading of a counter: believed if plausible (docs/abi.md 6). @return false if refused. */
static bool loss_read(struct loss_track *lt, uint64_t raw, uint64_t now)
{
	bool ok = true;

	if (!lt->seen) {
		ok = raw <= LOSS_FIRST_MAX;
		lt->total = ok ? raw : 0;
		lt->seen = true;
	} else if (raw < lt->raw || raw - lt->raw > loss_allowed(now > lt->read_ns ? now - lt->read_ns : 0)) {
		ok = false; /* garbage: re-read from the new value on, believing none of the jump */
	} else {
		lt->total += raw - lt->raw;
	}
	lt->raw = raw;
	lt->read_ns = now;
	return ok;
}

/* Logs the counter's value if it changed. @return 0 or the log's error (retried next tick). */
static int loss_log(struct atel_drain *dr, struct loss_track *lt, uint32_t ring, uint32_t chunk_ring,
		    uint32_t cause, uint64_t now)
{
	union atel_slot rec;
	struct atel_rec_loss_total *x = (struct atel_rec_loss_total *)(void *)&rec;
	int rc;

	if (lt->total == lt->logged)
		return 0;
	memset(&rec, 0, sizeof(rec));
	x->h.type = ATEL_LOGREC_LOSS_TOTAL;
	x->h.id = cause;
	x->h.ts_ns = now;
	x->total = lt->total;
	x->delta = lt->total - lt->logged;
	x->ring = ring;
	x->since_ns = lt->logged_ns;
	rc = atel__seglog_append_marker(dr->log, chunk_ring, &rec);
	if (rc == 0) {
		lt->logged = lt->total;
		lt->logged_ns = now;
		dr->appends++;
	}
	return rc;
}

static void loss_refused(struct atel_drain *dr, uint32_t ring, const char *what, uint64_t raw)
{
	stat_add(&dr->d->stats.loss_readings_refused, 1);
	if (ring == ATEL_LOSS_RING_SEGMENT) {
		atel__log(dr->d, ATEL_LOG_WARN, "segment header loss counter %s reads %llu: not plausible "
			  "(backwards or too fast); the jump is not counted", what, (unsigned long long)raw);
	} else if (!dr->rs[ring].lt_warned) {
		dr->rs[ring].lt_warned = true;
		atel__log(dr->d, ATEL_LOG_WARN, "ring %u loss counter %s reads %llu: not plausible (backwards "
			  "or too fast); the jump is not counted (further refusals of this ring are only counted)",
			  ring, what, (unsigned long long)raw);
	}
}

/*
 * Reads every loss counter, logs what changed, and publishes the totals
 * (/metrics, status). Runs every tick and at the end of a shutdown.
 */
static void loss_tick(struct atel_drain *dr, uint64_t now)
{
	static const char *const ring_names[LT_RING_N] = { "drops_full", "drops_nodef", "drops_reentrant",
							   "spans_dropped", "drops_died" };
	static const char *const seg_names[LT_SEG_N] = { "drops_no_ring", "drops_no_sidecar" };
	uint64_t by_cause[ATEL_LOSS_CAUSE_MAX + 1] = { 0 }, spans = 0, folds = 0, appends0 = dr->appends;
	const struct atel_shm_header *h = dr->seg.hdr;
	uint64_t seg_raw[LT_SEG_N] = {
		atomic_load_explicit(&h->drops_no_ring, memory_order_relaxed),
		atomic_load_explicit(&h->drops_no_sidecar, memory_order_relaxed),
	};
	bool log_ok = !dr->stalled;

	for (uint32_t r = 0; r < dr->nrings; r++) {
		struct atel_ring_desc *d = atel__seg_desc(&dr->seg, r);
		struct ring_st *st = &dr->rs[r];
		uint64_t raw[LT_RING_N] = {
			[LT_FULL] = atomic_load_explicit(&d->drops_full, memory_order_relaxed),
			[LT_NODEF] = atomic_load_explicit(&d->drops_nodef, memory_order_relaxed),
			[LT_REENTRANT] = atomic_load_explicit(&d->drops_reentrant, memory_order_relaxed),
			[LT_SPANS] = atomic_load_explicit(&d->spans_dropped, memory_order_relaxed),
			[LT_DIED] = atomic_load_explicit(&d->drops_died, memory_order_relaxed),
		};

		folds += atomic_load_explicit(&d->folded_total, memory_order_relaxed);
		for (unsigned k = 0; k < LT_RING_N; k++) {
			if (!loss_read(&st->lt[k], raw[k], now))
				loss_refused(dr, r, ring_names[k], raw[k]);
			if (log_ok && loss_log(dr, &st->lt[k], r, r, lt_cause[k], now))
				log_ok = false;
			if (k == LT_SPANS)
				spans += st->lt[k].logged;
			else
				by_cause[lt_cause[k]] += st->lt[k].logged;
		}
	}
	for (unsigned k = 0; k < LT_SEG_N; k++) {
		if (!loss_read(&dr->seg_lt[k], seg_raw[k], now))
			loss_refused(dr, ATEL_LOSS_RING_SEGMENT, seg_names[k], seg_raw[k]);
		if (log_ok && loss_log(dr, &dr->seg_lt[k], ATEL_LOSS_RING_SEGMENT, 0, lt_seg_cause[k], now))
			log_ok = false;
		by_cause[lt_seg_cause[k]] += dr->seg_lt[k].logged;
	}
	by_cause[ATEL_LOSS_INVALID] = dr->invalid_total;
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		atomic_store_explicit(&dr->d->stats.drops[c], by_cause[c], memory_order_relaxed);
	atomic_store_explicit(&dr->d->stats.spans_dropped, spans, memory_order_relaxed);
	atomic_store_explicit(&dr->d->stats.metric_folds, folds, memory_order_relaxed);
	if (dr->appends != appends0 && !dr->unflushed) {
		dr->unflushed = true;
		dr->unflushed_since = atel__mono_ns();
	}
}

static void refresh_info(struct atel_drain *dr)
{
	pthread_mutex_lock(&dr->info_lock);
	snprintf(dr->io_path, sizeof(dr->io_path), "%s", atel__seglog_io_path(dr->log));
	snprintf(dr->cur_file, sizeof(dr->cur_file), "%s", atel__seglog_current_file(dr->log));
	pthread_mutex_unlock(&dr->info_lock);
	atomic_store_explicit(&dr->d->stats.log.io_uring_active, !strcmp(dr->io_path, "io_uring"),
			      memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* flush and failure handling                                               */

static void flush_ok(struct atel_drain *dr, uint64_t now)
{
	if (dr->stalled) {
		atel__log(dr->d, ATEL_LOG_WARN, "segment writes work again after %.1f s; releasing rings",
			  (double)(now - dr->stall_since_ns) / 1e9);
		dr->stalled = false;
	}
	release_all(dr);
}

static void flush_failed(struct atel_drain *dr, int rc, uint64_t now)
{
	if (!dr->stalled) {
		atel__log(dr->d, ATEL_LOG_ERROR,
			  "cannot write segment %s: %s; holding ring space (producers will count drops) "
			  "and retrying", atel__seglog_current_file(dr->log), strerror(-rc));
		dr->stalled = true;
		dr->stall_since_ns = now;
		dr->retry_step_ns = RETRY_MIN_NS;
	} else if (dr->retry_step_ns < RETRY_MAX_NS) {
		dr->retry_step_ns *= 2;
	}
	dr->last_err = rc;
	dr->retry_at_ns = now + dr->retry_step_ns;
}

static int do_flush(struct atel_drain *dr)
{
	uint64_t now = atel__mono_ns();
	int rc = atel__seglog_flush(dr->log);

	if (rc == 0) {
		dr->unflushed = false;
		flush_ok(dr, now);
	}
	else
		flush_failed(dr, rc, now);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* truncated segment (issue 12.3)                                           */

/*
 * Another local process can ftruncate() the segment file; touching a page
 * past the new end raises SIGBUS. Two layers keep ateld alive:
 *  - seg_check, before every pass and every tick, fstats the segment and
 *    stops all reading of the mapping once the file is smaller than it;
 *  - the SIGBUS guard (shm/sigbus.h, shared with libatel) absorbs a fault in
 *    the mapping that happens between the check and the access, in any
 *    thread (drain, status writer, heartbeat): the page reads as zeros, and
 *    the mark it leaves is checked after every ring.
 * Then: one ERROR line, segment_truncations + 1, segment_truncated = 1, what
 * was appended is flushed (rings are not released: their tails are gone),
 * and ateld keeps running degraded (log, index, exporters, HTTP) without a
 * heartbeat, until a restart creates a new segment (README "Security").
 */
static void seg_guard(struct atel_drain *dr)
{
	int rc = atel__sigbus_guard(dr->seg.base, dr->seg.size);

	dr->seg_guarded = rc == 0;
	if (rc)
		atel__log(dr->d, ATEL_LOG_WARN, "cannot guard the segment mapping against truncation (SIGBUS): %s",
			  strerror(-rc));
	rc = atel__segment_open_ro(&dr->seg);
	dr->seg_fd = rc >= 0 ? rc : -1;
	if (rc < 0)
		atel__log(dr->d, ATEL_LOG_WARN, "cannot open segment '%s' to watch its size: %s", dr->seg.name,
			  strerror(-rc));
}

/* The log's check before it writes a frame it read from the mapping (seglog.h source_lost). */
static bool seg_lost(void *arg)
{
	const struct atel_drain *dr = arg;

	return dr->seg_guarded && atel__sigbus_truncated(dr->seg.base);
}

/* Flushes the log without releasing rings (their tails are in the lost pages). */
static void seg_flush(struct atel_drain *dr)
{
	int rc = atel__seglog_flush(dr->log);

	if (rc == 0) {
		dr->unflushed = false;
		dr->stalled = false;
	} else {
		dr->last_err = rc;
		if (!dr->stalled)
			atel__log(dr->d, ATEL_LOG_ERROR, "cannot write segment %s: %s (segment truncated; retrying)",
				  atel__seglog_current_file(dr->log), strerror(-rc));
		dr->stalled = true;
	}
}

static void seg_truncated(struct atel_drain *dr, const char *how)
{
	struct stat st;
	long long now_size = -1;

	if (dr->seg_fd >= 0 && fstat(dr->seg_fd, &st) == 0)
		now_size = (long long)st.st_size;
	atomic_store_explicit(&dr->truncated, true, memory_order_release);
	stat_add(&dr->d->stats.segment_truncations, 1);
	atomic_store_explicit(&dr->d->stats.segment_truncated, 1, memory_order_relaxed);
	atomic_store_explicit(&dr->d->stats.segment_header_ok, 0, memory_order_relaxed);
	atel__log(dr->d, ATEL_LOG_ERROR,
		  "shared-memory segment '%s' was truncated by another process (file now %lld bytes, the mapping "
		  "is %zu; %s): stopped reading it; %llu records and markers drained by this run stay in the log "
		  "(flushed); running degraded without a segment (agents count their records as dropped): "
		  "restart ateld to create a new one (segment_truncations)",
		  dr->seg.name, now_size, dr->seg.size, how, (unsigned long long)dr->appends);
	if (dr->unflushed)
		seg_flush(dr);
	{
		uint64_t lost = atomic_load_explicit(&dr->d->stats.log.records_source_lost, memory_order_relaxed);

		if (lost)
			atel__log(dr->d, ATEL_LOG_ERROR,
				  "%llu records drained from the cut pages were not yet in a frame: dropped, not logged "
				  "as zeros (records_lost_truncation)", (unsigned long long)lost);
	}
}

/* @return true if the segment is (now found) truncated: do not touch the mapping. */
static bool seg_check(struct atel_drain *dr)
{
	struct stat st;

	if (atomic_load_explicit(&dr->truncated, memory_order_relaxed))
		return true;
	if (dr->seg_fd >= 0 && fstat(dr->seg_fd, &st) == 0 && (uint64_t)st.st_size < (uint64_t)dr->seg.size) {
		seg_truncated(dr, "found by fstat before reading");
		return true;
	}
	if (dr->seg_guarded && atel__sigbus_truncated(dr->seg.base)) {
		seg_truncated(dr, "a read of the mapping faulted (SIGBUS absorbed)");
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------------ */
/* open / run / close                                                       */

/* Refuses to share a segment with another live consumer; warns before a
 * segment of another geometry (config changed) is replaced under live producers. */
static int check_existing(struct atel_daemon *d, const char *name, char *err, size_t errlen)
{
	const struct atel_config *cfg = d->cfg;
	struct atel_segment s;
	int rc = 0;

	if (atel__segment_attach(&s, name, NULL, 0) != 0)
		return 0; /* none, or unusable: create() replaces it */
	if (s.hdr->consumer_pid > 0 && s.hdr->consumer_pid != getpid() &&
	    atel__proc_alive(s.hdr->consumer_pid, s.hdr->consumer_start)) {
		atel__seterr(err, errlen, "segment '%s' is already drained by another ateld (pid %d); "
		       "stop it first or use another --shm name", name, (int)s.hdr->consumer_pid);
		rc = -EBUSY;
	} else if (s.ring_count != cfg->shm.rings || s.ring_capacity != cfg->shm.ring_capacity) {
		uint32_t claimed = 0;
		uint64_t unread = 0;

		for (uint32_t r = 0; r < s.ring_count; r++) {
			struct atel_ring_desc *desc = atel__seg_desc(&s, r);
			uint32_t st = atomic_load_explicit(&desc->state, memory_order_acquire);
			uint64_t h = atomic_load_explicit(&desc->head, memory_order_acquire);
			uint64_t t = atomic_load_explicit(&desc->tail, memory_order_relaxed);

			claimed += st == ATEL_RING_ACTIVE || st == ATEL_RING_CLAIMING;
			if (h > t && h - t <= s.ring_capacity)
				unread += h - t;
		}
		atel__log(d, ATEL_LOG_WARN,
			  "segment '%s' has %u rings x %u slots, the configuration asks for %u x %u: replacing it "
			  "(%llu unread slots in it are lost)%s",
			  name, s.ring_count, s.ring_capacity, cfg->shm.rings, cfg->shm.ring_capacity,
			  (unsigned long long)unread,
			  claimed ? "; producers holding its rings write into the old one until they restart" : "");
	}
	atel__segment_detach(&s);
	return rc;
}

/* Boot time on the wall clock, for producers' start times (/proc/<pid>/stat field 22). */
static void read_boot_time(struct atel_drain *dr)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");
	unsigned long long bt;

	dr->clk_tck = sysconf(_SC_CLK_TCK);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &bt) == 1) {
			dr->boot_ns = (uint64_t)bt * 1000000000ull;
			break;
		}
	fclose(f);
}

static enum atel_io_mode io_mode(const char *s)
{
	if (s && !strcmp(s, "io_uring"))
		return ATEL_IO_URING;
	if (s && !strcmp(s, "pwritev"))
		return ATEL_IO_PWRITEV;
	return ATEL_IO_AUTO;
}

int atel__drain_open(struct atel_drain **out, struct atel_daemon *d, const struct atel_drain_opts *o,
		     char *err, size_t errlen)
{
	const struct atel_config *cfg = d->cfg;
	struct atel_segment_config sc = { cfg->shm.rings, cfg->shm.ring_capacity, cfg->shm.mode };
	struct atel_seglog_opts lo;
	struct atel_drain *dr;
	uint64_t *next = NULL;
	bool *seen = NULL;
	const char *name;
	char e2[512];
	struct atel_recover_report rep;
	int rc;

	*out = NULL;
	dr = calloc(1, sizeof(*dr));
	if (!dr)
		return -ENOMEM;
	dr->d = d;
	dr->cfg = cfg;
	dr->seg_fd = -1;
	if (o)
		dr->o = *o;
	pthread_mutex_init(&dr->info_lock, NULL);
	name = dr->o.shm_name ? dr->o.shm_name : cfg->shm.name;
	read_boot_time(dr);

	if ((rc = check_existing(d, name, err, errlen)))
		goto fail;
	rc = atel__segment_create(&dr->seg, name, &sc, e2, sizeof(e2));
	if (rc) {
		atel__seterr(err, errlen, "shared memory: %s", e2);
		goto fail;
	}
	dr->seg_open = true;
	seg_guard(dr);
	hdr_save(&dr->hdr0, dr->seg.hdr);
	atomic_store_explicit(&d->stats.segment_header_ok, 1, memory_order_relaxed);
	dr->nrings = dr->seg.ring_count;
	dr->rs = calloc(dr->nrings, sizeof(*dr->rs));
	next = calloc(dr->nrings, sizeof(*next));
	seen = calloc(dr->nrings, sizeof(*seen));
	dr->dec = atel__decoder_new();
	if (!dr->rs || !next || !seen || !dr->dec) {
		rc = -ENOMEM;
		atel__seterr(err, errlen, "out of memory");
		goto fail;
	}

	/* Positions: the ring's tail, advanced to the logged position if it lags
	 * (ateld died after writing a frame but before releasing the ring). */
	rc = atel__seglog_recover_report(d->segments_dir, dr->seg.hdr->instance_id, dr->nrings, next, seen, dr->dec,
					 &rep, e2, sizeof(e2));
	if (rc == 0 && (rep.tail_cuts || rep.torn_headers || rep.corrupt_aside)) {
		/* hardening (issue 12): a cut is a logged, counted condition */
		stat_add(&d->stats.log_tail_cuts, rep.tail_cuts + rep.torn_headers);
		atel__log(d, ATEL_LOG_WARN,
			  "log recovery: %u torn tail(s) cut (%llu bytes; last %s at offset %llu), %u file(s) with a torn "
			  "header removed, %u file(s) with an invalid header moved aside (*.corrupt)",
			  rep.tail_cuts, (unsigned long long)rep.tail_bytes, rep.last_file,
			  (unsigned long long)rep.last_offset, rep.torn_headers, rep.corrupt_aside);
	}
	if (rc) {
		atel__seterr(err, errlen, "log recovery in %s: %s", d->segments_dir, e2);
		goto fail;
	}
	for (uint32_t r = 0; r < dr->nrings; r++) {
		struct atel_ring_desc *desc = atel__seg_desc(&dr->seg, r);
		struct ring_st *st = &dr->rs[r];
		uint64_t tail = atomic_load_explicit(&desc->tail, memory_order_relaxed);
		uint64_t head = atomic_load_explicit(&desc->head, memory_order_acquire);
		uint32_t s = atomic_load_explicit(&desc->state, memory_order_acquire);

		st->pos = tail;
		st->gen = LD(&desc->generation);
		if (head < tail || head - tail > dr->seg.ring_capacity) {
			st->released = tail;
			quarantine(dr, r, head, "positions inconsistent at start-up");
			continue;
		}
		if (dr->seg.reattached && seen[r] && next[r] > tail) {
			uint64_t np = next[r] > head ? head : next[r];

			atel__log(d, ATEL_LOG_INFO, "ring %u: %llu slots already in the log; advancing tail %llu -> %llu",
				  r, (unsigned long long)(np - tail), (unsigned long long)tail, (unsigned long long)np);
			st->pos = np;
			atel__ring_release(&dr->seg, r, np);
		}
		st->released = st->appended_end = st->pos;
		if (s == ATEL_RING_QUARANTINED) {
			st->mode = M_QUAR;
			st->quar_head = head;
		} else if (s == ATEL_RING_DRAINING &&
			   owner_gone(dr, r, LD(&desc->owner_pid), LD(&desc->owner_start), LD(&desc->owner_flags)) == 1) {
			/* a previous ateld died while reclaiming this ring: finish the job (a
			 * DRAINING ring whose owner is not provably gone waits in check_owners) */
			st->mode = M_DEAD;
			st->dead_pid = LD(&desc->owner_pid);
			st->dead_tid = LD(&desc->owner_tid);
			st->dead_start = LD(&desc->owner_start);
		}
	}
	if (!dr->seg.reattached)
		for (uint32_t r = 0; r < dr->nrings; r++)
			atel__decoder_reset_ring(dr->dec, r);

	memset(&lo, 0, sizeof(lo));
	lo.segments_dir = d->segments_dir;
	lo.rotate_bytes = cfg->storage.rotate_bytes;
	lo.rotate_age_ns = (uint64_t)cfg->storage.rotate_age_s * 1000000000ull;
	lo.fsync_interval_ns = (uint64_t)cfg->storage.fsync_interval_ms * 1000000ull;
	lo.retention_ns = (uint64_t)cfg->retention.segments_days * 86400ull * 1000000000ull;
	lo.max_bytes = cfg->retention.max_bytes;
	lo.zstd_level = cfg->storage.zstd_level;
	lo.io = io_mode(cfg->storage.io);
	lo.encoding = cfg->storage.encoding && !strcmp(cfg->storage.encoding, "columns") ? ATEL_SEG_ENC_COLUMNS
										  : ATEL_SEG_ENC_RECORDS;
	lo.shm_instance = dr->seg.hdr->instance_id;
	lo.ring_count = dr->nrings;
	lo.defs = dr->dec;
	lo.stats = &d->stats.log;
	lo.async_io = &atel__seglog_uring;
	lo.resume_pos = next;
	lo.resume_seen = seen;
	lo.source_lost = seg_lost;
	lo.source_arg = dr;
	rc = atel__seglog_open(&dr->log, &lo, e2, sizeof(e2));
	if (rc) {
		atel__seterr(err, errlen, "segment log in %s: %s", d->segments_dir, e2);
		goto fail;
	}
	refresh_info(dr);
	if (!strcmp(dr->io_path, "pwritev")) {
		const char *force = getenv("ATEL_FORCE_PWRITEV");

		if (lo.io == ATEL_IO_PWRITEV || (force && !strcmp(force, "1")))
			atel__log(d, ATEL_LOG_INFO, "writing segments with pwritev (configured)");
		else
			atel__log(d, ATEL_LOG_WARN, "io_uring is unavailable here (seccomp, old kernel or "
				  "memlock limit); writing segments with pwritev");
	}
	atel__log(d, ATEL_LOG_INFO, "segment '%s' %s: %u rings x %u slots, instance %016llx; writing %s via %s", name,
		  dr->seg.reattached ? "re-attached" : "created", dr->nrings, dr->seg.ring_capacity,
		  (unsigned long long)dr->seg.hdr->instance_id, dr->cur_file, dr->io_path);
	free(next);
	free(seen);
	*out = dr;
	return 0;
fail:
	free(next);
	free(seen);
	atel__drain_close(dr);
	return rc;
}

/*
 * One pass over every ring, starting one ring later each time, then one
 * flush for everything the pass appended. @return true if any ring had records.
 */
/* The open frame must be written now: it is old enough, or a ring is half held back. */
static bool flush_due(const struct atel_drain *dr)
{
	uint64_t half = dr->seg.ring_capacity / 2;

	if (atel__mono_ns() - dr->unflushed_since >= FLUSH_DELAY_NS)
		return true;
	for (uint32_t r = 0; r < dr->nrings; r++)
		if (dr->rs[r].pos - dr->rs[r].released >= half)
			return true;
	return false;
}

/*
 * Compression under pressure: when a ring is a quarter full at a pass, the
 * producers outrun the drain, and the frames are compressed at
 * storage.zstd_level_pressure (default -7, zstd's fastest level the
 * configuration takes) until every ring stays under an eighth for 100 ms. The
 * log is the bottleneck of every record an agent writes; its ratio matters
 * less than not making the producers fold or drop, and the compactor
 * (consumer/compactor.c) recompresses the finished file. Measured with one
 * flat-out span thread (bench/peers/lossless, 4 interleaved pairs on a quiet
 * 2-core machine): 4.27M spans/s delivered on average at -7 against 3.72M at
 * -1, -7 ahead in every pair; its frames were about 37% larger.
 */
#define PRESSURE_HOLD_NS 100000000ull

static void adapt_level(struct atel_drain *dr)
{
	uint64_t cap = dr->seg.ring_capacity, now;

	if (dr->cfg->storage.zstd_level_pressure == dr->cfg->storage.zstd_level)
		return;
	if (dr->pass_fill_max * 4 >= cap) {
		now = atel__mono_ns();
		dr->pressure_until = now + PRESSURE_HOLD_NS;
		if (!dr->pressure) {
			dr->pressure = true;
			atel__seglog_set_level(dr->log, dr->cfg->storage.zstd_level_pressure);
			stat_add(&dr->d->stats.pressure_episodes, 1);
		}
	} else if (dr->pressure && dr->pass_fill_max * 8 < cap && atel__mono_ns() >= dr->pressure_until) {
		dr->pressure = false;
		atel__seglog_set_level(dr->log, dr->cfg->storage.zstd_level);
	}
}

static bool pass(struct atel_drain *dr, bool stopping)
{
	uint64_t appends0 = dr->appends;
	uint32_t n = dr->nrings;
	bool busy = false;

	dr->pass_fill_max = 0;
	if (seg_check(dr))
		return false;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t r = (dr->rr + i) % n;
		uint64_t before = dr->rs[r].pos;
		int64_t rc = drain_ring(dr, r, stopping);

		if (dr->seg_guarded && atel__sigbus_truncated(dr->seg.base)) {
			/* truncated while this pass read it: keep what is appended, read no more */
			seg_truncated(dr, "a read of the mapping faulted (SIGBUS absorbed)");
			return false;
		}

		if (rc != 0 || dr->rs[r].pos != before)
			busy = true;
		if (rc < 0) {
			/* the log refused an append (out of memory): flush what it has, retry next pass */
			atel__log(dr->d, ATEL_LOG_WARN, "ring %u: log append failed: %s", r, strerror((int)-rc));
			break;
		}
	}
	dr->rr = (dr->rr + 1) % n;
	adapt_level(dr);
	if (dr->appends != appends0 && !dr->unflushed) {
		dr->unflushed = true;
		dr->unflushed_since = atel__mono_ns();
	}
	if (dr->unflushed && (stopping || flush_due(dr)))
		do_flush(dr);
	else
		release_all(dr); /* what is already written, and slots skipped as garbage */
	return busy;
}

/* Every ring drained up to its head at stop time (quarantined rings excepted). */
static bool drained_to_stop(const struct atel_drain *dr)
{
	for (uint32_t r = 0; r < dr->nrings; r++) {
		const struct ring_st *st = &dr->rs[r];

		if (st->mode == M_QUAR)
			continue;
		if (st->pos < st->stop_head || st->released < st->pos || st->invalid)
			return false;
		if (st->mode == M_DEAD)
			return false;
	}
	return true;
}

static void hdr_save(struct hdr_copy *c, const struct atel_shm_header *h)
{
	c->magic = h->magic;
	c->endian = h->endian;
	c->abi_major = h->abi_major;
	c->abi_minor = h->abi_minor;
	c->header_size = h->header_size;
	c->record_size = h->record_size;
	c->ring_count = h->ring_count;
	c->ring_capacity = h->ring_capacity;
	c->dir_offset = h->dir_offset;
	c->dir_entry_size = h->dir_entry_size;
	c->rings_offset = h->rings_offset;
	c->ring_stride = h->ring_stride;
	c->total_size = h->total_size;
	c->instance_id = h->instance_id;
	c->consumer_pid = h->consumer_pid;
	c->consumer_start = h->consumer_start;
}

/* @return true if the header still says what ateld wrote (the reserved words zero, READY set). */
static bool hdr_intact(const struct hdr_copy *c, const struct atel_shm_header *h)
{
	volatile const struct atel_shm_header *v = h; /* another process may write it any time */

	if (v->magic != c->magic || v->endian != c->endian || v->abi_major != c->abi_major ||
	    v->abi_minor != c->abi_minor || v->header_size != c->header_size || v->record_size != c->record_size ||
	    v->ring_count != c->ring_count || v->ring_capacity != c->ring_capacity || v->dir_offset != c->dir_offset ||
	    v->dir_entry_size != c->dir_entry_size || v->rings_offset != c->rings_offset ||
	    v->ring_stride != c->ring_stride || v->total_size != c->total_size || v->instance_id != c->instance_id ||
	    v->consumer_pid != c->consumer_pid || v->consumer_start != c->consumer_start || v->reserved0)
		return false;
	for (size_t i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++)
		if (v->reserved[i])
			return false;
	return (atomic_load_explicit(&h->flags, memory_order_acquire) & ATEL_SHM_READY) != 0;
}

static void hdr_restore(const struct hdr_copy *c, struct atel_shm_header *h)
{
	volatile struct atel_shm_header *v = h;

	v->endian = c->endian;
	v->abi_major = c->abi_major;
	v->abi_minor = c->abi_minor;
	v->header_size = c->header_size;
	v->record_size = c->record_size;
	v->ring_count = c->ring_count;
	v->ring_capacity = c->ring_capacity;
	v->dir_offset = c->dir_offset;
	v->dir_entry_size = c->dir_entry_size;
	v->rings_offset = c->rings_offset;
	v->ring_stride = c->ring_stride;
	v->total_size = c->total_size;
	v->instance_id = c->instance_id;
	v->consumer_pid = c->consumer_pid;
	v->consumer_start = c->consumer_start;
	v->reserved0 = 0;
	for (size_t i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++)
		v->reserved[i] = 0;
	/* the magic last: a producer that sees it sees the rest (x86-TSO; a producer
	 * attaching during the repair retries later either way) */
	atomic_thread_fence(memory_order_release);
	v->magic = c->magic;
	atomic_fetch_or_explicit(&h->flags, ATEL_SHM_READY, memory_order_release);
}

/* Every tick: garbage in the header would lock new agents out (atel_init -EPROTO); restore it. */
static void hdr_check(struct atel_drain *dr)
{
	struct atel_shm_header *h = dr->seg.hdr;

	if (hdr_intact(&dr->hdr0, h)) {
		atomic_store_explicit(&dr->d->stats.segment_header_ok, 1, memory_order_relaxed);
		return;
	}
	atomic_store_explicit(&dr->d->stats.segment_header_ok, 0, memory_order_relaxed);
	hdr_restore(&dr->hdr0, h);
	stat_add(&dr->d->stats.segment_header_repairs, 1);
	atel__log(dr->d, ATEL_LOG_WARN,
		  "shared-memory segment header was overwritten (another process wrote into it); restored "
		  "(segment_header_repairs)");
}

static void tick(struct atel_drain *dr)
{
	uint64_t now = atel__now_ns();
	bool live = !seg_check(dr);

	if (live && dr->o.keep_heartbeat)
		atel__drain_heartbeat(dr);
	if (live)
		hdr_check(dr);
	if (++dr->ticks % 10 == 0) { /* free space of the log's file system, for status and /metrics */
		struct statvfs vs;

		if (statvfs(dr->d->segments_dir, &vs) == 0)
			atomic_store_explicit(&dr->d->stats.data_free_bytes, (uint64_t)vs.f_bavail * vs.f_frsize,
					      memory_order_relaxed);
	}
	if (live && !dr->stalled)
		check_owners(dr);
	{
		int rc = atel__seglog_tick(dr->log, now);

		if (rc && rc != dr->tick_err)
			atel__log(dr->d, ATEL_LOG_ERROR, "segment log maintenance (fsync/rotation/retention): %s",
				  strerror(-rc));
		dr->tick_err = rc;
	}
	if (live) {
		update_stats(dr, now);
		loss_tick(dr, now);
	}
	refresh_info(dr);
	if (dr->o.on_tick)
		dr->o.on_tick(dr->o.tick_arg, now);
}

int atel__drain_run(struct atel_drain *dr, uint64_t shutdown_ns)
{
	uint64_t next_tick = 0, deadline = 0;
	uint32_t idle = 0, sleep_cur = SLEEP_MIN_US;
	bool stopping = false;
	int rc = 0;

	for (;;) {
		uint64_t now = atel__mono_ns();
		bool busy = false;

		if (!stopping && atomic_load_explicit(&dr->d->stopping, memory_order_acquire)) {
			stopping = true;
			deadline = now + shutdown_ns;
			for (uint32_t r = 0; r < dr->nrings && !seg_check(dr); r++)
				dr->rs[r].stop_head =
					atomic_load_explicit(&atel__seg_desc(&dr->seg, r)->head, memory_order_acquire);
			atel__log(dr->d, ATEL_LOG_INFO, "stopping: draining every ring");
		}
		if (now >= next_tick) {
			tick(dr);
			next_tick = now + TICK_NS;
		}
		/* a reopen asked for while writes fail waits until they work again */
		if (!dr->stalled && atomic_exchange_explicit(&dr->reopen, false, memory_order_acq_rel)) {
			int r2 = atel__seglog_reopen(dr->log);

			if (r2)
				atel__log(dr->d, ATEL_LOG_ERROR, "reopening the log failed: %s", strerror(-r2));
			else
				atel__log(dr->d, ATEL_LOG_INFO, "log reopened: now writing %s",
					  atel__seglog_current_file(dr->log));
			refresh_info(dr);
		}
		if (dr->stalled) {
			if (now >= dr->retry_at_ns)
				do_flush(dr);
			busy = false;
		} else {
			busy = pass(dr, stopping);
		}
		if (stopping && atomic_load_explicit(&dr->truncated, memory_order_relaxed)) {
			/* nothing left to drain: the segment is gone; what was drained is in the log */
			if (dr->unflushed)
				seg_flush(dr);
			if (!dr->unflushed || now >= deadline) {
				atel__log(dr->d, ATEL_LOG_INFO, "stopping: the segment was truncated, no ring drained "
					  "(records drained before the truncation are in the log)");
				rc = dr->unflushed ? dr->last_err : 0;
				break;
			}
		} else if (stopping) {
			if (!dr->stalled && drained_to_stop(dr)) {
				/* the loss counters' final values go into the log too */
				loss_tick(dr, atel__now_ns());
				if (dr->unflushed)
					do_flush(dr);
				if (!dr->stalled)
					break;
			}
			if (now >= deadline) {
				atel__log(dr->d, ATEL_LOG_ERROR,
					  "shutdown: rings not drained within %.1f s%s; unreleased records stay in "
					  "the rings for the next start",
					  (double)shutdown_ns / 1e9, dr->stalled ? " (the log cannot be written)" : "");
				rc = dr->stalled ? dr->last_err : -ETIMEDOUT;
				break;
			}
		}
		if (busy) {
			idle = 0;
			sleep_cur = SLEEP_MIN_US;
			continue;
		}
		if (dr->stalled) {
			sleep_us(1000);
			continue;
		}
		if (++idle < SPIN_PASSES) {
			cpu_relax();
			continue;
		}
		sleep_us(sleep_cur);
		if (sleep_cur < dr->cfg->drain.idle_sleep_max_us) {
			sleep_cur *= 2;
			if (sleep_cur > dr->cfg->drain.idle_sleep_max_us)
				sleep_cur = dr->cfg->drain.idle_sleep_max_us;
		}
	}
	{
		int rc2 = atel__seglog_close(dr->log);

		dr->log = NULL;
		if (rc2 && !rc) {
			atel__log(dr->d, ATEL_LOG_ERROR, "closing the log: %s", strerror(-rc2));
			rc = rc2;
		}
	}
	return rc;
}

int atel__drain_step(struct atel_drain *dr, unsigned passes)
{
	tick(dr);
	for (unsigned i = 0; i < passes && !dr->stalled; i++)
		pass(dr, false);
	if (dr->unflushed && !dr->stalled)
		do_flush(dr);
	tick(dr);
	return dr->stalled ? (dr->last_err ? dr->last_err : -EIO) : 0;
}

void atel__drain_request_reopen(struct atel_drain *dr)
{
	if (dr)
		atomic_store_explicit(&dr->reopen, true, memory_order_release);
}

void atel__drain_heartbeat(struct atel_drain *dr)
{
	/* no heartbeat on a truncated segment: new agents must not take it for a live sidecar's */
	if (dr && dr->seg_open && !atomic_load_explicit(&dr->truncated, memory_order_acquire))
		atomic_store_explicit(&dr->seg.hdr->heartbeat_ns, atel__now_ns(), memory_order_relaxed);
}

bool atel__drain_truncated(const struct atel_drain *dr)
{
	return dr && atomic_load_explicit(&dr->truncated, memory_order_acquire);
}

const struct atel_segment *atel__drain_segment(const struct atel_drain *dr)
{
	return &dr->seg;
}

void atel__drain_log_info(struct atel_drain *dr, char *io_path, size_t iolen, char *file, size_t filelen)
{
	pthread_mutex_lock(&dr->info_lock);
	if (io_path)
		snprintf(io_path, iolen, "%s", dr->io_path);
	if (file)
		snprintf(file, filelen, "%s", dr->cur_file);
	pthread_mutex_unlock(&dr->info_lock);
}

void atel__drain_close(struct atel_drain *dr)
{
	if (!dr)
		return;
	if (dr->log)
		atel__seglog_close(dr->log);
	atel__decoder_free(dr->dec);
	if (dr->seg_fd >= 0)
		close(dr->seg_fd);
	if (dr->seg_guarded)
		atel__sigbus_unguard(dr->seg.base);
	if (dr->seg_open)
		atel__segment_detach(&dr->seg);
	free(dr->rs);
	pthread_mutex_destroy(&dr->info_lock);
	free(dr);
}
