/* SPDX-License-Identifier: MIT */
/*
 * logprom.h - the segment log as the series Prometheus would have scraped
 * from ateld's /metrics: the storage side of the PromQL query API (ateld's
 * /api/v1 endpoints, `atel query 'PromQL'`). It knows nothing of PromQL; the caller
 * maps its two callbacks onto the engine's sink (tools/promql/promql.h).
 *
 * Exposition (as exporters/encode/prometheus.c names things):
 *   counter    NAME, or NAME_total when NAME lacks it: the cumulative value,
 *              increments and folded records summed from the oldest retained
 *              file (a "set" replaces it if not lower); invalid increments
 *              (negative, NaN, Inf) are skipped as the aggregates model does
 *   gauge      NAME: the value after each sample (set, or add to the last)
 *   histogram  NAME_bucket{le="b"} (cumulative, "+Inf" last), NAME_sum,
 *              NAME_count; HISTFOLD records add their buckets
 * Names and label names are sanitised like the exposition's (a series label
 * "le" of a histogram becomes "exported_le").
 *
 * Timing: a sample's time is its event's (ms). Within one resolution window
 * (resolution_ms) a series' events merge into one sample, at the time of the
 * window's last event. A series that has no event for carry_ms repeats its
 * last value every carry_ms up to end_ms, as a scrape of /metrics would keep
 * seeing it (ateld keeps every series in /metrics): without this a counter
 * that stopped would vanish from rate() after the 5 minute lookback, where
 * Prometheus would show 0.
 *
 * Single-threaded; one call scans the whole log once (or, with a cache, the
 * files from the last cached boundary before mint_ms on).
 */
#ifndef ATEL_LOGPROM_H
#define ATEL_LOGPROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct atel_logprom_opts {
	const char *segments_dir;    /* <data_dir>/segments */
	const char *single_file;     /* or one .atseg file */
	int64_t mint_ms, maxt_ms;    /* samples delivered: [mint_ms, maxt_ms] (earlier events still count) */
	int64_t end_ms;              /* carry-forward limit (0: the last event's time in the log) */
	int64_t carry_ms;            /* 0: 60000; <0: no carry-forward */
	int64_t resolution_ms;       /* 0 or 1: one sample per ms */
	const char *name_hint;       /* exposed metric name wanted, or NULL for all */
	/*
	 * A new exposed series: __name__ first, then its labels in the log's
	 * order, "le" last for buckets (valid during the call). @return 1 and *id to receive its samples,
	 * 0 to skip it, or a negative errno that ends the scan with that value.
	 */
	int (*series)(void *arg, const char *const *keys, const char *const *values, size_t n, uint32_t *id);
	/* A sample, increasing time per id. @return 0, 1 for no more samples of
	 * this id (e.g. presence is all that matters), or a negative errno (ends the scan). */
	int (*sample)(void *arg, uint32_t id, int64_t t_ms, double v);
	/* Called every 4096 events; a negative value ends the scan with that value. May be NULL. */
	int (*interrupt)(void *arg);
	/* Metric families seen (exposed base name, 1 counter 2 gauge 3 histogram), once each. May be NULL. */
	void (*family)(void *arg, const char *name, int mtype);
	void *arg;
	/* Optional (segments_dir only): the series state at earlier file
	 * boundaries, so that a later query whose mint_ms is after them reads only
	 * the files from there on, with the same answer (see below). NULL: scan all. */
	struct atel_logprom_cache *cache;
};

struct atel_logprom_stats {
	uint64_t events, samples, series, corrupt_frames;
	int64_t last_ms;             /* time of the newest event (0: none) */
	uint64_t files_skipped;      /* segment files not read thanks to the cache */
	uint64_t resume_seq;         /* first file read after a cache restore (0: read from the oldest) */
};

/*
 * The query cost cache. Counters are cumulative from the oldest retained
 * file, so a query over a recent range cannot just skip older files: it
 * needs every series' state where its reading starts. A scan with a cache
 * tracks the state of every series (not only the wanted ones) and, at each
 * file boundary that is entirely before its mint_ms (every event time seen so
 * far < mint_ms), keeps a copy of that state; the latest such copy is stored
 * in the cache at the end of the scan, even a scan that a callback or the
 * interrupt ended (at most 8 per cache, thinned evenly).
 * A later scan with the same resolution_ms and carry_ms and a mint_ms after a
 * stored copy's last event time restores it (series offered in the same
 * order, same cumulative values, same carry grid) and starts reading at the
 * next file: the answer is identical to a full scan, by construction (before
 * mint_ms no sample is delivered, so the state evolution does not depend on
 * the query). Sealed files never change; a copy is dropped when the oldest
 * file or the count of files before it changes (retention). Not thread-safe:
 * one cache per thread of scans.
 */
struct atel_logprom_cache;
struct atel_logprom_cache *atel__logprom_cache_new(void);
void atel__logprom_cache_free(struct atel_logprom_cache *c); /* NULL-safe */
/* Totals over the cache's life: files skipped, scans that restored a copy. */
void atel__logprom_cache_stats(const struct atel_logprom_cache *c, uint64_t *files_skipped, uint64_t *restores);

/*
 * Scans the log and feeds the callbacks. st may be NULL.
 * @return 0, a callback's negative value, or -errno (err set): -ENOENT no log.
 */
int atel__logprom_scan(const struct atel_logprom_opts *o, struct atel_logprom_stats *st, char *err, size_t errlen);

#endif /* ATEL_LOGPROM_H */
