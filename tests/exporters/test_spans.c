/* SPDX-License-Identifier: MIT */
/*
 * The span assembler (exporters/encode/spans.h), fed hand-built events: a
 * span finishes on START + END in either order, an ERROR makes it an error
 * whatever END says, a producer's death closes its open spans, the table
 * bound evicts the oldest, placeholders expire, skip_until drops delivered
 * spans, and the OTLP view says what the exporter and `atel traces` send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "atel_test.h"
#include "buf.h"
#include "otlp_encode.h"
#include "spans.h"

static const uint8_t T1[16] = { 1 }, T2[16] = { 2 };
static uint64_t g_pos;

static struct atel_log_pos pos(uint64_t n)
{
	return (struct atel_log_pos){ 1, 64, (uint32_t)n };
}

/* Applies ev as the next record of the log. */
static void feed(struct atel_spanasm *a, struct atel_event *ev)
{
	struct atel_log_pos before = pos(g_pos), after = pos(g_pos + 1);

	g_pos++;
	ev->ring = 0;
	ev->generation = 1;
	ev->pid = 42;
	ev->tid = 43;
	ev->comm = "agent";
	atel__spanasm_apply(a, ev, &before, &after);
}

static void start(struct atel_spanasm *a, const uint8_t *t, uint8_t id, uint8_t parent, const char *name, uint64_t ts)
{
	struct atel_event ev = { .kind = ATEL_EV_SPAN_START, .ts_ns = ts };

	memcpy(ev.span_start.trace_id, t, 16);
	ev.span_start.span_id[0] = id;
	ev.span_start.parent_id[0] = parent;
	ev.span_start.kind = 3;
	ev.span_start.name = name;
	feed(a, &ev);
}

static void end(struct atel_spanasm *a, const uint8_t *t, uint8_t id, uint8_t status, const char *msg, uint64_t ts)
{
	struct atel_event ev = { .kind = ATEL_EV_SPAN_END, .ts_ns = ts };

	memcpy(ev.span_end.trace_id, t, 16);
	ev.span_end.span_id[0] = id;
	ev.span_end.status = status;
	ev.span_end.msg = msg ? msg : "";
	feed(a, &ev);
}

static void error(struct atel_spanasm *a, const uint8_t *t, uint8_t id, const char *type, const char *msg)
{
	struct atel_event ev = { .kind = ATEL_EV_SPAN_ERROR, .ts_ns = 5 };

	memcpy(ev.span_error.trace_id, t, 16);
	ev.span_error.span_id[0] = id;
	ev.span_error.type = type;
	ev.span_error.msg = msg;
	feed(a, &ev);
}

static void attr(struct atel_spanasm *a, const uint8_t *t, uint8_t id, const char *key, int64_t v)
{
	struct atel_event ev = { .kind = ATEL_EV_SPAN_ATTR };

	memcpy(ev.span_attr.trace_id, t, 16);
	ev.span_attr.span_id[0] = id;
	ev.span_attr.key = key;
	ev.span_attr.v.vtype = ATEL_VT_INT;
	ev.span_attr.v.i = v;
	feed(a, &ev);
}

static void test_finish_in_any_order(void **state)
{
	struct atel_spanasm *a;
	struct atel_span *s;
	struct atel_otlp_span o;

	(void)state;
	g_pos = 0;
	assert_int_equal(atel__spanasm_new(&a, NULL), 0);
	end(a, T1, 2, 1, NULL, 20);                  /* END before START (another ring) */
	attr(a, T1, 2, "k", 1);
	attr(a, T1, 2, "k", 2);                      /* replaces */
	assert_int_equal(atel__spanasm_nready(a), 0);
	start(a, T1, 2, 1, "child", 10);
	assert_int_equal(atel__spanasm_nready(a), 1);
	s = atel__spanasm_ready(a);
	assert_string_equal(s->name, "child");
	assert_int_equal(s->nattrs, 1);
	assert_int_equal(s->attrs[0].v.i, 2);
	assert_int_equal(s->start_ns, 10);
	assert_int_equal(s->end_ns, 20);
	assert_int_equal(s->tid, 43);
	assert_string_equal(s->comm, "agent");
	assert_int_equal(s->first_pos.rec_idx, 0);   /* its first record: the END */
	assert_int_equal(s->done_pos.rec_idx, 4);    /* just past the START */
	atel__span_otlp(s, &o, NULL);
	assert_int_equal(o.status, 1);
	assert_int_equal(o.parent_id[0], 1);

	/* records of a finished span are ignored; an open span stays held */
	attr(a, T1, 2, "late", 1);
	assert_int_equal(atel__spanasm_ready(a)->nattrs, 1);
	start(a, T2, 9, 0, "open", 30);
	assert_int_equal(atel__spanasm_nready(a), 1);
	s = atel__spanasm_first(a);
	assert_string_equal(s->name, "child");
	s = atel__spanasm_next(s);
	assert_string_equal(s->name, "open");
	assert_false(s->ended);
	atel__spanasm_release(a);
	assert_int_equal(atel__spanasm_nready(a), 0);
	assert_string_equal(atel__spanasm_first(a)->name, "open");
	atel__spanasm_free(a);
}

