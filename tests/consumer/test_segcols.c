/* SPDX-License-Identifier: MIT */
/*
 * COLUMNS codec (consumer/log/segcols.c): lossless round trips of agent
 * workloads, mixed and hostile slot contents and timestamp patterns that
 * stress the delta-of-delta varints; the encoded form is smaller than the
 * records after zstd; and every kind of damage to a block is refused with
 * its own message, never read past the block or written past the output.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include <cmocka.h>

#include "atel_test.h"
#include "segformat.h"
#include "synth.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* encode, decode, compare; @return encoded length */
static size_t roundtrip(const uint8_t *content, size_t nslots)
{
	uint8_t *enc = malloc(atel__cols_bound(nslots));
	uint8_t *dec = malloc(nslots * 64 + 64);
	const char *why = NULL;
	size_t n = atel__cols_encode(content, nslots, enc);
	int64_t d;

	assert_true(n >= 64 && n % 64 == 0 && n <= atel__cols_bound(nslots));
	assert_int_equal(enc[0], ATEL_LOGREC_COLUMNS);
	d = atel__cols_decode(enc, n, dec, nslots * 64 + 64, &why);
	if (d < 0)
		fail_msg("decode refused its own encoding: %s", why);
	assert_int_equal(d, (int64_t)(nslots * 64));
	assert_memory_equal(dec, content, nslots * 64);
	/* one byte too little room: ENOSPC, never an overflow */
	assert_int_equal(atel__cols_decode(enc, n, dec, nslots * 64 - 1, &why), -ENOSPC);
	free(enc);
	free(dec);
	return n;
}

static void test_agent_workload(void **state)
{
	struct atel_synth s;
	(void)state;
	atel_synth_init(&s, 0, 1, 10, 11, 1700000000000000000ull);
	atel_synth_begin(&s, "agent");
	atel_synth_agent_workload(&s, 3, 50000, 40); /* spans too: raw slots between samples */
	for (size_t off = 0; off < s.n; off += 4096) {
		size_t k = s.n - off < 4096 ? s.n - off : 4096;
		roundtrip((const uint8_t *)&s.slots[off], k);
	}
	roundtrip((const uint8_t *)s.slots, s.n);
	atel_synth_free(&s);
}

/* The writer's form: the content as pieces lying anywhere encodes exactly like the contiguous content. */
static void test_pieces(void **state)
{
	struct atel_synth s;
	size_t n, cuts[] = { 1, 2, 7, 64, 500, 1000, 3000 };
	uint8_t *a, *b;
	(void)state;
	atel_synth_init(&s, 0, 1, 10, 11, 1700000000000000000ull);
	atel_synth_begin(&s, "agent");
	atel_synth_agent_workload(&s, 8, 3000, 25);
	n = s.n < 4000 ? s.n : 4000;
	a = malloc(atel__cols_bound(n));
	b = malloc(atel__cols_bound(n));
	for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		struct iovec v[8192];
		size_t nv = 0, la, lb;
		for (size_t at = 0; at < n; at += cuts[c]) {
			/* each piece in its own allocation, as ring runs and CHUNK records are */
			size_t k = n - at < cuts[c] ? n - at : cuts[c];
			v[nv].iov_base = malloc(k * 64);
			memcpy(v[nv].iov_base, &s.slots[at], k * 64);
			v[nv++].iov_len = k * 64;
		}
		la = atel__cols_encode(s.slots, n, a);
		lb = atel__cols_encode_iov(v, nv, n, b);
		assert_int_equal(la, lb);
		assert_memory_equal(a, b, la);
		for (size_t i = 0; i < nv; i++)
			free(v[i].iov_base);
	}
	free(a);
	free(b);
	atel_synth_free(&s);
}

