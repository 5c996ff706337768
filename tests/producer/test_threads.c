/* SPDX-License-Identifier: MIT */
/*
 * libatel concurrency: one ring per thread, processes and fork (a child never
 * writes its parent's ring), thread churn (10,000 short-lived threads leak no
 * ring), signal-handler reentrancy. Suites concurrent (TSan) and unit.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "atel_test.h"
#include "claim.h"
#include "ptest.h"

static char path[256];
static struct atel_segment seg;

static void open_seg(const char *tag, uint32_t rings, uint32_t cap)
{
	/* a test that failed half-way left the library attached to its segment: start clean */
	atel_shutdown();
	pt_path(path, sizeof(path), tag);
	assert_int_equal(pt_create(&seg, path, rings, cap), 0);
	assert_int_equal(atel_init(path), 0);
}

static void close_seg(void)
{
	atel_shutdown();
	atel__segment_detach(&seg);
	unlink(path);
}

/* ------------------------------------------------------------------------ */

#define NTHR 8
#define PER 4000

struct thr_arg {
	int idx;
	int tid;
	atel_series shared;
};

static void *worker(void *p)
{
	struct thr_arg *a = p;
	char v[8];
	atel_series mine;

	a->tid = (int)syscall(SYS_gettid);
	snprintf(v, sizeof(v), "%d", a->idx);
	mine = atel_counter("thr_total", "t", v, NULL);
	for (int i = 0; i < PER; i++) {
		atel_add(mine, 1);
		atel_add(a->shared, 2);
	}
	{
		atel_span s = atel_trace_start("work", ATEL_SPAN_INTERNAL);
		atel_span_set_int(&s, "idx", a->idx);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
	return NULL;
}

static void test_threads_own_rings(void **state)
{
	pthread_t th[NTHR];
	struct thr_arg args[NTHR];
	atel_series shared;
	size_t rings_used = 0, samples = 0;
	double shared_sum = 0;
	atel_stats st;

	(void)state;
	open_seg("thr", 16, 16384);
	shared = atel_counter("shared_total", NULL);
	for (int i = 0; i < NTHR; i++) {
		args[i] = (struct thr_arg){ .idx = i, .shared = shared };
		assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
	}
	for (int i = 0; i < NTHR; i++)
		pthread_join(th[i], NULL);
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		struct pt_ring pr;

		/* every worker exited: its ring is free again and ends with END */
		assert_int_equal(atomic_load(&atel__seg_desc(&seg, r)->state), ATEL_RING_FREE);
		assert_int_equal(pt_read(&seg, r, &pr), 0);
		if (pr.n == 0) {
			pt_free(&pr);
			continue;
		}
		assert_int_equal(pt_check_defs(&pr), 0);
		assert_int_equal(pr.recs[0].s->h.type, ATEL_REC_BEGIN);
		assert_int_equal(pr.recs[pr.n - 1].s->h.type, ATEL_REC_END);
		/* one claim per worker; a ring a worker released may hold the next worker's claim too */
		for (size_t k = 0; k < pr.n; k++) {
			size_t nsamp = 0, nspan = 0, e;
			int found = -1;

			if (pr.recs[k].s->h.type != ATEL_REC_BEGIN)
				continue;
			rings_used++;
			for (int i = 0; i < NTHR; i++)
				if (pr.recs[k].s->begin.tid == args[i].tid)
					found = i;
			assert_true(found >= 0);
			for (e = k + 1; e < pr.n && pr.recs[e].s->h.type != ATEL_REC_END; e++) {
				nsamp += pr.recs[e].s->h.type == ATEL_REC_SAMPLE;
				nspan += pr.recs[e].s->h.type == ATEL_REC_SPAN_START;
			}
			assert_true(e < pr.n);
			assert_int_equal(nsamp, 2 * PER);
			assert_int_equal(nspan, 1);
		}
		for (size_t k = 0; k < pr.n; k++) {
			const union atel_slot *s = pr.recs[k].s;
			if (s->h.type == ATEL_REC_SAMPLE) {
				samples++;
				if (s->sample.value == 2.0)
					shared_sum += 2.0;
			}
		}
		pt_free(&pr);
	}
	assert_int_equal(rings_used, NTHR);
	assert_int_equal(samples, 2 * PER * NTHR);
	assert_true(shared_sum == 2.0 * PER * NTHR);
	atel_stats_get(&st);
	assert_int_equal(st.drops_ring_full + st.drops_no_ring + st.drops_no_def, 0);
	close_seg();
}

/* ------------------------------------------------------------------------ */

static void *churn_one(void *p)
{
	atel_add((atel_series)p, 1);
	return NULL;
}

