/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the query engine (tools/query.h): hand-worked cases whose
 * expected values are derived in the comments, and randomized cases checked
 * against naive reference implementations written here independently
 * (sort everything, recompute every window from scratch).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atel_test.h"
#include "query.h"

#define S 1000000000ull

static void near(double got, double want, double tol, int line)
{
	if (isnan(want) && isnan(got))
		return;
	if (isinf(want) && got == want)
		return;
	if (!(fabs(got - want) <= tol * (1.0 + fabs(want))))
		fail_msg("line %d: got %.17g, want %.17g", line, got, want);
}
#define NEAR(g, w) near((g), (w), 1e-9, __LINE__)

/* deterministic PRNG (xorshift64*) so a failure reproduces */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}
static double rndd(double lo, double hi)
{
	return lo + (hi - lo) * ((double)(rnd() >> 11) / 9007199254740992.0);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* naive percentile: sort all, interpolate between closest ranks */
static double ref_percentile(const double *v, size_t n, double q)
{
	double *a = malloc((n + 1) * sizeof(*a));
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			a[m++] = v[i];
	qsort(a, m, sizeof(*a), cmp_d);
	double r;
	if (m == 0) {
		r = NAN;
	} else {
		double pos = q * (double)(m - 1);
		size_t lo = (size_t)pos;
		size_t hi = lo + 1 < m ? lo + 1 : lo;
		double f = pos - (double)lo;
		r = f == 0 || a[lo] == a[hi] ? a[lo] : a[lo] * (1 - f) + a[hi] * f;
	}
	free(a);
	return r;
}

/* ---- percentile / summarize --------------------------------------------- */

static void test_percentile_hand(void **st)
{
	(void)st;
	const double a[] = { 1, 2, 3, 4 };
	NEAR(atel_q_percentile_sorted(a, 4, 0.5), 2.5);   /* h = 1.5 */
	NEAR(atel_q_percentile_sorted(a, 4, 0.95), 3.85); /* h = 2.85: 3 + 0.85 */
	NEAR(atel_q_percentile_sorted(a, 4, 0.0), 1);
	NEAR(atel_q_percentile_sorted(a, 4, 1.0), 4);
	NEAR(atel_q_percentile_sorted(a, 1, 0.99), 1);    /* one point */
	assert_true(isnan(atel_q_percentile_sorted(a, 0, 0.5)));
	assert_true(isnan(atel_q_percentile_sorted(a, 4, 1.5)));
	assert_true(isnan(atel_q_percentile_sorted(a, 4, NAN)));
	double r;
	const double u[] = { 4, NAN, 1, 3, 2 };           /* unsorted, one NaN */
	assert_int_equal(atel_q_percentile(u, 5, 0.5, &r), 0);
	NEAR(r, 2.5);
	const double inf[] = { 1, INFINITY };
	assert_int_equal(atel_q_percentile(inf, 2, 0.5, &r), 0);
	assert_true(isinf(r) && r > 0);
	assert_int_equal(atel_q_percentile(inf, 2, 0.0, &r), 0);
	NEAR(r, 1);
	assert_int_equal(atel_q_percentile(u, 0, 0.5, &r), 0);
	assert_true(isnan(r));
	assert_int_equal(atel_q_percentile(u, 5, -0.1, &r), -EINVAL);
}

static void test_summarize_hand(void **st)
{
	(void)st;
	/* classic: mean 5, population stddev 2 */
	const double v[] = { 9, 2, 5, 4, 4, 7, 4, 5 };
	struct atel_qsummary s;
	assert_int_equal(atel_q_summarize(v, 8, &s), 0);
	assert_int_equal(s.count, 8);
	assert_int_equal(s.nan, 0);
	NEAR(s.sum, 40);
	NEAR(s.avg, 5);
	NEAR(s.stddev, 2);
	NEAR(s.min, 2);
	NEAR(s.max, 9);
	NEAR(s.p50, 4.5);  /* sorted 2 4 4 4 5 5 7 9, h = 3.5 */
	NEAR(s.p95, 8.3);  /* h = 6.65: 7 + 0.65 * 2 */
	NEAR(s.p99, 8.86); /* h = 6.93 */

	assert_int_equal(atel_q_summarize(NULL, 0, &s), 0); /* empty */
	assert_int_equal(s.count, 0);
	assert_true(isnan(s.avg) && isnan(s.min) && isnan(s.p99));

	const double one[] = { 3.5 };
	assert_int_equal(atel_q_summarize(one, 1, &s), 0);
	assert_int_equal(s.count, 1);
	NEAR(s.avg, 3.5);
	NEAR(s.stddev, 0);
	NEAR(s.p50, 3.5);
	NEAR(s.p99, 3.5);

	const double withnan[] = { 1, NAN, 3, NAN };
	assert_int_equal(atel_q_summarize(withnan, 4, &s), 0);
	assert_int_equal(s.count, 2);
	assert_int_equal(s.nan, 2);
	NEAR(s.avg, 2);
	NEAR(s.stddev, 1);

	const double withinf[] = { 1, 2, INFINITY };
	assert_int_equal(atel_q_summarize(withinf, 3, &s), 0);
	assert_true(isinf(s.max) && isinf(s.avg));
	NEAR(s.min, 1);
	NEAR(s.p50, 2);
}

static void test_summarize_random(void **st)
{
	(void)st;
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + rnd() % (round < 100 ? 50 : 5000);
		double *v = malloc(n * sizeof(*v));
		bool dup = round % 3 == 0;
		for (size_t i = 0; i < n; i++)
			v[i] = dup ? (double)(rnd() % 7) : rndd(-1000, 1000);
		if (round % 5 == 0)
			v[rnd() % n] = NAN;
		struct atel_qsummary s;
		assert_int_equal(atel_q_summarize(v, n, &s), 0);
		/* naive: two-pass mean and variance */
		double sum = 0, mn = INFINITY, mx = -INFINITY;
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (!isnan(v[i])) {
				sum += v[i];
				m++;
				mn = fmin(mn, v[i]);
				mx = fmax(mx, v[i]);
			}
		assert_int_equal(s.count, m);
		if (m == 0) {
			free(v);
			continue;
		}
		double mean = sum / (double)m, var = 0;
		for (size_t i = 0; i < n; i++)
			if (!isnan(v[i]))
				var += (v[i] - mean) * (v[i] - mean);
		near(s.avg, mean, 1e-9, __LINE__);
		near(s.stddev, sqrt(var / (double)m), 1e-7, __LINE__);
		NEAR(s.min, mn);
		NEAR(s.max, mx);
		NEAR(s.p50, ref_percentile(v, n, 0.50));
		NEAR(s.p95, ref_percentile(v, n, 0.95));
		NEAR(s.p99, ref_percentile(v, n, 0.99));
		double q = rndd(0, 1), r;
		assert_int_equal(atel_q_percentile(v, n, q, &r), 0);
		NEAR(r, ref_percentile(v, n, q));
		free(v);
	}
}

