/* SPDX-License-Identifier: MIT */
/*
 * cmd_top.c - `atel top`: a live terminal view of a running ateld, refreshed
 * in place with plain ANSI escapes (no curses): records drained per second,
 * drops by cause, ring fill per ring, exporter state, and the samples per
 * second of every metric and every producer process over a recent window.
 *
 * Sources, read-only: ateld's status file (rewritten every second: counters,
 * rings, exporters) and the SQLite index (samples per metric and per pid in
 * the window). A compact index (index.mode, the default) or none keeps no
 * raw samples: then the segment log is read into a full index in memory
 * (logshadow.h), once and then only what was appended, and the same SQL
 * counts the window from it. With --once, or when stdout is not a terminal, it prints one
 * snapshot (--json: as a document) and exits, for scripts.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "index.h"     /* atel__ix_mode_compact */
#include "logshadow.h"
#include "query.h"

static const char top_help[] =
	"usage: atel top [--once] [--json] [--interval DUR] [--window DUR] [--sort rate|name] [--filter TEXT]\n"
	"A live view of ateld: records drained per second, drops by cause, ring fill, exporter\n"
	"state, and samples per second per metric, per producer and per agent_type over the last --window\n"
	"(default 10s). Refreshes every --interval (default 1s). Keys: q quit, s switch the\n"
	"sort (rate, name), f cycle the filter through the metric name prefixes, c clear it.\n"
	"--once (or stdout not a terminal): one snapshot and exit; --json prints it as JSON.\n"
	"Exit: 0 ok, 1 usage, 2 no status file (ateld never ran with this data dir).\n";

struct rate_row {
	char name[160];
	double count, sum;
};

struct top_snap {
	cJSON *status;           /* the status file */
	struct rate_row *metrics, *agents, *types; /* types: by the agent_type label */
	size_t nmetrics, nagents, ntypes;
	uint64_t taken_ns;
};

static void snap_free(struct top_snap *s)
{
	cJSON_Delete(s->status);
	free(s->metrics);
	free(s->agents);
	free(s->types);
	memset(s, 0, sizeof(*s));
}

static cJSON *read_status(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	cJSON *j;

	if (!f)
		return NULL;
	buf = malloc(16u << 20);
	n = buf ? fread(buf, 1, (16u << 20) - 1, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = 0;
	j = cJSON_Parse(buf);
	free(buf);
	return j;
}

static int rows_query(sqlite3 *db, const char *sql, uint64_t since_ns, const char *filter, struct rate_row **out,
		      size_t *n)
{
	sqlite3_stmt *st;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ns);
	sqlite3_bind_text(st, 2, filter ? filter : "", -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 32;
			struct rate_row *r = realloc(*out, nc * sizeof(*r));
			if (!r)
				break;
			*out = r;
			cap = nc;
		}
		const unsigned char *t = sqlite3_column_text(st, 0);
		snprintf((*out)[*n].name, sizeof((*out)[*n].name), "%s", t ? (const char *)t : "?");
		(*out)[*n].count = sqlite3_column_double(st, 1);
		(*out)[*n].sum = sqlite3_column_double(st, 2);
		(*n)++;
	}
	sqlite3_finalize(st);
	return 0;
}

static const char *comm_of(const cJSON *status, long pid)
{
	const cJSON *r;

	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(status, "rings"))
	{
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "comm");
		if ((long)cli_json_get(r, "pid") == pid && cJSON_IsString(c) && c->valuestring[0])
			return c->valuestring;
	}
	return NULL;
}

/* The log as a full index while telemetry.db is compact (kept across refreshes). */
static struct atel_logshadow *top_shadow;
#define TOP_SHADOW_MAX_BYTES (512ull << 20)

/* @return telemetry.db if it is a full index, else the log's shadow synced
 * to the log's end (samples before since are skipped and dropped), or NULL. */
