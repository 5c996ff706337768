/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of libatel_promql's interface (tools/promql/promql.h): what the
 * conformance files do not exercise. Parse errors with their positions and
 * Prometheus' wording; operator precedence and the printer; the storage
 * contract (one selection per selector with the right time range, filtering,
 * merging, ordering, storage errors); the limits and the interrupt check;
 * range query validation; annotations; the RE2-to-POSIX translation.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atel_test.h"

#include "promql.h"
#include "promql_int.h"

/* ---- a storage for tests ---------------------------------------------------------------------- */

struct tseries {
	const char *labels[6][2];
	size_t nl;
	struct atel_promql_point pts[64];
	size_t n;
};

struct tstore {
	struct tseries *s;
	size_t n;
	int fail_rc;            /* select() returns this (with fail_msg) instead of offering */
	const char *fail_msg;
	bool all_series;        /* offer every series whatever the matchers */
	bool offer_twice;       /* offer each series twice, samples split between the offers */
	bool swap_last_two;     /* offer the last two samples of each series out of order */
	size_t nselect;
	int64_t mint[16], maxt[16];
	char metric[16][32];   /* copies: the selection is valid during select() only */
};

static bool matches(const struct atel_promql_select *sel, const struct tseries *s)
{
	for (size_t i = 0; i < sel->nmatchers; i++) {
		const char *v = NULL;
		for (size_t k = 0; k < s->nl; k++)
			if (!strcmp(s->labels[k][0], sel->matchers[i].name))
				v = s->labels[k][1];
		if (!atel_promql_matcher_matches(&sel->matchers[i], v))
			return false;
	}
	return true;
}

