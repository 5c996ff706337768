/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: ateld's Prometheus query API (consumer/promql_api.c) on
 * arbitrary requests: parameter decoding (query string and form body, match[],
 * times, durations, step, limit, timeout), routing, the PromQL engine over an
 * empty log, and the JSON answer. Input: "<path?query>\n<body>"; the first
 * byte's low bit picks GET or POST. Every answer must be one of the API's
 * status codes with Prometheus' envelope.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "promql_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct atel_promql_api cfg = {
		.segments_dir = "/nonexistent/atel-fuzz/segments",
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

	if (size < 1)
		return 0;
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
