/* SPDX-License-Identifier: MIT */
/* JSON files: content (parsed back with cJSON), rotation every rotateInterval,
 * retention (maxFiles), atomic writes (no tmp left), spans since file start.
 * Time is passed explicitly: assertions are on files, never on timings. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include "agg_helpers.h"
#include "json_files.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/atel-test-json-%d-XXXXXX", (int)getpid());
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Sorted names in dir; returns count. */
static int list_dir(const char *dir, char names[][256], int max, int *tmp_files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	*tmp_files = 0;
	assert_non_null(d);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.') {
			if (strstr(e->d_name, ".tmp"))
				(*tmp_files)++;
			continue;
		}
		if (n < max)
			snprintf(names[n++], 256, "%s", e->d_name);
	}
	closedir(d);
	qsort(names, (size_t)n, 256, (int (*)(const void *, const void *))strcmp);
	return n;
}

static cJSON *parse_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long n;
	cJSON *j;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	data = malloc((size_t)n + 1);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	j = cJSON_Parse(data);
	free(data);
	assert_non_null(j);
	return j;
}

static void span_events(struct atel_recent_spans *r, uint8_t id, const char *name, uint64_t t0, bool end)
{
	struct atel_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SPAN_START;
	ev.ts_ns = t0;
	memset(ev.span_start.trace_id, 0xab, 16);
	memset(ev.span_start.span_id, id, 8);
	ev.span_start.kind = 1;
	ev.span_start.name = name;
	atel__spans_apply(r, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SPAN_ATTR;
	memset(ev.span_attr.trace_id, 0xab, 16);
	memset(ev.span_attr.span_id, id, 8);
	ev.span_attr.key = "agent.id";
	ev.span_attr.v.vtype = ATEL_VT_STR;
	ev.span_attr.v.s = "coder-\"1\"";
	atel__spans_apply(r, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SPAN_EVENT;
	ev.ts_ns = t0 + 5;
	memset(ev.span_event.trace_id, 0xab, 16);
	memset(ev.span_event.span_id, id, 8);
	ev.span_event.name = "code_generation_started";
	atel__spans_apply(r, &ev);

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SPAN_ATTR;
	memset(ev.span_attr.trace_id, 0xab, 16);
	memset(ev.span_attr.span_id, id, 8);
	ev.span_attr.key = "files";
	ev.span_attr.event_attr = true;
	ev.span_attr.v.vtype = ATEL_VT_INT;
	ev.span_attr.v.i = 3;
	atel__spans_apply(r, &ev);

	if (!end)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SPAN_END;
	ev.ts_ns = t0 + 2000000;
	memset(ev.span_end.trace_id, 0xab, 16);
	memset(ev.span_end.span_id, id, 8);
	ev.span_end.status = 1;
	ev.span_end.msg = "";
	atel__spans_apply(r, &ev);
}

static void test_content(void **state)
{
	static const double bounds[] = { 1, 5 };
	static const char *const kv[] = { "tool", "Read\n\"x\"" };
	struct atel_dec_series c, h;
	struct atel_agg *a;
	struct atel_agg_snapshot *s;
	struct atel_recent_spans *r;
	struct atel_json_exporter *j;
	struct atel_json_opts o = { 0 };
	char dir[300], err[256];
	size_t bytes = 0;
	cJSON *doc, *m, *ser, *sp;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/content/nested", tmpdir);
	o.dir = dir;
	o.rotate_ms = 3600000;
	o.max_files = 24;
	assert_int_equal(atel__agg_new(&a, 100), 0);
	assert_int_equal(atel__spans_new(&r, 100, 100), 0);
	th_series(&c, ATEL_MT_COUNTER, "tool_calls_total", 1, kv, 0, NULL);
	th_series(&h, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", 1, kv, 2, bounds);
	th_sample(a, &c, 2, 0, 100);
	th_sample(a, &h, 0.5, 0, 100);
	th_sample(a, &h, 3, 0, 100);
	th_sample(a, &h, 30, 0, 100);
	span_events(r, 1, "orchestration-session", 1000, true);
	span_events(r, 2, "still-open", 1000, false);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	assert_int_equal(atel__json_open(&j, &o, err, sizeof(err)), 0);
	assert_int_equal(atel__json_write(j, s, r, 1764365400000000000ull, &bytes, err, sizeof(err)), 0);
	assert_true(bytes > 100);
	assert_string_equal(strrchr(atel__json_current_file(j), '/') + 1, "atel-metrics-20251128T213000000Z.json");
	doc = parse_file(atel__json_current_file(j));
	assert_string_equal(cJSON_GetObjectItem(doc, "schema")->valuestring, ATEL_JSON_SCHEMA);
	assert_string_equal(cJSON_GetObjectItem(doc, "written_at")->valuestring, "2025-11-28T21:30:00.000Z");
	assert_int_equal(cJSON_GetObjectItem(doc, "writes")->valueint, 1);
	m = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "metrics"), 0);
	assert_string_equal(cJSON_GetObjectItem(m, "name")->valuestring, "tool_call_duration_seconds");
	assert_string_equal(cJSON_GetObjectItem(m, "type")->valuestring, "histogram");
	ser = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "series"), 0);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(ser, "labels"), "tool")->valuestring, "Read\n\"x\"");
	assert_int_equal(cJSON_GetObjectItem(ser, "count")->valueint, 3);
	assert_true(cJSON_GetObjectItem(ser, "sum")->valuedouble == 33.5);
	{
		cJSON *b = cJSON_GetObjectItem(ser, "buckets");
		assert_int_equal(cJSON_GetArraySize(b), 3);
		assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 0), "le")->valuedouble == 1);
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 0), "count")->valueint, 1);
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 1), "count")->valueint, 2);
		assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 2), "le")->valuestring, "+Inf");
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(b, 2), "count")->valueint, 3);
	}
	m = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "metrics"), 1);
	assert_string_equal(cJSON_GetObjectItem(m, "name")->valuestring, "tool_calls_total");
	ser = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "series"), 0);
	assert_true(cJSON_GetObjectItem(ser, "value")->valuedouble == 2);
	/* spans: the completed one (recent spans before the first file count) */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 1);
	sp = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "spans"), 0);
	assert_string_equal(cJSON_GetObjectItem(sp, "name")->valuestring, "orchestration-session");
	assert_true(cJSON_GetObjectItem(sp, "duration_ms")->valuedouble == 2.0);
	cJSON_Delete(doc);

	/* end span 2 and rewrite the same file: both spans are in it now */
	{
		struct atel_event ev;
		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_SPAN_END;
		ev.ts_ns = 5000;
		memset(ev.span_end.trace_id, 0xab, 16);
		memset(ev.span_end.span_id, 2, 8);
		ev.span_end.status = 2;
		ev.span_end.msg = "boom";
		atel__spans_apply(r, &ev);
	}
	assert_int_equal(atel__json_write(j, s, r, 1764365415000000000ull, &bytes, err, sizeof(err)), 0);
	doc = parse_file(atel__json_current_file(j));
	assert_int_equal(cJSON_GetObjectItem(doc, "writes")->valueint, 2);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 2);
	sp = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "spans"), 1);
	assert_string_equal(cJSON_GetObjectItem(sp, "name")->valuestring, "still-open");
	assert_string_equal(cJSON_GetObjectItem(sp, "trace_id")->valuestring, "abababababababababababababababab");
	assert_string_equal(cJSON_GetObjectItem(sp, "span_id")->valuestring, "0202020202020202");
	assert_string_equal(cJSON_GetObjectItem(sp, "parent_span_id")->valuestring, "");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "status"), "code")->valueint, 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "status"), "message")->valuestring, "boom");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(sp, "attributes"), "agent.id")->valuestring,
			    "coder-\"1\"");
	{
		cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItem(sp, "events"), 0);
		assert_string_equal(cJSON_GetObjectItem(e, "name")->valuestring, "code_generation_started");
		assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "attributes"), "files")->valueint, 3);
	}
	assert_int_equal(cJSON_GetObjectItem(doc, "spans_completed")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(doc, "spans_dropped")->valueint, 0);
	cJSON_Delete(doc);
	atel__json_close(j);
	atel__agg_snapshot_free(s);
	atel__spans_free(r);
	atel__agg_free(a);
}

