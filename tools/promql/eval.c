/* SPDX-License-Identifier: MIT */
/*
 * eval.c - the PromQL evaluator (Prometheus' promql/engine.go, in C).
 *
 * Every expression evaluates to a matrix whose points sit on the evaluation
 * steps start, start+interval, ... end (an instant query is a range of one
 * step); scalars are a matrix of one series without labels. Operations walk
 * the steps and combine the inputs' samples at each step (rangeEval),
 * aggregations group series (rangeEvalAgg), functions of a range vector
 * slide a window over each series.
 *
 * Before evaluating, every selector is fetched once from storage for the
 * whole time span it can need (offset, @, lookback or range, enclosing
 * subqueries: FindMinMaxTime), so storage is asked exactly once per
 * selector. The @ modifier fixes the reference time of a selector or
 * subquery instead of rewriting offsets as upstream does; the values are
 * the same.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval_int.h"

#define DEFAULT_LOOKBACK_MS (5 * 60 * 1000)
#define DEFAULT_SUBQUERY_STEP_MS (60 * 1000)
#define DEFAULT_MAX_SAMPLES 50000000ull
#define DEFAULT_MAX_STEPS 11000ull

/* ---- errors --------------------------------------------------------------------------------- */

static const char *type_msg_env = "expression evaluation";

_Noreturn void q_fail(struct query *q, enum atel_promql_errtype type, int code, const char *fmt, ...)
{
	if (q->err && q->err->type == ATEL_PROMQL_ERR_NONE) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(q->err->msg, sizeof(q->err->msg), fmt, ap);
		va_end(ap);
		q->err->type = type;
		q->err->code = code;
	}
	q->rc = code;
	longjmp(q->jb, 1);
}

void q_check(struct query *q)
{
	int rc = 0;
	if (q->opts.interrupt)
		rc = q->opts.interrupt(q->opts.interrupt_ctx);
	if (!rc && q->opts.deadline_ns) {
		/* clock_gettime is cheap (vDSO); still, look every 16th time. */
		if ((q->checks++ & 15) == 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			if ((int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec >= q->opts.deadline_ns)
				rc = -ETIMEDOUT;
		}
	}
	if (rc == -ECANCELED)
		q_fail(q, ATEL_PROMQL_ERR_CANCELED, -ECANCELED, "query was canceled in %s", type_msg_env);
	if (rc)
		q_fail(q, ATEL_PROMQL_ERR_TIMEOUT, -ETIMEDOUT, "query timed out in %s", type_msg_env);
}

/* Line and column of a byte offset in the query text (StartPosInput). */
static void text_pos(const struct query *q, uint32_t pos, unsigned *line, unsigned *col)
{
	const char *t = q->expr->text;
	*line = 1;
	size_t last = (size_t)-1;
	for (size_t i = 0; i < pos && i < q->expr->len; i++)
		if (t[i] == '\n')
			(*line)++, last = i;
	*col = (unsigned)(pos - (last + 1) + 1);
}

void q_annotate(struct query *q, bool info, const struct atel_promql_node *pos, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (pos && (size_t)n < sizeof(msg)) {
		unsigned line, col;
		text_pos(q, pos->start, &line, &col);
		snprintf(msg + n, sizeof(msg) - (size_t)n, " (%u:%u)", line, col);
	}
	for (size_t i = 0; i < q->nannos; i++)
		if (q->annos[i].info == info && !strcmp(q->annos[i].text, msg))
			return;
	if (q->nannos == q->capannos) {
		size_t nc = q->capannos ? q->capannos * 2 : 4;
		q->annos = q_realloc(q, q->annos, nc * sizeof(*q->annos));
		q->capannos = nc;
	}
	char *copy = atel__arena_strndup(&q->arena, msg, strlen(msg));
	if (!copy)
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	q->annos[q->nannos++] = (struct annotation){ copy, info };
}

/* ---- tracked heap --------------------------------------------------------------------------- */

struct qblock {
	struct qblock *prev, *next;
	size_t size;
	size_t pad;
};
_Static_assert(sizeof(struct qblock) % 16 == 0, "qblock keeps 16-byte alignment");

static void *q_alloc_nojmp(struct query *q, size_t n)
{
	if (n > SIZE_MAX - sizeof(struct qblock))
		return NULL;
	struct qblock *b = malloc(sizeof(*b) + n);
	if (!b)
		return NULL;
	b->size = n;
	b->prev = NULL;
	b->next = q->blocks;
	if (q->blocks)
		q->blocks->prev = b;
	q->blocks = b;
	return b + 1;
}

void *q_alloc(struct query *q, size_t n)
{
	void *p = q_alloc_nojmp(q, n);
	if (!p)
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	return p;
}

void *q_zalloc(struct query *q, size_t n)
{
	void *p = q_alloc(q, n);
	memset(p, 0, n);
	return p;
}

static void unlink_block(struct query *q, struct qblock *b)
{
	if (b->prev)
		b->prev->next = b->next;
	else
		q->blocks = b->next;
	if (b->next)
		b->next->prev = b->prev;
}

static void *q_realloc_nojmp(struct query *q, void *p, size_t n)
{
	if (!p)
		return q_alloc_nojmp(q, n);
	if (n > SIZE_MAX - sizeof(struct qblock))
		return NULL;
	struct qblock *b = (struct qblock *)p - 1;
	unlink_block(q, b);
	struct qblock *nb = realloc(b, sizeof(*b) + n);
	if (!nb) {
		/* put the old block back: it is still valid */
		b->prev = NULL;
		b->next = q->blocks;
		if (q->blocks)
			q->blocks->prev = b;
		q->blocks = b;
		return NULL;
	}
	nb->size = n;
	nb->prev = NULL;
	nb->next = q->blocks;
	if (q->blocks)
		q->blocks->prev = nb;
	q->blocks = nb;
	return nb + 1;
}

void *q_realloc(struct query *q, void *p, size_t n)
{
	void *r = q_realloc_nojmp(q, p, n);
	if (!r)
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	return r;
}

void q_free(struct query *q, void *p)
{
	if (!p)
		return;
	struct qblock *b = (struct qblock *)p - 1;
	unlink_block(q, b);
	free(b);
}

static void q_free_all(struct query *q)
{
	struct qblock *b = q->blocks;
	while (b) {
		struct qblock *n = b->next;
		free(b);
		b = n;
	}
	q->blocks = NULL;
}

void q_account(struct query *q, int64_t delta)
{
	if (delta < 0 && (uint64_t)-delta > q->cur_samples)
		q->cur_samples = 0;
	else
		q->cur_samples += (uint64_t)delta;
	if (delta > 0 && q->cur_samples > q->opts.max_samples)
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -E2BIG,
		       "query processing would load too many samples into memory in query execution");
}

/* ---- maps ------------------------------------------------------------------------------------- */

static size_t ptr_hash(const void *k)
{
	uint64_t x = (uint64_t)(uintptr_t)k;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return (size_t)x;
}

size_t *pmap_get(struct pmap *m, const void *k)
{
	if (!m->cap)
		return NULL;
	for (size_t i = ptr_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (m->e[i].k == k)
			return &m->e[i].v;
		if (!m->e[i].k)
			return NULL;
	}
}

static bool pmap_grow(struct query *q, struct pmap *m, bool nojmp)
{
	size_t nc = m->cap ? m->cap * 2 : 16;
	struct pmap_ent *ne = nojmp ? q_alloc_nojmp(q, nc * sizeof(*ne)) : q_alloc(q, nc * sizeof(*ne));
	if (!ne)
		return false;
	memset(ne, 0, nc * sizeof(*ne));
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->e[i].k)
			continue;
		size_t j = ptr_hash(m->e[i].k) & (nc - 1);
		while (ne[j].k)
			j = (j + 1) & (nc - 1);
		ne[j] = m->e[i];
	}
	q_free(q, m->e);
	m->e = ne;
	m->cap = nc;
	return true;
}

static size_t *pmap_put_impl(struct query *q, struct pmap *m, const void *k, bool *fresh, bool nojmp)
{
	if ((m->n + 1) * 10 > m->cap * 7 && !pmap_grow(q, m, nojmp))
		return NULL;
	size_t i = ptr_hash(k) & (m->cap - 1);
	while (m->e[i].k && m->e[i].k != k)
		i = (i + 1) & (m->cap - 1);
	*fresh = !m->e[i].k;
	if (*fresh) {
		m->e[i].k = k;
		m->e[i].v = 0;
		m->n++;
	}
	return &m->e[i].v;
}

size_t *pmap_put(struct query *q, struct pmap *m, const void *k, bool *fresh)
{
	return pmap_put_impl(q, m, k, fresh, false);
}

