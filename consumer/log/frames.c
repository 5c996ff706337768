/* SPDX-License-Identifier: MIT */
/*
 * frames.c - the frame-level helpers of segformat.h (frame sizes from the
 * zstd headers, the header frame, file names and listing) and the one walk
 * over a file's frames (frames.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "frames.h"

/* ------------------------------------------------------------------------ */
/* frames, header, names (segformat.h)                                      */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int64_t atel__seg_frame_size(const uint8_t *p, size_t avail, uint64_t *content, bool *skippable, uint64_t *need,
			     const char **why)
{
	static const unsigned did_size[4] = { 0, 1, 2, 4 };
	uint32_t magic;
	unsigned fhd, fcs_flag, single, fcs_size, hsize;
	uint64_t fcs = 0, pos;
	bool checksum;

	*skippable = false;
	*content = 0;
	if (avail < 4) {
		*need = 4;
		return 0;
	}
	magic = le32(p);
	if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) {
		if (avail < 8) {
			*need = 8;
			return 0;
		}
		pos = 8ull + le32(p + 4);
		if (pos > avail) {
			*need = pos;
			return 0;
		}
		*skippable = true;
		return (int64_t)pos;
	}
	if (magic != ATEL_SEG_ZSTD_MAGIC) {
		*why = "no zstd frame magic number here";
		return -EBADMSG;
	}
	if (avail < 5) {
		*need = 5;
		return 0;
	}
	fhd = p[4];
	fcs_flag = fhd >> 6;
	single = (fhd >> 5) & 1;
	checksum = (fhd >> 2) & 1;
	if (fhd & 0x08) {
		*why = "zstd frame header has its reserved bit set";
		return -EBADMSG;
	}
	if (fhd & 3) {
		*why = "zstd frame needs a dictionary (segment frames never do)";
		return -EBADMSG;
	}
	fcs_size = fcs_flag == 0 ? (single ? 1u : 0u) : 1u << fcs_flag;
	hsize = 5 + !single + did_size[fhd & 3] + fcs_size;
	if (avail < hsize) {
		*need = hsize;
		return 0;
	}
	if (fcs_size == 0) {
		*why = "zstd frame does not record its content size";
		return -EBADMSG;
	}
	for (unsigned i = 0; i < fcs_size; i++)
		fcs |= (uint64_t)p[hsize - fcs_size + i] << (8 * i);
	if (fcs_size == 2)
		fcs += 256;
	if (fcs == 0 || fcs % ATEL_RECORD_SIZE) {
		*why = "frame content size is not a positive multiple of 64 bytes";
		return -EBADMSG;
	}
	if (fcs > ATEL_SEG_FRAME_MAX) {
		*why = "frame content size exceeds the 64 MiB limit";
		return -EBADMSG;
	}
	pos = hsize;
	for (;;) {
		uint32_t bh, bsize;
		unsigned type;
		if (pos + 3 > avail) {
			*need = pos + 3;
			return 0;
		}
		bh = (uint32_t)p[pos] | (uint32_t)p[pos + 1] << 8 | (uint32_t)p[pos + 2] << 16;
		type = (bh >> 1) & 3;
		bsize = bh >> 3;
		if (type == 3) {
			*why = "zstd block of the reserved type";
			return -EBADMSG;
		}
		if (bsize > (128u << 10)) {
			*why = "zstd block larger than 128 KiB";
			return -EBADMSG;
		}
		pos += 3 + (type == 1 ? 1 : bsize);
		if (bh & 1)
			break;
		if (pos > avail) {
			*need = pos + 3;
			return 0;
		}
	}
	if (checksum)
		pos += 4;
	if (pos > avail) {
		*need = pos;
		return 0;
	}
	*content = fcs;
	return (int64_t)pos;
}

