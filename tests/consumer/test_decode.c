/* SPDX-License-Identifier: MIT */
/*
 * Decoder unit tests: every record type (with continuation slots), per-ring
 * and per-generation dictionaries, series identity (key_hash), definition
 * re-emission, and each invalid case with its exact reason and no state change.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atel_test.h"
#include "decode.h"
#include "segformat.h"
#include "synth.h"

#define T0 1700000000000000000ull

/* Decodes the record whose header slot is at stream position pos. */
static int dec_at(struct atel_decoder *d, const struct atel_synth *s, uint64_t pos, struct atel_event *ev)
{
	const union atel_slot *r = &s->slots[pos - s->base_pos];
	return atel__decode(d, s->ring, pos, r, 1u + r->h.cont, ev);
}

/* Decodes every record from position `from` to the end; @return the last result. */
static int dec_from(struct atel_decoder *d, const struct atel_synth *s, uint64_t from, struct atel_event *ev)
{
	int rc = 0;
	for (uint64_t p = from; p < atel_synth_pos(s);) {
		rc = dec_at(d, s, p, ev);
		p += 1u + s->slots[p - s->base_pos].h.cont;
	}
	return rc;
}

/* The documented series identity: FNV-1a 64 over name 0x00 (key 0x00 value 0x00)* sorted by key. */
static uint64_t ref_hash(const char *name, unsigned n, const char *const *sorted_kv)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[1 + 2 * ATEL_LABELS_MAX];
	parts[0] = name;
	for (unsigned i = 0; i < 2 * n; i++)
		parts[1 + i] = sorted_kv[i];
	for (unsigned i = 0; i < 1 + 2 * n; i++) {
		for (const char *c = parts[i]; *c; c++) {
			h ^= (unsigned char)*c;
			h *= 0x100000001b3ull;
		}
		h *= 0x100000001b3ull; /* the 0x00 separator */
	}
	return h;
}

