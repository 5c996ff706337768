/* SPDX-License-Identifier: MIT */
/*
 * seglog.c - the segment log writer (format: docs/segment-format.md).
 *
 * Data path. append() does not copy records: the open frame is a list of
 * pieces (iovecs), CHUNK records and markers in memory the writer owns, each
 * run of one ring where it lies, in ring memory. When the frame is full or at
 * flush() it is compressed straight from there: ZSTD_compressStream2 over
 * the pieces with the frame size pledged first, so the content size still
 * goes into the frame header, or (storage.encoding "columns") the COLUMNS
 * encoder reads the pieces and ZSTD_compress2 compresses its block. The
 * caller keeps that memory unchanged until the frame is compressed (the next
 * flush() or close() at the latest; ateld releases ring space only once the
 * frame is written, which is later). bench_log measures this against a
 * staging copy plus ZSTD_compress2: the same speed (zstd's streaming mode
 * copies into its window itself), so the pieces cost nothing and the
 * writer needs no staging buffer.
 *
 * Write path. Closed frames queue in file order and own one of NBUF
 * recycled output buffers (which the back end may register with the kernel).
 * With an asynchronous back end (io_uring: uring.c), up to SUBMIT_MAX frames
 * go out per submission as a linked chain,
 * so the file only ever holds a prefix of the frame sequence: a failed or
 * short write cancels the rest of the chain. Only one chain is in flight at
 * a time for the same reason. Every frame is assigned its file offset once;
 * a failed frame and its successors are retried at the same offsets by the
 * next flush (nothing duplicated, nothing lost), and a ring's written
 * position advances only when every frame up to the one holding its records
 * is complete. The pwritev fallback writes the same queue synchronously.
 *
 * Single-threaded: only the drain thread calls into a struct atel_seglog.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "log_internal.h"
#include "seglog.h"
#include "util.h"

#define NBUF         8      /* recycled compressed-frame buffers */
#define SUBMIT_MAX   8      /* frames per asynchronous submission */
#define FSYNC_TAG    1ull   /* tag of an fsync (frames use their address) */
#define FRAME_DEFAULT (256u << 10) /* measured: better ratio and faster reads than 1 MiB (bench_log) */
#define FRAME_MIN    (64u << 10)
#define FRAME_MAX    (16u << 20)
#define RETENTION_SCAN_NS (60ull * 1000000000ull)

struct upd {
	uint32_t ring, gen;
	uint64_t end;
};

struct frame {
	unsigned char *buf;
	size_t cap, len;
	int idx;                 /* registered buffer index */
	bool queued, assigned, done;
	uint64_t off;
	int err;                 /* error of the last attempt, 0 if none */
	struct upd *upd;
	uint32_t nupd, upd_cap;
	uint64_t raw_bytes;
};

struct atel_seglog {
	struct atel_seglog_opts o;
	int level;                     /* of the next frame (o.zstd_level, or the drain's pressure level) */
	int cctx_level;                /* the level set in cctx */
	char *dir;
	char path[PATH_MAX];
	int fd;
	uint64_t file_seq;
	uint64_t file_created_ns;
	uint64_t assign_end;     /* file offset after the last frame given an offset */
	uint64_t written_end;    /* file offset after the last completed frame */
	bool file_has_data;
	ZSTD_CCtx *cctx;

	/* the open frame: pieces in file order (runs in the caller's memory, CHUNKs and markers in own) */
	struct iovec *pieces;
	uint64_t open_records;     /* records appended (append, not markers) into the open frame */
	size_t npieces;
	union atel_slot *own;          /* CHUNK and marker slots of the open frame */
	size_t nown;
	size_t raw_len, raw_cap;       /* content bytes of the open frame, and its limit (frame_bytes) */
	unsigned char *cols;           /* COLUMNS block of the frame (storage.encoding "columns"), or NULL */
	struct atel_rec_chunk *chunk;  /* open chunk (in own), or NULL */
	uint64_t chunk_end_pos;
	struct upd *supd;
	uint32_t nsupd, supd_cap;
	int32_t *upd_idx;              /* ring -> index in supd, -1 */

	/* per ring */
	uint64_t *appended, *written;
	uint32_t *gen;
	bool *seen;

	struct atel_decoder *defs;     /* definitions of what was appended (own copy) */

	/* queue, in file order */
	struct frame frames[NBUF];
	struct frame *q[NBUF];
	unsigned qhead, qlen;
	unsigned inflight;             /* frame writes submitted, not reaped */
	bool fsync_inflight;

	bool failed;
	const struct atel_seglog_io_ops *aio; /* the asynchronous back end in use, or NULL: pwritev */
	struct atel_seglog_io *io;
	int last_err;
	unsigned fault;
	uint64_t dirty;                /* bytes written since the last fsync */
	uint64_t last_sync_ns, last_retention_ns, last_size_check_ns;
};

