/* SPDX-License-Identifier: MIT */
/*
 * query.h - the query engine behind `atel query|stats|metrics` and
 * examples/telemetry-dashboard.c: pure functions over arrays of points
 * (docs/reference.md "Querying Metrics": percentile, summarize, movingAverage,
 * detectAnomalies, calculateRate, aggregate), PromQL's histogram_quantile,
 * and the parsers for what users type (durations, times, label matchers).
 *
 * Conventions: every function is pure (no I/O, no globals), thread-safe,
 * never modifies its input, and accepts input in any timestamp order (it
 * works on a sorted copy when needed; ties keep their input order). NaN
 * values are skipped by statistics (and counted); +-Inf take part and the
 * results follow IEEE arithmetic. Functions return 0 or a negative errno
 * (-EINVAL bad argument, -ENOMEM) unless the prototype says otherwise.
 *
 * The exact formulas are in docs/querying.md; the tests in
 * tests/tools/test_query.c check them against naive reference code.
 */
#ifndef ATEL_QUERY_H
#define ATEL_QUERY_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct atel_qpoint {
	uint64_t ts_ns;   /* CLOCK_REALTIME ns */
	double v;
};

/* ---- percentiles and summaries ------------------------------------------ */

/*
 * Percentile of an ascending array by linear interpolation between the
 * closest ranks (Hyndman & Fan type 7, numpy's default):
 *   h = (n - 1) * q,  lo = floor(h),  result = x[lo] + (h - lo) * (x[lo+1] - x[lo])
 * (x[lo] when h is whole or x[lo] == x[lo+1]).
 * @return the percentile; NaN for n == 0 or q outside [0,1] or NaN.
 */
double atel_q_percentile_sorted(const double *sorted, size_t n, double q);

/*
 * The same over unsorted values (NaN values skipped): selects order
 * statistics on a private copy in O(n) expected time.
 * @return 0 and *out (NaN when no value is left), or -EINVAL/-ENOMEM.
 */
int atel_q_percentile(const double *v, size_t n, double q, double *out);

struct atel_qsummary {
	uint64_t count;      /* values used (NaN excluded) */
	uint64_t nan;        /* NaN values skipped */
	double sum, min, max, avg;
	double stddev;       /* population standard deviation (divide by count) */
	double p50, p95, p99;
};

/* Summary of values (count, min, max, avg, stddev, p50, p95, p99). With no
 * value, count is 0 and every statistic is NaN. @return 0 or -EINVAL/-ENOMEM. */
int atel_q_summarize(const double *v, size_t n, struct atel_qsummary *out);

/*
 * PromQL histogram_quantile(q, buckets) on one histogram: `upper` holds the
 * nb bucket upper bounds in any order, the last (or any) one may be +Inf;
 * `cumulative` the matching cumulative counts. Same algorithm as Prometheus
 * (promql/quantile.go bucketQuantile): sort by bound; NaN unless a +Inf
 * bucket exists; merge equal bounds; force monotonic counts; NaN for fewer
 * than 2 buckets or 0 observations; rank = q * total; the first bucket whose
 * count >= rank is interpolated linearly from its lower bound (0 for the
 * first bucket unless its upper bound is <= 0, then that bound); a rank in
 * the +Inf bucket returns the highest finite bound.
 * q < 0 gives -Inf, q > 1 +Inf, NaN q NaN.
 * @return the estimate (no error case).
 */
double atel_q_histogram_quantile(double q, const double *upper, const double *cumulative, size_t nb);

/* Per-bucket (non-cumulative) counts of values over finite ascending
 * `bounds` (nbounds of them; counts has nbounds + 1 slots, the last +Inf).
 * A value v falls in the first bucket with v <= bound (Prometheus `le`). */
void atel_q_bucketize(const double *v, size_t n, const double *bounds, size_t nbounds, uint64_t *counts);

/* ---- time series functions ---------------------------------------------- */

