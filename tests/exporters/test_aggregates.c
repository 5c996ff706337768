/* SPDX-License-Identifier: MIT */
/* Aggregator: counter/gauge/histogram semantics, cardinality guard, type
 * clashes, checkpoint save/load (monotonic across a restart), corrupt files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "atel_test.h"
#include "agg_helpers.h"

static char tmpdir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/atel-test-agg-%d-XXXXXX", (int)getpid());
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const struct atel_agg_family *fam(const struct atel_agg_snapshot *s, const char *name)
{
	for (uint32_t i = 0; i < s->nfamilies; i++)
		if (!strcmp(s->families[i].name, name))
			return &s->families[i];
	return NULL;
}

static void test_types(void **state)
{
	static const double bounds[] = { 0.125, 0.5, 1 };
	static const char *const kv_coder[] = { "agent_type", "coder", "model", "m1" };
	static const char *const kv_tool[] = { "tool", "Read" };
	struct atel_dec_series c, g, h;
	struct atel_agg *a;
	struct atel_agg_snapshot *s;
	const struct atel_agg_family *f;

	(void)state;
	assert_int_equal(atel__agg_new(&a, 100), 0);
	th_series(&c, ATEL_MT_COUNTER, "agent_tokens_used", 2, kv_coder, 0, NULL);
	th_series(&g, ATEL_MT_GAUGE, "task_queue_size", 0, NULL, 0, NULL);
	th_series(&h, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", 1, kv_tool, 3, bounds);
	th_sample(a, &c, 1500, 0, 10);
	th_sample(a, &c, 500, 0, 20);
	th_sample(a, &c, -1, 0, 30);           /* rejected: counters only go up */
	th_sample(a, &g, 7, 1, 10);
	th_sample(a, &g, -2, 0, 11);           /* gauge add */
	th_sample(a, &h, 0.0625, 0, 5);
	th_sample(a, &h, 0.125, 0, 6);         /* le is inclusive */
	th_sample(a, &h, 0.25, 0, 7);
	th_sample(a, &h, 2, 0, 8);
	{
		/* folded observations (ring full): buckets, count and sum add up exactly */
		static const uint64_t fb[4] = { 1, 0, 2, 3 };
		struct atel_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_HISTFOLD;
		ev.ts_ns = 9;
		ev.histfold.series = &h;
		ev.histfold.count = 6;
		ev.histfold.sum = 10.5;
		ev.histfold.nbuckets = 4;
		ev.histfold.buckets = fb;
		atel__agg_apply(a, &ev);
		ev.histfold.nbuckets = 3; /* does not match the bounds: rejected, nothing added */
		atel__agg_apply(a, &ev);
	}
	assert_int_equal(atel__agg_rejected(a), 2);
	assert_int_equal(atel__agg_type_clashes(a), 0);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	assert_int_equal(s->nfamilies, 3);
	/* sorted by name */
	assert_string_equal(s->families[0].name, "agent_tokens_used");
	assert_string_equal(s->families[1].name, "task_queue_size");
	assert_string_equal(s->families[2].name, "tool_call_duration_seconds");
	f = fam(s, "agent_tokens_used");
	assert_string_equal(f->help, "Tokens consumed");   /* from the catalog */
	assert_int_equal(f->mtype, ATEL_MT_COUNTER);
	assert_int_equal(f->nseries, 1);
	assert_true(f->series[0].value == 2000);
	assert_int_equal(f->series[0].start_ns, 10);
	assert_int_equal(f->series[0].last_ns, 20);
	assert_string_equal(f->series[0].keys[1], "model");
	assert_string_equal(f->series[0].values[1], "m1");
	f = fam(s, "task_queue_size");
	assert_true(f->series[0].value == 5);
	f = fam(s, "tool_call_duration_seconds");
	assert_int_equal(f->series[0].nbounds, 3);
	assert_int_equal(f->series[0].buckets[0], 2 + 1);
	assert_int_equal(f->series[0].buckets[1], 1 + 0);
	assert_int_equal(f->series[0].buckets[2], 0 + 2);
	assert_int_equal(f->series[0].buckets[3], 1 + 3);
	assert_int_equal(f->series[0].count, 4 + 6);
	assert_true(f->series[0].sum == 2.4375 + 10.5);
	atel__agg_snapshot_free(s);
	atel__agg_free(a);
}