static void stat_add(const struct atel_seglog *l, _Atomic uint64_t *c, uint64_t v)
{
	if (l->o.stats)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
#define STAT(l, field, v) stat_add((l), (l)->o.stats ? &(l)->o.stats->field : NULL, (v))

int atel__pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* header frame                                                             */

struct hbuf {
	unsigned char *p;
	size_t len, cap;
};

static int hb_put(struct hbuf *b, const void *src, size_t n)
{
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		unsigned char *np;
		while (nc < b->len + n)
			nc *= 2;
		np = realloc(b->p, nc);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int emit_def(void *arg, const union atel_slot *rec, unsigned nslots)
{
	return hb_put(arg, rec, (size_t)nslots * ATEL_RECORD_SIZE);
}

/* Builds the skippable header frame of file `seq` into *out. */
/*
 * Replaces the raw definitions at b[defs_at..] by one zstd frame of them
 * (section 2.3, required bit DEFZ). A skippable frame is stored as it is, and
 * the definitions of every series live in each ring are repeated in every
 * file: with a label like session_id they ran to 19 MB of a 59 MB file (the
 * 10x `atel load` workload); compressed they take a tenth of that.
 */
static int compress_defs(struct atel_seglog *l, struct hbuf *b, size_t defs_at)
{
	size_t raw = b->len - defs_at, cap = ZSTD_compressBound(raw), z;
	uint8_t *tmp = malloc(cap);
	int rc;

	if (!tmp)
		return -ENOMEM;
	z = ZSTD_compress(tmp, cap, b->p + defs_at, raw, l->o.zstd_level > 0 ? l->o.zstd_level : 3);
	if (ZSTD_isError(z)) {
		free(tmp);
		return -EIO;
	}
	b->len = defs_at;
	rc = hb_put(b, tmp, z);
	free(tmp);
	if (!rc)
		((struct atel_seg_header *)(void *)(b->p + 8))->required |= ATEL_SEG_REQ_DEFZ;
	return rc;
}

static int build_header(struct atel_seglog *l, uint64_t seq, struct hbuf *b)
{
	struct atel_seg_header h;
	uint32_t nentries = 0;
	size_t defs_at;
	uint32_t magic = ATEL_SEG_SKIPPABLE_MAGIC, size = 0;
	int rc;

	memset(&h, 0, sizeof(h));
	h.magic = ATEL_SEG_MAGIC;
	/* a 1.x reader must refuse the file, not misread its frames or records */
	h.version_major = ATEL_SEG_VERSION_MAJOR;
	h.version_minor = ATEL_SEG_VERSION_MINOR;
	h.required = ATEL_SEG_REQ_ABI2 | (l->cols ? ATEL_SEG_REQ_COLUMNS | ATEL_SEG_REQ_SPANREF : 0);
	h.header_size = ATEL_SEG_HEADER_SIZE;
	h.file_seq = seq;
	h.created_ns = atel__now_ns();
	h.shm_instance = l->o.shm_instance;
	h.ring_count = l->o.ring_count;
	h.zstd_level = (uint32_t)l->o.zstd_level;
	if ((rc = hb_put(b, &magic, 4)) || (rc = hb_put(b, &size, 4)) || (rc = hb_put(b, &h, sizeof(h))))
		return rc;
	for (uint32_t r = 0; r < l->o.ring_count; r++) {
		struct atel_seg_ring_entry e = { r, l->gen[r], l->appended[r] };
		if (!l->seen[r])
			continue;
		if ((rc = hb_put(b, &e, sizeof(e))))
			return rc;
		nentries++;
	}
	defs_at = b->len;
	for (uint32_t r = 0; r < l->o.ring_count; r++) {
		union atel_slot c;
		size_t at = b->len;
		memset(&c, 0, sizeof(c));
		c.h.type = ATEL_LOGREC_CHUNK;
		c.h.flags = ATEL_CHUNKF_DEFS;
		c.h.id = r;
		c.h.ts_ns = h.created_ns;
		if ((rc = hb_put(b, &c, sizeof(c))))
			return rc;
		if ((rc = atel__decoder_defs(l->defs, r, emit_def, b)))
			return rc;
		if (b->len == at + sizeof(c)) {
			b->len = at; /* no definitions for this ring */
			continue;
		}
		{
			struct atel_rec_chunk *ch = (struct atel_rec_chunk *)(void *)(b->p + at);
			ch->generation = l->gen[r];
			ch->count = (uint32_t)((b->len - at) / ATEL_RECORD_SIZE - 1);
			ch->first_pos = l->appended[r];
			ch->shm_instance = l->o.shm_instance;
		}
	}
	{
		struct atel_seg_header *hp = (struct atel_seg_header *)(void *)(b->p + 8);
		hp->nentries = nentries;
		hp->ndef_slots = (uint32_t)((b->len - defs_at) / ATEL_RECORD_SIZE);
		if (hp->ndef_slots && (rc = compress_defs(l, b, defs_at)))
			return rc;
		hp = (struct atel_seg_header *)(void *)(b->p + 8); /* b may have moved */
		size = (uint32_t)(b->len - 8);
		memcpy(b->p + 4, &size, 4);
		hp->crc32 = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b->p + 8, (uInt)size);
	}
	return 0;
}

/* Creates file `seq` with its header frame. */
static int create_file(struct atel_seglog *l, uint64_t seq, int *fd_out, char *path, size_t pathlen)
{
	struct hbuf b = { 0 };
	int fd, rc;

	snprintf(path, pathlen, "%s/%016llx" ATEL_SEG_SUFFIX, l->dir, (unsigned long long)seq);
	if ((rc = build_header(l, seq, &b)))
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)atel__file_mode());
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	(void)atel__fchmod_policy(fd); /* storage.file_mode exactly, whatever the umask */
	if ((rc = atel__pwrite_all(fd, b.p, b.len, 0))) {
		close(fd);
		unlink(path);
		goto out;
	}
	*fd_out = fd;
	l->assign_end = l->written_end = b.len;
	l->file_created_ns = atel__now_ns();
	l->file_has_data = false;
	l->dirty = b.len;
out:
	free(b.p);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* staging                                                                  */

static inline const union atel_slot *piece_at(const union atel_slot *a, uint64_t na, const union atel_slot *b,
					       uint64_t i)
{
	return i < na ? &a[i] : &b[i - na];
}

static void supd_set(struct atel_seglog *l, uint32_t ring, uint32_t gen, uint64_t end)
{
	int32_t k = l->upd_idx[ring];
	if (k < 0) {
		k = (int32_t)l->nsupd++;
		l->upd_idx[ring] = k;
		l->supd[k].ring = ring;
	}
	l->supd[k].gen = gen;
	l->supd[k].end = end;
}

