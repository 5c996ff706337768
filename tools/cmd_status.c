/* SPDX-License-Identifier: MIT */
/*
 * cmd_status.c - `atel status` (sidecar health from the shared-memory header
 * and ring directory, which are live, plus ateld's status file for what only
 * the daemon knows: drain/log statistics, io path, exporter health) and
 * `atel clear`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jsonint.h"
#include "query.h"
#include "segment.h"
#include "sigbus.h"

#define NS 1000000000ull

static const char *ring_state(uint32_t s)
{
	switch (s) {
	case ATEL_RING_FREE: return "free";
	case ATEL_RING_CLAIMING: return "claiming";
	case ATEL_RING_ACTIVE: return "active";
	case ATEL_RING_DRAINING: return "draining";
	case ATEL_RING_QUARANTINED: return "quarantined";
	default: return "?";
	}
}

/* ateld holds an exclusive flock on <data_dir>/ateld.lock for its whole life. */
static bool lock_held(const struct cli *c, int *pid)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/ateld.lock", c->data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	if (!held)
		flock(fd, LOCK_UN);
	if (held && pid) {
		char buf[32] = { 0 };
		if (read(fd, buf, sizeof(buf) - 1) > 0)
			*pid = atoi(buf);
	}
	close(fd);
	return held;
}

bool cli_daemon_lock_held(const struct cli *c, int *pid)
{
	return lock_held(c, pid);
}

bool cli_daemon_running(const struct cli *c, int *pid, uint64_t *hb_age_ns)
{
	struct atel_segment seg;
	char err[256];
	bool up = false;
	if (pid)
		*pid = 0;
	if (hb_age_ns)
		*hb_age_ns = UINT64_MAX;
	if (atel__segment_attach(&seg, c->shm, err, sizeof(err)) == 0) {
		int p = seg.hdr->consumer_pid;
		uint64_t hb = atomic_load_explicit(&seg.hdr->heartbeat_ns, memory_order_relaxed);
		uint64_t now = atel__now_ns();
		uint64_t age = now > hb ? now - hb : 0;
		if (pid)
			*pid = p;
		if (hb_age_ns)
			*hb_age_ns = age;
		up = p > 0 && atel__proc_alive(p, seg.hdr->consumer_start) && age < 5 * NS;
		atel__segment_detach(&seg);
	}
	int lp = 0;
	if (lock_held(c, &lp)) {
		if (pid && !*pid)
			*pid = lp;
		up = true;
	}
	return up;
}

static cJSON *read_status_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 16384;
			char *nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		size_t r = fread(buf + len, 1, 4096, f);
		len += r;
		if (r < 4096)
			break;
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[len] = 0;
	char *marked = cli_json_mark_big_ints(buf);
	cJSON *j = cJSON_Parse(marked ? marked : buf);
	free(marked);
	free(buf);
	cli_json_unmark_big_ints(j);
	return j;
}

static uint64_t jnum(const cJSON *o, const char *k)
{
	double v = cli_json_get(o, k);
	return v > 0 ? (uint64_t)v : 0;
}

static uint64_t dir_usage(const char *path, uint64_t *files, const char *suffix)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	uint64_t total = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char p[4400];
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		struct stat st;
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			total += dir_usage(p, NULL, NULL);
			continue;
		}
		size_t l = strlen(e->d_name), sl = suffix ? strlen(suffix) : 0;
		if (files && (!suffix || (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)))
			(*files)++;
		total += (uint64_t)st.st_blocks * 512u;
	}
	closedir(d);
	return total;
}

static const char *ago(uint64_t ts, uint64_t now, char *buf, size_t len)
{
	if (!ts)
		return "never";
	char d[24];
	atel_q_fmt_duration(now > ts ? now - ts : 0, d, sizeof(d));
	snprintf(buf, len, "%.20s ago", d);
	return buf;
}

static const char status_help[] =
	"usage: atel status [--json]\n"
	"Is ateld up (its lock on <data_dir>/ateld.lock, the consumer pid and heartbeat in the\n"
	"shared-memory header), its rings (owner pid/tid/command, state, lag, drops by cause),\n"
	"records and bytes written, drops by cause, segments, io path (io_uring or pwritev),\n"
	"indexer lag, exporter health (last success, last error) and disk use. Live ring data\n"
	"comes from shared memory; daemon statistics from <data_dir>/ateld.status.json.\n"
	"Exit: 0 ateld up, 3 ateld not running (the report is still printed).\n";

