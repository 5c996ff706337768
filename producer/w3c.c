/* SPDX-License-Identifier: MIT */
/*
 * W3C Trace Context (Level 2): traceparent and tracestate parsing and
 * formatting, and the TRACEPARENT/TRACESTATE environment convention.
 *
 * Headers are untrusted input: every byte is checked, nothing is read past
 * the terminating NUL, and the parsers keep no state (fuzz target
 * `traceparent`). Hand-written: no Debian library implements Trace Context.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "w3c.h"

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

int atel__traceparent_parse(const char *s, size_t len, atel_span_context *out)
{
	uint8_t ver, tid[16], sid[8], flags;
	uint8_t acc = 0;

	while (len && ows(*s))
		s++, len--;
	while (len && ows(s[len - 1]))
		len--;
	if (len < ATEL_TRACEPARENT_LEN)
		return -EINVAL;
	if (atel__unhex(s, 1, &ver, false) || ver == 0xff)
		return -EINVAL;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -EINVAL;
	if (atel__unhex(s + 3, 16, tid, false) || atel__unhex(s + 36, 8, sid, false) ||
	    atel__unhex(s + 53, 1, &flags, false))
		return -EINVAL;
	/* version 00 is exactly 55 characters; a future version may append fields after a '-' */
	if (ver == 0 ? len != ATEL_TRACEPARENT_LEN : (len > ATEL_TRACEPARENT_LEN && s[55] != '-'))
		return -EINVAL;
	for (int i = 0; i < 16; i++)
		acc |= tid[i];
	if (!acc)
		return -EINVAL;
	acc = 0;
	for (int i = 0; i < 8; i++)
		acc |= sid[i];
	if (!acc)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	memcpy(out->trace_id, tid, 16);
	memcpy(out->span_id, sid, 8);
	out->trace_flags = flags;
	out->version = ver;
	return 0;
}

int atel_extract(const char *traceparent, atel_span_context *out)
{
	if (!traceparent || !out)
		return -EINVAL;
	return atel__traceparent_parse(traceparent, strnlen(traceparent, 4096), out);
}

/* ------------------------------------------------------------------------ */
/* tracestate                                                               */

static bool lcalpha(char c)
{
	return c >= 'a' && c <= 'z';
}

/*
 * key = ( lcalpha / DIGIT ) 0*255( keychar ), keychar = lcalpha / DIGIT /
 * "_" / "-" / "*" / "/" / "@" (Trace Context Level 2, section 3.3.1.3.1):
 * the Level 1 split into tenant@system is gone; '@' may appear anywhere
 * after the first character, keys are up to 256 characters.
 */
static bool keychar(char c)
{
	return lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/' || c == '@';
}

