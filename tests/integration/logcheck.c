/* SPDX-License-Identifier: MIT */
/*
 * logcheck - reads a segment log with the log reader (consumer/logread.h) and
 * summarises what the tprod producers wrote, for the daemon integration tests.
 *
 *   logcheck SEGMENTS_DIR
 *
 * Prints one JSON object:
 *   {"series": {"<p>:<t>": {"count":n,"distinct":d,"min":a,"max":b}}, ...
 *    "loss": {"<cause>": sum of LOSS counts}, "loss_records": {"<cause>": n},
 *    "deaths": n, "events": n, "invalid": n, "corrupt": n, "other_samples": n}
 * "distinct" counts distinct sequence numbers per series (count - distinct
 * are duplicates); exactly-once means count == distinct == expected.
 * Exit status 0, or 2 if the log cannot be read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logread.h"
#include "ring.h"

#define MAX_SERIES 4096

struct series {
	char key[64];
	uint64_t count, distinct, min, max;
	uint8_t *seen;        /* bitmap of sequence numbers */
	uint64_t seen_bits;
};

static struct series S[MAX_SERIES];
static unsigned nseries;
static uint64_t corrupt;

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	(void)arg;
	corrupt++;
	fprintf(stderr, "logcheck: corrupt frame in %s at %" PRIu64 ": %s\n", file, offset, why);
}

static struct series *find(const char *key)
{
	for (unsigned i = 0; i < nseries; i++)
		if (!strcmp(S[i].key, key))
			return &S[i];
	if (nseries == MAX_SERIES)
		return NULL;
	snprintf(S[nseries].key, sizeof(S[nseries].key), "%s", key);
	S[nseries].min = UINT64_MAX;
	return &S[nseries++];
}

static int mark(struct series *s, uint64_t v)
{
	if (v >= s->seen_bits) {
		uint64_t nb = s->seen_bits ? s->seen_bits : 1 << 16;
		uint8_t *p;

		while (nb <= v)
			nb *= 2;
		p = realloc(s->seen, nb / 8);
		if (!p)
			return -ENOMEM;
		memset(p + s->seen_bits / 8, 0, (nb - s->seen_bits) / 8);
		s->seen = p;
		s->seen_bits = nb;
	}
	s->count++;
	if (!(s->seen[v / 8] & (1u << (v % 8)))) {
		s->seen[v / 8] |= (uint8_t)(1u << (v % 8));
		s->distinct++;
	}
	if (v < s->min)
		s->min = v;
	if (v > s->max)
		s->max = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct atel_log_reader_opts ro = { 0 };
	struct atel_log_reader *r = NULL;
	struct atel_log_read_stats rs;
	struct atel_event ev;
	uint64_t events = 0, deaths = 0, invalid = 0, other = 0;
	uint64_t loss[ATEL_LOSS_CAUSE_MAX + 1] = { 0 }, loss_recs[ATEL_LOSS_CAUSE_MAX + 1] = { 0 };
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: logcheck SEGMENTS_DIR\n");
		return 2;
	}
	ro.segments_dir = argv[1];
	ro.on_corrupt = on_corrupt;
	rc = atel__log_open(&r, &ro);
	if (rc) {
		fprintf(stderr, "logcheck: %s: %s\n", argv[1], strerror(-rc));
		return 2;
	}
	while ((rc = atel__log_next(r, &ev, NULL)) == 1) {
		events++;
		switch (ev.kind) {
		case ATEL_EV_SAMPLE: {
			const struct atel_dec_series *s = ev.sample.series;
			const char *p = NULL, *t = NULL;
			char key[64];
			struct series *e;

			if (!s || strcmp(s->name, "tprod_seq") != 0) {
				other++;
				break;
			}
			for (uint32_t i = 0; i < s->nlabels; i++) {
				if (!strcmp(s->keys[i], "p"))
					p = s->values[i];
				else if (!strcmp(s->keys[i], "t"))
					t = s->values[i];
			}
			if (!p || !t || ev.sample.value < 0 || ev.sample.value > 1e12) {
				other++;
				break;
			}
			snprintf(key, sizeof(key), "%s:%s", p, t);
			e = find(key);
			if (!e || mark(e, (uint64_t)ev.sample.value)) {
				fprintf(stderr, "logcheck: out of memory\n");
				return 2;
			}
			break;
		}
		case ATEL_EV_LOSS:
			if (ev.loss.cause <= ATEL_LOSS_CAUSE_MAX) {
				loss[ev.loss.cause] += ev.loss.count;
				loss_recs[ev.loss.cause]++;
			}
			break;
		case ATEL_EV_DEATH:
			deaths++;
			break;
		case ATEL_EV_INVALID:
			invalid++;
			break;
		default:
			break;
		}
	}
	if (rc < 0) {
		fprintf(stderr, "logcheck: read error: %s\n", strerror(-rc));
		return 2;
	}
	atel__log_stats(r, &rs);
	printf("{\"series\":{");
	for (unsigned i = 0; i < nseries; i++)
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"distinct\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
		       "}",
		       i ? "," : "", S[i].key, S[i].count, S[i].distinct, S[i].min, S[i].max);
	printf("},\"loss\":{");
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		printf("%s\"%s\":%" PRIu64, c > 1 ? "," : "", atel__loss_cause_name(c), loss[c]);
	printf("},\"loss_records\":{");
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		printf("%s\"%s\":%" PRIu64, c > 1 ? "," : "", atel__loss_cause_name(c), loss_recs[c]);
	printf("},\"deaths\":%" PRIu64 ",\"events\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"corrupt\":%" PRIu64 ",\"corrupt_frames\":%" PRIu64
	       ",\"other_samples\":%" PRIu64 ",\"files\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"records\":%" PRIu64
	       ",\"bytes_compressed\":%" PRIu64 ",\"bytes_raw\":%" PRIu64 "}\n",
	       deaths, events, invalid, corrupt, rs.corrupt_frames, other, rs.files, rs.frames, rs.records,
	       rs.bytes_compressed, rs.bytes_raw);
	atel__log_close(r);
	for (unsigned i = 0; i < nseries; i++)
		free(S[i].seen);
	return 0;
}
