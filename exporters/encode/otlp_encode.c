/* SPDX-License-Identifier: MIT */
/*
 * otlp_encode.c - OTLP/HTTP request encoders (protobuf and JSON) and the
 * response decoder.
 *
 * Protobuf is written by hand rather than with protobuf-c: we emit ~10
 * message types, all append-only, and a generated-code build step (protoc-c
 * plus its runtime and a copy of the .proto files in the build) would cost
 * more than the ~150 lines of varint/length-delimited/fixed64 writing below.
 * The tests decode every payload with protoc against the vendored official
 * .proto files, so the hand encoder is checked against the real definitions.
 *
 * Nested messages are written in one pass: a 1-byte length placeholder is
 * reserved and, when the body turns out to be 128 bytes or longer, the body
 * is moved up by the extra varint bytes. The moves touch each byte once per
 * nesting level (at most 5 levels here), which is cheaper than a separate
 * sizing pass over the whole tree.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "otlp_encode.h"

/* ---- buffer (shm/util/buf.h) ------------------------------------------- */

/* a string literal, length known at compile time */
#define PUTL(b, lit) atel__buf_put((b), (lit), sizeof(lit) - 1)

/* ---- protobuf writer ----------------------------------------------------- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static inline void pb_varint(struct atel_buf *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t)v;
	atel__buf_put(b, tmp, n);
}

static inline void pb_tag(struct atel_buf *b, unsigned field, unsigned wt)
{
	pb_varint(b, ((uint64_t)field << 3) | wt);
}

static inline void pb_fixed64_raw(struct atel_buf *b, uint64_t v)
{
	uint8_t t[8];

	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	atel__buf_put(b, t, 8);
}

static inline void pb_fixed64(struct atel_buf *b, unsigned field, uint64_t v)
{
	pb_tag(b, field, WT_I64);
	pb_fixed64_raw(b, v);
}

static inline uint64_t dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, 8);
	return u;
}

static inline void pb_double(struct atel_buf *b, unsigned field, double d)
{
	pb_fixed64(b, field, dbits(d));
}

static inline void pb_uvarint_field(struct atel_buf *b, unsigned field, uint64_t v)
{
	pb_tag(b, field, WT_VARINT);
	pb_varint(b, v);
}

/* Opens a length-delimited field; returns the offset of its length byte. */
static inline size_t pb_open(struct atel_buf *b, unsigned field)
{
	pb_tag(b, field, WT_LEN);
	atel__buf_putc(b, 0);
	return b->len - 1;
}

static void pb_close(struct atel_buf *b, size_t at)
{
	size_t len, vlen = 1;
	uint64_t v;

	if (b->oom)
		return;
	len = b->len - at - 1;
	if (len < 0x80) {
		b->data[at] = (char)len;
		return;
	}
	for (v = len; v >= 0x80; v >>= 7)
		vlen++;
	if (!atel__buf_reserve(b, vlen - 1))
		return;
	memmove(b->data + at + vlen, b->data + at + 1, len);
	b->len += vlen - 1;
	for (size_t i = 0; i < vlen; i++, len >>= 7)
		b->data[at + i] = (char)((len & 0x7f) | (i + 1 < vlen ? 0x80 : 0));
}

static void pb_string(struct atel_buf *b, unsigned field, const char *s)
{
	size_t at = pb_open(b, field);

	atel__buf_utf8(b, s);
	pb_close(b, at);
}

static void pb_bytes(struct atel_buf *b, unsigned field, const uint8_t *p, size_t n)
{
	pb_tag(b, field, WT_LEN);
	pb_varint(b, n);
	atel__buf_put(b, p, n);
}

/* ---- JSON writer --------------------------------------------------------- */

static void js_u64_str(struct atel_buf *b, uint64_t v)
{
	atel__buf_putc(b, '"');
	atel__buf_u64(b, v);
	atel__buf_putc(b, '"');
}

static void js_i64_str(struct atel_buf *b, int64_t v)
{
	atel__buf_putc(b, '"');
	if (v < 0) {
		atel__buf_putc(b, '-');
		atel__buf_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		atel__buf_u64(b, (uint64_t)v);
	}
	atel__buf_putc(b, '"');
}

