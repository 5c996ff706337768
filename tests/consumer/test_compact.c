/* SPDX-License-Identifier: MIT */
/*
 * Segment file compaction (consumer/log/compact.c; docs/segment-format.md
 * section 9) and the compactor's pin (consumer/compactor.c): a file of many
 * small frames, records and columns encodings, rewritten reads back event
 * for event the same through the log reader in fewer frames and fewer bytes,
 * with its modification time kept and `zstd -t` accepting it; a damaged
 * frame is refused with -EBADMSG and the file left byte-identical; a file of
 * major 1 (or COLUMNS without SPANREF) is left as it is; a missing file fails
 * cleanly; a stray .compact file is removed by cleanup; the persisted log
 * positions pin as the compactor's rules say.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <zlib.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "atel_test.h"
#include "compact.h"
#include "compactor.h"
#include "log_test_util.h"
#include "otlp_export.h"

#define INSTANCE 0x5eedc0deull

struct env {
	char dir[512];
	char seg[600];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_int_equal(atel_synth_tmpdir(e->dir, sizeof(e->dir), "compact"), 0);
	snprintf(e->seg, sizeof(e->seg), "%s/segments", e->dir);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char st[700];
	snprintf(st, sizeof(st), "%s/state", e->dir);
	atel_synth_rmtree(e->seg);
	atel_synth_rmtree(st);
	atel_synth_rmtree(e->dir);
	free(e);
	return 0;
}

/* Two rings of agent workload (samples, spans), written in small frames to one file. */
static void write_small_frames(struct env *e, struct atel_synth *s, enum atel_seg_encoding enc)
{
	struct atel_synth *sp[2] = { &s[0], &s[1] };
	struct atel_synth_log_opts o = { .batch = 200, .flush_each_round = true, .ring_count = 4, .encoding = enc };

	for (unsigned i = 0; i < 2; i++) {
		atel_synth_init(&s[i], i, 1 + i, 500 + (int32_t)i, 600 + (int32_t)i, T0 + i);
		atel_synth_begin(&s[i], "agent");
		atel_synth_agent_workload(&s[i], 11 + i, 6000, 25);
		atel_synth_end(&s[i]);
	}
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 2, &o), 0);
	assert_int_equal(count_files(e->seg), 1);
}

/* Everything an event says, folded into a digest, and the count. */
struct digest {
	uint64_t n;
	uint32_t crc;
};

static uint32_t fold(uint32_t crc, const void *p, size_t n)
{
	return (uint32_t)crc32(crc, p, (uInt)n);
}

static struct digest digest_log(const char *dir)
{
	struct atel_log_reader_opts o = { .segments_dir = dir };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	struct digest d = { 0, (uint32_t)crc32(0, NULL, 0) };
	int rc;

	assert_int_equal(atel__log_open(&r, &o), 0);
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		uint32_t kind = (uint32_t)ev.kind;
		d.crc = fold(d.crc, &kind, sizeof(kind));
		d.crc = fold(d.crc, &ev.rec_type, sizeof(ev.rec_type));
		d.crc = fold(d.crc, &ev.ring, sizeof(ev.ring));
		d.crc = fold(d.crc, &ev.generation, sizeof(ev.generation));
		d.crc = fold(d.crc, &ev.seq, sizeof(ev.seq));
		d.crc = fold(d.crc, &ev.ts_ns, sizeof(ev.ts_ns));
		if (ev.kind == ATEL_EV_SAMPLE) {
			d.crc = fold(d.crc, &ev.sample.value, sizeof(ev.sample.value));
			d.crc = fold(d.crc, &ev.sample.count, sizeof(ev.sample.count));
			if (ev.sample.series && ev.sample.series->name)
				d.crc = fold(d.crc, ev.sample.series->name, strlen(ev.sample.series->name));
		} else if (ev.kind == ATEL_EV_SPAN_START) {
			d.crc = fold(d.crc, ev.span_start.span_id, 8);
			if (ev.span_start.name)
				d.crc = fold(d.crc, ev.span_start.name, strlen(ev.span_start.name));
		} else if (ev.kind == ATEL_EV_INVALID) {
			fail_msg("invalid event at ring %u seq %llu", ev.ring, (unsigned long long)ev.seq);
		}
		d.n++;
	}
	assert_int_equal(rc, 0);
	atel__log_close(r);
	return d;
}

