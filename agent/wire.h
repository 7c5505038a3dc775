/* DNS wire format: parse client queries, check and walk upstream replies, build small replies.
 *
 * Pure: no I/O, no allocation, no global state except the hash key set once at start.
 * Every function bounds its reads by the length it is given; malformed input is an error
 * return, never a crash.
 */
#ifndef MESHDNS_WIRE_H
#define MESHDNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_HDR_LEN      12
#define WIRE_MAX_NAME     255  /* octets in a name in wire format, root label included */
#define WIRE_MAX_LABELS   127  /* labels in a name, root label excluded */
#define WIRE_MIN_UDP      512  /* UDP payload without EDNS (RFC 1035) */
#define WIRE_EDNS_PAYLOAD 1232 /* payload we advertise and the most we send over UDP */
#define WIRE_MAX_MSG      65535
#define WIRE_OPT_LEN      11 /* an OPT RR without options */
#define WIRE_MAX_RRS      1024 /* replies with more RRs are passed on but never cached */

/* Header flag bits: byte 2 */
#define WIRE_QR          0x80
#define WIRE_OPCODE_MASK 0x78
#define WIRE_AA          0x04
#define WIRE_TC          0x02
#define WIRE_RD          0x01
/* Header flag bits: byte 3 */
#define WIRE_RA         0x80
#define WIRE_AD         0x20
#define WIRE_CD         0x10
#define WIRE_RCODE_MASK 0x0f

enum wire_type {
	WIRE_TYPE_A = 1,
	WIRE_TYPE_NS = 2,
	WIRE_TYPE_CNAME = 5,
	WIRE_TYPE_SOA = 6,
	WIRE_TYPE_MB = 7,
	WIRE_TYPE_MG = 8,
	WIRE_TYPE_MR = 9,
	WIRE_TYPE_PTR = 12,
	WIRE_TYPE_MINFO = 14,
	WIRE_TYPE_MX = 15,
	WIRE_TYPE_TXT = 16,
	WIRE_TYPE_RP = 17,
	WIRE_TYPE_AFSDB = 18,
	WIRE_TYPE_RT = 21,
	WIRE_TYPE_AAAA = 28,
	WIRE_TYPE_SRV = 33,
	WIRE_TYPE_DNAME = 39,
	WIRE_TYPE_OPT = 41,
	WIRE_TYPE_DS = 43,
	WIRE_TYPE_RRSIG = 46,
	WIRE_TYPE_NSEC = 47,
	WIRE_TYPE_NSEC3 = 50,
	WIRE_TYPE_SVCB = 64,
	WIRE_TYPE_HTTPS = 65,
	WIRE_TYPE_TSIG = 250,
	WIRE_TYPE_IXFR = 251,
	WIRE_TYPE_AXFR = 252,
	WIRE_TYPE_MAILB = 253,
	WIRE_TYPE_MAILA = 254,
	WIRE_TYPE_ANY = 255,
};

enum wire_class {
	WIRE_CLASS_IN = 1,
	WIRE_CLASS_CH = 3,
	WIRE_CLASS_HS = 4,
	WIRE_CLASS_NONE = 254,
	WIRE_CLASS_ANY = 255,
};

enum wire_rcode {
	WIRE_RCODE_NOERROR = 0,
	WIRE_RCODE_FORMERR = 1,
	WIRE_RCODE_SERVFAIL = 2,
	WIRE_RCODE_NXDOMAIN = 3,
	WIRE_RCODE_NOTIMP = 4,
	WIRE_RCODE_REFUSED = 5,
	WIRE_RCODE_BADVERS = 16, /* extended: needs an OPT RR */
};

/* Extended DNS Error info codes (RFC 8914) that the agent sends. */
enum wire_ede {
	WIRE_EDE_NONE = -1,
	WIRE_EDE_OTHER = 0,
	WIRE_EDE_STALE_ANSWER = 3,
	WIRE_EDE_NOT_READY = 14,
	WIRE_EDE_STALE_NXDOMAIN = 19,
	WIRE_EDE_PROHIBITED = 18,
	WIRE_EDE_NO_REACHABLE_AUTHORITY = 22,
	WIRE_EDE_NETWORK_ERROR = 23,
};

