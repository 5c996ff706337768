/* SPDX-License-Identifier: MIT */
/*
 * Section "query": the query engine and offline replay.
 *   - aggregate(): 1000 points of one hour into 5-minute buckets (avg and
 *     p95), docs/reference.md's "Query (1000 metrics): ~10 ms"; target < 0.1 ms;
 *   - summarize(): count/min/max/avg/stddev/p50/p95/p99 over 1M points;
 *   - replay: segment files written by the real log writer (seglog) with
 *     realistic samples, read back (a) as decoded events through the log
 *     reader (what `atel replay` does per record), (b) by the frame/gap pass
 *     of replay (segscan), beside (c) raw zstd decompression of the same
 *     frames in the same run; target >= 20M records/s on one core.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "bench.h"
#include "decode.h"
#include "logread.h"
#include "query.h"
#include "segformat.h"
#include "segscan.h"
#include "seglog.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* CPU time of this thread: the machine is shared, and wall time would charge
 * other processes' slices to the function under test */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bench_aggregate(const struct bench_opts *o)
{
	enum { N = 1000 };
	struct atel_qpoint in[N], out[N];
	uint64_t t0 = 1700000000ull * 1000000000ull;
	for (int i = 0; i < N; i++)
		in[i] = (struct atel_qpoint){ t0 + (uint64_t)(urand() * 3600e9), urand() * 10 };
	struct atel_qpoint sorted[N];
	memcpy(sorted, in, sizeof(in));
	atel_q_sort_points(sorted, N);
	unsigned iters = o->quick ? 2000 : 20000;
	const enum atel_qagg aggs[3] = { ATEL_QAGG_AVG, ATEL_QAGG_P95, ATEL_QAGG_AVG };
	for (int k = 0; k < 3; k++) {
		const struct atel_qpoint *src = k == 2 ? sorted : in;
		size_t nout = 0;
		double best = INFINITY;
		atel_q_aggregate(src, N, 300ull * 1000000000ull, aggs[k], false, out, &nout); /* warm */
		for (int rep = 0; rep < 5; rep++) {
			uint64_t a = cpu_ns();
			for (unsigned i = 0; i < iters; i++) {
				atel_q_aggregate(src, N, 300ull * 1000000000ull, aggs[k], false, out, &nout);
				bench_keep(out[0].v);
			}
			double ns = (double)(cpu_ns() - a) / iters;
			if (ns < best)
				best = ns;
		}
		char fig[96];
		snprintf(fig, sizeof(fig), "aggregate %s, 1000 %s points -> 12 buckets", atel_q_agg_name(aggs[k]),
			 k == 2 ? "sorted" : "unsorted");
		bench_row("query", fig, best / 1000.0, "us", 10000.0, "< 100 us", best < 100000.0,
			  "thread CPU time per call, best of 5 batches; baseline = docs/reference.md's ~10 ms per query");
	}
	return 0;
}

