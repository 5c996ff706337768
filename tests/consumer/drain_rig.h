/* SPDX-License-Identifier: MIT */
/*
 * drain_rig.h - a real drain (consumer/drain.c) over a small file-backed
 * segment in a scratch directory (tmpfs when /dev/shm exists), driven step
 * by step on the calling thread (atel__drain_step): what fuzz_drain.c and
 * test_drain_hostile.c feed hostile ring contents through. Header-only.
 */
#ifndef ATEL_DRAIN_RIG_H
#define ATEL_DRAIN_RIG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "ring.h"
#include "segment.h"
#include "util.h"

struct rig {
	struct atel_config cfg;
	struct atel_daemon d;
	struct atel_drain *dr;
	const struct atel_segment *seg;
	char dir[256], shm[320];
};

static inline void rig_rmrf(const char *dir)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0) {
		/* best effort */
	}
}

/* @return 0 or -errno (err says what). */
static inline int rig_open(struct rig *r, uint32_t rings, uint32_t cap, char *err, size_t errlen)
{
	struct atel_drain_opts o = { 0 };
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	int rc;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "%s/atel-rig-XXXXXX", base);
	if (!mkdtemp(r->dir)) {
		snprintf(err, errlen, "mkdtemp %s failed", r->dir);
		return -1;
	}
	snprintf(r->shm, sizeof(r->shm), "%s/seg", r->dir);
	atel__config_defaults(&r->cfg);
	free(r->cfg.data_dir);
	r->cfg.data_dir = strdup(r->dir);
	free(r->cfg.log_level);
	r->cfg.log_level = strdup(getenv("ATEL_RIG_LOG") ? getenv("ATEL_RIG_LOG") : "error");
	free(r->cfg.storage.io);
	r->cfg.storage.io = strdup("pwritev");
	r->cfg.shm.rings = rings;
	r->cfg.shm.ring_capacity = cap;
	r->cfg.drain.batch_records = 256;
	if ((rc = atel__daemon_init(&r->d, &r->cfg))) {
		snprintf(err, errlen, "daemon_init: %d", rc);
		return rc;
	}
	o.shm_name = r->shm;
	if ((rc = atel__drain_open(&r->dr, &r->d, &o, err, errlen)))
		return rc;
	r->seg = atel__drain_segment(r->dr);
	return 0;
}

static inline void rig_close(struct rig *r)
{
	atel__drain_close(r->dr);
	r->dr = NULL;
	atel__daemon_fini(&r->d);
	atel__config_free(&r->cfg);
	if (r->dir[0])
		rig_rmrf(r->dir);
}

/* Writes n slots at ring r's head (no capacity check: the caller may overrun on purpose) and publishes them. */
static inline void rig_put(struct rig *r, uint32_t ring, const union atel_slot *slots, uint64_t n)
{
	struct atel_ring_desc *d = atel__seg_desc(r->seg, ring);
	uint64_t head = atomic_load_explicit(&d->head, memory_order_relaxed);

	for (uint64_t i = 0; i < n; i++)
		atel__seg_slots(r->seg, ring)[(head + i) & ((uint64_t)r->seg->ring_capacity - 1)] = slots[i];
	atomic_store_explicit(&d->head, head + n, memory_order_release);
}

static inline uint64_t rig_stat(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

#endif /* ATEL_DRAIN_RIG_H */
