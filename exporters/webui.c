/* SPDX-License-Identifier: MIT */
/*
 * webui.c - the web view's page and JSON API (webui.h, docs/webui.md).
 *
 * Every answer is built on the HTTP server thread into the server's reply
 * buffer. SQLite is opened read-only per request (WAL: the indexer keeps
 * writing meanwhile) with a short busy timeout, so a slow query delays only
 * this view, never /metrics' data or the drain. Every parameter is parsed
 * and bounded by atel__webui_parse_params (fuzzed: tests/exporters/
 * fuzz_webui_params.c) and reaches SQL only as a bound value.
 *
 * With a compact index (index.mode, the default), or none, the raw rows the
 * metric, series and trace pages ask for are not in telemetry.db: they are
 * read from the segment log into a full index in memory (logshadow.h, the
 * indexer's own writer), brought up to date before each query, and the
 * same SQL answers from it. It belongs to the server thread like the rest.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "buf.h"
#include "index.h"     /* atel__ix_mode_compact */
#include "logshadow.h"
#include "ring.h" /* atel__loss_cause_name */
#include "util.h"
#include "webui.h"

/* generated from exporters/webui/ by scripts/embed.py */
extern const char atel__webui_html[], atel__webui_js[], atel__webui_css[];

struct atel_webui {
	struct atel_daemon *d;
	char db_path[4096];
	char status_path[4200];
	char segments_dir[4096];
	uint64_t deadline_ns;           /* of the running query (server thread only) */
	struct atel_logshadow *shadow;  /* the log as a full index, while telemetry.db is compact */
};

/* Memory the in-memory index of the log may take (compact index.mode). */
#define SHADOW_MAX_BYTES (512ull << 20)

#define SEC_HEADERS                                                                                          \
	"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"     \
	"X-Frame-Options: DENY\r\n"                                                                          \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "                \
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "                    \
	"frame-ancestors 'none'\r\n"
#define JSON_CT "application/json; charset=utf-8"
#define MAX_BUCKETS 2000u
#define MAX_SERIES_ROWS 2000000u

