/* SPDX-License-Identifier: MIT */
/*
 * otlp_export.c - the OTLP/HTTP exporter thread (see otlp_export.h): the
 * log, spans, the traces and metrics jobs, start and stop. Delivery is
 * otlp_http.c's, settings otlp_settings.c's, the cursor file otlp_cursor.c's.
 *
 * Spans: the exporter follows the segment log with its own reader and
 * assembles spans from their records with the span assembler
 * (encode/spans.h, shared with `atel traces`). Finished spans queue in
 * completion order and leave in batches, one batch in flight at a time.
 *
 * Cursor (<state_dir>/otlp-traces.cursor), saved after every answered batch:
 *   resume - where a restarted exporter starts reading: the position before
 *            the first record of the oldest span still held (open, or
 *            finished but not yet acknowledged), else the read position;
 *   acked  - the completion position of the last acknowledged span.
 *   pending - the ids of the spans held at that moment whose first record
 *            lies before `acked`.
 * On restart the exporter re-reads from `resume`; a span record at or before
 * `acked` belongs to an acknowledged span unless its span is pending, and is
 * ignored. Batches leave in completion order, one at a time, so every span
 * that completed at or before `acked` was acknowledged, and every span held
 * then is either pending or starts after `acked`. Nothing acknowledged is
 * re-sent, nothing unacknowledged is lost (within retention).
 *
 * Metrics: every interval a cumulative snapshot of the aggregates (split by
 * families if larger than max_batch_bytes), retried a bounded number of
 * times: the next snapshot supersedes a failed one.
 *
 * Secrets: header values are set on the curl handle only (otlp_http.c).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "exporters.h"
#include "otlp_internal.h"


/* Records read after which a span seen only through END/ATTR/EVENT records
 * (its START never came) is dropped. Generous: a START on a ring drained
 * late can trail its END on another ring by up to the rings' total depth. */
#define ORPHAN_WINDOW_DEFAULT (1u << 22)
#define CURSOR_SAVE_IDLE_NS (5ull * 1000000000ull)

/* ------------------------------------------------------------------------ */
/* log source                                                               */

struct logsrc {
	const char *dir;
	struct atel_daemon *d;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct logsrc *ls = arg;

	atel__log(ls->d, ATEL_LOG_WARN, "otlp: %s at offset %" PRIu64 ": %s (skipped)", file, offset, why);
}

static int logsrc_open(void *arg, const struct atel_log_pos *start, void **handle)
{
	struct logsrc *ls = arg;
	struct atel_log_reader_opts ro = { .segments_dir = ls->dir, .start = *start, .follow = true,
					   .on_corrupt = on_corrupt, .arg = ls };

	return atel__log_open((struct atel_log_reader **)handle, &ro);
}

static int logsrc_next(void *handle, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	return atel__log_next(handle, ev, pos_after);
}

static void logsrc_close(void *handle)
{
	atel__log_close(handle);
}


/* ------------------------------------------------------------------------ */
/* spans                                                                    */

/* Applies one log event. before: position of the record, after: just past it. */
static bool replay_skip(void *arg, const struct atel_event *ev, const struct atel_log_pos *after)
{
	struct atel_otlp *o = arg;
	const uint8_t *tid, *sid;
	uint8_t key[24];

	if (!o->replay)
		return false;
	if (atel__log_pos_cmp(after, &o->acked) > 0) { /* past the acknowledged part */
		o->replay = false;
		free(o->pend);
		o->pend = NULL;
		o->npend = 0;
		return false;
	}
	switch (ev->kind) {
	case ATEL_EV_SPAN_START: tid = ev->span_start.trace_id; sid = ev->span_start.span_id; break;
	case ATEL_EV_SPAN_ATTR: tid = ev->span_attr.trace_id; sid = ev->span_attr.span_id; break;
	case ATEL_EV_SPAN_EVENT: tid = ev->span_event.trace_id; sid = ev->span_event.span_id; break;
	case ATEL_EV_SPAN_ERROR: tid = ev->span_error.trace_id; sid = ev->span_error.span_id; break;
	case ATEL_EV_SPAN_END: tid = ev->span_end.trace_id; sid = ev->span_end.span_id; break;
	default: return false;
	}
	memcpy(key, tid, 16);
	memcpy(key + 16, sid, 8);
	if (o->npend && bsearch(key, o->pend, o->npend, 24, atel__otlp_id_cmp))
		return false;
	if (ev->kind == ATEL_EV_SPAN_START)
		stat_add(&o->s_skipped, 1);
	return true;
}

