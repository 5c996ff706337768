/* SPDX-License-Identifier: MIT */
/*
 * test_otlp_receiver.c - the OTLP receiver's pieces (issue 19 item 2):
 * the request decoders (protobuf and JSON, round-tripped through the
 * exporter's own encoders, and hand-made bodies with unknown fields,
 * packed arrays and errors), the answers (read back by the exporter's
 * response parser), chunked framing, and the receiver on a real segment
 * with no drain: whole requests or nothing, 503 with Retry-After when the
 * ring has no room (the ring head does not move), 200 again once the
 * "drain" frees it, 413 for a request larger than a ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
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
#include "http.h"
#include "otlp_decode.h"
#include "otlp_encode.h"
#include "otlp_receiver.h"
#include "ring.h"
#include "segment.h"

/* ---- a tiny protobuf writer for hand-made bodies --------------------------------- */

static void w_varint(struct atel_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		atel__buf_putc(b, (char)(v | 0x80));
		v >>= 7;
	}
	atel__buf_putc(b, (char)v);
}

static void w_tag(struct atel_buf *b, unsigned field, unsigned wt)
{
	w_varint(b, (uint64_t)field << 3 | wt);
}

static void w_bytes(struct atel_buf *b, unsigned field, const void *p, size_t n)
{
	w_tag(b, field, 2);
	w_varint(b, n);
	atel__buf_put(b, p, n);
}

static void w_fixed64(struct atel_buf *b, unsigned field, uint64_t v)
{
	w_tag(b, field, 1);
	for (int i = 0; i < 8; i++)
		atel__buf_putc(b, (char)(v >> (8 * i)));
}

static void w_double(struct atel_buf *b, unsigned field, double d)
{
	uint64_t v;

	memcpy(&v, &d, 8);
	w_fixed64(b, field, v);
}

static void w_msg(struct atel_buf *b, unsigned field, const struct atel_buf *m)
{
	w_bytes(b, field, m->data ? m->data : "", m->len);
}

/* ---- decoders ------------------------------------------------------------------ */

