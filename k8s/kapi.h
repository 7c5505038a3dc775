/* The Kubernetes API source of ServiceEntries (--serviceentries kubernetes): discovery, LIST
 * and WATCH of networking.istio.io ServiceEntries in all namespaces, kept in the store
 * (SEMANTICS.md rules 38-42, reference/serviceentry-semantics.md section 4).
 *
 * libcurl's multi socket interface runs on the agent's control loop: its sockets are
 * uv_poll_t handles and its timer a uv_timer_t, so nothing blocks the loop. One request is
 * in flight at a time; what comes next, and when, is the state machine's decision
 * (watchsm.h). List pages are decoded item by item as they arrive (liststream.h) and watch
 * events line by line (linebuf.h); the store publishes once per list and once per chunk of
 * watch events, so a change reaches answers within milliseconds. A long list is decoded in
 * slices of a few MiB per loop turn (the transfer is paused in between), so signals and the
 * loop's other handles are served meanwhile. During an outage nothing is cleared: the last
 * table keeps being answered.
 *
 * TLS is always verified against the CA file (re-read for every new connection, so a
 * rotated ca.crt is picked up). The token file is re-read every 60 s and after a 401; the
 * token is never logged, never in a metric, never in an error message.
 *
 * libcurl is loaded with dlopen at start (curlfn.h), so the other sources do not pay for it.
 *
 * Environment, for tests:
 *   MESHDNS_KUBE_IDLE_TIMEOUT_MS  abort any request (a watch included) that receives no byte
 *                                 for this many milliseconds. Default: a watch's
 *                                 timeoutSeconds + 30 s, 60 s for discovery and lists.
 *
 * Runs on the loop thread that owns the store (registered with RCU, see meshtab.h).
 */
#ifndef MESHDNS_KAPI_H
#define MESHDNS_KAPI_H

#include <stdbool.h>
#include <stdint.h>

struct kapi;
struct sestore;
struct uv_loop_s;

#define KAPI_MAX_ITEM	     (8u << 20)	 /* one list item or one watch event line */
#define KAPI_MAX_PAGE	     (1u << 30)	 /* bytes of one list page (streamed, never held) */
#define KAPI_MAX_SMALL_BODY  (1u << 20)	 /* discovery documents */
#define KAPI_MAX_ERROR_BODY  (64u << 10) /* Status bodies of failed requests */
#define KAPI_TOKEN_REREAD_MS 60000

struct kapi_opts {
	const char *api_url;	/* --kube-api; NULL: in-cluster from the environment */
	const char *token_file; /* --kube-token-file; NULL: the service account token */
	const char *ca_file;	/* --kube-ca-file; NULL: ca.crt beside the token file */
};

/* Checks the configuration (API URL, readable CA file and token file), loads libcurl and
 * starts discovery on @loop for @store. Returns 0 and the source in *@out, or a negative
 * errno with the cause logged (a fatal start-up error: exit 1). */
int kapi_start(struct uv_loop_s *loop, const struct kapi_opts *opts, struct sestore *store,
	       struct kapi **out);

/* Stops: the request in flight is abandoned, every easy handle and uv handle closed; the
 * source is freed once the loop has run the close callbacks. Safe in any state and with
 * NULL. The store is not touched after this call. */
void kapi_stop(struct kapi *k);

/* HTTP statuses counted apart for meshdns_kube_requests_total{code}. */
enum kapi_code {
	KAPI_CODE_NONE = 0, /* no response: refused, reset, TLS failure, timeout */
	KAPI_CODE_200,
	KAPI_CODE_401,
	KAPI_CODE_403,
	KAPI_CODE_404,
	KAPI_CODE_410,
	KAPI_CODE_429,
	KAPI_CODE_500,
	KAPI_CODE_503,
	KAPI_CODE_504,
	KAPI_CODE_OTHER,
	KAPI_CODE_COUNT,
};

/* The label of @c: "none", "200", ..., "other". */
const char *kapi_code_name(enum kapi_code c);

/* For /ready and /metrics. */
struct kapi_status {
	bool synced;			    /* first list done, or the group confirmed absent */
	bool group_absent;		    /* networking.istio.io is not served (empty table) */
	bool watching;			    /* a watch stream is open */
	int64_t last_success_unix;	    /* meshdns_sync_last_success_timestamp_seconds */
	uint64_t watch_restarts;	    /* meshdns_watch_restarts_total */
	uint64_t relists;		    /* meshdns_relists_total (after the first list) */
	uint64_t backoff_ms;		    /* the current backoff delay, 0 when healthy */
	uint64_t requests[KAPI_CODE_COUNT]; /* requests by result */
};

/* Copies the status. Safe from any thread while the source lives (relaxed atomics). */
void kapi_get_status(const struct kapi *k, struct kapi_status *st);

#endif
