/* DNS wire format: parse client queries, check and walk upstream replies, build small replies.
 * See wire.h. Every read below is bounded by the message length it was given. */
#include "agent/wire.h"

#include <errno.h>
#include <string.h>

static uint64_t hash_k0 = 0x0706050403020100ULL;
static uint64_t hash_k1 = 0x0f0e0d0c0b0a0908ULL;

void wire_set_hash_key(const uint8_t key[16])
{
	memcpy(&hash_k0, key, 8);
	memcpy(&hash_k1, key + 8, 8);
}

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* The query parser hashes a name from 8-byte loads and wire_hash() its tail from 4-byte
 * loads; both agree only when a load puts the first byte lowest. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "wire.c assumes a little-endian host"
#endif

/* SipHash-1-3 state, fed a word at a time so that the query parser can hash the name while
 * it copies it. */
struct sip {
	uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL64(s->v2, 32);
}

static inline void sip_init(struct sip *s)
{
	s->v0 = hash_k0 ^ 0x736f6d6570736575ULL;
	s->v1 = hash_k1 ^ 0x646f72616e646f6dULL;
	s->v2 = hash_k0 ^ 0x6c7967656e657261ULL;
	s->v3 = hash_k1 ^ 0x7465646279746573ULL;
}

/* One full 8-byte word of input, as loaded on this (little-endian) host. */
static inline void sip_word(struct sip *s, uint64_t m)
{
	s->v3 ^= m;
	sip_round(s);
	s->v0 ^= m;
}

/* The hash of @len bytes whose last len % 8 bytes are @tail (little-endian). */
static inline uint64_t sip_end(struct sip *s, size_t len, uint64_t tail)
{
	uint64_t b = (uint64_t)len << 56 | tail;

	sip_word(s, b);
	s->v2 ^= 0xff;
	sip_round(s);
	sip_round(s);
	sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* The last @r (< 8) bytes at @p as a little-endian number, read without a byte loop: two
 * overlapping loads put each byte at its own place, so OR-ing them is exact. */
static inline uint64_t tail_bytes(const uint8_t *p, size_t r)
{
	uint32_t lo, hi;

	if (r >= 4) {
		memcpy(&lo, p, 4);
		memcpy(&hi, p + r - 4, 4);
		return (uint64_t)lo | (uint64_t)hi << (8 * (r - 4));
	}
	if (r == 0)
		return 0;
	return (uint64_t)p[0] | (uint64_t)p[r / 2] << (8 * (r / 2)) |
	       (uint64_t)p[r - 1] << (8 * (r - 1));
}

uint64_t wire_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	struct sip s;
	uint64_t m;

	sip_init(&s);
	for (size_t i = 0; i < len / 8; i++, p += 8) {
		memcpy(&m, p, 8);
		sip_word(&s, m);
	}
	return sip_end(&s, len, tail_bytes(p, len & 7));
}

static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* lower() on eight bytes at once: a byte gets 0x20 added when it is ASCII (top bit clear)
 * and between 'A' and 'Z'; no sum carries into the next byte. */
static inline uint64_t lower8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, top = 0x8080808080808080ULL;
	uint64_t h = x & ~top;
	uint64_t ge_a = h + ones * (0x80 - 'A'), gt_z = h + ones * (0x7f - 'Z');

	return x | ((ge_a & ~gt_z & ~x & top) >> 2);
}

/* Copies the @n bytes of a name, lowercased, a word at a time, and returns wire_hash() of
 * the copy, fed the same words (a plain memcpy of a short name becomes a slow string
 * instruction, and reading the copy back to hash it stalls). Length bytes (at most 63) are
 * below 'A', so the whole wire form can be treated alike; the last word overlaps the one
 * before, which is harmless since lowercasing twice changes nothing. */
