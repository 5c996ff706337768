/* SPDX-License-Identifier: MIT */
/*
 * logvtab.c - `atel_log`: telemetry_metrics as a SQLite virtual table over
 * the segment log (logvtab.h, docs/schema.md "The log as telemetry_metrics").
 *
 * Rows come from the log reader (logread.h, the one decoder) and follow the
 * index writer's rules for a SAMPLE event (writer.c apply_sample) so that
 * they equal the rows of a full index built from the same files: the series'
 * type is the one of its first sample in log order (a sample of another type
 * is no row); a gauge `add` stores the running value (previous row's value
 * plus the delta, 0 before the first row); a NaN value or a timestamp past
 * INT64_MAX is no row; id numbers the rows 1, 2, ... in log order. One rule
 * is not followed: the writer also drops a sample that makes its series'
 * rollup bucket sum NaN (+Inf and -Inf in one bucket); here that sample is a
 * row.
 *
 * What constraints skip. The log has no time range or series list per file
 * or frame (a frame index is future work, issue 13), and rows depend on
 * everything before them in the log (gauge running values, the first type
 * of a series, id), so a file can only be skipped when what it holds and what
 * it changes are known. A scan that reads a whole file (every file but the
 * newest of the listing, which may still grow) therefore leaves a summary of
 * it on the table: size/mtime/inode, rows, first id, min/max ts_ns, the names
 * it has rows of, and the state of every series it changed, as of its end.
 * Summaries form a prefix of the files (file i is summarised only after file
 * i-1) and are dropped when that prefix changes on disk (retention). Later
 * scans (the next statement, the next subquery of a view, a correlated
 * subquery run again) skip, without opening them, the summarised files
 * whose ts_ns range, names or id range cannot match the constraints on
 * ts_ns (=, <, <=, >, >=), name (=, IN) and id/rowid, taking the state
 * from the summaries; a scan also stops once id passes its upper bound.
 * A file that is read is read whole (every frame decompressed: its
 * definitions are needed), but a sample of a series whose name does not
 * match, or outside the ts_ns/id range, costs a hash lookup and no row text.
 * Constraints are never "omitted": SQLite checks every row again, so a
 * constraint value of another type (ts_ns > 1.5e18, name = 5) only prunes
 * less. After a skip, the next file read is decoded from its own header:
 * that equals the sequential read because every file decodes alone
 * (docs/segment-format.md 2.3, what the indexer's resume relies on too);
 * on hand-made or damaged files that break it, a skipping scan may show
 * other rows of such a file than a scan from the start. The first scan of a session reads every file. A scan that read
 * the whole log also leaves its rows in memory (the rows cache, below),
 * which answers later scans without reading or skipping anything.
 *
 * Thread-safety: as SQLite's (one connection per thread).
 */
#ifdef ATEL_SQLITE_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#else
#include <sqlite3.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "logread.h"
#include "logvtab.h"
#include "metricrow.h"
#include "ring.h"
#include "segformat.h"

enum { COL_ID, COL_TS, COL_NAME, COL_LABELS, COL_HASH, COL_TYPE, COL_VALUE, COL_OP, COL_PID, COL_RING, COL_SEQ };

static const char lv_schema[] = "CREATE TABLE x(id INTEGER PRIMARY KEY, ts_ns INTEGER NOT NULL, name TEXT NOT NULL, "
				"labels TEXT NOT NULL, series_hash INTEGER NOT NULL, metric_type TEXT NOT NULL, "
				"value REAL NOT NULL, op TEXT NOT NULL, pid INTEGER, ring INTEGER, seq INTEGER)";

/* ---- what a scan saw, for atel_log_stats() ------------------------------- */

struct lv_stats {
	uint64_t files, files_read, files_skipped, samples, rows, cached;
};

struct lv_module {
	struct lv_stats last;        /* of the last cursor closed on this connection */
};

/* ---- summaries (per table) ------------------------------------------------ */

/* A series' state at the end of a file that changed it. */
struct lv_hist {
	uint32_t file;
	uint8_t mtype;
	bool indexed;
	double last_value;
};

struct lv_hser {
	uint64_t hash;
	struct lv_hist *h;
	uint32_t n, cap;
};

struct lv_file {
	uint64_t seq, size, ino, dev;
	int64_t mtime_ns;
	uint64_t id_base, nrows, min_ts, max_ts;
	uint64_t *names;             /* FNV-1a 64 of the names it has rows of, sorted, distinct */
	uint32_t nnames;
};

/* ---- the rows cache (per table) ---------------------------------------------
 * A scan that read the whole log (from the first file, nothing skipped, to
 * the end) keeps every row it produced, up to LV_CACHE_ROWS rows; later scans
 * answer from it while the listing and every file's size, mtime and inode
 * are unchanged (a name constraint then walks that name's rows only). What
 * it saves: a view's correlated subqueries (v_context_utilization runs two
 * per session) each scanning the log. */
#define LV_CACHE_ROWS (1u << 20) /* 40 bytes a row; USING atel_log(DIR, 'cache_rows=N') changes it, 0: no cache */

struct lv_fsnap {
	uint64_t seq, size, ino, dev;
	int64_t mtime_ns;
};

struct lv_cser {
	uint64_t hash;
	uint8_t mtype;
	char *name, *labels;
};

struct lv_crow {
	uint64_t ts, seq;
	double value;
	uint32_t ser, ring;
	int32_t pid;
	uint8_t op;                  /* 0 add, 1 set, 2 observe */
};

struct lv_cname {
	uint64_t h;
	const char *name;            /* a series' */
	uint32_t *idx;               /* its rows, ascending */
	uint32_t n, cap;
};

struct lv_cache {
	int refs;
	uint32_t limit;              /* rows at most */
	struct lv_fsnap *files;      /* what the files were when the scan began */
	int nfiles;
	struct lv_crow *rows;        /* row i has id i + 1 */
	uint32_t n, cap;
	struct lv_cser *ser;
	uint32_t nser, scap;
	struct lv_cname *names;
	uint32_t nnames, ncap;
};

static const char *const lv_ops[] = { "add", "set", "observe" };

struct lv_vtab {
	sqlite3_vtab base;
	struct lv_module *mod;
	struct lv_cache *cache;      /* valid for its files' snapshot; NULL: none */
	bool building;               /* a scan is building one */
	uint32_t cache_rows;         /* the cap; 0: no cache */
	char *dir;                   /* the segments directory */
	struct lv_file *files;       /* summaries of files [0, nsum) of the listing */
	uint32_t nsum, fcap;
	struct lv_hser **hmap;       /* series hash -> history, open addressing */
	uint32_t hcap, hn;
	int ncursors;
};

/* ---- a scan ----------------------------------------------------------------- */

/* A series as the scan knows it at its position in the log. */
struct lv_ser {
	uint64_t hash;
	uint8_t mtype;               /* first type (0: no sample yet) */
	bool indexed;                /* has a row: a gauge add starts from last_value */
	bool name_ok;                /* matches the name constraint */
	uint32_t touched;            /* file index + 1 of the last change */
	uint32_t cser;               /* index + 1 of its entry in the cache being built */
	double last_value;
	char *name, *labels;         /* texts, made for the first row asked for */
};

