/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `otlp_decode`: the OTLP receiver's parsers of untrusted
 * bytes (exporters/encode/otlp_decode.c, exporters/http.c): the first byte
 * picks ExportTraceServiceRequest or ExportMetricsServiceRequest, protobuf
 * or JSON, optionally gzip-wrapped input, and the rest is the body; the
 * same bytes also go through the chunked-body decoder. Checks beyond "no
 * crash": a decoded model is self-consistent (ids and strings inside their
 * lengths, point counts add up), an error always comes with a message, and
 * the chunked decoder never moves its positions backwards or past the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "otlp_decode.h"

static void check_model(const struct atel_otlpd_req *r)
{
	uint64_t pts = 0;

	for (uint32_t i = 0; i < r->nspans; i++) {
		const struct atel_otlpd_span *s = &r->spans[i];
		if (s->resource >= r->nresources || !s->name || strlen(s->name) > s->nlen)
			abort();
		for (uint32_t k = 0; k < s->nattrs; k++)
			if (!s->attrs[k].key || (s->attrs[k].vtype == 1 && !s->attrs[k].s))
				abort();
		for (uint32_t e = 0; e < s->nevents; e++)
			if (!s->events[e].name || (s->events[e].nattrs && !s->events[e].attrs))
				abort();
	}
	for (uint32_t i = 0; i < r->nmetrics; i++) {
		const struct atel_otlpd_metric *m = &r->metrics[i];
		if (m->resource >= r->nresources || !m->name)
			abort();
		pts += m->npoints;
		for (uint32_t p = 0; m->points && p < m->npoints; p++) {
			const struct atel_otlpd_point *pt = &m->points[p];
			if ((pt->nbuckets && !pt->buckets) || (pt->nbounds && !pt->bounds) || (pt->nattrs && !pt->attrs))
				abort();
			for (uint32_t b = 0; b < pt->nbuckets; b++)
				(void)pt->buckets[b]; /* readable (ASan) */
			for (uint32_t b = 0; b < pt->nbounds; b++)
				(void)pt->bounds[b];
		}
	}
	if (pts != r->npoints)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_otlpd_req r;
	struct atel_buf b = { 0 }, gz = { 0 };
	const uint8_t *body;
	size_t len;
	char err[256];
	unsigned mode;
	int rc;

	if (size < 1)
		return 0;
	mode = data[0];
	body = data + 1;
	len = size - 1;
	if (mode & 4) {
		rc = atel__otlpd_gunzip(&gz, body, len, 1u << 20, err, sizeof(err));
		if (rc && !err[0])
			abort();
		if (rc) {
			atel__buf_free(&gz);
			goto chunked;
		}
		body = (const uint8_t *)gz.data;
		len = gz.len;
	}
	rc = atel__otlpd_decode(&r, mode & 1, (mode & 2) ? ATEL_OTLPD_JSON : ATEL_OTLPD_PROTOBUF, body ? body : data,
				len, err, sizeof(err));
	if (rc && !err[0])
		abort();
	if (!rc) {
		check_model(&r);
		atel__otlpd_response(&b, mode & 1, (mode & 2) ? ATEL_OTLPD_JSON : ATEL_OTLPD_PROTOBUF, r.nspans, "m");
		atel__otlpd_status(&b, (mode & 2) ? ATEL_OTLPD_JSON : ATEL_OTLPD_PROTOBUF, 3, err);
	}
	atel__otlpd_free(&r);
	atel__buf_free(&b);
	atel__buf_free(&gz);
chunked:
	{
		char *copy = malloc(size ? size : 1);
		size_t pos = 0, out = 0, max = (mode & 8) ? 64 : 1u << 20;
		int k;
		if (!copy)
			return 0;
		memcpy(copy, data, size);
		k = atel__http_dechunk(copy, size, 0, &pos, &out, max);
		if (out > pos || pos > size || (k == 1 && out > max) || (k != 0 && k != 1 && k != -400 && k != -413))
			abort();
		free(copy);
	}
	return 0;
}
