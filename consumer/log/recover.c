/* SPDX-License-Identifier: MIT */
/*
 * recover.c - where the log stands at start-up (seglog.h, log_internal.h):
 * the position after the last logged record of every ring, the live
 * definitions, and in recovery a torn tail cut off the newest file.
 *
 * Files are walked newest first with the one frame walk (frames.h). A
 * damaged or incomplete frame is a torn tail only if no valid data frame
 * follows it anywhere in the file; otherwise it is a damaged frame in the
 * middle (left for the readers to report) and the walk resynchronises.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frames.h"
#include "log_internal.h"

enum scan_result { SCAN_OK = 0, SCAN_OTHER_INSTANCE, SCAN_TORN_HEADER, SCAN_BAD_HEADER };

struct scan {
	uint64_t instance;
	uint32_t ring_count;
	uint64_t *next_pos;
	bool *seen;
	uint32_t *gen;
	struct atel_decoder *dec;   /* NULL: positions only */
	bool truncate;              /* cut a torn tail off the file */
	struct atel_recover_report *rep; /* may be NULL */
};

static bool is_def_type(uint8_t t)
{
	return t == ATEL_REC_BEGIN || t == ATEL_REC_STRDEF || t == ATEL_REC_SERIESDEF || t == ATEL_REC_BOUNDS;
}

/* Applies the chunks of one decompressed data frame (or the header's definitions). */
static void scan_records(struct scan *s, const union atel_slot *rec, size_t nslots, bool header)
{
	size_t i = 0;

	while (i < nslots) {
		const struct atel_rec_chunk *c = (const struct atel_rec_chunk *)(const void *)&rec[i];
		size_t end;
		uint32_t ring = c->h.id;
		if (c->h.type != ATEL_LOGREC_CHUNK || c->count > nslots - i - 1)
			return; /* not what the writer makes: ignore the rest */
		end = i + 1 + c->count;
		if (ring < s->ring_count && !(c->h.flags & (ATEL_CHUNKF_DEFS | ATEL_CHUNKF_MARKER)) && !header) {
			s->next_pos[ring] = c->first_pos + c->count;
			s->seen[ring] = true;
			if (s->gen)
				s->gen[ring] = c->generation;
		}
		if (s->dec && ring < s->ring_count) {
			if (header)
				atel__decoder_reset_ring(s->dec, ring);
			for (size_t k = i + 1; k < end;) {
				const char *why;
				int n = atel__log_rec_check(&rec[k], end - k, &why);
				struct atel_event ev;
				if (n < 0) {
					k++;
					continue;
				}
				if (is_def_type(rec[k].h.type))
					(void)atel__decode(s->dec, ring, c->first_pos + (k - i - 1), &rec[k], (unsigned)n, &ev);
				k += (size_t)n;
			}
		}
		i = end;
	}
}

/* Is there a complete, valid data frame anywhere at or after `from`? Leaves w->off as it was. */
static int valid_frame_after(struct atel_seg_walk *w, uint64_t from, bool *found)
{
	uint64_t at = w->off;
	int rc;

	*found = false;
	for (rc = atel__seg_walk_resync(w, from); !rc && w->off < w->size;
	     rc = atel__seg_walk_resync(w, w->off + 1)) {
		struct atel_seg_frame f;

		if ((rc = atel__seg_walk_next(w, &f)))
			break;
		if (f.kind == ATEL_SEGF_DATA) {
			*found = true;
			break;
		}
	}
	w->off = at;
	return rc;
}

/* The header frame of the walk's file. @return 0 with *res, or -errno. */
static int scan_header(struct scan *s, struct atel_seg_walk *w, enum scan_result *res)
{
	struct atel_seg_header_view hv;
	struct atel_seg_frame f;
	const char *why;
	int rc;

	if ((rc = atel__seg_walk_next(w, &f)))
		return rc;
	if (f.kind == ATEL_SEGF_END || f.kind == ATEL_SEGF_PARTIAL) {
		*res = SCAN_TORN_HEADER;
		return 0;
	}
	if (f.kind != ATEL_SEGF_SKIPPABLE || !f.content || atel__seg_parse_header(f.content, f.content_len, &hv, &why)) {
		*res = SCAN_BAD_HEADER;
		return 0;
	}
	if (hv.hdr.shm_instance != s->instance) {
		atel__seg_header_view_free(&hv);
		*res = SCAN_OTHER_INSTANCE;
		return 0;
	}
	for (uint32_t i = 0; i < hv.hdr.nentries; i++) {
		struct atel_seg_ring_entry e;
		memcpy(&e, hv.entries + (size_t)i * sizeof(e), sizeof(e));
		if (e.ring < s->ring_count) {
			s->next_pos[e.ring] = e.next_pos;
			s->seen[e.ring] = true;
			if (s->gen)
				s->gen[e.ring] = e.generation;
		}
	}
	if (hv.hdr.ndef_slots) {
		/* copied: the definitions may be unaligned in the window */
		union atel_slot *defs = malloc((size_t)hv.hdr.ndef_slots * sizeof(*defs));
		if (!defs) {
			atel__seg_header_view_free(&hv);
			return -ENOMEM;
		}
		memcpy(defs, hv.defs, (size_t)hv.hdr.ndef_slots * sizeof(*defs));
		scan_records(s, defs, hv.hdr.ndef_slots, true);
		free(defs);
	}
	atel__seg_header_view_free(&hv);
	atel__seg_walk_skip(w, &f);
	*res = SCAN_OK;
	return 0;
}