static const uint8_t TID[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
static const uint8_t SID[8] = { 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18 };
static const uint8_t PID[8] = { 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28 };

static void roundtrip_spans(enum atel_otlp_format efmt, enum atel_otlpd_format dfmt)
{
	struct atel_otlp_attr rattr[1], attrs[4], eattrs[1];
	struct atel_otlp_event ev;
	struct atel_otlp_span sp;
	struct atel_otlp_resource res;
	struct atel_buf b = { 0 };
	struct atel_otlpd_req r;
	char err[256];

	memset(rattr, 0, sizeof(rattr));
	memset(attrs, 0, sizeof(attrs));
	memset(eattrs, 0, sizeof(eattrs));
	rattr[0].key = "service.name";
	rattr[0].v = (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = "svc-a", .slen = 5 };
	res = (struct atel_otlp_resource){ .attrs = rattr, .nattrs = 1, .scope_name = "t", .scope_version = "1" };
	attrs[0].key = "s";
	attrs[0].v = (struct atel_attr_value){ .vtype = ATEL_VT_STR, .s = "hello", .slen = 5 };
	attrs[1].key = "i";
	attrs[1].v = (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = -42 };
	attrs[2].key = "d";
	attrs[2].v = (struct atel_attr_value){ .vtype = ATEL_VT_DOUBLE, .d = 2.5 };
	attrs[3].key = "b";
	attrs[3].v = (struct atel_attr_value){ .vtype = ATEL_VT_BOOL, .b = true };
	eattrs[0].key = "n";
	eattrs[0].v = (struct atel_attr_value){ .vtype = ATEL_VT_INT, .i = 7 };
	ev = (struct atel_otlp_event){ .name = "evt", .ts_ns = 1700000000500000000ull, .attrs = eattrs, .nattrs = 1 };
	memset(&sp, 0, sizeof(sp));
	memcpy(sp.trace_id, TID, 16);
	memcpy(sp.span_id, SID, 8);
	memcpy(sp.parent_id, PID, 8);
	sp.kind = 3;
	sp.flags = 1;
	sp.name = "op";
	sp.start_ns = 1700000000000000000ull;
	sp.end_ns = 1700000001000000000ull;
	sp.status = 2;
	sp.status_msg = "bad";
	sp.attrs = attrs;
	sp.nattrs = 4;
	sp.events = &ev;
	sp.nevents = 1;
	assert_int_equal(atel__otlp_encode_spans(&b, efmt, &res, &sp, 1), 0);
	assert_int_equal(atel__otlpd_decode(&r, true, dfmt, b.data, b.len, err, sizeof(err)), 0);
	assert_int_equal(r.nspans, 1);
	assert_int_equal(r.nresources, 1);
	assert_string_equal(r.resources[0].service_name, "svc-a");
	{
		const struct atel_otlpd_span *s = &r.spans[0];
		assert_int_equal(s->trace_id_len, 16);
		assert_memory_equal(s->trace_id, TID, 16);
		assert_int_equal(s->span_id_len, 8);
		assert_memory_equal(s->span_id, SID, 8);
		assert_memory_equal(s->parent_id, PID, 8);
		assert_string_equal(s->name, "op");
		assert_int_equal(s->kind, 3);
		assert_int_equal(s->flags & 0xff, 1);
		assert_true(s->start_ns == sp.start_ns && s->end_ns == sp.end_ns);
		assert_int_equal(s->status_code, 2);
		assert_string_equal(s->status_msg, "bad");
		assert_int_equal(s->nattrs, 4);
		assert_string_equal(s->attrs[0].key, "s");
		assert_string_equal(s->attrs[0].s, "hello");
		assert_int_equal(s->attrs[1].vtype, ATEL_VT_INT);
		assert_true(s->attrs[1].i == -42);
		assert_int_equal(s->attrs[2].vtype, ATEL_VT_DOUBLE);
		assert_true(s->attrs[2].d == 2.5);
		assert_int_equal(s->attrs[3].vtype, ATEL_VT_BOOL);
		assert_true(s->attrs[3].b);
		assert_int_equal(s->nevents, 1);
		assert_string_equal(s->events[0].name, "evt");
		assert_true(s->events[0].ts_ns == ev.ts_ns);
		assert_int_equal(s->events[0].nattrs, 1);
		assert_true(s->events[0].attrs[0].i == 7);
	}
	atel__otlpd_free(&r);
	atel__buf_free(&b);
}

static void test_spans_roundtrip(void **state)
{
	(void)state;
	roundtrip_spans(ATEL_OTLP_PROTOBUF, ATEL_OTLPD_PROTOBUF);
	roundtrip_spans(ATEL_OTLP_JSON, ATEL_OTLPD_JSON);
}

/* Unknown fields are skipped; arrays and key-value lists become JSON text; bytes base64. */
static void test_pb_hand_made(void **state)
{
	struct atel_buf req = { 0 }, rs = { 0 }, ss = { 0 }, span = { 0 }, kv = { 0 }, av = { 0 }, arr = { 0 }, tmp = { 0 };
	struct atel_otlpd_req r;
	char err[256];

	(void)state;
	/* AnyValue{array_value{values:[{int 1},{string "x"}]}} */
	w_tag(&tmp, 3, 0);
	w_varint(&tmp, 1);
	w_msg(&arr, 1, &tmp);
	atel__buf_reset(&tmp);
	w_bytes(&tmp, 1, "x", 1);
	w_msg(&arr, 1, &tmp);
	w_msg(&av, 5, &arr);
	w_bytes(&kv, 1, "list", 4);
	w_msg(&kv, 2, &av);
	w_bytes(&span, 1, TID, 16);
	w_bytes(&span, 2, SID, 8);
	w_bytes(&span, 5, "n", 1);
	w_tag(&span, 99, 0); /* unknown varint */
	w_varint(&span, 12345);
	w_bytes(&span, 100, "junk", 4); /* unknown bytes */
	w_fixed64(&span, 7, 5);
	w_fixed64(&span, 8, 6);
	w_msg(&span, 9, &kv);
	atel__buf_reset(&kv);
	atel__buf_reset(&av);
	w_bytes(&av, 7, "\x01\x02\x03", 3);
	w_bytes(&kv, 1, "raw", 3);
	w_msg(&kv, 2, &av);
	w_msg(&span, 9, &kv);
	w_msg(&ss, 2, &span);
	w_msg(&rs, 2, &ss);
	w_msg(&req, 1, &rs);
	assert_int_equal(atel__otlpd_decode(&r, true, ATEL_OTLPD_PROTOBUF, req.data, req.len, err, sizeof(err)), 0);
	assert_int_equal(r.nspans, 1);
	assert_int_equal(r.spans[0].nattrs, 2);
	assert_string_equal(r.spans[0].attrs[0].s, "[1,\"x\"]");
	assert_string_equal(r.spans[0].attrs[1].s, "\"AQID\"");
	assert_true(r.spans[0].start_ns == 5 && r.spans[0].end_ns == 6);
	atel__otlpd_free(&r);

	/* errors: truncated length, wrong wire type for a known field, a group */
	{
		static const unsigned char trunc[] = { 0x0a, 0x10, 0x01 };
		static const unsigned char wrongwt[] = { 0x08, 0x01 };     /* field 1 as varint */
		static const unsigned char group[] = { 0x0b, 0x0c };       /* field 1, start group */
		assert_int_equal(atel__otlpd_decode(&r, true, ATEL_OTLPD_PROTOBUF, trunc, sizeof(trunc), err, sizeof(err)),
				 -EBADMSG);
		assert_non_null(strstr(err, "runs past the end"));
		atel__otlpd_free(&r);
		assert_int_equal(atel__otlpd_decode(&r, true, ATEL_OTLPD_PROTOBUF, wrongwt, sizeof(wrongwt), err,
						    sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "resource_spans"));
		atel__otlpd_free(&r);
		assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_PROTOBUF, group, sizeof(group), err, sizeof(err)),
				 -EBADMSG);
		atel__otlpd_free(&r);
	}
	/* nesting deeper than 16 is refused */
	{
		struct atel_buf v = { 0 }, o = { 0 };
		w_tag(&v, 3, 0);
		w_varint(&v, 1);
		for (int i = 0; i < 20; i++) {
			atel__buf_reset(&o);
			w_msg(&o, 1, &v);          /* ArrayValue.values */
			atel__buf_reset(&v);
			w_msg(&v, 5, &o);          /* AnyValue.array_value */
		}
		atel__buf_reset(&kv);
		w_bytes(&kv, 1, "deep", 4);
		w_msg(&kv, 2, &v);
		atel__buf_reset(&span);
		w_msg(&span, 9, &kv);
		atel__buf_reset(&ss);
		w_msg(&ss, 2, &span);
		atel__buf_reset(&rs);
		w_msg(&rs, 2, &ss);
		atel__buf_reset(&req);
		w_msg(&req, 1, &rs);
		assert_int_equal(atel__otlpd_decode(&r, true, ATEL_OTLPD_PROTOBUF, req.data, req.len, err, sizeof(err)),
				 -EBADMSG);
		assert_non_null(strstr(err, "nested"));
		atel__otlpd_free(&r);
		atel__buf_free(&v);
		atel__buf_free(&o);
	}
	atel__buf_free(&req);
	atel__buf_free(&rs);
	atel__buf_free(&ss);
	atel__buf_free(&span);
	atel__buf_free(&kv);
	atel__buf_free(&av);
	atel__buf_free(&arr);
	atel__buf_free(&tmp);
}