static sqlite3 *top_db(struct cli *c, uint64_t since, bool *shadow)
{
	char err[512];
	sqlite3 *db = NULL;

	*shadow = false;
	if (cli_db_open_ro(c, &db, err, sizeof(err)) == 0) {
		if (atel__ix_mode_compact(db) == 0)
			return db;
		sqlite3_close(db);
	}
	if (!cli_have_segments(c->seg_dir))
		return NULL;
	if (!top_shadow && atel__logshadow_open(&top_shadow, c->seg_dir, TOP_SHADOW_MAX_BYTES, err, sizeof(err)) < 0)
		return NULL;
	if (atel__logshadow_sync(top_shadow, since, NULL, NULL, err, sizeof(err)) < 0) {
		static bool said;
		if (!said)
			cli_err("top", "warning: reading the segment log: %s", err);
		said = true;
	}
	db = atel__logshadow_db(top_shadow);
	/* a window only moves forward: what fell out of it is never asked again */
	{
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "DELETE FROM telemetry_metrics WHERE ts_ns < ?1", -1, &st, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
	}
	*shadow = true;
	return db;
}

static int take(struct cli *c, uint64_t window_ns, const char *filter, struct top_snap *s)
{
	sqlite3 *db = NULL;
	uint64_t now = atel__now_ns(), since = now > window_ns ? now - window_ns : 0;
	bool shadow;

	memset(s, 0, sizeof(*s));
	s->taken_ns = now;
	if (!(s->status = read_status(c->status_path)))
		return -ENOENT;
	if ((db = top_db(c, since, &shadow))) {
		rows_query(db,
			   "SELECT name, COUNT(*), SUM(value) FROM telemetry_metrics WHERE ts_ns >= ?1 "
			   "AND substr(name, 1, length(?2)) = ?2 GROUP BY name",
			   since, filter, &s->metrics, &s->nmetrics);
		rows_query(db,
			   "SELECT pid, COUNT(*), COUNT(DISTINCT name) FROM telemetry_metrics WHERE ts_ns >= ?1 "
			   "AND substr(name, 1, length(?2)) = ?2 GROUP BY pid",
			   since, filter, &s->agents, &s->nagents);
		rows_query(db,
			   "SELECT json_extract(labels, '$.agent_type') AS at, COUNT(*), "
			   "SUM(CASE WHEN name = 'agent_execution_total' THEN value ELSE 0 END) FROM telemetry_metrics "
			   "WHERE ts_ns >= ?1 AND substr(name, 1, length(?2)) = ?2 AND at IS NOT NULL GROUP BY at",
			   since, filter, &s->types, &s->ntypes);
		/* a pid's command name, from the rings it owns */
		for (size_t i = 0; i < s->nagents; i++) {
			long pid = strtol(s->agents[i].name, NULL, 10);
			const char *comm = comm_of(s->status, pid);
			if (comm) {
				char nm[160];
				snprintf(nm, sizeof(nm), "%ld %s", pid, comm);
				memcpy(s->agents[i].name, nm, sizeof(nm));
			}
		}
		if (!shadow)
			sqlite3_close(db);
	}
	return 0;
}

static bool sort_by_name;
static int cmp_rate(const void *a, const void *b)
{
	const struct rate_row *x = a, *y = b;
	if (!sort_by_name && x->count != y->count)
		return x->count < y->count ? 1 : -1;
	return strcmp(x->name, y->name);
}

static double drained_of(const cJSON *st)
{
	return cli_json_get(cJSON_GetObjectItemCaseSensitive(st, "stats"), "records_drained");
}

