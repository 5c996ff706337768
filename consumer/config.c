/* SPDX-License-Identifier: MIT */
/*
 * config.c - ateld configuration: embedded defaults, a JSON file parsed with
 * cJSON, then environment overrides (precedence: defaults < file < env; the
 * command line, applied by ateld.c, wins over all three).
 *
 * The file is untrusted input: every key is looked up in one table (KEYS
 * below) that gives its type and range; unknown keys, duplicate keys, wrong
 * types and out-of-range values are errors naming the file, the key path and
 * the expected form. README.md "Configuration" documents the same table.
 */
#include "config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define CONFIG_FILE_MAX (1u << 20) /* a config larger than 1 MiB is a mistake */

/* strdup that leaves *dst untouched on allocation failure. @return 0 or -ENOMEM. */
static int set_str(char **dst, const char *src)
{
	char *s = NULL;

	if (src) {
		s = strdup(src);
		if (!s)
			return -ENOMEM;
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* the key table                                                            */

enum kkind {
	K_STR,      /* non-empty string */
	K_STR_NULL, /* string or null */
	K_BOOL,
	K_U32,      /* integer in [min, max] */
	K_U64,
	K_INT,
	K_ENUM,     /* one of enums[] */
	K_POW2,     /* power-of-two integer in [min, max] */
	K_MODE,     /* octal string "0600" or integer 0..0777 */
	K_PORT,     /* integer in [min, max] */
	K_HEADERS,  /* object of string values */
	K_ADDR,     /* IPv4 or IPv6 literal */
	K_URLPATH,  /* string starting with '/' */
	K_URL,      /* http:// or https:// URL */
};

struct key {
	const char *section; /* "" for top level */
	const char *name;
	enum kkind kind;
	size_t off;
	int64_t min, max;
	const char *const *enums;
	const char *secret_as; /* a secret: atel__config_json shows only whether it is set, as this */
};

static const char *const LOG_LEVELS[] = { "error", "warn", "info", "debug", NULL };
static const char *const IO_MODES[] = { "auto", "io_uring", "pwritev", NULL };
static const char *const ENCODINGS[] = { "records", "columns", NULL };
static const char *const INDEX_MODES[] = { "compact", "full", NULL };
static const char *const OTLP_PROTOCOLS[] = { "http/protobuf", "http/json", "http", NULL };
static const char *const COMPRESSIONS[] = { "gzip", "none", NULL };

#define OFF(f) offsetof(struct atel_config, f)
#define DAY_S 86400

static const struct key KEYS[] = {
	{ "", "data_dir", K_STR, OFF(data_dir), 0, 0, NULL, NULL },
	{ "", "export_interval_ms", K_U32, OFF(export_interval_ms), 100, 86400000, NULL, NULL },
	{ "", "log_level", K_ENUM, OFF(log_level), 0, 0, LOG_LEVELS, NULL },

	{ "shm", "name", K_STR, OFF(shm.name), 0, 0, NULL, NULL },
	{ "shm", "rings", K_U32, OFF(shm.rings), 1, 65536, NULL, NULL },
	{ "shm", "ring_capacity", K_POW2, OFF(shm.ring_capacity), 64, 1 << 24, NULL, NULL },
	{ "shm", "mode", K_MODE, OFF(shm.mode), 0, 0777, NULL, NULL },

	{ "storage", "rotate_bytes", K_U64, OFF(storage.rotate_bytes), 65536, (int64_t)1 << 40, NULL, NULL },
	{ "storage", "rotate_age_s", K_U32, OFF(storage.rotate_age_s), 1, 30 * DAY_S, NULL, NULL },
	{ "storage", "fsync_interval_ms", K_U32, OFF(storage.fsync_interval_ms), 1, 3600000, NULL, NULL },
	{ "storage", "zstd_level", K_INT, OFF(storage.zstd_level), -7, 19, NULL, NULL },
	{ "storage", "zstd_level_pressure", K_INT, OFF(storage.zstd_level_pressure), -7, 19, NULL, NULL },
	{ "storage", "io", K_ENUM, OFF(storage.io), 0, 0, IO_MODES, NULL },
	{ "storage", "encoding", K_ENUM, OFF(storage.encoding), 0, 0, ENCODINGS, NULL },
	{ "storage", "file_mode", K_MODE, OFF(storage.file_mode), 0600, 0670, NULL, NULL },
	/* the compactor (consumer/compactor.c) */
	{ "storage", "compact", K_BOOL, OFF(storage.compact), 0, 0, NULL, NULL },
	{ "storage", "compact_level", K_INT, OFF(storage.compact_level), 1, 19, NULL, NULL },
	{ "storage", "compact_frame_bytes", K_U32, OFF(storage.compact_frame_bytes), 65536, 16777216, NULL, NULL },
	{ "storage", "compact_interval_s", K_U32, OFF(storage.compact_interval_s), 1, DAY_S, NULL, NULL },

	{ "drain", "idle_sleep_max_us", K_U32, OFF(drain.idle_sleep_max_us), 1, 10000, NULL, NULL },
	{ "drain", "batch_records", K_U32, OFF(drain.batch_records), 256, 1 << 20, NULL, NULL },

	{ "retention", "metrics_days", K_U32, OFF(retention.metrics_days), 0, 36500, NULL, NULL },
	{ "retention", "traces_days", K_U32, OFF(retention.traces_days), 0, 36500, NULL, NULL },
	{ "retention", "aggregates_days", K_U32, OFF(retention.aggregates_days), 0, 36500, NULL, NULL },
	{ "retention", "segments_days", K_U32, OFF(retention.segments_days), 0, 36500, NULL, NULL },
	{ "retention", "max_bytes", K_U64, OFF(retention.max_bytes), 0, (int64_t)1 << 50, NULL, NULL },

	{ "index", "enabled", K_BOOL, OFF(index.enabled), 0, 0, NULL, NULL },
	{ "index", "rollup_interval_s", K_U32, OFF(index.rollup_interval_s), 1, DAY_S, NULL, NULL },
	{ "index", "reserve_bytes", K_U64, OFF(index.reserve_bytes), 0, (int64_t)1 << 50, NULL, NULL },
	{ "index", "reserve_percent", K_U32, OFF(index.reserve_percent), 0, 50, NULL, NULL },
	{ "index", "mode", K_ENUM, OFF(index.mode), 0, 0, INDEX_MODES, NULL },

	{ "prometheus", "enabled", K_BOOL, OFF(prometheus.enabled), 0, 0, NULL, NULL },
	{ "prometheus", "bind", K_ADDR, OFF(prometheus.bind), 0, 0, NULL, NULL },
	{ "prometheus", "port", K_PORT, OFF(prometheus.port), 1, 65535, NULL, NULL },
	{ "prometheus", "path", K_URLPATH, OFF(prometheus.path), 0, 0, NULL, NULL },
	{ "prometheus", "bearer_token", K_STR_NULL, OFF(prometheus.bearer_token), 0, 0, NULL, "auth" },
	{ "prometheus", "series_limit", K_U32, OFF(prometheus.series_limit), 1, 10000000, NULL, NULL },
	{ "prometheus", "series_ttl", K_U32, OFF(prometheus.series_ttl_s), 0, 30 * DAY_S, NULL, NULL },
	{ "prometheus", "query_enabled", K_BOOL, OFF(prometheus.query_enabled), 0, 0, NULL, NULL },
	{ "prometheus", "query_timeout_ms", K_U32, OFF(prometheus.query_timeout_ms), 1, 3600000, NULL, NULL },
	{ "prometheus", "max_samples", K_U32, OFF(prometheus.max_samples), 1, 4000000000u, NULL, NULL },
	{ "prometheus", "max_series", K_U32, OFF(prometheus.max_series), 1, 100000000, NULL, NULL },
	{ "prometheus", "query_resolution_ms", K_U32, OFF(prometheus.query_resolution_ms), 1, 3600000, NULL, NULL },
	{ "prometheus", "query_carry_ms", K_U32, OFF(prometheus.query_carry_ms), 100, 3600000, NULL, NULL },

	{ "json", "enabled", K_BOOL, OFF(json.enabled), 0, 0, NULL, NULL },
	{ "json", "outputDir", K_STR, OFF(json.outputDir), 0, 0, NULL, NULL },
	{ "json", "rotateInterval", K_U64, OFF(json.rotateInterval), 1000, 30ll * DAY_S * 1000, NULL, NULL },
	{ "json", "maxFiles", K_U32, OFF(json.maxFiles), 1, 100000, NULL, NULL },

	{ "opentelemetry", "enabled", K_BOOL, OFF(opentelemetry.enabled), 0, 0, NULL, NULL },
	{ "opentelemetry", "endpoint", K_URL, OFF(opentelemetry.endpoint), 0, 0, NULL, NULL },
	{ "opentelemetry", "protocol", K_ENUM, OFF(opentelemetry.protocol), 0, 0, OTLP_PROTOCOLS, NULL },
	{ "opentelemetry", "headers", K_HEADERS, 0, 0, 0, NULL, NULL },
	{ "opentelemetry", "timeout_ms", K_U32, OFF(opentelemetry.timeout_ms), 100, 600000, NULL, NULL },
	{ "opentelemetry", "compression", K_ENUM, OFF(opentelemetry.compression), 0, 0, COMPRESSIONS, NULL },
	{ "opentelemetry", "service_name", K_STR, OFF(opentelemetry.service_name), 0, 0, NULL, NULL },
	{ "opentelemetry", "max_batch_items", K_U32, OFF(opentelemetry.max_batch_items), 1, 100000, NULL, NULL },
	{ "opentelemetry", "max_batch_bytes", K_U32, OFF(opentelemetry.max_batch_bytes), 1024, 64 << 20, NULL, NULL },

	{ "otlp_receiver", "enabled", K_BOOL, OFF(otlp_receiver.enabled), 0, 0, NULL, NULL },
	{ "otlp_receiver", "bind", K_ADDR, OFF(otlp_receiver.bind), 0, 0, NULL, NULL },
	{ "otlp_receiver", "port", K_PORT, OFF(otlp_receiver.port), 1, 65535, NULL, NULL },
	{ "otlp_receiver", "max_body_bytes", K_U32, OFF(otlp_receiver.max_body_bytes), 1024, 64 << 20, NULL, NULL },

	{ "remote_write", "url", K_URL, OFF(remote_write.url), 0, 0, NULL, NULL },
	{ "remote_write", "bearer_token", K_STR_NULL, OFF(remote_write.bearer_token), 0, 0, NULL, "auth" },
	{ "remote_write", "job", K_STR, OFF(remote_write.job), 0, 0, NULL, NULL },
	{ "remote_write", "instance", K_STR_NULL, OFF(remote_write.instance), 0, 0, NULL, NULL },
	{ "remote_write", "batch", K_U32, OFF(remote_write.batch), 1, 1000000, NULL, NULL },
	{ "remote_write", "interval_ms", K_U32, OFF(remote_write.interval_ms), 10, 3600000, NULL, NULL },
	{ "remote_write", "timeout_ms", K_U32, OFF(remote_write.timeout_ms), 100, 600000, NULL, NULL },
	{ "remote_write", "backoff_max_ms", K_U32, OFF(remote_write.backoff_max_ms), 10, 3600000, NULL, NULL },
	{ "remote_write", "headers", K_HEADERS, 0, 0, 0, NULL, NULL },
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static const char *const SECTIONS[] = { "shm", "storage", "drain", "retention", "index",
					"prometheus", "json", "opentelemetry", "remote_write",
					"otlp_receiver", NULL };

/* ------------------------------------------------------------------------ */
/* headers sections (opentelemetry.headers, remote_write.headers)            */

/* The header list a K_HEADERS key fills: its section's array and count. */
static struct atel_kv *headers_of(const struct atel_config *ccfg, const char *section, uint32_t **n)
{
	struct atel_config *cfg = (struct atel_config *)ccfg;

	if (!strcmp(section, "remote_write")) {
		*n = &cfg->remote_write.nheaders;
		return cfg->remote_write.headers;
	}
	*n = &cfg->opentelemetry.nheaders;
	return cfg->opentelemetry.headers;
}

static void headers_free(struct atel_kv *h, uint32_t *n)
{
	for (uint32_t i = 0; i < *n && i < ATEL_CFG_HEADERS_MAX; i++) {
		free(h[i].key);
		free(h[i].value);
	}
	*n = 0;
}

/* Headers remote write sets on every request (exporters/remote_write.c): a
 * second copy from remote_write.headers would make the request ambiguous. */
static const char *const RW_OWN_HEADERS[] = { "Content-Encoding", "Content-Type",
					      "X-Prometheus-Remote-Write-Version", "Content-Length", NULL };

/* ------------------------------------------------------------------------ */
/* defaults                                                                 */

static void free_strings(struct atel_config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &KEYS[i];

		if (k->kind == K_STR || k->kind == K_STR_NULL || k->kind == K_ENUM || k->kind == K_ADDR ||
		    k->kind == K_URLPATH || k->kind == K_URL) {
			char **p = (char **)(void *)((char *)cfg + k->off);

			free(*p);
			*p = NULL;
		}
	}
	headers_free(cfg->opentelemetry.headers, &cfg->opentelemetry.nheaders);
	headers_free(cfg->remote_write.headers, &cfg->remote_write.nheaders);
}

void atel__config_free(struct atel_config *cfg)
{
	if (!cfg)
		return;
	free_strings(cfg);
}

/* Fills every field; on allocation failure the string stays NULL and
 * atel__config_load reports -ENOMEM (checked by check_complete()). */
void atel__config_defaults(struct atel_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->data_dir = strdup("./var");
	cfg->export_interval_ms = 15000;
	cfg->log_level = strdup("info");

	cfg->shm.name = strdup("atel");
	cfg->shm.rings = 64;
	cfg->shm.ring_capacity = 16384;
	cfg->shm.mode = 0600;

	cfg->storage.rotate_bytes = 64ull << 20;
	cfg->storage.rotate_age_s = 3600;
	cfg->storage.fsync_interval_ms = 1000;
	cfg->storage.zstd_level = 6;
	cfg->storage.zstd_level_pressure = -7;
	cfg->storage.io = strdup("auto");
	cfg->storage.encoding = strdup("columns");
	cfg->storage.file_mode = 0600;
	cfg->storage.compact = true;
	cfg->storage.compact_level = 9;
	cfg->storage.compact_frame_bytes = 4u << 20;
	cfg->storage.compact_interval_s = 30;

	cfg->drain.idle_sleep_max_us = 1000;
	cfg->drain.batch_records = 4096;

	cfg->retention.metrics_days = 30;
	cfg->retention.traces_days = 7;
	cfg->retention.aggregates_days = 90;
	cfg->retention.segments_days = 30;

	cfg->index.enabled = true;
	cfg->index.rollup_interval_s = 60;
	cfg->index.reserve_bytes = 64ull << 20;
	cfg->index.reserve_percent = 0;
	cfg->index.mode = strdup("compact");

	cfg->prometheus.enabled = true;
	cfg->prometheus.bind = strdup("127.0.0.1");
	cfg->prometheus.port = 9464;
	cfg->prometheus.path = strdup("/metrics");
	cfg->prometheus.bearer_token = NULL;
	cfg->prometheus.series_limit = 10000;
	cfg->prometheus.series_ttl_s = 300;
	cfg->remote_write.job = strdup("atel");
	cfg->remote_write.batch = 2000;
	cfg->remote_write.interval_ms = 1000;
	cfg->remote_write.timeout_ms = 10000;
	cfg->remote_write.backoff_max_ms = 30000;
	cfg->prometheus.query_enabled = true;
	cfg->prometheus.query_timeout_ms = 10000;
	cfg->prometheus.max_samples = 50000000;
	cfg->prometheus.max_series = 100000;
	cfg->prometheus.query_resolution_ms = 1000;
	cfg->prometheus.query_carry_ms = 15000;

	cfg->json.enabled = false;
	cfg->json.outputDir = NULL; /* derived: <data_dir>/exports (finish()) */
	cfg->json.rotateInterval = 3600000;
	cfg->json.maxFiles = 24;

	cfg->opentelemetry.enabled = false;
	cfg->opentelemetry.endpoint = strdup("http://localhost:4318");
	cfg->opentelemetry.protocol = strdup("http/protobuf");
	cfg->opentelemetry.nheaders = 0;
	cfg->opentelemetry.timeout_ms = 10000;
	cfg->opentelemetry.compression = strdup("gzip");
	cfg->opentelemetry.service_name = strdup("atel");
	cfg->opentelemetry.max_batch_items = 512;
	cfg->opentelemetry.max_batch_bytes = 4u << 20;

	cfg->otlp_receiver.enabled = false;
	cfg->otlp_receiver.bind = strdup("127.0.0.1");
	cfg->otlp_receiver.port = 4318;
	cfg->otlp_receiver.max_body_bytes = 4u << 20;
}

/* Every non-nullable string present (strdup in defaults may have failed). */
static int check_complete(const struct atel_config *cfg)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &KEYS[i];

		if (k->kind == K_STR || k->kind == K_ENUM || k->kind == K_ADDR || k->kind == K_URLPATH ||
		    k->kind == K_URL) {
			if (!strcmp(k->name, "outputDir") || (!strcmp(k->section, "remote_write") && !strcmp(k->name, "url")))
				continue; /* NULL: derived later / remote write off */
			if (!*(char *const *)(const void *)((const char *)cfg + k->off))
				return -ENOMEM;
		}
	}
	return 0;
}

