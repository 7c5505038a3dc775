/* Unit tests for agent/meshtab.c and agent/meshmap.c: SEMANTICS.md rules 1-3 and 12-23 as
 * answered from a published view. Queries are built with ldns and every reply is parsed back
 * with ldns (ldns_wire2pkt), an independent parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>
#include <urcu/urcu-memb.h>

#include "agent/meshtab.h"
#include "agent/wire.h"

#define TTL	30
#define NEG_TTL 5

static struct meshtab *table_new(const char *const *zones, size_t nzones, bool auto_zones)
{
	struct meshtab_opts o = {
		.zones = zones,
		.nzones = nzones,
		.auto_zones = auto_zones,
		.ttl = TTL,
		.neg_ttl = NEG_TTL,
	};
	struct meshtab *t = meshtab_new(&o);

	assert_non_null(t);
	return t;
}

/* Stages @host with the addresses in @list ("240.0.0.1,fd00::1"). */
static int host_set(struct meshtab *t, const char *host, const char *list, bool learn)
{
	struct in_addr v4[600];
	struct in6_addr v6[600];
	size_t n4 = 0, n6 = 0;
	char buf[8192], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (inet_pton(AF_INET, tok, &v4[n4]) == 1)
			n4++;
		else if (inet_pton(AF_INET6, tok, &v6[n6]) == 1)
			n6++;
		else
			fail_msg("bad address %s", tok);
	}
	return meshtab_host_set(t, host, v4, n4, v6, n6, learn);
}

/* A table with zone cluster-2 learned from reviews/ratings, synced and published. */
static struct meshtab *bookinfo(void)
{
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "reviews.default.cluster-2", "240.0.0.3", true), 0);
	assert_int_equal(host_set(t, "ratings.default.cluster-2", "240.0.0.2,fd00::2", true), 0);
	assert_int_equal(host_set(t, "v6only.default.cluster-2", "fd00::6", true), 0);
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	return t;
}

struct reply {
	int len;
	enum mesh_result res;
	uint8_t wire[65535];
	ldns_pkt *pkt;
};

static struct reply rep;

/* Asks @t for @name/@type; @edns 0 means no OPT. Leaves the reply in rep (rep.pkt NULL when
 * the name was not local). */
