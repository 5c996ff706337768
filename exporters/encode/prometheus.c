/* SPDX-License-Identifier: MIT */
/*
 * prometheus.c - text exposition format 0.0.4 (see prometheus.h for the
 * rules). Hand-written: it is a few hundred lines of string building, and no
 * Debian-packaged C library produces this format from our own aggregates.
 * Hot loop costs are kept down by formatting each histogram bound once per
 * distinct bucket set and each label set once per series.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prometheus.h"
#include "ring.h"

void atel__prom_escape(struct atel_buf *out, const char *str, bool label_value)
{
	const unsigned char *s = (const unsigned char *)str, *run = s;

	for (;;) {
		unsigned char c = *s;
		size_t n;

		if (c >= 0x20 && c < 0x80 && c != '\\' && c != '"') {
			s++;
			continue;
		}
		if (c == '"' && !label_value) {
			s++;
			continue;
		}
		if (c && c < 0x80 && c != '\\' && c != '"' && c != '\n') {
			s++; /* other control characters are legal as-is */
			continue;
		}
		atel__buf_put(out, run, (size_t)(s - run));
		if (!c)
			return;
		if (c == '\\') {
			atel__buf_put(out, "\\\\", 2);
			s++;
		} else if (c == '"') {
			atel__buf_put(out, "\\\"", 2);
			s++;
		} else if (c == '\n') {
			atel__buf_put(out, "\\n", 2);
			s++;
		} else if ((n = atel__utf8_len(s, SIZE_MAX)) != 0) {
			atel__buf_put(out, s, n);
			s += n;
		} else {
			atel__buf_put(out, "\xef\xbf\xbd", 3);
			s++;
		}
		run = s;
	}
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: no ':' and no
 * leading "__" (reserved for Prometheus itself). */
static void put_name(struct atel_buf *b, const char *s, bool label)
{
	const char *p = s;

	/* fast path: an already valid name is copied in one piece */
	if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p == '_' && p[1] != '_') || (*p == ':' && !label)) {
		for (p++; (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
			  (*p == ':' && !label);
		     p++)
			;
		if (!*p) {
			atel__buf_put(b, s, (size_t)(p - s));
			return;
		}
	}
	if (!*s || (*s >= '0' && *s <= '9') || (label && s[0] == '_' && s[1] == '_'))
		atel__buf_putc(b, label ? 'x' : '_');
	for (; *s; s++) {
		char c = *s;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '_' || (c == ':' && !label);
		atel__buf_putc(b, ok ? c : '_');
	}
}

void atel__prom_name(struct atel_buf *b, const char *s, bool label)
{
	put_name(b, s, label);
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !memcmp(s + n - m, suf, m);
}

/* ---- the set of exposed family names (duplicate guard) ---------------------- */

struct nameset {
	uint64_t *h;
	char **names;
	uint32_t cap;
};

