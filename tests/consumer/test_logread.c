/* SPDX-License-Identifier: MIT */
/*
 * Log reader tests: event content and positions, resuming at any persisted
 * position (also after retention removed the file), following a log that
 * grows and rotates, a torn tail (silent while following, reported once
 * otherwise), corrupt frames and headers reported with file and offset and
 * skipped, single-file mode, statistics per record type, and the format's
 * versions (1.1 records, 2.0 columns, 1.1 columns of old, unknown required
 * features refused).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include <cmocka.h>

#include "atel_test.h"
#include "log_test_util.h"

#define INSTANCE 0x77ull

struct env {
	char dir[512];
	char seg[600];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_int_equal(atel_synth_tmpdir(e->dir, sizeof(e->dir), "logread"), 0);
	snprintf(e->seg, sizeof(e->seg), "%s/segments", e->dir);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	atel_synth_rmtree(e->dir);
	free(e);
	return 0;
}

static void write_streams(struct env *e, struct atel_synth *s, unsigned n, uint64_t samples, uint64_t rotate)
{
	struct atel_synth *sp[4];
	struct atel_synth_log_opts o = { .batch = 500, .rotate_bytes = rotate, .frame_bytes = 64 << 10 };
	for (unsigned i = 0; i < n; i++) {
		atel_synth_init(&s[i], i, 1, 300 + (int32_t)i, 400 + (int32_t)i, T0);
		atel_synth_begin(&s[i], "w");
		atel_synth_agent_workload(&s[i], i, samples, 10);
		sp[i] = &s[i];
	}
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, n, &o), 0);
}

static void test_event_content(void **state)
{
	struct env *e = *state;
	struct atel_synth s, *sp[1] = { &s };
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { 0 };
	struct atel_event ev;
	struct atel_log_pos pos;
	uint8_t tr[16], span[8];
	uint32_t c;

	atel_synth_init(&s, 2, 9, 4242, 4243, T0);
	s.base_pos = 100;
	atel_synth_begin(&s, "agent-a");
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "Read", NULL);
	atel_synth_sample(&s, c, 3, false);
	atel_synth_ids(5, tr, span);
	atel_synth_span_start(&s, tr, span, NULL, "root", 2);
	atel_synth_span_end(&s, tr, span, 1, "done");
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 1, NULL), 0);

	o.segments_dir = e->seg;
	assert_int_equal(atel__log_open(&r, &o), 0);
	assert_string_equal(atel__log_current_file(r), "");
	assert_int_equal(atel__log_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, ATEL_EV_BEGIN);
	assert_int_equal(ev.seq, 100);
	assert_int_equal(ev.ring, 2);
	assert_int_equal(ev.generation, 9);
	assert_string_equal(ev.begin.comm, "agent-a");
	assert_int_equal(pos.file_seq, 1);
	assert_true(pos.frame_off > 8);
	assert_int_equal(pos.rec_idx, 2); /* CHUNK + BEGIN */
	assert_non_null(strstr(atel__log_current_file(r), "0000000000000001.atseg"));
	assert_int_equal(atel__log_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, ATEL_EV_SAMPLE);
	assert_int_equal(ev.seq, 100 + 5); /* BEGIN, 3 STRDEF, SERIESDEF */
	assert_string_equal(ev.sample.series->name, "tool_calls_total");
	assert_string_equal(ev.sample.series->values[0], "Read");
	assert_int_equal(ev.pid, 4242);
	assert_int_equal(ev.tid, 4243);
	assert_string_equal(ev.comm, "agent-a");
	assert_int_equal(atel__log_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_START);
	assert_string_equal(ev.span_start.name, "root");
	assert_int_equal(atel__log_next(r, &ev, &pos), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_END);
	assert_string_equal(ev.span_end.msg, "done");
	assert_int_equal(atel__log_next(r, &ev, &pos), 0);
	assert_int_equal(atel__log_next(r, &ev, &pos), 0);
	{
		struct atel_log_read_stats st;
		atel__log_stats(r, &st);
		assert_int_equal(st.files, 1);
		assert_int_equal(st.frames, 1);
		assert_int_equal(st.records, 9); /* begin, 4 strdefs, series, sample, span start, span end */
		assert_int_equal(st.by_type[ATEL_REC_STRDEF], 4);
		assert_int_equal(st.by_type[ATEL_REC_SAMPLE], 1);
		assert_int_equal(st.by_type[ATEL_LOGREC_CHUNK], 1);
		assert_int_equal(st.corrupt_frames, 0);
		assert_int_equal(st.bytes_raw, 64 * (1 + s.n));
	}
	atel__log_close(r);
	atel__log_close(NULL);
	{
		struct atel_log_reader_opts bad = { .segments_dir = "/nonexistent/atel" };
		assert_int_equal(atel__log_open(&r, &bad), -ENOENT);
	}
	atel_synth_free(&s);
}

