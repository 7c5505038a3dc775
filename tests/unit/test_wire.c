/* Unit tests for agent/wire.c: query parsing, error replies, reply checks, truncation, names.
 * Messages are built with ldns where a well-formed message is needed, and by hand where the
 * point is a malformed one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "agent/wire.h"
#include "dnsmsg.h"

static size_t make_query(uint8_t *out, size_t cap, const char *name, ldns_rr_type type,
			 uint16_t edns_size, bool do_bit)
{
	return dnsmsg_query(out, cap, name, type, edns_size, do_bit);
}

static void test_query_parses_name_type_and_lowercases(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "WwW.ExAmple.COM.", LDNS_RR_TYPE_AAAA, 0, false);

	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	assert_int_equal(q.id, 0x1234);
	assert_int_equal(q.qtype, WIRE_TYPE_AAAA);
	assert_int_equal(q.qclass, WIRE_CLASS_IN);
	assert_int_equal(q.nlabels, 3);
	assert_int_equal(q.qname_len, 17);
	assert_memory_equal(q.qname, "\3www\7example\3com", 17);
	assert_int_equal(q.label_off[1], 4);
	assert_int_equal(q.label_off[3], 16);
	assert_int_equal(q.edns, 0);
	assert_int_equal(q.udp_limit, 512);
	/* the bytes as received keep their case */
	assert_memory_equal(buf + 13, "WwW", 3);
}

static void test_same_name_in_other_case_hashes_equal(void **state)
{
	(void)state;
	uint8_t a[512], b[512];
	struct wire_query qa, qb;
	size_t la = make_query(a, sizeof a, "Foo.Example.", LDNS_RR_TYPE_A, 0, false);
	size_t lb = make_query(b, sizeof b, "fOO.eXAMPLE.", LDNS_RR_TYPE_A, 0, false);

	assert_int_equal(wire_parse_query(&qa, a, la), 0);
	assert_int_equal(wire_parse_query(&qb, b, lb), 0);
	assert_true(qa.name_hash == qb.name_hash);
}

/* Every byte value, in labels of every length a word-at-a-time pass can split: only the
 * ASCII capitals change, and the length bytes never do. */
static void test_lowercasing_changes_ascii_capitals_only(void **state)
{
	(void)state;
	uint8_t buf[512], want[256];
	struct wire_query q;

	for (unsigned l1 = 1; l1 <= 63; l1++) {
		for (unsigned l2 = 0; l2 <= 9; l2++) {
			size_t n = 0, len = WIRE_HDR_LEN;
			memset(buf, 0, WIRE_HDR_LEN);
			buf[0] = 0x12;
			buf[5] = 1; /* QDCOUNT */
			want[n++] = (uint8_t)l1;
			buf[len++] = (uint8_t)l1;
			for (unsigned k = 0; k < l1; k++) {
				uint8_t c = (uint8_t)(k * 37 + l1 * 11 + l2);
				buf[len++] = c;
				want[n++] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
			}
			if (l2) {
				want[n++] = (uint8_t)l2;
				buf[len++] = (uint8_t)l2;
				for (unsigned k = 0; k < l2; k++) {
					uint8_t c = (uint8_t)('A' + k * 3);
					buf[len++] = c;
					want[n++] = c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
				}
			}
			buf[len++] = 0;
			want[n++] = 0;
			memcpy(buf + len, "\0\1\0\1", 4);
			len += 4;
			assert_int_equal(wire_parse_query(&q, buf, len), 0);
			assert_int_equal(q.qname_len, n);
			assert_memory_equal(q.qname, want, n);
			assert_int_equal(q.nlabels, l2 ? 2 : 1);
			/* hashed while copied: the same hash as of the copy */
			assert_true(q.name_hash == wire_hash(want, n));
		}
	}
}

