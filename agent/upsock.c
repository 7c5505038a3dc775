/* Upstream UDP sockets. See upsock.h. */
#include "agent/upsock.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define DRAIN_READS 16 /* datagrams read away before a socket is given up on */

static socklen_t addr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int do_connect(int fd, const struct sockaddr_storage *srv)
{
	/* Unbound, the socket gets a port from connect(): the kernel draws it at random from
	 * the ephemeral range, and then delivers only what @srv sends to that port. */
	if (syscall(SYS_connect, fd, (const struct sockaddr *)srv, addr_len(srv)) < 0)
		return -errno;
	return 0;
}

int upsock_open(const struct sockaddr_storage *srv)
{
	int fd = socket(srv->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	r = do_connect(fd, srv);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int upsock_reuse(int fd, const struct sockaddr_storage *srv)
{
	int r = do_connect(fd, srv);

	/* Emptied after the connect: whatever reached the socket before, under its old port
	 * or in the instant it was being unhashed, is gone before the query leaves. */
	return r < 0 ? r : upsock_drain(fd);
}

ssize_t upsock_send(int fd, const void *buf, size_t len)
{
	return syscall(SYS_sendto, fd, buf, len, MSG_DONTWAIT, NULL, 0);
}

ssize_t upsock_recv(int fd, void *buf, size_t cap)
{
	return syscall(SYS_recvfrom, fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC, NULL, NULL);
}

int upsock_recycle(int fd)
{
	struct sockaddr unspec;

	memset(&unspec, 0, sizeof unspec);
	unspec.sa_family = AF_UNSPEC;
	/* Dissolves the association. The socket was never bound by hand, so the kernel also
	 * takes it out of its tables and drops its port: from here on nothing is delivered to
	 * it, and the next connect() binds a new one. */
	if (syscall(SYS_connect, fd, &unspec, sizeof unspec) < 0)
		return -errno;
	return 0;
}

int upsock_drain(int fd)
{
	uint8_t byte;

	/* A late duplicate, a forgery aimed at an old port, or an error queued by ICMP: each
	 * read takes one away. */
	for (int i = 0; i < DRAIN_READS; i++) {
		ssize_t n = upsock_recv(fd, &byte, sizeof byte);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
	}
	return -EBUSY;
}
