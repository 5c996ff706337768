/* SPDX-License-Identifier: MIT */
/*
 * cmd_load.c - `atel load`: the synthetic agent swarm of `make demo` and the
 * integration tests. N agent processes (fork) x M threads, each thread
 * running orchestration sessions through libatel: a coordinator span, sub-agent
 * spans, tool calls with per-tool latency distributions and failure rates,
 * token counts, context usage, errors, task outcomes and queue sizes. Ends
 * with a report of exactly what was recorded (the workload's own counts plus
 * libatel's atel_stats_get(): records written and dropped by cause), so that
 * tests can compare it with /metrics and the index.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atel.h"
#include "cli.h"
#include "query.h"
#include "segment.h"

#define NTOOLS 7
#define NAGENTS 4

static const struct {
	const char *name;
	double median_ms, sigma, fail;
} tools[NTOOLS] = {
	{ "Read", 5, 0.6, 0.01 },   { "Write", 12, 0.6, 0.02 },   { "Edit", 20, 0.7, 0.03 },
	{ "Bash", 800, 1.0, 0.10 }, { "Grep", 40, 0.8, 0.01 },    { "Glob", 10, 0.5, 0.01 },
	{ "WebFetch", 1200, 0.9, 0.08 },
};
static const char *const agent_types[NAGENTS] = { "coder", "planner", "reviewer", "tester" };
static const char *const phases[NAGENTS] = { "code", "plan", "review", "test" };
static const char *const models[2] = { "claude-sonnet", "claude-haiku" };
static const char *const error_types[3] = { "timeout", "permission_denied", "not_found" };
static const char *const priorities[3] = { "high", "normal", "low" };

/* What one worker did; summed per process and then over processes. Plain
 * counters: every field is an exact count of calls made. */
struct load_counts {
	uint64_t sessions, spans, span_errors, span_events;
	uint64_t agent_exec[NAGENTS][2];    /* [type][success] */
	uint64_t tokens;
	uint64_t tool_calls[NTOOLS][2];     /* [tool][success] */
	uint64_t context_updates, errors, tasks_ok, tasks_failed, queue_updates;
	atel_stats stats;                   /* per process (filled by the process's main thread) */
	int attached;
};

struct worker {
	uint64_t seed;
	uint64_t deadline_ns;               /* 0: none */
	uint64_t sessions_max;              /* 0: none */
	double time_scale;                  /* sleep this fraction of the simulated durations */
	double session_rate;                /* sessions per second per thread; 0: as fast as possible */
	int proc, thread;
	struct load_counts c;
};

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

static double unif(uint64_t *s)
{
	return (double)(xs(s) >> 11) / 9007199254740992.0;
}

/* log-normal with the given median */
static double lognormal(uint64_t *s, double median, double sigma)
{
	double u1 = unif(s), u2 = unif(s);
	if (u1 < 1e-300)
		u1 = 1e-300;
	double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
	return median * exp(sigma * z);
}

static void pause_ms(double ms, double scale)
{
	if (scale <= 0 || ms <= 0)
		return;
	double ns = ms * 1e6 * scale;
	if (ns < 1000)
		return;
	struct timespec ts = { (time_t)(ns / 1e9), (long)fmod(ns, 1e9) };
	nanosleep(&ts, NULL);
}