/* json.outputDir follows data_dir unless set explicitly. "http" means http/protobuf. */
static int finish(struct atel_config *cfg)
{
	if (!cfg->json.outputDir) {
		size_t n = strlen(cfg->data_dir) + sizeof("/exports");
		char *s = malloc(n);

		if (!s)
			return -ENOMEM;
		snprintf(s, n, "%s/exports", cfg->data_dir);
		cfg->json.outputDir = s;
	}
	if (!strcmp(cfg->opentelemetry.protocol, "http") && set_str(&cfg->opentelemetry.protocol, "http/protobuf"))
		return -ENOMEM;
	return check_complete(cfg);
}

/* Rules between keys, checked once everything is applied (keys come in any
 * order). @return 0 or -EINVAL with err set. */
static int check_across(const struct atel_config *cfg, const char *origin, char *err, size_t errlen)
{
	for (uint32_t i = 0; cfg->remote_write.bearer_token && i < cfg->remote_write.nheaders; i++) {
		if (!strcasecmp(cfg->remote_write.headers[i].key, "Authorization")) {
			atel__seterr(err, errlen,
				     "%s: remote_write.headers.%s: refused: remote_write.bearer_token sets Authorization "
				     "(use one of the two)",
				     origin, cfg->remote_write.headers[i].key);
			return -EINVAL;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* value checks shared by the file and the environment                       */

/* A short, printable rendering of a JSON value for error messages. */
static void show_json(const cJSON *v, char *out, size_t len)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s) {
		snprintf(out, len, "(unprintable)");
		return;
	}
	if (strlen(s) > 60)
		snprintf(out, len, "%.57s...", s);
	else
		snprintf(out, len, "%s", s);
	cJSON_free(s);
}

static const char *kind_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "an invalid value";
}

