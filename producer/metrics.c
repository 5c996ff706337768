/* SPDX-License-Identifier: MIT */
/*
 * Metrics: series creation (Prometheus name rules, type and label-set
 * clashes), the sample hot path, the pre-registered catalog and the
 * docs/reference.md helpers (atel_track_*).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "catalog.h"
#include "internal.h"

/* ------------------------------------------------------------------------ */
/* validation                                                               */

static bool metric_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool label_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 255 || (n >= 2 && s[0] == '_' && s[1] == '_'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool bounds_ok(const double *b, size_t n)
{
	if (!b || n == 0 || n > ATEL_BOUNDS_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
			return false;
	}
	return true;
}

/*
 * Fills l from a name and npairs (key, value) pairs: validates, sorts by key,
 * rejects duplicates. @return 0 or -EINVAL (message set).
 */
static int lookup_fill(struct atel__tls *t, struct atel__lookup *l, atel_metric_type type, const char *name,
		       const char *const *kv, size_t npairs)
{
	if (!name) {
		atel__invalid(t, "metric name is NULL");
		return -EINVAL;
	}
	l->name = name;
	l->name_len = (uint32_t)strnlen(name, 256);
	if (!metric_name_ok(name, l->name_len)) {
		atel__invalidf(t, "metric name '%.64s' is invalid: Prometheus names match [a-zA-Z_:][a-zA-Z0-9_:]*",
			       name);
		return -EINVAL;
	}
	if (npairs > ATEL_LABELS_MAX) {
		atel__invalidf(t, "metric '%s': %zu label pairs, at most %u", name, npairs, ATEL_LABELS_MAX);
		return -EINVAL;
	}
	l->n = 0;
	for (size_t i = 0; i < npairs; i++) {
		const char *k = kv[2 * i], *v = kv[2 * i + 1];
		uint32_t kl, vl, j;

		if (!k || !v) {
			atel__invalidf(t, "metric '%s': label pair %zu has a NULL %s", name, i, k ? "value" : "key");
			return -EINVAL;
		}
		kl = (uint32_t)strnlen(k, 256);
		if (!label_name_ok(k, kl)) {
			atel__invalidf(t, "metric '%s': label name '%.64s' is invalid ([a-zA-Z_][a-zA-Z0-9_]*, "
				       "not starting with __)", name, k);
			return -EINVAL;
		}
		if (type == ATEL_HISTOGRAM && strcmp(k, "le") == 0) {
			atel__invalidf(t, "histogram '%s': label 'le' is reserved", name);
			return -EINVAL;
		}
		vl = (uint32_t)strnlen(v, ATEL_STR_MAX + 1);
		if (vl == 0 || vl > ATEL_STR_MAX || !atel__utf8_valid((const unsigned char *)v, vl)) {
			atel__invalidf(t, "metric '%s': value of label '%s' must be 1..%u bytes of UTF-8", name, k,
				       ATEL_STR_MAX);
			return -EINVAL;
		}
		/* insertion sort by key */
		for (j = l->n; j > 0; j--) {
			int c = strcmp(l->k[j - 1], k);
			if (c == 0) {
				atel__invalidf(t, "metric '%s': label '%s' given twice", name, k);
				return -EINVAL;
			}
			if (c < 0)
				break;
			l->k[j] = l->k[j - 1], l->klen[j] = l->klen[j - 1];
			l->v[j] = l->v[j - 1], l->vlen[j] = l->vlen[j - 1];
		}
		l->k[j] = k, l->klen[j] = kl;
		l->v[j] = v, l->vlen[j] = vl;
		l->n++;
	}
	l->name_hash = atel__hash_bytes(name, l->name_len);
	for (uint32_t i = 0; i < l->n; i++) {
		l->khash[i] = atel__hash_bytes(l->k[i], l->klen[i]);
		l->vhash[i] = atel__hash_bytes(l->v[i], l->vlen[i]);
	}
	return 0;
}

static atel_series series_get(atel_metric_type type, const char *name, const char *const *kv, size_t npairs,
			      const double *bounds, size_t nbounds)
{
	struct atel__tls *t = atel__self();
	struct atel__lookup l;
	const struct atel__series *s;
	uint64_t h;

	atel__once();
	if (type < ATEL_COUNTER || type > ATEL_HISTOGRAM) {
		atel__invalid(t, "unknown metric type");
		return NULL;
	}
	if (bounds && !bounds_ok(bounds, nbounds)) {
		atel__invalidf(t, "histogram '%.64s': bounds must be 1..%u finite, strictly increasing values",
			       name ? name : "", ATEL_BOUNDS_MAX);
		return NULL;
	}
	if (lookup_fill(t, &l, type, name, kv, npairs))
		return NULL;
	h = atel__series_hash(&l);
	s = atel__series_find(&l, h);
	if (s && s->mtype == type && !bounds)
		return s;
	return atel__series_create(t, type, &l, h, bounds, (uint32_t)nbounds);
}

static atel_series series_va(atel_metric_type type, const char *name, const double *bounds, size_t nbounds,
			     va_list ap)
{
	const char *kv[2 * ATEL_LABELS_MAX + 2];
	size_t n = 0;
	const char *k;

	while ((k = va_arg(ap, const char *)) != NULL) {
		if (n >= 2 * ATEL_LABELS_MAX) {
			atel__invalidf(atel__self(), "metric '%.64s': more than %u label pairs", name ? name : "",
				       ATEL_LABELS_MAX);
			return NULL;
		}
		kv[n++] = k;
		kv[n++] = va_arg(ap, const char *);
		if (!kv[n - 1]) {
			atel__invalidf(atel__self(), "metric '%.64s': label '%.64s' has no value (odd argument count)",
				       name ? name : "", k);
			return NULL;
		}
	}
	return series_get(type, name, kv, n / 2, bounds, nbounds);
}

atel_series atel_counter(const char *name, ...)
{
	va_list ap;
	atel_series s;

	va_start(ap, name);
	s = series_va(ATEL_COUNTER, name, NULL, 0, ap);
	va_end(ap);
	return s;
}

atel_series atel_gauge(const char *name, ...)
{
	va_list ap;
	atel_series s;

	va_start(ap, name);
	s = series_va(ATEL_GAUGE, name, NULL, 0, ap);
	va_end(ap);
	return s;
}

atel_series atel_histogram(const char *name, ...)
{
	va_list ap;
	atel_series s;

	va_start(ap, name);
	s = series_va(ATEL_HISTOGRAM, name, NULL, 0, ap);
	va_end(ap);
	return s;
}

atel_series atel_histogram_bounds(const char *name, const double *bounds, size_t nbounds, ...)
{
	va_list ap;
	atel_series s;

	if (!bounds_ok(bounds, nbounds)) {
		atel__invalidf(atel__self(), "histogram '%.64s': bounds must be 1..%u finite, strictly increasing values",
			       name ? name : "", ATEL_BOUNDS_MAX);
		return NULL;
	}
	va_start(ap, nbounds);
	s = series_va(ATEL_HISTOGRAM, name, bounds, nbounds, ap);
	va_end(ap);
	return s;
}

atel_series atel_series_get(atel_metric_type type, const char *name, const char *const *kv, size_t npairs)
{
	if (npairs && !kv) {
		atel__invalid(atel__self(), "atel_series_get: kv is NULL");
		return NULL;
	}
	return series_get(type, name, kv, npairs, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* samples: the hot path                                                    */

static inline void put_sample(struct atel__tls *t, const struct atel__series *s, double v, unsigned flags,
			      uint64_t now)
{
	union atel_slot *d = atel__ring_slot(&t->w, 0);
	uint64_t bits;

	memcpy(&bits, &v, 8);
	d->words[0] = atel__hdr_word(ATEL_REC_SAMPLE, flags, 0, s->id);
	d->words[1] = now;
	d->words[2] = bits;
	d->words[3] = d->words[4] = d->words[5] = d->words[6] = d->words[7] = 0;
	atel__publish(t, 1, 0, 1);
}

/*
 * Everything but the plain case: no ring yet (claim, BEGIN), folded values
 * waiting, the series not yet defined in this ring, or a full ring. A value
 * that meets a full ring (for itself or its definition) is folded, not
 * dropped (fold.c); only a missing sidecar or ring drops it.
 */
__attribute__((noinline)) static void sample_slow(struct atel__tls *t, const struct atel__series *s, double v,
						 unsigned flags, uint64_t now)
{
	int r = atel__prepare(t, 1, now);

	if (r == ATEL__PREP_DROP)
		return;
	if (r == ATEL__PREP_FULL || !atel__def_series(t, s, now) || !atel__ring_reserve(&t->w, 1)) {
		atel__fold_add(t, s, v, flags, now);
		return;
	}
	put_sample(t, s, v, flags, now);
}

/* One SAMPLE for a valid series; the caller checked type and value. */
static inline void sample_at(struct atel__tls *t, const struct atel__series *s, double v, unsigned flags,
			     uint64_t now)
{
	if (ATEL__LIKELY(atel__ready(t) && atel__bit(t->def_series, s->id) && atel__ring_reserve(&t->w, 1))) {
		put_sample(t, s, v, flags, now);
		return;
	}
	sample_slow(t, s, v, flags, now);
}

static inline void sample(const struct atel__series *s, double v, unsigned flags)
{
	struct atel__tls *t = atel__self();

	if (!atel__enter(t))
		return;
	sample_at(t, s, v, flags, atel__now_ns());
	atel__leave(t);
}

void atel_add(atel_series s, double v)
{
	if (ATEL__UNLIKELY(!s)) {
		atel__invalid(atel__self(), "atel_add: NULL series");
		return;
	}
	if (ATEL__UNLIKELY(s->mtype == ATEL_MT_HISTOGRAM || !isfinite(v) ||
			   (s->mtype == ATEL_MT_COUNTER && v < 0))) {
		atel__invalid(atel__self(), s->mtype == ATEL_MT_HISTOGRAM ? "atel_add on a histogram (use atel_observe)"
				       : "atel_add: value must be finite (and >= 0 for a counter)");
		return;
	}
	sample(s, v, 0);
}

void atel_set(atel_series s, double v)
{
	if (ATEL__UNLIKELY(!s || s->mtype != ATEL_MT_GAUGE || isnan(v))) {
		atel__invalid(atel__self(), !s ? "atel_set: NULL series" : s->mtype != ATEL_MT_GAUGE
				       ? "atel_set on a series that is not a gauge" : "atel_set: value is NaN");
		return;
	}
	sample(s, v, ATEL_RECF_SET);
}

void atel_observe(atel_series s, double v)
{
	if (ATEL__UNLIKELY(!s || s->mtype != ATEL_MT_HISTOGRAM || isnan(v))) {
		atel__invalid(atel__self(), !s ? "atel_observe: NULL series" : s->mtype != ATEL_MT_HISTOGRAM
				       ? "atel_observe on a series that is not a histogram" : "atel_observe: value is NaN");
		return;
	}
	sample(s, v, 0);
}

/* ------------------------------------------------------------------------ */
/* catalog and helpers                                                      */

/*
 * Per catalog metric: its label keys sorted (the series key order), the
 * position of each sorted key in REFERENCE order, and precomputed hashes.
 */
struct cat_info {
	const char *keys[ATEL_CATALOG_LABELS_MAX];
	uint32_t klen[ATEL_CATALOG_LABELS_MAX];
	uint64_t khash[ATEL_CATALOG_LABELS_MAX];
	unsigned from[ATEL_CATALOG_LABELS_MAX]; /* sorted index -> REFERENCE index */
	unsigned to[ATEL_CATALOG_LABELS_MAX];   /* REFERENCE index -> sorted index */
	uint32_t name_len;
	uint64_t name_hash;
	/* interned copies: series_eq then matches name and keys by pointer */
	const char *name_s, *key_s[ATEL_CATALOG_LABELS_MAX];
};

static struct cat_info cat[ATEL_CATALOG_COUNT];

void atel__catalog_preload(void)
{
	for (unsigned m = 0; m < ATEL_CATALOG_COUNT; m++) {
		const struct atel_catalog_metric *c = &atel__catalog[m];
		struct cat_info *ci = &cat[m];
		unsigned n = c->nlabels;

		for (unsigned i = 0; i < n; i++) {
			unsigned j = i;
			while (j > 0 && strcmp(ci->keys[j - 1], c->labels[i]) > 0) {
				ci->keys[j] = ci->keys[j - 1];
				ci->from[j] = ci->from[j - 1];
				j--;
			}
			ci->keys[j] = c->labels[i];
			ci->from[j] = i;
		}
		for (unsigned i = 0; i < n; i++) {
			ci->to[ci->from[i]] = i;
			ci->klen[i] = (uint32_t)strlen(ci->keys[i]);
			ci->khash[i] = atel__hash_bytes(ci->keys[i], ci->klen[i]);
		}
		ci->name_len = (uint32_t)strlen(c->name);
		ci->name_hash = atel__hash_bytes(c->name, ci->name_len);
		(void)atel__metric_register(c->name, (atel_metric_type)c->mtype, ci->keys, n, c->bounds, c->nbounds);
		{
			const struct atel__str *e = atel__str_find(c->name, ci->name_len);
			ci->name_s = e ? e->s : c->name;
			for (unsigned i = 0; i < n; i++) {
				e = atel__str_find(ci->keys[i], ci->klen[i]);
				ci->key_s[i] = e ? e->s : ci->keys[i];
			}
		}
	}
}

static const char *or_unknown(const char *s)
{
	return s && *s ? s : "unknown";
}

/*
 * The series of catalog metric m with label values in REFERENCE order.
 * Lock-free hash probe when the series exists. @return it or NULL (counted).
 */
static const struct atel__series *cat_series(struct atel__tls *t, unsigned m, const char *const *values)
{
	const struct atel_catalog_metric *c = &atel__catalog[m];
	const struct cat_info *ci = &cat[m];
	struct atel__cat_cache *cc = NULL;
	struct atel__lookup l;
	const struct atel__series *s;
	uint64_t h;

	/*
	 * Agents call a helper with the same few strings over and over: if the
	 * pointers are those of the last call for this metric and the contents
	 * still equal that series' values, it is that series (the content check
	 * keeps a reused buffer from aliasing). Saves the hash probe.
	 */
	if (t->cat_cache) {
		uint64_t k = m;
		unsigned i;
		for (i = 0; i < c->nlabels; i++)
			k = k * 0x9e3779b97f4a7c15ull + (uint64_t)(uintptr_t)values[i];
		cc = &t->cat_cache[(k ^ (k >> 29)) * 0xbf58476d1ce4e5b9ull >> 58];
		if (cc->s && cc->m == m) {
			for (i = 0; i < c->nlabels; i++)
				if (values[i] != cc->v[i] || strcmp(values[i], cc->s->values[ci->to[i]]->s) != 0)
					break;
			if (i == c->nlabels)
				return cc->s;
		}
	}
	l.name = ci->name_s;
	l.name_len = ci->name_len;
	l.name_hash = ci->name_hash;
	l.n = c->nlabels;
	for (unsigned i = 0; i < l.n; i++) {
		const char *v = values[ci->from[i]];
		unsigned k;

		l.k[i] = ci->key_s[i];
		l.klen[i] = ci->klen[i];
		l.khash[i] = ci->khash[i];
		l.v[i] = v;
		/* a helper passes the same value to several metrics: hash it once per call */
		for (k = 0; k < t->nhmemo && t->hmemo[k].p != v; k++)
			;
		if (k < t->nhmemo) {
			l.vlen[i] = t->hmemo[k].len;
			l.vhash[i] = t->hmemo[k].h;
			continue;
		}
		l.vlen[i] = (uint32_t)strnlen(v, ATEL_STR_MAX + 1);
		l.vhash[i] = atel__hash_bytes(v, l.vlen[i]);
		if (t->nhmemo < sizeof(t->hmemo) / sizeof(t->hmemo[0])) {
			t->hmemo[t->nhmemo].p = v;
			t->hmemo[t->nhmemo].len = l.vlen[i];
			t->hmemo[t->nhmemo].h = l.vhash[i];
			t->nhmemo++;
		}
	}
	h = atel__series_hash(&l);
	s = atel__series_find(&l, h);
	if (ATEL__LIKELY(s != NULL))
		goto found;
	for (unsigned i = 0; i < l.n; i++) {
		if (l.vlen[i] > ATEL_STR_MAX || !atel__utf8_valid((const unsigned char *)l.v[i], l.vlen[i])) {
			atel__invalidf(t, "%s: value of label '%s' must be 1..%u bytes of UTF-8", c->name, l.k[i],
				       ATEL_STR_MAX);
			return NULL;
		}
	}
	s = atel__series_create(t, (atel_metric_type)c->mtype, &l, h, NULL, 0);
	if (!s)
		return NULL;
found:
	if (cc) {
		for (unsigned i = 0; i < c->nlabels; i++)
			cc->v[i] = values[i];
		cc->s = s;
		cc->m = m;
	}
	return s;
}

/* Helper records share one timestamp and one reentrancy guard. */
static void cat_record(struct atel__tls *t, unsigned m, const char *const *values, double v, unsigned flags,
		       uint64_t now)
{
	const struct atel__series *s = cat_series(t, m, values);

	if (s)
		sample_at(t, s, v, flags, now);
}

static bool helper_enter(struct atel__tls *t, const void *arg, const char *what, uint64_t *now)
{
	atel__once();
	if (!arg) {
		atel__invalid(t, what);
		return false;
	}
	if (!atel__enter(t))
		return false;
	t->nhmemo = 0;
	*now = atel__now_ns();
	return true;
}

void atel_track_agent_execution(const atel_agent_execution *e)
{
	struct atel__tls *t = atel__self();
	uint64_t now;

	if (!helper_enter(t, e, "atel_track_agent_execution: NULL argument", &now))
		return;
	{
		const char *type = or_unknown(e->agent_type), *phase = or_unknown(e->phase);
		const char *v1[] = { type, phase, e->success ? "success" : "failure" };
		const char *v2[] = { type, phase };
		const char *v3[] = { type, or_unknown(e->model) };

		cat_record(t, ATEL_CAT_AGENT_EXECUTION_TOTAL, v1, 1, 0, now);
		if (isfinite(e->duration_ms) && e->duration_ms >= 0)
			cat_record(t, ATEL_CAT_AGENT_EXECUTION_DURATION_SECONDS, v2, e->duration_ms / 1000.0, 0, now);
		else
			atel__invalid(t, "atel_track_agent_execution: duration_ms must be finite and >= 0");
		if (e->tokens)
			cat_record(t, ATEL_CAT_AGENT_TOKENS_USED, v3, (double)e->tokens, 0, now);
	}
	atel__leave(t);
}

void atel_track_tool_usage(const atel_tool_usage *u)
{
	struct atel__tls *t = atel__self();
	uint64_t now;

	if (!helper_enter(t, u, "atel_track_tool_usage: NULL argument", &now))
		return;
	{
		const char *tool = or_unknown(u->tool);
		const char *v1[] = { tool, u->success ? "success" : "failure" };
		const char *v2[] = { tool };
		const char *v3[] = { tool, or_unknown(u->error_type) };

		cat_record(t, ATEL_CAT_TOOL_CALLS_TOTAL, v1, 1, 0, now);
		if (isfinite(u->duration_ms) && u->duration_ms >= 0)
			cat_record(t, ATEL_CAT_TOOL_CALL_DURATION_SECONDS, v2, u->duration_ms / 1000.0, 0, now);
		else
			atel__invalid(t, "atel_track_tool_usage: duration_ms must be finite and >= 0");
		if (u->success)
			cat_record(t, ATEL_CAT_TOOL_CALL_SUCCESS_TOTAL, v2, 1, 0, now);
		else
			cat_record(t, ATEL_CAT_TOOL_CALL_FAILURE_TOTAL, v3, 1, 0, now);
	}
	atel__leave(t);
}

void atel_track_context_usage(const atel_context_usage *c)
{
	struct atel__tls *t = atel__self();
	uint64_t now;

	if (!helper_enter(t, c, "atel_track_context_usage: NULL argument", &now))
		return;
	{
		const char *agent = or_unknown(c->agent_id);
		const char *v1[] = { agent, or_unknown(c->session_id) };
		const char *v2[] = { agent };

		if (c->total)
			cat_record(t, ATEL_CAT_CONTEXT_WINDOW_UTILIZATION, v1,
				   100.0 * (double)c->used / (double)c->total, ATEL_RECF_SET, now);
		cat_record(t, ATEL_CAT_CONTEXT_WINDOW_SIZE_TOKENS, v2, (double)c->total, ATEL_RECF_SET, now);
		cat_record(t, ATEL_CAT_CONTEXT_WINDOW_USED_TOKENS, v2, (double)c->used, ATEL_RECF_SET, now);
	}
	atel__leave(t);
}

/*
 * error_rate: an exponentially weighted rate per (component, error_type),
 * r <- r * exp(-dt/tau) + 1/tau at each error, tau = 60 s (like a load
 * average). The state lives beside the series in a small locked table:
 * errors are not the hot path.
 */
#define RATE_SLOTS 256
static struct {
	const struct atel__series *s;
	double rate;
	uint64_t last_ns;
} rates[RATE_SLOTS];
static pthread_mutex_t rate_lock = PTHREAD_MUTEX_INITIALIZER;

static double rate_update(const struct atel__series *s, uint64_t now)
{
	const double tau = 60.0;
	size_t i = (size_t)(s->id * 2654435761u) % RATE_SLOTS;
	double r;

	pthread_mutex_lock(&rate_lock);
	for (size_t k = 0; k < RATE_SLOTS; k++, i = (i + 1) % RATE_SLOTS) {
		if (rates[i].s == s || !rates[i].s)
			break;
	}
	if (rates[i].s != s) {
		/* table full (more than 256 error kinds) or new entry */
		rates[i].s = s;
		rates[i].rate = 0;
		rates[i].last_ns = now;
	}
	if (now > rates[i].last_ns)
		rates[i].rate *= exp(-(double)(now - rates[i].last_ns) / 1e9 / tau);
	rates[i].rate += 1.0 / tau;
	rates[i].last_ns = now;
	r = rates[i].rate;
	pthread_mutex_unlock(&rate_lock);
	return r;
}

void atel_track_error(const atel_error_info *e)
{
	struct atel__tls *t = atel__self();
	uint64_t now;

	if (!helper_enter(t, e, "atel_track_error: NULL argument", &now))
		return;
	{
		const char *comp = or_unknown(e->component), *type = or_unknown(e->error_type);
		const char *v1[] = { comp, type, e->severity && *e->severity ? e->severity : "error" };
		const char *v2[] = { comp, type };
		const struct atel__series *rs;

		cat_record(t, ATEL_CAT_ERROR_TOTAL, v1, 1, 0, now);
		rs = cat_series(t, ATEL_CAT_ERROR_RATE, v2);
		if (rs)
			sample_at(t, rs, rate_update(rs, now), ATEL_RECF_SET, now);
	}
	atel__leave(t);
}

void atel_track_task(const atel_task_info *k)
{
	struct atel__tls *t = atel__self();
	uint64_t now;

	if (!helper_enter(t, k, "atel_track_task: NULL argument", &now))
		return;
	{
		const char *type = or_unknown(k->task_type);
		const char *v1[] = { type, k->success ? "success" : "failure" };
		const char *v2[] = { type };
		const char *v3[] = { type, or_unknown(k->error_type) };

		if (isfinite(k->duration_ms) && k->duration_ms >= 0)
			cat_record(t, ATEL_CAT_TASK_DURATION_SECONDS, v1, k->duration_ms / 1000.0, 0, now);
		else
			atel__invalid(t, "atel_track_task: duration_ms must be finite and >= 0");
		if (k->success)
			cat_record(t, ATEL_CAT_TASK_SUCCESS_TOTAL, v2, 1, 0, now);
		else
			cat_record(t, ATEL_CAT_TASK_FAILURE_TOTAL, v3, 1, 0, now);
	}
	atel__leave(t);
}

void atel_track_queue_size(const char *priority, double size)
{
	struct atel__tls *t = atel__self();
	const char *v[] = { or_unknown(priority) };
	uint64_t now;

	if (!isfinite(size)) {
		atel__invalid(t, "atel_track_queue_size: size must be finite");
		return;
	}
	if (!helper_enter(t, v, "", &now))
		return;
	cat_record(t, ATEL_CAT_TASK_QUEUE_SIZE, v, size, ATEL_RECF_SET, now);
	atel__leave(t);
}