static void run_session(struct worker *w, uint64_t *rng, uint64_t session_no)
{
	struct load_counts *c = &w->c;
	char sid[64];
	snprintf(sid, sizeof(sid), "session-%d-%d-%llu", w->proc, w->thread, (unsigned long long)session_no);
	atel_span root = atel_trace_start("orchestration-session", ATEL_SPAN_SERVER);
	int nagents = 2 + (int)(xs(rng) % 3);
	atel_span_set_str(&root, "sessionId", sid);
	atel_span_set_str(&root, "coordinator", "hierarchical");
	atel_span_set_int(&root, "totalAgents", nagents);
	c->spans++;
	c->sessions++;
	bool session_failed = false;
	atel_track_queue_size(priorities[xs(rng) % 3], (double)(xs(rng) % 50));
	c->queue_updates++;
	uint64_t ctx_used = 0;
	for (int a = 0; a < nagents; a++) {
		int at = (int)(xs(rng) % NAGENTS);
		const char *model = models[xs(rng) % 2];
		char agent_id[64], span_name[64];
		snprintf(agent_id, sizeof(agent_id), "%s-%d-%d-%d", agent_types[at], w->proc, w->thread, a);
		snprintf(span_name, sizeof(span_name), "%s-execution", agent_types[at]);
		atel_span as = atel_span_start(&root, span_name, ATEL_SPAN_INTERNAL);
		atel_span_set_str(&as, "agent.id", agent_id);
		atel_span_set_str(&as, "agent.type", agent_types[at]);
		atel_span_set_str(&as, "model", model);
		atel_span_add_event(&as, "agent_started");
		c->spans++;
		c->span_events++;
		double think_ms = lognormal(rng, 2000, 0.5);
		double total_ms = think_ms;
		pause_ms(think_ms, w->time_scale);
		int ncalls = 1 + (int)(xs(rng) % 5), failures = 0;
		for (int k = 0; k < ncalls; k++) {
			int t = (int)(xs(rng) % NTOOLS);
			double ms = lognormal(rng, tools[t].median_ms, tools[t].sigma);
			bool ok = unif(rng) >= tools[t].fail;
			const char *et = ok ? NULL : error_types[xs(rng) % 3];
			char tname[48];
			snprintf(tname, sizeof(tname), "tool.%s", tools[t].name);
			atel_span ts = atel_span_start(&as, tname, ATEL_SPAN_CLIENT);
			atel_span_set_str(&ts, "tool.name", tools[t].name);
			atel_span_set_double(&ts, "duration_ms", ms);
			c->spans++;
			pause_ms(ms, w->time_scale);
			atel_track_tool_usage(&(atel_tool_usage){ .tool = tools[t].name, .error_type = et, .duration_ms = ms,
								  .success = ok });
			c->tool_calls[t][ok]++;
			if (!ok) {
				atel_span_record_error(&ts, et, "tool call failed");
				atel_span_end(&ts, ATEL_STATUS_ERROR, et);
				c->span_errors++;
				failures++;
			} else {
				atel_span_end(&ts, ATEL_STATUS_OK, NULL);
			}
			total_ms += ms;
		}
		uint64_t tokens = 500 + xs(rng) % 7500;
		ctx_used += tokens;
		bool ok = failures < 2 && unif(rng) >= 0.05;
		atel_track_agent_execution(&(atel_agent_execution){ .agent_id = agent_id, .agent_type = agent_types[at],
								    .phase = phases[at], .model = model,
								    .duration_ms = total_ms, .tokens = tokens, .success = ok });
		c->agent_exec[at][ok]++;
		c->tokens += tokens;
		atel_track_context_usage(&(atel_context_usage){ .agent_id = agent_id, .session_id = sid,
								 .used = ctx_used > 200000 ? 200000 : ctx_used, .total = 200000 });
		c->context_updates++;
		atel_track_task(&(atel_task_info){ .task_type = phases[at], .error_type = ok ? NULL : "agent_failed",
						   .duration_ms = total_ms, .success = ok });
		if (ok) {
			c->tasks_ok++;
			atel_span_set_int(&as, "tokens", (int64_t)tokens);
			atel_span_end(&as, ATEL_STATUS_OK, NULL);
		} else {
			c->tasks_failed++;
			atel_track_error(&(atel_error_info){ .component = agent_types[at], .error_type = "agent_failed",
							     .severity = "error" });
			c->errors++;
			atel_span_record_error(&as, "agent_failed", "sub-agent failed");
			atel_span_end(&as, ATEL_STATUS_ERROR, "sub-agent failed");
			c->span_errors++;
			session_failed = true;
		}
	}
	if (session_failed)
		atel_span_end(&root, ATEL_STATUS_ERROR, "a sub-agent failed");
	else
		atel_span_end(&root, ATEL_STATUS_OK, NULL);
	c->span_errors += session_failed;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char tname[16];
	snprintf(tname, sizeof(tname), "agent-%d-%d", w->proc % 1000, w->thread % 100);
	pthread_setname_np(pthread_self(), tname); /* what `atel status` shows as the ring owner */
	uint64_t rng = w->seed * 0x9E3779B97F4A7C15ull + (uint64_t)w->proc * 1000003u + (uint64_t)w->thread * 7919u + 1;
	uint64_t t0 = atel__mono_ns();
	for (uint64_t n = 0;; n++) {
		if (stop_flag || (w->sessions_max && n >= w->sessions_max) || (w->deadline_ns && atel__mono_ns() >= w->deadline_ns))
			break;
		if (w->session_rate > 0) {
			uint64_t due = t0 + (uint64_t)((double)n / w->session_rate * 1e9);
			uint64_t now = atel__mono_ns();
			if (due > now) {
				uint64_t d = due - now;
				if (w->deadline_ns && now + d > w->deadline_ns)
					d = w->deadline_ns - now;
				struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
				nanosleep(&ts, NULL);
				if (w->deadline_ns && atel__mono_ns() >= w->deadline_ns)
					break;
			}
		}
		run_session(w, &rng, n);
	}
	return NULL;
}

