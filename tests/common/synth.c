/* SPDX-License-Identifier: MIT */
/* Test helper: synthetic record streams and segment directories (synth.h). */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "synth.h"
#include "uring.h"

void atel_synth_init(struct atel_synth *s, uint32_t ring, uint32_t generation, int32_t pid, int32_t tid,
		     uint64_t ts0)
{
	memset(s, 0, sizeof(*s));
	s->ring = ring;
	s->generation = generation;
	s->pid = pid;
	s->tid = tid;
	s->ts = ts0;
	s->ts_step = 1000;
	s->next_str = s->next_series = s->next_bounds = 1;
}

void atel_synth_free(struct atel_synth *s)
{
	for (uint32_t i = 0; i < s->nstrs; i++)
		free(s->strs[i]);
	free(s->strs);
	free(s->defined);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

/* n zeroed slots at the end; @return the first. */
static union atel_slot *take(struct atel_synth *s, unsigned n)
{
	if (s->n + n > s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 1024;
		while (nc < s->n + n)
			nc *= 2;
		s->slots = realloc(s->slots, nc * sizeof(*s->slots));
		if (!s->slots)
			abort(); /* test helper: out of memory is fatal */
		s->cap = nc;
	}
	memset(&s->slots[s->n], 0, n * sizeof(*s->slots));
	s->n += n;
	return &s->slots[s->n - n];
}

static union atel_slot *rec(struct atel_synth *s, uint8_t type, uint32_t id, unsigned cont, uint64_t *pos)
{
	union atel_slot *r;
	*pos = atel_synth_pos(s);
	r = take(s, 1 + cont);
	r->h.type = type;
	r->h.cont = (uint8_t)cont;
	r->h.id = id;
	r->h.ts_ns = s->ts;
	s->ts += s->ts_step;
	return r;
}

/* Writes len bytes: inline_cap of them at inl, the rest into the continuation slots. */
static void spill(union atel_slot *r, char *inl, unsigned inline_cap, const char *str, size_t len)
{
	size_t first = len < inline_cap ? len : inline_cap;
	memcpy(inl, str, first);
	if (len > first)
		memcpy(r[1].raw, str + first, len - first);
}

uint64_t atel_synth_begin(struct atel_synth *s, const char *comm)
{
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_BEGIN, s->generation, 0, &pos);
	if (s->nstrs)
		memset(s->defined, 0, s->nstrs * sizeof(bool)); /* a new generation: define again */
	r->begin.pid = s->pid;
	r->begin.tid = s->tid;
	r->begin.start = 123456;
	r->begin.ring = s->ring;
	strncpy(r->begin.comm, comm ? comm : "", sizeof(r->begin.comm) - 1);
	return pos;
}

uint64_t atel_synth_end(struct atel_synth *s)
{
	uint64_t pos;
	rec(s, ATEL_REC_END, s->generation, 0, &pos);
	return pos;
}

uint32_t atel_synth_str(struct atel_synth *s, const char *str)
{
	size_t len = strlen(str);
	union atel_slot *r;
	unsigned cont;
	uint64_t pos;
	uint32_t id;

	for (id = 1; id <= s->nstrs; id++)
		if (!strcmp(s->strs[id - 1], str))
			break;
	if (id <= s->nstrs && s->defined[id - 1])
		return id;
	if (id > s->nstrs) {
		if (s->nstrs == s->strs_cap) {
			s->strs_cap = s->strs_cap ? s->strs_cap * 2 : 64;
			s->strs = realloc(s->strs, s->strs_cap * sizeof(*s->strs));
			s->defined = realloc(s->defined, s->strs_cap * sizeof(*s->defined));
			if (!s->strs || !s->defined)
				abort();
		}
		s->strs[s->nstrs++] = strdup(str);
		id = s->nstrs;
		s->next_str = id + 1;
	}
	s->defined[id - 1] = true;
	cont = atel__cont_for((unsigned)len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
	r = rec(s, ATEL_REC_STRDEF, id, cont, &pos);
	r->strdef.len = (uint16_t)len;
	spill(r, r->strdef.bytes, ATEL_STRDEF_INLINE, str, len);
	return id;
}

uint32_t atel_synth_bounds(struct atel_synth *s, const double *b, unsigned n)
{
	unsigned cont = atel__cont_for(n, ATEL_BOUNDS_INLINE, ATEL_BOUNDS_PER_CONT);
	uint32_t id = s->next_bounds++;
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_BOUNDS, id, cont, &pos);

	r->bounds.count = n;
	for (unsigned i = 0; i < n; i++) {
		if (i < ATEL_BOUNDS_INLINE) {
			r->bounds.bounds[i] = b[i];
		} else {
			unsigned j = i - ATEL_BOUNDS_INLINE;
			memcpy(r[1 + j / ATEL_BOUNDS_PER_CONT].raw + (j % ATEL_BOUNDS_PER_CONT) * 8, &b[i], 8);
		}
	}
	return id;
}

