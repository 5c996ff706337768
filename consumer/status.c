/* SPDX-License-Identifier: MIT */
/*
 * status.c - ateld's status file (daemon.h; docs/status-file.md): what
 * `atel status` reads when the daemon is not asked directly. Rewritten
 * every second by the main thread from atomics and the segment header, so
 * a slow disk or a busy thread never delays it. Not fsynced: it is a
 * snapshot, replaced a second later.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "drain.h"
#include "ring.h"
#include "util.h"

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
	char buf[32];

	/* raw text: cJSON numbers are doubles and would round nanosecond times */
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	cJSON_AddRawToObject(o, name, buf);
}

static uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static const char *state_name(uint32_t s)
{
	static const char *const names[] = { "free", "claiming", "active", "draining", "quarantined" };

	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

static cJSON *status_stats(const struct atel_daemon_stats *s)
{
	cJSON *o = cJSON_CreateObject(), *drops = cJSON_CreateObject();

	add_u64(o, "records_drained", ld(&s->records_drained));
	add_u64(o, "records_invalid", ld(&s->records_invalid));
	add_u64(o, "bytes_raw", ld(&s->log.bytes_raw));
	add_u64(o, "bytes_written", ld(&s->log.bytes_written));
	add_u64(o, "frames_written", ld(&s->log.frames_written));
	add_u64(o, "segments_created", ld(&s->log.segments_created));
	add_u64(o, "segments_deleted", ld(&s->log.segments_deleted));
	add_u64(o, "write_errors", ld(&s->log.write_errors));
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		add_u64(drops, atel__loss_cause_name(c), ld(&s->drops[c]));
	cJSON_AddItemToObject(o, "drops", drops);
	add_u64(o, "spans_dropped", ld(&s->spans_dropped));
	add_u64(o, "metric_folds", ld(&s->metric_folds));
	add_u64(o, "loss_readings_refused", ld(&s->loss_readings_refused));
	add_u64(o, "pressure_episodes", ld(&s->pressure_episodes));
	add_u64(o, "ring_lag_max", ld(&s->ring_lag_max));
	add_u64(o, "oldest_unread_ns", ld(&s->oldest_unread_ns));
	add_u64(o, "producers_reclaimed", ld(&s->producers_reclaimed));
	add_u64(o, "rings_quarantined", ld(&s->rings_quarantined));
	add_u64(o, "indexer_lag_records", ld(&s->indexer_lag_records));
	add_u64(o, "index_rows", ld(&s->index_rows));
	add_u64(o, "export_failures", ld(&s->export_failures));
	add_u64(o, "series_overflow", ld(&s->series_overflow));
	add_u64(o, "io_uring_active", atomic_load_explicit(&s->log.io_uring_active, memory_order_relaxed));
	add_u64(o, "log_end_seq", ld(&s->log.log_end_seq));
	add_u64(o, "rings_active", atomic_load_explicit(&s->rings_active, memory_order_relaxed));
	/* hardening (issue 12) */
	add_u64(o, "records_implausible", ld(&s->records_implausible));
	add_u64(o, "rings_damaged", ld(&s->rings_damaged));
	add_u64(o, "log_tail_cuts", ld(&s->log_tail_cuts));
	add_u64(o, "index_reopened", ld(&s->index_reopened));
	add_u64(o, "segment_header_repairs", ld(&s->segment_header_repairs));
	add_u64(o, "segment_header_ok", ld(&s->segment_header_ok));
	add_u64(o, "segment_truncations", ld(&s->segment_truncations));
	add_u64(o, "segment_truncated", ld(&s->segment_truncated));
	add_u64(o, "records_lost_truncation", ld(&s->log.records_source_lost));
	add_u64(o, "index_paused", ld(&s->index_paused));
	add_u64(o, "index_pauses", ld(&s->index_pauses));
	add_u64(o, "data_free_bytes", ld(&s->data_free_bytes));
	add_u64(o, "http_conns_evicted", ld(&s->http_conns_evicted));
	add_u64(o, "http_conns_refused_remote", ld(&s->http_conns_refused_remote));
	add_u64(o, "promql_files_skipped", ld(&s->promql_files_skipped));
	/* the compactor (docs/segment-format.md section 9) */
	add_u64(o, "compact_files", ld(&s->compact_files));
	add_u64(o, "compact_bytes_before", ld(&s->compact_bytes_before));
	add_u64(o, "compact_bytes_after", ld(&s->compact_bytes_after));
	add_u64(o, "compact_failures", ld(&s->compact_failures));
	add_u64(o, "compact_pending", ld(&s->compact_pending));
	return o;
}

static cJSON *status_rings(const struct atel_segment *seg)
{
	cJSON *arr = cJSON_CreateArray();

	for (uint32_t r = 0; r < seg->ring_count; r++) {
		struct atel_ring_desc *d = atel__seg_desc(seg, r);
		uint32_t s = atomic_load_explicit(&d->state, memory_order_acquire);
		uint64_t head = atomic_load_explicit(&d->head, memory_order_relaxed);
		uint64_t tail = atomic_load_explicit(&d->tail, memory_order_relaxed);
		int32_t pid = __atomic_load_n(&d->owner_pid, __ATOMIC_RELAXED);
		int32_t tid = __atomic_load_n(&d->owner_tid, __ATOMIC_RELAXED);
		char comm[32];
		cJSON *o;

		if (s == ATEL_RING_FREE && head == tail)
			continue;
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "ring", r);
		cJSON_AddStringToObject(o, "state", state_name(s));
		cJSON_AddNumberToObject(o, "pid", pid);
		cJSON_AddNumberToObject(o, "tid", tid);
		atel__owner_comm(s == ATEL_RING_FREE ? 0 : pid, tid, __atomic_load_n(&d->owner_start, __ATOMIC_RELAXED),
				 comm, sizeof(comm));
		cJSON_AddStringToObject(o, "comm", comm);
		cJSON_AddNumberToObject(o, "generation", __atomic_load_n(&d->generation, __ATOMIC_RELAXED));
		/* how ateld judges this owner alive: its liveness lock (ABI 2.1), or its pid (docs/abi.md 5.1) */
		cJSON_AddStringToObject(o, "liveness",
					(__atomic_load_n(&d->owner_flags, __ATOMIC_RELAXED) & ATEL_OWNER_LOCKED) ? "lock"
														: "pid");
		add_u64(o, "head", head);
		add_u64(o, "tail", tail);
		add_u64(o, "lag", head >= tail ? head - tail : 0);
		add_u64(o, "drops_full", ld(&d->drops_full));
		add_u64(o, "drops_nodef", ld(&d->drops_nodef));
		add_u64(o, "drops_invalid", ld(&d->drops_invalid));
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *status_exporters(const struct atel_daemon *d, const struct atel_status *stt)
{
	static const char *const names[ATEL_EXP_COUNT] = { "prometheus", "json", "otlp" };
	const struct atel_config *cfg = d->cfg;
	const bool enabled[ATEL_EXP_COUNT] = { cfg && cfg->prometheus.enabled, cfg && cfg->json.enabled,
					       cfg && cfg->opentelemetry.enabled };
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; i < ATEL_EXP_COUNT; i++) {
		struct atel_exporter_health *h = (struct atel_exporter_health *)&d->health[i];
		cJSON *e = cJSON_CreateObject();
		char last[256];

		cJSON_AddBoolToObject(e, "enabled", enabled[i] && stt->exporters_running);
		add_u64(e, "last_attempt_ns", ld(&h->last_attempt_ns));
		add_u64(e, "last_success_ns", ld(&h->last_success_ns));
		add_u64(e, "attempts", ld(&h->attempts));
		add_u64(e, "failures", ld(&h->failures));
		pthread_mutex_lock(&h->lock);
		snprintf(last, sizeof(last), "%s", h->last_error);
		pthread_mutex_unlock(&h->lock);
		cJSON_AddStringToObject(e, "last_error", last);
		cJSON_AddItemToObject(o, names[i], e);
	}
	return o;
}

/* Remote write and the OTLP receiver: what they moved, for `atel status` (issue 19). */
static void status_fleet(cJSON *root, const struct atel_daemon *d, const struct atel_status *stt)
{
	const struct atel_otlp_recv_counts *rc = &d->stats.otlp_recv;
	cJSON *o = cJSON_AddObjectToObject(root, "remote_write"), *req;

	cJSON_AddBoolToObject(o, "enabled", stt->rw.enabled);
	add_u64(o, "samples_sent", stt->rw.samples_sent);
	add_u64(o, "samples_dropped", stt->rw.samples_dropped);
	add_u64(o, "pending_samples", stt->rw.pending_samples);
	add_u64(o, "requests_ok", stt->rw.requests_ok);
	add_u64(o, "requests_failed", stt->rw.requests_failed);
	add_u64(o, "requests_dropped", stt->rw.requests_dropped);
	add_u64(o, "last_sent_ms", stt->rw.last_sent_ms > 0 ? (uint64_t)stt->rw.last_sent_ms : 0);
	o = cJSON_AddObjectToObject(root, "otlp_receiver");
	cJSON_AddBoolToObject(o, "enabled", ld(&rc->enabled) != 0);
	add_u64(o, "spans_accepted", ld(&rc->spans_accepted));
	add_u64(o, "spans_rejected", ld(&rc->spans_rejected));
	add_u64(o, "data_points_accepted", ld(&rc->points_accepted));
	add_u64(o, "data_points_rejected", ld(&rc->points_rejected));
	add_u64(o, "records_written", ld(&rc->records_written));
	req = cJSON_AddObjectToObject(o, "requests"); /* by status code, over both signals and other paths */
	for (int i = 0; i < ATEL_OTLP_RECV_NCODES; i++) {
		uint64_t n = 0;
		char code[8];

		for (int k = 0; k < 3; k++)
			n += ld(&rc->requests[k][i]);
		if (!n)
			continue;
		snprintf(code, sizeof(code), "%d", atel__otlp_recv_codes[i]);
		add_u64(req, code, n);
	}
}

int atel__status_write(const struct atel_daemon *d, const struct atel_status *stt, const char *path, const char *tmp)
{
	const struct atel_segment *seg = stt->drain ? atel__drain_segment(stt->drain) : NULL;
	/* a truncated segment (issue 12.3) is not read: its header and rings are gone */
	const bool truncated = stt->drain && atel__drain_truncated(stt->drain);
	const struct atel_segment *live = truncated ? NULL : seg;
	cJSON *root = cJSON_CreateObject(), *o;
	char io[16] = "", file[4096] = "", hex[32];
	char *text = NULL;
	int fd = -1, rc = 0;
	size_t len, off = 0;

	if (!root)
		return -ENOMEM;
	if (stt->drain)
		atel__drain_log_info(stt->drain, io, sizeof(io), file, sizeof(file));
	cJSON_AddNumberToObject(root, "pid", getpid());
	cJSON_AddStringToObject(root, "version", ATEL_VERSION);
	cJSON_AddStringToObject(root, "state",
				truncated && !strcmp(stt->state, "running") ? "degraded" : stt->state);
	if (stt->reason && *stt->reason)
		cJSON_AddStringToObject(root, "reason", stt->reason);
	else if (truncated)
		cJSON_AddStringToObject(root, "reason", "the shared-memory segment was truncated by another process; "
					"not draining: restart ateld to create a new segment");
	add_u64(root, "start_ns", d->start_ns);
	add_u64(root, "heartbeat_ns", live ? atomic_load_explicit(&live->hdr->heartbeat_ns, memory_order_relaxed)
					  : atel__now_ns());
	add_u64(root, "written_ns", atel__now_ns());
	o = cJSON_AddObjectToObject(root, "shm");
	cJSON_AddStringToObject(o, "name", seg ? seg->name : d->cfg ? d->cfg->shm.name : "");
	snprintf(hex, sizeof(hex), "%016" PRIx64, live ? live->hdr->instance_id : 0);
	cJSON_AddStringToObject(o, "instance_id", hex);
	cJSON_AddNumberToObject(o, "rings", seg ? seg->ring_count : 0);
	cJSON_AddNumberToObject(o, "ring_capacity", seg ? seg->ring_capacity : 0);
	cJSON_AddBoolToObject(o, "reattached", seg && seg->reattached);
	cJSON_AddBoolToObject(o, "truncated", truncated);
	if (live) {
		add_u64(o, "drops_no_ring", atomic_load_explicit(&live->hdr->drops_no_ring, memory_order_relaxed));
		add_u64(o, "claims_total", atomic_load_explicit(&live->hdr->claims_total, memory_order_relaxed));
	}
	cJSON_AddStringToObject(root, "io_path", io);
	cJSON_AddStringToObject(root, "current_segment", file);
	cJSON_AddItemToObject(root, "stats", status_stats(&d->stats));
	cJSON_AddItemToObject(root, "rings", live ? status_rings(live) : cJSON_CreateArray());
	cJSON_AddItemToObject(root, "exporters", status_exporters(d, stt));
	status_fleet(root, d, stt);
	o = cJSON_AddObjectToObject(root, "indexer");
	cJSON_AddBoolToObject(o, "enabled", d->cfg && d->cfg->index.enabled);
	cJSON_AddBoolToObject(o, "running", stt->indexer_running);
	add_u64(o, "lag_records", ld(&d->stats.indexer_lag_records));
	add_u64(o, "rows", ld(&d->stats.index_rows));
	if (d->cfg)
		cJSON_AddItemToObject(root, "config", atel__config_json(d->cfg));

	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)atel__file_mode());
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	(void)atel__fchmod_policy(fd);
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1) {
		rc = -EIO;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	cJSON_free(text);
	return rc;
}

