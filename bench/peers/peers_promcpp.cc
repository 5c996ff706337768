// SPDX-License-Identifier: MIT
//
// peers_promcpp: prometheus-cpp's counter and histogram (Debian
// prometheus-cpp-dev), for the C section of bench/peers, with the relaxed
// atomic_fetch_add baseline measured again in this process. Same method as
// peers_c.c (per-call rdtsc minus the empty pair, chunk means, interleaved
// chunks of 500). prometheus-cpp aggregates in process: nothing can drop, so
// "delivered" is the counter's value read back (and the histogram's count)
// against the calls made.
//
//   peers_promcpp [--calls N]     JSON rows on stdout
#include <atomic>
#include <cstring>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "peer_timing.h"

static constexpr uint64_t kChunk = 500;

int main(int argc, char **argv)
{
	uint64_t calls = 200000;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--calls") && i + 1 < argc)
			calls = strtoull(argv[++i], nullptr, 10);

	auto registry = std::make_shared<prometheus::Registry>();
	auto &cfam = prometheus::BuildCounter().Name("peer_calls_total").Help("calls").Register(*registry);
	auto &counter = cfam.Add({ { "phase", "latency" } });
	auto &hfam = prometheus::BuildHistogram().Name("peer_seconds").Help("seconds").Register(*registry);
	auto &hist = hfam.Add({ { "phase", "latency" } },
			      prometheus::Histogram::BucketBoundaries{ .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 });
	std::atomic<uint64_t> base{ 0 };

	struct pt_samples smp[3];
	uint64_t mean[3] = { 0, 0, 0 }, n[3] = { 0, 0, 0 };
	for (auto &s : smp)
		if (pt_init(&s, calls + kChunk))
			return 1;
	double tick = pt_ns_per_tick();
	uint64_t ovh = pt_overhead();
	auto op = [&](int o, uint64_t i) {
		switch (o) {
		case 0:
			base.fetch_add(1, std::memory_order_relaxed);
			break;
		case 1:
			counter.Increment();
			break;
		default:
			hist.Observe((double)(i & 255) * 0.01);
			break;
		}
	};
	for (uint64_t i = 0; i < 20000; i++)
		for (int o = 0; o < 3; o++)
			op(o, i);
	uint64_t written = 0;
	for (uint64_t done = 0; done < calls; done += kChunk) {
		for (int k = 0; k < 3; k++) {
			int o = (int)((k + done / kChunk) % 3);
			for (uint64_t i = 0; i < kChunk; i++) {
				uint64_t t0 = pt_t0();
				op(o, i);
				pt_add(&smp[o], t0, pt_t1(), ovh);
			}
			uint64_t n0 = pt_now_ns();
			for (uint64_t i = 0; i < kChunk; i++)
				op(o, i);
			mean[o] += pt_now_ns() - n0;
			n[o] += kChunk;
		}
		written += 2 * kChunk;
	}
	written += 20000; // warm-up calls count too: they are in the value read back
	const char *fig[3] = { "relaxed atomic_fetch_add", "counter add (Increment)", "histogram observe" };
	const char *peer[3] = { "baseline", "prometheus-cpp", "prometheus-cpp" };
	double delivered[3] = { -1, counter.Value(), (double)hist.Collect().histogram.sample_count };
	for (int o = 0; o < 3; o++)
		pt_row(fig[o], peer[o], pt_pct(&smp[o], 0.5) * tick, pt_pct(&smp[o], 0.99) * tick,
		       (double)mean[o] / (double)n[o], o ? (double)written : -1, delivered[o],
		       o ? "in-process aggregate: delivered = value read back" : "");
	return 0;
}
