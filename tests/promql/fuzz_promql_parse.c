/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the PromQL parser (tools/promql/parse.c) and the
 * regular-expression translator it runs for =~ and !~ matchers (re.c).
 * Contracts checked on any input:
 *   - parsing never crashes; a failure leaves a positioned message
 *     "<line>:<col>: parse error: ..." whose line/col agree with err.pos;
 *   - a parsed query prints (atel_promql_format) to text that parses again
 *     to a tree that prints identically (the printer and parser agree);
 *   - the match[] selector parser holds up too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	struct atel_promql_expr *e = NULL;
	struct atel_promql_error err;
	int rc = atel_promql_parse((const char *)data, size, &e, &err);
	if (rc) {
		if (rc != -EINVAL && rc != -ENOMEM)
			abort();
		if (rc == -EINVAL) {
			char prefix[64];
			snprintf(prefix, sizeof(prefix), "%u:%u: parse error: ", err.line, err.col);
			if (strncmp(err.msg, prefix, strlen(prefix)) || err.pos > size)
				abort();
		}
	} else {
		size_t n = atel_promql_format(atel_promql_expr_root(e), NULL, 0);
		char *a = malloc(n + 1), *b = NULL;
		if (!a)
			abort();
		if (atel_promql_format(atel_promql_expr_root(e), a, n + 1) != n || strlen(a) != n)
			abort();
		struct atel_promql_expr *e2 = NULL;
		if (atel_promql_parse(a, n, &e2, &err)) {
			fprintf(stderr, "printed query does not parse:\n%s\n%s\n", a, err.msg);
			abort();
		}
		size_t n2 = atel_promql_format(atel_promql_expr_root(e2), NULL, 0);
		b = malloc(n2 + 1);
		if (!b)
			abort();
		atel_promql_format(atel_promql_expr_root(e2), b, n2 + 1);
		if (n != n2 || strcmp(a, b)) {
			fprintf(stderr, "print/parse/print differs:\n%s\n%s\n", a, b);
			abort();
		}
		if (atel_promql_node_type(atel_promql_expr_root(e)) != atel_promql_node_type(atel_promql_expr_root(e2)))
			abort();
		free(a);
		free(b);
		atel_promql_expr_free(e2);
		atel_promql_expr_free(e);
	}
	if (atel_promql_parse_selector((const char *)data, size, &e, &err) == 0)
		atel_promql_expr_free(e);
	return 0;
}
