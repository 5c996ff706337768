/* SPDX-License-Identifier: MIT */
/*
 * remote_write.c - Prometheus remote write 1.0 from the log (remote_write.h,
 * docs/remote-write.md).
 *
 * Delivery protocol, in this order, so that kill -9 at any instant neither
 * loses nor doubles a sample:
 *   1. apply log events to the private model up to position P (in memory);
 *   2. encode the model as batch B (snappy-compressed WriteRequests) and
 *      write the outbox {pending, P, B} atomically (tmp, fsync, rename);
 *   3. checkpoint the model with P (atel__agg_save, atomically);
 *   4. POST every request of B until each is accepted or dropped (4xx);
 *   5. rewrite the outbox as {sent, P, batch time}.
 * At start: the model and P come from the checkpoint; an outbox that is
 * pending at the same P is resent (step 4; its requests may have been stored
 * already: the same samples at the same timestamps are stored once), one at
 * another P (a crash between 2 and 3) is discarded and re-derived from the log.
 * Batch timestamps are strictly increasing (the outbox keeps the last), so a
 * series never gets an older or equal timestamp with another value.
 *
 * Outbox file (host order): "ATELRWO1" u32 version(1) u32 pending(0/1)
 *   u64 file_seq u64 frame_off u32 rec_idx u32 0 | i64 batch_ms | u32 nreq,
 *   per request: u32 nsamples u32 len bytes[len] | u32 crc32 of all before.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <snappy-c.h>
#include <zlib.h>

#include "aggregates.h"
#include "exporters.h"
#include "logread.h"
#include "otlp_export.h" /* atel__otlp_parse_retry_after */
#include "remote_write.h"
#include "remote_write_encode.h"
#include "util.h"

#define OUTBOX_MAGIC "ATELRWO1"
#define OUTBOX_VERSION 1u
#define OUTBOX_MAX ((size_t)1 << 30)
#define FINAL_SEND_MS 3000u
#define EVENTS_PER_PASS 65536u

struct req {
	uint32_t nsamples;
	size_t len;
	char *data;             /* snappy-compressed WriteRequest */
};

struct atel_rw {
	struct atel_rw_opts o;
	char *url, *token, *job, *instance, *segments_dir;
	char ckpt_path[4200], outbox_path[4200];
	struct atel_agg *agg;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	pthread_mutex_t lock;   /* with cond: interruptible sleeps */
	pthread_cond_t cond;
	CURL *curl;
	struct curl_slist *hdrs;
	/* thread-owned delivery state */
	struct atel_log_pos pos;        /* what the model reflects */
	struct atel_log_pos batch_pos;  /* of the pending batch */
	int64_t last_batch_ms;          /* timestamp of the newest batch made */
	int64_t pending_ms;
	struct req *reqs;
	uint32_t nreqs, next_req;
	bool pending;
	uint64_t watermark_ns;          /* newest sample time read */
	char retry_after[64];           /* of the last response */
	char resp[256];
	size_t resp_len;
	/* counters */
	_Atomic uint64_t samples_sent, samples_dropped, requests_ok, requests_failed, requests_dropped, batches,
		pending_samples;
	_Atomic int64_t last_sent_ms;
};

static inline uint64_t mono_ms(void)
{
	return atel__mono_ns() / 1000000u;
}

static void nap(struct atel_rw *w, uint32_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!atomic_load(&w->stop)) {
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&w->lock);
}

static void reqs_free(struct atel_rw *w)
{
	for (uint32_t i = 0; i < w->nreqs; i++)
		free(w->reqs[i].data);
	free(w->reqs);
	w->reqs = NULL;
	w->nreqs = w->next_req = 0;
	w->pending = false;
	atomic_store_explicit(&w->pending_samples, 0, memory_order_relaxed);
}

/* ---- outbox ----------------------------------------------------------------------- */

