/* SPDX-License-Identifier: MIT */
/*
 * indexer.c - ateld's indexer thread (daemon.h): follows the segment log
 * into the SQLite index with the index writer (consumer/index/index.h).
 *
 * The thread follows the log with its own cursor, stored in the same
 * transaction as the rows it covers, so the drain thread never waits for
 * SQLite and the index holds every event exactly once across crashes. Any
 * failed statement (a locked database, a full disk) rolls the batch back and
 * re-reads the log from the committed cursor after a back-off.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "index.h"
#include "logread.h"

#define IX_EXPORT_PEND 256u
#define IX_IDLE_MS 20u
#define IX_BACKOFF_MAX_MS 1000u
#define IX_STOP_WAIT_MS 10000u
#define IX_RETENTION_EVERY_NS (60ull * 1000000000ull)

struct atel_indexer {
	struct atel_daemon *d;
	pthread_t thread;
	atomic_bool stop;
	struct atel_ixw *w;
	struct atel_log_reader *r;
	struct atel_log_pos committed;  /* the cursor stored in the database */
	struct atel_log_pos applied;    /* after the last event applied in the open batch */
	struct atel_event held;         /* read, not yet applied (the database was busy) */
	struct atel_log_pos held_pos;
	bool have_held;
	struct atel_export_row pend[IX_EXPORT_PEND]; /* taken from the queue, not yet committed */
	uint32_t npend;
	uint64_t last_retention_ns;
	uint64_t drained_base, read_base; /* lag estimate baseline at the last catch-up */
	bool have_base;
	unsigned backoff_ms;
	int last_err;                     /* last logged error, to log each kind once per streak */
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void ix_on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct atel_indexer *ix = arg;

	atel__log(ix->d, ATEL_LOG_WARN, "indexer: %s: frame at offset %" PRIu64 " skipped: %s", file, offset, why);
}

static int ix_open_reader(struct atel_indexer *ix)
{
	struct atel_log_reader_opts o = {
		.segments_dir = ix->d->segments_dir,
		.start = ix->committed,
		.follow = true,
		.on_corrupt = ix_on_corrupt,
		.arg = ix,
	};

	ix->have_held = false;
	ix->have_base = false;
	ix->applied = ix->committed;
	return atel__log_open(&ix->r, &o);
}

static int ix_open_db(struct atel_indexer *ix)
{
	const struct atel_config *cfg = ix->d->cfg;
	struct atel_ixw_opts o = { .rollup_interval_s = cfg ? cfg->index.rollup_interval_s : 60,
				   .compact = !cfg || !cfg->index.mode || strcmp(cfg->index.mode, "full") != 0 };
	char err[512];
	int rc = atel__ixw_open(&ix->w, ix->d->db_path, &o, err, sizeof(err));

	if (!rc && atel__ixw_mode_note(ix->w))
		atel__log(ix->d, ATEL_LOG_INFO, "indexer: %s", atel__ixw_mode_note(ix->w));
	if (!rc && (rc = atel__ixw_cursor(ix->w, &ix->committed)))
		snprintf(err, sizeof(err), "%.300s: reading the cursor: %s", ix->d->db_path, strerror(-rc));
	if (rc) {
		if (rc != ix->last_err)
			atel__log(ix->d, ATEL_LOG_WARN, "indexer: %s (retrying)", err);
		ix->last_err = rc;
		atel__ixw_close(ix->w);
		ix->w = NULL;
	}
	return rc;
}

/* Moves queued export rows into ix->pend (they stay there until committed). */
static void ix_take_exports(struct atel_indexer *ix)
{
	struct atel_daemon *d = ix->d;
	const uint32_t cap = sizeof(d->export_q) / sizeof(d->export_q[0]);

	pthread_mutex_lock(&d->export_lock);
	while (d->export_q_len && ix->npend < IX_EXPORT_PEND) {
		ix->pend[ix->npend++] = d->export_q[d->export_q_head];
		d->export_q_head = (d->export_q_head + 1) % cap;
		d->export_q_len--;
	}
	pthread_mutex_unlock(&d->export_lock);
}

