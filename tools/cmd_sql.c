/* SPDX-License-Identifier: MIT */
/*
 * cmd_sql.c - `atel sql "SELECT ..."`: one read-only SQL statement on
 * telemetry.db with telemetry_metrics answered by the segment log (the
 * atel_log virtual table, consumer/index/logvtab.c), so the raw samples and
 * the reference views answer on a compact index too (issue 13).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "logvtab.h"

#ifndef ATEL_SQLITE_EXT_INSTALLED
#define ATEL_SQLITE_EXT_INSTALLED "/usr/local/lib/atel/atel_sqlite.so"
#endif

extern const char atel__schema_sql[];

static const char sql_help_head[] =
	"usage: atel [--data-dir DIR] sql [--json] \"STATEMENT\"\n"
	"\n"
	"Runs one read-only SQL statement (SELECT, WITH, EXPLAIN, read-only PRAGMAs) on\n"
	"DIR/telemetry.db, opened read-only, with telemetry_metrics answered by the segment\n"
	"files of DIR (the atel_log virtual table: the rows a full index would hold, also\n"
	"on a compact index) and the views that read it (v_recent_metrics,\n"
	"v_agent_performance, v_tool_usage, v_context_utilization, v_error_rate) bound to\n"
	"it. The index's own rows stay readable as main.telemetry_metrics. Without a\n"
	"telemetry.db the schema's empty tables and views are made in memory, so the\n"
	"metric views still answer from the segment files.\n"
	"\n"
	"A statement that writes (INSERT, UPDATE, DELETE, CREATE, DROP, ATTACH of a\n"
	"writable file, ...) is refused (exit 1), as is more than one statement.\n"
	"Constraints on ts_ns (=, <, <=, >, >=), name (=, IN) and id let later scans of\n"
	"the statement skip segment files already read (docs/schema.md).\n"
	"\n"
	"  --json   an array with one object per row, one a line (column name: value;\n"
	"           integers exact), streamed as the rows come\n"
	"\n"
	"The module comes from the loadable extension atel_sqlite.so (the one the sqlite3\n"
	"shell loads: see README \"SQLite index\"), looked for in $ATEL_SQLITE_EXT, beside\n"
	"this atel's build tree (../consumer/index/) and in " ATEL_SQLITE_EXT_INSTALLED ";\n"
	"when none is found (or it fails to load) atel registers the same module built in.\n"
	"\n"
	"Exit codes: 0 ok, 1 bad or writing statement, 2 no data or an error while reading.\n"
	"\n"
	"  atel sql \"SELECT name, count(*) FROM telemetry_metrics GROUP BY name\"\n"
	"  atel sql --json \"SELECT * FROM v_agent_performance\"\n";

/* The extension to load, or "" when none is found. */
static void find_extension(char *out, size_t len)
{
	const char *env = getenv("ATEL_SQLITE_EXT");
	char exe[PATH_MAX];
	ssize_t n;
	struct stat st;

	out[0] = '\0';
	if (env && *env) {
		if (stat(env, &st) == 0 && S_ISREG(st.st_mode))
			snprintf(out, len, "%s", env);
		return; /* given: that file or none */
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/../consumer/index/atel_sqlite.so", exe);
			if (stat(out, &st) == 0 && S_ISREG(st.st_mode))
				return;
		}
	}
	snprintf(out, len, "%s", ATEL_SQLITE_EXT_INSTALLED);
	if (stat(out, &st) != 0 || !S_ISREG(st.st_mode))
		out[0] = '\0';
}

/* Loads the extension, else registers the built-in module. *how says which. */
static int setup_module(sqlite3 *db, char *how, size_t len)
{
	char path[PATH_MAX + 64];
	char *msg = NULL;

	find_extension(path, sizeof(path));
	if (path[0]) {
		/* the C API only (not the SQL load_extension()), and only for this call */
		sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, NULL);
		int rc = sqlite3_load_extension(db, path, NULL, &msg);
		sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
		if (rc == SQLITE_OK) {
			snprintf(how, len, "extension %s", path);
			return 0;
		}
		snprintf(how, len, "built-in module (%s did not load: %s)", path, msg ? msg : "?");
		sqlite3_free(msg);
	} else {
		snprintf(how, len, "built-in module (no atel_sqlite.so found)");
	}
	return atel__logvtab_register(db) == SQLITE_OK ? 0 : -EIO;
}

/* A column value as JSON (integers as exact raw text). */
static cJSON *json_value(sqlite3_stmt *st, int i)
{
	char buf[32];

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", (long long)sqlite3_column_int64(st, i));
		return cJSON_CreateRaw(buf);
	case SQLITE_FLOAT:
		return cli_json_num(sqlite3_column_double(st, i));
	case SQLITE_TEXT:
		return cJSON_CreateString((const char *)sqlite3_column_text(st, i));
	case SQLITE_BLOB: {
		const unsigned char *b = sqlite3_column_blob(st, i);
		int n = sqlite3_column_bytes(st, i);
		char *hex = malloc((size_t)n * 2 + 1);
		cJSON *j;
		if (!hex)
			return NULL;
		for (int k = 0; k < n; k++)
			snprintf(hex + 2 * k, 3, "%02x", b[k]);
		hex[2 * n] = '\0';
		j = cJSON_CreateString(hex);
		free(hex);
		return j;
	}
	default:
		return cJSON_CreateNull();
	}
}

