/* The list/watch state machine of the Kubernetes API source: which request comes next, from
 * which resourceVersion, and after how long (SEMANTICS.md rules 39-41; the reflector's rules
 * in reference/serviceentry-semantics.md 4.4-4.8).
 *
 * Pure: no I/O, no clock, no randomness of its own. The shell (kapi.c) reports what happened
 * to the request it made, with the time in milliseconds of a monotonic clock; the machine
 * answers with the next request and the delay before it. Randomness (backoff jitter, watch
 * timeouts) comes from a callback, so tests inject it.
 *
 * Rules (one unit test at least for each, tests/unit/test_watchsm.c):
 *  1. Start: discovery, at once.
 *  2. Discovery found a served version: LIST resourceVersion=0&limit=500, at once. The group
 *     is absent (404, or no version we decode): the table is empty and synced (the shell
 *     commits an empty replacement); discovery again in 60 s, for as long as it stays absent.
 *  3. A list page with a continue token: the next page at once, with the token and the limit
 *     and no resourceVersion.
 *  4. The last page: WATCH from the list's resourceVersion at once, with bookmarks and a
 *     timeoutSeconds drawn from [300, 600].
 *  5. Every watch event's resourceVersion, bookmarks included, becomes the last RV.
 *  6. A watch that ends (the server's timeout, or the connection closed after data) having
 *     lasted at least 1 s or delivered an event: WATCH again from the last RV, at once. One
 *     that ends within 1 s with no event (VeryShortWatch) is a failure (rule 13).
 *  7. 410 on a watch (HTTP status or ERROR event), or "too large resource version": after a
 *     backoff, LIST at the last RV without limit (a relist). A 410 or "too large" on that list:
 *     after a backoff, LIST with resourceVersion="" (a consistent read).
 *  8. 410 on a continuation page: the list again at once, from its first page, at the
 *     resourceVersion it started with, without limit.
 *  9. 429, 5xx, 403, other 4xx, transport errors: after a backoff, the same request again:
 *     the watch from the last RV, the same list page (a rejected continue token restarts the
 *     list), discovery.
 * 10. 401: the same request at once (the shell re-reads the token first); a 401 right after a
 *     401 backs off.
 * 11. 404 on a list or a watch: discovery after a backoff.
 * 12. A dead watch (no byte for idle_ms) or a transport error: as rule 9, on a new connection.
 * 13. Backoff: 800 ms x 2^n, capped at 30 s, times a random factor in [1, 2); n counts
 *     failures and returns to 0 when the previous failure is more than 2 minutes old.
 * 14. Retry-After (sent with 429 and 5xx): the delay is at least that many seconds (at most
 *     120 are honoured).
 * 15. A response that cannot be used (an undecodable list, an event over the size cap):
 *     rule 9, except that a list starts again from its first page.
 */
#ifndef MESHDNS_WATCHSM_H
#define MESHDNS_WATCHSM_H

#include <stdbool.h>
#include <stdint.h>

struct watchsm;

#define WATCHSM_PAGE_LIMIT	   500
#define WATCHSM_BACKOFF_INITIAL_MS 800
#define WATCHSM_BACKOFF_CAP_MS	   30000
#define WATCHSM_BACKOFF_RESET_MS   120000
#define WATCHSM_ABSENT_POLL_MS	   60000
#define WATCHSM_RETRY_AFTER_MAX_S  120
#define WATCHSM_WATCH_MIN_S	   300
#define WATCHSM_WATCH_MAX_S	   600
#define WATCHSM_VERY_SHORT_MS	   1000
#define WATCHSM_IDLE_MARGIN_MS	   30000 /* a watch silent for timeoutSeconds + this is dead */
#define WATCHSM_IDLE_OTHER_MS	   60000 /* discovery and list: no byte for this long */
#define WATCHSM_MAX_RV		   127
#define WATCHSM_MAX_CONTINUE	   4095

/* Returns 32 random bits (getrandom in the agent, a script in tests). */
typedef uint32_t (*watchsm_rand_fn)(void *arg);

