/* Unit tests for agent/reply.c: what an upstream reply becomes in the cache (canonical form,
 * TTL caps, RFC 2308 negative TTLs, bailiwick scrubbing) and what each client receives. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/reply.h"
#include "agent/wire.h"
#include "dnsmsg.h"

static const struct reply_policy default_policy = { .max_ttl = 3600, .neg_ttl = 300 };

struct fixture {
	uint8_t up[4096];
	size_t uplen;
	struct wire_reply r;
	uint8_t qbuf[512];
	struct wire_query q;
	uint8_t canon[WIRE_MAX_MSG];
	struct reply_canon c;
};

static struct fixture fx;

/* Canonicalises the reply to @rname/@type (its question and owners spelt so, owners
 * compressed against the question) built from @rrs, for the query @qname/@type, under @pol;
 * returns 0 or errno. */
static int canon_as(const char *qname, const char *rname, ldns_rr_type type, ldns_pkt_rcode rcode,
		    bool edns, const char *const *rrs, const struct reply_policy *pol)
{
	size_t ql = dnsmsg_query(fx.qbuf, sizeof fx.qbuf, qname, type, 0, false);

	assert_int_equal(wire_parse_query(&fx.q, fx.qbuf, ql), 0);
	fx.uplen = dnsmsg_reply(fx.up, sizeof fx.up, rname, type, rcode, edns, rrs);
	assert_int_equal(wire_parse_reply(fx.up, fx.uplen, &fx.r), 0);
	return reply_canonicalize(fx.up, &fx.r, &fx.q, pol, fx.canon, sizeof fx.canon, &fx.c);
}

/* The same for a reply to the query's own name and type. */
static int canon(const char *name, ldns_rr_type type, ldns_pkt_rcode rcode, bool edns,
		 const char *const *rrs, const struct reply_policy *pol)
{
	return canon_as(name, name, type, rcode, edns, rrs, pol);
}

static void test_canonical_form_strips_opt_and_keeps_answer(void **state)
{
	(void)state;
	const char *rrs[] = { "AN a.test. 300 IN A 10.0.0.1", NULL };
	char t[256];

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, rrs,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.len, fx.uplen - WIRE_OPT_LEN);
	assert_int_equal(fx.c.ttl, 300);
	assert_int_equal(fx.c.kind, REPLY_SUCCESS);
	assert_int_equal(fx.c.nttl, 1);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_arcount(p), 0);
	assert_false(ldns_pkt_edns(p));
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "a.test. IN A 10.0.0.1");
	ldns_pkt_free(p);
}

static void test_rule34_positive_ttl_is_smallest_and_capped(void **state)
{
	(void)state;
	const char *rrs[] = { "AN a.test. 7200 IN A 10.0.0.1", "AN a.test. 9000 IN A 10.0.0.2",
			      NULL };
	struct reply_policy cluster = { .max_ttl = 30, .neg_ttl = 5 };

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.ttl, 3600);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 0), 3600);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 1), 3600);
	ldns_pkt_free(p);

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &cluster),
			 0);
	assert_int_equal(fx.c.ttl, 30);
}

static void test_rule34_ttl_zero_is_not_cached(void **state)
{
	(void)state;
	const char *rrs[] = { "AN a.test. 0 IN A 10.0.0.1", NULL };

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.ttl, 0);
}

static void test_rule35_negative_ttl_is_min_of_soa_ttl_and_minimum(void **state)
{
	(void)state;
	const char *rrs[] = {
		"NS test. 600 IN SOA ns.test. host.test. 1 7200 1800 86400 120", NULL
	};

	assert_int_equal(canon("nx.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, false, rrs,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.kind, REPLY_DENIAL);
	assert_int_equal(fx.c.ttl, 120);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_AUTHORITY, 0), 120);
	ldns_pkt_free(p);
}