static void add_counts(struct load_counts *a, const struct load_counts *b)
{
	a->sessions += b->sessions;
	a->spans += b->spans;
	a->span_errors += b->span_errors;
	a->span_events += b->span_events;
	for (int i = 0; i < NAGENTS; i++)
		for (int k = 0; k < 2; k++)
			a->agent_exec[i][k] += b->agent_exec[i][k];
	a->tokens += b->tokens;
	for (int i = 0; i < NTOOLS; i++)
		for (int k = 0; k < 2; k++)
			a->tool_calls[i][k] += b->tool_calls[i][k];
	a->context_updates += b->context_updates;
	a->errors += b->errors;
	a->tasks_ok += b->tasks_ok;
	a->tasks_failed += b->tasks_failed;
	a->queue_updates += b->queue_updates;
}

static void add_stats(atel_stats *a, const atel_stats *b)
{
	a->records += b->records;
	a->definitions += b->definitions;
	a->meta += b->meta;
	a->slots += b->slots;
	a->drops_ring_full += b->drops_ring_full;
	a->drops_no_ring += b->drops_no_ring;
	a->drops_no_def += b->drops_no_def;
	a->drops_no_sidecar += b->drops_no_sidecar;
	a->drops_reentrant += b->drops_reentrant;
	a->invalid += b->invalid;
	a->rings_claimed += b->rings_claimed;
	a->rings_released += b->rings_released;
	a->attach_attempts += b->attach_attempts;
}

/* one agent process: M threads, then its counts down the pipe */
static int child_main(const char *shm, struct worker *proto, int threads, int fd)
{
	struct load_counts total = { 0 };
	int rc = atel_init(shm);
	total.attached = rc == 0 && atel_attached();
	struct worker *ws = calloc((size_t)threads, sizeof(*ws));
	pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
	if (!ws || !tids)
		return 1;
	for (int t = 0; t < threads; t++) {
		ws[t] = *proto;
		ws[t].thread = t;
		if (pthread_create(&tids[t], NULL, worker_main, &ws[t]) != 0) {
			ws[t].thread = -1;
			continue;
		}
	}
	for (int t = 0; t < threads; t++) {
		if (ws[t].thread < 0)
			continue;
		pthread_join(tids[t], NULL);
		add_counts(&total, &ws[t].c);
	}
	/* release the rings (END records) before reading the totals */
	atel_stats_get(&total.stats);
	atel_shutdown();
	ssize_t w = write(fd, &total, sizeof(total));
	close(fd);
	free(ws);
	free(tids);
	return w == (ssize_t)sizeof(total) ? 0 : 1;
}

