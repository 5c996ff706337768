/* SPDX-License-Identifier: MIT */
/*
 * atel.c - the `atel` CLI: global options, verb dispatch, and the output and
 * data-source helpers every verb shares (cli.h). Usage: README "CLI".
 */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "query.h"
#include "segment.h"

static const char usage_text[] =
	"usage: atel [--data-dir DIR] [--shm NAME] [--json] VERB [ARGS]\n"
	"\n"
	"verbs:\n"
	"  status                 sidecar up/down, rings, lag, drops, segments, exporters, disk use\n"
	"  metrics [SELECTOR]     current value of every series (from the log or the index)\n"
	"  export [--format json|prometheus] [-o FILE]   write a snapshot of the current values\n"
	"  query METRIC [--labels k=v,...] [--since 1h | --start T --end T]\n"
	"        [--agg avg|sum|min|max|count|p50|p95|p99|rate] [--interval 5m] [--by k,...]\n"
	"        [--moving-average N] [--anomalies SIGMA] [--rate WINDOW]\n"
	"  query 'PROMQL' [--time T | --range 1h | --start T --end T] [--step 1m]   PromQL on the log\n"
	"  traces [TRACE_ID]      recent traces, or one trace as a waterfall (--json: OTLP JSON)\n"
	"  stats METRIC           count, min, max, avg, stddev, p50, p95, p99 over a range\n"
	"  clear metrics|traces|all [--yes]   delete indexed rows (all: also segment files)\n"
	"  replay PATH            verify and summarise segment files offline (--emit jsonl, --into DB)\n"
	"  reindex                rebuild telemetry.db from the segment files\n"
	"  load                   run the synthetic agent swarm against ateld\n"
	"  top                    live view: drain rate, drops, ring fill, rates per metric/producer\n"
	"  sql \"SELECT ...\"       read-only SQL on the index, telemetry_metrics read from the log\n"
	"\n"
	"global options (before the verb):\n"
	"  --data-dir DIR   data directory (default $ATEL_DATA_DIR or ./var)\n"
	"  --shm NAME       shared-memory segment (default: $ATEL_SHM, else the one the ateld\n"
	"                   running on DIR uses (its status file), else atel)\n"
	"  --json           machine-readable output (also accepted after the verb)\n"
	"  --no-color       no ANSI colour (also: NO_COLOR set, or stdout not a terminal)\n"
	"  --version        print the version and exit\n"
	"\n"
	"`atel VERB --help` describes a verb. Exit codes: 0 ok, 1 usage, 2 data error,\n"
	"3 ateld not running (needed), 4 ateld running (verb refuses), 5 not found,\n"
	"6 load: records were lost.\n";

void cli_err(const char *verb, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "atel: %s%s", verb ? verb : "", verb ? ": " : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_c(const struct cli *c, const char *code)
{
	static char buf[8][12];
	static unsigned k;
	if (!c->color)
		return "";
	char *b = buf[k++ % 8];
	snprintf(b, sizeof(buf[0]), "\033[%sm", code);
	return b;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name)
{
	size_t nl = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, nl) != 0)
		return NULL;
	if (a[nl] == '=')
		return a + nl + 1;
	if (a[nl] != 0)
		return NULL;
	if (*i + 1 >= argc) {
		cli_err(NULL, "%s needs a value", name);
		return "";
	}
	(*i)++;
	return argv[*i];
}

int cli_range_resolve(const char *verb, struct cli_range *r)
{
	char err[256];
	uint64_t now = atel__now_ns();
	if (r->since && (r->start || r->end)) {
		cli_err(verb, "--since and --start/--end exclude each other");
		return ATEL_EXIT_USAGE;
	}
	if (r->since) {
		uint64_t d;
		if (atel_q_parse_duration(r->since, &d, err, sizeof(err)) < 0) {
			cli_err(verb, "--since: %s", err);
			return ATEL_EXIT_USAGE;
		}
		r->start_ns = d > now ? 0 : now - d;
		r->end_ns = now;
		return 0;
	}
	r->start_ns = now - 3600ull * 1000000000ull;
	r->end_ns = now;
	if (r->start && atel_q_parse_time(r->start, now, &r->start_ns, err, sizeof(err)) < 0) {
		cli_err(verb, "--start: %s", err);
		return ATEL_EXIT_USAGE;
	}
	if (r->end && atel_q_parse_time(r->end, now, &r->end_ns, err, sizeof(err)) < 0) {
		cli_err(verb, "--end: %s", err);
		return ATEL_EXIT_USAGE;
	}
	if (r->end_ns < r->start_ns) {
		cli_err(verb, "--end is before --start");
		return ATEL_EXIT_USAGE;
	}
	return 0;
}

