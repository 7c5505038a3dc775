/* Newline splitting for watch streams. See linebuf.h. */
#include "k8s/linebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/growbuf.h"

struct linebuf {
	struct growbuf buf;
};

struct linebuf *linebuf_new(size_t max)
{
	struct linebuf *lb = malloc(sizeof(*lb));

	if (lb)
		growbuf_init(&lb->buf, max);
	return lb;
}

void linebuf_free(struct linebuf *lb)
{
	if (!lb)
		return;
	growbuf_deinit(&lb->buf);
	free(lb);
}

void linebuf_reset(struct linebuf *lb)
{
	growbuf_clear(&lb->buf);
}

size_t linebuf_pending(const struct linebuf *lb)
{
	return lb->buf.len;
}

static int emit(const char *line, size_t len, linebuf_fn fn, void *arg)
{
	if (len && line[len - 1] == '\r')
		len--;
	return len ? fn(arg, line, len) : 0;
}

int linebuf_feed(struct linebuf *lb, const char *data, size_t len, linebuf_fn fn, void *arg)
{
	const char *p = data, *end = data + len, *nl;
	int r;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return growbuf_append(&lb->buf, p, (size_t)(end - p));
		if (lb->buf.len) {
			r = growbuf_append(&lb->buf, p, (size_t)(nl - p));
			if (r < 0)
				return r;
			r = emit(lb->buf.p, lb->buf.len, fn, arg);
			growbuf_clear(&lb->buf);
		} else {
			if ((size_t)(nl - p) > lb->buf.max)
				return -E2BIG;
			r = emit(p, (size_t)(nl - p), fn, arg);
		}
		if (r < 0)
			return r;
		p = nl + 1;
	}
	return 0;
}
