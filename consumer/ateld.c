/* SPDX-License-Identifier: MIT */
/*
 * ateld - the Armada Telemetry sidecar (docs/design.md "Sidecar").
 *
 * Threads: main (signals, heartbeat, status file), drain (consumer/drain.c:
 * rings -> segment log), indexer (consumer/indexer.c), exporters (exporters/),
 * compactor (consumer/compactor.c: rewrites finished segment files, SCHED_IDLE).
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
#include "compactor.h"
#include "config.h"
#include "daemon.h"
#include "drain.h"
#include "exporters.h"
#include "ring.h"
#include "logread.h"
#include "otlp_receiver.h"
#include "segformat.h"
#include "segment.h"
#include "util.h"


enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_RUNTIME = 2 };

#define HEARTBEAT_NS 50000000ull        /* header heartbeat: twice as often as the ABI's 100 ms */
#define STATUS_NS 1000000000ull         /* status file rewrite */
#define SHUTDOWN_DRAIN_NS 20000000000ull /* final drain bound; systemd's TimeoutStopSec is 30 s */
#define SHUTDOWN_TOTAL_NS 25000000000ull
#define INDEXER_NICE 10                  /* the SQLite indexer thread runs below the drain */
#define COMPACTOR_STOP_MS 5000u          /* shutdown waits this long at most for a file being compacted */

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
	"  ATEL_ENCODING (records|columns), ATEL_COMPACT (0|1: storage.compact),\n"
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
	struct atel_otlp_recv *otlp_recv; /* the OTLP/HTTP receiver (issue 19); NULL: off */
	struct atel_compactor *compactor; /* storage.compact; NULL: off */
	pthread_t drain_thread;
	atomic_bool drain_done;
	int drain_rc;
	bool indexer_running, exporters_running;
	char status_path[4200], status_tmp[4200], lock_path[4200];
	const char *state;       /* starting | running | stopping | stopped */
	char reason[1100];       /* why the start failed (status file "reason") */
	bool db_existed;         /* telemetry.db was there before this start */
	uint64_t max_seq_before; /* the newest segment file before this start (0: none) */
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

/* One ateld per data directory: an exclusive flock held for the process life.
 * @return the fd, or -errno (-EWOULDBLOCK: another ateld holds it). */
static int take_lock(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, (mode_t)atel__file_mode());

	if (fd < 0)
		return -errno;
	(void)atel__fchmod_policy(fd);
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

/* Rewrites DATA_DIR/ateld.status.json (status.c). @return 0 or -errno. */
static int write_status(struct ateld *a)
{
	struct atel_status st = { .state = a->state, .indexer_running = a->indexer_running,
				  .exporters_running = a->exporters_running, .drain = a->drain,
				  .reason = a->reason };
	struct atel_rw_counts rwc;

	if (a->exporters_running && atel__exporters_rw_counts(a->ex, &rwc)) {
		st.rw.enabled = true;
		st.rw.samples_sent = rwc.samples_sent;
		st.rw.samples_dropped = rwc.samples_dropped;
		st.rw.pending_samples = rwc.pending_samples;
		st.rw.requests_ok = rwc.requests_ok;
		st.rw.requests_failed = rwc.requests_failed;
		st.rw.requests_dropped = rwc.requests_dropped;
		st.rw.last_sent_ms = rwc.last_sent_ms;
	}
	return atel__status_write(&a->d, &st, a->status_path, a->status_tmp);
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */

static void print_effective(const struct atel_config *c)
{
	cJSON *o = atel__config_json(c);
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
	rc = atel__reindex_mode(a->d.segments_dir, a->d.db_path,
				a->cfg.index.mode && strcmp(a->cfg.index.mode, "full") == 0 ? 0 : 1, err, sizeof(err));
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
		snprintf(a->reason, sizeof(a->reason), "exporters: %s", *err ? err : strerror(-rc));
		return rc;
	}
	a->exporters_running = true;
	if (a->cfg.otlp_receiver.enabled) {
		struct atel_otlp_recv_opts ro = { .bind = a->cfg.otlp_receiver.bind,
						  .port = (uint16_t)a->cfg.otlp_receiver.port,
						  .max_body = a->cfg.otlp_receiver.max_body_bytes,
						  .seg = atel__drain_segment(a->drain),
						  .d = &a->d };
		char spath[PATH_MAX];
		/* cumulative stream state (exporters/otlp_receiver.c "Cumulative state file") */
		if ((size_t)snprintf(spath, sizeof(spath), "%s/state/otlp-receiver.streams", a->cfg.data_dir) <
		    sizeof(spath))
			ro.state_path = spath;
		rc = atel__otlp_recv_start(&a->otlp_recv, &ro, err, sizeof(err));
		if (rc) {
			atel__log(&a->d, ATEL_LOG_ERROR, "otlp receiver: %s", *err ? err : strerror(-rc));
			snprintf(a->reason, sizeof(a->reason), "otlp receiver: %s", *err ? err : strerror(-rc));
			return rc;
		}
		atel__log(&a->d, ATEL_LOG_INFO, "OTLP/HTTP receiver on %s:%u (/v1/traces, /v1/metrics)",
			  a->cfg.otlp_receiver.bind, (unsigned)atel__otlp_recv_port(a->otlp_recv));
	}
	return 0;
}

