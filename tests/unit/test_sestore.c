/* Unit tests for k8s/sestore.c: which ServiceEntries make the table (SEMANTICS.md rules 7-13),
 * checked through the answers of the mesh table it feeds (parsed with ldns). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <ldns/ldns.h>
#include <urcu/urcu-memb.h>

#include "agent/meshtab.h"
#include "agent/wire.h"
#include "k8s/sedecode.h"
#include "k8s/sestore.h"
#include "k8s/tld.h"

struct fixture {
	struct meshtab *table;
	struct sestore *store;
	struct se_obj obj;
};

static struct fixture *fx_new(const struct sestore_opts *so, const char *zone)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *zones[] = { zone };
	struct meshtab_opts mo = {
		.zones = zones, .nzones = zone ? 1 : 0, .ttl = 30, .neg_ttl = 5
	};

	assert_non_null(f);
	mo.auto_zones = so->auto_zones;
	f->table = meshtab_new(&mo);
	assert_non_null(f->table);
	f->store = sestore_new(so, f->table);
	assert_non_null(f->store);
	return f;
}

static struct fixture *fx_default(void)
{
	struct sestore_opts so = { .auto_zones = true };

	return fx_new(&so, NULL);
}

static void fx_free(struct fixture *f)
{
	sestore_free(f->store);
	meshtab_free(f->table);
	free(f);
}

/* Decodes a ServiceEntry ns/name created at @created (seconds after 2020-01-01) with @spec. */
static const struct se_obj *se(struct fixture *f, const char *ns, const char *name, int created,
			       const char *uid, const char *rv, const char *spec)
{
	char text[8192];
	cJSON *j;

	snprintf(text, sizeof(text),
		 "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"uid\":\"%s\","
		 "\"resourceVersion\":\"%s\",\"creationTimestamp\":\"2020-01-01T00:%02d:%02dZ\"},"
		 "\"spec\":%s}",
		 ns, name, uid, rv, created / 60, created % 60, spec);
	j = cJSON_Parse(text);
	assert_non_null(j);
	sedecode_object(j, &f->obj);
	cJSON_Delete(j);
	return &f->obj;
}

static void upsert(struct fixture *f, const char *ns, const char *name, int created,
		   const char *spec)
{
	assert_int_equal(sestore_upsert(f->store, se(f, ns, name, created, "uid", "1", spec)), 0);
}

static void flush(struct fixture *f)
{
	assert_int_equal(sestore_flush(f->store), 0);
}

/* What the table answers for @name: "NOT_LOCAL", "NXDOMAIN", "NODATA", "SERVFAIL", or the
 * addresses of A then AAAA answers joined by commas. */
static const char *answer(struct fixture *f, const char *name)
{
	static char out[1024];
	const ldns_rr_type types[] = { LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA };
	size_t n = 0;

	out[0] = 0;
	for (int k = 0; k < 2; k++) {
		ldns_pkt *qp = NULL, *rp = NULL;
		uint8_t *qw = NULL, reply[4096];
		size_t qlen = 0;
		struct wire_query q;
		enum mesh_result res;
		int len;

		assert_int_equal(
			ldns_pkt_query_new_frm_str(&qp, name, types[k], LDNS_RR_CLASS_IN, LDNS_RD),
			LDNS_STATUS_OK);
		assert_int_equal(ldns_pkt2wire(&qw, qp, &qlen), LDNS_STATUS_OK);
		assert_int_equal(wire_parse_query(&q, qw, qlen), 0);
		urcu_memb_read_lock();
		len = meshview_answer(meshtab_view(f->table), &q, false, reply, sizeof(reply),
				      &res);
		urcu_memb_read_unlock();
		free(qw);
		ldns_pkt_free(qp);
		if (len == 0)
			return "NOT_LOCAL";
		assert_true(len > 0);
		assert_int_equal(ldns_wire2pkt(&rp, reply, (size_t)len), LDNS_STATUS_OK);
		if (ldns_pkt_get_rcode(rp) != LDNS_RCODE_NOERROR) {
			snprintf(out, sizeof(out), "%s",
				 ldns_pkt_get_rcode(rp) == LDNS_RCODE_NXDOMAIN ? "NXDOMAIN"
									       : "SERVFAIL");
			ldns_pkt_free(rp);
			return out;
		}
		for (size_t i = 0; i < ldns_rr_list_rr_count(ldns_pkt_answer(rp)); i++) {
			char *s = ldns_rdf2str(
				ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(rp), i), 0));
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? "," : "", s);
			free(s);
		}
		ldns_pkt_free(rp);
	}
	return n ? out : "NODATA";
}