/* Metrics in protobuf: a monotonic cumulative Sum (as_int), a histogram with packed bounds and counts. */
static void test_pb_metrics(void **state)
{
	struct atel_buf req = { 0 }, rm = { 0 }, sm = { 0 }, m = { 0 }, sum = { 0 }, dp = { 0 }, h = { 0 }, packed = { 0 };
	struct atel_otlpd_req r;
	char err[256];

	(void)state;
	w_fixed64(&dp, 2, 100);
	w_fixed64(&dp, 3, 200);
	w_fixed64(&dp, 6, (uint64_t)(int64_t)-5); /* as_int (sfixed64) */
	w_msg(&sum, 1, &dp);
	w_tag(&sum, 2, 0);
	w_varint(&sum, 2);
	w_tag(&sum, 3, 0);
	w_varint(&sum, 1);
	w_bytes(&m, 1, "a.b", 3);
	w_msg(&m, 7, &sum);
	w_msg(&sm, 2, &m);
	/* histogram */
	atel__buf_reset(&dp);
	w_fixed64(&dp, 3, 300);
	w_fixed64(&dp, 4, 3);
	w_double(&dp, 5, 7.5);
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 8; k++)
			atel__buf_putc(&packed, (char)(k == 0 ? 1 : 0));
	w_msg(&dp, 6, &packed);
	atel__buf_reset(&packed);
	{
		double bnd[2] = { 1, 2 };
		atel__buf_put(&packed, bnd, sizeof(bnd));
	}
	w_msg(&dp, 7, &packed);
	w_msg(&h, 1, &dp);
	w_tag(&h, 2, 0);
	w_varint(&h, 1);
	atel__buf_reset(&m);
	w_bytes(&m, 1, "lat", 3);
	w_msg(&m, 9, &h);
	w_msg(&sm, 2, &m);
	w_msg(&rm, 2, &sm);
	w_msg(&req, 1, &rm);
	assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_PROTOBUF, req.data, req.len, err, sizeof(err)), 0);
	assert_int_equal(r.nmetrics, 2);
	assert_int_equal(r.npoints, 2);
	assert_int_equal(r.metrics[0].kind, ATEL_OTLPD_SUM);
	assert_true(r.metrics[0].monotonic);
	assert_int_equal(r.metrics[0].temporality, 2);
	assert_true(r.metrics[0].points[0].is_int && r.metrics[0].points[0].i == -5);
	assert_true(r.metrics[0].points[0].start_ns == 100 && r.metrics[0].points[0].ts_ns == 200);
	assert_int_equal(r.metrics[1].kind, ATEL_OTLPD_HISTOGRAM);
	assert_int_equal(r.metrics[1].temporality, 1);
	assert_int_equal(r.metrics[1].points[0].nbuckets, 3);
	assert_int_equal(r.metrics[1].points[0].nbounds, 2);
	assert_true(r.metrics[1].points[0].bounds[1] == 2.0);
	assert_true(r.metrics[1].points[0].count == 3 && r.metrics[1].points[0].sum == 7.5);
	atel__otlpd_free(&r);
	atel__buf_free(&req);
	atel__buf_free(&rm);
	atel__buf_free(&sm);
	atel__buf_free(&m);
	atel__buf_free(&sum);
	atel__buf_free(&dp);
	atel__buf_free(&h);
	atel__buf_free(&packed);
}