/* The hash reads exactly its @len bytes: each one counts, the bytes after do not. */
static void test_hash_covers_every_byte_and_no_more(void **state)
{
	(void)state;
	uint8_t a[32], b[32];

	for (size_t len = 1; len <= 24; len++) {
		for (size_t i = 0; i < sizeof a; i++)
			a[i] = (uint8_t)(i * 29 + 7);
		memcpy(b, a, sizeof b);
		b[len] ^= 0x5a;
		assert_true(wire_hash(a, len) == wire_hash(b, len));
		for (size_t k = 0; k < len; k++) {
			memcpy(b, a, sizeof b);
			b[k] ^= 0x01;
			assert_true(wire_hash(a, len) != wire_hash(b, len));
		}
	}
}

static void test_edns_payload_is_clamped_and_do_read(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 4096, true);

	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	assert_int_equal(q.edns, 1);
	assert_int_equal(q.do_bit, 1);
	assert_int_equal(q.edns_payload, 4096);
	assert_int_equal(q.udp_limit, WIRE_EDNS_PAYLOAD);

	len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 100, false);
	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	assert_int_equal(q.udp_limit, 512);
}

static void test_short_packet_and_qr_are_dropped(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 0, false);

	assert_int_equal(wire_parse_query(&q, buf, 11), -EINVAL);
	buf[2] |= WIRE_QR;
	assert_int_equal(wire_parse_query(&q, buf, len), -EINVAL);
}

static void test_qdcount_other_than_one_is_formerr(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 0, false);

	buf[5] = 2;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
	buf[5] = 0;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
}

static void test_opcode_other_than_query_is_notimp(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 0, false);

	buf[2] |= 2 << 3; /* STATUS */
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_NOTIMP);
	assert_int_not_equal(q.qname_len, 0); /* the question is echoed */
}

static void test_class_ch_is_refused(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "version.bind.", LDNS_RR_TYPE_TXT, 0, false);

	buf[len - 1] = WIRE_CLASS_CH;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_REFUSED);
}

static void test_compressed_question_is_formerr(void **state)
{
	(void)state;
	const uint8_t pkt[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1 };
	struct wire_query q;

	assert_int_equal(wire_parse_query(&q, pkt, sizeof pkt), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
	assert_int_equal(q.qname_len, 0);
}

static void test_truncated_question_is_formerr(void **state)
{
	(void)state;
	const uint8_t pkt[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 'e', 'x', 'a' };
	struct wire_query q;

	assert_int_equal(wire_parse_query(&q, pkt, sizeof pkt), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
}

static void test_edns_version_one_is_badvers(void **state)
{
	(void)state;
	uint8_t buf[512], out[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 1232, false);

	/* OPT is the last RR: root(1) type(2) class(2) ttl(4: ext-rcode, version, flags) */
	buf[len - 11 + 6] = 1;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_BADVERS);
	int n = wire_write_error(&q, q.rcode, WIRE_EDE_NONE, NULL, out, sizeof out);
	assert_true(n > 0);
	assert_int_equal(out[3] & WIRE_RCODE_MASK, 0);
	assert_int_equal(wire_get16(out + 10), 1);
	assert_int_equal(out[n - 11 + 5], 1); /* extended rcode 1 << 4 = 16 */
}

static void test_two_opt_records_are_formerr(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 1232, false);

	memcpy(buf + len, buf + len - 11, 11);
	len += 11;
	buf[11] = 2;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
	assert_int_equal(q.edns, 0);
}

static void test_opt_with_overlong_option_is_formerr(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 1232, false);
	const uint8_t opt[] = { 0, 10, 0, 200, 1, 2, 3, 4 }; /* cookie claiming 200 bytes */

	wire_put16(buf + len - 2, sizeof opt);
	memcpy(buf + len, opt, sizeof opt);
	len += sizeof opt;
	assert_int_equal(wire_parse_query(&q, buf, len), -EBADMSG);
	assert_int_equal(q.rcode, WIRE_RCODE_FORMERR);
}

static void test_unknown_edns_option_is_ignored(void **state)
{
	(void)state;
	uint8_t buf[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, 1232, false);
	const uint8_t opt[] = { 0xfd, 0xe9, 0, 2, 0xab, 0xcd };

	wire_put16(buf + len - 2, sizeof opt);
	memcpy(buf + len, opt, sizeof opt);
	len += sizeof opt;
	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	assert_int_equal(q.edns, 1);
}