/* ---- histogram_quantile --------------------------------------------------- */

static void test_histogram_quantile(void **st)
{
	(void)st;
	const double le[] = { 0.1, 0.5, 1, INFINITY };
	const double c[] = { 10, 30, 40, 40 };
	/* q=0.5: rank 20 falls in (0.1, 0.5] holding 20: 0.1 + 0.4 * 10/20 */
	NEAR(atel_q_histogram_quantile(0.5, le, c, 4), 0.3);
	/* q=0.25: rank 10 in the first bucket, lower bound 0: 0.1 * 10/10 */
	NEAR(atel_q_histogram_quantile(0.25, le, c, 4), 0.1);
	/* q=0.99: rank 39.6 in (0.5, 1] holding 10, rank 9.6 there: 0.5 + 0.5 * 0.96 */
	NEAR(atel_q_histogram_quantile(0.99, le, c, 4), 0.98);
	/* rank in the +Inf bucket: the highest finite bound */
	const double c2[] = { 10, 30, 40, 50 };
	NEAR(atel_q_histogram_quantile(0.9, le, c2, 4), 1);
	/* order of buckets does not matter */
	const double le_s[] = { INFINITY, 1, 0.1, 0.5 };
	const double c_s[] = { 40, 40, 10, 30 };
	NEAR(atel_q_histogram_quantile(0.5, le_s, c_s, 4), 0.3);
	/* non-monotonic counts are raised to the predecessor: {10,5,40,40} ~ {10,10,40,40} */
	const double c3[] = { 10, 5, 40, 40 };
	/* rank 20: bucket (0.5,1] has 30, rank 10 there: 0.5 + 0.5 * 10/30 */
	NEAR(atel_q_histogram_quantile(0.5, le, c3, 4), 0.5 + 0.5 * 10.0 / 30.0);
	/* no +Inf bucket, no observations, single bucket: NaN */
	assert_true(isnan(atel_q_histogram_quantile(0.5, le, c, 3)));
	const double z[] = { 0, 0, 0, 0 };
	assert_true(isnan(atel_q_histogram_quantile(0.5, le, z, 4)));
	const double inf1[] = { INFINITY }, c1[] = { 5 };
	assert_true(isnan(atel_q_histogram_quantile(0.5, inf1, c1, 1)));
	/* q out of range */
	assert_true(isinf(atel_q_histogram_quantile(-0.1, le, c, 4)) && atel_q_histogram_quantile(-1, le, c, 4) < 0);
	assert_true(isinf(atel_q_histogram_quantile(1.1, le, c, 4)) && atel_q_histogram_quantile(2, le, c, 4) > 0);
	assert_true(isnan(atel_q_histogram_quantile(NAN, le, c, 4)));
	/* first bucket with a bound <= 0 returns that bound */
	const double leneg[] = { -1, 0.5, INFINITY }, cneg[] = { 5, 10, 10 };
	NEAR(atel_q_histogram_quantile(0.2, leneg, cneg, 3), -1);
	/* equal bounds are merged: {0.1:4, 0.1:6} == {0.1:10} */
	const double ledup[] = { 0.1, 0.1, 0.5, 1, INFINITY }, cdup[] = { 4, 6, 30, 40, 40 };
	NEAR(atel_q_histogram_quantile(0.5, ledup, cdup, 5), 0.3);
	/* bucketize: `le` semantics, value == bound goes into that bucket */
	const double bounds[] = { 1, 2, 5 };
	const double obs[] = { 0.5, 1, 1.5, 2, 4, 6, NAN };
	uint64_t counts[4];
	atel_q_bucketize(obs, 7, bounds, 3, counts);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 2);
	assert_int_equal(counts[2], 1);
	assert_int_equal(counts[3], 1);
}