static void test_rule35_negative_ttl_capped_for_cluster_domain(void **state)
{
	(void)state;
	const char *rrs[] = {
		"NS cluster.local. 30 IN SOA ns.dns.cluster.local. h.cluster.local. 1 7200 1800 "
		"86400 30",
		NULL
	};
	struct reply_policy cluster = { .max_ttl = 30, .neg_ttl = 5 };

	assert_int_equal(canon("x.svc.cluster.local.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN,
			       false, rrs, &cluster),
			 0);
	assert_int_equal(fx.c.ttl, 5);
}

static void test_rule35_nodata_is_negative(void **state)
{
	(void)state;
	const char *rrs[] = { "NS test. 60 IN SOA ns.test. host.test. 1 7200 1800 86400 600",
			      NULL };

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.kind, REPLY_DENIAL);
	assert_int_equal(fx.c.ttl, 60);
}

static void test_rule35_negative_without_soa_is_not_cached(void **state)
{
	(void)state;
	assert_int_equal(canon("nx.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, false, NULL,
			       &default_policy),
			 0);
	assert_int_equal(fx.c.ttl, 0);
}

static void test_cname_chain_is_kept(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN CNAME web.test.",
			      "AN web.test. 300 IN CNAME host.other.",
			      "AN host.other. 60 IN A 10.0.0.9", NULL };

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_false(fx.c.scrubbed);
	assert_int_equal(fx.c.ttl, 60);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 3);
	ldns_pkt_free(p);
}

static void test_records_off_the_chain_are_dropped(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1",
			      "AN victim.bank. 300 IN A 6.6.6.6",
			      "NS evil. 300 IN NS ns.evil.",
			      "AR ns.evil. 300 IN A 6.6.6.7", NULL };
	char t[256];

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, rrs,
			       &default_policy),
			 0);
	assert_true(fx.c.scrubbed);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 1);
	assert_int_equal(ldns_pkt_nscount(p), 0);
	assert_int_equal(ldns_pkt_arcount(p), 0);
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "www.test. IN A 10.0.0.1");
	ldns_pkt_free(p);
	assert_int_equal(fx.c.nttl, 1);
}

static void test_glue_for_in_bailiwick_ns_is_kept(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1", "NS test. 300 IN NS ns1.test.",
			      "AR ns1.test. 300 IN A 10.0.0.53", NULL };

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_false(fx.c.scrubbed);
	assert_int_equal(fx.c.nttl, 3);
}

static void test_srv_target_addresses_are_kept(void **state)
{
	(void)state;
	const char *rrs[] = { "AN _http._tcp.svc.test. 30 IN SRV 0 50 80 pod1.svc.test.",
			      "AR pod1.svc.test. 30 IN A 10.0.0.5",
			      "AR unrelated.test. 30 IN A 10.0.0.6", NULL };

	assert_int_equal(canon("_http._tcp.svc.test.", LDNS_RR_TYPE_SRV, LDNS_RCODE_NOERROR,
			       false, rrs, &default_policy),
			 0);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 1);
	assert_int_equal(ldns_pkt_arcount(p), 1);
	ldns_pkt_free(p);
}

static void test_upstream_never_speaks_for_the_cluster_domain(void **state)
{
	(void)state;
	static const uint8_t cl[] = "\7cluster\5local";
	const uint8_t *deny[] = { cl, NULL };
	const uint8_t deny_len[] = { sizeof cl };
	struct reply_policy pol = { .max_ttl = 3600, .neg_ttl = 300, .deny = deny,
				    .deny_len = deny_len };
	const char *rrs[] = { "AN x.test. 300 IN CNAME kube-dns.kube-system.svc.cluster.local.",
			      "AN kube-dns.kube-system.svc.cluster.local. 300 IN A 6.6.6.6",
			      NULL };
	char t[256];

	assert_int_equal(canon("x.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs, &pol),
			 0);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 1);
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "x.test. IN CNAME kube-dns.kube-system.svc.cluster.local.");
	ldns_pkt_free(p);
}

