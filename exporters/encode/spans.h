/* SPDX-License-Identifier: MIT */
/*
 * spans.h - the span assembler: spans rebuilt from the log's SPAN_* records
 * (START, ATTR, EVENT, ERROR and END may arrive in any order across rings)
 * and DEATH markers. The OTLP exporter sends what it finishes; `atel traces`
 * shows what it holds, finished or not. One definition of a span for both.
 *
 * A span is finished when both its START and its END were read, or when its
 * producer died (status error, "producer exited"), or when the table of
 * spans in flight is full and it is the oldest (closed as an error). Records
 * of a finished span that is still held are ignored. A span seen only
 * through records other than START is a placeholder until its START comes,
 * dropped after orphan_window more records.
 *
 * Single-threaded (the owner's thread), except atel__spanasm_stats.
 */
#ifndef ATEL_SPANS_H
#define ATEL_SPANS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "decode.h"
#include "logread.h"
#include "otlp_encode.h"

#define ATEL_SPAN_ATTRS_MAX 128u   /* per span and per event; more are dropped */
#define ATEL_SPAN_EVENTS_MAX 128u

struct atel_span_event {
	char *name;
	uint64_t ts_ns;
	struct atel_otlp_attr *attrs;     /* in arrival order; keys and strings owned */
	uint32_t nattrs, cattrs;
};

struct atel_span {
	uint8_t trace_id[16], span_id[8], parent_id[8]; /* parent all zero: a root */
	uint8_t kind, flags;              /* OTel SpanKind 0..5, W3C trace flags */
	uint8_t status;                   /* of the END record: 0 unset, 1 ok, 2 error */
	bool started, ended, errored;     /* START read, END read (or closed), an ERROR record read */
	bool ready;                       /* finished (on the ready queue) */
	char *name, *status_msg, *err_msg; /* err_msg: of the first ERROR record with one */
	uint64_t start_ns, end_ns;
	int32_t pid, tid;                 /* producer thread (from START) */
	char comm[17];                    /* its command name */
	uint32_t ring, generation;
	struct atel_otlp_attr *attrs;     /* a later value of a key replaces the earlier one */
	uint32_t nattrs, cattrs;
	struct atel_span_event *events;   /* EVENT records, and ERROR records as "exception" events */
	uint32_t nevents, cevents;
	uint32_t dropped_attrs, dropped_events; /* the END's counts of what the producer could not record */
	struct atel_log_pos first_pos;    /* the position of its first record */
	struct atel_log_pos done_pos;     /* just past the record that finished it */
	/* the assembler's */
	uint64_t created_at;
	struct atel_span *hnext, *lprev, *lnext, *rnext;
};

struct atel_spanasm_opts {
	uint32_t open_max;                /* spans in flight before the oldest is closed; 0: 65536 */
	uint32_t orphan_window;           /* records before a placeholder is dropped; 0: 4194304 */
	/* may be NULL: true if the record should be ignored (an exporter re-reading
	 * records of spans it delivered before a restart); it still counts as read */
	bool (*skip)(void *arg, const struct atel_event *ev, const struct atel_log_pos *after);
	void *arg;
};

struct atel_spanasm;

/* @return 0 or -ENOMEM. */
int atel__spanasm_new(struct atel_spanasm **out, const struct atel_spanasm_opts *o);
void atel__spanasm_free(struct atel_spanasm *a); /* NULL-safe */

/*
 * Applies one log event (others than SPAN_* and DEATH change nothing).
 * before: the position of its record; after: just past it (atel__log_next).
 * Allocation failures lose what they would have added, nothing else.
 */
void atel__spanasm_apply(struct atel_spanasm *a, const struct atel_event *ev, const struct atel_log_pos *before,
			 const struct atel_log_pos *after);

/* Drops placeholders older than the orphan window. Call every few thousand records. */
void atel__spanasm_expire(struct atel_spanasm *a);

/* Spans that finish at or before pos are dropped as delivered already (an
 * exporter re-reading the log after a restart). Default: none. */
void atel__spanasm_skip_until(struct atel_spanasm *a, const struct atel_log_pos *pos);

/* Finished spans, oldest completion first: the first, the one after s, how many. */
struct atel_span *atel__spanasm_ready(const struct atel_spanasm *a);
struct atel_span *atel__spanasm_ready_next(const struct atel_span *s);
uint32_t atel__spanasm_nready(const struct atel_spanasm *a);

/* Removes and frees the oldest finished span. */
void atel__spanasm_release(struct atel_spanasm *a);

/* Every span held, finished or not, in the order of its first record. */
struct atel_span *atel__spanasm_first(const struct atel_spanasm *a);
struct atel_span *atel__spanasm_next(const struct atel_span *s);

/* Counters; thread-safe (relaxed atomics). */
struct atel_spanasm_stats {
	uint64_t open;                    /* held, not finished */
	uint64_t evicted;                 /* closed because the table was full */
	uint64_t producer_exited;         /* closed because their producer died */
	uint64_t orphans;                 /* placeholders dropped */
	uint64_t skipped;                 /* finished at or before skip_until */
};
void atel__spanasm_stats(const struct atel_spanasm *a, struct atel_spanasm_stats *out);

/*
 * The OTLP encoder's view of s: status error if an ERROR record came
 * (whatever END said), the END message or else the error's. events (s->nevents
 * entries; NULL: none wanted) receives the events; out points into s and events.
 */
void atel__span_otlp(const struct atel_span *s, struct atel_otlp_span *out, struct atel_otlp_event *events);

#endif /* ATEL_SPANS_H */
