/* SPDX-License-Identifier: MIT */
/*
 * Spans: values on the caller's stack; every call writes one record (or an
 * event with its attributes, all-or-nothing) into the thread's ring. Ids come
 * from a per-thread xorshift128+ generator seeded from getrandom() once per
 * thread and process (reseeded after fork, so a child never repeats its
 * parent's ids).
 *
 * Spans are kept or dropped whole (docs/abi.md 2.4): a refused START marks
 * the span dropped (state ATEL_SPAN_ST_DROPPED; its other calls write
 * nothing); a written START holds one slot back for its END (t->span_res,
 * w.limit), tagged in atel_span.reserved with the claim's tag; attributes,
 * events and errors that meet a full ring are counted per span and reported
 * in the END. With a block timeout, span records wait for room first.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

/* atel.h promises agents a 48-byte span value (they keep it on their stacks). */
_Static_assert(sizeof(atel_span) == 48, "atel_span is 48 bytes");

/* ------------------------------------------------------------------------ */
/* ids                                                                      */

void atel__rng_seed(struct atel__tls *t)
{
	uint64_t s[2] = { 0, 0 };

	if (getrandom(s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		/* no entropy yet (very early boot): mix what differs between threads and runs */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)t;
		s[1] ^= atel__now_ns() ^ ((uint64_t)atel__g.owner.pid << 32);
	}
	if (!s[0] && !s[1])
		s[1] = 0x9e3779b97f4a7c15ull;
	t->rng[0] = s[0];
	t->rng[1] = s[1];
	t->rng_epoch = atomic_load_explicit(&atel__g.epoch, memory_order_relaxed);
}

static inline uint64_t rng_next(struct atel__tls *t)
{
	uint64_t s1 = t->rng[0];
	const uint64_t s0 = t->rng[1];

	t->rng[0] = s0;
	s1 ^= s1 << 23;
	t->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return t->rng[1] + s0;
}

static inline void rng_check(struct atel__tls *t)
{
	if (ATEL__UNLIKELY(t->rng_epoch != atomic_load_explicit(&atel__g.epoch, memory_order_relaxed) ||
			   (!t->rng[0] && !t->rng[1])))
		atel__rng_seed(t);
}

/* A non-zero span id, as the word holding its 8 bytes. */
static uint64_t new_span_id(struct atel__tls *t)
{
	uint64_t v;

	do
		v = rng_next(t);
	while (!v);
	return v;
}

