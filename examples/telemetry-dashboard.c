/* SPDX-License-Identifier: MIT */
/*
 * telemetry-dashboard: the "Querying Metrics" section of docs/reference.md in C.
 *
 *   telemetry-dashboard [DATA_DIR]
 *
 * Part 1 runs the query functions on a small in-memory series (percentile,
 * summarize, movingAverage, detectAnomalies, calculateRate, aggregate).
 * Part 2, when DATA_DIR (default $ATEL_DATA_DIR or ./var) holds telemetry
 * (telemetry.db or segments/), computes the panels of the Grafana overview
 * dashboard from it: agent execution rate by type, p95 agent duration, tool
 * usage and success rate, context utilization, error rate, queue size.
 * Exit: 0 (also when there is no data yet), 1 on a read error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qsource.h"
#include "query.h"

#define NS 1000000000ull

static void part1(void)
{
	/* a gauge sampled every 10 s, with one spike, and a counter with a reset */
	struct atel_qpoint g[30], c[30];
	for (int i = 0; i < 30; i++) {
		g[i] = (struct atel_qpoint){ (uint64_t)i * 10 * NS, 50 + 5 * sin(i / 3.0) + (i == 20 ? 40 : 0) };
		c[i] = (struct atel_qpoint){ (uint64_t)i * 10 * NS, i < 18 ? 3.0 * i : 3.0 * (i - 18) };
	}
	double v[30];
	for (int i = 0; i < 30; i++)
		v[i] = g[i].v;
	struct atel_qsummary s;
	atel_q_summarize(v, 30, &s);
	printf("summarize: count %llu  avg %.2f  stddev %.2f  min %.2f  max %.2f  p50 %.2f  p95 %.2f  p99 %.2f\n",
	       (unsigned long long)s.count, s.avg, s.stddev, s.min, s.max, s.p50, s.p95, s.p99);
	double p90;
	atel_q_percentile(v, 30, 0.90, &p90);
	printf("percentile(0.90): %.2f\n", p90);

	struct atel_qpoint ma[30];
	atel_q_moving_average(g, 30, 10, ma);
	printf("movingAverage(10) at t=200s: %.2f\n", ma[20].v);

	struct atel_qanomaly an[30];
	atel_q_detect_anomalies(g, 30, 10, 3.0, an);
	for (int i = 0; i < 30; i++)
		if (an[i].anomaly)
			printf("detectAnomalies(3): t=%llus value %.1f z=%.1f\n", (unsigned long long)(an[i].ts_ns / NS),
			       an[i].v, an[i].score);

	struct atel_qpoint r[30];
	size_t nr = 0;
	atel_q_calculate_rate(c, 30, 60 * NS, r, &nr);
	/* r[k] is evaluated at sample k+1 (the first sample has no predecessor) */
	printf("calculateRate(1m) of a counter that resets at t=180s: %.3f/s at t=120s, %.3f/s at t=200s "
	       "(the window spans the reset), %zu points\n",
	       r[11].v, r[19].v, nr);

	struct atel_qpoint ag[30];
	size_t na = 0;
	atel_q_aggregate(g, 30, 60 * NS, ATEL_QAGG_AVG, false, ag, &na);
	printf("aggregate(1m, avg):");
	for (size_t i = 0; i < na; i++)
		printf(" %.1f", ag[i].v);
	printf("\n");

	/* PromQL histogram_quantile over cumulative buckets */
	const double le[] = { 0.1, 0.5, 1, INFINITY }, cum[] = { 10, 30, 40, 40 };
	printf("histogram_quantile(0.5): %.3f s\n", atel_q_histogram_quantile(0.5, le, cum, 4));
}

/* the series of one metric over the last hour, from the index or the log */
static int select_metric(const char *dir, const char *metric, struct atel_qresult *res)
{
	char db_path[4200], seg[4200], err[512];
	snprintf(db_path, sizeof(db_path), "%s/telemetry.db", dir);
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	struct atel_qselector sel = { 0 };
	if (atel_q_selector_parse(metric, &sel, err, sizeof(err)) < 0)
		return -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
	int rc;
	sqlite3 *db = NULL;
	if (access(db_path, R_OK) == 0 && sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		/* the index up to its cursor, then the log past it: complete while the indexer lags */
		struct atel_log_pos cur;
		uint64_t tail = 0;
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
		rc = atel_qs_select_db(db, &sel, now - 3600 * NS, now, res, err, sizeof(err));
		if (rc == 0 && atel_qs_db_cursor(db, &cur) == 0 && access(seg, R_OK) == 0)
			rc = atel_qs_add_log_tail(db, seg, &cur, &sel, now - 3600 * NS, now, res, &tail, err, sizeof(err));
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	} else {
		rc = atel_qs_select_log(seg, NULL, &sel, now - 3600 * NS, now, res, err, sizeof(err));
	}
	sqlite3_close(db);
	atel_q_selector_free(&sel);
	if (rc < 0)
		fprintf(stderr, "telemetry-dashboard: %s: %s\n", metric, err);
	return rc;
}

static const char *label(const struct atel_qseries *s, const char *k)
{
	for (size_t i = 0; i < s->nlabels; i++)
		if (strcmp(s->keys[i], k) == 0)
			return s->values[i];
	return "";
}

