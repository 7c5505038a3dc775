/* Upstream UDP sockets: each query leaves from a fresh random source port (RFC 5452).
 *
 * A socket is never bound or connected by hand. The query is sent with sendto(2), and on a
 * socket without a port the kernel first binds it to one drawn at random from the ephemeral
 * range; one system call does both. The socket is then unconnected, so the kernel delivers
 * to it whatever reaches that port: the caller checks every datagram's source against the
 * server's address and port (config_addr_equal) before its ID and question. ICMP errors
 * still reach it (IP_RECVERR), so a closed server port fails the attempt at once.
 *
 * After its answer a socket is recycled rather than closed: connect(AF_UNSPEC) takes it out
 * of the kernel's tables and drops its port, so the next sendto draws a new one. Nothing
 * queued under the old port may be read as the answer to the next query: upsock_read says
 * when it found the socket empty, and a socket not known to be empty is emptied after it has
 * lost its port, when nothing more can reach it. This keeps the port unpredictable per query
 * while saving, per query, the socket(2), epoll_ctl(2) and close(2) of a new socket and a
 * connect(2).
 */
#ifndef MESHDNS_AGENT_UPSOCK_H
#define MESHDNS_AGENT_UPSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A non-blocking UDP socket of @family (AF_INET or AF_INET6), without a port yet, that
 * hears of ICMP errors and (where the kernel allows) does not fragment. Returns the file
 * descriptor or a negative errno. */
int upsock_open(int family);

/* Sets "don't fragment" on UDP socket @fd of @family, as RFC 9715 advises for DNS over UDP:
 * a datagram is sent whole or not at all, never as fragments (which can be forged without
 * knowing the ID). The agent's UDP messages fit any link: queries are small and answers at
 * most 1,232 bytes. Used for listeners too. Returns 0 or a negative errno; callers go on
 * without it (the kernel's default path MTU mode) where a kernel refuses it. */
int upsock_dontfrag(int fd, int family);

/* Sends @len bytes to @srv from @fd (binding it to a new random port if it has none).
 * Returns what sendto(2) returns; never blocks. */
ssize_t upsock_send(int fd, const struct sockaddr_storage *srv, const void *buf, size_t len);

/* A datagram read by upsock_read: @buf and @cap are given, @len (its full length, which is
 * larger than @cap when it was cut) and @from are filled in. */
struct upsock_dgram {
	void *buf;
	size_t cap;
	size_t len;
	struct sockaddr_storage from;
};

/* Whether @fd is bound to the port of @srv (of its family), so that what it sends to @srv
 * may come back to it: a server on this host, not running, on a port of the ephemeral range
 * the kernel drew for @fd. Costs a getsockname(2); for rare paths. */
bool upsock_on_port_of(int fd, const struct sockaddr_storage *srv);

/* Reads up to @n datagrams from @fd in one call. Returns how many, or a negative errno:
 * -EAGAIN when there is none, or the error an ICMP message left (-ECONNREFUSED, ...). Fewer
 * than @n means that the socket was empty when it was read.
 *
 * Upstream I/O goes straight through syscall(2): glibc's wrappers are cancellation points
 * that switch asynchronous cancellation on and off around every call, and the agent never
 * cancels threads. */
int upsock_read(int fd, struct upsock_dgram *d, unsigned n);

/* Recycles @fd: the kernel drops its port and delivers nothing more to it; unless @empty (the
 * last read found it empty), what it still holds is then read away. Returns 0, or a negative
 * errno (-EBUSY: it cannot be emptied); the caller then closes it. */
int upsock_recycle(int fd, bool empty);

/* Reads away what @fd holds. Returns 0 once it is empty, -EBUSY when datagrams keep coming,
 * or another negative errno. */
int upsock_drain(int fd);

#endif
