/* SPDX-License-Identifier: MIT */
/*
 * atel.h - libatel, the Armada Telemetry producer library. This is the whole
 * agent-facing API: if it is not in this header, it is not published.
 *
 * Model. An agent records metric samples and trace spans; each thread writes
 * fixed 64-byte records into its own ring of the shared-memory segment that
 * the sidecar (ateld) drains. After warm-up a recording call is a few stores:
 * no system call, no lock, no allocation.
 *
 * Telemetry never breaks the agent. No call blocks, aborts, or returns an
 * error the caller must handle. A missing sidecar, a full ring, a taken ring
 * directory or an invalid argument turn the call into a counted drop, visible
 * through atel_stats_get(), in-band LOSS records, `atel status` and /metrics.
 * The reason for the last rejected call of a thread is atel_last_error().
 *
 * Thread-safety. Every call is thread-safe, except atel_shutdown() (call it
 * when no other thread records any more, e.g. at the end of main after the
 * workers were joined) and the environment helpers (they call setenv/getenv).
 *
 * Async-signal-safety. Once the calling thread has made one recording call
 * outside a signal handler (its ring is claimed and its state allocated),
 * these are async-signal-safe:
 *     atel_add, atel_set, atel_observe      (on series created earlier),
 *     atel_trace_start, atel_span_start, atel_trace_continue,
 *     atel_span_set_int/_double/_bool/_str/_attrs, atel_span_add_event(_attrs),
 *     atel_span_record_error, atel_span_end  (with span names, attribute
 *                                             keys, event names and error
 *                                             types used before: a new name
 *                                             is interned with malloc),
 *     atel_propagate, atel_last_error, atel_attached.
 * A handler that interrupts a recording call of its own thread has its record
 * dropped (counted as drops_reentrant), never interleaved with the
 * interrupted one. Not signal-safe: atel_init, atel_shutdown,
 * atel_counter/_gauge/_histogram/_series_get, every atel_track_* helper,
 * atel_stats_get, the tracestate and environment calls.
 *
 * Environment.
 *   ATEL_SHM       segment name when atel_init(NULL) (default "atel"); a name
 *                  containing '/' is a file path (tests).
 *   ATEL_BLOCK_TIMEOUT_US   span records wait this long for room in a full
 *                  ring (default 0: never); see atel_set_block_timeout_us.
 *   ATEL_EXIT_WAIT_MS       how long thread exit waits for folded metric
 *                  values to be written (default 100); see atel_set_exit_wait_ms.
 *   ATEL_SHM_OWNER the sidecar's user (uid or name) when it is not this
 *                  process's user or root: a segment owned by anyone else, or
 *                  writable by every user, is refused (atel_init: -EPERM).
 *
 * Signals. On attach, libatel installs a SIGBUS handler that absorbs faults
 * inside its segment mapping only (someone truncated the segment: the page
 * becomes private zeros, atel_stats.segment_faults counts it, and the library
 * moves to the sidecar's new segment); any other SIGBUS goes to the handler
 * installed before, or the default action. A program that installs its own
 * SIGBUS handler after atel_init takes over that duty.
 *   TRACEPARENT, TRACESTATE   W3C trace context inherited from a parent
 *                  process (atel_env_extract); TRACE_CONTEXT is accepted as
 *                  an alias of TRACEPARENT.
 */
#ifndef ATEL_H
#define ATEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATEL_VERSION_MAJOR 0
#define ATEL_VERSION_MINOR 1

/* ------------------------------------------------------------------------ */
/* lifecycle                                                                */

/*
 * Attaches to the sidecar's segment `shm_name`; NULL means $ATEL_SHM, else
 * "atel". A name containing '/' is a file path. Returns quickly whether or
 * not the sidecar runs: without one, recording calls are cheap counted no-ops
 * and the attach is retried at most about once a second from calls the agent
 * makes anyway (no thread, no timer). Calling it again after a successful
 * init is a no-op returning 0. Recording without atel_init() initialises
 * lazily with atel_init(NULL).
 * @return 0 if attached; -ENOENT (no sidecar yet: retried later), -EPROTO
 * (incompatible segment), -EINVAL (bad name) or another -errno. The library
 * is usable in every case.
 */
