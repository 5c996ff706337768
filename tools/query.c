/* SPDX-License-Identifier: MIT */
/*
 * query.c - the pure query functions of query.h. Formulas: docs/querying.md.
 */
#include "query.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* ---- order statistics ---------------------------------------------------- */

static inline void dswap(double *a, double *b)
{
	double t = *a;
	*a = *b;
	*b = t;
}

/* Rearranges a[0..n) so that a[k] is the k-th smallest, everything before it
 * <= a[k] and everything after >= a[k] (Hoare's selection, median of three;
 * NaN-free input). Hand-written: libc has no nth_element and sorting 1M
 * values for three percentiles costs 10x more. */
static void select_kth(double *a, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;
	while (hi > lo) {
		if (hi - lo < 16) { /* insertion sort the small tail */
			for (size_t i = lo + 1; i <= hi; i++) {
				double x = a[i];
				size_t j = i;
				while (j > lo && a[j - 1] > x) {
					a[j] = a[j - 1];
					j--;
				}
				a[j] = x;
			}
			return;
		}
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] < a[lo])
			dswap(&a[mid], &a[lo]);
		if (a[hi] < a[lo])
			dswap(&a[hi], &a[lo]);
		if (a[hi] < a[mid])
			dswap(&a[hi], &a[mid]);
		double pivot = a[mid];
		size_t i = lo, j = hi;
		for (;;) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i >= j)
				break;
			dswap(&a[i], &a[j]);
			i++;
			j--;
		}
		/* a[lo..j] <= pivot <= a[j+1..hi] */
		if (k <= j)
			hi = j;
		else
			lo = j + 1;
	}
}

static double interp(double a, double b, double frac)
{
	if (frac == 0.0 || a == b)
		return a;
	return a + frac * (b - a);
}

double atel_q_percentile_sorted(const double *sorted, size_t n, double q)
{
	if (!sorted || n == 0 || !(q >= 0.0 && q <= 1.0))
		return NAN;
	double h = (double)(n - 1) * q;
	size_t lo = (size_t)floor(h);
	if (lo >= n - 1)
		return sorted[n - 1];
	return interp(sorted[lo], sorted[lo + 1], h - (double)lo);
}

/* Copies the non-NaN values; *nan gets how many were skipped. */
static double *copy_finite_or_inf(const double *v, size_t n, size_t *m, uint64_t *nan)
{
	double *a = malloc((n ? n : 1) * sizeof(*a));
	if (!a)
		return NULL;
	size_t k = 0;
	uint64_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			bad++;
		else
			a[k++] = v[i];
	}
	*m = k;
	if (nan)
		*nan = bad;
	return a;
}

/* Percentiles qs[0..nq) of a (NaN-free, m values; reordered in place). */
static void percentiles_inplace(double *a, size_t m, const double *qs, double *outs, size_t nq)
{
	/* ranks needed: lo and lo+1 for each q, selected in ascending order so
	 * each selection only scans what lies above the previous one */
	size_t ranks[16];
	size_t nr = 0;
	for (size_t i = 0; i < nq; i++) {
		size_t lo = (size_t)floor((double)(m - 1) * qs[i]);
		ranks[nr++] = lo;
		if (lo + 1 < m)
			ranks[nr++] = lo + 1;
	}
	for (size_t i = 1; i < nr; i++) /* insertion sort, nr <= 16 */
		for (size_t j = i; j > 0 && ranks[j - 1] > ranks[j]; j--) {
			size_t t = ranks[j];
			ranks[j] = ranks[j - 1];
			ranks[j - 1] = t;
		}
	size_t base = 0;
	for (size_t i = 0; i < nr; i++) {
		size_t r = ranks[i];
		if (r < base)
			continue; /* duplicate rank, already in place */
		select_kth(a + base, m - base, r - base);
		base = r + 1;
	}
	for (size_t i = 0; i < nq; i++) {
		double h = (double)(m - 1) * qs[i];
		size_t lo = (size_t)floor(h);
		outs[i] = lo + 1 < m ? interp(a[lo], a[lo + 1], h - (double)lo) : a[m - 1];
	}
}

int atel_q_percentile(const double *v, size_t n, double q, double *out)
{
	if ((!v && n) || !out || !(q >= 0.0 && q <= 1.0))
		return -EINVAL;
	size_t m;
	double *a = copy_finite_or_inf(v, n, &m, NULL);
	if (!a)
		return -ENOMEM;
	if (m == 0)
		*out = NAN;
	else
		percentiles_inplace(a, m, &q, out, 1);
	free(a);
	return 0;
}