static const char load_help[] =
	"usage: atel load [--agents N] [--threads M] [--duration DUR | --sessions K] [--rate R]\n"
	"                 [--time-scale F] [--seed S] [--allow-loss] [--allow-no-daemon] [--json]\n"
	"Runs N agent processes (default 4) x M threads (default 2) recording through libatel\n"
	"into the shared-memory segment (--shm). Each thread runs orchestration sessions: an\n"
	"orchestration-session span (SERVER) with 2-4 sub-agent spans (<type>-execution), each\n"
	"with 1-5 tool calls (tool.<Name> CLIENT spans; log-normal latencies per tool, failure\n"
	"rates 1-10%), token counts, context usage, task outcomes, errors and queue sizes, via\n"
	"the atel_track_* helpers. Stops after DUR (default 10s) or K sessions per thread.\n"
	"  --rate R        sessions per second per thread (default: as fast as possible)\n"
	"  --time-scale F  sleep F x the simulated durations (default 0: no sleeping)\n"
	"The final report (--json: machine-readable) states exactly what was recorded: sessions,\n"
	"spans, agent executions by type and status, tool calls by tool and status, tokens,\n"
	"errors, and libatel's counters (records delivered, dropped by cause, the share lost).\n"
	"  --allow-loss    exit 0 even when records were dropped\n"
	"Exit: 0 ok, 1 usage, 2 a worker failed, 3 ateld not running (unless --allow-no-daemon:\n"
	"then every record is a counted no_sidecar drop, and loss is allowed), 6 records were\n"
	"dropped (the swarm outran the sidecar; lower --rate, --agents or --threads, or pass\n"
	"--allow-loss).\n";

/*
 * ateld takes its data-directory lock before it creates the segment, so
 * "running" can be seen a moment before agents can attach; an agent that
 * misses it retries only a second later, which a short swarm would spend
 * entirely as no_sidecar drops. Wait (bounded) for the segment to be READY.
 * @return true once it is.
 */
static bool wait_segment_ready(const struct cli *c, int timeout_ms)
{
	for (int waited = 0;; waited += 20) {
		struct atel_segment seg;

		if (atel__segment_attach(&seg, c->shm, NULL, 0) == 0) {
			bool ready = atomic_load_explicit(&seg.hdr->flags, memory_order_acquire) & ATEL_SHM_READY;

			atel__segment_detach(&seg);
			if (ready)
				return true;
		}
		if (waited >= timeout_ms)
			return false;
		usleep(20000);
	}
}

/* `atel load` options. */
struct load_args {
	long agents, threads;
	uint64_t duration, sessions, seed;
	double rate, scale;
	bool allow, have_duration;
	bool allow_loss;           /* --allow-loss */
};

/* What the swarm did, summed over its processes. */
struct load_result {
	struct load_counts total;
	int attached, failed;
	double secs;
	uint64_t agent_total, agent_ok, tool_total, tool_ok, drops;
};

