/* SPDX-License-Identifier: MIT */
/*
 * cmd_traces.c - `atel traces`: recent traces, or one trace as a waterfall
 * (offsets, durations, status, attributes, events) or as OTLP JSON.
 * Spans come from telemetry_spans/telemetry_span_events, or, without an
 * index, from the span records of the segment files.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "logread.h"
#include "query.h"

struct tattr {
	char *key;
	uint8_t vtype;              /* enum atel_attr_vtype */
	int64_t i;
	double d;
	bool b;
	char *s;
};

struct tevent {
	uint64_t ts_ns;
	char *name;
	struct tattr *attrs;
	size_t nattrs;
};

struct tspan {
	char trace[33], id[17], parent[17]; /* parent "" for a root */
	char *name, *msg, *service;
	int kind, status;
	uint64_t start, end;                /* end 0: still open */
	int pid, tid;
	struct tattr *attrs;
	size_t nattrs;
	struct tevent *events;
	size_t nevents;
	/* waterfall */
	int depth;
	bool placed;
};

struct tset {
	struct tspan *s;
	size_t n, cap;
};

static void attr_free(struct tattr *a)
{
	free(a->key);
	free(a->s);
}

static void span_free_members(struct tspan *s)
{
	free(s->name);
	free(s->msg);
	free(s->service);
	for (size_t k = 0; k < s->nattrs; k++)
		attr_free(&s->attrs[k]);
	free(s->attrs);
	for (size_t e = 0; e < s->nevents; e++) {
		free(s->events[e].name);
		for (size_t k = 0; k < s->events[e].nattrs; k++)
			attr_free(&s->events[e].attrs[k]);
		free(s->events[e].attrs);
	}
	free(s->events);
}

static void tset_free(struct tset *t)
{
	for (size_t i = 0; i < t->n; i++)
		span_free_members(&t->s[i]);
	free(t->s);
	memset(t, 0, sizeof(*t));
}

static struct tspan *tset_add(struct tset *t)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 64;
		struct tspan *ns = realloc(t->s, nc * sizeof(*ns));
		if (!ns)
			return NULL;
		t->s = ns;
		t->cap = nc;
	}
	struct tspan *s = &t->s[t->n++];
	memset(s, 0, sizeof(*s));
	return s;
}

static int attrs_push(struct tattr **arr, size_t *n, const char *key, const struct tattr *v)
{
	/* a later value for the same key replaces the earlier one */
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*arr)[i].key, key) == 0) {
			free((*arr)[i].s);
			char *k = (*arr)[i].key;
			(*arr)[i] = *v;
			(*arr)[i].key = k;
			return 0;
		}
	struct tattr *na = realloc(*arr, (*n + 1) * sizeof(*na));
	if (!na)
		return -ENOMEM;
	*arr = na;
	na[*n] = *v;
	na[*n].key = strdup(key);
	(*n)++;
	return 0;
}

/* ---- from the index ----------------------------------------------------------- */

