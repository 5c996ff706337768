/* SPDX-License-Identifier: MIT */
/*
 * Segment log writer tests through real files: round trips across rotations
 * on both io paths (read back exactly, in order, with the right positions),
 * acceptance by the real `zstd` binary (-t and -d), written positions and
 * markers, injected write failures and a real full tmpfs (no loss, no
 * duplicate), torn tails and corrupt frames at recovery, retention, age
 * rotation, and kill -9 of a writing process at random moments.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "atel_test.h"
#include "log_test_util.h"
#include "uring.h"
#include "segment.h"

#define INSTANCE 0xabcdef12ull

/* Encoding of the data frames the tests write; the *_columns tests set it. */
static enum atel_seg_encoding g_enc = ATEL_SEG_ENC_RECORDS;

struct env {
	char dir[512];
	char seg[600];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_int_equal(atel_synth_tmpdir(e->dir, sizeof(e->dir), "seglog"), 0);
	snprintf(e->seg, sizeof(e->seg), "%s/segments", e->dir);
	unsetenv("ATEL_FORCE_PWRITEV");
	unsetenv("ATEL_FAULT_WRITE");
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char mnt[600];
	snprintf(mnt, sizeof(mnt), "%s/mnt", e->dir);
	umount2(mnt, MNT_DETACH); /* a failed tmpfs test leaves its mount behind */
	atel_synth_rmtree(e->dir);
	free(e);
	return 0;
}

static void streams(struct atel_synth *s, unsigned n, uint64_t samples)
{
	for (unsigned i = 0; i < n; i++) {
		atel_synth_init(&s[i], i * 3, 1 + i, 1000 + (int32_t)i, 2000 + (int32_t)i, T0 + i);
		s[i].base_pos = 1000 * i; /* rings do not start at 0 */
		atel_synth_begin(&s[i], "agent");
		atel_synth_agent_workload(&s[i], 7 + i, samples, 30);
		atel_synth_end(&s[i]);
	}
}

static void open_writer(struct atel_seglog **l, const char *dir, enum atel_io_mode io, uint32_t ring_count,
			uint64_t rotate)
{
	struct atel_seglog_opts o = { 0 };
	char err[256] = "";
	o.segments_dir = dir;
	o.ring_count = ring_count;
	o.shm_instance = INSTANCE;
	o.io = io;
	o.async_io = &atel__seglog_uring;
	o.frame_bytes = 64 << 10;
	o.rotate_bytes = rotate;
	o.encoding = g_enc;
	if (atel__seglog_open(l, &o, err, sizeof(err)) != 0)
		fail_msg("open: %s", err);
}

/* zstd -t on every file, and zstd -d of every file gives exactly the records (chunks stripped). */
static void zstd_cli_check(const char *dir, struct atel_synth *s, unsigned ns)
{
	char cmd[2048], out[700];
	unsigned char *raw;
	size_t len = 0;
	size_t at[8] = { 0 };

	snprintf(cmd, sizeof(cmd), "for f in %s/*.atseg; do zstd -q -t \"$f\" || exit 1; done", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(out, sizeof(out), "%s.raw", dir);
	snprintf(cmd, sizeof(cmd), "cat %s/*.atseg | zstd -q -d -c > %s", dir, out);
	assert_int_equal(system(cmd), 0);
	raw = slurp(out, &len);
	assert_non_null(raw);
	assert_int_equal(len % 64, 0);
	for (size_t i = 0; i < len / 64;) {
		struct atel_rec_chunk c;
		unsigned k;
		memcpy(&c, raw + i * 64, 64);
		assert_int_equal(c.h.type, ATEL_LOGREC_CHUNK);
		for (k = 0; k < ns && s[k].ring != c.h.id; k++)
			;
		assert_true(k < ns);
		assert_int_equal(c.shm_instance, INSTANCE);
		if (!(c.h.flags & ATEL_CHUNKF_MARKER)) {
			assert_int_equal(c.first_pos, s[k].base_pos + at[k]);
			assert_memory_equal(raw + (i + 1) * 64, &s[k].slots[at[k]], (size_t)c.count * 64);
			at[k] += c.count;
		}
		i += 1 + c.count;
	}
	for (unsigned k = 0; k < ns; k++)
		assert_int_equal(at[k], s[k].n);
	free(raw);
	unlink(out);
}

static void roundtrip(struct env *e, enum atel_io_mode io)
{
	struct atel_synth s[3], *sp[3] = { &s[0], &s[1], &s[2] };
	struct expect ex[3];
	uint32_t rings[3];
	struct atel_synth_log_opts o = { .batch = 777, .rotate_bytes = 256 << 10, .frame_bytes = 64 << 10,
					 .io = io, .split_pieces = true, .ring_count = 8, .encoding = g_enc };
	struct corrupt_log cl = { 0 };

	streams(s, 3, 30000);
	for (int i = 0; i < 3; i++) {
		expect_build(&ex[i], &s[i]);
		rings[i] = s[i].ring;
	}
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 3, &o), 0);
	assert_true(count_files(e->seg) >= 3); /* rotated by size */
	assert_int_equal(check_log(e->seg, ex, rings, 3, &cl), ex[0].n + ex[1].n + ex[2].n);
	assert_int_equal(cl.n, 0);
	if (g_enc == ATEL_SEG_ENC_RECORDS) {
		zstd_cli_check(e->seg, s, 3);
	} else {
		/* zstd accepts every file; what it prints is COLUMNS blocks, each 64-byte aligned */
		char cmd[2048];
		snprintf(cmd, sizeof(cmd), "for f in %s/*.atseg; do zstd -q -t \"$f\" || exit 1; done", e->seg);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "cat %s/*.atseg | zstd -q -d -c | head -c 1 | od -An -tx1 | grep -q 42", e->seg);
		assert_int_equal(system(cmd), 0);
	}
	for (int i = 0; i < 3; i++) {
		expect_free(&ex[i]);
		atel_synth_free(&s[i]);
	}
}

