/* SPDX-License-Identifier: MIT */
/*
 * w3c_service: the test service that the W3C Trace Context conformance
 * harness (github.com/w3c/trace-context, test/test.py) drives, built on
 * libatel's propagation.
 *
 *   w3c_service [PORT]      listen on 127.0.0.1:PORT (default 5000; 0 picks
 *                           one); prints "listening on PORT" and serves until
 *                           killed.
 *
 * For a POST whose body is a JSON array of {"url": ..., "arguments": [...]},
 * it extracts traceparent/tracestate from the request (one traceparent
 * header, any number of tracestate headers joined with ','), continues the
 * trace in a SERVER span (a new trace if the context is missing or invalid),
 * and for each element POSTs `arguments` as JSON to `url` from a CLIENT child
 * span, sending that span's traceparent and the tracestate. Replies 200 "ok".
 * One thread per connection, so a chain may call back into the service.
 * Spans are recorded through libatel into $ATEL_SHM when a sidecar runs.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "atel.h"

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (1024 * 1024)

struct request {
	char *head;    /* NUL-terminated header block */
	char *body;
	size_t body_len;
	int n_traceparent;
	char traceparent[256];
	char tracestate[32 * 1024];
	size_t ts_len;
};

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
	(void)p;
	(void)u;
	return sz * n;
}

static void call_out(const atel_span *parent, const char *url, const cJSON *args)
{
	atel_span span = atel_span_start(parent, "w3c-callout", ATEL_SPAN_CLIENT);
	char tp[64], ts[600], hdr_tp[128], hdr_ts[700];
	struct curl_slist *h = NULL;
	char *body = args ? cJSON_PrintUnformatted(args) : strdup("[]");
	CURL *c = curl_easy_init();
	long code = 0;

	atel_span_set_str(&span, "http.url", url);
	if (c && body && atel_propagate(&span, tp, sizeof(tp)) > 0) {
		snprintf(hdr_tp, sizeof(hdr_tp), "traceparent: %s", tp);
		h = curl_slist_append(h, hdr_tp);
		if (atel_propagate_tracestate(&span, ts, sizeof(ts)) > 0) {
			snprintf(hdr_ts, sizeof(hdr_ts), "tracestate: %s", ts);
			h = curl_slist_append(h, hdr_ts);
		}
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		if (curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	}
	atel_span_set_int(&span, "http.status_code", code);
	atel_span_end(&span, code >= 200 && code < 300 ? ATEL_STATUS_OK : ATEL_STATUS_ERROR, NULL);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(body);
}

static void handle_calls(const struct request *rq)
{
	atel_span_context ctx;
	int valid = rq->n_traceparent == 1 && atel_extract(rq->traceparent, &ctx) == 0;
	atel_span span;
	cJSON *arr = rq->body_len ? cJSON_ParseWithLength(rq->body, rq->body_len) : NULL;
	const cJSON *it;

	/* tracestate only means something beside a valid traceparent; an invalid list is dropped */
	if (valid && rq->ts_len)
		(void)atel_extract_tracestate(rq->tracestate, &ctx);
	span = atel_trace_continue(valid ? &ctx : NULL, "w3c-service", ATEL_SPAN_SERVER);
	if (cJSON_IsArray(arr)) {
		cJSON_ArrayForEach(it, arr)
		{
			const cJSON *url = cJSON_GetObjectItemCaseSensitive(it, "url");
			const cJSON *args = cJSON_GetObjectItemCaseSensitive(it, "arguments");
			if (cJSON_IsString(url) && url->valuestring)
				call_out(&span, url->valuestring, args);
		}
	}
	atel_span_end(&span, ATEL_STATUS_OK, NULL);
	cJSON_Delete(arr);
}

/* Parses header lines: counts traceparent headers, joins tracestate ones. */
static void parse_headers(struct request *rq, size_t *content_length)
{
	char *save = NULL, *line = strtok_r(rq->head, "\r\n", &save);

	*content_length = 0;
	for (line = line ? strtok_r(NULL, "\r\n", &save) : NULL; line; line = strtok_r(NULL, "\r\n", &save)) {
		char *colon = strchr(line, ':'), *v;
		if (!colon)
			continue;
		*colon = '\0';
		v = colon + 1;
		if (!strcasecmp(line, "content-length")) {
			*content_length = strtoul(v, NULL, 10);
		} else if (!strcasecmp(line, "traceparent")) {
			rq->n_traceparent++;
			snprintf(rq->traceparent, sizeof(rq->traceparent), "%s", v);
		} else if (!strcasecmp(line, "tracestate")) {
			size_t n = strlen(v);
			if (rq->ts_len + n + 2 < sizeof(rq->tracestate)) {
				if (rq->ts_len)
					rq->tracestate[rq->ts_len++] = ',';
				memcpy(rq->tracestate + rq->ts_len, v, n + 1);
				rq->ts_len += n;
			}
		}
	}
}

static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
				 "Connection: close\r\n\r\nok";
	static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	struct request *rq = calloc(1, sizeof(*rq));
	char *buf = malloc(MAX_HEAD + MAX_BODY + 1), *end = NULL;
	size_t have = 0, cl = 0, hlen;
	ssize_t n;

	if (!rq || !buf)
		goto out;
	while (!end && have < MAX_HEAD && (n = read(fd, buf + have, MAX_HEAD - have)) > 0) {
		have += (size_t)n;
		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	if (!end) {
		(void)!write(fd, bad, sizeof(bad) - 1);
		goto out;
	}
	*end = '\0';
	hlen = (size_t)(end - buf) + 4;
	rq->head = buf;
	parse_headers(rq, &cl);
	if (cl > MAX_BODY) {
		(void)!write(fd, bad, sizeof(bad) - 1);
		goto out;
	}
	while (have - hlen < cl && (n = read(fd, buf + have, hlen + cl - have)) > 0)
		have += (size_t)n;
	rq->body = buf + hlen;
	rq->body_len = have - hlen < cl ? have - hlen : cl;
	if (strncmp(buf, "POST ", 5) == 0)
		handle_calls(rq);
	(void)!write(fd, ok, sizeof(ok) - 1);
out:
	close(fd);
	free(buf);
	free(rq);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int one = 1, lfd;

	signal(SIGPIPE, SIG_IGN);
	atel_init(NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	a.sin_port = htons((uint16_t)(argc > 1 ? atoi(argv[1]) : 5000));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen)) {
		fprintf(stderr, "w3c_service: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	printf("listening on %u\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		pthread_t th;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pthread_create(&th, NULL, serve, (void *)(intptr_t)fd) == 0)
			pthread_detach(th);
		else
			close(fd);
	}
	return 0;
}
