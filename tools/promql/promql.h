/* SPDX-License-Identifier: MIT */
/*
 * promql.h - a PromQL engine: parser and evaluator, self-contained (libc and
 * libm only), for answering Prometheus' query API over atel's own data.
 *
 * Three steps, each with its own object:
 *   1. atel_promql_parse() turns query text into a tree of atel_promql_node
 *      (below) with byte positions; errors read like Prometheus' own,
 *      "1:14: parse error: unexpected <op:*> ...".
 *   2. The caller implements struct atel_promql_storage: one callback that,
 *      for a list of label matchers and a time range, offers series (label
 *      sets, including __name__) and their samples in time order to a sink.
 *   3. atel_promql_eval_instant() / atel_promql_eval_range() evaluate the tree
 *      against that storage with bounded work (samples, series, deadline,
 *      cancellation) and return a result or an error of one of Prometheus'
 *      API error types.
 *
 * Semantics are Prometheus v3.0's (promql/engine.go, promql/functions.go):
 * 5 minute lookback, staleness markers (the NaN with bits
 * ATEL_PROMQL_STALE_NAN_BITS end a series until its next sample), rate()
 * extrapolation, @ and offset, subqueries, and the "delayed __name__
 * removal" that upstream's own test engine uses. Float samples only: native
 * histograms are not part of the data model (the histogram_* functions that
 * only read native histograms therefore return nothing; histogram_quantile
 * works on classic `le` buckets). Regular expressions have RE2 syntax and are
 * fully anchored, run through POSIX regcomp/regexec; see docs in
 * tools/promql/re.c for the (small) differences.
 *
 * Conventions: functions return 0 or a negative errno and fill a struct
 * atel_promql_error when given one. Objects are not shared between threads
 * while in use; separate objects may be used from separate threads. Parsed
 * trees are read-only during evaluation and may be evaluated many times.
 */
#ifndef ATEL_PROMQL_H
#define ATEL_PROMQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Prometheus' value.StaleNaN: a sample with exactly these bits marks a series stale. */
#define ATEL_PROMQL_STALE_NAN_BITS 0x7ff0000000000002ULL

/* Times (query times, @ timestamps) are ms since the epoch within +-2^61
 * (73 million years): sums of times, offsets and ranges never overflow. */
#define ATEL_PROMQL_MAX_TIME_MS (1LL << 61)

/* ---- errors -------------------------------------------------------------- */

/* The errorType values of Prometheus' HTTP API. */
enum atel_promql_errtype {
	ATEL_PROMQL_ERR_NONE = 0,
	ATEL_PROMQL_ERR_BAD_DATA,  /* the query does not parse or type-check, bad arguments */
	ATEL_PROMQL_ERR_EXECUTION, /* evaluation failed: duplicate label sets, limits, bad function arguments */
	ATEL_PROMQL_ERR_TIMEOUT,   /* the deadline passed (or the interrupt callback said so) */
	ATEL_PROMQL_ERR_CANCELED,  /* the interrupt callback canceled the query */
	ATEL_PROMQL_ERR_INTERNAL,  /* the storage failed, or memory ran out */
};

struct atel_promql_error {
	enum atel_promql_errtype type;
	int code;               /* the negative errno also returned */
	uint32_t pos;           /* parse errors: byte offset of the problem in the query */
	uint32_t line, col;     /* parse errors: 1-based line and column of pos, else 0 */
	char msg[512];          /* the complete message, as Prometheus would word it */
};

/* "bad_data", "execution", "timeout", "canceled", "internal" (or "" for NONE). */
const char *atel_promql_errtype_name(enum atel_promql_errtype type);

/* ---- the syntax tree ------------------------------------------------------ */

enum atel_promql_vtype {
	ATEL_PROMQL_NONE = 0,
	ATEL_PROMQL_SCALAR,
	ATEL_PROMQL_VECTOR,   /* instant vector */
	ATEL_PROMQL_MATRIX,   /* range vector */
	ATEL_PROMQL_STRING,
};

