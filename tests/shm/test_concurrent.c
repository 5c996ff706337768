/* SPDX-License-Identifier: MIT */
/*
 * Concurrent ring tests (suite 'concurrent', also run by TSan):
 *   spsc        one producer thread, one consumer thread, N records (argv):
 *               every record arrives once, in order (100M in the plain build)
 *   multiproc   8 processes x 4 threads claim 24 rings in rounds; every
 *               thread's stream arrives complete, in order within each claim
 *   sigkill     a producer process killed with SIGKILL mid-stream: drained,
 *               detected dead by pid + start time, reclaimed, reused; a live
 *               pid with another start time counts as dead (pid reuse)
 *   exhaustion  8 threads, 4 rings: the extra threads' records are counted in
 *               drops_no_ring, the others arrive complete
 *   hostile     a producer that publishes garbage records and then bogus
 *               positions: its ring is counted, quarantined and reclaimed;
 *               the other rings' streams are complete
 *
 * Usage: test_shm_concurrent [TEST [RECORDS]] (no TEST: all, spsc with 1M).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "atel_test.h"
#include "claim.h"
#include "reader.h"
#include "ring.h"
#include "segment.h"
#include "shm_test_util.h"

#define TIMEOUT_NS (120ull * 1000000000ull)

static char path[256];
static uint64_t spsc_records = 1000000;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Waiting for the other side: spin a little, then yield (the machine may have one free CPU). */
static void backoff(unsigned *spins)
{
	if (++*spins < 64)
		return;
	*spins = 0;
	sched_yield();
}

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/atel-test-conc-%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void mkseg(struct atel_segment *seg, uint32_t rings, uint32_t cap)
{
	struct atel_segment_config cfg = { .ring_count = rings, .ring_capacity = cap };
	char err[256] = "";

	if (atel__segment_create(seg, path, &cfg, err, sizeof(err)) != 0)
		fail_msg("segment create: %s", err);
}

static struct atel_owner me(void)
{
	struct atel_owner o = { .pid = getpid(), .tid = gettid(), .start = atel__proc_start_time(getpid()) };
	return o;
}

/* Writes n slots from rec (spinning while full). */
static void put(struct atel_ring_writer *w, const union atel_slot *rec, unsigned n)
{
	unsigned spins = 0;

	while (!atel__ring_reserve(w, n))
		backoff(&spins);
	for (unsigned i = 0; i < n; i++)
		*atel__ring_slot(w, i) = rec[i];
	atel__ring_commit(w, n);
}

static void put_begin(struct atel_ring_writer *w, const struct atel_owner *o)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.h.type = ATEL_REC_BEGIN;
	s.h.id = w->generation;
	s.begin.pid = o->pid;
	s.begin.tid = o->tid;
	s.begin.start = o->start;
	s.begin.ring = w->ring;
	put(w, &s, 1);
}

static void put_end(struct atel_ring_writer *w)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.h.type = ATEL_REC_END;
	s.h.id = w->generation;
	put(w, &s, 1);
}

static void put_sample(struct atel_ring_writer *w, uint64_t seq)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.h.type = ATEL_REC_SAMPLE;
	s.h.id = 1;
	s.h.ts_ns = seq;
	s.sample.value = (double)seq;
	put(w, &s, 1);
}

/* ------------------------------------------------------------------------ */
/* stream verifier: BEGIN names the stream (pid, tid); samples carry seq     */

#define MAX_STREAMS 64
#define MAX_RINGS 64

struct stream {
	int32_t pid, tid;
	uint64_t total;     /* samples expected */
	uint64_t got;
	uint8_t *seen;      /* bitmap of seqs */
	uint64_t dups, out_of_range;
};

struct verifier {
	struct stream s[MAX_STREAMS];
	int n;
	uint64_t per_stream;
	int cur[MAX_RINGS];        /* stream of the ring's current claim, -1 none */
	uint64_t next[MAX_RINGS];  /* next seq expected in the current claim, UINT64_MAX: any */
	uint64_t order_errors, orphan_samples, begins, ends, other;
};

static void verifier_init(struct verifier *v, uint64_t per_stream)
{
	memset(v, 0, sizeof(*v));
	v->per_stream = per_stream;
	for (int i = 0; i < MAX_RINGS; i++)
		v->cur[i] = -1;
}

