/* SPDX-License-Identifier: MIT */
/*
 * otlp_internal.h - the OTLP exporter's own state, shared by its files:
 * otlp_export.c (the thread: log, spans, jobs; start and stop),
 * otlp_http.c (delivery), otlp_settings.c and otlp_cursor.c. Nothing
 * outside exporters/otlp_*.c includes it.
 */
#ifndef ATEL_OTLP_INTERNAL_H
#define ATEL_OTLP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "otlp_export.h"
#include "spans.h"
#include "util.h"

enum { SIG_TRACES = 0, SIG_METRICS = 1 };
static const char *const SIG_NAME[2] = { "traces", "metrics" };

#define RESP_MAX (64u * 1024u)      /* bytes of a collector's answer kept */

struct atel_otlp {
	struct atel_daemon *d;
	struct atel_agg *agg;
	struct atel_otlp_settings st;
	struct atel_otlp_source src;
	void *src_handle;
	bool do_traces, do_metrics;
	uint32_t interval_ms, poll_ms, backoff_base_ms, backoff_max_ms, metrics_max_attempts, orphan_window;
	char cursor_path[4200];
	char segments_dir[4096];

	/* threading */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;

	/* spans (exporter thread only): the assembler (encode/spans.h) and the log positions */
	struct atel_spanasm *spans;
	struct atel_log_pos read_pos, acked, saved_resume, saved_acked;
	/* After a restart, records up to `acked` belong to acknowledged spans
	 * unless their span is in this sorted set (trace id + span id) of spans
	 * that were held, unacknowledged, when the cursor was saved. */
	uint8_t (*pend)[24];
	uint32_t npend;
	bool replay;
	bool src_open, log_at_end;
	uint64_t nread;
	uint64_t last_save_ns, last_read_warn_ns;

	/* delivery */
	CURL *curl[2];
	struct curl_slist *hdrs[2];
	char curl_err[CURL_ERROR_SIZE];
	struct atel_buf enc, resp;
	char retry_after[64];
	struct atel_otlp_attr *res_attrs;
	struct atel_otlp_resource res;
	uint64_t rnd;

	/* traces job: the first `tr_n` ready spans, encoded in tr_body */
	struct atel_buf tr_body;
	uint32_t tr_n;
	bool tr_pending;
	unsigned tr_attempt;
	uint64_t tr_next_ns;

	/* metrics job */
	struct atel_agg_snapshot *snap;
	uint32_t m_first, m_count;           /* families of the current chunk */
	struct atel_buf m_body;
	uint64_t m_items;
	bool m_pending;
	unsigned m_attempt;
	uint64_t m_next_ns, m_due_ns;

	/* stats (relaxed atomics; the span assembler keeps its own) */
	_Atomic uint64_t s_attempts[2], s_retries[2], s_acked[2], s_dropped[2];
	_Atomic uint64_t s_spans_acked, s_spans_rejected, s_points_rejected, s_spans_dropped, s_skipped,
		s_last_delay, s_metrics_exports;
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* ---- otlp_http.c ---------------------------------------------------------- */

/* The curl handle and headers of signal `which`. @return 0 or -errno, err set. */
int atel__otlp_http_setup(struct atel_otlp *o, int which, char *err, size_t errlen);

/* gzip (level 1) of len bytes at in into out. @return 0, -ENOMEM or -EIO. */
int atel__otlp_gzip(struct atel_buf *out, const uint8_t *in, size_t len);

/*
 * One attempt at posting body (items spans or data points) for signal
 * `which`; reports it (export row, health, log). On a retryable failure
 * schedules the next attempt (*attempt_no, *next_ns). final_pass: no
 * retries (shutting down).
 * @return 1 done (*acked: acknowledged, else dropped; *rejected: the
 * collector's partial-success count), 0 not done (retry scheduled, or kept
 * for the next start).
 */
int atel__otlp_attempt(struct atel_otlp *o, int which, const struct atel_buf *body, uint64_t items,
		       unsigned *attempt_no, uint64_t *next_ns, int64_t *rejected, bool *acked, bool final_pass);

/* ---- otlp_settings.c, otlp_cursor.c --------------------------------------- */

/* A deep copy of src. @return 0 or -ENOMEM. */
int atel__otlp_settings_copy(struct atel_otlp_settings *dst, const struct atel_otlp_settings *src);

/* memcmp order of two 24-byte span keys (trace id + span id), for qsort and bsearch. */
int atel__otlp_id_cmp(const void *a, const void *b);

#endif /* ATEL_OTLP_INTERNAL_H */