int atel_q_summarize(const double *v, size_t n, struct atel_qsummary *out)
{
	if ((!v && n) || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	size_t m;
	double *a = copy_finite_or_inf(v, n, &m, &out->nan);
	if (!a)
		return -ENOMEM;
	out->count = m;
	if (m == 0) {
		out->sum = 0;
		out->min = out->max = out->avg = out->stddev = NAN;
		out->p50 = out->p95 = out->p99 = NAN;
		free(a);
		return 0;
	}
	/* Welford for mean/variance; Neumaier-compensated sum */
	double mean = 0, m2 = 0, sum = 0, comp = 0, mn = a[0], mx = a[0];
	for (size_t i = 0; i < m; i++) {
		double x = a[i];
		double d = x - mean;
		mean += d / (double)(i + 1);
		m2 += d * (x - mean);
		double t = sum + x;
		if (fabs(sum) >= fabs(x))
			comp += (sum - t) + x;
		else
			comp += (x - t) + sum;
		sum = t;
		if (x < mn)
			mn = x;
		if (x > mx)
			mx = x;
	}
	out->sum = isfinite(sum) ? sum + comp : sum;
	out->min = mn;
	out->max = mx;
	out->avg = isfinite(out->sum) ? out->sum / (double)m : mean;
	out->stddev = m2 > 0 ? sqrt(m2 / (double)m) : (isnan(m2) ? NAN : 0.0);
	const double qs[3] = { 0.50, 0.95, 0.99 };
	double ps[3];
	percentiles_inplace(a, m, qs, ps, 3);
	out->p50 = ps[0];
	out->p95 = ps[1];
	out->p99 = ps[2];
	free(a);
	return 0;
}

/* ---- histogram_quantile --------------------------------------------------- */

struct hbucket {
	double upper, count;
};

static int cmp_hbucket(const void *a, const void *b)
{
	double x = ((const struct hbucket *)a)->upper, y = ((const struct hbucket *)b)->upper;
	return (x > y) - (x < y);
}

double atel_q_histogram_quantile(double q, const double *upper, const double *cumulative, size_t nb)
{
	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	if (!upper || !cumulative || nb == 0)
		return NAN;
	struct hbucket stackb[80], *b = nb <= 80 ? stackb : malloc(nb * sizeof(*b));
	if (!b)
		return NAN;
	for (size_t i = 0; i < nb; i++)
		b[i] = (struct hbucket){ upper[i], cumulative[i] };
	qsort(b, nb, sizeof(*b), cmp_hbucket);
	double res = NAN;
	if (!(isinf(b[nb - 1].upper) && b[nb - 1].upper > 0))
		goto out;
	/* coalesceBuckets: equal upper bounds add their counts */
	size_t m = 0;
	for (size_t i = 0; i < nb; i++) {
		if (m > 0 && b[m - 1].upper == b[i].upper)
			b[m - 1].count += b[i].count;
		else
			b[m++] = b[i];
	}
	/* ensureMonotonicAndIgnoreSmallDeltas: a count below its predecessor is
	 * raised to it; deltas within 1e-12 relative are flattened */
	for (size_t i = 1; i < m; i++) {
		double prev = b[i - 1].count, cur = b[i].count;
		if (cur == prev)
			continue;
		if (fabs(cur - prev) <= 1e-12 * fmax(fabs(cur), fabs(prev)))
			b[i].count = prev;
		else if (cur < prev)
			b[i].count = prev;
	}
	if (m < 2)
		goto out;
	double observations = b[m - 1].count;
	if (observations == 0)
		goto out;
	double rank = q * observations;
	size_t k = 0; /* sort.Search over the first m-1 buckets */
	while (k < m - 1 && !(b[k].count >= rank))
		k++;
	if (k == m - 1) {
		res = b[m - 2].upper;
		goto out;
	}
	if (k == 0 && b[0].upper <= 0) {
		res = b[0].upper;
		goto out;
	}
	double start = 0, end = b[k].upper, count = b[k].count;
	if (k > 0) {
		start = b[k - 1].upper;
		count -= b[k - 1].count;
		rank -= b[k - 1].count;
	}
	res = start + (end - start) * (rank / count);
out:
	if (b != stackb)
		free(b);
	return res;
}

void atel_q_bucketize(const double *v, size_t n, const double *bounds, size_t nbounds, uint64_t *counts)
{
	memset(counts, 0, (nbounds + 1) * sizeof(*counts));
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i]))
			continue;
		size_t lo = 0, hi = nbounds; /* first bound >= v */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (bounds[mid] >= v[i])
				hi = mid;
			else
				lo = mid + 1;
		}
		counts[lo]++;
	}
}

/* ---- points ---------------------------------------------------------------- */

static bool points_sorted(const struct atel_qpoint *p, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (p[i].ts_ns < p[i - 1].ts_ns)
			return false;
	return true;
}

/* Stable merge sort (qsort is not stable; ties keep input order). */
int atel_q_sort_points(struct atel_qpoint *p, size_t n)
{
	if (n < 2 || points_sorted(p, n))
		return 0;
	struct atel_qpoint *tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = p[j].ts_ns < p[i].ts_ns ? p[j++] : p[i++];
			while (i < mid)
				tmp[k++] = p[i++];
			while (j < hi)
				tmp[k++] = p[j++];
		}
		memcpy(p, tmp, n * sizeof(*p));
	}
	free(tmp);
	return 0;
}

/* Returns in (sorted), or a sorted private copy in *owned. */
static const struct atel_qpoint *sorted_view(const struct atel_qpoint *in, size_t n, struct atel_qpoint **owned)
{
	*owned = NULL;
	if (points_sorted(in, n))
		return in;
	struct atel_qpoint *c = malloc(n * sizeof(*c));
	if (!c)
		return NULL;
	memcpy(c, in, n * sizeof(*c));
	if (atel_q_sort_points(c, n) < 0) {
		free(c);
		return NULL;
	}
	*owned = c;
	return c;
}