static uint64_t copy_lower_hash(uint8_t *dst, const uint8_t *src, size_t n)
{
	struct sip s;
	uint64_t w, tail = 0;
	size_t i;

	sip_init(&s);
	if (n < 8) {
		for (i = 0; i < n; i++) {
			dst[i] = lower(src[i]);
			tail |= (uint64_t)dst[i] << (8 * i);
		}
		return sip_end(&s, n, tail);
	}
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, src + i, 8);
		w = lower8(w);
		memcpy(dst + i, &w, 8);
		sip_word(&s, w);
	}
	if (i < n) {
		memcpy(&w, src + n - 8, 8);
		w = lower8(w);
		memcpy(dst + n - 8, &w, 8);
		tail = w >> (8 * (8 - (n - i))); /* its last n - i bytes, the ones not hashed yet */
	}
	return sip_end(&s, n, tail);
}

/* Checks the name at @off, following backward compression pointers. Each pointer must point
 * before the start of the label run that contains it, so chains strictly descend and end.
 * Returns the offset just past the name at @off, or -EBADMSG. If @out is set, the expanded
 * name is written there (WIRE_MAX_NAME bytes) and its length to @out_len. */
static int walk_name(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *out_len,
		     bool low)
{
	size_t p = off, run_start = off, n = 0;
	int end = -1;

	for (;;) {
		if (p >= len)
			return -EBADMSG;
		uint8_t l = pkt[p];
		if (l == 0) {
			if (n + 1 > WIRE_MAX_NAME)
				return -EBADMSG;
			if (out)
				out[n] = 0;
			n++;
			if (end < 0)
				end = (int)(p + 1);
			break;
		}
		if ((l & 0xc0) == 0xc0) {
			if (p + 1 >= len)
				return -EBADMSG;
			size_t target = (size_t)(l & 0x3f) << 8 | pkt[p + 1];
			if (end < 0)
				end = (int)(p + 2);
			if (target < WIRE_HDR_LEN || target >= run_start)
				return -EBADMSG;
			p = run_start = target;
			continue;
		}
		if (l & 0xc0) /* 0x40 and 0x80 label types are obsolete or undefined */
			return -EBADMSG;
		if (p + 1 + l > len || n + 1 + l + 1 > WIRE_MAX_NAME)
			return -EBADMSG;
		if (out) {
			out[n] = l;
			for (size_t i = 0; i < l; i++)
				out[n + 1 + i] = low ? lower(pkt[p + 1 + i]) : pkt[p + 1 + i];
		}
		n += 1 + (size_t)l;
		p += 1 + (size_t)l;
	}
	if (out_len)
		*out_len = n;
	return end;
}

int wire_read_name(const uint8_t *pkt, size_t len, size_t off, uint8_t *out, size_t *out_len,
		   bool low)
{
	return walk_name(pkt, len, off, out, out_len, low);
}

int wire_skip_name(const uint8_t *pkt, size_t len, size_t off)
{
	size_t p = off;

	for (;;) {
		if (p >= len)
			return -EBADMSG;
		uint8_t l = pkt[p];
		if (l == 0)
			return (int)(p + 1);
		if ((l & 0xc0) == 0xc0)
			return p + 2 <= len ? (int)(p + 2) : -EBADMSG;
		if (l & 0xc0)
			return -EBADMSG;
		p += 1 + (size_t)l;
	}
}

bool wire_rdata_layout(uint16_t type, struct wire_rdata_layout *l)
{
	l->skip = 0;
	l->names = 1;
	l->tail = 0;
	switch (type) {
	case WIRE_TYPE_NS:
	case WIRE_TYPE_CNAME:
	case WIRE_TYPE_PTR:
	case WIRE_TYPE_MB:
	case WIRE_TYPE_MG:
	case WIRE_TYPE_MR:
	case WIRE_TYPE_DNAME:
		return true;
	case WIRE_TYPE_MX:
	case WIRE_TYPE_AFSDB:
	case WIRE_TYPE_RT:
		l->skip = 2;
		return true;
	case WIRE_TYPE_SRV:
		l->skip = 6;
		return true;
	case WIRE_TYPE_MINFO:
	case WIRE_TYPE_RP:
		l->names = 2;
		return true;
	case WIRE_TYPE_SOA:
		l->names = 2;
		l->tail = 20;
		return true;
	default:
		l->names = 0;
		return false;
	}
}

