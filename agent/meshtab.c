/* The mesh table: staging, publication and local answers. See meshtab.h.
 *
 * A view holds three persistent maps (meshmap.h) of immutable records:
 *  - names: exact hosts and empty non-terminals, keyed by wire_hash of the lowercase wire
 *    name (what wire_parse_query leaves in q->name_hash). A host record carries its answer
 *    RRs pre-rendered: owner = pointer to offset 12 (the question as the client sent it),
 *    class IN, TTL_MESH, so an answer is one memcpy. refs counts the hosts below the name
 *    (a name with refs > 0 exists: NODATA, not NXDOMAIN, RFC 8020).
 *  - wilds: wildcard suffixes S of "*.S", keyed by the suffix hash (below), same payload.
 *  - zones: given and learned zones, keyed by the suffix hash; refs counts the hosts that
 *    taught a learned zone, MT_GIVEN marks --zone.
 * The suffix hash is FNV-1a over the wire bytes of a name taken from its end, so hashing
 * from the last byte of the query yields the hash of each suffix in turn; it is computed
 * lazily, only as deep as a probe needs. The last label's hash comes first and is checked
 * against a 1024-bit Bloom filter of the zones' last labels, so a query in no zone (almost
 * every query) costs about as many multiplications as its last label has bytes. Zones and
 * wildcards are only probed at depths (label counts) where one exists; an exact host needs
 * no suffix hash beyond the last label (its key is q->name_hash).
 *
 * Record cost: 24-byte header + wire name + 16 bytes per IPv4 + 28 per IPv6, rounded up to
 * 8; a bucket adds 8 bytes and its malloc overhead, a bucket slot 8 bytes. A host like
 * "svc-123.ns-45.cluster-2" with one IPv4 takes 72 bytes of record. Measured with
 * bench/meshtab_bench (100,000 such hosts): 85 bytes per host of table nodes, 119 bytes per
 * host of RSS with malloc overhead; one changed host publishes by copying one bucket, one
 * 2 KiB page and the 4 KiB directory.
 */
#include "agent/meshtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/log.h"
#include "agent/meshmap.h"
#include "agent/wire.h"

#define MT_LEARNED 0x01 /* host record: taught its last label as a zone */
#define MT_GIVEN   0x02 /* zone record: given with --zone */

#define BLOOM_BITS 1024
#define DEPTHS	   128 /* label counts 0..127 */

#define RR_A_LEN    16
#define RR_AAAA_LEN 28
#define RR_SOA_LEN  54

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

struct meshview {
	uint64_t generation;
	uint64_t seed; /* start of the suffix hash */
	uint32_t ttl;
	uint32_t neg_ttl;
	bool synced;
	size_t hosts;
	size_t wildcards;
	size_t zones;
	uint64_t bloom[BLOOM_BITS / 64];
	uint64_t zone_depths[DEPTHS / 64];
	uint64_t wild_depths[DEPTHS / 64];
	unsigned zone_max_depth; /* labels of the deepest zone */
	unsigned wild_max_depth; /* labels of the deepest wildcard suffix */
	struct meshmap names;
	struct meshmap wilds;
	struct meshmap zonemap;
};

/* What one publish leaves to free after a grace period. */
struct retire_batch {
	struct rcu_head rcu;
	struct meshview *view;
	size_t n;
	void *nodes[];
};

struct meshtab {
	struct meshview *view; /* published: readers rcu_dereference it */
	struct meshview stage; /* the next view; its maps share every unchanged node */
	struct meshmap_stage st;
	bool dirty;
	bool auto_zones;
	uint64_t publishes;
	struct meshmap_stats last;
	uint32_t bloom_refs[BLOOM_BITS];
	uint32_t zone_depth_refs[DEPTHS];
	uint32_t wild_depth_refs[DEPTHS];
	uint8_t *scratch; /* a record under construction */
};

#define SCRATCH_LEN                                                                                \
	(sizeof(struct mm_rec) + WIRE_MAX_NAME + MESHTAB_MAX_ADDRS * (RR_A_LEN + RR_AAAA_LEN) + 8)


