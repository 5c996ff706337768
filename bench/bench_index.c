/* SPDX-License-Identifier: MIT */
/*
 * bench_index.c - the SQLite index: how many rows per second the index writer
 * stores on a realistic agent mix, and how far the indexer thread falls behind
 * a log that is being written at a high rate (and how fast it catches up).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"
#include "daemon.h"
#include "index.h"
#include "seglog.h"
#include "uring.h"

#define NSERIES 64u
#define T0 1700000000000000000ull

static const double dur_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const char *const agent_types[] = { "coder", "planner", "reviewer", "tester" };
static const char *const tools[] = { "Read", "Write", "Bash", "Grep" };

static void rmtree(const char *dir)
{
	char cmd[600];

	/* bench-only cleanup of a directory we created under /tmp */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_index: could not remove %s\n", dir);
}

/* ---- 1: index writer throughput on prebuilt events ------------------------ */

struct mix {
	struct atel_dec_series series[NSERIES];
	struct atel_event *ev;
	size_t n;
};

static void mix_series(struct mix *m)
{
	for (uint32_t i = 0; i < NSERIES; i++) {
		struct atel_dec_series *s = &m->series[i];

		memset(s, 0, sizeof(*s));
		s->id = i + 1;
		s->key_hash = 0x9e3779b97f4a7c15ull * (i + 1);
		s->nlabels = 2;
		switch (i % 4) {
		case 0:
			s->mtype = ATEL_MT_COUNTER;
			s->name = "tool_calls_total";
			s->keys[0] = "status";
			s->values[0] = (i / 4) % 2 ? "success" : "failure";
			s->keys[1] = "tool";
			s->values[1] = tools[(i / 8) % 4];
			break;
		case 1:
			s->mtype = ATEL_MT_HISTOGRAM;
			s->name = "agent_execution_duration_seconds";
			s->keys[0] = "agent_type";
			s->values[0] = agent_types[(i / 4) % 4];
			s->keys[1] = "phase";
			s->values[1] = (i / 16) % 2 ? "plan" : "code";
			s->nbounds = sizeof(dur_bounds) / sizeof(dur_bounds[0]);
			s->bounds = dur_bounds;
			break;
		case 2:
			s->mtype = ATEL_MT_GAUGE;
			s->name = "context_window_utilization";
			s->keys[0] = "agent_id";
			s->values[0] = agent_types[(i / 4) % 4];
			s->keys[1] = "session_id";
			s->values[1] = (i / 16) % 2 ? "s-1" : "s-2";
			break;
		default:
			s->mtype = ATEL_MT_COUNTER;
			s->name = "agent_tokens_used";
			s->keys[0] = "agent_type";
			s->values[0] = agent_types[(i / 4) % 4];
			s->keys[1] = "model";
			s->values[1] = (i / 16) % 2 ? "opus" : "sonnet";
			break;
		}
	}
}

static void set_ids(uint8_t trace[16], uint8_t span[8], uint64_t t, uint64_t s)
{
	memset(trace, 0, 16);
	memcpy(trace, &t, 8);
	trace[15] = 1;
	memcpy(span, &s, 8);
	span[7] |= 0x80;
}

/* ~70 % metric samples, ~30 % span records (trees of a root and 3 children,
 * 2 attributes each, an event every 10th span, an error every 20th). */
