/* SPDX-License-Identifier: MIT */
/*
 * cmd_promql.c - `atel query 'PromQL'`: the PromQL engine (tools/promql) over
 * the segment log of a data directory (consumer/log/logprom.h), offline, no
 * daemon needed; the same engine and the same view of the log as ateld's
 * /api/v1/query. The flag form (`atel query METRIC --agg ...`, cmd_query.c)
 * stays: cmd_query hands over here only when promql_wanted() says so.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "logprom.h"
#include "promql.h"
#include "promql_int.h"
#include "query.h"

static const char promql_help[] =
	"usage: atel query 'PROMQL' [--time T | --range DUR [--end T] | --start T --end T] [--step DUR]\n"
	"                  [--resolution DUR] [--timeout DUR] [--json]\n"
	"Evaluates a PromQL expression over <data_dir>/segments, as ateld's /api/v1/query does.\n"
	"Instant at --time (default: now, or the newest sample when the log ends earlier), or a\n"
	"range query with --range (ending at --end, default as --time) or --start/--end, every\n"
	"--step (default: range/100, at least 1s). T: now, now-1h, Unix seconds, RFC 3339.\n"
	"Chosen over the flag form (atel query METRIC ...) when --time, --range, --step or\n"
	"--promql is given, or when the argument is not a plain METRIC{matchers} selector.\n"
	"Exit: 0 ok, 1 usage or a query error (bad_data), 2 no data / evaluation error.\n";

bool promql_wanted(int argc, char **argv)
{
	const char *pos = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "--time", 6) || !strncmp(a, "--range", 7) || !strncmp(a, "--step", 6) ||
		    !strcmp(a, "--promql"))
			return true;
		if (a[0] == '-' && a[1]) {
			/* the flag form's options all take a value ("--agg sum"): skip it */
			if (!strchr(a, '=') && strcmp(a, "--json") && strcmp(a, "--help") && strcmp(a, "-h"))
				i++;
			continue;
		}
		if (!pos)
			pos = a;
	}
	if (!pos)
		return false;
	struct atel_qselector sel = { 0 };
	char err[256];
	int rc = atel_q_selector_parse(pos, &sel, err, sizeof(err));
	atel_q_selector_free(&sel);
	return rc < 0;
}

/* ---- storage ---------------------------------------------------------------------- */

struct store {
	const char *segdir;
	int64_t res_ms;
	int64_t deadline_ns;
};

struct scan_arg {
	struct atel_promql_sink *sink;
	const struct store *st;
};

static int g_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	struct scan_arg *a = arg;
	struct atel_promql_label l[24];
	if (n > 24)
		n = 24;
	for (size_t i = 0; i < n; i++)
		l[i] = (struct atel_promql_label){ keys[i], vals[i] };
	return atel_promql_sink_series(a->sink, l, n, id);
}

static int g_sample(void *arg, uint32_t id, int64_t t, double v)
{
	return atel_promql_sink_sample(((struct scan_arg *)arg)->sink, id, t, v);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int g_interrupt(void *arg)
{
	const struct store *st = ((struct scan_arg *)arg)->st;
	return st->deadline_ns && mono_ns() > st->deadline_ns ? -ETIMEDOUT : 0;
}

static int store_select(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink, char *errmsg,
			size_t errlen)
{
	const struct store *st = ctx;
	struct scan_arg a = { sink, st };
	struct atel_logprom_opts o = {
		.segments_dir = st->segdir,
		.mint_ms = sel->mint_ms,
		.maxt_ms = sel->maxt_ms,
		.resolution_ms = st->res_ms,
		.name_hint = sel->metric_name,
		.series = g_series,
		.sample = g_sample,
		.interrupt = g_interrupt,
		.arg = &a,
	};
	return atel__logprom_scan(&o, NULL, errmsg, errlen);
}

static int no_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	(void)arg, (void)keys, (void)vals, (void)n, (void)id;
	return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static void fmt_val(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "NaN");
	else if (isinf(v))
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
	else
		atel__promql_format_float(v, buf, len); /* Go's %v, as promtool prints */
}

static void labels_text(const struct atel_promql_series *s, char *buf, size_t len)
{
	size_t o = 0;
	const char *name = NULL;
	for (size_t i = 0; i < s->nlabels; i++)
		if (!strcmp(s->labels[i].name, "__name__"))
			name = s->labels[i].value;
	o += (size_t)snprintf(buf + o, len - o, "%s{", name ? name : "");
	bool first = true;
	for (size_t i = 0; i < s->nlabels && o < len; i++) {
		if (!strcmp(s->labels[i].name, "__name__"))
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s=\"%s\"", first ? "" : ", ", s->labels[i].name,
				      s->labels[i].value);
		first = false;
	}
	if (o < len)
		snprintf(buf + o, len - o, "}");
}

static void fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(((ms % 1000) + 1000) % 1000));
}

static cJSON *json_labels(const struct atel_promql_series *s)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; i < s->nlabels; i++)
		cJSON_AddStringToObject(o, s->labels[i].name, s->labels[i].value);
	return o;
}