/* Suffix hash of wire name @name (@len bytes, root label included). */
static uint64_t suffix_hash(uint64_t seed, const uint8_t *name, size_t len)
{
	uint64_t h = seed;

	for (size_t i = len - 1; i-- > 0;)
		h = (h ^ name[i]) * FNV_PRIME;
	return wire_mix64(h);
}

static inline bool bit_test(const uint64_t *set, unsigned bit)
{
	return (set[bit / 64] >> (bit % 64)) & 1;
}

static inline void bit_put(uint64_t *set, unsigned bit, bool on)
{
	if (on)
		set[bit / 64] |= (uint64_t)1 << (bit % 64);
	else
		set[bit / 64] &= ~((uint64_t)1 << (bit % 64));
}

static inline unsigned bloom_a(uint64_t k)
{
	return (unsigned)(k % BLOOM_BITS);
}

static inline unsigned bloom_b(uint64_t k)
{
	return (unsigned)((k >> 20) % BLOOM_BITS);
}

/* Number of labels of wire name @name and the offset of its last label. */
static unsigned name_labels(const uint8_t *name, size_t *last)
{
	size_t off = 0;
	unsigned n = 0;

	*last = 0;
	while (name[off]) {
		*last = off;
		off += 1 + (size_t)name[off];
		n++;
	}
	return n;
}

/* Parses "a.b.c" or "*.b.c" into lowercase wire format. */
static int parse_host(const char *text, uint8_t *name, bool *wild)
{
	int len;

	*wild = text[0] == '*' && text[1] == '.';
	len = wire_name_from_text(*wild ? text + 2 : text, name, WIRE_MAX_NAME);
	if (len <= 1) /* the root is no host */
		return -EINVAL;
	return len;
}

/* Builds in the scratch buffer a record with key @name and no payload. */
static struct mm_rec *bare_rec(struct meshtab *t, uint64_t hash, const uint8_t *name, size_t len,
			       uint32_t refs, uint8_t flags)
{
	struct mm_rec *r = (struct mm_rec *)(void *)t->scratch;

	memset(r, 0, sizeof(*r));
	r->hash = hash;
	r->size = (uint32_t)meshmap_rec_size(len, 0);
	r->name_len = (uint8_t)len;
	r->refs = refs;
	r->flags = flags;
	memcpy(r->data, name, len);
	return r;
}

/* ---- zones ---- */

static void depth_ref(uint32_t *refs, uint64_t *mask, unsigned depth, int delta)
{
	if (depth >= DEPTHS)
		return;
	refs[depth] = (uint32_t)((int64_t)refs[depth] + delta);
	bit_put(mask, depth, refs[depth] > 0);
}

static void bloom_ref(struct meshtab *t, const uint8_t *zone, int delta)
{
	size_t last;
	unsigned labels = name_labels(zone, &last);
	uint64_t k;
	unsigned a, b;

	if (labels == 0)
		return;
	k = suffix_hash(t->stage.seed, zone + last, 1 + (size_t)zone[last] + 1);
	a = bloom_a(k);
	b = bloom_b(k);
	t->bloom_refs[a] = (uint32_t)((int64_t)t->bloom_refs[a] + delta);
	t->bloom_refs[b] = (uint32_t)((int64_t)t->bloom_refs[b] + delta);
	bit_put(t->stage.bloom, a, t->bloom_refs[a] > 0);
	bit_put(t->stage.bloom, b, t->bloom_refs[b] > 0);
}

/* Adds a reference to zone @zone: @given marks a --zone, else a learned reference. */
static int zone_ref(struct meshtab *t, const uint8_t *zone, size_t len, bool given)
{
	uint64_t h = suffix_hash(t->stage.seed, zone, len);
	struct mm_rec *r;
	size_t last;
	int err;

	r = meshmap_edit(&t->stage.zonemap, &t->st, h, zone, len, &err);
	if (r) {
		if (given)
			r->flags |= MT_GIVEN;
		else
			r->refs++;
		return 0;
	}
	if (err != -ENOENT)
		return err;
	r = bare_rec(t, h, zone, len, given ? 0 : 1, given ? MT_GIVEN : 0);
	r->aux = (uint16_t)name_labels(zone, &last);
	err = meshmap_put(&t->stage.zonemap, &t->st, r);
	if (err < 0)
		return err;
	bloom_ref(t, zone, 1);
	depth_ref(t->zone_depth_refs, t->stage.zone_depths, r->aux, 1);
	t->stage.zones++;
	return 0;
}