struct lv_cursor {
	sqlite3_vtab_cursor base;
	struct lv_vtab *t;
	struct atel_log_reader *r;
	struct lv_stats st;
	/* constraints, inclusive */
	uint64_t ts_lo, ts_hi;
	int64_t id_lo, id_hi;
	bool have_names;
	char **names;
	uint64_t *name_h;            /* sorted */
	uint32_t nnames;
	/* files */
	uint64_t *seqs;
	int nseqs, fi;               /* fi: index of the file being read (nseqs: past the listing) */
	bool use_sum;
	bool skipped;                /* some file was skipped: new series start from the summaries */
	int hist_at;                 /* ... as of the start of this file */
	/* series state */
	struct lv_ser **map;
	uint32_t cap, n;
	/* the summary of file fi being built */
	struct lv_ser **touched;
	uint32_t ntouched, tcap;
	uint64_t f_idbase, f_rows, f_min, f_max;
	uint64_t *f_names;
	uint32_t f_nnames, f_ncap;
	uint64_t id;                 /* last id given */
	/* the rows cache */
	struct lv_fsnap *snap;       /* the listing's files as xFilter saw them */
	int nsnap;
	struct lv_cache *build;      /* being built by this scan (NULL: not) */
	struct lv_cache *cache;      /* answering from it (a reference) */
	const uint32_t *cidx;        /* the rows walked: a name's, or all (NULL) */
	uint64_t cpos, cend;
	uint8_t *cwant;              /* per cache series: its name is wanted (NULL: all are) */
	const struct lv_crow *crow;
	const struct lv_cser *cser;
	/* the current row */
	bool eof;
	struct lv_ser *s;
	const struct atel_dec_series *ds; /* valid until the next atel__log_next */
	uint64_t ts, seq;
	double value;
	const char *op;
	int32_t pid;
	uint32_t ring;
	struct atel_buf jb;
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint32_t slot_of(uint64_t hash, uint32_t cap)
{
	return (uint32_t)((hash * 0x9e3779b97f4a7c15ull) >> 32) & (cap - 1);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool u64_in(const uint64_t *v, uint32_t n, uint64_t x)
{
	return n && bsearch(&x, v, n, sizeof(*v), u64_cmp) != NULL;
}

/* ---- table-level summaries ------------------------------------------------ */

static void sum_clear(struct lv_vtab *t)
{
	for (uint32_t i = 0; i < t->nsum; i++)
		free(t->files[i].names);
	t->nsum = 0;
	for (uint32_t i = 0; i < t->hcap; i++) {
		if (t->hmap[i]) {
			free(t->hmap[i]->h);
			free(t->hmap[i]);
			t->hmap[i] = NULL;
		}
	}
	t->hn = 0;
}

static struct lv_hser *hist_find(const struct lv_vtab *t, uint64_t hash)
{
	if (!t->hcap)
		return NULL;
	for (uint32_t i = slot_of(hash, t->hcap);; i = (i + 1) & (t->hcap - 1)) {
		if (!t->hmap[i])
			return NULL;
		if (t->hmap[i]->hash == hash)
			return t->hmap[i];
	}
}

static int hist_put(struct lv_vtab *t, uint64_t hash, const struct lv_hist *e)
{
	struct lv_hser *h = hist_find(t, hash);

	if (!h) {
		if ((t->hn + 1) * 2 > t->hcap) {
			uint32_t ncap = t->hcap ? t->hcap * 2 : 1024;
			struct lv_hser **nm = calloc(ncap, sizeof(*nm));

			if (!nm)
				return -ENOMEM;
			for (uint32_t i = 0; i < t->hcap; i++) {
				if (!t->hmap[i])
					continue;
				uint32_t j = slot_of(t->hmap[i]->hash, ncap);
				while (nm[j])
					j = (j + 1) & (ncap - 1);
				nm[j] = t->hmap[i];
			}
			free(t->hmap);
			t->hmap = nm;
			t->hcap = ncap;
		}
		h = calloc(1, sizeof(*h));
		if (!h)
			return -ENOMEM;
		h->hash = hash;
		uint32_t j = slot_of(hash, t->hcap);
		while (t->hmap[j])
			j = (j + 1) & (t->hcap - 1);
		t->hmap[j] = h;
		t->hn++;
	}
	if (h->n == h->cap) {
		uint32_t ncap = h->cap ? h->cap * 2 : 4;
		struct lv_hist *nh = realloc(h->h, ncap * sizeof(*nh));

		if (!nh)
			return -ENOMEM;
		h->h = nh;
		h->cap = ncap;
	}
	h->h[h->n++] = *e;
	return 0;
}

/* A series' state at the start of file `file` from the summaries (all files
 * before it are summarised): its last change before, or none. */
static void hist_state(const struct lv_vtab *t, struct lv_ser *s, int file)
{
	const struct lv_hser *h = hist_find(t, s->hash);
	const struct lv_hist *best = NULL;

	if (h) {
		uint32_t lo = 0, hi = h->n; /* first entry with .file >= file */
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if ((int)h->h[mid].file < file)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo)
			best = &h->h[lo - 1];
	}
	s->mtype = best ? best->mtype : 0;
	s->indexed = best ? best->indexed : false;
	s->last_value = best ? best->last_value : 0;
}

static bool file_stat(const char *dir, uint64_t seq, struct stat *st)
{
	char p[4200];

	snprintf(p, sizeof(p), "%s/%016" PRIx64 ATEL_SEG_SUFFIX, dir, seq);
	return stat(p, st) == 0;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static void cache_unref(struct lv_cache *k)
{
	if (!k || --k->refs > 0)
		return;
	for (uint32_t i = 0; i < k->nser; i++) {
		free(k->ser[i].name);
		free(k->ser[i].labels);
	}
	for (uint32_t i = 0; i < k->nnames; i++)
		free(k->names[i].idx);
	free(k->ser);
	free(k->names);
	free(k->rows);
	free(k->files);
	free(k);
}

static bool snap_equal(const struct lv_fsnap *a, int na, const struct lv_fsnap *b, int nb)
{
	return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof(*a)) == 0);
}

/* Has the log only grown since the snapshot a (new files, the newest of a
 * longer), b being the files now? */
static bool snap_grown(const struct lv_fsnap *a, int na, const struct lv_fsnap *b, int nb)
{
	if (!na || nb < na || (na > 1 && memcmp(a, b, (size_t)(na - 1) * sizeof(*a)) != 0))
		return false;
	const struct lv_fsnap *x = &a[na - 1], *y = &b[na - 1];
	return x->seq == y->seq && x->ino == y->ino && x->dev == y->dev && y->size >= x->size;
}

/* Adds row (id k->n + 1) to the cache being built. @return 0, or -E2BIG past the cap, -ENOMEM. */
static int cache_add(struct lv_cache *k, struct lv_ser *s, const struct atel_dec_series *ds, const struct lv_crow *r,
		     struct atel_buf *jb)
{
	struct lv_crow row = *r;

