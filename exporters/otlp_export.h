/* SPDX-License-Identifier: MIT */
/*
 * otlp_export.h - the OTLP/HTTP exporter of ateld: one thread that
 *  - follows the segment log with its own persisted cursor
 *    (<data_dir>/state/otlp-traces.cursor), assembles spans from their
 *    START/ATTR/EVENT/ERROR/END records and posts finished spans in batches
 *    to the traces URL; the cursor moves only after the collector answered,
 *    so an outage or a restart neither loses nor re-sends acknowledged spans;
 *  - posts a cumulative snapshot of the aggregates to the metrics URL every
 *    export_interval_ms.
 * Delivery: libcurl, gzip (zlib), timeout, retries with exponential backoff
 * and jitter on 429/502/503/504 and transport errors, Retry-After honoured;
 * 400 and other 4xx are not retried; partial success is logged, not retried.
 * Header values (tokens) are never logged nor stored in errors or status.
 */
#ifndef ATEL_OTLP_EXPORT_H
#define ATEL_OTLP_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregates.h"
#include "otlp_settings.h"
#include "state.h"
#include "logread.h"
#include "otlp_encode.h"

struct atel_otlp;

/* ---- stop (the start is atel__otlp_start_opts below) ------------------ */

/* Final bounded export pass (one attempt per signal, no retries), stops the
 * thread, persists the cursor, frees everything. NULL-safe. */
void atel__otlp_stop(struct atel_otlp *o);

/*
 * Parses a Retry-After header value: delta-seconds or an HTTP-date
 * (IMF-fixdate, e.g. "Wed, 21 Oct 2015 07:28:00 GMT"), relative to now_unix_s.
 * @return 0 with *delay_ms (a past date gives 0; capped at 1 hour), or
 * -EINVAL if the value is neither.
 */
int atel__otlp_parse_retry_after(const char *value, size_t len, uint64_t now_unix_s, uint32_t *delay_ms);

/*
 * Delay before retry number `attempt` (1 = first retry): exponential
 * base_ms * 2^(attempt-1), capped at max_ms, with "equal jitter" (half fixed,
 * half drawn from rnd) so that many sidecars do not retry in lockstep;
 * never less than retry_after_ms (the server's Retry-After, 0 if none).
 */
uint32_t atel__otlp_backoff_ms(unsigned attempt, uint32_t retry_after_ms, uint32_t base_ms, uint32_t max_ms,
			       uint64_t rnd);

/* ---- a span event source (the log by default; tests substitute one) ------ */

struct atel_otlp_source {
	void *arg;
	/* open at `start`; @return 0 or -errno */
	int (*open)(void *arg, const struct atel_log_pos *start, void **handle);
	/* as atel__log_next: 1 event, 0 at the current end, -errno */
	int (*next)(void *handle, struct atel_event *ev, struct atel_log_pos *pos_after);
	void (*close)(void *handle);
};

/* ---- lower-level start for tests and tools ------------------------------- */

struct atel_otlp_opts {
	struct atel_daemon *d;               /* health, export rows, logging; required */
	struct atel_agg *agg;                /* NULL: no metrics export */
	const struct atel_otlp_settings *settings; /* copied */
	const char *segments_dir;            /* the log (used when source is NULL) */
	const struct atel_otlp_source *source; /* NULL: the log in segments_dir */
	const char *state_dir;               /* cursor file directory (created); NULL: no persistence */
	bool traces, metrics;                /* which signals to export */
	uint32_t interval_ms;                /* metrics period (export_interval_ms) */
	uint32_t poll_ms;                    /* log poll period when idle (default 200) */
	uint32_t backoff_base_ms;            /* default 500 */
	uint32_t backoff_max_ms;             /* default 30000 */
	uint32_t metrics_max_attempts;       /* per snapshot (default 5); traces retry until stopped */
	uint32_t open_spans_max;             /* open-span table bound (default 65536) */
	uint32_t orphan_window;              /* records after which a span whose START never came is
						dropped (default 4194304) */
};

/* @return 0 or -errno, err set. */
int atel__otlp_start_opts(struct atel_otlp **out, const struct atel_otlp_opts *opts, char *err, size_t errlen);

/* Counters for tests and status; thread-safe (relaxed reads). */
struct atel_otlp_stats {
	uint64_t attempts[2];               /* [0] traces, [1] metrics: HTTP attempts */
	uint64_t retries[2];
	uint64_t acked_batches[2];          /* 2xx (partial success included) */
	uint64_t dropped_batches[2];        /* 4xx other than 429, or attempts exhausted */
	uint64_t spans_acked;               /* spans in acknowledged batches */
	uint64_t spans_rejected;            /* partial success rejectedSpans, summed */
	uint64_t points_rejected;           /* partial success rejectedDataPoints, summed */
	uint64_t spans_dropped;             /* in batches dropped on a 4xx */
	uint64_t spans_skipped_acked;       /* re-read after a restart, already acknowledged */
	uint64_t spans_producer_exited;     /* closed because their producer died */
	uint64_t spans_evicted;             /* open-span table full */
	uint64_t orphan_records;            /* span records whose span never started */
	uint64_t open_spans;                /* currently open */
	uint64_t last_retry_delay_ms;       /* delay chosen before the last retry */
	uint64_t metrics_exports;           /* snapshots acknowledged */
};
void atel__otlp_get_stats(struct atel_otlp *o, struct atel_otlp_stats *out);

/*
 * Cursor file (<state_dir>/otlp-traces.cursor; tests, atel status): the
 * position to resume reading at, the completion position of the last
 * acknowledged span, and the ids (16-byte trace id + 8-byte span id) of the
 * spans held unacknowledged whose first record lies before it (records of
 * other spans up to `acked` are not re-sent). Written atomically (tmp,
 * fsync, rename).
 * load: *pending is malloc'd and sorted (free it); pending/npending may be NULL.
 * @return 0, -ENOENT, -EINVAL if corrupt, -ENOMEM, or another -errno.
 */
int atel__otlp_cursor_load(const char *path, struct atel_log_pos *resume, struct atel_log_pos *acked,
			   uint8_t (**pending)[24], uint32_t *npending);
int atel__otlp_cursor_save(const char *path, const struct atel_log_pos *resume, const struct atel_log_pos *acked,
			   const uint8_t (*pending)[24], uint32_t npending);

#endif /* ATEL_OTLP_EXPORT_H */
