/* Unit tests for agent/tcpframe.c: messages come out whole and in order however the bytes
 * are split; a zero length breaks the stream; the buffer stops at one maximum message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/tcpframe.h"

/* Feeds @len bytes of @data in pieces of @step bytes; counts complete messages and checks
 * each one's first byte against its index. */
static int feed(struct tcpframe *f, const uint8_t *data, size_t len, size_t step)
{
	int count = 0;
	size_t off = 0;

	while (off < len) {
		uint8_t *p;
		size_t room, n;
		assert_int_equal(tcpframe_reserve(f, &p, &room), 0);
		n = len - off < step ? len - off : step;
		if (n > room)
			n = room;
		memcpy(p, data + off, n);
		tcpframe_commit(f, n);
		off += n;
		const uint8_t *msg;
		size_t mlen;
		while (tcpframe_next(f, &msg, &mlen) == 1) {
			assert_int_equal(msg[0], count);
			assert_int_equal(mlen, 20 + count);
			count++;
		}
	}
	return count;
}

static void test_messages_split_anywhere_come_out_whole(void **state)
{
	(void)state;
	uint8_t data[4096];
	size_t len = 0;

	for (int i = 0; i < 30; i++) {
		data[len++] = 0;
		data[len++] = (uint8_t)(20 + i);
		memset(data + len, i, (size_t)(20 + i));
		len += (size_t)(20 + i);
	}
	for (size_t step = 1; step < 100; step += 7) {
		struct tcpframe f;
		tcpframe_init(&f);
		assert_int_equal(feed(&f, data, len, step), 30);
		tcpframe_deinit(&f);
	}
}

static void test_zero_length_breaks_the_stream(void **state)
{
	(void)state;
	struct tcpframe f;
	const uint8_t data[] = { 0, 0, 1, 2, 3 };
	const uint8_t *msg;
	size_t mlen, room;
	uint8_t *p;

	tcpframe_init(&f);
	assert_int_equal(tcpframe_reserve(&f, &p, &room), 0);
	memcpy(p, data, sizeof data);
	tcpframe_commit(&f, sizeof data);
	assert_int_equal(tcpframe_next(&f, &msg, &mlen), -EBADMSG);
	assert_true(tcpframe_broken(&f));
	tcpframe_deinit(&f);
}

static void test_buffer_grows_to_one_maximum_message(void **state)
{
	(void)state;
	struct tcpframe f;
	uint8_t *p;
	size_t room, total = 0;
	const uint8_t *msg;
	size_t mlen;

	tcpframe_init(&f);
	assert_int_equal(tcpframe_reserve(&f, &p, &room), 0);
	p[0] = 0xff;
	p[1] = 0xff;
	tcpframe_commit(&f, 2);
	while (total < 65535) {
		assert_int_equal(tcpframe_reserve(&f, &p, &room), 0);
		size_t n = room < 65535 - total ? room : 65535 - total;
		memset(p, 0xab, n);
		tcpframe_commit(&f, n);
		total += n;
	}
	assert_true(f.cap <= TCPFRAME_MAX + 1);
	assert_int_equal(tcpframe_reserve(&f, &p, &room), -ENOSPC);
	assert_int_equal(tcpframe_next(&f, &msg, &mlen), 1);
	assert_int_equal(mlen, 65535);
	tcpframe_deinit(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages_split_anywhere_come_out_whole),
		cmocka_unit_test(test_zero_length_breaks_the_stream),
		cmocka_unit_test(test_buffer_grows_to_one_maximum_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
