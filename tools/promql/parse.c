/* SPDX-License-Identifier: MIT */
/*
 * parse.c - PromQL lexer, parser and type checker.
 *
 * The lexer follows Prometheus' promql/parser/lex.go state for state (what is
 * an identifier inside and outside braces, numbers vs durations, string
 * escapes, brackets), the parser its yacc grammar (generated_parser.y) as a
 * precedence-climbing parser:
 *
 *   or  <  and unless  <  == != <= < >= >  <  + -  <  * / % atan2  <  ^ (right)
 *   unary + - bind like *, so -a^b is -(a^b) and -a*b is (-a)*b;
 *   [range], [range:step], offset and @ bind tightest, to the expression
 *   just before them.
 *
 * Errors carry the byte position of the offending token and the wording of
 * Prometheus ("unexpected <op:+> in aggregation", "unclosed left
 * parenthesis", "expected type range vector in call to function \"rate\",
 * got instant vector"); the first error is reported, formatted as
 * "<line>:<col>: parse error: <what>".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql_int.h"

/* ---- tokens -------------------------------------------------------------------------------- */

enum tok {
	T_EOF = 0, T_ERROR,
	T_COMMA, T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACKET, T_RBRACKET, T_COLON,
	T_EQL, T_EQL_REGEX, T_NEQ_REGEX,
	T_NUMBER, T_DURATION, T_STRING, T_IDENT, T_METRIC_IDENT,
	/* operators */
	T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW, T_EQLC, T_NEQ, T_LTE, T_LSS, T_GTE, T_GTR,
	T_LAND, T_LOR, T_LUNLESS, T_ATAN2, T_AT,
	/* aggregators */
	T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV,
	T_STDVAR, T_SUM, T_TOPK, T_LIMITK, T_LIMIT_RATIO,
	/* keywords */
	T_BOOL, T_BY, T_GROUP_LEFT, T_GROUP_RIGHT, T_IGNORING, T_OFFSET, T_ON, T_WITHOUT,
	/* preprocessors */
	T_START, T_END,
};

static const struct {
	const char *word;
	enum tok tok;
} keywords[] = {
	{ "and", T_LAND }, { "or", T_LOR }, { "unless", T_LUNLESS }, { "atan2", T_ATAN2 },
	{ "sum", T_SUM }, { "avg", T_AVG }, { "count", T_COUNT }, { "min", T_MIN }, { "max", T_MAX },
	{ "group", T_GROUP }, { "stddev", T_STDDEV }, { "stdvar", T_STDVAR }, { "topk", T_TOPK },
	{ "bottomk", T_BOTTOMK }, { "count_values", T_COUNT_VALUES }, { "quantile", T_QUANTILE },
	{ "limitk", T_LIMITK }, { "limit_ratio", T_LIMIT_RATIO },
	{ "offset", T_OFFSET }, { "by", T_BY }, { "without", T_WITHOUT }, { "on", T_ON },
	{ "ignoring", T_IGNORING }, { "group_left", T_GROUP_LEFT }, { "group_right", T_GROUP_RIGHT },
	{ "bool", T_BOOL }, { "start", T_START }, { "end", T_END },
	{ "inf", T_NUMBER }, { "nan", T_NUMBER },
};

static bool is_operator(enum tok t) { return t >= T_ADD && t <= T_AT; }
static bool is_aggregator(enum tok t) { return t >= T_AVG && t <= T_LIMIT_RATIO; }
static bool is_keyword(enum tok t) { return t >= T_BOOL && t <= T_END; }

struct token {
	enum tok t;
	uint32_t pos, len;
	char *errmsg;          /* T_ERROR */
};

/* ---- lexer (lex.go) ---------------------------------------------------------------------- */

struct lexer {
	const char *s;
	size_t n, pos;
	int paren_depth;
	bool brace_open, bracket_open, got_colon;
	bool after_bracket;    /* a '[' was just emitted: a number or duration must follow */
	bool done;
	struct atel__arena *arena;
};