static void ask_full(struct meshtab *t, const char *name, ldns_rr_type type, uint16_t edns,
		     bool udp, size_t cap)
{
	ldns_pkt *qp = NULL;
	uint8_t *qw = NULL;
	size_t qlen = 0;
	struct wire_query q;

	if (rep.pkt)
		ldns_pkt_free(rep.pkt);
	rep.pkt = NULL;
	assert_int_equal(ldns_pkt_query_new_frm_str(&qp, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(qp, 0x4242);
	if (edns)
		ldns_pkt_set_edns_udp_size(qp, edns);
	assert_int_equal(ldns_pkt2wire(&qw, qp, &qlen), LDNS_STATUS_OK);
	assert_int_equal(wire_parse_query(&q, qw, qlen), 0);
	urcu_memb_read_lock();
	rep.len = meshview_answer(meshtab_view(t), &q, udp, rep.wire, cap, &rep.res);
	urcu_memb_read_unlock();
	if (rep.len > 0)
		assert_int_equal(ldns_wire2pkt(&rep.pkt, rep.wire, (size_t)rep.len),
				 LDNS_STATUS_OK);
	free(qw);
	ldns_pkt_free(qp);
}

static void ask(struct meshtab *t, const char *name, ldns_rr_type type)
{
	ask_full(t, name, type, 0, true, sizeof(rep.wire));
}

static void table_free(struct meshtab *t)
{
	if (rep.pkt)
		ldns_pkt_free(rep.pkt);
	rep.pkt = NULL;
	meshtab_free(t);
}

static char *owner_of(const ldns_rr *rr)
{
	static char text[300];
	char *s = ldns_rdf2str(ldns_rr_owner(rr));

	snprintf(text, sizeof(text), "%s", s);
	free(s);
	return text;
}

static char *rdf_text(const ldns_rr *rr, size_t i)
{
	static char text[300];
	char *s = ldns_rdf2str(ldns_rr_rdf(rr, i));

	snprintf(text, sizeof(text), "%s", s);
	free(s);
	return text;
}

static size_t count(ldns_rr_list *l)
{
	return ldns_rr_list_rr_count(l);
}

/* The reply is a NOERROR/NXDOMAIN with no answer, AA=1 and the SOA of @zone in authority. */
static void assert_negative(ldns_pkt_rcode rcode, const char *zone)
{
	ldns_rr *soa;

	assert_non_null(rep.pkt);
	assert_int_equal(ldns_pkt_get_rcode(rep.pkt), rcode);
	assert_true(ldns_pkt_aa(rep.pkt));
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 0);
	assert_int_equal(count(ldns_pkt_authority(rep.pkt)), 1);
	soa = ldns_rr_list_rr(ldns_pkt_authority(rep.pkt), 0);
	assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	assert_string_equal(owner_of(soa), zone);
	assert_int_equal(ldns_rr_ttl(soa), NEG_TTL);
}

static void test_rule1_exact_host_is_answered_locally(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	assert_int_equal(ldns_pkt_get_rcode(rep.pkt), LDNS_RCODE_NOERROR);
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.0.0.3");
	table_free(t);
}

static void test_rule14_a_returns_every_v4_with_mesh_ttl(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	ldns_rr_list *an;

	assert_int_equal(
		host_set(t, "multi.ns.cluster-2", "240.0.0.7,240.0.0.8,fd00::1,240.0.0.9", true),
		0);
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "multi.ns.cluster-2.", LDNS_RR_TYPE_A);
	an = ldns_pkt_answer(rep.pkt);
	assert_int_equal(count(an), 3);
	assert_true(ldns_pkt_aa(rep.pkt));
	assert_true(ldns_pkt_qr(rep.pkt));
	assert_int_equal(ldns_pkt_id(rep.pkt), 0x4242);
	assert_string_equal(rdf_text(ldns_rr_list_rr(an, 0), 0), "240.0.0.7");
	assert_string_equal(rdf_text(ldns_rr_list_rr(an, 1), 0), "240.0.0.8");
	assert_string_equal(rdf_text(ldns_rr_list_rr(an, 2), 0), "240.0.0.9");
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(an, i)), TTL);
		assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(an, i)), LDNS_RR_TYPE_A);
		assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(an, i)), LDNS_RR_CLASS_IN);
	}
	assert_int_equal(count(ldns_pkt_authority(rep.pkt)), 0);
	table_free(t);
}

static void test_rule14_owner_is_question_name_as_sent(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "ReViews.DEFAULT.Cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	assert_string_equal(owner_of(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0)),
			    "ReViews.DEFAULT.Cluster-2.");
	/* the question is echoed as received too */
	assert_memory_equal(rep.wire + 12, "\7ReViews\7DEFAULT\11Cluster-2", 26);
	table_free(t);
}

static void test_rule14_a_of_v6_only_host_is_nodata(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "v6only.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	table_free(t);
}

static void test_rule15_aaaa_returns_every_v6(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	ldns_rr_list *an;

	assert_int_equal(host_set(t, "dual.ns.cluster-2", "fd00::1,240.0.0.1,fd00::2", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "dual.ns.cluster-2.", LDNS_RR_TYPE_AAAA);
	an = ldns_pkt_answer(rep.pkt);
	assert_int_equal(count(an), 2);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(an, 0)), LDNS_RR_TYPE_AAAA);
	assert_string_equal(rdf_text(ldns_rr_list_rr(an, 0), 0), "fd00::1");
	assert_string_equal(rdf_text(ldns_rr_list_rr(an, 1), 0), "fd00::2");
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(an, 1)), TTL);
	table_free(t);
}

