/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: ateld's Prometheus query API (consumer/promql_api.c) on
 * arbitrary requests: parameter decoding (query string and form body, match[],
 * times, durations, step, limit, timeout), routing, the PromQL engine over an
 * empty log, and the JSON answer. Input: "<path?query>\n<body>"; the first
 * byte's low bit picks GET or POST. Every answer must be one of the API's
 * status codes with Prometheus' envelope.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "atel_abi.h"
#include "buf.h"
#include "promql_api.h"
#include "synth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0_NS 1700000000000000000ull

static char seg[600], tmp[512];

static void rm_log(void)
{
	atel_synth_rmtree(tmp);
}

/* A log of 2 minutes before the fixed "now": what the queries find. */
static void make_log(void)
{
	struct atel_synth s, *sp[1] = { &s };
	const double b[] = { 0.1, 1, 10 };

	if (atel_synth_tmpdir(tmp, sizeof(tmp), "fuzz-promql-api") < 0)
		return;
	atexit(rm_log);
	snprintf(seg, sizeof(seg), "%s/segments", tmp);
	atel_synth_init(&s, 0, 1, 10, 11, T0_NS - 120000000000ull);
	s.ts_step = 50000000; /* 50 ms per record */
	atel_synth_begin(&s, "fuzz");
	uint32_t c = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "grep", NULL);
	uint32_t c2 = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "read", NULL);
	uint32_t g = atel_synth_series(&s, ATEL_MT_GAUGE, "task_queue_size", 0, "priority", "high", NULL);
	uint32_t bid = atel_synth_bounds(&s, b, 3);
	uint32_t h = atel_synth_series(&s, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", bid, "tool", "grep", NULL);
	for (int i = 0; i < 600; i++) {
		atel_synth_sample(&s, i % 3 ? c : c2, 1, false);
		atel_synth_sample(&s, g, i % 17, true);
		atel_synth_sample(&s, h, (i % 23) * 0.5, false);
	}
	if (atel_synth_write_log(seg, 0x42, sp, 1, NULL) < 0)
		seg[0] = '\0';
	atel_synth_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	static struct atel_promql_api cfg = {
		.timeout_ms = 200,
		.max_samples = 100000,
		.max_series = 1000,
		.resolution_ms = 1000,
		.now_ms = 1700000000000,
	};
	struct atel_buf out = { 0 };
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t tlen = nl ? (size_t)(nl - in) : size;
	char *target;
	int code;

	if (!init) {
		make_log();
		init = true;
	}
	if (size < 1)
		return 0;
	cfg.segments_dir = (data[0] & 2) || !seg[0] ? "/nonexistent/atel-fuzz/segments" : seg;
	/* the server hands over a target that starts with /api/v1/ */
	target = malloc(tlen + 9);
	if (!target)
		return 0;
	memcpy(target, "/api/v1/", 8);
	memcpy(target + 8, in + 1 < in + tlen ? in + 1 : in, tlen ? tlen - 1 : 0);
	code = atel__promql_api_handle((void *)&cfg, (data[0] & 1) ? "POST" : "GET", target, 8 + (tlen ? tlen - 1 : 0),
				       nl ? nl + 1 : "", nl ? size - tlen - 1 : 0, &out);
	if (code != 200 && code != 400 && code != 404 && code != 422 && code != 500 && code != 503)
		__builtin_trap();
	if (!out.oom && (out.len < 12 || memcmp(out.data, "{\"status\":\"", 11)))
		__builtin_trap();
	if (code != 200 && !out.oom && !memmem(out.data, out.len, "\"errorType\":", 12))
		__builtin_trap();
	atel__buf_free(&out);
	free(target);
	return 0;
}