static void zone_unref(struct meshtab *t, const uint8_t *zone, size_t len)
{
	uint64_t h = suffix_hash(t->stage.seed, zone, len);
	struct mm_rec *r;
	unsigned depth;
	int err;

	r = meshmap_edit(&t->stage.zonemap, &t->st, h, zone, len, &err);
	if (!r || r->refs == 0)
		return;
	if (--r->refs > 0 || (r->flags & MT_GIVEN))
		return;
	depth = r->aux;
	if (meshmap_del(&t->stage.zonemap, &t->st, h, zone, len) < 0)
		return; /* out of memory: the zone stays, harmless */
	bloom_ref(t, zone, -1);
	depth_ref(t->zone_depth_refs, t->stage.zone_depths, depth, -1);
	t->stage.zones--;
}

/* The zone a host teaches: its last label. */
static void learned_zone(const uint8_t *name, uint8_t *zone, size_t *len)
{
	size_t last;

	name_labels(name, &last);
	*len = 1 + (size_t)name[last] + 1;
	memcpy(zone, name + last, *len);
}

/* ---- names and empty non-terminals ---- */

static int ent_ref(struct meshtab *t, const uint8_t *name, size_t len, int delta)
{
	uint64_t h = wire_hash(name, len);
	struct mm_rec *r;
	int err;

	r = meshmap_edit(&t->stage.names, &t->st, h, name, len, &err);
	if (r) {
		r->refs = (uint32_t)((int64_t)r->refs + delta);
		if (r->refs == 0 && r->n4 + r->n6 == 0)
			return meshmap_del(&t->stage.names, &t->st, h, name, len);
		return 0;
	}
	if (err != -ENOENT || delta < 0)
		return err;
	r = bare_rec(t, h, name, len, 1, 0);
	return meshmap_put(&t->stage.names, &t->st, r);
}

/* Counts the names above @name (a host, or the S of "*.S" when @wild) as existing. */
static int ancestors_ref(struct meshtab *t, const uint8_t *name, size_t len, bool wild, int delta)
{
	size_t off = wild ? 0 : 1 + (size_t)name[0];
	int r;

	for (; name[off]; off += 1 + (size_t)name[off]) {
		r = ent_ref(t, name + off, len - off, delta);
		if (r < 0)
			return r;
	}
	return 0;
}

static uint8_t *render_rr(uint8_t *p, uint16_t type, uint32_t ttl, const void *rdata,
			  uint16_t rdlen)
{
	p[0] = 0xc0; /* owner: the question name at offset 12 */
	p[1] = WIRE_HDR_LEN;
	wire_put16(p + 2, type);
	wire_put16(p + 4, WIRE_CLASS_IN);
	wire_put32(p + 6, ttl);
	wire_put16(p + 10, rdlen);
	memcpy(p + 12, rdata, rdlen);
	return p + 12 + rdlen;
}

static bool same_payload(const struct mm_rec *a, const struct mm_rec *b)
{
	return a->n4 == b->n4 && a->n6 == b->n6 && a->flags == b->flags && a->size == b->size &&
	       memcmp(a->data, b->data, a->size - sizeof(*a)) == 0;
}