/* Checks the RDATA of types with a fixed size or names inside (wire_rdata_layout): the names
 * are well-formed and everything fills RDLENGTH exactly. */
static int check_rdata(const uint8_t *pkt, const struct wire_rr *rr)
{
	size_t p = rr->rdata, end = (size_t)rr->rdata + rr->rdlen;
	struct wire_rdata_layout l;

	if (rr->type == WIRE_TYPE_A)
		return rr->rdlen == 4 ? 0 : -EBADMSG;
	if (rr->type == WIRE_TYPE_AAAA)
		return rr->rdlen == 16 ? 0 : -EBADMSG;
	if (!wire_rdata_layout(rr->type, &l))
		return 0;
	if (rr->rdlen < l.skip + l.names + l.tail)
		return -EBADMSG;
	p += l.skip;
	for (unsigned k = 0; k < l.names; k++) {
		int r = walk_name(pkt, end, p, NULL, NULL, false);
		if (r < 0)
			return r;
		p = (size_t)r;
	}
	return p + l.tail == end ? 0 : -EBADMSG;
}

int wire_next_rr(const uint8_t *pkt, size_t len, size_t off, struct wire_rr *rr)
{
	int p = walk_name(pkt, len, off, NULL, NULL, false);

	if (p < 0 || (size_t)p + 10 > len)
		return -EBADMSG;
	rr->owner = (uint16_t)off;
	rr->type = wire_get16(pkt + p);
	rr->rclass = wire_get16(pkt + p + 2);
	rr->ttl_off = (uint16_t)(p + 4);
	rr->ttl = wire_get32(pkt + p + 4);
	rr->rdlen = wire_get16(pkt + p + 8);
	rr->rdata = (uint16_t)(p + 10);
	if ((size_t)rr->rdata + rr->rdlen > len)
		return -EBADMSG;
	rr->end = (uint16_t)(rr->rdata + rr->rdlen);
	return 0;
}

/* Parses an OPT RR's fixed part and walks its options. */
static int check_opt(const uint8_t *pkt, const struct wire_rr *rr)
{
	size_t p = rr->rdata, end = (size_t)rr->rdata + rr->rdlen;

	if (pkt[rr->owner] != 0) /* owner must be the root */
		return -EBADMSG;
	while (p < end) {
		if (p + 4 > end)
			return -EBADMSG;
		size_t olen = wire_get16(pkt + p + 2);
		if (p + 4 + olen > end)
			return -EBADMSG;
		p += 4 + olen;
	}
	return 0;
}

static int parse_question(struct wire_query *q, const uint8_t *pkt, size_t len)
{
	size_t off = WIRE_HDR_LEN, n = 0;
	unsigned labels = 0;

	for (;;) {
		if (off >= len)
			return -EBADMSG;
		uint8_t l = pkt[off];
		if (l == 0) {
			q->label_off[labels] = (uint8_t)n;
			q->qname[n++] = 0;
			off++;
			break;
		}
		/* no compression in a question: there is no earlier name to point at */
		if (l & 0xc0)
			return -EBADMSG;
		if (off + 1 + l > len || n + 1 + l + 1 > WIRE_MAX_NAME)
			return -EBADMSG;
		q->label_off[labels++] = (uint8_t)n;
		n += 1 + (size_t)l;
		off += 1 + (size_t)l;
	}
	if (off + 4 > len)
		return -EBADMSG;
	/* A question name has no pointers: it is the bytes of the packet, lowercased. */
	q->name_hash = copy_lower_hash(q->qname, pkt + WIRE_HDR_LEN, n);
	q->qname_len = (uint16_t)n;
	q->nlabels = (uint8_t)labels;
	q->qtype = wire_get16(pkt + off);
	q->qclass = wire_get16(pkt + off + 2);
	q->question_end = (uint16_t)(off + 4);
	return 0;
}

static int fail(struct wire_query *q, unsigned rcode)
{
	q->rcode = (uint8_t)rcode;
	return -EBADMSG;
}

