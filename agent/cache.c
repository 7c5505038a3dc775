/* The answer cache. See cache.h for the design. */
#include "agent/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/reply.h"
#include "agent/wire.h"

#define MIN_SLOTS     256
#define RETIRE_BATCH  126
#define ENTRY_OVERHEAD 16 /* what malloc adds to each block, roughly */
#define HAND_STRIDE   UINT64_C(0x9E3779B97F4A7C15) /* odd: 2^64 / golden ratio */

#define FLAG_DO     0x01
#define FLAG_CD     0x02
#define FLAG_DENIAL 0x04

#define STATE_REF      0x01 /* used since the CLOCK hand last passed */
#define STATE_PREFETCH 0x02 /* a refresh was started */

struct cache_entry {
	uint32_t inserted;  /* time of insertion */
	uint32_t expire;    /* first second it is stale */
	uint16_t len;       /* length of the message (its first two bytes, the ID, not stored) */
	uint8_t nttl;       /* TTL offsets after the message */
	uint8_t flags;      /* FLAG_* */
	_Atomic uint8_t state; /* STATE_* */
	uint8_t data[];     /* message bytes 2..len-1, then nttl native-endian uint16 offsets */
};

/* Message byte @i (i >= 2) of @e. */
#define MSG(e, i) ((e)->data + (i) - 2)

/* A slot array. A slot holds 0 (empty), 1 (a tombstone: readers probe past it, inserts
 * reuse it) or an entry pointer with the top 16 bits of its key above the 48 address bits,
 * so a probe compares keys without touching the entry. Never shrinks in place: a rebuild
 * makes a new one. */
struct cache_table {
	struct rcu_head rcu;
	size_t mask;
	size_t used; /* live entries plus tombstones */
	_Atomic uint64_t slot[];
};

#define SLOT_EMPTY 0
#define SLOT_TOMB  1
#define SLOT_PTR   ((UINT64_C(1) << 48) - 1)
/* LeakSanitizer does not recognise a pointer with bits above 48 set, so sanitizer builds keep
 * slots untagged (probes then look at every entry: slower, same answers). */
#if defined(__SANITIZE_ADDRESS__)
#define SLOT_TAG 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOT_TAG 0
#endif
#endif
#ifndef SLOT_TAG
#define SLOT_TAG (~SLOT_PTR)
#endif

static inline struct cache_entry *slot_entry(uint64_t v)
{
	return (struct cache_entry *)(uintptr_t)(v & SLOT_PTR);
}

static inline bool slot_live(uint64_t v)
{
	return v > SLOT_TOMB;
}

/* Entries and tables waiting for a grace period before they are freed. */
struct retire_batch {
	struct rcu_head rcu;
	unsigned n;
	void *p[RETIRE_BATCH];
};

struct cache {
	_Atomic(struct cache_table *) table;
	pthread_mutex_t lock; /* writers only */
	uint64_t max_bytes;
	uint32_t stale_window;
	size_t live;
	size_t hand;  /* CLOCK hand */
	size_t sweep; /* sweep cursor */
	struct retire_batch *retire;
	_Atomic uint64_t bytes;
	_Atomic uint64_t entries[2];
	_Atomic uint64_t evictions[2]; /* by enum reply_kind */
	_Atomic uint64_t expired;
};

static size_t entry_size(const struct cache_entry *e)
{
	return offsetof(struct cache_entry, data) + (size_t)e->len - 2 + 2u * e->nttl;
}

static uint64_t entry_cost(const struct cache_entry *e)
{
	return (entry_size(e) + ENTRY_OVERHEAD + 15) & ~(uint64_t)15;
}

static uint64_t table_cost(size_t slots)
{
	return sizeof(struct cache_table) + slots * sizeof(void *);
}

static struct cache_table *table_new(size_t slots)
{
	struct cache_table *t = calloc(1, sizeof *t + slots * sizeof(t->slot[0]));

	if (t)
		t->mask = slots - 1;
	return t;
}

static void free_batch(struct rcu_head *head)
{
	struct retire_batch *b = caa_container_of(head, struct retire_batch, rcu);

	for (unsigned i = 0; i < b->n; i++)
		free(b->p[i]);
	free(b);
}

static void flush_retired(struct cache *c)
{
	if (c->retire && c->retire->n) {
		call_rcu(&c->retire->rcu, free_batch);
		c->retire = NULL;
	}
}

/* Frees @p after a grace period. Under the lock. On allocation failure waits for the grace
 * period right here, which is slow but correct. */