static void test_type_clash(void **state)
{
	static const double b1[] = { 1, 2 }, b2[] = { 1, 3 };
	struct atel_dec_series c, g, h1, h2;
	struct atel_agg *a;
	struct atel_agg_snapshot *s;

	(void)state;
	assert_int_equal(atel__agg_new(&a, 100), 0);
	th_series(&c, ATEL_MT_COUNTER, "x_events", 0, NULL, 0, NULL);
	th_series(&g, ATEL_MT_GAUGE, "x_events", 0, NULL, 0, NULL);
	th_series(&h1, ATEL_MT_HISTOGRAM, "x_hist", 0, NULL, 2, b1);
	th_series(&h2, ATEL_MT_HISTOGRAM, "x_hist", 0, NULL, 2, b2);
	th_sample(a, &c, 1, 0, 1);
	th_sample(a, &g, 5, 1, 2);          /* same series, other type */
	th_sample(a, &h1, 1.5, 0, 3);
	th_sample(a, &h2, 1.5, 0, 4);       /* same series, other buckets */
	assert_int_equal(atel__agg_type_clashes(a), 2);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	assert_true(fam(s, "x_events")->series[0].value == 1);
	assert_int_equal(fam(s, "x_hist")->series[0].count, 1);
	atel__agg_snapshot_free(s);
	atel__agg_free(a);
}

static void test_overflow(void **state)
{
	char vals[6][8];
	struct atel_dec_series ser[6];
	const char *kv[6][2];
	struct atel_agg *a;
	struct atel_agg_snapshot *s;
	const struct atel_agg_family *f;

	(void)state;
	assert_int_equal(atel__agg_new(&a, 2), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(vals[i], sizeof(vals[i]), "t%d", i);
		kv[i][0] = "tool";
		kv[i][1] = vals[i];
		th_series(&ser[i], ATEL_MT_COUNTER, "tool_calls_total", 1, kv[i], 0, NULL);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 6; i++)
			th_sample(a, &ser[i], i + 1, 0, 100);
	/* t0, t1 kept; t2..t5 folded: four distinct series, each counted once */
	assert_int_equal(atel__agg_overflow(a), 4);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	f = fam(s, "tool_calls_total");
	assert_int_equal(f->nseries, 3);
	assert_string_equal(f->series[0].values[0], "t0");
	assert_true(f->series[0].value == 3);
	assert_string_equal(f->series[1].values[0], "t1");
	assert_true(f->series[1].value == 6);
	assert_true(f->series[2].overflow);
	assert_int_equal(f->series[2].nlabels, 1);
	assert_string_equal(f->series[2].keys[0], "atel_overflow");
	assert_string_equal(f->series[2].values[0], "true");
	assert_true(f->series[2].value == 3 * (3 + 4 + 5 + 6));
	atel__agg_snapshot_free(s);

	/* the guard is per metric: another family has its own budget */
	{
		struct atel_dec_series o;
		th_series(&o, ATEL_MT_COUNTER, "other_total", 1, kv[5], 0, NULL);
		th_sample(a, &o, 1, 0, 1);
		assert_int_equal(atel__agg_overflow(a), 4);
	}
	atel__agg_free(a);
}

static void test_family_cap(void **state)
{
	struct atel_agg *a;
	struct atel_dec_series ser;
	char name[32];

	(void)state;
	assert_int_equal(atel__agg_new(&a, 10), 0);
	for (int i = 0; i < 65536 + 10; i++) {
		snprintf(name, sizeof(name), "m_%d", i);
		th_series(&ser, ATEL_MT_GAUGE, name, 0, NULL, 0, NULL);
		th_sample(a, &ser, 1, 1, 1);
	}
	assert_int_equal(atel__agg_rejected(a), 10);
	atel__agg_free(a);
}