static void verifier_free(struct verifier *v)
{
	for (int i = 0; i < v->n; i++)
		free(v->s[i].seen);
}

struct vctx {
	struct verifier *v;
	uint32_t ring;
};

static int verify_rec(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct vctx *c = arg;
	struct verifier *v = c->v;
	uint32_t r = c->ring;

	(void)pos;
	(void)nslots;
	switch (rec->h.type) {
	case ATEL_REC_BEGIN: {
		int k;
		for (k = 0; k < v->n; k++)
			if (v->s[k].pid == rec->begin.pid && v->s[k].tid == rec->begin.tid)
				break;
		if (k == v->n) {
			if (v->n == MAX_STREAMS) {
				v->other++;
				return 0;
			}
			v->s[k].pid = rec->begin.pid;
			v->s[k].tid = rec->begin.tid;
			v->s[k].total = v->per_stream;
			v->s[k].seen = calloc((v->per_stream + 7) / 8, 1);
			v->n++;
		}
		if (rec->begin.ring != r)
			v->other++;
		v->cur[r] = k;
		v->next[r] = UINT64_MAX;
		v->begins++;
		break;
	}
	case ATEL_REC_END:
		v->cur[r] = -1;
		v->ends++;
		break;
	case ATEL_REC_SAMPLE: {
		uint64_t seq = rec->h.ts_ns;
		struct stream *s;
		if (v->cur[r] < 0) {
			v->orphan_samples++;
			break;
		}
		s = &v->s[v->cur[r]];
		if (v->next[r] != UINT64_MAX && seq != v->next[r])
			v->order_errors++;
		v->next[r] = seq + 1;
		if (seq >= s->total) {
			s->out_of_range++;
			break;
		}
		if (s->seen[seq / 8] & (1u << (seq % 8)))
			s->dups++;
		s->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
		s->got++;
		break;
	}
	default:
		v->other++;
	}
	return 0;
}

/* One pass over every ring. @return records delivered. */
static uint64_t drain_all(const struct atel_segment *seg, struct verifier *v, int final)
{
	uint64_t n = 0;

	for (uint32_t r = 0; r < seg->ring_count; r++) {
		struct atel_scan_stats st = { 0 };
		struct vctx c = { v, r };
		uint64_t t, h, done;

		if (atel__ring_poll(seg, r, &t, &h) != 0)
			fail_msg("ring %u: positions invalid (tail %llu head %llu)", r, (unsigned long long)t,
				 (unsigned long long)h);
		if (h == t)
			continue;
		done = atel__ring_scan(seg, r, t, h, final, verify_rec, &c, &st);
		atel__ring_release(seg, r, done);
		if (st.invalid_slots)
			fail_msg("ring %u: %llu invalid slots from a valid producer", r,
				 (unsigned long long)st.invalid_slots);
		n += st.records;
	}
	return n;
}

static void verifier_check(const struct verifier *v, int streams)
{
	assert_int_equal(v->n, streams);
	assert_int_equal(v->order_errors, 0);
	assert_int_equal(v->orphan_samples, 0);
	assert_int_equal(v->other, 0);
	for (int i = 0; i < v->n; i++) {
		assert_int_equal(v->s[i].dups, 0);
		assert_int_equal(v->s[i].out_of_range, 0);
		if (v->s[i].got != v->per_stream)
			fail_msg("stream pid %d tid %d: %llu of %llu samples", v->s[i].pid, v->s[i].tid,
				 (unsigned long long)v->s[i].got, (unsigned long long)v->per_stream);
	}
}

/* ------------------------------------------------------------------------ */
/* spsc: N records, one producer and one consumer thread                    */

struct spsc {
	struct atel_segment *seg;
	uint64_t n;
};