static int outbox_write(struct atel_rw *w, bool pending)
{
	struct atel_buf b = { 0 };
	uint32_t v = OUTBOX_VERSION, p = pending, z = 0, crc;
	int rc;

	atel__buf_put(&b, OUTBOX_MAGIC, 8);
	atel__buf_put(&b, &v, 4);
	atel__buf_put(&b, &p, 4);
	atel__buf_put(&b, &w->batch_pos.file_seq, 8);
	atel__buf_put(&b, &w->batch_pos.frame_off, 8);
	atel__buf_put(&b, &w->batch_pos.rec_idx, 4);
	atel__buf_put(&b, &z, 4);
	atel__buf_put(&b, &w->pending_ms, 8);
	v = pending ? w->nreqs : 0;
	atel__buf_put(&b, &v, 4);
	for (uint32_t i = 0; pending && i < w->nreqs; i++) {
		uint32_t len = (uint32_t)w->reqs[i].len;
		atel__buf_put(&b, &w->reqs[i].nsamples, 4);
		atel__buf_put(&b, &len, 4);
		atel__buf_put(&b, w->reqs[i].data, len);
	}
	if (b.oom) {
		atel__buf_free(&b);
		return -ENOMEM;
	}
	crc = (uint32_t)crc32(0L, (const Bytef *)b.data, (uInt)b.len);
	atel__buf_put(&b, &crc, 4);
	rc = b.oom ? -ENOMEM : atel__write_file_atomic(w->outbox_path, b.data, b.len, 0600);
	atel__buf_free(&b);
	return rc;
}

struct rd {
	const char *p;
	size_t len, off;
	bool bad;
};

static void take(struct rd *r, void *dst, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p + r->off, n);
	r->off += n;
}

void atel__rw_outbox_free(struct atel_rw_outbox *ob)
{
	if (ob) {
		free(ob->req);
		ob->req = NULL;
		ob->nreq = 0;
	}
}

int atel__rw_outbox_parse(const char *data, size_t len, struct atel_rw_outbox *ob)
{
	struct rd r = { 0 };
	uint32_t v, pending, z, nreq, crc;

	memset(ob, 0, sizeof(*ob));
	if (len < 8 + 4 + 4)
		return -EINVAL;
	memcpy(&crc, data + len - 4, 4);
	if (crc != (uint32_t)crc32(0L, (const Bytef *)data, (uInt)(len - 4)) || memcmp(data, OUTBOX_MAGIC, 8))
		return -EINVAL;
	r.p = data;
	r.len = len - 4;
	r.off = 8;
	take(&r, &v, 4);
	take(&r, &pending, 4);
	take(&r, &ob->pos.file_seq, 8);
	take(&r, &ob->pos.frame_off, 8);
	take(&r, &ob->pos.rec_idx, 4);
	take(&r, &z, 4);
	take(&r, &ob->batch_ms, 8);
	take(&r, &nreq, 4);
	if (r.bad || v != OUTBOX_VERSION || pending > 1 || (!pending && nreq) || nreq > (r.len - r.off) / 8)
		return -EINVAL;
	ob->pending = pending;
	if (nreq && !(ob->req = calloc(nreq, sizeof(*ob->req))))
		return -ENOMEM;
	ob->nreq = nreq;
	for (uint32_t i = 0; i < nreq; i++) {
		uint32_t n, l;
		take(&r, &n, 4);
		take(&r, &l, 4);
		if (r.bad || l > r.len - r.off || !n) {
			atel__rw_outbox_free(ob);
			return -EINVAL;
		}
		ob->req[i].nsamples = n;
		ob->req[i].len = l;
		ob->req[i].data = r.p + r.off;
		r.off += l;
	}
	if (r.off != r.len) {
		atel__rw_outbox_free(ob);
		return -EINVAL;
	}
	return 0;
}

/* Loads the outbox: sets last_batch_ms, and the pending batch if it belongs
 * to the checkpoint's position. @return 0, -ENOENT, or -EINVAL (ignored). */