static struct frame *frame_free(struct atel_seglog *l)
{
	for (int i = 0; i < NBUF; i++)
		if (!l->frames[i].queued)
			return &l->frames[i];
	return NULL;
}

static int reap(struct atel_seglog *l, bool wait);
static int submit(struct atel_seglog *l);
static int front_error(struct atel_seglog *l);

/* Compresses the staging buffer into a queued frame. */
static int close_frame(struct atel_seglog *l)
{
	struct frame *f;
	size_t c;

	if (l->raw_len == 0)
		return 0;
	while (!(f = frame_free(l))) {
		/* every buffer holds a queued frame: write some out first */
		int rc;
		if (l->failed)
			return -EBUSY;
		if (!l->inflight && (rc = submit(l)))
			return rc;
		if ((rc = reap(l, true)))
			return rc;
		if ((rc = front_error(l)))
			return rc;
	}
	if (l->level != l->cctx_level) {
		if (ZSTD_isError(ZSTD_CCtx_setParameter(l->cctx, ZSTD_c_compressionLevel, l->level)))
			return -EIO;
		l->cctx_level = l->level;
	}
	if (l->cols) {
		size_t n = atel__cols_encode_iov(l->pieces, l->npieces, l->raw_len / ATEL_RECORD_SIZE, l->cols);
		c = ZSTD_compress2(l->cctx, f->buf, f->cap, l->cols, n);
		if (ZSTD_isError(c))
			return -EIO;
	} else {
		ZSTD_outBuffer ob = { f->buf, f->cap, 0 };
		size_t r;
		ZSTD_CCtx_reset(l->cctx, ZSTD_reset_session_only);
		if (ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(l->cctx, l->raw_len)))
			return -EIO;
		for (size_t i = 0; i < l->npieces; i++) {
			ZSTD_inBuffer ib = { l->pieces[i].iov_base, l->pieces[i].iov_len, 0 };
			while (ib.pos < ib.size) {
				r = ZSTD_compressStream2(l->cctx, &ob, &ib, ZSTD_e_continue);
				if (ZSTD_isError(r) || ob.pos == ob.size)
					return -EIO;
			}
		}
		do {
			ZSTD_inBuffer none = { NULL, 0, 0 };
			r = ZSTD_compressStream2(l->cctx, &ob, &none, ZSTD_e_end);
			if (ZSTD_isError(r) || (r && ob.pos == ob.size))
				return -EIO; /* cannot happen: f->cap is ZSTD_compressBound of the content */
		} while (r);
		c = ob.pos;
	}
	if (l->o.source_lost && l->o.source_lost(l->o.source_arg)) {
		/* issue 12.3: some piece may have read as zeros: drop the frame, keep the log true */
		STAT(l, records_source_lost, l->open_records);
		goto reset;
	}
	if (f->upd_cap < l->nsupd) {
		struct upd *nu = realloc(f->upd, l->nsupd * sizeof(*nu));
		if (!nu)
			return -ENOMEM;
		f->upd = nu;
		f->upd_cap = l->nsupd;
	}
	if (l->nsupd) /* f->upd may still be NULL: memcpy(NULL, _, 0) is undefined */
		memcpy(f->upd, l->supd, l->nsupd * sizeof(*f->upd));
	f->nupd = l->nsupd;
	f->len = c;
	f->raw_bytes = l->raw_len;
	f->queued = true;
	f->assigned = f->done = false;
	f->err = 0;
	l->q[(l->qhead + l->qlen) % NBUF] = f;
	l->qlen++;
reset:
	l->open_records = 0;
	for (uint32_t i = 0; i < l->nsupd; i++)
		l->upd_idx[l->supd[i].ring] = -1;
	l->nsupd = 0;
	l->raw_len = 0;
	l->npieces = 0;
	l->nown = 0;
	l->chunk = NULL;
	return 0;
}

/* Adds n bytes at p to the open frame, extending the last piece when contiguous. */
static void add_piece(struct atel_seglog *l, const void *p, size_t n)
{
	struct iovec *last = l->npieces ? &l->pieces[l->npieces - 1] : NULL;
	if (last && (const unsigned char *)last->iov_base + last->iov_len == (const unsigned char *)p) {
		last->iov_len += n;
	} else {
		l->pieces[l->npieces].iov_base = (void *)(uintptr_t)p; /* read only: iovec has no const */
		l->pieces[l->npieces].iov_len = n;
		l->npieces++;
	}
	l->raw_len += n;
}

/* Opens a chunk for (ring, gen, pos) unless the open one continues exactly there. */
static void chunk_for(struct atel_seglog *l, uint32_t ring, uint32_t gen, uint64_t pos, uint8_t flags)
{
	struct atel_rec_chunk *c = l->chunk;
	if (c && !flags && !c->h.flags && c->h.id == ring && c->generation == gen && l->chunk_end_pos == pos)
		return;
	c = (struct atel_rec_chunk *)(void *)&l->own[l->nown++];
	memset(c, 0, sizeof(*c));
	c->h.type = ATEL_LOGREC_CHUNK;
	c->h.flags = flags;
	c->h.id = ring;
	c->h.ts_ns = atel__now_ns();
	c->generation = gen;
	c->first_pos = pos;
	c->shm_instance = l->o.shm_instance;
	add_piece(l, c, ATEL_RECORD_SIZE);
	l->chunk = c;
	l->chunk_end_pos = pos;
}

static bool chunk_continues(const struct atel_seglog *l, uint32_t ring, uint32_t gen, uint64_t pos)
{
	const struct atel_rec_chunk *c = l->chunk;
	return c && !c->h.flags && c->h.id == ring && c->generation == gen && l->chunk_end_pos == pos;
}