static unsigned count_frames(const char *path, size_t *size)
{
	size_t len = 0;
	unsigned char *p = slurp(path, &len);
	static uint64_t offs[1 << 16];
	unsigned n;

	assert_non_null(p);
	n = frame_offsets(p, len, offs, 1 << 16);
	free(p);
	if (size)
		*size = len;
	return n;
}

static void compact_roundtrip(struct env *e, enum atel_seg_encoding enc)
{
	struct atel_synth s[2];
	struct atel_compact_opts co = { .level = 9, .frame_bytes = 4 << 20 };
	struct atel_compact_result res;
	struct digest before, after;
	struct expect ex[2];
	uint32_t rings[2] = { 0, 1 };
	struct corrupt_log cl = { 0 };
	struct timespec old[2] = { { 1600000000, 123456789 }, { 1600000000, 987654321 } };
	struct stat st0, st1;
	char path[700], err[1024] = "", cmd[1600];
	size_t size0, size1;
	unsigned f0, f1;

	write_small_frames(e, s, enc);
	seg_path(path, sizeof(path), e->seg, 1);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(stat(path, &st0), 0);
	before = digest_log(e->seg);
	assert_true(before.n > 12000);
	f0 = count_frames(path, &size0);
	assert_true(f0 > 50);

	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), 1);
	assert_int_equal(stat(path, &st1), 0);
	f1 = count_frames(path, &size1);
	print_message("%s: %zu bytes in %u frames -> %zu bytes in %u frames\n",
		      enc == ATEL_SEG_ENC_COLUMNS ? "columns" : "records", size0, f0, size1, f1);
	/* fewer frames, fewer bytes, as reported */
	assert_true(f1 < f0 / 10);
	assert_true(size1 < size0);
	assert_int_equal(res.bytes_before, size0);
	assert_int_equal(res.bytes_after, size1);
	assert_int_equal(res.frames_before, f0);
	assert_int_equal(res.frames_after, f1);
	/* the same events, in the same order, with everything they say */
	after = digest_log(e->seg);
	assert_int_equal(after.n, before.n);
	assert_int_equal(after.crc, before.crc);
	for (unsigned i = 0; i < 2; i++)
		expect_build(&ex[i], &s[i]);
	check_log(e->seg, ex, rings, 2, &cl);
	assert_int_equal(cl.n, 0);
	/* the old modification time (age retention counts from it) and mode */
	assert_int_equal(st1.st_mtim.tv_sec, old[1].tv_sec);
	assert_int_equal(st1.st_mtim.tv_nsec, old[1].tv_nsec);
	assert_int_equal(st1.st_mode, st0.st_mode);
	assert_true(st1.st_ino != st0.st_ino);
	/* no temporary file left; the real zstd accepts the new file */
	snprintf(cmd, sizeof(cmd), "%s.compact", path);
	assert_int_equal(access(cmd, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "zstd -q -t '%s' 2>/dev/null", path);
	assert_int_equal(system(cmd), 0);
	/* compacting again: already large frames, left as it is or replaced, never different */
	int rc = atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err));
	assert_true(rc == 0 || rc == 1);
	after = digest_log(e->seg);
	assert_int_equal(after.crc, before.crc);
	for (unsigned i = 0; i < 2; i++) {
		expect_free(&ex[i]);
		atel_synth_free(&s[i]);
	}
}

static void test_compact_records(void **state)
{
	compact_roundtrip(*state, ATEL_SEG_ENC_RECORDS);
}

static void test_compact_columns(void **state)
{
	compact_roundtrip(*state, ATEL_SEG_ENC_COLUMNS);
}