/* @return 0, -1 (--help was printed) or ATEL_EXIT_USAGE. */
static int load_parse(struct load_args *a, int argc, char **argv)
{
	char err[256];

	*a = (struct load_args){ .agents = 4, .threads = 2, .duration = 10ull * 1000000000ull, .seed = 1 };
	for (int i = 1; i < argc; i++) {
		const char *v;
		char *end;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(load_help, stdout);
			return -1;
		}
		if ((v = cli_opt(argc, argv, &i, "--agents")) != NULL) {
			a->agents = strtol(v, &end, 10);
			if (*end || a->agents < 1 || a->agents > 1024) {
				cli_err("load", "--agents: expected 1..1024, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--threads")) != NULL) {
			a->threads = strtol(v, &end, 10);
			if (*end || a->threads < 1 || a->threads > 256) {
				cli_err("load", "--threads: expected 1..256, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--duration")) != NULL) {
			if (atel_q_parse_duration(v, &a->duration, err, sizeof(err)) < 0) {
				cli_err("load", "--duration: %s", err);
				return ATEL_EXIT_USAGE;
			}
			a->have_duration = true;
		} else if ((v = cli_opt(argc, argv, &i, "--sessions")) != NULL) {
			a->sessions = strtoull(v, &end, 10);
			if (*end || !*v || v[0] == '-' || a->sessions == 0) {
				cli_err("load", "--sessions: expected a positive count, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--rate")) != NULL) {
			a->rate = strtod(v, &end);
			if (*end || !(a->rate >= 0) || !isfinite(a->rate)) {
				cli_err("load", "--rate: expected sessions per second >= 0, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--time-scale")) != NULL) {
			a->scale = strtod(v, &end);
			if (*end || !(a->scale >= 0) || a->scale > 10) {
				cli_err("load", "--time-scale: expected 0..10, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if ((v = cli_opt(argc, argv, &i, "--seed")) != NULL) {
			a->seed = strtoull(v, &end, 10);
			if (*end || !*v) {
				cli_err("load", "--seed: expected a number, got \"%s\"", v);
				return ATEL_EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--allow-no-daemon") == 0) {
			a->allow = true;
		} else if (strcmp(argv[i], "--allow-loss") == 0) {
			a->allow_loss = true;
		} else {
			cli_err("load", "unexpected argument %s (see atel load --help)", argv[i]);
			return ATEL_EXIT_USAGE;
		}
	}
	if (a->have_duration && a->sessions) {
		cli_err("load", "--duration and --sessions exclude each other");
		return ATEL_EXIT_USAGE;
	}
	return 0;
}

/* Forks the agent processes, waits for them and sums what they report.
 * @return 0 or ATEL_EXIT_DATA (out of memory). */
static int load_run(const struct cli *c, const struct load_args *a, struct load_result *res)
{
	struct worker proto = { .seed = a->seed, .time_scale = a->scale, .session_rate = a->rate,
				.sessions_max = a->sessions };
	uint64_t t0 = atel__mono_ns();
	struct sigaction sa = { .sa_handler = on_stop };
	pid_t *pids = calloc((size_t)a->agents, sizeof(*pids));
	int *fds = calloc((size_t)a->agents, sizeof(*fds));

	memset(res, 0, sizeof(*res));
	if (!a->sessions)
		proto.deadline_ns = t0 + a->duration;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!pids || !fds) {
		free(pids);
		free(fds);
		return ATEL_EXIT_DATA;
	}
	fflush(stdout);
	fflush(stderr);
	for (long p = 0; p < a->agents; p++) {
		int pfd[2];
		if (pipe(pfd) < 0) {
			res->failed++;
			pids[p] = -1;
			continue;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			for (long q = 0; q < p; q++)
				if (fds[q] >= 0)
					close(fds[q]);
			proto.proc = (int)p;
			_exit(child_main(c->shm, &proto, (int)a->threads, pfd[1]));
		}
		close(pfd[1]);
		if (pid < 0) {
			close(pfd[0]);
			pids[p] = -1;
			fds[p] = -1;
			res->failed++;
			continue;
		}
		pids[p] = pid;
		fds[p] = pfd[0];
	}
	for (long p = 0; p < a->agents; p++) {
		if (pids[p] < 0)
			continue;
		struct load_counts one;
		size_t got = 0;
		while (got < sizeof(one)) {
			ssize_t r = read(fds[p], (char *)&one + got, sizeof(one) - got);
			if (r < 0 && errno == EINTR) {
				if (stop_flag)
					kill(pids[p], SIGTERM);
				continue;
			}
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fds[p]);
		int st = 0;
		while (waitpid(pids[p], &st, 0) < 0 && errno == EINTR)
			;
		if (got != sizeof(one) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			res->failed++;
			continue;
		}
		add_counts(&res->total, &one);
		add_stats(&res->total.stats, &one.stats);
		res->attached += one.attached;
	}
	free(pids);
	free(fds);
	res->secs = (double)(atel__mono_ns() - t0) / 1e9;
	for (int i = 0; i < NAGENTS; i++) {
		res->agent_total += res->total.agent_exec[i][0] + res->total.agent_exec[i][1];
		res->agent_ok += res->total.agent_exec[i][1];
	}
	for (int i = 0; i < NTOOLS; i++) {
		res->tool_total += res->total.tool_calls[i][0] + res->total.tool_calls[i][1];
		res->tool_ok += res->total.tool_calls[i][1];
	}
	{
		const atel_stats *s = &res->total.stats;

		res->drops = s->drops_ring_full + s->drops_no_ring + s->drops_no_def + s->drops_no_sidecar +
			     s->drops_reentrant;
	}
	return 0;
}

/* Dropped records / records attempted (delivered data records + drops). */
static double load_loss_share(const struct load_result *res)
{
	double all = (double)res->total.stats.records + (double)res->drops;
	return all > 0 ? (double)res->drops / all : 0;
}

static void load_print_json(const struct load_args *a, const struct load_result *res)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "agents", (double)a->agents);
	cJSON_AddNumberToObject(j, "threads", (double)a->threads);
	cJSON_AddNumberToObject(j, "processes_attached", res->attached);
	cJSON_AddNumberToObject(j, "workers_failed", res->failed);
	cJSON_AddNumberToObject(j, "seconds", res->secs);
	cJSON_AddNumberToObject(j, "seed", (double)a->seed);
	cJSON_AddItemToObject(j, "sessions", cli_json_u64(res->total.sessions));
	cJSON_AddItemToObject(j, "spans", cli_json_u64(res->total.spans));
	cJSON_AddItemToObject(j, "span_errors", cli_json_u64(res->total.span_errors));
	cJSON_AddItemToObject(j, "span_events", cli_json_u64(res->total.span_events));
	cJSON *ae = cJSON_CreateObject();
	cJSON_AddItemToObject(ae, "total", cli_json_u64(res->agent_total));
	cJSON_AddItemToObject(ae, "success", cli_json_u64(res->agent_ok));
	cJSON_AddItemToObject(ae, "failure", cli_json_u64(res->agent_total - res->agent_ok));
	cJSON *bt = cJSON_CreateObject();
	for (int i = 0; i < NAGENTS; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "success", cli_json_u64(res->total.agent_exec[i][1]));
		cJSON_AddItemToObject(o, "failure", cli_json_u64(res->total.agent_exec[i][0]));
		cJSON_AddItemToObject(bt, agent_types[i], o);
	}
	cJSON_AddItemToObject(ae, "by_type", bt);
	cJSON_AddItemToObject(j, "agent_executions", ae);
	cJSON_AddItemToObject(j, "tokens", cli_json_u64(res->total.tokens));
	cJSON *tc = cJSON_CreateObject();
	cJSON_AddItemToObject(tc, "total", cli_json_u64(res->tool_total));
	cJSON_AddItemToObject(tc, "success", cli_json_u64(res->tool_ok));
	cJSON_AddItemToObject(tc, "failure", cli_json_u64(res->tool_total - res->tool_ok));
	cJSON *bt2 = cJSON_CreateObject();
	for (int i = 0; i < NTOOLS; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "success", cli_json_u64(res->total.tool_calls[i][1]));
		cJSON_AddItemToObject(o, "failure", cli_json_u64(res->total.tool_calls[i][0]));
		cJSON_AddItemToObject(bt2, tools[i].name, o);
	}
	cJSON_AddItemToObject(tc, "by_tool", bt2);
	cJSON_AddItemToObject(j, "tool_calls", tc);
	cJSON_AddItemToObject(j, "context_updates", cli_json_u64(res->total.context_updates));
	cJSON_AddItemToObject(j, "errors", cli_json_u64(res->total.errors));
	cJSON_AddItemToObject(j, "tasks_success", cli_json_u64(res->total.tasks_ok));
	cJSON_AddItemToObject(j, "tasks_failure", cli_json_u64(res->total.tasks_failed));
	cJSON_AddItemToObject(j, "queue_updates", cli_json_u64(res->total.queue_updates));
	cJSON *lj = cJSON_CreateObject();
	cJSON_AddItemToObject(lj, "records", cli_json_u64(res->total.stats.records));
	cJSON_AddItemToObject(lj, "definitions", cli_json_u64(res->total.stats.definitions));
	cJSON_AddItemToObject(lj, "meta", cli_json_u64(res->total.stats.meta));
	cJSON_AddItemToObject(lj, "slots", cli_json_u64(res->total.stats.slots));
	cJSON *dj = cJSON_CreateObject();
	cJSON_AddItemToObject(dj, "ring_full", cli_json_u64(res->total.stats.drops_ring_full));
	cJSON_AddItemToObject(dj, "no_ring", cli_json_u64(res->total.stats.drops_no_ring));
	cJSON_AddItemToObject(dj, "no_def", cli_json_u64(res->total.stats.drops_no_def));
	cJSON_AddItemToObject(dj, "no_sidecar", cli_json_u64(res->total.stats.drops_no_sidecar));
	cJSON_AddItemToObject(dj, "reentrant", cli_json_u64(res->total.stats.drops_reentrant));
	cJSON_AddItemToObject(lj, "drops", dj);
	cJSON_AddItemToObject(lj, "drops_total", cli_json_u64(res->drops));
	cJSON_AddItemToObject(lj, "delivered", cli_json_u64(res->total.stats.records));
	cJSON_AddNumberToObject(lj, "loss_share", load_loss_share(res));
	cJSON_AddItemToObject(lj, "invalid", cli_json_u64(res->total.stats.invalid));
	cJSON_AddItemToObject(lj, "rings_claimed", cli_json_u64(res->total.stats.rings_claimed));
	cJSON_AddItemToObject(lj, "rings_released", cli_json_u64(res->total.stats.rings_released));
	cJSON_AddItemToObject(j, "libatel", lj);
	cli_print_json(j);
}