/* A non-zero trace id, as the two words holding its 16 bytes. */
static void new_trace_id(struct atel__tls *t, uint64_t out[2])
{
	do {
		out[0] = rng_next(t);
		out[1] = rng_next(t);
	} while (!out[0] && !out[1]);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* ------------------------------------------------------------------------ */
/* record writing                                                           */

/*
 * Makes the ring ready, defines the ndefs strings, reserves nslots (below
 * w.limit: the slots held back for ENDs stay free), waiting for room if the
 * process asked for it. @return true if reserved. false: the record is not
 * written; a missing ring was counted for nrec records, a full ring is
 * counted (RING_FULL) only if count_full.
 */
static bool span_reserve(struct atel__tls *t, const struct atel__str *const *defs, unsigned ndefs,
			 uint64_t nslots, uint64_t nrec, uint64_t now, bool count_full)
{
	uint64_t deadline = 0;

	for (;;) {
		int r = ATEL__LIKELY(atel__ready(t)) ? ATEL__PREP_OK : atel__prepare(t, nrec, now);
		unsigned i;

		if (r == ATEL__PREP_DROP)
			return false;
		if (r == ATEL__PREP_OK) {
			for (i = 0; i < ndefs; i++)
				if (ATEL__UNLIKELY(!atel__bit(t->def_str, defs[i]->id)) && !atel__def_str(t, defs[i], now))
					break;
			if (i == ndefs && ATEL__LIKELY(atel__ring_reserve(&t->w, nslots)))
				return true;
		}
		if (!atel__wait_step(t, &deadline))
			break;
	}
	atel__check_replaced();
	if (count_full)
		atel__drop(t, ATEL_LOSS_RING_FULL, nrec);
	return false;
}

/* The dropped-record counts of span s on this thread (create: add if missing). NULL without a fold table. */
static struct atel__span_drops *span_drops(struct atel__tls *t, const atel_span *s, bool create)
{
	struct atel__fold *f = t->fold;
	struct atel__span_drops *d;
	uint64_t id;

	if (!f)
		return NULL;
	memcpy(&id, s->ctx.span_id, 8);
	for (unsigned i = 0; i < ATEL__SPAN_DROPS; i++)
		if (f->sdrop[i].span == id)
			return &f->sdrop[i];
	if (!create)
		return NULL;
	/* the oldest entry gives way (its span's END then under-reports) */
	d = &f->sdrop[f->sdrop_next++ % ATEL__SPAN_DROPS];
	d->span = id;
	d->attrs = d->events = 0;
	return d;
}

/* An attribute (event=false) or event/error of a recorded span was refused. */
static void note_part_drop(struct atel__tls *t, const atel_span *s, bool event)
{
	struct atel__span_drops *d = span_drops(t, s, true);

	if (!d)
		return;
	if (event)
		d->events++;
	else
		d->attrs++;
}

/* Length of s capped at max, backed off to a UTF-8 character boundary. */
static size_t cap_len(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

static void put_ids(union atel_slot *d, const atel_span *s)
{
	memcpy(d->raw + 16, s->ctx.trace_id, 16);
	memcpy(d->raw + 32, s->ctx.span_id, 8);
}

/* Lookup (lock-free) or intern a name; NULL for NULL/empty/too long (counted). */
static const struct atel__str *name_of(struct atel__tls *t, const char *name, const char *what)
{
	const struct atel__str *e;
	size_t n;

	if (!name || !*name) {
		atel__invalid(t, what);
		return NULL;
	}
	n = cap_len(name, ATEL_STR_MAX);
	e = atel__str_find(name, n);
	if (!e)
		e = atel__intern(name, n);
	if (!e)
		atel__invalid(t, "out of memory or string ids");
	return e;
}

/* A span being started: the words its START record and its atel_span are written from. */
struct span_words {
	uint64_t trace[2]; /* trace id, bytes 0-7 and 8-15 */
	uint64_t span;     /* span id */
	uint64_t parent;   /* parent span id (0: root) */
	uint8_t kind, flags;
};

/*
 * Writes SPAN_START and holds one slot back for the span's END.
 * @return the claim tag to keep in the span (non-zero), or 0 if the span is
 * dropped (counted: its START as a record, the span in spans_dropped).
 */
static uint16_t write_start(struct atel__tls *t, const struct span_words *w, const struct atel__str *name)
{
	uint64_t now;
	union atel_slot *d;
	uint16_t tag = 0;

	if (!atel__enter(t))
		goto dropped;
	now = atel__now_ns();
	/* the reserve is capped at a quarter of the ring: spans that never end must not eat it all */
	if (t->w.desc && t->span_res >= t->w.capacity / 4) {
		atel__drop(t, ATEL_LOSS_RING_FULL, 1);
	} else if (span_reserve(t, &name, 1, 2, 1, now, true)) {
		d = atel__ring_slot(&t->w, 0);
		d->words[0] = atel__hdr_word(ATEL_REC_SPAN_START, 0, 0, name->id);
		d->words[1] = now;
		/* bytes 16-31 trace id, 32-39 span id, 40-47 parent (the words hold the id bytes in memory order) */
		d->words[2] = w->trace[0];
		d->words[3] = w->trace[1];
		d->words[4] = w->span;
		d->words[5] = w->parent;
		d->words[6] = (uint64_t)w->kind | ((uint64_t)w->flags << 8);
		d->words[7] = 0;
		atel__publish(t, 1, 0, 1);
		t->span_res++;
		t->w.limit--;
		tag = t->span_tag;
	}
	atel__leave(t);
	if (tag)
		return tag;
dropped:
	atel__bump(&t->st.spans_dropped, 1);
	if (t->w.desc && t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed))
		atel__dir_bump(&t->w.desc->spans_dropped, 1);
	return 0;
}

/* The 8 bytes of an atel_span_context after the ids, and of an atel_span after parent_id. */
struct ctx_tail {
	uint8_t trace_flags, version;
	uint16_t reserved;
	uint32_t tracestate;
};
struct span_tail {
	uint32_t name_id;
	uint8_t kind, state;
	uint16_t reserved;
};
_Static_assert(offsetof(atel_span, ctx.trace_flags) == 24 && offsetof(atel_span, ctx.version) == 25 &&
		       offsetof(atel_span, ctx.reserved) == 26 && offsetof(atel_span, ctx.tracestate) == 28 &&
		       offsetof(atel_span, parent_id) == 32 && offsetof(atel_span, name_id) == 40 &&
		       offsetof(atel_span, kind) == 44 && offsetof(atel_span, state) == 45 &&
		       offsetof(atel_span, reserved) == 46 && sizeof(atel_span) == 48,
	       "struct ctx_tail / span_tail mirror atel_span's layout");

typedef uint64_t span_v2 __attribute__((vector_size(16)));

/* One 16-byte store of two words (one vector store where the target has them). */
static inline void put16(void *p, uint64_t lo, uint64_t hi)
{
	span_v2 v = { lo, hi };

	memcpy(p, &v, 16);
}

static inline uint64_t word_of(const void *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return w;
}

/*
 * Fills *out, the caller's atel_span, in three 16-byte stores at the end.
 * Built field by field in memory, the span was copied out by the public
 * functions with 16-byte loads right after the narrow stores of its small
 * fields: a store-forwarding stall that took a third of a span start.
 */
static inline __attribute__((always_inline)) void span_new(atel_span *out, struct atel__tls *t, const char *name,
							     atel_span_kind kind, const atel_span_context *parent)
{
	const struct atel__str *nm;
	struct span_words w;
	struct ctx_tail ct = { 0 };
	struct span_tail st = { 0 };
	uint16_t tag;

	atel__once();
	/*
	 * Agents start the same few span names over and over: the last one this
	 * thread used is checked first, by content (strncmp over its length and
	 * NUL: equal exactly when the strings are), which costs less than
	 * hashing and probing the table. A name longer than ATEL_STR_MAX never
	 * matches here (its entry holds the capped prefix) and takes the lookup.
	 */
	nm = t->span_name;
	if (!ATEL__LIKELY(nm && name && strncmp(name, nm->s, (size_t)nm->len + 1) == 0)) {
		nm = name_of(t, name, "span name is NULL or empty");
		if (!nm) {
			memset(out, 0, sizeof(*out));
			return;
		}
		t->span_name = nm;
	}
	if (kind < ATEL_SPAN_INTERNAL || kind > ATEL_SPAN_CONSUMER) {
		atel__invalid(t, "unknown span kind: recorded as INTERNAL");
		kind = ATEL_SPAN_INTERNAL;
	}
	rng_check(t);
	if (parent) {
		w.trace[0] = word_of(parent->trace_id);
		w.trace[1] = word_of(parent->trace_id + 8);
		w.parent = word_of(parent->span_id);
		/* W3C: propagate the defined flags (sampled, random); unknown flags are zeroed */
		ct.trace_flags = parent->trace_flags & (ATEL_TRACE_FLAG_SAMPLED | ATEL_TRACE_FLAG_RANDOM);
		ct.tracestate = parent->tracestate;
	} else {
		new_trace_id(t, w.trace);
		w.parent = 0;
		ct.trace_flags = ATEL_TRACE_FLAG_SAMPLED | ATEL_TRACE_FLAG_RANDOM;
	}
	w.span = new_span_id(t);
	w.kind = (uint8_t)kind;
	w.flags = ct.trace_flags;
	tag = write_start(t, &w, nm);
	st.name_id = nm->id;
	st.kind = (uint8_t)kind;
	st.state = tag ? ATEL_SPAN_ST_LIVE : ATEL_SPAN_ST_DROPPED;
	st.reserved = tag;
	put16(out, w.trace[0], w.trace[1]);
	put16((char *)out + 16, w.span, word_of(&ct));
	put16((char *)out + 32, w.parent, word_of(&st));
}

atel_span atel_trace_start(const char *name, atel_span_kind kind)
{
	atel_span s;

	span_new(&s, atel__self(), name, kind, NULL);
	return s;
}

atel_span atel_span_start(const atel_span *parent, const char *name, atel_span_kind kind)
{
	atel_span s;

	span_new(&s, atel__self(), name, kind, !parent || parent->state == 0 ? NULL : &parent->ctx);
	return s;
}

atel_span atel_trace_continue(const atel_span_context *ctx, const char *name, atel_span_kind kind)
{
	atel_span s;

	if (!ctx || all_zero(ctx->trace_id, 16) || all_zero(ctx->span_id, 8))
		ctx = NULL;
	span_new(&s, atel__self(), name, kind, ctx);
	return s;
}

static bool live(struct atel__tls *t, const atel_span *s)
{
	if (!s || s->state == ATEL_SPAN_ST_NONE || s->state == ATEL_SPAN_ST_DROPPED)
		return false; /* no span, or dropped whole: nothing of it is written */
	if (s->state != ATEL_SPAN_ST_LIVE) {
		atel__invalid(t, "span already ended");
		return false;
	}
	return true;
}

/* Slots an attribute takes. */
static unsigned attr_slots(const atel_attr *a, size_t *vlen)
{
	*vlen = 0;
	if (a->type != ATEL_ATTR_STR)
		return 1;
	*vlen = a->v.s ? cap_len(a->v.s, ATEL_STR_MAX) : 0;
	return 1 + atel__cont_for((unsigned)*vlen, ATEL_ATTR_STR_INLINE, ATEL_RECORD_SIZE);
}

/* Writes one SPAN_ATTR at reservation offset off. @return slots used. */
static unsigned put_attr(struct atel__tls *t, uint64_t off, const atel_span *s, uint32_t key_id, const atel_attr *a,
			 unsigned flags, uint64_t now)
{
	union atel_slot *d = atel__ring_slot(&t->w, off);
	size_t vlen;
	unsigned n = attr_slots(a, &vlen), cont = n - 1;
	const char *p;

	d->words[0] = atel__hdr_word(ATEL_REC_SPAN_ATTR, flags, cont, key_id);
	d->words[1] = now;
	put_ids(d, s);
	d->words[5] = (uint64_t)a->type | ((uint64_t)vlen << 16);
	d->words[6] = d->words[7] = 0;
	switch (a->type) {
	case ATEL_ATTR_INT:
		memcpy(d->raw + 48, &a->v.i, 8);
		break;
	case ATEL_ATTR_DOUBLE:
		memcpy(d->raw + 48, &a->v.d, 8);
		break;
	case ATEL_ATTR_BOOL:
		d->raw[48] = a->v.b ? 1 : 0;
		break;
	default:
		p = a->v.s ? a->v.s : "";
		memcpy(d->raw + 48, p, vlen < ATEL_ATTR_STR_INLINE ? vlen : ATEL_ATTR_STR_INLINE);
		for (unsigned c = 0; c < cont; c++) {
			union atel_slot *x = atel__ring_slot(&t->w, off + 1 + c);
			size_t from = ATEL_ATTR_STR_INLINE + (size_t)c * ATEL_RECORD_SIZE;
			size_t k = vlen - from < ATEL_RECORD_SIZE ? vlen - from : ATEL_RECORD_SIZE;
			memcpy(x->raw, p + from, k);
			memset(x->raw + k, 0, ATEL_RECORD_SIZE - k);
		}
		break;
	}
	return n;
}

static bool attr_ok(struct atel__tls *t, const atel_attr *a)
{
	if (!a->key || !*a->key) {
		atel__invalid(t, "attribute key is NULL or empty");
		return false;
	}
	if (a->type < ATEL_ATTR_STR || a->type > ATEL_ATTR_BOOL) {
		atel__invalid(t, "unknown attribute type");
		return false;
	}
	return true;
}

static void set_attr(const atel_span *s, const atel_attr *a)
{
	struct atel__tls *t = atel__self();
	const struct atel__str *key;
	uint64_t now;
	size_t vlen;

	if (!live(t, s) || !attr_ok(t, a))
		return;
	if (!(key = name_of(t, a->key, "attribute key is NULL or empty")))
		return;
	if (!atel__enter(t))
		return;
	now = atel__now_ns();
	if (span_reserve(t, &key, 1, attr_slots(a, &vlen), 1, now, true)) {
		unsigned n = put_attr(t, 0, s, key->id, a, 0, now);
		atel__publish(t, n, 0, 1);
	} else {
		note_part_drop(t, s, false);
	}
	atel__leave(t);
}

void atel_span_set_str(const atel_span *s, const char *key, const char *value)
{
	set_attr(s, &ATEL_ATTR_S(key, value));
}

void atel_span_set_int(const atel_span *s, const char *key, int64_t value)
{
	set_attr(s, &ATEL_ATTR_I(key, value));
}

void atel_span_set_double(const atel_span *s, const char *key, double value)
{
	set_attr(s, &ATEL_ATTR_D(key, value));
}

void atel_span_set_bool(const atel_span *s, const char *key, bool value)
{
	set_attr(s, &ATEL_ATTR_B(key, value));
}

void atel_span_set_attrs(const atel_span *s, const atel_attr *attrs, size_t n)
{
	for (size_t i = 0; attrs && i < n; i++)
		set_attr(s, &attrs[i]);
}

void atel_span_add_event_attrs(const atel_span *s, const char *name, const atel_attr *attrs, size_t n)
{
	struct atel__tls *t = atel__self();
	const struct atel__str *defs[1 + ATEL_EVENT_ATTRS_MAX];
	uint64_t now, slots = 1, off;
	union atel_slot *d;
	size_t vlen;

	if (!live(t, s))
		return;
	if (n > ATEL_EVENT_ATTRS_MAX || (n && !attrs)) {
		atel__invalidf(t, "span event: %zu attributes, at most %u", n, ATEL_EVENT_ATTRS_MAX);
		return;
	}
	if (!(defs[0] = name_of(t, name, "event name is NULL or empty")))
		return;
	for (size_t i = 0; i < n; i++) {
		if (!attr_ok(t, &attrs[i]) || !(defs[1 + i] = name_of(t, attrs[i].key, "attribute key is NULL or empty")))
			return;
		slots += attr_slots(&attrs[i], &vlen);
	}
	if (!atel__enter(t))
		return;
	now = atel__now_ns();
	if (!span_reserve(t, defs, (unsigned)(1 + n), slots, 1 + n, now, true)) {
		note_part_drop(t, s, true);
	} else {
		d = atel__ring_slot(&t->w, 0);
		d->words[0] = atel__hdr_word(ATEL_REC_SPAN_EVENT, 0, 0, defs[0]->id);
		d->words[1] = now;
		put_ids(d, s);
		d->words[5] = (uint64_t)n;
		d->words[6] = d->words[7] = 0;
		off = 1;
		for (size_t i = 0; i < n; i++)
			off += put_attr(t, off, s, defs[1 + i]->id, &attrs[i], ATEL_RECF_EVENT_ATTR, now);
		atel__publish(t, slots, 0, 1 + n);
	}
	atel__leave(t);
}

void atel_span_add_event(const atel_span *s, const char *name)
{
	atel_span_add_event_attrs(s, name, NULL, 0);
}

/* SPAN_END and SPAN_ERROR share the message layout: u16 at 42, 20 inline bytes at 44, continuation. */
static void put_msg(struct atel__tls *t, union atel_slot *d, const char *msg, size_t len, unsigned cont)
{
	size_t first = len < ATEL_MSG_INLINE ? len : ATEL_MSG_INLINE;
	uint16_t l16 = (uint16_t)len;

	memcpy(d->raw + 42, &l16, 2);
	memset(d->raw + 44, 0, ATEL_MSG_INLINE);
	if (first)
		memcpy(d->raw + 44, msg, first);
	for (unsigned c = 0; c < cont; c++) {
		union atel_slot *x = atel__ring_slot(&t->w, 1 + c);
		size_t from = ATEL_MSG_INLINE + (size_t)c * ATEL_RECORD_SIZE;
		size_t k = len - from < ATEL_RECORD_SIZE ? len - from : ATEL_RECORD_SIZE;
		memcpy(x->raw, msg + from, k);
		memset(x->raw + k, 0, ATEL_RECORD_SIZE - k);
	}
}

void atel_span_record_error(const atel_span *s, const char *type, const char *message)
{
	struct atel__tls *t = atel__self();
	const struct atel__str *ty;
	size_t len;
	unsigned cont;
	uint64_t now;
	union atel_slot *d;

	if (!live(t, s))
		return;
	if (!(ty = name_of(t, type && *type ? type : "error", "")))
		return;
	len = message ? cap_len(message, ATEL_STR_MAX) : 0;
	cont = atel__cont_for((unsigned)len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
	if (!atel__enter(t))
		return;
	now = atel__now_ns();
	if (!span_reserve(t, &ty, 1, 1 + cont, 1, now, true)) {
		note_part_drop(t, s, true);
	} else {
		d = atel__ring_slot(&t->w, 0);
		d->words[0] = atel__hdr_word(ATEL_REC_SPAN_ERROR, 0, cont, ty->id);
		d->words[1] = now;
		put_ids(d, s);
		d->words[5] = 0;
		put_msg(t, d, message, len, cont);
		atel__publish(t, 1 + cont, 0, 1);
	}
	atel__leave(t);
}

void atel_span_end(atel_span *s, atel_status_code code, const char *message)
{
	struct atel__tls *t = atel__self();
	struct atel__span_drops *sd;
	uint32_t dropped = 0;
	size_t len;
	unsigned cont;
	uint64_t now;
	union atel_slot *d;
	bool held, ok;

	if (!s || (s->state != ATEL_SPAN_ST_LIVE && s->state != ATEL_SPAN_ST_DROPPED))
		return; /* not started, or already ended: harmless */
	if (s->state == ATEL_SPAN_ST_DROPPED) {
		s->state = ATEL_SPAN_ST_ENDED; /* dropped whole: counted at its start */
		return;
	}
	s->state = ATEL_SPAN_ST_ENDED;
	if (code < ATEL_STATUS_UNSET || code > ATEL_STATUS_ERROR) {
		atel__invalid(t, "unknown status code: recorded as UNSET");
		code = ATEL_STATUS_UNSET;
	}
	len = message ? cap_len(message, ATEL_STR_MAX) : 0;
	cont = atel__cont_for((unsigned)len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
	if (!atel__enter(t))
		return;
	now = atel__now_ns();
	/* the slot its START held back on this thread's ring, if this is that ring */
	held = s->reserved == t->span_tag && t->span_res > 0 && t->w.desc &&
	       t->epoch == atomic_load_explicit(&atel__g.epoch, memory_order_relaxed) &&
	       !(t->slow & ATEL__SLOW_BEGIN);
	if (held) {
		t->span_res--;
		t->w.limit++;
	}
	ok = span_reserve(t, NULL, 0, 1 + cont, 1, now, !held);
	if (!ok && held && atel__ring_reserve(&t->w, 1)) {
		/* the message does not fit: keep what the held slot carries */
		len = message ? cap_len(message, ATEL_MSG_INLINE) : 0;
		cont = 0;
		ok = true;
	}
	if (ok) {
		if ((sd = span_drops(t, s, false)) != NULL) {
			dropped = (sd->attrs > ATEL_SPAN_DROPPED_MAX ? ATEL_SPAN_DROPPED_MAX : sd->attrs) |
				  (sd->events > ATEL_SPAN_DROPPED_MAX ? ATEL_SPAN_DROPPED_MAX : sd->events) << 16;
			sd->span = 0;
		}
		d = atel__ring_slot(&t->w, 0);
		d->words[0] = atel__hdr_word(ATEL_REC_SPAN_END, 0, cont, dropped);
		d->words[1] = now;
		put_ids(d, s);
		d->words[5] = (uint64_t)code;
		put_msg(t, d, message, len, cont);
		atel__publish(t, 1 + cont, 0, 1);
	} else if (held) {
		/* cannot happen (the held slot is free); count it rather than lose it silently */
		atel__drop(t, ATEL_LOSS_RING_FULL, 1);
	}
	atel__leave(t);
}
