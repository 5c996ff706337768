/* SPDX-License-Identifier: MIT */
/*
 * jsonint.c - reading JSON whose integers exceed a double's precision (the
 * status file's nanosecond timestamps) without turning them into doubles.
 */
#include "jsonint.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Integer nanoseconds exceed a double's 53 bits: cJSON would print them back
 * as 1.79e+18. Before parsing, every integer of 16 digits or more outside a
 * string becomes the string "\x01<digits>"; unmark_big_ints turns those into
 * raw JSON integers (what cli_json_u64 makes; cli_json_get reads both).
 */
char *cli_json_mark_big_ints(const char *in)
{
	size_t n = strlen(in);
	char *out = malloc(n * 2 + 1), *o = out;
	bool str = false;
	if (!out)
		return NULL;
	for (const char *p = in; *p;) {
		if (str) {
			if (*p == '\\' && p[1]) {
				*o++ = *p++;
			} else if (*p == '"') {
				str = false;
			}
			*o++ = *p++;
			continue;
		}
		if (*p == '"') {
			str = true;
			*o++ = *p++;
			continue;
		}
		if ((*p >= '0' && *p <= '9') && (p == in || !((p[-1] >= '0' && p[-1] <= '9') || p[-1] == '.' ||
							   p[-1] == 'e' || p[-1] == 'E' || p[-1] == '+'))) {
			size_t k = 0;
			while (p[k] >= '0' && p[k] <= '9')
				k++;
			if (k >= 16 && p[k] != '.' && p[k] != 'e' && p[k] != 'E') {
				*o++ = '"';
				*o++ = '\x01';
				memcpy(o, p, k);
				o += k;
				*o++ = '"';
				p += k;
				continue;
			}
			memcpy(o, p, k);
			o += k;
			p += k;
			continue;
		}
		*o++ = *p++;
	}
	*o = 0;
	return out;
}

void cli_json_unmark_big_ints(cJSON *j)
{
	for (cJSON *it = j ? j->child : NULL; it; it = it->next) {
		if (cJSON_IsString(it) && it->valuestring && it->valuestring[0] == '\x01') {
			char *raw = strdup(it->valuestring + 1);
			if (raw) {
				free(it->valuestring);
				it->valuestring = raw;
				it->type = cJSON_Raw;
			}
		} else {
			cli_json_unmark_big_ints(it);
		}
	}
}

