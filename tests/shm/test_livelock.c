/* SPDX-License-Identifier: MIT */
/*
 * Owner liveness locks (docs/abi.md 5.1; shm/livelock.h, claim.c *_live):
 * the lock helpers between open file descriptions, death of the holder
 * (SIGKILL), claim and release with the ATEL_OWNER_LOCKED flag, the lock
 * overriding the pid, fork (the child's close of the inherited fd keeps the
 * parent's locks), a ring still locked by a releasing process is skipped,
 * the fallback without OFD locks, and (also run by TSan) threads claiming
 * and releasing concurrently never lose their own lock.
 *
 *   test_livelock [unit|threads]
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "atel_test.h"
#include "claim.h"
#include "livelock.h"
#include "segment.h"

static char path[256];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/atel-test-livelock-%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void mkseg(struct atel_segment *seg, uint32_t rings)
{
	struct atel_segment_config cfg = { .ring_count = rings, .ring_capacity = 64 };
	char err[256] = "";

	assert_int_equal(atel__segment_create(seg, path, &cfg, err, sizeof(err)), 0);
}

static struct atel_owner me(void)
{
	struct atel_owner o = { .pid = getpid(), .tid = gettid(), .start = atel__proc_start_time(getpid()) };
	return o;
}

/* A child that locks ring's byte through its own description, says so on a pipe, then waits to be killed. */
static pid_t locker(const struct atel_segment *seg, uint32_t ring)
{
	int pfd[2];
	char c;
	pid_t k;

	assert_int_equal(pipe(pfd), 0);
	k = fork();
	assert_true(k >= 0);
	if (k == 0) {
		int fd = atel__segment_reopen(seg, O_RDWR);

		c = (fd >= 0 && atel__live_lock(fd, ring) == 0) ? 'y' : 'n';
		if (write(pfd[1], &c, 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	close(pfd[0]);
	assert_int_equal(c, 'y');
	return k;
}

static void reap(pid_t k)
{
	int st;

	kill(k, SIGKILL);
	assert_int_equal(waitpid(k, &st, 0), k);
}

static void test_helpers(void **state)
{
	struct atel_segment seg;
	int a, b, ro;

	(void)state;
	mkseg(&seg, 4);
	a = atel__segment_reopen(&seg, O_RDWR);
	b = atel__segment_reopen(&seg, O_RDWR);
	ro = atel__segment_reopen(&seg, O_RDONLY);
	assert_true(a >= 0 && b >= 0 && ro >= 0);
	assert_int_equal(atel__live_held(ro, 2), 0);
	assert_int_equal(atel__live_lock(a, 2), 0);
	assert_int_equal(atel__live_lock(a, 2), 0);        /* again through the same description */
	assert_int_equal(atel__live_held(ro, 2), 1);       /* a read-only descriptor can test */
	assert_int_equal(atel__live_held(b, 2), 1);
	assert_int_equal(atel__live_held(a, 2), 0);        /* its own lock is no conflict */
	assert_int_equal(atel__live_held(ro, 1), 0);       /* one byte per ring */
	assert_int_equal(atel__live_held(ro, 3), 0);
	assert_int_equal(atel__live_lock(b, 2), -EAGAIN);  /* another description */
	assert_int_equal(atel__live_lock(ro, 1), -EBADF);  /* a write lock needs O_RDWR */
	assert_int_equal(atel__live_unlock(a, 2), 0);
	assert_int_equal(atel__live_held(ro, 2), 0);
	assert_int_equal(atel__live_lock(b, 2), 0);
	close(b);                                          /* the description's last fd: lock gone */
	assert_int_equal(atel__live_held(ro, 2), 0);
	assert_int_equal(atel__live_held(-1, 2), -EBADF);
	assert_int_equal(atel__live_lock(-1, 2), -EBADF);
	close(a);
	close(ro);
	atel__segment_detach(&seg);
	/* a name that now is another file is refused */
	mkseg(&seg, 4);
	{
		struct atel_segment old = seg;

		atel__segment_unlink(path);
		mkseg(&seg, 4);
		assert_int_equal(atel__segment_reopen(&old, O_RDWR), -ESTALE);
		atel__segment_detach(&old);
	}
	atel__segment_detach(&seg);
}

static void test_holder_killed(void **state)
{
	struct atel_segment seg;
	int ro;
	pid_t k;

	(void)state;
	mkseg(&seg, 4);
	ro = atel__segment_reopen(&seg, O_RDONLY);
	k = locker(&seg, 3);
	assert_int_equal(atel__live_held(ro, 3), 1);
	reap(k); /* SIGKILL: the kernel drops the lock */
	assert_int_equal(atel__live_held(ro, 3), 0);
	close(ro);
	atel__segment_detach(&seg);
}

static void test_exec_drops_lock(void **state)
{
	struct atel_segment seg;
	int ro, pfd[2];
	char c;
	pid_t k;

	(void)state;
	mkseg(&seg, 2);
	ro = atel__segment_reopen(&seg, O_RDONLY);
	assert_int_equal(pipe(pfd), 0);
	k = fork();
	assert_true(k >= 0);
	if (k == 0) {
		/* a producer that execs: its O_CLOEXEC descriptor, and so its locks, do not survive */
		int fd = atel__segment_reopen(&seg, O_RDWR);

		c = (fd >= 0 && atel__live_lock(fd, 1) == 0) ? 'y' : 'n';
		close(pfd[0]);
		if (write(pfd[1], &c, 1) != 1)
			_exit(2);
		close(pfd[1]);
		execlp("sleep", "sleep", "60", (char *)NULL);
		_exit(3);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(c, 'y');
	/* wait for the exec: the child's comm becomes "sleep" */
	for (int i = 0; i < 2000; i++) {
		char p[64], comm[32] = "";
		FILE *f;

		snprintf(p, sizeof(p), "/proc/%d/comm", (int)k);
		f = fopen(p, "r");
		if (f) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		if (!strncmp(comm, "sleep", 5))
			break;
		usleep(5000);
	}
	assert_int_equal(atel__live_held(ro, 1), 0); /* pid alive, lock gone: the ring would be reclaimed */
	assert_int_equal(kill(k, 0), 0);
	reap(k);
	close(pfd[0]);
	close(ro);
	atel__segment_detach(&seg);
}

static void test_claim_flag_and_release(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();
	int fd, ro, r;

	(void)state;
	mkseg(&seg, 4);
	fd = atel__segment_reopen(&seg, O_RDWR);
	ro = atel__segment_reopen(&seg, O_RDONLY);
	r = atel__ring_claim_live(&seg, &o, 1, fd);
	assert_int_equal(r, 1);
	assert_int_equal(seg.dir[1].owner_flags, ATEL_OWNER_LOCKED);
	assert_int_equal(atel__live_held(ro, 1), 1);
	assert_int_equal(atel__ring_owner_dead_live(&seg, 1, ro), 0);
	/* the lock, not the pid, decides: a pid that means nothing here (another PID namespace) */
	seg.dir[1].owner_pid = 0x7ffffff0;
	assert_int_equal(atel__ring_owner_dead(&seg, 1), 1);          /* the 2.0 judgement would kill it */
	assert_int_equal(atel__ring_owner_dead_live(&seg, 1, ro), 0); /* the lock keeps it */
	atel__ring_unclaim_live(&seg, 1, fd);
	assert_int_equal(seg.dir[1].state, ATEL_RING_FREE);
	assert_int_equal(atel__live_held(ro, 1), 0);
	/* a flagged claim whose lock is gone is dead even with a live pid */
	r = atel__ring_claim_live(&seg, &o, 2, fd);
	assert_int_equal(r, 2);
	assert_int_equal(atel__live_unlock(fd, 2), 0);
	assert_int_equal(atel__ring_owner_dead_live(&seg, 2, ro), 1);
	assert_int_equal(atel__ring_owner_dead(&seg, 2), 0);
	atel__ring_unclaim_live(&seg, 2, fd);
	/* without a descriptor: no lock, no flag, the pid decides (ABI 2.0 behaviour) */
	r = atel__ring_claim_live(&seg, &o, 0, -1);
	assert_int_equal(r, 0);
	assert_int_equal(seg.dir[0].owner_flags, 0);
	assert_int_equal(atel__live_held(ro, 0), 0);
	assert_int_equal(atel__ring_owner_dead_live(&seg, 0, ro), 0);
	atel__ring_unclaim(&seg, 0);
	/* a descriptor that cannot lock (read-only; like a filesystem without OFD locks): claimed, unflagged */
	r = atel__ring_claim_live(&seg, &o, 3, ro);
	assert_int_equal(r, 3);
	assert_int_equal(seg.dir[3].owner_flags, 0);
	assert_int_equal(atel__ring_owner_dead_live(&seg, 3, ro), 0);
	atel__ring_unclaim_live(&seg, 3, ro);
	assert_int_equal(seg.dir[3].state, ATEL_RING_FREE);
	close(fd);
	close(ro);
	atel__segment_detach(&seg);
}

static void test_releasing_ring_skipped(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();
	int fd, r;
	pid_t k;

	(void)state;
	mkseg(&seg, 2);
	fd = atel__segment_reopen(&seg, O_RDWR);
	/* ring 0 is FREE but another process still holds its byte (between its FREE and its unlock) */
	k = locker(&seg, 0);
	r = atel__ring_claim_live(&seg, &o, 0, fd);
	assert_int_equal(r, 1);
	assert_int_equal(seg.dir[0].state, ATEL_RING_FREE);
	assert_int_equal(seg.dir[0].generation, 0);
	/* nothing else free: -EAGAIN, ring 0 left FREE */
	assert_int_equal(atel__ring_claim_live(&seg, &o, 0, fd), -EAGAIN);
	assert_int_equal(seg.dir[0].state, ATEL_RING_FREE);
	reap(k);
	assert_int_equal(atel__ring_claim_live(&seg, &o, 0, fd), 0);
	assert_int_equal(seg.dir[0].owner_flags, ATEL_OWNER_LOCKED);
	close(fd);
	atel__segment_detach(&seg);
}

static void test_fork_keeps_parent_lock(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();
	int fd, ro, st, r;
	pid_t k;

	(void)state;
	mkseg(&seg, 4);
	fd = atel__segment_reopen(&seg, O_RDWR);
	ro = atel__segment_reopen(&seg, O_RDONLY);
	r = atel__ring_claim_live(&seg, &o, 0, fd);
	assert_int_equal(r, 0);
	k = fork();
	assert_true(k >= 0);
	if (k == 0) {
		/* what libatel's atfork child handler does: close the inherited fd, open its own */
		struct atel_owner c = { getpid(), gettid(), 0 };
		int mine;

		close(fd);
		atel__live_atfork_child();
		mine = atel__segment_reopen(&seg, O_RDWR);
		if (atel__live_held(ro, 0) != 1)
			_exit(3); /* the parent's lock survived our close */
		if (atel__ring_claim_live(&seg, &c, 0, mine) != 1 || seg.dir[1].owner_flags != ATEL_OWNER_LOCKED)
			_exit(4);
		if (atel__live_held(ro, 1) != 1)
			_exit(5);
		_exit(0); /* exits holding ring 1: the kernel drops that lock */
	}
	assert_int_equal(waitpid(k, &st, 0), k);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(atel__ring_owner_dead_live(&seg, 0, ro), 0); /* the parent (us) */
	assert_int_equal(atel__ring_owner_dead_live(&seg, 1, ro), 1); /* the child, gone */
	close(fd);
	close(ro);
	atel__segment_detach(&seg);
}

/* threads of one process claim and release rings with one descriptor: a claim's lock is never lost */
struct thr {
	struct atel_segment *seg;
	int fd, ro;
	unsigned lost, claims;
};

static void *churn(void *arg)
{
	struct thr *t = arg;
	struct atel_owner o = { getpid(), gettid(), 1 };

	for (int i = 0; i < 3000; i++) {
		int r = atel__ring_claim_live(t->seg, &o, (uint32_t)(i * 7 + o.tid), t->fd);

		if (r < 0)
			continue;
		__atomic_fetch_add(&t->claims, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&t->seg->dir[r].owner_flags, __ATOMIC_RELAXED) != ATEL_OWNER_LOCKED ||
		    atel__live_held(t->ro, (uint32_t)r) != 1)
			__atomic_fetch_add(&t->lost, 1, __ATOMIC_RELAXED);
		atel__ring_unclaim_live(t->seg, (uint32_t)r, t->fd);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct atel_segment seg;
	struct thr t;
	pthread_t th[4];

	(void)state;
	mkseg(&seg, 3);
	t.seg = &seg;
	t.fd = atel__segment_reopen(&seg, O_RDWR);
	t.ro = atel__segment_reopen(&seg, O_RDONLY);
	t.lost = t.claims = 0;
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, churn, &t);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_true(t.claims > 0);
	assert_int_equal(t.lost, 0);
	for (uint32_t r = 0; r < 3; r++) {
		assert_int_equal(seg.dir[r].state, ATEL_RING_FREE);
		assert_int_equal(atel__live_held(t.ro, r), 0);
	}
	close(t.fd);
	close(t.ro);
	atel__segment_detach(&seg);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test_setup_teardown(test_helpers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_drops_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_flag_and_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_releasing_ring_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_keeps_parent_lock, setup, teardown),
	};
	const struct CMUnitTest threads[] = {
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	if (argc > 1 && !strcmp(argv[1], "threads"))
		return cmocka_run_group_tests(threads, NULL, NULL);
	return cmocka_run_group_tests(unit, NULL, NULL);
}
