/* SPDX-License-Identifier: MIT */
/*
 * bench_log.c - the segment log: raw zstd speed on realistic records (the
 * writer's level and parameters), log writer throughput into real files,
 * bytes on disk per metric sample for an agent workload, and the reader's
 * scan rate beside raw zstd decompression of the same files.
 *
 * The workload comes from the test support library (tests/common/synth.h):
 * the generator the tests use.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "bench.h"
#include "logread.h"
#include "seglog.h"
#include "synth.h"
#include "uring.h"

#define NRINGS 8
#define FRAME (256u << 10) /* the writer's default frame_bytes */
#define CPU_NOTE "thread CPU time"

/* CPU time of this thread: the machine is shared (load averages above the
 * core count are common here), and every figure below is single-threaded,
 * so "per CPU-second" is what "on one core" means. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double mbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / 1e6 / ((double)ns / 1e9) : 0;
}

static double per_s(uint64_t n, uint64_t ns)
{
	return ns ? (double)n / ((double)ns / 1e9) : 0;
}

static uint64_t dir_bytes(const char *dir, unsigned *files)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t total = 0;
	*files = 0;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[1024];
		struct stat st;
		if (!strstr(e->d_name, ".atseg"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) == 0) {
			total += (uint64_t)st.st_size;
			(*files)++;
		}
	}
	closedir(d);
	return total;
}

/* Frames the way the writer builds them: each ring's run behind a CHUNK, FRAME bytes raw. */
static unsigned char *frame_stream(struct atel_synth *s, unsigned n, size_t *len)
{
	size_t total = 0, at[NRINGS] = { 0 }, off = 0;
	unsigned char *buf;
	bool more = true;
	for (unsigned i = 0; i < n; i++)
		total += (s[i].n + s[i].n / 256 + 2) * 64;
	buf = malloc(total);
	while (more) {
		more = false;
		for (unsigned i = 0; i < n; i++) {
			size_t k = atel_synth_cut(&s[i], at[i], 4096);
			struct atel_rec_chunk c = { 0 };
			if (!k)
				continue;
			c.h.type = ATEL_LOGREC_CHUNK;
			c.h.id = s[i].ring;
			c.count = (uint32_t)k;
			c.first_pos = at[i];
			memcpy(buf + off, &c, 64);
			memcpy(buf + off + 64, &s[i].slots[at[i]], k * 64);
			off += (k + 1) * 64;
			at[i] += k;
			more = true;
		}
	}
	*len = off;
	return buf;
}

static void gen(struct atel_synth *s, unsigned n, uint64_t samples, uint64_t span_every)
{
	for (unsigned i = 0; i < n; i++) {
		atel_synth_init(&s[i], i, 1, 1000 + (int32_t)i, 2000 + (int32_t)i, 1700000000000000000ull);
		atel_synth_begin(&s[i], "agent");
		atel_synth_agent_workload(&s[i], 17 + i, samples, span_every);
	}
}

static uint64_t count_type(struct atel_synth *s, unsigned n, uint8_t type, uint64_t *records)
{
	uint64_t c = 0;
	*records = 0;
	for (unsigned i = 0; i < n; i++) {
		for (size_t k = 0; k < s[i].n; k += 1u + s[i].slots[k].h.cont) {
			(*records)++;
			if (s[i].slots[k].h.type == type)
				c++;
		}
	}
	return c;
}

/* Writes the streams through the real writer; @return ns spent. */
static uint64_t write_log(const char *dir, struct atel_synth *s, unsigned n, int level, uint64_t flush_every,
			  uint64_t batch, enum atel_seg_encoding enc)
{
	struct atel_seglog_opts o = { 0 };
	struct atel_seglog *l;
	char err[256];
	size_t at[NRINGS] = { 0 };
	bool more = true;
	uint64_t t0, appended = 0;

	o.segments_dir = dir;
	o.ring_count = NRINGS;
	o.shm_instance = 42;
	o.zstd_level = level;
	o.encoding = enc;
	o.async_io = &atel__seglog_uring; /* as ateld writes */
	if (atel__seglog_open(&l, &o, err, sizeof(err))) {
		bench_note("log: cannot open a writer in %s: %s", dir, err);
		return 0;
	}
	t0 = cpu_ns();
	while (more) {
		more = false;
		for (unsigned i = 0; i < n; i++) {
			size_t k = atel_synth_cut(&s[i], at[i], batch); /* ateld's drain batch */
			if (!k)
				continue;
			/* two pieces, as a run that wraps the ring end */
			if (atel__seglog_append(l, s[i].ring, 1, at[i], &s[i].slots[at[i]], k / 2,
						&s[i].slots[at[i] + k / 2], k - k / 2))
				return 0;
			at[i] += k;
			appended += k;
			more = true;
		}
		if (appended >= flush_every) {
			if (atel__seglog_flush(l))
				return 0;
			appended = 0;
		}
	}
	if (atel__seglog_close(l))
		return 0;
	return cpu_ns() - t0;
}