static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha(int c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(int c) { return is_alpha(c) || is_digit(c); }

static int lpeek(const struct lexer *l, size_t off)
{
	return l->pos + off < l->n ? (unsigned char)l->s[l->pos + off] : -1;
}

/* Go's %q of a rune, for lexer errors: 'x' or '\n'. */
static void quote_rune(const struct lexer *l, size_t at, char *buf, size_t len)
{
	if (at >= l->n) {
		snprintf(buf, len, "EOF");
		return;
	}
	unsigned char c = (unsigned char)l->s[at];
	if (c >= 0x80) {
		size_t w = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
		if (at + w > l->n)
			w = 1;
		snprintf(buf, len, "'%.*s'", (int)w, l->s + at);
	} else if (c == '\n') {
		snprintf(buf, len, "'\\n'");
	} else if (c == '\t') {
		snprintf(buf, len, "'\\t'");
	} else if (c == '\'') {
		snprintf(buf, len, "'\\''");
	} else if (c < 0x20 || c == 0x7f) {
		snprintf(buf, len, "'\\x%02x'", c);
	} else {
		snprintf(buf, len, "'%c'", c);
	}
}

static struct token lex_error(struct lexer *l, size_t start, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static struct token lex_error(struct lexer *l, size_t start, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->done = true;
	struct token t = { T_ERROR, (uint32_t)start, (uint32_t)(l->n - start), NULL };
	t.errmsg = atel__arena_strndup(l->arena, msg, strlen(msg));
	return t;
}

static struct token mk(enum tok t, size_t start, size_t end)
{
	return (struct token){ t, (uint32_t)start, (uint32_t)(end - start), NULL };
}

/*
 * scanNumber: [0x][.]digits with at most one '.', one exponent, '_' between
 * digits; nothing alphanumeric may follow. Consumes what it looked at even
 * on failure (a duration unit is tried next, as lex.go does).
 */
static bool scan_number(struct lexer *l)
{
	size_t initial = l->pos;
	const char *digits = "0123456789";
	if (lpeek(l, 0) == '0' && (lpeek(l, 1) == 'x' || lpeek(l, 1) == 'X')) {
		l->pos += 2;
		if (lpeek(l, 0) == '_')
			l->pos++;
		digits = "0123456789abcdefABCDEF";
	}
	bool hex = strlen(digits) > 10;
#define ACCEPT(set) (lpeek(l, 0) >= 0 && strchr(set, lpeek(l, 0)) ? (l->pos++, true) : false)
#define IS(set) (lpeek(l, 0) >= 0 && strchr(set, lpeek(l, 0)))
	ACCEPT(".");
	ACCEPT(digits);
	bool dot = false, expo = false;
	char all[40];
	snprintf(all, sizeof(all), "%s._eE", digits);
	while (lpeek(l, 0) > 0 && IS(all)) {
		if (IS(".") && dot) {
			l->pos++;
			return false;
		}
		if (!hex && IS("eE") && expo) {
			l->pos++;
			return false;
		}
		if (ACCEPT(".")) {
			dot = true;
			if (ACCEPT("_."))
				return false;
			if (hex)
				return false;
			continue;
		}
		if (!hex && ACCEPT("eE")) {
			expo = true;
			ACCEPT("+-");
			if (ACCEPT("._eE") || lpeek(l, 0) < 0)
				return false;
			continue;
		}
		if (ACCEPT("_")) {
			if (ACCEPT("._eE") || lpeek(l, 0) < 0)
				return false;
			continue;
		}
		while (lpeek(l, 0) > 0 && IS(digits))
			l->pos++;
		if (hex && IS("eE"))
			break; /* in hex, e/E are digits: handled above by the digit run */
	}
#undef ACCEPT
#undef IS
	if (l->pos == initial)
		return false;
	int c = lpeek(l, 0);
	return !(c >= 0 && is_alnum(c));
}

/* The rest of a duration after its first digits: units, more digit-unit pairs. */
static bool accept_duration(struct lexer *l)
{
	if (lpeek(l, 0) < 0 || !strchr("smhdwy", lpeek(l, 0)))
		return false;
	l->pos++;
	if (lpeek(l, 0) == 's')
		l->pos++;
	while (lpeek(l, 0) >= 0 && is_digit(lpeek(l, 0))) {
		while (lpeek(l, 0) >= 0 && is_digit(lpeek(l, 0)))
			l->pos++;
		if (lpeek(l, 0) < 0 || !strchr("smhdw", lpeek(l, 0)))
			return false;
		l->pos++;
		if (lpeek(l, 0) == 's')
			l->pos++;
	}
	int c = lpeek(l, 0);
	if (c >= 0 && is_alnum(c)) {
		l->pos++; /* lex.go's l.next() took it: it shows in the message */
		return false;
	}
	return true;
}

static struct token lex_number_or_duration(struct lexer *l)
{
	size_t start = l->pos;
	if (scan_number(l))
		return mk(T_NUMBER, start, l->pos);
	if (accept_duration(l))
		return mk(T_DURATION, start, l->pos);
	return lex_error(l, start, "bad number or duration syntax: \"%.*s\"", (int)(l->pos - start), l->s + start);
}

/* Validate a quoted string's escapes as lexEscape does; the value is unquoted later. */
static struct token lex_string(struct lexer *l, char quote)
{
	size_t start = l->pos - 1;
	while (l->pos < l->n) {
		unsigned char c = (unsigned char)l->s[l->pos++];
		if (c == (unsigned char)quote)
			return mk(T_STRING, start, l->pos);
		if (c >= 0x80) {
			/* Strings must be valid UTF-8, as label values are. */
			size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
			int32_t r = need == 2 ? (c & 0x1f) : need == 3 ? (c & 0x0f) : (c & 0x07);
			bool ok = need && l->pos - 1 + need <= l->n;
			for (size_t k = 1; ok && k < need; k++) {
				unsigned char cc = (unsigned char)l->s[l->pos - 1 + k];
				ok = (cc & 0xc0) == 0x80;
				r = (r << 6) | (cc & 0x3f);
			}
			if (ok)
				ok = !((need == 2 && r < 0x80) || (need == 3 && r < 0x800) || (need == 4 && r < 0x10000) ||
				       r > 0x10ffff || (r >= 0xd800 && r < 0xe000));
			if (!ok)
				return lex_error(l, start, "invalid UTF-8 rune");
			l->pos += need - 1;
			continue;
		}
		if (quote == '`')
			continue;
		if (c == '\n')
			return lex_error(l, start, "unterminated quoted string");
		if (c != '\\')
			continue;
		if (l->pos >= l->n)
			return lex_error(l, start, "escape sequence not terminated");
		unsigned char e = (unsigned char)l->s[l->pos++];
		int need = 0, base = 0;
		long maxv = 0;
		switch (e) {
		case 'a': case 'b': case 'f': case 'n': case 'r': case 't': case 'v': case '\\':
			continue;
		case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
			need = 2, base = 8, maxv = 255;
			break;
		case 'x':
			need = 2, base = 16, maxv = 255;
			break;
		case 'u':
			need = 4, base = 16, maxv = 0x10ffff;
			break;
		case 'U':
			need = 8, base = 16, maxv = 0x10ffff;
			break;
		default:
			if (e == (unsigned char)quote)
				continue;
			if (e >= 0x80)
				return lex_error(l, start, "unknown escape sequence U+%04X", e);
			return lex_error(l, start, "unknown escape sequence U+%04X '%c'", e, e);
		}
		long v = base == 8 ? e - '0' : 0;
		for (int k = 0; k < need; k++) {
			if (l->pos >= l->n)
				return lex_error(l, start, "escape sequence not terminated");
			int h = (unsigned char)l->s[l->pos++];
			int d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : 99;
			if (d >= base)
				return lex_error(l, start, "illegal character U+%04X in escape sequence", h);
			v = v * base + d;
		}
		if (v > maxv || (v >= 0xd800 && v < 0xe000 && base == 16 && need > 2))
			return lex_error(l, start, "escape sequence is an invalid Unicode code point");
	}
	if (quote == '`')
		return lex_error(l, start, "unterminated raw string");
	return lex_error(l, start, "unterminated quoted string");
}

static struct token lex_word(struct lexer *l, bool colons)
{
	size_t start = l->pos;
	while (l->pos < l->n && (is_alnum((unsigned char)l->s[l->pos]) || (colons && l->s[l->pos] == ':')))
		l->pos++;
	size_t len = l->pos - start;
	if (!colons)
		return mk(T_IDENT, start, l->pos);
	for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
		if (strlen(keywords[k].word) != len)
			continue;
		size_t j;
		for (j = 0; j < len; j++) {
			char c = l->s[start + j];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (c != keywords[k].word[j])
				break;
		}
		if (j == len)
			return mk(keywords[k].tok, start, l->pos);
	}
	return mk(memchr(l->s + start, ':', len) ? T_METRIC_IDENT : T_IDENT, start, l->pos);
}

static void skip_space_and_comments(struct lexer *l)
{
	for (;;) {
		while (l->pos < l->n && is_space((unsigned char)l->s[l->pos]))
			l->pos++;
		if (l->pos < l->n && l->s[l->pos] == '#') {
			while (l->pos < l->n && l->s[l->pos] != '\n' && l->s[l->pos] != '\r')
				l->pos++;
			continue;
		}
		break;
	}
}

static struct token lex_next(struct lexer *l)
{
	char q[16];
	if (l->done)
		return mk(T_EOF, l->n, l->n);
	if (l->after_bracket) {
		l->after_bracket = false;
		while (l->pos < l->n && is_space((unsigned char)l->s[l->pos]))
			l->pos++;
		return lex_number_or_duration(l);
	}
	skip_space_and_comments(l);
	size_t start = l->pos;
	if (l->brace_open) {
		if (l->pos >= l->n)
			return lex_error(l, start, "unexpected end of input inside braces");
		int c = (unsigned char)l->s[l->pos];
		if (is_alpha(c))
			return lex_word(l, false);
		l->pos++;
		switch (c) {
		case ',':
			return mk(T_COMMA, start, l->pos);
		case '"':
		case '\'':
		case '`':
			return lex_string(l, (char)c);
		case '=':
			if (lpeek(l, 0) == '~') {
				l->pos++;
				return mk(T_EQL_REGEX, start, l->pos);
			}
			return mk(T_EQL, start, l->pos);
		case '!':
			if (lpeek(l, 0) == '~') {
				l->pos++;
				return mk(T_NEQ_REGEX, start, l->pos);
			}
			if (lpeek(l, 0) == '=') {
				l->pos++;
				return mk(T_NEQ, start, l->pos);
			}
			quote_rune(l, l->pos, q, sizeof(q));
			return lex_error(l, start, "unexpected character after '!' inside braces: %s", q);
		case '{':
			return lex_error(l, start, "unexpected left brace '{'");
		case '}':
			l->brace_open = false;
			return mk(T_RBRACE, start, l->pos);
		default:
			quote_rune(l, start, q, sizeof(q));
			return lex_error(l, start, "unexpected character inside braces: %s", q);
		}
	}
	if (l->pos >= l->n) {
		if (l->paren_depth != 0)
			return lex_error(l, start, "unclosed left parenthesis");
		if (l->bracket_open)
			return lex_error(l, start, "unclosed left bracket");
		l->done = true;
		return mk(T_EOF, l->n, l->n);
	}
	int c = (unsigned char)l->s[l->pos];
	if (is_digit(c) || (c == '.' && lpeek(l, 1) >= 0 && is_digit(lpeek(l, 1))))
		return lex_number_or_duration(l);
	if (is_alpha(c) || c == ':') {
		if (!l->bracket_open)
			return lex_word(l, true);
		l->pos++;
		if (c != ':' || l->got_colon) {
			quote_rune(l, start, q, sizeof(q));
			return lex_error(l, start, "unexpected colon %s", q);
		}
		l->got_colon = true;
		return mk(T_COLON, start, l->pos);
	}
	l->pos++;
	switch (c) {
	case ',': return mk(T_COMMA, start, l->pos);
	case '*': return mk(T_MUL, start, l->pos);
	case '/': return mk(T_DIV, start, l->pos);
	case '%': return mk(T_MOD, start, l->pos);
	case '+': return mk(T_ADD, start, l->pos);
	case '-': return mk(T_SUB, start, l->pos);
	case '^': return mk(T_POW, start, l->pos);
	case '@': return mk(T_AT, start, l->pos);
	case '=':
		if (lpeek(l, 0) == '=') {
			l->pos++;
			return mk(T_EQLC, start, l->pos);
		}
		if (lpeek(l, 0) == '~') {
			quote_rune(l, l->pos, q, sizeof(q));
			return lex_error(l, start, "unexpected character after '=': %s", q);
		}
		return mk(T_EQL, start, l->pos);
	case '!':
		if (lpeek(l, 0) == '=') {
			l->pos++;
			return mk(T_NEQ, start, l->pos);
		}
		quote_rune(l, l->pos, q, sizeof(q));
		return lex_error(l, start, "unexpected character after '!': %s", q);
	case '<':
		if (lpeek(l, 0) == '=') {
			l->pos++;
			return mk(T_LTE, start, l->pos);
		}
		return mk(T_LSS, start, l->pos);
	case '>':
		if (lpeek(l, 0) == '=') {
			l->pos++;
			return mk(T_GTE, start, l->pos);
		}
		return mk(T_GTR, start, l->pos);
	case '"':
	case '\'':
	case '`':
		return lex_string(l, (char)c);
	case '(':
		l->paren_depth++;
		return mk(T_LPAREN, start, l->pos);
	case ')':
		if (--l->paren_depth < 0)
			return lex_error(l, start, "unexpected right parenthesis ')'");
		return mk(T_RPAREN, start, l->pos);
	case '{':
		l->brace_open = true;
		return mk(T_LBRACE, start, l->pos);
	case '[':
		if (l->bracket_open)
			return lex_error(l, start, "unexpected left bracket '['");
		l->got_colon = false;
		l->bracket_open = true;
		l->after_bracket = true;
		return mk(T_LBRACKET, start, l->pos);
	case ']':
		if (!l->bracket_open)
			return lex_error(l, start, "unexpected right bracket ']'");
		l->bracket_open = false;
		return mk(T_RBRACKET, start, l->pos);
	default:
		quote_rune(l, start, q, sizeof(q));
		return lex_error(l, start, "unexpected character: %s", q);
	}
}

/* ---- parser ---------------------------------------------------------------------------------- */

struct parser {
	struct lexer lex;
	struct token tok;      /* current lookahead */
	struct token prev;     /* last consumed */
	struct atel_promql_expr *e;
	struct atel_promql_error *err;
	bool failed;
	int depth;
};

#define MAX_DEPTH 500

static void fail_at(struct parser *p, uint32_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(struct parser *p, uint32_t pos, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	if (!p->err)
		return;
	uint32_t line = 1, col;
	size_t last_nl = (size_t)-1;
	for (size_t i = 0; i < pos && i < p->e->len; i++)
		if (p->e->text[i] == '\n')
			line++, last_nl = i;
	col = (uint32_t)(pos - (last_nl + 1) + 1);
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	p->err->type = ATEL_PROMQL_ERR_BAD_DATA;
	p->err->code = -EINVAL;
	p->err->pos = pos;
	p->err->line = line;
	p->err->col = col;
	snprintf(p->err->msg, sizeof(p->err->msg), "%u:%u: parse error: %s", line, col, what);
}

static void advance(struct parser *p)
{
	p->prev = p->tok;
	if (p->tok.t == T_ERROR)
		return;
	p->tok = lex_next(&p->lex);
	if (p->tok.t == T_ERROR)
		fail_at(p, p->tok.pos, "%s", p->tok.errmsg ? p->tok.errmsg : "out of memory");
}

/* Prometheus' Item.desc() of the current token, for "unexpected ..." messages. */
static void tok_desc(const struct parser *p, const struct token *t, char *buf, size_t len)
{
	const char *s = p->e->text + t->pos;
	int n = (int)t->len;
	switch (t->t) {
	case T_EOF:
		snprintf(buf, len, "end of input");
		return;
	case T_IDENT:
		snprintf(buf, len, "identifier \"%.*s\"", n, s);
		return;
	case T_METRIC_IDENT:
		snprintf(buf, len, "metric identifier \"%.*s\"", n, s);
		return;
	case T_NUMBER:
		snprintf(buf, len, "number \"%.*s\"%s", n > 10 ? 10 : n, s, n > 10 ? "..." : "");
		return;
	case T_DURATION:
		snprintf(buf, len, "duration \"%.*s\"", n, s);
		return;
	case T_STRING: {
		char q[64];
		char tmp[16];
		snprintf(tmp, sizeof(tmp), "%.*s", n > 10 ? 10 : n, s);
		atel__promql_quote(tmp, q, sizeof(q));
		snprintf(buf, len, "string %s%s", q, n > 10 ? "..." : "");
		return;
	}
	default:
		break;
	}
	if (is_operator(t->t) && t->t != T_AT)
		snprintf(buf, len, "<op:%.*s>", n, s);
	else if (is_aggregator(t->t))
		snprintf(buf, len, "<aggr:%.*s>", n, s);
	else if (is_keyword(t->t))
		snprintf(buf, len, "<%.*s>", n, s);
	else
		snprintf(buf, len, "\"%.*s\"", n, s);
}

static void unexpected(struct parser *p, const char *context, const char *expected)
{
	if (p->failed || p->tok.t == T_ERROR)
		return;
	char d[96];
	tok_desc(p, &p->tok, d, sizeof(d));
	if (context && expected)
		fail_at(p, p->tok.pos, "unexpected %s in %s, expected %s", d, context, expected);
	else if (context)
		fail_at(p, p->tok.pos, "unexpected %s in %s", d, context);
	else if (expected)
		fail_at(p, p->tok.pos, "unexpected %s, expected %s", d, expected);
	else
		fail_at(p, p->tok.pos, "unexpected %s", d);
}

static void *palloc(struct parser *p, size_t n)
{
	void *m = atel__arena_zalloc(&p->e->arena, n);
	if (!m && !p->failed) {
		p->failed = true;
		if (p->err) {
			p->err->type = ATEL_PROMQL_ERR_INTERNAL;
			p->err->code = -ENOMEM;
			snprintf(p->err->msg, sizeof(p->err->msg), "out of memory");
		}
	}
	return m;
}

static struct atel_promql_node *new_node(struct parser *p, enum atel_promql_node_kind k, uint32_t start, uint32_t end)
{
	struct atel_promql_node *n = palloc(p, sizeof(*n));
	if (n) {
		n->kind = k;
		n->start = start;
		n->end = end;
	}
	return n;
}

static char *tok_text(struct parser *p, const struct token *t)
{
	char *s = atel__arena_strndup(&p->e->arena, p->e->text + t->pos, t->len);
	if (!s)
		palloc(p, (size_t)-1 / 2); /* reports out of memory */
	return s;
}

static char *unquote_tok(struct parser *p, const struct token *t)
{
	const char *why;
	char *s = atel__promql_unquote(&p->e->arena, p->e->text + t->pos, t->len, &why);
	if (!s)
		fail_at(p, t->pos, "error unquoting string \"%.*s\": %s", (int)t->len, p->e->text + t->pos, why);
	return s;
}

/* Growable pointer array in malloc memory, copied into the arena when done. */
struct ptrvec {
	void **v;
	size_t n, cap;
};

static bool pv_push(struct parser *p, struct ptrvec *pv, void *x)
{
	if (pv->n == pv->cap) {
		size_t nc = pv->cap ? pv->cap * 2 : 4;
		void **nv = realloc(pv->v, nc * sizeof(*nv));
		if (!nv) {
			palloc(p, (size_t)-1 / 2);
			return false;
		}
		pv->v = nv;
		pv->cap = nc;
	}
	pv->v[pv->n++] = x;
	return true;
}

static void **pv_finish(struct parser *p, struct ptrvec *pv)
{
	void **out = NULL;
	if (pv->n) {
		out = palloc(p, pv->n * sizeof(*out));
		if (out)
			memcpy(out, pv->v, pv->n * sizeof(*out));
	}
	free(pv->v);
	pv->v = NULL;
	return out;
}

/* Prometheus' number(): strconv.ParseInt(s, 0, 64), else ParseFloat. */
static double parse_number(struct parser *p, const struct token *t)
{
	char buf[128];
	const char *s = p->e->text + t->pos;
	size_t n = t->len;
	size_t o = 0;
	/* Go accepts '_' between digits with a base prefix and in floats. */
	for (size_t i = 0; i < n && o + 1 < sizeof(buf); i++)
		if (s[i] != '_')
			buf[o++] = s[i];
	buf[o] = 0;
	if (o >= sizeof(buf) - 1) {
		fail_at(p, t->pos, "error parsing number: value out of range");
		return 0;
	}
	if (!strcasecmp(buf, "inf") || !strcasecmp(buf, "+inf"))
		return INFINITY;
	if (!strcasecmp(buf, "nan"))
		return NAN;
	/* Integers with Go's base prefixes: 0x, 0o, 0b and a leading 0 for octal. */
	bool is_int = true;
	int base = 10;
	const char *digits = buf;
	if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))
		base = 16, digits = buf + 2;
	else if (buf[0] == '0' && (buf[1] == 'o' || buf[1] == 'O'))
		base = 8, digits = buf + 2;
	else if (buf[0] == '0' && (buf[1] == 'b' || buf[1] == 'B'))
		base = 2, digits = buf + 2;
	else if (buf[0] == '0' && buf[1])
		base = 8, digits = buf + 1;
	if (!*digits)
		is_int = false;
	for (const char *c = digits; *c && is_int; c++) {
		int d = *c >= '0' && *c <= '9' ? *c - '0' : (*c | 0x20) >= 'a' && (*c | 0x20) <= 'f' ? (*c | 0x20) - 'a' + 10 : 99;
		if (d >= base)
			is_int = false;
	}
	if (is_int) {
		errno = 0;
		char *end;
		long long v = strtoll(digits, &end, base);
		if (errno == 0 && *end == 0)
			return (double)v;
		/* out of int64 range: ParseFloat decides (hex and octal fail there) */
	}
	if (base == 2 || (base == 8 && digits != buf + 1)) {
		fail_at(p, t->pos, "error parsing number: strconv.ParseFloat: parsing \"%s\": invalid syntax", buf);
		return 0;
	}
	errno = 0;
	char *end;
	double v = strtod(buf, &end);
	if (*end != 0 || end == buf) {
		fail_at(p, t->pos, "error parsing number: strconv.ParseFloat: parsing \"%s\": invalid syntax", buf);
		return 0;
	}
	if (errno == ERANGE && isinf(v)) {
		fail_at(p, t->pos, "error parsing number: strconv.ParseFloat: parsing \"%s\": value out of range", buf);
		return 0;
	}
	return v;
}

