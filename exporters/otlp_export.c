/* SPDX-License-Identifier: MIT */
/*
 * otlp_export.c - the OTLP/HTTP exporter thread (see otlp_export.h).
 *
 * Spans: the exporter follows the segment log with its own reader and
 * assembles spans from their records (START, ATTR, EVENT, ERROR, END may
 * arrive in any order across rings; a span is finished when both START and
 * END were read, or when its producer died). Finished spans queue in
 * completion order and leave in batches, one batch in flight at a time.
 *
 * Cursor (<state_dir>/otlp-traces.cursor), saved after every answered batch:
 *   resume - where a restarted exporter starts reading: the position before
 *            the first record of the oldest span still held (open, or
 *            finished but not yet acknowledged), else the read position;
 *   acked  - the completion position of the last acknowledged span.
 *   pending - the ids of the spans held at that moment whose first record
 *            lies before `acked`.
 * On restart the exporter re-reads from `resume`; a span record at or before
 * `acked` belongs to an acknowledged span unless its span is pending, and is
 * ignored. Batches leave in completion order, one at a time, so every span
 * that completed at or before `acked` was acknowledged, and every span held
 * then is either pending or starts after `acked`. Nothing acknowledged is
 * re-sent, nothing unacknowledged is lost (within retention).
 *
 * Metrics: every interval a cumulative snapshot of the aggregates (split by
 * families if larger than max_batch_bytes), retried a bounded number of
 * times: the next snapshot supersedes a failed one.
 *
 * Secrets: header values are set on the curl handle only. Every error string
 * and log line goes through redact(), which masks any header value that
 * might have been echoed back by a server.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zlib.h>

#include "otlp_export.h"
#include "util.h"

#ifndef ATEL_VERSION
#define ATEL_VERSION "0.1.0"
#endif

enum { SIG_TRACES = 0, SIG_METRICS = 1 };
static const char *const SIG_NAME[2] = { "traces", "metrics" };

/* Records read after which a span seen only through END/ATTR/EVENT records
 * (its START never came) is dropped. Generous: a START on a ring drained
 * late can trail its END on another ring by up to the rings' total depth. */