/* A damaged frame in the middle: refused with -EBADMSG, the file byte for byte as it was. */
static void test_damaged_refused(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct atel_compact_opts co = { .level = 3, .frame_bytes = 1 << 20 };
	struct atel_compact_result res;
	static uint64_t offs[1 << 16];
	char path[700], tmp[720], err[1024] = "";
	unsigned char *orig, *now;
	size_t len = 0, len2 = 0;
	unsigned nf;

	write_small_frames(e, s, ATEL_SEG_ENC_COLUMNS);
	seg_path(path, sizeof(path), e->seg, 1);
	orig = slurp(path, &len);
	nf = frame_offsets(orig, len, offs, 1 << 16);
	assert_true(nf > 10);
	/* a byte inside the compressed data of the middle frame */
	orig[offs[nf / 2] + 20] ^= 0x5a;
	spit(path, orig, len);

	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), -EBADMSG);
	print_message("damaged: %s\n", err);
	assert_non_null(strstr(err, "left as it is"));
	now = slurp(path, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(now, orig, len);
	snprintf(tmp, sizeof(tmp), "%s.compact", path);
	assert_int_equal(access(tmp, F_OK), -1);
	free(orig);
	free(now);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

/* Rewrites the header of dir's file 1 with the given version and required bits. */
static void patch_header(const char *path, uint16_t major, uint16_t minor, uint32_t required)
{
	struct atel_seg_header h;
	unsigned char buf[8 + sizeof(h)];
	uint32_t content;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	memcpy(&h, buf + 8, sizeof(h));
	memcpy(&content, buf + 4, 4);
	h.version_major = major;
	h.version_minor = minor;
	h.required = required;
	h.crc32 = 0;
	memcpy(buf + 8, &h, sizeof(h));
	{
		/* the crc covers the whole header frame content */
		unsigned char *all = malloc(8 + content);
		assert_int_equal(pread(fd, all, 8 + content, 0), (ssize_t)(8 + content));
		memcpy(all + 8, &h, sizeof(h));
		h.crc32 = (uint32_t)crc32(0L, all + 8, content);
		free(all);
	}
	memcpy(buf + 8, &h, sizeof(h));
	assert_int_equal(pwrite(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	close(fd);
}

/* Files this version does not rewrite: major 1, and 2.x COLUMNS without SPANREF (version 1 blocks). */
static void test_old_versions_left(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct atel_compact_opts co = { .level = 3, .frame_bytes = 1 << 20 };
	struct atel_compact_result res;
	char path[700], err[1024] = "";
	unsigned char *orig, *now;
	size_t len = 0, len2 = 0;
	struct digest d0, d1;

	write_small_frames(e, s, ATEL_SEG_ENC_COLUMNS);
	seg_path(path, sizeof(path), e->seg, 1);
	d0 = digest_log(e->seg);

	patch_header(path, 1, 1, 0);
	d1 = digest_log(e->seg); /* still reads: the patch is right */
	assert_int_equal(d1.n, d0.n);
	orig = slurp(path, &len);
	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "version"));
	now = slurp(path, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(now, orig, len);
	free(orig);
	free(now);

	patch_header(path, 2, 0, ATEL_SEG_REQ_ABI2 | ATEL_SEG_REQ_COLUMNS);
	orig = slurp(path, &len);
	err[0] = 0;
	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "version"));
	now = slurp(path, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(now, orig, len);
	free(orig);
	free(now);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

/* A file removed before its turn (retention): a clean error, nothing created. */
static void test_missing_file(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct atel_compact_opts co = { .level = 3, .frame_bytes = 1 << 20 };
	struct atel_compact_result res;
	char path[700], err[1024] = "";

	write_small_frames(e, s, ATEL_SEG_ENC_RECORDS);
	assert_int_equal(atel__seg_compact(e->seg, 7, &co, &res, err, sizeof(err)), -ENOENT);
	assert_true(err[0] != 0);
	seg_path(path, sizeof(path), e->seg, 7);
	assert_int_equal(access(path, F_OK), -1);
	strcat(path, ".compact");
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_files(e->seg), 1);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

/* still_ok, asked right before the exchange: */
struct last_word {
	int calls;
	bool answer;
	const char *unlink_path; /* removes the file first: retention meanwhile */
};

static bool last_word(void *arg, char *why, size_t whylen)
{
	struct last_word *w = arg;

	w->calls++;
	if (w->unlink_path)
		assert_int_equal(unlink(w->unlink_path), 0);
	if (!w->answer)
		snprintf(why, whylen, "index cursor moved to log position file 1 offset 64 meanwhile");
	return w->answer;
}

/*
 * A reader reached the file while it was rewritten (still_ok says no): the
 * old file stays byte for byte, -EAGAIN, nothing left behind. A file that
 * retention removed while it was rewritten is not brought back by the
 * exchange.
 */
static void test_last_word(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct last_word w = { 0, false, NULL };
	struct atel_compact_opts co = { .level = 3, .frame_bytes = 1 << 20, .still_ok = last_word, .arg = &w };
	struct atel_compact_result res;
	char path[700], tmp[800], err[1024] = "";
	unsigned char *b0, *b1;
	size_t l0 = 0, l1 = 0;
	struct stat st0, st1;

	write_small_frames(e, s, ATEL_SEG_ENC_COLUMNS);
	seg_path(path, sizeof(path), e->seg, 1);
	snprintf(tmp, sizeof(tmp), "%s.compact", path);
	b0 = slurp(path, &l0);
	assert_int_equal(stat(path, &st0), 0);
	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), -EAGAIN);
	assert_int_equal(w.calls, 1);
	assert_non_null(strstr(err, "not replaced: index cursor moved"));
	b1 = slurp(path, &l1);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(l1, l0);
	assert_memory_equal(b1, b0, l0);
	assert_int_equal(st1.st_ino, st0.st_ino);
	assert_int_equal(access(tmp, F_OK), -1);
	free(b1);
	/* removed meanwhile (the answer yes, but retention took the file): left removed */
	w.answer = true;
	w.unlink_path = path;
	assert_int_equal(atel__seg_compact(e->seg, 1, &co, &res, err, sizeof(err)), 0);
	assert_int_equal(w.calls, 2);
	assert_non_null(strstr(err, "removed meanwhile"));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access(tmp, F_OK), -1);
	assert_int_equal(count_files(e->seg), 0);
	free(b0);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

