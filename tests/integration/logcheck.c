/* SPDX-License-Identifier: MIT */
/*
 * logcheck - reads a segment log with the log reader (consumer/log/logread.h) and
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
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logread.h"
#include "lossacc.h"
#include "ring.h"

#define MAX_SERIES 4096
#define MAX_PIDS 256

/* per producer process: events by kind (ev.pid comes from the ring's BEGIN) */
struct pidc {
	int32_t pid;
	uint64_t data;          /* sample + span start/end/attr/event/error */
	uint64_t sample, span_start, span_end, span_attr, span_event, span_error, loss_ring_full, folded;
};
static struct pidc P[MAX_PIDS];
static unsigned npids;

/* spans: open addressing on (trace id, span id) */
struct span_ent {
	uint8_t key[24];
	uint8_t used, started, ended;
};
static struct span_ent *H;
static uint64_t hcap, hlen;
static uint64_t orphans, end_without_start, double_start;

static uint64_t hkey(const uint8_t *k)
{
	uint64_t h = 1469598103934665603ull;

	for (int i = 0; i < 24; i++)
		h = (h ^ k[i]) * 1099511628211ull;
	return h;
}

static struct span_ent *span_get(const uint8_t trace[16], const uint8_t span[8], bool create)
{
	uint8_t k[24];

	memcpy(k, trace, 16);
	memcpy(k + 16, span, 8);
	if (create && (hlen + 1) * 2 > hcap) {
		uint64_t ncap = hcap ? hcap * 2 : 1 << 16;
		struct span_ent *nh = calloc(ncap, sizeof(*nh));

		if (!nh)
			return NULL;
		for (uint64_t i = 0; i < hcap; i++) {
			if (!H[i].used)
				continue;
			for (uint64_t j = hkey(H[i].key) & (ncap - 1);; j = (j + 1) & (ncap - 1)) {
				if (!nh[j].used) {
					nh[j] = H[i];
					break;
				}
			}
		}
		free(H);
		H = nh;
		hcap = ncap;
	}
	if (!hcap)
		return NULL;
	for (uint64_t j = hkey(k) & (hcap - 1);; j = (j + 1) & (hcap - 1)) {
		if (!H[j].used) {
			if (!create)
				return NULL;
			H[j].used = 1;
			memcpy(H[j].key, k, 24);
			hlen++;
			return &H[j];
		}
		if (!memcmp(H[j].key, k, 24))
			return &H[j];
	}
}

static struct pidc *pidc_of(int32_t pid)
{
	for (unsigned i = 0; i < npids; i++)
		if (P[i].pid == pid)
			return &P[i];
	if (npids == MAX_PIDS)
		return &P[MAX_PIDS - 1];
	P[npids].pid = pid;
	return &P[npids++];
}

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

/* tagent --burst counters: sum of values and calls per p:t */
struct burst_ent {
	char key[32];
	double sum;
	uint64_t calls;
};
static struct burst_ent B[256];
static unsigned nburst;

static int burst_add(const struct atel_dec_series *s, double v, uint64_t calls)
{
	const char *p = "?", *t = "?";
	char key[32];
	unsigned i;

	for (uint32_t k = 0; k < s->nlabels; k++) {
		if (!strcmp(s->keys[k], "p"))
			p = s->values[k];
		else if (!strcmp(s->keys[k], "t"))
			t = s->values[k];
	}
	snprintf(key, sizeof(key), "%.12s:%.12s", p, t);
	for (i = 0; i < nburst && strcmp(B[i].key, key); i++)
		;
	if (i == nburst) {
		if (nburst == sizeof(B) / sizeof(B[0]))
			return -1;
		snprintf(B[nburst++].key, sizeof(B[0].key), "%s", key);
	}
	B[i].sum += v;
	B[i].calls += calls;
	return 0;
}

