/* SPDX-License-Identifier: MIT */
/*
 * promqltest.c - runs Prometheus' PromQL test files (promql/promqltest,
 * format in third_party/prometheus-promqltest/README.md) against
 * libatel_promql with an in-memory storage.
 *
 *   promqltest FILE.test [UNSUPPORTED_LIST]
 *
 * Commands: load <step> (and load_with_nhcb, whose float series are loaded;
 * the native-histogram conversion is not), clear, eval / eval_fail /
 * eval_warn / eval_info / eval_ordered with "instant at <t>" or
 * "range from <t> to <t> step <d>", expected series with the series
 * notation (1+2x10, _, _x3, stale, -2-1x3, Inf, NaN), scalars,
 * expected_fail_message and expected_fail_regexp.
 *
 * Like upstream's runner (promqltest/test.go) every instant case is also
 * run as a range query over [t-1m, t+1m] (the middle step must give the
 * same result, unless the case is ordered), and, unless the expression uses
 * a time-dependent function, with every selector and subquery pinned with
 * "@ t" and evaluated at -10t, 0, t/5, t and 10t (or -1s, 0, 1s for t = 0).
 * Results compare with a relative tolerance of 1e-6 (util/almost.Equal).
 *
 * A case listed in UNSUPPORTED_LIST ("<file>:<line> <reason>") is run too:
 * when it fails it counts as unsupported (the reason is printed); when it
 * passes, the runner fails, so the list cannot hide a working case.
 * Exit status: 0 when nothing failed.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql.h"
#include "promql_int.h"

#define STALE_NAN_BITS ATEL_PROMQL_STALE_NAN_BITS

static double stale_nan(void)
{
	uint64_t b = STALE_NAN_BITS;
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

static bool is_stale(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b == STALE_NAN_BITS;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xcalloc(n + 1, 1);
	memcpy(p, s, n);
	return p;
}

/* ---- label sets (sorted by name) ------------------------------------------------------------- */

struct labels {
	struct atel_promql_label *l;
	size_t n;
};

static int cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct atel_promql_label *)a)->name, ((const struct atel_promql_label *)b)->name);
}

static void labels_sort(struct labels *ls)
{
	qsort(ls->l, ls->n, sizeof(*ls->l), cmp_label);
}

static bool labels_equal(const struct atel_promql_label *a, size_t na, const struct atel_promql_label *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) || strcmp(a[i].value, b[i].value))
			return false;
	return true;
}

static void labels_free(struct labels *ls)
{
	for (size_t i = 0; i < ls->n; i++) {
		free((char *)ls->l[i].name);
		free((char *)ls->l[i].value);
	}
	free(ls->l);
	ls->l = NULL;
	ls->n = 0;
}

static void labels_print(FILE *f, const struct atel_promql_label *l, size_t n)
{
	fputc('{', f);
	for (size_t i = 0; i < n; i++) {
		char q[512];
		atel__promql_quote(l[i].value, q, sizeof(q));
		fprintf(f, "%s%s=%s", i ? ", " : "", l[i].name, q);
	}
	fputc('}', f);
}

/* ---- the series notation ----------------------------------------------------------------------- */

struct seqval {
	double v;
	bool omitted;
	bool histogram;    /* a native histogram sample: not supported */
};

struct seq {
	struct seqval *v;
	size_t n, cap;
};

static void seq_push(struct seq *s, struct seqval v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = v;
}

/* A decimal number (no hex: "0x59" in a series is 0 times 59), Inf, NaN, or a duration in seconds. */
static bool scan_float(const char **pp, double *out)
{
	const char *p = *pp;
	if (!strncasecmp(p, "inf", 3) && !isalnum((unsigned char)p[3])) {
		*out = INFINITY;
		*pp = p + 3;
		return true;
	}
	if (!strncasecmp(p, "nan", 3) && !isalnum((unsigned char)p[3])) {
		*out = NAN;
		*pp = p + 3;
		return true;
	}
	const char *s = p;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (p == s || (p == s + 1 && *s == '.'))
		return false;
	if ((*p == 'e' || *p == 'E') && (isdigit((unsigned char)p[1]) || ((p[1] == '+' || p[1] == '-') && isdigit((unsigned char)p[2])))) {
		p += 2;
		while (isdigit((unsigned char)*p))
			p++;
	}
	char *tmp = xstrndup(s, (size_t)(p - s));
	*out = strtod(tmp, NULL);
	free(tmp);
	*pp = p;
	return true;
}

static bool scan_signed(const char **pp, double *out)
{
	const char *p = *pp;
	double sign = 1;
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
	}
	if (!scan_float(&p, out))
		return false;
	*out *= sign;
	*pp = p;
	return true;
}

static bool scan_uint(const char **pp, unsigned long *out)
{
	const char *p = *pp;
	if (!isdigit((unsigned char)*p))
		return false;
	unsigned long v = 0;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 10000000)
			return false;
		p++;
	}
	*out = v;
	*pp = p;
	return true;
}

