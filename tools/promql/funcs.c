/* SPDX-License-Identifier: MIT */
/*
 * funcs.c - PromQL's functions (Prometheus' promql/functions.go and
 * quantile.go, float samples only): the table the parser type-checks
 * against, and their implementations on one step's vectors (instant-vector
 * functions) or one series' window (range-vector functions).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval_int.h"

#define S ATEL_PROMQL_SCALAR
#define V ATEL_PROMQL_VECTOR
#define M ATEL_PROMQL_MATRIX
#define STR ATEL_PROMQL_STRING

/* Ordered by id (F_ABS == 1 is funcs[0]). */
static const struct atel__func funcs[] = {
	{ "abs", { V }, 1, 0, V, F_ABS },
	{ "absent", { V }, 1, 0, V, F_ABSENT },
	{ "absent_over_time", { M }, 1, 0, V, F_ABSENT_OVER_TIME },
	{ "acos", { V }, 1, 0, V, F_ACOS },
	{ "acosh", { V }, 1, 0, V, F_ACOSH },
	{ "asin", { V }, 1, 0, V, F_ASIN },
	{ "asinh", { V }, 1, 0, V, F_ASINH },
	{ "atan", { V }, 1, 0, V, F_ATAN },
	{ "atanh", { V }, 1, 0, V, F_ATANH },
	{ "avg_over_time", { M }, 1, 0, V, F_AVG_OVER_TIME },
	{ "ceil", { V }, 1, 0, V, F_CEIL },
	{ "changes", { M }, 1, 0, V, F_CHANGES },
	{ "clamp", { V, S, S }, 3, 0, V, F_CLAMP },
	{ "clamp_max", { V, S }, 2, 0, V, F_CLAMP_MAX },
	{ "clamp_min", { V, S }, 2, 0, V, F_CLAMP_MIN },
	{ "cos", { V }, 1, 0, V, F_COS },
	{ "cosh", { V }, 1, 0, V, F_COSH },
	{ "count_over_time", { M }, 1, 0, V, F_COUNT_OVER_TIME },
	{ "days_in_month", { V }, 1, 1, V, F_DAYS_IN_MONTH },
	{ "day_of_month", { V }, 1, 1, V, F_DAY_OF_MONTH },
	{ "day_of_week", { V }, 1, 1, V, F_DAY_OF_WEEK },
	{ "day_of_year", { V }, 1, 1, V, F_DAY_OF_YEAR },
	{ "deg", { V }, 1, 0, V, F_DEG },
	{ "delta", { M }, 1, 0, V, F_DELTA },
	{ "deriv", { M }, 1, 0, V, F_DERIV },
	{ "exp", { V }, 1, 0, V, F_EXP },
	{ "floor", { V }, 1, 0, V, F_FLOOR },
	{ "histogram_avg", { V }, 1, 0, V, F_HISTOGRAM_AVG },
	{ "histogram_count", { V }, 1, 0, V, F_HISTOGRAM_COUNT },
	{ "histogram_sum", { V }, 1, 0, V, F_HISTOGRAM_SUM },
	{ "histogram_stddev", { V }, 1, 0, V, F_HISTOGRAM_STDDEV },
	{ "histogram_stdvar", { V }, 1, 0, V, F_HISTOGRAM_STDVAR },
	{ "histogram_fraction", { S, S, V }, 3, 0, V, F_HISTOGRAM_FRACTION },
	{ "histogram_quantile", { S, V }, 2, 0, V, F_HISTOGRAM_QUANTILE },
	{ "double_exponential_smoothing", { M, S, S }, 3, 0, V, F_DOUBLE_EXPONENTIAL_SMOOTHING },
	{ "hour", { V }, 1, 1, V, F_HOUR },
	{ "idelta", { M }, 1, 0, V, F_IDELTA },
	{ "increase", { M }, 1, 0, V, F_INCREASE },
	{ "irate", { M }, 1, 0, V, F_IRATE },
	{ "label_replace", { V, STR, STR, STR, STR }, 5, 0, V, F_LABEL_REPLACE },
	{ "label_join", { V, STR, STR, STR }, 4, -1, V, F_LABEL_JOIN },
	{ "last_over_time", { M }, 1, 0, V, F_LAST_OVER_TIME },
	{ "ln", { V }, 1, 0, V, F_LN },
	{ "log10", { V }, 1, 0, V, F_LOG10 },
	{ "log2", { V }, 1, 0, V, F_LOG2 },
	{ "mad_over_time", { M }, 1, 0, V, F_MAD_OVER_TIME },
	{ "max_over_time", { M }, 1, 0, V, F_MAX_OVER_TIME },
	{ "min_over_time", { M }, 1, 0, V, F_MIN_OVER_TIME },
	{ "minute", { V }, 1, 1, V, F_MINUTE },
	{ "month", { V }, 1, 1, V, F_MONTH },
	{ "pi", { 0 }, 0, 0, S, F_PI },
	{ "predict_linear", { M, S }, 2, 0, V, F_PREDICT_LINEAR },
	{ "present_over_time", { M }, 1, 0, V, F_PRESENT_OVER_TIME },
	{ "quantile_over_time", { S, M }, 2, 0, V, F_QUANTILE_OVER_TIME },
	{ "rad", { V }, 1, 0, V, F_RAD },
	{ "rate", { M }, 1, 0, V, F_RATE },
	{ "resets", { M }, 1, 0, V, F_RESETS },
	{ "round", { V, S }, 2, 1, V, F_ROUND },
	{ "scalar", { V }, 1, 0, S, F_SCALAR },
	{ "sgn", { V }, 1, 0, V, F_SGN },
	{ "sin", { V }, 1, 0, V, F_SIN },
	{ "sinh", { V }, 1, 0, V, F_SINH },
	{ "sort", { V }, 1, 0, V, F_SORT },
	{ "sort_desc", { V }, 1, 0, V, F_SORT_DESC },
	{ "sort_by_label", { V, STR }, 2, -1, V, F_SORT_BY_LABEL },
	{ "sort_by_label_desc", { V, STR }, 2, -1, V, F_SORT_BY_LABEL_DESC },
	{ "sqrt", { V }, 1, 0, V, F_SQRT },
	{ "stddev_over_time", { M }, 1, 0, V, F_STDDEV_OVER_TIME },
	{ "stdvar_over_time", { M }, 1, 0, V, F_STDVAR_OVER_TIME },
	{ "sum_over_time", { M }, 1, 0, V, F_SUM_OVER_TIME },
	{ "tan", { V }, 1, 0, V, F_TAN },
	{ "tanh", { V }, 1, 0, V, F_TANH },
	{ "time", { 0 }, 0, 0, S, F_TIME },
	{ "timestamp", { V }, 1, 0, V, F_TIMESTAMP },
	{ "vector", { S }, 1, 0, V, F_VECTOR },
	{ "year", { V }, 1, 1, V, F_YEAR },
};
_Static_assert(sizeof(funcs) / sizeof(funcs[0]) == F_COUNT_ - 1, "one table entry per function id");

