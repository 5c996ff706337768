/* SPDX-License-Identifier: MIT */
/*
 * ateld - the Armada Telemetry sidecar (DESIGN.md "Sidecar").
 *
 * Threads: main (signals, heartbeat, status file), drain (consumer/drain.c:
 * rings -> segment log), indexer (consumer/indexer.c), exporters (exporters/).
 * The main thread never touches the log; it only reads atomics and the
 * segment header, so a slow disk cannot stop the heartbeat.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "exporters.h"
#include "ring.h"

#ifndef ATEL_VERSION
#define ATEL_VERSION "0.0.0"
#endif

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_RUNTIME = 2 };

#define HEARTBEAT_NS 50000000ull        /* header heartbeat: twice as often as the ABI's 100 ms */
#define STATUS_NS 1000000000ull         /* status file rewrite */
#define SHUTDOWN_DRAIN_NS 20000000000ull /* final drain bound; systemd's TimeoutStopSec is 30 s */
#define SHUTDOWN_TOTAL_NS 25000000000ull
#define INDEXER_NICE 10                  /* the SQLite indexer thread runs below the drain */

static const char USAGE[] =
	"Usage: ateld [OPTIONS]\n"
	"The Armada Telemetry sidecar: creates the shared-memory segment agents write\n"
	"into, drains its rings into zstd segment files under DATA_DIR/segments, indexes\n"
	"them in DATA_DIR/telemetry.db and serves Prometheus /metrics, JSON and OTLP exports.\n"
	"\n"
	"Options:\n"
	"  --config FILE        JSON configuration (every key is optional; see README\n"
	"                       \"Configuration\"). Without it the embedded defaults apply.\n"
	"  --shm NAME           shared-memory segment name (/dev/shm/NAME) or a file path\n"
	"                       containing '/'. Overrides shm.name and $ATEL_SHM.\n"
	"  --data-dir DIR       where segments, the database and the status file live.\n"
	"                       Overrides data_dir and $ATEL_DATA_DIR.\n"
	"  --check-config FILE  validate FILE (plus the environment), print the effective\n"
	"                       settings and exit: 0 valid, 1 invalid.\n"
	"  --reindex            rebuild DATA_DIR/telemetry.db from the segment files and\n"
	"                       exit (ateld must not be running on DATA_DIR).\n"
	"  --foreground         run in the foreground (the default: ateld never forks;\n"
	"                       use systemd, a container runtime or nohup to detach).\n"
	"  --help               this text.\n"
	"  --version            print the version and exit.\n"
	"\n"
	"Environment (overrides the file; the command line overrides both):\n"
	"  ATEL_SHM, ATEL_DATA_DIR, ATEL_PROMETHEUS_PORT, ATEL_LOG_LEVEL (error|warn|info|debug),\n"
	"  ATEL_EXPORT_INTERVAL_MS, ATEL_IO (auto|io_uring|pwritev), ATEL_FORCE_PWRITEV=1,\n"
	"  ATEL_ENCODING (records|columns),\n"
	"  OTEL_EXPORTER_OTLP_ENDPOINT (also enables OTLP export), OTEL_SERVICE_NAME and the\n"
	"  other standard OTEL_EXPORTER_OTLP_* variables read by the OTLP exporter.\n"
	"\n"
	"Signals:\n"
	"  SIGTERM, SIGINT  stop: drain every ring to empty, flush, fsync, let the index\n"
	"                   catch up, exit 0. The final drain is bounded (20 s: then\n"
	"                   exit 2, records left in the rings); a shutdown longer than\n"
	"                   25 s is logged.\n"
	"                   A second SIGTERM/SIGINT during shutdown exits at once with\n"
	"                   status 2; records not yet logged stay in the shared-memory\n"
	"                   rings and are drained by the next ateld.\n"
	"  SIGHUP           close the current segment file and start a new one.\n"
	"\n"
	"Files: DATA_DIR/segments/*.atseg (the log), DATA_DIR/telemetry.db (index),\n"
	"  DATA_DIR/ateld.status.json (rewritten every second; read by `atel status`),\n"
	"  DATA_DIR/ateld.lock (one ateld per data directory).\n"
	"\n"
	"Exit status: 0 clean stop (or --check-config/--reindex success); 1 usage or\n"
	"  configuration error; 2 runtime error (segment, log, port, lock, failed reindex,\n"
	"  or records left unlogged at shutdown).\n";

