/* SPDX-License-Identifier: MIT */
/*
 * http.c - request parser and epoll server for /metrics and /healthz
 * (see http.h for the limits and why this is hand-written).
 *
 * Connection states: READ (collecting one request; deadline = start of the
 * request + request_timeout, or + idle_timeout while nothing has arrived on
 * a kept-alive connection; trickling bytes never extends it), WRITE (sending
 * the response; write deadline), LINGER (after an error response: write side
 * shut, reading and discarding briefly so the client is not reset before it
 * has read the status). Requests on one connection are answered in order;
 * pipelined bytes wait in the input buffer until the previous response is out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "http.h"
#include "prometheus.h" /* ATEL_PROM_CONTENT_TYPE, ATEL_OPENMETRICS_CONTENT_TYPE */

/* ---- parser ------------------------------------------------------------------ */

void atel__http_limits_default(struct atel_http_limits *lim)
{
	lim->max_uri = 2048;
	lim->max_head = 8192;
	lim->max_body = 8192;
	lim->max_headers = 64;
}

const int atel__http_codes[ATEL_HTTP_CODES_N] = { 200, 400, 401, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505 };

static inline uint64_t now_ms(void)
{
	return atel__mono_ns() / 1000000u;
}

/* RFC 9110 tchar */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

static bool name_is(const char *n, size_t nlen, const char *lit)
{
	return strlen(lit) == nlen && !strncasecmp(n, lit, nlen);
}

/* Connection header: comma-separated tokens, case-insensitive. */
static void connection_tokens(const char *v, size_t n, bool *close, bool *keep)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (name_is(v + s, e - s, "close"))
			*close = true;
		else if (name_is(v + s, e - s, "keep-alive"))
			*keep = true;
	}
}

long atel__http_parse(const char *buf, size_t len, const struct atel_http_limits *limp,
		      struct atel_http_request *req)
{
	struct atel_http_limits lim;
	const unsigned char *b = (const unsigned char *)buf;
	size_t i = 0, m = 0, t0, nhdr = 0;
	bool have_cl = false, have_host = false, conn_close = false, conn_keep = false;

	atel__http_limits_default(&lim);
	if (limp) {
		if (limp->max_uri)
			lim.max_uri = limp->max_uri;
		if (limp->max_head)
			lim.max_head = limp->max_head;
		if (limp->max_body)
			lim.max_body = limp->max_body;
		if (limp->max_headers)
			lim.max_headers = limp->max_headers;
		lim.chunked_ok = limp->chunked_ok;
	}
	memset(req, 0, sizeof(*req));

	/* The HTTP/2 connection preface (RFC 9113 3.4) is answered 505, as documented */
	{
		static const char h2[] = "PRI * HTTP/2.0\r\n";
		size_t k = len < sizeof(h2) - 1 ? len : sizeof(h2) - 1;

		if (k >= 4 && memcmp(buf, h2, k) == 0)
			return k == sizeof(h2) - 1 ? -505 : 0;
	}

	/* RFC 9112 2.2: ignore at least one empty line before the request-line */
	while (i < len && i < 4 && (b[i] == '\r' || b[i] == '\n'))
		i++;
	/* method */
	while (i < len && is_tchar(b[i])) {
		if (m + 1 >= sizeof(req->method))
			return -400;
		req->method[m++] = (char)b[i++];
	}
	if (i == len)
		return 0;
	if (m == 0 || b[i] != ' ')
		return -400;
	i++;
	/* request-target: origin-form only (we are not a proxy) */
	t0 = i;
	while (i < len && b[i] != ' ') {
		if (b[i] < 0x21 || b[i] > 0x7e)
			return -400;
		if (i - t0 >= lim.max_uri)
			return -414;
		i++;
	}
	if (i == len)
		return 0;
	if (i == t0 || b[t0] != '/')
		return -400;
	req->target = buf + t0;
	req->target_len = i - t0;
	i++;
	/* HTTP-version CRLF (a bare LF is tolerated, RFC 9112 2.2) */
	{
		static const char v[] = "HTTP/";
		for (size_t k = 0; k < 5; k++, i++) {
			if (i == len)
				return 0;
			if (b[i] != (unsigned char)v[k])
				return -400;
		}
		if (len - i < 3) { /* partial "1.1": refuse early only what cannot become valid */
			if (i < len && (b[i] < '0' || b[i] > '9'))
				return -400;
			if (i + 1 < len && b[i + 1] != '.')
				return -400;
			return 0;
		}
		if (b[i] < '0' || b[i] > '9' || b[i + 1] != '.' || b[i + 2] < '0' || b[i + 2] > '9')
			return -400;
		if (b[i] != '1')
			return -505;
		req->minor = b[i + 2] - '0';
		i += 3;
		if (i == len)
			return 0;
		if (b[i] == '\r') {
			if (++i == len)
				return 0;
		}
		if (b[i] != '\n')
			return -400;
		i++;
	}
	/* header fields */
	for (;;) {
		size_t n0, n1, v0, v1;

		if (i > lim.max_head)
			return -431;
		if (i == len)
			return 0;
		if (b[i] == '\r') {
			if (i + 1 == len)
				return 0;
			if (b[i + 1] != '\n')
				return -400;
			i += 2;
			break;
		}
		if (b[i] == '\n') {
			i++;
			break;
		}
		if (++nhdr > lim.max_headers)
			return -431;
		/* field-name: no whitespace before ':' and no obs-fold */
		n0 = i;
		while (i < len && is_tchar(b[i]))
			i++;
		if (i == len)
			return i > lim.max_head ? -431 : 0;
		if (i == n0 || b[i] != ':')
			return -400;
		n1 = i++;
		while (i < len && (b[i] == ' ' || b[i] == '\t'))
			i++;
		v0 = i;
		while (i < len && b[i] != '\r' && b[i] != '\n') {
			if ((b[i] < 0x20 && b[i] != '\t') || b[i] == 0x7f)
				return -400;
			i++;
		}
		if (i == len)
			return i > lim.max_head ? -431 : 0;
		v1 = i;
		while (v1 > v0 && (b[v1 - 1] == ' ' || b[v1 - 1] == '\t'))
			v1--;
		if (b[i] == '\r') {
			if (i + 1 == len)
				return 0;
			if (b[i + 1] != '\n')
				return -400;
			i++;
		}
		i++;
		if (i > lim.max_head)
			return -431;

		const char *name = buf + n0, *val = buf + v0;
		size_t nlen = n1 - n0, vlen = v1 - v0;
		if (name_is(name, nlen, "content-length")) {
			uint64_t cl = 0;
			if (vlen == 0)
				return -400;
			for (size_t k = 0; k < vlen; k++) {
				if (val[k] < '0' || val[k] > '9')
					return -400; /* also rejects "5, 5" lists: ambiguity is refused */
				if (cl > (UINT64_MAX - 9) / 10)
					return -413;
				cl = cl * 10 + (uint64_t)(val[k] - '0');
			}
			if (have_cl && cl != req->content_length)
				return -400; /* conflicting lengths: request smuggling shape */
			have_cl = true;
			req->content_length = cl;
		} else if (name_is(name, nlen, "transfer-encoding")) {
			/* only the OTLP receiver takes streamed bodies, and only plain chunked */
			if (!lim.chunked_ok || !name_is(val, vlen, "chunked"))
				return -501;
			if (req->chunked)
				return -400;
			req->chunked = true;
		} else if (name_is(name, nlen, "content-type")) {
			req->content_type = val;
			req->content_type_len = vlen;
		} else if (name_is(name, nlen, "content-encoding")) {
			req->content_enc = val;
			req->content_enc_len = vlen;
		} else if (name_is(name, nlen, "connection")) {
			connection_tokens(val, vlen, &conn_close, &conn_keep);
		} else if (name_is(name, nlen, "authorization")) {
			if (req->auth)
				return -400;
			req->auth = val;
			req->auth_len = vlen;
		} else if (name_is(name, nlen, "accept")) {
			req->accept = val;
			req->accept_len = vlen;
		} else if (name_is(name, nlen, "accept-encoding")) {
			req->accept_enc = val;
			req->accept_enc_len = vlen;
		} else if (name_is(name, nlen, "host")) {
			if (have_host)
				return -400; /* RFC 9112 3.2: more than one Host is a 400 */
			have_host = true;
		}
	}
	if (i > lim.max_head)
		return -431;
	if (req->minor >= 1 && !have_host)
		return -400; /* RFC 9112 3.2: HTTP/1.1 requires Host */
	if (req->content_length > lim.max_body)
		return -413;
	if (req->chunked && have_cl)
		return -400; /* RFC 9112 6.3: both framings at once is the request smuggling shape */
	req->keep_alive = req->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
	req->head_len = i;
	return (long)(i + req->content_length);
}