const struct atel__func *atel__func_lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
		if (strlen(funcs[i].name) == len && !memcmp(funcs[i].name, name, len))
			return &funcs[i];
	return NULL;
}

const struct atel__func *atel__func_by_id(int id)
{
	return &funcs[id - 1];
}

bool atel__func_is_range(int id)
{
	const struct atel__func *f = atel__func_by_id(id);
	for (int i = 0; i < f->nargs; i++)
		if (f->args[i] == M)
			return true;
	return false;
}

/* ---- numeric helpers ---------------------------------------------------------------------------- */

double kahan_inc(double inc, double sum, double *c)
{
	double t = sum + inc;
	if (isinf(t))
		*c = 0;
	else if (fabs(sum) >= fabs(inc))
		*c += (sum - t) + inc;
	else
		*c += (inc - t) + sum;
	return t;
}

/* vectorByValueHeap order: NaN first, then ascending. */
static int cmp_nan_first(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	if (isnan(x))
		return isnan(y) ? 0 : -1;
	if (isnan(y))
		return 1;
	return x < y ? -1 : x > y;
}

double quantile_of(double q, double *v, size_t n)
{
	if (n == 0 || isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	qsort(v, n, sizeof(*v), cmp_nan_first);
	double rank = q * (double)(n - 1);
	double lower = fmax(0, floor(rank));
	double upper = fmin((double)n - 1, lower + 1);
	double weight = rank - floor(rank);
	return v[(size_t)lower] * (1 - weight) + v[(size_t)upper] * weight;
}

/* Go's math.Max and math.Min: NaN wins, and +0 > -0. */
static double go_max(double x, double y)
{
	if (isinf(x) && x > 0)
		return x;
	if (isinf(y) && y > 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? y : x;
	return x > y ? x : y;
}

static double go_min(double x, double y)
{
	if (isinf(x) && x < 0)
		return x;
	if (isinf(y) && y < 0)
		return y;
	if (isnan(x) || isnan(y))
		return NAN;
	if (x == 0 && x == y)
		return signbit(x) ? x : y;
	return x < y ? x : y;
}

/* util/almost.Equal */
static bool almost_equal(double a, double b, double eps)
{
	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	const double min_normal = 2.2250738585072014e-308;
	double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
	if (a == 0 || b == 0 || abs_sum < min_normal)
		return diff < eps * min_normal;
	return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static void format_g(double v, char *buf, size_t len)
{
	atel__promql_format_float(v, buf, len);
}

/* ---- instant-vector functions -------------------------------------------------------------------- */

static double f_sgn(double v)
{
	return v < 0 ? -1 : v > 0 ? 1 : v;
}

static double f_rad(double v)
{
	return v * M_PI / 180;
}

static double f_deg(double v)
{
	return v * 180 / M_PI;
}

/* Go's math.Log2 returns exact results for powers of two. */
static double f_log2(double v)
{
	int e;
	double frac = frexp(v, &e);
	if (frac == 0.5)
		return (double)(e - 1);
	return log2(v);
}

static double (*simple_fn(int id))(double)
{
	switch (id) {
	case F_ABS: return fabs;
	case F_CEIL: return ceil;
	case F_FLOOR: return floor;
	case F_EXP: return exp;
	case F_SQRT: return sqrt;
	case F_LN: return log;
	case F_LOG2: return f_log2;
	case F_LOG10: return log10;
	case F_SIN: return sin;
	case F_COS: return cos;
	case F_TAN: return tan;
	case F_ASIN: return asin;
	case F_ACOS: return acos;
	case F_ATAN: return atan;
	case F_SINH: return sinh;
	case F_COSH: return cosh;
	case F_TANH: return tanh;
	case F_ASINH: return asinh;
	case F_ACOSH: return acosh;
	case F_ATANH: return atanh;
	case F_RAD: return f_rad;
	case F_DEG: return f_deg;
	case F_SGN: return f_sgn;
	default: return NULL;
	}
}

static double date_part(int id, int64_t secs)
{
	time_t t = (time_t)secs;
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return NAN;
	switch (id) {
	case F_DAYS_IN_MONTH: {
		static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		long y = (long)tm.tm_year + 1900;
		bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
		return tm.tm_mon == 1 && leap ? 29 : days[tm.tm_mon];
	}
	case F_DAY_OF_MONTH: return tm.tm_mday;
	case F_DAY_OF_WEEK: return tm.tm_wday;
	case F_DAY_OF_YEAR: return tm.tm_yday + 1;
	case F_HOUR: return tm.tm_hour;
	case F_MINUTE: return tm.tm_min;
	case F_MONTH: return tm.tm_mon + 1;
	case F_YEAR: return (double)tm.tm_year + 1900;
	default: return NAN;
	}
}

/* Go's int64(float64): truncation; out of range gives the minimum int64 on amd64. */
static int64_t go_int64(double v)
{
	if (isnan(v) || v >= 9223372036854775808.0 || v < -9223372036854775808.0)
		return INT64_MIN;
	return (int64_t)v;
}

/* facette/natsort.Compare: digit runs compare as numbers. */
static size_t next_chunk(const char *s, size_t i, bool *digits)
{
	*digits = s[i] >= '0' && s[i] <= '9';
	size_t j = i;
	while (s[j] && ((s[j] >= '0' && s[j] <= '9') == *digits))
		j++;
	return j;
}

static bool atoi_chunk(const char *s, size_t n, long long *out)
{
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (v > (LLONG_MAX - 9) / 10)
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static bool natsort_less(const char *a, const char *b)
{
	size_t ia = 0, ib = 0;
	for (;;) {
		if (!a[ia])
			return false; /* (A ran out first: only reached when equal so far, see below) */
		if (!b[ib])
			return false;
		bool da, db;
		size_t ea = next_chunk(a, ia, &da), eb = next_chunk(b, ib, &db);
		bool a_last = a[ea] == 0, b_last = b[eb] == 0;
		long long na, nb;
		if (da && db && atoi_chunk(a + ia, ea - ia, &na) && atoi_chunk(b + ib, eb - ib, &nb)) {
			if (na == nb) {
				if (a_last)
					return true;
				if (b_last)
					return false;
				ia = ea, ib = eb;
				continue;
			}
			return na < nb;
		}
		size_t la = ea - ia, lb = eb - ib;
		if (la == lb && !memcmp(a + ia, b + ib, la)) {
			if (a_last)
				return true;
			if (b_last)
				return false;
			ia = ea, ib = eb;
			continue;
		}
		int c = memcmp(a + ia, b + ib, la < lb ? la : lb);
		return c < 0 || (c == 0 && la < lb);
	}
}

struct sort_ctx {
	const struct atel_promql_node *node;
	bool desc;
};

/* Stable merge sort of samples (Prometheus' sorts are not stable; ties are unspecified there). */
static void msort(struct query *q, struct sample *v, size_t n, int (*cmp)(const struct sample *, const struct sample *,
									 const void *), const void *ctx)
{
	if (n < 2)
		return;
	struct sample *tmp = q_alloc(q, n * sizeof(*tmp));
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = cmp(&v[j], &v[i], ctx) < 0 ? v[j++] : v[i++];
			while (i < mid)
				tmp[k++] = v[i++];
			while (j < hi)
				tmp[k++] = v[j++];
		}
		memcpy(v, tmp, n * sizeof(*v));
	}
	q_free(q, tmp);
}

static int cmp_sort(const struct sample *a, const struct sample *b, const void *ctx)
{
	bool desc = *(const bool *)ctx;
	/* sort(): ascending, NaN last; sort_desc(): descending, NaN last */
	if (isnan(a->v) || isnan(b->v))
		return isnan(a->v) ? (isnan(b->v) ? 0 : 1) : -1;
	if (a->v == b->v)
		return 0;
	return (a->v < b->v) != desc ? -1 : 1;
}

static int cmp_by_label(const struct sample *a, const struct sample *b, const void *ctx)
{
	const struct sort_ctx *c = ctx;
	const struct atel_promql_node *n = c->node;
	for (size_t i = 1; i < n->call.nargs; i++) {
		const struct atel_promql_node *arg = n->call.args[i];
		while (arg->kind == ATEL_PROMQL_PAREN)
			arg = arg->paren.expr;
		const char *va = ls_get(a->ls, arg->string), *vb = ls_get(b->ls, arg->string);
		va = va ? va : "";
		vb = vb ? vb : "";
		if (va == vb || !strcmp(va, vb))
			continue;
		bool less = natsort_less(va, vb);
		return (less != c->desc) ? -1 : 1;
	}
	int k = ls_cmp(a->ls, b->ls);
	return c->desc ? -k : k;
}

struct bucket {
	double upper, count;
};

static int cmp_bucket(const void *a, const void *b)
{
	double x = ((const struct bucket *)a)->upper, y = ((const struct bucket *)b)->upper;
	return x < y ? -1 : x > y;
}

/* bucketQuantile (quantile.go). */
static double bucket_quantile(double q, struct bucket *b, size_t n, bool *forced)
{
	*forced = false;
	if (isnan(q))
		return NAN;
	if (q < 0)
		return -INFINITY;
	if (q > 1)
		return INFINITY;
	qsort(b, n, sizeof(*b), cmp_bucket);
	if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0))
		return NAN;
	/* coalesce equal bounds */
	size_t o = 0;
	for (size_t i = 1; i < n; i++) {
		if (b[i].upper == b[o].upper)
			b[o].count += b[i].count;
		else
			b[++o] = b[i];
	}
	n = o + 1;
	/* ensureMonotonicAndIgnoreSmallDeltas, tolerance 1e-12 */
	double prev = b[0].count;
	for (size_t i = 1; i < n; i++) {
		double curr = b[i].count;
		if (curr == prev)
			continue;
		if (almost_equal(prev, curr, 1e-12)) {
			b[i].count = prev;
			continue;
		}
		if (curr < prev) {
			b[i].count = prev;
			*forced = true;
			continue;
		}
		prev = curr;
	}
	if (n < 2)
		return NAN;
	double observations = b[n - 1].count;
	if (observations == 0)
		return NAN;
	double rank = q * observations;
	/* sort.Search(len-1, count >= rank) */
	size_t lo = 0, hi = n - 1;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b[mid].count >= rank)
			hi = mid;
		else
			lo = mid + 1;
	}
	size_t k = lo;
	if (k == n - 1)
		return b[n - 2].upper;
	if (k == 0 && b[0].upper <= 0)
		return b[0].upper;
	double start = 0, end = b[k].upper, count = b[k].count;
	if (k > 0) {
		start = b[k - 1].upper;
		count -= b[k - 1].count;
		rank -= b[k - 1].count;
	}
	return start + (end - start) * (rank / count);
}