/* json_each(attributes) into typed attributes */
static int db_attrs(sqlite3 *db, const char *json, struct tattr **arr, size_t *n)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT key, type, value FROM json_each(?1)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, json ? json : "{}", -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const char *type = (const char *)sqlite3_column_text(st, 1);
		struct tattr a = { 0 };
		if (!key || !type)
			continue;
		if (strcmp(type, "integer") == 0) {
			a.vtype = ATEL_VT_INT;
			a.i = sqlite3_column_int64(st, 2);
		} else if (strcmp(type, "real") == 0) {
			a.vtype = ATEL_VT_DOUBLE;
			a.d = sqlite3_column_double(st, 2);
		} else if (strcmp(type, "true") == 0 || strcmp(type, "false") == 0) {
			a.vtype = ATEL_VT_BOOL;
			a.b = type[0] == 't';
		} else {
			a.vtype = ATEL_VT_STR;
			const char *s = (const char *)sqlite3_column_text(st, 2);
			a.s = strdup(s ? s : "");
		}
		if (attrs_push(arr, n, key, &a) < 0) {
			free(a.s);
			sqlite3_finalize(st);
			return -ENOMEM;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

static char *dupcol(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? strdup(s) : NULL;
}

static int db_load_trace(sqlite3 *db, const char *trace, struct tset *out)
{
	sqlite3_stmt *st = NULL, *ev = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT span_id, COALESCE(parent_span_id, ''), name, kind, COALESCE(start_ns, 0), "
			       "COALESCE(end_ns, 0), status_code, status_message, attributes, COALESCE(pid, 0), "
			       "COALESCE(tid, 0), service FROM telemetry_spans WHERE trace_id = ?1 ORDER BY start_ns",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT ts_ns, name, attributes FROM telemetry_span_events WHERE trace_id = ?1 AND "
			       "span_id = ?2 ORDER BY ts_ns, id",
			       -1, &ev, NULL) != SQLITE_OK) {
		rc = -EIO;
		goto out;
	}
	sqlite3_bind_text(st, 1, trace, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct tspan *s = tset_add(out);
		if (!s) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(s->trace, sizeof(s->trace), "%s", trace);
		snprintf(s->id, sizeof(s->id), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(s->parent, sizeof(s->parent), "%s", (const char *)sqlite3_column_text(st, 1));
		s->name = dupcol(st, 2);
		s->kind = sqlite3_column_int(st, 3);
		s->start = (uint64_t)sqlite3_column_int64(st, 4);
		s->end = (uint64_t)sqlite3_column_int64(st, 5);
		s->status = sqlite3_column_int(st, 6);
		s->msg = dupcol(st, 7);
		if ((rc = db_attrs(db, (const char *)sqlite3_column_text(st, 8), &s->attrs, &s->nattrs)) < 0)
			goto out;
		s->pid = sqlite3_column_int(st, 9);
		s->tid = sqlite3_column_int(st, 10);
		s->service = dupcol(st, 11);
		sqlite3_reset(ev);
		sqlite3_bind_text(ev, 1, trace, -1, SQLITE_STATIC);
		sqlite3_bind_text(ev, 2, s->id, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(ev) == SQLITE_ROW) {
			struct tevent *ne = realloc(s->events, (s->nevents + 1) * sizeof(*ne));
			if (!ne) {
				rc = -ENOMEM;
				goto out;
			}
			s->events = ne;
			struct tevent *e = &ne[s->nevents++];
			memset(e, 0, sizeof(*e));
			e->ts_ns = (uint64_t)sqlite3_column_int64(ev, 0);
			e->name = dupcol(ev, 1);
			if ((rc = db_attrs(db, (const char *)sqlite3_column_text(ev, 2), &e->attrs, &e->nattrs)) < 0)
				goto out;
		}
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(ev);
	return rc;
}

/* ---- from the log ---------------------------------------------------------------- */

struct logspans {
	struct tset set;
	size_t *slots;               /* (trace, span) -> index + 1 */
	size_t nslots;
	const char *only_trace;      /* NULL: all */
	size_t last_event_span;      /* for EVENT_ATTR records: index + 1 */
};

static size_t key_slot(const char *trace, const char *id, size_t nslots)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = trace; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	for (const char *p = id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (size_t)(h & (nslots - 1));
}

static size_t ls_find(struct logspans *l, const char *trace, const char *id)
{
	if (!l->nslots)
		return SIZE_MAX;
	for (size_t i = key_slot(trace, id, l->nslots);; i = (i + 1) & (l->nslots - 1)) {
		size_t v = l->slots[i];
		if (!v)
			return SIZE_MAX;
		if (strcmp(l->set.s[v - 1].trace, trace) == 0 && strcmp(l->set.s[v - 1].id, id) == 0)
			return v - 1;
	}
}

static int ls_index(struct logspans *l)
{
	size_t want = 64;
	while (want < (l->set.n + 1) * 2)
		want *= 2;
	if (want == l->nslots)
		return 0;
	size_t *ns = calloc(want, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	for (size_t k = 0; k < l->set.n; k++) {
		size_t i = key_slot(l->set.s[k].trace, l->set.s[k].id, want);
		while (ns[i])
			i = (i + 1) & (want - 1);
		ns[i] = k + 1;
	}
	free(l->slots);
	l->slots = ns;
	l->nslots = want;
	return 0;
}

/* the span an event refers to, created (as a placeholder) if unseen */
static struct tspan *ls_span(struct logspans *l, const uint8_t trace_id[16], const uint8_t span_id[8], bool create)
{
	char t[33], s[17];
	atel__hex(trace_id, 16, t);
	atel__hex(span_id, 8, s);
	if (l->only_trace && strcmp(t, l->only_trace) != 0)
		return NULL;
	size_t i = ls_find(l, t, s);
	if (i != SIZE_MAX)
		return &l->set.s[i];
	if (!create)
		return NULL;
	if (ls_index(l) < 0)
		return NULL;
	struct tspan *sp = tset_add(&l->set);
	if (!sp)
		return NULL;
	memcpy(sp->trace, t, sizeof(sp->trace));
	memcpy(sp->id, s, sizeof(sp->id));
	size_t k = key_slot(t, s, l->nslots);
	while (l->slots[k])
		k = (k + 1) & (l->nslots - 1);
	l->slots[k] = l->set.n;
	return sp;
}

static void ev_attr_value(const struct atel_attr_value *v, struct tattr *a)
{
	memset(a, 0, sizeof(*a));
	a->vtype = v->vtype;
	a->i = v->i;
	a->d = v->d;
	a->b = v->b;
	if (v->vtype == ATEL_VT_STR)
		a->s = strndup(v->s ? v->s : "", v->slen);
}

static void ls_apply(struct logspans *l, const struct atel_event *ev)
{
	struct tspan *s;
	struct tattr a;
	switch (ev->kind) {
	case ATEL_EV_SPAN_START:
		s = ls_span(l, ev->span_start.trace_id, ev->span_start.span_id, true);
		if (!s)
			return;
		free(s->name);
		s->name = strdup(ev->span_start.name ? ev->span_start.name : "");
		s->kind = ev->span_start.kind;
		s->start = ev->ts_ns;
		{
			static const uint8_t zero[8];
			if (memcmp(ev->span_start.parent_id, zero, 8) != 0)
				atel__hex(ev->span_start.parent_id, 8, s->parent);
		}
		s->pid = ev->pid;
		s->tid = ev->tid;
		free(s->service);
		s->service = strdup(ev->comm ? ev->comm : "");
		break;
	case ATEL_EV_SPAN_END:
		s = ls_span(l, ev->span_end.trace_id, ev->span_end.span_id, true);
		if (!s)
			return;
		s->end = ev->ts_ns;
		if (s->status != 2) { /* ERROR wins, as in the index */
			s->status = ev->span_end.status;
			if (ev->span_end.msg && ev->span_end.msg[0]) {
				free(s->msg);
				s->msg = strndup(ev->span_end.msg, ev->span_end.msg_len);
			}
		}
		break;
	case ATEL_EV_SPAN_ATTR:
		s = ls_span(l, ev->span_attr.trace_id, ev->span_attr.span_id, true);
		if (!s)
			return;
		ev_attr_value(&ev->span_attr.v, &a);
		if (ev->span_attr.event_attr && s->nevents) {
			struct tevent *e = &s->events[s->nevents - 1];
			if (attrs_push(&e->attrs, &e->nattrs, ev->span_attr.key ? ev->span_attr.key : "", &a) < 0)
				free(a.s);
		} else if (attrs_push(&s->attrs, &s->nattrs, ev->span_attr.key ? ev->span_attr.key : "", &a) < 0) {
			free(a.s);
		}
		break;
	case ATEL_EV_SPAN_EVENT:
	case ATEL_EV_SPAN_ERROR: {
		bool err = ev->kind == ATEL_EV_SPAN_ERROR;
		s = err ? ls_span(l, ev->span_error.trace_id, ev->span_error.span_id, true)
			: ls_span(l, ev->span_event.trace_id, ev->span_event.span_id, true);
		if (!s)
			return;
		struct tevent *ne = realloc(s->events, (s->nevents + 1) * sizeof(*ne));
		if (!ne)
			return;
		s->events = ne;
		struct tevent *e = &ne[s->nevents++];
		memset(e, 0, sizeof(*e));
		e->ts_ns = ev->ts_ns;
		if (err) {
			/* OpenTelemetry convention, as the indexer stores it */
			e->name = strdup("exception");
			struct tattr t = { .vtype = ATEL_VT_STR, .s = strdup(ev->span_error.type ? ev->span_error.type : "") };
			if (attrs_push(&e->attrs, &e->nattrs, "exception.type", &t) < 0)
				free(t.s);
			struct tattr m = { .vtype = ATEL_VT_STR,
					   .s = strndup(ev->span_error.msg ? ev->span_error.msg : "", ev->span_error.msg_len) };
			if (attrs_push(&e->attrs, &e->nattrs, "exception.message", &m) < 0)
				free(m.s);
			s->status = 2;
			if (!s->msg)
				s->msg = strndup(ev->span_error.msg ? ev->span_error.msg : "", ev->span_error.msg_len);
		} else {
			e->name = strdup(ev->span_event.name ? ev->span_event.name : "");
		}
		break;
	}
	default:
		break;
	}
}

static int log_load(const char *seg_dir, const char *only_trace, struct tset *out, uint64_t *corrupt)
{
	struct logspans l = { .only_trace = only_trace };
	struct atel_log_reader_opts o = { .segments_dir = seg_dir };
	struct atel_log_reader *r = NULL;
	int rc = atel__log_open(&r, &o);
	if (rc < 0)
		return rc;
	struct atel_event ev;
	while ((rc = atel__log_next(r, &ev, NULL)) == 1)
		ls_apply(&l, &ev);
	struct atel_log_read_stats st;
	atel__log_stats(r, &st);
	*corrupt = st.corrupt_frames;
	atel__log_close(r);
	free(l.slots);
	*out = l.set;
	return rc < 0 ? rc : 0;
}

/* ---- output ------------------------------------------------------------------------ */

static const char *kind_name(int k)
{
	static const char *const n[] = { "unspecified", "internal", "server", "client", "producer", "consumer" };
	return k >= 0 && k <= 5 ? n[k] : "unspecified";
}

static const char *status_name(int s)
{
	return s == 1 ? "OK" : s == 2 ? "ERROR" : "UNSET";
}

static cJSON *otlp_value(const struct tattr *a)
{
	cJSON *v = cJSON_CreateObject();
	char buf[32];
	switch (a->vtype) {
	case ATEL_VT_INT:
		snprintf(buf, sizeof(buf), "%" PRId64, a->i);
		cJSON_AddStringToObject(v, "intValue", buf); /* int64 is a string in OTLP JSON */
		break;
	case ATEL_VT_DOUBLE:
		cJSON_AddItemToObject(v, "doubleValue", cli_json_num(a->d));
		break;
	case ATEL_VT_BOOL:
		cJSON_AddBoolToObject(v, "boolValue", a->b);
		break;
	default:
		cJSON_AddStringToObject(v, "stringValue", a->s ? a->s : "");
	}
	return v;
}

static cJSON *otlp_attrs(const struct tattr *a, size_t n)
{
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *kv = cJSON_CreateObject();
		cJSON_AddStringToObject(kv, "key", a[i].key);
		cJSON_AddItemToObject(kv, "value", otlp_value(&a[i]));
		cJSON_AddItemToArray(arr, kv);
	}
	return arr;
}

static cJSON *ns_string(uint64_t ns)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, ns);
	return cJSON_CreateString(buf); /* fixed64 is a decimal string in OTLP JSON */
}