int atel_q_moving_average(const struct atel_qpoint *in, size_t n, size_t window, struct atel_qpoint *out)
{
	if ((!in && n) || (!out && n) || window == 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	struct atel_qpoint *own;
	const struct atel_qpoint *p = sorted_view(in, n, &own);
	if (!p)
		return -ENOMEM;
	/* running state over the last `window` points: finite sum and count,
	 * infinities counted apart so that one Inf leaving does not poison the sum */
	double sum = 0;
	size_t cnt = 0, pinf = 0, ninf = 0;
	for (size_t i = 0; i < n; i++) {
		double x = p[i].v;
		if (isfinite(x)) {
			sum += x;
			cnt++;
		} else if (isinf(x)) {
			if (x > 0)
				pinf++;
			else
				ninf++;
		}
		if (i >= window) {
			double y = p[i - window].v;
			if (isfinite(y)) {
				sum -= y;
				cnt--;
			} else if (isinf(y)) {
				if (y > 0)
					pinf--;
				else
					ninf--;
			}
		}
		/* re-add exactly every 4096 steps so rounding drift cannot grow */
		if ((i & 4095) == 4095) {
			sum = 0;
			size_t from = i + 1 >= window ? i + 1 - window : 0;
			for (size_t j = from; j <= i; j++)
				if (isfinite(p[j].v))
					sum += p[j].v;
		}
		double m;
		if (isnan(x))
			m = NAN;
		else if (pinf && ninf)
			m = NAN;
		else if (pinf)
			m = INFINITY;
		else if (ninf)
			m = -INFINITY;
		else
			m = cnt ? sum / (double)cnt : NAN;
		out[i].ts_ns = p[i].ts_ns;
		out[i].v = m;
	}
	free(own);
	return 0;
}

int atel_q_detect_anomalies(const struct atel_qpoint *in, size_t n, size_t window, double sigma,
			    struct atel_qanomaly *out)
{
	if ((!in && n) || (!out && n) || window == 0 || !(sigma >= 0))
		return -EINVAL;
	if (n == 0)
		return 0;
	struct atel_qpoint *own;
	const struct atel_qpoint *p = sorted_view(in, n, &own);
	if (!p)
		return -ENOMEM;
	double *ring = malloc(window * sizeof(*ring));
	if (!ring) {
		free(own);
		return -ENOMEM;
	}
	size_t have = 0, head = 0; /* ring of the last `window` finite values */
	for (size_t i = 0; i < n; i++) {
		struct atel_qanomaly *a = &out[i];
		a->ts_ns = p[i].ts_ns;
		a->v = p[i].v;
		a->mean = a->stddev = a->score = NAN;
		a->anomaly = false;
		if (have >= 1) {
			double mean = 0, var = 0;
			for (size_t j = 0; j < have; j++)
				mean += ring[j];
			mean /= (double)have;
			for (size_t j = 0; j < have; j++)
				var += (ring[j] - mean) * (ring[j] - mean);
			a->mean = mean;
			a->stddev = sqrt(var / (double)have);
		}
		if (have >= 2 && !isnan(p[i].v)) {
			double d = p[i].v - a->mean;
			if (a->stddev > 0)
				a->score = d / a->stddev;
			else
				a->score = d == 0 ? 0.0 : (d > 0 ? INFINITY : -INFINITY);
			a->anomaly = fabs(a->score) > sigma;
		}
		if (isfinite(p[i].v)) {
			ring[head] = p[i].v;
			head = (head + 1) % window;
			if (have < window)
				have++;
		}
	}
	free(ring);
	free(own);
	return 0;
}

/* The core of Prometheus' extrapolatedRate (promql/functions.go), given the
 * reset-corrected difference `result` between the last and first sample. */
static double extrapolate(double first_v, double result, uint64_t first_t, uint64_t last_t, size_t count,
			  int64_t range_start, int64_t range_end, bool is_counter, bool per_second)
{
	if (count < 2 || last_t <= first_t || range_end <= range_start)
		return NAN;
	/* differences in integer ns first: a double holds a 2026 timestamp only
	 * to 256 ns */
	double to_start = (double)((int64_t)first_t - range_start) / 1e9;
	double to_end = (double)(range_end - (int64_t)last_t) / 1e9;
	double sampled = (double)(last_t - first_t) / 1e9;
	double avg_gap = sampled / (double)(count - 1);
	double threshold = avg_gap * 1.1;
	double extrapolate_to = sampled;
	if (to_start >= threshold)
		to_start = avg_gap / 2;
	if (is_counter && result > 0 && first_v >= 0) {
		double to_zero = sampled * (first_v / result);
		if (to_zero < to_start)
			to_start = to_zero;
	}
	extrapolate_to += to_start;
	if (to_end >= threshold)
		to_end = avg_gap / 2;
	extrapolate_to += to_end;
	double factor = extrapolate_to / sampled;
	if (per_second)
		factor /= (double)(range_end - range_start) / 1e9;
	return result * factor;
}

double atel_q_extrapolated_rate(const struct atel_qpoint *s, size_t n, uint64_t range_start,
				uint64_t range_end, bool is_counter, bool per_second)
{
	if (!s || n < 2 || range_end <= range_start)
		return NAN;
	double result = s[n - 1].v - s[0].v;
	if (is_counter) {
		double prev = s[0].v;
		for (size_t i = 1; i < n; i++) {
			if (s[i].v < prev)
				result += prev;
			prev = s[i].v;
		}
	}
	return extrapolate(s[0].v, result, s[0].ts_ns, s[n - 1].ts_ns, n, (int64_t)range_start, (int64_t)range_end,
			   is_counter, per_second);
}

/* Sorted, NaN-free copy of in. */
static struct atel_qpoint *clean_copy(const struct atel_qpoint *in, size_t n, size_t *m)
{
	struct atel_qpoint *c = malloc((n ? n : 1) * sizeof(*c));
	if (!c)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!isnan(in[i].v))
			c[k++] = in[i];
	if (atel_q_sort_points(c, k) < 0) {
		free(c);
		return NULL;
	}
	*m = k;
	return c;
}

