/* Unit tests for k8s/liststream.c: the items of a list document come out one by one, exactly
 * as sent, however the body is cut; the rest of the document keeps the list metadata; caps
 * and broken documents fail cleanly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/liststream.h"

/* Go sorts keys: items before metadata. Strings hold brackets, escaped quotes and "items". */
static const char DOC[] =
	"{\"apiVersion\":\"networking.istio.io/v1\",\"items\":[ "
	"{\"metadata\":{\"name\":\"a]}\",\"annotations\":{\"x\":\"\\\"}{[\"}},\"spec\":"
	"{\"hosts\":[\"a.global\"],\"addresses\":[\"240.0.0.1\"]}},\n"
	"{\"metadata\":{\"name\":\"items\"},\"spec\":{\"hosts\":[[],{}]}} ,"
	"{}]"
	",\"kind\":\"ServiceEntryList\",\"metadata\":{\"continue\":\"tok]\",\"items\":[1],"
	"\"resourceVersion\":\"1843390\"}}\n";
static const char *const ITEMS[] = {
	"{\"metadata\":{\"name\":\"a]}\",\"annotations\":{\"x\":\"\\\"}{[\"}},\"spec\":"
	"{\"hosts\":[\"a.global\"],\"addresses\":[\"240.0.0.1\"]}}",
	"{\"metadata\":{\"name\":\"items\"},\"spec\":{\"hosts\":[[],{}]}}",
	"{}",
};
static const char SKELETON[] =
	"{\"apiVersion\":\"networking.istio.io/v1\",\"items\":[]"
	",\"kind\":\"ServiceEntryList\",\"metadata\":{\"continue\":\"tok]\",\"items\":[1],"
	"\"resourceVersion\":\"1843390\"}}\n";

struct seen {
	size_t n;
	char items[8][256];
};

static int collect(void *arg, const char *item, size_t len)
{
	struct seen *s = arg;

	assert_true(s->n < 8 && len < 256);
	memcpy(s->items[s->n], item, len);
	s->items[s->n][len] = 0;
	s->n++;
	return 0;
}

static void check_doc(struct liststream *ls, const struct seen *s)
{
	const char *skel;
	size_t len;

	assert_int_equal(s->n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(s->items[i], ITEMS[i]);
	assert_int_equal(liststream_finish(ls, &skel, &len), 0);
	assert_int_equal(len, sizeof(SKELETON) - 1);
	assert_memory_equal(skel, SKELETON, len);
}

static void test_items_split_at_every_pair_of_byte_boundaries(void **state)
{
	size_t len = sizeof(DOC) - 1;
	struct liststream *ls = liststream_new(4096, 4096);

	(void)state;
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			struct seen s = { 0 };
			liststream_reset(ls);
			assert_int_equal(liststream_feed(ls, DOC, i, collect, &s), 0);
			assert_int_equal(liststream_feed(ls, DOC + i, j - i, collect, &s), 0);
			assert_int_equal(liststream_feed(ls, DOC + j, len - j, collect, &s), 0);
			check_doc(ls, &s);
		}
	}
	liststream_free(ls);
}

static void test_items_fed_one_byte_at_a_time(void **state)
{
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(DOC) - 1; i++)
		assert_int_equal(liststream_feed(ls, DOC + i, 1, collect, &s), 0);
	check_doc(ls, &s);
	liststream_free(ls);
}

static void test_metadata_before_items_and_an_empty_list(void **state)
{
	static const char doc[] = "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[ ]}";
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };
	const char *skel;
	size_t len;

	(void)state;
	assert_int_equal(liststream_feed(ls, doc, sizeof(doc) - 1, collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(liststream_finish(ls, &skel, &len), 0);
	assert_int_equal(len, strlen("{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[]}"));
	assert_memory_equal(skel, "{\"metadata\":{\"resourceVersion\":\"7\"},\"items\":[]}", len);
	liststream_free(ls);
}

static void test_scalar_items_are_handed_out_for_the_decoder_to_reject(void **state)
{
	static const char doc[] = "{\"items\":[null,12 ,\"x]\"]}";
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };
	const char *skel;
	size_t len;

	(void)state;
	assert_int_equal(liststream_feed(ls, doc, sizeof(doc) - 1, collect, &s), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.items[0], "null");
	assert_string_equal(s.items[1], "12");
	assert_string_equal(s.items[2], "\"x]\"");
	assert_int_equal(liststream_finish(ls, &skel, &len), 0);
	liststream_free(ls);
}