static void test_roundtrip_uring(void **state)
{
	roundtrip(*state, ATEL_IO_AUTO);
}

static void test_roundtrip_pwritev(void **state)
{
	roundtrip(*state, ATEL_IO_PWRITEV);
}

/* storage.encoding "columns": the same exact round trip on both io paths, in fewer bytes */
static void test_roundtrip_columns(void **state)
{
	struct env *e = *state;
	struct atel_synth s[3], *sp[3] = { &s[0], &s[1], &s[2] };
	uint64_t bytes[2];
	g_enc = ATEL_SEG_ENC_COLUMNS;
	roundtrip(e, ATEL_IO_AUTO);
	atel_synth_rmtree(e->seg);
	roundtrip(e, ATEL_IO_PWRITEV);
	/* same metric streams, both encodings: columns must be clearly smaller */
	for (int k = 0; k < 2; k++) {
		struct atel_synth_log_opts o = { .ring_count = 8, .encoding = k ? ATEL_SEG_ENC_COLUMNS : ATEL_SEG_ENC_RECORDS };
		char cmd[700];
		FILE *f;
		unsigned long long b = 0;
		atel_synth_rmtree(e->seg);
		for (unsigned i = 0; i < 3; i++) {
			atel_synth_init(&s[i], i, 1, 10, 20, T0);
			atel_synth_begin(&s[i], "agent");
			atel_synth_agent_workload(&s[i], 9 + i, 60000, 0);
		}
		assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 3, &o), 0);
		snprintf(cmd, sizeof(cmd), "cat %s/*.atseg | wc -c", e->seg);
		f = popen(cmd, "r");
		assert_non_null(f);
		assert_int_equal(fscanf(f, "%llu", &b), 1);
		pclose(f);
		bytes[k] = b;
		for (unsigned i = 0; i < 3; i++)
			atel_synth_free(&s[i]);
	}
	print_message("3 x 60000 samples: records %llu bytes, columns %llu bytes\n", (unsigned long long)bytes[0],
		      (unsigned long long)bytes[1]);
	assert_true(bytes[1] * 3 < bytes[0] * 2);
	g_enc = ATEL_SEG_ENC_RECORDS;
}

static void test_io_paths(void **state)
{
	struct env *e = *state;
	struct atel_seglog *l;
	struct atel_log_counters st;

	open_writer(&l, e->seg, ATEL_IO_PWRITEV, 4, 0);
	assert_string_equal(atel__seglog_io_path(l), "pwritev");
	assert_int_equal(atel__seglog_close(l), 0);
	setenv("ATEL_FORCE_PWRITEV", "1", 1);
	open_writer(&l, e->seg, ATEL_IO_AUTO, 4, 0);
	assert_string_equal(atel__seglog_io_path(l), "pwritev");
	assert_int_equal(atel__seglog_close(l), 0);
	unsetenv("ATEL_FORCE_PWRITEV");
	{
		struct atel_seglog_opts o = { .segments_dir = e->seg, .ring_count = 4, .shm_instance = INSTANCE,
					      .async_io = &atel__seglog_uring };
		char err[256];
		memset(&st, 0, sizeof(st));
		o.stats = &st;
		assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), 0);
		/* io_uring where the kernel allows it; the stats say which */
		assert_int_equal(atomic_load(&st.io_uring_active), !strcmp(atel__seglog_io_path(l), "io_uring"));
		if (strcmp(atel__seglog_io_path(l), "io_uring"))
			print_message("io_uring unavailable here: auto fell back to pwritev\n");
		assert_int_equal(atomic_load(&st.segments_created), 1);
		assert_int_equal(atel__seglog_close(l), 0);
	}
	{
		/* a program without the io_uring back end (the CLI, the exporters):
		 * auto writes with pwritev, asking for io_uring is an error */
		struct atel_seglog_opts o = { .segments_dir = e->seg, .ring_count = 4, .shm_instance = INSTANCE };
		char err[256] = "";
		assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), 0);
		assert_string_equal(atel__seglog_io_path(l), "pwritev");
		assert_int_equal(atel__seglog_close(l), 0);
		o.io = ATEL_IO_URING;
		assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), -ENOSYS);
		assert_non_null(strstr(err, "no io_uring writer"));
	}
	assert_int_equal(count_files(e->seg), 4); /* the refused open created none */
	atel__seglog_close(NULL);
}