	if (k->n >= k->limit)
		return -E2BIG;
	if (!s->cser) {
		if (k->nser == k->scap) {
			uint32_t ncap = k->scap ? k->scap * 2 : 256;
			struct lv_cser *ns = realloc(k->ser, ncap * sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			k->ser = ns;
			k->scap = ncap;
		}
		struct lv_cser *e = &k->ser[k->nser];
		e->hash = s->hash;
		e->mtype = s->mtype;
		e->name = strdup(ds->name);
		e->labels = atel__mrow_labels_json(jb, ds) ? NULL : strdup(jb->data);
		if (!e->name || !e->labels) {
			free(e->name);
			free(e->labels);
			return -ENOMEM;
		}
		s->cser = ++k->nser;
	}
	row.ser = s->cser - 1;
	if (k->n == k->cap) {
		uint32_t ncap = k->cap ? k->cap * 2 : 4096;
		struct lv_crow *nr = realloc(k->rows, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		k->rows = nr;
		k->cap = ncap;
	}
	k->rows[k->n++] = row;
	return 0;
}

/* The rows of each name, for scans with name = ?. @return 0 or -ENOMEM. */
static int cache_index_names(struct lv_cache *k)
{
	for (uint32_t i = 0; i < k->n; i++) {
		const char *name = k->ser[k->rows[i].ser].name;
		uint64_t h = fnv1a(name);
		struct lv_cname *e = NULL;

		for (uint32_t j = 0; j < k->nnames && !e; j++) /* a few dozen names */
			if (k->names[j].h == h && strcmp(k->names[j].name, name) == 0)
				e = &k->names[j];
		if (!e) {
			if (k->nnames == k->ncap) {
				uint32_t ncap = k->ncap ? k->ncap * 2 : 32;
				struct lv_cname *nn = realloc(k->names, ncap * sizeof(*nn));
				if (!nn)
					return -ENOMEM;
				k->names = nn;
				k->ncap = ncap;
			}
			e = &k->names[k->nnames++];
			memset(e, 0, sizeof(*e));
			e->h = h;
			e->name = name;
		}
		if (e->n == e->cap) {
			uint32_t ncap = e->cap ? e->cap * 2 : 64;
			uint32_t *ni = realloc(e->idx, ncap * sizeof(*ni));
			if (!ni)
				return -ENOMEM;
			e->idx = ni;
			e->cap = ncap;
		}
		e->idx[e->n++] = i;
	}
	return 0;
}

/* Are the summaries still those of the files listed? */
static bool sum_valid(const struct lv_vtab *t, const uint64_t *seqs, int n)
{
	if ((int)t->nsum >= n && t->nsum)
		return false;
	for (uint32_t i = 0; i < t->nsum; i++) {
		const struct lv_file *f = &t->files[i];
		struct stat st;

		if (seqs[i] != f->seq || !file_stat(t->dir, f->seq, &st) || (uint64_t)st.st_size != f->size ||
		    (uint64_t)st.st_ino != f->ino || (uint64_t)st.st_dev != f->dev || mtime_ns(&st) != f->mtime_ns)
			return false;
	}
	return true;
}

/* ---- the scan's series map ------------------------------------------------ */

static void ser_free(struct lv_ser *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->labels);
	free(s);
}

static void map_clear(struct lv_cursor *c)
{
	for (uint32_t i = 0; i < c->cap; i++) {
		ser_free(c->map[i]);
		c->map[i] = NULL;
	}
	c->n = 0;
	c->ntouched = 0;
}

static bool name_wanted(const struct lv_cursor *c, const char *name)
{
	if (!c->have_names)
		return true;
	for (uint32_t i = 0; i < c->nnames; i++)
		if (strcmp(c->names[i], name) == 0)
			return true;
	return false;
}

static struct lv_ser *map_get(struct lv_cursor *c, const struct atel_dec_series *ds)
{
	uint64_t hash = ds->key_hash;
	uint32_t j;