static void test_rule15_aaaa_of_v4_only_host_is_nodata_with_soa(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_AAAA);
	assert_int_equal(rep.res, MESH_HOST);
	assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	table_free(t);
}

static void test_rule16_any_returns_a_and_aaaa(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	ldns_rr_list *an;

	ask(t, "ratings.default.cluster-2.", LDNS_RR_TYPE_ANY);
	an = ldns_pkt_answer(rep.pkt);
	assert_int_equal(count(an), 2);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(an, 0)), LDNS_RR_TYPE_A);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(an, 1)), LDNS_RR_TYPE_AAAA);
	table_free(t);
}

static void test_rule16_other_types_are_nodata_answered_locally(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	const ldns_rr_type types[] = { LDNS_RR_TYPE_MX,	   LDNS_RR_TYPE_TXT, LDNS_RR_TYPE_SRV,
				       LDNS_RR_TYPE_CNAME, LDNS_RR_TYPE_NS,  LDNS_RR_TYPE_SOA,
				       LDNS_RR_TYPE_PTR,   (ldns_rr_type)65, (ldns_rr_type)64 };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		ask(t, "reviews.default.cluster-2.", types[i]);
		assert_int_equal(rep.res, MESH_HOST);
		assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	}
	table_free(t);
}

static void test_rule17_nodata_soa_owner_is_the_zone_in_question_case(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "Reviews.Default.CLUSTER-2.", LDNS_RR_TYPE_TXT);
	assert_negative(LDNS_RCODE_NOERROR, "CLUSTER-2.");
	table_free(t);
}

static void test_rule2_wildcard_matches_names_strictly_below_at_any_depth(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "*.foo.global", "240.1.0.1", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "a.foo.global.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_WILDCARD);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.1.0.1");
	ask(t, "x.y.z.foo.global.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_WILDCARD);
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	table_free(t);
}

static void test_rule2_wildcard_does_not_match_its_apex(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "*.foo.global", "240.1.0.1", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "foo.global.", LDNS_RR_TYPE_A);
	/* foo.global exists (it holds the wildcard) but has no address: NODATA */
	assert_int_equal(rep.res, MESH_NODATA);
	assert_negative(LDNS_RCODE_NOERROR, "global.");
	table_free(t);
}

static void test_rule2_most_specific_wildcard_wins(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "*.global", "240.1.0.1", true), 0);
	assert_int_equal(host_set(t, "*.bar.global", "240.1.0.2", true), 0);
	assert_int_equal(host_set(t, "*.foo.bar.global", "240.1.0.3", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "a.foo.bar.global.", LDNS_RR_TYPE_A);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.1.0.3");
	ask(t, "a.b.bar.global.", LDNS_RR_TYPE_A);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.1.0.2");
	ask(t, "a.other.global.", LDNS_RR_TYPE_A);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.1.0.1");
	table_free(t);
}

