/* SPDX-License-Identifier: MIT */
/*
 * Garbage in shared memory: random bytes over a claimed ring's published
 * records and over its positions, and over every validated header field. The
 * reader survives, counts the damage, other rings are unaffected, and
 * attach/check names the damaged field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	snprintf(path, sizeof(path), "/tmp/atel-test-garbage-%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* deterministic xorshift so a failure reproduces */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

struct seen {
	uint64_t n;
	uint64_t bad_order;
	uint64_t last;
	uint64_t lo, hi; /* only count samples in [lo, hi) */
	uint64_t in_range;
};

static int count_samples(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots)
{
	struct seen *s = arg;

	(void)nslots;
	/* a garbage slot can (rarely) look valid; only our samples carry pos == ts_ns */
	if (rec->h.type != ATEL_REC_SAMPLE || rec->h.ts_ns != pos)
		return 0;
	if (s->n && rec->h.ts_ns <= s->last)
		s->bad_order++;
	s->last = rec->h.ts_ns;
	s->n++;
	if (rec->h.ts_ns >= s->lo && rec->h.ts_ns < s->hi)
		s->in_range++;
	return 0;
}

static void test_random_ring_bytes(void **state)
{
	struct atel_segment_config cfg = { .ring_count = 3, .ring_capacity = 1024 };
	struct atel_segment seg;
	struct atel_owner o = { getpid(), gettid(), atel__proc_start_time(getpid()) };
	struct atel_ring_writer w[3];
	struct atel_scan_stats st[3];
	struct seen seen[3];
	char err[256];
	union atel_slot *slots;
	uint64_t t, h;

	(void)state;
	assert_int_equal(atel__segment_create(&seg, path, &cfg, err, sizeof(err)), 0);
	for (int r = 0; r < 3; r++) {
		assert_int_equal(atel__ring_claim(&seg, &o, (uint32_t)r), r);
		atel__ring_writer_init(&w[r], &seg, (uint32_t)r);
		for (uint64_t i = 0; i < 1000; i++)
			assert_true(tu_write_sample(&w[r], 1, i));
	}
	/* random bytes over published records 100..299 of ring 1 */
	slots = atel__seg_slots(&seg, 1);
	for (unsigned i = 100 * 64; i < 300 * 64; i++)
		((unsigned char *)slots)[i] = (unsigned char)rnd();
	for (int r = 0; r < 3; r++) {
		memset(&st[r], 0, sizeof(st[r]));
		memset(&seen[r], 0, sizeof(seen[r]));
		seen[r].lo = 100;
		seen[r].hi = 300;
		assert_int_equal(atel__ring_poll(&seg, (uint32_t)r, &t, &h), 0);
		assert_int_equal(atel__ring_scan(&seg, (uint32_t)r, t, h, 1, count_samples, &seen[r], &st[r]), 1000);
	}
	/* ring 1: every sample outside the damage arrives in order; the damage is counted */
	assert_int_equal(seen[1].n - seen[1].in_range, 800);
	assert_int_equal(seen[1].in_range, 0);
	assert_int_equal(seen[1].bad_order, 0);
	assert_true(st[1].invalid_slots >= 190);
	assert_true(st[1].invalid_slots <= 200);
	assert_true(st[1].resyncs >= 1);
	assert_int_equal(atomic_load(&seg.dir[1].drops_invalid), st[1].invalid_slots);
	/* rings 0 and 2 are untouched */
	for (int r = 0; r < 3; r += 2) {
		assert_int_equal(seen[r].n, 1000);
		assert_int_equal(st[r].invalid_slots, 0);
		assert_int_equal(atomic_load(&seg.dir[r].drops_invalid), 0);
	}

	/* random positions: the window is refused before any slot is read */
	for (int k = 0; k < 1000; k++) {
		uint64_t nh = rnd(), nt = rnd();
		struct atel_scan_stats s2 = { 0 };
		atomic_store(&seg.dir[1].head, nh);
		atomic_store(&seg.dir[1].tail, nt);
		if (atel__ring_poll(&seg, 1, &t, &h) == 0) {
			assert_true(h - t <= cfg.ring_capacity);
			atel__ring_scan(&seg, 1, t, h, 1, count_samples, &seen[1], &s2);
		} else {
			assert_true(h < t || h - t > cfg.ring_capacity);
		}
		/* the reader also refuses a bad window on its own */
		assert_int_equal(atel__ring_scan(&seg, 1, nt, nt + cfg.ring_capacity + 1 + (nh & 0xffff), 1,
						 count_samples, &seen[1], &s2),
				 nt);
	}
	/* a ring with bad positions is quarantined and, once its owner is gone, reclaimed */
	atomic_store(&seg.dir[1].head, 5);
	atomic_store(&seg.dir[1].tail, 7);
	assert_int_equal(atel__ring_poll(&seg, 1, &t, &h), -EBADMSG);
	atel__ring_quarantine(&seg, 1);
	assert_int_equal(atomic_load(&seg.dir[1].state), ATEL_RING_QUARANTINED);
	atel__ring_unclaim(&seg, 1); /* owner leaves */
	assert_int_equal(atel__ring_owner_dead(&seg, 1), 1);
	assert_int_equal(atel__ring_reclaim_begin(&seg, 1), 0);
	atel__ring_reclaim_end(&seg, 1, 5);
	assert_int_equal(atel__ring_poll(&seg, 1, &t, &h), 0);
	assert_int_equal(h, t);
	/* garbage in the directory's state word: not claimable, not "owned" */
	atomic_store(&seg.dir[1].state, 0xdeadbeef);
	assert_int_equal(atel__ring_owner_dead(&seg, 1), -ENOENT);
	assert_int_equal(atel__ring_reclaim_begin(&seg, 1), -EBUSY);
	for (int r = 0; r < 3; r++)
		assert_int_not_equal(atel__ring_claim(&seg, &o, 0), 1);
	atel__segment_detach(&seg);
}