/* ---- chunked request bodies (the OTLP receiver) ------------------------------------ */

#define CHUNK_LINE_MAX 4096u

/* The end of the line starting at buf[i] (index of its LF), or len if not complete. */
static size_t line_end(const char *buf, size_t len, size_t i)
{
	const char *lf = memchr(buf + i, '\n', len - i);

	return lf ? (size_t)(lf - buf) : len;
}

int atel__http_dechunk(char *buf, size_t len, size_t body0, size_t *pos, size_t *out, size_t max_body)
{
	for (;;) {
		size_t i = *pos, e = line_end(buf, len, i), k = i;
		uint64_t size = 0;

		if (e == len)
			return len - i > CHUNK_LINE_MAX ? -400 : 0;
		if (e - i > CHUNK_LINE_MAX)
			return -400;
		/* chunk-size in hex, then optional ";ext", then CRLF (a bare LF is tolerated) */
		while (k < e && ((buf[k] >= '0' && buf[k] <= '9') || ((buf[k] | 0x20) >= 'a' && (buf[k] | 0x20) <= 'f'))) {
			unsigned d = buf[k] <= '9' ? (unsigned)(buf[k] - '0') : (unsigned)((buf[k] | 0x20) - 'a' + 10);
			if (size > (UINT64_MAX >> 4))
				return -413;
			size = size << 4 | d;
			k++;
		}
		if (k == i)
			return -400;
		if (k < e && buf[k] != ';' && buf[k] != '\r' && buf[k] != ' ' && buf[k] != '\t')
			return -400;
		if (size == 0) {
			/* last chunk: trailer fields until an empty line */
			size_t t = e + 1;
			for (;;) {
				size_t te = line_end(buf, len, t);
				if (te == len)
					return len - t > CHUNK_LINE_MAX ? -400 : 0;
				if (te - t > CHUNK_LINE_MAX)
					return -400;
				if (te == t || (te == t + 1 && buf[t] == '\r')) {
					*pos = te + 1;
					return 1;
				}
				t = te + 1;
			}
		}
		if (size > max_body || *out - body0 + size > max_body)
			return -413;
		/* data, then CRLF */
		if (len - (e + 1) < size + 1)
			return 0;
		{
			size_t d = e + 1, after = d + (size_t)size;
			if (buf[after] == '\r') {
				if (len - after < 2)
					return 0;
				if (buf[after + 1] != '\n')
					return -400;
				after += 2;
			} else if (buf[after] == '\n') {
				after += 1;
			} else {
				return -400;
			}
			memmove(buf + *out, buf + d, (size_t)size);
			*out += (size_t)size;
			*pos = after;
		}
	}
}

/* ---- content negotiation (/metrics) ------------------------------------------------- */

const char *const atel__http_variant_names[ATEL_HTTP_VARIANTS] = { "text", "text_gzip", "openmetrics",
								    "openmetrics_gzip" };

static void trim(const char **p, size_t *n)
{
	while (*n && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*n)--;
	}
	while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
		(*n)--;
}

static bool span_is(const char *p, size_t n, const char *lit)
{
	return n == strlen(lit) && !strncasecmp(p, lit, n);
}

