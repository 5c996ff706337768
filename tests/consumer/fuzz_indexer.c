/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the index writer (consumer/indexer.c) on events whose
 * strings and values come from arbitrary bytes (producer strings are
 * untrusted: invalid UTF-8, control characters, quotes, huge and non-finite
 * numbers). Every apply must succeed, and every JSON column must stay valid
 * JSON that SQLite's json functions accept.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | u8(in);
	return v;
}

/* A NUL-terminated string of up to 40 input bytes (any bytes but NUL). */
static const char *str(struct in *in, char *buf)
{
	size_t len = u8(in) % 41, k = 0;

	for (size_t i = 0; i < len && in->n; i++) {
		uint8_t c = u8(in);

		if (c)
			buf[k++] = (char)c;
	}
	buf[k] = '\0';
	return buf;
}

static int64_t count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const double bounds[] = { 0.1, 1, 10 };
	struct atel_ixw_opts o = { .rollup_interval_s = 60 };
	static struct atel_ixw *w; /* one in-memory database for the whole run (schema set-up is slow) */
	struct in in = { data, size };
	char err[256], b1[48], b2[48], b3[48], b4[48];
	sqlite3 *db;

	if (!w && atel__ixw_open(&w, ":memory:", &o, err, sizeof(err)))
		__builtin_trap();
	atel__ixw_rollback(w); /* forget the previous input's cached series */
	if (atel__ixw_begin(w) ||
	    sqlite3_exec(atel__ixw_db(w),
			 "DELETE FROM telemetry_metrics; DELETE FROM telemetry_series; DELETE FROM telemetry_spans; "
			 "DELETE FROM telemetry_span_events; DELETE FROM telemetry_aggregates;",
			 NULL, NULL, NULL) != SQLITE_OK)
		__builtin_trap();
	for (int n = 0; in.n && n < 64; n++) {
		struct atel_event ev;
		struct atel_dec_series s;
		uint8_t k = u8(&in);

		memset(&ev, 0, sizeof(ev));
		memset(&s, 0, sizeof(s));
		ev.ring = u8(&in) % 4;
		ev.generation = 1;
		ev.ts_ns = u64(&in) >> 2; /* below 2^62: bucket ends stay exact in SQL */
		ev.pid = 7;
		ev.comm = str(&in, b4);
		memset(ev.span_start.trace_id, 0, 16);
		ev.span_start.trace_id[0] = u8(&in) % 3;
		memset(ev.span_start.span_id, 0, 8);
		ev.span_start.span_id[0] = u8(&in) % 5;
		switch (k % 7) {
		case 0: {
			uint64_t bits = u64(&in);
			double v;

			memcpy(&v, &bits, sizeof(v));
			s.mtype = (uint8_t)(1 + u8(&in) % 3);
			s.name = str(&in, b1);
			s.nlabels = 2;
			s.keys[0] = str(&in, b2);
			s.values[0] = str(&in, b3);
			s.keys[1] = "z";
			s.values[1] = "\"\\\n";
			s.key_hash = u8(&in) % 8;
			if (s.mtype == ATEL_MT_HISTOGRAM) {
				s.nbounds = 3;
				s.bounds = bounds;
			}
			ev.kind = ATEL_EV_SAMPLE;
			ev.sample.series = &s;
			ev.sample.value = v;
			ev.sample.set = u8(&in) & 1;
			break;
		}
		case 1:
			ev.kind = ATEL_EV_SPAN_START;
			ev.span_start.kind = u8(&in);
			ev.span_start.name = str(&in, b1);
			break;
		case 2: {
			uint64_t bits = u64(&in);

			ev.kind = ATEL_EV_SPAN_ATTR;
			memcpy(ev.span_attr.trace_id, ev.span_start.trace_id, 16);
			ev.span_attr.key = str(&in, b1);
			ev.span_attr.v.vtype = u8(&in) % 6;
			ev.span_attr.v.i = (int64_t)bits;
			memcpy(&ev.span_attr.v.d, &bits, sizeof(double));
			ev.span_attr.v.b = bits & 1;
			ev.span_attr.v.s = str(&in, b2);
			ev.span_attr.v.slen = (uint32_t)strlen(b2);
			ev.span_attr.event_attr = u8(&in) & 1;
			break;
		}
		case 3:
			ev.kind = ATEL_EV_SPAN_EVENT;
			ev.span_event.name = str(&in, b1);
			break;
		case 4:
			ev.kind = ATEL_EV_SPAN_ERROR;
			ev.span_error.type = str(&in, b1);
			ev.span_error.msg = str(&in, b2);
			ev.span_error.msg_len = (uint32_t)strlen(b2);
			break;
		case 5:
			ev.kind = ATEL_EV_SPAN_END;
			ev.span_end.status = u8(&in);
			ev.span_end.msg = str(&in, b1);
			ev.span_end.msg_len = (uint32_t)strlen(b1);
			break;
		default:
			ev.kind = ATEL_EV_DEATH;
			ev.death.generation = 1;
			break;
		}
		if (atel__ixw_apply(w, &ev)) {
			fprintf(stderr, "apply failed: %s\n", sqlite3_errmsg(atel__ixw_db(w)));
			__builtin_trap();
		}
	}
	if (atel__ixw_commit(w, NULL))
		__builtin_trap();
	db = atel__ixw_db(w);
	if (count(db, "SELECT count(*) FROM telemetry_spans WHERE NOT json_valid(attributes)") != 0 ||
	    count(db, "SELECT count(*) FROM telemetry_span_events WHERE NOT json_valid(attributes)") != 0 ||
	    count(db, "SELECT count(*) FROM telemetry_metrics WHERE NOT json_valid(labels)") != 0 ||
	    count(db, "SELECT count(*) FROM telemetry_aggregates WHERE NOT json_valid(labels) OR "
		      "(buckets IS NOT NULL AND NOT json_valid(buckets)) OR (bounds IS NOT NULL AND NOT json_valid(bounds))") != 0 ||
	    count(db, "SELECT count(*) FROM telemetry_aggregates a WHERE a.count != (SELECT count(*) FROM "
		      "telemetry_metrics m WHERE m.series_hash = a.series_hash AND m.ts_ns >= a.bucket_start_ns AND "
		      "m.ts_ns < a.bucket_start_ns + 60000000000)") != 0)
		__builtin_trap();
	return 0;
}
