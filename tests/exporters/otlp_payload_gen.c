/* SPDX-License-Identifier: MIT */
/*
 * otlp_payload_gen OUTDIR: writes OTLP payloads of known content, encoded by
 * exporters/encode/otlp_encode.c, for test_otlp_payloads.py to validate against the
 * official .proto files (protoc --decode, python3-protobuf json_format):
 *   spans.pb spans.json       - 6 spans covering every field we emit
 *   metrics.pb metrics.json   - counter, gauge (NaN/Inf/-Inf), histogram
 *   big_spans.pb big_spans.json - 300 spans with long strings (multi-byte
 *                               varint lengths at every nesting level)
 * The content is documented next to the checks in test_otlp_payloads.py.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_encode.h"

static int write_file(const char *dir, const char *name, const struct atel_buf *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

static void ids(struct atel_otlp_span *s, uint8_t t, uint8_t sp, uint8_t parent)
{
	for (int i = 0; i < 16; i++)
		s->trace_id[i] = (uint8_t)(t + i);
	for (int i = 0; i < 8; i++)
		s->span_id[i] = (uint8_t)(sp + i);
	memset(s->parent_id, 0, 8);
	if (parent)
		for (int i = 0; i < 8; i++)
			s->parent_id[i] = (uint8_t)(parent + i);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	struct atel_otlp_attr res_attrs[] = {
		{ "service.name", { .vtype = ATEL_VT_STR, .s = "svc-test" } },
		{ "deployment.environment", { .vtype = ATEL_VT_STR, .s = "ci" } },
	};
	struct atel_otlp_resource res = { res_attrs, 2, "atel", "0.1.0" };
	struct atel_otlp_attr a_all[] = {
		{ "s", { .vtype = ATEL_VT_STR, .s = "h\xc3\xa9llo \"q\" \\ \n\t\x01" } },
		{ "i", { .vtype = ATEL_VT_INT, .i = -9007199254740993LL } },
		{ "d", { .vtype = ATEL_VT_DOUBLE, .d = 0.1 } },
		{ "b", { .vtype = ATEL_VT_BOOL, .b = true } },
		{ "nan", { .vtype = ATEL_VT_DOUBLE, .d = NAN } },
		{ "inf", { .vtype = ATEL_VT_DOUBLE, .d = -INFINITY } },
		{ "big", { .vtype = ATEL_VT_INT, .i = INT64_MAX } },
	};
	struct atel_otlp_attr ev_attrs[] = {
		{ "files", { .vtype = ATEL_VT_INT, .i = 3 } },
		{ "language", { .vtype = ATEL_VT_STR, .s = "c" } },
	};
	struct atel_otlp_attr exc_attrs[] = {
		{ "exception.type", { .vtype = ATEL_VT_STR, .s = "ToolError" } },
		{ "exception.message", { .vtype = ATEL_VT_STR, .s = "disk full" } },
	};
	struct atel_otlp_event evs[] = {
		{ "code_generation_started", 1700000000500000000ull, ev_attrs, 2 },
		{ "exception", 1700000000600000000ull, exc_attrs, 2 },
	};
	struct atel_otlp_span sp[6];
	struct atel_buf b = { 0 };
	int rc = 0;

	memset(sp, 0, sizeof(sp));
	/* 0: root SERVER span, OK, sampled */
	ids(&sp[0], 0x10, 0xa0, 0);
	sp[0].kind = 2;
	sp[0].flags = 1;
	sp[0].name = "orchestration-session";
	sp[0].start_ns = 1700000000000000000ull;
	sp[0].end_ns = 1700000001000000000ull;
	sp[0].status = 1;
	/* 1: child INTERNAL, all attribute types, two events, ERROR */
	ids(&sp[1], 0x10, 0xb0, 0xa0);
	sp[1].kind = 1;
	sp[1].name = "coder-execution";
	sp[1].start_ns = 1700000000100000000ull;
	sp[1].end_ns = 1700000000900000000ull;
	sp[1].status = 2;
	sp[1].status_msg = "disk full";
	sp[1].attrs = a_all;
	sp[1].nattrs = 7;
	sp[1].events = evs;
	sp[1].nevents = 2;
	/* 2..4: CLIENT/PRODUCER/CONSUMER, UNSET status */
	for (int i = 2; i <= 4; i++) {
		ids(&sp[i], 0x10, (uint8_t)(0xc0 + i), 0xa0);
		sp[i].kind = (uint8_t)(i + 1);
		sp[i].name = "tool-call";
		sp[i].start_ns = 1700000000200000000ull + (uint64_t)i;
		sp[i].end_ns = 1700000000300000000ull + (uint64_t)i;
	}
	/* 5: invalid UTF-8 in the name (repaired to U+FFFD), kind unspecified */
	ids(&sp[5], 0x20, 0xd0, 0);
	sp[5].name = "bad\xff\xfe-utf8\xe2\x82";
	sp[5].start_ns = 1;
	sp[5].end_ns = 2;

	for (int fmt = 0; fmt < 2; fmt++) {
		atel__buf_free(&b);
		rc |= atel__otlp_encode_spans(&b, (enum atel_otlp_format)fmt, &res, sp, 6) != 0;
		rc |= write_file(dir, fmt ? "spans.json" : "spans.pb", &b);
	}

	/* metrics */
	{
		const char *k1[] = { "agent_type", "phase", "status" }, *v1[] = { "coder", "code", "success" };
		const char *v1b[] = { "planner", "plan", "failure" };
		const char *k2[] = { "agent_id" }, *v2a[] = { "a1" }, *v2b[] = { "a2" }, *v2c[] = { "a3" };
		const char *k3[] = { "tool" }, *v3[] = { "Read" };
		const double bounds[] = { 0.1, 0.5, 1, 5 };
		const uint64_t buckets[] = { 1, 2, 3, 0, 4 };
		struct atel_agg_series s_counter[] = {
			{ .nlabels = 3, .keys = k1, .values = v1, .value = 42, .start_ns = 1000, .last_ns = 2000 },
			{ .nlabels = 3, .keys = k1, .values = v1b, .value = 0.5, .start_ns = 1001, .last_ns = 2001 },
		};
		struct atel_agg_series s_gauge[] = {
			{ .nlabels = 1, .keys = k2, .values = v2a, .value = NAN, .start_ns = 5 },
			{ .nlabels = 1, .keys = k2, .values = v2b, .value = INFINITY, .start_ns = 6 },
			{ .nlabels = 1, .keys = k2, .values = v2c, .value = -INFINITY, .start_ns = 7 },
		};
		struct atel_agg_series s_hist[] = {
			{ .nlabels = 1, .keys = k3, .values = v3, .count = 10, .sum = 12.25, .nbounds = 4,
			  .bounds = bounds, .buckets = buckets, .start_ns = 100, .last_ns = 200 },
		};
		/* many doubles across magnitudes: the JSON number formatting must
		 * read back bit-exact (the test compares JSON and protobuf) */
		static struct atel_agg_series s_many[400];
		static const double fixed[] = { 0.1 + 0.2, 1e-5, 123456.789, -0.001, 1e11 + 0.5, 5e-324, 1.7976931348623157e308,
						-2.5e-7, 0.3, 1.0 / 3, 2.675, 1e15 + 0.25, 9007199254740993.0, -1e22, 0.07 };
		static const char *km[] = { "i" };
		static char vm[400][8];
		static const char *vmp[400][1];
		uint64_t x = 88172645463325252ull;

		for (int i = 0; i < 400; i++) {
			double v;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (i < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
				v = fixed[i];
			} else if (i % 3 == 0) {
				memcpy(&v, &x, 8); /* any bit pattern */
				if (!isfinite(v))
					v = (double)(x >> 11);
			} else {
				v = (double)(int64_t)(x % 2000000 - 1000000) / (i % 2 ? 1000.0 : 8.0) * pow(10, (int)(x % 13) - 6);
			}
			snprintf(vm[i], sizeof(vm[i]), "%d", i);
			vmp[i][0] = vm[i];
			s_many[i] = (struct atel_agg_series){ .nlabels = 1, .keys = km, .values = vmp[i], .value = v,
							      .start_ns = 1 };
		}
		struct atel_agg_family fam[] = {
			{ "agent_execution_total", "Total agent executions", ATEL_MT_COUNTER, 2, s_counter },
			{ "context_window_utilization", "Context usage ratio", ATEL_MT_GAUGE, 3, s_gauge },
			{ "tool_call_duration_seconds", "Tool call duration", ATEL_MT_HISTOGRAM, 1, s_hist },
			{ "zz_number_formatting", NULL, ATEL_MT_GAUGE, 400, s_many },
		};
		struct atel_agg_snapshot snap = { 1700000002000000000ull, 4, fam };

		for (int fmt = 0; fmt < 2; fmt++) {
			atel__buf_free(&b);
			rc |= atel__otlp_encode_metrics(&b, (enum atel_otlp_format)fmt, &res, &snap, 0, 4) != 0;
			rc |= write_file(dir, fmt ? "metrics.json" : "metrics.pb", &b);
		}
	}

	/* big: 300 spans with a 300-byte name and attribute */
	{
		static struct atel_otlp_span big[300];
		static char name[301], val[301];
		struct atel_otlp_attr a = { "payload", { .vtype = ATEL_VT_STR, .s = val } };

		memset(name, 'n', 300);
		memset(val, 'v', 300);
		for (int i = 0; i < 300; i++) {
			ids(&big[i], 0x30, (uint8_t)i, 0);
			big[i].span_id[7] = (uint8_t)(i >> 8);
			big[i].name = name;
			big[i].kind = 1;
			big[i].start_ns = (uint64_t)i;
			big[i].end_ns = (uint64_t)i + 1;
			big[i].attrs = &a;
			big[i].nattrs = 1;
		}
		for (int fmt = 0; fmt < 2; fmt++) {
			atel__buf_free(&b);
			rc |= atel__otlp_encode_spans(&b, (enum atel_otlp_format)fmt, &res, big, 300) != 0;
			rc |= write_file(dir, fmt ? "big_spans.json" : "big_spans.pb", &b);
		}
	}
	atel__buf_free(&b);
	return rc;
}
