/* SPDX-License-Identifier: MIT */
/*
 * json_files.h - rotated JSON snapshot files (docs/reference.md "JSON
 * exporter": json{enabled, outputDir, rotateInterval, maxFiles}); the
 * document is encode/json_export.h's.
 *
 * Every export interval the current file is rewritten atomically (write to a
 * hidden tmp file, fsync, rename, fsync the directory) with the latest
 * cumulative metric snapshot and the spans completed since the previous
 * file's last write (oldest first; the most recent ones if more completed
 * than are kept), so each completed span lands in exactly one file. A new file
 * starts every rotateInterval; at most maxFiles files are kept, the oldest
 * deleted first. Files are named atel-metrics-<UTC start>.json, so names
 * sort by time.
 */
#ifndef ATEL_JSON_FILES_H
#define ATEL_JSON_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "json_export.h"

struct atel_json_opts {
	const char *dir;          /* outputDir; created (with parents) if missing */
	uint64_t rotate_ms;       /* rotateInterval; 0: never rotate */
	uint32_t max_files;       /* maxFiles; 0: keep all */
};

struct atel_json_exporter;

/* @return 0, or -errno with err naming the directory and the reason. */
int atel__json_open(struct atel_json_exporter **out, const struct atel_json_opts *o, char *err, size_t errlen);

/*
 * Writes the current file (rotating first when rotate_ms has passed since
 * it began, by now_ns), then applies maxFiles. *bytes (may be NULL) gets the
 * file size. Called by one thread. @return 0 or -errno with err set (the
 * previous file content stays intact on failure).
 */
int atel__json_write(struct atel_json_exporter *j, const struct atel_agg_snapshot *snap,
		     struct atel_recent_spans *spans, uint64_t now_ns, size_t *bytes, char *err, size_t errlen);

/* Path of the current file ("" before the first write). */
const char *atel__json_current_file(const struct atel_json_exporter *j);

void atel__json_close(struct atel_json_exporter *j); /* NULL-safe */

#endif /* ATEL_JSON_FILES_H */
