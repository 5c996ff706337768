/* SPDX-License-Identifier: MIT */
/*
 * bench_otlp.c - OTLP encoding cost per export: 1000 series (cumulative
 * snapshot: counters, gauges, histograms with 10 bounds) and 1000 spans (4
 * attributes and 1 event each), in OTLP/JSON and OTLP protobuf, beside
 * docs/reference.md's "Export (1000 metrics): ~200ms (OTLP)". The buffer is reused
 * across exports, as in the exporter. Also the gzip cost of the protobuf
 * payload (what the exporter does before sending when compression is gzip).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "bench.h"
#include "otlp_encode.h"

#define NFAM 10
#define PER_FAM 100
#define NSPANS 1000

static const double BOUNDS[10] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

struct fixture {
	struct atel_agg_family fam[NFAM];
	struct atel_agg_series series[NFAM * PER_FAM];
	const char *keys[3];
	char vals[NFAM * PER_FAM][3][24];
	const char *valp[NFAM * PER_FAM][3];
	uint64_t buckets[NFAM * PER_FAM][11];
	char names[NFAM][48];
	struct atel_agg_snapshot snap;
	struct atel_otlp_span spans[NSPANS];
	struct atel_otlp_attr attrs[4];
	struct atel_otlp_attr ev_attrs[1];
	struct atel_otlp_event events[1];
	struct atel_otlp_attr res_attrs[1];
	struct atel_otlp_resource res;
};

static void build(struct fixture *f)
{
	static const uint8_t types[NFAM] = { ATEL_MT_COUNTER, ATEL_MT_COUNTER, ATEL_MT_COUNTER, ATEL_MT_COUNTER,
					     ATEL_MT_GAUGE,   ATEL_MT_GAUGE,   ATEL_MT_GAUGE,   ATEL_MT_HISTOGRAM,
					     ATEL_MT_HISTOGRAM, ATEL_MT_HISTOGRAM };

	f->keys[0] = "agent_type";
	f->keys[1] = "phase";
	f->keys[2] = "status";
	for (int i = 0; i < NFAM; i++) {
		snprintf(f->names[i], sizeof(f->names[i]), "bench_metric_%d%s", i,
			 types[i] == ATEL_MT_HISTOGRAM ? "_seconds" : "");
		f->fam[i] = (struct atel_agg_family){ f->names[i], "A benchmark metric", types[i], PER_FAM,
						      &f->series[i * PER_FAM] };
		for (int k = 0; k < PER_FAM; k++) {
			int j = i * PER_FAM + k;
			struct atel_agg_series *s = &f->series[j];

			snprintf(f->vals[j][0], 24, "type-%d", k % 10);
			snprintf(f->vals[j][1], 24, "phase-%d", k / 10);
			snprintf(f->vals[j][2], 24, "%s", k % 3 ? "success" : "failure");
			for (int l = 0; l < 3; l++)
				f->valp[j][l] = f->vals[j][l];
			for (int b = 0; b < 11; b++)
				f->buckets[j][b] = (uint64_t)(j * 7 + b * 13);
			*s = (struct atel_agg_series){ .key_hash = (uint64_t)j, .nlabels = 3, .keys = f->keys,
						       .values = f->valp[j], .value = 1234.5 + j, .count = 1000 + (uint64_t)j,
						       .sum = 37.25 * j, .start_ns = 1700000000000000000ull,
						       .last_ns = 1700000060000000000ull };
			if (types[i] == ATEL_MT_HISTOGRAM) {
				s->nbounds = 10;
				s->bounds = BOUNDS;
				s->buckets = f->buckets[j];
			}
		}
	}
	f->snap = (struct atel_agg_snapshot){ 1700000060000000000ull, NFAM, f->fam };

	f->attrs[0] = (struct atel_otlp_attr){ "agent.type", { .vtype = ATEL_VT_STR, .s = "coder" } };
	f->attrs[1] = (struct atel_otlp_attr){ "tokens", { .vtype = ATEL_VT_INT, .i = 1500 } };
	f->attrs[2] = (struct atel_otlp_attr){ "ratio", { .vtype = ATEL_VT_DOUBLE, .d = 0.375 } };
	f->attrs[3] = (struct atel_otlp_attr){ "success", { .vtype = ATEL_VT_BOOL, .b = true } };
	f->ev_attrs[0] = (struct atel_otlp_attr){ "files", { .vtype = ATEL_VT_INT, .i = 3 } };
	f->events[0] = (struct atel_otlp_event){ "code_generation_started", 1700000000500000000ull, f->ev_attrs, 1 };
	for (int i = 0; i < NSPANS; i++) {
		struct atel_otlp_span *s = &f->spans[i];

		memset(s, 0, sizeof(*s));
		for (int b = 0; b < 16; b++)
			s->trace_id[b] = (uint8_t)(i / 10 + b);
		for (int b = 0; b < 8; b++)
			s->span_id[b] = (uint8_t)(i * 31 + b);
		if (i % 10)
			for (int b = 0; b < 8; b++)
				s->parent_id[b] = (uint8_t)((i / 10 * 10) * 31 + b);
		s->kind = 1;
		s->flags = 1;
		s->name = i % 10 ? "tool-call" : "coder-execution";
		s->start_ns = 1700000000000000000ull + (uint64_t)i * 1000;
		s->end_ns = s->start_ns + 250000000ull;
		s->status = 1;
		s->attrs = f->attrs;
		s->nattrs = 4;
		s->events = f->events;
		s->nevents = 1;
	}
	f->res_attrs[0] = (struct atel_otlp_attr){ "service.name", { .vtype = ATEL_VT_STR, .s = "atel" } };
	f->res = (struct atel_otlp_resource){ f->res_attrs, 1, "atel", "0.1.0" };
}

static int gzip_once(const struct atel_buf *in, uint8_t *out, size_t cap, size_t *outlen)
{
	z_stream zs;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	zs.next_in = (Bytef *)in->data;
	zs.avail_in = (uInt)in->len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	rc = deflate(&zs, Z_FINISH);
	*outlen = zs.total_out;
	deflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

static int run_otlp(const struct bench_opts *o)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct bench_hist *h = bench_hist_new(false);
	struct atel_buf b = { 0 };
	int iters = o->quick ? 30 : 300, rc = 0;
	static const struct {
		const char *figure;
		bool spans;
		enum atel_otlp_format fmt;
	} cases[] = {
		{ "encode 1000 series, OTLP JSON (p50)", false, ATEL_OTLP_JSON },
		{ "encode 1000 series, OTLP protobuf (p50)", false, ATEL_OTLP_PROTOBUF },
		{ "encode 1000 spans, OTLP JSON (p50)", true, ATEL_OTLP_JSON },
		{ "encode 1000 spans, OTLP protobuf (p50)", true, ATEL_OTLP_PROTOBUF },
	};

	if (!f || !h) {
		rc = -ENOMEM;
		goto out;
	}
	build(f);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char method[200];
		double p50, p99;

		bench_hist_reset(h);
		for (int i = 0; i < iters + 3; i++) {
			uint64_t t0 = bench_now_ns();

			b.len = 0;
			rc = cases[c].spans ? atel__otlp_encode_spans(&b, cases[c].fmt, &f->res, f->spans, NSPANS)
					    : atel__otlp_encode_metrics(&b, cases[c].fmt, &f->res, &f->snap, 0, NFAM);
			if (rc)
				goto out;
			if (i >= 3) /* warm-up: buffer growth */
				bench_hist_add(h, bench_now_ns() - t0);
		}
		p50 = bench_hist_pct_ns(h, 0.5) / 1e6;
		p99 = bench_hist_pct_ns(h, 0.99) / 1e6;
		snprintf(method, sizeof(method),
			 "%d exports into a reused buffer, CLOCK_MONOTONIC per export; %zu bytes; p99 %.3f ms; baseline: "
			 "docs/reference.md ~200 ms (OTLP)",
			 iters, b.len, p99);
		bench_row("otlp", cases[c].figure, p50, "ms", 200.0, "< 1 ms", p50 < 1.0, method);
		if (c == 1 || c == 3) { /* gzip of the protobuf payload, as sent with compression=gzip */
			size_t cap = b.len + b.len / 2 + 1024, outlen = 0;
			uint8_t *out = malloc(cap);
			char fig[80];

			if (!out) {
				rc = -ENOMEM;
				goto out;
			}
			bench_hist_reset(h);
			for (int i = 0; i < iters / 3 + 1; i++) {
				uint64_t t0 = bench_now_ns();

				if ((rc = gzip_once(&b, out, cap, &outlen))) {
					free(out);
					goto out;
				}
				bench_hist_add(h, bench_now_ns() - t0);
			}
			free(out);
			snprintf(fig, sizeof(fig), "gzip of the 1000-%s protobuf payload (p50)",
				 cases[c].spans ? "span" : "series");
			snprintf(method, sizeof(method), "zlib level 1 (as the exporter), %zu -> %zu bytes; not part of the encode target",
				 b.len, outlen);
			bench_row("otlp", fig, bench_hist_pct_ns(h, 0.5) / 1e6, "ms", -1, NULL, -1, method);
		}
	}
out:
	atel__buf_free(&b);
	bench_hist_free(h);
	free(f);
	return rc;
}

BENCH_SECTION("otlp", 32, "OTLP encoders: 1000 series and 1000 spans, JSON and protobuf", run_otlp)