static void test_thread_churn(void **state)
{
	enum { TOTAL = 10000, BATCH = 4 };
	atel_series c;
	atel_stats st0, st;

	(void)state;
	open_seg("churn", 8, 4096);
	c = atel_counter("churn_total", NULL);
	atel_stats_get(&st0);
	for (int done = 0; done < TOTAL; done += BATCH) {
		pthread_t th[BATCH];
		for (int i = 0; i < BATCH; i++)
			assert_int_equal(pthread_create(&th[i], NULL, churn_one, (void *)c), 0);
		for (int i = 0; i < BATCH; i++)
			pthread_join(th[i], NULL);
		for (uint32_t r = 0; r < seg.ring_count; r++)
			pt_drain(&seg, r); /* we are the consumer */
	}
	for (uint32_t r = 0; r < seg.ring_count; r++)
		assert_int_equal(atomic_load(&atel__seg_desc(&seg, r)->state), ATEL_RING_FREE);
	assert_int_equal(atomic_load(&seg.hdr->claims_total), TOTAL);
	assert_int_equal(atomic_load(&seg.hdr->drops_no_ring), 0);
	atel_stats_get(&st);
	assert_int_equal(st.rings_claimed - st0.rings_claimed, TOTAL);
	assert_int_equal(st.rings_released - st0.rings_released, TOTAL);
	assert_int_equal(st.records - st0.records, TOTAL);
	/* BEGIN + END per thread */
	assert_int_equal(st.meta - st0.meta, 2 * TOTAL);
	close_seg();
}

/* ------------------------------------------------------------------------ */

/* fork: the child claims its own ring; the parent's ring never sees the child's records. */
static void test_fork(void **state)
{
	atel_series c;
	int pring, cring = -1, status;
	pid_t pid;
	struct pt_ring r;

	(void)state;
	open_seg("fork", 8, 1024);
	c = atel_counter("fork_total", "who", "x", NULL);
	atel_add(c, 1);
	pring = pt_ring_of(&seg, getpid());
	assert_true(pring >= 0);
	pid = fork();
	if (pid == 0) {
		atel_span s;
		atel_add(c, 7);
		s = atel_trace_start("child-work", ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
		/* the child is a new process with a ring of its own */
		_exit(pt_ring_of(&seg, getpid()) >= 0 && pt_ring_of(&seg, getpid()) != pring ? 0 : 3);
	}
	assert_true(pid > 0);
	atel_add(c, 2);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* parent's ring: 1 and 2 only */
	assert_int_equal(pt_read(&seg, (uint32_t)pring, &r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 2);
	assert_int_equal(pt_count(&r, ATEL_REC_SPAN_START), 0);
	assert_int_equal(r.recs[0].s->begin.pid, getpid());
	pt_free(&r);
	/* the child's ring: BEGIN with the child's pid, its sample (7) with definitions, its span */
	for (uint32_t i = 0; i < seg.ring_count; i++) {
		if (i == (uint32_t)pring)
			continue;
		assert_int_equal(pt_read(&seg, i, &r), 0);
		if (r.n && r.recs[0].s->begin.pid == pid) {
			cring = (int)i;
			assert_int_equal(pt_check_defs(&r), 0);
			assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 1);
			assert_true(r.recs[pt_find(&r, ATEL_REC_SAMPLE, 0)].s->sample.value == 7.0);
			assert_int_equal(pt_count(&r, ATEL_REC_SPAN_START), 1);
			/* _exit runs no handlers: the ring stays owned until the consumer reclaims it */
			assert_int_equal(atomic_load(&atel__seg_desc(&seg, i)->state), ATEL_RING_ACTIVE);
		}
		pt_free(&r);
	}
	assert_true(cring >= 0);
	assert_int_equal(atel__ring_owner_dead(&seg, (uint32_t)cring), 1);
	close_seg();
}

/* Several processes at once, each exits normally (exit releases the ring). */
static void test_processes(void **state)
{
	enum { NPROC = 4, N = 2000 };
	pid_t pids[NPROC];
	atel_series c;
	size_t found = 0;

	(void)state;
	open_seg("proc", 8, 8192);
	c = atel_counter("proc_total", NULL);
	for (int i = 0; i < NPROC; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			for (int k = 0; k < N; k++)
				atel_add(c, 1);
			exit(0);
		}
	}
	for (int i = 0; i < NPROC; i++) {
		int status;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* a ring one process released may have been claimed by the next (a slow machine
	 * serialises them): count per claim, from each BEGIN to its END */
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		struct pt_ring pr;
		assert_int_equal(pt_read(&seg, r, &pr), 0);
		assert_int_equal(pt_check_defs(&pr), 0);
		for (size_t k = 0; k < pr.n; k++) {
			size_t samples = 0, e;
			int owner = -1;

			if (pr.recs[k].s->h.type != ATEL_REC_BEGIN)
				continue;
			for (int i = 0; i < NPROC; i++)
				if (pr.recs[k].s->begin.pid == pids[i])
					owner = i;
			assert_true(owner >= 0);
			for (e = k + 1; e < pr.n && pr.recs[e].s->h.type != ATEL_REC_END; e++)
				samples += pr.recs[e].s->h.type == ATEL_REC_SAMPLE;
			assert_true(e < pr.n); /* exit() released the ring: END written */
			assert_int_equal(samples, N);
			found++;
		}
		if (pr.n)
			assert_int_equal(atomic_load(&atel__seg_desc(&seg, r)->state), ATEL_RING_FREE);
		pt_free(&pr);
	}
	assert_int_equal(found, NPROC);
	close_seg();
}

