/* SPDX-License-Identifier: MIT */
/*
 * prom_dump: feeds the aggregator with every catalog metric (several label
 * sets each, awkward label values included, histogram observations across
 * every bucket) plus the sidecar self-metrics, and prints the /metrics text.
 * tests/exporters/test_promtool.sh pipes it into `promtool check metrics`.
 */
#include <stdio.h>
#include <string.h>

#include "agg_helpers.h"
#include "catalog.h"
#include "daemon.h"
#include "prometheus.h"

int main(void)
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
	atomic_store(&d.stats.records_drained, 1000);
	atomic_store(&d.stats.oldest_unread_ns, 2500000);
	if (atel__agg_snapshot(a, &s) || atel__prom_encode(&b, s, &self, NULL))
		return 1;
	fwrite(b.data, 1, b.len, stdout);
	atel__buf_free(&b);
	atel__agg_snapshot_free(s);
	atel__agg_free(a);
	return 0;
}