int wire_parse_query(struct wire_query *q, const uint8_t *pkt, size_t len)
{
	size_t off;
	unsigned qd, an, ns, ar, i, edns_version = 0;
	struct wire_rr rr;

	q->pkt = pkt;
	q->len = (uint16_t)(len > WIRE_MAX_MSG ? WIRE_MAX_MSG : len);
	q->qname_len = 0;
	q->nlabels = 0;
	q->edns = 0;
	q->do_bit = 0;
	q->edns_payload = 0;
	q->udp_limit = WIRE_MIN_UDP;
	q->rcode = 0;
	if (len < WIRE_HDR_LEN || len > WIRE_MAX_MSG)
		return -EINVAL;
	q->id = wire_get16(pkt);
	q->flags2 = pkt[2];
	q->flags3 = pkt[3];
	q->cd_bit = (pkt[3] & WIRE_CD) ? 1 : 0;
	if (pkt[2] & WIRE_QR)
		return -EINVAL;
	qd = wire_get16(pkt + 4);
	off = WIRE_HDR_LEN;
	if (qd >= 1) {
		if (parse_question(q, pkt, len) < 0) {
			q->qname_len = 0;
			return fail(q, WIRE_RCODE_FORMERR);
		}
		off = q->question_end;
	}
	/* More than one question: skip them (each takes at least 5 bytes, so this ends). */
	for (i = 1; i < qd; i++) {
		int p = wire_skip_name(pkt, len, off);
		if (p < 0 || (size_t)p + 4 > len) {
			q->qname_len = 0;
			return fail(q, WIRE_RCODE_FORMERR);
		}
		off = (size_t)p + 4;
	}

	/* Walk the other sections: the OPT RR may only be in the additional one, once. Its
	 * presence decides whether even an error reply carries an OPT (RFC 6891). */
	an = wire_get16(pkt + 6);
	ns = wire_get16(pkt + 8);
	ar = wire_get16(pkt + 10);
	for (i = 0; i < an + ns + ar; i++) {
		if (wire_next_rr(pkt, len, off, &rr) < 0) {
			q->edns = 0;
			return fail(q, WIRE_RCODE_FORMERR);
		}
		if (rr.type == WIRE_TYPE_OPT) {
			if (i < an + ns || q->edns || check_opt(pkt, &rr) < 0) {
				q->edns = 0;
				return fail(q, WIRE_RCODE_FORMERR);
			}
			q->edns = 1;
			q->edns_payload = rr.rclass;
			q->do_bit = (rr.ttl & 0x8000) ? 1 : 0;
			edns_version = (rr.ttl >> 16) & 0xff;
		}
		off = rr.end;
	}
	if (q->edns) {
		unsigned p = q->edns_payload;
		q->udp_limit = (uint16_t)(p < WIRE_MIN_UDP ? WIRE_MIN_UDP
				       : p > WIRE_EDNS_PAYLOAD ? WIRE_EDNS_PAYLOAD
							       : p);
	}
	if (edns_version != 0)
		return fail(q, WIRE_RCODE_BADVERS);
	if (pkt[2] & WIRE_OPCODE_MASK)
		return fail(q, WIRE_RCODE_NOTIMP);
	if (qd != 1) {
		q->qname_len = 0; /* not one question to echo */
		return fail(q, WIRE_RCODE_FORMERR);
	}

	switch (q->qclass) {
	case WIRE_CLASS_IN:
	case WIRE_CLASS_ANY:
		break;
	default: /* CH, HS, NONE and unassigned classes: we serve only the Internet */
		return fail(q, WIRE_RCODE_REFUSED);
	}
	switch (q->qtype) {
	case 0:
	case WIRE_TYPE_OPT:
	case WIRE_TYPE_TSIG:
		return fail(q, WIRE_RCODE_FORMERR);
	case WIRE_TYPE_AXFR:
	case WIRE_TYPE_IXFR:
	case WIRE_TYPE_MAILA:
	case WIRE_TYPE_MAILB:
		return fail(q, WIRE_RCODE_NOTIMP);
	default:
		break;
	}
	return 0;
}

