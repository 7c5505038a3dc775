/* Unit tests for agent/metrics.c: the Prometheus text a scraper reads. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/cache.h"
#include "agent/meshtab.h"
#include "agent/metrics.h"
#include "agent/stats.h"

/* Two workers' counters and the sum the HTTP shell hands over. */
static struct stats w1, w2, sum;
static struct cache_stats cs;
static struct meshview_info mi;
static struct metrics_snapshot snap;
static struct metrics_out out;

static int setup(void **state)
{
	(void)state;
	memset(&w1, 0, sizeof w1);
	memset(&w2, 0, sizeof w2);
	memset(&sum, 0, sizeof sum);
	memset(&cs, 0, sizeof cs);
	memset(&mi, 0, sizeof mi);
	memset(&snap, 0, sizeof snap);
	snap.version = "1.2.3";
	snap.server = "dns://169.254.20.10:53";
	snap.cluster_zone = "cluster.local.";
	snap.st = &sum;
	snap.cache = &cs;
	snap.mesh = &mi;
	snap.to[STATS_GROUP_CLUSTER][0] = "10.96.0.10:53";
	snap.to[STATS_GROUP_UPSTREAM][0] = "192.0.2.53:53";
	metrics_out_init(&out, METRICS_MAX_BYTES);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	metrics_out_deinit(&out);
	return 0;
}

static const char *render(void)
{
	memset(&sum, 0, sizeof sum);
	stats_sum(&sum, &w1);
	stats_sum(&sum, &w2);
	assert_int_equal(metrics_render(&snap, NULL, 0, &out), 0);
	return out.buf;
}

/* The value of the sample line that starts with @series (name and labels, as written), or
 * -1 when there is none. Fails the test when there are two. */
static double value_of(const char *text, const char *series)
{
	char want[512];
	const char *p;

	snprintf(want, sizeof want, "\n%s ", series);
	p = strstr(text, want);
	if (!p)
		return -1;
	assert_null(strstr(p + 1, want));
	return strtod(p + strlen(want), NULL);
}

static void test_counters_are_summed_across_workers(void **state)
{
	(void)state;
	stats_add(&w1.requests[0][0][STATS_ZONE_CLUSTER][STATS_QTYPE_A], 3);
	stats_add(&w2.requests[0][0][STATS_ZONE_CLUSTER][STATS_QTYPE_A], 4);
	stats_add(&w2.requests[1][1][STATS_ZONE_ROOT][STATS_QTYPE_AAAA], 2);
	stats_add(&w1.cache_hits[0], 10);
	stats_add(&w2.cache_hits[0], 5);
	stats_add(&w1.cache_misses, 1);
	stats_add(&w2.cache_misses, 2);
	stats_add(&w1.fwd_requests[STATS_GROUP_CLUSTER][0], 6);
	stats_add(&w2.fwd_requests[STATS_GROUP_CLUSTER][0], 1);
	stats_add(&w1.tcp_conns, 2);
	stats_add(&w2.tcp_conns, 3);
	stats_add(&w2.heartbeat_ms, 123456);
	const char *t = render();

	assert_int_equal(value_of(t,
				  "coredns_dns_requests_total{server=\"dns://169.254.20.10:53\","
				  "zone=\"cluster.local.\",proto=\"udp\",family=\"1\",type=\"A\"}"),
			 7);
	assert_int_equal(value_of(t, "coredns_dns_requests_total{server=\"dns://169.254.20.10:53\","
				     "zone=\".\",proto=\"tcp\",family=\"2\",type=\"AAAA\"}"),
			 2);
	assert_int_equal(value_of(t, "coredns_cache_hits_total{server=\"dns://169.254.20.10:53\","
				     "type=\"success\"}"),
			 15);
	assert_int_equal(
		value_of(t, "coredns_cache_misses_total{server=\"dns://169.254.20.10:53\"}"), 3);
	assert_int_equal(
		value_of(t, "coredns_cache_requests_total{server=\"dns://169.254.20.10:53\"}"), 18);
	assert_int_equal(value_of(t, "coredns_forward_requests_total{to=\"10.96.0.10:53\"}"), 7);
	assert_int_equal(value_of(t, "meshdns_tcp_connections"), 5);
	/* the heartbeat is not a counter */
	assert_int_equal(stats_get(&sum.heartbeat_ms), 0);
}

