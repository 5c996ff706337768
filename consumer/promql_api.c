/* SPDX-License-Identifier: MIT */
/*
 * promql_api.c - Prometheus' query API over the log (promql_api.h).
 *
 * Each request scans the log once per selector of its query (logprom.h):
 * there is no in-memory TSDB, so latency grows with the retained log; the
 * time budget (timeout), the series and the samples limits bound it. A
 * query selector reads only the files from the last cached file boundary
 * before its range (logprom.h's cache, kept in struct atel_promql_api), so
 * a recent range costs what it covers, not the retention.
 */
#include "promql_api.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logprom.h"
#include "promql.h"
#include "promql_int.h"
#include "util.h"

#define MAX_PARAMS 256u

/* ---- parameters --------------------------------------------------------------- */

struct param {
	char *name, *value;
};

struct params {
	struct param p[MAX_PARAMS];
	size_t n;
	bool too_many;
};

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

/* application/x-www-form-urlencoded decoding of s[0..n) (malloc'd). */
static char *urldecode(const char *s, size_t n)
{
	char *o = malloc(n + 1), *w = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int h, l;
		if (s[i] == '+') {
			*w++ = ' ';
		} else if (s[i] == '%' && i + 2 < n && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
			   (l = hexval((unsigned char)s[i + 2])) >= 0) {
			*w++ = (char)(h * 16 + l);
			i += 2;
		} else {
			*w++ = s[i];
		}
	}
	*w = '\0';
	return o;
}

static int params_add(struct params *ps, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '&')
			j++;
		if (j > i) {
			const char *eq = memchr(s + i, '=', j - i);
			size_t kl = eq ? (size_t)(eq - (s + i)) : j - i;
			if (ps->n == MAX_PARAMS) {
				ps->too_many = true;
				return 0;
			}
			struct param *p = &ps->p[ps->n];
			p->name = urldecode(s + i, kl);
			p->value = eq ? urldecode(eq + 1, (size_t)(s + j - eq - 1)) : urldecode("", 0);
			if (!p->name || !p->value) {
				free(p->name);
				free(p->value);
				return -ENOMEM;
			}
			ps->n++;
		}
		i = j + 1;
	}
	return 0;
}

static void params_free(struct params *ps)
{
	for (size_t i = 0; i < ps->n; i++) {
		free(ps->p[i].name);
		free(ps->p[i].value);
	}
	ps->n = 0;
}

/* The first value of name, or NULL. */
static const char *param(const struct params *ps, const char *name)
{
	for (size_t i = 0; i < ps->n; i++)
		if (!strcmp(ps->p[i].name, name))
			return ps->p[i].value;
	return NULL;
}

/* ---- times and durations --------------------------------------------------------- */

static const int64_t MIN_MS = -(1LL << 61), MAX_MS = 1LL << 61;

