/* SPDX-License-Identifier: MIT */
/*
 * Single-threaded ring, claim and reader tests: wrap-around, exact full-ring
 * behaviour, resynchronisation over garbage, `final` semantics, claim
 * exhaustion, dead-owner detection (including pid reuse) and reclaim.
 */
#include <setjmp.h>
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
#include "reader.h"
#include "ring.h"
#include "segment.h"
#include "shm_test_util.h"

static char path[256];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/atel-test-ring-%d", (int)getpid());
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

	assert_int_equal(atel__segment_create(seg, path, &cfg, err, sizeof(err)), 0);
}

static struct atel_owner me(void)
{
	struct atel_owner o = { .pid = getpid(), .tid = gettid(), .start = atel__proc_start_time(getpid()) };
	return o;
}

/* collects delivered records */
struct got {
	uint64_t n;
	uint64_t pos[4096];
	uint8_t type[4096];
	uint64_t seq[4096];
	unsigned nslots[4096];
	unsigned strseed;
	int str_bad;
	uint64_t stop_at; /* stop before this position (0: never) */
	uint64_t wraps;   /* records that crossed the end of a 64-slot ring */
};

static int collect(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct got *g = arg;

	if (g->stop_at && pos == g->stop_at)
		return 1;
	if (g->n < 4096) {
		g->pos[g->n] = pos;
		g->type[g->n] = rec->h.type;
		g->seq[g->n] = rec->h.ts_ns;
		g->nslots[g->n] = nslots;
	}
	if ((pos & 63) + nslots > 64)
		g->wraps++;
	if (rec->h.type == ATEL_REC_STRDEF && !tu_strdef_ok(rec, nslots, g->strseed + rec->h.id))
		g->str_bad++;
	g->n++;
	return 0;
}

/* Multi-slot records wrap the ring end many times and arrive whole and contiguous. */
static void test_wraparound(void **state)
{
	struct atel_segment seg;
	struct atel_ring_writer w;
	struct atel_scan_stats st = { 0 };
	static struct got g;
	uint64_t t, h;
	uint32_t id = 1;

	(void)state;
	mkseg(&seg, 1, 64);
	atel__ring_writer_init(&w, &seg, 0);
	memset(&g, 0, sizeof(g));
	g.strseed = 7;
	for (int round = 0; round < 200; round++) {
		/* 300 bytes = 1 + 5 slots: the start position walks over every slot offset */
		while (tu_write_strdef(&w, id, 44 + (id % 5) * 64 + 1, 7 + id))
			id++;
		assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
		uint64_t done = atel__ring_scan(&seg, 0, t, h, 0, collect, &g, &st);
		assert_int_equal(done, h);
		atel__ring_release(&seg, 0, done);
	}
	assert_int_equal(g.n, id - 1);
	assert_int_equal(g.str_bad, 0);
	assert_int_equal(st.records, id - 1);
	assert_int_equal(st.invalid_slots, 0);
	assert_int_equal(st.resyncs, 0);
	assert_true(g.wraps > 10);
	assert_int_equal(atomic_load(&seg.dir[0].drops_invalid), 0);
	atel__segment_detach(&seg);
}

/*
 * Exact full-ring behaviour: a full ring refuses every record (counted in
 * drops_full), never overwrites an unread one, and accepts again exactly when
 * the consumer releases space.
 */
