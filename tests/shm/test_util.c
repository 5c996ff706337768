/* SPDX-License-Identifier: MIT */
/*
 * The helpers room (shm/util): shortest round-trip doubles against the
 * printf reference over millions of values, UTF-8 validation against a
 * decoder written from the definition, the JSON string writer, hex, and the
 * file helpers on a real temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "atel_test.h"
#include "buf.h"
#include "util.h"

/* The reference: the first of %.15g, %.16g, %.17g that reads back. */
static void ref_double(char *out, size_t len, double v)
{
	for (int p = 15; p <= 17; p++) {
		snprintf(out, len, "%.*g", p, v);
		if (p == 17 || strtod(out, NULL) == v)
			return;
	}
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static double unit(void)
{
	return (double)(next_u64() >> 11) / 9007199254740992.0;
}

static void check_double(double v)
{
	char got[ATEL_FMT_DOUBLE_MAX], want[64];
	size_t n = atel__fmt_double(got, v);

	ref_double(want, sizeof(want), v);
	if (strcmp(got, want) != 0 || n != strlen(got))
		fail_msg("%.17g: got \"%s\", the printf reference says \"%s\"", v, got, want);
	assert_true(strtod(got, NULL) == v);
}

static void test_fmt_double_matches_reference(void **state)
{
	static const double edge[] = { 0.0, -0.0, 1e15, -1e15, 999999999999999.0, 9.999999999999999e14, 1e-4,
				       0.0001, 9.99e-5, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 123456789012345.6, 5e-324,
				       1.7976931348623157e308, 9007199254740992.0, 0.29, 9393.28, 44561559375.395767 };
	(void)state;
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		check_double(edge[i]);
		check_double(-edge[i]);
	}
	for (int i = 0; i < 2000000; i++) {
		double v;
		uint64_t bits;

		switch (i % 7) {
		case 0: v = unit() * 1000; break;                                /* arbitrary */
		case 1: v = round(unit() * 100000) / 1000.0; break;              /* 3 decimals */
		case 2: v = round(unit() * 1e6) / 100.0; break;                   /* money-like */
		case 3: v = (double)(next_u64() % 100000); break;                 /* counts */
		case 4: v = exp(unit() * 80 - 40); break;                         /* wide range */
		case 5:
			bits = next_u64();
			memcpy(&v, &bits, sizeof(v));                           /* any bit pattern */
			if (!isfinite(v))
				v = 1.5;
			break;
		default: v = round(unit() * 1e15) / pow(10, (double)(next_u64() % 16)); break;
		}
		check_double(i & 1 ? -v : v);
	}
}

static void test_buf_double_specials(void **state)
{
	struct atel_buf b = { 0 };

	(void)state;
	atel__buf_double(&b, NAN);
	atel__buf_putc(&b, ' ');
	atel__buf_double(&b, INFINITY);
	atel__buf_putc(&b, ' ');
	atel__buf_double(&b, -INFINITY);
	atel__buf_putc(&b, ' ');
	atel__buf_double(&b, 0.25);
	assert_string_equal(b.data, "NaN +Inf -Inf 0.25");
	atel__buf_free(&b);
}

