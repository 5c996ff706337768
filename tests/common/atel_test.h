/* SPDX-License-Identifier: MIT */
/*
 * atel_test.h - what every cmocka runner shares: a case filter, so that one
 * case of a suite can be run alone (README "Development"):
 *
 *   ATEL_TEST_FILTER='test_torn*' meson test -C build log_reader -v
 *
 * The pattern is cmocka's (`*` and `?` wildcards) matched against the case
 * names; no variable, or an empty one, runs every case. Include after
 * <cmocka.h> and call ATEL_TEST_RUN instead of cmocka_run_group_tests.
 */
#ifndef ATEL_TEST_H
#define ATEL_TEST_H

#include <stdlib.h>

static inline void atel_test_filter(void)
{
	const char *f = getenv("ATEL_TEST_FILTER");

	if (f && *f)
		cmocka_set_test_filter(f);
}

/* cmocka_run_group_tests with the ATEL_TEST_FILTER case filter applied. */
#define ATEL_TEST_RUN(tests, setup, teardown) \
	(atel_test_filter(), cmocka_run_group_tests(tests, setup, teardown))

#endif /* ATEL_TEST_H */