	if (c->cap) {
		for (j = slot_of(hash, c->cap); c->map[j]; j = (j + 1) & (c->cap - 1))
			if (c->map[j]->hash == hash)
				return c->map[j];
	}
	if ((c->n + 1) * 2 > c->cap) {
		uint32_t ncap = c->cap ? c->cap * 2 : 1024;
		struct lv_ser **nm = calloc(ncap, sizeof(*nm));

		if (!nm)
			return NULL;
		for (uint32_t i = 0; i < c->cap; i++) {
			if (!c->map[i])
				continue;
			uint32_t k = slot_of(c->map[i]->hash, ncap);
			while (nm[k])
				k = (k + 1) & (ncap - 1);
			nm[k] = c->map[i];
		}
		free(c->map);
		c->map = nm;
		c->cap = ncap;
	}
	struct lv_ser *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->hash = hash;
	s->name_ok = name_wanted(c, ds->name);
	if (c->skipped)
		hist_state(c->t, s, c->hist_at);
	for (j = slot_of(hash, c->cap); c->map[j]; j = (j + 1) & (c->cap - 1))
		;
	c->map[j] = s;
	c->n++;
	return s;
}

static int touch(struct lv_cursor *c, struct lv_ser *s)
{
	if (s->touched == (uint32_t)c->fi + 1)
		return 0;
	if (c->ntouched == c->tcap) {
		uint32_t ncap = c->tcap ? c->tcap * 2 : 256;
		struct lv_ser **nt = realloc(c->touched, ncap * sizeof(*nt));

		if (!nt)
			return -ENOMEM;
		c->touched = nt;
		c->tcap = ncap;
	}
	c->touched[c->ntouched++] = s;
	s->touched = (uint32_t)c->fi + 1;
	return 0;
}

static int name_add(struct lv_cursor *c, uint64_t h)
{
	for (uint32_t i = 0; i < c->f_nnames; i++) /* few names per file: a line */
		if (c->f_names[i] == h)
			return 0;
	if (c->f_nnames == c->f_ncap) {
		uint32_t ncap = c->f_ncap ? c->f_ncap * 2 : 32;
		uint64_t *nn = realloc(c->f_names, ncap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		c->f_names = nn;
		c->f_ncap = ncap;
	}
	c->f_names[c->f_nnames++] = h;
	return 0;
}

/* Starts the summary of file fi (the reader is at its start). */
static void file_begin(struct lv_cursor *c)
{
	c->ntouched = 0;
	c->f_idbase = c->id;
	c->f_rows = 0;
	c->f_min = UINT64_MAX;
	c->f_max = 0;
	c->f_nnames = 0;
}

/* The reader went past file fi, read whole from its start: keep its summary
 * if it extends the prefix and is not the newest file of the listing. */
static int file_end(struct lv_cursor *c)
{
	struct lv_vtab *t = c->t;
	struct lv_file *f;
	struct stat st;

	c->st.files_read++;
	if (!c->use_sum || c->fi != (int)t->nsum || c->fi >= c->nseqs - 1)
		return 0;
	if (!file_stat(t->dir, c->seqs[c->fi], &st))
		return 0;
	if (t->nsum == t->fcap) {
		uint32_t ncap = t->fcap ? t->fcap * 2 : 64;
		struct lv_file *nf = realloc(t->files, ncap * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		t->files = nf;
		t->fcap = ncap;
	}
	f = &t->files[t->nsum];
	memset(f, 0, sizeof(*f));
	f->seq = c->seqs[c->fi];
	f->size = (uint64_t)st.st_size;
	f->ino = (uint64_t)st.st_ino;
	f->dev = (uint64_t)st.st_dev;
	f->mtime_ns = mtime_ns(&st);
	f->id_base = c->f_idbase;
	f->nrows = c->f_rows;
	f->min_ts = c->f_min;
	f->max_ts = c->f_max;
	if (c->f_nnames) {
		f->names = malloc(c->f_nnames * sizeof(uint64_t));
		if (!f->names)
			return -ENOMEM;
		memcpy(f->names, c->f_names, c->f_nnames * sizeof(uint64_t));
		qsort(f->names, c->f_nnames, sizeof(uint64_t), u64_cmp);
		f->nnames = c->f_nnames;
	}
	for (uint32_t i = 0; i < c->ntouched; i++) {
		const struct lv_ser *s = c->touched[i];
		struct lv_hist e = { .file = (uint32_t)c->fi, .mtype = s->mtype, .indexed = s->indexed,
				     .last_value = s->last_value };
		if (hist_put(t, s->hash, &e) < 0) {
			free(f->names);
			return -ENOMEM;
		}
	}
	t->nsum++;
	return 0;
}

/* Can summarised file i hold no row the constraints accept? */
static bool file_skippable(const struct lv_cursor *c, int i)
{
	const struct lv_file *f = &c->t->files[i];

	if (!f->nrows)
		return true;
	if (f->max_ts < c->ts_lo || f->min_ts > c->ts_hi)
		return true;
	if ((int64_t)(f->id_base + f->nrows) < c->id_lo || (int64_t)(f->id_base + 1) > c->id_hi)
		return true;
	if (c->have_names) {
		for (uint32_t k = 0; k < c->nnames; k++)
			if (u64_in(f->names, f->nnames, c->name_h[k]))
				return false;
		return true;
	}
	return false;
}

/* From file index i on: skips what the summaries rule out, opens the reader
 * at the first file to read. *eof when nothing is left. @return 0 or -errno. */
static int seek_from(struct lv_cursor *c, int i, bool *eof)
{
	struct atel_log_reader_opts o = { .segments_dir = c->t->dir };
	bool skipped = false;
	int rc;

	atel__log_close(c->r);
	c->r = NULL;
	while (c->use_sum && i < (int)c->t->nsum && file_skippable(c, i)) {
		c->id = c->t->files[i].id_base + c->t->files[i].nrows;
		c->st.files_skipped++;
		skipped = true;
		i++;
	}
	if (skipped && c->build) {
		/* a cache holds every row: this scan will not have them */
		cache_unref(c->build);
		c->build = NULL;
		c->t->building = false;
	}
	if (skipped) {
		/* every series known so far takes its state from the summaries */
		c->skipped = true;
		c->hist_at = i;
		for (uint32_t k = 0; k < c->cap; k++)
			if (c->map[k])
				hist_state(c->t, c->map[k], i);
	}
	*eof = i >= c->nseqs || (int64_t)c->id >= c->id_hi;
	if (*eof)
		return 0;
	c->fi = i;
	o.start.file_seq = c->seqs[i];
	if ((rc = atel__log_open(&c->r, &o)) < 0)
		return rc;
	file_begin(c);
	return 0;
}

/* The listing index of seq (nseqs when it is past the listing). */
static int seq_index(const struct lv_cursor *c, uint64_t seq, int from)
{
	for (int i = from; i < c->nseqs; i++)
		if (c->seqs[i] == seq)
			return i;
	return c->nseqs;
}

/* Moves to the next row. @return 0 (row or eof set) or -errno. */
static int next_row(struct lv_cursor *c)
{
	struct atel_event ev;
	struct atel_log_pos pos;
	int rc;

	for (;;) {
		if (!c->r) {
			c->eof = true;
			return 0;
		}
		rc = atel__log_next(c->r, &ev, &pos);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			/* the end of the log: the reader went through every file of
			 * the listing, so those before the newest are complete (the
			 * newest may be empty: rotation after the last flush) */
			while (c->fi < c->nseqs - 1) {
				if ((rc = file_end(c)) < 0)
					return rc;
				c->fi++;
				file_begin(c);
			}
			c->st.files_read++;
			atel__log_close(c->r);
			c->r = NULL;
			c->eof = true;
			if (c->build) { /* every row of the log: the table keeps them */
				struct lv_cache *k = c->build;
				c->build = NULL;
				c->t->building = false;
				if (cache_index_names(k) < 0) {
					cache_unref(k);
					return 0;
				}
				k->files = c->snap;
				k->nfiles = c->nsnap;
				c->snap = NULL;
				c->nsnap = 0;
				cache_unref(c->t->cache);
				c->t->cache = k;
			}
			return 0;
		}
		if (c->fi >= c->nseqs || pos.file_seq != c->seqs[c->fi]) {
			/* the reader left file fi (and any files without events after it) */
			int nfi = seq_index(c, pos.file_seq, c->fi < c->nseqs ? c->fi : c->nseqs);
			while (c->fi < nfi) {
				if ((rc = file_end(c)) < 0)
					return rc;
				c->fi++;
				file_begin(c);
			}
			if (c->use_sum && c->fi < (int)c->t->nsum && file_skippable(c, c->fi)) {
				bool eof;
				if ((rc = seek_from(c, c->fi, &eof)) < 0)
					return rc;
				if (eof) {
					c->eof = true;
					return 0;
				}
				continue; /* the event was of a skipped file */
			}
		}
		if (ev.kind != ATEL_EV_SAMPLE || !ev.sample.series)
			continue;
		c->st.samples++;

		/* writer.c apply_sample, without SQL */
		const struct atel_dec_series *ds = ev.sample.series;
		struct lv_ser *s = map_get(c, ds);
		double v = ev.sample.value, val;
		const char *op;

		if (!s)
			return -ENOMEM;
		if (!s->mtype) {
			s->mtype = ds->mtype;
			if (touch(c, s) < 0)
				return -ENOMEM;
		}
		if (ds->mtype != s->mtype)
			continue; /* same name and labels, other type: no row */
		switch (s->mtype) {
		case ATEL_MT_GAUGE:
			op = ev.sample.set ? "set" : "add";
			val = ev.sample.set ? v : (s->indexed ? s->last_value : 0) + v;
			break;
		case ATEL_MT_HISTOGRAM:
			op = "observe";
			val = v;
			break;
		default:
			op = "add";
			val = v;
			break;
		}
		if (isnan(val) || ev.ts_ns > INT64_MAX)
			continue;
		c->id++;
		s->indexed = true;
		s->last_value = val;
		if (touch(c, s) < 0)
			return -ENOMEM;
		c->f_rows++;
		if (ev.ts_ns < c->f_min)
			c->f_min = ev.ts_ns;
		if (ev.ts_ns > c->f_max)
			c->f_max = ev.ts_ns;
		if (c->use_sum && name_add(c, fnv1a(ds->name)) < 0)
			return -ENOMEM;
		if (c->build) {
			struct lv_crow cr = { .ts = ev.ts_ns, .seq = ev.seq, .value = val, .ring = ev.ring, .pid = ev.pid,
					      .op = (uint8_t)(op[0] == 'a' ? 0 : op[0] == 's' ? 1 : 2) };
			int e = cache_add(c->build, s, ds, &cr, &c->jb);
			if (e < 0) { /* too many rows for a cache (or no memory for one): just read */
				cache_unref(c->build);
				c->build = NULL;
				c->t->building = false;
			}
		}
		if ((int64_t)c->id > c->id_hi) {
			c->eof = true; /* ids only grow */
			if (c->build) {
				cache_unref(c->build);
				c->build = NULL;
				c->t->building = false;
			}
			return 0;
		}
		if (!s->name_ok || ev.ts_ns < c->ts_lo || ev.ts_ns > c->ts_hi || (int64_t)c->id < c->id_lo)
			continue;
		c->st.rows++;
		c->s = s;
		c->ds = ds;
		c->ts = ev.ts_ns;
		c->seq = ev.seq;
		c->value = val;
		c->op = op;
		c->pid = ev.pid;
		c->ring = ev.ring;
		return 0;
	}
}

/* The next row from the cache. */
static void cache_next(struct lv_cursor *c)
{
	const struct lv_cache *k = c->cache;

	while (c->cpos < c->cend) {
		uint32_t i = c->cidx ? c->cidx[c->cpos] : (uint32_t)c->cpos;
		const struct lv_crow *r = &k->rows[i];

		c->cpos++;
		if ((int64_t)i + 1 > c->id_hi)
			break; /* ids only grow */
		if ((int64_t)i + 1 < c->id_lo || r->ts < c->ts_lo || r->ts > c->ts_hi || (c->cwant && !c->cwant[r->ser]))
			continue;
		c->st.rows++;
		c->id = (uint64_t)i + 1;
		c->crow = r;
		c->cser = &k->ser[r->ser];
		return;
	}
	c->eof = true;
}

/* Answers the scan from the table's cache. @return 0 or -ENOMEM. */
static int cache_begin(struct lv_cursor *c)
{
	struct lv_cache *k = c->t->cache;

	c->cache = k;
	k->refs++;
	c->st.cached = 1;
	c->cidx = NULL;
	c->cpos = 0;
	c->cend = k->n;
	if (c->have_names && c->nnames == 1) {
		const struct lv_cname *e = NULL;
		for (uint32_t j = 0; j < k->nnames && !e; j++)
			if (strcmp(k->names[j].name, c->names[0]) == 0)
				e = &k->names[j];
		if (!e) {
			c->eof = true;
			return 0;
		}
		c->cidx = e->idx;
		c->cend = e->n;
		/* the first of its rows with id >= id_lo */
		uint64_t lo = 0, hi = e->n;
		while (lo < hi) {
			uint64_t mid = lo + (hi - lo) / 2;
			if ((int64_t)e->idx[mid] + 1 < c->id_lo)
				lo = mid + 1;
			else
				hi = mid;
		}
		c->cpos = lo;
	} else {
		if (c->have_names) {
			c->cwant = calloc(k->nser ? k->nser : 1, 1);
			if (!c->cwant)
				return -ENOMEM;
			for (uint32_t j = 0; j < k->nser; j++)
				c->cwant[j] = name_wanted(c, k->ser[j].name);
		}
		if (c->id_lo > 1)
			c->cpos = (uint64_t)c->id_lo - 1;
	}
	c->eof = false;
	cache_next(c);
	return 0;
}

/* ---- sqlite3_module --------------------------------------------------------- */

/* The module argument: a data directory, quoted or not. */
static char *dequote(const char *a)
{
	size_t n = strlen(a);
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	while (n && (*a == ' ' || *a == '\t'))
		a++, n--;
	while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
		n--;
	if (n >= 2 && (a[0] == '\'' || a[0] == '"') && a[n - 1] == a[0]) {
		char q = a[0];
		for (size_t i = 1; i < n - 1; i++) {
			*o++ = a[i];
			if (a[i] == q && a[i + 1] == q)
				i++;
		}
	} else {
		memcpy(o, a, n);
		o += n;
	}
	*o = '\0';
	return out;
}

static int lv_connect(sqlite3 *db, void *aux, int argc, const char *const *argv, sqlite3_vtab **out, char **err)
{
	struct lv_vtab *t;
	struct stat st;
	char *d;
	int rc;

	uint32_t cache_rows = LV_CACHE_ROWS;
	if (argc != 4 && argc != 5) {
		*err = sqlite3_mprintf("atel_log: arguments: the data directory (or a segments directory) "
				       "[, 'cache_rows=N']");
		return SQLITE_ERROR;
	}
	if (argc == 5) {
		char *o = dequote(argv[4]), *end = NULL;
		unsigned long long v = 0;
		bool ok = o && strncmp(o, "cache_rows=", 11) == 0;
		if (ok) {
			errno = 0;
			v = strtoull(o + 11, &end, 10);
			ok = end != o + 11 && !*end && !errno && v <= UINT32_MAX;
		}
		if (!ok) {
			*err = sqlite3_mprintf("atel_log: unknown option %s (cache_rows=N)", o ? o : "?");
			free(o);
			return SQLITE_ERROR;
		}
		free(o);
		cache_rows = (uint32_t)v;
	}
	if (!(d = dequote(argv[3])))
		return SQLITE_NOMEM;
	if (stat(d, &st) || !S_ISDIR(st.st_mode)) {
		*err = sqlite3_mprintf("atel_log: %s: not a directory", d);
		free(d);
		return SQLITE_ERROR;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		free(d);
		return SQLITE_NOMEM;
	}
	t->mod = aux;
	t->cache_rows = cache_rows;
	size_t n = strlen(d) + sizeof("/segments");
	t->dir = malloc(n);
	if (!t->dir) {
		free(d);
		free(t);
		return SQLITE_NOMEM;
	}
	snprintf(t->dir, n, "%s/segments", d);
	if (stat(t->dir, &st) || !S_ISDIR(st.st_mode))
		snprintf(t->dir, n, "%s", d); /* a directory of .atseg files itself */
	free(d);
	rc = sqlite3_declare_vtab(db, lv_schema);
	if (rc != SQLITE_OK) {
		free(t->dir);
		free(t);
		return rc;
	}
	/* read-only, reads only the directory its creator named: fine in views */
	sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
	*out = &t->base;
	return SQLITE_OK;
}

static int lv_disconnect(sqlite3_vtab *vt)
{
	struct lv_vtab *t = (struct lv_vtab *)vt;

	sum_clear(t);
	cache_unref(t->cache);
	free(t->hmap);
	free(t->files);
	free(t->dir);
	free(t);
	return SQLITE_OK;
}

/* idxStr: two characters per xFilter argument, the column (i id, t ts_ns,
 * n name, N name IN all at once) and the operator (= < l > g). */
static int lv_best_index(sqlite3_vtab *vt, sqlite3_index_info *ix)
{
	char codes[128];
	int nargs = 0;
	double cost = 1e7, rows = 1e6;
	bool id_eq = false, in_iter = false; /* an IN list SQLite walks value by value: rows not in id order */
	bool has_vtab_in = sqlite3_libversion_number() >= 3038000;

	(void)vt;
	for (int i = 0; i < ix->nConstraint && nargs < 60; i++) {
		const struct sqlite3_index_constraint *k = &ix->aConstraint[i];
		char col, op;

		if (!k->usable)
			continue;
		switch (k->iColumn) {
		case -1:
		case COL_ID:
			col = 'i';
			break;
		case COL_TS:
			col = 't';
			break;
		case COL_NAME:
			col = 'n';
			break;
		default:
			continue;
		}
		switch (k->op) {
		case SQLITE_INDEX_CONSTRAINT_EQ:
			op = '=';
			break;
		case SQLITE_INDEX_CONSTRAINT_LT:
			op = '<';
			break;
		case SQLITE_INDEX_CONSTRAINT_LE:
			op = 'l';
			break;
		case SQLITE_INDEX_CONSTRAINT_GT:
			op = '>';
			break;
		case SQLITE_INDEX_CONSTRAINT_GE:
			op = 'g';
			break;
		default:
			continue;
		}
		if (col == 'n' && op != '=')
			continue;
		if (col == 'n' && has_vtab_in && sqlite3_vtab_in(ix, i, -1) && sqlite3_vtab_in(ix, i, 1))
			col = 'N';
		else if (op == '=' && (!has_vtab_in || sqlite3_vtab_in(ix, i, -1)))
			in_iter = true;
		codes[2 * nargs] = col;
		codes[2 * nargs + 1] = op;
		nargs++;
		ix->aConstraintUsage[i].argvIndex = nargs;
		ix->aConstraintUsage[i].omit = 0; /* SQLite checks each row again */
		if (col == 'i' && op == '=') {
			id_eq = true;
		} else if (col == 'n' || col == 'N') {
			cost /= 20;
			rows /= 20;
		} else if (op == '=') {
			cost /= 20;
			rows /= 1000;
		} else {
			cost /= 3;
			rows /= 3;
		}
	}
	codes[2 * nargs] = '\0';
	if (id_eq) {
		cost = 10;
		rows = 1;
		ix->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
	}
	if (ix->nOrderBy == 1 && (ix->aOrderBy[0].iColumn == COL_ID || ix->aOrderBy[0].iColumn == -1) &&
	    !ix->aOrderBy[0].desc && !in_iter)
		ix->orderByConsumed = 1; /* rows come in id (log) order */
	ix->estimatedCost = cost;
	ix->estimatedRows = (sqlite3_int64)rows;
	ix->idxStr = sqlite3_mprintf("%s", codes);
	ix->needToFreeIdxStr = 1;
	return ix->idxStr ? SQLITE_OK : SQLITE_NOMEM;
}

static int lv_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
	struct lv_cursor *c = calloc(1, sizeof(*c));

	if (!c)
		return SQLITE_NOMEM;
	c->t = (struct lv_vtab *)vt;
	c->t->ncursors++;
	c->eof = true;
	*out = &c->base;
	return SQLITE_OK;
}

static void names_free(struct lv_cursor *c)
{
	for (uint32_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->name_h);
	c->names = NULL;
	c->name_h = NULL;
	c->nnames = 0;
	c->have_names = false;
}

static void scan_reset(struct lv_cursor *c)
{
	atel__log_close(c->r);
	c->r = NULL;
	if (c->build) {
		cache_unref(c->build);
		c->build = NULL;
		c->t->building = false;
	}
	cache_unref(c->cache);
	c->cache = NULL;
	c->crow = NULL;
	c->cser = NULL;
	free(c->cwant);
	c->cwant = NULL;
	free(c->snap);
	c->snap = NULL;
	c->nsnap = 0;
	map_clear(c);
	names_free(c);
	free(c->seqs);
	c->seqs = NULL;
	c->nseqs = 0;
}

static int lv_close(sqlite3_vtab_cursor *cur)
{
	struct lv_cursor *c = (struct lv_cursor *)cur;

	if (c->t->mod)
		c->t->mod->last = c->st;
	c->t->ncursors--;
	scan_reset(c);
	free(c->map);
	free(c->touched);
	free(c->f_names);
	atel__buf_free(&c->jb);
	free(c);
	return SQLITE_OK;
}

/* A bound from a numeric constraint value, widened to whole numbers (SQLite
 * checks again). @return false when the value is not a number. */
static bool num_bound(sqlite3_value *v, char op, int64_t *lo, int64_t *hi)
{
	int64_t a, b; /* the value's floor and ceiling */

	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		a = b = sqlite3_value_int64(v);
		break;
	case SQLITE_FLOAT: {
		double d = sqlite3_value_double(v);
		if (isnan(d))
			return false;
		a = d <= -9.2e18 ? INT64_MIN : d >= 9.2e18 ? INT64_MAX : (int64_t)floor(d);
		b = d <= -9.2e18 ? INT64_MIN : d >= 9.2e18 ? INT64_MAX : (int64_t)ceil(d);
		break;
	}
	default:
		return false;
	}
	switch (op) {
	case '=':
		if (a > *lo)
			*lo = a;
		if (b < *hi)
			*hi = b;
		break;
	case '>':
		if (a == b && a < INT64_MAX)
			a++;
		/* fall through */
	case 'g':
		if (a > *lo)
			*lo = a;
		break;
	case '<':
		if (a == b && b > INT64_MIN)
			b--;
		/* fall through */
	case 'l':
		if (b < *hi)
			*hi = b;
		break;
	}
	return true;
}