/* A protobuf JSON double: a number, or "NaN" / "Infinity" / "-Infinity". */
static void js_double(struct atel_buf *b, double v)
{
	char tmp[ATEL_FMT_DOUBLE_MAX];

	if (isnan(v)) {
		PUTL(b, "\"NaN\"");
	} else if (isinf(v)) {
		atel__buf_puts(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	} else {
		atel__buf_put(b, tmp, atel__fmt_double(tmp, v));
	}
}

static void js_hex(struct atel_buf *b, const uint8_t *p, size_t n)
{
	char tmp[40];

	tmp[0] = '"';
	atel__hex(p, n, tmp + 1);
	tmp[1 + 2 * n] = '"';
	atel__buf_put(b, tmp, 2 * n + 2);
}

static void js_key(struct atel_buf *b, const char *k, bool *first)
{
	if (!*first)
		atel__buf_putc(b, ',');
	*first = false;
	atel__buf_putc(b, '"');
	atel__buf_puts(b, k);
	atel__buf_put(b, "\":", 2);
}

/* ---- common pieces ------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void pb_anyvalue(struct atel_buf *b, unsigned field, const struct atel_attr_value *v)
{
	size_t at = pb_open(b, field);

	switch (v->vtype) {
	case ATEL_VT_INT:
		pb_uvarint_field(b, 3, (uint64_t)v->i);
		break;
	case ATEL_VT_DOUBLE:
		pb_double(b, 4, v->d);
		break;
	case ATEL_VT_BOOL:
		pb_uvarint_field(b, 2, v->b ? 1 : 0);
		break;
	default:
		pb_string(b, 1, v->s);
		break;
	}
	pb_close(b, at);
}

static void pb_kv(struct atel_buf *b, unsigned field, const char *key, const struct atel_attr_value *v)
{
	size_t at = pb_open(b, field);

	pb_string(b, 1, key);
	pb_anyvalue(b, 2, v);
	pb_close(b, at);
}

static void pb_kv_str(struct atel_buf *b, unsigned field, const char *key, const char *val)
{
	struct atel_attr_value v = { .vtype = ATEL_VT_STR, .s = val };

	pb_kv(b, field, key, &v);
}

static void js_anyvalue(struct atel_buf *b, const struct atel_attr_value *v)
{
	switch (v->vtype) {
	case ATEL_VT_INT:
		PUTL(b, "{\"intValue\":");
		js_i64_str(b, v->i);
		break;
	case ATEL_VT_DOUBLE:
		PUTL(b, "{\"doubleValue\":");
		js_double(b, v->d);
		break;
	case ATEL_VT_BOOL:
		atel__buf_puts(b, v->b ? "{\"boolValue\":true" : "{\"boolValue\":false");
		break;
	default:
		PUTL(b, "{\"stringValue\":");
		atel__json_str(b, v->s);
		break;
	}
	atel__buf_putc(b, '}');
}

static void js_kv(struct atel_buf *b, const char *key, const struct atel_attr_value *v)
{
	PUTL(b, "{\"key\":");
	atel__json_str(b, key);
	PUTL(b, ",\"value\":");
	js_anyvalue(b, v);
	atel__buf_putc(b, '}');
}

static void js_attrs(struct atel_buf *b, const struct atel_otlp_attr *a, uint32_t n)
{
	atel__buf_putc(b, '[');
	for (uint32_t i = 0; i < n; i++) {
		if (i)
			atel__buf_putc(b, ',');
		js_kv(b, a[i].key, &a[i].v);
	}
	atel__buf_putc(b, ']');
}

static void pb_resource_scope_open(struct atel_buf *b, const struct atel_otlp_resource *res,
				   size_t *at_outer, size_t *at_scope_list)
{
	size_t at_res, at_scope;

	*at_outer = pb_open(b, 1); /* resource_spans / resource_metrics */
	at_res = pb_open(b, 1);    /* resource */
	for (uint32_t i = 0; i < res->nattrs; i++)
		pb_kv(b, 1, res->attrs[i].key, &res->attrs[i].v);
	pb_close(b, at_res);
	*at_scope_list = pb_open(b, 2); /* scope_spans / scope_metrics */
	at_scope = pb_open(b, 1);       /* scope */
	pb_string(b, 1, res->scope_name ? res->scope_name : "atel");
	if (res->scope_version && *res->scope_version)
		pb_string(b, 2, res->scope_version);
	pb_close(b, at_scope);
}