/* ---- parameters ------------------------------------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL). @return length or -1. */
static long pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= n || (h = hexval((unsigned char)s[i + 1])) < 0 ||
			    (l = hexval((unsigned char)s[i + 2])) < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (c == 0 || o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return (long)o;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* "90" (seconds), "500ms", "30s", "5m", "2h", "1d"; at most 400 days. */
static bool parse_dur(const char *s, uint64_t *ns)
{
	char num[24];
	size_t i = 0;
	uint64_t v, mul = 1000000000ull;

	while (s[i] >= '0' && s[i] <= '9' && i < sizeof(num) - 1) {
		num[i] = s[i];
		i++;
	}
	num[i] = 0;
	if (!parse_u64(num, 400ull * 86400 * 1000, &v))
		return false;
	if (!strcmp(s + i, "ms"))
		mul = 1000000ull;
	else if (!strcmp(s + i, "") || !strcmp(s + i, "s"))
		mul = 1000000000ull;
	else if (!strcmp(s + i, "m"))
		mul = 60000000000ull;
	else if (!strcmp(s + i, "h"))
		mul = 3600000000000ull;
	else if (!strcmp(s + i, "d"))
		mul = 86400000000000ull;
	else
		return false;
	if (v > 400ull * 86400000000000ull / mul)
		return false;
	*ns = v * mul;
	return true;
}

static bool is_name_char(int c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
	       (!first && ((c >= '0' && c <= '9') || c == '.'));
}

static bool valid_name(const char *s, bool allow_empty)
{
	if (!*s)
		return allow_empty;
	for (size_t i = 0; s[i]; i++)
		if (!is_name_char((unsigned char)s[i], i == 0))
			return false;
	return true;
}

/* "k=v,k2=v2" (already percent-decoded). */
static int parse_labels(const char *s, struct atel_webui_params *p, char *err, size_t errlen)
{
	p->nlabels = 0;
	while (*s) {
		const char *eq = strchr(s, '='), *end = strchr(s, ',');
		size_t kl, vl;

		if (!end)
			end = s + strlen(s);
		if (!eq || eq > end) {
			snprintf(err, errlen, "labels: expected key=value[,key=value...]");
			return -EINVAL;
		}
		if (p->nlabels == ATEL_WP_MAX_LABELS) {
			snprintf(err, errlen, "labels: at most %d pairs", ATEL_WP_MAX_LABELS);
			return -EINVAL;
		}
		kl = (size_t)(eq - s);
		vl = (size_t)(end - eq - 1);
		if (kl == 0 || kl >= sizeof(p->lkey[0]) || vl >= sizeof(p->lval[0])) {
			snprintf(err, errlen, "labels: empty or over-long key or value");
			return -EINVAL;
		}
		memcpy(p->lkey[p->nlabels], s, kl);
		p->lkey[p->nlabels][kl] = 0;
		memcpy(p->lval[p->nlabels], eq + 1, vl);
		p->lval[p->nlabels][vl] = 0;
		for (size_t i = 0; i < kl; i++)
			if (!is_name_char((unsigned char)s[i], i == 0) || s[i] == '.' || s[i] == ':') {
				snprintf(err, errlen, "labels: key \"%s\" is not a label name", p->lkey[p->nlabels]);
				return -EINVAL;
			}
		p->nlabels++;
		s = *end ? end + 1 : end;
	}
	return 0;
}

static const struct {
	const char *key;
	unsigned bit;
} wp_keys[] = {
	{ "name", ATEL_WP_NAME },     { "labels", ATEL_WP_LABELS }, { "from", ATEL_WP_FROM },
	{ "to", ATEL_WP_TO },         { "since", ATEL_WP_SINCE },   { "step", ATEL_WP_STEP },
	{ "agg", ATEL_WP_AGG },       { "limit", ATEL_WP_LIMIT },   { "service", ATEL_WP_SERVICE },
	{ "status", ATEL_WP_STATUS }, { "min_ms", ATEL_WP_MIN_MS }, { "id", ATEL_WP_ID },
	{ "prefix", ATEL_WP_PREFIX },
};

static int set_param(struct atel_webui_params *p, unsigned bit, const char *v, char *err, size_t errlen)
{
	static const char *const aggs[] = { "sum", "avg", "min", "max", "count", "last", "rate", "p50", "p95", "p99" };
	uint64_t u;

	switch (bit) {
	case ATEL_WP_NAME:
	case ATEL_WP_PREFIX:
	case ATEL_WP_SERVICE: {
		char *dst = bit == ATEL_WP_NAME ? p->name : bit == ATEL_WP_PREFIX ? p->prefix : p->service;
		if (strlen(v) >= sizeof(p->name)) {
			snprintf(err, errlen, "value too long (at most %zu bytes)", sizeof(p->name) - 1);
			return -EINVAL;
		}
		strcpy(dst, v);
		return 0;
	}
	case ATEL_WP_LABELS:
		return parse_labels(v, p, err, errlen);
	case ATEL_WP_FROM:
	case ATEL_WP_TO:
		if (!parse_u64(v, ATEL_WP_MAX_MS, &u)) { /* in ns it must fit an SQLite integer */
			snprintf(err, errlen, "expected unix milliseconds");
			return -EINVAL;
		}
		*(bit == ATEL_WP_FROM ? &p->from_ms : &p->to_ms) = u;
		return 0;
	case ATEL_WP_SINCE:
	case ATEL_WP_STEP:
		if (!parse_dur(v, bit == ATEL_WP_SINCE ? &p->since_ns : &p->step_ns) ||
		    (bit == ATEL_WP_STEP && p->step_ns < 1000000ull)) {
			snprintf(err, errlen, "expected a duration such as 90, 500ms, 30s, 5m, 2h or 1d (at most 400d%s)",
				 bit == ATEL_WP_STEP ? ", at least 1ms" : "");
			return -EINVAL;
		}
		return 0;
	case ATEL_WP_AGG:
		for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++)
			if (!strcmp(v, aggs[i])) {
				strcpy(p->agg, v);
				return 0;
			}
		snprintf(err, errlen, "expected sum, avg, min, max, count, last, rate, p50, p95 or p99");
		return -EINVAL;
	case ATEL_WP_LIMIT:
		if (!parse_u64(v, 1000, &u) || u == 0) {
			snprintf(err, errlen, "expected a count from 1 to 1000");
			return -EINVAL;
		}
		p->limit = (uint32_t)u;
		return 0;
	case ATEL_WP_STATUS:
		if (strcmp(v, "ok") && strcmp(v, "error") && strcmp(v, "unset")) {
			snprintf(err, errlen, "expected ok, error or unset");
			return -EINVAL;
		}
		strcpy(p->status, v);
		return 0;
	case ATEL_WP_MIN_MS:
		if (!parse_u64(v, 400ull * 86400 * 1000, &p->min_ms)) {
			snprintf(err, errlen, "expected milliseconds");
			return -EINVAL;
		}
		return 0;
	case ATEL_WP_ID:
		if (strlen(v) != 32) {
			snprintf(err, errlen, "expected 32 hex digits");
			return -EINVAL;
		}
		for (int i = 0; i < 32; i++) {
			int h = hexval((unsigned char)v[i]);
			if (h < 0) {
				snprintf(err, errlen, "expected 32 hex digits");
				return -EINVAL;
			}
			p->id[i] = "0123456789abcdef"[h];
		}
		p->id[32] = 0;
		return 0;
	default:
		return -EINVAL;
	}
}

int atel__webui_parse_params(const char *q, size_t len, unsigned allowed, struct atel_webui_params *p, char *err,
			     size_t errlen)
{
	size_t i = 0;

	memset(p, 0, sizeof(*p));
	while (i < len) {
		size_t s = i, eq = (size_t)-1;
		char key[32], val[1024], sub[200];
		unsigned bit = 0;
		long kl, vl;
		int rc;

		while (i < len && q[i] != '&') {
			if (q[i] == '=' && eq == (size_t)-1)
				eq = i;
			i++;
		}
		if (i == s) { /* empty pair ("a=1&&b=2", trailing '&') */
			i++;
			continue;
		}
		if (eq == (size_t)-1) {
			snprintf(err, errlen, "parameter without a value (expected key=value)");
			return -EINVAL;
		}
		kl = pct_decode(q + s, eq - s, key, sizeof(key));
		vl = pct_decode(q + eq + 1, i - eq - 1, val, sizeof(val));
		i++;
		if (kl <= 0) {
			snprintf(err, errlen, "bad parameter name (empty, over-long or a bad %%-escape)");
			return -EINVAL;
		}
		for (size_t k = 0; k < sizeof(wp_keys) / sizeof(wp_keys[0]); k++)
			if (!strcmp(key, wp_keys[k].key))
				bit = wp_keys[k].bit;
		if (!bit || !(allowed & bit)) {
			/* the key is shown only if it is plain ASCII */
			bool plain = valid_name(key, false);
			snprintf(err, errlen, "unknown parameter%s%s%s for this endpoint", plain ? " \"" : "",
				 plain ? key : "", plain ? "\"" : "");
			return -EINVAL;
		}
		if (p->seen & bit) {
			snprintf(err, errlen, "parameter \"%s\" given twice", key);
			return -EINVAL;
		}
		if (vl < 0) {
			snprintf(err, errlen, "%s: bad %%-escape, NUL byte or value over 1023 bytes", key);
			return -EINVAL;
		}
		if ((rc = set_param(p, bit, val, sub, sizeof(sub))) < 0) {
			snprintf(err, errlen, "%s: %s", key, sub);
			return rc;
		}
		p->seen |= bit;
	}
	if ((p->seen & ATEL_WP_FROM) && (p->seen & ATEL_WP_TO) && p->from_ms >= p->to_ms) {
		snprintf(err, errlen, "from must be before to");
		return -EINVAL;
	}
	if ((p->seen & ATEL_WP_SINCE) && (p->seen & (ATEL_WP_FROM | ATEL_WP_TO))) {
		snprintf(err, errlen, "give since or from/to, not both");
		return -EINVAL;
	}
	return 0;
}

