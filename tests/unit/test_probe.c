/* Unit tests for agent/probe.c: what /health and /ready answer. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/probe.h"

#define NOW 1764000000000ull /* ms */

static void test_health_is_ok_while_every_loop_turns(void **state)
{
	(void)state;
	/* stamped in whole seconds: up to 1 s behind on a healthy loop */
	uint64_t beats[] = { NOW - 900, NOW - 100, NOW };
	char why[80];

	assert_int_equal(probe_health(beats, 3, NOW, NOW - 60000, PROBE_SILENT_MS, why, sizeof why),
			 0);
	assert_string_equal(why, "OK");
}

static void test_health_fails_on_a_silent_loop_and_names_it(void **state)
{
	(void)state;
	uint64_t beats[] = { NOW - 1000, NOW - 7300 };
	char why[80];

	assert_int_equal(probe_health(beats, 2, NOW, NOW - 60000, PROBE_SILENT_MS, why, sizeof why),
			 -ETIMEDOUT);
	assert_string_equal(why, "worker 1: loop silent for 7.3 s");
	/* at the limit it is still alive */
	beats[1] = NOW - PROBE_SILENT_MS;
	assert_int_equal(probe_health(beats, 2, NOW, NOW - 60000, PROBE_SILENT_MS, why, sizeof why),
			 0);
}

static void test_a_loop_not_stamped_yet_counts_from_start(void **state)
{
	(void)state;
	uint64_t beats[] = { 0 };
	char why[80];

	assert_int_equal(probe_health(beats, 1, NOW, NOW - 2000, PROBE_SILENT_MS, why, sizeof why),
			 0);
	assert_int_equal(probe_health(beats, 1, NOW, NOW - 6000, PROBE_SILENT_MS, why, sizeof why),
			 -ETIMEDOUT);
}

static void test_a_clock_set_back_is_not_a_dead_loop(void **state)
{
	(void)state;
	uint64_t beats[] = { NOW + 3600000 };
	char why[80];

	assert_int_equal(probe_health(beats, 1, NOW, NOW, PROBE_SILENT_MS, why, sizeof why), 0);
}

static void test_ready_names_the_first_thing_missing(void **state)
{
	(void)state;
	struct probe_state s = { .listeners = false, .interface = false, .synced = false };
	char why[80];

	/* in start-up order: interface, first sync, then the listeners (bound after the sync) */
	assert_int_equal(probe_ready(&s, why, sizeof why), -EAGAIN);
	assert_string_equal(why, "listen interface not in place yet");
	s.interface = true;
	assert_int_equal(probe_ready(&s, why, sizeof why), -EAGAIN);
	assert_string_equal(why, "first ServiceEntry sync not done yet");
	s.synced = true;
	assert_int_equal(probe_ready(&s, why, sizeof why), -EAGAIN);
	assert_string_equal(why, "DNS listeners not bound yet");
	s.listeners = true;
	assert_int_equal(probe_ready(&s, why, sizeof why), 0);
	assert_string_equal(why, "OK");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health_is_ok_while_every_loop_turns),
		cmocka_unit_test(test_health_fails_on_a_silent_loop_and_names_it),
		cmocka_unit_test(test_a_loop_not_stamped_yet_counts_from_start),
		cmocka_unit_test(test_a_clock_set_back_is_not_a_dead_loop),
		cmocka_unit_test(test_ready_names_the_first_thing_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
