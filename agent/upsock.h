/* Upstream UDP sockets: each query leaves from a fresh random source port (RFC 5452).
 *
 * A socket that has carried one query and its answer is recycled rather than closed: it is
 * disconnected (the kernel unhashes it and forgets its port) and, for the next query,
 * connected again, which binds it to a new random port, and emptied of anything still
 * queued before the query is sent. Nothing that reaches it before the query leaves can be
 * an answer to it, so nothing sent to an old port is ever taken for one. This keeps the
 * port unpredictable per query while saving the socket(2), epoll_ctl(2) and close(2) of a
 * new socket.
 */
#ifndef MESHDNS_AGENT_UPSOCK_H
#define MESHDNS_AGENT_UPSOCK_H

#include <sys/socket.h>

/* A non-blocking UDP socket connected to @srv, on a random ephemeral port. Returns the file
 * descriptor or a negative errno. */
int upsock_open(const struct sockaddr_storage *srv);

/* Connects recycled socket @fd to @srv (the kernel binds it to a new random port) and reads
 * away whatever it holds. Returns 0, or a negative errno (-EBUSY: datagrams keep coming);
 * the caller then closes it. */
int upsock_reuse(int fd, const struct sockaddr_storage *srv);

/* Sends @len bytes on connected socket @fd; reads one datagram into @buf. Both return what
 * send(2) and recv(2) return (recv with MSG_TRUNC: the datagram's full length), never
 * block, and go straight through syscall(2): glibc's wrappers are cancellation points that
 * switch asynchronous cancellation on and off around every call, and the agent never
 * cancels threads. */
ssize_t upsock_send(int fd, const void *buf, size_t len);
ssize_t upsock_recv(int fd, void *buf, size_t cap);

/* Disconnects @fd: the kernel drops its port and delivers nothing more to it. Returns 0 or
 * a negative errno; the caller then closes it. */
int upsock_recycle(int fd);

/* Reads away what @fd holds. Returns 0 once it is empty, -EBUSY when datagrams keep coming,
 * or another negative errno. */
int upsock_drain(int fd);

#endif
