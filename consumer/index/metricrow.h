/* SPDX-License-Identifier: MIT */
/*
 * metricrow.h - the text forms of a telemetry_metrics row that more than one
 * producer of such rows must spell byte for byte alike: the index writer
 * (writer.c) and the virtual table over the log (logvtab.c). No SQLite here,
 * so the loadable extension (atel_sqlite.so) links it without a second copy
 * of SQLite.
 */
#ifndef ATEL_METRICROW_H
#define ATEL_METRICROW_H

#include "buf.h"
#include "decode.h"

/* The `labels` column of a series: a JSON object, keys sorted (the decoder's
 * order), no spaces, strings escaped by atel__json_str. Resets b first.
 * @return 0, or -ENOMEM (b->oom). */
int atel__mrow_labels_json(struct atel_buf *b, const struct atel_dec_series *ds);

#endif /* ATEL_METRICROW_H */