/* The compactor (storage.compact): a thread at SCHED_IDLE, started after the
 * parts whose persisted log positions it respects (it reads them from disk). */
static void start_compactor(struct ateld *a)
{
	const struct atel_config *c = &a->cfg;
	struct atel_compactor_opts o = {
		.data_dir = c->data_dir,
		.segments_dir = a->d.segments_dir,
		.level = c->storage.compact_level,
		.frame_bytes = c->storage.compact_frame_bytes,
		.interval_s = c->storage.compact_interval_s,
		.first_delay_ms = c->storage.compact_interval_s < 2 ? c->storage.compact_interval_s * 1000u : 2000u,
		.index_enabled = c->index.enabled,
		.remote_write_enabled = c->remote_write.url && *c->remote_write.url,
		.otlp_enabled = c->opentelemetry.enabled,
		.aggregates_enabled = true, /* the exporters' follower always runs */
	};
	int rc;

	if (!c->storage.compact)
		return;
	if ((rc = atel__compactor_start(&a->compactor, &a->d, &o)))
		atel__log(&a->d, ATEL_LOG_WARN, "compactor not started: %s; segment files stay as written",
			  strerror(-rc));
}

/* The OTLP receiver stops first: what it accepted is in its ring before the final drain. */
static void stop_receiver(struct ateld *a)
{
	atel__otlp_recv_stop(a->otlp_recv);
	a->otlp_recv = NULL;
}

static void stop_parts(struct ateld *a)
{
	stop_receiver(a);
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

/* Notes what a start that fails must not leave behind (undo_failed_start). */
static void note_before_start(struct ateld *a)
{
	uint64_t *seqs = NULL;
	int n = atel__seg_list(a->d.segments_dir, &seqs);

	a->db_existed = access(a->d.db_path, F_OK) == 0;
	a->max_seq_before = n > 0 ? seqs[n - 1] : 0;
	free(seqs);
}

/* True when the segment file holds no event (a header only). */
static bool seg_file_empty(const char *path)
{
	struct atel_log_reader_opts o = { .single_file = path, .follow = true };
	struct atel_log_reader *r = NULL;
	struct atel_event ev;
	bool empty;

	if (atel__log_open(&r, &o) < 0)
		return false;
	empty = atel__log_next(r, &ev, NULL) == 0;
	atel__log_close(r);
	return empty;
}

/*
 * A start that failed before the drain thread ran drained nothing. Removes
 * what it created: the shared-memory segment (created, not re-attached with
 * agents' records in its rings: created is false then), segment files newer
 * than the ones before it that hold no event, and an index that did not exist.
 */
static void undo_failed_start(struct ateld *a, bool created)
{
	char path[4400];
	uint64_t *seqs = NULL;
	int n = atel__seg_list(a->d.segments_dir, &seqs);
	int urc = created ? atel__segment_unlink(a->cfg.shm.name) : 0;

	if (urc && urc != -ENOENT)
		atel__log(&a->d, ATEL_LOG_WARN, "removing segment %s: %s", a->cfg.shm.name, strerror(-urc));
	for (int i = 0; i < n; i++) {
		if (seqs[i] <= a->max_seq_before)
			continue;
		snprintf(path, sizeof(path), "%s/%016" PRIx64 ".atseg", a->d.segments_dir, seqs[i]);
		if (seg_file_empty(path) && unlink(path) != 0 && errno != ENOENT)
			atel__log(&a->d, ATEL_LOG_WARN, "removing %s: %s", path, strerror(errno));
	}
	free(seqs);
	if (!a->db_existed) {
		static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
		for (size_t k = 0; k < sizeof(sfx) / sizeof(sfx[0]); k++) {
			snprintf(path, sizeof(path), "%s%s", a->d.db_path, sfx[k]);
			unlink(path);
		}
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

	note_before_start(a);
	rc = atel__drain_open(&a->drain, &a->d, &dopts, err, sizeof(err));
	if (rc) {
		atel__log(&a->d, ATEL_LOG_ERROR, "%s", err);
		snprintf(a->reason, sizeof(a->reason), "%s", err);
		a->state = "stopped";
		write_status(a);
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
	start_compactor(a);
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
			stop_receiver(a);
			atel__compactor_request_stop(a->compactor);
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
	/* asked to stop at SIGTERM: it finished its file during the final drain, or
	 * is given a few seconds more; past that the process exits without it */
	atel__compactor_stop(a->compactor, COMPACTOR_STOP_MS);
	a->compactor = NULL;
	stop_parts(a);
	a->state = "stopped";
	atel__drain_heartbeat(a->drain);
	write_status(a);
	bool created = a->drain && !atel__drain_segment(a->drain)->reattached;
	atel__drain_close(a->drain);
	a->drain = NULL;
	if (a->reason[0] && a->cfg.shm.name)
		undo_failed_start(a, created); /* failed before the drain ran: leave nothing it created */
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
	/* storage.file_mode for every file ateld writes, and the umask to match (issue 12) */
	atel__file_mode_set(a.cfg.storage.file_mode);
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
	if ((rc = atel__mkdir_p(a.cfg.data_dir, atel__dir_mode()))) {
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
