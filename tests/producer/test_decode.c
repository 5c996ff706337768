/* SPDX-License-Identifier: MIT */
/*
 * Cross-check with the consumer: everything libatel writes (every record
 * type, continuation slots, 16-label series, histogram bounds, long strings,
 * events with attributes, LOSS after a full ring, END) decodes through the
 * consumer's validating decoder (consumer/log/decode.h) with no invalid record,
 * and decodes to what was recorded.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "atel_test.h"
#include "decode.h"
#include "ptest.h"

struct tally {
	unsigned ev[ATEL_EV_LOSS_TOTAL + 1];
	double tool_sum, fill_sum, hist_sum;
	uint64_t fill_calls, fill_folded, hist_count, hist_b[4];
	int saw_long_attr, saw_error, saw_wide, saw_event_attr, saw_end_msg;
	uint64_t loss;
};

static void decode_ring(struct atel_decoder *d, const struct atel_segment *seg, uint32_t r, struct tally *t,
			const char *longv)
{
	struct pt_ring pr;

	assert_int_equal(pt_read(seg, r, &pr), 0);
	for (size_t i = 0; i < pr.n; i++) {
		struct atel_event ev;
		int rc = atel__decode(d, r, pr.recs[i].pos, pr.recs[i].s, pr.recs[i].nslots, &ev);
		if (rc < 0)
			fail_msg("ring %u record %zu (%s) rejected by the consumer: %s", r, i,
				 atel__rec_type_name(pr.recs[i].s->h.type), ev.invalid.why);
		if (rc == 0)
			continue;
		t->ev[ev.kind]++;
		switch (ev.kind) {
		case ATEL_EV_SAMPLE:
			if (!strcmp(ev.sample.series->name, "tool_call_duration_seconds"))
				t->tool_sum += ev.sample.value;
			if (!strcmp(ev.sample.series->name, "fill_total")) {
				t->fill_sum += ev.sample.value;
				t->fill_calls += ev.sample.count;
				t->fill_folded += ev.sample.folded;
				assert_true(ev.sample.first_ns <= ev.ts_ns);
			}
			if (ev.sample.series->nlabels == 16) {
				assert_string_equal(ev.sample.series->keys[0], "k00");
				assert_string_equal(ev.sample.series->values[15], "v15");
				t->saw_wide = 1;
			}
			break;
		case ATEL_EV_SPAN_ATTR:
			if (ev.span_attr.v.vtype == ATEL_VT_STR && ev.span_attr.v.slen > 100) {
				assert_string_equal(ev.span_attr.v.s, longv);
				t->saw_long_attr = 1;
			}
			if (ev.span_attr.event_attr)
				t->saw_event_attr++;
			break;
		case ATEL_EV_SPAN_ERROR:
			assert_string_equal(ev.span_error.type, "ValueError");
			assert_int_equal(ev.span_error.msg_len, strlen(longv));
			assert_string_equal(ev.span_error.msg, longv);
			t->saw_error = 1;
			break;
		case ATEL_EV_SPAN_END:
			if (ev.span_end.msg_len)
				t->saw_end_msg = !strcmp(ev.span_end.msg, "done: all good");
			break;
		case ATEL_EV_HISTFOLD:
			assert_string_equal(ev.histfold.series->name, "fill_seconds");
			assert_int_equal(ev.histfold.nbuckets, 4);
			t->hist_count += ev.histfold.count;
			t->hist_sum += ev.histfold.sum;
			for (unsigned b = 0; b < 4; b++)
				t->hist_b[b] += ev.histfold.buckets[b];
			break;
		case ATEL_EV_LOSS:
			t->loss += ev.loss.count;
			break;
		default:
			break;
		}
	}
	pt_free(&pr);
}

static void test_consumer_decodes_everything(void **state)
{
	char path[256], longv[300];
	struct atel_segment seg;
	struct atel_decoder *d = atel__decoder_new();
	struct tally t;
	const char *kv[32];
	char keys[16][8], vals[16][8];
	atel_series wide, fill, hist;
	atel_span root, child;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_non_null(d);
	pt_path(path, sizeof(path), "decode");
	assert_int_equal(pt_create(&seg, path, 2, 256), 0);
	assert_int_equal(atel_init(path), 0);
	for (size_t i = 0; i < sizeof(longv) - 1; i++)
		longv[i] = (char)('a' + i % 26);
	longv[sizeof(longv) - 1] = '\0';
	for (int k = 0; k < 16; k++) {
		snprintf(keys[k], sizeof(keys[k]), "k%02d", k);
		snprintf(vals[k], sizeof(vals[k]), "v%02d", k);
		kv[2 * k] = keys[k];
		kv[2 * k + 1] = vals[k];
	}
	wide = atel_series_get(ATEL_GAUGE, "wide_gauge", kv, 16);
	atel_set(wide, 3);
	atel_track_tool_usage(&(atel_tool_usage){ .tool = "Read", .duration_ms = 250, .success = true });
	atel_track_tool_usage(&(atel_tool_usage){ .tool = "Bash", .duration_ms = 750, .success = false,
						   .error_type = "exit_1" });
	atel_track_agent_execution(&(atel_agent_execution){ .agent_type = "coder", .phase = "code",
							    .duration_ms = 1200, .tokens = 99, .success = true });
	root = atel_trace_start("session", ATEL_SPAN_SERVER);
	atel_span_set_str(&root, "long", longv);
	atel_span_set_double(&root, "pi", 3.25);
	atel_span_set_bool(&root, "ok", false);
	child = atel_span_start(&root, "step", ATEL_SPAN_CLIENT);
	atel_span_add_event_attrs(&child, "retry",
				  (atel_attr[]){ ATEL_ATTR_I("n", 2), ATEL_ATTR_S("why", longv), ATEL_ATTR_B("b", true) }, 3);
	atel_span_record_error(&child, "ValueError", longv);
	atel_span_end(&child, ATEL_STATUS_ERROR, "done: all good");
	atel_span_end(&root, ATEL_STATUS_OK, NULL);
	/* fill the ring, then let the consumer read and free it: LOSS comes next */
	{
		/* the consumer reads and frees each batch; positions continue */
		uint32_t r = (uint32_t)pt_ring_of(&seg, getpid());
		decode_ring(d, &seg, r, &t, longv);
		pt_drain(&seg, r);
		fill = atel_counter("fill_total", NULL);
		hist = atel_histogram_bounds("fill_seconds", (const double[]){ 1, 2, 3 }, 3, NULL);
		for (int i = 0; i < 400; i++)
			atel_add(fill, 1); /* the ring fills: the rest folds */
		for (int i = 0; i < 10; i++)
			atel_observe(hist, i % 4 + 0.5);
		decode_ring(d, &seg, r, &t, longv);
		pt_drain(&seg, r);
		atel_add(fill, 1); /* the folded values first, then the sample */
		atel_shutdown();   /* END */
		decode_ring(d, &seg, r, &t, longv);
	}
	assert_int_equal(t.ev[ATEL_EV_INVALID], 0);
	assert_int_equal(t.ev[ATEL_EV_BEGIN], 1);
	assert_int_equal(t.ev[ATEL_EV_END], 1);
	assert_true(t.saw_wide && t.saw_long_attr && t.saw_error && t.saw_end_msg);
	assert_int_equal(t.saw_event_attr, 3);
	assert_true(fabs(t.tool_sum - 1.0) < 1e-12);
	assert_int_equal(t.ev[ATEL_EV_SPAN_START], 2);
	assert_int_equal(t.ev[ATEL_EV_SPAN_END], 2);
	/* ABI 2: no LOSS record in a ring; a full ring folds, and every call is accounted for */
	assert_int_equal(t.ev[ATEL_EV_LOSS], 0);
	assert_true(t.fill_folded >= 1);
	assert_true(t.fill_sum == 401.0);
	assert_int_equal(t.fill_calls, 401);
	assert_int_equal(t.ev[ATEL_EV_HISTFOLD], 1);
	assert_int_equal(t.hist_count, 10);
	assert_true(t.hist_sum == 3 * 0.5 + 3 * 1.5 + 2 * 2.5 + 2 * 3.5);
	assert_int_equal(t.hist_b[0], 3);
	assert_int_equal(t.hist_b[1], 3);
	assert_int_equal(t.hist_b[2], 2);
	assert_int_equal(t.hist_b[3], 2);
	atel__decoder_free(d);
	atel__segment_detach(&seg);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consumer_decodes_everything),
	};

	return ATEL_TEST_RUN(tests, NULL, NULL);
}
