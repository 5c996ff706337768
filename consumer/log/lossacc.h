/* SPDX-License-Identifier: MIT */
/*
 * lossacc.h - counting loss from a log (docs/segment-format.md 4.3).
 *
 * Loss reaches the log two ways: LOSS records (type 12: the consumer's
 * INVALID markers, and in-band records of producers under ABI 1), whose
 * counts add up, and LOSS_TOTAL records, each the cumulative value of one
 * counter of one shared-memory segment, of which only the largest per
 * (segment instance, ring, cause) counts. An accumulator fed every event of
 * a log, in any order, gives each cause's loss exactly once. Used by every
 * reader that reports loss (the index, `atel replay`, tests).
 * Not thread-safe; one per reader.
 */
#ifndef ATEL_LOSSACC_H
#define ATEL_LOSSACC_H

#include <stdint.h>

#include "decode.h"

struct atel_loss_acc;

/* @return a new accumulator, or NULL (out of memory). */
struct atel_loss_acc *atel__lossacc_new(void);

/* NULL-safe. */
void atel__lossacc_free(struct atel_loss_acc *a);

/*
 * Feeds one event read from a file of shm instance `instance`
 * (atel__log_current_instance). Events other than LOSS and LOSS_TOTAL are
 * ignored. @return the increase this event brought to its cause's loss
 * (0 for a LOSS_TOTAL that repeats or lowers a known value), or -ENOMEM.
 */
int64_t atel__lossacc_add(struct atel_loss_acc *a, uint64_t instance, const struct atel_event *ev);

/* Loss of `cause` so far: records for 1..ATEL_LOSS_CAUSE_MAX, spans for ATEL_LOSS_SPANS. */
uint64_t atel__lossacc_total(const struct atel_loss_acc *a, uint32_t cause);

#endif /* ATEL_LOSSACC_H */