int atel__seg_parse_header(const uint8_t *c, size_t len, struct atel_seg_header_view *out, const char **why)
{
	static const uint8_t zero4[4] = { 0 };
	struct atel_seg_header *h = &out->hdr;
	uint64_t need, defs_at;
	uLong crc;

	out->defs_owned = NULL;
	if (len < ATEL_SEG_HEADER_SIZE) {
		*why = "header frame is shorter than the 64-byte file header";
		return -EBADMSG;
	}
	memcpy(h, c, sizeof(*h));
	if (h->magic != ATEL_SEG_MAGIC) {
		*why = "file header magic is not \"ATELSEG1\"";
		return -EBADMSG;
	}
	if (h->version_major < 1 || h->version_major > ATEL_SEG_VERSION_MAJOR_MAX) {
		*why = "file header has an unsupported major version";
		return -EBADMSG;
	}
	if (h->version_major >= 2 && (h->required & ~ATEL_SEG_REQ_KNOWN)) {
		*why = "file requires a feature this reader does not know (file header required bits)";
		return -EBADMSG;
	}
	if (h->header_size < ATEL_SEG_HEADER_SIZE || h->header_size > len) {
		*why = "file header size is out of range";
		return -EBADMSG;
	}
	defs_at = (uint64_t)h->header_size + (uint64_t)h->nentries * ATEL_SEG_RING_ENTRY_SIZE;
	need = defs_at + ((h->required & ATEL_SEG_REQ_DEFZ) ? (h->ndef_slots ? 1 : 0)
							    : (uint64_t)h->ndef_slots * ATEL_RECORD_SIZE);
	if (need > len) {
		*why = "ring table and definitions run past the header frame";
		return -EBADMSG;
	}
	crc = crc32(0L, Z_NULL, 0);
	crc = crc32(crc, c, offsetof(struct atel_seg_header, crc32));
	crc = crc32(crc, zero4, 4);
	crc = crc32(crc, c + offsetof(struct atel_seg_header, crc32) + 4,
		    (uInt)(len - offsetof(struct atel_seg_header, crc32) - 4));
	if ((uint32_t)crc != h->crc32) {
		*why = "header frame crc32 mismatch";
		return -EBADMSG;
	}
	out->entries = c + h->header_size;
	out->defs = c + defs_at;
	if ((h->required & ATEL_SEG_REQ_DEFZ) && h->ndef_slots) {
		/* one zstd frame of exactly ndef_slots slots fills the rest of the header frame */
		size_t zlen = len - (size_t)defs_at, want = (size_t)h->ndef_slots * ATEL_RECORD_SIZE;
		unsigned long long cs = ZSTD_getFrameContentSize(c + defs_at, zlen);
		if ((uint64_t)h->ndef_slots * ATEL_RECORD_SIZE > ATEL_SEG_HEADER_FRAME_MAX) {
			*why = "header definitions exceed the reader's limit";
			return -EBADMSG;
		}
		if (cs != want || ZSTD_findFrameCompressedSize(c + defs_at, zlen) != zlen) {
			*why = "header definitions are not one zstd frame of ndef_slots slots";
			return -EBADMSG;
		}
		if (!(out->defs_owned = malloc(want))) {
			*why = "out of memory for the header definitions";
			return -ENOMEM;
		}
		size_t r = ZSTD_decompress(out->defs_owned, want, c + defs_at, zlen);
		if (ZSTD_isError(r) || r != want) {
			free(out->defs_owned);
			out->defs_owned = NULL;
			*why = "header definitions do not decompress";
			return -EBADMSG;
		}
		out->defs = out->defs_owned;
	}
	return 0;
}

void atel__seg_header_view_free(struct atel_seg_header_view *v)
{
	free(v->defs_owned);
	v->defs_owned = NULL;
}

