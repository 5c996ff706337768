/* SPDX-License-Identifier: MIT */
/* LTTng-UST tracepoint provider of peers_c.c: one event per call, the payload
 * of a metric sample (a series id and a double), like a libatel SAMPLE. */
#undef LTTNG_UST_TRACEPOINT_PROVIDER
#define LTTNG_UST_TRACEPOINT_PROVIDER atelpeer

#undef LTTNG_UST_TRACEPOINT_INCLUDE
#define LTTNG_UST_TRACEPOINT_INCLUDE "./atelpeer_tp.h"

#if !defined(ATELPEER_TP_H) || defined(LTTNG_UST_TRACEPOINT_HEADER_MULTI_READ)
#define ATELPEER_TP_H

#include <lttng/tracepoint.h>

LTTNG_UST_TRACEPOINT_EVENT(atelpeer, lat,
	LTTNG_UST_TP_ARGS(uint64_t, id, double, value),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, id, id)
		lttng_ust_field_float(double, value, value)))

LTTNG_UST_TRACEPOINT_EVENT(atelpeer, flat,
	LTTNG_UST_TP_ARGS(uint64_t, id, double, value),
	LTTNG_UST_TP_FIELDS(
		lttng_ust_field_integer(uint64_t, id, id)
		lttng_ust_field_float(double, value, value)))

#endif

#include <lttng/tracepoint-event.h>
