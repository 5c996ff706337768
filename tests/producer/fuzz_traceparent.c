/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `traceparent`: the W3C traceparent and tracestate parsers
 * on arbitrary bytes. Properties: no crash or overread (ASan), a parsed
 * traceparent formats to version 00 and re-parses to the same ids and flags,
 * and tracestate normalisation is idempotent and bounded to 512 characters.
 * The input is split at the first newline: traceparent, then tracestate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "w3c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = memchr(s, '\n', size);
	size_t tp_len = nl ? (size_t)(nl - s) : size;
	atel_span_context a, b;
	char out[ATEL_TRACEPARENT_LEN + 1], ts1[ATEL_TRACESTATE_MAX_LEN + 1], ts2[ATEL_TRACESTATE_MAX_LEN + 1];
	int n1, n2;

	if (atel__traceparent_parse(s, tp_len, &a) == 0) {
		if (atel__traceparent_format(&a, out, sizeof(out)) != ATEL_TRACEPARENT_LEN)
			abort();
		if (atel__traceparent_parse(out, ATEL_TRACEPARENT_LEN, &b) != 0 ||
		    memcmp(a.trace_id, b.trace_id, 16) || memcmp(a.span_id, b.span_id, 8) ||
		    a.trace_flags != b.trace_flags || b.version != 0)
			abort();
	}
	if (nl) {
		const char *t = nl + 1;
		size_t tl = size - tp_len - 1;
		n1 = atel__tracestate_normalize(t, tl, ts1, sizeof(ts1));
		if (n1 >= 0) {
			if ((size_t)n1 > ATEL_TRACESTATE_MAX_LEN || strlen(ts1) != (size_t)n1)
				abort();
			n2 = atel__tracestate_normalize(ts1, (size_t)n1, ts2, sizeof(ts2));
			if (n2 != n1 || memcmp(ts1, ts2, (size_t)n1 + 1) != 0)
				abort();
		}
	}
	return 0;
}