int atel_q_calculate_rate(const struct atel_qpoint *in, size_t n, uint64_t window_ns, struct atel_qpoint *out,
			  size_t *nout)
{
	if ((!in && n) || (!out && n) || !nout || window_ns == 0)
		return -EINVAL;
	*nout = 0;
	if (n == 0)
		return 0;
	size_t m;
	struct atel_qpoint *p = clean_copy(in, n, &m);
	if (!p)
		return -ENOMEM;
	/* c[i]: value corrected for every reset up to i, so that the corrected
	 * increase over [j, i] is c[i] - c[j] (Prometheus adds the value before
	 * each drop) */
	double *c = malloc((m ? m : 1) * sizeof(*c));
	if (!c) {
		free(p);
		return -ENOMEM;
	}
	double add = 0;
	for (size_t i = 0; i < m; i++) {
		if (i > 0 && p[i].v < p[i - 1].v)
			add += p[i - 1].v;
		c[i] = p[i].v + add;
	}
	size_t j = 0, k = 0;
	for (size_t i = 0; i < m; i++) {
		uint64_t t = p[i].ts_ns;
		int64_t start = (int64_t)t - (int64_t)window_ns; /* the range (start, t] */
		while (j < i && (int64_t)p[j].ts_ns <= start)
			j++;
		if (i - j + 1 < 2)
			continue;
		double r = extrapolate(p[j].v, c[i] - c[j], p[j].ts_ns, t, i - j + 1, start, (int64_t)t, true, true);
		if (isnan(r))
			continue;
		out[k].ts_ns = t;
		out[k].v = r;
		k++;
	}
	*nout = k;
	free(c);
	free(p);
	return 0;
}

static const char *const agg_names[] = {
	[ATEL_QAGG_NONE] = "none", [ATEL_QAGG_AVG] = "avg", [ATEL_QAGG_SUM] = "sum",
	[ATEL_QAGG_MIN] = "min",   [ATEL_QAGG_MAX] = "max", [ATEL_QAGG_COUNT] = "count",
	[ATEL_QAGG_P50] = "p50",   [ATEL_QAGG_P95] = "p95", [ATEL_QAGG_P99] = "p99",
	[ATEL_QAGG_RATE] = "rate",
};

int atel_q_agg_parse(const char *s, enum atel_qagg *out)
{
	if (!s || !out)
		return -EINVAL;
	for (size_t i = 1; i < sizeof(agg_names) / sizeof(agg_names[0]); i++)
		if (strcmp(s, agg_names[i]) == 0) {
			*out = (enum atel_qagg)i;
			return 0;
		}
	return -EINVAL;
}

const char *atel_q_agg_name(enum atel_qagg a)
{
	return (unsigned)a < sizeof(agg_names) / sizeof(agg_names[0]) ? agg_names[a] : "?";
}

double atel_q_reduce(const double *v, size_t n, enum atel_qagg agg)
{
	double acc = NAN;
	size_t cnt = 0;
	switch (agg) {
	case ATEL_QAGG_P50:
	case ATEL_QAGG_P95:
	case ATEL_QAGG_P99: {
		double q = agg == ATEL_QAGG_P50 ? 0.50 : agg == ATEL_QAGG_P95 ? 0.95 : 0.99, r;
		return atel_q_percentile(v, n, q, &r) == 0 ? r : NAN;
	}
	case ATEL_QAGG_COUNT:
		for (size_t i = 0; i < n; i++)
			cnt += !isnan(v[i]);
		return (double)cnt;
	default:
		break;
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		double x = v[i];
		if (isnan(x))
			continue;
		if (cnt == 0)
			acc = x;
		else if (agg == ATEL_QAGG_MIN && x < acc)
			acc = x;
		else if (agg == ATEL_QAGG_MAX && x > acc)
			acc = x;
		sum += x;
		cnt++;
	}
	if (agg == ATEL_QAGG_SUM)
		return cnt ? sum : NAN;
	if (agg == ATEL_QAGG_AVG)
		return cnt ? sum / (double)cnt : NAN;
	if (agg == ATEL_QAGG_MIN || agg == ATEL_QAGG_MAX)
		return acc;
	return NAN;
}

