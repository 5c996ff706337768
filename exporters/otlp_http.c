/* SPDX-License-Identifier: MIT */
/*
 * otlp_http.c - the OTLP exporter's delivery (otlp_internal.h): libcurl
 * handles per signal, gzip, one POST, the answer read back (partial
 * success, Retry-After), retries with backoff and jitter, and what each
 * attempt reports (export rows, exporter health, log lines). Every error
 * string and log line goes through redact(), which masks any header value
 * that a server might have echoed back.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <zlib.h>

#include "otlp_internal.h"


int atel__otlp_parse_retry_after(const char *value, size_t len, uint64_t now_unix_s, uint32_t *delay_ms)
{
	char buf[64], *end;
	size_t a = 0, b = len;
	unsigned long long secs;
	struct tm tm;

	if (!value)
		return -EINVAL;
	while (a < b && (value[a] == ' ' || value[a] == '\t'))
		a++;
	while (b > a && (value[b - 1] == ' ' || value[b - 1] == '\t' || value[b - 1] == '\r' || value[b - 1] == '\n'))
		b--;
	if (b == a || b - a >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value + a, b - a);
	buf[b - a] = '\0';
	if (isdigit((unsigned char)buf[0])) {
		errno = 0;
		secs = strtoull(buf, &end, 10);
		if (*end)
			return -EINVAL;
		if (errno == ERANGE || secs > 3600)
			secs = 3600;
		*delay_ms = (uint32_t)(secs * 1000);
		return 0;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	memset(&tm, 0, sizeof(tm));
	end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -EINVAL;
	{
		time_t t = timegm(&tm);
		int64_t d;

		if (t == (time_t)-1)
			return -EINVAL;
		d = (int64_t)t - (int64_t)now_unix_s;
		if (d < 0)
			d = 0;
		if (d > 3600)
			d = 3600;
		*delay_ms = (uint32_t)(d * 1000);
	}
	return 0;
}

uint32_t atel__otlp_backoff_ms(unsigned attempt, uint32_t retry_after_ms, uint32_t base_ms, uint32_t max_ms,
			       uint64_t rnd)
{
	uint64_t d = base_ms ? base_ms : 1;

	if (attempt < 1)
		attempt = 1;
	for (unsigned i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* equal jitter: [d/2, d] */
	d = d / 2 + (d / 2 ? rnd % (d / 2 + 1) : 0);
	if (d < retry_after_ms)
		d = retry_after_ms;
	return (uint32_t)d;
}

/* Masks every header value (>= 4 chars) that occurs in s. */
static void redact(const struct atel_otlp *o, char *s)
{
	const struct atel_otlp_signal *sig[2] = { &o->st.traces, &o->st.metrics };

	for (int i = 0; i < 2; i++) {
		for (uint32_t h = 0; h < sig[i]->nheaders; h++) {
			const char *v = sig[i]->headers[h].value;
			size_t n = strlen(v);
			char *p;

			if (n < 4)
				continue;
			while ((p = strstr(s, v)))
				memset(p, '*', n);
		}
	}
}

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct atel_otlp *o = arg;
	size_t n = sz * nm, room = RESP_MAX > o->resp.len ? RESP_MAX - o->resp.len : 0;

	if (n > room)
		n = room; /* keep the first RESP_MAX bytes; accept the rest */
	if (n)
		atel__buf_put(&o->resp, p, n); /* NUL-terminated; on failure the response stays short */
	return sz * nm;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct atel_otlp *o = arg;
	size_t n = sz * nm;

	if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		size_t m = n - 12 < sizeof(o->retry_after) - 1 ? n - 12 : sizeof(o->retry_after) - 1;

		memcpy(o->retry_after, p + 12, m);
		o->retry_after[m] = '\0';
	}
	return n;
}

/* gzip at level 1: OTLP payloads are repetitive enough that level 1 keeps
 * ~80% of level 6's saving (1000 spans: 204 KB -> 16 KB vs 14 KB) at a tenth
 * of the CPU (bench: atel-bench --only otlp). */