void pmap_free(struct query *q, struct pmap *m)
{
	q_free(q, m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- interning -------------------------------------------------------------------------------- */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* nojmp: from the storage sink, where failing must return, not unwind. */
static const char *q_str_impl(struct query *q, const char *s, size_t n, bool nojmp)
{
	uint64_t h = fnv(s, n, 0xcbf29ce484222325ull);
	if ((q->snum + 1) * 10 > q->scap * 7) {
		size_t nc = q->scap ? q->scap * 2 : 256;
		const char **nt = nojmp ? q_alloc_nojmp(q, nc * sizeof(*nt)) : q_alloc(q, nc * sizeof(*nt));
		if (!nt)
			return NULL;
		memset(nt, 0, nc * sizeof(*nt));
		for (size_t i = 0; i < q->scap; i++) {
			const char *x = q->stab[i];
			if (!x)
				continue;
			size_t j = fnv(x, strlen(x), 0xcbf29ce484222325ull) & (nc - 1);
			while (nt[j])
				j = (j + 1) & (nc - 1);
			nt[j] = x;
		}
		q_free(q, q->stab);
		q->stab = nt;
		q->scap = nc;
	}
	size_t i = h & (q->scap - 1);
	for (; q->stab[i]; i = (i + 1) & (q->scap - 1))
		if (!strncmp(q->stab[i], s, n) && q->stab[i][n] == 0)
			return q->stab[i];
	char *c = atel__arena_strndup(&q->arena, s, n);
	if (!c) {
		if (nojmp)
			return NULL;
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	}
	q->stab[i] = c;
	q->snum++;
	return c;
}

const char *q_str(struct query *q, const char *s, size_t n)
{
	return q_str_impl(q, s, n, false);
}

static uint64_t lset_hash(const struct lpair *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		h = fnv(&p[i].name, sizeof(p[i].name), h);
		h = fnv(&p[i].value, sizeof(p[i].value), h);
	}
	return h;
}

static const struct lset *q_lset_impl(struct query *q, const struct lpair *p, size_t n, bool nojmp)
{
	uint64_t h = lset_hash(p, n);
	if ((q->lnum + 1) * 10 > q->lcap * 7) {
		size_t nc = q->lcap ? q->lcap * 2 : 256;
		const struct lset **nt = nojmp ? q_alloc_nojmp(q, nc * sizeof(*nt)) : q_alloc(q, nc * sizeof(*nt));
		if (!nt)
			return NULL;
		memset(nt, 0, nc * sizeof(*nt));
		for (size_t i = 0; i < q->lcap; i++) {
			const struct lset *x = q->ltab[i];
			if (!x)
				continue;
			size_t j = x->hash & (nc - 1);
			while (nt[j])
				j = (j + 1) & (nc - 1);
			nt[j] = x;
		}
		q_free(q, q->ltab);
		q->ltab = nt;
		q->lcap = nc;
	}
	size_t i = h & (q->lcap - 1);
	for (; q->ltab[i]; i = (i + 1) & (q->lcap - 1)) {
		const struct lset *x = q->ltab[i];
		if (x->hash == h && x->n == n && !memcmp(x->p, p, n * sizeof(*p)))
			return x;
	}
	struct lset *ls = atel__arena_alloc(&q->arena, sizeof(*ls) + n * sizeof(*p));
	if (!ls) {
		if (nojmp)
			return NULL;
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	}
	ls->hash = h;
	ls->n = (uint32_t)n;
	if (n)
		memcpy(ls->p, p, n * sizeof(*p));
	q->ltab[i] = ls;
	q->lnum++;
	return ls;
}

const struct lset *q_lset(struct query *q, const struct lpair *p, size_t n)
{
	return q_lset_impl(q, p, n, false);
}

const char *ls_get(const struct lset *ls, const char *name)
{
	size_t lo = 0, hi = ls->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ls->p[mid].name, name);
		if (c == 0)
			return ls->p[mid].value;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int ls_cmp(const struct lset *a, const struct lset *b)
{
	size_t n = a->n < b->n ? a->n : b->n;
	for (size_t i = 0; i < n; i++) {
		if (a->p[i].name != b->p[i].name) {
			int c = strcmp(a->p[i].name, b->p[i].name);
			if (c)
				return c < 0 ? -1 : 1;
		}
		if (a->p[i].value != b->p[i].value) {
			int c = strcmp(a->p[i].value, b->p[i].value);
			if (c)
				return c < 0 ? -1 : 1;
		}
	}
	return a->n < b->n ? -1 : a->n > b->n;
}

uint64_t ls_content_hash(const struct lset *ls)
{
	size_t len = 0;
	for (uint32_t i = 0; i < ls->n; i++)
		len += strlen(ls->p[i].name) + strlen(ls->p[i].value) + 2;
	unsigned char stackbuf[1024] = { 0 };
	unsigned char *b = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	if (!b)
		return 0;
	size_t o = 0;
	for (uint32_t i = 0; i < ls->n; i++) {
		size_t a = strlen(ls->p[i].name), v = strlen(ls->p[i].value);
		memcpy(b + o, ls->p[i].name, a);
		o += a;
		b[o++] = 0xff;
		memcpy(b + o, ls->p[i].value, v);
		o += v;
		b[o++] = 0xff;
	}
	uint64_t h = atel__promql_xxhash64(b, len);
	if (b != stackbuf)
		free(b);
	return h;
}

size_t ls_format(const struct lset *ls, char *buf, size_t len)
{
	struct atel__sbuf b = { buf, len, 0 };
	if (len)
		buf[0] = 0;
	atel__sbuf_puts(&b, "{");
	for (uint32_t i = 0; i < ls->n; i++) {
		char q[512];
		if (i)
			atel__sbuf_puts(&b, ", ");
		atel__sbuf_puts(&b, ls->p[i].name);
		atel__sbuf_puts(&b, "=");
		atel__promql_quote(ls->p[i].value, q, sizeof(q));
		atel__sbuf_puts(&b, q);
	}
	atel__sbuf_puts(&b, "}");
	return b.pos;
}

/* ---- label builder ---------------------------------------------------------------------------- */

void lb_init(struct lbuild *b, struct query *q, const struct lset *ls)
{
	b->q = q;
	b->cap = (ls ? ls->n : 0) + 4;
	b->p = q_alloc(q, b->cap * sizeof(*b->p));
	b->n = ls ? ls->n : 0;
	if (b->n)
		memcpy(b->p, ls->p, b->n * sizeof(*b->p));
}

static size_t lb_find(const struct lbuild *b, const char *name, bool *found)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(b->p[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

void lb_del(struct lbuild *b, const char *name)
{
	bool found;
	size_t i = lb_find(b, name, &found);
	if (!found)
		return;
	memmove(b->p + i, b->p + i + 1, (b->n - i - 1) * sizeof(*b->p));
	b->n--;
}

void lb_set(struct lbuild *b, const char *name, const char *value)
{
	if (!value || !*value) {
		lb_del(b, name);
		return;
	}
	bool found;
	size_t i = lb_find(b, name, &found);
	const char *v = q_str(b->q, value, strlen(value));
	if (found) {
		b->p[i].value = v;
		return;
	}
	if (b->n == b->cap) {
		b->cap *= 2;
		b->p = q_realloc(b->q, b->p, b->cap * sizeof(*b->p));
	}
	memmove(b->p + i + 1, b->p + i, (b->n - i) * sizeof(*b->p));
	b->p[i].name = q_str(b->q, name, strlen(name));
	b->p[i].value = v;
	b->n++;
}

void lb_keep(struct lbuild *b, const char *const *names, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < b->n; i++) {
		bool keep = false;
		for (size_t k = 0; k < n && !keep; k++)
			keep = !strcmp(b->p[i].name, names[k]);
		if (keep)
			b->p[o++] = b->p[i];
	}
	b->n = o;
}

const struct lset *lb_done(struct lbuild *b)
{
	const struct lset *ls = q_lset(b->q, b->p, b->n);
	q_free(b->q, b->p);
	b->p = NULL;
	return ls;
}

const struct lset *ls_drop_name(struct query *q, const struct lset *ls)
{
	if (!ls_get(ls, "__name__"))
		return ls;
	struct lbuild b;
	lb_init(&b, q, ls);
	lb_del(&b, "__name__");
	return lb_done(&b);
}

/* ---- vectors and matrices ---------------------------------------------------------------------- */

void vec_push(struct query *q, struct vector *v, const struct lset *ls, int64_t t, double val, bool drop_name)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 8;
		v->s = q_realloc(q, v->s, nc * sizeof(*v->s));
		v->cap = nc;
	}
	v->s[v->n++] = (struct sample){ ls, t, val, drop_name };
}

void vec_free(struct query *q, struct vector *v)
{
	q_free(q, v->s);
	memset(v, 0, sizeof(*v));
}

struct series *mat_add(struct query *q, struct matrix *m, const struct lset *ls, bool drop_name)
{
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 8;
		m->s = q_realloc(q, m->s, nc * sizeof(*m->s));
		m->cap = nc;
	}
	struct series *s = &m->s[m->n++];
	memset(s, 0, sizeof(*s));
	s->ls = ls;
	s->drop_name = drop_name;
	return s;
}

void series_push(struct query *q, struct series *s, int64_t t, double v)
{
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 4;
		s->pts = q_realloc(q, s->pts, nc * sizeof(*s->pts));
		s->cap = nc;
	}
	s->pts[s->n++] = (struct pt){ t, v };
	q_account(q, 1);
}

void mat_free(struct query *q, struct matrix *m)
{
	for (size_t i = 0; i < m->n; i++) {
		q_account(q, -(int64_t)m->s[i].n);
		q_free(q, m->s[i].pts);
	}
	q_free(q, m->s);
	memset(m, 0, sizeof(*m));
}

/* Drop series without points (keeping order). */
static void mat_compact(struct query *q, struct matrix *m)
{
	size_t o = 0;
	for (size_t i = 0; i < m->n; i++) {
		if (m->s[i].n == 0) {
			q_free(q, m->s[i].pts);
			continue;
		}
		m->s[o++] = m->s[i];
	}
	m->n = o;
}

static bool is_stale(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b == ATEL_PROMQL_STALE_NAN_BITS;
}

static const struct atel_promql_node *unparen(const struct atel_promql_node *n)
{
	while (n->kind == ATEL_PROMQL_PAREN)
		n = n->paren.expr;
	return n;
}

static int64_t resolve_at(const struct query *q, enum atel_promql_at at, int64_t at_ms)
{
	return at == ATEL_PROMQL_AT_START ? q->qstart : at == ATEL_PROMQL_AT_END ? q->qend : at_ms;
}

static size_t num_steps(const struct evaluator *ev)
{
	return (size_t)((ev->end - ev->start) / ev->interval) + 1;
}

/* ---- storage ------------------------------------------------------------------------------------ */

struct atel_promql_sink {
	struct query *q;
	struct seldata *sd;
	const struct atel_promql_select *sel;
	bool pending;           /* an error was recorded in q->err */
};

static int sink_fail(struct atel_promql_sink *s, enum atel_promql_errtype type, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int sink_fail(struct atel_promql_sink *s, enum atel_promql_errtype type, int code, const char *fmt, ...)
{
	struct query *q = s->q;
	if (q->err && q->err->type == ATEL_PROMQL_ERR_NONE) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(q->err->msg, sizeof(q->err->msg), fmt, ap);
		va_end(ap);
		q->err->type = type;
		q->err->code = code;
	}
	q->rc = code;
	s->pending = true;
	return code;
}

/* Double an array's capacity from the sink: no unwinding there. @return false on ENOMEM. */
static bool grow_nojmp(struct query *q, void **arr, size_t *cap, size_t elem)
{
	size_t nc = *cap ? *cap * 2 : 16;
	void *n = q_realloc_nojmp(q, *arr, nc * elem);
	if (!n)
		return false;
	*arr = n;
	*cap = nc;
	return true;
}

static int cmp_lpair(const void *a, const void *b)
{
	return strcmp(((const struct lpair *)a)->name, ((const struct lpair *)b)->name);
}

