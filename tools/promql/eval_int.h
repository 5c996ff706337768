/* SPDX-License-Identifier: MIT */
/*
 * eval_int.h - data model of the evaluator, shared by eval.c and funcs.c.
 *
 * Everything an evaluation allocates belongs to one struct query: label
 * strings and label sets live in its arena (interned: one copy of each
 * distinct string and label set, so equal label sets are equal pointers);
 * point arrays and other growing arrays come from its tracked heap, freed
 * as soon as an intermediate result is consumed. Errors unwind with
 * longjmp to the entry point (like Prometheus' panics in ev.errorf), which
 * then frees the tracked heap and the arena at once.
 */
#ifndef ATEL_PROMQL_EVAL_INT_H
#define ATEL_PROMQL_EVAL_INT_H

#include <setjmp.h>

#include "promql_int.h"

struct lpair {
	const char *name, *value;      /* interned */
};

/* An interned label set, sorted by name. */
struct lset {
	uint64_t hash;                 /* of the pointers: for the intern table */
	uint32_t n;
	struct lpair p[];
};

struct pt {
	int64_t t;
	double v;
};

struct series {
	const struct lset *ls;
	struct pt *pts;
	size_t n, cap;
	bool drop_name;                /* delayed __name__ removal */
};

struct matrix {
	struct series *s;
	size_t n, cap;
};

struct sample {
	const struct lset *ls;
	int64_t t;
	double v;
	bool drop_name;
};

struct vector {
	struct sample *s;
	size_t n, cap;
};

/* Open-addressing map from a pointer to a size_t. */
struct pmap {
	struct pmap_ent {
		const void *k;
		size_t v;
	} *e;
	size_t n, cap;
};

/* Raw series of one selector, as taken from storage. */
struct rawseries {
	const struct lset *ls;
	struct pt *pts;
	size_t n, cap;
};

struct seldata {
	const struct atel_promql_node *node;   /* the SELECTOR node */
	bool matrix;                           /* used by a range selector: stale markers dropped */
	int64_t mint, maxt;
	struct rawseries *series;
	size_t n, cap;
	struct pmap byls;                      /* lset -> index */
};

struct annotation {
	char *text;
	bool info;
};

struct query {
	jmp_buf jb;
	struct atel__arena arena;
	struct qblock *blocks;                 /* tracked heap */
	const struct atel_promql_expr *expr;
	const struct atel_promql_storage *st;
	struct atel_promql_opts opts;
	int64_t qstart, qend;                  /* for @ start() / @ end() */
	/* interning */
	const char **stab;
	size_t snum, scap;
	const struct lset **ltab;
	size_t lnum, lcap;
	const struct lset *empty;
	const char *name_label;                /* interned "__name__" */
	/* selectors */
	struct seldata *sels;
	size_t nsels;
	/* accounting */
	uint64_t cur_samples, series_loaded, samples_loaded;
	unsigned checks;
	/* annotations */
	struct annotation *annos;
	size_t nannos, capannos;
	/* error */
	struct atel_promql_error *err;
	int rc;
	/* regexes compiled during evaluation (label_replace) */
	struct atel__re **res;
	size_t nres, capres;
};

struct evaluator {
	struct query *q;
	int64_t start, end, interval;
};

