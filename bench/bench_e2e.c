/* SPDX-License-Identifier: MIT */
/*
 * Section "e2e": sustained end-to-end rate, producer threads -> shared-memory
 * rings -> the drain (consumer/drain.c, one thread) -> zstd segment files on
 * disk, timed from the first record written to the drain's return (every
 * record released, the log closed and fsynced). Baseline, in the same run: raw
 * single-threaded zstd at the same level over the same record bytes. Then the
 * SQLite indexer (consumer/indexer.c) follows the same log: its lag when the
 * producers finish and its catch-up time.
 *
 * The producer writes what an agent's metric hot path writes: SAMPLE records
 * of a handful of series, value and timestamp changing every record.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "bench.h"
#include "claim.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "ring.h"
#include "segment.h"

#define NSERIES 8u

struct prod {
	pthread_t th;
	const struct atel_segment *seg;
	uint64_t records;
	int idx;
	int ring;
	uint64_t full_spins;
};

static void put_slot(struct atel_ring_writer *w, const union atel_slot *s)
{
	while (!atel__ring_reserve(w, 1))
		;
	*atel__ring_slot(w, 0) = *s;
	atel__ring_commit(w, 1);
}

static void strdef(union atel_slot *r, uint32_t id, const char *s)
{
	memset(r, 0, sizeof(*r));
	r->strdef.h.type = ATEL_REC_STRDEF;
	r->strdef.h.id = id;
	r->strdef.h.ts_ns = atel__now_ns();
	r->strdef.len = (uint16_t)strlen(s);
	memcpy(r->strdef.bytes, s, strlen(s));
}

/* The sample stream of one producer thread (also used for the zstd baseline). */
static inline void make_sample(union atel_slot *r, uint64_t i, uint64_t ts)
{
	memset(r, 0, sizeof(*r));
	r->sample.h.type = ATEL_REC_SAMPLE;
	r->sample.h.id = 1 + (uint32_t)(i % NSERIES);
	r->sample.h.ts_ns = ts;
	r->sample.value = (double)(i % 1000) * 0.25;
}

static void *prod_main(void *arg)
{
	struct prod *p = arg;
	struct atel_owner who = { getpid(), (int32_t)gettid(), atel__proc_start_time(getpid()) };
	struct atel_ring_writer w;
	union atel_slot r;
	uint64_t i = 0;

	bench_pin(p->idx);
	p->ring = atel__ring_claim(p->seg, &who, (uint32_t)p->idx);
	if (p->ring < 0)
		return NULL;
	atel__ring_writer_init(&w, p->seg, (uint32_t)p->ring);
	memset(&r, 0, sizeof(r));
	r.begin.h.type = ATEL_REC_BEGIN;
	r.begin.h.id = w.generation;
	r.begin.h.ts_ns = atel__now_ns();
	r.begin.pid = who.pid;
	r.begin.tid = who.tid;
	r.begin.start = who.start;
	r.begin.ring = (uint32_t)p->ring;
	put_slot(&w, &r);
	strdef(&r, 1000, "bench_e2e_value");
	put_slot(&w, &r);
	strdef(&r, 1001, "k");
	put_slot(&w, &r);
	for (uint32_t s = 0; s < NSERIES; s++) {
		char v[8];

		snprintf(v, sizeof(v), "v%u", s);
		strdef(&r, 1002 + s, v);
		put_slot(&w, &r);
		memset(&r, 0, sizeof(r));
		r.seriesdef.h.type = ATEL_REC_SERIESDEF;
		r.seriesdef.h.id = 1 + s;
		r.seriesdef.mtype = ATEL_MT_COUNTER;
		r.seriesdef.nlabels = 1;
		r.seriesdef.name_id = 1000;
		r.seriesdef.pairs[0].key_id = 1001;
		r.seriesdef.pairs[0].value_id = 1002 + s;
		put_slot(&w, &r);
	}
	while (i < p->records) {
		/* batches of up to 64 records per reserve/commit, as a busy agent thread sees */
		uint64_t n = p->records - i < 64 ? p->records - i : 64;
		uint64_t ts = atel__now_ns();

		if (!atel__ring_reserve(&w, n)) {
			p->full_spins++;
			continue;
		}
		for (uint64_t k = 0; k < n; k++)
			make_sample(atel__ring_slot(&w, k), i + k, ts + k);
		atel__ring_commit(&w, n);
		i += n;
	}
	memset(&r, 0, sizeof(r));
	r.end.h.type = ATEL_REC_END;
	r.end.h.id = w.generation;
	r.end.h.ts_ns = atel__now_ns();
	put_slot(&w, &r);
	atel__ring_unclaim(p->seg, (uint32_t)p->ring);
	return NULL;
}

