/* SPDX-License-Identifier: MIT */
/*
 * w3c.h - libatel's W3C Trace Context parsers, internal (tests and the
 * `traceparent` fuzz target link them from libatel.a).
 */
#ifndef ATEL_W3C_H
#define ATEL_W3C_H

#include <stddef.h>

#include "atel.h"

#define ATEL_TRACEPARENT_LEN        55
#define ATEL_TRACESTATE_MAX_MEMBERS 32
#define ATEL_TRACESTATE_MAX_LEN     512    /* propagated length (longer lists are truncated per spec) */
#define ATEL_TRACESTATE_MAX_INPUT   32768  /* longer input is rejected outright */

/*
 * Parses len bytes of a traceparent value (no NUL needed). Blanks around it
 * are ignored. @return 0 with *out filled (tracestate 0), or -EINVAL.
 */
int atel__traceparent_parse(const char *s, size_t len, atel_span_context *out);

/* Formats version 00 into buf (len >= 56). @return 55 or -ENOSPC. Async-signal-safe. */
int atel__traceparent_format(const atel_span_context *c, char *buf, size_t len);

/*
 * Validates a tracestate list (len bytes, no NUL needed) and writes it
 * normalised (members joined by ',', blanks and empty members removed,
 * truncated to 512 characters per spec) NUL-terminated into out.
 * @return its length; -EINVAL if the list is invalid (bad key or value,
 * duplicated key, more than 32 members, input over 32 KiB); -ENOSPC.
 */
int atel__tracestate_normalize(const char *in, size_t len, char *out, size_t outlen);

#endif /* ATEL_W3C_H */