/*
 * movingAverage(window): out[i] (same count as the input, ascending ts) is
 * the mean of the last `window` points up to and including point i (fewer at
 * the start). NaN points keep their place, output NaN and do not enter any
 * mean; a window holding only NaN averages to NaN. window >= 1.
 * out must hold n points. @return 0 or -EINVAL/-ENOMEM.
 */
int atel_q_moving_average(const struct atel_qpoint *in, size_t n, size_t window, struct atel_qpoint *out);

struct atel_qanomaly {
	uint64_t ts_ns;
	double v;
	double mean, stddev; /* of the trailing window (population) */
	double score;        /* (v - mean) / stddev; NaN when not computable */
	bool anomaly;        /* |score| > sigma */
};

/*
 * detectAnomalies(sigma): rolling z-score. For point i (ascending ts) the
 * reference is the up to `window` finite points before it (point i itself
 * excluded). score = (v - mean) / stddev. Fewer than 2 reference points, or
 * v NaN: score NaN, not an anomaly. stddev 0: score 0 if v == mean, else
 * +-Inf (an anomaly). A +-Inf value scores +-Inf (an anomaly when the
 * window has 2+ points) and, like NaN, never enters later windows.
 * out must hold n entries. @return 0 or -EINVAL/-ENOMEM.
 */
int atel_q_detect_anomalies(const struct atel_qpoint *in, size_t n, size_t window, double sigma,
			    struct atel_qanomaly *out);

/*
 * Prometheus' extrapolated rate()/increase()/delta() over the samples of
 * one range [range_start, range_end] (ascending ts, NaN-free, n >= 2),
 * exactly promql/functions.go extrapolatedRate: resets (a drop in value)
 * add the previous value when is_counter; extrapolation to each boundary
 * when the gap is < 1.1 x the average sample spacing, else by half a
 * spacing; a counter is not extrapolated below zero. per_second divides by
 * the range length. @return the value; NaN if n < 2 or the samples span 0 ns.
 */
double atel_q_extrapolated_rate(const struct atel_qpoint *s, size_t n, uint64_t range_start,
				uint64_t range_end, bool is_counter, bool per_second);

/*
 * calculateRate(window) for a cumulative counter: for every input point at
 * time t with at least two points in (t - window, t], the per-second rate as
 * Prometheus' rate(x[window]) evaluated at t (resets and extrapolation as
 * above; the range is left-open like Prometheus 3). out must hold n points;
 * *nout gets how many were written. @return 0 or -EINVAL/-ENOMEM.
 */
int atel_q_calculate_rate(const struct atel_qpoint *in, size_t n, uint64_t window_ns, struct atel_qpoint *out,
			  size_t *nout);

enum atel_qagg {
	ATEL_QAGG_NONE = 0,
	ATEL_QAGG_AVG,
	ATEL_QAGG_SUM,
	ATEL_QAGG_MIN,
	ATEL_QAGG_MAX,
	ATEL_QAGG_COUNT,
	ATEL_QAGG_P50,
	ATEL_QAGG_P95,
	ATEL_QAGG_P99,
	ATEL_QAGG_RATE,
};

/* "avg" ... "rate" to the enum. @return 0 or -EINVAL. */
int atel_q_agg_parse(const char *s, enum atel_qagg *out);
const char *atel_q_agg_name(enum atel_qagg a);

/*
 * aggregate(interval): groups points into buckets [k*interval, (k+1)*interval)
 * aligned to the Unix epoch and reduces each non-empty bucket with `agg`
 * (NaN values skipped; a bucket of only NaN yields NaN, count yields 0).
 * out[j].ts_ns is the bucket start; buckets ascend. For ATEL_QAGG_RATE the
 * input must be a cumulative series and each bucket gives
 * atel_q_extrapolated_rate over its own samples and bounds (NaN with fewer
 * than two samples). out must hold n points (there are at most n buckets).
 * @return 0 or -EINVAL/-ENOMEM.
 */