/* OTLP JSON (ExportTraceServiceRequest) with one ResourceSpans per service. */
static cJSON *otlp_trace(const struct tset *t)
{
	cJSON *root = cJSON_CreateObject(), *rss = cJSON_CreateArray();
	cJSON_AddItemToObject(root, "resourceSpans", rss);
	bool *done = calloc(t->n + 1, sizeof(bool));
	for (size_t i = 0; done && i < t->n; i++) {
		if (done[i])
			continue;
		const char *svc = t->s[i].service && t->s[i].service[0] ? t->s[i].service : "atel";
		cJSON *rs = cJSON_CreateObject(), *res = cJSON_CreateObject(), *rattrs = cJSON_CreateArray();
		cJSON *kv = cJSON_CreateObject(), *val = cJSON_CreateObject();
		cJSON_AddStringToObject(val, "stringValue", svc);
		cJSON_AddStringToObject(kv, "key", "service.name");
		cJSON_AddItemToObject(kv, "value", val);
		cJSON_AddItemToArray(rattrs, kv);
		cJSON_AddItemToObject(res, "attributes", rattrs);
		cJSON_AddItemToObject(rs, "resource", res);
		cJSON *sss = cJSON_CreateArray(), *ss = cJSON_CreateObject(), *scope = cJSON_CreateObject();
		cJSON_AddStringToObject(scope, "name", "atel");
		cJSON_AddItemToObject(ss, "scope", scope);
		cJSON *spans = cJSON_CreateArray();
		cJSON_AddItemToObject(ss, "spans", spans);
		cJSON_AddItemToArray(sss, ss);
		cJSON_AddItemToObject(rs, "scopeSpans", sss);
		cJSON_AddItemToArray(rss, rs);
		for (size_t j = i; j < t->n; j++) {
			const struct tspan *s = &t->s[j];
			const char *sv = s->service && s->service[0] ? s->service : "atel";
			if (done[j] || strcmp(sv, svc) != 0)
				continue;
			done[j] = true;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "traceId", s->trace);
			cJSON_AddStringToObject(o, "spanId", s->id);
			if (s->parent[0])
				cJSON_AddStringToObject(o, "parentSpanId", s->parent);
			cJSON_AddStringToObject(o, "name", s->name ? s->name : "");
			cJSON_AddNumberToObject(o, "kind", s->kind);
			cJSON_AddItemToObject(o, "startTimeUnixNano", ns_string(s->start));
			if (s->end)
				cJSON_AddItemToObject(o, "endTimeUnixNano", ns_string(s->end));
			cJSON_AddItemToObject(o, "attributes", otlp_attrs(s->attrs, s->nattrs));
			cJSON *evs = cJSON_CreateArray();
			for (size_t e = 0; e < s->nevents; e++) {
				cJSON *eo = cJSON_CreateObject();
				cJSON_AddItemToObject(eo, "timeUnixNano", ns_string(s->events[e].ts_ns));
				cJSON_AddStringToObject(eo, "name", s->events[e].name ? s->events[e].name : "");
				cJSON_AddItemToObject(eo, "attributes", otlp_attrs(s->events[e].attrs, s->events[e].nattrs));
				cJSON_AddItemToArray(evs, eo);
			}
			cJSON_AddItemToObject(o, "events", evs);
			cJSON *stt = cJSON_CreateObject();
			cJSON_AddNumberToObject(stt, "code", s->status);
			if (s->msg && s->msg[0])
				cJSON_AddStringToObject(stt, "message", s->msg);
			cJSON_AddItemToObject(o, "status", stt);
			cJSON_AddItemToArray(spans, o);
		}
	}
	free(done);
	return root;
}

