/* SPDX-License-Identifier: MIT */
/*
 * cmd_query.c - `atel query`, `atel stats`, `atel metrics`, `atel export`.
 *
 * query/stats select raw samples (qsource.h) from the index, or from the
 * segment files when there is no index (--source picks). metrics/export
 * replay the log through the same aggregator that serves ateld's /metrics
 * (consumer/aggregates/aggregates.h), so their numbers are the ones Prometheus sees
 * (minus what retention has deleted and the atel_* self-metrics).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "aggregates.h"
#include "catalog.h"
#include "cli.h"
#include "logread.h"
#include "metricname.h"
#include "prometheus.h"
#include "index.h"
#include "qsource.h"
#include "query.h"
#include "plot.h"
#include "ring.h"

#define NS 1000000000ull

static const char *metric_unit(const char *name)
{
	const struct atel_catalog_metric *m = name ? atel__catalog_find(name) : NULL;
	if (m)
		return m->unit;
	size_t l = name ? strlen(name) : 0;
	if (l > 8 && strcmp(name + l - 8, "_seconds") == 0)
		return "seconds";
	return "";
}

/* Loads series from the source asked for. @return 0 or an exit code. */
static int load(struct cli *c, const char *verb, const char *source, const struct atel_qselector *sel,
		uint64_t start, uint64_t end, struct atel_qresult *res, const char **used)
{
	char err[512] = "";
	bool want_db = strcmp(source, "db") == 0, want_log = strcmp(source, "log") == 0;
	if (!want_db && !want_log && strcmp(source, "auto") != 0) {
		cli_err(verb, "--source must be auto, db or log");
		return ATEL_EXIT_USAGE;
	}
	if (!want_log) {
		sqlite3 *db;
		int rc = cli_db_open_ro(c, &db, err, sizeof(err));
		if (rc == 0 && !want_db && atel__ix_mode_compact(db) == 1) {
			/* a compact index keeps no raw samples: the log answers */
			sqlite3_close(db);
			rc = -ENOENT;
		} else if (rc == 0) {
			/* one read transaction: the rows and the cursor they end at agree */
			struct atel_log_pos cur;
			uint64_t tail = 0;
			sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
			rc = atel_qs_select_db(db, sel, start, end, res, err, sizeof(err));
			bool have_cur = rc == 0 && atel_qs_db_cursor(db, &cur) == 0;
			/* no silent partial answer: add what the index has not covered yet */
			if (have_cur && !want_db && cli_have_segments(c->seg_dir))
				rc = atel_qs_add_log_tail(db, c->seg_dir, &cur, sel, start, end, res, &tail, err,
							  sizeof(err));
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			sqlite3_close(db);
			if (rc < 0) {
				cli_err(verb, "%s", err);
				return ATEL_EXIT_DATA;
			}
			if (res->corrupt_frames)
				cli_err(verb, "warning: %llu corrupt frame(s) skipped in the log tail (first: %s)",
					(unsigned long long)res->corrupt_frames, err);
			*used = tail ? "db+log" : "db";
			return 0;
		}
		if (want_db || rc != -ENOENT) {
			cli_err(verb, "%s", err);
			return ATEL_EXIT_DATA;
		}
	}
	if (!cli_have_segments(c->seg_dir)) {
		cli_err(verb, "no data in %s: neither telemetry.db nor segments/*.atseg", c->data_dir);
		return ATEL_EXIT_DATA;
	}
	int rc = atel_qs_select_log(c->seg_dir, NULL, sel, start, end, res, err, sizeof(err));
	if (rc < 0) {
		cli_err(verb, "%s", err);
		return ATEL_EXIT_DATA;
	}
	if (res->corrupt_frames)
		cli_err(verb, "warning: %llu corrupt frame(s) skipped (first: %s); run `atel replay` for details",
			(unsigned long long)res->corrupt_frames, err);
	*used = "segments";
	return 0;
}

/*
 * load() for a metric as the user typed it: an exported name (a counter's
 * _total, a histogram's _bucket/_sum/_count) reads the recorded one; a name
 * that nothing recorded and the catalog does not know is an error with a
 * "did you mean". @return 0, an exit code of load(), or ATEL_EXIT_NOT_FOUND.
 */
static int load_named(struct cli *c, const char *verb, const char *source, struct atel_qselector *sel,
		      uint64_t start, uint64_t end, struct atel_qresult *res, const char **used)
{
	int rc = load(c, verb, source, sel, start, end, res, used);
	if (rc || res->n || !sel->metric)
		return rc;
	struct cli_names known = { 0 };
	sqlite3 *db = NULL;
	char err[256], alias[256];
	bool have_db = strcmp(source, "log") != 0 && cli_db_open_ro(c, &db, err, sizeof(err)) == 0;
	if (have_db) {
		cli_names_from_db(db, &known);
		sqlite3_close(db);
	}
	if (!have_db || strcmp(source, "db") != 0)
		cli_names_from_log(c->seg_dir, &known);
	if (!cli_metric_known(sel->metric, &known) && cli_metric_alias(sel->metric, alias, sizeof(alias)) &&
	    cli_metric_known(alias, &known)) {
		char *a = strdup(alias);
		if (!a) {
			cli_names_free(&known);
			return ATEL_EXIT_DATA;
		}
		free(sel->metric);
		sel->metric = a;
		atel_qresult_free(res);
		rc = load(c, verb, source, sel, start, end, res, used);
	} else if (!cli_metric_known(sel->metric, &known)) {
		const char *near = cli_metric_suggest(sel->metric, &known);
		cli_err(verb, "unknown metric \"%s\" (nothing recorded it%s)%s%s%s", sel->metric,
			known.n ? "" : "; no metrics recorded yet", near ? "; did you mean " : "", near ? near : "",
			near ? "?" : "");
		rc = ATEL_EXIT_NOT_FOUND;
	}
	cli_names_free(&known);
	return rc;
}

/* group key of a series: values of the --by labels joined by \x1f */
static char *group_key(const struct atel_qseries *s, char *const *by, size_t nby)
{
	size_t len = 1;
	for (size_t i = 0; i < nby; i++) {
		const char *v = "";
		for (size_t j = 0; j < s->nlabels; j++)
			if (strcmp(s->keys[j], by[i]) == 0)
				v = s->values[j];
		len += strlen(v) + 1;
	}
	char *k = malloc(len);
	if (!k)
		return NULL;
	k[0] = 0;
	for (size_t i = 0; i < nby; i++) {
		const char *v = "";
		for (size_t j = 0; j < s->nlabels; j++)
			if (strcmp(s->keys[j], by[i]) == 0)
				v = s->values[j];
		strcat(k, v);
		if (i + 1 < nby)
			strcat(k, "\x1f");
	}
	return k;
}

struct group {
	char *key;
	size_t *members;
	size_t nmembers;
};

