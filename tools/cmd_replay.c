/* SPDX-License-Identifier: MIT */
/*
 * cmd_replay.c - `atel replay PATH` (offline verification and summary of
 * segment files, --emit jsonl, --into DB) and `atel reindex`.
 *
 * Two passes over the files: the log reader (logread.h) decodes every record
 * and reports corrupt frames with file and offset; the frame pass
 * (segscan.h) follows the CHUNK framing to find gaps in ring positions.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "index.h"
#include "logread.h"
#include "lossacc.h"
#include "qsource.h"
#include "query.h"
#include "ring.h"
#include "segformat.h"
#include "segscan.h"

struct corrupt_list {
	struct { char file[256]; uint64_t offset; char why[160]; } *v;
	size_t n, cap;
};

static void on_corrupt(void *arg, const char *file, uint64_t offset, const char *why)
{
	struct corrupt_list *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		void *nv = realloc(l->v, nc * sizeof(*l->v));
		if (!nv)
			return;
		l->v = nv;
		l->cap = nc;
	}
	const char *base = strrchr(file, '/');
	snprintf(l->v[l->n].file, sizeof(l->v[0].file), "%s", base ? base + 1 : file);
	l->v[l->n].offset = offset;
	snprintf(l->v[l->n].why, sizeof(l->v[0].why), "%s", why ? why : "");
	l->n++;
}

struct rseries {
	uint64_t hash;
	char *name, *labels;
	uint8_t mtype;
	uint64_t samples;   /* calls the records stand for (a folded record counts its calls) */
	double sum, last;
};

struct rprod {
	int32_t pid;
	char comm[20];
	uint64_t records;
	uint64_t first_ns, last_ns;
	uint64_t rings_mask[4];      /* rings 0..255 seen (for the listing) */
	uint32_t nrings;
};

struct replay {
	struct rseries *series;
	size_t nseries, capseries;
	size_t *slots;
	size_t nslots;
	struct rprod *prods;
	size_t nprods, capprods;
	uint64_t first_ns, last_ns, events;
	uint64_t losses[ATEL_LOSS_CAUSE_MAX + 1];   /* filled from la at the end */
	uint64_t spans_lost;
	struct atel_loss_acc *la;                   /* docs/segment-format.md 4.3 */
	uint64_t deaths, invalid_events;
};

static size_t hs(uint64_t h, size_t n)
{
	h ^= h >> 31;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (n - 1);
}

static struct rseries *series_of(struct replay *r, const struct atel_dec_series *ds)
{
	if (r->nslots) {
		for (size_t i = hs(ds->key_hash, r->nslots);; i = (i + 1) & (r->nslots - 1)) {
			size_t v = r->slots[i];
			if (!v)
				break;
			if (r->series[v - 1].hash == ds->key_hash)
				return &r->series[v - 1];
		}
	}
	if ((r->nseries + 1) * 2 > r->nslots) {
		size_t nn = r->nslots ? r->nslots * 2 : 256;
		size_t *ns = calloc(nn, sizeof(*ns));
		if (!ns)
			return NULL;
		for (size_t k = 0; k < r->nseries; k++) {
			size_t i = hs(r->series[k].hash, nn);
			while (ns[i])
				i = (i + 1) & (nn - 1);
			ns[i] = k + 1;
		}
		free(r->slots);
		r->slots = ns;
		r->nslots = nn;
	}
	if (r->nseries == r->capseries) {
		size_t nc = r->capseries ? r->capseries * 2 : 64;
		struct rseries *n = realloc(r->series, nc * sizeof(*n));
		if (!n)
			return NULL;
		r->series = n;
		r->capseries = nc;
	}
	struct rseries *s = &r->series[r->nseries];
	memset(s, 0, sizeof(*s));
	s->hash = ds->key_hash;
	s->mtype = ds->mtype;
	s->name = strdup(ds->name ? ds->name : "");
	cJSON *l = cJSON_CreateObject();
	for (uint32_t k = 0; k < ds->nlabels; k++)
		cJSON_AddStringToObject(l, ds->keys[k], ds->values[k]);
	s->labels = cJSON_PrintUnformatted(l);
	cJSON_Delete(l);
	size_t i = hs(s->hash, r->nslots);
	while (r->slots[i])
		i = (i + 1) & (r->nslots - 1);
	r->slots[i] = ++r->nseries;
	return s;
}

