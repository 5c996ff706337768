/* SPDX-License-Identifier: MIT */
/* Unit tests for consumer/config.c: defaults, every key kind, error messages, environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include <errno.h>
#include <fcntl.h>

#include <cjson/cJSON.h>

#include "config.h"

static const char *const ENV_VARS[] = { "ATEL_SHM", "ATEL_DATA_DIR", "ATEL_PROMETHEUS_PORT", "ATEL_LOG_LEVEL",
					"ATEL_EXPORT_INTERVAL_MS", "ATEL_IO", "ATEL_FORCE_PWRITEV", "ATEL_ENCODING",
					"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT",
					"ATEL_REMOTE_WRITE_INSTANCE", "ATEL_COMPACT", NULL };

static int clear_env(void **state)
{
	(void)state;
	for (const char *const *v = ENV_VARS; *v; v++)
		unsetenv(*v);
	return 0;
}

/* Parses text; asserts failure with exactly `want` as the message. */
static void expect_error(const char *text, const char *want)
{
	struct atel_config cfg;
	char err[1024] = "";
	int rc = atel__config_parse(&cfg, text, strlen(text), "t.json", err, sizeof(err));

	assert_int_equal(rc, -EINVAL);
	assert_string_equal(err, want);
	atel__config_free(&cfg);
}

static void test_defaults(void **state)
{
	struct atel_config cfg;
	char err[256];

	(void)state;
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.data_dir, "./var");
	assert_int_equal(cfg.export_interval_ms, 15000);
	assert_string_equal(cfg.log_level, "info");
	assert_string_equal(cfg.shm.name, "atel");
	assert_int_equal(cfg.shm.rings, 64);
	assert_int_equal(cfg.shm.ring_capacity, 16384);
	assert_int_equal(cfg.shm.mode, 0600);
	assert_int_equal(cfg.storage.rotate_bytes, 64ull << 20);
	assert_int_equal(cfg.storage.rotate_age_s, 3600);
	assert_int_equal(cfg.storage.fsync_interval_ms, 1000);
	assert_int_equal(cfg.storage.zstd_level, 6);
	assert_string_equal(cfg.storage.io, "auto");
	assert_string_equal(cfg.storage.encoding, "columns");
	assert_int_equal(cfg.drain.idle_sleep_max_us, 1000);
	assert_int_equal(cfg.drain.batch_records, 4096);
	assert_int_equal(cfg.retention.metrics_days, 30);
	assert_int_equal(cfg.retention.traces_days, 7);
	assert_int_equal(cfg.retention.aggregates_days, 90);
	assert_int_equal(cfg.retention.segments_days, 30);
	assert_true(cfg.index.enabled);
	assert_int_equal(cfg.index.rollup_interval_s, 60);
	assert_string_equal(cfg.index.mode, "compact");
	assert_true(cfg.retention.max_bytes == 0);
	assert_true(cfg.prometheus.enabled);
	assert_string_equal(cfg.prometheus.bind, "127.0.0.1");
	assert_int_equal(cfg.prometheus.port, 9464);
	assert_string_equal(cfg.prometheus.path, "/metrics");
	assert_null(cfg.prometheus.bearer_token);
	assert_int_equal(cfg.prometheus.series_limit, 10000);
	assert_true(cfg.prometheus.query_enabled);
	assert_int_equal(cfg.prometheus.query_timeout_ms, 10000);
	assert_int_equal(cfg.prometheus.max_samples, 50000000);
	assert_int_equal(cfg.prometheus.max_series, 100000);
	assert_false(cfg.json.enabled);
	assert_string_equal(cfg.json.outputDir, "./var/exports");
	assert_int_equal(cfg.json.rotateInterval, 3600000);
	assert_int_equal(cfg.json.maxFiles, 24);
	assert_false(cfg.opentelemetry.enabled);
	assert_string_equal(cfg.opentelemetry.endpoint, "http://localhost:4318");
	assert_string_equal(cfg.opentelemetry.protocol, "http/protobuf");
	assert_int_equal(cfg.opentelemetry.nheaders, 0);
	assert_int_equal(cfg.opentelemetry.timeout_ms, 10000);
	assert_string_equal(cfg.opentelemetry.compression, "gzip");
	assert_string_equal(cfg.opentelemetry.service_name, "atel");
	assert_int_equal(cfg.opentelemetry.max_batch_items, 512);
	assert_int_equal(cfg.opentelemetry.max_batch_bytes, 4u << 20);
	atel__config_free(&cfg);
}