int wire_write_opt(uint8_t *out, size_t cap, bool do_bit, unsigned ext_rcode, int ede,
		   const char *ede_text)
{
	size_t tlen = 0, need = WIRE_OPT_LEN;

	if (ede >= 0) {
		tlen = ede_text ? strnlen(ede_text, 256) : 0;
		need += 6 + tlen;
	}
	if (cap < need)
		return -ENOSPC;
	out[0] = 0;
	wire_put16(out + 1, WIRE_TYPE_OPT);
	wire_put16(out + 3, WIRE_EDNS_PAYLOAD);
	out[5] = (uint8_t)ext_rcode;
	out[6] = 0;
	out[7] = do_bit ? 0x80 : 0;
	out[8] = 0;
	wire_put16(out + 9, (uint16_t)(need - WIRE_OPT_LEN));
	if (ede >= 0) {
		wire_put16(out + 11, 15); /* OPTION-CODE: Extended DNS Error */
		wire_put16(out + 13, (uint16_t)(2 + tlen));
		wire_put16(out + 15, (uint16_t)ede);
		if (tlen)
			memcpy(out + 17, ede_text, tlen);
	}
	return (int)need;
}

int wire_write_reply_head(const struct wire_query *q, bool aa, unsigned rcode, uint8_t *out,
			  size_t cap)
{
	if (q->qname_len == 0 || cap < q->question_end)
		return -ENOSPC;
	memcpy(out, q->pkt, q->question_end);
	out[2] = (uint8_t)(WIRE_QR | (q->flags2 & (WIRE_OPCODE_MASK | WIRE_RD)) | (aa ? WIRE_AA : 0));
	out[3] = (uint8_t)(WIRE_RA | (q->flags3 & WIRE_CD) | (rcode & WIRE_RCODE_MASK));
	wire_put16(out + 4, 1);
	memset(out + 6, 0, 6);
	return q->question_end;
}

int wire_write_error(const struct wire_query *q, unsigned rcode, int ede, const char *ede_text,
		     uint8_t *out, size_t cap)
{
	int n, o;

	if (q->qname_len) {
		n = wire_write_reply_head(q, false, rcode, out, cap);
		if (n < 0)
			return n;
	} else {
		if (cap < WIRE_HDR_LEN)
			return -ENOSPC;
		memcpy(out, q->pkt, 2);
		out[2] = (uint8_t)(WIRE_QR | (q->flags2 & (WIRE_OPCODE_MASK | WIRE_RD)));
		out[3] = (uint8_t)(WIRE_RA | (q->flags3 & WIRE_CD) | (rcode & WIRE_RCODE_MASK));
		memset(out + 4, 0, 8);
		n = WIRE_HDR_LEN;
	}
	if (q->edns) {
		o = wire_write_opt(out + n, cap - (size_t)n, q->do_bit, rcode >> 4, ede, ede_text);
		if (o < 0)
			return o;
		wire_put16(out + 10, 1);
		n += o;
	}
	return n;
}

/* The RRset key of the RR at @off: its expanded owner, type and class. */
struct rrset_key {
	uint8_t owner[WIRE_MAX_NAME];
	size_t owner_len;
	uint16_t type;
	uint16_t rclass;
};

static int rrset_key_read(const uint8_t *msg, size_t len, const struct wire_rr *rr,
			  struct rrset_key *k)
{
	k->type = rr->type;
	k->rclass = rr->rclass;
	return walk_name(msg, len, rr->owner, k->owner, &k->owner_len, true) < 0 ? -EBADMSG : 0;
}

static bool rrset_key_equal(const struct rrset_key *a, const struct rrset_key *b)
{
	return a->type == b->type && a->rclass == b->rclass && a->owner_len == b->owner_len &&
	       memcmp(a->owner, b->owner, a->owner_len) == 0;
}