/* Samples with every kind of timestamp step, and slots that are almost compact. */
static void test_edge_contents(void **state)
{
	enum { N = 3001 }; /* not a multiple of 8: the last bitmap byte is partial */
	uint8_t *c = calloc(N, 64);
	uint64_t t = 0;
	(void)state;
	for (size_t i = 0; i < N; i++) {
		uint8_t *s = c + i * 64;
		uint64_t r = next_rand(), v = next_rand();
		switch (r % 8) {
		case 0: t = next_rand(); break;                  /* any value: 10-byte varints */
		case 1: t -= r >> 40; break;                     /* backwards */
		case 2: t += UINT64_MAX / 2 + (r >> 50); break;  /* wraps around 2^64 */
		default: t += r % 5000; break;
		}
		s[0] = ATEL_REC_SAMPLE;
		s[1] = (uint8_t)(r >> 8);
		memcpy(s + 4, &r, 4);
		memcpy(s + 8, &t, 8);
		memcpy(s + 16, &v, 8);
		switch ((r >> 16) % 11) {
		case 0: s[24 + (r >> 24) % 40] = 1; break;  /* a nonzero reserved byte: raw */
		case 1: s[2] = 1; break;                     /* cont != 0: raw */
		case 2: s[3] = 0xff; break;                  /* reserved header byte: raw */
		case 3: s[0] = (uint8_t)(r >> 32); break;    /* any type */
		case 4: memset(s, (int)(r & 0xff), 64); break;
		default: break;                               /* compact */
		}
	}
	roundtrip(c, N);
	roundtrip(c, 1);
	roundtrip(c, 8);
	roundtrip(c, 9);
	/* all compact / all raw */
	for (size_t i = 0; i < N; i++) {
		memset(c + i * 64 + 24, 0, 40);
		c[i * 64] = ATEL_REC_SAMPLE;
		c[i * 64 + 2] = c[i * 64 + 3] = 0;
	}
	roundtrip(c, N);
	for (size_t i = 0; i < N; i++)
		c[i * 64] = ATEL_REC_SPAN_START;
	roundtrip(c, N);
	free(c);
}

/* The point of the encoding: the agent workload's samples get much smaller after zstd. */
static void test_smaller_after_zstd(void **state)
{
	struct atel_synth s;
	size_t raw = 0, cols = 0, cap = ZSTD_compressBound(4096 * 64 + 4096);
	uint8_t *enc = malloc(atel__cols_bound(4096)), *z = malloc(cap);
	uint64_t samples = 0;
	(void)state;
	atel_synth_init(&s, 0, 1, 10, 11, 1700000000000000000ull);
	atel_synth_begin(&s, "agent");
	atel_synth_agent_workload(&s, 5, 100000, 0);
	for (size_t i = 0; i < s.n; i++)
		samples += s.slots[i].h.type == ATEL_REC_SAMPLE;
	for (size_t off = 0; off < s.n; off += 4096) {
		size_t k = s.n - off < 4096 ? s.n - off : 4096;
		size_t n = atel__cols_encode(&s.slots[off], k, enc);
		raw += ZSTD_compress(z, cap, &s.slots[off], k * 64, 3);
		cols += ZSTD_compress(z, cap, enc, n, 3);
	}
	print_message("bytes per sample at zstd 3: records %.2f, columns %.2f\n", (double)raw / (double)samples,
		      (double)cols / (double)samples);
	assert_true((double)cols / (double)samples <= 4.0);
	assert_true(cols * 3 < raw * 2);
	free(enc);
	free(z);
	atel_synth_free(&s);
}

/* Every kind of damage gets its own refusal. */
/* A span record: type, cont, name id, ts, trace id (trace), span id (span). */
static void put_span(uint8_t *c, uint8_t type, uint8_t cont, uint64_t ts, uint64_t trace, uint64_t span)
{
	memset(c, 0, 64);
	c[0] = type;
	c[2] = cont;
	c[4] = 7;
	memcpy(c + 8, &ts, 8);
	memcpy(c + 16, &trace, 8);
	memcpy(c + 24, &trace, 8);
	memcpy(c + 32, &span, 8);
	c[40] = 0xab;
}

static size_t xref_bits(const uint8_t *enc, size_t nslots)
{
	size_t kb = (nslots + 7) / 8, ones = 0;

	for (size_t i = 0; i < kb; i++)
		ones += (size_t)__builtin_popcount(enc[64 + kb + i]);
	return ones;
}

