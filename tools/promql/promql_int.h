/* SPDX-License-Identifier: MIT */
/*
 * promql_int.h - internals shared by the files of libatel_promql (and its
 * tests): arena, regular expressions, the function table, the parsed query.
 * Nothing here is part of the public interface (promql.h).
 */
#ifndef ATEL_PROMQL_INT_H
#define ATEL_PROMQL_INT_H

#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "promql.h"

/* ---- arena: bump allocation, freed all at once ----------------------------- */

struct atel__arena_chunk;
struct atel__arena {
	struct atel__arena_chunk *head;
	size_t total;                /* bytes obtained from malloc */
};

/* @return 16-byte aligned memory, or NULL when malloc fails. */
void *atel__arena_alloc(struct atel__arena *a, size_t n);
void *atel__arena_zalloc(struct atel__arena *a, size_t n);
char *atel__arena_strndup(struct atel__arena *a, const char *s, size_t n);
void atel__arena_free(struct atel__arena *a);

/* ---- strings ----------------------------------------------------------------- */

/*
 * Go's strconv.Unquote as Prometheus' strutil.Unquote: "..." and '...' with
 * Go escapes, `...` raw. A NUL byte in the result is refused (labels are C
 * strings here). @return the unquoted string in arena memory, or NULL with a
 * reason in *why.
 */
char *atel__promql_unquote(struct atel__arena *a, const char *s, size_t n, const char **why);

/* Go's %q of a string (for messages): writes a quoted, escaped form. */
size_t atel__promql_quote(const char *s, char *buf, size_t len);

/* Label name validity: legacy [a-zA-Z_][a-zA-Z0-9_]* and UTF-8 (non-empty, valid UTF-8). */
bool atel__promql_legacy_name(const char *s);
bool atel__promql_utf8_name(const char *s);

/* Prometheus' model.ParseDuration ("1h30m", "5m", "1d", "100ms"; "0" is 0).
 * @return 0 and *ms, or -EINVAL with a message in err. */
int atel__promql_parse_duration(const char *s, size_t n, int64_t *ms, char *err, size_t errlen);

/* model.Duration.String(): "1h30m", "0s", "1d", "100ms". */
size_t atel__promql_format_duration(int64_t ms, char *buf, size_t len);

/* Go's strconv.FormatFloat(v, 'g', -1, 64) (what fmt prints for %v). */
size_t atel__promql_format_float(double v, char *buf, size_t len);

/* xxHash64 with seed 0 (what Go's cespare/xxhash computes): Prometheus'
 * labels.Hash over name 0xff value 0xff ..., used by limit_ratio(). */
uint64_t atel__promql_xxhash64(const void *data, size_t len);

/* strconv.FormatFloat(v, 'f', -1, 64): count_values' label values. */
size_t atel__promql_format_float_f(double v, char *buf, size_t len);

/* ---- regular expressions (re.c) ----------------------------------------------- */

/*
 * An RE2-syntax regular expression, fully anchored as Prometheus compiles
 * them ("^(?s:" + re + ")$"), translated to a POSIX ERE and compiled with
 * regcomp in the C locale.
 */
struct atel__re {
	regex_t rx;
	bool compiled;
	size_t nsub;                 /* capturing groups of the RE2 pattern */
	int *group;                  /* RE2 group i (1..nsub) -> POSIX subexpression index */
	char **names;                /* group names (NULL if unnamed), [1..nsub] */
	size_t nposix;               /* POSIX subexpressions in the translation */
};

/* @return 0, -EINVAL (err says why, in Go's words where it has them) or -ENOMEM. */
int atel__re_compile(struct atel__re *re, const char *pattern, char *err, size_t errlen);
bool atel__re_match(const struct atel__re *re, const char *s);
/*
 * Full match with submatches, then expand a Go template ($1, ${1}, $name,
 * ${name}, $$) as regexp.ExpandString does. @return 1 and a malloc'd string
 * in *out when s matches, 0 when it does not, -ENOMEM.
 */
int atel__re_replace(const struct atel__re *re, const char *s, const char *tmpl, char **out);
void atel__re_free(struct atel__re *re);

/* The POSIX translation (for tests). @return 0 and a malloc'd string, or -EINVAL/-ENOMEM. */
int atel__re_translate(const char *pattern, char **posix, char *err, size_t errlen);

/* ---- functions (funcs.c) --------------------------------------------------------- */

struct atel__func {
	const char *name;
	enum atel_promql_vtype args[5];
	int nargs;
	int variadic;                /* 0: exact; -1: any number more; n > 0: up to n optional */
	enum atel_promql_vtype ret;
	int id;
};

const struct atel__func *atel__func_lookup(const char *name, size_t len);
const struct atel__func *atel__func_by_id(int id);

/* ---- the parsed query ----------------------------------------------------------- */

struct atel_promql_expr {
	struct atel__arena arena;
	struct atel_promql_node *root;
	char *text;                  /* the query, NUL-terminated copy */
	size_t len;
	struct atel__re **regexes;   /* compiled matchers, freed with the expression */
	size_t nregexes, capregexes;
};

/* Snprintf-style appending used by the printer and messages. */
struct atel__sbuf {
	char *buf;
	size_t len, pos;
};
void atel__sbuf_puts(struct atel__sbuf *b, const char *s);
void atel__sbuf_putn(struct atel__sbuf *b, const char *s, size_t n);
void atel__sbuf_printf(struct atel__sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
