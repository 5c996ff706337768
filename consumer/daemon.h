/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - what the parts of ateld share at run time, and the start/stop
 * interface of each part. ateld's main (consumer/ateld.c) owns the drain and
 * log writer threads and starts the indexer (consumer/indexer.c) and the
 * exporters (exporters/) with a pointer to struct atel_daemon.
 *
 * Threads: drain+log writer (1), indexer (1), HTTP server (1), JSON exporter
 * (1), OTLP exporter (1). The drain thread never waits for any other thread:
 * everything downstream follows the log with its own cursor.
 */
#ifndef ATEL_DAEMON_H
#define ATEL_DAEMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "config.h"
#include "index.h"
#include "seglog.h"
#include "util.h"

/* Self-metrics, written by the owning thread with relaxed atomics, read by
 * /metrics, the status file and atel status. */
struct atel_daemon_stats {
	_Atomic uint64_t records_drained;       /* accepted into the log */
	_Atomic uint64_t records_invalid;       /* rejected by validation */
	struct atel_log_counters log;           /* the segment writer's (seglog.h) */
	_Atomic uint64_t drops[ATEL_LOSS_CAUSE_MAX + 1]; /* by cause, from LOSS records and counters */
	_Atomic uint64_t ring_lag_max;          /* unread slots in the fullest ring, last pass */
	_Atomic uint64_t oldest_unread_ns;      /* age of the oldest unread record, last pass */
	_Atomic uint64_t producers_reclaimed;   /* dead producers whose rings were reclaimed */
	_Atomic uint64_t rings_quarantined;
	_Atomic uint64_t indexer_lag_records;   /* records in the log the index has not applied */
	_Atomic uint64_t index_rows;            /* rows written by the indexer */
	_Atomic uint64_t export_failures;       /* failed export attempts, all exporters */
	_Atomic uint64_t series_overflow;       /* series folded by the cardinality guard */
	_Atomic uint32_t rings_active;          /* rings in state ACTIVE at the last drain pass (/metrics atel_rings_active) */
};

/* Health of one exporter, for atel status and the status file. Never holds
 * header values or tokens. last_error is guarded by lock. */
enum { ATEL_EXP_PROMETHEUS = 0, ATEL_EXP_JSON = 1, ATEL_EXP_OTLP = 2, ATEL_EXP_COUNT = 3 };
struct atel_exporter_health {
	_Atomic uint64_t last_attempt_ns;
	_Atomic uint64_t last_success_ns;
	_Atomic uint64_t attempts;
	_Atomic uint64_t failures;
	pthread_mutex_t lock;
	char last_error[256];
};

struct atel_daemon {
	const struct atel_config *cfg;
	struct atel_daemon_stats stats;
	struct atel_exporter_health health[ATEL_EXP_COUNT];
	atomic_bool stopping;                   /* set on SIGTERM/SIGINT */
	char segments_dir[4096];                /* <data_dir>/segments */
	char db_path[4096];                     /* <data_dir>/telemetry.db */
	uint64_t start_ns;
	/* export-row queue, drained by the indexer (consumer/indexer.c) */
	pthread_mutex_t export_lock;
	struct atel_export_row export_q[256];
	uint32_t export_q_head, export_q_len;
	_Atomic uint64_t export_rows_dropped;
};

/* Initialises d (stats zeroed, locks, paths from cfg). @return 0 or -errno. */
int atel__daemon_init(struct atel_daemon *d, const struct atel_config *cfg);
void atel__daemon_fini(struct atel_daemon *d);

/* Queues an export row for the indexer (bounded queue; the oldest row is
 * dropped and counted when full). Thread-safe; never blocks on SQLite. */
void atel__export_row_push(struct atel_daemon *d, const struct atel_export_row *row);

/* Records an exporter attempt in d->health[which] (and stats.export_failures on failure). */
void atel__exporter_note(struct atel_daemon *d, int which, bool ok, const char *error);

/* ---- indexer (consumer/indexer.c): follows the log into SQLite ---------- */
struct atel_indexer;
/* Opens/creates the database (schema/telemetry.sql), starts the thread. @return 0 or -errno. */
int atel__indexer_start(struct atel_indexer **out, struct atel_daemon *d);
/* Catches up with the log (bounded wait), commits, closes the database. NULL-safe. */
void atel__indexer_stop(struct atel_indexer *ix);
/* Batch bounds of the indexer thread: commit after this many events or this
 * many milliseconds, whichever comes first. */
#define ATEL_IX_BATCH_EVENTS 8192u
#define ATEL_IX_BATCH_MS 200u

/* ---- exporters (exporters/): /metrics, JSON files, OTLP ----------------- */
struct atel_exporters;
/* Starts the HTTP server and the enabled exporters. @return 0 or -errno (e.g. port in use). */
int atel__exporters_start(struct atel_exporters **out, struct atel_daemon *d, char *err, size_t errlen);
/* Final export pass (bounded), stops threads, persists cursors. NULL-safe. */
void atel__exporters_stop(struct atel_exporters *ex);

/* Log line to stderr: "ateld: <level>: <message>", filtered by cfg->log_level. */
void atel__log(const struct atel_daemon *d, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum { ATEL_LOG_ERROR = 0, ATEL_LOG_WARN = 1, ATEL_LOG_INFO = 2, ATEL_LOG_DEBUG = 3 };

#endif /* ATEL_DAEMON_H */