static void test_full_ring(void **state)
{
	struct atel_segment seg;
	struct atel_ring_writer w;
	static struct got g;
	uint64_t t, h, refused = 0, accepted = 0, seq = 0;

	(void)state;
	mkseg(&seg, 1, 64);
	atel__ring_writer_init(&w, &seg, 0);
	memset(&g, 0, sizeof(g));
	for (; seq < 100; seq++) {
		if (tu_write_sample(&w, 1, seq))
			accepted++;
		else
			refused++;
	}
	assert_int_equal(accepted, 64);
	assert_int_equal(refused, 36);
	assert_int_equal(atomic_load(&seg.dir[0].drops_full), 36);
	/* consume 10: exactly 10 more fit */
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	assert_int_equal(h - t, 64);
	g.stop_at = 10;
	assert_int_equal(atel__ring_scan(&seg, 0, t, h, 0, collect, &g, NULL), 10);
	atel__ring_release(&seg, 0, 10);
	for (int i = 0; i < 15; i++, seq++) {
		if (tu_write_sample(&w, 1, seq))
			accepted++;
		else
			refused++;
	}
	assert_int_equal(accepted, 74);
	assert_int_equal(refused, 41);
	assert_int_equal(atomic_load(&seg.dir[0].drops_full), 41);
	/* drain all: 0..63 in order (nothing overwritten), then 100..109 */
	g.stop_at = 0;
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	assert_int_equal(atel__ring_scan(&seg, 0, t, h, 0, collect, &g, NULL), 74);
	assert_int_equal(g.n, 74);
	for (uint64_t i = 0; i < 74; i++) {
		assert_int_equal(g.pos[i], i);
		assert_int_equal(g.seq[i], i < 64 ? i : 100 + (i - 64));
	}
	atel__segment_detach(&seg);
}

static void put_sample(union atel_slot *s, uint64_t seq)
{
	memset(s, 0, sizeof(*s));
	s->h.type = ATEL_REC_SAMPLE;
	s->h.id = 1;
	s->h.ts_ns = seq;
}

/* Garbage between valid records is skipped one slot at a time and counted; the valid ones survive. */
static void test_resync(void **state)
{
	struct atel_segment seg;
	struct atel_scan_stats st = { 0 };
	static struct got g;
	union atel_slot *slots;

	(void)state;
	mkseg(&seg, 2, 64);
	slots = atel__seg_slots(&seg, 0);
	memset(&g, 0, sizeof(g));
	put_sample(&slots[0], 100);
	memset(&slots[1], 0xff, 64);      /* unknown type */
	memset(&slots[2], 0xee, 64);
	put_sample(&slots[3], 103);
	put_sample(&slots[4], 104);
	slots[4].h.reserved = 1;          /* reserved byte set */
	put_sample(&slots[5], 105);
	slots[6].h.type = ATEL_REC_STRDEF; /* cont does not match len */
	slots[6].h.id = 3;
	slots[6].strdef.len = 200;
	slots[6].h.cont = 1;
	put_sample(&slots[7], 107);
	atomic_store(&seg.dir[0].head, 8);
	assert_int_equal(atel__ring_scan(&seg, 0, 0, 8, 0, collect, &g, &st), 8);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.seq[0], 100);
	assert_int_equal(g.seq[1], 103);
	assert_int_equal(g.seq[2], 105);
	assert_int_equal(g.seq[3], 107);
	assert_int_equal(st.records, 4);
	assert_int_equal(st.invalid_slots, 4);
	assert_int_equal(st.resyncs, 3);
	assert_int_equal(atomic_load(&seg.dir[0].drops_invalid), 4);
	assert_int_equal(atomic_load(&seg.dir[1].drops_invalid), 0);
	/* a window the caller did not validate is not read at all */
	assert_int_equal(atel__ring_scan(&seg, 0, 8, 8 + 65, 0, collect, &g, &st), 8);
	assert_int_equal(atel__ring_scan(&seg, 0, 9, 8, 0, collect, &g, &st), 9);
	assert_int_equal(atel__ring_scan(&seg, 7, 0, 1, 0, collect, &g, &st), 0);
	atel__segment_detach(&seg);
}