int atel__promql_api_parse_time(const char *s, int64_t *ms)
{
	char *end;
	double f;

	if (!s || !*s)
		return -EINVAL;
	/* Prometheus' own min/max time forms (what clients send for "everything") */
	if (!strcmp(s, "-292273086-05-16T16:47:06Z") || !strcmp(s, "-9223372036854775.808")) {
		*ms = MIN_MS;
		return 0;
	}
	if (!strcmp(s, "292277025-08-18T07:12:54.999999999Z") || !strcmp(s, "9223372036854775.807")) {
		*ms = MAX_MS;
		return 0;
	}
	errno = 0;
	f = strtod(s, &end);
	if (end != s && !*end && !isspace((unsigned char)*s)) {
		if (!isfinite(f) || errno || f > (double)MAX_MS / 1000 || f < (double)MIN_MS / 1000)
			return -EINVAL;
		double sec = trunc(f);
		*ms = (int64_t)sec * 1000 + (int64_t)llround((f - sec) * 1000);
		return 0;
	}
	/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm) */
	int Y, M, D, h, m, sec, n = 0;
	if (sscanf(s, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
		return -EINVAL;
	const char *p = s + n;
	int64_t frac_ms = 0;
	if (*p == '.') {
		int digits = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	int off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om, k = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return -EINVAL;
	struct tm tm = { .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec };
	time_t t = timegm(&tm);
	*ms = ((int64_t)t - (int64_t)off * 60) * 1000 + frac_ms;
	return 0;
}

int atel__promql_api_parse_duration(const char *s, int64_t *ms)
{
	char *end;
	double f;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	f = strtod(s, &end);
	if (end != s && !*end && !isspace((unsigned char)*s)) {
		if (!isfinite(f) || f * 1000 >= 9223372036854775807.0 || f * 1000 <= -9223372036854775807.0)
			return -EINVAL;
		*ms = (int64_t)llround(f * 1000);
		return 0;
	}
	char e[64];
	return atel__promql_parse_duration(s, strlen(s), ms, e, sizeof(e)) < 0 ? -EINVAL : 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void put_ts(struct atel_buf *b, int64_t t)
{
	char tmp[48];
	uint64_t u = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
	int n;
	if (u % 1000)
		n = snprintf(tmp, sizeof(tmp), "%s%llu.%03llu", t < 0 ? "-" : "", (unsigned long long)(u / 1000),
			     (unsigned long long)(u % 1000));
	else
		n = snprintf(tmp, sizeof(tmp), "%s%llu", t < 0 ? "-" : "", (unsigned long long)(u / 1000));
	atel__buf_put(b, tmp, (size_t)n);
}

static void put_val(struct atel_buf *b, double v)
{
	char tmp[400];
	atel__buf_putc(b, '"');
	if (isnan(v))
		atel__buf_puts(b, "NaN");
	else if (isinf(v))
		atel__buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else {
		size_t n = atel__promql_format_float_f(v, tmp, sizeof(tmp));
		atel__buf_put(b, tmp, n < sizeof(tmp) ? n : sizeof(tmp) - 1);
	}
	atel__buf_putc(b, '"');
}

static void put_labels(struct atel_buf *b, const struct atel_promql_label *l, size_t n)
{
	atel__buf_putc(b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			atel__buf_putc(b, ',');
		atel__json_str(b, l[i].name);
		atel__buf_putc(b, ':');
		atel__json_str(b, l[i].value);
	}
	atel__buf_putc(b, '}');
}

static int reply_error(struct atel_buf *out, int code, const char *type, const char *msg)
{
	atel__buf_reset(out);
	atel__buf_puts(out, "{\"status\":\"error\",\"errorType\":");
	atel__json_str(out, type);
	atel__buf_puts(out, ",\"error\":");
	atel__json_str(out, msg);
	atel__buf_puts(out, "}");
	return code;
}

static int reply_promql_error(struct atel_buf *out, const struct atel_promql_error *e)
{
	switch (e->type) {
	case ATEL_PROMQL_ERR_BAD_DATA:
		return reply_error(out, 400, "bad_data", e->msg);
	case ATEL_PROMQL_ERR_EXECUTION:
		return reply_error(out, 422, "execution", e->msg);
	case ATEL_PROMQL_ERR_TIMEOUT:
		return reply_error(out, 503, "timeout", e->msg);
	case ATEL_PROMQL_ERR_CANCELED:
		return reply_error(out, 503, "canceled", e->msg);
	default:
		return reply_error(out, 500, "internal", e->msg[0] ? e->msg : "internal error");
	}
}

static void put_warnings(struct atel_buf *b, const struct atel_promql_result *r)
{
	if (!r || (!r->nwarnings && !r->ninfos))
		return;
	if (r->nwarnings) {
		atel__buf_puts(b, ",\"warnings\":[");
		for (size_t i = 0; i < r->nwarnings; i++) {
			if (i)
				atel__buf_putc(b, ',');
			atel__json_str(b, r->warnings[i]);
		}
		atel__buf_putc(b, ']');
	}
	if (r->ninfos) {
		atel__buf_puts(b, ",\"infos\":[");
		for (size_t i = 0; i < r->ninfos; i++) {
			if (i)
				atel__buf_putc(b, ',');
			atel__json_str(b, r->infos[i]);
		}
		atel__buf_putc(b, ']');
	}
}

static void put_result(struct atel_buf *b, const struct atel_promql_result *r)
{
	atel__buf_puts(b, "{\"status\":\"success\",\"data\":{\"resultType\":");
	switch (r->type) {
	case ATEL_PROMQL_SCALAR:
		atel__buf_puts(b, "\"scalar\",\"result\":[");
		put_ts(b, r->t_ms);
		atel__buf_putc(b, ',');
		put_val(b, r->scalar);
		atel__buf_putc(b, ']');
		break;
	case ATEL_PROMQL_STRING:
		atel__buf_puts(b, "\"string\",\"result\":[");
		put_ts(b, r->t_ms);
		atel__buf_putc(b, ',');
		atel__json_str(b, r->string);
		atel__buf_putc(b, ']');
		break;
	case ATEL_PROMQL_VECTOR:
		atel__buf_puts(b, "\"vector\",\"result\":[");
		for (size_t i = 0; i < r->nseries; i++) {
			const struct atel_promql_series *s = &r->series[i];
			if (!s->npoints)
				continue;
			if (b->len && b->data[b->len - 1] != '[')
				atel__buf_putc(b, ',');
			atel__buf_puts(b, "{\"metric\":");
			put_labels(b, s->labels, s->nlabels);
			atel__buf_puts(b, ",\"value\":[");
			put_ts(b, s->points[0].t_ms);
			atel__buf_putc(b, ',');
			put_val(b, s->points[0].v);
			atel__buf_puts(b, "]}");
		}
		atel__buf_putc(b, ']');
		break;
	default:
		atel__buf_puts(b, "\"matrix\",\"result\":[");
		for (size_t i = 0; i < r->nseries; i++) {
			const struct atel_promql_series *s = &r->series[i];
			if (i)
				atel__buf_putc(b, ',');
			atel__buf_puts(b, "{\"metric\":");
			put_labels(b, s->labels, s->nlabels);
			atel__buf_puts(b, ",\"values\":[");
			for (size_t k = 0; k < s->npoints; k++) {
				if (k)
					atel__buf_putc(b, ',');
				atel__buf_putc(b, '[');
				put_ts(b, s->points[k].t_ms);
				atel__buf_putc(b, ',');
				put_val(b, s->points[k].v);
				atel__buf_putc(b, ']');
			}
			atel__buf_puts(b, "]}");
		}
		atel__buf_putc(b, ']');
		break;
	}
	atel__buf_putc(b, '}');
	put_warnings(b, r);
	atel__buf_putc(b, '}');
}

/* ---- ateld's self-metrics: snapshots of /metrics' atel_* lines ------------------------ */

#define SELF_SNAPS 1024u
#define SELF_KEEP_MS 3600000

struct self_snap {
	int64_t t_ms;
	char *text;                  /* the atel_* sample lines, '\n'-terminated */
	size_t len;
};

struct atel_promql_self {
	struct self_snap s[SELF_SNAPS];
	size_t head, n;              /* oldest at head */
};

static int64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void atel__promql_api_tick(void *arg, const char *body, size_t len)
{
	struct atel_promql_api *a = arg;
	struct atel_buf b = { 0 };

	if (!a->self && !(a->self = calloc(1, sizeof(*a->self))))
		return;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(body + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - body) : len;
		if (e - i > 5 && !memcmp(body + i, "atel_", 5)) {
			atel__buf_put(&b, body + i, e - i);
			atel__buf_putc(&b, '\n');
		}
		i = e + 1;
	}
	if (b.oom) {
		atel__buf_free(&b);
		return;
	}
	struct atel_promql_self *h = a->self;
	struct self_snap *slot;
	if (h->n == SELF_SNAPS) {
		slot = &h->s[h->head];
		free(slot->text);
		h->head = (h->head + 1) % SELF_SNAPS;
		h->n--;
	}
	slot = &h->s[(h->head + h->n) % SELF_SNAPS];
	slot->t_ms = a->now_ms ? a->now_ms : real_ms();
	slot->text = b.data;
	slot->len = b.len;
	h->n++;
}

void atel__promql_api_fini(struct atel_promql_api *a)
{
	if (a) {
		atel__logprom_cache_free(a->cache);
		a->cache = NULL;
	}
	if (!a || !a->self)
		return;
	for (size_t i = 0; i < a->self->n; i++)
		free(a->self->s[(a->self->head + i) % SELF_SNAPS].text);
	free(a->self);
	a->self = NULL;
}

/* One exposition line "name{k="v",...} value" into labels (strings in scratch).
 * @return the number of labels, or -1 for a line to skip. */
static int parse_line(const char *l, size_t n, char *scratch, struct atel_promql_label *lab, size_t max, double *v)
{
	size_t i = 0, o = 0, nl = 0;
	while (i < n && l[i] != '{' && l[i] != ' ')
		i++;
	memcpy(scratch, l, i);
	scratch[i] = '\0';
	lab[nl++] = (struct atel_promql_label){ "__name__", scratch };
	o = i + 1;
	if (i < n && l[i] == '{') {
		i++;
		while (i < n && l[i] != '}') {
			size_t k0 = o;
			while (i < n && l[i] != '=')
				scratch[o++] = l[i++];
			scratch[o++] = '\0';
			if (i + 1 >= n || l[i + 1] != '"')
				return -1;
			i += 2;
			size_t v0 = o;
			while (i < n && l[i] != '"') {
				if (l[i] == '\\' && i + 1 < n) {
					i++;
					scratch[o++] = l[i] == 'n' ? '\n' : l[i];
				} else {
					scratch[o++] = l[i];
				}
				i++;
			}
			scratch[o++] = '\0';
			if (i >= n || nl == max)
				return -1;
			lab[nl++] = (struct atel_promql_label){ scratch + k0, scratch + v0 };
			i++;
			if (i < n && l[i] == ',')
				i++;
		}
		i++;
	}
	while (i < n && l[i] == ' ')
		i++;
	if (i >= n)
		return -1;
	char num[64];
	size_t m = n - i < sizeof(num) - 1 ? n - i : sizeof(num) - 1;
	memcpy(num, l + i, m);
	num[m] = '\0';
	char *end;
	*v = strtod(num, &end);
	if (end == num)
		return -1;
	return (int)nl;
}

/* Whether the newest snapshot has a family called name. */
static bool self_has(const struct atel_promql_self *h, const char *name)
{
	if (!h || !h->n || strncmp(name, "atel_", 5))
		return false;
	const struct self_snap *sn = &h->s[(h->head + h->n - 1) % SELF_SNAPS];
	size_t n = strlen(name);
	for (const char *p = sn->text; p && p < sn->text + sn->len;) {
		if ((size_t)(sn->text + sn->len - p) > n && !memcmp(p, name, n) && (p[n] == '{' || p[n] == ' '))
			return true;
		p = memchr(p, '\n', (size_t)(sn->text + sn->len - p));
		if (p)
			p++;
	}
	return false;
}

/* Offers the self-metrics history in [mint, maxt] to the sink. */
static int self_select(const struct atel_promql_self *h, const struct atel_promql_select *sel,
		       struct atel_promql_sink *sink, int64_t now)
{
	const char *name = sel->metric_name;
	if (!h || (name && strncmp(name, "atel_", 5)))
		return 0;
	for (size_t k = 0; k < h->n; k++) {
		const struct self_snap *sn = &h->s[(h->head + k) % SELF_SNAPS];
		if (sn->t_ms < sel->mint_ms || sn->t_ms > sel->maxt_ms || sn->t_ms < now - SELF_KEEP_MS)
			continue;
		for (size_t i = 0; i < sn->len;) {
			const char *l = sn->text + i, *nl = memchr(l, '\n', sn->len - i);
			size_t n = nl ? (size_t)(nl - l) : sn->len - i;
			i += n + 1;
			if (name && (n <= strlen(name) || memcmp(l, name, strlen(name)) ||
				     (l[strlen(name)] != '{' && l[strlen(name)] != ' ')))
				continue;
			char scratch[2048];
			struct atel_promql_label lab[24];
			double v;
			if (n >= sizeof(scratch) / 2)
				continue;
			int nlab = parse_line(l, n, scratch, lab, 24, &v);
			if (nlab < 0)
				continue;
			uint32_t id;
			int rc = atel_promql_sink_series(sink, lab, (size_t)nlab, &id);
			if (rc < 0)
				return rc;
			if (rc > 0 && (rc = atel_promql_sink_sample(sink, id, sn->t_ms, v)) < 0)
				return rc;
		}
	}
	return 0;
}

/* ---- storage: the log through logprom ------------------------------------------ */

struct req {
	const struct atel_promql_api *cfg;
	int64_t now_ms;
	int64_t deadline_ns;
};

struct scan_arg {
	const struct req *rq;
	struct atel_promql_sink *sink;
};

static int deadline_check(const struct req *rq)
{
	return rq->deadline_ns && (int64_t)atel__mono_ns() > rq->deadline_ns ? -ETIMEDOUT : 0;
}

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

static int g_interrupt(void *arg)
{
	return deadline_check(((struct scan_arg *)arg)->rq);
}

static int store_select(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink, char *errmsg,
			size_t errlen)
{
	const struct req *rq = ctx;
	struct scan_arg a = { rq, sink };
	struct atel_logprom_opts o = {
		.segments_dir = rq->cfg->segments_dir,
		.mint_ms = sel->mint_ms,
		.maxt_ms = sel->maxt_ms,
		.end_ms = rq->now_ms,
		.resolution_ms = rq->cfg->resolution_ms,
		.carry_ms = rq->cfg->carry_ms,
		.name_hint = sel->metric_name,
		.series = g_series,
		.sample = g_sample,
		.interrupt = g_interrupt,
		.arg = &a,
		.cache = rq->cfg->cache,
	};
	/* ateld's own atel_* families come from the self-metrics history alone:
	 * no need to decompress the whole log for them */
	if (sel->metric_name && self_has(rq->cfg->self, sel->metric_name))
		return self_select(rq->cfg->self, sel, sink, rq->now_ms);
	struct atel_logprom_stats st = { 0 };
	int rc = atel__logprom_scan(&o, &st, errmsg, errlen);
	if (rq->cfg->files_skipped && st.files_skipped)
		atomic_fetch_add_explicit(rq->cfg->files_skipped, st.files_skipped, memory_order_relaxed);
	if (rc == -ENOENT)
		rc = 0;
	return rc < 0 ? rc : self_select(rq->cfg->self, sel, sink, rq->now_ms);
}

static void eval_opts(const struct req *rq, struct atel_promql_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_samples = rq->cfg->max_samples ? rq->cfg->max_samples : 50000000;
	o->max_samples_loaded = o->max_samples;
	o->max_series = rq->cfg->max_series ? rq->cfg->max_series : 100000;
	o->deadline_ns = rq->deadline_ns;
}

/* ---- endpoints ------------------------------------------------------------------- */

static int bad_param(struct atel_buf *out, const char *name, const char *val, const char *what)
{
	char msg[600];
	snprintf(msg, sizeof(msg), "invalid parameter \"%s\": cannot parse \"%.400s\" to a valid %s", name, val, what);
	return reply_error(out, 400, "bad_data", msg);
}

/* A time parameter, or dflt when absent. @return 0, or the HTTP status of the error reply. */
static int time_param(const struct params *ps, const char *name, int64_t dflt, int64_t *ms, struct atel_buf *out)
{
	const char *v = param(ps, name);
	if (!v || !*v) {
		*ms = dflt;
		return 0;
	}
	if (atel__promql_api_parse_time(v, ms) < 0)
		return bad_param(out, name, v, "timestamp");
	return 0;
}

static int do_query(struct req *rq, const struct params *ps, bool range, struct atel_buf *out)
{
	const char *q = param(ps, "query");
	struct atel_promql_expr *e = NULL;
	struct atel_promql_result *r = NULL;
	struct atel_promql_error err = { 0 };
	struct atel_promql_storage st = { rq, store_select };
	struct atel_promql_opts o;
	int64_t t = 0, start = 0, end = 0, step = 0;
	int rc, code;

	if (range) {
		const char *sv = param(ps, "start"), *ev = param(ps, "end"), *stv = param(ps, "step");
		if (!sv || !*sv || atel__promql_api_parse_time(sv, &start) < 0)
			return bad_param(out, "start", sv ? sv : "", "timestamp");
		if (!ev || !*ev || atel__promql_api_parse_time(ev, &end) < 0)
			return bad_param(out, "end", ev ? ev : "", "timestamp");
		if (end < start)
			return reply_error(out, 400, "bad_data", "end timestamp must not be before start time");
		if (!stv || !*stv || atel__promql_api_parse_duration(stv, &step) < 0)
			return bad_param(out, "step", stv ? stv : "", "duration");
		if (step <= 0)
			return reply_error(out, 400, "bad_data",
					   "zero or negative query resolution step widths are not accepted. Try a positive integer");
		if ((end - start) / step > 11000)
			return reply_error(out, 400, "bad_data",
					   "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)");
	} else if ((code = time_param(ps, "time", rq->now_ms, &t, out)) != 0) {
		return code;
	}
	if (!q)
		q = "";
	if (atel_promql_parse(q, strlen(q), &e, &err) < 0)
		return reply_promql_error(out, &err);
	eval_opts(rq, &o);
	if (range)
		rc = atel_promql_eval_range(e, &st, &o, start, end, step, &r, &err);
	else
		rc = atel_promql_eval_instant(e, &st, &o, t, &r, &err);
	if (rc < 0) {
		code = reply_promql_error(out, &err);
	} else {
		put_result(out, r);
		code = 200;
	}
	atel_promql_result_free(r);
	atel_promql_expr_free(e);
	return code;
}

/* series, labels, label values: one scan that keeps the matching series. */
struct found {
	char **lines;                /* per series: its JSON object */
	char ***names, ***vals;
	size_t *nl;
	bool *present;
	size_t n, cap;
};

struct meta_scan {
	const struct req *rq;
	struct atel_promql_expr **sels;
	size_t nsels;
	struct found f;
	uint64_t max;
	bool over;
};

static bool sel_matches(const struct atel_promql_expr *e, const char *const *keys, const char *const *vals, size_t n)
{
	const struct atel_promql_node *s = atel_promql_expr_root((struct atel_promql_expr *)e);
	for (size_t m = 0; m < s->sel.nmatchers; m++) {
		const char *v = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(keys[i], s->sel.matchers[m].name)) {
				v = vals[i];
				break;
			}
		if (!atel_promql_matcher_matches(&s->sel.matchers[m], v))
			return false;
	}
	return true;
}

static int m_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	struct meta_scan *m = arg;
	bool ok = m->nsels == 0;
	for (size_t i = 0; i < m->nsels && !ok; i++)
		ok = sel_matches(m->sels[i], keys, vals, n);
	if (!ok)
		return 0;
	if (m->f.n >= m->max) {
		m->over = true;
		return -E2BIG;
	}
	if (m->f.n == m->f.cap) {
		size_t nc = m->f.cap ? m->f.cap * 2 : 64;
		char **l = realloc(m->f.lines, nc * sizeof(*l));
		if (l)
			m->f.lines = l;
		char ***a = realloc(m->f.names, nc * sizeof(*a));
		if (a)
			m->f.names = a;
		char ***b = realloc(m->f.vals, nc * sizeof(*b));
		if (b)
			m->f.vals = b;
		size_t *c = realloc(m->f.nl, nc * sizeof(*c));
		if (c)
			m->f.nl = c;
		bool *d = realloc(m->f.present, nc * sizeof(*d));
		if (d)
			m->f.present = d;
		if (!l || !a || !b || !c || !d)
			return -ENOMEM;
		m->f.cap = nc;
	}
	size_t k = m->f.n;
	struct atel_buf b = { 0 };
	/* labels sorted by name, as Prometheus lists them */
	size_t ord[24];
	if (n > 24)
		n = 24;
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		while (j > 0 && strcmp(keys[ord[j - 1]], keys[i]) > 0) {
			ord[j] = ord[j - 1];
			j--;
		}
		ord[j] = i;
	}
	m->f.names[k] = calloc(n + 1, sizeof(char *));
	m->f.vals[k] = calloc(n + 1, sizeof(char *));
	if (!m->f.names[k] || !m->f.vals[k]) {
		free(m->f.names[k]);
		free(m->f.vals[k]);
		return -ENOMEM;
	}
	atel__buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++) {
		if (i)
			atel__buf_putc(&b, ',');
		atel__json_str(&b, keys[ord[i]]);
		atel__buf_putc(&b, ':');
		atel__json_str(&b, vals[ord[i]]);
		m->f.names[k][i] = strdup(keys[ord[i]]);
		m->f.vals[k][i] = strdup(vals[ord[i]]);
	}
	atel__buf_putc(&b, '}');
	atel__buf_putc(&b, '\0');
	m->f.lines[k] = b.oom ? NULL : b.data;
	if (b.oom)
		atel__buf_free(&b);
	m->f.nl[k] = n;
	m->f.present[k] = false;
	m->f.n++;
	for (size_t i = 0; i < n; i++)
		if (!m->f.names[k][i] || !m->f.vals[k][i])
			return -ENOMEM;
	if (!m->f.lines[k])
		return -ENOMEM;
	*id = (uint32_t)k;
	return 1;
}

