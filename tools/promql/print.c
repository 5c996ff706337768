/* SPDX-License-Identifier: MIT */
/*
 * print.c - a tree back to PromQL text, in the form of Prometheus'
 * printer.go (String()): one space around binary operators, matchers sorted,
 * durations as model.Duration prints them, @ timestamps in seconds with
 * three decimals. Three deliberate differences keep the output parseable to
 * the same tree: a zero range prints as [0] (upstream prints [0s], which
 * does not parse), group_left/group_right with an empty ignoring() keep
 * their modifiers (upstream drops them), and +Inf prints as Inf.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql_int.h"

static const char *op_str(enum atel_promql_op op)
{
	switch (op) {
	case ATEL_PROMQL_OP_ADD: return "+";
	case ATEL_PROMQL_OP_SUB: return "-";
	case ATEL_PROMQL_OP_MUL: return "*";
	case ATEL_PROMQL_OP_DIV: return "/";
	case ATEL_PROMQL_OP_MOD: return "%";
	case ATEL_PROMQL_OP_POW: return "^";
	case ATEL_PROMQL_OP_ATAN2: return "atan2";
	case ATEL_PROMQL_OP_EQLC: return "==";
	case ATEL_PROMQL_OP_NEQ: return "!=";
	case ATEL_PROMQL_OP_GTR: return ">";
	case ATEL_PROMQL_OP_LSS: return "<";
	case ATEL_PROMQL_OP_GTE: return ">=";
	case ATEL_PROMQL_OP_LTE: return "<=";
	case ATEL_PROMQL_OP_AND: return "and";
	case ATEL_PROMQL_OP_OR: return "or";
	case ATEL_PROMQL_OP_UNLESS: return "unless";
	}
	return "?";
}

static const char *agg_str(enum atel_promql_agg a)
{
	static const char *const names[] = {
		[ATEL_PROMQL_AGG_SUM] = "sum", [ATEL_PROMQL_AGG_AVG] = "avg", [ATEL_PROMQL_AGG_COUNT] = "count",
		[ATEL_PROMQL_AGG_MIN] = "min", [ATEL_PROMQL_AGG_MAX] = "max", [ATEL_PROMQL_AGG_GROUP] = "group",
		[ATEL_PROMQL_AGG_STDDEV] = "stddev", [ATEL_PROMQL_AGG_STDVAR] = "stdvar",
		[ATEL_PROMQL_AGG_TOPK] = "topk", [ATEL_PROMQL_AGG_BOTTOMK] = "bottomk",
		[ATEL_PROMQL_AGG_COUNT_VALUES] = "count_values", [ATEL_PROMQL_AGG_QUANTILE] = "quantile",
		[ATEL_PROMQL_AGG_LIMITK] = "limitk", [ATEL_PROMQL_AGG_LIMIT_RATIO] = "limit_ratio",
	};
	return names[a];
}

static void put_quoted(struct atel__sbuf *b, const char *s)
{
	char stack[256];
	size_t n = atel__promql_quote(s, stack, sizeof(stack));
	if (n < sizeof(stack)) {
		atel__sbuf_puts(b, stack);
		return;
	}
	char *big = malloc(n + 1);
	if (!big) {
		b->pos += n; /* length stays right; content is cut */
		return;
	}
	atel__promql_quote(s, big, n + 1);
	atel__sbuf_puts(b, big);
	free(big);
}

static void put_label_name(struct atel__sbuf *b, const char *name)
{
	if (atel__promql_legacy_name(name))
		atel__sbuf_puts(b, name);
	else
		put_quoted(b, name);
}

static void put_duration(struct atel__sbuf *b, int64_t ms)
{
	char d[64];
	if (ms == 0) {
		atel__sbuf_puts(b, "0");
		return;
	}
	atel__promql_format_duration(ms, d, sizeof(d));
	atel__sbuf_puts(b, d);
}

static void put_at_offset(struct atel__sbuf *b, enum atel_promql_at at, int64_t at_ms, int64_t off)
{
	switch (at) {
	case ATEL_PROMQL_AT_TIME:
		atel__sbuf_printf(b, " @ %.3f", (double)at_ms / 1000.0);
		break;
	case ATEL_PROMQL_AT_START:
		atel__sbuf_puts(b, " @ start()");
		break;
	case ATEL_PROMQL_AT_END:
		atel__sbuf_puts(b, " @ end()");
		break;
	case ATEL_PROMQL_AT_NONE:
		break;
	}
	if (off > 0) {
		atel__sbuf_puts(b, " offset ");
		put_duration(b, off);
	} else if (off < 0) {
		atel__sbuf_puts(b, " offset -");
		put_duration(b, -off);
	}
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_selector(struct atel__sbuf *b, const struct atel_promql_node *n, bool with_mods)
{
	size_t nm = n->sel.nmatchers - (n->sel.name ? 1 : 0);
	if (n->sel.name)
		atel__sbuf_puts(b, n->sel.name);
	if (nm) {
		/* Each matcher as text, then sorted (sort.Strings in printer.go). */
		char **txt = calloc(nm, sizeof(*txt));
		size_t ok = 0;
		for (size_t i = 0; txt && i < nm; i++) {
			const struct atel_promql_matcher *m = &n->sel.matchers[i];
			static const char *const ops[] = { "=", "!=", "=~", "!~" };
			struct atel__sbuf t = { NULL, 0, 0 };
			put_label_name(&t, m->name);
			atel__sbuf_puts(&t, ops[m->op]);
			put_quoted(&t, m->value);
			size_t len = t.pos + 1;
			txt[i] = malloc(len);
			if (!txt[i])
				break;
			t = (struct atel__sbuf){ txt[i], len, 0 };
			put_label_name(&t, m->name);
			atel__sbuf_puts(&t, ops[m->op]);
			put_quoted(&t, m->value);
			ok++;
		}
		if (txt && ok == nm) {
			qsort(txt, nm, sizeof(*txt), cmp_strp);
			atel__sbuf_puts(b, "{");
			for (size_t i = 0; i < nm; i++) {
				if (i)
					atel__sbuf_puts(b, ",");
				atel__sbuf_puts(b, txt[i]);
			}
			atel__sbuf_puts(b, "}");
		}
		for (size_t i = 0; txt && i < ok; i++)
			free(txt[i]);
		free(txt);
	}
	if (with_mods)
		put_at_offset(b, n->sel.at, n->sel.at_ms, n->sel.offset_ms);
}

static void put_labels(struct atel__sbuf *b, const char *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			atel__sbuf_puts(b, ", ");
		put_label_name(b, l[i]);
	}
}