static struct atel_log_pos resume_pos(const struct atel_otlp *o)
{
	const struct atel_span *first = atel__spanasm_first(o->spans);

	return first ? first->first_pos : o->read_pos;
}

static void cursor_persist(struct atel_otlp *o, bool force)
{
	struct atel_log_pos r = resume_pos(o);
	int rc;

	if (!o->cursor_path[0])
		return;
	if (!force && !atel__log_pos_cmp(&r, &o->saved_resume) && !atel__log_pos_cmp(&o->acked, &o->saved_acked))
		return;
	{
		uint8_t(*ids)[24] = NULL;
		uint32_t n = 0;
		const struct atel_span *s;

		/* held spans with records before `acked` (only they are ambiguous on replay) */
		for (s = atel__spanasm_first(o->spans); s && atel__log_pos_cmp(&s->first_pos, &o->acked) < 0;
		     s = atel__spanasm_next(s))
			n++;
		if (n && !(ids = malloc((size_t)n * 24)))
			return;
		n = 0;
		for (s = atel__spanasm_first(o->spans); s && atel__log_pos_cmp(&s->first_pos, &o->acked) < 0;
		     s = atel__spanasm_next(s), n++) {
			memcpy(ids[n], s->trace_id, 16);
			memcpy(ids[n] + 16, s->span_id, 8);
		}
		rc = atel__otlp_cursor_save(o->cursor_path, &r, &o->acked, (const uint8_t(*)[24])ids, n);
		free(ids);
	}
	if (rc) {
		atel__log(o->d, ATEL_LOG_WARN, "otlp: cannot save cursor %s: %s", o->cursor_path, strerror(-rc));
		return;
	}
	o->saved_resume = r;
	o->saved_acked = o->acked;
	o->last_save_ns = atel__mono_ns();
}

/* ------------------------------------------------------------------------ */
/* jobs                                                                     */

static int finish_body(struct atel_otlp *o, bool gz, struct atel_buf *dst)
{
	if (o->enc.oom)
		return -ENOMEM;
	if (gz)
		return atel__otlp_gzip(dst, (const uint8_t *)o->enc.data, o->enc.len);
	atel__buf_reset(dst);
	atel__buf_put(dst, o->enc.data, o->enc.len);
	return dst->oom ? -ENOMEM : 0;
}

static int encode_spans(struct atel_otlp *o, uint32_t n)
{
	struct atel_otlp_span *arr = calloc(n ? n : 1, sizeof(*arr));
	struct atel_otlp_event *evs = NULL;
	uint32_t nev = 0, k = 0;
	const struct atel_span *s;
	int rc;

	if (!arr)
		return -ENOMEM;
	for (s = atel__spanasm_ready(o->spans), k = 0; s && k < n; s = atel__spanasm_ready_next(s), k++)
		nev += s->nevents;
	if (nev && !(evs = calloc(nev, sizeof(*evs)))) {
		free(arr);
		return -ENOMEM;
	}
	nev = 0;
	for (s = atel__spanasm_ready(o->spans), k = 0; s && k < n; s = atel__spanasm_ready_next(s), k++) {
		atel__span_otlp(s, &arr[k], evs ? evs + nev : NULL);
		nev += s->nevents;
	}
	o->enc.len = 0;
	o->enc.oom = false;
	rc = atel__otlp_encode_spans(&o->enc, o->st.traces.json ? ATEL_OTLP_JSON : ATEL_OTLP_PROTOBUF, &o->res, arr, k);
	free(evs);
	free(arr);
	return rc;
}

/* Builds the traces job from the head of the ready queue. @return 0 or -errno. */
static int traces_job(struct atel_otlp *o)
{
	uint32_t nready = atel__spanasm_nready(o->spans);
	uint32_t n = nready < o->st.max_batch_items ? nready : o->st.max_batch_items;
	int rc;

	for (;;) {
		if ((rc = encode_spans(o, n)))
			return rc;
		if (o->enc.len <= o->st.max_batch_bytes || n == 1)
			break;
		n = n / 2; /* over the byte bound: halve the batch */
	}
	if ((rc = finish_body(o, o->st.traces.gzip, &o->tr_body)))
		return rc;
	o->tr_n = n;
	o->tr_pending = true;
	o->tr_attempt = 0;
	o->tr_next_ns = 0;
	return 0;
}