static void test_error_reply_echoes_id_rd_cd_and_question(void **state)
{
	(void)state;
	uint8_t buf[512], out[512];
	struct wire_query q;
	size_t len = make_query(buf, sizeof buf, "Example.", LDNS_RR_TYPE_A, 1232, true);
	ldns_pkt *p = NULL;

	buf[3] |= WIRE_CD;
	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	int n = wire_write_error(&q, WIRE_RCODE_SERVFAIL, WIRE_EDE_NO_REACHABLE_AUTHORITY,
				 "all upstreams failed", out, sizeof out);
	assert_true(n > 0);
	assert_int_equal(ldns_wire2pkt(&p, out, (size_t)n), LDNS_STATUS_OK);
	assert_int_equal(ldns_pkt_id(p), 0x1234);
	assert_true(ldns_pkt_qr(p));
	assert_true(ldns_pkt_rd(p));
	assert_true(ldns_pkt_cd(p));
	assert_true(ldns_pkt_ra(p));
	assert_int_equal(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	assert_int_equal(ldns_pkt_qdcount(p), 1);
	assert_true(ldns_pkt_edns(p));
	assert_true(ldns_pkt_edns_do(p));
	/* EDE option: code 15, info code 22, the text */
	ldns_rdf *data = ldns_pkt_edns_data(p);
	assert_non_null(data);
	const uint8_t *d = ldns_rdf_data(data);
	assert_int_equal(wire_get16(d), 15);
	assert_int_equal(wire_get16(d + 4), 22);
	assert_memory_equal(d + 6, "all upstreams failed", 20);
	assert_memory_equal(out + 13, "Example", 7);
	ldns_pkt_free(p);
}

/* A reply with @n A records for example. (TTLs @ttl, @ttl + 1, ...); returns its length. */
static size_t make_reply(uint8_t *out, size_t cap, int n, uint32_t ttl)
{
	static char lines[300][64];
	const char *rrs[301];

	assert_true(n <= 300);
	for (int i = 0; i < n; i++) {
		snprintf(lines[i], sizeof lines[i], "AN example. %u IN A 10.0.%d.%d", ttl + (uint32_t)i,
			 i / 250, i % 250 + 1);
		rrs[i] = lines[i];
	}
	rrs[n] = NULL;
	size_t len = dnsmsg_reply(out, cap, "example.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false,
				  rrs);
	wire_put16(out, 77);
	return len;
}

static void test_reply_walk_records_ttls_and_min(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 3, 300);

	assert_int_equal(wire_parse_reply(buf, len, &r), 0);
	assert_int_equal(r.ancount, 3);
	assert_int_equal(r.nrr, 3);
	assert_int_equal(r.min_ttl, 300);
	assert_int_equal(wire_get32(buf + r.ttl_off[2]), 302);
	assert_int_equal(r.len, len);
}

static void test_reply_with_pointer_loop_is_rejected(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 1, 300);
	size_t owner = 12 + 9 + 4; /* after the question of "example." */

	/* the answer owner points at itself */
	buf[owner] = 0xc0;
	buf[owner + 1] = (uint8_t)owner;
	assert_int_equal(wire_parse_reply(buf, len, &r), -EBADMSG);
	/* forward pointer */
	buf[owner + 1] = (uint8_t)(owner + 2);
	assert_int_equal(wire_parse_reply(buf, len, &r), -EBADMSG);
	/* pointer into the header */
	buf[owner + 1] = 2;
	assert_int_equal(wire_parse_reply(buf, len, &r), -EBADMSG);
}

static void test_reply_rdlength_past_end_is_rejected(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 1, 300);

	wire_put16(buf + len - 6, 40);
	assert_int_equal(wire_parse_reply(buf, len, &r), -EBADMSG);
	wire_put16(buf + len - 6, 5); /* an A record with 5 octets of RDATA */
	buf[len] = 0;
	assert_int_equal(wire_parse_reply(buf, len + 1, &r), -EBADMSG);
}