static struct rprod *prod_of(struct replay *r, int32_t pid, const char *comm)
{
	for (size_t i = 0; i < r->nprods; i++)
		if (r->prods[i].pid == pid)
			return &r->prods[i];
	if (r->nprods == r->capprods) {
		size_t nc = r->capprods ? r->capprods * 2 : 16;
		struct rprod *n = realloc(r->prods, nc * sizeof(*n));
		if (!n)
			return NULL;
		r->prods = n;
		r->capprods = nc;
	}
	struct rprod *p = &r->prods[r->nprods++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	snprintf(p->comm, sizeof(p->comm), "%s", comm ? comm : "");
	p->first_ns = UINT64_MAX;
	return p;
}

static void hex_or_null(cJSON *o, const char *key, const uint8_t *id, size_t n)
{
	static const uint8_t zero[16];
	if (memcmp(id, zero, n) == 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char h[33];
	atel__hex(id, n, h);
	cJSON_AddStringToObject(o, key, h);
}

static void add_hex(cJSON *o, const char *key, const uint8_t *id, size_t n)
{
	char h[33];
	atel__hex(id, n, h);
	cJSON_AddStringToObject(o, key, h);
}

static cJSON *attr_json(const struct atel_attr_value *v)
{
	switch (v->vtype) {
	case ATEL_VT_INT:
		return cJSON_CreateNumber((double)v->i);
	case ATEL_VT_DOUBLE:
		return cli_json_num(v->d);
	case ATEL_VT_BOOL:
		return cJSON_CreateBool(v->b);
	default: {
		char *s = strndup(v->s ? v->s : "", v->slen);
		cJSON *j = cJSON_CreateString(s ? s : "");
		free(s);
		return j;
	}
	}
}

/* One JSON object per event, names resolved (README "CLI": replay --emit jsonl). */
static cJSON *event_json(const struct atel_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	const char *type = NULL;
	switch (ev->kind) {
	case ATEL_EV_BEGIN: type = "begin"; break;
	case ATEL_EV_END: type = "end"; break;
	case ATEL_EV_SAMPLE: type = "sample"; break;
	case ATEL_EV_SPAN_START: type = "span_start"; break;
	case ATEL_EV_SPAN_END: type = "span_end"; break;
	case ATEL_EV_SPAN_ATTR: type = "span_attr"; break;
	case ATEL_EV_SPAN_EVENT: type = "span_event"; break;
	case ATEL_EV_SPAN_ERROR: type = "span_error"; break;
	case ATEL_EV_LOSS: type = "loss"; break;
	case ATEL_EV_LOSS_TOTAL: type = "loss_total"; break;
	case ATEL_EV_HISTFOLD: type = "histfold"; break;
	case ATEL_EV_DEATH: type = "death"; break;
	default: type = "invalid"; break;
	}
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddItemToObject(o, "ts_ns", cli_json_u64(ev->ts_ns));
	cJSON_AddNumberToObject(o, "ring", ev->ring);
	cJSON_AddNumberToObject(o, "generation", ev->generation);
	cJSON_AddItemToObject(o, "seq", cli_json_u64(ev->seq));
	cJSON_AddNumberToObject(o, "pid", ev->pid);
	switch (ev->kind) {
	case ATEL_EV_BEGIN:
		cJSON_AddNumberToObject(o, "tid", ev->begin.tid);
		cJSON_AddStringToObject(o, "comm", ev->begin.comm ? ev->begin.comm : "");
		break;
	case ATEL_EV_SAMPLE: {
		const struct atel_dec_series *s = ev->sample.series;
		cJSON_AddStringToObject(o, "metric", s && s->name ? s->name : "");
		cJSON_AddStringToObject(o, "metric_type", atel__metric_type_name(s ? s->mtype : 0));
		cJSON *l = cJSON_CreateObject();
		for (uint32_t k = 0; s && k < s->nlabels; k++)
			cJSON_AddStringToObject(l, s->keys[k], s->values[k]);
		cJSON_AddItemToObject(o, "labels", l);
		cJSON_AddItemToObject(o, "value", cli_json_num(ev->sample.value));
		cJSON_AddStringToObject(o, "op", ev->sample.set ? "set"
						 : s && s->mtype == ATEL_MT_HISTOGRAM ? "observe"
										       : "add");
		if (ev->sample.folded) {
			/* the value folds `count` calls made between first_ns and ts_ns (docs/abi.md 2.3) */
			cJSON_AddItemToObject(o, "folded_calls", cli_json_u64(ev->sample.count));
			cJSON_AddItemToObject(o, "first_ns", cli_json_u64(ev->sample.first_ns));
		}
		break;
	}
	case ATEL_EV_HISTFOLD: {
		const struct atel_dec_series *s = ev->histfold.series;
		cJSON_AddStringToObject(o, "metric", s && s->name ? s->name : "");
		cJSON *l = cJSON_CreateObject();
		for (uint32_t k = 0; s && k < s->nlabels; k++)
			cJSON_AddStringToObject(l, s->keys[k], s->values[k]);
		cJSON_AddItemToObject(o, "labels", l);
		cJSON_AddItemToObject(o, "count", cli_json_u64(ev->histfold.count));
		cJSON_AddItemToObject(o, "sum", cli_json_num(ev->histfold.sum));
		cJSON_AddItemToObject(o, "first_ns", cli_json_u64(ev->histfold.first_ns));
		cJSON *b = cJSON_CreateArray();
		for (uint32_t k = 0; k < ev->histfold.nbuckets; k++)
			cJSON_AddItemToArray(b, cli_json_u64(ev->histfold.buckets[k]));
		cJSON_AddItemToObject(o, "buckets", b);
		break;
	}
	case ATEL_EV_LOSS_TOTAL:
		cJSON_AddStringToObject(o, "cause", ev->loss_total.cause == ATEL_LOSS_SPANS ? "spans"
						    : atel__loss_cause_name(ev->loss_total.cause));
		if (ev->loss_total.ring == ATEL_LOSS_RING_SEGMENT)
			cJSON_AddNullToObject(o, "loss_ring");
		else
			cJSON_AddNumberToObject(o, "loss_ring", ev->loss_total.ring);
		cJSON_AddItemToObject(o, "total", cli_json_u64(ev->loss_total.total));
		cJSON_AddItemToObject(o, "delta", cli_json_u64(ev->loss_total.delta));
		cJSON_AddItemToObject(o, "since_ns", cli_json_u64(ev->loss_total.since_ns));
		break;
	case ATEL_EV_SPAN_START:
		add_hex(o, "trace_id", ev->span_start.trace_id, 16);
		add_hex(o, "span_id", ev->span_start.span_id, 8);
		hex_or_null(o, "parent_span_id", ev->span_start.parent_id, 8);
		cJSON_AddStringToObject(o, "name", ev->span_start.name ? ev->span_start.name : "");
		cJSON_AddNumberToObject(o, "kind", ev->span_start.kind);
		break;
	case ATEL_EV_SPAN_END: {
		add_hex(o, "trace_id", ev->span_end.trace_id, 16);
		add_hex(o, "span_id", ev->span_end.span_id, 8);
		cJSON_AddNumberToObject(o, "status", ev->span_end.status);
		char *m = strndup(ev->span_end.msg ? ev->span_end.msg : "", ev->span_end.msg_len);
		cJSON_AddStringToObject(o, "message", m ? m : "");
		free(m);
		break;
	}
	case ATEL_EV_SPAN_ATTR:
		add_hex(o, "trace_id", ev->span_attr.trace_id, 16);
		add_hex(o, "span_id", ev->span_attr.span_id, 8);
		cJSON_AddStringToObject(o, "key", ev->span_attr.key ? ev->span_attr.key : "");
		cJSON_AddItemToObject(o, "value", attr_json(&ev->span_attr.v));
		cJSON_AddBoolToObject(o, "event_attr", ev->span_attr.event_attr);
		break;
	case ATEL_EV_SPAN_EVENT:
		add_hex(o, "trace_id", ev->span_event.trace_id, 16);
		add_hex(o, "span_id", ev->span_event.span_id, 8);
		cJSON_AddStringToObject(o, "name", ev->span_event.name ? ev->span_event.name : "");
		cJSON_AddNumberToObject(o, "nattrs", ev->span_event.nattrs);
		break;
	case ATEL_EV_SPAN_ERROR: {
		add_hex(o, "trace_id", ev->span_error.trace_id, 16);
		add_hex(o, "span_id", ev->span_error.span_id, 8);
		cJSON_AddStringToObject(o, "error_type", ev->span_error.type ? ev->span_error.type : "");
		char *m = strndup(ev->span_error.msg ? ev->span_error.msg : "", ev->span_error.msg_len);
		cJSON_AddStringToObject(o, "message", m ? m : "");
		free(m);
		break;
	}
	case ATEL_EV_LOSS:
		cJSON_AddStringToObject(o, "cause", atel__loss_cause_name(ev->loss.cause));
		cJSON_AddItemToObject(o, "count", cli_json_u64(ev->loss.count));
		cJSON_AddItemToObject(o, "first_ns", cli_json_u64(ev->loss.first_ns));
		cJSON_AddItemToObject(o, "last_ns", cli_json_u64(ev->loss.last_ns));
		break;
	case ATEL_EV_DEATH:
		cJSON_AddNumberToObject(o, "dead_pid", ev->death.pid);
		cJSON_AddNumberToObject(o, "dead_generation", ev->death.generation);
		break;
	case ATEL_EV_INVALID:
		cJSON_AddStringToObject(o, "why", ev->invalid.why ? ev->invalid.why : "");
		break;
	default:
		break;
	}
	return o;
}

static void account(struct replay *r, const struct atel_event *ev, uint64_t instance)
{
	r->events++;
	if (ev->ts_ns && ev->kind != ATEL_EV_DEATH) {
		if (!r->first_ns || ev->ts_ns < r->first_ns)
			r->first_ns = ev->ts_ns;
		if (ev->ts_ns > r->last_ns)
			r->last_ns = ev->ts_ns;
	}
	switch (ev->kind) {
	case ATEL_EV_SAMPLE: {
		if (!ev->sample.series)
			break;
		struct rseries *s = series_of(r, ev->sample.series);
		if (!s)
			break;
		s->samples += ev->sample.count;
		if (s->mtype == ATEL_MT_GAUGE)
			s->last = ev->sample.set ? ev->sample.value : s->last + ev->sample.value;
		else
			s->last = ev->sample.value;
		s->sum += ev->sample.value;
		break;
	}
	case ATEL_EV_HISTFOLD: {
		struct rseries *s = ev->histfold.series ? series_of(r, ev->histfold.series) : NULL;
		if (!s)
			break;
		s->samples += ev->histfold.count;
		s->sum += ev->histfold.sum;
		break;
	}
	case ATEL_EV_LOSS:
	case ATEL_EV_LOSS_TOTAL:
		if (r->la)
			(void)atel__lossacc_add(r->la, instance, ev);
		break;
	case ATEL_EV_DEATH:
		r->deaths++;
		return;
	case ATEL_EV_INVALID:
		r->invalid_events++;
		return;
	default:
		break;
	}
	if (ev->pid) {
		struct rprod *p = prod_of(r, ev->pid, ev->comm);
		if (p) {
			p->records++;
			if (ev->ts_ns && ev->ts_ns < p->first_ns)
				p->first_ns = ev->ts_ns;
			if (ev->ts_ns > p->last_ns)
				p->last_ns = ev->ts_ns;
			if (ev->ring < 256 && !(p->rings_mask[ev->ring / 64] & (1ull << (ev->ring % 64)))) {
				p->rings_mask[ev->ring / 64] |= 1ull << (ev->ring % 64);
				p->nrings++;
			}
			if (!p->comm[0] && ev->comm)
				snprintf(p->comm, sizeof(p->comm), "%s", ev->comm);
		}
	}
}

static int cmp_rseries(const void *a, const void *b)
{
	const struct rseries *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->labels ? x->labels : "", y->labels ? y->labels : "");
}

static int cmp_prod(const void *a, const void *b)
{
	const struct rprod *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static const char replay_help[] =
	"usage: atel replay PATH [--json] [--emit jsonl|raw] [-o FILE] [--into DB] [--no-progress]\n"
	"Reads a segment file or a directory of them with no daemon: verifies every frame\n"
	"(zstd checksums, header CRC, record structure), then prints counts per record type,\n"
	"per series and per producer, the time range, losses reported in-band, and gaps in\n"
	"ring positions. Corrupt frames are reported with file and offset and skipped.\n"
	"  --emit jsonl   every record as one JSON object per line, names resolved, on stdout\n"
	"                 (or -o FILE); the summary then goes to stderr\n"
	"  --emit raw     the decompressed content of every valid data frame, COLUMNS frames\n"
	"                 decoded: 64-byte CHUNK and producer records, what `zstd -d` prints\n"
	"                 for files written with storage.encoding \"records\"\n"
	"  --into DB      also rebuild an index database DB from PATH (like `atel reindex`)\n"
	"Exit: 0 all frames valid, 1 usage, 2 corrupt frames or invalid records found, or\n"
	"unreadable PATH.\n";

/* One `atel replay`: its options, then what reading the log found. */
struct replay_job {
	/* options (replay_parse) */
	const char *path, *emit, *outp, *into;
	bool progress, emit_raw;
	/* the run (replay_read, replay_into) */
	bool dir;
	FILE *out;                       /* --emit: where records go */
	FILE *summary;                   /* stderr when records go to stdout */
	struct corrupt_list cl;
	struct replay r;
	struct atel_segscan scan;
	struct atel_log_read_stats ls;
};

/* @return 0, -1 (--help was printed) or ATEL_EXIT_USAGE. */
static int replay_parse(struct replay_job *j, int argc, char **argv)
{
	j->progress = true;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(replay_help, stdout);
			return -1;
		}
		if ((v = cli_opt(argc, argv, &i, "--emit")) != NULL)
			j->emit = v;
		else if ((v = cli_opt(argc, argv, &i, "-o")) != NULL || (v = cli_opt(argc, argv, &i, "--output")) != NULL)
			j->outp = v;
		else if ((v = cli_opt(argc, argv, &i, "--into")) != NULL)
			j->into = v;
		else if (strcmp(argv[i], "--no-progress") == 0)
			j->progress = false;
		else if (argv[i][0] == '-' && argv[i][1]) {
			cli_err("replay", "unknown option %s (see atel replay --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		} else if (j->path) {
			cli_err("replay", "one PATH only");
			return ATEL_EXIT_USAGE;
		} else {
			j->path = argv[i];
		}
	}
	if (!j->path) {
		cli_err("replay", "missing PATH (a .atseg file or a directory of them)");
		return ATEL_EXIT_USAGE;
	}
	j->emit_raw = j->emit && strcmp(j->emit, "raw") == 0;
	if (j->emit && strcmp(j->emit, "jsonl") != 0 && !j->emit_raw) {
		cli_err("replay", "--emit: expected jsonl or raw, got \"%s\"", j->emit);
		return ATEL_EXIT_USAGE;
	}
	if ((j->outp && !j->emit) || (j->into && !*j->into) || (j->outp && !*j->outp)) {
		cli_err("replay", "-o goes with --emit jsonl or --emit raw");
		return ATEL_EXIT_USAGE;
	}
	return 0;
}

/* Says which files of DIR are not segment files (<16 hex digits>.atseg) and
 * are skipped. @return 0, or ATEL_EXIT_DATA when DIR holds files but no
 * segment file at all. */
static int replay_check_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t nseg = 0, nskip = 0;
	char first[3][256] = { "", "", "" };
	if (!d)
		return 0; /* the reader reports it */
	while ((e = readdir(d)) != NULL) {
		uint64_t seq;
		if (e->d_name[0] == '.')
			continue;
		if (atel__seg_name_seq(e->d_name, &seq)) {
			nseg++;
		} else {
			if (nskip < 3)
				snprintf(first[nskip], sizeof(first[0]), "%s", e->d_name);
			nskip++;
		}
	}
	closedir(d);
	if (nskip)
		cli_err("replay", "%s: skipped %zu file(s) not named like a segment file (16 hex digits + .atseg): %s%s%s%s%s%s",
			dir, nskip, first[0], nskip > 1 ? ", " : "", first[1], nskip > 2 ? ", " : "", first[2],
			nskip > 3 ? ", ..." : "");
	if (nskip && !nseg) {
		cli_err("replay", "%s: no segment files to read", dir);
		return ATEL_EXIT_DATA;
	}
	return 0;
}

