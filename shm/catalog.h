/* SPDX-License-Identifier: MIT */
/*
 * catalog.h - the sixteen pre-defined metrics of docs/reference.md ("Pre-defined
 * Metrics"): name, type, label keys in REFERENCE's order, help text (its
 * description column) and, for histograms, the bucket upper bounds in seconds.
 *
 * Shared by libatel (pre-registration, the atel_track_* helpers) and the
 * exporters (HELP/TYPE lines). Names are REFERENCE's: a counter such as
 * agent_tokens_used has no `_total`; the Prometheus exporter appends it.
 * The table is constant data: thread-safe and async-signal-safe to read.
 */
#ifndef ATEL_CATALOG_H
#define ATEL_CATALOG_H

#include <stdint.h>

#include "atel_abi.h"

#define ATEL_CATALOG_LABELS_MAX 4u

/* Index of each metric in atel__catalog[] (docs/reference.md's table order). */
enum atel_catalog_index {
	ATEL_CAT_AGENT_EXECUTION_TOTAL = 0,
	ATEL_CAT_AGENT_EXECUTION_DURATION_SECONDS,
	ATEL_CAT_AGENT_TOKENS_USED,
	ATEL_CAT_TOOL_CALLS_TOTAL,
	ATEL_CAT_TOOL_CALL_DURATION_SECONDS,
	ATEL_CAT_TOOL_CALL_SUCCESS_TOTAL,
	ATEL_CAT_TOOL_CALL_FAILURE_TOTAL,
	ATEL_CAT_CONTEXT_WINDOW_UTILIZATION,
	ATEL_CAT_CONTEXT_WINDOW_SIZE_TOKENS,
	ATEL_CAT_CONTEXT_WINDOW_USED_TOKENS,
	ATEL_CAT_ERROR_RATE,
	ATEL_CAT_ERROR_TOTAL,
	ATEL_CAT_TASK_QUEUE_SIZE,
	ATEL_CAT_TASK_DURATION_SECONDS,
	ATEL_CAT_TASK_SUCCESS_TOTAL,
	ATEL_CAT_TASK_FAILURE_TOTAL,
	ATEL_CATALOG_COUNT
};

struct atel_catalog_metric {
	const char *name;
	uint8_t mtype;                                  /* enum atel_metric_type */
	uint8_t nlabels;
	const char *labels[ATEL_CATALOG_LABELS_MAX];    /* REFERENCE order; unused entries NULL */
	const char *help;                               /* REFERENCE's description */
	const char *unit;                               /* "seconds", "tokens", "%" or "" */
	uint32_t nbounds;                               /* histograms only, else 0 */
	const double *bounds;                           /* strictly increasing, seconds */
};

extern const struct atel_catalog_metric atel__catalog[ATEL_CATALOG_COUNT];

/*
 * Looks a metric up by its REFERENCE name (exact match; "agent_tokens_used",
 * not "agent_tokens_used_total"). @return the entry, or NULL if unknown.
 */
const struct atel_catalog_metric *atel__catalog_find(const char *name);

/*
 * Like atel__catalog_find, but also accepts the Prometheus exposition name of
 * a counter (a trailing "_total" appended by the exporter) and histogram
 * sample names (_bucket, _sum, _count). @return the entry, or NULL.
 */
const struct atel_catalog_metric *atel__catalog_find_exposed(const char *name);

#endif /* ATEL_CATALOG_H */
