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

#include "atel_abi.h"
#include "frames.h"
#include "segformat.h"

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

/* Walks one file's frames (the log's frame walk, frames.h). */
static int scan_walk(struct atel_seg_walk *w, const char *base, struct atel_segscan *s)
{
	uint64_t instance = 0;
	bool first = true;
	int rc = 0;

	s->files++;
	s->bytes_compressed += w->size;
	for (;;) {
		struct atel_seg_frame f;

		if ((rc = atel__seg_walk_next(w, &f)))
			break;
		if (f.kind == ATEL_SEGF_END || f.kind == ATEL_SEGF_PARTIAL)
			break; /* torn tail: the reader decides whether that is an error */
		if (f.kind == ATEL_SEGF_BAD && !f.size) {
			s->bad_frames++;
			if ((rc = atel__seg_walk_resync(w, f.off + 1)))
				break;
			continue;
		}
		if (f.kind == ATEL_SEGF_SKIPPABLE) {
			if (first) {
				struct atel_seg_header_view hv;
				const char *why;

				if (f.content && atel__seg_parse_header(f.content, f.content_len, &hv, &why) == 0) {
					instance = hv.hdr.shm_instance;
					atel__seg_header_view_free(&hv);
				} else
					s->bad_frames++;
			}
			first = false;
			atel__seg_walk_skip(w, &f);
			continue;
		}
		first = false;
		s->frames++;
		if (f.kind == ATEL_SEGF_BAD) {
			s->bad_frames++; /* a frame that does not decompress: skipped whole */
			atel__seg_walk_skip(w, &f);
			continue;
		}
		s->bytes_raw += (uint64_t)f.nslots * ATEL_RECORD_SIZE;
		if (s->raw_out && !s->raw_err && fwrite(f.rec, ATEL_RECORD_SIZE, f.nslots, s->raw_out) != f.nslots)
			s->raw_err = errno ? errno : EIO;
		if ((rc = scan_records(s, base, f.off, f.rec, f.nslots, instance)) < 0)
			break;
		atel__seg_walk_skip(w, &f);
	}
	return rc;
}

static int scan_file(const char *path, struct atel_segscan *s)
{
	const char *base = strrchr(path, '/');
	struct atel_seg_walk w;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	if (!(rc = atel__seg_walk_file(&w, fd)))
		rc = scan_walk(&w, base ? base + 1 : path, s);
	atel__seg_walk_end(&w);
	close(fd);
	return rc;
}

int atel_segscan_buffer(const uint8_t *buf, size_t len, const char *name, struct atel_segscan *s)
{
	struct atel_seg_walk w;
	int rc = atel__seg_walk_mem(&w, buf, len);

	if (!rc)
		rc = scan_walk(&w, name ? name : "", s);
	atel__seg_walk_end(&w);
	return rc;
}

int atel_segscan_path(const char *path, struct atel_segscan *s, char *err, size_t errlen)
{
	struct stat st;
	int rc = 0;

	if (stat(path, &st) < 0) {
		int e = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return e;
	}
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
			rc = scan_file(fp, s);
			if (rc < 0)
				snprintf(err, errlen, "%s: %s", fp, strerror(-rc));
		}
		free(seqs);
	} else {
		rc = scan_file(path, s);
		if (rc < 0)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
	}
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