/* What `atel status` found: the daemon, its shared-memory segment, the data dir. */
struct status_view {
	uint64_t now, hb_age, sf_hb;
	int pid;
	bool up, attached;
	struct atel_segment seg;         /* valid if attached */
	cJSON *sf;                       /* the status file, or NULL */
	const cJSON *sf_state;
	cJSON *root, *rings;             /* the --json document */
	uint32_t in_use, ring_count;
	uint64_t lag_total, drops_full, drops_nodef, drops_invalid;
	uint64_t seg_files, seg_bytes, db_bytes, disk;
	uint64_t ix_samples, ix_spans;   /* telemetry_segments: what the indexed files hold */
};

/* Samples and spans the index counted in segment files (telemetry_segments;
 * an index without the table, or no index, leaves 0). Rows of files that
 * retention removed are left out by taking only file_seq >= the oldest file
 * on disk, so the counts match the bytes they are divided into. */
static void status_counts(const struct cli *c, struct status_view *v)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char err[256];
	uint64_t oldest = UINT64_MAX;
	DIR *d = opendir(c->seg_dir);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		char *end;
		unsigned long long seq = strtoull(de->d_name, &end, 16);
		if (end != de->d_name && strcmp(end, ".atseg") == 0 && seq < oldest)
			oldest = seq;
	}
	if (d)
		closedir(d);
	if (oldest == UINT64_MAX || cli_db_open_ro(c, &db, err, sizeof(err)) < 0)
		return;
	if (sqlite3_prepare_v2(db, "SELECT sum(samples), sum(spans) FROM telemetry_segments WHERE file_seq >= ?1", -1,
			       &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)oldest);
		if (sqlite3_step(st) == SQLITE_ROW) {
			v->ix_samples = (uint64_t)sqlite3_column_int64(st, 0);
			v->ix_spans = (uint64_t)sqlite3_column_int64(st, 1);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* @return 0, -1 (--help was printed) or ATEL_EXIT_USAGE. */
static int status_parse(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(status_help, stdout);
			return -1;
		}
		cli_err("status", "unexpected argument %s (see atel status --help)", argv[i]);
		return ATEL_EXIT_USAGE;
	}
	return 0;
}

