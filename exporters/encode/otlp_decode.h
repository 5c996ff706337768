/* SPDX-License-Identifier: MIT */
/*
 * otlp_decode.h - decoders of OTLP/HTTP export requests, the receiver's
 * untrusted input (exporters/otlp_receiver.c): ExportTraceServiceRequest
 * and ExportMetricsServiceRequest in http/protobuf (binary protobuf) and
 * http/json (the OTLP JSON mapping: lowerCamelCase keys, hex trace/span
 * ids, 64-bit integers as strings or numbers, enums as integers), into one
 * plain model, plus the encoders of the answers (partial success and
 * google.rpc.Status).
 *
 * Why a hand-written protobuf reader: the same reason as the hand-written
 * writer in otlp_encode.c. The messages are few and fixed
 * (third_party/opentelemetry-proto), protobuf-c would add a generator to the
 * build and a dependency to ateld for ~400 lines of wire-format reading, and
 * a reader of our own enforces exactly the limits we want on untrusted bytes
 * (every length checked against its enclosing message, nesting bounded,
 * everything allocated from one arena freed per request). Fuzzed by
 * tests/exporters/fuzz_otlp_decode.c.
 *
 * What the decoder refuses (-EBADMSG, err says where and why) is a body a
 * protobuf or JSON parser could not read: truncated fields, wrong wire types
 * or JSON types for known fields, groups, nesting deeper than 16. What it
 * accepts but an item cannot be stored with (ids of the wrong length, bad
 * hex, an empty name, ...) is left for the receiver to reject per item
 * (partial success). Unknown fields are skipped, as protobuf requires.
 *
 * Pure functions over caller-owned memory; thread-safe.
 */
#ifndef ATEL_OTLP_DECODE_H
#define ATEL_OTLP_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Value types: ATEL_VT_STR 1, ATEL_VT_INT 2, ATEL_VT_DOUBLE 3, ATEL_VT_BOOL 4
 * (atel_abi.h). Arrays, key-value lists and bytes arrive as strings: their
 * JSON text (bytes as a base64 JSON string). */
struct atel_otlpd_kv {
	const char *key;        /* NUL-terminated (may hold inner NULs: klen counts) */
	uint32_t klen;
	uint8_t vtype;
	uint32_t slen;
	const char *s;          /* ATEL_VT_STR: NUL-terminated, slen bytes */
	int64_t i;
	double d;
	bool b;
};

struct atel_otlpd_event {
	uint64_t ts_ns;
	const char *name;
	uint32_t nlen;
	struct atel_otlpd_kv *attrs;
	uint32_t nattrs;
	uint32_t dropped_attrs;
};

struct atel_otlpd_span {
	const uint8_t *trace_id, *span_id, *parent_id; /* raw bytes (NULL: absent) */
	uint32_t trace_id_len, span_id_len, parent_id_len;
	const char *name;
	uint32_t nlen;
	uint32_t kind;           /* as sent (0..5 valid) */
	uint64_t start_ns, end_ns;
	struct atel_otlpd_kv *attrs;
	uint32_t nattrs;
	struct atel_otlpd_event *events;
	uint32_t nevents;
	uint32_t dropped_attrs, dropped_events, nlinks;
	uint32_t status_code;    /* as sent (0..2 valid) */
	const char *status_msg;
	uint32_t status_msg_len;
	uint32_t flags;          /* W3C trace flags in bits 0-7 */
	uint32_t resource;       /* index into atel_otlpd_req.resources */
	const char *bad;         /* why the JSON could not give this span (bad hex id); NULL: fine */
};

enum atel_otlpd_mkind {
	ATEL_OTLPD_NONE = 0, ATEL_OTLPD_GAUGE, ATEL_OTLPD_SUM, ATEL_OTLPD_HISTOGRAM,
	ATEL_OTLPD_EXP_HISTOGRAM, ATEL_OTLPD_SUMMARY,
};

struct atel_otlpd_point {
	struct atel_otlpd_kv *attrs;
	uint32_t nattrs;
	uint64_t start_ns, ts_ns;
	uint32_t flags;          /* bit 0: no recorded value */
	bool is_int, has_value;  /* number points */
	int64_t i;
	double d;
	uint64_t count;          /* histogram points */
	bool has_sum;
	double sum;
	const uint64_t *buckets;
	uint32_t nbuckets;
	const double *bounds;
	uint32_t nbounds;
};

struct atel_otlpd_metric {
	const char *name;
	uint32_t nlen;
	const char *unit;
	enum atel_otlpd_mkind kind;
	uint32_t temporality;    /* 1 delta, 2 cumulative (as sent) */
	bool monotonic;
	struct atel_otlpd_point *points; /* gauge, sum, histogram */
	uint32_t npoints;        /* for exponential histograms and summaries: their point count, points NULL */
	uint32_t resource;
};

struct atel_otlpd_resource {
	const char *service_name; /* the resource's service.name string attribute; NULL: none */
	uint32_t service_name_len;
};

struct atel_otlpd_arena;

struct atel_otlpd_req {
	struct atel_otlpd_resource *resources;
	uint32_t nresources;
	struct atel_otlpd_span *spans;
	uint32_t nspans;
	struct atel_otlpd_metric *metrics;
	uint32_t nmetrics;
	uint64_t npoints;        /* data points over every metric, all kinds */
	struct atel_otlpd_arena *arena;
};

enum atel_otlpd_format { ATEL_OTLPD_PROTOBUF = 0, ATEL_OTLPD_JSON = 1 };

/*
 * Decodes an ExportTraceServiceRequest (traces true) or
 * ExportMetricsServiceRequest body. out is filled (free it with
 * atel__otlpd_free, also after a failure).
 * @return 0; -EBADMSG (err: what and where); -ENOMEM.
 */
int atel__otlpd_decode(struct atel_otlpd_req *out, bool traces, enum atel_otlpd_format fmt, const void *body,
		       size_t len, char *err, size_t errlen);

void atel__otlpd_free(struct atel_otlpd_req *r); /* NULL-safe */

/*
 * The 2xx answer: Export{Trace,Metrics}ServiceResponse, with a partial
 * success when rejected > 0 or msg is non-empty (protobuf: an empty message
 * when there is nothing to say; JSON: "{}"). b is not reset.
 */
void atel__otlpd_response(struct atel_buf *b, bool traces, enum atel_otlpd_format fmt, uint64_t rejected,
			  const char *msg);

/* The error answer: google.rpc.Status {code, message}. b is not reset. */
void atel__otlpd_status(struct atel_buf *b, enum atel_otlpd_format fmt, int grpc_code, const char *msg);

/*
 * Inflates a gzip member into out (reset first), at most max bytes.
 * @return 0; -EBADMSG (not gzip, corrupt, truncated, trailing garbage);
 * -E2BIG (the result would exceed max); -ENOMEM. err says which.
 */
int atel__otlpd_gunzip(struct atel_buf *out, const void *in, size_t len, size_t max, char *err, size_t errlen);

#endif /* ATEL_OTLP_DECODE_H */
