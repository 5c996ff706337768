/* SPDX-License-Identifier: MIT */
/* Prometheus text format 0.0.4: exact output for hand-built snapshots. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atel_test.h"
#include "agg_helpers.h"
#include "state.h"
#include "prometheus.h"
#include "selfmetrics.h"

static char *encode(const struct atel_agg_snapshot *s, const struct atel_prom_self *self, uint32_t *skipped)
{
	struct atel_buf b = { 0 };

	assert_int_equal(atel__prom_encode(&b, s, self ? atel__prom_self : NULL, (void *)self, skipped), 0);
	if (!b.data)
		return strdup("");
	return b.data;
}

static void expect(const struct atel_agg_snapshot *s, const char *want)
{
	char *got = encode(s, NULL, NULL);

	assert_string_equal(got, want);
	free(got);
}

static void test_counter_total_and_escaping(void **state)
{
	const char *k[] = { "agent_type", "model" }, *v[] = { "coder", "a\"b\\c\nd" };
	struct atel_agg_series se = { .nlabels = 2, .keys = k, .values = v, .value = 1500 };
	struct atel_agg_family f = { .name = "agent_tokens_used", .help = "Tokens consumed",
				     .mtype = ATEL_MT_COUNTER, .nseries = 1, .series = &se };
	struct atel_agg_snapshot s = { .nfamilies = 1, .families = &f };

	(void)state;
	expect(&s, "# HELP agent_tokens_used_total Tokens consumed\n"
		   "# TYPE agent_tokens_used_total counter\n"
		   "agent_tokens_used_total{agent_type=\"coder\",model=\"a\\\"b\\\\c\\nd\"} 1500\n");
	/* a name that already ends in _total is left alone */
	f.name = "tool_calls_total";
	f.help = "help with \\ backslash\nand \"quotes\"";
	se.nlabels = 0;
	se.value = 2.5;
	expect(&s, "# HELP tool_calls_total help with \\\\ backslash\\nand \"quotes\"\n"
		   "# TYPE tool_calls_total counter\n"
		   "tool_calls_total 2.5\n");
}

static void test_histogram_cumulative(void **state)
{
	static const double bounds[] = { 0.125, 0.5, 1 };
	static const uint64_t buckets[] = { 2, 1, 0, 1 };
	const char *k[] = { "le", "tool" }, *v[] = { "x", "Read" };
	struct atel_agg_series se[2] = {
		{ .nlabels = 1, .keys = k + 1, .values = v + 1, .count = 4, .sum = 2.4375,
		  .nbounds = 3, .bounds = bounds, .buckets = buckets },
		{ .nlabels = 2, .keys = k, .values = v, .count = 4, .sum = 2.4375,
		  .nbounds = 3, .bounds = bounds, .buckets = buckets },
	};
	struct atel_agg_family f = { .name = "tool_call_duration_seconds", .help = "Tool call duration",
				     .mtype = ATEL_MT_HISTOGRAM, .nseries = 2, .series = se };
	struct atel_agg_snapshot s = { .nfamilies = 1, .families = &f };

	(void)state;
	expect(&s, "# HELP tool_call_duration_seconds Tool call duration\n"
		   "# TYPE tool_call_duration_seconds histogram\n"
		   "tool_call_duration_seconds_bucket{tool=\"Read\",le=\"0.125\"} 2\n"
		   "tool_call_duration_seconds_bucket{tool=\"Read\",le=\"0.5\"} 3\n"
		   "tool_call_duration_seconds_bucket{tool=\"Read\",le=\"1\"} 3\n"
		   "tool_call_duration_seconds_bucket{tool=\"Read\",le=\"+Inf\"} 4\n"
		   "tool_call_duration_seconds_sum{tool=\"Read\"} 2.4375\n"
		   "tool_call_duration_seconds_count{tool=\"Read\"} 4\n"
		   /* a producer's own "le" label cannot collide with the bucket bound */
		   "tool_call_duration_seconds_bucket{exported_le=\"x\",tool=\"Read\",le=\"0.125\"} 2\n"
		   "tool_call_duration_seconds_bucket{exported_le=\"x\",tool=\"Read\",le=\"0.5\"} 3\n"
		   "tool_call_duration_seconds_bucket{exported_le=\"x\",tool=\"Read\",le=\"1\"} 3\n"
		   "tool_call_duration_seconds_bucket{exported_le=\"x\",tool=\"Read\",le=\"+Inf\"} 4\n"
		   "tool_call_duration_seconds_sum{exported_le=\"x\",tool=\"Read\"} 2.4375\n"
		   "tool_call_duration_seconds_count{exported_le=\"x\",tool=\"Read\"} 4\n");
}