/*
 * Version 2 span references (docs/segment-format.md 3.1): END, ATTR, EVENT
 * and ERROR records of a span started earlier in the block store a reference
 * instead of their ids; continuation slots that look like span records,
 * records whose ids differ from the referenced record's, and STARTs are never
 * referenced; everything round-trips, and the block is smaller after zstd.
 */
static void test_span_refs(void **state)
{
	enum { N = 4000 };
	uint8_t *c = calloc(N, 64), *enc = malloc(atel__cols_bound(N));
	uint8_t *zr = malloc(ZSTD_compressBound(N * 64)), *ze = malloc(ZSTD_compressBound(N * 64));
	uint64_t ts = 1700000000000000000ull;
	size_t i = 0, n, starts = 0, refs_expected = 0, zn_raw, zn_enc;
	(void)state;
	while (i + 8 <= N) {
		uint64_t trace = next_rand(), span = next_rand() | 1;

		put_span(c + i++ * 64, ATEL_REC_SPAN_START, 0, ts += 1000 + next_rand() % 5000, trace, span);
		starts++;
		/* an attribute (a reference to the START) with one continuation slot that looks
		 * like a span END of the same span: it is string bytes, never a reference */
		put_span(c + i++ * 64, ATEL_REC_SPAN_ATTR, 1, ts += 300, trace, span);
		put_span(c + i++ * 64, ATEL_REC_SPAN_END, 0, ts, trace, span);
		refs_expected++;
		/* a sample between (compact) */
		c[i * 64] = ATEL_REC_SAMPLE;
		memcpy(c + i++ * 64 + 8, &ts, 8);
		/* same span id, other trace id: not referenced (and it is now the last seen) */
		put_span(c + i++ * 64, ATEL_REC_SPAN_EVENT, 0, ts += 50, trace ^ 1, span);
		/* so the error is not referenced either; the end refers to the error */
		put_span(c + i++ * 64, ATEL_REC_SPAN_ERROR, 0, ts += 70, trace, span);
		put_span(c + i++ * 64, ATEL_REC_SPAN_END, 0, ts += 2000, trace, span);
		refs_expected++;
	}
	n = roundtrip(c, i);
	n = atel__cols_encode(c, i, enc);
	assert_int_equal(enc[1], 2);
	assert_int_equal(xref_bits(enc, i), refs_expected);
	zn_raw = ZSTD_compress(zr, ZSTD_compressBound(N * 64), c, i * 64, 6);
	zn_enc = ZSTD_compress(ze, ZSTD_compressBound(N * 64), enc, n, 6);
	print_message("spans test content: %zu B zstd, %zu B columns+zstd (%zu spans, %zu references)\n", zn_raw, zn_enc,
	       starts, refs_expected);
	assert_true(zn_enc < zn_raw);
	/* references survive being cut into pieces anywhere */
	{
		struct iovec v[3] = { { c, 64 * 5 }, { c + 64 * 5, 64 * 1000 }, { c + 64 * 1005, (i - 1005) * 64 } };
		uint8_t *enc2 = malloc(atel__cols_bound(i));
		size_t n2 = atel__cols_encode_iov(v, 3, i, enc2);
		assert_int_equal(n2, n);
		assert_memory_equal(enc2, enc, n);
		free(enc2);
	}
	free(c);
	free(enc);
	free(zr);
	free(ze);
}