static void load_print_text(const struct cli *c, const struct load_args *a, const struct load_result *res)
{
	const atel_stats *st = &res->total.stats;
	char b[8][32];
	printf("%satel load%s: %ld agent process(es) x %ld thread(s), %.1f s, %d attached\n", cli_c(c, C_BOLD),
	       cli_c(c, C_RESET), a->agents, a->threads, res->secs, res->attached);
	printf("sessions %s, spans %s (%s errors), agent executions %s (%s ok), tool calls %s (%s ok), tokens %s\n",
	       atel_q_fmt_count((double)res->total.sessions, b[0], 32),
	       atel_q_fmt_count((double)res->total.spans, b[1], 32),
	       atel_q_fmt_count((double)res->total.span_errors, b[2], 32),
	       atel_q_fmt_count((double)res->agent_total, b[3], 32), atel_q_fmt_count((double)res->agent_ok, b[4], 32),
	       atel_q_fmt_count((double)res->tool_total, b[5], 32), atel_q_fmt_count((double)res->tool_ok, b[6], 32),
	       atel_q_fmt_count((double)res->total.tokens, b[7], 32));
	printf("libatel: %s records (%s/s), %s definitions, drops: ring full %s, no ring %s, no def %s, "
	       "no sidecar %s\n",
	       atel_q_fmt_count((double)st->records, b[0], 32),
	       atel_q_fmt_count(res->secs > 0 ? (double)st->records / res->secs : 0, b[1], 32),
	       atel_q_fmt_count((double)st->definitions, b[2], 32), atel_q_fmt_count((double)st->drops_ring_full, b[3], 32),
	       atel_q_fmt_count((double)st->drops_no_ring, b[4], 32), atel_q_fmt_count((double)st->drops_no_def, b[5], 32),
	       atel_q_fmt_count((double)st->drops_no_sidecar, b[6], 32));
	printf("%sdelivered %s records, dropped %s: %.2f%% lost%s\n",
	       cli_c(c, res->drops ? C_RED : C_GREEN), atel_q_fmt_count((double)st->records, b[0], 32),
	       atel_q_fmt_count((double)res->drops, b[1], 32), 100.0 * load_loss_share(res), cli_c(c, C_RESET));
	if (res->failed)
		printf("%s%d worker process(es) failed%s\n", cli_c(c, C_RED), res->failed, cli_c(c, C_RESET));
}