static int make_groups(const struct atel_qresult *r, char *const *by, size_t nby, struct group **out, size_t *nout)
{
	struct group *g = calloc(r->n ? r->n : 1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	size_t ng = 0;
	for (size_t i = 0; i < r->n; i++) {
		char *k = group_key(&r->s[i], by, nby);
		if (!k)
			goto oom;
		size_t j = 0;
		while (j < ng && strcmp(g[j].key, k) != 0)
			j++;
		if (j == ng) {
			g[ng].key = k;
			g[ng].members = calloc(r->n, sizeof(size_t));
			if (!g[ng].members)
				goto oom;
			ng++;
		} else {
			free(k);
		}
		g[j].members[g[j].nmembers++] = i;
	}
	*out = g;
	*nout = ng;
	return 0;
oom:
	for (size_t i = 0; i < ng; i++) {
		free(g[i].key);
		free(g[i].members);
	}
	free(g);
	return -ENOMEM;
}

static void groups_free(struct group *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(g[i].key);
		free(g[i].members);
	}
	free(g);
}

static cJSON *group_labels_json(const char *key, char *const *by, size_t nby)
{
	cJSON *o = cJSON_CreateObject();
	const char *p = key;
	for (size_t i = 0; i < nby; i++) {
		const char *e = strchr(p, '\x1f');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		char *v = strndup(p, l);
		cJSON_AddStringToObject(o, by[i], v ? v : "");
		free(v);
		p = e ? e + 1 : p + l;
	}
	return o;
}

static char *group_labels_text(const char *key, char *const *by, size_t nby)
{
	if (nby == 0)
		return strdup("{}");
	cJSON *o = group_labels_json(key, by, nby);
	char *t = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return t;
}

static size_t split_csv(char *s, char **out, size_t max)
{
	size_t n = 0;
	for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
		if (*tok)
			out[n++] = tok;
	return n;
}

/* ---- query ------------------------------------------------------------------ */

static const char query_help[] =
	"usage: atel query METRIC[{matchers}] [options]\n"
	"  --labels k=v,k2!=v,k3=~re,k4!~re   label matchers (PromQL semantics, regexes anchored)\n"
	"  --since DUR | --start T --end T    range (default: the last hour); T: now, now-1h, -30m,\n"
	"                                     Unix seconds, RFC 3339\n"
	"  --agg avg|sum|min|max|count|p50|p95|p99|rate   reduce each interval bucket\n"
	"  --interval DUR                     bucket width (default 5m), aligned to the Unix epoch\n"
	"  --by k1,k2                         one result per value of these labels (default: all\n"
	"                                     matching series together)\n"
	"  --moving-average N                 per series: mean of the last N samples\n"
	"  --anomalies SIGMA [--window N]     per series: rolling z-score over the N previous samples\n"
	"                                     (default 30); lists the samples with |z| > SIGMA\n"
	"  --rate WINDOW                      per series: Prometheus rate(x[WINDOW]) at each sample\n"
	"  --source auto|db|log               auto: a full index up to its cursor plus the log past\n"
	"                                     it (source db+log), or the segment files without an\n"
	"                                     index or with a compact one (index.mode);\n"
	"                                     log: the segment files; db: the index alone (may lag)\n"
	"  --limit N                          rows (the last ones) per series: raw samples (default\n"
	"                                     20), buckets, function results, anomalies (default all);\n"
	"                                     a cut output ends with \"... N more\"; 0: all\n"
	"  --json                             machine-readable output\n"
	"  --plot [--width N] [--ascii]       with --agg/--interval: a chart, one row per series\n"
	"                                     (width: --width, else $COLUMNS, else 80; ASCII when\n"
	"                                     the locale is not UTF-8 or with --ascii)\n"
	"Values: counter increments (rate/--rate use the running sum), gauge values, histogram\n"
	"observations. Exit: 0 ok, 1 usage, 2 no data source / unreadable data.\n";

struct qargs {
	const char *metric, *labels, *agg, *interval, *by, *source, *ma, *anom, *window, *rate, *limit;
	struct cli_range range;
	const char *width; /* --plot --width N (issue 17) */
	bool plot, ascii;
};

static int parse_qargs(const char *verb, int argc, char **argv, struct qargs *a, const char *help)
{
	memset(a, 0, sizeof(*a));
	a->source = "auto";
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(help, stdout);
			return -1;
		}
#define OPT(name, field)                                                                                       \
	if ((v = cli_opt(argc, argv, &i, name)) != NULL) {                                                     \
		if (!*v) {                                                                                     \
			if (strchr(argv[i], '='))                                                              \
				cli_err(verb, "%s needs a non-empty value", name);                             \
			return ATEL_EXIT_USAGE;                                                                \
		}                                                                                              \
		a->field = v;                                                                                  \
		continue;                                                                                      \
	}
		OPT("--labels", labels)
		OPT("--agg", agg)
		OPT("--interval", interval)
		OPT("--by", by)
		OPT("--source", source)
		OPT("--moving-average", ma)
		OPT("--anomalies", anom)
		OPT("--window", window)
		OPT("--rate", rate)
		OPT("--limit", limit)
		OPT("--since", range.since)
		OPT("--start", range.start)
		OPT("--end", range.end)
		OPT("--width", width)
#undef OPT
		if (strcmp(argv[i], "--plot") == 0 || strcmp(argv[i], "--ascii") == 0) { /* issue 17 */
			*(argv[i][2] == 'p' ? &a->plot : &a->ascii) = true;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1]) {
			cli_err(verb, "unknown option %s (see atel %s --help)", argv[i], verb);
			return ATEL_EXIT_USAGE;
		}
		if (a->metric) {
			cli_err(verb, "one METRIC only (got \"%s\" and \"%s\")", a->metric, argv[i]);
			return ATEL_EXIT_USAGE;
		}
		a->metric = argv[i];
	}
	if (!a->metric) {
		cli_err(verb, "missing METRIC (see atel %s --help)", verb);
		return ATEL_EXIT_USAGE;
	}
	return cli_range_resolve(verb, &a->range);
}

static int parse_selector(const char *verb, const struct qargs *a, struct atel_qselector *sel)
{
	char err[256];
	if (atel_q_selector_parse(a->metric, sel, err, sizeof(err)) < 0) {
		cli_err(verb, "METRIC \"%s\": %s", a->metric, err);
		return ATEL_EXIT_USAGE;
	}
	if (!sel->metric) {
		cli_err(verb, "METRIC \"%s\" names no metric", a->metric);
		return ATEL_EXIT_USAGE;
	}
	if (a->labels && !strpbrk(a->labels, "=!{")) {
		/* a bare word is a label name without a value, not a second metric */
		cli_err(verb, "--labels \"%s\": expected matchers k=v,k2!=v,k3=~re,k4!~re (to group by a label, "
			"use --by %s)", a->labels, a->labels);
		return ATEL_EXIT_USAGE;
	}
	if (a->labels && atel_q_selector_parse(a->labels, sel, err, sizeof(err)) < 0) {
		cli_err(verb, "--labels \"%s\": %s", a->labels, err);
		return ATEL_EXIT_USAGE;
	}
	return 0;
}

static bool parse_count(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-')
		return false;
	*out = (size_t)v;
	return true;
}

static void print_point_row(struct table *t, uint64_t ts, const char *labels, double v, const char *unit)
{
	char tb[40], vb[40];
	table_rowf(t, "%s\t%s\t%s", atel_q_fmt_time(ts, tb, sizeof(tb)), labels, atel_q_fmt_value(v, unit, vb, sizeof(vb)));
}

/* per-series functions: --moving-average, --anomalies, --rate */
static size_t limit_from(size_t n);

