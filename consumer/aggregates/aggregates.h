/* SPDX-License-Identifier: MIT */
/*
 * aggregates.h - the in-memory metric state every exporter reads: per series
 * the counter total, gauge value, or histogram buckets/sum/count, fed by
 * decoded SAMPLE events from the log. Thread-safe: one thread applies events,
 * any thread takes snapshots. Counters stay monotonic across ateld restarts:
 * the state is checkpointed with its log position and reloaded.
 */
#ifndef ATEL_AGGREGATES_H
#define ATEL_AGGREGATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "logread.h"

struct atel_agg_series {
	uint64_t key_hash;
	uint32_t nlabels;
	const char **keys;               /* sorted by key */
	const char **values;
	bool overflow;                   /* the cardinality guard's fold-in series */
	double value;                    /* counter total or gauge value */
	uint64_t count;                  /* histogram: observations */
	double sum;                      /* histogram: sum of observations */
	uint32_t nbounds;
	const double *bounds;            /* histogram upper bounds (without +Inf) */
	const uint64_t *buckets;         /* nbounds + 1 per-bucket (NOT cumulative) counts; last is +Inf */
	uint64_t start_ns;               /* first sample seen (cumulative temporality start) */
	uint64_t last_ns;                /* last sample */
};

struct atel_agg_family {
	const char *name;                /* as recorded (no _total appended) */
	const char *help;                /* catalog help text or a generic one */
	uint8_t mtype;                   /* enum atel_metric_type */
	uint32_t nseries;
	struct atel_agg_series *series;  /* sorted by labels */
};

struct atel_agg_snapshot {
	uint64_t ts_ns;
	uint32_t nfamilies;
	struct atel_agg_family *families; /* sorted by name */
};

struct atel_agg;

/* series_limit: per metric name; excess series fold into one overflow series
 * (labels {atel_overflow="true"}) and count in *overflow_counter (may be NULL). */
int atel__agg_new(struct atel_agg **out, uint32_t series_limit);
void atel__agg_free(struct atel_agg *a);

/* Applies one event (SAMPLE or HISTFOLD; others are ignored). A metric name seen with a
 * different type than before is counted as a type clash and ignored. */
void atel__agg_apply(struct atel_agg *a, const struct atel_event *ev);

/* A consistent copy; free with atel__agg_snapshot_free. @return 0 or -ENOMEM. */
int atel__agg_snapshot(struct atel_agg *a, struct atel_agg_snapshot **out);
void atel__agg_snapshot_free(struct atel_agg_snapshot *s);

/* Series folded by the cardinality guard, and type clashes, so far. */
uint64_t atel__agg_overflow(const struct atel_agg *a);
uint64_t atel__agg_type_clashes(const struct atel_agg *a);
/* Samples rejected as invalid for their type (negative/NaN/Inf counter
 * increments, NaN histogram observations), or of a new metric name beyond
 * the 65536 names held. */
uint64_t atel__agg_rejected(const struct atel_agg *a);

/*
 * Series lifecycle (prometheus.series_ttl): removes every series (and the
 * overflow series) whose last sample is older than now_ns - ttl_ns, and
 * families left without series, so /metrics, JSON and OTLP hold live series
 * only and the per-name series_limit is not used up by exited agents. A
 * series that comes back later starts again from its next sample (a counter
 * reset for rate(), with a new start time). ttl_ns 0: nothing expires.
 * @return the number of series removed (also added to atel__agg_expired).
 */
uint64_t atel__agg_expire(struct atel_agg *a, uint64_t now_ns, uint64_t ttl_ns);
/* Series removed by atel__agg_expire so far (kept across restarts by the checkpoint). */
uint64_t atel__agg_expired(const struct atel_agg *a);

/* Checkpoint: state plus the log position it reflects, written atomically
 * (tmp, fsync, rename). load returns -ENOENT if there is none. */
int atel__agg_save(struct atel_agg *a, const char *path, const struct atel_log_pos *pos);
int atel__agg_load(struct atel_agg *a, const char *path, struct atel_log_pos *pos);

#endif /* ATEL_AGGREGATES_H */