/*
 * "Compressed straight from ring memory": zstd can take a frame's pieces
 * (CHUNK records and ring runs, wherever they lie) through
 * ZSTD_compressStream2 with the frame size pledged, so that the content size
 * still goes into the frame header (what seglog.c does); the alternative is
 * to copy the pieces into one staging buffer and call ZSTD_compress2 on it
 * (what seglog.c did before). Both over the same
 * frames, cut into the pieces the writer sees (CHUNK + two halves of each
 * 4096-slot run), three interleaved rounds, best of each. The streaming call
 * copies each piece into zstd's window buffer itself, so one copy happens
 * either way; these rows say what the pieces cost.
 */
static void piece_rows(ZSTD_CCtx *cc, const unsigned char *raw, size_t rawlen)
{
	unsigned char *stage = malloc(FRAME), *out = malloc(ZSTD_compressBound(FRAME));
	size_t cap = ZSTD_compressBound(FRAME), piece = 2048 * 64;
	uint64_t best_stage = 0, best_stream = 0, t0, t;
	size_t bytes_stage = 0, bytes_stream = 0;

	for (int round = 0; round < 3 && stage && out; round++) {
		bytes_stage = bytes_stream = 0;
		t0 = cpu_ns();
		for (size_t off = 0; off < rawlen; off += FRAME) {
			size_t n = rawlen - off < FRAME ? rawlen - off : FRAME;
			for (size_t p = 0; p < n; p += piece)
				memcpy(stage + p, raw + off + p, n - p < piece ? n - p : piece);
			bytes_stage += ZSTD_compress2(cc, out, cap, stage, n);
		}
		t = cpu_ns() - t0;
		if (!best_stage || t < best_stage)
			best_stage = t;
		t0 = cpu_ns();
		for (size_t off = 0; off < rawlen; off += FRAME) {
			size_t n = rawlen - off < FRAME ? rawlen - off : FRAME;
			ZSTD_outBuffer ob = { out, cap, 0 };
			ZSTD_CCtx_reset(cc, ZSTD_reset_session_only);
			ZSTD_CCtx_setPledgedSrcSize(cc, n);
			for (size_t p = 0; p < n; p += piece) {
				ZSTD_inBuffer ib = { raw + off + p, n - p < piece ? n - p : piece, 0 };
				ZSTD_EndDirective e = p + piece >= n ? ZSTD_e_end : ZSTD_e_continue;
				size_t r;
				do
					r = ZSTD_compressStream2(cc, &ob, &ib, e);
				while (!ZSTD_isError(r) && (ib.pos < ib.size || (e == ZSTD_e_end && r)));
			}
			bytes_stream += ob.pos;
		}
		t = cpu_ns() - t0;
		if (!best_stream || t < best_stream)
			best_stream = t;
	}
	bench_row("log", "compress: staging copy + ZSTD_compress2", per_s(rawlen / 64, best_stage), "records/s", -1, NULL,
		  -1, "memcpy of 128 KiB pieces into one 256 KiB staging buffer, then one-shot compression; "
		  "level 3, best of 3, " CPU_NOTE);
	bench_row("log", "compress: straight from ring pieces (stream)", per_s(rawlen / 64, best_stream), "records/s",
		  per_s(rawlen / 64, best_stage), NULL, -1,
		  bytes_stream == bytes_stage ? "what seglog.c does: ZSTD_compressStream2 on the same pieces, pledged size; "
						"same output bytes; baseline: the staging copy"
					      : "what seglog.c does: ZSTD_compressStream2 on the same pieces, pledged size "
						"(output size differs!); baseline: the staging copy");
	free(stage);
	free(out);
}