#define ORPHAN_WINDOW_DEFAULT (1u << 22)
#define SPAN_ATTRS_MAX 128u
#define SPAN_EVENTS_MAX 128u
#define RESP_MAX (64u * 1024u)
#define CURSOR_SAVE_IDLE_NS (5ull * 1000000000ull)

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static int pos_cmp(const struct atel_log_pos *a, const struct atel_log_pos *b)
{
	if (a->file_seq != b->file_seq)
		return a->file_seq < b->file_seq ? -1 : 1;
	if (a->frame_off != b->frame_off)
		return a->frame_off < b->frame_off ? -1 : 1;
	if (a->rec_idx != b->rec_idx)
		return a->rec_idx < b->rec_idx ? -1 : 1;
	return 0;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* ------------------------------------------------------------------------ */
/* settings                                                                 */

static int kv_set(struct atel_kv *arr, uint32_t *n, uint32_t max, const char *key, const char *value)
{
	char *v;

	for (uint32_t i = 0; i < *n; i++) {
		if (!strcasecmp(arr[i].key, key)) {
			if (!(v = strdup(value)))
				return -ENOMEM;
			free(arr[i].value);
			arr[i].value = v;
			return 0;
		}
	}
	if (*n >= max)
		return -E2BIG;
	arr[*n].key = strdup(key);
	arr[*n].value = strdup(value);
	if (!arr[*n].key || !arr[*n].value) {
		free(arr[*n].key);
		free(arr[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static void kv_free(struct atel_kv *arr, uint32_t *n)
{
	for (uint32_t i = 0; i < *n; i++) {
		free(arr[i].key);
		free(arr[i].value);
		arr[i].key = arr[i].value = NULL;
	}
	*n = 0;
}

static bool is_tchar(unsigned char c)
{
	return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c);
}

/* Trims and percent-decodes s[0..n) into out (size >= n+1). @return 0 or -1 (bad escape). */
static int pct_decode(const char *s, size_t n, char *out, size_t *outlen)
{
	size_t o = 0;

	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			uint8_t v;

			if (i + 2 >= n || atel__unhex(s + i + 1, 1, &v, true))
				return -1;
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

int atel__otlp_parse_kv_list(const char *text, size_t len, bool header_names, const char *what,
			     int (*add)(void *arg, const char *key, const char *value), void *arg,
			     char *err, size_t errlen)
{
	char *k = NULL, *v = NULL;
	size_t i = 0, entry = 0;
	int rc = 0;

	if (!text)
		return 0;
	k = malloc(len + 1);
	v = malloc(len + 1);
	if (!k || !v) {
		rc = -ENOMEM;
		goto out;
	}
	while (i <= len) {
		size_t start = i, eq = SIZE_MAX, klen, vlen, j;

		while (i < len && text[i] != ',') {
			if (text[i] == '=' && eq == SIZE_MAX)
				eq = i;
			i++;
		}
		entry++;
		/* an entry of only blanks is skipped (e.g. a trailing comma) */
		for (j = start; j < i && (text[j] == ' ' || text[j] == '\t'); j++)
			;
		if (j == i)
			goto next;
		if (eq == SIZE_MAX) {
			atel__seterr(err, errlen, "%s: entry %zu: missing '=' (expected key=value)", what, entry);
			rc = -EINVAL;
			goto out;
		}
		if (pct_decode(text + start, eq - start, k, &klen) ||
		    pct_decode(text + eq + 1, i - eq - 1, v, &vlen)) {
			atel__seterr(err, errlen, "%s: entry %zu: invalid percent-encoding (expected %%XX hex)", what, entry);
			rc = -EINVAL;
			goto out;
		}
		if (!klen) {
			atel__seterr(err, errlen, "%s: entry %zu: empty key", what, entry);
			rc = -EINVAL;
			goto out;
		}
		if (strlen(k) != klen || strlen(v) != vlen || strpbrk(k, "\r\n") || strpbrk(v, "\r\n")) {
			atel__seterr(err, errlen, "%s: entry %zu: key or value contains NUL, CR or LF", what, entry);
			rc = -EINVAL;
			goto out;
		}
		if (header_names) {
			for (j = 0; j < klen; j++) {
				if (!is_tchar((unsigned char)k[j])) {
					atel__seterr(err, errlen, "%s: entry %zu: header name is not an HTTP token", what,
					       entry);
					rc = -EINVAL;
					goto out;
				}
			}
		}
		if ((rc = add(arg, k, v)) < 0) {
			atel__seterr(err, errlen, "%s: entry %zu: %s", what, entry,
			       rc == -E2BIG ? "too many entries" : strerror(-rc));
			goto out;
		}
next:
		i++;
	}
out:
	free(k);
	free(v);
	return rc;
}

int atel__otlp_parse_retry_after(const char *value, size_t len, uint64_t now_unix_s, uint32_t *delay_ms)
{
	char buf[64], *end;
	size_t a = 0, b = len;
	unsigned long long secs;
	struct tm tm;

	if (!value)
		return -EINVAL;
	while (a < b && (value[a] == ' ' || value[a] == '\t'))
		a++;
	while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t' || value[b - 1] == '\r' || value[b - 1] == '\n'))
		b--;
	if (b == a || b - a >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value + a, b - a);
	buf[b - a] = '\0';
	if (isdigit((unsigned char)buf[0])) {
		errno = 0;
		secs = strtoull(buf, &end, 10);
		if (*end)
			return -EINVAL;
		if (errno == ERANGE || secs > 3600)
			secs = 3600;
		*delay_ms = (uint32_t)(secs * 1000);
		return 0;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	memset(&tm, 0, sizeof(tm));
	end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -EINVAL;
	{
		time_t t = timegm(&tm);
		int64_t d;

		if (t == (time_t)-1)
			return -EINVAL;
		d = (int64_t)t - (int64_t)now_unix_s;
		if (d < 0)
			d = 0;
		if (d > 3600)
			d = 3600;
		*delay_ms = (uint32_t)(d * 1000);
	}
	return 0;
}

uint32_t atel__otlp_backoff_ms(unsigned attempt, uint32_t retry_after_ms, uint32_t base_ms, uint32_t max_ms,
			       uint64_t rnd)
{
	uint64_t d = base_ms ? base_ms : 1;

	if (attempt < 1)
		attempt = 1;
	for (unsigned i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* equal jitter: [d/2, d] */
	d = d / 2 + (d / 2 ? rnd % (d / 2 + 1) : 0);
	if (d < retry_after_ms)
		d = retry_after_ms;
	return (uint32_t)d;
}

struct kv_target {
	struct atel_kv *arr;
	uint32_t *n;
	uint32_t max;
	char **service_name;  /* resource attributes: service.name goes here */
};

static int kv_add_cb(void *arg, const char *key, const char *value)
{
	struct kv_target *t = arg;

	if (t->service_name && !strcmp(key, "service.name")) {
		char *s = strdup(value);

		if (!s)
			return -ENOMEM;
		free(*t->service_name);
		*t->service_name = s;
		return 0;
	}
	return kv_set(t->arr, t->n, t->max, key, value);
}

static const char *env_of(const char *(*get_env)(const char *), const char *name)
{
	const char *v = get_env ? get_env(name) : NULL;

	return v && *v ? v : NULL;
}

static bool valid_url(const char *u)
{
	const char *host;

	if (!strncmp(u, "http://", 7))
		host = u + 7;
	else if (!strncmp(u, "https://", 8))
		host = u + 8;
	else
		return false;
	if (!*host || *host == '/' || strpbrk(u, " \t\r\n"))
		return false;
	return true;
}

/* base + "/v1/<signal>", with one slash between. */
static int join_url(char *out, size_t outlen, const char *base, const char *sig)
{
	size_t n = strlen(base);

	while (n && base[n - 1] == '/')
		n--;
	if ((size_t)snprintf(out, outlen, "%.*s/v1/%s", (int)n, base, sig) >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static int resolve_endpoint(struct atel_otlp_settings *s, const struct atel_otlp_config *cfg,
			    const char *(*get_env)(const char *), char *err, size_t errlen)
{
	const char *gen = env_of(get_env, "OTEL_EXPORTER_OTLP_ENDPOINT");
	const char *sigenv[2] = { env_of(get_env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
				  env_of(get_env, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") };
	const char *cfgep = cfg && cfg->endpoint && *cfg->endpoint
				    ? cfg->endpoint
				    : "http://localhost:4318";
	struct atel_otlp_signal *sig[2] = { &s->traces, &s->metrics };
	char base[2048];

	/* config: a base URL, or a full URL for one signal whose base serves the other */
	snprintf(base, sizeof(base), "%s", cfgep);
	{
		size_t n = strlen(base);

		while (n > 1 && base[n - 1] == '/')
			base[--n] = '\0';
	}
	for (int i = 0; i < 2; i++) {
		const char *what = sigenv[i] ? (i ? "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
						  : "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
					     : gen ? "OTEL_EXPORTER_OTLP_ENDPOINT" : "opentelemetry.endpoint";
		int rc = 0;

		if (sigenv[i]) {
			if ((size_t)snprintf(sig[i]->url, sizeof(sig[i]->url), "%s", sigenv[i]) >= sizeof(sig[i]->url))
				rc = -ENAMETOOLONG;
		} else if (gen) {
			rc = join_url(sig[i]->url, sizeof(sig[i]->url), gen, SIG_NAME[i]);
		} else if (ends_with(base, "/v1/traces") || ends_with(base, "/v1/metrics")) {
			size_t cut = strlen(base) - (ends_with(base, "/v1/traces") ? 10 : 11);
			char prefix[2048];

			snprintf(prefix, sizeof(prefix), "%.*s", (int)cut, base);
			rc = join_url(sig[i]->url, sizeof(sig[i]->url), prefix, SIG_NAME[i]);
		} else {
			rc = join_url(sig[i]->url, sizeof(sig[i]->url), base, SIG_NAME[i]);
		}
		if (rc) {
			atel__seterr(err, errlen, "%s: URL too long (at most %zu bytes)", what, sizeof(sig[i]->url) - 1);
			return -EINVAL;
		}
		if (!valid_url(sig[i]->url)) {
			atel__seterr(err, errlen, "%s: expected an http:// or https:// URL with a host, got \"%.200s\"", what,
			       sig[i]->url);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_protocol(const char *v, bool *json, const char *what, char *err, size_t errlen)
{
	if (!strcmp(v, "http/protobuf") || !strcmp(v, "http")) {
		*json = false;
	} else if (!strcmp(v, "http/json")) {
		*json = true;
	} else if (!strcmp(v, "grpc")) {
		atel__seterr(err, errlen, "%s: \"grpc\" is not supported by ateld; use http/protobuf or http/json", what);
		return -EINVAL;
	} else {
		atel__seterr(err, errlen, "%s: expected http/protobuf or http/json, got \"%.40s\"", what, v);
		return -EINVAL;
	}
	return 0;
}

static int parse_compression(const char *v, bool *gzip, const char *what, char *err, size_t errlen)
{
	if (!strcmp(v, "gzip")) {
		*gzip = true;
	} else if (!strcmp(v, "none")) {
		*gzip = false;
	} else {
		atel__seterr(err, errlen, "%s: expected gzip or none, got \"%.40s\"", what, v);
		return -EINVAL;
	}
	return 0;
}

static int parse_timeout(const char *v, uint32_t *ms, const char *what, char *err, size_t errlen)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || end == v || *end || x < 1 || x > 600000 || *v == '-') {
		atel__seterr(err, errlen, "%s: expected milliseconds 1..600000, got \"%.40s\"", what, v);
		return -EINVAL;
	}
	*ms = (uint32_t)x;
	return 0;
}

int atel__otlp_settings_resolve(struct atel_otlp_settings *s, const struct atel_otlp_config *cfg,
				const char *(*get_env)(const char *name), char *err, size_t errlen)
{
	static const char *const SIGV[2] = { "TRACES", "METRICS" };
	struct atel_otlp_signal *sig[2];
	const char *v;
	char name[64];
	int rc;

	memset(s, 0, sizeof(*s));
	sig[0] = &s->traces;
	sig[1] = &s->metrics;
	if ((rc = resolve_endpoint(s, cfg, get_env, err, errlen)))
		goto fail;
	for (int i = 0; i < 2; i++) {
		struct atel_otlp_signal *g = sig[i];
		struct kv_target t = { g->headers, &g->nheaders, ATEL_OTLP_HEADERS_MAX, NULL };

		g->json = false;
		g->gzip = true;
		g->timeout_ms = 10000;
		if (cfg) {
			if (cfg->protocol &&
			    (rc = parse_protocol(cfg->protocol, &g->json, "opentelemetry.protocol", err,
						 errlen)))
				goto fail;
			if (cfg->compression &&
			    (rc = parse_compression(cfg->compression, &g->gzip,
						    "opentelemetry.compression", err, errlen)))
				goto fail;
			if (cfg->timeout_ms)
				g->timeout_ms = cfg->timeout_ms;
			for (uint32_t h = 0; h < cfg->nheaders && h < ATEL_CFG_HEADERS_MAX; h++) {
				if ((rc = kv_set(g->headers, &g->nheaders, ATEL_OTLP_HEADERS_MAX,
						 cfg->headers[h].key,
						 cfg->headers[h].value))) {
					atel__seterr(err, errlen, "opentelemetry.headers: %s",
					       rc == -E2BIG ? "too many headers" : strerror(-rc));
					goto fail;
				}
			}
		}
		/* the general variable, then the per-signal one (which wins) */
		for (int spec = 0; spec < 2; spec++) {
			const char *mid = spec ? SIGV[i] : NULL;

#define ENVNAME(suffix)                                                                              \
	(snprintf(name, sizeof(name), "OTEL_EXPORTER_OTLP_%s%s" suffix, mid ? mid : "", mid ? "_" : ""), \
	 name)
			if ((v = env_of(get_env, ENVNAME("PROTOCOL"))) &&
			    (rc = parse_protocol(v, &g->json, name, err, errlen)))
				goto fail;
			if ((v = env_of(get_env, ENVNAME("COMPRESSION"))) &&
			    (rc = parse_compression(v, &g->gzip, name, err, errlen)))
				goto fail;
			if ((v = env_of(get_env, ENVNAME("TIMEOUT"))) &&
			    (rc = parse_timeout(v, &g->timeout_ms, name, err, errlen)))
				goto fail;
			if ((v = env_of(get_env, ENVNAME("HEADERS"))) &&
			    (rc = atel__otlp_parse_kv_list(v, strlen(v), true, name, kv_add_cb, &t, err, errlen)))
				goto fail;
#undef ENVNAME
		}
	}
	/* resource: config service name < OTEL_RESOURCE_ATTRIBUTES service.name < OTEL_SERVICE_NAME */
	s->service_name = xstrdup(cfg && cfg->service_name && *cfg->service_name
					  ? cfg->service_name
					  : "atel");
	if (!s->service_name) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((v = env_of(get_env, "OTEL_RESOURCE_ATTRIBUTES"))) {
		struct kv_target t = { s->res_attrs, &s->nres_attrs, ATEL_OTLP_RES_ATTRS_MAX, &s->service_name };

		if ((rc = atel__otlp_parse_kv_list(v, strlen(v), false, "OTEL_RESOURCE_ATTRIBUTES", kv_add_cb, &t,
						   err, errlen)))
			goto fail;
	}
	if ((v = env_of(get_env, "OTEL_SERVICE_NAME"))) {
		char *sn = strdup(v);

		if (!sn) {
			rc = -ENOMEM;
			goto fail;
		}
		free(s->service_name);
		s->service_name = sn;
	}
	s->max_batch_items = cfg && cfg->max_batch_items ? cfg->max_batch_items : 512;
	s->max_batch_bytes = cfg && cfg->max_batch_bytes ? cfg->max_batch_bytes
								       : 4u << 20;
	return 0;
fail:
	if (rc == -ENOMEM)
		atel__seterr(err, errlen, "opentelemetry: out of memory");
	atel__otlp_settings_free(s);
	return rc == -ENOMEM ? rc : -EINVAL;
}

void atel__otlp_settings_free(struct atel_otlp_settings *s)
{
	if (!s)
		return;
	kv_free(s->traces.headers, &s->traces.nheaders);
	kv_free(s->metrics.headers, &s->metrics.nheaders);
	kv_free(s->res_attrs, &s->nres_attrs);
	free(s->service_name);
	s->service_name = NULL;
}

static int settings_copy(struct atel_otlp_settings *dst, const struct atel_otlp_settings *src)
{
	const struct atel_otlp_signal *ss[2] = { &src->traces, &src->metrics };
	struct atel_otlp_signal *ds[2] = { &dst->traces, &dst->metrics };

	memset(dst, 0, sizeof(*dst));
	for (int i = 0; i < 2; i++) {
		memcpy(ds[i]->url, ss[i]->url, sizeof(ds[i]->url));
		ds[i]->json = ss[i]->json;
		ds[i]->gzip = ss[i]->gzip;
		ds[i]->timeout_ms = ss[i]->timeout_ms ? ss[i]->timeout_ms : 10000;
		for (uint32_t h = 0; h < ss[i]->nheaders; h++)
			if (kv_set(ds[i]->headers, &ds[i]->nheaders, ATEL_OTLP_HEADERS_MAX, ss[i]->headers[h].key,
				   ss[i]->headers[h].value))
				goto oom;
	}
	for (uint32_t h = 0; h < src->nres_attrs; h++)
		if (kv_set(dst->res_attrs, &dst->nres_attrs, ATEL_OTLP_RES_ATTRS_MAX, src->res_attrs[h].key,
			   src->res_attrs[h].value))
			goto oom;
	if (!(dst->service_name = xstrdup(src->service_name ? src->service_name : "atel")))
		goto oom;
	dst->max_batch_items = src->max_batch_items ? src->max_batch_items : 512;
	dst->max_batch_bytes = src->max_batch_bytes ? src->max_batch_bytes : 4u << 20;
	return 0;
oom:
	atel__otlp_settings_free(dst);
	return -ENOMEM;
}

/* ------------------------------------------------------------------------ */
/* cursor file                                                              */

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 24);
}

int atel__otlp_cursor_load(const char *path, struct atel_log_pos *resume, struct atel_log_pos *acked,
			   uint8_t (**pending)[24], uint32_t *npending)
{
	FILE *f = fopen(path, "r");
	unsigned long long a[6];
	unsigned int idx[2], n = 0;
	uint8_t(*ids)[24] = NULL;
	char line[128];
	int rc = -EINVAL;

	if (pending)
		*pending = NULL;
	if (npending)
		*npending = 0;
	if (!f)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fscanf(f, "atel-otlp-cursor 1 resume %llu %llu %u acked %llu %llu %u pending %u ", &a[0], &a[1],
		   &idx[0], &a[3], &a[4], &idx[1], &n) != 7 ||
	    n > 16u << 20)
		goto out;
	if (n && !(ids = malloc((size_t)n * 24))) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		if (!fgets(line, sizeof(line), f) || strlen(line) < 48)
			goto out;
		if (atel__unhex(line, 24, ids[i], true))
			goto out;
	}
	if (!fgets(line, sizeof(line), f) || strcmp(line, "end\n"))
		goto out; /* torn or truncated: the rename makes this unlikely, but check */
	if (n)
		qsort(ids, n, 24, id_cmp);
	*resume = (struct atel_log_pos){ a[0], a[1], idx[0] };
	*acked = (struct atel_log_pos){ a[3], a[4], idx[1] };
	if (pending) {
		*pending = ids;
		ids = NULL;
	}
	if (npending)
		*npending = n;
	rc = 0;
out:
	free(ids);
	fclose(f);
	return rc;
}

int atel__otlp_cursor_save(const char *path, const struct atel_log_pos *resume, const struct atel_log_pos *acked,
			   const uint8_t (*pending)[24], uint32_t npending)
{
	char line[64], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (!(f = open_memstream(&text, &len)))
		return -errno;
	fprintf(f, "atel-otlp-cursor 1\nresume %" PRIu64 " %" PRIu64 " %u\nacked %" PRIu64 " %" PRIu64
		   " %u\npending %u\n",
		resume->file_seq, resume->frame_off, resume->rec_idx, acked->file_seq, acked->frame_off, acked->rec_idx,
		npending);
	for (uint32_t i = 0; i < npending; i++) {
		atel__hex(pending[i], 24, line);
		line[48] = '\n';
		fwrite(line, 1, 49, f);
	}
	fputs("end\n", f);
	rc = ferror(f) ? -ENOMEM : 0;
	if (fclose(f) && !rc)
		rc = -ENOMEM;
	if (!rc)
		rc = atel__write_file_atomic(path, text, len, 0600);
	free(text);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* span assembly                                                            */

struct ev_rec {
	char *name;
	uint64_t ts;
	struct atel_otlp_attr *attrs;
	uint32_t nattrs, cattrs;
};

struct span_rec {
	uint8_t trace_id[16], span_id[8], parent_id[8];
	uint8_t kind, flags, status;
	bool started, ended, errored, ready;
	char *name, *status_msg, *err_msg;
	uint64_t start_ns, end_ns;
	int32_t pid;
	uint32_t ring, generation;
	struct atel_otlp_attr *attrs;
	uint32_t nattrs, cattrs;
	struct ev_rec *events;
	uint32_t nevents, cevents;
	struct atel_log_pos first_pos, done_pos;
	uint64_t created_at;            /* records read when created */
	struct span_rec *hnext;         /* hash chain */
	struct span_rec *lprev, *lnext; /* live list, creation (= log) order */
	struct span_rec *rnext;         /* ready queue, completion order */
};

#define HASH_BITS 16

struct atel_otlp {
	struct atel_daemon *d;
	struct atel_agg *agg;
	struct atel_otlp_settings st;
	struct atel_otlp_source src;
	void *src_handle;
	bool do_traces, do_metrics;
	uint32_t interval_ms, poll_ms, backoff_base_ms, backoff_max_ms, metrics_max_attempts, open_max, orphan_window;
	char cursor_path[4200];
	char segments_dir[4096];

	/* threading */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;

	/* span state (exporter thread only) */
	struct span_rec *hash[1u << HASH_BITS];
	struct span_rec *live_head, *live_tail;
	struct span_rec *ready_head, *ready_tail;
	uint32_t nlive, nready;
	struct atel_log_pos read_pos, acked, saved_resume, saved_acked;
	/* After a restart, records up to `acked` belong to acknowledged spans
	 * unless their span is in this sorted set (trace id + span id) of spans
	 * that were held, unacknowledged, when the cursor was saved. */
	uint8_t (*pend)[24];
	uint32_t npend;
	bool replay;
	bool src_open, log_at_end;
	uint64_t nread;
	uint64_t last_save_ns, last_read_warn_ns;

	/* delivery */
	CURL *curl[2];
	struct curl_slist *hdrs[2];
	char curl_err[CURL_ERROR_SIZE];
	struct atel_buf enc, resp;
	char retry_after[64];
	struct atel_otlp_attr *res_attrs;
	struct atel_otlp_resource res;
	uint64_t rnd;

	/* traces job: the first `tr_n` ready spans, encoded in tr_body */
	struct atel_buf tr_body;
	uint32_t tr_n;
	bool tr_pending;
	unsigned tr_attempt;
	uint64_t tr_next_ns;

	/* metrics job */
	struct atel_agg_snapshot *snap;
	uint32_t m_first, m_count;           /* families of the current chunk */
	struct atel_buf m_body;
	uint64_t m_items;
	bool m_pending;
	unsigned m_attempt;
	uint64_t m_next_ns, m_due_ns;

	/* stats (relaxed atomics) */
	_Atomic uint64_t s_attempts[2], s_retries[2], s_acked[2], s_dropped[2];
	_Atomic uint64_t s_spans_acked, s_spans_rejected, s_points_rejected, s_spans_dropped, s_skipped,
		s_producer_exited, s_evicted, s_orphans, s_open, s_last_delay, s_metrics_exports;
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static uint32_t span_hash(const uint8_t *trace_id, const uint8_t *span_id)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 8; i++)
		h = (h ^ span_id[i]) * 1099511628211ull;
	for (int i = 0; i < 16; i += 4)
		h = (h ^ trace_id[i]) * 1099511628211ull;
	return (uint32_t)(h >> (64 - HASH_BITS));
}

static void attrs_free(struct atel_otlp_attr *a, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free((char *)a[i].key);
		if (a[i].v.vtype == ATEL_VT_STR)
			free((char *)a[i].v.s);
	}
	free(a);
}

static void span_free(struct span_rec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->status_msg);
	free(s->err_msg);
	attrs_free(s->attrs, s->nattrs);
	for (uint32_t i = 0; i < s->nevents; i++) {
		free(s->events[i].name);
		attrs_free(s->events[i].attrs, s->events[i].nattrs);
	}
	free(s->events);
	free(s);
}

static struct span_rec *span_find(struct atel_otlp *o, const uint8_t *tid, const uint8_t *sid)
{
	for (struct span_rec *s = o->hash[span_hash(tid, sid)]; s; s = s->hnext)
		if (!memcmp(s->span_id, sid, 8) && !memcmp(s->trace_id, tid, 16))
			return s;
	return NULL;
}

/* Removes s from the hash and the live list (not from the ready queue) and frees it. */
static void span_remove(struct atel_otlp *o, struct span_rec *s)
{
	struct span_rec **pp = &o->hash[span_hash(s->trace_id, s->span_id)];

	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		o->live_head = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	else
		o->live_tail = s->lprev;
	o->nlive--;
	if (!s->ready)
		atomic_store_explicit(&o->s_open, o->nlive - o->nready, memory_order_relaxed);
	span_free(s);
}

static void span_complete(struct atel_otlp *o, struct span_rec *s, const struct atel_log_pos *at);

static struct span_rec *span_get(struct atel_otlp *o, const uint8_t *tid, const uint8_t *sid,
				 const struct atel_log_pos *before)
{
	struct span_rec *s = span_find(o, tid, sid);
	uint32_t h;

	if (s)
		return s->ready ? NULL : s; /* records after completion are ignored */
	if (o->nlive - o->nready >= o->open_max) {
		/* evict the oldest open span: finish it as an error, or drop a placeholder */
		struct span_rec *v = o->live_head;

		while (v && v->ready)
			v = v->lnext;
		if (v) {
			stat_add(&o->s_evicted, 1);
			if (v->started) {
				free(v->status_msg);
				v->status_msg = xstrdup("atel: open-span limit reached; span closed by the exporter");
				v->status = 2;
				v->end_ns = v->start_ns;
				v->ended = true;
				span_complete(o, v, before);
			} else {
				span_remove(o, v);
			}
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	memcpy(s->trace_id, tid, 16);
	memcpy(s->span_id, sid, 8);
	s->first_pos = *before;
	s->created_at = o->nread;
	h = span_hash(tid, sid);
	s->hnext = o->hash[h];
	o->hash[h] = s;
	s->lprev = o->live_tail;
	if (o->live_tail)
		o->live_tail->lnext = s;
	else
		o->live_head = s;
	o->live_tail = s;
	o->nlive++;
	atomic_store_explicit(&o->s_open, o->nlive - o->nready, memory_order_relaxed);
	return s;
}

static void span_complete(struct atel_otlp *o, struct span_rec *s, const struct atel_log_pos *at)
{
	s->done_pos = *at;
	if (pos_cmp(&s->done_pos, &o->acked) <= 0) {
		/* delivered before a restart: re-read from the resume point */
		stat_add(&o->s_skipped, 1);
		span_remove(o, s);
		return;
	}
	s->ready = true;
	s->rnext = NULL;
	if (o->ready_tail)
		o->ready_tail->rnext = s;
	else
		o->ready_head = s;
	o->ready_tail = s;
	o->nready++;
	atomic_store_explicit(&o->s_open, o->nlive - o->nready, memory_order_relaxed);
}

static int attr_copy(struct atel_otlp_attr *dst, const char *key, const struct atel_attr_value *v)
{
	memset(dst, 0, sizeof(*dst));
	dst->v = *v;
	dst->key = xstrdup(key);
	if (v->vtype == ATEL_VT_STR)
		dst->v.s = xstrdup(v->s);
	else
		dst->v.s = NULL;
	if (!dst->key || (v->vtype == ATEL_VT_STR && !dst->v.s)) {
		free((char *)dst->key);
		free((char *)dst->v.s);
		return -ENOMEM;
	}
	return 0;
}

/* Sets (replaces) key in a span's attributes, or appends to an event's. */
static void attr_put(struct atel_otlp_attr **arr, uint32_t *n, uint32_t *cap, const char *key,
		     const struct atel_attr_value *v, bool replace)
{
	struct atel_otlp_attr a;

	if (replace) {
		for (uint32_t i = 0; i < *n; i++) {
			if (!strcmp((*arr)[i].key, key)) {
				if (attr_copy(&a, key, v))
					return;
				free((char *)(*arr)[i].key);
				if ((*arr)[i].v.vtype == ATEL_VT_STR)
					free((char *)(*arr)[i].v.s);
				(*arr)[i] = a;
				return;
			}
		}
	}
	if (*n >= SPAN_ATTRS_MAX)
		return;
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 4;
		struct atel_otlp_attr *p = realloc(*arr, nc * sizeof(*p));

		if (!p)
			return;
		*arr = p;
		*cap = nc;
	}
	if (!attr_copy(&(*arr)[*n], key, v))
		(*n)++;
}

static struct ev_rec *event_add(struct span_rec *s, const char *name, uint64_t ts)
{
	struct ev_rec *e;

	if (s->nevents >= SPAN_EVENTS_MAX)
		return NULL;
	if (s->nevents == s->cevents) {
		uint32_t nc = s->cevents ? s->cevents * 2 : 2;
		struct ev_rec *p = realloc(s->events, nc * sizeof(*p));

		if (!p)
			return NULL;
		s->events = p;
		s->cevents = nc;
	}
	e = &s->events[s->nevents];
	memset(e, 0, sizeof(*e));
	if (!(e->name = xstrdup(name)))
		return NULL;
	e->ts = ts;
	s->nevents++;
	return e;
}

/* Applies one log event. before: position of the record, after: just past it. */
static bool replay_skip(struct atel_otlp *o, const struct atel_event *ev, const struct atel_log_pos *after)
{
	const uint8_t *tid, *sid;
	uint8_t key[24];

	if (pos_cmp(after, &o->acked) > 0) { /* past the acknowledged part */
		o->replay = false;
		free(o->pend);
		o->pend = NULL;
		o->npend = 0;
		return false;
	}
	switch (ev->kind) {
	case ATEL_EV_SPAN_START: tid = ev->span_start.trace_id; sid = ev->span_start.span_id; break;
	case ATEL_EV_SPAN_ATTR: tid = ev->span_attr.trace_id; sid = ev->span_attr.span_id; break;
	case ATEL_EV_SPAN_EVENT: tid = ev->span_event.trace_id; sid = ev->span_event.span_id; break;
	case ATEL_EV_SPAN_ERROR: tid = ev->span_error.trace_id; sid = ev->span_error.span_id; break;
	case ATEL_EV_SPAN_END: tid = ev->span_end.trace_id; sid = ev->span_end.span_id; break;
	default: return false;
	}
	memcpy(key, tid, 16);
	memcpy(key + 16, sid, 8);
	if (o->npend && bsearch(key, o->pend, o->npend, 24, id_cmp))
		return false;
	if (ev->kind == ATEL_EV_SPAN_START)
		stat_add(&o->s_skipped, 1);
	return true;
}

static void span_apply(struct atel_otlp *o, const struct atel_event *ev, const struct atel_log_pos *before,
		       const struct atel_log_pos *after)
{
	struct span_rec *s;

	if (o->replay && replay_skip(o, ev, after))
		return; /* a record of a span acknowledged before the restart */
	switch (ev->kind) {
	case ATEL_EV_SPAN_START:
		if (!(s = span_get(o, ev->span_start.trace_id, ev->span_start.span_id, before)) || s->started)
			return;
		memcpy(s->parent_id, ev->span_start.parent_id, 8);
		s->kind = ev->span_start.kind <= 5 ? ev->span_start.kind : 0;
		s->flags = ev->span_start.flags;
		free(s->name);
		s->name = xstrdup(ev->span_start.name);
		s->start_ns = ev->ts_ns;
		s->pid = ev->pid;
		s->ring = ev->ring;
		s->generation = ev->generation;
		s->started = true;
		if (s->ended)
			span_complete(o, s, after);
		return;
	case ATEL_EV_SPAN_ATTR:
		if (!(s = span_get(o, ev->span_attr.trace_id, ev->span_attr.span_id, before)))
			return;
		if (ev->span_attr.event_attr && s->nevents) {
			struct ev_rec *e = &s->events[s->nevents - 1];

			attr_put(&e->attrs, &e->nattrs, &e->cattrs, ev->span_attr.key, &ev->span_attr.v, false);
		} else {
			attr_put(&s->attrs, &s->nattrs, &s->cattrs, ev->span_attr.key, &ev->span_attr.v, true);
		}
		return;
	case ATEL_EV_SPAN_EVENT:
		if ((s = span_get(o, ev->span_event.trace_id, ev->span_event.span_id, before)))
			event_add(s, ev->span_event.name, ev->ts_ns);
		return;
	case ATEL_EV_SPAN_ERROR: {
		struct ev_rec *e;
		struct atel_attr_value t = { .vtype = ATEL_VT_STR, .s = ev->span_error.type };
		struct atel_attr_value m = { .vtype = ATEL_VT_STR, .s = ev->span_error.msg };

		if (!(s = span_get(o, ev->span_error.trace_id, ev->span_error.span_id, before)))
			return;
		s->errored = true;
		if (!s->err_msg && ev->span_error.msg && *ev->span_error.msg)
			s->err_msg = xstrdup(ev->span_error.msg);
		if ((e = event_add(s, "exception", ev->ts_ns))) {
			attr_put(&e->attrs, &e->nattrs, &e->cattrs, "exception.type", &t, false);
			attr_put(&e->attrs, &e->nattrs, &e->cattrs, "exception.message", &m, false);
		}
		return;
	}
	case ATEL_EV_SPAN_END:
		if (!(s = span_get(o, ev->span_end.trace_id, ev->span_end.span_id, before)) || s->ended)
			return;
		s->end_ns = ev->ts_ns;
		s->status = ev->span_end.status <= 2 ? ev->span_end.status : 0;
		free(s->status_msg);
		s->status_msg = xstrdup(ev->span_end.msg);
		s->ended = true;
		if (s->started)
			span_complete(o, s, after);
		return;
	case ATEL_EV_DEATH: {
		struct span_rec *n;

		for (s = o->live_head; s; s = n) {
			n = s->lnext;
			if (s->ready)
				continue;
			if (ev->death.pid ? s->pid != ev->death.pid
					  : (s->ring != ev->ring || s->generation != ev->death.generation))
				continue;
			if (!s->started) {
				stat_add(&o->s_orphans, 1);
				span_remove(o, s);
				continue;
			}
			s->end_ns = ev->ts_ns > s->start_ns ? ev->ts_ns : s->start_ns;
			s->status = 2;
			free(s->status_msg);
			s->status_msg = xstrdup("producer exited");
			s->ended = true;
			stat_add(&o->s_producer_exited, 1);
			span_complete(o, s, after);
		}
		return;
	}
	default:
		return;
	}
}

/* Drops placeholders (records of spans whose START never came) older than the window. */
static void expire_orphans(struct atel_otlp *o)
{
	struct span_rec *s, *n;

	for (s = o->live_head; s; s = n) {
		n = s->lnext;
		if (s->created_at + o->orphan_window > o->nread)
			break; /* the list is in creation order */
		if (!s->started && !s->ready) {
			stat_add(&o->s_orphans, 1);
			span_remove(o, s);
		}
	}
}

static struct atel_log_pos resume_pos(const struct atel_otlp *o)
{
	return o->live_head ? o->live_head->first_pos : o->read_pos;
}

static void cursor_persist(struct atel_otlp *o, bool force)
{
	struct atel_log_pos r = resume_pos(o);
	int rc;

	if (!o->cursor_path[0])
		return;
	if (!force && !pos_cmp(&r, &o->saved_resume) && !pos_cmp(&o->acked, &o->saved_acked))
		return;
	{
		uint8_t(*ids)[24] = NULL;
		uint32_t n = 0;
		struct span_rec *s;

		/* held spans with records before `acked` (only they are ambiguous on replay) */
		for (s = o->live_head; s && pos_cmp(&s->first_pos, &o->acked) < 0; s = s->lnext)
			n++;
		if (n && !(ids = malloc((size_t)n * 24)))
			return;
		n = 0;
		for (s = o->live_head; s && pos_cmp(&s->first_pos, &o->acked) < 0; s = s->lnext, n++) {
			memcpy(ids[n], s->trace_id, 16);
			memcpy(ids[n] + 16, s->span_id, 8);
		}
		rc = atel__otlp_cursor_save(o->cursor_path, &r, &o->acked, (const uint8_t(*)[24])ids, n);
		free(ids);
	}
	if (rc) {
		atel__log(o->d, ATEL_LOG_WARN, "otlp: cannot save cursor %s: %s", o->cursor_path, strerror(-rc));
		return;
	}
	o->saved_resume = r;
	o->saved_acked = o->acked;
	o->last_save_ns = atel__mono_ns();
}

/* ------------------------------------------------------------------------ */
/* log source                                                               */

struct logsrc {
	const char *dir;
	struct atel_daemon *d;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct logsrc *ls = arg;

	atel__log(ls->d, ATEL_LOG_WARN, "otlp: %s at offset %" PRIu64 ": %s (skipped)", file, offset, why);
}

static int logsrc_open(void *arg, const struct atel_log_pos *start, void **handle)
{
	struct logsrc *ls = arg;
	struct atel_log_reader_opts ro = { .segments_dir = ls->dir, .start = *start, .follow = true,
					   .on_corrupt = on_corrupt, .arg = ls };

	return atel__log_open((struct atel_log_reader **)handle, &ro);
}

static int logsrc_next(void *handle, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	return atel__log_next(handle, ev, pos_after);
}

static void logsrc_close(void *handle)
{
	atel__log_close(handle);
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */

/* Masks every header value (>= 4 chars) that occurs in s. */
static void redact(const struct atel_otlp *o, char *s)
{
	const struct atel_otlp_signal *sig[2] = { &o->st.traces, &o->st.metrics };

	for (int i = 0; i < 2; i++) {
		for (uint32_t h = 0; h < sig[i]->nheaders; h++) {
			const char *v = sig[i]->headers[h].value;
			size_t n = strlen(v);
			char *p;

			if (n < 4)
				continue;
			while ((p = strstr(s, v)))
				memset(p, '*', n);
		}
	}
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct atel_otlp *o = arg;
	size_t n = sz * nm, room = RESP_MAX > o->resp.len ? RESP_MAX - o->resp.len : 0;

	if (n > room)
		n = room; /* keep the first RESP_MAX bytes; accept the rest */
	if (n)
		atel__buf_put(&o->resp, p, n); /* NUL-terminated; on failure the response stays short */
	return sz * nm;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct atel_otlp *o = arg;
	size_t n = sz * nm;

	if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		size_t m = n - 12 < sizeof(o->retry_after) - 1 ? n - 12 : sizeof(o->retry_after) - 1;

		memcpy(o->retry_after, p + 12, m);
		o->retry_after[m] = '\0';
	}
	return n;
}

/* gzip at level 1: OTLP payloads are repetitive enough that level 1 keeps
 * ~80% of level 6's saving (1000 spans: 204 KB -> 16 KB vs 14 KB) at a tenth
 * of the CPU (bench: atel-bench --only otlp). */
static int gzip_body(struct atel_buf *out, const uint8_t *in, size_t len)
{
	z_stream zs;
	uLong bound;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&zs, (uLong)len) + 32;
	atel__buf_reset(out);
	if (!atel__buf_reserve(out, bound)) {
		deflateEnd(&zs);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)bound;
	rc = deflate(&zs, Z_FINISH);
	out->len = zs.total_out;
	deflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

static int http_setup(struct atel_otlp *o, int which, char *err, size_t errlen)
{
	const struct atel_otlp_signal *g = which ? &o->st.metrics : &o->st.traces;
	struct curl_slist *l = NULL, *n;
	char line[8192];
	CURL *c = curl_easy_init();

	if (!c) {
		atel__seterr(err, errlen, "otlp: curl_easy_init failed");
		return -ENOMEM;
	}
	n = curl_slist_append(l, g->json ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
	l = n ? n : l;
	if (g->gzip && (n = curl_slist_append(l, "Content-Encoding: gzip")))
		l = n;
	if ((n = curl_slist_append(l, "Expect:"))) /* no 100-continue round trip */
		l = n;
	for (uint32_t h = 0; h < g->nheaders; h++) {
		snprintf(line, sizeof(line), "%s: %s", g->headers[h].key, g->headers[h].value);
		if ((n = curl_slist_append(l, line)))
			l = n;
	}
	memset(line, 0, sizeof(line)); /* do not leave a token on the stack */
	o->hdrs[which] = l;
	curl_easy_setopt(c, CURLOPT_URL, g->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)g->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)g->timeout_ms);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "atel/" ATEL_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, o);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, o);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->curl_err);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	o->curl[which] = c;
	return 0;
}

struct http_result {
	long status;          /* HTTP status, or 0 on a transport error */
	int err;              /* -errno-ish transport error (0 if an HTTP answer came) */
	bool retryable;
	uint32_t retry_after_ms;
	bool has_retry_after;
	char msg[256];        /* redacted */
};

static void http_post(struct atel_otlp *o, int which, const struct atel_buf *body, struct http_result *r)
{
	CURL *c = o->curl[which];
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	atel__buf_reset(&o->resp);
	o->retry_after[0] = '\0';
	o->curl_err[0] = '\0';
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		r->err = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			 : cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
			 : cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH
							  : -EIO;
		r->retryable = cc != CURLE_URL_MALFORMAT && cc != CURLE_UNSUPPORTED_PROTOCOL &&
			       cc != CURLE_OUT_OF_MEMORY;
		snprintf(r->msg, sizeof(r->msg), "%s", o->curl_err[0] ? o->curl_err : curl_easy_strerror(cc));
		redact(o, r->msg);
		return;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (o->retry_after[0]) {
		uint32_t ms;

		if (!atel__otlp_parse_retry_after(o->retry_after, strlen(o->retry_after), (uint64_t)time(NULL), &ms)) {
			r->retry_after_ms = ms;
			r->has_retry_after = true;
		}
	}
	r->retryable = r->status == 429 || r->status == 502 || r->status == 503 || r->status == 504;
}

/* One attempt for the job of `which`. @return 1 done (acked or dropped), 0 retry scheduled. */
static int attempt(struct atel_otlp *o, int which, const struct atel_buf *body, uint64_t items,
		   unsigned *attempt_no, uint64_t *next_ns, int64_t *rejected, bool *acked, bool final_pass)
{
	const struct atel_otlp_signal *g = which ? &o->st.metrics : &o->st.traces;
	struct atel_export_row row;
	struct http_result r;
	char msg[256] = "";

	*acked = false;
	*rejected = 0;
	stat_add(&o->s_attempts[which], 1);
	http_post(o, which, body, &r);
	memset(&row, 0, sizeof(row));
	row.ts_ns = atel__now_ns();
	snprintf(row.exporter, sizeof(row.exporter), "otlp");
	snprintf(row.signal, sizeof(row.signal), "%s", SIG_NAME[which]);
	row.items = items;
	row.bytes = body->len;
	row.status = r.status ? (int)r.status : r.err;

	if (r.status >= 200 && r.status < 300) {
		int prc = atel__otlp_parse_response(o->resp.data, o->resp.len, g->json, rejected, msg, sizeof(msg));

		redact(o, msg);
		if (prc) {
			/* the data was accepted (2xx); an unreadable body is only worth a warning */
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s", SIG_NAME[which], msg);
			*rejected = 0;
			msg[0] = '\0';
		}
		if (*rejected > 0) {
			snprintf(row.error, sizeof(row.error), "partial success: %" PRId64 " rejected: %s", *rejected,
				 msg[0] ? msg : "(no message)");
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: collector rejected %" PRId64 " of %" PRIu64 " %s: %s",
				  SIG_NAME[which], *rejected, items, which ? "data points" : "spans",
				  msg[0] ? msg : "(no message)");
		} else if (msg[0]) {
			atel__log(o->d, ATEL_LOG_INFO, "otlp: %s: collector says: %s", SIG_NAME[which], msg);
		}
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, true, NULL);
		stat_add(&o->s_acked[which], 1);
		*acked = true;
		return 1;
	}
	if (r.status)
		snprintf(msg, sizeof(msg), "HTTP %ld from %.120s", r.status, g->url);
	else
		snprintf(msg, sizeof(msg), "%.120s (%.120s)", r.msg, g->url);
	if (r.status && o->resp.len) {
		char body_msg[160];
		size_t n = o->resp.len < 120 ? o->resp.len : 120, k = 0;

		for (size_t i = 0; i < n; i++)
			body_msg[k++] = ((unsigned char)o->resp.data[i] >= 0x20 && (unsigned char)o->resp.data[i] < 0x7f)
					       ? o->resp.data[i]
					       : ' ';
		body_msg[k] = '\0';
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ": %s", body_msg);
	}
	redact(o, msg);
	if (!r.retryable || final_pass || (which == SIG_METRICS && *attempt_no + 1 >= o->metrics_max_attempts)) {
		bool keep = r.retryable && final_pass && which == SIG_TRACES;

		snprintf(row.error, sizeof(row.error), "%s; %s", msg,
			 !r.retryable ? "not retried" : final_pass ? "shutting down" : "giving up");
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, false, row.error);
		if (keep) {
			/* the cursor stays before these spans: the next start sends them */
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s: %" PRIu64 " spans stay in the log for the next start",
				  SIG_NAME[which], row.error, items);
			return 0;
		}
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: %s: %s: dropping %" PRIu64 " %s", SIG_NAME[which], row.error,
			  items, which ? "data points" : "spans");
		if (!final_pass || !r.retryable) {
			stat_add(&o->s_dropped[which], 1);
			return 1;
		}
		return 0;
	}
	{
		uint32_t delay;

		o->rnd = o->rnd * 6364136223846793005ull + 1442695040888963407ull;
		delay = atel__otlp_backoff_ms(*attempt_no + 1, r.has_retry_after ? r.retry_after_ms : 0,
					      o->backoff_base_ms, o->backoff_max_ms, o->rnd >> 17);
		(*attempt_no)++;
		*next_ns = atel__mono_ns() + (uint64_t)delay * 1000000ull;
		atomic_store_explicit(&o->s_last_delay, delay, memory_order_relaxed);
		stat_add(&o->s_retries[which], 1);
		snprintf(row.error, sizeof(row.error), "%s; retry %u in %u ms%s", msg, *attempt_no, delay,
			 r.has_retry_after ? " (Retry-After)" : "");
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, false, row.error);
		atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s", SIG_NAME[which], row.error);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* jobs                                                                     */

