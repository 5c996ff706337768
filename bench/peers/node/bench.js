// SPDX-License-Identifier: MIT
//
// The Node section of bench/peers (run.py runs it once per round): the atel
// binding beside the OpenTelemetry JS SDK (@opentelemetry/api with
// sdk-metrics: counter add, histogram record; sdk-trace-base: span
// start+end) and prom-client, and a baseline: a method call that increments
// a property (what an in-process counter minimally is).
//
// Method: calls run in chunks of 500, the figures interleaved chunk by chunk
// (order rotated), each chunk timed with process.hrtime.bigint(); a figure's
// mean is total time / calls, p50/p99 are over the chunk means (a per-call
// clock read would cost more than most of these calls). Between rounds of
// chunks the event loop turns (setImmediate), so the SDK's batch span
// processor can export, as it would in an agent.
//
// Delivered: atel, records published into the ring (libatel's counters;
// ateld logs every published record); OpenTelemetry metrics and prom-client,
// the aggregate read back; OpenTelemetry spans, those the BatchSpanProcessor
// handed to its exporter (it drops when its queue of 2048 is full).
//
//   node bench.js [--calls N] [--round R]      JSON rows on stdout
'use strict';

const path = require('path');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
	const i = args.indexOf(name);
	return i >= 0 ? Number(args[i + 1]) : dflt;
};
const CALLS = opt('--calls', 200000), ROUND = opt('--round', 0), CHUNK = 500;

const atel = require(process.env.ATEL_NODE_PACKAGE || path.join(__dirname, '..', '..', '..', 'bindings', 'node'));
const otelApi = require('@opentelemetry/api');
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const prom = require('prom-client');

// -- OpenTelemetry: a meter provider with a pull reader, a tracer provider with a batch processor
class PullReader extends MetricReader {
	async onForceFlush() {}
	async onShutdown() {}
}
const reader = new PullReader();
const meterProvider = new MeterProvider({ readers: [reader] });
const meter = meterProvider.getMeter('atel-bench-peers');
const oCounter = meter.createCounter('peer_calls_total');
const oHist = meter.createHistogram('peer_seconds');
const oAttrs = { phase: 'latency' };

let exported = 0;
const exporter = {
	export(spans, cb) {
		exported += spans.length;
		cb({ code: 0 });
	},
	shutdown() { return Promise.resolve(); },
	forceFlush() { return Promise.resolve(); },
};
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] });
const tracer = tracerProvider.getTracer('atel-bench-peers');

// -- prom-client
const registry = new prom.Registry();
const pCounter = new prom.Counter({ name: 'peer_calls_total', help: 'calls', labelNames: ['phase'],
	registers: [registry] }).labels({ phase: 'latency' });
const pHist = new prom.Histogram({ name: 'peer_seconds', help: 'seconds', labelNames: ['phase'],
	registers: [registry] }).labels({ phase: 'latency' });

// -- atel
const aCounter = atel.metricsCollector.counter('peer_calls_total', { phase: 'node' });
const aHist = atel.metricsCollector.histogram('peer_seconds', { phase: 'node' });
const tc = atel.traceContext;

class Base {
	constructor() { this.n = 0; }
	inc() { this.n += 1; }
}
const base = new Base();

const ops = [
	{ figure: 'method call incrementing a property', peer: 'baseline', fn: () => base.inc() },
	{ figure: 'counter add', peer: 'atel', fn: () => aCounter.add(1) },
	{ figure: 'counter add', peer: 'OpenTelemetry JS', fn: () => oCounter.add(1, oAttrs) },
	{ figure: 'counter add', peer: 'prom-client', fn: () => pCounter.inc() },
	{ figure: 'histogram observe', peer: 'atel', fn: (i) => aHist.observe((i & 255) * 0.01) },
	{ figure: 'histogram observe', peer: 'OpenTelemetry JS', fn: (i) => oHist.record((i & 255) * 0.01, oAttrs) },
	{ figure: 'histogram observe', peer: 'prom-client', fn: (i) => pHist.observe((i & 255) * 0.01) },
	{ figure: 'span start+end', peer: 'atel', fn: () => tc.endSpan(tc.startTrace('peer-span')) },
	{ figure: 'span start+end', peer: 'OpenTelemetry JS', fn: () => tracer.startSpan('peer-span').end() },
];