/* ---- JSON helpers ------------------------------------------------------------------------------- */

static void jnum(struct atel_buf *b, double v)
{
	if (isfinite(v))
		atel__buf_double(b, v);
	else
		atel__buf_puts(b, "null");
}

static void jkey(struct atel_buf *b, const char *k, bool *first)
{
	if (!*first)
		atel__buf_putc(b, ',');
	*first = false;
	atel__json_str(b, k);
	atel__buf_putc(b, ':');
}

static void ju64(struct atel_buf *b, const char *k, uint64_t v, bool *first)
{
	jkey(b, k, first);
	atel__buf_u64(b, v);
}

static void jtext(struct atel_buf *b, const char *k, const char *v, bool *first)
{
	jkey(b, k, first);
	if (v)
		atel__json_str(b, v);
	else
		atel__buf_puts(b, "null");
}

/* A JSON document from SQLite (the indexer writes it); re-encoded so a damaged
 * cell cannot break the answer. */
static void jraw_obj(struct atel_buf *b, const char *k, const char *json, bool *first)
{
	cJSON *j = json ? cJSON_Parse(json) : NULL;
	char *s = j && cJSON_IsObject(j) ? cJSON_PrintUnformatted(j) : NULL;

	jkey(b, k, first);
	atel__buf_puts(b, s ? s : "{}");
	free(s);
	cJSON_Delete(j);
}

static int reply_error(struct atel_http_reply *rep, int status, const char *msg)
{
	rep->status = status;
	rep->ctype = JSON_CT;
	rep->headers = status == 401 ? SEC_HEADERS "WWW-Authenticate: Bearer realm=\"atel\"\r\n" : SEC_HEADERS;
	atel__buf_reset(&rep->body);
	atel__buf_puts(&rep->body, "{\"error\":");
	atel__json_str(&rep->body, msg);
	atel__buf_puts(&rep->body, ",\"status\":");
	atel__buf_u64(&rep->body, (uint64_t)status);
	atel__buf_puts(&rep->body, "}\n");
	return 0;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? (const char *)t : NULL;
}

/*
 * The HTTP server has one thread: a query must not hold /metrics back for
 * long. Every query runs under a budget and is interrupted beyond it (the
 * answer is then a 503 asking for a narrower range).
 */
#define QUERY_BUDGET_MS 2000u

static int over_budget(void *arg)
{
	return atel__mono_ns() > *(const uint64_t *)arg;
}

/* Ends a row loop: rc is the last sqlite3_step result. @return true if the rows were complete;
 * otherwise the error reply is made (503 when the budget ran out). */
static bool rows_done(sqlite3 *db, int rc, struct atel_http_reply *rep)
{
	if (rc == SQLITE_DONE)
		return true;
	if (rc == SQLITE_INTERRUPT)
		reply_error(rep, 503, "the query ran over its 2 s budget; narrow the range or add filters");
	else
		reply_error(rep, 500, sqlite3_errmsg(db));
	return false;
}

/* The log as a full index, synced to the log's current end within the
 * query budget. @return its connection, or NULL with an error reply made. */
static sqlite3 *shadow_db(struct atel_webui *w, struct atel_http_reply *rep)
{
	char err[512];
	int rc;

	if (!w->shadow && atel__logshadow_open(&w->shadow, w->segments_dir, SHADOW_MAX_BYTES, err, sizeof(err)) < 0) {
		reply_error(rep, 503, err);
		return NULL;
	}
	w->deadline_ns = atel__mono_ns() + QUERY_BUDGET_MS * 1000000ull;
	rc = atel__logshadow_sync(w->shadow, 0, over_budget, &w->deadline_ns, err, sizeof(err));
	if (rc == -EINTR) { /* what it read is kept: the next request goes on */
		reply_error(rep, 503, "the web view is still reading the segment log (index.mode compact); retry");
		return NULL;
	}
	if (rc < 0 && rc != -ENOENT) {
		reply_error(rep, 503, err);
		return NULL;
	}
	sqlite3 *db = atel__logshadow_db(w->shadow);
	w->deadline_ns = atel__mono_ns() + QUERY_BUDGET_MS * 1000000ull;
	sqlite3_progress_handler(db, 1000, over_budget, &w->deadline_ns);
	return db;
}

/* @return the database, or NULL with an error reply made: telemetry.db when
 * it is a full index, else the log as one (shadow_db). */
