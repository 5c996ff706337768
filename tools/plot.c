/* SPDX-License-Identifier: MIT */
/* Terminal charts of query results: see plot.h. */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


static const char *const blocks_utf8[8] = { "\u2581", "\u2582", "\u2583", "\u2584",
					     "\u2585", "\u2586", "\u2587", "\u2588" };
static const char blocks_ascii[8] = { '_', '.', '-', ':', '=', '+', '*', '#' };

static void fmt_val(double v, const char *unit, char *buf, size_t len)
{
	snprintf(buf, len, "%.6g%s%s", v, unit && *unit ? " " : "", unit && *unit ? unit : "");
}

bool atel_plot_utf8_locale(const char *lc_all, const char *lc_ctype, const char *lang)
{
	const char *v = lc_all && *lc_all ? lc_all : lc_ctype && *lc_ctype ? lc_ctype : lang;
	if (!v || !*v)
		return false;
	const char *dot = strchr(v, '.');
	if (!dot)
		return false;
	return strncasecmp(dot + 1, "utf-8", 5) == 0 || strncasecmp(dot + 1, "utf8", 4) == 0;
}

int atel_plot_write(FILE *f, const struct atel_plot_series *s, size_t n, const struct atel_plot_opts *o)
{
	int width = o->width < 20 ? 20 : o->width > 1000 ? 1000 : o->width;
	size_t maxs = o->max_series ? o->max_series : 8;
	size_t ns = n < maxs ? n : maxs;
	double ymin = INFINITY, ymax = -INFINITY;
	uint64_t tmin = UINT64_MAX, tmax = 0;
	size_t maxn = 0;

	for (size_t i = 0; i < ns; i++) {
		for (size_t k = 0; k < s[i].n; k++) {
			double v = s[i].pts[k].v;
			if (!isfinite(v))
				continue;
			ymin = v < ymin ? v : ymin;
			ymax = v > ymax ? v : ymax;
			tmin = s[i].pts[k].ts_ns < tmin ? s[i].pts[k].ts_ns : tmin;
			tmax = s[i].pts[k].ts_ns > tmax ? s[i].pts[k].ts_ns : tmax;
		}
		maxn = s[i].n > maxn ? s[i].n : maxn;
	}
	if (ymin > ymax) {
		fprintf(f, "nothing to plot: no values in the range\n");
		return 1;
	}

	/* columns: one per bucket step (or per point index) while they fit, else squeezed */
	size_t avail = (size_t)width - 4; /* " 1 │" */
	size_t nslots = o->step_ns ? (size_t)((tmax - tmin) / o->step_ns) + 1 : maxn;
	size_t ncols = nslots < avail ? nslots : avail;
	double *sum = calloc(ncols, sizeof(*sum));
	size_t *cnt = calloc(ncols, sizeof(*cnt));
	if (!sum || !cnt) {
		free(sum);
		free(cnt);
		return -ENOMEM;
	}

	char b1[64], b2[64];
	fmt_val(ymax, o->unit, b1, sizeof(b1));
	fprintf(f, "max %s\n", b1);
	for (size_t i = 0; i < ns; i++) {
		memset(sum, 0, ncols * sizeof(*sum));
		memset(cnt, 0, ncols * sizeof(*cnt));
		for (size_t k = 0; k < s[i].n; k++) {
			double v = s[i].pts[k].v;
			if (!isfinite(v))
				continue;
			double pos; /* 0..nslots-1 */
			if (o->step_ns)
				pos = (double)((s[i].pts[k].ts_ns - tmin) / o->step_ns);
			else
				pos = (double)k;
			size_t col = nslots <= 1 ? 0 : (size_t)(pos * (double)(ncols - 1) / (double)(nslots - 1) + 0.5);
			if (col >= ncols)
				col = ncols - 1;
			sum[col] += v;
			cnt[col]++;
		}
		fprintf(f, "%2zu %s", i + 1, o->ascii ? "|" : "\u2502");
		size_t blank = 0; /* trailing blanks are not written */
		for (size_t c = 0; c < ncols; c++) {
			if (!cnt[c]) {
				blank++;
				continue;
			}
			for (; blank; blank--)
				fputc(' ', f);
			double v = sum[c] / (double)cnt[c];
			int lvl = ymax > ymin ? (int)floor((v - ymin) / (ymax - ymin) * 7.0 + 0.5) : 3;
			lvl = lvl < 0 ? 0 : lvl > 7 ? 7 : lvl;
			if (o->ascii)
				fputc(blocks_ascii[lvl], f);
			else
				fputs(blocks_utf8[lvl], f);
		}
		fputc('\n', f);
	}
	fmt_val(ymin, o->unit, b1, sizeof(b1));
	fprintf(f, "min %s\n", b1);
	atel_q_fmt_time(tmin, b1, sizeof(b1));
	atel_q_fmt_time(tmax, b2, sizeof(b2));
	fprintf(f, "   %s %s .. %s (%zu column%s)\n", o->ascii ? "+" : "\u2514", b1, b2, ncols, ncols == 1 ? "" : "s");

	for (size_t i = 0; i < ns; i++) {
		double lo = INFINITY, hi = -INFINITY, last = NAN;
		for (size_t k = 0; k < s[i].n; k++) {
			double v = s[i].pts[k].v;
			if (!isfinite(v))
				continue;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
			last = v;
		}
		const char *label = s[i].label && *s[i].label ? s[i].label : "(all)";
		if (lo > hi) {
			fprintf(f, "%2zu %s  no values\n", i + 1, label);
			continue;
		}
		char b3[64];
		fmt_val(lo, o->unit, b1, sizeof(b1));
		fmt_val(hi, o->unit, b2, sizeof(b2));
		fmt_val(last, o->unit, b3, sizeof(b3));
		fprintf(f, "%2zu %s  min %s  max %s  last %s\n", i + 1, label, b1, b2, b3);
	}
	if (n > ns)
		fprintf(f, "... %zu more series not plotted (at most %zu; narrow with --labels or --by)\n", n - ns, ns);
	free(sum);
	free(cnt);
	return 0;
}
