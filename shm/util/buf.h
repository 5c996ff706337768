/* SPDX-License-Identifier: MIT */
/*
 * buf.h - the helpers room's growable byte buffer (encoders of Prometheus
 * text, JSON files, OTLP protobuf and JSON bodies, the index's label and
 * attribute JSON), with number and JSON string appends. Encoders append into
 * one buffer that is reused, so a steady-state export allocates nothing. The
 * content is kept NUL-terminated for text users; binary users ignore the
 * extra byte. Not thread-safe: one owner.
 *
 * Appends never fail visibly: on allocation failure the buffer turns "failed"
 * (oom set), further appends are ignored, and the encoder reports -ENOMEM
 * once at the end. That keeps every encoder free of per-append error paths.
 */
#ifndef ATEL_BUF_H
#define ATEL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct atel_buf {
	char *data;
	size_t len, cap;
	bool oom;
};

/* Ensures room for n more bytes (plus a NUL). @return false if out of memory. */
static inline bool atel__buf_reserve(struct atel_buf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return false;
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 4096;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

static inline void atel__buf_put(struct atel_buf *b, const void *s, size_t n)
{
	if (!atel__buf_reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static inline void atel__buf_puts(struct atel_buf *b, const char *s)
{
	atel__buf_put(b, s, strlen(s));
}

static inline void atel__buf_putc(struct atel_buf *b, char c)
{
	if (!atel__buf_reserve(b, 1))
		return;
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
}

/* Empties the buffer, keeping its memory; clears the failed state. */
static inline void atel__buf_reset(struct atel_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->data)
		b->data[0] = '\0';
}

/* NULL-safe. */
static inline void atel__buf_free(struct atel_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

/* Decimal digits of v; fast path for the many integer counts in an export. */
static inline void atel__buf_u64(struct atel_buf *b, uint64_t v)
{
	char tmp[24];
	int i = (int)sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	atel__buf_put(b, tmp + i, sizeof(tmp) - (size_t)i);
}

/*
 * A double as the shortest decimal that parses back to the same value
 * (atel__fmt_double, util.h), and NaN/Inf spelled as in the Prometheus text
 * format ("NaN", "+Inf", "-Inf"). JSON callers handle non-finite values
 * themselves before calling this.
 */
void atel__buf_double(struct atel_buf *b, double v);

/*
 * Appends n bytes of s as a JSON string literal, quotes included: '"' and
 * '\\' escaped, \n \t \r and other control characters (NUL included) as
 * escapes, invalid UTF-8 (producer strings are untrusted) replaced by U+FFFD
 * byte by byte. The same bytes always give the same text (the index keys
 * rows on it).
 */
void atel__json_strn(struct atel_buf *b, const char *s, size_t n);

/* atel__json_strn of a NUL-terminated string; NULL is "". */
void atel__json_str(struct atel_buf *b, const char *s);

/* Appends the NUL-terminated s (NULL: nothing) as it is, except that bytes
 * that are not valid UTF-8 become U+FFFD (protobuf string fields must be
 * UTF-8, producer strings are untrusted). */
void atel__buf_utf8(struct atel_buf *b, const char *s);

#endif /* ATEL_BUF_H */
