/* The mesh table: names answered locally, from ServiceEntries (SEMANTICS.md sections 1-4).
 *
 * Two sides:
 *  - the owner (one control thread) stages changes to hosts and zones and publishes them;
 *  - readers (the DNS worker threads) answer queries from the published view.
 *
 * A view is immutable once published and is replaced with rcu_assign_pointer; readers hold
 * it between rcu_read_lock() and rcu_read_unlock() (liburcu, memb flavour), so a query sees
 * the old table or the new one, never a mix. Publishing after one change costs in proportion
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
	bool auto_zones;          /* learn zones from hosts (false with --no-auto-zones) */
	uint32_t ttl;             /* TTL of local answers (--mesh-ttl, default 30) */
	uint32_t neg_ttl;         /* SOA TTL and MINIMUM of local negatives (5) */
};

/* Creates an empty, unsynced table. Returns NULL on allocation failure or an invalid zone
 * (logged). */
struct meshtab *meshtab_new(const struct meshtab_opts *opts);

/* Frees the table and every view. Only after all reader threads have stopped. */
void meshtab_free(struct meshtab *t);

/* What a local answer was, for metrics. */
enum mesh_result {
	MESH_NOT_LOCAL = 0, /* not in any zone: route onward */
	MESH_HOST,          /* exact host: A/AAAA/ANY records or NODATA for other types */
	MESH_WILDCARD,      /* synthesised from a wildcard */
	MESH_NODATA,        /* apex or empty non-terminal: NODATA (or SOA/NS at the apex) */
	MESH_NXDOMAIN,      /* inside a zone, no such name */
	MESH_NOT_READY,     /* inside a --zone before the first sync: SERVFAIL */
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

/* Counters of a view, for metrics and readiness. */
struct meshview_info {
	uint64_t generation; /* SOA serial; bumps on every publish */
	size_t hosts;        /* exact hosts with at least one address */
	size_t wildcards;    /* wildcard suffixes */
	size_t zones;        /* zones given plus zones learned */
	bool synced;         /* the first sync of the source is done */
};
void meshview_get_info(const struct meshview *v, struct meshview_info *info);

#endif