/* A NUMBER or DURATION as seconds (number_duration_literal). */
static double number_or_duration(struct parser *p, const struct token *t)
{
	if (t->t == T_NUMBER)
		return parse_number(p, t);
	char msg[160];
	int64_t ms;
	if (atel__promql_parse_duration(p->e->text + t->pos, t->len, &ms, msg, sizeof(msg)) != 0) {
		fail_at(p, t->pos, "%s", msg);
		return 0;
	}
	if (ms == 0) {
		fail_at(p, t->pos, "duration must be greater than 0");
		return 0;
	}
	return (double)ms / 1000.0;
}

/*
 * Go's time.Duration(v * 1000) * time.Millisecond, in ms. A Duration holds
 * at most 292 years; beyond that Go wraps around, here it saturates.
 */
static int64_t seconds_to_ms(double v)
{
	const int64_t max_ms = INT64_MAX / 1000000;
	double ms = v * 1000.0;
	if (isnan(ms))
		return 0;
	if (ms >= (double)max_ms)
		return max_ms;
	if (ms <= -(double)max_ms)
		return -max_ms;
	return (int64_t)ms; /* truncation toward zero, as Go's conversion */
}

static struct atel_promql_node *parse_expr(struct parser *p, int min_prec);

static void reg_regex(struct parser *p, struct atel__re *re)
{
	struct atel_promql_expr *e = p->e;
	if (e->nregexes == e->capregexes) {
		size_t nc = e->capregexes ? e->capregexes * 2 : 4;
		struct atel__re **n = realloc(e->regexes, nc * sizeof(*n));
		if (!n) {
			atel__re_free(re);
			free(re);
			palloc(p, (size_t)-1 / 2);
			return;
		}
		e->regexes = n;
		e->capregexes = nc;
	}
	e->regexes[e->nregexes++] = re;
}