static int query_series_fn(struct cli *c, const struct qargs *a, const struct atel_qresult *r, cJSON *jseries,
			   struct table *t)
{
	size_t ma = 0, win = 30;
	double sigma = 0;
	uint64_t rate_ns = 0;
	char err[256];
	if (a->ma && (!parse_count(a->ma, &ma) || ma == 0)) {
		cli_err("query", "--moving-average: expected a positive count, got \"%s\"", a->ma);
		return ATEL_EXIT_USAGE;
	}
	if (a->window && (!parse_count(a->window, &win) || win == 0)) {
		cli_err("query", "--window: expected a positive count, got \"%s\"", a->window);
		return ATEL_EXIT_USAGE;
	}
	if (a->anom) {
		char *end;
		sigma = strtod(a->anom, &end);
		if (*end || !(sigma > 0) || !isfinite(sigma)) {
			cli_err("query", "--anomalies: expected a positive number of standard deviations, got \"%s\"",
				a->anom);
			return ATEL_EXIT_USAGE;
		}
	}
	if (a->rate && (atel_q_parse_duration(a->rate, &rate_ns, err, sizeof(err)) < 0 || rate_ns == 0)) {
		cli_err("query", "--rate: %s", rate_ns == 0 && !err[0] ? "window must be > 0" : err);
		return ATEL_EXIT_USAGE;
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct atel_qseries *s = &r->s[i];
		char *lj = atel_qs_labels_json(s);
		struct atel_qpoint *cum = malloc((s->n + 1) * sizeof(*cum));
		struct atel_qpoint *out = malloc((s->n + 1) * sizeof(*out));
		struct atel_qanomaly *an = a->anom ? malloc((s->n + 1) * sizeof(*an)) : NULL;
		if (!lj || !cum || !out || (a->anom && !an)) {
			free(lj);
			free(cum);
			free(out);
			free(an);
			return ATEL_EXIT_DATA;
		}
		/* counters: the cumulative value; others: the samples */
		atel_qs_cumulative(s, cum);
		const struct atel_qpoint *vals = s->mtype == ATEL_MT_COUNTER ? cum : s->pts;
		cJSON *js = cJSON_CreateObject(), *pts = cJSON_CreateArray();
		cJSON_AddItemToObject(js, "labels", cJSON_Parse(lj));
		cJSON_AddStringToObject(js, "type", atel__metric_type_name(s->mtype));
		cJSON_AddItemToObject(js, "points", pts);
		size_t n = 0;
		const char *unit = metric_unit(s->name);
		if (a->rate) {
			atel_q_calculate_rate(cum, s->n, rate_ns, out, &n);
			unit = "/s";
		} else if (a->ma) {
			atel_q_moving_average(vals, s->n, ma, out);
			n = s->n;
		}
		if (a->anom) {
			atel_q_detect_anomalies(vals, s->n, win, sigma, an);
			size_t nan_ = 0, seen = 0;
			for (size_t k = 0; k < s->n; k++)
				nan_ += an[k].anomaly;
			size_t skip = limit_from(nan_);
			for (size_t k = 0; k < s->n; k++) {
				if (!an[k].anomaly || seen++ < skip)
					continue;
				cJSON *p = cJSON_CreateObject();
				cJSON_AddItemToObject(p, "ts_ns", cli_json_u64(an[k].ts_ns));
				cJSON_AddItemToObject(p, "value", cli_json_num(an[k].v));
				cJSON_AddItemToObject(p, "mean", cli_json_num(an[k].mean));
				cJSON_AddItemToObject(p, "stddev", cli_json_num(an[k].stddev));
				cJSON_AddItemToObject(p, "score", cli_json_num(an[k].score));
				cJSON_AddItemToArray(pts, p);
				char tb[40], vb[40], mb[40];
				table_rowf(t, "%s\t%s\t%s\tmean %s, z = %+.2f", atel_q_fmt_time(an[k].ts_ns, tb, sizeof(tb)), lj,
					   atel_q_fmt_value(an[k].v, unit, vb, sizeof(vb)),
					   atel_q_fmt_value(an[k].mean, unit, mb, sizeof(mb)), an[k].score);
			}
		} else {
			for (size_t k = limit_from(n); k < n; k++) {
				cJSON *p = cJSON_CreateObject();
				cJSON_AddItemToObject(p, "ts_ns", cli_json_u64(out[k].ts_ns));
				cJSON_AddItemToObject(p, "value", cli_json_num(out[k].v));
				cJSON_AddItemToArray(pts, p);
				print_point_row(t, out[k].ts_ns, lj, out[k].v, unit);
			}
		}
		cJSON_AddItemToArray(jseries, js);
		free(lj);
		free(cum);
		free(out);
		free(an);
	}
	(void)c;
	return 0;
}

/* --limit: rows kept per series (the last ones; 0: all) and how many were cut. */
static size_t row_limit;
static size_t rows_omitted;

/* First index to keep of n rows under --limit; counts the rest as omitted. */
static size_t limit_from(size_t n)
{
	size_t from = row_limit && n > row_limit ? n - row_limit : 0;
	rows_omitted += from;
	return from;
}

/* How a query is computed, from its options. */
struct query_plan {
	enum atel_qagg agg;              /* ATEL_QAGG_NONE: the points themselves */
	uint64_t interval;               /* bucket width */
	int nfn;                         /* --moving-average, --anomalies or --rate given */
	size_t limit;                    /* points shown per series without --agg */
	char *bybuf, *by[ATEL_LABELS_MAX]; /* --by labels */
	size_t nby;
};

/* Checks the options against each other. @return 0 or ATEL_EXIT_USAGE. */
static int query_plan(const struct qargs *a, struct query_plan *p)
{
	char err[256];

	memset(p, 0, sizeof(*p));
	p->agg = ATEL_QAGG_NONE;
	p->interval = 300 * NS;
	p->limit = 20;
	if (a->agg && atel_q_agg_parse(a->agg, &p->agg) < 0) {
		cli_err("query", "--agg: expected avg, sum, min, max, count, p50, p95, p99 or rate, got \"%s\"", a->agg);
		return ATEL_EXIT_USAGE;
	}
	if (a->interval) {
		if (atel_q_parse_duration(a->interval, &p->interval, err, sizeof(err)) < 0) {
			cli_err("query", "--interval: %s", err);
			return ATEL_EXIT_USAGE;
		}
		if (p->interval < 1000000ull) {
			cli_err("query", "--interval must be at least 1ms");
			return ATEL_EXIT_USAGE;
		}
		if (p->agg == ATEL_QAGG_NONE)
			p->agg = ATEL_QAGG_AVG;
	}
	p->nfn = (a->ma != NULL) + (a->anom != NULL) + (a->rate != NULL);
	if (p->nfn > 1 || (p->nfn && (p->agg != ATEL_QAGG_NONE || a->by))) {
		cli_err("query", "use one of --agg/--interval, --moving-average, --anomalies, --rate");
		return ATEL_EXIT_USAGE;
	}
	if (a->window && !a->anom) {
		cli_err("query", "--window goes with --anomalies");
		return ATEL_EXIT_USAGE;
	}
	if (a->limit && !parse_count(a->limit, &p->limit)) {
		cli_err("query", "--limit: expected a count, got \"%s\"", a->limit);
		return ATEL_EXIT_USAGE;
	}
	/* raw points: the last 20 per series by default; aggregates and functions: all unless --limit */
	row_limit = a->limit || (p->agg == ATEL_QAGG_NONE && !p->nfn) ? p->limit : 0;
	p->bybuf = a->by ? strdup(a->by) : NULL;
	p->nby = p->bybuf ? split_csv(p->bybuf, p->by, ATEL_LABELS_MAX) : 0;
	if (a->by && p->agg == ATEL_QAGG_NONE)
		p->agg = ATEL_QAGG_AVG;
	return 0;
}