struct evkey {
	uint32_t ring;
	uint64_t seq;
	uint8_t kind;
};

static size_t read_all(const char *dir, struct atel_log_pos start, struct evkey *out, struct atel_log_pos *pos,
		       size_t max)
{
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { .segments_dir = dir, .start = start };
	struct atel_event ev;
	size_t n = 0;
	int rc;
	assert_int_equal(atel__log_open(&r, &o), 0);
	while ((rc = atel__log_next(r, &ev, pos ? &pos[n < max ? n : max - 1] : NULL)) == 1) {
		assert_int_not_equal(ev.kind, ATEL_EV_INVALID);
		assert_true(n < max);
		out[n].ring = ev.ring;
		out[n].seq = ev.seq;
		out[n].kind = (uint8_t)ev.kind;
		n++;
	}
	assert_int_equal(rc, 0);
	atel__log_close(r);
	return n;
}

static void test_resume(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	size_t max = 200000, n, m;
	struct evkey *all = calloc(max, sizeof(*all)), *rest = calloc(max, sizeof(*rest));
	struct atel_log_pos *pos = calloc(max, sizeof(*pos));
	struct atel_log_pos zero = { 0 };

	write_streams(e, s, 2, 8000, 128 << 10);
	assert_true(count_files(e->seg) >= 3);
	n = read_all(e->seg, zero, all, pos, max);
	assert_true(n > 10000);
	/* resuming after event k yields exactly events k+1.. */
	for (size_t k = 0; k < n; k += n / 37 + 1) {
		m = read_all(e->seg, pos[k], rest, NULL, max);
		assert_int_equal(m, n - k - 1);
		assert_memory_equal(rest, all + k + 1, m * sizeof(*rest));
	}
	m = read_all(e->seg, pos[n - 1], rest, NULL, max);
	assert_int_equal(m, 0);
	/* retention removed the file of the resume point: the next file, from its start */
	{
		char p[700];
		size_t first2 = 0;
		seg_path(p, sizeof(p), e->seg, 1);
		assert_int_equal(unlink(p), 0);
		while (pos[first2].file_seq == 1)
			first2++;
		/* events of file 2 start after the last one whose position is still in file 1 */
		m = read_all(e->seg, pos[0], rest, NULL, max);
		assert_int_equal(m, n - first2);
		assert_memory_equal(rest, all + first2, m * sizeof(*rest));
	}
	free(all);
	free(rest);
	free(pos);
	atel_synth_free(&s[0]);
	atel_synth_free(&s[1]);
}

