// SPDX-License-Identifier: MIT
//
// The Node.js binding against a real ateld (started by run.py, which sets
// ATEL_SHM and the ATEL_TEST_* variables): what is recorded through
// require('atel') arrives in /metrics and in `atel traces`, exactly.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const path = require('node:path');
const fs = require('node:fs');
const { Worker } = require('node:worker_threads');

const atel = require('atel');
const { metricsCollector, traceContext, SpanKind, SpanStatusCode } = atel;

const ENV = process.env;
const SRC = ENV.ATEL_SOURCE_ROOT;

async function waitFor(what, pred, timeoutMs = 30000) {
	const end = Date.now() + timeoutMs;
	let last;
	while (Date.now() < end) {
		try {
			last = await pred();
			if (last)
				return last;
		} catch (e) {
			last = e;
		}
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

// Prometheus text -> [{name, labels, value}]
function parseMetrics(text) {
	const out = [];
	for (const line of text.split('\n')) {
		if (!line || line[0] === '#')
			continue;
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
		if (!m)
			continue;
		const labels = {};
		for (const p of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
			labels[p[1]] = p[2];
		out.push({ name: m[1], labels, value: Number(m[3]) });
	}
	return out;
}

function sameLabels(a, b) {
	const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
	return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}

async function metricValue(name, labels) {
	const r = await fetch(ENV.ATEL_TEST_METRICS_URL);
	const s = parseMetrics(await r.text()).find((x) => x.name === name && sameLabels(x.labels, labels));
	return s ? s.value : undefined;
}

// Waits until every [name, labels, value] is exposed with exactly that value.
async function expectMetrics(rows) {
	await waitFor('metrics ' + JSON.stringify(rows), async () => {
		for (const [name, labels, value] of rows)
			if (await metricValue(name, labels) !== value)
				return false;
		return true;
	});
}

// The spans of one trace (OTLP JSON of `atel traces ID --json`), once `n` have arrived.
async function traceSpans(traceId, n) {
	return waitFor(`${n} spans of trace ${traceId}`, () => {
		const r = spawnSync(ENV.ATEL_TEST_CLI, ['--data-dir', ENV.ATEL_TEST_DATA_DIR, 'traces', traceId, '--json'],
			{ encoding: 'utf8' });
		if (r.status !== 0)
			return false;
		const spans = [];
		for (const rs of JSON.parse(r.stdout).resourceSpans)
			for (const ss of rs.scopeSpans)
				spans.push(...ss.spans);
		return spans.length >= n && spans.every((s) => s.endTimeUnixNano) ? spans : false;
	});
}

function attr(list, key) {
	const a = list.find((x) => x.key === key);
	if (!a)
		return undefined;
	const v = a.value;
	return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.boolValue);
}

test('the binding is attached to the test sidecar', () => {
	assert.equal(atel.init(), 0);
	assert.equal(atel.attached(), true);
});

test('counters, gauges and histograms with labels arrive in /metrics exactly', async () => {
	const c = metricsCollector.counter('node_jobs_done_total', { queue: 'build', lang: 'ts' });
	for (let i = 0; i < 1000; i++)
		c.add(1);
	c.inc(0.5);
	assert.equal(metricsCollector.counter('node_jobs_done_total', { lang: 'ts', queue: 'build' }), c,
		'the same name and labels give the same cached series');
	metricsCollector.incrementCounter('node_jobs_done_total', 2, { queue: 'test', lang: 'ts' });
	const g = metricsCollector.gauge('node_queue_depth', { queue: 'build' });
	g.set(10);
	g.inc(5);
	g.dec(2);
	metricsCollector.setGauge('node_temperature', -3.25);
	const h = metricsCollector.histogram('node_step_seconds', { step: 'lint' }, [0.1, 1, 10]);
	for (const v of [0.05, 0.5, 0.5, 5, 50])
		h.observe(v);
	await expectMetrics([
		['node_jobs_done_total', { queue: 'build', lang: 'ts' }, 1000.5],
		['node_jobs_done_total', { queue: 'test', lang: 'ts' }, 2],
		['node_queue_depth', { queue: 'build' }, 13],
		['node_temperature', {}, -3.25],
		['node_step_seconds_bucket', { step: 'lint', le: '0.1' }, 1],
		['node_step_seconds_bucket', { step: 'lint', le: '1' }, 3],
		['node_step_seconds_bucket', { step: 'lint', le: '10' }, 4],
		['node_step_seconds_bucket', { step: 'lint', le: '+Inf' }, 5],
		['node_step_seconds_count', { step: 'lint' }, 5],
		['node_step_seconds_sum', { step: 'lint' }, 56.05],
	]);
});

test('the reference helpers record the catalog metrics', async () => {
	metricsCollector.trackAgentExecution({
		agentId: 'coder-123', agentType: 'node-coder', duration: 5000, tokens: 1500, success: true, phase: 'code',
		model: 'opus',
	});
	metricsCollector.trackAgentExecution({ agentType: 'node-coder', duration: 250, success: false, phase: 'code' });
	metricsCollector.trackToolUsage({ tool: 'NodeRead', duration: 250, success: true });
	metricsCollector.trackToolUsage({ tool: 'NodeRead', duration: 1250, success: false, errorType: 'ENOENT' });
	metricsCollector.trackContextUsage({ used: 75000, total: 200000, agentId: 'node-coder-123', sessionId: 's-1' });
	metricsCollector.trackError({ component: 'node-planner', errorType: 'timeout' });
	metricsCollector.trackTask({ taskType: 'node-build', duration: 2000, success: true });
	metricsCollector.trackQueueSize('node-high', 7);
	await expectMetrics([
		['agent_execution_total', { agent_type: 'node-coder', phase: 'code', status: 'success' }, 1],
		['agent_execution_total', { agent_type: 'node-coder', phase: 'code', status: 'failure' }, 1],
		['agent_execution_duration_seconds_count', { agent_type: 'node-coder', phase: 'code' }, 2],
		['agent_execution_duration_seconds_sum', { agent_type: 'node-coder', phase: 'code' }, 5.25],
		['agent_tokens_used_total', { agent_type: 'node-coder', model: 'opus' }, 1500],
		['tool_calls_total', { tool: 'NodeRead', status: 'success' }, 1],
		['tool_calls_total', { tool: 'NodeRead', status: 'failure' }, 1],
		['tool_call_success_total', { tool: 'NodeRead' }, 1],
		['tool_call_failure_total', { tool: 'NodeRead', error_type: 'ENOENT' }, 1],
		['tool_call_duration_seconds_sum', { tool: 'NodeRead' }, 1.5],
		['context_window_utilization', { agent_id: 'node-coder-123', session_id: 's-1' }, 37.5],
		['context_window_size_tokens', { agent_id: 'node-coder-123' }, 200000],
		['context_window_used_tokens', { agent_id: 'node-coder-123' }, 75000],
		['error_total', { component: 'node-planner', error_type: 'timeout', severity: 'error' }, 1],
		['task_success_total', { task_type: 'node-build' }, 1],
		['task_duration_seconds_count', { task_type: 'node-build', status: 'success' }, 1],
		['task_queue_size', { priority: 'node-high' }, 7],
	]);
});

test('invalid input is counted and explained, never thrown', () => {
	const before = atel.stats().invalid;
	const bad = metricsCollector.counter('bad name');
	assert.equal(bad.handle, 0);
	assert.match(atel.lastError(), /bad name/);
	bad.add(1); // a no-op series: counted, not thrown
	metricsCollector.counter('node_jobs_done_total', { queue: 'build', lang: 'ts' }).add(-1);
	assert.match(atel.lastError(), /negative|>= 0/);
	metricsCollector.counter('node_jobs_done_total', { queue: 'build', lang: 'ts' }).add(NaN);
	const empty = traceContext.startTrace('');
	assert.equal(empty.isRecording, false);
	traceContext.endSpan(empty);
	assert.ok(atel.stats().invalid >= before + 4, `invalid ${atel.stats().invalid} (was ${before})`);
	// missing or mistyped arguments: counted, never thrown
	const mid = atel.stats().invalid;
	metricsCollector.trackToolUsage();
	metricsCollector.trackAgentExecution(undefined);
	metricsCollector.trackToolUsage({ tool: 'NodeBadInput', duration: 'slow', success: true });
	metricsCollector.gauge('node_queue_depth', { queue: 'build' }).set('x');
	const { incrementCounter } = metricsCollector; // detached from its object, as agents pass callbacks
	incrementCounter('node_detached_total', 1);
	assert.ok(atel.stats().invalid >= mid + 4, `invalid ${atel.stats().invalid} (was ${mid})`);
});

test('spans: attributes, events, errors and status arrive in atel traces', async () => {
	const root = traceContext.startTrace('orchestration-session', SpanKind.SERVER);
	traceContext.setAttributes(root, { sessionId: 'session-123', coordinator: 'hierarchical', totalAgents: 5,
		ratio: 0.25, dryRun: false });
	const child = traceContext.startSpan(root, 'coder-execution', SpanKind.INTERNAL);
	assert.equal(child.traceId, root.traceId);
	assert.equal(child.parentSpanId, root.spanId);
	assert.equal(root.parentSpanId, undefined);
	assert.match(root.traceId, /^[0-9a-f]{32}$/);
	traceContext.addEvent(child, 'code_generation_started', { files: 3, language: 'typescript' });
	try {
		throw new RangeError('2 files failed lint');
	} catch (error) {
		traceContext.recordError(child, error);
	}
	traceContext.endSpan(child, { code: SpanStatusCode.ERROR, message: 'lint failed' });
	traceContext.endSpan(root, { code: SpanStatusCode.OK });
	assert.equal(child.ended, true);
	traceContext.endSpan(root); // twice: harmless

	const spans = await traceSpans(root.traceId, 2);
	assert.equal(spans.length, 2);
	const r = spans.find((s) => s.spanId === root.spanId), c = spans.find((s) => s.spanId === child.spanId);
	assert.equal(r.name, 'orchestration-session');
	assert.equal(r.kind, 2);
	assert.equal(r.parentSpanId ?? '', '');
	assert.equal(r.status.code, 1);
	assert.equal(attr(r.attributes, 'sessionId'), 'session-123');
	assert.equal(attr(r.attributes, 'totalAgents'), 5);
	assert.equal(attr(r.attributes, 'ratio'), 0.25);
	assert.equal(attr(r.attributes, 'dryRun'), false);
	assert.equal(c.parentSpanId, root.spanId);
	assert.equal(c.status.code, 2);
	assert.equal(c.status.message, 'lint failed');
	const ev = c.events.find((e) => e.name === 'code_generation_started');
	assert.equal(attr(ev.attributes, 'files'), 3);
	assert.equal(attr(ev.attributes, 'language'), 'typescript');
	const ex = c.events.find((e) => e.name === 'exception');
	assert.equal(attr(ex.attributes, 'exception.type'), 'RangeError');
	assert.equal(attr(ex.attributes, 'exception.message'), '2 files failed lint');
});

test('W3C propagation: inject/extract through headers objects', () => {
	const root = traceContext.startTrace('client-call', SpanKind.CLIENT);
	const h = traceContext.inject(root, {});
	assert.equal(h.traceparent, `00-${root.traceId}-${root.spanId}-03`);
	assert.equal(traceContext.propagate(root), h.traceparent);
	const ctx = traceContext.extract(h);
	assert.equal(ctx.traceId, root.traceId);
	assert.equal(ctx.spanId, root.spanId);
	assert.equal(String(ctx), h.traceparent);
	// case-insensitive plain objects, fetch's Headers, tracestate carried through
	const incoming = { TraceParent: h.traceparent, tracestate: 'vendor=abc, other=1' };
	const server = traceContext.continueTrace(traceContext.extract(incoming), 'server-handle', SpanKind.SERVER);
	assert.equal(server.traceId, root.traceId);
	assert.equal(server.parentSpanId, root.spanId);
	const out = traceContext.inject(server, new Headers());
	assert.equal(out.get('tracestate'), 'vendor=abc,other=1');
	assert.equal(traceContext.extract(out).traceState, 'vendor=abc,other=1');
	// invalid or absent: undefined, and continueTrace(undefined) starts a new trace (W3C)
	assert.equal(traceContext.extract({ traceparent: '00-' + '0'.repeat(32) + '-00f067aa0ba902b7-01' }), undefined);
	assert.equal(traceContext.extract('garbage'), undefined);
	assert.equal(traceContext.extract({}), undefined);
	const fresh = traceContext.continueTrace(undefined, 'fresh');
	assert.notEqual(fresh.traceId, root.traceId);
	for (const s of [fresh, server, root])
		traceContext.endSpan(s);
	// environment for child processes
	const env = traceContext.injectEnv(server, {});
	assert.equal(env.TRACEPARENT, traceContext.propagate(server));
	assert.equal(env.TRACESTATE, 'vendor=abc,other=1');
	assert.equal(traceContext.extractEnv({ TRACE_CONTEXT: env.TRACEPARENT }).spanId, server.spanId);
});

test('one trace crosses Node -> C -> Python processes through TRACEPARENT', async () => {
	const root = traceContext.startTrace('node-coordinator', SpanKind.SERVER);
	const env = traceContext.injectEnv(root, { ...process.env });
	const child = path.join(__dirname, 'py_sub_agent.py');
	const r = spawnSync(ENV.ATEL_TEST_TRACE_HOP, [ENV.ATEL_TEST_PYTHON, child], { env, encoding: 'utf8' });
	assert.equal(r.status, 0, `trace_hop: ${r.stdout} ${r.stderr}`);
	traceContext.endSpan(root, { code: SpanStatusCode.OK });
	const [rc, cTraceparent] = r.stdout.trim().split('\n').pop().split(' ');
	assert.equal(rc, '0', 'the C hop extracted the context Node put into its environment');
	const cSpanId = cTraceparent.split('-')[2];

	const spans = await traceSpans(root.traceId, 3);
	assert.equal(spans.length, 3);
	const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
	assert.deepEqual(Object.keys(byName).sort(), ['c-sub-agent', 'node-coordinator', 'python-sub-agent']);
	for (const s of spans)
		assert.equal(s.traceId, root.traceId);
	assert.equal(byName['node-coordinator'].spanId, root.spanId);
	assert.equal(byName['c-sub-agent'].parentSpanId, root.spanId);
	assert.equal(byName['c-sub-agent'].spanId, cSpanId);
	assert.equal(byName['python-sub-agent'].parentSpanId, cSpanId);
	assert.equal(attr(byName['python-sub-agent'].attributes, 'language'), 'python');
	assert.equal(byName['c-sub-agent'].status.code, 1);
});

test('worker threads record through their own rings; the sums are exact', async () => {
	const n = 4, per = 2000;
	const code = `
		const { metricsCollector, traceContext } = require('atel');
		const { workerData } = require('node:worker_threads');
		const c = metricsCollector.counter('node_worker_ops_total', { pool: 'w' });
		for (let i = 0; i < ${per}; i++) c.add(1);
		const s = traceContext.startTrace('worker-' + workerData);
		traceContext.endSpan(s);`;
	await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve, reject) => {
		const w = new Worker(code, { eval: true, workerData: i });
		w.on('error', reject);
		w.on('exit', (c) => (c === 0 ? resolve() : reject(new Error('worker exit ' + c))));
	})));
	await expectMetrics([['node_worker_ops_total', { pool: 'w' }, n * per]]);
	assert.equal(atel.stats().drops_ring_full, 0);
});