/* qvalue (RFC 9110 12.4.2): "0", "0.5", "1", "1.000"; anything else counts as 0. */
static int parse_q(const char *p, size_t n)
{
	int q = 0, scale = 1000;

	if (!n || (p[0] != '0' && p[0] != '1'))
		return 0;
	q = (p[0] - '0') * 1000;
	if (n > 1) {
		if (p[1] != '.' || n > 5)
			return 0;
		for (size_t i = 2; i < n; i++) {
			if (p[i] < '0' || p[i] > '9')
				return 0;
			scale /= 10;
			q += (p[i] - '0') * scale;
		}
	}
	return q > 1000 ? 0 : q;
}

/*
 * Walks a comma-separated list of `token[;param=value]*` elements, calling
 * fn with each element's token and its q (1000 = 1.0) and version parameter.
 * Quoted parameter values are taken as-is without their quotes.
 */
static void list_walk(const char *v, size_t n,
		      void (*fn)(void *arg, const char *tok, size_t tlen, int q, const char *ver, size_t vlen),
		      void *arg)
{
	size_t i = 0;

	while (i < n) {
		size_t e0 = i, e1, t1;
		const char *tok, *ver = NULL;
		size_t tlen, vlen = 0;
		int q = 1000;

		while (i < n && v[i] != ',')
			i++;
		e1 = i++;
		for (t1 = e0; t1 < e1 && v[t1] != ';'; t1++)
			;
		tok = v + e0;
		tlen = t1 - e0;
		trim(&tok, &tlen);
		while (t1 < e1) { /* parameters */
			size_t p0 = ++t1, eq;
			const char *pn, *pv;
			size_t pnl, pvl;

			while (t1 < e1 && v[t1] != ';')
				t1++;
			for (eq = p0; eq < t1 && v[eq] != '='; eq++)
				;
			if (eq == t1)
				continue;
			pn = v + p0;
			pnl = eq - p0;
			pv = v + eq + 1;
			pvl = t1 - eq - 1;
			trim(&pn, &pnl);
			trim(&pv, &pvl);
			if (pvl >= 2 && pv[0] == '"' && pv[pvl - 1] == '"') {
				pv++;
				pvl -= 2;
			}
			if (span_is(pn, pnl, "q"))
				q = parse_q(pv, pvl);
			else if (span_is(pn, pnl, "version")) {
				ver = pv;
				vlen = pvl;
			}
		}
		if (tlen)
			fn(arg, tok, tlen, q, ver, vlen);
	}
}

struct accept_q {
	int om, text, gzip, star;
	bool gzip_seen;
};

static void on_accept_elem(void *arg, const char *t, size_t n, int q, const char *ver, size_t vlen)
{
	struct accept_q *a = arg;

	if (span_is(t, n, "application/openmetrics-text")) {
		if ((!ver || span_is(ver, vlen, "1.0.0") || span_is(ver, vlen, "0.0.1")) && q > a->om)
			a->om = q;
	} else if (span_is(t, n, "text/plain")) {
		if ((!ver || span_is(ver, vlen, "0.0.4")) && q > a->text)
			a->text = q;
	} else if (span_is(t, n, "*/*") || span_is(t, n, "text/*")) {
		if (q > a->text)
			a->text = q;
	}
}

static void on_encoding_elem(void *arg, const char *t, size_t n, int q, const char *ver, size_t vlen)
{
	struct accept_q *a = arg;

	(void)ver;
	(void)vlen;
	if (span_is(t, n, "gzip") || span_is(t, n, "x-gzip")) {
		a->gzip = q;
		a->gzip_seen = true;
	} else if (span_is(t, n, "*")) {
		a->star = q;
	}
}

enum atel_http_variant atel__http_negotiate(const struct atel_http_request *r, bool openmetrics_ok)
{
	struct accept_q a = { 0 };
	bool om = false, gz;

	if (r->accept && openmetrics_ok) {
		list_walk(r->accept, r->accept_len, on_accept_elem, &a);
		om = a.om > a.text;
	}
	if (r->accept_enc)
		list_walk(r->accept_enc, r->accept_enc_len, on_encoding_elem, &a);
	gz = a.gzip_seen ? a.gzip > 0 : a.star > 0;
	return (enum atel_http_variant)((om ? ATEL_HTTP_OPENMETRICS : ATEL_HTTP_TEXT) + (gz ? 1 : 0));
}

/* ---- server ---------------------------------------------------------------------- */

enum conn_state { C_READ, C_WRITE, C_LINGER };

/*
 * A /metrics body shared by every connection that sends it: concurrent
 * scrapes within reuse_ms get the same encoding (one snapshot, one copy in
 * memory, however many slow readers hold it). Server thread only.
 */
struct shared_body {
	uint32_t refs;
	size_t len;
	char data[];
};

struct conn {
	int fd;
	uint32_t slot;              /* index in srv->conns */
	enum conn_state st;
	char *in;
	size_t in_len, in_cap;
	long need;                  /* full request length once the head parsed, else 0 */
	bool chunked;               /* the parsed head announced a chunked body (OTLP receiver) */
	size_t ck_pos, ck_out;      /* atel__http_dechunk's positions in in */
	size_t scanned;             /* bytes already checked for a line end */
	struct atel_buf out;        /* status line and headers (and small bodies) */
	size_t out_off;             /* bytes of out + body sent */
	struct shared_body *body;   /* a /metrics body after out, or NULL */
	bool close_after;
	uint64_t deadline_ms;
	uint64_t last_ms;           /* last accept, read or completed write: eviction order */
	bool remote;                /* peer is not a loopback address */
	unsigned char peer[16];     /* peer address (IPv4 mapped into 16 bytes) */
};

