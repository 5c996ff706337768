/* SPDX-License-Identifier: MIT */
/*
 * The /metrics HTTP server over real loopback sockets: routes, content type,
 * every refusal status (400/401/404/405/408/413/414/431/501/503/505),
 * keep-alive and pipelining, slow-loris timeouts, 200 concurrent
 * connections while a scrape still works, the connection cap, port in use.
 * `test_http concurrent` (suite concurrent, TSan): scrapes while another
 * thread applies samples to the aggregates the handler snapshots.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "atel_test.h"
#include "agg_helpers.h"
#include "http.h"
#include "prometheus.h"

#define BODY "# HELP x_total X\n# TYPE x_total counter\nx_total 1\n"

static atomic_int handler_calls;

static int fixed_body(void *arg, struct atel_buf *body)
{
	(void)arg;
	atomic_fetch_add(&handler_calls, 1);
	atel__buf_puts(body, BODY);
	return 0;
}

/* 32 MiB: far more than socket buffers hold, so its writer stays in WRITE */
static int big_body(void *arg, struct atel_buf *body)
{
	(void)arg;
	for (int i = 0; i < (32 << 20) / 64; i++)
		atel__buf_puts(body, "# a comment line of exactly sixty-four bytes, padding padding.\n");
	return 0;
}

static struct atel_http_server *start(struct atel_http_opts *o)
{
	struct atel_http_server *s = NULL;
	char err[256] = "";

	o->bind = "127.0.0.1";
	o->port = 0;
	if (!o->metrics)
		o->metrics = fixed_body;
	assert_int_equal(atel__http_start(&s, o, err, sizeof(err)), 0);
	assert_true(atel__http_port(s) > 0);
	return s;
}

static int dial(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the server may have answered and closed already */
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one response (headers + Content-Length body) or until EOF/timeout.
 * Returns a malloc'd NUL-terminated string ("" on timeout with no data). */
static char *read_response(int fd, int timeout_ms)
{
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *hdr_end;
		ssize_t n;

		b[len] = '\0';
		if ((hdr_end = strstr(b, "\r\n\r\n"))) {
			const char *cl = strstr(b, "Content-Length: ");
			size_t need = (size_t)(hdr_end + 4 - b) + (cl ? strtoul(cl + 16, NULL, 10) : 0);
			if (len >= need)
				return b;
		}
		if (poll(&p, 1, timeout_ms) <= 0)
			return b;
		if (len + 4096 + 1 > cap)
			b = realloc(b, cap *= 2);
		n = recv(fd, b + len, cap - len - 1, 0);
		if (n <= 0)
			return b;
		len += (size_t)n;
	}
}

/* One request on a fresh connection; returns the response. */
static char *roundtrip(uint16_t port, const char *req)
{
	int fd = dial(port);
	char *r;

	send_all(fd, req, strlen(req));
	r = read_response(fd, 10000);
	close(fd);
	return r;
}

static void expect_status(uint16_t port, const char *req, const char *status_line)
{
	char *r = roundtrip(port, req);

	if (strncmp(r, status_line, strlen(status_line)))
		fail_msg("request %.60s...: expected \"%s\", got \"%.80s\"", req, status_line, r);
	free(r);
}

/* True if the peer closes within timeout_ms (reads and discards data). */
static bool closes_within(int fd, int timeout_ms)
{
	char junk[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0)
			return false;
		ssize_t n = recv(fd, junk, sizeof(junk), 0);
		if (n <= 0)
			return true;
	}
}

/* The parser alone: exact return values, including every cut of a request
 * (a fuzzer-found read past the end at "HTTP/" is pinned here). */