test('without a sidecar every call is a counted no-op', () => {
	const script = `
		const atel = require('atel');
		const { metricsCollector: m, traceContext: t } = atel;
		m.counter('x_total').add(1);
		m.trackToolUsage({ tool: 'Read', duration: 1, success: true });
		const s = t.startTrace('no-sidecar');
		const tp = t.propagate(s);
		t.endSpan(s);
		const st = atel.stats();
		console.log(JSON.stringify({ attached: st.attached, records: st.records, drops: st.drops_no_sidecar, tp }));`;
	const env = { ...process.env, ATEL_SHM: path.join(ENV.ATEL_TEST_TMP, 'no-such-segment') };
	const out = execFileSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
	const r = JSON.parse(out);
	assert.equal(r.attached, false);
	assert.equal(r.records, 0);
	assert.ok(r.drops >= 5, `drops_no_sidecar ${r.drops}`);
	assert.match(r.tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-03$/, 'ids are real without a sidecar');
});

test('TypeScript: the declarations check (tsc --noEmit) and examples/telemetry-basic.ts runs', async () => {
	const nodeDir = path.join(SRC, 'bindings', 'node');
	const tsc = path.join(nodeDir, 'node_modules', 'typescript', 'bin', 'tsc');
	const check = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(nodeDir, 'tsconfig.json')],
		{ encoding: 'utf8' });
	assert.equal(check.status, 0, 'tsc --noEmit:\n' + check.stdout + check.stderr);
	const out = path.join(ENV.ATEL_TEST_TMP, 'examples-ts');
	const build = spawnSync(process.execPath, [tsc, '-p', path.join(nodeDir, 'tsconfig.examples.json'),
		'--outDir', out], { encoding: 'utf8' });
	assert.equal(build.status, 0, 'tsc:\n' + build.stdout + build.stderr);
	const run = spawnSync(process.execPath, [path.join(out, 'telemetry-basic.js')], { encoding: 'utf8' });
	assert.equal(run.status, 0, run.stderr);
	const m = /telemetry-basic: (\d+) records written, 0 dropped \(sidecar attached\), trace ([0-9a-f]{32})/
		.exec(run.stdout);
	assert.ok(m, 'example output: ' + run.stdout);
	assert.ok(Number(m[1]) >= 8, run.stdout);
	await expectMetrics([
		['agent_execution_total', { agent_type: 'coder', phase: 'code', status: 'success' }, 1],
		['tool_calls_total', { tool: 'Read', status: 'success' }, 1],
		['context_window_utilization', { agent_id: 'coder-123', session_id: 'unknown' }, 37.5],
	]);
	const spans = await traceSpans(m[2], 2);
	assert.deepEqual(spans.map((s) => s.name).sort(), ['coder-execution', 'orchestration-session']);
	assert.ok(fs.existsSync(path.join(out, 'telemetry-basic.js')));
});