static int bench_summarize(const struct bench_opts *o)
{
	size_t n = o->quick ? 200000 : 1000000;
	double *v = malloc(n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		v[i] = urand() * 1000;
	struct atel_qsummary s;
	unsigned iters = o->quick ? 3 : 10;
	atel_q_summarize(v, n, &s);
	double ms = INFINITY;
	for (unsigned i = 0; i < iters; i++) {
		uint64_t a = cpu_ns();
		atel_q_summarize(v, n, &s);
		bench_keep(s.p99);
		double t = (double)(cpu_ns() - a) / 1e6;
		if (t < ms)
			ms = t;
	}
	char fig[64];
	snprintf(fig, sizeof(fig), "summarize %zu points (8 statistics)", n);
	bench_row("query", fig, ms, "ms", -1, NULL, -1, "thread CPU time, best of repeated calls; percentiles by O(n) selection");
	free(v);
	return 0;
}

/* ---- segment files for the replay rates ------------------------------------ */

static void strdef(union atel_slot *s, uint32_t id, const char *str, uint64_t ts)
{
	memset(s, 0, sizeof(*s));
	s->strdef.h.type = ATEL_REC_STRDEF;
	s->strdef.h.id = id;
	s->strdef.h.ts_ns = ts;
	s->strdef.len = (uint16_t)strlen(str);
	memcpy(s->strdef.bytes, str, strlen(str)); /* every string here fits inline */
}

/* ring r: BEGIN, definitions of 8 counter series, then `samples` samples. */
static int write_ring(struct atel_seglog *l, struct atel_decoder *dec, uint32_t ring, uint64_t samples, uint64_t ts)
{
	enum { BATCH = 4096 };
	union atel_slot *buf = calloc(BATCH, sizeof(*buf));
	if (!buf)
		return -ENOMEM;
	size_t n = 0;
	uint64_t pos = 0;
	memset(&buf[n], 0, sizeof(buf[0]));
	buf[n].begin.h.type = ATEL_REC_BEGIN;
	buf[n].begin.h.id = 1;
	buf[n].begin.h.ts_ns = ts;
	buf[n].begin.pid = 1000 + (int)ring;
	buf[n].begin.tid = 1000 + (int)ring;
	buf[n].begin.ring = ring;
	memcpy(buf[n].begin.comm, "bench", 5);
	n++;
	static const char *const tools[8] = { "Read", "Write", "Edit", "Bash", "Grep", "Glob", "WebFetch", "Task" };
	strdef(&buf[n++], 1, "tool_calls_total", ts);
	strdef(&buf[n++], 2, "tool", ts);
	strdef(&buf[n++], 3, "status", ts);
	strdef(&buf[n++], 4, "ok", ts);
	for (uint32_t t = 0; t < 8; t++)
		strdef(&buf[n++], 5 + t, tools[t], ts);
	for (uint32_t t = 0; t < 8; t++) {
		union atel_slot *s = &buf[n++];
		memset(s, 0, sizeof(*s));
		s->seriesdef.h.type = ATEL_REC_SERIESDEF;
		s->seriesdef.h.id = 1 + t;
		s->seriesdef.h.ts_ns = ts;
		s->seriesdef.mtype = ATEL_MT_COUNTER;
		s->seriesdef.nlabels = 2;
		s->seriesdef.name_id = 1;
		s->seriesdef.pairs[0] = (struct atel_label_pair){ 3, 4 };     /* status=ok */
		s->seriesdef.pairs[1] = (struct atel_label_pair){ 2, 5 + t }; /* tool=... */
	}
	struct atel_event ev;
	for (size_t i = 0; i < n; i++)
		atel__decode(dec, ring, i, &buf[i], 1, &ev);
	int rc = 0;
	for (uint64_t k = 0; k < samples && rc == 0; k++) {
		union atel_slot *s = &buf[n++];
		memset(s, 0, sizeof(*s));
		s->sample.h.type = ATEL_REC_SAMPLE;
		s->sample.h.id = 1 + (uint32_t)(k & 7);
		s->sample.h.ts_ns = ts + k * 1000;
		s->sample.value = 1;
		if (n == BATCH || k + 1 == samples) {
			rc = atel__seglog_append(l, ring, 1, pos, buf, n, NULL, 0);
			pos += n;
			n = 0;
			if (rc == 0)
				rc = atel__seglog_flush(l) < 0 ? -EIO : 0;
		}
	}
	free(buf);
	return rc;
}

static int make_log(const char *dir, uint64_t records)
{
	struct atel_decoder *dec = atel__decoder_new();
	struct atel_seglog *l = NULL;
	char err[256];
	if (!dec)
		return -ENOMEM;
	struct atel_seglog_opts so = { .segments_dir = dir, .zstd_level = 3, .io = ATEL_IO_PWRITEV, .shm_instance = 7,
				       .ring_count = 4, .defs = dec, .rotate_bytes = 64ull << 20 };
	int rc = atel__seglog_open(&l, &so, err, sizeof(err));
	if (rc < 0) {
		bench_note("query: cannot write segments in %s: %s", dir, err);
		atel__decoder_free(dec);
		return rc;
	}
	for (uint32_t r = 0; r < 4 && rc == 0; r++)
		rc = write_ring(l, dec, r, records / 4, 1700000000000000000ull + r);
	int rc2 = atel__seglog_close(l);
	atel__decoder_free(dec);
	return rc ? rc : rc2;
}

/* Raw decompression of every data frame in dir: bytes out. */
static int64_t raw_zstd(const char *dir, uint64_t *frames)
{
	uint64_t *seqs = NULL;
	int nf = atel__seg_list(dir, &seqs);
	if (nf < 0)
		return nf;
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	uint8_t *out = malloc(ATEL_SEG_FRAME_MAX);
	int64_t total = 0;
	for (int i = 0; i < nf && dctx && out; i++) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/%016llx%s", dir, (unsigned long long)seqs[i], ATEL_SEG_SUFFIX);
		int fd = open(p, O_RDONLY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		uint8_t *b = malloc((size_t)st.st_size + 1);
		ssize_t got = b ? read(fd, b, (size_t)st.st_size) : -1;
		close(fd);
		size_t off = 0;
		while (got > 0 && off < (size_t)got) {
			uint64_t content, need;
			bool skippable;
			const char *why;
			int64_t fs = atel__seg_frame_size(b + off, (size_t)got - off, &content, &skippable, &need, &why);
			if (fs <= 0)
				break;
			if (!skippable) {
				size_t r = ZSTD_decompressDCtx(dctx, out, ATEL_SEG_FRAME_MAX, b + off, (size_t)fs);
				if (!ZSTD_isError(r)) {
					total += (int64_t)r;
					(*frames)++;
				}
			}
			off += (size_t)fs;
		}
		free(b);
	}
	free(out);
	ZSTD_freeDCtx(dctx);
	free(seqs);
	return total;
}

static int bench_replay(const struct bench_opts *o)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "/tmp/atel-bench-query-%ld", (long)getpid());
	uint64_t records = o->quick ? 2000000 : 8000000;
	int rc = make_log(dir, records);
	if (rc < 0)
		goto out;
	/* (a) decoded events through the log reader */
	double best_ev = 0, best_scan = 0, best_raw = 0;
	uint64_t events = 0, raw_bytes = 0, frames = 0;
	for (int rep = 0; rep < 3; rep++) {
		struct atel_log_reader_opts ro = { .segments_dir = dir };
		struct atel_log_reader *r = NULL;
		if ((rc = atel__log_open(&r, &ro)) < 0)
			goto out;
		struct atel_event ev;
		uint64_t n = 0, a = cpu_ns();
		double sum = 0;
		while (atel__log_next(r, &ev, NULL) == 1) {
			n++;
			if (ev.kind == ATEL_EV_SAMPLE)
				sum += ev.sample.value;
		}
		double s = (double)(cpu_ns() - a) / 1e9;
		bench_keep(sum);
		struct atel_log_read_stats st;
		atel__log_stats(r, &st);
		atel__log_close(r);
		events = n;
		if (st.records / s > best_ev)
			best_ev = (double)st.records / s;
		/* (b) replay's frame/gap pass */
		struct atel_segscan sc = { 0 };
		char err[256];
		a = cpu_ns();
		atel_segscan_path(dir, &sc, err, sizeof(err));
		s = (double)(cpu_ns() - a) / 1e9;
		if ((double)(sc.bytes_raw / 64) / s > best_scan)
			best_scan = (double)(sc.bytes_raw / 64) / s;
		atel_segscan_free(&sc);
		/* (c) raw zstd */
		frames = 0;
		a = cpu_ns();
		int64_t rb = raw_zstd(dir, &frames);
		s = (double)(cpu_ns() - a) / 1e9;
		if (rb > 0 && (double)rb / 64 / s > best_raw)
			best_raw = (double)rb / 64 / s;
		raw_bytes = rb > 0 ? (uint64_t)rb : 0;
	}
	char m[160];
	snprintf(m, sizeof(m), "%llu records (%llu events) in %llu frames; thread CPU time, best of 3; baseline: raw zstd",
		 (unsigned long long)(raw_bytes / 64), (unsigned long long)events, (unsigned long long)frames);
	bench_row("query", "replay: decode every record (log reader)", best_ev / 1e6, "M records/s", best_raw / 1e6,
		  ">= 20 M/s", best_ev >= 20e6, m);
	bench_row("query", "replay: frame + gap pass (segscan)", best_scan / 1e6, "M records/s", best_raw / 1e6, NULL,
		  -1, "decompress + follow CHUNK framing");
	bench_row("query", "raw zstd decompression of the same frames", best_raw / 1e6, "M records/s", -1, NULL, -1,
		  "ZSTD_decompressDCtx per frame, 64-byte records");
out:
	if (rc < 0)
		bench_note("query: replay section failed: %s", strerror(-rc));
	{
		uint64_t *seqs = NULL;
		int nf = atel__seg_list(dir, &seqs);
		for (int i = 0; i < nf; i++) {
			char p[4200];
			snprintf(p, sizeof(p), "%s/%016llx%s", dir, (unsigned long long)seqs[i], ATEL_SEG_SUFFIX);
			unlink(p);
		}
		free(seqs);
		rmdir(dir);
	}
	return rc < 0 ? rc : 0;
}

static int run_query(const struct bench_opts *o)
{
	int rc = bench_aggregate(o);
	if (rc == 0)
		rc = bench_summarize(o);
	if (rc == 0)
		rc = bench_replay(o);
	return rc;
}

BENCH_SECTION("query", 40, "query engine: aggregate, summarize, replay scan rate", run_query)