static double sum_points(const struct atel_qseries *s)
{
	double t = 0;
	for (size_t i = 0; i < s->n; i++)
		t += s->pts[i].v;
	return t;
}

static int part2(const char *dir)
{
	char p1[4200], p2[4200];
	snprintf(p1, sizeof(p1), "%s/telemetry.db", dir);
	snprintf(p2, sizeof(p2), "%s/segments", dir);
	if (access(p1, R_OK) != 0 && access(p2, R_OK) != 0) {
		printf("\nno telemetry in %s yet (start ateld and run `atel load`, or pass a data dir)\n", dir);
		return 0;
	}
	printf("\n== dashboard over the last hour of %s ==\n", dir);
	struct atel_qresult r = { 0 };

	/* Agent Execution Rate: executions per second by agent type */
	if (select_metric(dir, "agent_execution_total", &r) < 0)
		return 1;
	printf("agent execution rate:\n");
	for (size_t i = 0; i < r.n; i++)
		printf("  %-10s %-8s %8.0f executions, %.4f/s\n", label(&r.s[i], "agent_type"), label(&r.s[i], "status"),
		       sum_points(&r.s[i]), sum_points(&r.s[i]) / 3600.0);
	atel_qresult_free(&r);

	/* Agent Execution Duration (p95), from each series' buckets as Grafana would */
	if (select_metric(dir, "agent_execution_duration_seconds", &r) < 0)
		return 1;
	printf("agent execution duration p95:\n");
	for (size_t i = 0; i < r.n; i++) {
		const struct atel_qseries *s = &r.s[i];
		double *v = malloc((s->n + 1) * sizeof(*v));
		if (!v)
			break;
		for (size_t k = 0; k < s->n; k++)
			v[k] = s->pts[k].v;
		double exact;
		atel_q_percentile(v, s->n, 0.95, &exact);
		double est = NAN;
		if (s->nbounds) {
			uint64_t cnt[65] = { 0 };
			double up[65], cum[65], acc = 0;
			size_t nb = s->nbounds > 64 ? 64 : s->nbounds;
			atel_q_bucketize(v, s->n, s->bounds, nb, cnt);
			for (size_t b = 0; b <= nb; b++) {
				acc += (double)cnt[b];
				cum[b] = acc;
				up[b] = b < nb ? s->bounds[b] : INFINITY;
			}
			est = atel_q_histogram_quantile(0.95, up, cum, nb + 1);
		}
		printf("  %-10s exact %.3f s, from buckets %.3f s (%zu executions)\n", label(s, "agent_type"), exact, est,
		       s->n);
		free(v);
	}
	atel_qresult_free(&r);

	/* Top Tools by Usage and Tool Call Success Rate */
	if (select_metric(dir, "tool_calls_total", &r) < 0)
		return 1;
	printf("tool calls (success rate):\n");
	for (size_t i = 0; i < r.n; i++) {
		if (strcmp(label(&r.s[i], "status"), "success") != 0)
			continue;
		double ok = sum_points(&r.s[i]), fail = 0;
		for (size_t k = 0; k < r.n; k++)
			if (k != i && strcmp(label(&r.s[k], "tool"), label(&r.s[i], "tool")) == 0)
				fail += sum_points(&r.s[k]);
		printf("  %-10s %6.0f calls, %5.1f%% ok\n", label(&r.s[i], "tool"), ok + fail,
		       ok + fail > 0 ? 100 * ok / (ok + fail) : 0);
	}
	atel_qresult_free(&r);

	/* Context Window Utilization: average % over all agents */
	if (select_metric(dir, "context_window_utilization", &r) < 0)
		return 1;
	size_t total = 0;
	for (size_t i = 0; i < r.n; i++)
		total += r.s[i].n;
	double *all = malloc((total + 1) * sizeof(*all));
	size_t k = 0;
	for (size_t i = 0; all && i < r.n; i++)
		for (size_t j = 0; j < r.s[i].n; j++)
			all[k++] = r.s[i].pts[j].v;
	struct atel_qsummary s;
	atel_q_summarize(all, k, &s);
	printf("context window utilization: avg %.1f%%, p95 %.1f%% over %llu samples\n", s.avg, s.p95,
	       (unsigned long long)s.count);
	free(all);
	atel_qresult_free(&r);

	/* Error Breakdown and Task Queue Size */
	if (select_metric(dir, "error_total", &r) < 0)
		return 1;
	printf("errors:\n");
	for (size_t i = 0; i < r.n; i++)
		printf("  %-10s %-14s %.0f\n", label(&r.s[i], "component"), label(&r.s[i], "error_type"),
		       sum_points(&r.s[i]));
	atel_qresult_free(&r);
	if (select_metric(dir, "task_queue_size", &r) < 0)
		return 1;
	for (size_t i = 0; i < r.n; i++)
		if (r.s[i].n)
			printf("task queue %-7s now %.0f\n", label(&r.s[i], "priority"), r.s[i].pts[r.s[i].n - 1].v);
	atel_qresult_free(&r);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : getenv("ATEL_DATA_DIR");
	if (!dir || !*dir)
		dir = "./var";
	part1();
	return part2(dir);
}
