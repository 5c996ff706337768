/* SPDX-License-Identifier: MIT */
/*
 * Terminal charts of query results (`atel query ... --plot`, issue 17 item 5).
 *
 * One row per series (a sparkline), all series on one shared y scale and one
 * shared time axis, then the x range and a legend. Pure: no environment, no
 * clock; the caller decides the width and the character set.
 *
 *   max 5
 *    1 │▁▅█▅▁
 *    2 │▁▁▂▂▂
 *   min 0
 *      └ 2023-11-14T22:13:20Z .. 2023-11-14T22:13:24Z (5 columns)
 *    1 {tool="grep"}  min 0  max 5  last 0
 *    2 {tool="read"}  min 0  max 1  last 1
 *
 * A column shows the mean of the finite values that fall in it, as one of 8
 * levels (▁▂▃▄▅▆▇█; ASCII: _.-:=+*#) between the y min and max of all plotted
 * series; a column without a value is blank. A flat range (max == min) shows
 * level 4 (▄ or =).
 */
#ifndef ATEL_PLOT_H
#define ATEL_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "query.h"

struct atel_plot_series {
	const char *label;              /* legend text; NULL or "" shows "(all)" */
	const struct atel_qpoint *pts;  /* sorted by time */
	size_t n;
};

struct atel_plot_opts {
	int width;          /* terminal columns (clamped to 20..1000) */
	bool ascii;         /* plain ASCII instead of Unicode block characters */
	uint64_t step_ns;   /* bucket width of the points (0: unknown, one column per point index) */
	size_t max_series;  /* series plotted at most (0: 8); the rest are counted */
	const char *unit;   /* appended to values in the labels; NULL or "" for none */
};

/* Writes the chart to @f.
 * @return 1 when there was nothing to plot (no finite value; a one-line message
 * saying so was written), 0 when a chart was written, -ENOMEM. */
int atel_plot_write(FILE *f, const struct atel_plot_series *s, size_t n, const struct atel_plot_opts *o);

/* Whether the locale named by these variables (as getenv gives them: LC_ALL,
 * LC_CTYPE, LANG, the first non-empty one wins) has UTF-8 characters. */
bool atel_plot_utf8_locale(const char *lc_all, const char *lc_ctype, const char *lang);

#endif
