/* SPDX-License-Identifier: MIT */
/*
 * tprod - a test producer that speaks the shared-memory ABI directly (no
 * libatel), so the daemon tests depend only on shm/. Each thread claims a
 * ring and writes BEGIN, the definitions of one gauge series
 * tprod_seq{p="<producer>",t="<thread>"}, then SAMPLE records whose value is
 * the sequence number 0..N-1, then END. (producer, thread, sequence) is thus
 * recoverable from the log alone.
 *
 *   tprod --shm NAME [--id P] [--threads T] [--records N] [--block]
 *         [--rate R] [--garbage K] [--bad-ids K] [--corrupt-head] [--hold-ms MS]
 *         [--latency K] [--no-end]
 *
 * --block       wait when the ring is full (no drops; exact sequences)
 *               otherwise a full ring drops the sample and counts it in
 *               the ring's cumulative drops_full (ABI 2: no in-band LOSS)
 * --rate R      records per second per thread (0: as fast as possible)
 * --garbage K   thread 0 also publishes K single garbage slots (type 0xEE)
 * --bad-ids K   thread 0 also publishes K samples of an undefined series
 * --bad-ts K    thread 0 also publishes K samples timed 1970, 2554 or an hour ahead
 * --corrupt-head  the last thread moves its head 10 x capacity ahead, then
 *               stops writing (the consumer must quarantine the ring)
 * --hold-ms MS  keep the rings claimed MS ms after writing (kill -9 tests)
 * --latency K   one thread: K times, after 20 ms idle, publish one sample and
 *               spin until the consumer released it (= it is in the log);
 *               prints p50/p99/max pickup latency in microseconds
 * --no-end      exit without END/unclaim (the consumer sees a dead owner)
 *
 * Prints one JSON object on stdout:
 *   {"producer":P,"pid":..,"threads":[{"thread":t,"ring":r,"written":n,"dropped":d,
 *    "garbage":g,"bad":b}],...}
 * Exit status 0, or 1 on a setup error (message on stderr).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "ring.h"
#include "segment.h"

struct opts {
	const char *shm;
	int id, threads;
	uint64_t records, rate;
	bool block, corrupt_head, no_end;
	uint64_t garbage, bad_ids, bad_ts;
	unsigned hold_ms, latency;
};

struct thr {
	pthread_t th;
	int idx;
	int ring;
	uint64_t written, dropped, garbage, bad;
	const struct opts *o;
	struct atel_segment *seg;
	double lat_us[4096];
	unsigned nlat;
	char err[256];
};

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

static uint64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reserves n slots; blocks or fails per options. */
static bool reserve(struct atel_ring_writer *w, uint64_t n, bool block)
{
	while (!atel__ring_reserve(w, n)) {
		if (!block)
			return false;
		sched_yield();
	}
	return true;
}

static void put_strdef(struct atel_ring_writer *w, uint32_t id, const char *s)
{
	union atel_slot *r;

	reserve(w, 1, true);
	r = atel__ring_slot(w, 0);
	memset(r, 0, sizeof(*r));
	r->strdef.h.type = ATEL_REC_STRDEF;
	r->strdef.h.id = id;
	r->strdef.h.ts_ns = atel__now_ns();
	r->strdef.len = (uint16_t)strlen(s);
	memcpy(r->strdef.bytes, s, strlen(s));
	atel__ring_commit(w, 1);
}

