/* SPDX-License-Identifier: MIT */
/*
 * util.c - arena, string and number helpers of the PromQL engine: Go-style
 * unquoting, quoting, durations and float formatting, so that messages and
 * printed queries read like Prometheus'.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql_int.h"

/* ---- arena ---------------------------------------------------------------------- */

struct atel__arena_chunk {
	struct atel__arena_chunk *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

#define ARENA_CHUNK 16384u

void *atel__arena_alloc(struct atel__arena *a, size_t n)
{
	n = (n + 15u) & ~(size_t)15u;
	if (n == 0)
		n = 16;
	struct atel__arena_chunk *c = a->head;
	if (!c || c->size - c->used < n) {
		size_t sz = n > ARENA_CHUNK / 2 ? n : ARENA_CHUNK;
		c = malloc(sizeof(*c) + sz);
		if (!c)
			return NULL;
		c->size = sz;
		c->used = 0;
		/* A big block gets its own chunk behind the current one, so the
		 * current chunk's free space stays usable. */
		if (a->head && sz != ARENA_CHUNK) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
		a->total += sizeof(*c) + sz;
	}
	void *p = c->data + c->used;
	c->used += n;
	return p;
}

void *atel__arena_zalloc(struct atel__arena *a, size_t n)
{
	void *p = atel__arena_alloc(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

char *atel__arena_strndup(struct atel__arena *a, const char *s, size_t n)
{
	char *p = atel__arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

void atel__arena_free(struct atel__arena *a)
{
	struct atel__arena_chunk *c = a->head;
	while (c) {
		struct atel__arena_chunk *n = c->next;
		free(c);
		c = n;
	}
	a->head = NULL;
	a->total = 0;
}

/* ---- string buffer ------------------------------------------------------------- */

void atel__sbuf_putn(struct atel__sbuf *b, const char *s, size_t n)
{
	if (b->pos < b->len) {
		size_t room = b->len - b->pos - 1;
		size_t k = n < room ? n : room;
		memcpy(b->buf + b->pos, s, k);
		b->buf[b->pos + k] = 0;
	}
	b->pos += n;
}

void atel__sbuf_puts(struct atel__sbuf *b, const char *s)
{
	atel__sbuf_putn(b, s, strlen(s));
}

void atel__sbuf_printf(struct atel__sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		atel__sbuf_putn(b, tmp, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (!big)
		return;
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	atel__sbuf_putn(b, big, (size_t)n);
	free(big);
}

/* ---- UTF-8 ------------------------------------------------------------------------ */

/* Decode one UTF-8 rune as Go does; invalid input gives (-1, 1). */
static int32_t utf8_decode(const unsigned char *s, size_t n, size_t *w)
{
	unsigned char c = s[0];
	*w = 1;
	if (c < 0x80)
		return c;
	size_t need;
	int32_t r, min;
	if ((c & 0xe0) == 0xc0) {
		need = 2, r = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		need = 3, r = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		need = 4, r = c & 0x07, min = 0x10000;
	} else {
		return -1;
	}
	if (n < need)
		return -1;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		r = (r << 6) | (s[i] & 0x3f);
	}
	if (r < min || r > 0x10ffff || (r >= 0xd800 && r < 0xe000))
		return -1;
	*w = need;
	return r;
}

static size_t utf8_encode(int32_t r, char *out)
{
	if (r < 0x80) {
		out[0] = (char)r;
		return 1;
	}
	if (r < 0x800) {
		out[0] = (char)(0xc0 | (r >> 6));
		out[1] = (char)(0x80 | (r & 0x3f));
		return 2;
	}
	if (r >= 0xd800 && r < 0xe000)
		r = 0xfffd;
	if (r < 0x10000) {
		out[0] = (char)(0xe0 | (r >> 12));
		out[1] = (char)(0x80 | ((r >> 6) & 0x3f));
		out[2] = (char)(0x80 | (r & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (r >> 18));
	out[1] = (char)(0x80 | ((r >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((r >> 6) & 0x3f));
	out[3] = (char)(0x80 | (r & 0x3f));
	return 4;
}

bool atel__promql_legacy_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		char c = *p;
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(p != s && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

bool atel__promql_utf8_name(const char *s)
{
	if (!s || !*s)
		return false;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		size_t w;
		if (utf8_decode((const unsigned char *)s + i, n - i, &w) < 0)
			return false;
		i += w;
	}
	return true;
}

/* ---- unquoting ---------------------------------------------------------------------- */

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *atel__promql_unquote(struct atel__arena *a, const char *s, size_t n, const char **why)
{
	*why = "invalid syntax";
	if (n < 2 || s[0] != s[n - 1])
		return NULL;
	char quote = s[0];
	s++;
	n -= 2;
	if (quote == '`') {
		if (memchr(s, '`', n))
			return NULL;
		if (memchr(s, 0, n)) {
			*why = "NUL bytes are not supported in strings";
			return NULL;
		}
		return atel__arena_strndup(a, s, n);
	}
	if (quote != '"' && quote != '\'')
		return NULL;
	if (memchr(s, '\n', n))
		return NULL;
	/* Escapes never make a string longer (\U00010000 is 10 chars for 4 bytes). */
	char *out = atel__arena_alloc(a, n + 1);
	if (!out) {
		*why = "out of memory";
		return NULL;
	}
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c == (unsigned char)quote)
			return NULL;
		if (c != '\\') {
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (i + 1 >= n)
			return NULL;
		char e = s[i + 1];
		i += 2;
		int32_t v;
		bool rune = false;
		switch (e) {
		case 'a': v = '\a'; break;
		case 'b': v = '\b'; break;
		case 'f': v = '\f'; break;
		case 'n': v = '\n'; break;
		case 'r': v = '\r'; break;
		case 't': v = '\t'; break;
		case 'v': v = '\v'; break;
		case '\\': v = '\\'; break;
		case '\'':
		case '"':
			if (e != quote)
				return NULL;
			v = e;
			break;
		case 'x':
		case 'u':
		case 'U': {
			size_t k = e == 'x' ? 2 : e == 'u' ? 4 : 8;
			if (n - i < k)
				return NULL;
			v = 0;
			for (size_t j = 0; j < k; j++) {
				int h = unhex(s[i + j]);
				if (h < 0)
					return NULL;
				v = (v << 4) | h;
			}
			i += k;
			if (e != 'x') {
				if (v > 0x10ffff || v < 0)
					return NULL;
				rune = true;
			}
			break;
		}
		case '0': case '1': case '2': case '3':
		case '4': case '5': case '6': case '7': {
			if (n - i < 2)
				return NULL;
			v = e - '0';
			for (size_t j = 0; j < 2; j++) {
				int d = s[i + j] - '0';
				if (d < 0 || d > 7)
					return NULL;
				v = (v << 3) | d;
			}
			i += 2;
			if (v > 255)
				return NULL;
			break;
		}
		default:
			return NULL;
		}
		if (v == 0) {
			*why = "NUL bytes are not supported in strings";
			return NULL;
		}
		if (rune && v >= 0x80)
			o += utf8_encode(v, out + o);
		else
			out[o++] = (char)v;
	}
	out[o] = 0;
	return out;
}

size_t atel__promql_quote(const char *s, char *buf, size_t len)
{
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	atel__sbuf_puts(&b, "\"");
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		size_t w;
		int32_t r = utf8_decode((const unsigned char *)s + i, n - i, &w);
		if (r < 0) {
			atel__sbuf_printf(&b, "\\x%02x", c);
			i++;
			continue;
		}
		i += w;
		switch (r) {
		case '"': atel__sbuf_puts(&b, "\\\""); continue;
		case '\\': atel__sbuf_puts(&b, "\\\\"); continue;
		case '\a': atel__sbuf_puts(&b, "\\a"); continue;
		case '\b': atel__sbuf_puts(&b, "\\b"); continue;
		case '\f': atel__sbuf_puts(&b, "\\f"); continue;
		case '\n': atel__sbuf_puts(&b, "\\n"); continue;
		case '\r': atel__sbuf_puts(&b, "\\r"); continue;
		case '\t': atel__sbuf_puts(&b, "\\t"); continue;
		case '\v': atel__sbuf_puts(&b, "\\v"); continue;
		default: break;
		}
		if (r < 0x20 || r == 0x7f)
			atel__sbuf_printf(&b, "\\x%02x", (unsigned)r);
		else
			atel__sbuf_putn(&b, s + i - w, w);
	}
	atel__sbuf_puts(&b, "\"");
	return b.pos;
}

/* ---- durations -------------------------------------------------------------------------- */

int atel__promql_parse_duration(const char *s, size_t n, int64_t *ms, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = {
		{ "y", 1000ull * 60 * 60 * 24 * 365 }, { "w", 1000ull * 60 * 60 * 24 * 7 },
		{ "d", 1000ull * 60 * 60 * 24 }, { "h", 1000ull * 60 * 60 }, { "m", 1000ull * 60 },
		{ "s", 1000 }, { "ms", 1 },
	};
	if (n == 1 && s[0] == '0') {
		*ms = 0;
		return 0;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty duration string");
		return -EINVAL;
	}
	uint64_t total = 0;
	size_t last = 0; /* index+1 of the last unit used: units must shrink */
	size_t i = 0;
	while (i < n) {
		if (s[i] < '0' || s[i] > '9')
			goto invalid;
		uint64_t v = 0;
		size_t d0 = i;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (v > (UINT64_MAX - 9) / 10)
				goto range;
			v = v * 10 + (uint64_t)(s[i] - '0');
			i++;
		}
		(void)d0;
		size_t u0 = i;
		while (i < n && !(s[i] >= '0' && s[i] <= '9'))
			i++;
		if (i == u0)
			goto invalid;
		size_t k;
		for (k = 0; k < sizeof(units) / sizeof(units[0]); k++)
			if (strlen(units[k].unit) == i - u0 && !memcmp(units[k].unit, s + u0, i - u0))
				break;
		if (k == sizeof(units) / sizeof(units[0])) {
			snprintf(err, errlen, "unknown unit \"%.*s\" in duration \"%.*s\"", (int)(i - u0), s + u0, (int)n, s);
			return -EINVAL;
		}
		if (k + 1 <= last)
			goto invalid;
		last = k + 1;
		if (v > (uint64_t)INT64_MAX / units[k].mult)
			goto range;
		total += v * units[k].mult;
		if (total > (uint64_t)INT64_MAX)
			goto range;
	}
	*ms = (int64_t)total;
	return 0;
invalid:
	snprintf(err, errlen, "not a valid duration string: \"%.*s\"", (int)n, s);
	return -EINVAL;
range:
	snprintf(err, errlen, "duration out of range");
	return -EINVAL;
}

size_t atel__promql_format_duration(int64_t ms, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t mult;
		bool exact;
	} units[] = {
		{ "y", 1000ll * 60 * 60 * 24 * 365, true }, { "w", 1000ll * 60 * 60 * 24 * 7, true },
		{ "d", 1000ll * 60 * 60 * 24, false }, { "h", 1000ll * 60 * 60, false },
		{ "m", 1000ll * 60, false }, { "s", 1000, false }, { "ms", 1, false },
	};
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	if (ms == 0) {
		atel__sbuf_puts(&b, "0s");
		return b.pos;
	}
	if (ms < 0) {
		/* model.Duration would print garbage; we print a sign. */
		atel__sbuf_puts(&b, "-");
		ms = ms == INT64_MIN ? INT64_MAX : -ms;
	}
	for (size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
		if (units[k].exact && ms % units[k].mult != 0)
			continue;
		int64_t v = ms / units[k].mult;
		if (v > 0) {
			atel__sbuf_printf(&b, "%lld%s", (long long)v, units[k].unit);
			ms -= v * units[k].mult;
		}
	}
	return b.pos;
}

/* ---- floats ------------------------------------------------------------------------------ */

/* The shortest %.*e form that parses back to v: digits and decimal exponent. */
static int shortest_digits(double v, char *digits, int *exp10)
{
	char tmp[40];
	for (int prec = 0; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp: d[.ddd]e[+-]xx */
	int nd = 0;
	for (char *p = tmp; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	digits[nd] = 0;
	char *e = strchr(tmp, 'e');
	*exp10 = e ? atoi(e + 1) : 0;
	/* Drop trailing zeros (the %e form may carry them for prec > 0). */
	while (nd > 1 && digits[nd - 1] == '0')
		digits[--nd] = 0;
	return nd;
}

static size_t format_special(double v, char *buf, size_t len)
{
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	if (isnan(v))
		atel__sbuf_puts(&b, "NaN");
	else if (v > 0)
		atel__sbuf_puts(&b, "+Inf");
	else
		atel__sbuf_puts(&b, "-Inf");
	return b.pos;
}

/* Go's FormatFloat(v, fmt, -1, 64) for fmt 'g' (exponent form when the decimal
 * exponent is < -4 or >= 6, as strconv decides for the shortest precision) and 'f'. */
static size_t format_shortest(double v, char *buf, size_t len, bool g)
{
	if (!isfinite(v))
		return format_special(v, buf, len);
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	if (v == 0) {
		atel__sbuf_puts(&b, signbit(v) ? "-0" : "0");
		return b.pos;
	}
	if (v < 0) {
		atel__sbuf_puts(&b, "-");
		v = -v;
	}
	char d[32];
	int exp;
	int nd = shortest_digits(v, d, &exp);
	if (g && (exp < -4 || exp >= 6)) {
		atel__sbuf_putn(&b, d, 1);
		if (nd > 1) {
			atel__sbuf_puts(&b, ".");
			atel__sbuf_putn(&b, d + 1, (size_t)nd - 1);
		}
		atel__sbuf_printf(&b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
	} else if (exp < 0) {
		atel__sbuf_puts(&b, "0.");
		for (int i = 0; i < -exp - 1; i++)
			atel__sbuf_puts(&b, "0");
		atel__sbuf_putn(&b, d, (size_t)nd);
	} else if (nd <= exp + 1) {
		atel__sbuf_putn(&b, d, (size_t)nd);
		for (int i = nd; i <= exp; i++)
			atel__sbuf_puts(&b, "0");
	} else {
		atel__sbuf_putn(&b, d, (size_t)exp + 1);
		atel__sbuf_puts(&b, ".");
		atel__sbuf_putn(&b, d + exp + 1, (size_t)(nd - exp - 1));
	}
	return b.pos;
}

size_t atel__promql_format_float(double v, char *buf, size_t len)
{
	return format_shortest(v, buf, len, true);
}

size_t atel__promql_format_float_f(double v, char *buf, size_t len)
{
	return format_shortest(v, buf, len, false);
}

/* xxHash64 (seed 0), the hash Prometheus' labels.Hash uses. */
static uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

#define XP1 0x9E3779B185EBCA87ull
#define XP2 0xC2B2AE3D27D4EB4Full
#define XP3 0x165667B19E3779F9ull
#define XP4 0x85EBCA77C2B2AE63ull
#define XP5 0x27D4EB2F165667C5ull

static uint64_t xx_round(uint64_t acc, uint64_t in)
{
	acc += in * XP2;
	acc = rotl64(acc, 31);
	return acc * XP1;
}

static uint64_t xx_merge(uint64_t acc, uint64_t v)
{
	acc ^= xx_round(0, v);
	return acc * XP1 + XP4;
}

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v; /* little-endian hosts (x86-64, arm64) as Go's xxhash */
}

static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

uint64_t atel__promql_xxhash64(const void *data, size_t len)
{
	const unsigned char *p = data;
	const unsigned char *end = p + len;
	uint64_t h;
	if (len >= 32) {
		uint64_t v1 = XP1 + XP2, v2 = XP2, v3 = 0, v4 = (uint64_t)0 - XP1;
		while (end - p >= 32) {
			v1 = xx_round(v1, rd64(p));
			v2 = xx_round(v2, rd64(p + 8));
			v3 = xx_round(v3, rd64(p + 16));
			v4 = xx_round(v4, rd64(p + 24));
			p += 32;
		}
		h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
		h = xx_merge(h, v1);
		h = xx_merge(h, v2);
		h = xx_merge(h, v3);
		h = xx_merge(h, v4);
	} else {
		h = XP5;
	}
	h += (uint64_t)len;
	while (end - p >= 8) {
		h ^= xx_round(0, rd64(p));
		h = rotl64(h, 27) * XP1 + XP4;
		p += 8;
	}
	if (end - p >= 4) {
		h ^= (uint64_t)rd32(p) * XP1;
		h = rotl64(h, 23) * XP2 + XP3;
		p += 4;
	}
	while (p < end) {
		h ^= (uint64_t)*p * XP5;
		h = rotl64(h, 11) * XP1;
		p++;
	}
	h ^= h >> 33;
	h *= XP2;
	h ^= h >> 29;
	h *= XP3;
	h ^= h >> 32;
	return h;
}

const char *atel_promql_errtype_name(enum atel_promql_errtype type)
{
	switch (type) {
	case ATEL_PROMQL_ERR_BAD_DATA: return "bad_data";
	case ATEL_PROMQL_ERR_EXECUTION: return "execution";
	case ATEL_PROMQL_ERR_TIMEOUT: return "timeout";
	case ATEL_PROMQL_ERR_CANCELED: return "canceled";
	case ATEL_PROMQL_ERR_INTERNAL: return "internal";
	case ATEL_PROMQL_ERR_NONE: break;
	}
	return "";
}