static bool make_matcher(struct parser *p, struct atel_promql_matcher *m, const char *name, enum atel_promql_match_op op,
			 const char *value, uint32_t pos)
{
	m->name = name;
	m->op = op;
	m->value = value;
	m->re = NULL;
	if (op != ATEL_PROMQL_MATCH_RE && op != ATEL_PROMQL_MATCH_NRE)
		return true;
	struct atel__re *re = malloc(sizeof(*re));
	if (!re) {
		palloc(p, (size_t)-1 / 2);
		return false;
	}
	char msg[300];
	int rc = atel__re_compile(re, value, msg, sizeof(msg));
	if (rc) {
		free(re);
		if (rc == -ENOMEM)
			palloc(p, (size_t)-1 / 2);
		else
			fail_at(p, pos, "%s", msg);
		return false;
	}
	reg_regex(p, re);
	m->re = re;
	return !p->failed;
}

/* `{` label_match_list `}` (the '{' is the current token). */
static bool parse_label_matchers(struct parser *p, struct ptrvec *out)
{
	advance(p); /* '{' */
	for (;;) {
		if (p->failed)
			return false;
		if (p->tok.t == T_RBRACE)
			break;
		struct token name = p->tok;
		if (name.t != T_IDENT && name.t != T_STRING) {
			unexpected(p, "label matching", "identifier or \"}\"");
			return false;
		}
		advance(p);
		struct atel_promql_matcher *m = palloc(p, sizeof(*m));
		if (!m)
			return false;
		enum atel_promql_match_op op;
		switch (p->tok.t) {
		case T_EQL: op = ATEL_PROMQL_MATCH_EQ; break;
		case T_NEQ: op = ATEL_PROMQL_MATCH_NE; break;
		case T_EQL_REGEX: op = ATEL_PROMQL_MATCH_RE; break;
		case T_NEQ_REGEX: op = ATEL_PROMQL_MATCH_NRE; break;
		default:
			if (name.t == T_STRING && (p->tok.t == T_COMMA || p->tok.t == T_RBRACE)) {
				/* {"metric_name"} */
				char *v = unquote_tok(p, &name);
				if (!v || !make_matcher(p, m, "__name__", ATEL_PROMQL_MATCH_EQ, v, name.pos))
					return false;
				if (!pv_push(p, out, m))
					return false;
				goto next;
			}
			unexpected(p, "label matching", "label matching operator");
			return false;
		}
		advance(p);
		if (p->tok.t != T_STRING) {
			unexpected(p, "label matching", "string");
			return false;
		}
		struct token val = p->tok;
		advance(p);
		char *ln = name.t == T_STRING ? unquote_tok(p, &name) : tok_text(p, &name);
		char *lv = unquote_tok(p, &val);
		if (!ln || !lv || !make_matcher(p, m, ln, op, lv, name.pos))
			return false;
		if (!pv_push(p, out, m))
			return false;
next:
		if (p->failed)
			return false;
		if (p->tok.t == T_COMMA) {
			advance(p);
			continue;
		}
		if (p->tok.t != T_RBRACE) {
			unexpected(p, "label matching", "\",\" or \"}\"");
			return false;
		}
	}
	advance(p); /* '}' */
	return !p->failed;
}

static bool name_token(enum tok t)
{
	/* metric_identifier: identifiers and the keywords that may name a metric */
	switch (t) {
	case T_AVG: case T_BOTTOMK: case T_BY: case T_COUNT: case T_COUNT_VALUES: case T_GROUP:
	case T_IDENT: case T_LAND: case T_LOR: case T_LUNLESS: case T_MAX: case T_METRIC_IDENT:
	case T_MIN: case T_OFFSET: case T_QUANTILE: case T_STDDEV: case T_STDVAR: case T_SUM:
	case T_TOPK: case T_WITHOUT: case T_START: case T_END: case T_LIMITK: case T_LIMIT_RATIO:
		return true;
	default:
		return false;
	}
}

/* A vector selector: [name] [{matchers}]. The current token starts it. */
static struct atel_promql_node *parse_selector(struct parser *p)
{
	uint32_t start = p->tok.pos;
	char *name = NULL;
	if (p->tok.t != T_LBRACE) {
		name = tok_text(p, &p->tok);
		advance(p);
	}
	struct ptrvec ms = { 0 };
	if (!p->failed && p->tok.t == T_LBRACE && !parse_label_matchers(p, &ms)) {
		free(ms.v);
		return NULL;
	}
	if (p->failed) {
		free(ms.v);
		return NULL;
	}
	struct atel_promql_node *n = new_node(p, ATEL_PROMQL_SELECTOR, start, p->prev.pos + p->prev.len);
	size_t cnt = ms.n + (name ? 1 : 0);
	struct atel_promql_matcher *arr = cnt ? palloc(p, cnt * sizeof(*arr)) : NULL;
	if (!n || (cnt && !arr)) {
		free(ms.v);
		return NULL;
	}
	for (size_t i = 0; i < ms.n; i++)
		arr[i] = *(struct atel_promql_matcher *)ms.v[i];
	free(ms.v);
	if (name)
		make_matcher(p, &arr[cnt - 1], "__name__", ATEL_PROMQL_MATCH_EQ, name, start);
	n->sel.name = name;
	n->sel.matchers = arr;
	n->sel.nmatchers = cnt;
	return n;
}

/* grouping_labels: ( label, ... ) */
static bool parse_grouping(struct parser *p, const char *const **out, size_t *nout)
{
	if (p->tok.t != T_LPAREN) {
		unexpected(p, "grouping opts", "\"(\"");
		return false;
	}
	advance(p);
	struct ptrvec v = { 0 };
	while (!p->failed && p->tok.t != T_RPAREN) {
		char *lab = NULL;
		enum tok t = p->tok.t;
		bool maybe_label = t == T_IDENT || t == T_METRIC_IDENT || is_aggregator(t) || is_keyword(t) ||
				   t == T_LAND || t == T_LOR || t == T_LUNLESS || t == T_ATAN2;
		if (t == T_STRING) {
			lab = unquote_tok(p, &p->tok);
			if (lab && !atel__promql_utf8_name(lab)) {
				unexpected(p, "grouping opts", "label");
				lab = NULL;
			}
		} else if (maybe_label) {
			lab = tok_text(p, &p->tok);
			if (lab && !atel__promql_utf8_name(lab)) {
				unexpected(p, "grouping opts", "label");
				lab = NULL;
			}
			/* METRIC_IDENTIFIER (with ':') is not a valid label name in legacy mode
			 * but is in UTF-8 mode, which Prometheus 3 uses. */
		} else {
			unexpected(p, "grouping opts", "label");
		}
		if (!lab || !pv_push(p, &v, lab))
			break;
		advance(p);
		if (p->tok.t == T_COMMA) {
			advance(p);
			continue;
		}
		if (p->tok.t != T_RPAREN)
			unexpected(p, "grouping opts", "\",\" or \")\"");
	}
	if (p->failed) {
		free(v.v);
		return false;
	}
	advance(p); /* ')' */
	*nout = v.n;
	*out = (const char *const *)pv_finish(p, &v);
	if (!*out) {
		/* an empty list is a list: give it a non-NULL empty array */
		*out = palloc(p, sizeof(char *));
	}
	return !p->failed;
}

