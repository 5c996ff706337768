/* SPDX-License-Identifier: MIT */
/*
 * logprom tests (consumer/log/logprom.h): the log as the series a scrape of
 * /metrics would give. A hand-built log (counter with merged, set and invalid
 * samples; gauge set and add; classic histogram) must come out as exactly
 * these samples: names and labels as the exposition's, cumulative counters,
 * cumulative buckets/_sum/_count, one sample per resolution window, idle
 * series repeated every carry_ms up to end_ms, [mint, maxt] and the name
 * hint honoured.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "atel_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atel_abi.h"
#include "logprom.h"
#include "segformat.h"
#include "synth.h"

#include <unistd.h>

#define T0_NS 1700000000000000000ull
#define T0_MS 1700000000000ll

struct got {
	char names[32][160];
	unsigned nseries;
	char text[8192];             /* "id@t=v;" per sample, in delivery order per id (separate strings) */
	char per[32][1024];
};

static int on_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	struct got *g = arg;
	char *o = g->names[g->nseries];
	size_t len = 0;
	len += (size_t)snprintf(o + len, 160 - len, "%s{", vals[0]);
	for (size_t i = 1; i < n; i++)
		len += (size_t)snprintf(o + len, 160 - len, "%s%s=%s", i > 1 ? "," : "", keys[i], vals[i]);
	snprintf(o + len, 160 - len, "}");
	assert_string_equal(keys[0], "__name__");
	*id = g->nseries++;
	return 1;
}

static int on_sample(void *arg, uint32_t id, int64_t t, double v)
{
	struct got *g = arg;
	size_t l = strlen(g->per[id]);
	snprintf(g->per[id] + l, sizeof(g->per[id]) - l, "%lld=%g ", (long long)(t - T0_MS), v);
	return 0;
}

/* The samples of the series named want ("" if not offered). */
static const char *samples_of(const struct got *g, const char *want)
{
	for (unsigned i = 0; i < g->nseries; i++)
		if (!strcmp(g->names[i], want))
			return g->per[i];
	return "(none)";
}

static void at(struct atel_synth *s, double ms)
{
	s->ts = T0_NS + (uint64_t)(ms * 1e6);
}

static void write_log(const char *seg)
{
	struct atel_synth s, *sp[1] = { &s };
	const double b[] = { 1, 2 };
	atel_synth_init(&s, 0, 1, 10, 11, T0_NS);
	s.ts_step = 0;
	atel_synth_begin(&s, "t");
	uint32_t c = atel_synth_series(&s, ATEL_MT_COUNTER, "req", 0, "tool", "a", NULL);
	uint32_t q = atel_synth_series(&s, ATEL_MT_GAUGE, "queue.size", 0, NULL);
	uint32_t bid = atel_synth_bounds(&s, b, 2);
	uint32_t h = atel_synth_series(&s, ATEL_MT_HISTOGRAM, "lat", bid, "le", "x", NULL);
	at(&s, 0);
	atel_synth_sample(&s, c, 1, false);
	at(&s, 0.5);
	atel_synth_sample(&s, c, 2, false);   /* same ms: merges with the first */
	at(&s, 100);
	atel_synth_sample(&s, q, 5, true);
	at(&s, 200);
	atel_synth_sample(&s, q, 2, false);   /* gauge add */
	at(&s, 300);
	atel_synth_sample(&s, h, 0.5, false);
	at(&s, 400);
	atel_synth_sample(&s, h, 1.5, false);
	at(&s, 500);
	atel_synth_sample(&s, h, 5, false);
	at(&s, 1500);
	atel_synth_sample(&s, c, 3, false);
	at(&s, 2500);
	atel_synth_sample(&s, c, 10, true);   /* counter set (not lower) */
	at(&s, 2600);
	atel_synth_sample(&s, c, -1, false);  /* invalid increment: skipped as the aggregates do */
	at(&s, 70000);
	atel_synth_sample(&s, c, 1, false);
	assert_int_equal(atel_synth_write_log(seg, 0x99, sp, 1, NULL), 0);
	atel_synth_free(&s);
}

static void scan(const char *seg, struct got *g, int64_t res, int64_t mint, int64_t maxt, const char *hint)
{
	struct atel_logprom_opts o = {
		.segments_dir = seg, .mint_ms = T0_MS + mint, .maxt_ms = T0_MS + maxt, .end_ms = T0_MS + 130000,
		.carry_ms = 60000, .resolution_ms = res, .name_hint = hint,
		.series = on_series, .sample = on_sample, .arg = g,
	};
	struct atel_logprom_stats st;
	char err[256] = "";
	memset(g, 0, sizeof(*g));
	assert_int_equal(atel__logprom_scan(&o, &st, err, sizeof(err)), 0);
	assert_int_equal(st.last_ms, T0_MS + 70000);
}

