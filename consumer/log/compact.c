/* SPDX-License-Identifier: MIT */
/*
 * compact.c - rewriting a finished segment file with larger frames
 * (compact.h, docs/segment-format.md section 9).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "compact.h"
#include "frames.h"
#include "log_internal.h"
#include "segformat.h"
#include "util.h"

#define COMPACT_SUFFIX ".compact"

struct cw {
	int fd;
	bool columns;
	ZSTD_CCtx *cx;
	uint8_t *raw, *cols, *z;
	size_t raw_len, raw_cap, cols_cap, z_cap;
	uint64_t off, frames;
};

/* Room for n more bytes of content in the open frame. */
static int reserve(struct cw *c, size_t n)
{
	size_t need = c->raw_len + n;

	if (need <= c->raw_cap)
		return 0;
	size_t cap = c->raw_cap ? c->raw_cap : 1 << 20;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(c->raw, cap);
	if (!p)
		return -ENOMEM;
	c->raw = p;
	c->raw_cap = cap;
	return 0;
}

/* Compresses and writes the open frame (if any). */
static int flush_frame(struct cw *c)
{
	const void *src = c->raw;
	size_t len = c->raw_len, nslots = c->raw_len / ATEL_RECORD_SIZE;

	if (!len)
		return 0;
	if (c->columns) {
		size_t need = atel__cols_bound(nslots);
		if (need > c->cols_cap) {
			free(c->cols);
			if (!(c->cols = malloc(need)))
				return -ENOMEM;
			c->cols_cap = need;
		}
		len = atel__cols_encode(c->raw, nslots, c->cols);
		src = c->cols;
	}
	size_t zb = ZSTD_compressBound(len);
	if (zb > c->z_cap) {
		free(c->z);
		if (!(c->z = malloc(zb)))
			return -ENOMEM;
		c->z_cap = zb;
	}
	size_t r = ZSTD_compress2(c->cx, c->z, c->z_cap, src, len);
	if (ZSTD_isError(r))
		return -EIO;
	int rc = atel__pwrite_all(c->fd, c->z, r, c->off);
	if (rc)
		return rc;
	c->off += r;
	c->frames++;
	c->raw_len = 0;
	return 0;
}

struct content_sum {
	uint64_t slots;
	uint32_t crc;
	uint64_t frames;
};

/*
 * Walks a segment file: its header frame at offset 0, then data frames to the
 * end. Sums the content; with c, appends it to c's frames. *bad_off and *why
 * say where and why a walk stopped on a frame it could not take.
 */
static int walk(int fd, struct content_sum *sum, struct cw *c, size_t frame_bytes, uint64_t *hdr_len,
		uint32_t *required, uint16_t *major, uint64_t *bad_off, const char **why)
{
	struct atel_seg_walk w;
	struct atel_seg_frame f;
	int rc;

	memset(&w, 0, sizeof(w));
	if ((rc = atel__seg_walk_file(&w, fd)) < 0)
		return rc;
	*sum = (struct content_sum){ 0, (uint32_t)crc32(0, NULL, 0), 0 };
	for (bool first = true;; first = false) {
		if ((rc = atel__seg_walk_next(&w, &f)) < 0)
			break;
		if (f.kind == ATEL_SEGF_END) {
			rc = first ? -EBADMSG : 0;
			*bad_off = 0;
			*why = "the file is empty";
			break;
		}
		if (first) {
			struct atel_seg_header_view hv;
			if (f.kind != ATEL_SEGF_SKIPPABLE || !f.content) {
				*bad_off = 0;
				*why = f.why ? f.why : "no header frame at offset 0";
				rc = -EBADMSG;
				break;
			}
			if (atel__seg_parse_header(f.content, f.content_len, &hv, why) < 0) {
				*bad_off = 0;
				rc = -EBADMSG;
				break;
			}
			*hdr_len = f.size;
			*required = hv.hdr.required;
			*major = hv.hdr.version_major;
			atel__seg_header_view_free(&hv);
			atel__seg_walk_skip(&w, &f);
			continue;
		}
		if (f.kind != ATEL_SEGF_DATA) {
			*bad_off = f.off;
			*why = f.kind == ATEL_SEGF_PARTIAL ? "an incomplete frame"
			       : f.why			  ? f.why
							  : "an unexpected skippable frame";
			rc = -EBADMSG;
			break;
		}
		size_t n = f.nslots * ATEL_RECORD_SIZE;
		sum->crc = (uint32_t)crc32(sum->crc, (const Bytef *)f.rec, (uInt)n);
		sum->slots += f.nslots;
		sum->frames++;
		if (c) {
			if ((rc = reserve(c, n)) < 0)
				break;
			memcpy(c->raw + c->raw_len, f.rec, n);
			c->raw_len += n;
			if (c->raw_len >= frame_bytes && (rc = flush_frame(c)) < 0)
				break;
		}
		atel__seg_walk_skip(&w, &f);
	}
	atel__seg_walk_end(&w);
	return rc;
}