struct atel_http_server {
	struct atel_http_opts o;
	char *bind, *path, *token;
	int lfd, efd, wfd;
	uint16_t port;
	pthread_t thr;
	bool started;
	atomic_bool stop;
	struct conn **conns;
	uint32_t nconns;
	struct atel_buf body;       /* scratch for the /metrics body */
	struct atel_http_reply reply; /* scratch for an extra route's answer */
	struct shared_body *cached[ATEL_HTTP_VARIANTS]; /* the latest body per variant (one reference held here) */
	uint64_t cached_ms[ATEL_HTTP_VARIANTS];
	_Atomic uint64_t codes[ATEL_HTTP_CODES_N];
	_Atomic uint64_t scrapes[ATEL_HTTP_VARIANTS];
	_Atomic uint64_t rejected, timeouts;
};

#define LINGER_MS 1000u
/* Scrapes within this window share one encoded body. Short enough that a
 * scrape never sees data staler than the log follower's own lag. */
#define REUSE_MS_DEFAULT 100u
#define READ_CHUNK 4096u

static const char *reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 422: return "Unprocessable Entity";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void count_code(struct atel_http_server *s, int code)
{
	for (int i = 0; i < ATEL_HTTP_CODES_N; i++)
		if (atel__http_codes[i] == code) {
			atomic_fetch_add_explicit(&s->codes[i], 1, memory_order_relaxed);
			return;
		}
}

/* Composes a full response into out. body may be NULL (len 0). */
static void compose(struct atel_http_server *s, struct atel_buf *out, int code, const char *ctype,
		    const char *extra_headers, const char *body, size_t blen, bool head_only, bool keep)
{
	char date[64];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	atel__buf_reset(out);
	atel__buf_puts(out, "HTTP/1.1 ");
	atel__buf_u64(out, (uint64_t)code);
	atel__buf_putc(out, ' ');
	atel__buf_puts(out, reason(code));
	atel__buf_puts(out, "\r\nDate: ");
	atel__buf_puts(out, date);
	atel__buf_puts(out, "\r\nContent-Type: ");
	atel__buf_puts(out, ctype);
	atel__buf_puts(out, "\r\nContent-Length: ");
	atel__buf_u64(out, blen);
	atel__buf_puts(out, keep ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
	if (extra_headers)
		atel__buf_puts(out, extra_headers);
	atel__buf_puts(out, "\r\n");
	if (!head_only && blen)
		atel__buf_put(out, body, blen);
	count_code(s, code);
}

static void error_response(struct atel_http_server *s, struct conn *c, int code, const char *extra, bool keep,
			   bool head_only)
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "%d %s\n", code, reason(code));

	compose(s, &c->out, code, "text/plain; charset=utf-8", extra, msg, (size_t)n, head_only, keep);
}

/* Constant-time comparison: the token must not leak through timing. */
static bool token_ok(const char *have, size_t hlen, const char *want)
{
	size_t wlen = strlen(want);
	unsigned char diff = (unsigned char)(hlen != wlen);

	for (size_t i = 0; i < wlen; i++)
		diff |= (unsigned char)(want[i] ^ (i < hlen ? have[i] : 0));
	return diff == 0;
}

static bool authorized(const struct atel_http_server *s, const struct atel_http_request *r)
{
	const char *v = r->auth;
	size_t n = r->auth_len;

	if (!s->token)
		return true;
	if (!v || n < 7 || strncasecmp(v, "Bearer ", 7))
		return false;
	v += 7;
	n -= 7;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	return token_ok(v, n, s->token);
}

static void body_unref(struct shared_body *b)
{
	if (b && --b->refs == 0)
		free(b);
}

static struct shared_body *plain_body(const char *data, size_t len)
{
	struct shared_body *b = malloc(sizeof(*b) + len + 1);

	if (!b)
		return NULL;
	b->refs = 1;
	b->len = len;
	if (len)
		memcpy(b->data, data, len);
	return b;
}

/* The gzip member (RFC 1952) of data; level 1: scrapes are frequent and
 * text this repetitive compresses about tenfold even at the fastest level. */
static struct shared_body *gzip_body(const char *data, size_t len)
{
	z_stream z;
	struct shared_body *b;
	uLong cap;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	cap = deflateBound(&z, (uLong)len) + 32;
	if (!(b = malloc(sizeof(*b) + cap))) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)(uintptr_t)data;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)b->data;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(b);
		return NULL;
	}
	b->refs = 1;
	b->len = z.total_out;
	deflateEnd(&z);
	return b;
}

/* /api/v1/...: the query API hook (http.h, opts.api); the body follows the head. */
static void handle_api(struct atel_http_server *s, struct conn *c, const struct atel_http_request *r, bool keep)
{
	struct atel_buf out = { 0 };
	int code;

	if (strcmp(r->method, "GET") && strcmp(r->method, "POST")) {
		error_response(s, c, 405, "Allow: GET, POST\r\n", keep, false);
		return;
	}
	if (!authorized(s, r)) {
		error_response(s, c, 401, "WWW-Authenticate: Bearer realm=\"atel\"\r\n", keep, false);
		return;
	}
	code = s->o.api(s->o.api_arg, r->method, r->target, r->target_len, c->in + r->head_len,
			(size_t)r->content_length, &out);
	if (out.oom || code < 200 || code > 599) {
		atel__buf_free(&out);
		error_response(s, c, 500, NULL, keep, false);
		return;
	}
	compose(s, &c->out, code, "application/json", NULL, out.data, out.len, false, keep);
	atel__buf_free(&out);
}

/* An extra route (the web view): the handler builds the body in s->reply. */
static void handle_route(struct atel_http_server *s, struct conn *c, const struct atel_http_request *r, bool get,
			 bool head, bool keep)
{
	int rc;

	if (!get && !head) {
		error_response(s, c, 405, "Allow: GET, HEAD\r\n", keep, false);
		return;
	}
	atel__buf_reset(&s->reply.body);
	s->reply.status = 200;
	s->reply.ctype = "text/plain; charset=utf-8";
	s->reply.headers = NULL;
	rc = s->o.route(s->o.route_arg, r->target, r->target_len, authorized(s, r), &s->reply);
	if (rc == -ENOENT) {
		error_response(s, c, 404, NULL, keep, head);
		return;
	}
	if (rc < 0 || s->reply.body.oom) {
		error_response(s, c, 500, NULL, false, head);
		c->close_after = true;
		return;
	}
	compose(s, &c->out, s->reply.status, s->reply.ctype, s->reply.headers, s->reply.body.data,
		s->reply.body.len, head, keep);
	if (s->reply.body.cap > (8u << 20))
		atel__buf_free(&s->reply.body);
}