/* function_call_body: ( args ) */
static bool parse_call_args(struct parser *p, struct ptrvec *args)
{
	advance(p); /* '(' */
	if (p->tok.t == T_RPAREN) {
		advance(p);
		return !p->failed;
	}
	for (;;) {
		struct atel_promql_node *a = parse_expr(p, 0);
		if (!a || !pv_push(p, args, a))
			return false;
		if (p->tok.t == T_COMMA) {
			struct token comma = p->tok;
			advance(p);
			if (p->tok.t == T_RPAREN) {
				fail_at(p, comma.pos, "trailing commas not allowed in function call args");
				return false;
			}
			continue;
		}
		if (p->tok.t == T_RPAREN) {
			advance(p);
			return !p->failed;
		}
		unexpected(p, NULL, NULL);
		return false;
	}
}

static const enum atel_promql_agg agg_of[] = {
	[T_AVG] = ATEL_PROMQL_AGG_AVG, [T_BOTTOMK] = ATEL_PROMQL_AGG_BOTTOMK, [T_COUNT] = ATEL_PROMQL_AGG_COUNT,
	[T_COUNT_VALUES] = ATEL_PROMQL_AGG_COUNT_VALUES, [T_GROUP] = ATEL_PROMQL_AGG_GROUP, [T_MAX] = ATEL_PROMQL_AGG_MAX,
	[T_MIN] = ATEL_PROMQL_AGG_MIN, [T_QUANTILE] = ATEL_PROMQL_AGG_QUANTILE, [T_STDDEV] = ATEL_PROMQL_AGG_STDDEV,
	[T_STDVAR] = ATEL_PROMQL_AGG_STDVAR, [T_SUM] = ATEL_PROMQL_AGG_SUM, [T_TOPK] = ATEL_PROMQL_AGG_TOPK,
	[T_LIMITK] = ATEL_PROMQL_AGG_LIMITK, [T_LIMIT_RATIO] = ATEL_PROMQL_AGG_LIMIT_RATIO,
};

static bool agg_has_param(enum atel_promql_agg a)
{
	return a == ATEL_PROMQL_AGG_TOPK || a == ATEL_PROMQL_AGG_BOTTOMK || a == ATEL_PROMQL_AGG_COUNT_VALUES ||
	       a == ATEL_PROMQL_AGG_QUANTILE || a == ATEL_PROMQL_AGG_LIMITK || a == ATEL_PROMQL_AGG_LIMIT_RATIO;
}

static struct atel_promql_node *parse_aggregate(struct parser *p)
{
	struct token op = p->tok;
	advance(p);
	struct atel_promql_node *n = new_node(p, ATEL_PROMQL_AGGREGATE, op.pos, 0);
	if (!n)
		return NULL;
	n->agg.op = agg_of[op.t];
	bool modifier = false;
	if (p->tok.t == T_BY || p->tok.t == T_WITHOUT) {
		n->agg.without = p->tok.t == T_WITHOUT;
		advance(p);
		if (!parse_grouping(p, &n->agg.grouping, &n->agg.ngrouping))
			return NULL;
		modifier = true;
	}
	if (p->tok.t != T_LPAREN) {
		unexpected(p, "aggregation", NULL);
		return NULL;
	}
	struct ptrvec args = { 0 };
	if (!parse_call_args(p, &args)) {
		free(args.v);
		return NULL;
	}
	uint32_t end = p->prev.pos + p->prev.len;
	if (!modifier && (p->tok.t == T_BY || p->tok.t == T_WITHOUT)) {
		n->agg.without = p->tok.t == T_WITHOUT;
		advance(p);
		if (!parse_grouping(p, &n->agg.grouping, &n->agg.ngrouping)) {
			free(args.v);
			return NULL;
		}
		end = p->prev.pos + p->prev.len;
	}
	n->end = end;
	size_t nargs = args.n;
	struct atel_promql_node **a = (struct atel_promql_node **)pv_finish(p, &args);
	if (nargs == 0) {
		fail_at(p, n->start, "no arguments for aggregate expression provided");
		return NULL;
	}
	size_t want = agg_has_param(n->agg.op) ? 2 : 1;
	if (nargs != want) {
		fail_at(p, n->start, "wrong number of arguments for aggregate expression provided, expected %zu, got %zu",
			want, nargs);
		return NULL;
	}
	if (want == 2)
		n->agg.param = a[0];
	n->agg.expr = a[want - 1];
	return n;
}

/* Primary expressions: literals, selectors, calls, aggregations, parentheses. */
static struct atel_promql_node *parse_primary(struct parser *p)
{
	struct token t = p->tok;
	switch (t.t) {
	case T_NUMBER:
	case T_DURATION: {
		advance(p);
		struct atel_promql_node *n = new_node(p, ATEL_PROMQL_NUMBER, t.pos, t.pos + t.len);
		if (n)
			n->number = number_or_duration(p, &t);
		return p->failed ? NULL : n;
	}
	case T_STRING: {
		advance(p);
		struct atel_promql_node *n = new_node(p, ATEL_PROMQL_STRING_LIT, t.pos, t.pos + t.len);
		if (n)
			n->string = unquote_tok(p, &t);
		return p->failed ? NULL : n;
	}
	case T_LPAREN: {
		advance(p);
		if (++p->depth > MAX_DEPTH) {
			fail_at(p, t.pos, "expression nests too deeply");
			return NULL;
		}
		struct atel_promql_node *inner = parse_expr(p, 0);
		p->depth--;
		if (!inner)
			return NULL;
		if (p->tok.t != T_RPAREN) {
			unexpected(p, NULL, NULL);
			return NULL;
		}
		advance(p);
		struct atel_promql_node *n = new_node(p, ATEL_PROMQL_PAREN, t.pos, p->prev.pos + p->prev.len);
		if (n)
			n->paren.expr = inner;
		return n;
	}
	case T_LBRACE:
		return parse_selector(p);
	case T_IDENT: {
		/* A function call when '(' follows, else a metric name. */
		struct lexer save = p->lex;
		struct token after = lex_next(&p->lex);
		p->lex = save;
		if (after.t == T_LPAREN) {
			const struct atel__func *f = atel__func_lookup(p->e->text + t.pos, t.len);
			if (!f) {
				fail_at(p, t.pos, "unknown function with name \"%.*s\"", (int)t.len, p->e->text + t.pos);
				return NULL;
			}
			advance(p);
			if (++p->depth > MAX_DEPTH) {
				fail_at(p, t.pos, "expression nests too deeply");
				return NULL;
			}
			struct ptrvec args = { 0 };
			bool ok = parse_call_args(p, &args);
			p->depth--;
			if (!ok) {
				free(args.v);
				return NULL;
			}
			struct atel_promql_node *n = new_node(p, ATEL_PROMQL_CALL, t.pos, p->prev.pos + p->prev.len);
			if (!n) {
				free(args.v);
				return NULL;
			}
			n->call.func = f->name;
			n->call.func_id = f->id;
			n->call.nargs = args.n;
			n->call.args = (struct atel_promql_node **)pv_finish(p, &args);
			return n;
		}
		return parse_selector(p);
	}
	default:
		break;
	}
	if (is_aggregator(t.t)) {
		struct lexer save = p->lex;
		struct token after = lex_next(&p->lex);
		p->lex = save;
		if (after.t == T_LPAREN || after.t == T_BY || after.t == T_WITHOUT) {
			if (++p->depth > MAX_DEPTH) {
				fail_at(p, t.pos, "expression nests too deeply");
				return NULL;
			}
			struct atel_promql_node *n = parse_aggregate(p);
			p->depth--;
			return n;
		}
	}
	if (name_token(t.t))
		return parse_selector(p);
	unexpected(p, NULL, NULL);
	return NULL;
}