/* A column value as table text (malloc'd). */
static char *text_value(sqlite3_stmt *st, int i)
{
	char buf[ATEL_FMT_DOUBLE_MAX + 8];

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", (long long)sqlite3_column_int64(st, i));
		return strdup(buf);
	case SQLITE_FLOAT:
		atel__fmt_double(buf, sqlite3_column_double(st, i));
		return strdup(buf);
	case SQLITE_TEXT:
		return strdup((const char *)sqlite3_column_text(st, i));
	case SQLITE_BLOB: {
		int n = sqlite3_column_bytes(st, i);
		snprintf(buf, sizeof(buf), "<blob %d bytes>", n);
		return strdup(buf);
	}
	default:
		return strdup("NULL");
	}
}

/* Opens the index read-only, or the schema in memory when there is none.
 * @return 0 or an exit code. */
static int open_db(const struct cli *c, sqlite3 **db)
{
	struct stat st;
	char *msg = NULL;

	*db = NULL;
	if (stat(c->db_path, &st) == 0) {
		if (sqlite3_open_v2(c->db_path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
			cli_err("sql", "%s: %s", c->db_path, *db ? sqlite3_errmsg(*db) : "cannot open");
			sqlite3_close(*db);
			*db = NULL;
			return ATEL_EXIT_DATA;
		}
		sqlite3_busy_timeout(*db, 5000);
		return 0;
	}
	if (!cli_have_segments(c->seg_dir)) {
		cli_err("sql", "no data in %s: neither telemetry.db nor segment files in %s", c->data_dir, c->seg_dir);
		return ATEL_EXIT_DATA;
	}
	if (sqlite3_open_v2(":memory:", db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_exec(*db, atel__schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		cli_err("sql", "the schema in memory: %s", msg ? msg : (*db ? sqlite3_errmsg(*db) : "cannot open"));
		sqlite3_free(msg);
		sqlite3_close(*db);
		*db = NULL;
		return ATEL_EXIT_DATA;
	}
	return 0;
}

/* The authorizer of the user's statement: denies every action that writes
 * (SQLite asks while preparing), and remembers that it did for the message. */
static int deny_writes(void *arg, int action, const char *a, const char *b, const char *db, const char *trigger)
{
	(void)a;
	(void)b;
	(void)db;
	(void)trigger;
	switch (action) {
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
	case SQLITE_CREATE_INDEX:
	case SQLITE_CREATE_TABLE:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_CREATE_TEMP_VIEW:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_CREATE_VIEW:
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_INDEX:
	case SQLITE_DROP_TABLE:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_DROP_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_VIEW:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_DROP_VIEW:
	case SQLITE_DROP_VTABLE:
	case SQLITE_ALTER_TABLE:
	case SQLITE_REINDEX:
	case SQLITE_ANALYZE:
		*(bool *)arg = true;
		return SQLITE_DENY;
	default:
		return SQLITE_OK;
	}
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';')
			return false;
	return true;
}

int cmd_sql(struct cli *c, int argc, char **argv)
{
	const char *sql = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char how[PATH_MAX + 256], err[512] = "";
	const char *tail = NULL;
	int rc, ex = ATEL_EXIT_OK;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			char path[PATH_MAX + 64];
			fputs(sql_help_head, stdout);
			find_extension(path, sizeof(path));
			printf("\nHere: %s\n", path[0] ? path : "no atel_sqlite.so found: the built-in module");
			return ATEL_EXIT_OK;
		}
		if (argv[i][0] == '-' && argv[i][1] && !sql) {
			cli_err("sql", "unknown option %s (see atel sql --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
		if (sql) {
			cli_err("sql", "one statement expected, as one argument (quote it; see atel sql --help)");
			return ATEL_EXIT_USAGE;
		}
		sql = argv[i];
	}
	if (!sql || blank(sql)) {
		cli_err("sql", "a SQL statement expected (see atel sql --help)");
		return ATEL_EXIT_USAGE;
	}
	if ((ex = open_db(c, &db)) != 0)
		return ex;
	if (setup_module(db, how, sizeof(how)) < 0 ||
	    atel__logvtab_shadow(db, c->data_dir, NULL, err, sizeof(err)) < 0) {
		cli_err("sql", "making telemetry_metrics the log of %s: %s", c->data_dir, err[0] ? err : how);
		sqlite3_close(db);
		return ATEL_EXIT_DATA;
	}
	/* nothing writes from here on, not even to temp */
	sqlite3_exec(db, "PRAGMA query_only = 1", NULL, NULL, NULL);

	bool writes = false;
	sqlite3_set_authorizer(db, deny_writes, &writes);
	if (sqlite3_prepare_v2(db, sql, -1, &st, &tail) != SQLITE_OK || !st) {
		if (writes || strstr(sqlite3_errmsg(db), "may not be modified")) { /* the latter: a virtual table */
			cli_err("sql", "refused: atel sql is read-only and this statement would write (%.60s%s)", sql,
				strlen(sql) > 60 ? "..." : "");
			sqlite3_finalize(st);
			sqlite3_close(db);
			return ATEL_EXIT_USAGE;
		}
		cli_err("sql", "%s", st ? sqlite3_errmsg(db) : (sqlite3_errcode(db) ? sqlite3_errmsg(db) : "no statement"));
		sqlite3_finalize(st);
		sqlite3_close(db);
		return ATEL_EXIT_USAGE;
	}
	if (tail && !blank(tail)) {
		sqlite3_stmt *more = NULL;
		const char *t2 = NULL;
		/* a tail of comments only is no statement */
		if (sqlite3_prepare_v2(db, tail, -1, &more, &t2) != SQLITE_OK || more) {
			sqlite3_finalize(more);
			cli_err("sql", "one statement at a time (a second one starts at \"%.40s\")", tail);
			ex = ATEL_EXIT_USAGE;
			goto out;
		}
	}
	if (writes || !sqlite3_stmt_readonly(st)) {
		cli_err("sql", "refused: atel sql is read-only and this statement would write (%.60s%s)", sql,
			strlen(sql) > 60 ? "..." : "");
		ex = ATEL_EXIT_USAGE;
		goto out;
	}

	int ncol = sqlite3_column_count(st);
	size_t njson = 0;
	struct table *tab = NULL;
	const char **names = ncol ? calloc((size_t)ncol, sizeof(*names)) : NULL;
	bool *right = ncol ? calloc((size_t)ncol, sizeof(*right)) : NULL;
	char **rows_text = NULL; /* human output: cells kept until the types are known */
	size_t nrows = 0, rcap = 0;
	bool typed_seen[64] = { false };

	if (ncol && (!names || !right)) {
		ex = ATEL_EXIT_DATA;
		cli_err("sql", "out of memory");
		goto done;
	}
	for (int i = 0; i < ncol; i++)
		names[i] = sqlite3_column_name(st, i);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (c->json) {
			cJSON *o = cJSON_CreateObject();
			for (int i = 0; o && i < ncol; i++) {
				cJSON *v = json_value(st, i);
				if (!v || !cJSON_AddItemToObject(o, names[i], v)) {
					cJSON_Delete(v);
					cJSON_Delete(o);
					o = NULL;
				}
			}
			/* streamed, one object a line: a large answer is not held in memory
			 * (an error later leaves the array unclosed, and exit 2) */
			char *txt = o ? cJSON_PrintUnformatted(o) : NULL;
			cJSON_Delete(o);
			if (!txt) {
				cli_err("sql", "out of memory");
				ex = ATEL_EXIT_DATA;
				goto done;
			}
			printf("%s%s", njson++ ? ",\n" : "[\n", txt);
			cJSON_free(txt);
			continue;
		}
		if (nrows == rcap) {
			size_t ncap = rcap ? rcap * 2 : 64;
			char **nr = realloc(rows_text, ncap * (size_t)ncol * sizeof(*nr));
			if (!nr) {
				cli_err("sql", "out of memory");
				ex = ATEL_EXIT_DATA;
				goto done;
			}
			rows_text = nr;
			rcap = ncap;
		}
		for (int i = 0; i < ncol; i++) {
			int t = sqlite3_column_type(st, i);
			rows_text[nrows * (size_t)ncol + (size_t)i] = text_value(st, i);
			/* a column is right-aligned when its first non-NULL value is a number */
			if (i < 64 && !typed_seen[i] && t != SQLITE_NULL) {
				typed_seen[i] = true;
				right[i] = t == SQLITE_INTEGER || t == SQLITE_FLOAT;
			}
		}
		nrows++;
	}
	if (rc != SQLITE_DONE) {
		if (writes) { /* atel_shadow() and the like write while they run */
			cli_err("sql", "refused: atel sql is read-only and this statement would write (%.60s%s)", sql,
				strlen(sql) > 60 ? "..." : "");
			ex = ATEL_EXIT_USAGE;
		} else {
			cli_err("sql", "%s", sqlite3_errmsg(db));
			ex = rc == SQLITE_READONLY ? ATEL_EXIT_USAGE : ATEL_EXIT_DATA;
		}
		goto done;
	}
	if (c->json) {
		fputs(njson ? "\n]\n" : "[]\n", stdout);
	} else if (ncol) {
		tab = table_new((unsigned)ncol, names, right);
		for (size_t r = 0; tab && r < nrows; r++)
			table_row(tab, (const char *const *)&rows_text[r * (size_t)ncol]);
		if (tab)
			table_print(tab, stdout, c);
		printf("%s%zu row%s%s\n", cli_c(c, C_DIM), nrows, nrows == 1 ? "" : "s", cli_c(c, C_RESET));
	}
done:
	if (rows_text) {
		for (size_t k = 0; k < nrows * (size_t)ncol; k++)
			free(rows_text[k]);
		free(rows_text);
	}
	table_free(tab);
	free(names);
	free(right);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ex;
}
