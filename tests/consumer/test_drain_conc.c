/* SPDX-License-Identifier: MIT */
/*
 * Concurrent test of the drain (consumer/drain.c) in one process, for
 * ThreadSanitizer: the drain thread, four producer threads on small rings
 * (they wrap and fill), a thread reading what ateld's main thread reads
 * (log info, heartbeat, statistics, ring descriptors) and one asking for log
 * reopens. Then the log is read back: every producer's sequence is there
 * exactly once. Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "logread.h"
#include "ring.h"
#include "segment.h"

#define NPROD 4
#define NREC 60000u

struct prod {
	pthread_t th;
	const struct atel_segment *seg;
	int idx, ring;
};

static atomic_bool done_producing;

static void put(struct atel_ring_writer *w, const union atel_slot *s)
{
	while (!atel__ring_reserve(w, 1))
		sched_yield();
	*atel__ring_slot(w, 0) = *s;
	atel__ring_commit(w, 1);
}

static void strdef(struct atel_ring_writer *w, uint32_t id, const char *s)
{
	union atel_slot r;

	memset(&r, 0, sizeof(r));
	r.strdef.h.type = ATEL_REC_STRDEF;
	r.strdef.h.id = id;
	r.strdef.len = (uint16_t)strlen(s);
	memcpy(r.strdef.bytes, s, strlen(s));
	put(w, &r);
}

static void *prod_main(void *arg)
{
	struct prod *p = arg;
	struct atel_owner who = { getpid(), (int32_t)gettid(), atel__proc_start_time(getpid()) };
	struct atel_ring_writer w;
	union atel_slot r;
	char v[8];

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
	put(&w, &r);
	snprintf(v, sizeof(v), "%d", p->idx);
	strdef(&w, 1, "conc_seq");
	strdef(&w, 2, "p");
	strdef(&w, 3, v);
	memset(&r, 0, sizeof(r));
	r.seriesdef.h.type = ATEL_REC_SERIESDEF;
	r.seriesdef.h.id = 1;
	r.seriesdef.mtype = ATEL_MT_GAUGE;
	r.seriesdef.nlabels = 1;
	r.seriesdef.name_id = 1;
	r.seriesdef.pairs[0].key_id = 2;
	r.seriesdef.pairs[0].value_id = 3;
	put(&w, &r);
	for (uint32_t i = 0; i < NREC; i++) {
		memset(&r, 0, sizeof(r));
		r.sample.h.type = ATEL_REC_SAMPLE;
		r.sample.h.flags = ATEL_RECF_SET;
		r.sample.h.id = 1;
		r.sample.h.ts_ns = atel__now_ns();
		r.sample.value = i;
		put(&w, &r);
	}
	memset(&r, 0, sizeof(r));
	r.end.h.type = ATEL_REC_END;
	r.end.h.id = w.generation;
	r.end.h.ts_ns = atel__now_ns();
	put(&w, &r);
	atel__ring_unclaim(p->seg, (uint32_t)p->ring);
	return NULL;
}

/* What ateld's main thread does while the drain runs. */
static void *watcher_main(void *arg)
{
	struct atel_drain *dr = ((void **)arg)[0];
	struct atel_daemon *d = ((void **)arg)[1];
	const struct atel_segment *seg = atel__drain_segment(dr);
	char io[16], file[4096];
	uint64_t sum = 0;
	int reopens = 0;

	while (!atomic_load(&done_producing)) {
		atel__drain_heartbeat(dr);
		atel__drain_log_info(dr, io, sizeof(io), file, sizeof(file));
		sum += atomic_load_explicit(&d->stats.records_drained, memory_order_relaxed);
		sum += atomic_load_explicit(&d->stats.ring_lag_max, memory_order_relaxed);
		for (uint32_t r = 0; r < seg->ring_count; r++) {
			struct atel_ring_desc *desc = atel__seg_desc(seg, r);

			sum += atomic_load_explicit(&desc->head, memory_order_relaxed);
			sum += atomic_load_explicit(&desc->tail, memory_order_relaxed);
			sum += (uint64_t)__atomic_load_n(&desc->owner_pid, __ATOMIC_RELAXED);
		}
		if (reopens < 3 && sum % 7 == 0) {
			atel__drain_request_reopen(dr);
			reopens++;
		}
		usleep(2000);
	}
	return (void *)(uintptr_t)(sum & 1);
}