int atel_promql_sink_series(struct atel_promql_sink *s, const struct atel_promql_label *labels, size_t nlabels,
			    uint32_t *id)
{
	struct query *q = s->q;
	if (s->pending)
		return q->rc;
	/* Interrupts are polled here too: a slow storage is still bounded. */
	if (q->opts.interrupt) {
		int rc = q->opts.interrupt(q->opts.interrupt_ctx);
		if (rc == -ECANCELED)
			return sink_fail(s, ATEL_PROMQL_ERR_CANCELED, rc, "query was canceled in query preparation");
		if (rc)
			return sink_fail(s, ATEL_PROMQL_ERR_TIMEOUT, -ETIMEDOUT, "query timed out in query preparation");
	}
	if (q->opts.deadline_ns) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec >= q->opts.deadline_ns)
			return sink_fail(s, ATEL_PROMQL_ERR_TIMEOUT, -ETIMEDOUT, "query timed out in query preparation");
	}
	/* Matchers first: a storage may offer more than was asked for. */
	const struct atel_promql_select *sel = s->sel;
	for (size_t i = 0; i < sel->nmatchers; i++) {
		const char *v = NULL;
		for (size_t k = 0; k < nlabels; k++)
			if (!strcmp(labels[k].name, sel->matchers[i].name)) {
				v = labels[k].value;
				break;
			}
		if (!atel_promql_matcher_matches(&sel->matchers[i], v))
			return 0;
	}
	struct lpair stackp[32];
	struct lpair *p = nlabels <= 32 ? stackp : q_alloc_nojmp(q, nlabels * sizeof(*p));
	if (!p)
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t k = 0; k < nlabels; k++) {
		if (!labels[k].name || !labels[k].value || !labels[k].value[0])
			continue; /* an empty value is an absent label */
		p[n].name = q_str_impl(q, labels[k].name, strlen(labels[k].name), true);
		p[n].value = q_str_impl(q, labels[k].value, strlen(labels[k].value), true);
		if (!p[n].name || !p[n].value) {
			if (p != stackp)
				q_free(q, p);
			return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
		}
		n++;
	}
	qsort(p, n, sizeof(*p), cmp_lpair);
	for (size_t k = 1; k < n; k++)
		if (!strcmp(p[k - 1].name, p[k].name)) {
			if (p != stackp)
				q_free(q, p);
			return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "storage: label %s given twice in one series",
					 p[k].name);
		}
	const struct lset *ls = q_lset_impl(q, p, n, true);
	if (p != stackp)
		q_free(q, p);
	if (!ls)
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	struct seldata *sd = s->sd;
	bool fresh;
	size_t *slot = pmap_put_impl(q, &sd->byls, ls, &fresh, true);
	if (!slot)
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	if (!fresh) {
		*id = (uint32_t)*slot;
		return 1;
	}
	if (q->opts.max_series && q->series_loaded + 1 > q->opts.max_series)
		return sink_fail(s, ATEL_PROMQL_ERR_EXECUTION, -E2BIG,
				 "query would select more than %llu series (the configured limit)",
				 (unsigned long long)q->opts.max_series);
	if (sd->n == sd->cap && !grow_nojmp(q, (void **)&sd->series, &sd->cap, sizeof(*sd->series)))
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	if (sd->n >= UINT32_MAX)
		return sink_fail(s, ATEL_PROMQL_ERR_EXECUTION, -E2BIG, "too many series");
	memset(&sd->series[sd->n], 0, sizeof(sd->series[0]));
	sd->series[sd->n].ls = ls;
	*slot = sd->n;
	*id = (uint32_t)sd->n;
	sd->n++;
	q->series_loaded++;
	return 1;
}

int atel_promql_sink_sample(struct atel_promql_sink *s, uint32_t id, int64_t t_ms, double v)
{
	struct query *q = s->q;
	struct seldata *sd = s->sd;
	if (s->pending)
		return q->rc;
	if (id >= sd->n)
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "storage: sample for unknown series id %u", id);
	if (t_ms < sd->mint || t_ms > sd->maxt)
		return 0;
	struct rawseries *r = &sd->series[id];
	if (r->n && t_ms <= r->pts[r->n - 1].t) {
		char ls[256];
		ls_format(r->ls, ls, sizeof(ls));
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -EINVAL,
				 "storage: sample at %lld ms is not after the previous one (%lld ms) of series %s",
				 (long long)t_ms, (long long)r->pts[r->n - 1].t, ls);
	}
	if (sd->matrix && is_stale(v))
		return 0; /* range vectors never contain stale markers */
	if (q->opts.max_samples_loaded && q->samples_loaded + 1 > q->opts.max_samples_loaded)
		return sink_fail(s, ATEL_PROMQL_ERR_EXECUTION, -E2BIG,
				 "query would load more than %llu samples from storage (the configured limit)",
				 (unsigned long long)q->opts.max_samples_loaded);
	if (r->n == r->cap && !grow_nojmp(q, (void **)&r->pts, &r->cap, sizeof(*r->pts)))
		return sink_fail(s, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	r->pts[r->n++] = (struct pt){ t_ms, v };
	q->samples_loaded++;
	return 0;
}

struct walkctx {
	int64_t subq_off, subq_range;
	bool has_at;
	int64_t at;
};

/* FindMinMaxTime / populateSeries: one storage selection per selector. */
static void collect(struct query *q, const struct atel_promql_node *n, struct walkctx c, int64_t eval_range)
{
	switch (n->kind) {
	case ATEL_PROMQL_SELECTOR: {
		int64_t lookback = q->opts.lookback_ms;
		int64_t start = q->qstart, end = q->qend;
		if (c.has_at)
			start = end = c.at;
		if (n->sel.at != ATEL_PROMQL_AT_NONE) {
			start = end = resolve_at(q, n->sel.at, n->sel.at_ms);
		} else {
			start -= c.subq_off + c.subq_range;
			end -= c.subq_off;
		}
		start -= eval_range == 0 ? lookback - 1 : eval_range - 1;
		start -= n->sel.offset_ms;
		end -= n->sel.offset_ms;
		q->sels = q_realloc(q, q->sels, (q->nsels + 1) * sizeof(*q->sels));
		struct seldata *sd = &q->sels[q->nsels++];
		memset(sd, 0, sizeof(*sd));
		sd->node = n;
		sd->matrix = eval_range != 0;
		sd->mint = start;
		sd->maxt = end;
		return;
	}
	case ATEL_PROMQL_MATRIX_SEL:
		collect(q, n->matrix.sel, c, n->matrix.range_ms);
		return;
	case ATEL_PROMQL_SUBQUERY:
		c.subq_off += n->subquery.offset_ms;
		c.subq_range += n->subquery.range_ms;
		if (n->subquery.at != ATEL_PROMQL_AT_NONE) {
			c.subq_off = n->subquery.offset_ms;
			c.subq_range = n->subquery.range_ms;
			c.has_at = true;
			c.at = resolve_at(q, n->subquery.at, n->subquery.at_ms);
		}
		collect(q, n->subquery.expr, c, 0);
		return;
	case ATEL_PROMQL_PAREN:
		collect(q, n->paren.expr, c, 0);
		return;
	case ATEL_PROMQL_UNARY:
		collect(q, n->unary.expr, c, 0);
		return;
	case ATEL_PROMQL_BINARY:
		collect(q, n->binary.lhs, c, 0);
		collect(q, n->binary.rhs, c, 0);
		return;
	case ATEL_PROMQL_CALL:
		for (size_t i = 0; i < n->call.nargs; i++)
			collect(q, n->call.args[i], c, 0);
		return;
	case ATEL_PROMQL_AGGREGATE:
		if (n->agg.param)
			collect(q, n->agg.param, c, 0);
		collect(q, n->agg.expr, c, 0);
		return;
	case ATEL_PROMQL_NUMBER:
	case ATEL_PROMQL_STRING_LIT:
		return;
	}
}

static void fetch_all(struct query *q)
{
	for (size_t i = 0; i < q->nsels; i++) {
		struct seldata *sd = &q->sels[i];
		q_check(q);
		const struct atel_promql_node *n = sd->node;
		struct atel_promql_select sel = {
			.matchers = n->sel.matchers,
			.nmatchers = n->sel.nmatchers,
			.mint_ms = sd->mint,
			.maxt_ms = sd->maxt,
		};
		for (size_t k = 0; k < n->sel.nmatchers; k++)
			if (n->sel.matchers[k].op == ATEL_PROMQL_MATCH_EQ && !strcmp(n->sel.matchers[k].name, "__name__"))
				sel.metric_name = n->sel.matchers[k].value;
		struct atel_promql_sink sink = { .q = q, .sd = sd, .sel = &sel };
		char msg[256] = "";
		int rc = q->st->select(q->st->ctx, &sel, &sink, msg, sizeof(msg));
		if (sink.pending)
			q_fail(q, q->err ? q->err->type : ATEL_PROMQL_ERR_INTERNAL, q->rc, "%s", "storage");
		if (rc < 0) {
			if (rc == -ECANCELED)
				q_fail(q, ATEL_PROMQL_ERR_CANCELED, rc, "query was canceled in query preparation");
			if (rc == -ETIMEDOUT)
				q_fail(q, ATEL_PROMQL_ERR_TIMEOUT, rc, "query timed out in query preparation");
			q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EIO, "storage: %s", msg[0] ? msg : strerror(-rc));
		}
	}
}

static struct seldata *find_sel(struct query *q, const struct atel_promql_node *n)
{
	for (size_t i = 0; i < q->nsels; i++)
		if (q->sels[i].node == n)
			return &q->sels[i];
	q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "selector without data");
}

/* ---- evaluation -------------------------------------------------------------------------------- */

static struct matrix eval(struct evaluator *ev, const struct atel_promql_node *n);

/*
 * Gather the samples of a matrix at step ts (gatherVector). cursor[i] is the
 * index of series i's next point; idx (optional) receives the series index
 * of every gathered sample.
 */
static void gather(struct query *q, const struct matrix *m, size_t *cursor, int64_t ts, struct vector *out,
		   size_t **idx, size_t *idxcap)
{
	out->n = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct series *s = &m->s[i];
		if (cursor[i] >= s->n || s->pts[cursor[i]].t != ts)
			continue;
		vec_push(q, out, s->ls, ts, s->pts[cursor[i]].v, s->drop_name);
		cursor[i]++;
		if (idx) {
			if (out->n > *idxcap) {
				*idxcap = out->n * 2;
				*idx = q_realloc(q, *idx, *idxcap * sizeof(**idx));
			}
			(*idx)[out->n - 1] = i;
		}
	}
}

typedef void (*step_fn)(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			struct vector *out);

/*
 * rangeEval: call fn at every step with the inputs' vectors; collect the
 * output vectors into series. Takes ownership of the input matrices.
 * want_idx: fn needs the series index of each input sample.
 */
static struct matrix range_eval(struct evaluator *ev, step_fn fn, void *ctx, struct matrix *in, size_t nin,
				bool want_idx)
{
	struct query *q = ev->q;
	struct matrix out = { 0 };
	size_t **cursors = q_zalloc(q, (nin + 1) * sizeof(*cursors));
	struct vector *vecs = q_zalloc(q, (nin + 1) * sizeof(*vecs));
	size_t **idx = q_zalloc(q, (nin + 1) * sizeof(*idx));
	size_t *idxcap = q_zalloc(q, (nin + 1) * sizeof(*idxcap));
	for (size_t i = 0; i < nin; i++)
		cursors[i] = q_zalloc(q, (in[i].n + 1) * sizeof(size_t));
	struct vector res = { 0 };
	struct pmap byls = { 0 };
	int64_t *last_t = NULL;
	size_t cap_last = 0;
	bool instant = ev->start == ev->end;
	for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
		q_check(q);
		for (size_t i = 0; i < nin; i++)
			gather(q, &in[i], cursors[i], ts, &vecs[i], want_idx ? &idx[i] : NULL, &idxcap[i]);
		res.n = 0;
		fn(ev, ctx, vecs, idx, ts, &res);
		if (instant) {
			/* Keep the function's order (sort(), topk()...). */
			for (size_t k = 0; k < res.n; k++) {
				struct series *s = mat_add(q, &out, res.s[k].ls, res.s[k].drop_name);
				series_push(q, s, ts, res.s[k].v);
			}
			break;
		}
		for (size_t k = 0; k < res.n; k++) {
			bool fresh;
			size_t *slot = pmap_put(q, &byls, res.s[k].ls, &fresh);
			if (fresh) {
				*slot = out.n;
				mat_add(q, &out, res.s[k].ls, res.s[k].drop_name);
				if (out.n > cap_last) {
					cap_last = out.cap;
					last_t = q_realloc(q, last_t, cap_last * sizeof(*last_t));
				}
			} else if (last_t[*slot] == ts) {
				q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "vector cannot contain metrics with the same labelset");
			}
			last_t[*slot] = ts;
			series_push(q, &out.s[*slot], ts, res.s[k].v);
		}
		if (ts > INT64_MAX - ev->interval)
			break;
	}
	for (size_t i = 0; i < nin; i++) {
		q_free(q, cursors[i]);
		vec_free(q, &vecs[i]);
		q_free(q, idx[i]);
		mat_free(q, &in[i]);
	}
	q_free(q, cursors);
	q_free(q, vecs);
	q_free(q, idx);
	q_free(q, idxcap);
	vec_free(q, &res);
	pmap_free(q, &byls);
	q_free(q, last_t);
	return out;
}