/* Without --agg: the last points of every series. */
static void query_points(const struct query_plan *p, const struct atel_qresult *res, const char *unit,
			 cJSON *jseries, struct table *t)
{
	for (size_t i = 0; i < res->n; i++) {
		const struct atel_qseries *s = &res->s[i];
		char *lj = atel_qs_labels_json(s);
		cJSON *js = cJSON_CreateObject(), *pts = cJSON_CreateArray();
		cJSON_AddItemToObject(js, "labels", cJSON_Parse(lj ? lj : "{}"));
		cJSON_AddStringToObject(js, "type", atel__metric_type_name(s->mtype));
		cJSON_AddItemToObject(js, "samples", cli_json_u64(s->n));
		cJSON_AddItemToObject(js, "points", pts);
		(void)p;
		for (size_t k = limit_from(s->n); k < s->n; k++) {
			cJSON *pt = cJSON_CreateObject();
			cJSON_AddItemToObject(pt, "ts_ns", cli_json_u64(s->pts[k].ts_ns));
			cJSON_AddItemToObject(pt, "value", cli_json_num(s->pts[k].v));
			cJSON_AddItemToArray(pts, pt);
			print_point_row(t, s->pts[k].ts_ns, lj ? lj : "", s->pts[k].v, unit);
		}
		cJSON_AddItemToArray(jseries, js);
		free(lj);
	}
}

/* ---- --plot (issue 17): the series query_groups computed, drawn by tools/plot.c ---- */
static struct {
	bool on;
	struct atel_plot_opts opts;
	struct atel_plot_series *s;
	size_t n;
} plot_acc;

static void plot_add(const char *label, const struct atel_qpoint *pts, size_t n)
{
	size_t from = row_limit && n > row_limit ? n - row_limit : 0; /* the rows a table would show */
	struct atel_plot_series *ns = realloc(plot_acc.s, (plot_acc.n + 1) * sizeof(*ns));
	struct atel_qpoint *cp = malloc((n - from + 1) * sizeof(*cp));
	char *lc = strdup(label ? label : "");
	if (!ns || !cp || !lc) {
		if (ns)
			plot_acc.s = ns;
		free(cp);
		free(lc);
		return;
	}
	memcpy(cp, pts + from, (n - from) * sizeof(*cp));
	plot_acc.s = ns;
	ns[plot_acc.n++] = (struct atel_plot_series){ lc, cp, n - from };
}

static void plot_free(void)
{
	for (size_t i = 0; i < plot_acc.n; i++) {
		free((char *)plot_acc.s[i].label);
		free((struct atel_qpoint *)plot_acc.s[i].pts);
	}
	free(plot_acc.s);
	memset(&plot_acc, 0, sizeof(plot_acc));
}

/* With --agg (and --by): one aggregated series per group. @return 0 or ATEL_EXIT_DATA. */
static int query_groups(const struct query_plan *p, const struct atel_qresult *res, const char *unit,
			cJSON *jseries, struct table *t)
{
	struct group *groups = NULL;
	size_t ngroups = 0;
	int rc = 0;

	if (make_groups(res, p->by, p->nby, &groups, &ngroups) < 0)
		return ATEL_EXIT_DATA;
	const char *vunit = p->agg == ATEL_QAGG_COUNT ? "" : p->agg == ATEL_QAGG_RATE ? "/s" : unit;
	for (size_t g = 0; g < ngroups; g++) {
		size_t total = 0;
		for (size_t m = 0; m < groups[g].nmembers; m++)
			total += res->s[groups[g].members[m]].n;
		struct atel_qpoint *all = malloc((total + 1) * sizeof(*all));
		struct atel_qpoint *out = malloc((total + 1) * sizeof(*out));
		size_t nout = 0;
		if (!all || !out) {
			free(all);
			free(out);
			rc = ATEL_EXIT_DATA;
			break;
		}
		if (p->agg == ATEL_QAGG_RATE) {
			/* sum of the per-series rates per bucket, like sum by (...) (rate(x)) */
			size_t k = 0;
			for (size_t m = 0; m < groups[g].nmembers; m++) {
				const struct atel_qseries *s = &res->s[groups[g].members[m]];
				struct atel_qpoint *cum = malloc((s->n + 1) * sizeof(*cum));
				if (!cum)
					continue;
				atel_qs_cumulative(s, cum);
				size_t nb = 0;
				atel_q_aggregate(cum, s->n, p->interval, ATEL_QAGG_RATE,
						 s->mtype != ATEL_MT_GAUGE, all + k, &nb);
				k += nb;
				free(cum);
			}
			atel_q_sort_points(all, k);
			for (size_t x = 0; x < k;) {
				size_t y = x;
				double sum = NAN;
				for (; y < k && all[y].ts_ns == all[x].ts_ns; y++)
					if (!isnan(all[y].v))
						sum = isnan(sum) ? all[y].v : sum + all[y].v;
				out[nout++] = (struct atel_qpoint){ all[x].ts_ns, sum };
				x = y;
			}
		} else {
			size_t k = 0;
			for (size_t m = 0; m < groups[g].nmembers; m++) {
				const struct atel_qseries *s = &res->s[groups[g].members[m]];
				memcpy(all + k, s->pts, s->n * sizeof(*all));
				k += s->n;
			}
			atel_q_aggregate(all, k, p->interval, p->agg, false, out, &nout);
		}
		char *lt = group_labels_text(groups[g].key, p->by, p->nby);
		cJSON *js = cJSON_CreateObject(), *pts = cJSON_CreateArray();
		cJSON_AddItemToObject(js, "labels", group_labels_json(groups[g].key, p->by, p->nby));
		cJSON_AddItemToObject(js, "series", cli_json_u64(groups[g].nmembers));
		cJSON_AddItemToObject(js, "points", pts);
		for (size_t k = limit_from(nout); k < nout; k++) {
			cJSON *pt = cJSON_CreateObject();
			cJSON_AddItemToObject(pt, "ts_ns", cli_json_u64(out[k].ts_ns));
			cJSON_AddItemToObject(pt, "value", cli_json_num(out[k].v));
			cJSON_AddItemToArray(pts, pt);
			print_point_row(t, out[k].ts_ns, lt ? lt : "", out[k].v, vunit);
		}
		if (plot_acc.on) { /* --plot (issue 17) */
			plot_acc.opts.unit = vunit;
			plot_add(lt, out, nout);
		}
		cJSON_AddItemToArray(jseries, js);
		free(lt);
		free(all);
		free(out);
	}
	groups_free(groups, ngroups);
	return rc;
}