static void attr_text(const struct tattr *a, char *buf, size_t len)
{
	switch (a->vtype) {
	case ATEL_VT_INT:
		snprintf(buf, len, "%s=%" PRId64, a->key, a->i);
		break;
	case ATEL_VT_DOUBLE:
		snprintf(buf, len, "%s=%g", a->key, a->d);
		break;
	case ATEL_VT_BOOL:
		snprintf(buf, len, "%s=%s", a->key, a->b ? "true" : "false");
		break;
	default:
		snprintf(buf, len, "%s=\"%s\"", a->key, a->s ? a->s : "");
	}
}

static void print_attrs_line(const struct tattr *a, size_t n, const char *indent, const struct cli *c)
{
	if (!n)
		return;
	printf("%s%s", indent, cli_c(c, C_DIM));
	for (size_t i = 0; i < n; i++) {
		char buf[512];
		attr_text(&a[i], buf, sizeof(buf));
		printf("%s%s", i ? " " : "", buf);
	}
	printf("%s\n", cli_c(c, C_RESET));
}

static int cmp_start(const void *a, const void *b)
{
	const struct tspan *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* depth-first order: roots (no parent, or parent not in this trace) by start, children by start */
static size_t *waterfall_order(struct tset *t)
{
	qsort(t->s, t->n, sizeof(*t->s), cmp_start);
	size_t *order = malloc((t->n + 1) * sizeof(*order));
	size_t *stack = malloc((t->n + 1) * sizeof(*stack));
	if (!order || !stack) {
		free(order);
		free(stack);
		return NULL;
	}
	size_t no = 0;
	for (size_t r = 0; r < t->n; r++) {
		struct tspan *root = &t->s[r];
		bool has_parent = false;
		if (root->parent[0])
			for (size_t k = 0; k < t->n; k++)
				if (strcmp(t->s[k].id, root->parent) == 0 && k != r) {
					has_parent = true;
					break;
				}
		if (has_parent || root->placed)
			continue;
		size_t sp = 0;
		stack[sp++] = r;
		root->depth = 0;
		root->placed = true;
		while (sp) {
			size_t cur = stack[--sp];
			order[no++] = cur;
			/* push children in reverse start order so the earliest pops first */
			for (size_t k = t->n; k-- > 0;)
				if (!t->s[k].placed && strcmp(t->s[k].parent, t->s[cur].id) == 0) {
					t->s[k].placed = true;
					t->s[k].depth = t->s[cur].depth + 1;
					stack[sp++] = k;
				}
		}
	}
	for (size_t k = 0; k < t->n; k++) /* cycles: anything left */
		if (!t->s[k].placed) {
			t->s[k].placed = true;
			order[no++] = k;
		}
	free(stack);
	return order;
}

static void print_waterfall(const struct cli *c, struct tset *t)
{
	size_t *order = waterfall_order(t);
	if (!order)
		return;
	uint64_t t0 = UINT64_MAX, t1 = 0;
	size_t errors = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tspan *s = &t->s[i];
		if (s->start && s->start < t0)
			t0 = s->start;
		uint64_t e = s->end ? s->end : s->start;
		if (e > t1)
			t1 = e;
		errors += s->status == 2;
	}
	if (t0 == UINT64_MAX)
		t0 = t1;
	uint64_t total = t1 > t0 ? t1 - t0 : 0;
	char db[32], tb[40];
	const struct tspan *root = &t->s[order[0]];
	time_t secs = (time_t)(t0 / 1000000000ull);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%strace %s%s  %s  %s  %zu span%s  %s%zu error%s%s  started %s\n", cli_c(c, C_BOLD), root->trace,
	       cli_c(c, C_RESET), root->name ? root->name : "?", atel_q_fmt_duration(total, db, sizeof(db)), t->n,
	       t->n == 1 ? "" : "s", errors ? cli_c(c, C_RED) : "", errors, errors == 1 ? "" : "s", cli_c(c, C_RESET),
	       tb);
	const int W = 30;
	printf("%s%10s %10s  %-6s %-44s %s%s\n", cli_c(c, C_BOLD), "OFFSET", "DURATION", "STATUS", "SPAN", "TIMELINE",
	       cli_c(c, C_RESET));
	for (size_t oi = 0; oi < t->n; oi++) {
		const struct tspan *s = &t->s[order[oi]];
		uint64_t off = s->start > t0 ? s->start - t0 : 0;
		uint64_t dur = s->end > s->start ? s->end - s->start : 0;
		char ob[32], dbuf[32], label[300], bar[W * 4 + 8];
		atel_q_fmt_duration(off, ob, sizeof(ob));
		if (s->end)
			atel_q_fmt_duration(dur, dbuf, sizeof(dbuf));
		else
			snprintf(dbuf, sizeof(dbuf), "open");
		int ind = s->depth > 10 ? 10 : s->depth;
		char pad[64] = "";
		for (int k = 0; k < ind; k++)
			strcat(pad, "  ");
		snprintf(label, sizeof(label), "%s%s%s [%s]", pad, s->depth ? "└ " : "", s->name ? s->name : "?",
			 kind_name(s->kind));
		/* bar: columns covered by [start, end] on a W-column scale */
		int a = total ? (int)((double)off / (double)total * W) : 0;
		uint64_t e = s->end ? s->end - t0 : total;
		int b = total ? (int)ceil((double)e / (double)total * W) : W;
		if (a >= W)
			a = W - 1;
		if (b <= a)
			b = a + 1;
		if (b > W)
			b = W;
		size_t bl = 0;
		for (int k = 0; k < W; k++) {
			const char *ch = k >= a && k < b ? "█" : "·";
			size_t cl = strlen(ch);
			memcpy(bar + bl, ch, cl);
			bl += cl;
		}
		bar[bl] = 0;
		const char *col = s->status == 2 ? C_RED : s->status == 1 ? C_GREEN : C_DIM;
		/* pad the label by display width (the tree glyph is multi-byte) */
		size_t lw = 0;
		for (const char *p = label; *p; p++)
			lw += ((unsigned char)*p & 0xC0) != 0x80;
		printf("%10s %10s  %s%-6s%s %s%*s %s%s%s\n", ob, dbuf, cli_c(c, col), status_name(s->status),
		       cli_c(c, C_RESET), label, lw < 44 ? (int)(44 - lw) : 0, "", cli_c(c, C_CYAN), bar,
		       cli_c(c, C_RESET));
		char indent[96];
		snprintf(indent, sizeof(indent), "%*s", 30 + 2 * ind, "");
		if (s->status == 2 && s->msg && s->msg[0])
			printf("%s%serror: %s%s\n", indent, cli_c(c, C_RED), s->msg, cli_c(c, C_RESET));
		print_attrs_line(s->attrs, s->nattrs, indent, c);
		for (size_t e2 = 0; e2 < s->nevents; e2++) {
			const struct tevent *ev = &s->events[e2];
			char eb[32];
			atel_q_fmt_duration(ev->ts_ns > t0 ? ev->ts_ns - t0 : 0, eb, sizeof(eb));
			printf("%s@ %s %s\n", indent, eb, ev->name ? ev->name : "");
			char ind2[100];
			snprintf(ind2, sizeof(ind2), "%s  ", indent);
			print_attrs_line(ev->attrs, ev->nattrs, ind2, c);
		}
	}
	free(order);
}

