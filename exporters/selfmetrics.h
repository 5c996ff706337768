/* SPDX-License-Identifier: MIT */
/*
 * selfmetrics.h - the atel_* self-metrics of ateld's /metrics: what the
 * sidecar reports about itself, from its shared state (consumer/state).
 */
#ifndef ATEL_SELFMETRICS_H
#define ATEL_SELFMETRICS_H

#include <stdint.h>

#include "http.h"
#include "prometheus.h"
#include "remote_write.h"
#include "state.h"

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
	uint64_t agg_series_expired;         /* series removed by prometheus.series_ttl */
	uint64_t agg_events_applied;         /* SAMPLE events the aggregator applied */
	const uint64_t *http_responses;      /* ATEL_HTTP_CODES_N counters, same order as atel__http_codes */
	uint64_t http_conns_rejected;        /* closed with 503 at the connection cap */
	uint64_t http_timeouts;              /* slow clients cut off */
	const struct atel_rw_counts *remote_write; /* NULL: remote write is off */
	const uint64_t *http_scrapes;        /* ATEL_HTTP_VARIANTS counters (atel_http_scrapes_total{variant}); NULL: none */
};

/* Writes the self-metrics x (a struct atel_prom_self) describes: the
 * `first` callback of atel__prom_encode. */
void atel__prom_self(void *arg, struct atel_prom_doc *doc, uint32_t aggregate_series);

#endif /* ATEL_SELFMETRICS_H */
