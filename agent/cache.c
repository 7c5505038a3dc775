/* The answer cache. See cache.h for the design. */
#include "agent/cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/reply.h"
#include "agent/wire.h"

#define MIN_SLOTS     256
#define RETIRE_BATCH  126
#define ENTRY_OVERHEAD 16 /* what malloc adds to each block, roughly */

#define FLAG_DO     0x01
#define FLAG_CD     0x02
#define FLAG_DENIAL 0x04

#define STATE_REF      0x01 /* used since the CLOCK hand last passed */
#define STATE_PREFETCH 0x02 /* a refresh was started */

struct cache_entry {
	uint32_t tag;       /* high half of the key */
	uint32_t inserted;  /* time of insertion */
	uint32_t expire;    /* first second it is stale */
	uint16_t len;       /* message bytes */
	uint8_t nttl;       /* TTL offsets after the message */
	uint8_t flags;      /* FLAG_* */
	_Atomic uint8_t state; /* STATE_* */
	uint8_t data[];     /* message, then nttl native-endian uint16 offsets (unaligned) */
};

/* A slot array. Never shrinks in place: a rebuild makes a new one. */
struct cache_table {
	struct rcu_head rcu;
	size_t mask;
	size_t used; /* live entries plus tombstones */
	_Atomic(struct cache_entry *) slot[];
};

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

/* A removed slot: readers probe past it, inserts may reuse it. */
#define TOMBSTONE ((struct cache_entry *)(uintptr_t)1)

static size_t entry_size(const struct cache_entry *e)
{
	return sizeof(struct cache_entry) + e->len + 2u * e->nttl;
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
		struct cache_entry *e = atomic_load(&t->slot[i]);
		if (e && e != TOMBSTONE)
			free(e);
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
	uint64_t k = q->name_hash ^ ((uint64_t)q->qtype << 32 | (uint64_t)q->qclass << 16 |
				     (uint64_t)q->do_bit << 1 | q->cd_bit);
	/* mix (the finaliser of MurmurHash3), so that type bits reach the slot index */
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

static uint8_t key_flags(const struct wire_query *q)
{
	return (uint8_t)((q->do_bit ? FLAG_DO : 0) | (q->cd_bit ? FLAG_CD : 0));
}

static bool entry_matches(const struct cache_entry *e, const struct wire_query *q, uint32_t tag)
{
	size_t qe = (size_t)WIRE_HDR_LEN + q->qname_len;

	return e->tag == tag && (e->flags & (FLAG_DO | FLAG_CD)) == key_flags(q) &&
	       e->len >= qe + 4 && memcmp(e->data + WIRE_HDR_LEN, q->qname, q->qname_len) == 0 &&
	       wire_get16(e->data + qe) == q->qtype && wire_get16(e->data + qe + 2) == q->qclass;
}

int cache_lookup(struct cache *c, const struct wire_query *q, uint64_t key, uint32_t now,
		 bool udp, bool allow_stale, uint8_t *out, size_t cap, struct cache_hit *hit)
{
	struct cache_table *t = atomic_load_explicit(&c->table, memory_order_acquire);
	uint32_t tag = (uint32_t)(key >> 32);
	size_t i = (size_t)key & t->mask;
	struct cache_entry *e;

	for (;;) {
		e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
		if (!e)
			return 0;
		if (e != TOMBSTONE && entry_matches(e, q, tag))
			break;
		i = (i + 1) & t->mask;
	}
	bool stale = (int32_t)(now - e->expire) >= 0;
	if (stale && (!allow_stale || (int32_t)(now - e->expire) >= (int32_t)c->stale_window))
		return 0;
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
	return reply_for_client(e->data, e->len, e->data + e->len, e->nttl, now - e->inserted,
				stale, q, udp, out, cap);
}

/* Puts @e (key @key) in the first free slot of @t. The caller checked there is room. */
static void table_place(struct cache_table *t, struct cache_entry *e, uint64_t key)
{
	size_t i = (size_t)key & t->mask;

	for (;;) {
		struct cache_entry *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!s || s == TOMBSTONE) {
			if (!s)
				t->used++;
			atomic_store_explicit(&t->slot[i], e, memory_order_release);
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
	while (e->data[n])
		n += 1 + (size_t)e->data[n];
	n++;
	q.qname_len = (uint16_t)(n - WIRE_HDR_LEN);
	memcpy(q.qname, e->data + WIRE_HDR_LEN, q.qname_len);
	q.name_hash = wire_hash(q.qname, q.qname_len);
	q.qtype = wire_get16(e->data + n);
	q.qclass = wire_get16(e->data + n + 2);
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
		struct cache_entry *e = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
		if (e && e != TOMBSTONE)
			table_place(t, e, entry_key(e));
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
	atomic_store_explicit(&t->slot[i], TOMBSTONE, memory_order_release);
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
		size_t i = c->hand;
		c->hand = (c->hand + 1) & t->mask;
		struct cache_entry *e = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!e || e == TOMBSTONE)
			continue;
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
	uint32_t tag = (uint32_t)(key >> 32);
	int r = 0;

	if (rc->ttl == 0 || rc->nttl > REPLY_MAX_TTL_OFFS)
		return 0;
	e = malloc(sizeof *e + rc->len + 2u * rc->nttl);
	if (!e)
		return -ENOMEM;
	e->tag = tag;
	e->inserted = now;
	e->expire = now + rc->ttl;
	e->len = rc->len;
	e->nttl = (uint8_t)rc->nttl;
	e->flags = (uint8_t)(key_flags(q) | (rc->kind == REPLY_DENIAL ? FLAG_DENIAL : 0));
	atomic_init(&e->state, 0);
	memcpy(e->data, msg, rc->len);
	memcpy(e->data + rc->len, rc->ttl_off, 2u * rc->nttl);
	uint64_t cost = entry_cost(e);
	if (cost > c->max_bytes / 4) {
		free(e);
		return -E2BIG;
	}

	pthread_mutex_lock(&c->lock);
	t = atomic_load(&c->table);
	/* Replace an entry with the same key. */
	for (size_t i = (size_t)key & t->mask;; i = (i + 1) & t->mask) {
		struct cache_entry *s = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (!s)
			break;
		if (s != TOMBSTONE && entry_matches(s, q, tag)) {
			slot_remove(c, t, i, s);
			break;
		}
	}
	/* Keep at least a quarter of the slots empty so that probes end quickly: grow the
	 * table while it fits in half the budget, else rebuild it in place. */
	if ((t->used + 1) * 4 > (t->mask + 1) * 3) {
		size_t slots = t->mask + 1;
		if ((c->live + 1) * 2 > slots && table_cost(slots * 2) <= c->max_bytes / 2)
			slots *= 2;
		else if ((c->live + 1) * 2 > slots)
			evict(c, 0, slots / 2 - 1, now);
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
		struct cache_entry *e = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
		if (e && e != TOMBSTONE && past_stale_window(c, e, now)) {
			slot_remove(c, t, i, e);
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