static bool node_at_vars(struct parser *p, struct atel_promql_node *e, enum atel_promql_at **at, int64_t **at_ms,
			 uint32_t **endp)
{
	switch (e->kind) {
	case ATEL_PROMQL_SELECTOR:
		*at = &e->sel.at, *at_ms = &e->sel.at_ms, *endp = &e->end;
		return true;
	case ATEL_PROMQL_MATRIX_SEL:
		*at = &e->matrix.sel->sel.at, *at_ms = &e->matrix.sel->sel.at_ms, *endp = &e->end;
		return true;
	case ATEL_PROMQL_SUBQUERY:
		*at = &e->subquery.at, *at_ms = &e->subquery.at_ms, *endp = &e->end;
		return true;
	default:
		fail_at(p, e->start, "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery");
		return false;
	}
}

/* Postfix: [range], [range:step], offset, @ (repeatedly). */
static struct atel_promql_node *parse_postfix(struct parser *p, struct atel_promql_node *e)
{
	while (e && !p->failed) {
		if (p->tok.t == T_LBRACKET) {
			struct token lb = p->tok;
			advance(p);
			if (p->failed)
				return NULL;
			struct token rt = p->tok; /* NUMBER or DURATION, guaranteed by the lexer */
			double range = number_or_duration(p, &rt);
			advance(p);
			if (p->failed)
				return NULL;
			if (p->tok.t == T_RBRACKET) {
				advance(p);
				const char *why = NULL;
				if (e->kind != ATEL_PROMQL_SELECTOR)
					why = "ranges only allowed for vector selectors";
				else if (e->sel.offset_ms != 0)
					why = "no offset modifiers allowed before range";
				else if (e->sel.at != ATEL_PROMQL_AT_NONE)
					why = "no @ modifiers allowed before range";
				if (why) {
					fail_at(p, lb.pos, "%s", why);
					return NULL;
				}
				struct atel_promql_node *m = new_node(p, ATEL_PROMQL_MATRIX_SEL, e->start, p->prev.pos + 1);
				if (!m)
					return NULL;
				m->matrix.sel = e;
				m->matrix.range_ms = seconds_to_ms(range);
				e = m;
				continue;
			}
			if (p->tok.t != T_COLON) {
				unexpected(p, "subquery or range", "\":\" or \"]\"");
				return NULL;
			}
			advance(p);
			double step = 0;
			if (p->tok.t == T_NUMBER || p->tok.t == T_DURATION) {
				struct token st = p->tok;
				step = number_or_duration(p, &st);
				advance(p);
				if (p->failed)
					return NULL;
				if (p->tok.t != T_RBRACKET) {
					unexpected(p, "subquery selector", "\"]\"");
					return NULL;
				}
			} else if (p->tok.t != T_RBRACKET) {
				unexpected(p, "subquery selector", "number or duration or \"]\"");
				return NULL;
			}
			advance(p);
			struct atel_promql_node *s = new_node(p, ATEL_PROMQL_SUBQUERY, e->start, p->prev.pos + 1);
			if (!s)
				return NULL;
			s->subquery.expr = e;
			s->subquery.range_ms = seconds_to_ms(range);
			s->subquery.step_ms = seconds_to_ms(step);
			e = s;
			continue;
		}
		if (p->tok.t == T_OFFSET) {
			advance(p);
			bool neg = false;
			if (p->tok.t == T_SUB) {
				neg = true;
				advance(p);
			}
			if (p->tok.t != T_NUMBER && p->tok.t != T_DURATION) {
				unexpected(p, "offset", "number or duration");
				return NULL;
			}
			struct token ot = p->tok;
			double off = number_or_duration(p, &ot);
			advance(p);
			if (p->failed)
				return NULL;
			int64_t ms = seconds_to_ms(off);
			if (neg)
				ms = -ms;
			int64_t *slot;
			switch (e->kind) {
			case ATEL_PROMQL_SELECTOR:
				slot = &e->sel.offset_ms;
				break;
			case ATEL_PROMQL_MATRIX_SEL:
				slot = &e->matrix.sel->sel.offset_ms;
				break;
			case ATEL_PROMQL_SUBQUERY:
				slot = &e->subquery.offset_ms;
				break;
			default:
				fail_at(p, e->start, "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery");
				return NULL;
			}
			if (*slot != 0) {
				fail_at(p, e->start, "offset may not be set multiple times");
				return NULL;
			}
			*slot = ms;
			e->end = p->prev.pos + p->prev.len;
			continue;
		}
		if (p->tok.t == T_AT) {
			advance(p);
			enum atel_promql_at *at;
			int64_t *at_ms;
			uint32_t *endp;
			if (p->tok.t == T_START || p->tok.t == T_END) {
				enum atel_promql_at which = p->tok.t == T_START ? ATEL_PROMQL_AT_START : ATEL_PROMQL_AT_END;
				advance(p);
				if (p->tok.t != T_LPAREN) {
					unexpected(p, NULL, NULL);
					return NULL;
				}
				advance(p);
				if (p->tok.t != T_RPAREN) {
					unexpected(p, NULL, NULL);
					return NULL;
				}
				advance(p);
				if (p->failed || !node_at_vars(p, e, &at, &at_ms, &endp))
					return NULL;
				if (*at != ATEL_PROMQL_AT_NONE) {
					fail_at(p, e->start, "@ <timestamp> may not be set multiple times");
					return NULL;
				}
				*at = which;
				*endp = p->prev.pos + p->prev.len;
				continue;
			}
			bool neg = false;
			if (p->tok.t == T_ADD || p->tok.t == T_SUB) {
				neg = p->tok.t == T_SUB;
				advance(p);
			}
			if (p->tok.t != T_NUMBER && p->tok.t != T_DURATION) {
				unexpected(p, "@", "timestamp");
				return NULL;
			}
			struct token tt = p->tok;
			double ts = number_or_duration(p, &tt);
			advance(p);
			if (p->failed)
				return NULL;
			if (neg)
				ts = -ts;
			/* Prometheus refuses what does not fit int64 seconds; here the bound is
			 * 2^61 ms (73 million years), so time arithmetic cannot overflow. */
			if (!isfinite(ts) || fabs(ts) * 1000.0 > ATEL_PROMQL_MAX_TIME_MS) {
				fail_at(p, e->start, "timestamp out of bounds for @ modifier: %f", ts);
				return NULL;
			}
			if (!node_at_vars(p, e, &at, &at_ms, &endp))
				return NULL;
			if (*at != ATEL_PROMQL_AT_NONE) {
				fail_at(p, e->start, "@ <timestamp> may not be set multiple times");
				return NULL;
			}
			*at = ATEL_PROMQL_AT_TIME;
			/* timestamp.FromFloatSeconds: math.Round(ts*1000) */
			double msd = round(ts * 1000.0);
			*at_ms = (int64_t)msd;
			*endp = p->prev.pos + p->prev.len;
			continue;
		}
		break;
	}
	return p->failed ? NULL : e;
}

static int binop_prec(enum tok t)
{
	switch (t) {
	case T_LOR: return 1;
	case T_LAND: case T_LUNLESS: return 2;
	case T_EQLC: case T_NEQ: case T_LTE: case T_LSS: case T_GTE: case T_GTR: return 3;
	case T_ADD: case T_SUB: return 4;
	case T_MUL: case T_DIV: case T_MOD: case T_ATAN2: return 5;
	case T_POW: return 6;
	default: return 0;
	}
}

static enum atel_promql_op op_of(enum tok t)
{
	switch (t) {
	case T_ADD: return ATEL_PROMQL_OP_ADD;
	case T_SUB: return ATEL_PROMQL_OP_SUB;
	case T_MUL: return ATEL_PROMQL_OP_MUL;
	case T_DIV: return ATEL_PROMQL_OP_DIV;
	case T_MOD: return ATEL_PROMQL_OP_MOD;
	case T_POW: return ATEL_PROMQL_OP_POW;
	case T_ATAN2: return ATEL_PROMQL_OP_ATAN2;
	case T_EQLC: return ATEL_PROMQL_OP_EQLC;
	case T_NEQ: return ATEL_PROMQL_OP_NEQ;
	case T_GTR: return ATEL_PROMQL_OP_GTR;
	case T_LSS: return ATEL_PROMQL_OP_LSS;
	case T_GTE: return ATEL_PROMQL_OP_GTE;
	case T_LTE: return ATEL_PROMQL_OP_LTE;
	case T_LAND: return ATEL_PROMQL_OP_AND;
	case T_LOR: return ATEL_PROMQL_OP_OR;
	case T_LUNLESS: return ATEL_PROMQL_OP_UNLESS;
	default: return 0;
	}
}

/* A unary-prefixed or plain operand: unary + and - bind like * (MUL). */
static struct atel_promql_node *parse_unary(struct parser *p)
{
	if (p->tok.t == T_ADD || p->tok.t == T_SUB) {
		struct token op = p->tok;
		advance(p);
		if (++p->depth > MAX_DEPTH) {
			fail_at(p, op.pos, "expression nests too deeply");
			return NULL;
		}
		struct atel_promql_node *x = parse_expr(p, binop_prec(T_POW));
		p->depth--;
		if (!x)
			return NULL;
		if (x->kind == ATEL_PROMQL_NUMBER) {
			if (op.t == T_SUB)
				x->number = -x->number;
			x->start = op.pos;
			return x;
		}
		struct atel_promql_node *n = new_node(p, ATEL_PROMQL_UNARY, op.pos, x->end);
		if (n) {
			n->unary.op = op.t == T_SUB ? ATEL_PROMQL_OP_SUB : ATEL_PROMQL_OP_ADD;
			n->unary.expr = x;
		}
		return n;
	}
	struct atel_promql_node *e = parse_primary(p);
	return parse_postfix(p, e);
}