int meshtab_host_set(struct meshtab *t, const char *host, const struct in_addr *v4, size_t n4,
		     const struct in6_addr *v6, size_t n6, bool learn_zone)
{
	uint8_t name[WIRE_MAX_NAME], zone[WIRE_MAX_NAME];
	struct meshmap *map;
	const struct mm_rec *old;
	struct mm_rec *r = (struct mm_rec *)(void *)t->scratch;
	bool wild, was_host, was_learned, learned;
	size_t zlen, i;
	uint8_t *p;
	int len, err;

	if (n4 == 0 && n6 == 0) {
		err = meshtab_host_del(t, host);
		return err == -ENOENT ? 0 : err;
	}
	len = parse_host(host, name, &wild);
	if (len < 0)
		return len;
	n4 = n4 > MESHTAB_MAX_ADDRS ? MESHTAB_MAX_ADDRS : n4;
	n6 = n6 > MESHTAB_MAX_ADDRS ? MESHTAB_MAX_ADDRS : n6;
	map = wild ? &t->stage.wilds : &t->stage.names;

	memset(r, 0, sizeof(*r));
	r->hash =
		wild ? suffix_hash(t->stage.seed, name, (size_t)len) : wire_hash(name, (size_t)len);
	r->name_len = (uint8_t)len;
	r->n4 = (uint16_t)n4;
	r->n6 = (uint16_t)n6;
	learned = learn_zone && t->auto_zones;
	r->flags = learned ? MT_LEARNED : 0;
	r->size = (uint32_t)meshmap_rec_size((size_t)len, n4 * RR_A_LEN + n6 * RR_AAAA_LEN);
	memset(r->data, 0, r->size - sizeof(*r));
	memcpy(r->data, name, (size_t)len);
	p = r->data + len;
	for (i = 0; i < n4; i++)
		p = render_rr(p, WIRE_TYPE_A, t->stage.ttl, &v4[i], 4);
	for (i = 0; i < n6; i++)
		p = render_rr(p, WIRE_TYPE_AAAA, t->stage.ttl, &v6[i], 16);

	old = meshmap_find(map, r->hash, name, (size_t)len);
	was_host = old && old->n4 + old->n6 > 0;
	was_learned = was_host && (old->flags & MT_LEARNED);
	if (old) {
		r->refs = old->refs;
		if (was_host && same_payload(old, r))
			return 0;
	}
	err = meshmap_put(map, &t->st, r);
	if (err < 0)
		return err;
	t->dirty = true;
	if (!was_host) {
		if (wild) {
			t->stage.wildcards++;
			depth_ref(t->wild_depth_refs, t->stage.wild_depths,
				  name_labels(name, &zlen), 1);
		} else {
			t->stage.hosts++;
		}
		err = ancestors_ref(t, name, (size_t)len, wild, 1);
		if (err < 0)
			return err;
	}
	/* (the scratch record is reused below) */
	if (was_learned != learned) {
		learned_zone(name, zone, &zlen);
		if (was_learned)
			zone_unref(t, zone, zlen);
		else
			return zone_ref(t, zone, zlen, false);
	}
	return 0;
}

int meshtab_host_del(struct meshtab *t, const char *host)
{
	uint8_t name[WIRE_MAX_NAME], zone[WIRE_MAX_NAME];
	struct meshmap *map;
	const struct mm_rec *old;
	struct mm_rec *r;
	bool wild, learned;
	uint64_t h;
	size_t zlen;
	int len, err;

	len = parse_host(host, name, &wild);
	if (len < 0)
		return len;
	map = wild ? &t->stage.wilds : &t->stage.names;
	h = wild ? suffix_hash(t->stage.seed, name, (size_t)len) : wire_hash(name, (size_t)len);
	old = meshmap_find(map, h, name, (size_t)len);
	if (!old || old->n4 + old->n6 == 0)
		return -ENOENT;
	learned = old->flags & MT_LEARNED;
	if (old->refs > 0) {
		/* still an ancestor of other hosts: keep it as an empty non-terminal */
		r = bare_rec(t, h, name, (size_t)len, old->refs, 0);
		err = meshmap_put(map, &t->st, r);
	} else {
		err = meshmap_del(map, &t->st, h, name, (size_t)len);
	}
	if (err < 0)
		return err;
	t->dirty = true;
	if (wild) {
		t->stage.wildcards--;
		depth_ref(t->wild_depth_refs, t->stage.wild_depths, name_labels(name, &zlen), -1);
	} else {
		t->stage.hosts--;
	}
	(void)ancestors_ref(t, name, (size_t)len, wild, -1);
	if (learned) {
		learned_zone(name, zone, &zlen);
		zone_unref(t, zone, zlen);
	}
	return 0;
}

