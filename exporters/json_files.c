/* SPDX-License-Identifier: MIT */
/*
 * json_files.c - the JSON exporter's files (json_files.h): rotation,
 * retention and the atomic rewrite of the current file with the document of
 * encode/json_export.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json_files.h"
#include "util.h"

#define FILE_PREFIX "atel-metrics-"
#define FILE_SUFFIX ".json"

struct atel_json_exporter {
	char *dir;
	uint64_t rotate_ns;
	uint32_t max_files;
	char cur[4096];
	char last_name[256];
	uint64_t file_start_ns;
	uint64_t file_since_seq;        /* spans after this go into the current file */
	uint64_t last_seq;              /* newest span sequence already written */
	uint64_t writes;
	struct atel_buf buf;
};

int atel__json_open(struct atel_json_exporter **out, const struct atel_json_opts *o, char *err, size_t errlen)
{
	struct atel_json_exporter *j;
	struct stat st;
	int rc;

	*out = NULL;
	if (!o || !o->dir || !*o->dir) {
		snprintf(err, errlen, "json.outputDir: empty");
		return -EINVAL;
	}
	if ((rc = atel__mkdir_p(o->dir, atel__dir_mode())) < 0 || (rc = stat(o->dir, &st) < 0 ? -errno : 0) < 0 ||
	    (rc = S_ISDIR(st.st_mode) ? 0 : -ENOTDIR) < 0) {
		snprintf(err, errlen, "json.outputDir: cannot create directory \"%s\": %s", o->dir, strerror(-rc));
		return rc;
	}
	if (access(o->dir, W_OK) < 0) {
		rc = -errno;
		snprintf(err, errlen, "json.outputDir: \"%s\" is not writable: %s", o->dir, strerror(errno));
		return rc;
	}
	if (!(j = calloc(1, sizeof(*j))) || !(j->dir = strdup(o->dir))) {
		free(j);
		return -ENOMEM;
	}
	j->rotate_ns = o->rotate_ms * 1000000ull;
	j->max_files = o->max_files;
	*out = j;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_export_name(const char *n)
{
	size_t l = strlen(n), p = strlen(FILE_PREFIX), s = strlen(FILE_SUFFIX);

	return l > p + s && !strncmp(n, FILE_PREFIX, p) && !strcmp(n + l - s, FILE_SUFFIX);
}

/* Deletes the oldest export files beyond max_files (names sort by time). */
static void apply_retention(struct atel_json_exporter *j)
{
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!j->max_files || !(d = opendir(j->dir)))
		return;
	while ((e = readdir(d))) {
		if (!is_export_name(e->d_name))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*nn));
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i + j->max_files < n; i++) {
		char p[4096 + 256];
		snprintf(p, sizeof(p), "%s/%s", j->dir, names[i]);
		unlink(p);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void file_name(char *dst, size_t n, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	char base[32];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y%m%dT%H%M%S", &tm);
	snprintf(dst, n, FILE_PREFIX "%s%03uZ" FILE_SUFFIX, base, (unsigned)((ns / 1000000u) % 1000u));
}

static int start_file(struct atel_json_exporter *j, uint64_t now_ns)
{
	char name[256];
	uint64_t t = now_ns;

	/* names must be unique and increasing even if two files start within a
	 * millisecond or the clock stepped back */
	for (;;) {
		struct stat st;
		char p[4096 + 256];
		file_name(name, sizeof(name), t);
		snprintf(p, sizeof(p), "%s/%s", j->dir, name);
		if ((!j->last_name[0] || strcmp(name, j->last_name) > 0) && stat(p, &st) < 0)
			break;
		t += 1000000u;
	}
	if ((size_t)snprintf(j->cur, sizeof(j->cur), "%s/%s", j->dir, name) >= sizeof(j->cur))
		return -ENAMETOOLONG;
	snprintf(j->last_name, sizeof(j->last_name), "%s", name);
	j->file_start_ns = now_ns;
	/* spans that completed after the previous file's last write belong here */
	j->file_since_seq = j->last_seq;
	j->writes = 0;
	return 0;
}

int atel__json_write(struct atel_json_exporter *j, const struct atel_agg_snapshot *snap,
		     struct atel_recent_spans *spans, uint64_t now_ns, size_t *bytes, char *err, size_t errlen)
{
	bool rotated = false;
	uint64_t seq = 0;
	int rc;

	if (!j->cur[0] || (j->rotate_ns && now_ns >= j->file_start_ns + j->rotate_ns)) {
		if ((rc = start_file(j, now_ns)) < 0) {
			snprintf(err, errlen, "json: file name too long under \"%s\"", j->dir);
			return rc;
		}
		rotated = true;
	}
	atel__buf_reset(&j->buf);
	if ((rc = atel__json_encode(&j->buf, snap, spans, j->file_since_seq, j->file_start_ns, now_ns,
				    j->writes + 1, &seq)) < 0) {
		snprintf(err, errlen, "json: out of memory encoding %s", j->cur);
		return rc;
	}
	if ((rc = atel__write_file_atomic(j->cur, j->buf.data, j->buf.len, atel__file_mode())) < 0) {
		snprintf(err, errlen, "json: cannot write %s: %s", j->cur, strerror(-rc));
		return rc;
	}
	j->writes++;
	j->last_seq = seq;
	if (bytes)
		*bytes = j->buf.len;
	if (rotated)
		apply_retention(j);
	/* do not keep a huge export's peak buffer between intervals */
	if (j->buf.cap > (16u << 20))
		atel__buf_free(&j->buf);
	return 0;
}

const char *atel__json_current_file(const struct atel_json_exporter *j)
{
	return j ? j->cur : "";
}

void atel__json_close(struct atel_json_exporter *j)
{
	if (!j)
		return;
	atel__buf_free(&j->buf);
	free(j->dir);
	free(j);
}
