/* SPDX-License-Identifier: MIT */
/*
 * uring.h - the segment writer's io_uring back end: a library of its own
 * (atel_log_uring) so that only the program that writes the live log, ateld,
 * links liburing; the CLI, the exporters and the tests that only read or
 * write small logs use the writer's pwritev path.
 *
 * Give it to the writer in struct atel_seglog_opts.async_io.
 */
#ifndef ATEL_URING_H
#define ATEL_URING_H

#include "log_internal.h"

extern const struct atel_seglog_io_ops atel__seglog_uring;

#endif /* ATEL_URING_H */
