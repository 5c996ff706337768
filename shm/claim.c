/* SPDX-License-Identifier: MIT */
/*
 * Ring ownership (docs/abi.md sections 4 and 5).
 *
 * The owner fields of a directory entry (generation, owner_pid, owner_tid,
 * owner_start, claim_ns) are plain integers in the ABI, but the consumer reads
 * them while a claimer may be writing them (state CLAIMING). They are accessed
 * with relaxed __atomic builtins so that such a read is a benign, well-defined
 * race (and ThreadSanitizer agrees); ordering still comes from the state word.
 */
#include "claim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "livelock.h"
#include "segment.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/*
 * Serialises, within this process, "take a ring and lock its byte" with
 * "free a ring and unlock its byte": all threads share one open file
 * description, so without it a thread releasing ring r (FREE, then unlock)
 * could drop the lock another thread of ours had just taken on r again.
 * Held for one claim's directory scan (a CAS and an fcntl per ring it tries)
 * or one release (a CAS and an fcntl); never on the record path.
 */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;

void atel__live_atfork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	live_mu = fresh;
}

/* One pass over the directory; *busy counts rings whose lock byte another process still held. */
static int claim_scan(const struct atel_segment *seg, const struct atel_owner *who, uint32_t hint, int live_fd,
		      unsigned *busy)
{
	uint32_t n = seg->ring_count;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t r = (uint32_t)(((uint64_t)hint + i) % n);
		struct atel_ring_desc *d = atel__seg_desc(seg, r);
		uint32_t s = atomic_load_explicit(&d->state, memory_order_relaxed);
		uint32_t claiming = ATEL_RING_CLAIMING;
		uint32_t flags = 0;

		if (s != ATEL_RING_FREE)
			continue;
		/* R3 step 1 / A4: acquire pairs with the previous owner's release of FREE */
		if (!atomic_compare_exchange_strong_explicit(&d->state, &s, ATEL_RING_CLAIMING,
							     memory_order_acq_rel, memory_order_relaxed))
			continue;
		/*
		 * L1 (docs/abi.md 5.1): the liveness lock before the owner fields
		 * and the flag that announces it. -EAGAIN: the previous owner (in
		 * another process) has stored FREE and not yet unlocked; leave the
		 * ring to it for now. Any other error: no OFD locks here, the claim
		 * goes on without the flag (the consumer uses the pid, as in 2.0).
		 */
		if (live_fd >= 0) {
			int lr = atel__live_lock(live_fd, r);

			if (lr == -EAGAIN) {
				(*busy)++;
				/* back to FREE; if the consumer took it meanwhile (DRAINING) it frees it itself */
				(void)atomic_compare_exchange_strong_explicit(&d->state, &claiming, ATEL_RING_FREE,
									      memory_order_release, memory_order_relaxed);
				continue;
			}
			if (lr == 0)
				flags = ATEL_OWNER_LOCKED;
		}
		ST(&d->generation, LD(&d->generation) + 1);
		ST(&d->owner_pid, who->pid);
		ST(&d->owner_tid, who->tid);
		ST(&d->owner_start, who->start);
		ST(&d->claim_ns, atel__now_ns());
		ST(&d->owner_flags, flags);
		/* the loss counters continue the previous owners' (cumulative, docs/abi.md 1.2) */
		/*
		 * R3: publish the owner fields. A CAS rather than a plain store: if
		 * the consumer judged the CLAIMING entry dead meanwhile (it may have
		 * read the previous, dead owner's fields before ours landed) and
		 * moved it to DRAINING, the ring is not ours; keep scanning.
		 */
		if (!atomic_compare_exchange_strong_explicit(&d->state, &claiming, ATEL_RING_ACTIVE,
							     memory_order_release, memory_order_relaxed)) {
			if (flags)
				(void)atel__live_unlock(live_fd, r);
			continue;
		}
		atomic_fetch_add_explicit(&seg->hdr->claims_total, 1, memory_order_relaxed);
		return (int)r;
	}
	return -EAGAIN;
}

int atel__ring_claim_live(const struct atel_segment *seg, const struct atel_owner *who, uint32_t hint, int live_fd)
{
	unsigned busy = 0;
	int rc;

	/* A5: pairs with the consumer's store-release of READY (R5) */
	if (!(atomic_load_explicit(&seg->hdr->flags, memory_order_acquire) & ATEL_SHM_READY))
		return -ENODEV;
	if (live_fd < 0)
		return claim_scan(seg, who, hint, -1, &busy);
	pthread_mutex_lock(&live_mu);
	rc = claim_scan(seg, who, hint, live_fd, &busy);
	if (rc == -EAGAIN && busy) {
		/* only rings still being released by another process were free: one more pass */
		sched_yield();
		busy = 0;
		rc = claim_scan(seg, who, hint, live_fd, &busy);
	}
	pthread_mutex_unlock(&live_mu);
	return rc;
}

int atel__ring_claim(const struct atel_segment *seg, const struct atel_owner *who, uint32_t hint)
{
	return atel__ring_claim_live(seg, who, hint, -1);
}

