/* SPDX-License-Identifier: MIT */
/*
 * otlp_receiver.h - the OTLP/HTTP receiver of ateld (issue 19 item 2):
 * agents that use an OpenTelemetry SDK send traces (POST /v1/traces) and
 * metrics (POST /v1/metrics) to ateld, which writes them into a ring of its
 * own shared-memory segment like a producer, so they go the whole way every
 * libatel record goes (drain -> segment log -> index -> /metrics, exports,
 * `atel traces`). Off by default, bound to loopback by default
 * (consumer/config.c, section otlp_receiver).
 *
 * Delivery: a 200 answer means every accepted item is in the ring (the
 * drain logs it; a ring survives a crash of ateld in shared memory, and the
 * next ateld drains it). A request that fits in a ring is written whole or
 * not at all: when the ring has no room for it within wait_ms the answer is
 * 503 with Retry-After and nothing of it is kept, so the SDK's retry
 * neither loses nor doubles. A larger one goes in pieces ending at item
 * boundaries; items after a piece that found no room are rejected in the
 * partial success.
 * Items that cannot be stored (bad ids, empty names, unsupported metric
 * kinds, type clashes) are rejected and counted in the partial success;
 * the rest of the request is accepted. Undecodable bodies: 400 with the
 * decoder's message; unknown Content-Type or Content-Encoding: 415; bodies
 * (compressed or inflated) over max_body: 413.
 *
 * One thread: the receiver's own HTTP server thread (exporters/http.c,
 * with chunked request bodies) decodes, converts and writes the ring.
 */
#ifndef ATEL_OTLP_RECEIVER_H
#define ATEL_OTLP_RECEIVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "segment.h"
#include "state.h"

struct atel_otlp_recv_opts {
	const char *bind;                 /* "127.0.0.1" if NULL */
	uint16_t port;                    /* 0: ephemeral (tests) */
	size_t max_body;                  /* request body bytes, as sent and inflated; 4 MiB if 0 */
	const struct atel_segment *seg;   /* the segment ateld drains (written like a producer) */
	struct atel_daemon *d;            /* counters (d->stats.otlp_recv), log, stopping; may be NULL */
	uint32_t wait_ms;                 /* how long a request waits for ring room before 503; 1000 if 0 */
};

struct atel_otlp_recv;

/* Binds, listens, starts the server thread. @return 0 or -errno (err says what). */
int atel__otlp_recv_start(struct atel_otlp_recv **out, const struct atel_otlp_recv_opts *o, char *err,
			  size_t errlen);

/* The bound port. */
uint16_t atel__otlp_recv_port(const struct atel_otlp_recv *r);

/*
 * Tests and the fuzz target: a receiver without its HTTP server (o->bind
 * and o->port unused); atel__otlp_recv_post answers one request on the
 * caller's thread, as the server thread would. Stop it with
 * atel__otlp_recv_stop. @return 0 or -errno.
 */
int atel__otlp_recv_open(struct atel_otlp_recv **out, const struct atel_otlp_recv_opts *o);

/* One POST (ctype, cenc may be NULL). @return the HTTP status; answer (reset first) gets the body. */
int atel__otlp_recv_post(struct atel_otlp_recv *r, const char *target, const char *ctype, const char *cenc,
			 const void *body, size_t len, struct atel_buf *answer);

/* Stops the server thread, writes END and releases the ring. NULL-safe. */
void atel__otlp_recv_stop(struct atel_otlp_recv *r);

#endif /* ATEL_OTLP_RECEIVER_H */