/* {"resource":{...},"<scopes>":[{"scope":{...} -- one element of the top array, left open */
static void js_resource_scope(struct atel_buf *b, const struct atel_otlp_resource *res, const char *scopes)
{
	PUTL(b, "{\"resource\":{\"attributes\":");
	js_attrs(b, res->attrs, res->nattrs);
	PUTL(b, "},");
	atel__json_str(b, scopes);
	PUTL(b, ":[{\"scope\":{\"name\":");
	atel__json_str(b, res->scope_name ? res->scope_name : "atel");
	if (res->scope_version && *res->scope_version) {
		PUTL(b, ",\"version\":");
		atel__json_str(b, res->scope_version);
	}
	atel__buf_putc(b, '}');
}

static void js_resource_scope_open(struct atel_buf *b, const struct atel_otlp_resource *res, const char *top,
				   const char *scopes)
{
	atel__buf_putc(b, '{');
	atel__json_str(b, top);
	PUTL(b, ":[");
	js_resource_scope(b, res, scopes);
}

/* ---- spans --------------------------------------------------------------- */

static void pb_span(struct atel_buf *b, const struct atel_otlp_span *s)
{
	size_t at = pb_open(b, 2), at2;

	pb_bytes(b, 1, s->trace_id, 16);
	pb_bytes(b, 2, s->span_id, 8);
	if (!all_zero(s->parent_id, 8))
		pb_bytes(b, 4, s->parent_id, 8);
	pb_string(b, 5, s->name);
	if (s->kind)
		pb_uvarint_field(b, 6, s->kind);
	pb_fixed64(b, 7, s->start_ns);
	pb_fixed64(b, 8, s->end_ns);
	for (uint32_t i = 0; i < s->nattrs; i++)
		pb_kv(b, 9, s->attrs[i].key, &s->attrs[i].v);
	if (s->dropped_attrs)
		pb_uvarint_field(b, 10, s->dropped_attrs);
	if (s->dropped_events)
		pb_uvarint_field(b, 12, s->dropped_events);
	for (uint32_t i = 0; i < s->nevents; i++) {
		const struct atel_otlp_event *e = &s->events[i];

		at2 = pb_open(b, 11);
		pb_fixed64(b, 1, e->ts_ns);
		pb_string(b, 2, e->name);
		for (uint32_t j = 0; j < e->nattrs; j++)
			pb_kv(b, 3, e->attrs[j].key, &e->attrs[j].v);
		pb_close(b, at2);
	}
	at2 = pb_open(b, 15);
	if (s->status_msg && *s->status_msg)
		pb_string(b, 2, s->status_msg);
	if (s->status)
		pb_uvarint_field(b, 3, s->status);
	pb_close(b, at2);
	if (s->flags) {
		uint32_t f = s->flags;
		uint8_t t[4] = { (uint8_t)f, (uint8_t)(f >> 8), (uint8_t)(f >> 16), (uint8_t)(f >> 24) };

		pb_tag(b, 16, WT_I32);
		atel__buf_put(b, t, 4);
	}
	pb_close(b, at);
}