static cJSON *snap_json(const struct top_snap *s, const struct top_snap *prev, double window_s)
{
	cJSON *j = cJSON_CreateObject(), *a, *st = cJSON_GetObjectItemCaseSensitive(s->status, "stats"), *r;
	const cJSON *shm = cJSON_GetObjectItemCaseSensitive(s->status, "shm");
	double cap = cli_json_get(shm, "ring_capacity");

	cJSON_AddNumberToObject(j, "window_s", window_s);
	cJSON_AddItemToObject(j, "records_drained", cli_json_u64((uint64_t)drained_of(s->status)));
	if (prev && prev->status && s->taken_ns > prev->taken_ns)
		cJSON_AddItemToObject(j, "records_per_s",
				      cli_json_num((drained_of(s->status) - drained_of(prev->status)) /
						   ((double)(s->taken_ns - prev->taken_ns) / 1e9)));
	else
		cJSON_AddNullToObject(j, "records_per_s");
	cJSON_AddItemToObject(j, "drops", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(st, "drops"), true));
	a = cJSON_AddArrayToObject(j, "metrics");
	for (size_t i = 0; i < s->nmetrics; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", s->metrics[i].name);
		cJSON_AddNumberToObject(o, "samples", s->metrics[i].count);
		cJSON_AddNumberToObject(o, "samples_per_s", s->metrics[i].count / window_s);
		cJSON_AddItemToArray(a, o);
	}
	a = cJSON_AddArrayToObject(j, "agents");
	for (size_t i = 0; i < s->nagents; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "producer", s->agents[i].name);
		cJSON_AddNumberToObject(o, "samples", s->agents[i].count);
		cJSON_AddNumberToObject(o, "samples_per_s", s->agents[i].count / window_s);
		cJSON_AddNumberToObject(o, "metrics", s->agents[i].sum);
		cJSON_AddItemToArray(a, o);
	}
	a = cJSON_AddArrayToObject(j, "agent_types");
	for (size_t i = 0; i < s->ntypes; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "agent_type", s->types[i].name);
		cJSON_AddNumberToObject(o, "samples", s->types[i].count);
		cJSON_AddNumberToObject(o, "samples_per_s", s->types[i].count / window_s);
		cJSON_AddNumberToObject(o, "executions", s->types[i].sum);
		cJSON_AddNumberToObject(o, "executions_per_s", s->types[i].sum / window_s);
		cJSON_AddItemToArray(a, o);
	}
	a = cJSON_AddArrayToObject(j, "rings");
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s->status, "rings"))
	{
		cJSON *o = cJSON_Duplicate(r, true);
		cJSON_AddNumberToObject(o, "fill", cap > 0 ? cli_json_get(r, "lag") / cap : 0);
		cJSON_AddItemToArray(a, o);
	}
	cJSON_AddItemToObject(j, "exporters",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s->status, "exporters"), true));
	return j;
}

static void bar(double fill, int width, char *out)
{
	int n = (int)(fill * width + 0.5);

	if (n > width)
		n = width;
	for (int i = 0; i < width; i++)
		out[i] = i < n ? '#' : '.';
	out[width] = 0;
}

