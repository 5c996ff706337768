/* SPDX-License-Identifier: MIT */
/*
 * re.c - RE2-syntax regular expressions (what Prometheus users write) run by
 * POSIX regcomp/regexec.
 *
 * Prometheus compiles every =~ / !~ matcher and label_replace() regex with
 * Go's regexp as "^(?s:" + re + ")$": RE2 syntax, fully anchored, `.`
 * matching newlines. Here the pattern is parsed with RE2's grammar and
 * re-emitted as a POSIX ERE that glibc compiles in the C locale (bytes):
 *
 *   - (?:x), (?P<n>x), (?<n>x), (?flags) and (?flags:x) with flags i, s, U
 *     (m is refused); capture groups are mapped to POSIX subexpressions.
 *   - Lazy quantifiers (*? +? ?? {n,m}?) match the same strings as greedy
 *     ones; RE2 repeat counts are limited to 1000 as in Go.
 *   - Classes: ranges, negation, [[:alpha:]], \d \w \s and negations (ASCII,
 *     as RE2), escapes; (?i) folds ASCII letters.
 *   - `.` and negated classes match one UTF-8 character, as in RE2, via
 *     explicit byte patterns; `.*`/`.+` and repeats of ASCII-only classes
 *     stay byte patterns (identical on valid UTF-8).
 *
 * Differences from Go, all refused with a message rather than silently
 * different, except the last two:
 *   - \p{...} Unicode classes, \C, (?m), and non-ASCII ranges in classes are
 *     not supported; non-ASCII letters do not case-fold under (?i).
 *   - label_replace() submatches follow POSIX leftmost-longest rules, not
 *     Go's leftmost-first: "(.*?)-(.*)" on "a-b-c" gives $1 = "a-b" here,
 *     "a" in Prometheus. Whole-string matching is the same.
 *   - Label values are expected to be valid UTF-8 (Prometheus refuses
 *     others at ingestion); `.` does not match a stray continuation byte.
 *
 * Bounded work: glibc expands repetitions into NFA nodes, so a pattern's
 * expanded size (counting x{n,m} as m copies of x, nesting multiplied) is
 * limited to RE_MAX_COST nodes and its nesting to RE_MAX_DEPTH, like Go's
 * own "expression too large" and "expression nests too deeply".
 */
#include <errno.h>
#include <locale.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql_int.h"

#define RE_MAX_COST 20000.0
#define RE_MAX_DEPTH 200
#define RE_MAX_REPEAT 1000

/* ---- code point sets ---------------------------------------------------------------------- */

struct rset {
	int32_t (*r)[2];
	size_t n, cap;
};

enum rk {
	RK_EMPTY, RK_LIT, RK_SET, RK_ANY, RK_BOL, RK_EOL, RK_WB, RK_NWB, RK_CAT, RK_ALT, RK_REP, RK_GROUP,
};

struct rn {
	enum rk k;
	int32_t ch;          /* RK_LIT */
	bool fold;           /* RK_LIT: (?i) */
	bool nl;             /* RK_ANY: matches \n (s flag) */
	struct rset set;     /* RK_SET (folded already) */
	struct rn **kids;
	size_t nkids;
	int min, max;        /* RK_REP; max -1 = unbounded */
	int cap;             /* RK_GROUP: capture index, 0 = non-capturing */
};

struct rparser {
	const char *pat;
	size_t n, i;
	int flags_i, flags_s, flags_U;
	int ncap;
	char **names;        /* by capture index */
	size_t namescap;
	int depth;
	char *err;
	size_t errlen;
	bool failed;
	struct atel__arena arena;
};

static void *ralloc(struct rparser *p, size_t n)
{
	void *m = atel__arena_zalloc(&p->arena, n);
	if (!m && !p->failed) {
		p->failed = true;
		snprintf(p->err, p->errlen, "out of memory");
	}
	return m;
}

static void rfail(struct rparser *p, const char *code, const char *arg, size_t arglen)
{
	if (p->failed)
		return;
	p->failed = true;
	snprintf(p->err, p->errlen, "error parsing regexp: %s: `%.*s`", code, (int)arglen, arg);
}

static void rfail_msg(struct rparser *p, const char *msg)
{
	if (p->failed)
		return;
	p->failed = true;
	snprintf(p->err, p->errlen, "error parsing regexp: %s", msg);
}

static bool set_add(struct rparser *p, struct rset *s, int32_t lo, int32_t hi)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 8;
		int32_t(*nr)[2] = ralloc(p, nc * sizeof(*nr));
		if (!nr)
			return false;
		if (s->n)
			memcpy(nr, s->r, s->n * sizeof(*nr));
		s->r = nr;
		s->cap = nc;
	}
	s->r[s->n][0] = lo;
	s->r[s->n][1] = hi;
	s->n++;
	return true;
}

static int cmp_range(const void *a, const void *b)
{
	const int32_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Sort and merge overlapping or adjacent ranges. */
static void set_norm(struct rset *s)
{
	if (s->n < 2)
		return;
	qsort(s->r, s->n, sizeof(*s->r), cmp_range);
	size_t o = 0;
	for (size_t i = 1; i < s->n; i++) {
		if (s->r[i][0] <= s->r[o][1] + 1) {
			if (s->r[i][1] > s->r[o][1])
				s->r[o][1] = s->r[i][1];
		} else {
			s->r[++o][0] = s->r[i][0];
			s->r[o][1] = s->r[i][1];
		}
	}
	s->n = o + 1;
}

static bool set_negate(struct rparser *p, struct rset *s)
{
	set_norm(s);
	struct rset out = { 0 };
	int32_t next = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->r[i][0] > next && !set_add(p, &out, next, s->r[i][0] - 1))
			return false;
		next = s->r[i][1] + 1;
	}
	if (next <= 0x10ffff && !set_add(p, &out, next, 0x10ffff))
		return false;
	*s = out;
	return true;
}

