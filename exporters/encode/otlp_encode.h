/* SPDX-License-Identifier: MIT */
/*
 * otlp_encode.h - OTLP request encoders (ExportTraceServiceRequest,
 * ExportMetricsServiceRequest) in the two OTLP/HTTP encodings:
 * http/protobuf (binary protobuf) and http/json (the OTLP JSON mapping:
 * lowerCamelCase keys, hex trace/span ids, 64-bit integers as decimal strings,
 * enums as integers, NaN/Infinity as strings). Also the decoder of the
 * collector's response (partial success), which is untrusted input.
 *
 * Pure functions over caller-owned data: no globals, no locks; thread-safe as
 * long as each thread uses its own output buffer.
 */
#ifndef ATEL_OTLP_ENCODE_H
#define ATEL_OTLP_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aggregates.h"
#include "buf.h"
#include "decode.h"

/* Output goes into a struct atel_buf (buf.h), reused across exports; on
 * allocation failure the encoders return -ENOMEM at the end. */

enum atel_otlp_format {
	ATEL_OTLP_PROTOBUF = 0,   /* http/protobuf, Content-Type application/x-protobuf */
	ATEL_OTLP_JSON = 1,       /* http/json, Content-Type application/json */
};

/* A typed attribute (OTLP KeyValue with an AnyValue of string/int/double/bool). */
struct atel_otlp_attr {
	const char *key;
	struct atel_attr_value v;     /* vtype ATEL_VT_*; s NUL-terminated for strings */
};

/* The resource and scope every request carries. */
struct atel_otlp_resource {
	const struct atel_otlp_attr *attrs;  /* service.name first, then the rest */
	uint32_t nattrs;
	const char *scope_name;             /* "atel" */
	const char *scope_version;          /* the project version */
};

struct atel_otlp_event {
	const char *name;
	uint64_t ts_ns;
	const struct atel_otlp_attr *attrs;
	uint32_t nattrs;
};

struct atel_otlp_span {
	uint8_t trace_id[16], span_id[8], parent_id[8]; /* parent all-zero: root span */
	uint8_t kind;                 /* OTel SpanKind 1..5 (0: unspecified) */
	uint8_t flags;                /* W3C trace flags (bit 0: sampled) */
	const char *name;
	uint64_t start_ns, end_ns;
	uint8_t status;               /* 0 unset, 1 ok, 2 error */
	const char *status_msg;       /* may be NULL or "" */
	const struct atel_otlp_attr *attrs;
	uint32_t nattrs;
	const struct atel_otlp_event *events;
	uint32_t nevents;
	uint32_t dropped_attrs;       /* attributes / events the producer could not record (ring full) */
	uint32_t dropped_events;
};

/*
 * Appends one ExportTraceServiceRequest with `n` spans under one resource and
 * scope to b (b is not reset). Strings that are not valid UTF-8 are repaired
 * (U+FFFD), as protobuf requires valid UTF-8 in string fields.
 * @return 0, or -ENOMEM (b->oom), -EINVAL (NULL arguments).
 */
int atel__otlp_encode_spans(struct atel_buf *b, enum atel_otlp_format fmt,
			    const struct atel_otlp_resource *res, const struct atel_otlp_span *spans, size_t n);

/* Spans under one resource, for atel__otlp_encode_span_groups. */
struct atel_otlp_span_group {
	const struct atel_otlp_resource *res;
	const struct atel_otlp_span *spans;
	size_t n;
};

/* The same with one ResourceSpans per group (`atel traces --json`: one
 * per producing service). @return 0, -ENOMEM or -EINVAL. */
int atel__otlp_encode_span_groups(struct atel_buf *b, enum atel_otlp_format fmt,
				  const struct atel_otlp_span_group *g, size_t ng);

/*
 * Appends one ExportMetricsServiceRequest holding families
 * [first, first + count) of snap, cumulative temporality: counters as
 * monotonic Sums, gauges as Gauges, histograms as explicit-bucket Histograms
 * (bucketCounts one longer than explicitBounds). Data point time is
 * snap->ts_ns, start time the series' start_ns.
 * @return 0, -ENOMEM or -EINVAL.
 */
int atel__otlp_encode_metrics(struct atel_buf *b, enum atel_otlp_format fmt,
			      const struct atel_otlp_resource *res, const struct atel_agg_snapshot *snap,
			      uint32_t first, uint32_t count);

/* Number of data points (series) in families [first, first + count). */
uint64_t atel__otlp_count_points(const struct atel_agg_snapshot *snap, uint32_t first, uint32_t count);

/*
 * Decodes a collector's Export*ServiceResponse (untrusted): the partial
 * success' rejected count (rejectedSpans / rejectedDataPoints, field 1) and
 * errorMessage (field 2). An empty body is a full success.
 * json: the body is OTLP JSON (else protobuf).
 * @return 0 with *rejected (>= 0) and msg (NUL-terminated, truncated,
 * control characters replaced) set; -EBADMSG with msg saying what is wrong.
 */
int atel__otlp_parse_response(const void *body, size_t len, bool json, int64_t *rejected, char *msg,
			      size_t msglen);

#endif /* ATEL_OTLP_ENCODE_H */
