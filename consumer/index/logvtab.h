/* SPDX-License-Identifier: MIT */
/*
 * logvtab.h - `atel_log`, a SQLite virtual table over the segment log that
 * answers the rows telemetry_metrics would hold in a full index (docs/schema.md
 * "The log as telemetry_metrics"), so SQL and the reference views keep working
 * on a compact index (index.mode).
 *
 *   CREATE VIRTUAL TABLE temp.telemetry_metrics USING atel_log('<data_dir>');
 *
 * The argument is a data directory (its segments/ is read) or a directory of
 * .atseg files. Columns: id (the rowid: the row's ordinal in log order, as a
 * full index built from the same files numbers it), ts_ns, name, labels,
 * series_hash, metric_type, value, op, pid, ring, seq. Read-only.
 *
 * The same source builds two ways: linked into the atel CLI against SQLite
 * (atel__logvtab_register), and as the loadable extension atel_sqlite.so
 * (ATEL_SQLITE_EXTENSION: sqlite3ext.h, entry point sqlite3_extension_init),
 * for the sqlite3 shell: `.load build/consumer/index/atel_sqlite`.
 */
#ifndef ATEL_LOGVTAB_H
#define ATEL_LOGVTAB_H

#include <stddef.h>

struct sqlite3;

/* Registers the module "atel_log" and the SQL function atel_shadow(DIR) on db.
 * @return a SQLite result code. */
int atel__logvtab_register(struct sqlite3 *db);

/*
 * Makes telemetry_metrics the log of data_dir for this connection:
 * temp.telemetry_metrics USING atel_log(data_dir), and a temp copy of every
 * view of the main schema (a view of main binds its tables in main, so the
 * copy, which binds temp first, is what makes v_agent_performance & co. read
 * the log). *nviews (may be NULL) gets the number of views copied.
 * @return 0, or -EINVAL / -EIO with err set.
 */
int atel__logvtab_shadow(struct sqlite3 *db, const char *data_dir, int *nviews, char *err, size_t errlen);

#endif /* ATEL_LOGVTAB_H */