/* ---- tables -------------------------------------------------------------- */

struct table {
	unsigned ncols;
	char **hdr;
	bool *right;
	char ***rows;
	size_t n, cap;
};

struct table *table_new(unsigned ncols, const char *const *headers, const bool *right)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->hdr = calloc(ncols, sizeof(char *));
	t->right = calloc(ncols, sizeof(bool));
	if (!t->hdr || !t->right) {
		table_free(t);
		return NULL;
	}
	for (unsigned i = 0; i < ncols; i++) {
		t->hdr[i] = strdup(headers[i]);
		t->right[i] = right ? right[i] : false;
	}
	return t;
}

int table_row(struct table *t, const char *const *cells)
{
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 32;
		char ***nr = realloc(t->rows, nc * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		t->rows = nr;
		t->cap = nc;
	}
	char **row = calloc(t->ncols, sizeof(char *));
	if (!row)
		return -ENOMEM;
	for (unsigned i = 0; i < t->ncols; i++)
		row[i] = strdup(cells[i] ? cells[i] : "");
	t->rows[t->n++] = row;
	return 0;
}

int table_rowf(struct table *t, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	const char *cells[64] = { 0 };
	char *p = buf;
	for (unsigned i = 0; i < t->ncols && i < 64; i++) {
		cells[i] = p;
		char *tab = p ? strchr(p, '\t') : NULL;
		if (tab) {
			*tab = 0;
			p = tab + 1;
		} else {
			p = NULL;
		}
	}
	return table_row(t, cells);
}

/* display width of UTF-8 text (code points; the CLI prints no wide glyphs) */
static size_t dwidth(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

void table_print(const struct table *t, FILE *f, const struct cli *c)
{
	size_t w[64] = { 0 };
	unsigned nc = t->ncols < 64 ? t->ncols : 64;
	for (unsigned i = 0; i < nc; i++)
		w[i] = dwidth(t->hdr[i]);
	for (size_t r = 0; r < t->n; r++)
		for (unsigned i = 0; i < nc; i++) {
			size_t x = dwidth(t->rows[r][i]);
			if (x > w[i])
				w[i] = x;
		}
	fputs(cli_c(c, C_BOLD), f);
	for (unsigned i = 0; i < nc; i++) {
		size_t pad = w[i] - dwidth(t->hdr[i]);
		if (t->right[i])
			fprintf(f, "%*s%s", (int)pad, "", t->hdr[i]);
		else
			fprintf(f, "%s%*s", t->hdr[i], i + 1 < nc ? (int)pad : 0, "");
		if (i + 1 < nc)
			fputs("  ", f);
	}
	fprintf(f, "%s\n", cli_c(c, C_RESET));
	for (size_t r = 0; r < t->n; r++) {
		for (unsigned i = 0; i < nc; i++) {
			size_t pad = w[i] - dwidth(t->rows[r][i]);
			if (t->right[i])
				fprintf(f, "%*s%s", (int)pad, "", t->rows[r][i]);
			else
				fprintf(f, "%s%*s", t->rows[r][i], i + 1 < nc ? (int)pad : 0, "");
			if (i + 1 < nc)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
}

size_t table_rows(const struct table *t)
{
	return t ? t->n : 0;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t r = 0; r < t->n; r++) {
		for (unsigned i = 0; i < t->ncols; i++)
			free(t->rows[r][i]);
		free(t->rows[r]);
	}
	free(t->rows);
	if (t->hdr)
		for (unsigned i = 0; i < t->ncols; i++)
			free(t->hdr[i]);
	free(t->hdr);
	free(t->right);
	free(t);
}

/* ---- JSON ------------------------------------------------------------------ */

int cli_print_json(cJSON *j)
{
	if (!j)
		return -ENOMEM;
	char *s = cJSON_Print(j);
	cJSON_Delete(j);
	if (!s)
		return -ENOMEM;
	puts(s);
	free(s);
	return 0;
}

cJSON *cli_json_u64(uint64_t v)
{
	/* raw decimal text: a double holds ns timestamps only to 256 ns */
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return cJSON_CreateRaw(buf);
}

double cli_json_get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsNumber(v))
		return v->valuedouble;
	if (cJSON_IsRaw(v) && v->valuestring)
		return strtod(v->valuestring, NULL);
	return 0;
}