static void test_full_file(void **state)
{
	static const char text[] =
		"{\n"
		"  \"data_dir\": \"/tmp/x\", \"export_interval_ms\": 30000, \"log_level\": \"debug\",\n"
		"  \"shm\": {\"name\": \"demo\", \"rings\": 8, \"ring_capacity\": 1024, \"mode\": \"0660\"},\n"
		"  \"storage\": {\"rotate_bytes\": 1048576, \"rotate_age_s\": 60, \"fsync_interval_ms\": 250,\n"
		"              \"zstd_level\": -3, \"io\": \"pwritev\"},\n"
		"  \"drain\": {\"idle_sleep_max_us\": 10000, \"batch_records\": 256},\n"
		"  \"retention\": {\"metrics_days\": 1, \"traces_days\": 2, \"aggregates_days\": 3, \"segments_days\": 0},\n"
		"  \"index\": {\"enabled\": false, \"rollup_interval_s\": 10},\n"
		"  \"prometheus\": {\"enabled\": false, \"bind\": \"::1\", \"port\": 9090, \"path\": \"/m\",\n"
		"                 \"bearer_token\": \"s3cret\", \"series_limit\": 5},\n"
		"  \"json\": {\"enabled\": true, \"outputDir\": \"/tmp/exp\", \"rotateInterval\": 1000, \"maxFiles\": 2},\n"
		"  \"opentelemetry\": {\"enabled\": true, \"endpoint\": \"https://otel.example:4318\",\n"
		"    \"protocol\": \"http\", \"headers\": {\"Authorization\": \"Bearer t\", \"X-Team\": \"a\"},\n"
		"    \"timeout_ms\": 500, \"compression\": \"none\", \"service_name\": \"svc\",\n"
		"    \"max_batch_items\": 10, \"max_batch_bytes\": 2048}\n"
		"}\n";
	struct atel_config cfg;
	char err[512] = "";

	(void)state;
	assert_int_equal(atel__config_parse(&cfg, text, strlen(text), "full.json", err, sizeof(err)), 0);
	assert_string_equal(cfg.data_dir, "/tmp/x");
	assert_int_equal(cfg.export_interval_ms, 30000);
	assert_string_equal(cfg.log_level, "debug");
	assert_string_equal(cfg.shm.name, "demo");
	assert_int_equal(cfg.shm.rings, 8);
	assert_int_equal(cfg.shm.ring_capacity, 1024);
	assert_int_equal(cfg.shm.mode, 0660);
	assert_int_equal(cfg.storage.rotate_bytes, 1048576);
	assert_int_equal(cfg.storage.rotate_age_s, 60);
	assert_int_equal(cfg.storage.fsync_interval_ms, 250);
	assert_int_equal(cfg.storage.zstd_level, -3);
	assert_string_equal(cfg.storage.io, "pwritev");
	assert_int_equal(cfg.drain.idle_sleep_max_us, 10000);
	assert_int_equal(cfg.drain.batch_records, 256);
	assert_int_equal(cfg.retention.metrics_days, 1);
	assert_int_equal(cfg.retention.traces_days, 2);
	assert_int_equal(cfg.retention.aggregates_days, 3);
	assert_int_equal(cfg.retention.segments_days, 0);
	assert_false(cfg.index.enabled);
	assert_int_equal(cfg.index.rollup_interval_s, 10);
	assert_false(cfg.prometheus.enabled);
	assert_string_equal(cfg.prometheus.bind, "::1");
	assert_int_equal(cfg.prometheus.port, 9090);
	assert_string_equal(cfg.prometheus.path, "/m");
	assert_string_equal(cfg.prometheus.bearer_token, "s3cret");
	assert_int_equal(cfg.prometheus.series_limit, 5);
	assert_true(cfg.json.enabled);
	assert_string_equal(cfg.json.outputDir, "/tmp/exp");
	assert_int_equal(cfg.json.rotateInterval, 1000);
	assert_int_equal(cfg.json.maxFiles, 2);
	assert_true(cfg.opentelemetry.enabled);
	assert_string_equal(cfg.opentelemetry.endpoint, "https://otel.example:4318");
	assert_string_equal(cfg.opentelemetry.protocol, "http/protobuf"); /* "http" is an alias */
	assert_int_equal(cfg.opentelemetry.nheaders, 2);
	assert_string_equal(cfg.opentelemetry.headers[0].key, "Authorization");
	assert_string_equal(cfg.opentelemetry.headers[0].value, "Bearer t");
	assert_string_equal(cfg.opentelemetry.headers[1].key, "X-Team");
	assert_string_equal(cfg.opentelemetry.headers[1].value, "a");
	assert_int_equal(cfg.opentelemetry.timeout_ms, 500);
	assert_string_equal(cfg.opentelemetry.compression, "none");
	assert_string_equal(cfg.opentelemetry.service_name, "svc");
	assert_int_equal(cfg.opentelemetry.max_batch_items, 10);
	assert_int_equal(cfg.opentelemetry.max_batch_bytes, 2048);
	atel__config_free(&cfg);
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_error("{\"prometheus\": {\"prot\": 1}}",
		     "t.json: prometheus.prot: unknown key (expected one of: enabled, bind, port, path, "
		     "bearer_token, series_limit, series_ttl, query_enabled, query_timeout_ms, max_samples, max_series, "
		     "query_resolution_ms, query_carry_ms)");
	expect_error("{\"datadir\": \"x\"}",
		     "t.json: datadir: unknown key (expected one of: data_dir, export_interval_ms, log_level, "
		     "shm, storage, drain, retention, index, prometheus, json, opentelemetry, remote_write, "
		     "otlp_receiver)");
	expect_error("{\"shm\": {\"name\": \"a\", \"size\": 3}}",
		     "t.json: shm.size: unknown key (expected one of: name, rings, ring_capacity, mode)");
}