/* The offset just past the one question of message @msg, or -EBADMSG. */
static int question_end(const uint8_t *msg, size_t len)
{
	int p;

	if (len < WIRE_HDR_LEN || wire_get16(msg + 4) != 1)
		return -EBADMSG;
	p = wire_skip_name(msg, len, WIRE_HDR_LEN);
	if (p < 0 || (size_t)p + 4 > len)
		return -EBADMSG;
	return p + 4;
}

int wire_cut_to_question(uint8_t *msg, size_t len)
{
	struct wire_rr rr;
	unsigned total, opt = 0;
	size_t off, qend;
	int p = question_end(msg, len);

	if (p < 0)
		return p;
	off = qend = (size_t)p;
	total = (unsigned)wire_get16(msg + 6) + wire_get16(msg + 8) + wire_get16(msg + 10);
	for (unsigned i = 0; i < total; i++, off = rr.end) {
		if (wire_next_rr(msg, len, off, &rr) < 0)
			return -EBADMSG;
		if (rr.type == WIRE_TYPE_OPT && i >= total - wire_get16(msg + 10)) {
			/* the OPT RR moves up behind the question (memmove: it may overlap) */
			memmove(msg + qend, msg + off, rr.end - off);
			opt = (unsigned)(rr.end - off);
			break;
		}
	}
	wire_put16(msg + 6, 0);
	wire_put16(msg + 8, 0);
	wire_put16(msg + 10, opt ? 1 : 0);
	msg[2] |= WIRE_TC;
	return (int)(qend + opt);
}

int wire_truncate(uint8_t *msg, size_t len, size_t limit)
{
	unsigned counts[3], total, i, kept = 0;
	size_t off, cut;
	struct wire_rr rr;
	struct rrset_key cur, next;
	int p = question_end(msg, len);

	if (p < 0)
		return p;
	off = cut = (size_t)p;
	if (len <= limit)
		return (int)len;
	if (cut > limit) /* not even the question fits: the caller's limit is below 512 */
		return -EBADMSG;
	counts[0] = wire_get16(msg + 6);
	counts[1] = wire_get16(msg + 8);
	counts[2] = wire_get16(msg + 10);
	total = counts[0] + counts[1] + counts[2];

	/* Walk RRs while they fit; remember the end of the last complete RRset. */
	for (i = 0; i < total; i++) {
		if (wire_next_rr(msg, len, off, &rr) < 0)
			return -EBADMSG;
		if (rr.end > limit)
			break;
		off = rr.end;
		if (i + 1 == total) {
			kept = total;
			cut = off;
			break;
		}
		/* RR i fits; is RR i+1 the start of a new RRset (or a new section)? */
		struct wire_rr nrr;
		if (wire_next_rr(msg, len, off, &nrr) < 0)
			return -EBADMSG;
		bool boundary = (i + 1 == counts[0]) || (i + 1 == counts[0] + counts[1]);
		if (!boundary) {
			if (rrset_key_read(msg, len, &rr, &cur) < 0 ||
			    rrset_key_read(msg, len, &nrr, &next) < 0)
				return -EBADMSG;
			boundary = !rrset_key_equal(&cur, &next);
		}
		if (boundary) {
			kept = i + 1;
			cut = off;
		}
	}
	/* Split the kept count over the sections. */
	unsigned an = kept < counts[0] ? kept : counts[0];
	unsigned rest = kept - an;
	unsigned ns = rest < counts[1] ? rest : counts[1];
	unsigned ar = rest - ns;
	wire_put16(msg + 6, (uint16_t)an);
	wire_put16(msg + 8, (uint16_t)ns);
	wire_put16(msg + 10, (uint16_t)ar);
	if (an < counts[0] || ns < counts[1])
		msg[2] |= WIRE_TC;
	return (int)cut;
}

