// SPDX-License-Identifier: MIT
//
// atel for Node.js: docs/reference.md's TypeScript API (metricsCollector,
// traceContext, SpanKind, SpanStatusCode) over libatel through the Node-API
// addon in ../src. Types: index.d.ts beside this file.
//
// Like libatel, nothing here throws at the agent or blocks: without a sidecar
// every call is a cheap counted no-op, and invalid input (a bad metric name,
// a NaN, a negative counter increment) is counted and explained by
// lastError(), never thrown.
//
// Per-call cost. Strings cross into C once: `sid()` maps a JS string to a
// small integer id (a Map lookup) whose C copy the addon keeps, and series
// handles are small integers too. A Counter/Gauge/Histogram object or a
// repeated helper call therefore passes only numbers to the addon.
'use strict';

const path = require('path');
const fs = require('fs');

function loadAddon() {
	const tried = [];
	const candidates = [];
	if (process.env.ATEL_NODE_ADDON)
		candidates.push(process.env.ATEL_NODE_ADDON);
	const root = path.join(__dirname, '..');
	candidates.push(path.join(root, 'build', 'Release', 'atel.node')); // npm run build
	for (const b of [process.env.ATEL_BUILD_ROOT, path.join(root, '..', '..', 'build')]) {
		if (b)
			candidates.push(path.join(b, 'bindings', 'node', 'atel.node')); // meson build
	}
	for (const c of candidates) {
		if (!fs.existsSync(c)) {
			tried.push(c + ' (absent)');
			continue;
		}
		return require(c);
	}
	throw new Error('atel: the native addon is not built; tried ' + tried.join(', ') +
		'. Build it with `make build` (meson builds bindings/node) or `npm run build` in bindings/node, ' +
		'or point ATEL_NODE_ADDON at atel.node');
}

const addon = loadAddon();
const nAdd = addon.add, nSet = addon.set, nObserve = addon.observe;
const nStart = addon.startSpan, nRoot = addon.startTrace, nEnd = addon.endSpan, nContinue = addon.continueTrace;
const SPAN_SIZE = addon.SPAN_SIZE, CONTEXT_SIZE = addon.CONTEXT_SIZE;

/** OpenTelemetry's SpanKind, with OTLP's numbering (libatel's atel_span_kind). */
const SpanKind = Object.freeze({ INTERNAL: 1, SERVER: 2, CLIENT: 3, PRODUCER: 4, CONSUMER: 5 });
/** OpenTelemetry's StatusCode. */
const SpanStatusCode = Object.freeze({ UNSET: 0, OK: 1, ERROR: 2 });
const MetricType = Object.freeze({ COUNTER: 1, GAUGE: 2, HISTOGRAM: 3 });

// ---------------------------------------------------------------------------
// strings -> ids (0 means none: libatel records "unknown" for a missing label)

const ids = new Map();

function sid(s) {
	if (s === undefined || s === null)
		return 0;
	let id = ids.get(s);
	if (id === undefined) {
		id = addon.intern(typeof s === 'string' ? s : String(s));
		ids.set(s, id);
	}
	return id;
}

// ---------------------------------------------------------------------------
// metrics

function labelArrays(labels) {
	const keys = [], values = [];
	if (labels) {
		for (const k of Object.keys(labels).sort()) {
			const v = labels[k];
			if (v === undefined || v === null)
				continue;
			keys.push(k);
			values.push(String(v));
		}
	}
	return [keys, values];
}

/** A counter series: a metric name plus a label set, resolved once. */
class Counter {
	constructor(handle, name, labels) {
		this.handle = handle;
		this.name = name;
		this.labels = labels;
	}
	/** += v (finite, >= 0; default 1). */
	add(v = 1) { nAdd(this.handle, v); }
	inc(v = 1) { nAdd(this.handle, v); }
}

class Gauge {
	constructor(handle, name, labels) {
		this.handle = handle;
		this.name = name;
		this.labels = labels;
	}
	set(v) { nSet(this.handle, v); }
	add(v) { nAdd(this.handle, v); }
	inc(v = 1) { nAdd(this.handle, v); }
	dec(v = 1) { nAdd(this.handle, -v); }
}

class Histogram {
	constructor(handle, name, labels) {
		this.handle = handle;
		this.name = name;
		this.labels = labels;
	}
	observe(v) { nObserve(this.handle, v); }
	record(v) { nObserve(this.handle, v); }
}

