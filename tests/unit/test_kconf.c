/* Unit tests for k8s/kconf.c: the API server address from the environment (IPv6 bracketed),
 * the flags that override it, the CA beside the token, and the token re-read by path and
 * trimmed (SEMANTICS.md rule 38). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "k8s/kconf.h"

static void test_in_cluster_url_from_the_environment(void **state)
{
	char url[128];

	(void)state;
	assert_int_equal(kconf_api_url(NULL, "10.96.0.1", "443", url, sizeof(url)), 0);
	assert_string_equal(url, "https://10.96.0.1:443");
}

static void test_in_cluster_ipv6_host_is_bracketed(void **state)
{
	char url[128];

	(void)state;
	assert_int_equal(kconf_api_url(NULL, "fd00:10:96::1", "6443", url, sizeof(url)), 0);
	assert_string_equal(url, "https://[fd00:10:96::1]:6443");
}

static void test_kube_api_flag_overrides_and_loses_its_trailing_slash(void **state)
{
	char url[128];

	(void)state;
	assert_int_equal(
		kconf_api_url("https://127.0.0.1:6443/", "10.96.0.1", "443", url, sizeof(url)), 0);
	assert_string_equal(url, "https://127.0.0.1:6443");
	assert_int_equal(kconf_api_url("http://127.0.0.1:8080", NULL, NULL, url, sizeof(url)),
			 -EINVAL);
}

static void test_outside_a_cluster_without_flag_is_an_error(void **state)
{
	char url[128];

	(void)state;
	assert_int_equal(kconf_api_url(NULL, NULL, "443", url, sizeof(url)), -ENOENT);
	assert_int_equal(kconf_api_url(NULL, "10.96.0.1", "", url, sizeof(url)), -ENOENT);
	assert_int_equal(kconf_api_url(NULL, "10.96.0.1", "44x", url, sizeof(url)), -EINVAL);
	assert_int_equal(kconf_api_url(NULL, "10.96.0.1", "70000", url, sizeof(url)), -EINVAL);
	assert_int_equal(kconf_api_url(NULL, "a/b", "443", url, sizeof(url)), -EINVAL);
}

static void test_ca_defaults_to_ca_crt_beside_the_token(void **state)
{
	char ca[256];

	(void)state;
	assert_int_equal(kconf_ca_path(NULL, KCONF_TOKEN_PATH, ca, sizeof(ca)), 0);
	assert_string_equal(ca, KCONF_SA_DIR "/ca.crt");
	assert_int_equal(kconf_ca_path(NULL, "/tmp/kapi/token", ca, sizeof(ca)), 0);
	assert_string_equal(ca, "/tmp/kapi/ca.crt");
	assert_int_equal(kconf_ca_path("/etc/ca.pem", "/tmp/kapi/token", ca, sizeof(ca)), 0);
	assert_string_equal(ca, "/etc/ca.pem");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_token_is_trimmed_and_reread_through_a_swapped_symlink(void **state)
{
	char dir[] = "/tmp/test_kconf.XXXXXX";
	char a[64], b[64], link[64], tok[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(link, sizeof(link), "%s/token", dir);
	write_file(a, "  first-token\n");
	write_file(b, "second-token\r\n\n");
	assert_int_equal(symlink(a, link), 0);
	assert_int_equal(kconf_read_token(link, tok, sizeof(tok)), 11);
	assert_string_equal(tok, "first-token");
	/* the kubelet's atomic swap: a new link renamed over the old one */
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "%s/token.new", dir);
	assert_int_equal(symlink(b, tmp), 0);
	assert_int_equal(rename(tmp, link), 0);
	assert_int_equal(kconf_read_token(link, tok, sizeof(tok)), 12);
	assert_string_equal(tok, "second-token");
	unlink(link);
	unlink(a);
	unlink(b);
	rmdir(dir);
}

static void test_token_empty_missing_or_too_large_is_an_error(void **state)
{
	char path[] = "/tmp/test_kconf_tok.XXXXXX";
	char tok[16];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	write_file(path, " \n");
	assert_int_equal(kconf_read_token(path, tok, sizeof(tok)), -ENODATA);
	write_file(path, "0123456789abcdef");
	assert_int_equal(kconf_read_token(path, tok, sizeof(tok)), -E2BIG);
	assert_int_equal(tok[0], 0); /* nothing of it is left behind */
	unlink(path);
	assert_int_equal(kconf_read_token(path, tok, sizeof(tok)), -ENOENT);
}

static void test_query_values_are_percent_encoded(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(kconf_escape("eyJ2Ijo=+/&", out, sizeof(out)), 19);
	assert_string_equal(out, "eyJ2Ijo%3D%2B%2F%26");
	assert_int_equal(kconf_escape("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(kconf_escape("abc", out, 3), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_cluster_url_from_the_environment),
		cmocka_unit_test(test_in_cluster_ipv6_host_is_bracketed),
		cmocka_unit_test(test_kube_api_flag_overrides_and_loses_its_trailing_slash),
		cmocka_unit_test(test_outside_a_cluster_without_flag_is_an_error),
		cmocka_unit_test(test_ca_defaults_to_ca_crt_beside_the_token),
		cmocka_unit_test(test_token_is_trimmed_and_reread_through_a_swapped_symlink),
		cmocka_unit_test(test_token_empty_missing_or_too_large_is_an_error),
		cmocka_unit_test(test_query_values_are_percent_encoded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