static void test_positions_and_markers(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct atel_seglog *l;
	struct atel_log_reader *r;
	struct atel_log_reader_opts ro = { .segments_dir = e->seg };
	struct atel_event ev;
	struct atel_log_pos pos;
	union atel_slot death;
	struct atel_rec_death *d = (struct atel_rec_death *)(void *)&death;
	unsigned n = 0, deaths = 0;
	int rc;

	atel_synth_init(&s, 1, 5, 77, 78, T0);
	s.base_pos = 500;
	atel_synth_begin(&s, "x");
	atel_synth_agent_workload(&s, 1, 60, 0);
	{
		uint8_t tr[16], sp[8];
		atel_synth_ids(3, tr, sp);
		atel_synth_span_end(&s, tr, sp, 2, "a status message longer than twenty bytes");
		atel_synth_sample(&s, 1, 1, false);
	}
	open_writer(&l, e->seg, ATEL_IO_AUTO, 2, 0);
	assert_int_equal(atel__seglog_written_pos(l, 1), 0); /* never seen */
	assert_int_equal(atel__seglog_append(l, 1, 5, 500, s.slots, 10, NULL, 0), 0);
	assert_int_equal(atel__seglog_written_pos(l, 1), 500); /* appended, not written */
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_written_pos(l, 1), 510);
	/* positions already logged, a cut record, a bad ring */
	assert_int_equal(atel__seglog_append(l, 1, 5, 505, s.slots + 10, 1, NULL, 0), -EINVAL);
	{
		size_t i = 10;
		while (i < s.n && s.slots[i].h.cont == 0)
			i++; /* a record with continuation slots */
		assert_true(i < s.n);
		assert_int_equal(atel__seglog_append(l, 1, 5, 500 + i, s.slots + i, 1, NULL, 0), -EINVAL);
	}
	assert_int_equal(atel__seglog_append(l, 2, 5, 0, s.slots, 1, NULL, 0), -EINVAL);
	assert_int_equal(atel__seglog_append(l, 1, 5, 510, s.slots + 10, s.n - 10, NULL, 0), 0);
	memset(&death, 0, sizeof(death));
	d->h.type = ATEL_LOGREC_DEATH;
	d->h.id = 5;
	d->h.ts_ns = T0 + 99;
	d->pid = 77;
	d->start = 4321;
	d->ring = 1;
	assert_int_equal(atel__seglog_append_marker(l, 1, &death), 0);
	death.h.type = 0x55;
	assert_int_equal(atel__seglog_append_marker(l, 1, &death), -EINVAL);
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_written_pos(l, 1), 500 + s.n);
	assert_int_equal(atel__seglog_close(l), 0);

	assert_int_equal(atel__log_open(&r, &ro), 0);
	while ((rc = atel__log_next(r, &ev, &pos)) == 1) {
		n++;
		assert_int_equal(ev.ring, 1);
		assert_int_equal(ev.generation, 5);
		assert_int_equal(ev.pid, 77);
		if (ev.kind == ATEL_EV_DEATH) {
			deaths++;
			assert_int_equal(ev.seq, 500 + s.n); /* where the ring stood */
			assert_int_equal(ev.death.pid, 77);
			assert_int_equal(ev.death.start, 4321);
			assert_int_equal(ev.death.generation, 5);
			assert_int_equal(ev.ts_ns, T0 + 99);
		}
		assert_int_equal(pos.file_seq, 1);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(deaths, 1);
	{
		struct atel_log_read_stats st;
		atel__log_stats(r, &st);
		assert_int_equal(st.by_type[ATEL_LOGREC_DEATH], 1);
		assert_int_equal(st.frames, 2);
		assert_int_equal(st.invalid_records, 0);
	}
	atel__log_close(r);
	atel_synth_free(&s);
}