/* Add the other case of every ASCII letter in s. */
static bool set_fold(struct rparser *p, struct rset *s)
{
	size_t n = s->n;
	for (size_t i = 0; i < n; i++) {
		int32_t lo = s->r[i][0], hi = s->r[i][1];
		int32_t a = lo > 'a' ? lo : 'a', b = hi < 'z' ? hi : 'z';
		if (a <= b && !set_add(p, s, a - 32, b - 32))
			return false;
		a = lo > 'A' ? lo : 'A', b = hi < 'Z' ? hi : 'Z';
		if (a <= b && !set_add(p, s, a + 32, b + 32))
			return false;
	}
	set_norm(s);
	return true;
}

/* ---- parsing --------------------------------------------------------------------------------- */

static struct rn *node(struct rparser *p, enum rk k)
{
	struct rn *n = ralloc(p, sizeof(*n));
	if (n)
		n->k = k;
	return n;
}

/* Decode the pattern's next UTF-8 character. */
static int32_t rnext(struct rparser *p)
{
	const unsigned char *s = (const unsigned char *)p->pat + p->i;
	size_t left = p->n - p->i;
	unsigned char c = s[0];
	if (c < 0x80) {
		p->i++;
		return c;
	}
	size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
	int32_t r = need == 2 ? (c & 0x1f) : need == 3 ? (c & 0x0f) : (c & 0x07);
	if (!need || left < need)
		goto bad;
	for (size_t k = 1; k < need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			goto bad;
		r = (r << 6) | (s[k] & 0x3f);
	}
	if ((need == 2 && r < 0x80) || (need == 3 && r < 0x800) || (need == 4 && r < 0x10000) || r > 0x10ffff ||
	    (r >= 0xd800 && r < 0xe000))
		goto bad;
	p->i += need;
	return r;
bad:
	rfail_msg(p, "invalid UTF-8");
	p->i = p->n;
	return -1;
}

static bool perl_class(struct rparser *p, char c, struct rset *s)
{
	struct rset t = { 0 };
	switch (c | 0x20) {
	case 'd':
		set_add(p, &t, '0', '9');
		break;
	case 's':
		set_add(p, &t, '\t', '\n');
		set_add(p, &t, '\f', '\r');
		set_add(p, &t, ' ', ' ');
		break;
	case 'w':
		set_add(p, &t, '0', '9');
		set_add(p, &t, 'A', 'Z');
		set_add(p, &t, '_', '_');
		set_add(p, &t, 'a', 'z');
		break;
	default:
		return false;
	}
	if (c >= 'A' && c <= 'Z' && !set_negate(p, &t))
		return false;
	for (size_t i = 0; i < t.n; i++)
		if (!set_add(p, s, t.r[i][0], t.r[i][1]))
			return false;
	return true;
}

/*
 * An escape after '\' (p->i at the character after the backslash). Returns
 * the character, or -2 when a class was added to *cls (only when cls is
 * given), -3 for assertions (\b \B \A \z, kind in *assert), -1 on error.
 */
static int32_t parse_escape(struct rparser *p, struct rset *cls, enum rk *assert)
{
	size_t start = p->i - 1;
	if (p->i >= p->n) {
		rfail(p, "trailing backslash at end of expression", "", 0);
		return -1;
	}
	char c = p->pat[p->i];
	if ((unsigned char)c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
		p->i++;
		return c; /* escaped punctuation is itself */
	}
	p->i++;
	switch (c) {
	case 'a': return 7;
	case 'f': return '\f';
	case 't': return '\t';
	case 'n': return '\n';
	case 'r': return '\r';
	case 'v': return '\v';
	case '1': case '2': case '3': case '4': case '5': case '6': case '7':
		/* A single digit would be a backreference, which RE2 lacks. */
		if (p->i >= p->n || p->pat[p->i] < '0' || p->pat[p->i] > '7')
			break;
		/* fallthrough */
	case '0': {
		int32_t v = c - '0';
		for (int k = 0; k < 2 && p->i < p->n && p->pat[p->i] >= '0' && p->pat[p->i] <= '7'; k++)
			v = v * 8 + (p->pat[p->i++] - '0');
		return v;
	}
	case 'x': {
		if (p->i >= p->n)
			break;
		int32_t v = 0;
		if (p->pat[p->i] == '{') {
			size_t j = p->i + 1;
			int nd = 0;
			while (j < p->n && p->pat[j] != '}') {
				char h = p->pat[j];
				int d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
				if (d < 0 || v > 0x10ffff)
					goto bad;
				v = v * 16 + d;
				nd++;
				j++;
			}
			if (j >= p->n || nd == 0 || v > 0x10ffff)
				goto bad;
			p->i = j + 1;
			return v;
		}
		for (int k = 0; k < 2; k++) {
			if (p->i >= p->n)
				goto bad;
			char h = p->pat[p->i++];
			int d = h >= '0' && h <= '9' ? h - '0' : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
			if (d < 0)
				goto bad;
			v = v * 16 + d;
		}
		return v;
	}
	case 'd': case 'D': case 's': case 'S': case 'w': case 'W':
		if (!cls)
			break;
		return perl_class(p, c, cls) ? -2 : -1;
	case 'b': case 'B': case 'A': case 'z':
		if (!assert)
			break;
		*assert = c == 'b' ? RK_WB : c == 'B' ? RK_NWB : c == 'A' ? RK_BOL : RK_EOL;
		return -3;
	case 'p': case 'P':
		rfail(p, "Unicode classes (\\p, \\P) are not supported", p->pat + start, p->i - start);
		return -1;
	case 'C':
		rfail(p, "\\C (any byte) is not supported", p->pat + start, p->i - start);
		return -1;
	default:
		break;
	}
bad:
	rfail(p, "invalid escape sequence", p->pat + start, (p->i < p->n ? p->i : p->n) - start);
	return -1;
}