/* A crash between write and exchange leaves <name>.compact: cleanup removes it and nothing else. */
static void test_cleanup(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	char path[700], stray[720], other[720];
	unsigned char *orig, *now;
	size_t len = 0, len2 = 0;

	write_small_frames(e, s, ATEL_SEG_ENC_RECORDS);
	seg_path(path, sizeof(path), e->seg, 1);
	orig = slurp(path, &len);
	snprintf(stray, sizeof(stray), "%s.compact", path);
	spit(stray, orig, len / 2);
	snprintf(other, sizeof(other), "%s/notes.compact", e->seg);
	spit(other, (const unsigned char *)"x", 1);
	assert_int_equal(atel__seg_compact_cleanup(e->seg), 1);
	assert_int_equal(access(stray, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
	now = slurp(path, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(now, orig, len);
	assert_int_equal(atel__seg_compact_cleanup(e->seg), 0);
	unlink(other);
	free(orig);
	free(now);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

/* ---- the pin (compactor.c) ---- */

static void put_bin(const char *dir, const char *name, const char *magic, uint64_t seq, uint64_t off)
{
	unsigned char b[64] = { 0 };
	char p[800];
	uint32_t v = 1;

	memcpy(b, magic, 8);
	memcpy(b + 8, &v, 4);
	memcpy(b + 16, &seq, 8);
	memcpy(b + 24, &off, 8);
	snprintf(p, sizeof(p), "%s/state/%s", dir, name);
	spit(p, b, sizeof(b));
}

static void test_pin(void **state)
{
	struct env *e = *state;
	struct atel_compactor_opts o = { .data_dir = e->dir, .segments_dir = e->seg };
	struct atel_compact_pin pin;
	char p[800];

	snprintf(p, sizeof(p), "%s/state", e->dir);
	assert_int_equal(mkdir(p, 0700), 0);

	/* nothing enabled, nothing persisted: no pin */
	atel__compact_pin_read(&o, &pin);
	assert_true(pin.file_seq == UINT64_MAX);
	/* enabled followers that have not persisted a position pin everything */
	o.aggregates_enabled = true;
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_string_equal(pin.holder, "aggregates.ckpt");
	assert_int_equal(pin.warn[0], 0);
	put_bin(e->dir, "aggregates.ckpt", "ATELAGG1", 9, 4096);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 9);
	assert_int_equal(pin.frame_off, 4096);
	o.index_enabled = true; /* no telemetry.db */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_string_equal(pin.holder, "index cursor");
	o.index_enabled = false;
	/* a disabled exporter's files still pin; the lowest wins */
	put_bin(e->dir, "remote_write.outbox", "ATELRWO1", 4, 77);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 4);
	assert_string_equal(pin.holder, "remote_write.outbox");
	o.remote_write_enabled = true; /* the checkpoint missing: everything */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	put_bin(e->dir, "remote_write.ckpt", "ATELAGG1", 6, 0);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 4);
	/* the OTLP cursor: the lower of resume and acked */
	struct atel_log_pos resume = { 3, 100, 0 }, acked = { 2, 50, 1 };
	snprintf(p, sizeof(p), "%s/state/otlp-traces.cursor", e->dir);
	assert_int_equal(atel__otlp_cursor_save(p, &resume, &acked, NULL, 0), 0);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 2);
	assert_int_equal(pin.frame_off, 50);
	assert_string_equal(pin.holder, "otlp-traces.cursor");
	/* garbled: everything pinned, with a warning */
	spit(p, (const unsigned char *)"garbage\n", 8);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_non_null(strstr(pin.warn, "otlp-traces.cursor"));
	unlink(p);
	put_bin(e->dir, "aggregates.ckpt", "NOTAGG11", 9, 0);
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_non_null(strstr(pin.warn, "aggregates.ckpt"));
}