static void test_wrong_types(void **state)
{
	(void)state;
	expect_error("{\"prometheus\": {\"port\": \"abc\"}}",
		     "t.json: prometheus.port: expected an integer 1..65535, got \"abc\"");
	expect_error("{\"prometheus\": {\"enabled\": \"yes\"}}",
		     "t.json: prometheus.enabled: expected true or false, got \"yes\"");
	expect_error("{\"data_dir\": 5}", "t.json: data_dir: expected a non-empty string, got 5");
	expect_error("{\"data_dir\": \"\"}", "t.json: data_dir: expected a non-empty string, got \"\"");
	expect_error("{\"storage\": 3}", "t.json: storage: expected an object, got 3");
	expect_error("{\"drain\": {\"batch_records\": 1.5}}",
		     "t.json: drain.batch_records: expected an integer 256..1048576, got 1.5");
	expect_error("{\"log_level\": \"verbose\"}",
		     "t.json: log_level: expected one of \"error\", \"warn\", \"info\", \"debug\", got \"verbose\"");
	expect_error("{\"storage\": {\"io\": \"aio\"}}",
		     "t.json: storage.io: expected one of \"auto\", \"io_uring\", \"pwritev\", got \"aio\"");
	expect_error("{\"storage\": {\"encoding\": \"gorilla\"}}",
		     "t.json: storage.encoding: expected one of \"records\", \"columns\", got \"gorilla\"");
	expect_error("{\"opentelemetry\": {\"protocol\": \"grpc\"}}",
		     "t.json: opentelemetry.protocol: expected one of \"http/protobuf\", \"http/json\", \"http\", "
		     "got \"grpc\"");
	expect_error("{\"opentelemetry\": {\"endpoint\": \"localhost:4318\"}}",
		     "t.json: opentelemetry.endpoint: expected an http:// or https:// URL, got \"localhost:4318\"");
	expect_error("{\"prometheus\": {\"bind\": \"localhost\"}}",
		     "t.json: prometheus.bind: expected an IPv4 or IPv6 address like \"127.0.0.1\", got \"localhost\"");
	expect_error("{\"prometheus\": {\"path\": \"metrics\"}}",
		     "t.json: prometheus.path: expected a path starting with '/', got \"metrics\"");
}

