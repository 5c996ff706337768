/* SPDX-License-Identifier: MIT */
/*
 * seglog.h - the segment log writer (format: docs/segment-format.md).
 *
 * The drain thread appends runs of validated ring records; the writer
 * compresses them (zstd, straight from ring memory) into frames, each frame
 * recording the ring positions it covers, and writes frames through an
 * asynchronous back end (io_uring, several frames per submission: uring.h,
 * linked only by ateld) or, without one, when it is unavailable or with
 * ATEL_FORCE_PWRITEV=1, pwritev. Single-threaded: only the drain thread calls it.
 *
 * Exactly-once contract: a ring position may be released to the producer only
 * once atel__seglog_written_pos() for that ring has passed it. After a failed
 * flush (disk full, EIO) the pending frames stay in memory and are retried by
 * the next flush; the caller must not append the same positions again.
 */
#ifndef ATEL_SEGLOG_H
#define ATEL_SEGLOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "decode.h"
#include "segformat.h" /* CHUNK/DEATH record layouts (ATEL_LOGREC_*) */

struct atel_seglog_io_ops; /* an asynchronous write back end (log_internal.h; uring.h has one) */

/* What the writer counts. Relaxed atomics: the writer's thread adds, any
 * thread reads (ateld's /metrics and status file). */
struct atel_log_counters {
	_Atomic uint64_t bytes_raw;             /* record bytes before compression */
	_Atomic uint64_t bytes_written;         /* compressed bytes written to segments */
	_Atomic uint64_t frames_written;
	_Atomic uint64_t segments_created;
	_Atomic uint64_t segments_deleted;
	_Atomic uint64_t write_errors;          /* failed writes (disk full ...), retried */
	_Atomic uint64_t records_source_lost;   /* records of frames dropped: source_lost() said their memory was cut */
	_Atomic uint32_t io_uring_active;       /* 1: the asynchronous back end, 0: pwritev */
	_Atomic uint64_t log_end_seq;           /* file_seq of the newest segment */
};

enum atel_io_mode { ATEL_IO_AUTO = 0, ATEL_IO_URING = 1, ATEL_IO_PWRITEV = 2 };

/* Content of data frames (docs/segment-format.md section 3): the raw records,
 * or their COLUMNS encoding (smaller; `zstd -d` then prints the block). */
enum atel_seg_encoding { ATEL_SEG_ENC_RECORDS = 0, ATEL_SEG_ENC_COLUMNS = 1 };

struct atel_seglog_opts {
	const char *segments_dir;        /* created if missing */
	uint64_t rotate_bytes;           /* default 64 MiB */
	uint64_t rotate_age_ns;          /* default 1 h */
	uint64_t fsync_interval_ns;      /* default 1 s */
	uint64_t retention_ns;           /* whole files older than this are deleted; 0 = keep */
	int zstd_level;                  /* default 3 */
	enum atel_io_mode io;            /* ATEL_FORCE_PWRITEV=1 in the environment forces PWRITEV */
	const struct atel_seglog_io_ops *async_io; /* &atel__seglog_uring (uring.h), or NULL: pwritev only */
	uint64_t shm_instance;           /* header instance_id of the segment being drained */
	uint32_t ring_count;
	const struct atel_decoder *defs; /* definitions source for each new file's header frame */
	struct atel_log_counters *stats; /* may be NULL */
	/* additions (zero = default) */
	uint32_t frame_bytes;            /* raw bytes per zstd frame; default 256 KiB (64 KiB .. 16 MiB) */
	enum atel_seg_encoding encoding; /* default RECORDS */
	const uint64_t *resume_pos;      /* ring_count entries from atel__seglog_recover, or NULL: then */
	const bool *resume_seen;         /*   open() reads them from the newest file of shm_instance */
	/* retention.max_bytes: while the finished segment files plus the regular
	 * files of the directory above segments_dir (the data dir: telemetry.db,
	 * its WAL, the status file) exceed this, the oldest finished file is
	 * deleted (checked every second; counted in segments_deleted). 0 = no limit. */
	uint64_t max_bytes;
	/* issue 12.3: called after a frame's content was read (compressed), before
	 * it is queued; true = the memory the runs were appended from may have read
	 * as zeros (the shm segment was truncated: a SIGBUS was absorbed): the
	 * frame is dropped, not written, and its records are counted in
	 * stats->records_source_lost. NULL: never. */
	bool (*source_lost)(void *arg);
	void *source_arg;
};

struct atel_seglog;

/* Opens the log for appending: a new file after the newest existing one.
 * @return 0 or -errno (err gets a message). */