/* The expected form of a key, as error messages say it. */
static void expected_form(const struct key *k, char *out, size_t len)
{
	switch (k->kind) {
	case K_STR:
		snprintf(out, len, "a non-empty string");
		break;
	case K_STR_NULL:
		snprintf(out, len, "a string or null");
		break;
	case K_BOOL:
		snprintf(out, len, "true or false");
		break;
	case K_U32:
	case K_U64:
	case K_INT:
	case K_PORT:
		snprintf(out, len, "an integer %" PRId64 "..%" PRId64, k->min, k->max);
		break;
	case K_POW2:
		snprintf(out, len, "a power of two %" PRId64 "..%" PRId64, k->min, k->max);
		break;
	case K_MODE:
		snprintf(out, len, "an octal mode string like \"0600\" (or an integer 0..511)");
		break;
	case K_ENUM: {
		size_t n = (size_t)snprintf(out, len, "one of");
		for (const char *const *e = k->enums; *e && n < len; e++)
			n += (size_t)snprintf(out + n, len - n, "%s \"%s\"", e == k->enums ? "" : ",", *e);
		break;
	}
	case K_HEADERS:
		snprintf(out, len, "an object of string values (at most %u)", ATEL_CFG_HEADERS_MAX);
		break;
	case K_ADDR:
		snprintf(out, len, "an IPv4 or IPv6 address like \"127.0.0.1\"");
		break;
	case K_URLPATH:
		snprintf(out, len, "a path starting with '/'");
		break;
	case K_URL:
		snprintf(out, len, "an http:// or https:// URL");
		break;
	}
}

