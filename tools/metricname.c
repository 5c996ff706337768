/* SPDX-License-Identifier: MIT */
/*
 * metricname.c - metric names as users type them: the names /metrics and
 * Grafana show (a counter's `_total`, a histogram's `_bucket`/`_sum`/`_count`)
 * resolve to the recorded name, and an unknown name gets a "did you mean".
 */
#include "metricname.h"

#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "logread.h"

int cli_names_add(struct cli_names *n, const char *name)
{
	for (size_t i = 0; i < n->n; i++)
		if (strcmp(n->v[i], name) == 0)
			return 0;
	if (n->n == n->cap) {
		size_t nc = n->cap ? n->cap * 2 : 32;
		char **nv = realloc(n->v, nc * sizeof(*nv));
		if (!nv)
			return -1;
		n->v = nv;
		n->cap = nc;
	}
	if (!(n->v[n->n] = strdup(name)))
		return -1;
	n->n++;
	return 0;
}

void cli_names_free(struct cli_names *n)
{
	for (size_t i = 0; i < n->n; i++)
		free(n->v[i]);
	free(n->v);
	memset(n, 0, sizeof(*n));
}

void cli_names_from_db(sqlite3 *db, struct cli_names *n)
{
	sqlite3_stmt *q;
	if (sqlite3_prepare_v2(db, "SELECT DISTINCT name FROM telemetry_series", -1, &q, NULL) != SQLITE_OK)
		return;
	while (sqlite3_step(q) == SQLITE_ROW)
		if (sqlite3_column_text(q, 0))
			cli_names_add(n, (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
}

void cli_names_from_log(const char *seg_dir, struct cli_names *n)
{
	struct atel_log_reader_opts o = { .segments_dir = seg_dir, .follow = true };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	if (atel__log_open(&r, &o) < 0)
		return;
	while (atel__log_next(r, &ev, NULL) == 1)
		if (ev.kind == ATEL_EV_SAMPLE && ev.sample.series)
			cli_names_add(n, ev.sample.series->name);
	atel__log_close(r);
}

static size_t lev(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 200 || lb > 200)
		return (size_t)-1;
	size_t row[201];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *const suffixes[] = { "_total", "_bucket", "_count", "_sum" };

bool cli_metric_alias(const char *name, char *out, size_t len)
{
	size_t l = strlen(name);
	for (size_t k = 0; k < sizeof(suffixes) / sizeof(suffixes[0]); k++) {
		size_t sl = strlen(suffixes[k]);
		if (l > sl && l - sl < len && strcmp(name + l - sl, suffixes[k]) == 0) {
			memcpy(out, name, l - sl);
			out[l - sl] = 0;
			return true;
		}
	}
	return false;
}

const char *cli_metric_suggest(const char *name, const struct cli_names *known)
{
	const char *best = NULL;
	size_t bd = (size_t)-1;
	size_t limit = strlen(name) / 3 + 2;
	for (size_t i = 0; i < known->n + ATEL_CATALOG_COUNT; i++) {
		const char *k = i < known->n ? known->v[i] : atel__catalog[i - known->n].name;
		size_t d = lev(name, k);
		/* also against the exported name of a counter (foo -> foo_total) */
		char ex[256];
		size_t kl = strlen(k);
		if (kl + 7 < sizeof(ex) && (kl < 6 || strcmp(k + kl - 6, "_total") != 0)) {
			memcpy(ex, k, kl);
			memcpy(ex + kl, "_total", 7);
			size_t d2 = lev(name, ex);
			if (d2 < d)
				d = d2;
		}
		if (d < bd) {
			bd = d;
			best = k;
		}
	}
	return bd <= limit ? best : NULL;
}

bool cli_metric_known(const char *name, const struct cli_names *known)
{
	if (atel__catalog_find(name))
		return true;
	for (size_t i = 0; i < known->n; i++)
		if (strcmp(known->v[i], name) == 0)
			return true;
	return false;
}