/* Adds one name to the constraint's set (text only: other values prune nothing). */
static int names_add(char ***names, uint32_t *n, sqlite3_value *v)
{
	char **nn;

	if (sqlite3_value_type(v) != SQLITE_TEXT)
		return 1;
	nn = realloc(*names, (*n + 1) * sizeof(*nn));
	if (!nn)
		return -ENOMEM;
	*names = nn;
	if (!(nn[*n] = strdup((const char *)sqlite3_value_text(v))))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* The name constraint: the intersection of every = / IN given. */
static int names_constrain(struct lv_cursor *c, char **names, uint32_t n)
{
	if (!c->have_names) {
		c->names = names;
		c->nnames = n;
		c->have_names = true;
		return 0;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < c->nnames; i++) {
		bool in = false;
		for (uint32_t j = 0; j < n && !in; j++)
			in = strcmp(c->names[i], names[j]) == 0;
		if (in)
			c->names[k++] = c->names[i];
		else
			free(c->names[i]);
	}
	c->nnames = k;
	for (uint32_t j = 0; j < n; j++)
		free(names[j]);
	free(names);
	return 0;
}

static int lv_filter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr, int argc, sqlite3_value **argv)
{
	struct lv_cursor *c = (struct lv_cursor *)cur;
	struct lv_vtab *t = c->t;
	int64_t tlo = 0, thi = INT64_MAX, ilo = INT64_MIN, ihi = INT64_MAX;
	bool eof = false;
	int rc = 0;

	(void)idxNum;
	scan_reset(c);
	memset(&c->st, 0, sizeof(c->st));
	c->eof = true;
	c->id = 0;
	c->fi = 0;
	c->skipped = false;
	c->hist_at = 0;
	for (int a = 0; a < argc && idxStr && idxStr[2 * a]; a++) {
		char col = idxStr[2 * a], op = idxStr[2 * a + 1];
		if (col == 't') {
			(void)num_bound(argv[a], op, &tlo, &thi);
		} else if (col == 'i') {
			(void)num_bound(argv[a], op, &ilo, &ihi);
		} else {
			char **names = NULL;
			uint32_t n = 0;
			int r = 0;

			if (col == 'N') {
				sqlite3_value *v;
				for (int k = sqlite3_vtab_in_first(argv[a], &v); k == SQLITE_OK && r == 0;
				     k = sqlite3_vtab_in_next(argv[a], &v))
					r = names_add(&names, &n, v);
			} else {
				r = names_add(&names, &n, argv[a]);
			}
			if (r == 0) {
				names_constrain(c, names, n);
			} else {
				for (uint32_t j = 0; j < n; j++)
					free(names[j]);
				free(names);
				if (r < 0)
					return SQLITE_NOMEM;
			}
		}
	}
	c->ts_lo = tlo < 0 ? 0 : (uint64_t)tlo;
	c->ts_hi = thi < 0 ? 0 : (uint64_t)thi;
	c->id_lo = ilo;
	c->id_hi = ihi;
	if (thi < 0 || tlo > thi || ilo > ihi || ihi < 1 || (c->have_names && !c->nnames))
		return SQLITE_OK; /* nothing can match */
	if (c->have_names) {
		c->name_h = malloc(c->nnames * sizeof(uint64_t));
		if (!c->name_h)
			return SQLITE_NOMEM;
		for (uint32_t i = 0; i < c->nnames; i++)
			c->name_h[i] = fnv1a(c->names[i]);
		qsort(c->name_h, c->nnames, sizeof(uint64_t), u64_cmp);
	}

	c->nseqs = atel__seg_list(t->dir, &c->seqs);
	if (c->nseqs < 0) {
		rc = c->nseqs;
		c->nseqs = 0;
		if (rc == -ENOENT)
			return SQLITE_OK; /* no log yet: no rows */
		goto fail;
	}
	c->st.files = (uint64_t)c->nseqs;
	c->snap = calloc((size_t)(c->nseqs ? c->nseqs : 1), sizeof(*c->snap));
	if (!c->snap) {
		rc = -ENOMEM;
		goto fail;
	}
	c->nsnap = c->nseqs;
	for (int i = 0; i < c->nseqs; i++) {
		struct stat st;
		struct lv_fsnap *f = &c->snap[i];
		f->seq = c->seqs[i];
		if (file_stat(t->dir, c->seqs[i], &st)) {
			f->size = (uint64_t)st.st_size;
			f->ino = (uint64_t)st.st_ino;
			f->dev = (uint64_t)st.st_dev;
			f->mtime_ns = mtime_ns(&st);
		}
	}
	/* The cache answers when no file changed; and, inside a statement that
	 * already reads this table (another of its cursors is open: a view's
	 * correlated subquery), also when the log only grew since: the
	 * statement keeps the log as its first scan saw it, as a read
	 * transaction keeps its snapshot, instead of reading the log again for
	 * each subquery while ateld appends. */
	if (t->cache && (snap_equal(t->cache->files, t->cache->nfiles, c->snap, c->nsnap) ||
			 (t->ncursors > 1 && snap_grown(t->cache->files, t->cache->nfiles, c->snap, c->nsnap)))) {
		if ((rc = cache_begin(c)) < 0)
			goto fail;
		return SQLITE_OK;
	}
	if (t->cache) { /* the log changed: read it again */
		cache_unref(t->cache);
		t->cache = NULL;
	}
	if (!t->building && t->cache_rows) {
		c->build = calloc(1, sizeof(*c->build));
		if (c->build) {
			c->build->refs = 1;
			c->build->limit = t->cache_rows;
			t->building = true;
		}
	}
	c->use_sum = true;
	if (!sum_valid(t, c->seqs, c->nseqs)) {
		if (t->ncursors == 1)
			sum_clear(t); /* retention removed a file, or a file changed: start over */
		else
			c->use_sum = false; /* another scan may still use them */
	}
	if ((rc = seek_from(c, 0, &eof)) < 0)
		goto fail;
	if (eof)
		return SQLITE_OK;
	c->eof = false;
	if ((rc = next_row(c)) < 0)
		goto fail;
	return SQLITE_OK;
fail:
	c->eof = true;
	sqlite3_free(t->base.zErrMsg);
	t->base.zErrMsg = sqlite3_mprintf("atel_log: reading %s: %s", t->dir, strerror(-rc));
	return rc == -ENOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
}

