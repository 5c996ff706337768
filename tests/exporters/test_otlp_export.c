/* SPDX-License-Identifier: MIT */
/*
 * test_otlp_export: the OTLP exporter against a loopback test collector
 * (otlp_collector.py, which decodes every request with the official protos):
 * retries (exact attempt counts, Retry-After honoured), no retry on 400,
 * partial success, an outage, a restart with the persisted cursor, producer
 * death, headers, gzip, JSON, metrics, and that tokens never reach logs.
 * Plus unit tests of the settings (endpoint derivation, OTEL_* variables),
 * the header/resource-attribute parser, Retry-After, backoff, the response
 * decoder and the cursor file.
 *
 * The span source is a fake log (an in-memory list of decoded events with
 * synthetic positions), so these tests exercise the exporter's assembly and
 * cursor logic exactly; test_otlp_log.c runs it over real segment files.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include <cjson/cJSON.h>

#include "otlp_export.h"
#include "otlp_test_util.h"

#define TOKEN "s3cr3t-t0ken-XYZ"

/* ---- environment tables --------------------------------------------------- */

static const char *const *g_env;

static const char *fake_env(const char *name)
{
	for (const char *const *p = g_env; p && *p; p += 2)
		if (!strcmp(p[0], name))
			return p[1];
	return NULL;
}

static int resolve(struct atel_otlp_settings *s, const struct atel_otlp_config *cfg, const char *const *env, char *err,
		   size_t errlen)
{
	g_env = env;
	return atel__otlp_settings_resolve(s, cfg, fake_env, err, errlen);
}

static const char *hdr(const struct atel_otlp_signal *g, const char *k)
{
	for (uint32_t i = 0; i < g->nheaders; i++)
		if (!strcasecmp(g->headers[i].key, k))
			return g->headers[i].value;
	return NULL;
}

/* ---- settings unit tests ---------------------------------------------------- */

static void test_endpoint_rules(void **state)
{
	struct atel_otlp_settings s;
	struct atel_otlp_config cfg;
	char err[256];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	/* defaults */
	assert_int_equal(resolve(&s, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(s.traces.url, "http://localhost:4318/v1/traces");
	assert_string_equal(s.metrics.url, "http://localhost:4318/v1/metrics");
	assert_false(s.traces.json);
	assert_true(s.traces.gzip);
	assert_int_equal(s.traces.timeout_ms, 10000);
	assert_string_equal(s.service_name, "atel");
	atel__otlp_settings_free(&s);

	/* docs/reference.md's example: a full metrics URL; traces derived from its base */
	cfg.endpoint = "http://localhost:4318/v1/metrics";
	cfg.protocol = "http";
	assert_int_equal(resolve(&s, &cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(s.metrics.url, "http://localhost:4318/v1/metrics");
	assert_string_equal(s.traces.url, "http://localhost:4318/v1/traces");
	assert_false(s.metrics.json); /* "http" = http/protobuf */
	atel__otlp_settings_free(&s);

	cfg.endpoint = "https://otel.example:443/prefix/v1/traces";
	assert_int_equal(resolve(&s, &cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(s.traces.url, "https://otel.example:443/prefix/v1/traces");
	assert_string_equal(s.metrics.url, "https://otel.example:443/prefix/v1/metrics");
	atel__otlp_settings_free(&s);

	/* a base URL with a path and trailing slashes */
	cfg.endpoint = "http://collector:4318/otlp//";
	assert_int_equal(resolve(&s, &cfg, NULL, err, sizeof(err)), 0);
	assert_string_equal(s.traces.url, "http://collector:4318/otlp/v1/traces");
	assert_string_equal(s.metrics.url, "http://collector:4318/otlp/v1/metrics");
	atel__otlp_settings_free(&s);

	/* OTEL_EXPORTER_OTLP_ENDPOINT is always a base (spec), and beats config */
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://gen:4318/", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), 0);
		assert_string_equal(s.traces.url, "http://gen:4318/v1/traces");
		assert_string_equal(s.metrics.url, "http://gen:4318/v1/metrics");
		atel__otlp_settings_free(&s);
	}
	/* per-signal variables are used as-is and beat the general one */
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", "http://gen:4318",
				      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/custom/path",
				      "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:2", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), 0);
		assert_string_equal(s.traces.url, "http://t:1/custom/path");
		assert_string_equal(s.metrics.url, "http://m:2");
		atel__otlp_settings_free(&s);
	}
	/* bad URLs are rejected with the variable named */
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
		assert_non_null(strstr(err, "http://"));
	}
	cfg.endpoint = "localhost:4318";
	assert_int_equal(resolve(&s, &cfg, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "opentelemetry.endpoint"));
}

static void test_env_options(void **state)
{
	struct atel_otlp_settings s;
	struct atel_otlp_config cfg;
	struct atel_kv h[2] = { { "Authorization", "Bearer cfg-token" }, { "X-Cfg", "1" } };
	char err[256];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.headers[0] = h[0];
	cfg.headers[1] = h[1];
	cfg.nheaders = 2;
	cfg.protocol = "http/json";
	cfg.compression = "none";
	cfg.service_name = "from-config";
	{
		const char *env[] = {
			"OTEL_EXPORTER_OTLP_HEADERS", " authorization = Bearer%20env%2Ctoken , X-Env=a%3Db,",
			"OTEL_EXPORTER_OTLP_METRICS_HEADERS", "X-Env=metrics-only",
			"OTEL_EXPORTER_OTLP_TIMEOUT", "2500",
			"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700",
			"OTEL_EXPORTER_OTLP_COMPRESSION", "gzip",
			"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf",
			"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-res,deployment.environment=prod,team=a%20b",
			NULL,
		};

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), 0);
	}
	/* env overrides config case-insensitively; values percent-decoded and trimmed */
	assert_string_equal(hdr(&s.traces, "Authorization"), "Bearer env,token");
	assert_string_equal(hdr(&s.traces, "X-Cfg"), "1");
	assert_string_equal(hdr(&s.traces, "X-Env"), "a=b");
	assert_string_equal(hdr(&s.metrics, "X-Env"), "metrics-only");
	assert_int_equal(s.traces.nheaders, 3);
	assert_int_equal(s.traces.timeout_ms, 700);
	assert_int_equal(s.metrics.timeout_ms, 2500);
	assert_true(s.traces.gzip && s.metrics.gzip);
	assert_true(s.traces.json);
	assert_false(s.metrics.json);
	/* OTEL_RESOURCE_ATTRIBUTES' service.name beats the config */
	assert_string_equal(s.service_name, "from-res");
	assert_int_equal(s.nres_attrs, 2);
	assert_string_equal(s.res_attrs[0].key, "deployment.environment");
	assert_string_equal(s.res_attrs[1].value, "a b");
	atel__otlp_settings_free(&s);
	{
		const char *env[] = { "OTEL_RESOURCE_ATTRIBUTES", "service.name=from-res", "OTEL_SERVICE_NAME", "svc",
				      NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), 0);
		assert_string_equal(s.service_name, "svc");
		atel__otlp_settings_free(&s);
	}
	/* errors name the variable, never quote a header value */
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer " TOKEN ",novalue", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_HEADERS: entry 2: missing '='"));
		assert_null(strstr(err, TOKEN));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=" TOKEN "%0d%0aX-Injected=1", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "CR or LF"));
		assert_null(strstr(err, TOKEN));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_HEADERS", "Bad Name=x", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "not an HTTP token"));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_HEADERS", "a=%zz", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "percent-encoding"));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "grpc"));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_TIMEOUT", "10s", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_TIMEOUT"));
	}
	{
		const char *env[] = { "OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", NULL };

		assert_int_equal(resolve(&s, &cfg, env, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "gzip or none"));
	}
}