/* Parse the values after a series' labels. @return NULL or a message. */
static const char *parse_values(const char *p, struct seq *out)
{
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			return NULL;
		if (p[0] == '{' && p[1] == '{') {
			/* {{...}} native histogram (optionally with x N or +/- {{...}}xN) */
			int depth = 0;
			do {
				if (*p == '{')
					depth++;
				else if (*p == '}')
					depth--;
				p++;
			} while (*p && depth > 0);
			unsigned long times = 0;
			if (*p == 'x') {
				p++;
				if (!scan_uint(&p, &times))
					return "bad repetition after histogram";
				times++;
			} else if (*p == '+' || *p == '-') {
				p++;
				while (*p && *p != 'x')
					p++;
				if (*p != 'x')
					return "bad histogram series";
				p++;
				if (!scan_uint(&p, &times))
					return "bad repetition after histogram";
				times++;
			} else {
				times = 1;
			}
			for (unsigned long i = 0; i < times; i++)
				seq_push(out, (struct seqval){ .histogram = true });
			continue;
		}
		if (*p == '_') {
			p++;
			unsigned long times = 1;
			if (*p == 'x') {
				p++;
				if (!scan_uint(&p, &times))
					return "bad repetition after _";
			}
			for (unsigned long i = 0; i < times; i++)
				seq_push(out, (struct seqval){ .omitted = true });
			continue;
		}
		if (!strncmp(p, "stale", 5) && (p[5] == 0 || isspace((unsigned char)p[5]))) {
			seq_push(out, (struct seqval){ .v = stale_nan() });
			p += 5;
			continue;
		}
		double a;
		if (!scan_signed(&p, &a))
			return "expected a number, _, stale or a histogram";
		if (*p == 'x') {
			p++;
			unsigned long times;
			if (!scan_uint(&p, &times))
				return "bad repetition";
			for (unsigned long i = 0; i <= times; i++)
				seq_push(out, (struct seqval){ .v = a });
		} else if (*p == '+' || *p == '-') {
			double d;
			if (!scan_signed(&p, &d) || *p != 'x')
				return "expected <start>+<step>x<count>";
			p++;
			unsigned long times;
			if (!scan_uint(&p, &times))
				return "bad repetition";
			for (unsigned long i = 0; i <= times; i++) {
				seq_push(out, (struct seqval){ .v = a });
				a += d;
			}
		} else {
			seq_push(out, (struct seqval){ .v = a });
		}
		if (*p && *p != ' ' && *p != '\t')
			return "unexpected text after a value";
	}
}

/* metric{a="b", ...} or {…} or metric; then values. @return NULL or a message. */
static const char *parse_series(const char *line, struct labels *ls, struct seq *vals)
{
	const char *p = line;
	memset(ls, 0, sizeof(*ls));
	memset(vals, 0, sizeof(*vals));
	const char *name = p;
	while (isalnum((unsigned char)*p) || *p == '_' || *p == ':')
		p++;
	size_t cap = 8;
	ls->l = xcalloc(cap, sizeof(*ls->l));
	if (p > name) {
		ls->l[ls->n].name = xstrndup("__name__", 8);
		ls->l[ls->n].value = xstrndup(name, (size_t)(p - name));
		ls->n++;
	}
	if (*p == '{') {
		p++;
		for (;;) {
			while (isspace((unsigned char)*p))
				p++;
			if (*p == '}') {
				p++;
				break;
			}
			const char *ln = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			if (p == ln)
				return "expected a label name";
			size_t lnl = (size_t)(p - ln);
			while (isspace((unsigned char)*p))
				p++;
			if (*p != '=')
				return "expected =";
			p++;
			while (isspace((unsigned char)*p))
				p++;
			if (*p != '"' && *p != '\'' && *p != '`')
				return "expected a quoted label value";
			char qc = *p;
			const char *vs = p++;
			while (*p && *p != qc) {
				if (*p == '\\' && qc != '`' && p[1])
					p++;
				p++;
			}
			if (*p != qc)
				return "unterminated label value";
			p++;
			struct atel__arena ar = { 0 };
			const char *why;
			char *v = atel__promql_unquote(&ar, vs, (size_t)(p - vs), &why);
			if (!v) {
				atel__arena_free(&ar);
				return "bad label value";
			}
			if (ls->n + 1 >= cap) {
				cap *= 2;
				ls->l = xrealloc(ls->l, cap * sizeof(*ls->l));
			}
			ls->l[ls->n].name = xstrndup(ln, lnl);
			ls->l[ls->n].value = xstrndup(v, strlen(v));
			ls->n++;
			atel__arena_free(&ar);
			while (isspace((unsigned char)*p))
				p++;
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p != '}')
				return "expected , or }";
		}
	}
	/* An empty value means the label is absent (labels.New keeps it; equality ignores none). */
	size_t o = 0;
	for (size_t i = 0; i < ls->n; i++) {
		if (!ls->l[i].value[0]) {
			free((char *)ls->l[i].name);
			free((char *)ls->l[i].value);
			continue;
		}
		ls->l[o++] = ls->l[i];
	}
	ls->n = o;
	labels_sort(ls);
	if (*p && *p != ' ' && *p != '\t')
		return "unexpected text after the labels";
	return parse_values(p, vals);
}