static void test_rule2_exact_host_beats_wildcard(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "*.foo.global", "240.1.0.1", true), 0);
	assert_int_equal(host_set(t, "a.foo.global", "240.1.0.9", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "a.foo.global.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "240.1.0.9");
	/* an exact v4-only host does not fall through to the wildcard for AAAA */
	assert_int_equal(host_set(t, "*.foo.global", "fd00::1", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "a.foo.global.", LDNS_RR_TYPE_AAAA);
	assert_int_equal(rep.res, MESH_HOST);
	assert_negative(LDNS_RCODE_NOERROR, "global.");
	table_free(t);
}

static void test_rule18_wildcard_answer_is_owned_by_query_name(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	ldns_rr *rr;

	assert_int_equal(host_set(t, "*.foo.global", "240.1.0.1", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "Deep.Name.foo.GLOBAL.", LDNS_RR_TYPE_A);
	rr = ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0);
	assert_string_equal(owner_of(rr), "Deep.Name.foo.GLOBAL.");
	assert_null(strchr(owner_of(rr), '*'));
	assert_int_equal(ldns_rr_ttl(rr), TTL);
	table_free(t);
}

static void test_rule3_name_in_no_zone_is_not_answered(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "www.example.com.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	assert_int_equal(rep.res, MESH_NOT_LOCAL);
	ask(t, ".", LDNS_RR_TYPE_NS);
	assert_int_equal(rep.len, 0);
	ask(t, "kubernetes.default.svc.cluster.local.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	table_free(t);
}

static void test_rule12_host_outside_every_zone_is_not_answered(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	/* the store does not let "com" be learned: learn_zone is false */
	assert_int_equal(host_set(t, "db.corp.example.com", "240.0.0.1", false), 0);
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "db.corp.example.com.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	assert_int_equal(rep.res, MESH_NOT_LOCAL);
	table_free(t);
}

static void test_rule12_host_in_given_zone_is_answered_without_learning(void **state)
{
	(void)state;
	const char *zones[] = { "example.com." };
	struct meshtab *t = table_new(zones, 1, true);
	struct meshview_info info;

	assert_int_equal(host_set(t, "db.corp.example.com", "240.0.0.1", false), 0);
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "db.corp.example.com.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	ask(t, "other.com.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	meshview_get_info(meshtab_view(t), &info);
	assert_int_equal(info.zones, 1);
	table_free(t);
}

static void test_rule12_learned_zone_goes_with_its_last_host(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	struct meshview_info info;

	meshview_get_info(meshtab_view(t), &info);
	assert_int_equal(info.zones, 1);
	assert_int_equal(meshtab_host_del(t, "reviews.default.cluster-2"), 0);
	assert_int_equal(meshtab_host_del(t, "ratings.default.cluster-2"), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN); /* v6only still teaches the zone */
	assert_int_equal(meshtab_host_del(t, "v6only.default.cluster-2"), 0);
	assert_int_equal(meshtab_publish(t), 0);
	meshview_get_info(meshtab_view(t), &info);
	assert_int_equal(info.zones, 0);
	assert_int_equal(info.hosts, 0);
	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	table_free(t);
}

static void test_rule12_no_auto_zones_learns_nothing(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, false);
	struct meshview_info info;

	assert_int_equal(host_set(t, "reviews.default.cluster-2", "240.0.0.3", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	meshview_get_info(meshtab_view(t), &info);
	assert_int_equal(info.zones, 0);
	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	table_free(t);
}

static void test_rule19_soa_fields(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	struct meshview_info info;
	ldns_rr *soa;

	ask(t, "nope.default.cluster-2.", LDNS_RR_TYPE_A);
	soa = ldns_rr_list_rr(ldns_pkt_authority(rep.pkt), 0);
	meshview_get_info(meshtab_view(t), &info);
	assert_string_equal(rdf_text(soa, 0), "ns.dns.cluster-2.");
	assert_string_equal(rdf_text(soa, 1), "hostmaster.cluster-2.");
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), info.generation);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 3)), 7200);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 4)), 1800);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 5)), 86400);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)), NEG_TTL);
	assert_int_equal(ldns_rr_ttl(soa), NEG_TTL);
	table_free(t);
}

static void test_rule19_serial_follows_generation(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	uint32_t s1, s2;

	ask(t, "nope.cluster-2.", LDNS_RR_TYPE_A);
	s1 = ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_authority(rep.pkt), 0), 2));
	assert_int_equal(host_set(t, "new.default.cluster-2", "240.0.0.50", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "nope.cluster-2.", LDNS_RR_TYPE_A);
	s2 = ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_authority(rep.pkt), 0), 2));
	assert_int_equal(s2, s1 + 1);
	table_free(t);
}