int main(int argc, char **argv)
{
	struct atel_log_reader_opts ro = { 0 };
	struct atel_log_reader *r = NULL;
	struct atel_log_read_stats rs;
	struct atel_event ev;
	uint64_t events = 0, deaths = 0, invalid = 0, other = 0;
	uint64_t loss_recs[ATEL_LOSS_CAUSE_MAX + 1] = { 0 }, loss_totals = 0;
	struct atel_loss_acc *la = atel__lossacc_new();
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
		struct pidc *pc = pidc_of(ev.pid);

		events++;
		switch (ev.kind) {
		case ATEL_EV_SPAN_START: {
			static const uint8_t zero[8];
			struct span_ent *se = span_get(ev.span_start.trace_id, ev.span_start.span_id, true);

			pc->data++;
			pc->span_start++;
			if (!se) {
				fprintf(stderr, "logcheck: out of memory\n");
				return 2;
			}
			if (se->started)
				double_start++;
			se->started = 1;
			if (memcmp(ev.span_start.parent_id, zero, 8)) {
				struct span_ent *pe = span_get(ev.span_start.trace_id, ev.span_start.parent_id, false);

				if (!pe || !pe->started)
					orphans++;
			}
			break;
		}
		case ATEL_EV_SPAN_END: {
			struct span_ent *se = span_get(ev.span_end.trace_id, ev.span_end.span_id, false);

			pc->data++;
			pc->span_end++;
			if (!se || !se->started)
				end_without_start++;
			else
				se->ended = 1;
			break;
		}
		case ATEL_EV_SPAN_ATTR:
			pc->data++;
			pc->span_attr++;
			break;
		case ATEL_EV_SPAN_EVENT:
			pc->data++;
			pc->span_event++;
			break;
		case ATEL_EV_SPAN_ERROR:
			pc->data++;
			pc->span_error++;
			break;
		case ATEL_EV_SAMPLE: {
			const struct atel_dec_series *s = ev.sample.series;
			const char *p = NULL, *t = NULL;
			char key[64];
			struct series *e;

			pc->data++;
			pc->sample++;
			pc->folded += ev.sample.folded;
			if (s && !strcmp(s->name, "tagent_burst_total")) {
				if (burst_add(s, ev.sample.value, ev.sample.count)) {
					fprintf(stderr, "logcheck: out of memory\n");
					return 2;
				}
				break;
			}
			if (!s || (strcmp(s->name, "tprod_seq") != 0 && strcmp(s->name, "tagent_seq") != 0)) {
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
			snprintf(key, sizeof(key), "%s%s:%s", s->name[1] == 'a' ? "agent" : "", p, t);
			e = find(key);
			if (!e || mark(e, (uint64_t)ev.sample.value)) {
				fprintf(stderr, "logcheck: out of memory\n");
				return 2;
			}
			break;
		}
		case ATEL_EV_HISTFOLD: /* folded observations: one data record (libatel counts it as one) */
			pc->data++;
			pc->sample++;
			pc->folded++;
			break;
		case ATEL_EV_LOSS:
			if (ev.loss.cause == ATEL_LOSS_RING_FULL)
				pc->loss_ring_full += ev.loss.count;
			if (ev.loss.cause <= ATEL_LOSS_CAUSE_MAX)
				loss_recs[ev.loss.cause]++;
			if (atel__lossacc_add(la, atel__log_current_instance(r), &ev) < 0) {
				fprintf(stderr, "logcheck: out of memory\n");
				return 2;
			}
			break;
		case ATEL_EV_LOSS_TOTAL: {
			int64_t d = atel__lossacc_add(la, atel__log_current_instance(r), &ev);

			if (d < 0) {
				fprintf(stderr, "logcheck: out of memory\n");
				return 2;
			}
			/* a LOSS_TOTAL carries no pid: attribute it by ring to the generation's owner */
			if (ev.loss_total.cause == ATEL_LOSS_RING_FULL)
				pc->loss_ring_full += (uint64_t)d;
			loss_totals++;
			break;
		}
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
	{
		uint64_t unended = 0;

		for (uint64_t i = 0; i < hcap; i++)
			if (H[i].used && H[i].started && !H[i].ended)
				unended++;
		printf("{\"spans\":{\"started\":%" PRIu64 ",\"unended\":%" PRIu64 ",\"orphans\":%" PRIu64
		       ",\"end_without_start\":%" PRIu64 ",\"double_start\":%" PRIu64 "},",
		       hlen, unended, orphans, end_without_start, double_start);
	}
	printf("\"pids\":{");
	for (unsigned i = 0; i < npids; i++)
		printf("%s\"%d\":{\"data\":%" PRIu64 ",\"sample\":%" PRIu64 ",\"span_start\":%" PRIu64
		       ",\"span_end\":%" PRIu64 ",\"span_attr\":%" PRIu64 ",\"span_event\":%" PRIu64
		       ",\"span_error\":%" PRIu64 ",\"loss_ring_full\":%" PRIu64 ",\"folded\":%" PRIu64 "}",
		       i ? "," : "", (int)P[i].pid, P[i].data, P[i].sample, P[i].span_start, P[i].span_end, P[i].span_attr,
		       P[i].span_event, P[i].span_error, P[i].loss_ring_full, P[i].folded);
	printf("},\"burst\":{");
	for (unsigned i = 0; i < nburst; i++)
		printf("%s\"%s\":{\"sum\":%.17g,\"calls\":%" PRIu64 "}", i ? "," : "", B[i].key, B[i].sum, B[i].calls);
	printf("},\"series\":{");
	for (unsigned i = 0; i < nseries; i++)
		printf("%s\"%s\":{\"count\":%" PRIu64 ",\"distinct\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
		       "}",
		       i ? "," : "", S[i].key, S[i].count, S[i].distinct, S[i].min, S[i].max);
	printf("},\"loss\":{");
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		printf("%s\"%s\":%" PRIu64, c > 1 ? "," : "", atel__loss_cause_name(c), atel__lossacc_total(la, c));
	printf(",\"spans\":%" PRIu64, atel__lossacc_total(la, ATEL_LOSS_SPANS));
	printf("},\"loss_records\":{");
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		printf("%s\"%s\":%" PRIu64, c > 1 ? "," : "", atel__loss_cause_name(c), loss_recs[c]);
	printf("},\"loss_totals\":%" PRIu64 ",\"deaths\":%" PRIu64 ",\"events\":%" PRIu64 ",\"invalid\":%" PRIu64 ",\"corrupt\":%" PRIu64 ",\"corrupt_frames\":%" PRIu64
	       ",\"other_samples\":%" PRIu64 ",\"files\":%" PRIu64 ",\"frames\":%" PRIu64 ",\"records\":%" PRIu64
	       ",\"bytes_compressed\":%" PRIu64 ",\"bytes_raw\":%" PRIu64 "}\n",
	       loss_totals, deaths, events, invalid, corrupt, rs.corrupt_frames, other, rs.files, rs.frames, rs.records,
	       rs.bytes_compressed, rs.bytes_raw);
	atel__log_close(r);
	atel__lossacc_free(la);
	for (unsigned i = 0; i < nseries; i++)
		free(S[i].seen);
	free(H);
	return 0;
}