static int finish_body(struct atel_otlp *o, bool gz, struct atel_buf *dst)
{
	if (o->enc.oom)
		return -ENOMEM;
	if (gz)
		return gzip_body(dst, (const uint8_t *)o->enc.data, o->enc.len);
	atel__buf_reset(dst);
	atel__buf_put(dst, o->enc.data, o->enc.len);
	return dst->oom ? -ENOMEM : 0;
}

static int encode_spans(struct atel_otlp *o, uint32_t n)
{
	struct atel_otlp_span *arr = calloc(n ? n : 1, sizeof(*arr));
	struct atel_otlp_event *evs = NULL;
	uint32_t nev = 0, k = 0;
	struct span_rec *s;
	int rc;

	if (!arr)
		return -ENOMEM;
	for (s = o->ready_head, k = 0; s && k < n; s = s->rnext, k++)
		nev += s->nevents;
	if (nev && !(evs = calloc(nev, sizeof(*evs)))) {
		free(arr);
		return -ENOMEM;
	}
	nev = 0;
	for (s = o->ready_head, k = 0; s && k < n; s = s->rnext, k++) {
		struct atel_otlp_span *a = &arr[k];

		memcpy(a->trace_id, s->trace_id, 16);
		memcpy(a->span_id, s->span_id, 8);
		memcpy(a->parent_id, s->parent_id, 8);
		a->kind = s->kind;
		a->flags = s->flags;
		a->name = s->name ? s->name : "";
		a->start_ns = s->start_ns;
		a->end_ns = s->end_ns;
		a->status = s->errored ? 2 : s->status;
		a->status_msg = s->status_msg && *s->status_msg ? s->status_msg : s->errored ? s->err_msg : NULL;
		a->attrs = s->attrs;
		a->nattrs = s->nattrs;
		a->events = evs ? evs + nev : NULL;
		a->nevents = s->nevents;
		for (uint32_t i = 0; i < s->nevents; i++, nev++) {
			evs[nev].name = s->events[i].name;
			evs[nev].ts_ns = s->events[i].ts;
			evs[nev].attrs = s->events[i].attrs;
			evs[nev].nattrs = s->events[i].nattrs;
		}
	}
	o->enc.len = 0;
	o->enc.oom = false;
	rc = atel__otlp_encode_spans(&o->enc, o->st.traces.json ? ATEL_OTLP_JSON : ATEL_OTLP_PROTOBUF, &o->res, arr, k);
	free(evs);
	free(arr);
	return rc;
}

