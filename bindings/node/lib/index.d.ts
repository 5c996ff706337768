// SPDX-License-Identifier: MIT
// Types of the atel Node.js binding (lib/index.js): docs/reference.md's
// metricsCollector / traceContext API over libatel. No call throws at the
// agent; invalid input is counted (stats().invalid) and explained by lastError().

/** OpenTelemetry's SpanKind, numbered as in OTLP (libatel's atel_span_kind). */
export declare const SpanKind: {
  readonly INTERNAL: 1;
  readonly SERVER: 2;
  readonly CLIENT: 3;
  readonly PRODUCER: 4;
  readonly CONSUMER: 5;
};
export type SpanKind = (typeof SpanKind)[keyof typeof SpanKind];

/** OpenTelemetry's StatusCode. */
export declare const SpanStatusCode: {
  readonly UNSET: 0;
  readonly OK: 1;
  readonly ERROR: 2;
};
export type SpanStatusCode = (typeof SpanStatusCode)[keyof typeof SpanStatusCode];

export interface SpanStatus {
  code: SpanStatusCode;
  message?: string;
}

/** Label values are strings; numbers and booleans are converted with String(). */
export type Labels = Record<string, string | number | boolean | undefined>;

/** Span and event attribute values (arrays are recorded as their JSON text). */
export type AttributeValue = string | number | boolean | bigint | Array<string | number | boolean>;
export type Attributes = Record<string, AttributeValue | undefined | null>;

/** A counter series: name + labels resolved once; add() passes only a number to libatel. */
export declare class Counter {
  readonly handle: number;
  readonly name: string;
  readonly labels: Labels;
  /** += v (finite, >= 0; default 1). */
  add(v?: number): void;
  inc(v?: number): void;
}

export declare class Gauge {
  readonly handle: number;
  readonly name: string;
  readonly labels: Labels;
  set(v: number): void;
  add(v: number): void;
  inc(v?: number): void;
  dec(v?: number): void;
}

export declare class Histogram {
  readonly handle: number;
  readonly name: string;
  readonly labels: Labels;
  observe(v: number): void;
  record(v: number): void;
}

/** docs/reference.md's AgentExecutionMetrics; duration in milliseconds. */
export interface AgentExecutionMetrics {
  agentId?: string;
  agentType: string;
  duration: number;
  tokens?: number;
  success: boolean;
  phase?: string;
  model?: string;
}

export interface ToolUsageMetrics {
  tool: string;
  /** milliseconds */
  duration: number;
  success: boolean;
  errorType?: string;
}

export interface ContextUsageMetrics {
  used: number;
  total: number;
  agentId?: string;
  sessionId?: string;
}

export interface ErrorMetrics {
  component: string;
  errorType: string;
  /** default "error" */
  severity?: string;
}

export interface TaskMetrics {
  taskType: string;
  /** milliseconds */
  duration: number;
  success: boolean;
  errorType?: string;
}

export interface MetricsCollector {
  /** The series name{labels}; keep the object for hot loops. Invalid names give a no-op series (see lastError()). */
  counter(name: string, labels?: Labels): Counter;
  gauge(name: string, labels?: Labels): Gauge;
  /** buckets: finite, strictly increasing upper bounds (+Inf implicit). */
  histogram(name: string, labels?: Labels, buckets?: number[]): Histogram;
  incrementCounter(name: string, value?: number, labels?: Labels): void;
  setGauge(name: string, value: number, labels?: Labels): void;
  recordHistogram(name: string, value: number, labels?: Labels): void;
  /** agent_execution_total, agent_execution_duration_seconds, agent_tokens_used. */
  trackAgentExecution(metrics: AgentExecutionMetrics): void;
  /** tool_calls_total, tool_call_duration_seconds, tool_call_success_total / tool_call_failure_total. */
  trackToolUsage(metrics: ToolUsageMetrics): void;
  /** context_window_used_tokens, context_window_size_tokens, context_window_utilization (percent). */
  trackContextUsage(metrics: ContextUsageMetrics): void;
  /** error_total and error_rate (errors per second, 60 s exponentially weighted). */
  trackError(metrics: ErrorMetrics): void;
  /** task_duration_seconds, task_success_total / task_failure_total. */
  trackTask(metrics: TaskMetrics): void;
  /** task_queue_size{priority} = size. */
  trackQueueSize(priority: string, size: number): void;
  trackQueueSize(metrics: { priority: string; size: number }): void;
}

/** A W3C trace context (from extract/extractEnv or Span.spanContext()). */
export declare class SpanContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  /** The validated tracestate list ("" if none). */
  readonly traceState: string;
  /** The traceparent header value. */
  toString(): string;
}

/** A span (a 48-byte libatel span value). A span that failed to start is a no-op span. */
export declare class Span {
  readonly name: string;
  readonly kind: SpanKind;
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** 16 lowercase hex digits. */
  readonly spanId: string;
  /** undefined for a root span. */
  readonly parentSpanId: string | undefined;
  readonly traceFlags: number;
  readonly isRecording: boolean;
  readonly ended: boolean;
  spanContext(): SpanContext;
}

/** Something headers can be read from / written to: a plain object, fetch's Headers, a Map. */
export type HeaderCarrier =
  | Record<string, string | string[] | undefined>
  | { get(name: string): string | null | undefined; set(name: string, value: string): unknown };

export interface TraceContext {
  startTrace(name: string, kind?: SpanKind): Span;
  startSpan(parent: Span | null | undefined, name: string, kind?: SpanKind): Span;
  /** Joins a remote trace; without a context (undefined), starts a new trace. */
  continueTrace(ctx: SpanContext | undefined, name: string, kind?: SpanKind): Span;
  setAttributes(span: Span, attributes: Attributes): void;
  setAttribute(span: Span, key: string, value: AttributeValue): void;
  addEvent(span: Span, name: string, attributes?: Attributes): void;
  recordError(span: Span, error: unknown): void;
  endSpan(span: Span, status?: SpanStatus): void;
  /** traceparent header value of the span, undefined for a no-op span. */
  propagate(span: Span): string | undefined;
  inject<C extends HeaderCarrier>(span: Span, headers: C): C;
  inject(span: Span): Record<string, string>;
  /** A traceparent value or a headers carrier -> context; undefined if absent or invalid. */
  extract(carrier: string | HeaderCarrier | undefined): SpanContext | undefined;
  /** TRACEPARENT/TRACESTATE for a child process (default: process.env). */
  injectEnv<E extends Record<string, string | undefined>>(span: Span, env?: E): E;
  /** TRACEPARENT (else TRACE_CONTEXT) and TRACESTATE (default: process.env). */
  extractEnv(env?: Record<string, string | undefined>): SpanContext | undefined;
}

export declare const metricsCollector: MetricsCollector;
export declare const traceContext: TraceContext;

export interface AtelStats {
  records: number;
  definitions: number;
  meta: number;
  slots: number;
  drops_ring_full: number;
  drops_no_ring: number;
  drops_no_def: number;
  drops_no_sidecar: number;
  drops_reentrant: number;
  invalid: number;
  rings_claimed: number;
  rings_released: number;
  attach_attempts: number;
  attached: boolean;
}

/** Attach to the sidecar's segment ($ATEL_SHM, else "atel"); 0 or -errno. Optional: recording attaches lazily. */
export declare function init(shmName?: string): number;
/** Releases this process's rings (call when no worker thread records any more). */
export declare function shutdown(): void;
export declare function attached(): boolean;
/** Why the last rejected call of this thread was rejected ("" if none). */
export declare function lastError(): string;
export declare function stats(): AtelStats;