/* Opens PATH and the --emit output. @return 0, or an exit code (nothing to summarise). */
static int replay_open(const struct cli *c, struct replay_job *j)
{
	struct stat st;

	if (stat(j->path, &st) < 0) {
		cli_err("replay", "%s: %s", j->path, strerror(errno));
		return ATEL_EXIT_DATA;
	}
	j->dir = S_ISDIR(st.st_mode);
	if (j->dir) {
		int rc = replay_check_dir(j->path);
		if (rc)
			return rc;
	}
	j->out = stdout;
	if (j->emit_raw && !j->outp && isatty(STDOUT_FILENO)) {
		cli_err("replay", "--emit raw writes binary records: redirect stdout or use -o FILE");
		return ATEL_EXIT_USAGE;
	}
	if (j->emit && j->outp && strcmp(j->outp, "-") != 0) {
		j->out = fopen(j->outp, j->emit_raw ? "wb" : "w");
		if (!j->out) {
			j->out = stdout;
			cli_err("replay", "%s: %s", j->outp, strerror(errno));
			return ATEL_EXIT_DATA;
		}
	}
	j->summary = j->emit && j->out == stdout ? stderr : stdout;
	(void)c;
	return 0;
}

/*
 * Reads every record (the event pass: counts, series, producers; --emit
 * jsonl), then the frame pass (gaps; --emit raw). @return 0 or
 * ATEL_EXIT_DATA (damage or an I/O error: the summary says which); *fatal
 * if the log could not be opened at all.
 */
