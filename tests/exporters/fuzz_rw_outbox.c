/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `rw_outbox`: the remote-write outbox parser
 * (atel__rw_outbox_parse) on arbitrary bytes, as they are and with a valid
 * CRC appended (so the fuzzer gets past the checksum to the fields). On
 * success every request must lie inside the input, in order, carry at
 * least one sample, and a sent outbox holds no requests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "remote_write.h"

static void check(const char *buf, size_t len)
{
	struct atel_rw_outbox ob;
	const char *at;

	if (atel__rw_outbox_parse(buf, len, &ob) != 0)
		return;
	if (!ob.pending && ob.nreq)
		abort();
	at = buf + 8;
	for (uint32_t i = 0; i < ob.nreq; i++) {
		if (ob.req[i].data < at || ob.req[i].data + ob.req[i].len > buf + len - 4 || !ob.req[i].nsamples)
			abort();
		at = ob.req[i].data + ob.req[i].len;
	}
	atel__rw_outbox_free(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 4);
	uint32_t crc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	check(buf, size);
	crc = (uint32_t)crc32(0L, (const Bytef *)buf, (uInt)size);
	memcpy(buf + size, &crc, 4);
	{
		/* an exact-size copy so ASan sees any read past the end */
		char *exact = malloc(size + 4);
		if (exact) {
			memcpy(exact, buf, size + 4);
			check(exact, size + 4);
			free(exact);
		}
	}
	free(buf);
	return 0;
}
