// SPDX-License-Identifier: MIT
// Compiled with `tsc --noEmit` (bindings/node/tsconfig.json), never run: the
// declarations accept docs/reference.md's calls as written and reject misuse.
import { metricsCollector, traceContext, SpanKind, SpanStatusCode, Span, SpanContext, Counter } from 'atel';

const root: Span = traceContext.startTrace('orchestration-session', SpanKind.SERVER);
traceContext.setAttributes(root, { sessionId: 'session-123', coordinator: 'hierarchical', totalAgents: 5 });
const child = traceContext.startSpan(root, 'coder-execution', SpanKind.INTERNAL);
traceContext.addEvent(child, 'code_generation_started', { files: 3, language: 'typescript' });
try {
  throw new Error('x');
} catch (error) {
  traceContext.recordError(child, error);
}
traceContext.endSpan(child, { code: SpanStatusCode.OK });
traceContext.endSpan(root, { code: SpanStatusCode.ERROR, message: 'failed' });
const header: string | undefined = traceContext.propagate(root);
const ctx: SpanContext | undefined = traceContext.extract(header);
traceContext.continueTrace(ctx, 'sub-agent-work');
const h = traceContext.inject(root, {} as Record<string, string>);
traceContext.extract(h);
traceContext.injectEnv(root, { ...process.env });
traceContext.extractEnv();
const c: Counter = metricsCollector.counter('jobs_done_total', { queue: 'build' });
c.add(1);
metricsCollector.histogram('step_seconds', {}, [0.1, 1, 10]).observe(0.5);
metricsCollector.trackError({ component: 'planner', errorType: 'timeout' });
metricsCollector.trackTask({ taskType: 'build', duration: 10, success: false, errorType: 'exit' });
metricsCollector.trackQueueSize('high', 3);

// @ts-expect-error: duration is required
metricsCollector.trackToolUsage({ tool: 'Read', success: true });
// @ts-expect-error: kinds are SpanKind values
traceContext.startTrace('x', 7);
// @ts-expect-error: a status is an object with a code
traceContext.endSpan(root, 'ok');

// docs/reference.md's own import path, through integrations/claude/orchestration/telemetry
import { metricsCollector as refCollector, traceContext as refTrace } from '../../integrations/claude/orchestration/telemetry';
refCollector.trackContextUsage({ used: 75000, total: 200000, agentId: 'coder-123' });
refTrace.endSpan(refTrace.startTrace('orchestration-session'));
