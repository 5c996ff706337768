/* SPDX-License-Identifier: MIT */
/*
 * frames.h - the one walk over the frames of a segment file
 * (docs/segment-format.md). The log reader (logread.c), the writer's
 * start-up recovery (recover.c) and the replay gap pass (tools/segscan.c)
 * all step through a file with it; what each does with a damaged frame is
 * its own policy (report and resynchronise, cut a torn tail, count).
 *
 * A walk reads a file through a window (pread, never mmap: recovery may
 * truncate the newest file under a following reader, and a mapping would
 * turn that into SIGBUS), or bytes already in memory. It examines the frame
 * at `off` without moving; the caller moves on with atel__seg_walk_skip
 * (past a frame of known size) or atel__seg_walk_resync (to the next zstd
 * magic number). A file that grows while it is walked (a reader following
 * ateld) is seen growing: an incomplete frame is looked at again once more
 * bytes are there.
 *
 * Single-threaded; one walk per file being read.
 */
#ifndef ATEL_FRAMES_H
#define ATEL_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "segformat.h"

enum atel_seg_frame_kind {
	ATEL_SEGF_END = 0,     /* no byte at off */
	ATEL_SEGF_PARTIAL,     /* a frame starts at off but its end is not there (yet) */
	ATEL_SEGF_SKIPPABLE,   /* a zstd skippable frame (the header frame, at offset 0) */
	ATEL_SEGF_DATA,        /* a data frame, decompressed (COLUMNS decoded) */
	ATEL_SEGF_BAD,         /* no frame this format accepts starts at off, or one fails to decode */
};

struct atel_seg_frame {
	enum atel_seg_frame_kind kind;
	uint64_t off;                 /* where the frame starts */
	uint64_t size;                /* its total size; BAD: 0 when not even its framing is valid */
	/* SKIPPABLE: its content (the frame minus its 8-byte header), in the walk's
	 * window; NULL if larger than ATEL_SEG_HEADER_FRAME_MAX (never read) */
	const uint8_t *content;
	size_t content_len;
	const union atel_slot *rec;   /* DATA: the records, valid until the next call */
	size_t nslots;
	uint64_t need;                /* PARTIAL: bytes from off needed (a lower bound) */
	const char *why;              /* BAD: what is wrong, precisely */
};

struct atel_seg_walk {
	uint64_t off;                 /* the frame atel__seg_walk_next looks at */
	uint64_t size;                /* bytes of the source, as last seen */
	/* private */
	int fd;                       /* -1: memory source */
	const uint8_t *mem;
	uint8_t *buf;                 /* file window [boff, boff + blen) */
	size_t cap, blen;
	uint64_t boff;
	void *dctx;                   /* ZSTD_DCtx */
	struct atel_seg_frame_buf fb;
};

/* A walk over the open file fd (not closed by the walk), from offset 0.
 * @return 0 or -ENOMEM / -errno (fstat). */
int atel__seg_walk_file(struct atel_seg_walk *w, int fd);

/* A walk over len bytes at p (kept by the caller until the walk ends). @return 0 or -ENOMEM. */
int atel__seg_walk_mem(struct atel_seg_walk *w, const uint8_t *p, size_t len);

/* Frees the walk's buffers (not the file). Safe on a zeroed walk. */
void atel__seg_walk_end(struct atel_seg_walk *w);

/*
 * Examines the frame at w->off (and re-reads the file's size when that
 * frame is not complete, or w->off is at the end). Does not move.
 * @return 0 with *f filled, or -ENOMEM / -errno (a read error).
 */
int atel__seg_walk_next(struct atel_seg_walk *w, struct atel_seg_frame *f);

/* Moves past f (f->size > 0). */
static inline void atel__seg_walk_skip(struct atel_seg_walk *w, const struct atel_seg_frame *f)
{
	w->off = f->off + f->size;
}

/* Moves to the next zstd frame magic number at or after `from` (the end of
 * the source if there is none): resynchronisation after damage.
 * @return 0 or -errno (a read error). */
int atel__seg_walk_resync(struct atel_seg_walk *w, uint64_t from);

/* Drops what the window holds, so that the next look reads the file again
 * (the file was rewritten in place, or truncated). */
void atel__seg_walk_forget(struct atel_seg_walk *w);

#endif /* ATEL_FRAMES_H */