/* ---- in-memory storage ---------------------------------------------------------------------- */

struct mseries {
	struct labels ls;
	struct atel_promql_point *pts;
	size_t n, cap;
};

struct mstore {
	struct mseries *s;
	size_t n, cap;
	size_t selects;     /* calls, for the runner's own checks */
};

static void mstore_clear(struct mstore *m)
{
	for (size_t i = 0; i < m->n; i++) {
		labels_free(&m->s[i].ls);
		free(m->s[i].pts);
	}
	free(m->s);
	memset(m, 0, sizeof(*m));
}

static struct mseries *mstore_get(struct mstore *m, const struct labels *ls)
{
	for (size_t i = 0; i < m->n; i++)
		if (labels_equal(m->s[i].ls.l, m->s[i].ls.n, ls->l, ls->n))
			return &m->s[i];
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->s = xrealloc(m->s, m->cap * sizeof(*m->s));
	}
	struct mseries *s = &m->s[m->n++];
	memset(s, 0, sizeof(*s));
	s->ls.l = xcalloc(ls->n + 1, sizeof(*ls->l));
	for (size_t i = 0; i < ls->n; i++) {
		s->ls.l[i].name = xstrndup(ls->l[i].name, strlen(ls->l[i].name));
		s->ls.l[i].value = xstrndup(ls->l[i].value, strlen(ls->l[i].value));
	}
	s->ls.n = ls->n;
	return s;
}

/* Append like the TSDB: in order; an identical duplicate is ignored. @return NULL or a message. */
static const char *mstore_append(struct mseries *s, int64_t t, double v)
{
	if (s->n) {
		struct atel_promql_point *last = &s->pts[s->n - 1];
		if (t < last->t_ms)
			return "out of order sample";
		if (t == last->t_ms) {
			uint64_t a, b;
			memcpy(&a, &last->v, 8);
			memcpy(&b, &v, 8);
			return a == b ? NULL : "duplicate sample for timestamp";
		}
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->pts = xrealloc(s->pts, s->cap * sizeof(*s->pts));
	}
	s->pts[s->n++] = (struct atel_promql_point){ t, v };
	return NULL;
}