static void test_reply_with_overstated_count_is_rejected(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 2, 300);

	buf[7] = 3;
	assert_int_equal(wire_parse_reply(buf, len, &r), -EBADMSG);
}

static void test_question_match_ignores_case_only(void **state)
{
	(void)state;
	uint8_t qb[512], rb[2048];
	struct wire_query q;
	size_t ql = make_query(qb, sizeof qb, "EXAMPLE.", LDNS_RR_TYPE_A, 0, false);
	size_t rl = make_reply(rb, sizeof rb, 1, 60);

	assert_int_equal(wire_parse_query(&q, qb, ql), 0);
	assert_true(wire_reply_question_matches(rb, rl, &q));
	rb[12 + 1] = 'f'; /* fxample. */
	assert_false(wire_reply_question_matches(rb, rl, &q));
	rb[12 + 1] = 'E';
	assert_true(wire_reply_question_matches(rb, rl, &q));
	rb[12 + 9 + 1] = WIRE_TYPE_AAAA;
	assert_false(wire_reply_question_matches(rb, rl, &q));
}

/* True when a reply to @rname (any case) matches the query for @qname, both type A. */
static bool names_match(const char *qname, const char *rname)
{
	uint8_t qb[512], rb[512];
	struct wire_query q;
	const char *none[] = { NULL };
	size_t ql = make_query(qb, sizeof qb, qname, LDNS_RR_TYPE_A, 0, false);
	size_t rl =
		dnsmsg_reply(rb, sizeof rb, rname, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false, none);

	assert_int_equal(wire_parse_query(&q, qb, ql), 0);
	return wire_reply_question_matches(rb, rl, &q);
}

/* Names of eight bytes and more are compared a word at a time, the last word overlapping the
 * one before: every byte, label length and the end still count. */
static void test_question_match_compares_every_byte_of_long_names(void **state)
{
	(void)state;
	assert_true(names_match("Reviews.Default.Cluster-2.", "reviews.default.CLUSTER-2."));
	assert_false(names_match("reviews.default.cluster-2.", "reviews.default.cluster-3."));
	assert_false(names_match("reviews.default.cluster-2.", "Xeviews.default.cluster-2."));
	assert_false(names_match("reviews.default.cluster-2.", "reviews.defaul.tcluster-2."));
	assert_false(names_match("reviews.default.cluster-2.", "reviews.default.cluster-2.x."));
	assert_false(names_match("reviews.default.cluster-2.", "default.cluster-2."));
	assert_true(names_match("abcdefg.", "ABCDEFG.")); /* nine bytes: two overlapping words */
	assert_false(names_match("abcdefg.", "abcdefh."));
	/* short names, a byte at a time */
	assert_true(names_match("Ab.c.", "aB.C."));
	assert_false(names_match("ab.c.", "a.bc."));
	assert_false(names_match("ab.", "ab.c."));
	/* bytes beyond 'Z' are not lowered: '[' is not '{' */
	assert_false(names_match("a{.", "a[."));
	assert_false(names_match("abcdefgh{.", "abcdefgh[."));
	assert_false(names_match("abcdefgh`.", "abcdefgh@."));
	/* names of exactly one and two words, and the root */
	assert_true(names_match("abcdef.", "ABCDEF."));
	assert_false(names_match("abcdef.", "abcdeg."));
	assert_true(names_match("abcdefghijklmn.", "abcdefghijklmN."));
	assert_false(names_match("abcdefghijklmn.", "abcdefghijklmo."));
	assert_true(names_match(".", "."));
	assert_false(names_match(".", "a."));
	/* 255 bytes (three labels of 63 and one of 61), differing in the first or last byte */
	char longest[256], other[256];
	memset(longest, 'a', 255);
	longest[63] = longest[127] = longest[191] = '.';
	longest[253] = '.';
	longest[254] = 0;
	memcpy(other, longest, 255);
	other[252] = 'Z';
	assert_false(names_match(longest, other));
	other[252] = 'A';
	assert_true(names_match(longest, other));
	other[0] = 'b';
	assert_false(names_match(longest, other));

	/* a reply cut inside its question does not match */
	uint8_t qb[512], rb[512];
	struct wire_query q;
	const char *none[] = { NULL };
	size_t ql =
		make_query(qb, sizeof qb, "reviews.default.cluster-2.", LDNS_RR_TYPE_A, 0, false);
	size_t rl = dnsmsg_reply(rb, sizeof rb, "reviews.default.cluster-2.", LDNS_RR_TYPE_A,
				 LDNS_RCODE_NOERROR, false, none);
	assert_int_equal(wire_parse_query(&q, qb, ql), 0);
	assert_true(wire_reply_question_matches(rb, rl, &q));
	assert_false(wire_reply_question_matches(rb, rl - 1, &q));
	assert_false(wire_reply_question_matches(rb, 20, &q));
	/* the same name with another type, or another class */
	rl = dnsmsg_reply(rb, sizeof rb, "reviews.default.cluster-2.", LDNS_RR_TYPE_AAAA,
			  LDNS_RCODE_NOERROR, false, none);
	assert_false(wire_reply_question_matches(rb, rl, &q));
	rl = dnsmsg_reply(rb, sizeof rb, "reviews.default.cluster-2.", LDNS_RR_TYPE_A,
			  LDNS_RCODE_NOERROR, false, none);
	rb[rl - 1] = 3; /* CH */
	assert_false(wire_reply_question_matches(rb, rl, &q));
	/* a question that is a compression pointer, even to itself */
	rb[12] = 0xc0;
	rb[13] = 12;
	assert_false(wire_reply_question_matches(rb, rl, &q));
}