/* ---- verb ------------------------------------------------------------------------------ */

static const char traces_help[] =
	"usage: atel traces [TRACE_ID] [--limit N] [--since DUR] [--source auto|db|log] [--json]\n"
	"Without TRACE_ID: the most recent traces (root span name, start, duration, spans,\n"
	"errors), newest first (--limit, default 20; --since, default all).\n"
	"With TRACE_ID (32 hex digits, or a unique prefix of at least 4): the trace as a\n"
	"waterfall: offset from the trace start, duration, status, span tree, attributes and\n"
	"events. --json prints the trace as OTLP JSON (ExportTraceServiceRequest).\n"
	"Exit: 0 ok, 1 usage, 2 no data source, 5 no such trace.\n";

struct trace_row {
	char id[33];
	char *root;
	uint64_t start, end;
	uint64_t spans, errors;
	bool has_root;
};

static int cmp_row_desc(const void *a, const void *b)
{
	const struct trace_row *x = a, *y = b;
	return (x->start < y->start) - (x->start > y->start);
}

static int list_traces(struct cli *c, const char *source, size_t limit, uint64_t since_ns)
{
	char err[512];
	sqlite3 *db = NULL;
	struct trace_row *rows = NULL;
	size_t nrows = 0;
	int rc = strcmp(source, "log") == 0 ? -ENOENT : cli_db_open_ro(c, &db, err, sizeof(err));
	const char *used = "db";
	if (rc == 0) {
		sqlite3_stmt *st;
		const char *sql =
			"SELECT trace_id, MIN(start_ns), MAX(COALESCE(end_ns, start_ns)), COUNT(*), "
			"SUM(status_code = 2), (SELECT r.name FROM telemetry_spans r WHERE r.trace_id = s.trace_id "
			"AND r.parent_span_id IS NULL ORDER BY r.start_ns LIMIT 1), "
			"(SELECT COALESCE(r.end_ns, 0) - r.start_ns FROM telemetry_spans r WHERE r.trace_id = s.trace_id "
			"AND r.parent_span_id IS NULL ORDER BY r.start_ns LIMIT 1) "
			"FROM telemetry_spans s WHERE start_ns >= ?1 GROUP BY trace_id ORDER BY MIN(start_ns) DESC "
			"LIMIT ?2";
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			cli_err("traces", "telemetry.db: %s", sqlite3_errmsg(db));
			sqlite3_close(db);
			return ATEL_EXIT_DATA;
		}
		sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ns);
		sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct trace_row *nr = realloc(rows, (nrows + 1) * sizeof(*nr));
			if (!nr)
				break;
			rows = nr;
			struct trace_row *r = &rows[nrows++];
			memset(r, 0, sizeof(*r));
			snprintf(r->id, sizeof(r->id), "%s", (const char *)sqlite3_column_text(st, 0));
			r->start = (uint64_t)sqlite3_column_int64(st, 1);
			r->end = (uint64_t)sqlite3_column_int64(st, 2);
			r->spans = (uint64_t)sqlite3_column_int64(st, 3);
			r->errors = (uint64_t)sqlite3_column_int64(st, 4);
			r->has_root = sqlite3_column_type(st, 5) != SQLITE_NULL;
			r->root = dupcol(st, 5);
			if (r->has_root && sqlite3_column_int64(st, 6) > 0)
				r->end = r->start + (uint64_t)sqlite3_column_int64(st, 6);
		}
		sqlite3_finalize(st);
		sqlite3_close(db);
	} else if (rc == -ENOENT && strcmp(source, "db") != 0) {
		if (!cli_have_segments(c->seg_dir)) {
			cli_err("traces", "no data in %s: neither telemetry.db nor segments/*.atseg", c->data_dir);
			return ATEL_EXIT_DATA;
		}
		used = "segments";
		struct tset t = { 0 };
		uint64_t corrupt = 0;
		if ((rc = log_load(c->seg_dir, NULL, &t, &corrupt)) < 0) {
			cli_err("traces", "%s: %s", c->seg_dir, strerror(-rc));
			tset_free(&t);
			return ATEL_EXIT_DATA;
		}
		if (corrupt)
			cli_err("traces", "warning: %llu corrupt frame(s) skipped", (unsigned long long)corrupt);
		/* group by trace (sort by trace id, then scan) */
		for (size_t i = 0; i < t.n; i++) {
			const struct tspan *s = &t.s[i];
			if (s->start < since_ns)
				continue;
			size_t k = 0;
			while (k < nrows && strcmp(rows[k].id, s->trace) != 0)
				k++;
			if (k == nrows) {
				struct trace_row *nr = realloc(rows, (nrows + 1) * sizeof(*nr));
				if (!nr)
					break;
				rows = nr;
				memset(&rows[nrows], 0, sizeof(rows[0]));
				memcpy(rows[nrows].id, s->trace, 33);
				rows[nrows].start = UINT64_MAX;
				nrows++;
			}
			struct trace_row *r = &rows[k];
			r->spans++;
			r->errors += s->status == 2;
			if (s->start && s->start < r->start)
				r->start = s->start;
			uint64_t e = s->end ? s->end : s->start;
			if (e > r->end)
				r->end = e;
			if (!s->parent[0] && (!r->has_root)) {
				r->has_root = true;
				free(r->root);
				r->root = strdup(s->name ? s->name : "");
			}
		}
		tset_free(&t);
		qsort(rows, nrows, sizeof(*rows), cmp_row_desc);
		if (limit && nrows > limit) {
			for (size_t i = limit; i < nrows; i++)
				free(rows[i].root);
			nrows = limit;
		}
	} else {
		cli_err("traces", "%s", err);
		return ATEL_EXIT_DATA;
	}
	if (c->json) {
		cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
		cJSON_AddStringToObject(root, "source", used);
		cJSON_AddItemToObject(root, "traces", arr);
		for (size_t i = 0; i < nrows; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "trace_id", rows[i].id);
			if (rows[i].root)
				cJSON_AddStringToObject(o, "root", rows[i].root);
			else
				cJSON_AddNullToObject(o, "root");
			cJSON_AddItemToObject(o, "start_ns", cli_json_u64(rows[i].start));
			cJSON_AddItemToObject(o, "duration_ns", cli_json_u64(rows[i].end - rows[i].start));
			cJSON_AddItemToObject(o, "spans", cli_json_u64(rows[i].spans));
			cJSON_AddItemToObject(o, "errors", cli_json_u64(rows[i].errors));
			cJSON_AddItemToArray(arr, o);
		}
		cli_print_json(root);
	} else if (nrows == 0) {
		printf("no traces recorded (source: %s)\n", used);
	} else {
		const char *hdr[] = { "TRACE ID", "ROOT", "START", "DURATION", "SPANS", "ERRORS" };
		const bool right[] = { false, false, false, true, true, true };
		struct table *t = table_new(6, hdr, right);
		for (size_t i = 0; i < nrows; i++) {
			char tb[40], db2[32];
			time_t secs = (time_t)(rows[i].start / 1000000000ull);
			struct tm tm;
			gmtime_r(&secs, &tm);
			strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
			table_rowf(t, "%s\t%s\t%s\t%s\t%llu\t%llu", rows[i].id, rows[i].root ? rows[i].root : "(no root)", tb,
				   atel_q_fmt_duration(rows[i].end - rows[i].start, db2, sizeof(db2)),
				   (unsigned long long)rows[i].spans, (unsigned long long)rows[i].errors);
		}
		table_print(t, stdout, c);
		table_free(t);
	}
	for (size_t i = 0; i < nrows; i++)
		free(rows[i].root);
	free(rows);
	return 0;
}

