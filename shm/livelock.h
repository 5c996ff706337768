/* SPDX-License-Identifier: MIT */
/*
 * livelock.h - owner liveness by a kernel-held lock (docs/abi.md 5.1).
 *
 * A producer process holds, for each ring it owns, an OFD write lock
 * (fcntl F_OFD_SETLK) on the one byte ATEL_LIVENESS_LOCK_BASE + ring of the
 * segment file, through one open file description of its own (O_CLOEXEC).
 * The kernel drops the lock when that description's last fd is closed:
 * when the process dies (SIGKILL included) or execs, whatever its PID
 * namespace, because the lock lives on the shared inode. The consumer tests
 * the byte with F_OFD_GETLK through its own descriptor and never locks it.
 *
 * All functions are cold path (once per claim, release or consumer tick)
 * and return 0 / 1 or a negative errno. Thread-safe: fcntl is.
 */
#ifndef ATEL_LIVELOCK_H
#define ATEL_LIVELOCK_H

#include <stdint.h>

/*
 * Producer: takes the write lock on ring's byte through fd (opened O_RDWR).
 * @return 0 (also if this open file description already held it);
 * -EAGAIN if another open file description holds it; -EINVAL, -ENOLCK,
 * -EBADF...: the filesystem or fd cannot do OFD locks (fall back to pids).
 */
int atel__live_lock(int fd, uint32_t ring);

/* Producer: releases ring's byte. @return 0 or -errno. */
int atel__live_unlock(int fd, uint32_t ring);

/*
 * Consumer (or any observer): is ring's byte locked by an open file
 * description other than fd's? fd may be read-only.
 * @return 1 locked (the owner is alive), 0 not locked (the owner is gone),
 * or -errno (cannot tell: fall back to the pid check).
 */
int atel__live_held(int fd, uint32_t ring);

#endif /* ATEL_LIVELOCK_H */
