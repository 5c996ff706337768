/* SPDX-License-Identifier: MIT */
/*
 * cmd_traces.c - `atel traces`: recent traces, or one trace as a waterfall
 * (offsets, durations, status, attributes, events) or as OTLP JSON.
 * Spans come from telemetry_spans/telemetry_span_events, or, without an
 * index, from the segment files through the exporters' span assembler
 * (exporters/encode/spans.h); OTLP JSON is written by the OTLP exporter's
 * encoder (exporters/encode/otlp_encode.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "index.h"
#include "logread.h"
#include "otlp_encode.h"
#include "qsource.h"
#include "query.h"
#include "spans.h"

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

/* The exporters' span assembler (exporters/encode/spans.h) rebuilds the
 * spans, so `atel traces` shows what the OTLP exporter sends; it only keeps
 * every span (no eviction, no orphan expiry) and shows open ones too. */

static void attr_from(struct tattr *t, const struct atel_otlp_attr *a)
{
	memset(t, 0, sizeof(*t));
	t->key = strdup(a->key ? a->key : "");
	t->vtype = a->v.vtype;
	t->i = a->v.i;
	t->d = a->v.d;
	t->b = a->v.b;
	if (a->v.vtype == ATEL_VT_STR)
		t->s = strdup(a->v.s ? a->v.s : "");
}

static int span_from(struct tspan *t, const struct atel_span *s)
{
	static const uint8_t zero[8];
	struct atel_otlp_span o;

	atel__span_otlp(s, &o, NULL);
	atel__hex(s->trace_id, 16, t->trace);
	atel__hex(s->span_id, 8, t->id);
	if (memcmp(s->parent_id, zero, 8) != 0)
		atel__hex(s->parent_id, 8, t->parent);
	t->name = s->started ? strdup(o.name) : NULL;
	t->msg = o.status_msg && *o.status_msg ? strdup(o.status_msg) : NULL;
	t->service = strdup(s->comm);
	t->kind = s->kind;
	t->status = o.status;
	t->start = s->start_ns;
	t->end = s->ended ? s->end_ns : 0;
	t->pid = s->pid;
	t->tid = s->tid;
	if (s->nattrs && !(t->attrs = calloc(s->nattrs, sizeof(*t->attrs))))
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nattrs; i++)
		attr_from(&t->attrs[t->nattrs++], &s->attrs[i]);
	if (s->nevents && !(t->events = calloc(s->nevents, sizeof(*t->events))))
		return -ENOMEM;
	for (uint32_t e = 0; e < s->nevents; e++) {
		const struct atel_span_event *se = &s->events[e];
		struct tevent *te = &t->events[t->nevents++];

		te->ts_ns = se->ts_ns;
		te->name = strdup(se->name ? se->name : "");
		if (se->nattrs && !(te->attrs = calloc(se->nattrs, sizeof(*te->attrs))))
			return -ENOMEM;
		for (uint32_t i = 0; i < se->nattrs; i++)
			attr_from(&te->attrs[te->nattrs++], &se->attrs[i]);
	}
	return 0;
}