static void test_exposition(void **state)
{
	(void)state;
	char dir[512], seg[600];
	struct got *g = calloc(1, sizeof(*g));
	assert_int_equal(atel_synth_tmpdir(dir, sizeof(dir), "logprom"), 0);
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	write_log(seg);

	scan(seg, g, 1, 0, 200000, NULL);
	assert_int_equal(g->nseries, 7);
	assert_string_equal(samples_of(g, "req_total{tool=a}"), "0=3 1500=6 2500=10 62500=10 70000=11 130000=11 ");
	assert_string_equal(samples_of(g, "queue_size{}"), "100=5 200=7 60200=7 120200=7 ");
	assert_string_equal(samples_of(g, "lat_bucket{exported_le=x,le=1}"), "300=1 400=1 500=1 60500=1 120500=1 ");
	assert_string_equal(samples_of(g, "lat_bucket{exported_le=x,le=2}"), "300=1 400=2 500=2 60500=2 120500=2 ");
	assert_string_equal(samples_of(g, "lat_bucket{exported_le=x,le=+Inf}"), "300=1 400=2 500=3 60500=3 120500=3 ");
	assert_string_equal(samples_of(g, "lat_sum{exported_le=x}"), "300=0.5 400=2 500=7 60500=7 120500=7 ");
	assert_string_equal(samples_of(g, "lat_count{exported_le=x}"), "300=1 400=2 500=3 60500=3 120500=3 ");

	/* 2 s windows: the 0 ms and 1500 ms samples merge into the later one */
	scan(seg, g, 2000, 0, 200000, NULL);
	assert_string_equal(samples_of(g, "req_total{tool=a}"), "1500=6 2500=10 62500=10 70000=11 130000=11 ");

	/* [mint, maxt]: earlier events still count toward the cumulative value */
	scan(seg, g, 1, 2000, 65000, NULL);
	assert_string_equal(samples_of(g, "req_total{tool=a}"), "2500=10 62500=10 ");
	assert_string_equal(samples_of(g, "queue_size{}"), "60200=7 ");

	/* the name hint: only the bucket series are offered */
	scan(seg, g, 1, 0, 200000, "lat_bucket");
	assert_int_equal(g->nseries, 3);
	assert_string_equal(samples_of(g, "req_total{tool=a}"), "(none)");

	/* no log: -ENOENT */
	struct atel_logprom_opts o = { .segments_dir = "/nonexistent/atel/segments", .series = on_series,
				       .sample = on_sample, .arg = g };
	char err[256];
	assert_int_equal(atel__logprom_scan(&o, NULL, err, sizeof(err)), -ENOENT);
	atel_synth_rmtree(dir);
	free(g);
}

/* ---- the query cost cache: a recent range reads only recent files, same answer ---- */

struct dump {
	char **names;
	char **per;
	size_t *len, *cap;
	unsigned n, capn;
};

static void dump_free(struct dump *d)
{
	for (unsigned i = 0; i < d->n; i++) {
		free(d->names[i]);
		free(d->per[i]);
	}
	free(d->names);
	free(d->per);
	free(d->len);
	free(d->cap);
	memset(d, 0, sizeof(*d));
}