static void ix_update_stats(struct atel_indexer *ix, bool at_end)
{
	struct atel_daemon_stats *st = &ix->d->stats;
	struct atel_log_read_stats rs;
	uint64_t drained = atomic_load_explicit(&st->records_drained, memory_order_relaxed), lag;

	atomic_store_explicit(&st->index_rows, atel__ixw_rows(ix->w), memory_order_relaxed);
	if (!ix->r)
		return;
	atel__log_stats(ix->r, &rs);
	if (at_end) { /* caught up: whatever was drained so far is applied */
		ix->drained_base = drained;
		ix->read_base = rs.records;
		ix->have_base = true;
	}
	if (ix->have_base) {
		uint64_t produced = drained - ix->drained_base, read = rs.records - ix->read_base;

		lag = produced > read ? produced - read : 0;
	} else {
		lag = drained > rs.records ? drained - rs.records : 0;
	}
	atomic_store_explicit(&st->indexer_lag_records, lag, memory_order_relaxed);
}

/*
 * One batch: up to ATEL_IX_BATCH_EVENTS events or ATEL_IX_BATCH_MS of work,
 * committed with the cursor. *at_end: the reader reached the end of the log.
 * @return 0 or -errno (the caller rolls back and re-reads from the cursor).
 */
static int ix_batch(struct atel_indexer *ix, bool *at_end)
{
	uint64_t t0 = atel__now_ns();
	uint32_t n = 0;
	int rc;

	*at_end = false;
	ix_take_exports(ix);
	if (!ix->have_held) {
		rc = atel__log_next(ix->r, &ix->held, &ix->held_pos);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			*at_end = true;
			if (!ix->npend)
				return 0; /* nothing to write: no transaction at all */
		} else {
			ix->have_held = true;
		}
	}
	rc = atel__ixw_begin(ix->w);
	if (rc)
		return rc; /* the held event is applied on the next attempt */
	for (uint32_t i = 0; i < ix->npend; i++)
		if ((rc = atel__ixw_export_row(ix->w, &ix->pend[i])))
			return rc;
	if (ix->have_held) {
		if ((rc = atel__ixw_apply(ix->w, &ix->held)))
			return rc;
		ix->applied = ix->held_pos;
		ix->have_held = false;
		n++;
		while (n < ATEL_IX_BATCH_EVENTS) {
			struct atel_event ev;
			struct atel_log_pos pos;

			rc = atel__log_next(ix->r, &ev, &pos);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				*at_end = true;
				break;
			}
			if ((rc = atel__ixw_apply(ix->w, &ev)))
				return rc;
			ix->applied = pos;
			n++;
			if ((n & 255) == 0 && atel__now_ns() - t0 >= ATEL_IX_BATCH_MS * 1000000ull)
				break;
		}
	}
	rc = atel__ixw_commit(ix->w, n ? &ix->applied : NULL);
	if (rc)
		return rc;
	ix->committed = ix->applied;
	ix->npend = 0;
	return 0;
}

static void ix_fail(struct atel_indexer *ix, int rc)
{
	if (rc != ix->last_err)
		atel__log(ix->d, ATEL_LOG_WARN, "indexer: %s (%s); retrying from the committed cursor",
			  strerror(-rc), rc == -EBUSY ? "database locked by another connection" : "batch rolled back");
	ix->last_err = rc;
	atel__ixw_rollback(ix->w);
	atel__log_close(ix->r);
	ix->r = NULL;
	ix->have_held = false;
	ix->backoff_ms = ix->backoff_ms ? ix->backoff_ms * 2 : 25;
	if (ix->backoff_ms > IX_BACKOFF_MAX_MS)
		ix->backoff_ms = IX_BACKOFF_MAX_MS;
}