/* POST to the OTLP receiver (opts.post): the handler builds the answer in s->reply. */
static void handle_post(struct atel_http_server *s, struct conn *c, const struct atel_http_request *r, bool keep)
{
	atel__buf_reset(&s->reply.body);
	s->reply.status = 200;
	s->reply.ctype = "text/plain; charset=utf-8";
	s->reply.headers = NULL;
	s->o.post(s->o.post_arg, r, c->in + r->head_len, (size_t)r->content_length, &s->reply);
	if (s->reply.body.oom || s->reply.status < 200 || s->reply.status > 599) {
		error_response(s, c, 500, NULL, false, false);
		c->close_after = true;
		return;
	}
	compose(s, &c->out, s->reply.status, s->reply.ctype, s->reply.headers, s->reply.body.data,
		s->reply.body.len, false, keep);
	if (s->reply.body.cap > (8u << 20))
		atel__buf_free(&s->reply.body);
}

/* Routes one complete request; fills c->out (and c->body) and c->close_after. */
static void handle(struct atel_http_server *s, struct conn *c, const struct atel_http_request *r)
{
	size_t plen = r->target_len;
	const char *q = memchr(r->target, '?', r->target_len);
	bool get = !strcmp(r->method, "GET"), head = !strcmp(r->method, "HEAD");
	bool keep = r->keep_alive;
	bool is_metrics, is_health;
	enum atel_http_variant v;

	if (q)
		plen = (size_t)(q - r->target);
	is_metrics = plen == strlen(s->path) && !memcmp(r->target, s->path, plen);
	is_health = plen == 8 && !memcmp(r->target, "/healthz", 8);
	c->close_after = !keep;
	if (s->o.post && !strcmp(r->method, "POST")) {
		handle_post(s, c, r, keep);
		return;
	}
	if (s->o.post && plen > 4 && !memcmp(r->target, "/v1/", 4)) {
		error_response(s, c, 405, "Allow: POST\r\n", keep, head);
		return;
	}
	if (is_metrics && !s->o.metrics && !s->o.metrics_format)
		is_metrics = false; /* a server without /metrics (the OTLP receiver's) */
	if (s->o.api && plen > 8 && !memcmp(r->target, "/api/v1/", 8)) {
		handle_api(s, c, r, keep);
		return;
	}
	if (!is_metrics && !is_health && s->o.route) {
		handle_route(s, c, r, get, head, keep);
		return;
	}
	if (!is_metrics && !is_health) {
		error_response(s, c, 404, NULL, keep, head);
		return;
	}
	if (!get && !head) {
		error_response(s, c, 405, "Allow: GET, HEAD\r\n", keep, false);
		return;
	}
	if (is_health) {
		compose(s, &c->out, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3, head, keep);
		return;
	}
	if (!authorized(s, r)) {
		error_response(s, c, 401, "WWW-Authenticate: Bearer realm=\"atel\"\r\n", keep, head);
		return;
	}
	v = atel__http_negotiate(r, s->o.metrics_format != NULL);
	if (!s->cached[v] || now_ms() - s->cached_ms[v] >= s->o.body_reuse_ms) {
		struct shared_body *nb;
		int rc;
		atel__buf_reset(&s->body);
		if (s->o.metrics_format)
			rc = s->o.metrics_format(s->o.arg, ATEL_HTTP_VARIANT_OPENMETRICS(v) ? ATEL_PROM_OPENMETRICS
											: ATEL_PROM_TEXT,
						 &s->body);
		else
			rc = s->o.metrics(s->o.arg, &s->body);
		nb = rc < 0 || s->body.oom ? NULL
		     : ATEL_HTTP_VARIANT_GZIP(v) ? gzip_body(s->body.data, s->body.len)
						  : plain_body(s->body.data, s->body.len);
		if (!nb) {
			error_response(s, c, 500, NULL, false, head);
			c->close_after = true;
			return;
		}
		body_unref(s->cached[v]);
		s->cached[v] = nb;
		s->cached_ms[v] = now_ms();
		/* a huge scrape must not pin its peak size in the scratch buffer forever */
		if (s->body.cap > (8u << 20))
			atel__buf_free(&s->body);
	}
	compose(s, &c->out, 200, ATEL_HTTP_VARIANT_OPENMETRICS(v) ? ATEL_OPENMETRICS_CONTENT_TYPE : ATEL_PROM_CONTENT_TYPE,
		ATEL_HTTP_VARIANT_GZIP(v) ? "Content-Encoding: gzip\r\nVary: Accept, Accept-Encoding\r\n"
					  : "Vary: Accept, Accept-Encoding\r\n",
		NULL, s->cached[v]->len, true, keep);
	atomic_fetch_add_explicit(&s->scrapes[v], 1, memory_order_relaxed);
	if (!head) {
		c->body = s->cached[v];
		c->body->refs++;
	}
}

