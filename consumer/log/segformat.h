/* SPDX-License-Identifier: MIT */
/*
 * segformat.h - byte layout of segment files (<segments_dir>/<16 hex>.atseg).
 * docs/segment-format.md is the normative description; every size and offset
 * below is pinned with _Static_assert. Shared by the writer (seglog.c), the
 * frame walk (frames.c), the reader (logread.c), recovery (recover.c) and
 * the decoder (consumer-only record types).
 *
 * A file is: one zstd skippable frame (file header + ring table + definition
 * records), then standard zstd frames whose content is a sequence of 64-byte
 * records, each run of one ring's records preceded by a CHUNK record.
 */
#ifndef ATEL_SEGFORMAT_H
#define ATEL_SEGFORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <zstd.h>

#include "atel_abi.h"

#define ATEL_SEG_SUFFIX          ".atseg"
#define ATEL_SEG_SKIPPABLE_MAGIC 0x184D2A5Au   /* one of zstd's 0x184D2A50..5F */
#define ATEL_SEG_ZSTD_MAGIC      0xFD2FB528u   /* standard zstd frame */
#define ATEL_SEG_MAGIC           0x314745534C455441ull /* "ATELSEG1" little-endian */
/* Versions (docs/segment-format.md 1.1): every file written now is 2.0 with
 * ATEL_SEG_REQ_ABI2 (it may hold the records of shared-memory ABI 2: folded
 * samples, HISTFOLD, LOSS_TOTAL) and, with storage.encoding "columns",
 * ATEL_SEG_REQ_COLUMNS | ATEL_SEG_REQ_SPANREF; a 1.x reader refuses such a file cleanly by its
 * major. Readers accept majors 1 and 2, any minor, and refuse a 2.x file
 * requiring a feature they do not know. Files of earlier versions (1.0, 1.1,
 * COLUMNS as 1.1, 2.0 with COLUMNS only) are read too. */
#define ATEL_SEG_VERSION_MAJOR   2
#define ATEL_SEG_VERSION_MINOR   0
#define ATEL_SEG_VERSION_MAJOR_MAX 2
#define ATEL_SEG_REQ_COLUMNS     0x1u  /* data frames may be COLUMNS blocks (section 3.1) */
#define ATEL_SEG_REQ_ABI2        0x2u  /* records of shm ABI 2 (docs/abi.md 2.2-2.4, section 4.3) */
#define ATEL_SEG_REQ_SPANREF     0x4u  /* COLUMNS blocks may be version 2 (span references, section 3.1) */
#define ATEL_SEG_REQ_DEFZ        0x8u  /* the header's definitions are one zstd frame (section 2.3) */
#define ATEL_SEG_REQ_KNOWN       (ATEL_SEG_REQ_COLUMNS | ATEL_SEG_REQ_ABI2 | ATEL_SEG_REQ_SPANREF | ATEL_SEG_REQ_DEFZ)
#define ATEL_SEG_HEADER_SIZE     64u
#define ATEL_SEG_RING_ENTRY_SIZE 16u
/* Largest decompressed data frame a reader accepts (the writer makes <= frame_bytes, default 256 KiB). */
#define ATEL_SEG_FRAME_MAX       (64u << 20)
/* Largest header frame content a reader accepts. */
#define ATEL_SEG_HEADER_FRAME_MAX (256u << 20)

/* consumer-only record types (docs/abi.md reserves 0x40..0x7f) */
enum atel_log_rec_type {
	ATEL_LOGREC_CHUNK = 0x40,
	ATEL_LOGREC_DEATH = 0x41,
	ATEL_LOGREC_COLUMNS = 0x42, /* first byte of a COLUMNS data frame's content (never a record) */
	ATEL_LOGREC_LOSS_TOTAL = 0x43, /* a loss counter's cumulative value (docs/segment-format.md 4.3) */
};

/* LOSS_TOTAL.ring for the segment header's counters (NO_RING, NO_SIDECAR) */
#define ATEL_LOSS_RING_SEGMENT 0xffffffffu

/* CHUNK flags */
#define ATEL_CHUNKF_DEFS   0x01u /* header frame: re-emitted definitions, positions not consumed */
#define ATEL_CHUNKF_MARKER 0x02u /* consumer markers (DEATH, LOSS): positions not consumed */

