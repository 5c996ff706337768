/* SPDX-License-Identifier: MIT */
/*
 * bench_exporters.c - Prometheus text and JSON-file encoding cost per export
 * for 1000 series (4 counter, 3 gauge, 3 histogram families of 100 series;
 * histograms with 10 bounds), beside docs/reference.md's "Export (1000 metrics):
 * ~50ms (Prometheus), ~100ms (JSON)". The snapshot comes from a real
 * aggregator (so the sort and copy are measured too), the output buffer is
 * reused across exports as in the exporters. Also: applying one SAMPLE to the
 * aggregates, and a full /metrics scrape over loopback HTTP.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aggregates.h"
#include "bench.h"
#include "http.h"
#include "json_export.h"
#include "prometheus.h"
#include "remote_write_encode.h"

#include <snappy-c.h>
#include <zlib.h>

#define NFAM 10
#define PER_FAM 100

static const double BOUNDS[10] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

struct fixture {
	struct atel_dec_series ser[NFAM * PER_FAM];
	char names[NFAM][48];
	char vals[NFAM * PER_FAM][3][24];
};

static uint64_t hash_series(const struct atel_dec_series *s)
{
	uint64_t h = 1469598103934665603ull;

	for (const char *c = s->name; *c; c++)
		h = (h ^ (unsigned char)*c) * 1099511628211ull;
	for (uint32_t i = 0; i < s->nlabels; i++) {
		for (const char *c = s->keys[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
		for (const char *c = s->values[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
	}
	return h;
}

static void apply(struct atel_agg *a, const struct atel_dec_series *s, double v)
{
	struct atel_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = ATEL_EV_SAMPLE;
	ev.ts_ns = 1700000000000000000ull;
	ev.sample.series = s;
	ev.sample.value = v;
	ev.sample.set = s->mtype == ATEL_MT_GAUGE;
	atel__agg_apply(a, &ev);
}

static void build(struct fixture *f, struct atel_agg *a)
{
	static const uint8_t types[NFAM] = { ATEL_MT_COUNTER, ATEL_MT_COUNTER, ATEL_MT_COUNTER, ATEL_MT_COUNTER,
					     ATEL_MT_GAUGE,   ATEL_MT_GAUGE,   ATEL_MT_GAUGE,   ATEL_MT_HISTOGRAM,
					     ATEL_MT_HISTOGRAM, ATEL_MT_HISTOGRAM };

	for (int i = 0; i < NFAM; i++) {
		snprintf(f->names[i], sizeof(f->names[i]), "bench_metric_%d%s", i,
			 types[i] == ATEL_MT_HISTOGRAM ? "_seconds" : "");
		for (int k = 0; k < PER_FAM; k++) {
			int j = i * PER_FAM + k;
			struct atel_dec_series *s = &f->ser[j];

			snprintf(f->vals[j][0], 24, "type-%d", k % 10);
			snprintf(f->vals[j][1], 24, "phase-%d", k / 10);
			snprintf(f->vals[j][2], 24, "%s", k % 3 ? "success" : "failure");
			memset(s, 0, sizeof(*s));
			s->mtype = types[i];
			s->name = f->names[i];
			s->nlabels = 3;
			s->keys[0] = "agent_type";
			s->keys[1] = "phase";
			s->keys[2] = "status";
			for (int l = 0; l < 3; l++)
				s->values[l] = f->vals[j][l];
			if (types[i] == ATEL_MT_HISTOGRAM) {
				s->nbounds = 10;
				s->bounds = BOUNDS;
			}
			s->key_hash = hash_series(s);
			for (int n = 0; n < 20; n++)
				apply(a, s, types[i] == ATEL_MT_HISTOGRAM ? 0.001 * (n * n + j % 7) : 1.5 * n + j);
		}
	}
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static int metrics_body(void *arg, struct atel_buf *body)
{
	struct atel_agg_snapshot *snap;
	int rc = atel__agg_snapshot(arg, &snap);

	if (rc)
		return rc;
	rc = atel__prom_encode(body, snap, NULL, NULL, NULL);
	atel__agg_snapshot_free(snap);
	return rc;
}

/* One keep-alive GET /metrics; @return bytes of the response or -errno. */
static long scrape(int fd, char *buf, size_t cap)
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n";
	size_t len = 0, need = 0;

	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
		return -EIO;
	for (;;) {
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			return -EIO;
		len += (size_t)n;
		buf[len] = '\0';
		if (!need) {
			char *e = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
			if (e && cl)
				need = (size_t)(e + 4 - buf) + strtoul(cl + 16, NULL, 10);
		}
		if (need && len >= need)
			return (long)len;
		if (len + 1 >= cap)
			return -ENOBUFS;
	}
}