static int log_load(const char *seg_dir, const char *only_trace, struct tset *out, uint64_t *corrupt)
{
	struct atel_spanasm_opts ao = { .open_max = UINT32_MAX, .orphan_window = UINT32_MAX };
	struct atel_log_reader_opts o = { .segments_dir = seg_dir };
	struct atel_log_reader *r = NULL;
	struct atel_spanasm *a = NULL;
	struct atel_log_pos before = { 0 }, after;
	struct atel_event ev;
	int rc = atel__spanasm_new(&a, &ao);

	memset(out, 0, sizeof(*out));
	if (rc < 0 || (rc = atel__log_open(&r, &o)) < 0) {
		atel__spanasm_free(a);
		return rc;
	}
	while ((rc = atel__log_next(r, &ev, &after)) == 1) {
		atel__spanasm_apply(a, &ev, &before, &after);
		before = after;
	}
	{
		struct atel_log_read_stats st;

		atel__log_stats(r, &st);
		*corrupt = st.corrupt_frames;
	}
	atel__log_close(r);
	for (const struct atel_span *s = atel__spanasm_first(a); s && rc >= 0; s = atel__spanasm_next(s)) {
		struct tspan *t;
		char tid[33];

		atel__hex(s->trace_id, 16, tid);
		if (only_trace && strcmp(tid, only_trace) != 0)
			continue;
		if (!(t = tset_add(out)) || span_from(t, s) < 0)
			rc = -ENOMEM;
	}
	atel__spanasm_free(a);
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

static void attr_to(struct atel_otlp_attr *o, const struct tattr *t)
{
	memset(o, 0, sizeof(*o));
	o->key = t->key;
	o->v.vtype = t->vtype;
	o->v.i = t->i;
	o->v.d = t->d;
	o->v.b = t->b;
	o->v.s = t->s ? t->s : "";
}

static const char *service_of(const struct tspan *s)
{
	return s->service && s->service[0] ? s->service : "atel";
}

/* The trace as OTLP JSON (ExportTraceServiceRequest), one ResourceSpans per
 * service, written by the OTLP exporter's encoder. NULL if out of memory. */
static cJSON *otlp_trace(const struct tset *t)
{
	size_t nattrs = 0, nev = 0, ng = 0;
	struct atel_otlp_span *spans = calloc(t->n + 1, sizeof(*spans));
	struct atel_otlp_span_group *groups = calloc(t->n + 1, sizeof(*groups));
	struct atel_otlp_resource *res = calloc(t->n + 1, sizeof(*res));
	struct atel_otlp_attr *svc = calloc(t->n + 1, sizeof(*svc));
	struct atel_otlp_attr *attrs = NULL;
	struct atel_otlp_event *evs = NULL;
	struct atel_buf b = { 0 };
	bool *done = calloc(t->n + 1, sizeof(*done));
	cJSON *root = NULL;

	for (size_t i = 0; i < t->n; i++) {
		nattrs += t->s[i].nattrs;
		nev += t->s[i].nevents;
		for (size_t e = 0; e < t->s[i].nevents; e++)
			nattrs += t->s[i].events[e].nattrs;
	}
	attrs = calloc(nattrs + 1, sizeof(*attrs));
	evs = calloc(nev + 1, sizeof(*evs));
	if (!spans || !groups || !res || !svc || !attrs || !evs || !done)
		goto out;
	/* spans grouped by service, in order of first appearance */
	nattrs = nev = 0;
	for (size_t i = 0, k = 0; i < t->n; i++) {
		if (done[i])
			continue;
		svc[ng] = (struct atel_otlp_attr){ "service.name", { .vtype = ATEL_VT_STR, .s = service_of(&t->s[i]) } };
		res[ng] = (struct atel_otlp_resource){ &svc[ng], 1, "atel", NULL };
		groups[ng] = (struct atel_otlp_span_group){ &res[ng], &spans[k], 0 };
		for (size_t j = i; j < t->n; j++) {
			const struct tspan *s = &t->s[j];
			struct atel_otlp_span *o;

			if (done[j] || strcmp(service_of(s), service_of(&t->s[i])) != 0)
				continue;
			o = &spans[k++];
			done[j] = true;
			groups[ng].n++;
			atel__unhex(s->trace, 16, o->trace_id, false);
			atel__unhex(s->id, 8, o->span_id, false);
			if (s->parent[0])
				atel__unhex(s->parent, 8, o->parent_id, false);
			o->kind = (uint8_t)s->kind;
			o->name = s->name ? s->name : "";
			o->start_ns = s->start;
			o->end_ns = s->end;
			o->status = (uint8_t)s->status;
			o->status_msg = s->msg;
			o->attrs = &attrs[nattrs];
			o->nattrs = (uint32_t)s->nattrs;
			for (size_t a = 0; a < s->nattrs; a++)
				attr_to(&attrs[nattrs++], &s->attrs[a]);
			o->events = &evs[nev];
			o->nevents = (uint32_t)s->nevents;
			for (size_t e = 0; e < s->nevents; e++) {
				struct atel_otlp_event *oe = &evs[nev++];

				oe->name = s->events[e].name ? s->events[e].name : "";
				oe->ts_ns = s->events[e].ts_ns;
				oe->attrs = &attrs[nattrs];
				oe->nattrs = (uint32_t)s->events[e].nattrs;
				for (size_t a = 0; a < s->events[e].nattrs; a++)
					attr_to(&attrs[nattrs++], &s->events[e].attrs[a]);
			}
		}
		ng++;
	}
	if (atel__otlp_encode_span_groups(&b, ATEL_OTLP_JSON, groups, ng) == 0)
		root = cJSON_Parse(b.data); /* printed like every other --json document */
out:
	atel__buf_free(&b);
	free(spans);
	free(groups);
	free(res);
	free(svc);
	free(attrs);
	free(evs);
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
	if (t0 == UINT64_MAX) { /* every start lost: from the earliest known end */
		t0 = t1;
		for (size_t i = 0; i < t->n; i++)
			if (t->s[i].end && t->s[i].end < t0)
				t0 = t->s[i].end;
	}
	uint64_t total = t1 > t0 ? t1 - t0 : 0;
	char db[32], tb[40];
	const struct tspan *root = &t->s[order[0]];
	time_t secs = (time_t)(t0 / 1000000000ull);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%strace %s%s  %s  %s  %zu span%s  %s%zu error%s%s  started %s\n", cli_c(c, C_BOLD), root->trace,
	       cli_c(c, C_RESET), root->name ? root->name : root->start ? "?" : "(start lost)",
	       atel_q_fmt_duration(total, db, sizeof(db)), t->n,
	       t->n == 1 ? "" : "s", errors ? cli_c(c, C_RED) : "", errors, errors == 1 ? "" : "s", cli_c(c, C_RESET),
	       tb);
	const int W = 30;
	printf("%s%10s %10s  %-6s %-44s %s%s\n", cli_c(c, C_BOLD), "OFFSET", "DURATION", "STATUS", "SPAN", "TIMELINE",
	       cli_c(c, C_RESET));
	for (size_t oi = 0; oi < t->n; oi++) {
		const struct tspan *s = &t->s[order[oi]];
		bool lost = s->start == 0; /* its start record was lost: only the end is known */
		uint64_t at = lost ? s->end : s->start;
		uint64_t off = at > t0 ? at - t0 : 0;
		uint64_t dur = !lost && s->end > s->start ? s->end - s->start : 0;
		char ob[32], dbuf[32], label[300], bar[W * 4 + 8];
		atel_q_fmt_duration(off, ob, sizeof(ob));
		if (lost)
			snprintf(dbuf, sizeof(dbuf), "?");
		else if (s->end)
			atel_q_fmt_duration(dur, dbuf, sizeof(dbuf));
		else
			snprintf(dbuf, sizeof(dbuf), "open");
		int ind = s->depth > 10 ? 10 : s->depth;
		char pad[64] = "";
		for (int k = 0; k < ind; k++)
			strcat(pad, "  ");
		snprintf(label, sizeof(label), "%s%s%s [%s]", pad, s->depth ? "└ " : "",
			 s->name ? s->name : lost ? "(start lost)" : "?", kind_name(s->kind));
		/* bar: columns covered by [start, end] on a W-column scale */
		int a = total ? (int)((double)off / (double)total * W) : 0;
		uint64_t e = s->end ? s->end - t0 : total;
		if (lost && a > 0)
			a--; /* only the end is known: one column */
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

/* ---- --format chrome (issue 17) ---------------------------------------------------------- */

/* A span's attribute as a JSON value of its own type. */
static cJSON *attr_json(const struct tattr *a)
{
	switch (a->vtype) {
	case ATEL_VT_INT:
		return cJSON_CreateNumber((double)a->i);
	case ATEL_VT_DOUBLE:
		return cli_json_num(a->d);
	case ATEL_VT_BOOL:
		return cJSON_CreateBool(a->b);
	default:
		return cJSON_CreateString(a->s ? a->s : "");
	}
}

static cJSON *chrome_event(const char *ph, const char *name, int pid, int tid, double ts_us)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddStringToObject(e, "name", name ? name : "");
	cJSON_AddStringToObject(e, "ph", ph);
	cJSON_AddNumberToObject(e, "pid", pid);
	cJSON_AddNumberToObject(e, "tid", tid);
	cJSON_AddNumberToObject(e, "ts", ts_us);
	return e;
}

/*
 * The Chrome trace event format (the JSON Object Format that Perfetto and
 * about:tracing open): each producer process a track group (process_name
 * metadata: service and pid), each thread a track, each span a complete
 * ("X") event with its attributes, ids and status as args, each span event an
 * instant ("i") on its thread, and a flow ("s"/"f") from a parent to a child
 * that runs in another process or thread. Times in microseconds from the
 * trace's first span; open spans end at the trace's last known time.
 */
static cJSON *chrome_trace(const struct tset *t)
{
	cJSON *root = cJSON_CreateObject(), *evs = cJSON_AddArrayToObject(root, "traceEvents"), *other;
	uint64_t t0 = UINT64_MAX, t1 = 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct tspan *s = &t->s[i];
		if (s->start && s->start < t0)
			t0 = s->start;
		if (s->end > t1)
			t1 = s->end;
		if (s->start > t1)
			t1 = s->start;
	}
	if (t0 == UINT64_MAX)
		t0 = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tspan *s = &t->s[i];
		bool pseen = false, tseen = false;
		for (size_t j = 0; j < i; j++) {
			pseen |= t->s[j].pid == s->pid;
			tseen |= t->s[j].pid == s->pid && t->s[j].tid == s->tid;
		}
		if (!pseen) {
			char nm[160];
			cJSON *m = chrome_event("M", "process_name", s->pid, 0, 0), *a = cJSON_AddObjectToObject(m, "args");
			snprintf(nm, sizeof(nm), "%s (pid %d)", service_of(s), s->pid);
			cJSON_AddStringToObject(a, "name", nm);
			cJSON_AddItemToArray(evs, m);
		}
		if (!tseen) {
			char nm[64];
			cJSON *m = chrome_event("M", "thread_name", s->pid, s->tid, 0), *a = cJSON_AddObjectToObject(m, "args");
			snprintf(nm, sizeof(nm), "thread %d", s->tid);
			cJSON_AddStringToObject(a, "name", nm);
			cJSON_AddItemToArray(evs, m);
		}
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct tspan *s = &t->s[i];
		uint64_t end = s->end ? s->end : t1;
		cJSON *e = chrome_event("X", s->name, s->pid, s->tid, (double)(s->start - t0) / 1e3), *a;

		cJSON_AddStringToObject(e, "cat", kind_name(s->kind));
		cJSON_AddNumberToObject(e, "dur", end > s->start ? (double)(end - s->start) / 1e3 : 0);
		a = cJSON_AddObjectToObject(e, "args");
		for (size_t k = 0; k < s->nattrs; k++)
			cJSON_AddItemToObject(a, s->attrs[k].key, attr_json(&s->attrs[k]));
		cJSON_AddStringToObject(a, "span_id", s->id);
		if (s->parent[0])
			cJSON_AddStringToObject(a, "parent_span_id", s->parent);
		cJSON_AddStringToObject(a, "status", status_name(s->status));
		if (s->msg && s->msg[0])
			cJSON_AddStringToObject(a, "status_message", s->msg);
		if (!s->end)
			cJSON_AddBoolToObject(a, "open", true);
		cJSON_AddItemToArray(evs, e);
		for (size_t k = 0; k < s->nevents; k++) {
			const struct tevent *ev = &s->events[k];
			cJSON *ie = chrome_event("i", ev->name, s->pid, s->tid,
						 (double)(ev->ts_ns > t0 ? ev->ts_ns - t0 : 0) / 1e3), *ia;
			cJSON_AddStringToObject(ie, "s", "t");
			ia = cJSON_AddObjectToObject(ie, "args");
			for (size_t q = 0; q < ev->nattrs; q++)
				cJSON_AddItemToObject(ia, ev->attrs[q].key, attr_json(&ev->attrs[q]));
			cJSON_AddStringToObject(ia, "span_id", s->id);
			cJSON_AddItemToArray(evs, ie);
		}
		/* a flow arrow from the parent to a child on another track */
		for (size_t j = 0; s->parent[0] && j < t->n; j++) {
			const struct tspan *par = &t->s[j];
			if (strcmp(par->id, s->parent) || (par->pid == s->pid && par->tid == s->tid))
				continue;
			double ts = (double)(s->start - t0) / 1e3;
			cJSON *fs = chrome_event("s", "parent", par->pid, par->tid, ts);
			cJSON *ff = chrome_event("f", "parent", s->pid, s->tid, ts);
			cJSON_AddStringToObject(fs, "cat", "link");
			cJSON_AddStringToObject(ff, "cat", "link");
			cJSON_AddStringToObject(fs, "id", s->id);
			cJSON_AddStringToObject(ff, "id", s->id);
			cJSON_AddStringToObject(ff, "bp", "e");
			cJSON_AddItemToArray(evs, fs);
			cJSON_AddItemToArray(evs, ff);
			break;
		}
	}
	cJSON_AddStringToObject(root, "displayTimeUnit", "ns");
	other = cJSON_AddObjectToObject(root, "otherData");
	cJSON_AddStringToObject(other, "trace_id", t->n ? t->s[0].trace : "");
	cJSON_AddItemToObject(other, "start_unix_ns", cli_json_u64(t0));
	return root;
}