static void faults(struct env *e, enum atel_io_mode io)
{
	struct atel_synth s[2], *sp[2] = { &s[0], &s[1] };
	struct expect ex[2];
	uint32_t rings[2];
	struct atel_seglog *l;
	struct corrupt_log cl = { 0 };
	size_t half[2];
	uint64_t w1;

	streams(s, 2, 4000);
	for (int i = 0; i < 2; i++) {
		expect_build(&ex[i], &s[i]);
		rings[i] = s[i].ring;
		half[i] = s[i].n / 2;
		while (half[i] < s[i].n && s[i].slots[half[i]].h.type == 0)
			half[i]++;
	}
	/* whole records at the cut */
	for (int i = 0; i < 2; i++) {
		size_t k = 0;
		while (k + 1u + s[i].slots[k].h.cont <= half[i])
			k += 1u + s[i].slots[k].h.cont;
		half[i] = k;
	}
	open_writer(&l, e->seg, io, 8, 0);
	assert_int_equal(atel__seglog_append(l, s[0].ring, 1, s[0].base_pos, s[0].slots, half[0], NULL, 0), 0);
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_written_pos(l, s[0].ring), s[0].base_pos + half[0]);
	assert_int_equal(atel__seglog_append(l, s[1].ring, 2, s[1].base_pos, s[1].slots, half[1], NULL, 0), 0);
	atel__seglog_fault_writes(l, 2);
	assert_int_equal(atel__seglog_flush(l), -ENOSPC);
	w1 = atel__seglog_written_pos(l, s[1].ring); /* frames before the failed one may be out */
	assert_true(w1 < s[1].base_pos + half[1]);
	assert_int_equal(atel__seglog_append(l, s[0].ring, 1, s[0].base_pos + half[0], s[0].slots + half[0],
					     s[0].n - half[0], NULL, 0), -EBUSY);
	assert_int_equal(atel__seglog_flush(l), -ENOSPC); /* second injected failure */
	assert_int_equal(atel__seglog_written_pos(l, s[1].ring), w1);
	assert_int_equal(atel__seglog_flush(l), 0);       /* space is back */
	assert_int_equal(atel__seglog_written_pos(l, s[1].ring), s[1].base_pos + half[1]);
	for (int i = 0; i < 2; i++)
		assert_int_equal(atel__seglog_append(l, s[i].ring, s[i].generation, s[i].base_pos + half[i],
						     s[i].slots + half[i], s[i].n - half[i], NULL, 0), 0);
	atel__seglog_fault_writes(l, 1);
	assert_int_equal(atel__seglog_flush(l), -ENOSPC);
	assert_int_equal(atel__seglog_close(l), 0); /* close retries and succeeds */
	assert_int_equal(check_log(e->seg, ex, rings, 2, &cl), ex[0].n + ex[1].n);
	assert_int_equal(cl.n, 0); /* the torn half-frames were overwritten in place */
	zstd_cli_check(e->seg, s, 2);
	(void)sp;
	for (int i = 0; i < 2; i++) {
		expect_free(&ex[i]);
		atel_synth_free(&s[i]);
	}
}

static void test_fault_injection_uring(void **state)
{
	faults(*state, ATEL_IO_AUTO);
}

static void test_fault_injection_pwritev(void **state)
{
	faults(*state, ATEL_IO_PWRITEV);
}

static void test_fault_env(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct atel_seglog *l;

	atel_synth_init(&s, 0, 1, 5, 6, T0);
	atel_synth_begin(&s, "x");
	setenv("ATEL_FAULT_WRITE", "1", 1);
	open_writer(&l, e->seg, ATEL_IO_AUTO, 1, 0);
	unsetenv("ATEL_FAULT_WRITE");
	assert_int_equal(atel__seglog_append(l, 0, 1, 0, s.slots, s.n, NULL, 0), 0);
	assert_int_equal(atel__seglog_flush(l), -ENOSPC);
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_written_pos(l, 0), 1);
	assert_int_equal(atel__seglog_close(l), 0);
	atel_synth_free(&s);
}

/* A real filesystem running out of space: a 1 MiB tmpfs. */
static void test_tmpfs_full(void **state)
{
	struct env *e = *state;
	char mnt[600], seg[700], filler[700];
	struct atel_synth s;
	struct expect ex;
	uint32_t ring = 0;
	struct atel_seglog *l;
	struct corrupt_log cl = { 0 };
	uint64_t at = 0;
	int full = 0, rc = 0;
	FILE *f;

	snprintf(mnt, sizeof(mnt), "%s/mnt", e->dir);
	mkdir(mnt, 0700);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") != 0) {
		print_message("SKIP tmpfs sub-test: mount -t tmpfs not permitted here (%s)\n", strerror(errno));
		rmdir(mnt);
		skip();
	}
	snprintf(seg, sizeof(seg), "%s/segments", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	f = fopen(filler, "wb");
	assert_non_null(f);
	for (int i = 0; i < 600; i++) {
		unsigned char kb[1024];
		for (int j = 0; j < 1024; j++)
			kb[j] = (unsigned char)rand();
		fwrite(kb, 1, sizeof(kb), f);
	}
	fclose(f);
	atel_synth_init(&s, 0, 1, 5, 6, T0);
	atel_synth_begin(&s, "x");
	atel_synth_agent_workload(&s, 3, 30000, 20);
	expect_build(&ex, &s);
	open_writer(&l, seg, ATEL_IO_AUTO, 1, 0);
	while (at < s.n) {
		uint64_t n = 0;
		while (at + n < s.n && n < 2048)
			n += 1u + s.slots[at + n].h.cont;
		rc = atel__seglog_append(l, 0, 1, at, s.slots + at, n, NULL, 0);
		if (rc == -EBUSY) {
			/* the disk is full: free space, and the retry succeeds */
			assert_int_equal(full, 1);
			assert_int_equal(unlink(filler), 0);
			assert_int_equal(atel__seglog_flush(l), 0);
			full = 2;
			continue;
		}
		assert_int_equal(rc, 0);
		at += n;
		rc = atel__seglog_flush(l);
		if (rc == -ENOSPC && !full) {
			full = 1;
			assert_true(atel__seglog_written_pos(l, 0) < at);
			assert_int_equal(atel__seglog_flush(l), -ENOSPC); /* still full */
		} else {
			if (rc != (full == 1 ? -ENOSPC : 0)) {
				struct stat st;
				stat(atel__seglog_current_file(l), &st);
				fail_msg("flush: %d with full=%d, file %lld bytes", rc, full, (long long)st.st_size);
			}
		}
	}
	assert_int_equal(full, 2);
	assert_int_equal(atel__seglog_close(l), 0);
	assert_int_equal(check_log(seg, &ex, &ring, 1, &cl), ex.n);
	assert_int_equal(cl.n, 0);
	expect_free(&ex);
	atel_synth_free(&s);
	atel_synth_rmtree(seg);
	umount(mnt);
	rmdir(mnt);
}