#define REVIEWS_SPEC(addr)                                                                         \
	"{\"hosts\":[\"reviews.default.cluster-2\"],\"addresses\":[\"" addr "\"],"                 \
	"\"location\":\"MESH_INTERNAL\",\"resolution\":\"DNS\"}"

static void test_rule7_bad_host_is_skipped_and_the_entry_still_counts(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;

	upsert(f, "ns", "se", 0,
	       "{\"hosts\":[\"bad_host.cluster-2\",\"good.cluster-2\"],\"addresses\":"
	       "[\"nonsense\",\"240.0.0.1\"],\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	assert_string_equal(answer(f, "good.cluster-2."), "240.0.0.1");
	assert_string_equal(answer(f, "bad_host.cluster-2."), "NXDOMAIN");
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.hosts, 1);
	assert_int_equal(st.rejected[SE_REJECT_BAD_HOST], 1);
	assert_int_equal(st.rejected[SE_REJECT_BAD_ADDRESS], 1);
	fx_free(f);
}

static void test_rule7_bad_object_is_counted_and_ignored(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;
	cJSON *j = cJSON_Parse("{\"metadata\":{\"name\":\"x\"},\"spec\":{}}");

	assert_int_equal(sedecode_object(j, &f->obj), -EINVAL);
	cJSON_Delete(j);
	assert_int_equal(sestore_upsert(f->store, &f->obj), 0);
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.rejected[SE_REJECT_BAD_OBJECT], 1);
	fx_free(f);
}

