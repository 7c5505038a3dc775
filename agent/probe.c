/* What /health and /ready answer. See probe.h. */
#include "agent/probe.h"

#include <errno.h>
#include <stdio.h>

int probe_health(const uint64_t *heartbeat_ms, size_t n, uint64_t now_ms, uint64_t start_ms,
		 uint64_t limit_ms, char *why, size_t cap)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t beat = heartbeat_ms[i] ? heartbeat_ms[i] : start_ms;
		if (beat >= now_ms || now_ms - beat <= limit_ms)
			continue;
		uint64_t ms = now_ms - beat;
		snprintf(why, cap, "worker %zu: loop silent for %llu.%llu s", i,
			 (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000 / 100));
		return -ETIMEDOUT;
	}
	snprintf(why, cap, "OK");
	return 0;
}

int probe_ready(const struct probe_state *s, char *why, size_t cap)
{
	const char *missing = NULL;

	/* in start-up order: the interface, the first sync, then the listeners (bound once the
	 * table is synced) */
	if (!s->interface)
		missing = "listen interface not in place yet";
	else if (!s->synced)
		missing = "first ServiceEntry sync not done yet";
	else if (!s->listeners)
		missing = "DNS listeners not bound yet";
	snprintf(why, cap, "%s", missing ? missing : "OK");
	return missing ? -EAGAIN : 0;
}