static void test_ranges(void **state)
{
	(void)state;
	expect_error("{\"prometheus\": {\"port\": 70000}}",
		     "t.json: prometheus.port: expected an integer 1..65535, got 70000");
	expect_error("{\"prometheus\": {\"port\": 0}}", "t.json: prometheus.port: expected an integer 1..65535, got 0");
	expect_error("{\"drain\": {\"idle_sleep_max_us\": 20000}}",
		     "t.json: drain.idle_sleep_max_us: expected an integer 1..10000, got 20000");
	expect_error("{\"shm\": {\"ring_capacity\": 1000}}",
		     "t.json: shm.ring_capacity: expected a power of two 64..16777216, got 1000");
	expect_error("{\"shm\": {\"ring_capacity\": 32}}",
		     "t.json: shm.ring_capacity: expected a power of two 64..16777216, got 32");
	expect_error("{\"shm\": {\"rings\": 0}}", "t.json: shm.rings: expected an integer 1..65536, got 0");
	expect_error("{\"shm\": {\"mode\": \"0900\"}}",
		     "t.json: shm.mode: expected an octal mode string like \"0600\" (or an integer 0..511), got \"0900\"");
	expect_error("{\"shm\": {\"mode\": 600}}",
		     "t.json: shm.mode: expected an octal mode string like \"0600\" (or an integer 0..511), got 600");
	expect_error("{\"storage\": {\"zstd_level\": 23}}",
		     "t.json: storage.zstd_level: expected an integer -7..19, got 23");
	expect_error("{\"export_interval_ms\": -1}",
		     "t.json: export_interval_ms: expected an integer 100..86400000, got -1");
}

/* remote_write: off by default; the section's keys, defaults and ranges; series_ttl. */
static void test_remote_write(void **state)
{
	struct atel_config cfg;
	char err[512] = "";
	static const char txt[] = "{\"remote_write\": {\"url\": \"http://central:9090/api/v1/write\", "
				  "\"instance\": \"h7\", \"batch\": 500}, \"prometheus\": {\"series_ttl\": 0}}";

	(void)state;
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_null(cfg.remote_write.url);
	assert_string_equal(cfg.remote_write.job, "atel");
	assert_null(cfg.remote_write.instance);
	assert_int_equal(cfg.remote_write.batch, 2000);
	assert_int_equal(cfg.remote_write.interval_ms, 1000);
	assert_int_equal(cfg.prometheus.series_ttl_s, 300);
	atel__config_free(&cfg);
	assert_int_equal(atel__config_parse(&cfg, txt, strlen(txt), "t.json", err, sizeof(err)), 0);
	assert_string_equal(cfg.remote_write.url, "http://central:9090/api/v1/write");
	assert_string_equal(cfg.remote_write.instance, "h7");
	assert_int_equal(cfg.remote_write.batch, 500);
	assert_int_equal(cfg.prometheus.series_ttl_s, 0);
	atel__config_free(&cfg);
	expect_error("{\"remote_write\": {\"url\": \"ftp://x\"}}",
		     "t.json: remote_write.url: expected an http:// or https:// URL, got \"ftp://x\"");
	expect_error("{\"remote_write\": {\"batch\": 0}}",
		     "t.json: remote_write.batch: expected an integer 1..1000000, got 0");
}