static void same_snapshot(const struct atel_agg_snapshot *x, const struct atel_agg_snapshot *y)
{
	assert_int_equal(x->nfamilies, y->nfamilies);
	for (uint32_t i = 0; i < x->nfamilies; i++) {
		const struct atel_agg_family *a = &x->families[i], *b = &y->families[i];
		assert_string_equal(a->name, b->name);
		assert_string_equal(a->help, b->help);
		assert_int_equal(a->mtype, b->mtype);
		assert_int_equal(a->nseries, b->nseries);
		for (uint32_t j = 0; j < a->nseries; j++) {
			const struct atel_agg_series *p = &a->series[j], *q = &b->series[j];
			assert_int_equal(p->nlabels, q->nlabels);
			for (uint32_t l = 0; l < p->nlabels; l++) {
				assert_string_equal(p->keys[l], q->keys[l]);
				assert_string_equal(p->values[l], q->values[l]);
			}
			assert_int_equal(p->overflow, q->overflow);
			assert_memory_equal(&p->value, &q->value, sizeof(double));
			assert_int_equal(p->count, q->count);
			assert_memory_equal(&p->sum, &q->sum, sizeof(double));
			assert_int_equal(p->nbounds, q->nbounds);
			if (p->nbounds)
				assert_memory_equal(p->bounds, q->bounds, p->nbounds * sizeof(double));
			if (p->buckets)
				assert_memory_equal(p->buckets, q->buckets, (p->nbounds + 1) * sizeof(uint64_t));
			assert_int_equal(p->start_ns, q->start_ns);
			assert_int_equal(p->last_ns, q->last_ns);
		}
	}
}

static void test_save_load_monotonic(void **state)
{
	static const double bounds[] = { 1, 10 };
	static const char *const kv1[] = { "agent_type", "coder", "phase", "code", "status", "success" };
	static const char *const kv2[] = { "agent_type", "planner", "phase", "plan", "status", "failure" };
	static const char *const kvo[3][2] = { { "priority", "a" }, { "priority", "b" }, { "priority", "c" } };
	struct atel_dec_series c1, c2, h, q[3];
	struct atel_agg *a, *b;
	struct atel_agg_snapshot *s1, *s2;
	struct atel_log_pos pos = { 3, 4096, 7 }, got = { 0 };
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/aggregates.ckpt", tmpdir);
	assert_int_equal(atel__agg_new(&a, 2), 0);
	th_series(&c1, ATEL_MT_COUNTER, "agent_execution_total", 3, kv1, 0, NULL);
	th_series(&c2, ATEL_MT_COUNTER, "agent_execution_total", 3, kv2, 0, NULL);
	th_series(&h, ATEL_MT_HISTOGRAM, "task_duration_seconds", 0, NULL, 2, bounds);
	for (int i = 0; i < 3; i++)
		th_series(&q[i], ATEL_MT_GAUGE, "task_queue_size", 1, kvo[i], 0, NULL);
	for (int i = 0; i < 10; i++) {
		th_sample(a, &c1, 1, 0, 1000 + (uint64_t)i);
		th_sample(a, &h, i * 2.0, 0, 1000 + (uint64_t)i);
	}
	th_sample(a, &c2, 4, 0, 5);
	for (int i = 0; i < 3; i++)
		th_sample(a, &q[i], i, 1, 9);   /* q[2] folds */
	th_sample(a, &c1, -5, 0, 1);       /* rejected */
	assert_int_equal(atel__agg_overflow(a), 1);
	assert_int_equal(atel__agg_save(a, path, &pos), 0);
	assert_int_equal(access(path, F_OK), 0);

	/* "restart": a fresh aggregator loads the checkpoint */
	assert_int_equal(atel__agg_new(&b, 2), 0);
	assert_int_equal(atel__agg_load(b, path, &got), 0);
	assert_int_equal(got.file_seq, 3);
	assert_int_equal(got.frame_off, 4096);
	assert_int_equal(got.rec_idx, 7);
	assert_int_equal(atel__agg_overflow(b), 1);
	assert_int_equal(atel__agg_rejected(b), 1);
	assert_int_equal(atel__agg_snapshot(a, &s1), 0);
	assert_int_equal(atel__agg_snapshot(b, &s2), 0);
	same_snapshot(s1, s2);
	atel__agg_snapshot_free(s1);
	atel__agg_snapshot_free(s2);

	/* monotonic: the reloaded counter continues from its total */
	th_sample(b, &c1, 1, 0, 2000);
	th_sample(b, &q[2], 7, 1, 2001);   /* the folded series is not counted twice */
	assert_int_equal(atel__agg_overflow(b), 1);
	assert_int_equal(atel__agg_snapshot(b, &s2), 0);
	assert_true(fam(s2, "agent_execution_total")->series[0].value == 11);
	assert_int_equal(fam(s2, "agent_execution_total")->series[0].start_ns, 1000);
	assert_int_equal(fam(s2, "agent_execution_total")->series[0].last_ns, 2000);
	assert_int_equal(fam(s2, "task_duration_seconds")->series[0].count, 10);
	assert_true(fam(s2, "task_queue_size")->series[2].overflow);
	assert_true(fam(s2, "task_queue_size")->series[2].value == 7);
	atel__agg_snapshot_free(s2);
	atel__agg_free(a);
	atel__agg_free(b);
}