/* every 997th record is a multi-slot STRDEF; all records carry ts_ns = seq */
static void *spsc_producer(void *arg)
{
	struct spsc *p = arg;
	struct atel_ring_writer w;
	union atel_slot rec[8];

	atel__ring_writer_init(&w, p->seg, 0);
	for (uint64_t seq = 0; seq < p->n; seq++) {
		if (seq % 997 == 996) {
			unsigned len = 44 + (unsigned)(seq % 7) * 64 + 3, cont = atel__cont_for(len, 44, 64);
			memset(rec, 0, sizeof(rec));
			rec[0].h.type = ATEL_REC_STRDEF;
			rec[0].h.id = (uint32_t)(seq % 1000) + 1;
			rec[0].h.cont = (uint8_t)cont;
			rec[0].h.ts_ns = seq;
			rec[0].strdef.len = (uint16_t)len;
			for (unsigned i = 0; i < len; i++) {
				unsigned char b = (unsigned char)((seq + i) & 0xff);
				if (i < 44)
					rec[0].strdef.bytes[i] = (char)b;
				else
					rec[1 + (i - 44) / 64].raw[(i - 44) % 64] = b;
			}
			put(&w, rec, 1 + cont);
		} else {
			put_sample(&w, seq);
		}
	}
	return NULL;
}

struct spsc_check {
	uint64_t next, errors, strdefs;
};

static int spsc_rec(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct spsc_check *c = arg;

	if (rec->h.ts_ns != c->next)
		c->errors++;
	if (rec->h.type == ATEL_REC_STRDEF) {
		if (!tu_strdef_ok(rec, nslots, (unsigned)(rec->h.ts_ns & 0xff)))
			c->errors++;
		c->strdefs++;
	} else if (rec->h.type != ATEL_REC_SAMPLE || rec->sample.value != (double)rec->h.ts_ns || nslots != 1) {
		c->errors++;
	}
	(void)pos;
	c->next = rec->h.ts_ns + 1;
	return 0;
}

static void test_spsc(void **state)
{
	struct atel_segment seg;
	struct spsc p;
	struct spsc_check c = { 0 };
	struct atel_scan_stats st = { 0 };
	pthread_t th;
	uint64_t deadline = mono_ns() + TIMEOUT_NS;
	unsigned spins = 0;

	(void)state;
	mkseg(&seg, 1, 4096);
	p.seg = &seg;
	p.n = spsc_records;
	assert_int_equal(pthread_create(&th, NULL, spsc_producer, &p), 0);
	while (c.next < p.n) {
		uint64_t t, h, done;
		assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
		if (h == t) {
			if (mono_ns() > deadline)
				break;
			backoff(&spins);
			continue;
		}
		done = atel__ring_scan(&seg, 0, t, h, 0, spsc_rec, &c, &st);
		atel__ring_release(&seg, 0, done);
		if (c.errors)
			break;
	}
	if (c.next < p.n)
		fail_msg("timed out or failed after %llu of %llu records", (unsigned long long)c.next,
			 (unsigned long long)p.n);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(c.errors, 0);
	assert_int_equal(c.next, p.n);
	assert_int_equal(st.records, p.n);
	assert_int_equal(st.invalid_slots, 0);
	assert_int_equal(c.strdefs, p.n / 997);
	assert_int_equal(atomic_load(&seg.dir[0].drops_invalid), 0);
	atel__segment_detach(&seg);
}

/* ------------------------------------------------------------------------ */
/* multiproc: 8 processes x 4 threads, 24 rings, 4 claim rounds per thread   */

#define MP_PROCS 8
#define MP_THREADS 4
#define MP_RINGS 24
#define MP_ROUNDS 4

static uint64_t mp_per_thread(void)
{
	/* samples per thread; fewer under sanitizers via RECORDS */
	return spsc_records >= 100000000 ? 200000 : 20000;
}

struct mp_thread {
	struct atel_segment *seg;
	uint64_t n;
	int failed;
};

static void *mp_thread_main(void *arg)
{
	struct mp_thread *t = arg;
	struct atel_owner o = me();
	uint64_t seq = 0, per_round = t->n / MP_ROUNDS;

	for (int round = 0; round < MP_ROUNDS; round++) {
		struct atel_ring_writer w;
		uint64_t deadline = mono_ns() + TIMEOUT_NS;
		unsigned spins = 0;
		int r;

		while ((r = atel__ring_claim(t->seg, &o, (uint32_t)o.tid * 2654435761u)) == -EAGAIN) {
			if (mono_ns() > deadline) {
				t->failed = 1;
				return NULL;
			}
			backoff(&spins);
		}
		if (r < 0) {
			t->failed = 1;
			return NULL;
		}
		atel__ring_writer_init(&w, t->seg, (uint32_t)r);
		put_begin(&w, &o);
		uint64_t count = round == MP_ROUNDS - 1 ? t->n - seq : per_round;
		for (uint64_t i = 0; i < count; i++)
			put_sample(&w, seq++);
		put_end(&w);
		atel__ring_unclaim(t->seg, (uint32_t)r);
	}
	return NULL;
}

