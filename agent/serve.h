/* One client query, decided: answered here (an error, a mesh name, a cache hit) or sent on to
 * an upstream group (SEMANTICS.md section 1). Pure: the I/O shell calls this for every query
 * it reads, between rcu_read_lock() and rcu_read_unlock(), and moves the bytes.
 */
#ifndef MESHDNS_SERVE_H
#define MESHDNS_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct meshtab;
struct stats;
struct wire_query;

struct serve_ctx {
	struct cache *cache;
	struct meshtab *mesh;
	const uint8_t *cluster_domain; /* wire format, lowercase */
	size_t cluster_domain_len;
	struct stats *st;              /* the calling thread's counters */
};

enum serve_verdict {
	SERVE_DROP = 0, /* no reply at all */
	SERVE_REPLY,    /* the reply is in @out */
	SERVE_FORWARD,  /* ask the upstream group @group; @q and @key describe the question */
};

struct serve_result {
	uint8_t verdict;  /* enum serve_verdict */
	uint8_t group;    /* enum stats_group, for SERVE_FORWARD and prefetch */
	uint8_t zone;     /* enum stats_zone */
	uint8_t qtype;    /* enum stats_qtype the request was counted under */
	uint8_t prefetch; /* SERVE_REPLY from the cache: refresh this entry in the background */
	int len;          /* reply length for SERVE_REPLY */
	uint64_t key;     /* cache key, for SERVE_FORWARD and prefetch */
};

/* Decides what to do with the query @pkt (@len bytes) that arrived over UDP (@udp) or TCP,
 * from an IPv6 client (@v6) or not, at time @now (seconds). Parses it into @q (caller's
 * storage; q->pkt points at @pkt). Counts the request, and the response when answered
 * here. */
void serve_query(const struct serve_ctx *ctx, const uint8_t *pkt, size_t len, bool udp, bool v6,
		 uint32_t now, struct wire_query *q, uint8_t *out, size_t cap,
		 struct serve_result *res);

/* Counts a response with @rcode in @zone (for replies made elsewhere, e.g. forwarded). */
void serve_count_response(struct stats *st, unsigned zone, unsigned rcode);

#endif
