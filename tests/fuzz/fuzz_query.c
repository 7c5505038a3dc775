/* libFuzzer target: a client query through the whole decision path (agent/serve.c): parsing,
 * error replies, mesh answers (a table with exact, wildcard and IPv6 hosts in a zone) and the
 * cache (a few entries), with UDP truncation and TCP sizes. */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/meshtab.h"
#include "agent/reply.h"
#include "agent/serve.h"
#include "agent/stats.h"
#include "agent/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct serve_ctx ctx;
static struct stats st;
static const uint8_t cluster[] = "\7cluster\5local";

/* Caches an answer for "cached.test. A" so that hits are exercised too. */
static void seed_cache(struct cache *c)
{
	static const uint8_t reply[] = {
		0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 6, 'c', 'a', 'c', 'h', 'e', 'd', 4,
		't', 'e', 's', 't', 0, 0, 1, 0, 1, 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4,
		10, 0, 0, 1,
	};
	uint8_t qbuf[64], canon[512];
	struct wire_query q;
	struct wire_reply r;
	struct reply_canon rc;
	struct reply_policy pol = { .max_ttl = 3600, .neg_ttl = 300 };

	memcpy(qbuf, reply, 29);
	qbuf[2] = 1;
	qbuf[3] = 0;
	wire_put16(qbuf + 6, 0);
	if (wire_parse_query(&q, qbuf, 29) < 0 || wire_parse_reply(reply, sizeof reply, &r) < 0 ||
	    reply_canonicalize(reply, &r, &q, &pol, canon, sizeof canon, &rc) < 0)
		return;
	cache_insert(c, &q, cache_key(&q), canon, &rc, 100);
}

static void setup(void)
{
	static const char *zones[] = { "cluster-2", "global" };
	struct meshtab_opts mo = { .zones = zones, .nzones = 2, .auto_zones = true, .ttl = 30,
				   .neg_ttl = 5 };
	struct in_addr v4[40];
	struct in6_addr v6[2];

	rcu_register_thread();
	for (int i = 0; i < 40; i++)
		v4[i].s_addr = htonl(0xf0000000u + (uint32_t)i);
	inet_pton(AF_INET6, "fd00::1", &v6[0]);
	inet_pton(AF_INET6, "fd00::2", &v6[1]);
	ctx.mesh = meshtab_new(&mo);
	meshtab_host_set(ctx.mesh, "reviews.default.cluster-2", v4, 1, NULL, 0, true);
	meshtab_host_set(ctx.mesh, "big.default.cluster-2", v4, 40, v6, 2, true);
	meshtab_host_set(ctx.mesh, "*.wild.global", v4, 2, v6, 1, true);
	meshtab_host_set(ctx.mesh, "v6.default.cluster-2", NULL, 0, v6, 2, true);
	meshtab_set_synced(ctx.mesh);
	meshtab_publish(ctx.mesh);
	ctx.cache = cache_new(1 << 20, 86400);
	seed_cache(ctx.cache);
	ctx.cluster_domain = cluster;
	ctx.cluster_domain_len = sizeof cluster;
	ctx.st = &st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[WIRE_MAX_MSG + 2];
	struct wire_query q;
	struct serve_result res;

	if (!ctx.cache)
		setup();
	for (int udp = 0; udp < 2; udp++) {
		rcu_read_lock();
		serve_query(&ctx, data, size, udp, false, 200, &q, out, udp ? 1280 : sizeof out,
			    &res);
		rcu_read_unlock();
		if (res.verdict == SERVE_REPLY && res.len > 0) {
			/* an answer must parse as a reply to what was asked; an error reply (which
			 * may lack the question) must at least be a reply header */
			struct wire_reply r;
			unsigned rcode = out[3] & WIRE_RCODE_MASK;
			if (res.len < WIRE_HDR_LEN || !(out[2] & WIRE_QR))
				__builtin_trap();
			/* q.rcode stays 0 for a query that was served, not refused */
			if (q.rcode == 0 &&
			    (rcode == WIRE_RCODE_NOERROR || rcode == WIRE_RCODE_NXDOMAIN) &&
			    (wire_parse_reply(out, (size_t)res.len, &r) < 0 ||
			     !wire_reply_question_matches(out, (size_t)res.len, &q)))
				__builtin_trap();
			if (udp && (size_t)res.len > q.udp_limit)
				__builtin_trap();
		}
	}
	return 0;
}