static void mp_child(uint64_t n)
{
	struct atel_segment seg;
	struct mp_thread t[MP_THREADS];
	pthread_t th[MP_THREADS];
	char err[256];
	int failed = 0;

	if (atel__segment_attach(&seg, path, err, sizeof(err)) != 0)
		_exit(10);
	for (int i = 0; i < MP_THREADS; i++) {
		t[i] = (struct mp_thread){ &seg, n, 0 };
		if (pthread_create(&th[i], NULL, mp_thread_main, &t[i]) != 0)
			_exit(11);
	}
	for (int i = 0; i < MP_THREADS; i++) {
		pthread_join(th[i], NULL);
		failed |= t[i].failed;
	}
	atel__segment_detach(&seg);
	_exit(failed ? 12 : 0);
}

static void test_multiproc(void **state)
{
	struct atel_segment seg;
	static struct verifier v;
	pid_t kids[MP_PROCS];
	int alive = MP_PROCS, bad = 0;
	uint64_t n = mp_per_thread(), deadline = mono_ns() + TIMEOUT_NS;
	unsigned spins = 0;

	(void)state;
	mkseg(&seg, MP_RINGS, 256);
	verifier_init(&v, n);
	for (int i = 0; i < MP_PROCS; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0)
			mp_child(n);
	}
	while (alive > 0 && mono_ns() < deadline) {
		if (drain_all(&seg, &v, 0) == 0)
			backoff(&spins);
		for (int i = 0; i < MP_PROCS; i++) {
			int ws;
			if (kids[i] > 0 && waitpid(kids[i], &ws, WNOHANG) == kids[i]) {
				if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
					bad++;
				kids[i] = -1;
				alive--;
			}
		}
	}
	for (int i = 0; i < MP_PROCS; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	assert_int_equal(alive, 0);
	assert_int_equal(bad, 0);
	drain_all(&seg, &v, 1);
	verifier_check(&v, MP_PROCS * MP_THREADS);
	assert_int_equal(v.begins, MP_PROCS * MP_THREADS * MP_ROUNDS);
	assert_int_equal(v.ends, MP_PROCS * MP_THREADS * MP_ROUNDS);
	assert_int_equal(atomic_load(&seg.hdr->claims_total), MP_PROCS * MP_THREADS * MP_ROUNDS);
	for (uint32_t r = 0; r < MP_RINGS; r++)
		assert_int_equal(atomic_load(&seg.dir[r].state), ATEL_RING_FREE);
	verifier_free(&v);
	atel__segment_detach(&seg);
}

/* ------------------------------------------------------------------------ */
/* sigkill                                                                  */

/* child: claims a ring and writes samples until killed */
static void killed_child(void)
{
	struct atel_segment seg;
	struct atel_ring_writer w;
	struct atel_owner o = me();
	char err[256];
	int r;

	if (atel__segment_attach(&seg, path, err, sizeof(err)) != 0)
		_exit(10);
	r = atel__ring_claim(&seg, &o, 0);
	if (r < 0)
		_exit(11);
	atel__ring_writer_init(&w, &seg, (uint32_t)r);
	put_begin(&w, &o);
	for (uint64_t seq = 0;; seq++)
		put_sample(&w, seq);
}

/* child: claims a ring, writes `n` samples, then waits for its stdin pipe to close and releases */
static void polite_child(int rfd, int wfd, uint64_t n)
{
	struct atel_segment seg;
	struct atel_ring_writer w;
	struct atel_owner o = me();
	char err[256], c;
	int r;

	if (atel__segment_attach(&seg, path, err, sizeof(err)) != 0)
		_exit(10);
	r = atel__ring_claim(&seg, &o, 0);
	if (r < 0)
		_exit(11);
	atel__ring_writer_init(&w, &seg, (uint32_t)r);
	put_begin(&w, &o);
	for (uint64_t seq = 0; seq < n; seq++)
		put_sample(&w, seq);
	c = (char)r;
	if (write(wfd, &c, 1) != 1)
		_exit(12);
	while (read(rfd, &c, 1) > 0)
		;
	put_end(&w);
	atel__ring_unclaim(&seg, (uint32_t)r);
	_exit(0);
}