static void test_label_combinations_never_seen_are_left_out(void **state)
{
	(void)state;
	stats_add(&w1.responses[STATS_ZONE_ROOT][3], 1);
	const char *t = render();

	/* only the one response line; no request lines at all */
	assert_null(strstr(t, "\ncoredns_dns_requests_total{"));
	assert_non_null(strstr(t, "rcode=\"NXDOMAIN\"} 1\n"));
	assert_null(strstr(t, "rcode=\"NOERROR\""));
	/* small fixed sets are always there, so rate() works from the first scrape */
	assert_int_equal(value_of(t, "coredns_cache_hits_total{server=\"dns://169.254.20.10:53\","
				     "type=\"denial\"}"),
			 0);
	assert_int_equal(value_of(t, "coredns_forward_requests_total{to=\"192.0.2.53:53\"}"), 0);
}

static void test_zone_labels_follow_coredns(void **state)
{
	(void)state;
	stats_inc(&w1.requests[0][0][STATS_ZONE_ARPA4][STATS_QTYPE_PTR]);
	stats_inc(&w1.requests[0][0][STATS_ZONE_ARPA6][STATS_QTYPE_PTR]);
	stats_inc(&w1.requests[0][0][STATS_ZONE_MESH][STATS_QTYPE_A]);
	stats_inc(&w1.requests[0][0][STATS_ZONE_ROOT][STATS_QTYPE_OTHER]);
	const char *t = render();

	assert_non_null(
		strstr(t, "zone=\"in-addr.arpa.\",proto=\"udp\",family=\"1\",type=\"PTR\""));
	assert_non_null(strstr(t, "zone=\"ip6.arpa.\""));
	assert_non_null(strstr(t, "zone=\"mesh\",proto=\"udp\",family=\"1\",type=\"A\""));
	assert_non_null(strstr(t, "zone=\".\",proto=\"udp\",family=\"1\",type=\"other\""));
}

static void test_label_values_and_help_are_escaped(void **state)
{
	(void)state;
	snap.cluster_zone = "we\"ird\\zone\nx.";
	stats_inc(&w1.requests[0][0][STATS_ZONE_CLUSTER][STATS_QTYPE_A]);
	const char *t = render();

	assert_non_null(strstr(t, "zone=\"we\\\"ird\\\\zone\\nx.\""));
	/* no raw newline inside any label set */
	for (const char *p = strchr(t, '{'); p; p = strchr(p + 1, '{'))
		assert_true(strchr(p, '}') < strchr(p, '\n'));

	metrics_out_deinit(&out);
	metrics_out_init(&out, 4096);
	metrics_family(&out, "x_total", "counter", "a\\b\nc \"quoted\"");
	assert_string_equal(out.buf,
			    "# HELP x_total a\\\\b\\nc \"quoted\"\n# TYPE x_total counter\n");
}

/* Checks that @name has HELP and then TYPE @type, once each. */
static void assert_family(const char *t, const char *name, const char *type)
{
	char help[160], typeline[160];

	snprintf(help, sizeof help, "# HELP %s ", name);
	snprintf(typeline, sizeof typeline, "\n# TYPE %s %s\n", name, type);
	const char *h = strstr(t, help);
	if (!h)
		fail_msg("no HELP for %s", name);
	assert_null(strstr(h + 1, help));
	const char *ty = strstr(t, typeline);
	if (!ty)
		fail_msg("no TYPE %s for %s", type, name);
	assert_true(ty > h);
	assert_null(strstr(ty + 1, typeline));
}

