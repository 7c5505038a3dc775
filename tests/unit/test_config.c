/* Unit tests for agent/config.c: defaults, every flag's parsing, and the one-line errors. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/log.h"

static struct config cfg;
static char err[256];

#define PARSE(...)                                                                                 \
	({                                                                                         \
		char *argv_[] = { "meshdns", __VA_ARGS__, NULL };                                  \
		err[0] = 0;                                                                        \
		config_parse(&cfg, (int)(sizeof argv_ / sizeof argv_[0]) - 1, argv_, err,          \
			     sizeof err);                                                          \
	})

static const char *addr(const struct sockaddr_storage *a)
{
	static char buf[80];
	return config_addr_text(a, buf, sizeof buf);
}

static void test_defaults_follow_interface_md(void **state)
{
	(void)state;
	unsetenv("KUBE_DNS_SERVICE_HOST");
	assert_int_equal(PARSE("--log-level", "info"), 0);
	assert_int_equal(cfg.nlisten, 1);
	assert_string_equal(addr(&cfg.listen[0]), "169.254.20.10:53");
	assert_string_equal(cfg.interface, "meshdns");
	assert_string_equal(cfg.interface_kind, "dummy");
	assert_false(cfg.no_interface);
	assert_string_equal(cfg.cluster_domain, "cluster.local.");
	assert_int_equal(cfg.ncluster_dns, 0);
	assert_string_equal(cfg.resolv_conf, "/etc/resolv.conf");
	assert_int_equal(cfg.source, CONFIG_SOURCE_KUBERNETES);
	assert_int_equal(cfg.mesh_ttl, 30);
	assert_int_equal(cfg.cache_size, 64 << 20);
	assert_int_equal(cfg.max_ttl, 3600);
	assert_int_equal(cfg.neg_ttl, 300);
	assert_int_equal(cfg.threads, 1);
	assert_string_equal(addr(&cfg.health), "169.254.20.10:8054");
	assert_string_equal(addr(&cfg.metrics), "0.0.0.0:9253");
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
}

static void test_listen_accepts_v4_v6_and_ports(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--listen", "127.0.0.1:5353", "--listen", "[fd00::10]:53",
			       "--listen", "10.0.0.1", "--listen", "::1"),
			 0);
	assert_int_equal(cfg.nlisten, 4);
	assert_string_equal(addr(&cfg.listen[0]), "127.0.0.1:5353");
	assert_string_equal(addr(&cfg.listen[1]), "[fd00::10]:53");
	assert_string_equal(addr(&cfg.listen[2]), "10.0.0.1:53");
	assert_string_equal(addr(&cfg.listen[3]), "[::1]:53");
	/* health follows the first listen address */
	assert_string_equal(addr(&cfg.health), "127.0.0.1:8054");
}

static void test_bad_listen_names_the_flag(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--listen", "nowhere:53"), -EINVAL);
	assert_non_null(strstr(err, "--listen"));
	assert_int_equal(PARSE("--listen", "127.0.0.1:99999"), -EINVAL);
	assert_int_equal(PARSE("--listen", "[fd00::10"), -EINVAL);
	assert_int_equal(PARSE("--listen", "127.0.0.1:0"), -EINVAL);
	assert_null(strchr(err, '\n'));
}

static void test_servers_and_cluster_dns_from_environment(void **state)
{
	(void)state;
	setenv("KUBE_DNS_SERVICE_HOST", "10.96.0.10", 1);
	assert_int_equal(PARSE("--upstream", "1.1.1.1", "--upstream", "[2606:4700::1111]:5353"),
			 0);
	assert_int_equal(cfg.ncluster_dns, 1);
	assert_string_equal(addr(&cfg.cluster_dns[0]), "10.96.0.10:53");
	assert_int_equal(cfg.nupstream, 2);
	assert_string_equal(addr(&cfg.upstream[1]), "[2606:4700::1111]:5353");
	assert_int_equal(PARSE("--cluster-dns", "10.0.0.10:1053"), 0);
	assert_string_equal(addr(&cfg.cluster_dns[0]), "10.0.0.10:1053");
	setenv("KUBE_DNS_SERVICE_HOST", "kube-dns", 1);
	assert_int_equal(PARSE("--upstream", "1.1.1.1"), -EINVAL);
	assert_non_null(strstr(err, "KUBE_DNS_SERVICE_HOST"));
	unsetenv("KUBE_DNS_SERVICE_HOST");
}

