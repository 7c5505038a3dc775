/* A byte buffer that grows up to a hard cap and gives its memory back once emptied past a
 * small size: for the partial lines and items of API streams (linebuf, liststream).
 *
 * Pure. Lives on the owner's storage: growbuf_init / growbuf_deinit.
 */
#ifndef MESHDNS_GROWBUF_H
#define MESHDNS_GROWBUF_H

#include <stddef.h>

#define GROWBUF_KEEP (64u << 10) /* a larger allocation is released when emptied */

struct growbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max;
};

/* An empty buffer that holds at most @max bytes. */
void growbuf_init(struct growbuf *b, size_t max);
void growbuf_deinit(struct growbuf *b);

/* Appends @n bytes. Returns 0; -E2BIG past the cap (nothing appended); -ENOMEM. */
int growbuf_append(struct growbuf *b, const char *data, size_t n);

/* Empties the buffer, releasing a large allocation. */
void growbuf_clear(struct growbuf *b);

#endif
