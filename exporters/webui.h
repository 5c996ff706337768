/* SPDX-License-Identifier: MIT */
/*
 * webui.h - the web view served by ateld's HTTP server (exporters/http.c
 * calls atel__webui_route for every path that is not /metrics or /healthz):
 * the page at / (HTML, JS and CSS embedded at build time from
 * exporters/webui/), and the JSON API under /api/ui/ that the page uses
 * (docs/webui.md). The API needs the same bearer token as /metrics; the page
 * itself holds no data and is served without it.
 *
 * Data sources, all read-only: ateld's shared state (overview), the status
 * file ateld rewrites every second (rings), and the SQLite index opened
 * read-only per request (metrics, series, traces). Nothing here touches the
 * drain or writes anything.
 */
#ifndef ATEL_WEBUI_H
#define ATEL_WEBUI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "state.h"

/* The keys an API endpoint accepts (a bit each); anything else is a 400. */
enum {
	ATEL_WP_NAME = 1u << 0,     /* metric name (series, metrics) or root span name (traces) */
	ATEL_WP_LABELS = 1u << 1,   /* label selector k=v,k=v */
	ATEL_WP_FROM = 1u << 2,     /* unix ms */
	ATEL_WP_TO = 1u << 3,       /* unix ms */
	ATEL_WP_SINCE = 1u << 4,    /* duration: 90, 30s, 500ms, 5m, 2h, 1d */
	ATEL_WP_STEP = 1u << 5,     /* duration */
	ATEL_WP_AGG = 1u << 6,      /* sum avg min max count last rate p50 p95 p99 */
	ATEL_WP_LIMIT = 1u << 7,    /* 1..1000 */
	ATEL_WP_SERVICE = 1u << 8,
	ATEL_WP_STATUS = 1u << 9,   /* ok | error | unset */
	ATEL_WP_MIN_MS = 1u << 10,  /* minimum trace duration, ms */
	ATEL_WP_ID = 1u << 11,      /* trace id, 32 hex digits */
	ATEL_WP_PREFIX = 1u << 12,  /* metric name prefix (completion) */
};

#define ATEL_WP_MAX_LABELS 8
#define ATEL_WP_MAX_MS 9223372036854ull /* from/to: INT64_MAX ns, in ms */

struct atel_webui_params {
	unsigned seen;                  /* ATEL_WP_* given */
	char name[256], prefix[256], service[256], agg[8], status[8];
	char id[33];                    /* lowercase */
	uint32_t nlabels;
	char lkey[ATEL_WP_MAX_LABELS][64];
	char lval[ATEL_WP_MAX_LABELS][256];
	uint64_t from_ms, to_ms, since_ns, step_ns, min_ms;
	uint32_t limit;
};

/*
 * Parses the query string q[0..len) (without '?'; untrusted, not
 * NUL-terminated): '&'-separated key=value pairs, percent-decoded ('+' is a
 * space). Unknown or repeated keys, keys outside allowed, bad escapes, NUL
 * bytes, over-long values and values of the wrong shape are refused.
 * @return 0, or -EINVAL with a message for a person in err. Pure; thread-safe.
 */
int atel__webui_parse_params(const char *q, size_t len, unsigned allowed, struct atel_webui_params *p, char *err,
			     size_t errlen);

struct atel_webui;

/* d: ateld's state (its db_path locates the index and the status file). @return NULL on ENOMEM. */
struct atel_webui *atel__webui_new(struct atel_daemon *d);
void atel__webui_free(struct atel_webui *w);

/* atel_http_opts.route: arg is a struct atel_webui. Server thread only. */
int atel__webui_route(void *arg, const char *target, size_t len, bool authed, struct atel_http_reply *rep);

#endif /* ATEL_WEBUI_H */
