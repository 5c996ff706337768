/* SPDX-License-Identifier: MIT */
/*
 * libatel against segments it must not trust or that are cut under it
 * (issue 12, items 2 and 3):
 *  - a segment writable by every user is refused (-EPERM, atel_last_error
 *    says why), and so is one owned by another user unless it is the
 *    trusted sidecar user;
 *  - a segment truncated by someone while the agent records: no SIGBUS
 *    reaches the agent, the fault is counted, and the agent moves to the
 *    sidecar's new segment as soon as there is one;
 *  - a SIGBUS that is not ours still reaches the handler installed before.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "ptest.h"
#include "sigbus.h"

static char path[256];

static void test_world_writable_refused(void **state)
{
	struct atel_segment seg;

	(void)state;
	pt_path(path, sizeof(path), "trust-ww");
	assert_int_equal(pt_create(&seg, path, 2, 256), 0);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(atel_init(path), -EPERM);
	assert_non_null(strstr(atel_last_error(), "writable by every user"));
	assert_non_null(strstr(atel_last_error(), path));
	assert_false(atel_attached());
	atel_shutdown();
	atel__segment_detach(&seg);
	unlink(path);
}

static void test_owner_rules(void **state)
{
	struct atel_segment s = { .owner_uid = 4242, .mode = 0600 };
	char err[256];

	(void)state;
	snprintf(s.name, sizeof(s.name), "x");
	assert_int_equal(atel__segment_trusted(&s, -1, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "uid 4242"));
	assert_int_equal(atel__segment_trusted(&s, 4242, err, sizeof(err)), 0); /* ATEL_SHM_OWNER */
	s.owner_uid = (uint32_t)geteuid();
	assert_int_equal(atel__segment_trusted(&s, -1, err, sizeof(err)), 0);
	s.owner_uid = 0;
	assert_int_equal(atel__segment_trusted(&s, -1, err, sizeof(err)), 0); /* root's sidecar */
	s.mode = 0606;
	assert_int_equal(atel__segment_trusted(&s, -1, err, sizeof(err)), -EPERM);
	s.mode = 0660;
	assert_int_equal(atel__segment_trusted(&s, -1, err, sizeof(err)), 0); /* group sharing is the operator's choice */
}

static void test_truncated_under_agent(void **state)
{
	struct atel_segment seg, fresh;
	atel_series c;
	atel_stats st;
	int ring = -1;

	(void)state;
	pt_path(path, sizeof(path), "trunc");
	assert_int_equal(pt_create(&seg, path, 2, 4096), 0);
	assert_int_equal(atel_init(path), 0);
	c = atel_counter("trunc_total", NULL);
	for (int i = 0; i < 100; i++)
		atel_add(c, 1);
	/* someone cuts the segment to its header page while the agent records */
	assert_int_equal(truncate(path, 4096), 0);
	for (int i = 0; i < 20000; i++) {
		atel_add(c, 1);
		atel_span s = atel_trace_start("after-truncate", ATEL_SPAN_INTERNAL);
		atel_span_end(&s, ATEL_STATUS_OK, NULL);
	}
	atel_stats_get(&st);
	assert_true(st.segment_faults > 0); /* absorbed, and we are still here */
	/* the sidecar recreates its segment: the agent moves there */
	atel__segment_detach(&seg);
	unlink(path);
	assert_int_equal(pt_create(&fresh, path, 2, 4096), 0);
	for (int i = 0; i < 300 && ring < 0; i++) {
		atomic_store(&fresh.hdr->heartbeat_ns, atel__now_ns());
		atel_add(c, 1);
		ring = pt_ring_of(&fresh, getpid());
		if (ring < 0)
			usleep(10000);
	}
	assert_true(ring >= 0);
	atel_shutdown();
	atel__segment_detach(&fresh);
	unlink(path);
}

static sigjmp_buf jb;
static volatile sig_atomic_t theirs;

static void their_handler(int sig)
{
	(void)sig;
	theirs++;
	siglongjmp(jb, 1);
}

/*
 * Run in a fresh process (the test re-executes itself with --chain): the
 * program's own SIGBUS handler is installed first, then libatel's guard. A
 * SIGBUS inside the guarded mapping is absorbed; one elsewhere reaches the
 * program's handler.
 */
static int chain_main(void)
{
	static char page[4096];
	char fpath[300];
	volatile char *mine, *other;
	int fd;

	signal(SIGBUS, their_handler);
	pt_path(fpath, sizeof(fpath), "sigbus-chain");
	fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, page, sizeof(page)) != (ssize_t)sizeof(page))
		return 1;
	mine = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	other = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mine == MAP_FAILED || other == MAP_FAILED || atel__sigbus_guard((void *)mine, 8192) != 0)
		return 1;
	mine[5000] = 7; /* past the file's end, inside the guarded mapping: absorbed */
	if (mine[5000] != 7 || theirs != 0 || !atel__sigbus_truncated((const void *)mine) ||
	    atel__sigbus_absorbed() != 1) {
		fprintf(stderr, "FAIL: guarded fault: theirs %d, absorbed %llu\n", (int)theirs,
			(unsigned long long)atel__sigbus_absorbed());
		return 1;
	}
	if (sigsetjmp(jb, 1) == 0)
		other[5000] = 1; /* the same fault outside the guard: the program's handler gets it */
	if (theirs != 1 || atel__sigbus_absorbed() != 1) {
		fprintf(stderr, "FAIL: foreign fault: theirs %d, absorbed %llu\n", (int)theirs,
			(unsigned long long)atel__sigbus_absorbed());
		return 1;
	}
	unlink(fpath);
	printf("sigbus chain: our fault absorbed, the foreign one reached the program's handler\n");
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_world_writable_refused),
		cmocka_unit_test(test_owner_rules),
		cmocka_unit_test(test_truncated_under_agent),
	};
	int rc;
	pid_t pid;
	int status;

	if (argc > 1 && !strcmp(argv[1], "--chain"))
		return chain_main();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (rc)
		return rc;
	pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "--chain", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
