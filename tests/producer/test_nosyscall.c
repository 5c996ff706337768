/* SPDX-License-Identifier: MIT */
/*
 * The hot path makes no system call: after warm-up, 1,000,000 samples and
 * 100,000 spans (start, attribute, event, end) run in a child under a
 * seccomp filter that kills the process on any system call but exit_group.
 * The parent drains the rings meanwhile (it is the consumer) and checks the
 * child's counts. A control child that makes one getpid() call under the same
 * filter must die of SIGSYS, so the filter demonstrably bites.
 * Exit 0 pass, 1 fail, 77 skip (seccomp unavailable).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptest.h"

#define SAMPLES 1000000
#define SPANS 100000

struct result {
	int done;
	atel_stats st0, st1;
};

static int install_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { .len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return -errno;
	return 0;
}

static void hot_loop(atel_series c, atel_series h)
{
	for (int i = 0; i < SAMPLES; i++) {
		if (i & 1)
			atel_add(c, 1);
		else
			atel_observe(h, (double)(i & 1023) * 0.001);
	}
	for (int i = 0; i < SPANS; i++) {
		atel_span s = atel_trace_start("tool-call", ATEL_SPAN_CLIENT);
		atel_span_set_int(&s, "attempt", i);
		atel_span_add_event(&s, "sent");
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
}

/* Child: warm up, lock down, run, report through shared memory, exit_group. */
static void child(struct result *res, int control)
{
	atel_series c = atel_counter("nosys_total", "k", "v", NULL);
	atel_series h = atel_histogram("nosys_seconds", NULL);
	atel_span s;

	/* warm-up: claim the ring, define names, seed the id generator */
	atel_add(c, 1);
	atel_observe(h, 0.1);
	s = atel_trace_start("tool-call", ATEL_SPAN_CLIENT);
	atel_span_set_int(&s, "attempt", 0);
	atel_span_add_event(&s, "sent");
	atel_span_end(&s, ATEL_STATUS_OK, NULL);
	atel_stats_get(&res->st0);
	if (install_filter())
		syscall(SYS_exit_group, 77);
	if (control)
		(void)syscall(SYS_getpid); /* must be fatal */
	hot_loop(c, h);
	atel_stats_get(&res->st1);
	res->done = 1;
	syscall(SYS_exit_group, 0);
}

static int run_child(const struct atel_segment *seg, struct result *res, int control)
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0)
		child(res, control);
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		/* the parent plays a live consumer: heartbeat and drain */
		atomic_store(&seg->hdr->heartbeat_ns, atel__now_ns());
		for (uint32_t r = 0; r < seg->ring_count; r++)
			pt_drain(seg, r);
		usleep(200);
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int main(void)
{
	char path[256];
	struct atel_segment seg;
	struct result *res;
	uint64_t recs, drops, folded, frecs, sdrop;
	int rc;

	pt_path(path, sizeof(path), "nosys");
	if (pt_create(&seg, path, 4, 1u << 16)) {
		fprintf(stderr, "cannot create segment\n");
		return 1;
	}
	if (atel_init(path)) {
		fprintf(stderr, "atel_init failed\n");
		return 1;
	}
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		return 1;

	/* control: a system call under the filter kills the child */
	memset(res, 0, sizeof(*res));
	rc = run_child(&seg, res, 1);
	if (rc == 77) {
		printf("SKIP: seccomp filters unavailable\n");
		return 77;
	}
	if (rc != 128 + SIGSYS || res->done) {
		fprintf(stderr, "FAIL: control child survived a system call under the filter (rc %d)\n", rc);
		return 1;
	}

	memset(res, 0, sizeof(*res));
	rc = run_child(&seg, res, 0);
	if (rc != 0 || !res->done) {
		fprintf(stderr, "FAIL: hot loop made a system call (child status %d%s)\n", rc,
			rc == 128 + SIGSYS ? ", killed by seccomp" : "");
		return 1;
	}
	recs = res->st1.records - res->st0.records;
	drops = (res->st1.drops_ring_full - res->st0.drops_ring_full) +
		(res->st1.drops_no_def - res->st0.drops_no_def);
	folded = res->st1.folded - res->st0.folded;
	frecs = res->st1.folded_records - res->st0.folded_records;
	sdrop = res->st1.spans_dropped - res->st0.spans_dropped;
	printf("hot loop: %llu records written (%llu of them folding %llu calls), %llu dropped (ring full), "
	       "%llu spans dropped whole, 0 system calls\n", (unsigned long long)recs, (unsigned long long)frecs,
	       (unsigned long long)folded, (unsigned long long)drops, (unsigned long long)sdrop);
	/*
	 * Every call is accounted for: a metric call is a record or a fold (a
	 * folded record then stands for several); a span's 4 calls are records
	 * or drops, or, when its start was dropped, 1 drop for the whole span.
	 */
	if (recs - frecs + folded + drops + 3 * sdrop != SAMPLES + 4ull * SPANS) {
		fprintf(stderr, "FAIL: %llu written - %llu folded records + %llu folded calls + %llu dropped + 3 x %llu "
			"dropped spans != %llu calls\n", (unsigned long long)recs, (unsigned long long)frecs,
			(unsigned long long)folded, (unsigned long long)drops, (unsigned long long)sdrop,
			(unsigned long long)(SAMPLES + 4ull * SPANS));
		return 1;
	}
	if (recs == 0) {
		fprintf(stderr, "FAIL: nothing written\n");
		return 1;
	}
	atel_shutdown();
	atel__segment_detach(&seg);
	unlink(path);
	printf("PASS\n");
	return 0;
}
