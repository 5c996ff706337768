/* SPDX-License-Identifier: MIT */
/*
 * mkdata DIR: writes the data sets the CLI test (test_cli.py) runs `atel`
 * on, with real segment files built by tests/common/synth, and
 * DIR/expect.json describing exactly what was written (computed here from
 * the record streams, independently of the CLI):
 *
 *   DIR/good/segments     two rings: metrics of three types and a trace
 *   DIR/gap/segments      one ring written in two files with 5 positions missing
 *   DIR/bulk/segments     a larger realistic workload (for query/stats cross-checks)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "synth.h"

#define TS0 1700000000000000000ull

static const char *type_name(unsigned t)
{
	static const char *const n[] = { NULL, "begin", "end", "strdef", "seriesdef", "bounds", "sample",
					 "span_start", "span_end", "span_attr", "span_event", "span_error", "loss" };
	return t < sizeof(n) / sizeof(n[0]) ? n[t] : NULL;
}

/* counts of header records per type over the streams */
static void count_types(struct atel_synth *const *rings, unsigned n, cJSON *by_type, uint64_t *records,
			uint64_t *events)
{
	uint64_t c[16] = { 0 };
	for (unsigned r = 0; r < n; r++)
		for (size_t i = 0; i < rings[r]->n; i += 1u + rings[r]->slots[i].h.cont)
			if (rings[r]->slots[i].h.type < 16)
				c[rings[r]->slots[i].h.type]++;
	for (unsigned t = 1; t < 13; t++) {
		if (c[t])
			cJSON_AddNumberToObject(by_type, type_name(t), (double)c[t]);
		*records += c[t];
		if (t != ATEL_REC_STRDEF && t != ATEL_REC_SERIESDEF && t != ATEL_REC_BOUNDS)
			*events += c[t];
	}
}

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
	cJSON_AddItemToObject(o, k, cJSON_CreateRaw(b));
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkdata DIR\n");
		return 2;
	}
	char path[4096];
	cJSON *exp = cJSON_CreateObject();

	/* ---- good: ring 0 (agent) and ring 1 (planner) ---- */
	struct atel_synth a, b;
	atel_synth_init(&a, 0, 1, 4242, 4243, TS0);
	atel_synth_init(&b, 1, 1, 5000, 5001, TS0 + 500);
	atel_synth_begin(&a, "agent");
	atel_synth_begin(&b, "planner");
	uint32_t c1 = atel_synth_series(&a, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "grep", "status", "ok", NULL);
	uint32_t g1 = atel_synth_series(&a, ATEL_MT_GAUGE, "task_queue_size", 0, "priority", "high", NULL);
	const double bounds[] = { 0.1, 0.5, 1 };
	uint32_t bid = atel_synth_bounds(&a, bounds, 3);
	uint32_t h1 = atel_synth_series(&a, ATEL_MT_HISTOGRAM, "tool_call_duration_seconds", bid, "tool", "grep", NULL);
	uint64_t first_sample_pos = atel_synth_sample(&a, c1, 1, false);
	uint64_t first_sample_ts = a.slots[first_sample_pos - a.base_pos].h.ts_ns;
	atel_synth_sample(&a, c1, 1, false);
	atel_synth_sample(&a, c1, 1, false);
	atel_synth_sample(&a, g1, 5, true);
	atel_synth_sample(&a, g1, 7, true);
	atel_synth_sample(&a, h1, 0.05, false);
	atel_synth_sample(&a, h1, 0.2, false);
	atel_synth_sample(&a, h1, 0.7, false);
	atel_synth_sample(&a, h1, 2.0, false);
	uint8_t trace[16], root[8], child[8], tool[8], zero[8] = { 0 }, other[16];
	atel_synth_ids(1, trace, root);
	atel_synth_ids(2, other, child);
	atel_synth_ids(3, other, tool);
	uint64_t root_pos = atel_synth_span_start(&a, trace, root, zero, "orchestration-session", 2);
	uint64_t root_ts = a.slots[root_pos - a.base_pos].h.ts_ns;
	atel_synth_attr_str(&a, trace, root, "sessionId", "s-1", false);
	atel_synth_span_start(&a, trace, child, root, "coder-execution", 1);
	atel_synth_span_event(&a, trace, child, "code_generation_started", 1);
	atel_synth_attr_int(&a, trace, child, "files", 3, true);
	atel_synth_span_start(&a, trace, tool, child, "tool.Bash", 3);
	atel_synth_attr_double(&a, trace, tool, "duration_ms", 812.5, false);
	atel_synth_span_error(&a, trace, tool, "timeout", "took too long");
	atel_synth_span_end(&a, trace, tool, 2, "timeout");
	atel_synth_span_end(&a, trace, child, 1, NULL);
	uint64_t root_end_pos = atel_synth_span_end(&a, trace, root, 1, NULL);
	uint64_t root_end_ts = a.slots[root_end_pos - a.base_pos].h.ts_ns;
	atel_synth_end(&a);
	uint32_t c2 = atel_synth_series(&b, ATEL_MT_COUNTER, "tool_calls_total", 0, "tool", "read", "status", "ok", NULL);
	atel_synth_sample(&b, c2, 1, false);
	atel_synth_sample(&b, c2, 1, false);
	atel_synth_end(&b);
	uint64_t last_ts = a.ts - a.ts_step > b.ts - b.ts_step ? a.ts - a.ts_step : b.ts - b.ts_step;

	snprintf(path, sizeof(path), "%s/good/segments", argv[1]);
	struct atel_synth *good[] = { &a, &b };
	if (atel_synth_write_log(path, 0x1111, good, 2, NULL) != 0) {
		fprintf(stderr, "mkdata: writing %s failed\n", path);
		return 1;
	}
	cJSON *g = cJSON_AddObjectToObject(exp, "good");
	cJSON *bt = cJSON_AddObjectToObject(g, "by_type");
	uint64_t records = 0, events = 0;
	count_types(good, 2, bt, &records, &events);
	add_u64(g, "records_without_chunks", records);
	add_u64(g, "events", events);
	add_u64(g, "first_ns", TS0);
	add_u64(g, "last_ns", last_ts);
	add_u64(g, "first_sample_seq", first_sample_pos);
	add_u64(g, "first_sample_ts", first_sample_ts);
	char th[33], rh[17], ch[17], oh[17];
	hex(trace, 16, th);
	hex(root, 8, rh);
	hex(child, 8, ch);
	hex(tool, 8, oh);
	cJSON_AddStringToObject(g, "trace_id", th);
	cJSON_AddStringToObject(g, "root_span", rh);
	cJSON_AddStringToObject(g, "child_span", ch);
	cJSON_AddStringToObject(g, "tool_span", oh);
	add_u64(g, "root_start_ns", root_ts);
	add_u64(g, "root_end_ns", root_end_ts);
	atel_synth_free(&a);
	atel_synth_free(&b);

	/* ---- gap: ring 0 in two files, positions [end, end+5) missing ---- */
	struct atel_synth p, q;
	atel_synth_init(&p, 0, 1, 6000, 6000, TS0);
	atel_synth_begin(&p, "gappy");
	uint32_t gs = atel_synth_series(&p, ATEL_MT_COUNTER, "error_total", 0, "component", "x", NULL);
	for (int i = 0; i < 10; i++)
		atel_synth_sample(&p, gs, 1, false);
	uint64_t end1 = atel_synth_pos(&p);
	snprintf(path, sizeof(path), "%s/gap/segments", argv[1]);
	struct atel_synth *g1s[] = { &p };
	if (atel_synth_write_log(path, 0x2222, g1s, 1, NULL) != 0)
		return 1;
	atel_synth_init(&q, 0, 2, 6001, 6001, TS0 + 1000000);
	q.base_pos = end1 + 5;
	atel_synth_begin(&q, "gappy");
	uint32_t gq = atel_synth_series(&q, ATEL_MT_COUNTER, "error_total", 0, "component", "x", NULL);
	for (int i = 0; i < 4; i++)
		atel_synth_sample(&q, gq, 1, false);
	struct atel_synth *g2s[] = { &q };
	if (atel_synth_write_log(path, 0x2222, g2s, 1, NULL) != 0)
		return 1;
	cJSON *gp = cJSON_AddObjectToObject(exp, "gap");
	add_u64(gp, "expected_pos", end1);
	add_u64(gp, "found_pos", (end1 + 5));
	atel_synth_free(&p);
	atel_synth_free(&q);

	/* ---- nostart: a trace whose root span's start record was lost (issue 14):
	 * its attribute and end records remain, its child is whole ---- */
	{
		struct atel_synth n;
		uint8_t nt[16], nroot[8], nchild[8], nother[16];
		atel_synth_init(&n, 0, 1, 8100, 8100, TS0);
		atel_synth_begin(&n, "lossy");
		atel_synth_ids(9, nt, nroot);
		atel_synth_ids(10, nother, nchild);
		atel_synth_span_start(&n, nt, nchild, nroot, "coder-execution", 1);
		atel_synth_span_end(&n, nt, nchild, 1, NULL);
		atel_synth_attr_str(&n, nt, nroot, "sessionId", "s-9", false);
		atel_synth_span_end(&n, nt, nroot, 1, NULL);
		atel_synth_end(&n);
		snprintf(path, sizeof(path), "%s/nostart/segments", argv[1]);
		struct atel_synth *ns[] = { &n };
		if (atel_synth_write_log(path, 0x4444, ns, 1, NULL) != 0)
			return 1;
		char nth[33];
		hex(nt, 16, nth);
		cJSON_AddStringToObject(cJSON_AddObjectToObject(exp, "nostart"), "trace", nth);
		atel_synth_free(&n);
	}

	/* ---- bulk: a realistic workload on 3 rings ---- */
	struct atel_synth w[3];
	struct atel_synth *wp[3];
	for (unsigned i = 0; i < 3; i++) {
		atel_synth_init(&w[i], i, 1, 7000 + (int)i, 7000 + (int)i, TS0 + i * 77);
		w[i].ts_step = 50000000; /* 50 ms between records: spans minutes */
		atel_synth_begin(&w[i], "swarm");
		atel_synth_agent_workload(&w[i], 100 + i, 3000, 40);
		atel_synth_end(&w[i]);
		wp[i] = &w[i];
	}
	snprintf(path, sizeof(path), "%s/bulk/segments", argv[1]);
	if (atel_synth_write_log(path, 0x3333, wp, 3, NULL) != 0)
		return 1;
	for (unsigned i = 0; i < 3; i++)
		atel_synth_free(&w[i]);

	snprintf(path, sizeof(path), "%s/expect.json", argv[1]);
	FILE *f = fopen(path, "w");
	char *text = cJSON_Print(exp);
	if (!f || !text || fputs(text, f) < 0 || fclose(f) != 0)
		return 1;
	free(text);
	cJSON_Delete(exp);
	return 0;
}
