/* SPDX-License-Identifier: MIT */
/*
 * Section "producer": per-call cost of the libatel API on a warm thread
 * (ring claimed, names interned and defined), beside the bare-store baseline
 * of the same run: a CLOCK_REALTIME vDSO read plus a 64-byte store into
 * private memory (what any record write must at least do).
 *
 * Each call is timed with lfence/rdtsc .. rdtscp/lfence and the median cost
 * of an empty timer pair is subtracted. Calls run in chunks of 512; between
 * chunks (untimed) the bench thread drains the ring itself, acting as the
 * consumer, so no ring ever fills. Baseline and atel_add chunks alternate so
 * both see the same machine conditions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atel.h"
#include "bench.h"
#include "ring.h"
#include "segment.h"

#define CHUNK 512

static struct atel_segment seg;

static void drain_all(void)
{
	for (uint32_t r = 0; r < seg.ring_count; r++) {
		uint64_t tail, head;
		if (atel__ring_poll(&seg, r, &tail, &head) == 0 && head != tail)
			atel__ring_release(&seg, r, head);
	}
}

static uint64_t sink_words[8] __attribute__((aligned(64)));

static inline void bare_store(void)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	sink_words[0] = 0x06;
	sink_words[1] = now;
	for (int i = 2; i < 8; i++)
		sink_words[i] = 0;
	__asm__ volatile("" : : "r"(sink_words) : "memory");
}

enum op {
	OP_BASE,
	OP_ADD,
	OP_OBSERVE,
	OP_AGENT,
	OP_TOOL,
	OP_CONTEXT,
	OP_TOOL_8,
	OP_TOOL_MISS,
	OP_SPAN,
	OP_SPAN_FULL,
	OP_COUNT
};

static atel_series c_warm, h_warm;

static inline void do_op(enum op op, uint64_t i)
{
	switch (op) {
	case OP_BASE:
		bare_store();
		break;
	case OP_ADD:
		atel_add(c_warm, 1);
		break;
	case OP_OBSERVE:
		atel_observe(h_warm, (double)(i & 255) * 0.01);
		break;
	case OP_AGENT:
		atel_track_agent_execution(&(atel_agent_execution){ .agent_id = "coder-123", .agent_type = "coder",
								    .phase = "code", .model = "opus",
								    .duration_ms = 5000, .tokens = 1500,
								    .success = true });
		break;
	case OP_TOOL:
		atel_track_tool_usage(&(atel_tool_usage){ .tool = "Read", .duration_ms = 250, .success = true });
		break;
	case OP_TOOL_8: {
		static const char *const tools[8] = { "Read", "Write", "Edit", "Bash", "Grep", "Glob", "Task", "Web" };
		atel_track_tool_usage(&(atel_tool_usage){ .tool = tools[i & 7], .duration_ms = 250,
							   .success = true });
		break;
	}
	case OP_TOOL_MISS: {
		/* one reused buffer: the pointer memo cannot vouch for it, every call takes the hash probe */
		static const char *const tools[8] = { "Read", "Write", "Edit", "Bash", "Grep", "Glob", "Task", "Web" };
		static char buf[16];
		strcpy(buf, tools[i & 7]);
		atel_track_tool_usage(&(atel_tool_usage){ .tool = buf, .duration_ms = 250, .success = true });
		break;
	}
	case OP_CONTEXT:
		atel_track_context_usage(&(atel_context_usage){ .agent_id = "coder-123", .session_id = "s-1",
								 .used = 75000, .total = 200000 });
		break;
	case OP_SPAN: {
		atel_span s = atel_trace_start("tool-call", ATEL_SPAN_CLIENT);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
		break;
	}
	case OP_SPAN_FULL: {
		atel_span s = atel_trace_start("tool-call", ATEL_SPAN_CLIENT);
		atel_span_set_str(&s, "tool", "Read");
		atel_span_set_int(&s, "bytes", (int64_t)i);
		atel_span_add_event(&s, "sent");
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
		break;
	}
	default:
		break;
	}
}

static void run_chunk(struct bench_hist *h, enum op op, uint64_t overhead, uint64_t *ctr)
{
	for (int k = 0; k < CHUNK; k++) {
		uint64_t t0 = bench_t0();
		do_op(op, (*ctr)++);
		uint64_t t1 = bench_t1();
		bench_hist_add_ticks(h, t0, t1, overhead);
	}
	drain_all();
}

static const char *const names[OP_COUNT] = {
	[OP_BASE] = "baseline (clock_gettime + 64 B store)",
	[OP_ADD] = "atel_add, warm counter",
	[OP_OBSERVE] = "atel_observe, histogram",
	[OP_AGENT] = "atel_track_agent_execution (3 series)",
	[OP_TOOL] = "atel_track_tool_usage (3 series)",
	[OP_CONTEXT] = "atel_track_context_usage (3 series)",
	[OP_TOOL_8] = "atel_track_tool_usage, 8 tools rotating",
	[OP_TOOL_MISS] = "atel_track_tool_usage, 8 tools via one buffer (hash probe)",
	[OP_SPAN] = "span start+end",
	[OP_SPAN_FULL] = "span start, 2 attributes, event, end",
};