enum atel_promql_node_kind {
	ATEL_PROMQL_NUMBER = 1,      /* number literal (durations in expressions are seconds) */
	ATEL_PROMQL_STRING_LIT,      /* string literal */
	ATEL_PROMQL_SELECTOR,        /* instant vector selector */
	ATEL_PROMQL_MATRIX_SEL,      /* range vector selector: selector[range] */
	ATEL_PROMQL_SUBQUERY,        /* expr[range:step] */
	ATEL_PROMQL_PAREN,
	ATEL_PROMQL_UNARY,
	ATEL_PROMQL_BINARY,
	ATEL_PROMQL_CALL,
	ATEL_PROMQL_AGGREGATE,
};

enum atel_promql_op {
	ATEL_PROMQL_OP_ADD = 1, ATEL_PROMQL_OP_SUB, ATEL_PROMQL_OP_MUL, ATEL_PROMQL_OP_DIV,
	ATEL_PROMQL_OP_MOD, ATEL_PROMQL_OP_POW, ATEL_PROMQL_OP_ATAN2,
	ATEL_PROMQL_OP_EQLC, ATEL_PROMQL_OP_NEQ, ATEL_PROMQL_OP_GTR, ATEL_PROMQL_OP_LSS,
	ATEL_PROMQL_OP_GTE, ATEL_PROMQL_OP_LTE,
	ATEL_PROMQL_OP_AND, ATEL_PROMQL_OP_OR, ATEL_PROMQL_OP_UNLESS,
};

enum atel_promql_agg {
	ATEL_PROMQL_AGG_SUM = 1, ATEL_PROMQL_AGG_AVG, ATEL_PROMQL_AGG_COUNT, ATEL_PROMQL_AGG_MIN,
	ATEL_PROMQL_AGG_MAX, ATEL_PROMQL_AGG_GROUP, ATEL_PROMQL_AGG_STDDEV, ATEL_PROMQL_AGG_STDVAR,
	ATEL_PROMQL_AGG_TOPK, ATEL_PROMQL_AGG_BOTTOMK, ATEL_PROMQL_AGG_COUNT_VALUES,
	ATEL_PROMQL_AGG_QUANTILE, ATEL_PROMQL_AGG_LIMITK, ATEL_PROMQL_AGG_LIMIT_RATIO,
};

/* Vector matching of a binary operation between two instant vectors. */
enum atel_promql_card {
	ATEL_PROMQL_ONE_TO_ONE = 0,
	ATEL_PROMQL_MANY_TO_ONE,     /* group_left */
	ATEL_PROMQL_ONE_TO_MANY,     /* group_right */
	ATEL_PROMQL_MANY_TO_MANY,    /* and, or, unless */
};

/* The @ modifier. */
enum atel_promql_at {
	ATEL_PROMQL_AT_NONE = 0,
	ATEL_PROMQL_AT_TIME,         /* @ <at_ms> */
	ATEL_PROMQL_AT_START,        /* @ start(): the query's start */
	ATEL_PROMQL_AT_END,          /* @ end(): the query's end */
};

enum atel_promql_match_op {
	ATEL_PROMQL_MATCH_EQ = 0,    /* =  */
	ATEL_PROMQL_MATCH_NE,        /* != */
	ATEL_PROMQL_MATCH_RE,        /* =~ fully anchored RE2-style regular expression */
	ATEL_PROMQL_MATCH_NRE,       /* !~ */
};

struct atel_promql_matcher {
	enum atel_promql_match_op op;
	const char *name;
	const char *value;
	void *re;                    /* compiled regex (=~, !~); private */
};

/* Whether a label value (NULL or "" for a missing label) satisfies m. */
bool atel_promql_matcher_matches(const struct atel_promql_matcher *m, const char *value);