static void test_follow(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct expect ex;
	struct atel_seglog *l;
	struct atel_seglog_opts lo = { 0 };
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { 0 };
	struct corrupt_log cl = { 0 };
	struct atel_event ev;
	char err[256];
	size_t got = 0, at = 0;

	atel_synth_init(&s, 0, 1, 5, 6, T0);
	atel_synth_begin(&s, "f");
	atel_synth_agent_workload(&s, 1, 20000, 10);
	expect_build(&ex, &s);
	lo.segments_dir = e->seg;
	lo.ring_count = 1;
	lo.shm_instance = INSTANCE;
	lo.frame_bytes = 64 << 10;
	assert_int_equal(atel__seglog_open(&l, &lo, err, sizeof(err)), 0);
	o.segments_dir = e->seg;
	o.follow = true;
	o.on_corrupt = on_corrupt_cb;
	o.arg = &cl;
	assert_int_equal(atel__log_open(&r, &o), 0);
	assert_int_equal(atel__log_next(r, &ev, NULL), 0); /* header only so far */
	for (int round = 0; at < s.n; round++) {
		uint64_t n = 0;
		int rc;
		while (at + n < s.n && n < 3000)
			n += 1u + s.slots[at + n].h.cont;
		assert_int_equal(atel__seglog_append(l, 0, 1, at, s.slots + at, n, NULL, 0), 0);
		assert_int_equal(atel__seglog_flush(l), 0);
		at += n;
		if (round % 3 == 2)
			assert_int_equal(atel__seglog_reopen(l), 0); /* rotation while following */
		while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
			assert_int_equal(ev.seq, ex.seq[got]);
			got++;
		}
		assert_int_equal(rc, 0);
		/* everything written so far was read */
		while (got < ex.n && ex.seq[got] < at)
			fail_msg("event at %llu not read while following", (unsigned long long)ex.seq[got]);
	}
	assert_int_equal(got, ex.n);
	/* a frame being written (half of it on disk) is not an error while following */
	{
		char p[700];
		unsigned char *buf;
		size_t len = 0;
		uint64_t offs[64];
		unsigned nf;
		int fd;
		seg_path(p, sizeof(p), e->seg, 1);
		buf = slurp(p, &len);
		nf = frame_offsets(buf, len, offs, 64);
		assert_true(nf >= 1);
		fd = open(atel__seglog_current_file(l), O_WRONLY | O_APPEND);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, buf + offs[0], 40), 40);
		assert_int_equal(atel__log_next(r, &ev, NULL), 0);
		assert_int_equal(atel__log_next(r, &ev, NULL), 0);
		assert_int_equal(cl.n, 0);
		close(fd);
		free(buf);
	}
	atel__log_close(r);
	/* without follow, the same torn tail is reported once, with its file and offset */
	{
		struct atel_log_reader_opts o2 = { .segments_dir = e->seg, .on_corrupt = on_corrupt_cb, .arg = &cl };
		struct stat st;
		size_t n = 0;
		int rc;
		assert_int_equal(stat(atel__seglog_current_file(l), &st), 0);
		assert_int_equal(atel__log_open(&r, &o2), 0);
		while ((rc = atel__log_next(r, &ev, NULL)) == 1)
			n++;
		assert_int_equal(rc, 0);
		assert_int_equal(atel__log_next(r, &ev, NULL), 0);
		assert_int_equal(n, ex.n);
		assert_int_equal(cl.n, 1);
		assert_string_equal(cl.file[0], atel__seglog_current_file(l));
		assert_int_equal(cl.off[0], (uint64_t)st.st_size - 40);
		assert_string_equal(cl.why[0], "truncated frame at the end of the file");
		atel__log_close(r);
	}
	atel__seglog_close(l); /* the writer does not know about the bytes we added: close fails or not, both fine */
	expect_free(&ex);
	atel_synth_free(&s);
}

/*
 * A follower that opened a file while it was empty, or read a frame only
 * partly written, must see the rest once the file grows: the file is fed in
 * odd-sized pieces (a few bytes of the header, then splits inside frames)
 * and every event must come out exactly once.
 */
