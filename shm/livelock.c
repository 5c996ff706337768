/* SPDX-License-Identifier: MIT */
/*
 * Owner liveness locks (docs/abi.md 5.1): one OFD lock per owned ring, on a
 * byte beyond the mapped data (ATEL_LIVENESS_LOCK_BASE + ring). fcntl locks
 * may lie past the end of a file; they are advisory and never touch the
 * mapping, so the hot path does not see them.
 */
#include "livelock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "atel_abi.h"

static void live_range(struct flock *fl, short type, uint32_t ring)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)(ATEL_LIVENESS_LOCK_BASE + ring);
	fl->l_len = 1;
	fl->l_pid = 0; /* must be 0 for OFD locks */
}

int atel__live_lock(int fd, uint32_t ring)
{
	struct flock fl;

	if (fd < 0)
		return -EBADF;
	live_range(&fl, F_WRLCK, ring);
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EACCES ? -EAGAIN : -errno;
}

int atel__live_unlock(int fd, uint32_t ring)
{
	struct flock fl;

	if (fd < 0)
		return -EBADF;
	live_range(&fl, F_UNLCK, ring);
	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

int atel__live_held(int fd, uint32_t ring)
{
	struct flock fl;

	if (fd < 0)
		return -EBADF;
	/* F_WRLCK asks "would a write lock conflict?": any lock of another description does */
	live_range(&fl, F_WRLCK, ring);
	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return -errno;
	return fl.l_type != F_UNLCK;
}