struct atel_promql_node {
	enum atel_promql_node_kind kind;
	uint32_t start, end;         /* byte range [start, end) in the query text */
	union {
		double number;
		const char *string;      /* NUL-terminated, unescaped */
		struct {
			const char *name;    /* metric name written before the braces, or NULL */
			const struct atel_promql_matcher *matchers; /* incl. __name__="name" last */
			size_t nmatchers;
			int64_t offset_ms;   /* offset modifier; negative allowed */
			enum atel_promql_at at;
			int64_t at_ms;       /* for ATEL_PROMQL_AT_TIME, ms since the epoch */
		} sel;
		struct {
			struct atel_promql_node *sel;  /* an ATEL_PROMQL_SELECTOR (holds offset and @) */
			int64_t range_ms;
		} matrix;
		struct {
			struct atel_promql_node *expr;
			int64_t range_ms;
			int64_t step_ms;     /* 0: the engine's default (opts.subquery_step_ms) */
			int64_t offset_ms;
			enum atel_promql_at at;
			int64_t at_ms;
		} subquery;
		struct {
			struct atel_promql_node *expr;
		} paren;
		struct {
			enum atel_promql_op op;  /* ADD or SUB */
			struct atel_promql_node *expr;
		} unary;
		struct {
			enum atel_promql_op op;
			struct atel_promql_node *lhs, *rhs;
			bool return_bool;
			/* Vector matching; meaningful when both sides are vectors. */
			enum atel_promql_card card;
			bool on;             /* on(...) rather than ignoring(...) */
			const char *const *match_labels;
			size_t nmatch_labels;
			const char *const *include;   /* group_left(...)/group_right(...) labels */
			size_t ninclude;
		} binary;
		struct {
			const char *func;    /* function name */
			int func_id;         /* private */
			struct atel_promql_node **args;
			size_t nargs;
		} call;
		struct {
			enum atel_promql_agg op;
			struct atel_promql_node *expr;
			struct atel_promql_node *param;  /* topk/bottomk/quantile/count_values/limit*, else NULL */
			const char *const *grouping;
			size_t ngrouping;
			bool without;
		} agg;
	};
};

struct atel_promql_expr;  /* a parsed query: owns its tree and strings */

/*
 * Parse and type-check query text (len bytes, need not be NUL-terminated).
 * @return 0 and *out, -EINVAL with err->type ATEL_PROMQL_ERR_BAD_DATA and a
 * positioned message, or -ENOMEM.
 */
int atel_promql_parse(const char *query, size_t len, struct atel_promql_expr **out,
		      struct atel_promql_error *err);

/*
 * Parse a series selector alone (`foo{a="b"}`, `{job=~"x.*"}`), as the HTTP
 * API's match[] parameters are. The root of *out is an ATEL_PROMQL_SELECTOR.
 * @return as atel_promql_parse().
 */
int atel_promql_parse_selector(const char *text, size_t len, struct atel_promql_expr **out,
			       struct atel_promql_error *err);

/* The tree; it stays valid (and may be modified, as the conformance runner
 * does with @ timestamps) until atel_promql_expr_free(). */
struct atel_promql_node *atel_promql_expr_root(struct atel_promql_expr *e);

/* The value type a node evaluates to. */
enum atel_promql_vtype atel_promql_node_type(const struct atel_promql_node *n);

/*
 * Print a node back as PromQL (the form Prometheus' String() gives: canonical
 * spacing, sorted matchers, durations like 1h30m, @ as seconds with three
 * decimals). The text parses back to the same tree. Writes at most len bytes
 * incl. the NUL. @return the full length (excl. NUL), like snprintf.
 */
size_t atel_promql_format(const struct atel_promql_node *n, char *buf, size_t len);

/* Accepts NULL. */
void atel_promql_expr_free(struct atel_promql_expr *e);

/* ---- storage -------------------------------------------------------------- */

struct atel_promql_label {
	const char *name;
	const char *value;
};

/* One selection: all series whose labels satisfy every matcher, with their
 * samples in [mint_ms, maxt_ms] (both inclusive, ms since the epoch). Valid
 * during the select() call only. */
struct atel_promql_select {
	const struct atel_promql_matcher *matchers;
	size_t nmatchers;
	const char *metric_name;     /* value of a __name__="..." matcher, else NULL (a hint) */
	int64_t mint_ms, maxt_ms;
};

struct atel_promql_sink;  /* owned by the engine while select() runs */

/*
 * Offer a series (labels in any order, names unique, __name__ included when
 * the series has a name; the strings are copied). The engine checks the
 * matchers itself, so a storage may offer a superset. Offering the same label
 * set again returns the same id.
 * @return 1 and *id when the engine wants the series' samples, 0 when it does
 * not (skip them), or a negative errno (-E2BIG: a limit is exceeded,
 * -ETIMEDOUT/-ECANCELED, -ENOMEM) which select() must return.
 */
int atel_promql_sink_series(struct atel_promql_sink *sink, const struct atel_promql_label *labels,
			    size_t nlabels, uint32_t *id);