static void test_json_metrics(void **state)
{
	static const char body[] =
		"{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"s\"}}]},"
		"\"scopeMetrics\":[{\"metrics\":["
		"{\"name\":\"g\",\"gauge\":{\"dataPoints\":[{\"timeUnixNano\":\"5\",\"asDouble\":\"NaN\"},{\"asInt\":\"-3\"}]}},"
		"{\"name\":\"h\",\"histogram\":{\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_CUMULATIVE\",\"dataPoints\":"
		"[{\"count\":\"4\",\"sum\":1.5,\"bucketCounts\":[\"1\",3],\"explicitBounds\":[0.5]}]}},"
		"{\"name\":\"e\",\"exponentialHistogram\":{\"dataPoints\":[{},{}]}}]}]}]}";
	static const char bad[] = "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"g\",\"sum\":"
				  "{\"dataPoints\":[{\"asInt\":\"12x\"}]}}]}]}]}";
	struct atel_otlpd_req r;
	char err[256];

	(void)state;
	assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_JSON, body, strlen(body), err, sizeof(err)), 0);
	assert_int_equal(r.nmetrics, 3);
	assert_int_equal(r.npoints, 5);
	assert_string_equal(r.resources[0].service_name, "s");
	assert_true(isnan(r.metrics[0].points[0].d) && r.metrics[0].points[0].ts_ns == 5);
	assert_true(r.metrics[0].points[1].is_int && r.metrics[0].points[1].i == -3);
	assert_int_equal(r.metrics[1].temporality, 2);
	assert_true(r.metrics[1].points[0].buckets[1] == 3 && r.metrics[1].points[0].bounds[0] == 0.5);
	assert_int_equal(r.metrics[2].kind, ATEL_OTLPD_EXP_HISTOGRAM);
	atel__otlpd_free(&r);
	assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_JSON, bad, strlen(bad), err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "dataPoints[0].asInt"));
	atel__otlpd_free(&r);
	assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_JSON, "{} \n", 4, err, sizeof(err)), 0);
	atel__otlpd_free(&r);
	assert_int_equal(atel__otlpd_decode(&r, false, ATEL_OTLPD_JSON, "{}x", 3, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "after the end"));
	atel__otlpd_free(&r);
}

/* Answers read back by the OTLP exporter's own response parser. */
static void test_answers(void **state)
{
	struct atel_buf b = { 0 };
	int64_t rej = -1;
	char msg[128];

	(void)state;
	atel__otlpd_response(&b, true, ATEL_OTLPD_PROTOBUF, 0, NULL);
	assert_int_equal(b.len, 0);
	atel__otlpd_response(&b, true, ATEL_OTLPD_PROTOBUF, 3, "three bad");
	assert_int_equal(atel__otlp_parse_response(b.data, b.len, false, &rej, msg, sizeof(msg)), 0);
	assert_true(rej == 3);
	assert_string_equal(msg, "three bad");
	atel__buf_reset(&b);
	atel__otlpd_response(&b, false, ATEL_OTLPD_JSON, 2, "x\"y");
	assert_int_equal(atel__otlp_parse_response(b.data, b.len, true, &rej, msg, sizeof(msg)), 0);
	assert_true(rej == 2);
	assert_string_equal(msg, "x\"y");
	atel__buf_reset(&b);
	atel__otlpd_response(&b, false, ATEL_OTLPD_JSON, 0, NULL);
	assert_string_equal(b.data, "{}");
	atel__buf_free(&b);
}

