/* SPDX-License-Identifier: MIT */
/* text.c - UTF-8, number and hex text of the helpers room (util.h). */
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline bool cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

size_t atel__utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c;

	if (!n)
		return 0;
	c = s[0];
	if (c < 0x80)
		return 1;
	/* each byte is looked at only after the one before it passed, so a
	 * NUL terminator stops the walk (see util.h) */
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && cont(s[1]) ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || !cont(s[1]) || !cont(s[2]))
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
			return 0; /* overlong, surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || !cont(s[1]) || !cont(s[2]) || !cont(s[3]))
			return 0;
		if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
			return 0; /* overlong, above U+10FFFF */
		return 4;
	}
	return 0;
}

bool atel__utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t k;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (!(k = atel__utf8_len(s + i, n - i)))
			return false;
		i += k;
	}
	return true;
}

/* Decimal digits of v into out (no NUL). @return their count. */
static size_t u64_digits(char *out, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp), n;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	n = sizeof(tmp) - i;
	memcpy(out, tmp + i, n);
	return n;
}

size_t atel__fmt_double(char out[ATEL_FMT_DOUBLE_MAX], double v)
{
	static const double p10[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
	double a = fabs(v);
	size_t n = 0;
	int len = 0;

	/*
	 * The reference is the printf loop at the end. The fast paths below
	 * give the same text, because a decimal d of at most 15 significant
	 * digits that reads back as v is what "%.15g" prints for v: v lies
	 * within 2^-53 |v| of d, far closer than the 10^-15 |v| between
	 * neighbouring 15-digit decimals, so rounding v to 15 digits gives d,
	 * and %g prints it without an exponent for 1e-4 <= d < 1e15. Zero keeps
	 * its sign ("-0"), as printf does. tests/shm/test_util.c compares both
	 * over millions of values.
	 */
	if (isfinite(v) && (a == 0 || (a >= 1e-4 && a < 1e15))) {
		if (signbit(v))
			out[n++] = '-';
		if (a == floor(a)) { /* an integer below 1e15 */
			n += u64_digits(out + n, (uint64_t)a);
			out[n] = '\0';
			return n;
		}
		/* the smallest k such that m / 10^k reads back as v, with m below 1e15
		 * (15 significant digits at most): then its last digit is not 0 */
		for (int k = 1; k <= 9; k++) {
			double m = nearbyint(a * p10[k]);
			uint64_t um, ip, fp;
			char frac[9];

			if (m >= 1e15)
				break;
			if (m / p10[k] != a)
				continue;
			um = (uint64_t)m;
			ip = um / (uint64_t)p10[k];
			fp = um % (uint64_t)p10[k];
			for (int d = k - 1; d >= 0; d--, fp /= 10)
				frac[d] = (char)('0' + fp % 10);
			n += u64_digits(out + n, ip);
			out[n++] = '.';
			memcpy(out + n, frac, (size_t)k);
			n += (size_t)k;
			out[n] = '\0';
			return n;
		}
		n = 0;
	}
	for (int prec = 15; prec <= 17; prec++) {
		len = snprintf(out, ATEL_FMT_DOUBLE_MAX, "%.*g", prec, v);
		if (prec == 17 || strtod(out, NULL) == v)
			break;
	}
	return len > 0 ? (size_t)len : 0;
}

void atel__hex(const void *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = bytes;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c, bool upper)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (upper && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int atel__unhex(const char *s, size_t n, uint8_t *out, bool upper)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i], upper), lo;

		if (hi < 0 || (lo = hexval(s[2 * i + 1], upper)) < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