/* Parses an integer from text (environment values). @return 0 or -EINVAL. */
static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_mode_str(const char *s, int64_t *out)
{
	char *end;
	long v;

	if (!s || !*s || strlen(s) > 5)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '7')
			return -EINVAL;
	v = strtol(s, &end, 8);
	if (*end || v < 0 || v > 0777)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool is_pow2(int64_t v)
{
	return v > 0 && (v & (v - 1)) == 0;
}

/* Validates a string value for string-like kinds. @return 0 or -EINVAL. */
static int check_string(const struct key *k, const char *s)
{
	unsigned char buf[16];

	switch (k->kind) {
	case K_STR:
		return *s ? 0 : -EINVAL;
	case K_STR_NULL:
		return 0;
	case K_ENUM:
		for (const char *const *e = k->enums; *e; e++)
			if (!strcmp(*e, s))
				return 0;
		return -EINVAL;
	case K_ADDR:
		return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1 ? 0 : -EINVAL;
	case K_URLPATH:
		return s[0] == '/' && !strpbrk(s, " \t\r\n?#") ? 0 : -EINVAL;
	case K_URL:
		if (!strncmp(s, "http://", 7))
			s += 7;
		else if (!strncmp(s, "https://", 8))
			s += 8;
		else
			return -EINVAL;
		return *s && *s != '/' && !strpbrk(s, " \t\r\n") ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

/* Stores an integer into the field of k after range checks. @return 0 or -EINVAL. */
static int store_int(struct atel_config *cfg, const struct key *k, int64_t v)
{
	void *p = (char *)cfg + k->off;

	if (v < k->min || v > k->max)
		return -EINVAL;
	if (k->kind == K_POW2 && !is_pow2(v))
		return -EINVAL;
	switch (k->kind) {
	case K_U64:
		*(uint64_t *)p = (uint64_t)v;
		break;
	case K_INT:
		*(int *)p = (int)v;
		break;
	default:
		*(uint32_t *)p = (uint32_t)v;
		break;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */

struct ctx {
	const char *origin;
	char *err;
	size_t errlen;
};

static int bad_value(const struct ctx *c, const struct key *k, const cJSON *v)
{
	char form[200], got[80];

	expected_form(k, form, sizeof(form));
	show_json(v, got, sizeof(got));
	atel__seterr(c->err, c->errlen, "%s: %s%s%s: expected %s, got %s", c->origin, k->section,
	       *k->section ? "." : "", k->name, form, got);
	return -EINVAL;
}

/* Fills the header list of k's section (headers_of) from a JSON object; the
 * list is replaced only if every entry is valid. Values are never echoed. */
static int apply_headers(struct atel_config *cfg, const struct ctx *c, const struct key *k, const cJSON *v)
{
	struct atel_kv tmp[ATEL_CFG_HEADERS_MAX];
	uint32_t n = 0, *dst_n;
	struct atel_kv *dst = headers_of(cfg, k->section, &dst_n);
	const cJSON *it;
	int rc = -EINVAL;

	if (!cJSON_IsObject(v))
		return bad_value(c, k, v);
	cJSON_ArrayForEach(it, v)
	{
		if (n == ATEL_CFG_HEADERS_MAX) {
			atel__seterr(c->err, c->errlen, "%s: %s.headers: at most %u headers, got more", c->origin,
				     k->section, ATEL_CFG_HEADERS_MAX);
			goto fail;
		}
		if (!it->string || !*it->string || strpbrk(it->string, " \t\r\n:")) {
			atel__seterr(c->err, c->errlen,
			       "%s: %s.headers: header name \"%s\" is not a valid HTTP field name",
			       c->origin, k->section, it->string ? it->string : "");
			goto fail;
		}
		if (!cJSON_IsString(it) || strpbrk(it->valuestring, "\r\n")) {
			/* never echo a header value: it may be a token */
			atel__seterr(c->err, c->errlen,
			       "%s: %s.headers.%s: expected a single-line string, got %s", c->origin, k->section,
			       it->string, cJSON_IsString(it) ? "a string with a line break" : kind_name(it));
			goto fail;
		}
		if (!strcmp(k->section, "remote_write")) {
			for (const char *const *own = RW_OWN_HEADERS; *own; own++) {
				if (!strcasecmp(*own, it->string)) {
					atel__seterr(c->err, c->errlen,
						     "%s: remote_write.headers.%s: refused: remote write sets %s itself",
						     c->origin, it->string, *own);
					goto fail;
				}
			}
		}
		for (uint32_t j = 0; j < n; j++) {
			if (!strcasecmp(tmp[j].key, it->string)) {
				atel__seterr(c->err, c->errlen, "%s: %s.headers.%s: duplicate header",
				       c->origin, k->section, it->string);
				goto fail;
			}
		}
		tmp[n].key = strdup(it->string);
		tmp[n].value = strdup(it->valuestring);
		n++;
		if (!tmp[n - 1].key || !tmp[n - 1].value) {
			atel__seterr(c->err, c->errlen, "%s: out of memory", c->origin);
			rc = -ENOMEM;
			goto fail;
		}
	}
	headers_free(dst, dst_n);
	memcpy(dst, tmp, n * sizeof(tmp[0]));
	*dst_n = n;
	return 0;
fail:
	headers_free(tmp, &n);
	return rc;
}

static int apply_value(struct atel_config *cfg, const struct ctx *c, const struct key *k, const cJSON *v)
{
	void *p = (char *)cfg + k->off;
	int64_t iv;

	switch (k->kind) {
	case K_BOOL:
		if (!cJSON_IsBool(v))
			return bad_value(c, k, v);
		*(bool *)p = cJSON_IsTrue(v);
		return 0;
	case K_U32:
	case K_U64:
	case K_INT:
	case K_POW2:
	case K_PORT:
		if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
		    fabs(v->valuedouble) > 9007199254740992.0)
			return bad_value(c, k, v);
		iv = (int64_t)v->valuedouble;
		return store_int(cfg, k, iv) ? bad_value(c, k, v) : 0;
	case K_MODE:
		if (cJSON_IsString(v)) {
			if (parse_mode_str(v->valuestring, &iv))
				return bad_value(c, k, v);
		} else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= 0 &&
			   v->valuedouble <= 0777) {
			iv = (int64_t)v->valuedouble;
		} else {
			return bad_value(c, k, v);
		}
		if (k->off == OFF(storage.file_mode) && ((iv & 0007) || (iv & 0600) != 0600)) {
			/* hardening (issue 12): ateld's files hold every agent's data */
			atel__seterr(c->err, c->errlen,
				     "%s: storage.file_mode: %04o refused: %s (use 0600, or 0640/0660 for group access)",
				     c->origin, (unsigned)iv,
				     (iv & 0007) ? "access for other users is not allowed"
						 : "the owner needs read and write access");
			return -EINVAL;
		}
		*(uint32_t *)p = (uint32_t)iv;
		return 0;
	case K_HEADERS:
		return apply_headers(cfg, c, k, v);
	case K_STR_NULL:
		if (cJSON_IsNull(v))
			return set_str((char **)p, NULL);
		/* fall through */
	default:
		if (!cJSON_IsString(v) || check_string(k, v->valuestring))
			return bad_value(c, k, v);
		if (strlen(v->valuestring) > 4095) {
			atel__seterr(c->err, c->errlen, "%s: %s%s%s: string longer than 4095 bytes", c->origin,
			       k->section, *k->section ? "." : "", k->name);
			return -EINVAL;
		}
		if (set_str((char **)p, v->valuestring)) {
			atel__seterr(c->err, c->errlen, "%s: out of memory", c->origin);
			return -ENOMEM;
		}
		return 0;
	}
}

/* Lists the keys of a section for "unknown key" messages. */
static void list_keys(const char *section, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (size_t i = 0; i < NKEYS && n < len; i++)
		if (!strcmp(KEYS[i].section, section))
			n += (size_t)snprintf(out + n, len - n, "%s%s", n ? ", " : "", KEYS[i].name);
	if (!*section)
		for (const char *const *s = SECTIONS; *s && n < len; s++)
			n += (size_t)snprintf(out + n, len - n, ", %s", *s);
}

static int duplicate_check(const struct ctx *c, const char *section, const cJSON *obj)
{
	for (const cJSON *a = obj->child; a; a = a->next)
		for (const cJSON *b = a->next; b; b = b->next)
			if (a->string && b->string && !strcmp(a->string, b->string)) {
				atel__seterr(c->err, c->errlen, "%s: %s%s%s: duplicate key", c->origin, section,
				       *section ? "." : "", a->string);
				return -EINVAL;
			}
	return 0;
}

static int apply_object(struct atel_config *cfg, const struct ctx *c, const char *section, const cJSON *obj)
{
	const cJSON *it;
	int rc;

	if ((rc = duplicate_check(c, section, obj)))
		return rc;
	cJSON_ArrayForEach(it, obj)
	{
		const struct key *k = NULL;
		char names[600];

		if (!*section) {
			bool is_section = false;

			for (const char *const *s = SECTIONS; *s; s++) {
				if (!strcmp(*s, it->string)) {
					is_section = true;
					break;
				}
			}
			if (is_section) {
				char got[80];

				if (!cJSON_IsObject(it)) {
					show_json(it, got, sizeof(got));
					atel__seterr(c->err, c->errlen, "%s: %s: expected an object, got %s", c->origin,
					       it->string, got);
					return -EINVAL;
				}
				if ((rc = apply_object(cfg, c, it->string, it)))
					return rc;
				continue;
			}
		}
		for (size_t i = 0; i < NKEYS; i++) {
			if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].name, it->string)) {
				k = &KEYS[i];
				break;
			}
		}
		if (!k) {
			list_keys(section, names, sizeof(names));
			atel__seterr(c->err, c->errlen, "%s: %s%s%s: unknown key (expected one of: %s)", c->origin,
			       section, *section ? "." : "", it->string, names);
			return -EINVAL;
		}
		if ((rc = apply_value(cfg, c, k, it)))
			return rc;
	}
	return 0;
}

