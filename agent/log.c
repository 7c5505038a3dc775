/* Logging. See log.h. */
#include "agent/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int log_level_current = LOG_LEVEL_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

void log_write(int level, const char *group, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level < 0 || level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_ERROR;
	n = snprintf(line, sizeof line, "%s [%s] ", level_names[level], group);
	if (n < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* Messages quote outside input (ServiceEntry hosts, file contents): control bytes and
	 * non-ASCII are written as \xNN, so no input can forge a line or a terminal sequence. */
	char safe[4 * sizeof line];
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)line; *p && o + 5 < sizeof safe; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			safe[o++] = (char)*p;
		} else {
			static const char hex[] = "0123456789abcdef";
			safe[o++] = '\\';
			safe[o++] = 'x';
			safe[o++] = hex[*p >> 4];
			safe[o++] = hex[*p & 15];
		}
	}
	safe[o] = 0;
	/* One write per line, so lines from several threads do not interleave. */
	fprintf(stderr, "%s\n", safe);
}

int log_ratelimit_ok(struct log_ratelimit *rl, const char *group, uint64_t now_ms)
{
	if (now_ms - rl->window_start_ms >= rl->interval_ms) {
		if (rl->suppressed)
			log_write(LOG_LEVEL_WARN, group, "%u similar messages suppressed",
				  rl->suppressed);
		rl->window_start_ms = now_ms;
		rl->printed = 0;
		rl->suppressed = 0;
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return 1;
	}
	rl->suppressed++;
	return 0;
}
