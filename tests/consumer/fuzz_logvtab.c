/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `logvtab`: arbitrary bytes as two segment files read
 * through the atel_log virtual table (consumer/index/logvtab.c), with and
 * without its rows cache. Contract checked: no crash, no leak; every label
 * text is valid JSON; the table with the cache answers every constrained
 * query (ts_ns, name, id bounds from the input and the rows) with exactly
 * the rows of the same condition applied by SQLite to a copy of the whole
 * table. The table without a cache runs the same queries (file summaries,
 * skipping) for crashes and leaks only: a file read after a skipped one is
 * decoded from its own header, which equals the sequential read only for
 * files that decode alone as the format requires (docs/segment-format.md
 * 2.3), and arbitrary bytes need not.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "logvtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];

static void remove_dir(void)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/segments", dir);
	rmdir(p);
	rmdir(dir);
}

static void put(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
}

static long long count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		abort();
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE && sqlite3_errcode(db) != SQLITE_NOMEM)
		abort();
	sqlite3_finalize(st);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char seg[300], p1[400], p2[400], sql[1024];
	sqlite3 *db = NULL;
	size_t cut;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/atel-fuzz-logvtab-%d", (int)getpid());
		mkdir(dir, 0700);
		atexit(remove_dir);
	}
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	mkdir(seg, 0700);
	snprintf(p1, sizeof(p1), "%s/0000000000000001.atseg", seg);
	snprintf(p2, sizeof(p2), "%s/0000000000000002.atseg", seg);
	/* the input, as one file (its second copy after it: a log of two files) or cut in two */
	cut = size && (data[0] & 1) ? size / 2 : size;
	put(p1, data, cut);
	put(p2, data + (cut < size ? cut : 0), cut < size ? size - cut : size);

	if (sqlite3_open(":memory:", &db) != SQLITE_OK || atel__logvtab_register(db) != SQLITE_OK)
		abort();
	snprintf(sql, sizeof(sql),
		 "CREATE VIRTUAL TABLE temp.c USING atel_log('%s');"
		 "CREATE VIRTUAL TABLE temp.nc USING atel_log('%s', 'cache_rows=0');"
		 "CREATE TEMP TABLE whole AS SELECT * FROM nc;",
		 dir, dir);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto out; /* out of memory */
	if (count(db, "SELECT count(*) FROM whole WHERE NOT json_valid(labels)") != 0)
		abort();
	long long n = count(db, "SELECT count(*) FROM whole");
	if (count(db, "SELECT count(*) FROM c") != n || count(db, "SELECT max(id) - count(*) FROM whole") > 0)
		abort();

	/* bounds from the input and from the rows themselves */
	uint64_t t = 0;
	if (size >= 9)
		memcpy(&t, data + 1, 8);
	const char *conds[] = {
		"ts_ns >= (SELECT ts_ns FROM whole WHERE id = (SELECT max(id) / 2 FROM whole))",
		"ts_ns < (SELECT min(ts_ns) + 1000 FROM whole)",
		"ts_ns BETWEEN (SELECT min(ts_ns) FROM whole) AND (SELECT avg(ts_ns) FROM whole)",
		"name = (SELECT name FROM whole WHERE id = 1)",
		"name IN (SELECT name FROM whole WHERE id % 3 = 0)",
		"id BETWEEN 2 AND (SELECT count(*) / 2 FROM whole)",
		"id = (SELECT max(id) FROM whole)",
		NULL,
	};
	char own[96];
	snprintf(own, sizeof(own), "ts_ns > %llu", (unsigned long long)(t & INT64_MAX));
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < (int)(sizeof(conds) / sizeof(conds[0])); i++) {
			const char *w = conds[i] ? conds[i] : own;
			char a[1400], b[1400];
			for (int k = 0; k < 2; k++) {
				snprintf(a, sizeof(a), "SELECT count(*) FROM %s WHERE %s", k ? "nc" : "c", w);
				snprintf(b, sizeof(b),
					 "SELECT count(*) FROM (SELECT * FROM %s WHERE %s EXCEPT SELECT * FROM whole WHERE %s)",
					 k ? "nc" : "c", w, w);
				long long x = count(db, a), y = count(db, b);
				snprintf(a, sizeof(a), "SELECT count(*) FROM whole WHERE %s", w);
				if (k == 0 && (x != count(db, a) || y != 0))
					abort();
			}
		}
	}
out:
	sqlite3_close(db);
	unlink(p1);
	unlink(p2);
	return 0;
}