/* A record running past `to` waits (not final) or is skipped as invalid (final). */
static void test_final(void **state)
{
	struct atel_segment seg;
	struct atel_ring_writer w;
	struct atel_scan_stats st = { 0 };
	static struct got g;

	(void)state;
	mkseg(&seg, 1, 64);
	atel__ring_writer_init(&w, &seg, 0);
	memset(&g, 0, sizeof(g));
	g.strseed = 0;
	assert_true(tu_write_sample(&w, 1, 1));
	assert_true(tu_write_strdef(&w, 2, 44 + 130, 2)); /* 1 + 3 slots at 1..4 */
	/* the consumer sees only 3 of its 4 slots */
	assert_int_equal(atel__ring_scan(&seg, 0, 0, 3, 0, collect, &g, &st), 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(st.invalid_slots, 0);
	/* once published whole it arrives */
	assert_int_equal(atel__ring_scan(&seg, 0, 1, 5, 0, collect, &g, &st), 5);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.nslots[1], 4);
	assert_int_equal(g.str_bad, 0);
	/* final: the truncated record's visible slots are skipped as invalid */
	assert_int_equal(atel__ring_scan(&seg, 0, 1, 3, 1, collect, &g, &st), 3);
	assert_int_equal(g.n, 2);
	assert_int_equal(st.invalid_slots, 2);
	/* a header claiming more continuation slots than the ring holds never waits */
	{
		struct atel_segment s2;
		union atel_slot *sl;

		atel__segment_detach(&seg);
		unlink(path);
		mkseg(&s2, 1, 64);
		sl = atel__seg_slots(&s2, 0);
		memset(sl, 0, 64);
		sl[0].h.type = ATEL_REC_STRDEF;
		sl[0].h.id = 1;
		sl[0].strdef.len = 4096;
		sl[0].h.cont = (uint8_t)atel__cont_for(4096, 44, 64);
		st = (struct atel_scan_stats){ 0 };
		assert_int_equal(atel__ring_scan(&s2, 0, 0, 64, 0, collect, &g, &st), 64);
		assert_int_equal(st.invalid_slots, 1 + 63 - 0);
		atel__segment_detach(&s2);
	}
}

static void test_claim_exhaustion(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();
	int r[4];

	(void)state;
	mkseg(&seg, 4, 64);
	for (int i = 0; i < 4; i++) {
		r[i] = atel__ring_claim(&seg, &o, 2);
		assert_int_equal(r[i], (2 + i) % 4);
		assert_int_equal(atomic_load(&seg.dir[r[i]].state), ATEL_RING_ACTIVE);
		assert_int_equal(seg.dir[r[i]].generation, 1);
		assert_int_equal(seg.dir[r[i]].owner_pid, o.pid);
		assert_int_equal(seg.dir[r[i]].owner_start, o.start);
		assert_int_equal(atel__ring_owner_dead(&seg, (uint32_t)r[i]), 0);
	}
	assert_int_equal(atel__ring_claim(&seg, &o, 0), -EAGAIN);
	assert_int_equal(atomic_load(&seg.hdr->claims_total), 4);
	atel__ring_unclaim(&seg, 3);
	assert_int_equal(atel__ring_owner_dead(&seg, 3), -ENOENT);
	assert_int_equal(atel__ring_claim(&seg, &o, 0), 3);
	assert_int_equal(seg.dir[3].generation, 2);
	/* not READY: no claim */
	atomic_fetch_and(&seg.hdr->flags, ~ATEL_SHM_READY);
	atel__ring_unclaim(&seg, 0);
	assert_int_equal(atel__ring_claim(&seg, &o, 0), -ENODEV);
	atel__segment_detach(&seg);
}

/*
 * Dead owners: a reaped child (ESRCH), and a live pid with another start
 * time (pid reuse) are dead; the ring is drained, reclaimed and reusable,
 * positions continue.
 */
static void test_dead_owner_and_reclaim(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();
	struct atel_ring_writer w;
	static struct got g;
	uint64_t t, h;
	pid_t child;
	int r;

	(void)state;
	mkseg(&seg, 2, 64);
	memset(&g, 0, sizeof(g));
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, NULL, 0), child);
	r = atel__ring_claim(&seg, &o, 0);
	assert_int_equal(r, 0);
	atel__ring_writer_init(&w, &seg, 0);
	for (uint64_t i = 0; i < 5; i++)
		assert_true(tu_write_sample(&w, 1, i));
	/* owner is a reaped process */
	seg.dir[0].owner_pid = child;
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	/* owner pid alive but started at another time: the pid was reused */
	seg.dir[0].owner_pid = o.pid;
	seg.dir[0].owner_start = o.start + 1;
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	seg.dir[0].owner_start = o.start;
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 0);
	seg.dir[0].owner_start = o.start + 1;
	assert_int_equal(atel__ring_reclaim_begin(&seg, 0), 0);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_DRAINING);
	assert_int_equal(atel__ring_reclaim_begin(&seg, 0), -EBUSY);
	assert_int_equal(atel__ring_claim(&seg, &o, 0), 1); /* DRAINING is not claimable */
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	assert_int_equal(atel__ring_scan(&seg, 0, t, h, 1, collect, &g, NULL), 5);
	assert_int_equal(g.n, 5);
	atel__ring_reclaim_end(&seg, 0, h);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_FREE);
	assert_int_equal(atomic_load(&seg.dir[0].tail), 5);
	/* reusable; positions continue */
	assert_int_equal(atel__ring_claim(&seg, &o, 0), 0);
	assert_int_equal(seg.dir[0].generation, 2);
	atel__ring_writer_init(&w, &seg, 0);
	assert_int_equal(w.head, 5);
	assert_true(tu_write_sample(&w, 1, 5));
	atel__segment_detach(&seg);
}