/* Line and column (1-based) of byte offset off in text. */
static void line_col(const char *text, size_t len, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* Parses text over the current contents of cfg (no defaults, no finish). */
static int parse_over(struct atel_config *cfg, const char *text, size_t len, const char *origin, char *err,
		      size_t errlen)
{
	struct ctx c = { origin ? origin : "config", err, errlen };
	const char *end = NULL;
	cJSON *root;
	int rc;

	if (len > CONFIG_FILE_MAX) {
		atel__seterr(err, errlen, "%s: larger than %u bytes", c.origin, CONFIG_FILE_MAX);
		return -EINVAL;
	}
	if (memchr(text, '\0', len)) {
		atel__seterr(err, errlen, "%s: contains a NUL byte: not a JSON text file", c.origin);
		return -EINVAL;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	if (!root) {
		unsigned line, col;
		size_t off = end && end >= text ? (size_t)(end - text) : 0;

		if (!end)
			off = len;
		line_col(text, len, off, &line, &col);
		atel__seterr(err, errlen, "%s: line %u, column %u: invalid JSON%s", c.origin, line, col,
		       off >= len ? " (unexpected end of input)" : "");
		return -EINVAL;
	}
	/* only whitespace may follow the value */
	for (const char *p = end; p && p < text + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			unsigned line, col;

			line_col(text, len, (size_t)(p - text), &line, &col);
			atel__seterr(err, errlen, "%s: line %u, column %u: unexpected text after the JSON object",
			       c.origin, line, col);
			cJSON_Delete(root);
			return -EINVAL;
		}
	}
	if (!cJSON_IsObject(root)) {
		atel__seterr(err, errlen, "%s: expected a JSON object at the top level, got %s", c.origin,
		       kind_name(root));
		cJSON_Delete(root);
		return -EINVAL;
	}
	rc = apply_object(cfg, &c, "", root);
	cJSON_Delete(root);
	return rc;
}

int atel__config_parse(struct atel_config *cfg, const char *text, size_t len, const char *origin, char *err,
		       size_t errlen)
{
	int rc;

	atel__config_defaults(cfg);
	rc = parse_over(cfg, text, len, origin, err, errlen);
	if (rc)
		return rc;
	rc = finish(cfg);
	if (rc) {
		atel__seterr(err, errlen, "%s: out of memory", origin ? origin : "config");
		return rc;
	}
	return check_across(cfg, origin ? origin : "config", err, errlen);
}

/* ------------------------------------------------------------------------ */
/* the effective configuration, for people and for the status file         */

/* An endpoint without user:password@ (credentials are never shown). */
static void redact_url(const char *url, char *out, size_t len)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *at = strchr(host, '@');
	const char *slash = strchr(host, '/');

	if (at && (!slash || at < slash))
		snprintf(out, len, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, len, "%s", url);
}