uint32_t atel_synth_series_v(struct atel_synth *s, uint8_t mtype, const char *name, uint32_t bounds_id,
			     unsigned nlabels, const char *const *kv)
{
	uint32_t name_id = atel_synth_str(s, name), ids[2 * ATEL_LABELS_MAX + 2];
	unsigned cont = atel__cont_for(nlabels, ATEL_SERIES_INLINE_PAIRS, ATEL_PAIRS_PER_CONT);
	uint32_t id;
	uint64_t pos;
	union atel_slot *r;

	for (unsigned i = 0; i < 2 * nlabels && i < 2 * ATEL_LABELS_MAX + 2; i++)
		ids[i] = kv[i][0] ? atel_synth_str(s, kv[i]) : 0;
	id = s->next_series++;
	r = rec(s, ATEL_REC_SERIESDEF, id, cont, &pos);
	r->seriesdef.mtype = mtype;
	r->seriesdef.nlabels = (uint8_t)nlabels;
	r->seriesdef.name_id = name_id;
	r->seriesdef.bounds_id = bounds_id;
	for (unsigned i = 0; i < nlabels; i++) {
		struct atel_label_pair p = { ids[2 * i], ids[2 * i + 1] };
		if (i < ATEL_SERIES_INLINE_PAIRS) {
			r->seriesdef.pairs[i] = p;
		} else {
			unsigned j = i - ATEL_SERIES_INLINE_PAIRS;
			memcpy(r[1 + j / ATEL_PAIRS_PER_CONT].raw + (j % ATEL_PAIRS_PER_CONT) * sizeof(p), &p, sizeof(p));
		}
	}
	return id;
}

uint32_t atel_synth_series(struct atel_synth *s, uint8_t mtype, const char *name, uint32_t bounds_id, ...)
{
	const char *kv[2 * ATEL_LABELS_MAX + 2];
	unsigned n = 0;
	va_list ap;

	va_start(ap, bounds_id);
	for (;;) {
		const char *k = va_arg(ap, const char *), *v;
		if (!k || n >= ATEL_LABELS_MAX + 1)
			break;
		v = va_arg(ap, const char *);
		kv[2 * n] = k;
		kv[2 * n + 1] = v ? v : "";
		n++;
	}
	va_end(ap);
	return atel_synth_series_v(s, mtype, name, bounds_id, n, kv);
}

uint64_t atel_synth_sample(struct atel_synth *s, uint32_t series, double v, bool set)
{
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_SAMPLE, series, 0, &pos);
	r->sample.value = v;
	r->h.flags = set ? ATEL_RECF_SET : 0;
	return pos;
}

uint64_t atel_synth_span_start(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const uint8_t parent[8], const char *name, uint8_t kind)
{
	uint32_t nid = atel_synth_str(s, name);
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_SPAN_START, nid, 0, &pos);
	memcpy(r->span_start.trace_id, trace, 16);
	memcpy(r->span_start.span_id, span, 8);
	if (parent)
		memcpy(r->span_start.parent_id, parent, 8);
	r->span_start.kind = kind;
	r->span_start.trace_flags = 1;
	return pos;
}

