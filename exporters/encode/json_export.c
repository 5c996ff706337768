/* SPDX-License-Identifier: MIT */
/*
 * json_export.c - the JSON export document and the recent-span assembler
 * (json_export.h; schema in docs/json-export.md).
 *
 * The JSON is written by hand into one reusable buffer rather than built as
 * a cJSON tree: an export of 1000 series is one pass of appends with no
 * per-node allocation, which keeps it well under a millisecond.
 *
 * Why the file holds the latest snapshot and not every snapshot of its
 * period: counters and histograms are cumulative, so the last snapshot of a
 * period carries everything the earlier ones did (only intermediate gauge
 * values are lost, and those are in the segment log and SQLite); rewriting
 * an ever-growing array atomically every interval would cost O(n^2) I/O.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json_export.h"

#define SPAN_ATTRS_MAX 64u
#define SPAN_EVENTS_MAX 32u
#define SPAN_NAME_MAX 256u

/* ---- JSON primitives ------------------------------------------------------------ */

/* JSON has no NaN/Inf: those become the strings "NaN", "+Inf", "-Inf". */
static void json_num(struct atel_buf *out, double v)
{
	if (!isfinite(v)) {
		atel__buf_putc(out, '"');
		atel__buf_double(out, v);
		atel__buf_putc(out, '"');
		return;
	}
	atel__buf_double(out, v);
}

static void json_key(struct atel_buf *out, const char *k)
{
	atel__json_str(out, k);
	atel__buf_putc(out, ':');
}

static void iso8601(char *dst, size_t n, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	char base[32];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(dst, n, "%s.%03uZ", base, (unsigned)((ns / 1000000u) % 1000u));
}

/* ---- recent spans ------------------------------------------------------------------- */

struct open_span {
	uint8_t trace_id[16], span_id[8], parent_id[8];
	bool used;
	uint8_t kind;
	uint64_t start_ns, opened;      /* opened: insertion order, for eviction */
	char *name;
	struct atel_buf attrs;          /* rendered "k":v pairs, comma-separated */
	uint32_t nattrs, dropped_attrs;
	struct atel_buf events;         /* rendered event objects, comma-separated */
	uint32_t nevents, dropped_events;
	bool event_open;                /* the last event's "attributes" object is open */
	uint32_t event_nattrs;
};

struct done_span {
	uint64_t seq;
	char *json;                     /* rendered object */
};

struct atel_recent_spans {
	pthread_mutex_t lock;           /* guards done[], seq, evicted (readers: JSON thread) */
	struct open_span *open;         /* open addressing by span id, cap = 2 * open_max */
	uint32_t open_cap, open_len, open_max;
	uint64_t opened;
	struct done_span *done;
	uint32_t keep;
	uint64_t seq;                   /* completed spans so far */
	uint64_t evicted;
};