int atel__seglog_open(struct atel_seglog **out, const struct atel_seglog_opts *o, char *err, size_t errlen);

/*
 * Appends records of `ring` at positions [first_pos, first_pos + na + nb):
 * the slots a[0..na) then b[0..nb) (two pieces when the run wraps around the
 * ring end). Whole records only. The records are not copied: the memory
 * must stay valid and unchanged until the frame holding them is compressed,
 * that is until the next atel__seglog_flush() or atel__seglog_close()
 * returns (or, sooner, atel__seglog_written_pos() covers them).
 * All or nothing for runs up to 7 frames (1.75 MiB by default): an error means
 * nothing of the run was taken. A longer run can fail part-way; then
 * atel__seglog_written_pos() after the next successful flush says how far
 * it got. A BEGIN inside the run starts its generation's own chunk.
 * @return 0 or -errno (-ENOMEM, or -EBUSY while a failed flush is pending).
 */
int atel__seglog_append(struct atel_seglog *l, uint32_t ring, uint32_t generation, uint64_t first_pos,
			const union atel_slot *a, uint64_t na, const union atel_slot *b, uint64_t nb);

/* Appends one consumer-only record (DEATH, a LOSS marker for invalid records). */
int atel__seglog_append_marker(struct atel_seglog *l, uint32_t ring, const union atel_slot *rec);

/*
 * Ends the open frame and writes every pending frame, waiting for completion.
 * @return 0 when all appended records are in the file; -errno otherwise
 * (pending frames are kept and retried by the next call).
 */
int atel__seglog_flush(struct atel_seglog *l);

/*
 * The compression level of the frames compressed from now on (the drain
 * lowers it while producers outrun it, docs/segment-format.md 6). Any level
 * zstd accepts; every reader reads every level.
 */
void atel__seglog_set_level(struct atel_seglog *l, int level);

/* Next position of `ring` not yet written to the file (release up to here). */
uint64_t atel__seglog_written_pos(const struct atel_seglog *l, uint32_t ring);

/* Periodic work: fsync on interval, rotation by age/size, retention. @return 0 or -errno. */
int atel__seglog_tick(struct atel_seglog *l, uint64_t now_ns);

/* Closes the current file and starts a new one (SIGHUP). */
int atel__seglog_reopen(struct atel_seglog *l);

/* Flushes, fsyncs, closes. NULL-safe. @return 0 or the first error. */
int atel__seglog_close(struct atel_seglog *l);

/*
 * Test hook: the next n frame writes fail with ENOSPC after writing half of
 * the frame for real (a torn partial write). The environment variable
 * ATEL_FAULT_WRITE=<n>, read by open(), does the same for whole-daemon tests.
 */
void atel__seglog_fault_writes(struct atel_seglog *l, unsigned n);

/* "io_uring" (the back end's name) or "pwritev". */
const char *atel__seglog_io_path(const struct atel_seglog *l);

/* Path of the file being written. */
const char *atel__seglog_current_file(const struct atel_seglog *l);

/*
 * Start-up recovery. Scans the newest segment file(s) of segments_dir,
 * truncates a torn tail frame, and for shm instance `instance` sets
 * next_pos[ring] to the position after the last logged record of each ring
 * (left unchanged for rings the log has never seen) and loads every ring's
 * live definitions into dec. Files of other instances are not used for
 * positions. @return 0 (also for an empty directory) or -errno.
 */
int atel__seglog_recover(const char *segments_dir, uint64_t instance, uint32_t ring_count,
			 uint64_t *next_pos, bool *seen, struct atel_decoder *dec, char *err, size_t errlen);

/* What recovery cut or set aside (hardening, issue 12: the caller logs and counts it). */
struct atel_recover_report {
	uint32_t tail_cuts;          /* torn tails cut off (files truncated) */
	uint64_t tail_bytes;         /* bytes cut */
	uint32_t torn_headers;       /* files removed: their header frame was incomplete */
	uint32_t corrupt_aside;      /* files renamed to *.corrupt: invalid header */
	char last_file[256];         /* the last file cut, removed or set aside */
	uint64_t last_offset;        /* where its tail was cut */
};
/* atel__seglog_recover, also reporting what it cut into *rep (zeroed first). */
int atel__seglog_recover_report(const char *segments_dir, uint64_t instance, uint32_t ring_count,
				uint64_t *next_pos, bool *seen, struct atel_decoder *dec,
				struct atel_recover_report *rep, char *err, size_t errlen);

#endif /* ATEL_SEGLOG_H */
