/* SPDX-License-Identifier: MIT */
/*
 * jsonint.h - exact big integers through cJSON (tools/jsonint.c).
 */
#ifndef ATEL_JSONINT_H
#define ATEL_JSONINT_H

#include <cjson/cJSON.h>

/* A copy of JSON text in which every integer of 16 digits or more outside a
 * string is the string "\x01<digits>" (malloc'd; NULL on ENOMEM). */
char *cli_json_mark_big_ints(const char *in);
/* After cJSON_Parse of that text: the marked strings become raw JSON
 * integers (cJSON_Raw), printed back exactly. NULL-safe. */
void cli_json_unmark_big_ints(cJSON *j);

#endif /* ATEL_JSONINT_H */