/* the OTLP receiver's section (issue 19): off, loopback, 4318 by default */
static void test_otlp_receiver(void **state)
{
	struct atel_config cfg;
	char err[512] = "";
	static const char txt[] = "{\"otlp_receiver\": {\"enabled\": true, \"bind\": \"::1\", \"port\": 14318, "
				  "\"max_body_bytes\": 2048}}";

	(void)state;
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_false(cfg.otlp_receiver.enabled);
	assert_string_equal(cfg.otlp_receiver.bind, "127.0.0.1");
	assert_int_equal(cfg.otlp_receiver.port, 4318);
	assert_int_equal(cfg.otlp_receiver.max_body_bytes, 4u << 20);
	atel__config_free(&cfg);
	assert_int_equal(atel__config_parse(&cfg, txt, strlen(txt), "t.json", err, sizeof(err)), 0);
	assert_true(cfg.otlp_receiver.enabled);
	assert_string_equal(cfg.otlp_receiver.bind, "::1");
	assert_int_equal(cfg.otlp_receiver.port, 14318);
	assert_int_equal(cfg.otlp_receiver.max_body_bytes, 2048);
	atel__config_free(&cfg);
	expect_error("{\"otlp_receiver\": {\"max_body_bytes\": 10}}",
		     "t.json: otlp_receiver.max_body_bytes: expected an integer 1024..67108864, got 10");
}