struct ateld {
	struct atel_config cfg;
	struct atel_daemon d;
	struct atel_drain *drain;
	struct atel_indexer *ix;
	struct atel_exporters *ex;
	pthread_t drain_thread;
	atomic_bool drain_done;
	int drain_rc;
	bool indexer_running, exporters_running;
	char status_path[4200], status_tmp[4200], lock_path[4200];
	const char *state;       /* starting | running | stopping | stopped */
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

/* One ateld per data directory: an exclusive flock held for the process life.
 * @return the fd, or -errno (-EWOULDBLOCK: another ateld holds it). */
static int take_lock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if (ftruncate(fd, 0) == 0) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

		if (write(fd, buf, (size_t)n) < 0) {
			/* the pid in the lock file is informational only */
		}
	}
	return fd;
}

static int lock_holder(const char *path)
{
	char buf[32] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : 0;
}

/* ------------------------------------------------------------------------ */
/* status file (docs/status-file.md)                                        */

static void add_u64(cJSON *o, const char *name, uint64_t v)
{
	char buf[32];

	/* raw text: cJSON numbers are doubles and would round nanosecond times */
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	cJSON_AddRawToObject(o, name, buf);
}

static uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static const char *state_name(uint32_t s)
{
	static const char *const names[] = { "free", "claiming", "active", "draining", "quarantined" };

	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

/* Thread's command name from /proc (the producer may be gone: ""). */
static void comm_of(int pid, int tid, char *out, size_t len)
{
	char path[96];
	ssize_t n = -1;
	int fd;

	out[0] = '\0';
	if (pid <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* An endpoint without user:password@ (never write credentials). */
static void redact_url(const char *url, char *out, size_t len)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *at = strchr(host, '@');
	const char *slash = strchr(host, '/');

	if (at && (!slash || at < slash))
		snprintf(out, len, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, len, "%s", url);
}

static cJSON *status_stats(const struct atel_daemon_stats *s)
{
	cJSON *o = cJSON_CreateObject(), *drops = cJSON_CreateObject();

	add_u64(o, "records_drained", ld(&s->records_drained));
	add_u64(o, "records_invalid", ld(&s->records_invalid));
	add_u64(o, "bytes_raw", ld(&s->log.bytes_raw));
	add_u64(o, "bytes_written", ld(&s->log.bytes_written));
	add_u64(o, "frames_written", ld(&s->log.frames_written));
	add_u64(o, "segments_created", ld(&s->log.segments_created));
	add_u64(o, "segments_deleted", ld(&s->log.segments_deleted));
	add_u64(o, "write_errors", ld(&s->log.write_errors));
	for (unsigned c = 1; c <= ATEL_LOSS_CAUSE_MAX; c++)
		add_u64(drops, atel__loss_cause_name(c), ld(&s->drops[c]));
	cJSON_AddItemToObject(o, "drops", drops);
	add_u64(o, "ring_lag_max", ld(&s->ring_lag_max));
	add_u64(o, "oldest_unread_ns", ld(&s->oldest_unread_ns));
	add_u64(o, "producers_reclaimed", ld(&s->producers_reclaimed));
	add_u64(o, "rings_quarantined", ld(&s->rings_quarantined));
	add_u64(o, "indexer_lag_records", ld(&s->indexer_lag_records));
	add_u64(o, "index_rows", ld(&s->index_rows));
	add_u64(o, "export_failures", ld(&s->export_failures));
	add_u64(o, "series_overflow", ld(&s->series_overflow));
	add_u64(o, "io_uring_active", atomic_load_explicit(&s->log.io_uring_active, memory_order_relaxed));
	add_u64(o, "log_end_seq", ld(&s->log.log_end_seq));
	add_u64(o, "rings_active", atomic_load_explicit(&s->rings_active, memory_order_relaxed));
	return o;
}

static cJSON *status_rings(const struct atel_segment *seg)
{
	cJSON *arr = cJSON_CreateArray();

	for (uint32_t r = 0; r < seg->ring_count; r++) {
		struct atel_ring_desc *d = atel__seg_desc(seg, r);
		uint32_t s = atomic_load_explicit(&d->state, memory_order_acquire);
		uint64_t head = atomic_load_explicit(&d->head, memory_order_relaxed);
		uint64_t tail = atomic_load_explicit(&d->tail, memory_order_relaxed);
		int32_t pid = __atomic_load_n(&d->owner_pid, __ATOMIC_RELAXED);
		int32_t tid = __atomic_load_n(&d->owner_tid, __ATOMIC_RELAXED);
		char comm[32];
		cJSON *o;

		if (s == ATEL_RING_FREE && head == tail)
			continue;
		o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "ring", r);
		cJSON_AddStringToObject(o, "state", state_name(s));
		cJSON_AddNumberToObject(o, "pid", pid);
		cJSON_AddNumberToObject(o, "tid", tid);
		comm_of(s == ATEL_RING_FREE ? 0 : pid, tid, comm, sizeof(comm));
		cJSON_AddStringToObject(o, "comm", comm);
		cJSON_AddNumberToObject(o, "generation", __atomic_load_n(&d->generation, __ATOMIC_RELAXED));
		add_u64(o, "head", head);
		add_u64(o, "tail", tail);
		add_u64(o, "lag", head >= tail ? head - tail : 0);
		add_u64(o, "drops_full", ld(&d->drops_full));
		add_u64(o, "drops_nodef", ld(&d->drops_nodef));
		add_u64(o, "drops_invalid", ld(&d->drops_invalid));
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

static cJSON *status_exporters(struct ateld *a)
{
	static const char *const names[ATEL_EXP_COUNT] = { "prometheus", "json", "otlp" };
	const bool enabled[ATEL_EXP_COUNT] = { a->cfg.prometheus.enabled, a->cfg.json.enabled,
					       a->cfg.opentelemetry.enabled };
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; i < ATEL_EXP_COUNT; i++) {
		struct atel_exporter_health *h = &a->d.health[i];
		cJSON *e = cJSON_CreateObject();
		char last[256];

		cJSON_AddBoolToObject(e, "enabled", enabled[i] && a->exporters_running);
		add_u64(e, "last_attempt_ns", ld(&h->last_attempt_ns));
		add_u64(e, "last_success_ns", ld(&h->last_success_ns));
		add_u64(e, "attempts", ld(&h->attempts));
		add_u64(e, "failures", ld(&h->failures));
		pthread_mutex_lock(&h->lock);
		snprintf(last, sizeof(last), "%s", h->last_error);
		pthread_mutex_unlock(&h->lock);
		cJSON_AddStringToObject(e, "last_error", last);
		cJSON_AddItemToObject(o, names[i], e);
	}
	return o;
}

/* The effective configuration, minus secrets (header values, bearer token, URL credentials). */
static cJSON *status_config(const struct atel_config *c)
{
	cJSON *o = cJSON_CreateObject(), *s;
	char url[1024];

	cJSON_AddStringToObject(o, "data_dir", c->data_dir);
	cJSON_AddStringToObject(o, "shm_name", c->shm.name);
	cJSON_AddNumberToObject(o, "export_interval_ms", c->export_interval_ms);
	cJSON_AddStringToObject(o, "log_level", c->log_level);
	cJSON_AddNumberToObject(o, "prometheus_port", c->prometheus.port);

	s = cJSON_AddObjectToObject(o, "shm");
	cJSON_AddNumberToObject(s, "rings", c->shm.rings);
	cJSON_AddNumberToObject(s, "ring_capacity", c->shm.ring_capacity);
	snprintf(url, sizeof(url), "%04o", c->shm.mode);
	cJSON_AddStringToObject(s, "mode", url);

	s = cJSON_AddObjectToObject(o, "storage");
	add_u64(s, "rotate_bytes", c->storage.rotate_bytes);
	cJSON_AddNumberToObject(s, "rotate_age_s", c->storage.rotate_age_s);
	cJSON_AddNumberToObject(s, "fsync_interval_ms", c->storage.fsync_interval_ms);
	cJSON_AddNumberToObject(s, "zstd_level", c->storage.zstd_level);
	cJSON_AddStringToObject(s, "io", c->storage.io);
	cJSON_AddStringToObject(s, "encoding", c->storage.encoding);

	s = cJSON_AddObjectToObject(o, "drain");
	cJSON_AddNumberToObject(s, "idle_sleep_max_us", c->drain.idle_sleep_max_us);
	cJSON_AddNumberToObject(s, "batch_records", c->drain.batch_records);

	s = cJSON_AddObjectToObject(o, "retention");
	cJSON_AddNumberToObject(s, "metrics_days", c->retention.metrics_days);
	cJSON_AddNumberToObject(s, "traces_days", c->retention.traces_days);
	cJSON_AddNumberToObject(s, "aggregates_days", c->retention.aggregates_days);
	cJSON_AddNumberToObject(s, "segments_days", c->retention.segments_days);

	s = cJSON_AddObjectToObject(o, "index");
	cJSON_AddBoolToObject(s, "enabled", c->index.enabled);
	cJSON_AddNumberToObject(s, "rollup_interval_s", c->index.rollup_interval_s);

	s = cJSON_AddObjectToObject(o, "prometheus");
	cJSON_AddBoolToObject(s, "enabled", c->prometheus.enabled);
	cJSON_AddStringToObject(s, "bind", c->prometheus.bind);
	cJSON_AddNumberToObject(s, "port", c->prometheus.port);
	cJSON_AddStringToObject(s, "path", c->prometheus.path);
	cJSON_AddBoolToObject(s, "auth", c->prometheus.bearer_token != NULL);
	cJSON_AddNumberToObject(s, "series_limit", c->prometheus.series_limit);

	s = cJSON_AddObjectToObject(o, "json");
	cJSON_AddBoolToObject(s, "enabled", c->json.enabled);
	cJSON_AddStringToObject(s, "outputDir", c->json.outputDir);
	add_u64(s, "rotateInterval", c->json.rotateInterval);
	cJSON_AddNumberToObject(s, "maxFiles", c->json.maxFiles);

	s = cJSON_AddObjectToObject(o, "opentelemetry");
	cJSON_AddBoolToObject(s, "enabled", c->opentelemetry.enabled);
	redact_url(c->opentelemetry.endpoint, url, sizeof(url));
	cJSON_AddStringToObject(s, "endpoint", url);
	cJSON_AddStringToObject(s, "protocol", c->opentelemetry.protocol);
	cJSON_AddNumberToObject(s, "headers", c->opentelemetry.nheaders); /* a count: values are secrets */
	cJSON_AddNumberToObject(s, "timeout_ms", c->opentelemetry.timeout_ms);
	cJSON_AddStringToObject(s, "compression", c->opentelemetry.compression);
	cJSON_AddStringToObject(s, "service_name", c->opentelemetry.service_name);
	return o;
}

/* Rewrites DATA_DIR/ateld.status.json atomically (tmp + rename). @return 0 or -errno. */
static int write_status(struct ateld *a)
{
	const struct atel_segment *seg = a->drain ? atel__drain_segment(a->drain) : NULL;
	cJSON *root = cJSON_CreateObject(), *o;
	char io[16] = "", file[4096] = "", hex[32];
	char *text = NULL;
	int fd = -1, rc = 0;
	size_t len, off = 0;

	if (!root)
		return -ENOMEM;
	if (a->drain)
		atel__drain_log_info(a->drain, io, sizeof(io), file, sizeof(file));
	cJSON_AddNumberToObject(root, "pid", getpid());
	cJSON_AddStringToObject(root, "version", ATEL_VERSION);
	cJSON_AddStringToObject(root, "state", a->state);
	add_u64(root, "start_ns", a->d.start_ns);
	add_u64(root, "heartbeat_ns", seg ? atomic_load_explicit(&seg->hdr->heartbeat_ns, memory_order_relaxed)
					  : atel__now_ns());
	add_u64(root, "written_ns", atel__now_ns());
	o = cJSON_AddObjectToObject(root, "shm");
	cJSON_AddStringToObject(o, "name", seg ? seg->name : a->cfg.shm.name);
	snprintf(hex, sizeof(hex), "%016" PRIx64, seg ? seg->hdr->instance_id : 0);
	cJSON_AddStringToObject(o, "instance_id", hex);
	cJSON_AddNumberToObject(o, "rings", seg ? seg->ring_count : 0);
	cJSON_AddNumberToObject(o, "ring_capacity", seg ? seg->ring_capacity : 0);
	cJSON_AddBoolToObject(o, "reattached", seg && seg->reattached);
	if (seg) {
		add_u64(o, "drops_no_ring", atomic_load_explicit(&seg->hdr->drops_no_ring, memory_order_relaxed));
		add_u64(o, "claims_total", atomic_load_explicit(&seg->hdr->claims_total, memory_order_relaxed));
	}
	cJSON_AddStringToObject(root, "io_path", io);
	cJSON_AddStringToObject(root, "current_segment", file);
	cJSON_AddItemToObject(root, "stats", status_stats(&a->d.stats));
	cJSON_AddItemToObject(root, "rings", seg ? status_rings(seg) : cJSON_CreateArray());
	cJSON_AddItemToObject(root, "exporters", status_exporters(a));
	o = cJSON_AddObjectToObject(root, "indexer");
	cJSON_AddBoolToObject(o, "enabled", a->cfg.index.enabled);
	cJSON_AddBoolToObject(o, "running", a->indexer_running);
	add_u64(o, "lag_records", ld(&a->d.stats.indexer_lag_records));
	add_u64(o, "rows", ld(&a->d.stats.index_rows));
	cJSON_AddItemToObject(root, "config", status_config(&a->cfg));

	text = cJSON_Print(root);
	cJSON_Delete(root);
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	fd = open(a->status_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1) {
		rc = -EIO;
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(a->status_tmp, a->status_path) != 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(a->status_tmp);
	cJSON_free(text);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */

static void print_effective(const struct atel_config *c)
{
	cJSON *o = status_config(c);
	char *t = o ? cJSON_Print(o) : NULL;

	if (t)
		printf("%s\n", t);
	cJSON_free(t);
	cJSON_Delete(o);
}

static int cmd_check_config(const char *path)
{
	struct atel_config cfg;
	char err[1024];
	int rc = atel__config_load(&cfg, path, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "ateld: %s\n", err);
		atel__config_free(&cfg);
		return EXIT_USAGE;
	}
	printf("%s: configuration OK; effective settings (secrets omitted):\n", path);
	print_effective(&cfg);
	atel__config_free(&cfg);
	return EXIT_OK;
}

static int cmd_reindex(struct ateld *a)
{
	char err[1024] = "";
	int rc;

	atel__log(&a->d, ATEL_LOG_INFO, "reindex: rebuilding %s from %s", a->d.db_path, a->d.segments_dir);
	rc = atel__reindex(a->d.segments_dir, a->d.db_path, err, sizeof(err));
	if (rc) {
		atel__log(&a->d, ATEL_LOG_ERROR, "reindex failed: %s", *err ? err : strerror(-rc));
		return EXIT_RUNTIME;
	}
	atel__log(&a->d, ATEL_LOG_INFO, "reindex: done");
	return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* run                                                                      */

static void *drain_main(void *arg)
{
	struct ateld *a = arg;

	a->drain_rc = atel__drain_run(a->drain, SHUTDOWN_DRAIN_NS);
	atomic_store_explicit(&a->drain_done, true, memory_order_release);
	return NULL;
}

static void start_indexer(struct ateld *a)
{
	int rc = atel__indexer_start(&a->ix, &a->d);

	if (rc)
		atel__log(&a->d, ATEL_LOG_ERROR,
			  "SQLite index %s unavailable (%s): logging continues; rebuild later with ateld --reindex",
			  a->d.db_path, strerror(-rc));
	else
		a->indexer_running = true;
}

static void *indexer_spawner(void *arg)
{
	struct ateld *a = arg;

	/* Threads inherit their creator's nice value: the indexer thread runs at
	 * INDEXER_NICE, so on a busy machine SQLite inserts do not take the CPU the
	 * drain (nice 0) needs to keep rings from filling; the index is a derived
	 * view and catches up later. A thread cannot lower its nice value back
	 * without privilege, hence this short-lived thread. */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), INDEXER_NICE) != 0)
		atel__log(&a->d, ATEL_LOG_DEBUG, "setpriority: %s", strerror(errno));
	start_indexer(a);
	return NULL;
}

/* Starts the indexer (below the drain's priority) and the exporters. */
static int start_parts(struct ateld *a)
{
	char err[512] = "";
	pthread_t th;
	int rc;

	if (a->cfg.index.enabled) {
		if (pthread_create(&th, NULL, indexer_spawner, a) == 0)
			pthread_join(th, NULL);
		else
			start_indexer(a);
	}
	/* exporters stay at normal priority: /metrics must stay fresh under load,
	 * and following the log is cheap next to SQLite */
	rc = atel__daemon_exporters_start(&a->ex, &a->d, err, sizeof(err));
	if (rc) {
		atel__log(&a->d, ATEL_LOG_ERROR, "exporters: %s", *err ? err : strerror(-rc));
		return rc;
	}
	a->exporters_running = true;
	return 0;
}

static void stop_parts(struct ateld *a)
{
	if (a->exporters_running) {
		atel__exporters_stop(a->ex);
		a->ex = NULL;
		a->exporters_running = false;
	}
	if (a->indexer_running) {
		atel__indexer_stop(a->ix);
		a->ix = NULL;
		a->indexer_running = false;
	}
}

static int run(struct ateld *a)
{
	sigset_t set;
	uint64_t next_hb = 0, next_status = 0, stop_started = 0;
	bool stopping = false, warned_slow = false, status_warned = false;
	struct atel_drain_opts dopts = { .shm_name = NULL, .keep_heartbeat = false };
	char err[1024];
	int rc, exit_code = EXIT_OK;

	/* Signals are taken synchronously by this thread only (sigtimedwait):
	 * every thread started below inherits the blocked mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = atel__drain_open(&a->drain, &a->d, &dopts, err, sizeof(err));
	if (rc) {
		atel__log(&a->d, ATEL_LOG_ERROR, "%s", err);
		return EXIT_RUNTIME;
	}
	atel__drain_heartbeat(a->drain);
	if (start_parts(a)) {
		exit_code = EXIT_RUNTIME;
		goto stop;
	}
	if ((rc = pthread_create(&a->drain_thread, NULL, drain_main, a))) {
		atel__log(&a->d, ATEL_LOG_ERROR, "cannot start the drain thread: %s", strerror(rc));
		exit_code = EXIT_RUNTIME;
		goto stop;
	}
	a->state = "running";
	atel__log(&a->d, ATEL_LOG_INFO, "ateld %s running (pid %d, data in %s)", ATEL_VERSION, (int)getpid(),
		  a->cfg.data_dir);

	while (!atomic_load_explicit(&a->drain_done, memory_order_acquire)) {
		struct timespec to = { 0, 50000000 };
		uint64_t now = atel__mono_ns();
		int sig;

		if (now >= next_hb) {
			atel__drain_heartbeat(a->drain);
			next_hb = now + HEARTBEAT_NS;
		}
		if (now >= next_status) {
			int src = write_status(a);

			if (src && !status_warned)
				atel__log(&a->d, ATEL_LOG_WARN, "cannot write %s: %s", a->status_path, strerror(-src));
			status_warned = src != 0;
			next_status = now + STATUS_NS;
		}
		if (stopping && !warned_slow && now - stop_started > SHUTDOWN_TOTAL_NS) {
			atel__log(&a->d, ATEL_LOG_WARN, "shutdown is taking longer than %.0f s",
				  (double)SHUTDOWN_TOTAL_NS / 1e9);
			warned_slow = true;
		}
		sig = sigtimedwait(&set, NULL, &to);
		if (sig == SIGHUP) {
			atel__log(&a->d, ATEL_LOG_INFO, "SIGHUP: reopening the log");
			atel__drain_request_reopen(a->drain);
		} else if (sig == SIGTERM || sig == SIGINT) {
			if (stopping) {
				atel__log(&a->d, ATEL_LOG_WARN,
					  "second %s: exiting now; unlogged records stay in the rings",
					  sig == SIGTERM ? "SIGTERM" : "SIGINT");
				_exit(EXIT_RUNTIME);
			}
			atel__log(&a->d, ATEL_LOG_INFO, "%s: stopping (send it again to exit at once)",
				  sig == SIGTERM ? "SIGTERM" : "SIGINT");
			stopping = true;
			stop_started = now;
			a->state = "stopping";
			atomic_store_explicit(&a->d.stopping, true, memory_order_release);
			next_status = 0;
		}
	}
	pthread_join(a->drain_thread, NULL);
	if (a->drain_rc) {
		atel__log(&a->d, ATEL_LOG_ERROR, "the drain stopped with an error: %s", strerror(-a->drain_rc));
		exit_code = EXIT_RUNTIME;
	}
stop:
	atomic_store_explicit(&a->d.stopping, true, memory_order_release);
	stop_parts(a);
	a->state = "stopped";
	atel__drain_heartbeat(a->drain);
	write_status(a);
	atel__drain_close(a->drain);
	a->drain = NULL;
	if (stop_started) {
		double secs = (double)(atel__mono_ns() - stop_started) / 1e9;

		if (secs * 1e9 > (double)SHUTDOWN_TOTAL_NS)
			atel__log(&a->d, ATEL_LOG_WARN, "shutdown took %.1f s (bound %.0f s)", secs,
				  (double)SHUTDOWN_TOTAL_NS / 1e9);
		else
			atel__log(&a->d, ATEL_LOG_INFO, "stopped cleanly in %.2f s", secs);
	}
	return exit_code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "shm", required_argument, NULL, 's' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "check-config", required_argument, NULL, 'k' },
		{ "reindex", no_argument, NULL, 'r' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct ateld a; /* large; lives for the whole process */
	const char *config_path = NULL, *check = NULL;
	bool reindex = false;
	char err[1024];
	int c, rc, lock_fd = -1, exit_code;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 's':
			/* the command line wins over the file and the environment: pass it as
			 * the environment variable, which wins over the file */
			setenv("ATEL_SHM", optarg, 1);
			break;
		case 'd':
			setenv("ATEL_DATA_DIR", optarg, 1);
			break;
		case 'k':
			check = optarg;
			break;
		case 'r':
			reindex = true;
			break;
		case 'f':
			break;
		case 'h':
			fputs(USAGE, stdout);
			return EXIT_OK;
		case 'V':
			printf("ateld %s (shared-memory ABI %d.%d)\n", ATEL_VERSION, ATEL_ABI_MAJOR, ATEL_ABI_MINOR);
			return EXIT_OK;
		default:
			if (optopt)
				fprintf(stderr, "ateld: option '%s' needs an argument\n", argv[optind - 1]);
			else
				fprintf(stderr, "ateld: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "Try 'ateld --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ateld: unexpected argument '%s'\nTry 'ateld --help'.\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (check)
		return cmd_check_config(check);

	rc = atel__config_load(&a.cfg, config_path, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "ateld: %s\n", err);
		atel__config_free(&a.cfg);
		return EXIT_USAGE;
	}
	a.state = "starting";
	rc = atel__daemon_init(&a.d, &a.cfg);
	if (rc) {
		fprintf(stderr, "ateld: data_dir '%s': %s\n", a.cfg.data_dir, strerror(-rc));
		exit_code = EXIT_USAGE;
		goto out;
	}
	if ((size_t)snprintf(a.status_path, sizeof(a.status_path), "%s/ateld.status.json", a.cfg.data_dir) >=
		    sizeof(a.status_path) ||
	    (size_t)snprintf(a.status_tmp, sizeof(a.status_tmp), "%s/.ateld.status.json.tmp", a.cfg.data_dir) >=
		    sizeof(a.status_tmp) ||
	    (size_t)snprintf(a.lock_path, sizeof(a.lock_path), "%s/ateld.lock", a.cfg.data_dir) >=
		    sizeof(a.lock_path)) {
		atel__log(&a.d, ATEL_LOG_ERROR, "data_dir '%s' is too long", a.cfg.data_dir);
		exit_code = EXIT_USAGE;
		goto out;
	}
	if ((rc = atel__mkdir_p(a.cfg.data_dir, 0755))) {
		atel__log(&a.d, ATEL_LOG_ERROR, "cannot create data_dir '%s': %s", a.cfg.data_dir, strerror(-rc));
		exit_code = EXIT_RUNTIME;
		goto out;
	}
	lock_fd = take_lock(a.lock_path);
	if (lock_fd < 0) {
		if (lock_fd == -EWOULDBLOCK)
			atel__log(&a.d, ATEL_LOG_ERROR,
				  "another ateld (pid %d) is running on data_dir '%s'; stop it first",
				  lock_holder(a.lock_path), a.cfg.data_dir);
		else
			atel__log(&a.d, ATEL_LOG_ERROR, "cannot lock %s: %s", a.lock_path, strerror(-lock_fd));
		exit_code = EXIT_RUNTIME;
		goto out;
	}
	exit_code = reindex ? cmd_reindex(&a) : run(&a);
out:
	if (lock_fd >= 0)
		close(lock_fd);
	atel__daemon_fini(&a.d);
	atel__config_free(&a.cfg);
	return exit_code;
}
