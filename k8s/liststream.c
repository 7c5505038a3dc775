/* Item-by-item splitting of list documents. See liststream.h. */
#include "k8s/liststream.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/growbuf.h"

struct liststream {
	struct growbuf item; /* an item cut across feeds */
	struct growbuf skel; /* the document without the items */
	int depth;
	bool in_str;
	bool esc;
	bool started;
	bool done;
	/* keys of the top-level object */
	bool expect_key;
	bool in_key;
	bool value_is_items;
	char key[6];
	size_t keylen;
	/* inside "items" */
	bool in_items;
	bool in_elem;
	bool elem_scalar;
	bool elem_buffered; /* the element's first bytes are in ls->item */
};

struct liststream *liststream_new(size_t max_item, size_t max_skel)
{
	struct liststream *ls = calloc(1, sizeof(*ls));

	if (!ls)
		return NULL;
	growbuf_init(&ls->item, max_item);
	growbuf_init(&ls->skel, max_skel);
	return ls;
}

void liststream_free(struct liststream *ls)
{
	if (!ls)
		return;
	growbuf_deinit(&ls->item);
	growbuf_deinit(&ls->skel);
	free(ls);
}

void liststream_reset(struct liststream *ls)
{
	struct growbuf item = ls->item, skel = ls->skel;

	growbuf_clear(&item);
	growbuf_clear(&skel);
	memset(ls, 0, sizeof(*ls));
	ls->item = item;
	ls->skel = skel;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The element that started at @start (or in ls->item) ends before @end. */
static int end_elem(struct liststream *ls, const char *start, const char *end,
		    liststream_item_fn fn, void *arg)
{
	int r;

	ls->in_elem = false;
	if (!ls->elem_buffered) {
		if ((size_t)(end - start) > ls->item.max)
			return -E2BIG;
		return fn(arg, start, (size_t)(end - start));
	}
	ls->elem_buffered = false;
	r = growbuf_append(&ls->item, start, (size_t)(end - start));
	if (r == 0)
		r = fn(arg, ls->item.p, ls->item.len);
	growbuf_clear(&ls->item);
	return r;
}

/* A byte outside the items: the structure of the top-level object. */
static int skel_byte(struct liststream *ls, char c)
{
	int r = growbuf_append(&ls->skel, &c, 1);

	if (r < 0)
		return r;
	if (ls->done)
		return is_space(c) ? 0 : -EINVAL;
	if (ls->in_str) {
		if (ls->esc) {
			ls->esc = false;
		} else if (c == '\\') {
			ls->esc = true;
		} else if (c == '"') {
			ls->in_str = false;
			ls->in_key = false;
		} else if (ls->in_key) {
			if (ls->keylen < sizeof(ls->key))
				ls->key[ls->keylen] = c;
			ls->keylen++;
		}
		return 0;
	}
	if (is_space(c))
		return 0;
	if (ls->depth == 0 && c != '{')
		return -EINVAL;
	switch (c) {
	case '"':
		ls->in_str = true;
		if (ls->depth == 1 && ls->expect_key) {
			ls->in_key = true;
			ls->keylen = 0;
			ls->expect_key = false;
		}
		ls->value_is_items = false;
		break;
	case '[':
		if (ls->depth == 1 && ls->value_is_items)
			ls->in_items = true;
		/* fall through */
	case '{':
		ls->depth++;
		if (ls->depth == 1) {
			ls->started = true;
			ls->expect_key = true;
		}
		ls->value_is_items = false;
		break;
	case '}':
	case ']':
		if (--ls->depth == 0)
			ls->done = true;
		break;
	case ',':
		if (ls->depth == 1)
			ls->expect_key = true;
		break;
	case ':':
		if (ls->depth == 1)
			ls->value_is_items = ls->keylen == 5 && memcmp(ls->key, "items", 5) == 0;
		break;
	default:
		ls->value_is_items = false;
		break;
	}
	return 0;
}

int liststream_feed(struct liststream *ls, const char *data, size_t len, liststream_item_fn fn,
		    void *arg)
{
	const char *p = data, *end = data + len, *start = data;
	int r;

	while (p < end) {
		char c = *p;
		if (!ls->in_items) {
			r = skel_byte(ls, c);
			if (r < 0)
				return r;
			p++;
			continue;
		}
		if (!ls->in_elem) {
			/* between the elements of "items" (depth 2) */
			if (is_space(c) || c == ',') {
				p++;
				continue;
			}
			if (c == ']') {
				ls->in_items = false;
				r = skel_byte(ls, c);
				if (r < 0)
					return r;
				p++;
				continue;
			}
			if (c == '}')
				return -EINVAL;
			ls->in_elem = true;
			ls->elem_buffered = false;
			ls->elem_scalar = c != '{' && c != '[';
			start = p;
		}
		if (ls->in_str) {
			/* skip to the end of the string */
			bool closed = false;
			while (p < end && !closed) {
				c = *p++;
				if (ls->esc)
					ls->esc = false;
				else if (c == '\\')
					ls->esc = true;
				else if (c == '"')
					closed = true;
			}
			if (closed) {
				ls->in_str = false;
				if (ls->elem_scalar && ls->depth == 2) {
					r = end_elem(ls, start, p, fn, arg);
					if (r < 0)
						return r;
				}
			}
			continue;
		}
		switch (c) {
		case '"':
			ls->in_str = true;
			p++;
			continue;
		case '{':
		case '[':
			ls->depth++;
			p++;
			continue;
		case '}':
		case ']':
			if (ls->elem_scalar) {
				if (c == '}')
					return -EINVAL;
				/* "]" ends a scalar element and then the array */
				r = end_elem(ls, start, p, fn, arg);
				if (r < 0)
					return r;
				continue;
			}
			ls->depth--;
			p++;
			if (ls->depth == 2) {
				r = end_elem(ls, start, p, fn, arg);
				if (r < 0)
					return r;
			}
			continue;
		default:
			if (ls->elem_scalar && (c == ',' || is_space(c))) {
				r = end_elem(ls, start, p, fn, arg);
				if (r < 0)
					return r;
			}
			p++;
			continue;
		}
	}
	if (ls->in_elem) {
		r = growbuf_append(&ls->item, start, (size_t)(end - start));
		if (r < 0)
			return r;
		ls->elem_buffered = true;
	}
	return 0;
}

int liststream_finish(struct liststream *ls, const char **skel, size_t *len)
{
	if (!ls->started || !ls->done)
		return -EINVAL;
	*skel = ls->skel.p;
	*len = ls->skel.len;
	return 0;
}
