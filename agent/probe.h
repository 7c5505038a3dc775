/* What /health and /ready answer (INTERFACE.md, SEMANTICS.md rule 42).
 *
 * Pure: the HTTP shell reads the heartbeats, the clock and the state, and asks here.
 */
#ifndef MESHDNS_PROBE_H
#define MESHDNS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A worker loop silent for longer than this is dead. Each loop stamps its heartbeat every
 * 100 ms, in whole seconds of wall-clock time, so the effective limit is 5 to 6 s. */
#define PROBE_SILENT_MS 5000

/* Liveness: returns 0 when each of the @n heartbeats (milliseconds, the clock of @now_ms) is
 * at most @limit_ms old, or -ETIMEDOUT with "worker N: loop silent for S s" in @why. A
 * heartbeat of 0 (not stamped yet) counts from @start_ms; one in the future (the clock was
 * set back) counts as fresh. */
int probe_health(const uint64_t *heartbeat_ms, size_t n, uint64_t now_ms, uint64_t start_ms,
		 uint64_t limit_ms, char *why, size_t cap);

struct probe_state {
	bool listeners; /* every DNS listener is bound and its worker runs */
	bool interface; /* the interface holds the listen addresses (or --no-interface) */
	bool synced;	/* the first ServiceEntry sync is done */
};

/* Readiness: returns 0 when everything is in place, or -EAGAIN with the first thing missing
 * in @why (one line, no newline). */
int probe_ready(const struct probe_state *s, char *why, size_t cap);

#endif