/* Write a log of many small frames in one file; @return its path. */
static void many_frames(struct env *e, struct atel_synth *s, char *path, size_t plen)
{
	struct atel_synth *sp[2] = { &s[0], &s[1] };
	struct atel_synth_log_opts o = { .batch = 300, .flush_each_round = true, .ring_count = 8, .encoding = g_enc };
	streams(s, 2, 3000);
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 2, &o), 0);
	assert_int_equal(count_files(e->seg), 1);
	seg_path(path, plen, e->seg, 1);
}

static void recover_expect(struct env *e, const uint64_t *next, const bool *seen, struct atel_synth *s)
{
	uint64_t got[8] = { 0 };
	bool gseen[8] = { 0 };
	char err[256] = "";
	struct atel_decoder *d = atel__decoder_new();
	struct atel_event ev;

	assert_int_equal(atel__seglog_recover(e->seg, INSTANCE, 8, got, gseen, d, err, sizeof(err)), 0);
	for (int r = 0; r < 8; r++) {
		assert_int_equal(gseen[r], seen[r]);
		if (seen[r])
			assert_int_equal(got[r], next[r]);
	}
	/* the decoder knows the definitions: the last sample of ring 0 decodes */
	for (size_t i = s[0].n; i-- > 0;) {
		if (s[0].slots[i].h.type == ATEL_REC_SAMPLE && s[0].slots[i].h.cont == 0) {
			assert_int_equal(atel__decode(d, 0, i, &s[0].slots[i], 1, &ev), 1);
			break;
		}
	}
	atel__decoder_free(d);
}

static void test_recover_torn_tail(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	char path[700];
	unsigned char *orig;
	size_t len = 0;
	uint64_t offs[4096];
	unsigned nf;

	many_frames(e, s, path, sizeof(path));
	orig = slurp(path, &len);
	nf = frame_offsets(orig, len, offs, 4096);
	assert_true(nf > 10);
	{
		uint64_t last = offs[nf - 1], step = (len - last) / 97 + 1;
		uint64_t next[8] = { 0 }, full[8] = { 0 };
		bool seen[8] = { 0 }, fseen[8] = { 0 };
		struct stat st;
		positions_of(orig, last, next, seen);
		positions_of(orig, len, full, fseen);
		assert_true(full[0] != next[0] || full[3] != next[3]);
		/* every cut inside the last frame: the frame is dropped, positions are the previous frame's */
		for (uint64_t cutoff = last; cutoff < len; cutoff += step) {
			spit(path, orig, cutoff);
			recover_expect(e, next, seen, s);
			assert_int_equal(stat(path, &st), 0);
			assert_int_equal(st.st_size, last);
		}
		/* a bad checksum in the last frame */
		orig[len - 1] ^= 0x5a;
		spit(path, orig, len);
		recover_expect(e, next, seen, s);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, last);
		orig[len - 1] ^= 0x5a;
		/* intact: everything counts, nothing is cut */
		spit(path, orig, len);
		recover_expect(e, full, fseen, s);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, len);
		/* a corrupt middle frame is not a tail: kept, later frames count */
		orig[offs[nf / 2] + 20] ^= 0xff;
		spit(path, orig, len);
		recover_expect(e, full, fseen, s);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, len);
		orig[offs[nf / 2] + 20] ^= 0xff;
		spit(path, orig, len);

		/* newer files: one died inside its header (removed), one with a bad header (moved aside) */
		{
			char p2[700], p3[700], aside[720];
			seg_path(p2, sizeof(p2), e->seg, 2);
			spit(p2, orig, 30);
			recover_expect(e, full, fseen, s);
			assert_int_equal(access(p2, F_OK), -1);
			seg_path(p3, sizeof(p3), e->seg, 3);
			orig[20] ^= 1; /* header crc mismatch */
			spit(p3, orig, len);
			orig[20] ^= 1;
			recover_expect(e, full, fseen, s);
			snprintf(aside, sizeof(aside), "%s.corrupt", p3);
			assert_int_equal(access(aside, F_OK), 0);
			unlink(aside);
		}
		/* the newest file belongs to another shm instance: no positions */
		{
			bool none[8] = { 0 };
			uint64_t got[8] = { 0 };
			bool gseen[8] = { 0 };
			char err[256];
			assert_int_equal(atel__seglog_recover(e->seg, INSTANCE + 1, 8, got, gseen, NULL, err, sizeof(err)), 0);
			assert_memory_equal(gseen, none, sizeof(none));
		}
	}
	free(orig);
	atel_synth_free(&s[0]);
	atel_synth_free(&s[1]);
}