static sqlite3 *db_open(struct atel_webui *w, struct atel_http_reply *rep)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(w->db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return shadow_db(w, rep); /* index.enabled false, or not created yet */
	}
	sqlite3_busy_timeout(db, 500);
	if (atel__ix_mode_compact(db) != 0) { /* compact (or unreadable): the log answers */
		sqlite3_close(db);
		return shadow_db(w, rep);
	}
	w->deadline_ns = atel__mono_ns() + QUERY_BUDGET_MS * 1000000ull;
	sqlite3_progress_handler(db, 1000, over_budget, &w->deadline_ns);
	return db;
}

/* Ends a request's use of db_open's connection (the shadow stays open). */
static void db_close(struct atel_webui *w, sqlite3 *db)
{
	if (w->shadow && db == atel__logshadow_db(w->shadow)) {
		sqlite3_progress_handler(db, 0, NULL, NULL);
		return;
	}
	sqlite3_close(db);
}

static void range_of(const struct atel_webui_params *p, uint64_t def_span_ns, uint64_t *from, uint64_t *to)
{
	uint64_t now = atel__now_ns();

	*to = (p->seen & ATEL_WP_TO) ? p->to_ms * 1000000ull : now;
	if (p->seen & ATEL_WP_FROM)
		*from = p->from_ms * 1000000ull;
	else if (p->seen & ATEL_WP_SINCE)
		*from = p->since_ns < *to ? *to - p->since_ns : 0;
	else
		*from = def_span_ns < *to ? *to - def_span_ns : 0;
}

/* ---- endpoints -------------------------------------------------------------------------------------- */

static uint64_t ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static int ep_overview(struct atel_webui *w, struct atel_http_reply *rep)
{
	struct atel_daemon *d = w->d;
	struct atel_daemon_stats *s = &d->stats;
	struct atel_buf *b = &rep->body;
	static const char *const exp_names[ATEL_EXP_COUNT] = { "prometheus", "json", "otlp" };
	uint64_t drained = ld(&s->records_drained), written = ld(&s->log.bytes_written), total = 0;
	bool f = true;

	atel__buf_putc(b, '{');
	ju64(b, "now_ns", atel__now_ns(), &f);
	ju64(b, "start_ns", d->start_ns, &f);
	ju64(b, "records_drained", drained, &f);
	ju64(b, "records_invalid", ld(&s->records_invalid), &f);
	ju64(b, "bytes_raw", ld(&s->log.bytes_raw), &f);
	ju64(b, "bytes_written", written, &f);
	jkey(b, "bytes_per_record", &f);
	jnum(b, drained ? (double)written / (double)drained : NAN);
	ju64(b, "segments_created", ld(&s->log.segments_created), &f);
	ju64(b, "write_errors", ld(&s->log.write_errors), &f);
	jkey(b, "drops", &f);
	{
		bool g = true;
		atel__buf_putc(b, '{');
		for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++) {
			uint64_t v = ld(&s->drops[c]);
			total += v;
			ju64(b, atel__loss_cause_name(c), v, &g);
		}
		atel__buf_putc(b, '}');
	}
	ju64(b, "drops_total", total, &f);
	ju64(b, "spans_dropped", ld(&s->spans_dropped), &f);
	ju64(b, "metric_folds", ld(&s->metric_folds), &f);
	ju64(b, "ring_lag_max", ld(&s->ring_lag_max), &f);
	ju64(b, "oldest_unread_ns", ld(&s->oldest_unread_ns), &f);
	ju64(b, "rings_active", atomic_load_explicit(&s->rings_active, memory_order_relaxed), &f);
	ju64(b, "indexer_lag_records", ld(&s->indexer_lag_records), &f);
	ju64(b, "index_rows", ld(&s->index_rows), &f);
	ju64(b, "export_failures", ld(&s->export_failures), &f);
	ju64(b, "series_overflow", ld(&s->series_overflow), &f);
	jkey(b, "exporters", &f);
	atel__buf_putc(b, '{');
	for (int i = 0; i < ATEL_EXP_COUNT; i++) {
		struct atel_exporter_health *h = &d->health[i];
		char last[256];
		bool g = true;
		pthread_mutex_lock(&h->lock);
		snprintf(last, sizeof(last), "%s", h->last_error);
		pthread_mutex_unlock(&h->lock);
		if (i)
			atel__buf_putc(b, ',');
		atel__json_str(b, exp_names[i]);
		atel__buf_puts(b, ":{");
		ju64(b, "attempts", ld(&h->attempts), &g);
		ju64(b, "failures", ld(&h->failures), &g);
		ju64(b, "last_attempt_ns", ld(&h->last_attempt_ns), &g);
		ju64(b, "last_success_ns", ld(&h->last_success_ns), &g);
		jtext(b, "last_error", last, &g);
		atel__buf_putc(b, '}');
	}
	atel__buf_puts(b, "}}\n");
	return 0;
}

