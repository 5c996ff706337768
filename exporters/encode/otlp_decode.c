/* SPDX-License-Identifier: MIT */
/*
 * otlp_decode.c - OTLP/HTTP request decoders (protobuf and JSON) and the
 * receiver's answers; see otlp_decode.h for why the protobuf reader is
 * hand-written and what is refused where. Field numbers are those of
 * third_party/opentelemetry-proto (v1.11.0): collector/{trace,metrics}/v1,
 * trace/v1/trace.proto, metrics/v1/metrics.proto, common/v1/common.proto.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "atel_abi.h"
#include "otlp_decode.h"

#define DEPTH_MAX 16
#define ARENA_BLOCK (64u << 10)

/* ---- arena ------------------------------------------------------------------- */

struct ablock {
	struct ablock *next;
	size_t used, cap;
	max_align_t data[];
};

struct atel_otlpd_arena {
	struct ablock *head;
};

static void *arena_alloc(struct atel_otlpd_arena *a, size_t n)
{
	struct ablock *b = a->head;

	n = (n + 15u) & ~(size_t)15u;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		if (!(b = malloc(sizeof(*b) + cap)))
			return NULL;
		b->used = 0;
		b->cap = cap;
		b->next = a->head;
		a->head = b;
	}
	b->used += n;
	return (char *)b->data + b->used - n;
}