static int lv_next(sqlite3_vtab_cursor *cur)
{
	struct lv_cursor *c = (struct lv_cursor *)cur;
	int rc;

	if (c->cache) {
		cache_next(c);
		return SQLITE_OK;
	}
	rc = next_row(c);

	if (rc < 0) {
		c->eof = true;
		sqlite3_free(c->t->base.zErrMsg);
		c->t->base.zErrMsg = sqlite3_mprintf("atel_log: reading %s: %s", c->t->dir, strerror(-rc));
		return rc == -ENOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
	}
	return SQLITE_OK;
}

static int lv_eof(sqlite3_vtab_cursor *cur)
{
	return ((struct lv_cursor *)cur)->eof;
}

static int lv_column(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int col)
{
	struct lv_cursor *c = (struct lv_cursor *)cur;
	struct lv_ser *s = c->s;

	if (c->cache) {
		const struct lv_crow *r = c->crow;
		const struct lv_cser *e = c->cser;
		switch (col) {
		case COL_ID:
			sqlite3_result_int64(ctx, (sqlite3_int64)c->id);
			break;
		case COL_TS:
			sqlite3_result_int64(ctx, (sqlite3_int64)r->ts);
			break;
		case COL_NAME:
			sqlite3_result_text(ctx, e->name, -1, SQLITE_STATIC);
			break;
		case COL_LABELS:
			sqlite3_result_text(ctx, e->labels, -1, SQLITE_STATIC);
			break;
		case COL_HASH:
			sqlite3_result_int64(ctx, (sqlite3_int64)e->hash);
			break;
		case COL_TYPE:
			sqlite3_result_text(ctx, atel__metric_type_name(e->mtype), -1, SQLITE_STATIC);
			break;
		case COL_VALUE:
			sqlite3_result_double(ctx, r->value);
			break;
		case COL_OP:
			sqlite3_result_text(ctx, lv_ops[r->op], -1, SQLITE_STATIC);
			break;
		case COL_PID:
			if (r->pid)
				sqlite3_result_int64(ctx, r->pid);
			else
				sqlite3_result_null(ctx);
			break;
		case COL_RING:
			sqlite3_result_int64(ctx, r->ring);
			break;
		case COL_SEQ:
			sqlite3_result_int64(ctx, (sqlite3_int64)r->seq);
			break;
		default:
			sqlite3_result_null(ctx);
			break;
		}
		return SQLITE_OK;
	}
	switch (col) {
	case COL_ID:
		sqlite3_result_int64(ctx, (sqlite3_int64)c->id);
		break;
	case COL_TS:
		sqlite3_result_int64(ctx, (sqlite3_int64)c->ts);
		break;
	case COL_NAME:
		if (!s->name && !(s->name = strdup(c->ds->name)))
			return SQLITE_NOMEM;
		sqlite3_result_text(ctx, s->name, -1, SQLITE_TRANSIENT);
		break;
	case COL_LABELS:
		if (!s->labels) {
			if (atel__mrow_labels_json(&c->jb, c->ds) || !(s->labels = strdup(c->jb.data)))
				return SQLITE_NOMEM;
		}
		sqlite3_result_text(ctx, s->labels, -1, SQLITE_TRANSIENT);
		break;
	case COL_HASH:
		sqlite3_result_int64(ctx, (sqlite3_int64)s->hash);
		break;
	case COL_TYPE:
		sqlite3_result_text(ctx, atel__metric_type_name(s->mtype), -1, SQLITE_STATIC);
		break;
	case COL_VALUE:
		sqlite3_result_double(ctx, c->value);
		break;
	case COL_OP:
		sqlite3_result_text(ctx, c->op, -1, SQLITE_STATIC);
		break;
	case COL_PID:
		if (c->pid)
			sqlite3_result_int64(ctx, c->pid);
		else
			sqlite3_result_null(ctx);
		break;
	case COL_RING:
		sqlite3_result_int64(ctx, c->ring);
		break;
	case COL_SEQ:
		sqlite3_result_int64(ctx, (sqlite3_int64)c->seq);
		break;
	default:
		sqlite3_result_null(ctx);
		break;
	}
	return SQLITE_OK;
}