/* After recovery, a new writer continues: each position exactly once over all files. */
static void test_recover_then_continue(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct expect ex[2];
	uint32_t rings[2];
	char path[700];
	unsigned char *orig;
	size_t len = 0;
	uint64_t offs[4096], next[8] = { 0 };
	bool seen[8] = { 0 };
	struct atel_decoder *d = atel__decoder_new();
	struct atel_seglog *l;
	struct atel_seglog_opts o = { 0 };
	struct corrupt_log cl = { 0 };
	char err[256];
	unsigned nf;

	many_frames(e, s, path, sizeof(path));
	orig = slurp(path, &len);
	nf = frame_offsets(orig, len, offs, 4096);
	spit(path, orig, offs[nf - 3] + 11); /* torn in the middle of a frame */
	assert_int_equal(atel__seglog_recover(e->seg, INSTANCE, 8, next, seen, d, err, sizeof(err)), 0);
	assert_true(seen[0] && seen[3]);
	o.segments_dir = e->seg;
	o.encoding = g_enc;
	o.ring_count = 8;
	o.shm_instance = INSTANCE;
	o.defs = d;
	assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), 0);
	for (int i = 0; i < 2; i++) {
		uint32_t r = s[i].ring;
		assert_int_equal(atel__seglog_written_pos(l, r), next[r]);
		assert_int_equal(atel__seglog_append(l, r, s[i].generation, next[r], s[i].slots + (next[r] - s[i].base_pos),
						     s[i].n - (next[r] - s[i].base_pos), NULL, 0), 0);
		expect_build(&ex[i], &s[i]);
		rings[i] = r;
	}
	assert_int_equal(atel__seglog_close(l), 0);
	assert_int_equal(check_log(e->seg, ex, rings, 2, &cl), ex[0].n + ex[1].n);
	assert_int_equal(cl.n, 0);
	/* the second file decodes alone: its header carries positions and definitions */
	{
		char p2[700];
		struct atel_log_reader *r;
		struct atel_log_reader_opts ro = { 0 };
		struct atel_event ev;
		int rc;
		seg_path(p2, sizeof(p2), e->seg, 2);
		ro.single_file = p2;
		assert_int_equal(atel__log_open(&r, &ro), 0);
		while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
			assert_int_not_equal(ev.kind, ATEL_EV_INVALID);
			assert_int_not_equal(ev.pid, 0);
		}
		assert_int_equal(rc, 0);
		atel__log_close(r);
		/* its definitions are one zstd frame (DEFZ), smaller than the raw slots */
		{
			size_t l2 = 0;
			unsigned char *b2 = slurp(p2, &l2);
			struct atel_seg_header_view hv;
			const char *why = NULL;
			uint32_t fsz;
			memcpy(&fsz, b2 + 4, 4);
			assert_true(fsz + 8ull <= l2);
			assert_int_equal(atel__seg_parse_header(b2 + 8, fsz, &hv, &why), 0);
			assert_true(hv.hdr.required & ATEL_SEG_REQ_DEFZ);
			assert_true(hv.hdr.ndef_slots > 0);
			assert_true(fsz < hv.hdr.header_size + hv.hdr.nentries * 16u + hv.hdr.ndef_slots * 64u);
			assert_non_null(hv.defs_owned);
			assert_int_equal(((const union atel_slot *)hv.defs)[0].h.type, ATEL_LOGREC_CHUNK);
			atel__seg_header_view_free(&hv);
			/* a flipped byte in the compressed definitions: the header is refused (crc) */
			b2[8 + fsz - 3] ^= 0x40;
			assert_int_equal(atel__seg_parse_header(b2 + 8, fsz, &hv, &why), -EBADMSG);
			free(b2);
		}
	}
	for (int i = 0; i < 2; i++) {
		expect_free(&ex[i]);
		atel_synth_free(&s[i]);
	}
	atel__decoder_free(d);
	free(orig);
}