static void *sleeper(void *arg)
{
	int fd = *(int *)arg;
	char c;

	/* lives until the test closes the pipe; _exit: no atexit/leak-check in a forked child */
	while (read(fd, &c, 1) > 0)
		;
	_exit(0);
}

/*
 * A killed but not yet reaped owner (zombie) is dead; a process whose main
 * thread exited while another thread runs (leader shows 'Z') is alive.
 */
static void test_zombie_owner(void **state)
{
	struct atel_segment seg;
	int pfd[2], ws;
	pid_t kid;

	(void)state;
	mkseg(&seg, 1, 64);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0)
		_exit(0);
	/* wait (bounded) until it is a zombie, without reaping it */
	for (int i = 0; i < 2000; i++) {
		char st[64];
		FILE *f;
		snprintf(st, sizeof(st), "/proc/%d/stat", (int)kid);
		f = fopen(st, "r");
		if (f) {
			char buf[512] = "";
			char *p;
			if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[2] == 'Z') {
				fclose(f);
				break;
			}
			fclose(f);
		}
		usleep(1000);
	}
	atomic_store(&seg.dir[0].state, ATEL_RING_ACTIVE);
	seg.dir[0].owner_pid = kid;
	seg.dir[0].owner_start = atel__proc_start_time(kid);
	assert_true(seg.dir[0].owner_start != 0);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);

	/* main thread exits, a second thread keeps the process alive */
	assert_int_equal(pipe(pfd), 0);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		pthread_t th;
		close(pfd[1]);
		if (pthread_create(&th, NULL, sleeper, &pfd[0]) != 0)
			_exit(3);
		pthread_exit(NULL);
	}
	close(pfd[0]);
	seg.dir[0].owner_pid = kid;
	seg.dir[0].owner_start = 0;
	for (int i = 0; i < 2000 && seg.dir[0].owner_start == 0; i++) {
		seg.dir[0].owner_start = atel__proc_start_time(kid);
		usleep(1000);
	}
	usleep(20000); /* let the main thread exit (if it did not, the owner is alive all the more) */
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 0);
	close(pfd[1]);
	assert_int_equal(waitpid(kid, &ws, 0), kid);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	atel__segment_detach(&seg);
}

static void test_quarantine(void **state)
{
	struct atel_segment seg;
	struct atel_owner o = me();

	(void)state;
	mkseg(&seg, 1, 64);
	assert_int_equal(atel__ring_claim(&seg, &o, 0), 0);
	atomic_store(&seg.dir[0].head, 1000); /* jumped past capacity */
	uint64_t t, h;
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), -EBADMSG);
	atel__ring_quarantine(&seg, 0);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_QUARANTINED);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 0);
	/* the owner releases: the ring stays quarantined, but the owner is gone */
	atel__ring_unclaim(&seg, 0);
	assert_int_equal(atomic_load(&seg.dir[0].state), ATEL_RING_QUARANTINED);
	assert_int_equal(atel__ring_owner_dead(&seg, 0), 1);
	assert_int_equal(atel__ring_claim(&seg, &o, 0), -EAGAIN);
	assert_int_equal(atel__ring_reclaim_begin(&seg, 0), 0);
	atel__ring_reclaim_end(&seg, 0, 1000);
	assert_int_equal(atel__ring_poll(&seg, 0, &t, &h), 0);
	assert_int_equal(h - t, 0);
	atel__segment_detach(&seg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_wraparound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_ring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_owner_and_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zombie_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