static int lv_rowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *rowid)
{
	*rowid = (sqlite3_int64)((struct lv_cursor *)cur)->id;
	return SQLITE_OK;
}

static const sqlite3_module lv_module = {
	.iVersion = 0,
	.xCreate = lv_connect,
	.xConnect = lv_connect,
	.xBestIndex = lv_best_index,
	.xDisconnect = lv_disconnect,
	.xDestroy = lv_disconnect,
	.xOpen = lv_open,
	.xClose = lv_close,
	.xFilter = lv_filter,
	.xNext = lv_next,
	.xEof = lv_eof,
	.xColumn = lv_column,
	.xRowid = lv_rowid,
};

/* ---- session helpers ---------------------------------------------------------- */

/* "CREATE VIEW [IF NOT EXISTS] name AS ..." as "CREATE TEMP VIEW name AS ...",
 * or NULL when sql does not start that way. sqlite3_free the result. */
static char *temp_view_sql(const char *sql)
{
	const char *p = sql;
	static const char *const words[] = { "CREATE", "VIEW" };

	for (int w = 0; w < 2; w++) {
		size_t n = strlen(words[w]);
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (strncasecmp(p, words[w], n) != 0)
			return NULL;
		p += n;
	}
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (strncasecmp(p, "IF", 2) == 0 && (p[2] == ' ' || p[2] == '\t' || p[2] == '\n')) {
		p += 2;
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (strncasecmp(p, "NOT", 3) != 0)
			return NULL;
		p += 3;
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (strncasecmp(p, "EXISTS", 6) != 0)
			return NULL;
		p += 6;
	}
	return sqlite3_mprintf("CREATE TEMP VIEW %s", p);
}

