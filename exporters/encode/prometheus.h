/* SPDX-License-Identifier: MIT */
/*
 * prometheus.h - the Prometheus text exposition format 0.0.4 encoder.
 *
 * Output rules (checked by tests/exporters and by `promtool check metrics`):
 * one HELP and one TYPE line per family before its samples; a counter whose
 * name lacks `_total` is exposed with it appended, and in format 0.0.4 the
 * HELP/TYPE lines name the exposed sample name (agent_tokens_used_total),
 * because the text parser matches a counter's samples to its TYPE line by
 * exact name; histograms as cumulative `_bucket{le=...}` lines ending with
 * `le="+Inf"` equal to `_count`, then `_sum` and `_count`; no timestamps; a
 * final newline. Names are sanitised to [a-zA-Z_:][a-zA-Z0-9_:]* (labels
 * without ':'); a family whose exposed name is taken by an earlier one is
 * skipped (and counted) rather than emitted twice.
 */
#ifndef ATEL_PROMETHEUS_H
#define ATEL_PROMETHEUS_H

#include <stdint.h>

#include "aggregates.h"
#include "buf.h"

#define ATEL_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct atel_daemon;

/* HTTP status codes the server counts per response (atel_http_responses_total). */
#define ATEL_HTTP_CODES_N 13
extern const int atel__http_codes[ATEL_HTTP_CODES_N];

/*
 * Everything about the sidecar itself that /metrics reports (the atel_*
 * families). All fields optional: d NULL leaves out the daemon's statistics
 * (tests, bench), http_responses NULL leaves out the HTTP families.
 */
struct atel_prom_self {
	const struct atel_daemon *d;
	uint64_t agg_type_clashes;
	uint64_t agg_rejected;
	uint64_t agg_series_overflow;
	uint64_t agg_events_applied;         /* SAMPLE events the aggregator applied */
	const uint64_t *http_responses;      /* ATEL_HTTP_CODES_N counters, same order as atel__http_codes */
	uint64_t http_conns_rejected;        /* closed with 503 at the connection cap */
	uint64_t http_timeouts;              /* slow clients cut off */
};

/*
 * Appends the exposition of snap (may be NULL) and self (may be NULL) to out.
 * self families come first, so a producer cannot shadow them.
 * *skipped (may be NULL) receives the number of families left out because
 * their exposed name clashed with an earlier one.
 * @return 0 or -ENOMEM. Thread-safe (no shared state).
 */
int atel__prom_encode(struct atel_buf *out, const struct atel_agg_snapshot *snap,
		      const struct atel_prom_self *self, uint32_t *skipped);

/* Escapes per the text format into out: HELP text (\\ and \n) when
 * label_value is false, label values (\\, \", \n) when true. Invalid UTF-8
 * bytes become U+FFFD (Prometheus rejects invalid UTF-8). */
void atel__prom_escape(struct atel_buf *out, const char *s, bool label_value);

#endif /* ATEL_PROMETHEUS_H */