static void test_truncate_keeps_whole_rrsets_and_sets_tc(void **state)
{
	(void)state;
	uint8_t buf[4096];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 100, 60); /* one RRset of 100 A */

	assert_true(len > 512);
	int n = wire_truncate(buf, len, 512);
	assert_int_equal(n, 12 + 9 + 4); /* the RRset does not fit: only the question stays */
	assert_true(buf[2] & WIRE_TC);
	assert_int_equal(wire_get16(buf + 6), 0);
	assert_int_equal(wire_parse_reply(buf, (size_t)n, &r), 0);
}

static void test_truncate_leaves_fitting_message_alone(void **state)
{
	(void)state;
	uint8_t buf[4096];
	size_t len = make_reply(buf, sizeof buf, 3, 60);

	assert_int_equal(wire_truncate(buf, len, 512), (int)len);
	assert_false(buf[2] & WIRE_TC);
}

/* A reply that cannot leave in one datagram becomes header, question and OPT (DO kept), with
 * TC set and the counts fixed; still a valid reply. */
static void test_cut_to_question_keeps_the_opt_rr(void **state)
{
	(void)state;
	uint8_t buf[4096], opt[WIRE_OPT_LEN];
	struct wire_reply r;
	size_t len = make_reply(buf, sizeof buf, 100, 60);
	int olen = wire_write_opt(opt, sizeof opt, true, 0, WIRE_EDE_NONE, NULL);

	assert_int_equal(olen, WIRE_OPT_LEN);
	memcpy(buf + len, opt, WIRE_OPT_LEN);
	len += WIRE_OPT_LEN;
	wire_put16(buf + 10, 1);
	assert_int_equal(wire_parse_reply(buf, len, &r), 0);

	int n = wire_cut_to_question(buf, len);
	assert_int_equal(n, 12 + 9 + 4 + WIRE_OPT_LEN);
	assert_true(buf[2] & WIRE_TC);
	assert_int_equal(wire_get16(buf), 77);
	assert_int_equal(wire_get16(buf + 6), 0);
	assert_int_equal(wire_get16(buf + 8), 0);
	assert_int_equal(wire_get16(buf + 10), 1);
	assert_memory_equal(buf + 12 + 9 + 4, opt, WIRE_OPT_LEN);
	assert_int_equal(wire_parse_reply(buf, (size_t)n, &r), 0);
	assert_true(r.tc);
}