/* The index cursor: read from telemetry.db whether the index is enabled or not. */
static void test_pin_index(void **state)
{
	struct env *e = *state;
	struct atel_compactor_opts o = { .data_dir = e->dir, .segments_dir = e->seg };
	struct atel_compact_pin pin;
	char db_path[800];
	sqlite3 *db;

	snprintf(db_path, sizeof(db_path), "%s/telemetry.db", e->dir);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	/* a database without the table (not an index of ours): everything pinned, with a warning */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_non_null(strstr(pin.warn, "index cursor"));
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE telemetry_index_cursor(id INTEGER PRIMARY KEY, file_seq INTEGER, "
				      "frame_off INTEGER, rec_idx INTEGER, events INTEGER)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	/* no cursor row yet */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	assert_string_equal(pin.holder, "index cursor");
	assert_int_equal(pin.warn[0], 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO telemetry_index_cursor VALUES (1, 3, 99, 0, 0)", NULL, NULL, NULL),
			 SQLITE_OK);
	/* the index disabled: an existing cursor still pins (a re-enabled index resumes there) */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 3);
	assert_int_equal(pin.frame_off, 99);
	assert_string_equal(pin.holder, "index cursor");
	o.index_enabled = true;
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 3);
	sqlite3_close(db);
	unlink(db_path);
	/* enabled and missing: everything; disabled and missing: no pin */
	atel__compact_pin_read(&o, &pin);
	assert_int_equal(pin.file_seq, 0);
	o.index_enabled = false;
	atel__compact_pin_read(&o, &pin);
	assert_true(pin.file_seq == UINT64_MAX);
}

/* ---- the thread (compactor.c), in process: also run under TSan ---- */