static void query_print(const struct cli *c, const struct qargs *a, const struct atel_qselector *sel,
			const struct atel_qresult *res, const char *used, cJSON *root, const struct table *t)
{
	if (c->json) {
		cli_print_json(root); /* takes root */
	} else if (table_rows(t) == 0) {
		cJSON_Delete(root);
		if (a->anom && res->n)
			printf("no anomalies (|z| > %s) among %zu series of %s (source: %s)\n", a->anom, res->n,
			       sel->metric, used);
		else
			printf("no samples of %s matched in %s (source: %s)\n", sel->metric,
			       a->range.since ? a->range.since : "the range", used);
	} else {
		cJSON_Delete(root);
		if (plot_acc.on) { /* --plot (issue 17) */
			if (atel_plot_write(stdout, plot_acc.s, plot_acc.n, &plot_acc.opts) < 0)
				cli_err("query", "--plot: out of memory");
		} else {
			table_print(t, stdout, c);
		}
		if (rows_omitted)
			printf("... %zu more row(s) (the last %zu per series shown; --limit 0 shows all)\n", rows_omitted,
			       row_limit);
		printf("%s(source: %s)%s\n", cli_c(c, C_DIM), used, cli_c(c, C_RESET));
	}
}

int cmd_query(struct cli *c, int argc, char **argv)
{
	static const char *hdr3[] = { "TIME", "LABELS", "VALUE" };
	static const char *hdr4[] = { "TIME", "LABELS", "VALUE", "" };
	static const bool right[] = { false, false, true, false };
	struct qargs a;
	struct query_plan p;
	struct atel_qselector sel = { 0 };
	struct atel_qresult res = { 0 };
	struct table *t = NULL;
	const char *used = "", *unit;
	cJSON *root, *jseries;
	int rc;

	if (promql_wanted(argc, argv)) /* `atel query 'PromQL'` (cmd_promql.c, issue 16) */
		return cmd_query_promql(c, argc, argv);
	rc = parse_qargs("query", argc, argv, &a, query_help);
	if (rc)
		return rc < 0 ? 0 : rc;
	if ((rc = query_plan(&a, &p)) || (rc = parse_selector("query", &a, &sel)) != 0 ||
	    (rc = load_named(c, "query", a.source, &sel, a.range.start_ns, a.range.end_ns, &res, &used)) != 0)
		goto out;

	if (a.plot || a.width || a.ascii) { /* --plot (issue 17) */
		size_t w = 80;
		const char *cols = getenv("COLUMNS");
		if (!a.plot || p.agg == ATEL_QAGG_NONE || p.nfn) {
			cli_err("query", "--plot goes with --agg or --interval (--width and --ascii with --plot)");
			rc = ATEL_EXIT_USAGE;
			goto out;
		}
		if (a.width && (!parse_count(a.width, &w) || w < 20 || w > 1000)) {
			cli_err("query", "--width: expected a number of columns from 20 to 1000, got \"%s\"", a.width);
			rc = ATEL_EXIT_USAGE;
			goto out;
		}
		if (!a.width && !(cols && parse_count(cols, &w) && w >= 20 && w <= 1000))
			w = 80; /* no usable $COLUMNS */
		plot_acc.on = true;
		plot_acc.opts.width = (int)w;
		plot_acc.opts.step_ns = p.interval;
		plot_acc.opts.ascii = a.ascii ||
			!atel_plot_utf8_locale(getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG"));
	}
	unit = metric_unit(sel.metric);
	root = cJSON_CreateObject();
	jseries = cJSON_CreateArray();
	cJSON_AddStringToObject(root, "metric", sel.metric);
	cJSON_AddStringToObject(root, "source", used);
	cJSON_AddItemToObject(root, "start_ns", cli_json_u64(a.range.start_ns));
	cJSON_AddItemToObject(root, "end_ns", cli_json_u64(a.range.end_ns));
	if (p.agg != ATEL_QAGG_NONE) {
		cJSON_AddStringToObject(root, "agg", atel_q_agg_name(p.agg));
		cJSON_AddNumberToObject(root, "interval_s", (double)p.interval / 1e9);
		cJSON *jb = cJSON_CreateArray();
		for (size_t i = 0; i < p.nby; i++)
			cJSON_AddItemToArray(jb, cJSON_CreateString(p.by[i]));
		cJSON_AddItemToObject(root, "by", jb);
	}
	cJSON_AddItemToObject(root, "series", jseries);
	t = a.anom ? table_new(4, hdr4, right) : table_new(3, hdr3, right);
	if (p.nfn)
		rc = query_series_fn(c, &a, &res, jseries, t);
	else if (p.agg == ATEL_QAGG_NONE)
		query_points(&p, &res, unit, jseries, t);
	else
		rc = query_groups(&p, &res, unit, jseries, t);
	if (rc == 0 && rows_omitted)
		cJSON_AddItemToObject(root, "omitted_points", cli_json_u64(rows_omitted));
	if (rc == 0)
		query_print(c, &a, &sel, &res, used, root, t);
	else
		cJSON_Delete(root);
out:
	plot_free();
	table_free(t);
	atel_qresult_free(&res);
	atel_q_selector_free(&sel);
	free(p.bybuf);
	return rc;
}

/* ---- stats ------------------------------------------------------------------ */

static const char stats_help[] =
	"usage: atel stats METRIC[{matchers}] [--labels ...] [--since DUR | --start T --end T] [--by k,...]\n"
	"       [--source auto|db|log] [--json]\n"
	"Summary statistics of the samples in the range: count, min, max, avg, stddev\n"
	"(population), p50, p95, p99 (linear interpolation between closest ranks).\n"
	"Counters: over the increments, plus the total increase and its rate per second.\n"
	"Histograms: over the observations, plus PromQL histogram_quantile estimates from\n"
	"the series' buckets (bucket_p50/p95/p99). Exit: 0 ok, 1 usage, 2 no data source.\n";

int cmd_stats(struct cli *c, int argc, char **argv)
{
	struct qargs a;
	int rc = parse_qargs("stats", argc, argv, &a, stats_help);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (a.agg || a.interval || a.ma || a.anom || a.rate || a.window || a.limit) {
		cli_err("stats", "--agg/--interval/--moving-average/--anomalies/--rate/--window/--limit belong to query");
		return ATEL_EXIT_USAGE;
	}
	if (a.plot || a.width || a.ascii) { /* issue 17 */
		cli_err("stats", "--plot/--width/--ascii belong to query");
		return ATEL_EXIT_USAGE;
	}
	char *bybuf = a.by ? strdup(a.by) : NULL;
	char *by[ATEL_LABELS_MAX];
	size_t nby = bybuf ? split_csv(bybuf, by, ATEL_LABELS_MAX) : 0;
	struct atel_qselector sel = { 0 };
	struct atel_qresult res = { 0 };
	struct group *groups = NULL;
	size_t ngroups = 0;
	struct table *t = NULL;
	const char *used = "";
	if ((rc = parse_selector("stats", &a, &sel)) != 0)
		goto out;
	if ((rc = load_named(c, "stats", a.source, &sel, a.range.start_ns, a.range.end_ns, &res, &used)) != 0)
		goto out;
	if (make_groups(&res, by, nby, &groups, &ngroups) < 0) {
		rc = ATEL_EXIT_DATA;
		goto out;
	}
	const char *unit = metric_unit(sel.metric);
	uint8_t mtype = res.n ? res.s[0].mtype : 0;
	double range_s = (double)(a.range.end_ns - a.range.start_ns) / 1e9;
	cJSON *root = cJSON_CreateObject(), *jg = cJSON_CreateArray();
	cJSON_AddStringToObject(root, "metric", sel.metric);
	cJSON_AddStringToObject(root, "type", atel__metric_type_name(mtype));
	cJSON_AddStringToObject(root, "source", used);
	cJSON_AddItemToObject(root, "start_ns", cli_json_u64(a.range.start_ns));
	cJSON_AddItemToObject(root, "end_ns", cli_json_u64(a.range.end_ns));
	cJSON_AddItemToObject(root, "groups", jg);
	const char *hdr[] = { "LABELS", "COUNT", "MIN", "MAX", "AVG", "STDDEV", "P50", "P95", "P99", "EXTRA" };
	const bool right[] = { false, true, true, true, true, true, true, true, true, false };
	t = table_new(10, hdr, right);
	for (size_t g = 0; g < ngroups; g++) {
		size_t total = 0;
		for (size_t m = 0; m < groups[g].nmembers; m++)
			total += res.s[groups[g].members[m]].n;
		double *v = malloc((total + 1) * sizeof(*v));
		if (!v) {
			rc = ATEL_EXIT_DATA;
			break;
		}
		size_t k = 0;
		const double *bounds = NULL;
		size_t nbounds = 0;
		for (size_t m = 0; m < groups[g].nmembers; m++) {
			const struct atel_qseries *s = &res.s[groups[g].members[m]];
			for (size_t x = 0; x < s->n; x++)
				v[k++] = s->pts[x].v;
			if (s->nbounds && !bounds) {
				bounds = s->bounds;
				nbounds = s->nbounds;
			}
		}
		struct atel_qsummary sm;
		atel_q_summarize(v, k, &sm);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "labels", group_labels_json(groups[g].key, by, nby));
		cJSON_AddItemToObject(o, "series", cli_json_u64(groups[g].nmembers));
		cJSON_AddItemToObject(o, "count", cli_json_u64(sm.count));
		cJSON_AddItemToObject(o, "min", cli_json_num(sm.min));
		cJSON_AddItemToObject(o, "max", cli_json_num(sm.max));
		cJSON_AddItemToObject(o, "avg", cli_json_num(sm.avg));
		cJSON_AddItemToObject(o, "stddev", cli_json_num(sm.stddev));
		cJSON_AddItemToObject(o, "p50", cli_json_num(sm.p50));
		cJSON_AddItemToObject(o, "p95", cli_json_num(sm.p95));
		cJSON_AddItemToObject(o, "p99", cli_json_num(sm.p99));
		cJSON_AddItemToObject(o, "sum", cli_json_num(sm.sum));
		char extra[160] = "";
		if (mtype == ATEL_MT_COUNTER) {
			cJSON_AddItemToObject(o, "increase", cli_json_num(sm.sum));
			cJSON_AddItemToObject(o, "rate_per_s", cli_json_num(range_s > 0 ? sm.sum / range_s : NAN));
			char b1[32];
			snprintf(extra, sizeof(extra), "increase %s, %.4g/s", atel_q_fmt_count(sm.sum, b1, sizeof(b1)),
				 range_s > 0 ? sm.sum / range_s : 0.0);
		} else if (mtype == ATEL_MT_HISTOGRAM && bounds) {
			uint64_t *cnt = calloc(nbounds + 1, sizeof(*cnt));
			double *up = malloc((nbounds + 1) * sizeof(*up)), *cum = malloc((nbounds + 1) * sizeof(*cum));
			if (cnt && up && cum) {
				atel_q_bucketize(v, k, bounds, nbounds, cnt);
				double acc = 0;
				for (size_t b = 0; b <= nbounds; b++) {
					acc += (double)cnt[b];
					cum[b] = acc;
					up[b] = b < nbounds ? bounds[b] : INFINITY;
				}
				double q50 = atel_q_histogram_quantile(0.50, up, cum, nbounds + 1);
				double q95 = atel_q_histogram_quantile(0.95, up, cum, nbounds + 1);
				double q99 = atel_q_histogram_quantile(0.99, up, cum, nbounds + 1);
				cJSON_AddItemToObject(o, "bucket_p50", cli_json_num(q50));
				cJSON_AddItemToObject(o, "bucket_p95", cli_json_num(q95));
				cJSON_AddItemToObject(o, "bucket_p99", cli_json_num(q99));
				char b1[32], b2[32], b3[32];
				snprintf(extra, sizeof(extra), "buckets: p50 %s, p95 %s, p99 %s",
					 atel_q_fmt_value(q50, unit, b1, sizeof(b1)), atel_q_fmt_value(q95, unit, b2, sizeof(b2)),
					 atel_q_fmt_value(q99, unit, b3, sizeof(b3)));
			}
			free(cnt);
			free(up);
			free(cum);
		}
		cJSON_AddItemToArray(jg, o);
		char *lt = group_labels_text(groups[g].key, by, nby);
		char b[8][32];
		table_rowf(t, "%s\t%llu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", lt ? lt : "", (unsigned long long)sm.count,
			   atel_q_fmt_value(sm.min, unit, b[0], 32), atel_q_fmt_value(sm.max, unit, b[1], 32),
			   atel_q_fmt_value(sm.avg, unit, b[2], 32), atel_q_fmt_value(sm.stddev, unit, b[3], 32),
			   atel_q_fmt_value(sm.p50, unit, b[4], 32), atel_q_fmt_value(sm.p95, unit, b[5], 32),
			   atel_q_fmt_value(sm.p99, unit, b[6], 32), extra);
		free(lt);
		free(v);
	}
	if (rc == 0) {
		if (c->json) {
			cli_print_json(root);
			root = NULL;
		} else if (ngroups == 0) {
			printf("no samples of %s matched (source: %s)\n", sel.metric, used);
		} else {
			printf("%s%s%s (%s, source: %s)\n", cli_c(c, C_BOLD), sel.metric, cli_c(c, C_RESET),
			       atel__metric_type_name(mtype), used);
			table_print(t, stdout, c);
		}
	}
	cJSON_Delete(root);
out:
	table_free(t);
	groups_free(groups, ngroups);
	atel_qresult_free(&res);
	atel_q_selector_free(&sel);
	free(bybuf);
	return rc;
}