int atel_init(const char *shm_name);

/*
 * Releases every ring this process holds (writes END records) and detaches.
 * Later calls are no-ops until atel_init() is called again. Must not run
 * concurrently with recording calls of other threads.
 */
void atel_shutdown(void);

/* True if the segment is attached now. Thread-safe. */
bool atel_attached(void);

/*
 * Reason for the last call of this thread that was rejected or dropped for
 * an invalid argument: an invalid metric or label name, a type clash, a label
 * set that differs from the metric's first series, a negative counter
 * increment, ... ("" if none). The string is thread-local and stays valid
 * until the thread's next rejected call. Async-signal-safe.
 */
const char *atel_last_error(void);

/*
 * Process-wide counters (monotonic since the process started).
 *
 * A metric value that finds the thread's ring full is not dropped: it is
 * folded into the thread's pending state and written when the ring has room
 * (`folded`; docs/abi.md 2.3), so sums, counts and histogram buckets stay
 * exact. A span whose start record finds the ring full is dropped whole
 * (`spans_dropped`, its start counted once in drops_ring_full); a recorded
 * span always gets its end record (docs/abi.md 2.4).
 */
typedef struct {
	uint64_t records;          /* data records published: samples, span start/end/attr/event/error */
	uint64_t definitions;      /* STRDEF, SERIESDEF, BOUNDS records published */
	uint64_t meta;             /* BEGIN, END records published */
	uint64_t slots;            /* 64-byte slots published (continuations included) */
	uint64_t drops_ring_full;  /* records refused: the thread's ring was full (and, for metric
	                              values, the pending state too, or still pending at thread exit) */
	uint64_t drops_no_ring;    /* records refused: every ring of the segment was taken */
	uint64_t drops_no_def;     /* records refused: their definition could not be written */
	uint64_t drops_no_sidecar; /* records refused: no segment attached */
	uint64_t drops_reentrant;  /* records refused: a signal handler interrupted a call of its thread */
	uint64_t invalid;          /* calls rejected for invalid arguments (see atel_last_error) */
	uint64_t rings_claimed;
	uint64_t rings_released;
	uint64_t attach_attempts;
	bool attached;
	/* since 0.2 */
	uint64_t folded;           /* metric calls folded because the ring was full (not drops) */
	uint64_t folded_records;   /* folded records written (each carries one or more folded calls) */
	uint64_t spans_dropped;    /* spans dropped whole (their start record was refused) */
	uint64_t block_waits;      /* span records that waited for room (atel_set_block_timeout_us) */
	uint64_t block_timeouts;   /* ... and were still refused when the wait ended */
	uint64_t segment_faults;   /* SIGBUS absorbed: someone truncated the segment under us */
} atel_stats;

/*
 * Fills *out (summed over all threads, live and exited). Takes a lock; not
 * signal-safe. A macro over atel_stats_get_sized, so that a program built
 * with an older, shorter atel_stats keeps working with a newer library.
 */
void atel_stats_get_sized(atel_stats *out, size_t size);
void atel_stats_get(atel_stats *out);
#define atel_stats_get(out) atel_stats_get_sized((out), sizeof(*(out)))

/*
 * Span records that find the ring full wait up to `us` microseconds for the
 * sidecar to make room (default 0: never wait; $ATEL_BLOCK_TIMEOUT_US sets
 * it at start-up; at most 10 s). They wait only while a sidecar is draining,
 * and never in a signal handler (a call made with a signal mask other than
 * the thread's usual one does not wait). Metric values never wait: they
 * fold. Process-wide; thread-safe.
 */
void atel_set_block_timeout_us(uint64_t us);

/*
 * At thread exit, atel_shutdown() and exit(), folded metric values still
 * waiting for ring space are written while the sidecar drains, waiting up
 * to `ms` milliseconds (default 100; $ATEL_EXIT_WAIT_MS); what does not fit
 * by then is counted in drops_ring_full. Never waits without a sidecar.
 * Process-wide; thread-safe.
 */