static void js_span(struct atel_buf *b, const struct atel_otlp_span *s)
{
	PUTL(b, "{\"traceId\":");
	js_hex(b, s->trace_id, 16);
	PUTL(b, ",\"spanId\":");
	js_hex(b, s->span_id, 8);
	if (!all_zero(s->parent_id, 8)) {
		PUTL(b, ",\"parentSpanId\":");
		js_hex(b, s->parent_id, 8);
	}
	if (s->flags) {
		PUTL(b, ",\"flags\":");
		atel__buf_u64(b, s->flags);
	}
	PUTL(b, ",\"name\":");
	atel__json_str(b, s->name);
	PUTL(b, ",\"kind\":");
	atel__buf_u64(b, s->kind);
	PUTL(b, ",\"startTimeUnixNano\":");
	js_u64_str(b, s->start_ns);
	if (s->end_ns) { /* 0: still open (atel traces); the exporter sends finished spans only */
		PUTL(b, ",\"endTimeUnixNano\":");
		js_u64_str(b, s->end_ns);
	}
	if (s->nattrs) {
		PUTL(b, ",\"attributes\":");
		js_attrs(b, s->attrs, s->nattrs);
	}
	if (s->dropped_attrs) {
		PUTL(b, ",\"droppedAttributesCount\":");
		atel__buf_u64(b, s->dropped_attrs);
	}
	if (s->dropped_events) {
		PUTL(b, ",\"droppedEventsCount\":");
		atel__buf_u64(b, s->dropped_events);
	}
	if (s->nevents) {
		PUTL(b, ",\"events\":[");
		for (uint32_t i = 0; i < s->nevents; i++) {
			const struct atel_otlp_event *e = &s->events[i];

			if (i)
				atel__buf_putc(b, ',');
			PUTL(b, "{\"timeUnixNano\":");
			js_u64_str(b, e->ts_ns);
			PUTL(b, ",\"name\":");
			atel__json_str(b, e->name);
			if (e->nattrs) {
				PUTL(b, ",\"attributes\":");
				js_attrs(b, e->attrs, e->nattrs);
			}
			atel__buf_putc(b, '}');
		}
		atel__buf_putc(b, ']');
	}
	PUTL(b, ",\"status\":{");
	{
		bool first = true;

		if (s->status_msg && *s->status_msg) {
			js_key(b, "message", &first);
			atel__json_str(b, s->status_msg);
		}
		if (s->status) {
			js_key(b, "code", &first);
			atel__buf_u64(b, s->status);
		}
	}
	PUTL(b, "}}");
}

int atel__otlp_encode_span_groups(struct atel_buf *b, enum atel_otlp_format fmt,
				  const struct atel_otlp_span_group *g, size_t ng)
{
	if (!b || (ng && !g))
		return -EINVAL;
	for (size_t k = 0; k < ng; k++)
		if (!g[k].res || (g[k].n && !g[k].spans))
			return -EINVAL;
	if (fmt == ATEL_OTLP_PROTOBUF) {
		for (size_t k = 0; k < ng; k++) {
			size_t at_rs, at_ss;

			pb_resource_scope_open(b, g[k].res, &at_rs, &at_ss);
			for (size_t i = 0; i < g[k].n; i++)
				pb_span(b, &g[k].spans[i]);
			pb_close(b, at_ss);
			pb_close(b, at_rs);
		}
	} else {
		PUTL(b, "{\"resourceSpans\":[");
		for (size_t k = 0; k < ng; k++) {
			if (k)
				atel__buf_putc(b, ',');
			js_resource_scope(b, g[k].res, "scopeSpans");
			PUTL(b, ",\"spans\":[");
			for (size_t i = 0; i < g[k].n; i++) {
				if (i)
					atel__buf_putc(b, ',');
				js_span(b, &g[k].spans[i]);
			}
			PUTL(b, "]}]}");
		}
		PUTL(b, "]}");
	}
	return b->oom ? -ENOMEM : 0;
}

int atel__otlp_encode_spans(struct atel_buf *b, enum atel_otlp_format fmt,
			    const struct atel_otlp_resource *res, const struct atel_otlp_span *spans, size_t n)
{
	struct atel_otlp_span_group g = { res, spans, n };

	if (!b || !res || (n && !spans))
		return -EINVAL;
	return atel__otlp_encode_span_groups(b, fmt, &g, 1);
}

/* ---- metrics ------------------------------------------------------------- */

static const char *unit_of(const char *name)
{
	size_t n = strlen(name);

	if (n > 8 && !strcmp(name + n - 8, "_seconds"))
		return "s";
	if (n > 6 && !strcmp(name + n - 6, "_bytes"))
		return "By";
	return NULL;
}

static void pb_point_attrs(struct atel_buf *b, unsigned field, const struct atel_agg_series *s)
{
	for (uint32_t i = 0; i < s->nlabels; i++)
		pb_kv_str(b, field, s->keys[i], s->values[i]);
}