/* strconv.ParseFloat for `le` values: no leading/trailing junk, "nan(...)" refused. */
static bool parse_le(const char *s, double *out)
{
	if (!s || !*s || s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '(')
			return false;
	char *end;
	double v = strtod(s, &end);
	if (*end != 0)
		return false;
	*out = v;
	return true;
}

static void histogram_quantile(struct vcall *c)
{
	struct query *q = c->q;
	const struct atel_promql_node *n = c->node;
	double phi = c->args[0].n ? c->args[0].s[0].v : NAN;
	if (isnan(phi) || phi < 0 || phi > 1) {
		char v[64];
		format_g(phi, v, sizeof(v));
		q_annotate(q, false, n->call.args[0], "PromQL warning: quantile value should be between 0 and 1, got %s", v);
	}
	struct vector *in = &c->args[1];
	struct pmap groups = { 0 };
	struct hq {
		const struct lset *out;
		struct bucket *b;
		size_t n, cap;
	} *hqs = NULL;
	size_t nhq = 0;
	for (size_t i = 0; i < in->n; i++) {
		const struct sample *s = &in->s[i];
		const char *le = ls_get(s->ls, "le");
		double upper;
		if (!parse_le(le, &upper)) {
			const char *name = ls_get(s->ls, "__name__");
			char qle[300], qname[300];
			atel__promql_quote(le ? le : "", qle, sizeof(qle));
			atel__promql_quote(name ? name : "", qname, sizeof(qname));
			q_annotate(q, false, n->call.args[1],
				   "PromQL warning: bucket label \"le\" is missing or has a malformed value of %s for metric name %s",
				   qle, qname);
			continue;
		}
		struct lbuild b;
		lb_init(&b, q, s->ls);
		lb_del(&b, "le");
		const struct lset *key = lb_done(&b);
		bool fresh;
		size_t *slot = pmap_put(q, &groups, key, &fresh);
		if (fresh) {
			hqs = q_realloc(q, hqs, (nhq + 1) * sizeof(*hqs));
			memset(&hqs[nhq], 0, sizeof(*hqs));
			hqs[nhq].out = ls_drop_name(q, key);
			*slot = nhq++;
		}
		struct hq *h = &hqs[*slot];
		if (h->n == h->cap) {
			h->cap = h->cap ? h->cap * 2 : 8;
			h->b = q_realloc(q, h->b, h->cap * sizeof(*h->b));
		}
		h->b[h->n++] = (struct bucket){ upper, s->v };
	}
	for (size_t i = 0; i < nhq; i++) {
		bool forced;
		double v = bucket_quantile(phi, hqs[i].b, hqs[i].n, &forced);
		vec_push(q, c->out, hqs[i].out, c->ts, v, false);
		if (forced) {
			const char *name = ls_get(hqs[i].out, "__name__");
			char qname[300];
			atel__promql_quote(name ? name : "", qname, sizeof(qname));
			q_annotate(q, true, n->call.args[1],
				   "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name %s",
				   qname);
		}
		q_free(q, hqs[i].b);
	}
	q_free(q, hqs);
	pmap_free(q, &groups);
}

