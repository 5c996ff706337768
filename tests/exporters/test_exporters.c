/* SPDX-License-Identifier: MIT */
/*
 * The exporters end to end over a real segment log (tests/common synth):
 * the follower feeds the aggregates, /metrics serves exact totals over HTTP,
 * the JSON file holds metrics and spans, health and telemetry_exports rows
 * are recorded, and after a stop + more log + a restart the counters
 * continue from the checkpoint: monotonic, nothing counted twice.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include "exporters.h"
#include "state.h"
#include "synth.h"

static const double BOUNDS[] = { 0.1, 1, 10 };

static char *get_metrics(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	size_t cap = 1 << 20, len = 0;
	char *b = malloc(cap);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
	for (;;) {
		ssize_t n = recv(fd, b + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	b[len] = '\0';
	close(fd);
	return b;
}

/* Value of the sample line starting with `prefix ` in text; NAN if absent. */
static double sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, prefix, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return 0.0 / 0.0;
}

static void wait_events(struct atel_exporters *ex, uint64_t want)
{
	for (int i = 0; i < 3000 && atel__exporters_events_read(ex) < want; i++)
		usleep(10000);
	assert_true(atel__exporters_events_read(ex) >= want);
}

/* One stream: n tool calls (counter +1), n histogram observations, one span. */
static uint64_t write_log(const char *segdir, uint64_t instance, int n, uint64_t seed)
{
	struct atel_synth s;
	struct atel_synth *rings[1] = { &s };
	uint8_t trace[16], span[8], zero[8] = { 0 };
	uint32_t c, h, g, b;
	uint64_t events = 0;

	atel_synth_init(&s, 0, 1, 4242, 4243, 1700000000000000000ull + seed * 1000000000ull);
	atel_synth_begin(&s, "agent");
	events++;
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "status", "success", "tool", "grep", NULL);
	b = atel_synth_bounds(&s, BOUNDS, 3);
	h = atel_synth_series(&s, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", b, "tool", "grep", NULL);
	g = atel_synth_series(&s, ATEL_MT_GAUGE, "task_queue_size", 0, "priority", "high", NULL);
	for (int i = 0; i < n; i++) {
		atel_synth_sample(&s, c, 1, false);
		atel_synth_sample(&s, h, i % 2 ? 0.5 : 5, false);
		events += 2;
	}
	atel_synth_sample(&s, g, (double)n, true);
	events++;
	atel_synth_ids(seed, trace, span);
	atel_synth_span_start(&s, trace, span, zero, "coder-execution", 1);
	atel_synth_attr_str(&s, trace, span, "agent.type", "coder", false);
	atel_synth_span_end(&s, trace, span, 1, "");
	events += 3;
	atel_synth_end(&s);
	events++;
	assert_int_equal(atel_synth_write_log(segdir, instance, rings, 1, NULL), 0);
	atel_synth_free(&s);
	return events;
}