/* File header: the first 64 bytes of the skippable frame's content. */
struct atel_seg_header {
	uint64_t magic;          /* ATEL_SEG_MAGIC */
	uint16_t version_major;  /* 1 or 2; readers refuse a major they do not know */
	uint16_t version_minor;  /* readers accept any minor */
	uint32_t header_size;    /* 64 */
	uint64_t file_seq;       /* equals the number in the file name */
	uint64_t created_ns;     /* CLOCK_REALTIME when the file was started */
	uint64_t shm_instance;   /* instance_id of the shm segment being drained */
	uint32_t ring_count;     /* rings in that segment */
	uint32_t nentries;       /* ring table entries that follow the header */
	uint32_t ndef_slots;     /* 64-byte definition slots after the ring table (CHUNKs included) */
	uint32_t zstd_level;     /* informational: level of the data frames */
	uint32_t crc32;          /* zlib crc32 of the whole skippable content with this field 0 */
	uint32_t required;       /* 2.x: ATEL_SEG_REQ_* a reader must know (else it refuses the file); 1.x: 0 */
};

/*
 * COLUMNS block: the content of a data frame written with
 * storage.encoding = "columns" (docs/segment-format.md section 3.1). It
 * decodes, losslessly, into exactly the records content of a plain data
 * frame. Slots are split into two classes: "compact" samples (type SAMPLE,
 * cont 0, reserved byte 0, bytes 24..63 zero) and everything else ("raw"
 * slots, kept whole). The columns follow the 64-byte header in this order:
 *   kind    ceil(nslots / 8) bytes, bit i (LSB first) set = slot i is compact
 *   flags   ncompact bytes: byte 1 of each compact slot
 *   id      ncompact x u32: bytes 4..7
 *   value   ncompact x 8 bytes: bytes 16..23, verbatim
 *   raw     (nslots - ncompact) x 64 bytes, in slot order
 *   ts      ts_bytes: ncompact zigzag LEB128 varints, the delta of delta of
 *           ts_ns against the previous compact slot of the block (both
 *           start at 0; u64 arithmetic modulo 2^64)
 * then zero padding to a multiple of 64 bytes (so the frame's content size
 * obeys the same rule as a plain frame's).
 */
struct atel_seg_columns {
	uint8_t type;            /* ATEL_LOGREC_COLUMNS */
	uint8_t version;         /* 2 (1: without span references; still read) */
	uint16_t reserved0;      /* 0 */
	uint32_t nslots;         /* slots of decoded content (nslots x 64 <= ATEL_SEG_FRAME_MAX) */
	uint32_t ncompact;       /* compact sample slots among them */
	uint32_t ts_bytes;       /* bytes of the ts column */
	uint32_t reserved[12];   /* 0 (the zstd frame's XXH64 checksum covers the block) */
};

/* Ring table entry: where a ring stood when the file was started. */
struct atel_seg_ring_entry {
	uint32_t ring;
	uint32_t generation;     /* generation of the last record logged (0 if unknown) */
	uint64_t next_pos;       /* next position of the ring not yet in the log */
};

/* CHUNK: precedes `count` slots of ring `h.id` starting at position first_pos. */
struct atel_rec_chunk {
	struct atel_rec_hdr h;   /* type 0x40, flags ATEL_CHUNKF_*, cont 0, id = ring, ts = append time */
	uint32_t generation;
	uint32_t count;          /* slots that follow and belong to this chunk */
	uint64_t first_pos;      /* ring position of the first slot (markers: the ring's position then) */
	uint64_t shm_instance;
	uint64_t reserved[3];
};

/* DEATH: the owner of a ring died (docs/abi.md section 5); always inside a MARKER chunk. */
struct atel_rec_death {
	struct atel_rec_hdr h;   /* type 0x41, id = generation of the dead owner, ts = detection time */
	int32_t pid;
	int32_t tid;
	uint64_t start;          /* owner's process start time */
	uint32_t ring;
	uint32_t reserved0;
	uint64_t reserved[3];
};