static int run_producer(const struct bench_opts *o)
{
	struct atel_segment_config cfg = { .ring_count = 4, .ring_capacity = 16384, .mode = 0600 };
	struct bench_hist *h[OP_COUNT] = { 0 };
	uint64_t overhead = bench_timer_overhead(), ctr = 0;
	int chunks = o->quick ? 40 : 400, rc = 0;
	char name[64], err[256], method[200];
	double p50[OP_COUNT], p99[OP_COUNT];
	atel_stats st;

	snprintf(name, sizeof(name), "atel-bench-producer-%d", (int)getpid());
	if ((rc = atel__segment_create(&seg, name, &cfg, err, sizeof(err)))) {
		bench_note("producer: cannot create segment: %s", err);
		return rc;
	}
	if ((rc = atel_init(name))) {
		bench_note("producer: atel_init: %d", rc);
		goto out;
	}
	for (int i = 0; i < OP_COUNT; i++)
		if (!(h[i] = bench_hist_new(true))) {
			rc = -ENOMEM;
			goto out;
		}
	c_warm = atel_counter("bench_ops_total", "kind", "warm", NULL);
	h_warm = atel_histogram("bench_latency_seconds", "kind", "warm", NULL);
	/* warm-up: claim, intern, define everything once */
	for (int op = 0; op < OP_COUNT; op++)
		for (int k = 0; k < 64; k++)
			do_op((enum op)op, ctr++);
	drain_all();
	for (int c = 0; c < chunks; c++) {
		run_chunk(h[OP_BASE], OP_BASE, overhead, &ctr);
		run_chunk(h[OP_ADD], OP_ADD, overhead, &ctr);
	}
	for (int op = OP_OBSERVE; op < OP_COUNT; op++)
		for (int c = 0; c < chunks / 2; c++)
			run_chunk(h[op], (enum op)op, overhead, &ctr);
	for (int op = 0; op < OP_COUNT; op++) {
		p50[op] = bench_hist_pct_ns(h[op], 0.5);
		p99[op] = bench_hist_pct_ns(h[op], 0.99);
	}
	snprintf(method, sizeof(method), "%d calls in chunks of %d, per-call rdtsc, timer overhead %llu ticks subtracted",
		 (chunks / 2) * CHUNK, CHUNK, (unsigned long long)overhead);
	for (int op = 0; op < OP_COUNT; op++) {
		char fig[160], tgt[64] = "";
		int met = -1;
		double base = op == OP_BASE ? -1 : p50[OP_BASE];

		if (op == OP_ADD) {
			snprintf(tgt, sizeof(tgt), "<= 1.5x baseline");
			met = p50[op] <= 1.5 * p50[OP_BASE];
		} else if (op == OP_AGENT || op == OP_TOOL || op == OP_CONTEXT || op == OP_TOOL_8 ||
			   op == OP_TOOL_MISS) {
			snprintf(tgt, sizeof(tgt), "< 150 ns");
			met = p50[op] < 150;
		} else if (op == OP_SPAN) {
			snprintf(tgt, sizeof(tgt), "< 150 ns");
			met = p50[op] < 150;
		}
		snprintf(fig, sizeof(fig), "%s p50", names[op]);
		bench_row("producer", fig, p50[op], "ns", base, tgt[0] ? tgt : NULL, met, method);
		snprintf(fig, sizeof(fig), "%s p99", names[op]);
		bench_row("producer", fig, p99[op], "ns", op == OP_BASE ? -1 : p99[OP_BASE], NULL, -1, method);
	}
	/* docs/reference.md: ~0.1 ms per metric, ~0.2 ms per span */
	bench_row("producer", "speed-up vs reference 0.1 ms/metric (atel_add p50)", 100000.0 / p50[OP_ADD], "x", -1,
		  NULL, -1, "100000 ns / atel_add p50");
	bench_row("producer", "speed-up vs reference 0.1 ms/metric (tool helper p50 / 3 series)",
		  100000.0 / (p50[OP_TOOL] / 3.0), "x", -1, NULL, -1, "100000 ns / (atel_track_tool_usage p50 / 3)");
	bench_row("producer", "speed-up vs reference 0.2 ms/span (start+end p50)", 200000.0 / p50[OP_SPAN], "x", -1,
		  NULL, -1, "200000 ns / span start+end p50");
	atel_stats_get(&st);
	bench_note("producer: %llu records written, %llu dropped during the run", (unsigned long long)st.records,
		   (unsigned long long)(st.drops_ring_full + st.drops_no_def + st.drops_no_ring + st.drops_no_sidecar));
out:
	atel_shutdown();
	for (int i = 0; i < OP_COUNT; i++)
		bench_hist_free(h[i]);
	atel__segment_detach(&seg);
	atel__segment_unlink(name);
	return rc;
}

BENCH_SECTION("producer", 10, "libatel API per call: samples, helpers, spans vs the bare-store baseline",
	      run_producer)