static void test_retry_after_and_backoff(void **state)
{
	uint32_t ms = 0;
	uint64_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */

	(void)state;
	assert_int_equal(atel__otlp_parse_retry_after("120", 3, now, &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(atel__otlp_parse_retry_after(" 0\r\n", 4, now, &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(atel__otlp_parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", 29, now, &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(atel__otlp_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", 29, now, &ms), 0);
	assert_int_equal(ms, 0); /* in the past */
	assert_int_equal(atel__otlp_parse_retry_after("99999999999999999999", 20, now, &ms), 0);
	assert_int_equal(ms, 3600000); /* capped */
	assert_int_equal(atel__otlp_parse_retry_after("soon", 4, now, &ms), -EINVAL);
	assert_int_equal(atel__otlp_parse_retry_after("-5", 2, now, &ms), -EINVAL);
	assert_int_equal(atel__otlp_parse_retry_after("12abc", 5, now, &ms), -EINVAL);
	assert_int_equal(atel__otlp_parse_retry_after("", 0, now, &ms), -EINVAL);

	/* exponential, equal jitter in [d/2, d], capped, floor at Retry-After */
	for (uint64_t r = 0; r < 1000; r += 37) {
		uint32_t d1 = atel__otlp_backoff_ms(1, 0, 500, 30000, r);
		uint32_t d3 = atel__otlp_backoff_ms(3, 0, 500, 30000, r);
		uint32_t d20 = atel__otlp_backoff_ms(20, 0, 500, 30000, r);

		assert_in_range(d1, 250, 500);
		assert_in_range(d3, 1000, 2000);
		assert_in_range(d20, 15000, 30000);
		assert_true(atel__otlp_backoff_ms(1, 7000, 500, 30000, r) == 7000);
	}
	assert_int_not_equal(atel__otlp_backoff_ms(4, 0, 500, 30000, 1), atel__otlp_backoff_ms(4, 0, 500, 30000, 2));
}

static void test_response_parse(void **state)
{
	int64_t rej;
	char msg[64];
	/* ExportTracePartialSuccess{rejected_spans: 3, error_message: "too old"} in field 1 */
	const uint8_t pb[] = { 0x0a, 0x0b, 0x08, 0x03, 0x12, 0x07, 't', 'o', 'o', ' ', 'o', 'l', 'd' };
	const uint8_t trunc[] = { 0x0a, 0x0b, 0x08, 0x03 };
	const uint8_t unknown[] = { 0x10, 0x05, 0x1d, 1, 2, 3, 4, 0x0a, 0x02, 0x08, 0x07 };

	(void)state;
	assert_int_equal(atel__otlp_parse_response(NULL, 0, false, &rej, msg, sizeof(msg)), 0);
	assert_int_equal(rej, 0);
	assert_int_equal(atel__otlp_parse_response(pb, sizeof(pb), false, &rej, msg, sizeof(msg)), 0);
	assert_int_equal(rej, 3);
	assert_string_equal(msg, "too old");
	assert_int_equal(atel__otlp_parse_response(trunc, sizeof(trunc), false, &rej, msg, sizeof(msg)), -EBADMSG);
	assert_non_null(strstr(msg, "partial_success"));
	assert_int_equal(atel__otlp_parse_response(unknown, sizeof(unknown), false, &rej, msg, sizeof(msg)), 0);
	assert_int_equal(rej, 7);
	{
		const char *j = "{\"partialSuccess\":{\"rejectedSpans\":\"5\",\"errorMessage\":\"bad\\nattr\"}}";

		assert_int_equal(atel__otlp_parse_response(j, strlen(j), true, &rej, msg, sizeof(msg)), 0);
		assert_int_equal(rej, 5);
		assert_string_equal(msg, "bad?attr");
	}
	{
		const char *j = "{\"partialSuccess\":{\"rejectedDataPoints\":2}}";

		assert_int_equal(atel__otlp_parse_response(j, strlen(j), true, &rej, msg, sizeof(msg)), 0);
		assert_int_equal(rej, 2);
	}
	{
		const char *j = "{}";

		assert_int_equal(atel__otlp_parse_response(j, 2, true, &rej, msg, sizeof(msg)), 0);
		assert_int_equal(rej, 0);
	}
	assert_int_equal(atel__otlp_parse_response("{\"partialSuccess\":{\"rejectedSpans\":\"x\"}}", 40, true, &rej, msg,
						   sizeof(msg)),
			 -EBADMSG);
	assert_int_equal(atel__otlp_parse_response("[", 1, true, &rej, msg, sizeof(msg)), -EBADMSG);
}

static void test_cursor_file(void **state)
{
	char path[512];
	struct atel_log_pos r = { 7, 123456789012ull, 42 }, a = { 8, 9, 10 }, r2, a2;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/cursor-unit", g_tmp);
	assert_int_equal(atel__otlp_cursor_load(path, &r2, &a2, NULL, NULL), -ENOENT);
	{
		const uint8_t ids[2][24] = { { 0xff, 1 }, { 0x01, 2 } };

		assert_int_equal(atel__otlp_cursor_save(path, &r, &a, ids, 2), 0);
	}
	{
		uint8_t(*pend)[24] = NULL;
		uint32_t npend = 0;

		assert_int_equal(atel__otlp_cursor_load(path, &r2, &a2, &pend, &npend), 0);
		assert_int_equal(npend, 2);
		assert_int_equal(pend[0][0], 0x01); /* sorted */
		assert_int_equal(pend[0][1], 2);
		assert_int_equal(pend[1][0], 0xff);
		free(pend);
	}
	assert_true(r2.file_seq == 7 && r2.frame_off == 123456789012ull && r2.rec_idx == 42);
	assert_true(a2.file_seq == 8 && a2.frame_off == 9 && a2.rec_idx == 10);
	f = fopen(path, "w");
	fputs("atel-otlp-cursor 1\nresume 1 2\n", f);
	fclose(f);
	assert_int_equal(atel__otlp_cursor_load(path, &r2, &a2, NULL, NULL), -EINVAL);
	unlink(path);
}

/* ---- fake log ------------------------------------------------------------------ */

struct fake_log {
	pthread_mutex_t lock;
	struct atel_event ev[4096];
	char *strs[8192];
	unsigned nev, nstr;
	unsigned opens;
};
static struct fake_log FL = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const char *keep(const char *s)
{
	char *p = strdup(s);

	FL.strs[FL.nstr++] = p;
	return p;
}

static void fl_reset(void)
{
	pthread_mutex_lock(&FL.lock);
	for (unsigned i = 0; i < FL.nstr; i++)
		free(FL.strs[i]);
	FL.nstr = FL.nev = FL.opens = 0;
	pthread_mutex_unlock(&FL.lock);
}

static void ids_of(unsigned span, uint8_t tid[16], uint8_t sid[8])
{
	for (int i = 0; i < 16; i++)
		tid[i] = (uint8_t)(0xa0 + (span >> 8));
	memset(sid, 0x11, 8);
	sid[6] = (uint8_t)(span >> 8);
	sid[7] = (uint8_t)span;
}

static void sid_hex(unsigned span, char out[17])
{
	uint8_t tid[16], sid[8];

	ids_of(span, tid, sid);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", sid[i]);
}

static struct atel_event *fl_add(enum atel_ev_kind kind, int32_t pid)
{
	struct atel_event *e = &FL.ev[FL.nev];

	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->pid = pid;
	e->ring = (uint32_t)pid;
	e->generation = 1;
	e->ts_ns = 1700000000000000000ull + FL.nev * 1000ull;
	e->comm = "";
	return e;
}

static void fl_commit(void)
{
	/* publish one event to the exporter thread */
	FL.nev++;
}

static void span_start(unsigned span, unsigned parent, const char *name, int32_t pid)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_SPAN_START, pid);
	ids_of(span, e->span_start.trace_id, e->span_start.span_id);
	if (parent) {
		uint8_t t[16];

		ids_of(parent, t, e->span_start.parent_id);
	}
	e->span_start.kind = 1;
	e->span_start.flags = 1;
	e->span_start.name = keep(name);
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void span_attr(unsigned span, const char *key, struct atel_attr_value v, bool event_attr)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_SPAN_ATTR, 1);
	ids_of(span, e->span_attr.trace_id, e->span_attr.span_id);
	e->span_attr.key = keep(key);
	if (v.vtype == ATEL_VT_STR)
		v.s = keep(v.s);
	e->span_attr.v = v;
	e->span_attr.event_attr = event_attr;
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void span_event(unsigned span, const char *name, uint16_t nattrs)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_SPAN_EVENT, 1);
	ids_of(span, e->span_event.trace_id, e->span_event.span_id);
	e->span_event.name = keep(name);
	e->span_event.nattrs = nattrs;
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void span_error(unsigned span, const char *type, const char *msg)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_SPAN_ERROR, 1);
	ids_of(span, e->span_error.trace_id, e->span_error.span_id);
	e->span_error.type = keep(type);
	e->span_error.msg = keep(msg);
	e->span_error.msg_len = (uint32_t)strlen(msg);
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void span_end(unsigned span, uint8_t status, const char *msg)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_SPAN_END, 1);
	ids_of(span, e->span_end.trace_id, e->span_end.span_id);
	e->span_end.status = status;
	e->span_end.msg = keep(msg);
	e->span_end.msg_len = (uint32_t)strlen(msg);
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void producer_death(int32_t pid)
{
	struct atel_event *e;

	pthread_mutex_lock(&FL.lock);
	e = fl_add(ATEL_EV_DEATH, pid);
	e->death.pid = pid;
	e->death.generation = 1;
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

/* a metric sample in the log: irrelevant to spans, moves the read position */
static void noise(void)
{
	pthread_mutex_lock(&FL.lock);
	fl_add(ATEL_EV_LOSS, 1);
	fl_commit();
	pthread_mutex_unlock(&FL.lock);
}

static void simple_span(unsigned span)
{
	char name[32];

	snprintf(name, sizeof(name), "span-%u", span);
	span_start(span, 0, name, 1);
	span_end(span, 1, "");
}

struct fl_handle {
	unsigned idx;
};

static int fl_open(void *arg, const struct atel_log_pos *start, void **h)
{
	struct fl_handle *fh = calloc(1, sizeof(*fh));

	(void)arg;
	/* positions: event i sits at {1, i, 0}; {0,0,0} is the beginning */
	fh->idx = start->file_seq ? (unsigned)start->frame_off : 0;
	pthread_mutex_lock(&FL.lock);
	FL.opens++;
	pthread_mutex_unlock(&FL.lock);
	*h = fh;
	return 0;
}

static int fl_next(void *h, struct atel_event *ev, struct atel_log_pos *after)
{
	struct fl_handle *fh = h;
	int rc = 0;

	pthread_mutex_lock(&FL.lock);
	if (fh->idx < FL.nev) {
		*ev = FL.ev[fh->idx];
		fh->idx++;
		*after = (struct atel_log_pos){ 1, fh->idx, 0 };
		rc = 1;
	}
	pthread_mutex_unlock(&FL.lock);
	return rc;
}

static unsigned fl_opens(void)
{
	unsigned n;

	pthread_mutex_lock(&FL.lock);
	n = FL.opens;
	pthread_mutex_unlock(&FL.lock);
	return n;
}

static void fl_close(void *h)
{
	free(h);
}

static const struct atel_otlp_source FAKE_SRC = { NULL, fl_open, fl_next, fl_close };

static int delivered(const struct collector *c, unsigned span)
{
	char hex[17];

	sid_hex(span, hex);
	return delivered_hex(c, hex);
}

static cJSON *find_span(cJSON *recs, unsigned span)
{
	char hex[17];

	sid_hex(span, hex);
	return find_span_hex(recs, hex);
}

/* ---- exporter harness --------------------------------------------------------- */

static struct atel_daemon D;
static void settings_for(struct atel_otlp_settings *s, int port, const char *protocol, const char *compression)
{
	char ep[64], err[256];
	const char *env[] = { "OTEL_EXPORTER_OTLP_ENDPOINT", ep,
			      "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20" TOKEN ",X-Tenant=acme",
			      "OTEL_EXPORTER_OTLP_PROTOCOL", protocol,
			      "OTEL_EXPORTER_OTLP_COMPRESSION", compression,
			      "OTEL_EXPORTER_OTLP_TIMEOUT", "20000",
			      "OTEL_SERVICE_NAME", "svc-under-test",
			      NULL };

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	assert_int_equal(resolve(s, NULL, env, err, sizeof(err)), 0);
}

static uint32_t g_max_items, g_max_bytes; /* batch bounds for the next exporter_start (0: defaults) */
static uint32_t g_orphan_window, g_open_max;

static struct atel_otlp *exporter_start(int port, const char *protocol, const char *compression, const char *state_dir,
					struct atel_agg *agg)
{
	struct atel_otlp_settings s;
	struct atel_otlp_opts op;
	struct atel_otlp *o;
	char err[256];

	settings_for(&s, port, protocol, compression);
	if (g_max_items)
		s.max_batch_items = g_max_items;
	if (g_max_bytes)
		s.max_batch_bytes = g_max_bytes;
	memset(&op, 0, sizeof(op));
	op.d = &D;
	op.agg = agg;
	op.settings = &s;
	op.source = &FAKE_SRC;
	op.state_dir = state_dir;
	op.traces = agg == NULL;
	op.metrics = agg != NULL;
	op.interval_ms = 100;
	op.poll_ms = 20;
	op.backoff_base_ms = 10;
	op.backoff_max_ms = 200;
	op.metrics_max_attempts = 3;
	op.orphan_window = g_orphan_window;
	op.open_spans_max = g_open_max;
	assert_int_equal(atel__otlp_start_opts(&o, &op, err, sizeof(err)), 0);
	atel__otlp_settings_free(&s);
	return o;
}

static struct atel_otlp_stats stats(struct atel_otlp *o)
{
	struct atel_otlp_stats st;

	atel__otlp_get_stats(o, &st);
	return st;
}

static unsigned export_rows(struct atel_export_row *out, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&D.export_lock);
	for (uint32_t i = 0; i < D.export_q_len && n < max; i++)
		out[n++] = D.export_q[(D.export_q_head + i) % 256];
	pthread_mutex_unlock(&D.export_lock);
	return n;
}

