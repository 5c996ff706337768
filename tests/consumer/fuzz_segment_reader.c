/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `segment_reader`: arbitrary bytes as a segment file, read
 * by the log reader (directory mode, then single-file mode with follow and a
 * resume position taken from the input) and by start-up recovery (which may
 * truncate: it works on a copy). Contract checked: no crash, no leak, every
 * call returns its documented values, corrupt frames are reported with an
 * offset inside the file, recovery never grows a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logread.h"
#include "seglog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];
static size_t cur_size;

static void remove_dir(void)
{
	rmdir(dir); /* every input's file is unlinked after its run */
}

static void on_corrupt(void *arg, const char *file, uint64_t off, const char *why)
{
	(void)arg;
	if (!file || !why || !*why || off > cur_size)
		abort();
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

static void read_log(const struct atel_log_reader_opts *o)
{
	struct atel_log_reader *r;
	struct atel_event ev;
	struct atel_log_pos pos;
	int rc, n = 0;

	if (atel__log_open(&r, o) != 0)
		abort();
	while ((rc = atel__log_next(r, &ev, &pos)) == 1 && n < 100000) {
		if (ev.kind < ATEL_EV_BEGIN || ev.kind > ATEL_EV_INVALID)
			abort();
		if (ev.kind == ATEL_EV_INVALID && !ev.invalid.why)
			abort();
		n++;
	}
	if (rc < 0 && rc != -ENOMEM)
		abort();
	atel__log_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[300];
	struct stat st;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/atel-fuzz-segread-%d", (int)getpid());
		mkdir(dir, 0700);
		atexit(remove_dir);
	}
	cur_size = size;
	snprintf(path, sizeof(path), "%s/0000000000000001.atseg", dir);
	put(path, data, size);
	{
		struct atel_log_reader_opts o = { .segments_dir = dir, .on_corrupt = on_corrupt };
		read_log(&o);
	}
	{
		struct atel_log_reader_opts o = { .single_file = path, .on_corrupt = on_corrupt, .follow = true };
		if (size >= 16) {
			memcpy(&o.start.frame_off, data + size - 16, 8);
			o.start.frame_off %= size + 1;
			memcpy(&o.start.rec_idx, data + size - 8, 4);
			o.start.file_seq = data[size - 4] & 3;
		}
		read_log(&o);
	}
	{
		uint64_t next[4] = { 0 };
		bool seen[4] = { 0 };
		char err[256];
		struct atel_decoder *d = atel__decoder_new();
		uint64_t inst = 0;
		if (size >= 48)
			memcpy(&inst, data + 40, 8); /* the header's instance, when there is one */
		if (atel__seglog_recover(dir, inst, 4, next, seen, d, err, sizeof(err)) != 0)
			abort();
		atel__decoder_free(d);
		if (stat(path, &st) == 0 && (size_t)st.st_size > size)
			abort();
	}
	unlink(path);
	{
		char aside[320];
		snprintf(aside, sizeof(aside), "%s.corrupt", path);
		unlink(aside);
	}
	return 0;
}