int atel__seg_compact(const char *dir, uint64_t seq, const struct atel_compact_opts *o,
		      struct atel_compact_result *res, char *err, size_t errlen)
{
	char path[4200], tmp[4300];
	struct content_sum in, out;
	struct cw c = { .fd = -1 };
	struct stat st;
	uint64_t hdr_len = 0, bad_off = 0, hdr_len2 = 0;
	uint32_t required = 0, required2 = 0;
	uint16_t major = 0, major2 = 0;
	const char *why = NULL;
	uint8_t *hdr = NULL;
	int fd = -1, rc;
	bool made = false;

	memset(res, 0, sizeof(*res));
	if ((size_t)snprintf(path, sizeof(path), "%s/%016llx" ATEL_SEG_SUFFIX, dir, (unsigned long long)seq) >=
		    sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s" COMPACT_SUFFIX, path) >= sizeof(tmp)) {
		atel__seterr(err, errlen, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	/* first pass: is this a file we rewrite, and is every frame whole? */
	rc = walk(fd, &in, NULL, 0, &hdr_len, &required, &major, &bad_off, &why);
	if (rc == -EBADMSG) {
		atel__seterr(err, errlen, "%s: offset %llu: %s; the file is left as it is", path,
		       (unsigned long long)bad_off, why ? why : "damaged");
		goto out;
	}
	if (rc < 0) {
		atel__seterr(err, errlen, "%s: reading: %s", path, strerror(-rc));
		goto out;
	}
	res->bytes_before = (uint64_t)st.st_size;
	res->frames_before = in.frames;
	res->slots = in.slots;
	if (major != 2 || ((required & ATEL_SEG_REQ_COLUMNS) && !(required & ATEL_SEG_REQ_SPANREF))) {
		/* the encoder writes COLUMNS version 2 blocks, which such a header does not announce */
		atel__seterr(err, errlen, "%s: version %u file%s, left as it is", path, major,
		       major == 2 ? " with COLUMNS blocks of version 1" : "");
		rc = 0;
		goto out;
	}
	c.columns = required & ATEL_SEG_REQ_COLUMNS;
	if (!(c.cx = ZSTD_createCCtx()) || !(hdr = malloc(hdr_len))) {
		rc = -ENOMEM;
		atel__seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	ZSTD_CCtx_setParameter(c.cx, ZSTD_c_compressionLevel, o->level);
	ZSTD_CCtx_setParameter(c.cx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(c.cx, ZSTD_c_contentSizeFlag, 1);
	if (pread(fd, hdr, hdr_len, 0) != (ssize_t)hdr_len) {
		rc = -EIO;
		atel__seterr(err, errlen, "%s: cannot read its header frame again", path);
		goto out;
	}
	if ((c.fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	made = true;
	(void)fchmod(c.fd, st.st_mode & 07777);
	/* the header frame, byte for byte: ring table and definitions are unchanged */
	if ((rc = atel__pwrite_all(c.fd, hdr, hdr_len, 0)) < 0) {
		atel__seterr(err, errlen, "%s: %s", tmp, strerror(-rc));
		goto out;
	}
	c.off = hdr_len;
	/* second pass: the same content into larger frames */
	rc = walk(fd, &out, &c, o->frame_bytes & ~(size_t)(ATEL_RECORD_SIZE - 1), &hdr_len2, &required2, &major2,
		  &bad_off, &why);
	if (rc == 0)
		rc = flush_frame(&c);
	if (rc == 0 && (out.slots != in.slots || out.crc != in.crc))
		rc = -ESTALE; /* the file changed between the passes: it was not finished */
	if (rc < 0) {
		atel__seterr(err, errlen, "%s: writing %s: %s", path, tmp,
		       rc == -EBADMSG ? (why ? why : "damaged") : strerror(-rc));
		goto out;
	}
	if (fsync(c.fd) < 0) {
		rc = -errno;
		atel__seterr(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	res->bytes_after = c.off;
	res->frames_after = c.frames;
	/* read the new file back, every frame decoded and checksummed */
	rc = walk(c.fd, &out, NULL, 0, &hdr_len2, &required2, &major2, &bad_off, &why);
	if (rc < 0 || out.slots != in.slots || out.crc != in.crc || hdr_len2 != hdr_len || required2 != required) {
		atel__seterr(err, errlen, "%s: the rewritten file does not read back the same (%s); the file is left as it is",
		       path, rc < 0 ? (why ? why : strerror(-rc)) : "content differs");
		rc = -EIO;
		goto out;
	}
	if (c.off >= (uint64_t)st.st_size) {
		atel__seterr(err, errlen, "%s: no smaller rewritten (%llu bytes against %llu), left as it is", path,
		       (unsigned long long)c.off, (unsigned long long)st.st_size);
		rc = 0;
		goto out;
	}
	if (o->still_ok) {
		char why2[512] = "";
		if (!o->still_ok(o->arg, why2, sizeof(why2))) {
			atel__seterr(err, errlen, "%s: not replaced: %s", path, why2[0] ? why2 : "no longer allowed");
			rc = -EAGAIN;
			goto out;
		}
	}
	/* keep the old modification time: age retention counts from the data */
	struct timespec times[2] = { st.st_atim, st.st_mtim };
	(void)futimens(c.fd, times);
	/* RENAME_EXCHANGE fails if retention removed the file meanwhile, where a
	 * plain rename would bring it back */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0) {
		if (errno == ENOENT) {
			atel__seterr(err, errlen, "%s: removed meanwhile", path);
			rc = 0;
			goto out;
		}
		if (errno != EINVAL && errno != ENOSYS) {
			rc = -errno;
			atel__seterr(err, errlen, "%s: renameat2: %s", path, strerror(errno));
			goto out;
		}
		struct stat now;
		if (stat(path, &now) < 0 || now.st_ino != st.st_ino) {
			atel__seterr(err, errlen, "%s: removed or replaced meanwhile", path);
			rc = 0;
			goto out;
		}
		if (rename(tmp, path) < 0) {
			rc = -errno;
			atel__seterr(err, errlen, "%s: rename: %s", path, strerror(errno));
			goto out;
		}
		made = false;
	}
	/* after the exchange, tmp names the old file: the unlink below removes it */
	rc = 1;
out:
	if (c.fd >= 0)
		close(c.fd);
	if (made)
		unlink(tmp);
	if (fd >= 0)
		close(fd);
	if (rc == 1) /* the exchange (or rename) and the unlink, made durable together */
		(void)atel__fsync_dir(dir);
	free(hdr);
	free(c.raw);
	free(c.cols);
	free(c.z);
	ZSTD_freeCCtx(c.cx);
	return rc;
}

int atel__seg_compact_cleanup(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name), sl = strlen(ATEL_SEG_SUFFIX COMPACT_SUFFIX);
		if (len == 16 + sl && !strcmp(e->d_name + 16, ATEL_SEG_SUFFIX COMPACT_SUFFIX) &&
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