static void test_begin_and_end(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	(void)state;

	atel_synth_init(&s, 3, 7, 4242, 4243, T0);
	atel_synth_begin(&s, "agent-comm-long-name");
	atel_synth_end(&s);
	assert_int_equal(dec_at(d, &s, 0, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_BEGIN);
	assert_int_equal(ev.ring, 3);
	assert_int_equal(ev.generation, 7);
	assert_int_equal(ev.seq, 0);
	assert_int_equal(ev.ts_ns, T0);
	assert_int_equal(ev.pid, 4242);
	assert_int_equal(ev.tid, 4243);
	assert_int_equal(ev.begin.pid, 4242);
	assert_int_equal(ev.begin.start, 123456);
	assert_string_equal(ev.begin.comm, "agent-comm-long");  /* 15 chars + NUL in the record */
	assert_string_equal(ev.comm, "agent-comm-long");
	assert_int_equal(dec_at(d, &s, 1, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_END);
	assert_int_equal(ev.pid, 4242);
	assert_int_equal(ev.generation, 7);

	/* END of another generation */
	s.slots[1].h.id = 8;
	assert_int_equal(dec_at(d, &s, 1, &ev), -EINVAL);
	assert_int_equal(ev.kind, ATEL_EV_INVALID);
	assert_string_equal(ev.invalid.why, "end record's generation differs from the ring's begin record");
	/* BEGIN naming another ring, bad pid */
	s.slots[0].begin.ring = 4;
	assert_int_equal(dec_at(d, &s, 0, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "begin record names a different ring than the one it was read from");
	s.slots[0].begin.ring = 3;
	s.slots[0].begin.pid = 0;
	assert_int_equal(dec_at(d, &s, 0, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "begin record has a non-positive pid");
	atel_synth_free(&s);
	atel__decoder_free(d);
}

static void test_metrics(void **state)
{
	static const double b12[] = { 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5 };
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint32_t c, h, g, b;
	uint64_t p;
	char longname[301];
	(void)state;

	memset(longname, 'n', 300);
	longname[300] = '\0';
	atel_synth_init(&s, 0, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	/* six labels given out of order: two continuation slots of pairs */
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "zeta", "6", "alpha", "1", "mid", "3",
			      "beta", "2", "omega", "", "kappa", "5", NULL);
	assert_int_equal(s.slots[s.n - 2].h.cont, 1); /* 6 pairs: 4 inline + 1 continuation slot */
	b = atel_synth_bounds(&s, b12, 12);
	h = atel_synth_series(&s, ATEL_MT_HISTOGRAM, longname, b, NULL);
	g = atel_synth_series(&s, ATEL_MT_GAUGE, "queue", 0, NULL);
	p = atel_synth_sample(&s, c, 2.5, false);
	assert_int_equal(dec_from(d, &s, 0, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_SAMPLE);
	assert_int_equal(ev.seq, p);
	assert_true(ev.sample.value == 2.5);
	assert_false(ev.sample.set);
	{
		const struct atel_dec_series *se = ev.sample.series;
		static const char *const kv[] = { "alpha", "1", "beta", "2", "kappa", "5", "mid", "3",
						  "omega", "", "zeta", "6" };
		assert_int_equal(se->id, c);
		assert_int_equal(se->mtype, ATEL_MT_COUNTER);
		assert_string_equal(se->name, "tool_calls_total");
		assert_int_equal(se->nlabels, 6);
		for (int i = 0; i < 6; i++) {
			assert_string_equal(se->keys[i], kv[2 * i]);
			assert_string_equal(se->values[i], kv[2 * i + 1]);
		}
		assert_int_equal(se->nbounds, 0);
		assert_true(se->key_hash == ref_hash("tool_calls_total", 6, kv));
	}
	p = atel_synth_sample(&s, h, 0.3, false);
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_string_equal(ev.sample.series->name, longname);
	assert_int_equal(ev.sample.series->nbounds, 12);
	for (int i = 0; i < 12; i++)
		assert_true(ev.sample.series->bounds[i] == b12[i]);
	assert_true(ev.sample.series->key_hash == ref_hash(longname, 0, NULL));
	p = atel_synth_sample(&s, g, 17, true);
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_true(ev.sample.set);
	assert_int_equal(ev.sample.series->mtype, ATEL_MT_GAUGE);

	/* the same series defined with other ids on another ring hashes the same */
	{
		struct atel_synth s2;
		uint32_t c2;
		atel_synth_init(&s2, 1, 1, 20, 21, T0);
		atel_synth_begin(&s2, "b");
		atel_synth_str(&s2, "padding-to-shift-ids");
		c2 = atel_synth_series(&s2, ATEL_MT_COUNTER, "tool_calls_total", 0, "alpha", "1", "beta", "2", "kappa",
				       "5", "mid", "3", "omega", "", "zeta", "6", NULL);
		atel_synth_sample(&s2, c2, 1, false);
		assert_int_equal(dec_from(d, &s2, 0, &ev), 1);
		assert_int_equal(ev.ring, 1);
		assert_true(ev.sample.series->key_hash == ref_hash("tool_calls_total", 6,
			(const char *const[]){ "alpha", "1", "beta", "2", "kappa", "5", "mid", "3", "omega", "", "zeta", "6" }));
		/* ring 1's ids do not leak into ring 0 and back */
		atel_synth_free(&s2);
	}
	atel_synth_free(&s);
	atel__decoder_free(d);
}

static void test_spans(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint8_t tr[16], sp[8], pa[8];
	char longmsg[200], longval[1000], hex[33];
	uint64_t p;
	(void)state;

	memset(longmsg, 'm', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	memset(longval, 'v', sizeof(longval) - 1);
	longval[sizeof(longval) - 1] = '\0';
	atel_synth_ids(1, tr, sp);
	atel_synth_ids(2, NULL, pa);
	atel_synth_init(&s, 2, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	p = atel_synth_span_start(&s, tr, sp, pa, "tool.call", 3);
	assert_int_equal(dec_from(d, &s, 0, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_START);
	assert_int_equal(ev.seq, p);
	assert_memory_equal(ev.span_start.trace_id, tr, 16);
	assert_memory_equal(ev.span_start.span_id, sp, 8);
	assert_memory_equal(ev.span_start.parent_id, pa, 8);
	assert_int_equal(ev.span_start.kind, 3);
	assert_int_equal(ev.span_start.flags, 1);
	assert_string_equal(ev.span_start.name, "tool.call");
	atel__hex(ev.span_start.trace_id, 16, hex);
	assert_int_equal(strlen(hex), 32);
	assert_int_equal(hex[0], "0123456789abcdef"[tr[0] >> 4]);

	p = atel_synth_attr_str(&s, tr, sp, "k.str", longval, false);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1); /* p-1: the key's STRDEF */
	assert_int_equal(ev.kind, ATEL_EV_SPAN_ATTR);
	assert_string_equal(ev.span_attr.key, "k.str");
	assert_int_equal(ev.span_attr.v.vtype, ATEL_VT_STR);
	assert_int_equal(ev.span_attr.v.slen, 999);
	assert_string_equal(ev.span_attr.v.s, longval);
	assert_false(ev.span_attr.event_attr);
	p = atel_synth_attr_int(&s, tr, sp, "k.int", -42, false);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1);
	assert_int_equal(ev.span_attr.v.i, -42);
	p = atel_synth_attr_double(&s, tr, sp, "k.dbl", 0.125, false);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1);
	assert_true(ev.span_attr.v.d == 0.125);
	p = atel_synth_span_event(&s, tr, sp, "retry", 1);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_EVENT);
	assert_string_equal(ev.span_event.name, "retry");
	assert_int_equal(ev.span_event.nattrs, 1);
	p = atel_synth_attr_bool(&s, tr, sp, "k.bool", true, true);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1);
	assert_true(ev.span_attr.v.b);
	assert_true(ev.span_attr.event_attr);
	p = atel_synth_span_error(&s, tr, sp, "TimeoutError", longmsg);
	assert_int_equal(dec_from(d, &s, p - 1, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_ERROR);
	assert_string_equal(ev.span_error.type, "TimeoutError");
	assert_string_equal(ev.span_error.msg, longmsg);
	assert_int_equal(ev.span_error.msg_len, 199);
	p = atel_synth_span_error(&s, tr, sp, NULL, "no type");
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_string_equal(ev.span_error.type, "");
	p = atel_synth_span_end(&s, tr, sp, 2, longmsg);
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_SPAN_END);
	assert_int_equal(ev.span_end.status, 2);
	assert_string_equal(ev.span_end.msg, longmsg);
	p = atel_synth_span_end(&s, tr, sp, 1, NULL);
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_string_equal(ev.span_end.msg, "");
	assert_int_equal(ev.span_end.msg_len, 0);
	p = atel_synth_loss(&s, ATEL_LOSS_RING_FULL, 99, T0, T0 + 5);
	assert_int_equal(dec_at(d, &s, p, &ev), 1);
	assert_int_equal(ev.kind, ATEL_EV_LOSS);
	assert_int_equal(ev.loss.cause, ATEL_LOSS_RING_FULL);
	assert_int_equal(ev.loss.count, 99);
	assert_int_equal(ev.loss.first_ns, T0);
	assert_int_equal(ev.loss.last_ns, T0 + 5);
	{
		union atel_slot x;
		struct atel_rec_death *dm = (struct atel_rec_death *)(void *)&x;
		memset(&x, 0, sizeof(x));
		dm->h.type = ATEL_LOGREC_DEATH;
		dm->h.id = 1;
		dm->pid = 10;
		dm->start = 777;
		dm->ring = 2;
		assert_int_equal(atel__decode(d, 2, 55, &x, 1, &ev), 1);
		assert_int_equal(ev.kind, ATEL_EV_DEATH);
		assert_int_equal(ev.death.pid, 10);
		assert_int_equal(ev.death.start, 777);
		assert_int_equal(ev.death.generation, 1);
		assert_int_equal(ev.seq, 55);
		dm->ring = 5;
		assert_int_equal(atel__decode(d, 2, 55, &x, 1, &ev), -EINVAL);
		assert_string_equal(ev.invalid.why, "death record names a different ring than the one it was read from");
	}
	atel_synth_free(&s);
	atel__decoder_free(d);
}

/* Decodes the record at pos, expects -EINVAL with `why`, then checks that
 * the probe record at probe_pos still decodes to `probe_rc`. */
static void expect_invalid(struct atel_decoder *d, const struct atel_synth *s, uint64_t pos, const char *why)
{
	struct atel_event ev;
	int rc = dec_at(d, s, pos, &ev);
	if (rc != -EINVAL || ev.kind != ATEL_EV_INVALID || strcmp(ev.invalid.why, why))
		fail_msg("record at %llu: rc %d kind %d why \"%s\", expected \"%s\"", (unsigned long long)pos, rc,
			 ev.kind, ev.kind == ATEL_EV_INVALID ? ev.invalid.why : "", why);
	assert_int_equal(ev.seq, pos);
	assert_int_equal(ev.ring, s->ring);
}

static void test_invalid_definitions(void **state)
{
	static const double good[] = { 1, 2, 3 };
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint32_t name, key, val, b;
	uint64_t p;
	(void)state;

	atel_synth_init(&s, 0, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	name = atel_synth_str(&s, "m");
	key = atel_synth_str(&s, "k");
	val = atel_synth_str(&s, "v");
	b = atel_synth_bounds(&s, good, 3);
	dec_from(d, &s, 0, &ev);

	/* string: NUL byte, conflicting redefinition; identical redefinition is a no-op */
	p = atel_synth_str(&s, "xyz") ? atel_synth_pos(&s) - 1 : 0;
	s.slots[p].strdef.bytes[1] = '\0';
	expect_invalid(d, &s, p, "string definition contains a NUL byte");
	s.slots[p].h.id = name; /* redefine "m" as "xyz" */
	s.slots[p].strdef.bytes[1] = 'y';
	expect_invalid(d, &s, p, "string id redefined with different content in the same generation");
	s.slots[p].strdef.len = 1;
	s.slots[p].strdef.bytes[0] = 'm';
	assert_int_equal(dec_at(d, &s, p, &ev), 0);

	/* bounds */
	{
		static const double dec[] = { 1, 3, 2 };
		double nan[] = { 1, NAN };
		p = atel_synth_pos(&s);
		atel_synth_bounds(&s, dec, 3);
		expect_invalid(d, &s, p, "histogram bounds are not strictly increasing");
		p = atel_synth_pos(&s);
		atel_synth_bounds(&s, nan, 2);
		expect_invalid(d, &s, p, "histogram bound is not finite");
		p = atel_synth_pos(&s);
		atel_synth_bounds(&s, dec, 2);
		s.slots[p].h.id = b;
		expect_invalid(d, &s, p, "bounds id redefined with different content in the same generation");
		s.slots[p].bounds.count = 0;
		expect_invalid(d, &s, p, "bounds count out of range 1..64");
	}

	/* series: each reference checked, nothing defined on failure */
	{
		union atel_slot x;
		struct atel_rec_seriesdef *sd = &x.seriesdef;
		struct {
			uint8_t mtype;
			uint32_t name_id, bounds_id, key, value;
			uint8_t nlabels;
			const char *why;
		} cases[] = {
			{ ATEL_MT_COUNTER, 99, 0, 0, 0, 0, "series name id is not defined in this generation" },
			{ ATEL_MT_COUNTER, 0, 0, 0, 0, 0, "series name id is 0" },
			{ ATEL_MT_HISTOGRAM, name, 0, 0, 0, 0, "histogram series has no bounds id" },
			{ ATEL_MT_HISTOGRAM, name, 77, 0, 0, 0, "histogram bounds id is not defined in this generation" },
			{ ATEL_MT_GAUGE, name, b, 0, 0, 0, "bounds id set on a counter or gauge series" },
			{ ATEL_MT_GAUGE, name, 0, 55, val, 1, "label key id is not defined in this generation" },
			{ ATEL_MT_GAUGE, name, 0, 0, val, 1, "label key id is 0" },
			{ ATEL_MT_GAUGE, name, 0, key, 56, 1, "label value id is not defined in this generation" },
			{ ATEL_MT_GAUGE, name, 0, key, val, 2, "series has the same label key twice" },
			{ 9, name, 0, 0, 0, 0, "series definition has an unknown metric type" },
			{ ATEL_MT_GAUGE, name, 0, 0, 0, 17, "series definition has more than 16 labels" },
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct atel_synth t;
			memset(&x, 0, sizeof(x));
			x.h.type = ATEL_REC_SERIESDEF;
			x.h.id = 40;
			sd->mtype = cases[i].mtype;
			sd->name_id = cases[i].name_id;
			sd->bounds_id = cases[i].bounds_id;
			sd->nlabels = cases[i].nlabels;
			sd->pairs[0].key_id = sd->pairs[1].key_id = cases[i].key;
			sd->pairs[0].value_id = sd->pairs[1].value_id = cases[i].value;
			atel_synth_init(&t, 0, 1, 10, 11, T0);
			atel_synth_raw(&t, &x, 1);
			expect_invalid(d, &t, 0, cases[i].why);
			atel_synth_free(&t);
		}
		/* nothing was defined: a sample of series 40 is refused */
		p = atel_synth_sample(&s, 40, 1, false);
		expect_invalid(d, &s, p, "sample's series id is not defined in this generation");
		p = atel_synth_sample(&s, 0, 1, false);
		expect_invalid(d, &s, p, "sample's series id is 0");
		/* a valid definition, then a conflicting one */
		p = atel_synth_pos(&s);
		atel_synth_series(&s, ATEL_MT_GAUGE, "m", 0, "k", "v", NULL);
		assert_int_equal(dec_at(d, &s, p, &ev), 0);
		assert_int_equal(dec_at(d, &s, p, &ev), 0); /* identical: no-op */
		s.slots[p - s.base_pos].seriesdef.mtype = ATEL_MT_COUNTER;
		expect_invalid(d, &s, p, "series id redefined with different content in the same generation");
	}
	atel_synth_free(&s);
	atel__decoder_free(d);
}

static void test_invalid_structure_and_events(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint8_t tr[16], sp[8], zero[16] = { 0 };
	union atel_slot x;
	uint64_t p;
	(void)state;

	atel_synth_ids(9, tr, sp);
	atel_synth_init(&s, 0, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	atel_synth_str(&s, "name");
	dec_from(d, &s, 0, &ev);

	p = atel_synth_span_start(&s, zero, sp, NULL, "name", 1);
	expect_invalid(d, &s, p, "span start has an all-zero trace id");
	p = atel_synth_span_start(&s, tr, zero, NULL, "name", 1);
	expect_invalid(d, &s, p, "span start has an all-zero span id");
	p = atel_synth_span_start(&s, tr, sp, NULL, "name", 6);
	expect_invalid(d, &s, p, "span kind is not 1..5");
	p = atel_synth_span_start(&s, tr, sp, NULL, "name", 1);
	s.slots[p].h.id = 500;
	expect_invalid(d, &s, p, "span name id is not defined in this generation");
	p = atel_synth_span_end(&s, zero, sp, 1, NULL);
	expect_invalid(d, &s, p, "span end has an all-zero trace or span id");
	p = atel_synth_span_end(&s, tr, sp, 3, NULL);
	expect_invalid(d, &s, p, "unknown span status");
	p = atel_synth_span_end(&s, tr, sp, 1, "with\001nul");
	s.slots[p].span_end.msg[4] = '\0';
	expect_invalid(d, &s, p, "inline string contains a NUL byte");
	p = atel_synth_attr_bool(&s, tr, sp, "name", true, false);
	s.slots[p].span_attr.v.b = 2;
	expect_invalid(d, &s, p, "bool attribute value is not 0 or 1");
	s.slots[p].span_attr.vtype = 9;
	expect_invalid(d, &s, p, "unknown attribute value type");
	s.slots[p].span_attr.vtype = ATEL_VT_INT;
	s.slots[p].h.id = 0;
	expect_invalid(d, &s, p, "attribute key id is 0");
	p = atel_synth_span_event(&s, tr, sp, "name", 33);
	expect_invalid(d, &s, p, "span event has more than 32 attributes");
	p = atel_synth_span_error(&s, tr, sp, "name", "m");
	s.slots[p].h.id = 321;
	expect_invalid(d, &s, p, "error type id is not defined in this generation");
	p = atel_synth_loss(&s, 0, 1, 0, 0);
	expect_invalid(d, &s, p, "unknown loss cause");

	/* header structure */
	p = atel_synth_loss(&s, 1, 1, 0, 0);
	s.slots[p].h.reserved = 1;
	expect_invalid(d, &s, p, "reserved header byte is not zero");
	s.slots[p].h.reserved = 0;
	s.slots[p].h.cont = 2;
	expect_invalid(d, &s, p, "continuation count does not match the record's length");
	s.slots[p].h.cont = 0;
	s.slots[p].h.type = ATEL_REC_PRODUCER_MAX + 1;
	expect_invalid(d, &s, p, "unknown record type");
	s.slots[p].h.type = 0x42;
	expect_invalid(d, &s, p, "unknown record type");
	s.slots[p].h.type = ATEL_LOGREC_CHUNK;
	expect_invalid(d, &s, p, "chunk record inside a chunk's records");
	/* slot counts that disagree with the record */
	p = atel_synth_span_end(&s, tr, sp, 1, "a message longer than twenty bytes");
	assert_int_equal(atel__decode(d, 0, p, &s.slots[p], 1, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "record is truncated: its continuation slots are missing");
	assert_int_equal(atel__decode(d, 0, p, &s.slots[p], 3, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "record was given more slots than its continuation count");
	assert_int_equal(atel__decode(d, 0, p, &s.slots[p], 0, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "empty record");
	memset(&x, 0, sizeof(x));
	x.h.type = ATEL_REC_LOSS;
	x.h.id = 1;
	assert_int_equal(atel__decode(d, ATEL_RING_COUNT_MAX, 0, &x, 1, &ev), -EINVAL);
	assert_string_equal(ev.invalid.why, "ring index out of range");
	atel_synth_free(&s);
	atel__decoder_free(d);
}

/* The byte at index i of a string record's text (inline part, then continuation slots). */
static char *text_byte(union atel_slot *rec, char *inl, unsigned cap, unsigned i)
{
	return i < cap ? inl + i : (char *)rec[1 + (i - cap) / 64].raw + (i - cap) % 64;
}

/*
 * Inline strings (span end and error messages, string attributes) of every
 * length up to three slots: valid with any non-zero bytes (those that trip
 * word-at-a-time zero tests included) and with anything after the end; a NUL
 * at any position inside is invalid.
 */
static void test_inline_string_nul(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint8_t tr[16], sp[8];
	char text[160];
	(void)state;

	atel_synth_ids(3, tr, sp);
	atel_synth_init(&s, 0, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	atel_synth_str(&s, "key");
	dec_from(d, &s, 0, &ev);
	for (unsigned len = 0; len <= 120; len++) {
		for (unsigned i = 0; i < len; i++)
			text[i] = (char)(i % 4 == 1 ? 0x80 : i % 4 == 2 ? 0x01 : (i * 37) % 255 + 1);
		text[len] = '\0';
		for (int kind = 0; kind < 3; kind++) {
			for (int nul = -2; nul < (int)len; nul++) {
				uint64_t p;
				union atel_slot *rec;
				char *inl;
				unsigned cap;
				const char *got;
				uint32_t got_len;
				if (kind == 0) {
					p = atel_synth_span_end(&s, tr, sp, 1, text);
					rec = &s.slots[p - s.base_pos];
					inl = rec->span_end.msg;
					cap = ATEL_MSG_INLINE;
				} else if (kind == 1) {
					p = atel_synth_span_error(&s, tr, sp, NULL, text);
					rec = &s.slots[p - s.base_pos];
					inl = rec->span_error.msg;
					cap = ATEL_MSG_INLINE;
				} else {
					p = atel_synth_attr_str(&s, tr, sp, "key", text, false);
					rec = &s.slots[p - s.base_pos];
					inl = rec->span_attr.v.s;
					cap = ATEL_ATTR_STR_INLINE;
				}
				if (nul >= 0) {
					*text_byte(rec, inl, cap, (unsigned)nul) = '\0';
					expect_invalid(d, &s, p, "inline string contains a NUL byte");
					continue;
				}
				if (nul == -1) /* after the end: a zero, then bytes a zero test could mistake */
					for (unsigned i = len + 1; i < cap; i++)
						inl[i] = (char)(i % 2 ? 0x01 : 0x80);
				assert_int_equal(dec_at(d, &s, p, &ev), 1);
				got = kind == 0 ? ev.span_end.msg : kind == 1 ? ev.span_error.msg : ev.span_attr.v.s;
				got_len = kind == 0 ? ev.span_end.msg_len : kind == 1 ? ev.span_error.msg_len : ev.span_attr.v.slen;
				assert_int_equal(got_len, len);
				assert_memory_equal(got, text, len + 1);
			}
		}
	}
	atel_synth_free(&s);
	atel__decoder_free(d);
}

static void test_generations_and_rings(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s, t;
	struct atel_event ev;
	uint32_t c;
	uint64_t p;
	(void)state;

	atel_synth_init(&s, 0, 1, 10, 11, T0);
	atel_synth_begin(&s, "a");
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "x", 0, NULL);
	p = atel_synth_sample(&s, c, 1, false);
	assert_int_equal(dec_from(d, &s, 0, &ev), 1);

	/* the same series id on ring 1 is unknown there */
	atel_synth_init(&t, 1, 1, 10, 12, T0);
	atel_synth_sample(&t, c, 1, false);
	expect_invalid(d, &t, 0, "sample's series id is not defined in this generation");
	atel_synth_free(&t);

	/* a new generation (BEGIN) forgets everything */
	s.generation = 2;
	s.pid = 99;
	atel_synth_begin(&s, "b");
	assert_int_equal(dec_at(d, &s, atel_synth_pos(&s) - 1, &ev), 1);
	assert_int_equal(ev.generation, 2);
	assert_int_equal(ev.pid, 99);
	expect_invalid(d, &s, p, "sample's series id is not defined in this generation");

	/* reset_ring does the same */
	s.generation = 3;
	atel_synth_begin(&s, "c");
	c = atel_synth_series(&s, ATEL_MT_COUNTER, "x", 0, NULL);
	p = atel_synth_sample(&s, c, 1, false);
	assert_int_equal(dec_from(d, &s, p - 3, &ev), 1);
	atel__decoder_reset_ring(d, 0);
	expect_invalid(d, &s, p, "sample's series id is not defined in this generation");
	atel__decoder_reset_ring(d, 12345); /* unknown ring: nothing happens */
	atel__decoder_free(NULL);
	atel_synth_free(&s);
	atel__decoder_free(d);
}

struct collect {
	union atel_slot slots[4096];
	unsigned n, records;
};

static int collect(void *arg, const union atel_slot *rec, unsigned nslots)
{
	struct collect *c = arg;
	memcpy(&c->slots[c->n], rec, nslots * sizeof(*rec));
	c->n += nslots;
	c->records++;
	return 0;
}

static int stop_at_two(void *arg, const union atel_slot *rec, unsigned nslots)
{
	unsigned *n = arg;
	(void)rec;
	(void)nslots;
	return ++*n == 2 ? 42 : 0;
}

static void test_defs_reemission(void **state)
{
	static const double bb[] = { 1, 2, 4, 8, 16, 32, 64 };
	struct atel_decoder *a = atel__decoder_new(), *b = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev1, ev2;
	struct collect *col = calloc(1, sizeof(*col));
	char big[600];
	uint32_t h;
	uint64_t p;
	unsigned stops = 0;
	(void)state;

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	atel_synth_init(&s, 5, 4, 10, 11, T0);
	atel_synth_begin(&s, "emit");
	h = atel_synth_series(&s, ATEL_MT_HISTOGRAM, big, atel_synth_bounds(&s, bb, 7), "k1", "v1", "k2", "v2",
			      "k3", "v3", "k4", "v4", "k5", "v5", NULL);
	p = atel_synth_sample(&s, h, 3, false);
	assert_int_equal(dec_from(a, &s, 0, &ev1), 1);

	assert_int_equal(atel__decoder_defs(a, 5, collect, col), 0);
	assert_int_equal(col->slots[0].h.type, ATEL_REC_BEGIN); /* BEGIN first */
	/* BEGIN + 11 strings + 1 bounds + 1 series */
	assert_int_equal(col->records, 1 + 11 + 1 + 1);
	assert_int_equal(atel__decoder_defs(a, 5, stop_at_two, &stops), 42);
	assert_int_equal(atel__decoder_defs(a, 6, collect, col), 0); /* unknown ring: nothing */

	/* a fresh decoder fed with the re-emitted records resolves the sample identically */
	for (unsigned i = 0; i < col->n;) {
		unsigned n = 1u + col->slots[i].h.cont;
		assert_true(atel__decode(b, 5, 0, &col->slots[i], n, &ev2) >= 0);
		i += n;
	}
	assert_int_equal(atel__decode(b, 5, p, &s.slots[p], 1, &ev2), 1);
	assert_int_equal(ev2.pid, 10);
	assert_int_equal(ev2.generation, 4);
	assert_string_equal(ev2.comm, "emit");
	assert_string_equal(ev2.sample.series->name, big);
	assert_int_equal(ev2.sample.series->nlabels, 5);
	assert_string_equal(ev2.sample.series->keys[4], "k5");
	assert_string_equal(ev2.sample.series->values[4], "v5");
	assert_int_equal(ev2.sample.series->nbounds, 7);
	assert_true(ev2.sample.series->bounds[6] == 64);
	assert_true(ev2.sample.series->key_hash == ev1.sample.series->key_hash);
	free(col);
	atel_synth_free(&s);
	atel__decoder_free(a);
	atel__decoder_free(b);
}

static void test_budget(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth s;
	struct atel_event ev;
	uint64_t p;
	(void)state;

	/* the largest id is accepted; one more is refused by the structural check */
	atel_synth_init(&s, 0, 1, 10, 11, T0);
	p = atel_synth_pos(&s);
	atel_synth_str(&s, "far");
	s.slots[p].h.id = ATEL_ID_MAX;
	assert_int_equal(dec_at(d, &s, p, &ev), 0);
	s.slots[p].h.id = ATEL_ID_MAX + 1;
	expect_invalid(d, &s, p, "string id out of range");
	atel_synth_free(&s);
	atel__decoder_free(d);
}

/*
 * The decoder-wide limit of definition slots (what a segment file header
 * holds, lowered here to 10): new definitions past it are refused with the
 * reason, whatever ring they come from; a repeat of a definition costs
 * nothing; a ring reset (a new owner) gives its slots back.
 */
static void test_header_budget(void **state)
{
	struct atel_decoder *d = atel__decoder_new();
	struct atel_synth a, b;
	struct atel_event ev;
	uint64_t pa[6], pb[6];
	char name[16];
	(void)state;

	atel__decoder_set_def_slots_max(d, 10);
	atel_synth_init(&a, 0, 1, 10, 11, T0);
	atel_synth_init(&b, 1, 1, 10, 12, T0);
	atel_synth_begin(&a, "a");
	atel_synth_begin(&b, "b");
	for (int i = 0; i < 6; i++) {
		pa[i] = atel_synth_pos(&a);
		snprintf(name, sizeof(name), "a%d", i);
		atel_synth_str(&a, name);
		pb[i] = atel_synth_pos(&b);
		snprintf(name, sizeof(name), "b%d", i);
		atel_synth_str(&b, name);
	}
	assert_int_equal(dec_at(d, &a, a.base_pos, &ev), 1); /* BEGIN: no definition slot */
	assert_int_equal(dec_at(d, &b, b.base_pos, &ev), 1);
	for (int i = 0; i < 6; i++)
		assert_int_equal(dec_at(d, &a, pa[i], &ev), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(dec_at(d, &b, pb[i], &ev), 0);
	/* 10 slots held: an 11th definition is refused, in either ring */
	expect_invalid(d, &b, pb[4], "the definitions of all rings exceed the 256 MiB a segment file header holds");
	/* a repeat of a known definition is not a new one */
	assert_int_equal(dec_at(d, &a, pa[0], &ev), 0);
	/* ring 0's owner is gone: its 6 slots are free again */
	atel__decoder_reset_ring(d, 0);
	assert_int_equal(dec_at(d, &b, pb[4], &ev), 0);
	assert_int_equal(dec_at(d, &b, pb[5], &ev), 0);
	atel_synth_free(&a);
	atel_synth_free(&b);
	atel__decoder_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_begin_and_end),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_spans),
		cmocka_unit_test(test_invalid_definitions),
		cmocka_unit_test(test_invalid_structure_and_events),
		cmocka_unit_test(test_inline_string_nul),
		cmocka_unit_test(test_generations_and_rings),
		cmocka_unit_test(test_defs_reemission),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_header_budget),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
