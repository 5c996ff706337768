/* SPDX-License-Identifier: MIT */
/*
 * exporters.c - atel__exporters_start_opts/stop (exporters.h): the threads
 * that turn the segment log into /metrics, JSON files and OTLP.
 *
 *   follower  reads the log from the aggregates' checkpoint position, applies
 *             SAMPLE events to the aggregates and SPAN_* events to the
 *             recent-span table, checkpoints (state + log position) to
 *             <data_dir>/state/aggregates.ckpt every few seconds and at stop,
 *             so counters stay monotonic across restarts and no sample is
 *             counted twice.
 *   http      the /metrics and /healthz server (exporters/http.c); every
 *             scrape encodes a fresh snapshot.
 *   json      every export_interval_ms rewrites the current JSON file.
 *   otlp      exporters/otlp_export.c, with its own log cursor.
 *
 * None of them is reachable from the drain thread: they only read the log
 * and the statistics' relaxed atomics, so a stuck exporter cannot slow
 * draining (docs/design.md, principle 2).
 */
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "aggregates.h"
#include "exporters.h"
#include "http.h"
#include "json_files.h"
#include "logread.h"
#include "otlp_export.h"
#include "prometheus.h"
#include "selfmetrics.h"
#include "util.h"
#include "webui.h"

#define CKPT_INTERVAL_MS 5000u
#define POLL_MS 50u
#define STOP_CATCHUP_MS 3000u

struct atel_exporters {
	struct atel_daemon *d;
	struct atel_exporters_opts o;
	struct atel_agg *agg;
	struct atel_recent_spans *spans;
	_Atomic(struct atel_http_server *) http;
	struct atel_webui *webui;        /* the web view on the same server (needs d) */
	struct atel_json_exporter *json;
	struct atel_otlp *otlp;
	_Atomic(struct atel_rw *) rw;    /* set after the HTTP thread started (it reads the counters) */
	pthread_t follower, json_thr;
	bool follower_started, json_started;
	atomic_bool stop;
	pthread_mutex_t lock;            /* with cond: interruptible sleeps */
	pthread_cond_t cond;
	char ckpt_path[4200];
	_Atomic uint64_t applied;        /* SAMPLE events applied */
	_Atomic uint64_t events_read;
	uint64_t last_scrape_row_ms;     /* HTTP thread only */
};

static inline uint64_t mono_ms(void)
{
	return atel__mono_ns() / 1000000u;
}

/* Sleeps up to ms, returning early when stop is set. */
static void nap(struct atel_exporters *ex, uint32_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ex->lock);
	while (!atomic_load(&ex->stop)) {
		if (pthread_cond_timedwait(&ex->cond, &ex->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&ex->lock);
}

static void push_row(struct atel_exporters *ex, const char *exporter, const char *signal, uint64_t items,
		     uint64_t bytes, int status, const char *error)
{
	struct atel_export_row row;

	if (!ex->d)
		return;
	memset(&row, 0, sizeof(row));
	row.ts_ns = atel__now_ns();
	snprintf(row.exporter, sizeof(row.exporter), "%s", exporter);
	snprintf(row.signal, sizeof(row.signal), "%s", signal);
	row.items = items;
	row.bytes = bytes;
	row.status = status;
	snprintf(row.error, sizeof(row.error), "%s", error ? error : "");
	atel__export_row_push(ex->d, &row);
}

static uint64_t snapshot_series(const struct atel_agg_snapshot *s)
{
	uint64_t n = 0;

	for (uint32_t i = 0; s && i < s->nfamilies; i++)
		n += s->families[i].nseries;
	return n;
}

/* ---- follower ------------------------------------------------------------------ */

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct atel_exporters *ex = arg;

	atel__log(ex->d, ATEL_LOG_WARN, "exporters: log %s at offset %llu: %s (frame skipped)", file,
		  (unsigned long long)offset, why);
}

static void checkpoint(struct atel_exporters *ex, const struct atel_log_pos *pos)
{
	int rc;

	if (!ex->ckpt_path[0])
		return;
	rc = atel__agg_save(ex->agg, ex->ckpt_path, pos);
	if (rc < 0)
		atel__log(ex->d, ATEL_LOG_WARN, "exporters: cannot write checkpoint %s: %s", ex->ckpt_path,
			  strerror(-rc));
}

