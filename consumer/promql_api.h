/* SPDX-License-Identifier: MIT */
/*
 * promql_api.h - Prometheus' HTTP query API on ateld's HTTP server (issue
 * 16): /api/v1/query, query_range, series, labels, label/<name>/values,
 * metadata and status/buildinfo, answered by the PromQL engine
 * (tools/promql) over the segment log (consumer/log/logprom.h). The
 * envelope, error types, HTTP codes and parameter forms are Prometheus':
 * 400 bad_data, 422 execution, 503 timeout, 500 internal, 404 for an unknown
 * endpoint. Every request is bounded by the limits below; it runs on the
 * HTTP server's thread (exporters/http.c, opts.api), one at a time.
 */
#ifndef ATEL_PROMQL_API_H
#define ATEL_PROMQL_API_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct atel_logprom_cache;

struct atel_promql_api {
	const char *segments_dir;    /* <data_dir>/segments (a missing directory is an empty log) */
	uint32_t timeout_ms;         /* per request (a smaller `timeout` parameter wins); 0: 10000 */
	uint64_t max_samples;        /* engine's max samples in memory and samples loaded; 0: 50,000,000 */
	uint64_t max_series;         /* series taken from the log per request; 0: 100,000 */
	int64_t resolution_ms;       /* one sample per series per this many ms (logprom.h); 0: 1 */
	int64_t carry_ms;            /* an idle series repeats its last value this often (logprom.h); 0: 60000 */
	int64_t now_ms;              /* tests: the "now" of time defaults and the carry limit; 0: the clock */
	struct atel_promql_self *self; /* internal: ateld's atel_* self-metrics history (api_tick); NULL at first */
	struct atel_logprom_cache *cache; /* internal: series state at file boundaries (logprom.h); NULL at first */
	_Atomic uint64_t *files_skipped; /* if set: += segment files a query did not read thanks to the cache */
};

/*
 * The opts.api_tick hook: keeps the atel_* lines of a /metrics body, stamped
 * now, for one hour (at most 1024 snapshots), so that the self-metrics, which
 * are not in the log, answer queries too (the dashboard's ateld panels).
 * Server thread only, like the handler.
 */
void atel__promql_api_tick(void *arg, const char *metrics_body, size_t len);

/* Frees the self-metrics history and the query cache. NULL-safe. */
void atel__promql_api_fini(struct atel_promql_api *a);

/*
 * The opts.api hook of exporters/http.h: arg is a struct atel_promql_api.
 * @return the HTTP status; out holds the JSON body.
 */
int atel__promql_api_handle(void *arg, const char *method, const char *target, size_t target_len, const char *body,
			    size_t body_len, struct atel_buf *out);

/* Prometheus' parseTime (Unix seconds with fraction, or RFC 3339) into ms.
 * @return 0 or -EINVAL. */
int atel__promql_api_parse_time(const char *s, int64_t *ms);

/* Prometheus' parseDuration (seconds with fraction, or 1h30m style) into ms.
 * @return 0 or -EINVAL. */
int atel__promql_api_parse_duration(const char *s, int64_t *ms);

#endif /* ATEL_PROMQL_API_H */