static void test_rule20_apex_soa_is_answered(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	ldns_rr *soa;

	ask(t, "Cluster-2.", LDNS_RR_TYPE_SOA);
	assert_int_equal(rep.res, MESH_NODATA);
	assert_int_equal(ldns_pkt_get_rcode(rep.pkt), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(rep.pkt));
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	soa = ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0);
	assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	assert_string_equal(owner_of(soa), "Cluster-2.");
	assert_string_equal(rdf_text(soa, 0), "ns.dns.Cluster-2.");
	table_free(t);
}

static void test_rule20_apex_ns_is_ns_dns_zone(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	ldns_rr *ns;

	ask(t, "cluster-2.", LDNS_RR_TYPE_NS);
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	ns = ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0);
	assert_int_equal(ldns_rr_get_type(ns), LDNS_RR_TYPE_NS);
	assert_string_equal(owner_of(ns), "cluster-2.");
	assert_string_equal(rdf_text(ns, 0), "ns.dns.cluster-2.");
	table_free(t);
}

static void test_rule20_apex_other_types_are_nodata(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NODATA);
	assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	ask(t, "cluster-2.", LDNS_RR_TYPE_MX);
	assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	table_free(t);
}

static void test_rule21_empty_non_terminal_is_nodata(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NODATA);
	assert_negative(LDNS_RCODE_NOERROR, "cluster-2.");
	table_free(t);
}