/* UTF-8 from its definition (RFC 3629): decode, then check the code point. */
static size_t ref_utf8(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (!n)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void test_utf8_against_definition(void **state)
{
	unsigned char s[4];

	(void)state;
	/* every 1..3 byte prefix exhaustively, with every length bound */
	for (uint32_t a = 0; a < 256; a++)
		for (uint32_t b = 0; b < 256; b++)
			for (uint32_t c = 0; c < 256; c += (a >= 0xe0 ? 1 : 255)) {
				s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c;
				s[3] = 0x80 | (unsigned char)(c & 0x3f);
				for (size_t n = 0; n <= 4; n++)
					if (atel__utf8_len(s, n) != ref_utf8(s, n))
						fail_msg("%02x %02x %02x %02x n=%zu: got %zu want %zu", a, b, c, s[3], n,
							 atel__utf8_len(s, n), ref_utf8(s, n));
			}
	/* NUL-terminated use: never reads past the terminator */
	assert_int_equal(atel__utf8_len((const unsigned char *)"\xe2\x82", SIZE_MAX), 0);
	assert_int_equal(atel__utf8_len((const unsigned char *)"\xe2\x82\xac", SIZE_MAX), 3);
	assert_true(atel__utf8_valid((const unsigned char *)"caf\xc3\xa9", 5));
	assert_false(atel__utf8_valid((const unsigned char *)"caf\xc3", 4));
	assert_false(atel__utf8_valid((const unsigned char *)"\xed\xa0\x80", 3)); /* surrogate */
}

static void test_json_strings(void **state)
{
	struct atel_buf b = { 0 };

	(void)state;
	atel__json_str(&b, "a\"b\\c\nd\te\rf\x01g\x7f");
	assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\te\\rf\\u0001g\x7f\"");
	atel__buf_reset(&b);
	atel__json_str(&b, NULL);
	assert_string_equal(b.data, "\"\"");
	atel__buf_reset(&b);
	/* invalid UTF-8 is replaced byte by byte; valid sequences pass */
	atel__json_str(&b, "\xff\xc3\xa9\xe2\x82");
	assert_string_equal(b.data, "\"\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd\"");
	atel__buf_reset(&b);
	/* with a length, a NUL is data */
	atel__json_strn(&b, "a\0b", 3);
	assert_string_equal(b.data, "\"a\\u0000b\"");
	atel__buf_reset(&b);
	/* protobuf strings: repaired, not escaped */
	atel__buf_utf8(&b, "a\"\xff\xc3\xa9\n");
	assert_string_equal(b.data, "a\"\xef\xbf\xbd\xc3\xa9\n");
	atel__buf_free(&b);
}

static void test_hex(void **state)
{
	static const uint8_t id[4] = { 0x00, 0x9f, 0xa0, 0xff };
	char h[9];
	uint8_t back[4];

	(void)state;
	atel__hex(id, 4, h);
	assert_string_equal(h, "009fa0ff");
	assert_int_equal(atel__unhex(h, 4, back, false), 0);
	assert_memory_equal(back, id, 4);
	assert_int_equal(atel__unhex("009FA0FF", 4, back, false), -EINVAL); /* traceparent: lowercase only */
	assert_int_equal(atel__unhex("009FA0FF", 4, back, true), 0);
	assert_memory_equal(back, id, 4);
	assert_int_equal(atel__unhex("0g", 1, back, true), -EINVAL);
}

static void test_files(void **state)
{
	char dir[256], sub[300], file[320], err[512], *text = NULL;
	size_t len = 0;
	struct stat st;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/atel-test-util-%d", (int)getpid());
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	snprintf(file, sizeof(file), "%s/state.json", sub);
	assert_int_equal(atel__mkdir_p(sub, 0700), 0);
	assert_int_equal(atel__mkdir_p(sub, 0700), 0); /* existing: fine */
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(atel__fsync_dir(sub), 0);

	assert_int_equal(atel__write_file_atomic(file, "{\"v\":1}", 7, 0600), 0);
	assert_int_equal(atel__write_file_atomic(file, "{\"v\":22}", 8, 0600), 0);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(atel__read_file(file, 1 << 20, &text, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 8);
	assert_string_equal(text, "{\"v\":22}");
	free(text);

	assert_int_equal(atel__read_file(file, 4, &text, &len, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "larger than 4 bytes"));
	assert_int_equal(atel__read_file(sub, 1 << 20, &text, &len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(atel__read_file("/nonexistent/x", 1 << 20, &text, &len, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/x: cannot open: No such file or directory");

	/* no temporary file is left behind */
	snprintf(err, sizeof(err), "%s/.state.json.tmp", sub);
	assert_int_equal(access(err, F_OK), -1);
	snprintf(err, sizeof(err), "rm -rf '%s'", dir);
	assert_int_equal(system(err), 0);
}

static void test_clocks_and_errors(void **state)
{
	char err[16];
	uint64_t a = atel__mono_ns(), b = atel__mono_ns();

	(void)state;
	assert_true(b >= a);
	assert_true(atel__now_ns() > 1600000000ull * 1000000000ull); /* after 2020 */
	atel__seterr(err, sizeof(err), "%s=%d", "truncated-message", 42);
	assert_string_equal(err, "truncated-messa");
	atel__seterr(NULL, 0, "ignored %d", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_double_matches_reference),
		cmocka_unit_test(test_buf_double_specials),
		cmocka_unit_test(test_utf8_against_definition),
		cmocka_unit_test(test_json_strings),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_clocks_and_errors),
	};
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