struct drain_thr {
	struct atel_drain *dr;
	int rc;
};

static void *drain_main(void *arg)
{
	struct drain_thr *t = arg;

	bench_pin(bench_ncpus() > 1 ? 1 : 0);
	t->rc = atel__drain_run(t->dr, 60ull * 1000000000ull);
	return NULL;
}

static int rm_rf(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static uint64_t dir_bytes(const char *dir)
{
	char cmd[4200];
	unsigned long long b = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "du -sb '%s/segments' 2>/dev/null", dir);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &b) != 1)
		b = 0;
	pclose(f);
	return b;
}

/* Raw zstd over the same sample stream, 1 MiB inputs, one thread. @return records/s. */
static double zstd_baseline(int level, uint64_t records, double *ratio)
{
	const size_t per = (1u << 20) / sizeof(union atel_slot);
	union atel_slot *in = malloc(per * sizeof(*in));
	size_t cap = ZSTD_compressBound(per * sizeof(*in));
	void *out = malloc(cap);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint64_t done = 0, t0, t1, cbytes = 0, gen_ns = 0;
	double rate = 0;

	if (!in || !out || !cc)
		goto out;
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	t0 = bench_now_ns();
	while (done < records) {
		uint64_t g0 = bench_now_ns(), ts = atel__now_ns();
		size_t n = records - done < per ? (size_t)(records - done) : per;
		size_t c;

		for (size_t k = 0; k < n; k++)
			make_sample(&in[k], done + k, ts + (k & 63));
		gen_ns += bench_now_ns() - g0;
		c = ZSTD_compress2(cc, out, cap, in, n * sizeof(*in));
		if (ZSTD_isError(c))
			goto out;
		cbytes += c;
		done += n;
	}
	t1 = bench_now_ns();
	rate = (double)records / ((double)(t1 - t0 - gen_ns) / 1e9);
	*ratio = (double)(records * sizeof(union atel_slot)) / (double)cbytes;
out:
	ZSTD_freeCCtx(cc);
	free(in);
	free(out);
	return rate;
}

struct run_result {
	uint64_t records, t_total_ns, t_tail_ns, disk, full_spins;
	uint64_t lag_max, lag_at_end, catchup_ns, rows;
	bool indexed;
};

static void *indexer_spawn(void *arg)
{
	void **a = arg;

	/* as ateld does: the indexer thread runs below the drain's priority */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
	*(int *)a[2] = atel__indexer_start((struct atel_indexer **)a[0], (struct atel_daemon *)a[1]);
	return NULL;
}

/*
 * One pipeline run: a fresh data dir and segment, the drain thread, nprod
 * producer threads writing `per` samples each; with_index: the SQLite indexer
 * follows the log meanwhile (its lag is sampled every 10 ms).
 */