static void test_rule21_deleted_host_keeps_its_name_while_hosts_below_exist(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "b.cluster-2", "240.0.0.1", true), 0);
	assert_int_equal(host_set(t, "a.b.cluster-2", "240.0.0.2", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	assert_int_equal(meshtab_host_del(t, "b.cluster-2"), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "b.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NODATA);
	assert_int_equal(meshtab_host_del(t, "a.b.cluster-2"), 0);
	assert_int_equal(host_set(t, "c.cluster-2", "240.0.0.3", true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "b.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN);
	table_free(t);
}

static void test_rule22_unknown_name_in_zone_is_nxdomain_with_soa(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask(t, "details.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN);
	assert_negative(LDNS_RCODE_NXDOMAIN, "cluster-2.");
	/* below a host is nothing either */
	ask(t, "x.reviews.default.cluster-2.", LDNS_RR_TYPE_AAAA);
	assert_negative(LDNS_RCODE_NXDOMAIN, "cluster-2.");
	table_free(t);
}

static void test_rule22_closest_enclosing_zone_gives_the_soa(void **state)
{
	(void)state;
	const char *zones[] = { "global", "mesh.global" };
	struct meshtab *t = table_new(zones, 2, true);

	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "a.mesh.global.", LDNS_RR_TYPE_A);
	assert_negative(LDNS_RCODE_NXDOMAIN, "mesh.global.");
	ask(t, "a.other.global.", LDNS_RR_TYPE_A);
	assert_negative(LDNS_RCODE_NXDOMAIN, "global.");
	table_free(t);
}

static void test_rule23_given_zone_is_servfail_before_sync(void **state)
{
	(void)state;
	const char *zones[] = { "global" };
	struct meshtab *t = table_new(zones, 1, true);
	static const uint8_t ede[] = { 0, 15, 0, 23, 0, 14 }; /* EDE option, code 14 */

	ask_full(t, "httpbin.bar.global.", LDNS_RR_TYPE_A, 1232, true, sizeof(rep.wire));
	assert_int_equal(rep.res, MESH_NOT_READY);
	assert_int_equal(ldns_pkt_get_rcode(rep.pkt), LDNS_RCODE_SERVFAIL);
	assert_false(ldns_pkt_aa(rep.pkt));
	assert_non_null(memmem(rep.wire, (size_t)rep.len, ede, sizeof(ede)));
	ask(t, "other.example.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.len, 0);
	table_free(t);
}

static void test_rule23_given_zone_answers_after_sync(void **state)
{
	(void)state;
	const char *zones[] = { "global" };
	struct meshtab *t = table_new(zones, 1, true);
	struct meshview_info info;

	assert_int_equal(host_set(t, "httpbin.bar.global", "240.0.0.2", true), 0);
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	meshview_get_info(meshtab_view(t), &info);
	assert_true(info.synced);
	ask(t, "httpbin.bar.global.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	ask(t, "nope.bar.global.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN);
	table_free(t);
}

static void test_rule13_old_view_is_unchanged_by_a_publish(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();
	const struct meshview *old;
	struct meshview_info info;

	urcu_memb_read_lock();
	old = meshtab_view(t);
	assert_int_equal(host_set(t, "reviews.default.cluster-2", "240.0.0.33", true), 0);
	assert_int_equal(meshtab_host_del(t, "ratings.default.cluster-2"), 0);
	assert_int_equal(meshtab_publish(t), 0);
	assert_ptr_not_equal(old, meshtab_view(t));
	meshview_get_info(old, &info);
	assert_int_equal(info.hosts, 3);
	urcu_memb_read_unlock();
	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0),
			    "240.0.0.33");
	ask(t, "ratings.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN);
	table_free(t);
}

static void test_rule13_staged_changes_are_invisible_until_publish(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	assert_int_equal(host_set(t, "new.default.cluster-2", "240.0.0.9", true), 0);
	assert_true(meshtab_dirty(t));
	ask(t, "new.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NXDOMAIN);
	assert_int_equal(meshtab_publish(t), 0);
	assert_false(meshtab_dirty(t));
	ask(t, "new.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	table_free(t);
}

static void test_setting_the_same_host_again_stages_nothing(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	assert_int_equal(host_set(t, "reviews.default.cluster-2", "240.0.0.3", true), 0);
	assert_false(meshtab_dirty(t));
	table_free(t);
}

static void test_bad_host_name_is_einval(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);

	assert_int_equal(host_set(t, "a..b", "240.0.0.1", true), -EINVAL);
	assert_int_equal(host_set(t, ".", "240.0.0.1", true), -EINVAL);
	assert_int_equal(host_set(t, "*.", "240.0.0.1", true), -EINVAL);
	assert_int_equal(meshtab_host_del(t, "absent.cluster-2"), -ENOENT);
	table_free(t);
}

static void test_invalid_given_zone_fails_creation(void **state)
{
	(void)state;
	const char *zones[] = { "bad..zone" };
	struct meshtab_opts o = { .zones = zones, .nzones = 1, .ttl = TTL, .neg_ttl = NEG_TTL };

	assert_null(meshtab_new(&o));
}

static void test_large_address_set_is_truncated_with_tc_over_udp(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	char list[8192];
	size_t n = 0;

	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s240.0.%d.%d", i ? "," : "",
				      i / 250, i % 250 + 1);
	assert_int_equal(host_set(t, "big.ns.cluster-2", list, true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	/* 100 A RRs = 1600 bytes: too large for 512 and for 1232 */
	ask_full(t, "big.ns.cluster-2.", LDNS_RR_TYPE_A, 0, true, sizeof(rep.wire));
	assert_true(rep.len <= 512);
	assert_true(ldns_pkt_tc(rep.pkt));
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 0);
	ask_full(t, "big.ns.cluster-2.", LDNS_RR_TYPE_A, 1232, true, sizeof(rep.wire));
	assert_true(rep.len <= 1232);
	assert_true(ldns_pkt_tc(rep.pkt));
	assert_true(ldns_pkt_edns(rep.pkt));
	/* over TCP every address is there */
	ask_full(t, "big.ns.cluster-2.", LDNS_RR_TYPE_A, 0, false, sizeof(rep.wire));
	assert_false(ldns_pkt_tc(rep.pkt));
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 100);
	table_free(t);
}

static void test_any_keeps_the_a_rrset_when_only_it_fits(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	char list[8192];
	size_t n = 0;

	n += (size_t)snprintf(list, sizeof(list), "240.0.0.1");
	for (int i = 1; i <= 30; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, ",fd00::%x", i);
	assert_int_equal(host_set(t, "mixed.ns.cluster-2", list, true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	ask(t, "mixed.ns.cluster-2.", LDNS_RR_TYPE_ANY);
	assert_true(ldns_pkt_tc(rep.pkt));
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	table_free(t);
}

static void test_edns_opt_is_echoed(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask_full(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A, 4096, true, sizeof(rep.wire));
	assert_true(ldns_pkt_edns(rep.pkt));
	assert_int_equal(ldns_pkt_edns_udp_size(rep.pkt), 1232);
	assert_int_equal(count(ldns_pkt_answer(rep.pkt)), 1);
	ask(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A);
	assert_false(ldns_pkt_edns(rep.pkt));
	table_free(t);
}

static void test_small_buffer_is_enospc(void **state)
{
	(void)state;
	struct meshtab *t = bookinfo();

	ask_full(t, "reviews.default.cluster-2.", LDNS_RR_TYPE_A, 0, true, 40);
	assert_int_equal(rep.len, -ENOSPC);
	table_free(t);
}

static void test_many_hosts_survive_rehashing(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	char name[64], addr[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "svc-%d.ns-%d.cluster-2", i, i % 37);
		snprintf(addr, sizeof(addr), "240.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		assert_int_equal(host_set(t, name, addr, true), 0);
		if (i % 1000 == 999)
			assert_int_equal(meshtab_publish(t), 0);
	}
	assert_int_equal(meshtab_publish(t), 0);
	for (int i = 0; i < 5000; i += 7) {
		snprintf(name, sizeof(name), "svc-%d.ns-%d.cluster-2.", i, i % 37);
		ask(t, name, LDNS_RR_TYPE_A);
		assert_int_equal(rep.res, MESH_HOST);
	}
	ask(t, "ns-3.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_NODATA);
	table_free(t);
}

static void test_rule13_one_change_in_100k_hosts_copies_one_bucket(void **state)
{
	(void)state;
	struct meshtab *t = table_new(NULL, 0, true);
	struct meshtab_stats s;
	struct in_addr a;
	char name[64];

	for (uint32_t i = 0; i < 100000; i++) {
		snprintf(name, sizeof(name), "svc-%u.ns-%u.cluster-2", i, i % 100);
		a.s_addr = htonl(0xf0000000u + i);
		assert_int_equal(meshtab_host_set(t, name, &a, 1, NULL, 0, true), 0);
	}
	meshtab_set_synced(t);
	assert_int_equal(meshtab_publish(t), 0);
	meshtab_get_stats(t, &s);
	assert_true(s.records >= 100000);

	a.s_addr = htonl(0xf1000000u);
	assert_int_equal(meshtab_host_set(t, "svc-777.ns-77.cluster-2", &a, 1, NULL, 0, true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	meshtab_get_stats(t, &s);
	assert_int_equal(s.buckets_copied, 1);
	assert_int_equal(s.pages_copied, 1);
	assert_int_equal(s.dirs_copied, 1);
	assert_int_equal(s.rehashes, 0);
	assert_true(s.bytes_copied < 16384);

	/* a new host under an existing namespace: its bucket, and the refcount of its parent */
	assert_int_equal(meshtab_host_set(t, "new.ns-77.cluster-2", &a, 1, NULL, 0, true), 0);
	assert_int_equal(meshtab_publish(t), 0);
	meshtab_get_stats(t, &s);
	assert_true(s.buckets_copied <= 4);
	assert_true(s.dirs_copied <= 2);

	ask(t, "svc-777.ns-77.cluster-2.", LDNS_RR_TYPE_A);
	assert_string_equal(rdf_text(ldns_rr_list_rr(ldns_pkt_answer(rep.pkt), 0), 0), "241.0.0.0");
	ask(t, "svc-778.ns-78.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	ask(t, "svc-99999.ns-99.cluster-2.", LDNS_RR_TYPE_A);
	assert_int_equal(rep.res, MESH_HOST);
	table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule1_exact_host_is_answered_locally),
		cmocka_unit_test(test_rule2_wildcard_matches_names_strictly_below_at_any_depth),
		cmocka_unit_test(test_rule2_wildcard_does_not_match_its_apex),
		cmocka_unit_test(test_rule2_most_specific_wildcard_wins),
		cmocka_unit_test(test_rule2_exact_host_beats_wildcard),
		cmocka_unit_test(test_rule3_name_in_no_zone_is_not_answered),
		cmocka_unit_test(test_rule12_host_outside_every_zone_is_not_answered),
		cmocka_unit_test(test_rule12_host_in_given_zone_is_answered_without_learning),
		cmocka_unit_test(test_rule12_learned_zone_goes_with_its_last_host),
		cmocka_unit_test(test_rule12_no_auto_zones_learns_nothing),
		cmocka_unit_test(test_rule13_old_view_is_unchanged_by_a_publish),
		cmocka_unit_test(test_rule13_staged_changes_are_invisible_until_publish),
		cmocka_unit_test(test_rule13_one_change_in_100k_hosts_copies_one_bucket),
		cmocka_unit_test(test_rule14_a_returns_every_v4_with_mesh_ttl),
		cmocka_unit_test(test_rule14_owner_is_question_name_as_sent),
		cmocka_unit_test(test_rule14_a_of_v6_only_host_is_nodata),
		cmocka_unit_test(test_rule15_aaaa_returns_every_v6),
		cmocka_unit_test(test_rule15_aaaa_of_v4_only_host_is_nodata_with_soa),
		cmocka_unit_test(test_rule16_any_returns_a_and_aaaa),
		cmocka_unit_test(test_rule16_other_types_are_nodata_answered_locally),
		cmocka_unit_test(test_rule17_nodata_soa_owner_is_the_zone_in_question_case),
		cmocka_unit_test(test_rule18_wildcard_answer_is_owned_by_query_name),
		cmocka_unit_test(test_rule19_soa_fields),
		cmocka_unit_test(test_rule19_serial_follows_generation),
		cmocka_unit_test(test_rule20_apex_soa_is_answered),
		cmocka_unit_test(test_rule20_apex_ns_is_ns_dns_zone),
		cmocka_unit_test(test_rule20_apex_other_types_are_nodata),
		cmocka_unit_test(test_rule21_empty_non_terminal_is_nodata),
		cmocka_unit_test(test_rule21_deleted_host_keeps_its_name_while_hosts_below_exist),
		cmocka_unit_test(test_rule22_unknown_name_in_zone_is_nxdomain_with_soa),
		cmocka_unit_test(test_rule22_closest_enclosing_zone_gives_the_soa),
		cmocka_unit_test(test_rule23_given_zone_is_servfail_before_sync),
		cmocka_unit_test(test_rule23_given_zone_answers_after_sync),
		cmocka_unit_test(test_setting_the_same_host_again_stages_nothing),
		cmocka_unit_test(test_bad_host_name_is_einval),
		cmocka_unit_test(test_invalid_given_zone_fails_creation),
		cmocka_unit_test(test_large_address_set_is_truncated_with_tc_over_udp),
		cmocka_unit_test(test_any_keeps_the_a_rrset_when_only_it_fits),
		cmocka_unit_test(test_edns_opt_is_echoed),
		cmocka_unit_test(test_small_buffer_is_enospc),
		cmocka_unit_test(test_many_hosts_survive_rehashing),
	};
	static const uint8_t key[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
	int r;

	wire_set_hash_key(key);
	urcu_memb_register_thread();
	r = cmocka_run_group_tests(tests, NULL, NULL);
	urcu_memb_unregister_thread();
	return r;
}