static void retire(struct cache *c, void *p)
{
	if (!c->retire) {
		c->retire = calloc(1, sizeof *c->retire);
		if (!c->retire) {
			synchronize_rcu();
			free(p);
			return;
		}
	}
	c->retire->p[c->retire->n++] = p;
	if (c->retire->n == RETIRE_BATCH)
		flush_retired(c);
}

struct cache *cache_new(uint64_t max_bytes, uint32_t stale_window)
{
	struct cache *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->max_bytes = max_bytes;
	c->stale_window = stale_window;
	pthread_mutex_init(&c->lock, NULL);
	struct cache_table *t = table_new(MIN_SLOTS);
	if (!t) {
		free(c);
		return NULL;
	}
	atomic_store(&c->table, t);
	atomic_store(&c->bytes, table_cost(MIN_SLOTS));
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	rcu_barrier(); /* let pending call_rcu frees finish */
	struct cache_table *t = atomic_load(&c->table);
	for (size_t i = 0; i <= t->mask; i++) {
		uint64_t v = atomic_load(&t->slot[i]);
		if (slot_live(v))
			free(slot_entry(v));
	}
	free(t);
	if (c->retire) {
		for (unsigned i = 0; i < c->retire->n; i++)
			free(c->retire->p[i]);
		free(c->retire);
	}
	pthread_mutex_destroy(&c->lock);
	free(c);
}

uint64_t cache_key(const struct wire_query *q)
{
	/* mixed, so that the type and flag bits reach the slot index */
	return wire_mix64(q->name_hash ^ ((uint64_t)q->qtype << 32 | (uint64_t)q->qclass << 16 |
					  (uint64_t)q->do_bit << 1 | q->cd_bit));
}

static uint8_t key_flags(const struct wire_query *q)
{
	return (uint8_t)((q->do_bit ? FLAG_DO : 0) | (q->cd_bit ? FLAG_CD : 0));
}

static bool entry_matches(const struct cache_entry *e, const struct wire_query *q)
{
	size_t qe = (size_t)WIRE_HDR_LEN + q->qname_len;

	return (e->flags & (FLAG_DO | FLAG_CD)) == key_flags(q) && e->len >= qe + 4 &&
	       memcmp(MSG(e, WIRE_HDR_LEN), q->qname, q->qname_len) == 0 &&
	       wire_get16(MSG(e, qe)) == q->qtype && wire_get16(MSG(e, qe + 2)) == q->qclass;
}

int cache_lookup(struct cache *c, const struct wire_query *q, uint64_t key, uint32_t now,
		 bool udp, bool allow_stale, uint8_t *out, size_t cap, struct cache_hit *hit)
{
	struct cache_table *t = atomic_load_explicit(&c->table, memory_order_acquire);
	size_t i = (size_t)key & t->mask;
	struct cache_entry *e;

	for (;;) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (v == SLOT_EMPTY)
			return 0;
		if (slot_live(v) && ((v ^ key) & SLOT_TAG) == 0) {
			e = slot_entry(v);
			if (entry_matches(e, q))
				break;
		}
		i = (i + 1) & t->mask;
	}
	bool stale = (int32_t)(now - e->expire) >= 0;
	if (stale && (!allow_stale || (int32_t)(now - e->expire) >= (int32_t)c->stale_window))
		return 0;
	if (e->len > cap)
		return -ENOSPC;
	if (!(atomic_load_explicit(&e->state, memory_order_relaxed) & STATE_REF))
		atomic_fetch_or_explicit(&e->state, STATE_REF, memory_order_relaxed);
	hit->stale = stale;
	hit->kind = (e->flags & FLAG_DENIAL) ? REPLY_DENIAL : REPLY_SUCCESS;
	hit->remaining = stale ? 0 : e->expire - now;
	hit->prefetch = 0;
	/* Prefetch (like unbound): a hit in the last tenth of a TTL of 10 s or more refreshes
	 * the entry in the background, once. */
	uint32_t ttl = e->expire - e->inserted;
	if (!stale && ttl >= 10 && hit->remaining * 10 <= ttl &&
	    !(atomic_load_explicit(&e->state, memory_order_relaxed) & STATE_PREFETCH) &&
	    !(atomic_fetch_or_explicit(&e->state, STATE_PREFETCH, memory_order_relaxed) &
	      STATE_PREFETCH))
		hit->prefetch = 1;
	memcpy(out + 2, e->data, (size_t)e->len - 2);
	return reply_patch_client(out, e->len, cap, e->data + e->len - 2, e->nttl,
				  now - e->inserted, stale, q, udp);
}