static int setup(void **state)
{
	(void)state;
	g_max_items = g_max_bytes = g_orphan_window = g_open_max = 0;
	fl_reset();
	atel__state_init(&D, NULL, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	atel__state_fini(&D);
	fl_reset();
	return 0;
}

/* ---- exporter tests ------------------------------------------------------------ */

/* Full content over http/protobuf + gzip; headers sent; token never logged. */
static void test_content_headers_gzip(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	cJSON *recs, *r, *s1, *s2, *h, *ev;
	char *log;

	(void)state;
	collector_start(&c, "", 0);
	span_start(1, 0, "orchestration-session", 1);
	span_start(2, 1, "coder-execution", 1);
	span_attr(2, "agent.type", (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = "coder" }, false);
	span_attr(2, "files", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = -42 }, false);
	span_attr(2, "ratio", (struct atel_attr_value){ .vtype = ATEL_VT_DOUBLE, .d = 0.25 }, false);
	span_attr(2, "ok", (struct atel_attr_value){ .vtype = ATEL_VT_BOOL, .b = true }, false);
	span_attr(2, "files", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = 3 }, false); /* replaces */
	span_event(2, "code_generation_started", 1);
	span_attr(2, "language", (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = "c" }, true);
	span_error(2, "ToolError", "disk full");
	span_end(2, 0, "");
	noise();
	span_end(1, 1, "");
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).spans_acked == 2);
	atel__otlp_stop(o);
	log = capture_end();
	collector_stop(&c);

	recs = records(&c);
	assert_int_equal(cJSON_GetArraySize(recs), 1);
	r = cJSON_GetArrayItem(recs, 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "valid")));
	assert_string_equal(jstr(r, "path"), "/v1/traces");
	assert_string_equal(jstr(r, "content_type"), "application/x-protobuf");
	assert_string_equal(jstr(r, "content_encoding"), "gzip");
	h = cJSON_GetObjectItem(r, "headers");
	assert_string_equal(jstr(h, "authorization"), "Bearer " TOKEN);
	assert_string_equal(jstr(h, "x-tenant"), "acme");
	/* completion order: span 2 ended first */
	s2 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "items"), 0);
	s1 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "items"), 1);
	assert_string_equal(jstr(s1, "name"), "orchestration-session");
	assert_string_equal(jstr(s1, "service"), "svc-under-test");
	assert_string_equal(jstr(s1, "scope"), "atel");
	assert_int_equal((int)jnum(s1, "status"), 1);
	assert_string_equal(jstr(s1, "parentSpanId"), "");
	assert_string_equal(jstr(s2, "name"), "coder-execution");
	{
		char hex[17];

		sid_hex(1, hex);
		assert_string_equal(jstr(s2, "parentSpanId"), hex);
	}
	assert_int_equal((int)jnum(s2, "kind"), 1);
	/* SPAN_ERROR: status ERROR with the exception's message, an "exception" event */
	assert_int_equal((int)jnum(s2, "status"), 2);
	assert_string_equal(jstr(s2, "statusMessage"), "disk full");
	{
		cJSON *a = cJSON_GetObjectItem(s2, "attributes");

		assert_string_equal(jstr(a, "agent.type"), "coder");
		assert_int_equal((int)jnum(a, "files"), 3);
		assert_true(jnum(a, "ratio") == 0.25);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "ok")));
		assert_int_equal(cJSON_GetArraySize(a), 4);
	}
	assert_true(jnum(s2, "end") > jnum(s2, "start"));
	ev = cJSON_GetObjectItem(s2, "events");
	assert_int_equal(cJSON_GetArraySize(ev), 2);
	assert_string_equal(jstr(cJSON_GetArrayItem(ev, 0), "name"), "code_generation_started");
	assert_string_equal(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 0), "attributes"), "language"), "c");
	assert_string_equal(jstr(cJSON_GetArrayItem(ev, 1), "name"), "exception");
	assert_string_equal(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 1), "attributes"), "exception.type"),
			    "ToolError");
	assert_string_equal(jstr(cJSON_GetObjectItem(cJSON_GetArrayItem(ev, 1), "attributes"), "exception.message"),
			    "disk full");
	assert_null(strstr(log, TOKEN));
	assert_non_null(strstr(log, "otlp: exporting traces"));
	free(log);
	cJSON_Delete(recs);
	unlink(c.record);
}

