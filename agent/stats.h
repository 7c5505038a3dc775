/* Per-thread counters. Each worker thread owns one struct stats and is its only writer, so
 * counting is a plain increment of a cache line no other thread writes; /metrics reads all
 * of them (relaxed atomic loads) and adds them up only when scraped.
 */
#ifndef MESHDNS_STATS_H
#define MESHDNS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

enum stats_zone {
	STATS_ZONE_ROOT = 0, /* "." : the general upstream */
	STATS_ZONE_CLUSTER,  /* the cluster domain */
	STATS_ZONE_ARPA4,    /* in-addr.arpa. */
	STATS_ZONE_ARPA6,    /* ip6.arpa. */
	STATS_ZONE_MESH,     /* mesh zones */
	STATS_ZONES
};

enum stats_qtype {
	STATS_QTYPE_A = 0,
	STATS_QTYPE_AAAA,
	STATS_QTYPE_ANY,
	STATS_QTYPE_CNAME,
	STATS_QTYPE_HTTPS,
	STATS_QTYPE_MX,
	STATS_QTYPE_NS,
	STATS_QTYPE_PTR,
	STATS_QTYPE_SOA,
	STATS_QTYPE_SRV,
	STATS_QTYPE_SVCB,
	STATS_QTYPE_TXT,
	STATS_QTYPE_OTHER,
	STATS_QTYPES
};

#define STATS_RCODES 18 /* 0..15, 16 = BADVERS, 17 = other */

/* Histogram bounds in seconds, as CoreDNS uses for request durations. */
#define STATS_BUCKETS 16
extern const double stats_bucket_bounds[STATS_BUCKETS - 1]; /* the last bucket is +Inf */

enum stats_drop {
	STATS_DROP_SHORT = 0,  /* client packet shorter than a header, or QR=1 */
	STATS_DROP_OVERSIZE,   /* client datagram larger than our buffer */
	STATS_DROP_SEND,       /* a reply the kernel would not take (EAGAIN) */
	STATS_DROPS
};

enum stats_upstream_drop {
	STATS_UPDROP_MALFORMED = 0, /* failed wire_parse_reply */
	STATS_UPDROP_ID,            /* wrong message ID */
	STATS_UPDROP_QUESTION,      /* wrong question */
	STATS_UPDROP_OVERSIZE,      /* larger than we asked for over UDP */
	STATS_UPDROP_ERROR,         /* SERVFAIL, REFUSED, ... (next server tried) */
	STATS_UPDROP_SOURCE,        /* not from the server's address and port */
	STATS_UPDROPS
};

enum stats_overload {
	STATS_OVERLOAD_INFLIGHT = 0, /* --max-inflight reached */
	STATS_OVERLOAD_CLIENT,       /* --max-inflight-per-client reached */
	STATS_OVERLOAD_TCP,          /* --max-tcp-connections reached */
	STATS_OVERLOAD_WAITERS,      /* too many clients waiting on one upstream query */
	STATS_OVERLOADS
};

#define STATS_MAX_SERVERS 8
enum stats_group { STATS_GROUP_CLUSTER = 0, STATS_GROUP_UPSTREAM, STATS_GROUPS };

/* Every field is an _Atomic uint64_t (stats_sum adds them up as one array) and heartbeat_ms
 * stays last (it is not added up). */
struct stats {
	_Atomic uint64_t requests[2][2][STATS_ZONES][STATS_QTYPES]; /* [tcp][ipv6][zone][type] */
	_Atomic uint64_t responses[STATS_ZONES][STATS_RCODES];
	_Atomic uint64_t duration[STATS_ZONES][STATS_QTYPES][STATS_BUCKETS]; /* see stats_observe */
	_Atomic uint64_t duration_sum_us[STATS_ZONES][STATS_QTYPES];
	_Atomic uint64_t cache_hits[2];  /* by enum reply_kind */
	_Atomic uint64_t cache_misses;
	_Atomic uint64_t cache_stale;    /* stale answers served */
	_Atomic uint64_t prefetches;
	_Atomic uint64_t local[8];       /* by enum mesh_result */
	_Atomic uint64_t dropped[STATS_DROPS];
	_Atomic uint64_t upstream_dropped[STATS_UPDROPS];
	_Atomic uint64_t overload[STATS_OVERLOADS];
	_Atomic uint64_t coalesced;
	_Atomic uint64_t tcp_retries;    /* truncated UDP replies retried over TCP */
	_Atomic uint64_t mtu_truncated;  /* UDP replies cut to TC=1: larger than the link's MTU */
	_Atomic uint64_t fwd_requests[STATS_GROUPS][STATS_MAX_SERVERS];
	_Atomic uint64_t fwd_responses[STATS_GROUPS][STATS_MAX_SERVERS][STATS_RCODES];
	_Atomic uint64_t fwd_timeouts[STATS_GROUPS][STATS_MAX_SERVERS];
	_Atomic uint64_t fwd_duration[STATS_GROUPS][STATS_MAX_SERVERS][STATS_BUCKETS];
	_Atomic uint64_t fwd_duration_sum_us[STATS_GROUPS][STATS_MAX_SERVERS];
	_Atomic uint64_t tcp_conns;      /* gauge: open client TCP connections */
	_Atomic uint64_t inflight;       /* gauge: upstream queries in flight */
	_Atomic uint64_t heartbeat_ms;   /* last time this thread's loop turned */
} __attribute__((aligned(64)));

/* Adds @n to a counter owned by the calling thread: a plain load and store, no lock prefix. */
static inline void stats_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void stats_inc(_Atomic uint64_t *c)
{
	stats_add(c, 1);
}

static inline uint64_t stats_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* Adds every counter and gauge of @src (another thread's, read with relaxed loads) into
 * @dst, which only the caller writes. heartbeat_ms is left alone. */
void stats_sum(struct stats *dst, const struct stats *src);

/* Maps a QTYPE to its label bucket. */
enum stats_qtype stats_qtype_of(uint16_t qtype);

/* The histogram bucket of a duration in microseconds. */
unsigned stats_bucket_of(uint64_t us);

/* Counts one answered client query in @zone, of type bucket @qtype (enum stats_qtype), that
 * took @us microseconds (coredns_dns_request_duration_seconds{zone,type}). */
static inline void stats_observe(struct stats *st, unsigned zone, unsigned qtype, uint64_t us)
{
	stats_inc(&st->duration[zone][qtype][stats_bucket_of(us)]);
	stats_add(&st->duration_sum_us[zone][qtype], us);
}

/* Maps an rcode to its bucket. */
static inline unsigned stats_rcode_of(unsigned rcode)
{
	return rcode <= 16 ? rcode : 17;
}

#endif
