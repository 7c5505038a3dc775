/* The HTTP endpoints: GET /health and /ready on --health, /metrics on --metrics (one listener
 * serves all three when both flags name the same address; "off" disables either).
 *
 * A thread of its own runs a libuv loop for them, so a scrape never runs on a DNS worker or
 * on the control loop. It reads the workers' counters with relaxed atomic loads and the mesh
 * view under rcu_read_lock() (the thread is registered with liburcu).
 *
 * Port hand-over during a rolling update (DaemonSet maxSurge: 1): the listeners are
 * SO_REUSEPORT sockets, so a new instance binds the same ports while the old one still runs,
 * and a classic BPF program on the group sends new connections to the newer socket, so the
 * kubelet's probes during the overlap reach the new instance and /ready reports its own
 * state. The old instance closes its listeners first thing on SIGTERM. A port held by any
 * other program (asked over HTTP: its Server header) is an error, never silently shared.
 */
#ifndef MESHDNS_HTTP_H
#define MESHDNS_HTTP_H

#include "agent/metrics.h"

struct http;
struct nlink;
struct server;

struct http_opts {
	struct server *srv;	   /* config, workers, cache, mesh table, upstreams */
	const struct nlink *nlink; /* NULL with --no-interface */
};

/* Binds the --health and --metrics listeners. Call once the listen interface is in place
 * (the health address is on it). Returns 0 and sets *@out (NULL when both are off), or
 * -EADDRINUSE when another program holds a port, or another negative errno (bind, socket);
 * each logged with the flag and address. */
int http_new(const struct http_opts *opts, struct http **out);

/* Adds a provider of metric families (metrics.h) named in the NULL-terminated @families.
 * Only before http_start. Returns 0, or -ENOSPC past 8 providers. @h may be NULL (no
 * endpoints: nothing to do). */
int http_add_metrics(struct http *h, const char *const *families, metrics_provider_fn fn,
		     void *arg);

/* Starts serving on the HTTP thread. Call once every worker runs (srv->workers is read from
 * then on). Returns 0 or a negative errno (logged). @h may be NULL. */
int http_start(struct http *h);

/* Closes the listeners and connections, ends the thread and frees @h. NULL is fine. */
void http_free(struct http *h);

#endif