static void test_follow_growth(void **state)
{
	struct env *e = *state;
	struct atel_synth s[1];
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { 0 }, oa = { 0 };
	struct atel_event ev;
	char src[700], dst[700], dir2[600];
	unsigned char *buf;
	size_t len = 0, at = 0, want = 0, got = 0;
	static const size_t steps[] = { 5, 3, 3000, 17, 40000, 1, 9000, 123 };
	int fd, rc;

	write_streams(e, s, 1, 5000, 0);
	atel_synth_free(&s[0]);
	oa.segments_dir = e->seg;
	assert_int_equal(atel__log_open(&r, &oa), 0);
	while ((rc = atel__log_next(r, &ev, NULL)) == 1)
		want++;
	assert_int_equal(rc, 0);
	atel__log_close(r);
	assert_true(want > 1000);

	seg_path(src, sizeof(src), e->seg, 1);
	buf = slurp(src, &len);
	snprintf(dir2, sizeof(dir2), "%s/growing", e->dir);
	assert_int_equal(mkdir(dir2, 0700), 0);
	seg_path(dst, sizeof(dst), dir2, 1);
	fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	o.segments_dir = dir2;
	o.follow = true;
	assert_int_equal(atel__log_open(&r, &o), 0);
	assert_int_equal(atel__log_next(r, &ev, NULL), 0); /* empty file */
	for (unsigned i = 0; at < len; i++) {
		size_t n = steps[i % (sizeof(steps) / sizeof(steps[0]))];
		if (n > len - at)
			n = len - at;
		assert_int_equal(write(fd, buf + at, n), (ssize_t)n);
		at += n;
		while ((rc = atel__log_next(r, &ev, NULL)) == 1)
			got++;
		assert_int_equal(rc, 0);
	}
	assert_int_equal(got, want);
	atel__log_close(r);
	close(fd);
	free(buf);
}

static void test_corrupt_frames(void **state)
{
	struct env *e = *state;
	struct atel_synth s[1], *sp[1] = { &s[0] };
	struct atel_synth_log_opts wo = { .batch = 400, .flush_each_round = true };
	char p[700];
	unsigned char *buf;
	size_t len = 0;
	uint64_t offs[512];
	unsigned nf;
	struct corrupt_log cl = { 0 };
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { 0 };
	struct atel_event ev;
	uint64_t n = 0, last = 0, jumps = 0;
	int rc;

	atel_synth_init(&s[0], 0, 1, 5, 6, T0);
	atel_synth_begin(&s[0], "c");
	atel_synth_agent_workload(&s[0], 2, 5000, 0);
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 1, &wo), 0);
	seg_path(p, sizeof(p), e->seg, 1);
	buf = slurp(p, &len);
	nf = frame_offsets(buf, len, offs, 512);
	assert_true(nf > 8);
	buf[offs[3] + 30] ^= 0x40;           /* corrupt data of frame 3: checksum mismatch */
	memset(buf + offs[6], 0xee, 4);      /* frame 6 loses its magic: garbage */
	spit(p, buf, len);
	o.segments_dir = e->seg;
	o.on_corrupt = on_corrupt_cb;
	o.arg = &cl;
	assert_int_equal(atel__log_open(&r, &o), 0);
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		assert_int_not_equal(ev.kind, ATEL_EV_INVALID);
		if (ev.kind != ATEL_EV_SAMPLE)
			continue; /* after the definitions, samples are one slot each */
		if (n && ev.seq != last + 1)
			jumps++;
		last = ev.seq;
		n++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(cl.n, 2);
	assert_string_equal(cl.file[0], p);
	assert_int_equal(cl.off[0], offs[3]);
	assert_int_equal(cl.off[1], offs[6]);
	assert_string_equal(cl.why[1], "no zstd frame magic number here");
	assert_int_equal(jumps, 2); /* the records of exactly two frames are missing, the rest is there */
	{
		struct atel_log_read_stats st;
		atel__log_stats(r, &st);
		assert_int_equal(st.corrupt_frames, 2);
		assert_int_equal(st.frames, nf - 2);
	}
	atel__log_close(r);

	/* a damaged header: reported at offset 0; frames still read (definitions unknown: invalid events) */
	buf[8 + 20] ^= 1;
	spit(p, buf, len);
	memset(&cl, 0, sizeof(cl));
	o.single_file = p;
	o.segments_dir = NULL;
	assert_int_equal(atel__log_open(&r, &o), 0);
	n = 0;
	while ((rc = atel__log_next(r, &ev, NULL)) == 1)
		n++;
	assert_int_equal(rc, 0);
	assert_true(n > 0);
	assert_int_equal(cl.off[0], 0);
	assert_string_equal(cl.why[0], "header frame crc32 mismatch");
	atel__log_close(r);

	/* a newest file that ends inside its header frame: reported once (not while following) */
	{
		char p2[700];
		struct atel_log_reader_opts o3 = { .segments_dir = e->seg, .on_corrupt = on_corrupt_cb, .arg = &cl };
		buf[8 + 20] ^= 1;
		spit(p, buf, len);
		seg_path(p2, sizeof(p2), e->seg, 2);
		spit(p2, buf, 40);
		memset(&cl, 0, sizeof(cl));
		assert_int_equal(atel__log_open(&r, &o3), 0);
		while ((rc = atel__log_next(r, &ev, NULL)) == 1)
			;
		assert_int_equal(rc, 0);
		assert_int_equal(atel__log_next(r, &ev, NULL), 0);
		assert_int_equal(cl.n, 3); /* frames 3 and 6 of file 1, then file 2's header */
		assert_string_equal(cl.file[2], p2);
		assert_int_equal(cl.off[2], 0);
		assert_string_equal(cl.why[2], "file ends inside its header frame");
		atel__log_close(r);
		memset(&cl, 0, sizeof(cl));
		o3.follow = true;
		assert_int_equal(atel__log_open(&r, &o3), 0);
		while ((rc = atel__log_next(r, &ev, NULL)) == 1)
			;
		assert_int_equal(rc, 0);
		assert_int_equal(cl.n, 2); /* still being created: not an error while following */
		atel__log_close(r);
	}
	free(buf);
	atel_synth_free(&s[0]);
}