function dropped(s) {
	return s.drops_ring_full + s.drops_no_ring + s.drops_no_def + s.drops_no_sidecar + s.drops_reentrant;
}

async function main() {
	for (const o of ops) {
		o.means = [];
		o.total = 0n;
		o.calls = 0;
		o.published = 0;
		o.dropped = 0;
		for (let i = 0; i < 20000; i++) // warm-up: JIT, series, names
			o.fn(i);
	}
	const warm = 20000;
	for (let done = 0; done < CALLS; done += CHUNK) {
		for (let k = 0; k < ops.length; k++) {
			const o = ops[(k + done / CHUNK) % ops.length];
			const s0 = o.peer === 'atel' ? atel.stats() : null;
			const fn = o.fn;
			const t0 = process.hrtime.bigint();
			for (let i = 0; i < CHUNK; i++)
				fn(i);
			const dt = process.hrtime.bigint() - t0;
			o.total += dt;
			o.calls += CHUNK;
			o.means.push(Number(dt) / CHUNK);
			if (s0) {
				const s1 = atel.stats();
				o.published += s1.records - s0.records;
				o.dropped += dropped(s1) - dropped(s0);
			}
		}
		if ((done / CHUNK) % 4 === 3)
			await new Promise((r) => setImmediate(r)); // the event loop turns, as in an agent
	}
	// what got through
	await tracerProvider.forceFlush();
	const { resourceMetrics } = await reader.collect();
	let oCount = 0, oHistCount = 0;
	for (const sm of resourceMetrics.scopeMetrics)
		for (const m of sm.metrics)
			for (const dp of m.dataPoints) {
				if (m.descriptor.name === 'peer_calls_total')
					oCount += dp.value;
				else if (m.descriptor.name === 'peer_seconds')
					oHistCount += dp.value.count;
			}
	const pCount = (await registry.getSingleMetric('peer_calls_total').get()).values[0].value;
	const pHistCount = (await registry.getSingleMetric('peer_seconds').get()).values
		.find((v) => v.metricName === 'peer_seconds_count').value;
	const delivered = {
		'counter add/OpenTelemetry JS': [oCount, 'aggregate read back'],
		'counter add/prom-client': [pCount, 'aggregate read back'],
		'histogram observe/OpenTelemetry JS': [oHistCount, 'aggregate read back'],
		'histogram observe/prom-client': [pHistCount, 'aggregate read back'],
		'span start+end/OpenTelemetry JS': [exported, 'spans exported by the BatchSpanProcessor'],
	};
	for (const o of ops) {
		const sorted = o.means.slice().sort((a, b) => a - b);
		const pct = (p) => sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
		let written = -1, got = -1, note = 'ns/call from chunk means (500 calls)';
		const d = delivered[o.figure + '/' + o.peer];
		if (d) {
			written = o.calls + warm;
			[got] = d;
			note += '; delivered: ' + d[1];
		} else if (o.peer === 'atel') {
			written = o.calls;
			got = o.figure === 'span start+end' ? o.published / 2 : o.published;
			note += '; delivered: published to the ring';
		}
		process.stdout.write(JSON.stringify({ figure: o.figure, peer: o.peer, p50_ns: pct(0.5), p99_ns: pct(0.99),
			mean_ns: Number(o.total) / o.calls, written, delivered: got, note }) + '\n');
	}
	process.stdout.write(JSON.stringify({ round: ROUND, baseline: base.n }) + '\n');
	await tracerProvider.shutdown();
	await meterProvider.shutdown();
	atel.shutdown();
}

main().catch((e) => {
	console.error(e);
	process.exit(1);
});
void otelApi;