static void test_any_gets_one_rrset(void **state)
{
	(void)state;
	const char *rrs[] = { "AN a.test. 300 IN A 10.0.0.1", "AN a.test. 300 IN A 10.0.0.2",
			      "AN a.test. 300 IN TXT \"hello\"", "AN a.test. 300 IN MX 10 mx.test.",
			      NULL };

	assert_int_equal(canon("a.test.", LDNS_RR_TYPE_ANY, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 2);
	ldns_pkt_free(p);
}

static void test_compressed_names_survive_scrubbing(void **state)
{
	(void)state;
	/* an MX whose exchange name is compressed against a record that is dropped */
	const char *rrs[] = { "AN junk.mail.test. 300 IN A 6.6.6.6",
			      "AN mail.test. 300 IN MX 10 junk.mail.test.", NULL };
	char t[256];

	assert_int_equal(canon("mail.test.", LDNS_RR_TYPE_MX, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	assert_true(fx.c.scrubbed);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 1);
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "mail.test. IN MX 10 junk.mail.test.");
	ldns_pkt_free(p);
}

/* An owner that points at the question is the query name in any case, and is scrubbed like
 * any other: followed along the chain, and denied when the policy denies it. */
static void test_owner_pointing_at_the_question_is_scrubbed_as_the_query_name(void **state)
{
	(void)state;
	const char *rrs[] = { "AN WwW.TeSt. 300 IN CNAME web.test.",
			      "AN web.test. 60 IN A 10.0.0.9", "AN victim.bank. 300 IN A 6.6.6.6",
			      NULL };
	static const uint8_t www[] = "\3www\4test";
	const uint8_t *deny[] = { www, NULL };
	const uint8_t deny_len[] = { sizeof www };
	struct reply_policy pol = {
		.max_ttl = 3600, .neg_ttl = 300, .deny = deny, .deny_len = deny_len
	};
	char t[256];

	assert_int_equal(canon_as("www.test.", "WwW.TeSt.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR,
				  false, rrs, &default_policy),
			 0);
	/* ldns compresses the first owner against the question */
	size_t owner = fx.r.question_end;
	assert_int_equal(fx.up[owner], 0xc0);
	assert_int_equal(fx.up[owner + 1], WIRE_HDR_LEN);
	assert_true(fx.c.scrubbed);
	assert_int_equal(fx.c.ttl, 60);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 2);
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "WwW.TeSt. IN CNAME web.TeSt."); /* compressed, as sent */
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 1, t, sizeof t),
			    "web.TeSt. IN A 10.0.0.9");
	ldns_pkt_free(p);

	/* denied: the chain never starts, nothing is kept, and a bare NOERROR is not cached */
	assert_int_equal(canon_as("www.test.", "WwW.TeSt.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR,
				  false, rrs, &pol),
			 0);
	p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
	assert_int_equal(fx.c.ttl, 0);
}

/* A reply whose question is not the query's: its owners are the names they point at, not
 * the query name, so nothing is on the query's chain. */
static void test_owner_pointing_at_another_question_is_not_the_query_name(void **state)
{
	(void)state;
	const char *rrs[] = { "AN b.test. 300 IN A 10.0.0.2", NULL };

	assert_int_equal(canon_as("a.test.", "b.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false,
				  rrs, &default_policy),
			 0);
	assert_int_equal(fx.up[fx.r.question_end], 0xc0);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_int_equal(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
	assert_true(fx.c.scrubbed);
}

/* A negative answer with EDNS takes the fast path (the OPT last): the SOA's TTL offset is
 * found before the OPT, and the OPT is not copied. */
static void test_rule35_negative_with_edns_on_the_fast_path(void **state)
{
	(void)state;
	const char *rrs[] = { "NS test. 600 IN SOA ns.test. host.test. 1 7200 1800 86400 120",
			      NULL };

	assert_int_equal(
		canon("nx.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN, true, rrs, &default_policy),
		0);
	assert_true(fx.r.has_opt && fx.r.opt_last);
	assert_false(fx.c.scrubbed);
	assert_int_equal(fx.c.len, fx.uplen - WIRE_OPT_LEN);
	assert_int_equal(fx.c.kind, REPLY_DENIAL);
	assert_int_equal(fx.c.nttl, 1);
	assert_int_equal(fx.c.ttl, 120);
	ldns_pkt *p = dnsmsg_parse(fx.canon, fx.c.len);
	assert_false(ldns_pkt_edns(p));
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_AUTHORITY, 0), 120);
	ldns_pkt_free(p);
}