static void test_every_interface_name_has_help_and_type(void **state)
{
	(void)state;
	/* INTERFACE.md, "Metrics" */
	static const char *const names[][2] = {
		{ "coredns_dns_requests_total", "counter" },
		{ "coredns_dns_responses_total", "counter" },
		{ "coredns_dns_request_duration_seconds", "histogram" },
		{ "coredns_cache_entries", "gauge" },
		{ "coredns_cache_hits_total", "counter" },
		{ "coredns_cache_misses_total", "counter" },
		{ "coredns_cache_evictions_total", "counter" },
		{ "coredns_forward_requests_total", "counter" },
		{ "coredns_forward_responses_total", "counter" },
		{ "coredns_forward_request_duration_seconds", "histogram" },
		{ "meshdns_serviceentries", "gauge" },
		{ "meshdns_mesh_hosts", "gauge" },
		{ "meshdns_zones", "gauge" },
		{ "meshdns_sync_last_success_timestamp_seconds", "gauge" },
		{ "meshdns_watch_restarts_total", "counter" },
		{ "meshdns_relists_total", "counter" },
		{ "meshdns_rejected_total", "counter" },
		{ "meshdns_upstream_dropped_total", "counter" },
		{ "meshdns_coalesced_total", "counter" },
		{ "meshdns_interface_repairs_total", "counter" },
	};
	const char *t = render();

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		assert_family(t, names[i][0], names[i][1]);
}

/* The family a sample line belongs to: its name, less a histogram suffix when the TYPE line
 * says histogram. */
static void family_of(const char *t, const char *line, char *fam, size_t cap)
{
	size_t n = strcspn(line, "{ ");
	char typeline[200];

	snprintf(fam, cap, "%.*s", (int)n, line);
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	for (int i = 0; i < 3; i++) {
		size_t fl = strlen(fam), sl = strlen(sfx[i]);
		if (fl > sl && strcmp(fam + fl - sl, sfx[i]) == 0) {
			snprintf(typeline, sizeof typeline, "# TYPE %.*s histogram\n",
				 (int)(fl - sl), fam);
			if (strstr(t, typeline))
				fam[fl - sl] = '\0';
		}
	}
}

static void test_every_sample_follows_its_type_line_and_families_are_contiguous(void **state)
{
	(void)state;
	stats_inc(&w1.requests[0][0][STATS_ZONE_ROOT][STATS_QTYPE_A]);
	stats_inc(&w1.duration[STATS_ZONE_ROOT][STATS_QTYPE_A][0]);
	stats_inc(&w1.fwd_responses[STATS_GROUP_UPSTREAM][0][0]);
	snap.proc.known = true;
	snap.proc.rss_bytes = 4096;
	snap.proc.start_time = 1764000000.5;
	const char *t = render();
	char current[160] = "", fam[160];
	static char seen[128][80];
	size_t nseen = 0;

	for (const char *line = t; *line; line = strchr(line, '\n') + 1) {
		assert_non_null(strchr(line, '\n'));
		if (strncmp(line, "# TYPE ", 7) == 0) {
			size_t n = strcspn(line + 7, " ");
			snprintf(current, sizeof current, "%.*s", (int)n, line + 7);
			for (size_t i = 0; i < nseen; i++)
				if (strcmp(seen[i], current) == 0)
					fail_msg("family %s declared twice", current);
			assert_true(nseen < 128);
			snprintf(seen[nseen++], sizeof seen[0], "%s", current);
			continue;
		}
		if (line[0] == '#')
			continue;
		family_of(t, line, fam, sizeof fam);
		if (strcmp(fam, current) != 0)
			fail_msg("sample of %s under TYPE %s: %.60s", fam, current, line);
	}
}

