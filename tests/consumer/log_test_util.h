/* SPDX-License-Identifier: MIT */
/* Helpers shared by the log format tests (test_seglog.c, test_logread.c). */
#ifndef LOG_TEST_UTIL_H
#define LOG_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "logread.h"
#include "segformat.h"
#include "synth.h"

#define T0 1700000000000000000ull

/* The events a reader must deliver for a stream: every record header except definitions. */
struct expect {
	uint64_t *seq;
	uint8_t *type;
	size_t n, at;
};

static inline void expect_build(struct expect *e, const struct atel_synth *s)
{
	memset(e, 0, sizeof(*e));
	e->seq = malloc((s->n + 1) * sizeof(uint64_t));
	e->type = malloc(s->n + 1);
	for (size_t i = 0; i < s->n;) {
		uint8_t t = s->slots[i].h.type;
		if (t != ATEL_REC_STRDEF && t != ATEL_REC_SERIESDEF && t != ATEL_REC_BOUNDS) {
			e->seq[e->n] = s->base_pos + i;
			e->type[e->n++] = t;
		}
		i += 1u + s->slots[i].h.cont;
	}
}

static inline void expect_free(struct expect *e)
{
	free(e->seq);
	free(e->type);
}

struct corrupt_log {
	unsigned n;
	char file[8][512];
	uint64_t off[8];
	char why[8][128];
};

static inline void on_corrupt_cb(void *arg, const char *file, uint64_t off, const char *why)
{
	struct corrupt_log *c = arg;
	if (c->n < 8) {
		snprintf(c->file[c->n], sizeof(c->file[0]), "%s", file);
		c->off[c->n] = off;
		snprintf(c->why[c->n], sizeof(c->why[0]), "%s", why);
	}
	c->n++;
}

/*
 * Reads the whole log of dir and checks, per ring, that the events are
 * exactly the expected ones in order (ring, seq, record type). Rings not in
 * ex[] must not appear. @return events read; fails the test otherwise.
 */
static inline uint64_t check_log(const char *dir, struct expect *ex, const uint32_t *rings, unsigned nrings,
				 struct corrupt_log *cl)
{
	struct atel_log_reader_opts o = { .segments_dir = dir, .on_corrupt = on_corrupt_cb, .arg = cl };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	uint64_t n = 0;
	int rc;

	for (unsigned i = 0; i < nrings; i++)
		ex[i].at = 0;
	if (atel__log_open(&r, &o) != 0)
		fail_msg("cannot open the log in %s", dir);
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		unsigned k;
		for (k = 0; k < nrings && rings[k] != ev.ring; k++)
			;
		if (k == nrings)
			fail_msg("event of unexpected ring %u", ev.ring);
		if (ev.kind == ATEL_EV_INVALID)
			fail_msg("invalid event at ring %u seq %llu: %s", ev.ring, (unsigned long long)ev.seq, ev.invalid.why);
		if (ex[k].at >= ex[k].n)
			fail_msg("ring %u: extra event seq %llu", ev.ring, (unsigned long long)ev.seq);
		if (ex[k].seq[ex[k].at] != ev.seq || ex[k].type[ex[k].at] != ev.rec_type)
			fail_msg("ring %u event %zu: got seq %llu type %u, expected seq %llu type %u", ev.ring, ex[k].at,
				 (unsigned long long)ev.seq, ev.rec_type, (unsigned long long)ex[k].seq[ex[k].at],
				 ex[k].type[ex[k].at]);
		ex[k].at++;
		n++;
	}
	assert_int_equal(rc, 0);
	for (unsigned i = 0; i < nrings; i++)
		if (ex[i].at != ex[i].n)
			fail_msg("ring %u: %zu events of %zu", rings[i], ex[i].at, ex[i].n);
	atel__log_close(r);
	return n;
}

static inline int count_files(const char *dir)
{
	uint64_t *seqs = NULL;
	int n = atel__seg_list(dir, &seqs);
	free(seqs);
	return n;
}

static inline void seg_path(char *out, size_t len, const char *dir, uint64_t seq)
{
	snprintf(out, len, "%s/%016llx.atseg", dir, (unsigned long long)seq);
}

static inline unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	*len = fread(p, 1, (size_t)n, f);
	fclose(f);
	return p;
}

static inline void spit(const char *path, const unsigned char *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, len, f), len);
	fclose(f);
}

/* Frame offsets of a file (header frame excluded); @return count. */
static inline unsigned frame_offsets(const unsigned char *p, size_t len, uint64_t *offs, unsigned max)
{
	uint64_t off = 0, content, need;
	unsigned n = 0;
	bool skip;
	const char *why;
	while (off < len) {
		int64_t fs = atel__seg_frame_size(p + off, len - off, &content, &skip, &need, &why);
		if (fs <= 0)
			break;
		if (!skip && n < max)
			offs[n++] = off;
		off += (uint64_t)fs;
	}
	return n;
}

/* Per-ring end position after the data frames of p[0..len) (ring < 16). */
static inline void positions_of(const unsigned char *p, size_t len, uint64_t *next, bool *seen)
{
	uint64_t off = 0, content, need;
	bool skip;
	const char *why;
	while (off < len) {
		int64_t fs = atel__seg_frame_size(p + off, len - off, &content, &skip, &need, &why);
		if (fs <= 0)
			break;
		if (!skip) {
			uint8_t *raw = malloc(content), *dec = NULL;
			const uint8_t *rec;
			size_t r = ZSTD_decompress(raw, content, p + off, (size_t)fs), dec_cap = 0;
			int64_t n;
			assert_false(ZSTD_isError(r));
			n = atel__seg_records(raw, content, &dec, &dec_cap, &rec, &why); /* COLUMNS frames decoded */
			assert_true(n > 0);
			for (size_t i = 0; i < (size_t)n;) {
				struct atel_rec_chunk c[1];
				memcpy(c, rec + i * 64, 64);
				assert_int_equal(c->h.type, ATEL_LOGREC_CHUNK);
				if (!(c->h.flags & ATEL_CHUNKF_MARKER) && c->h.id < 16) {
					next[c->h.id] = c->first_pos + c->count;
					seen[c->h.id] = true;
				}
				i += 1 + c->count;
			}
			free(raw);
			free(dec);
		}
		off += (uint64_t)fs;
	}
}

#endif /* LOG_TEST_UTIL_H */