static int run_pipeline(uint64_t per, bool with_index, struct run_result *res, char *err, size_t errlen)
{
	const int nprod = 1;
	char dir[256], shm[300];
	struct atel_config cfg;
	struct atel_daemon d;
	struct atel_drain *dr = NULL;
	struct atel_drain_opts dopts = { 0 };
	struct atel_indexer *ix = NULL;
	struct drain_thr dt;
	struct prod p[1];
	pthread_t dth;
	uint64_t t0, t_prod;
	int rc;

	memset(res, 0, sizeof(*res));
	snprintf(dir, sizeof(dir), "/var/tmp/atel-bench-e2e-%d-%d", (int)getpid(), with_index);
	snprintf(shm, sizeof(shm), "atel-bench-e2e-%d-%d", (int)getpid(), with_index);
	atel__config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = strdup(dir);
	free(cfg.log_level);
	cfg.log_level = strdup("warn");
	cfg.shm.rings = 8;
	cfg.shm.ring_capacity = 1u << 16; /* 4 MiB per ring */
	cfg.drain.batch_records = 16384;
	cfg.storage.rotate_bytes = 256ull << 20;
	if (!cfg.data_dir || !cfg.log_level || atel__daemon_init(&d, &cfg) != 0) {
		atel__config_free(&cfg);
		return -ENOMEM;
	}
	mkdir(dir, 0755);
	dopts.shm_name = shm;
	dopts.keep_heartbeat = true;
	rc = atel__drain_open(&dr, &d, &dopts, err, errlen);
	if (rc)
		goto out;
	if (with_index) {
		void *args[3] = { &ix, &d, &rc };
		pthread_t sp;

		pthread_create(&sp, NULL, indexer_spawn, args);
		pthread_join(sp, NULL);
		if (rc) {
			snprintf(err, errlen, "indexer: %s", strerror(-rc));
			goto out;
		}
	}
	dt.dr = dr;
	dt.rc = 0;
	if (pthread_create(&dth, NULL, drain_main, &dt)) {
		rc = -EAGAIN;
		goto out;
	}
	t0 = bench_now_ns();
	for (int i = 0; i < nprod; i++) {
		p[i] = (struct prod){ .seg = atel__drain_segment(dr), .records = per, .idx = i };
		pthread_create(&p[i].th, NULL, prod_main, &p[i]);
	}
	if (with_index) {
		/* sample the lag while the producer runs (pthread_tryjoin: it is done) */
		while (pthread_tryjoin_np(p[0].th, NULL) != 0) {
			uint64_t lag = atomic_load(&d.stats.indexer_lag_records);

			if (lag > res->lag_max)
				res->lag_max = lag;
			usleep(10000);
		}
	} else {
		for (int i = 0; i < nprod; i++)
			pthread_join(p[i].th, NULL);
	}
	t_prod = bench_now_ns();
	res->lag_at_end = atomic_load(&d.stats.indexer_lag_records);
	atomic_store_explicit(&d.stopping, true, memory_order_release);
	pthread_join(dth, NULL);
	res->t_total_ns = bench_now_ns() - t0;
	res->t_tail_ns = bench_now_ns() - t_prod;
	rc = dt.rc;
	if (rc) {
		snprintf(err, errlen, "the drain returned %s", strerror(-rc));
		goto out;
	}
	res->records = (uint64_t)nprod * per;
	res->full_spins = p[0].full_spins;
	if (atomic_load(&d.stats.records_drained) < res->records) {
		snprintf(err, errlen, "only %llu of %llu records drained",
			 (unsigned long long)atomic_load(&d.stats.records_drained), (unsigned long long)res->records);
		rc = -EIO;
		goto out;
	}
	res->disk = dir_bytes(dir);
	if (ix) {
		/* catch-up: the indexer applies the rest of the log (bounded: 5 min) */
		uint64_t c0 = bench_now_ns();

		while (bench_now_ns() - c0 < 300ull * 1000000000ull &&
		       (atomic_load(&d.stats.indexer_lag_records) > 0 || atomic_load(&d.stats.index_rows) == 0))
			usleep(10000);
		res->catchup_ns = bench_now_ns() - c0;
		atel__indexer_stop(ix);
		ix = NULL;
		res->rows = atomic_load(&d.stats.index_rows);
		res->indexed = true;
	}
out:
	atel__indexer_stop(ix);
	atel__drain_close(dr);
	atel__segment_unlink(shm);
	rm_rf(dir);
	atel__daemon_fini(&d);
	atel__config_free(&cfg);
	return rc;
}

