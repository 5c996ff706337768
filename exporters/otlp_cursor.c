/* SPDX-License-Identifier: MIT */
/*
 * otlp_cursor.c - the OTLP exporter's cursor file (otlp_export.h): where a
 * restarted exporter resumes reading the log, and what it must not send
 * again. Written atomically (the helpers room's atel__write_file_atomic).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_internal.h"
#include "util.h"

int atel__otlp_id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 24);
}

int atel__otlp_cursor_load(const char *path, struct atel_log_pos *resume, struct atel_log_pos *acked,
			   uint8_t (**pending)[24], uint32_t *npending)
{
	FILE *f = fopen(path, "r");
	unsigned long long a[6];
	unsigned int idx[2], n = 0;
	uint8_t(*ids)[24] = NULL;
	char line[128];
	int rc = -EINVAL;

	if (pending)
		*pending = NULL;
	if (npending)
		*npending = 0;
	if (!f)
		return errno == ENOENT ? -ENOENT : -errno;
	if (fscanf(f, "atel-otlp-cursor 1 resume %llu %llu %u acked %llu %llu %u pending %u ", &a[0], &a[1],
		   &idx[0], &a[3], &a[4], &idx[1], &n) != 7 ||
	    n > 16u << 20)
		goto out;
	if (n && !(ids = malloc((size_t)n * 24))) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n; i++) {
		if (!fgets(line, sizeof(line), f) || strlen(line) < 48)
			goto out;
		if (atel__unhex(line, 24, ids[i], true))
			goto out;
	}
	if (!fgets(line, sizeof(line), f) || strcmp(line, "end\n"))
		goto out; /* torn or truncated: the rename makes this unlikely, but check */
	if (n)
		qsort(ids, n, 24, atel__otlp_id_cmp);
	*resume = (struct atel_log_pos){ a[0], a[1], idx[0] };
	*acked = (struct atel_log_pos){ a[3], a[4], idx[1] };
	if (pending) {
		*pending = ids;
		ids = NULL;
	}
	if (npending)
		*npending = n;
	rc = 0;
out:
	free(ids);
	fclose(f);
	return rc;
}

int atel__otlp_cursor_save(const char *path, const struct atel_log_pos *resume, const struct atel_log_pos *acked,
			   const uint8_t (*pending)[24], uint32_t npending)
{
	char line[64], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if (!(f = open_memstream(&text, &len)))
		return -errno;
	fprintf(f, "atel-otlp-cursor 1\nresume %" PRIu64 " %" PRIu64 " %u\nacked %" PRIu64 " %" PRIu64
		   " %u\npending %u\n",
		resume->file_seq, resume->frame_off, resume->rec_idx, acked->file_seq, acked->frame_off, acked->rec_idx,
		npending);
	for (uint32_t i = 0; i < npending; i++) {
		atel__hex(pending[i], 24, line);
		line[48] = '\n';
		fwrite(line, 1, 49, f);
	}
	fputs("end\n", f);
	rc = ferror(f) ? -ENOMEM : 0;
	if (fclose(f) && !rc)
		rc = -ENOMEM;
	if (!rc)
		rc = atel__write_file_atomic(path, text, len, atel__file_mode());
	free(text);
	return rc;
}