static void conn_close(struct atel_http_server *s, struct conn *c)
{
	uint32_t slot = c->slot;

	epoll_ctl(s->efd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	atel__buf_free(&c->out);
	body_unref(c->body);
	s->conns[slot] = s->conns[--s->nconns];
	s->conns[slot]->slot = slot;
	free(c);
}

static void set_events(struct atel_http_server *s, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	epoll_ctl(s->efd, EPOLL_CTL_MOD, c->fd, &e);
}

static void start_write(struct atel_http_server *s, struct conn *c)
{
	c->st = C_WRITE;
	c->out_off = 0;
	c->deadline_ms = now_ms() + s->o.write_timeout_ms;
	set_events(s, c, EPOLLOUT);
}

/* Tries to parse and answer the buffered request. */
static void try_request(struct atel_http_server *s, struct conn *c)
{
	struct atel_http_request r;
	long n;

	if (c->need == 0) {
		n = atel__http_parse(c->in, c->in_len, &s->o.limits, &r);
		if (n < 0) {
			error_response(s, c, (int)-n, NULL, false, false);
			c->close_after = true;
			start_write(s, c);
			return;
		}
		if (n == 0)
			return;
		c->need = n;
		if (r.chunked) {
			c->chunked = true;
			c->ck_pos = c->ck_out = r.head_len;
		}
	}
	if (c->chunked) {
		size_t head_len = (size_t)c->need; /* a chunked head has no Content-Length */
		int k = atel__http_dechunk(c->in, c->in_len, head_len, &c->ck_pos, &c->ck_out, s->o.limits.max_body);

		if (k < 0) {
			c->chunked = false;
			error_response(s, c, -k, NULL, false, false);
			c->close_after = true;
			start_write(s, c);
			return;
		}
		if (k == 0) {
			/* keep the buffer at head + decoded body + the chunk still arriving */
			if (c->ck_pos > c->ck_out) {
				memmove(c->in + c->ck_out, c->in + c->ck_pos, c->in_len - c->ck_pos);
				c->in_len -= c->ck_pos - c->ck_out;
				c->ck_pos = c->ck_out;
			}
			return;
		}
		atel__http_parse(c->in, head_len, &s->o.limits, &r);
		r.content_length = c->ck_out - head_len;
		handle(s, c, &r);
		memmove(c->in, c->in + c->ck_pos, c->in_len - c->ck_pos);
		c->in_len -= c->ck_pos;
		c->chunked = false;
		c->need = 0;
		c->scanned = 0;
		start_write(s, c);
		return;
	}
	if (c->in_len < (size_t)c->need)
		return; /* body still arriving (it is read and discarded) */
	n = atel__http_parse(c->in, c->in_len, &s->o.limits, &r); /* pointers for this buffer */
	handle(s, c, &r);
	memmove(c->in, c->in + c->need, c->in_len - (size_t)c->need);
	c->in_len -= (size_t)c->need;
	c->need = 0;
	c->scanned = 0;
	start_write(s, c);
}

static void on_readable(struct atel_http_server *s, struct conn *c)
{
	/* with chunked bodies: plus one chunk-size line and a trailer line being read */
	size_t cap_max = s->o.limits.max_head + s->o.limits.max_body + 1 +
			 (s->o.limits.chunked_ok ? 2 * CHUNK_LINE_MAX + READ_CHUNK : 0);

	for (;;) {
		ssize_t n;

		if (c->st == C_LINGER) {
			char junk[4096];
			n = read(c->fd, junk, sizeof(junk));
			if (n > 0)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			conn_close(s, c);
			return;
		}
		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
			char *p;
			if (c->in_cap >= cap_max) {
				/* cannot happen with a consistent parser; refuse rather than grow */
				error_response(s, c, 431, NULL, false, false);
				c->close_after = true;
				start_write(s, c);
				return;
			}
			if (cap > cap_max)
				cap = cap_max;
			if (!(p = realloc(c->in, cap))) {
				conn_close(s, c);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_close(s, c);
			return;
		}
		if (c->in_len == 0 && c->need == 0)
			c->deadline_ms = now_ms() + s->o.request_timeout_ms; /* a request starts */
		c->last_ms = now_ms();
		c->in_len += (size_t)n;
		/* Reparse only when a line ended or a size limit was just crossed:
		 * a client trickling single bytes must not cost a reparse per byte. */
		if (c->need == 0) {
			size_t prev = c->scanned;
			bool lf = memchr(c->in + prev, '\n', c->in_len - prev) != NULL;
			bool big = (prev <= s->o.limits.max_uri && c->in_len > s->o.limits.max_uri) ||
				   (prev <= s->o.limits.max_head && c->in_len > s->o.limits.max_head);
			c->scanned = c->in_len;
			if (!lf && !big)
				continue;
		}
		try_request(s, c);
		if (c->st != C_READ)
			return;
	}
}

static void on_writable(struct atel_http_server *s, struct conn *c)
{
	size_t total = c->out.len + (c->body ? c->body->len : 0);

	while (c->out_off < total) {
		struct iovec iov[2];
		struct msghdr mh = { .msg_iov = iov };
		ssize_t n;

		if (c->out_off < c->out.len) {
			iov[mh.msg_iovlen].iov_base = c->out.data + c->out_off;
			iov[mh.msg_iovlen++].iov_len = c->out.len - c->out_off;
		}
		if (c->body) {
			size_t boff = c->out_off > c->out.len ? c->out_off - c->out.len : 0;
			iov[mh.msg_iovlen].iov_base = c->body->data + boff;
			iov[mh.msg_iovlen++].iov_len = c->body->len - boff;
		}
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_close(s, c);
			return;
		}
		c->out_off += (size_t)n;
	}
	body_unref(c->body);
	c->body = NULL;
	if (c->out.cap > (1u << 20))
		atel__buf_free(&c->out);
	else
		atel__buf_reset(&c->out);
	if (c->close_after) {
		shutdown(c->fd, SHUT_WR);
		c->st = C_LINGER;
		c->deadline_ms = now_ms() + LINGER_MS;
		set_events(s, c, EPOLLIN);
		return;
	}
	c->st = C_READ;
	c->last_ms = now_ms();
	c->deadline_ms = now_ms() + (c->in_len ? s->o.request_timeout_ms : s->o.idle_timeout_ms);
	set_events(s, c, EPOLLIN);
	if (c->in_len) /* a pipelined request is already here */
		try_request(s, c);
}