static int m_sample(void *arg, uint32_t id, int64_t t, double v)
{
	(void)t;
	(void)v;
	((struct meta_scan *)arg)->f.present[id] = true;
	return 1; /* present: no more samples of it needed */
}

static int m_interrupt(void *arg)
{
	return deadline_check(((struct meta_scan *)arg)->rq);
}

static void found_free(struct found *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->lines[i]);
		for (size_t k = 0; k < f->nl[i]; k++) {
			free(f->names[i][k]);
			free(f->vals[i][k]);
		}
		free(f->names[i]);
		free(f->vals[i]);
	}
	free(f->lines);
	free(f->names);
	free(f->vals);
	free(f->nl);
	free(f->present);
	memset(f, 0, sizeof(*f));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

enum meta_kind { META_SERIES, META_LABELS, META_VALUES };

static int do_meta(struct req *rq, const struct params *ps, enum meta_kind kind, const char *label,
		   struct atel_buf *out)
{
	struct meta_scan m = { .rq = rq };
	struct atel_promql_error err = { 0 };
	struct atel_promql_expr *sels[64];
	int64_t start, end, limit = 0;
	int code = 0, rc;
	char msg[256] = "";
	const char *lim = param(ps, "limit");

	if ((code = time_param(ps, "start", -(1LL << 61), &start, out)) != 0 ||
	    (code = time_param(ps, "end", 1LL << 61, &end, out)) != 0)
		return code;
	if (lim && *lim) {
		char *e;
		limit = strtoll(lim, &e, 10);
		if (*e || limit < 0)
			return bad_param(out, "limit", lim, "number");
	}
	for (size_t i = 0; i < ps->n; i++) {
		if (strcmp(ps->p[i].name, "match[]"))
			continue;
		if (m.nsels == 64) {
			code = reply_error(out, 400, "bad_data", "too many match[] parameters (at most 64)");
			goto out;
		}
		if (atel_promql_parse_selector(ps->p[i].value, strlen(ps->p[i].value), &sels[m.nsels], &err) < 0) {
			char em[700];
			snprintf(em, sizeof(em), "invalid parameter \"match[]\": %s", err.msg);
			code = reply_error(out, 400, "bad_data", em);
			goto out;
		}
		m.nsels++;
	}
	if (kind == META_SERIES && !m.nsels)
		return reply_error(out, 400, "bad_data", "no match[] parameter provided");
	m.sels = sels;
	m.max = rq->cfg->max_series ? rq->cfg->max_series : 100000;
	struct atel_logprom_opts o = {
		.segments_dir = rq->cfg->segments_dir,
		.mint_ms = start,
		.maxt_ms = end,
		.end_ms = rq->now_ms,
		.resolution_ms = 60000, /* presence only: one sample per series (m_sample returns 1) */
		.carry_ms = 1000,       /* an idle series shows in any window of 1 s or more after it began */
		.series = m_series,
		.sample = m_sample,
		.interrupt = m_interrupt,
		.arg = &m,
	};
	rc = atel__logprom_scan(&o, NULL, msg, sizeof(msg));
	if (rc == -ETIMEDOUT) {
		code = reply_error(out, 503, "timeout", "query timed out");
		goto out;
	}
	if (m.over) {
		snprintf(msg, sizeof(msg), "more than %llu series match (prometheus.max_series)",
			 (unsigned long long)m.max);
		code = reply_error(out, 422, "execution", msg);
		goto out;
	}
	if (rc < 0 && rc != -ENOENT) {
		code = reply_error(out, 500, "internal", msg[0] ? msg : strerror(-rc));
		goto out;
	}
	atel__buf_puts(out, "{\"status\":\"success\",\"data\":[");
	size_t emitted = 0;
	bool truncated = false;
	if (kind == META_SERIES) {
		for (size_t i = 0; i < m.f.n; i++) {
			if (!m.f.present[i])
				continue;
			if (limit && (int64_t)emitted == limit) {
				truncated = true;
				break;
			}
			if (emitted++)
				atel__buf_putc(out, ',');
			atel__buf_puts(out, m.f.lines[i]);
		}
	} else {
		size_t cap = 0, n = 0;
		char **all = NULL;
		for (size_t i = 0; i < m.f.n; i++) {
			if (!m.f.present[i])
				continue;
			for (size_t k = 0; k < m.f.nl[i]; k++) {
				char *s;
				if (kind == META_LABELS)
					s = m.f.names[i][k];
				else if (!strcmp(m.f.names[i][k], label))
					s = m.f.vals[i][k];
				else
					continue;
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 64;
					char **a = realloc(all, nc * sizeof(*a));
					if (!a) {
						free(all);
						code = reply_error(out, 500, "internal", "out of memory");
						goto out;
					}
					all = a;
					cap = nc;
				}
				all[n++] = s;
			}
		}
		if (n)
			qsort(all, n, sizeof(*all), cmp_str);
		for (size_t i = 0; i < n; i++) {
			if (i && !strcmp(all[i], all[i - 1]))
				continue;
			if (limit && (int64_t)emitted == limit) {
				truncated = true;
				break;
			}
			if (emitted++)
				atel__buf_putc(out, ',');
			atel__json_str(out, all[i]);
		}
		free(all);
	}
	atel__buf_putc(out, ']');
	if (truncated)
		atel__buf_puts(out, ",\"warnings\":[\"results truncated due to limit\"]");
	atel__buf_putc(out, '}');
	code = 200;