static int d_series(void *arg, const char *const *keys, const char *const *vals, size_t n, uint32_t *id)
{
	struct dump *d = arg;
	char buf[512];
	size_t len = (size_t)snprintf(buf, sizeof(buf), "%s{", vals[0]);
	for (size_t i = 1; i < n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s=%s,", keys[i], vals[i]);
	if (d->n == d->capn) {
		d->capn = d->capn ? d->capn * 2 : 64;
		d->names = realloc(d->names, d->capn * sizeof(*d->names));
		d->per = realloc(d->per, d->capn * sizeof(*d->per));
		d->len = realloc(d->len, d->capn * sizeof(*d->len));
		d->cap = realloc(d->cap, d->capn * sizeof(*d->cap));
		assert_non_null(d->names && d->per && d->len && d->cap);
	}
	d->names[d->n] = strdup(buf);
	d->per[d->n] = NULL;
	d->len[d->n] = d->cap[d->n] = 0;
	*id = d->n++;
	return 1;
}

static int d_sample(void *arg, uint32_t id, int64_t t, double v)
{
	struct dump *d = arg;
	char buf[64];
	size_t m = (size_t)snprintf(buf, sizeof(buf), "%lld=%.17g ", (long long)(t - T0_MS), v);
	if (d->len[id] + m + 1 > d->cap[id]) {
		d->cap[id] = (d->len[id] + m + 1) * 2;
		d->per[id] = realloc(d->per[id], d->cap[id]);
		assert_non_null(d->per[id]);
	}
	memcpy(d->per[id] + d->len[id], buf, m + 1);
	d->len[id] += m;
	return 0;
}

/* Series (offer order) and samples as one text; only series with samples count
 * as "answering" but the offer order must match too. */
static char *dump_text(const struct dump *d)
{
	size_t len = 1;
	for (unsigned i = 0; i < d->n; i++)
		len += strlen(d->names[i]) + d->len[i] + 4;
	char *o = malloc(len), *p = o;
	for (unsigned i = 0; i < d->n; i++)
		p += sprintf(p, "%s %s\n", d->names[i], d->per[i] ? d->per[i] : "");
	*p = 0;
	return o;
}

static char *cscan(const char *seg, struct atel_logprom_cache *c, int64_t res, int64_t carry, int64_t mint,
		   int64_t maxt, const char *hint, struct atel_logprom_stats *st)
{
	struct dump d = { 0 };
	struct atel_logprom_opts o = {
		.segments_dir = seg, .mint_ms = T0_MS + mint, .maxt_ms = T0_MS + maxt, .end_ms = T0_MS + 200000,
		.carry_ms = carry, .resolution_ms = res, .name_hint = hint,
		.series = d_series, .sample = d_sample, .arg = &d, .cache = c,
	};
	char err[256] = "";
	assert_int_equal(atel__logprom_scan(&o, st, err, sizeof(err)), 0);
	char *t = dump_text(&d);
	dump_free(&d);
	return t;
}

/* Three rings, 20 s each of counters (one stops early, one starts late, sets
 * and invalid increments), gauges and a histogram, in many small files. */
static unsigned write_many(const char *seg)
{
	struct atel_synth s[3], *sp[3] = { &s[0], &s[1], &s[2] };
	const double b[] = { 1, 2, 5 };
	uint64_t x = 88172645463325252ull;
	for (unsigned r = 0; r < 3; r++) {
		char rv[8];
		snprintf(rv, sizeof(rv), "r%u", r);
		atel_synth_init(&s[r], r, 1, 100 + (int32_t)r, 200 + (int32_t)r, T0_NS + r * 1000000ull);
		s[r].ts_step = 0;
		atel_synth_begin(&s[r], "t");
		uint32_t c = atel_synth_series(&s[r], ATEL_MT_COUNTER, "req", 0, "ring", rv, NULL);
		uint32_t e = atel_synth_series(&s[r], ATEL_MT_COUNTER, "early", 0, "ring", rv, NULL);
		uint32_t g = atel_synth_series(&s[r], ATEL_MT_GAUGE, "depth", 0, "ring", rv, NULL);
		uint32_t bid = atel_synth_bounds(&s[r], b, 3);
		uint32_t h = atel_synth_series(&s[r], ATEL_MT_HISTOGRAM, "lat", bid, "ring", rv, NULL);
		uint32_t late = 0;
		for (unsigned i = 0; i < 4000; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			s[r].ts = T0_NS + r * 1000000ull + i * 5000000ull; /* 5 ms apart: 20 s */
			double v = (double)(x % 1000) / 100.0;
			atel_synth_sample(&s[r], c, i % 97 == 0 ? -1 : v, false);
			if (i % 500 == 499)
				atel_synth_sample(&s[r], c, 1e6 + i, true);
			if (i < 300)
				atel_synth_sample(&s[r], e, 1, false);
			if (i == 3000)
				late = atel_synth_series(&s[r], ATEL_MT_COUNTER, "late", 0, "ring", rv, NULL);
			if (late && i % 3 == 0)
				atel_synth_sample(&s[r], late, 2, false);
			if (i % 4 == 0)
				atel_synth_sample(&s[r], g, v - 5, i % 8 == 0);
			if (i % 2 == 0)
				atel_synth_sample(&s[r], h, v / 2, false);
		}
	}
	struct atel_synth_log_opts lo = { .batch = 256, .rotate_bytes = 4096, .frame_bytes = 4096,
					  .flush_each_round = true };
	assert_int_equal(atel_synth_write_log(seg, 0x77, sp, 3, &lo), 0);
	for (unsigned r = 0; r < 3; r++)
		atel_synth_free(&s[r]);
	uint64_t *seqs = NULL;
	int n = atel__seg_list(seg, &seqs);
	free(seqs);
	return n > 0 ? (unsigned)n : 0;
}

static int *stop_calls;

/* The interrupt of a query that times out at its third check. */
static int stop_third(void *arg)
{
	(void)arg;
	return ++*stop_calls == 3 ? -ETIMEDOUT : 0;
}

static void test_cache(void **state)
{
	(void)state;
	char dir[512], seg[600];
	assert_int_equal(atel_synth_tmpdir(dir, sizeof(dir), "logpromc"), 0);
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	unsigned nfiles = write_many(seg);
	assert_true(nfiles >= 20);

	struct atel_logprom_cache *c = atel__logprom_cache_new();
	struct atel_logprom_stats st;
	/* mint ascending: each scan may restore what an earlier one kept */
	const int64_t mints[] = { 2000, 9000, 15000, 18000, 19500, 4000, 19990, 25000 };
	const int64_t res[] = { 1, 1, 50, 1, 1, 1, 50, 1 };
	const int64_t carry[] = { 1000, 1000, 1000, 500, 1000, 1000, 1000, 1000 };
	uint64_t skipped_total = 0;
	for (size_t k = 0; k < sizeof(mints) / sizeof(mints[0]); k++) {
		for (int hinted = 0; hinted < 2; hinted++) {
			const char *hint = hinted ? "req_total" : NULL;
			char *full = cscan(seg, NULL, res[k], carry[k], mints[k], 200000, hint, &st);
			assert_int_equal(st.files_skipped, 0);
			char *cached = cscan(seg, c, res[k], carry[k], mints[k], 200000, hint, &st);
			assert_string_equal(cached, full);
			assert_true(strstr(full, "=") != NULL || mints[k] > 20000);
			skipped_total += st.files_skipped;
			/* the hinted scan follows one with the same options, which kept a
			 * copy at its last boundary before mint: most earlier files are skipped */
			if (hinted && mints[k] >= 9000 && mints[k] <= 20000)
				assert_true((double)st.files_skipped >= nfiles * (mints[k] / 20000.0) * 0.6);
			if (!hinted && k == 2)
				assert_int_equal(st.files_skipped, 0); /* no copy at res 50 yet */
			free(full);
			free(cached);
		}
	}
	assert_true(skipped_total > nfiles);
	uint64_t fs, restores;
	atel__logprom_cache_stats(c, &fs, &restores);
	assert_int_equal(fs, skipped_total);
	assert_true(restores > 4);

	/* a scan stopped by its interrupt (a timeout) still keeps the copy of
	 * its last boundary: the next one starts there */
	struct atel_logprom_cache *c2 = atel__logprom_cache_new();
	struct dump d = { 0 };
	int calls = 0;
	struct atel_logprom_opts io = {
		.segments_dir = seg, .mint_ms = T0_MS + 19000, .maxt_ms = T0_MS + 200000, .end_ms = T0_MS + 200000,
		.carry_ms = 1000, .resolution_ms = 1, .series = d_series, .sample = d_sample,
		.interrupt = stop_third, .arg = &d, .cache = c2,
	};
	stop_calls = &calls;
	char err[256];
	assert_int_equal(atel__logprom_scan(&io, NULL, err, sizeof(err)), -ETIMEDOUT);
	dump_free(&d);
	char *full0 = cscan(seg, NULL, 1, 1000, 19000, 200000, NULL, &st);
	char *cached0 = cscan(seg, c2, 1, 1000, 19000, 200000, NULL, &st);
	assert_true(st.files_skipped > 0);
	assert_string_equal(cached0, full0);
	free(full0);
	free(cached0);
	atel__logprom_cache_free(c2);

	/* retention removes the oldest file: the cumulative base changes, the
	 * cache must not answer from before it */
	uint64_t *seqs = NULL;
	int n = atel__seg_list(seg, &seqs);
	assert_true(n > 2);
	char path[700];
	snprintf(path, sizeof(path), "%s/%016llx.atseg", seg, (unsigned long long)seqs[0]);
	free(seqs);
	assert_int_equal(unlink(path), 0);
	char *full = cscan(seg, NULL, 1, 1000, 19500, 200000, NULL, &st);
	char *cached = cscan(seg, c, 1, 1000, 19500, 200000, NULL, &st);
	assert_int_equal(st.files_skipped, 0);
	assert_string_equal(cached, full);
	free(cached);
	cached = cscan(seg, c, 1, 1000, 19600, 200000, NULL, &st);
	free(full);
	full = cscan(seg, NULL, 1, 1000, 19600, 200000, NULL, &st);
	assert_string_equal(cached, full);
	free(cached);
	free(full);
	atel__logprom_cache_free(c);
	atel_synth_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition),
		cmocka_unit_test(test_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