void atel_set_exit_wait_ms(uint32_t ms);

/* ------------------------------------------------------------------------ */
/* metrics                                                                  */

/*
 * A series: a metric name plus a label set, interned once. Handles are
 * process-wide, immutable and never freed; share them between threads. A
 * NULL handle (returned for invalid input) makes every call on it a counted
 * no-op.
 */
typedef const struct atel__series *atel_series;

typedef enum {
	ATEL_COUNTER = 1,
	ATEL_GAUGE = 2,
	ATEL_HISTOGRAM = 3,
} atel_metric_type;

/*
 * Look up or create a series. Arguments after the name are label pairs,
 * "key", "value", ..., terminated by NULL (at most 16 pairs). Names follow
 * the Prometheus rules (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * [a-zA-Z_][a-zA-Z0-9_]* not starting with "__"; values are UTF-8); a metric
 * keeps the type and the label keys of its first series. Pair order does not
 * matter. The sixteen metrics of the catalog (agent_execution_total, ...)
 * are pre-registered with their types and histogram buckets.
 * Histograms not in the catalog get Prometheus' default buckets
 * (.005 .. 10 s); use atel_histogram_bounds for others.
 * Thread-safe; a lookup of an existing series is lock-free.
 * @return the handle, or NULL (see atel_last_error).
 */
atel_series atel_counter(const char *name, ...);
atel_series atel_gauge(const char *name, ...);
atel_series atel_histogram(const char *name, ...);

/* Histogram with explicit bucket upper bounds (1..64, finite, strictly increasing; +Inf is implicit). */
atel_series atel_histogram_bounds(const char *name, const double *bounds, size_t nbounds, ...);

/* Array form: kv holds npairs {key, value} pairs (kv[2i], kv[2i+1]). */
atel_series atel_series_get(atel_metric_type type, const char *name, const char *const *kv, size_t npairs);

/* Counter += v (v finite, >= 0) or gauge += v (any finite v). Async-signal-safe. */
void atel_add(atel_series s, double v);
/* Gauge = v. Async-signal-safe. */
void atel_set(atel_series s, double v);
/* Histogram observation. Async-signal-safe. */
void atel_observe(atel_series s, double v);

/* ------------------------------------------------------------------------ */
/* the agent-level helpers of docs/reference.md; use with designated initializers */

/* NULL strings are recorded as "unknown". */
typedef struct {
	const char *agent_id, *agent_type, *phase, *model;
	double duration_ms;
	uint64_t tokens;
	bool success;
} atel_agent_execution;

typedef struct {
	const char *tool, *error_type;
	double duration_ms;
	bool success;
} atel_tool_usage;

typedef struct {
	const char *agent_id, *session_id;
	uint64_t used, total;
} atel_context_usage;

typedef struct {
	const char *component, *error_type, *severity;
} atel_error_info;

typedef struct {
	const char *task_type, *error_type;
	double duration_ms;
	bool success;
} atel_task_info;

/*
 * agent_execution_total{agent_type,phase,status="success"|"failure"} += 1,
 * agent_execution_duration_seconds{agent_type,phase} observes duration_ms/1000,
 * agent_tokens_used{agent_type,model} += tokens (when tokens > 0).
 */
void atel_track_agent_execution(const atel_agent_execution *e);

/*
 * tool_calls_total{tool,status} += 1, tool_call_duration_seconds{tool} observes
 * duration_ms/1000, and tool_call_success_total{tool} += 1 or
 * tool_call_failure_total{tool,error_type} += 1.
 */
void atel_track_tool_usage(const atel_tool_usage *t);

/*
 * context_window_used_tokens{agent_id} = used, context_window_size_tokens{agent_id}
 * = total, context_window_utilization{agent_id,session_id} = 100*used/total
 * (percent; not set when total is 0).
 */
void atel_track_context_usage(const atel_context_usage *c);

/*
 * error_total{component,error_type,severity} += 1 and error_rate{component,
 * error_type} = the exponentially weighted rate of these errors per second
 * (time constant 60 s, updated at each error). severity NULL: "error".
 */
void atel_track_error(const atel_error_info *e);

