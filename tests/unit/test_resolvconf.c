/* Unit tests for agent/resolvconf.c: nameserver lines, our own address skipped, the
 * systemd-resolved stub replaced by the real list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/resolvconf.h"

static const char *addr(const struct sockaddr_storage *a)
{
	static char buf[80];
	return config_addr_text(a, buf, sizeof buf);
}

static void test_rule5_nameserver_lines_in_order(void **state)
{
	(void)state;
	const char *text = "# comment\nsearch default.svc.cluster.local svc.cluster.local\n"
			   "nameserver 10.0.0.2\noptions ndots:5\nnameserver  fd00::53\n"
			   "nameserver 10.0.0.2\nnameserver bogus\n";
	struct sockaddr_storage out[8];
	int stub = -1;

	size_t n = resolvconf_parse(text, strlen(text), NULL, 0, out, 8, &stub);
	assert_int_equal(n, 2);
	assert_string_equal(addr(&out[0]), "10.0.0.2:53");
	assert_string_equal(addr(&out[1]), "[fd00::53]:53");
	assert_int_equal(stub, 0);
}

static void test_rule5_own_listen_address_is_never_an_upstream(void **state)
{
	(void)state;
	const char *text = "nameserver 169.254.20.10\nnameserver 10.0.0.2\n";
	struct sockaddr_storage out[8], own;

	config_parse_addr("169.254.20.10:53", 53, &own);
	size_t n = resolvconf_parse(text, strlen(text), &own, 1, out, 8, NULL);
	assert_int_equal(n, 1);
	assert_string_equal(addr(&out[0]), "10.0.0.2:53");
}

static void test_rule5_systemd_stub_only_is_detected(void **state)
{
	(void)state;
	const char *text = "nameserver 127.0.0.53\noptions edns0 trust-ad\n";
	struct sockaddr_storage out[8];
	int stub = 0;

	resolvconf_parse(text, strlen(text), NULL, 0, out, 8, &stub);
	assert_int_equal(stub, 1);
	text = "nameserver 127.0.0.53\nnameserver 10.0.0.2\n";
	resolvconf_parse(text, strlen(text), NULL, 0, out, 8, &stub);
	assert_int_equal(stub, 0);
}

static void test_rule5_stub_file_reads_the_systemd_list(void **state)
{
	(void)state;
	char stubf[] = "/tmp/meshdns-rc-XXXXXX", realf[] = "/tmp/meshdns-rc-XXXXXX";
	struct sockaddr_storage out[8];
	int fd1 = mkstemp(stubf), fd2 = mkstemp(realf);

	assert_true(fd1 >= 0 && fd2 >= 0);
	dprintf(fd1, "nameserver 127.0.0.53\n");
	dprintf(fd2, "nameserver 192.0.2.53\nnameserver 192.0.2.54\n");
	close(fd1);
	close(fd2);
	int n = resolvconf_read(stubf, realf, NULL, 0, out, 8);
	assert_int_equal(n, 2);
	assert_string_equal(addr(&out[0]), "192.0.2.53:53");
	/* the real list missing: keep the stub rather than nothing */
	n = resolvconf_read(stubf, "/nonexistent/resolv.conf", NULL, 0, out, 8);
	assert_int_equal(n, 1);
	assert_string_equal(addr(&out[0]), "127.0.0.53:53");
	assert_true(resolvconf_read("/nonexistent/resolv.conf", NULL, NULL, 0, out, 8) < 0);
	unlink(stubf);
	unlink(realf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule5_nameserver_lines_in_order),
		cmocka_unit_test(test_rule5_own_listen_address_is_never_an_upstream),
		cmocka_unit_test(test_rule5_systemd_stub_only_is_detected),
		cmocka_unit_test(test_rule5_stub_file_reads_the_systemd_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
