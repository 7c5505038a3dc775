/* Upstream UDP sockets: each query leaves from a fresh random source port (RFC 5452).
 *
 * A socket that has carried one query and its answer is recycled rather than closed: it is
 * disconnected (the kernel unhashes it and forgets its port), emptied of anything still
 * queued, and connected again for the next query, which binds it to a new random port.
 * This keeps the port unpredictable per query while saving the socket(2), epoll_ctl(2) and
 * close(2) of a new socket.
 */
#ifndef MESHDNS_AGENT_UPSOCK_H
#define MESHDNS_AGENT_UPSOCK_H

#include <sys/socket.h>

/* A non-blocking UDP socket connected to @srv, on a random ephemeral port. Returns the file
 * descriptor or a negative errno. */
int upsock_open(const struct sockaddr_storage *srv);

/* Connects recycled socket @fd to @srv; the kernel binds it to a new random port. Returns 0
 * or a negative errno. */
int upsock_connect(int fd, const struct sockaddr_storage *srv);

/* Sends @len bytes on connected socket @fd; reads one datagram into @buf. Both return what
 * send(2) and recv(2) return (recv with MSG_TRUNC: the datagram's full length), never
 * block, and go straight through syscall(2): glibc's wrappers are cancellation points that
 * switch asynchronous cancellation on and off around every call, and the agent never
 * cancels threads. */
ssize_t upsock_send(int fd, const void *buf, size_t len);
ssize_t upsock_recv(int fd, void *buf, size_t cap);

/* Disconnects @fd and reads away what it still holds, so that nothing sent to its old port
 * can be taken for an answer to its next query. Returns 0 when it is empty and free of its
 * port, or a negative errno (-EBUSY: datagrams keep coming); the caller then closes it. */
int upsock_recycle(int fd);

#endif