static void pb_metric(struct atel_buf *b, const struct atel_agg_family *f, uint64_t ts)
{
	size_t at = pb_open(b, 2), at_data, at_pt, at2;
	const char *unit = unit_of(f->name);
	unsigned data_field = f->mtype == ATEL_MT_COUNTER ? 7 : f->mtype == ATEL_MT_HISTOGRAM ? 9 : 5;

	pb_string(b, 1, f->name);
	if (f->help && *f->help)
		pb_string(b, 2, f->help);
	if (unit)
		pb_string(b, 3, unit);
	at_data = pb_open(b, data_field);
	for (uint32_t i = 0; i < f->nseries; i++) {
		const struct atel_agg_series *s = &f->series[i];

		at_pt = pb_open(b, 1);
		pb_fixed64(b, 2, s->start_ns);
		pb_fixed64(b, 3, ts);
		if (f->mtype == ATEL_MT_HISTOGRAM) {
			pb_fixed64(b, 4, s->count);
			pb_double(b, 5, s->sum);
			at2 = pb_open(b, 6); /* packed fixed64 */
			for (uint32_t k = 0; k <= s->nbounds; k++)
				pb_fixed64_raw(b, s->buckets ? s->buckets[k] : 0);
			pb_close(b, at2);
			if (s->nbounds) {
				at2 = pb_open(b, 7); /* packed double */
				for (uint32_t k = 0; k < s->nbounds; k++)
					pb_fixed64_raw(b, dbits(s->bounds[k]));
				pb_close(b, at2);
			}
			pb_point_attrs(b, 9, s);
		} else {
			pb_double(b, 4, s->value);
			pb_point_attrs(b, 7, s);
		}
		pb_close(b, at_pt);
	}
	if (f->mtype != ATEL_MT_GAUGE)
		pb_uvarint_field(b, 2, 2); /* AGGREGATION_TEMPORALITY_CUMULATIVE */
	if (f->mtype == ATEL_MT_COUNTER)
		pb_uvarint_field(b, 3, 1); /* is_monotonic */
	pb_close(b, at_data);
	pb_close(b, at);
}

static void js_metric(struct atel_buf *b, const struct atel_agg_family *f, uint64_t ts)
{
	const char *unit = unit_of(f->name);
	const double *last_bounds = NULL;
	uint32_t last_n = 0;
	size_t last_off = 0, last_len = 0;

	PUTL(b, "{\"name\":");
	atel__json_str(b, f->name);
	if (f->help && *f->help) {
		PUTL(b, ",\"description\":");
		atel__json_str(b, f->help);
	}
	if (unit) {
		PUTL(b, ",\"unit\":");
		atel__json_str(b, unit);
	}
	atel__buf_puts(b, f->mtype == ATEL_MT_COUNTER ? ",\"sum\":{\"dataPoints\":["
		 : f->mtype == ATEL_MT_HISTOGRAM ? ",\"histogram\":{\"dataPoints\":["
						 : ",\"gauge\":{\"dataPoints\":[");
	for (uint32_t i = 0; i < f->nseries; i++) {
		const struct atel_agg_series *s = &f->series[i];

		if (i)
			atel__buf_putc(b, ',');
		PUTL(b, "{\"attributes\":[");
		for (uint32_t k = 0; k < s->nlabels; k++) {
			struct atel_attr_value v = { .vtype = ATEL_VT_STR, .s = s->values[k] };

			if (k)
				atel__buf_putc(b, ',');
			js_kv(b, s->keys[k], &v);
		}
		PUTL(b, "],\"startTimeUnixNano\":");
		js_u64_str(b, s->start_ns);
		PUTL(b, ",\"timeUnixNano\":");
		js_u64_str(b, ts);
		if (f->mtype == ATEL_MT_HISTOGRAM) {
			PUTL(b, ",\"count\":");
			js_u64_str(b, s->count);
			PUTL(b, ",\"sum\":");
			js_double(b, s->sum);
			PUTL(b, ",\"bucketCounts\":[");
			for (uint32_t k = 0; k <= s->nbounds; k++) {
				if (k)
					atel__buf_putc(b, ',');
				js_u64_str(b, s->buckets ? s->buckets[k] : 0);
			}
			PUTL(b, "],\"explicitBounds\":");
			if (s->bounds == last_bounds && s->nbounds == last_n && atel__buf_reserve(b, last_len)) {
				/* series of a family share their bounds: copy the text */
				memmove(b->data + b->len, b->data + last_off, last_len);
				b->len += last_len;
			} else {
				last_off = b->len;
				atel__buf_putc(b, '[');
				for (uint32_t k = 0; k < s->nbounds; k++) {
					if (k)
						atel__buf_putc(b, ',');
					js_double(b, s->bounds[k]);
				}
				atel__buf_putc(b, ']');
				last_len = b->len - last_off;
				last_bounds = s->bounds;
				last_n = s->nbounds;
			}
			atel__buf_putc(b, '}');
		} else {
			PUTL(b, ",\"asDouble\":");
			js_double(b, s->value);
			atel__buf_putc(b, '}');
		}
	}
	atel__buf_putc(b, ']');
	if (f->mtype != ATEL_MT_GAUGE)
		PUTL(b, ",\"aggregationTemporality\":2");
	if (f->mtype == ATEL_MT_COUNTER)
		PUTL(b, ",\"isMonotonic\":true");
	PUTL(b, "}}");
}

