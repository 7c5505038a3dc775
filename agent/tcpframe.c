/* TCP stream framing. See tcpframe.h. */
#include "agent/tcpframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void tcpframe_init(struct tcpframe *f)
{
	memset(f, 0, sizeof *f);
}

void tcpframe_deinit(struct tcpframe *f)
{
	free(f->buf);
	memset(f, 0, sizeof *f);
}

/* The size the buffer needs for the message being assembled. */
static size_t wanted(const struct tcpframe *f)
{
	if (f->len < 2)
		return TCPFRAME_MIN_ROOM;
	size_t need = 2 + ((size_t)f->buf[f->start] << 8 | f->buf[f->start + 1]);
	return need > f->len + 1 ? need : f->len + 1;
}

int tcpframe_reserve(struct tcpframe *f, uint8_t **p, size_t *room)
{
	if (f->start) {
		memmove(f->buf, f->buf + f->start, f->len);
		f->start = 0;
	}
	size_t need = wanted(f);
	if (need < TCPFRAME_MIN_ROOM)
		need = TCPFRAME_MIN_ROOM;
	if (need > TCPFRAME_MAX) {
		if (f->len >= TCPFRAME_MAX)
			return -ENOSPC;
		need = TCPFRAME_MAX;
	}
	if (f->cap < need) {
		uint8_t *nb = realloc(f->buf, need);
		if (!nb)
			return -ENOMEM;
		f->buf = nb;
		f->cap = need;
	}
	if (f->len >= f->cap)
		return -ENOSPC;
	*p = f->buf + f->len;
	*room = f->cap - f->len;
	return 0;
}

void tcpframe_commit(struct tcpframe *f, size_t n)
{
	f->len += n;
}

int tcpframe_next(struct tcpframe *f, const uint8_t **msg, size_t *len)
{
	if (f->broken)
		return -EBADMSG;
	if (f->len < 2)
		return 0;
	size_t mlen = (size_t)f->buf[f->start] << 8 | f->buf[f->start + 1];
	if (mlen == 0) {
		f->broken = true;
		return -EBADMSG;
	}
	if (f->len < 2 + mlen)
		return 0;
	*msg = f->buf + f->start + 2;
	*len = mlen;
	f->start += 2 + mlen;
	f->len -= 2 + mlen;
	if (f->len == 0)
		f->start = 0;
	return 1;
}

bool tcpframe_broken(const struct tcpframe *f)
{
	return f->broken;
}