static cJSON *json_point(int64_t t, double v)
{
	char b[64];
	cJSON *a = cJSON_CreateArray();
	cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t / 1000.0));
	fmt_val(v, b, sizeof(b));
	cJSON_AddItemToArray(a, cJSON_CreateString(b));
	return a;
}

static void print_result(const struct atel_promql_result *r, bool json)
{
	char lb[2048], vb[64], tb[64];
	if (json) {
		cJSON *root = cJSON_CreateObject(), *data = cJSON_CreateObject(), *res;
		cJSON_AddStringToObject(root, "status", "success");
		cJSON_AddItemToObject(root, "data", data);
		switch (r->type) {
		case ATEL_PROMQL_SCALAR:
			cJSON_AddStringToObject(data, "resultType", "scalar");
			cJSON_AddItemToObject(data, "result", json_point(r->t_ms, r->scalar));
			break;
		case ATEL_PROMQL_STRING:
			cJSON_AddStringToObject(data, "resultType", "string");
			res = cJSON_CreateArray();
			cJSON_AddItemToArray(res, cJSON_CreateNumber((double)r->t_ms / 1000.0));
			cJSON_AddItemToArray(res, cJSON_CreateString(r->string));
			cJSON_AddItemToObject(data, "result", res);
			break;
		default:
			cJSON_AddStringToObject(data, "resultType", r->type == ATEL_PROMQL_VECTOR ? "vector" : "matrix");
			res = cJSON_CreateArray();
			for (size_t i = 0; i < r->nseries; i++) {
				const struct atel_promql_series *s = &r->series[i];
				cJSON *o = cJSON_CreateObject();
				cJSON_AddItemToObject(o, "metric", json_labels(s));
				if (r->type == ATEL_PROMQL_VECTOR) {
					if (!s->npoints) {
						cJSON_Delete(o);
						continue;
					}
					cJSON_AddItemToObject(o, "value", json_point(s->points[0].t_ms, s->points[0].v));
				} else {
					cJSON *vals = cJSON_CreateArray();
					for (size_t k = 0; k < s->npoints; k++)
						cJSON_AddItemToArray(vals, json_point(s->points[k].t_ms, s->points[k].v));
					cJSON_AddItemToObject(o, "values", vals);
				}
				cJSON_AddItemToArray(res, o);
			}
			cJSON_AddItemToObject(data, "result", res);
		}
		if (r->nwarnings) {
			cJSON *w = cJSON_CreateArray();
			for (size_t i = 0; i < r->nwarnings; i++)
				cJSON_AddItemToArray(w, cJSON_CreateString(r->warnings[i]));
			cJSON_AddItemToObject(root, "warnings", w);
		}
		cli_print_json(root);
		return;
	}
	switch (r->type) {
	case ATEL_PROMQL_SCALAR:
		fmt_val(r->scalar, vb, sizeof(vb));
		printf("%s\n", vb);
		break;
	case ATEL_PROMQL_STRING:
		printf("%s\n", r->string);
		break;
	case ATEL_PROMQL_VECTOR:
		if (!r->nseries)
			printf("(no series)\n");
		for (size_t i = 0; i < r->nseries; i++) {
			const struct atel_promql_series *s = &r->series[i];
			if (!s->npoints)
				continue;
			labels_text(s, lb, sizeof(lb));
			fmt_val(s->points[0].v, vb, sizeof(vb));
			printf("%s  %s\n", lb, vb);
		}
		break;
	default:
		if (!r->nseries)
			printf("(no series)\n");
		for (size_t i = 0; i < r->nseries; i++) {
			const struct atel_promql_series *s = &r->series[i];
			labels_text(s, lb, sizeof(lb));
			printf("%s\n", lb);
			for (size_t k = 0; k < s->npoints; k++) {
				fmt_time(s->points[k].t_ms, tb, sizeof(tb));
				fmt_val(s->points[k].v, vb, sizeof(vb));
				printf("  %s  %s\n", tb, vb);
			}
		}
	}
	for (size_t i = 0; i < r->nwarnings; i++)
		fprintf(stderr, "warning: %s\n", r->warnings[i]);
}

/* ---- the verb ------------------------------------------------------------------------ */

static int parse_t(const char *opt, const char *v, uint64_t now_ns, int64_t *ms)
{
	uint64_t ns;
	char err[256];
	if (atel_q_parse_time(v, now_ns, &ns, err, sizeof(err)) < 0) {
		cli_err("query", "%s: %s", opt, err);
		return ATEL_EXIT_USAGE;
	}
	*ms = (int64_t)(ns / 1000000u);
	return 0;
}

static int parse_d(const char *opt, const char *v, int64_t *ms)
{
	uint64_t ns;
	char err[256];
	if (atel_q_parse_duration(v, &ns, err, sizeof(err)) < 0 || ns == 0) {
		cli_err("query", "%s: %s", opt, ns == 0 ? "must be positive" : err);
		return ATEL_EXIT_USAGE;
	}
	*ms = (int64_t)(ns / 1000000u);
	return 0;
}