/* Looks at the lock, the status file, the segment and the data dir; builds the --json document. */
static void status_gather(struct cli *c, struct status_view *v)
{
	v->now = atel__now_ns();
	int lpid = 0;
	bool locked = lock_held(c, &lpid);
	v->sf = read_status_file(c->status_path);
	if (!c->shm_explicit && v->sf && c->shm != c->shm_buf) {
		/* no --shm/$ATEL_SHM and no running ateld: show the segment a stopped one used */
		const cJSON *sh = cJSON_GetObjectItem(v->sf, "shm");
		const cJSON *nm = sh ? cJSON_GetObjectItem(sh, "name") : NULL;
		if (cJSON_IsString(nm) && nm->valuestring[0] && strlen(nm->valuestring) < sizeof(c->shm_buf)) {
			snprintf(c->shm_buf, sizeof(c->shm_buf), "%s", nm->valuestring);
			c->shm = c->shm_buf;
			c->shm_from = "the status file of a stopped ateld";
		}
	}
	char err[256];
	v->attached = atel__segment_attach(&v->seg, c->shm, err, sizeof(err)) == 0;
	if (v->attached) /* truncated under us while we read it (issue 12.3): zeros, not SIGBUS */
		(void)atel__sigbus_guard(v->seg.base, v->seg.size);
	int cpid = 0;
	bool alive = false;

	v->hb_age = UINT64_MAX;
	v->root = cJSON_CreateObject();
	v->rings = cJSON_CreateArray();
	if (v->attached) {
		cpid = v->seg.hdr->consumer_pid;
		uint64_t hb = atomic_load_explicit(&v->seg.hdr->heartbeat_ns, memory_order_relaxed);
		v->hb_age = v->now > hb ? v->now - hb : 0;
		alive = cpid > 0 && atel__proc_alive(cpid, v->seg.hdr->consumer_start);
		v->ring_count = v->seg.ring_count;
		for (uint32_t r = 0; r < v->seg.ring_count; r++) {
			struct atel_ring_desc *d = atel__seg_desc(&v->seg, r);
			uint32_t st = atomic_load_explicit(&d->state, memory_order_acquire);
			uint64_t head = atomic_load_explicit(&d->head, memory_order_relaxed);
			uint64_t tail = atomic_load_explicit(&d->tail, memory_order_relaxed);
			uint64_t df = atomic_load_explicit(&d->drops_full, memory_order_relaxed);
			uint64_t dn = atomic_load_explicit(&d->drops_nodef, memory_order_relaxed);
			uint64_t di = atomic_load_explicit(&d->drops_invalid, memory_order_relaxed);
			v->drops_full += df;
			v->drops_nodef += dn;
			v->drops_invalid += di;
			if (st == ATEL_RING_FREE && head == tail)
				continue;
			v->in_use += st != ATEL_RING_FREE;
			uint64_t lag = head >= tail ? head - tail : 0;
			v->lag_total += lag;
			char comm[32];
			int pid = __atomic_load_n(&d->owner_pid, __ATOMIC_RELAXED);
			int tid = __atomic_load_n(&d->owner_tid, __ATOMIC_RELAXED);
			uint64_t start = __atomic_load_n(&d->owner_start, __ATOMIC_RELAXED);
			atel__owner_comm(st == ATEL_RING_FREE ? 0 : pid, tid, start, comm, sizeof(comm));
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "ring", r);
			cJSON_AddStringToObject(o, "state", ring_state(st));
			cJSON_AddNumberToObject(o, "pid", pid);
			cJSON_AddNumberToObject(o, "tid", tid);
			cJSON_AddStringToObject(o, "comm", comm);
			cJSON_AddItemToObject(o, "lag", cli_json_u64(lag));
			cJSON_AddItemToObject(o, "drops_full", cli_json_u64(df));
			cJSON_AddItemToObject(o, "drops_nodef", cli_json_u64(dn));
			cJSON_AddItemToObject(o, "drops_invalid", cli_json_u64(di));
			cJSON_AddItemToArray(v->rings, o);
		}
	}
	v->sf_hb = v->sf ? jnum(v->sf, "heartbeat_ns") : 0;
	v->sf_state = v->sf ? cJSON_GetObjectItem(v->sf, "state") : NULL;
	v->up = locked || (v->attached && alive && v->hb_age < 5 * NS);
	v->pid = cpid ? cpid : lpid ? lpid : (int)(v->sf ? jnum(v->sf, "pid") : 0);
	v->seg_bytes = dir_usage(c->seg_dir, &v->seg_files, ".atseg");
	v->disk = dir_usage(c->data_dir, NULL, NULL);
	struct stat dbst;
	v->db_bytes = stat(c->db_path, &dbst) == 0 ? (uint64_t)dbst.st_size : 0;
	char walp[4200];
	snprintf(walp, sizeof(walp), "%s-wal", c->db_path);
	if (stat(walp, &dbst) == 0)
		v->db_bytes += (uint64_t)dbst.st_size;
	status_counts(c, v);

	cJSON_AddBoolToObject(v->root, "up", v->up);
	cJSON_AddNumberToObject(v->root, "pid", v->pid);
	cJSON_AddStringToObject(v->root, "data_dir", c->data_dir);
	cJSON_AddStringToObject(v->root, "shm", c->shm);
	cJSON_AddStringToObject(v->root, "shm_from", c->shm_from);
	cJSON_AddBoolToObject(v->root, "shm_attached", v->attached);
	if (v->attached)
		cJSON_AddItemToObject(v->root, "heartbeat_age_ns", cli_json_u64(v->hb_age));
	else
		cJSON_AddNullToObject(v->root, "heartbeat_age_ns");
	cJSON_AddNumberToObject(v->root, "rings_total", v->ring_count);
	cJSON_AddNumberToObject(v->root, "rings_in_use", v->in_use);
	cJSON_AddItemToObject(v->root, "lag_records", cli_json_u64(v->lag_total));
	cJSON *pd = cJSON_CreateObject();
	cJSON_AddItemToObject(pd, "ring_full", cli_json_u64(v->drops_full));
	cJSON_AddItemToObject(pd, "no_def", cli_json_u64(v->drops_nodef));
	cJSON_AddItemToObject(pd, "invalid", cli_json_u64(v->drops_invalid));
	cJSON_AddItemToObject(pd, "no_ring",
			      cli_json_u64(v->attached ? atomic_load_explicit(&v->seg.hdr->drops_no_ring, memory_order_relaxed) : 0));
	cJSON_AddItemToObject(v->root, "producer_drops", pd);
	cJSON_AddItemToObject(v->root, "rings", v->rings);
	cJSON *segj = cJSON_CreateObject();
	cJSON_AddItemToObject(segj, "files", cli_json_u64(v->seg_files));
	cJSON_AddItemToObject(segj, "bytes", cli_json_u64(v->seg_bytes));
	cJSON_AddItemToObject(v->root, "segments", segj);
	cJSON_AddItemToObject(v->root, "db_bytes", cli_json_u64(v->db_bytes));
	cJSON_AddItemToObject(v->root, "disk_bytes", cli_json_u64(v->disk));
	cJSON *cj = cJSON_CreateObject(); /* segments + index bytes over what the index counted in the files */
	cJSON_AddItemToObject(cj, "samples", cli_json_u64(v->ix_samples));
	cJSON_AddItemToObject(cj, "spans", cli_json_u64(v->ix_spans));
	if (v->ix_samples)
		cJSON_AddNumberToObject(cj, "bytes_per_sample", (double)(v->seg_bytes + v->db_bytes) / (double)v->ix_samples);
	else
		cJSON_AddNullToObject(cj, "bytes_per_sample");
	if (v->ix_spans)
		cJSON_AddNumberToObject(cj, "bytes_per_span", (double)(v->seg_bytes + v->db_bytes) / (double)v->ix_spans);
	else
		cJSON_AddNullToObject(cj, "bytes_per_span");
	cJSON_AddItemToObject(v->root, "disk_cost", cj);
	if (v->sf)
		cJSON_AddItemReferenceToObject(v->root, "daemon", v->sf);
	else
		cJSON_AddNullToObject(v->root, "daemon");
}

