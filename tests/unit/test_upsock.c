/* Unit tests for agent/upsock.c, on real loopback sockets: each query leaves from a new
 * random port; nothing that was queued for (or is later sent to) an old port is read after
 * a recycle; datagrams from others are told apart; ICMP errors reach the unconnected socket;
 * a spare that something reached is emptied; a server on the socket's own port is seen. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"
#include "agent/upsock.h"

/* A UDP "server" socket on 127.0.0.1 (or ::1) at a kernel-chosen port. */
static int server_socket(int family, struct sockaddr_storage *addr)
{
	socklen_t len = sizeof *addr;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(addr, 0, sizeof *addr);
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)addr;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)addr;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof a;

	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a)->sin6_port
					     : ((struct sockaddr_in *)&a)->sin_port);
}

static socklen_t slen(int family)
{
	return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Sends one query from @cli to the server; returns what the server sees as the client's
 * address (it answers there). */
static void exchange(int srv, int cli, const struct sockaddr_storage *srvaddr,
		     struct sockaddr_storage *client)
{
	char buf[16];
	socklen_t len = sizeof *client;

	assert_int_equal(upsock_send(cli, srvaddr, "q", 1), 1);
	assert_int_equal(recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)client, &len), 1);
}

static void answer(int srv, const struct sockaddr_storage *client, const char *what)
{
	size_t n = strlen(what);

	assert_int_equal(sendto(srv, what, n, 0, (const struct sockaddr *)client,
				slen(client->ss_family)),
			 (ssize_t)n);
}

/* Waits (up to 1 s) until @fd has something to read; loopback delivers synchronously, so
 * this only guards against a slow machine. */
static void wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 1000), 1);
}

static void recycled_socket_reads_nothing_old(int family)
{
	struct sockaddr_storage srvaddr, client, again;
	int srv = server_socket(family, &srvaddr);
	int cli = upsock_open(family);
	char b0[16], b1[16];
	struct upsock_dgram d[2] = { { .buf = b0, .cap = sizeof b0 },
				     { .buf = b1, .cap = sizeof b1 } };

	assert_true(cli >= 0);
	assert_int_equal(local_port(cli), 0); /* no port until the first query */
	exchange(srv, cli, &srvaddr, &client);
	uint16_t first = local_port(cli);
	assert_int_not_equal(first, 0);
	/* the answer, then two more datagrams the client never reads: a duplicate and a
	 * forgery aimed at the port */
	answer(srv, &client, "ans");
	answer(srv, &client, "dup");
	answer(srv, &client, "old");
	wait_readable(cli);
	assert_int_equal(upsock_read(cli, d, 2), 2); /* the answer and one more: not empty */
	assert_int_equal(d[0].len, 3);
	assert_memory_equal(b0, "ans", 3);
	assert_true(config_addr_equal(&d[0].from, &srvaddr));

	assert_int_equal(upsock_recycle(cli, false), 0);
	assert_int_equal(local_port(cli), 0); /* the port is given back */
	/* what was still queued is gone */
	assert_int_equal(upsock_read(cli, d, 2), -EAGAIN);
	/* sent to the old port after the recycle: that port is no longer the socket's */
	answer(srv, &client, "late");

	/* the next query leaves from a new port; the first thing read is its answer */
	exchange(srv, cli, &srvaddr, &again);
	assert_int_not_equal(local_port(cli), 0);
	answer(srv, &again, "new");
	wait_readable(cli);
	assert_int_equal(upsock_read(cli, d, 2), 1); /* one, so the socket is empty */
	assert_int_equal(d[0].len, 3);
	assert_memory_equal(b0, "new", 3);
	assert_true(config_addr_equal(&d[0].from, &srvaddr));
	/* known empty: recycled without a read */
	assert_int_equal(upsock_recycle(cli, true), 0);
	assert_int_equal(local_port(cli), 0);
	close(cli);
	close(srv);
}

/* The socket is not connected: the kernel hands it a datagram from anyone who finds the
 * port; config_addr_equal tells the server's from the others, and a cut datagram shows
 * its full length. */
static void test_from_tells_the_server_from_others(void **state)
{
	struct sockaddr_storage srvaddr, otheraddr, client;
	int srv = server_socket(AF_INET, &srvaddr);
	int other = server_socket(AF_INET, &otheraddr);
	int cli = upsock_open(AF_INET);
	char b0[4], b1[4];
	struct upsock_dgram d[2] = { { .buf = b0, .cap = sizeof b0 },
				     { .buf = b1, .cap = sizeof b1 } };

	(void)state;
	assert_true(cli >= 0);
	exchange(srv, cli, &srvaddr, &client);
	answer(other, &client, "forged");
	answer(srv, &client, "ok");
	wait_readable(cli);
	usleep(10000);
	assert_int_equal(upsock_read(cli, d, 2), 2);
	assert_false(config_addr_equal(&d[0].from, &srvaddr));
	assert_true(config_addr_equal(&d[0].from, &otheraddr));
	assert_int_equal(d[0].len, 6); /* 6 > cap: cut, and known to be */
	assert_true(config_addr_equal(&d[1].from, &srvaddr));
	assert_int_equal(d[1].len, 2);
	/* same address, other port; other family */
	struct sockaddr_storage x = srvaddr;
	((struct sockaddr_in *)&x)->sin_port ^= htons(1);
	assert_false(config_addr_equal(&x, &srvaddr));
	x.ss_family = AF_INET6;
	assert_false(config_addr_equal(&x, &srvaddr));
	close(cli);
	close(other);
	close(srv);
}

