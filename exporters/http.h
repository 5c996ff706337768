/* SPDX-License-Identifier: MIT */
/*
 * http.h - the small HTTP/1.1 server behind /metrics and /healthz.
 *
 * One thread, one epoll loop, non-blocking sockets. It serves scrapes from
 * aggregate snapshots and never touches the drain. Hostile clients are
 * bounded: a request line longer than the URI limit gets 414, a header
 * section beyond its limit 431, a body beyond its limit 413, malformed input
 * 400, an unsupported transfer coding 501, HTTP/2+ 505, a request that is not
 * complete within request_timeout_ms 408 (slow-loris), and connections beyond
 * max_conns 503. Error responses close the connection after a short
 * lingering read so the client sees the status instead of a reset.
 *
 * Why hand-written: the Debian-packaged HTTP server libraries (libmicrohttpd,
 * libevent's evhttp, civetweb, libsoup) each bring their own threading
 * model, allocator and dependency chain into a sidecar whose only HTTP job is
 * two GET routes; the parser below is ~250 lines, is fuzzed
 * (tests/exporters/fuzz_http_request.c) and enforces exactly the limits above.
 */
#ifndef ATEL_HTTP_H
#define ATEL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

/* HTTP status codes the server counts per response (atel_http_responses_total). */
#define ATEL_HTTP_CODES_N 13
extern const int atel__http_codes[ATEL_HTTP_CODES_N];

struct atel_http_limits {
	size_t max_uri;           /* request-target bytes (414 beyond); default 2048 */
	size_t max_head;          /* request line + header section bytes (431 beyond); default 8192 */
	size_t max_body;          /* Content-Length accepted and discarded (413 beyond); default 8192 */
	uint32_t max_headers;     /* header fields (431 beyond); default 64 */
	bool chunked_ok;          /* accept "Transfer-Encoding: chunked" request bodies (the OTLP
				   * receiver: Node's OTLP exporters stream them); else 501 */
};

/* A parsed request head. Pointers point into the caller's buffer. */
struct atel_http_request {
	char method[16];
	const char *target;       /* origin-form, e.g. "/metrics?x=1" */
	size_t target_len;
	int minor;                /* HTTP/1.<minor> */
	bool keep_alive;          /* after version defaults and Connection tokens */
	const char *auth;         /* Authorization value, NULL if absent */
	size_t auth_len;
	const char *accept;       /* Accept value (the last one), NULL if absent */
	size_t accept_len;
	const char *accept_enc;   /* Accept-Encoding value (the last one), NULL if absent */
	size_t accept_enc_len;
	uint64_t content_length;
	size_t head_len;          /* bytes of request line + headers + blank line */
	/* the OTLP receiver's (issue 19) */
	const char *content_type; /* Content-Type value, NULL if absent */
	size_t content_type_len;
	const char *content_enc;  /* Content-Encoding value, NULL if absent */
	size_t content_enc_len;
	bool chunked;             /* Transfer-Encoding: chunked (only with limits.chunked_ok); the
				   * body follows the head in chunks: see atel__http_dechunk */
};

/*
 * Parses one request head at buf[0..len) (not NUL-terminated, untrusted).
 * @return once the head is complete, the full request length (head_len +
 * content_length; the body may still be arriving: wait for that many bytes);
 * 0 if the head is incomplete; or -status for a request that must be refused
 * (-400, -413, -414, -431, -501, -505). Pure function; thread-safe.
 */
long atel__http_parse(const char *buf, size_t len, const struct atel_http_limits *lim,
		      struct atel_http_request *req);

/*
 * Decodes chunked framing (RFC 9112 7.1) in place: buf[*pos..len) holds
 * the chunks not yet decoded; each complete chunk's data is moved down to
 * buf[*out..) (so *out <= *pos always; callers start both at the head's
 * end). Chunk extensions and trailer fields are skipped (each line at most
 * 4096 bytes). @return 1 when the last chunk and the trailers are consumed
 * (*pos is just past them; the body is buf[head_len..*out)), 0 if more bytes
 * are needed, -400 for malformed framing, -413 if the body would exceed
 * max_body bytes (counted from body0). Pure function over untrusted bytes.
 */
int atel__http_dechunk(char *buf, size_t len, size_t body0, size_t *pos, size_t *out, size_t max_body);

/*
 * What a /metrics response is made of: the body format (Prometheus text
 * 0.0.4 or OpenMetrics 1.0.0) and its content coding (identity or gzip).
 * Counted per variant in atel_http_scrapes_total{variant}.
 */
enum atel_http_variant {
	ATEL_HTTP_TEXT = 0,
	ATEL_HTTP_TEXT_GZIP = 1,
	ATEL_HTTP_OPENMETRICS = 2,
	ATEL_HTTP_OPENMETRICS_GZIP = 3,
	ATEL_HTTP_VARIANTS = 4,
};
#define ATEL_HTTP_VARIANT_GZIP(v) (((v) & 1) != 0)
#define ATEL_HTTP_VARIANT_OPENMETRICS(v) ((v) >= ATEL_HTTP_OPENMETRICS)
extern const char *const atel__http_variant_names[ATEL_HTTP_VARIANTS]; /* "text", "text_gzip", ... */

/*
 * Content negotiation for /metrics from the request's Accept and
 * Accept-Encoding (RFC 9110 12.5; q-values honoured): OpenMetrics when
 * `application/openmetrics-text` (version 1.0.0, 0.0.1 or none) is
 * accepted with a higher q than text/plain (or its wildcards) and
 * openmetrics_ok; gzip when `gzip` (or `*`) has a non-zero q. Without the
 * headers: text, identity. Pure function over untrusted bytes.
 */
