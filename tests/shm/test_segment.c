/* Segment creation, attach, header validation, and one ring round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "atel_test.h"
#include "ring.h"
#include "segment.h"

static char path[256];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/atel-test-seg-%d", (int)getpid());
	unlink(path);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_create_attach(void **state)
{
	struct atel_segment c, p;
	struct atel_segment_config cfg = { .ring_count = 4, .ring_capacity = 64 };
	char err[256] = "";

	(void)state;
	assert_int_equal(atel__segment_create(&c, path, &cfg, err, sizeof(err)), 0);
	assert_false(c.reattached);
	assert_int_equal(c.ring_count, 4);
	assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), 0);
	assert_int_equal(p.hdr->instance_id, c.hdr->instance_id);
	assert_true(p.hdr->flags & ATEL_SHM_READY);
	atel__segment_detach(&p);
	atel__segment_detach(&c);
	/* same geometry: re-attached, same instance */
	assert_int_equal(atel__segment_create(&c, path, &cfg, err, sizeof(err)), 0);
	assert_true(c.reattached);
	atel__segment_detach(&c);
}

static void test_bad_header(void **state)
{
	struct atel_segment c, p;
	struct atel_segment_config cfg = { .ring_count = 2, .ring_capacity = 64 };
	char err[256] = "";

	(void)state;
	assert_int_equal(atel__segment_create(&c, path, &cfg, err, sizeof(err)), 0);
	c.hdr->abi_major = ATEL_ABI_MAJOR + 1;
	assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "abi_major"));
	c.hdr->abi_major = ATEL_ABI_MAJOR;
	c.hdr->reserved[3] = 1;
	assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "reserved[3]"));
	c.hdr->reserved[3] = 0;
	c.hdr->ring_count = 3;
	assert_int_equal(atel__segment_attach(&p, path, err, sizeof(err)), -EPROTO);
	atel__segment_detach(&c);
}

static void test_ring_roundtrip(void **state)
{
	struct atel_segment c;
	struct atel_segment_config cfg = { .ring_count = 1, .ring_capacity = 64 };
	struct atel_ring_writer w;
	uint64_t t, h;
	char err[256];
	int ok = 0, refused = 0;

	(void)state;
	assert_int_equal(atel__segment_create(&c, path, &cfg, err, sizeof(err)), 0);
	atel__ring_writer_init(&w, &c, 0);
	for (int i = 0; i < 100; i++) {
		if (!atel__ring_reserve(&w, 1)) {
			refused++;
			continue;
		}
		union atel_slot *s = atel__ring_slot(&w, 0);
		memset(s, 0, sizeof(*s));
		s->h.type = ATEL_REC_SAMPLE;
		s->h.id = 1;
		s->sample.value = i;
		atel__ring_commit(&w, 1);
		ok++;
	}
	assert_int_equal(ok, 64);
	assert_int_equal(refused, 36);
	assert_int_equal(atel__ring_poll(&c, 0, &t, &h), 0);
	assert_int_equal(h - t, 64);
	for (uint64_t p = t; p < h; p++) {
		const union atel_slot *s = atel__ring_at(&c, 0, p);
		assert_int_equal(atel__rec_check(s, h - p, NULL), 1);
		assert_true(s->sample.value == (double)p);
	}
	atel__ring_release(&c, 0, h);
	assert_true(atel__ring_reserve(&w, 64));
	/* a head that jumps past capacity is detected */
	atomic_store(&c.dir[0].head, h + 65);
	assert_int_equal(atel__ring_poll(&c, 0, &t, &h), -EBADMSG);
	atel__segment_detach(&c);
}

static void test_rec_check(void **state)
{
	union atel_slot s;
	const char *why = NULL;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.h.type = 99;
	assert_int_equal(atel__rec_check(&s, 1, &why), -EINVAL);
	assert_string_equal(why, "unknown record type");
	s.h.type = ATEL_REC_STRDEF;
	s.h.id = 1;
	s.strdef.len = 44 + 65; /* needs 2 continuation slots */
	s.h.cont = 2;
	assert_int_equal(atel__rec_check(&s, 3, &why), 3);
	assert_int_equal(atel__rec_check(&s, 2, &why), -EAGAIN);
	s.h.cont = 1;
	assert_int_equal(atel__rec_check(&s, 3, &why), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_attach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rec_check, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
