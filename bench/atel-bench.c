/* SPDX-License-Identifier: MIT */
/*
 * atel-bench: runs the registered benchmark sections (bench/bench_*.c) and
 * prints one table, or JSON with --json. See bench/bench.h.
 *
 *   atel-bench [--quick] [--json] [--only SECTION[,SECTION...]] [--list] [--verbose]
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <cjson/cJSON.h>

#define MAX_SECTIONS 64

static const struct bench_section *sections[MAX_SECTIONS];
static int nsections;

void bench_register(const struct bench_section *s)
{
	if (nsections < MAX_SECTIONS)
		sections[nsections++] = s;
	else
		fprintf(stderr, "atel-bench: too many sections, '%s' ignored\n", s->name);
}

/* ------------------------------------------------------------------------ */
/* rows and notes                                                           */

struct row {
	char *section, *figure, *unit, *target, *method;
	double value, baseline;
	int met;
};

static struct row *rows;
static size_t nrows, caprows;
static char **notes;
static size_t nnotes;

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void bench_row(const char *section, const char *figure, double value, const char *unit, double baseline,
	       const char *target, int met, const char *method)
{
	struct row *r;

	if (nrows == caprows) {
		size_t nc = caprows ? caprows * 2 : 32;
		struct row *n = realloc(rows, nc * sizeof(*n));
		if (!n)
			return;
		rows = n;
		caprows = nc;
	}
	r = &rows[nrows++];
	r->section = dup_or_null(section);
	r->figure = dup_or_null(figure);
	r->unit = dup_or_null(unit ? unit : "");
	r->target = dup_or_null(target);
	r->method = dup_or_null(method);
	r->value = value;
	r->baseline = baseline;
	r->met = met;
}

void bench_note(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	char **n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = realloc(notes, (nnotes + 1) * sizeof(*n));
	if (!n)
		return;
	notes = n;
	notes[nnotes] = strdup(buf);
	if (notes[nnotes])
		nnotes++;
}

static void free_rows(void)
{
	for (size_t i = 0; i < nrows; i++) {
		free(rows[i].section);
		free(rows[i].figure);
		free(rows[i].unit);
		free(rows[i].target);
		free(rows[i].method);
	}
	free(rows);
	for (size_t i = 0; i < nnotes; i++)
		free(notes[i]);
	free(notes);
}

/* ------------------------------------------------------------------------ */
/* clocks and CPUs                                                          */

static double ns_per_tick;
static uint64_t timer_overhead;
static bool timer_overhead_done;

double bench_ns_per_tick(void)
{
#if defined(__x86_64__)
	if (ns_per_tick == 0) {
		/* mean of 3 calibrations of 20 ms against CLOCK_MONOTONIC (invariant TSC) */
		double sum = 0;
		for (int k = 0; k < 3; k++) {
			uint64_t n0 = bench_now_ns(), c0 = bench_t0(), n1, c1;
			do
				n1 = bench_now_ns();
			while (n1 - n0 < 20000000ull);
			c1 = bench_t1();
			sum += (double)(n1 - n0) / (double)(c1 - c0);
		}
		double best = sum / 3;
		ns_per_tick = best;
	}
	return ns_per_tick;
#else
	return 1.0;
#endif
}

uint64_t bench_timer_overhead(void)
{
	if (!timer_overhead_done) {
		struct bench_hist *h = bench_hist_new(true);
		if (h) {
			for (int i = 0; i < 200000; i++) {
				uint64_t a = bench_t0(), b = bench_t1();
				bench_hist_add(h, b - a);
			}
			/* the median in ticks (bucket lower bound; exact below 1024) */
			uint64_t want = (h->count + 1) / 2, acc = 0;
			for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
				acc += h->b[i];
				if (acc >= want) {
					timer_overhead = i < 1024 ? i : 1024;
					break;
				}
			}
			bench_hist_free(h);
		}
		timer_overhead_done = true;
	}
	return timer_overhead;
}

/*
 * The CPUs the process may use, captured before any section pins a thread:
 * a thread created after its parent pinned itself inherits a one-CPU mask.
 */
static cpu_set_t cpus_all;
static bool cpus_done;

static const cpu_set_t *all_cpus(void)
{
	if (!cpus_done) {
		if (sched_getaffinity(0, sizeof(cpus_all), &cpus_all) != 0) {
			CPU_ZERO(&cpus_all);
			CPU_SET(0, &cpus_all);
		}
		cpus_done = true;
	}
	return &cpus_all;
}

int bench_ncpus(void)
{
	return CPU_COUNT(all_cpus());
}

int bench_pin(int cpu)
{
	const cpu_set_t *avail = all_cpus();
	cpu_set_t one;
	int n = 0, want = cpu % (CPU_COUNT(avail) ? CPU_COUNT(avail) : 1);

	for (int c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, avail))
			continue;
		if (n++ == want) {
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			return -pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
		}
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* histogram                                                                */

struct bench_hist *bench_hist_new(bool ticks)
{
	struct bench_hist *h = calloc(1, sizeof(*h));