/* R4, then (L2) the liveness lock; see atel__ring_unclaim_live. */
static void unclaim(const struct atel_segment *seg, uint32_t ring)
{
	struct atel_ring_desc *d;
	uint32_t s = ATEL_RING_ACTIVE;

	d = atel__seg_desc(seg, ring);
	/* R4: the END record and head (already released) precede FREE */
	if (atomic_compare_exchange_strong_explicit(&d->state, &s, ATEL_RING_FREE, memory_order_release,
						    memory_order_relaxed))
		return;
	/*
	 * The consumer quarantined the ring: it stays QUARANTINED (its positions
	 * are not trustworthy), but say that the owner is gone so the consumer
	 * reclaims it now instead of at process exit.
	 */
	if (s == ATEL_RING_QUARANTINED)
		__atomic_store_n(&d->owner_pid, 0, __ATOMIC_RELEASE);
}

void atel__ring_unclaim_live(const struct atel_segment *seg, uint32_t ring, int live_fd)
{
	if (ring >= seg->ring_count)
		return;
	if (live_fd < 0) {
		unclaim(seg, ring);
		return;
	}
	/*
	 * L2: FREE (or ownerless) first, then unlock: the consumer never sees
	 * a flagged ACTIVE ring without its lock while the owner lives. A
	 * claimer in another process that meets the lock in between skips
	 * the ring (L1).
	 */
	pthread_mutex_lock(&live_mu);
	unclaim(seg, ring);
	(void)atel__live_unlock(live_fd, ring);
	pthread_mutex_unlock(&live_mu);
}

void atel__ring_unclaim(const struct atel_segment *seg, uint32_t ring)
{
	atel__ring_unclaim_live(seg, ring, -1);
}

int atel__owner_gone(int32_t pid, uint64_t start, uint32_t owner_flags, int live_fd, uint32_t ring)
{
	if (pid <= 0)
		return 1;
	if ((owner_flags & ATEL_OWNER_LOCKED) && live_fd >= 0) {
		int h = atel__live_held(live_fd, ring);

		/* the lock is authoritative: a pid from another PID namespace proves nothing */
		if (h >= 0)
			return h ? 0 : 1;
	}
	return atel__proc_alive(pid, start) ? 0 : 1;
}

int atel__ring_owner_dead(const struct atel_segment *seg, uint32_t ring)
{
	return atel__ring_owner_dead_live(seg, ring, -1);
}

int atel__ring_owner_dead_live(const struct atel_segment *seg, uint32_t ring, int live_fd)
{
	struct atel_ring_desc *d;
	uint32_t s;
	int32_t pid;

	if (ring >= seg->ring_count)
		return -ENOENT;
	d = atel__seg_desc(seg, ring);
	/* A3: pairs with the claimer's release of ACTIVE (R3) */
	s = atomic_load_explicit(&d->state, memory_order_acquire);
	if (s != ATEL_RING_CLAIMING && s != ATEL_RING_ACTIVE && s != ATEL_RING_QUARANTINED)
		return -ENOENT;
	pid = __atomic_load_n(&d->owner_pid, __ATOMIC_ACQUIRE);
	/* pid <= 0: never set, garbage, or released while quarantined */
	return atel__owner_gone(pid, LD(&d->owner_start), LD(&d->owner_flags), live_fd, ring);
}

int atel__ring_reclaim_begin(const struct atel_segment *seg, uint32_t ring)
{
	struct atel_ring_desc *d;
	uint32_t s;

	if (ring >= seg->ring_count)
		return -EBUSY;
	d = atel__seg_desc(seg, ring);
	s = atomic_load_explicit(&d->state, memory_order_acquire);
	if (s != ATEL_RING_CLAIMING && s != ATEL_RING_ACTIVE && s != ATEL_RING_QUARANTINED)
		return -EBUSY;
	if (!atomic_compare_exchange_strong_explicit(&d->state, &s, ATEL_RING_DRAINING, memory_order_acq_rel,
						     memory_order_acquire))
		return -EBUSY;
	return 0;
}

void atel__ring_reclaim_end(const struct atel_segment *seg, uint32_t ring, uint64_t new_tail)
{
	struct atel_ring_desc *d;

	if (ring >= seg->ring_count)
		return;
	d = atel__seg_desc(seg, ring);
	d->cached_head = new_tail;
	/* R2 for the next owner (its writer_init loads tail with acquire) */
	atomic_store_explicit(&d->tail, new_tail, memory_order_release);
	/* R4 (consumer side): the reset tail precedes FREE for the next claimer's CAS */
	atomic_store_explicit(&d->state, ATEL_RING_FREE, memory_order_release);
}

void atel__ring_quarantine(const struct atel_segment *seg, uint32_t ring)
{
	struct atel_ring_desc *d;
	uint32_t s;

	if (ring >= seg->ring_count)
		return;
	d = atel__seg_desc(seg, ring);
	s = atomic_load_explicit(&d->state, memory_order_relaxed);
	/* DRAINING belongs to the consumer's own reclaim; QUARANTINED is done */
	while (s != ATEL_RING_QUARANTINED && s != ATEL_RING_DRAINING) {
		if (atomic_compare_exchange_weak_explicit(&d->state, &s, ATEL_RING_QUARANTINED,
							  memory_order_acq_rel, memory_order_relaxed)) {
			/*
			 * A free ring has no owner to wait for: mark it ownerless so
			 * atel__ring_owner_dead() lets the consumer reclaim it at once.
			 * (Nobody can claim it meanwhile: it is no longer FREE.)
			 */
			if (s == ATEL_RING_FREE)
				__atomic_store_n(&d->owner_pid, 0, __ATOMIC_RELEASE);
			break;
		}
	}
}