static struct rn *parse_class(struct rparser *p)
{
	size_t start = p->i; /* at '[' */
	p->i++;
	bool neg = false;
	struct rset s = { 0 };
	if (p->i < p->n && p->pat[p->i] == '^') {
		neg = true;
		p->i++;
	}
	bool first = true;
	for (;;) {
		if (p->failed)
			return NULL;
		if (p->i >= p->n) {
			rfail(p, "missing closing ]", p->pat + start, p->n - start);
			return NULL;
		}
		char c = p->pat[p->i];
		if (c == ']' && !first)
			break;
		first = false;
		size_t itemstart = p->i;
		if (c == '[' && p->i + 1 < p->n && p->pat[p->i + 1] == ':') {
			static const struct {
				const char *name;
				const char *ranges; /* pairs */
			} posix[] = {
				{ "alnum", "09AZaz" }, { "alpha", "AZaz" }, { "ascii", "\x01\x7f" }, { "blank", "\t\t  " },
				{ "cntrl", "\x01\x1f\x7f\x7f" }, { "digit", "09" }, { "graph", "!~" }, { "lower", "az" },
				{ "print", " ~" }, { "punct", "!/:@[`{~" }, { "space", "\t\r  " }, { "upper", "AZ" },
				{ "word", "09AZ__az" }, { "xdigit", "09AFaf" },
			};
			const char *end = strstr(p->pat + p->i + 2, ":]");
			if (end && (size_t)(end - p->pat) < p->n) {
				const char *nm = p->pat + p->i + 2;
				size_t nl = (size_t)(end - nm);
				bool cneg = nl > 0 && nm[0] == '^';
				if (cneg)
					nm++, nl--;
				size_t k;
				for (k = 0; k < sizeof(posix) / sizeof(posix[0]); k++)
					if (strlen(posix[k].name) == nl && !memcmp(posix[k].name, nm, nl))
						break;
				if (k == sizeof(posix) / sizeof(posix[0])) {
					rfail(p, "invalid character class range", p->pat + p->i, (size_t)(end + 2 - (p->pat + p->i)));
					return NULL;
				}
				struct rset t = { 0 };
				const char *r = posix[k].ranges;
				for (size_t j = 0; r[j]; j += 2)
					set_add(p, &t, (unsigned char)r[j], (unsigned char)r[j + 1]);
				if (cneg)
					set_negate(p, &t);
				for (size_t j = 0; j < t.n; j++)
					set_add(p, &s, t.r[j][0], t.r[j][1]);
				p->i = (size_t)(end + 2 - p->pat);
				continue;
			}
		}
		int32_t lo;
		if (c == '\\') {
			p->i++;
			lo = parse_escape(p, &s, NULL);
			if (lo == -2)
				continue;
			if (lo < 0)
				return NULL;
		} else {
			lo = rnext(p);
			if (lo < 0)
				return NULL;
		}
		int32_t hi = lo;
		if (p->i + 1 < p->n && p->pat[p->i] == '-' && p->pat[p->i + 1] != ']') {
			p->i++;
			if (p->pat[p->i] == '\\') {
				p->i++;
				hi = parse_escape(p, NULL, NULL);
			} else {
				hi = rnext(p);
			}
			if (hi < 0)
				return NULL;
			if (hi < lo) {
				rfail(p, "invalid character class range", p->pat + itemstart, p->i - itemstart);
				return NULL;
			}
		}
		if (!set_add(p, &s, lo, hi))
			return NULL;
	}
	p->i++; /* ']' */
	if (p->flags_i && !set_fold(p, &s))
		return NULL;
	if (neg && !set_negate(p, &s))
		return NULL;
	set_norm(&s);
	struct rn *n = node(p, RK_SET);
	if (n)
		n->set = s;
	return n;
}

static struct rn *parse_alt(struct rparser *p);

/* Is "{n}", "{n,}" or "{n,m}" at p->i? Sets min/max and the end index. */
static bool repeat_at(struct rparser *p, size_t i, int *min, int *max, size_t *end)
{
	if (i >= p->n || p->pat[i] != '{')
		return false;
	i++;
	long a = -1, b = -1;
	size_t d = i;
	while (i < p->n && p->pat[i] >= '0' && p->pat[i] <= '9') {
		if (a < 0)
			a = 0;
		if (a <= 100000)
			a = a * 10 + (p->pat[i] - '0');
		i++;
	}
	if (i == d)
		return false;
	if (i < p->n && p->pat[i] == ',') {
		i++;
		size_t d2 = i;
		while (i < p->n && p->pat[i] >= '0' && p->pat[i] <= '9') {
			if (b < 0)
				b = 0;
			if (b <= 100000)
				b = b * 10 + (p->pat[i] - '0');
			i++;
		}
		if (i == d2)
			b = -1; /* unbounded */
	} else {
		b = a;
	}
	if (i >= p->n || p->pat[i] != '}')
		return false;
	*min = (int)(a > 100000 ? 100001 : a);
	*max = b < 0 ? -1 : (int)(b > 100000 ? 100001 : b);
	*end = i + 1;
	return true;
}