	if (h)
		h->ticks = ticks;
	return h;
}

void bench_hist_free(struct bench_hist *h)
{
	free(h);
}

void bench_hist_reset(struct bench_hist *h)
{
	bool t = h->ticks;

	memset(h, 0, sizeof(*h));
	h->ticks = t;
}

static double to_ns(const struct bench_hist *h, double v)
{
	return h->ticks ? v * bench_ns_per_tick() : v;
}

/* representative value of bucket i: exact below 1024, else the bucket's midpoint */
static double bucket_value(unsigned i)
{
	unsigned e, sub;
	double lo, width;

	if (i < 1024)
		return i;
	e = (i - 1024) / 64 + 10;
	sub = (i - 1024) % 64;
	width = ldexp(1.0, (int)e - 6);
	lo = ldexp(1.0, (int)e) + sub * width;
	return lo + width / 2;
}

double bench_hist_pct_ns(const struct bench_hist *h, double p)
{
	uint64_t want, acc = 0;

	if (!h || !h->count)
		return 0;
	want = (uint64_t)ceil(p * (double)h->count);
	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want)
			return to_ns(h, bucket_value(i));
	}
	return to_ns(h, (double)h->max);
}

double bench_hist_mean_ns(const struct bench_hist *h)
{
	return h && h->count ? to_ns(h, (double)h->sum / (double)h->count) : 0;
}

double bench_hist_max_ns(const struct bench_hist *h)
{
	return h && h->count ? to_ns(h, (double)h->max) : 0;
}

/* ------------------------------------------------------------------------ */
/* output                                                                   */

static void fmt_num(char *buf, size_t len, double v, const char *unit)
{
	if (v < 0 || isnan(v))
		snprintf(buf, len, "-");
	else if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 0.01))
		snprintf(buf, len, "%.3g %s", v, unit);
	else if (fabs(v) >= 1000)
		snprintf(buf, len, "%.0f %s", v, unit);
	else
		snprintf(buf, len, "%.1f %s", v, unit);
}

static void print_table(void)
{
	const char *hdr[7] = { "section", "figure", "value", "baseline", "ratio", "target", "method" };
	size_t w[7];
	char (*cells)[7][160] = calloc(nrows ? nrows : 1, sizeof(*cells));

	if (!cells)
		return;
	for (int c = 0; c < 7; c++)
		w[c] = strlen(hdr[c]);
	for (size_t i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		snprintf(cells[i][0], 160, "%s", r->section);
		snprintf(cells[i][1], 160, "%s", r->figure);
		fmt_num(cells[i][2], 160, r->value, r->unit);
		fmt_num(cells[i][3], 160, r->baseline, r->unit);
		if (r->baseline > 0)
			snprintf(cells[i][4], 160, "%.2fx", r->value / r->baseline);
		else
			snprintf(cells[i][4], 160, "-");
		if (r->target)
			snprintf(cells[i][5], 160, "%s%s", r->target,
				 r->met == 1 ? " (met)" : r->met == 0 ? " (MISSED)" : "");
		else
			snprintf(cells[i][5], 160, "-");
		snprintf(cells[i][6], 160, "%s", r->method ? r->method : "");
		for (int c = 0; c < 6; c++)
			if (strlen(cells[i][c]) > w[c])
				w[c] = strlen(cells[i][c]);
	}
	printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  %s\n", (int)w[0], hdr[0], (int)w[1], hdr[1], (int)w[2], hdr[2],
	       (int)w[3], hdr[3], (int)w[4], hdr[4], (int)w[5], hdr[5], hdr[6]);
	for (size_t i = 0; i < nrows; i++)
		printf("%-*s  %-*s  %*s  %*s  %*s  %-*s  %s\n", (int)w[0], cells[i][0], (int)w[1], cells[i][1],
		       (int)w[2], cells[i][2], (int)w[3], cells[i][3], (int)w[4], cells[i][4], (int)w[5],
		       cells[i][5], cells[i][6]);
	for (size_t i = 0; i < nnotes; i++)
		printf("note: %s\n", notes[i]);
	free(cells);
}

static void add_num_or_null(cJSON *o, const char *k, double v)
{
	if (v < 0 || isnan(v))
		cJSON_AddNullToObject(o, k);
	else
		cJSON_AddNumberToObject(o, k, v);
}

