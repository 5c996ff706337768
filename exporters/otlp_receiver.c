/* SPDX-License-Identifier: MIT */
/*
 * otlp_receiver.c - OTLP/HTTP in (see otlp_receiver.h for the contract).
 *
 * The receiver is a producer of ateld's own segment: it claims one ring
 * (owner: ateld's pid, the server thread's tid), keeps the ring's
 * dictionary (strings, series, bounds: ids valid in the current generation)
 * and writes the same records libatel writes (docs/abi.md 2.2), but with
 * the SDK's trace/span ids and timestamps. libatel's public API generates
 * ids and reads the clock itself, so it is not used here.
 *
 * A request is converted into a private array of slots first (definitions
 * included), then published with one head store when the ring has room for
 * all of it; if it has not within wait_ms, every change the conversion made
 * (definitions marked, cumulative metric state) is undone and the answer is
 * 503. A request larger than the ring goes in pieces ending at item
 * boundaries (rx->cuts: slot and undo-log positions after each item); if a
 * piece finds no room, what the items after the last written piece changed
 * is undone and they are rejected. Only this thread writes the ring (SPSC,
 * R1/A2 of docs/abi.md 3).
 *
 * Timestamps: the drain refuses records timed more than 60 s ahead or
 * before their producer started (docs/abi.md 6). The receiver's BEGIN
 * record carries start 0 (the records come from other processes of the
 * host, so the floor is the boot time), and the receiver itself rejects
 * spans, events and points timed before boot or more than 30 s ahead, so
 * the drain never refuses what was answered 200.
 *
 * Metrics: OTLP cumulative sums and histograms become deltas against the
 * last point of their stream (series x start time: each SDK process has its
 * own, so interleaved processes and restarts are told apart; a value that
 * went down starts the stream again). The streams survive ateld restarts
 * and kill -9 in o.state_path, written before a request's records are
 * published, with a marker resolved against the ring head at the next
 * start (see "Cumulative state file" below; README "OTLP receiver").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atel_abi.h"
#include "claim.h"
#include "http.h"
#include "otlp_decode.h"
#include "otlp_receiver.h"
#include "ring.h"
#include "util.h"

const int atel__otlp_recv_codes[ATEL_OTLP_RECV_NCODES] = { 200, 400, 404, 405, 413, 415, 429, 500, 503 };

#define FUTURE_NS (30ull * 1000000000ull)
#define SPAN_ATTRS_MAX 128u
#define SPAN_EVENTS_MAX 128u
#define SERIES_MAX 100000u
#define STREAMS_MAX 200000u                   /* cumulative streams (series x SDK start time) */
#define STREAM_IDLE_NS (3600ull * 1000000000ull) /* a stream this long without a point may be forgotten */
#define ID_ROTATE (ATEL_ID_MAX / 2)          /* a new generation (fresh dictionary) beyond this id */
#define DEF_BYTES_ROTATE (32ull << 20)        /* ... or this many bytes of definitions */

/* ---- a small string-keyed hash map ------------------------------------------------ */

struct hent {
	uint64_t h;
	void *v;
};

struct hmap {
	struct hent *e;
	size_t cap, n;
};

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h | 1; /* 0 marks an empty slot */
}

/* Every value starts with its key: struct { uint32_t klen; ...; char key[] } via the accessor. */
typedef const char *(*key_of_fn)(const void *v, uint32_t *len);

static void *hmap_get(const struct hmap *m, key_of_fn kf, const char *k, uint32_t klen, uint64_t h)
{
	if (!m->cap)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		uint32_t l;
		const char *ek;
		if (!m->e[i].h)
			return NULL;
		if (m->e[i].h != h)
			continue;
		ek = kf(m->e[i].v, &l);
		if (l == klen && !memcmp(ek, k, klen))
			return m->e[i].v;
	}
}

static int hmap_put(struct hmap *m, uint64_t h, void *v)
{
	if ((m->n + 1) * 10 >= m->cap * 7) {
		size_t nc = m->cap ? m->cap * 2 : 256;
		struct hent *ne = calloc(nc, sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->e[i].h)
				continue;
			for (size_t j = m->e[i].h & (nc - 1);; j = (j + 1) & (nc - 1))
				if (!ne[j].h) {
					ne[j] = m->e[i];
					break;
				}
		}
		free(m->e);
		m->e = ne;
		m->cap = nc;
	}
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (!m->e[i].h) {
			m->e[i].h = h;
			m->e[i].v = v;
			m->n++;
			return 0;
		}
}