/* http/json, no compression: the collector parses it strictly. */
static void test_json_protocol(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	cJSON *recs, *r;

	(void)state;
	collector_start(&c, "", 0);
	for (unsigned i = 1; i <= 5; i++)
		simple_span(i);
	span_start(6, 1, "with \"quotes\" and \xc3\xa9", 1);
	span_attr(6, "nan", (struct atel_attr_value){ .vtype = ATEL_VT_DOUBLE, .d = NAN }, false);
	span_attr(6, "big", (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = INT64_MIN }, false);
	span_end(6, 2, "failed: \"x\"");
	capture_begin();
	o = exporter_start(c.port, "http/json", "none", NULL, NULL);
	WAIT_FOR(stats(o).spans_acked == 6);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	recs = records(&c);
	assert_int_equal(cJSON_GetArraySize(recs), 1);
	r = cJSON_GetArrayItem(recs, 0);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "valid")));
	assert_string_equal(jstr(r, "content_type"), "application/json");
	assert_string_equal(jstr(r, "content_encoding"), "");
	{
		cJSON *s6 = find_span(recs, 6);

		assert_non_null(s6);
		assert_string_equal(jstr(s6, "name"), "with \"quotes\" and \xc3\xa9");
		assert_string_equal(jstr(s6, "statusMessage"), "failed: \"x\"");
		assert_true(jnum(cJSON_GetObjectItem(s6, "attributes"), "big") < -9.2e18);
	}
	cJSON_Delete(recs);
	unlink(c.record);
}

