/* Prometheus text exposition (format 0.0.4) of what the agent counts (INTERFACE.md).
 *
 * Names and labels follow CoreDNS, so NodeLocal DNSCache dashboards and alerts keep working:
 * coredns_dns_*, coredns_cache_* and coredns_forward_*, with server="dns://ADDR:PORT" and
 * to="ADDR:PORT". The meshdns_* and process_* families are the agent's own.
 *
 * Pure: the HTTP shell gathers a snapshot (every worker's counters added up, cache, mesh and
 * process figures) and this module turns it into text. Modules that count elsewhere (the
 * ServiceEntry store, the Kubernetes watch) append whole families through providers; a family
 * of INTERFACE.md that no provider claims is still listed (HELP and TYPE, no samples), so
 * the names are always there to find.
 */
#ifndef MESHDNS_METRICS_H
#define MESHDNS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/stats.h"

struct cache_stats;
struct meshview_info;

/* Hard cap of one rendering. The core families stay under 300 kB in the worst case (every
 * zone, type, rcode and 16 upstreams); the rest is room for providers. */
#define METRICS_MAX_BYTES (2u << 20)

/* A growable text buffer with a hard cap. The first error sticks: later appends do nothing,
 * so a renderer checks once at the end. */
struct metrics_out {
	char *buf; /* NUL-terminated while len < cap */
	size_t len;
	size_t cap;
	size_t max;
	int err; /* 0, -ENOMEM, or -E2BIG when the text would pass max */
};

/* Starts an empty buffer that may grow to @max bytes. Allocates nothing yet. */
void metrics_out_init(struct metrics_out *o, size_t max);

/* Frees the text. */
void metrics_out_deinit(struct metrics_out *o);

struct metrics_label {
	const char *name;
	const char *value; /* escaped when written */
};

/* Writes "# HELP @name @help" and "# TYPE @name @type" (@type: "counter", "gauge",
 * "histogram"). */
void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help);

/* Writes one sample line: @name{labels} @value. */
void metrics_sample(struct metrics_out *o, const char *name, const struct metrics_label *labels,
		    size_t nlabels, uint64_t value);

/* The same with a real value (seconds, timestamps). */
void metrics_sample_f(struct metrics_out *o, const char *name, const struct metrics_label *labels,
		      size_t nlabels, double value);

/* Appends whole families (metrics_family, then its samples) to @o. Runs on the HTTP thread
 * while /metrics is rendered: it must read its module's state with atomics or under the
 * module's own lock, must not block, and must not touch an object a loop owns. */
typedef void (*metrics_provider_fn)(struct metrics_out *o, void *arg);

struct metrics_provider {
	metrics_provider_fn fn;
	void *arg;
	const char *const *families; /* NULL-terminated names the provider writes */
};

/* Process figures read from /proc by the shell. */
struct metrics_process {
	bool known;
	uint64_t rss_bytes;
	uint64_t virtual_bytes;
	double cpu_seconds;
	double start_time; /* Unix seconds */
	uint64_t open_fds;
	uint64_t max_fds;
};

struct metrics_snapshot {
	const char *version;
	const char *server;	  /* server label: "dns://" and the first listen address */
	const char *cluster_zone; /* zone label of the cluster domain, "cluster.local." */
	const struct stats *st;	  /* every worker's counters added up (stats_sum) */
	const struct cache_stats *cache;
	uint64_t cache_max_bytes;
	const struct meshview_info *mesh;
	/* "ADDR:PORT" of each upstream server by group and index (the order of struct
	 * upstream_group), NULL past the last. A server in both groups is one `to` series. */
	const char *to[STATS_GROUPS][STATS_MAX_SERVERS];
	uint64_t interface_repairs;
	bool ready;
	struct metrics_process proc;
};

/* Renders @s, then each of the @np providers, into @o. Returns 0, or o->err: -ENOMEM, or
 * -E2BIG when the text would pass o->max (@o then holds a cut text that must not be
 * served). */
int metrics_render(const struct metrics_snapshot *s, const struct metrics_provider *p, size_t np,
		   struct metrics_out *o);

#endif