/* Adds slots [from, to) of the run to the open frame, in place (room was checked). */
static void copy_block(struct atel_seglog *l, uint32_t ring, uint32_t gen, uint64_t first_pos,
		       const union atel_slot *a, uint64_t na, const union atel_slot *b, uint64_t from, uint64_t to)
{
	uint64_t n = to - from;
	if (!n)
		return;
	chunk_for(l, ring, gen, first_pos + from, 0);
	if (from < na) {
		uint64_t k = (to < na ? to : na) - from;
		add_piece(l, &a[from], k * ATEL_RECORD_SIZE);
		from += k;
	}
	if (from < to)
		add_piece(l, &b[from - na], (to - from) * ATEL_RECORD_SIZE);
	l->chunk->count += (uint32_t)n;
	l->chunk_end_pos += n;
	supd_set(l, ring, gen, l->chunk_end_pos);
}


/* Tracks definitions (for later files' headers) from one record of the run. */
static void track_def(struct atel_seglog *l, uint32_t ring, const union atel_slot *a, uint64_t na,
		      const union atel_slot *b, uint64_t i, unsigned n)
{
	union atel_slot tmp[1 + 255];
	const union atel_slot *rec = piece_at(a, na, b, i);
	struct atel_event ev;

	if (i < na && i + n > na) { /* straddles the two pieces */
		for (unsigned k = 0; k < n; k++)
			tmp[k] = *piece_at(a, na, b, i + k);
		rec = tmp;
	}
	/* validated by the drain already; a refusal leaves the tracker unchanged */
	(void)atel__decode(l->defs, ring, 0, rec, n, &ev);
}

int atel__seglog_append(struct atel_seglog *l, uint32_t ring, uint32_t generation, uint64_t first_pos,
			const union atel_slot *a, uint64_t na, const union atel_slot *b, uint64_t nb)
{
	uint64_t total = na + nb, i, blk = 0;
	uint64_t cap_slots = l->raw_cap / ATEL_RECORD_SIZE;
	uint32_t gen = generation;
	bool closed = false;
	int rc;

	if (l->failed)
		return -EBUSY;
	if (ring >= l->o.ring_count || (na && !a) || (nb && !b))
		return -EINVAL;
	if (l->seen[ring] && first_pos < l->appended[ring])
		return -EINVAL; /* would log positions twice */
	if (total == 0)
		return 0;
	/* whole records only: checked before anything changes */
	for (i = 0; i < total;) {
		uint64_t n = 1u + piece_at(a, na, b, i)->h.cont;
		if (i + n > total)
			return -EINVAL;
		i += n;
	}
	/* Room for the frames this run closes, made before anything is consumed,
	 * so that a write error fails the whole append and changes nothing
	 * (runs longer than NBUF - 1 frames may still fail part-way; see seglog.h). */
	{
		uint64_t closes = (l->raw_len + (total + 2) * ATEL_RECORD_SIZE) / l->raw_cap;
		unsigned want = closes >= NBUF ? NBUF : (unsigned)closes;
		while (NBUF - l->qlen < want) {
			if (!l->inflight && (rc = submit(l)))
				goto early;
			if ((rc = reap(l, true)) || (rc = front_error(l)))
				goto early;
		}
	}
	for (i = 0; i < total;) {
		const union atel_slot *s = piece_at(a, na, b, i);
		unsigned n = 1u + s->h.cont;
		uint64_t free_slots, need;

		if (s->h.type == ATEL_REC_BEGIN && s->h.id != gen) {
			/* a new generation starts inside the run: it gets its own chunk */
			copy_block(l, ring, gen, first_pos, a, na, b, blk, i);
			blk = i;
			gen = s->h.id;
		}
		free_slots = cap_slots - l->raw_len / ATEL_RECORD_SIZE;
		need = (i - blk) + n + (chunk_continues(l, ring, gen, first_pos + blk) ? 0 : 1);
		if (need > free_slots) {
			copy_block(l, ring, gen, first_pos, a, na, b, blk, i);
			blk = i;
			if ((rc = close_frame(l)))
				goto fail;
			closed = true;
		}
		if (s->h.type == ATEL_REC_BEGIN || s->h.type == ATEL_REC_STRDEF || s->h.type == ATEL_REC_SERIESDEF ||
		    s->h.type == ATEL_REC_BOUNDS)
			track_def(l, ring, a, na, b, i, n);
		l->open_records++;
		i += n;
	}
	copy_block(l, ring, gen, first_pos, a, na, b, blk, total);
	l->appended[ring] = first_pos + total;
	l->gen[ring] = gen;
	if (!l->seen[ring]) {
		l->seen[ring] = true;
		l->written[ring] = first_pos; /* nothing of this ring before first_pos is ours */
	}
	STAT(l, bytes_raw, total * ATEL_RECORD_SIZE);
	if (closed) {
		/* overlap the write of full frames with further draining; a failure
		 * here makes later appends wait for a successful flush */
		if (reap(l, false) || submit(l) || front_error(l))
			l->failed = true;
		else if (l->o.rotate_bytes && l->assign_end >= l->o.rotate_bytes)
			(void)atel__seglog_flush(l); /* writes everything, then rotates; errors stick in l->failed */
	}
	return 0;
fail:
	/* Records before blk are in a queued frame; make the state say so, and
	 * report the error: the caller appends the rest again. */
	if (blk) {
		l->appended[ring] = first_pos + blk;
		l->gen[ring] = gen;
		if (!l->seen[ring]) {
			l->seen[ring] = true;
			l->written[ring] = first_pos;
		}
	}
	return rc;
early:
	l->failed = true;
	STAT(l, write_errors, 1);
	return rc;
}

