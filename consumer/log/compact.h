/* SPDX-License-Identifier: MIT */
/*
 * compact.h - rewrites a finished segment file with larger frames at a
 * higher zstd level (docs/segment-format.md section 9). The drain closes a
 * frame 5 ms after its first record so that readers see data promptly; at
 * demo rates such a frame holds a few hundred records and compresses poorly.
 * Once every reader that keeps a position in the log has moved past a file
 * (consumer/compactor.c decides that), its frames' contents are
 * concatenated into frames of `frame_bytes` and compressed again: the same
 * records, byte for byte, in the same order, under the same header.
 *
 * The new file is written beside the old one (`<name>.compact`, a name
 * readers ignore), fsynced, read back and compared (slot count and crc32 of
 * the whole content) before it replaces the old one with one
 * renameat2(RENAME_EXCHANGE); the old file keeps its modification time, so
 * age retention is unchanged. A crash leaves either file whole; a stray
 * `.compact` file is removed by atel__seg_compact_cleanup.
 */
#ifndef ATEL_COMPACT_H
#define ATEL_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct atel_compact_opts {
	int level;            /* zstd level of the new frames (1..19) */
	size_t frame_bytes;   /* decompressed bytes per new frame (a multiple of 64; 64 KiB..16 MiB) */
	/* Optional: asked once more right before the new file replaces the old
	 * one (the rewrite takes seconds); false leaves the old file as it is
	 * (result -EAGAIN, why in err). The compactor re-reads the persisted log
	 * positions here, so a reader that reached the file meanwhile (an index
	 * rebuilt from the start) keeps offsets that stay true. */
	bool (*still_ok)(void *arg, char *why, size_t whylen);
	void *arg;
};

struct atel_compact_result {
	uint64_t bytes_before, bytes_after;
	uint64_t frames_before, frames_after;
	uint64_t slots;
};

/*
 * Compacts <dir>/<seq as 16 hex>.atseg. The file must be finished (never the
 * one being written).
 * @return 1 replaced; 0 left as it is, with the reason in err (a kind of file
 * this does not rewrite: major 1 or COLUMNS without span references; the new
 * file is not smaller; the file was removed meanwhile); or -errno with err
 * set (a damaged or incomplete frame: -EBADMSG; still_ok said no: -EAGAIN;
 * I/O, memory; the old file is then untouched).
 */
int atel__seg_compact(const char *dir, uint64_t seq, const struct atel_compact_opts *o,
		      struct atel_compact_result *res, char *err, size_t errlen);

/* Removes `<16 hex>.atseg.compact` files a crash left in dir. @return how many. */
int atel__seg_compact_cleanup(const char *dir);

#endif /* ATEL_COMPACT_H */
