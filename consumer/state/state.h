/* SPDX-License-Identifier: MIT */
/*
 * state.h - the state room (consumer/state/): what ateld's threads share at
 * run time. The drain and the log writer, the indexer thread and the
 * exporters each write their counters here with relaxed atomics; /metrics,
 * the status file and `atel status` read them. Exporters also report their
 * health and queue telemetry_exports rows for the indexer (the only SQLite
 * writer), and everyone logs through atel__log.
 *
 * It sits below the exporters and the daemon (which only they include) and
 * above the log and the index, whose counters and row type it holds.
 * Thread-safe as stated per function.
 */
#ifndef ATEL_STATE_H
#define ATEL_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "index.h"
#include "seglog.h"

struct atel_config;

/* The OTLP receiver's counters (exporters/otlp_receiver.h; issue 19):
 * /metrics atel_otlp_receiver_*. Signals: 0 traces, 1 metrics, 2 other
 * paths; codes: ATEL_OTLP_RECV_CODES. */
#define ATEL_OTLP_RECV_NCODES 9
extern const int atel__otlp_recv_codes[ATEL_OTLP_RECV_NCODES]; /* 200 400 404 405 413 415 429 500 503 */
struct atel_otlp_recv_counts {
	_Atomic uint64_t enabled;               /* gauge: 1 while the receiver listens */
	_Atomic uint64_t spans_accepted;        /* written into the ring */
	_Atomic uint64_t spans_rejected;        /* answered in partial_success.rejected_spans */
	_Atomic uint64_t points_accepted;       /* metric data points accepted */
	_Atomic uint64_t points_rejected;       /* partial_success.rejected_data_points */
	_Atomic uint64_t records_written;       /* ring slots published */
	_Atomic uint64_t requests[3][ATEL_OTLP_RECV_NCODES];
};

/* Self-metrics, written by the owning thread with relaxed atomics, read by
 * /metrics, the status file and atel status. */
struct atel_daemon_stats {
	_Atomic uint64_t records_drained;       /* accepted into the log */
	_Atomic uint64_t records_invalid;       /* rejected by validation */
	struct atel_log_counters log;           /* the segment writer's (seglog.h) */
	_Atomic uint64_t drops[ATEL_LOSS_CAUSE_MAX + 1]; /* by cause: the segment's loss counters as logged (LOSS_TOTAL), INVALID from this run */
	_Atomic uint64_t spans_dropped;         /* spans dropped whole by producers (logged) */
	_Atomic uint64_t metric_folds;          /* metric calls producers folded because a ring was full */
	_Atomic uint64_t loss_readings_refused; /* loss counter readings that went backwards or jumped (not believed) */
	_Atomic uint64_t pressure_episodes;     /* times the drain switched to storage.zstd_level_pressure */
	_Atomic uint64_t ring_lag_max;          /* unread slots in the fullest ring, last pass */
	_Atomic uint64_t oldest_unread_ns;      /* age of the oldest unread record, last pass */
	_Atomic uint64_t producers_reclaimed;   /* dead producers whose rings were reclaimed */
	_Atomic uint64_t rings_quarantined;
	_Atomic uint64_t indexer_lag_records;   /* records in the log the index has not applied */
	_Atomic uint64_t index_rows;            /* rows written by the indexer */
	_Atomic uint64_t export_failures;       /* failed export attempts, all exporters */
	_Atomic uint64_t series_overflow;       /* series folded by the cardinality guard */
	_Atomic uint32_t rings_active;          /* rings in state ACTIVE at the last drain pass (/metrics atel_rings_active) */

	/* hardening (issue 12; README "Security", "Operations"): each in the status
	 * file's stats, `atel status` and /metrics (atel_<name>[_total]) */
	_Atomic uint64_t records_implausible;   /* refused: timestamp or generation no real producer writes (also in records_invalid) */
	_Atomic uint64_t rings_damaged;         /* directory entries in an unknown state, a foreign DRAINING, or owner fields changed */
	_Atomic uint64_t log_tail_cuts;         /* torn segment-file tails cut at start-up */
	_Atomic uint64_t index_reopened;        /* telemetry.db found deleted or replaced, reopened and rebuilt */
	_Atomic uint64_t segment_header_repairs; /* garbage in the shm segment header restored */
	_Atomic uint64_t segment_header_ok;     /* gauge: 1 while the shm header checks out */
	/* truncated shm segment (issue 12.3): ateld stops reading it and runs degraded */
	_Atomic uint64_t segment_truncations;   /* times the segment file was found shrunk below the mapping */
	_Atomic uint64_t segment_truncated;     /* gauge: 1 while ateld runs degraded on a truncated segment */
	_Atomic uint64_t index_paused;          /* gauge: 1 while the indexer waits for disk space (index.reserve_*) */
	_Atomic uint64_t index_pauses;          /* times the indexer paused for disk space */
	_Atomic uint64_t data_free_bytes;       /* gauge: free bytes of data_dir's file system at the last check */
	_Atomic uint64_t http_conns_evicted;    /* HTTP connections cut at the cap to make room for a new one */
	_Atomic uint64_t http_conns_refused_remote; /* refused: their non-loopback address held half the cap */
	_Atomic uint64_t promql_files_skipped;  /* query API: segment files a selector did not read (logprom cache) */
	struct atel_otlp_recv_counts otlp_recv; /* the OTLP receiver's (issue 19) */
	/* the compactor (consumer/compactor.c; docs/segment-format.md section 9) */
	_Atomic uint64_t compact_files;         /* segment files rewritten */
	_Atomic uint64_t compact_bytes_before;  /* their sizes before ... */
	_Atomic uint64_t compact_bytes_after;   /* ... and after */
	_Atomic uint64_t compact_bytes_saved;   /* before - after, added in one step (a monotonic /metrics counter) */
	_Atomic uint64_t compact_failures;      /* files refused (damaged) and passed for good */
	_Atomic uint64_t compact_pending;       /* gauge: finished files not compacted yet, at the last pass */
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
	const struct atel_config *cfg;          /* ateld's configuration (config.h); NULL in tests.
						 * Only the daemon room reads it: the rooms below get
						 * what they need as options. */
	int log_level;                          /* ATEL_LOG_*: atel__log prints up to this */
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

/*
 * Initialises d: stats zeroed, locks, the paths under data_dir (NULL: none),
 * the log level ("error" | "warn" | "info" | "debug"; NULL or other: info).
 * @return 0, -ENAMETOOLONG or -ENOMEM.
 */
int atel__state_init(struct atel_daemon *d, const char *data_dir, const char *log_level);
void atel__state_fini(struct atel_daemon *d);

/* Queues an export row for the indexer (bounded queue; the oldest row is
 * dropped and counted when full). Thread-safe; never blocks on SQLite. */
void atel__export_row_push(struct atel_daemon *d, const struct atel_export_row *row);

/* Records an exporter attempt in d->health[which] (and stats.export_failures on failure). Thread-safe. */
void atel__exporter_note(struct atel_daemon *d, int which, bool ok, const char *error);

/* Log line to stderr: "ateld: <level>: <message>", filtered by d->log_level
 * (d NULL: info). One write per line: threads do not interleave. */
void atel__log(const struct atel_daemon *d, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
enum { ATEL_LOG_ERROR = 0, ATEL_LOG_WARN = 1, ATEL_LOG_INFO = 2, ATEL_LOG_DEBUG = 3 };

#endif /* ATEL_STATE_H */
