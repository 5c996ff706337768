/* SPDX-License-Identifier: MIT */
/* Counting loss from a log: see lossacc.h. */
#include "lossacc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "segformat.h"

#define NCAUSE (ATEL_LOSS_SPANS + 1)

struct lt_key {
	uint64_t instance;
	uint32_t ring, cause;
	uint64_t max;
	bool used;
};

struct atel_loss_acc {
	struct lt_key *t;       /* open addressing, load <= 1/2 */
	size_t cap, n;
	uint64_t total[NCAUSE];
};

struct atel_loss_acc *atel__lossacc_new(void)
{
	return calloc(1, sizeof(struct atel_loss_acc));
}

void atel__lossacc_free(struct atel_loss_acc *a)
{
	if (a)
		free(a->t);
	free(a);
}

static size_t hash(uint64_t instance, uint32_t ring, uint32_t cause)
{
	uint64_t h = instance * 0x9e3779b97f4a7c15ull ^ ((uint64_t)ring << 8 | cause) * 0xbf58476d1ce4e5b9ull;
	return (size_t)(h ^ (h >> 31));
}

static int grow(struct atel_loss_acc *a)
{
	size_t cap = a->cap ? a->cap * 2 : 64;
	struct lt_key *t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < a->cap; i++) {
		if (!a->t[i].used)
			continue;
		size_t j = hash(a->t[i].instance, a->t[i].ring, a->t[i].cause) & (cap - 1);
		while (t[j].used)
			j = (j + 1) & (cap - 1);
		t[j] = a->t[i];
	}
	free(a->t);
	a->t = t;
	a->cap = cap;
	return 0;
}

int64_t atel__lossacc_add(struct atel_loss_acc *a, uint64_t instance, const struct atel_event *ev)
{
	struct lt_key *k;
	size_t i;
	uint64_t d;

	if (ev->kind == ATEL_EV_LOSS) {
		if (ev->loss.cause == 0 || ev->loss.cause > ATEL_LOSS_CAUSE_MAX)
			return 0;
		a->total[ev->loss.cause] += ev->loss.count;
		return (int64_t)ev->loss.count;
	}
	if (ev->kind != ATEL_EV_LOSS_TOTAL || ev->loss_total.cause >= NCAUSE)
		return 0;
	if ((a->n + 1) * 2 > a->cap && grow(a))
		return -ENOMEM;
	i = hash(instance, ev->loss_total.ring, ev->loss_total.cause) & (a->cap - 1);
	for (;; i = (i + 1) & (a->cap - 1)) {
		k = &a->t[i];
		if (!k->used || (k->instance == instance && k->ring == ev->loss_total.ring &&
				 k->cause == ev->loss_total.cause))
			break;
	}
	if (!k->used) {
		k->used = true;
		k->instance = instance;
		k->ring = ev->loss_total.ring;
		k->cause = ev->loss_total.cause;
		k->max = 0;
		a->n++;
	}
	if (ev->loss_total.total <= k->max)
		return 0;
	d = ev->loss_total.total - k->max;
	k->max = ev->loss_total.total;
	a->total[k->cause] += d;
	return (int64_t)d;
}

uint64_t atel__lossacc_total(const struct atel_loss_acc *a, uint32_t cause)
{
	return a && cause < NCAUSE ? a->total[cause] : 0;
}