static void test_rotation_retention(void **state)
{
	struct atel_json_exporter *j;
	struct atel_json_opts o = { 0 };
	struct atel_recent_spans *r;
	char dir[300], err[256], names[16][256], foreign[400];
	const uint64_t t0 = 1764365400000000000ull, ms = 1000000ull;
	int n, tmp;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/rot", tmpdir);
	o.dir = dir;
	o.rotate_ms = 200;   /* short rotateInterval */
	o.max_files = 3;
	assert_int_equal(atel__spans_new(&r, 4, 16), 0);
	assert_int_equal(atel__json_open(&j, &o, err, sizeof(err)), 0);
	/* a file that is not ours must survive retention */
	snprintf(foreign, sizeof(foreign), "%s/notes.txt", dir);
	f = fopen(foreign, "w");
	fputs("keep me\n", f);
	fclose(f);

	/* interval 50 ms, rotate 200 ms: 4 writes per file */
	for (int i = 0; i < 4; i++)
		assert_int_equal(atel__json_write(j, NULL, r, t0 + (uint64_t)i * 50 * ms, NULL, err, sizeof(err)), 0);
	n = list_dir(dir, names, 16, &tmp);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "atel-metrics-20251128T213000000Z.json");
	assert_string_equal(names[1], "notes.txt");
	assert_int_equal(tmp, 0);
	{
		cJSON *doc = parse_file(atel__json_current_file(j));
		assert_int_equal(cJSON_GetObjectItem(doc, "writes")->valueint, 4);
		cJSON_Delete(doc);
	}
	/* 5 more rotations: 6 files made in all, 3 kept (the newest) */
	for (int i = 4; i < 24; i++) {
		/* a span completes in every interval; spans only show in their file */
		span_events(r, (uint8_t)(i + 1), "s", t0 + (uint64_t)i * 50 * ms, true);
		assert_int_equal(atel__json_write(j, NULL, r, t0 + (uint64_t)i * 50 * ms, NULL, err, sizeof(err)), 0);
	}
	n = list_dir(dir, names, 16, &tmp);
	assert_int_equal(n, 4);
	assert_string_equal(names[0], "atel-metrics-20251128T213000600Z.json");
	assert_string_equal(names[1], "atel-metrics-20251128T213000800Z.json");
	assert_string_equal(names[2], "atel-metrics-20251128T213001000Z.json");
	assert_string_equal(names[3], "notes.txt");
	assert_int_equal(tmp, 0);
	{
		/* current file began at i=20: spans 20..23 completed after the
		 * previous file's last write (i=19); each span is in one file */
		cJSON *doc = parse_file(atel__json_current_file(j));
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 4);
		assert_int_equal(cJSON_GetObjectItem(doc, "file_started_ns")->valuedouble,
				 (double)(t0 + 1000 * ms));
		cJSON_Delete(doc);
	}
	{
		/* a file of an earlier period keeps its final content */
		char p[600];
		cJSON *doc;
		snprintf(p, sizeof(p), "%s/%s", dir, names[1]);
		doc = parse_file(p);
		assert_int_equal(cJSON_GetObjectItem(doc, "writes")->valueint, 4);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 4);
		cJSON_Delete(doc);
	}
	/* more spans than the ring keeps within one file: the newest are kept,
	 * the rest counted as dropped */
	for (int i = 0; i < 6; i++)
		span_events(r, (uint8_t)(100 + i), "burst", t0, true);
	assert_int_equal(atel__json_write(j, NULL, r, t0 + 1150 * ms, NULL, err, sizeof(err)), 0);
	{
		cJSON *doc = parse_file(atel__json_current_file(j));
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "spans")), 4);
		assert_int_equal(cJSON_GetObjectItem(doc, "spans_completed")->valueint, 10);
		assert_int_equal(cJSON_GetObjectItem(doc, "spans_dropped")->valueint, 6);
		cJSON_Delete(doc);
	}
	atel__json_close(j);
	atel__spans_free(r);
}

static void test_open_errors(void **state)
{
	struct atel_json_exporter *j;
	struct atel_json_opts o = { 0 };
	char path[300], err[256] = "";
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/a-file", tmpdir);
	f = fopen(path, "w");
	fclose(f);
	o.dir = path;
	assert_int_equal(atel__json_open(&j, &o, err, sizeof(err)), -ENOTDIR);
	assert_non_null(strstr(err, "json.outputDir"));
	assert_non_null(strstr(err, path));
}

static void test_open_span_eviction(void **state)
{
	struct atel_recent_spans *r;

	(void)state;
	assert_int_equal(atel__spans_new(&r, 8, 4), 0);
	for (int i = 1; i <= 10; i++)
		span_events(r, (uint8_t)i, "never-ends", (uint64_t)i, false);
	assert_int_equal(atel__spans_evicted(r), 6);
	assert_int_equal(atel__spans_completed(r), 0);
	atel__spans_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content),
		cmocka_unit_test(test_rotation_retention),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_span_eviction),
	};
	return ATEL_TEST_RUN(tests, setup, teardown);
}
