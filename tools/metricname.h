/* SPDX-License-Identifier: MIT */
/*
 * metricname.h - resolving the metric names users type (tools/metricname.c).
 */
#ifndef ATEL_METRICNAME_H
#define ATEL_METRICNAME_H

#include <stdbool.h>
#include <stddef.h>

#include <sqlite3.h>

/* A set of metric names (owned strings). */
struct cli_names {
	char **v;
	size_t n, cap;
};
/* @return 0 or -1 (ENOMEM). Duplicates are ignored. */
int cli_names_add(struct cli_names *n, const char *name);
void cli_names_free(struct cli_names *n);
/* Adds the names in telemetry_series / every sample name of the log. */
void cli_names_from_db(sqlite3 *db, struct cli_names *n);
void cli_names_from_log(const char *seg_dir, struct cli_names *n);

/* The recorded name behind an exported one: strips a trailing _total,
 * _bucket, _count or _sum into out. @return false if name has none. */
bool cli_metric_alias(const char *name, char *out, size_t len);
/* The nearest known or catalog name (edit distance, also to `name_total`), or NULL. */
const char *cli_metric_suggest(const char *name, const struct cli_names *known);
/* name is recorded in known or pre-defined in the catalog. */
bool cli_metric_known(const char *name, const struct cli_names *known);

#endif /* ATEL_METRICNAME_H */