static int outbox_load(struct atel_rw *w)
{
	struct atel_rw_outbox ob;
	char *data = NULL;
	size_t len = 0;
	int rc = atel__read_file(w->outbox_path, OUTBOX_MAX, &data, &len, NULL, 0);

	if (rc)
		return rc;
	if ((rc = atel__rw_outbox_parse(data, len, &ob)) < 0)
		goto out;
	if (ob.batch_ms > w->last_batch_ms)
		w->last_batch_ms = ob.batch_ms;
	if (ob.pending && atel__log_pos_cmp(&ob.pos, &w->pos) == 0 && ob.nreq) {
		if (!(w->reqs = calloc(ob.nreq, sizeof(*w->reqs)))) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t i = 0; i < ob.nreq; i++) {
			if (!(w->reqs[i].data = malloc(ob.req[i].len ? ob.req[i].len : 1))) {
				reqs_free(w);
				rc = -ENOMEM;
				goto out;
			}
			w->nreqs = i + 1;
			memcpy(w->reqs[i].data, ob.req[i].data, ob.req[i].len);
			w->reqs[i].len = ob.req[i].len;
			w->reqs[i].nsamples = ob.req[i].nsamples;
			atomic_fetch_add_explicit(&w->pending_samples, ob.req[i].nsamples, memory_order_relaxed);
		}
		w->pending = true;
		w->batch_pos = ob.pos;
		w->pending_ms = ob.batch_ms;
		atel__log(w->o.d, ATEL_LOG_INFO, "remote write: resending the pending batch (%u requests, time %" PRId64 " ms)",
			  ob.nreq, ob.batch_ms);
	} else if (ob.pending) {
		atel__log(w->o.d, ATEL_LOG_INFO,
			  "remote write: discarding a batch made after the last checkpoint (it is made again from the log)");
	}
out:
	atel__rw_outbox_free(&ob);
	free(data);
	return rc;
}

/* ---- batches -------------------------------------------------------------------------- */

static int add_req(void *arg, const void *data, size_t len, uint32_t nsamples)
{
	struct atel_rw *w = arg;
	size_t cap = snappy_max_compressed_length(len), out = cap;
	struct req *n = realloc(w->reqs, (w->nreqs + 1) * sizeof(*n));
	char *c;

	if (!n)
		return -ENOMEM;
	w->reqs = n;
	if (!(c = malloc(cap ? cap : 1)))
		return -ENOMEM;
	if (snappy_compress(data, len, c, &out) != SNAPPY_OK) {
		free(c);
		return -EIO;
	}
	w->reqs[w->nreqs].data = c;
	w->reqs[w->nreqs].len = out;
	w->reqs[w->nreqs].nsamples = nsamples;
	w->nreqs++;
	return 0;
}

/* Steps 2 and 3 of the protocol. @return 0, or -errno (nothing pending then). */
static int make_batch(struct atel_rw *w)
{
	struct atel_agg_snapshot *snap = NULL;
	struct atel_rw_label extra[2] = { { "instance", w->instance }, { "job", w->job } };
	int64_t ms = (int64_t)(w->watermark_ns / 1000000u), now = (int64_t)(atel__now_ns() / 1000000u);
	uint64_t total = 0;
	int rc;

	if (ms > now) /* a producer clock ahead of ours must not date samples in the future */
		ms = now;
	if (ms <= w->last_batch_ms)
		ms = w->last_batch_ms + 1;
	if (w->o.series_ttl_s)
		atel__agg_expire(w->agg, w->watermark_ns, (uint64_t)w->o.series_ttl_s * 1000000000ull);
	if ((rc = atel__agg_snapshot(w->agg, &snap)) < 0)
		return rc;
	rc = atel__rw_encode(snap, ms, extra, 2, w->o.batch, add_req, w);
	atel__agg_snapshot_free(snap);
	if (rc < 0) {
		reqs_free(w);
		return rc;
	}
	w->batch_pos = w->pos;
	w->pending_ms = ms;
	if ((rc = outbox_write(w, true)) < 0 || (rc = atel__agg_save(w->agg, w->ckpt_path, &w->pos)) < 0) {
		atel__log(w->o.d, ATEL_LOG_WARN, "remote write: cannot persist the batch in %s: %s", w->o.state_dir,
			  strerror(-rc));
		reqs_free(w);
		return rc;
	}
	for (uint32_t i = 0; i < w->nreqs; i++)
		total += w->reqs[i].nsamples;
	w->last_batch_ms = ms;
	w->pending = true;
	w->next_req = 0;
	atomic_store_explicit(&w->pending_samples, total, memory_order_relaxed);
	atomic_fetch_add_explicit(&w->batches, 1, memory_order_relaxed);
	return 0;
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct atel_rw *w = arg;
	size_t len = size * n;

	if (len > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		size_t vl = len - 12 < sizeof(w->retry_after) - 1 ? len - 12 : sizeof(w->retry_after) - 1;
		memcpy(w->retry_after, p + 12, vl);
		w->retry_after[vl] = '\0';
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct atel_rw *w = arg;
	size_t len = size * n, room = sizeof(w->resp) - 1 - w->resp_len;

	if (room) {
		size_t k = len < room ? len : room;
		memcpy(w->resp + w->resp_len, p, k);
		w->resp_len += k;
		w->resp[w->resp_len] = '\0';
	}
	return len;
}

/* One POST. @return the HTTP status, or 0 with err set for a transport error. */
static long post(struct atel_rw *w, const struct req *q, char *err, size_t errlen)
{
	CURLcode cc;
	long status = 0;

	w->retry_after[0] = '\0';
	w->resp_len = 0;
	w->resp[0] = '\0';
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, q->data);
	curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
	cc = curl_easy_perform(w->curl);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(cc));
		return 0;
	}
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/*
 * Step 4: delivers the pending requests; returns when all are done (then
 * step 5), or when stop is set (the outbox stays pending), or after
 * deadline_ms (mono; 0: none).
 */