static void test_rule8_hosts_under_the_cluster_domain_are_ignored(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;

	upsert(f, "ns", "se", 0,
	       "{\"hosts\":[\"reviews.default.svc.cluster.local\",\"cluster.local\","
	       "\"*.svc.cluster.local\",\"db.ns.svc.clusterset.local\",\"ok.cluster-2\"],"
	       "\"addresses\":[\"240.0.0.1\"],\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.hosts, 1);
	assert_int_equal(st.rejected[SE_REJECT_CLUSTER_DOMAIN], 4);
	assert_string_equal(answer(f, "reviews.default.svc.cluster.local."), "NOT_LOCAL");
	fx_free(f);
}

static void test_rule8_custom_cluster_domain_is_honoured(void **state)
{
	(void)state;
	struct sestore_opts so = { .cluster_domain = "Kube.Cluster-9.", .auto_zones = true };
	struct fixture *f = fx_new(&so, NULL);
	struct sestore_stats st;

	upsert(f, "ns", "se", 0,
	       "{\"hosts\":[\"a.svc.kube.cluster-9\",\"a.svc.cluster.local\"],\"addresses\":"
	       "[\"240.0.0.1\"],\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.rejected[SE_REJECT_CLUSTER_DOMAIN], 1);
	assert_int_equal(st.hosts, 1); /* a.svc.cluster.local is an ordinary host here */
	fx_free(f);
}

static void test_rule9_host_without_address_is_not_in_the_table(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;

	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	upsert(f, "ns", "b", 1,
	       "{\"hosts\":[\"noaddr.default.cluster-2\"],\"addresses\":[\"10.0.0.0/8\"],"
	       "\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	assert_string_equal(answer(f, "noaddr.default.cluster-2."), "NXDOMAIN");
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.rejected[SE_REJECT_NO_ADDRESS], 1);
	assert_int_equal(st.hosts, 1);
	fx_free(f);
}

#define AUTO_SPEC(res)                                                                             \
	"{\"hosts\":[\"auto.ns.cluster-2\"],\"location\":\"MESH_INTERNAL\",\"resolution\":\"" res  \
	"\"},\"status\":{\"addresses\":[{\"value\":\"240.240.0.1\",\"host\":\"auto.ns.cluster-"    \
	"2\"},"                                                                                    \
	"{\"value\":\"2001:2::f0f0:1\",\"host\":\"auto.ns.cluster-2\"}]}"

static void test_rule9_auto_allocated_addresses_only_with_the_option(void **state)
{
	(void)state;
	struct sestore_opts on = { .auto_zones = true, .use_auto_allocated = true };
	struct fixture *f = fx_default(), *g = fx_new(&on, NULL);

	upsert(f, "ns", "a", 0, AUTO_SPEC("DNS"));
	flush(f);
	assert_string_equal(answer(f, "auto.ns.cluster-2."), "NOT_LOCAL");
	upsert(g, "ns", "a", 0, AUTO_SPEC("DNS"));
	flush(g);
	assert_string_equal(answer(g, "auto.ns.cluster-2."), "240.240.0.1,2001:2::f0f0:1");
	/* resolution NONE is not eligible: stale status is not trusted */
	assert_int_equal(
		sestore_upsert(g->store, se(g, "ns", "a", 0, "uid", "2", AUTO_SPEC("NONE"))), 0);
	flush(g);
	assert_string_equal(answer(g, "auto.ns.cluster-2."), "NOT_LOCAL");
	fx_free(f);
	fx_free(g);
}

static void test_rule9_spec_addresses_win_over_auto_allocated(void **state)
{
	(void)state;
	struct sestore_opts on = { .auto_zones = true, .use_auto_allocated = true };
	struct fixture *f = fx_new(&on, NULL);

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"h.ns.cluster-2\"],\"addresses\":[\"240.0.0.5\"],\"location\":"
	       "\"MESH_INTERNAL\",\"resolution\":\"DNS\"},\"status\":{\"addresses\":[{\"value\":"
	       "\"240.240.0.1\",\"host\":\"h.ns.cluster-2\"}]}");
	flush(f);
	assert_string_equal(answer(f, "h.ns.cluster-2."), "240.0.0.5");
	fx_free(f);
}

static void test_rule10_export_private_entry_is_ignored(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;

	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3");
	assert_int_equal(sestore_upsert(f->store, se(f, "ns", "a", 0, "uid", "2",
						     "{\"hosts\":[\"reviews.default.cluster-2\"],"
						     "\"addresses\":[\"240.0.0.3\"],\"location\":"
						     "\"MESH_INTERNAL\",\"exportTo\":[\"~\"]}")),
			 0);
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "NOT_LOCAL");
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.rejected[SE_REJECT_EXPORT_PRIVATE], 1);
	fx_free(f);
}

static void test_rule10_resolution_ports_and_endpoints_do_not_change_answers(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"a.cluster-2\"],\"addresses\":[\"240.0.0.1\"],\"location\":"
	       "\"MESH_INTERNAL\",\"resolution\":\"NONE\"}");
	upsert(f, "ns", "b", 1,
	       "{\"hosts\":[\"b.cluster-2\"],\"addresses\":[\"240.0.0.2\"],\"location\":"
	       "\"MESH_INTERNAL\",\"resolution\":\"STATIC\",\"ports\":[{\"number\":80,"
	       "\"name\":\"http\"}],\"endpoints\":[{\"address\":\"10.1.2.3\"}],"
	       "\"workloadSelector\":{\"labels\":{\"app\":\"b\"}}}");
	flush(f);
	assert_string_equal(answer(f, "a.cluster-2."), "240.0.0.1");
	assert_string_equal(answer(f, "b.cluster-2."), "240.0.0.2");
	fx_free(f);
}

static void test_rule11_oldest_namespace_wins_and_merges_addresses(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "newer", "x", 50, REVIEWS_SPEC("240.0.0.99"));
	upsert(f, "old", "b", 20, REVIEWS_SPEC("240.0.0.4"));
	upsert(f, "old", "a", 10, REVIEWS_SPEC("240.0.0.3"));
	upsert(f, "old", "c", 30,
	       "{\"hosts\":[\"reviews.default.cluster-2\"],\"addresses\":"
	       "[\"240.0.0.4\",\"fd00::3\"]}");
	flush(f);
	/* oldest first: a (10), b (20), c (30); duplicates removed; "newer" loses */
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3,240.0.0.4,fd00::3");
	fx_free(f);
}

