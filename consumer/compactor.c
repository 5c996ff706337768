/* SPDX-License-Identifier: MIT */
/*
 * compactor.c - ateld's background compactor (compactor.h;
 * docs/segment-format.md section 9).
 *
 * Every storage.compact_interval_s (and once shortly after the start) the
 * thread lists the segment files and rewrites with atel__seg_compact, oldest
 * first, each file with done < seq < pin, never the newest file (the drain
 * writes it).
 *
 * The pin. A log position {file_seq, frame_off, rec_idx} names a byte offset
 * in a file: a reader that resumes at a stored position in a file rewritten
 * since would seek into the middle of a new frame. Positions held in memory
 * only are safe (a running reader keeps its descriptor of the old file, and
 * every persisted position is at or before its in-memory one), so the pin is
 * the lowest position persisted on disk by anything that resumes from one,
 * read from disk at every pass:
 *   - the indexer cursor (telemetry.db, telemetry_index_cursor id 1);
 *   - the aggregates checkpoint (state/aggregates.ckpt; the exporters'
 *     follower always runs in ateld);
 *   - remote write's checkpoint and outbox (state/remote_write.ckpt,
 *     state/remote_write.outbox);
 *   - the OTLP exporter's cursor (state/otlp-traces.cursor: resume and acked).
 * A follower that is enabled and has not persisted its position yet pins
 * everything (it may write one at the start of the log at any moment); the
 * file of a disabled follower still pins (re-enabled, it resumes there). An
 * unreadable file pins everything too, with one WARN.
 *
 * Progress: state/compact.done, one decimal number, the highest seq done.
 * A file that fails (a damaged frame) is logged once at WARN and passed for
 * good; "left as it is" also counts as done.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "compact.h"
#include "compactor.h"
#include "otlp_export.h"
#include "segformat.h"
#include "util.h"

#define DONE_FILE "compact.done"
#define WAIT_SLICE_MS 200u /* the thread also watches d->stopping this often */

struct atel_compactor {
	struct atel_daemon *d;
	struct atel_compactor_opts o;
	char data_dir[4096], segments_dir[4096], state_dir[4200], done_path[4300];
	pthread_t th;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;
	uint64_t done;
	/* what was last said, to say it once per change */
	char said_pin[160], said_warn[4700], said_retry[1024];
};

/* ---- the pin ------------------------------------------------------------- */

static void pin_take(struct atel_compact_pin *p, uint64_t seq, uint64_t off, const char *holder)
{
	if (seq < p->file_seq) {
		p->file_seq = seq;
		p->frame_off = off;
		snprintf(p->holder, sizeof(p->holder), "%s", holder);
	}
}

/* A holder that should exist and does not, or cannot be read: nothing is compacted. */
static void pin_all(struct atel_compact_pin *p, const char *holder, const char *warn)
{
	pin_take(p, 0, 0, holder);
	if (warn && !p->warn[0])
		snprintf(p->warn, sizeof(p->warn), "%s", warn);
}

/*
 * A binary position file: magic (8 bytes), u32, u32, then u64 file_seq and
 * u64 frame_off at byte 16 (consumer/aggregates/checkpoint.c,
 * exporters/remote_write.c). @return 0, -ENOENT, or -EBADMSG.
 */