static void test_parser(void **state)
{
	static const char full[] = "GET /metrics?a=b HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
				   "Content-Length: 2\r\nConnection: close\r\n\r\nab";
	struct atel_http_request r;
	size_t head = sizeof(full) - 1 - 2;

	(void)state;
	assert_int_equal(atel__http_parse(full, sizeof(full) - 1, NULL, &r), (long)sizeof(full) - 1);
	assert_string_equal(r.method, "GET");
	assert_int_equal(r.target_len, 12);
	assert_memory_equal(r.target, "/metrics?a=b", 12);
	assert_int_equal(r.minor, 1);
	assert_false(r.keep_alive);
	assert_int_equal(r.auth_len, 8);
	assert_memory_equal(r.auth, "Bearer t", 8);
	assert_int_equal(r.content_length, 2);
	assert_int_equal(r.head_len, head);
	for (size_t cut = 0; cut < head; cut++) {
		char *copy = malloc(cut + 1); /* exact size: ASan catches over-reads */
		memcpy(copy, full, cut);
		assert_int_equal(atel__http_parse(copy, cut, NULL, &r), 0);
		free(copy);
	}
	assert_int_equal(atel__http_parse("GET / HTTP/x", 12, NULL, &r), -400);
	assert_int_equal(atel__http_parse("GET / HTTP/1x", 13, NULL, &r), -400);
	assert_int_equal(atel__http_parse("GET / HTTP/3.0\r\n\r\n", 18, NULL, &r), -505);
	assert_int_equal(atel__http_parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, NULL, &r), -505);
	assert_int_equal(atel__http_parse("PRI * HT", 8, NULL, &r), 0);
	assert_int_equal(atel__http_parse("GET / HTTP/1.0\r\n\r\n", 18, NULL, &r), 18);
	assert_false(r.keep_alive);
	assert_int_equal(atel__http_parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 42, NULL, &r), 42);
	assert_true(r.keep_alive);
}

