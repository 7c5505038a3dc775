/* libFuzzer target: an upstream reply through the miss path: checks (wire_parse_reply,
 * question match), classification, canonical form with bailiwick scrubbing, cache insert,
 * and the answer a client then gets from the cache. The question is taken from the input
 * itself so that the fuzzer reaches past the match. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/reply.h"
#include "agent/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cache *cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t qbuf[WIRE_MAX_MSG], canon[WIRE_MAX_MSG], out[WIRE_MAX_MSG + 2];
	static struct wire_reply r;
	static struct reply_canon rc;
	static const uint8_t cl[] = "\7cluster\5local";
	static const uint8_t *deny[] = { cl, NULL };
	static const uint8_t deny_len[] = { sizeof cl };
	struct reply_policy pol = { .max_ttl = 3600, .neg_ttl = 300, .deny = deny,
				    .deny_len = deny_len };
	struct wire_query q;
	struct cache_hit hit;

	if (!cache) {
		rcu_register_thread();
		cache = cache_new(256 << 10, 60);
	}
	if (size < WIRE_HDR_LEN || size > WIRE_MAX_MSG)
		return 0;
	/* the query: the reply's header and question, as a query */
	memcpy(qbuf, data, size);
	qbuf[2] &= (uint8_t)~WIRE_QR;
	wire_put16(qbuf + 6, 0);
	wire_put16(qbuf + 8, 0);
	wire_put16(qbuf + 10, 0);
	if (wire_parse_query(&q, qbuf, size) < 0 || q.qname_len == 0)
		return 0;
	if (wire_parse_reply(data, size, &r) < 0 || r.id != q.id ||
	    !wire_reply_question_matches(data, size, &q))
		return 0;
	if (reply_classify(&r) != REPLY_OK)
		return 0;
	if (reply_canonicalize(data, &r, &q, &pol, canon, sizeof canon, &rc) < 0)
		return 0;
	/* the canonical form must itself be a well-formed reply */
	struct wire_reply r2;
	if (wire_parse_reply(canon, rc.len, &r2) < 0)
		__builtin_trap();
	uint64_t key = cache_key(&q);
	cache_insert(cache, &q, key, canon, &rc, 1000);
	rcu_read_lock();
	int n = cache_lookup(cache, &q, key, 1001, true, true, out, sizeof out, &hit);
	rcu_read_unlock();
	if (n > 0 && (wire_parse_reply(out, (size_t)n, &r2) < 0 || (size_t)n > q.udp_limit))
		__builtin_trap();
	if (n > 0 && !wire_reply_question_matches(out, (size_t)n, &q))
		__builtin_trap();
	cache_sweep(cache, 5000, 64);
	return 0;
}
