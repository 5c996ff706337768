// The OpenTelemetry JS SDK as a real client of ateld's OTLP/HTTP receiver
// (tests/exporters/test_otlp_receiver.py). Prints, as one JSON line, what it
// sent, so the test can compare it with what `atel traces` and /metrics show.
//
//   node client.js traces  URL proto|json gzip|none TAG
//   node client.js metrics URL proto|json gzip|none cumulative|delta TAG
//
// URL is the receiver's base (http://127.0.0.1:PORT); exit 0 when every
// export succeeded, 1 otherwise.
'use strict';

const api = require('@opentelemetry/api');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');

const [mode, base, protocol, compression, ...rest] = process.argv.slice(2);

function traceExporter() {
  const mod = protocol === 'json'
    ? require('@opentelemetry/exporter-trace-otlp-http')
    : require('@opentelemetry/exporter-trace-otlp-proto');
  return new mod.OTLPTraceExporter({ url: `${base}/v1/traces`, compression, timeoutMillis: 20000 });
}

function metricExporter(temporality) {
  const http = require('@opentelemetry/exporter-metrics-otlp-http');
  const mod = protocol === 'json' ? http : require('@opentelemetry/exporter-metrics-otlp-proto');
  return new mod.OTLPMetricExporter({
    url: `${base}/v1/metrics`, compression, timeoutMillis: 20000,
    temporalityPreference: temporality === 'delta'
      ? http.AggregationTemporalityPreference.DELTA : http.AggregationTemporalityPreference.CUMULATIVE,
  });
}

// An exporter wrapper that remembers whether every export succeeded.
function checked(exporter, results) {
  return {
    export(items, cb) {
      exporter.export(items, (r) => { results.push(r.code); cb(r); });
    },
    shutdown() { return exporter.shutdown(); },
    forceFlush() { return exporter.forceFlush ? exporter.forceFlush() : Promise.resolve(); },
    selectAggregationTemporality: exporter.selectAggregationTemporality
      ? (k) => exporter.selectAggregationTemporality(k) : undefined,
    selectAggregation: exporter.selectAggregation ? (k) => exporter.selectAggregation(k) : undefined,
  };
}

async function traces(tag) {
  const results = [];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `otlp-client-${tag}` }),
    spanProcessors: [new SimpleSpanProcessor(checked(traceExporter(), results))],
  });
  const tracer = provider.getTracer('atel-otlp-receiver-test', '1.0.0');
  const ctx = (s) => api.trace.setSpan(api.ROOT_CONTEXT, s);

  const root = tracer.startSpan(`session-${tag}`, { kind: api.SpanKind.SERVER, attributes: {
    'agent.id': `agent-${tag}`, 'tokens': 1234, 'ratio': 0.25, 'ok': true, 'tools': ['Read', 'Edit'],
  } });
  const plan = tracer.startSpan('plan', { kind: api.SpanKind.INTERNAL }, ctx(root));
  plan.addEvent('step', { 'step.n': 1, 'step.name': 'think' });
  plan.setStatus({ code: api.SpanStatusCode.OK });
  const call = tracer.startSpan('tool.call', { kind: api.SpanKind.CLIENT, attributes: { tool: 'Bash' } }, ctx(plan));
  call.recordException({ name: 'ToolError', message: 'exit status 2' });
  call.setStatus({ code: api.SpanStatusCode.ERROR, message: 'tool failed' });
  call.end();
  plan.end();
  const write = tracer.startSpan('write', { kind: api.SpanKind.PRODUCER }, ctx(root));
  write.end();
  root.end();
  await provider.forceFlush();
  await provider.shutdown();

  const span = (s, name) => ({
    name, span_id: s.spanContext().spanId, trace_id: s.spanContext().traceId,
    parent: s.parentSpanContext ? s.parentSpanContext.spanId : (s.parentSpanId || ''),
  });
  return {
    ok: results.length === 4 && results.every((c) => c === 0), results,
    trace_id: root.spanContext().traceId,
    spans: [span(root, `session-${tag}`), span(plan, 'plan'), span(call, 'tool.call'), span(write, 'write')],
  };
}

async function metrics(temporality, tag) {
  const results = [];
  const reader = new PeriodicExportingMetricReader({
    exporter: checked(metricExporter(temporality), results), exportIntervalMillis: 3600000,
    exportTimeoutMillis: 30000,
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': `otlp-client-${tag}` }), readers: [reader],
  });
  const meter = provider.getMeter('atel-otlp-receiver-test');
  const jobs = meter.createCounter(`otel.jobs.${tag}`);
  const queue = meter.createUpDownCounter(`otel.queue.${tag}`);
  const latency = meter.createHistogram(`otel.latency.${tag}`, { advice: { explicitBucketBoundaries: [1, 5, 10] } });
  let temp = 21.5;
  meter.createObservableGauge(`otel.temp.${tag}`).addCallback((r) => r.observe(temp, { room: 'lab' }));

  // round 1
  jobs.add(3, { queue: 'a' });
  jobs.add(4, { queue: 'b' });
  queue.add(10);
  queue.add(-3);
  for (const v of [0.5, 2, 7, 7, 50]) latency.record(v);
  await reader.forceFlush();
  // round 2: more of everything (cumulative points must become deltas)
  jobs.add(5, { queue: 'a' });
  queue.add(-2);
  for (const v of [3, 100]) latency.record(v);
  temp = 19.25;
  await reader.forceFlush();
  await provider.shutdown();
  return {
    ok: results.length >= 2 && results.every((c) => c === 0), results,
    expect: {
      [`otel_jobs_${tag}_total{queue="a",service_name="otlp-client-${tag}"}`]: 8,
      [`otel_jobs_${tag}_total{queue="b",service_name="otlp-client-${tag}"}`]: 4,
      [`otel_queue_${tag}{service_name="otlp-client-${tag}"}`]: 5,
      [`otel_temp_${tag}{room="lab",service_name="otlp-client-${tag}"}`]: 19.25,
      [`otel_latency_${tag}_count{service_name="otlp-client-${tag}"}`]: 7,
      [`otel_latency_${tag}_sum{service_name="otlp-client-${tag}"}`]: 169.5,
      [`otel_latency_${tag}_bucket{le="1",service_name="otlp-client-${tag}"}`]: 1,
      [`otel_latency_${tag}_bucket{le="5",service_name="otlp-client-${tag}"}`]: 3,
      [`otel_latency_${tag}_bucket{le="10",service_name="otlp-client-${tag}"}`]: 5,
      [`otel_latency_${tag}_bucket{le="+Inf",service_name="otlp-client-${tag}"}`]: 7,
    },
  };
}

(async () => {
  let out;
  if (mode === 'traces') out = await traces(rest[0] || 't');
  else if (mode === 'metrics') out = await metrics(rest[0] || 'cumulative', rest[1] || 'm');
  else throw new Error(`unknown mode ${mode}`);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(out.ok ? 0 : 1);
})().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