static struct atel_promql_node *parse_expr(struct parser *p, int min_prec)
{
	struct atel_promql_node *lhs = parse_unary(p);
	while (lhs && !p->failed) {
		int prec = binop_prec(p->tok.t);
		if (prec == 0 || prec < min_prec)
			break;
		struct token op = p->tok;
		advance(p);
		struct atel_promql_node *n = new_node(p, ATEL_PROMQL_BINARY, lhs->start, 0);
		if (!n)
			return NULL;
		n->binary.op = op_of(op.t);
		n->binary.lhs = lhs;
		if (p->tok.t == T_BOOL) {
			n->binary.return_bool = true;
			advance(p);
		}
		if (p->tok.t == T_ON || p->tok.t == T_IGNORING) {
			n->binary.on = p->tok.t == T_ON;
			advance(p);
			if (!parse_grouping(p, &n->binary.match_labels, &n->binary.nmatch_labels))
				return NULL;
			if (p->tok.t == T_GROUP_LEFT || p->tok.t == T_GROUP_RIGHT) {
				n->binary.card = p->tok.t == T_GROUP_LEFT ? ATEL_PROMQL_MANY_TO_ONE : ATEL_PROMQL_ONE_TO_MANY;
				advance(p);
				if (p->tok.t == T_LPAREN && !parse_grouping(p, &n->binary.include, &n->binary.ninclude))
					return NULL;
			}
		}
		if (p->failed)
			return NULL;
		if (++p->depth > MAX_DEPTH) {
			fail_at(p, op.pos, "expression nests too deeply");
			return NULL;
		}
		/* ^ is right-associative; everything else left-associative. */
		struct atel_promql_node *rhs = parse_expr(p, op.t == T_POW ? prec : prec + 1);
		p->depth--;
		if (!rhs)
			return NULL;
		n->binary.rhs = rhs;
		n->end = rhs->end;
		lhs = n;
	}
	return p->failed ? NULL : lhs;
}

/* ---- type checking (checkAST) ---------------------------------------------------------------- */

enum atel_promql_vtype atel_promql_node_type(const struct atel_promql_node *n)
{
	switch (n->kind) {
	case ATEL_PROMQL_NUMBER: return ATEL_PROMQL_SCALAR;
	case ATEL_PROMQL_STRING_LIT: return ATEL_PROMQL_STRING;
	case ATEL_PROMQL_SELECTOR: return ATEL_PROMQL_VECTOR;
	case ATEL_PROMQL_MATRIX_SEL: return ATEL_PROMQL_MATRIX;
	case ATEL_PROMQL_SUBQUERY: return ATEL_PROMQL_MATRIX;
	case ATEL_PROMQL_PAREN: return atel_promql_node_type(n->paren.expr);
	case ATEL_PROMQL_UNARY: return atel_promql_node_type(n->unary.expr);
	case ATEL_PROMQL_AGGREGATE: return ATEL_PROMQL_VECTOR;
	case ATEL_PROMQL_CALL: return atel__func_by_id(n->call.func_id)->ret;
	case ATEL_PROMQL_BINARY:
		if (atel_promql_node_type(n->binary.lhs) == ATEL_PROMQL_SCALAR &&
		    atel_promql_node_type(n->binary.rhs) == ATEL_PROMQL_SCALAR)
			return ATEL_PROMQL_SCALAR;
		return ATEL_PROMQL_VECTOR;
	}
	return ATEL_PROMQL_NONE;
}

static const char *documented_type(enum atel_promql_vtype t)
{
	switch (t) {
	case ATEL_PROMQL_SCALAR: return "scalar";
	case ATEL_PROMQL_VECTOR: return "instant vector";
	case ATEL_PROMQL_MATRIX: return "range vector";
	case ATEL_PROMQL_STRING: return "string";
	default: return "none";
	}
}

static const char *op_text(enum atel_promql_op op)
{
	static const char *const t[] = {
		[ATEL_PROMQL_OP_ADD] = "+", [ATEL_PROMQL_OP_SUB] = "-", [ATEL_PROMQL_OP_MUL] = "*",
		[ATEL_PROMQL_OP_DIV] = "/", [ATEL_PROMQL_OP_MOD] = "%", [ATEL_PROMQL_OP_POW] = "^",
		[ATEL_PROMQL_OP_ATAN2] = "atan2", [ATEL_PROMQL_OP_EQLC] = "==", [ATEL_PROMQL_OP_NEQ] = "!=",
		[ATEL_PROMQL_OP_GTR] = ">", [ATEL_PROMQL_OP_LSS] = "<", [ATEL_PROMQL_OP_GTE] = ">=",
		[ATEL_PROMQL_OP_LTE] = "<=", [ATEL_PROMQL_OP_AND] = "and", [ATEL_PROMQL_OP_OR] = "or",
		[ATEL_PROMQL_OP_UNLESS] = "unless",
	};
	return t[op];
}

static bool is_comparison(enum atel_promql_op op)
{
	return op >= ATEL_PROMQL_OP_EQLC && op <= ATEL_PROMQL_OP_LTE;
}

static bool is_set_op(enum atel_promql_op op)
{
	return op == ATEL_PROMQL_OP_AND || op == ATEL_PROMQL_OP_OR || op == ATEL_PROMQL_OP_UNLESS;
}

static enum atel_promql_vtype check(struct parser *p, struct atel_promql_node *n);

static void expect_type(struct parser *p, struct atel_promql_node *n, enum atel_promql_vtype want, const char *context)
{
	enum atel_promql_vtype t = check(p, n);
	if (!p->failed && t != want)
		fail_at(p, n->start, "expected type %s in %s, got %s", documented_type(want), context, documented_type(t));
}

/* The operator's position: after the LHS, skipping white space (opRange). */
static uint32_t op_pos(struct parser *p, const struct atel_promql_node *n)
{
	uint32_t i = n->binary.lhs->end;
	while (i < p->e->len && is_space((unsigned char)p->e->text[i]))
		i++;
	return i;
}