/* ---- metrics / export ---------------------------------------------------------- */

/* Replays the whole log into an aggregator and takes a snapshot. @return 0 or an exit code. */
static int snapshot_from_log(struct cli *c, const char *verb, struct atel_agg_snapshot **snap, uint64_t *corrupt)
{
	if (!cli_have_segments(c->seg_dir)) {
		cli_err(verb, "no segment files in %s (is this the data directory? --data-dir)", c->seg_dir);
		return ATEL_EXIT_DATA;
	}
	struct atel_agg *agg = NULL;
	if (atel__agg_new(&agg, 100000) < 0)
		return ATEL_EXIT_DATA;
	struct atel_log_reader_opts o = { .segments_dir = c->seg_dir };
	struct atel_log_reader *r = NULL;
	int rc = atel__log_open(&r, &o);
	if (rc < 0) {
		cli_err(verb, "%s: %s", c->seg_dir, strerror(-rc));
		atel__agg_free(agg);
		return ATEL_EXIT_DATA;
	}
	struct atel_event ev;
	while ((rc = atel__log_next(r, &ev, NULL)) == 1)
		atel__agg_apply(agg, &ev);
	struct atel_log_read_stats st;
	atel__log_stats(r, &st);
	*corrupt = st.corrupt_frames;
	atel__log_close(r);
	int ret = 0;
	if (rc < 0) {
		cli_err(verb, "reading %s: %s", c->seg_dir, strerror(-rc));
		ret = ATEL_EXIT_DATA;
	} else if (atel__agg_snapshot(agg, snap) < 0) {
		ret = ATEL_EXIT_DATA;
	}
	atel__agg_free(agg);
	return ret;
}