static struct rn *parse_group(struct rparser *p, bool *flags_only)
{
	size_t start = p->i; /* at '(' */
	*flags_only = false;
	p->i++;
	int cap = 0;
	const char *name = NULL;
	size_t namelen = 0;
	int save_i = p->flags_i, save_s = p->flags_s, save_U = p->flags_U;
	if (p->i < p->n && p->pat[p->i] == '?') {
		p->i++;
		if (p->i < p->n && (p->pat[p->i] == 'P' || p->pat[p->i] == '<')) {
			if (p->pat[p->i] == 'P')
				p->i++;
			if (p->i >= p->n || p->pat[p->i] != '<') {
				rfail(p, "invalid or unsupported Perl syntax", p->pat + start, p->i - start);
				return NULL;
			}
			p->i++;
			name = p->pat + p->i;
			while (p->i < p->n && p->pat[p->i] != '>')
				p->i++;
			namelen = (size_t)(p->pat + p->i - name);
			if (p->i >= p->n || namelen == 0) {
				rfail(p, "invalid named capture", p->pat + start, (p->i < p->n ? p->i + 1 : p->n) - start);
				return NULL;
			}
			for (size_t k = 0; k < namelen; k++) {
				char c = name[k];
				if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) {
					rfail(p, "invalid named capture", p->pat + start, p->i + 1 - start);
					return NULL;
				}
			}
			p->i++;
			cap = ++p->ncap;
		} else {
			/* (?flags) or (?flags:re); flags i, s, U, optionally after '-' to clear */
			bool neg = false, sawflag = false, anyflag = false;
			for (;;) {
				if (p->i >= p->n) {
					rfail(p, "missing closing )", p->pat, p->n);
					return NULL;
				}
				char c = p->pat[p->i++];
				if (c == 'i' || c == 's' || c == 'U') {
					int v = neg ? 0 : 1;
					if (c == 'i')
						p->flags_i = v;
					else if (c == 's')
						p->flags_s = v;
					else
						p->flags_U = v;
					sawflag = anyflag = true;
					continue;
				}
				if (c == 'm') {
					rfail(p, "multi-line mode (?m) is not supported", p->pat + start, p->i - start);
					return NULL;
				}
				if (c == '-' && !neg) {
					neg = true;
					sawflag = false;
					continue;
				}
				if ((c == ':' || c == ')') && !(neg && !sawflag) && (c == ':' || anyflag)) {
					if (c == ')') {
						/* Flags for the rest of the enclosing group. */
						*flags_only = true;
						return NULL;
					}
					break;
				}
				rfail(p, "invalid or unsupported Perl syntax", p->pat + start, p->i - start);
				return NULL;
			}
		}
	} else {
		cap = ++p->ncap;
	}
	if (cap && name) {
		if ((size_t)cap >= p->namescap) {
			size_t nc = p->namescap ? p->namescap * 2 : 8;
			while (nc <= (size_t)cap)
				nc *= 2;
			char **nn = ralloc(p, nc * sizeof(*nn));
			if (!nn)
				return NULL;
			if (p->namescap)
				memcpy(nn, p->names, p->namescap * sizeof(*nn));
			p->names = nn;
			p->namescap = nc;
		}
		p->names[cap] = atel__arena_strndup(&p->arena, name, namelen);
	}
	if (++p->depth > RE_MAX_DEPTH) {
		rfail_msg(p, "expression nests too deeply");
		return NULL;
	}
	struct rn *inner = parse_alt(p);
	p->depth--;
	if (!inner)
		return NULL;
	if (p->i >= p->n || p->pat[p->i] != ')') {
		rfail(p, "missing closing )", p->pat, p->n);
		return NULL;
	}
	p->i++;
	p->flags_i = save_i, p->flags_s = save_s, p->flags_U = save_U;
	struct rn *g = node(p, RK_GROUP);
	if (!g)
		return NULL;
	g->cap = cap;
	g->kids = ralloc(p, sizeof(*g->kids));
	if (!g->kids)
		return NULL;
	g->kids[0] = inner;
	g->nkids = 1;
	return g;
}

static bool push_kid(struct rparser *p, struct rn *parent, struct rn *kid, size_t *cap)
{
	if (parent->nkids == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		struct rn **nk = ralloc(p, nc * sizeof(*nk));
		if (!nk)
			return false;
		if (parent->nkids)
			memcpy(nk, parent->kids, parent->nkids * sizeof(*nk));
		parent->kids = nk;
		*cap = nc;
	}
	parent->kids[parent->nkids++] = kid;
	return true;
}