static void test_cache_size_suffixes(void **state)
{
	(void)state;
	uint64_t v;

	assert_int_equal(config_parse_size("64M", &v), 0);
	assert_int_equal(v, 64 << 20);
	assert_int_equal(config_parse_size("512k", &v), 0);
	assert_int_equal(v, 512 << 10);
	assert_int_equal(config_parse_size("1G", &v), 0);
	assert_int_equal(v, 1 << 30);
	assert_int_equal(config_parse_size("1MiB", &v), 0);
	assert_int_equal(config_parse_size("1000", &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(config_parse_size("12X", &v), -EINVAL);
	assert_int_equal(config_parse_size("-1", &v), -EINVAL);
	assert_int_equal(PARSE("--cache-size", "1k"), -EINVAL);
	assert_non_null(strstr(err, "--cache-size"));
}

static void test_numbers_are_range_checked(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--threads", "0"), -EINVAL);
	assert_non_null(strstr(err, "--threads"));
	assert_int_equal(PARSE("--threads", "2x"), -EINVAL);
	assert_int_equal(PARSE("--mesh-ttl", "-5"), -EINVAL);
	assert_non_null(strstr(err, "--mesh-ttl"));
	assert_int_equal(PARSE("--max-ttl", "0"), -EINVAL);
	assert_int_equal(PARSE("--threads", "4", "--mesh-ttl", "10", "--neg-ttl", "0"), 0);
	assert_int_equal(cfg.threads, 4);
	assert_int_equal(cfg.mesh_ttl, 10);
	assert_int_equal(cfg.neg_ttl, 0);
}

static void test_serviceentries_sources(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--serviceentries", "none"), 0);
	assert_int_equal(cfg.source, CONFIG_SOURCE_NONE);
	assert_int_equal(PARSE("--serviceentries", "examples/serviceentries.json"), 0);
	assert_int_equal(cfg.source, CONFIG_SOURCE_FILE);
	assert_string_equal(cfg.source_path, "examples/serviceentries.json");
	assert_int_equal(PARSE("--kube-api", "http://10.0.0.1"), -EINVAL);
	assert_non_null(strstr(err, "--kube-api"));
}

static void test_zones_and_domain_are_names(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--zone", "global", "--zone", "cluster-2.", "--cluster-domain",
			       "Corp.Local"),
			 0);
	assert_int_equal(cfg.nzones, 2);
	assert_string_equal(cfg.cluster_domain, "corp.local.");
	assert_int_equal(PARSE("--zone", "a..b"), -EINVAL);
	assert_non_null(strstr(err, "--zone"));
}

static void test_unknown_flag_and_stray_argument(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--nope"), -EINVAL);
	assert_non_null(strstr(err, "--nope"));
	assert_int_equal(PARSE("extra"), -EINVAL);
	assert_non_null(strstr(err, "extra"));
	assert_int_equal(PARSE("--listen"), -EINVAL);
	assert_non_null(strstr(err, "missing value"));
}

static void test_health_and_metrics_can_be_off(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--health", "off", "--metrics", "127.0.0.1:9999"), 0);
	assert_true(cfg.health_off);
	assert_string_equal(addr(&cfg.metrics), "127.0.0.1:9999");
	assert_int_equal(PARSE("--metrics", "127.0.0.1"), -EINVAL);
	assert_non_null(strstr(err, "--metrics"));
}

static void test_log_level(void **state)
{
	(void)state;
	assert_int_equal(PARSE("--log-level", "debug"), 0);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(PARSE("--log-level", "loud"), -EINVAL);
	assert_non_null(strstr(err, "--log-level"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_follow_interface_md),
		cmocka_unit_test(test_listen_accepts_v4_v6_and_ports),
		cmocka_unit_test(test_bad_listen_names_the_flag),
		cmocka_unit_test(test_servers_and_cluster_dns_from_environment),
		cmocka_unit_test(test_cache_size_suffixes),
		cmocka_unit_test(test_numbers_are_range_checked),
		cmocka_unit_test(test_serviceentries_sources),
		cmocka_unit_test(test_zones_and_domain_are_names),
		cmocka_unit_test(test_unknown_flag_and_stray_argument),
		cmocka_unit_test(test_health_and_metrics_can_be_off),
		cmocka_unit_test(test_log_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