cJSON *cli_json_num(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* ---- data sources ---------------------------------------------------------- */

static int db_open(const struct cli *c, sqlite3 **db, int flags, char *err, size_t errlen)
{
	*db = NULL;
	if (access(c->db_path, F_OK) != 0) {
		snprintf(err, errlen, "%s: no index database (run `atel reindex` or start ateld)", c->db_path);
		return -ENOENT;
	}
	if (sqlite3_open_v2(c->db_path, db, flags, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", c->db_path, *db ? sqlite3_errmsg(*db) : "cannot open");
		sqlite3_close(*db);
		*db = NULL;
		return -EIO;
	}
	sqlite3_busy_timeout(*db, 5000);
	/* is it an index at all? */
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(*db, "SELECT 1 FROM telemetry_metrics LIMIT 1", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: not an atel index: %s", c->db_path, sqlite3_errmsg(*db));
		sqlite3_finalize(st);
		sqlite3_close(*db);
		*db = NULL;
		return -EIO;
	}
	sqlite3_finalize(st);
	return 0;
}

int cli_db_open_ro(const struct cli *c, sqlite3 **db, char *err, size_t errlen)
{
	return db_open(c, db, SQLITE_OPEN_READONLY, err, errlen);
}

int cli_db_open_rw(const struct cli *c, sqlite3 **db, char *err, size_t errlen)
{
	return db_open(c, db, SQLITE_OPEN_READWRITE, err, errlen);
}

bool cli_have_segments(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	struct dirent *e;
	bool found = false;
	while (!found && (e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		found = l > 6 && strcmp(e->d_name + l - 6, ".atseg") == 0;
	}
	closedir(d);
	return found;
}

/* ---- main ------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} verbs[] = {
	{ "status", cmd_status },   { "metrics", cmd_metrics }, { "export", cmd_export },
	{ "query", cmd_query },	    { "traces", cmd_traces },	{ "stats", cmd_stats },
	{ "clear", cmd_clear },	    { "replay", cmd_replay },	{ "reindex", cmd_reindex },
	{ "load", cmd_load },
	{ "top", cmd_top },
	{ "sql", cmd_sql },
};

int main(int argc, char **argv)
{
	struct cli c = { 0 };
	c.data_dir = getenv("ATEL_DATA_DIR");
	if (!c.data_dir || !*c.data_dir)
		c.data_dir = "./var";
	const char *opt_shm = NULL; /* segment: cli_discover_shm below */
	bool nocolor = false;
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		nocolor = true;
	signal(SIGPIPE, SIG_DFL);

	int i = 1;
	for (; i < argc; i++) {
		const char *v;
		if (argv[i][0] != '-')
			break;
		if ((v = cli_opt(argc, argv, &i, "--data-dir")) != NULL) {
			if (!*v)
				return ATEL_EXIT_USAGE;
			c.data_dir = v;
		} else if ((v = cli_opt(argc, argv, &i, "--shm")) != NULL) {
			if (!*v)
				return ATEL_EXIT_USAGE;
			opt_shm = v;
		} else if (strcmp(argv[i], "--json") == 0) {
			c.json = true;
		} else if (strcmp(argv[i], "--no-color") == 0) {
			nocolor = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_text, stdout);
			return ATEL_EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			puts("atel 0.1.0");
			return ATEL_EXIT_OK;
		} else {
			cli_err(NULL, "unknown option %s (see atel --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return ATEL_EXIT_USAGE;
	}
	c.color = !nocolor && isatty(STDOUT_FILENO);
	snprintf(c.db_path, sizeof(c.db_path), "%s/telemetry.db", c.data_dir);
	snprintf(c.seg_dir, sizeof(c.seg_dir), "%s/segments", c.data_dir);
	snprintf(c.status_path, sizeof(c.status_path), "%s/ateld.status.json", c.data_dir);
	cli_discover_shm(&c, opt_shm);
	for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
		if (strcmp(argv[i], verbs[k].name) == 0) {
			/* --json after the verb is accepted too; verbs see their own args */
			int vargc = 0;
			char **vargv = calloc((size_t)(argc - i + 1), sizeof(char *));
			if (!vargv)
				return ATEL_EXIT_DATA;
			for (int a = i; a < argc; a++) {
				if (a > i && strcmp(argv[a], "--json") == 0) {
					c.json = true;
					continue;
				}
				vargv[vargc++] = argv[a];
			}
			int rc = verbs[k].fn(&c, vargc, vargv);
			free(vargv);
			fflush(stdout);
			return rc;
		}
	cli_err(NULL, "unknown verb \"%s\" (see atel --help)", argv[i]);
	return ATEL_EXIT_USAGE;
}
