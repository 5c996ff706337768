/* SPDX-License-Identifier: MIT */
/* buf.c - the number and JSON string appends of buf.h. */
#include "buf.h"

#include <math.h>

void atel__buf_double(struct atel_buf *b, double v)
{
	char tmp[ATEL_FMT_DOUBLE_MAX];

	if (isnan(v)) {
		atel__buf_put(b, "NaN", 3);
		return;
	}
	if (isinf(v)) {
		atel__buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	atel__buf_put(b, tmp, atel__fmt_double(tmp, v));
}

/* Appends the UTF-8 sequence at s (at most n bytes), or U+FFFD for an
 * invalid first byte. @return the bytes consumed. */
static size_t put_utf8(struct atel_buf *b, const unsigned char *s, size_t n)
{
	size_t k = atel__utf8_len(s, n);

	if (!k) {
		atel__buf_put(b, "\xef\xbf\xbd", 3);
		return 1;
	}
	atel__buf_put(b, s, k);
	return k;
}

void atel__json_strn(struct atel_buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str, *end = s + n, *run = s;

	atel__buf_putc(b, '"');
	while (s < end) {
		unsigned char c = *s;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			s++; /* plain ASCII: copied in runs */
			continue;
		}
		atel__buf_put(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			atel__buf_put(b, e, 2);
			s++;
		} else if (c == '\n') {
			atel__buf_put(b, "\\n", 2);
			s++;
		} else if (c == '\t') {
			atel__buf_put(b, "\\t", 2);
			s++;
		} else if (c == '\r') {
			atel__buf_put(b, "\\r", 2);
			s++;
		} else if (c < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			atel__buf_put(b, e, 6);
			s++;
		} else {
			s += put_utf8(b, s, (size_t)(end - s));
		}
		run = s;
	}
	atel__buf_put(b, run, (size_t)(s - run));
	atel__buf_putc(b, '"');
}

void atel__json_str(struct atel_buf *b, const char *s)
{
	s = s ? s : "";
	atel__json_strn(b, s, strlen(s));
}

void atel__buf_utf8(struct atel_buf *b, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : ""), *run = s;

	for (;;) {
		if (*s && *s < 0x80) {
			s++;
			continue;
		}
		atel__buf_put(b, run, (size_t)(s - run));
		if (!*s)
			break;
		s += put_utf8(b, s, SIZE_MAX);
		run = s;
	}
}