void meshtab_set_synced(struct meshtab *t)
{
	if (!t->stage.synced) {
		t->stage.synced = true;
		t->dirty = true;
	}
}

bool meshtab_dirty(const struct meshtab *t)
{
	return t->dirty;
}

/* ---- publication ---- */

static void free_batch(struct rcu_head *head)
{
	struct retire_batch *b = caa_container_of(head, struct retire_batch, rcu);

	for (size_t i = 0; i < b->n; i++)
		free(b->nodes[i]);
	free(b->view);
	free(b);
}

static unsigned max_depth(const uint32_t *refs)
{
	unsigned d = DEPTHS;

	while (d-- > 0)
		if (refs[d])
			return d;
	return 0;
}

int meshtab_publish(struct meshtab *t)
{
	struct meshview *nv, *old = t->view;
	struct retire_batch *b;

	if (!t->dirty)
		return 0;
	nv = malloc(sizeof(*nv));
	b = malloc(sizeof(*b) + t->st.nretired * sizeof(void *));
	if (!nv || !b) {
		free(nv);
		free(b);
		return -ENOMEM;
	}
	t->stage.zone_max_depth = max_depth(t->zone_depth_refs);
	t->stage.wild_max_depth = max_depth(t->wild_depth_refs);
	*nv = t->stage;
	nv->generation = old->generation + 1;
	t->stage.generation = nv->generation;
	b->view = old;
	b->n = t->st.nretired;
	if (b->n)
		memcpy(b->nodes, t->st.retired, b->n * sizeof(void *));
	rcu_assign_pointer(t->view, nv);
	urcu_memb_call_rcu(&b->rcu, free_batch);

	t->last = t->st.stats;
	memset(&t->st.stats, 0, sizeof(t->st.stats));
	t->st.nretired = 0;
	t->st.epoch = (uint32_t)nv->generation + 1;
	t->publishes++;
	t->dirty = false;
	return 0;
}

const struct meshview *meshtab_view(struct meshtab *t)
{
	return rcu_dereference(t->view);
}

void meshview_get_info(const struct meshview *v, struct meshview_info *info)
{
	info->generation = v->generation;
	info->hosts = v->hosts;
	info->wildcards = v->wildcards;
	info->zones = v->zones;
	info->synced = v->synced;
}

void meshtab_get_stats(const struct meshtab *t, struct meshtab_stats *s)
{
	const struct meshview *v = &t->stage;

	s->publishes = t->publishes;
	s->buckets_copied = t->last.buckets_copied;
	s->pages_copied = t->last.pages_copied;
	s->dirs_copied = t->last.dirs_copied;
	s->bytes_copied = t->last.bytes_copied;
	s->rehashes = t->last.rehashes;
	s->records = v->names.count + v->wilds.count + v->zonemap.count;
	s->record_bytes = v->names.bytes + v->wilds.bytes + v->zonemap.bytes;
	s->memory =
		meshmap_memory(&v->names) + meshmap_memory(&v->wilds) + meshmap_memory(&v->zonemap);
}

/* ---- life cycle ---- */

struct meshtab *meshtab_new(const struct meshtab_opts *opts)
{
	struct meshtab *t = calloc(1, sizeof(*t));
	uint8_t zone[WIRE_MAX_NAME];
	int len;