int atel_q_aggregate(const struct atel_qpoint *in, size_t n, uint64_t interval_ns, enum atel_qagg agg,
		     bool is_counter, struct atel_qpoint *out, size_t *nout);

/* Reduces plain values with agg (not RATE). NaN skipped. @return the value. */
double atel_q_reduce(const double *v, size_t n, enum atel_qagg agg);

/* Sorts points by ts (stable). @return 0 or -ENOMEM. */
int atel_q_sort_points(struct atel_qpoint *p, size_t n);

/* ---- user input --------------------------------------------------------- */

/*
 * Durations: one or more <number><unit> groups, Prometheus style, units
 * ns us ms s m h d w y (e.g. "250ms", "5m", "1h30m", "1.5s"); a bare number
 * means seconds. @return 0 with *ns, or -EINVAL (err says why) or -ERANGE.
 */
int atel_q_parse_duration(const char *s, uint64_t *ns, char *err, size_t errlen);

/*
 * Times: "now", "now-1h" / "-1h" (relative to now_ns), Unix seconds with
 * optional fraction ("1700000000.5"), or RFC 3339 ("2026-11-28T21:00:00Z",
 * offsets and fractional seconds accepted). @return 0 or -EINVAL.
 */
int atel_q_parse_time(const char *s, uint64_t now_ns, uint64_t *ns, char *err, size_t errlen);

enum atel_qmatch_op { ATEL_QM_EQ = 1, ATEL_QM_NE, ATEL_QM_RE, ATEL_QM_NRE };

struct atel_qmatcher {
	char *key;
	char *value;
	enum atel_qmatch_op op;
	bool compiled;
	regex_t re;          /* anchored "^(?:value)$" as POSIX ERE */
};

/* A metric name (optional) and label matchers. */
struct atel_qselector {
	char *metric;                /* NULL: any */
	struct atel_qmatcher *m;
	size_t n;
};

/*
 * Parses a selector: `name`, `name{k="v",k2!~"re"}`, `{k=v}` or a bare
 * matcher list `k=v,k2=~re` (the --labels form). Values may be quoted with
 * "..." (backslash escapes \" \\ \n) or bare (up to the next comma). Label
 * names [a-zA-Z_][a-zA-Z0-9_]*; metric names also allow ':'. Regexes are
 * POSIX extended, anchored at both ends as in PromQL. Appends to *sel
 * (initialise it to {0}). @return 0, or -EINVAL with err saying what and
 * where ("column 7: expected =, !=, =~ or !~").
 */
int atel_q_selector_parse(const char *text, struct atel_qselector *sel, char *err, size_t errlen);

/* PromQL semantics: a missing label has value "". keys/values as in a
 * series (any order). @return true if every matcher holds. */
bool atel_q_selector_match(const struct atel_qselector *sel, const char *const *keys,
			   const char *const *values, size_t nlabels);

/* NULL-safe. Leaves *sel zeroed. */
void atel_q_selector_free(struct atel_qselector *sel);

/* ---- formatting for people ---------------------------------------------- */

/* "1.23 ms", "4.5 s", "2m03s"... of a duration in ns into buf. @return buf. */
const char *atel_q_fmt_duration(uint64_t ns, char *buf, size_t len);
/* "2026-12-03T07:58:00Z", or "...:00.250Z" when the time has milliseconds, of a time in ns (UTC). @return buf. */
const char *atel_q_fmt_time(uint64_t ns, char *buf, size_t len);
/* "999", "1.2K", "3.4M", "5.6G" (SI); non-integers keep 3 significant digits. @return buf. */
const char *atel_q_fmt_count(double v, char *buf, size_t len);
/* A metric value with the metric's unit: seconds as duration, "%", tokens as count, "/s" (rates)
 * as a count per second. @return buf. */
const char *atel_q_fmt_value(double v, const char *unit, char *buf, size_t len);

#endif /* ATEL_QUERY_H */