/* A query to a closed port fails at once: the ICMP error reaches the unconnected socket. */
static void test_icmp_refused_is_reported(void **state)
{
	struct sockaddr_storage srvaddr;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(AF_INET);
	char b0[16];
	struct upsock_dgram d[1] = { { .buf = b0, .cap = sizeof b0 } };
	struct pollfd p = { .events = POLLIN };

	(void)state;
	close(srv); /* nothing listens there now */
	assert_true(cli >= 0);
	assert_int_equal(upsock_send(cli, &srvaddr, "q", 1), 1);
	p.fd = cli;
	assert_int_equal(poll(&p, 1, 1000), 1);
	assert_true(p.revents & POLLERR);
	assert_int_equal(upsock_read(cli, d, 1), -ECONNREFUSED);
	/* the ICMP message stays on the error queue until the socket is emptied */
	assert_int_equal(upsock_recycle(cli, false), 0);
	p.revents = 0;
	assert_int_equal(poll(&p, 1, 0), 0);
	close(cli);
}

/* upsock_on_port_of tells a server on the socket's own port (where its queries come back to
 * it) from the server it sent to, and from the same port number in the other family. */
static void test_on_port_of_tells_the_own_port(void **state)
{
	struct sockaddr_storage srvaddr, client, self;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(AF_INET);

	(void)state;
	assert_true(cli >= 0);
	exchange(srv, cli, &srvaddr, &client);
	assert_false(upsock_on_port_of(cli, &srvaddr));
	self = client; /* 127.0.0.1 at the port the kernel drew for the socket */
	assert_true(upsock_on_port_of(cli, &self));
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self;
	uint16_t port = ((struct sockaddr_in *)&client)->sin_port;
	memset(&self, 0, sizeof self);
	v6->sin6_family = AF_INET6;
	v6->sin6_addr = in6addr_loopback;
	v6->sin6_port = port;
	assert_false(upsock_on_port_of(cli, &self));
	close(cli);
	close(srv);
}

/* Upstream sockets send with DF and ignore path MTU news (RFC 9715): PROBE on IPv4, and on
 * IPv6 PROBE with IPV6_DONTFRAG. */
static void test_sockets_do_not_fragment(void **state)
{
	int v = -1;
	socklen_t len = sizeof v;
	int fd = upsock_open(AF_INET);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, &len), 0);
	assert_int_equal(v, IP_PMTUDISC_PROBE);
	close(fd);
	fd = upsock_open(AF_INET6);
	if (fd < 0)
		skip(); /* no IPv6 here */
	len = sizeof v;
	assert_int_equal(getsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v, &len), 0);
	assert_int_equal(v, IPV6_PMTUDISC_PROBE);
	len = sizeof v;
	assert_int_equal(getsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &v, &len), 0);
	assert_int_equal(v, 1);
	close(fd);
}

/* A recycled spare that still holds datagrams is emptied by upsock_drain. */
static void test_drain_empties_a_spare(void **state)
{
	struct sockaddr_storage srvaddr, client;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(AF_INET);
	char buf[16];

	(void)state;
	assert_true(cli >= 0);
	exchange(srv, cli, &srvaddr, &client);
	for (int i = 0; i < 3; i++)
		answer(srv, &client, "dup");
	wait_readable(cli);
	assert_int_equal(upsock_recycle(cli, true), 0); /* a wrong "empty": nothing read */
	assert_int_equal(recv(cli, buf, sizeof buf, MSG_DONTWAIT | MSG_PEEK), 3);
	assert_int_equal(upsock_drain(cli), 0);
	assert_int_equal(recv(cli, buf, sizeof buf, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	close(cli);
	close(srv);
}

static void test_recycle_ipv4(void **state)
{
	(void)state;
	recycled_socket_reads_nothing_old(AF_INET);
}

static void test_recycle_ipv6(void **state)
{
	struct sockaddr_in6 probe = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);

	(void)state;
	if (fd < 0 || bind(fd, (struct sockaddr *)&probe, sizeof probe) < 0) {
		if (fd >= 0)
			close(fd);
		skip(); /* no ::1 here */
	}
	close(fd);
	recycled_socket_reads_nothing_old(AF_INET6);
}

/* Each recycle draws a new port: over 200 queries from one socket, the ports are (almost)
 * all different and spread over the ephemeral range, as with a new socket per query. */
static void test_recycled_ports_are_random(void **state)
{
	struct sockaddr_storage srvaddr, client;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(AF_INET);
	uint16_t ports[200];
	unsigned distinct = 0, lo = 65535, hi = 0;

	(void)state;
	assert_true(cli >= 0);
	for (int i = 0; i < 200; i++) {
		if (i > 0)
			assert_int_equal(upsock_recycle(cli, true), 0);
		exchange(srv, cli, &srvaddr, &client);
		ports[i] = local_port(cli);
		/* the port the server saw is the one the socket holds */
		assert_int_equal(ntohs(((struct sockaddr_in *)&client)->sin_port), ports[i]);
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen = seen || ports[j] == ports[i];
		distinct += !seen;
		lo = ports[i] < lo ? ports[i] : lo;
		hi = ports[i] > hi ? ports[i] : hi;
	}
	assert_true(distinct >= 190);
	assert_true(hi - lo > 4000); /* the default range is 28,232 ports wide */
	close(cli);
	close(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recycle_ipv4),
		cmocka_unit_test(test_recycle_ipv6),
		cmocka_unit_test(test_recycled_ports_are_random),
		cmocka_unit_test(test_drain_empties_a_spare),
		cmocka_unit_test(test_from_tells_the_server_from_others),
		cmocka_unit_test(test_icmp_refused_is_reported),
		cmocka_unit_test(test_on_port_of_tells_the_own_port),
		cmocka_unit_test(test_sockets_do_not_fragment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
