/* SPDX-License-Identifier: MIT */
/*
 * discover.c - which shared-memory segment the `atel` verbs use, the same
 * way for every verb: --shm, then $ATEL_SHM, then the segment named in the
 * status file of the ateld running on the data directory, then "atel" (the
 * default of libatel's atel_init(NULL) and of ateld).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"

/* The status file's shm.name when its ateld (pid) is alive; else false. */
static bool from_status_file(const char *path, char *name, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	cJSON *j = cJSON_Parse(buf);
	bool ok = false;
	if (j) {
		const cJSON *st = cJSON_GetObjectItem(j, "state");
		const cJSON *sh = cJSON_GetObjectItem(j, "shm");
		const cJSON *nm = sh ? cJSON_GetObjectItem(sh, "name") : NULL;
		double pid = cli_json_get(j, "pid");
		bool running = cJSON_IsString(st) && strcmp(st->valuestring, "stopped") != 0;
		bool alive = pid > 0 && pid < 1e9 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
		if (running && alive && cJSON_IsString(nm) && nm->valuestring[0] && strlen(nm->valuestring) < len) {
			snprintf(name, len, "%s", nm->valuestring);
			ok = true;
		}
		cJSON_Delete(j);
	}
	return ok;
}

void cli_discover_shm(struct cli *c, const char *opt_shm)
{
	const char *env = getenv("ATEL_SHM");
	if (opt_shm && *opt_shm) {
		c->shm = opt_shm;
		c->shm_from = "--shm";
	} else if (env && *env) {
		c->shm = env;
		c->shm_from = "$ATEL_SHM";
	} else if (from_status_file(c->status_path, c->shm_buf, sizeof(c->shm_buf))) {
		c->shm = c->shm_buf;
		c->shm_from = "the running ateld's status file";
	} else {
		c->shm = "atel";
		c->shm_from = "the default";
	}
	c->shm_explicit = c->shm_from[0] != 't';
}

void cli_no_daemon_err(const struct cli *c, const char *verb, const char *hint)
{
	cli_err(verb,
		"no running ateld found: segment \"%s\" (from %s) has no live sidecar, and %s names no running "
		"ateld; start one (`ateld --data-dir %s`), or say where it is with --shm NAME or $ATEL_SHM%s%s",
		c->shm, c->shm_from, c->status_path, c->data_dir, hint ? "; " : "", hint ? hint : "");
}