static void test_sigkill(void **state)
{
	struct atel_segment seg;
	static struct verifier v;
	struct atel_owner self = me();
	uint64_t deadline = mono_ns() + TIMEOUT_NS, t, h, head_at_death, got_before;
	uint64_t gen;
	unsigned spins = 0;
	pid_t kid;
	int ws, up[2], down[2];
	char c;

	(void)state;
	mkseg(&seg, 1, 1024);
	verifier_init(&v, 1u << 30);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0)
		killed_child();
	/* drain concurrently until the child has written well past one ring's worth */
	while (v.n == 0 || v.s[0].got < 50000) {
		if (mono_ns() > deadline) {
			kill(kid, SIGKILL);
			fail_msg("producer made no progress");
		}
		if (drain_all(&seg, &v, 0) == 0)
			backoff(&spins);
	}
	got_before = v.s[0].got;
	assert_int_equal(kill(kid, SIGKILL), 0);
	assert_int_equal(waitpid(kid, &ws, 0), kid);
	assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);

	/* detected dead by pid (ESRCH) */
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_ACTIVE);
	assert_int_equal(seg.dir[0].owner_pid, kid);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	assert_int_equal(atel__ring_reclaim_begin(&seg, 0), 0);
	/* drain what it published: the stream is gap-free up to the last published record */
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	head_at_death = h;
	drain_all(&seg, &v, 1);
	assert_int_equal(v.n, 1);
	assert_true(v.s[0].got >= got_before);
	assert_int_equal(v.s[0].got, head_at_death - 1); /* every published slot but BEGIN was a sample */
	for (uint64_t s = 0; s < v.s[0].got; s++)
		assert_true(v.s[0].seen[s / 8] & (1u << (s % 8)));
	assert_int_equal(v.order_errors, 0);
	atel__ring_reclaim_end(&seg, 0, head_at_death);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_FREE);
	gen = seg.dir[0].generation;

	/* reused by a new process; positions continue after the dead owner's */
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		close(up[0]);
		close(down[1]);
		polite_child(down[0], up[1], 100);
	}
	close(up[1]);
	close(down[0]);
	assert_int_equal(read(up[0], &c, 1), 1);
	assert_int_equal(c, 0);
	assert_int_equal(seg.dir[0].owner_pid, kid);
	assert_int_equal(seg.dir[0].generation, gen + 1);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 0);
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	assert_int_equal(t, head_at_death);
	assert_int_equal(h, head_at_death + 101);
	/*
	 * pid reuse: a live process with the recorded pid but another start time
	 * is not the owner. Simulated with our own (live) pid and a wrong start.
	 */
	{
		int32_t save_pid = seg.dir[0].owner_pid;
		uint64_t save_start = seg.dir[0].owner_start;

		seg.dir[0].owner_pid = self.pid;
		seg.dir[0].owner_start = self.start + 12345;
		assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
		seg.dir[0].owner_start = self.start;
		assert_int_equal(atel__ring_owner_dead(&seg, 0), 0);
		seg.dir[0].owner_pid = save_pid;
		seg.dir[0].owner_start = save_start;
	}
	/* the polite owner releases with END; nothing is reclaimed from under it */
	close(down[1]);
	assert_int_equal(waitpid(kid, &ws, 0), kid);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	close(up[0]);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_FREE);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), -ENOENT);
	verifier_free(&v);
	atel__segment_detach(&seg);
}

/* ------------------------------------------------------------------------ */
/* exhaustion: 8 threads, 4 rings                                           */

#define EX_THREADS 8
#define EX_RINGS 4
#define EX_RECORDS 20000

struct ex_thread {
	struct atel_segment *seg;
	pthread_barrier_t *bar;
	int ring;
};