int wire_finish_reply(const struct wire_query *q, uint8_t *msg, size_t len, size_t cap, bool udp,
		      int ede, const char *ede_text)
{
	size_t optlen = 0;
	int n;

	if (q->edns)
		optlen = WIRE_OPT_LEN + (ede >= 0 ? 6 + (ede_text ? strnlen(ede_text, 256) : 0) : 0);
	if (udp && len + optlen > q->udp_limit) {
		n = wire_truncate(msg, len, q->udp_limit - optlen);
		if (n < 0)
			return n;
		len = (size_t)n;
	}
	if (q->edns) {
		n = wire_write_opt(msg + len, cap - len, q->do_bit, 0, ede, ede_text);
		if (n < 0)
			return n;
		wire_put16(msg + 10, (uint16_t)(wire_get16(msg + 10) + 1));
		len += (size_t)n;
	}
	return (int)len;
}

int wire_parse_reply(const uint8_t *pkt, size_t len, struct wire_reply *r)
{
	unsigned counts, i, an, ns;
	size_t off;
	struct wire_rr rr;
	int p;

	if (len < WIRE_HDR_LEN || len > WIRE_MAX_MSG)
		return -EBADMSG;
	if (!(pkt[2] & WIRE_QR) || (pkt[2] & WIRE_OPCODE_MASK) || wire_get16(pkt + 4) != 1)
		return -EBADMSG;
	r->id = wire_get16(pkt);
	r->tc = (pkt[2] & WIRE_TC) ? 1 : 0;
	r->rcode = pkt[3] & WIRE_RCODE_MASK;
	r->ancount = an = wire_get16(pkt + 6);
	r->nscount = ns = wire_get16(pkt + 8);
	r->arcount = wire_get16(pkt + 10);
	r->has_opt = 0;
	r->opt_last = 0;
	r->has_soa = 0;
	r->min_ttl = UINT32_MAX;
	r->nrr = 0;
	p = walk_name(pkt, len, WIRE_HDR_LEN, NULL, NULL, false);
	if (p < 0 || (size_t)p + 4 > len)
		return -EBADMSG;
	off = (size_t)p + 4;
	r->question_end = (uint16_t)off;
	counts = an + ns + r->arcount;
	for (i = 0; i < counts; i++) {
		if (wire_next_rr(pkt, len, off, &rr) < 0)
			return -EBADMSG;
		if (rr.type == WIRE_TYPE_OPT) {
			if (i < an + ns || r->has_opt || check_opt(pkt, &rr) < 0)
				return -EBADMSG;
			r->has_opt = 1;
			r->opt_off = (uint16_t)off;
			r->opt_len = (uint16_t)(rr.end - off);
			r->opt_last = (i + 1 == counts);
			r->rcode = (uint8_t)((rr.ttl >> 24) << 4 | r->rcode);
			off = rr.end;
			continue;
		}
		if (check_rdata(pkt, &rr) < 0)
			return -EBADMSG;
		uint32_t ttl = rr.ttl > 0x7fffffffU ? 0 : rr.ttl; /* RFC 2181 section 8 */
		if (ttl < r->min_ttl)
			r->min_ttl = ttl;
		if (r->nrr < WIRE_MAX_RRS)
			r->ttl_off[r->nrr] = rr.ttl_off;
		r->nrr++;
		if (rr.type == WIRE_TYPE_SOA && i >= an && i < an + ns && !r->has_soa) {
			r->has_soa = 1;
			r->soa_ttl_off = rr.ttl_off;
			r->soa_ttl = ttl;
			uint32_t min = wire_get32(pkt + rr.end - 4);
			r->soa_minimum = min > 0x7fffffffU ? 0 : min;
		}
		off = rr.end;
	}
	r->len = (uint16_t)off;
	return 0;
}

