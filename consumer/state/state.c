/* SPDX-License-Identifier: MIT */
/* state.c - what ateld's threads share (state.h): logging, the export-row queue, exporter health. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "util.h"

static int level_of(const char *s)
{
	if (!s)
		return ATEL_LOG_INFO;
	if (!strcmp(s, "error"))
		return ATEL_LOG_ERROR;
	if (!strcmp(s, "warn"))
		return ATEL_LOG_WARN;
	if (!strcmp(s, "debug"))
		return ATEL_LOG_DEBUG;
	return ATEL_LOG_INFO;
}

void atel__log(const struct atel_daemon *d, int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	char buf[1024];
	va_list ap;
	int n;

	if (level > (d ? d->log_level : ATEL_LOG_INFO))
		return;
	n = snprintf(buf, sizeof(buf), "ateld: %s: ", names[level & 3]);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	/* one write per line so concurrent threads do not interleave */
	strcat(buf, "\n");
	fputs(buf, stderr);
}

int atel__state_init(struct atel_daemon *d, const char *data_dir, const char *log_level)
{
	memset(d, 0, sizeof(*d));
	d->log_level = level_of(log_level);
	d->start_ns = atel__now_ns();
	if (pthread_mutex_init(&d->export_lock, NULL))
		return -ENOMEM;
	for (int i = 0; i < ATEL_EXP_COUNT; i++)
		if (pthread_mutex_init(&d->health[i].lock, NULL))
			return -ENOMEM;
	if (data_dir) {
		if ((size_t)snprintf(d->segments_dir, sizeof(d->segments_dir), "%s/segments", data_dir) >=
			    sizeof(d->segments_dir) ||
		    (size_t)snprintf(d->db_path, sizeof(d->db_path), "%s/telemetry.db", data_dir) >=
			    sizeof(d->db_path))
			return -ENAMETOOLONG;
	}
	return 0;
}

void atel__state_fini(struct atel_daemon *d)
{
	pthread_mutex_destroy(&d->export_lock);
	for (int i = 0; i < ATEL_EXP_COUNT; i++)
		pthread_mutex_destroy(&d->health[i].lock);
}

void atel__export_row_push(struct atel_daemon *d, const struct atel_export_row *row)
{
	const uint32_t cap = sizeof(d->export_q) / sizeof(d->export_q[0]);

	pthread_mutex_lock(&d->export_lock);
	if (d->export_q_len == cap) { /* full: drop the oldest, count it */
		d->export_q_head = (d->export_q_head + 1) % cap;
		d->export_q_len--;
		atomic_fetch_add_explicit(&d->export_rows_dropped, 1, memory_order_relaxed);
	}
	d->export_q[(d->export_q_head + d->export_q_len) % cap] = *row;
	d->export_q_len++;
	pthread_mutex_unlock(&d->export_lock);
}

void atel__exporter_note(struct atel_daemon *d, int which, bool ok, const char *error)
{
	struct atel_exporter_health *h;
	uint64_t now = atel__now_ns();

	if (which < 0 || which >= ATEL_EXP_COUNT)
		return;
	h = &d->health[which];
	atomic_store_explicit(&h->last_attempt_ns, now, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->attempts, 1, memory_order_relaxed);
	if (ok) {
		atomic_store_explicit(&h->last_success_ns, now, memory_order_relaxed);
		return;
	}
	atomic_fetch_add_explicit(&h->failures, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&d->stats.export_failures, 1, memory_order_relaxed);
	pthread_mutex_lock(&h->lock);
	snprintf(h->last_error, sizeof(h->last_error), "%s", error ? error : "unknown error");
	pthread_mutex_unlock(&h->lock);
}