static bool key_ok(const char *k, size_t n)
{
	if (n < 1 || n > 256 || !(lcalpha(k[0]) || (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!keychar(k[i]))
			return false;
	return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static bool value_ok(const char *v, size_t n)
{
	if (n < 1 || n > 256 || v[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
			return false;
	}
	return true;
}

int atel__tracestate_normalize(const char *in, size_t len, char *out, size_t outlen)
{
	struct {
		const char *p;
		size_t n, klen;
		bool keep;
	} m[ATEL_TRACESTATE_MAX_MEMBERS];
	size_t nm = 0, pos = 0, i = 0;
	long total = -1; /* output length: members plus separating commas */

	if (len > ATEL_TRACESTATE_MAX_INPUT)
		return -EINVAL;
	while (i <= len) {
		size_t b = i, e;
		const char *eq;

		while (i < len && in[i] != ',')
			i++;
		e = i++;
		while (b < e && ows(in[b]))
			b++;
		while (e > b && ows(in[e - 1]))
			e--;
		if (b == e)
			continue; /* empty list members are allowed and ignored */
		if (nm == ATEL_TRACESTATE_MAX_MEMBERS)
			return -EINVAL; /* more than 32 members: the whole list is invalid */
		eq = memchr(in + b, '=', e - b);
		if (!eq || !key_ok(in + b, (size_t)(eq - (in + b))) || !value_ok(eq + 1, (size_t)(in + e - eq - 1)))
			return -EINVAL;
		m[nm].p = in + b;
		m[nm].n = e - b;
		m[nm].klen = (size_t)(eq - (in + b));
		m[nm].keep = true;
		/* a key seen before: the later member is dropped, the list stays (Level 2) */
		for (size_t j = 0; j < nm && m[nm].keep; j++)
			if (m[j].klen == m[nm].klen && memcmp(m[j].p, m[nm].p, m[nm].klen) == 0)
				m[nm].keep = false;
		if (m[nm].keep)
			total += (long)m[nm].n + 1;
		nm++;
	}
	/* over 512 characters: drop members longer than 128 first, then from the end */
	for (size_t j = nm; total > ATEL_TRACESTATE_MAX_LEN && j-- > 0;)
		if (m[j].n > 128) {
			m[j].keep = false;
			total -= (long)m[j].n + 1;
		}
	for (size_t j = nm; total > ATEL_TRACESTATE_MAX_LEN && j-- > 0;)
		if (m[j].keep) {
			m[j].keep = false;
			total -= (long)m[j].n + 1;
		}
	for (size_t j = 0; j < nm; j++) {
		if (!m[j].keep)
			continue;
		if (pos + (pos ? 1 : 0) + m[j].n + 1 > outlen)
			return -ENOSPC;
		if (pos)
			out[pos++] = ',';
		memcpy(out + pos, m[j].p, m[j].n);
		pos += m[j].n;
	}
	if (outlen)
		out[pos] = '\0';
	return (int)pos;
}

int atel_extract_tracestate(const char *tracestate, atel_span_context *ctx)
{
	char buf[ATEL_TRACESTATE_MAX_LEN + 1];
	const struct atel__str *e;
	int n;

	if (!ctx)
		return -EINVAL;
	ctx->tracestate = 0;
	if (!tracestate)
		return 0;
	n = atel__tracestate_normalize(tracestate, strnlen(tracestate, ATEL_TRACESTATE_MAX_INPUT + 1), buf,
				       sizeof(buf));
	if (n < 0)
		return -EINVAL;
	if (n == 0)
		return 0;
	atel__once();
	e = atel__intern(buf, (size_t)n);
	if (!e)
		return -ENOMEM;
	ctx->tracestate = e->id;
	return 0;
}

const char *atel_context_tracestate(const atel_span_context *ctx)
{
	const struct atel__str *e = ctx ? atel__str_by_id(ctx->tracestate) : NULL;

	return e ? e->s : "";
}

/* ------------------------------------------------------------------------ */
/* formatting and the environment                                           */

int atel__traceparent_format(const atel_span_context *c, char *buf, size_t len)
{
	if (len < ATEL_TRACEPARENT_LEN + 1)
		return -ENOSPC;
	buf[0] = '0';
	buf[1] = '0';
	buf[2] = '-';
	atel__hex(c->trace_id, 16, buf + 3);
	buf[35] = '-';
	atel__hex(c->span_id, 8, buf + 36);
	buf[52] = '-';
	atel__hex(&c->trace_flags, 1, buf + 53);
	return ATEL_TRACEPARENT_LEN;
}

int atel_propagate(const atel_span *s, char *buf, size_t len)
{
	if (!s || s->state == 0 || !buf)
		return -EINVAL;
	return atel__traceparent_format(&s->ctx, buf, len);
}

int atel_propagate_tracestate(const atel_span *s, char *buf, size_t len)
{
	const char *ts;
	size_t n;

	if (!s || !buf)
		return -EINVAL;
	ts = atel_context_tracestate(&s->ctx);
	n = strlen(ts);
	if (n + 1 > len)
		return -ENOSPC;
	memcpy(buf, ts, n + 1);
	return (int)n;
}

int atel_env_inject(const atel_span *s)
{
	char tp[ATEL_TRACEPARENT_LEN + 1];
	const char *ts;

	if (atel_propagate(s, tp, sizeof(tp)) < 0)
		return -EINVAL;
	if (setenv("TRACEPARENT", tp, 1))
		return -errno;
	ts = atel_context_tracestate(&s->ctx);
	if (*ts ? setenv("TRACESTATE", ts, 1) : unsetenv("TRACESTATE"))
		return -errno;
	return 0;
}

int atel_env_extract(atel_span_context *out)
{
	const char *tp = getenv("TRACEPARENT"), *ts = getenv("TRACESTATE");

	if (!out)
		return -EINVAL;
	if (!tp || !*tp)
		tp = getenv("TRACE_CONTEXT");
	if (!tp || !*tp)
		return -ENOENT;
	if (atel_extract(tp, out))
		return -EINVAL;
	if (ts)
		(void)atel_extract_tracestate(ts, out);
	return 0;
}

void atel_trace_id_hex(const atel_span_context *ctx, char out[33])
{
	atel__hex(ctx->trace_id, 16, out);
}

void atel_span_id_hex(const atel_span_context *ctx, char out[17])
{
	atel__hex(ctx->span_id, 8, out);
}