/* ---- selectors ---- */

static struct matrix eval_selector(struct evaluator *ev, const struct atel_promql_node *n, bool timestamps)
{
	struct query *q = ev->q;
	struct seldata *sd = find_sel(q, n);
	struct matrix out = { 0 };
	int64_t off = n->sel.offset_ms;
	bool has_at = n->sel.at != ATEL_PROMQL_AT_NONE;
	int64_t at = has_at ? resolve_at(q, n->sel.at, n->sel.at_ms) : 0;
	int64_t lookback = q->opts.lookback_ms;
	for (size_t i = 0; i < sd->n; i++) {
		const struct rawseries *r = &sd->series[i];
		q_check(q);
		struct series *s = NULL;
		size_t cur = 0;
		for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval) {
			int64_t ref = (has_at ? at : ts) - off;
			while (cur < r->n && r->pts[cur].t <= ref)
				cur++;
			if (cur > 0) {
				const struct pt *p = &r->pts[cur - 1];
				if (p->t > ref - lookback && !is_stale(p->v)) {
					if (!s)
						s = mat_add(q, &out, r->ls, timestamps);
					series_push(q, s, ts, timestamps ? (double)p->t / 1000.0 : p->v);
				}
			}
			if (ts > INT64_MAX - ev->interval)
				break;
		}
	}
	return out;
}

/* A range selector at the top of an instant query: the raw samples. */
static struct matrix eval_matrix_selector(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	if (ev->start != ev->end)
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "cannot do range evaluation of matrix selector");
	const struct atel_promql_node *vs = n->matrix.sel;
	struct seldata *sd = find_sel(q, vs);
	bool has_at = vs->sel.at != ATEL_PROMQL_AT_NONE;
	int64_t maxt = (has_at ? resolve_at(q, vs->sel.at, vs->sel.at_ms) : ev->start) - vs->sel.offset_ms;
	int64_t mint = maxt - n->matrix.range_ms;
	struct matrix out = { 0 };
	for (size_t i = 0; i < sd->n; i++) {
		const struct rawseries *r = &sd->series[i];
		struct series *s = NULL;
		for (size_t k = 0; k < r->n; k++) {
			if (r->pts[k].t <= mint || r->pts[k].t > maxt)
				continue;
			if (!s)
				s = mat_add(q, &out, r->ls, false);
			series_push(q, s, r->pts[k].t, r->pts[k].v);
		}
	}
	return out;
}

/* ---- subqueries ---- */

static struct matrix eval_subquery(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	int64_t off = n->subquery.offset_ms, range = n->subquery.range_ms;
	int64_t step = n->subquery.step_ms ? n->subquery.step_ms : q->opts.subquery_step_ms;
	int64_t bstart = ev->start, bend = ev->end;
	if (n->subquery.at != ATEL_PROMQL_AT_NONE)
		bstart = bend = resolve_at(q, n->subquery.at, n->subquery.at_ms);
	struct evaluator sub = { .q = q, .interval = step, .end = bend - off };
	/* The first step time after (start - offset - range) that is a multiple of step. */
	int64_t lo = bstart - off - range;
	sub.start = step * (lo / step);
	if (sub.start < lo)
		sub.start += step;
	if (sub.end < sub.start)
		return (struct matrix){ 0 };
	uint64_t steps = (uint64_t)((sub.end - sub.start) / step) + 1;
	if (steps > 100000000ull)
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -E2BIG, "subquery would evaluate %llu steps", (unsigned long long)steps);
	return eval(&sub, n->subquery.expr);
}

/* ---- function calls ---- */

struct vcall_ctx {
	const struct atel_promql_node *node;
	int id;
	size_t nargs;
};

static void call_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts, struct vector *out)
{
	(void)idx;
	struct vcall_ctx *c = ctx;
	struct vcall vc = { ev->q, c->node, in, c->nargs, ts, out };
	atel__func_vector(c->id, &vc);
}

static void absent_over_time_finish(struct evaluator *ev, const struct atel_promql_node *call, struct matrix *mat);
static struct matrix eval_label_replace(struct evaluator *ev, const struct atel_promql_node *n);
static struct matrix eval_label_join(struct evaluator *ev, const struct atel_promql_node *n);

static const char *string_arg(const struct atel_promql_node *n)
{
	n = unparen(n);
	return n->kind == ATEL_PROMQL_STRING_LIT ? n->string : "";
}

/* Range-vector functions: a window slides over each series. */
static struct matrix eval_range_call(struct evaluator *ev, const struct atel_promql_node *n, size_t midx)
{
	struct query *q = ev->q;
	int id = n->call.func_id;
	const struct atel_promql_node *arg = unparen(n->call.args[midx]);
	struct matrix sub = { 0 };
	const struct rawseries *raw = NULL;
	size_t nsrc;
	int64_t off, range;
	bool has_at;
	int64_t at = 0;
	if (arg->kind == ATEL_PROMQL_SUBQUERY) {
		sub = eval_subquery(ev, arg);
		nsrc = sub.n;
		off = arg->subquery.offset_ms;
		range = arg->subquery.range_ms;
		has_at = arg->subquery.at != ATEL_PROMQL_AT_NONE;
		if (has_at)
			at = resolve_at(q, arg->subquery.at, arg->subquery.at_ms);
	} else {
		const struct atel_promql_node *vs = arg->matrix.sel;
		struct seldata *sd = find_sel(q, vs);
		raw = sd->series;
		nsrc = sd->n;
		off = vs->sel.offset_ms;
		range = arg->matrix.range_ms;
		has_at = vs->sel.at != ATEL_PROMQL_AT_NONE;
		if (has_at)
			at = resolve_at(q, vs->sel.at, vs->sel.at_ms);
	}
	/* Other arguments are scalars: one value per step. */
	struct matrix other[3] = { { 0 } };
	size_t nsteps = num_steps(ev);
	for (size_t i = 0; i < n->call.nargs && i < 3; i++) {
		if (i == midx)
			continue;
		other[i] = eval(ev, n->call.args[i]);
		if (other[i].n != 1 || other[i].s[0].n != nsteps)
			q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "scalar argument without a value at every step");
	}
	struct matrix out = { 0 };
	bool drop_name = id != F_LAST_OVER_TIME;
	bool rate_like = id == F_RATE || id == F_INCREASE;
	size_t prev_window = 0;
	for (size_t i = 0; i < nsrc; i++) {
		q_check(q);
		const struct pt *pts = raw ? raw[i].pts : sub.s[i].pts;
		size_t np = raw ? raw[i].n : sub.s[i].n;
		const struct lset *ls = raw ? raw[i].ls : sub.s[i].ls;
		struct series *s = NULL;
		size_t lo = 0, hi = 0;
		int64_t maxt = 0;
		size_t step = 0;
		for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval, step++) {
			if (ts == ev->start || !has_at) {
				maxt = (has_at ? at : ts) - off;
				int64_t mint = maxt - range;
				while (hi < np && pts[hi].t <= maxt)
					hi++;
				while (lo < hi && pts[lo].t <= mint)
					lo++;
				/* count the window like matrixIterSlice does */
				q_account(q, (int64_t)(hi - lo) - (int64_t)prev_window);
				prev_window = hi - lo;
			}
			if (hi > lo) {
				struct rcall rc = { .q = q, .node = n, .w = pts + lo, .n = hi - lo, .ls = ls, .ts = ts,
						    .maxt = maxt, .range = range };
				for (size_t k = 0; k < n->call.nargs && k < 3; k++)
					if (k != midx)
						rc.arg[k] = other[k].s[0].pts[step].v;
				atel__func_range(id, &rc);
				if (rc.emit) {
					if (!s)
						s = mat_add(q, &out, ls, drop_name);
					series_push(q, s, ts, rc.v);
				}
			}
			if (ts > INT64_MAX - ev->interval)
				break;
		}
		if (rate_like && s && s->n > 0) {
			const char *name = ls_get(ls, "__name__");
			size_t nl = name ? strlen(name) : 0;
#define ENDS(x) (nl >= sizeof(x) - 1 && !strcmp(name + nl - (sizeof(x) - 1), x))
			if (name && !ENDS("_total") && !ENDS("_sum") && !ENDS("_count") && !ENDS("_bucket"))
				q_annotate(q, true, n->call.args[0],
					   "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"%s\"",
					   name);
#undef ENDS
		}
	}
	q_account(q, -(int64_t)prev_window);
	for (size_t i = 0; i < 3; i++)
		mat_free(q, &other[i]);
	mat_free(q, &sub);
	if (id == F_ABSENT_OVER_TIME)
		absent_over_time_finish(ev, n, &out);
	return out;
}

/* createLabelsForAbsentFunction: labels that are uniquely and exactly matched. */
const struct lset *atel__absent_labels(struct query *q, const struct atel_promql_node *arg)
{
	arg = unparen(arg);
	if (arg->kind == ATEL_PROMQL_MATRIX_SEL)
		arg = arg->matrix.sel;
	if (arg->kind != ATEL_PROMQL_SELECTOR)
		return q->empty;
	struct lbuild b;
	lb_init(&b, q, q->empty);
	const char **seen = q_alloc(q, (arg->sel.nmatchers + 1) * sizeof(*seen));
	size_t nseen = 0;
	for (size_t i = 0; i < arg->sel.nmatchers; i++) {
		const struct atel_promql_matcher *m = &arg->sel.matchers[i];
		if (!strcmp(m->name, "__name__"))
			continue;
		bool has = false;
		for (size_t k = 0; k < nseen; k++)
			has |= !strcmp(seen[k], m->name);
		if (m->op == ATEL_PROMQL_MATCH_EQ && !has) {
			lb_set(&b, m->name, m->value);
			seen[nseen++] = m->name;
		} else {
			lb_del(&b, m->name);
		}
	}
	q_free(q, seen);
	return lb_done(&b);
}