static void test_classify_tc_and_errors(void **state)
{
	(void)state;
	struct wire_reply r = { 0 };

	r.rcode = WIRE_RCODE_NOERROR;
	assert_int_equal(reply_classify(&r), REPLY_OK);
	r.rcode = WIRE_RCODE_NXDOMAIN;
	assert_int_equal(reply_classify(&r), REPLY_OK);
	r.rcode = WIRE_RCODE_SERVFAIL;
	assert_int_equal(reply_classify(&r), REPLY_FAILED);
	r.rcode = WIRE_RCODE_REFUSED;
	assert_int_equal(reply_classify(&r), REPLY_FAILED);
	r.rcode = 0;
	r.tc = 1;
	assert_int_equal(reply_classify(&r), REPLY_TRUNCATED);
}

/* Builds a client query with raw case and header bits. */
static size_t client_query(uint8_t *buf, const char *name, uint16_t edns, bool rd, bool cd,
			   bool ad)
{
	size_t l = dnsmsg_query(buf, 512, name, LDNS_RR_TYPE_A, edns, false);

	wire_put16(buf, 0xbeef);
	buf[2] = rd ? WIRE_RD : 0;
	buf[3] = (uint8_t)((cd ? WIRE_CD : 0) | (ad ? WIRE_AD : 0));
	return l;
}

static void test_rule26_client_reply_echoes_id_rd_cd_and_case(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1", NULL };
	uint8_t cb[512], out[4096];
	struct wire_query cq;

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	size_t cl = client_query(cb, "WwW.TeSt.", 0, false, true, false);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	int n = reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl,
				 100, false, &cq, true, out, sizeof out);
	assert_true(n > 0);
	assert_int_equal(wire_get16(out), 0xbeef);
	assert_false(out[2] & WIRE_RD);
	assert_true(out[3] & WIRE_CD);
	assert_true(out[3] & WIRE_RA);
	assert_memory_equal(out + 12, "\3WwW\4TeSt", 9);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 0), 200);
	assert_false(ldns_pkt_edns(p));
	ldns_pkt_free(p);
}

static void test_rule27_client_with_edns_gets_opt(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1", NULL };
	uint8_t cb[512], out[4096];
	struct wire_query cq;

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, true, rrs,
			       &default_policy),
			 0);
	size_t cl = client_query(cb, "www.test.", 4096, true, false, false);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	int n = reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl, 0,
				 false, &cq, true, out, sizeof out);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_true(ldns_pkt_edns(p));
	assert_int_equal(ldns_pkt_edns_udp_size(p), WIRE_EDNS_PAYLOAD);
	ldns_pkt_free(p);
}

static void test_stale_answer_has_ttl_30_and_ede_3(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1", NULL };
	uint8_t cb[512], out[4096];
	struct wire_query cq;

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	size_t cl = client_query(cb, "www.test.", 1232, true, false, false);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	int n = reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl,
				 5000, true, &cq, true, out, sizeof out);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 0), REPLY_STALE_TTL);
	ldns_rdf *d = ldns_pkt_edns_data(p);
	assert_non_null(d);
	assert_int_equal(wire_get16(ldns_rdf_data(d)), 15);
	assert_int_equal(wire_get16(ldns_rdf_data(d) + 4), WIRE_EDE_STALE_ANSWER);
	ldns_pkt_free(p);
}