/* One screen (or one snapshot) for people. */
static void render(const struct cli *c, struct top_snap *s, const struct top_snap *prev, double window_s,
		   const char *filter, int rows)
{
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(s->status, "stats");
	const cJSON *drops = cJSON_GetObjectItemCaseSensitive(st, "drops"), *d, *r, *ex;
	const cJSON *shm = cJSON_GetObjectItemCaseSensitive(s->status, "shm");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(s->status, "state");
	double cap = cli_json_get(shm, "ring_capacity");
	char nb[4][32], b[48];
	int line = 0, left;

	qsort(s->metrics, s->nmetrics, sizeof(*s->metrics), cmp_rate);
	qsort(s->agents, s->nagents, sizeof(*s->agents), cmp_rate);
	qsort(s->types, s->ntypes, sizeof(*s->types), cmp_rate);
	printf("%satel top%s  ateld %s  drained %s", cli_c(c, C_BOLD), cli_c(c, C_RESET),
	       cJSON_IsString(state) ? state->valuestring : "?",
	       atel_q_fmt_count(drained_of(s->status), nb[0], 32));
	if (prev && prev->status && s->taken_ns > prev->taken_ns)
		printf("  %s records/s", atel_q_fmt_count((drained_of(s->status) - drained_of(prev->status)) /
							   ((double)(s->taken_ns - prev->taken_ns) / 1e9), nb[1], 32));
	printf("  window %gs  sort %s%s%s\n", window_s, sort_by_name ? "name" : "rate", filter && *filter ? "  filter " : "",
	       filter && *filter ? filter : "");
	printf("drops:");
	cJSON_ArrayForEach(d, drops) printf(" %s %s", d->string, atel_q_fmt_count(d->valuedouble, nb[2], 32));
	printf("\nexporters:");
	cJSON_ArrayForEach(ex, cJSON_GetObjectItemCaseSensitive(s->status, "exporters"))
	{
		const cJSON *le = cJSON_GetObjectItemCaseSensitive(ex, "last_error");
		const cJSON *en = cJSON_GetObjectItemCaseSensitive(ex, "enabled");
		printf(" %s %s", ex->string,
		       !cJSON_IsTrue(en) ? "off" : cJSON_IsString(le) && le->valuestring[0] ? "FAILING" : "ok");
	}
	printf("\n\n");
	line = 4;
	left = rows > 0 ? rows - line - 1 : 1 << 30;
	printf("%s%-10s %-12s %-8s %-24s %10s %8s%s\n", cli_c(c, C_BOLD), "RING", "STATE", "PID", "FILL", "LAG", "DROPS",
	       cli_c(c, C_RESET));
	left--;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(s->status, "rings"))
	{
		const cJSON *rs = cJSON_GetObjectItemCaseSensitive(r, "state");
		double fill = cap > 0 ? cli_json_get(r, "lag") / cap : 0;
		if (left-- <= 0)
			break;
		bar(fill, 16, b);
		printf("%-10.0f %-12s %-8.0f %s %5.1f%% %10.0f %8.0f\n", cli_json_get(r, "ring"),
		       cJSON_IsString(rs) ? rs->valuestring : "?", cli_json_get(r, "pid"), b, 100 * fill,
		       cli_json_get(r, "lag"),
		       cli_json_get(r, "drops_full") + cli_json_get(r, "drops_nodef") + cli_json_get(r, "drops_invalid"));
	}
	printf("\n%s%-48s %12s %10s%s\n", cli_c(c, C_BOLD), "METRIC", "SAMPLES/S", "SAMPLES", cli_c(c, C_RESET));
	left -= 2;
	for (size_t i = 0; i < s->nmetrics && left-- > 0; i++)
		printf("%-48s %12s %10.0f\n", s->metrics[i].name,
		       atel_q_fmt_count(s->metrics[i].count / window_s, nb[3], 32), s->metrics[i].count);
	printf("\n%s%-48s %12s %10s%s\n", cli_c(c, C_BOLD), "PRODUCER (pid command)", "SAMPLES/S", "METRICS",
	       cli_c(c, C_RESET));
	left -= 2;
	for (size_t i = 0; i < s->nagents && left-- > 0; i++)
		printf("%-48s %12s %10.0f\n", s->agents[i].name,
		       atel_q_fmt_count(s->agents[i].count / window_s, nb[3], 32), s->agents[i].sum);
	if (!s->ntypes)
		return;
	printf("\n%s%-48s %12s %10s%s\n", cli_c(c, C_BOLD), "AGENT TYPE", "SAMPLES/S", "EXEC/S", cli_c(c, C_RESET));
	left -= 2;
	for (size_t i = 0; i < s->ntypes && left-- > 0; i++)
		printf("%-48s %12s %10s\n", s->types[i].name, atel_q_fmt_count(s->types[i].count / window_s, nb[3], 32),
		       atel_q_fmt_count(s->types[i].sum / window_s, nb[2], 32));
}

static volatile sig_atomic_t top_stop;
static void on_sig(int sig)
{
	(void)sig;
	top_stop = 1;
}

