/* SPDX-License-Identifier: MIT */
/*
 * uring.c - the io_uring back end of the segment writer (uring.h,
 * log_internal.h). Frame writes go out as linked chains of write SQEs from
 * the writer's buffers, registered with the kernel when it allows (fixed
 * buffers save a page walk per write); fsync is an asynchronous
 * IORING_OP_FSYNC with DATASYNC. Single-threaded, like the writer.
 */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#include "uring.h"

#define QUEUE_DEPTH 64

struct atel_seglog_io {
	struct io_uring ring;
	bool registered;
};

static int uring_open(struct atel_seglog_io **out, const struct iovec *bufs, unsigned nbuf)
{
	struct atel_seglog_io *io = calloc(1, sizeof(*io));
	int rc;

	if (!io)
		return -ENOMEM;
	rc = io_uring_queue_init(QUEUE_DEPTH, &io->ring, 0);
	if (rc < 0) {
		free(io);
		return rc;
	}
	io->registered = io_uring_register_buffers(&io->ring, bufs, nbuf) == 0;
	*out = io;
	return 0;
}

static int uring_chain(struct atel_seglog_io *io, int fd, const struct atel_seglog_io_write *w, unsigned n)
{
	struct io_uring_sqe *sqe = NULL;
	unsigned cnt = 0;
	int rc;

	for (; cnt < n; cnt++) {
		sqe = io_uring_get_sqe(&io->ring);
		if (!sqe)
			break;
		if (io->registered)
			io_uring_prep_write_fixed(sqe, fd, w[cnt].buf, w[cnt].len, w[cnt].off, w[cnt].buf_index);
		else
			io_uring_prep_write(sqe, fd, w[cnt].buf, w[cnt].len, w[cnt].off);
		io_uring_sqe_set_data64(sqe, w[cnt].tag);
		sqe->flags |= IOSQE_IO_LINK;
	}
	if (!cnt)
		return 0;
	sqe->flags &= (uint8_t)~IOSQE_IO_LINK; /* the chain ends here */
	rc = io_uring_submit(&io->ring);
	return rc < 0 ? rc : (int)cnt;
}

static int uring_fsync(struct atel_seglog_io *io, int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, tag);
	return io_uring_submit(&io->ring) == 1 ? 0 : -EIO;
}

static int uring_reap(struct atel_seglog_io *io, bool wait, uint64_t *tag, int *res)
{
	struct io_uring_cqe *cqe;
	int rc = wait ? io_uring_wait_cqe(&io->ring, &cqe) : io_uring_peek_cqe(&io->ring, &cqe);

	if (rc == -EAGAIN)
		return 0;
	if (rc < 0)
		return rc;
	*tag = io_uring_cqe_get_data64(cqe);
	*res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	return 1;
}

static void uring_close(struct atel_seglog_io *io)
{
	if (!io)
		return;
	io_uring_queue_exit(&io->ring);
	free(io);
}

const struct atel_seglog_io_ops atel__seglog_uring = {
	.name = "io_uring",
	.open = uring_open,
	.chain = uring_chain,
	.fsync = uring_fsync,
	.reap = uring_reap,
	.close = uring_close,
};
