/* SPDX-License-Identifier: MIT */
/*
 * metricrow.c - text forms of telemetry_metrics rows (metricrow.h).
 */
#include <errno.h>

#include "metricrow.h"

int atel__mrow_labels_json(struct atel_buf *b, const struct atel_dec_series *ds)
{
	atel__buf_reset(b);
	atel__buf_put(b, "{", 1);
	for (uint32_t i = 0; i < ds->nlabels && i < ATEL_LABELS_MAX; i++) {
		if (i)
			atel__buf_put(b, ",", 1);
		atel__json_str(b, ds->keys[i]);
		atel__buf_put(b, ":", 1);
		atel__json_str(b, ds->values[i]);
	}
	atel__buf_put(b, "}", 1);
	return b->oom ? -ENOMEM : 0;
}