static void cumulative_buckets(const struct atel_agg_series *s, double *up, double *cum)
{
	double acc = 0;
	for (uint32_t b = 0; b <= s->nbounds; b++) {
		acc += (double)s->buckets[b];
		cum[b] = acc;
		up[b] = b < s->nbounds ? s->bounds[b] : INFINITY;
	}
}

static cJSON *snapshot_json(const struct atel_agg_snapshot *snap, const struct atel_qselector *sel)
{
	cJSON *root = cJSON_CreateObject(), *fams = cJSON_CreateArray();
	cJSON_AddItemToObject(root, "timestamp_ns", cli_json_u64(snap->ts_ns));
	cJSON_AddStringToObject(root, "source", "segments");
	cJSON_AddItemToObject(root, "metrics", fams);
	for (uint32_t f = 0; f < snap->nfamilies; f++) {
		const struct atel_agg_family *fam = &snap->families[f];
		if (sel && sel->metric && strcmp(sel->metric, fam->name) != 0)
			continue;
		cJSON *jf = cJSON_CreateObject(), *js = cJSON_CreateArray();
		cJSON_AddStringToObject(jf, "name", fam->name);
		cJSON_AddStringToObject(jf, "type", atel__metric_type_name(fam->mtype));
		cJSON_AddStringToObject(jf, "help", fam->help ? fam->help : "");
		cJSON_AddItemToObject(jf, "series", js);
		for (uint32_t i = 0; i < fam->nseries; i++) {
			const struct atel_agg_series *s = &fam->series[i];
			if (sel && !atel_q_selector_match(sel, s->keys, s->values, s->nlabels))
				continue;
			cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateObject();
			for (uint32_t k = 0; k < s->nlabels; k++)
				cJSON_AddStringToObject(l, s->keys[k], s->values[k]);
			cJSON_AddItemToObject(o, "labels", l);
			if (fam->mtype == ATEL_MT_HISTOGRAM) {
				cJSON_AddItemToObject(o, "count", cli_json_u64(s->count));
				cJSON_AddItemToObject(o, "sum", cli_json_num(s->sum));
				double up[ATEL_BOUNDS_MAX + 1], cum[ATEL_BOUNDS_MAX + 1];
				uint32_t nb = s->nbounds > ATEL_BOUNDS_MAX ? ATEL_BOUNDS_MAX : s->nbounds;
				cJSON *jb = cJSON_CreateArray();
				if (s->buckets) {
					struct atel_agg_series t = *s;
					t.nbounds = nb;
					cumulative_buckets(&t, up, cum);
					for (uint32_t b = 0; b <= nb; b++) {
						cJSON *e = cJSON_CreateObject();
						if (b < nb)
							cJSON_AddNumberToObject(e, "le", up[b]);
						else
							cJSON_AddStringToObject(e, "le", "+Inf");
						cJSON_AddNumberToObject(e, "count", cum[b]);
						cJSON_AddItemToArray(jb, e);
					}
					cJSON_AddItemToObject(o, "p50", cli_json_num(atel_q_histogram_quantile(0.5, up, cum, nb + 1)));
					cJSON_AddItemToObject(o, "p95", cli_json_num(atel_q_histogram_quantile(0.95, up, cum, nb + 1)));
					cJSON_AddItemToObject(o, "p99", cli_json_num(atel_q_histogram_quantile(0.99, up, cum, nb + 1)));
				}
				cJSON_AddItemToObject(o, "buckets", jb);
			} else {
				cJSON_AddItemToObject(o, "value", cli_json_num(s->value));
			}
			cJSON_AddItemToObject(o, "last_ns", cli_json_u64(s->last_ns));
			cJSON_AddItemToArray(js, o);
		}
		if (cJSON_GetArraySize(js) > 0)
			cJSON_AddItemToArray(fams, jf);
		else
			cJSON_Delete(jf);
	}
	return root;
}

static const char metrics_help[] =
	"usage: atel metrics [SELECTOR] [--json]\n"
	"Current value of every series: counter totals, gauge values, histogram count, sum and\n"
	"p50/p95/p99 (PromQL histogram_quantile over the buckets). Computed by replaying the\n"
	"segment log through the aggregator that serves ateld's /metrics, so the numbers match\n"
	"Prometheus (for what retention still keeps); works with or without ateld running.\n"
	"SELECTOR: name, name{k=\"v\"} or k=v,... Exit: 0 ok, 1 usage, 2 no segments / corrupt data.\n";