static int tselect(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink, char *errmsg,
		   size_t errlen)
{
	struct tstore *st = ctx;
	if (st->nselect < 16) {
		st->mint[st->nselect] = sel->mint_ms;
		st->maxt[st->nselect] = sel->maxt_ms;
		snprintf(st->metric[st->nselect], sizeof(st->metric[0]), "%s", sel->metric_name ? sel->metric_name : "");
	}
	st->nselect++;
	if (st->fail_rc) {
		snprintf(errmsg, errlen, "%s", st->fail_msg);
		return st->fail_rc;
	}
	for (size_t i = 0; i < st->n; i++) {
		const struct tseries *s = &st->s[i];
		if (!st->all_series && !matches(sel, s))
			continue;
		struct atel_promql_label l[6];
		for (size_t k = 0; k < s->nl; k++)
			l[k] = (struct atel_promql_label){ s->labels[k][0], s->labels[k][1] };
		uint32_t id, id2;
		int rc = atel_promql_sink_series(sink, l, s->nl, &id);
		if (rc <= 0) {
			if (rc < 0)
				return rc;
			continue;
		}
		if (st->offer_twice) {
			rc = atel_promql_sink_series(sink, l, s->nl, &id2);
			assert_int_equal(rc, 1);
			assert_int_equal(id, id2);
		}
		for (size_t k = 0; k < s->n; k++) {
			size_t j = k;
			if (st->swap_last_two && k + 2 >= s->n && s->n >= 2)
				j = k + 2 == s->n ? s->n - 1 : s->n - 2;
			rc = atel_promql_sink_sample(sink, id, s->pts[j].t_ms, s->pts[j].v);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static struct atel_promql_expr *parse_ok(const char *q)
{
	struct atel_promql_expr *e;
	struct atel_promql_error err;
	int rc = atel_promql_parse(q, strlen(q), &e, &err);
	if (rc)
		fail_msg("parse \"%s\": %s", q, err.msg);
	return e;
}

/* Ten series x{i="0".."9"} with a sample every 10s from 0 to 600s, value i*1000 + t/10s. */
static struct tseries ten[10];
static void init_ten(void)
{
	static char ids[10][2];
	for (int i = 0; i < 10; i++) {
		ids[i][0] = (char)('0' + i);
		ten[i] = (struct tseries){ .labels = { { "__name__", "x_total" }, { "i", ids[i] } }, .nl = 2 };
		for (int k = 0; k <= 60; k++)
			ten[i].pts[ten[i].n++] = (struct atel_promql_point){ k * 10000, i * 1000 + k };
	}
}

static int eval_instant(struct tstore *st, const char *q, int64_t t, const struct atel_promql_opts *o,
			struct atel_promql_result **r, struct atel_promql_error *err)
{
	struct atel_promql_expr *e = parse_ok(q);
	struct atel_promql_storage s = { st, tselect };
	int rc = atel_promql_eval_instant(e, &s, o, t, r, err);
	atel_promql_expr_free(e);
	return rc;
}

static int eval_range(struct tstore *st, const char *q, int64_t a, int64_t b, int64_t step,
		      const struct atel_promql_opts *o, struct atel_promql_result **r, struct atel_promql_error *err)
{
	struct atel_promql_expr *e = parse_ok(q);
	struct atel_promql_storage s = { st, tselect };
	int rc = atel_promql_eval_range(e, &s, o, a, b, step, r, err);
	atel_promql_expr_free(e);
	return rc;
}

/* ---- parsing ------------------------------------------------------------------------------------ */

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *q, *msg;
	} cases[] = {
		{ "", "1:1: parse error: no expression found in input" },
		{ "sum(rate(x[5m])", "1:16: parse error: unclosed left parenthesis" },
		{ "1 +", "1:4: parse error: unexpected end of input" },
		{ "rate(x)", "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector" },
		{ "foo{a=\"b\"", "1:10: parse error: unexpected end of input inside braces" },
		{ "{}", "1:1: parse error: vector selector must contain at least one non-empty matcher" },
		{ "{a=~\".*\"}", "1:1: parse error: vector selector must contain at least one non-empty matcher" },
		{ "foo offset 5m offset 1m", "1:1: parse error: offset may not be set multiple times" },
		{ "foo @ 1 @ 2", "1:1: parse error: @ <timestamp> may not be set multiple times" },
		{ "(foo) offset 5m",
		  "1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery" },
		{ "(foo)[5m]", "1:6: parse error: ranges only allowed for vector selectors" },
		{ "foo offset 1m [5m]", "1:15: parse error: no offset modifiers allowed before range" },
		{ "a and 1", "1:1: parse error: set operator \"and\" not allowed in binary scalar expression" },
		{ "1 > 2", "1:3: parse error: comparisons between scalars must use BOOL modifier" },
		{ "a + bool b", "1:3: parse error: bool modifier can only be used on comparison operators" },
		{ "foo * on(a) group_left(a) bar", "1:5: parse error: label \"a\" must not occur in ON and GROUP clause at once" },
		{ "a and on(x) group_left b", "1:1: parse error: no grouping allowed for \"and\" operation" },
		{ "nosuch(x)", "1:1: parse error: unknown function with name \"nosuch\"" },
		{ "{a=~\"(.*\"}", "1:2: parse error: error parsing regexp: missing closing ): `(.*`" },
		{ "sum by (a) (x) by (b)", "1:16: parse error: unexpected <by>" },
		{ "topk(x)", "1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1" },
		{ "sum()", "1:1: parse error: no arguments for aggregate expression provided" },
		{ "rate(x[5m],)", "1:11: parse error: trailing commas not allowed in function call args" },
		{ "foo[0s]", "1:5: parse error: duration must be greater than 0" },
		{ "foo[5x]", "1:5: parse error: bad number or duration syntax: \"5\"" },
		{ "\"a", "1:1: parse error: unterminated quoted string" },
		{ "foo{a=\"\\d\"}", "1:7: parse error: unknown escape sequence U+0064 'd'" },
		{ "foo\n  + on(", "2:8: parse error: unclosed left parenthesis" },
		{ "foo{x=\"a\", __name__=\"b\"}", "1:1: parse error: metric name must not be set twice: \"foo\" or \"b\"" },
		{ "sum(x) by (", "1:12: parse error: unclosed left parenthesis" },
		{ "x[5m:1m:]", "1:8: parse error: unexpected colon ':'" },
		{ "abs(x, y)", "1:1: parse error: expected 1 argument(s) in call to \"abs\", got 2" },
		{ "label_join(x, \"a\")", "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2" },
		{ "round(x, 1, 2)", "1:1: parse error: expected at most 2 argument(s) in call to \"round\", got 3" },
		{ "-\"a\"", "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\"" },
		{ "foo[5m][5m:1m]", "1:1: parse error: subquery is only allowed on instant vector, got matrix instead" },
		{ "foo ! bar", "1:5: parse error: unexpected character after '!': ' '" },
		{ "foo $", "1:5: parse error: unexpected character: '$'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct atel_promql_expr *e = NULL;
		struct atel_promql_error err;
		int rc = atel_promql_parse(cases[i].q, strlen(cases[i].q), &e, &err);
		if (rc != -EINVAL || strcmp(err.msg, cases[i].msg))
			fail_msg("query \"%s\": rc %d, message\n  got  %s\n  want %s", cases[i].q, rc, err.msg, cases[i].msg);
		assert_null(e);
		assert_int_equal(err.type, ATEL_PROMQL_ERR_BAD_DATA);
		assert_string_equal(atel_promql_errtype_name(err.type), "bad_data");
	}
	/* line/col fields match the message */
	struct atel_promql_expr *e;
	struct atel_promql_error err;
	assert_int_equal(atel_promql_parse("foo\n  + on(", 11, &e, &err), -EINVAL);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.col, 8);
	assert_int_equal(err.pos, 11);
	assert_int_equal(atel_promql_parse(NULL, 0, &e, &err), -EINVAL);
	assert_string_equal(err.msg, "1:1: parse error: no expression found in input");
	/* a NUL byte inside the query is refused, not truncated */
	assert_int_equal(atel_promql_parse("foo\0bar", 7, &e, &err), -EINVAL);
	assert_string_equal(err.msg, "1:4: parse error: unexpected character: '\\x00'");
	/* a selector alone, as match[] gives it; no "non-empty matcher" rule there */
	assert_int_equal(atel_promql_parse_selector("{__name__=~\".*\"}", 16, &e, &err), 0);
	assert_int_equal(atel_promql_expr_root(e)->kind, ATEL_PROMQL_SELECTOR);
	atel_promql_expr_free(e);
	assert_int_equal(atel_promql_parse_selector("rate(x[5m])", 11, &e, &err), -EINVAL);
}

static double scalar_of(const char *q)
{
	struct tstore st = { 0 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	if (eval_instant(&st, q, 0, NULL, &r, &err))
		fail_msg("%s: %s", q, err.msg);
	assert_int_equal(r->type, ATEL_PROMQL_SCALAR);
	double v = r->scalar;
	atel_promql_result_free(r);
	return v;
}

static void test_precedence(void **state)
{
	(void)state;
	assert_true(scalar_of("-2^---1*3") == -1.5);
	assert_true(scalar_of("2/-2^---1*3+2") == -10);
	assert_true(scalar_of("2 ^ 3 ^ 2") == 512);          /* right-associative */
	assert_true(scalar_of("10 - 2 - 3") == 5);           /* left-associative */
	assert_true(scalar_of("1 + 2 * 3 % 4") == 3);
	assert_true(scalar_of("2 * 3 atan2 4") == atan2(6, 4));
	assert_true(scalar_of("1 < bool 2 == bool 1") == 1);
	assert_true(scalar_of("0x1F + 1h30m") == 31 + 5400);
	assert_true(scalar_of("017") == 15);                 /* Go's base-0 integers: octal */
	assert_true(scalar_of("1_000") == 1000);
	assert_true(isinf(scalar_of("-Inf")) && scalar_of("-Inf") < 0);
	assert_true(isnan(scalar_of("nan")));
	/* the tree: a + b * c ^ d ^ e */
	struct atel_promql_expr *e = parse_ok("a + b * c ^ d ^ e");
	const struct atel_promql_node *n = atel_promql_expr_root(e);
	assert_int_equal(n->binary.op, ATEL_PROMQL_OP_ADD);
	n = n->binary.rhs;
	assert_int_equal(n->binary.op, ATEL_PROMQL_OP_MUL);
	n = n->binary.rhs;
	assert_int_equal(n->binary.op, ATEL_PROMQL_OP_POW);
	assert_int_equal(n->binary.rhs->kind, ATEL_PROMQL_BINARY);
	assert_int_equal(n->binary.rhs->binary.op, ATEL_PROMQL_OP_POW);
	atel_promql_expr_free(e);
	/* offset and @ bind to the selector just before them */
	e = parse_ok("-a offset 5m + b @ 10");
	n = atel_promql_expr_root(e);
	assert_int_equal(n->kind, ATEL_PROMQL_BINARY);
	assert_int_equal(n->binary.lhs->kind, ATEL_PROMQL_UNARY);
	assert_int_equal(n->binary.lhs->unary.expr->sel.offset_ms, 300000);
	assert_int_equal(n->binary.rhs->sel.at, ATEL_PROMQL_AT_TIME);
	assert_int_equal(n->binary.rhs->sel.at_ms, 10000);
	/* positions: the whole binary expression, the selector b */
	assert_int_equal(n->start, 0);
	assert_int_equal(n->end, 21);
	assert_int_equal(n->binary.rhs->start, 15);
	atel_promql_expr_free(e);
}

static void test_format(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "sum by(job)(rate(x{b=~\"c.*\",a!=\"\"}[5m] offset 1m))",
		  "sum by (job) (rate(x{a!=\"\",b=~\"c.*\"}[5m] offset 1m))" },
		{ "sum(x) without (a,b)", "sum without (a, b) (x)" },
		{ "x @ 1.2345", "x @ 1.235" },   /* ms precision, as timestamp.FromFloatSeconds rounds */
		{ "x[90m:5m] @ end() offset -1h", "x[1h30m:5m] @ end() offset -1h" },
		{ "1e6 + 0.0001 + 123456", "1e+06 + 0.0001 + 123456" },
		{ "-inf", "-Inf" },
		{ "inf ^ -x - 1", "Inf ^ -x - 1" }, /* found by fuzzing: "+Inf ^" would be unary + */
		{ "a * ignoring(b) group_right(c) d", "a * ignoring (b) group_right (c) d" },
		{ "a > bool on() b", "a > bool on () b" },
		{ "a > on() bool b", NULL }, /* bool comes first: a syntax error */
		{ "a * ignoring() group_left b", "a * ignoring () group_left () b" },
		{ "topk(3, x) or count_values(\"v\", y)", "topk(3, x) or count_values(\"v\", y)" },
		{ "{\"a.b\"=\"c\\n\", __name__=\"m\"}", "{\"a.b\"=\"c\\n\",__name__=\"m\"}" },
		{ "x[0]", "x[0]" },
		{ "-(1)", "-(1)" },
		{ "- -x", "--x" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!cases[i].out) {
			struct atel_promql_expr *e;
			struct atel_promql_error err;
			assert_int_equal(atel_promql_parse(cases[i].in, strlen(cases[i].in), &e, &err), -EINVAL);
			continue;
		}
		struct atel_promql_expr *e = parse_ok(cases[i].in);
		char buf[256], again[256];
		size_t n = atel_promql_format(atel_promql_expr_root(e), buf, sizeof(buf));
		assert_int_equal(n, strlen(buf));
		if (strcmp(buf, cases[i].out))
			fail_msg("format \"%s\"\n  got  %s\n  want %s", cases[i].in, buf, cases[i].out);
		/* and the text parses back to the same tree */
		struct atel_promql_expr *e2 = parse_ok(buf);
		atel_promql_format(atel_promql_expr_root(e2), again, sizeof(again));
		assert_string_equal(buf, again);
		atel_promql_expr_free(e2);
		/* snprintf-like truncation */
		char small[8];
		assert_int_equal(atel_promql_format(atel_promql_expr_root(e), small, sizeof(small)), n);
		assert_int_equal(strlen(small), n < sizeof(small) ? n : sizeof(small) - 1);
		atel_promql_expr_free(e);
	}
}

