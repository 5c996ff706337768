/* SPDX-License-Identifier: MIT */
/*
 * spans.c - the span assembler (spans.h): a hash of spans by (trace id,
 * span id), a list of every span held in the order of its first record
 * (so the oldest open span is the head: eviction, orphan expiry and an
 * exporter's resume point), and a queue of finished spans in completion
 * order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spans.h"

#define HASH_BITS 16
#define OPEN_MAX_DEFAULT 65536u
#define ORPHAN_WINDOW_DEFAULT (1u << 22)

struct atel_spanasm {
	uint32_t open_max, orphan_window;
	bool (*skip)(void *arg, const struct atel_event *ev, const struct atel_log_pos *after);
	void *skip_arg;
	struct atel_span *hash[1u << HASH_BITS];
	struct atel_span *live_head, *live_tail;   /* every span held, creation (= log) order */
	struct atel_span *ready_head, *ready_tail; /* finished, completion order */
	uint32_t nlive, nready;
	uint64_t nread;                            /* records applied */
	struct atel_log_pos skip_until;
	bool skipping;
	_Atomic uint64_t s_open, s_evicted, s_producer_exited, s_orphans, s_skipped;
};

static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

static void set_open(struct atel_spanasm *a)
{
	atomic_store_explicit(&a->s_open, a->nlive - a->nready, memory_order_relaxed);
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static uint32_t span_hash(const uint8_t *trace_id, const uint8_t *span_id)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 8; i++)
		h = (h ^ span_id[i]) * 1099511628211ull;
	for (int i = 0; i < 16; i += 4)
		h = (h ^ trace_id[i]) * 1099511628211ull;
	return (uint32_t)(h >> (64 - HASH_BITS));
}

static void attrs_free(struct atel_otlp_attr *attrs, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free((char *)attrs[i].key);
		if (attrs[i].v.vtype == ATEL_VT_STR)
			free((char *)attrs[i].v.s);
	}
	free(attrs);
}

static void span_free(struct atel_span *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->status_msg);
	free(s->err_msg);
	attrs_free(s->attrs, s->nattrs);
	for (uint32_t i = 0; i < s->nevents; i++) {
		free(s->events[i].name);
		attrs_free(s->events[i].attrs, s->events[i].nattrs);
	}
	free(s->events);
	free(s);
}

int atel__spanasm_new(struct atel_spanasm **out, const struct atel_spanasm_opts *o)
{
	struct atel_spanasm *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (!a)
		return -ENOMEM;
	a->open_max = o && o->open_max ? o->open_max : OPEN_MAX_DEFAULT;
	a->orphan_window = o && o->orphan_window ? o->orphan_window : ORPHAN_WINDOW_DEFAULT;
	a->skip = o ? o->skip : NULL;
	a->skip_arg = o ? o->arg : NULL;
	*out = a;
	return 0;
}

void atel__spanasm_free(struct atel_spanasm *a)
{
	struct atel_span *s, *n;

	if (!a)
		return;
	for (s = a->live_head; s; s = n) {
		n = s->lnext;
		span_free(s);
	}
	free(a);
}

static struct atel_span *span_find(const struct atel_spanasm *a, const uint8_t *tid, const uint8_t *sid)
{
	for (struct atel_span *s = a->hash[span_hash(tid, sid)]; s; s = s->hnext)
		if (!memcmp(s->span_id, sid, 8) && !memcmp(s->trace_id, tid, 16))
			return s;
	return NULL;
}

/* Removes s from the hash and the live list (not from the ready queue) and frees it. */
static void span_remove(struct atel_spanasm *a, struct atel_span *s)
{
	struct atel_span **pp = &a->hash[span_hash(s->trace_id, s->span_id)];

	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = s->hnext;
	if (s->lprev)
		s->lprev->lnext = s->lnext;
	else
		a->live_head = s->lnext;
	if (s->lnext)
		s->lnext->lprev = s->lprev;
	else
		a->live_tail = s->lprev;
	a->nlive--;
	if (!s->ready)
		set_open(a);
	span_free(s);
}

