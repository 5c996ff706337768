/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `otlp_receive`: the OTLP receiver end to end on a real
 * segment (a file under /tmp), without its HTTP server: arbitrary bodies
 * (first byte: traces or metrics, protobuf or JSON, gzip or not) go
 * through decoding, conversion and publication into the ring. Checks the
 * receiver's promise beyond "no crash": the answer is one of the documented
 * statuses, and every record it published is one the drain accepts (the
 * structural check and the consumer's decoder find nothing invalid, and
 * time-checked records are within the drain's bounds), so a 200 is never
 * followed by a refusal. The "drain" then frees the ring.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decode.h"
#include "otlp_receiver.h"
#include "ring.h"
#include "segment.h"
#include "util.h"

static struct atel_segment seg;
static struct atel_otlp_recv *rx;
static struct atel_decoder *dec;
static char path[64];
static uint64_t pos[4];

static void cleanup(void)
{
	atel__otlp_recv_stop(rx);
	atel__decoder_free(dec);
	atel__segment_detach(&seg);
	atel__segment_unlink(path);
}

static void init(void)
{
	struct atel_segment_config cfg = { .ring_count = 4, .ring_capacity = 4096, .mode = 0600 };
	struct atel_otlp_recv_opts o = { 0 };
	char err[256];

	snprintf(path, sizeof(path), "/tmp/atel-fuzz-otlp-receive-%d", (int)getpid());
	if (atel__segment_create(&seg, path, &cfg, err, sizeof(err)))
		abort();
	o.seg = &seg;
	o.max_body = 1u << 16;
	o.wait_ms = 1;
	if (atel__otlp_recv_open(&rx, &o) || !(dec = atel__decoder_new()))
		abort();
	atexit(cleanup);
}

/* What the drain does with ring r's new records: check, decode, release. */
static void drain(uint32_t r, uint64_t now)
{
	uint64_t h = atomic_load(&atel__seg_desc(&seg, r)->head), cap = seg.ring_capacity;
	const union atel_slot *slots = atel__seg_slots(&seg, r);
	static union atel_slot rec[256];

	while (pos[r] < h) {
		struct atel_event ev;
		unsigned n = h - pos[r] < 256 ? (unsigned)(h - pos[r]) : 256;
		int k;

		for (unsigned j = 0; j < n; j++)
			rec[j] = slots[(pos[r] + j) & (cap - 1)];
		k = atel__rec_check(rec, n, NULL);
		if (k <= 0)
			abort(); /* structurally invalid (or a record longer than 256 slots) */
		if (atel__decode(dec, r, pos[r], rec, (unsigned)k, &ev) < 0)
			abort(); /* the drain would count it INVALID */
		switch (rec[0].h.type) {
		case 1: case 2: case 6: case 7: case 8: case 9: case 10: case 11: case 13:
			/* the drain's bounds (docs/abi.md 6): not ahead by 60 s, not before 2001 */
			if (rec[0].h.ts_ns > now + 60ull * 1000000000ull || rec[0].h.ts_ns < 978307200ull * 1000000000ull)
				abort();
			break;
		default:
			break;
		}
		pos[r] += (uint64_t)k;
	}
	atel__ring_release(&seg, r, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_buf ans = { 0 };
	unsigned mode;
	int st;

	if (!rx)
		init();
	if (size < 1)
		return 0;
	mode = data[0];
	st = atel__otlp_recv_post(rx, (mode & 1) ? "/v1/traces" : "/v1/metrics",
				  (mode & 2) ? "application/json" : "application/x-protobuf", (mode & 4) ? "gzip" : NULL,
				  data + 1, size - 1, &ans);
	if (st != 200 && st != 400 && st != 413 && st != 503)
		abort();
	for (uint32_t r = 0; r < seg.ring_count; r++)
		drain(r, atel__now_ns());
	atel__buf_free(&ans);
	return 0;
}