struct watchsm_opts {
	watchsm_rand_fn rand;
	void *rand_arg;
	uint32_t idle_ms; /* 0: timeoutSeconds + margin for watches, 60 s otherwise; else this */
};

enum watchsm_op {
	WATCHSM_DISCOVER, /* GET /apis/networking.istio.io */
	WATCHSM_LIST,	  /* one LIST page */
	WATCHSM_WATCH,	  /* WATCH */
};

/* The next request. The strings point into the machine: valid until its next call. */
struct watchsm_action {
	enum watchsm_op op;
	uint64_t delay_ms;     /* wait this long before the request (0: at once) */
	bool first_page;       /* LIST: a new list: start a store replacement (abort an open one) */
	const char *rv;	       /* LIST: resourceVersion to send ("" = a consistent read), NULL on
				  a continuation page; WATCH: the RV to watch from */
	bool limit;	       /* LIST: send limit=WATCHSM_PAGE_LIMIT */
	const char *cont;      /* LIST: the continue token, NULL on a first page */
	uint32_t timeout_s;    /* WATCH: timeoutSeconds */
	uint32_t idle_ms;      /* abort the request when no byte comes for this long */
	bool fresh_connection; /* do not reuse a connection (after a dead watch or I/O error) */
};

enum watchsm_fail {
	WATCHSM_FAIL_HTTP,	/* an HTTP status other than 200, or a watch ERROR event */
	WATCHSM_FAIL_TRANSPORT, /* no usable response: refused, reset, TLS, timeout */
	WATCHSM_FAIL_DEAD,	/* the watchdog: no byte for idle_ms */
	WATCHSM_FAIL_BAD_DATA,	/* a response that could not be decoded or was over a cap */
};

struct watchsm_failure {
	enum watchsm_fail kind;
	int status;		/* WATCHSM_FAIL_HTTP: the status, or the ERROR event's code */
	uint32_t retry_after_s; /* Retry-After, 0 when absent */
	bool too_large;		/* "Too large resource version" (ResourceVersionTooLarge) */
};

/* Counters for /metrics. */
struct watchsm_stats {
	uint64_t watch_restarts; /* watches that ended or failed (a new one followed) */
	uint64_t relists;	 /* lists started again after 410, 404, bad data */
	uint64_t failures;	 /* failures counted by the backoff */
	uint64_t backoff_ms;	 /* the delay last chosen after a failure, 0 once healthy */
	bool synced;		 /* a list completed, or the group was found absent */
};

/* Creates a machine. Returns NULL on allocation failure. */
struct watchsm *watchsm_new(const struct watchsm_opts *opts);
void watchsm_free(struct watchsm *sm);

/* Rule 1: the first action. */
struct watchsm_action watchsm_start(struct watchsm *sm, uint64_t now_ms);

/* The shell started the request of the last action at @now_ms (for VeryShortWatch). */
void watchsm_began(struct watchsm *sm, uint64_t now_ms);

/* Discovery answered: @version is the version to use ("v1", "v1beta1", "v1alpha3"), or
 * NULL when the group is absent (rule 2). */
struct watchsm_action watchsm_discovered(struct watchsm *sm, uint64_t now_ms, const char *version);

/* A list page was received and applied: its metadata.resourceVersion @rv and continue
 * token @cont ("" or NULL on the last page). Rules 3, 4. */
struct watchsm_action watchsm_list_page(struct watchsm *sm, uint64_t now_ms, const char *rv,
					const char *cont);

/* A watch event (ADDED, MODIFIED, DELETED, BOOKMARK) with resourceVersion @rv (rule 5). */
void watchsm_event(struct watchsm *sm, uint64_t now_ms, const char *rv);

/* The watch stream ended without an error status (rule 6). */
struct watchsm_action watchsm_watch_ended(struct watchsm *sm, uint64_t now_ms);

/* The request failed (rules 7-15). */
struct watchsm_action watchsm_failed(struct watchsm *sm, uint64_t now_ms,
				     const struct watchsm_failure *f);

/* The last resourceVersion seen ("" before the first list). */
const char *watchsm_last_rv(const struct watchsm *sm);

void watchsm_get_stats(const struct watchsm *sm, struct watchsm_stats *st);

#endif