/*
 * task_duration_seconds{task_type,status} observes duration_ms/1000, and
 * task_success_total{task_type} += 1 or task_failure_total{task_type,error_type} += 1.
 */
void atel_track_task(const atel_task_info *t);

/* task_queue_size{priority} = size. */
void atel_track_queue_size(const char *priority, double size);

/* ------------------------------------------------------------------------ */
/* tracing                                                                  */

/* OpenTelemetry's SpanKind values. */
typedef enum {
	ATEL_SPAN_INTERNAL = 1,
	ATEL_SPAN_SERVER = 2,
	ATEL_SPAN_CLIENT = 3,
	ATEL_SPAN_PRODUCER = 4,
	ATEL_SPAN_CONSUMER = 5,
} atel_span_kind;

/* OpenTelemetry's StatusCode values. */
typedef enum {
	ATEL_STATUS_UNSET = 0,
	ATEL_STATUS_OK = 1,
	ATEL_STATUS_ERROR = 2,
} atel_status_code;

#define ATEL_TRACE_FLAG_SAMPLED 0x01u
#define ATEL_TRACE_FLAG_RANDOM  0x02u /* W3C level 2: the trace id's right 7 bytes are random */

/*
 * A W3C trace context: what atel_extract() parses and what a span carries.
 * `tracestate` is an interned, validated tracestate list (0: none); read it
 * with atel_context_tracestate().
 */
typedef struct {
	uint8_t trace_id[16];
	uint8_t span_id[8];
	uint8_t trace_flags;
	uint8_t version;      /* version of the parsed traceparent (0 when generated) */
	uint16_t reserved;
	uint32_t tracestate;
} atel_span_context;

/*
 * A span is a value (48 bytes): copy it, keep it on the stack, pass pointers.
 * A zeroed atel_span is "no span": every call on it is a no-op.
 */
typedef struct {
	atel_span_context ctx; /* ctx.span_id is this span's id */
	uint8_t parent_id[8];  /* zero for a root span */
	uint32_t name_id;
	uint8_t kind;
	uint8_t state;         /* 0 none, 1 live, 2 ended, 3 dropped whole (the ring was full) */
	uint16_t reserved;     /* library-private (which ring holds back this span's end slot) */
} atel_span;

/* An attribute for events (and atel_span_set_attrs). */
typedef enum {
	ATEL_ATTR_STR = 1,
	ATEL_ATTR_INT = 2,
	ATEL_ATTR_DOUBLE = 3,
	ATEL_ATTR_BOOL = 4,
} atel_attr_type;

typedef struct {
	const char *key;
	atel_attr_type type;
	union {
		const char *s;
		int64_t i;
		double d;
		bool b;
	} v;
} atel_attr;

#define ATEL_ATTR_S(k, x) ((atel_attr){ .key = (k), .type = ATEL_ATTR_STR, .v.s = (x) })
#define ATEL_ATTR_I(k, x) ((atel_attr){ .key = (k), .type = ATEL_ATTR_INT, .v.i = (x) })
#define ATEL_ATTR_D(k, x) ((atel_attr){ .key = (k), .type = ATEL_ATTR_DOUBLE, .v.d = (x) })
#define ATEL_ATTR_B(k, x) ((atel_attr){ .key = (k), .type = ATEL_ATTR_BOOL, .v.b = (x) })

/*
 * Starts a root span of a new trace: random 16-byte trace id and 8-byte span
 * id (per-thread generator seeded from the kernel; never all-zero), flags
 * sampled|random. Works without a sidecar (the records are dropped, the ids
 * are real). @return the span; a zeroed span if name is NULL or empty.
 */
atel_span atel_trace_start(const char *name, atel_span_kind kind);

/* Child of parent (same trace, flags and tracestate). parent NULL or not live: a new root. */
atel_span atel_span_start(const atel_span *parent, const char *name, atel_span_kind kind);

/*
 * Joins a remote trace: a span whose parent is ctx->span_id in ctx's trace,
 * keeping its flags (sampled, random) and tracestate. ctx NULL or invalid
 * (all-zero ids): starts a new trace, as W3C Trace Context requires.
 */
