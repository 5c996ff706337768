/* SPDX-License-Identifier: MIT */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool is_path(const char *name)
{
	return strchr(name, '/') != NULL;
}

static int open_name(const char *name, int flags, unsigned mode)
{
	char buf[300];

	if (is_path(name))
		return open(name, flags | O_CLOEXEC, mode);
	snprintf(buf, sizeof(buf), "/%s", name);
	return shm_open(buf, flags | O_CLOEXEC, mode);
}

int atel__segment_unlink(const char *name)
{
	char buf[300];

	if (is_path(name))
		return unlink(name) ? -errno : 0;
	snprintf(buf, sizeof(buf), "/%s", name);
	return shm_unlink(buf) ? -errno : 0;
}

/*
 * Reads state (field 3) and start time (field 22) of /proc/<pid>/stat.
 * @return 0, or -ENOENT if the process is gone or the file unreadable.
 */
static int proc_stat(int pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;
	char *p;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = '\0';
	/* comm may contain spaces and ')': fields start after the last ')' */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -ENOENT;
	*state = p[2];
	p++;
	/* after ')' come fields 3..; starttime is field 22 -> the 20th after comm */
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p + 1, ' ');
	}
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return -ENOENT;
	*start = v;
	return 0;
}

/* "Threads:" of /proc/<pid>/status; 0 if unreadable. */
static int proc_threads(int pid)
{
	char path[64], line[256];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

uint64_t atel__proc_start_time(int pid)
{
	char state;
	uint64_t start;

	return proc_stat(pid, &state, &start) == 0 ? start : 0;
}

void atel__owner_comm(int pid, int tid, uint64_t start, char *out, size_t len)
{
	char path[96];
	ssize_t n = -1;
	int fd;

	out[0] = '\0';
	if (pid <= 0 || len < 2 || !start || atel__proc_start_time(pid) != start)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid > 0 ? tid : pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	if (out[n - 1] == '\n')
		out[n - 1] = '\0';
	/* the start time again: the pid may have been reused while we read */
	if (atel__proc_start_time(pid) != start)
		out[0] = '\0';
}

bool atel__proc_alive(int pid, uint64_t start)
{
	char state;
	uint64_t now;

	if (pid <= 0)
		return false;
	if (kill(pid, 0) != 0 && errno == ESRCH)
		return false;
	if (proc_stat(pid, &state, &now) != 0) /* vanished between the two checks, or /proc unreadable */
		return kill(pid, 0) == 0 || errno != ESRCH;
	/*
	 * A zombie (killed, not yet reaped by its parent) writes nothing more:
	 * dead. But a process whose main thread exited while others run also
	 * shows its leader as 'Z': that one is alive while it has other threads.
	 */
	if ((state == 'Z' || state == 'X' || state == 'x') && proc_threads(pid) <= 1)
		return false;
	return now == start;
}

int atel__segment_check(const void *base, size_t size, char *err, size_t errlen)
{
	const struct atel_shm_header *h = base;
	uint64_t dir_end, want;

	if (size < sizeof(*h)) {
		atel__seterr(err, errlen, "segment is %zu bytes, smaller than the %zu-byte header", size, sizeof(*h));
		return -EPROTO;
	}
	if (h->magic != ATEL_SHM_MAGIC) {
		atel__seterr(err, errlen, "header.magic is 0x%016llx, expected 0x%016llx (\"ATELSHM1\")",
		       (unsigned long long)h->magic, (unsigned long long)ATEL_SHM_MAGIC);
		return -EPROTO;
	}
	if (h->endian != ATEL_SHM_ENDIAN) {
		atel__seterr(err, errlen, "header.endian is 0x%08x: segment written with a different byte order",
		       h->endian);
		return -EPROTO;
	}
	if (h->abi_major != ATEL_ABI_MAJOR) {
		atel__seterr(err, errlen, "header.abi_major is %u, this build speaks %u", h->abi_major, ATEL_ABI_MAJOR);
		return -EPROTO;
	}
	if (h->header_size != ATEL_HEADER_SIZE || h->record_size != ATEL_RECORD_SIZE ||
	    h->dir_entry_size != ATEL_DIR_ENTRY_SIZE || h->dir_offset != ATEL_HEADER_SIZE) {
		atel__seterr(err, errlen,
		       "header sizes (header_size %u, record_size %u, dir_entry_size %u, dir_offset %llu) "
		       "do not match ABI %u.%u",
		       h->header_size, h->record_size, h->dir_entry_size, (unsigned long long)h->dir_offset,
		       ATEL_ABI_MAJOR, ATEL_ABI_MINOR);
		return -EPROTO;
	}
	if (h->ring_count == 0 || h->ring_count > ATEL_RING_COUNT_MAX) {
		atel__seterr(err, errlen, "header.ring_count is %u, expected 1..%u", h->ring_count, ATEL_RING_COUNT_MAX);
		return -EPROTO;
	}
	if (h->ring_capacity < ATEL_RING_CAP_MIN || h->ring_capacity > ATEL_RING_CAP_MAX ||
	    (h->ring_capacity & (h->ring_capacity - 1))) {
		atel__seterr(err, errlen, "header.ring_capacity is %u, expected a power of two in %u..%u",
		       h->ring_capacity, ATEL_RING_CAP_MIN, ATEL_RING_CAP_MAX);
		return -EPROTO;
	}
	dir_end = ATEL_HEADER_SIZE + atel__dir_bytes(h->ring_count);
	if (h->rings_offset != dir_end || h->ring_stride != (uint64_t)h->ring_capacity * ATEL_RECORD_SIZE) {
		atel__seterr(err, errlen, "header.rings_offset %llu / ring_stride %llu inconsistent with ring_count %u, "
		       "ring_capacity %u", (unsigned long long)h->rings_offset,
		       (unsigned long long)h->ring_stride, h->ring_count, h->ring_capacity);
		return -EPROTO;
	}
	want = atel__segment_bytes(h->ring_count, h->ring_capacity);
	if (h->total_size != want || size < want) {
		atel__seterr(err, errlen, "header.total_size is %llu, mapping is %zu, geometry needs %llu",
		       (unsigned long long)h->total_size, size, (unsigned long long)want);
		return -EPROTO;
	}
	if (h->reserved0) {
		atel__seterr(err, errlen, "header.reserved0 is not zero");
		return -EPROTO;
	}
	for (size_t i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++) {
		if (h->reserved[i]) {
			atel__seterr(err, errlen, "header.reserved[%zu] (offset %zu) is not zero", i,
			       offsetof(struct atel_shm_header, reserved) + i * 8);
			return -EPROTO;
		}
	}
	return 0;
}

static void seg_fill(struct atel_segment *seg, void *base, size_t size, const char *name)
{
	struct atel_shm_header *h = base;

	seg->base = base;
	seg->size = size;
	seg->hdr = h;
	seg->dir = (struct atel_ring_desc *)(void *)((unsigned char *)base + h->dir_offset);
	seg->rings = (unsigned char *)base + h->rings_offset;
	seg->ring_count = h->ring_count;
	seg->ring_capacity = h->ring_capacity;
	seg->ring_stride = h->ring_stride;
	seg->is_file = is_path(name);
	seg->live_fd = -1;
	snprintf(seg->name, sizeof(seg->name), "%s", name);
}

static int map_fd(int fd, size_t size, void **out)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int atel__segment_attach(struct atel_segment *seg, const char *name, char *err, size_t errlen)
{
	struct stat st;
	void *base = NULL;
	int fd, rc;

	memset(seg, 0, sizeof(*seg));
	if (!name || !*name || strlen(name) >= sizeof(seg->name)) {
		atel__seterr(err, errlen, "segment name is empty or too long");
		return -EINVAL;
	}
	fd = open_name(name, O_RDWR, 0);
	if (fd < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "cannot open segment '%s': %s", name, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if ((size_t)st.st_size < sizeof(struct atel_shm_header)) {
		close(fd);
		atel__seterr(err, errlen, "segment '%s' is %lld bytes: not initialised", name, (long long)st.st_size);
		return -EPROTO;
	}
	rc = map_fd(fd, (size_t)st.st_size, &base);
	close(fd);
	if (rc)
		return rc;
	rc = atel__segment_check(base, (size_t)st.st_size, err, errlen);
	if (rc) {
		munmap(base, (size_t)st.st_size);
		return rc;
	}
	seg_fill(seg, base, (size_t)st.st_size, name);
	seg->owner_uid = (uint32_t)st.st_uid;
	seg->mode = (uint32_t)(st.st_mode & 07777);
	seg->dev = (uint64_t)st.st_dev;
	seg->ino = (uint64_t)st.st_ino;
	return 0;
}

int atel__segment_trusted(const struct atel_segment *seg, long trusted_uid, char *err, size_t errlen)
{
	uid_t me = geteuid();

	if (seg->mode & 0002) {
		atel__seterr(err, errlen, "segment '%s' is writable by every user (mode %04o): not trusted", seg->name,
		       seg->mode);
		return -EPERM;
	}
	if (seg->owner_uid != (uint32_t)me && seg->owner_uid != 0 &&
	    (trusted_uid < 0 || seg->owner_uid != (uint32_t)trusted_uid)) {
		atel__seterr(err, errlen, "segment '%s' belongs to uid %u, not to this user (uid %u), root or "
		       "ATEL_SHM_OWNER: not trusted", seg->name, seg->owner_uid, (unsigned)me);
		return -EPERM;
	}
	return 0;
}

int atel__segment_truncated(const struct atel_segment *seg)
{
	struct stat st;
	int fd, rc;

	if (!seg || !seg->base)
		return 0;
	fd = open_name(seg->name, O_RDONLY, 0);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) != 0 ? -errno : (uint64_t)st.st_size < (uint64_t)seg->size;
	close(fd);
	return rc;
}

int atel__segment_reopen(const struct atel_segment *seg, int flags)
{
	struct stat st;
	int fd = open_name(seg->name, flags, 0);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != seg->dev || (uint64_t)st.st_ino != seg->ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

int atel__segment_open_ro(const struct atel_segment *seg)
{
	int fd = open_name(seg->name, O_RDONLY, 0);

	return fd < 0 ? -errno : fd;
}

void atel__segment_detach(struct atel_segment *seg)
{
	if (!seg || !seg->base)
		return;
	munmap(seg->base, seg->size);
	seg->base = NULL;
	seg->hdr = NULL;
}

static void init_header(struct atel_shm_header *h, const struct atel_segment_config *cfg)
{
	uint64_t id = 0;

	memset(h, 0, ATEL_HEADER_SIZE);
	h->magic = ATEL_SHM_MAGIC;
	h->endian = ATEL_SHM_ENDIAN;
	h->abi_major = ATEL_ABI_MAJOR;
	h->abi_minor = ATEL_ABI_MINOR;
	h->header_size = ATEL_HEADER_SIZE;
	h->record_size = ATEL_RECORD_SIZE;
	h->ring_count = cfg->ring_count;
	h->ring_capacity = cfg->ring_capacity;
	h->dir_offset = ATEL_HEADER_SIZE;
	h->dir_entry_size = ATEL_DIR_ENTRY_SIZE;
	h->rings_offset = ATEL_HEADER_SIZE + atel__dir_bytes(cfg->ring_count);
	h->ring_stride = (uint64_t)cfg->ring_capacity * ATEL_RECORD_SIZE;
	h->total_size = atel__segment_bytes(cfg->ring_count, cfg->ring_capacity);
	while (id == 0) {
		if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
			id = atel__now_ns() ^ ((uint64_t)getpid() << 32);
	}
	h->instance_id = id;
}

int atel__segment_create(struct atel_segment *seg, const char *name,
			 const struct atel_segment_config *cfg_in, char *err, size_t errlen)
{
	struct atel_segment_config cfg = { 64, 16384, 0600 };
	struct atel_shm_header *h;
	struct stat st;
	uint64_t size;
	void *base = NULL;
	int fd, rc;

	if (cfg_in) {
		if (cfg_in->ring_count)
			cfg.ring_count = cfg_in->ring_count;
		if (cfg_in->ring_capacity)
			cfg.ring_capacity = cfg_in->ring_capacity;
		if (cfg_in->mode)
			cfg.mode = cfg_in->mode;
	}
	memset(seg, 0, sizeof(*seg));
	if (!name || !*name || strlen(name) >= sizeof(seg->name)) {
		atel__seterr(err, errlen, "segment name is empty or too long");
		return -EINVAL;
	}
	if (cfg.ring_count > ATEL_RING_COUNT_MAX) {
		atel__seterr(err, errlen, "shm.rings is %u, expected 1..%u", cfg.ring_count, ATEL_RING_COUNT_MAX);
		return -EINVAL;
	}
	if (cfg.ring_capacity < ATEL_RING_CAP_MIN || cfg.ring_capacity > ATEL_RING_CAP_MAX ||
	    (cfg.ring_capacity & (cfg.ring_capacity - 1))) {
		atel__seterr(err, errlen, "shm.ring_capacity is %u, expected a power of two in %u..%u",
		       cfg.ring_capacity, ATEL_RING_CAP_MIN, ATEL_RING_CAP_MAX);
		return -EINVAL;
	}
	size = atel__segment_bytes(cfg.ring_count, cfg.ring_capacity);

	/* Re-attach to a valid segment of the same geometry, ours and with the
	 * configured mode: producers keep going. Anything else is replaced. */
	fd = open_name(name, O_RDWR | O_NOFOLLOW, 0);
	if (fd < 0 && errno == ELOOP) {
		atel__seterr(err, errlen, "segment '%s' is a symbolic link: refused", name);
		return -ELOOP;
	}
	if (fd >= 0) {
		char why[256] = "";

		if (fstat(fd, &st) != 0) {
			snprintf(why, sizeof(why), "fstat failed: %s", strerror(errno));
		} else if (!S_ISREG(st.st_mode)) {
			snprintf(why, sizeof(why), "it is not a regular file");
		} else if (st.st_uid != geteuid()) {
			snprintf(why, sizeof(why), "it belongs to uid %u, not to ateld's uid %u", (unsigned)st.st_uid,
				 (unsigned)geteuid());
		} else if ((st.st_mode & 07777) != cfg.mode) {
			snprintf(why, sizeof(why), "its mode is %04o, not the configured %04o",
				 (unsigned)(st.st_mode & 07777), cfg.mode);
		} else if ((uint64_t)st.st_size != size) {
			snprintf(why, sizeof(why), "it is %lld bytes, the configured geometry needs %llu",
				 (long long)st.st_size, (unsigned long long)size);
		} else if (map_fd(fd, size, &base) != 0) {
			snprintf(why, sizeof(why), "it cannot be mapped: %s", strerror(errno));
		} else {
			char herr[200] = "";

			h = base;
			if (atel__segment_check(base, size, herr, sizeof(herr)) == 0 && h->ring_count == cfg.ring_count &&
			    h->ring_capacity == cfg.ring_capacity) {
				close(fd);
				seg_fill(seg, base, size, name);
				seg->reattached = true;
				seg->owner_uid = (uint32_t)st.st_uid;
				seg->mode = (uint32_t)(st.st_mode & 07777);
				seg->dev = (uint64_t)st.st_dev;
				seg->ino = (uint64_t)st.st_ino;
				goto own;
			}
			snprintf(why, sizeof(why), "%s", herr[0] ? herr : "its geometry differs from the configuration");
			munmap(base, size);
		}
		close(fd);
		snprintf(seg->replaced, sizeof(seg->replaced), "existing segment '%s' replaced: %s", name, why);
		rc = atel__segment_unlink(name);
		if (rc && rc != -ENOENT) {
			atel__seterr(err, errlen, "segment '%s' exists and cannot be replaced (%s): %s; remove it (as its "
			       "owner or root) or configure another shm.name", name, strerror(-rc), why);
			return rc;
		}
	}

	fd = open_name(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, cfg.mode);
	if (fd < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "cannot create segment '%s': %s", name, strerror(-rc));
		return rc;
	}
	(void)fchmod(fd, cfg.mode); /* umask must not widen or narrow the configured mode */
	rc = ftruncate(fd, (off_t)size) != 0 ? -errno : -posix_fallocate(fd, 0, (off_t)size);
	if (rc) {
		close(fd);
		atel__segment_unlink(name);
		atel__seterr(err, errlen, "cannot size segment '%s' to %llu bytes: %s (is /dev/shm large enough?)",
		       name, (unsigned long long)size, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0)
		memset(&st, 0, sizeof(st));
	rc = map_fd(fd, size, &base);
	close(fd);
	if (rc) {
		atel__segment_unlink(name);
		atel__seterr(err, errlen, "cannot map segment '%s': %s", name, strerror(-rc));
		return rc;
	}
	init_header(base, &cfg);
	seg_fill(seg, base, size, name);
	seg->owner_uid = (uint32_t)geteuid();
	seg->mode = cfg.mode;
	seg->dev = (uint64_t)st.st_dev;
	seg->ino = (uint64_t)st.st_ino;
own:
	h = seg->hdr;
	h->consumer_pid = getpid();
	h->consumer_start = atel__proc_start_time(getpid());
	atomic_store_explicit(&h->heartbeat_ns, atel__now_ns(), memory_order_relaxed);
	/* R5: everything above is visible to a producer that sees READY (A5) */
	atomic_fetch_or_explicit(&h->flags, ATEL_SHM_READY, memory_order_release);
	return 0;
}
