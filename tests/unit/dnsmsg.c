/* Test helpers built on ldns. See dnsmsg.h. */
#include "dnsmsg.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

size_t dnsmsg_query(uint8_t *out, size_t cap, const char *name, ldns_rr_type type,
		    uint16_t edns, bool do_bit)
{
	ldns_pkt *pkt = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;

	assert_int_equal(ldns_pkt_query_new_frm_str(&pkt, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(pkt, 0x1234);
	if (edns) {
		ldns_pkt_set_edns_udp_size(pkt, edns);
		ldns_pkt_set_edns_do(pkt, do_bit);
		/* ldns writes an OPT only when some EDNS field is set: the size is */
	}
	assert_int_equal(ldns_pkt2wire(&wire, pkt, &len), LDNS_STATUS_OK);
	assert_true(len <= cap);
	memcpy(out, wire, len);
	free(wire);
	ldns_pkt_free(pkt);
	return len;
}

size_t dnsmsg_reply(uint8_t *out, size_t cap, const char *name, ldns_rr_type type,
		    ldns_pkt_rcode rcode, bool edns, const char *const *rrs)
{
	ldns_pkt *pkt = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;

	assert_int_equal(ldns_pkt_query_new_frm_str(&pkt, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(pkt, 0x1234);
	ldns_pkt_set_qr(pkt, true);
	ldns_pkt_set_ra(pkt, true);
	ldns_pkt_set_rcode(pkt, (uint8_t)rcode);
	for (size_t i = 0; rrs && rrs[i]; i++) {
		ldns_rr *rr = NULL;
		ldns_pkt_section sec = LDNS_SECTION_ANSWER;
		if (strncmp(rrs[i], "NS ", 3) == 0)
			sec = LDNS_SECTION_AUTHORITY;
		else if (strncmp(rrs[i], "AR ", 3) == 0)
			sec = LDNS_SECTION_ADDITIONAL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, rrs[i] + 3, 0, NULL, NULL),
				 LDNS_STATUS_OK);
		ldns_pkt_push_rr(pkt, sec, rr);
	}
	if (edns)
		ldns_pkt_set_edns_udp_size(pkt, 1232);
	assert_int_equal(ldns_pkt2wire(&wire, pkt, &len), LDNS_STATUS_OK);
	assert_true(len <= cap);
	memcpy(out, wire, len);
	free(wire);
	ldns_pkt_free(pkt);
	return len;
}

ldns_pkt *dnsmsg_parse(const uint8_t *msg, size_t len)
{
	ldns_pkt *pkt = NULL;

	assert_int_equal(ldns_wire2pkt(&pkt, msg, len), LDNS_STATUS_OK);
	return pkt;
}

uint32_t dnsmsg_ttl(const ldns_pkt *pkt, ldns_pkt_section section, size_t i)
{
	ldns_rr_list *l = ldns_pkt_get_section_clone(pkt, section);
	uint32_t ttl;

	assert_true(i < ldns_rr_list_rr_count(l));
	ttl = ldns_rr_ttl(ldns_rr_list_rr(l, i));
	ldns_rr_list_deep_free(l);
	return ttl;
}

const char *dnsmsg_rr_text(const ldns_pkt *pkt, ldns_pkt_section section, size_t i, char *buf,
			   size_t cap)
{
	ldns_rr_list *l = ldns_pkt_get_section_clone(pkt, section);
	ldns_rr *rr;
	char *s;

	assert_true(i < ldns_rr_list_rr_count(l));
	rr = ldns_rr_clone(ldns_rr_list_rr(l, i));
	ldns_rr_set_ttl(rr, 0);
	s = ldns_rr2str(rr);
	/* "owner\t0\tIN\tA\tx\n" -> "owner IN A x" */
	size_t n = 0;
	bool skip_ttl = false;
	int field = 0;
	for (char *p = s; *p && *p != '\n' && n + 1 < cap; p++) {
		if (*p == '\t') {
			field++;
			skip_ttl = field == 1;
			if (field == 2)
				continue;
			buf[n++] = ' ';
			continue;
		}
		if (!skip_ttl)
			buf[n++] = *p;
	}
	buf[n] = 0;
	free(s);
	ldns_rr_free(rr);
	ldns_rr_list_deep_free(l);
	return buf;
}