static int mstore_select(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink, char *errmsg,
			 size_t errlen)
{
	(void)errmsg, (void)errlen;
	struct mstore *m = ctx;
	m->selects++;
	for (size_t i = 0; i < m->n; i++) {
		struct mseries *s = &m->s[i];
		uint32_t id;
		int rc = atel_promql_sink_series(sink, s->ls.l, s->ls.n, &id);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		/* first sample >= mint */
		size_t lo = 0, hi = s->n;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (s->pts[mid].t_ms < sel->mint_ms)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t k = lo; k < s->n && s->pts[k].t_ms <= sel->maxt_ms; k++) {
			rc = atel_promql_sink_sample(sink, id, s->pts[k].t_ms, s->pts[k].v);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* ---- the test file ---------------------------------------------------------------------------- */

struct expect {
	struct labels ls;
	struct seq vals;
	int pos;            /* 1-based position among the expectations (ordered) */
};

struct evalcmd {
	int line;
	char *expr;
	bool range, fail, warn, info, ordered;
	int64_t start, end, step;
	char *fail_msg, *fail_regexp;
	bool expect_scalar;
	double scalar;
	struct expect *ex;
	size_t nex;
};

struct unsupported {
	char *file;
	int line;
	char *reason;
	bool used;
};

static struct unsupported *unsup;
static size_t nunsup;

static void load_unsupported(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "promqltest: cannot read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	char buf[2048];
	while (fgets(buf, sizeof(buf), f)) {
		char *p = buf;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		char *colon = strchr(p, ':');
		if (!colon)
			continue;
		char *end;
		long line = strtol(colon + 1, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		size_t rl = strlen(end);
		while (rl && (end[rl - 1] == '\n' || end[rl - 1] == '\r'))
			end[--rl] = 0;
		unsup = xrealloc(unsup, (nunsup + 1) * sizeof(*unsup));
		unsup[nunsup++] = (struct unsupported){ xstrndup(p, (size_t)(colon - p)), (int)line, xstrndup(end, rl), false };
	}
	fclose(f);
}

static struct unsupported *find_unsupported(const char *file, int line)
{
	for (size_t i = 0; i < nunsup; i++)
		if (unsup[i].line == line && !strcmp(unsup[i].file, file))
			return &unsup[i];
	return NULL;
}

/* ---- comparing ------------------------------------------------------------------------------------- */

static bool almost_equal(double a, double b)
{
	const double eps = 1e-6, min_normal = 2.2250738585072014e-308;
	if (is_stale(a) || is_stale(b))
		return is_stale(a) && is_stale(b);
	if (isnan(a) && isnan(b))
		return true;
	if (a == b)
		return true;
	double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
	if (a == 0 || b == 0 || abs_sum < min_normal)
		return diff < eps * min_normal;
	return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static char failbuf[4096];

static bool failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool failf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(failbuf, sizeof(failbuf), fmt, ap);
	va_end(ap);
	return false;
}

static const char *lstr(const struct atel_promql_label *l, size_t n)
{
	static char buf[4][1024];
	static int k;
	char *b = buf[k++ & 3];
	FILE *f = fmemopen(b, sizeof(buf[0]) - 1, "w");
	if (!f)
		return "?";
	labels_print(f, l, n);
	fclose(f);
	return b;
}

/* compareResult for a vector (instant) result, given as series with one point each. */
static bool compare_vector(const struct evalcmd *c, const struct atel_promql_series *s, size_t n, bool ordered)
{
	bool *seen = xcalloc(c->nex + 1, 1);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		size_t k;
		for (k = 0; k < c->nex; k++)
			if (labels_equal(c->ex[k].ls.l, c->ex[k].ls.n, s[i].labels, s[i].nlabels))
				break;
		if (k == c->nex) {
			ok = failf("unexpected metric %s in result, has value %g", lstr(s[i].labels, s[i].nlabels),
				   s[i].npoints ? s[i].points[0].v : NAN);
			break;
		}
		if (ordered && c->ex[k].pos != (int)i + 1) {
			ok = failf("expected metric %s at position %d but was at %zu", lstr(s[i].labels, s[i].nlabels),
				   c->ex[k].pos, i + 1);
			break;
		}
		const struct seqval *e = &c->ex[k].vals.v[0];
		if (e->histogram) {
			ok = failf("expected a native histogram for %s, got a float", lstr(s[i].labels, s[i].nlabels));
			break;
		}
		if (!almost_equal(e->v, s[i].points[0].v)) {
			ok = failf("expected %.17g for %s but got %.17g", e->v, lstr(s[i].labels, s[i].nlabels), s[i].points[0].v);
			break;
		}
		seen[k] = true;
	}
	for (size_t k = 0; ok && k < c->nex; k++)
		if (!seen[k])
			ok = failf("expected metric %s not found", lstr(c->ex[k].ls.l, c->ex[k].ls.n));
	free(seen);
	return ok;
}

static bool compare_matrix(const struct evalcmd *c, const struct atel_promql_series *s, size_t n)
{
	if (c->expect_scalar)
		return failf("expected scalar result, but got a matrix");
	for (size_t i = 1; i < n; i++) {
		/* matrices come sorted by labels */
		size_t m = s[i - 1].nlabels < s[i].nlabels ? s[i - 1].nlabels : s[i].nlabels;
		int cmp = 0;
		for (size_t k = 0; k < m && !cmp; k++) {
			cmp = strcmp(s[i - 1].labels[k].name, s[i].labels[k].name);
			if (!cmp)
				cmp = strcmp(s[i - 1].labels[k].value, s[i].labels[k].value);
		}
		if (!cmp)
			cmp = (int)s[i - 1].nlabels - (int)s[i].nlabels;
		if (cmp > 0)
			return failf("matrix results should always be sorted by labels");
	}
	bool *seen = xcalloc(c->nex + 1, 1);
	bool ok = true;
	for (size_t i = 0; i < n && ok; i++) {
		size_t k;
		for (k = 0; k < c->nex; k++)
			if (labels_equal(c->ex[k].ls.l, c->ex[k].ls.n, s[i].labels, s[i].nlabels))
				break;
		if (k == c->nex) {
			ok = failf("unexpected metric %s in result, %zu points", lstr(s[i].labels, s[i].nlabels), s[i].npoints);
			break;
		}
		seen[k] = true;
		const struct seq *ev = &c->ex[k].vals;
		size_t np = 0;
		for (size_t j = 0; j < ev->n && ok; j++) {
			int64_t t = c->start + (int64_t)j * c->step;
			if (t > c->end) {
				ok = failf("expected %zu points for %s, but query time range cannot return this many points", ev->n,
					   lstr(s[i].labels, s[i].nlabels));
				break;
			}
			if (ev->v[j].omitted)
				continue;
			if (ev->v[j].histogram) {
				ok = failf("expected a native histogram");
				break;
			}
			if (np >= s[i].npoints) {
				ok = failf("expected more float points for %s than the %zu returned", lstr(s[i].labels, s[i].nlabels),
					   s[i].npoints);
				break;
			}
			const struct atel_promql_point *pt = &s[i].points[np++];
			if (pt->t_ms != t) {
				ok = failf("expected float value at index %zu for %s to have timestamp %lld, but it had timestamp %lld",
					   np - 1, lstr(s[i].labels, s[i].nlabels), (long long)t, (long long)pt->t_ms);
				break;
			}
			if (!almost_equal(ev->v[j].v, pt->v)) {
				ok = failf("expected float value at index %zu (t=%lld) for %s to be %.17g, but got %.17g", np - 1,
					   (long long)t, lstr(s[i].labels, s[i].nlabels), ev->v[j].v, pt->v);
				break;
			}
		}
		if (ok && np != s[i].npoints)
			ok = failf("expected %zu float points for %s, but got %zu", np, lstr(s[i].labels, s[i].nlabels),
				   s[i].npoints);
	}
	for (size_t k = 0; ok && k < c->nex; k++)
		if (!seen[k])
			ok = failf("expected metric %s not found", lstr(c->ex[k].ls.l, c->ex[k].ls.n));
	free(seen);
	return ok;
}

static bool compare_instant(const struct evalcmd *c, const struct atel_promql_result *r)
{
	switch (r->type) {
	case ATEL_PROMQL_SCALAR:
		if (!c->expect_scalar)
			return failf("expected vector or matrix result, but got scalar %.17g", r->scalar);
		if (!almost_equal(c->scalar, r->scalar))
			return failf("expected scalar %.17g but got %.17g", c->scalar, r->scalar);
		return true;
	case ATEL_PROMQL_VECTOR:
		if (c->expect_scalar)
			return failf("expected scalar result, but got a vector of %zu", r->nseries);
		return compare_vector(c, r->series, r->nseries, c->ordered);
	case ATEL_PROMQL_MATRIX:
		if (c->ordered)
			return failf("expected ordered result, but query returned a matrix");
		return compare_matrix(c, r->series, r->nseries);
	default:
		return failf("unexpected result type %d", (int)r->type);
	}
}

/* ---- running cases ----------------------------------------------------------------------------------- */

static struct atel_promql_opts opts = {
	.max_samples = 10000, /* upstream's test engine: DefaultMaxSamplesPerQuery */
};

static bool check_error(const struct evalcmd *c, const struct atel_promql_error *err)
{
	if (c->fail_msg && strcmp(c->fail_msg, err->msg))
		return failf("expected error \"%s\", but got: %s", c->fail_msg, err->msg);
	if (c->fail_regexp) {
		struct atel__re re;
		char msg[256];
		if (atel__re_compile(&re, c->fail_regexp, msg, sizeof(msg)))
			return failf("bad expected_fail_regexp: %s", msg);
		/* Go's MatchString is unanchored: wrap in .* */
		bool m = false;
		char *pat = xcalloc(strlen(c->fail_regexp) + 16, 1);
		sprintf(pat, ".*(?:%s).*", c->fail_regexp);
		atel__re_free(&re);
		if (!atel__re_compile(&re, pat, msg, sizeof(msg))) {
			m = atel__re_match(&re, err->msg);
			atel__re_free(&re);
		}
		free(pat);
		if (!m)
			return failf("expected error matching \"%s\", but got: %s", c->fail_regexp, err->msg);
	}
	return true;
}

static bool check_annotations(const struct evalcmd *c, const struct atel_promql_result *r, const char *what)
{
	if (!c->warn && r->nwarnings > 0)
		return failf("unexpected warnings evaluating %s: %s", what, r->warnings[0]);
	if (c->warn && r->nwarnings == 0)
		return failf("expected warnings evaluating %s but got none", what);
	if (c->info && r->ninfos == 0)
		return failf("expected info annotations evaluating %s but got none", what);
	return true;
}

static bool run_instant_query(const struct evalcmd *c, struct mstore *st, const char *expr, int64_t t)
{
	struct atel_promql_expr *e;
	struct atel_promql_error err;
	if (atel_promql_parse(expr, strlen(expr), &e, &err))
		return failf("parse error in \"%s\": %s", expr, err.msg);
	struct atel_promql_storage s = { st, mstore_select };
	struct atel_promql_result *r = NULL;
	int rc = atel_promql_eval_instant(e, &s, &opts, t, &r, &err);
	if (rc) {
		atel_promql_expr_free(e);
		if (c->fail)
			return check_error(c, &err);
		return failf("error evaluating \"%s\" at %lld: %s", expr, (long long)t, err.msg);
	}
	bool ok = true;
	if (c->fail)
		ok = failf("expected error evaluating \"%s\" but got none", expr);
	if (ok)
		ok = check_annotations(c, r, expr);
	if (ok && !compare_instant(c, r)) {
		char tmp[sizeof(failbuf)];
		snprintf(tmp, sizeof(tmp), "%.3000s (query \"%.900s\" at %lld)", failbuf, expr, (long long)t);
		memcpy(failbuf, tmp, sizeof(failbuf));
		ok = false;
	}
	enum atel_promql_vtype type = r->type;
	atel_promql_result_free(r);
	if (!ok || c->ordered) {
		atel_promql_expr_free(e);
		return ok;
	}
	/* The same in range mode, at the middle step. */
	rc = atel_promql_eval_range(e, &s, &opts, t - 60000, t + 60000, 60000, &r, &err);
	atel_promql_expr_free(e);
	if (rc)
		return failf("error evaluating \"%s\" at %lld in range mode: %s", expr, (long long)t, err.msg);
	struct atel_promql_series *mid = xcalloc(r->nseries + 1, sizeof(*mid));
	struct atel_promql_point *pts = xcalloc(r->nseries + 1, sizeof(*pts));
	size_t n = 0;
	for (size_t i = 0; i < r->nseries; i++)
		for (size_t k = 0; k < r->series[i].npoints; k++)
			if (r->series[i].points[k].t_ms == t) {
				pts[n] = r->series[i].points[k];
				mid[n] = r->series[i];
				mid[n].points = &pts[n];
				mid[n].npoints = 1;
				n++;
				break;
			}
	if (type == ATEL_PROMQL_SCALAR) {
		if (n == 0)
			ok = failf("range mode: no value at %lld", (long long)t);
		else if (!almost_equal(c->scalar, mid[0].points[0].v))
			ok = failf("range mode: expected scalar %.17g but got %.17g", c->scalar, mid[0].points[0].v);
	} else {
		ok = compare_vector(c, mid, n, false);
	}
	if (!ok) {
		char tmp[sizeof(failbuf)];
		snprintf(tmp, sizeof(tmp), "range mode: %.3000s (query \"%.900s\" at %lld)", failbuf, expr, (long long)t);
		memcpy(failbuf, tmp, sizeof(failbuf));
	}
	free(mid);
	free(pts);
	atel_promql_result_free(r);
	return ok;
}

/* Functions whose result depends on the evaluation time even with @ everywhere (AtModifierUnsafeFunctions). */
static bool at_unsafe(const char *f)
{
	static const char *const names[] = { "days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour",
					     "minute", "month", "year", "predict_linear", "time", "timestamp" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(f, names[i]))
			return true;
	return false;
}

/* atModifierTestCases: pin every selector and subquery not below an @-subquery to ts. */
static void pin_at(struct atel_promql_node *n, int64_t ts, bool *unsafe)
{
	switch (n->kind) {
	case ATEL_PROMQL_SELECTOR:
		if (n->sel.at != ATEL_PROMQL_AT_TIME) {
			n->sel.at = ATEL_PROMQL_AT_TIME;
			n->sel.at_ms = ts;
		}
		return;
	case ATEL_PROMQL_MATRIX_SEL:
		pin_at(n->matrix.sel, ts, unsafe);
		return;
	case ATEL_PROMQL_SUBQUERY:
		/* Below a subquery with @, nothing is touched or inspected. */
		if (n->subquery.at != ATEL_PROMQL_AT_TIME) {
			n->subquery.at = ATEL_PROMQL_AT_TIME;
			n->subquery.at_ms = ts;
		}
		return;
	case ATEL_PROMQL_PAREN:
		pin_at(n->paren.expr, ts, unsafe);
		return;
	case ATEL_PROMQL_UNARY:
		pin_at(n->unary.expr, ts, unsafe);
		return;
	case ATEL_PROMQL_BINARY:
		pin_at(n->binary.lhs, ts, unsafe);
		pin_at(n->binary.rhs, ts, unsafe);
		return;
	case ATEL_PROMQL_CALL:
		if (at_unsafe(n->call.func))
			*unsafe = true;
		for (size_t i = 0; i < n->call.nargs; i++)
			pin_at(n->call.args[i], ts, unsafe);
		return;
	case ATEL_PROMQL_AGGREGATE:
		if (n->agg.param)
			pin_at(n->agg.param, ts, unsafe);
		pin_at(n->agg.expr, ts, unsafe);
		return;
	default:
		return;
	}
}

static bool run_case(const struct evalcmd *c, struct mstore *st)
{
	if (c->range) {
		struct atel_promql_expr *e;
		struct atel_promql_error err;
		if (atel_promql_parse(c->expr, strlen(c->expr), &e, &err))
			return failf("parse error: %s", err.msg);
		struct atel_promql_storage s = { st, mstore_select };
		struct atel_promql_result *r;
		int rc = atel_promql_eval_range(e, &s, &opts, c->start, c->end, c->step, &r, &err);
		atel_promql_expr_free(e);
		if (rc) {
			if (c->fail)
				return check_error(c, &err);
			return failf("error evaluating query: %s", err.msg);
		}
		bool ok = true;
		if (c->fail)
			ok = failf("expected error evaluating query but got none");
		if (ok)
			ok = check_annotations(c, r, c->expr);
		if (ok)
			ok = compare_matrix(c, r->series, r->nseries);
		atel_promql_result_free(r);
		return ok;
	}
	if (!run_instant_query(c, st, c->expr, c->start))
		return false;
	/* The @ variants. */
	struct atel_promql_expr *e;
	struct atel_promql_error err;
	if (atel_promql_parse(c->expr, strlen(c->expr), &e, &err))
		return failf("parse error: %s", err.msg);
	bool unsafe = false;
	int64_t ts = c->start;
	pin_at(atel_promql_expr_root(e), ts, &unsafe);
	bool ok = true;
	if (!unsafe) {
		size_t len = atel_promql_format(atel_promql_expr_root(e), NULL, 0);
		char *text = xcalloc(len + 1, 1);
		atel_promql_format(atel_promql_expr_root(e), text, len + 1);
		int64_t times[5];
		size_t nt;
		if (ts != 0) {
			times[0] = -10 * ts, times[1] = 0, times[2] = ts / 5, times[3] = ts, times[4] = 10 * ts;
			nt = 5;
		} else {
			times[0] = -1000, times[1] = 0, times[2] = 1000;
			nt = 3;
		}
		for (size_t i = 0; i < nt && ok; i++)
			ok = run_instant_query(c, st, text, times[i]);
		free(text);
	}
	atel_promql_expr_free(e);
	return ok;
}

/* ---- reading the file ------------------------------------------------------------------------------ */

static char **lines;
static size_t nlines;

static void read_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "promqltest: cannot read %s: %s\n", path, strerror(errno));
		exit(2);
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		char *p = line;
		while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			p[--n] = 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '#')
			*p = 0;
		lines = xrealloc(lines, (nlines + 1) * sizeof(*lines));
		lines[nlines++] = xstrndup(p, strlen(p));
	}
	free(line);
	fclose(f);
}

