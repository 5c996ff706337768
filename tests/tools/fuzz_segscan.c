/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the frame/gap pass of `atel replay` (tools/segscan.c):
 * arbitrary bytes as a segment file. Contracts: no crash, no unbounded
 * memory, counters consistent (listed gaps never exceed the count, raw bytes
 * a multiple of the record size).
 */
#include <stdint.h>
#include <stdlib.h>

#include "segscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_segscan s = { 0 };
	if (atel_segscan_buffer(data, size, "fuzz.atseg", &s) == 0) {
		if (s.ngaps > s.gap_count || s.ngaps > ATEL_SEGSCAN_GAPS_MAX || s.bytes_raw % 64 != 0 ||
		    s.files != 1 || s.bytes_compressed != size)
			abort();
	}
	atel_segscan_free(&s);
	atel_segscan_free(&s);
	return 0;
}
