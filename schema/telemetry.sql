-- SPDX-License-Identifier: MIT
-- schema/telemetry.sql: the SQLite index of the segment log (docs/schema.md).
--
-- Embedded into ateld (consumer/meson.build -> atel__schema_sql) and run by
-- the indexer every time it opens the database, so every statement is
-- idempotent (IF NOT EXISTS / OR IGNORE). The index is DERIVED data: the
-- segment log is the truth and `atel reindex` rebuilds this file from it.
-- One writer (ateld's indexer thread); readers (atel CLI, query engine) may
-- open it concurrently (WAL mode, set by the writer).
--
-- Conventions: times are CLOCK_REALTIME nanoseconds (INTEGER); trace and
-- span ids are lowercase hex; labels/attributes are compact JSON objects,
-- label keys sorted; series_hash is the decoder's FNV-1a key_hash of the
-- metric name and sorted labels, stored as a signed 64-bit integer.

-- Schema version and other key/value facts about this file.
CREATE TABLE IF NOT EXISTS telemetry_meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
INSERT OR IGNORE INTO telemetry_meta(key, value) VALUES ('schema_version', '1');

-- The indexer's persisted log cursor (struct atel_log_pos), written in the
-- same transaction as the rows it covers: exactly-once into the index.
CREATE TABLE IF NOT EXISTS telemetry_index_cursor (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	file_seq   INTEGER NOT NULL,
	frame_off  INTEGER NOT NULL,
	rec_idx    INTEGER NOT NULL,
	events     INTEGER NOT NULL DEFAULT 0,   -- events applied since the database was created
	updated_ns INTEGER NOT NULL DEFAULT 0    -- wall clock of the last commit
);
INSERT OR IGNORE INTO telemetry_index_cursor(id, file_seq, frame_off, rec_idx) VALUES (1, 0, 0, 0);

-- Raw metric samples, one row per SAMPLE record.
--   value: counter increment (op 'add'); gauge value after the sample (op
--   'set', or 'add' for a gauge increment, whose delta is then applied to the
--   series' previous value); histogram observation (op 'observe').
CREATE TABLE IF NOT EXISTS telemetry_metrics (
	id          INTEGER PRIMARY KEY,
	ts_ns       INTEGER NOT NULL,
	name        TEXT NOT NULL,
	labels      TEXT NOT NULL,               -- JSON object, keys sorted
	series_hash INTEGER NOT NULL,
	metric_type TEXT NOT NULL,               -- counter | gauge | histogram
	value       REAL NOT NULL,
	op          TEXT NOT NULL,               -- add | set | observe
	pid         INTEGER,
	ring        INTEGER,
	seq         INTEGER                      -- record position in its ring
);
CREATE INDEX IF NOT EXISTS telemetry_metrics_name_ts ON telemetry_metrics(name, ts_ns);
CREATE INDEX IF NOT EXISTS telemetry_metrics_series_ts ON telemetry_metrics(series_hash, ts_ns);
CREATE INDEX IF NOT EXISTS telemetry_metrics_ts ON telemetry_metrics(ts_ns);

-- One row per series ever indexed: the catalog of names/labels and the state
-- a resumed indexer needs (gauge value for gauge increments).
CREATE TABLE IF NOT EXISTS telemetry_series (
	series_hash INTEGER PRIMARY KEY,
	name        TEXT NOT NULL,
	labels      TEXT NOT NULL,
	metric_type TEXT NOT NULL,
	bounds      TEXT,                        -- JSON array, histograms
	first_ns    INTEGER NOT NULL,
	last_ns     INTEGER NOT NULL,
	samples     INTEGER NOT NULL,
	last_value  REAL NOT NULL                -- value of the last sample (as in telemetry_metrics)
);
CREATE INDEX IF NOT EXISTS telemetry_series_name ON telemetry_series(name);

-- Spans. status_code: 0 unset, 1 ok, 2 error (ERROR wins: a recorded error
-- or an ERROR end keeps the span in error even if it later ends OK).
CREATE TABLE IF NOT EXISTS telemetry_spans (
	trace_id       TEXT NOT NULL,
	span_id        TEXT NOT NULL,
	parent_span_id TEXT,                     -- NULL for roots
	name           TEXT NOT NULL,
	kind           INTEGER NOT NULL,         -- OTel 1 internal .. 5 consumer
	start_ns       INTEGER,
	end_ns         INTEGER,                  -- NULL while open
	status_code    INTEGER NOT NULL DEFAULT 0,
	status_message TEXT,
	attributes     TEXT NOT NULL DEFAULT '{}', -- JSON object of typed values
	pid            INTEGER,
	tid            INTEGER,
	ring           INTEGER,
	generation     INTEGER,
	service        TEXT,                     -- producer's command name
	trace_flags    INTEGER,
	PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS telemetry_spans_start ON telemetry_spans(start_ns);
CREATE INDEX IF NOT EXISTS telemetry_spans_name ON telemetry_spans(name, start_ns);
CREATE INDEX IF NOT EXISTS telemetry_spans_open ON telemetry_spans(ring, generation) WHERE end_ns IS NULL;

-- Span events; a recorded error is an event named "exception" with
-- exception.type and exception.message attributes (OpenTelemetry convention).
CREATE TABLE IF NOT EXISTS telemetry_span_events (
	id         INTEGER PRIMARY KEY,
	trace_id   TEXT NOT NULL,
	span_id    TEXT NOT NULL,
	ts_ns      INTEGER NOT NULL,
	name       TEXT NOT NULL,
	attributes TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS telemetry_span_events_span ON telemetry_span_events(trace_id, span_id);
CREATE INDEX IF NOT EXISTS telemetry_span_events_ts ON telemetry_span_events(ts_ns);

-- Per-series rollups per interval: count, sum, min, max and last of the
-- values stored in telemetry_metrics.value; histograms also carry their
-- bounds and per-bucket (NOT cumulative) counts, the last one being +Inf.
CREATE TABLE IF NOT EXISTS telemetry_aggregates (
	name            TEXT NOT NULL,
	labels          TEXT NOT NULL,
	series_hash     INTEGER NOT NULL,
	metric_type     TEXT NOT NULL,
	bucket_start_ns INTEGER NOT NULL,
	interval_s      INTEGER NOT NULL,
	count           INTEGER NOT NULL,
	sum             REAL NOT NULL,
	min             REAL NOT NULL,
	max             REAL NOT NULL,
	last            REAL NOT NULL,
	bounds          TEXT,                    -- JSON array, histograms
	buckets         TEXT,                    -- JSON array of per-bucket counts, histograms
	last_ns         INTEGER,                 -- timestamp of the last sample in the bucket
	PRIMARY KEY (series_hash, interval_s, bucket_start_ns)
);
CREATE INDEX IF NOT EXISTS telemetry_aggregates_name ON telemetry_aggregates(name, bucket_start_ns);
CREATE INDEX IF NOT EXISTS telemetry_aggregates_time ON telemetry_aggregates(bucket_start_ns);

-- One row per export attempt (queued by the exporters, written by the indexer).
CREATE TABLE IF NOT EXISTS telemetry_exports (
	id       INTEGER PRIMARY KEY,
	ts_ns    INTEGER,
	exporter TEXT,                           -- prometheus | json | otlp
	signal   TEXT,                           -- metrics | traces
	items    INTEGER,
	bytes    INTEGER,
	status   INTEGER,                        -- HTTP status, 0 local write, -errno transport error
	error    TEXT                            -- NULL on success
);
CREATE INDEX IF NOT EXISTS telemetry_exports_ts ON telemetry_exports(ts_ns);

-- In-band loss reports (LOSS records) per ring and generation.
CREATE TABLE IF NOT EXISTS telemetry_losses (
	id         INTEGER PRIMARY KEY,
	ts_ns      INTEGER NOT NULL,
	ring       INTEGER,
	generation INTEGER,
	pid        INTEGER,
	cause      TEXT NOT NULL,                -- ring_full | no_ring | invalid | no_def | producer_died | no_sidecar
	count      INTEGER NOT NULL,
	first_ns   INTEGER,
	last_ns    INTEGER
);
CREATE INDEX IF NOT EXISTS telemetry_losses_ts ON telemetry_losses(ts_ns);

-- What each segment file holds, as indexed (index.mode compact and full):
-- samples and spans (span ends) counted at the commit that covered them, so
-- a transaction that crosses a file boundary is counted in the later file.
-- `atel status` divides the bytes on disk by these counts.
CREATE TABLE IF NOT EXISTS telemetry_segments (
	file_seq INTEGER PRIMARY KEY,
	first_ns INTEGER,
	last_ns  INTEGER,
	samples  INTEGER NOT NULL DEFAULT 0,
	spans    INTEGER NOT NULL DEFAULT 0
);

-- ---------------------------------------------------------------- views --

-- The latest sample of every series (by log order) with its sample count.
CREATE VIEW IF NOT EXISTS v_recent_metrics AS
SELECT name, labels, series_hash, metric_type, value, op, ts_ns, samples
FROM (SELECT name, labels, series_hash, metric_type, value, op, ts_ns,
             max(id) AS last_id, count(*) AS samples
      FROM telemetry_metrics GROUP BY series_hash);

-- Per agent type: executions (agent_execution_total{agent_type,phase,status}),
-- successes (status 'success'/'ok'), durations
-- (agent_execution_duration_seconds) and tokens (agent_tokens_used).
CREATE VIEW IF NOT EXISTS v_agent_performance AS
WITH ex AS (
	SELECT json_extract(labels, '$.agent_type') AS agent_type,
	       sum(value) AS executions,
	       sum(CASE WHEN json_extract(labels, '$.status') IN ('success', 'ok') THEN value ELSE 0 END) AS successes,
	       max(ts_ns) AS last_ns
	FROM telemetry_metrics WHERE name = 'agent_execution_total' GROUP BY 1),
dur AS (
	SELECT json_extract(labels, '$.agent_type') AS agent_type,
	       count(*) AS n, avg(value) AS avg_s, min(value) AS min_s, max(value) AS max_s,
	       max(ts_ns) AS last_ns
	FROM telemetry_metrics WHERE name = 'agent_execution_duration_seconds' GROUP BY 1),
tok AS (
	SELECT json_extract(labels, '$.agent_type') AS agent_type, sum(value) AS tokens, max(ts_ns) AS last_ns
	FROM telemetry_metrics WHERE name = 'agent_tokens_used' GROUP BY 1),
types AS (SELECT agent_type FROM ex UNION SELECT agent_type FROM dur UNION SELECT agent_type FROM tok)
SELECT t.agent_type AS agent_type,
       coalesce(ex.executions, 0) AS executions,
       coalesce(ex.successes, 0) AS successes,
       coalesce(ex.executions, 0) - coalesce(ex.successes, 0) AS failures,
       CASE WHEN coalesce(ex.executions, 0) > 0 THEN ex.successes / ex.executions END AS success_rate,
       coalesce(dur.n, 0) AS timed_executions,
       dur.avg_s AS avg_duration_s,
       dur.min_s AS min_duration_s,
       dur.max_s AS max_duration_s,
       coalesce(tok.tokens, 0) AS tokens_used,
       max(coalesce(ex.last_ns, 0), coalesce(dur.last_ns, 0), coalesce(tok.last_ns, 0)) AS last_ns
FROM types t
LEFT JOIN ex ON ex.agent_type IS t.agent_type
LEFT JOIN dur ON dur.agent_type IS t.agent_type
LEFT JOIN tok ON tok.agent_type IS t.agent_type;

-- One row per trace: root span (no parent, or a parent outside this trace's
-- spans, e.g. a remote parent), first start, last end, duration, counts.
CREATE VIEW IF NOT EXISTS v_trace_summary AS
SELECT s.trace_id AS trace_id,
       (SELECT r.name FROM telemetry_spans r
        WHERE r.trace_id = s.trace_id
          AND (r.parent_span_id IS NULL OR NOT EXISTS (
                SELECT 1 FROM telemetry_spans p WHERE p.trace_id = r.trace_id AND p.span_id = r.parent_span_id))
        ORDER BY r.parent_span_id IS NOT NULL, r.start_ns, r.span_id LIMIT 1) AS root_name,
       min(s.start_ns) AS start_ns,
       max(s.end_ns) AS end_ns,
       max(s.end_ns) - min(s.start_ns) AS duration_ns,
       (max(s.end_ns) - min(s.start_ns)) / 1e6 AS duration_ms,
       count(*) AS span_count,
       sum(s.status_code = 2) AS error_count,
       sum(s.end_ns IS NULL) AS open_count,
       min(s.service) AS service
FROM telemetry_spans s GROUP BY s.trace_id;

-- Per tool: calls (tool_calls_total{tool,status}), successes (status
-- 'success'/'ok'), failures, success rate, durations (tool_call_duration_seconds).
CREATE VIEW IF NOT EXISTS v_tool_usage AS
WITH c AS (
	SELECT json_extract(labels, '$.tool') AS tool,
	       sum(value) AS calls,
	       sum(CASE WHEN json_extract(labels, '$.status') IN ('success', 'ok') THEN value ELSE 0 END) AS successes,
	       max(ts_ns) AS last_ns
	FROM telemetry_metrics WHERE name = 'tool_calls_total' GROUP BY 1),
d AS (
	SELECT json_extract(labels, '$.tool') AS tool,
	       count(*) AS n, avg(value) AS avg_s, max(value) AS max_s, max(ts_ns) AS last_ns
	FROM telemetry_metrics WHERE name = 'tool_call_duration_seconds' GROUP BY 1),
tools AS (SELECT tool FROM c UNION SELECT tool FROM d)
SELECT t.tool AS tool,
       coalesce(c.calls, 0) AS calls,
       coalesce(c.successes, 0) AS successes,
       coalesce(c.calls, 0) - coalesce(c.successes, 0) AS failures,
       CASE WHEN coalesce(c.calls, 0) > 0 THEN c.successes / c.calls END AS success_rate,
       coalesce(d.n, 0) AS timed_calls,
       d.avg_s AS avg_duration_s,
       d.max_s AS max_duration_s,
       max(coalesce(c.last_ns, 0), coalesce(d.last_ns, 0)) AS last_ns
FROM tools t
LEFT JOIN c ON c.tool IS t.tool
LEFT JOIN d ON d.tool IS t.tool;

-- Per agent and session: context_window_utilization (percent) statistics,
-- the latest value, and the agent's latest used/size token gauges.
CREATE VIEW IF NOT EXISTS v_context_utilization AS
SELECT u.agent_id AS agent_id,
       u.session_id AS session_id,
       u.samples AS samples,
       u.avg_utilization AS avg_utilization,
       u.min_utilization AS min_utilization,
       u.max_utilization AS max_utilization,
       (SELECT l.value FROM telemetry_metrics l WHERE l.id = u.last_id) AS last_utilization,
       (SELECT m.value FROM telemetry_metrics m
        WHERE m.name = 'context_window_used_tokens' AND json_extract(m.labels, '$.agent_id') IS u.agent_id
        ORDER BY m.id DESC LIMIT 1) AS used_tokens,
       (SELECT m.value FROM telemetry_metrics m
        WHERE m.name = 'context_window_size_tokens' AND json_extract(m.labels, '$.agent_id') IS u.agent_id
        ORDER BY m.id DESC LIMIT 1) AS size_tokens,
       u.last_ns AS last_ns
FROM (SELECT json_extract(labels, '$.agent_id') AS agent_id,
             json_extract(labels, '$.session_id') AS session_id,
             count(*) AS samples, avg(value) AS avg_utilization,
             min(value) AS min_utilization, max(value) AS max_utilization,
             max(id) AS last_id, max(ts_ns) AS last_ns
      FROM telemetry_metrics WHERE name = 'context_window_utilization' GROUP BY 1, 2) u;

-- Error breakdown: error_total{component,error_type,severity} counts, the
-- window they were seen in and errors per second over that window (NULL for
-- a single instant), plus the latest reported error_rate gauge.
CREATE VIEW IF NOT EXISTS v_error_rate AS
SELECT e.component AS component,
       e.error_type AS error_type,
       e.severity AS severity,
       e.errors AS errors,
       e.first_ns AS first_ns,
       e.last_ns AS last_ns,
       CASE WHEN e.last_ns > e.first_ns THEN e.errors * 1e9 / (e.last_ns - e.first_ns) END AS errors_per_second,
       (SELECT r.value FROM telemetry_metrics r
        WHERE r.name = 'error_rate' AND json_extract(r.labels, '$.component') IS e.component
          AND json_extract(r.labels, '$.error_type') IS e.error_type
        ORDER BY r.id DESC LIMIT 1) AS reported_rate
FROM (SELECT json_extract(labels, '$.component') AS component,
             json_extract(labels, '$.error_type') AS error_type,
             json_extract(labels, '$.severity') AS severity,
             sum(value) AS errors, min(ts_ns) AS first_ns, max(ts_ns) AS last_ns
      FROM telemetry_metrics WHERE name = 'error_total' GROUP BY 1, 2, 3) e;