/* The OPT RR is the one of the additional section, wherever it sits there: not an RR of type
 * 41 in the answer section, and not lost behind glue or before a record that follows it. */
static void test_cut_to_question_finds_the_opt_among_additional_records(void **state)
{
	(void)state;
	static const char *const rrs[] = { "AN example. 60 IN A 10.0.0.1",
					   "AR ns.example. 60 IN A 10.0.0.2", NULL };
	uint8_t buf[1024], opt[WIRE_OPT_LEN];
	struct wire_rr an, glue, o;
	size_t len = dnsmsg_reply(buf, sizeof buf, "example.", LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR,
				  true, rrs);
	size_t q = 12 + 9 + 4;

	assert_int_equal(wire_next_rr(buf, len, q, &an), 0);
	assert_int_equal(wire_next_rr(buf, len, an.end, &glue), 0);
	assert_int_equal(wire_next_rr(buf, len, glue.end, &o), 0);
	assert_int_equal(o.type, WIRE_TYPE_OPT);
	assert_int_equal(o.end, len);
	memcpy(opt, buf + glue.end, WIRE_OPT_LEN);
	/* the answer takes type 41 (not an OPT: it is in the answer section) */
	wire_put16(buf + an.rdata - 10, WIRE_TYPE_OPT);
	/* and an A record follows the OPT: a copy of the glue */
	memcpy(buf + len, buf + glue.owner, glue.end - glue.owner);
	len += glue.end - glue.owner;
	wire_put16(buf + 10, 3);

	int n = wire_cut_to_question(buf, len);
	assert_int_equal(n, (int)(q + WIRE_OPT_LEN));
	assert_memory_equal(buf + q, opt, WIRE_OPT_LEN);
	assert_int_equal(wire_get16(buf + 6), 0);
	assert_int_equal(wire_get16(buf + 10), 1);
	assert_true(buf[2] & WIRE_TC);
}

static void test_cut_to_question_without_opt_and_malformed(void **state)
{
	(void)state;
	uint8_t buf[4096];
	size_t len = make_reply(buf, sizeof buf, 10, 60);

	assert_int_equal(wire_cut_to_question(buf, len), 12 + 9 + 4);
	assert_true(buf[2] & WIRE_TC);
	assert_int_equal(wire_get16(buf + 6), 0);
	assert_int_equal(wire_get16(buf + 10), 0);
	len = make_reply(buf, sizeof buf, 10, 60);
	wire_put16(buf + 6, 11); /* one more answer than there is */
	assert_int_equal(wire_cut_to_question(buf, len), -EBADMSG);
	assert_int_equal(wire_cut_to_question(buf, 11), -EBADMSG);
}

static void test_name_text_conversions(void **state)
{
	(void)state;
	uint8_t w[256];
	char t[300];

	assert_int_equal(wire_name_from_text("Cluster.Local.", w, sizeof w), 15);
	assert_memory_equal(w, "\7cluster\5local", 15);
	assert_int_equal(wire_name_from_text("cluster.local", w, sizeof w), 15);
	assert_int_equal(wire_name_from_text(".", w, sizeof w), 1);
	assert_int_equal(wire_name_from_text("a..b", w, sizeof w), -EINVAL);
	assert_int_equal(wire_name_from_text("", w, sizeof w), -EINVAL);
	wire_name_from_text("Reviews.Default.Cluster-2", w, sizeof w);
	assert_true(wire_name_to_text(w, 26, t, sizeof t) > 0);
	assert_string_equal(t, "reviews.default.cluster-2.");
}