uint64_t atel__otlp_count_points(const struct atel_agg_snapshot *snap, uint32_t first, uint32_t count)
{
	uint64_t n = 0;

	for (uint32_t i = first; snap && i < snap->nfamilies && i - first < count; i++)
		n += snap->families[i].nseries;
	return n;
}

int atel__otlp_encode_metrics(struct atel_buf *b, enum atel_otlp_format fmt,
			      const struct atel_otlp_resource *res, const struct atel_agg_snapshot *snap,
			      uint32_t first, uint32_t count)
{
	uint32_t end;

	if (!b || !res || !snap || first > snap->nfamilies)
		return -EINVAL;
	end = count > snap->nfamilies - first ? snap->nfamilies : first + count;
	if (fmt == ATEL_OTLP_PROTOBUF) {
		size_t at_rm, at_sm;

		pb_resource_scope_open(b, res, &at_rm, &at_sm);
		for (uint32_t i = first; i < end; i++)
			pb_metric(b, &snap->families[i], snap->ts_ns);
		pb_close(b, at_sm);
		pb_close(b, at_rm);
	} else {
		js_resource_scope_open(b, res, "resourceMetrics", "scopeMetrics");
		PUTL(b, ",\"metrics\":[");
		for (uint32_t i = first; i < end; i++) {
			if (i > first)
				atel__buf_putc(b, ',');
			js_metric(b, &snap->families[i], snap->ts_ns);
		}
		PUTL(b, "]}]}]}");
	}
	return b->oom ? -ENOMEM : 0;
}

/* ---- responses ----------------------------------------------------------- */

/* Copies at most n bytes of untrusted text into msg, printable ASCII only
 * (the message goes into logs and SQLite rows). */