static enum atel_promql_vtype check(struct parser *p, struct atel_promql_node *n)
{
	if (p->failed)
		return ATEL_PROMQL_NONE;
	enum atel_promql_vtype typ = atel_promql_node_type(n);
	switch (n->kind) {
	case ATEL_PROMQL_AGGREGATE:
		expect_type(p, n->agg.expr, ATEL_PROMQL_VECTOR, "aggregation expression");
		switch (n->agg.op) {
		case ATEL_PROMQL_AGG_TOPK:
		case ATEL_PROMQL_AGG_BOTTOMK:
		case ATEL_PROMQL_AGG_QUANTILE:
		case ATEL_PROMQL_AGG_LIMITK:
		case ATEL_PROMQL_AGG_LIMIT_RATIO:
			expect_type(p, n->agg.param, ATEL_PROMQL_SCALAR, "aggregation parameter");
			break;
		case ATEL_PROMQL_AGG_COUNT_VALUES:
			expect_type(p, n->agg.param, ATEL_PROMQL_STRING, "aggregation parameter");
			break;
		default:
			break;
		}
		break;
	case ATEL_PROMQL_BINARY: {
		enum atel_promql_vtype lt = check(p, n->binary.lhs);
		enum atel_promql_vtype rt = check(p, n->binary.rhs);
		if (p->failed)
			break;
		enum atel_promql_op op = n->binary.op;
		if (n->binary.return_bool && !is_comparison(op)) {
			fail_at(p, op_pos(p, n), "bool modifier can only be used on comparison operators");
			break;
		}
		if (is_comparison(op) && !n->binary.return_bool && lt == ATEL_PROMQL_SCALAR && rt == ATEL_PROMQL_SCALAR) {
			fail_at(p, op_pos(p, n), "comparisons between scalars must use BOOL modifier");
			break;
		}
		if (is_set_op(op) && n->binary.card == ATEL_PROMQL_ONE_TO_ONE)
			n->binary.card = ATEL_PROMQL_MANY_TO_MANY;
		if (n->binary.on)
			for (size_t i = 0; i < n->binary.nmatch_labels; i++)
				for (size_t j = 0; j < n->binary.ninclude; j++)
					if (!strcmp(n->binary.match_labels[i], n->binary.include[j])) {
						fail_at(p, op_pos(p, n), "label \"%s\" must not occur in ON and GROUP clause at once",
							n->binary.match_labels[i]);
						return typ;
					}
		if (lt != ATEL_PROMQL_SCALAR && lt != ATEL_PROMQL_VECTOR) {
			fail_at(p, n->binary.lhs->start, "binary expression must contain only scalar and instant vector types");
			break;
		}
		if (rt != ATEL_PROMQL_SCALAR && rt != ATEL_PROMQL_VECTOR) {
			fail_at(p, n->binary.rhs->start, "binary expression must contain only scalar and instant vector types");
			break;
		}
		if (lt != ATEL_PROMQL_VECTOR || rt != ATEL_PROMQL_VECTOR) {
			if (n->binary.nmatch_labels > 0) {
				fail_at(p, n->start, "vector matching only allowed between instant vectors");
				break;
			}
			/* Prometheus drops the matching of scalar operations. */
			n->binary.card = ATEL_PROMQL_ONE_TO_ONE;
			n->binary.on = false;
			n->binary.match_labels = NULL;
			n->binary.include = NULL;
			n->binary.ninclude = 0;
		} else if (is_set_op(op)) {
			if (n->binary.card == ATEL_PROMQL_ONE_TO_MANY || n->binary.card == ATEL_PROMQL_MANY_TO_ONE) {
				fail_at(p, n->start, "no grouping allowed for \"%s\" operation", op_text(op));
				break;
			}
		}
		if ((lt == ATEL_PROMQL_SCALAR || rt == ATEL_PROMQL_SCALAR) && is_set_op(op))
			fail_at(p, n->start, "set operator \"%s\" not allowed in binary scalar expression", op_text(op));
		break;
	}
	case ATEL_PROMQL_CALL: {
		const struct atel__func *f = atel__func_by_id(n->call.func_id);
		size_t nargs = (size_t)f->nargs;
		if (f->variadic == 0) {
			if (nargs != n->call.nargs) {
				fail_at(p, n->start, "expected %zu argument(s) in call to \"%s\", got %zu", nargs, f->name,
					n->call.nargs);
				break;
			}
		} else {
			size_t na = nargs - 1;
			if (na > n->call.nargs) {
				fail_at(p, n->start, "expected at least %zu argument(s) in call to \"%s\", got %zu", na, f->name,
					n->call.nargs);
				break;
			}
			if (f->variadic > 0 && na + (size_t)f->variadic < n->call.nargs) {
				fail_at(p, n->start, "expected at most %zu argument(s) in call to \"%s\", got %zu",
					na + (size_t)f->variadic, f->name, n->call.nargs);
				break;
			}
		}
		char ctx[96];
		snprintf(ctx, sizeof(ctx), "call to function \"%s\"", f->name);
		for (size_t i = 0; i < n->call.nargs && !p->failed; i++) {
			size_t k = i;
			if (k >= nargs) {
				if (f->variadic == 0)
					break;
				k = nargs - 1;
			}
			expect_type(p, n->call.args[i], f->args[k], ctx);
		}
		break;
	}
	case ATEL_PROMQL_PAREN:
		check(p, n->paren.expr);
		break;
	case ATEL_PROMQL_UNARY: {
		enum atel_promql_vtype t = check(p, n->unary.expr);
		if (!p->failed && t != ATEL_PROMQL_SCALAR && t != ATEL_PROMQL_VECTOR)
			fail_at(p, n->start, "unary expression only allowed on expressions of type scalar or instant vector, got \"%s\"",
				documented_type(t));
		break;
	}
	case ATEL_PROMQL_SUBQUERY: {
		enum atel_promql_vtype t = check(p, n->subquery.expr);
		if (!p->failed && t != ATEL_PROMQL_VECTOR) {
			static const char *const gotype[] = { "none", "scalar", "vector", "matrix", "string" };
			fail_at(p, n->start, "subquery is only allowed on instant vector, got %s instead", gotype[t]);
		}
		break;
	}
	case ATEL_PROMQL_MATRIX_SEL:
		check(p, n->matrix.sel);
		break;
	case ATEL_PROMQL_SELECTOR:
		if (n->sel.name) {
			for (size_t i = 0; i + 1 < n->sel.nmatchers; i++)
				if (!strcmp(n->sel.matchers[i].name, "__name__")) {
					fail_at(p, n->start, "metric name must not be set twice: \"%s\" or \"%s\"", n->sel.name,
						n->sel.matchers[i].value);
					break;
				}
			break;
		}
		{
			bool not_empty = false;
			for (size_t i = 0; i < n->sel.nmatchers; i++)
				if (!atel_promql_matcher_matches(&n->sel.matchers[i], "")) {
					not_empty = true;
					break;
				}
			if (!not_empty)
				fail_at(p, n->start, "vector selector must contain at least one non-empty matcher");
		}
		break;
	case ATEL_PROMQL_NUMBER:
	case ATEL_PROMQL_STRING_LIT:
		break;
	}
	return typ;
}

/* ---- entry points ------------------------------------------------------------------------------ */

bool atel_promql_matcher_matches(const struct atel_promql_matcher *m, const char *value)
{
	if (!value)
		value = "";
	switch (m->op) {
	case ATEL_PROMQL_MATCH_EQ:
		return strcmp(value, m->value) == 0;
	case ATEL_PROMQL_MATCH_NE:
		return strcmp(value, m->value) != 0;
	case ATEL_PROMQL_MATCH_RE:
		return atel__re_match(m->re, value);
	case ATEL_PROMQL_MATCH_NRE:
		return !atel__re_match(m->re, value);
	}
	return false;
}

static int parse_common(const char *query, size_t len, struct atel_promql_expr **out, struct atel_promql_error *err,
			bool selector_only)
{
	*out = NULL;
	if (err)
		memset(err, 0, sizeof(*err));
	struct atel_promql_expr *e = calloc(1, sizeof(*e));
	if (!e)
		goto oom;
	e->text = malloc(len + 1);
	if (!e->text) {
		free(e);
		goto oom;
	}
	if (len)
		memcpy(e->text, query, len);
	e->text[len] = 0;
	e->len = len;
	if (memchr(e->text, 0, len)) {
		/* Label values are C strings; a NUL in the query cannot mean anything. */
		struct parser p0 = { .e = e, .err = err };
		fail_at(&p0, (uint32_t)((char *)memchr(e->text, 0, len) - e->text), "unexpected character: '\\x00'");
		atel_promql_expr_free(e);
		return -EINVAL;
	}
	if (len > UINT32_MAX / 2) {
		struct parser p0 = { .e = e, .err = err };
		fail_at(&p0, 0, "query too long");
		atel_promql_expr_free(e);
		return -EINVAL;
	}
	struct parser p = { .e = e, .err = err };
	p.lex.s = e->text;
	p.lex.n = len;
	p.lex.arena = &e->arena;
	p.tok = lex_next(&p.lex);
	if (p.tok.t == T_ERROR)
		fail_at(&p, p.tok.pos, "%s", p.tok.errmsg ? p.tok.errmsg : "out of memory");
	struct atel_promql_node *root = NULL;
	if (!p.failed) {
		if (p.tok.t == T_EOF) {
			fail_at(&p, 0, selector_only ? "unexpected end of input" : "no expression found in input");
		} else if (selector_only) {
			if (p.tok.t == T_LBRACE || name_token(p.tok.t) || is_aggregator(p.tok.t))
				root = parse_selector(&p);
			else
				unexpected(&p, NULL, NULL);
		} else {
			root = parse_expr(&p, 0);
		}
	}
	if (!p.failed && p.tok.t != T_EOF)
		unexpected(&p, NULL, NULL);
	/* ParseMetricSelector does no type check (match[] may be {__name__=~".*"}). */
	if (!p.failed && root && !selector_only)
		check(&p, root);
	if (p.failed || !root) {
		int rc = err && err->type == ATEL_PROMQL_ERR_INTERNAL ? -ENOMEM : -EINVAL;
		atel_promql_expr_free(e);
		return rc;
	}
	e->root = root;
	*out = e;
	return 0;
oom:
	if (err) {
		err->type = ATEL_PROMQL_ERR_INTERNAL;
		err->code = -ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	}
	return -ENOMEM;
}

int atel_promql_parse(const char *query, size_t len, struct atel_promql_expr **out, struct atel_promql_error *err)
{
	return parse_common(query, len, out, err, false);
}

int atel_promql_parse_selector(const char *text, size_t len, struct atel_promql_expr **out,
			       struct atel_promql_error *err)
{
	return parse_common(text, len, out, err, true);
}

struct atel_promql_node *atel_promql_expr_root(struct atel_promql_expr *e)
{
	return e->root;
}

void atel_promql_expr_free(struct atel_promql_expr *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nregexes; i++) {
		atel__re_free(e->regexes[i]);
		free(e->regexes[i]);
	}
	free(e->regexes);
	atel__arena_free(&e->arena);
	free(e->text);
	free(e);
}