/* One zstd data frame as the writer makes it (content size and checksum), appended to the file at path. */
static void append_frame(const char *path, const union atel_slot *slots, size_t n)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = ZSTD_compressBound(n * 64), c;
	unsigned char *out = malloc(cap);
	FILE *f;

	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 1);
	c = ZSTD_compress2(cc, out, cap, slots, n * 64);
	assert_false(ZSTD_isError(c));
	f = fopen(path, "ab");
	assert_non_null(f);
	assert_int_equal(fwrite(out, 1, c, f), c);
	fclose(f);
	free(out);
	ZSTD_freeCCtx(cc);
}

static union atel_slot *put_chunk(union atel_slot *at, uint32_t ring, uint32_t gen, uint8_t flags, uint64_t first,
				  uint32_t count)
{
	struct atel_rec_chunk c;
	memset(&c, 0, sizeof(c));
	c.h.type = ATEL_LOGREC_CHUNK;
	c.h.flags = flags;
	c.h.id = ring;
	c.generation = gen;
	c.count = count;
	c.first_pos = first;
	c.shm_instance = INSTANCE;
	memcpy(at, &c, sizeof(c));
	return at + 1;
}

static union atel_slot *put_sample(union atel_slot *at, uint32_t series, double v, uint8_t flags)
{
	memset(at, 0, sizeof(*at));
	at->h.type = ATEL_REC_SAMPLE;
	at->h.flags = flags;
	at->h.id = series;
	at->h.ts_ns = T0 + 7;
	at->sample.value = v;
	return at + 1;
}

struct evrec {
	uint8_t kind;
	uint32_t ring, generation;
	uint64_t seq;
	double value;
	bool set;
	const char *why;
};

static size_t read_evrecs(const char *dir, struct atel_log_pos start, struct evrec *out, struct atel_log_pos *pos,
			  size_t max, struct atel_log_read_stats *st)
{
	struct atel_log_reader *r;
	struct atel_log_reader_opts o = { .segments_dir = dir, .start = start };
	struct atel_event ev;
	size_t n = 0;
	int rc;

	assert_int_equal(atel__log_open(&r, &o), 0);
	while ((rc = atel__log_next(r, &ev, pos ? &pos[n] : NULL)) == 1) {
		assert_true(n + 1 < max);
		memset(&out[n], 0, sizeof(out[n]));
		out[n].kind = (uint8_t)ev.kind;
		out[n].ring = ev.ring;
		out[n].generation = ev.generation;
		out[n].seq = ev.seq;
		if (ev.kind == ATEL_EV_SAMPLE) {
			out[n].value = ev.sample.value;
			out[n].set = ev.sample.set;
			assert_string_equal(ev.sample.series->name, ev.ring == 6 ? "late_ring_total" : "samples_total");
			assert_string_equal(ev.comm, ev.ring == 6 ? "late" : "fast");
		}
		if (ev.kind == ATEL_EV_INVALID)
			out[n].why = ev.invalid.why; /* static strings */
		n++;
	}
	assert_int_equal(rc, 0);
	if (st)
		atel__log_stats(r, st);
	atel__log_close(r);
	return n;
}