void atel__func_vector(int id, struct vcall *c)
{
	struct query *q = c->q;
	struct vector *in = c->nargs ? &c->args[0] : NULL;
	double (*fn)(double) = simple_fn(id);
	if (fn) {
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, fn(in->s[i].v), true);
		return;
	}
	switch (id) {
	case F_CLAMP: {
		double lo = c->args[1].s[0].v, hi = c->args[2].s[0].v;
		if (hi < lo)
			return;
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, go_max(lo, go_min(hi, in->s[i].v)), true);
		return;
	}
	case F_CLAMP_MAX:
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, go_min(c->args[1].s[0].v, in->s[i].v), true);
		return;
	case F_CLAMP_MIN:
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, go_max(c->args[1].s[0].v, in->s[i].v), true);
		return;
	case F_ROUND: {
		double to = c->nargs >= 2 ? c->args[1].s[0].v : 1;
		double inv = 1.0 / to;
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, floor(in->s[i].v * inv + 0.5) / inv, true);
		return;
	}
	case F_SCALAR:
		vec_push(q, c->out, q->empty, c->ts, in->n == 1 ? in->s[0].v : NAN, false);
		return;
	case F_VECTOR:
		vec_push(q, c->out, q->empty, c->ts, in->s[0].v, false);
		return;
	case F_TIME:
		vec_push(q, c->out, q->empty, c->ts, (double)c->ts / 1000.0, false);
		return;
	case F_PI:
		vec_push(q, c->out, q->empty, c->ts, M_PI, false);
		return;
	case F_TIMESTAMP:
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, (double)in->s[i].t / 1000.0, true);
		return;
	case F_DAYS_IN_MONTH:
	case F_DAY_OF_MONTH:
	case F_DAY_OF_WEEK:
	case F_DAY_OF_YEAR:
	case F_HOUR:
	case F_MINUTE:
	case F_MONTH:
	case F_YEAR:
		if (c->nargs == 0) {
			vec_push(q, c->out, q->empty, c->ts, date_part(id, c->ts / 1000), false);
			return;
		}
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, date_part(id, go_int64(in->s[i].v)), true);
		return;
	case F_ABSENT:
		if (in->n == 0)
			vec_push(q, c->out, atel__absent_labels(q, c->node->call.args[0]), c->ts, 1, false);
		return;
	case F_SORT:
	case F_SORT_DESC: {
		bool desc = id == F_SORT_DESC;
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, in->s[i].v, in->s[i].drop_name);
		msort(q, c->out->s, c->out->n, cmp_sort, &desc);
		return;
	}
	case F_SORT_BY_LABEL:
	case F_SORT_BY_LABEL_DESC: {
		struct sort_ctx sc = { c->node, id == F_SORT_BY_LABEL_DESC };
		for (size_t i = 0; i < in->n; i++)
			vec_push(q, c->out, in->s[i].ls, c->ts, in->s[i].v, in->s[i].drop_name);
		msort(q, c->out->s, c->out->n, cmp_by_label, &sc);
		return;
	}
	case F_HISTOGRAM_QUANTILE:
		histogram_quantile(c);
		return;
	case F_HISTOGRAM_AVG:
	case F_HISTOGRAM_COUNT:
	case F_HISTOGRAM_SUM:
	case F_HISTOGRAM_STDDEV:
	case F_HISTOGRAM_STDVAR:
	case F_HISTOGRAM_FRACTION:
		/* These read native histogram samples only; float samples are skipped. */
		return;
	default:
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "function %s has no instant-vector implementation",
		       atel__func_by_id(id)->name);
	}
}