static void absent_over_time_finish(struct evaluator *ev, const struct atel_promql_node *call, struct matrix *mat)
{
	struct query *q = ev->q;
	size_t steps = num_steps(ev);
	for (size_t i = 0; i < mat->n; i++)
		if (mat->s[i].n == steps) {
			mat_free(q, mat);
			return;
		}
	bool *found = q_zalloc(q, steps);
	size_t nfound = 0;
	for (size_t i = 0; i < mat->n; i++)
		for (size_t k = 0; k < mat->s[i].n; k++) {
			size_t st = (size_t)((mat->s[i].pts[k].t - ev->start) / ev->interval);
			if (!found[st])
				found[st] = true, nfound++;
		}
	mat_free(q, mat);
	if (nfound == steps) {
		q_free(q, found);
		return;
	}
	/* Prometheus uses the matrix argument as written; for a subquery that is
	 * an evaluated selector without matchers: no labels. */
	const struct atel_promql_node *arg = unparen(call->call.args[0]);
	const struct lset *ls = arg->kind == ATEL_PROMQL_MATRIX_SEL ? atel__absent_labels(q, arg) : q->empty;
	struct series *s = mat_add(q, mat, ls, true);
	size_t st = 0;
	for (int64_t ts = ev->start; ts <= ev->end; ts += ev->interval, st++) {
		if (!found[st])
			series_push(q, s, ts, 1);
		if (ts > INT64_MAX - ev->interval)
			break;
	}
	q_free(q, found);
}

/* timestamp(selector): the sample's own time (rangeEvalTimestampFunctionOverVectorSelector). */
static struct matrix eval_call(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	int id = n->call.func_id;
	if (id == F_TIMESTAMP) {
		const struct atel_promql_node *a = unparen(n->call.args[0]);
		if (a->kind == ATEL_PROMQL_SELECTOR)
			return eval_selector(ev, a, true);
	}
	if (id == F_LABEL_REPLACE)
		return eval_label_replace(ev, n);
	if (id == F_LABEL_JOIN)
		return eval_label_join(ev, n);
	for (size_t i = 0; i < n->call.nargs; i++) {
		const struct atel_promql_node *a = unparen(n->call.args[i]);
		if (a->kind == ATEL_PROMQL_MATRIX_SEL || a->kind == ATEL_PROMQL_SUBQUERY)
			return eval_range_call(ev, n, i);
	}
	/* One input per argument (string arguments stay empty: functions read them from the tree). */
	struct matrix *in = q_zalloc(q, (n->call.nargs + 1) * sizeof(*in));
	for (size_t i = 0; i < n->call.nargs; i++)
		if (atel_promql_node_type(n->call.args[i]) != ATEL_PROMQL_STRING)
			in[i] = eval(ev, n->call.args[i]);
	struct vcall_ctx c = { n, id, n->call.nargs };
	struct matrix out = range_eval(ev, call_step, &c, in, n->call.nargs, false);
	q_free(q, in);
	return out;
}

static struct matrix eval_label_replace(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	const char *dst = string_arg(n->call.args[1]);
	const char *repl = string_arg(n->call.args[2]);
	const char *src = string_arg(n->call.args[3]);
	const char *restr = string_arg(n->call.args[4]);
	struct atel__re *re = q_zalloc(q, sizeof(*re));
	char msg[300];
	int rc = atel__re_compile(re, restr, msg, sizeof(msg));
	if (rc == -ENOMEM)
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, rc, "out of memory");
	if (rc)
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid regular expression in label_replace(): %s", restr);
	if (q->nres == q->capres) {
		q->capres = q->capres ? q->capres * 2 : 4;
		q->res = q_realloc(q, q->res, q->capres * sizeof(*q->res));
	}
	q->res[q->nres++] = re;
	if (!atel__promql_legacy_name(dst))
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid destination label name in label_replace(): %s", dst);
	struct matrix m = eval(ev, n->call.args[0]);
	for (size_t i = 0; i < m.n; i++) {
		const char *v = ls_get(m.s[i].ls, src);
		char *res = NULL;
		rc = atel__re_replace(re, v ? v : "", repl, &res);
		if (rc < 0)
			q_fail(q, ATEL_PROMQL_ERR_INTERNAL, rc, "out of memory");
		if (rc == 0)
			continue;
		struct lbuild b;
		lb_init(&b, q, m.s[i].ls);
		lb_set(&b, dst, res);
		free(res);
		m.s[i].ls = lb_done(&b);
		if (!strcmp(dst, "__name__"))
			m.s[i].drop_name = false;
	}
	struct pmap seen = { 0 };
	for (size_t i = 0; i < m.n; i++) {
		bool fresh;
		pmap_put(q, &seen, m.s[i].ls, &fresh);
		if (!fresh)
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "vector cannot contain metrics with the same labelset");
	}
	pmap_free(q, &seen);
	return m;
}

static struct matrix eval_label_join(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	const char *dst = string_arg(n->call.args[1]);
	const char *sep = string_arg(n->call.args[2]);
	size_t nsrc = n->call.nargs - 3;
	for (size_t i = 0; i < nsrc; i++) {
		const char *s = string_arg(n->call.args[3 + i]);
		if (!atel__promql_utf8_name(s))
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid source label name in label_join(): %s", s);
	}
	if (!atel__promql_utf8_name(dst))
		q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid destination label name in label_join(): %s", dst);
	struct matrix m = eval(ev, n->call.args[0]);
	struct atel__sbuf b;
	for (size_t i = 0; i < m.n; i++) {
		size_t need = 1;
		for (int pass = 0; pass < 2; pass++) {
			char *buf = pass ? q_alloc(q, need) : NULL;
			if (buf)
				buf[0] = 0;
			b = (struct atel__sbuf){ buf, pass ? need : 0, 0 };
			for (size_t k = 0; k < nsrc; k++) {
				if (k)
					atel__sbuf_puts(&b, sep);
				const char *v = ls_get(m.s[i].ls, string_arg(n->call.args[3 + k]));
				atel__sbuf_puts(&b, v ? v : "");
			}
			if (!pass) {
				need = b.pos + 1;
				continue;
			}
			struct lbuild lb;
			lb_init(&lb, q, m.s[i].ls);
			lb_set(&lb, dst, buf);
			m.s[i].ls = lb_done(&lb);
			q_free(q, buf);
		}
		if (!strcmp(dst, "__name__"))
			m.s[i].drop_name = false;
	}
	return m;
}

/* ---- aggregation ---- */

struct group {
	double value, mean, kahan, count;
	bool seen, incremental;
	double *vals;          /* quantile */
	size_t nvals, capvals;
	struct sample *heap;   /* topk, bottomk, limitk, limit_ratio */
	size_t nheap, capheap;
};

/* Go's container/heap with the Less of vectorByValueHeap (rev: vectorByReverseValueHeap). */
static bool heap_less(const struct sample *h, size_t i, size_t j, bool rev)
{
	double vi = h[i].v, vj = h[j].v;
	if (isnan(vi))
		return true;
	return rev ? vi > vj : vi < vj;
}

static void heap_swap(struct sample *h, size_t i, size_t j)
{
	struct sample t = h[i];
	h[i] = h[j];
	h[j] = t;
}

static void heap_up(struct sample *h, size_t j, bool rev)
{
	while (j > 0) {
		size_t i = (j - 1) / 2;
		if (i == j || !heap_less(h, j, i, rev))
			break;
		heap_swap(h, i, j);
		j = i;
	}
}

static bool heap_down(struct sample *h, size_t i0, size_t n, bool rev)
{
	size_t i = i0;
	for (;;) {
		size_t j1 = 2 * i + 1;
		if (j1 >= n)
			break;
		size_t j = j1;
		if (j1 + 1 < n && heap_less(h, j1 + 1, j1, rev))
			j = j1 + 1;
		if (!heap_less(h, j, i, rev))
			break;
		heap_swap(h, i, j);
		i = j;
	}
	return i > i0;
}

static void heap_push(struct query *q, struct group *g, const struct sample *s, bool rev)
{
	if (g->nheap == g->capheap) {
		g->capheap = g->capheap ? g->capheap * 2 : 4;
		g->heap = q_realloc(q, g->heap, g->capheap * sizeof(*g->heap));
	}
	g->heap[g->nheap++] = *s;
	heap_up(g->heap, g->nheap - 1, rev);
}

static void heap_fix0(struct group *g, bool rev)
{
	if (!heap_down(g->heap, 0, g->nheap, rev))
		heap_up(g->heap, 0, rev);
}

/* Stable insertion sort by "reverse of less" (sort.Reverse) for the final order. */
static void heap_sort_reverse(struct sample *h, size_t n, bool rev)
{
	for (size_t i = 1; i < n; i++) {
		struct sample x = h[i];
		size_t j = i;
		while (j > 0) {
			/* sort.Reverse: x goes before h[j-1] when Less(h[j-1], x) strictly */
			struct sample pair[2] = { h[j - 1], x };
			if (!heap_less(pair, 0, 1, rev) || heap_less(pair, 1, 0, rev))
				break;
			h[j] = h[j - 1];
			j--;
		}
		h[j] = x;
	}
}

static bool convertible_to_int64(double v)
{
	return v <= 9223372036854774784.0 && v >= -9223372036854775808.0;
}

static bool ratio_sample(const struct sample *s, double r)
{
	double off = (double)ls_content_hash(s->ls) / 18446744073709551615.0;
	return (r >= 0 && off < r) || (r < 0 && off >= 1.0 + r);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct lset *grouping_labels(struct query *q, const struct lset *ls, const char *const *grouping,
					  size_t ng, bool without)
{
	struct lbuild b;
	if (without) {
		lb_init(&b, q, ls);
		for (size_t i = 0; i < ng; i++)
			lb_del(&b, grouping[i]);
		lb_del(&b, "__name__");
		return lb_done(&b);
	}
	if (ng == 0)
		return q->empty;
	lb_init(&b, q, ls);
	lb_keep(&b, grouping, ng);
	return lb_done(&b);
}

struct cv_ctx {
	const struct atel_promql_node *node;
	const char *const *grouping;
	size_t ng;
	const char *label;
};

static void count_values_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			      struct vector *out)
{
	(void)idx;
	struct query *q = ev->q;
	struct cv_ctx *c = ctx;
	struct pmap groups = { 0 };
	for (size_t i = 0; i < in[0].n; i++) {
		char val[64];
		atel__promql_format_float_f(in[0].s[i].v, val, sizeof(val));
		struct lbuild b;
		lb_init(&b, q, in[0].s[i].ls);
		lb_set(&b, c->label, val);
		const struct lset *m = lb_done(&b);
		const struct lset *g = grouping_labels(q, m, c->grouping, c->ng, c->node->agg.without);
		bool fresh;
		size_t *slot = pmap_put(q, &groups, g, &fresh);
		if (fresh) {
			*slot = out->n;
			vec_push(q, out, g, ts, 1, false);
		} else {
			out->s[*slot].v++;
		}
	}
	pmap_free(q, &groups);
}

