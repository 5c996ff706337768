/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `webui_params`: the web view's query-string parser
 * (atel__webui_parse_params, exporters/webui.h) on arbitrary bytes, under
 * every endpoint's key set. Beyond "no crash": a refusal always has a
 * message; an accepted parse only sets allowed keys, every string it keeps is
 * NUL-terminated inside its field, label keys are label names, the id is 32
 * lowercase hex digits, and the numbers are within their documented bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webui.h"

static void str_ok(const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned sets[] = { 0, ATEL_WP_NAME | ATEL_WP_PREFIX | ATEL_WP_LIMIT, 0x1fffu, ATEL_WP_ID };
	struct atel_webui_params p;
	char err[256];

	for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
		err[0] = 0;
		if (atel__webui_parse_params((const char *)data, size, sets[k], &p, err, sizeof(err)) < 0) {
			if (!err[0] || !memchr(err, '\0', sizeof(err)))
				abort();
			continue;
		}
		if (p.seen & ~sets[k])
			abort();
		str_ok(p.name, sizeof(p.name));
		str_ok(p.prefix, sizeof(p.prefix));
		str_ok(p.service, sizeof(p.service));
		str_ok(p.agg, sizeof(p.agg));
		str_ok(p.status, sizeof(p.status));
		if (p.nlabels > ATEL_WP_MAX_LABELS)
			abort();
		for (uint32_t i = 0; i < p.nlabels; i++) {
			str_ok(p.lkey[i], sizeof(p.lkey[i]));
			str_ok(p.lval[i], sizeof(p.lval[i]));
			if (!p.lkey[i][0] || strspn(p.lkey[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789") !=
						     strlen(p.lkey[i]) || (p.lkey[i][0] >= '0' && p.lkey[i][0] <= '9'))
				abort();
		}
		if (p.seen & ATEL_WP_ID) {
			if (strlen(p.id) != 32 || strspn(p.id, "0123456789abcdef") != 32)
				abort();
		}
		if ((p.seen & ATEL_WP_LIMIT) && (p.limit < 1 || p.limit > 1000))
			abort();
		if ((p.seen & ATEL_WP_STEP) && p.step_ns < 1000000ull)
			abort();
		if (p.since_ns > 400ull * 86400 * 1000000000ull || p.step_ns > 400ull * 86400 * 1000000000ull)
			abort();
		if (p.from_ms > ATEL_WP_MAX_MS || p.to_ms > ATEL_WP_MAX_MS)
			abort();
		if ((p.seen & ATEL_WP_FROM) && (p.seen & ATEL_WP_TO) && p.from_ms >= p.to_ms)
			abort();
	}
	return 0;
}