static int mix_build(struct mix *m, size_t n)
{
	uint64_t ts = T0, span_no = 0, trace_no = 0;
	size_t i = 0;

	mix_series(m);
	m->ev = calloc(n + 64, sizeof(*m->ev));
	if (!m->ev)
		return -ENOMEM;
	while (i < n) {
		for (int k = 0; k < 28 && i < n; k++, i++) {
			struct atel_event *e = &m->ev[i];
			const struct atel_dec_series *s = &m->series[(i * 7) % NSERIES];

			e->kind = ATEL_EV_SAMPLE;
			e->ring = (uint32_t)(i % 8);
			e->generation = 1;
			e->seq = i;
			e->ts_ns = ts += 1000000; /* 1 ms: many rollup buckets */
			e->pid = 1000 + (int32_t)e->ring;
			e->tid = e->pid;
			e->comm = "agent";
			e->sample.series = s;
			e->sample.value = s->mtype == ATEL_MT_HISTOGRAM ? (double)(i % 1000) / 400.0 : (double)(i % 50);
			e->sample.set = s->mtype == ATEL_MT_GAUGE;
		}
		/* one span tree: 4 spans x (start, 2 attrs, end) + extras */
		trace_no++;
		for (int sp = 0; sp < 4 && i + 8 < n; sp++) {
			uint64_t sid = ++span_no;
			uint8_t tr[16], id[8], parent[8];
			struct atel_event *e;

			set_ids(tr, id, trace_no, sid);
			set_ids(tr, parent, trace_no, sid - (uint64_t)sp);
			e = &m->ev[i++];
			e->kind = ATEL_EV_SPAN_START;
			e->ts_ns = ts += 1000;
			memcpy(e->span_start.trace_id, tr, 16);
			memcpy(e->span_start.span_id, id, 8);
			if (sp)
				memcpy(e->span_start.parent_id, parent, 8);
			e->span_start.kind = 1;
			e->span_start.name = sp ? "coder-execution" : "orchestration-session";
			for (int a = 0; a < 2; a++) {
				e = &m->ev[i++];
				e->kind = ATEL_EV_SPAN_ATTR;
				e->ts_ns = ts += 1000;
				memcpy(e->span_attr.trace_id, tr, 16);
				memcpy(e->span_attr.span_id, id, 8);
				e->span_attr.key = a ? "tokens" : "agent_id";
				e->span_attr.v.vtype = a ? ATEL_VT_INT : ATEL_VT_STR;
				e->span_attr.v.i = (int64_t)sid * 10;
				e->span_attr.v.s = "coder-123";
				e->span_attr.v.slen = 9;
			}
			if (sid % 10 == 0) {
				e = &m->ev[i++];
				e->kind = ATEL_EV_SPAN_EVENT;
				e->ts_ns = ts += 1000;
				memcpy(e->span_event.trace_id, tr, 16);
				memcpy(e->span_event.span_id, id, 8);
				e->span_event.name = "code_generation_started";
			}
			if (sid % 20 == 0) {
				e = &m->ev[i++];
				e->kind = ATEL_EV_SPAN_ERROR;
				e->ts_ns = ts += 1000;
				memcpy(e->span_error.trace_id, tr, 16);
				memcpy(e->span_error.span_id, id, 8);
				e->span_error.type = "TimeoutError";
				e->span_error.msg = "tool timed out";
				e->span_error.msg_len = 14;
			}
			e = &m->ev[i++];
			e->kind = ATEL_EV_SPAN_END;
			e->ts_ns = ts += 1000;
			memcpy(e->span_end.trace_id, tr, 16);
			memcpy(e->span_end.span_id, id, 8);
			e->span_end.status = 1;
			e->span_end.msg = "";
		}
	}
	m->n = i;
	return 0;
}

static int bench_throughput(const struct bench_opts *o, const char *dir)
{
	struct mix m;
	struct atel_ixw_opts wo = { .rollup_interval_s = 60 };
	struct atel_ixw *w = NULL;
	char path[600], err[512], method[256];
	size_t n = o->quick ? 100000 : 600000, samples = 0;
	uint64_t t0, t1;
	double secs;
	int rc;

	if ((rc = mix_build(&m, n)))
		return rc;
	for (size_t i = 0; i < m.n; i++)
		samples += m.ev[i].kind == ATEL_EV_SAMPLE;
	snprintf(path, sizeof(path), "%s/throughput.db", dir);
	rc = atel__ixw_open(&w, path, &wo, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "bench_index: %s\n", err);
		free(m.ev);
		return rc;
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < m.n && !rc; i += ATEL_IX_BATCH_EVENTS) {
		struct atel_log_pos pos = { 1, i, 0 };

		rc = atel__ixw_begin(w);
		for (size_t j = i; j < m.n && j < i + ATEL_IX_BATCH_EVENTS && !rc; j++)
			rc = atel__ixw_apply(w, &m.ev[j]);
		if (!rc)
			rc = atel__ixw_commit(w, &pos);
	}
	t1 = bench_now_ns();
	secs = (double)(t1 - t0) / 1e9;
	if (!rc) {
		snprintf(method, sizeof(method),
			 "%zu events (%.0f%% samples, span trees), WAL synchronous=NORMAL, %u events/txn, disk file",
			 m.n, 100.0 * (double)samples / (double)m.n, ATEL_IX_BATCH_EVENTS);
		bench_row("index", "index writer rows/s", (double)atel__ixw_rows(w) / secs, "rows/s", -1, NULL, -1,
			  method);
		bench_row("index", "index writer events/s", (double)m.n / secs, "events/s", -1, NULL, -1, method);
	}
	atel__ixw_close(w);
	free(m.ev);
	return rc;
}

