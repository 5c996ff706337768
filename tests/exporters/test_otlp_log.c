/* SPDX-License-Identifier: MIT */
/*
 * test_otlp_log: the OTLP exporter over REAL segment files (written by the
 * log writer through tests/common/synth), with the real log reader:
 *  1. two producer rings, many small frames and several files, spans with
 *     attributes, events and errors, one span started on one ring and ended
 *     on another, metric samples in between, one span left open;
 *  2. the exporter delivers every finished span exactly once and persists
 *     its cursor; it is stopped;
 *  3. a new exporter starts, and while it runs the writer appends more files
 *     (the open span ends, new spans): the exporter follows the growing log
 *     and delivers exactly the new spans; nothing is re-sent.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "atel_test.h"
#include "otlp_export.h"
#include "otlp_test_util.h"
#include "synth.h"

static struct atel_daemon D;

static void ids(unsigned n, uint8_t t[16], uint8_t s[8])
{
	atel_synth_ids(1000 + n, t, s);
}

static void hex_of(unsigned n, char out[17])
{
	uint8_t t[16], s[8];

	ids(n, t, s);
	atel__hex(s, 8, out);
}

/* A finished span n on stream st with an attribute of each type and an event. */
static void full_span(struct atel_synth *st, unsigned n, unsigned parent)
{
	uint8_t t[16], s[8], pt[16], ps[8];
	char name[32];

	ids(n, t, s);
	if (parent) {
		ids(parent, pt, ps);
		memcpy(t, pt, 16); /* same trace */
	}
	snprintf(name, sizeof(name), "tool-call-%u", n);
	atel_synth_span_start(st, t, s, parent ? ps : NULL, name, 3);
	atel_synth_attr_str(st, t, s, "tool", "grep", false);
	atel_synth_attr_int(st, t, s, "n", (int64_t)n, false);
	atel_synth_attr_double(st, t, s, "ratio", 0.5, false);
	atel_synth_attr_bool(st, t, s, "cached", n % 2, false);
	atel_synth_span_event(st, t, s, "started", 1);
	atel_synth_attr_int(st, t, s, "attempt", 1, true);
	if (n % 7 == 0)
		atel_synth_span_error(st, t, s, "Timeout", "tool timed out");
	atel_synth_span_end(st, t, s, n % 7 == 0 ? 2 : 1, "");
}

static struct atel_otlp *start_exporter(int port, const char *segdir, const char *statedir)
{
	struct atel_otlp_settings st;
	struct atel_otlp_opts op;
	struct atel_otlp *o;
	char err[256], ep[64];

	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	memset(&st, 0, sizeof(st));
	{
		struct atel_otlp_config cfg;

		memset(&cfg, 0, sizeof(cfg));
		cfg.endpoint = ep;
		cfg.compression = "gzip";
		assert_int_equal(atel__otlp_settings_resolve(&st, &cfg, NULL, err, sizeof(err)), 0);
	}
	st.max_batch_items = 64; /* several batches */
	memset(&op, 0, sizeof(op));
	op.d = &D;
	op.settings = &st;
	op.segments_dir = segdir;
	op.state_dir = statedir;
	op.traces = true;
	op.poll_ms = 20;
	op.backoff_base_ms = 10;
	op.backoff_max_ms = 200;
	assert_int_equal(atel__otlp_start_opts(&o, &op, err, sizeof(err)), 0);
	atel__otlp_settings_free(&st);
	return o;
}

static uint64_t acked(struct atel_otlp *o)
{
	struct atel_otlp_stats st;

	atel__otlp_get_stats(o, &st);
	return st.spans_acked;
}