/*
 * Raw decompression of the files in dir, then the reader over them (baseline:
 * the former), both as records the reader returns per CPU-second. Three
 * rounds of one pass each, best of each: on this shared machine one pass of
 * either can land in a slow stretch (rates move by 2x over seconds), and the
 * ratio of two single passes taken apart then says more about the machine
 * than the reader.
 */
static void reader_rows(const char *dir, const char *tag, ZSTD_DCtx *dc, unsigned char *back)
{
	uint64_t *seqs = NULL, raw_best = 0, rd_best = 0, nread = 0, t0, dt;
	int nf = atel__seg_list(dir, &seqs);
	unsigned char **fbuf = calloc(nf > 0 ? (size_t)nf : 1, sizeof(*fbuf));
	size_t *flen = calloc(nf > 0 ? (size_t)nf : 1, sizeof(*flen));
	char name[128];
	double raw_rate;

	for (int i = 0; i < nf && fbuf && flen; i++) {
		char p[700];
		FILE *f;
		long len;
		snprintf(p, sizeof(p), "%s/%016llx.atseg", dir, (unsigned long long)seqs[i]);
		f = fopen(p, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		fseek(f, 0, SEEK_SET);
		fbuf[i] = len > 0 ? malloc((size_t)len) : NULL;
		if (fbuf[i] && fread(fbuf[i], 1, (size_t)len, f) == (size_t)len)
			flen[i] = (size_t)len;
		fclose(f);
	}
	for (int round = 0; round < 3 && fbuf && flen; round++) {
		struct atel_log_reader *r;
		struct atel_log_reader_opts ro = { .segments_dir = dir };
		struct atel_event ev;
		uint64_t t = 0, n = 0;

		for (int i = 0; i < nf; i++) {
			size_t at = 0, len = flen[i];
			const unsigned char *buf = fbuf[i];
			t0 = cpu_ns();
			while (at < len) {
				size_t fs = ZSTD_findFrameCompressedSize(buf + at, len - at);
				unsigned long long cs = ZSTD_getFrameContentSize(buf + at, len - at);
				if (ZSTD_isError(fs))
					break;
				if (cs != ZSTD_CONTENTSIZE_UNKNOWN && cs != ZSTD_CONTENTSIZE_ERROR && cs <= FRAME) {
					size_t rr = ZSTD_decompressDCtx(dc, back, FRAME, buf + at, fs);
					if (!ZSTD_isError(rr))
						bench_keep(back[0]);
				}
				at += fs;
			}
			t += cpu_ns() - t0;
		}
		if (!raw_best || t < raw_best)
			raw_best = t;

		if (atel__log_open(&r, &ro) != 0)
			break;
		t0 = cpu_ns();
		while (atel__log_next(r, &ev, NULL) == 1)
			n++;
		dt = cpu_ns() - t0;
		bench_keep(n);
		{
			struct atel_log_read_stats st;
			atel__log_stats(r, &st);
			nread = st.records;
		}
		atel__log_close(r);
		if (!rd_best || dt < rd_best)
			rd_best = dt;
	}
	for (int i = 0; i < nf && fbuf; i++)
		free(fbuf[i]);
	free(fbuf);
	free(flen);
	free(seqs);
	raw_rate = per_s(nread, raw_best);
	snprintf(name, sizeof(name), "zstd decompress of the same files%s", tag);
	bench_row("log", name, raw_rate, "records/s", -1, NULL, -1,
		  "ZSTD_decompressDCtx of every data frame (no decoding), files already in memory, records the reader "
		  "finds in them, best of 3, " CPU_NOTE);
	if (rd_best) {
		double rate = per_s(nread, rd_best);
		snprintf(name, sizeof(name), "reader scan (decode every record)%s", tag);
		bench_row("log", name, rate, "records/s", raw_rate, ">= 20M records/s", rate >= 20e6,
			  "atel__log_next over the files just written (pread, decompress, COLUMNS decode if any, decode), "
			  "one core, best of 3 (rounds interleaved with the baseline's), " CPU_NOTE);
	}
}

static int run_log(const struct bench_opts *opt)
{
	struct atel_synth s[NRINGS];
	uint64_t samples = opt->quick ? 60000 : 400000, records, nsamples, t0, dt;
	unsigned char *raw, *comp, *back;
	size_t rawlen, cap, clen = 0;
	char dir[512], dir2[512], method[256];
	unsigned files;
	double compress_rate = -1;
	int level = 3;
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_DCtx *dc = ZSTD_createDCtx();

	/* 1. realistic records with spans: raw zstd both ways, same framing and level as the writer */
	gen(s, NRINGS, samples, 50);
	nsamples = count_type(s, NRINGS, ATEL_REC_SAMPLE, &records);
	raw = frame_stream(s, NRINGS, &rawlen);
	cap = ZSTD_compressBound(FRAME);
	comp = malloc(rawlen / 2 + cap * 2);
	back = malloc(FRAME);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	t0 = cpu_ns();
	for (size_t off = 0; off < rawlen; off += FRAME) {
		size_t n = rawlen - off < FRAME ? rawlen - off : FRAME;
		clen += ZSTD_compress2(cc, comp + clen, cap, raw + off, n);
	}
	dt = cpu_ns() - t0;
	snprintf(method, sizeof(method), "ZSTD_compress2 level %d + checksum, 256 KiB frames, %llu records of %d rings, " CPU_NOTE,
		 level, (unsigned long long)records, NRINGS);
	bench_row("log", "zstd compress (raw)", mbps(rawlen, dt), "MB/s", -1, NULL, -1, method);
	compress_rate = per_s(rawlen / 64, dt);
	bench_row("log", "zstd compress (raw) records", compress_rate, "records/s", -1, NULL, -1, method);
	{
		size_t at = 0;
		t0 = cpu_ns();
		while (at < clen) {
			size_t fs = ZSTD_findFrameCompressedSize(comp + at, clen - at);
			size_t r = ZSTD_decompressDCtx(dc, back, FRAME, comp + at, fs);
			if (ZSTD_isError(r))
				break;
			bench_keep(back[0]);
			at += fs;
		}
		dt = cpu_ns() - t0;
	}
	bench_row("log", "zstd decompress (raw)", mbps(rawlen, dt), "MB/s", -1, NULL, -1, "ZSTD_decompressDCtx per frame, same frames, " CPU_NOTE);
	bench_row("log", "compression ratio (with spans)", (double)rawlen / (double)clen, "x", -1, NULL, -1, method);
	piece_rows(cc, raw, rawlen);

	/* 2. the writer into real files */
	if (atel_synth_tmpdir(dir, sizeof(dir), "bench-log")) {
		bench_note("log: no temporary directory");
		return -EIO;
	}
	dt = write_log(dir, s, NRINGS, level, 16384, 4096, ATEL_SEG_ENC_RECORDS);
	if (!dt) {
		atel_synth_rmtree(dir);
		return -EIO;
	}
	bench_row("log", "log writer", per_s(records, dt), "records/s", compress_rate, NULL, -1,
		  "atel__seglog_append of 4096-slot runs in two pieces, flush per 16384 slots, close; real files in $TMPDIR; thread CPU time (io_uring work in the kernel not included)");
	if (atel_synth_tmpdir(dir2, sizeof(dir2), "bench-log")) {
		atel_synth_rmtree(dir);
		return -EIO;
	}
	dt = write_log(dir2, s, NRINGS, level, 16384, 4096, ATEL_SEG_ENC_COLUMNS);
	if (!dt) {
		atel_synth_rmtree(dir);
		atel_synth_rmtree(dir2);
		return -EIO;
	}
	bench_row("log", "log writer, columns encoding", per_s(records, dt), "records/s", compress_rate, NULL, -1,
		  "as above with storage.encoding \"columns\" (COLUMNS transform of each frame, then ZSTD_compress2)");

	/* 3. the reader over both kinds of files, against raw decompression of the same files */
	reader_rows(dir, "", dc, back);
	reader_rows(dir2, ", columns files", dc, back);
	atel_synth_rmtree(dir2);
	atel_synth_rmtree(dir);
	for (unsigned i = 0; i < NRINGS; i++)
		atel_synth_free(&s[i]);
	free(raw);
	free(comp);

	/* 4. bytes on disk per metric sample: metrics only, through the writer */
	gen(s, NRINGS, samples, 0);
	nsamples = count_type(s, NRINGS, ATEL_REC_SAMPLE, &records);
	{
		static const int levels[] = { 1, 3, 9 };
		static const char *const enc_name[] = { "records", "columns" };
		for (int enc = 0; enc < 2; enc++) {
			for (unsigned li = 0; li < sizeof(levels) / sizeof(levels[0]); li++) {
				uint64_t bytes;
				double bps;
				char name[128];
				if (opt->quick && levels[li] != 3)
					continue;
				if (atel_synth_tmpdir(dir, sizeof(dir), "bench-log"))
					break;
				dt = write_log(dir, s, NRINGS, levels[li], 16384, 4096,
					       enc ? ATEL_SEG_ENC_COLUMNS : ATEL_SEG_ENC_RECORDS);
				bytes = dir_bytes(dir, &files);
				bps = (double)bytes / (double)nsamples;
				snprintf(method, sizeof(method),
					 "segment bytes / %llu samples (%d rings, reference catalog, ns timestamps, ms durations), "
					 "storage.encoding %s, zstd level %d, %.1fM samples/s",
					 (unsigned long long)nsamples, NRINGS, enc_name[enc], levels[li], per_s(nsamples, dt) / 1e6);
				if (levels[li] == 3)
					snprintf(name, sizeof(name), "bytes on disk per metric sample, %s%s", enc_name[enc],
						 enc ? "" : " (default)");
				else
					snprintf(name, sizeof(name), "bytes per sample, %s, level %d", enc_name[enc], levels[li]);
				bench_row("log", name, bps, "bytes", 1.4, levels[li] == 3 ? "<= 4 bytes (Prometheus TSDB ~1.4)" : NULL,
					  levels[li] == 3 ? bps <= 4.0 : -1, method);
				atel_synth_rmtree(dir);
			}
		}
	}
	/* small frames: a flush after every few records (a drain pass at low load) */
	if (atel_synth_tmpdir(dir, sizeof(dir), "bench-log") == 0) {
		size_t keep[NRINGS];
		uint64_t bytes, ns = 0, r2;
		for (unsigned i = 0; i < NRINGS; i++) { /* a shorter run: 20000 slots per ring */
			keep[i] = s[i].n;
			s[i].n = atel_synth_cut(&s[i], 0, 20000);
		}
		ns = count_type(s, NRINGS, ATEL_REC_SAMPLE, &r2);
		write_log(dir, s, NRINGS, 3, 100, 16, ATEL_SEG_ENC_RECORDS);
		bytes = dir_bytes(dir, &files);
		bench_row("log", "bytes per sample, flush every ~100 records", (double)bytes / (double)ns, "bytes", -1, NULL, -1,
			  "as above, but 16-slot runs and a flush per ~100 slots: one small frame per drain pass "
			  "(why ateld should flush by size/ring fill/interval, not every pass)");
		for (unsigned i = 0; i < NRINGS; i++)
			s[i].n = keep[i];
		atel_synth_rmtree(dir);
	}
	/* where the bytes go: the same samples with constant timestamps, then with constant values */
	for (int variant = 0; variant < 2; variant++) {
		size_t len, out = 0;
		unsigned char *fr, *cbuf;
		for (unsigned i = 0; i < NRINGS; i++)
			for (size_t k = 0; k < s[i].n; k += 1u + s[i].slots[k].h.cont)
				if (s[i].slots[k].h.type == ATEL_REC_SAMPLE) {
					if (variant == 0)
						s[i].slots[k].h.ts_ns = 1700000000000000000ull;
					else
						s[i].slots[k].sample.value = 1.0;
				}
		fr = frame_stream(s, NRINGS, &len);
		cbuf = malloc(cap);
		for (size_t off = 0; off < len; off += FRAME) {
			size_t n = len - off < FRAME ? len - off : FRAME;
			out += ZSTD_compress2(cc, cbuf, cap, fr + off, n);
		}
		bench_row("log", variant == 0 ? "bytes/sample, timestamps made constant" : "bytes/sample, and values made constant",
			  (double)out / (double)nsamples, "bytes", -1, NULL, -1,
			  "analysis: same samples and framing, raw zstd level 3: the ns timestamps and full-precision "
			  "doubles are what LZ+entropy coding cannot shrink (no delta coding)");
		free(fr);
		free(cbuf);
	}
	for (unsigned i = 0; i < NRINGS; i++)
		atel_synth_free(&s[i]);
	free(back);
	ZSTD_freeCCtx(cc);
	ZSTD_freeDCtx(dc);
	return 0;
}

BENCH_SECTION("log", 25, "segment log: zstd, writer, bytes per sample, reader scan", run_log)