/* ---- 2: lag of the indexer thread behind a log written at a high rate ------ */

struct rawlog {
	union atel_slot *slots;
	size_t n, cap;
	uint64_t ts;
};

static union atel_slot *raw_take(struct rawlog *r)
{
	if (r->n == r->cap) {
		size_t nc = r->cap ? r->cap * 2 : 4096;
		union atel_slot *ns = realloc(r->slots, nc * sizeof(*ns));

		if (!ns)
			return NULL;
		r->slots = ns;
		r->cap = nc;
	}
	memset(&r->slots[r->n], 0, sizeof(r->slots[0]));
	r->slots[r->n].h.ts_ns = r->ts += 1000;
	return &r->slots[r->n++];
}

static uint32_t raw_str(struct rawlog *r, uint32_t id, const char *s)
{
	union atel_slot *x = raw_take(r);

	if (x) {
		x->h.type = ATEL_REC_STRDEF;
		x->h.id = id;
		x->strdef.len = (uint16_t)strlen(s);
		memcpy(x->strdef.bytes, s, x->strdef.len);
	}
	return id;
}

/* A producer stream of one ring: BEGIN, definitions of 16 series, then samples. */
static int raw_build(struct rawlog *r, size_t samples)
{
	union atel_slot *x;
	uint32_t sid = 1;

	memset(r, 0, sizeof(*r));
	r->ts = T0;
	if (!(x = raw_take(r)))
		return -ENOMEM;
	x->h.type = ATEL_REC_BEGIN;
	x->h.id = 1;
	x->begin.pid = 4242;
	x->begin.tid = 4242;
	x->begin.start = 1;
	memcpy(x->begin.comm, "bench", 5);
	raw_str(r, 1, "tool_calls_total");
	raw_str(r, 2, "tool");
	for (uint32_t i = 0; i < 16; i++) {
		char v[16];

		snprintf(v, sizeof(v), "tool-%u", i);
		raw_str(r, 10 + i, v);
		if (!(x = raw_take(r)))
			return -ENOMEM;
		x->h.type = ATEL_REC_SERIESDEF;
		x->h.id = sid++;
		x->seriesdef.mtype = ATEL_MT_COUNTER;
		x->seriesdef.nlabels = 1;
		x->seriesdef.name_id = 1;
		x->seriesdef.pairs[0].key_id = 2;
		x->seriesdef.pairs[0].value_id = 10 + i;
	}
	for (size_t i = 0; i < samples; i++) {
		if (!(x = raw_take(r)))
			return -ENOMEM;
		x->h.type = ATEL_REC_SAMPLE;
		x->h.id = 1 + (uint32_t)(i % 16);
		x->sample.value = 1;
	}
	return 0;
}