static void test_name_in_zone_respects_label_boundaries(void **state)
{
	(void)state;
	uint8_t n[256], z[256];
	int nl = wire_name_from_text("a.cluster.local", n, sizeof n);
	int zl = wire_name_from_text("cluster.local", z, sizeof z);

	assert_true(wire_name_in_zone(n, (size_t)nl, z, (size_t)zl));
	assert_true(wire_name_in_zone(z, (size_t)zl, z, (size_t)zl));
	nl = wire_name_from_text("acluster.local", n, sizeof n);
	assert_false(wire_name_in_zone(n, (size_t)nl, z, (size_t)zl));
	nl = wire_name_from_text("local", n, sizeof n);
	assert_false(wire_name_in_zone(n, (size_t)nl, z, (size_t)zl));
}

/* The query form agrees with the name form, including a zone's bytes found inside a label
 * ("a\7cluster" is one label of nine bytes). */
static void test_query_in_zone_respects_label_boundaries(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		bool in;
	} cases[] = {
		{"cluster.local.", true},         {"A.Cluster.LOCAL.", true},
		{"x.y.svc.cluster.local.", true}, {"acluster.local.", false},
		{"local.", false},                {"cluster.local.example.", false},
		{"a\\007cluster.local.", false}, {"example.com.", false},
	};
	uint8_t z[256], buf[512];
	int zl = wire_name_from_text("cluster.local", z, sizeof z);
	struct wire_query q;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = make_query(buf, sizeof buf, cases[i].name, LDNS_RR_TYPE_A, 0, false);
		assert_int_equal(wire_parse_query(&q, buf, len), 0);
		assert_int_equal(wire_query_in_zone(&q, z, (size_t)zl), cases[i].in);
		assert_int_equal(wire_name_in_zone(q.qname, q.qname_len, z, (size_t)zl), cases[i].in);
	}
	/* the root holds every name */
	size_t len = make_query(buf, sizeof buf, "www.example.", LDNS_RR_TYPE_A, 0, false);
	assert_int_equal(wire_parse_query(&q, buf, len), 0);
	assert_true(wire_query_in_zone(&q, (const uint8_t *)"", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_parses_name_type_and_lowercases),
		cmocka_unit_test(test_same_name_in_other_case_hashes_equal),
		cmocka_unit_test(test_lowercasing_changes_ascii_capitals_only),
		cmocka_unit_test(test_query_in_zone_respects_label_boundaries),
		cmocka_unit_test(test_hash_covers_every_byte_and_no_more),
		cmocka_unit_test(test_edns_payload_is_clamped_and_do_read),
		cmocka_unit_test(test_short_packet_and_qr_are_dropped),
		cmocka_unit_test(test_qdcount_other_than_one_is_formerr),
		cmocka_unit_test(test_opcode_other_than_query_is_notimp),
		cmocka_unit_test(test_class_ch_is_refused),
		cmocka_unit_test(test_compressed_question_is_formerr),
		cmocka_unit_test(test_truncated_question_is_formerr),
		cmocka_unit_test(test_edns_version_one_is_badvers),
		cmocka_unit_test(test_two_opt_records_are_formerr),
		cmocka_unit_test(test_opt_with_overlong_option_is_formerr),
		cmocka_unit_test(test_unknown_edns_option_is_ignored),
		cmocka_unit_test(test_error_reply_echoes_id_rd_cd_and_question),
		cmocka_unit_test(test_reply_walk_records_ttls_and_min),
		cmocka_unit_test(test_reply_with_pointer_loop_is_rejected),
		cmocka_unit_test(test_reply_rdlength_past_end_is_rejected),
		cmocka_unit_test(test_reply_with_overstated_count_is_rejected),
		cmocka_unit_test(test_question_match_ignores_case_only),
		cmocka_unit_test(test_question_match_compares_every_byte_of_long_names),
		cmocka_unit_test(test_truncate_keeps_whole_rrsets_and_sets_tc),
		cmocka_unit_test(test_truncate_leaves_fitting_message_alone),
		cmocka_unit_test(test_cut_to_question_keeps_the_opt_rr),
		cmocka_unit_test(test_cut_to_question_finds_the_opt_among_additional_records),
		cmocka_unit_test(test_cut_to_question_without_opt_and_malformed),
		cmocka_unit_test(test_name_text_conversions),
		cmocka_unit_test(test_name_in_zone_respects_label_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