/* Releases the first tr_n ready spans (acknowledged or dropped). */
static void traces_release(struct atel_otlp *o)
{
	const struct atel_span *s;

	for (uint32_t i = 0; i < o->tr_n && (s = atel__spanasm_ready(o->spans)); i++) {
		if (atel__log_pos_cmp(&s->done_pos, &o->acked) > 0)
			o->acked = s->done_pos;
		atel__spanasm_release(o->spans);
	}
	atel__spanasm_skip_until(o->spans, &o->acked);
	o->tr_pending = false;
	o->tr_n = 0;
}

static void traces_try(struct atel_otlp *o, bool final_pass)
{
	int64_t rejected;
	bool acked;

	if (!atel__otlp_attempt(o, SIG_TRACES, &o->tr_body, o->tr_n, &o->tr_attempt, &o->tr_next_ns, &rejected, &acked,
		     final_pass))
		return;
	if (acked) {
		stat_add(&o->s_spans_acked, o->tr_n);
		stat_add(&o->s_spans_rejected, (uint64_t)rejected);
	} else {
		stat_add(&o->s_spans_dropped, o->tr_n);
	}
	traces_release(o);
	cursor_persist(o, false);
}

static int metrics_encode_chunk(struct atel_otlp *o)
{
	const struct atel_agg_snapshot *s = o->snap;
	uint32_t count = s->nfamilies - o->m_first;
	int rc;

	for (;;) {
		o->enc.len = 0;
		o->enc.oom = false;
		if ((rc = atel__otlp_encode_metrics(&o->enc, o->st.metrics.json ? ATEL_OTLP_JSON : ATEL_OTLP_PROTOBUF,
						    &o->res, s, o->m_first, count)))
			return rc;
		if (o->enc.len <= o->st.max_batch_bytes || count <= 1)
			break;
		count /= 2;
	}
	o->m_count = count;
	o->m_items = atel__otlp_count_points(s, o->m_first, count);
	if ((rc = finish_body(o, o->st.metrics.gzip, &o->m_body)))
		return rc;
	o->m_pending = true;
	o->m_attempt = 0;
	o->m_next_ns = 0;
	return 0;
}

static void metrics_done(struct atel_otlp *o)
{
	atel__agg_snapshot_free(o->snap);
	o->snap = NULL;
	o->m_pending = false;
}

static void metrics_start(struct atel_otlp *o)
{
	int rc;

	if (o->snap)
		metrics_done(o); /* final pass: the new snapshot is cumulative and supersedes it */
	if ((rc = atel__agg_snapshot(o->agg, &o->snap))) {
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: metrics snapshot: %s", strerror(-rc));
		return;
	}
	o->m_first = 0;
	if (!o->snap->nfamilies) {
		metrics_done(o);
		return;
	}
	if ((rc = metrics_encode_chunk(o))) {
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: metrics encode: %s", strerror(-rc));
		metrics_done(o);
	}
}

static void metrics_try(struct atel_otlp *o, bool final_pass)
{
	int64_t rejected;
	bool acked;

	if (!atel__otlp_attempt(o, SIG_METRICS, &o->m_body, o->m_items, &o->m_attempt, &o->m_next_ns, &rejected, &acked,
		     final_pass)) {
		if (final_pass)
			metrics_done(o);
		return;
	}
	if (acked)
		stat_add(&o->s_points_rejected, (uint64_t)rejected);
	o->m_first += o->m_count;
	if (o->m_first >= o->snap->nfamilies) {
		if (acked)
			stat_add(&o->s_metrics_exports, 1);
		metrics_done(o);
		return;
	}
	if (metrics_encode_chunk(o))
		metrics_done(o);
}

/* ------------------------------------------------------------------------ */
/* thread                                                                   */

/* Reads up to `budget` records. @return records read, or -errno. */
static int read_log(struct atel_otlp *o, unsigned budget)
{
	struct atel_event ev;
	struct atel_log_pos after;
	unsigned n = 0;
	int rc;

	if (!o->src_open) {
		struct atel_log_pos start = o->read_pos;

		if ((rc = o->src.open(o->src.arg, &start, &o->src_handle))) {
			o->log_at_end = true;
			return rc == -ENOENT ? 0 : rc; /* no log yet: try again later */
		}
		o->src_open = true;
	}
	o->log_at_end = false;
	while (n < budget && atel__spanasm_nready(o->spans) < 4 * o->st.max_batch_items) {
		struct atel_log_pos before = o->read_pos;

		rc = o->src.next(o->src_handle, &ev, &after);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			o->log_at_end = true;
			break;
		}
		n++;
		o->nread++;
		o->read_pos = after;
		atel__spanasm_apply(o->spans, &ev, &before, &after);
		if ((o->nread & 4095) == 0 || o->orphan_window < 8192)
			atel__spanasm_expire(o->spans);
	}
	return (int)n;
}