static struct matrix eval_aggregate(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	enum atel_promql_agg op = n->agg.op;
	size_t ng = n->agg.ngrouping;
	const char **grouping = q_alloc(q, (ng + 1) * sizeof(*grouping));
	for (size_t i = 0; i < ng; i++)
		grouping[i] = n->agg.grouping[i];
	qsort(grouping, ng, sizeof(*grouping), cmp_str);

	if (op == ATEL_PROMQL_AGG_COUNT_VALUES) {
		const char *label = string_arg(n->agg.param);
		if (!atel__promql_utf8_name(label))
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "invalid label name \"%s\"", label);
		if (!n->agg.without) {
			grouping[ng++] = label;
			qsort(grouping, ng, sizeof(*grouping), cmp_str);
		}
		struct cv_ctx c = { n, grouping, ng, label };
		struct matrix in = eval(ev, n->agg.expr);
		struct matrix out = range_eval(ev, count_values_step, &c, &in, 1, false);
		q_free(q, grouping);
		return out;
	}

	double param = 0;
	if (n->agg.param) {
		struct matrix pm = eval(ev, n->agg.param);
		/* Prometheus v3.0 takes the parameter's first value for all steps. */
		param = pm.n && pm.s[0].n ? pm.s[0].pts[0].v : NAN;
		mat_free(q, &pm);
	}
	struct matrix in = eval(ev, n->agg.expr);

	bool kind_k = op == ATEL_PROMQL_AGG_TOPK || op == ATEL_PROMQL_AGG_BOTTOMK || op == ATEL_PROMQL_AGG_LIMITK ||
		      op == ATEL_PROMQL_AGG_LIMIT_RATIO;
	/* Group index of each input series; output series per group. */
	size_t *gidx = q_alloc(q, (in.n + 1) * sizeof(*gidx));
	struct pmap bykey = { 0 };
	struct matrix out = { 0 };
	size_t ngroups = 0;
	for (size_t i = 0; i < in.n; i++) {
		const struct lset *key = grouping_labels(q, in.s[i].ls, grouping, ng, n->agg.without);
		bool fresh;
		size_t *slot = pmap_put(q, &bykey, key, &fresh);
		if (fresh) {
			*slot = ngroups++;
			if (!kind_k)
				mat_add(q, &out, key, false);
		}
		gidx[i] = *slot;
	}
	pmap_free(q, &bykey);
	struct group *groups = q_zalloc(q, (ngroups + 1) * sizeof(*groups));
	size_t *cur = q_zalloc(q, (in.n + 1) * sizeof(*cur));

	long long k = 0;
	double ratio = 0;
	bool empty = false;
	switch (op) {
	case ATEL_PROMQL_AGG_TOPK:
	case ATEL_PROMQL_AGG_BOTTOMK:
	case ATEL_PROMQL_AGG_LIMITK:
		if (!convertible_to_int64(param)) {
			char v[64];
			atel__promql_format_float(param, v, sizeof(v));
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "Scalar value %s overflows int64", v);
		}
		k = (long long)param;
		if (k > (long long)in.n)
			k = (long long)in.n;
		if (k < 1)
			empty = true;
		break;
	case ATEL_PROMQL_AGG_LIMIT_RATIO:
		if (isnan(param))
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "Ratio value NaN is NaN");
		if (param == 0) {
			empty = true;
		} else if (param < -1.0 || param > 1.0) {
			char v[64], to[32];
			atel__promql_format_float(param, v, sizeof(v));
			ratio = param < -1.0 ? -1.0 : 1.0;
			snprintf(to, sizeof(to), "%g", ratio);
			q_annotate(q, false, n->agg.param, "PromQL warning: ratio value should be between -1 and 1, got %s, capping to %s",
				   v, to);
		} else {
			ratio = param;
		}
		break;
	case ATEL_PROMQL_AGG_QUANTILE:
		if (isnan(param) || param < 0 || param > 1) {
			char v[64];
			atel__promql_format_float(param, v, sizeof(v));
			q_annotate(q, false, n->agg.param, "PromQL warning: quantile value should be between 0 and 1, got %s", v);
		}
		break;
	default:
		break;
	}
	bool instant = ev->start == ev->end;
	struct pmap kseries = { 0 };
	for (int64_t ts = ev->start; !empty && ts <= ev->end; ts += ev->interval) {
		q_check(q);
		for (size_t g = 0; g < ngroups; g++) {
			groups[g].seen = false;
			groups[g].nvals = 0;
			groups[g].nheap = 0;
		}
		for (size_t si = 0; si < in.n; si++) {
			struct series *s = &in.s[si];
			if (cur[si] >= s->n || s->pts[cur[si]].t != ts)
				continue;
			double f = s->pts[cur[si]++].v;
			struct group *g = &groups[gidx[si]];
			if (kind_k) {
				struct sample smp = { s->ls, ts, f, s->drop_name };
				if (!g->seen) {
					g->seen = true;
					g->nheap = 0;
					if (op == ATEL_PROMQL_AGG_LIMIT_RATIO) {
						if (ratio_sample(&smp, ratio))
							heap_push(q, g, &smp, false);
					} else {
						heap_push(q, g, &smp, op == ATEL_PROMQL_AGG_BOTTOMK);
					}
					continue;
				}
				switch (op) {
				case ATEL_PROMQL_AGG_TOPK:
					if ((long long)g->nheap < k)
						heap_push(q, g, &smp, false);
					else if (g->heap[0].v < f || (isnan(g->heap[0].v) && !isnan(f))) {
						g->heap[0] = smp;
						if (k > 1)
							heap_fix0(g, false);
					}
					break;
				case ATEL_PROMQL_AGG_BOTTOMK:
					if ((long long)g->nheap < k)
						heap_push(q, g, &smp, true);
					else if (g->heap[0].v > f || (isnan(g->heap[0].v) && !isnan(f))) {
						g->heap[0] = smp;
						if (k > 1)
							heap_fix0(g, true);
					}
					break;
				case ATEL_PROMQL_AGG_LIMITK:
					if ((long long)g->nheap < k)
						heap_push(q, g, &smp, false);
					break;
				default: /* LIMIT_RATIO */
					if (ratio_sample(&smp, ratio))
						heap_push(q, g, &smp, false);
					break;
				}
				continue;
			}
			if (!g->seen) {
				g->seen = true;
				g->value = f;
				g->mean = f;
				g->kahan = 0;
				g->count = 1;
				g->incremental = false;
				switch (op) {
				case ATEL_PROMQL_AGG_STDVAR:
				case ATEL_PROMQL_AGG_STDDEV:
					g->value = isnan(f) || isinf(f) ? NAN : 0;
					break;
				case ATEL_PROMQL_AGG_QUANTILE:
					g->nvals = 0;
					if (g->capvals == 0) {
						g->capvals = 4;
						g->vals = q_realloc(q, g->vals, g->capvals * sizeof(double));
					}
					g->vals[g->nvals++] = f;
					break;
				case ATEL_PROMQL_AGG_GROUP:
					g->value = 1;
					break;
				default:
					break;
				}
				continue;
			}
			switch (op) {
			case ATEL_PROMQL_AGG_SUM:
				g->value = kahan_inc(f, g->value, &g->kahan);
				break;
			case ATEL_PROMQL_AGG_AVG:
				g->count++;
				if (!g->incremental) {
					double c = g->kahan;
					double nv = kahan_inc(f, g->value, &c);
					if (!isinf(nv)) {
						g->value = nv;
						g->kahan = c;
						break;
					}
					/* The sum would overflow: continue with an incremental mean. */
					g->incremental = true;
					g->mean = g->value / (g->count - 1);
					g->kahan /= g->count - 1;
				}
				if (isinf(g->mean)) {
					if (isinf(f) && (g->mean > 0) == (f > 0))
						break;
					if (!isinf(f) && !isnan(f))
						break;
				}
				{
					double cm = g->mean + g->kahan;
					g->mean = kahan_inc(f / g->count - cm / g->count, g->mean, &g->kahan);
				}
				break;
			case ATEL_PROMQL_AGG_GROUP:
				break;
			case ATEL_PROMQL_AGG_MAX:
				if (g->value < f || isnan(g->value))
					g->value = f;
				break;
			case ATEL_PROMQL_AGG_MIN:
				if (g->value > f || isnan(g->value))
					g->value = f;
				break;
			case ATEL_PROMQL_AGG_COUNT:
				g->count++;
				break;
			case ATEL_PROMQL_AGG_STDVAR:
			case ATEL_PROMQL_AGG_STDDEV: {
				g->count++;
				double delta = f - g->mean;
				g->mean += delta / g->count;
				g->value += delta * (f - g->mean);
				break;
			}
			case ATEL_PROMQL_AGG_QUANTILE:
				if (g->nvals == g->capvals) {
					g->capvals *= 2;
					g->vals = q_realloc(q, g->vals, g->capvals * sizeof(double));
				}
				g->vals[g->nvals++] = f;
				break;
			default:
				break;
			}
		}
		if (kind_k) {
			for (size_t gi = 0; gi < ngroups; gi++) {
				struct group *g = &groups[gi];
				if (!g->seen)
					continue;
				if (op == ATEL_PROMQL_AGG_TOPK && g->nheap > 1)
					heap_sort_reverse(g->heap, g->nheap, false);
				else if (op == ATEL_PROMQL_AGG_BOTTOMK && g->nheap > 1)
					heap_sort_reverse(g->heap, g->nheap, true);
				for (size_t h = 0; h < g->nheap; h++) {
					const struct sample *smp = &g->heap[h];
					if (instant) {
						struct series *s = mat_add(q, &out, smp->ls, smp->drop_name);
						series_push(q, s, ts, smp->v);
						continue;
					}
					bool fresh;
					size_t *slot = pmap_put(q, &kseries, smp->ls, &fresh);
					if (fresh) {
						*slot = out.n;
						mat_add(q, &out, smp->ls, smp->drop_name);
					}
					series_push(q, &out.s[*slot], ts, smp->v);
				}
			}
		} else {
			for (size_t gi = 0; gi < ngroups; gi++) {
				struct group *g = &groups[gi];
				if (!g->seen)
					continue;
				double v = g->value;
				switch (op) {
				case ATEL_PROMQL_AGG_AVG:
					v = g->incremental ? g->mean + g->kahan : (g->value + g->kahan) / g->count;
					break;
				case ATEL_PROMQL_AGG_COUNT:
					v = g->count;
					break;
				case ATEL_PROMQL_AGG_STDVAR:
					v = g->value / g->count;
					break;
				case ATEL_PROMQL_AGG_STDDEV:
					v = sqrt(g->value / g->count);
					break;
				case ATEL_PROMQL_AGG_QUANTILE:
					v = quantile_of(param, g->vals, g->nvals);
					break;
				case ATEL_PROMQL_AGG_SUM:
					v = g->value + g->kahan;
					break;
				default:
					break;
				}
				series_push(q, &out.s[gi], ts, v);
				/* As upstream: the flag is taken from input series gi (sic). */
				out.s[gi].drop_name = in.s[gi].drop_name;
			}
		}
		if (instant && kind_k)
			break;
		if (ts > INT64_MAX - ev->interval)
			break;
	}
	for (size_t g = 0; g < ngroups; g++) {
		q_free(q, groups[g].vals);
		q_free(q, groups[g].heap);
	}
	q_free(q, groups);
	q_free(q, cur);
	q_free(q, gidx);
	q_free(q, grouping);
	pmap_free(q, &kseries);
	mat_free(q, &in);
	mat_compact(q, &out);
	return out;
}

/* ---- binary operations ---- */

static bool is_comparison(enum atel_promql_op op)
{
	return op >= ATEL_PROMQL_OP_EQLC && op <= ATEL_PROMQL_OP_LTE;
}

static bool drops_name(enum atel_promql_op op)
{
	return op <= ATEL_PROMQL_OP_ATAN2;
}

