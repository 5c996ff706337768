/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what `atel query|stats|traces|load` parse from users:
 * the input is split at NUL bytes into up to four strings, fed to the
 * selector/matcher parser (then matched against fixed label sets), the
 * duration parser, the time parser and the aggregation parser. Checks the
 * contracts: no crash, a failed parse leaves an error message, a
 * successful duration parse agrees with itself, and freeing is clean.
 */
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	const char *part[4] = { "", "", "", "" };
	size_t np = 0, start = 0;
	for (size_t i = 0; i <= size && np < 4; i++)
		if (i == size || buf[i] == 0) {
			part[np++] = buf + start;
			start = i + 1;
		}

	char err[256];
	struct atel_qselector sel = { 0 };
	err[0] = 0;
	int rc = atel_q_selector_parse(part[0], &sel, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort(); /* every failure says why */
	if (rc == 0) {
		const char *k[] = { "agent_type", "phase", "tool" };
		const char *v1[] = { "coder", "code", "Read" };
		const char *v2[] = { "", "plan", "x,y\"z" };
		(void)atel_q_selector_match(&sel, k, v1, 3);
		(void)atel_q_selector_match(&sel, k, v2, 3);
		(void)atel_q_selector_match(&sel, k, v1, 0);
	}
	atel_q_selector_free(&sel);
	atel_q_selector_free(&sel); /* idempotent */

	uint64_t ns = 0, ns2 = 0;
	err[0] = 0;
	rc = atel_q_parse_duration(part[1], &ns, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort();
	if (rc == 0 && (atel_q_parse_duration(part[1], &ns2, err, sizeof(err)) != 0 || ns2 != ns))
		abort();
	err[0] = 0;
	rc = atel_q_parse_time(part[2], 1800000000000000000ull, &ns, err, sizeof(err));
	if (rc < 0 && !err[0])
		abort();
	enum atel_qagg a;
	if (atel_q_agg_parse(part[3], &a) == 0 && strcmp(atel_q_agg_name(a), part[3]) != 0)
		abort();
	free(buf);
	return 0;
}
