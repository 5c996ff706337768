/* SPDX-License-Identifier: MIT */
/*
 * otlp_settings.h - what the OTLP exporter is told: the "opentelemetry"
 * section of ateld's configuration (config.h embeds struct
 * atel_otlp_config; README "Configuration" lists the keys), and the
 * settings resolved from it and the standard OTEL_* environment.
 */
#ifndef ATEL_OTLP_SETTINGS_H
#define ATEL_OTLP_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Headers the configuration file may set (opentelemetry.headers). */
#define ATEL_CFG_HEADERS_MAX 16

/* A header or a resource attribute: name and value, both owned. */
struct atel_kv {
	char *key;
	char *value;
};

/* The configuration file's "opentelemetry" section. Strings are owned by
 * the configuration. */
struct atel_otlp_config {
	bool enabled;                /* false (true if OTEL_EXPORTER_OTLP_ENDPOINT is set) */
	char *endpoint;              /* "http://localhost:4318" */
	char *protocol;              /* "http/protobuf" | "http/json" ("http" = http/protobuf) */
	struct atel_kv headers[ATEL_CFG_HEADERS_MAX];
	uint32_t nheaders;
	uint32_t timeout_ms;         /* 10000 */
	char *compression;           /* "gzip" | "none" */
	char *service_name;          /* "atel" unless OTEL_SERVICE_NAME */
	uint32_t max_batch_items;    /* 512 */
	uint32_t max_batch_bytes;    /* 4 MiB */
};

#define ATEL_OTLP_HEADERS_MAX 32
#define ATEL_OTLP_RES_ATTRS_MAX 32

/* Per signal: where and how to post. */
struct atel_otlp_signal {
	char url[2048];
	bool json;                    /* http/json, else http/protobuf */
	bool gzip;
	uint32_t timeout_ms;
	struct atel_kv headers[ATEL_OTLP_HEADERS_MAX]; /* owned; values are secrets */
	uint32_t nheaders;
};

struct atel_otlp_settings {
	struct atel_otlp_signal traces, metrics;
	char *service_name;                             /* owned */
	struct atel_kv res_attrs[ATEL_OTLP_RES_ATTRS_MAX]; /* owned; OTEL_RESOURCE_ATTRIBUTES minus service.name */
	uint32_t nres_attrs;
	uint32_t max_batch_items, max_batch_bytes;
};

/*
 * Builds the settings from cfg (may be NULL: defaults) and an environment
 * lookup (getenv, or a test's function; NULL: no environment).
 * Endpoint rules: OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT are used as-is;
 * else OTEL_EXPORTER_OTLP_ENDPOINT is a base URL + "/v1/traces" | "/v1/metrics";
 * else cfg endpoint: a base URL, or a URL ending in "/v1/traces" or
 * "/v1/metrics" that serves that signal, the other derived from its base.
 * Headers: cfg headers, then OTEL_EXPORTER_OTLP_HEADERS, then the
 * per-signal variable (later wins per name, case-insensitively).
 * @return 0, or -EINVAL with err naming the variable/key and why (values of
 * headers are never quoted), -ENOMEM.
 */
int atel__otlp_settings_resolve(struct atel_otlp_settings *s, const struct atel_otlp_config *cfg,
				const char *(*get_env)(const char *name), char *err, size_t errlen);
void atel__otlp_settings_free(struct atel_otlp_settings *s); /* NULL-safe */

/*
 * Parses a W3C-baggage-like list "k1=v1,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES): entries trimmed, keys and values
 * percent-decoded, empty entries skipped. `what` names the source in errors.
 * Calls add(arg, key, value) per entry (strings valid during the call).
 * Keys must be non-empty; decoded keys and values must not contain CR, LF or
 * NUL; header_names: keys must be HTTP tokens.
 * @return 0; -EINVAL with err ("OTEL_EXPORTER_OTLP_HEADERS: entry 2: missing
 * '='"; values never quoted); or add's negative return.
 */
int atel__otlp_parse_kv_list(const char *text, size_t len, bool header_names, const char *what,
			     int (*add)(void *arg, const char *key, const char *value), void *arg,
			     char *err, size_t errlen);

#endif /* ATEL_OTLP_SETTINGS_H */