static bool is_hex(const char *s)
{
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return false;
	return true;
}

static int show_trace(struct cli *c, const char *source, const char *idarg)
{
	char id[33], err[512];
	size_t il = strlen(idarg);
	if (il < 4 || il > 32 || !is_hex(idarg)) {
		cli_err("traces", "TRACE_ID \"%s\": expected 4 to 32 hex digits", idarg);
		return ATEL_EXIT_USAGE;
	}
	for (size_t i = 0; i <= il; i++)
		id[i] = (char)tolower((unsigned char)idarg[i]);
	struct tset t = { 0 };
	sqlite3 *db = NULL;
	int rc = strcmp(source, "log") == 0 ? -ENOENT : cli_db_open_ro(c, &db, err, sizeof(err));
	if (rc == 0) {
		/* resolve a prefix */
		sqlite3_stmt *st;
		char pat[40];
		snprintf(pat, sizeof(pat), "%s%%", id);
		int found = 0;
		if (sqlite3_prepare_v2(db, "SELECT DISTINCT trace_id FROM telemetry_spans WHERE trace_id LIKE ?1 LIMIT 2",
				       -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, pat, -1, SQLITE_STATIC);
			while (sqlite3_step(st) == SQLITE_ROW) {
				if (found++ == 0)
					snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(st, 0));
			}
			sqlite3_finalize(st);
		}
		if (found > 1) {
			cli_err("traces", "TRACE_ID prefix \"%s\" is ambiguous; give more digits", idarg);
			sqlite3_close(db);
			return ATEL_EXIT_USAGE;
		}
		if (found == 1 && db_load_trace(db, id, &t) < 0) {
			cli_err("traces", "telemetry.db: %s", sqlite3_errmsg(db));
			sqlite3_close(db);
			tset_free(&t);
			return ATEL_EXIT_DATA;
		}
		sqlite3_close(db);
	} else if (rc == -ENOENT && strcmp(source, "db") != 0) {
		if (!cli_have_segments(c->seg_dir)) {
			cli_err("traces", "no data in %s: neither telemetry.db nor segments/*.atseg", c->data_dir);
			return ATEL_EXIT_DATA;
		}
		uint64_t corrupt = 0;
		struct tset all = { 0 };
		if ((rc = log_load(c->seg_dir, il == 32 ? id : NULL, &all, &corrupt)) < 0) {
			cli_err("traces", "%s: %s", c->seg_dir, strerror(-rc));
			tset_free(&all);
			return ATEL_EXIT_DATA;
		}
		if (corrupt)
			cli_err("traces", "warning: %llu corrupt frame(s) skipped", (unsigned long long)corrupt);
		/* keep the spans of the one trace the prefix names */
		const char *match = NULL;
		for (size_t i = 0; i < all.n; i++)
			if (strncmp(all.s[i].trace, id, il) == 0) {
				if (match && strcmp(match, all.s[i].trace) != 0) {
					cli_err("traces", "TRACE_ID prefix \"%s\" is ambiguous; give more digits", idarg);
					tset_free(&all);
					return ATEL_EXIT_USAGE;
				}
				match = all.s[i].trace;
			}
		if (match) {
			char full[33];
			memcpy(full, match, 33);
			size_t k = 0;
			for (size_t i = 0; i < all.n; i++) {
				if (strcmp(all.s[i].trace, full) == 0) {
					all.s[k++] = all.s[i];
				} else {
					span_free_members(&all.s[i]);
				}
			}
			all.n = k;
		} else {
			tset_free(&all);
		}
		t = all;
	} else {
		cli_err("traces", "%s", err);
		return ATEL_EXIT_DATA;
	}
	if (t.n == 0) {
		cli_err("traces", "no trace %s", idarg);
		tset_free(&t);
		return ATEL_EXIT_NOT_FOUND;
	}
	if (c->json)
		cli_print_json(otlp_trace(&t));
	else
		print_waterfall(c, &t);
	tset_free(&t);
	return 0;
}