/* Damaged span references are refused, each with its reason. */
static void test_span_ref_refusals(void **state)
{
	enum { N = 16 };
	uint8_t c[N * 64], enc[8192], bad[8192], out[N * 64];
	const char *why = NULL;
	size_t n, kb = (N + 7) / 8, raw0;
	struct atel_seg_columns h;
	(void)state;
	memset(c, 0, sizeof(c));
	for (size_t i = 0; i < N; i += 2) {
		put_span(c + i * 64, ATEL_REC_SPAN_START, 0, 1000 * i, i, i + 1);
		put_span(c + (i + 1) * 64, ATEL_REC_SPAN_END, 0, 1000 * i + 5, i, i + 1);
	}
	n = atel__cols_encode(c, N, enc);
	memcpy(&h, enc, sizeof(h));
	assert_int_equal(h.ncompact, 0);
	assert_int_equal(xref_bits(enc, N), N / 2);
	raw0 = 64 + 2 * kb; /* the raw slots: no compact ones */
	{
		uint32_t ref;
		memcpy(&ref, enc + raw0 + 64 + 16, 4);
		assert_int_equal(ref, 1); /* slot 1 refers to slot 0 */
		assert_int_equal(enc[raw0 + 64 + 8], 5); /* ts as the difference */
	}
#define REFUSE(expect_why)                                                                      \
	do {                                                                                    \
		why = NULL;                                                                     \
		assert_int_equal(atel__cols_decode(bad, n, out, sizeof(out), &why), -EBADMSG);  \
		assert_non_null(why);                                                           \
		assert_non_null(strstr(why, (expect_why)));                                     \
	} while (0)
	memcpy(bad, enc, n);
	bad[64 + kb] |= 0x01; /* slot 0, a START, marked */
	REFUSE("not a span record, or out of range");
	memcpy(bad, enc, n);
	memcpy(bad + raw0 + 64 + 16, &(uint32_t){ 2 }, 4); /* slot 1 -> slot -1 */
	REFUSE("out of range");
	memcpy(bad, enc, n);
	memcpy(bad + raw0 + 3 * 64 + 16, &(uint32_t){ 0 }, 4);
	REFUSE("out of range");
	memcpy(bad, enc, n);
	bad[raw0 + 64 + 30] = 1;
	REFUSE("id bytes not zero");
	memcpy(bad, enc, n);
	bad[raw0] = ATEL_REC_STRDEF; /* the target is no span record */
	REFUSE("points at a slot that is not a span record");
	memcpy(bad, enc, n);
	bad[raw0 + 64 + 0] = ATEL_REC_SAMPLE; /* a marked slot that is not a span record */
	REFUSE("not a span record");
#undef REFUSE
	/* and the intact block decodes to the content */
	assert_int_equal(atel__cols_decode(enc, n, out, sizeof(out), &why), N * 64);
	assert_memory_equal(out, c, sizeof(c));
}

