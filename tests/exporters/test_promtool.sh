#!/usr/bin/env bash
# `promtool check metrics` must report nothing (no lint problem, no parse
# error) on the /metrics text of a workload that uses every catalog metric,
# awkward label values and all self-metrics. Skips (77) without promtool.
set -euo pipefail
dump=$1
command -v promtool >/dev/null || { echo "promtool not installed"; exit 77; }
out=$("$dump")
# sanity: the text really holds every family (a broken dump must not pass)
for f in agent_execution_total agent_execution_duration_seconds agent_tokens_used_total tool_calls_total \
         tool_call_duration_seconds tool_call_success_total tool_call_failure_total \
         context_window_utilization context_window_size_tokens context_window_used_tokens error_rate \
         error_total task_queue_size task_duration_seconds task_success_total task_failure_total \
         atel_records_drained_total atel_records_dropped_total atel_series_overflow_total; do
  grep -q "^# TYPE $f " <<<"$out" || { echo "missing family $f"; exit 1; }
done
report=$(promtool check metrics <<<"$out" 2>&1) && rc=0 || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$report" ]; then
  echo "promtool check metrics (exit $rc) reported:"
  echo "$report"
  exit 1
fi
echo "promtool: clean ($(wc -l <<<"$out") lines)"