const seriesCache = new Map();

function seriesOf(type, Cls, name, labels, buckets) {
	const [keys, values] = labelArrays(labels);
	let key = type + '\0' + name;
	for (let i = 0; i < keys.length; i++)
		key += '\0' + keys[i] + '\0' + values[i];
	let s = seriesCache.get(key);
	if (s === undefined) {
		const h = addon.series(type, String(name), keys, values, buckets);
		s = new Cls(h, name, labels || {});
		if (h !== 0) // an invalid series stays uncached: lastError() tells why, the next call retries
			seriesCache.set(key, s);
	}
	return s;
}

function str0(v) { return v === undefined || v === null ? 0 : sid(v); }

const metricsCollector = {
	/** Counter series `name{labels}`; keep the object: its add() converts no string. */
	counter(name, labels) { return seriesOf(MetricType.COUNTER, Counter, name, labels); },
	gauge(name, labels) { return seriesOf(MetricType.GAUGE, Gauge, name, labels); },
	/** buckets: upper bounds (finite, increasing; +Inf implicit). Default: the catalog's, else Prometheus' .005..10. */
	histogram(name, labels, buckets) { return seriesOf(MetricType.HISTOGRAM, Histogram, name, labels, buckets); },

	/** name{labels} += value (default 1). Resolves the series each call: cache counter() for hot loops. */
	incrementCounter(name, value = 1, labels) { seriesOf(MetricType.COUNTER, Counter, name, labels).add(value); },
	setGauge(name, value, labels) { seriesOf(MetricType.GAUGE, Gauge, name, labels).set(value); },
	recordHistogram(name, value, labels) { seriesOf(MetricType.HISTOGRAM, Histogram, name, labels).observe(value); },

	/**
	 * agent_execution_total{agent_type,phase,status} += 1,
	 * agent_execution_duration_seconds{agent_type,phase} observes duration/1000,
	 * agent_tokens_used{agent_type,model} += tokens. duration in milliseconds.
	 */
	trackAgentExecution(m) {
		if (!m)
			return addon.trackAgentExecution(); // libatel counts the missing argument
		addon.trackAgentExecution(str0(m.agentId), str0(m.agentType), str0(m.phase), str0(m.model),
			m.duration, m.tokens || 0, !!m.success);
	},
	/** tool_calls_total, tool_call_duration_seconds, tool_call_success_total / tool_call_failure_total. */
	trackToolUsage(t) {
		if (!t)
			return addon.trackToolUsage();
		addon.trackToolUsage(str0(t.tool), str0(t.errorType), t.duration, !!t.success);
	},
	/** context_window_used_tokens, context_window_size_tokens, context_window_utilization (percent). */
	trackContextUsage(c) {
		if (!c)
			return addon.trackContextUsage();
		addon.trackContextUsage(str0(c.agentId), str0(c.sessionId), c.used, c.total);
	},
	/** error_total{component,error_type,severity} += 1 and error_rate (per second, 60 s EWMA). */
	trackError(e) {
		if (!e)
			return addon.trackError();
		addon.trackError(str0(e.component), str0(e.errorType), str0(e.severity));
	},
	/** task_duration_seconds{task_type,status}, task_success_total / task_failure_total. */
	trackTask(t) {
		if (!t)
			return addon.trackTask();
		addon.trackTask(str0(t.taskType), str0(t.errorType), t.duration, !!t.success);
	},
	/** task_queue_size{priority} = size. */
	trackQueueSize(priority, size) {
		if (typeof priority === 'object' && priority !== null)
			addon.trackQueueSize(str0(priority.priority), priority.size);
		else
			addon.trackQueueSize(str0(priority), size);
	},
};

// ---------------------------------------------------------------------------
// tracing

// Span buffers are 48-byte slices of pooled ArrayBuffers: one allocation per
// 1024 spans, and the addon reads an off-heap buffer without copying.
const POOL_SPANS = 1024;
let pool = null, poolOff = POOL_SPANS * SPAN_SIZE;

function spanBuf() {
	if (poolOff === POOL_SPANS * SPAN_SIZE) {
		pool = new ArrayBuffer(POOL_SPANS * SPAN_SIZE);
		poolOff = 0;
	}
	const b = new Uint8Array(pool, poolOff, SPAN_SIZE);
	poolOff += SPAN_SIZE;
	return b;
}

