/* Per-thread counters. See stats.h. */
#include "agent/stats.h"

#include <stddef.h>

#include "agent/wire.h"

_Static_assert(offsetof(struct stats, heartbeat_ms) % sizeof(uint64_t) == 0,
	       "struct stats holds only uint64_t counters before heartbeat_ms");

void stats_sum(struct stats *dst, const struct stats *src)
{
	_Atomic uint64_t *d = (_Atomic uint64_t *)dst;
	const _Atomic uint64_t *s = (const _Atomic uint64_t *)src;
	size_t n = offsetof(struct stats, heartbeat_ms) / sizeof(uint64_t);

	for (size_t i = 0; i < n; i++)
		stats_add(&d[i], stats_get(&s[i]));
}

/* CoreDNS's bucket bounds for dns request durations, in seconds. */
const double stats_bucket_bounds[STATS_BUCKETS - 1] = {
	0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
	0.064,   0.128,  0.256, 0.512, 1.024, 2.048, 4.096,
};

static const uint64_t bucket_us[STATS_BUCKETS - 1] = {
	250, 500, 1000, 2000, 4000, 8000, 16000, 32000,
	64000, 128000, 256000, 512000, 1024000, 2048000, 4096000,
};

unsigned stats_bucket_of(uint64_t us)
{
	unsigned i = 0;

	while (i < STATS_BUCKETS - 1 && us > bucket_us[i])
		i++;
	return i;
}

enum stats_qtype stats_qtype_of(uint16_t qtype)
{
	switch (qtype) {
	case WIRE_TYPE_A:
		return STATS_QTYPE_A;
	case WIRE_TYPE_AAAA:
		return STATS_QTYPE_AAAA;
	case WIRE_TYPE_ANY:
		return STATS_QTYPE_ANY;
	case WIRE_TYPE_CNAME:
		return STATS_QTYPE_CNAME;
	case WIRE_TYPE_HTTPS:
		return STATS_QTYPE_HTTPS;
	case WIRE_TYPE_MX:
		return STATS_QTYPE_MX;
	case WIRE_TYPE_NS:
		return STATS_QTYPE_NS;
	case WIRE_TYPE_PTR:
		return STATS_QTYPE_PTR;
	case WIRE_TYPE_SOA:
		return STATS_QTYPE_SOA;
	case WIRE_TYPE_SRV:
		return STATS_QTYPE_SRV;
	case WIRE_TYPE_SVCB:
		return STATS_QTYPE_SVCB;
	case WIRE_TYPE_TXT:
		return STATS_QTYPE_TXT;
	default:
		return STATS_QTYPE_OTHER;
	}
}