static void test_load_rejects_corruption(void **state)
{
	static const char *const kv[] = { "tool", "Bash" };
	struct atel_dec_series c;
	struct atel_agg *a;
	struct atel_log_pos pos = { 1, 2, 3 }, got;
	char path[512], bad[512];
	FILE *f;
	long size;
	unsigned char *data;

	(void)state;
	snprintf(path, sizeof(path), "%s/c.ckpt", tmpdir);
	snprintf(bad, sizeof(bad), "%s/bad.ckpt", tmpdir);
	assert_int_equal(atel__agg_new(&a, 10), 0);
	assert_int_equal(atel__agg_load(a, path, &got), -ENOENT);
	th_series(&c, ATEL_MT_COUNTER, "tool_calls_total", 1, kv, 0, NULL);
	th_sample(a, &c, 3, 0, 1);
	assert_int_equal(atel__agg_save(a, path, &pos), 0);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	data = malloc((size_t)size);
	assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	/* every single-byte flip and every truncation is refused */
	for (long i = 0; i < size; i++) {
		data[i] ^= 0x41;
		f = fopen(bad, "wb");
		fwrite(data, 1, (size_t)size, f);
		fclose(f);
		assert_int_equal(atel__agg_load(a, bad, &got), -EINVAL);
		data[i] ^= 0x41;
	}
	for (long n = 0; n < size; n += 7) {
		f = fopen(bad, "wb");
		fwrite(data, 1, (size_t)n, f);
		fclose(f);
		assert_int_equal(atel__agg_load(a, bad, &got), -EINVAL);
	}
	free(data);
	assert_int_equal(atel__agg_load(a, path, &got), 0);
	assert_int_equal(got.rec_idx, 3);
	atel__agg_free(a);
}


/* prometheus.series_ttl: stale series (and the overflow series, and empty
 * families) leave the model, the freed room takes new label sets instead of
 * folding them, a returning series starts again, and the count of expired
 * series survives a checkpoint round trip. */
static void test_expire(void **state)
{
	static const char *const kv[6][2] = { { "session_id", "s1" }, { "session_id", "s2" }, { "session_id", "s3" },
					      { "session_id", "s4" }, { "session_id", "s5" }, { "session_id", "s6" } };
	const uint64_t S = 1000000000ull;
	struct atel_dec_series ser[6], g;
	struct atel_agg *a, *b;
	struct atel_agg_snapshot *s;
	struct atel_log_pos pos = { 3, 4, 5 }, pos2;
	char path[400];

	(void)state;
	assert_int_equal(atel__agg_new(&a, 2), 0);
	for (int i = 0; i < 6; i++)
		th_series(&ser[i], ATEL_MT_COUNTER, "ctx_total", 1, kv[i], 0, NULL);
	th_series(&g, ATEL_MT_GAUGE, "queue", 0, NULL, 0, NULL);
	th_sample(a, &ser[0], 1, 0, 100 * S);
	th_sample(a, &ser[1], 2, 0, 100 * S);
	th_sample(a, &ser[2], 3, 0, 100 * S);   /* beyond the limit of 2: folded */
	th_sample(a, &g, 5, 1, 100 * S);
	assert_int_equal(atel__agg_overflow(a), 1);
	th_sample(a, &ser[1], 2, 0, 350 * S);   /* s2 stays alive */
	assert_int_equal(atel__agg_expire(a, 400 * S, 0), 0);        /* ttl 0: never */
	assert_int_equal(atel__agg_expire(a, 399 * S, 300 * S), 0);  /* nothing older than 99 s */
	/* at 401 s: s1, the overflow series and the gauge family are stale */
	assert_int_equal(atel__agg_expire(a, 401 * S, 300 * S), 3);
	assert_int_equal(atel__agg_expired(a), 3);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	assert_int_equal(s->nfamilies, 1);
	assert_string_equal(s->families[0].name, "ctx_total");
	assert_int_equal(s->families[0].nseries, 1);
	assert_string_equal(s->families[0].series[0].values[0], "s2");
	assert_true(s->families[0].series[0].value == 4);
	atel__agg_snapshot_free(s);
	/* room again: s4 becomes a regular series, not a folded one; s1 comes back from zero */
	th_sample(a, &ser[3], 7, 0, 402 * S);
	th_sample(a, &ser[2], 1, 0, 402 * S);   /* was folded: now a series of its own? no room (s2, s4) */
	th_sample(a, &ser[0], 1, 0, 403 * S);   /* also no room: folds */
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	assert_int_equal(s->nfamilies, 1);
	assert_int_equal(s->families[0].nseries, 3); /* s2, s4, overflow */
	assert_string_equal(s->families[0].series[1].values[0], "s4");
	assert_true(s->families[0].series[1].value == 7);
	assert_true(s->families[0].series[2].overflow);
	assert_true(s->families[0].series[2].value == 2); /* a new overflow series */
	atel__agg_snapshot_free(s);
	assert_int_equal(atel__agg_overflow(a), 2); /* s3 counted once, s1 newly */
	/* the expired count survives the checkpoint */
	snprintf(path, sizeof(path), "%s/exp.ckpt", tmpdir);
	assert_int_equal(atel__agg_save(a, path, &pos), 0);
	assert_int_equal(atel__agg_new(&b, 2), 0);
	assert_int_equal(atel__agg_load(b, path, &pos2), 0);
	assert_int_equal(atel__agg_expired(b), 3);
	assert_int_equal(pos2.file_seq, 3);
	/* everything stale: the model is empty, and the applying path still works */
	assert_int_equal(atel__agg_expire(b, 10000 * S, 300 * S), 3);
	assert_int_equal(atel__agg_snapshot(b, &s), 0);
	assert_int_equal(s->nfamilies, 0);
	atel__agg_snapshot_free(s);
	th_sample(b, &ser[5], 9, 0, 10001 * S);
	th_sample(b, &ser[5], 1, 0, 10002 * S);
	assert_int_equal(atel__agg_snapshot(b, &s), 0);
	assert_int_equal(s->nfamilies, 1);
	assert_true(s->families[0].series[0].value == 10);
	assert_true(s->families[0].series[0].start_ns == 10001 * S);
	atel__agg_snapshot_free(s);
	atel__agg_free(b);
	atel__agg_free(a);
}

