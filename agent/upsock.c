/* Upstream UDP sockets. See upsock.h. */
#include "agent/upsock.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/sockaddr.h"

#define DRAIN_READS 16 /* datagrams read away before a socket is given up on */

int upsock_dontfrag(int fd, int family)
{
	int on = 1, probe = family == AF_INET6 ? IPV6_PMTUDISC_PROBE : IP_PMTUDISC_PROBE;

	/* PROBE: DF set, the device's MTU used and path MTU news ignored, so a forged ICMP
	 * "fragmentation needed" changes nothing. (On IPv4 it also spares every datagram the
	 * kernel's shared IP ID generator: with DF honoured, the ID is 0.) */
	if (family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof probe) < 0 ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof on) < 0)
			return -errno;
		return 0;
	}
	if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe) < 0)
		return -errno;
	return 0;
}

int upsock_open(int family)
{
	int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1, r;

	if (fd < 0)
		return -errno;
	/* An unconnected socket hears of ICMP errors only with IP_RECVERR: without it, a closed
	 * server port would cost a whole timeout instead of failing the attempt at once. */
	if (family == AF_INET6)
		r = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
	else
		r = setsockopt(fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	(void)upsock_dontfrag(fd, family); /* hardening: without it, the kernel's default */
	return fd;
}

ssize_t upsock_send(int fd, const struct sockaddr_storage *srv, const void *buf, size_t len)
{
	return syscall(SYS_sendto, fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)srv,
		       sockaddr_len(srv));
}

bool upsock_on_port_of(int fd, const struct sockaddr_storage *srv)
{
	struct sockaddr_storage own;
	socklen_t len = sizeof own;

	if (getsockname(fd, (struct sockaddr *)&own, &len) < 0 || own.ss_family != srv->ss_family)
		return false;
	if (srv->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)&own)->sin6_port ==
		       ((const struct sockaddr_in6 *)srv)->sin6_port;
	return ((const struct sockaddr_in *)&own)->sin_port ==
	       ((const struct sockaddr_in *)srv)->sin_port;
}

int upsock_read(int fd, struct upsock_dgram *d, unsigned n)
{
	struct mmsghdr m[2];
	struct iovec iov[2];
	int r;

	if (n > 2)
		n = 2;
	memset(m, 0, sizeof(m[0]) * n);
	for (unsigned i = 0; i < n; i++) {
		iov[i].iov_base = d[i].buf;
		iov[i].iov_len = d[i].cap;
		m[i].msg_hdr.msg_iov = &iov[i];
		m[i].msg_hdr.msg_iovlen = 1;
		m[i].msg_hdr.msg_name = &d[i].from;
		m[i].msg_hdr.msg_namelen = sizeof d[i].from;
	}
	/* MSG_TRUNC: msg_len is the datagram's full length, so a cut one is recognised */
	r = (int)syscall(SYS_recvmmsg, fd, m, n, MSG_DONTWAIT | MSG_TRUNC, NULL);
	if (r < 0)
		return -errno;
	for (int i = 0; i < r; i++)
		d[i].len = m[i].msg_len;
	return r;
}

int upsock_recycle(int fd, bool empty)
{
	struct sockaddr unspec;

	memset(&unspec, 0, sizeof unspec);
	unspec.sa_family = AF_UNSPEC;
	/* The socket was never bound by hand, so the kernel takes it out of its tables and drops
	 * its port: from here on nothing is delivered to it, and the next sendto binds a new
	 * one. What is already queued stays, and is read away now, when no more can come. */
	if (syscall(SYS_connect, fd, &unspec, sizeof unspec) < 0)
		return -errno;
	return empty ? 0 : upsock_drain(fd);
}

int upsock_drain(int fd)
{
	uint8_t byte;

	struct iovec iov = { .iov_base = &byte, .iov_len = sizeof byte };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	int i;

	/* A late duplicate, a forgery aimed at an old port, or an error left by ICMP: each read
	 * takes one away; then the ICMP messages themselves, kept on the error queue. */
	for (i = 0; i < DRAIN_READS; i++) {
		ssize_t n = syscall(SYS_recvfrom, fd, &byte, sizeof byte, MSG_DONTWAIT, NULL, NULL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
	}
	for (; i < DRAIN_READS; i++)
		if (syscall(SYS_recvmsg, fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	return -EBUSY;
}