static void test_histogram_buckets_are_cumulative_and_end_with_inf_sum_count(void **state)
{
	(void)state;
	/* 2 at 250us, 3 at 1ms, 1 past 4.096s */
	stats_add(&w1.duration[STATS_ZONE_CLUSTER][STATS_QTYPE_SRV][0], 2);
	stats_add(&w2.duration[STATS_ZONE_CLUSTER][STATS_QTYPE_SRV][2], 3);
	stats_add(&w2.duration[STATS_ZONE_CLUSTER][STATS_QTYPE_SRV][STATS_BUCKETS - 1], 1);
	stats_add(&w1.duration_sum_us[STATS_ZONE_CLUSTER][STATS_QTYPE_SRV], 5001234);
	const char *t = render();
	const char *prefix = "coredns_dns_request_duration_seconds_bucket{server=\"dns://"
			     "169.254.20.10:53\",zone=\"cluster.local.\",type=\"SRV\",le=\"";
	const char *p = t;
	double last = 0, v;
	int n = 0;
	char le[32] = "";

	while ((p = strstr(p, prefix)) != NULL) {
		p += strlen(prefix);
		size_t l = strcspn(p, "\"");
		snprintf(le, sizeof le, "%.*s", (int)l, p);
		v = strtod(strchr(p, ' ') + 1, NULL);
		assert_true(v >= last);
		last = v;
		n++;
	}
	assert_int_equal(n, STATS_BUCKETS);
	assert_string_equal(le, "+Inf");
	assert_int_equal(last, 6);
	assert_int_equal(value_of(t, "coredns_dns_request_duration_seconds_bucket{server=\"dns://"
				     "169.254.20.10:53\",zone=\"cluster.local.\",type=\"SRV\","
				     "le=\"0.0005\"}"),
			 2);
	assert_non_null(strstr(t, "\ncoredns_dns_request_duration_seconds_sum{server=\"dns://"
				  "169.254.20.10:53\",zone=\"cluster.local.\",type=\"SRV\"} "
				  "5.001234\n"));
	assert_int_equal(value_of(t, "coredns_dns_request_duration_seconds_count{server=\"dns://"
				     "169.254.20.10:53\",zone=\"cluster.local.\",type=\"SRV\"}"),
			 6);
	/* the upstream histograms are there for every server, observed or not */
	assert_int_equal(value_of(t, "coredns_forward_request_duration_seconds_bucket{to="
				     "\"192.0.2.53:53\",le=\"+Inf\"}"),
			 0);
}

static void test_a_server_in_both_groups_is_one_series(void **state)
{
	(void)state;
	/* no --cluster-dns: the cluster group holds the upstream servers too */
	snap.to[STATS_GROUP_CLUSTER][0] = "192.0.2.53:53";
	stats_add(&w1.fwd_requests[STATS_GROUP_CLUSTER][0], 2);
	stats_add(&w1.fwd_requests[STATS_GROUP_UPSTREAM][0], 5);
	stats_add(&w1.fwd_responses[STATS_GROUP_CLUSTER][0][2], 1);
	stats_add(&w2.fwd_responses[STATS_GROUP_UPSTREAM][0][2], 1);
	const char *t = render();

	assert_int_equal(value_of(t, "coredns_forward_requests_total{to=\"192.0.2.53:53\"}"), 7);
	assert_int_equal(value_of(t, "coredns_forward_responses_total{to=\"192.0.2.53:53\","
				     "rcode=\"SERVFAIL\"}"),
			 2);
}

static void test_cache_mesh_and_agent_figures(void **state)
{
	(void)state;
	cs.entries[0] = 12;
	cs.entries[1] = 3;
	cs.evicted[1] = 4;
	mi.hosts = 7;
	mi.wildcards = 2;
	mi.zones = 3;
	snap.ready = true;
	snap.interface_repairs = 2;
	stats_add(&w1.upstream_dropped[STATS_UPDROP_ID], 9);
	stats_add(&w2.coalesced, 11);
	stats_add(&w1.mtu_truncated, 2);
	stats_add(&w2.mtu_truncated, 3);
	const char *t = render();

	assert_int_equal(value_of(t, "coredns_cache_entries{server=\"dns://169.254.20.10:53\","
				     "type=\"denial\"}"),
			 3);
	assert_int_equal(value_of(t, "coredns_cache_evictions_total{server=\"dns://"
				     "169.254.20.10:53\",type=\"denial\"}"),
			 4);
	assert_int_equal(value_of(t, "meshdns_mesh_hosts"), 9);
	assert_int_equal(value_of(t, "meshdns_zones"), 3);
	assert_int_equal(value_of(t, "meshdns_ready"), 1);
	assert_int_equal(value_of(t, "meshdns_interface_repairs_total"), 2);
	assert_int_equal(value_of(t, "meshdns_upstream_dropped_total{reason=\"wrong_id\"}"), 9);
	assert_int_equal(value_of(t, "meshdns_coalesced_total"), 11);
	assert_int_equal(value_of(t, "meshdns_truncated_for_mtu_total"), 5);
	assert_int_equal(value_of(t, "meshdns_build_info{version=\"1.2.3\"}"), 1);
	/* without process figures there are no process_ lines */
	assert_null(strstr(t, "process_"));
}