int cmd_traces(struct cli *c, int argc, char **argv)
{
	const char *id = NULL, *source = "auto", *lim = NULL, *since = NULL;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(traces_help, stdout);
			return 0;
		}
		if ((v = cli_opt(argc, argv, &i, "--source")) != NULL)
			source = v;
		else if ((v = cli_opt(argc, argv, &i, "--limit")) != NULL)
			lim = v;
		else if ((v = cli_opt(argc, argv, &i, "--since")) != NULL)
			since = v;
		else if (argv[i][0] == '-') {
			cli_err("traces", "unknown option %s (see atel traces --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		} else if (id) {
			cli_err("traces", "one TRACE_ID only");
			return ATEL_EXIT_USAGE;
		} else {
			id = argv[i];
		}
	}
	if (strcmp(source, "auto") && strcmp(source, "db") && strcmp(source, "log")) {
		cli_err("traces", "--source must be auto, db or log");
		return ATEL_EXIT_USAGE;
	}
	size_t limit = 20;
	if (lim) {
		char *end;
		unsigned long long v = strtoull(lim, &end, 10);
		if (*end || end == lim || lim[0] == '-') {
			cli_err("traces", "--limit: expected a count, got \"%s\"", lim);
			return ATEL_EXIT_USAGE;
		}
		limit = (size_t)v;
	}
	uint64_t since_ns = 0;
	if (since) {
		uint64_t d;
		char err[256];
		if (atel_q_parse_duration(since, &d, err, sizeof(err)) < 0) {
			cli_err("traces", "--since: %s", err);
			return ATEL_EXIT_USAGE;
		}
		uint64_t now = atel__now_ns();
		since_ns = d > now ? 0 : now - d;
	}
	if (id)
		return show_trace(c, source, id);
	return list_traces(c, source, limit, since_ns);
}