/* storage.compact*: the compactor's keys (docs/segment-format.md 9), defaults, ranges, ATEL_COMPACT. */
static void test_compact_keys(void **state)
{
	struct atel_config cfg;
	char err[512] = "";
	static const char txt[] = "{\"storage\": {\"compact\": false, \"compact_level\": 19, "
				  "\"compact_frame_bytes\": 65536, \"compact_interval_s\": 86400}}";

	(void)state;
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_true(cfg.storage.compact);
	assert_int_equal(cfg.storage.compact_level, 9);
	assert_int_equal(cfg.storage.compact_frame_bytes, 4u << 20);
	assert_int_equal(cfg.storage.compact_interval_s, 30);
	atel__config_free(&cfg);
	assert_int_equal(atel__config_parse(&cfg, txt, strlen(txt), "t.json", err, sizeof(err)), 0);
	assert_false(cfg.storage.compact);
	assert_int_equal(cfg.storage.compact_level, 19);
	assert_int_equal(cfg.storage.compact_frame_bytes, 65536);
	assert_int_equal(cfg.storage.compact_interval_s, 86400);
	atel__config_free(&cfg);
	expect_error("{\"storage\": {\"compact_level\": 0}}",
		     "t.json: storage.compact_level: expected an integer 1..19, got 0");
	expect_error("{\"storage\": {\"compact_frame_bytes\": 16777217}}",
		     "t.json: storage.compact_frame_bytes: expected an integer 65536..16777216, got 16777217");
	expect_error("{\"storage\": {\"compact_interval_s\": 0}}",
		     "t.json: storage.compact_interval_s: expected an integer 1..86400, got 0");
	expect_error("{\"storage\": {\"compact\": 1}}", "t.json: storage.compact: expected true or false, got 1");
	static const char *const off[] = { "0", "false" }, *const on[] = { "1", "true" };
	for (int i = 0; i < 2; i++) {
		setenv("ATEL_COMPACT", off[i], 1);
		assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
		assert_false(cfg.storage.compact);
		atel__config_free(&cfg);
	}
	for (int i = 0; i < 2; i++) {
		setenv("ATEL_COMPACT", on[i], 1);
		assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
		assert_true(cfg.storage.compact);
		atel__config_free(&cfg);
	}
	setenv("ATEL_COMPACT", "yes", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ATEL_COMPACT"));
	atel__config_free(&cfg);
	unsetenv("ATEL_COMPACT");
}

/* remote_write.headers: the opentelemetry.headers rules (same code), plus the
 * headers remote write sets itself refused by name; values never shown. */
static void test_remote_write_headers(void **state)
{
	struct atel_config cfg;
	char err[512] = "", *shown;
	cJSON *o;
	const cJSON *h;
	static const char txt[] = "{\"remote_write\": {\"url\": \"http://central:9090/api/v1/write\", "
				  "\"headers\": {\"X-Scope-OrgID\": \"tenant-a\", \"Authorization\": \"Basic c2VjcmV0\"}}}";

	(void)state;
	assert_int_equal(atel__config_parse(&cfg, txt, strlen(txt), "t.json", err, sizeof(err)), 0);
	assert_int_equal(cfg.remote_write.nheaders, 2);
	assert_string_equal(cfg.remote_write.headers[0].key, "X-Scope-OrgID");
	assert_string_equal(cfg.remote_write.headers[0].value, "tenant-a");
	assert_string_equal(cfg.remote_write.headers[1].key, "Authorization");
	assert_string_equal(cfg.remote_write.headers[1].value, "Basic c2VjcmV0");
	assert_int_equal(cfg.opentelemetry.nheaders, 0); /* each section its own list */
	/* --check-config and the status file: names only */
	o = atel__config_json(&cfg);
	assert_non_null(o);
	h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "remote_write"), "headers");
	assert_true(cJSON_IsObject(h));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(h, "X-Scope-OrgID")->valuestring, "(set, not shown)");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(h, "Authorization")->valuestring, "(set, not shown)");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
				 cJSON_GetObjectItemCaseSensitive(o, "opentelemetry"), "headers")), 0);
	shown = cJSON_PrintUnformatted(o);
	assert_non_null(shown);
	assert_null(strstr(shown, "tenant-a"));
	assert_null(strstr(shown, "c2VjcmV0"));
	cJSON_free(shown);
	cJSON_Delete(o);
	atel__config_free(&cfg);
	assert_int_equal(cfg.remote_write.nheaders, 0);

	/* what remote write sets itself, in any case */
	expect_error("{\"remote_write\": {\"headers\": {\"Content-Type\": \"text/plain\"}}}",
		     "t.json: remote_write.headers.Content-Type: refused: remote write sets Content-Type itself");
	expect_error("{\"remote_write\": {\"headers\": {\"X-A\": \"1\", \"content-encoding\": \"gzip\"}}}",
		     "t.json: remote_write.headers.content-encoding: refused: remote write sets Content-Encoding "
		     "itself");
	expect_error("{\"remote_write\": {\"headers\": {\"X-Prometheus-Remote-Write-Version\": \"2.0.0\"}}}",
		     "t.json: remote_write.headers.X-Prometheus-Remote-Write-Version: refused: remote write sets "
		     "X-Prometheus-Remote-Write-Version itself");
	expect_error("{\"remote_write\": {\"headers\": {\"Content-Length\": \"1\"}}}",
		     "t.json: remote_write.headers.Content-Length: refused: remote write sets Content-Length itself");
	/* Authorization only when bearer_token sets it, whatever the keys' order */
	expect_error("{\"remote_write\": {\"bearer_token\": \"t0k\", \"headers\": {\"Authorization\": \"Basic x\"}}}",
		     "t.json: remote_write.headers.Authorization: refused: remote_write.bearer_token sets "
		     "Authorization (use one of the two)");
	expect_error("{\"remote_write\": {\"headers\": {\"authorization\": \"Basic x\"}, \"bearer_token\": \"t0k\"}}",
		     "t.json: remote_write.headers.authorization: refused: remote_write.bearer_token sets "
		     "Authorization (use one of the two)");
	/* the shared rules name this section; values are never echoed */
	expect_error("{\"remote_write\": {\"headers\": {\"X-Token\": \"s3cr3t\\r\\nX: y\"}}}",
		     "t.json: remote_write.headers.X-Token: expected a single-line string, got a string with a line "
		     "break");
	expect_error("{\"remote_write\": {\"headers\": {\"X-Token\": 12345}}}",
		     "t.json: remote_write.headers.X-Token: expected a single-line string, got a number");
	expect_error("{\"remote_write\": {\"headers\": {\"Bad:Name\": \"v\"}}}",
		     "t.json: remote_write.headers: header name \"Bad:Name\" is not a valid HTTP field name");
	expect_error("{\"remote_write\": {\"headers\": {\"X-A\": \"1\", \"x-a\": \"2\"}}}",
		     "t.json: remote_write.headers.x-a: duplicate header");
	expect_error("{\"remote_write\": {\"headers\": \"X-A: 1\"}}",
		     "t.json: remote_write.headers: expected an object of string values (at most 16), got \"X-A: 1\"");
	{
		char text[2048];
		size_t n = (size_t)snprintf(text, sizeof(text), "{\"remote_write\": {\"headers\": {");

		for (int i = 0; i < 17; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"h%d\": \"v\"", i ? ", " : "", i);
		snprintf(text + n, sizeof(text) - n, "}}}");
		expect_error(text, "t.json: remote_write.headers: at most 16 headers, got more");
	}
	/* the instance label from the environment (a DaemonSet's node name) */
	setenv("ATEL_REMOTE_WRITE_INSTANCE", "node-7", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.remote_write.instance, "node-7");
	atel__config_free(&cfg);
	unsetenv("ATEL_REMOTE_WRITE_INSTANCE");
}