int atel__spans_new(struct atel_recent_spans **out, uint32_t keep, uint32_t open_max)
{
	struct atel_recent_spans *r = calloc(1, sizeof(*r));
	uint32_t cap = 16;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->keep = keep ? keep : 1000;
	r->open_max = open_max ? open_max : 4096;
	while (cap < 2 * r->open_max)
		cap *= 2;
	r->open_cap = cap;
	r->open = calloc(cap, sizeof(*r->open));
	r->done = calloc(r->keep, sizeof(*r->done));
	if (!r->open || !r->done || pthread_mutex_init(&r->lock, NULL)) {
		free(r->open);
		free(r->done);
		free(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

static void open_span_clear(struct open_span *o)
{
	free(o->name);
	atel__buf_free(&o->attrs);
	atel__buf_free(&o->events);
	memset(o, 0, sizeof(*o));
}

void atel__spans_free(struct atel_recent_spans *r)
{
	if (!r)
		return;
	for (uint32_t i = 0; i < r->open_cap; i++)
		if (r->open[i].used)
			open_span_clear(&r->open[i]);
	for (uint32_t i = 0; i < r->keep; i++)
		free(r->done[i].json);
	pthread_mutex_destroy(&r->lock);
	free(r->open);
	free(r->done);
	free(r);
}

static uint32_t span_slot_hash(const uint8_t span_id[8], uint32_t cap)
{
	uint64_t h;

	memcpy(&h, span_id, 8);
	h ^= h >> 31;
	h *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(h >> 32) & (cap - 1);
}

static struct open_span *open_find(struct atel_recent_spans *r, const uint8_t trace[16], const uint8_t span[8])
{
	for (uint32_t i = span_slot_hash(span, r->open_cap), n = 0; n < r->open_cap; i = (i + 1) & (r->open_cap - 1), n++) {
		struct open_span *o = &r->open[i];
		if (!o->used)
			return NULL;
		if (!memcmp(o->span_id, span, 8) && !memcmp(o->trace_id, trace, 16))
			return o;
	}
	return NULL;
}

/* Removes slot i keeping the linear-probe chains intact (backward shift). */
static void open_remove(struct atel_recent_spans *r, struct open_span *o)
{
	uint32_t i = (uint32_t)(o - r->open), j = i;

	open_span_clear(o);
	r->open_len--;
	for (;;) {
		uint32_t k;
		j = (j + 1) & (r->open_cap - 1);
		if (!r->open[j].used)
			return;
		k = span_slot_hash(r->open[j].span_id, r->open_cap);
		/* move j back to i if its home k is not in (i, j] cyclically */
		if ((i <= j) ? (k > i && k <= j) : (k > i || k <= j))
			continue;
		r->open[i] = r->open[j];
		memset(&r->open[j], 0, sizeof(r->open[j]));
		i = j;
	}
}

static void evict_oldest(struct atel_recent_spans *r)
{
	struct open_span *old = NULL;

	for (uint32_t i = 0; i < r->open_cap; i++)
		if (r->open[i].used && (!old || r->open[i].opened < old->opened))
			old = &r->open[i];
	if (old) {
		open_remove(r, old);
		pthread_mutex_lock(&r->lock);
		r->evicted++;
		pthread_mutex_unlock(&r->lock);
	}
}

static void attr_value(struct atel_buf *b, const struct atel_attr_value *v)
{
	switch (v->vtype) {
	case ATEL_VT_STR:
		atel__json_str(b, v->s);
		break;
	case ATEL_VT_INT: {
		char t[24];
		snprintf(t, sizeof(t), "%lld", (long long)v->i);
		atel__buf_puts(b, t);
		break;
	}
	case ATEL_VT_DOUBLE:
		json_num(b, v->d);
		break;
	case ATEL_VT_BOOL:
		atel__buf_puts(b, v->b ? "true" : "false");
		break;
	default:
		atel__buf_puts(b, "null");
	}
}

static void close_event(struct open_span *o)
{
	if (o->event_open) {
		atel__buf_put(&o->events, "}}", 2);
		o->event_open = false;
	}
}

static void add_event(struct open_span *o, const char *name, uint64_t ts_ns)
{
	close_event(o);
	if (o->nevents >= SPAN_EVENTS_MAX) {
		o->dropped_events++;
		return;
	}
	if (o->nevents++)
		atel__buf_putc(&o->events, ',');
	atel__buf_puts(&o->events, "{\"name\":");
	atel__json_str(&o->events, name);
	atel__buf_puts(&o->events, ",\"time_ns\":");
	atel__buf_u64(&o->events, ts_ns);
	atel__buf_puts(&o->events, ",\"attributes\":{");
	o->event_open = true;
	o->event_nattrs = 0;
}

static void event_attr(struct open_span *o, const char *key, const struct atel_attr_value *v, const char *str)
{
	if (!o->event_open)
		return;
	if (o->event_nattrs++)
		atel__buf_putc(&o->events, ',');
	json_key(&o->events, key);
	if (v)
		attr_value(&o->events, v);
	else
		atel__json_str(&o->events, str);
}

static void finish_span(struct atel_recent_spans *r, struct open_span *o, const struct atel_event *ev)
{
	static const char *const status_names[] = { "unset", "ok", "error" };
	struct atel_buf b = { 0 };
	char hex[33];
	uint8_t st = ev->span_end.status <= 2 ? ev->span_end.status : 0;
	uint64_t end = ev->ts_ns;

	close_event(o);
	atel__buf_puts(&b, "{\"trace_id\":\"");
	atel__hex(o->trace_id, 16, hex);
	atel__buf_puts(&b, hex);
	atel__buf_puts(&b, "\",\"span_id\":\"");
	atel__hex(o->span_id, 8, hex);
	atel__buf_puts(&b, hex);
	atel__buf_puts(&b, "\",\"parent_span_id\":\"");
	{
		static const uint8_t zero[8];
		if (memcmp(o->parent_id, zero, 8)) {
			atel__hex(o->parent_id, 8, hex);
			atel__buf_puts(&b, hex);
		}
	}
	atel__buf_puts(&b, "\",\"name\":");
	atel__json_str(&b, o->name);
	atel__buf_puts(&b, ",\"kind\":");
	atel__buf_u64(&b, o->kind);
	atel__buf_puts(&b, ",\"start_ns\":");
	atel__buf_u64(&b, o->start_ns);
	atel__buf_puts(&b, ",\"end_ns\":");
	atel__buf_u64(&b, end);
	atel__buf_puts(&b, ",\"duration_ms\":");
	json_num(&b, end >= o->start_ns ? (double)(end - o->start_ns) / 1e6 : 0);
	atel__buf_puts(&b, ",\"status\":{\"code\":");
	atel__buf_u64(&b, st);
	atel__buf_puts(&b, ",\"name\":\"");
	atel__buf_puts(&b, status_names[st]);
	atel__buf_puts(&b, "\",\"message\":");
	atel__json_str(&b, ev->span_end.msg);
	atel__buf_puts(&b, "},\"attributes\":{");
	if (o->attrs.len)
		atel__buf_put(&b, o->attrs.data, o->attrs.len);
	atel__buf_puts(&b, "},\"events\":[");
	if (o->events.len)
		atel__buf_put(&b, o->events.data, o->events.len);
	atel__buf_puts(&b, "],\"dropped_attributes\":");
	atel__buf_u64(&b, o->dropped_attrs);
	atel__buf_puts(&b, ",\"dropped_events\":");
	atel__buf_u64(&b, o->dropped_events);
	atel__buf_putc(&b, '}');
	open_remove(r, o);
	if (b.oom) {
		atel__buf_free(&b);
		return;
	}
	pthread_mutex_lock(&r->lock);
	{
		struct done_span *d = &r->done[r->seq % r->keep];
		free(d->json);
		d->json = b.data; /* ownership moves to the ring */
		d->seq = ++r->seq;
	}
	pthread_mutex_unlock(&r->lock);
}

void atel__spans_apply(struct atel_recent_spans *r, const struct atel_event *ev)
{
	struct open_span *o;

	if (!r || !ev)
		return;
	switch (ev->kind) {
	case ATEL_EV_SPAN_START: {
		uint32_t i;
		if (open_find(r, ev->span_start.trace_id, ev->span_start.span_id))
			return; /* a duplicate start: keep the first */
		if (r->open_len >= r->open_max)
			evict_oldest(r);
		for (i = span_slot_hash(ev->span_start.span_id, r->open_cap); r->open[i].used;
		     i = (i + 1) & (r->open_cap - 1))
			;
		o = &r->open[i];
		memset(o, 0, sizeof(*o));
		o->used = true;
		memcpy(o->trace_id, ev->span_start.trace_id, 16);
		memcpy(o->span_id, ev->span_start.span_id, 8);
		memcpy(o->parent_id, ev->span_start.parent_id, 8);
		o->kind = ev->span_start.kind;
		o->start_ns = ev->ts_ns;
		o->opened = ++r->opened;
		o->name = strndup(ev->span_start.name ? ev->span_start.name : "", SPAN_NAME_MAX);
		r->open_len++;
		return;
	}
	case ATEL_EV_SPAN_ATTR:
		if (!(o = open_find(r, ev->span_attr.trace_id, ev->span_attr.span_id)) || !ev->span_attr.key)
			return;
		if (ev->span_attr.event_attr) {
			event_attr(o, ev->span_attr.key, &ev->span_attr.v, NULL);
			return;
		}
		close_event(o);
		if (o->nattrs >= SPAN_ATTRS_MAX) {
			o->dropped_attrs++;
			return;
		}
		if (o->nattrs++)
			atel__buf_putc(&o->attrs, ',');
		json_key(&o->attrs, ev->span_attr.key);
		attr_value(&o->attrs, &ev->span_attr.v);
		return;
	case ATEL_EV_SPAN_EVENT:
		if ((o = open_find(r, ev->span_event.trace_id, ev->span_event.span_id)))
			add_event(o, ev->span_event.name ? ev->span_event.name : "", ev->ts_ns);
		return;
	case ATEL_EV_SPAN_ERROR:
		/* OpenTelemetry's convention: an "exception" event */
		if ((o = open_find(r, ev->span_error.trace_id, ev->span_error.span_id))) {
			add_event(o, "exception", ev->ts_ns);
			event_attr(o, "exception.type", NULL, ev->span_error.type ? ev->span_error.type : "");
			event_attr(o, "exception.message", NULL, ev->span_error.msg ? ev->span_error.msg : "");
			close_event(o);
		}
		return;
	case ATEL_EV_SPAN_END:
		if ((o = open_find(r, ev->span_end.trace_id, ev->span_end.span_id)))
			finish_span(r, o, ev);
		return;
	default:
		return;
	}
}

uint64_t atel__spans_completed(struct atel_recent_spans *r)
{
	uint64_t v;

	pthread_mutex_lock(&r->lock);
	v = r->seq;
	pthread_mutex_unlock(&r->lock);
	return v;
}

uint64_t atel__spans_evicted(struct atel_recent_spans *r)
{
	uint64_t v;

	pthread_mutex_lock(&r->lock);
	v = r->evicted;
	pthread_mutex_unlock(&r->lock);
	return v;
}

/* ---- document --------------------------------------------------------------------------- */

static const char *type_str(uint8_t t)
{
	return t == ATEL_MT_COUNTER ? "counter" : t == ATEL_MT_GAUGE ? "gauge" : t == ATEL_MT_HISTOGRAM ? "histogram" : "unknown";
}

static void encode_series(struct atel_buf *out, const struct atel_agg_family *f, const struct atel_agg_series *s)
{
	atel__buf_puts(out, "{\"labels\":{");
	for (uint32_t l = 0; l < s->nlabels; l++) {
		if (l)
			atel__buf_putc(out, ',');
		json_key(out, s->keys[l]);
		atel__json_str(out, s->values[l]);
	}
	atel__buf_putc(out, '}');
	if (s->overflow)
		atel__buf_puts(out, ",\"overflow\":true");
	if (f->mtype == ATEL_MT_HISTOGRAM) {
		uint64_t cum = 0;
		atel__buf_puts(out, ",\"count\":");
		atel__buf_u64(out, s->count);
		atel__buf_puts(out, ",\"sum\":");
		json_num(out, s->sum);
		atel__buf_puts(out, ",\"buckets\":[");
		for (uint32_t k = 0; k <= s->nbounds; k++) {
			cum += s->buckets ? s->buckets[k] : 0;
			atel__buf_puts(out, k ? ",{\"le\":" : "{\"le\":");
			if (k < s->nbounds)
				json_num(out, s->bounds[k]);
			else
				atel__buf_puts(out, "\"+Inf\"");
			atel__buf_puts(out, ",\"count\":");
			atel__buf_u64(out, cum);
			atel__buf_putc(out, '}');
		}
		atel__buf_putc(out, ']');
	} else {
		atel__buf_puts(out, ",\"value\":");
		json_num(out, s->value);
	}
	atel__buf_puts(out, ",\"start_ns\":");
	atel__buf_u64(out, s->start_ns);
	atel__buf_puts(out, ",\"last_ns\":");
	atel__buf_u64(out, s->last_ns);
	atel__buf_putc(out, '}');
}

int atel__json_encode(struct atel_buf *out, const struct atel_agg_snapshot *snap, struct atel_recent_spans *spans,
		      uint64_t since_seq, uint64_t file_start_ns, uint64_t now_ns, uint64_t writes,
		      uint64_t *last_seq)
{
	char when[48];

	iso8601(when, sizeof(when), now_ns);
	atel__buf_puts(out, "{\"schema\":\"" ATEL_JSON_SCHEMA "\",\"file_started_ns\":");
	atel__buf_u64(out, file_start_ns);
	atel__buf_puts(out, ",\"written_ns\":");
	atel__buf_u64(out, now_ns);
	atel__buf_puts(out, ",\"written_at\":\"");
	atel__buf_puts(out, when);
	atel__buf_puts(out, "\",\"writes\":");
	atel__buf_u64(out, writes);
	atel__buf_puts(out, ",\"metrics\":[");
	for (uint32_t i = 0; snap && i < snap->nfamilies; i++) {
		const struct atel_agg_family *f = &snap->families[i];
		if (i)
			atel__buf_putc(out, ',');
		atel__buf_puts(out, "\n{\"name\":");
		atel__json_str(out, f->name);
		atel__buf_puts(out, ",\"type\":\"");
		atel__buf_puts(out, type_str(f->mtype));
		atel__buf_puts(out, "\",\"help\":");
		atel__json_str(out, f->help);
		atel__buf_puts(out, ",\"series\":[");
		for (uint32_t j = 0; j < f->nseries; j++) {
			if (j)
				atel__buf_putc(out, ',');
			encode_series(out, f, &f->series[j]);
		}
		atel__buf_puts(out, "]}");
	}
	atel__buf_puts(out, "],\"spans\":[");
	{
		uint64_t total = 0, included = 0;
		if (last_seq)
			*last_seq = since_seq;
		if (spans) {
			pthread_mutex_lock(&spans->lock);
			uint64_t first = since_seq + 1, last = spans->seq;
			if (last_seq)
				*last_seq = last > since_seq ? last : since_seq;
			if (last >= first) {
				total = last - first + 1;
				if (total > spans->keep)
					first = last - spans->keep + 1;
				for (uint64_t q = first; q <= last; q++) {
					const struct done_span *d = &spans->done[(q - 1) % spans->keep];
					if (d->seq != q || !d->json)
						continue;
					if (included++)
						atel__buf_putc(out, ',');
					atel__buf_putc(out, '\n');
					atel__buf_puts(out, d->json);
				}
			}
			pthread_mutex_unlock(&spans->lock);
		}
		atel__buf_puts(out, "],\"spans_completed\":");
		atel__buf_u64(out, total);
		atel__buf_puts(out, ",\"spans_dropped\":");
		atel__buf_u64(out, total - included);
	}
	atel__buf_puts(out, "}\n");
	return out->oom ? -ENOMEM : 0;
}