struct atel_rec_loss_total {
	struct atel_rec_hdr h;   /* type 0x43, id = cause (enum atel_loss_cause or ATEL_LOSS_SPANS), ts = reading */
	uint64_t total;          /* cumulative count for (shm instance, ring, cause): readers keep the largest */
	uint64_t delta;          /* increase since the previous reading of this consumer (informational) */
	uint32_t ring;           /* ring index, or ATEL_LOSS_RING_SEGMENT */
	uint32_t reserved0;
	uint64_t since_ns;       /* time of the previous reading (0: first of this consumer) */
	uint64_t reserved[2];
};

#define ATEL__SEGOFF(t, f, o) _Static_assert(offsetof(t, f) == (o), #t "." #f " must be at offset " #o)
_Static_assert(sizeof(struct atel_seg_header) == ATEL_SEG_HEADER_SIZE, "file header is 64 bytes");
ATEL__SEGOFF(struct atel_seg_header, version_major, 8);
ATEL__SEGOFF(struct atel_seg_header, header_size, 12);
ATEL__SEGOFF(struct atel_seg_header, file_seq, 16);
ATEL__SEGOFF(struct atel_seg_header, created_ns, 24);
ATEL__SEGOFF(struct atel_seg_header, shm_instance, 32);
ATEL__SEGOFF(struct atel_seg_header, ring_count, 40);
ATEL__SEGOFF(struct atel_seg_header, nentries, 44);
ATEL__SEGOFF(struct atel_seg_header, ndef_slots, 48);
ATEL__SEGOFF(struct atel_seg_header, zstd_level, 52);
ATEL__SEGOFF(struct atel_seg_header, crc32, 56);
_Static_assert(sizeof(struct atel_seg_ring_entry) == ATEL_SEG_RING_ENTRY_SIZE, "ring entry is 16 bytes");
ATEL__SEGOFF(struct atel_seg_ring_entry, next_pos, 8);
_Static_assert(sizeof(struct atel_rec_chunk) == ATEL_RECORD_SIZE, "chunk is one slot");
ATEL__SEGOFF(struct atel_rec_chunk, generation, 16);
ATEL__SEGOFF(struct atel_rec_chunk, count, 20);
ATEL__SEGOFF(struct atel_rec_chunk, first_pos, 24);
ATEL__SEGOFF(struct atel_rec_chunk, shm_instance, 32);
_Static_assert(sizeof(struct atel_rec_death) == ATEL_RECORD_SIZE, "death is one slot");
_Static_assert(sizeof(struct atel_seg_columns) == ATEL_RECORD_SIZE, "columns header is one slot");
ATEL__SEGOFF(struct atel_seg_columns, nslots, 4);
ATEL__SEGOFF(struct atel_seg_columns, ncompact, 8);
ATEL__SEGOFF(struct atel_seg_columns, ts_bytes, 12);
ATEL__SEGOFF(struct atel_rec_death, pid, 16);
ATEL__SEGOFF(struct atel_rec_death, tid, 20);
ATEL__SEGOFF(struct atel_rec_death, start, 24);
ATEL__SEGOFF(struct atel_rec_death, ring, 32);
_Static_assert(sizeof(struct atel_rec_loss_total) == ATEL_RECORD_SIZE, "loss total is one slot");
ATEL__SEGOFF(struct atel_rec_loss_total, total, 16);
ATEL__SEGOFF(struct atel_rec_loss_total, delta, 24);
ATEL__SEGOFF(struct atel_rec_loss_total, ring, 32);
ATEL__SEGOFF(struct atel_rec_loss_total, since_ns, 40);

/* Largest encoded COLUMNS block for nslots slots of content. */
static inline size_t atel__cols_bound(size_t nslots)
{
	return 64 + 2 * ((nslots + 7) / 8) + nslots * 64 + 64;
}

/*
 * Encodes the records content (nslots x 64 bytes, a plain data frame's
 * content) as a COLUMNS block into out (room for atel__cols_bound(nslots)).
 * @return the block's length (a multiple of 64).
 */
size_t atel__cols_encode(const void *content, size_t nslots, void *out);
/* The same with the content given as pieces (each a whole number of slots, nslots in all). */
size_t atel__cols_encode_iov(const struct iovec *v, size_t nv, size_t nslots, void *out);

