/* SPDX-License-Identifier: MIT */
/*
 * logshadow.h - a full-mode index of the segment log, in memory, for the
 * readers that ask for raw rows (the web view's metric, series and trace
 * pages, `atel top`'s tables) when the index on disk is compact
 * (index.mode). It is the indexer's own writer (index.h) fed by the log
 * reader (logread.h), so its telemetry_metrics, telemetry_series,
 * telemetry_spans and telemetry_span_events rows are the ones a full index
 * would hold, and the same SQL answers from it.
 *
 * It keeps its own log cursor: each sync reads only what was appended since
 * the last one. Memory is capped (max_bytes): a log whose rows do not fit
 * makes sync fail with -ENOSPC. Rows of files that retention deleted stay
 * until the shadow is closed.
 *
 * Single-threaded: one owner thread opens, syncs, queries and closes it.
 */
#ifndef ATEL_LOGSHADOW_H
#define ATEL_LOGSHADOW_H

#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct atel_logshadow;

/* @return 0 or -errno (err says what failed). */
int atel__logshadow_open(struct atel_logshadow **out, const char *segments_dir, uint64_t max_bytes, char *err,
			 size_t errlen);

/*
 * Applies the events appended to the log since the last sync. min_ns:
 * samples older than this are skipped (0: none; a caller that only looks at
 * a recent window). interrupt (may be NULL) is asked every 4096 events;
 * nonzero stops the sync with what it applied so far kept (the next sync
 * goes on from there) and returns -EINTR.
 * @return 0, -EINTR, -ENOENT (no log yet), -ENOSPC (over max_bytes) or -errno.
 */
int atel__logshadow_sync(struct atel_logshadow *s, uint64_t min_ns, int (*interrupt)(void *), void *arg, char *err,
			 size_t errlen);

/* The shadow's connection, for SELECTs between syncs. */
struct sqlite3 *atel__logshadow_db(struct atel_logshadow *s);

/* NULL-safe. */
void atel__logshadow_close(struct atel_logshadow *s);

#endif /* ATEL_LOGSHADOW_H */