static void test_routes(void **state)
{
	struct atel_http_opts o = { 0 };
	struct atel_http_server *s;
	uint16_t port;
	char *r;

	(void)state;
	s = start(&o);
	port = atel__http_port(s);
	r = roundtrip(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	{
		char cl[64];
		snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", strlen(BODY));
		assert_non_null(strstr(r, cl));
	}
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, BODY);
	free(r);
	/* a query string does not change the route */
	expect_status(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n");
	r = roundtrip(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, "ok\n");
	free(r);
	/* HEAD: headers with the GET length, no body */
	{
		int fd = dial(port);
		char buf[4096];
		size_t len = 0;
		const char *req = "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
		send_all(fd, req, strlen(req));
		for (;;) {
			ssize_t n = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
			if (n <= 0)
				break;
			len += (size_t)n;
		}
		buf[len] = '\0';
		close(fd);
		assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
		assert_non_null(strstr(buf, "Content-Length: 50\r\n"));
		assert_int_equal(strlen(BODY), 50);
		assert_string_equal(strstr(buf, "\r\n\r\n") + 4, "");
	}
	expect_status(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 Not Found\r\n");
	r = roundtrip(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
	assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
	free(r);
	atel__http_stop(s);
}

static void test_refusals(void **state)
{
	struct atel_http_opts o = { 0 };
	struct atel_http_server *s;
	uint16_t port;
	static char big[20000]; /* static: gcc -O2 with ASan flags memset on a malloc result it assumes may be empty */
	uint64_t codes[ATEL_HTTP_CODES_N];

	(void)state;
	s = start(&o);
	port = atel__http_port(s);
	expect_status(port, "GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n");
	expect_status(port, "GET metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ");
	expect_status(port, "GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");             /* no Host */
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", "HTTP/1.1 400 "); /* space before ':' */
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "HTTP/1.1 400 ");
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		      "HTTP/1.1 400 ");
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
		      "HTTP/1.1 413 Content Too Large\r\n");
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
		      "HTTP/1.1 501 Not Implemented\r\n");
	expect_status(port, "GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 ");
	/* the HTTP/2 connection preface gets the documented 505 (hardening, issue 12) */
	expect_status(port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.1 505 ");

	/* 414: a 3000-byte request-target */
	strcpy(big, "GET /");
	memset(big + 5, 'a', 3000);
	strcpy(big + 3005, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_status(port, big, "HTTP/1.1 414 URI Too Long\r\n");
	/* 431: a 10000-byte header section */
	strcpy(big, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(big + strlen(big), 'b', 10000);
	strcpy(big + 39 + 10000, "\r\n\r\n");
	expect_status(port, big, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	/* 431: too many header fields */
	strcpy(big, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	for (int i = 0; i < 100; i++)
		strcat(big, "A: b\r\n");
	strcat(big, "\r\n");
	expect_status(port, big, "HTTP/1.1 431 ");


	/* the server still serves after all that */
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n");
	atel__http_counters(s, codes, NULL, NULL);
	assert_int_equal(codes[0], 1);          /* 200 */
	assert_int_equal(codes[1], 6);          /* 400 */
	atel__http_stop(s);
}

static void test_bearer(void **state)
{
	struct atel_http_opts o = { .bearer_token = "s3cret", .metrics_path = "/custom" };
	struct atel_http_server *s;
	uint16_t port;
	char *r;

	(void)state;
	s = start(&o);
	port = atel__http_port(s);
	r = roundtrip(port, "GET /custom HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_non_null(strstr(r, "HTTP/1.1 401 Unauthorized\r\n"));
	assert_non_null(strstr(r, "\r\nWWW-Authenticate: Bearer realm=\"atel\"\r\n"));
	free(r);
	expect_status(port, "GET /custom HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n", "HTTP/1.1 401 ");
	expect_status(port, "GET /custom HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cre\r\n\r\n", "HTTP/1.1 401 ");
	expect_status(port, "GET /custom HTTP/1.1\r\nHost: x\r\nAuthorization: Basic s3cret\r\n\r\n", "HTTP/1.1 401 ");
	expect_status(port, "GET /custom HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
		      "HTTP/1.1 200 OK\r\n");
	expect_status(port, "GET /custom HTTP/1.1\r\nHost: x\r\nauthorization: bearer s3cret\r\n\r\n",
		      "HTTP/1.1 200 OK\r\n");
	/* liveness probes need no token; the default path is not served */
	expect_status(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n");
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
		      "HTTP/1.1 404 ");
	atel__http_stop(s);
}

static void test_keepalive_pipelining(void **state)
{
	struct atel_http_opts o = { 0 };
	struct atel_http_server *s;
	const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
	char *r;
	int fd;

	(void)state;
	s = start(&o);
	fd = dial(atel__http_port(s));
	send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	r = read_response(fd, 10000);
	assert_non_null(strstr(r, "Connection: keep-alive"));
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, BODY);
	free(r);
	/* two pipelined requests on the same connection, answered in order */
	send_all(fd, two, strlen(two));
	r = read_response(fd, 10000);
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, "ok\n");
	free(r);
	r = read_response(fd, 10000);
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, BODY);
	free(r);
	/* Connection: close is honoured */
	send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 53);
	r = read_response(fd, 10000);
	assert_non_null(strstr(r, "Connection: close"));
	free(r);
	assert_true(closes_within(fd, 10000));
	close(fd);
	atel__http_stop(s);
}

static void test_slowloris(void **state)
{
	struct atel_http_opts o = { .request_timeout_ms = 300, .idle_timeout_ms = 300 };
	struct atel_http_server *s;
	uint64_t timeouts = 0;
	int fd, sent = 0;
	char *r;

	(void)state;
	s = start(&o);
	/* a request that stops halfway gets 408 and is closed */
	fd = dial(atel__http_port(s));
	send_all(fd, "GET /metrics HTTP/1.1\r\nHo", 25);
	r = read_response(fd, 10000);
	assert_non_null(strstr(r, "HTTP/1.1 408 Request Timeout\r\n"));
	free(r);
	assert_true(closes_within(fd, 10000));
	close(fd);
	/* a client trickling one byte every 20 ms never completes a request:
	 * the deadline is per request, not per byte, so the server cuts it off */
	fd = dial(atel__http_port(s));
	for (; sent < 1000; sent++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (send(fd, "X", 1, MSG_NOSIGNAL) != 1)
			break;
		if (poll(&p, 1, 20) > 0)
			break;
	}
	assert_true(sent < 1000); /* cut off long before 20 s of trickling */
	r = read_response(fd, 10000);
	assert_non_null(strstr(r, "408"));
	free(r);
	close(fd);
	/* an idle keep-alive connection is closed without a response */
	fd = dial(atel__http_port(s));
	assert_true(closes_within(fd, 10000));
	close(fd);
	atel__http_counters(s, NULL, NULL, &timeouts);
	assert_int_equal(timeouts, 2);
	atel__http_stop(s);
}

static void test_many_connections(void **state)
{
	enum { N = 200 };
	/* generous: 200 dials on a loaded 2-core machine must not hit the 10 s default */
	struct atel_http_opts o = { .request_timeout_ms = 60000 };
	struct atel_http_server *s;
	int fds[N], fd;
	char *r;

	(void)state;
	s = start(&o);
	/* 200 concurrent connections, each with half a request */
	for (int i = 0; i < N; i++) {
		fds[i] = dial(atel__http_port(s));
		send_all(fds[i], "GET /metrics HTTP/1.1\r\n", 23);
	}
	/* a scrape on a fresh connection is served meanwhile */
	r = roundtrip(atel__http_port(s), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, BODY);
	free(r);
	/* then every one of them completes and gets its 200 */
	for (int i = 0; i < N; i++)
		send_all(fds[i], "Host: x\r\n\r\n", 11);
	for (int i = 0; i < N; i++) {
		r = read_response(fds[i], 20000);
		if (!strstr(r, "HTTP/1.1 200 OK\r\n"))
			fail_msg("connection %d: %.60s", i, r);
		free(r);
		close(fds[i]);
	}
	atel__http_stop(s);

	/* the cap (hardening, issue 12): beyond max_conns the oldest idle
	 * connection is cut to make room, so a new scrape is still answered */
	{
		_Atomic uint64_t evicted = 0;
		char c1;

		o = (struct atel_http_opts){ .max_conns = 8, .conns_evicted = &evicted };
		s = start(&o);
		for (int i = 0; i < 8; i++) {
			fds[i] = dial(atel__http_port(s));
			send_all(fds[i], "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34);
			r = read_response(fds[i], 10000);
			assert_non_null(strstr(r, "200 OK"));
			free(r);
		}
		fd = dial(atel__http_port(s));
		send_all(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 53);
		r = read_response(fd, 10000);
		assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
		free(r);
		close(fd);
		assert_int_equal(atomic_load(&evicted), 1);
		/* the oldest idle one (the first) was cut: it reads end of file */
		assert_int_equal(read(fds[0], &c1, 1), 0);
		for (int i = 0; i < 8; i++)
			close(fds[i]);
		atel__http_stop(s);
	}

	/* a connection being answered is never cut: with all eight stuck
	 * receiving a large /metrics body they do not read, the ninth gets 503 */
	o = (struct atel_http_opts){ .max_conns = 8, .metrics = big_body, .body_reuse_ms = 600000 };
	s = start(&o);
	for (int i = 0; i < 8; i++) {
		int small = 4096;

		fds[i] = dial(atel__http_port(s));
		setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
		send_all(fds[i], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	}
	/* the server is writing to all eight once it has sent the first bytes to each */
	for (int i = 0; i < 8; i++) {
		char c1;

		assert_int_equal(read(fds[i], &c1, 1), 1);
	}
	fd = dial(atel__http_port(s));
	r = read_response(fd, 10000);
	assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
	free(r);
	close(fd);
	{
		uint64_t rejected = 0;
		atel__http_counters(s, NULL, &rejected, NULL);
		assert_int_equal(rejected, 1);
	}
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	atel__http_stop(s);
}

/* Concurrent scrapes share one encoded body: one handler call serves many
 * clients, including ones that have not read their response yet. */
static void test_shared_body(void **state)
{
	struct atel_http_opts o = { .body_reuse_ms = 600000 };
	struct atel_http_server *s;
	int fds[10];
	int before;

	(void)state;
	s = start(&o);
	before = atomic_load(&handler_calls);
	for (int i = 0; i < 10; i++) {
		fds[i] = dial(atel__http_port(s));
		send_all(fds[i], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34);
	}
	for (int i = 9; i >= 0; i--) {
		char *r = read_response(fds[i], 10000);
		assert_string_equal(strstr(r, "\r\n\r\n") + 4, BODY);
		free(r);
		close(fds[i]);
	}
	assert_int_equal(atomic_load(&handler_calls) - before, 1);
	atel__http_stop(s);
}

static void test_port_in_use(void **state)
{
	struct atel_http_opts o = { 0 };
	struct atel_http_server *s, *t = NULL;
	char err[256] = "";

	(void)state;
	s = start(&o);
	o.port = atel__http_port(s);
	assert_int_equal(atel__http_start(&t, &o, err, sizeof(err)), -EADDRINUSE);
	assert_null(t);
	assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(err, "Address already in use"));
	assert_non_null(strstr(err, "prometheus.port"));
	o.port = 0;
	o.bind = "192.0.2.1"; /* TEST-NET-1: not an address of this machine */
	assert_int_equal(atel__http_start(&t, &o, err, sizeof(err)), -EADDRNOTAVAIL);
	assert_non_null(strstr(err, "cannot listen on 192.0.2.1:0"));
	atel__http_stop(s);
}

/* ---- concurrent: scrapes while samples are applied -------------------------------- */

struct conc {
	struct atel_agg *agg;
	atomic_bool stop;
};

static int agg_body(void *arg, struct atel_buf *body)
{
	struct conc *c = arg;
	struct atel_agg_snapshot *snap;
	int rc = atel__agg_snapshot(c->agg, &snap);

	if (rc)
		return rc;
	rc = atel__prom_encode(body, snap, NULL, NULL, NULL);
	atel__agg_snapshot_free(snap);
	return rc;
}

static void *applier(void *arg)
{
	struct conc *c = arg;
	static const char *const kv[] = { "tool", "Read" };
	struct atel_dec_series ser;
	uint64_t i = 0;

	th_series(&ser, ATEL_MT_COUNTER, "tool_calls_total", 1, kv, 0, NULL);
	while (!atomic_load(&c->stop))
		th_sample(c->agg, &ser, 1, 0, ++i);
	return NULL;
}

static void test_concurrent_scrapes(void **state)
{
	struct conc c = { 0 };
	struct atel_http_opts o = { .metrics = agg_body, .arg = &c };
	struct atel_http_server *s;
	pthread_t t;
	double last = -1;

	(void)state;
	assert_int_equal(atel__agg_new(&c.agg, 100), 0);
	s = start(&o);
	assert_int_equal(pthread_create(&t, NULL, applier, &c), 0);
	for (int i = 0; i < 20; i++) {
		char *r = roundtrip(atel__http_port(s), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
		const char *v = strstr(r, "\ntool_calls_total{tool=\"Read\"} ");
		double x;
		if (!v) { /* the applier may not have run yet */
			free(r);
			continue;
		}
		x = strtod(v + 31, NULL);
		assert_true(x >= last); /* monotonic across scrapes */
		last = x;
		free(r);
	}
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	atel__http_stop(s);
	atel__agg_free(c.agg);
}

/* Content negotiation (pure): Prometheus' own Accept picks OpenMetrics, q
 * values decide, gzip needs a non-zero q, and a server without
 * metrics_format never answers OpenMetrics. */
static enum atel_http_variant neg(const char *headers, bool om_ok)
{
	char req[1024];
	struct atel_http_request r;

	snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n", headers);
	assert_true(atel__http_parse(req, strlen(req), NULL, &r) > 0);
	return atel__http_negotiate(&r, om_ok);
}

static void test_negotiate(void **state)
{
	static const char prom[] = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
				   "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
				   "Accept-Encoding: gzip\r\n";

	(void)state;
	assert_int_equal(neg("", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg(prom, true), ATEL_HTTP_OPENMETRICS_GZIP);
	assert_int_equal(neg(prom, false), ATEL_HTTP_TEXT_GZIP);
	assert_int_equal(neg("Accept: application/openmetrics-text\r\n", true), ATEL_HTTP_OPENMETRICS);
	assert_int_equal(neg("Accept: application/openmetrics-text; version=2.0.0\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept: text/plain, application/openmetrics-text;q=1\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept: text/plain;q=0.2, APPLICATION/OpenMetrics-Text;q=0.3\r\n", true),
			 ATEL_HTTP_OPENMETRICS);
	assert_int_equal(neg("Accept: application/openmetrics-text;q=0\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept: application/openmetrics-text;q=abc\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept-Encoding: gzip;q=0\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept-Encoding: deflate, *;q=0.5\r\n", true), ATEL_HTTP_TEXT_GZIP);
	assert_int_equal(neg("Accept-Encoding: *, gzip;q=0\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept-Encoding: identity\r\n", true), ATEL_HTTP_TEXT);
	assert_int_equal(neg("Accept-Encoding: x-gzip;q=0.001\r\n", true), ATEL_HTTP_TEXT_GZIP);
	assert_int_equal(neg("Accept: ,;,=;q=,\r\nAccept-Encoding: ;;,,gzip;;\r\n", true), ATEL_HTTP_TEXT_GZIP);
}

#define OM_BODY "# TYPE x counter\nx_total 1\n# EOF\n"

static int format_body(void *arg, int format, struct atel_buf *body)
{
	(void)arg;
	atel__buf_puts(body, format == ATEL_PROM_OPENMETRICS ? OM_BODY : BODY);
	return 0;
}

/* The server: gzip bodies inflate to the text, OpenMetrics gets its content
 * type, and every response is counted per variant. */
static void test_variants(void **state)
{
	struct atel_http_opts o = { .metrics_format = format_body };
	struct atel_http_server *s;
	uint64_t sc[ATEL_HTTP_VARIANTS];
	uint16_t port;
	char *r, *body, cl[64];
	unsigned char out[4096];
	z_stream z;

	(void)state;
	o.metrics = fixed_body;
	s = start(&o);
	port = atel__http_port(s);
	r = roundtrip(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
	assert_non_null(strstr(r, "\r\nContent-Encoding: gzip\r\n"));
	assert_non_null(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	body = strstr(r, "\r\n\r\n") + 4;
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = (unsigned char *)body;
	z.avail_in = (uInt)strtoul(strstr(r, "Content-Length: ") + 16, NULL, 10);
	z.next_out = out;
	z.avail_out = (uInt)sizeof(out);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, strlen(BODY));
	assert_memory_equal(out, BODY, strlen(BODY));
	inflateEnd(&z);
	free(r);
	r = roundtrip(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n");
	assert_non_null(strstr(r, "\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"));
	assert_null(strstr(r, "Content-Encoding"));
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(OM_BODY));
	assert_non_null(strstr(r, cl));
	assert_string_equal(strstr(r, "\r\n\r\n") + 4, OM_BODY);
	free(r);
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n");
	expect_status(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text\r\n"
			    "Accept-Encoding: gzip\r\n\r\n", "HTTP/1.1 200 OK\r\n");
	atel__http_scrapes(s, sc);
	assert_int_equal(sc[ATEL_HTTP_TEXT], 1);
	assert_int_equal(sc[ATEL_HTTP_TEXT_GZIP], 1);
	assert_int_equal(sc[ATEL_HTTP_OPENMETRICS], 1);
	assert_int_equal(sc[ATEL_HTTP_OPENMETRICS_GZIP], 1);
	atel__http_stop(s);
}


int main(int argc, char **argv)
{
	const struct CMUnitTest unit[] = {
		cmocka_unit_test(test_parser),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_keepalive_pipelining),
		cmocka_unit_test(test_slowloris),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_shared_body),
		cmocka_unit_test(test_port_in_use),
	};
	const struct CMUnitTest conc[] = {
		cmocka_unit_test(test_concurrent_scrapes),
	};

	if (argc > 1 && !strcmp(argv[1], "concurrent"))
		return ATEL_TEST_RUN(conc, NULL, NULL);
	return ATEL_TEST_RUN(unit, NULL, NULL);
}