static void status_print_text(const struct cli *c, const struct status_view *v)
{
	char b1[32], b2[32], b3[32];
	if (v->up)
		printf("ateld: %sup%s (pid %d", cli_c(c, C_GREEN), cli_c(c, C_RESET), v->pid);
	else
		printf("ateld: %sdown%s (", cli_c(c, C_RED), cli_c(c, C_RESET));
	if (v->attached)
		printf("%sheartbeat %s", v->up ? ", " : "", ago(v->now - v->hb_age, v->now, b1, sizeof(b1)));
	else
		printf("%sno shared-memory segment \"%s\"", v->up ? ", " : "", c->shm);
	if (v->sf_state && cJSON_IsString(v->sf_state))
		printf(", state %s", v->sf_state->valuestring);
	if (v->sf && cJSON_IsString(cJSON_GetObjectItem(v->sf, "reason")))
		printf(", reason: %s", cJSON_GetObjectItem(v->sf, "reason")->valuestring);
	else if (v->sf_hb)
		printf(", status file written %s", ago(v->sf_hb, v->now, b2, sizeof(b2)));
	printf(")\n");
	printf("data dir: %s   shm: %s (from %s)\n", c->data_dir, c->shm, c->shm_from);
	if (v->sf) {
		const cJSON *st = cJSON_GetObjectItem(v->sf, "stats");
		const cJSON *io = cJSON_GetObjectItem(v->sf, "io_path");
		const cJSON *enc = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(v->sf, "config"), "storage"),
						       "encoding");
		printf("io path: %s   encoding: %s   current segment: %s\n",
		       cJSON_IsString(io) && io->valuestring[0] ? io->valuestring : "-",
		       cJSON_IsString(enc) ? enc->valuestring : "records",
		       cJSON_IsString(cJSON_GetObjectItem(v->sf, "current_segment"))
			       ? cJSON_GetObjectItem(v->sf, "current_segment")->valuestring
			       : "-");
		if (st) {
			char nb[6][32];
			printf("records drained %s, invalid %s, written %s compressed (%s raw), frames %s, "
			       "write errors %s\n",
			       atel_q_fmt_count((double)jnum(st, "records_drained"), nb[0], 32),
			       atel_q_fmt_count((double)jnum(st, "records_invalid"), nb[1], 32),
			       atel_q_fmt_count((double)jnum(st, "bytes_written"), nb[2], 32),
			       atel_q_fmt_count((double)jnum(st, "bytes_raw"), nb[3], 32),
			       atel_q_fmt_count((double)jnum(st, "frames_written"), nb[4], 32),
			       atel_q_fmt_count((double)jnum(st, "write_errors"), nb[5], 32));
			const cJSON *dr = cJSON_GetObjectItem(st, "drops");
			if (cJSON_IsObject(dr)) {
				printf("drops by cause:");
				const cJSON *e;
				cJSON_ArrayForEach(e, dr) printf(" %s=%s", e->string,
								 atel_q_fmt_count(e->valuedouble, b1, sizeof(b1)));
				printf("\n");
			}
			printf("ring lag max %s, oldest unread %s, producers reclaimed %s, rings quarantined %s\n",
			       atel_q_fmt_count((double)jnum(st, "ring_lag_max"), nb[0], 32),
			       atel_q_fmt_duration(jnum(st, "oldest_unread_ns"), nb[1], 32),
			       atel_q_fmt_count((double)jnum(st, "producers_reclaimed"), nb[2], 32),
			       atel_q_fmt_count((double)jnum(st, "rings_quarantined"), nb[3], 32));
		}
		if (st) { /* hardening (issue 12) */
			char hb[8][32];
			printf("hardening: implausible records %s, damaged rings %s, log tail cuts %s, index reopened %s, "
			       "segment header %s (repairs %s), index %s (pauses %s), data free %s bytes\n",
			       atel_q_fmt_count((double)jnum(st, "records_implausible"), hb[0], 32),
			       atel_q_fmt_count((double)jnum(st, "rings_damaged"), hb[1], 32),
			       atel_q_fmt_count((double)jnum(st, "log_tail_cuts"), hb[2], 32),
			       atel_q_fmt_count((double)jnum(st, "index_reopened"), hb[3], 32),
			       jnum(st, "segment_header_ok") ? "ok" : "DAMAGED",
			       atel_q_fmt_count((double)jnum(st, "segment_header_repairs"), hb[4], 32),
			       jnum(st, "index_paused") ? "PAUSED for disk space" : "running",
			       atel_q_fmt_count((double)jnum(st, "index_pauses"), hb[5], 32),
			       atel_q_fmt_count((double)jnum(st, "data_free_bytes"), hb[6], 32));
			printf("http: connections evicted at the cap %s, refused for a remote address's share %s\n",
			       atel_q_fmt_count((double)jnum(st, "http_conns_evicted"), hb[7], 32),
			       atel_q_fmt_count((double)jnum(st, "http_conns_refused_remote"), hb[6], 32));
			/* truncated shm segment (issue 12.3) */
			printf("segment truncations %s%s\n",
			       atel_q_fmt_count((double)jnum(st, "segment_truncations"), hb[5], 32),
			       jnum(st, "segment_truncated") ? ": TRUNCATED, ateld is not draining (restart it)" : "");
		}
		if (st && cJSON_GetObjectItem(st, "compact_files")) { /* the compactor (docs/segment-format.md 9) */
			double before = (double)jnum(st, "compact_bytes_before"), after = (double)jnum(st, "compact_bytes_after");
			printf("compaction: %" PRIu64 " files, %.1f MB -> %.1f MB (%+.0f%%), %" PRIu64 " pending, %" PRIu64
			       " failed\n",
			       jnum(st, "compact_files"), before / 1e6, after / 1e6,
			       before > 0 ? (after - before) * 100.0 / before : 0.0, jnum(st, "compact_pending"),
			       jnum(st, "compact_failures"));
		}
		const cJSON *ix = cJSON_GetObjectItem(v->sf, "indexer");
		if (ix)
			printf("indexer: %s, lag %s records, %s rows\n",
			       cJSON_IsTrue(cJSON_GetObjectItem(ix, "running")) ? "running" : "stopped",
			       atel_q_fmt_count((double)jnum(ix, "lag_records"), b1, sizeof(b1)),
			       atel_q_fmt_count((double)jnum(ix, "rows"), b2, sizeof(b2)));
	}
	char nb[5][32];
	printf("rings: %u of %u in use, %s records waiting; producer drops: ring full %s, no def %s, "
	       "invalid %s, no ring %s\n",
	       v->in_use, v->ring_count, atel_q_fmt_count((double)v->lag_total, nb[0], 32),
	       atel_q_fmt_count((double)v->drops_full, nb[1], 32), atel_q_fmt_count((double)v->drops_nodef, nb[2], 32),
	       atel_q_fmt_count((double)v->drops_invalid, nb[3], 32),
	       atel_q_fmt_count(v->attached ? (double)atomic_load_explicit(&v->seg.hdr->drops_no_ring,
									 memory_order_relaxed)
					      : 0,
				nb[4], 32));
	if (cJSON_GetArraySize(v->rings) > 0) {
		const char *h[] = { "RING", "STATE", "PID", "TID", "COMM", "LAG", "DROPS FULL", "NODEF", "INVALID" };
		const bool right[] = { true, false, true, true, false, true, true, true, true };
		struct table *t = table_new(9, h, right);
		const cJSON *o;
		cJSON_ArrayForEach(o, v->rings)
		{
			table_rowf(t, "%d\t%s\t%d\t%d\t%s\t%llu\t%llu\t%llu\t%llu",
				   cJSON_GetObjectItem(o, "ring")->valueint,
				   cJSON_GetObjectItem(o, "state")->valuestring, cJSON_GetObjectItem(o, "pid")->valueint,
				   cJSON_GetObjectItem(o, "tid")->valueint, cJSON_GetObjectItem(o, "comm")->valuestring,
				   (unsigned long long)jnum(o, "lag"), (unsigned long long)jnum(o, "drops_full"),
				   (unsigned long long)jnum(o, "drops_nodef"), (unsigned long long)jnum(o, "drops_invalid"));
		}
		table_print(t, stdout, c);
		table_free(t);
	}
	const cJSON *ex = v->sf ? cJSON_GetObjectItem(v->sf, "exporters") : NULL;
	if (cJSON_IsObject(ex)) {
		const char *h[] = { "EXPORTER", "ENABLED", "ATTEMPTS", "FAILURES", "LAST SUCCESS", "LAST ERROR" };
		const bool right[] = { false, false, true, true, false, false };
		struct table *t = table_new(6, h, right);
		const cJSON *e;
		cJSON_ArrayForEach(e, ex)
		{
			const cJSON *le = cJSON_GetObjectItem(e, "last_error");
			table_rowf(t, "%s\t%s\t%llu\t%llu\t%s\t%s", e->string,
				   cJSON_IsTrue(cJSON_GetObjectItem(e, "enabled")) ? "yes" : "no",
				   (unsigned long long)jnum(e, "attempts"), (unsigned long long)jnum(e, "failures"),
				   ago(jnum(e, "last_success_ns"), v->now, b1, sizeof(b1)),
				   cJSON_IsString(le) && le->valuestring[0] ? le->valuestring : "-");
		}
		printf("\n");
		table_print(t, stdout, c);
		table_free(t);
	}
	{
		const cJSON *rw = v->sf ? cJSON_GetObjectItem(v->sf, "remote_write") : NULL;
		const cJSON *rx = v->sf ? cJSON_GetObjectItem(v->sf, "otlp_receiver") : NULL;
		char b4[32];

		if (cJSON_IsTrue(cJSON_GetObjectItem(rw, "enabled")))
			printf("\nremote write: %s samples sent, %s dropped (refused with 4xx), %s pending; requests: "
			       "%llu ok, %llu failed (retried), %llu dropped; newest sample sent %s\n",
			       atel_q_fmt_count((double)jnum(rw, "samples_sent"), b1, sizeof(b1)),
			       atel_q_fmt_count((double)jnum(rw, "samples_dropped"), b2, sizeof(b2)),
			       atel_q_fmt_count((double)jnum(rw, "pending_samples"), b3, sizeof(b3)),
			       (unsigned long long)jnum(rw, "requests_ok"), (unsigned long long)jnum(rw, "requests_failed"),
			       (unsigned long long)jnum(rw, "requests_dropped"),
			       ago(jnum(rw, "last_sent_ms") * 1000000ull, v->now, b4, sizeof(b4)));
		if (cJSON_IsTrue(cJSON_GetObjectItem(rx, "enabled"))) {
			const cJSON *req = cJSON_GetObjectItem(rx, "requests"), *e;

			printf("%sotlp receiver: spans %s accepted, %llu rejected; data points %s accepted, %llu rejected; "
			       "requests:",
			       cJSON_IsTrue(cJSON_GetObjectItem(rw, "enabled")) ? "" : "\n",
			       atel_q_fmt_count((double)jnum(rx, "spans_accepted"), b1, sizeof(b1)),
			       (unsigned long long)jnum(rx, "spans_rejected"),
			       atel_q_fmt_count((double)jnum(rx, "data_points_accepted"), b2, sizeof(b2)),
			       (unsigned long long)jnum(rx, "data_points_rejected"));
			if (!cJSON_GetArraySize(req))
				printf(" none");
			cJSON_ArrayForEach(e, req)
			{
				printf(" %s x%llu", e->string, (unsigned long long)jnum(req, e->string));
			}
			printf("\n");
		}
	}
	printf("\nsegments: %llu file(s), %s; index: %s; data dir total: %s\n", (unsigned long long)v->seg_files,
	       atel_q_fmt_count((double)v->seg_bytes, b1, sizeof(b1)), atel_q_fmt_count((double)v->db_bytes, b2, sizeof(b2)),
	       atel_q_fmt_count((double)v->disk, b3, sizeof(b3)));
	if (v->ix_samples || v->ix_spans)
		printf("disk cost: %s samples, %s spans indexed; segments + index = %.1f bytes per sample, "
		       "%.1f bytes per span (each: all bytes over that count)\n",
		       atel_q_fmt_count((double)v->ix_samples, b1, sizeof(b1)),
		       atel_q_fmt_count((double)v->ix_spans, b2, sizeof(b2)),
		       v->ix_samples ? (double)(v->seg_bytes + v->db_bytes) / (double)v->ix_samples : 0.0,
		       v->ix_spans ? (double)(v->seg_bytes + v->db_bytes) / (double)v->ix_spans : 0.0);
	printf("(sizes in bytes, K/M/G = 10^3/10^6/10^9)\n");
}