static void test_syntax(void **state)
{
	(void)state;
	expect_error("{\n  \"data_dir\": \"x\",\n  oops\n}", "t.json: line 3, column 4: invalid JSON");
	expect_error("{\"data_dir\": \"x\"", "t.json: line 1, column 16: invalid JSON");
	expect_error("[1, 2]", "t.json: expected a JSON object at the top level, got an array");
	expect_error("{} x", "t.json: line 1, column 4: unexpected text after the JSON object");
	expect_error("{\"log_level\": \"info\", \"log_level\": \"debug\"}", "t.json: log_level: duplicate key");
	expect_error("{\"json\": {\"maxFiles\": 1, \"maxFiles\": 2}}", "t.json: json.maxFiles: duplicate key");
	expect_error("", "t.json: line 1, column 1: invalid JSON (unexpected end of input)");
}

static void test_headers(void **state)
{
	(void)state;
	/* a bad header value is never echoed: it may be a token */
	expect_error("{\"opentelemetry\": {\"headers\": {\"Authorization\": 12345}}}",
		     "t.json: opentelemetry.headers.Authorization: expected a single-line string, got a number");
	expect_error("{\"opentelemetry\": {\"headers\": {\"Authorization\": \"Bearer a\\r\\nX: y\"}}}",
		     "t.json: opentelemetry.headers.Authorization: expected a single-line string, got a string with "
		     "a line break");
	expect_error("{\"opentelemetry\": {\"headers\": {\"Bad Name\": \"v\"}}}",
		     "t.json: opentelemetry.headers: header name \"Bad Name\" is not a valid HTTP field name");
	expect_error("{\"opentelemetry\": {\"headers\": {\"A\": \"1\", \"a\": \"2\"}}}",
		     "t.json: opentelemetry.headers.a: duplicate header");
	expect_error("{\"opentelemetry\": {\"headers\": [\"A\"]}}",
		     "t.json: opentelemetry.headers: expected an object of string values (at most 16), got [\"A\"]");
	{
		char text[2048];
		size_t n = (size_t)snprintf(text, sizeof(text), "{\"opentelemetry\": {\"headers\": {");

		for (int i = 0; i < 17; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\"h%d\": \"v\"", i ? ", " : "", i);
		snprintf(text + n, sizeof(text) - n, "}}}");
		expect_error(text, "t.json: opentelemetry.headers: at most 16 headers, got more");
	}
}

static void test_nullable(void **state)
{
	struct atel_config cfg;
	char err[256];
	const char *t = "{\"prometheus\": {\"bearer_token\": null}, \"shm\": {\"mode\": 416}}";

	(void)state;
	assert_int_equal(atel__config_parse(&cfg, t, strlen(t), "t.json", err, sizeof(err)), 0);
	assert_null(cfg.prometheus.bearer_token);
	assert_int_equal(cfg.shm.mode, 0640);
	atel__config_free(&cfg);
}