static void test_ad_bit_cleared_unless_asked(void **state)
{
	(void)state;
	const char *rrs[] = { "AN www.test. 300 IN A 10.0.0.1", NULL };
	uint8_t cb[512], out[4096];
	struct wire_query cq;

	assert_int_equal(canon("www.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	fx.canon[3] |= WIRE_AD;
	size_t cl = client_query(cb, "www.test.", 0, true, false, false);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl, 0, false,
			 &cq, true, out, sizeof out);
	assert_false(out[3] & WIRE_AD);
	cl = client_query(cb, "www.test.", 0, true, false, true);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl, 0, false,
			 &cq, true, out, sizeof out);
	assert_true(out[3] & WIRE_AD);
}

static void test_rule27_large_answer_truncated_for_udp_client(void **state)
{
	(void)state;
	static char lines[60][64];
	const char *rrs[61];
	uint8_t cb[512], out[8192];
	struct wire_query cq;

	for (int i = 0; i < 60; i++) {
		snprintf(lines[i], sizeof lines[i], "AN big.test. 300 IN A 10.0.1.%d", i + 1);
		rrs[i] = lines[i];
	}
	rrs[60] = NULL;
	assert_int_equal(canon("big.test.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, rrs,
			       &default_policy),
			 0);
	size_t cl = client_query(cb, "big.test.", 0, true, false, false);
	assert_int_equal(wire_parse_query(&cq, cb, cl), 0);
	int n = reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl, 0,
				 false, &cq, true, out, sizeof out);
	assert_true(n > 0 && n <= 512);
	assert_true(out[2] & WIRE_TC);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(ldns_pkt_ancount(p), 0); /* the RRset does not fit whole */
	ldns_pkt_free(p);
	/* over TCP the whole answer */
	n = reply_for_client(fx.canon, fx.c.len, (const uint8_t *)fx.c.ttl_off, fx.c.nttl, 0,
			     false, &cq, false, out, sizeof out);
	assert_false(out[2] & WIRE_TC);
	p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(ldns_pkt_ancount(p), 60);
	ldns_pkt_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_form_strips_opt_and_keeps_answer),
		cmocka_unit_test(test_rule34_positive_ttl_is_smallest_and_capped),
		cmocka_unit_test(test_rule34_ttl_zero_is_not_cached),
		cmocka_unit_test(test_rule35_negative_ttl_is_min_of_soa_ttl_and_minimum),
		cmocka_unit_test(test_rule35_negative_ttl_capped_for_cluster_domain),
		cmocka_unit_test(test_rule35_nodata_is_negative),
		cmocka_unit_test(test_rule35_negative_without_soa_is_not_cached),
		cmocka_unit_test(test_cname_chain_is_kept),
		cmocka_unit_test(test_records_off_the_chain_are_dropped),
		cmocka_unit_test(test_glue_for_in_bailiwick_ns_is_kept),
		cmocka_unit_test(test_srv_target_addresses_are_kept),
		cmocka_unit_test(test_upstream_never_speaks_for_the_cluster_domain),
		cmocka_unit_test(test_any_gets_one_rrset),
		cmocka_unit_test(test_compressed_names_survive_scrubbing),
		cmocka_unit_test(test_owner_pointing_at_the_question_is_scrubbed_as_the_query_name),
		cmocka_unit_test(test_owner_pointing_at_another_question_is_not_the_query_name),
		cmocka_unit_test(test_rule35_negative_with_edns_on_the_fast_path),
		cmocka_unit_test(test_classify_tc_and_errors),
		cmocka_unit_test(test_rule26_client_reply_echoes_id_rd_cd_and_case),
		cmocka_unit_test(test_rule27_client_with_edns_gets_opt),
		cmocka_unit_test(test_stale_answer_has_ttl_30_and_ede_3),
		cmocka_unit_test(test_ad_bit_cleared_unless_asked),
		cmocka_unit_test(test_rule27_large_answer_truncated_for_udp_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