static inline uint16_t wire_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t wire_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wire_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A client query, parsed. Lives on the caller's stack; @pkt points at the caller's bytes. */
struct wire_query {
	const uint8_t *pkt;     /* the query as received */
	uint16_t len;           /* its length */
	uint16_t id;            /* the client's message ID */
	uint8_t flags2;         /* header byte 2 as received (QR, opcode, AA, TC, RD) */
	uint8_t flags3;         /* header byte 3 as received (RA, Z, AD, CD, RCODE) */
	uint16_t qname_len;     /* wire length of QNAME, root label included; 0 if unparsed */
	uint16_t qtype;
	uint16_t qclass;
	uint16_t question_end;  /* offset just past QCLASS */
	uint16_t udp_limit;     /* the largest UDP reply the client takes (512..1232) */
	uint16_t edns_payload;  /* the client's advertised payload, 0 without EDNS */
	uint8_t edns;           /* 1 when the query carried an OPT RR */
	uint8_t do_bit;         /* the DO bit of the query's OPT */
	uint8_t cd_bit;         /* the CD bit of the query header */
	uint8_t nlabels;        /* labels in QNAME, root label excluded */
	uint8_t rcode;          /* set when wire_parse_query returns -EBADMSG */
	uint64_t name_hash;     /* keyed hash of the lowercased QNAME */
	uint8_t label_off[WIRE_MAX_LABELS + 1]; /* offset of each label in qname; [nlabels] = root */
	uint8_t qname[WIRE_MAX_NAME];           /* QNAME in wire format, lowercased */
};

/* Sets the key of the name hash (from getrandom at start) so that remote clients cannot
 * aim names at one hash chain. Call once, before any other thread runs. */
void wire_set_hash_key(const uint8_t key[16]);

/* Mixes the bits of @h (the finaliser of MurmurHash3), so that every input bit reaches the
 * low bits a table index takes. */
static inline uint64_t wire_mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* Keyed 64-bit hash of @len bytes (SipHash-1-3). */
uint64_t wire_hash(const void *data, size_t len);

/* Parses the query in @pkt. Returns 0 when the query is to be served; -EINVAL when it must be
 * dropped without a reply (shorter than a header, or QR=1); -EBADMSG when the client gets an
 * error reply with rcode @q->rcode (FORMERR, NOTIMP, REFUSED or BADVERS). The question fields
 * are valid after -EBADMSG only when @q->qname_len is non-zero. @q->pkt keeps pointing at
 * @pkt. */
int wire_parse_query(struct wire_query *q, const uint8_t *pkt, size_t len);

/* Writes an error reply to @q with @rcode into @out: the ID, opcode, RD and CD echoed, QR
 * and RA set, the question echoed when it was parsed, and an OPT RR when the query had one,
 * carrying an Extended DNS Error @ede with @ede_text unless @ede is WIRE_EDE_NONE. Returns
 * the reply length, or -ENOSPC when @cap is too small. */
int wire_write_error(const struct wire_query *q, unsigned rcode, int ede, const char *ede_text,
		     uint8_t *out, size_t cap);

/* Writes the header and question of a reply to @q into @out: the ID, opcode, RD and CD
 * echoed, QR and RA set, @aa and @rcode as given, QDCOUNT 1 and the other counts 0, the
 * question bytes exactly as received. Returns the length written (q->question_end) or
 * -ENOSPC. */
int wire_write_reply_head(const struct wire_query *q, bool aa, unsigned rcode, uint8_t *out,
			  size_t cap);

/* Writes an OPT RR advertising WIRE_EDNS_PAYLOAD with @do_bit, extended rcode bits
 * @ext_rcode and an optional EDE option. Returns its length, or -ENOSPC. */
int wire_write_opt(uint8_t *out, size_t cap, bool do_bit, unsigned ext_rcode, int ede,
		   const char *ede_text);

/* Finishes a reply for @q that is built in @msg (@len bytes, no OPT RR yet): when the query
 * had EDNS, appends an OPT RR (with the EDE @ede unless WIRE_EDE_NONE); when @udp and the
 * reply exceeds the client's limit, cuts it to whole RRsets that fit first (wire_truncate).
 * Returns the final length or a negative errno. */
int wire_finish_reply(const struct wire_query *q, uint8_t *msg, size_t len, size_t cap, bool udp,
		      int ede, const char *ede_text);

/* Cuts the message @msg (@len bytes, no OPT RR) to whole RRsets that fit in @limit bytes,
 * fixing the section counts. TC is set when an RR of the answer or authority section had to
 * go (RFC 2181 section 9); dropping additional data alone does not set it. Returns the new
 * length (at most @limit, at least the header and question), or -EBADMSG. */
int wire_truncate(uint8_t *msg, size_t len, size_t limit);

/* Cuts the reply @msg (@len bytes) to its header, question and OPT RR (when it has one),
 * with TC set: what a client gets over UDP when the whole reply cannot leave in one datagram
 * (RFC 9715), so that it asks again over TCP. Returns the new length or -EBADMSG. */
