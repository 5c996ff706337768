/* SPDX-License-Identifier: MIT */
/* The LTTng-UST tracepoint provider (probes) of peers_c.c. */
#define LTTNG_UST_TRACEPOINT_CREATE_PROBES
#define LTTNG_UST_TRACEPOINT_DEFINE
#include "atelpeer_tp.h"