static void deliver(struct atel_rw *w, uint64_t deadline_ms)
{
	uint32_t backoff = 250;
	bool warned = false;

	while (w->pending && w->next_req < w->nreqs) {
		const struct req *q = &w->reqs[w->next_req];
		char err[256] = "";
		long st = post(w, q, err, sizeof(err));
		uint32_t delay;

		if (st >= 200 && st < 300) {
			atomic_fetch_add_explicit(&w->samples_sent, q->nsamples, memory_order_relaxed);
			atomic_fetch_add_explicit(&w->requests_ok, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&w->pending_samples, q->nsamples, memory_order_relaxed);
			w->next_req++;
			backoff = 250;
			if (warned)
				atel__log(w->o.d, ATEL_LOG_INFO, "remote write: %s accepts again", w->url);
			warned = false;
			continue;
		}
		if (st >= 400 && st < 500 && st != 429) {
			/* the receiver will never take this request: drop it, counted */
			atomic_fetch_add_explicit(&w->samples_dropped, q->nsamples, memory_order_relaxed);
			atomic_fetch_add_explicit(&w->requests_dropped, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&w->pending_samples, q->nsamples, memory_order_relaxed);
			atel__log(w->o.d, ATEL_LOG_WARN, "remote write: %s refused %u samples with HTTP %ld (dropped): %.200s",
				  w->url, q->nsamples, st, w->resp);
			w->next_req++;
			continue;
		}
		atomic_fetch_add_explicit(&w->requests_failed, 1, memory_order_relaxed);
		delay = backoff;
		if (w->retry_after[0]) {
			uint32_t ra;
			if (atel__otlp_parse_retry_after(w->retry_after, strlen(w->retry_after),
							 (uint64_t)time(NULL), &ra) == 0 && ra > delay)
				delay = ra;
		}
		if (!warned)
			atel__log(w->o.d, ATEL_LOG_WARN, "remote write: %s: %s; retrying (the batch waits in the outbox)",
				  w->url, st ? "HTTP error" : err);
		if (st)
			atel__log(w->o.d, ATEL_LOG_DEBUG, "remote write: HTTP %ld, retry in %u ms", st, delay);
		warned = true;
		if (atomic_load(&w->stop) || (deadline_ms && mono_ms() + delay > deadline_ms))
			return;
		nap(w, delay);
		if (atomic_load(&w->stop) && !deadline_ms)
			return;
		backoff = backoff * 2 > w->o.backoff_max_ms ? w->o.backoff_max_ms : backoff * 2;
	}
	if (!w->pending)
		return;
	atomic_store_explicit(&w->last_sent_ms, w->pending_ms, memory_order_relaxed);
	reqs_free(w);
	if (outbox_write(w, false) < 0)
		atel__log(w->o.d, ATEL_LOG_WARN, "remote write: cannot mark the outbox sent (the batch may be sent again)");
}

/* ---- thread ---------------------------------------------------------------------------- */