/* 503, then 429 with Retry-After: 1, then 200: exactly 3 attempts, the
 * second retry waits at least the server's second. */
static void test_retry_and_retry_after(void **state)
{
	struct collector c = { 0 };
	struct atel_export_row rows[8];
	struct atel_otlp *o;
	cJSON *recs;
	double t1, t2;
	unsigned n;

	(void)state;
	collector_start(&c, "503,429:1,200", 0);
	for (unsigned i = 1; i <= 3; i++)
		simple_span(i);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).acked_batches[0] == 1);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	recs = records(&c);
	assert_int_equal(cJSON_GetArraySize(recs), 3);
	assert_int_equal((int)jnum(cJSON_GetArrayItem(recs, 0), "status"), 503);
	assert_int_equal((int)jnum(cJSON_GetArrayItem(recs, 1), "status"), 429);
	assert_int_equal((int)jnum(cJSON_GetArrayItem(recs, 2), "status"), 200);
	t1 = jnum(cJSON_GetArrayItem(recs, 1), "t");
	t2 = jnum(cJSON_GetArrayItem(recs, 2), "t");
	assert_true(t2 - t1 >= 0.95); /* lower bound only: Retry-After honoured */
	for (unsigned i = 1; i <= 3; i++)
		assert_int_equal(delivered(&c, i), 1);
	/* one telemetry_exports row per attempt */
	n = export_rows(rows, 8);
	assert_int_equal(n, 3);
	assert_int_equal(rows[0].status, 503);
	assert_int_equal(rows[1].status, 429);
	assert_int_equal(rows[2].status, 200);
	for (unsigned i = 0; i < 3; i++) {
		assert_string_equal(rows[i].exporter, "otlp");
		assert_string_equal(rows[i].signal, "traces");
		assert_int_equal(rows[i].items, 3);
		assert_true(rows[i].bytes > 0);
	}
	assert_non_null(strstr(rows[0].error, "HTTP 503"));
	assert_non_null(strstr(rows[1].error, "Retry-After"));
	assert_string_equal(rows[2].error, "");
	assert_int_equal(atomic_load(&D.health[ATEL_EXP_OTLP].attempts), 3);
	assert_int_equal(atomic_load(&D.health[ATEL_EXP_OTLP].failures), 2);
	cJSON_Delete(recs);
	unlink(c.record);
}

