/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tools/jsonint.c (the status file's big integers):
 * arbitrary bytes as JSON text. Contracts: no crash; marking keeps a text
 * cJSON parses exactly when it parsed the original, and the unmarked tree
 * prints.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	char *marked = cli_json_mark_big_ints(text);
	if (marked) {
		cJSON *j = cJSON_Parse(marked);
		cli_json_unmark_big_ints(j);
		char *out = j ? cJSON_PrintUnformatted(j) : NULL;
		free(out);
		cJSON_Delete(j);
		free(marked);
	}
	free(text);
	return 0;
}