static void test_dechunk(void **state)
{
	static const char in[] = "HEAD4\r\nWiki\r\n5;ext=1\r\npedia\n0\r\nTrailer: x\r\n\r\nNEXT";
	char buf[128];
	size_t pos, out;

	(void)state;
	/* whole */
	memcpy(buf, in, sizeof(in));
	pos = out = 4;
	assert_int_equal(atel__http_dechunk(buf, sizeof(in) - 1, 4, &pos, &out, 100), 1);
	assert_int_equal(out - 4, 9);
	assert_memory_equal(buf + 4, "Wikipedia", 9);
	assert_string_equal(buf + pos, "NEXT");
	/* fed one byte at a time, with compaction as the server does it */
	{
		char b2[128];
		size_t len = 4, total = sizeof(in) - 1, fed = 4;
		int k = 0;
		memcpy(b2, in, 4);
		pos = out = 4;
		while (fed < total && k == 0) {
			b2[len++] = in[fed++];
			k = atel__http_dechunk(b2, len, 4, &pos, &out, 100);
			if (k == 0 && pos > out) {
				memmove(b2 + out, b2 + pos, len - pos);
				len -= pos - out;
				pos = out;
			}
		}
		assert_int_equal(k, 1);
		assert_memory_equal(b2 + 4, "Wikipedia", 9);
		assert_int_equal(fed, total - 4); /* NEXT not needed */
	}
	/* errors */
	{
		char e1[] = "zz\r\n";
		char e2[] = "5\r\nabcdeXX";
		char e3[] = "ffff\r\n";
		pos = out = 0;
		assert_int_equal(atel__http_dechunk(e1, strlen(e1), 0, &pos, &out, 100), -400);
		pos = out = 0;
		assert_int_equal(atel__http_dechunk(e2, strlen(e2), 0, &pos, &out, 100), -400);
		pos = out = 0;
		assert_int_equal(atel__http_dechunk(e3, strlen(e3), 0, &pos, &out, 100), -413);
	}
}

/* ---- the receiver on a segment nobody drains ------------------------------------- */

struct answer {
	int status;
	bool retry_after;
	char body[512];
};

static void http_post(uint16_t port, const char *path, const char *ctype, const char *body, size_t len,
		      struct answer *a)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	char head[512], resp[8192];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	ssize_t r;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	n = snprintf(head, sizeof(head),
		     "POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		     path, ctype, len);
	assert_true(write(fd, head, (size_t)n) == n);
	assert_true(write(fd, body, len) == (ssize_t)len);
	while ((r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	resp[got] = '\0';
	assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &a->status), 1);
	a->retry_after = strstr(resp, "\r\nRetry-After: 1\r\n") != NULL;
	snprintf(a->body, sizeof(a->body), "%s", strstr(resp, "\r\n\r\n") ? strstr(resp, "\r\n\r\n") + 4 : "");
}