static int64_t cursor_events(const char *db_path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT events FROM telemetry_index_cursor", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static int bench_lag(const struct bench_opts *o, const char *dir)
{
	const uint64_t rate = 100000;                       /* records/s offered */
	const double secs = o->quick ? 1.0 : 3.0;
	const size_t samples = (size_t)((double)rate * secs);
	struct atel_config cfg;
	struct atel_daemon d;
	struct atel_seglog *l = NULL;
	struct atel_seglog_opts lo;
	struct atel_indexer *ix = NULL;
	struct rawlog r;
	struct bench_hist *h = bench_hist_new(false);
	char err[512], method[256];
	uint64_t t0, tend, tdone = 0, lag_max = 0, nsamp = 0;
	int64_t want;
	int rc;

	if (!h)
		return -ENOMEM;
	if ((rc = raw_build(&r, samples))) {
		bench_hist_free(h);
		return rc;
	}
	atel__config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = strdup(dir);
	cfg.retention.metrics_days = cfg.retention.traces_days = cfg.retention.aggregates_days = 0;
	free(cfg.log_level);
	cfg.log_level = strdup("error");
	if ((rc = atel__daemon_init(&d, &cfg)))
		goto out_cfg;
	memset(&lo, 0, sizeof(lo));
	lo.segments_dir = d.segments_dir;
	lo.shm_instance = 77;
	lo.ring_count = 1;
	lo.stats = &d.stats.log;
	lo.async_io = &atel__seglog_uring; /* as ateld writes */
	if ((rc = atel__seglog_open(&l, &lo, err, sizeof(err)))) {
		fprintf(stderr, "bench_index: %s\n", err);
		goto out_d;
	}
	if ((rc = atel__indexer_start(&ix, &d)))
		goto out_l;
	/* the definitions, then samples paced at `rate`, 1000 per append+flush
	 * (what the drain thread does every 10 ms at that rate) */
	t0 = bench_now_ns();
	for (size_t at = 0; at < r.n && !rc;) {
		size_t k = r.n - at < 1000 ? r.n - at : 1000;
		uint64_t due = t0 + (uint64_t)((double)at * 1e9 / (double)rate), now;
		uint64_t lag;

		while ((now = bench_now_ns()) < due) {
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
		rc = atel__seglog_append(l, 0, 1, at, &r.slots[at], k, NULL, 0);
		if (!rc)
			rc = atel__seglog_flush(l);
		at += k;
		atomic_fetch_add_explicit(&d.stats.records_drained, k, memory_order_relaxed);
		lag = atomic_load_explicit(&d.stats.indexer_lag_records, memory_order_relaxed);
		bench_hist_add(h, lag);
		nsamp++;
		if (lag > lag_max)
			lag_max = lag;
	}
	tend = bench_now_ns();
	/* events: every record but the definitions (BEGIN and samples) */
	want = (int64_t)(samples + 1);
	for (int i = 0; i < 60000 && !rc; i++) {
		if (cursor_events(d.db_path) >= want) {
			tdone = bench_now_ns();
			break;
		}
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	atel__indexer_stop(ix);
	if (!rc && !tdone) {
		fprintf(stderr, "bench_index: the indexer did not catch up with the log within 60 s\n");
		rc = -ETIMEDOUT;
	}
	if (!rc) {
		snprintf(method, sizeof(method),
			 "%zu counter samples offered at %" PRIu64 " rec/s for %.1f s through the log writer; "
			 "stats.indexer_lag_records sampled %" PRIu64 " times",
			 samples, rate, secs, nsamp);
		bench_row("index", "indexer lag p50 while following", bench_hist_pct_ns(h, 0.5), "records", -1, NULL,
			  -1, method);
		bench_row("index", "indexer lag max while following", (double)lag_max, "records", -1, NULL, -1,
			  method);
		bench_row("index", "indexer catch-up after the last write", (double)(tdone - tend) / 1e6, "ms", -1,
			  NULL, -1, method);
	}
out_l:
	atel__seglog_close(l);
out_d:
	atel__daemon_fini(&d);
out_cfg:
	atel__config_free(&cfg);
	free(r.slots);
	bench_hist_free(h);
	return rc;
}

static int run_index(const struct bench_opts *o)
{
	char dir[256];
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/atel-bench-index-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(dir))
		return -errno;
	rc = bench_throughput(o, dir);
	if (!rc)
		rc = bench_lag(o, dir);
	rmtree(dir);
	return rc;
}

BENCH_SECTION("index", 25, "SQLite index: writer rows/s on an agent mix, indexer lag behind a live log", run_index)