static void copy_msg(char *msg, size_t msglen, const char *s, size_t n)
{
	size_t o = 0;

	if (!msglen)
		return;
	for (size_t i = 0; i < n && o + 1 < msglen; i++) {
		unsigned char c = (unsigned char)s[i];

		msg[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	msg[o] = '\0';
}

static int fail(char *msg, size_t msglen, const char *why)
{
	if (msglen)
		snprintf(msg, msglen, "%s", why);
	return -EBADMSG;
}

static int pb_read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		uint8_t c;

		if (*i >= n)
			return -1;
		c = p[(*i)++];
		r |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -1;
}

/* Skips a field of wire type wt at *i. @return 0 or -1 (truncated/unsupported). */
static int pb_skip(const uint8_t *p, size_t n, size_t *i, unsigned wt)
{
	uint64_t v;

	switch (wt) {
	case WT_VARINT:
		return pb_read_varint(p, n, i, &v);
	case WT_I64:
		if (n - *i < 8)
			return -1;
		*i += 8;
		return 0;
	case WT_I32:
		if (n - *i < 4)
			return -1;
		*i += 4;
		return 0;
	case WT_LEN:
		if (pb_read_varint(p, n, i, &v) || v > n - *i)
			return -1;
		*i += (size_t)v;
		return 0;
	default:
		return -1;
	}
}

static int parse_pb(const uint8_t *p, size_t n, int64_t *rejected, char *msg, size_t msglen)
{
	size_t i = 0;

	while (i < n) {
		uint64_t key, len;

		if (pb_read_varint(p, n, &i, &key))
			return fail(msg, msglen, "response: truncated field key");
		if ((key >> 3) == 1 && (key & 7) == WT_LEN) {
			size_t j, end;

			if (pb_read_varint(p, n, &i, &len) || len > n - i)
				return fail(msg, msglen, "response: partial_success length runs past the body");
			j = i;
			end = i + (size_t)len;
			while (j < end) {
				uint64_t k2, v;

				if (pb_read_varint(p, end, &j, &k2))
					return fail(msg, msglen, "response: truncated partial_success field");
				if ((k2 >> 3) == 1 && (k2 & 7) == WT_VARINT) {
					if (pb_read_varint(p, end, &j, &v))
						return fail(msg, msglen, "response: truncated rejected count");
					*rejected = (int64_t)v;
				} else if ((k2 >> 3) == 2 && (k2 & 7) == WT_LEN) {
					if (pb_read_varint(p, end, &j, &v) || v > end - j)
						return fail(msg, msglen, "response: error_message runs past the body");
					copy_msg(msg, msglen, (const char *)p + j, (size_t)v);
					j += (size_t)v;
				} else if ((k2 >> 3) == 0 || pb_skip(p, end, &j, (unsigned)(k2 & 7))) {
					return fail(msg, msglen, "response: malformed partial_success field");
				}
			}
			i = end;
		} else if ((key >> 3) == 0 || pb_skip(p, n, &i, (unsigned)(key & 7))) {
			return fail(msg, msglen, "response: malformed field");
		}
	}
	if (*rejected < 0)
		return fail(msg, msglen, "response: negative rejected count");
	return 0;
}

static int json_int64(const cJSON *v, int64_t *out)
{
	if (cJSON_IsNumber(v)) {
		if (!(v->valuedouble >= 0 && v->valuedouble < 9.2e18))
			return -1;
		*out = (int64_t)v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v)) {
		char *end;
		long long x;

		errno = 0;
		x = strtoll(v->valuestring, &end, 10);
		if (errno || end == v->valuestring || *end || x < 0)
			return -1;
		*out = x;
		return 0;
	}
	return -1;
}

static int parse_json(const char *body, size_t len, int64_t *rejected, char *msg, size_t msglen)
{
	cJSON *root = cJSON_ParseWithLength(body, len), *ps, *v;
	int rc = 0;

	if (!root)
		return fail(msg, msglen, "response: body is not valid JSON");
	if (!cJSON_IsObject(root)) {
		rc = fail(msg, msglen, "response: JSON body is not an object");
		goto out;
	}
	ps = cJSON_GetObjectItemCaseSensitive(root, "partialSuccess");
	if (!ps || cJSON_IsNull(ps))
		goto out;
	if (!cJSON_IsObject(ps)) {
		rc = fail(msg, msglen, "response: partialSuccess is not an object");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(ps, "rejectedSpans");
	if (!v)
		v = cJSON_GetObjectItemCaseSensitive(ps, "rejectedDataPoints");
	if (!v)
		v = cJSON_GetObjectItemCaseSensitive(ps, "rejectedLogRecords");
	if (v && json_int64(v, rejected)) {
		rc = fail(msg, msglen, "response: partialSuccess rejected count is not a non-negative int64");
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(ps, "errorMessage");
	if (v && cJSON_IsString(v))
		copy_msg(msg, msglen, v->valuestring, strlen(v->valuestring));
	else if (v && !cJSON_IsNull(v))
		rc = fail(msg, msglen, "response: partialSuccess.errorMessage is not a string");
out:
	cJSON_Delete(root);
	return rc;
}

int atel__otlp_parse_response(const void *body, size_t len, bool json, int64_t *rejected, char *msg,
			      size_t msglen)
{
	*rejected = 0;
	if (msglen)
		msg[0] = '\0';
	if (!body || !len)
		return 0;
	return json ? parse_json(body, len, rejected, msg, msglen) : parse_pb(body, len, rejected, msg, msglen);
}