const HEX = [];
for (let i = 0; i < 256; i++)
	HEX.push((i < 16 ? '0' : '') + i.toString(16));

function hex(b, from, to) {
	let s = '';
	for (let i = from; i < to; i++)
		s += HEX[b[i]];
	return s;
}

function zero(b, from, to) {
	for (let i = from; i < to; i++)
		if (b[i] !== 0)
			return false;
	return true;
}

/** A W3C trace context parsed from a traceparent (and tracestate). */
class SpanContext {
	constructor(buf) { this._b = buf; }
	get traceId() { return hex(this._b, 0, 16); }
	get spanId() { return hex(this._b, 16, 24); }
	get traceFlags() { return this._b[24]; }
	get traceState() { return addon.contextTracestate(this._b); }
	/** The traceparent header value of this context. */
	toString() {
		return '00-' + this.traceId + '-' + this.spanId + '-' + HEX[this._b[24]];
	}
}

/**
 * A span: a 48-byte libatel atel_span. Ids are computed on demand. A span
 * that failed to start (empty name) is a no-op span: every call on it does nothing.
 */
class Span {
	constructor(buf, name, kind) {
		this._b = buf;
		this.name = name;
		this.kind = kind;
	}
	get traceId() { return hex(this._b, 0, 16); }
	get spanId() { return hex(this._b, 16, 24); }
	/** undefined for a root span. */
	get parentSpanId() { return zero(this._b, 32, 40) ? undefined : hex(this._b, 32, 40); }
	get traceFlags() { return this._b[24]; }
	/** True between start and end. */
	get isRecording() { return this._b[45] === 1; }
	get ended() { return this._b[45] === 2; }
	/** The span's context (a copy), for continueTrace in this process. */
	spanContext() { return new SpanContext(this._b.slice(0, CONTEXT_SIZE)); }
}

function kindOf(k) { return k === undefined ? SpanKind.INTERNAL : k; }

function attrArrays(attrs) {
	const keys = [], values = [];
	for (const k of Object.keys(attrs)) {
		const v = attrs[k];
		if (v === undefined || v === null)
			continue;
		keys.push(sid(k));
		values.push(Array.isArray(v) ? JSON.stringify(v) : v);
	}
	return [keys, values];
}

function headerOf(carrier, name) {
	if (carrier === undefined || carrier === null)
		return undefined;
	if (typeof carrier.get === 'function') // fetch's Headers, Map
		return carrier.get(name) ?? undefined;
	let v = carrier[name];
	if (v === undefined) {
		const want = name.toLowerCase();
		for (const k of Object.keys(carrier))
			if (k.toLowerCase() === want) {
				v = carrier[k];
				break;
			}
	}
	if (Array.isArray(v)) // node's IncomingHttpHeaders: a repeated header
		v = v.join(',');
	return v === undefined || v === null ? undefined : String(v);
}

function setHeader(carrier, name, value) {
	if (typeof carrier.set === 'function')
		carrier.set(name, value);
	else
		carrier[name] = value;
}

function parse(traceparent, tracestate) {
	if (typeof traceparent !== 'string')
		return undefined;
	const b = new Uint8Array(CONTEXT_SIZE);
	if (addon.extract(traceparent, typeof tracestate === 'string' ? tracestate : undefined, b) !== 0)
		return undefined;
	return new SpanContext(b);
}