static int ep_metrics(struct atel_webui *w, const struct atel_webui_params *p, struct atel_http_reply *rep)
{
	struct atel_buf *b = &rep->body;
	sqlite3 *db = db_open(w, rep);
	sqlite3_stmt *st = NULL;
	bool one = (p->seen & ATEL_WP_NAME) != 0, f = true;
	char pat[300];
	int n = 0, rc;

	if (!db)
		return 0;
	/* a LIKE pattern with the prefix's own wildcards escaped */
	{
		size_t o = 0;
		for (const char *c = p->prefix; *c && o + 3 < sizeof(pat); c++) {
			if (*c == '%' || *c == '_' || *c == '\\')
				pat[o++] = '\\';
			pat[o++] = *c;
		}
		pat[o++] = '%';
		pat[o] = 0;
	}
	if (sqlite3_prepare_v2(db,
			       one ? "SELECT labels, metric_type, samples, last_value, first_ns, last_ns FROM telemetry_series "
				     "WHERE name = ?1 ORDER BY labels LIMIT ?2"
				   : "SELECT name, MIN(metric_type), COUNT(*), SUM(samples), MAX(last_ns) FROM telemetry_series "
				     "WHERE name LIKE ?3 ESCAPE '\\' GROUP BY name ORDER BY name LIMIT ?2",
			       -1, &st, NULL) != SQLITE_OK) {
		reply_error(rep, 500, sqlite3_errmsg(db));
		db_close(w, db);
		return 0;
	}
	if (one)
		sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
	else
		sqlite3_bind_text(st, 3, pat, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, p->limit ? (int)p->limit : 1000);
	atel__buf_putc(b, '{');
	if (one)
		jtext(b, "name", p->name, &f);
	jkey(b, one ? "series" : "metrics", &f);
	atel__buf_putc(b, '[');
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool g = true;
		atel__buf_puts(b, n++ ? ",{" : "{");
		if (one) {
			jraw_obj(b, "labels", col(st, 0), &g);
			jtext(b, "type", col(st, 1), &g);
			ju64(b, "samples", (uint64_t)sqlite3_column_int64(st, 2), &g);
			jkey(b, "last_value", &g);
			jnum(b, sqlite3_column_double(st, 3));
			ju64(b, "first_ns", (uint64_t)sqlite3_column_int64(st, 4), &g);
			ju64(b, "last_ns", (uint64_t)sqlite3_column_int64(st, 5), &g);
		} else {
			jtext(b, "name", col(st, 0), &g);
			jtext(b, "type", col(st, 1), &g);
			ju64(b, "series", (uint64_t)sqlite3_column_int64(st, 2), &g);
			ju64(b, "samples", (uint64_t)sqlite3_column_int64(st, 3), &g);
			ju64(b, "last_ns", (uint64_t)sqlite3_column_int64(st, 4), &g);
		}
		atel__buf_putc(b, '}');
	}
	atel__buf_puts(b, "]}\n");
	rows_done(db, rc, rep);
	sqlite3_finalize(st);
	db_close(w, db);
	return 0;
}

struct pt {
	uint32_t bucket;
	double v;
};

static int cmp_pt(const void *a, const void *b)
{
	const struct pt *x = a, *y = b;
	if (x->bucket != y->bucket)
		return x->bucket < y->bucket ? -1 : 1;
	return (x->v > y->v) - (x->v < y->v);
}

