/* Logging: one line per event on stderr, "level [group] message".
 *
 * The level check happens in the macro, before any argument is evaluated, so a debug line on
 * a hot path costs one compare when debug is off. Nothing per query is logged above debug.
 * Secrets (the API token) are never passed to these functions.
 */
#ifndef MESHDNS_LOG_H
#define MESHDNS_LOG_H

#include <stdint.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

extern int log_level_current;

/* Parses "error", "warn", "info" or "debug". Returns the level or -EINVAL. */
int log_level_parse(const char *name);

/* Writes one line. Use the macros below instead. */
void log_write(int level, const char *group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_at(level, group, ...)                                                                  \
	do {                                                                                       \
		if ((level) <= log_level_current)                                                  \
			log_write((level), (group), __VA_ARGS__);                                  \
	} while (0)

#define log_error(group, ...) log_at(LOG_LEVEL_ERROR, group, __VA_ARGS__)
#define log_warn(group, ...)  log_at(LOG_LEVEL_WARN, group, __VA_ARGS__)
#define log_info(group, ...)  log_at(LOG_LEVEL_INFO, group, __VA_ARGS__)
#define log_debug(group, ...) log_at(LOG_LEVEL_DEBUG, group, __VA_ARGS__)

/* Rate limit for a repeated warning: at most @burst lines per @interval_ms; the next line
 * after a quiet period reports how many were suppressed. Keep one per call site. */
struct log_ratelimit {
	uint64_t window_start_ms;
	uint32_t interval_ms;
	uint32_t burst;
	uint32_t printed;
	uint32_t suppressed;
};

#define LOG_RATELIMIT_INIT(interval, n) { 0, (interval), (n), 0, 0 }

/* Returns 1 when a line may be printed now (and prints a "suppressed N" note first if lines
 * were dropped), 0 when it must be dropped. Not thread-safe: one state per thread or site
 * guarded by the caller. */
int log_ratelimit_ok(struct log_ratelimit *rl, const char *group, uint64_t now_ms);

#define log_warn_rl(rl, now_ms, group, ...)                                                        \
	do {                                                                                       \
		if (LOG_LEVEL_WARN <= log_level_current &&                                         \
		    log_ratelimit_ok((rl), (group), (now_ms)))                                     \
			log_write(LOG_LEVEL_WARN, (group), __VA_ARGS__);                           \
	} while (0)

#endif