/* ---- errors and checks ---- */
_Noreturn void q_fail(struct query *q, enum atel_promql_errtype type, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void q_check(struct query *q);        /* deadline / interrupt */
void q_annotate(struct query *q, bool info, const struct atel_promql_node *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- memory ---- */
void *q_alloc(struct query *q, size_t n);
void *q_zalloc(struct query *q, size_t n);
void *q_realloc(struct query *q, void *p, size_t n);
void q_free(struct query *q, void *p);
void q_account(struct query *q, int64_t delta);   /* live samples; fails over opts.max_samples */

/* ---- strings and label sets ---- */
const char *q_str(struct query *q, const char *s, size_t n);   /* intern */
const struct lset *q_lset(struct query *q, const struct lpair *p, size_t n); /* p sorted, interned strings */
const char *ls_get(const struct lset *ls, const char *name);   /* NULL if missing */
int ls_cmp(const struct lset *a, const struct lset *b);        /* labels.Compare */
uint64_t ls_content_hash(const struct lset *ls);               /* Prometheus' labels.Hash (xxhash64) */
const struct lset *ls_drop_name(struct query *q, const struct lset *ls);
size_t ls_format(const struct lset *ls, char *buf, size_t len); /* {a="b", ...} */

struct lbuild {
	struct lpair *p;
	size_t n, cap;
	struct query *q;
};
void lb_init(struct lbuild *b, struct query *q, const struct lset *ls);
void lb_set(struct lbuild *b, const char *name, const char *value);  /* "" deletes */
void lb_del(struct lbuild *b, const char *name);
void lb_keep(struct lbuild *b, const char *const *names, size_t n);
const struct lset *lb_done(struct lbuild *b);   /* frees the builder */

/* ---- maps ---- */
size_t *pmap_get(struct pmap *m, const void *k);              /* NULL if missing */
size_t *pmap_put(struct query *q, struct pmap *m, const void *k, bool *fresh);
void pmap_free(struct query *q, struct pmap *m);

/* ---- vectors and matrices ---- */
void vec_push(struct query *q, struct vector *v, const struct lset *ls, int64_t t, double val, bool drop_name);
void vec_free(struct query *q, struct vector *v);
struct series *mat_add(struct query *q, struct matrix *m, const struct lset *ls, bool drop_name);
void series_push(struct query *q, struct series *s, int64_t t, double v);
void mat_free(struct query *q, struct matrix *m);

/* ---- functions (funcs.c) ---- */

/* An instant-vector function call at one step. */
struct vcall {
	struct query *q;
	const struct atel_promql_node *node;   /* the CALL */
	struct vector *args;                   /* one per argument (string arguments: empty) */
	size_t nargs;
	int64_t ts;
	struct vector *out;
};

/* A range-vector function on one series' window at one step. */
struct rcall {
	struct query *q;
	const struct atel_promql_node *node;
	const struct pt *w;                    /* samples in (maxt - range, maxt] */
	size_t n;
	const struct lset *ls;                 /* the input series */
	double arg[3];                         /* other (scalar) arguments at this step */
	int64_t ts;                            /* evaluation time of the step */
	int64_t maxt, range;                   /* the window */
	bool emit;                             /* out: a value was produced */
	double v;
};

void atel__func_vector(int id, struct vcall *c);
/* createLabelsForAbsentFunction: labels a selector matches exactly (absent, absent_over_time). */
const struct lset *atel__absent_labels(struct query *q, const struct atel_promql_node *arg);
void atel__func_range(int id, struct rcall *c);
bool atel__func_is_range(int id);         /* takes a range vector argument */

enum {
	F_ABS = 1, F_ABSENT, F_ABSENT_OVER_TIME, F_ACOS, F_ACOSH, F_ASIN, F_ASINH, F_ATAN, F_ATANH,
	F_AVG_OVER_TIME, F_CEIL, F_CHANGES, F_CLAMP, F_CLAMP_MAX, F_CLAMP_MIN, F_COS, F_COSH,
	F_COUNT_OVER_TIME, F_DAYS_IN_MONTH, F_DAY_OF_MONTH, F_DAY_OF_WEEK, F_DAY_OF_YEAR, F_DEG, F_DELTA,
	F_DERIV, F_EXP, F_FLOOR, F_HISTOGRAM_AVG, F_HISTOGRAM_COUNT, F_HISTOGRAM_SUM, F_HISTOGRAM_STDDEV,
	F_HISTOGRAM_STDVAR, F_HISTOGRAM_FRACTION, F_HISTOGRAM_QUANTILE, F_DOUBLE_EXPONENTIAL_SMOOTHING,
	F_HOUR, F_IDELTA, F_INCREASE, F_IRATE, F_LABEL_REPLACE, F_LABEL_JOIN, F_LAST_OVER_TIME, F_LN,
	F_LOG10, F_LOG2, F_MAD_OVER_TIME, F_MAX_OVER_TIME, F_MIN_OVER_TIME, F_MINUTE, F_MONTH, F_PI,
	F_PREDICT_LINEAR, F_PRESENT_OVER_TIME, F_QUANTILE_OVER_TIME, F_RAD, F_RATE, F_RESETS, F_ROUND,
	F_SCALAR, F_SGN, F_SIN, F_SINH, F_SORT, F_SORT_DESC, F_SORT_BY_LABEL, F_SORT_BY_LABEL_DESC,
	F_SQRT, F_STDDEV_OVER_TIME, F_STDVAR_OVER_TIME, F_SUM_OVER_TIME, F_TAN, F_TANH, F_TIME,
	F_TIMESTAMP, F_VECTOR, F_YEAR,
	F_COUNT_
};

/* Shared numeric helpers (Prometheus' kahanSumInc, quantile). */
double kahan_inc(double inc, double sum, double *c);
double quantile_of(double q, double *v, size_t n);   /* sorts v (NaN first) */

#endif
