/* TCP stream framing for DNS (RFC 1035 section 4.2.2, RFC 7766): a 2-byte length before
 * each message. Bytes arrive in any split; complete messages come out in order.
 *
 * Pure: the buffer is the only state; it grows to what the longest message needs (at most
 * 2 + 65535 bytes) and no further.
 */
#ifndef MESHDNS_TCPFRAME_H
#define MESHDNS_TCPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TCPFRAME_MIN_ROOM 512
#define TCPFRAME_MAX      (2 + 65535)

struct tcpframe {
	uint8_t *buf;
	size_t cap;
	size_t start; /* first byte not consumed */
	size_t len;   /* bytes held, from start */
	bool broken;
};

void tcpframe_init(struct tcpframe *f);

/* Frees the buffer. Safe on a zeroed struct. */
void tcpframe_deinit(struct tcpframe *f);

/* Gives room for the next read at *@p (*@room bytes, at least 1). Moves held bytes to the
 * front, which invalidates messages returned before. Returns 0, -ENOMEM, or -ENOSPC when the
 * buffer holds a whole maximum-size message already (the caller must consume first). */
int tcpframe_reserve(struct tcpframe *f, uint8_t **p, size_t *room);

/* Records that @n bytes were written at the room given by tcpframe_reserve. */
void tcpframe_commit(struct tcpframe *f, size_t n);

/* Returns 1 and the next complete message in @msg/@len (valid until the next reserve), 0 when
 * more bytes are needed, or -EBADMSG when the stream is broken (a zero length prefix). */
int tcpframe_next(struct tcpframe *f, const uint8_t **msg, size_t *len);

/* True once the stream was found broken: close the connection. */
bool tcpframe_broken(const struct tcpframe *f);

#endif