/* One damaged header field at a time: attach refuses it and names it. */
static void test_header_fields(void **state)
{
	struct atel_segment_config cfg = { .ring_count = 2, .ring_capacity = 64 };
	struct atel_segment c, p;
	char err[256];
	struct {
		size_t off, len;
		const char *needle;
	} f[] = {
		{ offsetof(struct atel_shm_header, magic), 8, "header.magic" },
		{ offsetof(struct atel_shm_header, endian), 4, "header.endian" },
		{ offsetof(struct atel_shm_header, abi_major), 2, "header.abi_major" },
		{ offsetof(struct atel_shm_header, header_size), 4, "header_size" },
		{ offsetof(struct atel_shm_header, record_size), 4, "record_size" },
		{ offsetof(struct atel_shm_header, ring_count), 4, "ring_count" },
		{ offsetof(struct atel_shm_header, ring_capacity), 4, "ring_capacity" },
		{ offsetof(struct atel_shm_header, dir_offset), 8, "dir_offset" },
		{ offsetof(struct atel_shm_header, dir_entry_size), 4, "dir_entry_size" },
		{ offsetof(struct atel_shm_header, rings_offset), 8, "rings_offset" },
		{ offsetof(struct atel_shm_header, ring_stride), 8, "ring_stride" },
		{ offsetof(struct atel_shm_header, total_size), 8, "total_size" },
		{ offsetof(struct atel_shm_header, reserved0), 4, "header.reserved0" },
		{ offsetof(struct atel_shm_header, reserved) + 5 * 8, 8, "header.reserved[5] (offset 168)" },
	};

	(void)state;
	assert_int_equal(atel__segment_create(&c, path, &cfg, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		unsigned char save[8];
		unsigned char *b = (unsigned char *)c.base + f[i].off;

		for (int trial = 0; trial < 20; trial++) {
			memcpy(save, b, f[i].len);
			for (size_t k = 0; k < f[i].len; k++)
				b[k] = (unsigned char)rnd();
			if (memcmp(save, b, f[i].len) == 0)
				b[0] ^= 0x80;
			err[0] = '\0';
			int rc = atel__segment_attach(&p, path, err, sizeof(err));
			/*
			 * A random ring_count/capacity can, rarely, describe a smaller valid
			 * geometry only if every derived field agreed too; they do not.
			 */
			assert_int_equal(rc, -EPROTO);
			if (!strstr(err, f[i].needle))
				fail_msg("field at offset %zu: message '%s' does not name '%s'", f[i].off, err,
					 f[i].needle);
			memcpy(b, save, f[i].len);
		}
		assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), 0);
		atel__segment_detach(&p);
	}
	/* truncated file */
	assert_int_equal(truncate(path, 4096 + 100), 0);
	assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "total_size"));
	atel__segment_detach(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_random_ring_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_fields, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
