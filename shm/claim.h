/* SPDX-License-Identifier: MIT */
/*
 * claim.h - ring ownership (docs/abi.md sections 4 and 5): claim and release
 * by producers (no system call), dead-owner detection and reclaim by the
 * consumer. Implemented in shm/claim.c.
 */
#ifndef ATEL_CLAIM_H
#define ATEL_CLAIM_H

#include <stdint.h>

#include "segment.h"

struct atel_owner {
	int32_t pid;
	int32_t tid;
	uint64_t start;   /* process start time, atel__proc_start_time(pid), read once per process */
};

/*
 * Producer: claims a FREE ring with one CAS (R3), scanning from `hint`
 * (e.g. a hash of the tid). Writes generation+1, owner, claim_ns (the loss
 * counters are cumulative and keep their values), then store-release ACTIVE. Does not write the BEGIN record.
 * @return the ring index; -ENODEV if the segment is not READY; -EAGAIN if
 * every ring is taken (the caller counts the drop in drops_no_ring).
 */
int atel__ring_claim(const struct atel_segment *seg, const struct atel_owner *who, uint32_t hint);

/*
 * The same, holding a liveness lock (docs/abi.md 5.1): live_fd is this
 * process's own O_RDWR descriptor of the segment file (-1: none, as
 * atel__ring_claim). The lock on the ring's byte is taken after the CAS to
 * CLAIMING and before the owner fields; the entry's owner_flags say
 * ATEL_OWNER_LOCKED only if it is held. A ring whose byte another process
 * still holds (it is releasing it) is skipped. Serialised with
 * atel__ring_unclaim_live inside the process (a mutex, never on the record
 * path). @return as atel__ring_claim.
 */
int atel__ring_claim_live(const struct atel_segment *seg, const struct atel_owner *who, uint32_t hint,
			  int live_fd);

/* After fork, in the child: resets the claim/release mutex (another thread may have held it). */
void atel__live_atfork_child(void);

/*
 * Owner: releases its ring (R4). Write END before calling. A ring the
 * consumer quarantined meanwhile stays QUARANTINED, marked ownerless.
 */
void atel__ring_unclaim(const struct atel_segment *seg, uint32_t ring);

/* The same, then unlocks the ring's liveness byte through live_fd (-1: none). */
void atel__ring_unclaim_live(const struct atel_segment *seg, uint32_t ring, int live_fd);

/*
 * Consumer: 1 if the ring is CLAIMING/ACTIVE and its owner is dead (ESRCH, or
 * the pid now belongs to a process with another start time), 0 if alive,
 * -ENOENT if the ring is not owned.
 * A QUARANTINED ring counts as owned: 1 once its owner is dead or has
 * released it (unclaim of a quarantined ring, or quarantine of a FREE ring,
 * sets owner_pid to 0), so the consumer can reclaim it.
 */
int atel__ring_owner_dead(const struct atel_segment *seg, uint32_t ring);

/*
 * The same, with the liveness lock (docs/abi.md 5.1): for an entry whose
 * owner_flags say ATEL_OWNER_LOCKED the owner is alive exactly while some
 * process holds the ring's lock byte, tested through live_fd (the
 * consumer's own descriptor of the segment; it never locks). Entries
 * without the flag (producers of ABI 2.0, filesystems without OFD locks),
 * and live_fd -1, use the pid check.
 */
int atel__ring_owner_dead_live(const struct atel_segment *seg, uint32_t ring, int live_fd);

/*
 * The judgement itself, on owner fields the caller read (the consumer keeps
 * a snapshot per generation): 1 gone, 0 alive. pid <= 0 is "gone".
 */
int atel__owner_gone(int32_t pid, uint64_t start, uint32_t owner_flags, int live_fd, uint32_t ring);

/* Consumer: CAS CLAIMING/ACTIVE/QUARANTINED -> DRAINING. @return 0, or -EBUSY if the state moved. */
int atel__ring_reclaim_begin(const struct atel_segment *seg, uint32_t ring);

/* Consumer: tail = new_tail (normally head), then store-release FREE. */
void atel__ring_reclaim_end(const struct atel_segment *seg, uint32_t ring, uint64_t new_tail);

/* Consumer: marks a ring QUARANTINED (not read until its owner is gone). */
void atel__ring_quarantine(const struct atel_segment *seg, uint32_t ring);

#endif /* ATEL_CLAIM_H */
