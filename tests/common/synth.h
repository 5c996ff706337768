/* SPDX-License-Identifier: MIT */
/*
 * synth.h - test helper: builds realistic record streams (what a producer
 * thread writes into its ring) without the producer library, and writes
 * them into real segment files through the log writer (consumer/log/seglog.h).
 *
 *   struct atel_synth s;
 *   atel_synth_init(&s, 0, 1, 4242, 4243, 1700000000000000000ull);
 *   atel_synth_begin(&s, "agent");
 *   uint32_t c = atel_synth_series(&s, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "grep", NULL);
 *   atel_synth_sample(&s, c, 1.0, false);
 *   ...
 *   struct atel_synth *rings[] = { &s };
 *   atel_synth_write_log(dir, 0x1234, rings, 1, NULL);
 *   atel_synth_free(&s);
 *
 * Strings are interned per stream like a producer would: ids are stable, and
 * a STRDEF (with continuation slots for long strings) is emitted on the first
 * use in each generation (atel_synth_begin starts one). Timestamps advance by
 * ts_step per record. Nothing here validates: tests can build invalid
 * streams on purpose with atel_synth_raw(). Not thread-safe; test-only.
 */
#ifndef ATEL_SYNTH_H
#define ATEL_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atel_abi.h"
#include "seglog.h"

struct atel_synth {
	union atel_slot *slots;   /* the stream; slot i is at ring position base_pos + i */
	size_t n, cap;
	uint64_t base_pos;
	uint32_t ring, generation;
	int32_t pid, tid;
	uint64_t ts, ts_step;     /* timestamp of the next record; increment per record (default 1000 ns) */
	uint32_t next_str, next_series, next_bounds;
	char **strs;              /* interned strings, index = id - 1 (ids stable for the stream's life) */
	bool *defined;            /* STRDEF already in this generation (BEGIN clears), index = id - 1 */
	uint32_t nstrs, strs_cap;
};

void atel_synth_init(struct atel_synth *s, uint32_t ring, uint32_t generation, int32_t pid, int32_t tid,
		     uint64_t ts0);
void atel_synth_free(struct atel_synth *s);

/* Position of the next record appended. */
static inline uint64_t atel_synth_pos(const struct atel_synth *s) { return s->base_pos + s->n; }

/* Every builder returns the ring position of the record's header slot. */
uint64_t atel_synth_begin(struct atel_synth *s, const char *comm);
uint64_t atel_synth_end(struct atel_synth *s);
/* Interns str (STRDEF on first use). @return its id. */
uint32_t atel_synth_str(struct atel_synth *s, const char *str);
/* BOUNDS with n values. @return the bounds id. */
uint32_t atel_synth_bounds(struct atel_synth *s, const double *b, unsigned n);
/* SERIESDEF: labels as "key", "value", ..., NULL. Strings are interned first. @return the series id. */
uint32_t atel_synth_series(struct atel_synth *s, uint8_t mtype, const char *name, uint32_t bounds_id, ...);
uint32_t atel_synth_series_v(struct atel_synth *s, uint8_t mtype, const char *name, uint32_t bounds_id,
			     unsigned nlabels, const char *const *kv);
uint64_t atel_synth_sample(struct atel_synth *s, uint32_t series, double v, bool set);
uint64_t atel_synth_span_start(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const uint8_t parent[8], const char *name, uint8_t kind);
uint64_t atel_synth_span_end(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], uint8_t status,
			     const char *msg);
uint64_t atel_synth_attr_str(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			     const char *value, bool event_attr);
uint64_t atel_synth_attr_int(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			     int64_t value, bool event_attr);
uint64_t atel_synth_attr_double(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
				const char *key, double value, bool event_attr);
uint64_t atel_synth_attr_bool(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8], const char *key,
			      bool value, bool event_attr);
uint64_t atel_synth_span_event(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const char *name, uint16_t nattrs);
uint64_t atel_synth_span_error(struct atel_synth *s, const uint8_t trace[16], const uint8_t span[8],
			       const char *type, const char *msg);
uint64_t atel_synth_loss(struct atel_synth *s, uint32_t cause, uint64_t count, uint64_t first_ns, uint64_t last_ns);
/* Appends n raw slots as they are (garbage, hand-made records). */
uint64_t atel_synth_raw(struct atel_synth *s, const union atel_slot *rec, unsigned n);

/* Deterministic non-zero trace and span ids derived from seed. */
void atel_synth_ids(uint64_t seed, uint8_t trace[16], uint8_t span[8]);

/* A realistic agent workload on one stream: `samples` metric samples over
 * the reference metric catalog (counters, gauges, histograms with labels) and
 * a nested span tree every `span_every` samples (0: none). Deterministic in seed. */
void atel_synth_agent_workload(struct atel_synth *s, uint64_t seed, uint64_t samples, uint64_t span_every);

struct atel_synth_log_opts {
	uint32_t ring_count;      /* 0: highest ring + 1 */
	uint32_t batch;           /* max slots per append (cut at record boundaries); 0: 4096 */
	uint64_t rotate_bytes;    /* 0: writer default */
	uint32_t frame_bytes;     /* 0: writer default */
	int zstd_level;           /* 0: writer default */
	enum atel_io_mode io;
	bool split_pieces;        /* hand each run over as two pieces (as when a run wraps the ring end) */
	bool flush_each_round;    /* flush after every round-robin pass (more, smaller frames) */
	enum atel_seg_encoding encoding; /* 0: RECORDS */
};

/* Length of the longest whole-record prefix of slots [i, i + max) of s (at
 * least one record when one starts at i): how a drain batch cuts a ring. */
uint64_t atel_synth_cut(const struct atel_synth *s, uint64_t i, uint64_t max);

/*
 * Writes the streams into dir (created if missing) as real segment files,
 * appending round-robin in batches, then flushes and closes the writer.
 * Rings with the same ring number must not repeat. @return 0 or -errno.
 */
int atel_synth_write_log(const char *dir, uint64_t instance, struct atel_synth *const *rings, unsigned nrings,
			 const struct atel_synth_log_opts *o);

/* mkdtemp under $TMPDIR or /tmp, name includes tag and the pid. @return 0 or -errno. */
int atel_synth_tmpdir(char *out, size_t len, const char *tag);
/* rm -rf dir (files and one level of subdirectories). */
void atel_synth_rmtree(const char *dir);

#endif /* ATEL_SYNTH_H */
