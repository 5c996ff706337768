/* SPDX-License-Identifier: MIT */
/*
 * selfmetrics.c - the atel_* families of /metrics (selfmetrics.h): ateld's
 * own counters from the shared state, the aggregates' and the HTTP
 * server's, written through the Prometheus encoder (encode/prometheus.h)
 * ahead of the aggregates so that a producer cannot shadow them.
 */
#include <stdatomic.h>
#include <stdio.h>

#include "ring.h"
#include "selfmetrics.h"

static uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

/* The reason label of atel_records_dropped_total (README "Prometheus"): the
 * log's loss-cause names, except two the exposition spells out. */
static const char *drop_reason(unsigned cause)
{
	if (cause == ATEL_LOSS_NO_DEF)
		return "no_definition";
	return cause ? atel__loss_cause_name(cause) : "other";
}

void atel__prom_self(void *arg, struct atel_prom_doc *doc, uint32_t aggregate_series)
{
	const struct atel_prom_self *x = arg;
	static const char *const exporters[ATEL_EXP_COUNT] = { "prometheus", "json", "otlp" };
	const struct atel_daemon *d = x->d;

	if (d) {
		const struct atel_daemon_stats *st = &d->stats;
		bool uring = atomic_load_explicit(&st->log.io_uring_active, memory_order_relaxed) != 0;

		atel__prom_one(doc, "atel_records_drained_total", "counter",
			 "Records drained from the rings and accepted into the log", (double)ld(&st->records_drained));
		atel__prom_one(doc, "atel_records_invalid_total", "counter",
			 "Records rejected by validation (malformed shared-memory input)",
			 (double)ld(&st->records_invalid));
		if (atel__prom_family(doc, "atel_records_dropped_total", "counter",
				"Records lost before reaching the log, by reason")) {
			for (int i = 0; i <= ATEL_LOSS_CAUSE_MAX; i++)
				atel__prom_sample(doc, "atel_records_dropped_total", "reason", drop_reason((unsigned)i),
					      (double)ld(&st->drops[i]));
		}
		atel__prom_one(doc, "atel_spans_dropped_total", "counter",
			 "Spans dropped whole by producers (their start record met a full ring)",
			 (double)ld(&st->spans_dropped));
		atel__prom_one(doc, "atel_metric_folds_total", "counter",
			 "Metric calls producers folded into pending state because their ring was full (not lost)",
			 (double)ld(&st->metric_folds));
		atel__prom_one(doc, "atel_loss_readings_refused_total", "counter",
			 "Readings of shared-memory loss counters not believed (backwards or implausibly fast)",
			 (double)ld(&st->loss_readings_refused));
		atel__prom_one(doc, "atel_drain_pressure_episodes_total", "counter",
			 "Times the drain switched to storage.zstd_level_pressure because producers outran it",
			 (double)ld(&st->pressure_episodes));
		atel__prom_one(doc, "atel_ring_lag_records", "gauge",
			 "Unread records in the fullest ring at the last drain pass", (double)ld(&st->ring_lag_max));
		atel__prom_one(doc, "atel_rings_active", "gauge", "Rings owned by a live producer thread at the last drain pass",
			 (double)atomic_load_explicit(&st->rings_active, memory_order_relaxed));
		atel__prom_one(doc, "atel_oldest_unread_seconds", "gauge",
			 "Age of the oldest unread record at the last drain pass",
			 (double)ld(&st->oldest_unread_ns) / 1e9);
		atel__prom_one(doc, "atel_log_raw_bytes_total", "counter",
			 "Record bytes written to the log before compression", (double)ld(&st->log.bytes_raw));
		atel__prom_one(doc, "atel_log_compressed_bytes_total", "counter",
			 "Compressed bytes written to segment files", (double)ld(&st->log.bytes_written));
		atel__prom_one(doc, "atel_log_frames_total", "counter", "zstd frames written to segment files",
			 (double)ld(&st->log.frames_written));
		atel__prom_one(doc, "atel_log_write_errors_total", "counter",
			 "Failed segment writes (retried; disk full and similar)", (double)ld(&st->log.write_errors));
		atel__prom_one(doc, "atel_segments_created_total", "counter", "Segment files created",
			 (double)ld(&st->log.segments_created));
		atel__prom_one(doc, "atel_segments_deleted_total", "counter", "Segment files deleted by retention",
			 (double)ld(&st->log.segments_deleted));
		atel__prom_one(doc, "atel_producers_reclaimed_total", "counter",
			 "Rings reclaimed from producers that died", (double)ld(&st->producers_reclaimed));
		atel__prom_one(doc, "atel_rings_quarantined_total", "counter",
			 "Rings quarantined after invalid input", (double)ld(&st->rings_quarantined));
		/* hardening (issue 12) */
		atel__prom_one(doc, "atel_records_implausible_total", "counter",
			 "Records refused for a timestamp or generation no real producer writes (also in atel_records_invalid_total)",
			 (double)ld(&st->records_implausible));
		atel__prom_one(doc, "atel_rings_damaged_total", "counter",
			 "Ring directory entries found in an unknown state, DRAINING by another process, or with changed owner fields",
			 (double)ld(&st->rings_damaged));
		atel__prom_one(doc, "atel_log_tail_cuts_total", "counter",
			 "Torn segment-file tails cut at start-up", (double)ld(&st->log_tail_cuts));
		atel__prom_one(doc, "atel_index_reopened_total", "counter",
			 "Times telemetry.db was found deleted or replaced and was reopened and rebuilt",
			 (double)ld(&st->index_reopened));
		atel__prom_one(doc, "atel_segment_header_repairs_total", "counter",
			 "Times garbage in the shared-memory segment header was restored", (double)ld(&st->segment_header_repairs));
		atel__prom_one(doc, "atel_segment_header_ok", "gauge",
			 "1 while the shared-memory segment header checks out", (double)ld(&st->segment_header_ok));
		atel__prom_one(doc, "atel_segment_truncations_total", "counter",
			 "Times the shared-memory segment file was found truncated (ateld then stops reading it)",
			 (double)ld(&st->segment_truncations));
		atel__prom_one(doc, "atel_segment_truncated", "gauge",
			 "1 while ateld runs degraded on a truncated shared-memory segment (restart it)",
			 (double)ld(&st->segment_truncated));
		atel__prom_one(doc, "atel_records_lost_truncation_total", "counter",
			 "Records drained from shared-memory pages cut away by a truncation before they reached a frame: dropped",
			 (double)ld(&st->log.records_source_lost));
		atel__prom_one(doc, "atel_index_paused", "gauge",
			 "1 while the indexer waits for disk space (index.reserve_bytes / reserve_percent)",
			 (double)ld(&st->index_paused));
		atel__prom_one(doc, "atel_index_pauses_total", "counter", "Times the indexer paused for disk space",
			 (double)ld(&st->index_pauses));
		atel__prom_one(doc, "atel_data_free_bytes", "gauge",
			 "Free bytes of the data directory's file system at the last check", (double)ld(&st->data_free_bytes));
		atel__prom_one(doc, "atel_http_conns_evicted_total", "counter",
			 "HTTP connections cut at the connection cap to make room (oldest idle first)",
			 (double)ld(&st->http_conns_evicted));
		atel__prom_one(doc, "atel_http_conns_refused_remote_total", "counter",
			 "HTTP connections refused because their non-loopback address held half the cap",
			 (double)ld(&st->http_conns_refused_remote));
		atel__prom_one(doc, "atel_promql_files_skipped_total", "counter",
			 "Segment files the query API did not read: state cached at a file boundary before the range",
			 (double)ld(&st->promql_files_skipped));
		/* the compactor (consumer/compactor.c) */
		atel__prom_one(doc, "atel_compaction_files_total", "counter",
			 "Finished segment files rewritten with larger frames", (double)ld(&st->compact_files));
		atel__prom_one(doc, "atel_compaction_bytes_saved_total", "counter",
			 "Bytes of segment files saved by compaction (size before minus size after)",
			 (double)ld(&st->compact_bytes_saved));
		atel__prom_one(doc, "atel_compaction_failures_total", "counter",
			 "Segment files the compactor refused (a damaged frame) and passed", (double)ld(&st->compact_failures));
		atel__prom_one(doc, "atel_compaction_pending_files", "gauge",
			 "Finished segment files not compacted yet at the last pass (held back by a reader's position, or queued)",
			 (double)ld(&st->compact_pending));
		atel__prom_one(doc, "atel_indexer_lag_records", "gauge",
			 "Records in the log not yet applied to the SQLite index",
			 (double)ld(&st->indexer_lag_records));
		atel__prom_one(doc, "atel_index_rows_total", "counter", "Rows written to the SQLite index",
			 (double)ld(&st->index_rows));
		atel__prom_one(doc, "atel_export_failures_total", "counter", "Failed export attempts, all exporters",
			 (double)ld(&st->export_failures));
		atel__prom_one(doc, "atel_export_rows_dropped_total", "counter",
			 "telemetry_exports rows dropped because the indexer queue was full",
			 (double)ld(&d->export_rows_dropped));
		if (atel__prom_family(doc, "atel_io_path_info", "gauge",
				"Segment write path in use (1 for the active one)")) {
			atel__prom_sample(doc, "atel_io_path_info", "path", "io_uring", uring ? 1 : 0);
			atel__prom_sample(doc, "atel_io_path_info", "path", "pwritev", uring ? 0 : 1);
		}
		atel__prom_one(doc, "atel_start_time_seconds", "gauge", "Start time of ateld since the Unix epoch",
			 (double)d->start_ns / 1e9);
		if (atel__prom_family(doc, "atel_exporter_attempts_total", "counter", "Export attempts by exporter"))
			for (int i = 0; i < ATEL_EXP_COUNT; i++)
				atel__prom_sample(doc, "atel_exporter_attempts_total", "exporter", exporters[i],
					      (double)ld(&d->health[i].attempts));
		if (atel__prom_family(doc, "atel_exporter_failures_total", "counter",
				"Failed export attempts by exporter"))
			for (int i = 0; i < ATEL_EXP_COUNT; i++)
				atel__prom_sample(doc, "atel_exporter_failures_total", "exporter", exporters[i],
					      (double)ld(&d->health[i].failures));
		if (atel__prom_family(doc, "atel_exporter_last_success_timestamp_seconds", "gauge",
				"Time of the last successful export by exporter (0: never)"))
			for (int i = 0; i < ATEL_EXP_COUNT; i++)
				atel__prom_sample(doc, "atel_exporter_last_success_timestamp_seconds", "exporter",
					      exporters[i], (double)ld(&d->health[i].last_success_ns) / 1e9);
	}
	atel__prom_one(doc, "atel_series_overflow_total", "counter",
		 "Series folded into a metric's overflow series by the cardinality guard",
		 (double)(d ? ld(&d->stats.series_overflow) > x->agg_series_overflow
				      ? ld(&d->stats.series_overflow)
				      : x->agg_series_overflow
			    : x->agg_series_overflow));
	atel__prom_one(doc, "atel_series_expired_total", "counter",
		 "Series removed from the aggregates after prometheus.series_ttl without a sample",
		 (double)x->agg_series_expired);
	atel__prom_one(doc, "atel_aggregate_type_clashes_total", "counter",
		 "Samples ignored because their metric was first seen with another type or bucket layout",
		 (double)x->agg_type_clashes);
	atel__prom_one(doc, "atel_aggregate_rejected_samples_total", "counter",
		 "Samples ignored as invalid (negative counter increments, NaN observations) or beyond the metric-name cap",
		 (double)x->agg_rejected);
	atel__prom_one(doc, "atel_aggregate_samples_total", "counter", "Samples applied to the aggregates",
		 (double)x->agg_events_applied);
	atel__prom_one(doc, "atel_aggregate_series", "gauge", "Series held by the aggregates",
		 (double)aggregate_series);
	if (x->http_responses) {
		if (atel__prom_family(doc, "atel_http_responses_total", "counter",
				"HTTP responses sent by the /metrics server, by status code"))
			for (int i = 0; i < ATEL_HTTP_CODES_N; i++) {
				char code[8];
				snprintf(code, sizeof(code), "%d", atel__http_codes[i]);
				atel__prom_sample(doc, "atel_http_responses_total", "code", code,
					      (double)x->http_responses[i]);
			}
		atel__prom_one(doc, "atel_http_connections_rejected_total", "counter",
			 "Connections refused with 503 at the connection cap", (double)x->http_conns_rejected);
		atel__prom_one(doc, "atel_http_timeouts_total", "counter",
			 "HTTP connections closed because the client was too slow", (double)x->http_timeouts);
	}
	if (x->remote_write) {
		const struct atel_rw_counts *rw = x->remote_write;
		atel__prom_one(doc, "atel_remote_write_samples_sent_total", "counter",
			       "Samples the remote-write receiver accepted", (double)rw->samples_sent);
		atel__prom_one(doc, "atel_remote_write_samples_dropped_total", "counter",
			       "Samples in requests the receiver refused with a 4xx other than 429 (not retried)",
			       (double)rw->samples_dropped);
		if (atel__prom_family(doc, "atel_remote_write_requests_total", "counter",
				      "Remote-write requests by outcome (failed ones are retried)")) {
			atel__prom_sample(doc, "atel_remote_write_requests_total", "outcome", "ok", (double)rw->requests_ok);
			atel__prom_sample(doc, "atel_remote_write_requests_total", "outcome", "failed",
					  (double)rw->requests_failed);
			atel__prom_sample(doc, "atel_remote_write_requests_total", "outcome", "dropped",
					  (double)rw->requests_dropped);
		}
		atel__prom_one(doc, "atel_remote_write_batches_total", "counter", "Remote-write batches made from the log",
			       (double)rw->batches);
		atel__prom_one(doc, "atel_remote_write_pending_samples", "gauge",
			       "Samples of the batch being delivered (kept in the outbox until accepted)",
			       (double)rw->pending_samples);
		atel__prom_one(doc, "atel_remote_write_last_sent_timestamp_seconds", "gauge",
			       "Sample time of the last batch delivered (0: none yet)", (double)rw->last_sent_ms / 1e3);
	}
	if (x->d && atomic_load_explicit(&x->d->stats.otlp_recv.enabled, memory_order_relaxed)) {
		/* the OTLP/HTTP receiver (exporters/otlp_receiver.h; issue 19) */
		const struct atel_otlp_recv_counts *o = &x->d->stats.otlp_recv;
#define OR_LD(f) ((double)atomic_load_explicit(&o->f, memory_order_relaxed))
		atel__prom_one(doc, "atel_otlp_receiver_spans_accepted_total", "counter",
			       "Spans the OTLP receiver wrote into its ring", OR_LD(spans_accepted));
		atel__prom_one(doc, "atel_otlp_receiver_spans_rejected_total", "counter",
			       "Spans the OTLP receiver rejected (partial success)", OR_LD(spans_rejected));
		atel__prom_one(doc, "atel_otlp_receiver_data_points_accepted_total", "counter",
			       "Metric data points the OTLP receiver accepted", OR_LD(points_accepted));
		atel__prom_one(doc, "atel_otlp_receiver_data_points_rejected_total", "counter",
			       "Metric data points the OTLP receiver rejected (partial success)", OR_LD(points_rejected));
		atel__prom_one(doc, "atel_otlp_receiver_records_total", "counter",
			       "Ring records the OTLP receiver published", OR_LD(records_written));
		if (atel__prom_family(doc, "atel_otlp_receiver_requests_total", "counter",
				      "Requests the OTLP receiver answered, by status code"))
			for (int i = 0; i < ATEL_OTLP_RECV_NCODES; i++) {
				char code[8];
				uint64_t n = 0;
				for (int sg = 0; sg < 3; sg++)
					n += atomic_load_explicit(&o->requests[sg][i], memory_order_relaxed);
				snprintf(code, sizeof(code), "%d", atel__otlp_recv_codes[i]);
				atel__prom_sample(doc, "atel_otlp_receiver_requests_total", "code", code, (double)n);
			}
#undef OR_LD
	}
	if (x->http_scrapes && atel__prom_family(doc, "atel_http_scrapes_total", "counter",
						 "Successful /metrics responses by variant (format and content coding)"))
		for (int i = 0; i < ATEL_HTTP_VARIANTS; i++)
			atel__prom_sample(doc, "atel_http_scrapes_total", "variant", atel__http_variant_names[i],
					  (double)x->http_scrapes[i]);
}
