/* SPDX-License-Identifier: MIT */
/*
 * agg_internal.h - the aggregates model's own structures, shared by its two
 * files: model.c (apply, snapshot) and checkpoint.c (save, load). Nothing
 * outside consumer/aggregates/ includes it.
 */
#ifndef ATEL_AGG_INTERNAL_H
#define ATEL_AGG_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "aggregates.h"
#include "buf.h"

/* Distinct folded series remembered (to count each once); beyond this every
 * folded sample of an unremembered series counts again: bounded memory wins. */
#define FOLDED_MAX (1u << 20)
/* Metric names held: the per-name series limit cannot bound a producer that
 * invents names; samples of names beyond this count as rejected. */
#define FAMILIES_MAX 65536u
/* Regular series held over all names; beyond it new label sets fold into
 * their metric's overflow series like the per-name limit. */
#define SERIES_TOTAL_MAX (1u << 20)

struct bset {
	uint32_t n;
	double *b;
};

struct series {
	uint64_t key_hash;
	struct family *fam;
	uint32_t nlabels;
	char **keys, **values;
	bool overflow;
	double value;
	uint64_t count;
	double sum;
	uint32_t bset;          /* index into fam->bsets, UINT32_MAX if none */
	uint64_t *buckets;      /* bsets[bset].n + 1 */
	uint64_t start_ns, last_ns;
};

struct family {
	char *name;
	uint64_t name_hash;
	const char *help;       /* catalog text or NULL */
	uint8_t mtype;
	uint32_t nseries, cap;  /* regular series (the guard counts these) */
	struct series **series;
	struct series *overflow;
	uint32_t nbsets;
	struct bset *bsets;
};

struct ient {
	uint64_t h;
	struct series *s;       /* NULL: empty slot */
};

struct atel_agg {
	pthread_mutex_t lock;
	uint32_t series_limit;
	struct family **fams;
	uint32_t nfams, fams_cap;
	uint32_t *fidx;         /* name index: family number + 1, 0 empty */
	uint32_t fidx_cap;
	struct ient *idx;
	uint32_t idx_len, idx_cap;
	uint64_t *folded;       /* set of folded key hashes, 0 = empty (hash 0 stored as 1) */
	uint32_t folded_len, folded_cap;
	uint64_t overflow, type_clashes, rejected;
	uint64_t expired;       /* series removed by atel__agg_expire */
	uint32_t nseries_total;
};


/* Building blocks of the model (model.c), used by the checkpoint loader. */
uint64_t atel__agg_fnv1a(const char *s);                         /* a metric name's hash */
struct family *atel__agg_family_find(const struct atel_agg *a, const char *name, uint64_t h);
struct family *atel__agg_family_add(struct atel_agg *a, const char *name, uint8_t mtype); /* NULL: no memory */
uint32_t atel__agg_family_bset(struct family *f, uint32_t n, const double *b); /* bucket set index, UINT32_MAX: none */
int atel__agg_family_append(struct family *f, struct series *s);
struct series *atel__agg_series_new(struct family *f, uint64_t h, uint32_t nlabels, const char *const *keys,
				    const char *const *values, bool overflow, uint32_t nbounds, const double *bounds);
void atel__agg_series_free(struct series *s);
int atel__agg_idx_put(struct atel_agg *a, uint64_t h, struct series *s); /* key hash -> series */
bool atel__agg_folded_insert(struct atel_agg *a, uint64_t h);    /* true if h was not folded yet */
void atel__agg_clear(struct atel_agg *a);                        /* empty, as new (caller holds the lock) */

#endif /* ATEL_AGG_INTERNAL_H */