int atel__seglog_append_marker(struct atel_seglog *l, uint32_t ring, const union atel_slot *rec)
{
	const char *why;
	unsigned n;
	uint64_t free_slots;
	int rc;

	if (l->failed)
		return -EBUSY;
	if (ring >= l->o.ring_count || !rec)
		return -EINVAL;
	rc = atel__log_rec_check(rec, 1u + rec->h.cont, &why);
	if (rc < 0)
		return -EINVAL;
	n = (unsigned)rc;
	free_slots = l->raw_cap / ATEL_RECORD_SIZE - l->raw_len / ATEL_RECORD_SIZE;
	if (n + 1 > free_slots && (rc = close_frame(l)))
		return rc;
	chunk_for(l, ring, l->gen[ring], l->seen[ring] ? l->appended[ring] : 0, ATEL_CHUNKF_MARKER);
	/* markers are the caller's temporaries: copied (a chunk and its marker are adjacent in own) */
	memcpy(&l->own[l->nown], rec, (size_t)n * ATEL_RECORD_SIZE);
	add_piece(l, &l->own[l->nown], (size_t)n * ATEL_RECORD_SIZE);
	l->nown += n;
	l->chunk->count = n;
	l->chunk = NULL; /* markers never merge with data */
	return 0;
}

/* ------------------------------------------------------------------------ */
/* writing                                                                  */

/* The i-th queued frame, in file order. */
static struct frame *qat(const struct atel_seglog *l, unsigned i)
{
	return l->q[(l->qhead + i) % NBUF];
}

static void assign(struct atel_seglog *l, struct frame *f)
{
	if (!f->assigned) {
		f->off = l->assign_end;
		l->assign_end += f->len;
		f->assigned = true;
	}
}

/* Injected failure: half the frame really lands on disk, then ENOSPC. */
static bool inject_fault(struct atel_seglog *l, struct frame *f)
{
	if (!l->fault)
		return false;
	l->fault--;
	(void)atel__pwrite_all(l->fd, f->buf, f->len / 2, f->off);
	f->err = -ENOSPC;
	return true;
}

static int submit_pwritev(struct atel_seglog *l)
{
	struct iovec iov[NBUF];
	unsigned first = 0, cnt = 0;

	while (first < l->qlen && qat(l, first)->done)
		first++;
	for (unsigned i = first; i < l->qlen; i++) {
		struct frame *f = qat(l, i);
		assign(l, f);
		iov[cnt].iov_base = f->buf;
		iov[cnt].iov_len = f->len;
		cnt++;
	}
	if (!cnt)
		return 0;
	if (inject_fault(l, qat(l, first)))
		return qat(l, first)->err;
	{
		unsigned k = 0;
		uint64_t off = qat(l, first)->off;
		while (k < cnt) {
			ssize_t w = pwritev(l->fd, &iov[k], (int)(cnt - k), (off_t)off);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				qat(l, first + k)->err = -errno;
				return -errno;
			}
			if (w == 0) {
				qat(l, first + k)->err = -EIO;
				return -EIO;
			}
			off += (uint64_t)w;
			while (k < cnt && (size_t)w >= iov[k].iov_len) {
				w -= (ssize_t)iov[k].iov_len;
				qat(l, first + k)->done = true;
				k++;
			}
			if (k < cnt && w > 0) {
				iov[k].iov_base = (char *)iov[k].iov_base + w;
				iov[k].iov_len -= (size_t)w;
			}
		}
	}
	return 0;
}

static int submit_async(struct atel_seglog *l)
{
	struct atel_seglog_io_write w[SUBMIT_MAX];
	unsigned first = 0, cnt = 0;
	int rc;

	if (l->inflight)
		return 0; /* one chain at a time keeps the file a prefix of the queue */
	while (first < l->qlen && qat(l, first)->done)
		first++;
	if (first == l->qlen)
		return 0;
	for (unsigned i = first; i < l->qlen && cnt < SUBMIT_MAX; i++, cnt++)
		assign(l, qat(l, i));
	if (inject_fault(l, qat(l, first)))
		return qat(l, first)->err;
	for (unsigned i = 0; i < cnt; i++) {
		struct frame *f = qat(l, first + i);
		w[i] = (struct atel_seglog_io_write){ .buf = f->buf, .len = (unsigned)f->len, .off = f->off,
						      .buf_index = f->idx, .tag = (uint64_t)(uintptr_t)f };
		f->err = 0;
	}
	rc = l->aio->chain(l->io, l->fd, w, cnt);
	if (rc < 0)
		return rc;
	/* every queued write completes eventually, even if the kernel took fewer now */
	l->inflight += (unsigned)rc;
	return 0;
}

static int submit(struct atel_seglog *l)
{
	return l->aio ? submit_async(l) : submit_pwritev(l);
}

static void handle_cqe(struct atel_seglog *l, uint64_t data, int res)
{
	struct frame *f;

	if (data == FSYNC_TAG) {
		l->fsync_inflight = false;
		if (res < 0)
			l->last_err = res;
		return;
	}
	f = (struct frame *)(uintptr_t)data;
	l->inflight--;
	if (res == (int)f->len) {
		f->done = true;
	} else if (res >= 0) {
		/* short write: finish it now to learn the real error, if any */
		int rc = atel__pwrite_all(l->fd, f->buf + res, f->len - (size_t)res, f->off + (uint64_t)res);
		if (rc == 0)
			f->done = true;
		else
			f->err = rc;
	} else if (res != -ECANCELED) {
		f->err = res;
	}
}