out:
	for (size_t i = 0; i < m.nsels; i++)
		atel_promql_expr_free(sels[i]);
	found_free(&m.f);
	return code;
}

/* metadata: the families of the log, by exposed name. */
struct fams {
	char **names;
	int *types;
	size_t n, cap;
	bool oom;
};

static void f_family(void *arg, const char *name, int mtype)
{
	struct fams *f = arg;
	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->names[i], name))
			return;
	if (f->n == f->cap) {
		size_t nc = f->cap ? f->cap * 2 : 32;
		char **a = realloc(f->names, nc * sizeof(*a));
		if (a)
			f->names = a;
		int *t = realloc(f->types, nc * sizeof(*t));
		if (t)
			f->types = t;
		if (!a || !t) {
			f->oom = true;
			return;
		}
		f->cap = nc;
	}
	if (!(f->names[f->n] = strdup(name))) {
		f->oom = true;
		return;
	}
	f->types[f->n++] = mtype;
}

static int f_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	(void)arg, (void)keys, (void)vals, (void)n, (void)id;
	return 0;
}

static int do_metadata(struct req *rq, const struct params *ps, struct atel_buf *out)
{
	struct fams f = { 0 };
	const char *metric = param(ps, "metric"), *lim = param(ps, "limit");
	long limit = lim && *lim ? strtol(lim, NULL, 10) : 0;
	char msg[256] = "";
	struct atel_logprom_opts o = {
		.segments_dir = rq->cfg->segments_dir,
		.mint_ms = 0,
		.maxt_ms = -1,
		.carry_ms = -1,
		.series = f_series,
		.sample = NULL,
		.family = f_family,
		.arg = &f,
	};
	int rc = atel__logprom_scan(&o, NULL, msg, sizeof(msg)), code = 200;
	if ((rc < 0 && rc != -ENOENT) || f.oom) {
		code = reply_error(out, 500, "internal", f.oom ? "out of memory" : msg);
		goto out;
	}
	atel__buf_puts(out, "{\"status\":\"success\",\"data\":{");
	long k = 0;
	for (size_t i = 0; i < f.n; i++) {
		static const char *const tn[] = { "unknown", "counter", "gauge", "histogram" };
		if (metric && *metric && strcmp(metric, f.names[i]))
			continue;
		if (limit > 0 && k == limit)
			break;
		if (k++)
			atel__buf_putc(out, ',');
		atel__json_str(out, f.names[i]);
		atel__buf_puts(out, ":[{\"type\":\"");
		atel__buf_puts(out, tn[f.types[i] >= 1 && f.types[i] <= 3 ? f.types[i] : 0]);
		atel__buf_puts(out, "\",\"help\":\"\",\"unit\":\"\"}]");
	}
	atel__buf_puts(out, "}}");
out:
	for (size_t i = 0; i < f.n; i++)
		free(f.names[i]);
	free(f.names);
	free(f.types);
	return code;
}