/* Builds the traces job from the head of the ready queue. @return 0 or -errno. */
static int traces_job(struct atel_otlp *o)
{
	uint32_t n = o->nready < o->st.max_batch_items ? o->nready : o->st.max_batch_items;
	int rc;

	for (;;) {
		if ((rc = encode_spans(o, n)))
			return rc;
		if (o->enc.len <= o->st.max_batch_bytes || n == 1)
			break;
		n = n / 2; /* over the byte bound: halve the batch */
	}
	if ((rc = finish_body(o, o->st.traces.gzip, &o->tr_body)))
		return rc;
	o->tr_n = n;
	o->tr_pending = true;
	o->tr_attempt = 0;
	o->tr_next_ns = 0;
	return 0;
}

/* Releases the first tr_n ready spans (acknowledged or dropped). */
static void traces_release(struct atel_otlp *o)
{
	for (uint32_t i = 0; i < o->tr_n && o->ready_head; i++) {
		struct span_rec *s = o->ready_head;

		o->ready_head = s->rnext;
		if (!o->ready_head)
			o->ready_tail = NULL;
		o->nready--;
		if (pos_cmp(&s->done_pos, &o->acked) > 0)
			o->acked = s->done_pos;
		span_remove(o, s);
	}
	o->tr_pending = false;
	o->tr_n = 0;
}