enum atel_http_variant atel__http_negotiate(const struct atel_http_request *r, bool openmetrics_ok);

/* Fills lim with the defaults above. */
void atel__http_limits_default(struct atel_http_limits *lim);

/* What an extra route answers (atel_http_opts.route). */
struct atel_http_reply {
	int status;                /* one of atel__http_codes */
	const char *ctype;         /* static string */
	const char *headers;       /* static extra header lines, each ending in \r\n; may be NULL */
	struct atel_buf body;      /* owned by the server (scratch reused between requests) */
};

struct atel_http_opts {
	const char *bind;                /* "127.0.0.1" if NULL; numeric IPv4/IPv6 or a host name */
	uint16_t port;                   /* 0: an ephemeral port (tests); see atel__http_port */
	const char *metrics_path;        /* "/metrics" if NULL */
	const char *bearer_token;        /* NULL/"": no auth; else /metrics needs "Authorization: Bearer <t>" */
	uint32_t max_conns;              /* 256 if 0 */
	uint32_t request_timeout_ms;     /* 10000 if 0: a whole request must arrive within this */
	uint32_t idle_timeout_ms;        /* 30000 if 0: keep-alive idle connection */
	uint32_t write_timeout_ms;       /* 10000 if 0: the client must take the response within this */
	uint32_t body_reuse_ms;          /* 100 if 0: scrapes within this share one encoded body (one
					  * snapshot and one copy in memory however many clients read it) */
	struct atel_http_limits limits;  /* zero fields take the defaults */
	/*
	 * Produces the /metrics body into body (empty on entry). Called on the
	 * server thread only. @return 0, or a negative errno (answered with 500).
	 */
	int (*metrics)(void *arg, struct atel_buf *body);
	/*
	 * Optional: produces the body in a format (enum atel_prom_format,
	 * exporters/encode/prometheus.h). When set, it is used instead of
	 * metrics and OpenMetrics can be negotiated; without it every scrape
	 * gets Prometheus text. Server thread only; @return as metrics.
	 */
	int (*metrics_format)(void *arg, int format, struct atel_buf *body);
	void *arg;
	/*
	 * Optional (NULL: 404): answers GET and POST under /api/v1 (the
	 * Prometheus query API, consumer/promql_api.c), behind the same bearer
	 * token as /metrics. target is the request-target (path and query),
	 * body the request body (form-encoded for POST). Fills out with a JSON
	 * body. Called on the server thread, so it must bound its own time.
	 * @return the HTTP status code.
	 */
	int (*api)(void *api_arg, const char *method, const char *target, size_t target_len, const char *body,
		   size_t body_len, struct atel_buf *out);
	void *api_arg;
	/* Optional: every api_tick_ms the server thread renders the /metrics body
	 * and hands it to api_tick (the query API keeps a history of ateld's own
	 * atel_* self-metrics from it, which are not in the log). */
	void (*api_tick)(void *api_arg, const char *metrics_body, size_t len);
	uint32_t api_tick_ms;
	/* ---- extra routes (the web view, exporters/webui.h); route NULL: none ---- */
	/*
	 * Answers a GET/HEAD whose path is neither /metrics nor /healthz (nor
	 * /api/v1/..., when api is set). authed
	 * says whether the request carried the bearer token (true when none is
	 * configured). Called on the server thread only. @return 0 with rep
	 * filled (rep->body empty on entry), or -ENOENT (404).
	 */
	int (*route)(void *arg, const char *target, size_t len, bool authed, struct atel_http_reply *rep);
	void *route_arg;
	/*
	 * Optional (the OTLP receiver, exporters/otlp_receiver.h): answers every
	 * POST, whatever its path (a server with post set has no /metrics unless
	 * metrics or metrics_format is set too). body is the request body
	 * (de-chunked). Fills rep (body empty on entry; status, ctype, headers
	 * static or owned by the callee until the next call). Called on the
	 * server thread only, so it must bound its own time.
	 */
	void (*post)(void *arg, const struct atel_http_request *r, const char *body, size_t len,
		     struct atel_http_reply *rep);
	void *post_arg;
	/*
	 * Hardening (issue 12). At max_conns a new connection takes the place of
	 * the oldest idle one (no request bytes pending), else of the oldest
	 * one whose request is still arriving; one non-loopback address holds
	 * at most max_conns / 2. If set, these count (relaxed) the connections
	 * cut to make room and those refused for their address's share.
	 */
	_Atomic uint64_t *conns_evicted;
	_Atomic uint64_t *conns_refused_remote;
};

struct atel_http_server;

/*
 * Binds, listens and starts the server thread. On failure err says what
 * and where ("cannot listen on 127.0.0.1:9464: Address already in use ...").
 * @return 0 or -errno (-EADDRINUSE when the port is taken).
 */
int atel__http_start(struct atel_http_server **out, const struct atel_http_opts *opts, char *err, size_t errlen);

/* The bound port (useful with port 0). */
uint16_t atel__http_port(const struct atel_http_server *s);

/* Counters since start; thread-safe (relaxed atomics). Any pointer may be NULL. */
void atel__http_counters(const struct atel_http_server *s, uint64_t responses[ATEL_HTTP_CODES_N],
			 uint64_t *conns_rejected, uint64_t *timeouts);

/* /metrics responses sent per variant since start; thread-safe (relaxed atomics). */
void atel__http_scrapes(const struct atel_http_server *s, uint64_t out[ATEL_HTTP_VARIANTS]);

/* Stops the thread, closes every connection. NULL-safe. */
void atel__http_stop(struct atel_http_server *s);

#endif /* ATEL_HTTP_H */
