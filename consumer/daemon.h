/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - the daemon room (consumer/): ateld on top of the other rooms.
 * Its main (ateld.c) reads the configuration (config.h), owns the drain and
 * log writer thread (drain.h), and starts the indexer thread (indexer.c,
 * over consumer/index/) and the exporters (exporters/exporters.h) with a
 * pointer to the state they share (consumer/state/state.h).
 *
 * Threads: drain+log writer (1), indexer (1), HTTP server (1), JSON exporter
 * (1), OTLP exporter (1), compactor (1, SCHED_IDLE; compactor.h). The drain thread never waits for any other thread:
 * everything downstream follows the log with its own cursor.
 */
#ifndef ATEL_DAEMON_H
#define ATEL_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "state.h"

/* atel__state_init from cfg (paths under cfg->data_dir, its log level), and
 * d->cfg = cfg (may be NULL: defaults). @return 0 or -errno. */
int atel__daemon_init(struct atel_daemon *d, const struct atel_config *cfg);
void atel__daemon_fini(struct atel_daemon *d);

/* ---- indexer (indexer.c): follows the log into SQLite -------------------- */
struct atel_indexer;
/* Opens/creates the database (schema/telemetry.sql), starts the thread. @return 0 or -errno. */
int atel__indexer_start(struct atel_indexer **out, struct atel_daemon *d);
/* Catches up with the log (bounded wait), commits, closes the database. NULL-safe. */
void atel__indexer_stop(struct atel_indexer *ix);
/* Batch bounds of the indexer thread: commit after this many events or this
 * many milliseconds, whichever comes first. */
#define ATEL_IX_BATCH_EVENTS 8192u
#define ATEL_IX_BATCH_MS 200u

/* ---- exporters, as the configuration asks for them (daemon.c) ------------ */
struct atel_exporters;
/* Starts the HTTP server and the exporters d->cfg enables (exporters.h has
 * the start with explicit options). @return 0 or -errno (e.g. port in use). */
int atel__daemon_exporters_start(struct atel_exporters **out, struct atel_daemon *d, char *err, size_t errlen);

/* ---- status file (status.c; docs/status-file.md) ---------------------------- */
struct atel_drain;
/* Remote write's counts for the status file (exporters/remote_write.h atel_rw_counts, copied). */
struct atel_status_rw {
	bool enabled;
	uint64_t samples_sent, samples_dropped, pending_samples;
	uint64_t requests_ok, requests_failed, requests_dropped;
	int64_t last_sent_ms;            /* sample time of the last batch delivered, 0: none */
};

struct atel_status {
	const char *state;               /* starting | running | stopping | stopped */
	struct atel_status_rw rw;
	bool indexer_running, exporters_running;
	struct atel_drain *drain;        /* NULL before the segment is attached */
	const char *reason;              /* why a start failed (state stopped), or NULL */
};
/* Writes the status file to path, through tmp and a rename (readers see a
 * whole file). @return 0 or -errno. */
int atel__status_write(const struct atel_daemon *d, const struct atel_status *st, const char *path, const char *tmp);

#endif /* ATEL_DAEMON_H */