static bool parse_time(const char *s, size_t n, int64_t *ms)
{
	char err[128];
	return atel__promql_parse_duration(s, n, ms, err, sizeof(err)) == 0;
}

static const char *next_word(const char *p, const char **w, size_t *wl)
{
	while (*p == ' ' || *p == '\t')
		p++;
	*w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	*wl = (size_t)(p - *w);
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static bool is_number_line(const char *s, double *v)
{
	/* strconv.ParseInt(s, 0, 64), then ParseFloat */
	char *end;
	errno = 0;
	long long i = strtoll(s, &end, 0);
	if (*s && !*end && !errno) {
		*v = (double)i;
		return true;
	}
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	if (!strcasecmp(p, "inf") || !strcasecmp(p, "infinity") || !strcasecmp(p, "nan")) {
		*v = strtod(s, NULL);
		return true;
	}
	double d = strtod(s, &end);
	if (*s && !*end && !strchr(s, 'x') && !strchr(s, 'X')) {
		*v = d;
		return true;
	}
	return false;
}

struct counts {
	int cases, passed, unsupported, failed;
};

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: promqltest FILE.test [UNSUPPORTED_LIST]\n");
		return 2;
	}
	if (argc == 3)
		load_unsupported(argv[2]);
	const char *file = strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1];
	read_lines(argv[1]);
	struct mstore st = { 0 };
	struct counts cnt = { 0 };
	bool file_error = false;
	for (size_t i = 0; i < nlines && !file_error; i++) {
		const char *l = lines[i];
		if (!*l)
			continue;
		const char *w;
		size_t wl;
		const char *rest = next_word(l, &w, &wl);
		if (wl == 5 && !strncasecmp(w, "clear", 5)) {
			mstore_clear(&st);
			continue;
		}
		if (wl >= 4 && !strncasecmp(w, "load", 4)) {
			int64_t gap;
			const char *sw;
			size_t swl;
			next_word(rest, &sw, &swl);
			if (!parse_time(sw, swl, &gap)) {
				fprintf(stderr, "%s:%zu: invalid load step\n", file, i + 1);
				file_error = true;
				break;
			}
			/* Within one load, a series defined twice keeps its last definition. */
			struct def {
				struct labels ls;
				struct seq vals;
			} *defs = NULL;
			size_t ndefs = 0;
			while (i + 1 < nlines && lines[i + 1][0]) {
				i++;
				struct labels ls;
				struct seq vals;
				const char *why = parse_series(lines[i], &ls, &vals);
				if (why) {
					fprintf(stderr, "%s:%zu: bad series: %s\n", file, i + 1, why);
					file_error = true;
					break;
				}
				size_t k;
				for (k = 0; k < ndefs; k++)
					if (labels_equal(defs[k].ls.l, defs[k].ls.n, ls.l, ls.n))
						break;
				if (k < ndefs) {
					labels_free(&defs[k].ls);
					free(defs[k].vals.v);
				} else {
					defs = xrealloc(defs, (ndefs + 1) * sizeof(*defs));
					k = ndefs++;
				}
				defs[k].ls = ls;
				defs[k].vals = vals;
			}
			size_t loadline = i, skipped = 0;
			if (wl > 4)
				printf("note %s: %.*s: the float series are loaded, the native histograms derived from them are not\n",
				       file, (int)wl, w);
			for (size_t k = 0; k < ndefs; k++) {
				struct mseries *s = mstore_get(&st, &defs[k].ls);
				for (size_t j = 0; j < defs[k].vals.n; j++) {
					const struct seqval *v = &defs[k].vals.v[j];
					skipped += v->histogram;
					if (v->omitted || v->histogram)
						continue; /* histograms are not loaded: see the unsupported list */
					const char *why = mstore_append(s, (int64_t)j * gap, v->v);
					if (why) {
						fprintf(stderr, "%s: load: %s\n", file, why);
						file_error = true;
					}
				}
				labels_free(&defs[k].ls);
				free(defs[k].vals.v);
			}
			free(defs);
			if (skipped)
				printf("note %s: load ending at line %zu: %zu native histogram samples not loaded (float samples only)\n",
				       file, loadline + 1, skipped);
			continue;
		}
		if (wl < 4 || strncasecmp(w, "eval", 4)) {
			fprintf(stderr, "%s:%zu: invalid command \"%s\"\n", file, i + 1, l);
			file_error = true;
			break;
		}
		struct evalcmd c = { .line = (int)i + 1 };
		const char *mod = w + 4;
		size_t ml = wl - 4;
		if (ml) {
			if (!strncmp(mod, "_fail", ml) && ml == 5)
				c.fail = true;
			else if (!strncmp(mod, "_warn", ml) && ml == 5)
				c.warn = true;
			else if (!strncmp(mod, "_info", ml) && ml == 5)
				c.info = true;
			else if (!strncmp(mod, "_ordered", ml) && ml == 8)
				c.ordered = true;
			else {
				fprintf(stderr, "%s:%zu: invalid eval modifier\n", file, i + 1);
				file_error = true;
				break;
			}
		}
		const char *kw;
		size_t kwl;
		rest = next_word(rest, &kw, &kwl);
		bool bad = false;
		if (kwl == 7 && !strncmp(kw, "instant", 7)) {
			const char *a, *t;
			size_t al, tl;
			rest = next_word(rest, &a, &al);
			rest = next_word(rest, &t, &tl);
			bad = !(al == 2 && !strncmp(a, "at", 2)) || !parse_time(t, tl, &c.start);
			c.end = c.start;
		} else if (kwl == 5 && !strncmp(kw, "range", 5) && !c.ordered) {
			const char *a, *t1, *b, *t2, *d, *t3;
			size_t al, t1l, bl, t2l, dl, t3l;
			c.range = true;
			rest = next_word(rest, &a, &al);
			rest = next_word(rest, &t1, &t1l);
			rest = next_word(rest, &b, &bl);
			rest = next_word(rest, &t2, &t2l);
			rest = next_word(rest, &d, &dl);
			rest = next_word(rest, &t3, &t3l);
			bad = !(al == 4 && !strncmp(a, "from", 4)) || !(bl == 2 && !strncmp(b, "to", 2)) ||
			      !(dl == 4 && !strncmp(d, "step", 4)) || !parse_time(t1, t1l, &c.start) ||
			      !parse_time(t2, t2l, &c.end) || !parse_time(t3, t3l, &c.step) || c.end < c.start;
		} else {
			bad = true;
		}
		if (bad || !*rest) {
			fprintf(stderr, "%s:%zu: invalid eval command\n", file, i + 1);
			file_error = true;
			break;
		}
		c.expr = xstrndup(rest, strlen(rest));
		int pos = 1;
		while (i + 1 < nlines && lines[i + 1][0]) {
			i++;
			const char *el = lines[i];
			if (c.fail && !strncmp(el, "expected_fail_message", 21)) {
				const char *m = el + 21;
				while (*m == ' ' || *m == '\t')
					m++;
				c.fail_msg = xstrndup(m, strlen(m));
				continue;
			}
			if (c.fail && !strncmp(el, "expected_fail_regexp", 20)) {
				const char *m = el + 20;
				while (*m == ' ' || *m == '\t')
					m++;
				c.fail_regexp = xstrndup(m, strlen(m));
				continue;
			}
			double v;
			if (is_number_line(el, &v)) {
				c.expect_scalar = true;
				c.scalar = v;
				continue;
			}
			c.ex = xrealloc(c.ex, (c.nex + 1) * sizeof(*c.ex));
			struct expect *ex = &c.ex[c.nex++];
			ex->pos = pos++;
			const char *why = parse_series(el, &ex->ls, &ex->vals);
			if (why || (!c.range && ex->vals.n != 1)) {
				fprintf(stderr, "%s:%zu: bad expectation: %s\n", file, i + 1, why ? why : "one value per series");
				file_error = true;
				break;
			}
		}
		if (file_error)
			break;
		cnt.cases++;
		struct unsupported *u = find_unsupported(file, c.line);
		failbuf[0] = 0;
		bool ok = run_case(&c, &st);
		if (u) {
			u->used = true;
			if (ok) {
				cnt.failed++;
				printf("FAIL %s:%d %s\n     listed as unsupported (%s) but passes: remove it from the list\n", file,
				       c.line, c.expr, u->reason);
			} else {
				cnt.unsupported++;
				printf("UNSUPPORTED %s:%d %s\n     reason: %s\n     (fails with: %s)\n", file, c.line, c.expr,
				       u->reason, failbuf);
			}
		} else if (ok) {
			cnt.passed++;
		} else {
			cnt.failed++;
			printf("FAIL %s:%d %s\n     %s\n", file, c.line, c.expr, failbuf);
		}
		free(c.expr);
		free(c.fail_msg);
		free(c.fail_regexp);
		for (size_t k = 0; k < c.nex; k++) {
			labels_free(&c.ex[k].ls);
			free(c.ex[k].vals.v);
		}
		free(c.ex);
	}
	for (size_t k = 0; k < nunsup; k++)
		if (!unsup[k].used && !strcmp(unsup[k].file, file)) {
			printf("FAIL the unsupported list names %s:%d, which is not an eval command\n", file, unsup[k].line);
			cnt.failed++;
		}
	mstore_clear(&st);
	for (size_t k = 0; k < nlines; k++)
		free(lines[k]);
	free(lines);
	for (size_t k = 0; k < nunsup; k++) {
		free(unsup[k].file);
		free(unsup[k].reason);
	}
	free(unsup);
	printf("promqltest %s: %d cases: %d passed, %d unsupported (listed with reasons), %d failed%s\n", file, cnt.cases,
	       cnt.passed, cnt.unsupported, cnt.failed, file_error ? "; the file could not be read completely" : "");
	return cnt.failed || file_error ? 1 : 0;
}