static void test_float_formatting(void **state)
{
	const char *k[] = { "v" };
	const char *names[] = { "nan", "pinf", "ninf", "tenth", "small", "big", "neg", "max", "third", "zero" };
	double vals[] = { NAN, INFINITY, -INFINITY, 0.1, 1e-7, 123456789012.0, -3, 1.7976931348623157e308,
			  1.0 / 3, 0 };
	struct atel_agg_series se[10];
	struct atel_agg_family f = { .name = "g", .help = "h", .mtype = ATEL_MT_GAUGE, .nseries = 10, .series = se };
	struct atel_agg_snapshot s = { .nfamilies = 1, .families = &f };

	(void)state;
	for (int i = 0; i < 10; i++)
		se[i] = (struct atel_agg_series){ .nlabels = 1, .keys = k, .values = &names[i], .value = vals[i] };
	expect(&s, "# HELP g h\n# TYPE g gauge\n"
		   "g{v=\"nan\"} NaN\n"
		   "g{v=\"pinf\"} +Inf\n"
		   "g{v=\"ninf\"} -Inf\n"
		   "g{v=\"tenth\"} 0.1\n"
		   "g{v=\"small\"} 1e-07\n"
		   "g{v=\"big\"} 123456789012\n"
		   "g{v=\"neg\"} -3\n"
		   "g{v=\"max\"} 1.7976931348623157e+308\n"
		   "g{v=\"third\"} 0.3333333333333333\n"
		   "g{v=\"zero\"} 0\n");
}

/* Every finite double reads back exactly (random bit patterns and short
 * decimals, which take the fast path). */
static void test_float_roundtrip(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	struct atel_buf b = { 0 };

	(void)state;
	for (int i = 0; i < 200000; i++) {
		double v;
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (i % 2) {
			memcpy(&v, &x, sizeof(v));
			if (!isfinite(v))
				continue;
		} else {
			v = (double)(int64_t)(x % 2000000001ull - 1000000000) / (double)(1ull << (x >> 60)) / 1000.0;
		}
		atel__buf_reset(&b);
		atel__buf_double(&b, v);
		if (strtod(b.data, NULL) != v && !(v == 0 && strtod(b.data, NULL) == 0))
			fail_msg("%.17g printed as %s", v, b.data);
	}
	atel__buf_free(&b);
}

static void test_names_and_duplicates(void **state)
{
	const char *k[] = { "9bad-key", "__reserved" }, *v[] = { "x", "\xff\xfe ok \xc3\xa9" };
	struct atel_agg_series se = { .nlabels = 2, .keys = k, .values = v, .value = 1 };
	struct atel_agg_family f[3] = {
		{ .name = "my.metric-x", .help = "a", .mtype = ATEL_MT_GAUGE, .nseries = 1, .series = &se },
		{ .name = "my_metric_x", .help = "b", .mtype = ATEL_MT_GAUGE, .nseries = 1, .series = &se },
		{ .name = "empty_family", .help = "c", .mtype = ATEL_MT_GAUGE, .nseries = 0, .series = NULL },
	};
	struct atel_agg_snapshot s = { .nfamilies = 3, .families = f };
	uint32_t skipped = 99;
	char *got;

	(void)state;
	got = encode(&s, NULL, &skipped);
	/* sanitised names; the second family maps to the same exposed name and
	 * is skipped; invalid UTF-8 becomes U+FFFD */
	assert_string_equal(got, "# HELP my_metric_x a\n# TYPE my_metric_x gauge\n"
				 "my_metric_x{x9bad_key=\"x\",x__reserved=\"\xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9\"} 1\n"
				 "# HELP empty_family c\n# TYPE empty_family gauge\n");
	assert_int_equal(skipped, 1);
	free(got);
}

static void test_empty_and_overflow(void **state)
{
	const char *k[] = { "atel_overflow" }, *v[] = { "true" };
	struct atel_agg_series se = { .nlabels = 1, .keys = k, .values = v, .overflow = true, .value = 42 };
	struct atel_agg_family f = { .name = "error_total", .help = "Total errors", .mtype = ATEL_MT_COUNTER,
				     .nseries = 1, .series = &se };
	struct atel_agg_snapshot s = { .nfamilies = 1, .families = &f };
	struct atel_agg_snapshot empty = { 0 };

	(void)state;
	expect(&empty, "");
	expect(&s, "# HELP error_total Total errors\n# TYPE error_total counter\n"
		   "error_total{atel_overflow=\"true\"} 42\n");
}

