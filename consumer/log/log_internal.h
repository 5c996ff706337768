/* SPDX-License-Identifier: MIT */
/*
 * log_internal.h - what the files of the log room share and nothing outside
 * it uses: the writer's asynchronous write back end (implemented by
 * uring.c, a library of its own so that only ateld links liburing) and the
 * position scan that the writer and recovery share.
 */
#ifndef ATEL_LOG_INTERNAL_H
#define ATEL_LOG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "decode.h"
#include "seglog.h"

/* Writes all len bytes at off (pwrite until done; EINTR retried; a write of 0
 * bytes is -EIO). @return 0 or -errno. The writer's and the compactor's. */
int atel__pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* One write of a linked chain: a whole frame from one of the writer's buffers. */
struct atel_seglog_io_write {
	const void *buf;
	unsigned len;
	uint64_t off;
	int buf_index;          /* index into the buffers given to open() */
	uint64_t tag;           /* handed back with its completion */
};

/*
 * An asynchronous write back end (struct atel_seglog_io_ops, seglog.h). The
 * writer keeps the protocol (one chain in flight, offsets assigned once,
 * retries); the back end only queues and reaps.
 *   open   sets up for writes from the nbuf buffers (which it may register
 *          with the kernel). @return 0; -ENOSYS, -EPERM or -ENOMEM when
 *          unavailable here (the writer falls back to pwritev); another -errno.
 *   chain  queues n writes as one linked chain: a failed or short write
 *          cancels the ones after it. @return the writes queued (the rest
 *          are not; each queued one completes), or -errno (none queued).
 *   fsync  queues an fdatasync of fd, completed with tag. @return 0 or -errno.
 *   reap   the next completion: wait for one, or only take one that is ready.
 *          @return 1 with *tag and *res (bytes or -errno, -ECANCELED for a
 *          write cancelled by its chain), 0 if none is ready, or -errno.
 *   close  frees the back end (nothing may be in flight).
 */
struct atel_seglog_io;
struct atel_seglog_io_ops {
	const char *name;
	int (*open)(struct atel_seglog_io **out, const struct iovec *bufs, unsigned nbuf);
	int (*chain)(struct atel_seglog_io *io, int fd, const struct atel_seglog_io_write *w, unsigned n);
	int (*fsync)(struct atel_seglog_io *io, int fd, uint64_t tag);
	int (*reap)(struct atel_seglog_io *io, bool wait, uint64_t *tag, int *res);
	void (*close)(struct atel_seglog_io *io);
};

/*
 * Where each ring stands in the log of shm instance `instance`: from the
 * newest file of that instance, its ring table and the chunks after it (gen
 * may be NULL). With dec, the live definitions are loaded too; with
 * truncate, a torn tail is cut off (recovery). Used by atel__seglog_open
 * (no truncation) and atel__seglog_recover.
 */
int atel__seglog_scan(const char *dir, uint64_t instance, uint32_t ring_count, uint64_t *next_pos, bool *seen,
		      uint32_t *gen, struct atel_decoder *dec, bool truncate, char *err, size_t errlen);

#endif /* ATEL_LOG_INTERNAL_H */
