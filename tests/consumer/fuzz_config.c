/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the ateld config parser (consumer/config.c) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_config cfg;
	char err[512];
	int rc;

	rc = atel__config_parse(&cfg, (const char *)data, size, "fuzz.json", err, sizeof(err));
	/* an error always comes with a message naming the origin */
	if (rc != 0 && strncmp(err, "fuzz.json: ", 11) != 0)
		__builtin_trap();
	if (rc == 0 && (!cfg.data_dir || !cfg.json.outputDir || cfg.shm.ring_capacity < 64 ||
			(cfg.shm.ring_capacity & (cfg.shm.ring_capacity - 1))))
		__builtin_trap();
	atel__config_free(&cfg);
	return 0;
}
