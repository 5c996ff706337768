/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `otlp_state`: the OTLP receiver's cumulative state file
 * (<data_dir>/state/otlp-receiver.streams, exporters/otlp_receiver.c
 * "Cumulative state file") is bytes from disk. First input byte: odd, the
 * rest is the file as is; even, the rest goes between the magic and a
 * correct checksum, so the fuzzer reaches the structure behind the
 * checksum. The marker is resolved against a real segment. After a load
 * that succeeded, a cumulative sum point and a cumulative histogram point
 * go through the receiver (the loaded streams are used) and must be
 * answered 200 (or 503 when the ring is full).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otlp_receiver.h"
#include "ring.h"
#include "segment.h"
#include "util.h"

static struct atel_segment seg;
static struct atel_otlp_recv *rx;
static char path[64];

static void cleanup(void)
{
	atel__otlp_recv_stop(rx);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

static void init(void)
{
	struct atel_segment_config cfg = { .ring_count = 2, .ring_capacity = 1024, .mode = 0600 };
	struct atel_otlp_recv_opts o = { 0 };
	char err[256];

	snprintf(path, sizeof(path), "/tmp/atel-fuzz-otlp-state-%d", (int)getpid());
	if (atel__segment_create(&seg, path, &cfg, err, sizeof(err)))
		abort();
	o.seg = &seg;
	o.wait_ms = 1;
	if (atel__otlp_recv_open(&rx, &o))
		abort();
	atexit(cleanup);
}

/* The file's checksum: FNV-1a 64 with the low bit set (otlp_receiver.c fnv). */
static uint64_t fnv(const unsigned char *b, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h | 1;
}

static void post(const char *body)
{
	struct atel_buf ans = { 0 };
	int st = atel__otlp_recv_post(rx, "/v1/metrics", "application/json", NULL, body, strlen(body), &ans);

	if (st != 200 && st != 503)
		abort();
	atel__buf_free(&ans);
	for (uint32_t r = 0; r < seg.ring_count; r++)
		atel__ring_release(&seg, r, atomic_load(&atel__seg_desc(&seg, r)->head));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf;
	size_t len;
	char why[256], body[1024];
	unsigned long long now;
	int rc;

	if (!rx)
		init();
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		len = size - 1;
		if (!(buf = malloc(len ? len : 1)))
			return 0;
		memcpy(buf, data + 1, len);
	} else {
		uint64_t h;
		len = 8 + size - 1 + 8;
		if (!(buf = malloc(len)))
			return 0;
		memcpy(buf, "ATELOTS1", 8);
		memcpy(buf + 8, data + 1, size - 1);
		h = fnv(buf, len - 8);
		memcpy(buf + len - 8, &h, 8);
	}
	why[0] = '\0';
	rc = atel__otlp_recv_load_state(rx, buf, len, why, sizeof(why));
	free(buf);
	if (rc && (rc != -EINVAL || !why[0]) && rc != -ENOMEM)
		abort(); /* a refusal always says why */
	if (rc)
		return 0;
	now = (unsigned long long)atel__now_ns();
	snprintf(body, sizeof(body),
		 "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"jobs\",\"sum\":"
		 "{\"aggregationTemporality\":2,\"isMonotonic\":true,\"dataPoints\":[{\"startTimeUnixNano\":\"111\","
		 "\"timeUnixNano\":\"%llu\",\"asInt\":\"7\"}]}},{\"name\":\"lat\",\"histogram\":{"
		 "\"aggregationTemporality\":2,\"dataPoints\":[{\"startTimeUnixNano\":\"111\",\"timeUnixNano\":\"%llu\","
		 "\"count\":\"3\",\"sum\":4.5,\"bucketCounts\":[\"1\",\"2\"],\"explicitBounds\":[1]}]}}]}]}]}",
		 now, now);
	post(body);
	return 0;
}
