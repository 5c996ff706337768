/* SPDX-License-Identifier: MIT */
/*
 * qsource.h - series selection for the query engine: the samples of every
 * series whose metric name and labels match a selector, over a time range,
 * read from the SQLite index (telemetry_metrics) or straight from segment
 * files (the log) when there is no database.
 *
 * Values are what the log holds per sample: a counter's increment, a gauge's
 * value after the sample (a gauge `add` is applied to the running value), a
 * histogram's observation. For counters `base` is the sum of the increments
 * before the range, so base + running sum is the cumulative counter value
 * (what Prometheus would scrape) at each sample; see atel_qs_cumulative.
 *
 * Single-threaded; the result owns all its memory.
 */
#ifndef ATEL_QSOURCE_H
#define ATEL_QSOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "logread.h"
#include "query.h"

struct atel_qseries {
	char *name;
	uint8_t mtype;               /* enum atel_metric_type: 1 counter, 2 gauge, 3 histogram */
	uint64_t hash;               /* series key hash (FNV-1a of name and sorted labels) */
	size_t nlabels;
	char **keys, **values;       /* sorted by key */
	size_t nbounds;
	double *bounds;              /* histogram upper bounds (finite, ascending), or NULL */
	double base;                 /* counters: increments before the range start */
	double running;              /* internal: gauge value so far (log source) */
	bool excluded;               /* internal: labels did not match */
	struct atel_qpoint *pts;     /* ascending ts */
	size_t n, cap;
};

struct atel_qresult {
	struct atel_qseries *s;      /* matching series, sorted by labels */
	size_t n, cap;
	uint64_t samples;            /* samples read (matching or not) */
	uint64_t corrupt_frames;     /* log source: frames skipped as corrupt */
	/* internal: hash -> index (+1) into s, open addressing */
	size_t *slots;
	size_t nslots;
};

/*
 * From the index. sel NULL or sel->metric NULL: every metric (for `atel
 * metrics`); [start_ns, end_ns] inclusive.
 * @return 0 or -errno (err says what failed).
 */
int atel_qs_select_db(sqlite3 *db, const struct atel_qselector *sel, uint64_t start_ns, uint64_t end_ns,
		      struct atel_qresult *out, char *err, size_t errlen);

/*
 * From segment files: a directory of .atseg files or one file. Corrupt
 * frames are skipped and counted in out->corrupt_frames.
 * @return 0 or -errno (-ENOENT: no such directory/file).
 */
int atel_qs_select_log(const char *segments_dir, const char *single_file, const struct atel_qselector *sel,
		       uint64_t start_ns, uint64_t end_ns, struct atel_qresult *out, char *err, size_t errlen);

/* The index's log cursor: the log position up to which telemetry.db holds
 * every record. Call inside the read transaction that selects the rows so
 * the two agree. @return 0 or -ENOENT (no cursor table or row). */
int atel_qs_db_cursor(sqlite3 *db, struct atel_log_pos *pos);

/* True when the log holds events past the index cursor (the indexer is behind). */
bool atel_qs_index_behind(sqlite3 *db, const char *segments_dir);

/*
 * Adds the samples the index has not covered yet: reads the log from `from`
 * (the index cursor) to its current end into out, a result of
 * atel_qs_select_db, so the answer equals a whole-log read. db (may be
 * NULL): the index, for the pre-range sum of a counter first seen in the tail.
 * Call in the same read transaction as the select. *tail_events: the
 * samples (of any metric) read past the cursor (0: the index had them all).
 * @return 0 or -errno (out is then freed).
 */
int atel_qs_add_log_tail(sqlite3 *db, const char *segments_dir, const struct atel_log_pos *from,
			 const struct atel_qselector *sel, uint64_t start_ns, uint64_t end_ns, struct atel_qresult *out,
			 uint64_t *tail_events, char *err, size_t errlen);

/* Cumulative values of a series: counters base + running sum of increments;
 * histograms the running observation count; gauges the values themselves.
 * out must hold s->n points. */
void atel_qs_cumulative(const struct atel_qseries *s, struct atel_qpoint *out);

/* NULL-safe; leaves *r zeroed. */
void atel_qresult_free(struct atel_qresult *r);


/* Labels of a series as a compact JSON object text {"k":"v",...} (malloc'd). */
char *atel_qs_labels_json(const struct atel_qseries *s);

#endif /* ATEL_QSOURCE_H */
