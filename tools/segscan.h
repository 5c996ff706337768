/* SPDX-License-Identifier: MIT */
/*
 * segscan.h - the frame-level pass of `atel replay`: walks segment files
 * frame by frame (the log's frame walk, consumer/log/frames.h), decompresses
 * each data frame and follows its CHUNK records, to find gaps in ring
 * positions: a chunk of ring R (of shm instance I) that does not start where
 * the previous chunk of R ended. The event-level pass (counts, names) is the
 * log reader's (logread.h); this one only needs framing, so it also gives the
 * raw decompression rate for the benchmark.
 *
 * A gap means positions of the ring that are not in the log: records the
 * consumer rejected as invalid, a frame lost to corruption, or a file that
 * retention deleted. Single-threaded; the result owns its memory.
 */
#ifndef ATEL_SEGSCAN_H
#define ATEL_SEGSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct atel_segscan_gap {
	char file[64];           /* base name of the file where the gap shows */
	uint64_t offset;         /* byte offset of the frame holding the chunk */
	uint64_t instance;       /* shm instance */
	uint32_t ring;
	uint64_t expected;       /* position the chunk should have started at */
	uint64_t found;          /* where it started (< expected: positions logged twice) */
};

struct atel_segscan_ring {
	uint64_t instance;
	uint32_t ring;
	uint64_t first, next;    /* first position seen, next expected */
	uint64_t slots;          /* data slots logged */
};

#define ATEL_SEGSCAN_GAPS_MAX 10000u /* gaps listed; all are counted */

struct atel_segscan {
	uint64_t files, frames, chunks, bytes_compressed, bytes_raw;
	uint64_t gap_count;      /* every gap; the first ATEL_SEGSCAN_GAPS_MAX are in gaps[] */
	uint64_t bad_frames;     /* frames this pass could not read (the reader reports why) */
	struct atel_segscan_gap *gaps;
	size_t ngaps, capgaps;
	struct atel_segscan_ring *rings;
	size_t nrings, caprings;
	size_t *slots, nslots;   /* internal: (instance, ring) -> rings index + 1 */
	FILE *raw_out;           /* if set: every valid data frame's records (COLUMNS decoded), in file order */
	int raw_err;             /* errno of a failed write to raw_out, 0 if none */
};

/*
 * Scans `path`: a segment file, or a directory of them (ascending file_seq).
 * Appends to *s (zero it first; scans accumulate).
 * @return 0 or -errno (-ENOENT: no such path; err set).
 */
int atel_segscan_path(const char *path, struct atel_segscan *s, char *err, size_t errlen);

/* The same over one file's bytes in memory (name: for gap reports); for the
 * fuzz target. @return 0 or -ENOMEM. */
int atel_segscan_buffer(const uint8_t *buf, size_t len, const char *name, struct atel_segscan *s);

/* NULL-safe; leaves *s zeroed. */
void atel_segscan_free(struct atel_segscan *s);

#endif /* ATEL_SEGSCAN_H */