static int replay_read(const struct cli *c, struct replay_job *j, bool *fatal)
{
	bool show_progress = j->progress && !j->emit && !c->json && isatty(STDERR_FILENO);
	struct atel_log_reader_opts o = {
		.segments_dir = j->dir ? j->path : NULL,
		.single_file = j->dir ? NULL : j->path,
		.on_corrupt = on_corrupt,
		.arg = &j->cl,
	};
	struct atel_log_reader *rd = NULL;
	struct atel_event ev;
	uint64_t next_progress = 0;
	char err[512] = "";
	int rc = atel__log_open(&rd, &o), ret = 0;

	*fatal = false;
	if (rc < 0) {
		cli_err("replay", "%s: %s", j->path, strerror(-rc));
		*fatal = true;
		return ATEL_EXIT_DATA;
	}
	if (!j->r.la && !(j->r.la = atel__lossacc_new())) {
		cli_err("replay", "out of memory");
		atel__log_close(rd);
		*fatal = true;
		return ATEL_EXIT_DATA;
	}
	while ((rc = atel__log_next(rd, &ev, NULL)) == 1) {
		account(&j->r, &ev, atel__log_current_instance(rd));
		if (j->emit && !j->emit_raw) {
			cJSON *e = event_json(&ev);
			char *line = cJSON_PrintUnformatted(e);
			cJSON_Delete(e);
			if (line) {
				fputs(line, j->out);
				fputc('\n', j->out);
				free(line);
			}
		}
		if (show_progress && (j->r.events & 0xFFFF) == 0) {
			uint64_t now = atel__now_ns();
			if (now >= next_progress) {
				char b[32];
				fprintf(stderr, "\rreplay: %s records, %s", atel_q_fmt_count((double)j->r.events, b, sizeof(b)),
					atel__log_current_file(rd));
				next_progress = now + 200000000ull;
			}
		}
	}
	if (show_progress && next_progress)
		fprintf(stderr, "\r\033[K");
	if (rc < 0) {
		cli_err("replay", "%s: read error: %s", atel__log_current_file(rd), strerror(-rc));
		ret = ATEL_EXIT_DATA;
	}
	atel__log_stats(rd, &j->ls);
	atel__log_close(rd);
	for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
		j->r.losses[k] = atel__lossacc_total(j->r.la, k);
	j->r.spans_lost = atel__lossacc_total(j->r.la, ATEL_LOSS_SPANS);
	if (j->emit_raw)
		j->scan.raw_out = j->out;
	if (atel_segscan_path(j->path, &j->scan, err, sizeof(err)) < 0) {
		cli_err("replay", "%s", err);
		ret = ATEL_EXIT_DATA;
	}
	if (j->scan.raw_err || (j->emit_raw && fflush(j->out) != 0)) {
		cli_err("replay", "%s: %s", j->outp ? j->outp : "stdout",
			strerror(j->scan.raw_err ? j->scan.raw_err : errno));
		ret = ATEL_EXIT_DATA;
	}
	if (j->emit && j->out != stdout && fclose(j->out) != 0) {
		cli_err("replay", "%s: %s", j->outp, strerror(errno));
		ret = ATEL_EXIT_DATA;
	}
	j->out = stdout;
	if (j->ls.corrupt_frames || j->cl.n || j->ls.invalid_records || j->r.invalid_events)
		ret = ATEL_EXIT_DATA;
	return ret;
}