static void test_end_to_end_restart(void **state)
{
	char dir[256], segdir[300], statedir[300], jsondir[300], ckpt[400];
	static struct atel_daemon d;
	struct atel_exporters *ex = NULL;
	struct atel_exporters_opts o = { 0 };
	char err[512] = "";
	uint64_t ev1, ev2;
	char *text;

	(void)state;
	assert_int_equal(atel_synth_tmpdir(dir, sizeof(dir), "exporters"), 0);
	snprintf(segdir, sizeof(segdir), "%s/segments", dir);
	snprintf(statedir, sizeof(statedir), "%s/state", dir);
	snprintf(jsondir, sizeof(jsondir), "%s/exports", dir);
	snprintf(ckpt, sizeof(ckpt), "%s/aggregates.ckpt", statedir);
	assert_int_equal(atel__state_init(&d, NULL, NULL), 0);

	ev1 = write_log(segdir, 1, 10, 1);
	o.segments_dir = segdir;
	o.state_dir = statedir;
	o.series_limit = 100;
	o.export_interval_ms = 100;
	o.poll_ms = 10;
	o.checkpoint_ms = 50;
	o.prometheus = true;
	o.http.bind = "127.0.0.1";
	o.json_dir = jsondir;
	o.json_rotate_ms = 3600000;
	o.json_max_files = 5;
	assert_int_equal(atel__exporters_start_opts(&ex, &d, &o, err, sizeof(err)), 0);
	wait_events(ex, ev1);
	text = get_metrics(atel__exporters_http_port(ex));
	assert_non_null(strstr(text, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	assert_true(sample(text, "tool_calls_total{status=\"success\",tool=\"grep\"}") == 10);
	assert_true(sample(text, "tool_call_duration_seconds_bucket{tool=\"grep\",le=\"1\"}") == 5);
	assert_true(sample(text, "tool_call_duration_seconds_bucket{tool=\"grep\",le=\"+Inf\"}") == 10);
	assert_true(sample(text, "tool_call_duration_seconds_count{tool=\"grep\"}") == 10);
	assert_true(sample(text, "tool_call_duration_seconds_sum{tool=\"grep\"}") == 27.5);
	assert_true(sample(text, "task_queue_size{priority=\"high\"}") == 10);
	assert_true(sample(text, "atel_aggregate_samples_total") == 21);
	assert_non_null(strstr(text, "# TYPE atel_records_drained_total counter\n"));
	free(text);
	atel__exporters_stop(ex);
	assert_int_equal(access(ckpt, F_OK), 0);
	/* health and telemetry_exports rows: one scrape, at least one JSON write */
	assert_int_equal(atomic_load(&d.health[ATEL_EXP_PROMETHEUS].attempts), 1);
	assert_true(atomic_load(&d.health[ATEL_EXP_JSON].attempts) >= 1);
	assert_int_equal(atomic_load(&d.health[ATEL_EXP_JSON].failures), 0);
	assert_true(d.export_q_len >= 2);
	assert_string_equal(d.export_q[d.export_q_head].exporter, "prometheus");
	assert_int_equal(d.export_q[d.export_q_head].items, 3);
	{
		/* the final JSON file holds the span and the counter */
		DIR *dd = opendir(jsondir);
		struct dirent *e;
		int files = 0;
		assert_non_null(dd);
		while ((e = readdir(dd))) {
			char p[700], *data;
			FILE *f;
			long n;
			cJSON *doc;
			if (strncmp(e->d_name, "atel-metrics-", 13))
				continue;
			files++;
			snprintf(p, sizeof(p), "%s/%s", jsondir, e->d_name);
			f = fopen(p, "rb");
			fseek(f, 0, SEEK_END);
			n = ftell(f);
			rewind(f);
			data = calloc(1, (size_t)n + 1);
			assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
			fclose(f);
			doc = cJSON_Parse(data);
			free(data);
			assert_non_null(doc);
			assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 1);
			assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "spans"), 0),
								"name")->valuestring, "coder-execution");
			cJSON_Delete(doc);
		}
		closedir(dd);
		assert_int_equal(files, 1);
	}

	/* restart: more log (a new sidecar instance), counters continue */
	ev2 = write_log(segdir, 2, 7, 2);
	assert_int_equal(atel__exporters_start_opts(&ex, &d, &o, err, sizeof(err)), 0);
	wait_events(ex, ev2); /* resumes after the checkpoint: reads only the new events */
	text = get_metrics(atel__exporters_http_port(ex));
	assert_true(sample(text, "tool_calls_total{status=\"success\",tool=\"grep\"}") == 17);
	assert_true(sample(text, "tool_call_duration_seconds_count{tool=\"grep\"}") == 17);
	assert_true(sample(text, "task_queue_size{priority=\"high\"}") == 7);
	free(text);
	assert_int_equal(atel__exporters_events_read(ex), ev2);
	atel__exporters_stop(ex);

	/* a corrupt checkpoint: rebuilt from the whole log, same totals */
	{
		FILE *f = fopen(ckpt, "r+b");
		fseek(f, 20, SEEK_SET);
		fputc(0x5a, f);
		fclose(f);
	}
	assert_int_equal(atel__exporters_start_opts(&ex, &d, &o, err, sizeof(err)), 0);
	wait_events(ex, ev1 + ev2);
	text = get_metrics(atel__exporters_http_port(ex));
	assert_true(sample(text, "tool_calls_total{status=\"success\",tool=\"grep\"}") == 17);
	free(text);
	atel__exporters_stop(ex);
	atel__state_fini(&d);
	atel_synth_rmtree(dir);
}

static void test_port_in_use_message(void **state)
{
	struct atel_exporters *a = NULL, *b = NULL;
	struct atel_exporters_opts o = { .prometheus = true, .http = { .bind = "127.0.0.1" } };
	char err[512] = "";

	(void)state;
	assert_int_equal(atel__exporters_start_opts(&a, NULL, &o, err, sizeof(err)), 0);
	o.http.port = atel__exporters_http_port(a);
	assert_int_equal(atel__exporters_start_opts(&b, NULL, &o, err, sizeof(err)), -EADDRINUSE);
	assert_null(b);
	assert_non_null(strstr(err, "Address already in use"));
	atel__exporters_stop(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_end_to_end_restart),
		cmocka_unit_test(test_port_in_use_message),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