static const char *const store_families[] = { "meshdns_serviceentries", "meshdns_rejected_total",
					      NULL };

static void store_provider(struct metrics_out *o, void *arg)
{
	struct metrics_label l = { "reason", "bad_host" };

	metrics_family(o, "meshdns_serviceentries", "gauge", "ServiceEntries.");
	metrics_sample(o, "meshdns_serviceentries", NULL, 0, *(uint64_t *)arg);
	metrics_family(o, "meshdns_rejected_total", "counter", "Rejected.");
	metrics_sample(o, "meshdns_rejected_total", &l, 1, 2);
}

static void test_providers_append_families_and_replace_the_placeholders(void **state)
{
	(void)state;
	uint64_t entries = 42;
	struct metrics_provider p = { store_provider, &entries, store_families };

	memset(&sum, 0, sizeof sum);
	assert_int_equal(metrics_render(&snap, &p, 1, &out), 0);
	const char *t = out.buf;

	assert_int_equal(value_of(t, "meshdns_serviceentries"), 42);
	assert_int_equal(value_of(t, "meshdns_rejected_total{reason=\"bad_host\"}"), 2);
	assert_family(t, "meshdns_serviceentries", "gauge");
	assert_family(t, "meshdns_rejected_total", "counter");
	/* the families nobody claimed are still listed */
	assert_family(t, "meshdns_relists_total", "counter");
	assert_family(t, "meshdns_watch_restarts_total", "counter");
}

static void big_provider(struct metrics_out *o, void *arg)
{
	(void)arg;
	metrics_family(o, "x_total", "counter", "Many.");
	for (unsigned i = 0; i < 100000; i++) {
		char v[16];
		snprintf(v, sizeof v, "%u", i);
		struct metrics_label l = { "i", v };
		metrics_sample(o, "x_total", &l, 1, i);
	}
}

static void test_output_past_the_cap_fails_cleanly(void **state)
{
	(void)state;
	struct metrics_provider p = { big_provider, NULL, NULL };

	memset(&sum, 0, sizeof sum);
	assert_int_equal(metrics_render(&snap, &p, 1, &out), -E2BIG);
	assert_true(out.len < out.max);
	assert_true(out.cap <= METRICS_MAX_BYTES);

	/* a tiny cap: the first family already does not fit */
	metrics_out_deinit(&out);
	metrics_out_init(&out, 64);
	assert_int_equal(metrics_render(&snap, NULL, 0, &out), -E2BIG);
	assert_true(out.cap <= 64);
}

static void test_process_figures(void **state)
{
	(void)state;
	snap.proc.known = true;
	snap.proc.rss_bytes = 3 << 20;
	snap.proc.cpu_seconds = 1.25;
	snap.proc.start_time = 1764000000.5;
	snap.proc.open_fds = 17;
	snap.proc.max_fds = 1024;
	const char *t = render();

	assert_int_equal(value_of(t, "process_resident_memory_bytes"), 3 << 20);
	assert_non_null(strstr(t, "\nprocess_cpu_seconds_total 1.25\n"));
	assert_non_null(strstr(t, "\nprocess_start_time_seconds 1764000000.5\n"));
	assert_int_equal(value_of(t, "process_open_fds"), 17);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_counters_are_summed_across_workers),
		T(test_label_combinations_never_seen_are_left_out),
		T(test_zone_labels_follow_coredns),
		T(test_label_values_and_help_are_escaped),
		T(test_every_interface_name_has_help_and_type),
		T(test_every_sample_follows_its_type_line_and_families_are_contiguous),
		T(test_histogram_buckets_are_cumulative_and_end_with_inf_sum_count),
		T(test_a_server_in_both_groups_is_one_series),
		T(test_cache_mesh_and_agent_figures),
		T(test_providers_append_families_and_replace_the_placeholders),
		T(test_output_past_the_cap_fails_cleanly),
		T(test_process_figures),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
