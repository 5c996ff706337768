/* SPDX-License-Identifier: MIT */
/*
 * segment.h - create, attach and address the shared-memory segment
 * (docs/abi.md section 1). Used by both sides: ateld creates, libatel attaches.
 *
 * Every function returns 0 or a negative errno. Error text, where asked for,
 * says what was wrong and where ("header.abi_major is 2, expected 1").
 */
#ifndef ATEL_SEGMENT_H
#define ATEL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "util.h"

struct atel_segment {
	void *base;
	size_t size;
	struct atel_shm_header *hdr;
	struct atel_ring_desc *dir;   /* ring_count entries */
	unsigned char *rings;         /* ring i at rings + i * ring_stride */
	uint32_t ring_count;
	uint32_t ring_capacity;
	uint64_t ring_stride;
	bool is_file;                 /* a path, not a shm_open name */
	bool reattached;              /* create(): an existing compatible segment was kept */
	uint32_t owner_uid;           /* the file's owner and permission bits, at attach/create */
	uint32_t mode;
	uint64_t dev, ino;            /* the file's identity at attach/create (atel__segment_reopen checks it) */
	int live_fd;                  /* libatel: its own O_RDWR descriptor for liveness locks (docs/abi.md 5.1);
				       * -1 (attach/create) none, ATEL_LIVE_FD_REOPEN: open at the next claim */
	char name[256];
	char replaced[320];           /* create(): why an existing segment was not re-attached ("" if none was there) */
};

#define ATEL_LIVE_FD_REOPEN (-2)

struct atel_segment_config {
	uint32_t ring_count;     /* default 64 */
	uint32_t ring_capacity;  /* slots, power of two; default 16384 (1 MiB per ring) */
	unsigned mode;           /* default 0600 */
};

/*
 * Consumer side. Creates the segment `name` (a shm_open name, or a file path
 * if it contains '/'), sized from cfg. If a segment with that name already
 * exists, is valid, has the same geometry, belongs to this process's user
 * and has exactly the configured mode, it is re-attached (live producers
 * keep writing, positions are kept) and seg->reattached is set; otherwise it
 * is replaced and seg->replaced says why. A segment that cannot be removed
 * (another user's file in the sticky /dev/shm) is an error naming its owner. Writes consumer pid/start, a fresh heartbeat and,
 * for a new segment, a random instance_id; then sets ATEL_SHM_READY (R5).
 * @return 0, or -errno; err (if non-NULL) gets a message.
 */
int atel__segment_create(struct atel_segment *seg, const char *name,
			 const struct atel_segment_config *cfg, char *err, size_t errlen);

/*
 * Producer side, and read-only tools (atel status). Maps an existing
 * segment and validates its header (atel__segment_check) before returning.
 * @return 0; -ENOENT if no segment exists; -EPROTO if the header is invalid.
 */
int atel__segment_attach(struct atel_segment *seg, const char *name, char *err, size_t errlen);

/* Unmaps; NULL-safe; leaves the name in place. */
void atel__segment_detach(struct atel_segment *seg);

/*
 * Producer side: may this process write its telemetry into seg? Not if the
 * segment is writable by everyone (mode o+w), nor if it belongs to another
 * user than this process's, root, or `trusted_uid` (>= 0: the uid of the
 * sidecar's user, e.g. from $ATEL_SHM_OWNER). @return 0 or -EPERM with a
 * message naming owner and mode.
 */
int atel__segment_trusted(const struct atel_segment *seg, long trusted_uid, char *err, size_t errlen);

/* Has the segment file shrunk below the mapping (someone truncated it)? @return 1, 0, or -errno. */
int atel__segment_truncated(const struct atel_segment *seg);

/* Opens the segment's name read-only (for fstat: has it shrunk?). @return an fd (O_CLOEXEC) or -errno. */
int atel__segment_open_ro(const struct atel_segment *seg);

/*
 * Opens the segment's name again (flags: O_RDONLY or O_RDWR; O_CLOEXEC is
 * added) and checks that it is still the file that was mapped (same device
 * and inode): a fresh open file description, e.g. for liveness locks
 * (shm/livelock.h). @return an fd, -ESTALE if the name now is another file,
 * or -errno.
 */
int atel__segment_reopen(const struct atel_segment *seg, int flags);

/* Removes the name (shm_unlink or unlink). @return 0 or -errno. */
int atel__segment_unlink(const char *name);

/*
 * Validates a header against the mapping size: magic, endian, major, sizes,
 * offsets, total size, reserved words (docs/abi.md 1.1 and 6).
 * @return 0 or -EPROTO with a message naming the field.
 */
int atel__segment_check(const void *base, size_t size, char *err, size_t errlen);

static inline struct atel_ring_desc *atel__seg_desc(const struct atel_segment *seg, uint32_t ring)
{
	return &seg->dir[ring];
}

static inline union atel_slot *atel__seg_slots(const struct atel_segment *seg, uint32_t ring)
{
	return (union atel_slot *)(void *)(seg->rings + (uint64_t)ring * seg->ring_stride);
}

/* atel__now_ns (CLOCK_REALTIME ns) is the helpers room's (util.h). */

/* Process start time (field 22 of /proc/<pid>/stat); 0 if the process is gone. */
uint64_t atel__proc_start_time(int pid);

/* True if `pid` is alive and started at `start` (pid-reuse safe). */
bool atel__proc_alive(int pid, uint64_t start);

/*
 * The command name of a ring's owner (its directory entry's pid, tid and
 * start time) from /proc, or "" when this PID namespace's process `pid` is
 * not that owner: gone, a reused pid, or an agent in another PID namespace,
 * whose pid names an unrelated process here (docs/abi.md 5.1).
 */
void atel__owner_comm(int pid, int tid, uint64_t start, char *out, size_t len);

#endif /* ATEL_SEGMENT_H */
