/* SPDX-License-Identifier: MIT */
/*
 * cmd_replay.c - `atel replay PATH` (offline verification and summary of
 * segment files, --emit jsonl, --into DB) and `atel reindex`.
 *
 * Two passes over the files: the log reader (logread.h) decodes every record
 * and reports corrupt frames with file and offset; the frame pass
 * (segscan.h) follows the CHUNK framing to find gaps in ring positions.
 */
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
	uint64_t samples;
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
	uint64_t losses[ATEL_LOSS_CAUSE_MAX + 1];
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
		break;
	}
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

static void account(struct replay *r, const struct atel_event *ev)
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
		s->samples++;
		if (s->mtype == ATEL_MT_GAUGE)
			s->last = ev->sample.set ? ev->sample.value : s->last + ev->sample.value;
		else
			s->last = ev->sample.value;
		s->sum += ev->sample.value;
		break;
	}
	case ATEL_EV_LOSS:
		r->losses[ev->loss.cause <= ATEL_LOSS_CAUSE_MAX ? ev->loss.cause : 0] += ev->loss.count;
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

int cmd_replay(struct cli *c, int argc, char **argv)
{
	const char *path = NULL, *emit = NULL, *outp = NULL, *into = NULL;
	bool progress = true;
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(replay_help, stdout);
			return 0;
		}
		if ((v = cli_opt(argc, argv, &i, "--emit")) != NULL)
			emit = v;
		else if ((v = cli_opt(argc, argv, &i, "-o")) != NULL || (v = cli_opt(argc, argv, &i, "--output")) != NULL)
			outp = v;
		else if ((v = cli_opt(argc, argv, &i, "--into")) != NULL)
			into = v;
		else if (strcmp(argv[i], "--no-progress") == 0)
			progress = false;
		else if (argv[i][0] == '-' && argv[i][1]) {
			cli_err("replay", "unknown option %s (see atel replay --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		} else if (path) {
			cli_err("replay", "one PATH only");
			return ATEL_EXIT_USAGE;
		} else {
			path = argv[i];
		}
	}
	if (!path) {
		cli_err("replay", "missing PATH (a .atseg file or a directory of them)");
		return ATEL_EXIT_USAGE;
	}
	bool emit_raw = emit && strcmp(emit, "raw") == 0;
	if (emit && strcmp(emit, "jsonl") != 0 && !emit_raw) {
		cli_err("replay", "--emit: expected jsonl or raw, got \"%s\"", emit);
		return ATEL_EXIT_USAGE;
	}
	if ((outp && !emit) || (into && !*into) || (outp && !*outp)) {
		cli_err("replay", "-o goes with --emit jsonl or --emit raw");
		return ATEL_EXIT_USAGE;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		cli_err("replay", "%s: %s", path, strerror(errno));
		return ATEL_EXIT_DATA;
	}
	bool dir = S_ISDIR(st.st_mode);
	FILE *out = stdout;
	if (emit_raw && !outp && isatty(STDOUT_FILENO)) {
		cli_err("replay", "--emit raw writes binary records: redirect stdout or use -o FILE");
		return ATEL_EXIT_USAGE;
	}
	if (emit && outp && strcmp(outp, "-") != 0) {
		out = fopen(outp, emit_raw ? "wb" : "w");
		if (!out) {
			cli_err("replay", "%s: %s", outp, strerror(errno));
			return ATEL_EXIT_DATA;
		}
	}
	FILE *summary = emit && out == stdout ? stderr : stdout;
	bool show_progress = progress && !emit && !c->json && isatty(STDERR_FILENO);

	struct corrupt_list cl = { 0 };
	struct atel_log_reader_opts o = {
		.segments_dir = dir ? path : NULL,
		.single_file = dir ? NULL : path,
		.on_corrupt = on_corrupt,
		.arg = &cl,
	};
	struct replay r = { 0 };
	struct atel_segscan scan = { 0 };
	struct atel_log_reader *rd = NULL;
	char err[512] = "";
	int rc = atel__log_open(&rd, &o), ret = 0;
	if (rc < 0) {
		cli_err("replay", "%s: %s", path, strerror(-rc));
		ret = ATEL_EXIT_DATA;
		goto out;
	}
	struct atel_event ev;
	uint64_t next_progress = 0;
	while ((rc = atel__log_next(rd, &ev, NULL)) == 1) {
		account(&r, &ev);
		if (emit && !emit_raw) {
			cJSON *j = event_json(&ev);
			char *line = cJSON_PrintUnformatted(j);
			cJSON_Delete(j);
			if (line) {
				fputs(line, out);
				fputc('\n', out);
				free(line);
			}
		}
		if (show_progress && (r.events & 0xFFFF) == 0) {
			uint64_t now = atel__now_ns();
			if (now >= next_progress) {
				char b[32];
				fprintf(stderr, "\rreplay: %s records, %s", atel_q_fmt_count((double)r.events, b, sizeof(b)),
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
	struct atel_log_read_stats ls;
	atel__log_stats(rd, &ls);
	atel__log_close(rd);
	rd = NULL;
	if (emit_raw)
		scan.raw_out = out;
	if (atel_segscan_path(path, &scan, err, sizeof(err)) < 0) {
		cli_err("replay", "%s", err);
		ret = ATEL_EXIT_DATA;
	}
	if (scan.raw_err || (emit_raw && fflush(out) != 0)) {
		cli_err("replay", "%s: %s", outp ? outp : "stdout", strerror(scan.raw_err ? scan.raw_err : errno));
		ret = ATEL_EXIT_DATA;
	}
	if (emit && out != stdout && fclose(out) != 0) {
		cli_err("replay", "%s: %s", outp, strerror(errno));
		ret = ATEL_EXIT_DATA;
	}
	out = stdout;
	if (ls.corrupt_frames || cl.n || ls.invalid_records || r.invalid_events)
		ret = ATEL_EXIT_DATA;

	if (into) {
		const char *segdir = path;
		char tmpdir[256] = "";
		if (!dir) {
			/* atel__reindex reads a directory: link the one file into a private one */
			snprintf(tmpdir, sizeof(tmpdir), "/tmp/atel-replay-%ld-XXXXXX", (long)getpid());
			char abs[PATH_MAX], lnk[512];
			if (!mkdtemp(tmpdir) || !realpath(path, abs)) {
				cli_err("replay", "--into: cannot stage %s: %s", path, strerror(errno));
				ret = ATEL_EXIT_DATA;
				goto summary;
			}
			const char *base = strrchr(path, '/');
			snprintf(lnk, sizeof(lnk), "%s/%s", tmpdir, base ? base + 1 : path);
			if (symlink(abs, lnk) < 0) {
				cli_err("replay", "--into: %s: %s", lnk, strerror(errno));
				rmdir(tmpdir);
				ret = ATEL_EXIT_DATA;
				goto summary;
			}
			segdir = tmpdir;
		}
		int xr = atel__reindex(segdir, into, err, sizeof(err));
		if (xr < 0) {
			cli_err("replay", "--into %s: %s", into, err[0] ? err : strerror(-xr));
			ret = ATEL_EXIT_DATA;
		}
		if (tmpdir[0]) {
			char lnk[512];
			const char *base = strrchr(path, '/');
			snprintf(lnk, sizeof(lnk), "%s/%s", tmpdir, base ? base + 1 : path);
			unlink(lnk);
			rmdir(tmpdir);
		}
	}
summary:
	if (r.nseries > 1)
		qsort(r.series, r.nseries, sizeof(*r.series), cmp_rseries);
	if (r.nprods > 1)
		qsort(r.prods, r.nprods, sizeof(*r.prods), cmp_prod);
	if (c->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "path", path);
		cJSON_AddBoolToObject(j, "ok", ret == 0);
		cJSON_AddItemToObject(j, "files", cli_json_u64(ls.files));
		cJSON_AddItemToObject(j, "frames", cli_json_u64(ls.frames));
		cJSON_AddItemToObject(j, "records", cli_json_u64(ls.records));
		cJSON_AddItemToObject(j, "events", cli_json_u64(r.events));
		cJSON_AddItemToObject(j, "bytes_compressed", cli_json_u64(ls.bytes_compressed));
		cJSON_AddItemToObject(j, "bytes_raw", cli_json_u64(ls.bytes_raw));
		cJSON_AddItemToObject(j, "corrupt_frames", cli_json_u64(ls.corrupt_frames));
		cJSON_AddItemToObject(j, "invalid_records", cli_json_u64(ls.invalid_records));
		cJSON *cj = cJSON_CreateArray();
		for (size_t i = 0; i < cl.n; i++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddStringToObject(e, "file", cl.v[i].file);
			cJSON_AddItemToObject(e, "offset", cli_json_u64(cl.v[i].offset));
			cJSON_AddStringToObject(e, "reason", cl.v[i].why);
			cJSON_AddItemToArray(cj, e);
		}
		cJSON_AddItemToObject(j, "corrupt", cj);
		cJSON *bt = cJSON_CreateObject();
		for (unsigned t = 0; t < 128; t++)
			if (ls.by_type[t]) {
				const char *n = atel__log_rec_type_name(t);
				char tmp[16];
				if (!n) {
					snprintf(tmp, sizeof(tmp), "type_%u", t);
					n = tmp;
				}
				cJSON_AddItemToObject(bt, n, cli_json_u64(ls.by_type[t]));
			}
		cJSON_AddItemToObject(j, "by_type", bt);
		cJSON *tr = cJSON_CreateObject();
		cJSON_AddItemToObject(tr, "first_ns", r.first_ns ? cli_json_u64(r.first_ns) : cJSON_CreateNull());
		cJSON_AddItemToObject(tr, "last_ns", r.last_ns ? cli_json_u64(r.last_ns) : cJSON_CreateNull());
		cJSON_AddItemToObject(j, "time_range", tr);
		cJSON *sj = cJSON_CreateArray();
		for (size_t i = 0; i < r.nseries; i++) {
			const struct rseries *s = &r.series[i];
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
		cJSON_AddItemToObject(j, "series", sj);
		cJSON *pj = cJSON_CreateArray();
		for (size_t i = 0; i < r.nprods; i++) {
			const struct rprod *p = &r.prods[i];
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "pid", p->pid);
			cJSON_AddStringToObject(e, "comm", p->comm);
			cJSON_AddItemToObject(e, "records", cli_json_u64(p->records));
			cJSON_AddNumberToObject(e, "rings", p->nrings);
			cJSON_AddItemToObject(e, "first_ns", cli_json_u64(p->first_ns == UINT64_MAX ? 0 : p->first_ns));
			cJSON_AddItemToObject(e, "last_ns", cli_json_u64(p->last_ns));
			cJSON_AddItemToArray(pj, e);
		}
		cJSON_AddItemToObject(j, "producers", pj);
		cJSON *lj = cJSON_CreateObject();
		for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
			cJSON_AddItemToObject(lj, atel__loss_cause_name(k), cli_json_u64(r.losses[k]));
		cJSON_AddItemToObject(j, "losses", lj);
		cJSON_AddItemToObject(j, "deaths", cli_json_u64(r.deaths));
		cJSON *gj = cJSON_CreateArray();
		for (size_t i = 0; i < scan.ngaps; i++) {
			const struct atel_segscan_gap *g = &scan.gaps[i];
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
		cJSON_AddItemToObject(j, "gaps", gj);
		cJSON_AddItemToObject(j, "gap_count", cli_json_u64(scan.gap_count));
		char *s = cJSON_Print(j);
		cJSON_Delete(j);
		if (s) {
			fputs(s, summary);
			fputc('\n', summary);
			free(s);
		}
	} else {
		char b1[32], b2[32], b3[32], t0[40], t1[40];
		fprintf(summary, "%s%s%s: %llu file(s), %llu frame(s), %s records, %s compressed -> %s raw\n",
			cli_c(c, C_BOLD), path, cli_c(c, C_RESET), (unsigned long long)ls.files,
			(unsigned long long)ls.frames, atel_q_fmt_count((double)ls.records, b1, sizeof(b1)),
			atel_q_fmt_count((double)ls.bytes_compressed, b2, sizeof(b2)),
			atel_q_fmt_count((double)ls.bytes_raw, b3, sizeof(b3)));
		if (r.first_ns) {
			time_t a = (time_t)(r.first_ns / 1000000000ull), b = (time_t)(r.last_ns / 1000000000ull);
			struct tm tm;
			gmtime_r(&a, &tm);
			strftime(t0, sizeof(t0), "%Y-%m-%dT%H:%M:%SZ", &tm);
			gmtime_r(&b, &tm);
			strftime(t1, sizeof(t1), "%Y-%m-%dT%H:%M:%SZ", &tm);
			fprintf(summary, "time range: %s .. %s (%s)\n", t0, t1,
				atel_q_fmt_duration(r.last_ns - r.first_ns, b1, sizeof(b1)));
		}
		if (cl.n || ls.corrupt_frames || ls.invalid_records) {
			fprintf(summary, "%sdamage: %llu corrupt frame(s), %llu invalid record(s)%s\n", cli_c(c, C_RED),
				(unsigned long long)ls.corrupt_frames, (unsigned long long)ls.invalid_records,
				cli_c(c, C_RESET));
			for (size_t i = 0; i < cl.n; i++)
				fprintf(summary, "  %s offset %llu: %s\n", cl.v[i].file, (unsigned long long)cl.v[i].offset,
					cl.v[i].why);
		} else {
			fprintf(summary, "%sall frames valid%s\n", cli_c(c, C_GREEN), cli_c(c, C_RESET));
		}
		const char *h1[] = { "RECORD TYPE", "COUNT" };
		const bool r1[] = { false, true };
		struct table *t = table_new(2, h1, r1);
		for (unsigned k = 0; k < 128; k++)
			if (ls.by_type[k]) {
				const char *n = atel__log_rec_type_name(k);
				char tmp[16];
				if (!n) {
					snprintf(tmp, sizeof(tmp), "type_%u", k);
					n = tmp;
				}
				table_rowf(t, "%s\t%llu", n, (unsigned long long)ls.by_type[k]);
			}
		fputc('\n', summary);
		table_print(t, summary, c);
		table_free(t);
		const char *h2[] = { "METRIC", "TYPE", "LABELS", "SAMPLES", "SUM/LAST" };
		const bool r2[] = { false, false, false, true, true };
		t = table_new(5, h2, r2);
		for (size_t i = 0; i < r.nseries && i < 40; i++) {
			const struct rseries *s = &r.series[i];
			table_rowf(t, "%s\t%s\t%s\t%llu\t%s", s->name, atel__metric_type_name(s->mtype), s->labels ? s->labels : "",
				   (unsigned long long)s->samples,
				   atel_q_fmt_count(s->mtype == ATEL_MT_GAUGE ? s->last : s->sum, b1, sizeof(b1)));
		}
		if (table_rows(t)) {
			fputc('\n', summary);
			table_print(t, summary, c);
			if (r.nseries > 40)
				fprintf(summary, "... %zu series in all (--json lists every one)\n", r.nseries);
		}
		table_free(t);
		const char *h3[] = { "PID", "COMM", "RINGS", "RECORDS" };
		const bool r3[] = { true, false, true, true };
		t = table_new(4, h3, r3);
		for (size_t i = 0; i < r.nprods; i++)
			table_rowf(t, "%d\t%s\t%u\t%llu", r.prods[i].pid, r.prods[i].comm, r.prods[i].nrings,
				   (unsigned long long)r.prods[i].records);
		if (table_rows(t)) {
			fputc('\n', summary);
			table_print(t, summary, c);
		}
		table_free(t);
		uint64_t lost = 0;
		for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
			lost += r.losses[k];
		if (lost) {
			fprintf(summary, "\nlosses reported by producers:");
			for (uint32_t k = 1; k <= ATEL_LOSS_CAUSE_MAX; k++)
				if (r.losses[k])
					fprintf(summary, " %s=%llu", atel__loss_cause_name(k), (unsigned long long)r.losses[k]);
			fputc('\n', summary);
		}
		if (r.deaths)
			fprintf(summary, "producer deaths: %llu\n", (unsigned long long)r.deaths);
		if (scan.ngaps) {
			fprintf(summary, "\n%sgaps in ring positions: %llu%s\n", cli_c(c, C_YELLOW),
				(unsigned long long)scan.gap_count, cli_c(c, C_RESET));
			for (size_t i = 0; i < scan.ngaps && i < 50; i++) {
				const struct atel_segscan_gap *g = &scan.gaps[i];
				fprintf(summary, "  %s offset %llu: ring %u expected position %llu, found %llu\n", g->file,
					(unsigned long long)g->offset, g->ring, (unsigned long long)g->expected,
					(unsigned long long)g->found);
			}
		} else {
			fprintf(summary, "\nno gaps in ring positions (%zu ring(s))\n", scan.nrings);
		}
		if (into && ret == 0)
			fprintf(summary, "index rebuilt: %s\n", into);
	}
out:
	if (out != stdout && out)
		fclose(out);
	atel__log_close(rd);
	for (size_t i = 0; i < r.nseries; i++) {
		free(r.series[i].name);
		free(r.series[i].labels);
	}
	free(r.series);
	free(r.slots);
	free(r.prods);
	free(cl.v);
	atel_segscan_free(&scan);
	return ret;
}

static const char reindex_help[] =
	"usage: atel reindex [--force]\n"
	"Rebuilds <data_dir>/telemetry.db from <data_dir>/segments (the log is the truth):\n"
	"a new database is built beside the old one and renamed over it. Refuses while ateld\n"
	"runs (stop it, or run `ateld --reindex`); --force skips that check.\n"
	"Exit: 0 ok, 1 usage, 2 no segments / build failed, 4 ateld is running.\n";

int cmd_reindex(struct cli *c, int argc, char **argv)
{
	bool force = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(reindex_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--force") == 0) {
			force = true;
			continue;
		}
		cli_err("reindex", "unexpected argument %s (see atel reindex --help)", argv[i]);
		return ATEL_EXIT_USAGE;
	}
	int pid = 0;
	if (!force && cli_daemon_running(c, &pid, NULL)) {
		cli_err("reindex", "ateld (pid %d) is running on shm \"%s\"; stop it first or use ateld --reindex", pid,
			c->shm);
		return ATEL_EXIT_DAEMON_UP;
	}
	if (!cli_have_segments(c->seg_dir)) {
		cli_err("reindex", "no segment files in %s", c->seg_dir);
		return ATEL_EXIT_DATA;
	}
	char err[512] = "";
	uint64_t t0 = atel__now_ns();
	int rc = atel__reindex(c->seg_dir, c->db_path, err, sizeof(err));
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
