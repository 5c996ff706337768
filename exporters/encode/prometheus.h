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

#include <stdbool.h>
#include <stdint.h>

#include "aggregates.h"
#include "buf.h"

#define ATEL_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define ATEL_OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/*
 * The two text formats. OpenMetrics 1.0.0 differs from 0.0.4 in: a counter
 * family is named without `_total` in HELP/TYPE (its samples keep it), and
 * counters and histograms get a `_created` sample (the series' first sample
 * time, seconds since the epoch); HELP escapes `"` too; `untyped` is
 * `unknown`; the document ends with `# EOF`. `le` values are written as in
 * 0.0.4 (`1`, not the canonical `1.0`), so that both formats, the query API
 * and remote write name a bucket's series alike in Prometheus 2.x, which
 * keeps label values verbatim.
 */
enum atel_prom_format {
	ATEL_PROM_TEXT = 0,           /* text/plain; version=0.0.4 */
	ATEL_PROM_OPENMETRICS = 1,    /* application/openmetrics-text; version=1.0.0 */
};

/* The document atel__prom_encode is writing, as the `first` callback sees it. */
struct atel_prom_doc;

/*
 * Appends the exposition of snap (may be NULL) to out. first (may be NULL)
 * writes its own families before the aggregates' (ateld's self-metrics,
 * exporters/selfmetrics.c), with atel__prom_family and atel__prom_sample, so
 * that a producer cannot shadow them; nseries is the number of series in
 * snap. *skipped (may be NULL) receives the number of families left out
 * because their exposed name clashed with an earlier one.
 * @return 0 or -ENOMEM. Thread-safe (no shared state).
 */
int atel__prom_encode(struct atel_buf *out, const struct atel_agg_snapshot *snap,
		      void (*first)(void *arg, struct atel_prom_doc *doc, uint32_t nseries), void *arg,
		      uint32_t *skipped);

/* atel__prom_encode in either format. */
int atel__prom_encode_format(struct atel_buf *out, const struct atel_agg_snapshot *snap, enum atel_prom_format fmt,
			     void (*first)(void *arg, struct atel_prom_doc *doc, uint32_t nseries), void *arg,
			     uint32_t *skipped);

/* Starts the family `name` (# HELP and # TYPE lines; name is the exposed
 * sample name, a counter's with `_total`, which OpenMetrics' header lines
 * leave out) unless the document has one of that exposed name already. @return true if started: write its
 * samples next. */
bool atel__prom_family(struct atel_prom_doc *doc, const char *name, const char *type, const char *help);

/* One sample line: `name v`, or `name{key="value"} v` (value escaped). */
void atel__prom_sample(struct atel_prom_doc *doc, const char *name, const char *key, const char *value, double v);

/* A family of one unlabelled sample. */
void atel__prom_one(struct atel_prom_doc *doc, const char *name, const char *type, const char *help, double v);

/* Appends s sanitised as a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or, when
 * label is true, a label name (no ':', no leading "__"): what /metrics
 * exposes, so that remote write names series the same way. */
void atel__prom_name(struct atel_buf *b, const char *s, bool label);

/* Escapes per the text format into out: HELP text (\\ and \n) when
 * label_value is false, label values (\\, \", \n) when true. Invalid UTF-8
 * bytes become U+FFFD (Prometheus rejects invalid UTF-8). */
void atel__prom_escape(struct atel_buf *out, const char *s, bool label_value);

#endif /* ATEL_PROMETHEUS_H */