static double scalar_binop(enum atel_promql_op op, double l, double r)
{
	switch (op) {
	case ATEL_PROMQL_OP_ADD: return l + r;
	case ATEL_PROMQL_OP_SUB: return l - r;
	case ATEL_PROMQL_OP_MUL: return l * r;
	case ATEL_PROMQL_OP_DIV: return l / r;
	case ATEL_PROMQL_OP_POW: return pow(l, r);
	case ATEL_PROMQL_OP_MOD: return fmod(l, r);
	case ATEL_PROMQL_OP_EQLC: return l == r;
	case ATEL_PROMQL_OP_NEQ: return l != r;
	case ATEL_PROMQL_OP_GTR: return l > r;
	case ATEL_PROMQL_OP_LSS: return l < r;
	case ATEL_PROMQL_OP_GTE: return l >= r;
	case ATEL_PROMQL_OP_LTE: return l <= r;
	case ATEL_PROMQL_OP_ATAN2: return atan2(l, r);
	default: return NAN;
	}
}

/* vectorElemBinop for floats: the value and whether a comparison keeps it. */
static double elem_binop(enum atel_promql_op op, double l, double r, bool *keep)
{
	*keep = true;
	switch (op) {
	case ATEL_PROMQL_OP_EQLC: *keep = l == r; return l;
	case ATEL_PROMQL_OP_NEQ: *keep = l != r; return l;
	case ATEL_PROMQL_OP_GTR: *keep = l > r; return l;
	case ATEL_PROMQL_OP_LSS: *keep = l < r; return l;
	case ATEL_PROMQL_OP_GTE: *keep = l >= r; return l;
	case ATEL_PROMQL_OP_LTE: *keep = l <= r; return l;
	default: return scalar_binop(op, l, r);
	}
}

struct binop_ctx {
	const struct atel_promql_node *node;
	const struct lset **sig[2];   /* per input series */
	bool lhs_scalar, rhs_scalar;
};

static void scalar_scalar_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			       struct vector *out)
{
	(void)idx;
	struct binop_ctx *c = ctx;
	if (!in[0].n || !in[1].n)
		return;
	vec_push(ev->q, out, ev->q->empty, ts, scalar_binop(c->node->binary.op, in[0].s[0].v, in[1].s[0].v), false);
}

static void vector_scalar_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			       struct vector *out)
{
	(void)idx;
	struct binop_ctx *c = ctx;
	const struct atel_promql_node *n = c->node;
	bool swap = c->lhs_scalar;
	struct vector *vec = swap ? &in[1] : &in[0];
	struct vector *sc = swap ? &in[0] : &in[1];
	if (!sc->n)
		return;
	double rv = sc->s[0].v;
	enum atel_promql_op op = n->binary.op;
	for (size_t i = 0; i < vec->n; i++) {
		struct sample s = vec->s[i];
		double lf = s.v, rf = rv;
		if (swap)
			lf = rv, rf = s.v;
		bool keep;
		double v = elem_binop(op, lf, rf, &keep);
		/* With the scalar on the left of a comparison, the vector's value stays. */
		if (is_comparison(op) && swap)
			v = rf;
		if (n->binary.return_bool) {
			v = keep ? 1.0 : 0.0;
			keep = true;
		}
		if (!keep)
			continue;
		if (drops_name(op) || n->binary.return_bool)
			s.drop_name = true;
		vec_push(ev->q, out, s.ls, ts, v, s.drop_name);
	}
}

/* The match signature of a series: on(...) labels, or all but ignoring(...) and __name__. */
static const struct lset *signature(struct query *q, const struct lset *ls, const struct atel_promql_node *n)
{
	struct lbuild b;
	lb_init(&b, q, ls);
	if (n->binary.on) {
		lb_keep(&b, n->binary.match_labels, n->binary.nmatch_labels);
	} else {
		lb_del(&b, "__name__");
		for (size_t i = 0; i < n->binary.nmatch_labels; i++)
			lb_del(&b, n->binary.match_labels[i]);
	}
	return lb_done(&b);
}

static const struct lset *result_metric(struct query *q, const struct lset *lhs, const struct lset *rhs,
					const struct atel_promql_node *n)
{
	struct lbuild b;
	lb_init(&b, q, lhs);
	if (drops_name(n->binary.op))
		lb_del(&b, "__name__");
	if (n->binary.card == ATEL_PROMQL_ONE_TO_ONE) {
		if (n->binary.on) {
			lb_keep(&b, n->binary.match_labels, n->binary.nmatch_labels);
		} else {
			for (size_t i = 0; i < n->binary.nmatch_labels; i++)
				lb_del(&b, n->binary.match_labels[i]);
		}
	}
	for (size_t i = 0; i < n->binary.ninclude; i++) {
		const char *v = ls_get(rhs, n->binary.include[i]);
		if (v && *v)
			lb_set(&b, n->binary.include[i], v);
		else
			lb_del(&b, n->binary.include[i]);
	}
	return lb_done(&b);
}

static void set_op_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			struct vector *out)
{
	(void)ts;
	struct query *q = ev->q;
	struct binop_ctx *c = ctx;
	struct vector *l = &in[0], *r = &in[1];
	enum atel_promql_op op = c->node->binary.op;
	struct pmap sigs = { 0 };
	bool fresh;
	switch (op) {
	case ATEL_PROMQL_OP_AND:
		if (!l->n || !r->n)
			return;
		for (size_t j = 0; j < r->n; j++)
			pmap_put(q, &sigs, c->sig[1][idx[1][j]], &fresh);
		for (size_t i = 0; i < l->n; i++)
			if (pmap_get(&sigs, c->sig[0][idx[0][i]]))
				vec_push(q, out, l->s[i].ls, l->s[i].t, l->s[i].v, l->s[i].drop_name);
		break;
	case ATEL_PROMQL_OP_OR:
		for (size_t i = 0; i < l->n; i++) {
			if (r->n)
				pmap_put(q, &sigs, c->sig[0][idx[0][i]], &fresh);
			vec_push(q, out, l->s[i].ls, l->s[i].t, l->s[i].v, l->s[i].drop_name);
		}
		for (size_t j = 0; j < r->n; j++)
			if (!l->n || !pmap_get(&sigs, c->sig[1][idx[1][j]]))
				vec_push(q, out, r->s[j].ls, r->s[j].t, r->s[j].v, r->s[j].drop_name);
		break;
	default: /* UNLESS */
		for (size_t j = 0; j < r->n && l->n; j++)
			pmap_put(q, &sigs, c->sig[1][idx[1][j]], &fresh);
		for (size_t i = 0; i < l->n; i++)
			if (!r->n || !pmap_get(&sigs, c->sig[0][idx[0][i]]))
				vec_push(q, out, l->s[i].ls, l->s[i].t, l->s[i].v, l->s[i].drop_name);
		break;
	}
	pmap_free(q, &sigs);
}

static void vector_vector_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			       struct vector *out)
{
	struct query *q = ev->q;
	struct binop_ctx *c = ctx;
	const struct atel_promql_node *n = c->node;
	struct vector *lhs = &in[0], *rhs = &in[1];
	const struct lset **lsig = c->sig[0], **rsig = c->sig[1];
	size_t *lidx = idx[0], *ridx = idx[1];
	if (!lhs->n || !rhs->n)
		return;
	bool one_to_many = n->binary.card == ATEL_PROMQL_ONE_TO_MANY;
	if (one_to_many) {
		struct vector *t = lhs;
		lhs = rhs, rhs = t;
		const struct lset **ts2 = lsig;
		lsig = rsig, rsig = ts2;
		size_t *ti = lidx;
		lidx = ridx, ridx = ti;
	}
	struct pmap right = { 0 };
	for (size_t j = 0; j < rhs->n; j++) {
		bool fresh;
		size_t *slot = pmap_put(q, &right, rsig[ridx[j]], &fresh);
		if (!fresh) {
			char a[300], b[300], m[300];
			const struct sample *dup = &rhs->s[*slot];
			struct lbuild lb;
			lb_init(&lb, q, rhs->s[j].ls);
			if (n->binary.on)
				lb_keep(&lb, n->binary.match_labels, n->binary.nmatch_labels);
			else {
				lb_del(&lb, "__name__");
				for (size_t k = 0; k < n->binary.nmatch_labels; k++)
					lb_del(&lb, n->binary.match_labels[k]);
			}
			ls_format(lb_done(&lb), m, sizeof(m));
			ls_format(rhs->s[j].ls, a, sizeof(a));
			ls_format(dup->ls, b, sizeof(b));
			q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL,
			       "found duplicate series for the match group %s on the %s hand-side of the operation: [%s, %s];many-to-many matching not allowed: matching labels must be unique on one side",
			       m, one_to_many ? "left" : "right", a, b);
		}
		*slot = j;
	}
	/* matched signatures: one-to-one: seen; many-to-one: result label sets per signature */
	struct pmap matched = { 0 };
	struct pmap *inserted = NULL; /* per matched signature (many-to-one) */
	size_t ninserted = 0;
	for (size_t i = 0; i < lhs->n; i++) {
		const struct lset *sig = lsig[lidx[i]];
		size_t *rs = pmap_get(&right, sig);
		if (!rs)
			continue;
		const struct sample *ls = &lhs->s[i], *r = &rhs->s[*rs];
		double fl = ls->v, fr = r->v;
		if (one_to_many)
			fl = r->v, fr = ls->v;
		bool keep;
		double v = elem_binop(n->binary.op, fl, fr, &keep);
		if (n->binary.return_bool)
			v = keep ? 1.0 : 0.0;
		else if (!keep)
			continue;
		const struct lset *metric = result_metric(q, ls->ls, r->ls, n);
		bool fresh;
		size_t *m = pmap_put(q, &matched, sig, &fresh);
		if (n->binary.card == ATEL_PROMQL_ONE_TO_ONE) {
			if (!fresh)
				q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL,
				       "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)");
		} else {
			if (fresh) {
				inserted = q_realloc(q, inserted, (ninserted + 1) * sizeof(*inserted));
				memset(&inserted[ninserted], 0, sizeof(*inserted));
				*m = ninserted++;
			}
			bool f2;
			pmap_put(q, &inserted[*m], metric, &f2);
			if (!f2)
				q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL,
				       "multiple matches for labels: grouping labels must ensure unique matches");
		}
		vec_push(q, out, metric, ts, v, n->binary.return_bool);
	}
	for (size_t i = 0; i < ninserted; i++)
		pmap_free(q, &inserted[i]);
	q_free(q, inserted);
	pmap_free(q, &matched);
	pmap_free(q, &right);
}

