/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what the verbs of the `atel` CLI share: global options, exit codes,
 * output helpers (aligned tables, colour, JSON), data-source opening.
 * Single-threaded (except `load`, which forks).
 */
#ifndef ATEL_CLI_H
#define ATEL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "util.h"

/* Exit codes (README "CLI"). */
enum {
	ATEL_EXIT_OK = 0,
	ATEL_EXIT_USAGE = 1,       /* bad arguments */
	ATEL_EXIT_DATA = 2,        /* unreadable/corrupt data, nothing to read, I/O error */
	ATEL_EXIT_NO_DAEMON = 3,   /* the verb needs a running ateld and there is none */
	ATEL_EXIT_DAEMON_UP = 4,   /* the verb refuses while ateld runs (clear all, reindex) */
	ATEL_EXIT_NOT_FOUND = 5,   /* the named trace does not exist */
	ATEL_EXIT_LOSS = 6,        /* load: records were dropped (unless --allow-loss) */
};

struct cli {
	const char *data_dir;      /* --data-dir, $ATEL_DATA_DIR, "./var" */
	const char *shm;           /* --shm, $ATEL_SHM, "atel" */
	bool shm_explicit;         /* given by --shm or $ATEL_SHM (else status may take ateld's) */
	const char *shm_from;      /* where shm came from: "--shm", "$ATEL_SHM", status file, default */
	char shm_buf[256];         /* the status file's segment name */
	bool json;                 /* --json */
	bool color;                /* stdout is a terminal and NO_COLOR is unset */
	bool quiet;
	char db_path[4096];        /* <data_dir>/telemetry.db */
	char seg_dir[4096];        /* <data_dir>/segments */
	char status_path[4096];    /* <data_dir>/ateld.status.json */
};

/* verbs: argv[0] is the verb name; return an exit code */
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_metrics(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_query(struct cli *c, int argc, char **argv);
/* `atel query 'PromQL'` (cmd_promql.c): chosen when promql_wanted(). */
bool promql_wanted(int argc, char **argv);
int cmd_query_promql(struct cli *c, int argc, char **argv);
int cmd_stats(struct cli *c, int argc, char **argv);
int cmd_traces(struct cli *c, int argc, char **argv);
int cmd_clear(struct cli *c, int argc, char **argv);
int cmd_replay(struct cli *c, int argc, char **argv);
int cmd_reindex(struct cli *c, int argc, char **argv);
int cmd_load(struct cli *c, int argc, char **argv);
int cmd_top(struct cli *c, int argc, char **argv);  /* cmd_top.c */
int cmd_sql(struct cli *c, int argc, char **argv);  /* cmd_sql.c: read-only SQL, telemetry_metrics from the log */

/* "atel: <verb>: message" on stderr. */
void cli_err(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ANSI colour codes, or "" when colour is off. */
const char *cli_c(const struct cli *c, const char *code);
#define C_BOLD "1"
#define C_DIM "2"
#define C_RED "31"
#define C_GREEN "32"
#define C_YELLOW "33"
#define C_CYAN "36"
#define C_RESET "0"

/* ---- aligned tables ------------------------------------------------------ */
struct table;
/* ncols columns with headers; right[i]: right-align column i. @return NULL on ENOMEM. */
struct table *table_new(unsigned ncols, const char *const *headers, const bool *right);
/* Adds a row of ncols cells (copied). @return 0 or -ENOMEM. */
int table_row(struct table *t, const char *const *cells);
/* Adds a row from printf-style cells separated by '\t'. */
int table_rowf(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void table_print(const struct table *t, FILE *f, const struct cli *c);
/* Rows added so far. */
size_t table_rows(const struct table *t);
void table_free(struct table *t);

/* ---- JSON ----------------------------------------------------------------- */
/* Prints j (formatted) and a newline to stdout, frees it. @return 0 or -ENOMEM. */
int cli_print_json(cJSON *j);
/* A uint64 as an exact JSON integer (raw text: ns timestamps exceed 2^53). */
cJSON *cli_json_u64(uint64_t v);
/* Reads back a number member, also one made by cli_json_u64 (raw text); 0 if absent. */
double cli_json_get(const cJSON *o, const char *key);
/* A double as a JSON number, or null for NaN/Inf (JSON has neither). */
cJSON *cli_json_num(double v);

/* ---- data sources ---------------------------------------------------------- */
/* Opens <data_dir>/telemetry.db read-only (works while ateld writes: WAL).
 * @return 0, -ENOENT if missing, or -errno/-EIO (err set). */
int cli_db_open_ro(const struct cli *c, sqlite3 **db, char *err, size_t errlen);
/* Read-write with a busy timeout, for clear. */
int cli_db_open_rw(const struct cli *c, sqlite3 **db, char *err, size_t errlen);
/* True if <seg_dir> holds at least one .atseg file. */
bool cli_have_segments(const char *dir);

/* Is ateld running for this data dir / shm? Fills pid and heartbeat age when known.
 * Checks the shm header (consumer pid alive, heartbeat < 5 s old) and the status file. */
bool cli_daemon_running(const struct cli *c, int *pid, uint64_t *hb_age_ns);
/* An ateld holds <data_dir>/ateld.lock (it certainly runs there); *pid from the lock file. */
bool cli_daemon_lock_held(const struct cli *c, int *pid);

/* Segment discovery, the same for every verb (tools/discover.c): --shm
 * (opt_shm), then $ATEL_SHM, then the shm.name in status_path of an ateld
 * that is running, then "atel". Needs status_path set. */
void cli_discover_shm(struct cli *c, const char *opt_shm);
/* The error when no running ateld was found, saying where atel looked; hint may be NULL. */
void cli_no_daemon_err(const struct cli *c, const char *verb, const char *hint);

/* Common option parsing helpers: "--flag VALUE" or "--flag=VALUE".
 * @return the value and advances *i, or NULL if argv[*i] is not that flag. */
const char *cli_opt(int argc, char **argv, int *i, const char *name);
/* Time range from --since/--start/--end (defaults: last hour). @return 0 or ATEL_EXIT_USAGE. */
struct cli_range {
	const char *since, *start, *end;
	uint64_t start_ns, end_ns;
};
int cli_range_resolve(const char *verb, struct cli_range *r);

#endif /* ATEL_CLI_H */