/* ---- verb ------------------------------------------------------------------------------ */

static const char traces_help[] =
	"usage: atel traces [TRACE_ID] [--limit N] [--since DUR] [--source auto|db|log] [--json]\n"
	"       atel traces TRACE_ID --format chrome|otlp-json|text\n"
	"Without TRACE_ID: the most recent traces (root span name, start, duration, spans,\n"
	"errors), newest first (--limit, default 20; --since, default all).\n"
	"With TRACE_ID (32 hex digits, or a unique prefix of at least 4): the trace as a\n"
	"waterfall: offset from the trace start, duration, status, span tree, attributes and\n"
	"events. --json prints the trace as OTLP JSON (ExportTraceServiceRequest).\n"
	"--source auto (default) reads the index, or the segment files while the indexer is\n"
	"behind the log (so a trace just written is complete); db: the index alone.\n"
	"--format chrome|otlp-json|text: chrome writes the Chrome trace event JSON that\n"
	"Perfetto and about:tracing open (processes and threads as tracks, attributes as\n"
	"args); otlp-json is what --json prints (an OTLP collector accepts it).\n"
	"Exit: 0 ok, 1 usage, 2 no data source, 5 no such trace.\n";

struct trace_row {
	char id[33];
	char *root;
	uint64_t start, end;
	uint64_t spans, errors;
	uint64_t root_start, root_end;  /* log source: the earliest root span (as the index's query) */
	bool has_root;
	uint64_t first_seen;         /* earliest known time (an end) when every start was lost */
	bool start_lost;             /* no span of the trace has its start record */
};

