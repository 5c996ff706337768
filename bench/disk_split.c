/* SPDX-License-Identifier: MIT */
/*
 * disk_split - how a segment log's bytes divide between metric samples and
 * spans, for bench/disk_cost.sh. Reads the decoded records (`atel replay
 * --emit raw`: 64-byte slots, a record's continuation slots after it), sorts
 * them into two streams (span_start..span_error, and everything else:
 * samples, definitions, markers), cuts each stream into frames of the given
 * size, encodes them as the log does (COLUMNS block or plain records) and
 * compresses each frame with zstd at the given level. Prints
 * "samples_bytes spans_bytes": what each side costs on its own with the
 * log's own encoder; the script splits the real log's bytes in that ratio.
 *
 *   disk_split RAW_FILE columns|records LEVEL FRAME_BYTES
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "segformat.h"

static size_t side_bytes(const unsigned char *s, size_t len, bool cols, int level, size_t frame)
{
	size_t total = 0, cap = ZSTD_compressBound(atel__cols_bound(frame / 64));
	unsigned char *enc = malloc(atel__cols_bound(frame / 64)), *z = malloc(cap);
	ZSTD_CCtx *cx = ZSTD_createCCtx();

	if (!enc || !z || !cx) {
		fprintf(stderr, "disk_split: out of memory\n");
		exit(2);
	}
	for (size_t off = 0; off < len; off += frame) {
		size_t n = len - off < frame ? len - off : frame;
		const void *src = s + off;
		size_t srclen = n;
		if (cols) {
			srclen = atel__cols_encode(s + off, n / 64, enc);
			src = enc;
		}
		size_t r = ZSTD_compressCCtx(cx, z, cap, src, srclen, level);
		if (ZSTD_isError(r)) {
			fprintf(stderr, "disk_split: zstd: %s\n", ZSTD_getErrorName(r));
			exit(2);
		}
		total += r;
	}
	ZSTD_freeCCtx(cx);
	free(enc);
	free(z);
	return total;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: disk_split RAW_FILE columns|records LEVEL FRAME_BYTES\n");
		return 1;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *raw = malloc((size_t)len + 1), *side[2];
	size_t n[2] = { 0, 0 };
	side[0] = malloc((size_t)len + 1);
	side[1] = malloc((size_t)len + 1);
	if (!raw || !side[0] || !side[1] || fread(raw, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "disk_split: cannot read %s\n", argv[1]);
		return 2;
	}
	fclose(f);
	int cur = 0;
	for (long off = 0; off + 64 <= len; off += 64) {
		unsigned t = raw[off];
		if (t >= 1 && t <= 0x7f) /* a record's head; other bytes: a continuation slot */
			cur = t >= ATEL_REC_SPAN_START && t <= ATEL_REC_SPAN_ERROR;
		memcpy(side[cur] + n[cur], raw + off, 64);
		n[cur] += 64;
	}
	bool cols = strcmp(argv[2], "columns") == 0;
	int level = atoi(argv[3]);
	size_t frame = (size_t)strtoul(argv[4], NULL, 10) & ~(size_t)63;
	if (frame < 64)
		frame = 64;
	printf("%zu %zu\n", side_bytes(side[0], n[0], cols, level, frame), side_bytes(side[1], n[1], cols, level, frame));
	free(raw);
	free(side[0]);
	free(side[1]);
	return 0;
}