static uint64_t hash_str(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

/* @return 1 if added, 0 if present, -ENOMEM. name is copied. */
static int nameset_add(struct nameset *ns, const char *name, size_t n)
{
	uint64_t h = hash_str(name, n);
	uint32_t i;

	for (i = (uint32_t)h & (ns->cap - 1); ns->h[i]; i = (i + 1) & (ns->cap - 1))
		if (ns->h[i] == h && strlen(ns->names[i]) == n && !memcmp(ns->names[i], name, n))
			return 0;
	if (!(ns->names[i] = strndup(name, n)))
		return -ENOMEM;
	ns->h[i] = h;
	return 1;
}

static void nameset_free(struct nameset *ns)
{
	for (uint32_t i = 0; i < ns->cap; i++)
		free(ns->names[i]);
	free(ns->h);
	free(ns->names);
}

/* ---- families ---------------------------------------------------------------- */

/* Writes "# HELP n h\n# TYPE n t\n" for the exposed sample name (a
 * counter's ends in _total, which OpenMetrics' family name leaves out). */
static void put_header(struct atel_buf *b, const char *name, size_t nlen, const char *help, const char *type,
		       enum atel_prom_format fmt)
{
	bool om = fmt == ATEL_PROM_OPENMETRICS;

	if (om && !strcmp(type, "counter") && nlen > 6 && !memcmp(name + nlen - 6, "_total", 6))
		nlen -= 6;
	if (om && !strcmp(type, "untyped"))
		type = "unknown";
	atel__buf_put(b, "# HELP ", 7);
	atel__buf_put(b, name, nlen);
	atel__buf_putc(b, ' ');
	atel__prom_escape(b, help, om); /* OpenMetrics escapes '"' in HELP as well */
	atel__buf_put(b, "\n# TYPE ", 8);
	atel__buf_put(b, name, nlen);
	atel__buf_putc(b, ' ');
	atel__buf_puts(b, type);
	atel__buf_putc(b, '\n');
}

/* OpenMetrics' _created sample: `name_created{labels} seconds`. */
static void put_created(struct atel_buf *b, const char *name, size_t nlen, const struct atel_buf *lb, uint64_t ns)
{
	if (!ns)
		return;
	atel__buf_put(b, name, nlen);
	atel__buf_put(b, "_created", 8);
	if (lb->len) {
		atel__buf_putc(b, '{');
		atel__buf_put(b, lb->data, lb->len);
		atel__buf_putc(b, '}');
	}
	atel__buf_putc(b, ' ');
	atel__buf_double(b, (double)(ns / 1000000000u) + (double)(ns % 1000000000u) / 1e9);
	atel__buf_putc(b, '\n');
}

/* The label body `k="v",k="v"` of s into lb (no braces). */
static void put_labels(struct atel_buf *lb, const struct atel_agg_series *s, bool histogram)
{
	for (uint32_t i = 0; i < s->nlabels; i++) {
		if (i)
			atel__buf_putc(lb, ',');
		if (histogram && !strcmp(s->keys[i], "le"))
			atel__buf_put(lb, "exported_le", 11); /* ours is the bucket bound */
		else
			put_name(lb, s->keys[i], true);
		atel__buf_put(lb, "=\"", 2);
		atel__prom_escape(lb, s->values[i], true);
		atel__buf_putc(lb, '"');
	}
}

struct le_cache {
	const double *bounds;
	uint32_t n;
	struct atel_buf text;       /* the bounds' texts, NUL-separated */
	uint32_t *off;
	uint32_t off_cap;
	bool canonical;
};

/* OpenMetrics' canonical numbers: an integral bound is written `1.0`, not `1`. */
static void put_bound(struct atel_buf *b, double v, bool canonical)
{
	size_t start = b->len;
	bool integral = true;

	atel__buf_double(b, v);
	if (!canonical || b->oom)
		return;
	for (size_t i = start; i < b->len; i++)
		if (!(b->data[i] >= '0' && b->data[i] <= '9') && !(i == start && b->data[i] == '-'))
			integral = false;
	if (integral)
		atel__buf_put(b, ".0", 2);
}

static int le_prepare(struct le_cache *c, const double *bounds, uint32_t n, bool canonical)
{
	if (c->bounds == bounds && c->n == n && c->canonical == canonical)
		return 0;
	if (n + 1 > c->off_cap) {
		uint32_t *o = realloc(c->off, (n + 1) * sizeof(*o));
		if (!o)
			return -ENOMEM;
		c->off = o;
		c->off_cap = n + 1;
	}
	atel__buf_reset(&c->text);
	for (uint32_t i = 0; i < n; i++) {
		c->off[i] = (uint32_t)c->text.len;
		put_bound(&c->text, bounds[i], canonical);
		atel__buf_putc(&c->text, '\0');
	}
	c->off[n] = (uint32_t)c->text.len;
	if (c->text.oom)
		return -ENOMEM;
	c->bounds = bounds;
	c->n = n;
	c->canonical = canonical;
	return 0;
}

static void put_sample_name(struct atel_buf *b, const char *name, size_t nlen, const char *suffix)
{
	atel__buf_put(b, name, nlen);
	if (suffix)
		atel__buf_puts(b, suffix);
}

static void encode_family(struct atel_buf *b, const struct atel_agg_family *f, const char *name, size_t nlen,
			  struct atel_buf *lb, struct le_cache *lc, enum atel_prom_format fmt)
{
	bool hist = f->mtype == ATEL_MT_HISTOGRAM, om = fmt == ATEL_PROM_OPENMETRICS;
	/* OpenMetrics: _created beside a counter's _total names the family without it */
	size_t base = f->mtype == ATEL_MT_COUNTER && nlen > 6 ? nlen - 6 : nlen;

	put_header(b, name, nlen, f->help ? f->help : "",
		   f->mtype >= ATEL_MT_COUNTER && f->mtype <= ATEL_MT_HISTOGRAM ? atel__metric_type_name(f->mtype)
										  : "untyped",
		   fmt);
	for (uint32_t i = 0; i < f->nseries; i++) {
		const struct atel_agg_series *s = &f->series[i];

		atel__buf_reset(lb);
		put_labels(lb, s, hist);
		if (!hist) {
			atel__buf_put(b, name, nlen);
			if (lb->len) {
				atel__buf_putc(b, '{');
				atel__buf_put(b, lb->data, lb->len);
				atel__buf_putc(b, '}');
			}
			atel__buf_putc(b, ' ');
			atel__buf_double(b, s->value);
			atel__buf_putc(b, '\n');
			if (om && f->mtype == ATEL_MT_COUNTER)
				put_created(b, name, base, lb, s->start_ns);
			continue;
		}
		/* le as in the text format, not OpenMetrics' canonical `1.0`: Prometheus 2.x
		 * keeps label values verbatim, so a canonical le would make other series
		 * of the same buckets than the text scrape, the query API and remote write */
		if (le_prepare(lc, s->bounds, s->nbounds, false) < 0) {
			b->oom = true;
			return;
		}
		uint64_t cum = 0;
		for (uint32_t k = 0; k <= s->nbounds; k++) {
			cum += s->buckets ? s->buckets[k] : 0;
			put_sample_name(b, name, nlen, "_bucket{");
			if (lb->len) {
				atel__buf_put(b, lb->data, lb->len);
				atel__buf_putc(b, ',');
			}
			atel__buf_put(b, "le=\"", 4);
			if (k < s->nbounds)
				atel__buf_put(b, lc->text.data + lc->off[k], lc->off[k + 1] - lc->off[k] - 1);
			else
				atel__buf_put(b, "+Inf", 4);
			atel__buf_put(b, "\"} ", 3);
			atel__buf_u64(b, cum);
			atel__buf_putc(b, '\n');
		}
		for (int part = 0; part < 2; part++) {
			put_sample_name(b, name, nlen, part ? "_count" : "_sum");
			if (lb->len) {
				atel__buf_putc(b, '{');
				atel__buf_put(b, lb->data, lb->len);
				atel__buf_putc(b, '}');
			}
			atel__buf_putc(b, ' ');
			if (part)
				atel__buf_u64(b, cum); /* == +Inf bucket by construction */
			else
				atel__buf_double(b, s->sum);
			atel__buf_putc(b, '\n');
		}
		if (om)
			put_created(b, name, nlen, lb, s->start_ns);
	}
}

/* ---- families written by the caller (prometheus.h) --------------------------- */

struct atel_prom_doc {
	struct atel_buf *b;
	struct nameset *ns;
	enum atel_prom_format fmt;
};

bool atel__prom_family(struct atel_prom_doc *doc, const char *name, const char *type, const char *help)
{
	size_t n = strlen(name);

	if (nameset_add(doc->ns, name, n) <= 0)
		return false;
	put_header(doc->b, name, n, help, type, doc->fmt);
	return true;
}

void atel__prom_sample(struct atel_prom_doc *doc, const char *name, const char *key, const char *value, double v)
{
	struct atel_buf *b = doc->b;

	atel__buf_puts(b, name);
	if (key) {
		atel__buf_putc(b, '{');
		atel__buf_puts(b, key);
		atel__buf_put(b, "=\"", 2);
		atel__prom_escape(b, value, true);
		atel__buf_putc(b, '"');
		atel__buf_putc(b, '}');
	}
	atel__buf_putc(b, ' ');
	atel__buf_double(b, v);
	atel__buf_putc(b, '\n');
}

void atel__prom_one(struct atel_prom_doc *doc, const char *name, const char *type, const char *help, double v)
{
	if (atel__prom_family(doc, name, type, help))
		atel__prom_sample(doc, name, NULL, NULL, v);
}

/* ---- entry point -------------------------------------------------------------- */

int atel__prom_encode(struct atel_buf *out, const struct atel_agg_snapshot *snap,
		      void (*first)(void *arg, struct atel_prom_doc *doc, uint32_t nseries), void *arg,
		      uint32_t *skipped)
{
	return atel__prom_encode_format(out, snap, ATEL_PROM_TEXT, first, arg, skipped);
}

int atel__prom_encode_format(struct atel_buf *out, const struct atel_agg_snapshot *snap, enum atel_prom_format fmt,
			     void (*first)(void *arg, struct atel_prom_doc *doc, uint32_t nseries), void *arg,
			     uint32_t *skipped)
{
	struct atel_prom_doc doc;
	struct nameset ns = { 0 };
	struct atel_buf name = { 0 }, lb = { 0 };
	struct le_cache lc = { 0 };
	uint32_t nf = snap ? snap->nfamilies : 0, skip = 0, nseries = 0;
	int rc = 0;

	ns.cap = 64;
	while (ns.cap < 2 * (nf + 64))
		ns.cap *= 2;
	ns.h = calloc(ns.cap, sizeof(*ns.h));
	ns.names = calloc(ns.cap, sizeof(*ns.names));
	if (!ns.h || !ns.names) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < nf; i++)
		nseries += snap->families[i].nseries;
	if (first) {
		doc.b = out;
		doc.ns = &ns;
		doc.fmt = fmt;
		first(arg, &doc, nseries);
	}
	for (uint32_t i = 0; i < nf; i++) {
		const struct atel_agg_family *f = &snap->families[i];
		int added;

		atel__buf_reset(&name);
		put_name(&name, f->name, false);
		if (f->mtype == ATEL_MT_COUNTER && !ends_with(name.data, "_total"))
			atel__buf_put(&name, "_total", 6);
		if (name.oom) {
			rc = -ENOMEM;
			goto out;
		}
		added = nameset_add(&ns, name.data, name.len);
		if (added < 0) {
			rc = added;
			goto out;
		}
		if (!added) {
			skip++;
			continue;
		}
		encode_family(out, f, name.data, name.len, &lb, &lc, fmt);
	}
	if (fmt == ATEL_PROM_OPENMETRICS)
		atel__buf_put(out, "# EOF\n", 6);
	if (out->oom || lb.oom)
		rc = -ENOMEM;
out:
	if (skipped)
		*skipped = skip;
	nameset_free(&ns);
	atel__buf_free(&name);
	atel__buf_free(&lb);
	atel__buf_free(&lc.text);
	free(lc.off);
	return rc;
}