static void *ex_thread_main(void *arg)
{
	struct ex_thread *t = arg;
	struct atel_owner o = me();
	struct atel_ring_writer w;

	t->ring = atel__ring_claim(t->seg, &o, (uint32_t)o.tid);
	/* every thread has tried before anyone releases: exactly EX_RINGS succeed */
	pthread_barrier_wait(t->bar);
	if (t->ring < 0) {
		/* what the producer library does per refused record */
		for (int i = 0; i < EX_RECORDS; i++)
			atomic_fetch_add_explicit(&t->seg->hdr->drops_no_ring, 1, memory_order_relaxed);
		return NULL;
	}
	atel__ring_writer_init(&w, t->seg, (uint32_t)t->ring);
	put_begin(&w, &o);
	for (uint64_t i = 0; i < EX_RECORDS; i++)
		put_sample(&w, i);
	put_end(&w);
	atel__ring_unclaim(t->seg, (uint32_t)t->ring);
	return NULL;
}

static void test_exhaustion(void **state)
{
	struct atel_segment seg;
	static struct verifier v;
	struct ex_thread t[EX_THREADS];
	pthread_t th[EX_THREADS];
	pthread_barrier_t bar;
	uint64_t deadline = mono_ns() + TIMEOUT_NS;
	int claimed = 0, refused = 0, seen_ring[EX_RINGS] = { 0 };
	unsigned spins = 0;

	(void)state;
	mkseg(&seg, EX_RINGS, 64);
	verifier_init(&v, EX_RECORDS);
	assert_int_equal(pthread_barrier_init(&bar, NULL, EX_THREADS), 0);
	for (int i = 0; i < EX_THREADS; i++) {
		t[i] = (struct ex_thread){ &seg, &bar, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, ex_thread_main, &t[i]), 0);
	}
	/* drain until every stream ended */
	while (v.ends < EX_RINGS && mono_ns() < deadline) {
		if (drain_all(&seg, &v, 0) == 0)
			backoff(&spins);
	}
	for (int i = 0; i < EX_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (t[i].ring >= 0) {
			claimed++;
			assert_true(t[i].ring < EX_RINGS);
			seen_ring[t[i].ring]++;
		} else {
			assert_int_equal(t[i].ring, -EAGAIN);
			refused++;
		}
	}
	pthread_barrier_destroy(&bar);
	drain_all(&seg, &v, 1);
	assert_int_equal(claimed, EX_RINGS);
	assert_int_equal(refused, EX_THREADS - EX_RINGS);
	for (int r = 0; r < EX_RINGS; r++) {
		assert_int_equal(seen_ring[r], 1);
		assert_int_equal(atomic_load(&seg.dir[r].drops_full), 0);
		assert_int_equal(atomic_load(&seg.dir[r].drops_invalid), 0);
	}
	assert_int_equal(atomic_load(&seg.hdr->drops_no_ring), (uint64_t)(EX_THREADS - EX_RINGS) * EX_RECORDS);
	verifier_check(&v, EX_RINGS);
	verifier_free(&v);
	atel__segment_detach(&seg);
}

/* ------------------------------------------------------------------------ */
/* hostile producer                                                         */

struct hostile {
	struct atel_segment *seg;
	_Atomic int ring; /* -2 until claimed */
};

static void *hostile_main(void *arg)
{
	struct hostile *h = arg;
	struct atel_owner o = me();
	struct atel_ring_writer w;
	uint64_t x = 0x2545f4914f6cdd1dull ^ (uint64_t)o.tid;
	int r = atel__ring_claim(h->seg, &o, 0);

	atomic_store(&h->ring, r);
	if (r < 0)
		return NULL;
	atel__ring_writer_init(&w, h->seg, (uint32_t)r);
	put_begin(&w, &o);
	/* garbage records, published by the protocol (no data race: it is our ring) */
	for (int i = 0; i < 20000; i++) {
		union atel_slot g[4];
		for (unsigned k = 0; k < sizeof(g) / 8; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			g[k / 8].words[k % 8] = x;
		}
		if (i % 3 == 0) { /* plausible headers with random lengths */
			g[0].h.type = (uint8_t)(1 + x % 12);
			g[0].h.reserved = 0;
		}
		put(&w, g, 1 + (unsigned)(x % 4));
	}
	/* then bogus positions: head jumps past capacity */
	atomic_store_explicit(&w.desc->head, w.head + 10 * w.capacity, memory_order_release);
	atel__ring_unclaim(h->seg, (uint32_t)r);
	return NULL;
}