static void test_rule11_newer_entry_never_takes_over(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "first", "a", 10, REVIEWS_SPEC("240.0.0.3"));
	flush(f);
	upsert(f, "second", "a", 20, REVIEWS_SPEC("240.0.0.77"));
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3");
	/* the older one modified still wins */
	assert_int_equal(sestore_upsert(f->store, se(f, "first", "a", 10, "uid", "2",
						     REVIEWS_SPEC("240.0.0.30"))),
			 0);
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.30");
	fx_free(f);
}

static void test_rule11_ties_are_broken_by_name_then_namespace(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "zz", "a", 10, REVIEWS_SPEC("240.0.0.1"));
	upsert(f, "aa", "b", 10, REVIEWS_SPEC("240.0.0.2"));
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.1");
	upsert(f, "aa", "a", 10, REVIEWS_SPEC("240.0.0.3"));
	flush(f);
	/* same time and name: namespace aa < zz; aa/b merges in after aa/a */
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3,240.0.0.2");
	fx_free(f);
}

static void test_rule11_deleting_the_winner_hands_the_host_on(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "old", "a", 10, REVIEWS_SPEC("240.0.0.3"));
	upsert(f, "new", "a", 20, REVIEWS_SPEC("240.0.0.8"));
	flush(f);
	assert_int_equal(sestore_delete(f->store, se(f, "old", "a", 10, "uid", "3", "{}")), 0);
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.8");
	assert_int_equal(sestore_delete(f->store, se(f, "new", "a", 20, "", "3", "{}")), 0);
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "NOT_LOCAL");
	fx_free(f);
}

static void test_rule12_com_is_never_learned(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct meshview_info info;

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"db.corp.example.com\",\"api.example.org\"],\"addresses\":"
	       "[\"240.0.0.1\"],\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	meshview_get_info(meshtab_view(f->table), &info);
	assert_int_equal(info.zones, 0);
	assert_int_equal(info.hosts, 2);
	assert_string_equal(answer(f, "db.corp.example.com."), "NOT_LOCAL");
	assert_string_equal(answer(f, "www.google.com."), "NOT_LOCAL");
	assert_true(tld_is_reserved("com", 3));
	assert_true(tld_is_reserved("xn--p1ai", 8));
	assert_true(tld_is_reserved("local", 5));
	assert_false(tld_is_reserved("cluster-2", 9));
	assert_true(tld_is_reserved("co", 2));
	assert_false(tld_is_reserved("comx", 4));
	fx_free(f);
}

static void test_rule12_global_is_learned(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	assert_false(tld_is_reserved("global", 6));
	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"reviews.default.svc.cluster-2.global\"],\"addresses\":"
	       "[\"247.14.174.118\"],\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	assert_string_equal(answer(f, "reviews.default.svc.cluster-2.global."), "247.14.174.118");
	assert_string_equal(answer(f, "nope.global."), "NXDOMAIN");
	assert_string_equal(answer(f, "svc.cluster-2.global."), "NODATA");
	fx_free(f);
}

static void test_rule12_mesh_external_hosts_teach_no_zone(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"ext.default.cluster-3\"],\"addresses\":[\"240.0.0.1\"]}");
	flush(f);
	assert_string_equal(answer(f, "ext.default.cluster-3."), "NOT_LOCAL");
	fx_free(f);
}

static void test_rule12_given_zone_serves_mesh_external_hosts(void **state)
{
	(void)state;
	struct sestore_opts so = { .auto_zones = true };
	struct fixture *f = fx_new(&so, "cluster-3");

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"ext.default.cluster-3\"],\"addresses\":[\"240.0.0.1\"]}");
	assert_string_equal(answer(f, "ext.default.cluster-3."), "SERVFAIL"); /* not synced */
	sestore_replace_begin(f->store);
	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"ext.default.cluster-3\"],\"addresses\":[\"240.0.0.1\"]}");
	assert_int_equal(sestore_replace_commit(f->store), 0);
	assert_string_equal(answer(f, "ext.default.cluster-3."), "240.0.0.1");
	fx_free(f);
}

static void test_rule12_no_auto_zones_learns_nothing(void **state)
{
	(void)state;
	struct sestore_opts so = { .auto_zones = false };
	struct fixture *f = fx_new(&so, NULL);

	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "NOT_LOCAL");
	fx_free(f);
}