static void hmap_free(struct hmap *m, bool values)
{
	for (size_t i = 0; values && i < m->cap; i++)
		if (m->e[i].h)
			free(m->e[i].v);
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- receiver state ------------------------------------------------------------- */

/* A string of the ring's dictionary: its id in generation `epoch`, defined if def_epoch == epoch. */
struct rstr {
	uint32_t id, id_epoch, def_epoch;
	uint32_t len;
	char s[];
};

/* A metric name: its type, label keys (sorted, '\0'-joined) and bounds, fixed by its first point. */
struct rname {
	uint8_t mtype;
	uint32_t nbounds;
	double bounds[ATEL_BOUNDS_MAX];
	uint32_t bounds_id, bounds_id_epoch, bounds_def_epoch;
	uint32_t keyset_len;
	char *keyset;
	uint32_t len;
	char s[];
};

/* Cumulative-to-delta state of one stream: a series as one SDK process reports it
 * (several processes may report the same series: each has its own start time). */
struct rcum {
	bool have;
	uint64_t start_ns, ts_ns;
	double last;                               /* sums */
	uint64_t count;                            /* histograms */
	double sum;
	uint64_t b[ATEL_BOUNDS_MAX + 1];
};

/* A series (name and sorted labels; the key is name \1 k \2 v \1 k \2 v ...). */
struct rseries {
	uint32_t id, id_epoch, def_epoch;
	struct rname *name;
	uint32_t len;
	char s[];
};

/* A cumulative stream (key: the series key, then '\0' and the 8 bytes of start_ns). */
struct rstream {
	struct rcum cum;                     /* first: an undo entry's dst is the stream */
	uint32_t idx;                        /* its position in the state file being written */
	uint32_t len;
	char s[];
};

static const char *rstr_key(const void *v, uint32_t *len)
{
	const struct rstr *x = v;
	*len = x->len;
	return x->s;
}

static const char *rname_key(const void *v, uint32_t *len)
{
	const struct rname *x = v;
	*len = x->len;
	return x->s;
}

static const char *rseries_key(const void *v, uint32_t *len)
{
	const struct rseries *x = v;
	*len = x->len;
	return x->s;
}

static const char *rstream_key(const void *v, uint32_t *len)
{
	const struct rstream *x = v;
	*len = x->len;
	return x->s;
}

struct undo {
	void *dst;
	void *copy;
	size_t len;
	bool cum;                            /* dst is a struct rcum (the first member of a struct rstream) */
};

/* An item boundary in a request's slots: what was converted up to there. */
struct cut {
	size_t slot, undo;
	uint64_t items, accepted, rejected;
};

struct atel_otlp_recv {
	struct atel_otlp_recv_opts o;
	struct atel_http_server *http;
	struct atel_otlp_recv_counts own;   /* when o.d is NULL */
	struct atel_otlp_recv_counts *cnt;
	uint64_t boot_ns;

	/* the ring (server thread only after start) */
	bool claimed, need_begin;
	struct atel_ring_writer w;
	uint32_t epoch;                      /* dictionary generation: bumped at every claim */
	uint32_t next_str, next_series, next_bounds;
	uint64_t def_bytes;
	struct hmap strs, names, series, streams;

	/* per request */
	union atel_slot *slots;
	size_t nslots, cslots;
	struct undo *undo;
	size_t nundo, cundo;
	struct cut *cuts;
	size_t ncuts, ccuts;
	uint64_t items, accepted;            /* spans or data points converted, and accepted */
	bool oom;
	struct atel_buf inflated;
	struct atel_buf tmp;
	uint64_t rejected;
	char first_why[256];
	uint64_t now;

	/* the cumulative state file (o.state_path): see "Cumulative state file" below */
	char *state_path;                    /* o.state_path's copy */
	struct atel_buf sbuf;
	bool marker_live;                    /* the file names a request whose publication may be partial */
	bool state_dirty;                    /* the file is older than memory in a way a marker cannot resolve */
};

static struct atel_otlp_recv_counts *C(struct atel_otlp_recv *rx)
{
	return rx->cnt;
}

static void bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- building a request's slots -------------------------------------------------- */

static union atel_slot *emit(struct atel_otlp_recv *rx, unsigned n)
{
	union atel_slot *p;

	if (rx->nslots + n > rx->cslots) {
		size_t nc = rx->cslots ? rx->cslots * 2 : 1024;
		union atel_slot *ns;
		while (nc < rx->nslots + n)
			nc *= 2;
		if (!(ns = realloc(rx->slots, nc * sizeof(*ns)))) {
			rx->oom = true;
			return NULL;
		}
		rx->slots = ns;
		rx->cslots = nc;
	}
	p = &rx->slots[rx->nslots];
	memset(p, 0, n * sizeof(*p));
	rx->nslots += n;
	return p;
}

static void hdr(union atel_slot *d, unsigned type, unsigned flags, unsigned cont, uint32_t id, uint64_t ts)
{
	d->h.type = (uint8_t)type;
	d->h.flags = (uint8_t)flags;
	d->h.cont = (uint8_t)cont;
	d->h.id = id;
	d->h.ts_ns = ts;
}

/* Remembers *dst (len bytes) so that a failed publication restores it. */
static void save(struct atel_otlp_recv *rx, void *dst, size_t len)
{
	void *copy;

	if (rx->nundo == rx->cundo) {
		size_t nc = rx->cundo ? rx->cundo * 2 : 64;
		struct undo *nu = realloc(rx->undo, nc * sizeof(*nu));
		if (!nu) {
			rx->oom = true;
			return;
		}
		rx->undo = nu;
		rx->cundo = nc;
	}
	if (!(copy = malloc(len))) {
		rx->oom = true;
		return;
	}
	memcpy(copy, dst, len);
	rx->undo[rx->nundo++] = (struct undo){ dst, copy, len, false };
}

/* save() of a stream's cumulative state (the state file's marker lists these). */
static void save_cum(struct atel_otlp_recv *rx, struct rcum *c)
{
	size_t n = rx->nundo;

	save(rx, c, sizeof(*c));
	if (rx->nundo > n)
		rx->undo[n].cum = true;
}

/* Restores what the request changed from undo entry `from` on (reverse order), forgets the rest. */
static void undo_from(struct atel_otlp_recv *rx, size_t from)
{
	while (rx->nundo) {
		struct undo *u = &rx->undo[--rx->nundo];
		if (rx->nundo >= from)
			memcpy(u->dst, u->copy, u->len);
		free(u->copy);
	}
}

static void undo_all(struct atel_otlp_recv *rx, bool restore)
{
	undo_from(rx, restore ? 0 : SIZE_MAX);
}

/* Notes an item boundary (after each span or data point). */
static void cut(struct atel_otlp_recv *rx)
{
	if (rx->ncuts == rx->ccuts) {
		size_t nc = rx->ccuts ? rx->ccuts * 2 : 256;
		struct cut *n = realloc(rx->cuts, nc * sizeof(*n));
		if (!n) {
			rx->oom = true;
			return;
		}
		rx->cuts = n;
		rx->ccuts = nc;
	}
	rx->cuts[rx->ncuts++] = (struct cut){ rx->nslots, rx->nundo, rx->items, rx->accepted, rx->rejected };
}

/* The id of string s in the current generation, emitting its STRDEF if needed. 0: cannot. */
static uint32_t str_id(struct atel_otlp_recv *rx, const char *s, uint32_t len)
{
	uint64_t h = fnv(s, len);
	struct rstr *e = hmap_get(&rx->strs, rstr_key, s, len, h);
	union atel_slot *d;
	unsigned cont;

	if (len == 0 || len > ATEL_STR_MAX || memchr(s, '\0', len))
		return 0;
	if (!e) {
		if (!(e = calloc(1, sizeof(*e) + len + 1)) || hmap_put(&rx->strs, h, e)) {
			free(e);
			rx->oom = true;
			return 0;
		}
		e->len = len;
		memcpy(e->s, s, len);
	}
	if (e->id_epoch != rx->epoch) {
		e->id = ++rx->next_str;
		e->id_epoch = rx->epoch;
		e->def_epoch = 0;
	}
	if (e->def_epoch == rx->epoch)
		return e->id;
	cont = atel__cont_for(len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
	if (!(d = emit(rx, 1 + cont)))
		return 0;
	hdr(d, ATEL_REC_STRDEF, 0, cont, e->id, rx->now);
	d->strdef.len = (uint16_t)len;
	memcpy(d->strdef.bytes, s, len); /* inline bytes, then the continuation slots: contiguous here */
	save(rx, &e->def_epoch, sizeof(e->def_epoch));
	e->def_epoch = rx->epoch;
	rx->def_bytes += len;
	return e->id;
}

/* ---- spans --------------------------------------------------------------------- */

static void reject(struct atel_otlp_recv *rx, uint64_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reject(struct atel_otlp_recv *rx, uint64_t n, const char *fmt, ...)
{
	va_list ap;

	if (!rx->rejected) {
		va_start(ap, fmt);
		vsnprintf(rx->first_why, sizeof(rx->first_why), fmt, ap);
		va_end(ap);
	}
	rx->rejected += n;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool ts_ok(const struct atel_otlp_recv *rx, uint64_t ts)
{
	return ts >= rx->boot_ns && ts <= rx->now + FUTURE_NS;
}

/* Longest prefix of s (at most max bytes) that does not cut a UTF-8 sequence. */
static uint32_t utf8_cut(const char *s, uint32_t len, uint32_t max)
{
	if (len <= max)
		return len;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	return max;
}

/* One attribute record (span attribute, or event attribute with flags EVENT_ATTR). false: not written (dropped). */
static bool emit_attr(struct atel_otlp_recv *rx, const struct atel_otlpd_span *s, const struct atel_otlpd_kv *kv,
		      bool event_attr, uint64_t ts)
{
	uint32_t key = str_id(rx, kv->key, kv->klen), vlen = 0;
	unsigned cont = 0;
	union atel_slot *d;

	if (!key)
		return false;
	if (kv->vtype == ATEL_VT_STR) {
		if (memchr(kv->s, '\0', kv->slen))
			return false;
		vlen = utf8_cut(kv->s, kv->slen, ATEL_STR_MAX);
		cont = atel__cont_for(vlen, ATEL_ATTR_STR_INLINE, ATEL_RECORD_SIZE);
	}
	if (!(d = emit(rx, 1 + cont)))
		return false;
	hdr(d, ATEL_REC_SPAN_ATTR, event_attr ? ATEL_RECF_EVENT_ATTR : 0, cont, key, ts);
	memcpy(d->span_attr.trace_id, s->trace_id, 16);
	memcpy(d->span_attr.span_id, s->span_id, 8);
	d->span_attr.vtype = kv->vtype;
	switch (kv->vtype) {
	case ATEL_VT_STR:
		d->span_attr.vlen = (uint16_t)vlen;
		memcpy(d->span_attr.v.s, kv->s, vlen);
		break;
	case ATEL_VT_INT: d->span_attr.v.i = kv->i; break;
	case ATEL_VT_DOUBLE: d->span_attr.v.d = kv->d; break;
	default: d->span_attr.v.b = kv->b ? 1 : 0; break;
	}
	return true;
}

/* Why span s cannot be stored, or NULL. */
static const char *span_invalid(const struct atel_otlp_recv *rx, const struct atel_otlpd_span *s)
{
	if (s->bad)
		return s->bad;
	if (!s->trace_id || s->trace_id_len != 16 || all_zero(s->trace_id, 16))
		return "trace id is not 16 bytes or is all zero";
	if (!s->span_id || s->span_id_len != 8 || all_zero(s->span_id, 8))
		return "span id is not 8 bytes or is all zero";
	if (s->parent_id_len && s->parent_id_len != 8)
		return "parent span id is not 8 bytes";
	if (!s->nlen)
		return "span name is empty";
	if (s->nlen > ATEL_STR_MAX)
		return "span name is longer than 4096 bytes";
	if (memchr(s->name, '\0', s->nlen))
		return "span name contains a NUL byte";
	if (s->kind > 5)
		return "span kind is not 0..5";
	if (s->status_code > 2)
		return "status code is not 0..2";
	if (!s->start_ns || !s->end_ns)
		return "start or end time is missing";
	if (s->end_ns < s->start_ns)
		return "end time is before start time";
	if (!ts_ok(rx, s->start_ns) || !ts_ok(rx, s->end_ns))
		return "start or end time is before the host booted or more than 30 s ahead";
	return NULL;
}

/* Converts one span; false if it was rejected (reject() called) or memory ran out. */
static bool convert_span(struct atel_otlp_recv *rx, const struct atel_otlpd_span *s,
			 const struct atel_otlpd_resource *res)
{
	const char *why = span_invalid(rx, s);
	uint32_t name, dropped_attrs = s->dropped_attrs, dropped_events = s->dropped_events, nattrs = 0;
	uint32_t msg_len, cont;
	union atel_slot *d;
	bool have_service = false;

	if (why) {
		reject(rx, 1, "%s", why);
		return false;
	}
	if (!(name = str_id(rx, s->name, s->nlen)))
		return false;
	if (!(d = emit(rx, 1)))
		return false;
	hdr(d, ATEL_REC_SPAN_START, 0, 0, name, s->start_ns);
	memcpy(d->span_start.trace_id, s->trace_id, 16);
	memcpy(d->span_start.span_id, s->span_id, 8);
	if (s->parent_id_len == 8)
		memcpy(d->span_start.parent_id, s->parent_id, 8);
	d->span_start.kind = (uint8_t)(s->kind ? s->kind : 1); /* UNSPECIFIED is stored as INTERNAL */
	d->span_start.trace_flags = (uint8_t)(s->flags & 0xff);
	for (uint32_t i = 0; i < s->nattrs; i++) {
		const struct atel_otlpd_kv *kv = &s->attrs[i];
		if (kv->klen == 12 && !memcmp(kv->key, "service.name", 12))
			have_service = true;
		if (nattrs < SPAN_ATTRS_MAX && emit_attr(rx, s, kv, false, s->start_ns))
			nattrs++;
		else
			dropped_attrs++;
	}
	/* the resource's service.name, so a span says which service sent it */
	if (res && res->service_name && !have_service && nattrs < SPAN_ATTRS_MAX) {
		struct atel_otlpd_kv kv = { .key = "service.name", .klen = 12, .vtype = ATEL_VT_STR,
					    .s = res->service_name, .slen = res->service_name_len };
		if (emit_attr(rx, s, &kv, false, s->start_ns))
			nattrs++;
	}
	for (uint32_t e = 0; e < s->nevents; e++) {
		const struct atel_otlpd_event *ev = &s->events[e];
		uint32_t en = 0, ename;
		size_t at;
		if (e >= SPAN_EVENTS_MAX || !ev->nlen || !ts_ok(rx, ev->ts_ns) ||
		    !(ename = str_id(rx, ev->name, ev->nlen))) {
			dropped_events++;
			continue;
		}
		if (!(d = emit(rx, 1)))
			return false;
		at = (size_t)(d - rx->slots);
		hdr(d, ATEL_REC_SPAN_EVENT, 0, 0, ename, ev->ts_ns);
		memcpy(d->span_event.trace_id, s->trace_id, 16);
		memcpy(d->span_event.span_id, s->span_id, 8);
		for (uint32_t k = 0; k < ev->nattrs && en < ATEL_EVENT_ATTRS_MAX; k++)
			if (emit_attr(rx, s, &ev->attrs[k], true, ev->ts_ns))
				en++;
		rx->slots[at].span_event.nattrs = (uint16_t)en; /* emit() may have moved the array */
	}
	if (rx->oom)
		return false;
	msg_len = s->status_msg && !memchr(s->status_msg, '\0', s->status_msg_len)
			  ? utf8_cut(s->status_msg, s->status_msg_len, ATEL_STR_MAX)
			  : 0;
	cont = atel__cont_for(msg_len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
	if (!(d = emit(rx, 1 + cont)))
		return false;
	if (dropped_attrs > ATEL_SPAN_DROPPED_MAX)
		dropped_attrs = ATEL_SPAN_DROPPED_MAX;
	if (dropped_events > ATEL_SPAN_DROPPED_MAX)
		dropped_events = ATEL_SPAN_DROPPED_MAX;
	hdr(d, ATEL_REC_SPAN_END, 0, cont, dropped_attrs | dropped_events << 16, s->end_ns);
	memcpy(d->span_end.trace_id, s->trace_id, 16);
	memcpy(d->span_end.span_id, s->span_id, 8);
	d->span_end.status = (uint8_t)s->status_code;
	d->span_end.msg_len = (uint16_t)msg_len;
	if (msg_len)
		memcpy(d->span_end.msg, s->status_msg, msg_len);
	return true;
}

/* ---- metrics ------------------------------------------------------------------- */

struct label {
	const char *k, *v;
	uint32_t klen, vlen;
};

/* Prometheus metric-name rules (as libatel's): other characters become '_'. */
static void sanitize(char *s, uint32_t n, bool metric)
{
	for (uint32_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (metric && c == ':') ||
			  (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			s[i] = '_';
	}
}

static int label_cmp(const void *a, const void *b)
{
	const struct label *x = a, *y = b;
	uint32_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->k, y->k, n);

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The text of an attribute value as a label value, in rx->tmp (appended; returns its offset). */
static void value_text(struct atel_buf *b, const struct atel_otlpd_kv *kv)
{
	switch (kv->vtype) {
	case ATEL_VT_STR: atel__buf_put(b, kv->s, kv->slen); break;
	case ATEL_VT_INT:
		if (kv->i < 0) {
			atel__buf_putc(b, '-');
			atel__buf_u64(b, (uint64_t)0 - (uint64_t)kv->i);
		} else {
			atel__buf_u64(b, (uint64_t)kv->i);
		}
		break;
	case ATEL_VT_DOUBLE: atel__buf_double(b, kv->d); break;
	default: atel__buf_puts(b, kv->b ? "true" : "false"); break;
	}
}

/* The series' BOUNDS and SERIESDEF (and their strings) in this generation. false: cannot. */
static bool def_series(struct atel_otlp_recv *rx, struct rseries *se, const struct label *lab, uint32_t n)
{
	struct rname *nm = se->name;
	uint32_t name_id, kid[ATEL_LABELS_MAX], vid[ATEL_LABELS_MAX], cont;
	union atel_slot *d;

	if (se->id_epoch != rx->epoch) {
		save(rx, se, offsetof(struct rseries, name));
		se->id = ++rx->next_series;
		se->id_epoch = rx->epoch;
		se->def_epoch = 0;
	}
	if (se->def_epoch == rx->epoch)
		return true;
	if (!(name_id = str_id(rx, nm->s, nm->len)))
		return false;
	for (uint32_t i = 0; i < n; i++)
		if (!(kid[i] = str_id(rx, lab[i].k, lab[i].klen)) || !(vid[i] = str_id(rx, lab[i].v, lab[i].vlen)))
			return false;
	if (nm->mtype == ATEL_MT_HISTOGRAM && nm->bounds_def_epoch != rx->epoch) {
		save(rx, &nm->bounds_id, 3 * sizeof(uint32_t));
		if (nm->bounds_id_epoch != rx->epoch) {
			nm->bounds_id = ++rx->next_bounds;
			nm->bounds_id_epoch = rx->epoch;
		}
		cont = atel__cont_for(nm->nbounds, ATEL_BOUNDS_INLINE, ATEL_BOUNDS_PER_CONT);
		if (!(d = emit(rx, 1 + cont)))
			return false;
		hdr(d, ATEL_REC_BOUNDS, 0, cont, nm->bounds_id, rx->now);
		d->bounds.count = nm->nbounds;
		memcpy(d->bounds.bounds, nm->bounds, 8u * nm->nbounds); /* contiguous into the continuation slots */
		nm->bounds_def_epoch = rx->epoch;
	}
	cont = atel__cont_for(n, ATEL_SERIES_INLINE_PAIRS, ATEL_PAIRS_PER_CONT);
	if (!(d = emit(rx, 1 + cont)))
		return false;
	hdr(d, ATEL_REC_SERIESDEF, 0, cont, se->id, rx->now);
	d->seriesdef.mtype = nm->mtype;
	d->seriesdef.nlabels = (uint8_t)n;
	d->seriesdef.name_id = name_id;
	d->seriesdef.bounds_id = nm->mtype == ATEL_MT_HISTOGRAM ? nm->bounds_id : 0;
	for (uint32_t i = 0; i < n; i++) {
		struct atel_label_pair p = { kid[i], vid[i] };
		memcpy((char *)d->seriesdef.pairs + 8u * i, &p, 8); /* contiguous into the continuation slots */
	}
	save(rx, &se->def_epoch, sizeof(se->def_epoch));
	se->def_epoch = rx->epoch;
	return true;
}

struct mctx {
	char name[256];
	uint32_t nlen;
	uint8_t mtype;
	bool delta;           /* temporality delta (sums, histograms) */
	bool monotonic;
	const struct atel_otlpd_resource *res;
};

/*
 * Finds or creates the metric name and series for point p. @return the
 * series, or NULL with *why set (rejected) or rx->oom.
 */
static struct rseries *series_for(struct atel_otlp_recv *rx, const struct mctx *m, const struct atel_otlpd_point *p,
				  struct label *lab, uint32_t *nlab, const char **why)
{
	struct rname *nm;
	struct rseries *se;
	uint32_t n = 0;
	uint64_t h;
	bool have_service = false;

	atel__buf_reset(&rx->tmp);
	/* label texts go into rx->tmp first (offsets), keys sanitized */
	struct { size_t k, v; uint32_t kl, vl; } off[ATEL_LABELS_MAX + 1];
	for (uint32_t i = 0; i <= p->nattrs; i++) {
		const struct atel_otlpd_kv *kv = i < p->nattrs ? &p->attrs[i] : NULL;
		struct atel_otlpd_kv svc;
		if (!kv) {
			if (have_service || !m->res || !m->res->service_name)
				break;
			svc = (struct atel_otlpd_kv){ .key = "service_name", .klen = 12, .vtype = ATEL_VT_STR,
						      .s = m->res->service_name, .slen = m->res->service_name_len };
			kv = &svc;
		}
		if (n == ATEL_LABELS_MAX) {
			*why = "more than 16 attributes";
			return NULL;
		}
		off[n].k = rx->tmp.len;
		if (kv->klen == 0 || kv->klen > 255) {
			*why = "an attribute key is empty or longer than 255 bytes";
			return NULL;
		}
		atel__buf_put(&rx->tmp, kv->key, kv->klen);
		off[n].kl = kv->klen;
		off[n].v = rx->tmp.len;
		value_text(&rx->tmp, kv);
		off[n].vl = (uint32_t)(rx->tmp.len - off[n].v);
		if (off[n].vl == 0 || off[n].vl > ATEL_STR_MAX) {
			*why = "an attribute value is empty or longer than 4096 bytes";
			return NULL;
		}
		if (rx->tmp.oom) {
			rx->oom = true;
			return NULL;
		}
		sanitize(rx->tmp.data + off[n].k, off[n].kl, false);
		{
			const char *k = rx->tmp.data + off[n].k;
			if (off[n].kl >= 2 && k[0] == '_' && k[1] == '_') {
				*why = "an attribute key starts with __ (reserved)";
				return NULL;
			}
			if (m->mtype == ATEL_MT_HISTOGRAM && off[n].kl == 2 && !memcmp(k, "le", 2)) {
				*why = "a histogram attribute is named le (reserved)";
				return NULL;
			}
			if (off[n].kl == 12 && !memcmp(k, "service_name", 12))
				have_service = true;
			if (memchr(rx->tmp.data + off[n].v, '\0', off[n].vl) ||
			    !atel__utf8_valid((const unsigned char *)rx->tmp.data + off[n].v, off[n].vl)) {
				*why = "an attribute value is not UTF-8 text without NUL bytes";
				return NULL;
			}
		}
		n++;
	}
	for (uint32_t i = 0; i < n; i++) {
		lab[i].k = rx->tmp.data + off[i].k;
		lab[i].klen = off[i].kl;
		lab[i].v = rx->tmp.data + off[i].v;
		lab[i].vlen = off[i].vl;
	}
	qsort(lab, n, sizeof(*lab), label_cmp);
	for (uint32_t i = 1; i < n; i++)
		if (!label_cmp(&lab[i - 1], &lab[i])) {
			*why = "two attributes map to the same label name";
			return NULL;
		}
	*nlab = n;

	/* the name: type, key set and bounds fixed by its first point */
	h = fnv(m->name, m->nlen);
	nm = hmap_get(&rx->names, rname_key, m->name, m->nlen, h);
	{
		struct atel_buf ks = { 0 };
		for (uint32_t i = 0; i < n; i++) {
			atel__buf_put(&ks, lab[i].k, lab[i].klen);
			atel__buf_putc(&ks, '\0');
		}
		if (ks.oom) {
			atel__buf_free(&ks);
			rx->oom = true;
			return NULL;
		}
		if (!nm) {
			if (!(nm = calloc(1, sizeof(*nm) + m->nlen + 1)) || !(nm->keyset = malloc(ks.len + 1)) ||
			    hmap_put(&rx->names, h, nm)) {
				if (nm)
					free(nm->keyset);
				free(nm);
				atel__buf_free(&ks);
				rx->oom = true;
				return NULL;
			}
			nm->mtype = m->mtype;
			nm->len = m->nlen;
			memcpy(nm->s, m->name, m->nlen);
			memcpy(nm->keyset, ks.data ? ks.data : "", ks.len);
			nm->keyset_len = (uint32_t)ks.len;
			if (m->mtype == ATEL_MT_HISTOGRAM) {
				nm->nbounds = p->nbounds;
				memcpy(nm->bounds, p->bounds, 8u * p->nbounds);
			}
		} else if (nm->mtype != m->mtype) {
			*why = "the metric's type differs from its first points' (counter, gauge, histogram)";
		} else if (nm->keyset_len != ks.len || (ks.len && memcmp(nm->keyset, ks.data, ks.len))) {
			*why = "the attribute keys differ from the metric's first series";
		} else if (m->mtype == ATEL_MT_HISTOGRAM &&
			   (nm->nbounds != p->nbounds || memcmp(nm->bounds, p->bounds, 8u * p->nbounds))) {
			*why = "the histogram's explicit bounds differ from its first points'";
		}
		atel__buf_free(&ks);
		if (*why)
			return NULL;
	}

	/* the series */
	{
		struct atel_buf key = { 0 };
		atel__buf_put(&key, m->name, m->nlen);
		for (uint32_t i = 0; i < n; i++) {
			atel__buf_putc(&key, '\1');
			atel__buf_put(&key, lab[i].k, lab[i].klen);
			atel__buf_putc(&key, '\2');
			atel__buf_put(&key, lab[i].v, lab[i].vlen);
		}
		if (key.oom) {
			atel__buf_free(&key);
			rx->oom = true;
			return NULL;
		}
		h = fnv(key.data, key.len);
		se = hmap_get(&rx->series, rseries_key, key.data, (uint32_t)key.len, h);
		if (!se) {
			if (rx->series.n >= SERIES_MAX) {
				atel__buf_free(&key);
				*why = "the receiver holds 100000 series already";
				return NULL;
			}
			if (!(se = calloc(1, sizeof(*se) + key.len + 1)) || hmap_put(&rx->series, h, se)) {
				free(se);
				atel__buf_free(&key);
				rx->oom = true;
				return NULL;
			}
			se->len = (uint32_t)key.len;
			memcpy(se->s, key.data, key.len);
			se->name = nm;
		}
		atel__buf_free(&key);
	}
	return se;
}

static bool emit_sample(struct atel_otlp_recv *rx, struct rseries *se, const struct label *lab, uint32_t n,
			double v, bool set, uint64_t ts)
{
	union atel_slot *d;

	if (!def_series(rx, se, lab, n) || !(d = emit(rx, 1)))
		return false;
	hdr(d, ATEL_REC_SAMPLE, set ? ATEL_RECF_SET : 0, 0, se->id, ts);
	d->sample.value = v;
	return true;
}

/*
 * The cumulative stream of series se started at start_ns (created if new).
 * @return it, or NULL with *why set (too many streams) or rx->oom.
 */
static struct rcum *stream_for(struct atel_otlp_recv *rx, const struct rseries *se, uint64_t start_ns,
			       const char **why)
{
	size_t klen = (size_t)se->len + 1 + 8;
	char *key = malloc(klen);
	struct rstream *st;
	uint64_t h;

	if (!key) {
		rx->oom = true;
		return NULL;
	}
	memcpy(key, se->s, se->len);
	key[se->len] = '\0';
	memcpy(key + se->len + 1, &start_ns, 8);
	h = fnv(key, klen);
	st = hmap_get(&rx->streams, rstream_key, key, (uint32_t)klen, h);
	if (!st) {
		if (rx->streams.n >= STREAMS_MAX) {
			free(key);
			*why = "the receiver holds 200000 cumulative streams already";
			return NULL;
		}
		if (!(st = calloc(1, sizeof(*st) + klen)) || hmap_put(&rx->streams, h, st)) {
			free(st);
			free(key);
			rx->oom = true;
			return NULL;
		}
		st->len = (uint32_t)klen;
		memcpy(st->s, key, klen);
	}
	free(key);
	return &st->cum;
}

/* Forgets cumulative streams idle for an hour when the table is nearly full
 * (processes that ended). Only between requests: no undo entry points at them. */
static void streams_sweep(struct atel_otlp_recv *rx)
{
	struct hmap keep = { 0 };

	if (rx->streams.n < STREAMS_MAX / 10 * 9)
		return;
	for (size_t i = 0; i < rx->streams.cap; i++) {
		struct rstream *st = rx->streams.e[i].v;
		if (!rx->streams.e[i].h)
			continue;
		if (st->cum.ts_ns + STREAM_IDLE_NS < rx->now || hmap_put(&keep, rx->streams.e[i].h, st))
			free(st);
	}
	hmap_free(&rx->streams, false);
	rx->streams = keep;
}

/* Converts one data point: true if accepted (written or nothing to write), false if rejected (counted). */
static bool convert_point(struct atel_otlp_recv *rx, const struct mctx *m, const struct atel_otlpd_point *p)
{
	struct label lab[ATEL_LABELS_MAX];
	uint32_t n = 0;
	const char *why = NULL;
	struct rseries *se;
	uint64_t ts = p->ts_ns;

	if (p->flags & 1)
		return true; /* no recorded value: nothing to store */
	if (!ts_ok(rx, ts)) {
		reject(rx, 1, "%.64s: data point time is missing, before the host booted or more than 30 s ahead",
		       m->name);
		return false;
	}
	if (m->mtype == ATEL_MT_HISTOGRAM) {
		uint64_t total = 0;
		if (p->nbounds == 0 || p->nbounds > ATEL_BOUNDS_MAX)
			why = "a histogram needs 1..64 explicit bounds";
		else if (p->nbuckets != p->nbounds + 1)
			why = "bucket_counts is not one longer than explicit_bounds";
		else if (!p->has_sum)
			why = "a histogram point without sum";
		for (uint32_t i = 0; !why && i < p->nbounds; i++)
			if (!isfinite(p->bounds[i]) || (i && !(p->bounds[i] > p->bounds[i - 1])))
				why = "explicit bounds are not finite and strictly increasing";
		for (uint32_t i = 0; !why && i < p->nbuckets; i++) {
			if (p->buckets[i] > UINT64_MAX - total)
				why = "bucket counts overflow";
			else
				total += p->buckets[i];
		}
		if (!why && total != p->count)
			why = "bucket counts do not add up to count";
	} else if (!p->has_value) {
		why = "a number point without value";
	}
	if (!why && !(se = series_for(rx, m, p, lab, &n, &why)) && !why)
		return false; /* out of memory */
	if (why) {
		reject(rx, 1, "%.64s: %s", m->name, why);
		return false;
	}
	if (m->mtype != ATEL_MT_HISTOGRAM) {
		double v = p->is_int ? (double)p->i : p->d;
		if (m->mtype == ATEL_MT_GAUGE) {
			/* gauges, and non-monotonic cumulative sums: the value; non-monotonic deltas add */
			return emit_sample(rx, se, lab, n, v, !m->delta, ts);
		}
		/* counter */
		if (!isfinite(v) || v < 0) {
			reject(rx, 1, "%.64s: a monotonic sum point is negative or not finite", m->name);
			return false;
		}
		if (!m->delta) {
			struct rcum *c = stream_for(rx, se, p->start_ns, &why);
			double add;
			if (!c) {
				if (why)
					reject(rx, 1, "%.64s: %s", m->name, why);
				return false;
			}
			if (c->have && c->start_ns == p->start_ns && ts < c->ts_ns)
				return true; /* older than what was already taken: nothing new */
			add = c->have && c->start_ns == p->start_ns && v >= c->last ? v - c->last : v;
			save_cum(rx, c);
			c->have = true;
			c->start_ns = p->start_ns;
			c->ts_ns = ts;
			c->last = v;
			v = add;
		}
		return emit_sample(rx, se, lab, n, v, false, ts);
	}
	/* histogram */
	{
		uint64_t b[ATEL_BOUNDS_MAX + 1], count = p->count;
		double sum = p->sum;
		uint64_t first = p->start_ns && p->start_ns <= ts && ts_ok(rx, p->start_ns) ? p->start_ns : ts;
		unsigned nb = p->nbuckets, cont;
		union atel_slot *d;

		memcpy(b, p->buckets, 8u * nb);
		if (!m->delta) {
			struct rcum *c = stream_for(rx, se, p->start_ns, &why);
			bool cont_stream;
			if (!c) {
				if (why)
					reject(rx, 1, "%.64s: %s", m->name, why);
				return false;
			}
			cont_stream = c->have && c->start_ns == p->start_ns && count >= c->count;
			for (unsigned i = 0; cont_stream && i < nb; i++)
				cont_stream = b[i] >= c->b[i];
			if (c->have && c->start_ns == p->start_ns && ts < c->ts_ns)
				return true;
			save_cum(rx, c);
			if (cont_stream) {
				for (unsigned i = 0; i < nb; i++)
					b[i] -= c->b[i];
				count -= c->count;
				sum -= c->sum;
				first = c->ts_ns <= ts ? c->ts_ns : ts;
			}
			c->have = true;
			c->start_ns = p->start_ns;
			c->ts_ns = ts;
			c->count = p->count;
			c->sum = p->sum;
			memcpy(c->b, p->buckets, 8u * nb);
		}
		if (count == 0)
			return def_series(rx, se, lab, n); /* the series exists; no observation to add */
		if (!def_series(rx, se, lab, n))
			return false;
		cont = atel__cont_for(nb, ATEL_HISTFOLD_INLINE, ATEL_HISTFOLD_PER_CONT);
		if (!(d = emit(rx, 1 + cont)))
			return false;
		hdr(d, ATEL_REC_HISTFOLD, 0, cont, se->id, ts);
		d->histfold.count = count;
		d->histfold.sum = sum;
		d->histfold.first_ns = first;
		d->histfold.nbuckets = (uint16_t)nb;
		memcpy(d->histfold.buckets, b, 8u * nb); /* contiguous into the continuation slots */
		return true;
	}
}

static void convert_metric(struct atel_otlp_recv *rx, const struct atel_otlpd_req *req,
			   const struct atel_otlpd_metric *mt)
{
	struct mctx m = { 0 };
	uint32_t nlen = mt->nlen;

	if (mt->kind == ATEL_OTLPD_NONE)
		return;
	if (mt->kind == ATEL_OTLPD_EXP_HISTOGRAM || mt->kind == ATEL_OTLPD_SUMMARY) {
		if (mt->npoints)
			reject(rx, mt->npoints, "%.64s: %s are not stored (use explicit-bucket histograms)", mt->name,
			       mt->kind == ATEL_OTLPD_SUMMARY ? "summaries" : "exponential histograms");
		rx->items += mt->npoints;
		cut(rx);
		return;
	}
	if (!nlen || nlen >= sizeof(m.name) || memchr(mt->name, '\0', nlen)) {
		if (mt->npoints)
			reject(rx, mt->npoints, "a metric name is empty, longer than 255 bytes or holds a NUL byte");
		rx->items += mt->npoints;
		cut(rx);
		return;
	}
	if (mt->kind != ATEL_OTLPD_GAUGE && mt->temporality != 1 && mt->temporality != 2) {
		if (mt->npoints)
			reject(rx, mt->npoints, "%.64s: aggregation temporality is not delta (1) or cumulative (2)",
			       mt->name);
		rx->items += mt->npoints;
		cut(rx);
		return;
	}
	memcpy(m.name, mt->name, nlen);
	sanitize(m.name, nlen, true);
	m.nlen = nlen;
	m.delta = mt->temporality == 1;
	m.monotonic = mt->monotonic;
	m.mtype = mt->kind == ATEL_OTLPD_HISTOGRAM ? ATEL_MT_HISTOGRAM
		  : mt->kind == ATEL_OTLPD_SUM && mt->monotonic ? ATEL_MT_COUNTER
								: ATEL_MT_GAUGE;
	if (mt->kind == ATEL_OTLPD_GAUGE) {
		m.delta = false;
		m.monotonic = true; /* a gauge's value is set */
	}
	m.res = mt->resource < req->nresources ? &req->resources[mt->resource] : NULL;
	for (uint32_t i = 0; i < mt->npoints && !rx->oom; i++) {
		if (convert_point(rx, &m, &mt->points[i]))
			rx->accepted++;
		rx->items++;
		cut(rx);
	}
}

/* ---- the ring ------------------------------------------------------------------ */

static int state_save(struct atel_otlp_recv *rx, bool marker);

static void release_ring(struct atel_otlp_recv *rx)
{
	if (!rx->claimed)
		return;
	/* the state file's marker names this ring: resolve it (memory is exact now) before it goes */
	if ((rx->marker_live || rx->state_dirty) && rx->o.state_path)
		rx->state_dirty = state_save(rx, false) != 0;
	if (!rx->need_begin && atel__ring_free(&rx->w) >= 1) {
		union atel_slot *d = atel__ring_slot(&rx->w, 0);
		memset(d, 0, sizeof(*d));
		hdr(d, ATEL_REC_END, 0, 0, rx->w.generation, atel__now_ns());
		atel__ring_commit(&rx->w, 1);
	}
	atel__ring_unclaim(rx->o.seg, rx->w.ring);
	rx->claimed = false;
}

/* Claims a ring (a fresh generation: the dictionary starts empty). @return 0 or -errno. */
static int claim_ring(struct atel_otlp_recv *rx)
{
	struct atel_owner who = { .pid = (int32_t)getpid(), .tid = (int32_t)gettid(),
				  .start = atel__proc_start_time((int)getpid()) };
	int ring = atel__ring_claim(rx->o.seg, &who, (uint32_t)who.tid * 2654435761u);

	if (ring < 0)
		return ring;
	atel__ring_writer_init(&rx->w, rx->o.seg, (uint32_t)ring);
	rx->claimed = true;
	rx->need_begin = true;
	rx->epoch++;
	rx->next_str = rx->next_series = rx->next_bounds = 0;
	rx->def_bytes = 0;
	return 0;
}

/* Waits up to wait_ms for n free slots. */
static bool wait_room(struct atel_otlp_recv *rx, size_t n)
{
	uint64_t deadline = atel__mono_ns() + (uint64_t)rx->o.wait_ms * 1000000u;

	while (atel__ring_free(&rx->w) < n) {
		struct timespec ts = { 0, 1000000 };
		if (atel__mono_ns() >= deadline || (rx->o.d && atomic_load(&rx->o.d->stopping)))
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

/*
 * Writes rx->slots into the ring: whole with one head store when they fit
 * in a ring; else in pieces that end at item boundaries (rx->cuts, so every
 * piece carries the definitions its records use), each waiting up to
 * wait_ms for room. @return 0 (all written); -EAGAIN (nothing written: no
 * room); -E2BIG (nothing written: the first item alone needs more than a
 * ring); 1 with *k the last cut written (the items after it were not).
 */
static int publish(struct atel_otlp_recv *rx, size_t *k)
{
	size_t n = rx->nslots, done = 0, c = 0;
	bool any = false;

	while (done < n) {
		size_t best = SIZE_MAX, end;
		for (; c < rx->ncuts && rx->cuts[c].slot - done <= rx->w.capacity; c++)
			best = c;
		if (best == SIZE_MAX || rx->cuts[best].slot == done)
			return any ? 1 : -E2BIG;
		end = rx->cuts[best].slot;
		if (!wait_room(rx, end - done))
			return any ? 1 : -EAGAIN;
		for (size_t i = 0; i < end - done; i++)
			*atel__ring_slot(&rx->w, i) = rx->slots[done + i];
		atel__ring_commit(&rx->w, end - done); /* R1 */
		done = end;
		*k = best;
		any = true;
	}
	return 0;
}

/* ---- the cumulative state file ---------------------------------------------------- */

/*
 * Cumulative state file (o.state_path, <data_dir>/state/otlp-receiver.streams):
 * every stream's last cumulative point, so that a restarted ateld turns the
 * SDK's next cumulative point into the increment since the last one it took,
 * not the whole value again. Binary, host-local (native byte order), read
 * back by the same build:
 *
 *   "ATELOTS1" u32 nstreams u32 npending u64 instance u32 ring u32 generation u64 head0
 *   nstreams x { u32 klen, key[klen] (series key, '\0', 8 bytes start_ns), cum }
 *   npending x { u32 stream index, u64 end (ring positions after head0), cum (the value before) }
 *   u64 FNV-1a of everything before
 *   cum: u8 have, u64 start_ns, u64 ts_ns, f64 last, u64 count, f64 sum, u8 nb, nb x u64 bucket
 *
 * Order (exact through kill -9): a request's new stream values are written
 * (write + rename) BEFORE its records are published, together with a marker
 * of the request: the segment instance, the ring and its generation, the
 * ring head before the request, and for every stream the request changed
 * its value before and the ring position at the end of its item. The ring
 * head is cumulative over a ring's life and only the receiver moves it, so
 * at the next start the marker is resolved against the segment that
 * survived in /dev/shm: an item whose end is at or below the head was
 * published (the drain logs it; the SDK's retry of the same cumulative
 * value then adds 0), one above it was not (its stream goes back to the
 * value before, and the retry adds the increment). A crash after saving
 * and before publishing, mid-way through a request written in pieces, or
 * after publishing and before answering is therefore exact. When the
 * marker cannot be resolved (the segment was recreated, or the ring was
 * claimed again by someone else before the receiver started), the new
 * values are kept: a request that was not published then loses its
 * increment once (the retry adds 0) rather than doubling one that was;
 * a warning says so. When a publication fails or stops part-way (503,
 * partial success) the memory is rolled back and the file written again
 * without a marker before the ring moves on. No fsync: a process crash
 * keeps what write + rename did (the page cache); after a power loss the
 * file may be older than the log (the streams it lists then count the
 * increments since that older point again) or torn (the checksum catches
 * it: a warning, and every stream starts empty: its first point counts
 * whole); the ring in /dev/shm is lost then too.
 */
#define STATE_MAGIC "ATELOTS1"
#define STATE_KEY_MAX (1u << 20)

static void put_cum(struct atel_buf *b, const struct rcum *c)
{
	uint8_t have = c->have, nb = ATEL_BOUNDS_MAX + 1;

	while (nb && !c->b[nb - 1])
		nb--;
	atel__buf_put(b, &have, 1);
	atel__buf_put(b, &c->start_ns, 8);
	atel__buf_put(b, &c->ts_ns, 8);
	atel__buf_put(b, &c->last, 8);
	atel__buf_put(b, &c->count, 8);
	atel__buf_put(b, &c->sum, 8);
	atel__buf_put(b, &nb, 1);
	atel__buf_put(b, c->b, 8u * nb);
}

/*
 * Writes the state file: every stream, and with marker the request being
 * published (its cumulative undo entries, the ring position at the end of
 * each one's item). @return 0 or -errno.
 */
static int state_save(struct atel_otlp_recv *rx, bool marker)
{
	struct atel_buf *b = &rx->sbuf;
	uint32_t nst = 0, npend = 0, ring = 0, gen = 0;
	uint64_t inst = 0, head0 = 0, h;
	int rc;

	if (!rx->o.state_path)
		return 0;
	for (size_t i = 0; marker && i < rx->nundo; i++)
		npend += rx->undo[i].cum;
	if (npend && rx->claimed) {
		inst = rx->o.seg->hdr->instance_id;
		ring = rx->w.ring;
		gen = rx->w.generation;
		head0 = rx->w.head;
	} else {
		npend = 0;
	}
	atel__buf_reset(b);
	atel__buf_put(b, STATE_MAGIC, 8);
	atel__buf_put(b, &nst, 4); /* patched below */
	atel__buf_put(b, &npend, 4);
	atel__buf_put(b, &inst, 8);
	atel__buf_put(b, &ring, 4);
	atel__buf_put(b, &gen, 4);
	atel__buf_put(b, &head0, 8);
	for (size_t i = 0; i < rx->streams.cap; i++) {
		struct rstream *st = rx->streams.e[i].v;
		if (!rx->streams.e[i].h)
			continue;
		st->idx = nst++;
		atel__buf_put(b, &st->len, 4);
		atel__buf_put(b, st->s, st->len);
		put_cum(b, &st->cum);
	}
	for (size_t i = 0, c = 0; npend && i < rx->nundo; i++) {
		const struct undo *u = &rx->undo[i];
		uint64_t end;
		if (!u->cum)
			continue;
		while (c < rx->ncuts && rx->cuts[c].undo <= i)
			c++; /* the first cut after entry i closes its item */
		end = c < rx->ncuts ? rx->cuts[c].slot : rx->nslots;
		atel__buf_put(b, &((const struct rstream *)u->dst)->idx, 4);
		atel__buf_put(b, &end, 8);
		put_cum(b, u->copy);
	}
	if (b->oom)
		return -ENOMEM;
	memcpy(b->data + 8, &nst, 4);
	h = fnv(b->data, b->len);
	atel__buf_put(b, &h, 8);
	if (b->oom)
		return -ENOMEM;
	rc = atel__write_file_replace(rx->o.state_path, b->data, b->len, atel__file_mode());
	if (!rc)
		rx->marker_live = npend > 0;
	if (b->cap > (8u << 20))
		atel__buf_free(b);
	return rc;
}

struct rd {
	const unsigned char *p;
	size_t left;
};

static bool rd_get(struct rd *r, void *dst, size_t n)
{
	if (r->left < n)
		return false;
	memcpy(dst, r->p, n);
	r->p += n;
	r->left -= n;
	return true;
}

static const char *get_cum(struct rd *r, struct rcum *c)
{
	uint8_t have, nb;

	memset(c, 0, sizeof(*c));
	if (!rd_get(r, &have, 1) || !rd_get(r, &c->start_ns, 8) || !rd_get(r, &c->ts_ns, 8) ||
	    !rd_get(r, &c->last, 8) || !rd_get(r, &c->count, 8) || !rd_get(r, &c->sum, 8) || !rd_get(r, &nb, 1))
		return "truncated";
	if (have > 1)
		return "a stream's flag is not 0 or 1";
	if (nb > ATEL_BOUNDS_MAX + 1)
		return "a stream has more than 65 buckets";
	if (!rd_get(r, c->b, 8u * nb))
		return "truncated";
	if (!isfinite(c->last) || c->last < 0 || !isfinite(c->sum))
		return "a stream's value or sum is not finite (or the value is negative)";
	c->have = have;
	return NULL;
}

/*
 * Loads a state file's bytes into rx->streams (empty before), resolving its
 * marker against rx->o.seg. @return 0; or -EINVAL with why (streams left
 * empty); or -ENOMEM. *note gets a warning that is not an error ("" if none).
 */
static int state_parse(struct atel_otlp_recv *rx, const void *data, size_t len, char *why, size_t whylen,
		       char *note, size_t notelen)
{
	struct rd r = { data, len };
	struct rstream **all = NULL;
	uint32_t nst, npend, ring, gen;
	uint64_t inst, head0, h;
	const char *bad = NULL;
	char magic[8];
	int rc = -EINVAL;

	*note = '\0';
	if (len < 8 + 8 || !rd_get(&r, magic, 8) || memcmp(magic, STATE_MAGIC, 8)) {
		snprintf(why, whylen, "not a receiver state file (magic \"%s\" missing)", STATE_MAGIC);
		return -EINVAL;
	}
	memcpy(&h, (const unsigned char *)data + len - 8, 8);
	if (h != fnv(data, len - 8)) {
		snprintf(why, whylen, "checksum mismatch (torn or corrupted)");
		return -EINVAL;
	}
	r.left -= 8; /* the checksum */
	if (!rd_get(&r, &nst, 4) || !rd_get(&r, &npend, 4) || !rd_get(&r, &inst, 8) || !rd_get(&r, &ring, 4) ||
	    !rd_get(&r, &gen, 4) || !rd_get(&r, &head0, 8)) {
		snprintf(why, whylen, "truncated header");
		return -EINVAL;
	}
	/* a stream takes at least 4 + 10 + 42 bytes, a pending entry 12 + 42 */
	if (nst > STREAMS_MAX || (uint64_t)nst * 56 + (uint64_t)npend * 54 > r.left) {
		snprintf(why, whylen, "%u streams and %u pending entries: more than the receiver holds or the file has",
			 nst, npend);
		return -EINVAL;
	}
	if (nst && !(all = calloc(nst, sizeof(*all))))
		return -ENOMEM;
	for (uint32_t i = 0; i < nst && !bad; i++) {
		uint32_t klen;
		struct rstream *st;
		if (!rd_get(&r, &klen, 4)) {
			bad = "truncated";
			break;
		}
		if (klen < 10 || klen > STATE_KEY_MAX || klen > r.left) {
			bad = klen < 10 || klen > STATE_KEY_MAX ? "a stream key has an impossible length" : "truncated";
			break;
		}
		if (((const char *)r.p)[klen - 9] != '\0' || memchr(r.p, '\0', klen - 9)) {
			bad = "a stream key is not a series key, NUL and a start time";
			break;
		}
		h = fnv(r.p, klen);
		if (hmap_get(&rx->streams, rstream_key, (const char *)r.p, klen, h)) {
			bad = "a stream appears twice";
			break;
		}
		if (!(st = calloc(1, sizeof(*st) + klen)) || hmap_put(&rx->streams, h, st)) {
			free(st);
			rc = -ENOMEM;
			goto fail;
		}
		all[i] = st;
		st->len = klen;
		rd_get(&r, st->s, klen);
		bad = get_cum(&r, &st->cum);
	}
	if (!bad && npend) {
		/* the marker: was the request published up to each item's end? */
		const struct atel_segment *seg = rx->o.seg;
		bool known = seg && seg->hdr->instance_id == inst && ring < seg->ring_count &&
			     atel__seg_desc(seg, ring)->generation == gen;
		uint64_t head = known ? atomic_load_explicit(&atel__seg_desc(seg, ring)->head, memory_order_acquire)
				      : UINT64_MAX;
		struct { uint32_t idx; uint64_t end; struct rcum old; } *pend = calloc(npend, sizeof(*pend));
		uint32_t undone = 0;
		if (!pend) {
			rc = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < npend && !bad; i++) {
			if (!rd_get(&r, &pend[i].idx, 4) || !rd_get(&r, &pend[i].end, 8))
				bad = "truncated";
			else if (pend[i].idx >= nst)
				bad = "a pending entry names no stream";
			else
				bad = get_cum(&r, &pend[i].old);
		}
		for (uint32_t i = npend; i-- > 0 && !bad;)
			if (head < head0 || head - head0 < pend[i].end) {
				all[pend[i].idx]->cum = pend[i].old; /* not published: as before the request */
				undone++;
			}
		free(pend);
		if (!bad && !known)
			snprintf(note, notelen,
				 "the last request's ring (segment %016llx ring %u generation %u) is gone or claimed "
				 "again: its %u cumulative points are taken as published (if they were not, the "
				 "SDK's retry adds nothing for them)",
				 (unsigned long long)inst, ring, gen, npend);
		else if (!bad && undone)
			snprintf(note, notelen,
				 "%u cumulative points of the last request were not published before ateld stopped: "
				 "their streams are as before it, the SDK's retry adds them", undone);
	}
	if (!bad && r.left)
		bad = "bytes after the last entry";
	if (!bad) {
		free(all);
		return 0;
	}
	snprintf(why, whylen, "%s", bad);
fail:
	free(all);
	hmap_free(&rx->streams, true);
	return rc;
}

int atel__otlp_recv_load_state(struct atel_otlp_recv *rx, const void *data, size_t len, char *why, size_t whylen)
{
	char note[320];
	int rc;

	hmap_free(&rx->streams, true);
	rc = state_parse(rx, data, len, why, whylen, note, sizeof(note));
	if (!rc && *note && rx->o.d)
		atel__log(rx->o.d, ATEL_LOG_WARN, "otlp receiver: %s: %s", rx->o.state_path ? rx->o.state_path : "state",
			  note);
	return rc;
}

/* Reads o.state_path at start: absent is fine; unreadable or corrupt: a warning, streams start empty. */
static void state_load(struct atel_otlp_recv *rx)
{
	const char *path = rx->o.state_path;
	char why[PATH_MAX + 64] = "";
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (!path)
		return;
	{
		/* the state directory (<data_dir>/state) may not exist yet */
		char dir[PATH_MAX];
		const char *slash = strrchr(path, '/');
		if (slash && (size_t)(slash - path) < sizeof(dir)) {
			memcpy(dir, path, (size_t)(slash - path));
			dir[slash - path] = '\0';
			if (*dir)
				(void)atel__mkdir_p(dir, atel__dir_mode());
		}
	}
	rc = atel__read_file(path, (size_t)STREAMS_MAX * 700u, &data, &len, why, sizeof(why));
	if (rc == -ENOENT)
		return;
	if (rc) {
		/* why: "<path>: cannot open: <reason>" and the like */
		if (rx->o.d)
			atel__log(rx->o.d, ATEL_LOG_WARN,
				  "otlp receiver: cumulative state file %s; starting without it (the first cumulative "
				  "point of each stream counts whole)",
				  why);
		return;
	}
	if ((rc = atel__otlp_recv_load_state(rx, data, len, why, sizeof(why))) == -ENOMEM)
		snprintf(why, sizeof(why), "out of memory");
	free(data);
	if (rc && rx->o.d)
		atel__log(rx->o.d, ATEL_LOG_WARN,
			  "otlp receiver: cumulative state file %s: %s; starting without it (the first cumulative "
			  "point of each stream counts whole)",
			  path, why);
	/* the marker is resolved now: write the file without it before the ring it names can be
	 * claimed again (a second crash would find a foreign generation and keep unpublished values) */
	if (!rc && state_save(rx, false))
		rx->state_dirty = true; /* again before the first request publishes anything */
}

/* ---- HTTP ---------------------------------------------------------------------- */

static bool media_is(const char *v, size_t n, const char *type)
{
	size_t e = 0, tl = strlen(type);

	while (e < n && v[e] != ';')
		e++;
	while (e > 0 && (v[e - 1] == ' ' || v[e - 1] == '\t'))
		e--;
	return e == tl && !strncasecmp(v, type, tl);
}

static void count_req(struct atel_otlp_recv *rx, int sig, int code)
{
	for (int i = 0; i < ATEL_OTLP_RECV_NCODES; i++)
		if (atel__otlp_recv_codes[i] == code) {
			bump(&C(rx)->requests[sig][i], 1);
			return;
		}
}

/* An error answer: google.rpc.Status in the request's format (text if unknown). */
static void answer_error(struct atel_otlp_recv *rx, struct atel_http_reply *rep, int sig, int fmt, int code,
			 const char *msg)
{
	/* google.rpc.Code: 3 INVALID_ARGUMENT, 5 NOT_FOUND, 8 RESOURCE_EXHAUSTED, 13 INTERNAL, 14 UNAVAILABLE */
	int grpc = code == 400 || code == 415 ? 3 : code == 404 || code == 405 ? 5 : code == 413 ? 8
		   : code == 503 ? 14 : 13;

	rep->status = code;
	if (fmt < 0) {
		rep->ctype = "text/plain; charset=utf-8";
		atel__buf_puts(&rep->body, msg);
		atel__buf_putc(&rep->body, '\n');
	} else {
		rep->ctype = fmt == ATEL_OTLPD_JSON ? "application/json" : "application/x-protobuf";
		atel__otlpd_status(&rep->body, (enum atel_otlpd_format)fmt, grpc, msg);
	}
	if (code == 503)
		rep->headers = "Retry-After: 1\r\n";
	count_req(rx, sig, code);
	if (rx->o.d && code != 503)
		atel__log(rx->o.d, ATEL_LOG_DEBUG, "otlp receiver: %d: %s", code, msg);
}

static void on_post(void *arg, const struct atel_http_request *r, const char *body, size_t len,
		    struct atel_http_reply *rep)
{
	struct atel_otlp_recv *rx = arg;
	struct atel_otlpd_req req;
	size_t plen = r->target_len;
	const char *q = memchr(r->target, '?', r->target_len);
	bool traces;
	int sig, fmt, rc;
	char err[320] = "", ring_why[256];
	uint64_t accepted = 0;
	size_t kcut = 0, written;

	if (q)
		plen = (size_t)(q - r->target);
	if (plen == 10 && !memcmp(r->target, "/v1/traces", 10))
		sig = 0;
	else if (plen == 11 && !memcmp(r->target, "/v1/metrics", 11))
		sig = 1;
	else {
		answer_error(rx, rep, 2, -1, 404, "not found: the OTLP receiver takes POST /v1/traces and /v1/metrics");
		return;
	}
	traces = sig == 0;
	if (r->content_type && media_is(r->content_type, r->content_type_len, "application/x-protobuf"))
		fmt = ATEL_OTLPD_PROTOBUF;
	else if (r->content_type && media_is(r->content_type, r->content_type_len, "application/protobuf"))
		fmt = ATEL_OTLPD_PROTOBUF;
	else if (r->content_type && media_is(r->content_type, r->content_type_len, "application/json"))
		fmt = ATEL_OTLPD_JSON;
	else {
		answer_error(rx, rep, sig, -1, 415,
			     "unsupported Content-Type: use application/x-protobuf or application/json");
		return;
	}
	if (r->content_enc && !media_is(r->content_enc, r->content_enc_len, "identity")) {
		if (!media_is(r->content_enc, r->content_enc_len, "gzip") &&
		    !media_is(r->content_enc, r->content_enc_len, "x-gzip")) {
			answer_error(rx, rep, sig, fmt, 415, "unsupported Content-Encoding: use gzip or none");
			return;
		}
		rc = atel__otlpd_gunzip(&rx->inflated, body, len, rx->o.max_body, err, sizeof(err));
		if (rc) {
			answer_error(rx, rep, sig, fmt, rc == -E2BIG ? 413 : rc == -ENOMEM ? 503 : 400, err);
			return;
		}
		body = rx->inflated.data;
		len = rx->inflated.len;
	}
	if (rx->o.d && atomic_load(&rx->o.d->stopping)) {
		answer_error(rx, rep, sig, fmt, 503, "ateld is stopping");
		return;
	}
	if (rx->o.d && atomic_load_explicit(&rx->o.d->stats.segment_truncated, memory_order_relaxed)) {
		/* the drain no longer reads the segment (README "Security"): nothing written now would be logged */
		answer_error(rx, rep, sig, fmt, 503, "the shared-memory segment was truncated; restart ateld");
		return;
	}
	rc = atel__otlpd_decode(&req, traces, (enum atel_otlpd_format)fmt, body ? body : "", len, err, sizeof(err));
	if (rc) {
		atel__otlpd_free(&req);
		answer_error(rx, rep, sig, fmt, rc == -ENOMEM ? 503 : 400, err);
		return;
	}

	/* a fresh generation when the dictionary grew large (ids are bounded per generation) */
	if (rx->claimed && (rx->next_str > ID_ROTATE || rx->next_series > ID_ROTATE || rx->next_bounds > ID_ROTATE ||
			    rx->def_bytes > DEF_BYTES_ROTATE))
		release_ring(rx);
	if (!rx->claimed && (rc = claim_ring(rx))) {
		atel__otlpd_free(&req);
		answer_error(rx, rep, sig, fmt, 503,
			     rc == -EAGAIN ? "no free ring in the shared-memory segment" : "the segment is not ready");
		return;
	}

	rx->nslots = 0;
	rx->ncuts = 0;
	rx->items = rx->accepted = 0;
	rx->rejected = 0;
	rx->first_why[0] = '\0';
	rx->oom = false;
	rx->now = atel__now_ns();
	streams_sweep(rx);
	if (rx->need_begin) {
		union atel_slot *d = emit(rx, 1);
		if (d) {
			hdr(d, ATEL_REC_BEGIN, 0, 0, rx->w.generation, rx->now);
			d->begin.pid = (int32_t)getpid();
			d->begin.tid = (int32_t)gettid();
			d->begin.start = 0; /* records from other processes: their floor is the boot (see top) */
			d->begin.ring = rx->w.ring;
			memcpy(d->begin.comm, "ateld-otlp", 10);
		}
	}
	if (traces) {
		for (uint32_t i = 0; i < req.nspans && !rx->oom; i++) {
			const struct atel_otlpd_span *s = &req.spans[i];
			if (convert_span(rx, s, s->resource < req.nresources ? &req.resources[s->resource] : NULL))
				rx->accepted++;
			rx->items++;
			cut(rx);
		}
	} else {
		for (uint32_t i = 0; i < req.nmetrics && !rx->oom; i++)
			convert_metric(rx, &req, &req.metrics[i]);
	}
	if (!rx->ncuts || rx->cuts[rx->ncuts - 1].slot != rx->nslots)
		cut(rx); /* BEGIN alone */
	if (rx->oom) {
		undo_all(rx, true);
		atel__otlpd_free(&req);
		answer_error(rx, rep, sig, fmt, 503, "out of memory");
		return;
	}
	/* the cumulative state file before the records (see "Cumulative state file") */
	if (rx->o.state_path) {
		bool cum = false;
		for (size_t i = 0; i < rx->nundo && !cum; i++)
			cum = rx->undo[i].cum;
		if ((cum || rx->state_dirty) && (rc = state_save(rx, cum))) {
			undo_all(rx, true);
			atel__otlpd_free(&req);
			snprintf(ring_why, sizeof(ring_why), "cannot write the cumulative state file %.150s: %s",
				 rx->o.state_path, strerror(-rc));
			if (rx->o.d)
				atel__log(rx->o.d, ATEL_LOG_WARN, "otlp receiver: %s", ring_why);
			answer_error(rx, rep, sig, fmt, 503, ring_why);
			return;
		}
		rx->state_dirty = false;
	}
	rc = rx->nslots ? publish(rx, &kcut) : 0;
	if (rc != 0 && rx->marker_live)
		rx->state_dirty = true; /* part of what the file holds is not in the ring: rewrite after the rollback */
	if (rc < 0) {
		undo_all(rx, true);
		if (rx->state_dirty)
			rx->state_dirty = state_save(rx, false) != 0;
		atel__otlpd_free(&req);
		if (rc == -E2BIG)
			answer_error(rx, rep, sig, fmt, 413,
				     "one item needs more records than a ring of the segment holds");
		else
			answer_error(rx, rep, sig, fmt, 503, "the ring is full: retry later");
		return;
	}
	written = rx->nslots;
	accepted = rx->accepted;
	if (rc == 1) {
		/* written up to an item boundary: the items after it are not kept, and say so */
		const struct cut *ct = &rx->cuts[kcut];
		undo_from(rx, ct->undo);
		if (rx->state_dirty)
			rx->state_dirty = state_save(rx, false) != 0;
		written = ct->slot;
		accepted = ct->accepted;
		snprintf(ring_why, sizeof(ring_why), "the ring had no room for the last %llu within %u ms%s%.150s",
			 (unsigned long long)(rx->items - ct->items), rx->o.wait_ms, ct->rejected ? "; first: " : "",
			 ct->rejected ? rx->first_why : "");
		memcpy(rx->first_why, ring_why, sizeof(rx->first_why));
		rx->first_why[sizeof(rx->first_why) - 1] = '\0';
		rx->rejected = ct->rejected + (rx->items - ct->items);
		if (rx->o.d)
			atel__log(rx->o.d, ATEL_LOG_WARN, "otlp receiver: %s", ring_why);
	} else {
		undo_all(rx, false);
	}
	if (written && rx->need_begin)
		rx->need_begin = false;
	bump(&C(rx)->records_written, written);
	if (traces) {
		bump(&C(rx)->spans_accepted, accepted);
		bump(&C(rx)->spans_rejected, rx->rejected);
	} else {
		bump(&C(rx)->points_accepted, accepted);
		bump(&C(rx)->points_rejected, rx->rejected);
	}
	rep->status = 200;
	rep->ctype = fmt == ATEL_OTLPD_JSON ? "application/json" : "application/x-protobuf";
	if (rx->rejected) {
		char msg[400];
		snprintf(msg, sizeof(msg), "%llu %s rejected; %s%s", (unsigned long long)rx->rejected,
			 traces ? "spans" : "data points", rc == 1 ? "" : "first: ", rx->first_why);
		atel__otlpd_response(&rep->body, traces, (enum atel_otlpd_format)fmt, rx->rejected, msg);
		if (rx->o.d)
			atel__log(rx->o.d, ATEL_LOG_DEBUG, "otlp receiver: %s", msg);
	} else {
		atel__otlpd_response(&rep->body, traces, (enum atel_otlpd_format)fmt, 0, NULL);
	}
	count_req(rx, sig, 200);
	atel__otlpd_free(&req);
	if (rx->inflated.cap > (8u << 20))
		atel__buf_free(&rx->inflated);
	if (rx->cslots > 65536) {
		free(rx->slots);
		rx->slots = NULL;
		rx->cslots = 0;
	}
}

static int no_metrics(void *arg, struct atel_buf *body)
{
	(void)arg;
	(void)body;
	return -ENOENT;
}

static uint64_t boot_ns(void)
{
	FILE *f = fopen("/proc/stat", "r");
	char line[256];
	unsigned long long bt = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &bt) == 1)
			break;
	fclose(f);
	return (uint64_t)bt * 1000000000ull;
}

int atel__otlp_recv_open(struct atel_otlp_recv **out, const struct atel_otlp_recv_opts *o)
{
	struct atel_otlp_recv *rx;

	*out = NULL;
	if (!o || !o->seg)
		return -EINVAL;
	if (!(rx = calloc(1, sizeof(*rx))))
		return -ENOMEM;
	rx->o = *o;
	if (!rx->o.max_body)
		rx->o.max_body = 4u << 20;
	if (!rx->o.wait_ms)
		rx->o.wait_ms = 1000;
	rx->cnt = o->d ? &o->d->stats.otlp_recv : &rx->own;
	if (o->state_path && !(rx->o.state_path = rx->state_path = strdup(o->state_path))) {
		free(rx);
		return -ENOMEM;
	}
	state_load(rx);
	rx->boot_ns = boot_ns();
	if (rx->boot_ns < 978307200ull * 1000000000ull)
		rx->boot_ns = 978307200ull * 1000000000ull; /* 2001: the drain's floor too */
	*out = rx;
	return 0;
}

int atel__otlp_recv_post(struct atel_otlp_recv *rx, const char *target, const char *ctype, const char *cenc,
			 const void *body, size_t len, struct atel_buf *answer)
{
	struct atel_http_request r = { .method = "POST" };
	struct atel_http_reply rep = { .status = 200 };

	r.target = target;
	r.target_len = strlen(target);
	r.content_type = ctype;
	r.content_type_len = ctype ? strlen(ctype) : 0;
	r.content_enc = cenc;
	r.content_enc_len = cenc ? strlen(cenc) : 0;
	r.content_length = len;
	atel__buf_free(answer);
	on_post(rx, &r, body, len, &rep);
	*answer = rep.body;
	return rep.status;
}

int atel__otlp_recv_start(struct atel_otlp_recv **out, const struct atel_otlp_recv_opts *o, char *err,
			  size_t errlen)
{
	struct atel_otlp_recv *rx;
	struct atel_http_opts ho = { 0 };
	int rc;

	if ((rc = atel__otlp_recv_open(&rx, o)))
		return rc;
	ho.bind = o->bind;
	ho.port = o->port;
	ho.metrics = no_metrics; /* never called: post is set, and /metrics is not served here */
	ho.limits.max_body = rx->o.max_body;
	ho.limits.chunked_ok = true;
	ho.post = on_post;
	ho.post_arg = rx;
	ho.metrics_path = "/.otlp-receiver-has-no-metrics";
	rc = atel__http_start(&rx->http, &ho, err, errlen);
	if (rc) {
		atel__otlp_recv_stop(rx);
		return rc;
	}
	atomic_store_explicit(&rx->cnt->enabled, 1, memory_order_relaxed);
	*out = rx;
	return 0;
}

uint16_t atel__otlp_recv_port(const struct atel_otlp_recv *r)
{
	return r ? atel__http_port(r->http) : 0;
}

void atel__otlp_recv_stop(struct atel_otlp_recv *rx)
{
	if (!rx)
		return;
	atel__http_stop(rx->http);
	release_ring(rx);
	if (rx->o.state_path && state_save(rx, false) && rx->o.d)
		atel__log(rx->o.d, ATEL_LOG_WARN, "otlp receiver: cannot write the cumulative state file %s",
			  rx->o.state_path);
	atomic_store_explicit(&rx->cnt->enabled, 0, memory_order_relaxed);
	hmap_free(&rx->strs, true);
	for (size_t i = 0; i < rx->names.cap; i++)
		if (rx->names.e[i].h)
			free(((struct rname *)rx->names.e[i].v)->keyset);
	hmap_free(&rx->names, true);
	hmap_free(&rx->series, true);
	hmap_free(&rx->streams, true);
	free(rx->slots);
	free(rx->undo);
	free(rx->cuts);
	atel__buf_free(&rx->inflated);
	atel__buf_free(&rx->tmp);
	atel__buf_free(&rx->sbuf);
	free(rx->state_path);
	free(rx);
}