int cmd_load(struct cli *c, int argc, char **argv)
{
	struct load_args a;
	struct load_result res;
	int rc = load_parse(&a, argc, argv);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (!a.allow && !cli_daemon_running(c, NULL, NULL)) {
		cli_no_daemon_err(c, "load", "or pass --allow-no-daemon");
		return ATEL_EXIT_NO_DAEMON;
	}
	if (!a.allow && !wait_segment_ready(c, 10000)) {
		cli_err("load",
			"ateld runs on %s but segment \"%s\" (from %s) did not become ready within 10 s; `atel "
			"status` names the segment it uses (say it with --shm NAME or $ATEL_SHM)",
			c->data_dir, c->shm, c->shm_from);
		return ATEL_EXIT_NO_DAEMON;
	}
	if ((rc = load_run(c, &a, &res)))
		return rc;
	if (c->json)
		load_print_json(&a, &res);
	else
		load_print_text(c, &a, &res);
	if (res.failed)
		return ATEL_EXIT_DATA;
	if (res.drops && !a.allow_loss && !a.allow) {
		cli_err("load", "%llu record(s) dropped (%.2f%% of the run): this swarm outran the sidecar; lower "
			"--rate, --agents or --threads, or pass --allow-loss",
			(unsigned long long)res.drops, 100.0 * load_loss_share(&res));
		return ATEL_EXIT_LOSS;
	}
	return 0;
}
