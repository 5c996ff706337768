/* SPDX-License-Identifier: MIT */
/*
 * segcols.c - the COLUMNS encoding of a data frame's content
 * (docs/segment-format.md section 3.1, layout in segformat.h).
 *
 * Why: zstd is an LZ coder with order-0 entropy coding. On raw 64-byte
 * sample records it cannot exploit that consecutive nanosecond timestamps
 * differ by small, regular amounts, so the low timestamp bytes cost about a
 * byte each per sample (bench_log: 7.1 bytes per sample at level 3). Split
 * into columns with the timestamps delta-of-delta coded, the same samples take
 * about 3 (Prometheus' TSDB does the same with Gorilla coding). The transform
 * is lossless and applies to the whole decompressed content, so everything
 * after decoding (chunk walking, validation, exactly-once positions) is the
 * plain format unchanged. Hand-written because no packaged library does this
 * record-specific transform; it is two linear passes.
 *
 * atel__seg_frame_records() below is how every reader (log reader,
 * recovery, replay's frame scan) turns a data frame into records, so that
 * the encoding is known in one place.
 *
 * Values stay verbatim: agent values repeat (counter increments, a small set
 * of millisecond durations), and zstd finds those repeats in an 8-byte value
 * column; XOR against the series' previous value was measured to lose
 * (3.7 against 3.0 bytes per sample).
 *
 * Version 2 adds span references: a SPAN_END, SPAN_ATTR, SPAN_EVENT or
 * SPAN_ERROR whose trace and span ids equal those of an earlier span record
 * of the block stores, instead of the 24 id bytes, the slot distance to that
 * record, and its timestamp as the difference to that record's. zstd finds
 * the repeated ids by itself, but each match and the timestamp's low bytes
 * still cost bytes: on the 10x `atel load` workload the spans side took 47.2
 * bytes per span verbatim and 40.0 with references (zstd level 6 on 125 KB
 * frames of `atel replay --emit raw` output; the span fields as columns
 * instead of rows lost: 48.2). Records are found by walking the
 * content (a slot starts a record unless it is one of the `cont`
 * continuation slots, byte 2, of the record before), which the decoder
 * repeats on what it has decoded, so any content round-trips.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "segformat.h"

#define COLS_HDR 64u

/* A slot the compact form reproduces exactly. */
static inline bool compact(const uint8_t *s)
{
	uint64_t z[5];
	if (s[0] != ATEL_REC_SAMPLE || s[2] || s[3])
		return false;
	memcpy(z, s + 24, sizeof(z));
	return (z[0] | z[1] | z[2] | z[3] | z[4]) == 0;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Slot i of the content given as pieces (each a whole number of slots), walked in order. */
struct walk {
	const struct iovec *v;
	size_t nv, k;              /* piece k */
	const uint8_t *p, *end;    /* within piece k */
};

static inline const uint8_t *walk_next(struct walk *w)
{
	const uint8_t *s;
	while (w->p == w->end) {
		if (++w->k >= w->nv)
			return NULL;
		w->p = w->v[w->k].iov_base;
		w->end = w->p + w->v[w->k].iov_len;
	}
	s = w->p;
	w->p += ATEL_RECORD_SIZE;
	return s;
}

static inline void walk_init(struct walk *w, const struct iovec *v, size_t nv)
{
	w->v = v;
	w->nv = nv;
	w->k = 0;
	w->p = nv ? v[0].iov_base : NULL;
	w->end = nv ? w->p + v[0].iov_len : NULL;
}

static inline bool span_type(uint8_t t)
{
	return t >= ATEL_REC_SPAN_START && t <= ATEL_REC_SPAN_ERROR;
}

/* Span ids last seen, by span id hash (direct-mapped: a collision only costs a reference). */
#define SPAN_CACHE 1024u
struct span_seen {
	uint32_t slot1;    /* slot + 1; 0: empty */
	uint8_t ids[24];   /* bytes 16..39: trace id, span id */
	uint64_t ts;
};

static inline unsigned span_hash(const uint8_t *s)
{
	uint64_t k;

	memcpy(&k, s + 32, 8);
	return (unsigned)((k * 0x9e3779b97f4a7c15ull) >> 54) & (SPAN_CACHE - 1);
}

size_t atel__cols_encode_iov(const struct iovec *v, size_t nv, size_t nslots, void *out)
{
	uint8_t *o = out, *kind = o + COLS_HDR, *xref, *flags, *id, *val, *raw, *ts, *end;
	size_t kb = (nslots + 7) / 8, nc = 0, len;
	uint64_t prev_ts = 0, prev_delta = 0;
	struct atel_seg_columns h;
	struct span_seen *seen = NULL;
	unsigned cont_left = 0;
	struct walk w;
	const uint8_t *s;

	memset(kind, 0, 2 * kb);
	xref = kind + kb;
	walk_init(&w, v, nv);
	for (size_t i = 0; i < nslots && (s = walk_next(&w)); i++) {
		if (compact(s)) {
			kind[i >> 3] |= (uint8_t)(1u << (i & 7));
			nc++;
		}
	}
	flags = xref + kb;
	id = flags + nc;
	val = id + 4 * nc;
	raw = val + 8 * nc;
	ts = raw + (nslots - nc) * ATEL_RECORD_SIZE;
	end = ts;
	if (nslots > nc)
		seen = calloc(SPAN_CACHE, sizeof(*seen)); /* NULL: no references, still a valid block */
	walk_init(&w, v, nv);
	for (size_t i = 0; i < nslots && (s = walk_next(&w)); i++) {
		uint64_t t, delta, dd;
		bool start = cont_left == 0;

		cont_left = start ? s[2] : cont_left - 1;
		if (!(kind[i >> 3] & (1u << (i & 7)))) {
			memcpy(raw, s, ATEL_RECORD_SIZE);
			if (start && seen && span_type(s[0])) {
				struct span_seen *e = &seen[span_hash(s)];
				uint64_t t0;

				memcpy(&t0, s + 8, 8);
				if (s[0] != ATEL_REC_SPAN_START && e->slot1 && i - (e->slot1 - 1) <= UINT32_MAX &&
				    memcmp(e->ids, s + 16, 24) == 0) {
					uint32_t ref = (uint32_t)(i - (e->slot1 - 1));
					uint64_t dt = t0 - e->ts;

					memcpy(raw + 8, &dt, 8);
					memcpy(raw + 16, &ref, 4);
					memset(raw + 20, 0, 20);
					xref[i >> 3] |= (uint8_t)(1u << (i & 7));
				}
				e->slot1 = (uint32_t)(i + 1);
				memcpy(e->ids, s + 16, 24);
				e->ts = t0;
			}
			raw += ATEL_RECORD_SIZE;
			continue;
		}
		*flags++ = s[1];
		memcpy(id, s + 4, 4);
		id += 4;
		memcpy(val, s + 16, 8);
		val += 8;
		memcpy(&t, s + 8, 8);
		delta = t - prev_ts;
		dd = delta - prev_delta;
		prev_ts = t;
		prev_delta = delta;
		/* zigzag: small negative and positive differences both stay short */
		end = put_varint(end, (dd << 1) ^ (uint64_t)((int64_t)dd >> 63));
	}
	free(seen);
	len = (size_t)(end - o);
	memset(h.reserved, 0, sizeof(h.reserved));
	h.type = ATEL_LOGREC_COLUMNS;
	h.version = 2;
	h.reserved0 = 0;
	h.nslots = (uint32_t)nslots;
	h.ncompact = (uint32_t)nc;
	h.ts_bytes = (uint32_t)(end - ts);
	memcpy(o, &h, sizeof(h));
	while (len % ATEL_RECORD_SIZE)
		o[len++] = 0;
	return len;
}

size_t atel__cols_encode(const void *content, size_t nslots, void *out)
{
	struct iovec v = { (void *)(uintptr_t)content, nslots * ATEL_RECORD_SIZE };
	return atel__cols_encode_iov(&v, 1, nslots, out);
}

int64_t atel__cols_decode(const void *block, size_t len, void *out, size_t cap, const char **why)
{
	const uint8_t *b = block, *kind, *xref = NULL, *flags, *id, *val, *raw, *ts, *ts_end;
	uint8_t *o = out;
	struct atel_seg_columns h;
	uint64_t kb, need, nc, prev_ts = 0, prev_delta = 0, ones = 0;
	unsigned cont_left = 0;

	if (len < COLS_HDR || len % ATEL_RECORD_SIZE) {
		*why = "COLUMNS block size is not a positive multiple of 64 bytes";
		return -EBADMSG;
	}
	memcpy(&h, b, sizeof(h));
	if (h.type != ATEL_LOGREC_COLUMNS) {
		*why = "not a COLUMNS block";
		return -EBADMSG;
	}
	if (h.version != 1 && h.version != 2) {
		*why = "COLUMNS block of an unknown version (this reader knows 1 and 2)";
		return -EBADMSG;
	}
	if (h.reserved0)
		goto reserved;
	for (unsigned i = 0; i < sizeof(h.reserved) / sizeof(h.reserved[0]); i++)
		if (h.reserved[i])
			goto reserved;
	if (h.nslots == 0 || h.ncompact > h.nslots) {
		*why = "COLUMNS header: nslots is 0 or ncompact exceeds it";
		return -EBADMSG;
	}
	if ((uint64_t)h.nslots * ATEL_RECORD_SIZE > cap)
		return -ENOSPC;
	nc = h.ncompact;
	kb = ((uint64_t)h.nslots + 7) / 8;
	need = COLS_HDR + kb * h.version + nc * 13 + (h.nslots - nc) * ATEL_RECORD_SIZE + (uint64_t)h.ts_bytes;
	if (need > len || len - need >= ATEL_RECORD_SIZE) {
		*why = "COLUMNS block length does not match its header (column sizes + padding)";
		return -EBADMSG;
	}
	for (uint64_t i = need; i < len; i++)
		if (b[i]) {
			*why = "COLUMNS block: nonzero padding";
			return -EBADMSG;
		}
	kind = b + COLS_HDR;
	for (uint64_t i = 0; i < kb; i++)
		ones += (uint64_t)__builtin_popcount(kind[i]);
	if (ones != nc || (h.nslots % 8 && kind[kb - 1] >> (h.nslots % 8))) {
		*why = "COLUMNS kind bitmap does not count ncompact slots";
		return -EBADMSG;
	}
	flags = kind + kb;
	if (h.version == 2) {
		xref = flags;
		flags += kb;
		for (uint64_t i = 0; i < kb; i++)
			if (xref[i] & kind[i]) {
				*why = "COLUMNS span reference bitmap marks a compact slot";
				return -EBADMSG;
			}
		if (h.nslots % 8 && xref[kb - 1] >> (h.nslots % 8)) {
			*why = "COLUMNS span reference bitmap has bits past nslots";
			return -EBADMSG;
		}
	}
	id = flags + nc;
	val = id + 4 * nc;
	raw = val + 8 * nc;
	ts = raw + (h.nslots - nc) * ATEL_RECORD_SIZE;
	ts_end = ts + h.ts_bytes;
	for (uint64_t i = 0; i < h.nslots; i++, o += ATEL_RECORD_SIZE) {
		uint64_t z = 0, dd, t;
		unsigned shift = 0;
		bool start = cont_left == 0;

		if (!(kind[i >> 3] & (1u << (i & 7)))) {
			memcpy(o, raw, ATEL_RECORD_SIZE);
			raw += ATEL_RECORD_SIZE;
			if (xref && (xref[i >> 3] & (1u << (i & 7)))) {
				const uint8_t *tg;
				uint32_t ref;
				uint64_t t0, dt;

				memcpy(&ref, o + 16, 4);
				if (!start || !span_type(o[0]) || o[0] == ATEL_REC_SPAN_START || ref == 0 || ref > i) {
					*why = "COLUMNS span reference on a slot that is not a span record, or out of range";
					return -EBADMSG;
				}
				for (unsigned k = 20; k < 40; k++)
					if (o[k]) {
						*why = "COLUMNS span reference: id bytes not zero";
						return -EBADMSG;
					}
				tg = o - (uint64_t)ref * ATEL_RECORD_SIZE;
				if (!span_type(tg[0])) {
					*why = "COLUMNS span reference points at a slot that is not a span record";
					return -EBADMSG;
				}
				memcpy(&dt, o + 8, 8);
				memcpy(&t0, tg + 8, 8);
				t0 += dt;
				memcpy(o + 8, &t0, 8);
				memcpy(o + 16, tg + 16, 24);
			}
			cont_left = start ? o[2] : cont_left - 1;
			continue;
		}
		cont_left = start ? 0 : cont_left - 1; /* a compact slot's byte 2 is 0 */
		for (;;) {
			uint8_t c;
			if (ts == ts_end) {
				*why = "COLUMNS ts column ends inside a varint or too early";
				return -EBADMSG;
			}
			c = *ts++;
			if (shift == 63 && c > 1) {
				*why = "COLUMNS ts varint overflows 64 bits";
				return -EBADMSG;
			}
			z |= (uint64_t)(c & 0x7f) << shift;
			if (!(c & 0x80))
				break;
			shift += 7;
		}
		dd = (z >> 1) ^ (0 - (z & 1));
		prev_delta += dd;
		prev_ts += prev_delta;
		t = prev_ts;
		memset(o, 0, ATEL_RECORD_SIZE);
		o[0] = ATEL_REC_SAMPLE;
		o[1] = *flags++;
		memcpy(o + 4, id, 4);
		id += 4;
		memcpy(o + 8, &t, 8);
		memcpy(o + 16, val, 8);
		val += 8;
	}
	if (ts != ts_end) {
		*why = "COLUMNS ts column is longer than its samples need";
		return -EBADMSG;
	}
	return (int64_t)h.nslots * ATEL_RECORD_SIZE;
reserved:
	*why = "COLUMNS header: reserved field is not 0";
	return -EBADMSG;
}

int64_t atel__seg_records(const uint8_t *content, size_t len, uint8_t **dec, size_t *dec_cap,
			  const uint8_t **records, const char **why)
{
	struct atel_seg_columns h;
	int64_t n;

	if (len < ATEL_RECORD_SIZE || content[0] != ATEL_LOGREC_COLUMNS) {
		*records = content;
		return (int64_t)(len / ATEL_RECORD_SIZE);
	}
	memcpy(&h, content, sizeof(h));
	if ((uint64_t)h.nslots * ATEL_RECORD_SIZE > ATEL_SEG_FRAME_MAX) {
		*why = "COLUMNS block decodes to more than 64 MiB";
		return -EBADMSG;
	}
	if ((size_t)h.nslots * ATEL_RECORD_SIZE > *dec_cap) {
		size_t want = (size_t)h.nslots * ATEL_RECORD_SIZE;
		uint8_t *nb = realloc(*dec, want);
		if (!nb)
			return -ENOMEM;
		*dec = nb;
		*dec_cap = want;
	}
	n = atel__cols_decode(content, len, *dec, *dec_cap, why);
	if (n < 0)
		return n == -ENOSPC ? -EBADMSG : n;
	*records = *dec;
	return n / ATEL_RECORD_SIZE;
}

int64_t atel__seg_frame_records(ZSTD_DCtx *dctx, const uint8_t *src, size_t fs, uint64_t csize,
				struct atel_seg_frame_buf *b, const uint8_t **records, const char **why)
{
	size_t r;

	/* atel__seg_frame_size() refused any other size already; checked again
	 * because this is what the buffer below is sized by */
	if (csize == 0 || csize % ATEL_RECORD_SIZE || csize > ATEL_SEG_FRAME_MAX) {
		*why = "frame content size is not a positive multiple of 64 bytes up to 64 MiB";
		return -EBADMSG;
	}
	if (csize > b->content_cap) {
		uint8_t *n = realloc(b->content, csize);
		if (!n)
			return -ENOMEM;
		b->content = n;
		b->content_cap = csize;
	}
	r = ZSTD_decompressDCtx(dctx, b->content, csize, src, fs);
	if (ZSTD_isError(r) || r != csize) {
		*why = ZSTD_isError(r) ? ZSTD_getErrorName(r) : "frame content shorter than its header says";
		return -EBADMSG;
	}
	return atel__seg_records(b->content, csize, &b->decoded, &b->decoded_cap, records, why);
}

void atel__seg_frame_buf_free(struct atel_seg_frame_buf *b)
{
	free(b->content);
	free(b->decoded);
	memset(b, 0, sizeof(*b));
}