bool wire_reply_question_matches(const uint8_t *pkt, size_t len, const struct wire_query *q)
{
	const uint8_t *p = pkt + WIRE_HDR_LEN;
	size_t n = q->qname_len, i;
	uint64_t a, b;

	if (n == 0 || (size_t)WIRE_HDR_LEN + n + 4 > len)
		return false;
	/* The reply's question name must be uncompressed, as every server writes it, and equal
	 * @q's lowercase one once lowered. Lowering touches only bytes 'A' to 'Z' (65 to 90),
	 * above any length byte of @q's name (at most 63), so the whole wire form compares
	 * alike: a byte of the reply matches a length byte of @q's only if it is that length. */
	if (n < 8) {
		for (i = 0; i < n; i++)
			if (lower(p[i]) != q->qname[i])
				return false;
	} else {
		for (i = 0; i + 8 <= n; i += 8) {
			memcpy(&a, p + i, 8);
			memcpy(&b, q->qname + i, 8);
			if (lower8(a) != b)
				return false;
		}
		memcpy(&a, p + n - 8, 8); /* the last word overlaps the one before */
		memcpy(&b, q->qname + n - 8, 8);
		if (lower8(a) != b)
			return false;
	}
	return wire_get16(p + n) == q->qtype && wire_get16(p + n + 2) == q->qclass;
}

bool wire_name_in_zone(const uint8_t *name, size_t len, const uint8_t *zone, size_t zone_len)
{
	size_t off = 0;

	if (zone_len > len)
		return false;
	while (off < len - zone_len) {
		if (name[off] == 0)
			return false;
		off += 1 + (size_t)name[off];
	}
	return off == len - zone_len && memcmp(name + off, zone, zone_len) == 0;
}

bool wire_query_in_zone(const struct wire_query *q, const uint8_t *zone, size_t zone_len)
{
	size_t off;
	unsigned i;

	if (zone_len == 0 || zone_len > q->qname_len)
		return false;
	off = q->qname_len - zone_len;
	/* the first byte (a label length) turns most names away before any call */
	if (q->qname[off] != zone[0] || memcmp(q->qname + off, zone, zone_len) != 0)
		return false;
	/* the suffix matched: it is the zone if it starts at a label */
	for (i = q->nlabels; i > 0 && q->label_off[i] > off; i--)
		;
	return q->label_off[i] == off;
}

int wire_name_from_text(const char *text, uint8_t *out, size_t cap)
{
	size_t n = 0, tl = strlen(text);
	const char *p = text, *end = text + tl;

	if (tl == 1 && text[0] == '.') {
		if (cap < 1)
			return -EINVAL;
		out[0] = 0;
		return 1;
	}
	if (tl == 0)
		return -EINVAL;
	if (end[-1] == '.')
		end--;
	while (p < end) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t l = dot ? (size_t)(dot - p) : (size_t)(end - p);
		if (l == 0 || l > 63 || n + 1 + l + 1 > WIRE_MAX_NAME || n + 1 + l + 1 > cap)
			return -EINVAL;
		out[n++] = (uint8_t)l;
		for (size_t i = 0; i < l; i++) {
			uint8_t c = (uint8_t)p[i];
			if (c <= ' ' || c >= 0x7f || c == '\\')
				return -EINVAL;
			out[n++] = lower(c);
		}
		p += l + 1;
	}
	out[n++] = 0;
	return (int)n;
}

int wire_name_to_text(const uint8_t *name, size_t len, char *out, size_t cap)
{
	size_t off = 0, n = 0;

	if (cap < 2)
		return -ENOSPC;
	if (len == 0 || name[0] == 0) {
		out[0] = '.';
		out[1] = 0;
		return 1;
	}
	while (off < len && name[off]) {
		uint8_t l = name[off];
		if (off + 1 + l > len)
			return -EINVAL;
		for (size_t i = 1; i <= l; i++) {
			uint8_t c = name[off + i];
			if (c > ' ' && c < 0x7f && c != '.' && c != '\\') {
				if (n + 2 > cap)
					return -ENOSPC;
				out[n++] = (char)lower(c);
			} else {
				if (n + 5 > cap)
					return -ENOSPC;
				out[n++] = '\\';
				out[n++] = (char)('0' + c / 100);
				out[n++] = (char)('0' + c / 10 % 10);
				out[n++] = (char)('0' + c % 10);
			}
		}
		if (n + 2 > cap)
			return -ENOSPC;
		out[n++] = '.';
		off += 1 + (size_t)l;
	}
	out[n] = 0;
	return (int)n;
}
