/* SPDX-License-Identifier: MIT */
/*
 * decode.c - resolves raw records into events against per-ring dictionaries.
 *
 * Each ring has one dictionary, valid for the ring's current generation: a
 * BEGIN record (or atel__decoder_reset_ring) empties it. Strings, series and
 * bounds live in dense arrays indexed by id (ids are dense per producer
 * process, <= ATEL_ID_MAX), so a lookup on the hot path is one bounds check
 * and one load. Every record is checked completely before anything is
 * changed, so a rejected record leaves the decoder exactly as it was.
 *
 * Redefining an id in the same generation with identical content is a no-op
 * (producers re-emit definitions after a refused write); with different
 * content it is rejected, which keeps every pointer handed out stable until
 * the generation ends.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "ring.h"
#include "segformat.h"

/* Per-ring memory a hostile producer can make us allocate (arrays + strings). */
#define RING_BUDGET (64ull << 20)

/*
 * Definition slots of all rings together. Every new segment file's header
 * repeats each live definition (docs/segment-format.md 2.3), and a reader
 * takes a header of at most ATEL_SEG_HEADER_FRAME_MAX decompressed bytes: a
 * decoder that held more would make the writer start files whose header no
 * reader can read, every record of them then undecodable. So past this many
 * slots a new definition is refused (counted invalid and said, like the
 * per-ring budget), whatever ring it comes from. Room is left for a CHUNK
 * and a BEGIN per ring and the ring table (up to 65,536 rings).
 */
#define DEF_SLOTS_MAX ((uint64_t)ATEL_SEG_HEADER_FRAME_MAX / ATEL_RECORD_SIZE - 3u * 65536u)

struct dstr {
	char *s;         /* NUL-terminated; NULL: undefined */
	uint32_t len;
};

struct dbounds {
	double *v;       /* NULL: undefined */
	uint32_t count;
};

struct dseries {
	struct atel_dec_series pub;
	uint32_t name_id, bounds_id;
	uint32_t key_ids[ATEL_LABELS_MAX], val_ids[ATEL_LABELS_MAX]; /* sorted by key */
};

/* The series of a struct atel_dec_series pointer from the ring's table. */
static inline struct dseries *dser(const struct atel_dec_series *p)
{
	return (struct dseries *)(void *)((char *)(uintptr_t)p - offsetof(struct dseries, pub));
}

struct ring_dict {
	/* first: have_begin, generation, pid, tid, comm and the series table by
	 * id (pointers to dseries.pub), read by the sample fast path (decode.h) */
	struct atel_dec_ring f;
	union atel_slot begin;   /* the BEGIN record, re-emitted into new files */
	uint64_t def_slots;      /* slots of its definitions (counted in the decoder's def_slots) */
	struct dstr *str;
	uint32_t str_cap;
	struct dbounds *bnd;
	uint32_t bnd_cap;
	uint64_t mem;
};

struct atel_decoder {
	struct ring_dict **rings;
	uint32_t nrings;
	uint64_t def_slots;      /* definition slots of all rings ... */
	uint64_t def_slots_max;  /* ... at most this (DEF_SLOTS_MAX; tests lower it) */
	char scratch[ATEL_STR_MAX + 1];
	uint64_t buckets[ATEL_BOUNDS_MAX + 1]; /* a HISTFOLD's bucket counts */
};

struct atel_decoder *atel__decoder_new(void)
{
	struct atel_decoder *d = calloc(1, sizeof(struct atel_decoder));

	if (d)
		d->def_slots_max = DEF_SLOTS_MAX;
	return d;
}

void atel__decoder_set_def_slots_max(struct atel_decoder *d, uint64_t n)
{
	d->def_slots_max = n;
}

static void ring_clear(struct atel_decoder *d, struct ring_dict *r)
{
	d->def_slots -= r->def_slots;
	for (uint32_t i = 0; i < r->str_cap; i++)
		free(r->str[i].s);
	for (uint32_t i = 0; i < r->f.ser_cap; i++)
		if (r->f.ser[i])
			free(dser(r->f.ser[i]));
	for (uint32_t i = 0; i < r->bnd_cap; i++)
		free(r->bnd[i].v);
	free(r->str);
	free(r->f.ser);
	free(r->bnd);
	memset(r, 0, sizeof(*r));
}

void atel__decoder_free(struct atel_decoder *d)
{
	if (!d)
		return;
	for (uint32_t i = 0; i < d->nrings; i++) {
		if (d->rings[i]) {
			ring_clear(d, d->rings[i]);
			free(d->rings[i]);
		}
	}
	free(d->rings);
	free(d);
}

void atel__decoder_reset_ring(struct atel_decoder *d, uint32_t ring)
{
	if (d && ring < d->nrings && d->rings[ring])
		ring_clear(d, d->rings[ring]);
}

