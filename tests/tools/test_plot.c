/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the terminal chart of `atel query --plot` (tools/plot.h):
 * known series -> the exact rows, in Unicode and ASCII, a constant series
 * with a gap, columns squeezed into a narrow width, the series limit, and
 * input with nothing to plot.
 */
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
#include "plot.h"

#define S 1000000000ull
#define T0 1700000000ull /* 2023-11-14T22:13:20Z */

/* Renders into a string (caller frees); *rc gets atel_plot_write's result. */
static char *render(const struct atel_plot_series *s, size_t n, const struct atel_plot_opts *o, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	*rc = atel_plot_write(f, s, n, o);
	fclose(f);
	return buf;
}

static const struct atel_qpoint grep_pts[] = {
	{ T0 * S, 0 }, { (T0 + 1) * S, 2.5 }, { (T0 + 2) * S, 5 }, { (T0 + 3) * S, 2.5 }, { (T0 + 4) * S, 0 },
};
static const struct atel_qpoint read_pts[] = {
	{ T0 * S, 0 }, { (T0 + 1) * S, 0 }, { (T0 + 2) * S, 1 }, { (T0 + 3) * S, 1 }, { (T0 + 4) * S, 1 },
};

/* Shared scale 0..5, level = round(v / 5 * 7): 0 -> 0, 1 -> 1, 2.5 -> 4, 5 -> 7. */
static void test_two_series_utf8(void **st)
{
	(void)st;
	struct atel_plot_series s[] = { { "{tool=\"grep\"}", grep_pts, 5 }, { "{tool=\"read\"}", read_pts, 5 } };
	struct atel_plot_opts o = { .width = 80, .step_ns = S };
	int rc;
	char *out = render(s, 2, &o, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "max 5\n"
				 " 1 \u2502\u2581\u2585\u2588\u2585\u2581\n"
				 " 2 \u2502\u2581\u2581\u2582\u2582\u2582\n"
				 "min 0\n"
				 "   \u2514 2023-11-14T22:13:20Z .. 2023-11-14T22:13:24Z (5 columns)\n"
				 " 1 {tool=\"grep\"}  min 0  max 5  last 0\n"
				 " 2 {tool=\"read\"}  min 0  max 1  last 1\n");
	free(out);
}

static void test_two_series_ascii(void **st)
{
	(void)st;
	struct atel_plot_series s[] = { { "{tool=\"grep\"}", grep_pts, 5 }, { "{tool=\"read\"}", read_pts, 5 } };
	struct atel_plot_opts o = { .width = 80, .step_ns = S, .ascii = true };
	int rc;
	char *out = render(s, 2, &o, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "max 5\n"
				 " 1 |_=#=_\n"
				 " 2 |__...\n"
				 "min 0\n"
				 "   + 2023-11-14T22:13:20Z .. 2023-11-14T22:13:24Z (5 columns)\n"
				 " 1 {tool=\"grep\"}  min 0  max 5  last 0\n"
				 " 2 {tool=\"read\"}  min 0  max 1  last 1\n");
	for (const char *p = out; *p; p++)
		assert_true((unsigned char)*p < 0x80);
	free(out);
}

/* A flat series: the middle level; the bucket at T0+2 is missing: a blank column. NaN is no value. */
static void test_constant_with_gap(void **st)
{
	(void)st;
	const struct atel_qpoint pts[] = { { T0 * S, 7 }, { (T0 + 1) * S, 7 }, { (T0 + 3) * S, 7 }, { (T0 + 4) * S, NAN } };
	struct atel_plot_series s[] = { { NULL, pts, 4 } };
	struct atel_plot_opts o = { .width = 80, .step_ns = S, .unit = "ms" };
	int rc;
	char *out = render(s, 1, &o, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(out, "max 7 ms\n"
				 " 1 \u2502\u2584\u2584 \u2584\n"
				 "min 7 ms\n"
				 "   \u2514 2023-11-14T22:13:20Z .. 2023-11-14T22:13:23Z (4 columns)\n"
				 " 1 (all)  min 7 ms  max 7 ms  last 7 ms\n");
	free(out);
}

/* 100 buckets in a 20-column terminal: 16 columns, each the mean of its buckets, rising 0 -> 7. */
static void test_squeezed(void **st)
{
	(void)st;
	struct atel_qpoint pts[100];
	for (size_t i = 0; i < 100; i++)
		pts[i] = (struct atel_qpoint){ (T0 + i) * S, (double)i };
	struct atel_plot_series s[] = { { "x", pts, 100 } };
	struct atel_plot_opts o = { .width = 20, .step_ns = S, .ascii = true };
	int rc;
	char *out = render(s, 1, &o, &rc);
	assert_int_equal(rc, 0);
	const char *row = strstr(out, " 1 |");
	assert_non_null(row);
	row += 4;
	size_t len = strcspn(row, "\n");
	assert_int_equal(len, 16);
	assert_int_equal(row[0], '_');
	assert_int_equal(row[15], '#');
	for (size_t i = 1; i < len; i++) /* never falls */
		assert_true(strchr("_.-:=+*#", row[i]) >= strchr("_.-:=+*#", row[i - 1]));
	assert_non_null(strstr(out, "(16 columns)\n"));
	free(out);
}

static void test_series_limit(void **st)
{
	(void)st;
	struct atel_plot_series s[] = { { "a", grep_pts, 5 }, { "b", read_pts, 5 }, { "c", read_pts, 5 } };
	struct atel_plot_opts o = { .width = 80, .step_ns = S, .ascii = true, .max_series = 2 };
	int rc;
	char *out = render(s, 3, &o, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, " 2 b  min 0"));
	assert_null(strstr(out, " 3 "));
	assert_non_null(strstr(out, "... 1 more series not plotted (at most 2; narrow with --labels or --by)\n"));
	free(out);
}

static void test_empty(void **st)
{
	(void)st;
	struct atel_plot_opts o = { .width = 80, .step_ns = S };
	int rc;
	char *out = render(NULL, 0, &o, &rc);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "nothing to plot: no values in the range\n");
	free(out);
	const struct atel_qpoint nan_pts[] = { { T0 * S, NAN } };
	struct atel_plot_series s[] = { { "x", nan_pts, 1 }, { "y", NULL, 0 } };
	out = render(s, 2, &o, &rc);
	assert_int_equal(rc, 1);
	assert_string_equal(out, "nothing to plot: no values in the range\n");
	free(out);
}

static void test_locale(void **st)
{
	(void)st;
	assert_true(atel_plot_utf8_locale(NULL, NULL, "en_US.UTF-8"));
	assert_true(atel_plot_utf8_locale("", "C.utf8", "C"));
	assert_false(atel_plot_utf8_locale("C", "en_US.UTF-8", "en_US.UTF-8")); /* LC_ALL wins */
	assert_false(atel_plot_utf8_locale(NULL, NULL, "POSIX"));
	assert_false(atel_plot_utf8_locale(NULL, NULL, NULL));
	assert_false(atel_plot_utf8_locale(NULL, NULL, "de_DE.ISO-8859-1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_series_utf8), cmocka_unit_test(test_two_series_ascii),
		cmocka_unit_test(test_constant_with_gap), cmocka_unit_test(test_squeezed),
		cmocka_unit_test(test_series_limit), cmocka_unit_test(test_empty),
		cmocka_unit_test(test_locale),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
