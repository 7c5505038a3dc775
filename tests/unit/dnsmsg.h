/* Test helpers: build DNS messages with ldns (an independent implementation) and read them
 * back. For unit tests only. */
#ifndef MESHDNS_TEST_DNSMSG_H
#define MESHDNS_TEST_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

/* A query for @name/@type (presentation), ID 0x1234, RD. @edns 0: no OPT. Returns its
 * length in @out. */
size_t dnsmsg_query(uint8_t *out, size_t cap, const char *name, ldns_rr_type type,
		    uint16_t edns, bool do_bit);

/* A reply to @name/@type with @rcode and RRs given as presentation lines, each prefixed by
 * its section: "AN ", "NS " or "AR ". A NULL-terminated list. @edns adds an OPT at the end.
 * ID 0x1234, QR, RD, RA. Returns its length. */
size_t dnsmsg_reply(uint8_t *out, size_t cap, const char *name, ldns_rr_type type,
		    ldns_pkt_rcode rcode, bool edns, const char *const *rrs);

/* Parses @msg with ldns; the test fails if it does not parse. Free with ldns_pkt_free. */
ldns_pkt *dnsmsg_parse(const uint8_t *msg, size_t len);

/* The TTL of RR @i of @section of @pkt. */
uint32_t dnsmsg_ttl(const ldns_pkt *pkt, ldns_pkt_section section, size_t i);

/* RR @i of @section as presentation text without TTL ("a.test. IN A 10.0.0.1"), in @buf. */
const char *dnsmsg_rr_text(const ldns_pkt *pkt, ldns_pkt_section section, size_t i, char *buf,
			   size_t cap);

#endif