int atel__log_rec_check(const union atel_slot *h, uint64_t avail, const char **why)
{
	if (avail == 0)
		return -EAGAIN;
	if (h->h.type == ATEL_LOGREC_DEATH || h->h.type == ATEL_LOGREC_LOSS_TOTAL) {
		if (h->h.reserved || h->h.cont) {
			if (why)
				*why = "consumer record has a non-zero reserved byte or continuation count";
			return -EINVAL;
		}
		return 1;
	}
	if (h->h.type == ATEL_LOGREC_CHUNK) {
		if (why)
			*why = "chunk record inside a chunk's records";
		return -EINVAL;
	}
	return atel__rec_check(h, avail, why);
}

/* ------------------------------------------------------------------------ */
/* dictionary lookups (hot path)                                            */

static inline struct ring_dict *ring_get(const struct atel_decoder *d, uint32_t ring)
{
	return ring < d->nrings ? d->rings[ring] : NULL;
}

const struct atel_dec_ring *atel__decoder_ring(const struct atel_decoder *d, uint32_t ring)
{
	const struct ring_dict *r = ring_get(d, ring);
	return r ? &r->f : NULL;
}

static inline const struct dstr *str_get(const struct ring_dict *r, uint32_t id)
{
	if (!r || id >= r->str_cap || !r->str[id].s)
		return NULL;
	return &r->str[id];
}

static inline const struct dseries *ser_get(const struct ring_dict *r, uint32_t id)
{
	if (!r || id >= r->f.ser_cap || !r->f.ser[id])
		return NULL;
	return dser(r->f.ser[id]);
}