bool atel__seg_name_seq(const char *name, uint64_t *seq)
{
	uint64_t v = 0;

	if (strlen(name) != 16 + strlen(ATEL_SEG_SUFFIX) || strcmp(name + 16, ATEL_SEG_SUFFIX))
		return false;
	for (int i = 0; i < 16; i++) {
		char ch = name[i];
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*seq = v;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int atel__seg_list(const char *dir, uint64_t **seqs)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;

	*seqs = NULL;
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		uint64_t s;
		if (!atel__seg_name_seq(e->d_name, &s))
			continue;
		if (n == cap) {
			uint64_t *nv = realloc(v, (cap ? cap * 2 : 64) * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
			cap = cap ? cap * 2 : 64;
		}
		v[n++] = s;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*seqs = v;
	return (int)n;
}

/* ------------------------------------------------------------------------ */
/* the walk (frames.h)                                                      */

#define WINDOW_MIN (4u << 20)
/* A frame needs at most this many bytes before its size is known: the
 * largest header frame a reader accepts (data frames are far smaller). */
#define NEED_MAX ((uint64_t)ATEL_SEG_HEADER_FRAME_MAX + 8u)

int atel__seg_walk_file(struct atel_seg_walk *w, int fd)
{
	struct stat st;

	memset(w, 0, sizeof(*w));
	w->fd = fd;
	if (fstat(fd, &st))
		return -errno;
	w->size = (uint64_t)st.st_size;
	if (!(w->dctx = ZSTD_createDCtx()))
		return -ENOMEM;
	return 0;
}

int atel__seg_walk_mem(struct atel_seg_walk *w, const uint8_t *p, size_t len)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->mem = p;
	w->size = len;
	if (!(w->dctx = ZSTD_createDCtx()))
		return -ENOMEM;
	return 0;
}

void atel__seg_walk_end(struct atel_seg_walk *w)
{
	ZSTD_freeDCtx(w->dctx);
	free(w->buf);
	atel__seg_frame_buf_free(&w->fb);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

void atel__seg_walk_forget(struct atel_seg_walk *w)
{
	w->blen = 0;
	w->boff = 0;
}

/* The source's size now (a file may have grown, or been truncated). */
static uint64_t refresh_size(struct atel_seg_walk *w)
{
	struct stat st;

	if (w->fd >= 0 && fstat(w->fd, &st) == 0)
		w->size = (uint64_t)st.st_size;
	return w->size;
}

/*
 * Makes [off, off + len) readable, clipped to the source's size; *p points
 * at off. @return the bytes readable from off (possibly fewer than len), or -errno.
 */
static int64_t ensure(struct atel_seg_walk *w, uint64_t off, uint64_t len, const uint8_t **p)
{
	uint64_t size = w->size, want, got = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = size - off;
	if (w->mem) {
		*p = w->mem + off;
		return (int64_t)(size - off);
	}
	if (!(off >= w->boff && off + len <= w->boff + w->blen)) {
		want = len > WINDOW_MIN ? len : WINDOW_MIN;
		if (want > size - off)
			want = size - off;
		if (want > w->cap) {
			uint8_t *nb = realloc(w->buf, want);

			if (!nb)
				return -ENOMEM;
			w->buf = nb;
			w->cap = want;
		}
		while (got < want) {
			ssize_t n = pread(w->fd, w->buf + got, want - got, (off_t)(off + got));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -errno;
			if (n == 0)
				break;
			got += (uint64_t)n;
		}
		w->boff = off;
		w->blen = got;
		if (got < len)
			w->size = off + got; /* the file shrank (recovery truncated it) */
	}
	*p = w->buf + (off - w->boff);
	return (int64_t)(w->boff + w->blen - off);
}

int atel__seg_walk_next(struct atel_seg_walk *w, struct atel_seg_frame *f)
{
	for (;;) {
		const uint8_t *p = NULL;
		uint64_t csize = 0, need = 0, known;
		bool skip = false;
		const char *why = NULL;
		int64_t fs = 0, avail, ns;

		memset(f, 0, sizeof(*f));
		f->off = w->off;
		if (w->off >= w->size && w->off >= refresh_size(w)) {
			f->kind = ATEL_SEGF_END;
			return 0;
		}
		avail = ensure(w, w->off, 256u << 10, &p);
		if (avail < 0)
			return (int)avail;
		while (avail > 0) {
			fs = atel__seg_frame_size(p, (size_t)avail, &csize, &skip, &need, &why);
			if (fs != 0 || w->off + (uint64_t)avail >= w->size || need > NEED_MAX)
				break;
			if ((avail = ensure(w, w->off, need, &p)) < 0)
				return (int)avail;
		}
		if (fs == 0) {
			known = w->size;
			if (refresh_size(w) > known) {
				w->blen = 0; /* it grew since the window was read: look again */
				continue;
			}
			f->kind = avail > 0 ? ATEL_SEGF_PARTIAL : ATEL_SEGF_END;
			f->need = need;
			return 0;
		}
		if (fs < 0) {
			f->kind = ATEL_SEGF_BAD;
			f->why = why;
			return 0;
		}
		f->size = (uint64_t)fs;
		if (skip) {
			f->kind = ATEL_SEGF_SKIPPABLE;
			f->content_len = (size_t)fs - 8;
			if ((uint64_t)fs <= NEED_MAX)
				f->content = p + 8;
			return 0;
		}
		{
			const uint8_t *rec;

			ns = atel__seg_frame_records(w->dctx, p, (size_t)fs, csize, &w->fb, &rec, &why);
			if (ns == -ENOMEM)
				return -ENOMEM;
			if (ns < 0) {
				f->kind = ATEL_SEGF_BAD;
				f->why = why;
				return 0;
			}
			f->kind = ATEL_SEGF_DATA;
			f->rec = (const union atel_slot *)(const void *)rec;
			f->nslots = (size_t)ns;
			return 0;
		}
	}
}

int atel__seg_walk_resync(struct atel_seg_walk *w, uint64_t from)
{
	for (uint64_t off = from; off + 4 <= w->size;) {
		const uint8_t *p = NULL;
		int64_t avail = ensure(w, off, 1u << 20, &p);

		if (avail < 0)
			return (int)avail;
		if (avail < 4)
			break;
		for (int64_t i = 0; i + 4 <= avail; i++) {
			if (p[i] == 0x28 && p[i + 1] == 0xB5 && p[i + 2] == 0x2F && p[i + 3] == 0xFD) {
				w->off = off + (uint64_t)i;
				return 0;
			}
		}
		off += (uint64_t)avail - 3;
	}
	w->off = w->size;
	return 0;
}