static void put(struct atel__sbuf *b, const struct atel_promql_node *n)
{
	switch (n->kind) {
	case ATEL_PROMQL_NUMBER: {
		/* "+Inf" would re-parse as a unary + over what follows ("+Inf ^ x" is
		 * +(Inf ^ x)), so positive infinity prints as "Inf". */
		char num[64];
		if (isinf(n->number) && n->number > 0)
			snprintf(num, sizeof(num), "Inf");
		else
			atel__promql_format_float(n->number, num, sizeof(num));
		atel__sbuf_puts(b, num);
		break;
	}
	case ATEL_PROMQL_STRING_LIT:
		put_quoted(b, n->string);
		break;
	case ATEL_PROMQL_SELECTOR:
		put_selector(b, n, true);
		break;
	case ATEL_PROMQL_MATRIX_SEL: {
		const struct atel_promql_node *vs = n->matrix.sel;
		put_selector(b, vs, false);
		atel__sbuf_puts(b, "[");
		put_duration(b, n->matrix.range_ms);
		atel__sbuf_puts(b, "]");
		put_at_offset(b, vs->sel.at, vs->sel.at_ms, vs->sel.offset_ms);
		break;
	}
	case ATEL_PROMQL_SUBQUERY:
		put(b, n->subquery.expr);
		atel__sbuf_puts(b, "[");
		put_duration(b, n->subquery.range_ms);
		atel__sbuf_puts(b, ":");
		if (n->subquery.step_ms)
			put_duration(b, n->subquery.step_ms);
		atel__sbuf_puts(b, "]");
		put_at_offset(b, n->subquery.at, n->subquery.at_ms, n->subquery.offset_ms);
		break;
	case ATEL_PROMQL_PAREN:
		atel__sbuf_puts(b, "(");
		put(b, n->paren.expr);
		atel__sbuf_puts(b, ")");
		break;
	case ATEL_PROMQL_UNARY:
		atel__sbuf_puts(b, op_str(n->unary.op));
		put(b, n->unary.expr);
		break;
	case ATEL_PROMQL_BINARY: {
		put(b, n->binary.lhs);
		atel__sbuf_printf(b, " %s", op_str(n->binary.op));
		if (n->binary.return_bool)
			atel__sbuf_puts(b, " bool");
		bool grouped = n->binary.card == ATEL_PROMQL_MANY_TO_ONE || n->binary.card == ATEL_PROMQL_ONE_TO_MANY;
		if (n->binary.on || n->binary.nmatch_labels > 0 || grouped) {
			atel__sbuf_puts(b, n->binary.on ? " on (" : " ignoring (");
			put_labels(b, n->binary.match_labels, n->binary.nmatch_labels);
			atel__sbuf_puts(b, ")");
			if (grouped) {
				atel__sbuf_puts(b, n->binary.card == ATEL_PROMQL_MANY_TO_ONE ? " group_left (" : " group_right (");
				put_labels(b, n->binary.include, n->binary.ninclude);
				atel__sbuf_puts(b, ")");
			}
		}
		atel__sbuf_puts(b, " ");
		put(b, n->binary.rhs);
		break;
	}
	case ATEL_PROMQL_CALL:
		atel__sbuf_puts(b, n->call.func);
		atel__sbuf_puts(b, "(");
		for (size_t i = 0; i < n->call.nargs; i++) {
			if (i)
				atel__sbuf_puts(b, ", ");
			put(b, n->call.args[i]);
		}
		atel__sbuf_puts(b, ")");
		break;
	case ATEL_PROMQL_AGGREGATE:
		atel__sbuf_puts(b, agg_str(n->agg.op));
		if (n->agg.without || n->agg.ngrouping > 0) {
			atel__sbuf_puts(b, n->agg.without ? " without (" : " by (");
			put_labels(b, n->agg.grouping, n->agg.ngrouping);
			atel__sbuf_puts(b, ") ");
		}
		atel__sbuf_puts(b, "(");
		if (n->agg.param) {
			put(b, n->agg.param);
			atel__sbuf_puts(b, ", ");
		}
		put(b, n->agg.expr);
		atel__sbuf_puts(b, ")");
		break;
	}
}

size_t atel_promql_format(const struct atel_promql_node *n, char *buf, size_t len)
{
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	put(&b, n);
	return b.pos;
}