/* ---- range-vector functions ----------------------------------------------------------------------- */

/* extrapolatedRate: rate(), increase(), delta(). */
static void extrapolated_rate(struct rcall *c, bool counter, bool is_rate)
{
	if (c->n < 2)
		return;
	const struct pt *w = c->w;
	size_t n = c->n;
	int64_t range_start = c->maxt - c->range, range_end = c->maxt;
	double result = w[n - 1].v - w[0].v;
	if (counter) {
		double prev = w[0].v;
		for (size_t i = 1; i < n; i++) {
			if (w[i].v < prev)
				result += prev;
			prev = w[i].v;
		}
	}
	int64_t first_t = w[0].t, last_t = w[n - 1].t;
	double to_start = (double)(first_t - range_start) / 1000;
	double to_end = (double)(range_end - last_t) / 1000;
	double sampled = (double)(last_t - first_t) / 1000;
	double avg_between = sampled / (double)(n - 1);
	double threshold = avg_between * 1.1;
	double interval = sampled;
	if (to_start >= threshold)
		to_start = avg_between / 2;
	if (counter && result > 0 && w[0].v >= 0) {
		/* Counters cannot go below zero: do not extrapolate past the zero point. */
		double to_zero = sampled * (w[0].v / result);
		if (to_zero < to_start)
			to_start = to_zero;
	}
	interval += to_start;
	if (to_end >= threshold)
		to_end = avg_between / 2;
	interval += to_end;
	double factor = interval / sampled;
	if (is_rate)
		factor /= (double)c->range / 1000.0;
	c->v = result * factor;
	c->emit = true;
}