static void test_refusals(void **state)
{
	enum { N = 100 };
	uint8_t c[N * 64], enc[8192], bad[8192], out[N * 64];
	const char *why = NULL;
	size_t n;
	struct atel_seg_columns h;
	(void)state;
	memset(c, 0, sizeof(c));
	for (size_t i = 0; i < N; i++) {
		uint64_t t = 1000 * i + (i % 3);
		c[i * 64] = i % 10 ? ATEL_REC_SAMPLE : ATEL_REC_SPAN_END;
		memcpy(c + i * 64 + 8, &t, 8);
	}
	n = atel__cols_encode(c, N, enc);
	memcpy(&h, enc, sizeof(h));
	assert_int_equal(h.nslots, N);
	assert_int_equal(h.ncompact, 90);

#define REFUSE(len, expect_why)                                                                 \
	do {                                                                                    \
		why = NULL;                                                                     \
		assert_int_equal(atel__cols_decode(bad, (len), out, sizeof(out), &why), -EBADMSG); \
		assert_non_null(why);                                                           \
		assert_non_null(strstr(why, (expect_why)));                                     \
	} while (0)

	memcpy(bad, enc, n);
	REFUSE(n - 64, "does not match");    /* truncated */
	REFUSE(n - 1, "multiple of 64");
	REFUSE(32, "multiple of 64");
	bad[0] = ATEL_LOGREC_CHUNK;
	REFUSE(n, "not a COLUMNS block");
	memcpy(bad, enc, n);
	bad[1] = 3;
	REFUSE(n, "unknown version");
	memcpy(bad, enc, n);
	bad[40] = 1;
	REFUSE(n, "reserved");
	memcpy(bad, enc, n);
	h.ncompact = N + 1;
	memcpy(bad, &h, sizeof(h));
	REFUSE(n, "ncompact exceeds");
	memcpy(bad, enc, n);
	h.ncompact = 89;
	memcpy(bad, &h, sizeof(h));
	REFUSE(n, ""); /* sizes no longer add up, or (absorbed by padding) the bitmap disagrees */
	/* bitmap disagreeing with ncompact, sizes intact */
	memcpy(bad, enc, n);
	bad[64] ^= 0x01; /* slot 0 is raw; claim compact */
	REFUSE(n, "bitmap");
	memcpy(bad, enc, n);
	bad[64 + (N - 1) / 8] |= 0x80; /* a bit past nslots */
	REFUSE(n, "bitmap");
	/* ts column: a varint running off the end, or a byte left over */
	memcpy(&h, enc, sizeof(h));
	{
		size_t ts_end = n - 1;
		while (enc[ts_end] == 0 && ts_end > 64)
			ts_end--; /* last byte of the ts column (varints end in a byte < 0x80; padding is 0) */
		memcpy(bad, enc, n);
		bad[ts_end] |= 0x80;
		REFUSE(n, "ts column ends");
	}
	/* padding must be zero */
	{
		size_t need = 64 + 2 * ((N + 7) / 8) + 13 * 90 + 10 * 64 + h.ts_bytes;
		assert_true(need < n); /* this content does get padding */
		memcpy(bad, enc, n);
		bad[n - 1] = 1;
		REFUSE(n, "padding");
	}
	/* a varint longer than 64 bits */
	{
		uint8_t one[64] = { ATEL_REC_SAMPLE };
		uint8_t e1[256];
		size_t m = atel__cols_encode(one, 1, e1);
		struct atel_seg_columns h1;
		memcpy(&h1, e1, sizeof(h1));
		assert_int_equal(h1.ts_bytes, 1);
		/* rebuild, as a version 1 block (no span reference bitmap), with an
		 * 11-byte varint: 10 x 0xff then 0x01 */
		(void)m;
		memset(bad, 0, 128);
		h1.version = 1;
		h1.ts_bytes = 11;
		bad[64] = 1;                       /* kind: slot 0 compact */
		bad[65] = e1[66];                  /* flags */
		memcpy(bad, &h1, sizeof(h1));
		memset(bad + 64 + 1 + 1 + 4 + 8, 0xff, 10);
		bad[64 + 1 + 1 + 4 + 8 + 10] = 0x01;
		REFUSE(128, "overflows 64 bits");
		/* the same block with a 1-byte varint decodes: version 1 is still read */
		memset(bad + 64 + 1 + 1 + 4 + 8, 0, 11);
		h1.ts_bytes = 1;
		memcpy(bad, &h1, sizeof(h1));
		bad[64 + 1 + 1 + 4 + 8] = 0x02; /* zigzag(1): ts 1 */
		why = NULL;
		assert_int_equal(atel__cols_decode(bad, 128, out, sizeof(out), &why), 64);
		assert_int_equal(out[0], ATEL_REC_SAMPLE);
		assert_int_equal(out[8], 1);
	}
	/* a decoded size above the reader's cap is ENOSPC through decode, EBADMSG through seg_records */
	memcpy(&h, enc, sizeof(h));
	h.nslots = (ATEL_SEG_FRAME_MAX / 64) + 1;
	memcpy(bad, &h, sizeof(h));
	{
		uint8_t *dec = NULL;
		size_t cap = 0;
		const uint8_t *rec;
		assert_int_equal(atel__seg_records(bad, n, &dec, &cap, &rec, &why), -EBADMSG);
		assert_non_null(strstr(why, "64 MiB"));
		/* a plain frame passes through untouched */
		assert_int_equal(atel__seg_records(c, sizeof(c), &dec, &cap, &rec, &why), N);
		assert_ptr_equal(rec, c);
		/* a COLUMNS frame is decoded */
		assert_int_equal(atel__seg_records(enc, n, &dec, &cap, &rec, &why), N);
		assert_memory_equal(rec, c, sizeof(c));
		free(dec);
	}
#undef REFUSE
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_workload),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_edge_contents),
		cmocka_unit_test(test_span_refs),
		cmocka_unit_test(test_span_ref_refusals),
		cmocka_unit_test(test_smaller_after_zstd),
		cmocka_unit_test(test_refusals),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