int atel__otlp_gzip(struct atel_buf *out, const uint8_t *in, size_t len)
{
	z_stream zs;
	uLong bound;
	int rc;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&zs, (uLong)len) + 32;
	atel__buf_reset(out);
	if (!atel__buf_reserve(out, bound)) {
		deflateEnd(&zs);
		return -ENOMEM;
	}
	zs.next_in = (Bytef *)(uintptr_t)in;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)bound;
	rc = deflate(&zs, Z_FINISH);
	out->len = zs.total_out;
	deflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -EIO;
}

int atel__otlp_http_setup(struct atel_otlp *o, int which, char *err, size_t errlen)
{
	const struct atel_otlp_signal *g = which ? &o->st.metrics : &o->st.traces;
	struct curl_slist *l = NULL, *n;
	char line[8192];
	CURL *c = curl_easy_init();

	if (!c) {
		atel__seterr(err, errlen, "otlp: curl_easy_init failed");
		return -ENOMEM;
	}
	n = curl_slist_append(l, g->json ? "Content-Type: application/json" : "Content-Type: application/x-protobuf");
	l = n ? n : l;
	if (g->gzip && (n = curl_slist_append(l, "Content-Encoding: gzip")))
		l = n;
	if ((n = curl_slist_append(l, "Expect:"))) /* no 100-continue round trip */
		l = n;
	for (uint32_t h = 0; h < g->nheaders; h++) {
		snprintf(line, sizeof(line), "%s: %s", g->headers[h].key, g->headers[h].value);
		if ((n = curl_slist_append(l, line)))
			l = n;
	}
	memset(line, 0, sizeof(line)); /* do not leave a token on the stack */
	o->hdrs[which] = l;
	curl_easy_setopt(c, CURLOPT_URL, g->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)g->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)g->timeout_ms);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "atel/" ATEL_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, o);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, o);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->curl_err);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	o->curl[which] = c;
	return 0;
}

struct http_result {
	long status;          /* HTTP status, or 0 on a transport error */
	int err;              /* -errno-ish transport error (0 if an HTTP answer came) */
	bool retryable;
	uint32_t retry_after_ms;
	bool has_retry_after;
	char msg[256];        /* redacted */
};

static void http_post(struct atel_otlp *o, int which, const struct atel_buf *body, struct http_result *r)
{
	CURL *c = o->curl[which];
	CURLcode cc;

	memset(r, 0, sizeof(*r));
	atel__buf_reset(&o->resp);
	o->retry_after[0] = '\0';
	o->curl_err[0] = '\0';
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		r->err = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
			 : cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
			 : cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH
							  : -EIO;
		r->retryable = cc != CURLE_URL_MALFORMAT && cc != CURLE_UNSUPPORTED_PROTOCOL &&
			       cc != CURLE_OUT_OF_MEMORY;
		snprintf(r->msg, sizeof(r->msg), "%s", o->curl_err[0] ? o->curl_err : curl_easy_strerror(cc));
		redact(o, r->msg);
		return;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (o->retry_after[0]) {
		uint32_t ms;

		if (!atel__otlp_parse_retry_after(o->retry_after, strlen(o->retry_after), (uint64_t)time(NULL), &ms)) {
			r->retry_after_ms = ms;
			r->has_retry_after = true;
		}
	}
	r->retryable = r->status == 429 || r->status == 502 || r->status == 503 || r->status == 504;
}

