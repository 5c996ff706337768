/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `http_request`: the /metrics server's request parser on
 * arbitrary bytes, with the default limits and with tiny ones. Checks the
 * contract beyond "no crash": a complete request lies inside the buffer and
 * within every limit, its length is head + body, only the documented
 * statuses come back, and every strict prefix of a complete head is
 * "incomplete" (0), never an error nor a different request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void check(const char *buf, size_t len, const struct atel_http_limits *lim)
{
	struct atel_http_request r, p;
	struct atel_http_limits eff;
	long n = atel__http_parse(buf, len, lim, &r);

	atel__http_limits_default(&eff);
	if (lim->max_uri)
		eff = *lim;
	if (n < 0) {
		switch (-n) {
		case 400: case 413: case 414: case 431: case 501: case 505:
			return;
		default:
			abort();
		}
	}
	if (n == 0)
		return;
	if (r.head_len == 0 || r.head_len > len || r.head_len > eff.max_head)
		abort();
	if ((uint64_t)n != r.head_len + r.content_length || r.content_length > eff.max_body)
		abort();
	if (r.target < buf || r.target + r.target_len > buf + r.head_len || r.target_len == 0 ||
	    r.target_len > eff.max_uri || r.target[0] != '/')
		abort();
	if (r.auth && (r.auth < buf || r.auth + r.auth_len > buf + r.head_len))
		abort();
	if (!r.method[0] || memchr(r.method, '\0', sizeof(r.method)) == NULL)
		abort();
	if (r.minor < 0 || r.minor > 9)
		abort();
	/* the OTLP receiver's headers (issue 19): inside the head; chunked only when allowed, never with a length */
	if ((r.content_type && (r.content_type < buf || r.content_type + r.content_type_len > buf + r.head_len)) ||
	    (r.content_enc && (r.content_enc < buf || r.content_enc + r.content_enc_len > buf + r.head_len)) ||
	    (r.chunked && (!lim->chunked_ok || r.content_length)))
		abort();
	if ((r.accept && (r.accept < buf || r.accept + r.accept_len > buf + r.head_len)) ||
	    (r.accept_enc && (r.accept_enc < buf || r.accept_enc + r.accept_enc_len > buf + r.head_len)))
		abort();
	/* content negotiation walks the Accept values: in range, and text without OpenMetrics support */
	if ((unsigned)atel__http_negotiate(&r, true) >= ATEL_HTTP_VARIANTS ||
	    ATEL_HTTP_VARIANT_OPENMETRICS(atel__http_negotiate(&r, false)))
		abort();
	/* a strict prefix of the head is never an error nor complete */
	for (size_t cut = r.head_len > 64 ? r.head_len - 64 : 0; cut < r.head_len; cut++)
		if (atel__http_parse(buf, cut, lim, &p) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_http_limits def = { 0 }, tiny = { .max_uri = 16, .max_head = 64, .max_body = 8, .max_headers = 3 };
	/* an exact-size copy so ASan sees any read past the end */
	char *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	check(buf, size, &def);
	check(buf, size, &tiny);
	def.chunked_ok = true; /* the OTLP receiver's server */
	check(buf, size, &def);
	free(buf);
	return 0;
}