static void traces_try(struct atel_otlp *o, bool final_pass)
{
	int64_t rejected;
	bool acked;

	if (!attempt(o, SIG_TRACES, &o->tr_body, o->tr_n, &o->tr_attempt, &o->tr_next_ns, &rejected, &acked,
		     final_pass))
		return;
	if (acked) {
		stat_add(&o->s_spans_acked, o->tr_n);
		stat_add(&o->s_spans_rejected, (uint64_t)rejected);
	} else {
		stat_add(&o->s_spans_dropped, o->tr_n);
	}
	traces_release(o);
	cursor_persist(o, false);
}

static int metrics_encode_chunk(struct atel_otlp *o)
{
	const struct atel_agg_snapshot *s = o->snap;
	uint32_t count = s->nfamilies - o->m_first;
	int rc;

	for (;;) {
		o->enc.len = 0;
		o->enc.oom = false;
		if ((rc = atel__otlp_encode_metrics(&o->enc, o->st.metrics.json ? ATEL_OTLP_JSON : ATEL_OTLP_PROTOBUF,
						    &o->res, s, o->m_first, count)))
			return rc;
		if (o->enc.len <= o->st.max_batch_bytes || count <= 1)
			break;
		count /= 2;
	}
	o->m_count = count;
	o->m_items = atel__otlp_count_points(s, o->m_first, count);
	if ((rc = finish_body(o, o->st.metrics.gzip, &o->m_body)))
		return rc;
	o->m_pending = true;
	o->m_attempt = 0;
	o->m_next_ns = 0;
	return 0;
}