/* kill -9 a writing process at random moments; restart from recover(): exactly once. */
static void test_kill9_exactly_once(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct expect ex;
	uint32_t ring = 0;
	struct corrupt_log cl = { 0 };
	uint64_t next = 0;

	atel_synth_init(&s, 0, 1, 5, 6, T0);
	atel_synth_begin(&s, "x");
	atel_synth_agent_workload(&s, 11, 400000, 25);
	expect_build(&ex, &s);
	srand((unsigned)getpid());
	for (int round = 0; round < 6 && next < s.n; round++) {
		uint64_t np[1] = { 0 };
		bool seen[1] = { false };
		char err[256];
		struct atel_decoder *d = atel__decoder_new();
		pid_t pid;
		assert_int_equal(atel__seglog_recover(e->seg, INSTANCE, 1, np, seen, d, err, sizeof(err)), 0);
		if (next) /* once something was logged, every later file knows where ring 0 stands */
			assert_true(seen[0] && np[0] >= next);
		next = seen[0] ? np[0] : 0;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct atel_seglog *l;
			struct atel_seglog_opts o = { .segments_dir = e->seg, .ring_count = 1, .shm_instance = INSTANCE,
						      .frame_bytes = 64 << 10, .rotate_bytes = 512 << 10, .defs = d,
						      .encoding = g_enc };
			uint64_t at = next;
			if (atel__seglog_open(&l, &o, err, sizeof(err)))
				_exit(2);
			while (at < s.n) {
				uint64_t n = 0;
				while (at + n < s.n && n < 1500)
					n += 1u + s.slots[at + n].h.cont;
				if (atel__seglog_append(l, 0, 1, at, s.slots + at, n, NULL, 0) ||
				    atel__seglog_flush(l))
					_exit(3);
				at += n;
			}
			atel__seglog_close(l);
			_exit(0);
		}
		{
			struct timespec ts = { 0, (long)(5 + rand() % 40) * 1000000L };
			int st;
			nanosleep(&ts, NULL);
			kill(pid, SIGKILL);
			assert_int_equal(waitpid(pid, &st, 0), pid);
			assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
		}
		atel__decoder_free(d);
	}
	/* finish the stream in this process */
	{
		uint64_t np[1] = { 0 };
		bool seen[1] = { false };
		char err[256];
		struct atel_decoder *d = atel__decoder_new();
		struct atel_seglog *l;
		struct atel_seglog_opts o = { .segments_dir = e->seg, .ring_count = 1, .shm_instance = INSTANCE, .defs = d,
					      .encoding = g_enc };
		assert_int_equal(atel__seglog_recover(e->seg, INSTANCE, 1, np, seen, d, err, sizeof(err)), 0);
		next = seen[0] ? np[0] : 0;
		assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), 0);
		if (next < s.n)
			assert_int_equal(atel__seglog_append(l, 0, 1, next, s.slots + next, s.n - next, NULL, 0), 0);
		assert_int_equal(atel__seglog_close(l), 0);
		atel__decoder_free(d);
	}
	assert_int_equal(check_log(e->seg, &ex, &ring, 1, &cl), ex.n);
	expect_free(&ex);
	atel_synth_free(&s);
}

/* the recovery tests again with COLUMNS frames */
static void test_recover_torn_tail_columns(void **state)
{
	g_enc = ATEL_SEG_ENC_COLUMNS;
	test_recover_torn_tail(state);
	g_enc = ATEL_SEG_ENC_RECORDS;
}

static void test_recover_then_continue_columns(void **state)
{
	g_enc = ATEL_SEG_ENC_COLUMNS;
	test_recover_then_continue(state);
	g_enc = ATEL_SEG_ENC_RECORDS;
}

static void test_kill9_exactly_once_columns(void **state)
{
	g_enc = ATEL_SEG_ENC_COLUMNS;
	test_kill9_exactly_once(state);
	g_enc = ATEL_SEG_ENC_RECORDS;
}

