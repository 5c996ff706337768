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
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "daemon.h"
#include "index.h"
#include "logread.h"
#include "util.h"

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
	/* hardening (issue 12): the database file as opened, to notice it deleted or replaced */
	dev_t db_dev;
	ino_t db_ino;
	uint64_t db_checked_ns;
	uint64_t space_checked_ns;
	bool paused;                      /* waiting for disk space (index.reserve_*) */
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

/* storage.file_mode for the database and its -wal/-shm (issue 12): SQLite
 * gives -wal and -shm the database file's mode, so the database is created
 * here with the policy's mode and an older file is brought to it. */
static void ix_db_modes(const char *db)
{
	char p[4200];
	int fd = open(db, O_RDWR | O_CREAT | O_CLOEXEC, (mode_t)atel__file_mode());

	if (fd >= 0) {
		(void)atel__fchmod_policy(fd);
		close(fd);
	}
	snprintf(p, sizeof(p), "%s-wal", db);
	(void)atel__chmod_policy(p);
	snprintf(p, sizeof(p), "%s-shm", db);
	(void)atel__chmod_policy(p);
}

static int ix_open_db(struct atel_indexer *ix)
{
	const struct atel_config *cfg = ix->d->cfg;
	struct atel_ixw_opts o = { .rollup_interval_s = cfg ? cfg->index.rollup_interval_s : 60,
				   .compact = !cfg || !cfg->index.mode || strcmp(cfg->index.mode, "full") != 0 };
	char err[512];
	int rc;

	ix_db_modes(ix->d->db_path);
	rc = atel__ixw_open(&ix->w, ix->d->db_path, &o, err, sizeof(err));
	if (!rc) {
		struct stat sb;

		ix->db_dev = stat(ix->d->db_path, &sb) == 0 ? sb.st_dev : 0;
		ix->db_ino = ix->db_dev ? sb.st_ino : 0;
	}

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

/*
 * Hardening (issue 12): a telemetry.db deleted or replaced under the running
 * indexer would take every later row into an unlinked file. Checked about
 * once a second; the database is then reopened (created anew) and rebuilt
 * from the log, which is the truth (the cursor of a new database is the
 * start of the log). @return true if it was reopened.
 */
#define IX_DB_CHECK_NS 1000000000ull
static bool ix_db_gone(struct atel_indexer *ix)
{
	struct stat sb;
	uint64_t now = atel__mono_ns();

	if (!ix->w || now - ix->db_checked_ns < IX_DB_CHECK_NS)
		return false;
	ix->db_checked_ns = now;
	if (stat(ix->d->db_path, &sb) == 0 && sb.st_dev == ix->db_dev && sb.st_ino == ix->db_ino)
		return false;
	atel__log(ix->d, ATEL_LOG_WARN, "indexer: %s was deleted or replaced; reopening it and rebuilding the "
		  "index from the log (index_reopened)", ix->d->db_path);
	atomic_fetch_add_explicit(&ix->d->stats.index_reopened, 1, memory_order_relaxed);
	atel__ixw_rollback(ix->w);
	atel__ixw_close(ix->w);
	ix->w = NULL;
	atel__log_close(ix->r);
	ix->r = NULL;
	ix->have_held = false;
	ix->have_base = false;
	if (stat(ix->d->db_path, &sb) != 0 && errno == ENOENT) {
		/* a -wal left by the deleted database must not be replayed into the new one */
		char p[4200];

		snprintf(p, sizeof(p), "%s-wal", ix->d->db_path);
		(void)unlink(p);
		snprintf(p, sizeof(p), "%s-shm", ix->d->db_path);
		(void)unlink(p);
	}
	return true;
}

/*
 * Disk reserve (issue 12): the log is the truth and keeps priority for disk
 * space. While the file system holding the segments has less free space than
 * index.reserve_bytes (or reserve_percent of its size, whichever is larger),
 * the indexer writes nothing; it resumes from its cursor once the space is
 * back (1 MiB above the reserve, so it does not flap). Checked every 250 ms.
 * @return true while paused.
 */
#define IX_SPACE_CHECK_NS 250000000ull
#define IX_SPACE_HYSTERESIS (1ull << 20)
static bool ix_space_paused(struct atel_indexer *ix)
{
	const struct atel_config *cfg = ix->d->cfg;
	struct atel_daemon_stats *st = &ix->d->stats;
	uint64_t now = atel__mono_ns(), avail, size, reserve;
	struct statvfs vs;

	if (now - ix->space_checked_ns < IX_SPACE_CHECK_NS && ix->space_checked_ns)
		return ix->paused;
	ix->space_checked_ns = now;
	if (statvfs(ix->d->segments_dir, &vs) != 0) {
		char dir[4200], *slash;

		snprintf(dir, sizeof(dir), "%s", ix->d->db_path);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		if (statvfs(slash ? dir : ".", &vs) != 0)
			return ix->paused;
	}
	avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	size = (uint64_t)vs.f_blocks * vs.f_frsize;
	atomic_store_explicit(&st->data_free_bytes, avail, memory_order_relaxed);
	reserve = cfg ? cfg->index.reserve_bytes : (64ull << 20);
	if (cfg && cfg->index.reserve_percent && size / 100 * cfg->index.reserve_percent > reserve)
		reserve = size / 100 * cfg->index.reserve_percent;
	if (!ix->paused && avail < reserve) {
		ix->paused = true;
		atomic_store_explicit(&st->index_paused, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&st->index_pauses, 1, memory_order_relaxed);
		atel__log(ix->d, ATEL_LOG_WARN,
			  "indexer: paused: %llu bytes free on the log's file system, below the reserve of %llu "
			  "(index.reserve_bytes / reserve_percent); the log keeps writing, the index catches up "
			  "when space returns", (unsigned long long)avail, (unsigned long long)reserve);
	} else if (ix->paused && avail >= reserve + IX_SPACE_HYSTERESIS) {
		ix->paused = false;
		atomic_store_explicit(&st->index_paused, 0, memory_order_relaxed);
		atel__log(ix->d, ATEL_LOG_INFO, "indexer: resumed: %llu bytes free", (unsigned long long)avail);
	}
	return ix->paused;
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
		(void)ix_db_gone(ix);
		if (ix_space_paused(ix)) {
			if (stopping)
				break; /* the rest is indexed at the next start */
			sleep_ms(100);
			continue;
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