int cmd_query_promql(struct cli *c, int argc, char **argv)
{
	const char *q = NULL, *time_s = NULL, *range_s = NULL, *start_s = NULL, *end_s = NULL, *step_s = NULL,
		   *res_s = NULL, *tmo_s = NULL, *v;
	bool json = c->json;
	struct timespec now;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(promql_help, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--promql")) {
			continue;
		} else if ((v = cli_opt(argc, argv, &i, "--time"))) {
			time_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--range"))) {
			range_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--start"))) {
			start_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--end"))) {
			end_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--step"))) {
			step_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--resolution"))) {
			res_s = v;
		} else if ((v = cli_opt(argc, argv, &i, "--timeout"))) {
			tmo_s = v;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			cli_err("query", "unknown option %s with a PromQL expression (see atel query --promql --help)",
				argv[i]);
			return ATEL_EXIT_USAGE;
		} else if (q) {
			cli_err("query", "one PromQL expression only (quote it)");
			return ATEL_EXIT_USAGE;
		} else {
			q = argv[i];
		}
	}
	if (!q) {
		cli_err("query", "no PromQL expression given");
		return ATEL_EXIT_USAGE;
	}
	if (time_s && (range_s || start_s)) {
		cli_err("query", "--time is for an instant query; --range or --start/--end make a range query");
		return ATEL_EXIT_USAGE;
	}
	if (start_s && range_s) {
		cli_err("query", "--range and --start exclude each other");
		return ATEL_EXIT_USAGE;
	}
	/* a bad expression is a usage error, whatever the data directory holds */
	struct atel_promql_expr *e = NULL;
	struct atel_promql_result *r = NULL;
	struct atel_promql_error err = { 0 };
	if (atel_promql_parse(q, strlen(q), &e, &err) < 0) {
		cli_err("query", "%s", err.msg);
		return ATEL_EXIT_USAGE;
	}
	if (!cli_have_segments(c->seg_dir)) {
		cli_err("query", "no data: no segment files in %s (is this the data directory? --data-dir)", c->seg_dir);
		atel_promql_expr_free(e);
		return ATEL_EXIT_DATA;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	uint64_t now_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
	int64_t t_default = (int64_t)(now_ns / 1000000u);
	struct store st = { .segdir = c->seg_dir, .res_ms = 1000 };
	int64_t tmo_ms = 60000;
	if ((res_s && (rc = parse_d("--resolution", res_s, &st.res_ms))) || (tmo_s && (rc = parse_d("--timeout", tmo_s, &tmo_ms))))
		goto out;
	if (!time_s && !end_s) {
		/* offline data: the newest sample, when the log ends before now */
		struct atel_logprom_stats ls = { 0 };
		struct atel_logprom_opts o = { .segments_dir = c->seg_dir, .maxt_ms = -1, .carry_ms = -1,
					       .series = no_series };
		char why[256] = "";
		if (atel__logprom_scan(&o, &ls, why, sizeof(why)) == 0 && ls.last_ms && ls.last_ms < t_default)
			t_default = ls.last_ms;
	}
	struct atel_promql_storage stor = { &st, store_select };
	struct atel_promql_opts o = { .max_samples = 50000000 };
	int64_t t = t_default, start = 0, end = t_default, step = 0;
	bool range = range_s || start_s || end_s || step_s;

	if ((time_s && (rc = parse_t("--time", time_s, now_ns, &t))) || (end_s && (rc = parse_t("--end", end_s, now_ns, &end))) ||
	    (start_s && (rc = parse_t("--start", start_s, now_ns, &start))))
		goto out;
	if (range) {
		int64_t rng = 3600000;
		if (range_s && (rc = parse_d("--range", range_s, &rng)))
			goto out;
		if (!start_s)
			start = end - rng;
		if (end < start) {
			cli_err("query", "the end is before the start");
			rc = ATEL_EXIT_USAGE;
			goto out;
		}
		if (step_s) {
			if ((rc = parse_d("--step", step_s, &step)))
				goto out;
		} else {
			step = (end - start) / 100;
			if (step < 1000)
				step = 1000;
		}
	}
	st.deadline_ns = mono_ns() + tmo_ms * 1000000;
	o.deadline_ns = st.deadline_ns;
	if (range)
		rc = atel_promql_eval_range(e, &stor, &o, start, end, step, &r, &err);
	else
		rc = atel_promql_eval_instant(e, &stor, &o, t, &r, &err);
	if (rc < 0) {
		cli_err("query", "%s: %s", atel_promql_errtype_name(err.type), err.msg);
		rc = err.type == ATEL_PROMQL_ERR_BAD_DATA ? ATEL_EXIT_USAGE : ATEL_EXIT_DATA;
	} else {
		print_result(r, json);
		rc = 0;
	}
out:
	atel_promql_result_free(r);
	atel_promql_expr_free(e);
	return rc;
}