/*
 * A sample of series id. Per series, samples come in strictly increasing
 * time; samples outside [mint_ms, maxt_ms] are ignored. Series may
 * interleave. A stale marker is the NaN with ATEL_PROMQL_STALE_NAN_BITS.
 * @return 0 or a negative errno which select() must return (-EINVAL for a
 * sample out of order or an unknown id).
 */
int atel_promql_sink_sample(struct atel_promql_sink *sink, uint32_t id, int64_t t_ms, double v);

struct atel_promql_storage {
	void *ctx;
	/*
	 * Offer every series matching sel (and its samples) to sink, then return
	 * 0; or return a negative errno (the sink's own errors unchanged). A
	 * storage error is reported as ATEL_PROMQL_ERR_INTERNAL with the message
	 * the storage may leave in errmsg (errlen bytes).
	 */
	int (*select)(void *ctx, const struct atel_promql_select *sel, struct atel_promql_sink *sink,
		      char *errmsg, size_t errlen);
};

/* ---- evaluation ------------------------------------------------------------ */

struct atel_promql_opts {
	int64_t lookback_ms;         /* 0: 5 minutes */
	int64_t subquery_step_ms;    /* step of subqueries without one; 0: 1 minute */
	uint64_t max_samples;        /* samples held at once by intermediate results
	                              * (Prometheus' --query.max-samples); 0: 50,000,000 */
	uint64_t max_series;         /* series taken from storage, over all selectors; 0: no limit */
	uint64_t max_samples_loaded; /* samples taken from storage; 0: no limit */
	uint64_t max_steps;          /* steps of a range query; 0: 11,000 as Prometheus' API */
	int64_t deadline_ns;         /* CLOCK_MONOTONIC; 0: none. Checked between steps and series. */
	/* Polled with the deadline; return 0 to go on, -ETIMEDOUT or -ECANCELED to stop. */
	int (*interrupt)(void *ctx);
	void *interrupt_ctx;
};

struct atel_promql_point {
	int64_t t_ms;
	double v;
};

struct atel_promql_series {
	const struct atel_promql_label *labels;  /* sorted by name */
	size_t nlabels;
	const struct atel_promql_point *points;  /* ascending time */
	size_t npoints;
};

struct atel_promql_result {
	enum atel_promql_vtype type;
	int64_t t_ms;                /* scalar and string: evaluation time */
	double scalar;               /* ATEL_PROMQL_SCALAR */
	const char *string;          /* ATEL_PROMQL_STRING */
	/* VECTOR: one point per series at the evaluation time, in evaluation
	 * order (sort(), topk() ... define it). MATRIX: series sorted by labels. */
	const struct atel_promql_series *series;
	size_t nseries;
	/* Annotations, deduplicated: warnings (Prometheus' "warnings") and infos. */
	const char *const *warnings;
	size_t nwarnings;
	const char *const *infos;
	size_t ninfos;
};

/*
 * Evaluate at one time (ms since the epoch). The result type is the
 * expression's: scalar, vector, matrix (a range selector or subquery) or
 * string. @return 0 and *out (free with atel_promql_result_free), or a
 * negative errno and err: -EINVAL (bad_data: arguments; execution: the
 * evaluation failed; internal: the storage broke the sink contract), -E2BIG
 * (execution: a limit), -ETIMEDOUT (timeout), -ECANCELED (canceled), -EIO
 * (internal: select() failed), -ENOMEM (internal).
 */
int atel_promql_eval_instant(const struct atel_promql_expr *e, const struct atel_promql_storage *st,
			     const struct atel_promql_opts *opts, int64_t t_ms, struct atel_promql_result **out,
			     struct atel_promql_error *err);

/*
 * Evaluate at start, start+step, ... <= end (ms). Only scalar and instant
 * vector expressions qualify (bad_data otherwise, as Prometheus). The result
 * is a MATRIX (a scalar becomes one series without labels).
 * @return as atel_promql_eval_instant().
 */
int atel_promql_eval_range(const struct atel_promql_expr *e, const struct atel_promql_storage *st,
			   const struct atel_promql_opts *opts, int64_t start_ms, int64_t end_ms, int64_t step_ms,
			   struct atel_promql_result **out, struct atel_promql_error *err);

/* Accepts NULL. A result owns all its memory: it stays valid after the
 * expression and the storage are gone. */
void atel_promql_result_free(struct atel_promql_result *r);

#endif
