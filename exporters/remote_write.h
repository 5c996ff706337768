/* SPDX-License-Identifier: MIT */
/*
 * remote_write.h - Prometheus remote write 1.0 from the log (docs/remote-write.md).
 *
 * One thread follows the segment log with its own cursor and its own
 * aggregates model, and every `interval_ms` in which samples arrived turns
 * the model into a batch: every series' cumulative value (what a scrape
 * would have seen) at one timestamp, the newest sample time read from the
 * log (strictly increasing from batch to batch). The batch is made durable
 * (state/remote_write.outbox) before the model and log position are
 * checkpointed (state/remote_write.ckpt), and is sent, snappy-compressed,
 * until the receiver accepts it: a restart or kill -9 at any point resends
 * the same batch or re-derives an unsent one, and a batch resent after it
 * was stored carries the same samples at the same timestamps, which
 * Prometheus stores once. 5xx, 429 and network errors are retried with
 * exponential backoff (honouring Retry-After); any other 4xx drops the
 * batch, counted. Nothing here touches the drain.
 */
#ifndef ATEL_REMOTE_WRITE_H
#define ATEL_REMOTE_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logread.h"
#include "otlp_settings.h" /* struct atel_kv */
#include "state.h"

struct atel_rw_opts {
	const char *url;              /* http(s)://host:port/api/v1/write (required) */
	const char *bearer_token;     /* NULL: none */
	const struct atel_kv *headers; /* extra request headers (values secret, never logged); the
					* configuration refused the ones set here (config.c) */
	uint32_t nheaders;
	const char *job;              /* label on every series; "atel" if NULL */
	const char *instance;         /* label on every series; the host name if NULL */
	uint32_t batch;               /* samples per request; 2000 if 0 */
	uint32_t interval_ms;         /* at most one batch per interval; 1000 if 0 */
	uint32_t timeout_ms;          /* per request; 10000 if 0 */
	uint32_t backoff_max_ms;      /* retry delay cap; 30000 if 0 */
	uint32_t series_limit;        /* as prometheus.series_limit; 0: unlimited */
	uint32_t series_ttl_s;        /* as prometheus.series_ttl, on log time; 0: never */
	const char *segments_dir;     /* the log (required) */
	const char *state_dir;        /* cursor, model and outbox (required, created) */
	struct atel_daemon *d;        /* logging; may be NULL */
};

/* Counters since start (atel_remote_write_* self-metrics). */
struct atel_rw_counts {
	uint64_t samples_sent;        /* accepted by the receiver (2xx) */
	uint64_t samples_dropped;     /* in requests refused with a 4xx other than 429 */
	uint64_t requests_ok, requests_failed, requests_dropped; /* failed: retried later */
	uint64_t batches;             /* batches made */
	uint64_t pending_samples;     /* in the batch being delivered */
	int64_t last_sent_ms;         /* sample timestamp of the last batch delivered, 0: none */
};

struct atel_rw;

/* Starts the thread. @return 0 or -errno with err set. */
int atel__rw_start(struct atel_rw **out, const struct atel_rw_opts *o, char *err, size_t errlen);

/* Makes a last batch of what was read, tries to deliver it (a few seconds at
 * most; otherwise it stays in the outbox for the next start), stops. NULL-safe. */
void atel__rw_stop(struct atel_rw *w);

/* Thread-safe snapshot of the counters; NULL w gives zeros. */
void atel__rw_counts(const struct atel_rw *w, struct atel_rw_counts *out);

/* The outbox file (remote_write.c has its layout), parsed; internal, for
 * the loader and the fuzz target. */
struct atel_rw_outbox {
	bool pending;
	struct atel_log_pos pos;
	int64_t batch_ms;
	uint32_t nreq;
	struct {
		uint32_t nsamples;
		size_t len;
		const char *data;     /* points into the parsed bytes */
	} *req;
};

/* Parses outbox bytes (untrusted: a file on disk, CRC-checked).
 * @return 0 with *ob filled (free with atel__rw_outbox_free), -EINVAL, -ENOMEM. */
int atel__rw_outbox_parse(const char *data, size_t len, struct atel_rw_outbox *ob);
void atel__rw_outbox_free(struct atel_rw_outbox *ob);

#endif /* ATEL_REMOTE_WRITE_H */