/* Completes the frames at the queue front that are written. */
static void complete_prefix(struct atel_seglog *l)
{
	while (l->qlen && qat(l, 0)->done) {
		struct frame *f = qat(l, 0);
		for (uint32_t i = 0; i < f->nupd; i++)
			if (f->upd[i].end > l->written[f->upd[i].ring])
				l->written[f->upd[i].ring] = f->upd[i].end;
		l->written_end = f->off + f->len;
		l->dirty += f->len;
		l->file_has_data = true;
		STAT(l, bytes_written, f->len);
		STAT(l, frames_written, 1);
		f->queued = false;
		l->qhead = (l->qhead + 1) % NBUF;
		l->qlen--;
	}
}

/* Takes one completion (waiting for it if wait). @return 1, 0 if none is ready, or -errno. */
static int reap_one(struct atel_seglog *l, bool wait)
{
	uint64_t tag;
	int res, rc;

	do
		rc = l->aio->reap(l->io, wait, &tag, &res);
	while (rc == -EINTR);
	if (rc == 1)
		handle_cqe(l, tag, res);
	return rc;
}

static int reap(struct atel_seglog *l, bool wait)
{
	int rc = 0;

	if (!l->aio) {
		complete_prefix(l); /* pwritev completes inside submit() */
		return 0;
	}
	while (l->inflight || l->fsync_inflight) {
		rc = reap_one(l, wait && l->inflight);
		if (rc <= 0)
			break;
		rc = 0;
	}
	complete_prefix(l);
	return rc;
}

/* Error of the first unwritten frame, if its last attempt failed. */
static int front_error(struct atel_seglog *l)
{
	for (unsigned i = 0; i < l->qlen; i++) {
		struct frame *f = qat(l, i);
		if (!f->done)
			return f->err;
	}
	return 0;
}

static int rotate(struct atel_seglog *l);

int atel__seglog_flush(struct atel_seglog *l)
{
	int rc;

	/* -EBUSY: every buffer holds an unwritten frame; writing them frees one */
	if ((rc = close_frame(l)) && rc != -EBUSY)
		return rc;
	for (;;) {
		if ((rc = reap(l, true)))
			break;
		if (!l->qlen) {
			if (!l->raw_len)
				break;
			if ((rc = close_frame(l)))
				break;
		}
		for (unsigned i = 0; i < l->qlen; i++)
			qat(l, i)->err = 0; /* a retry */
		if ((rc = submit(l)))
			break;
		if ((rc = reap(l, true)))
			break;
		if ((rc = front_error(l)))
			break;
	}
	if (rc) {
		l->failed = true;
		l->last_err = rc;
		STAT(l, write_errors, 1);
		return rc;
	}
	l->failed = false;
	if (l->o.rotate_bytes && l->written_end >= l->o.rotate_bytes)
		return rotate(l);
	return 0;
}

void atel__seglog_set_level(struct atel_seglog *l, int level)
{
	if (l)
		l->level = level;
}

uint64_t atel__seglog_written_pos(const struct atel_seglog *l, uint32_t ring)
{
	if (!l || ring >= l->o.ring_count || !l->seen[ring])
		return 0;
	return l->written[ring];
}

void atel__seglog_fault_writes(struct atel_seglog *l, unsigned n)
{
	if (l)
		l->fault = n;
}

const char *atel__seglog_io_path(const struct atel_seglog *l)
{
	return l && l->aio ? l->aio->name : "pwritev";
}

const char *atel__seglog_current_file(const struct atel_seglog *l)
{
	return l ? l->path : "";
}

/* ------------------------------------------------------------------------ */
/* files: rotation, fsync, retention                                        */

static int sync_now(struct atel_seglog *l, bool full)
{
	/* wait for an asynchronous fsync in flight, then sync here */
	while (l->aio && l->fsync_inflight) {
		int rc = reap_one(l, true);
		if (rc < 0)
			return rc;
	}
	if ((full ? fsync(l->fd) : fdatasync(l->fd)) != 0)
		return -errno;
	l->dirty = 0;
	return 0;
}

static int rotate(struct atel_seglog *l)
{
	char path[PATH_MAX];
	int fd, rc;

	if (l->qlen || l->raw_len || l->inflight)
		return -EBUSY;
	/* the old file is complete and durable before the new one appears */
	if ((rc = sync_now(l, true)))
		return rc;
	if ((rc = create_file(l, l->file_seq + 1, &fd, path, sizeof(path))))
		return rc; /* keep writing the old file; the next tick tries again */
	close(l->fd);
	l->fd = fd;
	l->file_seq++;
	memcpy(l->path, path, sizeof(path));
	STAT(l, segments_created, 1);
	if (l->o.stats)
		atomic_store_explicit(&l->o.stats->log_end_seq, l->file_seq, memory_order_relaxed);
	return atel__fsync_dir(l->dir);
}

/* Bytes of the regular files directly in dir (not recursive). */
static uint64_t dir_files_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t sum = 0;

	while (d && (de = readdir(d)) != NULL) {
		char p[PATH_MAX];
		struct stat st;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, de->d_name) < sizeof(p) && stat(p, &st) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return sum;
}

/* retention.max_bytes: oldest finished files first, never the one being written. */
static void retention_size(struct atel_seglog *l)
{
	char parent[PATH_MAX];
	uint64_t *seqs = NULL, total;
	int n;

	if ((size_t)snprintf(parent, sizeof(parent), "%s/..", l->dir) >= sizeof(parent))
		return;
	total = dir_files_bytes(l->dir) + dir_files_bytes(parent);
	if (total <= l->o.max_bytes)
		return;
	n = atel__seg_list(l->dir, &seqs);
	for (int i = 0; i < n && total > l->o.max_bytes; i++) {
		char p[PATH_MAX];
		struct stat st;
		if (seqs[i] >= l->file_seq)
			break;
		snprintf(p, sizeof(p), "%s/%016llx" ATEL_SEG_SUFFIX, l->dir, (unsigned long long)seqs[i]);
		if (stat(p, &st) || unlink(p))
			continue;
		total -= (uint64_t)st.st_size < total ? (uint64_t)st.st_size : total;
		STAT(l, segments_deleted, 1);
	}
	free(seqs);
}

