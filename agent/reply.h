/* Forwarded replies: from what an upstream sent to what is cached, and from what is cached to
 * what one client receives (SEMANTICS.md rules 26-28 and 33-35).
 *
 * The canonical form of a reply is the upstream message without its OPT RR, with the
 * question name lowercased, TTLs capped, and out-of-bailiwick records removed. It is what the
 * cache stores and what every waiting client is answered from, so a miss and a later hit give
 * the same answer. Pure: no I/O, no allocation.
 */
#ifndef MESHDNS_REPLY_H
#define MESHDNS_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/wire.h"

#define REPLY_STALE_TTL    30  /* TTL of stale answers (RFC 8767) */
#define REPLY_MAX_TTL_OFFS 255 /* replies with more RRs are answered but not cached */

/* TTL caps for the zone a reply came from. */
struct reply_policy {
	uint32_t max_ttl; /* positive answers */
	uint32_t neg_ttl; /* NXDOMAIN and NODATA */
	const uint8_t *zone; /* when set, the only names the upstream may speak for, e.g. the
				cluster domain: records owned elsewhere are dropped */
	size_t zone_len;
	const uint8_t *const *deny; /* names no record of this upstream may be owned by or
				       below (the cluster domain and mesh zones for the general
				       upstream); NULL-terminated */
	const uint8_t *deny_len;
	/* when set, also names no upstream may speak for: the mesh zones, which change */
	bool (*denied_fn)(void *arg, const uint8_t *name, size_t len);
	void *denied_arg;
};

enum reply_kind {
	REPLY_SUCCESS = 0, /* an answer */
	REPLY_DENIAL = 1,  /* NXDOMAIN or NODATA */
};

/* A canonical reply ready to cache and to answer from. */
struct reply_canon {
	uint16_t len;
	uint16_t nttl;                          /* TTL fields, 0..REPLY_MAX_TTL_OFFS */
	uint16_t ttl_off[REPLY_MAX_TTL_OFFS];
	uint32_t ttl;                           /* how long it may be cached; 0: not at all */
	uint8_t kind;                           /* enum reply_kind */
	uint8_t scrubbed;                       /* records were removed */
};

/* Verdict on an upstream reply, before canonicalisation. */
enum reply_verdict {
	REPLY_OK = 0,     /* an answer to pass on (NOERROR or NXDOMAIN) */
	REPLY_TRUNCATED,  /* TC=1: ask the same server again over TCP */
	REPLY_FAILED,     /* SERVFAIL, REFUSED, NOTIMP, FORMERR, ...: try the next server */
};

/* Classifies a reply that passed wire_parse_reply and matched the question. */
enum reply_verdict reply_classify(const struct wire_reply *r);

/* Builds the canonical form of the upstream reply @pkt (checked into @r) for the question
 * @key into @out (@cap bytes; WIRE_MAX_MSG is always enough), applying @pol. Sets @c->ttl to
 * 0 when the reply must not be cached (TTL 0, negative without SOA, more than
 * REPLY_MAX_TTL_OFFS RRs). Returns 0 or -EBADMSG. */
int reply_canonicalize(const uint8_t *pkt, const struct wire_reply *r,
		       const struct wire_query *key, const struct reply_policy *pol, uint8_t *out,
		       size_t cap, struct reply_canon *c);

/* Writes the reply for client query @q from the canonical message @canon: copies it, writes
 * the client's ID, RD and CD bits and question bytes, clears AD unless the client asked
 * with AD or DO, lowers every TTL at @ttl_off by @age seconds (floor 0), or sets every TTL to
 * REPLY_STALE_TTL when @stale, then finishes it for the client (wire_finish_reply: OPT with
 * EDE 3 when @stale, truncation when @udp). Returns the length or a negative errno. */
int reply_for_client(const uint8_t *canon, size_t len, const uint8_t *ttl_off, unsigned nttl,
		     uint32_t age, bool stale, const struct wire_query *q, bool udp, uint8_t *out,
		     size_t cap);

/* The same on a copy already in @out (@len bytes of the canonical message; its first two
 * bytes, the ID, need not be there). */
int reply_patch_client(uint8_t *out, size_t len, size_t cap, const uint8_t *ttl_off,
		       unsigned nttl, uint32_t age, bool stale, const struct wire_query *q,
		       bool udp);

#endif
