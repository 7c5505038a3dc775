/* Unit tests for agent/log.c: the line format, the level check, rate limiting, and that
 * outside input in a message cannot forge a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/log.h"

/* Runs @fn with stderr sent to a file and returns what it wrote (static buffer). */
static const char *capture(void (*fn)(void))
{
	static char out[4096];
	char path[] = "/tmp/meshdns-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, out, sizeof out - 1);
	out[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(path);
	return out;
}

static void write_hostile(void)
{
	log_warn("mesh", "skipped host \"%s\"", "evil\nerror [main] forged\x1b[2J\xff");
}

static void test_outside_input_cannot_forge_a_line(void **state)
{
	(void)state;
	log_level_current = LOG_LEVEL_INFO;
	const char *out = capture(write_hostile);
	assert_string_equal(out, "warn [mesh] skipped host \"evil\\x0aerror [main] "
				 "forged\\x1b[2J\\xff\"\n");
}

static void write_debug(void)
{
	log_debug("cache", "hidden %d", 1);
	log_info("main", "shown %d", 2);
}

static void test_level_filters_before_formatting(void **state)
{
	(void)state;
	log_level_current = LOG_LEVEL_INFO;
	assert_string_equal(capture(write_debug), "info [main] shown 2\n");
	assert_int_equal(log_level_parse("debug"), LOG_LEVEL_DEBUG);
	assert_true(log_level_parse("verbose") < 0);
}

static void test_rate_limit_allows_a_burst_then_reports_suppressed(void **state)
{
	(void)state;
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 2);

	assert_int_equal(log_ratelimit_ok(&rl, "t", 5000), 1);
	assert_int_equal(log_ratelimit_ok(&rl, "t", 5001), 1);
	assert_int_equal(log_ratelimit_ok(&rl, "t", 5002), 0);
	assert_int_equal(log_ratelimit_ok(&rl, "t", 5003), 0);
	assert_int_equal(rl.suppressed, 2);
	assert_int_equal(log_ratelimit_ok(&rl, "t", 6100), 1); /* a new window */
	assert_int_equal(rl.suppressed, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outside_input_cannot_forge_a_line),
		cmocka_unit_test(test_level_filters_before_formatting),
		cmocka_unit_test(test_rate_limit_allows_a_burst_then_reports_suppressed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