/* Retry-After as an HTTP date, and the exporter's own delay record. */
static void test_retry_after_date(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;

	(void)state;
	collector_start(&c, "429d:3", 0);
	simple_span(1);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "none", NULL, NULL);
	WAIT_FOR(stats(o).acked_batches[0] == 1);
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.attempts[0], 2);
	assert_int_equal(st.retries[0], 1);
	/* the date is 3 s ahead at whole-second resolution: at least 1 s even
	 * if the answer is read up to a second late */
	assert_true(st.last_retry_delay_ms >= 1000);
	assert_int_equal(nrecords(&c), 2);
	assert_int_equal(delivered(&c, 1), 1);
	unlink(c.record);
}

/* 400: one attempt, the batch is dropped, later batches still flow. */
static void test_no_retry_on_400(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	char *log;

	(void)state;
	collector_start(&c, "400", 0);
	simple_span(1);
	simple_span(2);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).dropped_batches[0] == 1);
	simple_span(3);
	WAIT_FOR(stats(o).acked_batches[0] == 1);
	st = stats(o);
	atel__otlp_stop(o);
	log = capture_end();
	collector_stop(&c);
	assert_int_equal(st.attempts[0], 2);
	assert_int_equal(st.retries[0], 0);
	assert_int_equal(st.spans_dropped, 2);
	assert_int_equal(st.spans_acked, 1);
	assert_int_equal(nrecords(&c), 2);
	assert_int_equal(delivered(&c, 3), 1);
	assert_non_null(strstr(log, "HTTP 400"));
	assert_non_null(strstr(log, "not retried"));
	assert_null(strstr(log, TOKEN));
	free(log);
	unlink(c.record);
}

/* Partial success: logged with the collector's message, not retried. */
static void partial_success(const char *protocol)
{
	struct collector c = { 0 };
	struct atel_export_row rows[4];
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	char *log;

	fl_reset();
	pthread_mutex_lock(&D.export_lock);
	D.export_q_len = 0;
	pthread_mutex_unlock(&D.export_lock);
	collector_start(&c, "partial:2:spans too old", 0);
	for (unsigned i = 1; i <= 4; i++)
		simple_span(i);
	capture_begin();
	o = exporter_start(c.port, protocol, "gzip", NULL, NULL);
	WAIT_FOR(stats(o).acked_batches[0] == 1);
	st = stats(o);
	atel__otlp_stop(o);
	log = capture_end();
	collector_stop(&c);
	assert_int_equal(st.attempts[0], 1);
	assert_int_equal(st.spans_rejected, 2);
	assert_int_equal(st.spans_acked, 4);
	assert_int_equal(nrecords(&c), 1);
	assert_non_null(strstr(log, "rejected 2 of 4 spans: spans too old"));
	assert_int_equal(export_rows(rows, 4), 1);
	assert_non_null(strstr(rows[0].error, "partial success: 2 rejected"));
	free(log);
	unlink(c.record);
}

/* the collector's answer in JSON (http/json) and in protobuf (http/protobuf) */
static void test_partial_success(void **state)
{
	(void)state;
	partial_success("http/json");
	partial_success("http/protobuf");
}

/* Collector down (connection refused), then up on the same port: every span
 * arrives exactly once. */
static void test_outage(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	int port;

	(void)state;
	collector_start(&c, "", 0);
	port = c.port;
	collector_stop(&c); /* now nothing listens on port */
	for (unsigned i = 1; i <= 20; i++)
		simple_span(i);
	capture_begin();
	o = exporter_start(port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).attempts[0] >= 4);
	assert_int_equal(stats(o).acked_batches[0], 0);
	for (unsigned i = 21; i <= 30; i++)
		simple_span(i);
	collector_start(&c, "", port);
	WAIT_FOR(stats(o).spans_acked == 30);
	for (unsigned i = 31; i <= 35; i++)
		simple_span(i);
	WAIT_FOR(stats(o).spans_acked == 35);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	for (unsigned i = 1; i <= 35; i++)
		assert_int_equal(delivered(&c, i), 1);
	unlink(c.record);
}

/* Restart: the cursor is persisted only after the collector answered; a new
 * exporter resumes without losing or re-sending anything, including a span
 * that was open across the restart and one acknowledged span whose records
 * lie after the resume point. */
static void test_restart_cursor(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	char sdir[300], cpath[400];
	struct atel_log_pos r, a;

	(void)state;
	snprintf(sdir, sizeof(sdir), "%s/state-%d", g_tmp, ++g_seq);
	snprintf(cpath, sizeof(cpath), "%s/otlp-traces.cursor", sdir);
	/* phase 0: collector down; stop during retries: nothing acknowledged */
	collector_start(&c, "", 0);
	{
		int port = c.port;

		collector_stop(&c);
		simple_span(1);
		capture_begin();
		o = exporter_start(port, "http/protobuf", "gzip", sdir, NULL);
		WAIT_FOR(stats(o).attempts[0] >= 2);
		atel__otlp_stop(o);
		free(capture_end());
		assert_int_equal(atel__otlp_cursor_load(cpath, &r, &a, NULL, NULL), 0);
		assert_int_equal(a.file_seq, 0); /* nothing acknowledged */
		c.port = port;
	}
	/* phase 1: span 7's END comes first (another ring), span 2 opens and
	 * stays open, 3 completes, then 7's START: 7 straddles span 2's start */
	collector_start(&c, "", c.port);
	span_end(7, 1, "");
	span_start(2, 0, "long-running", 1);
	simple_span(3);
	span_start(7, 0, "straddles", 1);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", sdir, NULL);
	WAIT_FOR(stats(o).spans_acked == 3); /* 1, 3 and 7 */
	st = stats(o);
	assert_int_equal(st.open_spans, 1);
	atel__otlp_stop(o);
	free(capture_end());
	{
		uint8_t(*pend)[24] = NULL;
		uint32_t npend = 0;
		uint8_t t[16], sid[8];

		assert_int_equal(atel__otlp_cursor_load(cpath, &r, &a, &pend, &npend), 0);
		/* resume at span 2's START (event 3), acked just after span 7's START (event 6) */
		assert_int_equal(r.frame_off, 3);
		assert_int_equal(a.frame_off, 7);
		assert_int_equal(npend, 1); /* span 2 */
		ids_of(2, t, sid);
		assert_memory_equal(pend[0] + 16, sid, 8);
		free(pend);
	}
	/* phase 2: span 2 ends, span 4 completes; a fresh exporter */
	span_end(2, 1, "");
	simple_span(4);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", sdir, NULL);
	WAIT_FOR(stats(o).spans_acked == 2); /* 2 and 4 */
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.spans_skipped_acked, 2); /* spans 3 and 7 re-read, not re-sent */
	assert_int_equal(st.open_spans, 0);          /* 7's START alone did not open a span */
	for (unsigned i = 1; i <= 4; i++)
		assert_int_equal(delivered(&c, i), 1);
	assert_int_equal(delivered(&c, 7), 1);
	/* phase 3: nothing new: a third exporter sends nothing */
	collector_start(&c, "", c.port);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", sdir, NULL);
	WAIT_FOR(fl_opens() >= 4);
	usleep(100000);
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.attempts[0], 0);
	assert_int_equal(st.open_spans, 0);
	for (unsigned i = 1; i <= 4; i++)
		assert_int_equal(delivered(&c, i), 1);
	unlink(cpath);
	rmdir(sdir);
	unlink(c.record);
}