static int scan_file(struct scan *s, const char *path, enum scan_result *res)
{
	struct atel_seg_walk w;
	int fd, rc;

	*res = SCAN_OK;
	fd = open(path, (s->truncate ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((rc = atel__seg_walk_file(&w, fd)) || (rc = scan_header(s, &w, res)) || *res != SCAN_OK)
		goto out;
	for (;;) {
		struct atel_seg_frame f;
		bool valid_after;

		if ((rc = atel__seg_walk_next(&w, &f)) || f.kind == ATEL_SEGF_END)
			break;
		if (f.kind == ATEL_SEGF_SKIPPABLE || f.kind == ATEL_SEGF_DATA) {
			if (f.kind == ATEL_SEGF_DATA)
				scan_records(s, f.rec, f.nslots, false);
			atel__seg_walk_skip(&w, &f);
			continue;
		}
		/* damaged or incomplete frame: a torn tail unless a valid frame follows */
		if ((rc = valid_frame_after(&w, f.off + 1, &valid_after)))
			break;
		if (!valid_after) {
			struct stat sb;
			uint64_t size = fstat(fd, &sb) == 0 ? (uint64_t)sb.st_size : f.off;

			if (s->truncate && (ftruncate(fd, (off_t)f.off) || fsync(fd)))
				rc = -errno;
			else if (s->truncate && s->rep) {
				s->rep->tail_cuts++;
				s->rep->tail_bytes += size > f.off ? size - f.off : 0;
				s->rep->last_offset = f.off;
				snprintf(s->rep->last_file, sizeof(s->rep->last_file), "%.250s", path);
			}
			break;
		}
		if ((rc = atel__seg_walk_resync(&w, f.off + 1)))
			break;
	}
out:
	atel__seg_walk_end(&w);
	close(fd);
	return rc;
}

static int scan_dir(const char *dir, uint64_t instance, uint32_t ring_count, uint64_t *next_pos, bool *seen,
		    uint32_t *gen, struct atel_decoder *dec, bool truncate, struct atel_recover_report *rep, char *err,
		    size_t errlen)
{
	struct scan s = { .instance = instance, .ring_count = ring_count, .next_pos = next_pos, .seen = seen,
			  .gen = gen, .dec = dec, .truncate = truncate, .rep = rep };
	uint64_t *seqs = NULL;
	int n, rc = 0;

	n = atel__seg_list(dir, &seqs);
	if (n == -ENOENT)
		return 0;
	if (n < 0) {
		atel__seterr(err, errlen, "cannot list %s: %s", dir, strerror(-n));
		return n;
	}
	for (int i = n - 1; i >= 0; i--) {
		char path[PATH_MAX], aside[PATH_MAX + 16];
		enum scan_result res;
		snprintf(path, sizeof(path), "%s/%016llx" ATEL_SEG_SUFFIX, dir, (unsigned long long)seqs[i]);
		rc = scan_file(&s, path, &res);
		if (rc) {
			atel__seterr(err, errlen, "%s: %s", path, strerror(-rc));
			break;
		}
		if (res == SCAN_OK || res == SCAN_OTHER_INSTANCE)
			break;
		if (!truncate)
			continue; /* the previous file holds the positions */
		/* A file whose header frame is incomplete died while being created
		 * (the header is written before any data frame): remove it. A
		 * complete but invalid header is kept aside for inspection. Either
		 * way the previous file holds the positions. */
		if (res == SCAN_TORN_HEADER) {
			if (unlink(path) && errno != ENOENT) {
				rc = -errno;
				atel__seterr(err, errlen, "cannot remove torn segment %s: %s", path, strerror(errno));
				break;
			}
			if (rep) {
				rep->torn_headers++;
				snprintf(rep->last_file, sizeof(rep->last_file), "%.250s", path);
			}
		} else {
			snprintf(aside, sizeof(aside), "%s.corrupt", path);
			if (rename(path, aside)) {
				rc = -errno;
				atel__seterr(err, errlen, "cannot move corrupt segment %s aside: %s", path, strerror(errno));
				break;
			}
			if (rep) {
				rep->corrupt_aside++;
				snprintf(rep->last_file, sizeof(rep->last_file), "%.250s", path);
			}
		}
	}
	free(seqs);
	return rc;
}

int atel__seglog_scan(const char *dir, uint64_t instance, uint32_t ring_count, uint64_t *next_pos, bool *seen,
		      uint32_t *gen, struct atel_decoder *dec, bool truncate, char *err, size_t errlen)
{
	return scan_dir(dir, instance, ring_count, next_pos, seen, gen, dec, truncate, NULL, err, errlen);
}

int atel__seglog_recover(const char *segments_dir, uint64_t instance, uint32_t ring_count, uint64_t *next_pos,
			 bool *seen, struct atel_decoder *dec, char *err, size_t errlen)
{
	return scan_dir(segments_dir, instance, ring_count, next_pos, seen, NULL, dec, true, NULL, err, errlen);
}

int atel__seglog_recover_report(const char *segments_dir, uint64_t instance, uint32_t ring_count,
				uint64_t *next_pos, bool *seen, struct atel_decoder *dec,
				struct atel_recover_report *rep, char *err, size_t errlen)
{
	memset(rep, 0, sizeof(*rep));
	return scan_dir(segments_dir, instance, ring_count, next_pos, seen, NULL, dec, true, rep, err, errlen);
}