static void put_sample(struct atel_ring_writer *w, uint32_t series, double v)
{
	union atel_slot *r = atel__ring_slot(w, 0);

	memset(r, 0, sizeof(*r));
	r->sample.h.type = ATEL_REC_SAMPLE;
	r->sample.h.flags = ATEL_RECF_SET;
	r->sample.h.id = series;
	r->sample.h.ts_ns = atel__now_ns();
	r->sample.value = v;
	atel__ring_commit(w, 1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	const struct opts *o = t->o;
	struct atel_owner who = { getpid(), (int32_t)gettid(), atel__proc_start_time(getpid()) };
	struct atel_ring_writer w;
	union atel_slot *r;
	char pv[16], tv[16];
	uint64_t t0 = mono(), garbage_every = 0, bad_every = 0, badts_every = 0, badts = 0;
	uint64_t seed = (uint64_t)who.tid * 2654435761u + 1;
	int ring;

	ring = atel__ring_claim(t->seg, &who, (uint32_t)who.tid * 2654435761u);
	if (ring < 0) {
		snprintf(t->err, sizeof(t->err), "claim: %s", strerror(-ring));
		return NULL;
	}
	t->ring = ring;
	atel__ring_writer_init(&w, t->seg, (uint32_t)ring);

	/* BEGIN */
	reserve(&w, 1, true);
	r = atel__ring_slot(&w, 0);
	memset(r, 0, sizeof(*r));
	r->begin.h.type = ATEL_REC_BEGIN;
	r->begin.h.id = w.generation;
	r->begin.h.ts_ns = atel__now_ns();
	r->begin.pid = who.pid;
	r->begin.tid = who.tid;
	r->begin.start = who.start;
	r->begin.ring = (uint32_t)ring;
	snprintf(r->begin.comm, sizeof(r->begin.comm), "tprod");
	atel__ring_commit(&w, 1);

	/* definitions: tprod_seq{p=..., t=...} */
	snprintf(pv, sizeof(pv), "%d", o->id);
	snprintf(tv, sizeof(tv), "%d", t->idx);
	put_strdef(&w, 1, "tprod_seq");
	put_strdef(&w, 2, "p");
	put_strdef(&w, 3, pv);
	put_strdef(&w, 4, "t");
	put_strdef(&w, 5, tv);
	reserve(&w, 1, true);
	r = atel__ring_slot(&w, 0);
	memset(r, 0, sizeof(*r));
	r->seriesdef.h.type = ATEL_REC_SERIESDEF;
	r->seriesdef.h.id = 1;
	r->seriesdef.h.ts_ns = atel__now_ns();
	r->seriesdef.mtype = ATEL_MT_GAUGE;
	r->seriesdef.nlabels = 2;
	r->seriesdef.name_id = 1;
	r->seriesdef.pairs[0].key_id = 2;
	r->seriesdef.pairs[0].value_id = 3;
	r->seriesdef.pairs[1].key_id = 4;
	r->seriesdef.pairs[1].value_id = 5;
	atel__ring_commit(&w, 1);

	if (t->idx == 0 && o->garbage)
		garbage_every = o->records / (o->garbage + 1) + 1;
	if (t->idx == 0 && o->bad_ids)
		bad_every = o->records / (o->bad_ids + 1) + 1;
	if (t->idx == 0 && o->bad_ts)
		badts_every = o->records / (o->bad_ts + 1) + 1;

	if (o->latency) {
		for (unsigned k = 0; k < o->latency && k < 4096; k++) {
			uint64_t a, b, target;
			struct atel_ring_desc *d = atel__seg_desc(t->seg, (uint32_t)ring);

			sleep_ns(20000000);
			reserve(&w, 1, true);
			put_sample(&w, 1, (double)t->written);
			t->written++;
			target = w.head;
			a = mono();
			while (atomic_load_explicit(&d->tail, memory_order_acquire) < target)
				;
			b = mono();
			t->lat_us[t->nlat++] = (double)(b - a) / 1e3;
		}
		goto end;
	}

	for (uint64_t seq = 0; seq < o->records; seq++) {
		if (o->rate) {
			uint64_t due = t0 + seq * 1000000000ull / o->rate;
			uint64_t now = mono();

			if (due > now)
				sleep_ns(due - now);
		}
		if (garbage_every && seq % garbage_every == garbage_every - 1 && t->garbage < o->garbage) {
			if (reserve(&w, 1, o->block)) {
				r = atel__ring_slot(&w, 0);
				for (int i = 0; i < 8; i++) {
					seed = seed * 6364136223846793005ull + 1442695040888963407ull;
					r->words[i] = seed;
				}
				r->raw[0] = 0xEE; /* no such record type: structurally invalid */
				atel__ring_commit(&w, 1);
				t->garbage++;
			}
		}
		if (bad_every && seq % bad_every == bad_every - 1 && t->bad < o->bad_ids) {
			if (reserve(&w, 1, o->block)) {
				put_sample(&w, 999, -1.0); /* series 999 was never defined */
				t->bad++;
			}
		}
		if (badts_every && seq % badts_every == badts_every - 1 && badts < o->bad_ts) {
			if (reserve(&w, 1, o->block)) {
				static const uint64_t bad[3] = { 1000000000ull, 18446744073709551000ull, 0 };
				uint64_t ts = bad[badts % 3] ? bad[badts % 3] : atel__now_ns() + 3600ull * 1000000000ull;

				r = atel__ring_slot(&w, 0);
				memset(r, 0, sizeof(*r));
				r->sample.h.type = ATEL_REC_SAMPLE;
				r->sample.h.flags = ATEL_RECF_SET;
				r->sample.h.id = 1;
				r->sample.h.ts_ns = ts;
				r->sample.value = -2.0;
				atel__ring_commit(&w, 1);
				badts++;
			}
		}
		if (!reserve(&w, 1, o->block)) {
			t->dropped++;
			/* only the owner writes the counter (docs/abi.md 1.2) */
			atomic_store_explicit(&w.desc->drops_full,
					      atomic_load_explicit(&w.desc->drops_full, memory_order_relaxed) + 1,
					      memory_order_relaxed);
			continue;
		}
		put_sample(&w, 1, (double)seq);
		t->written++;
	}
	if (o->corrupt_head && t->idx == o->threads - 1) {
		atomic_store_explicit(&w.desc->head, w.head + 10ull * w.capacity, memory_order_release);
		return NULL;
	}
end:
	if (o->hold_ms)
		sleep_ns((uint64_t)o->hold_ms * 1000000ull);
	if (o->no_end)
		return NULL;
	reserve(&w, 1, true);
	r = atel__ring_slot(&w, 0);
	memset(r, 0, sizeof(*r));
	r->end.h.type = ATEL_REC_END;
	r->end.h.id = w.generation;
	r->end.h.ts_ns = atel__now_ns();
	atel__ring_commit(&w, 1);
	atel__ring_unclaim(t->seg, (uint32_t)ring);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: tprod --shm NAME [--id P] [--threads T] [--records N] [--block] [--rate R]\n"
			"             [--garbage K] [--bad-ids K] [--corrupt-head] [--hold-ms MS] [--latency K]"
			" [--no-end]\n");
	return 1;
}

