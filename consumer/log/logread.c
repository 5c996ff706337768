/* SPDX-License-Identifier: MIT */
/*
 * logread.c - reads segment files as decoded events (format:
 * docs/segment-format.md).
 *
 * Frames come from the log's one frame walk (frames.h: pread into a window,
 * never mmap, each frame located from its block headers, then decompressed
 * whole with zstd checking the content checksum). A frame that fails any
 * check is reported through on_corrupt and skipped: the reader
 * resynchronises at the next zstd magic number.
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

#include "logread.h"
#include "ring.h"
#include "frames.h"
#include "segformat.h"

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

struct atel_log_reader {
	struct atel_log_reader_opts o;
	char *dir, *single;
	struct atel_decoder *dec;
	struct atel_log_read_stats st;

	/* current file */
	int fd;
	bool single_done;            /* single_file mode: the file was opened */
	uint64_t seq;                /* file_seq of the current (or last) file; 0 before the first */
	char path[PATH_MAX];
	bool header_done;
	uint64_t instance;
	bool have_instance;
	struct atel_seg_walk w;      /* its frames; w.off: the next frame to examine */
	uint64_t torn_reported;      /* offset of an incomplete tail already reported, or UINT64_MAX */
	bool at_torn;                /* the last look ended in an incomplete frame */

	/* current frame */
	const union atel_slot *rec;  /* its records (in the walk's buffer) */
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
	r->w.fd = -1;
	if ((opts->segments_dir && !r->dir) || (opts->single_file && !r->single) || !r->dec) {
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
	atel__seg_walk_end(&r->w);
	atel__decoder_free(r->dec);
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

uint64_t atel__log_current_instance(const struct atel_log_reader *r)
{
	return r && r->have_instance ? r->instance : 0;
}

static void close_file(struct atel_log_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	atel__seg_walk_end(&r->w);
	r->header_done = false;
	r->in_frame = false;
	r->fast_end = 0;
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
	return atel__seg_walk_file(&r->w, r->fd);
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
	struct atel_seg_header_view hv;
	struct atel_seg_frame f;
	const char *why = NULL;
	int rc;

	r->w.off = 0;
	if ((rc = atel__seg_walk_next(&r->w, &f)))
		return rc;
	if ((f.kind == ATEL_SEGF_END || f.kind == ATEL_SEGF_PARTIAL) && f.need <= ATEL_SEG_HEADER_FRAME_MAX + 8ull)
		return 0; /* being written */
	if (f.kind != ATEL_SEGF_SKIPPABLE || !f.content) {
		corrupt(r, 0, f.kind == ATEL_SEGF_BAD && !f.size ? f.why : "file does not start with a segment header frame");
		r->header_done = true;
		return atel__seg_walk_resync(&r->w, 0) < 0 ? -EIO : 1;
	}
	if (atel__seg_parse_header(f.content, f.content_len, &hv, &why)) {
		corrupt(r, 0, why);
		r->header_done = true;
		atel__seg_walk_skip(&r->w, &f);
		return 1;
	}
	if (r->have_instance && hv.hdr.shm_instance != r->instance) {
		/* a new shared-memory segment: every ring starts over */
		atel__decoder_free(r->dec);
		r->dec = atel__decoder_new();
		if (!r->dec) {
			atel__seg_header_view_free(&hv);
			return -ENOMEM;
		}
	}
	r->instance = hv.hdr.shm_instance;
	r->have_instance = true;
	if (r->single)
		r->seq = hv.hdr.file_seq;
	apply_header_defs(r, hv.defs, hv.hdr.ndef_slots);
	atel__seg_header_view_free(&hv);
	r->header_done = true;
	atel__seg_walk_skip(&r->w, &f);
	return 1;
}

/* @return 1 a frame is loaded, 0 no complete frame at the walk's offset now, <0 error. */
static int load_frame(struct atel_log_reader *r)
{
	for (;;) {
		struct atel_seg_frame f;
		int rc;

		r->at_torn = false;
		if ((rc = atel__seg_walk_next(&r->w, &f)))
			return rc;
		switch (f.kind) {
		case ATEL_SEGF_END:
			return 0;
		case ATEL_SEGF_PARTIAL:
			r->at_torn = true;
			return 0; /* incomplete: still being written, or torn */
		case ATEL_SEGF_BAD:
			corrupt(r, f.off, f.why);
			if (atel__seg_walk_resync(&r->w, f.off + 1) < 0)
				return -EIO;
			continue;
		case ATEL_SEGF_SKIPPABLE:
			atel__seg_walk_skip(&r->w, &f);
			continue;
		case ATEL_SEGF_DATA:
			break;
		}
		r->rec = f.rec;
		r->st.frames++;
		r->st.bytes_compressed += f.size;
		r->st.bytes_raw += (uint64_t)f.nslots * ATEL_RECORD_SIZE;
		r->nslots = f.nslots;
		r->slot = 0;
		r->chunk_end = 0;
		r->fast_end = 0;
		r->frame_off = f.off;
		r->frame_next = f.off + f.size;
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
			r->w.off = r->frame_next;
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
		/* no complete frame at the walk's offset now */
		{
			uint64_t nx;
			if (newer_exists(r, &nx) == 1) {
				/* the writer moved on: what is here now is all there will be */
				if (load_frame(r) == 1)
					continue;
				if (r->at_torn)
					corrupt(r, r->w.off, "truncated frame at the end of the file");
				close_file(r);
				continue;
			}
			if (r->at_torn && !r->o.follow && r->torn_reported != r->w.off) {
				r->torn_reported = r->w.off;
				corrupt(r, r->w.off, "truncated frame at the end of the file");
			}
			return 0;
		}
	}
}