static void test_rule12_zone_holding_the_cluster_domain_is_never_learned(void **state)
{
	(void)state;
	struct sestore_opts so = { .cluster_domain = "kube.cluster-9", .auto_zones = true };
	struct fixture *f = fx_new(&so, NULL);

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"svc.other.cluster-9\"],\"addresses\":[\"240.0.0.1\"],"
	       "\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	assert_string_equal(answer(f, "svc.other.cluster-9."), "NOT_LOCAL");
	fx_free(f);
}

static void test_rule13_relist_removes_what_the_list_lacks(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct sestore_stats st;

	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	upsert(f, "ns", "b", 1,
	       "{\"hosts\":[\"ratings.default.cluster-2\"],\"addresses\":[\"240.0.0.2\"],"
	       "\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	sestore_replace_begin(f->store);
	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	assert_int_equal(sestore_replace_commit(f->store), 0);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3");
	assert_string_equal(answer(f, "ratings.default.cluster-2."), "NXDOMAIN");
	sestore_get_stats(f->store, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.relists, 1);
	fx_free(f);
}

static void test_rule13_relist_of_unchanged_entries_publishes_nothing(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct meshtab_stats before, after;

	sestore_replace_begin(f->store);
	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	assert_int_equal(sestore_replace_commit(f->store), 0);
	meshtab_get_stats(f->table, &before);
	sestore_replace_begin(f->store);
	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	assert_int_equal(sestore_replace_commit(f->store), 0);
	meshtab_get_stats(f->table, &after);
	assert_int_equal(after.publishes, before.publishes);
	assert_false(sestore_pending(f->store));
	fx_free(f);
}

static void test_rule13_aborted_relist_removes_nothing(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "ns", "a", 0, REVIEWS_SPEC("240.0.0.3"));
	flush(f);
	sestore_replace_begin(f->store);
	sestore_replace_abort(f->store);
	assert_int_equal(sestore_replace_commit(f->store), 0);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3");
	fx_free(f);
}

static void test_rule13_commit_marks_the_table_synced(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct meshview_info info;

	meshview_get_info(meshtab_view(f->table), &info);
	assert_false(info.synced);
	sestore_replace_begin(f->store);
	assert_int_equal(sestore_replace_commit(f->store), 0);
	meshview_get_info(meshtab_view(f->table), &info);
	assert_true(info.synced);
	assert_int_equal(info.hosts, 0);
	fx_free(f);
}

static void test_rule13_an_event_touches_only_its_hosts(void **state)
{
	(void)state;
	struct fixture *f = fx_default();
	struct meshtab_stats s;
	char name[32], spec[256];

	sestore_replace_begin(f->store);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "se-%d", i);
		snprintf(spec, sizeof(spec),
			 "{\"hosts\":[\"svc-%d.ns.cluster-2\"],\"addresses\":[\"240.0.%d.%d\"],"
			 "\"location\":\"MESH_INTERNAL\"}",
			 i, i / 250, i % 250 + 1);
		upsert(f, "ns", name, i % 3600, spec);
	}
	assert_int_equal(sestore_replace_commit(f->store), 0);
	assert_int_equal(
		sestore_upsert(f->store, se(f, "ns", "se-5", 5, "uid", "2",
					    "{\"hosts\":[\"svc-5.ns.cluster-2\"],\"addresses\":"
					    "[\"240.9.9.9\"],\"location\":\"MESH_INTERNAL\"}")),
		0);
	flush(f);
	meshtab_get_stats(f->table, &s);
	assert_int_equal(s.buckets_copied, 1);
	assert_string_equal(answer(f, "svc-5.ns.cluster-2."), "240.9.9.9");
	assert_string_equal(answer(f, "svc-6.ns.cluster-2."), "240.0.0.7");
	fx_free(f);
}