const traceContext = {
	/** Root span of a new trace (random 16-byte trace id, 8-byte span id). */
	startTrace(name, kind) {
		const b = spanBuf();
		nRoot(sid(name), kindOf(kind), b);
		return new Span(b, name, kindOf(kind));
	},
	/** Child of parent (a Span); without a live parent, a new root. */
	startSpan(parent, name, kind) {
		const b = spanBuf();
		nStart(parent ? parent._b : null, sid(name), kindOf(kind), b);
		return new Span(b, name, kindOf(kind));
	},
	/** Joins a remote trace (a SpanContext from extract); undefined: a new trace. */
	continueTrace(ctx, name, kind) {
		if (!ctx)
			return traceContext.startTrace(name, kind);
		const b = spanBuf();
		nContinue(ctx._b, sid(name), kindOf(kind), b);
		return new Span(b, name, kindOf(kind));
	},
	/** Typed attributes: string, number (integral: int, else double), boolean, bigint; arrays as JSON. */
	setAttributes(span, attrs) {
		if (!span || !attrs)
			return;
		const [keys, values] = attrArrays(attrs);
		addon.setAttributes(span._b, keys, values);
	},
	setAttribute(span, key, value) {
		if (span && value !== undefined && value !== null)
			addon.setAttributes(span._b, [sid(key)], [value]);
	},
	/** A timestamped event, with up to 32 attributes. */
	addEvent(span, name, attrs) {
		if (!span)
			return;
		if (attrs) {
			const [keys, values] = attrArrays(attrs);
			addon.addEvent(span._b, sid(name), keys, values);
		} else {
			addon.addEvent(span._b, sid(name));
		}
	},
	/** An "exception" event (exception.type, exception.message) and status ERROR, per OpenTelemetry. */
	recordError(span, error) {
		if (!span)
			return;
		let type = 'Error', message = '';
		if (error instanceof Error) {
			type = error.name || (error.constructor && error.constructor.name) || 'Error';
			message = error.message;
		} else if (error && typeof error === 'object') {
			type = String(error.name || error.type || 'Error');
			message = String(error.message ?? '');
		} else if (error !== undefined) {
			message = String(error);
		}
		addon.recordError(span._b, type, message);
	},
	/** Ends the span; status {code, message?} (default UNSET). Ending twice is harmless. */
	endSpan(span, status) {
		if (!span)
			return;
		if (status === undefined)
			nEnd(span._b, SpanStatusCode.UNSET);
		else if (status.message === undefined)
			nEnd(span._b, status.code);
		else
			nEnd(span._b, status.code, String(status.message));
	},

	// -- W3C Trace Context --------------------------------------------------

	/** The span's traceparent header value ("00-<trace>-<span>-<flags>"), or undefined for a no-op span. */
	propagate(span) {
		const p = span ? addon.propagate(span._b) : undefined;
		return p ? p.traceparent : undefined;
	},
	/** Sets traceparent (and tracestate) in headers (a plain object, Headers or Map). @return headers */
	inject(span, headers = {}) {
		const p = span ? addon.propagate(span._b) : undefined;
		if (p) {
			setHeader(headers, 'traceparent', p.traceparent);
			if (p.tracestate)
				setHeader(headers, 'tracestate', p.tracestate);
		}
		return headers;
	},
	/**
	 * A traceparent string, or a headers object (traceparent/tracestate,
	 * case-insensitive; Headers and Map too) -> SpanContext, or undefined
	 * when absent or invalid (W3C: then start a new trace).
	 */
	extract(carrier) {
		if (typeof carrier === 'string')
			return parse(carrier.trim());
		return parse(headerOf(carrier, 'traceparent'), headerOf(carrier, 'tracestate'));
	},
	/** For a child process: TRACEPARENT (and TRACESTATE) in env (default process.env). @return env */
	injectEnv(span, env = process.env) {
		const p = span ? addon.propagate(span._b) : undefined;
		if (p) {
			env.TRACEPARENT = p.traceparent;
			if (p.tracestate)
				env.TRACESTATE = p.tracestate;
			else
				delete env.TRACESTATE;
		}
		return env;
	},
	/** The context a parent process left in env: TRACEPARENT (else TRACE_CONTEXT) and TRACESTATE. */
	extractEnv(env = process.env) {
		const tp = env.TRACEPARENT !== undefined ? env.TRACEPARENT : env.TRACE_CONTEXT;
		return parse(typeof tp === 'string' ? tp.trim() : undefined, env.TRACESTATE);
	},
};

/** Attaches to the sidecar's segment (default $ATEL_SHM, else "atel"). Optional: the first call attaches lazily. */
function init(shmName) { return addon.init(shmName); }
/** Releases this process's rings; later calls are no-ops until init(). Call when no worker records any more. */
function shutdown() { addon.shutdown(); }
function attached() { return addon.attached(); }
/** Why the last call of this thread was rejected ("" if none). */
function lastError() { return addon.lastError(); }
/** libatel's process-wide counters (records written, drops by cause, invalid calls). */
function stats() { return addon.stats(); }

module.exports = {
	metricsCollector,
	traceContext,
	SpanKind,
	SpanStatusCode,
	Counter,
	Gauge,
	Histogram,
	Span,
	SpanContext,
	init,
	shutdown,
	attached,
	lastError,
	stats,
};
