/* SPDX-License-Identifier: MIT */
/*
 * exporters.h - the exporters room (exporters/): the threads that turn the
 * segment log into /metrics, JSON files and OTLP, started with explicit
 * options (ateld fills them from its configuration in consumer/daemon.c;
 * tests and the Prometheus integration harness fill them themselves).
 * They read the log and the aggregates model, and report into ateld's
 * shared state (consumer/state/state.h); nothing here reads ateld's
 * configuration.
 */
#ifndef ATEL_EXPORTERS_H
#define ATEL_EXPORTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregates.h"
#include "http.h"
#include "logread.h"
#include "otlp_settings.h"
#include "remote_write.h"
#include "state.h"

struct atel_exporters;

struct atel_exporters_opts {
	const char *segments_dir;     /* the log to follow; NULL: no follower */
	const char *state_dir;        /* aggregates checkpoint dir (created); NULL: none */
	uint32_t series_limit;        /* per metric; 0: unlimited */
	uint32_t series_ttl_s;        /* series without a sample this long leave the aggregates
				       * (atel__agg_expire); 0: never */
	uint32_t export_interval_ms;  /* JSON period; 15000 if 0 */
	uint32_t poll_ms;             /* follower idle poll; 50 if 0 */
	uint32_t checkpoint_ms;       /* checkpoint period; 5000 if 0 */
	bool prometheus;              /* start the HTTP server with http below */
	struct atel_http_opts http;   /* metrics/arg are set by the exporters */
	const char *json_dir;         /* NULL: no JSON files */
	uint64_t json_rotate_ms;
	uint32_t json_max_files;
	const struct atel_otlp_config *otlp; /* start the OTLP exporter with this (and the
					      * OTEL_* environment); needs d. NULL: no OTLP */
	const struct atel_rw_opts *remote_write; /* start Prometheus remote write with this (its
					      * segments_dir, state_dir, d, series_limit and
					      * series_ttl_s come from here); NULL: off */
	struct atel_log_pos start;    /* internal: resume point (from the checkpoint) */
};

/* d may be NULL (no health, rows or self-metrics). @return 0 or -errno, err set. */
int atel__exporters_start_opts(struct atel_exporters **out, struct atel_daemon *d,
			       const struct atel_exporters_opts *o, char *err, size_t errlen);

/* Final export pass (bounded), stops threads, persists cursors. NULL-safe. */
void atel__exporters_stop(struct atel_exporters *ex);

/* The bound /metrics port (0 if the server is off). */
uint16_t atel__exporters_http_port(const struct atel_exporters *ex);

/* Remote write's counts. @return false if remote write is off. Thread-safe. */
bool atel__exporters_rw_counts(const struct atel_exporters *ex, struct atel_rw_counts *out);

/* Events the follower has read from the log so far. Thread-safe. */
uint64_t atel__exporters_events_read(const struct atel_exporters *ex);

/* The nice value of the threads that follow the log (the drain runs at 0, the indexer at 10). */
#define ATEL_FOLLOWER_NICE 5

/* Lowers the calling thread to ATEL_FOLLOWER_NICE (log followers; no privilege needed). */
void atel__exporters_lower_priority(void);

#endif /* ATEL_EXPORTERS_H */
