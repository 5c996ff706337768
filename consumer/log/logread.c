/* SPDX-License-Identifier: MIT */
/*
 * logread.c - reads segment files as decoded events (format:
 * docs/segment-format.md), plus the frame/header parsing helpers that the
 * writer's recovery shares (segformat.h).
 *
 * Files are read with pread into a window buffer, never mmap: recovery may
 * truncate the newest file under a following reader, and a mapping would
 * turn that into SIGBUS. Every frame is located by walking its block headers
 * (no decompression), then decompressed whole; zstd verifies the content
 * checksum. A frame that fails any check is reported through on_corrupt and
 * skipped: the reader resynchronises at the next zstd magic number.
 *
 * Single-threaded: one reader per thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "logread.h"
#include "ring.h"
#include "segformat.h"

/* ------------------------------------------------------------------------ */
/* shared helpers (segformat.h)                                             */

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
	uint64_t need;
	uLong crc;

	if (len < ATEL_SEG_HEADER_SIZE) {
		*why = "header frame is shorter than the 64-byte file header";
		return -EBADMSG;
	}
	memcpy(h, c, sizeof(*h));
	if (h->magic != ATEL_SEG_MAGIC) {
		*why = "file header magic is not \"ATELSEG1\"";
		return -EBADMSG;
	}
	if (h->version_major != ATEL_SEG_VERSION_MAJOR) {
		*why = "file header has an unsupported major version";
		return -EBADMSG;
	}
	if (h->header_size < ATEL_SEG_HEADER_SIZE || h->header_size > len) {
		*why = "file header size is out of range";
		return -EBADMSG;
	}
	need = (uint64_t)h->header_size + (uint64_t)h->nentries * ATEL_SEG_RING_ENTRY_SIZE +
	       (uint64_t)h->ndef_slots * ATEL_RECORD_SIZE;
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
	out->defs = out->entries + (size_t)h->nentries * ATEL_SEG_RING_ENTRY_SIZE;
	return 0;
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

