/* The ServiceEntry store: the set of ServiceEntries a source has seen, and what it makes of
 * them in the mesh table (SEMANTICS.md rules 7-13).
 *
 * Sources (the JSON file, the Kubernetes list/watch client) feed it decoded objects
 * (sedecode.h). The store keeps one compact record per entry and an index host -> entries,
 * so an event touches only the hosts of the entries it changes: for each such host it picks
 * the winning namespace (the oldest entry by creationTimestamp, then name, then namespace),
 * merges the addresses of the entries of that namespace, decides whether the host teaches
 * its last label as a zone, and stages the result in the mesh table. sestore_flush publishes
 * the staged changes as one new view.
 *
 * How a source drives it, all on one thread (the control loop thread, registered with RCU):
 *   start:          sestore_new(opts, table)
 *   (re)list:       sestore_replace_begin; sestore_upsert for every item (any number of
 *                   pages); sestore_replace_commit (removes what the list lacked, marks the
 *                   table synced, publishes). A list that fails half way:
 *                   sestore_replace_abort (keeps the previous set).
 *   watch events:   ADDED/MODIFIED -> sestore_upsert, DELETED -> sestore_delete; then
 *                   sestore_flush once per batch of events read (one publish per batch).
 *   no source:      sestore_replace_begin + sestore_replace_commit (synced, empty).
 *
 * Pure: no I/O, no clock. Logs rejected items (at most a few lines per flush).
 */
#ifndef MESHDNS_SESTORE_H
#define MESHDNS_SESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s/sedecode.h"

struct sestore;
struct meshtab;

struct sestore_opts {
	const char *cluster_domain; /* --cluster-domain, "cluster.local" when NULL */
	bool auto_zones;	    /* learn zones (false with --no-auto-zones) */
	bool use_auto_allocated;    /* --use-auto-allocated: status.addresses when no spec ones */
};

/* Creates an empty store that stages into @table (not owned). Returns NULL on allocation
 * failure or an invalid cluster domain. */
struct sestore *sestore_new(const struct sestore_opts *opts, struct meshtab *table);

/* Frees the store (not the table). */
void sestore_free(struct sestore *s);

/* Adds or replaces the entry @o->ns/@o->name (ADDED, MODIFIED, a list item). An object
 * with the same uid and resourceVersion as the stored one changes nothing. A bad object or
 * one with exportTo ["~"] is counted; the latter also removes a stored entry of that name.
 * Returns 0 or -ENOMEM (the store keeps the previous entry). */
int sestore_upsert(struct sestore *s, const struct se_obj *o);

/* Removes the entry @o->ns/@o->name (DELETED). Returns 0; -ENOENT when absent; -ESTALE when
 * @o has a uid and the stored entry another (a newer object of the same name: kept). */
int sestore_delete(struct sestore *s, const struct se_obj *o);

/* Starts a replacement: entries not upserted before sestore_replace_commit are removed. */
void sestore_replace_begin(struct sestore *s);

/* Ends a replacement: removes the entries the list lacked, marks the table synced, counts a
 * relist and publishes (sestore_flush). Returns 0 or -ENOMEM (from the publish: retry with
 * sestore_flush). */
int sestore_replace_commit(struct sestore *s);

/* Abandons a replacement (a list that failed): nothing is removed. */
void sestore_replace_abort(struct sestore *s);

/* Stages the hosts that changed since the last flush in the table and publishes. Cheap when
 * nothing changed. Returns 0 or -ENOMEM (the changes stay pending; call again). */
int sestore_flush(struct sestore *s);

/* True when changes wait for sestore_flush. */
bool sestore_pending(const struct sestore *s);

/* Counters for /metrics. */
struct sestore_stats {
	size_t entries;	  /* meshdns_serviceentries: entries that count (not ignored) */
	size_t hosts;	  /* meshdns_mesh_hosts: hosts staged in the table (exact + wildcard) */
	uint64_t relists; /* meshdns_relists_total: replacements committed */
	uint64_t rejected[SE_REJECT_COUNT]; /* meshdns_rejected_total{reason} */
};
void sestore_get_stats(const struct sestore *s, struct sestore_stats *st);

#endif
