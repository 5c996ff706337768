/* SPDX-License-Identifier: MIT */
/*
 * prom_dump: feeds the aggregator with every catalog metric (several label
 * sets each, awkward label values included, histogram observations across
 * every bucket) plus the sidecar self-metrics, and prints the /metrics text.
 * tests/exporters/test_promtool.sh pipes it into `promtool check metrics`.
 * `prom_dump json` prints the JSON export document of the same state plus
 * spans of every shape (tests/exporters/test_json_schema.py validates it
 * against docs/json-export.schema.json).
 */
#include <stdio.h>
#include <string.h>

#include "agg_helpers.h"
#include "catalog.h"
#include "state.h"
#include "json_export.h"
#include "prometheus.h"
#include "selfmetrics.h"

static void spans_workload(struct atel_recent_spans *r)
{
	for (int i = 0; i < 5; i++) {
		struct atel_event ev;
		uint8_t trace[16], span[8], parent[8] = { 0 };

		memset(trace, 0x10 + i, 16);
		memset(span, 0x20 + i, 8);
		if (i)
			memset(parent, 0x20, 8);
		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_SPAN_START;
		ev.ts_ns = 1700000000000000000ull + (uint64_t)i;
		memcpy(ev.span_start.trace_id, trace, 16);
		memcpy(ev.span_start.span_id, span, 8);
		memcpy(ev.span_start.parent_id, parent, 8);
		ev.span_start.kind = (uint8_t)i;
		ev.span_start.name = i ? "tool \"call\"\n" : "orchestration-session";
		atel__spans_apply(r, &ev);
		for (int t = ATEL_VT_STR; t <= ATEL_VT_BOOL; t++) {
			memset(&ev, 0, sizeof(ev));
			ev.kind = ATEL_EV_SPAN_ATTR;
			memcpy(ev.span_attr.trace_id, trace, 16);
			memcpy(ev.span_attr.span_id, span, 8);
			ev.span_attr.key = t == ATEL_VT_STR ? "s" : t == ATEL_VT_INT ? "i" : t == ATEL_VT_DOUBLE ? "d" : "b";
			ev.span_attr.v.vtype = (uint8_t)t;
			ev.span_attr.v.s = "v\x01\xff";
			ev.span_attr.v.i = -42;
			ev.span_attr.v.d = i == 3 ? 1.0 / 0.0 : 0.5;
			ev.span_attr.v.b = true;
			atel__spans_apply(r, &ev);
		}
		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_SPAN_EVENT;
		memcpy(ev.span_event.trace_id, trace, 16);
		memcpy(ev.span_event.span_id, span, 8);
		ev.span_event.name = "started";
		atel__spans_apply(r, &ev);
		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_SPAN_ERROR;
		memcpy(ev.span_error.trace_id, trace, 16);
		memcpy(ev.span_error.span_id, span, 8);
		ev.span_error.type = "Timeout";
		ev.span_error.msg = "tool took too long";
		atel__spans_apply(r, &ev);
		memset(&ev, 0, sizeof(ev));
		ev.kind = ATEL_EV_SPAN_END;
		ev.ts_ns = 1700000000250000000ull;
		memcpy(ev.span_end.trace_id, trace, 16);
		memcpy(ev.span_end.span_id, span, 8);
		ev.span_end.status = (uint8_t)(i % 3);
		ev.span_end.msg = i % 3 == 2 ? "failed" : "";
		atel__spans_apply(r, &ev);
	}
}

int main(int argc, char **argv)
{
	static const char *const vals[] = { "coder", "planner", "tool \"runner\"", "back\\slash", "multi\nline", "é" };
	static struct atel_daemon d;
	static const uint64_t codes[ATEL_HTTP_CODES_N] = { 3, 1 };
	struct atel_prom_self self = { .d = &d, .http_responses = codes };
	struct atel_agg *a;
	struct atel_agg_snapshot *s;
	struct atel_buf b = { 0 };

	if (atel__agg_new(&a, 10000))
		return 1;
	for (size_t m = 0; m < ATEL_CATALOG_COUNT; m++) {
		const struct atel_catalog_metric *c = &atel__catalog[m];
		for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			const char *kv[2 * ATEL_CATALOG_LABELS_MAX];
			const char *sorted[ATEL_CATALOG_LABELS_MAX];
			struct atel_dec_series ser;
			uint32_t n = c->nlabels;

			/* label keys sorted, as the decoder delivers them */
			memcpy(sorted, c->labels, n * sizeof(char *));
			for (uint32_t i = 1; i < n; i++)
				for (uint32_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
					const char *t = sorted[j];
					sorted[j] = sorted[j - 1];
					sorted[j - 1] = t;
				}
			for (uint32_t i = 0; i < n; i++) {
				kv[2 * i] = sorted[i];
				kv[2 * i + 1] = vals[(v + i) % (sizeof(vals) / sizeof(vals[0]))];
			}
			th_series(&ser, c->mtype, c->name, n, kv, c->nbounds, c->bounds);
			for (int k = 0; k < 50; k++) {
				double x = c->mtype == ATEL_MT_HISTOGRAM ? 0.0005 * (double)(k * k * k) : (double)k * 0.5;
				th_sample(a, &ser, x, c->mtype == ATEL_MT_GAUGE, 1000 + (uint64_t)k);
			}
		}
	}
	{
		/* non-finite gauge values and an overflow series */
		static const char *const kv[] = { "k", "v" };
		struct atel_dec_series g;
		th_series(&g, ATEL_MT_GAUGE, "x_nonfinite", 1, kv, 0, NULL);
		th_sample(a, &g, 1.0 / 0.0, 1, 1);
	}
	if (argc > 1 && !strcmp(argv[1], "json")) {
		struct atel_recent_spans *r;
		if (atel__spans_new(&r, 100, 100) || atel__agg_snapshot(a, &s))
			return 1;
		spans_workload(r);
		if (atel__json_encode(&b, s, r, 0, 1700000000000000000ull, 1700000060000000000ull, 3, NULL))
			return 1;
		fwrite(b.data, 1, b.len, stdout);
		atel__buf_free(&b);
		atel__spans_free(r);
		atel__agg_snapshot_free(s);
		atel__agg_free(a);
		return 0;
	}
	atomic_store(&d.stats.records_drained, 1000);
	atomic_store(&d.stats.oldest_unread_ns, 2500000);
	if (atel__agg_snapshot(a, &s) || atel__prom_encode(&b, s, atel__prom_self, &self, NULL))
		return 1;
	fwrite(b.data, 1, b.len, stdout);
	atel__buf_free(&b);
	atel__agg_snapshot_free(s);
	atel__agg_free(a);
	return 0;
}