int atel__logvtab_shadow(sqlite3 *db, const char *data_dir, int *nviews, char *err, size_t errlen)
{
	sqlite3_stmt *q = NULL;
	char **views = NULL, *sql, *msg = NULL;
	int n = 0, cap = 0, rc = 0;

	if (nviews)
		*nviews = 0;
	sql = sqlite3_mprintf("DROP TABLE IF EXISTS temp.telemetry_metrics;"
			      "CREATE VIRTUAL TABLE temp.telemetry_metrics USING atel_log(%Q)",
			      data_dir);
	if (!sql)
		return -ENOMEM;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		sqlite3_free(sql);
		return -EINVAL;
	}
	sqlite3_free(sql);
	/* A view of main binds unqualified names in main even when temp has the
	 * name; a temp view binds temp first. So: temp copies of main's views
	 * that read telemetry_metrics. */
	if (sqlite3_prepare_v2(db,
			       "SELECT name, sql FROM main.sqlite_schema WHERE type = 'view' "
			       "AND sql LIKE '%telemetry_metrics%' ORDER BY rowid",
			       -1, &q, NULL) == SQLITE_OK) {
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(q, 0);
			char *tv = temp_view_sql((const char *)sqlite3_column_text(q, 1));
			if (!tv || !name) {
				sqlite3_free(tv);
				continue;
			}
			if (n + 2 > cap) {
				cap = cap ? cap * 2 : 16;
				char **nv = realloc(views, (size_t)cap * sizeof(*nv));
				if (!nv) {
					sqlite3_free(tv);
					rc = -ENOMEM;
					break;
				}
				views = nv;
			}
			views[n++] = sqlite3_mprintf("DROP VIEW IF EXISTS temp.%Q", name);
			views[n++] = tv;
		}
	}
	sqlite3_finalize(q);
	for (int i = 0; i < n; i++) {
		if (!rc && (!views[i] || sqlite3_exec(db, views[i], NULL, NULL, &msg) != SQLITE_OK)) {
			snprintf(err, errlen, "%s", msg ? msg : "out of memory");
			rc = -EIO;
		}
		sqlite3_free(msg);
		msg = NULL;
		sqlite3_free(views[i]);
	}
	free(views);
	if (!rc && nviews)
		*nviews = n / 2;
	return rc;
}

/* SELECT atel_shadow('DIR'): atel__logvtab_shadow from SQL; the number of views copied. */
static void fn_shadow(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	char err[512] = "";
	int nviews = 0;
	const char *dir = (const char *)sqlite3_value_text(argv[0]);

	(void)argc;
	if (!dir) {
		sqlite3_result_error(ctx, "atel_shadow: a data directory expected", -1);
		return;
	}
	if (atel__logvtab_shadow(sqlite3_context_db_handle(ctx), dir, &nviews, err, sizeof(err)) < 0) {
		sqlite3_result_error(ctx, err, -1);
		return;
	}
	sqlite3_result_int(ctx, nviews);
}

/* SELECT atel_log_stats(): what the last finished scan of an atel_log table read and skipped. */
static void fn_stats(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct lv_module *m = sqlite3_user_data(ctx);
	char *s;

	(void)argc;
	(void)argv;
	s = sqlite3_mprintf("{\"files\":%llu,\"files_read\":%llu,\"files_skipped\":%llu,\"samples\":%llu,"
			    "\"rows\":%llu,\"cached\":%llu}",
			    (unsigned long long)m->last.files, (unsigned long long)m->last.files_read,
			    (unsigned long long)m->last.files_skipped, (unsigned long long)m->last.samples,
			    (unsigned long long)m->last.rows, (unsigned long long)m->last.cached);
	if (!s) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, s, -1, sqlite3_free);
}

int atel__logvtab_register(sqlite3 *db)
{
	struct lv_module *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return SQLITE_NOMEM;
	rc = sqlite3_create_module_v2(db, "atel_log", &lv_module, m, free);
	if (rc != SQLITE_OK)
		return rc; /* the destructor ran */
	rc = sqlite3_create_function(db, "atel_shadow", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL, fn_shadow, NULL,
				     NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(db, "atel_log_stats", 0, SQLITE_UTF8, m, fn_stats, NULL, NULL);
	return rc;
}

#ifdef ATEL_SQLITE_EXTENSION
/* `.load atel_sqlite` (SQLite derives sqlite3_atelsqlite_init from the file
 * name and falls back to sqlite3_extension_init). */
__attribute__((visibility("default"))) int sqlite3_extension_init(sqlite3 *db, char **err,
								    const sqlite3_api_routines *api);
__attribute__((visibility("default"))) int sqlite3_atelsqlite_init(sqlite3 *db, char **err,
								     const sqlite3_api_routines *api);

int sqlite3_extension_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	int rc;

	SQLITE_EXTENSION_INIT2(api);
	rc = atel__logvtab_register(db);
	if (rc != SQLITE_OK && err)
		*err = sqlite3_mprintf("atel_sqlite: registering the atel_log module failed (%d)", rc);
	return rc;
}

int sqlite3_atelsqlite_init(sqlite3 *db, char **err, const sqlite3_api_routines *api)
{
	return sqlite3_extension_init(db, err, api);
}
#endif