static struct rn *parse_concat(struct rparser *p)
{
	struct rn *cat = node(p, RK_CAT);
	size_t cap = 0;
	if (!cat)
		return NULL;
	while (p->i < p->n && !p->failed) {
		char c = p->pat[p->i];
		if (c == '|' || c == ')')
			break;
		struct rn *atom = NULL;
		size_t atomstart = p->i;
		int rmin, rmax;
		size_t rend;
		switch (c) {
		case '(': {
			bool flags_only;
			atom = parse_group(p, &flags_only);
			if (flags_only)
				continue;
			break;
		}
		case '[':
			atom = parse_class(p);
			break;
		case '.':
			p->i++;
			atom = node(p, RK_ANY);
			if (atom)
				atom->nl = p->flags_s;
			break;
		case '^':
			p->i++;
			atom = node(p, RK_BOL);
			break;
		case '$':
			p->i++;
			atom = node(p, RK_EOL);
			break;
		case '*':
		case '+':
		case '?':
			rfail(p, "missing argument to repetition operator", p->pat + p->i, 1);
			return NULL;
		case '\\': {
			p->i++;
			if (p->i < p->n && p->pat[p->i] == 'Q') {
				/* \Q...\E: literal text */
				p->i++;
				const char *e = NULL;
				for (size_t j = p->i; j + 1 < p->n; j++)
					if (p->pat[j] == '\\' && p->pat[j + 1] == 'E') {
						e = p->pat + j;
						break;
					}
				size_t stop = e ? (size_t)(e - p->pat) : p->n;
				while (p->i < stop && !p->failed) {
					int32_t ch = rnext(p);
					struct rn *l = node(p, RK_LIT);
					if (!l || ch < 0)
						return NULL;
					l->ch = ch;
					l->fold = p->flags_i;
					if (!push_kid(p, cat, l, &cap))
						return NULL;
				}
				p->i = e ? stop + 2 : p->n;
				continue;
			}
			struct rset s = { 0 };
			enum rk as = RK_EMPTY;
			int32_t ch = parse_escape(p, &s, &as);
			if (ch == -2) {
				atom = node(p, RK_SET);
				if (atom) {
					if (p->flags_i)
						set_fold(p, &s);
					set_norm(&s);
					atom->set = s;
				}
			} else if (ch == -3) {
				atom = node(p, as);
			} else if (ch >= 0) {
				atom = node(p, RK_LIT);
				if (atom) {
					atom->ch = ch;
					atom->fold = p->flags_i;
				}
			}
			break;
		}
		case '{':
			if (repeat_at(p, p->i, &rmin, &rmax, &rend)) {
				rfail(p, "missing argument to repetition operator", p->pat + p->i, rend - p->i);
				return NULL;
			}
			/* a '{' that starts no repeat is a literal */
			__attribute__((fallthrough));
		default: {
			int32_t ch = rnext(p);
			if (ch < 0)
				return NULL;
			atom = node(p, RK_LIT);
			if (atom) {
				atom->ch = ch;
				atom->fold = p->flags_i;
			}
			break;
		}
		}
		if (!atom || p->failed)
			return NULL;
		/* Quantifiers: at most one (Go refuses a** and a*{2}). */
		bool quantified = false;
		while (p->i < p->n) {
			char q = p->pat[p->i];
			int mn, mx;
			size_t qend;
			if (q == '*' || q == '+' || q == '?') {
				mn = q == '+' ? 1 : 0;
				mx = q == '?' ? 1 : -1;
				qend = p->i + 1;
			} else if (repeat_at(p, p->i, &mn, &mx, &qend)) {
				if (mn > RE_MAX_REPEAT || mx > RE_MAX_REPEAT || (mx >= 0 && mx < mn)) {
					rfail(p, "invalid repeat count", p->pat + p->i, qend - p->i);
					return NULL;
				}
			} else {
				break;
			}
			if (quantified) {
				rfail(p, "invalid nested repetition operator", p->pat + atomstart, qend - atomstart);
				return NULL;
			}
			if (atom->k == RK_EMPTY) {
				rfail(p, "missing argument to repetition operator", p->pat + p->i, qend - p->i);
				return NULL;
			}
			p->i = qend;
			if (p->i < p->n && p->pat[p->i] == '?')
				p->i++; /* lazy: same set of matching strings */
			struct rn *r = node(p, RK_REP);
			if (!r)
				return NULL;
			r->min = mn;
			r->max = mx;
			r->kids = ralloc(p, sizeof(*r->kids));
			if (!r->kids)
				return NULL;
			r->kids[0] = atom;
			r->nkids = 1;
			atom = r;
			quantified = true;
		}
		if (!push_kid(p, cat, atom, &cap))
			return NULL;
	}
	return p->failed ? NULL : cat;
}

static struct rn *parse_alt(struct rparser *p)
{
	struct rn *first = parse_concat(p);
	if (!first || p->i >= p->n || p->pat[p->i] != '|')
		return first;
	struct rn *alt = node(p, RK_ALT);
	size_t cap = 0;
	if (!alt || !push_kid(p, alt, first, &cap))
		return NULL;
	while (p->i < p->n && p->pat[p->i] == '|') {
		p->i++;
		struct rn *b = parse_concat(p);
		if (!b || !push_kid(p, alt, b, &cap))
			return NULL;
	}
	return alt;
}

/* ---- size bound ---------------------------------------------------------------------------- */

static double cost(const struct rn *n)
{
	double c = 0;
	switch (n->k) {
	case RK_CAT:
	case RK_ALT:
	case RK_GROUP:
		for (size_t i = 0; i < n->nkids; i++)
			c += cost(n->kids[i]);
		return c + 1;
	case RK_REP: {
		double k = cost(n->kids[0]);
		double times = n->max < 0 ? (n->min > 1 ? n->min : 1) + 1 : n->max > 0 ? n->max : 1;
		return k * times + 1;
	}
	case RK_ANY:
	case RK_SET:
		return 4;
	default:
		return 1;
	}
}

/* ---- emission ----------------------------------------------------------------------------- */

struct emitter {
	char *buf;
	size_t len, cap;
	int groups;           /* POSIX subexpressions emitted so far */
	int *map;             /* RE2 capture -> POSIX index */
	bool oom;
};

static void put(struct emitter *e, const char *s, size_t n)
{
	if (e->oom)
		return;
	if (e->len + n + 1 > e->cap) {
		size_t nc = e->cap ? e->cap * 2 : 64;
		while (nc < e->len + n + 1)
			nc *= 2;
		char *nb = realloc(e->buf, nc);
		if (!nb) {
			e->oom = true;
			return;
		}
		e->buf = nb;
		e->cap = nc;
	}
	memcpy(e->buf + e->len, s, n);
	e->len += n;
	e->buf[e->len] = 0;
}