static struct matrix eval_binary(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	enum atel_promql_vtype lt = atel_promql_node_type(n->binary.lhs);
	enum atel_promql_vtype rt = atel_promql_node_type(n->binary.rhs);
	struct matrix in[2];
	in[0] = eval(ev, n->binary.lhs);
	in[1] = eval(ev, n->binary.rhs);
	struct binop_ctx c = { .node = n, .lhs_scalar = lt == ATEL_PROMQL_SCALAR, .rhs_scalar = rt == ATEL_PROMQL_SCALAR };
	if (lt == ATEL_PROMQL_SCALAR && rt == ATEL_PROMQL_SCALAR)
		return range_eval(ev, scalar_scalar_step, &c, in, 2, false);
	if (lt == ATEL_PROMQL_SCALAR || rt == ATEL_PROMQL_SCALAR)
		return range_eval(ev, vector_scalar_step, &c, in, 2, false);
	for (int s = 0; s < 2; s++) {
		c.sig[s] = q_alloc(q, (in[s].n + 1) * sizeof(*c.sig[s]));
		for (size_t i = 0; i < in[s].n; i++)
			c.sig[s][i] = signature(q, in[s].s[i].ls, n);
	}
	bool set = n->binary.op == ATEL_PROMQL_OP_AND || n->binary.op == ATEL_PROMQL_OP_OR ||
		   n->binary.op == ATEL_PROMQL_OP_UNLESS;
	struct matrix out = range_eval(ev, set ? set_op_step : vector_vector_step, &c, in, 2, true);
	q_free(q, c.sig[0]);
	q_free(q, c.sig[1]);
	return out;
}

/* ---- the dispatcher ---- */

static void number_step(struct evaluator *ev, void *ctx, struct vector *in, size_t **idx, int64_t ts,
			struct vector *out)
{
	(void)in, (void)idx;
	vec_push(ev->q, out, ev->q->empty, ts, *(const double *)ctx, false);
}

static struct matrix eval(struct evaluator *ev, const struct atel_promql_node *n)
{
	struct query *q = ev->q;
	q_check(q);
	switch (n->kind) {
	case ATEL_PROMQL_AGGREGATE:
		return eval_aggregate(ev, n);
	case ATEL_PROMQL_CALL:
		return eval_call(ev, n);
	case ATEL_PROMQL_PAREN:
		return eval(ev, n->paren.expr);
	case ATEL_PROMQL_UNARY: {
		struct matrix m = eval(ev, n->unary.expr);
		if (n->unary.op == ATEL_PROMQL_OP_SUB)
			for (size_t i = 0; i < m.n; i++) {
				m.s[i].drop_name = true;
				for (size_t k = 0; k < m.s[i].n; k++)
					m.s[i].pts[k].v = -m.s[i].pts[k].v;
			}
		return m;
	}
	case ATEL_PROMQL_BINARY:
		return eval_binary(ev, n);
	case ATEL_PROMQL_NUMBER:
		return range_eval(ev, number_step, (void *)&n->number, NULL, 0, false);
	case ATEL_PROMQL_STRING_LIT:
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "a string is not a vector");
	case ATEL_PROMQL_SELECTOR:
		return eval_selector(ev, n, false);
	case ATEL_PROMQL_MATRIX_SEL:
		return eval_matrix_selector(ev, n);
	case ATEL_PROMQL_SUBQUERY:
		return eval_subquery(ev, n);
	}
	q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -EINVAL, "unhandled expression");
}

/* ---- entry points ------------------------------------------------------------------------------- */

struct result_impl {
	struct atel_promql_result pub;
	struct query *q;
	struct atel_promql_series *series;
	const char **warnings, **infos;
};

static void query_destroy(struct query *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->nres; i++)
		atel__re_free(q->res[i]);
	q_free_all(q);
	atel__arena_free(&q->arena);
	free(q);
}

void atel_promql_result_free(struct atel_promql_result *r)
{
	if (!r)
		return;
	struct result_impl *ri = (struct result_impl *)r;
	query_destroy(ri->q);
	free(ri->series);
	free(ri->warnings);
	free(ri->infos);
	free(ri);
}

static int cmp_series(const void *a, const void *b)
{
	return ls_cmp(((const struct series *)a)->ls, ((const struct series *)b)->ls);
}

static int run(const struct atel_promql_expr *e, const struct atel_promql_storage *st,
	       const struct atel_promql_opts *opts, int64_t start, int64_t end, int64_t step, bool instant,
	       struct atel_promql_result **out, struct atel_promql_error *err)
{
	struct atel_promql_error dummy;
	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	*out = NULL;
	enum atel_promql_vtype type = atel_promql_node_type(e->root);
	if (start < -ATEL_PROMQL_MAX_TIME_MS || start > ATEL_PROMQL_MAX_TIME_MS || end < -ATEL_PROMQL_MAX_TIME_MS ||
	    end > ATEL_PROMQL_MAX_TIME_MS) {
		snprintf(err->msg, sizeof(err->msg), "time out of range: more than 2^61 ms from the epoch");
		err->type = ATEL_PROMQL_ERR_BAD_DATA;
		err->code = -EINVAL;
		return -EINVAL;
	}
	if (!instant) {
		const char *why = NULL;
		if (type != ATEL_PROMQL_VECTOR && type != ATEL_PROMQL_SCALAR) {
			snprintf(err->msg, sizeof(err->msg),
				 "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
				 type == ATEL_PROMQL_MATRIX ? "range vector" : "string");
			why = err->msg;
		} else if (step <= 0) {
			why = "zero or negative query resolution step widths are not accepted. Try a positive integer";
		} else if (end < start) {
			why = "end timestamp must not be before start time";
		} else if ((uint64_t)((end - start) / step) > (opts && opts->max_steps ? opts->max_steps : DEFAULT_MAX_STEPS)) {
			/* as the API's check: more than max_steps intervals */
			why = "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)";
		}
		if (why) {
			if (why != err->msg)
				snprintf(err->msg, sizeof(err->msg), "%s", why);
			err->type = ATEL_PROMQL_ERR_BAD_DATA;
			err->code = -EINVAL;
			return -EINVAL;
		}
	}
	struct query *q = calloc(1, sizeof(*q));
	struct result_impl *res = calloc(1, sizeof(*res));
	if (!q || !res) {
		free(q);
		free(res);
		err->type = ATEL_PROMQL_ERR_INTERNAL;
		err->code = -ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	q->expr = e;
	q->st = st;
	if (opts)
		q->opts = *opts;
	if (q->opts.lookback_ms <= 0)
		q->opts.lookback_ms = DEFAULT_LOOKBACK_MS;
	if (q->opts.subquery_step_ms <= 0)
		q->opts.subquery_step_ms = DEFAULT_SUBQUERY_STEP_MS;
	if (!q->opts.max_samples)
		q->opts.max_samples = DEFAULT_MAX_SAMPLES;
	q->err = err;
	q->qstart = start;
	q->qend = end;
	/* Only these survive the longjmp; nothing they point to changes identity. */
	struct query *volatile vq = q;
	struct result_impl *volatile vres = res;
	struct atel_promql_error *volatile verr = err;
	if (setjmp(q->jb)) {
		struct query *fq = vq;
		struct result_impl *fr = vres;
		struct atel_promql_error *fe = verr;
		int rc = fq->rc ? fq->rc : -EINVAL;
		if (fe->type == ATEL_PROMQL_ERR_NONE) {
			fe->type = ATEL_PROMQL_ERR_INTERNAL;
			fe->code = rc;
			snprintf(fe->msg, sizeof(fe->msg), "internal error");
		}
		query_destroy(fq);
		free(fr->series);
		free(fr->warnings);
		free(fr->infos);
		free(fr);
		return rc;
	}
	q->empty = q_lset(q, NULL, 0);
	q->name_label = q_str(q, "__name__", 8);
	res->q = q;
	collect(q, e->root, (struct walkctx){ 0 }, 0);
	fetch_all(q);

	struct atel_promql_result *pub = &res->pub;
	pub->type = instant ? type : ATEL_PROMQL_MATRIX;
	pub->t_ms = start;
	if (type == ATEL_PROMQL_STRING) {
		/* The result outlives the expression: copy. */
		const char *str = string_arg(e->root);
		pub->string = q_str(q, str, strlen(str));
	} else {
		struct evaluator ev = { q, start, end, instant ? 1 : step };
		struct matrix m = eval(&ev, e->root);
		/* Delayed __name__ removal, then no two series may be equal. */
		struct pmap seen = { 0 };
		for (size_t i = 0; i < m.n; i++) {
			if (m.s[i].drop_name)
				m.s[i].ls = ls_drop_name(q, m.s[i].ls);
			bool fresh;
			pmap_put(q, &seen, m.s[i].ls, &fresh);
			if (!fresh)
				q_fail(q, ATEL_PROMQL_ERR_EXECUTION, -EINVAL, "vector cannot contain metrics with the same labelset");
		}
		pmap_free(q, &seen);
		if (instant && type == ATEL_PROMQL_SCALAR) {
			pub->scalar = m.n && m.s[0].n ? m.s[0].pts[0].v : NAN;
		} else {
			if ((!instant || type == ATEL_PROMQL_MATRIX) && m.n > 1)
				qsort(m.s, m.n, sizeof(*m.s), cmp_series);
			res->series = calloc(m.n + 1, sizeof(*res->series));
			if (!res->series)
				q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
			for (size_t i = 0; i < m.n; i++) {
				struct atel_promql_series *s = &res->series[i];
				/* struct lpair and struct atel_promql_label have the same layout */
				s->labels = (const struct atel_promql_label *)m.s[i].ls->p;
				s->nlabels = m.s[i].ls->n;
				s->points = (const struct atel_promql_point *)m.s[i].pts;
				s->npoints = m.s[i].n;
				if (instant && type == ATEL_PROMQL_VECTOR)
					m.s[i].pts[0].t = start;
			}
			pub->series = res->series;
			pub->nseries = m.n;
		}
	}
	size_t nw = 0, ni = 0;
	res->warnings = calloc(q->nannos + 1, sizeof(char *));
	res->infos = calloc(q->nannos + 1, sizeof(char *));
	if (!res->warnings || !res->infos)
		q_fail(q, ATEL_PROMQL_ERR_INTERNAL, -ENOMEM, "out of memory");
	for (size_t i = 0; i < q->nannos; i++) {
		if (q->annos[i].info)
			res->infos[ni++] = q->annos[i].text;
		else
			res->warnings[nw++] = q->annos[i].text;
	}
	pub->warnings = res->warnings;
	pub->nwarnings = nw;
	pub->infos = res->infos;
	pub->ninfos = ni;
	*out = pub;
	return 0;
}

_Static_assert(sizeof(struct lpair) == sizeof(struct atel_promql_label), "label layout");
_Static_assert(sizeof(struct pt) == sizeof(struct atel_promql_point), "point layout");
_Static_assert(offsetof(struct pt, v) == offsetof(struct atel_promql_point, v), "point layout");

int atel_promql_eval_instant(const struct atel_promql_expr *e, const struct atel_promql_storage *st,
			     const struct atel_promql_opts *opts, int64_t t_ms, struct atel_promql_result **out,
			     struct atel_promql_error *err)
{
	return run(e, st, opts, t_ms, t_ms, 0, true, out, err);
}

int atel_promql_eval_range(const struct atel_promql_expr *e, const struct atel_promql_storage *st,
			   const struct atel_promql_opts *opts, int64_t start_ms, int64_t end_ms, int64_t step_ms,
			   struct atel_promql_result **out, struct atel_promql_error *err)
{
	return run(e, st, opts, start_ms, end_ms, step_ms, false, out, err);
}