static void test_retention_and_age_rotation(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct atel_seglog *l;
	struct atel_seglog_opts o = { 0 };
	struct atel_log_counters st;
	char err[256], p[700];
	uint64_t now = atel__now_ns();
	char first[700];

	memset(&st, 0, sizeof(st));
	atel_synth_init(&s, 0, 1, 5, 6, T0);
	atel_synth_begin(&s, "x");
	atel_synth_agent_workload(&s, 1, 1000, 0);
	o.segments_dir = e->seg;
	o.ring_count = 1;
	o.shm_instance = INSTANCE;
	o.rotate_age_ns = 1000000000ull; /* 1 s */
	o.retention_ns = 3600ull * 1000000000ull;
	o.stats = &st;
	assert_int_equal(atel__seglog_open(&l, &o, err, sizeof(err)), 0);
	snprintf(first, sizeof(first), "%s", atel__seglog_current_file(l));
	/* an empty file does not rotate by age */
	assert_int_equal(atel__seglog_tick(l, now + 5000000000ull), 0);
	assert_string_equal(atel__seglog_current_file(l), first);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(atel__seglog_append(l, 0, 1, i * 10, s.slots + i * 10, 10, NULL, 0), 0);
		assert_int_equal(atel__seglog_flush(l), 0);
		assert_int_equal(atel__seglog_tick(l, atel__now_ns() + 2000000000ull), 0); /* older than 1 s: rotate */
	}
	assert_int_equal(count_files(e->seg), 5);
	assert_int_equal(atomic_load(&st.segments_created), 5);
	assert_int_equal(atomic_load(&st.log_end_seq), 5);
	assert_int_not_equal(strcmp(atel__seglog_current_file(l), first), 0);
	/* files 1 and 2 were last written two hours ago */
	for (int i = 1; i <= 2; i++) {
		struct timespec ts[2] = { { (time_t)(now / 1000000000ull) - 7200, 0 }, { (time_t)(now / 1000000000ull) - 7200, 0 } };
		seg_path(p, sizeof(p), e->seg, (uint64_t)i);
		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	assert_int_equal(atel__seglog_tick(l, now + 200000000000ull), 0); /* the next retention scan */
	assert_int_equal(count_files(e->seg), 3);
	assert_int_equal(atomic_load(&st.segments_deleted), 2);
	seg_path(p, sizeof(p), e->seg, 1);
	assert_int_equal(access(p, F_OK), -1);
	seg_path(p, sizeof(p), e->seg, 3);
	assert_int_equal(access(p, F_OK), 0);
	/* reopen (SIGHUP) starts a new file */
	assert_int_equal(atel__seglog_reopen(l), 0);
	assert_int_equal(count_files(e->seg), 4);
	assert_int_equal(atel__seglog_close(l), 0);
	atel_synth_free(&s);
}

/* issue 12.3: a frame whose source memory source_lost() reports cut (a truncated shm
 * segment, SIGBUS absorbed, pages read as zeros) is dropped, counted, never written. */
static bool g_lost;
static bool lost_cb(void *arg)
{
	(void)arg;
	return g_lost;
}

static void test_source_lost(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct atel_seglog *l;
	struct atel_seglog_opts o = { 0 };
	struct atel_log_counters st;
	struct atel_log_reader *r;
	struct atel_log_reader_opts ro = { .segments_dir = e->seg };
	struct atel_log_read_stats rs;
	struct atel_event ev;
	struct atel_log_pos pos;
	char err[256] = "";
	uint64_t first = 0, rest = 0, n = 0;
	int rc;

	memset(&st, 0, sizeof(st));
	atel_synth_init(&s, 1, 5, 77, 78, T0);
	s.base_pos = 500;
	atel_synth_begin(&s, "x");
	atel_synth_agent_workload(&s, 1, 60, 0);
	o.segments_dir = e->seg;
	o.ring_count = 2;
	o.shm_instance = INSTANCE;
	o.async_io = &atel__seglog_uring;
	o.stats = &st;
	o.source_lost = lost_cb;
	g_lost = false;
	if (atel__seglog_open(&l, &o, err, sizeof(err)) != 0)
		fail_msg("open: %s", err);
	for (size_t i = 0; i < 10; i += 1u + s.slots[i].h.cont)
		first++;
	for (size_t i = 10; i < s.n; i += 1u + s.slots[i].h.cont)
		rest++;
	assert_int_equal(s.slots[10 - 1].h.cont, 0); /* 10 slots end on a record boundary */
	assert_int_equal(atel__seglog_append(l, 1, 5, 500, s.slots, 10, NULL, 0), 0);
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_append(l, 1, 5, 510, s.slots + 10, s.n - 10, NULL, 0), 0);
	g_lost = true; /* the segment was cut before this frame was compressed */
	assert_int_equal(atel__seglog_flush(l), 0);
	assert_int_equal(atel__seglog_written_pos(l, 1), 510); /* never claimed as written */
	assert_int_equal(atomic_load(&st.records_source_lost), rest);
	assert_int_equal(atel__seglog_close(l), 0);

	assert_int_equal(atel__log_open(&r, &ro), 0);
	while ((rc = atel__log_next(r, &ev, &pos)) == 1)
		n++;
	assert_int_equal(rc, 0);
	atel__log_stats(r, &rs);
	assert_int_equal(rs.invalid_records, 0);
	assert_int_equal(rs.corrupt_frames, 0);
	assert_true(n <= first);
	assert_true(n > 0);
	atel__log_close(r);
	atel_synth_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_uring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_pwritev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_io_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_positions_and_markers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_source_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection_uring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection_pwritev, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmpfs_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_then_continue, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_exactly_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_and_age_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_torn_tail_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_then_continue_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_exactly_once_columns, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
