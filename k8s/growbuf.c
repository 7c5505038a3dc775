/* Capped growable buffers. See growbuf.h. */
#include "k8s/growbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void growbuf_init(struct growbuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void growbuf_deinit(struct growbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int growbuf_append(struct growbuf *b, const char *data, size_t n)
{
	if (n > b->max - b->len)
		return -E2BIG;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;
		while (cap < b->len + n)
			cap *= 2;
		if (cap > b->max)
			cap = b->max;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void growbuf_clear(struct growbuf *b)
{
	b->len = 0;
	if (b->cap > GROWBUF_KEEP) {
		free(b->p);
		b->p = NULL;
		b->cap = 0;
	}
}