/* The aggregator's own snapshot through the encoder: catalog HELP, sorting. */
static void test_from_aggregator(void **state)
{
	static const char *const kv_a[] = { "agent_type", "coder", "phase", "code", "status", "success" };
	static const char *const kv_b[] = { "agent_type", "coder", "phase", "code", "status", "failure" };
	struct atel_dec_series a1, a2, u;
	struct atel_agg *a;
	struct atel_agg_snapshot *s;
	char *got;

	(void)state;
	assert_int_equal(atel__agg_new(&a, 10), 0);
	th_series(&a1, ATEL_MT_COUNTER, "agent_execution_total", 3, kv_a, 0, NULL);
	th_series(&a2, ATEL_MT_COUNTER, "agent_execution_total", 3, kv_b, 0, NULL);
	th_series(&u, ATEL_MT_GAUGE, "custom_depth", 0, NULL, 0, NULL);
	th_sample(a, &a1, 1, 0, 1);
	th_sample(a, &a1, 1, 0, 2);
	th_sample(a, &a2, 1, 0, 3);
	th_sample(a, &u, 0.25, 1, 4);
	assert_int_equal(atel__agg_snapshot(a, &s), 0);
	got = encode(s, NULL, NULL);
	assert_string_equal(got,
		"# HELP agent_execution_total Total agent executions\n"
		"# TYPE agent_execution_total counter\n"
		"agent_execution_total{agent_type=\"coder\",phase=\"code\",status=\"failure\"} 1\n"
		"agent_execution_total{agent_type=\"coder\",phase=\"code\",status=\"success\"} 2\n"
		"# HELP custom_depth atel metric custom_depth (not in the metric catalog)\n"
		"# TYPE custom_depth gauge\n"
		"custom_depth 0.25\n");
	free(got);
	atel__agg_snapshot_free(s);
	atel__agg_free(a);
}

static void test_self_metrics(void **state)
{
	static struct atel_daemon d;
	static const uint64_t codes[ATEL_HTTP_CODES_N] = { 5, 1 };
	struct atel_prom_self self = { .d = &d, .agg_type_clashes = 2, .agg_rejected = 3,
				       .agg_series_overflow = 4, .agg_events_applied = 9, .http_responses = codes };
	char *got;

	(void)state;
	memset(&d, 0, sizeof(d));
	d.start_ns = 1700000000000000000ull;
	atomic_store(&d.stats.records_drained, 12345);
	atomic_store(&d.stats.drops[ATEL_LOSS_RING_FULL], 7);
	atomic_store(&d.stats.oldest_unread_ns, 1500000000);
	atomic_store(&d.stats.log.io_uring_active, 1);
	atomic_store(&d.health[ATEL_EXP_JSON].failures, 2);
	got = encode(NULL, &self, NULL);
	assert_non_null(strstr(got, "# HELP atel_records_drained_total Records drained from the rings and accepted "
				    "into the log\n# TYPE atel_records_drained_total counter\n"
				    "atel_records_drained_total 12345\n"));
	assert_non_null(strstr(got, "# TYPE atel_records_dropped_total counter\n"
				    "atel_records_dropped_total{reason=\"other\"} 0\n"
				    "atel_records_dropped_total{reason=\"ring_full\"} 7\n"));
	assert_non_null(strstr(got, "\natel_oldest_unread_seconds 1.5\n"));
	assert_non_null(strstr(got, "\natel_io_path_info{path=\"io_uring\"} 1\natel_io_path_info{path=\"pwritev\"} 0\n"));
	assert_non_null(strstr(got, "\natel_exporter_failures_total{exporter=\"json\"} 2\n"));
	assert_non_null(strstr(got, "\natel_series_overflow_total 4\n"));
	assert_non_null(strstr(got, "\natel_aggregate_type_clashes_total 2\n"));
	assert_non_null(strstr(got, "\natel_http_responses_total{code=\"200\"} 5\n"
				    "atel_http_responses_total{code=\"400\"} 1\n"));
	assert_non_null(strstr(got, "\natel_start_time_seconds 1700000000\n"));
	/* exactly one TYPE line per family */
	assert_null(strstr(strstr(got, "# TYPE atel_records_dropped_total") + 1, "# TYPE atel_records_dropped_total"));
	assert_int_equal(got[strlen(got) - 1], '\n');
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_total_and_escaping),
		cmocka_unit_test(test_histogram_cumulative),
		cmocka_unit_test(test_float_formatting),
		cmocka_unit_test(test_float_roundtrip),
		cmocka_unit_test(test_names_and_duplicates),
		cmocka_unit_test(test_empty_and_overflow),
		cmocka_unit_test(test_from_aggregator),
		cmocka_unit_test(test_self_metrics),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