struct rw_acc {
	uint64_t bytes, raw;
};

static int rw_compress(void *arg, const void *data, size_t len, uint32_t nsamples)
{
	struct rw_acc *acc = arg;
	size_t out = snappy_max_compressed_length(len);
	char *c = malloc(out);
	int rc = 0;

	(void)nsamples;
	if (!c || snappy_compress(data, len, c, &out) != SNAPPY_OK)
		rc = -ENOMEM;
	acc->bytes += out;
	acc->raw += len;
	free(c);
	return rc;
}

static int run_exporters(const struct bench_opts *o)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct bench_hist *h = bench_hist_new(false);
	struct atel_agg *a = NULL;
	struct atel_agg_snapshot *snap = NULL;
	struct atel_buf b = { 0 };
	struct atel_recent_spans *spans = NULL;
	int iters = o->quick ? 30 : 300, rc = 0;
	char method[256];

	if (!f || !h || atel__agg_new(&a, 10000) || atel__spans_new(&spans, 100, 100)) {
		rc = -ENOMEM;
		goto out;
	}
	build(f, a);

	/* snapshot + encode, the work of one scrape / one JSON export */
	for (int c = 0; c < 3; c++) {
		static const char *const figs[] = { "aggregates snapshot, 1000 series (p50)",
						    "Prometheus text, 1000 series: snapshot + encode (p50)",
						    "JSON file document, 1000 series: snapshot + encode (p50)" };
		static const double base[] = { -1, 50.0, 100.0 };
		double p50, p99;
		uint64_t cpu[300];
		int ncpu = 0;

		bench_hist_reset(h);
		for (int i = 0; i < iters + 3; i++) {
			uint64_t t0 = bench_now_ns(), c0 = cpu_ns();
			atel__buf_reset(&b);
			if ((rc = atel__agg_snapshot(a, &snap)))
				goto out;
			if (c == 1)
				rc = atel__prom_encode(&b, snap, NULL, NULL, NULL);
			else if (c == 2)
				rc = atel__json_encode(&b, snap, spans, 0, 1700000000000000000ull, 1700000060000000000ull, 1,
						       NULL);
			atel__agg_snapshot_free(snap);
			snap = NULL;
			if (rc)
				goto out;
			if (i >= 3) { /* warm-up: buffer growth */
				bench_hist_add(h, bench_now_ns() - t0);
				if (ncpu < 300)
					cpu[ncpu++] = cpu_ns() - c0;
			}
		}
		p50 = bench_hist_pct_ns(h, 0.5) / 1e6;
		p99 = bench_hist_pct_ns(h, 0.99) / 1e6;
		qsort(cpu, (size_t)ncpu, sizeof(cpu[0]), cmp_u64);
		if (c == 0)
			snprintf(method, sizeof(method),
				 "%d snapshots (copy under the lock, sort outside); p99 %.3f ms; thread CPU p50 %.3f ms",
				 iters, p99, ncpu ? (double)cpu[ncpu / 2] / 1e6 : 0);
		else
			snprintf(method, sizeof(method),
				 "%d exports into a reused buffer, CLOCK_MONOTONIC per export; %zu bytes; p99 %.3f ms; "
				 "thread CPU p50 %.3f ms; baseline: docs/reference.md ~%.0f ms",
				 iters, b.len, p99, ncpu ? (double)cpu[ncpu / 2] / 1e6 : 0, base[c]);
		bench_row("exporters", figs[c], p50, "ms", base[c], c ? "< 1 ms" : NULL, c ? p50 < 1.0 : -1, method);
	}

	/* one SAMPLE applied (follower thread cost per metric event) */
	{
		int n = o->quick ? 200000 : 2000000;
		uint64_t t0 = bench_now_ns();
		for (int i = 0; i < n; i++)
			apply(a, &f->ser[(i * 7) % (NFAM * PER_FAM)], 1);
		double ns = (double)(bench_now_ns() - t0) / n;
		snprintf(method, sizeof(method),
			 "batch of %d over 1000 existing series (hash probe, label compare, update under the mutex)", n);
		bench_row("exporters", "aggregate one SAMPLE (mean)", ns, "ns", -1, NULL, -1, method);
	}

	/* a full scrape over loopback HTTP */
	{
		/* body_reuse_ms 1 plus a pause between scrapes: every scrape encodes afresh */
		struct atel_http_opts ho = { .bind = "127.0.0.1", .port = 0, .metrics = metrics_body, .arg = a,
					     .body_reuse_ms = 1 };
		struct atel_http_server *srv = NULL;
		struct sockaddr_in sa = { .sin_family = AF_INET };
		char err[256], *rbuf = malloc(8 << 20);
		int fd = -1;
		long got = 0;

		if (!rbuf || atel__http_start(&srv, &ho, err, sizeof(err)) < 0) {
			free(rbuf);
			rc = -EIO;
			goto out;
		}
		sa.sin_port = htons(atel__http_port(srv));
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			rc = -errno;
		} else {
			bench_hist_reset(h);
			for (int i = 0; i < iters / 3 + 3; i++) {
				uint64_t t0 = bench_now_ns();
				if ((got = scrape(fd, rbuf, 8 << 20)) < 0) {
					rc = (int)got;
					break;
				}
				if (i >= 3)
					bench_hist_add(h, bench_now_ns() - t0);
				{
					struct timespec pause = { 0, 2000000 };
					nanosleep(&pause, NULL);
				}
			}
			snprintf(method, sizeof(method),
				 "keep-alive GET /metrics over 127.0.0.1, snapshot + encode + send each time (epoll server thread; %ld-byte response)", got);
			if (!rc)
				bench_row("exporters", "/metrics scrape over loopback, 1000 series (p50)",
					  bench_hist_pct_ns(h, 0.5) / 1e6, "ms", 50.0, NULL, -1, method);
		}
		if (fd >= 0)
			close(fd);
		atel__http_stop(srv);
		free(rbuf);
	}
	/* Prometheus remote write: the same 1000 series as one batch (issue 19): encode + snappy per sample,
	 * and the bytes per sample on the wire; and the /metrics body gzipped (issue 13) */
	{
		struct rw_acc acc = { 0 };
		uint64_t samples = 0, t0;
		int n = iters / 3 + 3;

		bench_hist_reset(h);
		for (int i = 0; i < n; i++) {
			if ((rc = atel__agg_snapshot(a, &snap)))
				goto out;
			samples = atel__rw_samples(snap);
			acc.bytes = acc.raw = 0;
			t0 = bench_now_ns();
			rc = atel__rw_encode(snap, 1700000000000, NULL, 0, 2000, rw_compress, &acc);
			if (i >= 3)
				bench_hist_add(h, bench_now_ns() - t0);
			atel__agg_snapshot_free(snap);
			snap = NULL;
			if (rc)
				goto out;
		}
		snprintf(method, sizeof(method),
			 "one batch = every series' cumulative value (%" PRIu64 " samples: histograms as buckets+3), "
			 "WriteRequest protobuf + snappy per 2000-sample request; p50 %.3f ms per batch; %.1f raw bytes/sample",
			 samples, bench_hist_pct_ns(h, 0.5) / 1e6, (double)acc.raw / (double)samples);
		bench_row("exporters", "remote write: encode + snappy throughput (p50)",
			  (double)samples / (bench_hist_pct_ns(h, 0.5) / 1e9), "samples/s", -1, NULL, -1, method);
		snprintf(method, sizeof(method), "snappy-compressed WriteRequest bytes / samples, %" PRIu64 " samples", samples);
		bench_row("exporters", "remote write: bytes per sample on the wire", (double)acc.bytes / (double)samples,
			  "B", -1, NULL, -1, method);
	}
	{
		struct atel_buf body = { 0 };
		uLongf zlen;
		Bytef *z;

		if ((rc = atel__agg_snapshot(a, &snap)))
			goto out;
		rc = atel__prom_encode(&body, snap, NULL, NULL, NULL);
		atel__agg_snapshot_free(snap);
		snap = NULL;
		zlen = compressBound((uLong)body.len);
		z = malloc(zlen);
		if (!rc && z && compress2(z, &zlen, (const Bytef *)body.data, (uLong)body.len, 1) == Z_OK) {
			snprintf(method, sizeof(method),
				 "zlib level 1 (what /metrics sends to Accept-Encoding: gzip) of the %zu-byte text body", body.len);
			bench_row("exporters", "/metrics gzip ratio, 1000 series", (double)body.len / (double)zlen, "x", -1,
				  NULL, -1, method);
		}
		free(z);
		atel__buf_free(&body);
		if (rc)
			goto out;
	}
out:
	atel__buf_free(&b);
	atel__spans_free(spans);
	atel__agg_free(a);
	bench_hist_free(h);
	free(f);
	return rc;
}

BENCH_SECTION("exporters", 30, "Prometheus text and JSON files: 1000 series per export; aggregation; a loopback scrape",
	      run_exporters)