uint64_t atel_synth_span_end(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], uint8_t status,
			     const char *msg)
{
	size_t len = msg ? strlen(msg) : 0;
	unsigned cont = atel__cont_for((unsigned)len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_SPAN_END, 0, cont, &pos);
	memcpy(r->span_end.trace_id, trace, 16);
	memcpy(r->span_end.span_id, span, 8);
	r->span_end.status = status;
	r->span_end.msg_len = (uint16_t)len;
	if (len)
		spill(r, r->span_end.msg, ATEL_MSG_INLINE, msg, len);
	return pos;
}

static union atel_slot *attr(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			     uint8_t vtype, unsigned cont, bool event_attr, uint64_t *pos)
{
	uint32_t kid = atel_synth_str(s, key);
	union atel_slot *r = rec(s, ATEL_REC_SPAN_ATTR, kid, cont, pos);
	memcpy(r->span_attr.trace_id, trace, 16);
	memcpy(r->span_attr.span_id, span, 8);
	r->span_attr.vtype = vtype;
	r->h.flags = event_attr ? ATEL_RECF_EVENT_ATTR : 0;
	return r;
}

uint64_t atel_synth_attr_str(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			     const char *value, bool event_attr)
{
	size_t len = strlen(value);
	unsigned cont = atel__cont_for((unsigned)len, ATEL_ATTR_STR_INLINE, ATEL_RECORD_SIZE);
	uint64_t pos;
	union atel_slot *r = attr(s, trace, span, key, ATEL_VT_STR, cont, event_attr, &pos);
	r->span_attr.vlen = (uint16_t)len;
	spill(r, r->span_attr.v.s, ATEL_ATTR_STR_INLINE, value, len);
	return pos;
}

uint64_t atel_synth_attr_int(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			     int64_t value, bool event_attr)
{
	uint64_t pos;
	attr(s, trace, span, key, ATEL_VT_INT, 0, event_attr, &pos)->span_attr.v.i = value;
	return pos;
}

uint64_t atel_synth_attr_double(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
				const char *key, double value, bool event_attr)
{
	uint64_t pos;
	attr(s, trace, span, key, ATEL_VT_DOUBLE, 0, event_attr, &pos)->span_attr.v.d = value;
	return pos;
}

uint64_t atel_synth_attr_bool(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			      bool value, bool event_attr)
{
	uint64_t pos;
	attr(s, trace, span, key, ATEL_VT_BOOL, 0, event_attr, &pos)->span_attr.v.b = value ? 1 : 0;
	return pos;
}

uint64_t atel_synth_span_event(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const char *name, uint16_t nattrs)
{
	uint32_t nid = atel_synth_str(s, name);
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_SPAN_EVENT, nid, 0, &pos);
	memcpy(r->span_event.trace_id, trace, 16);
	memcpy(r->span_event.span_id, span, 8);
	r->span_event.nattrs = nattrs;
	return pos;
}

uint64_t atel_synth_span_error(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const char *type, const char *msg)
{
	uint32_t tid = type ? atel_synth_str(s, type) : 0;
	size_t len = msg ? strlen(msg) : 0;
	unsigned cont = atel__cont_for((unsigned)len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_SPAN_ERROR, tid, cont, &pos);
	memcpy(r->span_error.trace_id, trace, 16);
	memcpy(r->span_error.span_id, span, 8);
	r->span_error.msg_len = (uint16_t)len;
	if (len)
		spill(r, r->span_error.msg, ATEL_MSG_INLINE, msg, len);
	return pos;
}

uint64_t atel_synth_loss(struct atel_synth *s, uint32_t cause, uint64_t count, uint64_t first_ns, uint64_t last_ns)
{
	uint64_t pos;
	union atel_slot *r = rec(s, ATEL_REC_LOSS, cause, 0, &pos);
	r->loss.count = count;
	r->loss.first_ns = first_ns;
	r->loss.last_ns = last_ns;
	return pos;
}