static void *rw_main(void *arg)
{
	struct atel_rw *w = arg;
	struct atel_log_reader *r = NULL;
	uint64_t last_batch = 0;
	bool fresh = false, at_end = false;

	atel__exporters_lower_priority();
	while (!atomic_load(&w->stop)) {
		uint32_t n = 0;

		if (w->pending) {
			deliver(w, 0);
			if (w->pending)
				break; /* stopping */
			last_batch = mono_ms();
		}
		if (!r) {
			struct atel_log_reader_opts lo = { 0 };
			lo.segments_dir = w->segments_dir;
			lo.start = w->pos;
			lo.follow = true;
			if (atel__log_open(&r, &lo) < 0) {
				r = NULL;
				nap(w, 200);
				continue;
			}
		}
		at_end = false;
		while (n < EVENTS_PER_PASS) {
			struct atel_event ev;
			struct atel_log_pos after;
			int rc = atel__log_next(r, &ev, &after);
			if (rc == 1) {
				if (ev.kind == ATEL_EV_SAMPLE || ev.kind == ATEL_EV_HISTFOLD) {
					atel__agg_apply(w->agg, &ev);
					if (ev.ts_ns > w->watermark_ns)
						w->watermark_ns = ev.ts_ns;
					fresh = true;
				}
				w->pos = after;
				n++;
				continue;
			}
			if (rc < 0) {
				atel__log(w->o.d, ATEL_LOG_WARN, "remote write: reading the log: %s; reopening", strerror(-rc));
				atel__log_close(r);
				r = NULL;
			}
			at_end = rc == 0;
			break;
		}
		if (fresh && mono_ms() - last_batch >= w->o.interval_ms) {
			if (make_batch(w) == 0)
				fresh = false;
			last_batch = mono_ms();
			continue;
		}
		if (at_end || !r)
			nap(w, 50);
	}
	/* stopping: the last batch of what was read, delivered within a bound */
	if (!w->pending) {
		if (r) {
			struct atel_event ev;
			struct atel_log_pos after;
			uint64_t end = mono_ms() + FINAL_SEND_MS;
			while (mono_ms() < end && atel__log_next(r, &ev, &after) == 1) {
				if (ev.kind == ATEL_EV_SAMPLE || ev.kind == ATEL_EV_HISTFOLD) {
					atel__agg_apply(w->agg, &ev);
					if (ev.ts_ns > w->watermark_ns)
						w->watermark_ns = ev.ts_ns;
					fresh = true;
				}
				w->pos = after;
			}
		}
		if (fresh)
			make_batch(w);
	}
	if (w->pending)
		deliver(w, mono_ms() + FINAL_SEND_MS);
	atel__log_close(r);
	return NULL;
}

/* ---- start / stop ------------------------------------------------------------------------ */

/* remote_write.headers onto the request's list ("Name: value"; curl copies).
 * The values are secrets: they go nowhere else. @return 0 or -ENOMEM. */
static int add_headers(struct atel_rw *w, const struct atel_rw_opts *o)
{
	for (uint32_t i = 0; i < o->nheaders; i++) {
		size_t n = strlen(o->headers[i].key) + strlen(o->headers[i].value) + 3;
		char *line = malloc(n);
		struct curl_slist *l;

		if (!line)
			return -ENOMEM;
		snprintf(line, n, "%s: %s", o->headers[i].key, o->headers[i].value);
		l = curl_slist_append(w->hdrs, line);
		explicit_bzero(line, n);
		free(line);
		if (!l)
			return -ENOMEM;
		w->hdrs = l;
	}
	return 0;
}