static void reject_conn(struct atel_http_server *s, int fd)
{
#define REJECT_BODY "503 Service Unavailable: too many connections\n"
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
				  "Connection: close\r\nRetry-After: 1\r\nContent-Length: 46\r\n\r\n" REJECT_BODY;
	_Static_assert(sizeof(REJECT_BODY) - 1 == 46, "Content-Length of the 503 body");
	ssize_t n;

	/* counted first: whoever reads the 503 sees it counted */
	count_code(s, 503);
	atomic_fetch_add_explicit(&s->rejected, 1, memory_order_relaxed);
	/* best effort: the socket buffer of a fresh connection takes this whole */
	n = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	shutdown(fd, SHUT_WR);
	close(fd);
}

/* The peer as 16 bytes (IPv4 mapped) and whether it is a loopback address. */
static void peer_of(const struct sockaddr_storage *ss, unsigned char out[16], bool *remote)
{
	memset(out, 0, 16);
	*remote = true;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ss;

		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a->sin_addr, 4);
		*remote = out[12] != 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ss;

		memcpy(out, &a->sin6_addr, 16);
		if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
			*remote = false;
		else if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			*remote = out[12] != 127;
	} else {
		*remote = false; /* AF_UNIX and the like: local */
	}
}

/*
 * Makes room for a new connection (hardening, issue 12): the oldest idle
 * connection (nothing of a request pending), else the oldest whose request
 * is still arriving; among those of `peer` only if same_peer. Connections
 * being answered are never cut. @return true if one was closed.
 */
static bool evict_one(struct atel_http_server *s, const unsigned char *peer)
{
	struct conn *best = NULL;
	int best_rank = 3;

	for (uint32_t i = 0; i < s->nconns; i++) {
		struct conn *c = s->conns[i];
		int rank;

		if (peer && memcmp(c->peer, peer, 16) != 0)
			continue;
		if (c->st == C_LINGER)
			rank = 0;
		else if (c->st == C_READ && !c->in_len && !c->need)
			rank = 1;
		else if (c->st == C_READ)
			rank = 2;
		else
			continue;
		if (rank < best_rank || (rank == best_rank && c->last_ms < best->last_ms)) {
			best = c;
			best_rank = rank;
		}
	}
	if (!best)
		return false;
	if (s->o.conns_evicted)
		atomic_fetch_add_explicit(s->o.conns_evicted, 1, memory_order_relaxed);
	conn_close(s, best);
	return true;
}

static uint32_t conns_of(const struct atel_http_server *s, const unsigned char *peer)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < s->nconns; i++)
		n += memcmp(s->conns[i]->peer, peer, 16) == 0;
	return n;
}

/* Runs after the batch's connection events (evictions must not free a connection the batch still names). */
static void on_accept(struct atel_http_server *s)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event e;
		unsigned char peer[16];
		bool remote;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE: retried on the next readiness */
		}
		peer_of(&ss, peer, &remote);
		if (remote && conns_of(s, peer) >= s->o.max_conns / 2 && !evict_one(s, peer)) {
			if (s->o.conns_refused_remote)
				atomic_fetch_add_explicit(s->o.conns_refused_remote, 1, memory_order_relaxed);
			reject_conn(s, fd);
			continue;
		}
		if (s->nconns >= s->o.max_conns && !evict_one(s, NULL)) {
			reject_conn(s, fd);
			continue;
		}
		if (!(c = calloc(1, sizeof(*c)))) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->st = C_READ;
		c->deadline_ms = now_ms() + s->o.request_timeout_ms;
		c->last_ms = now_ms();
		c->remote = remote;
		memcpy(c->peer, peer, 16);
		e.events = EPOLLIN;
		e.data.ptr = c;
		if (epoll_ctl(s->efd, EPOLL_CTL_ADD, fd, &e) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->slot = s->nconns;
		s->conns[s->nconns++] = c;
	}
}

static void sweep_deadlines(struct atel_http_server *s)
{
	uint64_t now = now_ms();

	for (uint32_t i = 0; i < s->nconns;) {
		struct conn *c = s->conns[i];

		if (now < c->deadline_ms) {
			i++;
			continue;
		}
		if (c->st == C_READ && (c->in_len || c->need)) {
			/* slow-loris: a started request did not complete in time */
			atomic_fetch_add_explicit(&s->timeouts, 1, memory_order_relaxed);
			error_response(s, c, 408, NULL, false, false);
			c->close_after = true;
			c->in_len = 0;
			c->need = 0;
			start_write(s, c);
			i++;
			continue;
		}
		if (c->st == C_WRITE)
			atomic_fetch_add_explicit(&s->timeouts, 1, memory_order_relaxed);
		conn_close(s, c); /* idle keep-alive, stuck writer, or linger over */
	}
}

/* The query API's self-metrics sampler (http.h, opts.api_tick). */
static void api_tick(struct atel_http_server *s, uint64_t *next_ms)
{
	struct atel_buf b = { 0 };

	if (now_ms() < *next_ms)
		return;
	*next_ms = now_ms() + s->o.api_tick_ms;
	/* the text format (a server may have only metrics_format, see http.h) */
	if ((s->o.metrics_format ? s->o.metrics_format(s->o.arg, ATEL_PROM_TEXT, &b) : s->o.metrics(s->o.arg, &b)) == 0 &&
	    !b.oom)
		s->o.api_tick(s->o.api_arg, b.data, b.len);
	atel__buf_free(&b);
}

static void *server_main(void *arg)
{
	struct atel_http_server *s = arg;
	struct epoll_event evs[64];
	uint64_t tick_next = 0;

	while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
		int n = epoll_wait(s->efd, evs, 64, 100);
		bool accept_ready = false;

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c == NULL) {
				accept_ready = true; /* after the batch: on_accept may evict a connection named in it */
				continue;
			}
			if ((void *)c == (void *)s)
				continue; /* the stop eventfd */
			/* each connection appears at most once per batch and only
			 * its own handler closes it, so c is live here */
			if (c->st == C_WRITE && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
				on_writable(s, c);
			else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				on_readable(s, c);
		}
		if (accept_ready)
			on_accept(s);
		sweep_deadlines(s);
		if (s->o.api_tick && s->o.api_tick_ms)
			api_tick(s, &tick_next);
	}
	while (s->nconns)
		conn_close(s, s->conns[0]);
	return NULL;
}