static void ix_retention(struct atel_indexer *ix)
{
	const struct atel_config *cfg = ix->d->cfg;
	uint64_t now = atel__now_ns(), deleted = 0;
	int rc;

	if (!cfg || (ix->last_retention_ns && now - ix->last_retention_ns < IX_RETENTION_EVERY_NS))
		return;
	ix->last_retention_ns = now;
	rc = atel__ixw_retention(ix->w, now, cfg->retention.metrics_days, cfg->retention.traces_days,
				 cfg->retention.aggregates_days, &deleted);
	if (rc)
		atel__log(ix->d, ATEL_LOG_WARN, "indexer: retention: %s (retried in a minute)", strerror(-rc));
	else if (deleted)
		atel__log(ix->d, ATEL_LOG_INFO, "indexer: retention deleted %" PRIu64 " rows", deleted);
}

static void *ix_thread(void *arg)
{
	struct atel_indexer *ix = arg;
	uint64_t deadline = 0;

	for (;;) {
		bool stopping = atomic_load(&ix->stop), at_end = false;
		int rc;

		if (stopping && !deadline)
			deadline = atel__now_ns() + IX_STOP_WAIT_MS * 1000000ull;
		if (deadline && atel__now_ns() >= deadline) {
			atel__log(ix->d, ATEL_LOG_WARN,
				  "indexer: stopped before reaching the end of the log; the rest is indexed at the next start");
			break;
		}
		if (!ix->w && ix_open_db(ix)) {
			sleep_ms(200);
			continue;
		}
		if (!ix->r) {
			rc = ix_open_reader(ix);
			if (rc) {
				if (rc != -ENOENT && rc != ix->last_err)
					atel__log(ix->d, ATEL_LOG_WARN, "indexer: cannot open the log %s: %s",
						  ix->d->segments_dir, strerror(-rc));
				ix->last_err = rc;
				ix->r = NULL;
				if (stopping)
					break; /* no log at all: nothing to catch up with */
				sleep_ms(100);
				continue;
			}
		}
		rc = ix_batch(ix, &at_end);
		if (rc) {
			ix_fail(ix, rc);
			ix_update_stats(ix, false);
			sleep_ms(ix->backoff_ms);
			continue;
		}
		if (ix->last_err)
			atel__log(ix->d, ATEL_LOG_INFO, "indexer: recovered");
		ix->last_err = 0;
		ix->backoff_ms = 0;
		ix_update_stats(ix, at_end);
		if (at_end) {
			if (stopping)
				break;
			ix_retention(ix);
			sleep_ms(IX_IDLE_MS);
		}
	}
	/* export rows queued during shutdown */
	if (ix->w) {
		ix_take_exports(ix);
		if (ix->npend && !atel__ixw_begin(ix->w)) {
			int rc = 0;

			for (uint32_t i = 0; i < ix->npend && !rc; i++)
				rc = atel__ixw_export_row(ix->w, &ix->pend[i]);
			if (rc || atel__ixw_commit(ix->w, NULL))
				atel__ixw_rollback(ix->w);
		}
		ix_update_stats(ix, false);
	}
	return NULL;
}

int atel__indexer_start(struct atel_indexer **out, struct atel_daemon *d)
{
	struct atel_indexer *ix;
	int rc;

	*out = NULL;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	ix->d = d;
	atomic_init(&ix->stop, false);
	/* open now so that a bad path fails start-up; a locked file is retried by the thread */
	rc = ix_open_db(ix);
	if (rc && rc != -EBUSY) {
		atel__log(d, ATEL_LOG_ERROR, "indexer: cannot open %s: %s", d->db_path, strerror(-rc));
		free(ix);
		return rc;
	}
	rc = pthread_create(&ix->thread, NULL, ix_thread, ix);
	if (rc) {
		atel__ixw_close(ix->w);
		free(ix);
		return -rc;
	}
	*out = ix;
	return 0;
}

void atel__indexer_stop(struct atel_indexer *ix)
{
	if (!ix)
		return;
	atomic_store(&ix->stop, true);
	pthread_join(ix->thread, NULL);
	atel__log_close(ix->r);
	atel__ixw_close(ix->w);
	free(ix);
}