const char *atel__log_rec_type_name(unsigned type)
{
	if (type == ATEL_LOGREC_CHUNK)
		return "chunk";
	if (type == ATEL_LOGREC_DEATH)
		return "death";
	if (type >= ATEL_REC_BEGIN && type <= ATEL_REC_LOSS)
		return atel__rec_type_name(type);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* the reader                                                               */

#define WINDOW_MIN (4u << 20)

struct atel_log_reader {
	struct atel_log_reader_opts o;
	char *dir, *single;
	struct atel_decoder *dec;
	ZSTD_DCtx *dctx;
	struct atel_log_read_stats st;

	/* current file */
	int fd;
	bool single_done;            /* single_file mode: the file was opened */
	uint64_t seq;                /* file_seq of the current (or last) file; 0 before the first */
	char path[PATH_MAX];
	bool header_done;
	uint64_t instance;
	bool have_instance;
	uint64_t off;                /* next frame to examine */
	uint64_t size;               /* file size at the last look */
	uint64_t torn_reported;      /* offset of an incomplete tail already reported, or UINT64_MAX */
	bool at_torn;                /* the last look ended in an incomplete frame */

	/* window of the file */
	uint8_t *buf;
	size_t cap, blen;
	uint64_t boff;

	/* current frame */
	struct atel_seg_frame_buf fb;
	const union atel_slot *rec;  /* its records (in fb) */
	size_t nslots, slot;
	uint64_t frame_off, frame_next;
	bool in_frame;
	/* current chunk: slots [chunk_first_slot, chunk_end); chunk_end 0 before the first */
	size_t chunk_end, chunk_first_slot;
	uint32_t c_ring, c_gen;
	uint64_t c_first;
	uint8_t c_flags;
	/* The sample fast path (next_sample) runs below fast_end: chunk_end of a
	 * data chunk when not resuming, else 0. A record's sequence number
	 * there is c_seq0 + its slot index (c_first - chunk_first_slot, mod 2^64). */
	size_t fast_end;
	uint64_t c_seq0;
	const struct atel_dec_ring *c_dict; /* c_ring's dictionary (NULL: none yet) */

	bool resuming;
	uint64_t last_list_ns;
};

static void corrupt(struct atel_log_reader *r, uint64_t off, const char *why)
{
	r->st.corrupt_frames++;
	if (r->o.on_corrupt)
		r->o.on_corrupt(r->o.arg, r->path, off, why);
}

int atel__log_open(struct atel_log_reader **out, const struct atel_log_reader_opts *opts)
{
	struct atel_log_reader *r;
	struct stat st;
	const char *target;

	*out = NULL;
	if (!opts || (!opts->segments_dir && !opts->single_file))
		return -EINVAL;
	target = opts->single_file ? opts->single_file : opts->segments_dir;
	if (stat(target, &st))
		return -errno;
	if (opts->single_file ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
		return opts->single_file ? -EISDIR : -ENOTDIR;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->o = *opts;
	r->fd = -1;
	r->torn_reported = UINT64_MAX;
	r->dir = opts->segments_dir ? strdup(opts->segments_dir) : NULL;
	r->single = opts->single_file ? strdup(opts->single_file) : NULL;
	r->dec = atel__decoder_new();
	r->dctx = ZSTD_createDCtx();
	if ((opts->segments_dir && !r->dir) || (opts->single_file && !r->single) || !r->dec || !r->dctx) {
		atel__log_close(r);
		return -ENOMEM;
	}
	r->o.segments_dir = r->dir;
	r->o.single_file = r->single;
	r->resuming = opts->start.file_seq != 0 || opts->start.frame_off != 0 || opts->start.rec_idx != 0;
	*out = r;
	return 0;
}

void atel__log_close(struct atel_log_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	atel__decoder_free(r->dec);
	ZSTD_freeDCtx(r->dctx);
	free(r->buf);
	atel__seg_frame_buf_free(&r->fb);
	free(r->dir);
	free(r->single);
	free(r);
}

void atel__log_stats(const struct atel_log_reader *r, struct atel_log_read_stats *out)
{
	if (r)
		*out = r->st;
	else
		memset(out, 0, sizeof(*out));
}

const char *atel__log_current_file(const struct atel_log_reader *r)
{
	return r && r->fd >= 0 ? r->path : "";
}

/* Current size of the open file. */
static uint64_t file_size(struct atel_log_reader *r)
{
	struct stat st;
	if (fstat(r->fd, &st) == 0)
		r->size = (uint64_t)st.st_size;
	return r->size;
}

/*
 * Makes [off, off + len) readable in the window, clipped to the file size.
 * @return the bytes available from off (possibly fewer than len), or -errno.
 */
static int64_t ensure(struct atel_log_reader *r, uint64_t off, uint64_t len)
{
	uint64_t size = r->size, want, got = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = size - off;
	if (off >= r->boff && off + len <= r->boff + r->blen)
		return (int64_t)(r->boff + r->blen - off);
	want = len > WINDOW_MIN ? len : WINDOW_MIN;
	if (want > size - off)
		want = size - off;
	if (want > r->cap) {
		uint8_t *nb = realloc(r->buf, want);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = want;
	}
	while (got < want) {
		ssize_t n = pread(r->fd, r->buf + got, want - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	r->boff = off;
	r->blen = got;
	if (got < len)
		r->size = off + got; /* the file shrank (recovery truncated it) */
	return (int64_t)got;
}

static void close_file(struct atel_log_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->blen = 0;
	r->boff = 0;
	r->header_done = false;
	r->in_frame = false;
	r->fast_end = 0;
	r->off = 0;
	r->size = 0;
	r->at_torn = false;
	r->torn_reported = UINT64_MAX;
}

/* Smallest file_seq > after (>= the resume file when nothing was read yet). */
static int next_seq(struct atel_log_reader *r, uint64_t after, bool first, uint64_t *out)
{
	uint64_t *seqs = NULL;
	int n = atel__seg_list(r->dir, &seqs);
	int rc = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (first ? seqs[i] >= after : seqs[i] > after) {
			*out = seqs[i];
			rc = 1;
			break;
		}
	}
	free(seqs);
	return rc;
}

/* Is there a file after the current one? Cheap when polled: stat(seq + 1) first. */
static int newer_exists(struct atel_log_reader *r, uint64_t *next)
{
	char p[PATH_MAX];
	struct stat st;
	uint64_t now;

	if (r->single)
		return 0;
	snprintf(p, sizeof(p), "%s/%016llx" ATEL_SEG_SUFFIX, r->dir, (unsigned long long)(r->seq + 1));
	if (stat(p, &st) == 0) {
		*next = r->seq + 1;
		return 1;
	}
	now = atel__mono_ns();
	if (r->o.follow && now - r->last_list_ns < 1000000000ull)
		return 0;
	r->last_list_ns = now;
	return next_seq(r, r->seq, false, next);
}

static int open_file(struct atel_log_reader *r, uint64_t seq)
{
	close_file(r);
	if (r->single)
		snprintf(r->path, sizeof(r->path), "%s", r->single);
	else
		snprintf(r->path, sizeof(r->path), "%s/%016llx" ATEL_SEG_SUFFIX, r->dir, (unsigned long long)seq);
	r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	r->seq = seq;
	r->st.files++;
	file_size(r);
	return 0;
}

/* Finds the next zstd magic at or after `from`; r->off gets it (or the file end). */
static int resync(struct atel_log_reader *r, uint64_t from)
{
	for (uint64_t off = from; off + 4 <= r->size;) {
		int64_t avail = ensure(r, off, 1u << 20);
		const uint8_t *p;
		if (avail < 0)
			return (int)avail;
		if (avail < 4)
			break;
		p = r->buf + (off - r->boff);
		for (int64_t i = 0; i + 4 <= avail; i++) {
			if (p[i] == 0x28 && p[i + 1] == 0xB5 && p[i + 2] == 0x2F && p[i + 3] == 0xFD) {
				r->off = off + (uint64_t)i;
				return 0;
			}
		}
		off += (uint64_t)avail - 3;
	}
	r->off = r->size;
	return 0;
}

static bool def_type(uint8_t t)
{
	return t == ATEL_REC_BEGIN || t == ATEL_REC_STRDEF || t == ATEL_REC_SERIESDEF || t == ATEL_REC_BOUNDS;
}

/* Applies the definitions of a header frame (silently: they are not new records). */
static void apply_header_defs(struct atel_log_reader *r, const uint8_t *defs, uint32_t nslots)
{
	union atel_slot *v = malloc((size_t)nslots * sizeof(*v) + 1);
	struct atel_event ev;
	size_t i = 0;

	if (!v)
		return;
	memcpy(v, defs, (size_t)nslots * sizeof(*v));
	while (i < nslots) {
		const struct atel_rec_chunk *c = (const struct atel_rec_chunk *)(const void *)&v[i];
		size_t end;
		if (c->h.type != ATEL_LOGREC_CHUNK || c->count > nslots - i - 1) {
			corrupt(r, 0, "header definitions are not framed by chunk records");
			break;
		}
		end = i + 1 + c->count;
		atel__decoder_reset_ring(r->dec, c->h.id);
		for (size_t k = i + 1; k < end;) {
			const char *why;
			int n = atel__log_rec_check(&v[k], end - k, &why);
			if (n < 0) {
				r->st.invalid_records++;
				k++;
				continue;
			}
			if (atel__decode(r->dec, c->h.id, c->first_pos, &v[k], (unsigned)n, &ev) < 0)
				r->st.invalid_records++;
			k += (size_t)n;
		}
		i = end;
	}
	free(v);
}

/* @return 1 header done, 0 incomplete (wait), <0 error. */
static int read_header(struct atel_log_reader *r)
{
	uint64_t csize, need = 0;
	bool skip;
	const char *why = NULL;
	struct atel_seg_header_view hv;
	int64_t fs, avail;

	/* Follow mode: the file may have grown since it was opened (possibly
	 * empty) or last read; refresh the size and drop a window that ends
	 * before the new end, or a half-written header would be seen forever. */
	if (file_size(r) > r->boff + r->blen)
		r->blen = 0;
	avail = ensure(r, 0, 64u << 10);
	if (avail < 0)
		return (int)avail;
	for (;;) {
		fs = atel__seg_frame_size(r->buf, (size_t)avail, &csize, &skip, &need, &why);
		if (fs != 0 || (uint64_t)avail >= r->size || need > ATEL_SEG_HEADER_FRAME_MAX + 8ull)
			break;
		avail = ensure(r, 0, need);
		if (avail < 0)
			return (int)avail;
	}
	if (fs == 0 && need <= ATEL_SEG_HEADER_FRAME_MAX + 8ull)
		return 0; /* being written */
	if (fs <= 0 || !skip || (uint64_t)fs > ATEL_SEG_HEADER_FRAME_MAX + 8ull) {
		corrupt(r, 0, fs < 0 ? why : "file does not start with a segment header frame");
		r->header_done = true;
		return resync(r, 0) < 0 ? -EIO : 1;
	}
	if (atel__seg_parse_header(r->buf + 8, (size_t)fs - 8, &hv, &why)) {
		corrupt(r, 0, why);
		r->header_done = true;
		r->off = (uint64_t)fs;
		return 1;
	}
	if (r->have_instance && hv.hdr.shm_instance != r->instance) {
		/* a new shared-memory segment: every ring starts over */
		atel__decoder_free(r->dec);
		r->dec = atel__decoder_new();
		if (!r->dec)
			return -ENOMEM;
	}
	r->instance = hv.hdr.shm_instance;
	r->have_instance = true;
	if (r->single)
		r->seq = hv.hdr.file_seq;
	apply_header_defs(r, hv.defs, hv.hdr.ndef_slots);
	r->header_done = true;
	r->off = (uint64_t)fs;
	return 1;
}

/* @return 1 a frame is loaded, 0 no complete frame at r->off now, <0 error. */
static int load_frame(struct atel_log_reader *r)
{
	for (;;) {
		uint64_t csize, need = 0;
		bool skip;
		const char *why = NULL;
		int64_t fs = 0, avail, ns;

		r->at_torn = false;
		if (r->off >= r->size && r->off >= file_size(r))
			return 0;
		avail = ensure(r, r->off, 256u << 10);
		if (avail < 0)
			return (int)avail;
		while (avail > 0) {
			fs = atel__seg_frame_size(r->buf + (r->off - r->boff), (size_t)avail, &csize, &skip, &need, &why);
			if (fs != 0 || r->off + (uint64_t)avail >= r->size)
				break;
			avail = ensure(r, r->off, need);
			if (avail < 0)
				return (int)avail;
		}
		if (fs == 0) {
			uint64_t known = r->size;

			if (file_size(r) > known) {
				r->blen = 0; /* the file grew since the window was read: read the frame again */
				continue;
			}
			r->at_torn = avail > 0;
			return 0; /* incomplete: still being written, or torn */
		}
		if (fs < 0) {
			corrupt(r, r->off, why);
			if (resync(r, r->off + 1) < 0)
				return -EIO;
			continue;
		}
		if (skip) {
			r->off += (uint64_t)fs;
			continue;
		}
		{
			const uint8_t *rec;
			ns = atel__seg_frame_records(r->dctx, r->buf + (r->off - r->boff), (size_t)fs, csize, &r->fb,
						     &rec, &why);
			r->rec = (const union atel_slot *)(const void *)rec;
		}
		if (ns == -ENOMEM)
			return -ENOMEM;
		if (ns < 0) {
			corrupt(r, r->off, why);
			if (resync(r, r->off + 1) < 0)
				return -EIO;
			continue;
		}
		r->st.frames++;
		r->st.bytes_compressed += (uint64_t)fs;
		r->st.bytes_raw += (uint64_t)ns * ATEL_RECORD_SIZE;
		r->nslots = (size_t)ns;
		r->slot = 0;
		r->chunk_end = 0;
		r->fast_end = 0;
		r->frame_off = r->off;
		r->frame_next = r->off + (uint64_t)fs;
		r->in_frame = true;
		return 1;
	}
}

/* Is the record at the current slot before the resume position? */
static bool before_start(struct atel_log_reader *r)
{
	const struct atel_log_pos *s = &r->o.start;
	if (!r->resuming)
		return false;
	if (r->seq < s->file_seq || (r->seq == s->file_seq && (r->frame_off < s->frame_off ||
	    (r->frame_off == s->frame_off && r->slot < s->rec_idx))))
		return true;
	r->resuming = false;
	return false;
}

/* Event bookkeeping once the record ending before r->slot was decoded. */
static inline void event_done(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	if (r->c_gen)
		ev->generation = r->c_gen;
	if (pos_after) {
		pos_after->file_seq = r->seq;
		pos_after->frame_off = r->frame_off;
		pos_after->rec_idx = (uint32_t)r->slot;
	}
}

/*
 * The common case, kept small enough to inline into atel__log_next: the next
 * record is a sample in a data chunk, resolved against the ring's dictionary
 * (atel__decode_sample is the complete check of such a record).
 * @return true with *ev filled; false (nothing changed) for anything else,
 * which frame_step handles.
 */
static inline bool next_sample(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	size_t i = r->slot;

	if (i >= r->fast_end || !atel__decode_sample(r->c_dict, r->c_ring, r->c_seq0 + i, &r->rec[i], ev))
		return false;
	r->slot = i + 1;
	r->st.records++;
	r->st.by_type[ATEL_REC_SAMPLE]++;
	event_done(r, ev, pos_after);
	return true;
}

/* Next event of the loaded frame. @return 1 event, 0 frame exhausted. */
static int frame_step(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	while (r->slot < r->nslots) {
		const union atel_slot *rec = &r->rec[r->slot];
		const char *why;
		uint64_t seq;
		unsigned ns;
		int n, rc;
		bool silent;

		if (r->slot >= r->chunk_end) {
			const struct atel_rec_chunk *c = (const struct atel_rec_chunk *)(const void *)rec;
			if (c->h.type != ATEL_LOGREC_CHUNK) {
				corrupt(r, r->frame_off, "frame records are not framed by a chunk record");
				return 0;
			}
			if (c->count > r->nslots - r->slot - 1) {
				corrupt(r, r->frame_off, "chunk record counts more slots than its frame holds");
				return 0;
			}
			r->c_ring = c->h.id;
			r->c_gen = c->generation;
			r->c_first = c->first_pos;
			r->c_flags = c->h.flags;
			r->c_dict = atel__decoder_ring(r->dec, r->c_ring);
			r->chunk_first_slot = r->slot + 1;
			r->chunk_end = r->slot + 1 + c->count;
			r->c_seq0 = r->c_first - r->chunk_first_slot;
			r->slot++;
			if (!before_start(r))
				r->st.by_type[ATEL_LOGREC_CHUNK]++;
			/* a MARKER chunk's records all carry first_pos: not for the fast path */
			r->fast_end = r->resuming || (r->c_flags & ATEL_CHUNKF_MARKER) ? 0 : r->chunk_end;
			continue;
		}
		if (next_sample(r, ev, pos_after))
			return 1;
		/* The decoder checks the record's structure itself; the slot count
		 * handed to it is what the record claims, clipped to the chunk. */
		ns = 1u + rec->h.cont;
		if (ns > r->chunk_end - r->slot)
			ns = (unsigned)(r->chunk_end - r->slot);
		seq = (r->c_flags & ATEL_CHUNKF_MARKER) ? r->c_first : r->c_first + (r->slot - r->chunk_first_slot);
		silent = r->resuming && before_start(r);
		if (silent) {
			/* before the resume point: only the dictionary matters */
			n = atel__log_rec_check(rec, r->chunk_end - r->slot, &why);
			r->slot += n > 0 ? (unsigned)n : 1u;
			if (n > 0 && def_type(rec->h.type)) {
				(void)atel__decode(r->dec, r->c_ring, seq, rec, (unsigned)n, ev);
				if (!r->c_dict)
					r->c_dict = atel__decoder_ring(r->dec, r->c_ring);
			}
			continue;
		}
		r->st.records++;
		r->st.by_type[rec->h.type & 0x7f]++;
		rc = atel__decode(r->dec, r->c_ring, seq, rec, ns, ev);
		if (!r->c_dict) /* a BEGIN or a definition may have made it (it then stays) */
			r->c_dict = atel__decoder_ring(r->dec, r->c_ring);
		if (rc < 0) {
			/* a bad header is skipped one slot at a time (resync); a
			 * well-formed record that failed validation, as a whole */
			n = atel__log_rec_check(rec, r->chunk_end - r->slot, &why);
			ns = n > 0 ? (unsigned)n : 1u;
			r->st.invalid_records++;
		}
		r->slot += ns;
		if (rc == 0)
			continue;
		event_done(r, ev, pos_after);
		return 1;
	}
	return 0;
}

static int log_next_slow(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
	__attribute__((noinline));

int atel__log_next(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	/* one call per event: the common case costs no more than the
	 * bookkeeping, everything else is out of line */
	if (next_sample(r, ev, pos_after))
		return 1;
	return log_next_slow(r, ev, pos_after);
}

static int log_next_slow(struct atel_log_reader *r, struct atel_event *ev, struct atel_log_pos *pos_after)
{
	int rc;

	for (;;) {
		if (r->in_frame) {
			if (frame_step(r, ev, pos_after))
				return 1;
			r->in_frame = false;
			r->fast_end = 0;
			r->off = r->frame_next;
		}
		if (r->fd < 0) {
			uint64_t seq = 0;
			if (r->single) {
				if (r->single_done)
					return 0;
				r->single_done = true;
			} else {
				bool first = r->seq == 0;
				rc = next_seq(r, first ? r->o.start.file_seq : r->seq, first, &seq);
				if (rc <= 0)
					return rc;
			}
			if ((rc = open_file(r, seq)))
				return rc;
		}
		if (!r->header_done) {
			rc = read_header(r);
			if (rc < 0)
				return rc;
			if (rc == 0) {
				uint64_t nx;
				if (newer_exists(r, &nx) == 1 && read_header(r) == 0) {
					corrupt(r, 0, "file ends inside its header frame");
					close_file(r);
					continue;
				}
				if (!r->o.follow && r->torn_reported != 0) {
					r->torn_reported = 0;
					corrupt(r, 0, "file ends inside its header frame");
				}
				return 0;
			}
		}
		rc = load_frame(r);
		if (rc < 0)
			return rc;
		if (rc == 1)
			continue;
		/* no complete frame at r->off now */
		{
			uint64_t nx;
			if (newer_exists(r, &nx) == 1) {
				/* the writer moved on: what is here now is all there will be */
				if (load_frame(r) == 1)
					continue;
				if (r->at_torn)
					corrupt(r, r->off, "truncated frame at the end of the file");
				close_file(r);
				continue;
			}
			if (r->at_torn && !r->o.follow && r->torn_reported != r->off) {
				r->torn_reported = r->off;
				corrupt(r, r->off, "truncated frame at the end of the file");
			}
			return 0;
		}
	}
}