/*
 * Samples are decoded inline by the reader (atel__decode_sample) and
 * everything else by atel__decode: every way a sample can leave the fast
 * path gives exactly the event or the reason the decoder gives, with the
 * chunk's sequence numbers, and resuming at any position gives the rest.
 */
/* The file header of the first segment of dir, and where it is. */
static void read_header(const char *dir, char *path, size_t plen, struct atel_seg_header *h)
{
	unsigned char buf[8 + sizeof(*h)];
	int fd;

	seg_path(path, plen, dir, 1);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	close(fd);
	memcpy(h, buf + 8, sizeof(*h));
}

static uint64_t count_events(const char *dir, struct corrupt_log *cl)
{
	struct atel_log_reader_opts o = { .segments_dir = dir, .on_corrupt = on_corrupt_cb, .arg = cl };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	uint64_t n = 0;

	assert_int_equal(atel__log_open(&r, &o), 0);
	while (atel__log_next(r, &ev, NULL) == 1)
		n++;
	atel__log_close(r);
	return n;
}

/*
 * Versions (docs/segment-format.md): a records log is 1.1 (a 1.0 reader
 * reads it), a columns log 2.0 requiring COLUMNS (a 1.x reader refuses it by
 * its major), a 2.x file requiring an unknown feature is refused cleanly,
 * and a COLUMNS log written as 1.1 before 2.0 existed still reads.
 */
static void test_versions(void **state)
{
	struct env *e = *state;
	struct atel_synth s;
	struct atel_synth *sp = &s;
	struct atel_synth_log_opts o = { .batch = 500, .frame_bytes = 64 << 10 };
	struct atel_seg_header h;
	struct corrupt_log cl = { 0 };
	char path[700], cmd[1600];
	uint64_t n_rec, n_col;
	int fd;

	atel_synth_init(&s, 0, 1, 300, 400, T0);
	atel_synth_begin(&s, "w");
	atel_synth_agent_workload(&s, 1, 2000, 10);
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, &sp, 1, &o), 0);
	read_header(e->seg, path, sizeof(path), &h);
	/* ABI 2 records (folded samples, HISTFOLD, LOSS_TOTAL): 2.0, a 1.x reader refuses the file */
	assert_int_equal(h.version_major, 2);
	assert_int_equal(h.version_minor, 0);
	assert_int_equal(h.required, ATEL_SEG_REQ_ABI2);
	n_rec = count_events(e->seg, &cl);
	assert_true(n_rec > 2000);
	atel_synth_rmtree(e->seg);

	o.encoding = ATEL_SEG_ENC_COLUMNS;
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, &sp, 1, &o), 0);
	read_header(e->seg, path, sizeof(path), &h);
	assert_int_equal(h.version_major, 2);
	assert_int_equal(h.version_minor, 0);
	assert_int_equal(h.required, ATEL_SEG_REQ_ABI2 | ATEL_SEG_REQ_COLUMNS | ATEL_SEG_REQ_SPANREF);
	n_col = count_events(e->seg, &cl);
	assert_int_equal(n_col, n_rec);
	assert_int_equal(cl.n, 0);

	/* the same file as 1.1 (how COLUMNS logs were written before 2.0) still reads */
	{
		unsigned char *buf;
		struct stat st;
		uint32_t crc;
		size_t len;

		assert_int_equal(stat(path, &st), 0);
		len = (size_t)st.st_size;
		buf = malloc(len);
		fd = open(path, O_RDWR);
		assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
		h.version_major = 1;
		h.version_minor = 1;
		h.required = 0;
		h.crc32 = 0;
		memcpy(buf + 8, &h, sizeof(h));
		{
			uint32_t content;
			memcpy(&content, buf + 4, 4);
			crc = (uint32_t)crc32(0L, buf + 8, content);
		}
		h.crc32 = crc;
		memcpy(buf + 8, &h, sizeof(h));
		assert_int_equal(pwrite(fd, buf, 8 + sizeof(h), 0), (ssize_t)(8 + sizeof(h)));
		close(fd);
		assert_int_equal(count_events(e->seg, &cl), n_rec);
		assert_int_equal(cl.n, 0);

		/* a 2.x file that requires a feature this reader does not know: refused, said so */
		h.version_major = 2;
		h.required = ATEL_SEG_REQ_COLUMNS | 0x80u;
		h.crc32 = 0;
		memcpy(buf + 8, &h, sizeof(h));
		{
			uint32_t content;
			memcpy(&content, buf + 4, 4);
			h.crc32 = (uint32_t)crc32(0L, buf + 8, content);
		}
		memcpy(buf + 8, &h, sizeof(h));
		fd = open(path, O_RDWR);
		assert_int_equal(pwrite(fd, buf, 8 + sizeof(h), 0), (ssize_t)(8 + sizeof(h)));
		close(fd);
		free(buf);
		cl.n = 0;
		count_events(e->seg, &cl);
		assert_true(cl.n >= 1);
		assert_non_null(strstr(cl.why[0], "requires a feature this reader does not know"));
	}
	/* zstd -t still accepts the files */
	snprintf(cmd, sizeof(cmd), "zstd -q -t '%s' 2>/dev/null", path);
	assert_int_equal(system(cmd), 0);
	atel_synth_free(&s);
}