static void metrics_done(struct atel_otlp *o)
{
	atel__agg_snapshot_free(o->snap);
	o->snap = NULL;
	o->m_pending = false;
}

static void metrics_start(struct atel_otlp *o)
{
	int rc;

	if (o->snap)
		metrics_done(o); /* final pass: the new snapshot is cumulative and supersedes it */
	if ((rc = atel__agg_snapshot(o->agg, &o->snap))) {
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: metrics snapshot: %s", strerror(-rc));
		return;
	}
	o->m_first = 0;
	if (!o->snap->nfamilies) {
		metrics_done(o);
		return;
	}
	if ((rc = metrics_encode_chunk(o))) {
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: metrics encode: %s", strerror(-rc));
		metrics_done(o);
	}
}

static void metrics_try(struct atel_otlp *o, bool final_pass)
{
	int64_t rejected;
	bool acked;

	if (!attempt(o, SIG_METRICS, &o->m_body, o->m_items, &o->m_attempt, &o->m_next_ns, &rejected, &acked,
		     final_pass)) {
		if (final_pass)
			metrics_done(o);
		return;
	}
	if (acked)
		stat_add(&o->s_points_rejected, (uint64_t)rejected);
	o->m_first += o->m_count;
	if (o->m_first >= o->snap->nfamilies) {
		if (acked)
			stat_add(&o->s_metrics_exports, 1);
		metrics_done(o);
		return;
	}
	if (metrics_encode_chunk(o))
		metrics_done(o);
}