static void test_real_log(void **state)
{
	char root[256], segdir[300], statedir[300];
	struct atel_synth a, b;
	struct atel_synth *rings[2] = { &a, &b };
	struct atel_synth_log_opts lo = { .ring_count = 2, .frame_bytes = 2048, .rotate_bytes = 65536, .batch = 64,
					  .flush_each_round = true };
	uint64_t ring0_end;
	struct collector c = { 0 };
	struct atel_otlp *o;
	struct atel_otlp_stats st;
	uint8_t t[16], s[8];
	char hex[17];

	(void)state;
	assert_int_equal(atel_synth_tmpdir(root, sizeof(root), "otlp-log"), 0);
	snprintf(segdir, sizeof(segdir), "%s/segments", root);
	snprintf(statedir, sizeof(statedir), "%s/state", root);
	atel__state_init(&D, NULL, NULL);

	/* phase 1: spans 1..120 on ring 0, 121..180 on ring 1, span 500 open,
	 * span 600 started on ring 0 and ended on ring 1 */
	atel_synth_init(&a, 0, 1, 4242, 4243, 1700000000000000000ull);
	atel_synth_init(&b, 1, 1, 4242, 4244, 1700000000000000000ull);
	atel_synth_begin(&a, "agent");
	atel_synth_begin(&b, "agent");
	atel_synth_agent_workload(&a, 1, 300, 0); /* metric samples before the spans */
	for (unsigned n = 1; n <= 120; n++)
		full_span(&a, n, n % 10 ? (n / 10) * 10 + 1 : 0);
	for (unsigned n = 121; n <= 180; n++)
		full_span(&b, n, 0);
	ids(500, t, s);
	atel_synth_span_start(&a, t, s, NULL, "long-running", 1);
	ids(600, t, s);
	atel_synth_span_start(&a, t, s, NULL, "handed-over", 1);
	atel_synth_agent_workload(&b, 2, 300, 0);
	atel_synth_span_end(&b, t, s, 1, "");
	assert_int_equal(atel_synth_write_log(segdir, 0x51, rings, 2, &lo), 0);
	ring0_end = atel_synth_pos(&a);
	atel_synth_free(&a);
	atel_synth_free(&b);

	collector_start(&c, "", 0);
	capture_begin();
	o = start_exporter(c.port, segdir, statedir);
	WAIT_FOR(acked(o) == 181);
	atel__otlp_get_stats(o, &st);
	atel__otlp_stop(o);
	free(capture_end());
	assert_int_equal(st.open_spans, 1);
	assert_true(st.acked_batches[0] >= 3); /* 181 spans in batches of at most 64 */
	for (unsigned n = 1; n <= 180; n++) {
		hex_of(n, hex);
		assert_int_equal(delivered_hex(&c, hex), 1);
	}
	hex_of(600, hex);
	assert_int_equal(delivered_hex(&c, hex), 1);
	hex_of(500, hex);
	assert_int_equal(delivered_hex(&c, hex), 0);
	{
		cJSON *recs = records(&c), *sp, *a7;

		hex_of(7, hex);
		sp = find_span_hex(recs, hex);
		assert_non_null(sp);
		assert_string_equal(jstr(sp, "name"), "tool-call-7");
		assert_int_equal((int)jnum(sp, "status"), 2);
		assert_string_equal(jstr(sp, "statusMessage"), "tool timed out");
		a7 = cJSON_GetObjectItem(sp, "attributes");
		assert_string_equal(jstr(a7, "tool"), "grep");
		assert_int_equal((int)jnum(a7, "n"), 7);
		assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(sp, "events")), 2);
		hex_of(1, hex);
		assert_string_equal(jstr(sp, "parentSpanId"), hex);
		cJSON_Delete(recs);
	}

	/* phase 3: a new exporter follows the log while the writer appends */
	capture_begin();
	o = start_exporter(c.port, segdir, statedir);
	atel_synth_init(&a, 0, 2, 4242, 4243, 1700000100000000000ull);
	a.base_pos = ring0_end; /* ring positions continue */
	atel_synth_begin(&a, "agent");
	ids(500, t, s);
	atel_synth_span_end(&a, t, s, 1, "");
	for (unsigned n = 201; n <= 260; n++)
		full_span(&a, n, 0);
	assert_int_equal(atel_synth_write_log(segdir, 0x51, rings, 1, &lo), 0);
	atel_synth_free(&a);
	WAIT_FOR(acked(o) == 61);
	atel__otlp_get_stats(o, &st);
	atel__otlp_stop(o);
	free(capture_end());
	collector_stop(&c);
	assert_int_equal(st.open_spans, 0);
	assert_true(st.spans_skipped_acked >= 1); /* re-read from span 500's START */
	for (unsigned n = 1; n <= 260; n++) {
		if (n > 180 && n < 201)
			continue;
		hex_of(n, hex);
		assert_int_equal(delivered_hex(&c, hex), 1);
	}
	hex_of(500, hex);
	assert_int_equal(delivered_hex(&c, hex), 1);
	hex_of(600, hex);
	assert_int_equal(delivered_hex(&c, hex), 1);
	unlink(c.record);
	atel__state_fini(&D);
	atel_synth_rmtree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_log),
	};
	int rc;

	snprintf(g_tmp, sizeof(g_tmp), "/tmp/atel-otlp-logtest-%d", (int)getpid());
	mkdir(g_tmp, 0700);
	signal(SIGPIPE, SIG_IGN);
	rc = ATEL_TEST_RUN(tests, NULL, NULL);
	rmdir(g_tmp);
	return rc;
}