/* ------------------------------------------------------------------------ */

static atel_series sig_series;
static volatile sig_atomic_t sig_calls;

static void on_alarm(int sig)
{
	(void)sig;
	atel_add(sig_series, 1);
	sig_calls++;
}

/* A handler that interrupts a recording call never interleaves with it: its record is dropped, counted. */
static void test_signal_reentrancy(void **state)
{
	struct itimerval it = { { 0, 200 }, { 0, 200 } };
	struct sigaction sa;
	atel_series main_series;
	atel_stats st0, st;
	struct pt_ring r;
	long main_calls = 0;
	uint64_t t0 = atel__now_ns();

	(void)state;
	open_seg("sig", 2, 1u << 18);
	main_series = atel_counter("main_total", NULL);
	sig_series = atel_counter("sig_total", NULL);
	atel_add(main_series, 0); /* warm: ring claimed, both defined */
	atel_add(sig_series, 0);
	atel_stats_get(&st0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	while (sig_calls < 200 && atel__now_ns() - t0 < 20000000000ull && main_calls < 200000) {
		atel_add(main_series, 1);
		main_calls++;
	}
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	signal(SIGALRM, SIG_DFL);
	atel_stats_get(&st);
	assert_int_equal((st.records - st0.records) + (st.drops_reentrant - st0.drops_reentrant),
			 (uint64_t)main_calls + (uint64_t)sig_calls);
	assert_int_equal(pt_read(&seg, (uint32_t)pt_ring_of(&seg, getpid()), &r), 0);
	assert_int_equal(pt_count(&r, ATEL_REC_SAMPLE), 2 + (st.records - st0.records));
	pt_free(&r);
	close_seg();
}

#define INTERN_THREADS 6
#define INTERN_SERIES 300

static atel_series interned[INTERN_THREADS][INTERN_SERIES];

static void *intern_worker(void *p)
{
	int idx = (int)(intptr_t)p;

	for (int i = 0; i < INTERN_SERIES; i++) {
		char v[16];
		snprintf(v, sizeof(v), "v%d", (i * 7 + idx) % INTERN_SERIES);
		interned[idx][(i * 7 + idx) % INTERN_SERIES] = atel_counter("intern_total", "k", v, NULL);
		atel_add(interned[idx][(i * 7 + idx) % INTERN_SERIES], 1);
		/* spans intern names too */
		atel_span s = atel_trace_start(v, ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
	return NULL;
}

/* Many threads intern the same names at once (lock-free lookups racing inserts and table growth). */
static void test_concurrent_interning(void **state)
{
	pthread_t th[INTERN_THREADS];
	atel_stats st;

	(void)state;
	open_seg("intern", 8, 4096);
	for (int i = 0; i < INTERN_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, intern_worker, (void *)(intptr_t)i), 0);
	for (int k = 0; k < 50; k++)
		atel_stats_get(&st); /* concurrently with the workers' counters */
	for (int i = 0; i < INTERN_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int j = 0; j < INTERN_SERIES; j++) {
		assert_non_null(interned[0][j]);
		for (int i = 1; i < INTERN_THREADS; i++)
			assert_ptr_equal(interned[i][j], interned[0][j]);
		for (int k = 0; k < j; k++)
			assert_ptr_not_equal(interned[0][k], interned[0][j]);
	}
	atel_stats_get(&st);
	assert_int_equal(st.invalid, 0);
	close_seg();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_own_rings),
		cmocka_unit_test(test_thread_churn),
		cmocka_unit_test(test_fork),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_signal_reentrancy),
		cmocka_unit_test(test_concurrent_interning),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