/* ------------------------------------------------------------------------ */
/* thread                                                                   */

/* Reads up to `budget` records. @return records read, or -errno. */
static int read_log(struct atel_otlp *o, unsigned budget)
{
	struct atel_event ev;
	struct atel_log_pos after;
	unsigned n = 0;
	int rc;

	if (!o->src_open) {
		struct atel_log_pos start = o->read_pos;

		if ((rc = o->src.open(o->src.arg, &start, &o->src_handle))) {
			o->log_at_end = true;
			return rc == -ENOENT ? 0 : rc; /* no log yet: try again later */
		}
		o->src_open = true;
	}
	o->log_at_end = false;
	while (n < budget && o->nready < 4 * o->st.max_batch_items) {
		struct atel_log_pos before = o->read_pos;

		rc = o->src.next(o->src_handle, &ev, &after);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			o->log_at_end = true;
			break;
		}
		n++;
		o->nread++;
		o->read_pos = after;
		span_apply(o, &ev, &before, &after);
		if ((o->nread & 4095) == 0 || o->orphan_window < 8192)
			expire_orphans(o);
	}
	return (int)n;
}

/* A read error: reopen at the last good position on the next pass; warn at most every 10 s. */
static void read_failed(struct atel_otlp *o, int rc)
{
	uint64_t now = atel__mono_ns();

	if (o->src_open) {
		o->src.close(o->src_handle);
		o->src_open = false;
	}
	o->log_at_end = true;
	if (!o->last_read_warn_ns || now - o->last_read_warn_ns > 10000000000ull) {
		atel__log(o->d, ATEL_LOG_WARN, "otlp: reading the log in %s: %s (retrying)",
			  o->segments_dir[0] ? o->segments_dir : "(test source)", strerror(-rc));
		o->last_read_warn_ns = now;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void *otlp_thread(void *arg)
{
	struct atel_otlp *o = arg;
	bool stop = false;
	int rc;

	o->m_due_ns = atel__mono_ns() + (uint64_t)o->interval_ms * 1000000ull;
	while (!stop) {
		uint64_t now = atel__mono_ns(), wake;
		bool busy = false;

		if (o->do_metrics) {
			/* a snapshot still going out (chunks, bounded retries) finishes first */
			if (now >= o->m_due_ns && !o->m_pending) {
				metrics_start(o);
				o->m_due_ns = now + (uint64_t)o->interval_ms * 1000000ull;
			}
			if (o->m_pending && now >= o->m_next_ns) {
				metrics_try(o, false);
				busy = true;
			}
		}
		if (o->do_traces) {
			if ((rc = read_log(o, 8192)) > 0)
				busy = true;
			else if (rc < 0)
				read_failed(o, rc);
			if (!o->tr_pending && o->nready) {
				if ((rc = traces_job(o)))
					atel__log(o->d, ATEL_LOG_ERROR, "otlp: encoding spans: %s", strerror(-rc));
			}
			now = atel__mono_ns();
			if (o->tr_pending && now >= o->tr_next_ns) {
				traces_try(o, false);
				busy = true;
			}
			if (!o->tr_pending && now - o->last_save_ns > CURSOR_SAVE_IDLE_NS)
				cursor_persist(o, false);
		}
		now = atel__mono_ns();
		wake = now + (uint64_t)o->poll_ms * 1000000ull;
		if (o->do_metrics) {
			if (o->m_pending)
				wake = min_u64(wake, o->m_next_ns);
			else
				wake = min_u64(wake, o->m_due_ns);
		}
		if (o->tr_pending)
			wake = min_u64(wake, o->tr_next_ns > now ? o->tr_next_ns : now);
		else if (o->do_traces && (o->nready || (!o->log_at_end && busy)))
			wake = now; /* finished spans to send, or more log to read */
		pthread_mutex_lock(&o->lock);
		if (!o->stop && wake > now) {
			struct timespec ts;
			uint64_t dl;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			dl = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (wake - now);
			ts.tv_sec = (time_t)(dl / 1000000000ull);
			ts.tv_nsec = (long)(dl % 1000000000ull);
			pthread_cond_timedwait(&o->cond, &o->lock, &ts);
		}
		stop = o->stop;
		pthread_mutex_unlock(&o->lock);
	}

	/* final pass: what is finished goes out once, without retries, and a
	 * collector that does not answer holds shutdown for at most 3 s per
	 * request (the spans stay in the log for the next start) */
	for (int i = 0; i < 2; i++) {
		const struct atel_otlp_signal *g = i ? &o->st.metrics : &o->st.traces;

		curl_easy_setopt(o->curl[i], CURLOPT_TIMEOUT_MS, (long)(g->timeout_ms < 3000 ? g->timeout_ms : 3000));
		curl_easy_setopt(o->curl[i], CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(g->timeout_ms < 3000 ? g->timeout_ms : 3000));
	}
	if (o->do_traces) {
		read_log(o, 1u << 20);
		if (!o->tr_pending && o->nready && traces_job(o))
			o->tr_pending = false;
		if (o->tr_pending)
			traces_try(o, true);
		cursor_persist(o, true);
	}
	if (o->do_metrics) {
		metrics_start(o);
		while (o->m_pending)
			metrics_try(o, true);
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* start / stop                                                             */

static void otlp_free(struct atel_otlp *o)
{
	struct span_rec *s, *n;

	if (!o)
		return;
	if (o->src_open)
		o->src.close(o->src_handle);
	for (s = o->live_head; s; s = n) {
		n = s->lnext;
		span_free(s);
	}
	for (int i = 0; i < 2; i++) {
		if (o->curl[i])
			curl_easy_cleanup(o->curl[i]);
		curl_slist_free_all(o->hdrs[i]);
	}
	if (o->snap)
		atel__agg_snapshot_free(o->snap);
	atel__buf_free(&o->enc);
	atel__buf_free(&o->resp);
	atel__buf_free(&o->tr_body);
	atel__buf_free(&o->m_body);
	free(o->pend);
	free(o->res_attrs);
	atel__otlp_settings_free(&o->st);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct logsrc *logsrc_new(const char *dir, struct atel_daemon *d)
{
	struct logsrc *ls = calloc(1, sizeof(*ls));

	if (ls) {
		ls->dir = dir;
		ls->d = d;
	}
	return ls;
}

int atel__otlp_start_opts(struct atel_otlp **out, const struct atel_otlp_opts *op, char *err, size_t errlen)
{
	struct atel_otlp *o;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!op || !op->d || !op->settings) {
		atel__seterr(err, errlen, "otlp: missing daemon or settings");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		atel__seterr(err, errlen, "otlp: curl_global_init failed");
		return -ENOMEM;
	}
	if (!(o = calloc(1, sizeof(*o)))) {
		atel__seterr(err, errlen, "otlp: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	o->d = op->d;
	o->agg = op->agg;
	o->do_traces = op->traces;
	o->do_metrics = op->metrics && op->agg;
	o->interval_ms = op->interval_ms ? op->interval_ms : 15000;
	o->poll_ms = op->poll_ms ? op->poll_ms : 200;
	o->backoff_base_ms = op->backoff_base_ms ? op->backoff_base_ms : 500;
	o->backoff_max_ms = op->backoff_max_ms ? op->backoff_max_ms : 30000;
	o->metrics_max_attempts = op->metrics_max_attempts ? op->metrics_max_attempts : 5;
	o->open_max = op->open_spans_max ? op->open_spans_max : 65536;
	o->orphan_window = op->orphan_window ? op->orphan_window : ORPHAN_WINDOW_DEFAULT;
	o->rnd = atel__mono_ns() ^ ((uint64_t)getpid() << 32);
	if ((rc = settings_copy(&o->st, op->settings))) {
		atel__seterr(err, errlen, "otlp: out of memory");
		goto fail;
	}
	/* resource: service.name, then OTEL_RESOURCE_ATTRIBUTES */
	if (!(o->res_attrs = calloc(o->st.nres_attrs + 1, sizeof(*o->res_attrs)))) {
		rc = -ENOMEM;
		goto fail;
	}
	o->res_attrs[0] = (struct atel_otlp_attr){ "service.name", { .vtype = ATEL_VT_STR, .s = o->st.service_name } };
	for (uint32_t i = 0; i < o->st.nres_attrs; i++)
		o->res_attrs[i + 1] = (struct atel_otlp_attr){ o->st.res_attrs[i].key,
							       { .vtype = ATEL_VT_STR, .s = o->st.res_attrs[i].value } };
	o->res = (struct atel_otlp_resource){ o->res_attrs, o->st.nres_attrs + 1, "atel", ATEL_VERSION };
	if (op->source) {
		o->src = *op->source;
	} else {
		if (!op->segments_dir) {
			atel__seterr(err, errlen, "otlp: no segments directory");
			rc = -EINVAL;
			goto fail;
		}
		snprintf(o->segments_dir, sizeof(o->segments_dir), "%s", op->segments_dir);
		o->src = (struct atel_otlp_source){ NULL, logsrc_open, logsrc_next, logsrc_close };
	}
	if (op->state_dir) {
		struct atel_log_pos resume = { 0, 0, 0 }, acked = { 0, 0, 0 };

		if (mkdir(op->state_dir, 0700) && errno != EEXIST) {
			rc = -errno;
			atel__seterr(err, errlen, "otlp: cannot create %s: %s", op->state_dir, strerror(errno));
			goto fail;
		}
		if ((size_t)snprintf(o->cursor_path, sizeof(o->cursor_path), "%s/otlp-traces.cursor", op->state_dir) >=
		    sizeof(o->cursor_path)) {
			rc = -ENAMETOOLONG;
			atel__seterr(err, errlen, "otlp: state directory path too long");
			goto fail;
		}
		rc = atel__otlp_cursor_load(o->cursor_path, &resume, &acked, &o->pend, &o->npend);
		if (rc == -EINVAL) {
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s is corrupt; starting from the oldest segment",
				  o->cursor_path);
		} else if (rc && rc != -ENOENT) {
			atel__seterr(err, errlen, "otlp: cannot read %s: %s", o->cursor_path, strerror(-rc));
			goto fail;
		}
		o->read_pos = resume;
		o->acked = acked;
		o->replay = pos_cmp(&acked, &resume) > 0;
		o->saved_resume = resume;
		o->saved_acked = acked;
	}
	for (int i = 0; i < 2; i++)
		if ((rc = http_setup(o, i, err, errlen)))
			goto fail;
	if (!op->source) {
		struct logsrc *ls = logsrc_new(o->segments_dir, o->d);

		if (!ls) {
			rc = -ENOMEM;
			goto fail;
		}
		o->src.arg = ls;
	}
	o->last_save_ns = atel__mono_ns();
	if ((rc = pthread_create(&o->thread, NULL, otlp_thread, o))) {
		atel__seterr(err, errlen, "otlp: cannot start thread: %s", strerror(rc));
		rc = -rc;
		if (!op->source)
			free(o->src.arg);
		goto fail;
	}
	o->started = true;
	if (o->do_traces)
		atel__log(o->d, ATEL_LOG_INFO, "otlp: exporting traces to %s (%s%s, %u headers)", o->st.traces.url,
			  o->st.traces.json ? "http/json" : "http/protobuf", o->st.traces.gzip ? ", gzip" : "",
			  o->st.traces.nheaders);
	if (o->do_metrics)
		atel__log(o->d, ATEL_LOG_INFO, "otlp: exporting metrics every %u ms to %s (%s%s, %u headers)",
			  o->interval_ms, o->st.metrics.url, o->st.metrics.json ? "http/json" : "http/protobuf",
			  o->st.metrics.gzip ? ", gzip" : "", o->st.metrics.nheaders);
	*out = o;
	return 0;
fail:
	if (rc == -ENOMEM && err && !err[0])
		atel__seterr(err, errlen, "otlp: out of memory");
	otlp_free(o);
	return rc;
}

void atel__otlp_stop(struct atel_otlp *o)
{
	bool own_src;

	if (!o)
		return;
	own_src = o->src.open == logsrc_open;
	if (o->started) {
		pthread_mutex_lock(&o->lock);
		o->stop = true;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->lock);
		pthread_join(o->thread, NULL);
	}
	if (o->src_open) {
		o->src.close(o->src_handle);
		o->src_open = false;
	}
	if (own_src)
		free(o->src.arg);
	otlp_free(o);
}

void atel__otlp_get_stats(struct atel_otlp *o, struct atel_otlp_stats *out)
{
#define LD(x) atomic_load_explicit(&o->x, memory_order_relaxed)
	memset(out, 0, sizeof(*out));
	if (!o)
		return;
	for (int i = 0; i < 2; i++) {
		out->attempts[i] = LD(s_attempts[i]);
		out->retries[i] = LD(s_retries[i]);
		out->acked_batches[i] = LD(s_acked[i]);
		out->dropped_batches[i] = LD(s_dropped[i]);
	}
	out->spans_acked = LD(s_spans_acked);
	out->spans_rejected = LD(s_spans_rejected);
	out->points_rejected = LD(s_points_rejected);
	out->spans_dropped = LD(s_spans_dropped);
	out->spans_skipped_acked = LD(s_skipped);
	out->spans_producer_exited = LD(s_producer_exited);
	out->spans_evicted = LD(s_evicted);
	out->orphan_records = LD(s_orphans);
	out->open_spans = LD(s_open);
	out->last_retry_delay_ms = LD(s_last_delay);
	out->metrics_exports = LD(s_metrics_exports);
#undef LD
}