static void test_item_over_the_cap_fails_cleanly(void **state)
{
	static const char doc[] = "{\"items\":[{\"a\":\"0123456789\"},{\"b\":\"0123456789012345678"
				  "90123456789\"}]}";
	struct liststream *ls = liststream_new(32, 4096);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(liststream_feed(ls, doc, sizeof(doc) - 1, collect, &s), -E2BIG);
	assert_int_equal(s.n, 1);
	/* the same item cut across feeds */
	liststream_reset(ls);
	s.n = 0;
	assert_int_equal(liststream_feed(ls, doc, 40, collect, &s), 0);
	assert_int_equal(liststream_feed(ls, doc + 40, sizeof(doc) - 41, collect, &s), -E2BIG);
	liststream_free(ls);
}

static void test_skeleton_over_the_cap_fails_cleanly(void **state)
{
	static const char doc[] = "{\"items\":[],\"metadata\":{\"continue\":\"0123456789012345\"}}";
	struct liststream *ls = liststream_new(4096, 24);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(liststream_feed(ls, doc, sizeof(doc) - 1, collect, &s), -E2BIG);
	liststream_free(ls);
}

static void test_documents_that_are_not_objects_are_refused(void **state)
{
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(liststream_feed(ls, "[{}]", 4, collect, &s), -EINVAL);
	liststream_reset(ls);
	assert_int_equal(liststream_feed(ls, "Too many requests", 17, collect, &s), -EINVAL);
	liststream_reset(ls);
	assert_int_equal(liststream_feed(ls, "{\"items\":[}]}", 13, collect, &s), -EINVAL);
	liststream_reset(ls);
	assert_int_equal(liststream_feed(ls, "{} x", 4, collect, &s), -EINVAL);
	liststream_free(ls);
}

static void test_truncated_document_does_not_finish(void **state)
{
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };
	const char *skel;
	size_t len;

	(void)state;
	assert_int_equal(liststream_feed(ls, DOC, 120, collect, &s), 0);
	assert_int_equal(liststream_finish(ls, &skel, &len), -EINVAL);
	liststream_reset(ls);
	assert_int_equal(liststream_finish(ls, &skel, &len), -EINVAL);
	liststream_free(ls);
}

static int fail_second(void *arg, const char *item, size_t len)
{
	struct seen *s = arg;

	(void)item;
	(void)len;
	return ++s->n == 2 ? -ENOMEM : 0;
}

static void test_callback_error_stops_the_feed(void **state)
{
	struct liststream *ls = liststream_new(4096, 4096);
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(liststream_feed(ls, DOC, sizeof(DOC) - 1, fail_second, &s), -ENOMEM);
	assert_int_equal(s.n, 2);
	liststream_free(ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items_split_at_every_pair_of_byte_boundaries),
		cmocka_unit_test(test_items_fed_one_byte_at_a_time),
		cmocka_unit_test(test_metadata_before_items_and_an_empty_list),
		cmocka_unit_test(test_scalar_items_are_handed_out_for_the_decoder_to_reject),
		cmocka_unit_test(test_item_over_the_cap_fails_cleanly),
		cmocka_unit_test(test_skeleton_over_the_cap_fails_cleanly),
		cmocka_unit_test(test_documents_that_are_not_objects_are_refused),
		cmocka_unit_test(test_truncated_document_does_not_finish),
		cmocka_unit_test(test_callback_error_stops_the_feed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
