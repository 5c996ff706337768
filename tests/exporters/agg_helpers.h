/* SPDX-License-Identifier: MIT */
/* Test helpers: hand-built decoded SAMPLE events for the aggregator. */
#ifndef ATEL_TEST_AGG_HELPERS_H
#define ATEL_TEST_AGG_HELPERS_H

#include <stdint.h>
#include <string.h>

#include "aggregates.h"

/* FNV-1a over name and sorted label pairs (NUL-separated): equal label sets
 * give equal hashes, as the decoder guarantees. */
static inline uint64_t th_hash(const struct atel_dec_series *s)
{
	uint64_t h = 1469598103934665603ull;
	const char *parts[1 + 2 * ATEL_LABELS_MAX];
	uint32_t n = 0;

	parts[n++] = s->name;
	for (uint32_t i = 0; i < s->nlabels; i++) {
		parts[n++] = s->keys[i];
		parts[n++] = s->values[i];
	}
	for (uint32_t p = 0; p < n; p++) {
		for (const char *c = parts[p]; *c; c++) {
			h ^= (unsigned char)*c;
			h *= 1099511628211ull;
		}
		h ^= 0xff;
		h *= 1099511628211ull;
	}
	return h;
}

/* Fills s: labels given as "k","v",... (already sorted by key), then hashes. */
static inline void th_series(struct atel_dec_series *s, uint8_t mtype, const char *name, uint32_t nlabels,
			     const char *const *kv, uint32_t nbounds, const double *bounds)
{
	memset(s, 0, sizeof(*s));
	s->mtype = mtype;
	s->name = name;
	s->nlabels = nlabels;
	for (uint32_t i = 0; i < nlabels; i++) {
		s->keys[i] = kv[2 * i];
		s->values[i] = kv[2 * i + 1];
	}
	s->nbounds = nbounds;
	s->bounds = bounds;
	s->key_hash = th_hash(s);
}

static inline void th_sample(struct atel_agg *a, const struct atel_dec_series *s, double v, int set,
			     uint64_t ts_ns)
{
	struct atel_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SAMPLE;
	ev.rec_type = ATEL_REC_SAMPLE;
	ev.ts_ns = ts_ns;
	ev.sample.series = s;
	ev.sample.value = v;
	ev.sample.set = set != 0;
	atel__agg_apply(a, &ev);
}

#endif