int main(int argc, char **argv)
{
	struct opts o = { .id = 0, .threads = 1, .records = 1000 };
	struct atel_segment seg;
	struct thr *t;
	char err[256];
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--block")) {
			o.block = true;
		} else if (!strcmp(a, "--corrupt-head")) {
			o.corrupt_head = true;
		} else if (!strcmp(a, "--no-end")) {
			o.no_end = true;
		} else if (!v) {
			return usage();
		} else if (!strcmp(a, "--shm")) {
			o.shm = v, i++;
		} else if (!strcmp(a, "--id")) {
			o.id = atoi(v), i++;
		} else if (!strcmp(a, "--threads")) {
			o.threads = atoi(v), i++;
		} else if (!strcmp(a, "--records")) {
			o.records = strtoull(v, NULL, 10), i++;
		} else if (!strcmp(a, "--rate")) {
			o.rate = strtoull(v, NULL, 10), i++;
		} else if (!strcmp(a, "--garbage")) {
			o.garbage = strtoull(v, NULL, 10), i++;
		} else if (!strcmp(a, "--bad-ts")) {
			o.bad_ts = strtoull(v, NULL, 10), i++;
		} else if (!strcmp(a, "--bad-ids")) {
			o.bad_ids = strtoull(v, NULL, 10), i++;
		} else if (!strcmp(a, "--hold-ms")) {
			o.hold_ms = (unsigned)atoi(v), i++;
		} else if (!strcmp(a, "--latency")) {
			o.latency = (unsigned)atoi(v), i++;
		} else {
			return usage();
		}
	}
	if (!o.shm || o.threads < 1 || o.threads > 256)
		return usage();
	if (o.latency)
		o.threads = 1;
	rc = atel__segment_attach(&seg, o.shm, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "tprod: %s\n", err);
		return 1;
	}
	t = calloc((size_t)o.threads, sizeof(*t));
	if (!t)
		return 1;
	for (int i = 0; i < o.threads; i++) {
		t[i].idx = i;
		t[i].o = &o;
		t[i].seg = &seg;
		t[i].ring = -1;
		if ((rc = pthread_create(&t[i].th, NULL, thread_main, &t[i]))) {
			fprintf(stderr, "tprod: pthread_create: %s\n", strerror(rc));
			return 1;
		}
	}
	for (int i = 0; i < o.threads; i++)
		pthread_join(t[i].th, NULL);
	rc = 0;
	printf("{\"producer\":%d,\"pid\":%d,\"threads\":[", o.id, (int)getpid());
	for (int i = 0; i < o.threads; i++) {
		if (t[i].err[0]) {
			fprintf(stderr, "tprod: thread %d: %s\n", i, t[i].err);
			rc = 1;
		}
		printf("%s{\"thread\":%d,\"ring\":%d,\"written\":%" PRIu64 ",\"dropped\":%" PRIu64
		       ",\"garbage\":%" PRIu64 ",\"bad\":%" PRIu64 "}",
		       i ? "," : "", i, t[i].ring, t[i].written, t[i].dropped, t[i].garbage, t[i].bad);
	}
	printf("]");
	if (o.latency && t[0].nlat) {
		qsort(t[0].lat_us, t[0].nlat, sizeof(double), cmp_double);
		printf(",\"latency_us\":{\"n\":%u,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}", t[0].nlat,
		       t[0].lat_us[t[0].nlat / 2], t[0].lat_us[(t[0].nlat * 99) / 100], t[0].lat_us[t[0].nlat - 1]);
	}
	printf("}\n");
	fflush(stdout);
	free(t);
	atel__segment_detach(&seg);
	return rc;
}