	if (!t)
		return NULL;
	t->scratch = malloc(SCRATCH_LEN);
	if (!t->scratch)
		goto fail;
	t->st.epoch = 1;
	t->auto_zones = opts->auto_zones;
	t->stage.seed = FNV_OFFSET ^ wire_hash("meshtab suffix", 14);
	t->stage.ttl = opts->ttl;
	t->stage.neg_ttl = opts->neg_ttl;
	if (meshmap_init(&t->stage.names, &t->st) < 0 ||
	    meshmap_init(&t->stage.wilds, &t->st) < 0 ||
	    meshmap_init(&t->stage.zonemap, &t->st) < 0)
		goto fail;
	for (size_t i = 0; i < opts->nzones; i++) {
		len = wire_name_from_text(opts->zones[i], zone, sizeof(zone));
		if (len <= 1) {
			log_error("mesh", "invalid zone '%s'", opts->zones[i]);
			goto fail;
		}
		if (zone_ref(t, zone, (size_t)len, true) < 0)
			goto fail;
	}
	t->view = malloc(sizeof(*t->view));
	if (!t->view)
		goto fail;
	t->stage.generation = 1;
	t->stage.zone_max_depth = max_depth(t->zone_depth_refs);
	*t->view = t->stage;
	t->st.epoch = 2;
	memset(&t->st.stats, 0, sizeof(t->st.stats));
	return t;
fail:
	meshmap_destroy(&t->stage.names);
	meshmap_destroy(&t->stage.wilds);
	meshmap_destroy(&t->stage.zonemap);
	free(t->scratch);
	free(t);
	return NULL;
}

void meshtab_free(struct meshtab *t)
{
	if (!t)
		return;
	urcu_memb_barrier();
	/* Every published node is either still in the staged maps or retired by this batch. */
	meshmap_stage_free_retired(&t->st);
	free(t->st.retired);
	meshmap_destroy(&t->stage.names);
	meshmap_destroy(&t->stage.wilds);
	meshmap_destroy(&t->stage.zonemap);
	free(t->view);
	free(t->scratch);
	free(t);
}

/* ---- answers (reader side: no allocation, no lock) ---- */

/* The zone SOA as an RR owned by the zone name inside the question (at @zone_off). */
static void put_soa(uint8_t *p, const struct meshview *v, unsigned zone_off)
{
	static const uint8_t names[] = { 2,   'n', 's', 3,   'd', 'n', 's', 0xc0, 0,   10,   'h',
					 'o', 's', 't', 'm', 'a', 's', 't', 'e',  'r', 0xc0, 0 };
	/* a compression pointer: 0xc000 | offset, the offset may pass 255 (long names) */
	uint16_t ptr = (uint16_t)(0xc000 | (WIRE_HDR_LEN + zone_off));

	wire_put16(p, ptr);
	wire_put16(p + 2, WIRE_TYPE_SOA);
	wire_put16(p + 4, WIRE_CLASS_IN);
	wire_put32(p + 6, v->neg_ttl);
	wire_put16(p + 10, sizeof(names) + 20);
	memcpy(p + 12, names, sizeof(names));
	wire_put16(p + 12 + 7, ptr);
	wire_put16(p + 12 + 20, ptr);
	p += 12 + sizeof(names);
	wire_put32(p, (uint32_t)v->generation);
	wire_put32(p + 4, 7200);
	wire_put32(p + 8, 1800);
	wire_put32(p + 12, 86400);
	wire_put32(p + 16, v->neg_ttl);
}

/* A reply with no answer and the zone SOA in authority: NODATA or NXDOMAIN. */
static int negative(const struct meshview *v, const struct wire_query *q, unsigned rcode,
		    unsigned zone_off, bool udp, uint8_t *out, size_t cap)
{
	int n = wire_write_reply_head(q, true, rcode, out, cap);

	if (n < 0)
		return n;
	if ((size_t)n + RR_SOA_LEN > cap)
		return -ENOSPC;
	put_soa(out + n, v, zone_off);
	wire_put16(out + 8, 1);
	return wire_finish_reply(q, out, (size_t)n + RR_SOA_LEN, cap, udp, WIRE_EDE_NONE, NULL);
}