static int ep_series(struct atel_webui *w, const struct atel_webui_params *p, struct atel_http_reply *rep)
{
	struct atel_buf *b = &rep->body;
	const char *agg = p->agg[0] ? p->agg : "sum";
	uint64_t from, to, step, nb;
	struct pt *pts = NULL;
	size_t npts = 0, cap = 0, series = 0;
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	char sql[1024];
	bool f = true;
	int rc = 0;

	if (!(p->seen & ATEL_WP_NAME) || !p->name[0])
		return reply_error(rep, 400, "name: required (a metric name)");
	range_of(p, 3600ull * 1000000000ull, &from, &to);
	if (from >= to)
		return reply_error(rep, 400, "the range is empty");
	step = p->step_ns;
	if (!step) {
		step = (to - from + 119) / 120;
		step = (step + 999999999ull) / 1000000000ull * 1000000000ull; /* whole seconds */
	}
	nb = (to - from + step - 1) / step;
	if (nb > MAX_BUCKETS) {
		char m[160];
		snprintf(m, sizeof(m), "step: %llu buckets over this range; at most %u (use a larger step)",
			 (unsigned long long)nb, MAX_BUCKETS);
		return reply_error(rep, 400, m);
	}
	if (!(db = db_open(w, rep)))
		return 0;
	/* the series that match, then their samples */
	{
		size_t o = (size_t)snprintf(sql, sizeof(sql),
					    "SELECT m.ts_ns, m.value FROM telemetry_metrics m WHERE m.name = ?1 "
					    "AND m.ts_ns >= ?2 AND m.ts_ns < ?3 AND m.series_hash IN "
					    "(SELECT series_hash FROM telemetry_series WHERE name = ?1");
		for (uint32_t i = 0; i < p->nlabels; i++)
			o += (size_t)snprintf(sql + o, sizeof(sql) - o,
					      " AND json_extract(labels, '$.' || ?%u) = ?%u", 4 + 2 * i, 5 + 2 * i);
		snprintf(sql + o, sizeof(sql) - o, ") ORDER BY m.ts_ns");
	}
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		reply_error(rep, 500, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)(to > INT64_MAX ? INT64_MAX : to));
	for (uint32_t i = 0; i < p->nlabels; i++) {
		sqlite3_bind_text(st, 4 + 2 * (int)i, p->lkey[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5 + 2 * (int)i, p->lval[i], -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (npts == cap) {
			size_t nc = cap ? cap * 2 : 1024;
			struct pt *np;
			if (nc > MAX_SERIES_ROWS) {
				reply_error(rep, 400, "more than 2000000 samples in this range; narrow it");
				goto out;
			}
			if (!(np = realloc(pts, nc * sizeof(*np)))) {
				rc = -ENOMEM;
				goto out;
			}
			pts = np;
			cap = nc;
		}
		pts[npts].bucket = (uint32_t)(((uint64_t)sqlite3_column_int64(st, 0) - from) / step);
		pts[npts++].v = sqlite3_column_double(st, 1);
	}
	if (!rows_done(db, rc, rep)) {
		rc = 0;
		goto out;
	}
	rc = 0;
	sqlite3_finalize(st);
	st = NULL;
	{
		const char *cs = "SELECT COUNT(*) FROM telemetry_series WHERE name = ?1";
		if (sqlite3_prepare_v2(db, cs, -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW)
				series = (size_t)sqlite3_column_int64(st, 0);
		}
	}
	bool quant = agg[0] == 'p';
	if (quant && npts) /* qsort's base must not be NULL, even for no elements */
		qsort(pts, npts, sizeof(*pts), cmp_pt); /* stable per bucket by value */
	atel__buf_putc(b, '{');
	jtext(b, "name", p->name, &f);
	jkey(b, "labels", &f);
	atel__buf_putc(b, '{');
	for (uint32_t i = 0; i < p->nlabels; i++) {
		bool g = i == 0;
		jtext(b, p->lkey[i], p->lval[i], &g);
	}
	atel__buf_putc(b, '}');
	jtext(b, "agg", agg, &f);
	ju64(b, "from_ms", from / 1000000ull, &f);
	ju64(b, "to_ms", to / 1000000ull, &f);
	ju64(b, "step_ms", step / 1000000ull, &f);
	ju64(b, "samples", npts, &f);
	ju64(b, "metric_series", series, &f);
	jkey(b, "points", &f);
	atel__buf_putc(b, '[');
	for (size_t k = 0, i = 0; k < nb; k++) {
		size_t j = i;
		double sum = 0, mn = INFINITY, mx = -INFINITY, last = NAN, v;
		while (j < npts && pts[j].bucket == k) {
			sum += pts[j].v;
			mn = fmin(mn, pts[j].v);
			mx = fmax(mx, pts[j].v);
			last = pts[j].v;
			j++;
		}
		size_t n = j - i;
		if (!strcmp(agg, "sum"))
			v = sum;
		else if (!strcmp(agg, "count"))
			v = (double)n;
		else if (!strcmp(agg, "rate"))
			v = sum / ((double)step / 1e9);
		else if (!n)
			v = NAN;
		else if (!strcmp(agg, "avg"))
			v = sum / (double)n;
		else if (!strcmp(agg, "min"))
			v = mn;
		else if (!strcmp(agg, "max"))
			v = mx;
		else if (!strcmp(agg, "last"))
			v = last;
		else { /* nearest rank */
			double q = agg[1] == '5' ? 0.5 : agg[2] == '5' ? 0.95 : 0.99;
			size_t r = (size_t)ceil(q * (double)n);
			v = pts[i + (r ? r - 1 : 0)].v;
		}
		if (k)
			atel__buf_putc(b, ',');
		atel__buf_putc(b, '[');
		atel__buf_u64(b, (from + k * step) / 1000000ull);
		atel__buf_putc(b, ',');
		jnum(b, v);
		atel__buf_putc(b, ']');
		i = j;
	}
	atel__buf_puts(b, "]}\n");
out:
	sqlite3_finalize(st);
	db_close(w, db);
	free(pts);
	return rc;
}

static int ep_traces(struct atel_webui *w, const struct atel_webui_params *p, struct atel_http_reply *rep)
{
	struct atel_buf *b = &rep->body;
	uint64_t from, to;
	sqlite3 *db;
	sqlite3_stmt *st = NULL;
	bool f = true;
	int n = 0, rc;
	static const char sql[] =
		"SELECT trace_id, MIN(start_ns) AS st, MAX(COALESCE(end_ns, start_ns)) AS en, COUNT(*), "
		"SUM(status_code = 2) AS errs, "
		"MAX(CASE WHEN parent_span_id IS NULL OR parent_span_id = '' THEN name END) AS root, "
		"MAX(CASE WHEN parent_span_id IS NULL OR parent_span_id = '' THEN service END), "
		"COUNT(DISTINCT pid), SUM(end_ns IS NULL) "
		"FROM telemetry_spans WHERE start_ns >= ?1 AND start_ns < ?2 GROUP BY trace_id "
		"HAVING (?3 IS NULL OR root = ?3) AND (?4 IS NULL OR SUM(service = ?4) > 0) "
		"AND (?5 IS NULL OR (?5 = 'error' AND errs > 0) OR (?5 = 'ok' AND errs = 0 AND SUM(status_code = 1) > 0) "
		"     OR (?5 = 'unset' AND SUM(status_code <> 0) = 0)) "
		"AND en - st >= ?6 ORDER BY st DESC LIMIT ?7";

	range_of(p, 7ull * 86400 * 1000000000ull, &from, &to);
	if (!(db = db_open(w, rep)))
		return 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		reply_error(rep, 500, sqlite3_errmsg(db));
		db_close(w, db);
		return 0;
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)from);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)(to > INT64_MAX ? INT64_MAX : to));
	if (p->seen & ATEL_WP_NAME)
		sqlite3_bind_text(st, 3, p->name, -1, SQLITE_STATIC);
	if (p->seen & ATEL_WP_SERVICE)
		sqlite3_bind_text(st, 4, p->service, -1, SQLITE_STATIC);
	if (p->status[0])
		sqlite3_bind_text(st, 5, p->status, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)(p->min_ms * 1000000ull));
	sqlite3_bind_int(st, 7, p->limit ? (int)p->limit : 50);
	atel__buf_puts(b, "{");
	jkey(b, "traces", &f);
	atel__buf_putc(b, '[');
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool g = true;
		uint64_t s0 = (uint64_t)sqlite3_column_int64(st, 1), e0 = (uint64_t)sqlite3_column_int64(st, 2);
		atel__buf_puts(b, n++ ? ",{" : "{");
		jtext(b, "trace_id", col(st, 0), &g);
		jtext(b, "root", col(st, 5), &g);
		jtext(b, "service", col(st, 6), &g);
		ju64(b, "start_ns", s0, &g);
		ju64(b, "duration_ns", e0 > s0 ? e0 - s0 : 0, &g);
		ju64(b, "spans", (uint64_t)sqlite3_column_int64(st, 3), &g);
		ju64(b, "errors", (uint64_t)sqlite3_column_int64(st, 4), &g);
		ju64(b, "processes", (uint64_t)sqlite3_column_int64(st, 7), &g);
		ju64(b, "open_spans", (uint64_t)sqlite3_column_int64(st, 8), &g);
		atel__buf_putc(b, '}');
	}
	atel__buf_puts(b, "]}\n");
	rows_done(db, rc, rep);
	sqlite3_finalize(st);
	db_close(w, db);
	return 0;
}