/* A version-1 checkpoint (before series_ttl) still loads, with no expired count. */
static void test_load_v1(void **state)
{
	static const char *const kv[] = { "tool", "Read" };
	struct atel_dec_series c;
	struct atel_agg *a, *b;
	struct atel_agg_snapshot *s;
	struct atel_log_pos pos = { 1, 2, 3 }, pos2;
	char path[400], *data = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(atel__agg_new(&a, 10), 0);
	th_series(&c, ATEL_MT_COUNTER, "tool_calls_total", 1, kv, 0, NULL);
	th_sample(a, &c, 5, 0, 10);
	snprintf(path, sizeof(path), "%s/v1.ckpt", tmpdir);
	assert_int_equal(atel__agg_save(a, path, &pos), 0);
	/* rewrite as version 1: drop the expired u64 after the three counters, fix the CRC */
	f = fopen(path, "rb");
	assert_non_null(f);
	data = malloc(1 << 16);
	len = fread(data, 1, 1 << 16, f);
	fclose(f);
	{
		uint32_t v = 1, crc;
		size_t at = 8 + 4 + 4 + 24 + 24; /* magic, version, pad, pos, 3 counters */
		memcpy(data + 8, &v, 4);
		memmove(data + at, data + at + 8, len - at - 8);
		len -= 8;
		crc = (uint32_t)crc32(0L, (const unsigned char *)data, (unsigned)(len - 4));
		memcpy(data + len - 4, &crc, 4);
	}
	f = fopen(path, "wb");
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	free(data);
	assert_int_equal(atel__agg_new(&b, 10), 0);
	assert_int_equal(atel__agg_load(b, path, &pos2), 0);
	assert_int_equal(atel__agg_expired(b), 0);
	assert_int_equal(atel__agg_snapshot(b, &s), 0);
	assert_int_equal(s->nfamilies, 1);
	assert_true(s->families[0].series[0].value == 5);
	atel__agg_snapshot_free(s);
	atel__agg_free(b);
	atel__agg_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_type_clash),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_family_cap),
		cmocka_unit_test(test_save_load_monotonic),
		cmocka_unit_test(test_load_rejects_corruption),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_load_v1),
	};
	return ATEL_TEST_RUN(tests, setup, teardown);
}
