/* SPDX-License-Identifier: MIT */
/*
 * index.h - the index room (consumer/index/): the SQLite index of the
 * segment log. The index writer is one SQLite connection that turns decoded
 * log events into rows of schema/telemetry.sql (docs/schema.md). Used by
 * ateld's indexer thread (consumer/indexer.c, following the live log), by
 * atel__reindex (reindex.c, reading the whole log into a fresh file) and by
 * the tests, which feed hand-built events.
 *
 * Transactions: begin(), any number of apply() calls, commit(pos). The log
 * position is written in the same transaction as the rows it covers, so the
 * index holds every event exactly once, also across kill -9: after a crash
 * the committed cursor is where reading resumes. After a failed apply or
 * commit, call rollback() and re-read the log from the committed cursor; the
 * writer drops its in-memory state and reloads what it needs from the file.
 *
 * Not thread-safe: one thread owns a writer. Readers (atel CLI) may use the
 * file concurrently (WAL mode).
 */
#ifndef ATEL_INDEX_H
#define ATEL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "logread.h"

struct sqlite3;

/* One row of telemetry_exports. Exporters report them; ateld's indexer
 * thread (the only SQLite writer) inserts them. */
struct atel_export_row {
	uint64_t ts_ns;
	char exporter[16];       /* "prometheus" | "json" | "otlp" */
	char signal[16];         /* "metrics" | "traces" */
	uint64_t items;
	uint64_t bytes;
	int status;              /* HTTP status, 0 for a local write, -errno for a transport error */
	char error[256];         /* "" on success */
};

/*
 * Rebuilds db_path from the segments alone (atel reindex, ateld --reindex):
 * a fresh file beside it with the same writer, renamed into place; the
 * export history is kept from the old file. Nothing may index into db_path
 * meanwhile. @return 0 or -errno (err says what failed).
 */
int atel__reindex(const char *segments_dir, const char *db_path, char *err, size_t errlen);

/* The same with the index mode given: compact 1, full 0, or -1 to keep the
 * old file's (compact when there is none). ateld --reindex passes index.mode. */
int atel__reindex_mode(const char *segments_dir, const char *db_path, int compact, char *err, size_t errlen);

struct atel_ixw_opts {
	uint32_t rollup_interval_s;   /* width of telemetry_aggregates buckets; 0 means 60 */
	uint32_t busy_timeout_ms;     /* how long one statement waits for a lock; 0 means 50 */
	bool bulk;                    /* reindex into a fresh file: synchronous=OFF */
	/* index.mode "compact": raw samples and spans stay in the log only (no
	 * telemetry_metrics, telemetry_spans, telemetry_span_events rows); the
	 * series catalog, rollups, losses and exports are kept. The mode is
	 * recorded in telemetry_meta ('index_mode'), where the CLI reads it to
	 * take raw rows from the segment files (atel__ix_mode_compact). */
	bool compact;
};

struct atel_ixw;

/* The mode an index file records: 1 compact, 0 full (also a file from
 * before index.mode, whose rows are all there), -errno when unreadable. */
int atel__ix_mode_compact(struct sqlite3 *db);

/* What opening changed about the file's mode (full -> compact, or a
 * compact file written full), one sentence for the log; NULL when nothing. */
const char *atel__ixw_mode_note(const struct atel_ixw *w);

/* Opens or creates the database, runs the embedded schema, switches to WAL.
 * @return 0 or -errno (-EBUSY when locked; err gets SQLite's message). */
int atel__ixw_open(struct atel_ixw **out, const char *path, const struct atel_ixw_opts *o, char *err,
		   size_t errlen);

/* Rolls back an open transaction, closes. NULL-safe. */
void atel__ixw_close(struct atel_ixw *w);

/* The committed log cursor. @return 0 or -EIO. */
int atel__ixw_cursor(struct atel_ixw *w, struct atel_log_pos *pos);

/* BEGIN IMMEDIATE. @return 0, -EBUSY (another connection holds the write lock) or -EIO. */
int atel__ixw_begin(struct atel_ixw *w);

/* Applies one event inside the open transaction (events other than samples,
 * spans, losses and deaths change nothing). @return 0 or -EBUSY/-EIO/-ENOMEM. */
int atel__ixw_apply(struct atel_ixw *w, const struct atel_event *ev);

/* Inserts one telemetry_exports row inside the open transaction. @return 0 or -errno. */
int atel__ixw_export_row(struct atel_ixw *w, const struct atel_export_row *row);

/* Writes the rollups and series touched since the last commit, the cursor
 * (pos; NULL keeps the stored one) and commits. @return 0 or -EBUSY/-EIO. */
int atel__ixw_commit(struct atel_ixw *w, const struct atel_log_pos *pos);

/* Abandons the open transaction and the in-memory state. */
void atel__ixw_rollback(struct atel_ixw *w);

/* Deletes, in its own transaction, metrics rows older than now - metrics_days,
 * spans (by start, or end if start is unknown) and span events older than
 * now - traces_days, aggregate buckets starting before now - aggregates_days,
 * and export/loss rows older than now - metrics_days. A 0 day count keeps
 * everything. *deleted (may be NULL) gets the number of rows removed.
 * @return 0 or -EBUSY/-EIO. */
int atel__ixw_retention(struct atel_ixw *w, uint64_t now_ns, uint32_t metrics_days, uint32_t traces_days,
			uint32_t aggregates_days, uint64_t *deleted);

/* Rows inserted or updated by committed transactions since open. */
uint64_t atel__ixw_rows(const struct atel_ixw *w);

/* Events applied by committed transactions since open. */
uint64_t atel__ixw_events(const struct atel_ixw *w);

/* The connection (tests and reindex use it for plain SQL). */
struct sqlite3 *atel__ixw_db(struct atel_ixw *w);

#endif /* ATEL_INDEX_H */