/* A local answer from host or wildcard record @r. */
static int answer_host(const struct meshview *v, const struct wire_query *q, const struct mm_rec *r,
		       unsigned zone_off, bool udp, uint8_t *out, size_t cap)
{
	const uint8_t *rrs = r->data + r->name_len;
	size_t a_len = (size_t)r->n4 * RR_A_LEN, aaaa_len = (size_t)r->n6 * RR_AAAA_LEN;
	size_t off = 0, len = 0, limit;
	unsigned count = 0, rrset2 = 0;
	bool tc = false;
	int n;

	switch (q->qtype) {
	case WIRE_TYPE_A:
		off = 0, len = a_len, count = r->n4;
		break;
	case WIRE_TYPE_AAAA:
		off = a_len, len = aaaa_len, count = r->n6;
		break;
	case WIRE_TYPE_ANY:
		off = 0, len = a_len + aaaa_len, count = r->n4 + r->n6;
		rrset2 = r->n4 && r->n6 ? r->n6 : 0;
		break;
	default:
		break;
	}
	if (count == 0)
		return negative(v, q, WIRE_RCODE_NOERROR, zone_off, udp, out, cap);
	n = wire_write_reply_head(q, true, WIRE_RCODE_NOERROR, out, cap);
	if (n < 0)
		return n;
	/* Over UDP, keep whole RRsets within the client's limit (RFC 2181 section 9). */
	limit = udp ? (size_t)q->udp_limit - (q->edns ? (size_t)WIRE_OPT_LEN : 0) : cap;
	if ((size_t)n + len > limit) {
		tc = udp;
		if (rrset2 && (size_t)n + a_len <= limit) {
			len = a_len, count = r->n4;
		} else if (udp) {
			len = 0, count = 0;
		}
	}
	if ((size_t)n + len > cap)
		return -ENOSPC;
	memcpy(out + n, rrs + off, len);
	wire_put16(out + 6, (uint16_t)count);
	if (tc)
		out[2] |= WIRE_TC;
	return wire_finish_reply(q, out, (size_t)n + len, cap, udp, WIRE_EDE_NONE, NULL);
}

/* SOA or NS at the zone apex (the question name is the zone). */
static int answer_apex(const struct meshview *v, const struct wire_query *q, bool udp, uint8_t *out,
		       size_t cap)
{
	static const uint8_t ns_rdata[] = { 2, 'n', 's', 3, 'd', 'n', 's', 0xc0, WIRE_HDR_LEN };
	int n = wire_write_reply_head(q, true, WIRE_RCODE_NOERROR, out, cap);
	size_t len;

	if (n < 0)
		return n;
	if ((size_t)n + RR_SOA_LEN > cap)
		return -ENOSPC;
	if (q->qtype == WIRE_TYPE_SOA) {
		put_soa(out + n, v, 0);
		len = RR_SOA_LEN;
	} else {
		len = (size_t)(render_rr(out + n, WIRE_TYPE_NS, v->ttl, ns_rdata,
					 sizeof(ns_rdata)) -
			       (out + n));
	}
	wire_put16(out + 6, 1);
	return wire_finish_reply(q, out, (size_t)n + len, cap, udp, WIRE_EDE_NONE, NULL);
}

/* Suffix hashes of a query name, computed from the last label down only as far as asked. */
struct suffixes {
	const struct wire_query *q;
	uint64_t h;
	unsigned next; /* labels from here down are hashed */
	uint64_t sh[WIRE_MAX_LABELS];
};

static uint64_t suffix_at(struct suffixes *s, unsigned i)
{
	const uint8_t *qn = s->q->qname;
	size_t end = s->next < s->q->nlabels ? s->q->label_off[s->next] : s->q->qname_len - 1u;

	while (s->next > i) {
		s->next--;
		for (size_t p = end; p-- > s->q->label_off[s->next];)
			s->h = (s->h ^ qn[p]) * FNV_PRIME;
		end = s->q->label_off[s->next];
		s->sh[s->next] = wire_mix64(s->h);
	}
	return s->sh[i];
}

/* Finds the record of the suffix of the query starting at label @i in @m. */
static const struct mm_rec *find_suffix(const struct meshmap *m, struct suffixes *s, unsigned i)
{
	const struct wire_query *q = s->q;

	return meshmap_find(m, suffix_at(s, i), q->qname + q->label_off[i],
			    q->qname_len - q->label_off[i]);
}