static void retention(struct atel_seglog *l, uint64_t now_ns)
{
	uint64_t *seqs = NULL;
	int n = atel__seg_list(l->dir, &seqs);

	for (int i = 0; i < n; i++) {
		char p[PATH_MAX];
		struct stat st;
		uint64_t mt;
		if (seqs[i] >= l->file_seq)
			break;
		snprintf(p, sizeof(p), "%s/%016llx" ATEL_SEG_SUFFIX, l->dir, (unsigned long long)seqs[i]);
		if (stat(p, &st))
			continue;
		mt = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
		if (now_ns > mt && now_ns - mt > l->o.retention_ns && unlink(p) == 0)
			STAT(l, segments_deleted, 1);
	}
	free(seqs);
}

int atel__seglog_tick(struct atel_seglog *l, uint64_t now_ns)
{
	int rc = 0;

	(void)reap(l, false);
	if (!l->failed) {
		(void)submit(l);
		if (l->o.rotate_age_ns && l->file_has_data && now_ns > l->file_created_ns &&
		    now_ns - l->file_created_ns >= l->o.rotate_age_ns) {
			if ((rc = atel__seglog_flush(l)) == 0 && l->written_end > 0 && l->file_has_data)
				rc = rotate(l);
		}
	}
	if (!rc && l->dirty && l->o.fsync_interval_ns && now_ns - l->last_sync_ns >= l->o.fsync_interval_ns) {
		l->last_sync_ns = now_ns;
		if (l->aio) {
			if (!l->fsync_inflight && l->aio->fsync(l->io, l->fd, FSYNC_TAG) == 0) {
				l->fsync_inflight = true;
				l->dirty = 0;
			}
		} else {
			rc = sync_now(l, false);
		}
	}
	if (l->o.retention_ns && now_ns - l->last_retention_ns >= RETENTION_SCAN_NS) {
		l->last_retention_ns = now_ns;
		retention(l, now_ns);
	}
	if (l->o.max_bytes && now_ns - l->last_size_check_ns >= 1000000000ull) {
		l->last_size_check_ns = now_ns;
		retention_size(l);
	}
	return rc;
}

int atel__seglog_reopen(struct atel_seglog *l)
{
	int rc = atel__seglog_flush(l);
	return rc ? rc : rotate(l);
}

/* ------------------------------------------------------------------------ */
/* open / close                                                             */

struct seed {
	struct atel_decoder *dec;
	uint32_t ring;
};

static int seed_def(void *arg, const union atel_slot *rec, unsigned nslots)
{
	struct seed *sd = arg;
	struct atel_event ev;
	(void)atel__decode(sd->dec, sd->ring, 0, rec, nslots, &ev);
	return 0;
}

static int io_init(struct atel_seglog *l, char *err, size_t errlen)
{
	const char *force = getenv("ATEL_FORCE_PWRITEV");
	struct iovec iov[NBUF];
	int rc;

	if ((force && !strcmp(force, "1")) || l->o.io == ATEL_IO_PWRITEV)
		return 0;
	if (!l->o.async_io) {
		if (l->o.io != ATEL_IO_URING)
			return 0;
		atel__seterr(err, errlen, "io_uring was asked for, but this program has no io_uring writer");
		return -ENOSYS;
	}
	for (int i = 0; i < NBUF; i++) {
		iov[i].iov_base = l->frames[i].buf;
		iov[i].iov_len = l->frames[i].cap;
	}
	rc = l->o.async_io->open(&l->io, iov, NBUF);
	if (rc < 0) {
		if (l->o.io == ATEL_IO_URING && rc != -ENOSYS && rc != -EPERM && rc != -ENOMEM) {
			atel__seterr(err, errlen, "%s: %s", l->o.async_io->name, strerror(-rc));
			return rc;
		}
		return 0; /* unavailable (seccomp, old kernel, memlock): pwritev */
	}
	l->aio = l->o.async_io;
	return 0;
}