static void add_key(cJSON *o, const struct atel_config *cfg, const struct key *k)
{
	const void *p = (const char *)cfg + k->off;
	char buf[1024];

	switch (k->kind) {
	case K_BOOL:
		cJSON_AddBoolToObject(o, k->name, *(const bool *)p);
		break;
	case K_U32:
	case K_PORT:
	case K_POW2:
		cJSON_AddNumberToObject(o, k->name, *(const uint32_t *)p);
		break;
	case K_INT:
		cJSON_AddNumberToObject(o, k->name, *(const int *)p);
		break;
	case K_U64:
		/* raw text: cJSON numbers are doubles */
		snprintf(buf, sizeof(buf), "%" PRIu64, *(const uint64_t *)p);
		cJSON_AddRawToObject(o, k->name, buf);
		break;
	case K_MODE:
		snprintf(buf, sizeof(buf), "%04o", *(const uint32_t *)p);
		cJSON_AddStringToObject(o, k->name, buf);
		break;
	case K_HEADERS: {
		/* the names, as configured; values may be secrets and are never shown */
		cJSON *h = cJSON_AddObjectToObject(o, k->name);
		uint32_t *nh;
		const struct atel_kv *hv = headers_of(cfg, k->section, &nh);

		for (uint32_t i = 0; h && i < *nh; i++)
			cJSON_AddStringToObject(h, hv[i].key, "(set, not shown)");
		break;
	}
	case K_URL:
		redact_url(*(char *const *)p ? *(char *const *)p : "", buf, sizeof(buf));
		cJSON_AddStringToObject(o, k->name, buf);
		break;
	default: {
		const char *v = *(char *const *)p;

		if (k->secret_as)
			cJSON_AddBoolToObject(o, k->secret_as, v != NULL);
		else if (v)
			cJSON_AddStringToObject(o, k->name, v);
		else
			cJSON_AddNullToObject(o, k->name);
		break;
	}
	}
}