struct drain_thr {
	struct atel_drain *dr;
	int rc;
};

static void *drain_main(void *arg)
{
	struct drain_thr *t = arg;

	t->rc = atel__drain_run(t->dr, 60ull * 1000000000ull);
	return NULL;
}

static int verify(const char *segments_dir)
{
	struct atel_log_reader_opts ro = { .segments_dir = segments_dir };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	uint32_t next[NPROD] = { 0 };
	int rc, bad = 0;

	if ((rc = atel__log_open(&r, &ro))) {
		fprintf(stderr, "log open: %s\n", strerror(-rc));
		return 1;
	}
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		int p;

		if (ev.kind != ATEL_EV_SAMPLE || strcmp(ev.sample.series->name, "conc_seq"))
			continue;
		p = atoi(ev.sample.series->values[0]);
		if (p < 0 || p >= NPROD || ev.sample.value != next[p]) {
			if (bad++ < 5)
				fprintf(stderr, "producer %d: got %.0f, expected %u\n", p, ev.sample.value,
					p >= 0 && p < NPROD ? next[p] : 0);
			continue;
		}
		next[p]++;
	}
	atel__log_close(r);
	for (int p = 0; p < NPROD; p++) {
		if (next[p] != NREC) {
			fprintf(stderr, "producer %d: %u samples in order in the log, expected %u\n", p, next[p], NREC);
			bad++;
		}
	}
	return rc < 0 || bad ? 1 : 0;
}

int main(void)
{
	char dir[] = "/tmp/atel-drain-conc-XXXXXX", shm[300], segs[400], cmd[512], err[512];
	struct atel_config cfg;
	struct atel_daemon d;
	struct atel_drain *dr = NULL;
	struct atel_drain_opts o = { 0 };
	struct drain_thr dt;
	struct prod p[NPROD];
	pthread_t dth, wth;
	void *wargs[2];
	int rc, fail = 1;

	if (!mkdtemp(dir))
		return 1;
	snprintf(shm, sizeof(shm), "%s/seg", dir);
	snprintf(segs, sizeof(segs), "%s/segments", dir);
	atel__config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = strdup(dir);
	free(cfg.log_level);
	cfg.log_level = strdup("warn");
	cfg.shm.rings = 8;
	cfg.shm.ring_capacity = 1024; /* wraps every 1024 records, fills often */
	cfg.drain.batch_records = 256;
	cfg.storage.rotate_bytes = 1 << 20;
	if (!cfg.data_dir || !cfg.log_level || atel__daemon_init(&d, &cfg)) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	o.shm_name = shm;
	o.keep_heartbeat = true;
	if ((rc = atel__drain_open(&dr, &d, &o, err, sizeof(err)))) {
		fprintf(stderr, "drain open: %s\n", err);
		goto out;
	}
	dt.dr = dr;
	dt.rc = 0;
	pthread_create(&dth, NULL, drain_main, &dt);
	wargs[0] = dr;
	wargs[1] = &d;
	pthread_create(&wth, NULL, watcher_main, wargs);
	for (int i = 0; i < NPROD; i++) {
		p[i] = (struct prod){ .seg = atel__drain_segment(dr), .idx = i, .ring = -1 };
		pthread_create(&p[i].th, NULL, prod_main, &p[i]);
	}
	for (int i = 0; i < NPROD; i++)
		pthread_join(p[i].th, NULL);
	atomic_store(&done_producing, true);
	pthread_join(wth, NULL);
	atomic_store_explicit(&d.stopping, true, memory_order_release);
	pthread_join(dth, NULL);
	if (dt.rc) {
		fprintf(stderr, "drain run: %s\n", strerror(-dt.rc));
		goto out;
	}
	for (int i = 0; i < NPROD; i++) {
		if (p[i].ring < 0) {
			fprintf(stderr, "producer %d could not claim a ring\n", i);
			goto out;
		}
	}
	fail = verify(segs);
	if (!fail)
		printf("drain_concurrent: %d producers x %u samples exactly once, in order (records drained %llu)\n",
		       NPROD, NREC, (unsigned long long)atomic_load(&d.stats.records_drained));
out:
	atel__drain_close(dr);
	atel__daemon_fini(&d);
	atel__config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
	return fail;
}