static int do_listen(struct atel_http_server *s, char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *res = NULL, *ai;
	char portstr[8];
	int rc, fd = -1, last = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", (unsigned)s->o.port);
	rc = getaddrinfo(s->bind, portstr, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "prometheus.bind: cannot resolve \"%s\": %s", s->bind, gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		/* SO_REUSEADDR only skips TIME_WAIT after a restart; on Linux a
		 * second live listener on the port still gets EADDRINUSE */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 512) == 0)
			break;
		last = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "prometheus: cannot listen on %s:%u: %s%s", s->bind, (unsigned)s->o.port,
			 strerror(last),
			 last == EADDRINUSE ? " (another ateld or service holds the port; set prometheus.port "
					      "or ATEL_PROMETHEUS_PORT)" : "");
		return -(last ? last : EADDRNOTAVAIL);
	}
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							 : ((struct sockaddr_in *)&ss)->sin_port);
	}
	s->lfd = fd;
	return 0;
}

int atel__http_start(struct atel_http_server **out, const struct atel_http_opts *opts, char *err, size_t errlen)
{
	struct atel_http_server *s;
	struct epoll_event e;
	char dummy[8];
	int rc;

	*out = NULL;
	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	if (!opts || (!opts->metrics && !opts->metrics_format && !opts->post)) {
		snprintf(err, errlen, "http: no metrics handler");
		return -EINVAL;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	s->o = *opts;
	s->lfd = s->efd = s->wfd = -1;
	if (!s->o.max_conns)
		s->o.max_conns = 256;
	if (!s->o.request_timeout_ms)
		s->o.request_timeout_ms = 10000;
	if (!s->o.idle_timeout_ms)
		s->o.idle_timeout_ms = 30000;
	if (!s->o.write_timeout_ms)
		s->o.write_timeout_ms = 10000;
	if (!s->o.body_reuse_ms)
		s->o.body_reuse_ms = REUSE_MS_DEFAULT;
	{
		struct atel_http_limits d;
		atel__http_limits_default(&d);
		if (!s->o.limits.max_uri)
			s->o.limits.max_uri = d.max_uri;
		if (!s->o.limits.max_head)
			s->o.limits.max_head = d.max_head;
		if (!s->o.limits.max_body)
			s->o.limits.max_body = d.max_body;
		if (!s->o.limits.max_headers)
			s->o.limits.max_headers = d.max_headers;
	}
	s->bind = strdup(opts->bind && *opts->bind ? opts->bind : "127.0.0.1");
	s->path = strdup(opts->metrics_path && *opts->metrics_path ? opts->metrics_path : "/metrics");
	s->token = opts->bearer_token && *opts->bearer_token ? strdup(opts->bearer_token) : NULL;
	s->conns = calloc(s->o.max_conns, sizeof(*s->conns));
	if (!s->bind || !s->path || (opts->bearer_token && *opts->bearer_token && !s->token) || !s->conns) {
		rc = -ENOMEM;
		goto fail;
	}
	if (s->path[0] != '/') {
		snprintf(err, errlen, "prometheus.path: must start with '/', got \"%s\"", s->path);
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = do_listen(s, err, errlen)) < 0)
		goto fail;
	s->efd = epoll_create1(EPOLL_CLOEXEC);
	s->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0 || s->wfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "http: epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	e.events = EPOLLIN;
	e.data.ptr = NULL;
	epoll_ctl(s->efd, EPOLL_CTL_ADD, s->lfd, &e);
	e.data.ptr = s;
	epoll_ctl(s->efd, EPOLL_CTL_ADD, s->wfd, &e);
	if ((rc = -pthread_create(&s->thr, NULL, server_main, s)) < 0) {
		snprintf(err, errlen, "http: cannot start the server thread: %s", strerror(-rc));
		goto fail;
	}
	s->started = true;
	*out = s;
	return 0;
fail:
	atel__http_stop(s);
	return rc;
}

uint16_t atel__http_port(const struct atel_http_server *s)
{
	return s ? s->port : 0;
}

void atel__http_counters(const struct atel_http_server *s, uint64_t responses[ATEL_HTTP_CODES_N],
			 uint64_t *conns_rejected, uint64_t *timeouts)
{
	if (!s)
		return;
	if (responses)
		for (int i = 0; i < ATEL_HTTP_CODES_N; i++)
			responses[i] = atomic_load_explicit(&s->codes[i], memory_order_relaxed);
	if (conns_rejected)
		*conns_rejected = atomic_load_explicit(&s->rejected, memory_order_relaxed);
	if (timeouts)
		*timeouts = atomic_load_explicit(&s->timeouts, memory_order_relaxed);
}

void atel__http_scrapes(const struct atel_http_server *s, uint64_t out[ATEL_HTTP_VARIANTS])
{
	for (int v = 0; v < ATEL_HTTP_VARIANTS; v++)
		out[v] = s ? atomic_load_explicit(&s->scrapes[v], memory_order_relaxed) : 0;
}

void atel__http_stop(struct atel_http_server *s)
{
	if (!s)
		return;
	if (s->started) {
		uint64_t one = 1;
		atomic_store_explicit(&s->stop, true, memory_order_release);
		if (write(s->wfd, &one, sizeof(one)) < 0) {
			/* the 100 ms epoll timeout notices the flag anyway */
		}
		pthread_join(s->thr, NULL);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->efd >= 0)
		close(s->efd);
	if (s->wfd >= 0)
		close(s->wfd);
	atel__buf_free(&s->body);
	atel__buf_free(&s->reply.body);
	for (int v = 0; v < ATEL_HTTP_VARIANTS; v++)
		body_unref(s->cached[v]);
	free(s->conns);
	free(s->bind);
	free(s->path);
	free(s->token);
	free(s);
}