static int read_bin_pos(const char *path, const char *magic, uint64_t *seq, uint64_t *off)
{
	uint8_t b[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (n != (ssize_t)sizeof(b) || memcmp(b, magic, 8))
		return -EBADMSG;
	memcpy(seq, b + 16, 8);
	memcpy(off, b + 24, 8);
	return 0;
}

static void pin_bin(const struct atel_compactor_opts *o, struct atel_compact_pin *p, const char *name,
		    const char *magic, bool expected)
{
	char path[4400], w[4600];
	uint64_t seq = 0, off = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/state/%s", o->data_dir, name);
	rc = read_bin_pos(path, magic, &seq, &off);
	if (rc == 0)
		pin_take(p, seq, off, name);
	else if (rc == -ENOENT) {
		if (expected)
			pin_all(p, name, NULL); /* not written yet */
	} else {
		snprintf(w, sizeof(w), "%s: %s", path, rc == -EBADMSG ? "not a position file of this version" : strerror(-rc));
		pin_all(p, name, w);
	}
}

static void pin_index(const struct atel_compactor_opts *o, struct atel_compact_pin *p)
{
	char path[4400], w[4600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc;

	snprintf(path, sizeof(path), "%s/telemetry.db", o->data_dir);
	if (stat(path, &sb) < 0) {
		if (o->index_enabled)
			pin_all(p, "index cursor", NULL); /* the indexer creates it */
		return;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_prepare_v2(db, "SELECT file_seq, frame_off FROM telemetry_index_cursor WHERE id = 1", -1,
					&st, NULL);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			pin_take(p, (uint64_t)sqlite3_column_int64(st, 0), (uint64_t)sqlite3_column_int64(st, 1),
				 "index cursor");
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			pin_all(p, "index cursor", NULL); /* a new database: no cursor row yet */
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK) {
		snprintf(w, sizeof(w), "%s: reading the index cursor: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
		pin_all(p, "index cursor", w);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void pin_otlp(const struct atel_compactor_opts *o, struct atel_compact_pin *p)
{
	char path[4400], w[4600];
	struct atel_log_pos resume, acked;
	int rc;

	snprintf(path, sizeof(path), "%s/state/otlp-traces.cursor", o->data_dir);
	rc = atel__otlp_cursor_load(path, &resume, &acked, NULL, NULL);
	if (rc == 0) {
		pin_take(p, resume.file_seq, resume.frame_off, "otlp-traces.cursor");
		pin_take(p, acked.file_seq, acked.frame_off, "otlp-traces.cursor");
	} else if (rc == -ENOENT) {
		if (o->otlp_enabled)
			pin_all(p, "otlp-traces.cursor", NULL);
	} else {
		snprintf(w, sizeof(w), "%s: %s", path, rc == -EINVAL ? "garbled" : strerror(-rc));
		pin_all(p, "otlp-traces.cursor", w);
	}
}

int atel__compact_pin_read(const struct atel_compactor_opts *o, struct atel_compact_pin *pin)
{
	memset(pin, 0, sizeof(*pin));
	pin->file_seq = UINT64_MAX;
	pin_index(o, pin);
	pin_bin(o, pin, "aggregates.ckpt", "ATELAGG1", o->aggregates_enabled);
	pin_bin(o, pin, "remote_write.ckpt", "ATELAGG1", o->remote_write_enabled);
	pin_bin(o, pin, "remote_write.outbox", "ATELRWO1", o->remote_write_enabled);
	pin_otlp(o, pin);
	return 0;
}

/* ---- progress ------------------------------------------------------------ */

static uint64_t done_load(struct atel_compactor *c)
{
	char *text = NULL, *end;
	size_t len = 0;
	uint64_t v = 0;

	if (atel__read_file(c->done_path, 64, &text, &len, NULL, 0) == 0) {
		errno = 0;
		unsigned long long x = strtoull(text, &end, 10);
		if (!errno && end != text && (*end == '\n' || !*end))
			v = x;
		else
			atel__log(c->d, ATEL_LOG_WARN, "compactor: %s is garbled; starting from the oldest file",
				  c->done_path);
	}
	free(text);
	return v;
}

static void done_save(struct atel_compactor *c, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);
	int rc = atel__write_file_replace(c->done_path, buf, (size_t)n, atel__file_mode());

	c->done = v;
	if (rc)
		atel__log(c->d, ATEL_LOG_WARN, "compactor: cannot write %s: %s", c->done_path, strerror(-rc));
}

/* ---- the thread ---------------------------------------------------------- */

static bool stopping(struct atel_compactor *c)
{
	return atomic_load_explicit(&c->stop, memory_order_acquire) ||
	       atomic_load_explicit(&c->d->stopping, memory_order_acquire);
}

static void add(_Atomic uint64_t *a, uint64_t v)
{
	atomic_fetch_add_explicit(a, v, memory_order_relaxed);
}

/* One pass over the log. */
/* The pin again, right before a rewritten file replaces the old one. */
struct recheck {
	const struct atel_compactor_opts *o;
	uint64_t seq;
};

static bool pin_still_ok(void *arg, char *why, size_t whylen)
{
	const struct recheck *rc = arg;
	struct atel_compact_pin pin;

	atel__compact_pin_read(rc->o, &pin);
	if (rc->seq < pin.file_seq)
		return true;
	snprintf(why, whylen, "%s moved to log position file %" PRIu64 " offset %" PRIu64 " meanwhile", pin.holder,
		 pin.file_seq, pin.frame_off);
	return false;
}

static void pass(struct atel_compactor *c)
{
	struct atel_daemon_stats *s = &c->d->stats;
	struct atel_compact_opts co = { .level = c->o.level, .frame_bytes = c->o.frame_bytes };
	struct atel_compact_pin pin;
	uint64_t *seqs = NULL;
	char err[1024];
	int n = atel__seg_list(c->segments_dir, &seqs);

	if (n < 0) {
		atel__log(c->d, ATEL_LOG_DEBUG, "compactor: listing %s: %s", c->segments_dir, strerror(-n));
		return;
	}
	if (n == 0)
		goto out;
	uint64_t newest = seqs[n - 1];
	if (c->done >= newest) {
		/* the numbering went back (the log was removed, the state kept):
		 * compacting a file twice is harmless, missing one is not */
		atel__log(c->d, ATEL_LOG_INFO, "compactor: %s says %" PRIu64 " but the newest file is %" PRIu64
			  "; starting from the oldest file", c->done_path, c->done, newest);
		done_save(c, 0);
	}
	atel__compact_pin_read(&c->o, &pin);
	if (pin.warn[0]) {
		if (strcmp(pin.warn, c->said_warn))
			atel__log(c->d, ATEL_LOG_WARN, "compactor: %s; nothing is compacted until it is readable", pin.warn);
	}
	snprintf(c->said_warn, sizeof(c->said_warn), "%s", pin.warn);

	bool held = false;
	for (int i = 0; i < n; i++) {
		uint64_t seq = seqs[i];
		if (seq <= c->done || seq >= newest)
			continue;
		if (seq >= pin.file_seq) {
			held = true;
			char key[160];
			snprintf(key, sizeof(key), "%s %" PRIu64 " %" PRIu64, pin.holder, pin.file_seq, pin.frame_off);
			if (strcmp(key, c->said_pin))
				atel__log(c->d, ATEL_LOG_INFO,
					  "compactor: segment file %016" PRIx64 " and later held back: %s holds log position "
					  "file %" PRIu64 " offset %" PRIu64 "%s",
					  seq, pin.holder, pin.file_seq, pin.frame_off,
					  pin.file_seq == 0 ? " (not written yet, or unreadable)" : "");
			snprintf(c->said_pin, sizeof(c->said_pin), "%s", key);
			break;
		}
		if (stopping(c))
			break;
		struct atel_compact_result res;
		struct recheck rk = { &c->o, seq };
		co.still_ok = pin_still_ok;
		co.arg = &rk;
		err[0] = 0;
		int rc = atel__seg_compact(c->segments_dir, seq, &co, &res, err, sizeof(err));
		if (rc == 1) {
			add(&s->compact_files, 1);
			add(&s->compact_bytes_before, res.bytes_before);
			add(&s->compact_bytes_after, res.bytes_after);
			add(&s->compact_bytes_saved, res.bytes_before - res.bytes_after);
			atel__log(c->d, ATEL_LOG_DEBUG,
				  "compactor: %016" PRIx64 ": %" PRIu64 " -> %" PRIu64 " bytes, %" PRIu64 " -> %" PRIu64 " frames",
				  seq, res.bytes_before, res.bytes_after, res.frames_before, res.frames_after);
		} else if (rc == 0 || rc == -ENOENT) {
			/* left as it is, or removed by retention since the listing */
			atel__log(c->d, ATEL_LOG_DEBUG, "compactor: %s", err);
		} else if (rc == -EAGAIN) {
			/* a reader reached this file while it was rewritten: not replaced; the
			 * next pass sees the pin and holds the file back */
			atel__log(c->d, ATEL_LOG_INFO, "compactor: %s", err);
			break;
		} else if (rc == -ENOMEM || rc == -ENOSPC || rc == -EDQUOT) {
			/* the machine's trouble, not the file's: try it again next pass */
			if (strcmp(err, c->said_retry))
				atel__log(c->d, ATEL_LOG_WARN, "compactor: %s; trying again later", err);
			snprintf(c->said_retry, sizeof(c->said_retry), "%s", err);
			break;
		} else {
			atel__log(c->d, ATEL_LOG_WARN, "compactor: %s; this file is not compacted", err);
			add(&s->compact_failures, 1);
		}
		done_save(c, seq);
	}
	if (!held)
		c->said_pin[0] = 0;
out:;
	uint64_t pending = 0;
	for (int i = 0; i < n; i++)
		if (seqs[i] > c->done && seqs[i] < seqs[n - 1])
			pending++;
	atomic_store_explicit(&s->compact_pending, pending, memory_order_relaxed);
	free(seqs);
}

/* Waits ms or until a stop. @return true to stop. */
static bool wait_ms(struct atel_compactor *c, uint64_t ms)
{
	uint64_t end = atel__mono_ns() + ms * 1000000ull;

	pthread_mutex_lock(&c->lock);
	while (!stopping(c)) {
		uint64_t now = atel__mono_ns();
		if (now >= end)
			break;
		uint64_t step = end - now;
		if (step > WAIT_SLICE_MS * 1000000ull)
			step = WAIT_SLICE_MS * 1000000ull;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(step / 1000000000ull);
		ts.tv_nsec += (long)(step % 1000000000ull);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return stopping(c);
}

static void *compactor_main(void *arg)
{
	struct atel_compactor *c = arg;
	struct sched_param sp = { .sched_priority = 0 };
	int rc;

	/* SCHED_IDLE: compaction only ever takes CPU nobody else wants, so the
	 * drain is never slowed by it; without it, the lowest nice value */
	if ((rc = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp)) != 0) {
		atel__log(c->d, ATEL_LOG_DEBUG, "compactor: SCHED_IDLE: %s; using nice 19", strerror(rc));
		if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) != 0)
			atel__log(c->d, ATEL_LOG_DEBUG, "compactor: setpriority: %s", strerror(errno));
	}
	if ((rc = atel__seg_compact_cleanup(c->segments_dir)) > 0)
		atel__log(c->d, ATEL_LOG_INFO, "compactor: removed %d unfinished .compact file%s in %s", rc,
			  rc == 1 ? "" : "s", c->segments_dir);
	c->done = done_load(c);
	if (!wait_ms(c, c->o.first_delay_ms)) {
		do
			pass(c);
		while (!wait_ms(c, (uint64_t)c->o.interval_s * 1000u));
	}
	return NULL;
}

int atel__compactor_start(struct atel_compactor **out, struct atel_daemon *d, const struct atel_compactor_opts *o)
{
	struct atel_compactor *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->d = d;
	c->o = *o;
	if ((size_t)snprintf(c->data_dir, sizeof(c->data_dir), "%s", o->data_dir) >= sizeof(c->data_dir) ||
	    (size_t)snprintf(c->segments_dir, sizeof(c->segments_dir), "%s", o->segments_dir) >=
		    sizeof(c->segments_dir)) {
		free(c);
		return -ENAMETOOLONG;
	}
	c->o.data_dir = c->data_dir;
	c->o.segments_dir = c->segments_dir;
	if (c->o.interval_s == 0)
		c->o.interval_s = 30;
	snprintf(c->state_dir, sizeof(c->state_dir), "%s/state", c->data_dir);
	snprintf(c->done_path, sizeof(c->done_path), "%s/" DONE_FILE, c->state_dir);
	if (mkdir(c->state_dir, (mode_t)atel__dir_mode()) < 0 && errno != EEXIST) {
		rc = -errno;
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = pthread_create(&c->th, NULL, compactor_main, c)) != 0) {
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -rc;
	}
	*out = c;
	return 0;
}

void atel__compactor_request_stop(struct atel_compactor *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store_explicit(&c->stop, true, memory_order_release);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int atel__compactor_stop(struct atel_compactor *c, uint32_t wait_ms)
{
	static struct atel_compactor *left; /* left running at exit: still referenced */

	if (!c)
		return 0;
	atel__compactor_request_stop(c);
	if (wait_ms) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(wait_ms / 1000u);
		ts.tv_nsec += (long)(wait_ms % 1000u) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(c->th, NULL, &ts) == ETIMEDOUT) {
			atel__log(c->d, ATEL_LOG_INFO,
				  "compactor: still rewriting a segment file after %u ms; leaving it (the old file "
				  "stays whole; its temporary file is removed at the next start)", wait_ms);
			left = c;
			return -ETIMEDOUT;
		}
	} else {
		pthread_join(c->th, NULL);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	(void)left;
	return 0;
}