/* Grows a vector of elem-sized items so that index n fits; old copies stay in the arena. */
static void *vec_grow(struct atel_otlpd_arena *a, void *v, uint32_t n, uint32_t *cap, size_t elem)
{
	void *nv;
	uint32_t nc;

	if (v && n < *cap)
		return v;
	if (n >= (1u << 28))
		return NULL;
	nc = *cap ? *cap * 2 : 8;
	while (nc <= n)
		nc *= 2;
	if (!(nv = arena_alloc(a, (size_t)nc * elem)))
		return NULL;
	if (v)
		memcpy(nv, v, (size_t)*cap * elem);
	memset((char *)nv + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
	*cap = nc;
	return nv;
}

static char *arena_str(struct atel_otlpd_arena *a, const void *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	if (p) {
		if (n)
			memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void atel__otlpd_free(struct atel_otlpd_req *r)
{
	struct ablock *b;

	if (!r)
		return;
	if (r->arena) {
		b = r->arena->head;
		while (b) {
			struct ablock *n = b->next;
			free(b);
			b = n;
		}
		free(r->arena);
	}
	memset(r, 0, sizeof(*r));
}

/* ---- shared decoding state --------------------------------------------------- */

struct dctx {
	struct atel_otlpd_req *r;
	struct atel_otlpd_arena *a;
	char *err;
	size_t errlen;
	const uint8_t *body0;
	struct atel_buf tmp;      /* JSON text of array/kvlist/bytes values */
	uint32_t rcap, scap, mcap; /* capacities of r's vectors */
};

static int fail(struct dctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct dctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen && !c->err[0]) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

#define OOM(c) fail((c), -ENOMEM, "out of memory")

static uint32_t new_resource(struct dctx *c)
{
	struct atel_otlpd_req *r = c->r;

	r->resources = vec_grow(c->a, r->resources, r->nresources, &c->rcap, sizeof(*r->resources));
	if (!r->resources)
		return UINT32_MAX;
	return r->nresources++;
}

static struct atel_otlpd_span *new_span(struct dctx *c, uint32_t res)
{
	struct atel_otlpd_req *r = c->r;

	r->spans = vec_grow(c->a, r->spans, r->nspans, &c->scap, sizeof(*r->spans));
	if (!r->spans)
		return NULL;
	r->spans[r->nspans].resource = res;
	return &r->spans[r->nspans++];
}

static struct atel_otlpd_metric *new_metric(struct dctx *c, uint32_t res)
{
	struct atel_otlpd_req *r = c->r;

	r->metrics = vec_grow(c->a, r->metrics, r->nmetrics, &c->mcap, sizeof(*r->metrics));
	if (!r->metrics)
		return NULL;
	r->metrics[r->nmetrics].resource = res;
	return &r->metrics[r->nmetrics++];
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_json(struct atel_buf *b, const uint8_t *p, size_t n)
{
	atel__buf_putc(b, '"');
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		char q[4] = { B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
			      i + 2 < n ? B64[v & 63] : '=' };
		atel__buf_put(b, q, 4);
	}
	atel__buf_putc(b, '"');
}

static void json_double(struct atel_buf *b, double d)
{
	if (isnan(d))
		atel__buf_puts(b, "\"NaN\"");
	else if (isinf(d))
		atel__buf_puts(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else
		atel__buf_double(b, d);
}

static void json_i64(struct atel_buf *b, int64_t v)
{
	if (v < 0) {
		atel__buf_putc(b, '-');
		atel__buf_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		atel__buf_u64(b, (uint64_t)v);
	}
}

/* Sets kv to the string in c->tmp (a complex value's JSON text). */
static int kv_from_tmp(struct dctx *c, struct atel_otlpd_kv *kv)
{
	if (c->tmp.oom)
		return OOM(c);
	kv->vtype = ATEL_VT_STR;
	kv->slen = (uint32_t)c->tmp.len;
	if (!(kv->s = arena_str(c->a, c->tmp.data ? c->tmp.data : "", c->tmp.len)))
		return OOM(c);
	return 0;
}

/* The resource's service.name (a string attribute). */
static void note_service(struct atel_otlpd_resource *res, const struct atel_otlpd_kv *kv)
{
	if (kv->klen == 12 && !memcmp(kv->key, "service.name", 12) && kv->vtype == ATEL_VT_STR) {
		res->service_name = kv->s;
		res->service_name_len = kv->slen;
	}
}

/* ---- protobuf ------------------------------------------------------------------ */

struct pbf {
	unsigned field, wt;
	uint64_t v;               /* varint, fixed64, fixed32 */
	const uint8_t *sub;       /* length-delimited */
	size_t sublen;
};

/*
 * Reads the next field of the message p[0..n) at *i. @return 1 (field in
 * f), 0 (end of message), or -EBADMSG.
 */
static int pb_next(struct dctx *c, const uint8_t *p, size_t n, size_t *i, struct pbf *f, const char *msg)
{
	uint64_t key, len;
	size_t at = *i;
	int s = 0;

	if (*i >= n)
		return 0;
	key = 0;
	for (;;) {
		if (*i >= n || s > 63)
			return fail(c, -EBADMSG, "protobuf %s: truncated or overlong field key at byte %zu", msg,
				    (size_t)(p + at - c->body0));
		key |= (uint64_t)(p[*i] & 0x7f) << s;
		s += 7;
		if (!(p[(*i)++] & 0x80))
			break;
	}
	f->field = key >> 3 > UINT32_MAX ? 0 : (unsigned)(key >> 3);
	f->wt = key & 7;
	if (f->field == 0)
		return fail(c, -EBADMSG, "protobuf %s: field number 0 at byte %zu", msg, (size_t)(p + at - c->body0));
	switch (f->wt) {
	case 0:
		f->v = 0;
		s = 0;
		for (;;) {
			if (*i >= n || s > 63)
				return fail(c, -EBADMSG, "protobuf %s: field %u: truncated varint at byte %zu", msg,
					    f->field, (size_t)(p + at - c->body0));
			f->v |= (uint64_t)(p[*i] & 0x7f) << s;
			s += 7;
			if (!(p[(*i)++] & 0x80))
				break;
		}
		return 1;
	case 1:
	case 5: {
		size_t w = f->wt == 1 ? 8 : 4;
		if (n - *i < w)
			return fail(c, -EBADMSG, "protobuf %s: field %u: truncated fixed%zu at byte %zu", msg, f->field,
				    w * 8, (size_t)(p + at - c->body0));
		f->v = 0;
		for (size_t k = 0; k < w; k++)
			f->v |= (uint64_t)p[*i + k] << (8 * k);
		*i += w;
		return 1;
	}
	case 2:
		len = 0;
		s = 0;
		for (;;) {
			if (*i >= n || s > 63)
				return fail(c, -EBADMSG, "protobuf %s: field %u: truncated length at byte %zu", msg,
					    f->field, (size_t)(p + at - c->body0));
			len |= (uint64_t)(p[*i] & 0x7f) << s;
			s += 7;
			if (!(p[(*i)++] & 0x80))
				break;
		}
		if (len > n - *i)
			return fail(c, -EBADMSG,
				    "protobuf %s: field %u: length %llu runs past the end of its message (%zu bytes "
				    "left) at byte %zu",
				    msg, f->field, (unsigned long long)len, n - *i, (size_t)(p + at - c->body0));
		f->sub = p + *i;
		f->sublen = (size_t)len;
		*i += (size_t)len;
		return 1;
	default:
		return fail(c, -EBADMSG, "protobuf %s: field %u has wire type %u (groups and unknown types are not "
			    "accepted) at byte %zu", msg, f->field, f->wt, (size_t)(p + at - c->body0));
	}
}

/* A known field with the wrong wire type is an undecodable body. */
static int pb_want(struct dctx *c, const struct pbf *f, unsigned wt, const char *msg, const char *name)
{
	if (f->wt == wt)
		return 0;
	return fail(c, -EBADMSG, "protobuf %s.%s (field %u): wire type %u, expected %u at byte %zu", msg, name,
		    f->field, f->wt, wt, f->sub ? (size_t)(f->sub - c->body0) : 0);
}

static double bits_double(uint64_t v)
{
	double d;

	memcpy(&d, &v, 8);
	return d;
}

static int pb_value_json(struct dctx *c, const uint8_t *p, size_t n, int depth);

static int pb_array_json(struct dctx *c, const uint8_t *p, size_t n, int depth)
{
	struct pbf f = { 0 };
	size_t i = 0;
	bool first = true;
	int rc;

	atel__buf_putc(&c->tmp, '[');
	while ((rc = pb_next(c, p, n, &i, &f, "ArrayValue")) == 1) {
		if (f.field != 1)
			continue;
		if ((rc = pb_want(c, &f, 2, "ArrayValue", "values")))
			return rc;
		if (!first)
			atel__buf_putc(&c->tmp, ',');
		first = false;
		if ((rc = pb_value_json(c, f.sub, f.sublen, depth + 1)))
			return rc;
	}
	atel__buf_putc(&c->tmp, ']');
	return rc;
}

static int pb_kvlist_json(struct dctx *c, const uint8_t *p, size_t n, int depth)
{
	struct pbf f = { 0 }, g = { 0 };
	size_t i = 0;
	bool first = true;
	int rc;

	atel__buf_putc(&c->tmp, '{');
	while ((rc = pb_next(c, p, n, &i, &f, "KeyValueList")) == 1) {
		const uint8_t *key = NULL, *val = NULL;
		size_t klen = 0, vlen = 0, j = 0;
		if (f.field != 1)
			continue;
		if ((rc = pb_want(c, &f, 2, "KeyValueList", "values")))
			return rc;
		while ((rc = pb_next(c, f.sub, f.sublen, &j, &g, "KeyValue")) == 1) {
			if (g.field == 1 || g.field == 2) {
				if ((rc = pb_want(c, &g, 2, "KeyValue", g.field == 1 ? "key" : "value")))
					return rc;
				if (g.field == 1)
					key = g.sub, klen = g.sublen;
				else
					val = g.sub, vlen = g.sublen;
			}
		}
		if (rc < 0)
			return rc;
		if (!first)
			atel__buf_putc(&c->tmp, ',');
		first = false;
		atel__json_strn(&c->tmp, key ? (const char *)key : "", klen);
		atel__buf_putc(&c->tmp, ':');
		if (val) {
			if ((rc = pb_value_json(c, val, vlen, depth + 1)))
				return rc;
		} else {
			atel__buf_puts(&c->tmp, "null");
		}
	}
	atel__buf_putc(&c->tmp, '}');
	return rc;
}

/* Appends the JSON text of an AnyValue message to c->tmp. */
static int pb_value_json(struct dctx *c, const uint8_t *p, size_t n, int depth)
{
	struct pbf f = { 0 }, last = { 0 };
	size_t i = 0;
	int rc;

	if (depth > DEPTH_MAX)
		return fail(c, -EBADMSG, "protobuf AnyValue: nested deeper than %d levels", DEPTH_MAX);
	while ((rc = pb_next(c, p, n, &i, &f, "AnyValue")) == 1) {
		if (f.field >= 1 && f.field <= 7) {
			static const unsigned wts[8] = { 0, 2, 0, 0, 1, 2, 2, 2 };
			if ((rc = pb_want(c, &f, wts[f.field], "AnyValue", "value")))
				return rc;
			last = f; /* a oneof: the last one wins */
		}
	}
	if (rc < 0)
		return rc;
	switch (last.field) {
	case 1: atel__json_strn(&c->tmp, (const char *)last.sub, last.sublen); break;
	case 2: atel__buf_puts(&c->tmp, last.v ? "true" : "false"); break;
	case 3: json_i64(&c->tmp, (int64_t)last.v); break;
	case 4: json_double(&c->tmp, bits_double(last.v)); break;
	case 5: return pb_array_json(c, last.sub, last.sublen, depth);
	case 6: return pb_kvlist_json(c, last.sub, last.sublen, depth);
	case 7: b64_json(&c->tmp, last.sub, last.sublen); break;
	default: atel__buf_puts(&c->tmp, "null"); break;
	}
	return 0;
}

/* A KeyValue message into kv. */
static int pb_kv(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_kv *kv)
{
	struct pbf f = { 0 }, g = { 0 }, last = { 0 };
	const uint8_t *val = NULL;
	size_t vlen = 0, i = 0;
	int rc;

	kv->key = "";
	kv->vtype = ATEL_VT_STR;
	kv->s = "";
	while ((rc = pb_next(c, p, n, &i, &f, "KeyValue")) == 1) {
		if (f.field == 1) {
			if ((rc = pb_want(c, &f, 2, "KeyValue", "key")))
				return rc;
			if (!(kv->key = arena_str(c->a, f.sub, f.sublen)))
				return OOM(c);
			kv->klen = (uint32_t)f.sublen;
		} else if (f.field == 2) {
			if ((rc = pb_want(c, &f, 2, "KeyValue", "value")))
				return rc;
			val = f.sub;
			vlen = f.sublen;
		}
	}
	if (rc < 0 || !val)
		return rc;
	i = 0;
	while ((rc = pb_next(c, val, vlen, &i, &g, "AnyValue")) == 1) {
		if (g.field >= 1 && g.field <= 7) {
			static const unsigned wts[8] = { 0, 2, 0, 0, 1, 2, 2, 2 };
			if ((rc = pb_want(c, &g, wts[g.field], "AnyValue", "value")))
				return rc;
			last = g;
		}
	}
	if (rc < 0)
		return rc;
	switch (last.field) {
	case 1:
		if (!(kv->s = arena_str(c->a, last.sub, last.sublen)))
			return OOM(c);
		kv->slen = (uint32_t)last.sublen;
		return 0;
	case 2: kv->vtype = ATEL_VT_BOOL; kv->b = last.v != 0; return 0;
	case 3: kv->vtype = ATEL_VT_INT; kv->i = (int64_t)last.v; return 0;
	case 4: kv->vtype = ATEL_VT_DOUBLE; kv->d = bits_double(last.v); return 0;
	case 0: return 0; /* an empty value: "" */
	default:
		atel__buf_reset(&c->tmp);
		if ((rc = pb_value_json(c, val, vlen, 1)))
			return rc;
		return kv_from_tmp(c, kv);
	}
}

/* Appends a KeyValue to the vector (*v, *nv, *cap). */
static int pb_kv_push(struct dctx *c, const struct pbf *f, struct atel_otlpd_kv **v, uint32_t *nv, uint32_t *cap,
		      const char *msg)
{
	int rc;

	if ((rc = pb_want(c, f, 2, msg, "attributes")))
		return rc;
	if (!(*v = vec_grow(c->a, *v, *nv, cap, sizeof(**v))))
		return OOM(c);
	if ((rc = pb_kv(c, f->sub, f->sublen, &(*v)[*nv])))
		return rc;
	(*nv)++;
	return 0;
}

static int pb_resource(struct dctx *c, const uint8_t *p, size_t n, uint32_t res)
{
	struct pbf f = { 0 };
	struct atel_otlpd_kv kv;
	size_t i = 0;
	int rc;

	while ((rc = pb_next(c, p, n, &i, &f, "Resource")) == 1) {
		if (f.field != 1)
			continue;
		if ((rc = pb_want(c, &f, 2, "Resource", "attributes")))
			return rc;
		memset(&kv, 0, sizeof(kv));
		if ((rc = pb_kv(c, f.sub, f.sublen, &kv)))
			return rc;
		note_service(&c->r->resources[res], &kv);
	}
	return rc;
}

static int pb_event(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_event *e)
{
	struct pbf f = { 0 };
	size_t i = 0;
	uint32_t cap = 0;
	int rc;

	e->name = "";
	while ((rc = pb_next(c, p, n, &i, &f, "Span.Event")) == 1) {
		switch (f.field) {
		case 1:
			if ((rc = pb_want(c, &f, 1, "Span.Event", "time_unix_nano")))
				return rc;
			e->ts_ns = f.v;
			break;
		case 2:
			if ((rc = pb_want(c, &f, 2, "Span.Event", "name")))
				return rc;
			if (!(e->name = arena_str(c->a, f.sub, f.sublen)))
				return OOM(c);
			e->nlen = (uint32_t)f.sublen;
			break;
		case 3:
			if ((rc = pb_kv_push(c, &f, &e->attrs, &e->nattrs, &cap, "Span.Event")))
				return rc;
			break;
		case 4:
			if ((rc = pb_want(c, &f, 0, "Span.Event", "dropped_attributes_count")))
				return rc;
			e->dropped_attrs = (uint32_t)f.v;
			break;
		}
	}
	return rc;
}

static int pb_bytes_field(struct dctx *c, const struct pbf *f, const char *name, const uint8_t **out, uint32_t *len)
{
	int rc = pb_want(c, f, 2, "Span", name);

	if (rc)
		return rc;
	*out = f->sub;
	*len = (uint32_t)f->sublen;
	return 0;
}

static int pb_span(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_span *s)
{
	struct pbf f = { 0 }, g = { 0 };
	size_t i = 0, j;
	uint32_t acap = 0, ecap = 0;
	int rc;

	s->name = "";
	while ((rc = pb_next(c, p, n, &i, &f, "Span")) == 1) {
		switch (f.field) {
		case 1: rc = pb_bytes_field(c, &f, "trace_id", &s->trace_id, &s->trace_id_len); break;
		case 2: rc = pb_bytes_field(c, &f, "span_id", &s->span_id, &s->span_id_len); break;
		case 4: rc = pb_bytes_field(c, &f, "parent_span_id", &s->parent_id, &s->parent_id_len); break;
		case 5:
			if ((rc = pb_want(c, &f, 2, "Span", "name")))
				break;
			if (!(s->name = arena_str(c->a, f.sub, f.sublen)))
				return OOM(c);
			s->nlen = (uint32_t)f.sublen;
			break;
		case 6:
			if (!(rc = pb_want(c, &f, 0, "Span", "kind")))
				s->kind = f.v > UINT32_MAX ? UINT32_MAX : (uint32_t)f.v;
			break;
		case 7:
			if (!(rc = pb_want(c, &f, 1, "Span", "start_time_unix_nano")))
				s->start_ns = f.v;
			break;
		case 8:
			if (!(rc = pb_want(c, &f, 1, "Span", "end_time_unix_nano")))
				s->end_ns = f.v;
			break;
		case 9: rc = pb_kv_push(c, &f, &s->attrs, &s->nattrs, &acap, "Span"); break;
		case 10:
			if (!(rc = pb_want(c, &f, 0, "Span", "dropped_attributes_count")))
				s->dropped_attrs = (uint32_t)f.v;
			break;
		case 11:
			if ((rc = pb_want(c, &f, 2, "Span", "events")))
				break;
			if (!(s->events = vec_grow(c->a, s->events, s->nevents, &ecap, sizeof(*s->events))))
				return OOM(c);
			if (!(rc = pb_event(c, f.sub, f.sublen, &s->events[s->nevents])))
				s->nevents++;
			break;
		case 12:
			if (!(rc = pb_want(c, &f, 0, "Span", "dropped_events_count")))
				s->dropped_events = (uint32_t)f.v;
			break;
		case 13:
			if (!(rc = pb_want(c, &f, 2, "Span", "links")))
				s->nlinks++;
			break;
		case 15:
			if ((rc = pb_want(c, &f, 2, "Span", "status")))
				break;
			j = 0;
			while ((rc = pb_next(c, f.sub, f.sublen, &j, &g, "Status")) == 1) {
				if (g.field == 2) {
					if ((rc = pb_want(c, &g, 2, "Status", "message")))
						return rc;
					if (!(s->status_msg = arena_str(c->a, g.sub, g.sublen)))
						return OOM(c);
					s->status_msg_len = (uint32_t)g.sublen;
				} else if (g.field == 3) {
					if ((rc = pb_want(c, &g, 0, "Status", "code")))
						return rc;
					s->status_code = g.v > UINT32_MAX ? UINT32_MAX : (uint32_t)g.v;
				}
			}
			break;
		case 16:
			if (!(rc = pb_want(c, &f, 5, "Span", "flags")))
				s->flags = (uint32_t)f.v;
			break;
		}
		if (rc < 0)
			return rc;
	}
	return rc;
}

/* Repeated fixed64 / double: packed (wire type 2) or one element (1). */
static int pb_packed64(struct dctx *c, const struct pbf *f, const char *msg, const char *name, uint64_t **v,
		       uint32_t *nv, uint32_t *cap)
{
	size_t cnt;

	if (f->wt == 1) {
		if (!(*v = vec_grow(c->a, *v, *nv, cap, 8)))
			return OOM(c);
		(*v)[(*nv)++] = f->v;
		return 0;
	}
	if (f->wt != 2)
		return pb_want(c, f, 2, msg, name);
	if (f->sublen % 8)
		return fail(c, -EBADMSG, "protobuf %s.%s: packed length %zu is not a multiple of 8 at byte %zu", msg,
			    name, f->sublen, (size_t)(f->sub - c->body0));
	cnt = f->sublen / 8;
	if (cnt && !(*v = vec_grow(c->a, *v, *nv + (uint32_t)cnt - 1, cap, 8)))
		return OOM(c);
	for (size_t k = 0; k < cnt; k++) {
		uint64_t x = 0;
		for (size_t b = 0; b < 8; b++)
			x |= (uint64_t)f->sub[8 * k + b] << (8 * b);
		(*v)[(*nv)++] = x;
	}
	return 0;
}

static int pb_point(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_point *pt, bool hist)
{
	const char *msg = hist ? "HistogramDataPoint" : "NumberDataPoint";
	struct pbf f = { 0 };
	size_t i = 0;
	uint32_t acap = 0, bcap = 0, xcap = 0;
	uint64_t *buckets = NULL, *bounds = NULL;
	int rc = 0;

	while ((rc = pb_next(c, p, n, &i, &f, msg)) == 1) {
		unsigned fl = f.field;
		if ((hist && fl == 9) || (!hist && fl == 7)) {
			rc = pb_kv_push(c, &f, &pt->attrs, &pt->nattrs, &acap, msg);
		} else if (fl == 2) {
			if (!(rc = pb_want(c, &f, 1, msg, "start_time_unix_nano")))
				pt->start_ns = f.v;
		} else if (fl == 3) {
			if (!(rc = pb_want(c, &f, 1, msg, "time_unix_nano")))
				pt->ts_ns = f.v;
		} else if (!hist && (fl == 4 || fl == 6)) {
			if (!(rc = pb_want(c, &f, 1, msg, fl == 4 ? "as_double" : "as_int"))) {
				pt->has_value = true;
				pt->is_int = fl == 6;
				if (fl == 6)
					pt->i = (int64_t)f.v;
				else
					pt->d = bits_double(f.v);
			}
		} else if ((!hist && fl == 8) || (hist && fl == 10)) {
			if (!(rc = pb_want(c, &f, 0, msg, "flags")))
				pt->flags = (uint32_t)f.v;
		} else if (hist && fl == 4) {
			if (!(rc = pb_want(c, &f, 1, msg, "count")))
				pt->count = f.v;
		} else if (hist && fl == 5) {
			if (!(rc = pb_want(c, &f, 1, msg, "sum"))) {
				pt->has_sum = true;
				pt->sum = bits_double(f.v);
			}
		} else if (hist && fl == 6) {
			rc = pb_packed64(c, &f, msg, "bucket_counts", &buckets, &pt->nbuckets, &bcap);
		} else if (hist && fl == 7) {
			rc = pb_packed64(c, &f, msg, "explicit_bounds", &bounds, &pt->nbounds, &xcap);
		}
		if (rc < 0)
			return rc;
	}
	pt->buckets = buckets;
	/* explicit_bounds arrive as IEEE-754 bits in little-endian order: same bytes as a double array */
	pt->bounds = (const double *)(const void *)bounds;
	return rc;
}

/* Gauge (5), Sum (7), Histogram (9) bodies; ExponentialHistogram (10) and Summary (11) are counted only. */
static int pb_metric_data(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_metric *m, unsigned which)
{
	static const char *const names[12] = { [5] = "Gauge", [7] = "Sum", [9] = "Histogram",
						[10] = "ExponentialHistogram", [11] = "Summary" };
	const char *msg = names[which];
	struct pbf f = { 0 };
	size_t i = 0;
	uint32_t cap = 0;
	int rc;

	m->kind = which == 5 ? ATEL_OTLPD_GAUGE : which == 7 ? ATEL_OTLPD_SUM : which == 9 ? ATEL_OTLPD_HISTOGRAM
		  : which == 10 ? ATEL_OTLPD_EXP_HISTOGRAM : ATEL_OTLPD_SUMMARY;
	m->points = NULL;
	m->npoints = 0;
	m->temporality = 0;
	m->monotonic = false;
	while ((rc = pb_next(c, p, n, &i, &f, msg)) == 1) {
		if (f.field == 1) {
			if ((rc = pb_want(c, &f, 2, msg, "data_points")))
				return rc;
			if (which == 10 || which == 11) {
				m->npoints++;
				continue;
			}
			if (!(m->points = vec_grow(c->a, m->points, m->npoints, &cap, sizeof(*m->points))))
				return OOM(c);
			if ((rc = pb_point(c, f.sub, f.sublen, &m->points[m->npoints], which == 9)))
				return rc;
			m->npoints++;
		} else if (f.field == 2 && which != 5 && which != 11) {
			if ((rc = pb_want(c, &f, 0, msg, "aggregation_temporality")))
				return rc;
			m->temporality = f.v > UINT32_MAX ? UINT32_MAX : (uint32_t)f.v;
		} else if (f.field == 3 && which == 7) {
			if ((rc = pb_want(c, &f, 0, msg, "is_monotonic")))
				return rc;
			m->monotonic = f.v != 0;
		}
	}
	return rc;
}

static int pb_metric(struct dctx *c, const uint8_t *p, size_t n, struct atel_otlpd_metric *m)
{
	struct pbf f = { 0 };
	size_t i = 0;
	int rc;

	m->name = "";
	m->unit = "";
	while ((rc = pb_next(c, p, n, &i, &f, "Metric")) == 1) {
		switch (f.field) {
		case 1:
		case 3:
			if ((rc = pb_want(c, &f, 2, "Metric", f.field == 1 ? "name" : "unit")))
				return rc;
			if (f.field == 1) {
				if (!(m->name = arena_str(c->a, f.sub, f.sublen)))
					return OOM(c);
				m->nlen = (uint32_t)f.sublen;
			} else if (!(m->unit = arena_str(c->a, f.sub, f.sublen))) {
				return OOM(c);
			}
			break;
		case 5: case 7: case 9: case 10: case 11:
			if ((rc = pb_want(c, &f, 2, "Metric", "data")) ||
			    (rc = pb_metric_data(c, f.sub, f.sublen, m, f.field)))
				return rc;
			break;
		}
	}
	return rc;
}

/*
 * The shape both export requests share: request.1 resource_X { 1 resource,
 * 2 scope_X { 2 item } }; `item` decodes one span or metric of resource res.
 */
struct pb_export_shape {
	const char *request, *resource_x, *resource_msg, *scope_x, *scope_msg, *items;
	int (*item)(struct dctx *c, uint32_t res, const uint8_t *p, size_t n);
};

static int pb_span_item(struct dctx *c, uint32_t res, const uint8_t *p, size_t n)
{
	struct atel_otlpd_span *s = new_span(c, res);

	return s ? pb_span(c, p, n, s) : OOM(c);
}

static int pb_metric_item(struct dctx *c, uint32_t res, const uint8_t *p, size_t n)
{
	struct atel_otlpd_metric *m = new_metric(c, res);

	return m ? pb_metric(c, p, n, m) : OOM(c);
}

static const struct pb_export_shape pb_traces_shape = {
	"ExportTraceServiceRequest", "resource_spans", "ResourceSpans", "scope_spans", "ScopeSpans", "spans",
	pb_span_item,
};
static const struct pb_export_shape pb_metrics_shape = {
	"ExportMetricsServiceRequest", "resource_metrics", "ResourceMetrics", "scope_metrics", "ScopeMetrics",
	"metrics", pb_metric_item,
};

static int pb_export(struct dctx *c, const uint8_t *p, size_t n, const struct pb_export_shape *sh)
{
	struct pbf f = { 0 }, g = { 0 }, h = { 0 };
	size_t i = 0, j, m;
	int rc;

	while ((rc = pb_next(c, p, n, &i, &f, sh->request)) == 1) {
		uint32_t res;
		if (f.field != 1)
			continue;
		if ((rc = pb_want(c, &f, 2, sh->request, sh->resource_x)))
			return rc;
		if ((res = new_resource(c)) == UINT32_MAX)
			return OOM(c);
		j = 0;
		while ((rc = pb_next(c, f.sub, f.sublen, &j, &g, sh->resource_msg)) == 1) {
			if (g.field == 1) {
				if ((rc = pb_want(c, &g, 2, sh->resource_msg, "resource")) ||
				    (rc = pb_resource(c, g.sub, g.sublen, res)))
					return rc;
			} else if (g.field == 2) {
				if ((rc = pb_want(c, &g, 2, sh->resource_msg, sh->scope_x)))
					return rc;
				m = 0;
				while ((rc = pb_next(c, g.sub, g.sublen, &m, &h, sh->scope_msg)) == 1) {
					if (h.field != 2)
						continue;
					if ((rc = pb_want(c, &h, 2, sh->scope_msg, sh->items)) ||
					    (rc = sh->item(c, res, h.sub, h.sublen)))
						return rc;
				}
				if (rc < 0)
					return rc;
			}
		}
		if (rc < 0)
			return rc;
	}
	return rc;
}

/* ---- JSON ---------------------------------------------------------------------- */

/* path buffers: "resourceSpans[0].scopeSpans[1].spans[2]" */
#define PATH 192

static int js_type(struct dctx *c, const char *path, const char *key, const char *want)
{
	return fail(c, -EBADMSG, "JSON %s%s%s: expected %s", path, *path ? "." : "", key, want);
}

/* An optional member; NULL when absent or null. */
static const cJSON *js_get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return v && !cJSON_IsNull(v) ? v : NULL;
}

static int js_array(struct dctx *c, const cJSON *o, const char *path, const char *key, const cJSON **out)
{
	const cJSON *v = js_get(o, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsArray(v))
		return js_type(c, path, key, "an array");
	*out = v;
	return 0;
}

static int js_object(struct dctx *c, const cJSON *v, const char *path)
{
	return cJSON_IsObject(v) ? 0 : fail(c, -EBADMSG, "JSON %s: expected an object", path);
}

static int js_string(struct dctx *c, const cJSON *o, const char *path, const char *key, const char **s, uint32_t *len)
{
	const cJSON *v = js_get(o, key);

	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return js_type(c, path, key, "a string");
	*s = v->valuestring;
	if (len)
		*len = (uint32_t)strlen(v->valuestring);
	return 0;
}

/* Integers: a JSON number with an integral value, or a decimal string (64-bit per the OTLP JSON mapping). */
static int js_int_item(struct dctx *c, const cJSON *v, const char *path, const char *key, bool is_signed,
		       uint64_t *out)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (!(d == floor(d)) || (is_signed ? (d < -9.2233720368547758e18 || d >= 9.2233720368547758e18)
						   : (d < 0 || d >= 1.8446744073709552e19)))
			return js_type(c, path, key, is_signed ? "a 64-bit integer" : "a non-negative 64-bit integer");
		*out = is_signed ? (uint64_t)(int64_t)d : (uint64_t)d;
		return 0;
	}
	if (cJSON_IsString(v)) {
		const char *s = v->valuestring;
		bool neg = false;
		uint64_t x = 0;
		if (is_signed && *s == '-') {
			neg = true;
			s++;
		}
		if (!*s)
			return js_type(c, path, key, "a decimal integer string");
		for (; *s; s++) {
			if (*s < '0' || *s > '9' || x > (UINT64_MAX - 9) / 10)
				return js_type(c, path, key, "a decimal integer string");
			x = x * 10 + (uint64_t)(*s - '0');
		}
		if (is_signed && (neg ? x > (uint64_t)INT64_MAX + 1 : x > (uint64_t)INT64_MAX))
			return js_type(c, path, key, "a 64-bit integer");
		*out = neg ? (uint64_t)0 - x : x;
		return 0;
	}
	return js_type(c, path, key, "an integer or a decimal string");
}

static int js_int(struct dctx *c, const cJSON *o, const char *path, const char *key, bool is_signed, uint64_t *out)
{
	const cJSON *v = js_get(o, key);

	return v ? js_int_item(c, v, path, key, is_signed, out) : 0;
}

static int js_u32(struct dctx *c, const cJSON *o, const char *path, const char *key, uint32_t *out)
{
	uint64_t v = *out;
	int rc = js_int(c, o, path, key, false, &v);

	if (rc)
		return rc;
	if (v > UINT32_MAX)
		return js_type(c, path, key, "a 32-bit integer");
	*out = (uint32_t)v;
	return 0;
}

static bool parse_double_str(const char *s, double *d)
{
	char *end;

	if (!strcmp(s, "NaN")) {
		*d = NAN;
		return true;
	}
	if (!strcmp(s, "Infinity")) {
		*d = INFINITY;
		return true;
	}
	if (!strcmp(s, "-Infinity")) {
		*d = -INFINITY;
		return true;
	}
	if (!*s)
		return false;
	*d = strtod(s, &end);
	return *end == '\0';
}

static int js_double_item(struct dctx *c, const cJSON *v, const char *path, const char *key, double *out)
{
	if (cJSON_IsNumber(v)) {
		*out = v->valuedouble;
		return 0;
	}
	if (cJSON_IsString(v) && parse_double_str(v->valuestring, out))
		return 0;
	return js_type(c, path, key, "a number, \"NaN\", \"Infinity\" or \"-Infinity\"");
}

/* Enums: an integer or the enum value's name (names map through names[]). */
static int js_enum(struct dctx *c, const cJSON *o, const char *path, const char *key, const char *const *names,
		   uint32_t n, uint32_t *out)
{
	const cJSON *v = js_get(o, key);

	if (v && cJSON_IsString(v)) {
		for (uint32_t k = 0; k < n; k++)
			if (names[k] && !strcmp(v->valuestring, names[k])) {
				*out = k;
				return 0;
			}
		/* a numeric string is not an enum name */
	}
	return js_u32(c, o, path, key, out);
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A hex id into arena bytes; *bad set if the text is not hex. */
static int js_hex_id(struct dctx *c, const cJSON *o, const char *path, const char *key, const uint8_t **out,
		     uint32_t *len, const char **bad)
{
	const char *s = NULL;
	uint32_t n = 0;
	uint8_t *b;
	int rc = js_string(c, o, path, key, &s, &n);

	if (rc || !s)
		return rc;
	if (n % 2) {
		*bad = "an id is not an even number of hex digits";
		return 0;
	}
	if (!(b = arena_alloc(c->a, n / 2 + 1)))
		return OOM(c);
	for (uint32_t k = 0; k < n / 2; k++) {
		int hi = hexval((unsigned char)s[2 * k]), lo = hexval((unsigned char)s[2 * k + 1]);
		if (hi < 0 || lo < 0) {
			*bad = "an id is not hex";
			return 0;
		}
		b[k] = (uint8_t)(hi << 4 | lo);
	}
	*out = b;
	*len = n / 2;
	return 0;
}

static int js_value_json(struct dctx *c, const cJSON *v, const char *path, int depth);

/* AnyValue object -> JSON text in c->tmp */
static int js_value_json(struct dctx *c, const cJSON *v, const char *path, int depth)
{
	const cJSON *x;
	int rc;

	if (depth > DEPTH_MAX)
		return fail(c, -EBADMSG, "JSON %s: AnyValue nested deeper than %d levels", path, DEPTH_MAX);
	if (!v || cJSON_IsNull(v)) {
		atel__buf_puts(&c->tmp, "null");
		return 0;
	}
	if ((rc = js_object(c, v, path)))
		return rc;
	if ((x = js_get(v, "stringValue"))) {
		if (!cJSON_IsString(x))
			return js_type(c, path, "stringValue", "a string");
		atel__json_str(&c->tmp, x->valuestring);
	} else if ((x = js_get(v, "boolValue"))) {
		if (!cJSON_IsBool(x))
			return js_type(c, path, "boolValue", "a boolean");
		atel__buf_puts(&c->tmp, cJSON_IsTrue(x) ? "true" : "false");
	} else if (js_get(v, "intValue")) {
		uint64_t i = 0;
		if ((rc = js_int(c, v, path, "intValue", true, &i)))
			return rc;
		json_i64(&c->tmp, (int64_t)i);
	} else if ((x = js_get(v, "doubleValue"))) {
		double d = 0;
		if ((rc = js_double_item(c, x, path, "doubleValue", &d)))
			return rc;
		json_double(&c->tmp, d);
	} else if ((x = js_get(v, "arrayValue"))) {
		const cJSON *vals = NULL, *e;
		bool first = true;
		if ((rc = js_object(c, x, path)) || (rc = js_array(c, x, path, "values", &vals)))
			return rc;
		atel__buf_putc(&c->tmp, '[');
		cJSON_ArrayForEach(e, vals) {
			if (!first)
				atel__buf_putc(&c->tmp, ',');
			first = false;
			if ((rc = js_value_json(c, e, path, depth + 1)))
				return rc;
		}
		atel__buf_putc(&c->tmp, ']');
	} else if ((x = js_get(v, "kvlistValue"))) {
		const cJSON *vals = NULL, *e;
		bool first = true;
		if ((rc = js_object(c, x, path)) || (rc = js_array(c, x, path, "values", &vals)))
			return rc;
		atel__buf_putc(&c->tmp, '{');
		cJSON_ArrayForEach(e, vals) {
			const char *k = "";
			if ((rc = js_object(c, e, path)) || (rc = js_string(c, e, path, "key", &k, NULL)))
				return rc;
			if (!first)
				atel__buf_putc(&c->tmp, ',');
			first = false;
			atel__json_str(&c->tmp, k);
			atel__buf_putc(&c->tmp, ':');
			if ((rc = js_value_json(c, js_get(e, "value"), path, depth + 1)))
				return rc;
		}
		atel__buf_putc(&c->tmp, '}');
	} else if ((x = js_get(v, "bytesValue"))) {
		if (!cJSON_IsString(x))
			return js_type(c, path, "bytesValue", "a base64 string");
		atel__json_str(&c->tmp, x->valuestring); /* already base64 text */
	} else {
		atel__buf_puts(&c->tmp, "null");
	}
	return 0;
}

static int js_kv(struct dctx *c, const cJSON *e, const char *path, struct atel_otlpd_kv *kv)
{
	const cJSON *v, *x;
	const char *key = "";
	int rc;

	memset(kv, 0, sizeof(*kv));
	kv->vtype = ATEL_VT_STR;
	kv->s = "";
	if ((rc = js_object(c, e, path)) || (rc = js_string(c, e, path, "key", &key, &kv->klen)))
		return rc;
	kv->key = key;
	if (!(v = js_get(e, "value")))
		return 0;
	if ((rc = js_object(c, v, path)))
		return rc;
	if ((x = js_get(v, "stringValue"))) {
		if (!cJSON_IsString(x))
			return js_type(c, path, "value.stringValue", "a string");
		kv->s = x->valuestring;
		kv->slen = (uint32_t)strlen(x->valuestring);
	} else if ((x = js_get(v, "boolValue"))) {
		if (!cJSON_IsBool(x))
			return js_type(c, path, "value.boolValue", "a boolean");
		kv->vtype = ATEL_VT_BOOL;
		kv->b = cJSON_IsTrue(x);
	} else if (js_get(v, "intValue")) {
		uint64_t i = 0;
		if ((rc = js_int(c, v, path, "intValue", true, &i)))
			return rc;
		kv->vtype = ATEL_VT_INT;
		kv->i = (int64_t)i;
	} else if ((x = js_get(v, "doubleValue"))) {
		if ((rc = js_double_item(c, x, path, "value.doubleValue", &kv->d)))
			return rc;
		kv->vtype = ATEL_VT_DOUBLE;
	} else if (js_get(v, "arrayValue") || js_get(v, "kvlistValue") || js_get(v, "bytesValue")) {
		atel__buf_reset(&c->tmp);
		if ((rc = js_value_json(c, v, path, 1)))
			return rc;
		return kv_from_tmp(c, kv);
	}
	return 0;
}

static int js_attrs(struct dctx *c, const cJSON *o, const char *path, const char *key, struct atel_otlpd_kv **out,
		    uint32_t *n)
{
	const cJSON *arr = NULL, *e;
	char sub[PATH];
	uint32_t k = 0;
	int rc;

	if ((rc = js_array(c, o, path, key, &arr)) || !arr)
		return rc;
	*n = (uint32_t)cJSON_GetArraySize(arr);
	if (!*n)
		return 0;
	if (!(*out = arena_alloc(c->a, sizeof(**out) * *n)))
		return OOM(c);
	cJSON_ArrayForEach(e, arr) {
		snprintf(sub, sizeof(sub), "%.120s.%s[%u]", path, key, k);
		if ((rc = js_kv(c, e, sub, &(*out)[k])))
			return rc;
		k++;
	}
	return 0;
}

static int js_resource(struct dctx *c, const cJSON *rs, const char *path, uint32_t res)
{
	const cJSON *r = js_get(rs, "resource");
	struct atel_otlpd_kv *kv = NULL;
	uint32_t n = 0;
	char sub[PATH];
	int rc;

	if (!r)
		return 0;
	snprintf(sub, sizeof(sub), "%.120s.resource", path);
	if ((rc = js_object(c, r, sub)) || (rc = js_attrs(c, r, sub, "attributes", &kv, &n)))
		return rc;
	for (uint32_t k = 0; k < n; k++)
		note_service(&c->r->resources[res], &kv[k]);
	return 0;
}

static const char *const KIND_NAMES[] = { "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
					  "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER" };
static const char *const STATUS_NAMES[] = { "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR" };
static const char *const TEMPORALITY_NAMES[] = { "AGGREGATION_TEMPORALITY_UNSPECIFIED",
						 "AGGREGATION_TEMPORALITY_DELTA",
						 "AGGREGATION_TEMPORALITY_CUMULATIVE" };

static int js_span(struct dctx *c, const cJSON *o, const char *path, struct atel_otlpd_span *s)
{
	const cJSON *ev = NULL, *links = NULL, *st, *e;
	uint64_t v;
	char sub[PATH];
	uint32_t k = 0;
	int rc;

	s->name = "";
	if ((rc = js_object(c, o, path)) ||
	    (rc = js_hex_id(c, o, path, "traceId", &s->trace_id, &s->trace_id_len, &s->bad)) ||
	    (rc = js_hex_id(c, o, path, "spanId", &s->span_id, &s->span_id_len, &s->bad)) ||
	    (rc = js_hex_id(c, o, path, "parentSpanId", &s->parent_id, &s->parent_id_len, &s->bad)) ||
	    (rc = js_string(c, o, path, "name", &s->name, &s->nlen)) ||
	    (rc = js_enum(c, o, path, "kind", KIND_NAMES, 6, &s->kind)))
		return rc;
	v = 0;
	if ((rc = js_int(c, o, path, "startTimeUnixNano", false, &v)))
		return rc;
	s->start_ns = v;
	v = 0;
	if ((rc = js_int(c, o, path, "endTimeUnixNano", false, &v)))
		return rc;
	s->end_ns = v;
	if ((rc = js_attrs(c, o, path, "attributes", &s->attrs, &s->nattrs)) ||
	    (rc = js_u32(c, o, path, "droppedAttributesCount", &s->dropped_attrs)) ||
	    (rc = js_u32(c, o, path, "droppedEventsCount", &s->dropped_events)) ||
	    (rc = js_u32(c, o, path, "flags", &s->flags)) || (rc = js_array(c, o, path, "events", &ev)) ||
	    (rc = js_array(c, o, path, "links", &links)))
		return rc;
	if (links)
		s->nlinks = (uint32_t)cJSON_GetArraySize(links);
	if ((st = js_get(o, "status"))) {
		snprintf(sub, sizeof(sub), "%.120s.status", path);
		if ((rc = js_object(c, st, sub)) ||
		    (rc = js_string(c, st, sub, "message", &s->status_msg, &s->status_msg_len)) ||
		    (rc = js_enum(c, st, sub, "code", STATUS_NAMES, 3, &s->status_code)))
			return rc;
	}
	if (ev && (s->nevents = (uint32_t)cJSON_GetArraySize(ev))) {
		if (!(s->events = arena_alloc(c->a, sizeof(*s->events) * s->nevents)))
			return OOM(c);
		memset(s->events, 0, sizeof(*s->events) * s->nevents);
		cJSON_ArrayForEach(e, ev) {
			struct atel_otlpd_event *x = &s->events[k];
			snprintf(sub, sizeof(sub), "%.120s.events[%u]", path, k);
			x->name = "";
			v = 0;
			if ((rc = js_object(c, e, sub)) || (rc = js_int(c, e, sub, "timeUnixNano", false, &v)) ||
			    (rc = js_string(c, e, sub, "name", &x->name, &x->nlen)) ||
			    (rc = js_attrs(c, e, sub, "attributes", &x->attrs, &x->nattrs)) ||
			    (rc = js_u32(c, e, sub, "droppedAttributesCount", &x->dropped_attrs)))
				return rc;
			x->ts_ns = v;
			k++;
		}
	}
	return 0;
}

/* Walks resource{Spans,Metrics}[].scope{Spans,Metrics}[].{spans,metrics}[], calling item for each. */
static int js_walk(struct dctx *c, const cJSON *root, bool traces,
		   int (*item)(struct dctx *c, const cJSON *o, const char *path, uint32_t res))
{
	const char *top = traces ? "resourceSpans" : "resourceMetrics";
	const char *mid = traces ? "scopeSpans" : "scopeMetrics";
	const char *leaf = traces ? "spans" : "metrics";
	const cJSON *rsa = NULL, *rs;
	char p1[PATH], p2[PATH], p3[PATH];
	uint32_t i = 0;
	int rc;

	if ((rc = js_object(c, root, "(top level)")) || (rc = js_array(c, root, "", top, &rsa)) || !rsa)
		return rc;
	cJSON_ArrayForEach(rs, rsa) {
		const cJSON *ssa = NULL, *ss;
		uint32_t res, j = 0;
		snprintf(p1, sizeof(p1), "%s[%u]", top, i++);
		if ((rc = js_object(c, rs, p1)))
			return rc;
		if ((res = new_resource(c)) == UINT32_MAX)
			return OOM(c);
		if ((rc = js_resource(c, rs, p1, res)) || (rc = js_array(c, rs, p1, mid, &ssa)))
			return rc;
		cJSON_ArrayForEach(ss, ssa) {
			const cJSON *sa = NULL, *s;
			uint32_t k = 0;
			snprintf(p2, sizeof(p2), "%.120s.%s[%u]", p1, mid, j++);
			if ((rc = js_object(c, ss, p2)) || (rc = js_array(c, ss, p2, leaf, &sa)))
				return rc;
			cJSON_ArrayForEach(s, sa) {
				snprintf(p3, sizeof(p3), "%.120s.%s[%u]", p2, leaf, k++);
				if ((rc = item(c, s, p3, res)))
					return rc;
			}
		}
	}
	return 0;
}

static int js_span_item(struct dctx *c, const cJSON *o, const char *path, uint32_t res)
{
	struct atel_otlpd_span *s = new_span(c, res);

	return s ? js_span(c, o, path, s) : OOM(c);
}

static int js_point(struct dctx *c, const cJSON *o, const char *path, struct atel_otlpd_point *pt, bool hist)
{
	const cJSON *x;
	uint64_t v;
	int rc;

	if ((rc = js_object(c, o, path)) || (rc = js_attrs(c, o, path, "attributes", &pt->attrs, &pt->nattrs)))
		return rc;
	v = 0;
	if ((rc = js_int(c, o, path, "startTimeUnixNano", false, &v)))
		return rc;
	pt->start_ns = v;
	v = 0;
	if ((rc = js_int(c, o, path, "timeUnixNano", false, &v)))
		return rc;
	pt->ts_ns = v;
	if ((rc = js_u32(c, o, path, "flags", &pt->flags)))
		return rc;
	if (!hist) {
		if ((x = js_get(o, "asDouble"))) {
			if ((rc = js_double_item(c, x, path, "asDouble", &pt->d)))
				return rc;
			pt->has_value = true;
		} else if (js_get(o, "asInt")) {
			v = 0;
			if ((rc = js_int(c, o, path, "asInt", true, &v)))
				return rc;
			pt->i = (int64_t)v;
			pt->is_int = pt->has_value = true;
		}
		return 0;
	}
	if ((rc = js_int(c, o, path, "count", false, &pt->count)))
		return rc;
	if ((x = js_get(o, "sum"))) {
		if ((rc = js_double_item(c, x, path, "sum", &pt->sum)))
			return rc;
		pt->has_sum = true;
	}
	{
		const cJSON *bc = NULL, *eb = NULL, *e;
		uint32_t k = 0;
		if ((rc = js_array(c, o, path, "bucketCounts", &bc)) || (rc = js_array(c, o, path, "explicitBounds", &eb)))
			return rc;
		if (bc && (pt->nbuckets = (uint32_t)cJSON_GetArraySize(bc))) {
			uint64_t *b = arena_alloc(c->a, 8u * pt->nbuckets);
			if (!b)
				return OOM(c);
			cJSON_ArrayForEach(e, bc) {
				b[k] = 0;
				if ((rc = js_int_item(c, e, path, "bucketCounts[]", false, &b[k])))
					return rc;
				k++;
			}
			pt->buckets = b;
		}
		k = 0;
		if (eb && (pt->nbounds = (uint32_t)cJSON_GetArraySize(eb))) {
			double *d = arena_alloc(c->a, 8u * pt->nbounds);
			if (!d)
				return OOM(c);
			cJSON_ArrayForEach(e, eb) {
				if ((rc = js_double_item(c, e, path, "explicitBounds[]", &d[k])))
					return rc;
				k++;
			}
			pt->bounds = d;
		}
	}
	return 0;
}

static int js_metric_item(struct dctx *c, const cJSON *o, const char *path, uint32_t res)
{
	static const char *const kinds[] = { "gauge", "sum", "histogram", "exponentialHistogram", "summary" };
	struct atel_otlpd_metric *m = new_metric(c, res);
	char sub[PATH], ps[PATH];
	int rc;

	if (!m)
		return OOM(c);
	m->name = "";
	m->unit = "";
	if ((rc = js_object(c, o, path)) || (rc = js_string(c, o, path, "name", &m->name, &m->nlen)) ||
	    (rc = js_string(c, o, path, "unit", &m->unit, NULL)))
		return rc;
	for (int k = 0; k < 5; k++) {
		const cJSON *d = js_get(o, kinds[k]), *dps = NULL, *e;
		uint32_t i = 0;
		if (!d)
			continue;
		snprintf(sub, sizeof(sub), "%.120s.%s", path, kinds[k]);
		m->kind = (enum atel_otlpd_mkind)(ATEL_OTLPD_GAUGE + k);
		m->points = NULL;
		m->npoints = 0;
		if ((rc = js_object(c, d, sub)) || (rc = js_array(c, d, sub, "dataPoints", &dps)) ||
		    (rc = js_enum(c, d, sub, "aggregationTemporality", TEMPORALITY_NAMES, 3, &m->temporality)))
			return rc;
		if (js_get(d, "isMonotonic")) {
			const cJSON *mo = js_get(d, "isMonotonic");
			if (!cJSON_IsBool(mo))
				return js_type(c, sub, "isMonotonic", "a boolean");
			m->monotonic = cJSON_IsTrue(mo);
		}
		if (!dps)
			continue;
		m->npoints = (uint32_t)cJSON_GetArraySize(dps);
		if (k >= 3 || !m->npoints)
			continue; /* exponential histograms and summaries: counted, not decoded */
		if (!(m->points = arena_alloc(c->a, sizeof(*m->points) * m->npoints)))
			return OOM(c);
		memset(m->points, 0, sizeof(*m->points) * m->npoints);
		cJSON_ArrayForEach(e, dps) {
			snprintf(ps, sizeof(ps), "%.120s.dataPoints[%u]", sub, i);
			if ((rc = js_point(c, e, ps, &m->points[i], k == 2)))
				return rc;
			i++;
		}
	}
	return 0;
}

/* ---- entry points ---------------------------------------------------------------- */

static bool only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return false;
	return true;
}

int atel__otlpd_decode(struct atel_otlpd_req *out, bool traces, enum atel_otlpd_format fmt, const void *body,
		       size_t len, char *err, size_t errlen)
{
	struct dctx c = { .r = out, .err = err, .errlen = errlen, .body0 = body };
	cJSON *root = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (err && errlen)
		err[0] = '\0';
	if (!(out->arena = calloc(1, sizeof(*out->arena))))
		return OOM(&c);
	c.a = out->arena;
	if (fmt == ATEL_OTLPD_PROTOBUF) {
		rc = pb_export(&c, body, len, traces ? &pb_traces_shape : &pb_metrics_shape);
	} else {
		const char *end = NULL;
		root = cJSON_ParseWithLengthOpts(body, len, &end, false);
		if (!root) {
			size_t at = end ? (size_t)(end - (const char *)body) : 0;
			if (!end) {
				const char *e = cJSON_GetErrorPtr();
				at = e && e >= (const char *)body && e <= (const char *)body + len
					     ? (size_t)(e - (const char *)body)
					     : 0;
			}
			rc = fail(&c, -EBADMSG, "JSON: not valid JSON (error near byte %zu of %zu)", at, len);
		} else if (end && !only_space(end, len - (size_t)(end - (const char *)body))) {
			rc = fail(&c, -EBADMSG, "JSON: bytes after the end of the request object at byte %zu",
				  (size_t)(end - (const char *)body));
		} else {
			rc = js_walk(&c, root, traces, traces ? js_span_item : js_metric_item);
		}
	}
	if (rc > 0)
		rc = 0;
	if (!rc && root) {
		/* JSON strings live in the cJSON tree: copy every string the model keeps */
		struct atel_otlpd_req *r = out;
#define KEEP(p, n)                                                                                 \
	do {                                                                                       \
		if ((p) && !((p) = arena_str(c.a, (p), (n)))) {                                    \
			rc = OOM(&c);                                                              \
			goto done;                                                                 \
		}                                                                                  \
	} while (0)
#define KEEP_KVS(kv, n)                                                                            \
	for (uint32_t q = 0; q < (n); q++) {                                                       \
		if (!(kv)[q].key)                                                                  \
			(kv)[q].key = "";                                                          \
		KEEP((kv)[q].key, (kv)[q].klen);                                                   \
		if ((kv)[q].vtype == ATEL_VT_STR)                                                  \
			KEEP((kv)[q].s, (kv)[q].slen);                                             \
	}
		for (uint32_t k = 0; k < r->nresources; k++)
			KEEP(r->resources[k].service_name, r->resources[k].service_name_len);
		for (uint32_t k = 0; k < r->nspans; k++) {
			struct atel_otlpd_span *s = &r->spans[k];
			KEEP(s->name, s->nlen);
			KEEP(s->status_msg, s->status_msg_len);
			KEEP_KVS(s->attrs, s->nattrs);
			for (uint32_t e = 0; e < s->nevents; e++) {
				KEEP(s->events[e].name, s->events[e].nlen);
				KEEP_KVS(s->events[e].attrs, s->events[e].nattrs);
			}
		}
		for (uint32_t k = 0; k < r->nmetrics; k++) {
			struct atel_otlpd_metric *m = &r->metrics[k];
			KEEP(m->name, m->nlen);
			KEEP(m->unit, strlen(m->unit));
			for (uint32_t p = 0; m->points && p < m->npoints; p++)
				KEEP_KVS(m->points[p].attrs, m->points[p].nattrs);
		}
#undef KEEP
#undef KEEP_KVS
	}
done:
	for (uint32_t k = 0; k < out->nmetrics; k++)
		out->npoints += out->metrics[k].npoints;
	cJSON_Delete(root);
	atel__buf_free(&c.tmp);
	return rc;
}

/* ---- answers ---------------------------------------------------------------------- */

static void pbw_varint(struct atel_buf *b, uint64_t v)
{
	while (v >= 0x80) {
		atel__buf_putc(b, (char)(v | 0x80));
		v >>= 7;
	}
	atel__buf_putc(b, (char)v);
}

void atel__otlpd_response(struct atel_buf *b, bool traces, enum atel_otlpd_format fmt, uint64_t rejected,
			  const char *msg)
{
	bool partial = rejected > 0 || (msg && *msg);

	if (fmt == ATEL_OTLPD_JSON) {
		if (!partial) {
			atel__buf_puts(b, "{}");
			return;
		}
		atel__buf_puts(b, traces ? "{\"partialSuccess\":{\"rejectedSpans\":\""
					 : "{\"partialSuccess\":{\"rejectedDataPoints\":\"");
		atel__buf_u64(b, rejected);
		atel__buf_puts(b, "\",\"errorMessage\":");
		atel__json_str(b, msg ? msg : "");
		atel__buf_puts(b, "}}");
		return;
	}
	if (!partial)
		return;
	{
		struct atel_buf in = { 0 };
		size_t ml = msg ? strlen(msg) : 0;
		if (rejected) {
			atel__buf_putc(&in, 0x08); /* field 1, varint: rejected_{spans,data_points} */
			pbw_varint(&in, rejected);
		}
		if (ml) {
			atel__buf_putc(&in, 0x12); /* field 2, bytes: error_message */
			pbw_varint(&in, ml);
			atel__buf_put(&in, msg, ml);
		}
		atel__buf_putc(b, 0x0a); /* field 1: partial_success */
		pbw_varint(b, in.len);
		atel__buf_put(b, in.data ? in.data : "", in.len);
		if (in.oom)
			b->oom = true;
		atel__buf_free(&in);
	}
}

void atel__otlpd_status(struct atel_buf *b, enum atel_otlpd_format fmt, int grpc_code, const char *msg)
{
	size_t ml = msg ? strlen(msg) : 0;

	if (fmt == ATEL_OTLPD_JSON) {
		atel__buf_puts(b, "{\"code\":");
		atel__buf_u64(b, (uint64_t)grpc_code);
		atel__buf_puts(b, ",\"message\":");
		atel__json_str(b, msg ? msg : "");
		atel__buf_putc(b, '}');
		return;
	}
	if (grpc_code) {
		atel__buf_putc(b, 0x08);
		pbw_varint(b, (uint64_t)grpc_code);
	}
	if (ml) {
		atel__buf_putc(b, 0x12);
		pbw_varint(b, ml);
		atel__buf_put(b, msg, ml);
	}
}

int atel__otlpd_gunzip(struct atel_buf *out, const void *in, size_t len, size_t max, char *err, size_t errlen)
{
	z_stream z;
	int zr, rc = 0;

	atel__buf_reset(out);
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		snprintf(err, errlen, "gzip: cannot initialise zlib");
		return -ENOMEM;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	if (len == 0) {
		snprintf(err, errlen, "gzip: empty body");
		rc = -EBADMSG;
		goto out;
	}
	for (;;) {
		size_t room;
		if (!atel__buf_reserve(out, 65536)) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
		room = out->cap - out->len - 1;
		if (out->len + room > max)
			room = max - out->len + 1; /* one byte more than allowed: detects an over-size result */
		z.next_out = (Bytef *)out->data + out->len;
		z.avail_out = (uInt)room;
		zr = inflate(&z, Z_NO_FLUSH);
		out->len = (size_t)((char *)z.next_out - out->data);
		if (out->len > max) {
			snprintf(err, errlen, "gzip: the inflated body exceeds the %zu-byte limit", max);
			rc = -E2BIG;
			goto out;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0)
				break;
			/* another gzip member follows (RFC 1952 2.2) */
			if (inflateReset(&z) != Z_OK) {
				rc = -EBADMSG;
				snprintf(err, errlen, "gzip: cannot read the next member");
				goto out;
			}
			continue;
		}
		if (zr == Z_OK)
			continue;
		if (zr == Z_BUF_ERROR && z.avail_in == 0) {
			snprintf(err, errlen, "gzip: truncated stream (%zu bytes in)", len);
			rc = -EBADMSG;
			goto out;
		}
		if (zr == Z_BUF_ERROR)
			continue;
		snprintf(err, errlen, "gzip: corrupt stream (%s) at input byte %zu", z.msg ? z.msg : "zlib error",
			 len - z.avail_in);
		rc = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
		goto out;
	}
	out->data[out->len] = '\0';
out:
	inflateEnd(&z);
	return rc;
}