static int ep_trace(struct atel_webui *w, const struct atel_webui_params *p, struct atel_http_reply *rep)
{
	struct atel_buf *b = &rep->body;
	sqlite3 *db;
	sqlite3_stmt *st = NULL, *ev = NULL;
	uint64_t t0 = 0;
	bool f = true;
	int n = 0, rc = SQLITE_DONE;

	if (!p->id[0])
		return reply_error(rep, 400, "id: required (32 hex digits)");
	if (!(db = db_open(w, rep)))
		return 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, status_message, "
			       "attributes, pid, tid, service, MIN(start_ns) OVER () FROM telemetry_spans "
			       "WHERE trace_id = ?1 ORDER BY start_ns, span_id LIMIT 10000",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT ts_ns, name, attributes FROM telemetry_span_events WHERE trace_id = ?1 "
			       "AND span_id = ?2 ORDER BY ts_ns, id LIMIT 1000",
			       -1, &ev, NULL) != SQLITE_OK) {
		reply_error(rep, 500, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(ev, 1, p->id, -1, SQLITE_STATIC);
	atel__buf_putc(b, '{');
	jtext(b, "trace_id", p->id, &f);
	jkey(b, "spans", &f);
	atel__buf_putc(b, '[');
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool g = true, has_end = sqlite3_column_type(st, 5) != SQLITE_NULL;
		uint64_t s0 = (uint64_t)sqlite3_column_int64(st, 4), e0 = (uint64_t)sqlite3_column_int64(st, 5);
		int m = 0;
		if (n == 0)
			t0 = (uint64_t)sqlite3_column_int64(st, 12);
		atel__buf_puts(b, n++ ? ",{" : "{");
		jtext(b, "span_id", col(st, 0), &g);
		jtext(b, "parent_span_id", col(st, 1) && *col(st, 1) ? col(st, 1) : NULL, &g);
		jtext(b, "name", col(st, 2), &g);
		ju64(b, "kind", (uint64_t)sqlite3_column_int(st, 3), &g);
		ju64(b, "start_ns", s0, &g);
		ju64(b, "offset_ns", s0 > t0 ? s0 - t0 : 0, &g);
		jkey(b, "duration_ns", &g);
		if (has_end)
			atel__buf_u64(b, e0 > s0 ? e0 - s0 : 0);
		else
			atel__buf_puts(b, "null");
		ju64(b, "status_code", (uint64_t)sqlite3_column_int(st, 6), &g);
		jtext(b, "status_message", col(st, 7), &g);
		jraw_obj(b, "attributes", col(st, 8), &g);
		ju64(b, "pid", (uint64_t)sqlite3_column_int64(st, 9), &g);
		ju64(b, "tid", (uint64_t)sqlite3_column_int64(st, 10), &g);
		jtext(b, "service", col(st, 11), &g);
		jkey(b, "events", &g);
		atel__buf_putc(b, '[');
		sqlite3_reset(ev);
		sqlite3_bind_text(ev, 2, col(st, 0) ? col(st, 0) : "", -1, SQLITE_TRANSIENT);
		while (sqlite3_step(ev) == SQLITE_ROW) {
			bool h = true;
			uint64_t ts = (uint64_t)sqlite3_column_int64(ev, 0);
			atel__buf_puts(b, m++ ? ",{" : "{");
			ju64(b, "offset_ns", ts > t0 ? ts - t0 : 0, &h);
			jtext(b, "name", col(ev, 1), &h);
			jraw_obj(b, "attributes", col(ev, 2), &h);
			atel__buf_putc(b, '}');
		}
		atel__buf_puts(b, "]}");
	}
	atel__buf_puts(b, "]}\n");
	if (!rows_done(db, rc, rep))
		goto out;
	if (n == 0)
		reply_error(rep, 404, "no such trace in the index");
out:
	sqlite3_finalize(st);
	sqlite3_finalize(ev);
	db_close(w, db);
	return 0;
}

static char *slurp(const char *path, size_t max)
{
	FILE *fp = fopen(path, "rb");
	char *s = NULL;
	size_t n;

	if (!fp)
		return NULL;
	if ((s = malloc(max + 1))) {
		n = fread(s, 1, max, fp);
		s[n] = 0;
	}
	fclose(fp);
	return s;
}

