#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python link of the Node -> C -> Python trace test (run by trace_hop):
joins the trace its parent left in TRACEPARENT as span "python-sub-agent".
Exit 1 if the environment carried no valid context."""
import sys

import atel
from atel import SpanKind, trace_context

ctx = trace_context.extract_env()
with trace_context.continue_trace(ctx, "python-sub-agent", SpanKind.INTERNAL) as span:
    trace_context.set_attributes(span, {"language": "python", "pid_parent_seen": ctx is not None})
atel.shutdown()
sys.exit(0 if ctx is not None else 1)
