/* SPDX-License-Identifier: MIT */
/*
 * tpidns - a libatel agent for the liveness-lock tests (pidns_test.py):
 * adds 1 to tagent_burst_total{p=ID,t=T} N times (0: until SIGTERM),
 * sleeping PACE microseconds after each add, then atel_shutdown().
 *
 *   tpidns --shm NAME --id P [--adds N] [--pace-us US] [--progress FILE]
 *          [--fork] [--out PREFIX]
 *
 * --fork      after its first add (its ring is claimed) the process forks; the
 *             child runs the same loop as t=1 (its own ring), the parent as t=0
 * --progress  {started, done} add counts per t, u64 pairs in FILE (MAP_SHARED,
 *             shared by parent and child), for a test that kills the agent
 * --out       each process writes its result to PREFIX.T on exit:
 *             {"id":P,"t":T,"written":N,"drops":D}
 */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atel.h"

static volatile sig_atomic_t g_stop;

static void on_term(int sig)
{
	(void)sig;
	g_stop = 1;
}

int main(int argc, char **argv)
{
	const char *shm = NULL, *out = NULL;
	long long adds = 0;
	int id = 0, pace = 0, do_fork = 0, t = 0;
	_Atomic uint64_t *pr = NULL;
	char p[16], ts[16];
	atel_series c;
	atel_stats st;
	long long i;
	int rc;

	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--fork")) {
			do_fork = 1;
			continue;
		}
		if (a + 1 >= argc)
			break;
		if (!strcmp(argv[a], "--shm"))
			shm = argv[++a];
		else if (!strcmp(argv[a], "--id"))
			id = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--adds"))
			adds = atoll(argv[++a]);
		else if (!strcmp(argv[a], "--pace-us"))
			pace = atoi(argv[++a]);
		else if (!strcmp(argv[a], "--out"))
			out = argv[++a];
		else if (!strcmp(argv[a], "--progress")) {
			int fd = open(argv[++a], O_RDWR | O_CREAT | O_TRUNC, 0600);

			if (fd < 0 || ftruncate(fd, 64) != 0) {
				perror("tpidns: --progress");
				return 1;
			}
			pr = mmap(NULL, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			close(fd);
			if (pr == MAP_FAILED) {
				perror("tpidns: --progress mmap");
				return 1;
			}
		}
	}
	if (!shm) {
		fprintf(stderr, "usage: tpidns --shm NAME --id P [--adds N] [--pace-us US] [--progress F] [--fork] "
				"[--out PREFIX]\n");
		return 1;
	}
	signal(SIGTERM, on_term);
	rc = atel_init(shm);
	if (rc) {
		fprintf(stderr, "tpidns: atel_init(%s): %d %s\n", shm, rc, atel_last_error());
		return 1;
	}
	snprintf(p, sizeof(p), "%d", id);
	snprintf(ts, sizeof(ts), "%d", t);
	c = atel_counter("tagent_burst_total", "p", p, "t", ts, NULL);
	for (i = 0; !g_stop && (adds == 0 || i < adds); i++) {
		if (pr)
			atomic_store_explicit(&pr[2 * t], (uint64_t)i + 1, memory_order_relaxed);
		atel_add(c, 1);
		if (pr)
			atomic_store_explicit(&pr[2 * t + 1], (uint64_t)i + 1, memory_order_relaxed);
		if (do_fork && t == 0 && i == 0) {
			pid_t k = fork();

			if (k < 0) {
				perror("tpidns: fork");
				return 1;
			}
			if (k == 0) {
				/* the child: its own series, its own ring (libatel's atfork handler) */
				t = 1;
				i = -1;
				snprintf(ts, sizeof(ts), "%d", t);
				c = atel_counter("tagent_burst_total", "p", p, "t", ts, NULL);
				continue;
			}
		}
		if (pace)
			usleep((useconds_t)pace);
	}
	atel_shutdown();
	atel_stats_get(&st);
	if (out) {
		char path[4096];
		FILE *f;

		snprintf(path, sizeof(path), "%s.%d", out, t);
		f = fopen(path, "w");
		if (!f) {
			perror("tpidns: --out");
			return 1;
		}
		fprintf(f, "{\"id\":%d,\"t\":%d,\"written\":%lld,\"drops\":%" PRIu64 ",\"records\":%" PRIu64 "}\n", id, t,
			i, st.drops_ring_full + st.drops_no_ring + st.drops_no_def + st.drops_no_sidecar, st.records);
		fclose(f);
	}
	return 0;
}