static void test_error_wins_over_end(void **state)
{
	struct atel_spanasm *a;
	struct atel_otlp_span o;
	struct atel_otlp_event ev[4];
	const struct atel_span *s;

	(void)state;
	g_pos = 0;
	assert_int_equal(atel__spanasm_new(&a, NULL), 0);
	start(a, T1, 3, 0, "tool", 1);
	error(a, T1, 3, "timeout", "took too long");
	end(a, T1, 3, 1, NULL, 9); /* END says ok, without a message */
	s = atel__spanasm_ready(a);
	atel__span_otlp(s, &o, ev);
	assert_int_equal(o.status, 2);
	assert_string_equal(o.status_msg, "took too long"); /* no END message: the error's */
	assert_int_equal(o.nevents, 1);
	assert_string_equal(o.events[0].name, "exception");
	assert_int_equal(o.events[0].nattrs, 2);
	assert_string_equal(o.events[0].attrs[0].key, "exception.type");
	atel__spanasm_free(a);
}

/* What the producer could not record (SPAN_END's counts) and what the assembler's caps cut reach OTLP as
 * droppedAttributesCount / droppedEventsCount, in JSON and protobuf (fields 10 and 12). */
static void test_dropped_counts(void **state)
{
	struct atel_spanasm *a;
	struct atel_otlp_span o;
	struct atel_otlp_event ev[4];
	struct atel_otlp_resource res = { .scope_name = "atel", .scope_version = "0" };
	struct atel_buf b = { 0 };
	const struct atel_span *s;
	struct atel_event e = { .kind = ATEL_EV_SPAN_END, .ts_ns = 9 };

	(void)state;
	g_pos = 0;
	assert_int_equal(atel__spanasm_new(&a, NULL), 0);
	start(a, T2, 4, 0, "busy", 1);
	for (int i = 0; i < (int)ATEL_SPAN_ATTRS_MAX + 2; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		attr(a, T2, 4, k, i); /* two over the assembler's cap */
	}
	memcpy(e.span_end.trace_id, T2, 16);
	e.span_end.span_id[0] = 4;
	e.span_end.msg = "";
	e.span_end.dropped_attrs = 3; /* the ring was full for three attributes and one event */
	e.span_end.dropped_events = 1;
	feed(a, &e);
	s = atel__spanasm_ready(a);
	assert_non_null(s);
	atel__span_otlp(s, &o, ev);
	assert_int_equal(o.nattrs, ATEL_SPAN_ATTRS_MAX);
	assert_int_equal(o.dropped_attrs, 3 + 2);
	assert_int_equal(o.dropped_events, 1);
	assert_int_equal(atel__otlp_encode_spans(&b, ATEL_OTLP_JSON, &res, &o, 1), 0);
	atel__buf_putc(&b, '\0');
	assert_non_null(strstr(b.data, "\"droppedAttributesCount\":5"));
	assert_non_null(strstr(b.data, "\"droppedEventsCount\":1"));
	b.len = 0;
	assert_int_equal(atel__otlp_encode_spans(&b, ATEL_OTLP_PROTOBUF, &res, &o, 1), 0);
	/* tag 10 varint (0x50) then 5; tag 12 varint (0x60) then 1 */
	assert_non_null(memmem(b.data, b.len, "\x50\x05", 2));
	assert_non_null(memmem(b.data, b.len, "\x60\x01", 2));
	atel__buf_free(&b);
	atel__spanasm_free(a);
}

static void test_death_eviction_orphans(void **state)
{
	struct atel_spanasm_opts so = { .open_max = 2, .orphan_window = 4 };
	struct atel_spanasm_stats st;
	struct atel_spanasm *a;
	struct atel_event death = { .kind = ATEL_EV_DEATH, .ts_ns = 100 };

	(void)state;
	g_pos = 0;
	assert_int_equal(atel__spanasm_new(&a, &so), 0);
	start(a, T1, 1, 0, "a", 1);
	start(a, T1, 2, 0, "b", 2);
	start(a, T1, 3, 0, "c", 3); /* the table holds 2 open spans: "a" is closed as an error */
	atel__spanasm_stats(a, &st);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(atel__spanasm_nready(a), 1);
	assert_string_equal(atel__spanasm_ready(a)->name, "a");
	assert_int_equal(atel__spanasm_ready(a)->status, 2);

	death.death.pid = 42; /* the producer of "b" and "c" died */
	feed(a, &death);
	atel__spanasm_stats(a, &st);
	assert_int_equal(st.producer_exited, 2);
	assert_int_equal(st.open, 0);
	assert_int_equal(atel__spanasm_nready(a), 3);

	attr(a, T2, 7, "x", 1); /* a placeholder: its START never comes */
	for (int i = 0; i < 4; i++) /* 4 records later, 7 is out of the window, 8 not yet */
		attr(a, T2, 8, "y", i);
	atel__spanasm_expire(a);
	atel__spanasm_stats(a, &st);
	assert_int_equal(st.orphans, 1);
	atel__spanasm_free(a);
}

static void test_skip_until(void **state)
{
	struct atel_spanasm *a;
	struct atel_spanasm_stats st;
	struct atel_log_pos upto = pos(2);

	(void)state;
	g_pos = 0;
	assert_int_equal(atel__spanasm_new(&a, NULL), 0);
	atel__spanasm_skip_until(a, &upto);
	start(a, T1, 1, 0, "delivered", 1);
	end(a, T1, 1, 1, NULL, 2);   /* finishes at position 2: delivered before */
	start(a, T1, 2, 0, "new", 3);
	end(a, T1, 2, 1, NULL, 4);
	atel__spanasm_stats(a, &st);
	assert_int_equal(st.skipped, 1);
	assert_int_equal(atel__spanasm_nready(a), 1);
	assert_string_equal(atel__spanasm_ready(a)->name, "new");
	atel__spanasm_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_finish_in_any_order),
		cmocka_unit_test(test_error_wins_over_end),
		cmocka_unit_test(test_dropped_counts),
		cmocka_unit_test(test_death_eviction_orphans),
		cmocka_unit_test(test_skip_until),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