/* n spans of one trace, each with one attribute, as OTLP JSON */
static char *spans_json(int n, uint64_t now, int salt)
{
	struct atel_buf b = { 0 };

	atel__buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
	for (int i = 0; i < n; i++) {
		char s[400];
		snprintf(s, sizeof(s),
			 "%s{\"traceId\":\"%032x\",\"spanId\":\"%016x\",\"name\":\"s%d\",\"startTimeUnixNano\":\"%llu\","
			 "\"endTimeUnixNano\":\"%llu\",\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":%d}}]}",
			 i ? "," : "", salt + 1, i + 1, i, (unsigned long long)now, (unsigned long long)now + 10, i);
		atel__buf_puts(&b, s);
	}
	atel__buf_puts(&b, "]}]}]}");
	return b.data;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void test_receiver_ring_full(void **state)
{
	char path[] = "/tmp/atel-otlprecv-seg-XXXXXX", err[256];
	struct atel_segment_config cfg = { .ring_count = 2, .ring_capacity = 64, .mode = 0600 };
	struct atel_segment seg;
	struct atel_otlp_recv *rx;
	struct atel_otlp_recv_opts o = { 0 };
	struct answer a;
	uint64_t head = 0, now = now_ns();
	int fd = mkstemp(path), ring = -1, n200 = 0;
	char *body;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	memset(&seg, 0, sizeof(seg));
	assert_int_equal(atel__segment_create(&seg, path, &cfg, err, sizeof(err)), 0);
	o.seg = &seg;
	o.wait_ms = 50;
	assert_int_equal(atel__otlp_recv_start(&rx, &o, err, sizeof(err)), 0);

	/* 413: one span needing more slots than a whole ring (64): 2 attributes of 4000 bytes */
	{
		struct atel_buf big = { 0 };
		char *v = malloc(4001);
		memset(v, 'v', 4000);
		v[4000] = '\0';
		atel__buf_puts(&big, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
				     "\"spanId\":\"0102030405060708\",\"name\":\"big\",\"startTimeUnixNano\":\"");
		atel__buf_u64(&big, now);
		atel__buf_puts(&big, "\",\"endTimeUnixNano\":\"");
		atel__buf_u64(&big, now + 1);
		atel__buf_puts(&big, "\",\"attributes\":[{\"key\":\"a\",\"value\":{\"stringValue\":\"");
		atel__buf_puts(&big, v);
		atel__buf_puts(&big, "\"}},{\"key\":\"b\",\"value\":{\"stringValue\":\"");
		atel__buf_puts(&big, v);
		atel__buf_puts(&big, "\"}}]}]}]}]}");
		http_post(atel__otlp_recv_port(rx), "/v1/traces", "application/json", big.data, big.len, &a);
		assert_int_equal(a.status, 413);
		assert_non_null(strstr(a.body, "one item needs more records"));
		assert_true(atomic_load(&atel__seg_desc(&seg, 0)->head) == 0 && atomic_load(&atel__seg_desc(&seg, 1)->head) == 0);
		atel__buf_free(&big);
		free(v);
	}

	/* requests of 4 spans (1 + 4 x 3 slots + definitions) until the ring is full */
	for (int i = 0; i < 20; i++) {
		body = spans_json(4, now, i);
		http_post(atel__otlp_recv_port(rx), "/v1/traces", "application/json", body, strlen(body), &a);
		free(body);
		if (ring < 0)
			for (uint32_t r = 0; r < seg.ring_count; r++)
				if (atomic_load(&atel__seg_desc(&seg, r)->head))
					ring = (int)r;
		assert_true(ring >= 0);
		if (a.status == 503) {
			/* nothing of the refused request was published */
			assert_true(atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head) == head);
			assert_true(a.retry_after);
			break;
		}
		assert_int_equal(a.status, 200);
		assert_string_equal(a.body, "{}");
		assert_true(atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head) > head);
		head = atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head);
		n200++;
	}
	assert_int_equal(a.status, 503);
	assert_true(n200 >= 2);
	/* the "drain" frees the ring: the retry is accepted, definitions included again where needed */
	atel__ring_release(&seg, (uint32_t)ring, head);
	body = spans_json(4, now, 99);
	http_post(atel__otlp_recv_port(rx), "/v1/traces", "application/json", body, strlen(body), &a);
	free(body);
	assert_int_equal(a.status, 200);
	head = atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head);
	atel__ring_release(&seg, (uint32_t)ring, head);
	/* a request larger than the ring goes in pieces at span boundaries; with nobody draining,
	 * the first piece is kept and the spans after it are rejected, said in the partial success */
	body = spans_json(30, now, 7);
	http_post(atel__otlp_recv_port(rx), "/v1/traces", "application/json", body, strlen(body), &a);
	free(body);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "no room for the last"));
	{
		uint64_t h2 = atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head);
		unsigned long long rej = 0;
		const char *r = strstr(a.body, "\"rejectedSpans\":\"");
		assert_non_null(r);
		rej = strtoull(r + 17, NULL, 10);
		assert_true(h2 > head && h2 - head <= 64);
		/* the kept spans are whole: START + ATTR + END, after the STRDEF of their name
		 * (s0..s3 are defined already in this generation) */
		uint64_t want = 0;
		assert_true(rej > 0 && rej < 30);
		for (unsigned long long i = 0; i < 30 - rej; i++)
			want += 3 + (i >= 4);
		assert_true(h2 - head == want);
		head = h2;
	}
	atel__ring_release(&seg, (uint32_t)ring, head);
	/* the published records are well-formed (structural check of each) */
	{
		uint64_t h = atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->head), p = head;
		const union atel_slot *slots = atel__seg_slots(&seg, (uint32_t)ring);
		while (p < h) {
			union atel_slot rec[64];
			int k;
			for (unsigned j = 0; j < 64 && p + j < h; j++)
				rec[j] = slots[(p + j) & 63];
			k = atel__rec_check(rec, h - p, NULL);
			assert_true(k > 0);
			p += (uint64_t)k;
		}
	}
	/* a span timed before the boot is rejected, not stored */
	{
		static const char old[] = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
					  "\"spanId\":\"0102030405060708\",\"name\":\"x\",\"startTimeUnixNano\":\"5\",\"endTimeUnixNano\":\"6\"}]}]}]}";
		http_post(atel__otlp_recv_port(rx), "/v1/traces", "application/json", old, strlen(old), &a);
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.body, "\"rejectedSpans\":\"1\""));
		assert_non_null(strstr(a.body, "booted"));
	}
	atel__otlp_recv_stop(rx);
	/* released: END written (the ring had room), state FREE */
	assert_int_equal(atomic_load(&atel__seg_desc(&seg, (uint32_t)ring)->state), ATEL_RING_FREE);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