struct good {
	struct atel_segment *seg;
	uint64_t n;
};

static void *good_main(void *arg)
{
	struct good *g = arg;
	struct atel_owner o = me();
	struct atel_ring_writer w;
	int r = atel__ring_claim(g->seg, &o, 1);

	if (r < 0)
		return NULL;
	atel__ring_writer_init(&w, g->seg, (uint32_t)r);
	put_begin(&w, &o);
	for (uint64_t i = 0; i < g->n; i++)
		put_sample(&w, i);
	put_end(&w);
	atel__ring_unclaim(g->seg, (uint32_t)r);
	return NULL;
}

static int ignore_rec(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	(void)arg;
	(void)pos;
	(void)rec;
	(void)nslots;
	return 0;
}

static void test_hostile(void **state)
{
	struct atel_segment seg;
	static struct verifier v;
	struct hostile hs;
	struct good gd[2];
	pthread_t hth, gth[2];
	uint64_t deadline = mono_ns() + TIMEOUT_NS, invalid = 0;
	int quarantined = 0, reclaimed = 0, hr;
	unsigned spins = 0;

	(void)state;
	mkseg(&seg, 3, 256);
	verifier_init(&v, 50000);
	hs.seg = &seg;
	atomic_store(&hs.ring, -2);
	assert_int_equal(pthread_create(&hth, NULL, hostile_main, &hs), 0);
	while ((hr = atomic_load(&hs.ring)) == -2)
		backoff(&spins);
	assert_int_equal(hr, 0);
	for (int i = 0; i < 2; i++) {
		gd[i] = (struct good){ &seg, 50000 };
		assert_int_equal(pthread_create(&gth[i], NULL, good_main, &gd[i]), 0);
	}
	while ((v.ends < 2 || !reclaimed) && mono_ns() < deadline) {
		uint64_t moved = 0;
		for (uint32_t r = 0; r < 3; r++) {
			struct atel_scan_stats st = { 0 };
			struct vctx c = { &v, r };
			uint64_t t, h, done;

			if (atel__ring_poll(&seg, r, &t, &h) != 0) {
				assert_int_equal(r, (uint32_t)hr);
				atel__ring_quarantine(&seg, r);
				quarantined++;
				if (atel__ring_owner_dead(&seg, r) == 1 && atel__ring_reclaim_begin(&seg, r) == 0) {
					atel__ring_reclaim_end(&seg, r, atomic_load(&seg.dir[r].head));
					reclaimed++;
				}
				continue;
			}
			if (h == t)
				continue;
			done = atel__ring_scan(&seg, r, t, h, 0, r == (uint32_t)hr ? ignore_rec : verify_rec, &c,
					       &st);
			atel__ring_release(&seg, r, done);
			if (r == (uint32_t)hr)
				invalid += st.invalid_slots;
			else
				assert_int_equal(st.invalid_slots, 0);
			moved += done - t;
		}
		if (!moved)
			backoff(&spins);
	}
	assert_int_equal(pthread_join(hth, NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(gth[i], NULL), 0);
	assert_int_equal(reclaimed, 1);
	assert_true(quarantined >= 1);
	assert_true(invalid > 1000);
	/* damage is counted on the hostile ring only */
	assert_int_equal(atomic_load(&seg.dir[hr].drops_invalid), invalid);
	assert_int_equal(atomic_load(&seg.dir[hr].state), ATEL_RING_FREE);
	for (uint32_t r = 0; r < 3; r++)
		if (r != (uint32_t)hr)
			assert_int_equal(atomic_load(&seg.dir[r].drops_invalid), 0);
	/* the good streams are complete and in order */
	drain_all(&seg, &v, 1);
	verifier_check(&v, 2);
	verifier_free(&v);
	atel__segment_detach(&seg);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spsc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multiproc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	};
	char filter[64];

	if (argc > 1) {
		snprintf(filter, sizeof(filter), "test_%s", argv[1]);
		cmocka_set_test_filter(filter);
	}
	if (argc > 2)
		spsc_records = strtoull(argv[2], NULL, 10);
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