/* ---- rate ------------------------------------------------------------------- */

/* naive Prometheus extrapolatedRate over (start, end] written from its
 * description, all in seconds */
static double ref_rate(const struct atel_qpoint *p, size_t n, double start, double end)
{
	double t[4096], v[4096];
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		double ts = (double)p[i].ts_ns / 1e9;
		if (ts > start && ts <= end && !isnan(p[i].v)) {
			t[m] = ts;
			v[m] = p[i].v;
			m++;
		}
	}
	if (m < 2 || t[m - 1] == t[0])
		return NAN;
	double result = v[m - 1] - v[0];
	for (size_t i = 1; i < m; i++)
		if (v[i] < v[i - 1])
			result += v[i - 1];
	double dstart = t[0] - start, dend = end - t[m - 1];
	double sampled = t[m - 1] - t[0], avg = sampled / (double)(m - 1);
	if (dstart >= avg * 1.1)
		dstart = avg / 2;
	if (result > 0 && v[0] >= 0 && sampled * (v[0] / result) < dstart)
		dstart = sampled * (v[0] / result);
	if (dend >= avg * 1.1)
		dend = avg / 2;
	return result * ((sampled + dstart + dend) / sampled) / (end - start);
}

static void test_rate_hand(void **st)
{
	(void)st;
	struct atel_qpoint p[6], out[6];
	size_t n;
	/* 0,10,..,50 at 10s..60s; at t=60 the window (0,60] holds all six:
	 * increase 50 over 50 s; to_start 10 s < 1.1*10 but the zero point is
	 * at 10 s (first value 0), so no extra; rate = 50/60 */
	for (int i = 0; i < 6; i++)
		p[i] = (struct atel_qpoint){ (uint64_t)(10 + 10 * i) * S, 10.0 * i };
	assert_int_equal(atel_q_calculate_rate(p, 6, 60 * S, out, &n), 0);
	assert_int_equal(n, 5); /* the first point has no predecessor */
	assert_int_equal(out[4].ts_ns, 60 * S);
	NEAR(out[4].v, 50.0 / 60.0);
	/* reset: 0,10,20,5,15,25: increase = 25 + 20 (value before the drop) */
	const double rv[] = { 0, 10, 20, 5, 15, 25 };
	for (int i = 0; i < 6; i++)
		p[i].v = rv[i];
	assert_int_equal(atel_q_calculate_rate(p, 6, 60 * S, out, &n), 0);
	NEAR(out[4].v, 45.0 / 60.0);
	/* 100..150: zero point far away, extrapolate the full 10 s: 50*60/50/60 = 1 */
	for (int i = 0; i < 6; i++)
		p[i].v = 100 + 10.0 * i;
	assert_int_equal(atel_q_calculate_rate(p, 6, 60 * S, out, &n), 0);
	NEAR(out[4].v, 1.0);
	/* at t=30 with window 20 s: (10,30] holds 20 s and 30 s (110, 120):
	 * increase 10 over 10 s; to_start 10 s < 11: extrapolate_to 20 s; 10*20/10/20 = 1 */
	assert_int_equal(out[1].ts_ns, 30 * S);
	assert_int_equal(atel_q_calculate_rate(p, 6, 20 * S, out, &n), 0);
	NEAR(out[1].v, 1.0);
	/* edge cases */
	assert_int_equal(atel_q_calculate_rate(p, 0, 60 * S, out, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(atel_q_calculate_rate(p, 1, 60 * S, out, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(atel_q_calculate_rate(p, 6, 0, out, &n), -EINVAL);
	/* extrapolated_rate directly: gauge (no reset handling), delta semantics */
	struct atel_qpoint g[3] = { { 1 * S, 5 }, { 2 * S, 3 }, { 3 * S, 1 } };
	/* result -4 over 2 s, to_start 1 s < 1.1 kept, to_end 1 s kept: -4 * 4/2 = -8 (delta over [0,4]) */
	NEAR(atel_q_extrapolated_rate(g, 3, 0, 4 * S, false, false), -8);
	assert_true(isnan(atel_q_extrapolated_rate(g, 1, 0, 4 * S, true, true)));
}

static void test_rate_random(void **st)
{
	(void)st;
	for (int round = 0; round < 100; round++) {
		size_t n = 2 + rnd() % 300;
		struct atel_qpoint *p = malloc(n * sizeof(*p)), *out = malloc(n * sizeof(*out));
		double v = rndd(0, 100);
		uint64_t t = 1000 * S;
		for (size_t i = 0; i < n; i++) {
			t += (uint64_t)(rndd(0.5, 20) * 1e9);
			if (rnd() % 20 == 0)
				v = rndd(0, 5); /* reset */
			else
				v += rndd(0, 10);
			p[i] = (struct atel_qpoint){ t, v };
		}
		uint64_t w = (uint64_t)(rndd(5, 120) * 1e9);
		/* shuffle: input order must not matter */
		struct atel_qpoint *sh = malloc(n * sizeof(*sh));
		memcpy(sh, p, n * sizeof(*p));
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = rnd() % (i + 1);
			struct atel_qpoint x = sh[i];
			sh[i] = sh[j];
			sh[j] = x;
		}
		size_t nout;
		assert_int_equal(atel_q_calculate_rate(sh, n, w, out, &nout), 0);
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			double end = (double)p[i].ts_ns / 1e9;
			double want = ref_rate(p, n, end - (double)w / 1e9, end);
			if (isnan(want))
				continue;
			assert_true(k < nout);
			assert_int_equal(out[k].ts_ns, p[i].ts_ns);
			near(out[k].v, want, 1e-6, __LINE__);
			k++;
		}
		assert_int_equal(k, nout);
		free(sh);
		free(p);
		free(out);
	}
}

/* ---- moving average / anomalies -------------------------------------------- */

static void test_moving_average(void **st)
{
	(void)st;
	struct atel_qpoint p[5], out[5];
	for (int i = 0; i < 5; i++)
		p[i] = (struct atel_qpoint){ (uint64_t)i * S, i + 1.0 };
	assert_int_equal(atel_q_moving_average(p, 5, 3, out), 0);
	const double want[] = { 1, 1.5, 2, 3, 4 };
	for (int i = 0; i < 5; i++) {
		NEAR(out[i].v, want[i]);
		assert_int_equal(out[i].ts_ns, (uint64_t)i * S);
	}
	/* NaN keeps its place and stays out of the means */
	p[2].v = NAN;
	assert_int_equal(atel_q_moving_average(p, 5, 3, out), 0);
	assert_true(isnan(out[2].v));
	NEAR(out[3].v, 3);   /* {2, NaN, 4} */
	NEAR(out[4].v, 4.5); /* {NaN, 4, 5} */
	/* Inf leaves the window again */
	p[2].v = INFINITY;
	assert_int_equal(atel_q_moving_average(p, 5, 2, out), 0);
	assert_true(isinf(out[2].v) && isinf(out[3].v));
	NEAR(out[4].v, 4.5);
	/* unsorted input gives sorted output */
	struct atel_qpoint u[3] = { { 3 * S, 3 }, { 1 * S, 1 }, { 2 * S, 2 } };
	assert_int_equal(atel_q_moving_average(u, 3, 2, out), 0);
	assert_int_equal(out[0].ts_ns, 1 * S);
	NEAR(out[2].v, 2.5);
	assert_int_equal(atel_q_moving_average(u, 0, 2, out), 0);
	assert_int_equal(atel_q_moving_average(u, 3, 0, out), -EINVAL);

	/* random against a from-scratch window mean */
	for (int round = 0; round < 50; round++) {
		size_t n = 1 + rnd() % 9000, w = 1 + rnd() % 40;
		struct atel_qpoint *q = malloc(n * sizeof(*q)), *o = malloc(n * sizeof(*o));
		for (size_t i = 0; i < n; i++)
			q[i] = (struct atel_qpoint){ (uint64_t)i * S, rnd() % 50 == 0 ? NAN : rndd(-100, 100) };
		assert_int_equal(atel_q_moving_average(q, n, w, o), 0);
		for (size_t i = 0; i < n; i++) {
			double sum = 0;
			size_t c = 0;
			for (size_t j = i + 1 >= w ? i + 1 - w : 0; j <= i; j++)
				if (!isnan(q[j].v)) {
					sum += q[j].v;
					c++;
				}
			double wantv = isnan(q[i].v) || c == 0 ? NAN : sum / (double)c;
			near(o[i].v, wantv, 1e-9, __LINE__);
		}
		free(q);
		free(o);
	}
}

static void test_anomalies(void **st)
{
	(void)st;
	const double v[] = { 1, 3, 1, 3, 10, 2 };
	struct atel_qpoint p[6];
	struct atel_qanomaly a[6];
	for (int i = 0; i < 6; i++)
		p[i] = (struct atel_qpoint){ (uint64_t)i * S, v[i] };
	assert_int_equal(atel_q_detect_anomalies(p, 6, 4, 3.0, a), 0);
	assert_true(isnan(a[0].score) && !a[0].anomaly); /* no reference */
	assert_true(isnan(a[1].score) && !a[1].anomaly); /* one reference point */
	NEAR(a[2].mean, 2);
	NEAR(a[2].stddev, 1);
	NEAR(a[2].score, -1);                            /* (1 - 2) / 1 */
	NEAR(a[4].score, 8);                             /* window {1,3,1,3}: (10-2)/1 */
	assert_true(a[4].anomaly);
	/* i=5: window {3,1,3,10}: mean 4.25, var (1.5625+10.5625+1.5625+33.0625)/4 = 11.6875 */
	NEAR(a[5].mean, 4.25);
	NEAR(a[5].score, (2 - 4.25) / sqrt(11.6875));
	assert_false(a[5].anomaly);
	/* constant window: stddev 0 -> 0 or +-Inf */
	struct atel_qpoint c[4] = { { 0, 5 }, { S, 5 }, { 2 * S, 5 }, { 3 * S, 6 } };
	assert_int_equal(atel_q_detect_anomalies(c, 4, 10, 3, a), 0);
	NEAR(a[2].score, 0);
	assert_true(isinf(a[3].score) && a[3].anomaly);
	/* NaN and Inf never enter the window */
	struct atel_qpoint d[5] = { { 0, 1 }, { S, NAN }, { 2 * S, 3 }, { 3 * S, INFINITY }, { 4 * S, 2 } };
	assert_int_equal(atel_q_detect_anomalies(d, 5, 10, 3, a), 0);
	assert_true(isnan(a[1].score));
	assert_true(isinf(a[3].score) && a[3].anomaly);
	NEAR(a[4].mean, 2);
	NEAR(a[4].score, 0);
	assert_int_equal(atel_q_detect_anomalies(d, 0, 10, 3, a), 0);
	assert_int_equal(atel_q_detect_anomalies(d, 5, 0, 3, a), -EINVAL);

	for (int round = 0; round < 30; round++) {
		size_t n = 1 + rnd() % 2000, w = 1 + rnd() % 50;
		double sigma = rndd(0.5, 3);
		struct atel_qpoint *q = malloc(n * sizeof(*q));
		struct atel_qanomaly *o = malloc(n * sizeof(*o));
		for (size_t i = 0; i < n; i++)
			q[i] = (struct atel_qpoint){ (uint64_t)i * S, rndd(0, 10) + (rnd() % 100 == 0 ? 100 : 0) };
		assert_int_equal(atel_q_detect_anomalies(q, n, w, sigma, o), 0);
		for (size_t i = 0; i < n; i++) {
			size_t from = i >= w ? i - w : 0, cnt = i - from;
			if (cnt < 2) {
				assert_true(isnan(o[i].score));
				continue;
			}
			double mean = 0, var = 0;
			for (size_t j = from; j < i; j++)
				mean += q[j].v;
			mean /= (double)cnt;
			for (size_t j = from; j < i; j++)
				var += (q[j].v - mean) * (q[j].v - mean);
			double z = (q[i].v - mean) / sqrt(var / (double)cnt);
			near(o[i].score, z, 1e-9, __LINE__);
			assert_int_equal(o[i].anomaly, fabs(z) > sigma);
		}
		free(q);
		free(o);
	}
}

/* ---- aggregate ------------------------------------------------------------------ */

static void test_aggregate_hand(void **st)
{
	(void)st;
	struct atel_qpoint p[10], out[10];
	size_t n;
	for (int i = 0; i < 10; i++)
		p[9 - i] = (struct atel_qpoint){ (uint64_t)i * S, (double)i }; /* reversed input */
	struct {
		enum atel_qagg a;
		double b0, b1;
	} cases[] = {
		{ ATEL_QAGG_AVG, 2, 7 },   { ATEL_QAGG_SUM, 10, 35 }, { ATEL_QAGG_MIN, 0, 5 },
		{ ATEL_QAGG_MAX, 4, 9 },   { ATEL_QAGG_COUNT, 5, 5 }, { ATEL_QAGG_P50, 2, 7 },
		{ ATEL_QAGG_P95, 3.8, 8.8 }, { ATEL_QAGG_P99, 3.96, 8.96 },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		assert_int_equal(atel_q_aggregate(p, 10, 5 * S, cases[c].a, false, out, &n), 0);
		assert_int_equal(n, 2);
		assert_int_equal(out[0].ts_ns, 0);
		assert_int_equal(out[1].ts_ns, 5 * S);
		NEAR(out[0].v, cases[c].b0);
		NEAR(out[1].v, cases[c].b1);
	}
	/* rate of a cumulative counter per bucket: samples 0..4 at 0..4 s in
	 * [0,5): increase 4 over 4 s, to_start 0, to_end 1 s < 1.1 kept: 4*5/4/5 = 1 */
	assert_int_equal(atel_q_aggregate(p, 10, 5 * S, ATEL_QAGG_RATE, true, out, &n), 0);
	NEAR(out[0].v, 1);
	/* a bucket with one sample has no rate */
	assert_int_equal(atel_q_aggregate(p, 10, 1 * S, ATEL_QAGG_RATE, true, out, &n), 0);
	assert_int_equal(n, 10);
	assert_true(isnan(out[3].v));
	/* empty; bad arguments; NaN-only bucket */
	assert_int_equal(atel_q_aggregate(p, 0, 5 * S, ATEL_QAGG_AVG, false, out, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(atel_q_aggregate(p, 10, 0, ATEL_QAGG_AVG, false, out, &n), -EINVAL);
	struct atel_qpoint q[2] = { { 0, NAN }, { 6 * S, 1 } };
	assert_int_equal(atel_q_aggregate(q, 2, 5 * S, ATEL_QAGG_AVG, false, out, &n), 0);
	assert_int_equal(n, 2);
	assert_true(isnan(out[0].v));
	assert_int_equal(atel_q_aggregate(q, 2, 5 * S, ATEL_QAGG_COUNT, false, out, &n), 0);
	NEAR(out[0].v, 0);
	enum atel_qagg a;
	assert_int_equal(atel_q_agg_parse("p95", &a), 0);
	assert_int_equal(a, ATEL_QAGG_P95);
	assert_string_equal(atel_q_agg_name(ATEL_QAGG_RATE), "rate");
	assert_int_equal(atel_q_agg_parse("median", &a), -EINVAL);
}

static void test_aggregate_random(void **st)
{
	(void)st;
	for (int round = 0; round < 60; round++) {
		size_t n = 1 + rnd() % 1000;
		struct atel_qpoint *p = malloc(n * sizeof(*p)), *out = malloc(n * sizeof(*out));
		for (size_t i = 0; i < n; i++)
			p[i] = (struct atel_qpoint){ (uint64_t)(rndd(0, 3600) * 1e9), rndd(-50, 50) };
		uint64_t iv = (uint64_t)(rndd(1, 600) * 1e9);
		enum atel_qagg agg = (enum atel_qagg)(1 + rnd() % 8);
		size_t nout;
		assert_int_equal(atel_q_aggregate(p, n, iv, agg, false, out, &nout), 0);
		/* naive: for each bucket start seen, collect every value in it */
		size_t k = 0;
		for (uint64_t b = 0; b * iv <= 3600 * S; b++) {
			double vals[1000];
			size_t m = 0;
			for (size_t i = 0; i < n; i++)
				if (p[i].ts_ns >= b * iv && p[i].ts_ns < (b + 1) * iv)
					vals[m++] = p[i].v;
			if (!m)
				continue;
			double want;
			qsort(vals, m, sizeof(double), cmp_d);
			double sum = 0;
			for (size_t i = 0; i < m; i++)
				sum += vals[i];
			switch (agg) {
			case ATEL_QAGG_AVG: want = sum / (double)m; break;
			case ATEL_QAGG_SUM: want = sum; break;
			case ATEL_QAGG_MIN: want = vals[0]; break;
			case ATEL_QAGG_MAX: want = vals[m - 1]; break;
			case ATEL_QAGG_COUNT: want = (double)m; break;
			case ATEL_QAGG_P50: want = ref_percentile(vals, m, 0.5); break;
			case ATEL_QAGG_P95: want = ref_percentile(vals, m, 0.95); break;
			default: want = ref_percentile(vals, m, 0.99); break;
			}
			assert_true(k < nout);
			assert_int_equal(out[k].ts_ns, b * iv);
			near(out[k].v, want, 1e-9, __LINE__);
			k++;
		}
		assert_int_equal(k, nout);
		free(p);
		free(out);
	}
}

/* ---- parsers ------------------------------------------------------------------------ */

static void test_durations(void **st)
{
	(void)st;
	uint64_t ns;
	char err[160];
	struct {
		const char *s;
		uint64_t ns;
	} ok[] = {
		{ "5m", 300 * S },	  { "1h30m", 5400 * S },	{ "250ms", 250000000ull },
		{ "1.5s", 1500000000ull }, { "10", 10 * S },	   { "2d", 172800 * S },
		{ "1w", 604800 * S },	  { "100us", 100000ull },  { "7ns", 7 },
		{ "1y", 365ull * 86400 * S },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(atel_q_parse_duration(ok[i].s, &ns, err, sizeof(err)), 0);
		assert_int_equal(ns, ok[i].ns);
	}
	const char *bad[] = { "", "5x", "m", "5m3", "-5m", "1..5s", "5 m", "ms5" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(atel_q_parse_duration(bad[i], &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(atel_q_parse_duration("5x", &ns, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "duration \"5x\": column 2: unknown unit \"x\" (ns us ms s m h d w y)");
	assert_int_equal(atel_q_parse_duration("99999999999y", &ns, err, sizeof(err)), -ERANGE);

	uint64_t now = 10000 * S;
	assert_int_equal(atel_q_parse_time("now", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, now);
	assert_int_equal(atel_q_parse_time("now-1h", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 6400 * S);
	assert_int_equal(atel_q_parse_time("-10m", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 9400 * S);
	assert_int_equal(atel_q_parse_time("1700000000.5", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 1700000000500000000ull);
	assert_int_equal(atel_q_parse_time("2026-11-28T21:00:00Z", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 1795899600ull * S);
	assert_int_equal(atel_q_parse_time("2026-11-28T21:00:00.25+01:30", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, 1795894200ull * S + 250000000ull);
	assert_int_equal(atel_q_parse_time("2026-11-28", now, &ns, err, sizeof(err)), 0);
	assert_int_equal(ns, (1795899600ull - 21 * 3600) * S);
	assert_int_equal(atel_q_parse_time("yesterday", now, &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(atel_q_parse_time("2026-13-01T00:00:00Z", now, &ns, err, sizeof(err)), -EINVAL);
}

static void test_selectors(void **st)
{
	(void)st;
	struct atel_qselector s = { 0 };
	char err[160];
	assert_int_equal(atel_q_selector_parse("tool_calls_total{tool=\"Read\", status!=\"error\"}", &s, err,
					       sizeof(err)), 0);
	assert_string_equal(s.metric, "tool_calls_total");
	assert_int_equal(s.n, 2);
	assert_string_equal(s.m[0].key, "tool");
	assert_int_equal(s.m[1].op, ATEL_QM_NE);
	const char *k[] = { "status", "tool" };
	const char *v1[] = { "ok", "Read" }, *v2[] = { "error", "Read" }, *v3[] = { "ok", "Write" };
	assert_true(atel_q_selector_match(&s, k, v1, 2));
	assert_false(atel_q_selector_match(&s, k, v2, 2));
	assert_false(atel_q_selector_match(&s, k, v3, 2));
	atel_q_selector_free(&s);

	/* --labels form; regex anchored; missing label is "" */
	assert_int_equal(atel_q_selector_parse("agent_type=~cod.*|plan,phase!~\"x,y\",model=", &s, err, sizeof(err)),
			 0);
	assert_null(s.metric);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.m[1].value, "x,y");
	const char *k2[] = { "agent_type", "phase" };
	const char *a1[] = { "coder", "code" }, *a2[] = { "xcoder", "code" }, *a3[] = { "planner", "code" },
		   *a4[] = { "plan", "x,y" };
	assert_true(atel_q_selector_match(&s, k2, a1, 2));
	assert_false(atel_q_selector_match(&s, k2, a2, 2)); /* anchored at the start */
	assert_false(atel_q_selector_match(&s, k2, a3, 2)); /* anchored at the end */
	assert_false(atel_q_selector_match(&s, k2, a4, 2)); /* phase !~ x,y */
	const char *k3[] = { "agent_type", "model" }, *a5[] = { "plan", "gpt" };
	assert_false(atel_q_selector_match(&s, k3, a5, 2)); /* model= requires absent/empty */
	atel_q_selector_free(&s);

	/* a second parse adds matchers to a named metric */
	assert_int_equal(atel_q_selector_parse("error_total", &s, err, sizeof(err)), 0);
	assert_int_equal(atel_q_selector_parse("severity=high", &s, err, sizeof(err)), 0);
	assert_string_equal(s.metric, "error_total");
	assert_int_equal(s.n, 1);
	atel_q_selector_free(&s);
	assert_null(s.metric);

	struct {
		const char *text, *err;
	} bad[] = {
		{ "{k=v", "column 5: missing '}'" },
		{ "m{k>v}", "column 4: expected =, !=, =~ or !~ after label k" },
		{ "k=~\"(\"", NULL },
		{ "9abc{}", NULL },
		{ "m{k=\"v}", "column 5: unterminated quoted value" },
		{ "m{=v}", "column 3: expected a label name" },
		{ "m x", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct atel_qselector b = { 0 };
		int rc = atel_q_selector_parse(bad[i].text, &b, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("\"%s\" parsed (rc %d)", bad[i].text, rc);
		if (bad[i].err)
			assert_string_equal(err, bad[i].err);
		atel_q_selector_free(&b);
	}
	/* regexes whose expansion would exhaust memory in regcomp are refused up front
	 * (fuzz_query_args found "[0-9m]{2,3}++++..." taking > 4 GB) */
	struct {
		const char *text, *err;
	} costly[] = {
		{ "m{a=~\"[0-9m]{2,3}++++++++\"}",
		  "label a: regular expression \"[0-9m]{2,3}++++++++\" refused: a quantifier follows another quantifier" },
		{ "m{a=~\"((a{99}){99}){99}\"}",
		  "label a: regular expression \"((a{99}){99}){99}\" refused: repetitions expand beyond the complexity limit" },
		{ "m{a=~\"x*?\"}", "label a: regular expression \"x*?\" refused: a quantifier follows another quantifier" },
	};
	for (size_t i = 0; i < sizeof(costly) / sizeof(costly[0]); i++) {
		struct atel_qselector b = { 0 };
		assert_int_equal(atel_q_selector_parse(costly[i].text, &b, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, costly[i].err);
		atel_q_selector_free(&b);
	}
	/* ordinary regexes with bounds, classes, escapes and groups still compile */
	assert_int_equal(atel_q_selector_parse("m{a=~\"[0-9]{2,3}\",b=~\"(coder|planner)+\",c=~\"x\\\\+[*+]{1,}\"}", &s, err,
					       sizeof(err)),
			 0);
	{
		const char *kk[] = { "a", "b", "c" }, *vv[] = { "42", "coderplanner", "x+*" };
		assert_true(atel_q_selector_match(&s, kk, vv, 3));
	}
	atel_q_selector_free(&s);

	/* "k" alone is a metric name, not an error */
	assert_int_equal(atel_q_selector_parse("k", &s, err, sizeof(err)), 0);
	atel_q_selector_free(&s);
}

static void test_format(void **st)
{
	(void)st;
	char b[32];
	assert_string_equal(atel_q_fmt_duration(1500000, b, sizeof(b)), "1.5 ms");
	assert_string_equal(atel_q_fmt_duration(125 * S, b, sizeof(b)), "2m05s");
	assert_string_equal(atel_q_fmt_count(1234567, b, sizeof(b)), "1.23M");
	assert_string_equal(atel_q_fmt_count(42, b, sizeof(b)), "42");
	assert_string_equal(atel_q_fmt_count(25000, b, sizeof(b)), "25K");
	/* rounding never gives "1e+03K" (issue 14) */
	assert_string_equal(atel_q_fmt_count(999999, b, sizeof(b)), "1M");
	assert_string_equal(atel_q_fmt_count(999499, b, sizeof(b)), "999K");
	assert_string_equal(atel_q_fmt_count(999.6e6, b, sizeof(b)), "1G");
	assert_string_equal(atel_q_fmt_count(2e15, b, sizeof(b)), "2000000G");
	assert_string_equal(atel_q_fmt_value(0.25, "seconds", b, sizeof(b)), "250 ms");
	assert_string_equal(atel_q_fmt_value(37.5, "%", b, sizeof(b)), "37.5%");
	assert_string_equal(atel_q_fmt_value(NAN, "", b, sizeof(b)), "-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_percentile_hand),	 cmocka_unit_test(test_summarize_hand),
		cmocka_unit_test(test_summarize_random),	cmocka_unit_test(test_histogram_quantile),
		cmocka_unit_test(test_rate_hand),		cmocka_unit_test(test_rate_random),
		cmocka_unit_test(test_moving_average),	cmocka_unit_test(test_anomalies),
		cmocka_unit_test(test_aggregate_hand),	cmocka_unit_test(test_aggregate_random),
		cmocka_unit_test(test_durations),		cmocka_unit_test(test_selectors),
		cmocka_unit_test(test_format),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
