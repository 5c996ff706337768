/* SPDX-License-Identifier: MIT */
/*
 * logshadow.c - a full-mode index of the segment log in memory (logshadow.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "index.h"
#include "logread.h"
#include "logshadow.h"

#define COMMIT_EVERY 65536u /* events per transaction: an interrupted sync keeps what it applied */

struct atel_logshadow {
	struct atel_ixw *w;
	char segments_dir[4096];
	struct atel_log_pos pos;  /* just after the last event applied */
	int failed;               /* sticky -ENOSPC: the shadow no longer follows the log */
};

int atel__logshadow_open(struct atel_logshadow **out, const char *segments_dir, uint64_t max_bytes, char *err,
			 size_t errlen)
{
	struct atel_logshadow *s = calloc(1, sizeof(*s));
	struct atel_ixw_opts o = { .bulk = true, .compact = false };
	char pragma[96];
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(s->segments_dir, sizeof(s->segments_dir), "%s", segments_dir);
	if ((rc = atel__ixw_open(&s->w, ":memory:", &o, err, errlen)) < 0) {
		free(s);
		return rc;
	}
	/* the cap: SQLite's page count limit (4096-byte pages in memory) */
	snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%llu",
		 (unsigned long long)(max_bytes / 4096 ? max_bytes / 4096 : 1));
	sqlite3_exec(atel__ixw_db(s->w), pragma, NULL, NULL, NULL);
	*out = s;
	return 0;
}

int atel__logshadow_sync(struct atel_logshadow *s, uint64_t min_ns, int (*interrupt)(void *), void *arg, char *err,
			 size_t errlen)
{
	struct atel_log_reader_opts o = { .segments_dir = s->segments_dir, .start = s->pos, .follow = true };
	struct atel_log_reader *r = NULL;
	struct atel_log_pos after, cur = s->pos;
	struct atel_event ev;
	unsigned n = 0;
	int rc;

	if (s->failed) {
		snprintf(err, errlen, "the log's rows outgrew the in-memory index");
		return s->failed;
	}
	if ((rc = atel__log_open(&r, &o)) < 0) {
		snprintf(err, errlen, "%s: %s", s->segments_dir, strerror(-rc));
		return rc;
	}
	if ((rc = atel__ixw_begin(s->w)) < 0)
		goto out;
	while ((rc = atel__log_next(r, &ev, &after)) == 1) {
		bool old = min_ns && ev.ts_ns < min_ns && (ev.kind == ATEL_EV_SAMPLE || ev.kind == ATEL_EV_HISTFOLD);
		if (!old && (rc = atel__ixw_apply(s->w, &ev)) < 0)
			break;
		cur = after;
		if (++n % COMMIT_EVERY == 0) {
			if ((rc = atel__ixw_commit(s->w, &cur)) < 0)
				goto out;
			s->pos = cur;
			if ((rc = atel__ixw_begin(s->w)) < 0)
				goto out;
		}
		if (interrupt && n % 4096 == 0 && interrupt(arg)) {
			rc = -EINTR;
			break;
		}
	}
	if (rc == 0 || rc == -EINTR) {
		int c = atel__ixw_commit(s->w, &cur);
		if (c < 0)
			rc = c;
		else
			s->pos = cur;
	}
out:
	if (rc < 0 && rc != -EINTR) {
		atel__ixw_rollback(s->w); /* safe without a transaction */
		if (rc == -ENOSPC) {
			s->failed = rc;
			snprintf(err, errlen, "the log's rows outgrew the in-memory index");
		} else {
			snprintf(err, errlen, "reading the log: %s", strerror(-rc));
		}
	}
	atel__log_close(r);
	return rc;
}

struct sqlite3 *atel__logshadow_db(struct atel_logshadow *s)
{
	return atel__ixw_db(s->w);
}

void atel__logshadow_close(struct atel_logshadow *s)
{
	if (!s)
		return;
	atel__ixw_close(s->w);
	free(s);
}