static inline const struct dbounds *bnd_get(const struct ring_dict *r, uint32_t id)
{
	if (!r || id >= r->bnd_cap || !r->bnd[id].v)
		return NULL;
	return &r->bnd[id];
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */

/* Copies len bytes that start in the header slot at `inl` (inline_cap bytes
 * there) and continue in the continuation slots rec[1..]. */
static void gather(const union atel_slot *rec, const void *inl, unsigned inline_cap, unsigned len, char *out)
{
	unsigned first = len < inline_cap ? len : inline_cap;
	memcpy(out, inl, first);
	if (len > first)
		memcpy(out + first, rec[1].raw, len - first);
	out[len] = '\0';
}

static struct atel_label_pair pair_at(const union atel_slot *rec, unsigned i)
{
	struct atel_label_pair p;
	if (i < ATEL_SERIES_INLINE_PAIRS) {
		p = rec[0].seriesdef.pairs[i];
	} else {
		unsigned j = i - ATEL_SERIES_INLINE_PAIRS;
		memcpy(&p, rec[1 + j / ATEL_PAIRS_PER_CONT].raw + (j % ATEL_PAIRS_PER_CONT) * sizeof(p), sizeof(p));
	}
	return p;
}

static double bound_at(const union atel_slot *rec, unsigned i)
{
	double v;
	if (i < ATEL_BOUNDS_INLINE) {
		v = rec[0].bounds.bounds[i];
	} else {
		unsigned j = i - ATEL_BOUNDS_INLINE;
		memcpy(&v, rec[1 + j / ATEL_BOUNDS_PER_CONT].raw + (j % ATEL_BOUNDS_PER_CONT) * sizeof(v), sizeof(v));
	}
	return v;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* Grows a dense array so that index id exists; counts the bytes in r->mem.
 * @return 0, -ENOMEM, or -E2BIG when the ring's budget is exhausted. */
static int grow(struct ring_dict *r, void **arr, uint32_t *cap, size_t elem, uint32_t id)
{
	uint32_t ncap;
	void *n;

	if (id < *cap)
		return 0;
	ncap = *cap ? *cap : 64;
	while (ncap <= id)
		ncap = ncap > ATEL_ID_MAX / 2 ? ATEL_ID_MAX + 1 : ncap * 2;
	if (r->mem + (uint64_t)(ncap - *cap) * elem > RING_BUDGET)
		return -E2BIG;
	n = realloc(*arr, (size_t)ncap * elem);
	if (!n)
		return -ENOMEM;
	memset((char *)n + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
	r->mem += (uint64_t)(ncap - *cap) * elem;
	*arr = n;
	*cap = ncap;
	return 0;
}

static struct ring_dict *ring_make(struct atel_decoder *d, uint32_t ring)
{
	if (ring >= d->nrings) {
		uint32_t n = d->nrings ? d->nrings : 64;
		struct ring_dict **nr;
		while (n <= ring)
			n *= 2;
		nr = realloc(d->rings, (size_t)n * sizeof(*nr));
		if (!nr)
			return NULL;
		memset(nr + d->nrings, 0, (size_t)(n - d->nrings) * sizeof(*nr));
		d->rings = nr;
		d->nrings = n;
	}
	if (!d->rings[ring])
		d->rings[ring] = calloc(1, sizeof(struct ring_dict));
	return d->rings[ring];
}

/* FNV-1a 64 over name, 0x00, then key 0x00 value 0x00 per pair sorted by key
 * (docs/segment-format.md, "Series identity"). */
static uint64_t fnv_bytes(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ull;
	}
	h *= 0x100000001b3ull; /* the 0x00 separator: xor with 0, then multiply */
	return h;
}

static uint64_t series_hash(const char *name, uint32_t n, const char *const *keys, const char *const *values)
{
	uint64_t h = 0xcbf29ce484222325ull;
	h = fnv_bytes(h, name, strlen(name));
	for (uint32_t i = 0; i < n; i++) {
		h = fnv_bytes(h, keys[i], strlen(keys[i]));
		h = fnv_bytes(h, values[i], strlen(values[i]));
	}
	return h;
}

/* ------------------------------------------------------------------------ */
/* definitions                                                              */

#define INVALID(msg)                                                                               \
	do {                                                                                       \
		why = (msg);                                                                       \
		goto invalid;                                                                      \
	} while (0)

static int def_string(struct atel_decoder *d, struct ring_dict *r, const union atel_slot *rec, const char **why)
{
	uint32_t id = rec->h.id, len = rec->strdef.len;
	char *copy;
	int rc;

	gather(rec, rec->strdef.bytes, ATEL_STRDEF_INLINE, len, d->scratch);
	if (memchr(d->scratch, '\0', len)) {
		*why = "string definition contains a NUL byte";
		return -EINVAL;
	}
	if (r && id < r->str_cap && r->str[id].s) {
		if (r->str[id].len == len && !memcmp(r->str[id].s, d->scratch, len))
			return 0;
		*why = "string id redefined with different content in the same generation";
		return -EINVAL;
	}
	rc = grow(r, (void **)&r->str, &r->str_cap, sizeof(*r->str), id);
	if (rc == 0 && r->mem + len + 1 > RING_BUDGET)
		rc = -E2BIG;
	if (rc) {
		*why = rc == -E2BIG ? "ring's definitions exceed the decoder's 64 MiB budget"
				    : "out of memory for a string definition";
		return -EINVAL;
	}
	copy = malloc(len + 1);
	if (!copy) {
		*why = "out of memory for a string definition";
		return -EINVAL;
	}
	memcpy(copy, d->scratch, len + 1);
	r->str[id].s = copy;
	r->str[id].len = len;
	r->mem += len + 1;
	return 0;
}

static int def_bounds(struct ring_dict *r, const union atel_slot *rec, const char **why)
{
	uint32_t id = rec->h.id, n = rec->bounds.count;
	double v[ATEL_BOUNDS_MAX];
	double *copy;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		v[i] = bound_at(rec, i);
		if (!isfinite(v[i])) {
			*why = "histogram bound is not finite";
			return -EINVAL;
		}
		if (i && !(v[i] > v[i - 1])) {
			*why = "histogram bounds are not strictly increasing";
			return -EINVAL;
		}
	}
	if (id < r->bnd_cap && r->bnd[id].v) {
		if (r->bnd[id].count == n && !memcmp(r->bnd[id].v, v, n * sizeof(double)))
			return 0;
		*why = "bounds id redefined with different content in the same generation";
		return -EINVAL;
	}
	rc = grow(r, (void **)&r->bnd, &r->bnd_cap, sizeof(*r->bnd), id);
	if (rc == 0 && r->mem + n * sizeof(double) > RING_BUDGET)
		rc = -E2BIG;
	if (rc || !(copy = malloc(n * sizeof(double)))) {
		*why = rc == -E2BIG ? "ring's definitions exceed the decoder's 64 MiB budget"
				    : "out of memory for a bounds definition";
		return -EINVAL;
	}
	memcpy(copy, v, n * sizeof(double));
	r->bnd[id].v = copy;
	r->bnd[id].count = n;
	r->mem += n * sizeof(double);
	return 0;
}

static int def_series(struct ring_dict *r, const union atel_slot *rec, const char **why)
{
	const struct atel_rec_seriesdef *sd = &rec->seriesdef;
	uint32_t id = rec->h.id, n = sd->nlabels;
	struct atel_label_pair pairs[ATEL_LABELS_MAX];
	const struct dstr *name;
	const struct dbounds *b = NULL;
	struct dseries *s;
	int rc;

	name = str_get(r, sd->name_id);
	if (!name) {
		*why = sd->name_id ? "series name id is not defined in this generation" : "series name id is 0";
		return -EINVAL;
	}
	if (sd->mtype == ATEL_MT_HISTOGRAM) {
		b = bnd_get(r, sd->bounds_id);
		if (!b) {
			*why = sd->bounds_id ? "histogram bounds id is not defined in this generation"
					     : "histogram series has no bounds id";
			return -EINVAL;
		}
	} else if (sd->bounds_id) {
		*why = "bounds id set on a counter or gauge series";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		pairs[i] = pair_at(rec, i);
		if (!str_get(r, pairs[i].key_id)) {
			*why = pairs[i].key_id ? "label key id is not defined in this generation" : "label key id is 0";
			return -EINVAL;
		}
		if (pairs[i].value_id && !str_get(r, pairs[i].value_id)) {
			*why = "label value id is not defined in this generation";
			return -EINVAL;
		}
	}
	/* insertion sort by key string; at most 16 pairs */
	for (uint32_t i = 1; i < n; i++) {
		struct atel_label_pair p = pairs[i];
		const char *k = r->str[p.key_id].s;
		uint32_t j = i;
		while (j > 0 && strcmp(r->str[pairs[j - 1].key_id].s, k) > 0) {
			pairs[j] = pairs[j - 1];
			j--;
		}
		pairs[j] = p;
	}
	for (uint32_t i = 1; i < n; i++) {
		if (!strcmp(r->str[pairs[i - 1].key_id].s, r->str[pairs[i].key_id].s)) {
			*why = "series has the same label key twice";
			return -EINVAL;
		}
	}
	if (id < r->f.ser_cap && r->f.ser[id]) {
		const struct dseries *o = dser(r->f.ser[id]);
		bool same = o->pub.mtype == sd->mtype && o->name_id == sd->name_id &&
			    o->bounds_id == sd->bounds_id && o->pub.nlabels == n;
		for (uint32_t i = 0; same && i < n; i++)
			same = o->key_ids[i] == pairs[i].key_id && o->val_ids[i] == pairs[i].value_id;
		if (same)
			return 0;
		*why = "series id redefined with different content in the same generation";
		return -EINVAL;
	}
	rc = grow(r, (void **)&r->f.ser, &r->f.ser_cap, sizeof(*r->f.ser), id);
	if (rc == 0 && r->mem + sizeof(*s) > RING_BUDGET)
		rc = -E2BIG;
	if (rc || !(s = calloc(1, sizeof(*s)))) {
		*why = rc == -E2BIG ? "ring's definitions exceed the decoder's 64 MiB budget"
				    : "out of memory for a series definition";
		return -EINVAL;
	}
	s->pub.id = id;
	s->pub.mtype = sd->mtype;
	s->pub.name = name->s;
	s->pub.nlabels = n;
	s->name_id = sd->name_id;
	s->bounds_id = sd->bounds_id;
	for (uint32_t i = 0; i < n; i++) {
		s->key_ids[i] = pairs[i].key_id;
		s->val_ids[i] = pairs[i].value_id;
		s->pub.keys[i] = r->str[pairs[i].key_id].s;
		s->pub.values[i] = pairs[i].value_id ? r->str[pairs[i].value_id].s : "";
	}
	if (b) {
		s->pub.nbounds = b->count;
		s->pub.bounds = b->v;
	}
	s->pub.key_hash = series_hash(s->pub.name, n, s->pub.keys, s->pub.values);
	r->f.ser[id] = &s->pub;
	r->mem += sizeof(*s);
	return 0;
}

/* Is rec's id already defined in r (a repeat costs no budget: the same
 * content is accepted, other content refused)? */
static bool def_present(const struct ring_dict *r, const union atel_slot *rec)
{
	uint32_t id = rec->h.id;

	switch (rec->h.type) {
	case ATEL_REC_STRDEF:
		return id < r->str_cap && r->str[id].s;
	case ATEL_REC_BOUNDS:
		return id < r->bnd_cap && r->bnd[id].v;
	default:
		return id < r->f.ser_cap && r->f.ser[id];
	}
}

/* ------------------------------------------------------------------------ */
/* decode                                                                   */

static void fill_common(struct atel_event *ev, const struct ring_dict *r, uint32_t ring, uint64_t seq,
			const union atel_slot *rec)
{
	ev->rec_type = rec->h.type;
	ev->ring = ring;
	ev->seq = seq;
	ev->ts_ns = rec->h.ts_ns;
	if (r && r->f.have_begin) {
		ev->generation = r->f.generation;
		ev->pid = r->f.pid;
		ev->tid = r->f.tid;
		ev->comm = r->f.comm;
	} else {
		ev->generation = 0;
		ev->pid = 0;
		ev->tid = 0;
		ev->comm = "";
	}
}

/*
 * Is there a 0x00 byte in s[0..len)? For the strings that fit in a header
 * slot (len <= 24; s readable for 24 bytes): three word tests instead of a
 * call to memchr, which cost more than the rest of such a record's decoding.
 * In z, the lowest set bit marks the first zero byte exactly (a borrow only
 * runs towards higher bytes); records are little-endian, and so is every
 * host that reads them (docs/abi.md), so that is the lowest address.
 */
static inline bool nul_in_short(const char *s, unsigned len)
{
	uint64_t w[3];

	memcpy(w, s, sizeof(w));
	for (unsigned i = 0; i < 3 && i * 8 < len; i++) {
		uint64_t z = (w[i] - 0x0101010101010101ull) & ~w[i] & 0x8080808080808080ull;
		if (z)
			return i * 8 + (unsigned)__builtin_ctzll(z) / 8 < len;
	}
	return false;
}

_Static_assert(ATEL_MSG_INLINE <= 24 && ATEL_ATTR_STR_INLINE <= 24, "nul_in_short covers the inline strings");

/* Copies an inline+continuation message into the scratch buffer. Inline so
 * that inline_cap is a constant: a string within the header slot (most of
 * them) is then copied with a fixed-size move. */
static inline int take_msg(struct atel_decoder *d, const union atel_slot *rec, const char *inl, unsigned inline_cap,
			   unsigned len, const char **out, const char **why)
{
	bool nul;

	if (len <= inline_cap) {
		memcpy(d->scratch, inl, inline_cap);
		d->scratch[len] = '\0';
		nul = nul_in_short(d->scratch, len);
	} else {
		gather(rec, inl, inline_cap, len, d->scratch);
		nul = memchr(d->scratch, '\0', len) != NULL;
	}
	if (nul) {
		*why = "inline string contains a NUL byte";
		return -EINVAL;
	}
	*out = d->scratch;
	return 0;
}

static int decode_slow(struct atel_decoder *d, uint32_t ring, uint64_t seq, const union atel_slot *rec,
		       unsigned nslots, struct atel_event *ev) __attribute__((noinline));

int atel__decode(struct atel_decoder *d, uint32_t ring, uint64_t seq, const union atel_slot *rec,
		 unsigned nslots, struct atel_event *ev)
{
	/* Fast path: the most common record, completely checked in a few
	 * compares; everything else (and every failure) takes the slow path,
	 * kept out of line so this stays a leaf with a small prologue. */
	if (rec && nslots == 1 && atel__decode_sample(atel__decoder_ring(d, ring), ring, seq, rec, ev))
		return 1;
	return decode_slow(d, ring, seq, rec, nslots, ev);
}

static int decode_slow(struct atel_decoder *d, uint32_t ring, uint64_t seq, const union atel_slot *rec,
		       unsigned nslots, struct atel_event *ev)
{
	const char *why = NULL;
	struct ring_dict *r = ring_get(d, ring);
	int n;

	/* fill_common sets every field before the union but kind, which every
	 * return below sets */
	if (nslots == 0 || !rec) {
		fill_common(ev, r, ring, seq, &(union atel_slot){ .raw = { 0 } });
		ev->kind = ATEL_EV_INVALID;
		ev->invalid.why = "empty record";
		return -EINVAL;
	}
	fill_common(ev, r, ring, seq, rec);
	if (ring >= ATEL_RING_COUNT_MAX)
		INVALID("ring index out of range");
	n = atel__log_rec_check(rec, nslots, &why);
	if (n == -EAGAIN)
		INVALID("record is truncated: its continuation slots are missing");
	if (n < 0)
		goto invalid;
	if ((unsigned)n != nslots)
		INVALID("record was given more slots than its continuation count");

	switch (rec->h.type) {
	case ATEL_REC_BEGIN: {
		const struct atel_rec_begin *b = &rec->begin;
		if (b->ring != ring)
			INVALID("begin record names a different ring than the one it was read from");
		if (b->pid <= 0)
			INVALID("begin record has a non-positive pid");
		if (!r && !(r = ring_make(d, ring)))
			INVALID("out of memory for a ring dictionary");
		ring_clear(d, r);
		r->f.have_begin = true;
		r->begin = *rec;
		r->f.generation = rec->h.id;
		r->f.pid = b->pid;
		r->f.tid = b->tid;
		memcpy(r->f.comm, b->comm, sizeof(b->comm));
		r->f.comm[16] = '\0';
		fill_common(ev, r, ring, seq, rec);
		ev->kind = ATEL_EV_BEGIN;
		ev->begin.pid = b->pid;
		ev->begin.tid = b->tid;
		ev->begin.start = b->start;
		ev->begin.comm = r->f.comm;
		return 1;
	}
	case ATEL_REC_END:
		if (r && r->f.have_begin && rec->h.id != r->f.generation)
			INVALID("end record's generation differs from the ring's begin record");
		ev->kind = ATEL_EV_END;
		return 1;
	case ATEL_REC_STRDEF:
	case ATEL_REC_BOUNDS:
	case ATEL_REC_SERIESDEF: {
		int rc;
		bool fresh;
		if (!r && !(r = ring_make(d, ring)))
			INVALID("out of memory for a ring dictionary");
		fresh = !def_present(r, rec);
		if (fresh && d->def_slots + nslots > d->def_slots_max)
			INVALID("the definitions of all rings exceed the 256 MiB a segment file header holds");
		if (rec->h.type == ATEL_REC_STRDEF)
			rc = def_string(d, r, rec, &why);
		else if (rec->h.type == ATEL_REC_BOUNDS)
			rc = def_bounds(r, rec, &why);
		else
			rc = def_series(r, rec, &why);
		if (rc)
			goto invalid;
		if (fresh) {
			r->def_slots += nslots;
			d->def_slots += nslots;
		}
		return 0;
	}
	case ATEL_REC_SAMPLE: {
		const struct dseries *s = ser_get(r, rec->h.id);
		const struct atel_rec_sample *x = &rec->sample;
		bool folded = rec->h.flags & ATEL_RECF_FOLDED;
		if (!s)
			INVALID(rec->h.id ? "sample's series id is not defined in this generation" : "sample's series id is 0");
		if (folded) {
			/* docs/abi.md 2.3 and 6 */
			if (rec->h.flags & ~(ATEL_RECF_SET | ATEL_RECF_FOLDED))
				INVALID("folded sample has unknown flags");
			if (s->pub.mtype == ATEL_MT_HISTOGRAM)
				INVALID("folded sample on a histogram (histograms fold into HISTFOLD records)");
			if (x->count == 0)
				INVALID("folded sample has a call count of 0");
			if (x->first_ns > rec->h.ts_ns)
				INVALID("folded sample's first call is later than its last");
			if (x->reserved[0] | x->reserved[1] | x->reserved[2])
				INVALID("folded sample has non-zero reserved bytes");
		}
		ev->kind = ATEL_EV_SAMPLE;
		ev->sample.series = &s->pub;
		ev->sample.value = x->value;
		ev->sample.set = rec->h.flags & ATEL_RECF_SET;
		ev->sample.folded = folded;
		ev->sample.count = folded ? x->count : 1;
		ev->sample.first_ns = folded ? x->first_ns : rec->h.ts_ns;
		return 1;
	}
	case ATEL_REC_HISTFOLD: {
		const struct dseries *s = ser_get(r, rec->h.id);
		const struct atel_rec_histfold *x = &rec->histfold;
		uint64_t total = 0;
		if (!s)
			INVALID(rec->h.id ? "folded histogram's series id is not defined in this generation"
					  : "folded histogram's series id is 0");
		if (s->pub.mtype != ATEL_MT_HISTOGRAM)
			INVALID("folded histogram record on a series that is not a histogram");
		if (rec->h.flags || x->reserved0 || x->reserved1)
			INVALID("folded histogram has non-zero flags or reserved bytes");
		if (x->nbuckets != s->pub.nbounds + 1)
			INVALID("folded histogram's bucket count differs from its series' bounds + 1");
		/* a NaN sum is what +Inf and -Inf observations add up to unfolded too: kept */
		if (x->count == 0)
			INVALID("folded histogram has no observations");
		if (x->first_ns > rec->h.ts_ns)
			INVALID("folded histogram's first observation is later than its last");
		/* bucket counts: 2 in the header slot, 8 per continuation slot (contiguous here) */
		memcpy(d->buckets, rec->raw + offsetof(struct atel_rec_histfold, buckets), 8u * x->nbuckets);
		for (uint32_t i = 0; i < x->nbuckets; i++) {
			if (d->buckets[i] > x->count - total)
				INVALID("folded histogram's bucket counts add up to more than its count");
			total += d->buckets[i];
		}
		if (total != x->count)
			INVALID("folded histogram's bucket counts do not add up to its count");
		for (uint32_t i = x->nbuckets; i < 2u + 8u * rec->h.cont; i++) {
			uint64_t pad;
			memcpy(&pad, rec->raw + offsetof(struct atel_rec_histfold, buckets) + 8u * i, 8);
			if (pad)
				INVALID("folded histogram has non-zero padding after its buckets");
		}
		ev->kind = ATEL_EV_HISTFOLD;
		ev->histfold.series = &s->pub;
		ev->histfold.count = x->count;
		ev->histfold.sum = x->sum;
		ev->histfold.first_ns = x->first_ns;
		ev->histfold.nbuckets = x->nbuckets;
		ev->histfold.buckets = d->buckets;
		return 1;
	}
	case ATEL_REC_SPAN_START: {
		const struct atel_rec_span_start *s = &rec->span_start;
		const struct dstr *name = str_get(r, rec->h.id);
		if (!name)
			INVALID(rec->h.id ? "span name id is not defined in this generation" : "span name id is 0");
		if (all_zero(s->trace_id, 16))
			INVALID("span start has an all-zero trace id");
		if (all_zero(s->span_id, 8))
			INVALID("span start has an all-zero span id");
		if (s->kind < 1 || s->kind > 5)
			INVALID("span kind is not 1..5");
		ev->kind = ATEL_EV_SPAN_START;
		memcpy(ev->span_start.trace_id, s->trace_id, 16);
		memcpy(ev->span_start.span_id, s->span_id, 8);
		memcpy(ev->span_start.parent_id, s->parent_id, 8);
		ev->span_start.kind = s->kind;
		ev->span_start.flags = s->trace_flags;
		ev->span_start.name = name->s;
		return 1;
	}
	case ATEL_REC_SPAN_END: {
		const struct atel_rec_span_end *s = &rec->span_end;
		const char *msg;
		if (all_zero(s->trace_id, 16) || all_zero(s->span_id, 8))
			INVALID("span end has an all-zero trace or span id");
		if (take_msg(d, rec, s->msg, ATEL_MSG_INLINE, s->msg_len, &msg, &why))
			goto invalid;
		ev->kind = ATEL_EV_SPAN_END;
		memcpy(ev->span_end.trace_id, s->trace_id, 16);
		memcpy(ev->span_end.span_id, s->span_id, 8);
		ev->span_end.status = s->status;
		ev->span_end.msg = msg;
		ev->span_end.msg_len = s->msg_len;
		ev->span_end.dropped_attrs = (uint16_t)(rec->h.id & 0xffffu);
		ev->span_end.dropped_events = (uint16_t)(rec->h.id >> 16);
		return 1;
	}
	case ATEL_REC_SPAN_ATTR: {
		const struct atel_rec_span_attr *s = &rec->span_attr;
		const struct dstr *key = str_get(r, rec->h.id);
		struct atel_attr_value *v = &ev->span_attr.v;
		if (!key)
			INVALID(rec->h.id ? "attribute key id is not defined in this generation" : "attribute key id is 0");
		if (all_zero(s->trace_id, 16) || all_zero(s->span_id, 8))
			INVALID("span attribute has an all-zero trace or span id");
		memset(v, 0, sizeof(*v));
		v->vtype = s->vtype;
		v->s = "";
		switch (s->vtype) {
		case ATEL_VT_STR:
			if (take_msg(d, rec, s->v.s, ATEL_ATTR_STR_INLINE, s->vlen, &v->s, &why))
				goto invalid;
			v->slen = s->vlen;
			break;
		case ATEL_VT_INT:
			v->i = s->v.i;
			break;
		case ATEL_VT_DOUBLE:
			v->d = s->v.d;
			break;
		default: /* ATEL_VT_BOOL; atel__rec_check refused other types */
			if (s->v.b > 1)
				INVALID("bool attribute value is not 0 or 1");
			v->b = s->v.b;
			break;
		}
		ev->kind = ATEL_EV_SPAN_ATTR;
		memcpy(ev->span_attr.trace_id, s->trace_id, 16);
		memcpy(ev->span_attr.span_id, s->span_id, 8);
		ev->span_attr.key = key->s;
		ev->span_attr.event_attr = rec->h.flags & ATEL_RECF_EVENT_ATTR;
		return 1;
	}
	case ATEL_REC_SPAN_EVENT: {
		const struct atel_rec_span_event *s = &rec->span_event;
		const struct dstr *name = str_get(r, rec->h.id);
		if (!name)
			INVALID(rec->h.id ? "event name id is not defined in this generation" : "event name id is 0");
		if (all_zero(s->trace_id, 16) || all_zero(s->span_id, 8))
			INVALID("span event has an all-zero trace or span id");
		ev->kind = ATEL_EV_SPAN_EVENT;
		memcpy(ev->span_event.trace_id, s->trace_id, 16);
		memcpy(ev->span_event.span_id, s->span_id, 8);
		ev->span_event.name = name->s;
		ev->span_event.nattrs = s->nattrs;
		return 1;
	}
	case ATEL_REC_SPAN_ERROR: {
		const struct atel_rec_span_error *s = &rec->span_error;
		const struct dstr *type = NULL;
		const char *msg;
		if (rec->h.id && !(type = str_get(r, rec->h.id)))
			INVALID("error type id is not defined in this generation");
		if (all_zero(s->trace_id, 16) || all_zero(s->span_id, 8))
			INVALID("span error has an all-zero trace or span id");
		if (take_msg(d, rec, s->msg, ATEL_MSG_INLINE, s->msg_len, &msg, &why))
			goto invalid;
		ev->kind = ATEL_EV_SPAN_ERROR;
		memcpy(ev->span_error.trace_id, s->trace_id, 16);
		memcpy(ev->span_error.span_id, s->span_id, 8);
		ev->span_error.type = type ? type->s : "";
		ev->span_error.msg = msg;
		ev->span_error.msg_len = s->msg_len;
		return 1;
	}
	case ATEL_REC_LOSS:
		ev->kind = ATEL_EV_LOSS;
		ev->loss.cause = rec->h.id;
		ev->loss.count = rec->loss.count;
		ev->loss.first_ns = rec->loss.first_ns;
		ev->loss.last_ns = rec->loss.last_ns;
		return 1;
	case ATEL_LOGREC_DEATH: {
		const struct atel_rec_death *x = (const struct atel_rec_death *)(const void *)rec;
		if (x->ring != ring)
			INVALID("death record names a different ring than the one it was read from");
		ev->kind = ATEL_EV_DEATH;
		ev->death.pid = x->pid;
		ev->death.start = x->start;
		ev->death.generation = rec->h.id;
		return 1;
	}
	case ATEL_LOGREC_LOSS_TOTAL: {
		const struct atel_rec_loss_total *x = (const struct atel_rec_loss_total *)(const void *)rec;
		bool cause_ok = (rec->h.id >= 1 && rec->h.id <= ATEL_LOSS_CAUSE_MAX) || rec->h.id == ATEL_LOSS_SPANS;
		if (!cause_ok)
			INVALID("loss total has an unknown cause");
		if (rec->h.flags || x->reserved0 || x->reserved[0] || x->reserved[1])
			INVALID("loss total has non-zero flags or reserved bytes");
		if (x->delta > x->total)
			INVALID("loss total's increase is larger than its total");
		ev->kind = ATEL_EV_LOSS_TOTAL;
		ev->loss_total.cause = rec->h.id;
		ev->loss_total.ring = x->ring;
		ev->loss_total.total = x->total;
		ev->loss_total.delta = x->delta;
		ev->loss_total.since_ns = x->since_ns;
		return 1;
	}
	default:
		INVALID("unknown record type");
	}

invalid:
	ev->kind = ATEL_EV_INVALID;
	ev->invalid.why = why ? why : "invalid record";
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* re-emission for new files' header frames                                 */

int atel__decoder_defs(const struct atel_decoder *d, uint32_t ring,
		       int (*emit)(void *arg, const union atel_slot *rec, unsigned nslots), void *arg)
{
	const struct ring_dict *r = ring_get(d, ring);
	union atel_slot buf[1 + 64];
	int rc;

	if (!r)
		return 0;
	if (r->f.have_begin && (rc = emit(arg, &r->begin, 1)))
		return rc;
	for (uint32_t id = 1; id < r->str_cap; id++) {
		const struct dstr *s = &r->str[id];
		unsigned cont, first;
		if (!s->s)
			continue;
		cont = atel__cont_for(s->len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
		memset(buf, 0, (1 + cont) * sizeof(buf[0]));
		buf[0].h.type = ATEL_REC_STRDEF;
		buf[0].h.cont = (uint8_t)cont;
		buf[0].h.id = id;
		buf[0].strdef.len = (uint16_t)s->len;
		first = s->len < ATEL_STRDEF_INLINE ? s->len : ATEL_STRDEF_INLINE;
		memcpy(buf[0].strdef.bytes, s->s, first);
		if (s->len > first)
			memcpy(buf[1].raw, s->s + first, s->len - first);
		if ((rc = emit(arg, buf, 1 + cont)))
			return rc;
	}
	for (uint32_t id = 1; id < r->bnd_cap; id++) {
		const struct dbounds *b = &r->bnd[id];
		unsigned cont;
		if (!b->v)
			continue;
		cont = atel__cont_for(b->count, ATEL_BOUNDS_INLINE, ATEL_BOUNDS_PER_CONT);
		memset(buf, 0, (1 + cont) * sizeof(buf[0]));
		buf[0].h.type = ATEL_REC_BOUNDS;
		buf[0].h.cont = (uint8_t)cont;
		buf[0].h.id = id;
		buf[0].bounds.count = b->count;
		for (uint32_t i = 0; i < b->count; i++) {
			if (i < ATEL_BOUNDS_INLINE) {
				buf[0].bounds.bounds[i] = b->v[i];
			} else {
				uint32_t j = i - ATEL_BOUNDS_INLINE;
				memcpy(buf[1 + j / ATEL_BOUNDS_PER_CONT].raw + (j % ATEL_BOUNDS_PER_CONT) * 8, &b->v[i], 8);
			}
		}
		if ((rc = emit(arg, buf, 1 + cont)))
			return rc;
	}
	for (uint32_t id = 1; id < r->f.ser_cap; id++) {
		const struct dseries *s = r->f.ser[id] ? dser(r->f.ser[id]) : NULL;
		unsigned cont;
		if (!s)
			continue;
		cont = atel__cont_for(s->pub.nlabels, ATEL_SERIES_INLINE_PAIRS, ATEL_PAIRS_PER_CONT);
		memset(buf, 0, (1 + cont) * sizeof(buf[0]));
		buf[0].h.type = ATEL_REC_SERIESDEF;
		buf[0].h.cont = (uint8_t)cont;
		buf[0].h.id = id;
		buf[0].seriesdef.mtype = s->pub.mtype;
		buf[0].seriesdef.nlabels = (uint8_t)s->pub.nlabels;
		buf[0].seriesdef.name_id = s->name_id;
		buf[0].seriesdef.bounds_id = s->bounds_id;
		for (uint32_t i = 0; i < s->pub.nlabels; i++) {
			struct atel_label_pair p = { s->key_ids[i], s->val_ids[i] };
			if (i < ATEL_SERIES_INLINE_PAIRS) {
				buf[0].seriesdef.pairs[i] = p;
			} else {
				uint32_t j = i - ATEL_SERIES_INLINE_PAIRS;
				memcpy(buf[1 + j / ATEL_PAIRS_PER_CONT].raw + (j % ATEL_PAIRS_PER_CONT) * sizeof(p), &p,
				       sizeof(p));
			}
		}
		if ((rc = emit(arg, buf, 1 + cont)))
			return rc;
	}
	return 0;
}