int cmd_top(struct cli *c, int argc, char **argv)
{
	const char *iv = "1s", *win = "10s", *sort = "rate", *filter_opt = NULL;
	bool once = false;
	uint64_t interval_ns, window_ns;
	char err[256], filter[160] = "";

	for (int i = 1; i < argc; i++) {
		const char *v;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(top_help, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--once"))
			once = true;
		else if ((v = cli_opt(argc, argv, &i, "--interval")))
			iv = v;
		else if ((v = cli_opt(argc, argv, &i, "--window")))
			win = v;
		else if ((v = cli_opt(argc, argv, &i, "--sort")))
			sort = v;
		else if ((v = cli_opt(argc, argv, &i, "--filter")))
			filter_opt = v;
		else {
			cli_err("top", "unknown argument %s (see atel top --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
	}
	if (atel_q_parse_duration(iv, &interval_ns, err, sizeof(err)) < 0 || interval_ns < 100000000ull) {
		cli_err("top", "--interval: a duration of at least 100ms, got \"%s\"", iv);
		return ATEL_EXIT_USAGE;
	}
	if (atel_q_parse_duration(win, &window_ns, err, sizeof(err)) < 0 || window_ns < 1000000000ull) {
		cli_err("top", "--window: a duration of at least 1s, got \"%s\"", win);
		return ATEL_EXIT_USAGE;
	}
	if (strcmp(sort, "rate") && strcmp(sort, "name")) {
		cli_err("top", "--sort must be rate or name");
		return ATEL_EXIT_USAGE;
	}
	sort_by_name = !strcmp(sort, "name");
	if (filter_opt)
		snprintf(filter, sizeof(filter), "%s", filter_opt);
	double window_s = (double)window_ns / 1e9;
	if (once || !isatty(STDOUT_FILENO)) {
		struct top_snap s;
		if (take(c, window_ns, filter, &s) < 0) {
			cli_err("top", "%s: no status file (is ateld running with --data-dir %s?)", c->status_path,
				c->data_dir);
			return ATEL_EXIT_DATA;
		}
		if (c->json)
			cli_print_json(snap_json(&s, NULL, window_s));
		else
			render(c, &s, NULL, window_s, filter, 0);
		snap_free(&s);
		atel__logshadow_close(top_shadow);
		top_shadow = NULL;
		return 0;
	}

	/* live: raw keys on a terminal, the screen redrawn in place */
	struct termios saved, raw;
	bool tty_in = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	struct top_snap prev = { 0 }, cur;
	size_t filter_idx = 0;
	int rc = 0;

	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	if (tty_in) {
		raw = saved;
		raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	printf("\033[?25l\033[2J"); /* hide the cursor, clear */
	while (!top_stop) {
		struct winsize ws = { 0 };
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		uint64_t until;

		if (take(c, window_ns, filter, &cur) < 0) {
			printf("\033[H\033[2Jatel top: waiting for %s ...\n", c->status_path);
		} else {
			ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws);
			printf("\033[H\033[2J");
			render(c, &cur, &prev, window_s, filter, ws.ws_row);
			printf("\n%sq quit  s sort  f filter  c clear filter%s", cli_c(c, C_DIM), cli_c(c, C_RESET));
			snap_free(&prev);
			prev = cur;
		}
		fflush(stdout);
		until = atel__now_ns() + interval_ns;
		while (!top_stop) {
			uint64_t now = atel__now_ns();
			char k;
			if (now >= until)
				break;
			if (poll(&pfd, tty_in ? 1 : 0, (int)((until - now) / 1000000ull) + 1) <= 0)
				continue;
			if (read(STDIN_FILENO, &k, 1) != 1)
				continue;
			if (k == 'q' || k == 'Q') {
				top_stop = 1;
			} else if (k == 's') {
				sort_by_name = !sort_by_name;
				break;
			} else if (k == 'c') {
				filter[0] = 0;
				break;
			} else if (k == 'f' && prev.nmetrics) {
				/* the next metric-name prefix (up to the first '_') */
				const char *n = prev.metrics[filter_idx++ % prev.nmetrics].name, *u = strchr(n, '_');
				snprintf(filter, sizeof(filter), "%.*s", (int)(u ? (size_t)(u - n) + 1 : strlen(n)), n);
				break;
			}
		}
	}
	printf("\033[?25h\n");
	if (tty_in)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	snap_free(&prev);
	atel__logshadow_close(top_shadow);
	top_shadow = NULL;
	return rc;
}