static void test_thread(void **state)
{
	struct env *e = *state;
	struct atel_synth s[2];
	struct atel_synth *sp[2] = { &s[0], &s[1] };
	struct atel_synth_log_opts lo = { .batch = 200, .flush_each_round = true, .ring_count = 4,
					  .encoding = ATEL_SEG_ENC_COLUMNS, .rotate_bytes = 65536 };
	struct atel_compactor_opts o = { .data_dir = e->dir, .segments_dir = e->seg, .level = 3,
					 .frame_bytes = 1 << 20, .interval_s = 1 };
	struct atel_compactor *c = NULL;
	static struct atel_daemon d;
	struct digest before, after;
	char path[700], done_path[800];
	unsigned char *newest, *now;
	size_t nlen = 0, len2 = 0;
	uint64_t *seqs = NULL;
	int n;

	for (unsigned i = 0; i < 2; i++) {
		atel_synth_init(&s[i], i, 1 + i, 500 + (int32_t)i, 600 + (int32_t)i, T0 + i);
		atel_synth_begin(&s[i], "agent");
		atel_synth_agent_workload(&s[i], 21 + i, 20000, 25);
		atel_synth_end(&s[i]);
	}
	assert_int_equal(atel_synth_write_log(e->seg, INSTANCE, sp, 2, &lo), 0);
	n = atel__seg_list(e->seg, &seqs);
	assert_true(n >= 3);
	before = digest_log(e->seg);
	seg_path(path, sizeof(path), e->seg, seqs[n - 1]);
	newest = slurp(path, &nlen);

	assert_int_equal(atel__state_init(&d, e->dir, "warn"), 0);
	assert_int_equal(atel__compactor_start(&c, &d, &o), 0);
	/* every finished file, never the newest (no follower pins: all disabled) */
	for (int i = 0; i < 6000; i++) {
		if (atomic_load(&d.stats.compact_files) + atomic_load(&d.stats.compact_failures) >= (uint64_t)n - 1 &&
		    atomic_load(&d.stats.compact_pending) == 0)
			break;
		usleep(10000);
	}
	assert_int_equal(atel__compactor_stop(c, 0), 0);
	assert_int_equal(atomic_load(&d.stats.compact_failures), 0);
	assert_int_equal(atomic_load(&d.stats.compact_files), n - 1);
	assert_int_equal(atomic_load(&d.stats.compact_pending), 0);
	assert_true(atomic_load(&d.stats.compact_bytes_after) < atomic_load(&d.stats.compact_bytes_before));
	now = slurp(path, &len2);
	assert_int_equal(len2, nlen);
	assert_memory_equal(now, newest, nlen);
	after = digest_log(e->seg);
	assert_int_equal(after.n, before.n);
	assert_int_equal(after.crc, before.crc);
	/* progress persisted: the newest file but one */
	{
		size_t dl = 0;
		snprintf(done_path, sizeof(done_path), "%s/state/compact.done", e->dir);
		unsigned char *txt = slurp(done_path, &dl);
		assert_non_null(txt);
		txt[dl] = 0;
		assert_int_equal(strtoull((char *)txt, NULL, 10), seqs[n - 2]);
		free(txt);
	}
	/* progress forgotten, but the aggregates enabled without a checkpoint: everything is
	 * pinned, a pass counts every finished file pending and compacts none */
	unlink(done_path);
	o.aggregates_enabled = true;
	memset((void *)&d.stats, 0, sizeof(d.stats));
	assert_int_equal(atel__compactor_start(&c, &d, &o), 0);
	for (int i = 0; i < 6000 && atomic_load(&d.stats.compact_pending) != (uint64_t)n - 1; i++)
		usleep(10000);
	assert_int_equal(atel__compactor_stop(c, 0), 0);
	assert_int_equal(atomic_load(&d.stats.compact_pending), n - 1);
	assert_int_equal(atomic_load(&d.stats.compact_files), 0);
	assert_int_equal(access(done_path, F_OK), -1);
	atel__state_fini(&d);
	free(newest);
	free(now);
	free(seqs);
	for (unsigned i = 0; i < 2; i++)
		atel_synth_free(&s[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_compact_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_versions_left, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_word, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pin_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thread, setup, teardown),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