int cmd_metrics(struct cli *c, int argc, char **argv)
{
	struct atel_qselector sel = { 0 }, *psel = NULL;
	char err[256];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(metrics_help, stdout);
			return 0;
		}
		if (argv[i][0] == '-') {
			cli_err("metrics", "unknown option %s (see atel metrics --help)", argv[i]);
			atel_q_selector_free(&sel);
			return ATEL_EXIT_USAGE;
		}
		if (atel_q_selector_parse(argv[i], &sel, err, sizeof(err)) < 0) {
			cli_err("metrics", "\"%s\": %s", argv[i], err);
			atel_q_selector_free(&sel);
			return ATEL_EXIT_USAGE;
		}
		psel = &sel;
	}
	struct atel_agg_snapshot *snap = NULL;
	uint64_t corrupt = 0;
	int rc = snapshot_from_log(c, "metrics", &snap, &corrupt);
	if (rc) {
		atel_q_selector_free(&sel);
		return rc;
	}
	cJSON *j = snapshot_json(snap, psel);
	if (psel && sel.metric && cJSON_GetArraySize(cJSON_GetObjectItem(j, "metrics")) == 0) {
		/* the name as /metrics shows it, or a typo */
		struct cli_names known = { 0 };
		cJSON *all = snapshot_json(snap, NULL), *f;
		char alias[256];
		cJSON_ArrayForEach(f, cJSON_GetObjectItem(all, "metrics"))
			cli_names_add(&known, cJSON_GetObjectItem(f, "name")->valuestring);
		cJSON_Delete(all);
		if (!cli_metric_known(sel.metric, &known) && cli_metric_alias(sel.metric, alias, sizeof(alias)) &&
		    cli_metric_known(alias, &known)) {
			char *a = strdup(alias);
			if (a) {
				free(sel.metric);
				sel.metric = a;
				cJSON_Delete(j);
				j = snapshot_json(snap, psel);
			}
		} else if (!cli_metric_known(sel.metric, &known)) {
			const char *near = cli_metric_suggest(sel.metric, &known);
			cli_err("metrics", "unknown metric \"%s\" (nothing recorded it%s)%s%s%s", sel.metric,
				known.n ? "" : "; no metrics recorded yet", near ? "; did you mean " : "",
				near ? near : "", near ? "?" : "");
			cli_names_free(&known);
			cJSON_Delete(j);
			atel__agg_snapshot_free(snap);
			atel_q_selector_free(&sel);
			return ATEL_EXIT_NOT_FOUND;
		}
		cli_names_free(&known);
	}
	if (c->json) {
		cli_print_json(j);
	} else {
		const char *hdr[] = { "METRIC", "TYPE", "LABELS", "VALUE" };
		const bool right[] = { false, false, false, true };
		struct table *t = table_new(4, hdr, right);
		cJSON *f;
		cJSON_ArrayForEach(f, cJSON_GetObjectItem(j, "metrics"))
		{
			const char *name = cJSON_GetObjectItem(f, "name")->valuestring;
			const char *type = cJSON_GetObjectItem(f, "type")->valuestring;
			const char *unit = metric_unit(name);
			cJSON *s;
			cJSON_ArrayForEach(s, cJSON_GetObjectItem(f, "series"))
			{
				char *lt = cJSON_PrintUnformatted(cJSON_GetObjectItem(s, "labels"));
				char vb[160];
				if (strcmp(type, "histogram") == 0) {
					char b0[32], b1[32], b2[32], b3[32];
					cJSON *p50 = cJSON_GetObjectItem(s, "p50"), *p95 = cJSON_GetObjectItem(s, "p95"),
					      *p99 = cJSON_GetObjectItem(s, "p99");
					snprintf(vb, sizeof(vb), "n=%s p50=%s p95=%s p99=%s",
						 atel_q_fmt_count(cli_json_get(s, "count"), b0, 32),
						 atel_q_fmt_value(cJSON_IsNumber(p50) ? p50->valuedouble : NAN, unit, b1, 32),
						 atel_q_fmt_value(cJSON_IsNumber(p95) ? p95->valuedouble : NAN, unit, b2, 32),
						 atel_q_fmt_value(cJSON_IsNumber(p99) ? p99->valuedouble : NAN, unit, b3, 32));
				} else {
					cJSON *v = cJSON_GetObjectItem(s, "value");
					atel_q_fmt_value(cJSON_IsNumber(v) ? v->valuedouble : NAN, unit, vb, sizeof(vb));
				}
				table_rowf(t, "%s\t%s\t%s\t%s", name, type, lt ? lt : "{}", vb);
				free(lt);
			}
		}
		if (table_rows(t) == 0)
			puts("no metrics recorded yet");
		else
			table_print(t, stdout, c);
		table_free(t);
		cJSON_Delete(j);
	}
	if (corrupt)
		cli_err("metrics", "warning: %llu corrupt frame(s) skipped; see `atel replay %s`",
			(unsigned long long)corrupt, c->seg_dir);
	atel__agg_snapshot_free(snap);
	atel_q_selector_free(&sel);
	return corrupt ? ATEL_EXIT_DATA : 0;
}

static const char export_help[] =
	"usage: atel export [--format json|prometheus] [-o FILE|-]\n"
	"Writes a snapshot of the current metric values, computed from the segment log (as\n"
	"`atel metrics`). json (default): the `atel metrics --json` document, written to\n"
	"<data_dir>/exports/atel-snapshot-<UTC time>.json unless -o is given; prometheus: the\n"
	"text exposition format 0.0.4 that /metrics serves (without the atel_* self-metrics),\n"
	"to stdout unless -o is given. Prints the path written. Works without ateld.\n"
	"Exit: 0 ok, 1 usage, 2 no segments / cannot write.\n";

int cmd_export(struct cli *c, int argc, char **argv)
{
	const char *format = "json", *outp = NULL;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(export_help, stdout);
			return 0;
		}
		if ((v = cli_opt(argc, argv, &i, "--format")) != NULL) {
			format = v;
		} else if ((v = cli_opt(argc, argv, &i, "-o")) != NULL || (v = cli_opt(argc, argv, &i, "--output")) != NULL) {
			outp = v;
		} else {
			cli_err("export", "unexpected argument %s (see atel export --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
	}
	bool prom = strcmp(format, "prometheus") == 0;
	if (!*format)
		return ATEL_EXIT_USAGE; /* cli_opt said "--format needs a value" */
	if (!prom && strcmp(format, "json") != 0) {
		cli_err("export", "--format must be json or prometheus, got \"%s\"", format);
		return ATEL_EXIT_USAGE;
	}
	if (outp && !*outp)
		return ATEL_EXIT_USAGE;
	struct atel_agg_snapshot *snap = NULL;
	uint64_t corrupt = 0;
	int rc = snapshot_from_log(c, "export", &snap, &corrupt);
	if (rc)
		return rc;
	char *text = NULL;
	size_t len = 0;
	if (prom) {
		struct atel_buf b = { 0 };
		if (atel__prom_encode(&b, snap, NULL, NULL, NULL) < 0) {
			atel__buf_free(&b);
			atel__agg_snapshot_free(snap);
			return ATEL_EXIT_DATA;
		}
		text = b.data ? b.data : strdup("");
		len = b.len;
	} else {
		cJSON *j = snapshot_json(snap, NULL);
		text = cJSON_Print(j);
		cJSON_Delete(j);
	}
	atel__agg_snapshot_free(snap);
	if (!text)
		return ATEL_EXIT_DATA;
	if (!prom)
		len = strlen(text);
	char path[4300];
	if (!outp && !prom) {
		char dir[4100], tb[40];
		snprintf(dir, sizeof(dir), "%s/exports", c->data_dir);
		mkdir(dir, 0755);
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(tb, sizeof(tb), "%Y%m%dT%H%M%SZ", &tm);
		snprintf(path, sizeof(path), "%s/atel-snapshot-%s.json", dir, tb);
		outp = path;
	}
	int ret = 0;
	if (!outp || strcmp(outp, "-") == 0) {
		fwrite(text, 1, len, stdout);
		if (!prom)
			fputc('\n', stdout);
	} else {
		char tmp[4400];
		snprintf(tmp, sizeof(tmp), "%s.tmp", outp);
		FILE *f = fopen(tmp, "w");
		if (!f || fwrite(text, 1, len, f) != len || (!prom && fputc('\n', f) == EOF) || fclose(f) != 0 ||
		    rename(tmp, outp) != 0) {
			cli_err("export", "%s: %s", outp, strerror(errno));
			ret = ATEL_EXIT_DATA;
		} else if (c->json) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "path", outp);
			cJSON_AddStringToObject(j, "format", format);
			cJSON_AddItemToObject(j, "bytes", cli_json_u64(len + !prom));
			cli_print_json(j);
		} else {
			printf("wrote %s (%zu bytes, %s)\n", outp, len + !prom, format); /* JSON ends with a newline */
		}
	}
	free(text);
	if (corrupt)
		cli_err("export", "warning: %llu corrupt frame(s) skipped", (unsigned long long)corrupt);
	return ret ? ret : corrupt ? ATEL_EXIT_DATA : 0;
}
