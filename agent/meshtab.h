/* The mesh table: names answered locally, from ServiceEntries (SEMANTICS.md sections 1-4).
 *
 * Two sides:
 *  - the owner (one control thread) stages changes to hosts and zones and publishes them;
 *  - readers (the DNS worker threads) answer queries from the published view.
 *
 * A view is immutable once published and is replaced with rcu_assign_pointer; readers hold
 * it between rcu_read_lock() and rcu_read_unlock() (liburcu, memb flavour), so a query sees
 * the old table or the new one, never a mix. With <urcu/urcu-memb.h> alone the calls are
 * spelled urcu_memb_read_lock() and urcu_memb_register_thread() (or include <urcu.h>, which
 * maps rcu_read_lock() to the memb flavour). Publishing after one change costs in proportion
 * to the change, not to the table (a watch event must not rebuild 100,000 hosts). Answers are
 * rendered into wire format at publish time, so answering costs no more than a cache hit.
 *
 * Pure: no uv.h, curl or libnl; time does not matter here.
 */
#ifndef MESHDNS_MESHTAB_H
#define MESHDNS_MESHTAB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meshtab;
struct meshview;
struct wire_query;

struct meshtab_opts {
	const char *const *zones; /* --zone values as text ("cluster-2", "mesh.example.") */
	size_t nzones;
	bool auto_zones;  /* learn zones from hosts (false with --no-auto-zones) */
	uint32_t ttl;	  /* TTL of local answers (--mesh-ttl, default 30) */
	uint32_t neg_ttl; /* SOA TTL and MINIMUM of local negatives (5) */
};

/* Creates an empty, unsynced table and publishes it (generation 1). Returns NULL on
 * allocation failure or an invalid zone (logged). wire_set_hash_key must have been called
 * before: exact hosts are keyed by wire_hash. */
struct meshtab *meshtab_new(const struct meshtab_opts *opts);

/* Frees the table and every view. Only after all reader threads have stopped; waits for
 * pending reclamation (rcu_barrier). */
void meshtab_free(struct meshtab *t);

/* ---- Owner side: one control thread, registered with rcu_register_thread() (publication
 * reclaims old nodes with call_rcu). Changes are staged and become visible together at the
 * next meshtab_publish. Host names are text, lowercase, without trailing dot, validated by
 * the caller (sedecode.c); "*.S" registers the wildcard suffix S. ---- */

/* Most addresses of one family a host keeps; more are dropped. */
#define MESHTAB_MAX_ADDRS 512

/* Stages @host with these addresses (copied), replacing what it had. @learn_zone: the host
 * comes from a MESH_INTERNAL entry and its last label may become a zone (the caller has
 * checked the TLD list); ignored when auto_zones is off. No address at all removes the host.
 * Setting what is already staged is a no-op that copies nothing. Returns 0, -EINVAL (bad
 * name) or -ENOMEM (the host keeps its previous state). */
int meshtab_host_set(struct meshtab *t, const char *host, const struct in_addr *v4, size_t n4,
		     const struct in6_addr *v6, size_t n6, bool learn_zone);

/* Stages the removal of @host (exact or "*.S"). Returns 0, -ENOENT, -EINVAL or -ENOMEM. */
int meshtab_host_del(struct meshtab *t, const char *host);

/* Marks the table synced (the source's first successful read or list); staged like a host
 * change. Idempotent. */
void meshtab_set_synced(struct meshtab *t);

/* True when changes are staged and not yet published. */
bool meshtab_dirty(const struct meshtab *t);

/* Publishes the staged changes as a new view (generation + 1) with rcu_assign_pointer; the
 * nodes they replaced are freed after a grace period (call_rcu). Does nothing when nothing is
 * staged. Returns 0 or -ENOMEM (nothing published; the changes stay staged). */
int meshtab_publish(struct meshtab *t);

/* What the last publish cost and what the table holds, for tests, benchmarks and metrics. */
struct meshtab_stats {
	uint64_t publishes;    /* views published since meshtab_new */
	size_t buckets_copied; /* by the last publish: published buckets copied */
	size_t pages_copied;   /* ... bucket pages (256 slots) copied */
	size_t dirs_copied;    /* ... page directories copied (at most 1 per map) */
	size_t bytes_copied;   /* ... bytes written for those copies */
	size_t rehashes;       /* ... maps that doubled */
	size_t records;	       /* names (hosts and empty non-terminals), wildcards and zones */
	size_t record_bytes;   /* bytes of those records */
	size_t memory;	       /* bytes of every node of the staged table (walks it: O(n)) */
};
void meshtab_get_stats(const struct meshtab *t, struct meshtab_stats *s);

/* What a local answer was, for metrics. */
enum mesh_result {
	MESH_NOT_LOCAL = 0, /* not in any zone: route onward */
	MESH_HOST,	    /* exact host: A/AAAA/ANY records or NODATA for other types */
	MESH_WILDCARD,	    /* synthesised from a wildcard */
	MESH_NODATA,	    /* apex or empty non-terminal: NODATA (or SOA/NS at the apex) */
	MESH_NXDOMAIN,	    /* inside a zone, no such name */
	MESH_NOT_READY,	    /* inside a --zone before the first sync: SERVFAIL */
};

/* Returns the view to read; call between rcu_read_lock() and rcu_read_unlock(), valid until
 * the unlock. Never NULL once meshtab_new returned. */
const struct meshview *meshtab_view(struct meshtab *t);

/* Answers @q from @v when its name is local. Writes the whole reply to @out: header and
 * question echoed as received (wire_write_reply_head), records, the SOA in authority for
 * negatives, and wire_finish_reply (OPT, truncation to the client's UDP limit when @udp).
 * Returns the reply length and sets *@res; returns 0 with *@res = MESH_NOT_LOCAL when the
 * name is in no zone; a negative errno when @cap is too small. Allocates nothing. */
int meshview_answer(const struct meshview *v, const struct wire_query *q, bool udp, uint8_t *out,
		    size_t cap, enum mesh_result *res);

/* True when the wire-format name @name (@len bytes, lowercase) lies in one of the view's
 * zones: no upstream may speak for it. Call like meshview_answer. */
bool meshview_in_zone(const struct meshview *v, const uint8_t *name, size_t len);

/* Counters of a view, for metrics and readiness. */
struct meshview_info {
	uint64_t generation; /* SOA serial; bumps on every publish */
	size_t hosts;	     /* exact hosts with at least one address */
	size_t wildcards;    /* wildcard suffixes */
	size_t zones;	     /* zones given plus zones learned */
	bool synced;	     /* the first sync of the source is done */
};
void meshview_get_info(const struct meshview *v, struct meshview_info *info);

#endif
