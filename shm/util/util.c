/* SPDX-License-Identifier: MIT */
/* util.c - error strings, clocks and file helpers of the helpers room (util.h). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void atel__seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

uint64_t atel__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t atel__mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int atel__mkdir_p(const char *dir, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static int fsync_open(const char *path, int flags)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int atel__fsync_path(const char *path)
{
	return fsync_open(path, 0);
}

int atel__fsync_dir(const char *dir)
{
	return fsync_open(dir, O_DIRECTORY);
}

int atel__read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		atel__seterr(err, errlen, "%s: cannot stat: %s", path, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		atel__seterr(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = -EFBIG;
		atel__seterr(err, errlen, "%s: larger than %zu bytes", path, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		atel__seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			atel__seterr(err, errlen, "%s: read error: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0)
			break; /* the file shrank: what is there */
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

static int write_replace(const char *path, const void *data, size_t len, unsigned mode, bool durable)
{
	char tmp[PATH_MAX + 16], dir[PATH_MAX];
	const char *slash = strrchr(path, '/'), *p = data;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	int fd, rc = 0;

	if (dlen >= sizeof(dir))
		return -ENAMETOOLONG;
	if (slash) {
		memcpy(dir, path, dlen);
		dir[dlen ? dlen : 1] = '\0';
		if (!dlen)
			dir[0] = '/';
	} else {
		strcpy(dir, ".");
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, slash ? slash + 1 : path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, (mode_t)mode); /* exactly mode: neither a stale tmp file nor the umask decides */
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	if (!rc && durable && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	if (durable)
		(void)atel__fsync_dir(dir); /* the rename is durable once the directory is synced */
	return 0;
}

int atel__write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	return write_replace(path, data, len, mode, true);
}

int atel__write_file_replace(const char *path, const void *data, size_t len, unsigned mode)
{
	return write_replace(path, data, len, mode, false);
}

/* ------------------------------------------------------------------------ */
/* file mode policy                                                         */

static unsigned file_mode_g = 0600;

void atel__file_mode_set(unsigned mode)
{
	file_mode_g = mode & 0777;
	umask((mode_t)(0777 & ~atel__dir_mode()));
}

unsigned atel__file_mode(void)
{
	return file_mode_g;
}

unsigned atel__dir_mode(void)
{
	unsigned m = file_mode_g | 0700;

	if (m & 0040)
		m |= 0010;
	if (m & 0004)
		m |= 0001;
	return m;
}

int atel__fchmod_policy(int fd)
{
	return fchmod(fd, (mode_t)file_mode_g) < 0 ? -errno : 0;
}

int atel__chmod_policy(const char *path)
{
	return chmod(path, (mode_t)file_mode_g) < 0 && errno != ENOENT ? -errno : 0;
}