/* A read error: reopen at the last good position on the next pass; warn at most every 10 s. */
static void read_failed(struct atel_otlp *o, int rc)
{
	uint64_t now = atel__mono_ns();

	if (o->src_open) {
		o->src.close(o->src_handle);
		o->src_open = false;
	}
	o->log_at_end = true;
	if (!o->last_read_warn_ns || now - o->last_read_warn_ns > 10000000000ull) {
		atel__log(o->d, ATEL_LOG_WARN, "otlp: reading the log in %s: %s (retrying)",
			  o->segments_dir[0] ? o->segments_dir : "(test source)", strerror(-rc));
		o->last_read_warn_ns = now;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static void *otlp_thread(void *arg)
{
	struct atel_otlp *o = arg;
	bool stop = false;

	atel__exporters_lower_priority();
	int rc;

	o->m_due_ns = atel__mono_ns() + (uint64_t)o->interval_ms * 1000000ull;
	while (!stop) {
		uint64_t now = atel__mono_ns(), wake;
		bool busy = false;

		if (o->do_metrics) {
			/* a snapshot still going out (chunks, bounded retries) finishes first */
			if (now >= o->m_due_ns && !o->m_pending) {
				metrics_start(o);
				o->m_due_ns = now + (uint64_t)o->interval_ms * 1000000ull;
			}
			if (o->m_pending && now >= o->m_next_ns) {
				metrics_try(o, false);
				busy = true;
			}
		}
		if (o->do_traces) {
			if ((rc = read_log(o, 8192)) > 0)
				busy = true;
			else if (rc < 0)
				read_failed(o, rc);
			if (!o->tr_pending && atel__spanasm_nready(o->spans)) {
				if ((rc = traces_job(o)))
					atel__log(o->d, ATEL_LOG_ERROR, "otlp: encoding spans: %s", strerror(-rc));
			}
			now = atel__mono_ns();
			if (o->tr_pending && now >= o->tr_next_ns) {
				traces_try(o, false);
				busy = true;
			}
			if (!o->tr_pending && now - o->last_save_ns > CURSOR_SAVE_IDLE_NS)
				cursor_persist(o, false);
		}
		now = atel__mono_ns();
		wake = now + (uint64_t)o->poll_ms * 1000000ull;
		if (o->do_metrics) {
			if (o->m_pending)
				wake = min_u64(wake, o->m_next_ns);
			else
				wake = min_u64(wake, o->m_due_ns);
		}
		if (o->tr_pending)
			wake = min_u64(wake, o->tr_next_ns > now ? o->tr_next_ns : now);
		else if (o->do_traces && (atel__spanasm_nready(o->spans) || (!o->log_at_end && busy)))
			wake = now; /* finished spans to send, or more log to read */
		pthread_mutex_lock(&o->lock);
		if (!o->stop && wake > now) {
			struct timespec ts;
			uint64_t dl;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			dl = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + (wake - now);
			ts.tv_sec = (time_t)(dl / 1000000000ull);
			ts.tv_nsec = (long)(dl % 1000000000ull);
			pthread_cond_timedwait(&o->cond, &o->lock, &ts);
		}
		stop = o->stop;
		pthread_mutex_unlock(&o->lock);
	}

	/* final pass: what is finished goes out once, without retries, and a
	 * collector that does not answer holds shutdown for at most 3 s per
	 * request (the spans stay in the log for the next start) */
	for (int i = 0; i < 2; i++) {
		const struct atel_otlp_signal *g = i ? &o->st.metrics : &o->st.traces;

		curl_easy_setopt(o->curl[i], CURLOPT_TIMEOUT_MS, (long)(g->timeout_ms < 3000 ? g->timeout_ms : 3000));
		curl_easy_setopt(o->curl[i], CURLOPT_CONNECTTIMEOUT_MS,
				 (long)(g->timeout_ms < 3000 ? g->timeout_ms : 3000));
	}
	if (o->do_traces) {
		read_log(o, 1u << 20);
		if (!o->tr_pending && atel__spanasm_nready(o->spans) && traces_job(o))
			o->tr_pending = false;
		if (o->tr_pending)
			traces_try(o, true);
		cursor_persist(o, true);
	}
	if (o->do_metrics) {
		metrics_start(o);
		while (o->m_pending)
			metrics_try(o, true);
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* start / stop                                                             */

static void otlp_free(struct atel_otlp *o)
{
	if (!o)
		return;
	if (o->src_open)
		o->src.close(o->src_handle);
	atel__spanasm_free(o->spans);
	for (int i = 0; i < 2; i++) {
		if (o->curl[i])
			curl_easy_cleanup(o->curl[i]);
		curl_slist_free_all(o->hdrs[i]);
	}
	if (o->snap)
		atel__agg_snapshot_free(o->snap);
	atel__buf_free(&o->enc);
	atel__buf_free(&o->resp);
	atel__buf_free(&o->tr_body);
	atel__buf_free(&o->m_body);
	free(o->pend);
	free(o->res_attrs);
	atel__otlp_settings_free(&o->st);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static struct logsrc *logsrc_new(const char *dir, struct atel_daemon *d)
{
	struct logsrc *ls = calloc(1, sizeof(*ls));

	if (ls) {
		ls->dir = dir;
		ls->d = d;
	}
	return ls;
}

int atel__otlp_start_opts(struct atel_otlp **out, const struct atel_otlp_opts *op, char *err, size_t errlen)
{
	struct atel_otlp *o;
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!op || !op->d || !op->settings) {
		atel__seterr(err, errlen, "otlp: missing daemon or settings");
		return -EINVAL;
	}
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK) {
		atel__seterr(err, errlen, "otlp: curl_global_init failed");
		return -ENOMEM;
	}
	if (!(o = calloc(1, sizeof(*o)))) {
		atel__seterr(err, errlen, "otlp: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	o->d = op->d;
	o->agg = op->agg;
	o->do_traces = op->traces;
	o->do_metrics = op->metrics && op->agg;
	o->interval_ms = op->interval_ms ? op->interval_ms : 15000;
	o->poll_ms = op->poll_ms ? op->poll_ms : 200;
	o->backoff_base_ms = op->backoff_base_ms ? op->backoff_base_ms : 500;
	o->backoff_max_ms = op->backoff_max_ms ? op->backoff_max_ms : 30000;
	o->metrics_max_attempts = op->metrics_max_attempts ? op->metrics_max_attempts : 5;
	o->orphan_window = op->orphan_window ? op->orphan_window : ORPHAN_WINDOW_DEFAULT;
	{
		struct atel_spanasm_opts so = { .open_max = op->open_spans_max, .orphan_window = o->orphan_window,
						.skip = replay_skip, .arg = o };

		if ((rc = atel__spanasm_new(&o->spans, &so))) {
			atel__seterr(err, errlen, "otlp: out of memory");
			goto fail;
		}
	}
	o->rnd = atel__mono_ns() ^ ((uint64_t)getpid() << 32);
	if ((rc = atel__otlp_settings_copy(&o->st, op->settings))) {
		atel__seterr(err, errlen, "otlp: out of memory");
		goto fail;
	}
	/* resource: service.name, then OTEL_RESOURCE_ATTRIBUTES */
	if (!(o->res_attrs = calloc(o->st.nres_attrs + 1, sizeof(*o->res_attrs)))) {
		rc = -ENOMEM;
		goto fail;
	}
	o->res_attrs[0] = (struct atel_otlp_attr){ "service.name", { .vtype = ATEL_VT_STR, .s = o->st.service_name } };
	for (uint32_t i = 0; i < o->st.nres_attrs; i++)
		o->res_attrs[i + 1] = (struct atel_otlp_attr){ o->st.res_attrs[i].key,
							       { .vtype = ATEL_VT_STR, .s = o->st.res_attrs[i].value } };
	o->res = (struct atel_otlp_resource){ o->res_attrs, o->st.nres_attrs + 1, "atel", ATEL_VERSION };
	if (op->source) {
		o->src = *op->source;
	} else {
		if (!op->segments_dir) {
			atel__seterr(err, errlen, "otlp: no segments directory");
			rc = -EINVAL;
			goto fail;
		}
		snprintf(o->segments_dir, sizeof(o->segments_dir), "%s", op->segments_dir);
		o->src = (struct atel_otlp_source){ NULL, logsrc_open, logsrc_next, logsrc_close };
	}
	if (op->state_dir) {
		struct atel_log_pos resume = { 0, 0, 0 }, acked = { 0, 0, 0 };

		if (mkdir(op->state_dir, 0700) && errno != EEXIST) {
			rc = -errno;
			atel__seterr(err, errlen, "otlp: cannot create %s: %s", op->state_dir, strerror(errno));
			goto fail;
		}
		if ((size_t)snprintf(o->cursor_path, sizeof(o->cursor_path), "%s/otlp-traces.cursor", op->state_dir) >=
		    sizeof(o->cursor_path)) {
			rc = -ENAMETOOLONG;
			atel__seterr(err, errlen, "otlp: state directory path too long");
			goto fail;
		}
		rc = atel__otlp_cursor_load(o->cursor_path, &resume, &acked, &o->pend, &o->npend);
		if (rc == -EINVAL) {
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s is corrupt; starting from the oldest segment",
				  o->cursor_path);
		} else if (rc && rc != -ENOENT) {
			atel__seterr(err, errlen, "otlp: cannot read %s: %s", o->cursor_path, strerror(-rc));
			goto fail;
		}
		o->read_pos = resume;
		o->acked = acked;
		o->replay = atel__log_pos_cmp(&acked, &resume) > 0;
		atel__spanasm_skip_until(o->spans, &acked);
		o->saved_resume = resume;
		o->saved_acked = acked;
	}
	for (int i = 0; i < 2; i++)
		if ((rc = atel__otlp_http_setup(o, i, err, errlen)))
			goto fail;
	if (!op->source) {
		struct logsrc *ls = logsrc_new(o->segments_dir, o->d);

		if (!ls) {
			rc = -ENOMEM;
			goto fail;
		}
		o->src.arg = ls;
	}
	o->last_save_ns = atel__mono_ns();
	if ((rc = pthread_create(&o->thread, NULL, otlp_thread, o))) {
		atel__seterr(err, errlen, "otlp: cannot start thread: %s", strerror(rc));
		rc = -rc;
		if (!op->source)
			free(o->src.arg);
		goto fail;
	}
	o->started = true;
	if (o->do_traces)
		atel__log(o->d, ATEL_LOG_INFO, "otlp: exporting traces to %s (%s%s, %u headers)", o->st.traces.url,
			  o->st.traces.json ? "http/json" : "http/protobuf", o->st.traces.gzip ? ", gzip" : "",
			  o->st.traces.nheaders);
	if (o->do_metrics)
		atel__log(o->d, ATEL_LOG_INFO, "otlp: exporting metrics every %u ms to %s (%s%s, %u headers)",
			  o->interval_ms, o->st.metrics.url, o->st.metrics.json ? "http/json" : "http/protobuf",
			  o->st.metrics.gzip ? ", gzip" : "", o->st.metrics.nheaders);
	*out = o;
	return 0;
fail:
	if (rc == -ENOMEM && err && !err[0])
		atel__seterr(err, errlen, "otlp: out of memory");
	otlp_free(o);
	return rc;
}

void atel__otlp_stop(struct atel_otlp *o)
{
	bool own_src;

	if (!o)
		return;
	own_src = o->src.open == logsrc_open;
	if (o->started) {
		pthread_mutex_lock(&o->lock);
		o->stop = true;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->lock);
		pthread_join(o->thread, NULL);
	}
	if (o->src_open) {
		o->src.close(o->src_handle);
		o->src_open = false;
	}
	if (own_src)
		free(o->src.arg);
	otlp_free(o);
}

void atel__otlp_get_stats(struct atel_otlp *o, struct atel_otlp_stats *out)
{
#define LD(x) atomic_load_explicit(&o->x, memory_order_relaxed)
	memset(out, 0, sizeof(*out));
	if (!o)
		return;
	for (int i = 0; i < 2; i++) {
		out->attempts[i] = LD(s_attempts[i]);
		out->retries[i] = LD(s_retries[i]);
		out->acked_batches[i] = LD(s_acked[i]);
		out->dropped_batches[i] = LD(s_dropped[i]);
	}
	out->spans_acked = LD(s_spans_acked);
	out->spans_rejected = LD(s_spans_rejected);
	out->points_rejected = LD(s_points_rejected);
	out->spans_dropped = LD(s_spans_dropped);
	{
		struct atel_spanasm_stats as;

		atel__spanasm_stats(o->spans, &as);
		out->spans_skipped_acked = LD(s_skipped) + as.skipped;
		out->spans_producer_exited = as.producer_exited;
		out->spans_evicted = as.evicted;
		out->orphan_records = as.orphans;
		out->open_spans = as.open;
	}
	out->last_retry_delay_ms = LD(s_last_delay);
	out->metrics_exports = LD(s_metrics_exports);
#undef LD
}