/* --into DB: an index of PATH with the index writer. @return 0 or ATEL_EXIT_DATA. */
static int replay_into(struct replay_job *j)
{
	const char *segdir = j->path, *base = strrchr(j->path, '/');
	char tmpdir[256] = "", abs[PATH_MAX], lnk[512], err[512] = "";
	int xr, ret = 0;

	if (!j->dir) {
		/* atel__reindex reads a directory: link the one file into a private one */
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/atel-replay-%ld-XXXXXX", (long)getpid());
		if (!mkdtemp(tmpdir) || !realpath(j->path, abs)) {
			cli_err("replay", "--into: cannot stage %s: %s", j->path, strerror(errno));
			return ATEL_EXIT_DATA;
		}
		snprintf(lnk, sizeof(lnk), "%s/%s", tmpdir, base ? base + 1 : j->path);
		if (symlink(abs, lnk) < 0) {
			cli_err("replay", "--into: %s: %s", lnk, strerror(errno));
			rmdir(tmpdir);
			return ATEL_EXIT_DATA;
		}
		segdir = tmpdir;
	}
	xr = atel__reindex_mode(segdir, j->into, 0, err, sizeof(err)); /* for SQL: every row */
	if (xr < 0) {
		cli_err("replay", "--into %s: %s", j->into, err[0] ? err : strerror(-xr));
		ret = ATEL_EXIT_DATA;
	}
	if (tmpdir[0]) {
		unlink(lnk);
		rmdir(tmpdir);
	}
	return ret;
}