/* ---- evaluation and storage ------------------------------------------------------------------ */

static void test_results(void **state)
{
	(void)state;
	init_ten();
	struct tstore st = { .s = ten, .n = 10 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	/* a vector, in evaluation order (sort_desc) at the evaluation time */
	assert_int_equal(eval_instant(&st, "sort_desc(x_total offset 15s)", 600000, NULL, &r, &err), 0);
	assert_int_equal(r->type, ATEL_PROMQL_VECTOR);
	assert_int_equal(r->nseries, 10);
	assert_int_equal(r->series[0].points[0].t_ms, 600000);
	assert_true(r->series[0].points[0].v == 9000 + 58); /* sample at 580s: offset 15s looks back from 585s */
	assert_int_equal(r->series[0].nlabels, 2);
	assert_string_equal(r->series[0].labels[0].name, "__name__");
	assert_string_equal(r->series[0].labels[1].value, "9");
	atel_promql_result_free(r);
	/* a range selector: raw samples in (t-30s, t] */
	assert_int_equal(eval_instant(&st, "x_total{i=\"3\"}[30s]", 600000, NULL, &r, &err), 0);
	assert_int_equal(r->type, ATEL_PROMQL_MATRIX);
	assert_int_equal(r->nseries, 1);
	assert_int_equal(r->series[0].npoints, 3);
	assert_int_equal(r->series[0].points[0].t_ms, 580000);
	atel_promql_result_free(r);
	/* a string */
	assert_int_equal(eval_instant(&st, "(\"hello\")", 5, NULL, &r, &err), 0);
	assert_int_equal(r->type, ATEL_PROMQL_STRING);
	assert_string_equal(r->string, "hello");
	atel_promql_result_free(r);
	/* a range query: sorted by labels, one point per step */
	assert_int_equal(eval_range(&st, "rate(x_total[1m]) * 10", 120000, 600000, 60000, NULL, &r, &err), 0);
	assert_int_equal(r->type, ATEL_PROMQL_MATRIX);
	assert_int_equal(r->nseries, 10);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(r->series[i].nlabels, 1); /* __name__ dropped by rate() */
		char want[2] = { (char)('0' + i), 0 };
		assert_string_equal(r->series[i].labels[0].value, want);
		assert_int_equal(r->series[i].npoints, 9);
		for (size_t k = 0; k < 9; k++)
			assert_true(fabs(r->series[i].points[k].v - 1.0) < 1e-12);
	}
	assert_int_equal(r->nwarnings, 0);
	atel_promql_result_free(r);
	/* any number of arguments: sort_by_label with eleven labels */
	assert_int_equal(eval_instant(&st, "sort_by_label_desc(x_total, \"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"j\", \"k\", \"i\")",
				      600000, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 10);
	assert_string_equal(r->series[0].labels[1].value, "9");
	atel_promql_result_free(r);
	/* scalars in a range query: one series without labels */
	assert_int_equal(eval_range(&st, "time()", 0, 10000, 5000, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 1);
	assert_int_equal(r->series[0].nlabels, 0);
	assert_int_equal(r->series[0].npoints, 3);
	assert_true(r->series[0].points[2].v == 10);
	atel_promql_result_free(r);
}

static void test_select_ranges(void **state)
{
	(void)state;
	init_ten();
	struct tstore st = { .s = ten, .n = 10 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	const int64_t T = 600000;
	assert_int_equal(eval_instant(&st, "rate(x_total[5m]) + x_total offset 1m + x_total @ 100 + sum_over_time(x_total[2m:30s] offset 30s)",
				      T, NULL, &r, &err), 0);
	atel_promql_result_free(r);
	assert_int_equal(st.nselect, 4);
	/* (t - range, t]: mint is range - 1 before */
	assert_int_equal(st.mint[0], T - 300000 + 1);
	assert_int_equal(st.maxt[0], T);
	assert_string_equal(st.metric[0], "x_total");
	/* lookback 5m before t - 1m */
	assert_int_equal(st.mint[1], T - 60000 - 300000 + 1);
	assert_int_equal(st.maxt[1], T - 60000);
	/* @ 100s fixes the time */
	assert_int_equal(st.mint[2], 100000 - 300000 + 1);
	assert_int_equal(st.maxt[2], 100000);
	/* inside a subquery: its range and offset, then the lookback */
	assert_int_equal(st.mint[3], T - 30000 - 120000 - 300000 + 1);
	assert_int_equal(st.maxt[3], T - 30000);
	/* a range query widens to the whole span; lookback_ms is honoured */
	st.nselect = 0;
	struct atel_promql_opts o = { .lookback_ms = 60000 };
	assert_int_equal(eval_range(&st, "x_total", 100000, 200000, 10000, &o, &r, &err), 0);
	atel_promql_result_free(r);
	assert_int_equal(st.nselect, 1);
	assert_int_equal(st.mint[0], 100000 - 60000 + 1);
	assert_int_equal(st.maxt[0], 200000);
}

static void test_storage_contract(void **state)
{
	(void)state;
	init_ten();
	struct atel_promql_result *r;
	struct atel_promql_error err;
	/* a storage may offer more than asked: the engine applies the matchers */
	struct tstore st = { .s = ten, .n = 10, .all_series = true };
	assert_int_equal(eval_instant(&st, "x_total{i=~\"[2-4]\"}", 600000, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 3);
	atel_promql_result_free(r);
	/* offering a series twice gives the same id; its samples join */
	st = (struct tstore){ .s = ten, .n = 10, .offer_twice = true };
	assert_int_equal(eval_instant(&st, "count_over_time(x_total{i=\"1\"}[10m])", 600000, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 1);
	assert_true(r->series[0].points[0].v == 60);
	atel_promql_result_free(r);
	/* samples out of order are an internal error naming the series */
	st = (struct tstore){ .s = ten, .n = 10, .swap_last_two = true };
	assert_int_equal(eval_instant(&st, "x_total", 600000, NULL, &r, &err), -EINVAL);
	assert_null(r);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_INTERNAL);
	assert_non_null(strstr(err.msg, "is not after the previous one"));
	assert_non_null(strstr(err.msg, "i=\"0\""));
	/* a storage error keeps its message */
	st = (struct tstore){ .s = ten, .n = 10, .fail_rc = -EIO, .fail_msg = "segment 7 is unreadable" };
	assert_int_equal(eval_instant(&st, "x_total", 600000, NULL, &r, &err), -EIO);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_INTERNAL);
	assert_string_equal(err.msg, "storage: segment 7 is unreadable");
	assert_string_equal(atel_promql_errtype_name(err.type), "internal");
	/* stale markers end a series until its next sample; range vectors skip them */
	uint64_t sb = ATEL_PROMQL_STALE_NAN_BITS;
	double stale;
	memcpy(&stale, &sb, sizeof(stale));
	struct tseries s1 = { .labels = { { "__name__", "up" } }, .nl = 1,
			      .pts = { { 0, 1 }, { 10000, 1 }, { 20000, stale }, { 40000, 5 } }, .n = 4 };
	st = (struct tstore){ .s = &s1, .n = 1 };
	assert_int_equal(eval_instant(&st, "up", 30000, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 0);
	atel_promql_result_free(r);
	assert_int_equal(eval_instant(&st, "count_over_time(up[1m])", 45000, NULL, &r, &err), 0);
	assert_true(r->series[0].points[0].v == 3);
	atel_promql_result_free(r);
	/* labels with empty values are absent labels */
	struct tseries s2 = { .labels = { { "__name__", "m" }, { "a", "" }, { "b", "x" } }, .nl = 3,
			      .pts = { { 0, 1 } }, .n = 1 };
	st = (struct tstore){ .s = &s2, .n = 1 };
	assert_int_equal(eval_instant(&st, "m{a=\"\"}", 0, NULL, &r, &err), 0);
	assert_int_equal(r->nseries, 1);
	assert_int_equal(r->series[0].nlabels, 2);
	atel_promql_result_free(r);
}

static void test_limits(void **state)
{
	(void)state;
	init_ten();
	struct tstore st = { .s = ten, .n = 10 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	struct atel_promql_opts o = { .max_series = 9 };
	assert_int_equal(eval_instant(&st, "sum(x_total)", 600000, &o, &r, &err), -E2BIG);
	assert_null(r);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_EXECUTION);
	assert_string_equal(err.msg, "query would select more than 9 series (the configured limit)");
	o = (struct atel_promql_opts){ .max_series = 10 };
	assert_int_equal(eval_instant(&st, "sum(x_total)", 600000, &o, &r, &err), 0);
	atel_promql_result_free(r);
	/* samples from storage: the lookback (300s, 600s] holds 30 per series */
	o = (struct atel_promql_opts){ .max_samples_loaded = 299 };
	assert_int_equal(eval_instant(&st, "x_total", 600000, &o, &r, &err), -E2BIG);
	assert_string_equal(err.msg, "query would load more than 299 samples from storage (the configured limit)");
	o.max_samples_loaded = 300;
	assert_int_equal(eval_instant(&st, "x_total", 600000, &o, &r, &err), 0);
	atel_promql_result_free(r);
	/* samples held by intermediate results: 10 series x 61 steps */
	o = (struct atel_promql_opts){ .max_samples = 600 };
	assert_int_equal(eval_range(&st, "x_total", 0, 600000, 10000, &o, &r, &err), -E2BIG);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_EXECUTION);
	assert_string_equal(err.msg, "query processing would load too many samples into memory in query execution");
	o.max_samples = 610;
	assert_int_equal(eval_range(&st, "x_total", 0, 600000, 10000, &o, &r, &err), 0);
	atel_promql_result_free(r);
	/* range queries: resolution, order, type */
	assert_int_equal(eval_range(&st, "x_total", 0, 11001, 1, NULL, &r, &err), -EINVAL);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_BAD_DATA);
	assert_non_null(strstr(err.msg, "exceeded maximum resolution of 11,000 points"));
	assert_int_equal(eval_range(&st, "x_total", 0, 11000, 1, NULL, &r, &err), 0);
	atel_promql_result_free(r);
	o = (struct atel_promql_opts){ .max_steps = 20000 };
	assert_int_equal(eval_range(&st, "x_total", 0, 11001, 1, &o, &r, &err), 0);
	atel_promql_result_free(r);
	assert_int_equal(eval_range(&st, "x_total", 0, 10, 0, NULL, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "zero or negative query resolution step widths are not accepted. Try a positive integer");
	assert_int_equal(eval_range(&st, "x_total", 10, 0, 1, NULL, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "end timestamp must not be before start time");
	assert_int_equal(eval_range(&st, "x_total[5m]", 0, 10, 1, NULL, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector");
}

struct interrupt_ctx {
	int calls, at;
	int rc;
};

static int interrupt_after(void *p)
{
	struct interrupt_ctx *c = p;
	return ++c->calls >= c->at ? c->rc : 0;
}

static void test_interrupt(void **state)
{
	(void)state;
	init_ten();
	struct tstore st = { .s = ten, .n = 10 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	/* canceled part-way through evaluation */
	struct interrupt_ctx ic = { .at = 40, .rc = -ECANCELED };
	struct atel_promql_opts o = { .interrupt = interrupt_after, .interrupt_ctx = &ic };
	assert_int_equal(eval_range(&st, "sum(rate(x_total[1m]))", 0, 600000, 10000, &o, &r, &err), -ECANCELED);
	assert_null(r);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_CANCELED);
	assert_string_equal(err.msg, "query was canceled in expression evaluation");
	assert_int_equal(ic.calls, 40);
	/* timed out while the storage offers series */
	ic = (struct interrupt_ctx){ .at = 3, .rc = -ETIMEDOUT };
	assert_int_equal(eval_instant(&st, "x_total", 600000, &o, &r, &err), -ETIMEDOUT);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_TIMEOUT);
	assert_string_equal(err.msg, "query timed out in query preparation");
	assert_string_equal(atel_promql_errtype_name(err.type), "timeout");
	/* a deadline already past (CLOCK_MONOTONIC 1 ns): no evaluation at all */
	o = (struct atel_promql_opts){ .deadline_ns = 1 };
	assert_int_equal(eval_instant(&st, "vector(1)", 0, &o, &r, &err), -ETIMEDOUT);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_TIMEOUT);
	/* never interrupted: the callback is polled, the query completes */
	ic = (struct interrupt_ctx){ .at = 1000000, .rc = -ECANCELED };
	o = (struct atel_promql_opts){ .interrupt = interrupt_after, .interrupt_ctx = &ic };
	assert_int_equal(eval_range(&st, "sum(rate(x_total[1m]))", 0, 600000, 10000, &o, &r, &err), 0);
	assert_true(ic.calls > 60); /* at least once per step */
	atel_promql_result_free(r);
}

static void test_annotations(void **state)
{
	(void)state;
	init_ten();
	struct tseries g[2] = {
		{ .labels = { { "__name__", "temp" } }, .nl = 1, .pts = { { 0, 1 }, { 60000, 2 } }, .n = 2 },
		{ .labels = { { "__name__", "temp" }, { "x", "y" } }, .nl = 2, .pts = { { 0, 1 } }, .n = 1 },
	};
	struct tstore st = { .s = g, .n = 2 };
	struct atel_promql_result *r;
	struct atel_promql_error err;
	assert_int_equal(eval_instant(&st, "rate(temp[5m])", 60000, NULL, &r, &err), 0);
	assert_int_equal(r->nwarnings, 0);
	assert_int_equal(r->ninfos, 1);
	assert_string_equal(r->infos[0],
			    "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temp\" (1:6)");
	atel_promql_result_free(r);
	assert_int_equal(eval_instant(&st, "quantile(1.5, temp) + quantile(1.5, temp)", 60000, NULL, &r, &err), 0);
	assert_int_equal(r->nwarnings, 2); /* one per position */
	assert_string_equal(r->warnings[0], "PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:10)");
	assert_string_equal(r->warnings[1], "PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:32)");
	atel_promql_result_free(r);
	/* evaluation errors are "execution" errors */
	assert_int_equal(eval_instant(&st, "temp + on() temp", 60000, NULL, &r, &err), -EINVAL);
	assert_int_equal(err.type, ATEL_PROMQL_ERR_EXECUTION);
	assert_non_null(strstr(err.msg, "found duplicate series for the match group {} on the right hand-side"));
	assert_int_equal(eval_instant(&st, "label_replace(temp, \"a-b\", \"\", \"\", \"\")", 60000, NULL, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "invalid destination label name in label_replace(): a-b");
	assert_int_equal(eval_instant(&st, "topk(NaN, temp)", 60000, NULL, &r, &err), -EINVAL);
	assert_string_equal(err.msg, "Scalar value NaN overflows int64");
}

/* ---- regular expressions ---------------------------------------------------------------------- */

static void test_regex(void **state)
{
	(void)state;
	static const struct {
		const char *re, *s;
		bool match;
	} cases[] = {
		{ "abc", "abc", true },        { "abc", "abcd", false },      /* fully anchored */
		{ "a|b", "b", true },          { "(?i)abc", "AbC", true },    { "a(?i:b)c", "aBc", true },
		{ "a(?i:b)c", "aBC", false },  { "(?i:PRO).*", "production", true },
		{ ".*?(?i:PRO).*", "xproduction", true },
		{ "\\d+", "0123", true },      { "\\d+", "12a", false },      { "\\w+\\s\\W", "a_1 !", true },
		{ "[^a]", "\xc3\xa9", true },  /* one UTF-8 character */
		{ "..", "\xc3\xa9", false },   { ".", "\xc3\xa9", true },     { "a.c", "a\nc", true }, /* (?s) */
		{ "(?-s)a.c", "a\nc", false }, { "x{2,3}", "xxx", true },     { "x{2,3}", "xxxx", false },
		{ "a{", "a{", true },          /* not a repeat: literal */
		{ "[[:alpha:]]+", "Ab", true }, { "[[:^digit:]]", "5", false },
		{ "[]a]+", "]a", true },       { "[a\\-z]+", "-az", true },   { "[\\]\\\\^-]+", "]\\^-", true },
		{ "\\Q.*\\E", ".*", true },    { "\\Q.*\\E", "ab", false },   { "\\x41\\x{42}", "AB", true },
		{ "(a)(?:b)(?P<c>c)", "abc", true },
		{ "", "", true },              { "", "a", false },            { "a|", "", true },
		{ "caf\xc3\xa9", "caf\xc3\xa9", true }, { "[\xc3\xa9x]", "\xc3\xa9", true },
		{ "[\xc3\xa0-\xc3\xbf]+", "\xc3\xa9\xc3\xa0", true }, /* a small non-ASCII range: expanded */
		{ "\\.\\*", ".*", true },      { "\\^\\$", "^$", true },
		{ "a\\b", "a", true },         { "\\Aa\\z", "a", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct atel__re re;
		char msg[256];
		if (atel__re_compile(&re, cases[i].re, msg, sizeof(msg)))
			fail_msg("compile \"%s\": %s", cases[i].re, msg);
		if (atel__re_match(&re, cases[i].s) != cases[i].match) {
			char *posix = NULL;
			atel__re_translate(cases[i].re, &posix, msg, sizeof(msg));
			fail_msg("\"%s\" on \"%s\": want %d (POSIX form %s)", cases[i].re, cases[i].s, cases[i].match, posix);
		}
		atel__re_free(&re);
	}
	static const struct {
		const char *re, *msg;
	} bad[] = {
		{ "(a", "error parsing regexp: missing closing ): `(a`" },
		{ "a)", "error parsing regexp: unexpected ): `a)`" },
		{ "a**", "error parsing regexp: invalid nested repetition operator: `a**`" },
		{ "*a", "error parsing regexp: missing argument to repetition operator: `*`" },
		{ "a{1001}", "error parsing regexp: invalid repeat count: `{1001}`" },
		{ "[z-a]", "error parsing regexp: invalid character class range: `z-a`" },
		{ "\\q", "error parsing regexp: invalid escape sequence: `\\q`" },
		{ "\\pL", "error parsing regexp: Unicode classes (\\p, \\P) are not supported: `\\p`" },
		{ "(?m)^a", "error parsing regexp: multi-line mode (?m) is not supported: `(?m`" },
		{ "((a{100}){100}){100}", "error parsing regexp: expression too large" },
		{ "[\xc3\x80-\xd3\xbf]", "error parsing regexp: non-ASCII ranges in character classes are not supported" },
		{ "a\\", "error parsing regexp: trailing backslash at end of expression: ``" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct atel__re re;
		char msg[256];
		int rc = atel__re_compile(&re, bad[i].re, msg, sizeof(msg));
		if (rc != -EINVAL || strcmp(msg, bad[i].msg))
			fail_msg("\"%s\": rc %d\n  got  %s\n  want %s", bad[i].re, rc, rc ? msg : "(compiled)", bad[i].msg);
	}
	/* deep nesting is refused before it reaches the stack of anything */
	char deep[1000];
	memset(deep, '(', 400);
	memset(deep + 400, ')', 400);
	deep[800] = 0;
	struct atel__re re;
	char msg[256];
	assert_int_equal(atel__re_compile(&re, deep, msg, sizeof(msg)), -EINVAL);
	assert_string_equal(msg, "error parsing regexp: expression nests too deeply");
	/* label_replace's template: $1, ${1}, $name, $$, unknown names empty */
	assert_int_equal(atel__re_compile(&re, "(?P<h>[a-z]+)-(\\d+)", msg, sizeof(msg)), 0);
	char *out;
	assert_int_equal(atel__re_replace(&re, "web-42", "${h}:$2 $$ $1x $3 $0", &out), 1);
	/* "$1x" names a group "1x" (absent: empty), as in Go */
	assert_string_equal(out, "web:42 $   web-42");
	free(out);
	assert_int_equal(atel__re_replace(&re, "WEB-42", "$1", &out), 0);
	atel__re_free(&re);
}

/* Top-level subqueries return the inner steps, left boundary included
 * (cases of upstream's TestSubquerySelector, engine_test.go). */
static void test_subquery_points(void **state)
{
	(void)state;
	struct tseries m = { .labels = { { "__name__", "metric" } }, .nl = 1, .pts = { { 0, 1 }, { 10000, 2 } }, .n = 2 };
	struct tstore st = { .s = &m, .n = 1 };
	static const struct {
		const char *q;
		int64_t t;
		const char *want; /* "value@ms ..." */
	} cases[] = {
		{ "metric[20s:10s]", 10000, "1@0 2@10000" },
		{ "metric[20s:5s]", 10000, "1@0 1@5000 2@10000" },
		{ "metric[20s:5s] offset 2s", 12000, "1@0 1@5000 2@10000" },
		{ "metric[20s:5s] offset 6s", 20000, "1@0 1@5000 2@10000" },
		{ "metric[20s:5s] offset 4s", 35000, "2@15000 2@20000 2@25000 2@30000" },
		{ "metric[20s:5s] offset 5s", 35000, "2@10000 2@15000 2@20000 2@25000 2@30000" },
		{ "metric[20s:5s] offset 6s", 35000, "2@10000 2@15000 2@20000 2@25000" },
		{ "metric[20s:5s] offset 7s", 35000, "2@10000 2@15000 2@20000 2@25000" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct atel_promql_result *r;
		struct atel_promql_error err;
		assert_int_equal(eval_instant(&st, cases[i].q, cases[i].t, NULL, &r, &err), 0);
		assert_int_equal(r->type, ATEL_PROMQL_MATRIX);
		assert_int_equal(r->nseries, 1);
		char got[256] = "";
		for (size_t k = 0; k < r->series[0].npoints; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%g@%lld", k ? " " : "",
				 r->series[0].points[k].v, (long long)r->series[0].points[k].t_ms);
		if (strcmp(got, cases[i].want))
			fail_msg("%s at %lld: got %s, want %s", cases[i].q, (long long)cases[i].t, got, cases[i].want);
		atel_promql_result_free(r);
	}
}

static void test_xxhash(void **state)
{
	(void)state;
	/* the reference vectors of XXH64 (seed 0); the last is longer than one 32-byte stripe */
	assert_true(atel__promql_xxhash64("", 0) == 0xef46db3751d8e999ull);
	assert_true(atel__promql_xxhash64("a", 1) == 0xd24ec4f1a98c6e5bull);
	assert_true(atel__promql_xxhash64("abc", 3) == 0x44bc2cf5ad770999ull);
	const char *s = "Nobody inspects the spammish repetition";
	assert_true(atel__promql_xxhash64(s, strlen(s)) == 0xfbcea83c8a378bf1ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_errors),     cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_format),           cmocka_unit_test(test_results),
		cmocka_unit_test(test_select_ranges),    cmocka_unit_test(test_storage_contract),
		cmocka_unit_test(test_limits),           cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_annotations),      cmocka_unit_test(test_regex),
		cmocka_unit_test(test_xxhash),           cmocka_unit_test(test_subquery_points),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
