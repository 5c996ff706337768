/* SPDX-License-Identifier: MIT */
/*
 * reader.h - the consumer's validating ring reader (docs/abi.md section 6).
 * Walks the readable window of a ring record by record, checking structure
 * (atel__rec_check) against untrusted memory; skips garbage one slot at a time
 * until a valid header appears (resynchronisation) and counts the damage.
 * Implemented in shm/reader.c. Single consumer thread per ring.
 */
#ifndef ATEL_READER_H
#define ATEL_READER_H

#include <stdint.h>

#include "ring.h"

struct atel_scan_stats {
	uint64_t records;        /* valid records delivered */
	uint64_t slots;          /* slots they occupy */
	uint64_t invalid_slots;  /* slots skipped as garbage */
	uint64_t resyncs;        /* times the reader had to resynchronise */
};

/*
 * One structurally valid record at position pos, nslots long. `rec` points
 * into ring memory, or to a contiguous private copy when the record wraps
 * around the ring end. (The implementation always delivers a private copy,
 * checked after copying, so a producer rewriting published slots cannot
 * change a length between check and use; valid only during the call.)
 * Return 0 to continue; non-zero stops the scan before this record.
 */
typedef int (*atel_scan_fn)(void *arg, uint64_t pos, const union atel_slot *rec, unsigned nslots);

/*
 * Scans positions [from, to) of `ring`. Invalid slots are skipped and counted
 * (in *st and, atomically, in the ring's drops_invalid). A record that starts
 * before `to` but runs past it is not delivered: the scan stops at its start
 * (when `final` is non-zero — the owner is dead and `to` will not grow — its
 * slots are skipped as invalid instead). *st (may be NULL) is added to, not reset.
 * @return the position up to which the ring has been consumed (deliver or
 * skipped); the caller releases up to there once the records are durable.
 */
uint64_t atel__ring_scan(const struct atel_segment *seg, uint32_t ring, uint64_t from, uint64_t to,
			 int final, atel_scan_fn fn, void *arg, struct atel_scan_stats *st);

#endif /* ATEL_READER_H */
