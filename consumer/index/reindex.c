/* SPDX-License-Identifier: MIT */
/*
 * reindex.c - atel__reindex: rebuilds the SQLite index from the segment log
 * alone (`atel reindex`, `ateld --reindex`). The index is derived data
 * (docs/design.md, principle 2), so a lost, corrupt or outdated telemetry.db is
 * never a loss: this writes a fresh file next to it with the same writer the
 * live indexer uses (so the rows are the same), then renames it into place.
 *
 * Run it while no ateld indexes into db_path (ateld --reindex does it before
 * starting its indexer): a live connection would keep writing the old file.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "index.h"
#include "util.h"

#define REINDEX_BATCH 50000u

struct corrupt_note {
	uint64_t frames;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct corrupt_note *n = arg;

	n->frames++;
	fprintf(stderr, "%s: reindex: %s: frame at offset %" PRIu64 " skipped: %s\n", program_invocation_short_name,
		file, offset, why);
}

static void unlink_db_files(const char *path)
{
	char p[4200];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-journal", path);
	unlink(p);
}

/* Keeps the export history (it is not in the log) from the old file, if any. */
static void copy_exports(sqlite3 *db, const char *old_path)
{
	sqlite3_stmt *st = NULL;
	struct stat sb;

	if (stat(old_path, &sb) || !S_ISREG(sb.st_mode))
		return;
	if (sqlite3_prepare_v2(db, "ATTACH DATABASE ?1 AS old", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, old_path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE) {
		/* a damaged old file simply contributes nothing */
		sqlite3_exec(db,
			     "INSERT INTO telemetry_exports(ts_ns, exporter, signal, items, bytes, status, error) "
			     "SELECT ts_ns, exporter, signal, items, bytes, status, error FROM old.telemetry_exports "
			     "ORDER BY id",
			     NULL, NULL, NULL);
		sqlite3_exec(db, "DETACH DATABASE old", NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
}

int atel__reindex(const char *segments_dir, const char *db_path, char *err, size_t errlen)
{
	return atel__reindex_mode(segments_dir, db_path, -1, err, errlen);
}

int atel__reindex_mode(const char *segments_dir, const char *db_path, int compact, char *err, size_t errlen)
{
	struct atel_ixw_opts wo = { .rollup_interval_s = 60, .bulk = true };
	struct atel_log_reader_opts ro = { .segments_dir = segments_dir, .on_corrupt = on_corrupt };
	struct corrupt_note note = { 0 };
	struct atel_log_reader *r = NULL;
	struct atel_ixw *w = NULL;
	struct atel_log_pos pos = { 0 }, last = { 0 };
	struct atel_event ev;
	char tmp[4200], dirbuf[4200];
	uint32_t n = 0;
	int rc;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.reindex-%ld", db_path, (long)getpid()) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", db_path);
		return -ENAMETOOLONG;
	}
	ro.arg = &note;
	if (errlen)
		err[0] = '\0';
	unlink_db_files(tmp);
	/* keep the rollup width and the index mode the live database was built
	 * with (a file from before index.mode is full); no file: compact, the default */
	wo.compact = compact != 0;
	if (access(db_path, F_OK) == 0) {
		sqlite3 *odb = NULL;
		sqlite3_stmt *st = NULL;

		if (sqlite3_open_v2(db_path, &odb, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
			if (sqlite3_prepare_v2(odb, "SELECT value FROM telemetry_meta WHERE key = 'rollup_interval_s'",
					       -1, &st, NULL) == SQLITE_OK &&
			    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > 0)
				wo.rollup_interval_s = (uint32_t)sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
			if (compact < 0)
				wo.compact = atel__ix_mode_compact(odb) != 0;
		}
		sqlite3_close(odb);
	}
	rc = atel__ixw_open(&w, tmp, &wo, err, errlen);
	if (rc)
		goto out;
	rc = atel__log_open(&r, &ro);
	if (rc) {
		snprintf(err, errlen, "%s: cannot open the segment log: %s", segments_dir, strerror(-rc));
		goto out;
	}
	rc = atel__ixw_begin(w);
	/* progress on a terminal: events so far and the file being read, 5 times a second */
	bool tty = isatty(STDERR_FILENO), shown = false;
	uint64_t total = 0, next_progress = 0;
	while (!rc) {
		rc = atel__log_next(r, &ev, &pos);
		if (rc <= 0)
			break;
		rc = atel__ixw_apply(w, &ev);
		if (rc)
			break;
		last = pos;
		if (tty && (++total & 0xFFF) == 0 && atel__mono_ns() >= next_progress) {
			const char *f = atel__log_current_file(r), *sl = strrchr(f, '/');
			fprintf(stderr, "\r%s: reindex: %" PRIu64 " events, reading %s   ", program_invocation_short_name,
				total, sl ? sl + 1 : f);
			next_progress = atel__mono_ns() + 200000000ull;
			shown = true;
		}
		if (++n == REINDEX_BATCH) {
			n = 0;
			rc = atel__ixw_commit(w, &last);
			if (!rc)
				rc = atel__ixw_begin(w);
		}
	}
	if (shown)
		fprintf(stderr, "\r%s: reindex: %" PRIu64 " events read; committing\n", program_invocation_short_name,
			total);
	if (rc < 0) {
		snprintf(err, errlen, "%s: reindex failed: %s (%s)", db_path, strerror(-rc),
			 sqlite3_errmsg(atel__ixw_db(w)));
		goto out;
	}
	rc = atel__ixw_commit(w, &last);
	if (rc) {
		snprintf(err, errlen, "%s: commit: %s", tmp, sqlite3_errmsg(atel__ixw_db(w)));
		goto out;
	}
	copy_exports(atel__ixw_db(w), db_path);
	sqlite3_exec(atel__ixw_db(w), "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	atel__ixw_close(w);
	w = NULL;
	if ((rc = atel__fsync_path(tmp))) {
		snprintf(err, errlen, "%s: fsync: %s", tmp, strerror(-rc));
		goto out;
	}
	/* the old file's WAL must not be replayed onto the new file */
	{
		char p[4200];

		snprintf(p, sizeof(p), "%s-wal", db_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", db_path);
		unlink(p);
	}
	if (rename(tmp, db_path)) {
		rc = -errno;
		snprintf(err, errlen, "rename %s -> %s: %s", tmp, db_path, strerror(errno));
		goto out;
	}
	snprintf(dirbuf, sizeof(dirbuf), "%s", db_path);
	(void)atel__fsync_path(dirname(dirbuf));
	if (note.frames)
		fprintf(stderr, "%s: reindex: %" PRIu64 " corrupt frames skipped\n", program_invocation_short_name,
			note.frames);
	rc = 0;
out:
	atel__log_close(r);
	if (w)
		atel__ixw_close(w);
	if (rc)
		unlink_db_files(tmp);
	return rc;
}