/* A producer that died with a span open: exported as ERROR "producer exited". */
static void test_producer_death(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	cJSON *recs, *s;

	(void)state;
	collector_start(&c, "", 0);
	span_start(1, 0, "dies", 4242);
	span_start(2, 0, "other-process", 99);
	producer_death(4242);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).spans_acked == 1);
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.spans_producer_exited, 1);
	assert_int_equal(st.open_spans, 1);
	recs = records(&c);
	s = find_span(recs, 1);
	assert_non_null(s);
	assert_int_equal((int)jnum(s, "status"), 2);
	assert_string_equal(jstr(s, "statusMessage"), "producer exited");
	assert_null(find_span(recs, 2));
	cJSON_Delete(recs);
	unlink(c.record);
}

/* Header values never reach logs or errors, even when a server echoes them. */
static void test_token_redacted(void **state)
{
	struct collector c = { 0 };
	struct atel_export_row rows[4];
	struct atel_otlp *o;
	char *log;
	unsigned n;

	(void)state;
	collector_start(&c, "400echo", 0);
	simple_span(1);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, NULL);
	WAIT_FOR(stats(o).dropped_batches[0] == 1);
	atel__otlp_stop(o);
	log = capture_end();
	collector_stop(&c);
	assert_non_null(strstr(log, "HTTP 400"));
	assert_non_null(strstr(log, "echo: ****"));
	assert_null(strstr(log, TOKEN));
	n = export_rows(rows, 4);
	assert_int_equal(n, 1);
	assert_null(strstr(rows[0].error, TOKEN));
	assert_null(strstr(D.health[ATEL_EXP_OTLP].last_error, TOKEN));
	assert_non_null(strstr(D.health[ATEL_EXP_OTLP].last_error, "HTTP 400"));
	free(log);
	unlink(c.record);
}

/* Metrics: cumulative snapshots of the aggregates, every interval. */
static void test_metrics_export(void **state)
{
	struct collector c = { 0 };
	struct atel_agg *agg;
	struct atel_otlp *o;
	cJSON *recs, *r, *it;
	const double bounds[] = { 0.1, 1, 10 };
	struct atel_dec_series cs = { .id = 1, .mtype = ATEL_MT_COUNTER, .name = "tool_calls_total", .nlabels = 1,
				      .keys = { "tool" }, .values = { "Read" }, .key_hash = 11 };
	struct atel_dec_series gs = { .id = 2, .mtype = ATEL_MT_GAUGE, .name = "task_queue_size", .key_hash = 12 };
	struct atel_dec_series hs = { .id = 3, .mtype = ATEL_MT_HISTOGRAM, .name = "tool_call_duration_seconds",
				      .nlabels = 1, .keys = { "tool" }, .values = { "Read" }, .nbounds = 3,
				      .bounds = bounds, .key_hash = 13 };
	struct atel_event ev = { .kind = ATEL_EV_SAMPLE, .ts_ns = 1700000000000000000ull };
	bool saw_metrics = false;

	(void)state;
	assert_int_equal(atel__agg_new(&agg, 0), 0);
	ev.sample.series = &cs;
	ev.sample.value = 5;
	atel__agg_apply(agg, &ev);
	ev.sample.series = &gs;
	ev.sample.value = 7;
	ev.sample.set = true;
	atel__agg_apply(agg, &ev);
	ev.sample.series = &hs;
	ev.sample.set = false;
	ev.sample.value = 0.5;
	atel__agg_apply(agg, &ev);
	collector_start(&c, "503", 0);
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", NULL, agg);
	WAIT_FOR(stats(o).metrics_exports >= 2);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	recs = records(&c);
	assert_int_equal((int)jnum(cJSON_GetArrayItem(recs, 0), "status"), 503); /* retried */
	cJSON_ArrayForEach(r, recs)
	{
		int names = 0;

		if (jnum(r, "status") != 200)
			continue;
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "valid")));
		assert_string_equal(jstr(r, "path"), "/v1/metrics");
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "items"))
		{
			if (!strcmp(jstr(it, "name"), "tool_calls_total"))
				names += !strcmp(jstr(it, "type"), "sum");
			if (!strcmp(jstr(it, "name"), "task_queue_size"))
				names += !strcmp(jstr(it, "type"), "gauge");
			if (!strcmp(jstr(it, "name"), "tool_call_duration_seconds"))
				names += !strcmp(jstr(it, "type"), "histogram");
		}
		assert_int_equal(names, 3);
		saw_metrics = true;
	}
	assert_true(saw_metrics);
	cJSON_Delete(recs);
	atel__agg_free(agg);
	unlink(c.record);
}

/* Batches bounded in items and bytes: traces halve a batch until it fits,
 * metrics split a snapshot by family; nothing is lost or doubled. */
