/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PromQL evaluator (tools/promql/eval.c, funcs.c):
 * the input is a query, evaluated as an instant query and as a short range
 * query over a small fixed storage (counters, gauges, a classic histogram,
 * a stale marker). Work is bounded the way a server bounds it: the
 * interrupt callback stops a query after a fixed number of polls, and
 * max_samples caps memory. Contracts: no crash or sanitizer report, errors
 * carry one of the API's error types, results are well-formed (matrix
 * series sorted, points in time order).
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fseries {
	struct atel_promql_label l[3];
	size_t nl;
	int kind; /* 0 counter, 1 gauge, 2 bucket */
};

static const struct fseries series[] = {
	{ { { "__name__", "req_total" }, { "job", "a" } }, 2, 0 },
	{ { { "__name__", "req_total" }, { "job", "b" } }, 2, 0 },
	{ { { "__name__", "temp" }, { "job", "a" }, { "x", "1" } }, 3, 1 },
	{ { { "__name__", "lat_bucket" }, { "le", "0.1" } }, 2, 2 },
	{ { { "__name__", "lat_bucket" }, { "le", "1" } }, 2, 2 },
	{ { { "__name__", "lat_bucket" }, { "le", "+Inf" } }, 2, 2 },
};

static int fselect(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink, char *errmsg,
		   size_t errlen)
{
	(void)ctx, (void)errmsg, (void)errlen;
	uint64_t sb = ATEL_PROMQL_STALE_NAN_BITS;
	double stale;
	memcpy(&stale, &sb, sizeof(stale));
	for (size_t i = 0; i < sizeof(series) / sizeof(series[0]); i++) {
		uint32_t id;
		int rc = atel_promql_sink_series(sink, series[i].l, series[i].nl, &id);
		if (rc < 0)
			return rc;
		if (rc == 0)
			continue;
		/* 0..20 minutes, every 15 s; a reset at 10 minutes; a stale marker in temp */
		int64_t from = sel->mint_ms < 0 ? 0 : sel->mint_ms / 15000 * 15000;
		for (int64_t t = from; t <= sel->maxt_ms && t <= 1200000; t += 15000) {
			double v;
			if (series[i].kind == 1)
				v = t == 600000 ? stale : sin((double)t / 60000.0) * 10;
			else
				v = (double)((t % 600000) / 15000) * (double)(i + 1);
			rc = atel_promql_sink_sample(sink, id, t, v);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static int stop_after(void *ctx)
{
	int *n = ctx;
	return ++*n > 20000 ? -ETIMEDOUT : 0;
}

static void check(int rc, const struct atel_promql_result *r, const struct atel_promql_error *err)
{
	if (rc) {
		if (err->type == ATEL_PROMQL_ERR_NONE || !err->msg[0] || r)
			abort();
		return;
	}
	for (size_t i = 0; i < r->nseries; i++)
		for (size_t k = 1; k < r->series[i].npoints; k++)
			if (r->series[i].points[k].t_ms <= r->series[i].points[k - 1].t_ms)
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2048)
		return 0;
	struct atel_promql_expr *e;
	struct atel_promql_error err;
	if (atel_promql_parse((const char *)data, size, &e, &err))
		return 0;
	struct atel_promql_storage st = { NULL, fselect };
	int polls = 0;
	struct atel_promql_opts o = { .max_samples = 200000, .max_steps = 200, .interrupt = stop_after,
				      .interrupt_ctx = &polls };
	struct atel_promql_result *r = NULL;
	int rc = atel_promql_eval_instant(e, &st, &o, 900000, &r, &err);
	check(rc, r, &err);
	atel_promql_result_free(r);
	r = NULL;
	polls = 0;
	rc = atel_promql_eval_range(e, &st, &o, 0, 1200000, 60000, &r, &err);
	check(rc, r, &err);
	atel_promql_result_free(r);
	atel_promql_expr_free(e);
	return 0;
}
