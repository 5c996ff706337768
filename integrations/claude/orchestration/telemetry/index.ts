// SPDX-License-Identifier: MIT
// .claude/orchestration/telemetry: docs/reference.md's import path, served by the
// atel Node.js binding (bindings/node; `npm install /path/to/atel/bindings/node`
// in the orchestrator's project). With this file in place, the reference's
//   import { metricsCollector, traceContext } from '.claude/orchestration/telemetry';
// records into libatel's shared-memory rings, drained by ateld.
export * from 'atel';
