/* The answer cache, shared by every worker thread (SEMANTICS.md rules 33-36).
 *
 * Entries are canonical replies in wire format (reply.h), keyed by (lowercase name, type,
 * class, DO, CD), one allocation each: a 20-byte header, the message, and the offsets of its
 * TTL fields. The table is an open-addressing array of entry pointers.
 *
 * Readers take no lock: they call cache_lookup between rcu_read_lock() and
 * rcu_read_unlock() (liburcu, memb flavour). Entries are immutable; a writer replaces or
 * removes the pointer and frees the entry after a grace period. Writers (inserts, eviction,
 * the sweep) take one mutex; they run on the miss path only.
 *
 * Memory is bounded in bytes (entries plus the table). When full, CLOCK eviction (an LRU
 * approximation with one "referenced" bit per entry, set on a hit only when clear, so hot
 * entries are not written on every hit) removes entries not used since the hand last passed.
 * Expired entries are kept for serve-stale up to the stale window, then swept in small
 * steps.
 *
 * Time is a 32-bit count of seconds from any monotonic origin, passed in by the caller.
 */
#ifndef MESHDNS_CACHE_H
#define MESHDNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct wire_query;
struct reply_canon;

/* Creates a cache bounded to @max_bytes that keeps expired entries for @stale_window
 * seconds. Returns NULL on allocation failure. */
struct cache *cache_new(uint64_t max_bytes, uint32_t stale_window);

/* Frees the cache and every entry. Only once no thread reads it any more. */
void cache_free(struct cache *c);

/* The key of @q: its name hash mixed with type, class, DO and CD. */
uint64_t cache_key(const struct wire_query *q);

/* What a lookup found. */
struct cache_hit {
	uint32_t remaining; /* seconds of freshness left (0 when stale) */
	uint8_t kind;       /* enum reply_kind */
	uint8_t stale;      /* served past its TTL (only with @allow_stale) */
	uint8_t prefetch;   /* this caller should refresh the entry now (once per entry) */
};

/* Looks up @q (key @key) at time @now. On a fresh hit, or a stale one when @allow_stale and
 * the entry is inside the stale window, writes the reply for @q into @out (reply_for_client)
 * and returns its length, filling @hit. Returns 0 on a miss, a negative errno when @cap is
 * too small. Allocates nothing. Call inside an RCU read-side critical section. */
int cache_lookup(struct cache *c, const struct wire_query *q, uint64_t key, uint32_t now,
		 bool udp, bool allow_stale, uint8_t *out, size_t cap, struct cache_hit *hit);

/* Stores the canonical reply @msg/@rc for question @q (key @key) at time @now, replacing an
 * entry with the same key. Entries over a quarter of the cache are refused. Returns 0,
 * -E2BIG or -ENOMEM. Any thread; takes the writer mutex. */
int cache_insert(struct cache *c, const struct wire_query *q, uint64_t key, const uint8_t *msg,
		 const struct reply_canon *rc, uint32_t now);

/* Removes up to @budget slots' worth of entries past their stale window, starting where the
 * last sweep stopped, and hands retired memory to RCU. Call every ~100 ms. */
void cache_sweep(struct cache *c, uint32_t now, unsigned budget);

struct cache_stats {
	uint64_t entries[2]; /* by enum reply_kind */
	uint64_t bytes;
	uint64_t evictions;  /* removed to make room */
	uint64_t evicted[2]; /* the same, by enum reply_kind */
	uint64_t expired;    /* removed by the sweep */
	uint64_t slots;
};

/* Counters, readable from any thread. */
void cache_get_stats(struct cache *c, struct cache_stats *st);

/* The longest run of slots that are not empty (entries and tombstones): no probe reads more.
 * Reads the whole table under the writers' lock; for tests and diagnostics. */
size_t cache_longest_run(struct cache *c);

#endif