static void span_complete(struct atel_spanasm *a, struct atel_span *s, const struct atel_log_pos *at)
{
	s->done_pos = *at;
	if (a->skipping && atel__log_pos_cmp(&s->done_pos, &a->skip_until) <= 0) {
		/* delivered before a restart: re-read from the resume point */
		stat_add(&a->s_skipped, 1);
		span_remove(a, s);
		return;
	}
	s->ready = true;
	s->rnext = NULL;
	if (a->ready_tail)
		a->ready_tail->rnext = s;
	else
		a->ready_head = s;
	a->ready_tail = s;
	a->nready++;
	set_open(a);
}

static struct atel_span *span_get(struct atel_spanasm *a, const uint8_t *tid, const uint8_t *sid,
				  const struct atel_log_pos *before)
{
	struct atel_span *s = span_find(a, tid, sid);
	uint32_t h;

	if (s)
		return s->ready ? NULL : s; /* records after completion are ignored */
	if (a->nlive - a->nready >= a->open_max) {
		/* evict the oldest open span: finish it as an error, or drop a placeholder */
		struct atel_span *v = a->live_head;

		while (v && v->ready)
			v = v->lnext;
		if (v) {
			stat_add(&a->s_evicted, 1);
			if (v->started) {
				free(v->status_msg);
				v->status_msg = xstrdup("atel: open-span limit reached; span closed by the exporter");
				v->status = 2;
				v->end_ns = v->start_ns;
				v->ended = true;
				span_complete(a, v, before);
			} else {
				span_remove(a, v);
			}
		}
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	memcpy(s->trace_id, tid, 16);
	memcpy(s->span_id, sid, 8);
	s->first_pos = *before;
	s->created_at = a->nread;
	h = span_hash(tid, sid);
	s->hnext = a->hash[h];
	a->hash[h] = s;
	s->lprev = a->live_tail;
	if (a->live_tail)
		a->live_tail->lnext = s;
	else
		a->live_head = s;
	a->live_tail = s;
	a->nlive++;
	set_open(a);
	return s;
}

static int attr_copy(struct atel_otlp_attr *dst, const char *key, const struct atel_attr_value *v)
{
	memset(dst, 0, sizeof(*dst));
	dst->v = *v;
	dst->key = xstrdup(key);
	if (v->vtype == ATEL_VT_STR)
		dst->v.s = xstrdup(v->s);
	else
		dst->v.s = NULL;
	if (!dst->key || (v->vtype == ATEL_VT_STR && !dst->v.s)) {
		free((char *)dst->key);
		free((char *)dst->v.s);
		return -ENOMEM;
	}
	return 0;
}

/* Sets (replaces) key in a span's attributes, or appends to an event's. */
static bool attr_put(struct atel_otlp_attr **arr, uint32_t *n, uint32_t *cap, const char *key,
		     const struct atel_attr_value *v, bool replace)
{
	struct atel_otlp_attr at;

	if (replace) {
		for (uint32_t i = 0; i < *n; i++) {
			if (!strcmp((*arr)[i].key, key)) {
				if (attr_copy(&at, key, v))
					return true;
				free((char *)(*arr)[i].key);
				if ((*arr)[i].v.vtype == ATEL_VT_STR)
					free((char *)(*arr)[i].v.s);
				(*arr)[i] = at;
				return true;
			}
		}
	}
	if (*n >= ATEL_SPAN_ATTRS_MAX)
		return false; /* over the cap: counted by the caller as dropped */
	if (*n == *cap) {
		uint32_t nc = *cap ? *cap * 2 : 4;
		struct atel_otlp_attr *p = realloc(*arr, nc * sizeof(*p));

		if (!p)
			return true;
		*arr = p;
		*cap = nc;
	}
	if (!attr_copy(&(*arr)[*n], key, v))
		(*n)++;
	return true;
}

static struct atel_span_event *event_add(struct atel_span *s, const char *name, uint64_t ts)
{
	struct atel_span_event *e;

	if (s->nevents >= ATEL_SPAN_EVENTS_MAX)
		return NULL;
	if (s->nevents == s->cevents) {
		uint32_t nc = s->cevents ? s->cevents * 2 : 2;
		struct atel_span_event *p = realloc(s->events, nc * sizeof(*p));

		if (!p)
			return NULL;
		s->events = p;
		s->cevents = nc;
	}
	e = &s->events[s->nevents];
	memset(e, 0, sizeof(*e));
	if (!(e->name = xstrdup(name)))
		return NULL;
	e->ts_ns = ts;
	s->nevents++;
	return e;
}

/* The producer of a ring generation died: its open spans end as errors. */
static void producer_died(struct atel_spanasm *a, const struct atel_event *ev, const struct atel_log_pos *after)
{
	struct atel_span *s, *n;

	for (s = a->live_head; s; s = n) {
		n = s->lnext;
		if (s->ready)
			continue;
		if (ev->death.pid ? s->pid != ev->death.pid
				  : (s->ring != ev->ring || s->generation != ev->death.generation))
			continue;
		if (!s->started) {
			stat_add(&a->s_orphans, 1);
			span_remove(a, s);
			continue;
		}
		s->end_ns = ev->ts_ns > s->start_ns ? ev->ts_ns : s->start_ns;
		s->status = 2;
		free(s->status_msg);
		s->status_msg = xstrdup("producer exited");
		s->ended = true;
		stat_add(&a->s_producer_exited, 1);
		span_complete(a, s, after);
	}
}

void atel__spanasm_apply(struct atel_spanasm *a, const struct atel_event *ev, const struct atel_log_pos *before,
			 const struct atel_log_pos *after)
{
	struct atel_span *s;

	a->nread++;
	if (a->skip && a->skip(a->skip_arg, ev, after))
		return;
	switch (ev->kind) {
	case ATEL_EV_SPAN_START:
		if (!(s = span_get(a, ev->span_start.trace_id, ev->span_start.span_id, before)) || s->started)
			return;
		memcpy(s->parent_id, ev->span_start.parent_id, 8);
		s->kind = ev->span_start.kind <= 5 ? ev->span_start.kind : 0;
		s->flags = ev->span_start.flags;
		free(s->name);
		s->name = xstrdup(ev->span_start.name);
		s->start_ns = ev->ts_ns;
		s->pid = ev->pid;
		s->tid = ev->tid;
		strncpy(s->comm, ev->comm ? ev->comm : "", sizeof(s->comm) - 1);
		s->ring = ev->ring;
		s->generation = ev->generation;
		s->started = true;
		if (s->ended)
			span_complete(a, s, after);
		return;
	case ATEL_EV_SPAN_ATTR:
		if (!(s = span_get(a, ev->span_attr.trace_id, ev->span_attr.span_id, before)))
			return;
		if (ev->span_attr.event_attr && s->nevents) {
			struct atel_span_event *e = &s->events[s->nevents - 1];

			attr_put(&e->attrs, &e->nattrs, &e->cattrs, ev->span_attr.key, &ev->span_attr.v, false);
		} else {
			if (!attr_put(&s->attrs, &s->nattrs, &s->cattrs, ev->span_attr.key, &ev->span_attr.v, true))
				s->dropped_attrs++;
		}
		return;
	case ATEL_EV_SPAN_EVENT:
		if ((s = span_get(a, ev->span_event.trace_id, ev->span_event.span_id, before)) &&
		    !event_add(s, ev->span_event.name, ev->ts_ns) && s->nevents >= ATEL_SPAN_EVENTS_MAX)
			s->dropped_events++;
		return;
	case ATEL_EV_SPAN_ERROR: {
		struct atel_span_event *e;
		struct atel_attr_value t = { .vtype = ATEL_VT_STR, .s = ev->span_error.type };
		struct atel_attr_value m = { .vtype = ATEL_VT_STR, .s = ev->span_error.msg };

		if (!(s = span_get(a, ev->span_error.trace_id, ev->span_error.span_id, before)))
			return;
		s->errored = true;
		if (!s->err_msg && ev->span_error.msg && *ev->span_error.msg)
			s->err_msg = xstrdup(ev->span_error.msg);
		if ((e = event_add(s, "exception", ev->ts_ns))) {
			attr_put(&e->attrs, &e->nattrs, &e->cattrs, "exception.type", &t, false);
			attr_put(&e->attrs, &e->nattrs, &e->cattrs, "exception.message", &m, false);
		}
		return;
	}
	case ATEL_EV_SPAN_END:
		if (!(s = span_get(a, ev->span_end.trace_id, ev->span_end.span_id, before)) || s->ended)
			return;
		s->end_ns = ev->ts_ns;
		s->status = ev->span_end.status <= 2 ? ev->span_end.status : 0;
		s->dropped_attrs += ev->span_end.dropped_attrs;
		s->dropped_events += ev->span_end.dropped_events;
		free(s->status_msg);
		s->status_msg = xstrdup(ev->span_end.msg);
		s->ended = true;
		if (s->started)
			span_complete(a, s, after);
		return;
	case ATEL_EV_DEATH:
		producer_died(a, ev, after);
		return;
	default:
		return;
	}
}

void atel__spanasm_expire(struct atel_spanasm *a)
{
	struct atel_span *s, *n;

	for (s = a->live_head; s; s = n) {
		n = s->lnext;
		if (s->created_at + a->orphan_window > a->nread)
			break; /* the list is in creation order */
		if (!s->started && !s->ready) {
			stat_add(&a->s_orphans, 1);
			span_remove(a, s);
		}
	}
}

void atel__spanasm_skip_until(struct atel_spanasm *a, const struct atel_log_pos *pos)
{
	a->skip_until = *pos;
	a->skipping = true;
}

struct atel_span *atel__spanasm_ready(const struct atel_spanasm *a)
{
	return a->ready_head;
}

struct atel_span *atel__spanasm_ready_next(const struct atel_span *s)
{
	return s->rnext;
}

uint32_t atel__spanasm_nready(const struct atel_spanasm *a)
{
	return a->nready;
}

void atel__spanasm_release(struct atel_spanasm *a)
{
	struct atel_span *s = a->ready_head;

	if (!s)
		return;
	a->ready_head = s->rnext;
	if (!a->ready_head)
		a->ready_tail = NULL;
	a->nready--;
	span_remove(a, s);
}

struct atel_span *atel__spanasm_first(const struct atel_spanasm *a)
{
	return a->live_head;
}

struct atel_span *atel__spanasm_next(const struct atel_span *s)
{
	return s->lnext;
}

void atel__spanasm_stats(const struct atel_spanasm *a, struct atel_spanasm_stats *out)
{
#define LD(x) atomic_load_explicit(&((struct atel_spanasm *)a)->x, memory_order_relaxed)
	out->open = LD(s_open);
	out->evicted = LD(s_evicted);
	out->producer_exited = LD(s_producer_exited);
	out->orphans = LD(s_orphans);
	out->skipped = LD(s_skipped);
#undef LD
}

void atel__span_otlp(const struct atel_span *s, struct atel_otlp_span *out, struct atel_otlp_event *events)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->trace_id, s->trace_id, 16);
	memcpy(out->span_id, s->span_id, 8);
	memcpy(out->parent_id, s->parent_id, 8);
	out->kind = s->kind;
	out->flags = s->flags;
	out->name = s->name ? s->name : "";
	out->start_ns = s->start_ns;
	out->end_ns = s->end_ns;
	out->status = s->errored ? 2 : s->status;
	out->status_msg = s->status_msg && *s->status_msg ? s->status_msg : s->errored ? s->err_msg : NULL;
	out->attrs = s->attrs;
	out->nattrs = s->nattrs;
	out->dropped_attrs = s->dropped_attrs;
	out->dropped_events = s->dropped_events;
	out->events = s->nevents ? events : NULL;
	out->nevents = events ? s->nevents : 0;
	for (uint32_t i = 0; events && i < s->nevents; i++) {
		events[i].name = s->events[i].name;
		events[i].ts_ns = s->events[i].ts_ns;
		events[i].attrs = s->events[i].attrs;
		events[i].nattrs = s->events[i].nattrs;
	}
}