/* Puts @e (key @key) in the first free slot of @t. The caller checked there is room. */
static void table_place(struct cache_table *t, struct cache_entry *e, uint64_t key)
{
	size_t i = (size_t)key & t->mask;

	for (;;) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!slot_live(v)) {
			if (v == SLOT_EMPTY)
				t->used++;
			atomic_store_explicit(&t->slot[i], (key & SLOT_TAG) | (uintptr_t)e,
					      memory_order_release);
			return;
		}
		i = (i + 1) & t->mask;
	}
}

/* The slot index of an entry is not stored: recompute the key from its question. */
static uint64_t entry_key(const struct cache_entry *e)
{
	struct wire_query q;
	size_t n = WIRE_HDR_LEN;

	/* The stored question is lowercase and uncompressed (reply_canonicalize). */
	while (*MSG(e, n))
		n += 1 + (size_t)*MSG(e, n);
	n++;
	q.qname_len = (uint16_t)(n - WIRE_HDR_LEN);
	memcpy(q.qname, MSG(e, WIRE_HDR_LEN), q.qname_len);
	q.name_hash = wire_hash(q.qname, q.qname_len);
	q.qtype = wire_get16(MSG(e, n));
	q.qclass = wire_get16(MSG(e, n + 2));
	q.do_bit = (e->flags & FLAG_DO) ? 1 : 0;
	q.cd_bit = (e->flags & FLAG_CD) ? 1 : 0;
	return cache_key(&q);
}

/* Replaces the table with one of @slots slots holding every live entry. Under the lock. */
static int table_rebuild(struct cache *c, size_t slots)
{
	struct cache_table *old = atomic_load(&c->table), *t = table_new(slots);

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i <= old->mask; i++) {
		uint64_t v = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
		if (slot_live(v))
			table_place(t, slot_entry(v), entry_key(slot_entry(v)));
	}
	atomic_store_explicit(&c->table, t, memory_order_release);
	atomic_fetch_add(&c->bytes, table_cost(slots));
	atomic_fetch_sub(&c->bytes, table_cost(old->mask + 1));
	c->hand &= t->mask;
	c->sweep &= t->mask;
	retire(c, old);
	return 0;
}

/* Removes the entry in slot @i of the current table. Under the lock. */
static void slot_remove(struct cache *c, struct cache_table *t, size_t i, struct cache_entry *e)
{
	atomic_store_explicit(&t->slot[i], SLOT_TOMB, memory_order_release);
	atomic_fetch_sub(&c->bytes, entry_cost(e));
	atomic_fetch_sub(&c->entries[(e->flags & FLAG_DENIAL) ? 1 : 0], 1);
	c->live--;
	retire(c, e);
}

static bool past_stale_window(const struct cache *c, const struct cache_entry *e, uint32_t now)
{
	return (int32_t)(now - e->expire) >= (int32_t)c->stale_window;
}

/* CLOCK: frees room for @need more bytes and brings the entry count to at most @max_live.
 * Under the lock. */
static void evict(struct cache *c, uint64_t need, size_t max_live, uint32_t now)
{
	struct cache_table *t = atomic_load(&c->table);
	size_t steps = 2 * (t->mask + 1);

	while ((atomic_load(&c->bytes) + need > c->max_bytes || c->live > max_live) &&
	       c->live > 0 && steps--) {
		/* The hand visits the slots in a stride order (a permutation: the stride is
		 * odd), not one after another. Evicting neighbouring slots in turn would leave
		 * the region ahead of the hand ever denser while new entries land everywhere,
		 * until linear probing met runs of 100,000 slots and more (2 ms a lookup). */
		size_t i = (size_t)(c->hand * HAND_STRIDE) & t->mask;
		c->hand = (c->hand + 1) & t->mask;
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!slot_live(v))
			continue;
		struct cache_entry *e = slot_entry(v);
		bool expired = (int32_t)(now - e->expire) >= 0;
		if (!expired && (atomic_load_explicit(&e->state, memory_order_relaxed) & STATE_REF)) {
			atomic_fetch_and_explicit(&e->state, (uint8_t)~STATE_REF,
						  memory_order_relaxed);
			continue;
		}
		atomic_fetch_add(&c->evictions[(e->flags & FLAG_DENIAL) ? 1 : 0], 1);
		slot_remove(c, t, i, e);
	}
}