/*
 * The threads that follow the log (aggregates and spans here, the OTLP
 * exporter) run below the drain: under overload the drain needs every cycle
 * to keep rings from filling, and these views catch up when it idles. The
 * HTTP server stays at the drain's priority, so /metrics answers promptly
 * (from aggregates that may then lag a little). A thread may lower its own
 * priority without privilege.
 */
void atel__exporters_lower_priority(void)
{
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), ATEL_FOLLOWER_NICE);
}

/*
 * Series expiry (prometheus.series_ttl), at most once a second. "Now" is the
 * wall clock once the follower has reached the end of the log, but the
 * newest sample time read so far while it is catching up: a backlog read
 * after a restart must not expire series whose later samples are still
 * ahead in the log.
 */
/* @return true if series were removed: the aggregates changed and need a
 * checkpoint, even with no new event read (else a restart would bring the
 * expired series back and atel_series_expired_total would fall). */
static bool expire_maybe(struct atel_exporters *ex, uint64_t *last_ms, uint64_t log_now_ns, bool at_end)
{
	uint64_t now = mono_ms(), wall = atel__now_ns();

	if (!ex->o.series_ttl_s || now - *last_ms < 1000)
		return false;
	*last_ms = now;
	return atel__agg_expire(ex->agg, at_end || log_now_ns > wall ? wall : log_now_ns,
				(uint64_t)ex->o.series_ttl_s * 1000000000ull) > 0;
}

static void *follower_main(void *arg)
{
	struct atel_exporters *ex = arg;
	struct atel_log_reader *r = NULL;
	struct atel_log_pos pos = ex->o.start, saved = pos;
	uint64_t last_ckpt = mono_ms(), stop_deadline = 0, last_expire = 0, log_now_ns = 0;
	bool dirty = false, warned = false;
	uint32_t since_check = 0;

	atel__exporters_lower_priority();
	for (;;) {
		struct atel_event ev;
		struct atel_log_pos after;
		int rc;

		if (atomic_load(&ex->stop) && !stop_deadline)
			stop_deadline = mono_ms() + STOP_CATCHUP_MS;
		if (!r) {
			struct atel_log_reader_opts lo = { 0 };
			lo.segments_dir = ex->o.segments_dir;
			lo.start = pos;
			lo.follow = true;
			lo.on_corrupt = on_corrupt;
			lo.arg = ex;
			rc = atel__log_open(&r, &lo);
			if (rc < 0) {
				r = NULL;
				if (rc != -ENOENT && !warned)
					atel__log(ex->d, ATEL_LOG_WARN, "exporters: cannot open the log in %s: %s",
						  ex->o.segments_dir, strerror(-rc));
				warned = true;
				if (stop_deadline)
					break;
				nap(ex, 200);
				continue;
			}
			warned = false;
		}
		rc = atel__log_next(r, &ev, &after);
		if (rc == 1) {
			atomic_fetch_add_explicit(&ex->events_read, 1, memory_order_relaxed);
			if (ev.kind == ATEL_EV_SAMPLE || ev.kind == ATEL_EV_HISTFOLD) {
				atel__agg_apply(ex->agg, &ev);
				atomic_fetch_add_explicit(&ex->applied, 1, memory_order_relaxed);
				if (ev.ts_ns > log_now_ns)
					log_now_ns = ev.ts_ns;
			} else if (ex->json) {
				/* the recent spans feed only the JSON files: without them,
				 * assembling every span's JSON text was a third of ateld's
				 * CPU under a span flood (fmt_double, open-span table) */
				atel__spans_apply(ex->spans, &ev);
			}
			pos = after;
			dirty = true;
			/* a log that never runs dry must still be checkpointed */
			if (++since_check >= 4096) {
				uint64_t now = mono_ms();
				since_check = 0;
				if (stop_deadline && now > stop_deadline)
					break;
				if (expire_maybe(ex, &last_expire, log_now_ns, false))
					dirty = true;
				if (now - last_ckpt >= ex->o.checkpoint_ms) {
					checkpoint(ex, &pos);
					saved = pos;
					dirty = false;
					last_ckpt = now;
				}
			}
			continue;
		}
		if (rc < 0) {
			atel__log(ex->d, ATEL_LOG_WARN, "exporters: reading the log (%s): %s; reopening",
				  atel__log_current_file(r), strerror(-rc));
			atel__log_close(r);
			r = NULL;
			if (stop_deadline)
				break;
			nap(ex, 1000);
			continue;
		}
		/* at the current end of the log */
		if (expire_maybe(ex, &last_expire, log_now_ns, true))
			dirty = true;
		if (ex->d)
			atomic_store_explicit(&ex->d->stats.series_overflow, atel__agg_overflow(ex->agg),
					      memory_order_relaxed);
		if (stop_deadline)
			break;
		if (dirty && mono_ms() - last_ckpt >= ex->o.checkpoint_ms) {
			checkpoint(ex, &pos);
			saved = pos;
			dirty = false;
			last_ckpt = mono_ms();
		}
		nap(ex, ex->o.poll_ms);
	}
	if (dirty || memcmp(&saved, &pos, sizeof(pos)))
		checkpoint(ex, &pos);
	if (ex->d)
		atomic_store_explicit(&ex->d->stats.series_overflow, atel__agg_overflow(ex->agg), memory_order_relaxed);
	atel__log_close(r);
	return NULL;
}

