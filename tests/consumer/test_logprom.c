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
#include "synth.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exposition),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
