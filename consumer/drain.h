/* SPDX-License-Identifier: MIT */
/*
 * drain.h - the drain: the one consumer thread that moves records from the
 * rings of the shared-memory segment into the segment log (consumer/log/seglog.h)
 * with exactly-once delivery (docs/design.md, principles 4 and 5).
 *
 * One pass visits every ring round-robin, taking at most
 * cfg->drain.batch_records slots from each (a busy producer cannot starve the
 * others); records are checked structurally (shm/reader.h) and semantically
 * (consumer/log/decode.h); valid runs are appended to the log straight from ring
 * memory, invalid records are counted and replaced by a LOSS(INVALID) marker;
 * the pass ends with one flush, after which each ring's tail is released only
 * up to what the log has written. When the log cannot write (disk full, EIO),
 * nothing more is released and the flush is retried with backoff until it
 * succeeds: producers see full rings and count drops; nothing released is lost.
 *
 * Every 100 ms the drain also detects dead producers (their rings are drained,
 * a DEATH marker is logged, the ring reclaimed) and frees quarantined rings
 * whose owner is gone. Idle: spin briefly, then sleep, doubling up to
 * cfg->drain.idle_sleep_max_us.
 *
 * Thread-safety: atel__drain_run runs on one thread; atel__drain_request_reopen
 * and atel__drain_ring_view may be called from any thread. The drain reads
 * d->stopping to know when to finish.
 */
#ifndef ATEL_DRAIN_H
#define ATEL_DRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "segment.h"

struct atel_drain;

struct atel_drain_opts {
	const char *shm_name;            /* segment name or file path (cfg->shm.name if NULL) */
	bool keep_heartbeat;             /* the drain thread stores heartbeat_ns every pass */
	/* called about every 100 ms from the drain thread (status file, ...); may be NULL */
	void (*on_tick)(void *arg, uint64_t now_ns);
	void *tick_arg;
};

/*
 * Creates or re-attaches the segment, refuses to run beside another live
 * consumer of it, recovers ring positions from the log (a tail that lags the
 * logged position advances to it) and opens the log.
 * @return 0 or -errno; err gets a message naming what failed.
 */
int atel__drain_open(struct atel_drain **out, struct atel_daemon *d, const struct atel_drain_opts *o,
		     char *err, size_t errlen);

/*
 * Drains until d->stopping is set, then drains every ring up to the head it
 * had when stopping was seen (bounded by shutdown_ns of wall time), flushes
 * and closes the log (fsync).
 * @return 0; -ETIMEDOUT if the final drain did not finish in time; -EIO (or
 * the log's error) if the last records could not be written (they stay
 * unreleased in the rings for the next start).
 */
int atel__drain_run(struct atel_drain *dr, uint64_t shutdown_ns);

/*
 * For tests and the fuzz target (tests/consumer/fuzz_drain.c): one tick
 * (owners, loss counters, header guard), `passes` passes over every ring and
 * a flush, on the calling thread, without waiting. Not with atel__drain_run.
 * @return 0, or the log's error if the flush failed.
 */
int atel__drain_step(struct atel_drain *dr, unsigned passes);

/* Asks the drain thread to start a new log file (SIGHUP). Async-signal-safe. */
void atel__drain_request_reopen(struct atel_drain *dr);

/* Unmaps the segment (its name stays so producers and the next ateld keep it),
 * frees everything. NULL-safe. Call after atel__drain_run returned. */
void atel__drain_close(struct atel_drain *dr);

/* Has the segment been found truncated (issue 12.3)? Then the drain no longer
 * reads it (nor should anyone else in ateld) and ateld runs degraded. Any thread. */
bool atel__drain_truncated(const struct atel_drain *dr);

/* The segment being drained (valid between open and close). */
const struct atel_segment *atel__drain_segment(const struct atel_drain *dr);

/* "io_uring" | "pwritev", and the file being written ("" before the log is open).
 * Copied under a lock: safe from any thread. */
void atel__drain_log_info(struct atel_drain *dr, char *io_path, size_t iolen, char *file, size_t filelen);

/* Stores heartbeat_ns in the segment header now. Any thread. */
void atel__drain_heartbeat(struct atel_drain *dr);

#endif /* ATEL_DRAIN_H */