static void replay_print_json(const struct replay_job *j, int ret)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "path", j->path);
	cJSON_AddBoolToObject(root, "ok", ret == 0);
	cJSON_AddItemToObject(root, "files", cli_json_u64(j->ls.files));
	cJSON_AddItemToObject(root, "frames", cli_json_u64(j->ls.frames));
	cJSON_AddItemToObject(root, "records", cli_json_u64(j->ls.records));
	cJSON_AddItemToObject(root, "events", cli_json_u64(j->r.events));
	cJSON_AddItemToObject(root, "bytes_compressed", cli_json_u64(j->ls.bytes_compressed));
	cJSON_AddItemToObject(root, "bytes_raw", cli_json_u64(j->ls.bytes_raw));
	cJSON_AddItemToObject(root, "corrupt_frames", cli_json_u64(j->ls.corrupt_frames));
	cJSON_AddItemToObject(root, "invalid_records", cli_json_u64(j->ls.invalid_records));
	cJSON *cj = cJSON_CreateArray();
	for (size_t i = 0; i < j->cl.n; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "file", j->cl.v[i].file);
		cJSON_AddItemToObject(e, "offset", cli_json_u64(j->cl.v[i].offset));
		cJSON_AddStringToObject(e, "reason", j->cl.v[i].why);
		cJSON_AddItemToArray(cj, e);
	}
	cJSON_AddItemToObject(root, "corrupt", cj);
	cJSON *bt = cJSON_CreateObject();
	for (unsigned t = 0; t < 128; t++)
		if (j->ls.by_type[t]) {
			const char *n = atel__log_rec_type_name(t);
			char tmp[16];
			if (!n) {
				snprintf(tmp, sizeof(tmp), "type_%u", t);
				n = tmp;
			}
			cJSON_AddItemToObject(bt, n, cli_json_u64(j->ls.by_type[t]));
		}
	cJSON_AddItemToObject(root, "by_type", bt);
	cJSON *tr = cJSON_CreateObject();
	cJSON_AddItemToObject(tr, "first_ns", j->r.first_ns ? cli_json_u64(j->r.first_ns) : cJSON_CreateNull());
	cJSON_AddItemToObject(tr, "last_ns", j->r.last_ns ? cli_json_u64(j->r.last_ns) : cJSON_CreateNull());
	cJSON_AddItemToObject(root, "time_range", tr);
	cJSON *sj = cJSON_CreateArray();
	for (size_t i = 0; i < j->r.nseries; i++) {
		const struct rseries *s = &j->r.series[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "metric", s->name);
		cJSON_AddItemToObject(e, "labels", cJSON_Parse(s->labels ? s->labels : "{}"));
		cJSON_AddStringToObject(e, "type", atel__metric_type_name(s->mtype));
		cJSON_AddItemToObject(e, "samples", cli_json_u64(s->samples));
		if (s->mtype == ATEL_MT_GAUGE)
			cJSON_AddItemToObject(e, "last", cli_json_num(s->last));
		else
			cJSON_AddItemToObject(e, "sum", cli_json_num(s->sum));
		cJSON_AddItemToArray(sj, e);
	}
	cJSON_AddItemToObject(root, "series", sj);
	cJSON *pj = cJSON_CreateArray();
	for (size_t i = 0; i < j->r.nprods; i++) {
		const struct rprod *p = &j->r.prods[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "pid", p->pid);
		cJSON_AddStringToObject(e, "comm", p->comm);
		cJSON_AddItemToObject(e, "records", cli_json_u64(p->records));
		cJSON_AddNumberToObject(e, "rings", p->nrings);
		cJSON_AddItemToObject(e, "first_ns", cli_json_u64(p->first_ns == UINT64_MAX ? 0 : p->first_ns));
		cJSON_AddItemToObject(e, "last_ns", cli_json_u64(p->last_ns));
		cJSON_AddItemToArray(pj, e);
	}
	cJSON_AddItemToObject(root, "producers", pj);
	cJSON *lj = cJSON_CreateObject();
	for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
		cJSON_AddItemToObject(lj, atel__loss_cause_name(k), cli_json_u64(j->r.losses[k]));
	cJSON_AddItemToObject(lj, "spans", cli_json_u64(j->r.spans_lost));
	cJSON_AddItemToObject(root, "losses", lj);
	cJSON_AddItemToObject(root, "deaths", cli_json_u64(j->r.deaths));
	cJSON *gj = cJSON_CreateArray();
	for (size_t i = 0; i < j->scan.ngaps; i++) {
		const struct atel_segscan_gap *g = &j->scan.gaps[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "file", g->file);
		cJSON_AddItemToObject(e, "offset", cli_json_u64(g->offset));
		cJSON_AddNumberToObject(e, "ring", g->ring);
		cJSON_AddItemToObject(e, "expected_pos", cli_json_u64(g->expected));
		cJSON_AddItemToObject(e, "found_pos", cli_json_u64(g->found));
		if (g->found > g->expected)
			cJSON_AddItemToObject(e, "missing_slots", cli_json_u64(g->found - g->expected));
		else
			cJSON_AddItemToObject(e, "repeated_slots", cli_json_u64(g->expected - g->found));
		cJSON_AddItemToArray(gj, e);
	}
	cJSON_AddItemToObject(root, "gaps", gj);
	cJSON_AddItemToObject(root, "gap_count", cli_json_u64(j->scan.gap_count));
	char *s = cJSON_Print(root);
	cJSON_Delete(root);
	if (s) {
		fputs(s, j->summary);
		fputc('\n', j->summary);
		free(s);
	}
}

