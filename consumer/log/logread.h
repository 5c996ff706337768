/* SPDX-License-Identifier: MIT */
/*
 * logread.h - reading the segment log (the .atseg files in <data_dir>/segments, format in
 * docs/segment-format.md) as a stream of decoded events. Used by the indexer,
 * the exporters (each with its own persisted cursor), `atel replay` and
 * ateld's own recovery.
 *
 * A reader can follow a log that ateld is still writing: next() returns 0 at
 * the current end and more events once more frames land. Corrupt frames are
 * reported through the on_corrupt callback (file, offset, reason) and skipped;
 * a torn last frame of the newest file is not an error while following.
 */
#ifndef ATEL_LOGREAD_H
#define ATEL_LOGREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "decode.h"

/* A position in the log: the segment file's sequence number, the byte
 * offset of a data frame in it, and how many of that frame's records were
 * already consumed. {0,0,0} is "the beginning of the oldest file". */
struct atel_log_pos {
	uint64_t file_seq;
	uint64_t frame_off;
	uint32_t rec_idx;
};

/* Order of two positions: <0, 0, >0. */
static inline int atel__log_pos_cmp(const struct atel_log_pos *a, const struct atel_log_pos *b)
{
	if (a->file_seq != b->file_seq)
		return a->file_seq < b->file_seq ? -1 : 1;
	if (a->frame_off != b->frame_off)
		return a->frame_off < b->frame_off ? -1 : 1;
	if (a->rec_idx != b->rec_idx)
		return a->rec_idx < b->rec_idx ? -1 : 1;
	return 0;
}

struct atel_log_reader_opts {
	const char *segments_dir;      /* <data_dir>/segments, or a directory of .atseg files */
	const char *single_file;       /* or exactly one file (replay PATH) */
	struct atel_log_pos start;     /* resume point; a file that retention removed is skipped */
	bool follow;                   /* tolerate a torn tail in the newest file (it may still grow) */
	/* called for every corrupt or unreadable frame; may be NULL */
	void (*on_corrupt)(void *arg, const char *file, uint64_t offset, const char *why);
	void *arg;
};

struct atel_log_reader;

/* @return 0 or -errno (-ENOENT: no such directory or file). */
int atel__log_open(struct atel_log_reader **out, const struct atel_log_reader_opts *opts);

/* NULL-safe. */
void atel__log_close(struct atel_log_reader *r);

/*
 * Next decoded event. *pos_after (may be NULL) is the position just after it:
 * persist it and reopen there to resume exactly after this event.
 * @return 1 with *ev set; 0 at the current end of the log; -errno on I/O error.
 * Event pointers stay valid until the next call.
 */
int atel__log_next(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after);

/* Counters of what the reader saw so far (for replay and status). */
struct atel_log_read_stats {
	uint64_t files, frames, records, bytes_compressed, bytes_raw;
	uint64_t corrupt_frames, invalid_records;
	uint64_t by_type[128];         /* records per raw type, consumer-only types included */
};
void atel__log_stats(const struct atel_log_reader *r, struct atel_log_read_stats *out);

/* Name of a record type as the log holds it: the producer types'
 * (atel__rec_type_name) plus the consumer-only "chunk" and "death";
 * NULL for a type the format does not define. */
const char *atel__log_rec_type_name(unsigned type);

/* The file currently being read ("" before the first). */
const char *atel__log_current_file(const struct atel_log_reader *r);

/* The shm instance of the file the last event came from (0 before the first). */
uint64_t atel__log_current_instance(const struct atel_log_reader *r);

#endif /* ATEL_LOGREAD_H */