static int run_e2e(const struct bench_opts *o)
{
	const uint64_t per = o->quick ? 2000000ull : 20000000ull;
	const uint64_t per_ix = o->quick ? 200000ull : 2000000ull;
	struct run_result a, b;
	char method[512], err[512] = "";
	double rate, zrate, zratio = 0;
	int rc;

	rc = run_pipeline(per, false, &a, err, sizeof(err));
	if (rc) {
		bench_note("e2e: %s", err);
		return rc;
	}
	rate = (double)a.records / ((double)a.t_total_ns / 1e9);
	zrate = zstd_baseline(3, o->quick ? 2000000ull : 10000000ull, &zratio);
	snprintf(method, sizeof(method),
		 "1 producer thread, 1 drain thread, %llu SAMPLE records (64 B), zstd level 3, ring 64K slots; "
		 "first record to log closed+fsynced; baseline: raw zstd, 1 thread, 1 MiB inputs, same records",
		 (unsigned long long)a.records);
	bench_row("e2e", "producers -> durable segments", rate, "records/s", zrate, ">= 5M records/s", rate >= 5e6,
		  method);
	bench_row("e2e", "raw zstd, same level and records", zrate, "records/s", -1, NULL, -1,
		  "ZSTD_compress2 with checksum, 1 MiB inputs, single thread, record generation time excluded");
	bench_row("e2e", "bytes on disk per sample (synthetic stream)", (double)a.disk / (double)a.records, "B", -1,
		  NULL, -1, "du -sb of segments/ / records; 8 series, values repeating every 1000");
	bench_row("e2e", "producer finished -> log closed", (double)a.t_tail_ns / 1e6, "ms", -1, NULL, -1,
		  "drain of the remaining ring contents + final flush + fsync");
	bench_note("e2e: raw zstd compression ratio on the same records %.1fx; the producer found its ring full "
		   "%llu times", zratio, (unsigned long long)a.full_spins);

	rc = run_pipeline(per_ix, true, &b, err, sizeof(err));
	if (rc) {
		bench_note("e2e (indexed): %s", err);
		return 0; /* the drain figures above stand */
	}
	snprintf(method, sizeof(method),
		 "%llu samples at full producer speed, the indexer (nice 10) following the log; its own "
		 "indexer_lag_records sampled every 10 ms",
		 (unsigned long long)b.records);
	bench_row("e2e", "indexer lag under that load (max reported)", (double)b.lag_max, "records", -1, NULL, -1,
		  method);
	bench_row("e2e", "indexer lag when the log closed (catch-up time)", (double)b.catchup_ns / 1e9, "s", -1, NULL,
		  -1, "time from the log's close until the indexer had applied all of it (the indexer updates its "
		      "own lag figure only between batches, so this is the reliable measure)");
	bench_row("e2e", "index throughput (rows/s over the run + catch-up)",
		  (double)b.rows / ((double)(b.t_total_ns + b.catchup_ns) / 1e9), "rows/s", -1, NULL, -1,
		  "telemetry_metrics rows (one per sample) plus rollups; batched transactions");
	bench_note("e2e (indexed): end-to-end %.2fM records/s with the indexer running; index caught up %.1f s after "
		   "the log closed; %llu rows",
		   (double)b.records / ((double)b.t_total_ns / 1e9) / 1e6, (double)b.catchup_ns / 1e9,
		   (unsigned long long)b.rows);
	return 0;
}

BENCH_SECTION("e2e", 25, "end to end: producers -> drain -> zstd segment files (one consumer thread)", run_e2e)