static void instant_value(struct rcall *c, bool is_rate)
{
	if (c->n < 2)
		return;
	const struct pt *last = &c->w[c->n - 1], *prev = &c->w[c->n - 2];
	double v = is_rate && last->v < prev->v ? last->v : last->v - prev->v;
	int64_t dt = last->t - prev->t;
	if (dt == 0)
		return;
	if (is_rate)
		v /= (double)dt / 1000;
	c->v = v;
	c->emit = true;
}

static void linear_regression(const struct pt *w, size_t n, int64_t intercept_t, double *slope, double *intercept)
{
	double cnt = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
	double init_y = w[0].v;
	bool const_y = true;
	for (size_t i = 0; i < n; i++) {
		if (const_y && i > 0 && w[i].v != init_y)
			const_y = false;
		cnt += 1;
		double x = (double)(w[i].t - intercept_t) / 1e3;
		sx = kahan_inc(x, sx, &cx);
		sy = kahan_inc(w[i].v, sy, &cy);
		sxy = kahan_inc(x * w[i].v, sxy, &cxy);
		sx2 = kahan_inc(x * x, sx2, &cx2);
	}
	if (const_y) {
		if (isinf(init_y)) {
			*slope = NAN;
			*intercept = NAN;
			return;
		}
		*slope = 0;
		*intercept = init_y;
		return;
	}
	sx += cx;
	sy += cy;
	sxy += cxy;
	sx2 += cx2;
	double cov = sxy - sx * sy / cnt;
	double var = sx2 - sx * sx / cnt;
	*slope = cov / var;
	*intercept = sy / cnt - *slope * sx / cnt;
}