int atel__otlp_attempt(struct atel_otlp *o, int which, const struct atel_buf *body, uint64_t items,
		   unsigned *attempt_no, uint64_t *next_ns, int64_t *rejected, bool *acked, bool final_pass)
{
	const struct atel_otlp_signal *g = which ? &o->st.metrics : &o->st.traces;
	struct atel_export_row row;
	struct http_result r;
	char msg[256] = "";

	*acked = false;
	*rejected = 0;
	stat_add(&o->s_attempts[which], 1);
	http_post(o, which, body, &r);
	memset(&row, 0, sizeof(row));
	row.ts_ns = atel__now_ns();
	snprintf(row.exporter, sizeof(row.exporter), "otlp");
	snprintf(row.signal, sizeof(row.signal), "%s", SIG_NAME[which]);
	row.items = items;
	row.bytes = body->len;
	row.status = r.status ? (int)r.status : r.err;

	if (r.status >= 200 && r.status < 300) {
		int prc = atel__otlp_parse_response(o->resp.data, o->resp.len, g->json, rejected, msg, sizeof(msg));

		redact(o, msg);
		if (prc) {
			/* the data was accepted (2xx); an unreadable body is only worth a warning */
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s", SIG_NAME[which], msg);
			*rejected = 0;
			msg[0] = '\0';
		}
		if (*rejected > 0) {
			snprintf(row.error, sizeof(row.error), "partial success: %" PRId64 " rejected: %s", *rejected,
				 msg[0] ? msg : "(no message)");
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: collector rejected %" PRId64 " of %" PRIu64 " %s: %s",
				  SIG_NAME[which], *rejected, items, which ? "data points" : "spans",
				  msg[0] ? msg : "(no message)");
		} else if (msg[0]) {
			atel__log(o->d, ATEL_LOG_INFO, "otlp: %s: collector says: %s", SIG_NAME[which], msg);
		}
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, true, NULL);
		stat_add(&o->s_acked[which], 1);
		*acked = true;
		return 1;
	}
	if (r.status)
		snprintf(msg, sizeof(msg), "HTTP %ld from %.120s", r.status, g->url);
	else
		snprintf(msg, sizeof(msg), "%.120s (%.120s)", r.msg, g->url);
	if (r.status && o->resp.len) {
		char body_msg[160];
		size_t n = o->resp.len < 120 ? o->resp.len : 120, k = 0;

		for (size_t i = 0; i < n; i++)
			body_msg[k++] = ((unsigned char)o->resp.data[i] >= 0x20 && (unsigned char)o->resp.data[i] < 0x7f)
					       ? o->resp.data[i]
					       : ' ';
		body_msg[k] = '\0';
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ": %s", body_msg);
	}
	redact(o, msg);
	if (!r.retryable || final_pass || (which == SIG_METRICS && *attempt_no + 1 >= o->metrics_max_attempts)) {
		bool keep = r.retryable && final_pass && which == SIG_TRACES;

		snprintf(row.error, sizeof(row.error), "%s; %s", msg,
			 !r.retryable ? "not retried" : final_pass ? "shutting down" : "giving up");
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, false, row.error);
		if (keep) {
			/* the cursor stays before these spans: the next start sends them */
			atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s: %" PRIu64 " spans stay in the log for the next start",
				  SIG_NAME[which], row.error, items);
			return 0;
		}
		atel__log(o->d, ATEL_LOG_ERROR, "otlp: %s: %s: dropping %" PRIu64 " %s", SIG_NAME[which], row.error,
			  items, which ? "data points" : "spans");
		if (!final_pass || !r.retryable) {
			stat_add(&o->s_dropped[which], 1);
			return 1;
		}
		return 0;
	}
	{
		uint32_t delay;

		o->rnd = o->rnd * 6364136223846793005ull + 1442695040888963407ull;
		delay = atel__otlp_backoff_ms(*attempt_no + 1, r.has_retry_after ? r.retry_after_ms : 0,
					      o->backoff_base_ms, o->backoff_max_ms, o->rnd >> 17);
		(*attempt_no)++;
		*next_ns = atel__mono_ns() + (uint64_t)delay * 1000000ull;
		atomic_store_explicit(&o->s_last_delay, delay, memory_order_relaxed);
		stat_add(&o->s_retries[which], 1);
		snprintf(row.error, sizeof(row.error), "%s; retry %u in %u ms%s", msg, *attempt_no, delay,
			 r.has_retry_after ? " (Retry-After)" : "");
		atel__export_row_push(o->d, &row);
		atel__exporter_note(o->d, ATEL_EXP_OTLP, false, row.error);
		atel__log(o->d, ATEL_LOG_WARN, "otlp: %s: %s", SIG_NAME[which], row.error);
	}
	return 0;
}

