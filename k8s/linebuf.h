/* Splits a byte stream into newline-terminated lines: the watch stream of the Kubernetes API,
 * one JSON event per line, cut anywhere by HTTP chunks (SEMANTICS.md rule 40).
 *
 * A line that arrives whole in one feed is handed out in place; a line cut across feeds is
 * gathered in a buffer that grows up to a hard cap and is released when it empties. Empty
 * lines (and lines of only "\r") are skipped.
 *
 * Pure: no I/O.
 */
#ifndef MESHDNS_LINEBUF_H
#define MESHDNS_LINEBUF_H

#include <stddef.h>

struct linebuf;

/* Called for each complete line, without its newline. @line is valid during the call only. A
 * negative return stops the feed and is returned by linebuf_feed. */
typedef int (*linebuf_fn)(void *arg, const char *line, size_t len);

/* Creates a splitter for lines of at most @max bytes. Returns NULL on allocation failure. */
struct linebuf *linebuf_new(size_t max);
void linebuf_free(struct linebuf *lb);

/* Drops a partial line (a new stream starts). */
void linebuf_reset(struct linebuf *lb);

/* Feeds @len bytes of @data, calling @fn for every line they complete. Returns 0; -E2BIG when
 * a line exceeds the cap (the splitter must then be reset); -ENOMEM; or @fn's error (the
 * rest of @data is dropped). */
int linebuf_feed(struct linebuf *lb, const char *data, size_t len, linebuf_fn fn, void *arg);

/* Bytes of a partial line held. */
size_t linebuf_pending(const struct linebuf *lb);

#endif