int cache_insert(struct cache *c, const struct wire_query *q, uint64_t key, const uint8_t *msg,
		 const struct reply_canon *rc, uint32_t now)
{
	struct cache_entry *e;
	struct cache_table *t;
	int r = 0;

	if (rc->ttl == 0 || rc->nttl > REPLY_MAX_TTL_OFFS)
		return 0;
	if (rc->len < WIRE_HDR_LEN)
		return -EINVAL;
	e = malloc(offsetof(struct cache_entry, data) + rc->len - 2 + 2u * rc->nttl);
	if (!e)
		return -ENOMEM;
	e->inserted = now;
	e->expire = now + rc->ttl;
	e->len = rc->len;
	e->nttl = (uint8_t)rc->nttl;
	e->flags = (uint8_t)(key_flags(q) | (rc->kind == REPLY_DENIAL ? FLAG_DENIAL : 0));
	atomic_init(&e->state, 0);
	memcpy(e->data, msg + 2, rc->len - 2u);
	memcpy(e->data + rc->len - 2, rc->ttl_off, 2u * rc->nttl);
	uint64_t cost = entry_cost(e);
	if (cost > c->max_bytes / 4) {
		free(e);
		return -E2BIG;
	}

	pthread_mutex_lock(&c->lock);
	t = atomic_load(&c->table);
	/* Replace an entry with the same key. */
	for (size_t i = (size_t)key & t->mask;; i = (i + 1) & t->mask) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (v == SLOT_EMPTY)
			break;
		if (slot_live(v) && ((v ^ key) & SLOT_TAG) == 0 && entry_matches(slot_entry(v), q)) {
			slot_remove(c, t, i, slot_entry(v));
			break;
		}
	}
	/* Keep at least an eighth of the slots empty so that probes end quickly (a probe reads
	 * slots only, 8 to a cache line): grow the table while it fits in half the budget, else
	 * rebuild it in place. */
	if ((t->used + 1) * 8 > (t->mask + 1) * 7) {
		size_t slots = t->mask + 1;
		if ((c->live + 1) * 8 > slots * 5 && table_cost(slots * 2) <= c->max_bytes / 2)
			slots *= 2;
		else if ((c->live + 1) * 8 > slots * 5)
			evict(c, 0, slots * 5 / 8 - 1, now);
		if (table_rebuild(c, slots) < 0) {
			free(e);
			r = -ENOMEM;
			goto out;
		}
		t = atomic_load(&c->table);
	}
	/* The bytes bound counts the table too, so evict after any growth. */
	evict(c, cost, SIZE_MAX, now);
	table_place(t, e, key);
	c->live++;
	atomic_fetch_add(&c->bytes, cost);
	atomic_fetch_add(&c->entries[rc->kind == REPLY_DENIAL ? 1 : 0], 1);
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

void cache_sweep(struct cache *c, uint32_t now, unsigned budget)
{
	pthread_mutex_lock(&c->lock);
	struct cache_table *t = atomic_load(&c->table);
	for (unsigned n = 0; n < budget && n <= t->mask; n++) {
		size_t i = c->sweep;
		c->sweep = (c->sweep + 1) & t->mask;
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (slot_live(v) && past_stale_window(c, slot_entry(v), now)) {
			slot_remove(c, t, i, slot_entry(v));
			atomic_fetch_add(&c->expired, 1);
		}
	}
	flush_retired(c);
	pthread_mutex_unlock(&c->lock);
}

void cache_get_stats(struct cache *c, struct cache_stats *st)
{
	st->entries[0] = atomic_load(&c->entries[0]);
	st->entries[1] = atomic_load(&c->entries[1]);
	st->bytes = atomic_load(&c->bytes);
	st->evicted[0] = atomic_load(&c->evictions[0]);
	st->evicted[1] = atomic_load(&c->evictions[1]);
	st->evictions = st->evicted[0] + st->evicted[1];
	st->expired = atomic_load(&c->expired);
	st->slots = atomic_load(&c->table)->mask + 1;
}

size_t cache_longest_run(struct cache *c)
{
	size_t run = 0, longest = 0;

	pthread_mutex_lock(&c->lock);
	struct cache_table *t = atomic_load(&c->table);
	for (size_t i = 0; i <= t->mask; i++) {
		uint64_t v = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		run = v == SLOT_EMPTY ? 0 : run + 1;
		longest = run > longest ? run : longest;
	}
	pthread_mutex_unlock(&c->lock);
	return longest;
}