int atel_q_aggregate(const struct atel_qpoint *in, size_t n, uint64_t interval_ns, enum atel_qagg agg,
		     bool is_counter, struct atel_qpoint *out, size_t *nout)
{
	if ((!in && n) || (!out && n) || !nout || interval_ns == 0 || agg == ATEL_QAGG_NONE ||
	    agg > ATEL_QAGG_RATE)
		return -EINVAL;
	*nout = 0;
	if (n == 0)
		return 0;
	struct atel_qpoint *own;
	const struct atel_qpoint *p = sorted_view(in, n, &own);
	if (!p)
		return -ENOMEM;
	double *vals = malloc(n * sizeof(*vals));
	struct atel_qpoint *run = agg == ATEL_QAGG_RATE ? malloc(n * sizeof(*run)) : NULL;
	int rc = 0;
	if (!vals || (agg == ATEL_QAGG_RATE && !run)) {
		rc = -ENOMEM;
		goto out;
	}
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		uint64_t b = p[i].ts_ns / interval_ns;
		size_t j = i;
		while (j < n && p[j].ts_ns / interval_ns == b)
			j++;
		double r;
		if (agg == ATEL_QAGG_RATE) {
			size_t m = 0;
			for (size_t x = i; x < j; x++)
				if (!isnan(p[x].v))
					run[m++] = p[x];
			r = atel_q_extrapolated_rate(run, m, b * interval_ns, (b + 1) * interval_ns, is_counter, true);
		} else if (agg == ATEL_QAGG_COUNT || agg == ATEL_QAGG_SUM || agg == ATEL_QAGG_AVG ||
			   agg == ATEL_QAGG_MIN || agg == ATEL_QAGG_MAX) {
			/* no copy needed: reduce straight from the points */
			double acc = NAN, sum = 0;
			size_t cnt = 0;
			for (size_t x = i; x < j; x++) {
				double v = p[x].v;
				if (isnan(v))
					continue;
				if (cnt == 0 || (agg == ATEL_QAGG_MIN && v < acc) || (agg == ATEL_QAGG_MAX && v > acc))
					acc = v;
				sum += v;
				cnt++;
			}
			r = agg == ATEL_QAGG_COUNT ? (double)cnt
			    : cnt == 0	      ? NAN
			    : agg == ATEL_QAGG_SUM ? sum
			    : agg == ATEL_QAGG_AVG ? sum / (double)cnt
						   : acc;
		} else {
			for (size_t x = i; x < j; x++)
				vals[x - i] = p[x].v;
			r = atel_q_reduce(vals, j - i, agg);
		}
		out[k].ts_ns = b * interval_ns;
		out[k].v = r;
		k++;
		i = j;
	}
	*nout = k;
out:
	free(run);
	free(vals);
	free(own);
	return rc;
}

/* ---- parsing ----------------------------------------------------------------- */

static const struct {
	const char *unit;
	uint64_t ns;
} units[] = {
	{ "ns", 1ull },
	{ "us", 1000ull },
	{ "ms", 1000000ull },
	{ "s", 1000000000ull },
	{ "m", 60ull * 1000000000ull },
	{ "h", 3600ull * 1000000000ull },
	{ "d", 86400ull * 1000000000ull },
	{ "w", 7ull * 86400ull * 1000000000ull },
	{ "y", 365ull * 86400ull * 1000000000ull },
};

int atel_q_parse_duration(const char *s, uint64_t *ns, char *err, size_t errlen)
{
	if (!s || !ns) {
		atel__seterr(err, errlen, "no duration given");
		return -EINVAL;
	}
	const char *p = s;
	if (!*p) {
		atel__seterr(err, errlen, "empty duration (expected e.g. 30s, 5m, 1h30m)");
		return -EINVAL;
	}
	long double total = 0;
	int groups = 0;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.') {
			atel__seterr(err, errlen, "duration \"%s\": column %zu: expected a number", s, (size_t)(p - s) + 1);
			return -EINVAL;
		}
		const char *numstart = p;
		bool dot = false, digit = false;
		while (isdigit((unsigned char)*p) || (*p == '.' && !dot)) {
			if (*p == '.')
				dot = true;
			else
				digit = true;
			p++;
		}
		if (!digit || p - numstart > 24) {
			atel__seterr(err, errlen, "duration \"%s\": column %zu: bad number", s, (size_t)(numstart - s) + 1);
			return -EINVAL;
		}
		char num[32];
		memcpy(num, numstart, (size_t)(p - numstart));
		num[p - numstart] = 0;
		long double x = strtold(num, NULL);
		const char *ustart = p;
		while (isalpha((unsigned char)*p))
			p++;
		size_t ulen = (size_t)(p - ustart);
		uint64_t mult = 0;
		if (ulen == 0) {
			if (groups > 0 || *p) {
				atel__seterr(err, errlen, "duration \"%s\": column %zu: missing unit (ns us ms s m h d w y)", s,
				       (size_t)(ustart - s) + 1);
				return -EINVAL;
			}
			mult = 1000000000ull; /* a bare number is seconds */
		} else {
			for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++)
				if (strlen(units[u].unit) == ulen && memcmp(units[u].unit, ustart, ulen) == 0)
					mult = units[u].ns;
			if (!mult) {
				atel__seterr(err, errlen, "duration \"%s\": column %zu: unknown unit \"%.*s\" (ns us ms s m h d w y)",
				       s, (size_t)(ustart - s) + 1, (int)(ulen > 16 ? 16 : ulen), ustart);
				return -EINVAL;
			}
		}
		total += x * (long double)mult;
		groups++;
		if (total > 1.8e19L) {
			atel__seterr(err, errlen, "duration \"%s\" is too long", s);
			return -ERANGE;
		}
	}
	*ns = (uint64_t)(total + 0.5L);
	return 0;
}

static int parse_rfc3339(const char *s, uint64_t *ns)
{
	int Y, M, D, h, m, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3 || n != 10)
		return -EINVAL;
	const char *p = s + 10;
	h = m = sec = 0;
	long double frac = 0;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		n = 0;
		if (sscanf(p, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5)
			return -EINVAL;
		p += 5;
		if (*p == ':') {
			if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
				return -EINVAL;
			sec = (p[1] - '0') * 10 + (p[2] - '0');
			p += 3;
			if (*p == '.') {
				long double scale = 0.1L;
				p++;
				if (!isdigit((unsigned char)*p))
					return -EINVAL;
				while (isdigit((unsigned char)*p)) {
					frac += (*p - '0') * scale;
					scale /= 10;
					p++;
				}
			}
		}
	}
	long off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		n = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
		p += 6;
	}
	if (*p || Y < 1970 || Y > 2500 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec };
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	long double total = ((long double)t - off + frac) * 1e9L;
	if (total < 0)
		return -EINVAL;
	*ns = (uint64_t)(total + 0.5L);
	return 0;
}

