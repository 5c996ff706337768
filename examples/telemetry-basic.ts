// SPDX-License-Identifier: MIT
//
// telemetry-basic.ts: docs/reference.md's "Basic Usage" through the Node.js binding
// (bindings/node), the TypeScript twin of telemetry-basic.c. Run with a
// sidecar (ateld) up, or without one: the calls are then counted no-ops. The
// segment name comes from $ATEL_SHM (default "atel").
//
// 'atel' is bindings/node (npm install ./bindings/node, or NODE_PATH at a
// folder holding a link named atel to it). Compile and run:
//   node bindings/node/node_modules/typescript/bin/tsc -p bindings/node/tsconfig.examples.json
//   NODE_PATH=... node build/examples-ts/telemetry-basic.js
import { metricsCollector, traceContext, stats, shutdown, SpanKind } from 'atel';

// Track agent execution
metricsCollector.trackAgentExecution({
  agentId: 'coder-123',
  agentType: 'coder',
  duration: 5000, // milliseconds
  tokens: 1500,
  success: true,
  phase: 'code',
});

// Track tool usage
metricsCollector.trackToolUsage({
  tool: 'Read',
  duration: 250,
  success: true,
});

// Track context window usage
metricsCollector.trackContextUsage({
  used: 75000,
  total: 200000,
  agentId: 'coder-123',
});

// Start distributed tracing
const rootSpan = traceContext.startTrace('orchestration-session', SpanKind.INTERNAL);
traceContext.setAttributes(rootSpan, {
  sessionId: 'session-123',
  coordinator: 'hierarchical',
});

// Create child span for sub-agent
const childSpan = traceContext.startSpan(rootSpan, 'coder-execution');
// ... execute agent work ...
traceContext.endSpan(childSpan);
traceContext.endSpan(rootSpan);

const st = stats();
const dropped = st.drops_ring_full + st.drops_no_ring + st.drops_no_def + st.drops_no_sidecar;
console.log(`telemetry-basic: ${st.records} records written, ${dropped} dropped ` +
  `(sidecar ${st.attached ? 'attached' : 'absent'}), trace ${rootSpan.traceId}`);
shutdown();