int atel__seglog_open(struct atel_seglog **out, const struct atel_seglog_opts *o, char *err, size_t errlen)
{
	struct atel_seglog *l;
	uint64_t *seqs = NULL;
	uint32_t rc_count;
	int n, rc;

	*out = NULL;
	if (!o || !o->segments_dir || !o->ring_count || o->ring_count > ATEL_RING_COUNT_MAX) {
		atel__seterr(err, errlen, "invalid options: segments_dir and ring_count 1..65536 are required");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fd = -1;
	l->o = *o;
	if (!l->o.rotate_bytes)
		l->o.rotate_bytes = 64ull << 20;
	if (!l->o.rotate_age_ns)
		l->o.rotate_age_ns = 3600ull * 1000000000ull;
	if (!l->o.fsync_interval_ns)
		l->o.fsync_interval_ns = 1000000000ull;
	if (!l->o.zstd_level)
		l->o.zstd_level = 3;
	if (!l->o.frame_bytes)
		l->o.frame_bytes = FRAME_DEFAULT;
	if (l->o.frame_bytes < FRAME_MIN)
		l->o.frame_bytes = FRAME_MIN;
	if (l->o.frame_bytes > FRAME_MAX)
		l->o.frame_bytes = FRAME_MAX;
	l->o.frame_bytes &= ~(ATEL_RECORD_SIZE - 1);
	l->o.resume_pos = NULL;
	l->o.resume_seen = NULL;
	l->o.segments_dir = NULL;
	rc_count = o->ring_count;

	l->dir = strdup(o->segments_dir);
	l->raw_cap = l->o.frame_bytes;
	/* every piece and every owned slot takes at least one slot of the frame */
	l->pieces = malloc((l->raw_cap / ATEL_RECORD_SIZE) * sizeof(*l->pieces));
	l->own = malloc(l->raw_cap);
	if (l->o.encoding == ATEL_SEG_ENC_COLUMNS && !(l->cols = malloc(atel__cols_bound(l->raw_cap / ATEL_RECORD_SIZE)))) {
		rc = -ENOMEM;
		atel__seterr(err, errlen, "out of memory");
		goto fail;
	}
	l->supd = calloc(rc_count, sizeof(*l->supd));
	l->upd_idx = malloc(rc_count * sizeof(*l->upd_idx));
	l->appended = calloc(rc_count, sizeof(uint64_t));
	l->written = calloc(rc_count, sizeof(uint64_t));
	l->gen = calloc(rc_count, sizeof(uint32_t));
	l->seen = calloc(rc_count, sizeof(bool));
	l->defs = atel__decoder_new();
	l->cctx = ZSTD_createCCtx();
	if (!l->dir || !l->pieces || !l->own || !l->supd || !l->upd_idx || !l->appended || !l->written || !l->gen || !l->seen ||
	    !l->defs || !l->cctx) {
		rc = -ENOMEM;
		atel__seterr(err, errlen, "out of memory");
		goto fail;
	}
	memset(l->upd_idx, 0xff, rc_count * sizeof(*l->upd_idx));
	ZSTD_CCtx_setParameter(l->cctx, ZSTD_c_compressionLevel, l->o.zstd_level);
	l->level = l->cctx_level = l->o.zstd_level;
	ZSTD_CCtx_setParameter(l->cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(l->cctx, ZSTD_c_contentSizeFlag, 1);
	for (int i = 0; i < NBUF; i++) {
		l->frames[i].cap = ZSTD_compressBound(atel__cols_bound(l->raw_cap / ATEL_RECORD_SIZE));
		l->frames[i].idx = i;
		/* page-aligned: registered buffers are pinned page by page */
		if (posix_memalign((void **)&l->frames[i].buf, 4096, l->frames[i].cap)) {
			rc = -ENOMEM;
			atel__seterr(err, errlen, "out of memory");
			goto fail;
		}
	}
	if ((rc = atel__mkdir_p(l->dir, atel__dir_mode()))) {
		atel__seterr(err, errlen, "cannot create %s: %s", l->dir, strerror(-rc));
		goto fail;
	}
	n = atel__seg_list(l->dir, &seqs);
	if (n < 0) {
		rc = n;
		atel__seterr(err, errlen, "cannot list %s: %s", l->dir, strerror(-rc));
		goto fail;
	}
	l->file_seq = n ? seqs[n - 1] : 0;
	free(seqs);

	/* where each ring stands, for this and later files' headers */
	if (o->resume_pos && o->resume_seen) {
		for (uint32_t r = 0; r < rc_count; r++) {
			if (o->resume_seen[r]) {
				l->seen[r] = true;
				l->appended[r] = l->written[r] = o->resume_pos[r];
			}
		}
	} else {
		(void)atel__seglog_scan(l->dir, l->o.shm_instance, rc_count, l->appended, l->seen, l->gen, NULL, false,
					NULL, 0);
		for (uint32_t r = 0; r < rc_count; r++)
			l->written[r] = l->appended[r];
	}
	if (o->defs) {
		for (uint32_t r = 0; r < rc_count; r++) {
			struct seed sd = { l->defs, r };
			(void)atel__decoder_defs(o->defs, r, seed_def, &sd);
		}
	}
	if ((rc = io_init(l, err, errlen)))
		goto fail;
	{
		char *env = getenv("ATEL_FAULT_WRITE");
		if (env && *env)
			l->fault = (unsigned)strtoul(env, NULL, 10);
	}
	if ((rc = create_file(l, l->file_seq + 1, &l->fd, l->path, sizeof(l->path)))) {
		atel__seterr(err, errlen, "cannot create segment file %s: %s", l->path, strerror(-rc));
		goto fail;
	}
	l->file_seq++;
	(void)atel__fsync_dir(l->dir);
	l->last_sync_ns = atel__now_ns();
	if (l->o.stats) {
		atomic_fetch_add_explicit(&l->o.stats->segments_created, 1, memory_order_relaxed);
		atomic_store_explicit(&l->o.stats->io_uring_active, l->aio ? 1u : 0u, memory_order_relaxed);
		atomic_store_explicit(&l->o.stats->log_end_seq, l->file_seq, memory_order_relaxed);
	}
	*out = l;
	return 0;
fail:
	atel__seglog_close(l);
	return rc;
}

int atel__seglog_close(struct atel_seglog *l)
{
	int rc = 0;

	if (!l)
		return 0;
	if (l->fd >= 0) {
		rc = atel__seglog_flush(l);
		{
			int r2 = sync_now(l, true);
			if (!rc)
				rc = r2;
		}
		close(l->fd);
	}
	if (l->aio) {
		/* frames still in flight finish before their buffers go */
		while (l->inflight || l->fsync_inflight)
			if (reap_one(l, true) < 0)
				break;
		l->aio->close(l->io);
	}
	for (int i = 0; i < NBUF; i++) {
		free(l->frames[i].buf);
		free(l->frames[i].upd);
	}
	ZSTD_freeCCtx(l->cctx);
	atel__decoder_free(l->defs);
	free(l->pieces);
	free(l->own);
	free(l->cols);
	free(l->supd);
	free(l->upd_idx);
	free(l->appended);
	free(l->written);
	free(l->gen);
	free(l->seen);
	free(l->dir);
	free(l);
	return rc;
}