int atel_q_parse_time(const char *s, uint64_t now_ns, uint64_t *ns, char *err, size_t errlen)
{
	if (!s || !ns || !*s) {
		atel__seterr(err, errlen, "empty time (expected now, -1h, Unix seconds or RFC 3339)");
		return -EINVAL;
	}
	const char *rel = NULL;
	if (strcmp(s, "now") == 0) {
		*ns = now_ns;
		return 0;
	}
	if (strncmp(s, "now-", 4) == 0)
		rel = s + 4;
	else if (s[0] == '-')
		rel = s + 1;
	if (rel) {
		uint64_t d;
		int rc = atel_q_parse_duration(rel, &d, err, errlen);
		if (rc < 0)
			return rc;
		*ns = d > now_ns ? 0 : now_ns - d;
		return 0;
	}
	/* Unix seconds (digits with an optional fraction) */
	const char *p = s;
	bool dot = false;
	while (isdigit((unsigned char)*p) || (*p == '.' && !dot)) {
		dot |= *p == '.';
		p++;
	}
	if (!*p && p - s <= 20) {
		long double x = strtold(s, NULL);
		if (x > 1.8e10L) {
			atel__seterr(err, errlen, "time \"%s\" is out of range", s);
			return -EINVAL;
		}
		*ns = (uint64_t)(x * 1e9L + 0.5L);
		return 0;
	}
	if (parse_rfc3339(s, ns) == 0)
		return 0;
	atel__seterr(err, errlen, "time \"%s\": expected now, now-DURATION, -DURATION, Unix seconds or RFC 3339 "
	       "(2026-11-28T21:00:00Z)", s);
	return -EINVAL;
}

static bool label_start(int c)
{
	return isalpha(c) || c == '_';
}

static bool label_char(int c)
{
	return isalnum(c) || c == '_';
}

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* Parses one value (quoted or bare, bare ends at ',' '}' or end) into a
 * malloc'd string. */
static int parse_value(const char *text, const char **pp, char **out, char *err, size_t errlen)
{
	const char *p = *pp;
	size_t cap = 32, len = 0;
	char *v = malloc(cap);
	if (!v)
		return -ENOMEM;
	if (*p == '"' || *p == '\'') {
		char q = *p++;
		for (;;) {
			if (!*p) {
				atel__seterr(err, errlen, "column %zu: unterminated quoted value", (size_t)(*pp - text) + 1);
				free(v);
				return -EINVAL;
			}
			char c = *p++;
			if (c == q)
				break;
			if (c == '\\') {
				char e = *p++;
				switch (e) {
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case '\\':
				case '"':
				case '\'':
					c = e;
					break;
				default:
					/* keep regex escapes such as \. intact */
					if (!e) {
						atel__seterr(err, errlen, "column %zu: unterminated quoted value",
						       (size_t)(*pp - text) + 1);
						free(v);
						return -EINVAL;
					}
					if (len + 2 >= cap) {
						char *nv = realloc(v, cap *= 2);
						if (!nv) {
							free(v);
							return -ENOMEM;
						}
						v = nv;
					}
					v[len++] = '\\';
					c = e;
				}
			}
			if (len + 2 >= cap) {
				char *nv = realloc(v, cap *= 2);
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[len++] = c;
		}
	} else {
		while (*p && *p != ',' && *p != '}') {
			if (len + 2 >= cap) {
				char *nv = realloc(v, cap *= 2);
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[len++] = *p++;
		}
		while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
			len--;
	}
	v[len] = 0;
	*out = v;
	*pp = p;
	return 0;
}

#define ATEL_Q_REGEX_MAX 1024u

/*
 * glibc's regcomp expands bounded and stacked repetitions into NFA nodes:
 * "[0-9]{2,3}++++..." or nested "((a{99}){99}){99}" take gigabytes before it
 * returns. Estimate the expanded size of a POSIX ERE (every atom counts 1, a
 * group counts its contents, a quantifier multiplies the atom before it) and
 * refuse stacked quantifiers and patterns beyond ATEL_Q_REGEX_COST nodes.
 * @return NULL if acceptable, else a static reason.
 */
#define ATEL_Q_REGEX_COST 20000.0
#define ATEL_Q_REGEX_DEPTH 32
static const char *regex_cost_check(const char *re)
{
	double size[ATEL_Q_REGEX_DEPTH + 1] = { 0 }, last[ATEL_Q_REGEX_DEPTH + 1] = { 0 };
	int depth = 0;
	bool prev_quant = false;

	for (const char *p = re; *p; p++) {
		double atom = 1;
		switch (*p) {
		case '(':
			if (++depth > ATEL_Q_REGEX_DEPTH)
				return "groups nested too deeply";
			size[depth] = last[depth] = 0;
			prev_quant = false;
			continue;
		case ')':
			if (depth == 0)
				break; /* regcomp reports the syntax error */
			atom = size[depth] > 0 ? size[depth] : 1;
			depth--;
			break;
		case '|':
			last[depth] = 0;
			prev_quant = false;
			continue;
		case '*':
		case '+':
		case '?':
		case '{': {
			double factor = 2;
			if (prev_quant)
				return "a quantifier follows another quantifier";
			if (*p == '{') {
				unsigned long lo = 0, hi = 0;
				char *end;
				lo = strtoul(p + 1, &end, 10);
				hi = lo;
				if (*end == ',') {
					const char *q = end + 1;
					hi = *q == '}' ? lo + 1 : strtoul(q, &end, 10);
				}
				if (*end != '}' && *end != ',')
					break; /* not a bound: regcomp decides */
				while (*p && *p != '}')
					p++;
				if (!*p)
					return NULL;
				factor = (double)(hi > lo ? hi : lo) + 1;
			}
			size[depth] += last[depth] * (factor - 1);
			last[depth] *= factor;
			if (size[depth] > ATEL_Q_REGEX_COST)
				return "repetitions expand beyond the complexity limit";
			prev_quant = true;
			continue;
		}
		case '\\':
			if (p[1])
				p++;
			break;
		case '[':
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					char close = p[1];
					p += 2;
					while (*p && !(*p == close && p[1] == ']'))
						p++;
					if (*p)
						p++;
				}
				if (*p)
					p++;
			}
			if (!*p)
				return NULL; /* unterminated: regcomp reports it */
			break;
		default:
			break;
		}
		size[depth] += atom;
		last[depth] = atom;
		prev_quant = false;
		if (size[depth] > ATEL_Q_REGEX_COST)
			return "repetitions expand beyond the complexity limit";
	}
	return NULL;
}

