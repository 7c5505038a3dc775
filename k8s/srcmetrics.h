/* Metrics of the ServiceEntry store and its source (INTERFACE.md): meshdns_serviceentries,
 * meshdns_relists_total, meshdns_rejected_total{reason},
 * meshdns_sync_last_success_timestamp_seconds, meshdns_watch_restarts_total, and, for the
 * Kubernetes source, its API requests by result and its backoff.
 *
 * The store belongs to the control loop, so a timer there copies its counters once a second
 * under a mutex; the HTTP thread renders that copy (and the API client's own atomics).
 */
#ifndef MESHDNS_SRCMETRICS_H
#define MESHDNS_SRCMETRICS_H

struct srcmetrics;
struct sestore;
struct filesrc;
struct kapi;
struct http;
struct uv_loop_s;

/* Starts copying on @loop and registers the provider with @h (NULL: nothing to do). Any of
 * @file and @kapi may be NULL. Returns 0 or a negative errno. */
int srcmetrics_start(struct uv_loop_s *loop, struct http *h, const struct sestore *store,
		     const struct filesrc *file, const struct kapi *kapi, struct srcmetrics **out);

/* Stops the timer; freed in its close callback (run the loop). Only after the HTTP thread is
 * gone (http_free). NULL is fine. */
void srcmetrics_stop(struct srcmetrics *m);

#endif