/*
 * Decodes a COLUMNS block (len bytes, untrusted) into out (cap bytes).
 * @return decoded bytes (a multiple of 64), or -EBADMSG with *why set (what
 * is wrong, precisely), or -ENOSPC if the decoded content exceeds cap.
 */
int64_t atel__cols_decode(const void *block, size_t len, void *out, size_t cap, const char **why);

/*
 * The records content of a decompressed data frame (content, len bytes, len
 * a multiple of 64): the content itself, or for a COLUMNS block its decoding
 * into *dec (grown with realloc as needed; the caller frees it).
 * @return slots, -EBADMSG (*why set) or -ENOMEM; *records points at them.
 */
int64_t atel__seg_records(const uint8_t *content, size_t len, uint8_t **dec, size_t *dec_cap,
			  const uint8_t **records, const char **why);

/* What a reader keeps from one data frame to the next (zero it first). */
struct atel_seg_frame_buf {
	uint8_t *content;        /* the decompressed frame */
	size_t content_cap;
	uint8_t *decoded;        /* its COLUMNS block decoded */
	size_t decoded_cap;
};

/*
 * The one way readers get a data frame's records: decompresses the zstd
 * frame src (fs bytes, content size csize from its header; zstd checks the
 * content checksum) into b, and decodes a COLUMNS block.
 * @return slots (*records points into b, valid until the next call), or
 * -EBADMSG (*why says why), or -ENOMEM.
 */
int64_t atel__seg_frame_records(ZSTD_DCtx *dctx, const uint8_t *src, size_t fs, uint64_t csize,
				struct atel_seg_frame_buf *b, const uint8_t **records, const char **why);
/* Frees b's buffers and zeroes it. */
void atel__seg_frame_buf_free(struct atel_seg_frame_buf *b);

/*
 * Structural check of a record read from a segment file: producer types as
 * atel__rec_check (shm/ring.h), plus DEATH. CHUNK is framing and is refused here.
 * @return slots the record occupies, -EINVAL (*why set) or -EAGAIN (runs past avail).
 */
int atel__log_rec_check(const union atel_slot *h, uint64_t avail, const char **why);

/*
 * Size of the frame starting at p (avail bytes readable there), found by
 * walking the zstd frame header and block headers without decompressing.
 * For a zstd frame, *content gets its content size and *skippable is false.
 * @return the frame's total size (> 0); 0 if it runs past avail (incomplete,
 * *need gets a lower bound of the bytes required); -EBADMSG if the bytes are
 * not a frame this format accepts (*why says why).
 */
int64_t atel__seg_frame_size(const uint8_t *p, size_t avail, uint64_t *content, bool *skippable,
			     uint64_t *need, const char **why);

/* A parsed header frame (pointers into the caller's buffer). */
struct atel_seg_header_view {
	struct atel_seg_header hdr;
	const uint8_t *entries;  /* hdr.nentries x struct atel_seg_ring_entry (may be unaligned: memcpy) */
	const uint8_t *defs;     /* hdr.ndef_slots x 64-byte slots, CHUNK + definitions (may be unaligned) */
	void *defs_owned;        /* DEFZ: the decompressed definitions defs points to (free with
				  * atel__seg_header_view_free) */
};

/*
 * Validates the content of a header skippable frame (content, len bytes: the
 * frame minus its 8-byte skippable header): magic, major version, sizes,
 * counts against len, crc32. @return 0 or -EBADMSG (*why set).
 */
int atel__seg_parse_header(const uint8_t *content, size_t len, struct atel_seg_header_view *out, const char **why);
/* Frees what atel__seg_parse_header allocated (DEFZ). Safe after a failed parse. */
void atel__seg_header_view_free(struct atel_seg_header_view *v);

/* Parses "<16 hex>.atseg". @return true with *seq set. */
bool atel__seg_name_seq(const char *name, uint64_t *seq);

/*
 * Lists the segment files of dir in ascending file_seq order (*seqs malloc'd,
 * caller frees). @return the count (>= 0) or -errno.
 */
int atel__seg_list(const char *dir, uint64_t **seqs);

#endif /* ATEL_SEGFORMAT_H */