atel_span atel_trace_continue(const atel_span_context *ctx, const char *name, atel_span_kind kind);

/* Typed attributes (OpenTelemetry attribute types). Strings up to 4096 bytes (longer: truncated). */
void atel_span_set_str(const atel_span *s, const char *key, const char *value);
void atel_span_set_int(const atel_span *s, const char *key, int64_t value);
void atel_span_set_double(const atel_span *s, const char *key, double value);
void atel_span_set_bool(const atel_span *s, const char *key, bool value);
void atel_span_set_attrs(const atel_span *s, const atel_attr *attrs, size_t n);

/* A timestamped event. */
void atel_span_add_event(const atel_span *s, const char *name);
/* An event with up to 32 attributes (written all-or-nothing). */
void atel_span_add_event_attrs(const atel_span *s, const char *name, const atel_attr *attrs, size_t n);

/*
 * Records an exception per OpenTelemetry's conventions: the consumer turns
 * it into an "exception" event with attributes exception.type and
 * exception.message and sets the span status to ERROR. type NULL: "error".
 */
void atel_span_record_error(const atel_span *s, const char *type, const char *message);

/* Ends the span with a status (message may be NULL). Ending twice is harmless (the second is ignored). */
void atel_span_end(atel_span *s, atel_status_code code, const char *message);

/* ------------------------------------------------------------------------ */
/* W3C Trace Context propagation (level 1 and 2)                            */

/*
 * Formats s's context as a traceparent header value, version 00, lowercase
 * ("00-<trace_id>-<span_id>-<flags>", 55 characters) into buf (len >= 56).
 * Async-signal-safe. @return 55; -EINVAL if s is not a started span;
 * -ENOSPC if len is too small.
 */
int atel_propagate(const atel_span *s, char *buf, size_t len);

/*
 * Formats s's tracestate (validated, normalised: no blanks, at most 32
 * members, at most 512 characters) into buf. @return its length (0: none);
 * -ENOSPC if it does not fit (len 513 always suffices).
 */
int atel_propagate_tracestate(const atel_span *s, char *buf, size_t len);

/*
 * Parses a traceparent header value. Leading/trailing blanks are ignored.
 * Version 00 must be exactly 55 characters; a higher version (not ff) is
 * parsed by its first four fields and may continue after a '-'. Lowercase hex
 * only; all-zero trace or span ids are invalid. out->tracestate is set to 0.
 * @return 0, or -EINVAL (*out untouched).
 */
int atel_extract(const char *traceparent, atel_span_context *out);

/*
 * Parses a tracestate header value (several header lines joined with ','
 * form one list) into ctx->tracestate. Invalid members, duplicated keys or
 * more than 32 members make the whole list invalid (W3C: discard it); then
 * ctx->tracestate is set to 0. Empty members and blanks around ',' are
 * ignored. Not signal-safe (interns the string).
 * @return 0; -EINVAL if the list was invalid and discarded.
 */
int atel_extract_tracestate(const char *tracestate, atel_span_context *ctx);

/* The tracestate string of ctx ("" if none). Stays valid until the process exits. */
const char *atel_context_tracestate(const atel_span_context *ctx);

/*
 * For a child process: setenv TRACEPARENT (and TRACESTATE, or unsetenv it) to
 * s's context. Not thread-safe with respect to other getenv/setenv users.
 * @return 0, -EINVAL if s is not a started span, or -errno from setenv.
 */
int atel_env_inject(const atel_span *s);

/*
 * Reads TRACEPARENT (else TRACE_CONTEXT) and TRACESTATE from the environment.
 * @return 0; -ENOENT if neither variable is set; -EINVAL if the traceparent is
 * invalid (an invalid tracestate is discarded and does not fail the call).
 */
int atel_env_extract(atel_span_context *out);

/* Lowercase hex of the trace id (33 bytes) or span id (17 bytes), NUL-terminated. */
void atel_trace_id_hex(const atel_span_context *ctx, char out[33]);
void atel_span_id_hex(const atel_span_context *ctx, char out[17]);

#ifdef __cplusplus
}
#endif

#endif /* ATEL_H */