int atel__rw_start(struct atel_rw **out, const struct atel_rw_opts *o, char *err, size_t errlen)
{
	struct atel_rw *w;
	char host[256] = "localhost", auth[4200];
	int rc;

	*out = NULL;
	if (!o->url || !*o->url || !o->segments_dir || !o->state_dir) {
		snprintf(err, errlen, "remote_write: url, log and state directory are required");
		return -EINVAL;
	}
	if (!(w = calloc(1, sizeof(*w))))
		return -ENOMEM;
	w->o = *o;
	if (!w->o.batch)
		w->o.batch = 2000;
	if (!w->o.interval_ms)
		w->o.interval_ms = 1000;
	if (!w->o.timeout_ms)
		w->o.timeout_ms = 10000;
	if (!w->o.backoff_max_ms)
		w->o.backoff_max_ms = 30000;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	w->url = strdup(o->url);
	w->token = o->bearer_token && *o->bearer_token ? strdup(o->bearer_token) : NULL;
	w->job = strdup(o->job && *o->job ? o->job : "atel");
	w->instance = strdup(o->instance && *o->instance ? o->instance : host);
	w->segments_dir = strdup(o->segments_dir);
	if (!w->url || !w->job || !w->instance || !w->segments_dir || (o->bearer_token && *o->bearer_token && !w->token)) {
		rc = -ENOMEM;
		goto fail;
	}
	if (mkdir(o->state_dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "remote_write: cannot create %s: %s", o->state_dir, strerror(errno));
		goto fail;
	}
	snprintf(w->ckpt_path, sizeof(w->ckpt_path), "%s/remote_write.ckpt", o->state_dir);
	snprintf(w->outbox_path, sizeof(w->outbox_path), "%s/remote_write.outbox", o->state_dir);
	if ((rc = atel__agg_new(&w->agg, o->series_limit)) < 0)
		goto fail;
	rc = atel__agg_load(w->agg, w->ckpt_path, &w->pos);
	if (rc && rc != -ENOENT) {
		atel__log(o->d, ATEL_LOG_WARN, "remote write: checkpoint %s unusable (%s); starting from the log's beginning",
			  w->ckpt_path, strerror(-rc));
		memset(&w->pos, 0, sizeof(w->pos));
	}
	rc = outbox_load(w);
	if (rc && rc != -ENOENT)
		atel__log(o->d, ATEL_LOG_WARN, "remote write: outbox %s unusable (%s); ignored", w->outbox_path,
			  strerror(-rc));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!(w->curl = curl_easy_init())) {
		rc = -ENOMEM;
		goto fail;
	}
	w->hdrs = curl_slist_append(w->hdrs, "Content-Type: application/x-protobuf");
	w->hdrs = curl_slist_append(w->hdrs, "Content-Encoding: snappy");
	w->hdrs = curl_slist_append(w->hdrs, "X-Prometheus-Remote-Write-Version: 0.1.0");
	w->hdrs = curl_slist_append(w->hdrs, "Expect:");
	if (w->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", w->token);
		w->hdrs = curl_slist_append(w->hdrs, auth);
	}
	if ((rc = add_headers(w, o)) < 0)
		goto fail;
	curl_easy_setopt(w->curl, CURLOPT_URL, w->url);
	curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->curl, CURLOPT_USERAGENT, "atel/" ATEL_VERSION);
	curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)w->o.timeout_ms);
	curl_easy_setopt(w->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)w->o.timeout_ms);
	curl_easy_setopt(w->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(w->curl, CURLOPT_HEADERDATA, w);
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	/* before the thread starts: it owns w->pos from then on */
	atel__log(o->d, ATEL_LOG_INFO, "remote write: to %s as {job=\"%s\",instance=\"%s\"}, from log position file %" PRIu64
		  " offset %" PRIu64, w->url, w->job, w->instance, w->pos.file_seq, w->pos.frame_off);
	if ((rc = -pthread_create(&w->thr, NULL, rw_main, w)) < 0) {
		snprintf(err, errlen, "remote_write: cannot start its thread: %s", strerror(-rc));
		goto fail;
	}
	w->started = true;
	*out = w;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "remote_write: %s", strerror(-rc));
	atel__rw_stop(w);
	return rc;
}

void atel__rw_stop(struct atel_rw *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	atomic_store(&w->stop, true);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thr, NULL);
	reqs_free(w);
	if (w->curl)
		curl_easy_cleanup(w->curl);
	curl_slist_free_all(w->hdrs);
	atel__agg_free(w->agg);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->url);
	free(w->token);
	free(w->job);
	free(w->instance);
	free(w->segments_dir);
	free(w);
}

void atel__rw_counts(const struct atel_rw *cw, struct atel_rw_counts *out)
{
	struct atel_rw *w = (struct atel_rw *)cw;

	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	out->samples_sent = atomic_load_explicit(&w->samples_sent, memory_order_relaxed);
	out->samples_dropped = atomic_load_explicit(&w->samples_dropped, memory_order_relaxed);
	out->requests_ok = atomic_load_explicit(&w->requests_ok, memory_order_relaxed);
	out->requests_failed = atomic_load_explicit(&w->requests_failed, memory_order_relaxed);
	out->requests_dropped = atomic_load_explicit(&w->requests_dropped, memory_order_relaxed);
	out->batches = atomic_load_explicit(&w->batches, memory_order_relaxed);
	out->pending_samples = atomic_load_explicit(&w->pending_samples, memory_order_relaxed);
	out->last_sent_ms = atomic_load_explicit(&w->last_sent_ms, memory_order_relaxed);
}