uint64_t atel_synth_raw(struct atel_synth *s, const union atel_slot *r, unsigned n)
{
	uint64_t pos = atel_synth_pos(s);
	memcpy(take(s, n), r, n * sizeof(*r));
	return pos;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void atel_synth_ids(uint64_t seed, uint8_t trace[16], uint8_t span[8])
{
	uint64_t a = mix(seed) | 1, b = mix(seed + 1), c = mix(seed + 2) | 1;
	if (trace) {
		memcpy(trace, &a, 8);
		memcpy(trace + 8, &b, 8);
	}
	if (span)
		memcpy(span, &c, 8);
}

void atel_synth_agent_workload(struct atel_synth *s, uint64_t seed, uint64_t samples, uint64_t span_every)
{
	static const char *const agent_types[] = { "coder", "planner", "reviewer", "tester" };
	static const char *const tools[] = { "grep", "read_file", "edit", "bash", "web_fetch", "search" };
	static const char *const models[] = { "claude-sonnet", "claude-haiku" };
	static const double dur_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	uint32_t exec_total[4], exec_dur[4], tokens[4][2], tool_calls[6], tool_dur[6], tool_ok[6], ctx_util[4],
		queue;
	uint32_t b = atel_synth_bounds(s, dur_bounds, sizeof(dur_bounds) / sizeof(dur_bounds[0]));
	uint64_t x = seed, step = s->ts_step;

	for (int i = 0; i < 4; i++) {
		exec_total[i] = atel_synth_series(s, ATEL_MT_COUNTER, "agent_execution_total", 0, "agent_type",
						  agent_types[i], "status", "success", NULL);
		exec_dur[i] = atel_synth_series(s, ATEL_MT_HISTOGRAM, "agent_execution_duration_seconds", b,
						"agent_type", agent_types[i], NULL);
		for (int m = 0; m < 2; m++)
			tokens[i][m] = atel_synth_series(s, ATEL_MT_COUNTER, "agent_tokens_used", 0, "agent_type",
							 agent_types[i], "model", models[m], NULL);
		ctx_util[i] = atel_synth_series(s, ATEL_MT_GAUGE, "context_window_utilization", 0, "agent_id",
						agent_types[i], NULL);
	}
	for (int i = 0; i < 6; i++) {
		tool_calls[i] = atel_synth_series(s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", tools[i], NULL);
		tool_dur[i] = atel_synth_series(s, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", b, "tool",
						tools[i], NULL);
		tool_ok[i] = atel_synth_series(s, ATEL_MT_COUNTER, "tool_call_success_total", 0, "tool", tools[i],
					       NULL);
	}
	queue = atel_synth_series(s, ATEL_MT_GAUGE, "task_queue_size", 0, NULL);

	for (uint64_t n = 0; n < samples;) {
		unsigned a, t, m;
		x = mix(x);
		a = (unsigned)(x % 4);
		t = (unsigned)((x >> 8) % 6);
		m = (unsigned)((x >> 16) % 2);
		/* producer clock reads: a few microseconds apart, jittered */
		s->ts_step = step + ((x >> 24) % 4096);
		/* one tool call: counter, duration (ms resolution), success */
		atel_synth_sample(s, tool_calls[t], 1.0, false);
		atel_synth_sample(s, tool_dur[t], (double)((x >> 32) % 2000) / 1000.0, false);
		atel_synth_sample(s, tool_ok[t], 1.0, false);
		n += 3;
		if ((x >> 40) % 4 == 0) { /* an agent step finished */
			atel_synth_sample(s, exec_total[a], 1.0, false);
			atel_synth_sample(s, exec_dur[a], (double)((x >> 44) % 30000) / 1000.0, false);
			atel_synth_sample(s, tokens[a][m], (double)(100 + (x >> 48) % 4000), false);
			atel_synth_sample(s, ctx_util[a], (double)((x >> 52) % 100) / 100.0, true);
			atel_synth_sample(s, queue, (double)((x >> 58) % 16), true);
			n += 5;
		}
		if (span_every && n % span_every < 8) {
			uint8_t tr[16], root[8], child[8];
			atel_synth_ids(x, tr, root);
			atel_synth_ids(x + 7, NULL, child);
			atel_synth_span_start(s, tr, root, NULL, "agent.execute", 1);
			atel_synth_attr_str(s, tr, root, "agent.type", agent_types[a], false);
			atel_synth_span_start(s, tr, child, root, "tool.call", 3);
			atel_synth_attr_str(s, tr, child, "tool.name", tools[t], false);
			atel_synth_attr_int(s, tr, child, "tool.bytes", (int64_t)(x % 100000), false);
			atel_synth_span_event(s, tr, child, "retry", 1);
			atel_synth_attr_int(s, tr, child, "attempt", 2, true);
			if (x % 5 == 0) {
				atel_synth_span_error(s, tr, child, "TimeoutError", "tool call exceeded its 30 s budget");
				atel_synth_span_end(s, tr, child, 2, "timeout");
			} else {
				atel_synth_span_end(s, tr, child, 1, NULL);
			}
			atel_synth_span_end(s, tr, root, 1, NULL);
		}
	}
	s->ts_step = step;
}

uint64_t atel_synth_cut(const struct atel_synth *s, uint64_t i, uint64_t max)
{
	uint64_t j = i;
	while (j < s->n) {
		uint64_t n = 1u + s->slots[j].h.cont;
		if (j + n - i > max && j > i)
			break;
		j += n;
	}
	if (j > s->n)
		j = s->n;
	return j - i;
}

int atel_synth_write_log(const char *dir, uint64_t instance, struct atel_synth *const *rings, unsigned nrings,
			 const struct atel_synth_log_opts *o)
{
	struct atel_synth_log_opts def = { 0 };
	struct atel_seglog_opts lo;
	struct atel_seglog *l = NULL;
	uint64_t *at = calloc(nrings ? nrings : 1, sizeof(uint64_t));
	char err[256];
	bool more = true;
	int rc;

	if (!at)
		return -ENOMEM;
	if (!o)
		o = &def;
	memset(&lo, 0, sizeof(lo));
	lo.segments_dir = dir;
	lo.rotate_bytes = o->rotate_bytes;
	lo.frame_bytes = o->frame_bytes;
	lo.zstd_level = o->zstd_level;
	lo.io = o->io;
	lo.async_io = &atel__seglog_uring; /* as ateld: io_uring where the kernel allows */
	lo.encoding = o->encoding;
	lo.shm_instance = instance;
	lo.ring_count = o->ring_count;
	for (unsigned i = 0; i < nrings && !o->ring_count; i++)
		if (rings[i]->ring + 1 > lo.ring_count)
			lo.ring_count = rings[i]->ring + 1;
	if (!lo.ring_count)
		lo.ring_count = 1;
	rc = atel__seglog_open(&l, &lo, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "synth: %s\n", err);
		free(at);
		return rc;
	}
	while (more && rc == 0) {
		more = false;
		for (unsigned i = 0; i < nrings && rc == 0; i++) {
			const struct atel_synth *s = rings[i];
			uint64_t n = atel_synth_cut(s, at[i], o->batch ? o->batch : 4096);
			const union atel_slot *a = &s->slots[at[i]];
			if (!n)
				continue;
			if (o->split_pieces && n > 1)
				rc = atel__seglog_append(l, s->ring, s->generation, s->base_pos + at[i], a, n / 2,
							 a + n / 2, n - n / 2);
			else
				rc = atel__seglog_append(l, s->ring, s->generation, s->base_pos + at[i], a, n, NULL, 0);
			at[i] += n;
			more = true;
		}
		if (rc == 0 && o->flush_each_round)
			rc = atel__seglog_flush(l);
	}
	if (rc == 0)
		rc = atel__seglog_flush(l);
	{
		int r2 = atel__seglog_close(l);
		if (rc == 0)
			rc = r2;
	}
	free(at);
	return rc;
}

int atel_synth_tmpdir(char *out, size_t len, const char *tag)
{
	const char *base = getenv("TMPDIR");
	int n = snprintf(out, len, "%s/atel-%s-%d-XXXXXX", base && *base ? base : "/tmp", tag, (int)getpid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return mkdtemp(out) ? 0 : -errno;
}

void atel_synth_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char p[4096];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			atel_synth_rmtree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}