/*
 * Opens the index for --source auto|db. auto: while the indexer is behind
 * the log, returns -ENOENT with *behind set, so the caller reads the whole
 * log (no silently partial answer).
 */
static int open_index(struct cli *c, const char *source, sqlite3 **db, bool *behind, char *err, size_t errlen)
{
	*behind = false;
	if (strcmp(source, "log") == 0)
		return -ENOENT;
	int rc = cli_db_open_ro(c, db, err, errlen);
	if (rc == 0 && strcmp(source, "db") != 0 && atel__ix_mode_compact(*db) == 1) {
		sqlite3_close(*db); /* a compact index keeps no spans: the log answers */
		*db = NULL;
		return -ENOENT;
	}
	if (rc == 0 && strcmp(source, "auto") == 0 && atel_qs_index_behind(*db, c->seg_dir)) {
		sqlite3_close(*db);
		*db = NULL;
		*behind = true;
		return -ENOENT;
	}
	return rc;
}

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
	bool behind;
	int rc = open_index(c, source, &db, &behind, err, sizeof(err));
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
		/* group by trace: trace id -> row index + 1, open addressing */
		size_t nslots = 64;
		while (nslots < 2 * t.n)
			nslots *= 2;
		size_t *slots = calloc(nslots, sizeof(*slots));
		if (!slots) {
			tset_free(&t);
			cli_err("traces", "out of memory");
			return ATEL_EXIT_DATA;
		}
		for (size_t i = 0; i < t.n; i++) {
			const struct tspan *s = &t.s[i];
			if (s->start < since_ns)
				continue;
			uint64_t h = 1469598103934665603ull;
			for (const char *p = s->trace; *p; p++)
				h = (h ^ (uint8_t)*p) * 1099511628211ull;
			size_t slot = (size_t)h & (nslots - 1), k;
			while (slots[slot] && strcmp(rows[slots[slot] - 1].id, s->trace) != 0)
				slot = (slot + 1) & (nslots - 1);
			k = slots[slot] ? slots[slot] - 1 : nrows;
			if (k == nrows) {
				struct trace_row *nr = realloc(rows, (nrows + 1) * sizeof(*nr));
				if (!nr)
					break;
				rows = nr;
				memset(&rows[nrows], 0, sizeof(rows[0]));
				memcpy(rows[nrows].id, s->trace, 33);
				rows[nrows].start = UINT64_MAX;
				rows[nrows].first_seen = UINT64_MAX;
				slots[slot] = ++nrows;
			}
			struct trace_row *r = &rows[k];
			r->spans++;
			r->errors += s->status == 2;
			if (s->start && s->start < r->start)
				r->start = s->start;
			uint64_t e = s->end ? s->end : s->start;
			if (e > r->end)
				r->end = e;
			if (e && e < r->first_seen)
				r->first_seen = e;
			r->start_lost |= s->start == 0;
			if (!s->parent[0] &&
			    (!r->has_root || (s->start && (!r->root_start || s->start < r->root_start)))) {
				r->has_root = true;
				r->root_start = s->start;
				r->root_end = s->end;
				free(r->root);
				r->root = strdup(s->name ? s->name : s->start ? "" : "(start lost)");
			}
		}
		/* as the index's list: a root that ended gives the trace's duration */
		for (size_t i = 0; i < nrows; i++)
			if (rows[i].has_root && rows[i].root_start && rows[i].start != UINT64_MAX &&
			    rows[i].root_end > rows[i].root_start)
				rows[i].end = rows[i].start + (rows[i].root_end - rows[i].root_start);
		free(slots);
		tset_free(&t);
		/* a trace whose start records were all lost: show what is known, mark the rest */
		for (size_t i = 0; i < nrows; i++)
			if (rows[i].start == UINT64_MAX)
				rows[i].start = rows[i].first_seen == UINT64_MAX ? rows[i].end : rows[i].first_seen;
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
		cJSON_AddBoolToObject(root, "index_behind", behind);
		cJSON_AddItemToObject(root, "traces", arr);
		for (size_t i = 0; i < nrows; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "trace_id", rows[i].id);
			if (rows[i].root)
				cJSON_AddStringToObject(o, "root", rows[i].root);
			else
				cJSON_AddNullToObject(o, "root");
			cJSON_AddItemToObject(o, "start_ns", cli_json_u64(rows[i].start));
			/* start_lost: a span's start record was lost; start and duration cover what is known */
			cJSON_AddItemToObject(o, "duration_ns", cli_json_u64(rows[i].end - rows[i].start));
			cJSON_AddBoolToObject(o, "start_lost", rows[i].start_lost);
			cJSON_AddItemToObject(o, "spans", cli_json_u64(rows[i].spans));
			cJSON_AddItemToObject(o, "errors", cli_json_u64(rows[i].errors));
			cJSON_AddItemToArray(arr, o);
		}
		cli_print_json(root);
	} else if (nrows == 0) {
		printf("no traces recorded (source: %s%s)\n", used, behind ? ", the index is behind the log" : "");
	} else {
		const char *hdr[] = { "TRACE ID", "ROOT", "START", "DURATION", "SPANS", "ERRORS" };
		const bool right[] = { false, false, false, true, true, true };
		struct table *t = table_new(6, hdr, right);
		for (size_t i = 0; i < nrows; i++) {
			char tb[40], db2[40];
			time_t secs = (time_t)(rows[i].start / 1000000000ull);
			struct tm tm;
			gmtime_r(&secs, &tm);
			strftime(tb, sizeof(tb), "%Y-%m-%dT%H:%M:%SZ", &tm);
			char d3[24];
			atel_q_fmt_duration(rows[i].end - rows[i].start, d3, sizeof(d3));
			snprintf(db2, sizeof(db2), "%s%s", rows[i].start_lost ? ">= " : "", d3);
			table_rowf(t, "%s\t%s\t%s\t%s\t%llu\t%llu", rows[i].id, rows[i].root ? rows[i].root : "(no root)", tb,
				   db2,
				   (unsigned long long)rows[i].spans, (unsigned long long)rows[i].errors);
		}
		table_print(t, stdout, c);
		table_free(t);
		if (behind)
			printf("(source: segments: the index is behind the log)\n");
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

static int show_trace(struct cli *c, const char *source, const char *idarg, const char *format)
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
	bool behind;
	int rc = open_index(c, source, &db, &behind, err, sizeof(err));
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
	if (format && strcmp(format, "text")) {
		cJSON *j = strcmp(format, "chrome") ? otlp_trace(&t) : chrome_trace(&t);

		tset_free(&t);
		if (!j) {
			cli_err("traces", "out of memory");
			return ATEL_EXIT_DATA;
		}
		return cli_print_json(j) < 0 ? ATEL_EXIT_DATA : 0;
	}
	if (c->json) {
		cJSON *j = otlp_trace(&t);

		if (!j) {
			cli_err("traces", "out of memory");
			tset_free(&t);
			return ATEL_EXIT_DATA;
		}
		cli_print_json(j);
	}
	else
		print_waterfall(c, &t);
	tset_free(&t);
	return 0;
}

int cmd_traces(struct cli *c, int argc, char **argv)
{
	const char *id = NULL, *source = "auto", *lim = NULL, *since = NULL, *format = NULL;
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
		else if ((v = cli_opt(argc, argv, &i, "--format")) != NULL)
			format = v;
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
	if (format && strcmp(format, "chrome") && strcmp(format, "otlp-json") && strcmp(format, "text")) {
		cli_err("traces", "--format must be chrome, otlp-json or text");
		return ATEL_EXIT_USAGE;
	}
	if (format && !id) {
		cli_err("traces", "--format needs a TRACE_ID");
		return ATEL_EXIT_USAGE;
	}
	if (id)
		return show_trace(c, source, id, format);
	return list_traces(c, source, limit, since_ns);
}
