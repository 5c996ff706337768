/* SPDX-License-Identifier: MIT */
/*
 * otlp_test_util.h - shared by the OTLP exporter tests: the loopback test
 * collector (otlp_collector.py) as a child process and its records, stderr
 * capture (the daemon log), and a bounded polling wait. Test-only; one
 * collector per struct; not thread-safe.
 */
#ifndef ATEL_OTLP_TEST_UTIL_H
#define ATEL_OTLP_TEST_UTIL_H

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

static char g_tmp[256]; /* per-process scratch directory, set by main */

/* ---- collector process -------------------------------------------------------- */

struct collector {
	pid_t pid;
	int port;
	char record[300];
};

static int g_seq;
static pid_t g_live[16]; /* collectors still running, killed at exit (a failed test) */

static inline void collectors_kill_all(void)
{
	for (int i = 0; i < 16; i++) {
		if (g_live[i] > 0) {
			kill(g_live[i], SIGTERM);
			waitpid(g_live[i], NULL, 0);
			g_live[i] = 0;
		}
	}
}

static inline void collector_start(struct collector *c, const char *script, int port)
{
	char portfile[300], portarg[16], script_path[1024];
	const char *src = getenv("ATEL_SOURCE_ROOT");
	int waited = 0;
	FILE *f;

	snprintf(portfile, sizeof(portfile), "%s/port-%d", g_tmp, ++g_seq);
	if (!c->record[0])
		snprintf(c->record, sizeof(c->record), "%s/record-%d.jsonl", g_tmp, g_seq);
	snprintf(portarg, sizeof(portarg), "%d", port);
	snprintf(script_path, sizeof(script_path), "%s/tests/exporters/otlp_collector.py", src ? src : ".");
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid > 0) {
		static int registered;

		if (!registered++)
			atexit(collectors_kill_all);
		for (int i = 0; i < 16; i++)
			if (!g_live[i]) {
				g_live[i] = c->pid;
				break;
			}
	}
	if (c->pid == 0) {
		execl("/usr/bin/python3", "python3", script_path, "--record", c->record, "--port-file", portfile,
		      "--port", portarg, "--script", script ? script : "", (char *)NULL);
		_exit(127);
	}
	for (;;) { /* poll for the port file, bounded */
		int st;

		if ((f = fopen(portfile, "r"))) {
			assert_int_equal(fscanf(f, "%d", &c->port), 1);
			fclose(f);
			unlink(portfile);
			return;
		}
		if (waitpid(c->pid, &st, WNOHANG) == c->pid)
			fail_msg("collector exited early (status %d)", st);
		usleep(20000);
		if (++waited > 3000)
			fail_msg("collector did not start within 60 s");
	}
}

static inline void collector_stop(struct collector *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		waitpid(c->pid, NULL, 0);
		for (int i = 0; i < 16; i++)
			if (g_live[i] == c->pid)
				g_live[i] = 0;
		c->pid = 0;
	}
}

/* Reads all records: a cJSON array of the JSON lines. */
static inline cJSON *records(const struct collector *c)
{
	cJSON *arr = cJSON_CreateArray();
	char line[1 << 16];
	FILE *f = fopen(c->record, "r");

	if (!f)
		return arr;
	while (fgets(line, sizeof(line), f)) {
		cJSON *j = cJSON_Parse(line);

		if (j)
			cJSON_AddItemToArray(arr, j);
	}
	fclose(f);
	return arr;
}

static inline int nrecords(const struct collector *c)
{
	cJSON *a = records(c);
	int n = cJSON_GetArraySize(a);

	cJSON_Delete(a);
	return n;
}

static inline const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static inline double jnum(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* How many times the span (hex id) was delivered: in valid requests answered 200. */
static inline int delivered_hex(const struct collector *c, const char *hex)
{
	cJSON *a = records(c), *r, *it;
	int n = 0;

	cJSON_ArrayForEach(r, a)
	{
		if (jnum(r, "status") != 200 || !cJSON_IsTrue(cJSON_GetObjectItem(r, "valid")))
			continue;
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "items"))
			if (!strcmp(jstr(it, "spanId"), hex))
				n++;
	}
	cJSON_Delete(a);
	return n;
}

static inline cJSON *find_span_hex(cJSON *recs, const char *hex)
{
	cJSON *r, *it;

	cJSON_ArrayForEach(r, recs)
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r, "items"))
			if (!strcmp(jstr(it, "spanId"), hex))
				return it;
	return NULL;
}

static int g_saved_stderr = -1;
static char g_log[300];

/* stderr (the daemon log) goes to a file while an exporter runs */
static inline void capture_begin(void)
{
	int fd;

	if (getenv("ATEL_TEST_NO_CAPTURE")) /* debugging: leave stderr alone */
		return;
	snprintf(g_log, sizeof(g_log), "%s/log-%d.txt", g_tmp, ++g_seq);
	fflush(stderr);
	g_saved_stderr = dup(2);
	fd = open(g_log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	close(fd);
}

/* Restores stderr, echoes the log, and returns it (malloc'd). */
static inline char *capture_end(void)
{
	if (g_saved_stderr < 0)
		return calloc(1, 1);
	FILE *f;
	char *buf = calloc(1, 1 << 20);
	size_t n = 0;

	fflush(stderr);
	dup2(g_saved_stderr, 2);
	close(g_saved_stderr);
	g_saved_stderr = -1;
	if ((f = fopen(g_log, "r"))) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	fputs(buf, stdout);
	unlink(g_log);
	return buf;
}

/* Polls cond (bounded, generous: the machine is shared). */
#define WAIT_FOR(cond)                                                          \
	do {                                                                    \
		int w_ = 0;                                                     \
		while (!(cond)) {                                               \
			if (++w_ > 6000) {                                      \
				free(capture_end());                            \
				fail_msg("timed out waiting for: %s", #cond);   \
			}                                                       \
			usleep(10000);                                          \
		}                                                               \
	} while (0)

#endif /* ATEL_OTLP_TEST_UTIL_H */
