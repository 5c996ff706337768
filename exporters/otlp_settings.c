/* SPDX-License-Identifier: MIT */
/*
 * otlp_settings.c - the OTLP exporter's settings (otlp_settings.h): the
 * configuration's "opentelemetry" section and the standard OTEL_*
 * environment resolved into one URL, encoding, headers and resource per
 * signal. Header values are secrets: no error message quotes one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "otlp_internal.h"

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

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

int atel__otlp_settings_copy(struct atel_otlp_settings *dst, const struct atel_otlp_settings *src)
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