static void test_env(void **state)
{
	struct atel_config cfg;
	char err[512] = "";

	(void)state;
	setenv("ATEL_SHM", "envshm", 1);
	setenv("ATEL_DATA_DIR", "/tmp/envdir", 1);
	setenv("ATEL_PROMETHEUS_PORT", "9999", 1);
	setenv("ATEL_LOG_LEVEL", "warn", 1);
	setenv("ATEL_EXPORT_INTERVAL_MS", "2000", 1);
	setenv("ATEL_IO", "io_uring", 1);
	setenv("ATEL_ENCODING", "columns", 1);
	setenv("OTEL_SERVICE_NAME", "agents", 1);
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.shm.name, "envshm");
	assert_string_equal(cfg.data_dir, "/tmp/envdir");
	assert_string_equal(cfg.json.outputDir, "/tmp/envdir/exports"); /* follows data_dir */
	assert_int_equal(cfg.prometheus.port, 9999);
	assert_string_equal(cfg.log_level, "warn");
	assert_int_equal(cfg.export_interval_ms, 2000);
	assert_string_equal(cfg.storage.io, "io_uring");
	assert_string_equal(cfg.storage.encoding, "columns");
	assert_string_equal(cfg.opentelemetry.service_name, "agents");
	assert_string_equal(cfg.opentelemetry.endpoint, "http://collector:4318");
	assert_true(cfg.opentelemetry.enabled);
	atel__config_free(&cfg);

	setenv("ATEL_FORCE_PWRITEV", "1", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(cfg.storage.io, "pwritev");
	atel__config_free(&cfg);

	setenv("ATEL_FORCE_PWRITEV", "yes", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment ATEL_FORCE_PWRITEV: expected 0 or 1, got \"yes\"");
	atel__config_free(&cfg);
	unsetenv("ATEL_FORCE_PWRITEV");

	setenv("ATEL_PROMETHEUS_PORT", "http", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment ATEL_PROMETHEUS_PORT (prometheus.port): expected an integer 1..65535, "
				 "got \"http\"");
	atel__config_free(&cfg);
	setenv("ATEL_PROMETHEUS_PORT", "9999x", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), -EINVAL);
	atel__config_free(&cfg);
	clear_env(NULL);

	setenv("ATEL_LOG_LEVEL", "loud", 1);
	assert_int_equal(atel__config_load(&cfg, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "environment ATEL_LOG_LEVEL (log_level): expected one of \"error\", \"warn\", "
				 "\"info\", \"debug\", got \"loud\"");
	atel__config_free(&cfg);
	clear_env(NULL);
}

static void test_file(void **state)
{
	char path[] = "/tmp/atel-test-config-XXXXXX";
	const char *good = "{\"data_dir\": \"/d\", \"prometheus\": {\"port\": 9100}}";
	const char *bad = "{\"prometheus\": {\"port\": true}}";
	struct atel_config cfg;
	char err[512], want[600];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, good, strlen(good)), (ssize_t)strlen(good));
	close(fd);
	setenv("ATEL_PROMETHEUS_PORT", "9200", 1); /* environment beats the file */
	assert_int_equal(atel__config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(cfg.data_dir, "/d");
	assert_string_equal(cfg.json.outputDir, "/d/exports");
	assert_int_equal(cfg.prometheus.port, 9200);
	atel__config_free(&cfg);
	unsetenv("ATEL_PROMETHEUS_PORT");

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
	close(fd);
	assert_int_equal(atel__config_load(&cfg, path, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s: prometheus.port: expected an integer 1..65535, got true", path);
	assert_string_equal(err, want);
	atel__config_free(&cfg);
	unlink(path);

	assert_int_equal(atel__config_load(&cfg, path, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
	atel__config_free(&cfg);

	assert_int_equal(atel__config_load(&cfg, "/tmp", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "/tmp: not a regular file");
	atel__config_free(&cfg);
}

static void test_free_null(void **state)
{
	(void)state;
	atel__config_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_defaults, clear_env),
		cmocka_unit_test_setup(test_full_file, clear_env),
		cmocka_unit_test_setup(test_unknown_keys, clear_env),
		cmocka_unit_test_setup(test_wrong_types, clear_env),
		cmocka_unit_test_setup(test_ranges, clear_env),
		cmocka_unit_test_setup(test_remote_write, clear_env),
		cmocka_unit_test_setup(test_remote_write_headers, clear_env),
		cmocka_unit_test_setup(test_otlp_receiver, clear_env),
		cmocka_unit_test_setup(test_compact_keys, clear_env),
		cmocka_unit_test_setup(test_syntax, clear_env),
		cmocka_unit_test_setup(test_headers, clear_env),
		cmocka_unit_test_setup(test_nullable, clear_env),
		cmocka_unit_test_setup(test_env, clear_env),
		cmocka_unit_test_setup(test_file, clear_env),
		cmocka_unit_test(test_free_null),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
