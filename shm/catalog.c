/* SPDX-License-Identifier: MIT */
#include "catalog.h"

#include <stddef.h>
#include <string.h>

/*
 * Agent executions and tasks run from milliseconds (a cached answer) to tens
 * of minutes (a long coding session); tool calls from a millisecond (a file
 * read) to a few minutes (a test run). Upper bounds in seconds.
 */
static const double agent_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
};
static const double tool_bounds[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
};
static const double task_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
};

#define NB(a) (uint32_t)(sizeof(a) / sizeof((a)[0])), a

const struct atel_catalog_metric atel__catalog[ATEL_CATALOG_COUNT] = {
	[ATEL_CAT_AGENT_EXECUTION_TOTAL] = { "agent_execution_total", ATEL_MT_COUNTER, 3,
		{ "agent_type", "phase", "status" }, "Total agent executions", "", 0, NULL },
	[ATEL_CAT_AGENT_EXECUTION_DURATION_SECONDS] = { "agent_execution_duration_seconds",
		ATEL_MT_HISTOGRAM, 2, { "agent_type", "phase" }, "Agent execution duration", "seconds",
		NB(agent_bounds) },
	[ATEL_CAT_AGENT_TOKENS_USED] = { "agent_tokens_used", ATEL_MT_COUNTER, 2,
		{ "agent_type", "model" }, "Tokens consumed", "tokens", 0, NULL },
	[ATEL_CAT_TOOL_CALLS_TOTAL] = { "tool_calls_total", ATEL_MT_COUNTER, 2, { "tool", "status" },
		"Total tool invocations", "", 0, NULL },
	[ATEL_CAT_TOOL_CALL_DURATION_SECONDS] = { "tool_call_duration_seconds", ATEL_MT_HISTOGRAM, 1,
		{ "tool" }, "Tool call duration", "seconds", NB(tool_bounds) },
	[ATEL_CAT_TOOL_CALL_SUCCESS_TOTAL] = { "tool_call_success_total", ATEL_MT_COUNTER, 1, { "tool" },
		"Successful tool calls", "", 0, NULL },
	[ATEL_CAT_TOOL_CALL_FAILURE_TOTAL] = { "tool_call_failure_total", ATEL_MT_COUNTER, 2,
		{ "tool", "error_type" }, "Failed tool calls", "", 0, NULL },
	[ATEL_CAT_CONTEXT_WINDOW_UTILIZATION] = { "context_window_utilization", ATEL_MT_GAUGE, 2,
		{ "agent_id", "session_id" }, "Context usage %", "%", 0, NULL },
	[ATEL_CAT_CONTEXT_WINDOW_SIZE_TOKENS] = { "context_window_size_tokens", ATEL_MT_GAUGE, 1,
		{ "agent_id" }, "Total window size", "tokens", 0, NULL },
	[ATEL_CAT_CONTEXT_WINDOW_USED_TOKENS] = { "context_window_used_tokens", ATEL_MT_GAUGE, 1,
		{ "agent_id" }, "Used tokens", "tokens", 0, NULL },
	[ATEL_CAT_ERROR_RATE] = { "error_rate", ATEL_MT_GAUGE, 2, { "component", "error_type" },
		"Errors per second", "", 0, NULL },
	[ATEL_CAT_ERROR_TOTAL] = { "error_total", ATEL_MT_COUNTER, 3,
		{ "component", "error_type", "severity" }, "Total errors", "", 0, NULL },
	[ATEL_CAT_TASK_QUEUE_SIZE] = { "task_queue_size", ATEL_MT_GAUGE, 1, { "priority" },
		"Current queue size", "", 0, NULL },
	[ATEL_CAT_TASK_DURATION_SECONDS] = { "task_duration_seconds", ATEL_MT_HISTOGRAM, 2,
		{ "task_type", "status" }, "Task duration", "seconds", NB(task_bounds) },
	[ATEL_CAT_TASK_SUCCESS_TOTAL] = { "task_success_total", ATEL_MT_COUNTER, 1, { "task_type" },
		"Successful tasks", "", 0, NULL },
	[ATEL_CAT_TASK_FAILURE_TOTAL] = { "task_failure_total", ATEL_MT_COUNTER, 2,
		{ "task_type", "error_type" }, "Failed tasks", "", 0, NULL },
};

const struct atel_catalog_metric *atel__catalog_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ATEL_CATALOG_COUNT; i++)
		if (strcmp(atel__catalog[i].name, name) == 0)
			return &atel__catalog[i];
	return NULL;
}

static const struct atel_catalog_metric *find_stripped(const char *name, const char *suffix,
						       uint8_t only_type)
{
	size_t n = strlen(name), s = strlen(suffix);

	if (n <= s || strcmp(name + n - s, suffix) != 0)
		return NULL;
	for (size_t i = 0; i < ATEL_CATALOG_COUNT; i++) {
		const struct atel_catalog_metric *m = &atel__catalog[i];
		if (m->mtype == only_type && strlen(m->name) == n - s && strncmp(m->name, name, n - s) == 0)
			return m;
	}
	return NULL;
}

const struct atel_catalog_metric *atel__catalog_find_exposed(const char *name)
{
	const struct atel_catalog_metric *m;

	if (!name)
		return NULL;
	if ((m = atel__catalog_find(name)))
		return m;
	if ((m = find_stripped(name, "_total", ATEL_MT_COUNTER)))
		return m;
	if ((m = find_stripped(name, "_bucket", ATEL_MT_HISTOGRAM)))
		return m;
	if ((m = find_stripped(name, "_sum", ATEL_MT_HISTOGRAM)))
		return m;
	return find_stripped(name, "_count", ATEL_MT_HISTOGRAM);
}
