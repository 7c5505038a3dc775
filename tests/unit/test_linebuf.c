/* Unit tests for k8s/linebuf.c: watch events come out whole and in order however HTTP chunks
 * cut the stream (SEMANTICS.md rule 40), and a line past the cap fails cleanly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/linebuf.h"

static const char STREAM[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}"
	"\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"2\"}}}\n"
	"\n"
	"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\\nb\"}}}\r\n";
static const char *const LINES[] = {
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"1\"}}}",
	"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"2\"}}}",
	"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\\nb\"}}}",
};

struct seen {
	size_t n;
	char lines[8][128];
};

static int collect(void *arg, const char *line, size_t len)
{
	struct seen *s = arg;

	assert_true(s->n < 8 && len < 128);
	memcpy(s->lines[s->n], line, len);
	s->lines[s->n][len] = 0;
	s->n++;
	return 0;
}

static void check(const struct seen *s)
{
	assert_int_equal(s->n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(s->lines[i], LINES[i]);
}

static void test_events_split_at_every_pair_of_byte_boundaries(void **state)
{
	size_t len = sizeof(STREAM) - 1;

	(void)state;
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			struct linebuf *lb = linebuf_new(4096);
			struct seen s = { 0 };
			assert_int_equal(linebuf_feed(lb, STREAM, i, collect, &s), 0);
			assert_int_equal(linebuf_feed(lb, STREAM + i, j - i, collect, &s), 0);
			assert_int_equal(linebuf_feed(lb, STREAM + j, len - j, collect, &s), 0);
			check(&s);
			assert_int_equal(linebuf_pending(lb), 0);
			linebuf_free(lb);
		}
	}
}

static void test_events_fed_one_byte_at_a_time(void **state)
{
	struct linebuf *lb = linebuf_new(4096);
	struct seen s = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(STREAM) - 1; i++)
		assert_int_equal(linebuf_feed(lb, STREAM + i, 1, collect, &s), 0);
	check(&s);
	linebuf_free(lb);
}

static void test_partial_line_waits_for_its_newline(void **state)
{
	struct linebuf *lb = linebuf_new(4096);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(linebuf_feed(lb, "{\"a\":1}\n{\"b\"", 12, collect, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(linebuf_pending(lb), 4);
	linebuf_reset(lb); /* a new stream: the fragment is dropped */
	assert_int_equal(linebuf_feed(lb, "{\"c\":3}\n", 8, collect, &s), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.lines[1], "{\"c\":3}");
	linebuf_free(lb);
}

static void test_line_at_the_cap_passes_and_one_byte_more_fails(void **state)
{
	char line[66];
	struct linebuf *lb = linebuf_new(64);
	struct seen s = { 0 };

	(void)state;
	memset(line, 'x', 64);
	line[64] = '\n';
	assert_int_equal(linebuf_feed(lb, line, 30, collect, &s), 0);
	assert_int_equal(linebuf_feed(lb, line + 30, 35, collect, &s), 0);
	assert_int_equal(s.n, 1);
	memset(line, 'y', 65);
	line[65] = '\n';
	assert_int_equal(linebuf_feed(lb, line, 66, collect, &s), -E2BIG);
	assert_int_equal(linebuf_feed(lb, line, 40, collect, &s), 0);
	assert_int_equal(linebuf_feed(lb, line + 40, 26, collect, &s), -E2BIG);
	assert_int_equal(s.n, 1);
	linebuf_free(lb);
}

static int stop_at_second(void *arg, const char *line, size_t len)
{
	struct seen *s = arg;

	(void)line;
	(void)len;
	return ++s->n == 2 ? -ECANCELED : 0;
}

static void test_callback_error_stops_the_feed(void **state)
{
	struct linebuf *lb = linebuf_new(4096);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(linebuf_feed(lb, "a\nb\nc\n", 6, stop_at_second, &s), -ECANCELED);
	assert_int_equal(s.n, 2);
	linebuf_free(lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events_split_at_every_pair_of_byte_boundaries),
		cmocka_unit_test(test_events_fed_one_byte_at_a_time),
		cmocka_unit_test(test_partial_line_waits_for_its_newline),
		cmocka_unit_test(test_line_at_the_cap_passes_and_one_byte_more_fails),
		cmocka_unit_test(test_callback_error_stops_the_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