static void test_batch_bounds(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_agg *agg;
	struct atel_otlp_stats st;
	cJSON *recs, *r;
	char big[301];
	int nreq = 0;

	(void)state;
	memset(big, 'x', 300);
	big[300] = '\0';
	collector_start(&c, "", 0);
	for (unsigned i = 1; i <= 40; i++) {
		char name[32];

		snprintf(name, sizeof(name), "span-%u", i);
		span_start(i, 0, name, 1);
		span_attr(i, "payload", (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = big }, false);
		span_end(i, 1, "");
	}
	g_max_items = 16;   /* items bound: 40 spans -> at least 3 batches */
	g_max_bytes = 2048; /* bytes bound: ~400 B per span -> at most ~5 per batch */
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "none", NULL, NULL);
	WAIT_FOR(stats(o).spans_acked == 40);
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	assert_true(st.acked_batches[0] >= 8);
	recs = records(&c);
	cJSON_ArrayForEach(r, recs)
	{
		assert_true(jnum(r, "bytes") <= 2048);
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(r, "items")) <= 16);
		nreq++;
	}
	assert_int_equal(nreq, (int)st.acked_batches[0]);
	for (unsigned i = 1; i <= 40; i++)
		assert_int_equal(delivered(&c, i), 1);
	cJSON_Delete(recs);
	collector_stop(&c);
	unlink(c.record);

	/* metrics: 30 families, a snapshot larger than the bound */
	assert_int_equal(atel__agg_new(&agg, 0), 0);
	{
		static struct atel_dec_series ds[30];
		static char names[30][40];
		struct atel_event ev = { .kind = ATEL_EV_SAMPLE, .ts_ns = 1700000000000000000ull };

		for (int i = 0; i < 30; i++) {
			snprintf(names[i], sizeof(names[i]), "family_%02d_with_a_longish_name_total", i);
			ds[i] = (struct atel_dec_series){ .id = (uint32_t)i + 1, .mtype = ATEL_MT_COUNTER, .name = names[i],
							  .key_hash = 100 + (uint64_t)i };
			ev.sample.series = &ds[i];
			ev.sample.value = i;
			atel__agg_apply(agg, &ev);
		}
	}
	memset(&c, 0, sizeof(c));
	collector_start(&c, "", 0);
	g_max_bytes = 1024;
	capture_begin();
	o = exporter_start(c.port, "http/json", "none", NULL, agg);
	WAIT_FOR(stats(o).metrics_exports >= 1);
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_true(st.acked_batches[1] >= 3); /* one snapshot, several requests */
	recs = records(&c);
	{
		int families = 0, first_snapshot_reqs = 0;

		/* the first snapshot's requests carry each family exactly once */
		cJSON_ArrayForEach(r, recs)
		{
			assert_true(jnum(r, "bytes") <= 1024);
			families += cJSON_GetArraySize(cJSON_GetObjectItem(r, "items"));
			first_snapshot_reqs++;
			if (families >= 30)
				break;
		}
		assert_int_equal(families, 30);
		assert_true(first_snapshot_reqs >= 3);
	}
	cJSON_Delete(recs);
	atel__agg_free(agg);
	unlink(c.record);
}

/* A span whose START never comes is dropped after the orphan window and no
 * longer holds the cursor back; the open-span table is bounded: the oldest
 * open span is closed as an error when it is full. */
static void test_orphans_and_eviction(void **state)
{
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	char sdir[300], cpath[400];
	struct atel_log_pos r, a;
	cJSON *recs, *sp;

	(void)state;
	snprintf(sdir, sizeof(sdir), "%s/state-%d", g_tmp, ++g_seq);
	snprintf(cpath, sizeof(cpath), "%s/otlp-traces.cursor", sdir);
	collector_start(&c, "", 0);
	span_end(50, 1, "");                     /* event 0: END only, START never comes */
	for (int i = 0; i < 40; i++)
		noise();
	for (unsigned i = 1; i <= 6; i++)        /* 6 open spans (+ 9), table holds 4 */
		span_start(i, 0, "never-ends", 1);
	simple_span(9);
	g_orphan_window = 20;
	g_open_max = 4;
	capture_begin();
	o = exporter_start(c.port, "http/protobuf", "gzip", sdir, NULL);
	WAIT_FOR(stats(o).spans_acked == 4); /* 1, 2, 3 (evicted to make room for 5, 6, 9) and 9 */
	st = stats(o);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.orphan_records, 1);
	assert_int_equal(st.spans_evicted, 3);
	assert_int_equal(st.open_spans, 3);
	recs = records(&c);
	sp = find_span(recs, 1);
	assert_non_null(sp);
	assert_int_equal((int)jnum(sp, "status"), 2);
	assert_non_null(strstr(jstr(sp, "statusMessage"), "open-span limit"));
	assert_null(find_span(recs, 50));
	assert_non_null(find_span(recs, 3));
	assert_null(find_span(recs, 4));
	assert_int_equal(delivered(&c, 9), 1);
	cJSON_Delete(recs);
	/* the orphan no longer pins the cursor: resume is at span 4's START (event 44) */
	assert_int_equal(atel__otlp_cursor_load(cpath, &r, &a, NULL, NULL), 0);
	assert_int_equal(r.frame_off, 44);
	unlink(cpath);
	rmdir(sdir);
	unlink(c.record);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoint_rules),
		cmocka_unit_test(test_env_options),
		cmocka_unit_test(test_retry_after_and_backoff),
		cmocka_unit_test(test_response_parse),
		cmocka_unit_test(test_cursor_file),
		cmocka_unit_test_setup_teardown(test_content_headers_gzip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_and_retry_after, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_date, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_retry_on_400, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_cursor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_death, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_redacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans_and_eviction, setup, teardown),
	};
	int rc;

	snprintf(g_tmp, sizeof(g_tmp), "/tmp/atel-otlp-test-%d", (int)getpid());
	mkdir(g_tmp, 0700);
	signal(SIGPIPE, SIG_IGN);
	rc = ATEL_TEST_RUN(tests, NULL, NULL);
	rmdir(g_tmp);
	return rc;
}