static void puts_(struct emitter *e, const char *s)
{
	put(e, s, strlen(s));
}

static void put_cp(struct emitter *e, int32_t r)
{
	char u[4];
	size_t n;
	if (r < 0x80) {
		u[0] = (char)r;
		n = 1;
	} else if (r < 0x800) {
		u[0] = (char)(0xc0 | (r >> 6)), u[1] = (char)(0x80 | (r & 0x3f));
		n = 2;
	} else if (r < 0x10000) {
		u[0] = (char)(0xe0 | (r >> 12)), u[1] = (char)(0x80 | ((r >> 6) & 0x3f)), u[2] = (char)(0x80 | (r & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (r >> 18)), u[1] = (char)(0x80 | ((r >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((r >> 6) & 0x3f)), u[3] = (char)(0x80 | (r & 0x3f));
		n = 4;
	}
	put(e, u, n);
}

static void open_group(struct emitter *e)
{
	puts_(e, "(");
	e->groups++;
}

/* Any UTF-8 character outside ASCII, as bytes. */
#define NONASCII_CHAR "[\xc0-\xff][\x80-\xbf]*"

/*
 * Bracket expression for an ASCII byte set (1..127), plus all bytes
 * 0x80-0xff when high is set, with the characters POSIX treats specially
 * where they are literal: "]" first, "^" not first, "[" late (never before
 * ".", ":" or "="), "-" last.
 */
static void put_bracket(struct emitter *e, const bool in[128], bool high)
{
	int count = 0, last = 0;
	for (int c = 1; c < 128; c++)
		if (in[c])
			count++, last = c;
	if (count == 0 && !high) {
		/* A class without characters matches nothing; NUL never occurs. */
		puts_(e, "[^\x01-\xff]");
		return;
	}
	if (count == 1 && last == '^' && !high) {
		puts_(e, "\\^");
		return;
	}
	puts_(e, "[");
	if (in[']'])
		puts_(e, "]");
	if (high)
		puts_(e, "\x80-\xff");
	for (int c = 1; c < 128;) {
		if (!in[c] || c == ']' || c == '^' || c == '-' || c == '[') {
			c++;
			continue;
		}
		int d = c;
		while (d + 1 < 128 && in[d + 1] && d + 1 != ']' && d + 1 != '^' && d + 1 != '-' && d + 1 != '[')
			d++;
		char ch = (char)c;
		put(e, &ch, 1);
		if (d > c) {
			if (d > c + 1)
				puts_(e, "-");
			ch = (char)d;
			put(e, &ch, 1);
		}
		c = d + 1;
	}
	if (in['['])
		puts_(e, "[");
	if (in['^'])
		puts_(e, "^"); /* something precedes it: count > 1 or high */
	if (in['-'])
		puts_(e, "-");
	puts_(e, "]");
}

/*
 * Emit a set as one character. repeat_bytes: the caller repeats it without
 * bound (*, +), where a run of characters equals a run of their bytes, so
 * an ASCII bracket plus 0x80-0xff suffices.
 */
static int emit_set(struct emitter *e, const struct rset *s, bool repeat_bytes, char *err, size_t errlen)
{
	bool ascii[128] = { false };
	bool nonascii_all = false, any_ascii = false;
	int32_t singles[64];
	size_t nsingles = 0;
	for (size_t i = 0; i < s->n; i++) {
		int32_t lo = s->r[i][0], hi = s->r[i][1];
		for (int32_t c = lo < 1 ? 1 : lo; c <= hi && c < 128; c++)
			ascii[c] = any_ascii = true;
		if (hi < 128)
			continue;
		int32_t nlo = lo < 128 ? 128 : lo;
		if (nlo == 128 && hi == 0x10ffff) {
			nonascii_all = true;
		} else if (nsingles + (size_t)(hi - nlo) + 1 <= 64) {
			for (int32_t c = nlo; c <= hi; c++)
				singles[nsingles++] = c;
		} else {
			snprintf(err, errlen, "error parsing regexp: non-ASCII ranges in character classes are not supported");
			return -EINVAL;
		}
	}
	if (nonascii_all && nsingles == 0 && repeat_bytes) {
		put_bracket(e, ascii, true);
		return 0;
	}
	size_t alts = (any_ascii ? 1 : 0) + (nonascii_all ? 1 : 0) + nsingles;
	if (alts <= 1 && !nonascii_all && nsingles == 0) {
		put_bracket(e, ascii, false); /* also the empty set */
		return 0;
	}
	open_group(e);
	bool first = true;
	if (any_ascii) {
		put_bracket(e, ascii, false);
		first = false;
	}
	if (nonascii_all) {
		if (!first)
			puts_(e, "|");
		puts_(e, NONASCII_CHAR);
		first = false;
	}
	for (size_t i = 0; i < nsingles; i++) {
		if (!first)
			puts_(e, "|");
		put_cp(e, singles[i]);
		first = false;
	}
	puts_(e, ")");
	return 0;
}

static int emit(struct emitter *e, const struct rn *n, char *err, size_t errlen);

/* Whether n emits as a single POSIX atom (so a quantifier can follow it directly). */
static bool simple_atom(const struct rn *n)
{
	if (n->k == RK_LIT)
		return n->ch < 0x80;
	if (n->k == RK_GROUP)
		return true;
	return n->k == RK_SET || n->k == RK_ANY;
}

static int emit_lit(struct emitter *e, int32_t ch, bool fold)
{
	if (fold && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) {
		char b[5] = { '[', (char)(ch | 0x20), (char)(ch & ~0x20), ']', 0 };
		puts_(e, b);
		return 0;
	}
	switch (ch) {
	case '^':
		puts_(e, "\\^");
		return 0;
	case '\\':
		puts_(e, "[\\]");
		return 0;
	case ']':
		puts_(e, "[]]");
		return 0;
	case '[':
		puts_(e, "[[]");
		return 0;
	case '.': case '(': case ')': case '*': case '+': case '?': case '{': case '}': case '|': case '$': {
		char b[4] = { '[', (char)ch, ']', 0 };
		puts_(e, b);
		return 0;
	}
	default:
		put_cp(e, ch);
		return 0;
	}
}

static int emit(struct emitter *e, const struct rn *n, char *err, size_t errlen)
{
	int rc = 0;
	switch (n->k) {
	case RK_EMPTY:
		break;
	case RK_LIT:
		if (n->ch == 0) {
			snprintf(err, errlen, "error parsing regexp: NUL characters are not supported");
			return -EINVAL;
		}
		return emit_lit(e, n->ch, n->fold);
	case RK_SET:
		return emit_set(e, &n->set, false, err, errlen);
	case RK_ANY:
		if (n->nl)
			puts_(e, "([\x01-\x7f]|" NONASCII_CHAR ")");
		else
			puts_(e, "([\x01-\x09\x0b-\x7f]|" NONASCII_CHAR ")");
		e->groups++;
		break;
	case RK_BOL:
		puts_(e, "^");
		break;
	case RK_EOL:
		puts_(e, "$");
		break;
	case RK_WB:
		puts_(e, "\\b");
		break;
	case RK_NWB:
		puts_(e, "\\B");
		break;
	case RK_CAT:
		for (size_t i = 0; i < n->nkids && !rc; i++)
			rc = emit(e, n->kids[i], err, errlen);
		break;
	case RK_ALT:
		/* Alternation binds loosest in ERE, like RE2: no parentheses needed
		 * inside a group or at the top, which the caller provides. */
		for (size_t i = 0; i < n->nkids && !rc; i++) {
			if (i)
				puts_(e, "|");
			if (n->kids[i]->k == RK_CAT && n->kids[i]->nkids == 0)
				puts_(e, "()"), e->groups++;
			else
				rc = emit(e, n->kids[i], err, errlen);
		}
		break;
	case RK_GROUP:
		open_group(e);
		if (n->cap)
			e->map[n->cap] = e->groups;
		rc = emit(e, n->kids[0], err, errlen);
		puts_(e, ")");
		break;
	case RK_REP: {
		const struct rn *k = n->kids[0];
		bool unbounded01 = n->max < 0 && n->min <= 1;
		if (unbounded01 && k->k == RK_ANY) {
			/* Any run of characters is any run of bytes (valid UTF-8). */
			puts_(e, k->nl ? "." : "[^\n]");
		} else if (unbounded01 && k->k == RK_SET) {
			rc = emit_set(e, &k->set, true, err, errlen);
		} else if (simple_atom(k)) {
			rc = emit(e, k, err, errlen);
		} else {
			open_group(e);
			rc = emit(e, k, err, errlen);
			puts_(e, ")");
		}
		if (rc)
			return rc;
		char q[32];
		if (n->min == 0 && n->max < 0)
			snprintf(q, sizeof(q), "*");
		else if (n->min == 1 && n->max < 0)
			snprintf(q, sizeof(q), "+");
		else if (n->min == 0 && n->max == 1)
			snprintf(q, sizeof(q), "?");
		else if (n->max < 0)
			snprintf(q, sizeof(q), "{%d,}", n->min);
		else if (n->max == n->min)
			snprintf(q, sizeof(q), "{%d}", n->min);
		else
			snprintf(q, sizeof(q), "{%d,%d}", n->min, n->max);
		puts_(e, q);
		break;
	}
	}
	return e->oom ? -ENOMEM : rc;
}

/* ---- compile / match -------------------------------------------------------------------------- */

static int translate(const char *pattern, char **posix, int **map, char ***names, size_t *nsub, int *ngroups,
		     char *err, size_t errlen)
{
	struct rparser p = { .pat = pattern, .n = strlen(pattern), .flags_s = 1, .err = err, .errlen = errlen };
	struct rn *root = parse_alt(&p);
	if (!p.failed && p.i < p.n) {
		/* parse_alt stops only at an unmatched ')' */
		rfail(&p, "unexpected )", pattern, p.n);
	}
	int rc = -EINVAL;
	if (p.failed || !root)
		goto out;
	if (cost(root) > RE_MAX_COST) {
		snprintf(err, errlen, "error parsing regexp: expression too large");
		goto out;
	}
	struct emitter e = { 0 };
	e.map = calloc((size_t)p.ncap + 1, sizeof(int));
	if (!e.map) {
		rc = -ENOMEM;
		goto out;
	}
	puts_(&e, "^(");
	e.groups = 1;
	rc = emit(&e, root, err, errlen);
	puts_(&e, ")$");
	if (!rc && e.oom)
		rc = -ENOMEM;
	if (rc) {
		free(e.buf);
		free(e.map);
		goto out;
	}
	*posix = e.buf;
	if (map)
		*map = e.map;
	else
		free(e.map);
	if (names) {
		*names = calloc((size_t)p.ncap + 1, sizeof(char *));
		if (!*names) {
			free(e.buf);
			if (map)
				free(*map);
			rc = -ENOMEM;
			goto out;
		}
		for (int i = 1; i <= p.ncap; i++)
			if ((size_t)i < p.namescap && p.names[i])
				(*names)[i] = strdup(p.names[i]);
	}
	if (nsub)
		*nsub = (size_t)p.ncap;
	if (ngroups)
		*ngroups = e.groups;
	rc = 0;
out:
	atel__arena_free(&p.arena);
	return rc;
}

int atel__re_translate(const char *pattern, char **posix, char *err, size_t errlen)
{
	return translate(pattern, posix, NULL, NULL, NULL, NULL, err, errlen);
}

/* The C locale, so regcomp/regexec work on bytes whatever the process locale. */
static locale_t c_locale(void)
{
	static _Atomic(locale_t) cached = (locale_t)0;
	locale_t l = atomic_load(&cached);
	if (l)
		return l;
	l = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!l)
		return (locale_t)0;
	locale_t expected = (locale_t)0;
	if (!atomic_compare_exchange_strong(&cached, &expected, l)) {
		freelocale(l);
		return expected;
	}
	return l;
}

int atel__re_compile(struct atel__re *re, const char *pattern, char *err, size_t errlen)
{
	memset(re, 0, sizeof(*re));
	char *posix = NULL;
	int ngroups = 0;
	int rc = translate(pattern, &posix, &re->group, &re->names, &re->nsub, &ngroups, err, errlen);
	if (rc)
		return rc;
	locale_t loc = c_locale();
	locale_t old = loc ? uselocale(loc) : (locale_t)0;
	int r = regcomp(&re->rx, posix, REG_EXTENDED);
	if (loc)
		uselocale(old);
	free(posix);
	if (r != 0) {
		char msg[128];
		regerror(r, &re->rx, msg, sizeof(msg));
		snprintf(err, errlen, "error parsing regexp: %s", msg);
		regfree(&re->rx);
		atel__re_free(re);
		return r == REG_ESPACE ? -ENOMEM : -EINVAL;
	}
	re->compiled = true;
	re->nposix = (size_t)ngroups;
	return 0;
}

bool atel__re_match(const struct atel__re *re, const char *s)
{
	locale_t loc = c_locale();
	locale_t old = loc ? uselocale(loc) : (locale_t)0;
	int r = regexec(&re->rx, s ? s : "", 0, NULL, 0);
	if (loc)
		uselocale(old);
	return r == 0;
}

static bool name_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

int atel__re_replace(const struct atel__re *re, const char *s, const char *tmpl, char **out)
{
	size_t nm = re->nposix + 1;
	regmatch_t stackm[16], *m = nm <= 16 ? stackm : malloc(nm * sizeof(*m));
	if (!m)
		return -ENOMEM;
	locale_t loc = c_locale();
	locale_t old = loc ? uselocale(loc) : (locale_t)0;
	int r = regexec(&re->rx, s, nm, m, 0);
	if (loc)
		uselocale(old);
	if (r != 0) {
		if (m != stackm)
			free(m);
		return 0;
	}
	/* Go's Regexp.Expand. */
	struct atel__sbuf b = { NULL, 0, 0 };
	size_t cap = strlen(tmpl) + strlen(s) + 16;
	char *buf = NULL;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			cap = b.pos + 1;
			buf = malloc(cap);
			if (!buf) {
				if (m != stackm)
					free(m);
				return -ENOMEM;
			}
			buf[0] = 0;
		}
		b = (struct atel__sbuf){ buf, pass ? cap : 0, 0 };
		const char *t = tmpl;
		while (*t) {
			const char *d = strchr(t, '$');
			if (!d) {
				atel__sbuf_puts(&b, t);
				break;
			}
			atel__sbuf_putn(&b, t, (size_t)(d - t));
			t = d + 1;
			if (*t == '$') {
				atel__sbuf_puts(&b, "$");
				t++;
				continue;
			}
			bool brace = *t == '{';
			const char *nm0 = brace ? t + 1 : t;
			const char *q = nm0;
			while (*q && name_char((unsigned char)*q))
				q++;
			if (q == nm0 || (brace && *q != '}')) {
				atel__sbuf_puts(&b, "$"); /* malformed: a literal $ */
				continue;
			}
			size_t nl = (size_t)(q - nm0);
			t = brace ? q + 1 : q;
			long num = 0;
			for (size_t k = 0; k < nl; k++) {
				if (nm0[k] < '0' || nm0[k] > '9' || num >= 100000000) {
					num = -1;
					break;
				}
				num = num * 10 + (nm0[k] - '0');
			}
			if (nm0[0] == '0' && nl > 1)
				num = -1;
			int grp = -1;
			if (num >= 0) {
				if (num == 0)
					grp = 0;
				else if ((size_t)num <= re->nsub)
					grp = re->group[num];
			} else {
				for (size_t k = 1; k <= re->nsub; k++)
					if (re->names && re->names[k] && strlen(re->names[k]) == nl &&
					    !memcmp(re->names[k], nm0, nl)) {
						grp = re->group[k];
						break;
					}
			}
			if (grp == 0) {
				/* $0: the whole match, i.e. POSIX subexpression 1 inside "^(...)$" */
				grp = 1;
			}
			if (grp > 0 && (size_t)grp < nm && m[grp].rm_so >= 0)
				atel__sbuf_putn(&b, s + m[grp].rm_so, (size_t)(m[grp].rm_eo - m[grp].rm_so));
		}
	}
	if (m != stackm)
		free(m);
	*out = buf;
	return 1;
}

void atel__re_free(struct atel__re *re)
{
	if (re->compiled)
		regfree(&re->rx);
	if (re->names) {
		for (size_t i = 0; i <= re->nsub; i++)
			free(re->names[i]);
		free(re->names);
	}
	free(re->group);
	memset(re, 0, sizeof(*re));
}