static double jget(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static int ep_rings(struct atel_webui *w, struct atel_http_reply *rep)
{
	struct atel_buf *b = &rep->body;
	char *text = slurp(w->status_path, 16u << 20);
	cJSON *root = text ? cJSON_Parse(text) : NULL, *shm, *rings, *r;
	double capacity;
	bool f = true;
	int n = 0;

	free(text);
	if (!root)
		return reply_error(rep, 503, "ateld's status file is not readable yet");
	shm = cJSON_GetObjectItemCaseSensitive(root, "shm");
	rings = cJSON_GetObjectItemCaseSensitive(root, "rings");
	capacity = jget(shm, "ring_capacity");
	atel__buf_putc(b, '{');
	jkey(b, "written_ns", &f);
	jnum(b, jget(root, "written_ns"));
	jkey(b, "rings_total", &f);
	jnum(b, jget(shm, "rings"));
	jkey(b, "ring_capacity", &f);
	jnum(b, capacity);
	jkey(b, "drops_no_ring", &f);
	jnum(b, jget(shm, "drops_no_ring"));
	jkey(b, "rings", &f);
	atel__buf_putc(b, '[');
	cJSON_ArrayForEach(r, rings)
	{
		static const char *const nums[] = { "ring", "pid", "tid", "generation", "head", "tail", "lag",
						    "drops_full", "drops_nodef", "drops_invalid" };
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "state"), *c = cJSON_GetObjectItemCaseSensitive(r, "comm");
		bool g = true;
		atel__buf_puts(b, n++ ? ",{" : "{");
		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
			jkey(b, nums[k], &g);
			jnum(b, jget(r, nums[k]));
		}
		jtext(b, "state", cJSON_IsString(s) ? s->valuestring : "", &g);
		jtext(b, "comm", cJSON_IsString(c) ? c->valuestring : "", &g);
		jkey(b, "fill", &g);
		jnum(b, capacity > 0 ? jget(r, "lag") / capacity : 0);
		atel__buf_putc(b, '}');
	}
	atel__buf_puts(b, "]}\n");
	cJSON_Delete(root);
	return 0;
}

/* ---- routing ------------------------------------------------------------------------------------------ */

static const struct {
	const char *path;
	unsigned allowed;
} api[] = {
	{ "/api/ui/overview", 0 },
	{ "/api/ui/metrics", ATEL_WP_NAME | ATEL_WP_PREFIX | ATEL_WP_LIMIT },
	{ "/api/ui/series", ATEL_WP_NAME | ATEL_WP_LABELS | ATEL_WP_FROM | ATEL_WP_TO | ATEL_WP_SINCE | ATEL_WP_STEP |
				    ATEL_WP_AGG },
	{ "/api/ui/traces", ATEL_WP_NAME | ATEL_WP_SERVICE | ATEL_WP_STATUS | ATEL_WP_MIN_MS | ATEL_WP_LIMIT |
				    ATEL_WP_FROM | ATEL_WP_TO | ATEL_WP_SINCE },
	{ "/api/ui/trace", ATEL_WP_ID },
	{ "/api/ui/rings", 0 },
};

int atel__webui_route(void *arg, const char *target, size_t len, bool authed, struct atel_http_reply *rep)
{
	struct atel_webui *w = arg;
	const char *q = memchr(target, '?', len);
	size_t plen = q ? (size_t)(q - target) : len, qlen = q ? len - plen - 1 : 0;
	struct atel_webui_params p;
	char err[256];
	int which = -1;

	rep->headers = SEC_HEADERS;
	if ((plen == 1 && target[0] == '/') || (plen == 11 && !memcmp(target, "/index.html", 11))) {
		rep->ctype = "text/html; charset=utf-8";
		atel__buf_puts(&rep->body, atel__webui_html);
		return 0;
	}
	if (plen == 6 && !memcmp(target, "/ui.js", 6)) {
		rep->ctype = "text/javascript; charset=utf-8";
		atel__buf_puts(&rep->body, atel__webui_js);
		return 0;
	}
	if (plen == 7 && !memcmp(target, "/ui.css", 7)) {
		rep->ctype = "text/css; charset=utf-8";
		atel__buf_puts(&rep->body, atel__webui_css);
		return 0;
	}
	for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		if (plen == strlen(api[i].path) && !memcmp(target, api[i].path, plen))
			which = (int)i;
	if (which < 0) {
		if (plen >= 8 && !memcmp(target, "/api/ui/", 8))
			return reply_error(rep, 404, "no such endpoint (see docs/webui.md)");
		return -ENOENT;
	}
	if (!authed)
		return reply_error(rep, 401, "a bearer token is required (the one /metrics takes)");
	if (atel__webui_parse_params(q ? q + 1 : "", qlen, api[which].allowed, &p, err, sizeof(err)) < 0)
		return reply_error(rep, 400, err);
	rep->ctype = JSON_CT;
	switch (which) {
	case 0:
		return ep_overview(w, rep);
	case 1:
		return ep_metrics(w, &p, rep);
	case 2:
		return ep_series(w, &p, rep);
	case 3:
		return ep_traces(w, &p, rep);
	case 4:
		return ep_trace(w, &p, rep);
	default:
		return ep_rings(w, rep);
	}
}

struct atel_webui *atel__webui_new(struct atel_daemon *d)
{
	struct atel_webui *w = calloc(1, sizeof(*w));
	const char *slash;

	if (!w)
		return NULL;
	w->d = d;
	snprintf(w->db_path, sizeof(w->db_path), "%s", d->db_path);
	snprintf(w->segments_dir, sizeof(w->segments_dir), "%s", d->segments_dir);
	slash = strrchr(d->db_path, '/');
	if (slash)
		snprintf(w->status_path, sizeof(w->status_path), "%.*s/ateld.status.json", (int)(slash - d->db_path),
			 d->db_path);
	else
		snprintf(w->status_path, sizeof(w->status_path), "ateld.status.json");
	return w;
}

void atel__webui_free(struct atel_webui *w)
{
	if (w)
		atel__logshadow_close(w->shadow);
	free(w);
}