static int add_matcher(struct atel_qselector *sel, char *key, char *value, enum atel_qmatch_op op, char *err,
		       size_t errlen)
{
	struct atel_qmatcher *nm = realloc(sel->m, (sel->n + 1) * sizeof(*nm));
	if (!nm) {
		free(key);
		free(value);
		return -ENOMEM;
	}
	sel->m = nm;
	struct atel_qmatcher *m = &nm[sel->n];
	memset(m, 0, sizeof(*m));
	m->key = key;
	m->value = value;
	m->op = op;
	if (op == ATEL_QM_RE || op == ATEL_QM_NRE) {
		size_t vl = strlen(value);
		if (vl > ATEL_Q_REGEX_MAX) {
			atel__seterr(err, errlen, "label %s: regex longer than %u bytes", key, ATEL_Q_REGEX_MAX);
			free(key);
			free(value);
			return -EINVAL;
		}
		const char *costly = regex_cost_check(value);
		if (costly) {
			atel__seterr(err, errlen, "label %s: regular expression \"%s\" refused: %s", key, value, costly);
			free(key);
			free(value);
			return -EINVAL;
		}
		char *anch = malloc(vl + 5);
		if (!anch) {
			free(key);
			free(value);
			return -ENOMEM;
		}
		snprintf(anch, vl + 5, "^(%s)$", value);
		int rc = regcomp(&m->re, anch, REG_EXTENDED | REG_NOSUB);
		free(anch);
		if (rc != 0) {
			char msg[128];
			regerror(rc, &m->re, msg, sizeof(msg));
			atel__seterr(err, errlen, "label %s: bad regular expression \"%s\": %s", key, value, msg);
			regfree(&m->re);
			free(key);
			free(value);
			return -EINVAL;
		}
		m->compiled = true;
	}
	sel->n++;
	return 0;
}

static int parse_matchers(const char *text, const char **pp, struct atel_qselector *sel, char close, char *err,
			  size_t errlen)
{
	const char *p = *pp;
	for (;;) {
		skip_ws(&p);
		if (*p == close || (!close && !*p))
			break;
		if (!label_start((unsigned char)*p)) {
			atel__seterr(err, errlen, "column %zu: expected a label name", (size_t)(p - text) + 1);
			return -EINVAL;
		}
		const char *ks = p;
		while (label_char((unsigned char)*p))
			p++;
		size_t klen = (size_t)(p - ks);
		skip_ws(&p);
		enum atel_qmatch_op op;
		if (p[0] == '=' && p[1] == '~') {
			op = ATEL_QM_RE;
			p += 2;
		} else if (p[0] == '!' && p[1] == '~') {
			op = ATEL_QM_NRE;
			p += 2;
		} else if (p[0] == '!' && p[1] == '=') {
			op = ATEL_QM_NE;
			p += 2;
		} else if (p[0] == '=') {
			op = ATEL_QM_EQ;
			p += p[1] == '=' ? 2 : 1;
		} else {
			atel__seterr(err, errlen, "column %zu: expected =, !=, =~ or !~ after label %.*s",
			       (size_t)(p - text) + 1, (int)(klen > 64 ? 64 : klen), ks);
			return -EINVAL;
		}
		skip_ws(&p);
		char *value;
		int rc = parse_value(text, &p, &value, err, errlen);
		if (rc < 0)
			return rc;
		char *key = strndup(ks, klen);
		if (!key) {
			free(value);
			return -ENOMEM;
		}
		rc = add_matcher(sel, key, value, op, err, errlen);
		if (rc < 0)
			return rc;
		skip_ws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == close || !*p)
			break;
		atel__seterr(err, errlen, "column %zu: expected ',' or %s", (size_t)(p - text) + 1,
		       close ? "'}'" : "the end");
		return -EINVAL;
	}
	if (close) {
		if (*p != close) {
			atel__seterr(err, errlen, "column %zu: missing '}'", (size_t)(p - text) + 1);
			return -EINVAL;
		}
		p++;
	}
	*pp = p;
	return 0;
}