static void replay_print_text(const struct cli *c, const struct replay_job *j, int ret)
{
	char b1[32], b2[32], b3[32], t0[40], t1[40];
	fprintf(j->summary, "%s%s%s: %llu file(s), %llu frame(s), %s records, %s compressed -> %s raw\n",
		cli_c(c, C_BOLD), j->path, cli_c(c, C_RESET), (unsigned long long)j->ls.files,
		(unsigned long long)j->ls.frames, atel_q_fmt_count((double)j->ls.records, b1, sizeof(b1)),
		atel_q_fmt_count((double)j->ls.bytes_compressed, b2, sizeof(b2)),
		atel_q_fmt_count((double)j->ls.bytes_raw, b3, sizeof(b3)));
	if (j->r.first_ns) {
		time_t a = (time_t)(j->r.first_ns / 1000000000ull), b = (time_t)(j->r.last_ns / 1000000000ull);
		struct tm tm;
		gmtime_r(&a, &tm);
		strftime(t0, sizeof(t0), "%Y-%m-%dT%H:%M:%SZ", &tm);
		gmtime_r(&b, &tm);
		strftime(t1, sizeof(t1), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(j->summary, "time range: %s .. %s (%s)\n", t0, t1,
			atel_q_fmt_duration(j->r.last_ns - j->r.first_ns, b1, sizeof(b1)));
	}
	if (j->cl.n || j->ls.corrupt_frames || j->ls.invalid_records) {
		fprintf(j->summary, "%sdamage: %llu corrupt frame(s), %llu invalid record(s)%s\n", cli_c(c, C_RED),
			(unsigned long long)j->ls.corrupt_frames, (unsigned long long)j->ls.invalid_records,
			cli_c(c, C_RESET));
		for (size_t i = 0; i < j->cl.n; i++)
			fprintf(j->summary, "  %s offset %llu: %s\n", j->cl.v[i].file, (unsigned long long)j->cl.v[i].offset,
				j->cl.v[i].why);
	} else {
		fprintf(j->summary, "%sall frames valid%s\n", cli_c(c, C_GREEN), cli_c(c, C_RESET));
	}
	const char *h1[] = { "RECORD TYPE", "COUNT" };
	const bool r1[] = { false, true };
	struct table *t = table_new(2, h1, r1);
	for (unsigned k = 0; k < 128; k++)
		if (j->ls.by_type[k]) {
			const char *n = atel__log_rec_type_name(k);
			char tmp[16];
			if (!n) {
				snprintf(tmp, sizeof(tmp), "type_%u", k);
				n = tmp;
			}
			table_rowf(t, "%s\t%llu", n, (unsigned long long)j->ls.by_type[k]);
		}
	fputc('\n', j->summary);
	table_print(t, j->summary, c);
	table_free(t);
	const char *h2[] = { "METRIC", "TYPE", "LABELS", "SAMPLES", "SUM/LAST" };
	const bool r2[] = { false, false, false, true, true };
	t = table_new(5, h2, r2);
	for (size_t i = 0; i < j->r.nseries && i < 40; i++) {
		const struct rseries *s = &j->r.series[i];
		table_rowf(t, "%s\t%s\t%s\t%llu\t%s", s->name, atel__metric_type_name(s->mtype), s->labels ? s->labels : "",
			   (unsigned long long)s->samples,
			   atel_q_fmt_count(s->mtype == ATEL_MT_GAUGE ? s->last : s->sum, b1, sizeof(b1)));
	}
	if (table_rows(t)) {
		fputc('\n', j->summary);
		table_print(t, j->summary, c);
		if (j->r.nseries > 40)
			fprintf(j->summary, "... %zu series in all (--json lists every one)\n", j->r.nseries);
	}
	table_free(t);
	const char *h3[] = { "PID", "COMM", "RINGS", "RECORDS" };
	const bool r3[] = { true, false, true, true };
	t = table_new(4, h3, r3);
	for (size_t i = 0; i < j->r.nprods; i++)
		table_rowf(t, "%d\t%s\t%u\t%llu", j->r.prods[i].pid, j->r.prods[i].comm, j->r.prods[i].nrings,
			   (unsigned long long)j->r.prods[i].records);
	if (table_rows(t)) {
		fputc('\n', j->summary);
		table_print(t, j->summary, c);
	}
	table_free(t);
	uint64_t lost = j->r.spans_lost;
	for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
		lost += j->r.losses[k];
	if (lost) {
		fprintf(j->summary, "\nrecords lost before the log, by cause:");
		for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
			if (j->r.losses[k])
				fprintf(j->summary, " %s=%llu", atel__loss_cause_name(k), (unsigned long long)j->r.losses[k]);
		if (j->r.spans_lost)
			fprintf(j->summary, "; spans dropped whole: %llu", (unsigned long long)j->r.spans_lost);
		fputc('\n', j->summary);
	}
	if (j->r.deaths)
		fprintf(j->summary, "producer deaths: %llu\n", (unsigned long long)j->r.deaths);
	if (j->scan.ngaps) {
		fprintf(j->summary, "\n%sgaps in ring positions: %llu%s\n", cli_c(c, C_YELLOW),
			(unsigned long long)j->scan.gap_count, cli_c(c, C_RESET));
		for (size_t i = 0; i < j->scan.ngaps && i < 50; i++) {
			const struct atel_segscan_gap *g = &j->scan.gaps[i];
			fprintf(j->summary, "  %s offset %llu: ring %u expected position %llu, found %llu\n", g->file,
				(unsigned long long)g->offset, g->ring, (unsigned long long)g->expected,
				(unsigned long long)g->found);
		}
	} else {
		fprintf(j->summary, "\nno gaps in ring positions (%zu ring(s))\n", j->scan.nrings);
	}
	if (j->into && ret == 0)
		fprintf(j->summary, "index rebuilt: %s\n", j->into);
}

static void replay_free(struct replay_job *j)
{
	if (j->out && j->out != stdout)
		fclose(j->out);
	for (size_t i = 0; i < j->r.nseries; i++) {
		free(j->r.series[i].name);
		free(j->r.series[i].labels);
	}
	atel__lossacc_free(j->r.la);
	free(j->r.series);
	free(j->r.slots);
	free(j->r.prods);
	free(j->cl.v);
	atel_segscan_free(&j->scan);
}

int cmd_replay(struct cli *c, int argc, char **argv)
{
	struct replay_job j = { 0 };
	bool fatal = false;
	int ret = replay_parse(&j, argc, argv);

	if (ret)
		return ret < 0 ? 0 : ret;
	if ((ret = replay_open(c, &j)) || ((ret = replay_read(c, &j, &fatal)) && fatal)) {
		replay_free(&j);
		return ret;
	}
	if (j.into && replay_into(&j))
		ret = ATEL_EXIT_DATA;
	if (j.r.nseries > 1)
		qsort(j.r.series, j.r.nseries, sizeof(*j.r.series), cmp_rseries);
	if (j.r.nprods > 1)
		qsort(j.r.prods, j.r.nprods, sizeof(*j.r.prods), cmp_prod);
	if (c->json)
		replay_print_json(&j, ret);
	else
		replay_print_text(c, &j, ret);
	replay_free(&j);
	return ret;
}

static const char reindex_help[] =
	"usage: atel reindex [--force] [--mode compact|full]\n"
	"Rebuilds <data_dir>/telemetry.db from <data_dir>/segments (the log is the truth):\n"
	"a new database is built beside the old one and renamed over it. Refuses while ateld\n"
	"runs on the data directory (stop it first); --force only skips the check of the\n"
	"segment's heartbeat (a stale segment), never a running ateld's lock. --mode: the\n"
	"index.mode to build (default: the old file's, compact when there is none).\n"
	"Exit: 0 ok, 1 usage, 2 no segments / build failed, 4 ateld is running.\n";

int cmd_reindex(struct cli *c, int argc, char **argv)
{
	bool force = false;
	int compact = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(reindex_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc &&
		    (strcmp(argv[i + 1], "compact") == 0 || strcmp(argv[i + 1], "full") == 0)) {
			compact = strcmp(argv[++i], "compact") == 0;
			continue;
		}
		if (strcmp(argv[i], "--force") == 0) {
			force = true;
			continue;
		}
		cli_err("reindex", "unexpected argument %s (see atel reindex --help)", argv[i]);
		return ATEL_EXIT_USAGE;
	}
	int pid = 0;
	bool locked = cli_daemon_lock_held(c, &pid);
	if (locked || (!force && cli_daemon_running(c, &pid, NULL))) {
		/* a running ateld writes telemetry.db: replacing it under ateld loses what ateld writes next */
		cli_err("reindex",
			"ateld (pid %d) is running on %s (segment \"%s\") and writes its telemetry.db; stop it "
			"(kill -TERM %d), then run `atel reindex` again%s",
			pid, c->data_dir, c->shm, pid,
			locked && force ? " (--force does not override a running ateld: it holds ateld.lock)" : "");
		return ATEL_EXIT_DAEMON_UP;
	}
	if (!cli_have_segments(c->seg_dir)) {
		cli_err("reindex", "no segment files in %s", c->seg_dir);
		return ATEL_EXIT_DATA;
	}
	char err[512] = "";
	uint64_t t0 = atel__now_ns();
	int rc = atel__reindex_mode(c->seg_dir, c->db_path, compact, err, sizeof(err));
	if (rc < 0) {
		cli_err("reindex", "%s", err[0] ? err : strerror(-rc));
		return ATEL_EXIT_DATA;
	}
	double secs = (double)(atel__now_ns() - t0) / 1e9;
	if (c->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "db", c->db_path);
		cJSON_AddStringToObject(j, "segments", c->seg_dir);
		cJSON_AddNumberToObject(j, "seconds", secs);
		if (err[0])
			cJSON_AddStringToObject(j, "warning", err);
		cli_print_json(j);
	} else {
		printf("rebuilt %s from %s in %.2f s\n", c->db_path, c->seg_dir, secs);
		if (err[0])
			printf("warning: %s\n", err);
	}
	return 0;
}