static int do_buildinfo(struct atel_buf *out)
{
	atel__buf_puts(out, "{\"status\":\"success\",\"data\":{\"version\":\"3.0.0\",\"revision\":\"ateld-" ATEL_VERSION
			    "\",\"branch\":\"\",\"buildUser\":\"ateld\",\"buildDate\":\"\",\"goVersion\":\"none (C11)\"}}");
	return 200;
}

int atel__promql_api_handle(void *arg, const char *method, const char *target, size_t target_len, const char *body,
			    size_t body_len, struct atel_buf *out)
{
	const struct atel_promql_api *cfg = arg;
	struct params *ps = calloc(1, sizeof(*ps));
	const char *qm = memchr(target, '?', target_len);
	size_t plen = qm ? (size_t)(qm - target) : target_len;
	struct req rq = { .cfg = cfg };
	int code;

	if (!cfg->cache) /* without one (out of memory) every query reads the whole log */
		((struct atel_promql_api *)arg)->cache = atel__logprom_cache_new();
	if (!ps)
		return reply_error(out, 500, "internal", "out of memory");
	if ((qm && params_add(ps, qm + 1, target_len - plen - 1) < 0) ||
	    (!strcmp(method, "POST") && body_len && params_add(ps, body, body_len) < 0)) {
		code = reply_error(out, 500, "internal", "out of memory");
		goto out;
	}
	if (ps->too_many) {
		code = reply_error(out, 400, "bad_data", "too many parameters");
		goto out;
	}
	if (cfg->now_ms) {
		rq.now_ms = cfg->now_ms;
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		rq.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	int64_t tmo_ns = (int64_t)(cfg->timeout_ms ? cfg->timeout_ms : 10000) * 1000000;
	const char *tv = param(ps, "timeout");
	if (tv && *tv) {
		int64_t t;
		char *e;
		double f = strtod(tv, &e);
		/* seconds keep their sub-millisecond part: timeout=0.000001 is 1 us */
		if (e != tv && !*e && isfinite(f) && f >= 0 && f < 1e9)
			t = (int64_t)(f * 1e9);
		else if (atel__promql_api_parse_duration(tv, &t) == 0 && t >= 0 && t < INT64_MAX / 1000000)
			t *= 1000000;
		else {
			code = bad_param(out, "timeout", tv, "duration");
			goto out;
		}
		if (t > 0 && t < tmo_ns)
			tmo_ns = t;
	}
	rq.deadline_ns = (int64_t)atel__mono_ns() + tmo_ns;
#define IS(p) (plen == sizeof(p) - 1 && !memcmp(target, p, plen))
	if (IS("/api/v1/query"))
		code = do_query(&rq, ps, false, out);
	else if (IS("/api/v1/query_range"))
		code = do_query(&rq, ps, true, out);
	else if (IS("/api/v1/series"))
		code = do_meta(&rq, ps, META_SERIES, NULL, out);
	else if (IS("/api/v1/labels"))
		code = do_meta(&rq, ps, META_LABELS, NULL, out);
	else if (IS("/api/v1/metadata"))
		code = do_metadata(&rq, ps, out);
	else if (IS("/api/v1/status/buildinfo"))
		code = do_buildinfo(out);
	else if (plen > 22 && !memcmp(target, "/api/v1/label/", 14) && !memcmp(target + plen - 7, "/values", 7)) {
		char *name = urldecode(target + 14, plen - 21);
		if (!name)
			code = reply_error(out, 500, "internal", "out of memory");
		else if (!*name || strchr(name, '/'))
			code = reply_error(out, 400, "bad_data", "invalid label name");
		else
			code = do_meta(&rq, ps, META_VALUES, name, out);
		free(name);
	} else
		code = reply_error(out, 404, "not_found", "unknown API endpoint");
#undef IS
out:
	params_free(ps);
	free(ps);
	return code;
}
