/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the atel-bench framework.
 *
 * A section is one file bench/bench_<area>.c that registers itself:
 *
 *     static int run_mine(const struct bench_opts *o) { ...; bench_row(...); return 0; }
 *     BENCH_SECTION("mine", 50, "what it measures", run_mine)
 *
 * (no semicolon after BENCH_SECTION: it ends with a function body, and a
 * stray ';' at file scope is an error under -Wpedantic -Werror) and one entry
 * in bench/meson.build. atel-bench runs the sections in
 * (order, name) order, collects their rows and prints one table (or JSON).
 *
 * Timing helpers: bench_t0()/bench_t1() read a serialised cycle counter
 * (TSC on x86-64, CLOCK_MONOTONIC ns elsewhere); bench_hist_add_ticks() records
 * one per-call sample minus the measured timer overhead; percentiles come back
 * in ns. Where a call is so short that even that overhead dominates, time a
 * batch (bench_now_ns() around k calls) and record total/k (say so in `method`).
 *
 * Not thread-safe unless stated: a histogram belongs to one thread.
 */
#ifndef ATEL_BENCH_H
#define ATEL_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct bench_opts {
	bool quick;  /* --quick: fewer iterations (CI smoke run); figures are less stable */
	bool json;   /* --json */
	bool verbose;
};

typedef int (*bench_fn)(const struct bench_opts *o); /* @return 0, or a negative errno (section failed) */

struct bench_section {
	const char *name;  /* --only NAME */
	int order;         /* lower runs first; ring = 0, producer API 10, consumer 20, exporters 30, query 40 */
	const char *desc;
	bench_fn run;
};

/* Called from constructors (BENCH_SECTION); keeps the pointer. */
void bench_register(const struct bench_section *s);

#define BENCH_SECTION(name_, order_, desc_, fn_)                                                   \
	static const struct bench_section bench__sec_##fn_ = { (name_), (order_), (desc_), (fn_) };   \
	__attribute__((constructor)) static void bench__reg_##fn_(void)                               \
	{                                                                                          \
		bench_register(&bench__sec_##fn_);                                                 \
	}

/*
 * One result row. value/baseline in `unit` ("ns", "MB/s", "records/s", ...);
 * baseline < 0 means none (no ratio printed). target: free text ("< 100 ns"),
 * NULL for none; met: 1 target met, 0 missed, -1 not applicable.
 * method: how it was measured (one line). Strings are copied.
 */
void bench_row(const char *section, const char *figure, double value, const char *unit, double baseline,
	       const char *target, int met, const char *method);

/* Free-form note printed under the table (and in JSON "notes"). Copied. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------------------ */
/* clocks                                                                   */

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/* lfence;rdtsc: earlier instructions finish before the read */
static inline uint64_t bench_t0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

/* rdtscp;lfence: the timed code finished; later code does not start early */
static inline uint64_t bench_t1(void)
{
	uint32_t lo, hi, aux;

	__asm__ volatile("rdtscp\n\tlfence" : "=a"(lo), "=d"(hi), "=c"(aux)::"memory");
	return ((uint64_t)hi << 32) | lo;
}
#else
static inline uint64_t bench_t0(void)
{
	return bench_now_ns();
}

static inline uint64_t bench_t1(void)
{
	return bench_now_ns();
}
#endif

/* ns per tick of bench_t0/t1 (calibrated once against CLOCK_MONOTONIC). */
double bench_ns_per_tick(void);

/* Median cost in ticks of an empty bench_t0()/bench_t1() pair (measured once). */
uint64_t bench_timer_overhead(void);

/* Pins the calling thread to cpu (mod the CPUs we may use). @return 0 or -errno. */
int bench_pin(int cpu);

/* Number of CPUs this process may run on. */
int bench_ncpus(void);

/* Keeps the compiler from discarding a computation. */
#define bench_keep(x) __asm__ volatile("" : : "r"(x) : "memory")

/* ------------------------------------------------------------------------ */
/* percentile recorder: log-linear histogram, exact below 1024, then 64 sub-buckets per power of two */

#define BENCH_HIST_BUCKETS (1024 + 54 * 64)

struct bench_hist {
	uint64_t count, sum, min, max;
	uint64_t b[BENCH_HIST_BUCKETS];
	bool ticks; /* values are bench_t0/t1 ticks (converted to ns on read), else ns */
};

/* @return a zeroed histogram (malloc'd, ~36 KiB) or NULL. ticks: see struct. Free with bench_hist_free. */
struct bench_hist *bench_hist_new(bool ticks);
void bench_hist_free(struct bench_hist *h); /* NULL-safe */
void bench_hist_reset(struct bench_hist *h);

static inline unsigned bench__hist_idx(uint64_t v)
{
	unsigned msb;

	if (v < 1024)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return 1024u + (msb - 10u) * 64u + (unsigned)((v >> (msb - 6u)) & 63u);
}

static inline void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->b[bench__hist_idx(v)]++;
	h->count++;
	h->sum += v;
	if (v > h->max)
		h->max = v;
	if (v < h->min || h->count == 1)
		h->min = v;
}

/* One per-call sample from a bench_t0/t1 pair, minus the timer overhead (ticks histogram). */
static inline void bench_hist_add_ticks(struct bench_hist *h, uint64_t t0, uint64_t t1, uint64_t overhead)
{
	uint64_t d = t1 - t0;

	bench_hist_add(h, d > overhead ? d - overhead : 0);
}

/* p in [0,1] (0.5, 0.99, 0.999); in ns. 0 if empty. */
double bench_hist_pct_ns(const struct bench_hist *h, double p);
double bench_hist_mean_ns(const struct bench_hist *h);
double bench_hist_max_ns(const struct bench_hist *h);

#endif /* ATEL_BENCH_H */
