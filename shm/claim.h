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
 * Owner: releases its ring (R4). Write END before calling. A ring the
 * consumer quarantined meanwhile stays QUARANTINED, marked ownerless.
 */
void atel__ring_unclaim(const struct atel_segment *seg, uint32_t ring);

/*
 * Consumer: 1 if the ring is CLAIMING/ACTIVE and its owner is dead (ESRCH, or
 * the pid now belongs to a process with another start time), 0 if alive,
 * -ENOENT if the ring is not owned.
 * A QUARANTINED ring counts as owned: 1 once its owner is dead or has
 * released it (unclaim of a quarantined ring, or quarantine of a FREE ring,
 * sets owner_pid to 0), so the consumer can reclaim it.
 */
int atel__ring_owner_dead(const struct atel_segment *seg, uint32_t ring);

/* Consumer: CAS CLAIMING/ACTIVE/QUARANTINED -> DRAINING. @return 0, or -EBUSY if the state moved. */
int atel__ring_reclaim_begin(const struct atel_segment *seg, uint32_t ring);

/* Consumer: tail = new_tail (normally head), then store-release FREE. */
void atel__ring_reclaim_end(const struct atel_segment *seg, uint32_t ring, uint64_t new_tail);

/* Consumer: marks a ring QUARANTINED (not read until its owner is gone). */
void atel__ring_quarantine(const struct atel_segment *seg, uint32_t ring);

#endif /* ATEL_CLAIM_H */