/* ---- Prometheus ------------------------------------------------------------------ */

static int metrics_body(void *arg, int format, struct atel_buf *body)
{
	struct atel_exporters *ex = arg;
	struct atel_agg_snapshot *snap = NULL;
	struct atel_http_server *http = atomic_load(&ex->http);
	uint64_t codes[ATEL_HTTP_CODES_N] = { 0 }, scrapes[ATEL_HTTP_VARIANTS] = { 0 };
	struct atel_prom_self self = { 0 };
	struct atel_rw_counts rwc;
	char err[128];
	int rc;

	self.d = ex->d;
	self.agg_type_clashes = atel__agg_type_clashes(ex->agg);
	self.agg_rejected = atel__agg_rejected(ex->agg);
	self.agg_series_overflow = atel__agg_overflow(ex->agg);
	self.agg_series_expired = atel__agg_expired(ex->agg);
	if (atomic_load(&ex->rw)) {
		atel__rw_counts(atomic_load(&ex->rw), &rwc);
		self.remote_write = &rwc;
	}
	self.agg_events_applied = atomic_load_explicit(&ex->applied, memory_order_relaxed);
	if (http) {
		atel__http_counters(http, codes, &self.http_conns_rejected, &self.http_timeouts);
		self.http_responses = codes;
		atel__http_scrapes(http, scrapes);
		self.http_scrapes = scrapes;
	}
	rc = atel__agg_snapshot(ex->agg, &snap);
	if (rc == 0)
		rc = atel__prom_encode_format(body, snap, (enum atel_prom_format)format, atel__prom_self, &self, NULL);
	snprintf(err, sizeof(err), "encoding /metrics: %s", strerror(-rc));
	if (ex->d) {
		/* Every scrape counts in the exporter's health; telemetry_exports
		 * gets at most one row per export interval (the latest scrape) and
		 * every failure, so a 1 s scrape interval does not flood SQLite. */
		uint64_t now = mono_ms();
		atel__exporter_note(ex->d, ATEL_EXP_PROMETHEUS, rc == 0, rc ? err : NULL);
		if (rc || !ex->last_scrape_row_ms || now - ex->last_scrape_row_ms >= ex->o.export_interval_ms) {
			ex->last_scrape_row_ms = now;
			push_row(ex, "prometheus", "metrics", snapshot_series(snap), rc ? 0 : body->len, rc,
				 rc ? err : NULL);
		}
	}
	atel__agg_snapshot_free(snap);
	return rc;
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void json_once(struct atel_exporters *ex)
{
	struct atel_agg_snapshot *snap = NULL;
	char err[512] = "";
	size_t bytes = 0;
	int rc;

	rc = atel__agg_snapshot(ex->agg, &snap);
	if (rc == 0)
		rc = atel__json_write(ex->json, snap, ex->spans, atel__now_ns(), &bytes, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "json: snapshot: %s", strerror(-rc));
	if (rc < 0)
		atel__log(ex->d, ATEL_LOG_WARN, "%s", err);
	if (ex->d) {
		atel__exporter_note(ex->d, ATEL_EXP_JSON, rc == 0, rc ? err : NULL);
		push_row(ex, "json", "metrics", snapshot_series(snap), bytes, rc, rc ? err : NULL);
	}
	atel__agg_snapshot_free(snap);
}

static void *json_main(void *arg)
{
	struct atel_exporters *ex = arg;

	while (!atomic_load(&ex->stop)) {
		nap(ex, ex->o.export_interval_ms);
		if (atomic_load(&ex->stop))
			break;
		json_once(ex);
	}
	return NULL;
}

/* ---- start / stop ------------------------------------------------------------------------- */

static const char *env_get(const char *name)
{
	return getenv(name);
}

/* The OTLP exporter: settings from o->otlp and the OTEL_* environment, its
 * cursor beside the aggregates' checkpoint. */
static int start_otlp(struct atel_exporters *ex, char *err, size_t errlen)
{
	struct atel_otlp_settings st;
	struct atel_otlp_opts op = { 0 };
	int rc;

	if ((rc = atel__otlp_settings_resolve(&st, ex->o.otlp, env_get, err, errlen)))
		return rc;
	op.d = ex->d;
	op.agg = ex->agg;
	op.settings = &st;
	op.segments_dir = ex->o.segments_dir;
	op.state_dir = ex->o.state_dir;
	op.traces = true;
	op.metrics = true;
	op.interval_ms = ex->o.export_interval_ms;
	rc = atel__otlp_start_opts(&ex->otlp, &op, err, errlen);
	atel__otlp_settings_free(&st);
	return rc;
}

int atel__exporters_start_opts(struct atel_exporters **out, struct atel_daemon *d, const struct atel_exporters_opts *o,
			       char *err, size_t errlen)
{
	struct atel_exporters *ex;
	struct atel_log_pos pos = { 0 };
	int rc;

	*out = NULL;
	if (!(ex = calloc(1, sizeof(*ex))))
		return -ENOMEM;
	ex->d = d;
	ex->o = *o;
	if (!ex->o.poll_ms)
		ex->o.poll_ms = POLL_MS;
	if (!ex->o.checkpoint_ms)
		ex->o.checkpoint_ms = CKPT_INTERVAL_MS;
	if (!ex->o.export_interval_ms)
		ex->o.export_interval_ms = 15000;
	pthread_mutex_init(&ex->lock, NULL);
	pthread_cond_init(&ex->cond, NULL);
	if ((rc = atel__agg_new(&ex->agg, o->series_limit)) < 0 ||
	    (rc = atel__spans_new(&ex->spans, 1000, 4096)) < 0) {
		snprintf(err, errlen, "exporters: out of memory");
		goto fail;
	}
	if (o->state_dir && *o->state_dir) {
		if (mkdir(o->state_dir, (mode_t)atel__dir_mode()) < 0 && errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "exporters: cannot create state directory %s: %s", o->state_dir,
				 strerror(errno));
			goto fail;
		}
		snprintf(ex->ckpt_path, sizeof(ex->ckpt_path), "%s/aggregates.ckpt", o->state_dir);
		rc = atel__agg_load(ex->agg, ex->ckpt_path, &pos);
		if (rc == 0) {
			atel__log(d, ATEL_LOG_INFO,
				  "exporters: aggregates restored from %s (log position file %llu offset %llu)",
				  ex->ckpt_path, (unsigned long long)pos.file_seq, (unsigned long long)pos.frame_off);
		} else if (rc != -ENOENT) {
			/* the log is the truth: rebuild from its beginning */
			atel__log(d, ATEL_LOG_WARN, "exporters: checkpoint %s unusable (%s); rebuilding from the log",
				  ex->ckpt_path, strerror(-rc));
			memset(&pos, 0, sizeof(pos));
		}
	}
	ex->o.start = pos;
	if (o->prometheus) {
		struct atel_http_opts ho = o->http;
		struct atel_http_server *http = NULL;
		ho.metrics_format = metrics_body;
		ho.arg = ex;
		if (d && (ex->webui = atel__webui_new(d))) {
			ho.route = atel__webui_route;
			ho.route_arg = ex->webui;
		}
		if ((rc = atel__http_start(&http, &ho, err, errlen)) < 0)
			goto fail;
		atomic_store(&ex->http, http);
	}
	if (o->json_dir) {
		struct atel_json_opts jo = { .dir = o->json_dir, .rotate_ms = o->json_rotate_ms,
					     .max_files = o->json_max_files };
		if ((rc = atel__json_open(&ex->json, &jo, err, errlen)) < 0)
			goto fail;
	}
	if (o->segments_dir) {
		if ((rc = -pthread_create(&ex->follower, NULL, follower_main, ex)) < 0) {
			snprintf(err, errlen, "exporters: cannot start the log follower: %s", strerror(-rc));
			goto fail;
		}
		ex->follower_started = true;
	}
	if (ex->json) {
		if ((rc = -pthread_create(&ex->json_thr, NULL, json_main, ex)) < 0) {
			snprintf(err, errlen, "exporters: cannot start the JSON exporter: %s", strerror(-rc));
			goto fail;
		}
		ex->json_started = true;
	}
	if (o->otlp && d && (rc = start_otlp(ex, err, errlen)) < 0)
		goto fail;
	if (o->remote_write && o->segments_dir) {
		struct atel_rw_opts ro = *o->remote_write;
		ro.segments_dir = o->segments_dir;
		ro.state_dir = o->state_dir;
		ro.d = d;
		ro.series_limit = o->series_limit;
		ro.series_ttl_s = o->series_ttl_s;
		struct atel_rw *rw = NULL;
		if ((rc = atel__rw_start(&rw, &ro, err, errlen)) < 0)
			goto fail;
		atomic_store(&ex->rw, rw);
	}
	*out = ex;
	return 0;
fail:
	atel__exporters_stop(ex);
	return rc;
}