int atel_q_selector_parse(const char *text, struct atel_qselector *sel, char *err, size_t errlen)
{
	if (!text || !sel) {
		atel__seterr(err, errlen, "no selector");
		return -EINVAL;
	}
	const char *p = text;
	skip_ws(&p);
	bool has_op = strpbrk(text, "=!{") != NULL;
	bool brace = strchr(text, '{') != NULL;
	if (!has_op || brace) {
		const char *ns = p;
		if (label_start((unsigned char)*p) || *p == ':') {
			while (label_char((unsigned char)*p) || *p == ':')
				p++;
		}
		size_t nlen = (size_t)(p - ns);
		if (nlen > 0) {
			if (sel->metric) {
				atel__seterr(err, errlen, "column 1: a metric name was already given");
				return -EINVAL;
			}
			sel->metric = strndup(ns, nlen);
			if (!sel->metric)
				return -ENOMEM;
		} else if (!brace) {
			atel__seterr(err, errlen, "column %zu: expected a metric name", (size_t)(p - text) + 1);
			return -EINVAL;
		}
		skip_ws(&p);
		if (*p == '{') {
			p++;
			int rc = parse_matchers(text, &p, sel, '}', err, errlen);
			if (rc < 0)
				return rc;
			skip_ws(&p);
		}
		if (*p) {
			atel__seterr(err, errlen, "column %zu: unexpected '%c' (metric names are [a-zA-Z_:][a-zA-Z0-9_:]*)",
			       (size_t)(p - text) + 1, *p);
			return -EINVAL;
		}
		return 0;
	}
	return parse_matchers(text, &p, sel, 0, err, errlen);
}

bool atel_q_selector_match(const struct atel_qselector *sel, const char *const *keys, const char *const *values,
			   size_t nlabels)
{
	if (!sel)
		return true;
	for (size_t i = 0; i < sel->n; i++) {
		const struct atel_qmatcher *m = &sel->m[i];
		const char *v = "";
		for (size_t j = 0; j < nlabels; j++)
			if (strcmp(keys[j], m->key) == 0) {
				v = values[j];
				break;
			}
		bool ok;
		switch (m->op) {
		case ATEL_QM_EQ:
			ok = strcmp(v, m->value) == 0;
			break;
		case ATEL_QM_NE:
			ok = strcmp(v, m->value) != 0;
			break;
		case ATEL_QM_RE:
			ok = regexec(&m->re, v, 0, NULL, 0) == 0;
			break;
		case ATEL_QM_NRE:
			ok = regexec(&m->re, v, 0, NULL, 0) != 0;
			break;
		default:
			ok = false;
		}
		if (!ok)
			return false;
	}
	return true;
}

void atel_q_selector_free(struct atel_qselector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n; i++) {
		free(sel->m[i].key);
		free(sel->m[i].value);
		if (sel->m[i].compiled)
			regfree(&sel->m[i].re);
	}
	free(sel->m);
	free(sel->metric);
	memset(sel, 0, sizeof(*sel));
}

/* ---- formatting -------------------------------------------------------------- */

const char *atel_q_fmt_duration(uint64_t ns, char *buf, size_t len)
{
	if (ns < 1000ull)
		snprintf(buf, len, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000ull)
		snprintf(buf, len, "%.3g us", (double)ns / 1e3);
	else if (ns < 1000000000ull)
		snprintf(buf, len, "%.3g ms", (double)ns / 1e6);
	else if (ns < 60ull * 1000000000ull)
		snprintf(buf, len, "%.3g s", (double)ns / 1e9);
	else if (ns < 3600ull * 1000000000ull)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(ns / 60000000000ull),
			 (unsigned long long)(ns / 1000000000ull % 60));
	else
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)(ns / 3600000000000ull),
			 (unsigned long long)(ns / 60000000000ull % 60));
	return buf;
}

const char *atel_q_fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ull);
	unsigned ms = (unsigned)(ns % 1000000000ull / 1000000u);
	struct tm tm;
	size_t k;

	gmtime_r(&t, &tm);
	k = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ms)
		snprintf(buf + k, len - k, ".%03uZ", ms);
	else
		snprintf(buf + k, len - k, "Z");
	return buf;
}

const char *atel_q_fmt_count(double v, char *buf, size_t len)
{
	double a = fabs(v);
	if (isnan(v))
		snprintf(buf, len, "-");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	/* thresholds at 999.5 of the unit below: 999,999 is "1M", not "1e+03K" */
	else if (a >= 999.5e12)
		snprintf(buf, len, "%.0fG", v / 1e9);
	else if (a >= 999.5e6)
		snprintf(buf, len, "%.3gG", v / 1e9);
	else if (a >= 999.5e3)
		snprintf(buf, len, "%.3gM", v / 1e6);
	else if (a >= 1e4)
		snprintf(buf, len, "%.3gK", v / 1e3);
	else if (v == floor(v))
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.4g", v);
	return buf;
}

const char *atel_q_fmt_value(double v, const char *unit, char *buf, size_t len)
{
	if (!unit)
		unit = "";
	if (isnan(v) || isinf(v))
		return atel_q_fmt_count(v, buf, len);
	if (strcmp(unit, "seconds") == 0) {
		if (v < 0)
			snprintf(buf, len, "%.4g s", v);
		else
			atel_q_fmt_duration((uint64_t)(v * 1e9 + 0.5), buf, len);
	} else if (strcmp(unit, "%") == 0) {
		snprintf(buf, len, "%.1f%%", v);
	} else if (strcmp(unit, "/s") == 0) {
		atel_q_fmt_count(v, buf, len);
		size_t l = strlen(buf);
		if (l + 3 <= len)
			memcpy(buf + l, "/s", 3);
	} else {
		atel_q_fmt_count(v, buf, len);
	}
	return buf;
}
