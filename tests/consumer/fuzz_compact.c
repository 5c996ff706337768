/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `compact`: arbitrary bytes as a finished segment file,
 * rewritten by atel__seg_compact (consumer/log/compact.c), and as each of
 * the persisted log positions the compactor's pin reads (compactor.c:
 * aggregates.ckpt, remote_write.outbox, otlp-traces.cursor). Contract
 * checked: no crash, no leak; compaction returns 1, 0 or -errno; on 1 the
 * log reader gives the same number of events from the new file as from the
 * old, otherwise the file is left byte for byte; no `.compact` file stays;
 * the pin is a position from the input or 0 (every follower enabled: never
 * "no pin").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compact.h"
#include "compactor.h"
#include "logread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256], seg[300], state[300];

static void remove_dirs(void)
{
	rmdir(seg);
	rmdir(state);
	rmdir(dir);
}

static void put(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
}

static uint8_t *get(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	p = malloc((size_t)st.st_size + 1);
	if (!p || read(fd, p, (size_t)st.st_size) != st.st_size)
		abort();
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

static long events(void)
{
	struct atel_log_reader_opts o = { .segments_dir = seg };
	struct atel_log_reader *r;
	struct atel_event ev;
	long n = 0;
	int rc;

	if (atel__log_open(&r, &o) != 0)
		abort();
	while ((rc = atel__log_next(r, &ev, NULL)) == 1 && n < 1000000)
		n++;
	atel__log_close(r);
	return rc < 0 ? -1 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[400], tmp[420], err[1024];
	struct atel_compact_opts co = { .level = 1, .frame_bytes = 65536 };
	struct atel_compact_result res;
	size_t len;
	uint8_t *after;
	long before_n;
	int rc;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/atel-fuzz-compact-%d", (int)getpid());
		snprintf(seg, sizeof(seg), "%s/segments", dir);
		snprintf(state, sizeof(state), "%s/state", dir);
		mkdir(dir, 0700);
		mkdir(seg, 0700);
		mkdir(state, 0700);
		atexit(remove_dirs);
	}
	snprintf(path, sizeof(path), "%s/0000000000000001.atseg", seg);
	snprintf(tmp, sizeof(tmp), "%s.compact", path);
	put(path, data, size);
	before_n = events();
	rc = atel__seg_compact(seg, 1, &co, &res, err, sizeof(err));
	if (rc > 1 || (rc < 0 && !err[0]) || access(tmp, F_OK) == 0)
		abort();
	after = get(path, &len);
	if (rc == 1) {
		if (res.bytes_after != len || len >= size || events() != before_n)
			abort();
	} else if (len != size || (size && memcmp(after, data, size))) {
		abort();
	}
	free(after);
	unlink(path);

	/* the same bytes as every persisted position the pin reads */
	{
		static const char *const names[] = { "aggregates.ckpt", "remote_write.ckpt", "remote_write.outbox",
						     "otlp-traces.cursor" };
		struct atel_compactor_opts o = { .data_dir = dir, .segments_dir = seg, .index_enabled = false,
						 .remote_write_enabled = true, .otlp_enabled = true,
						 .aggregates_enabled = true };
		struct atel_compact_pin pin;
		char p[400];

		for (size_t i = 0; i < 4; i++) {
			snprintf(p, sizeof(p), "%s/%s", state, names[i]);
			put(p, data, size);
		}
		atel__compact_pin_read(&o, &pin);
		if (pin.file_seq == UINT64_MAX || (pin.file_seq == 0 && !pin.holder[0]))
			abort();
		for (size_t i = 0; i < 4; i++) {
			snprintf(p, sizeof(p), "%s/%s", state, names[i]);
			unlink(p);
		}
	}
	return 0;
}
