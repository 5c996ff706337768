/* SPDX-License-Identifier: MIT */
/*
 * remote_write_encode.h - Prometheus remote write 1.0 requests from an
 * aggregates snapshot: the protobuf `prometheus.WriteRequest` (encoded by
 * hand, docs/remote-write.md has the message layout), one sample per series
 * at one timestamp, named exactly as /metrics names them (a counter gets
 * `_total`; a histogram is `_bucket{le}`, `_sum`, `_count`), plus the
 * writer's own labels (job, instance). No I/O, no compression (the sender
 * snappy-compresses), no threads.
 */
#ifndef ATEL_REMOTE_WRITE_ENCODE_H
#define ATEL_REMOTE_WRITE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "aggregates.h"
#include "buf.h"

struct atel_rw_label {
	const char *name, *value;
};

/*
 * Encodes every series of snap as WriteRequests of at most max_samples
 * samples each (0: one request), each sample at ts_ms. extra (n_extra, may
 * be 0) are added to every series; a series' own label of the same name is
 * renamed `exported_<name>`, as Prometheus does on a scrape. Labels are
 * sorted by name, `__name__` included. For each request, emit(arg, bytes,
 * len, nsamples) is called; a non-zero return stops and is returned.
 * @return 0, -ENOMEM, or emit's return.
 */
int atel__rw_encode(const struct atel_agg_snapshot *snap, int64_t ts_ms, const struct atel_rw_label *extra,
		    uint32_t n_extra, uint32_t max_samples,
		    int (*emit)(void *arg, const void *data, size_t len, uint32_t nsamples), void *arg);

/* Samples atel__rw_encode writes for snap (histograms count nbounds + 3). */
uint64_t atel__rw_samples(const struct atel_agg_snapshot *snap);

#endif /* ATEL_REMOTE_WRITE_ENCODE_H */