static void print_json(const struct bench_opts *o, const char *machine, int failed)
{
	cJSON *root = cJSON_CreateObject(), *arr, *na;
	char *s;

	if (!root)
		return;
	cJSON_AddStringToObject(root, "tool", "atel-bench");
	cJSON_AddBoolToObject(root, "quick", o->quick);
	cJSON_AddStringToObject(root, "machine", machine);
	cJSON_AddNumberToObject(root, "failed_sections", failed);
	arr = cJSON_AddArrayToObject(root, "rows");
	for (size_t i = 0; arr && i < nrows; i++) {
		const struct row *r = &rows[i];
		cJSON *j = cJSON_CreateObject();
		if (!j)
			break;
		cJSON_AddStringToObject(j, "section", r->section);
		cJSON_AddStringToObject(j, "figure", r->figure);
		cJSON_AddNumberToObject(j, "value", r->value);
		cJSON_AddStringToObject(j, "unit", r->unit);
		add_num_or_null(j, "baseline", r->baseline);
		add_num_or_null(j, "ratio", r->baseline > 0 ? r->value / r->baseline : -1);
		if (r->target)
			cJSON_AddStringToObject(j, "target", r->target);
		else
			cJSON_AddNullToObject(j, "target");
		if (r->met < 0)
			cJSON_AddNullToObject(j, "met");
		else
			cJSON_AddBoolToObject(j, "met", r->met == 1);
		cJSON_AddStringToObject(j, "method", r->method ? r->method : "");
		cJSON_AddItemToArray(arr, j);
	}
	na = cJSON_AddArrayToObject(root, "notes");
	for (size_t i = 0; na && i < nnotes; i++)
		cJSON_AddItemToArray(na, cJSON_CreateString(notes[i]));
	s = cJSON_Print(root);
	if (s)
		printf("%s\n", s);
	free(s);
	cJSON_Delete(root);
}

static void read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

static void machine_line(char *buf, size_t len)
{
	struct utsname u;
	char cs[64], load[64];

	read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", cs, sizeof(cs));
	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	read_first_line("/proc/loadavg", load, sizeof(load));
	load[strcspn(load, " ")] = '\0'; /* the 1-minute figure: this machine may be shared */
	snprintf(buf, len, "%d CPUs, %.32s %.64s, clocksource %.32s, %.3f ns/tick, timer overhead %llu ticks, load %.16s",
		 bench_ncpus(), u.sysname, u.release, cs[0] ? cs : "?", bench_ns_per_tick(),
		 (unsigned long long)bench_timer_overhead(), load[0] ? load : "?");
}

static int cmp_sections(const void *a, const void *b)
{
	const struct bench_section *x = *(const struct bench_section *const *)a;
	const struct bench_section *y = *(const struct bench_section *const *)b;

	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return strcmp(x->name, y->name);
}

static bool selected(const char *only, const char *name)
{
	size_t n = strlen(name);
	const char *p = only;

	if (!only)
		return true;
	while (*p) {
		size_t k = strcspn(p, ",");
		if (k == n && strncmp(p, name, n) == 0)
			return true;
		p += k;
		if (*p == ',')
			p++;
	}
	return false;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: atel-bench [--quick] [--json] [--only SECTION[,SECTION...]] [--list] [--verbose]\n"
		   "  --quick    fewer iterations (smoke run; figures less stable)\n"
		   "  --json     machine-readable output on stdout\n"
		   "  --only     run only these sections (see --list)\n"
		   "  --list     list the sections compiled in\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' }, { "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' }, { "list", no_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench_opts o = { 0 };
	const char *only = NULL;
	bool list = false;
	int c, failed = 0, ran = 0;
	char machine[512];

	while ((c = getopt_long(argc, argv, "qjo:lvh", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o.quick = true; break;
		case 'j': o.json = true; break;
		case 'o': only = optarg; break;
		case 'l': list = true; break;
		case 'v': o.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	qsort(sections, (size_t)nsections, sizeof(sections[0]), cmp_sections);
	if (list) {
		for (int i = 0; i < nsections; i++)
			printf("%-12s %s\n", sections[i]->name, sections[i]->desc);
		return 0;
	}
	if (only) {
		/* every requested name must exist: a typo must not look like an empty success */
		const char *p = only;
		while (*p) {
			size_t k = strcspn(p, ",");
			bool found = false;
			for (int i = 0; i < nsections; i++)
				if (strlen(sections[i]->name) == k && strncmp(p, sections[i]->name, k) == 0)
					found = true;
			if (!found && k) {
				fprintf(stderr, "atel-bench: no section '%.*s' (try --list)\n", (int)k, p);
				return 2;
			}
			p += k;
			if (*p == ',')
				p++;
		}
	}
	(void)all_cpus(); /* before any section pins the main thread */
	machine_line(machine, sizeof(machine));
	if (!o.json)
		printf("atel-bench%s: %s\n", o.quick ? " (quick)" : "", machine);
	for (int i = 0; i < nsections; i++) {
		int rc;
		if (!selected(only, sections[i]->name))
			continue;
		if (!o.json) {
			fprintf(stderr, "atel-bench: running %s ...\n", sections[i]->name);
		}
		rc = sections[i]->run(&o);
		ran++;
		if (rc != 0) {
			fprintf(stderr, "atel-bench: section %s failed: %s\n", sections[i]->name, strerror(-rc));
			bench_note("section %s failed: %s", sections[i]->name, strerror(-rc));
			failed++;
		}
	}
	if (o.json)
		print_json(&o, machine, failed);
	else
		print_table();
	free_rows();
	if (!ran)
		fprintf(stderr, "atel-bench: no sections compiled in\n");
	return failed ? 1 : 0;
}