cJSON *atel__config_json(const struct atel_config *cfg)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (!*KEYS[i].section)
			add_key(o, cfg, &KEYS[i]);
	/* two top-level copies that readers of the first status files look for */
	cJSON_AddStringToObject(o, "shm_name", cfg->shm.name);
	cJSON_AddNumberToObject(o, "prometheus_port", cfg->prometheus.port);
	for (const char *const *sec = SECTIONS; *sec; sec++) {
		cJSON *s = cJSON_AddObjectToObject(o, *sec);

		for (size_t i = 0; i < NKEYS; i++)
			if (!strcmp(KEYS[i].section, *sec))
				add_key(s, cfg, &KEYS[i]);
	}
	return o;
}

/* ------------------------------------------------------------------------ */
/* environment                                                              */

static const struct key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].name, name))
			return &KEYS[i];
	return NULL;
}

/* Applies environment variable `var` (if set) to key section.name. */
static int env_apply(struct atel_config *cfg, const char *var, const char *section, const char *name,
		     char *err, size_t errlen)
{
	const struct key *k = find_key(section, name);
	const char *s = getenv(var);
	char form[200];
	int64_t v;

	if (!s || !k)
		return 0;
	switch (k->kind) {
	case K_U32:
	case K_U64:
	case K_INT:
	case K_PORT:
	case K_POW2:
		if (parse_i64(s, &v) || store_int(cfg, k, v))
			goto bad;
		return 0;
	case K_BOOL: /* 0|1|false|true */
		if (!strcmp(s, "1") || !strcmp(s, "true"))
			*(bool *)(void *)((char *)cfg + k->off) = true;
		else if (!strcmp(s, "0") || !strcmp(s, "false"))
			*(bool *)(void *)((char *)cfg + k->off) = false;
		else
			goto bad;
		return 0;
	default:
		if (check_string(k, s))
			goto bad;
		if (set_str((char **)(void *)((char *)cfg + k->off), s)) {
			atel__seterr(err, errlen, "environment %s: out of memory", var);
			return -ENOMEM;
		}
		return 0;
	}
bad:
	if (k->kind == K_BOOL)
		snprintf(form, sizeof(form), "0, 1, false or true");
	else
		expected_form(k, form, sizeof(form));
	atel__seterr(err, errlen, "environment %s (%s%s%s): expected %s, got \"%.60s\"", var, k->section,
	       *k->section ? "." : "", k->name, form, s);
	return -EINVAL;
}