int cmd_status(struct cli *c, int argc, char **argv)
{
	struct status_view v = { 0 };
	int rc = status_parse(argc, argv);

	if (rc)
		return rc < 0 ? 0 : rc;
	status_gather(c, &v);
	if (c->json) {
		char *t = cJSON_Print(v.root);
		if (t) {
			puts(t);
			free(t);
		}
	} else {
		status_print_text(c, &v);
	}
	cJSON_Delete(v.root);
	cJSON_Delete(v.sf);
	if (v.attached) {
		atel__sigbus_unguard(v.seg.base);
		atel__segment_detach(&v.seg);
	}
	return v.up ? 0 : ATEL_EXIT_NO_DAEMON;
}

/* ---- clear ------------------------------------------------------------------------ */

static const char clear_help[] =
	"usage: atel clear metrics|traces|all [--yes]\n"
	"  metrics  deletes every row of telemetry_metrics and telemetry_aggregates from the\n"
	"           index (the series catalog telemetry_series stays);\n"
	"  traces   deletes every row of telemetry_spans and telemetry_span_events;\n"
	"  all      deletes the index database and every segment file: the data is gone.\n"
	"metrics and traces touch only the index: the segment files (the log, which is the\n"
	"truth) keep the records, so `atel reindex` brings the rows back, and ateld's\n"
	"/metrics counters are not reset. all refuses while ateld runs (stop it first).\n"
	"Asks for confirmation on a terminal; --yes is required otherwise.\n"
	"Exit: 0 done, 1 usage or not confirmed, 2 database error, 4 ateld is running (all).\n";

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		cli_err("clear", "telemetry.db: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int cmd_clear(struct cli *c, int argc, char **argv)
{
	const char *what = NULL;
	bool yes = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(clear_help, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0)
			yes = true;
		else if (!what && argv[i][0] != '-')
			what = argv[i];
		else {
			cli_err("clear", "unexpected argument %s (see atel clear --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
	}
	if (!what || (strcmp(what, "metrics") && strcmp(what, "traces") && strcmp(what, "all"))) {
		cli_err("clear", "say what to clear: metrics, traces or all");
		return ATEL_EXIT_USAGE;
	}
	bool all = strcmp(what, "all") == 0;
	int pid = 0;
	if (all && cli_daemon_running(c, &pid, NULL)) {
		cli_err("clear", "ateld (pid %d) is running; stop it before `clear all`", pid);
		return ATEL_EXIT_DAEMON_UP;
	}
	if (!yes) {
		if (!isatty(STDIN_FILENO)) {
			cli_err("clear", "not a terminal: pass --yes to confirm");
			return ATEL_EXIT_USAGE;
		}
		fprintf(stderr, "%s %s in %s? [y/N] ",
			all ? "Delete the index and every segment file" : "Delete the indexed", all ? "" : what, c->data_dir);
		char ans[16] = "";
		if (!fgets(ans, sizeof(ans), stdin) || (ans[0] != 'y' && ans[0] != 'Y')) {
			fprintf(stderr, "not cleared\n");
			return ATEL_EXIT_USAGE;
		}
	}
	uint64_t files = 0, rows = 0;
	if (all) {
		const char *suffix[] = { "", "-wal", "-shm" };
		for (int k = 0; k < 3; k++) {
			char p[4200];
			snprintf(p, sizeof(p), "%s%s", c->db_path, suffix[k]);
			if (unlink(p) == 0)
				files++;
		}
		DIR *d = opendir(c->seg_dir);
		struct dirent *e;
		while (d && (e = readdir(d)) != NULL) {
			size_t l = strlen(e->d_name);
			if (l > 6 && strcmp(e->d_name + l - 6, ".atseg") == 0) {
				char p[4400];
				snprintf(p, sizeof(p), "%s/%s", c->seg_dir, e->d_name);
				if (unlink(p) == 0)
					files++;
			}
		}
		if (d)
			closedir(d);
		/* the exporters' cursors and checkpoint point into the deleted log */
		char state[4200];
		snprintf(state, sizeof(state), "%s/state", c->data_dir);
		d = opendir(state);
		while (d && (e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			char p[4600];
			snprintf(p, sizeof(p), "%s/%s", state, e->d_name);
			if (unlink(p) == 0)
				files++;
		}
		if (d)
			closedir(d);
	} else {
		sqlite3 *db;
		char err[512];
		if (cli_db_open_rw(c, &db, err, sizeof(err)) < 0) {
			cli_err("clear", "%s", err);
			return ATEL_EXIT_DATA;
		}
		int bad = exec_sql(db, "BEGIN IMMEDIATE");
		if (!bad && strcmp(what, "metrics") == 0) {
			bad = exec_sql(db, "DELETE FROM telemetry_metrics");
			rows += (uint64_t)sqlite3_changes(db);
			bad = bad || exec_sql(db, "DELETE FROM telemetry_aggregates");
			rows += (uint64_t)sqlite3_changes(db);
		} else if (!bad) {
			bad = exec_sql(db, "DELETE FROM telemetry_span_events");
			rows += (uint64_t)sqlite3_changes(db);
			bad = bad || exec_sql(db, "DELETE FROM telemetry_spans");
			rows += (uint64_t)sqlite3_changes(db);
		}
		bad = bad || exec_sql(db, "COMMIT");
		if (bad)
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db);
		if (bad)
			return ATEL_EXIT_DATA;
	}
	if (c->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "cleared", what);
		cJSON_AddItemToObject(j, "rows_deleted", cli_json_u64(rows));
		cJSON_AddItemToObject(j, "files_deleted", cli_json_u64(files));
		cli_print_json(j);
	} else if (all) {
		printf("cleared all: %llu file(s) deleted from %s\n", (unsigned long long)files, c->data_dir);
	} else {
		printf("cleared %s: %llu index row(s) deleted (segment files kept; `atel reindex` restores them "
		       "once ateld is stopped)\n",
		       what, (unsigned long long)rows);
	}
	return 0;
}
