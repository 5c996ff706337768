/* SPDX-License-Identifier: MIT */
/*
 * segscan.c - frame and chunk walk over segment files (segscan.h).
 */
#include "segscan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "atel_abi.h"
#include "segformat.h"
#include "util.h"

static int push_gap(struct atel_segscan *s, const struct atel_segscan_gap *g)
{
	s->gap_count++;
	if (s->ngaps >= ATEL_SEGSCAN_GAPS_MAX)
		return 0; /* counted, not listed: a damaged log could list millions */
	if (s->ngaps == s->capgaps) {
		size_t nc = s->capgaps ? s->capgaps * 2 : 16;
		struct atel_segscan_gap *n = realloc(s->gaps, nc * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->gaps = n;
		s->capgaps = nc;
	}
	s->gaps[s->ngaps++] = *g;
	return 0;
}

static size_t ring_hash(uint64_t instance, uint32_t ring, size_t nslots)
{
	uint64_t h = (instance ^ ((uint64_t)ring * 0x9E3779B97F4A7C15ull)) * 0xff51afd7ed558ccdull;
	return (size_t)(h >> 17) & (nslots - 1);
}

/* (instance, ring) -> its entry; hashed, since a hostile file can name many rings */
static struct atel_segscan_ring *ring_of(struct atel_segscan *s, uint64_t instance, uint32_t ring)
{
	if (s->nslots) {
		for (size_t i = ring_hash(instance, ring, s->nslots);; i = (i + 1) & (s->nslots - 1)) {
			size_t v = s->slots[i];
			if (!v)
				break;
			if (s->rings[v - 1].ring == ring && s->rings[v - 1].instance == instance)
				return &s->rings[v - 1];
		}
	}
	if ((s->nrings + 1) * 2 > s->nslots) {
		size_t nn = s->nslots ? s->nslots * 2 : 64;
		size_t *ns = calloc(nn, sizeof(*ns));
		if (!ns)
			return NULL;
		for (size_t k = 0; k < s->nrings; k++) {
			size_t i = ring_hash(s->rings[k].instance, s->rings[k].ring, nn);
			while (ns[i])
				i = (i + 1) & (nn - 1);
			ns[i] = k + 1;
		}
		free(s->slots);
		s->slots = ns;
		s->nslots = nn;
	}
	if (s->nrings == s->caprings) {
		size_t nc = s->caprings ? s->caprings * 2 : 16;
		struct atel_segscan_ring *n = realloc(s->rings, nc * sizeof(*n));
		if (!n)
			return NULL;
		s->rings = n;
		s->caprings = nc;
	}
	struct atel_segscan_ring *r = &s->rings[s->nrings++];
	memset(r, 0, sizeof(*r));
	r->instance = instance;
	r->ring = ring;
	r->first = UINT64_MAX;
	size_t i = ring_hash(instance, ring, s->nslots);
	while (s->slots[i])
		i = (i + 1) & (s->nslots - 1);
	s->slots[i] = s->nrings;
	return r;
}

/* next zstd frame magic at or after off (resynchronisation), or len */
static size_t resync(const uint8_t *b, size_t len, size_t off)
{
	static const uint8_t magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	for (size_t i = off; i + 4 <= len; i++)
		if (memcmp(b + i, magic, 4) == 0)
			return i;
	return len;
}

static int scan_records(struct atel_segscan *s, const char *base, uint64_t frame_off, const union atel_slot *slots,
			size_t n, uint64_t instance)
{
	size_t i = 0;
	while (i < n) {
		const union atel_slot *h = &slots[i];
		if (h->h.type != ATEL_LOGREC_CHUNK) {
			s->bad_frames++; /* framing broken inside the frame; the reader reports it */
			return 0;
		}
		const struct atel_rec_chunk *c = (const struct atel_rec_chunk *)(const void *)h;
		s->chunks++;
		if (c->count > n - i - 1) {
			s->bad_frames++;
			return 0;
		}
		if (!(c->h.flags & (ATEL_CHUNKF_DEFS | ATEL_CHUNKF_MARKER))) {
			uint64_t inst = c->shm_instance ? c->shm_instance : instance;
			struct atel_segscan_ring *r = ring_of(s, inst, c->h.id);
			if (!r)
				return -ENOMEM;
			if (r->first == UINT64_MAX) {
				r->first = c->first_pos;
			} else if (c->first_pos != r->next) {
				struct atel_segscan_gap g = { .offset = frame_off, .instance = inst, .ring = c->h.id,
							      .expected = r->next, .found = c->first_pos };
				snprintf(g.file, sizeof(g.file), "%s", base);
				if (push_gap(s, &g) < 0)
					return -ENOMEM;
			}
			r->next = c->first_pos + c->count;
			r->slots += c->count;
		}
		i += 1 + (size_t)c->count;
	}
	return 0;
}

static int scan_buffer(const uint8_t *b, size_t len, const char *base, struct atel_segscan *s, ZSTD_DCtx *dctx,
		       struct atel_seg_frame_buf *fb)
{
	int rc = 0;
	s->files++;
	s->bytes_compressed += len;
	uint64_t instance = 0;
	size_t off = 0;
	bool first = true;
	while (off < len) {
		uint64_t content = 0, need = 0;
		bool skippable = false;
		const char *why = NULL;
		int64_t fs = atel__seg_frame_size(b + off, len - off, &content, &skippable, &need, &why);
		if (fs <= 0) {
			if (fs == 0)
				break; /* torn tail: the reader decides whether that is an error */
			s->bad_frames++;
			off = resync(b, len, off + 1);
			continue;
		}
		if (skippable) {
			if (first) {
				struct atel_seg_header_view hv;
				if (atel__seg_parse_header(b + off + 8, (size_t)fs - 8, &hv, &why) == 0)
					instance = hv.hdr.shm_instance;
				else
					s->bad_frames++;
			}
			first = false;
			off += (size_t)fs;
			continue;
		}
		first = false;
		s->frames++;
		{
			const uint8_t *rec;
			int64_t n = atel__seg_frame_records(dctx, b + off, (size_t)fs, content, fb, &rec, &why);
			if (n < 0) {
				if (n == -ENOMEM) {
					rc = -ENOMEM;
					break;
				}
				s->bad_frames++;
				off += (size_t)fs;
				continue;
			}
			s->bytes_raw += (uint64_t)n * ATEL_RECORD_SIZE;
			if (s->raw_out && !s->raw_err && fwrite(rec, ATEL_RECORD_SIZE, (size_t)n, s->raw_out) != (size_t)n)
				s->raw_err = errno ? errno : EIO;
			rc = scan_records(s, base, off, (const union atel_slot *)(const void *)rec, (size_t)n, instance);
		}
		if (rc < 0)
			break;
		off += (size_t)fs;
	}
	return rc;
}

static int scan_file(const char *path, struct atel_segscan *s, ZSTD_DCtx *dctx, struct atel_seg_frame_buf *fb)
{
	uint8_t *b = NULL;
	size_t len = 0;
	int rc = atel__read_file(path, SIZE_MAX, (char **)&b, &len, NULL, 0);
	if (rc < 0)
		return rc;
	const char *base = strrchr(path, '/');
	rc = scan_buffer(b, len, base ? base + 1 : path, s, dctx, fb);
	free(b);
	return rc;
}

int atel_segscan_buffer(const uint8_t *buf, size_t len, const char *name, struct atel_segscan *s)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	struct atel_seg_frame_buf fb = { 0 };
	if (!dctx)
		return -ENOMEM;
	int rc = scan_buffer(buf, len, name ? name : "", s, dctx, &fb);
	atel__seg_frame_buf_free(&fb);
	ZSTD_freeDCtx(dctx);
	return rc;
}

int atel_segscan_path(const char *path, struct atel_segscan *s, char *err, size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return e;
	}
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	struct atel_seg_frame_buf fb = { 0 };
	int rc = 0;
	if (!dctx)
		return -ENOMEM;
	if (S_ISDIR(st.st_mode)) {
		uint64_t *seqs = NULL;
		int n = atel__seg_list(path, &seqs);
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(-n));
			rc = n;
		}
		for (int i = 0; i < n && rc == 0; i++) {
			char fp[4200];
			snprintf(fp, sizeof(fp), "%s/%016llx%s", path, (unsigned long long)seqs[i], ATEL_SEG_SUFFIX);
			rc = scan_file(fp, s, dctx, &fb);
			if (rc < 0)
				snprintf(err, errlen, "%s: %s", fp, strerror(-rc));
		}
		free(seqs);
	} else {
		rc = scan_file(path, s, dctx, &fb);
		if (rc < 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	}
	atel__seg_frame_buf_free(&fb);
	ZSTD_freeDCtx(dctx);
	return rc;
}

void atel_segscan_free(struct atel_segscan *s)
{
	if (!s)
		return;
	free(s->gaps);
	free(s->rings);
	free(s->slots);
	memset(s, 0, sizeof(*s));
}