static int apply_env(struct atel_config *cfg, char *err, size_t errlen)
{
	static const struct {
		const char *var, *section, *name;
	} map[] = {
		{ "ATEL_SHM", "shm", "name" },
		{ "ATEL_DATA_DIR", "", "data_dir" },
		{ "ATEL_PROMETHEUS_PORT", "prometheus", "port" },
		{ "ATEL_LOG_LEVEL", "", "log_level" },
		{ "ATEL_EXPORT_INTERVAL_MS", "", "export_interval_ms" },
		{ "ATEL_IO", "storage", "io" },
		{ "ATEL_ENCODING", "storage", "encoding" },
		{ "ATEL_INDEX_MODE", "index", "mode" },
		{ "ATEL_COMPACT", "storage", "compact" },
		{ "OTEL_SERVICE_NAME", "opentelemetry", "service_name" },
		{ "OTEL_EXPORTER_OTLP_ENDPOINT", "opentelemetry", "endpoint" },
		/* one ConfigMap for every pod of a DaemonSet: the node name through the downward API */
		{ "ATEL_REMOTE_WRITE_INSTANCE", "remote_write", "instance" },
	};
	const char *force;
	int rc;

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if ((rc = env_apply(cfg, map[i].var, map[i].section, map[i].name, err, errlen)))
			return rc;
	/* An OTLP endpoint in the environment is a request to export there. */
	if (getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))
		cfg->opentelemetry.enabled = true;
	force = getenv("ATEL_FORCE_PWRITEV");
	if (force && *force && strcmp(force, "0")) {
		if (strcmp(force, "1")) {
			atel__seterr(err, errlen, "environment ATEL_FORCE_PWRITEV: expected 0 or 1, got \"%.60s\"", force);
			return -EINVAL;
		}
		if (set_str(&cfg->storage.io, "pwritev"))
			return -ENOMEM;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* files                                                                    */

int atel__config_load(struct atel_config *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	atel__config_defaults(cfg);
	if (path) {
		rc = atel__read_file(path, CONFIG_FILE_MAX, &text, &len, err, errlen);
		if (rc)
			return rc == -EFBIG ? -EINVAL : rc;
		rc = parse_over(cfg, text, len, path, err, errlen);
		free(text);
		if (rc)
			return rc;
	}
	rc = apply_env(cfg, err, errlen);
	if (rc)
		return rc;
	rc = finish(cfg);
	if (rc) {
		atel__seterr(err, errlen, "out of memory while loading the configuration");
		return rc;
	}
	return check_across(cfg, path ? path : "environment", err, errlen);
}