static void test_delete_of_an_older_uid_keeps_the_recreated_entry(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	assert_int_equal(sestore_upsert(f->store, se(f, "ns", "a", 0, "uid-2", "5",
						     REVIEWS_SPEC("240.0.0.3"))),
			 0);
	flush(f);
	assert_int_equal(sestore_delete(f->store, se(f, "ns", "a", 0, "uid-1", "6", "{}")),
			 -ESTALE);
	assert_int_equal(sestore_delete(f->store, se(f, "ns", "nope", 0, "uid-1", "6", "{}")),
			 -ENOENT);
	flush(f);
	assert_string_equal(answer(f, "reviews.default.cluster-2."), "240.0.0.3");
	fx_free(f);
}

static void test_modified_entry_drops_hosts_it_no_longer_lists(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"one.cluster-2\",\"two.cluster-2\"],\"addresses\":[\"240.0.0.1\"],"
	       "\"location\":\"MESH_INTERNAL\"}");
	flush(f);
	assert_int_equal(
		sestore_upsert(f->store, se(f, "ns", "a", 0, "uid", "2",
					    "{\"hosts\":[\"two.cluster-2\"],\"addresses\":"
					    "[\"240.0.0.1\"],\"location\":\"MESH_INTERNAL\"}")),
		0);
	flush(f);
	assert_string_equal(answer(f, "one.cluster-2."), "NXDOMAIN");
	assert_string_equal(answer(f, "two.cluster-2."), "240.0.0.1");
	fx_free(f);
}

static void test_wildcard_hosts_reach_the_table(void **state)
{
	(void)state;
	struct fixture *f = fx_default();

	upsert(f, "ns", "a", 0,
	       "{\"hosts\":[\"*.foo.global\"],\"addresses\":[\"240.1.0.1\"],\"location\":"
	       "\"MESH_INTERNAL\"}");
	flush(f);
	assert_string_equal(answer(f, "x.foo.global."), "240.1.0.1");
	assert_string_equal(answer(f, "foo.global."), "NODATA");
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule7_bad_host_is_skipped_and_the_entry_still_counts),
		cmocka_unit_test(test_rule7_bad_object_is_counted_and_ignored),
		cmocka_unit_test(test_rule8_hosts_under_the_cluster_domain_are_ignored),
		cmocka_unit_test(test_rule8_custom_cluster_domain_is_honoured),
		cmocka_unit_test(test_rule9_host_without_address_is_not_in_the_table),
		cmocka_unit_test(test_rule9_auto_allocated_addresses_only_with_the_option),
		cmocka_unit_test(test_rule9_spec_addresses_win_over_auto_allocated),
		cmocka_unit_test(test_rule10_export_private_entry_is_ignored),
		cmocka_unit_test(test_rule10_resolution_ports_and_endpoints_do_not_change_answers),
		cmocka_unit_test(test_rule11_oldest_namespace_wins_and_merges_addresses),
		cmocka_unit_test(test_rule11_newer_entry_never_takes_over),
		cmocka_unit_test(test_rule11_ties_are_broken_by_name_then_namespace),
		cmocka_unit_test(test_rule11_deleting_the_winner_hands_the_host_on),
		cmocka_unit_test(test_rule12_com_is_never_learned),
		cmocka_unit_test(test_rule12_global_is_learned),
		cmocka_unit_test(test_rule12_mesh_external_hosts_teach_no_zone),
		cmocka_unit_test(test_rule12_given_zone_serves_mesh_external_hosts),
		cmocka_unit_test(test_rule12_no_auto_zones_learns_nothing),
		cmocka_unit_test(test_rule12_zone_holding_the_cluster_domain_is_never_learned),
		cmocka_unit_test(test_rule13_relist_removes_what_the_list_lacks),
		cmocka_unit_test(test_rule13_relist_of_unchanged_entries_publishes_nothing),
		cmocka_unit_test(test_rule13_aborted_relist_removes_nothing),
		cmocka_unit_test(test_rule13_commit_marks_the_table_synced),
		cmocka_unit_test(test_rule13_an_event_touches_only_its_hosts),
		cmocka_unit_test(test_delete_of_an_older_uid_keeps_the_recreated_entry),
		cmocka_unit_test(test_modified_entry_drops_hosts_it_no_longer_lists),
		cmocka_unit_test(test_wildcard_hosts_reach_the_table),
	};
	static const uint8_t key[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
	int r;

	wire_set_hash_key(key);
	urcu_memb_register_thread();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	urcu_memb_unregister_thread();
	return r;
}