static void test_sample_paths(void **state)
{
	struct env *e = *state;
	struct atel_synth s, late, *sp[1] = { &s };
	union atel_slot fr[64], *w = fr;
	char p[700];
	uint32_t c, lc;
	enum { MAX = 64 };
	struct evrec all[MAX], rest[MAX];
	struct atel_log_pos pos[MAX], zero = { 0 };
	struct atel_log_read_stats st;
	size_t n, k, m, i = 0;

	atel_synth_init(&s, 0, 1, 77, 78, T0);
	atel_synth_begin(&s, "fast");
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "samples_total", 0, "k", "v", NULL);
	atel_synth_sample(&s, c, 1, false);
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 1, NULL), 0);
	seg_path(p, sizeof(p), e->seg, 1);

	/* ring 0, data chunk at 1000 */
	w = put_chunk(w, 0, 1, 0, 1000, 6);
	w = put_sample(w, c, 2, 0);                     /* 1000 */
	w = put_sample(w, 999, 3, 0);                   /* 1001: undefined series */
	w = put_sample(w, c, 4, 0);                     /* 1002: reserved byte */
	w[-1].h.reserved = 1;
	w = put_sample(w, c, 5, 0);                     /* 1003: claims a continuation slot */
	w[-1].h.cont = 1;
	w = put_sample(w, c, 6, ATEL_RECF_SET);         /* 1004: decoded alone after the bad header slot */
	w = put_sample(w, c, 7, 0);                     /* 1005 */
	/* a MARKER chunk: its records all carry first_pos */
	w = put_chunk(w, 0, 1, ATEL_CHUNKF_MARKER, 2000, 2);
	w = put_sample(w, c, 8, 0);
	w = put_sample(w, c, 9, 0);
	/* a ring with no dictionary at all */
	w = put_chunk(w, 5, 0, 0, 0, 1);
	w = put_sample(w, 1, 10, 0);
	/* ring 6 begins inside the frame: its samples after the definitions decode */
	atel_synth_init(&late, 6, 3, 90, 91, T0);
	atel_synth_begin(&late, "late");
	lc = atel_synth_series(&late, ATEL_MT_GAUGE, "late_ring_total", 0, NULL);
	atel_synth_sample(&late, lc, 11, true);
	atel_synth_sample(&late, lc, 12, true);
	w = put_chunk(w, 6, 3, 0, 0, (uint32_t)late.n);
	memcpy(w, late.slots, late.n * sizeof(*w));
	w += late.n;
	/* a new generation of ring 0: the old series is gone */
	w = put_chunk(w, 0, 2, 0, 3000, 2);
	memset(w, 0, sizeof(*w));
	w->h.type = ATEL_REC_BEGIN;
	w->h.id = 2;
	w->begin.pid = 77;
	w->begin.ring = 0;
	memcpy(w->begin.comm, "fast", 4);
	w++;
	w = put_sample(w, c, 13, 0);
	assert_true((size_t)(w - fr) <= sizeof(fr) / sizeof(fr[0]));
	append_frame(p, fr, (size_t)(w - fr));

	n = read_evrecs(e->seg, zero, all, pos, MAX, &st);
	assert_int_equal(all[i].kind, ATEL_EV_BEGIN);
	i += 2; /* BEGIN, the first sample */
	assert_int_equal(all[i].kind, ATEL_EV_SAMPLE);
	assert_int_equal(all[i].seq, 1000);
	assert_true(all[i++].value == 2);
	assert_int_equal(all[i].seq, 1001);
	assert_string_equal(all[i++].why, "sample's series id is not defined in this generation");
	assert_int_equal(all[i].seq, 1002);
	assert_string_equal(all[i++].why, "reserved header byte is not zero");
	assert_int_equal(all[i].seq, 1003);
	assert_string_equal(all[i++].why, "continuation count does not match the record's length");
	assert_int_equal(all[i].seq, 1004);
	assert_true(all[i].value == 6 && all[i].set);
	assert_int_equal(all[i++].generation, 1);
	assert_int_equal(all[i].seq, 1005);
	assert_true(all[i++].value == 7);
	assert_int_equal(all[i].seq, 2000);
	assert_true(all[i++].value == 8);
	assert_int_equal(all[i].seq, 2000);
	assert_true(all[i++].value == 9);
	assert_int_equal(all[i].ring, 5);
	assert_string_equal(all[i++].why, "sample's series id is not defined in this generation");
	assert_int_equal(all[i].kind, ATEL_EV_BEGIN);
	assert_int_equal(all[i++].ring, 6);
	for (k = 0; k < 2; k++, i++) {
		assert_int_equal(all[i].kind, ATEL_EV_SAMPLE);
		assert_int_equal(all[i].ring, 6);
		assert_int_equal(all[i].generation, 3);
		assert_int_equal(all[i].seq, late.n - 2 + k);
		assert_true(all[i].value == 11 + (double)k && all[i].set);
	}
	assert_int_equal(all[i].kind, ATEL_EV_BEGIN);
	assert_int_equal(all[i++].generation, 2);
	assert_int_equal(all[i].seq, 3001);
	assert_string_equal(all[i++].why, "sample's series id is not defined in this generation");
	assert_int_equal(i, n);
	assert_int_equal(st.invalid_records, 5);
	assert_int_equal(st.by_type[ATEL_REC_SAMPLE], 13);

	/* resuming after event k yields exactly events k+1.. */
	for (k = 0; k < n; k++) {
		m = read_evrecs(e->seg, pos[k], rest, NULL, MAX, NULL);
		assert_int_equal(m, n - k - 1);
		for (size_t j = 0; j < m; j++) {
			const struct evrec *a = &all[k + 1 + j], *b = &rest[j];
			assert_int_equal(a->kind, b->kind);
			assert_int_equal(a->ring, b->ring);
			assert_int_equal(a->generation, b->generation);
			assert_int_equal(a->seq, b->seq);
			assert_true(a->value == b->value && a->set == b->set && a->why == b->why);
		}
	}
	atel_synth_free(&s);
	atel_synth_free(&late);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_event_content, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_follow_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sample_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
