/* SPDX-License-Identifier: MIT */
/* Remote write encoder: the WriteRequest read back field by field: names as
 * /metrics (counter _total, histogram _bucket/_sum/_count with cumulative
 * buckets), labels sorted with __name__, a series' own job/le renamed
 * exported_*, empty values left out, one timestamp, requests split at
 * max_samples without splitting a series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agg_helpers.h"
#include "atel_test.h"
#include "remote_write_encode.h"

struct sample_out {
	char labels[512]; /* "k=v,k=v" in wire order */
	double v;
	int64_t ts;
};

struct got {
	struct sample_out s[64];
	int n, nreq;
	uint32_t per_req[16];
};

static uint64_t varint(const unsigned char **p, const unsigned char *end)
{
	uint64_t v = 0;
	int sh = 0;

	for (;;) {
		assert_true(*p < end);
		unsigned char c = *(*p)++;
		v |= (uint64_t)(c & 0x7f) << sh;
		sh += 7;
		if (!(c & 0x80))
			return v;
	}
}

static int collect(void *arg, const void *data, size_t len, uint32_t nsamples)
{
	struct got *g = arg;
	const unsigned char *p = data, *end = p + len;

	g->per_req[g->nreq++] = nsamples;
	while (p < end) {
		assert_int_equal(varint(&p, end), (1 << 3) | 2); /* timeseries */
		uint64_t tl = varint(&p, end);
		const unsigned char *te = p + tl;
		struct sample_out *s = &g->s[g->n++];
		s->labels[0] = '\0';
		while (p < te) {
			uint64_t key = varint(&p, te), l = varint(&p, te);
			const unsigned char *fe = p + l;
			if (key == ((1 << 3) | 2)) { /* label */
				char name[128] = "", val[128] = "";
				while (p < fe) {
					uint64_t k2 = varint(&p, fe), l2 = varint(&p, fe);
					memcpy(k2 == ((1 << 3) | 2) ? name : val, p, l2);
					p += l2;
				}
				if (s->labels[0])
					strcat(s->labels, ",");
				strcat(s->labels, name);
				strcat(s->labels, "=");
				strcat(s->labels, val);
			} else {
				assert_int_equal(key, (2 << 3) | 2); /* sample */
				assert_int_equal(*p++, 0x09);
				memcpy(&s->v, p, 8);
				p += 8;
				assert_int_equal(*p++, 0x10);
				s->ts = (int64_t)varint(&p, fe);
			}
			assert_true(p == fe);
		}
	}
	return 0;
}

static void test_encode(void **state)
{
	static const double bounds[] = { 0.5, 1 };
	static const char *const kv_c[] = { "a", "x", "job", "mine", "z_empty", "" };
	static const char *const kv_h[] = { "le", "mine", "tool", "Read" };
	static const struct atel_rw_label extra[] = { { "instance", "host7" }, { "job", "atel" } };
	struct atel_dec_series c, h;
	struct atel_agg *a;
	struct atel_agg_snapshot *snap;
	struct got *g = calloc(1, sizeof(*g));

	(void)state;
	assert_int_equal(atel__agg_new(&a, 100), 0);
	th_series(&c, ATEL_MT_COUNTER, "jobs", 3, kv_c, 0, NULL);
	th_series(&h, ATEL_MT_HISTOGRAM, "dur_seconds", 2, kv_h, 2, bounds);
	th_sample(a, &c, 5, 0, 10);
	th_sample(a, &h, 0.25, 0, 10);
	th_sample(a, &h, 0.75, 0, 10);
	th_sample(a, &h, 3, 0, 10);
	assert_int_equal(atel__agg_snapshot(a, &snap), 0);
	assert_int_equal(atel__rw_samples(snap), 1 + 2 + 3);
	/* max 3 samples per request: the counter alone, then the histogram (5 samples) whole */
	assert_int_equal(atel__rw_encode(snap, 1700000000123, extra, 2, 3, collect, g), 0);
	assert_int_equal(g->nreq, 2);
	assert_int_equal(g->per_req[0] + g->per_req[1], 6);
	assert_int_equal(g->n, 6);
	for (int i = 0; i < g->n; i++)
		assert_int_equal(g->s[i].ts, 1700000000123);
	/* families sorted by name: dur_seconds first */
	assert_string_equal(g->s[0].labels, "__name__=dur_seconds_bucket,exported_le=mine,instance=host7,job=atel,le=0.5,tool=Read");
	assert_true(g->s[0].v == 1);
	assert_string_equal(g->s[1].labels, "__name__=dur_seconds_bucket,exported_le=mine,instance=host7,job=atel,le=1,tool=Read");
	assert_true(g->s[1].v == 2);
	assert_string_equal(g->s[2].labels, "__name__=dur_seconds_bucket,exported_le=mine,instance=host7,job=atel,le=+Inf,tool=Read");
	assert_true(g->s[2].v == 3);
	assert_string_equal(g->s[3].labels, "__name__=dur_seconds_sum,exported_le=mine,instance=host7,job=atel,tool=Read");
	assert_true(g->s[3].v == 4);
	assert_string_equal(g->s[4].labels, "__name__=dur_seconds_count,exported_le=mine,instance=host7,job=atel,tool=Read");
	assert_true(g->s[4].v == 3);
	assert_string_equal(g->s[5].labels, "__name__=jobs_total,a=x,exported_job=mine,instance=host7,job=atel");
	assert_true(g->s[5].v == 5);
	atel__agg_snapshot_free(snap);
	atel__agg_free(a);
	free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
