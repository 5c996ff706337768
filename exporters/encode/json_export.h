/* SPDX-License-Identifier: MIT */
/*
 * json_export.h - the JSON export document (schema in docs/json-export.md):
 * a cumulative metric snapshot and the spans completed since the previous
 * document. The files that hold it are the exporters' (exporters/json_files.h).
 *
 * Recent spans come from the exporters' own log follower (the same thread
 * that feeds the aggregates), assembled from SPAN_* events in a bounded
 * table, so a document shows what the log holds without a second log reader.
 */
#ifndef ATEL_JSON_EXPORT_H
#define ATEL_JSON_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "aggregates.h"
#include "buf.h"
#include "decode.h"

#define ATEL_JSON_SCHEMA "atel.json-export/v1"

/* ---- recent spans: assembled from the log's SPAN_* events --------------------- */

struct atel_recent_spans;

/* keep: completed spans remembered (ring); open_max: spans in flight (the
 * oldest is evicted and counted when full). @return 0 or -ENOMEM. */
int atel__spans_new(struct atel_recent_spans **out, uint32_t keep, uint32_t open_max);
void atel__spans_free(struct atel_recent_spans *r); /* NULL-safe */

/* Feeds one event (SPAN_START/ATTR/EVENT/ERROR/END; others ignored). One
 * writer thread; concurrent readers are fine (internal lock). */
void atel__spans_apply(struct atel_recent_spans *r, const struct atel_event *ev);

/* Completed spans so far (the sequence number of the newest). Thread-safe. */
uint64_t atel__spans_completed(struct atel_recent_spans *r);

/* Spans evicted from the open table unfinished, so far. Thread-safe. */
uint64_t atel__spans_evicted(struct atel_recent_spans *r);

/* ---- encoding --------------------------------------------------------------------- */

/*
 * Appends one JSON document (docs/json-export.md) to out: the snapshot
 * (may be NULL) and the completed spans with sequence number > since_seq
 * still in the ring (spans may be NULL). file_start_ns/now_ns/writes fill
 * the header fields; *last_seq (may be NULL) gets the newest sequence number
 * considered. @return 0 or -ENOMEM. Thread-safe.
 */
int atel__json_encode(struct atel_buf *out, const struct atel_agg_snapshot *snap, struct atel_recent_spans *spans,
		      uint64_t since_seq, uint64_t file_start_ns, uint64_t now_ns, uint64_t writes,
		      uint64_t *last_seq);


#endif /* ATEL_JSON_EXPORT_H */