/* Sum of the SAMPLE values published in ring `ring` from position `from`. */
static double ring_samples(const struct atel_segment *seg, uint32_t ring, uint64_t from, uint64_t *n)
{
	uint64_t h = atomic_load(&atel__seg_desc(seg, ring)->head), p = from, cap = seg->ring_capacity;
	const union atel_slot *slots = atel__seg_slots(seg, ring);
	double sum = 0;

	*n = 0;
	while (p < h) {
		union atel_slot rec[64];
		int k;
		for (unsigned j = 0; j < 64 && p + j < h; j++)
			rec[j] = slots[(p + j) & (cap - 1)];
		k = atel__rec_check(rec, h - p, NULL);
		assert_true(k > 0);
		if (rec[0].h.type == ATEL_REC_SAMPLE) {
			sum += rec[0].sample.value;
			(*n)++;
		}
		p += (uint64_t)k;
	}
	return sum;
}

/* Two SDK processes report the same cumulative counter (same name and labels, their own
 * start times), interleaved, and one restarts: the increases add up exactly. */
static void test_cumulative_streams(void **state)
{
	char path[] = "/tmp/atel-otlprecv-seg2-XXXXXX", err[256], body[1024];
	struct atel_segment_config cfg = { .ring_count = 2, .ring_capacity = 1024, .mode = 0600 };
	struct atel_segment seg;
	struct atel_otlp_recv *rx;
	struct atel_otlp_recv_opts o = { 0 };
	struct answer a;
	static const struct { uint64_t start; int v; } pts[] = {
		{ 111, 10 }, { 222, 3 }, { 111, 12 }, { 222, 5 }, { 222, 5 }, { 333, 1 }, { 111, 20 },
	};
	uint64_t now = now_ns(), n = 0;
	int fd = mkstemp(path);
	double sum = 0;

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	memset(&seg, 0, sizeof(seg));
	assert_int_equal(atel__segment_create(&seg, path, &cfg, err, sizeof(err)), 0);
	o.seg = &seg;
	assert_int_equal(atel__otlp_recv_start(&rx, &o, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		snprintf(body, sizeof(body),
			 "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
			 "{\"stringValue\":\"w\"}}]},\"scopeMetrics\":[{\"metrics\":[{\"name\":\"jobs\",\"sum\":"
			 "{\"aggregationTemporality\":2,\"isMonotonic\":true,\"dataPoints\":[{\"startTimeUnixNano\":\"%llu\","
			 "\"timeUnixNano\":\"%llu\",\"asInt\":\"%d\"}]}}]}]}]}",
			 (unsigned long long)pts[i].start, (unsigned long long)(now + i), pts[i].v);
		http_post(atel__otlp_recv_port(rx), "/v1/metrics", "application/json", body, strlen(body), &a);
		assert_int_equal(a.status, 200);
		assert_string_equal(a.body, "{}");
	}
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		uint64_t k;
		sum += ring_samples(&seg, r, 0, &k);
		n += k;
	}
	/* 111: 10, +2, +8; 222: 3, +2, +0; 333 (a restart): 1 */
	assert_true(sum == 26.0);
	assert_true(n == 7);
	atel__otlp_recv_stop(rx);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

struct drainer {
	struct atel_segment *seg;
	atomic_bool stop;
	uint64_t starts, bad;
};

/* A minimal drain: checks each published record, counts SPAN_STARTs, frees the ring. */
static void *drain_thread(void *arg)
{
	struct drainer *dr = arg;
	uint64_t pos = 0, cap = dr->seg->ring_capacity;
	const union atel_slot *slots = atel__seg_slots(dr->seg, 0);

	while (!atomic_load(&dr->stop)) {
		uint64_t h = atomic_load_explicit(&atel__seg_desc(dr->seg, 0)->head, memory_order_acquire);
		while (pos < h) {
			union atel_slot rec[64];
			unsigned n = h - pos < 64 ? (unsigned)(h - pos) : 64;
			int k;
			for (unsigned j = 0; j < n; j++)
				rec[j] = slots[(pos + j) & (cap - 1)];
			k = atel__rec_check(rec, n, NULL);
			if (k <= 0) {
				dr->bad++;
				k = 1;
			}
			if (rec[0].h.type == ATEL_REC_SPAN_START)
				dr->starts++;
			pos += (uint64_t)k;
		}
		atel__ring_release(dr->seg, 0, pos);
		usleep(100);
	}
	return NULL;
}

/* A request far larger than the ring goes in pieces while the drain frees it: all accepted. */
static void test_pieces_with_drain(void **state)
{
	char path[] = "/tmp/atel-otlprecv-seg4-XXXXXX", err[256];
	struct atel_segment_config cfg = { .ring_count = 1, .ring_capacity = 64, .mode = 0600 };
	struct atel_segment seg;
	struct atel_otlp_recv *rx;
	struct atel_otlp_recv_opts o = { 0 };
	struct atel_buf ans = { 0 };
	struct drainer dr = { 0 };
	pthread_t th;
	char *body = spans_json(500, now_ns(), 3);
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	memset(&seg, 0, sizeof(seg));
	assert_int_equal(atel__segment_create(&seg, path, &cfg, err, sizeof(err)), 0);
	o.seg = &seg;
	o.wait_ms = 10000;
	o.max_body = 1u << 20;
	assert_int_equal(atel__otlp_recv_open(&rx, &o), 0);
	dr.seg = &seg;
	assert_int_equal(pthread_create(&th, NULL, drain_thread, &dr), 0);
	assert_int_equal(atel__otlp_recv_post(rx, "/v1/traces", "application/json", NULL, body, strlen(body), &ans), 200);
	assert_string_equal(ans.data, "{}");
	atel__otlp_recv_stop(rx); /* END written */
	while (atomic_load(&atel__seg_desc(&seg, 0)->tail) != atomic_load(&atel__seg_desc(&seg, 0)->head))
		usleep(1000);
	atomic_store(&dr.stop, true);
	pthread_join(th, NULL);
	assert_true(dr.starts == 500);
	assert_true(dr.bad == 0);
	atel__buf_free(&ans);
	free(body);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

/* The entry point the fuzz target uses: no server, answers on the caller's thread. */
static void test_post_without_server(void **state)
{
	char path[] = "/tmp/atel-otlprecv-seg3-XXXXXX", err[256];
	struct atel_segment_config cfg = { .ring_count = 1, .ring_capacity = 1024, .mode = 0600 };
	struct atel_segment seg;
	struct atel_otlp_recv *rx;
	struct atel_otlp_recv_opts o = { 0 };
	struct atel_buf ans = { 0 };
	char *body = spans_json(3, now_ns(), 5);
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	memset(&seg, 0, sizeof(seg));
	assert_int_equal(atel__segment_create(&seg, path, &cfg, err, sizeof(err)), 0);
	o.seg = &seg;
	assert_int_equal(atel__otlp_recv_open(&rx, &o), 0);
	assert_int_equal(atel__otlp_recv_post(rx, "/v1/traces", "application/json", NULL, body, strlen(body), &ans), 200);
	assert_string_equal(ans.data, "{}");
	/* BEGIN, 4 strings (s0..s2, k), 3 x (START, ATTR, END) */
	assert_true(atomic_load(&atel__seg_desc(&seg, 0)->head) == 1 + 4 + 9);
	assert_int_equal(atel__otlp_recv_post(rx, "/v1/traces", "application/json", "gzip", body, strlen(body), &ans), 400);
	assert_non_null(strstr(ans.data, "gzip"));
	assert_int_equal(atel__otlp_recv_post(rx, "/v1/metrics", "application/cbor", NULL, "x", 1, &ans), 415);
	atel__buf_free(&ans);
	free(body);
	atel__otlp_recv_stop(rx);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spans_roundtrip),
		cmocka_unit_test(test_pb_hand_made),
		cmocka_unit_test(test_pb_metrics),
		cmocka_unit_test(test_json_metrics),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_dechunk),
		cmocka_unit_test(test_receiver_ring_full),
		cmocka_unit_test(test_cumulative_streams),
		cmocka_unit_test(test_post_without_server),
		cmocka_unit_test(test_pieces_with_drain),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
