/* SPDX-License-Identifier: MIT */
/*
 * compactor.h - ateld's background compactor (compactor.c;
 * docs/segment-format.md section 9): a thread at SCHED_IDLE that rewrites
 * finished segment files with large frames at a higher zstd level
 * (consumer/log/compact.h), oldest first, never the file being written and
 * never a file at or after a log position something persisted on disk
 * (the index cursor, the exporters' checkpoints and cursors: "the pin").
 *
 * Progress: <data_dir>/state/compact.done holds the highest file_seq done
 * (compacted, left as it is, or refused as damaged); counters go to
 * d->stats.compact_*.
 */
#ifndef ATEL_COMPACTOR_H
#define ATEL_COMPACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state.h"

struct atel_compactor_opts {
	const char *data_dir;      /* state in <data_dir>/state, the index in <data_dir>/telemetry.db */
	const char *segments_dir;  /* the log */
	int level;                 /* zstd level of the rewritten frames (storage.compact_level) */
	size_t frame_bytes;        /* storage.compact_frame_bytes */
	uint32_t interval_s;       /* storage.compact_interval_s */
	uint32_t first_delay_ms;   /* the first pass, this long after the start */
	/* which log followers may resume at a persisted position that is
	 * expected to exist (missing: nothing is compacted). Position files of
	 * disabled followers still pin when present. */
	bool index_enabled, remote_write_enabled, otlp_enabled, aggregates_enabled;
};

/* The lowest persisted log position (pin) and who holds it. */
struct atel_compact_pin {
	uint64_t file_seq;        /* files with seq >= this are not compacted; UINT64_MAX: no holder */
	uint64_t frame_off;
	char holder[64];          /* "index cursor", "aggregates.ckpt", ... */
	char warn[4700];           /* a holder unreadable (pin 0): what */
};

/* Reads every persisted log position under o (see the top of compactor.c).
 * Thread-safe (reads files only). @return 0 (pin set). */
int atel__compact_pin_read(const struct atel_compactor_opts *o, struct atel_compact_pin *pin);

struct atel_compactor;
/* Starts the thread (it lowers itself to SCHED_IDLE). @return 0 or -errno. */
int atel__compactor_start(struct atel_compactor **out, struct atel_daemon *d, const struct atel_compactor_opts *o);
/* Asks the thread to stop without waiting (the file in progress finishes). NULL-safe. */
void atel__compactor_request_stop(struct atel_compactor *c);
/* Stops and joins the thread: waits at most for the file in progress, and
 * at most wait_ms for it (0: no bound). Past that bound (a large file at
 * SCHED_IDLE on a busy machine) the thread is left to the process's exit:
 * its temporary file is removed at the next start (crash safe by design).
 * NULL-safe. @return 0, or -ETIMEDOUT when the thread was left running. */
int atel__compactor_stop(struct atel_compactor *c, uint32_t wait_ms);

#endif /* ATEL_COMPACTOR_H */