/* The closest zone enclosing the name of @sfx (and its label index in *@zi), or NULL. */
static const struct mm_rec *find_zone(const struct meshview *v, struct suffixes *sfx, unsigned *zi)
{
	unsigned nl = sfx->q->nlabels, i, lowest;
	const struct mm_rec *zone = NULL, *z;
	uint64_t k;

	/* No zone at all (no mesh, or not synced yet): nothing to hash. */
	if (nl == 0 || sfx->q->qname_len == 0 || v->zone_max_depth == 0)
		return NULL;
	/* The last label must pass the filter of the zones' last labels. */
	k = suffix_at(sfx, nl - 1);
	if (!bit_test(v->bloom, bloom_a(k)) || !bit_test(v->bloom, bloom_b(k)))
		return NULL;
	/* The closest enclosing zone: probe the depths that hold zones, down to the deepest. */
	lowest = nl > v->zone_max_depth ? nl - v->zone_max_depth : 0;
	for (i = nl; i-- > lowest;) {
		if (!bit_test(v->zone_depths, nl - i))
			continue;
		z = find_suffix(&v->zonemap, sfx, i);
		if (z) {
			zone = z;
			*zi = i;
		}
	}
	return zone;
}

bool meshview_in_zone(const struct meshview *v, const uint8_t *name, size_t len)
{
	struct wire_query q;
	struct suffixes sfx;
	unsigned zi = 0;
	size_t off = 0;

	if (len == 0 || len > WIRE_MAX_NAME)
		return false;
	memcpy(q.qname, name, len);
	q.qname_len = (uint16_t)len;
	q.nlabels = 0;
	while (off < len && name[off] && q.nlabels < WIRE_MAX_LABELS) {
		q.label_off[q.nlabels++] = (uint8_t)off;
		off += 1 + (size_t)name[off];
	}
	if (off + 1 != len)
		return false;
	q.label_off[q.nlabels] = (uint8_t)off;
	sfx.q = &q;
	sfx.h = v->seed;
	sfx.next = q.nlabels;
	return find_zone(v, &sfx, &zi) != NULL;
}

int meshview_answer(const struct meshview *v, const struct wire_query *q, bool udp, uint8_t *out,
		    size_t cap, enum mesh_result *res)
{
	unsigned nl = q->nlabels, zi = 0, i, lowest;
	struct suffixes sfx;
	const struct mm_rec *zone, *r;
	int n;

	*res = MESH_NOT_LOCAL;
	sfx.q = q;
	sfx.h = v->seed;
	sfx.next = nl;
	zone = find_zone(v, &sfx, &zi);
	if (!zone)
		return 0;
	if (!v->synced && (zone->flags & MT_GIVEN)) {
		*res = MESH_NOT_READY;
		n = wire_write_reply_head(q, false, WIRE_RCODE_SERVFAIL, out, cap);
		if (n < 0)
			return n;
		return wire_finish_reply(q, out, (size_t)n, cap, udp, WIRE_EDE_NOT_READY,
					 "mesh table not synced");
	}
	if (zi == 0 && (q->qtype == WIRE_TYPE_SOA || q->qtype == WIRE_TYPE_NS)) {
		*res = MESH_NODATA;
		return answer_apex(v, q, udp, out, cap);
	}
	/* Rule 1: an exact host. */
	r = meshmap_find(&v->names, q->name_hash, q->qname, q->qname_len);
	if (r && r->n4 + r->n6 > 0) {
		*res = MESH_HOST;
		return answer_host(v, q, r, q->label_off[zi], udp, out, cap);
	}
	/* Rule 2: the most specific wildcard strictly above the name. */
	lowest = nl > v->wild_max_depth ? nl - v->wild_max_depth : 1;
	for (i = lowest; i < nl; i++) {
		const struct mm_rec *w;
		if (!bit_test(v->wild_depths, nl - i))
			continue;
		w = find_suffix(&v->wilds, &sfx, i);
		if (w) {
			*res = MESH_WILDCARD;
			return answer_host(v, q, w, q->label_off[zi], udp, out, cap);
		}
	}
	/* Rule 3: an authoritative negative. The apex and empty non-terminals exist. */
	if (zi == 0 || r) {
		*res = MESH_NODATA;
		return negative(v, q, WIRE_RCODE_NOERROR, q->label_off[zi], udp, out, cap);
	}
	*res = MESH_NXDOMAIN;
	return negative(v, q, WIRE_RCODE_NXDOMAIN, q->label_off[zi], udp, out, cap);
}