void atel__exporters_stop(struct atel_exporters *ex)
{
	if (!ex)
		return;
	pthread_mutex_lock(&ex->lock);
	atomic_store(&ex->stop, true);
	pthread_cond_broadcast(&ex->cond);
	pthread_mutex_unlock(&ex->lock);
	/* the follower catches up with the log (bounded) before the final
	 * JSON write, so the last file reflects everything drained */
	if (ex->follower_started)
		pthread_join(ex->follower, NULL);
	if (ex->json_started) {
		pthread_join(ex->json_thr, NULL);
		json_once(ex);
	}
	atel__otlp_stop(ex->otlp);
	/* the HTTP thread reads the remote writer's counters: stop it first */
	atel__http_stop(atomic_load(&ex->http));
	atel__rw_stop(atomic_load(&ex->rw));
	atel__webui_free(ex->webui);
	atel__json_close(ex->json);
	atel__spans_free(ex->spans);
	atel__agg_free(ex->agg);
	pthread_cond_destroy(&ex->cond);
	pthread_mutex_destroy(&ex->lock);
	free(ex);
}

uint16_t atel__exporters_http_port(const struct atel_exporters *ex)
{
	return ex ? atel__http_port(atomic_load(&((struct atel_exporters *)ex)->http)) : 0;
}

bool atel__exporters_rw_counts(const struct atel_exporters *ex, struct atel_rw_counts *out)
{
	struct atel_rw *rw = ex ? atomic_load(&((struct atel_exporters *)ex)->rw) : NULL;

	memset(out, 0, sizeof(*out));
	if (!rw)
		return false;
	atel__rw_counts(rw, out);
	return true;
}

uint64_t atel__exporters_events_read(const struct atel_exporters *ex)
{
	return ex ? atomic_load(&((struct atel_exporters *)ex)->events_read) : 0;
}
