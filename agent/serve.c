/* One client query, decided. See serve.h. */
#include "agent/serve.h"

#include <errno.h>
#include <string.h>

#include "agent/cache.h"
#include "agent/meshtab.h"
#include "agent/stats.h"
#include "agent/wire.h"

static const uint8_t arpa4[] = "\7in-addr\4arpa";
static const uint8_t arpa6[] = "\3ip6\4arpa";

/* The upstream group and metrics zone of a name that is not local (rules 4 and 5). */
static void route(const struct serve_ctx *ctx, const struct wire_query *q,
		  struct serve_result *res)
{
	res->group = STATS_GROUP_UPSTREAM;
	res->zone = STATS_ZONE_ROOT;
	if (wire_query_in_zone(q, ctx->cluster_domain, ctx->cluster_domain_len)) {
		res->group = STATS_GROUP_CLUSTER;
		res->zone = STATS_ZONE_CLUSTER;
	} else if (wire_query_in_zone(q, arpa4, sizeof arpa4)) {
		res->group = STATS_GROUP_CLUSTER;
		res->zone = STATS_ZONE_ARPA4;
	} else if (wire_query_in_zone(q, arpa6, sizeof arpa6)) {
		res->group = STATS_GROUP_CLUSTER;
		res->zone = STATS_ZONE_ARPA6;
	}
}

void serve_count_response(struct stats *st, unsigned zone, unsigned rcode)
{
	stats_inc(&st->responses[zone][stats_rcode_of(rcode)]);
}

void serve_query(const struct serve_ctx *ctx, const uint8_t *pkt, size_t len, bool udp, bool v6,
		 uint32_t now, struct wire_query *q, uint8_t *out, size_t cap,
		 struct serve_result *res)
{
	struct stats *st = ctx->st;
	enum mesh_result mres = MESH_NOT_LOCAL;
	struct cache_hit hit;
	int r;

	res->verdict = SERVE_DROP;
	res->prefetch = 0;
	res->zone = STATS_ZONE_ROOT;
	res->qtype = STATS_QTYPE_OTHER;
	res->group = STATS_GROUP_UPSTREAM;
	r = wire_parse_query(q, pkt, len);
	if (r == -EINVAL) {
		stats_inc(&st->dropped[STATS_DROP_SHORT]);
		return;
	}
	if (r < 0) {
		stats_inc(&st->requests[!udp][v6][STATS_ZONE_ROOT][res->qtype]);
		res->len = wire_write_error(q, q->rcode, WIRE_EDE_NONE, NULL, out, cap);
		if (res->len > 0) {
			res->verdict = SERVE_REPLY;
			serve_count_response(st, STATS_ZONE_ROOT, q->rcode);
		}
		return;
	}

	res->qtype = (uint8_t)stats_qtype_of(q->qtype);
	r = meshview_answer(meshtab_view(ctx->mesh), q, udp, out, cap, &mres);
	if (r > 0) {
		res->zone = STATS_ZONE_MESH;
		res->len = r;
		res->verdict = SERVE_REPLY;
		stats_inc(&st->requests[!udp][v6][STATS_ZONE_MESH][res->qtype]);
		stats_inc(&st->local[mres]);
		serve_count_response(st, STATS_ZONE_MESH, out[3] & WIRE_RCODE_MASK);
		return;
	}

	route(ctx, q, res);
	stats_inc(&st->requests[!udp][v6][res->zone][res->qtype]);
	res->key = cache_key(q);
	r = cache_lookup(ctx->cache, q, res->key, now, udp, false, out, cap, &hit);
	if (r > 0) {
		stats_inc(&st->cache_hits[hit.kind]);
		serve_count_response(st, res->zone, out[3] & WIRE_RCODE_MASK);
		res->len = r;
		res->verdict = SERVE_REPLY;
		res->prefetch = hit.prefetch;
		return;
	}
	stats_inc(&st->cache_misses);
	res->verdict = SERVE_FORWARD;
}
