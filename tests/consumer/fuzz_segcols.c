/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `segcols`: arbitrary bytes as the content of a COLUMNS
 * data frame (the bytes after zstd decompression, which a hostile file
 * controls fully). Contract checked: decode never reads past the block or
 * writes past its output (ASan), returns a multiple of 64 or -EBADMSG with a
 * message or -ENOSPC; and whatever it accepts re-encodes to a block that
 * decodes to the same records (the encoding is lossless); and the input
 * taken as content encodes to a block that decodes back to it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "segformat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1u << 20], again[1u << 20];
	static uint8_t enc[(1u << 20) + 2 * ((1u << 20) / 512) + 256];
	const char *why = NULL;
	int64_t n;

	/* the input as content: encode, decode, the same slots (span references
	 * are taken wherever ids repeat, continuation slots included or not) */
	if (size >= 64 && size <= sizeof(out)) {
		size_t ns = size / 64;
		size_t m = atel__cols_encode(data, ns, enc);
		int64_t k = atel__cols_decode(enc, m, again, sizeof(again), &why);
		if (m > atel__cols_bound(ns) || k != (int64_t)(ns * 64) || memcmp(data, again, ns * 64))
			abort();
	}
	n = atel__cols_decode(data, size, out, sizeof(out), &why);
	if (n == -EBADMSG || n == -ENOSPC) {
		if (n == -EBADMSG && (!why || !*why))
			abort();
		return 0;
	}
	if (n <= 0 || n % 64 || (size_t)n > sizeof(out))
		abort();
	{
		size_t m = atel__cols_encode(out, (size_t)n / 64, enc);
		int64_t k = atel__cols_decode(enc, m, again, sizeof(again), &why);
		if (k != n || memcmp(out, again, (size_t)n))
			abort();
	}
	return 0;
}