int wire_cut_to_question(uint8_t *msg, size_t len);

/* An upstream reply, checked and walked once. */
struct wire_reply {
	uint16_t len;         /* bytes up to the end of the last RR (trailing bytes excluded) */
	uint16_t id;
	uint16_t question_end;
	uint16_t ancount, nscount, arcount;
	uint8_t rcode;        /* the full rcode: header bits plus the OPT's extended bits */
	uint8_t tc;           /* the TC bit */
	uint8_t has_opt;
	uint8_t opt_last;     /* the OPT RR is the last RR of the message */
	uint16_t opt_off;     /* offset of the OPT RR */
	uint16_t opt_len;     /* its length */
	uint32_t min_ttl;     /* smallest TTL of all RRs except OPT; UINT32_MAX when there is none */
	uint8_t has_soa;      /* the authority section holds an SOA */
	uint16_t soa_ttl_off; /* offset of the first such SOA's TTL field */
	uint32_t soa_ttl;     /* its TTL */
	uint32_t soa_minimum; /* its MINIMUM field */
	uint16_t nrr;         /* RRs walked, OPT excluded */
	uint16_t ttl_off[WIRE_MAX_RRS]; /* offset of each RR's TTL field, OPT excluded, in order;
					   valid only when nrr <= WIRE_MAX_RRS */
};

/* Checks that @pkt is a well-formed reply (RFC 1035, 6891, 9267): QR set, QDCOUNT 1, every
 * name bounded with backward-only compression, every RR and RDATA inside the message, names
 * inside RDATA of the RFC 1035 types consistent with RDLENGTH, at most one OPT, only in the
 * additional section with the root owner. Fills @r. Returns 0 or -EBADMSG. */
int wire_parse_reply(const uint8_t *pkt, size_t len, struct wire_reply *r);

/* True when the reply's question equals @q's (name compared case-insensitively and
 * uncompressed, type, class). Reads only the first @len bytes of @pkt, which need not have
 * passed wire_parse_reply. */
bool wire_reply_question_matches(const uint8_t *pkt, size_t len, const struct wire_query *q);

/* Expands the possibly compressed name at @off in @pkt into @out (wire format, at least
 * WIRE_MAX_NAME bytes), lowercased when @lower. Returns the number of bytes the name takes at
 * @off (so the caller can skip it), or -EBADMSG. @out_len receives the expanded length. */
int wire_read_name(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *out_len,
		   bool lower);

/* One resource record, located in a message. */
struct wire_rr {
	uint16_t owner;   /* offset of the owner name */
	uint16_t type;
	uint16_t rclass;
	uint16_t ttl_off; /* offset of the TTL field */
	uint32_t ttl;
	uint16_t rdata;   /* offset of the RDATA */
	uint16_t rdlen;
	uint16_t end;     /* offset just past the RR */
};

/* Where the domain names sit in the RDATA of a type: @skip bytes, then @names names in a
 * row, then @tail bytes. */
struct wire_rdata_layout {
	unsigned skip;
	unsigned names;
	unsigned tail;
};

/* Fills @l for the types whose RDATA holds names that may be compressed (the RFC 1035 types)
 * or must be checked (SRV, DNAME). Returns false for every other type (@l->names = 0). */
bool wire_rdata_layout(uint16_t type, struct wire_rdata_layout *l);

/* Locates the RR at @off (owner name checked, RDATA inside the message). Returns 0 or
 * -EBADMSG. */
int wire_next_rr(const uint8_t *pkt, size_t len, size_t off, struct wire_rr *rr);

/* Returns the offset just past the possibly compressed name at @off, or -EBADMSG. Checks
 * only the bytes at @off (pointers are not followed). */
int wire_skip_name(const uint8_t *pkt, size_t len, size_t off);

/* True when wire name @name (@len bytes, lowercase) equals @zone or lies below it. */
bool wire_name_in_zone(const uint8_t *name, size_t len, const uint8_t *zone, size_t zone_len);

/* wire_name_in_zone() for the name of a parsed query, from its label offsets. */
bool wire_query_in_zone(const struct wire_query *q, const uint8_t *zone, size_t zone_len);

/* Converts a presentation-format name ("Example.COM." or "example.com") to lowercase wire
 * format. "." is the root. Returns the wire length or -EINVAL. */
int wire_name_from_text(const char *text, uint8_t *out, size_t cap);

/* Writes wire name @name as lowercase text with a trailing dot into @out. Returns the text
 * length or -ENOSPC. Non-printable octets are written as \DDD. */
int wire_name_to_text(const uint8_t *name, size_t len, char *out, size_t cap);

#endif