static void emit(struct rcall *c, double v)
{
	c->v = v;
	c->emit = true;
}

void atel__func_range(int id, struct rcall *c)
{
	const struct pt *w = c->w;
	size_t n = c->n;
	switch (id) {
	case F_RATE:
		extrapolated_rate(c, true, true);
		return;
	case F_INCREASE:
		extrapolated_rate(c, true, false);
		return;
	case F_DELTA:
		extrapolated_rate(c, false, false);
		return;
	case F_IRATE:
		instant_value(c, true);
		return;
	case F_IDELTA:
		instant_value(c, false);
		return;
	case F_DERIV: {
		if (n < 2)
			return;
		double slope, icpt;
		linear_regression(w, n, w[0].t, &slope, &icpt);
		emit(c, slope);
		return;
	}
	case F_PREDICT_LINEAR: {
		if (n < 2)
			return;
		double slope, icpt;
		linear_regression(w, n, c->ts, &slope, &icpt);
		emit(c, slope * c->arg[1] + icpt);
		return;
	}
	case F_RESETS: {
		size_t r = 0;
		for (size_t i = 1; i < n; i++)
			if (w[i].v < w[i - 1].v)
				r++;
		emit(c, (double)r);
		return;
	}
	case F_CHANGES: {
		size_t ch = 0;
		for (size_t i = 1; i < n; i++)
			if (w[i].v != w[i - 1].v && !(isnan(w[i].v) && isnan(w[i - 1].v)))
				ch++;
		emit(c, (double)ch);
		return;
	}
	case F_COUNT_OVER_TIME:
		emit(c, (double)n);
		return;
	case F_PRESENT_OVER_TIME:
	case F_ABSENT_OVER_TIME:
		emit(c, 1);
		return;
	case F_LAST_OVER_TIME:
		emit(c, w[n - 1].v);
		return;
	case F_SUM_OVER_TIME: {
		double sum = 0, k = 0;
		for (size_t i = 0; i < n; i++)
			sum = kahan_inc(w[i].v, sum, &k);
		emit(c, isinf(sum) ? sum : sum + k);
		return;
	}
	case F_AVG_OVER_TIME: {
		double sum = 0, mean = 0, count = 0, k = 0;
		bool incremental = false;
		for (size_t i = 0; i < n; i++) {
			double f = w[i].v;
			count++;
			if (!incremental) {
				double kk = k;
				double ns = kahan_inc(f, sum, &kk);
				if (count == 1 || !isinf(ns)) {
					sum = ns;
					k = kk;
					continue;
				}
				incremental = true;
				mean = sum / (count - 1);
				k /= count - 1;
			}
			if (isinf(mean)) {
				if (isinf(f) && (mean > 0) == (f > 0))
					continue;
				if (!isinf(f) && !isnan(f))
					continue;
			}
			double cm = mean + k;
			mean = kahan_inc(f / count - cm / count, mean, &k);
		}
		emit(c, incremental ? mean + k : (sum + k) / count);
		return;
	}
	case F_MIN_OVER_TIME:
	case F_MAX_OVER_TIME: {
		double m = w[0].v;
		for (size_t i = 0; i < n; i++) {
			double f = w[i].v;
			if (id == F_MAX_OVER_TIME ? (f > m || isnan(m)) : (f < m || isnan(m)))
				m = f;
		}
		emit(c, m);
		return;
	}
	case F_STDDEV_OVER_TIME:
	case F_STDVAR_OVER_TIME: {
		double count = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
		for (size_t i = 0; i < n; i++) {
			double f = w[i].v;
			count++;
			double delta = f - (mean + cmean);
			mean = kahan_inc(delta / count, mean, &cmean);
			aux = kahan_inc(delta * (f - (mean + cmean)), aux, &caux);
		}
		double var = (aux + caux) / count;
		emit(c, id == F_STDDEV_OVER_TIME ? sqrt(var) : var);
		return;
	}
	case F_QUANTILE_OVER_TIME: {
		double phi = c->arg[0];
		if (isnan(phi) || phi < 0 || phi > 1) {
			char v[64];
			format_g(phi, v, sizeof(v));
			q_annotate(c->q, false, c->node->call.args[0],
				   "PromQL warning: quantile value should be between 0 and 1, got %s", v);
		}
		double *vals = q_alloc(c->q, n * sizeof(double));
		for (size_t i = 0; i < n; i++)
			vals[i] = w[i].v;
		emit(c, quantile_of(phi, vals, n));
		q_free(c->q, vals);
		return;
	}
	case F_MAD_OVER_TIME: {
		double *vals = q_alloc(c->q, n * sizeof(double));
		for (size_t i = 0; i < n; i++)
			vals[i] = w[i].v;
		double median = quantile_of(0.5, vals, n);
		for (size_t i = 0; i < n; i++)
			vals[i] = fabs(w[i].v - median);
		emit(c, quantile_of(0.5, vals, n));
		q_free(c->q, vals);
		return;
	}
	case F_DOUBLE_EXPONENTIAL_SMOOTHING: {
		double sf = c->arg[1], tf = c->arg[2];
		if (sf <= 0 || sf >= 1)
			q_fail(c->q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL,
			       "invalid smoothing factor. Expected: 0 < sf < 1, got: %f", sf);
		if (tf <= 0 || tf >= 1)
			q_fail(c->q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid trend factor. Expected: 0 < tf < 1, got: %f",
			       tf);
		if (n < 2)
			return;
		double s0 = 0, s1 = w[0].v, b = w[1].v - w[0].v;
		for (size_t i = 1; i < n; i++) {
			double x = sf * w[i].v;
			/* calcTrendValue(i-1, tf, s0, s1, b) */
			if (i - 1 != 0)
				b = tf * (s1 - s0) + (1 - tf) * b;
			double y = (1 - sf) * (s1 + b);
			s0 = s1;
			s1 = x + y;
		}
		emit(c, s1);
		return;
	}
	default:
		q_fail(c->q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "function %s has no range-vector implementation",
		       atel__func_by_id(id)->name);
	}
}
