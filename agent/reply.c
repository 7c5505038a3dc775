/* Forwarded replies: canonical form, bailiwick scrubbing, and per-client patching.
 * See reply.h. */
#include "agent/reply.h"

#include <errno.h>
#include <string.h>

#define MAX_TARGETS 16 /* names whose addresses may ride along in the additional section */

enum reply_verdict reply_classify(const struct wire_reply *r)
{
	if (r->tc)
		return REPLY_TRUNCATED;
	if (r->rcode == WIRE_RCODE_NOERROR || r->rcode == WIRE_RCODE_NXDOMAIN)
		return REPLY_OK;
	return REPLY_FAILED;
}

struct name {
	uint8_t b[WIRE_MAX_NAME];
	size_t len;
};

static bool name_eq(const struct name *a, const struct name *b)
{
	return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* True when @anc equals @n or is one of its ancestors. */
static bool name_at_or_above(const struct name *anc, const struct name *n)
{
	return wire_name_in_zone(n->b, n->len, anc->b, anc->len);
}

static bool denied(const struct reply_policy *pol, const struct name *n)
{
	if (pol->zone && !wire_name_in_zone(n->b, n->len, pol->zone, pol->zone_len))
		return true;
	for (size_t i = 0; pol->deny && pol->deny[i]; i++)
		if (wire_name_in_zone(n->b, n->len, pol->deny[i], pol->deny_len[i]))
			return true;
	return pol->denied_fn && pol->denied_fn(pol->denied_arg, n->b, n->len);
}

/* State of one scrubbing pass over a reply. */
struct scrub {
	const uint8_t *pkt;
	size_t len;
	unsigned an, ns, total;
	/* the key, when the reply's question is the key's; NULL otherwise */
	const struct wire_query *key;
	struct wire_rr rr[WIRE_MAX_RRS]; /* each RR, walked once */
	uint8_t keep[WIRE_MAX_RRS];
	struct name targets[MAX_TARGETS];
	unsigned ntargets;
	struct name zones[MAX_TARGETS]; /* owners of kept SOA and NS records */
	unsigned nzones;
};

/* RR @i and its owner name, lowercased. An owner that is a pointer to the question (the
 * usual answer) is the key's name, with no walk. */
static int read_owner(const struct scrub *s, unsigned i, struct wire_rr *rr, struct name *owner)
{
	*rr = s->rr[i];
	if (s->key && s->pkt[rr->owner] == 0xc0 && s->pkt[rr->owner + 1] == WIRE_HDR_LEN) {
		memcpy(owner->b, s->key->qname, s->key->qname_len);
		owner->len = s->key->qname_len;
		return 0;
	}
	return wire_read_name(s->pkt, s->len, rr->owner, owner->b, &owner->len, true) < 0
		       ? -EBADMSG
		       : 0;
}

/* Reads the name in RDATA at @skip bytes into it. */
static int read_rdata_name(const struct scrub *s, const struct wire_rr *rr, size_t skip,
			   struct name *out)
{
	if (rr->rdlen <= skip)
		return -EBADMSG;
	return wire_read_name(s->pkt, s->len, rr->rdata + skip, out->b, &out->len, true) < 0
		       ? -EBADMSG
		       : 0;
}

static void add_target(struct scrub *s, const struct wire_rr *rr, size_t skip)
{
	if (s->ntargets < MAX_TARGETS && read_rdata_name(s, rr, skip, &s->targets[s->ntargets]) == 0)
		s->ntargets++;
}

/* Marks the answer records on the chain from the question name: records owned by a name of
 * the chain (the question name, then each CNAME target in turn), and DNAMEs above one.
 * Returns the last name of the chain in @cur. */
static int scrub_answer(struct scrub *s, const struct wire_query *key,
			const struct reply_policy *pol, struct name *cur)
{
	static _Thread_local struct name chain[16];
	struct wire_rr rr;
	struct name owner;
	unsigned nchain = 1;
	uint16_t any_type = 0;

	memcpy(chain[0].b, key->qname, key->qname_len);
	chain[0].len = key->qname_len;
	/* Follow CNAMEs from the question name, in whatever order the server wrote them. */
	while (key->qtype != WIRE_TYPE_CNAME && nchain < 16) {
		bool moved = false;
		for (unsigned i = 0; i < s->an && !moved; i++) {
			if (read_owner(s, i, &rr, &owner) < 0)
				return -EBADMSG;
			if (rr.type != WIRE_TYPE_CNAME || !name_eq(&owner, &chain[nchain - 1]) ||
			    denied(pol, &owner))
				continue;
			if (read_rdata_name(s, &rr, 0, &chain[nchain]) < 0)
				return -EBADMSG;
			moved = true;
			for (unsigned k = 0; k < nchain; k++) /* a loop: stop */
				if (name_eq(&chain[k], &chain[nchain]))
					moved = false;
		}
		if (!moved)
			break;
		nchain++;
	}
	for (unsigned i = 0; i < s->an; i++) {
		if (read_owner(s, i, &rr, &owner) < 0)
			return -EBADMSG;
		if (denied(pol, &owner))
			continue;
		bool on_chain = false, below = false;
		for (unsigned k = 0; k < nchain; k++) {
			on_chain |= name_eq(&owner, &chain[k]);
			below |= !name_eq(&owner, &chain[k]) && name_at_or_above(&owner, &chain[k]);
		}
		if (rr.type == WIRE_TYPE_DNAME && below) {
			s->keep[i] = 1;
			continue;
		}
		if (!on_chain)
			continue;
		if (rr.type == WIRE_TYPE_CNAME || rr.type == WIRE_TYPE_RRSIG) {
			s->keep[i] = 1;
			continue;
		}
		if (rr.type != key->qtype && key->qtype != WIRE_TYPE_ANY)
			continue;
		/* RFC 8482: for ANY, one RRset (and its signatures) is enough */
		if (key->qtype == WIRE_TYPE_ANY) {
			if (any_type && rr.type != any_type)
				continue;
			any_type = rr.type;
		}
		s->keep[i] = 1;
		if (rr.type == WIRE_TYPE_MX)
			add_target(s, &rr, 2);
		else if (rr.type == WIRE_TYPE_SRV)
			add_target(s, &rr, 6);
		else if (rr.type == WIRE_TYPE_NS)
			add_target(s, &rr, 0);
	}
	if (key->qtype == WIRE_TYPE_ANY && any_type) {
		/* drop signatures of the RRsets that did not make it */
		for (unsigned i = 0; i < s->an; i++) {
			if (!s->keep[i])
				continue;
			rr = s->rr[i];
			if (rr.type == WIRE_TYPE_RRSIG &&
			    (rr.rdlen < 2 || wire_get16(s->pkt + rr.rdata) != any_type))
				s->keep[i] = 0;
		}
	}
	*cur = chain[nchain - 1];
	return 0;
}

/* Marks authority records about the zones above the chain: SOA and NS at or above a name of
 * the chain, then DS/NSEC/NSEC3/RRSIG inside those zones. */
static int scrub_authority(struct scrub *s, const struct wire_query *key,
			   const struct reply_policy *pol, const struct name *cur)
{
	struct wire_rr rr;
	struct name owner, qn;

	memcpy(qn.b, key->qname, key->qname_len);
	qn.len = key->qname_len;
	for (unsigned i = s->an; i < s->an + s->ns; i++) {
		if (read_owner(s, i, &rr, &owner) < 0)
			return -EBADMSG;
		if ((rr.type != WIRE_TYPE_SOA && rr.type != WIRE_TYPE_NS) || denied(pol, &owner))
			continue;
		if (!name_at_or_above(&owner, cur) && !name_at_or_above(&owner, &qn))
			continue;
		s->keep[i] = 1;
		if (s->nzones < MAX_TARGETS)
			s->zones[s->nzones++] = owner;
		if (rr.type == WIRE_TYPE_NS)
			add_target(s, &rr, 0);
	}
	for (unsigned i = s->an; i < s->an + s->ns; i++) {
		if (s->keep[i])
			continue;
		if (read_owner(s, i, &rr, &owner) < 0)
			return -EBADMSG;
		if (rr.type != WIRE_TYPE_DS && rr.type != WIRE_TYPE_NSEC &&
		    rr.type != WIRE_TYPE_NSEC3 && rr.type != WIRE_TYPE_RRSIG)
			continue;
		if (denied(pol, &owner))
			continue;
		for (unsigned z = 0; z < s->nzones; z++)
			if (name_at_or_above(&s->zones[z], &owner))
				s->keep[i] = 1;
	}
	return 0;
}

/* Marks additional addresses of names the kept records point at (NS, MX, SRV targets). */
static int scrub_additional(struct scrub *s, const struct reply_policy *pol)
{
	struct wire_rr rr;
	struct name owner;

	for (unsigned i = s->an + s->ns; i < s->total; i++) {
		if (read_owner(s, i, &rr, &owner) < 0)
			return -EBADMSG;
		if (rr.type == WIRE_TYPE_OPT)
			continue;
		if (rr.type != WIRE_TYPE_A && rr.type != WIRE_TYPE_AAAA &&
		    rr.type != WIRE_TYPE_RRSIG)
			continue;
		if (denied(pol, &owner))
			continue;
		for (unsigned t = 0; t < s->ntargets; t++)
			if (name_eq(&owner, &s->targets[t]))
				s->keep[i] = 1;
	}
	return 0;
}

/* Appends @name expanded from @pkt at @at to @out. */
static int put_name(const uint8_t *pkt, size_t plen, size_t at, uint8_t *out, size_t cap,
		    size_t *n)
{
	size_t l;
	int r;

	if (*n + WIRE_MAX_NAME > cap)
		return -ENOSPC;
	r = wire_read_name(pkt, plen, at, out + *n, &l, false);
	if (r < 0)
		return r;
	*n += l;
	return r;
}

static int put_bytes(const uint8_t *src, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	if (*n + len > cap)
		return -ENOSPC;
	memcpy(out + *n, src, len);
	*n += len;
	return 0;
}

/* Appends RR @rr of @pkt to @out with every name expanded, so that the RR stands alone.
 * Returns the offset of its TTL field in @out, or a negative errno. */
static int put_rr(const uint8_t *pkt, size_t plen, const struct wire_rr *rr, uint8_t *out,
		  size_t cap, size_t *n)
{
	size_t rdstart, p = rr->rdata, end = (size_t)rr->rdata + rr->rdlen, ttl_off;
	struct wire_rdata_layout l;
	int r;

	r = put_name(pkt, plen, rr->owner, out, cap, n);
	if (r < 0)
		return r;
	if (*n + 10 > cap)
		return -ENOSPC;
	memcpy(out + *n, pkt + rr->ttl_off - 4, 8); /* type, class, TTL */
	ttl_off = *n + 4;
	*n += 10;
	rdstart = *n;
	if (!wire_rdata_layout(rr->type, &l)) {
		r = put_bytes(pkt + p, rr->rdlen, out, cap, n);
	} else {
		r = put_bytes(pkt + p, l.skip, out, cap, n);
		p += l.skip;
		for (unsigned k = 0; r == 0 && k < l.names; k++) {
			r = put_name(pkt, end, p, out, cap, n);
			if (r >= 0) {
				p = (size_t)r;
				r = 0;
			}
		}
		if (r == 0)
			r = (p + l.tail == end) ? put_bytes(pkt + p, l.tail, out, cap, n) : -EBADMSG;
	}
	if (r < 0)
		return r;
	if (*n - rdstart > 0xffff)
		return -ENOSPC;
	wire_put16(out + rdstart - 2, (uint16_t)(*n - rdstart));
	return (int)ttl_off;
}

/* Finds the cache lifetime and the kind, and caps TTLs. Positive: each TTL capped by the
 * policy, the lifetime is the smallest TTL of the answer section (rule 34); TTLs are
 * otherwise served as the upstream sent them, lowered by their age (rule 28). Negative:
 * min(SOA TTL, SOA MINIMUM) capped by the policy (RFC 2308, rule 35), and no more than the
 * answer's TTLs (a CNAME before the NXDOMAIN); every TTL, the SOA's included, is capped to
 * that, as RFC 2308 section 5 asks of a cached negative answer. */
static void apply_ttls(uint8_t *out, struct reply_canon *c, unsigned an_kept, uint8_t rcode,
		       const int soa_ttl_pos, const struct reply_policy *pol)
{
	uint32_t life, cap;
	bool negative = rcode == WIRE_RCODE_NXDOMAIN || an_kept == 0;

	c->kind = negative ? REPLY_DENIAL : REPLY_SUCCESS;
	if (negative) {
		if (soa_ttl_pos < 0) { /* RFC 2308: no SOA, no negative caching */
			c->ttl = 0;
			return;
		}
		/* MINIMUM is the last field of the SOA RDATA */
		uint32_t soa_ttl = wire_get32(out + soa_ttl_pos);
		size_t rdlen = wire_get16(out + soa_ttl_pos + 4);
		uint32_t soa_min = wire_get32(out + soa_ttl_pos + 6 + rdlen - 4);
		soa_ttl = soa_ttl > 0x7fffffffU ? 0 : soa_ttl;
		soa_min = soa_min > 0x7fffffffU ? 0 : soa_min;
		life = soa_ttl < soa_min ? soa_ttl : soa_min;
		if (life > pol->neg_ttl)
			life = pol->neg_ttl;
	} else {
		life = pol->max_ttl;
	}
	for (unsigned i = 0; i < an_kept && i < c->nttl; i++) {
		uint32_t t = wire_get32(out + c->ttl_off[i]);
		if (t > 0x7fffffffU)
			t = 0;
		if (t < life)
			life = t;
	}
	cap = negative ? life : pol->max_ttl;
	for (unsigned i = 0; i < c->nttl; i++) {
		uint32_t t = wire_get32(out + c->ttl_off[i]);
		if (t > 0x7fffffffU)
			t = 0;
		wire_put32(out + c->ttl_off[i], t < cap ? t : cap);
	}
	c->ttl = life;
}

int reply_canonicalize(const uint8_t *pkt, const struct wire_reply *r,
		       const struct wire_query *key, const struct reply_policy *pol, uint8_t *out,
		       size_t cap, struct reply_canon *c)
{
	static _Thread_local struct scrub s;
	struct wire_rr rr;
	struct name cur;
	size_t off = r->question_end, n;
	unsigned kept_an = 0, kept_ns = 0, kept_ar = 0, kept_all = 0;
	int soa_pos = -1, t;
	bool fast;

	c->len = 0;
	c->nttl = 0;
	c->ttl = 0;
	c->scrubbed = 0;
	s.pkt = pkt;
	s.len = r->len;
	s.an = r->ancount;
	s.ns = r->nscount;
	s.total = (unsigned)r->ancount + r->nscount + r->arcount;
	s.ntargets = 0;
	s.nzones = 0;
	s.key = wire_reply_question_matches(pkt, r->len, key) ? key : NULL;
	if (s.total > WIRE_MAX_RRS)
		return -EBADMSG; /* a 64 KiB message of tiny RRs: answer SERVFAIL, cache nothing */
	for (unsigned i = 0; i < s.total; i++) {
		if (wire_next_rr(pkt, r->len, off, &s.rr[i]) < 0)
			return -EBADMSG;
		s.keep[i] = 0;
		off = s.rr[i].end;
	}
	if (scrub_answer(&s, key, pol, &cur) < 0 || scrub_authority(&s, key, pol, &cur) < 0 ||
	    scrub_additional(&s, pol) < 0)
		return -EBADMSG;

	for (unsigned i = 0; i < s.total; i++) {
		if (!s.keep[i])
			continue;
		kept_all++;
		if (i < s.an)
			kept_an++;
		else if (i < s.an + s.ns)
			kept_ns++;
		else
			kept_ar++;
	}
	/* The fast path: every RR but the OPT kept, and the OPT (if any) last. */
	fast = kept_all + (r->has_opt ? 1 : 0) == s.total && (!r->has_opt || r->opt_last);
	c->scrubbed = kept_all + (r->has_opt ? 1 : 0) != s.total;
	if (fast) {
		n = r->has_opt ? r->opt_off : r->len;
		if (n > cap)
			return -ENOSPC;
		memcpy(out, pkt, n);
		/* The copy keeps every offset; the OPT, if any, is last and not copied. */
		for (unsigned i = 0; i < s.total && c->nttl < REPLY_MAX_TTL_OFFS; i++) {
			rr = s.rr[i];
			if (rr.type == WIRE_TYPE_OPT)
				break;
			c->ttl_off[c->nttl++] = rr.ttl_off;
			if (soa_pos < 0 && rr.type == WIRE_TYPE_SOA && i >= s.an && i < s.an + s.ns)
				soa_pos = rr.ttl_off;
		}
	} else {
		n = r->question_end;
		if (n > cap)
			return -ENOSPC;
		memcpy(out, pkt, n);
		for (unsigned i = 0; i < s.total; i++) {
			if (!s.keep[i])
				continue;
			rr = s.rr[i];
			t = put_rr(pkt, r->len, &rr, out, cap, &n);
			if (t < 0)
				return t == -ENOSPC ? -EBADMSG : t;
			if (c->nttl < REPLY_MAX_TTL_OFFS)
				c->ttl_off[c->nttl] = (uint16_t)t;
			c->nttl++;
			if (soa_pos < 0 && rr.type == WIRE_TYPE_SOA && i >= s.an && i < s.an + s.ns)
				soa_pos = t;
		}
		if (c->nttl > REPLY_MAX_TTL_OFFS)
			c->nttl = REPLY_MAX_TTL_OFFS;
	}
	wire_put16(out + 6, (uint16_t)kept_an);
	wire_put16(out + 8, (uint16_t)kept_ns);
	wire_put16(out + 10, (uint16_t)kept_ar);
	out[2] &= (uint8_t)~WIRE_TC;
	out[3] &= (uint8_t)~WIRE_RCODE_MASK;
	out[3] |= r->rcode & WIRE_RCODE_MASK;
	/* The question as the key has it: lowercase, our spelling. */
	memcpy(out + WIRE_HDR_LEN, key->qname, key->qname_len);
	c->len = (uint16_t)n;
	apply_ttls(out, c, kept_an, r->rcode, soa_pos, pol);
	if (kept_all > REPLY_MAX_TTL_OFFS)
		c->ttl = 0;
	return 0;
}

int reply_patch_client(uint8_t *out, size_t len, size_t cap, const uint8_t *ttl_off,
		       unsigned nttl, uint32_t age, bool stale, const struct wire_query *q, bool udp)
{
	uint16_t off;
	uint8_t f2 = out[2], f3 = out[3];

	if (len < (size_t)q->question_end)
		return -EBADMSG;
	wire_put16(out, q->id);
	out[2] = (uint8_t)((f2 & ~(WIRE_RD | WIRE_TC)) | (q->flags2 & WIRE_RD));
	out[3] = (uint8_t)((f3 & ~(WIRE_CD | WIRE_AD)) | WIRE_RA | (q->flags3 & WIRE_CD));
	if ((q->flags3 & WIRE_AD) || q->do_bit)
		out[3] |= f3 & WIRE_AD;
	memcpy(out + WIRE_HDR_LEN, q->pkt + WIRE_HDR_LEN, q->qname_len);
	for (unsigned i = 0; i < nttl; i++) {
		memcpy(&off, ttl_off + 2 * i, 2);
		if (stale) {
			wire_put32(out + off, REPLY_STALE_TTL);
		} else {
			uint32_t t = wire_get32(out + off);
			wire_put32(out + off, t > age ? t - age : 0);
		}
	}
	int ede = WIRE_EDE_NONE;
	if (stale)
		ede = (out[3] & WIRE_RCODE_MASK) == WIRE_RCODE_NXDOMAIN ? WIRE_EDE_STALE_NXDOMAIN
									: WIRE_EDE_STALE_ANSWER;
	return wire_finish_reply(q, out, len, cap, udp, ede, stale ? "serve-stale" : NULL);
}

int reply_for_client(const uint8_t *canon, size_t len, const uint8_t *ttl_off, unsigned nttl,
		     uint32_t age, bool stale, const struct wire_query *q, bool udp, uint8_t *out,
		     size_t cap)
{
	if (len > cap)
		return -ENOSPC;
	memcpy(out, canon, len);
	return reply_patch_client(out, len, cap, ttl_off, nttl, age, stale, q, udp);
}
