/* Unit tests for agent/upsock.c, on real loopback sockets: a recycled socket leaves from a
 * new port, and nothing that was queued for (or is later sent to) its old port is read
 * after it is connected again; a spare that something reached is emptied. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

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

/* What the server sees as the client's address: it answers there. */
static void exchange(int srv, int cli, struct sockaddr_storage *client)
{
	char buf[16];
	socklen_t len = sizeof *client;

	assert_int_equal(send(cli, "q", 1, 0), 1);
	assert_int_equal(recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)client, &len), 1);
}

static void recycled_socket_reads_nothing_old(int family)
{
	struct sockaddr_storage srvaddr, client;
	int srv = server_socket(family, &srvaddr);
	int cli = upsock_open(&srvaddr);
	char buf[16];

	assert_true(cli >= 0);
	exchange(srv, cli, &client);
	uint16_t first = local_port(cli);
	assert_int_not_equal(first, 0);
	/* the answer, then two more datagrams the client never reads: a duplicate and a
	 * forgery aimed at the port */
	for (int i = 0; i < 3; i++)
		assert_int_equal(sendto(srv, "old", 3, 0, (struct sockaddr *)&client,
					family == AF_INET6 ? sizeof(struct sockaddr_in6)
							   : sizeof(struct sockaddr_in)),
				 3);
	assert_int_equal(recv(cli, buf, sizeof buf, 0), 3);

	assert_int_equal(upsock_recycle(cli), 0);
	assert_int_equal(local_port(cli), 0); /* the port is given back */

	/* connected anew: a new port, and the two datagrams still queued are gone */
	assert_int_equal(upsock_reuse(cli, &srvaddr), 0);
	assert_int_not_equal(local_port(cli), 0);
	assert_int_equal(recv(cli, buf, sizeof buf, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
	/* Sent to the old port after the recycle: that port is no longer the socket's. */
	sendto(srv, "late", 4, 0, (struct sockaddr *)&client,
	       family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	struct sockaddr_storage again;
	exchange(srv, cli, &again);
	assert_int_equal(sendto(srv, "new", 3, 0, (struct sockaddr *)&again,
				family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in)),
			 3);
	/* the first thing read is the answer to the new query */
	assert_int_equal(recv(cli, buf, sizeof buf, 0), 3);
	assert_memory_equal(buf, "new", 3);
	close(cli);
	close(srv);
}

/* A disconnected spare can still hold what was queued before; upsock_drain empties it. */
static void test_drain_empties_a_spare(void **state)
{
	struct sockaddr_storage srvaddr, client;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(&srvaddr);
	char buf[16];

	(void)state;
	assert_true(cli >= 0);
	exchange(srv, cli, &client);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sendto(srv, "dup", 3, 0, (struct sockaddr *)&client,
					sizeof(struct sockaddr_in)),
				 3);
	assert_int_equal(upsock_recycle(cli), 0);
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
	struct sockaddr_storage srvaddr;
	int srv = server_socket(AF_INET, &srvaddr);
	int cli = upsock_open(&srvaddr);
	uint16_t ports[200];
	unsigned distinct = 0, lo = 65535, hi = 0;

	(void)state;
	assert_true(cli >= 0);
	for (int i = 0; i < 200; i++) {
		if (i > 0) {
			assert_int_equal(upsock_recycle(cli), 0);
			assert_int_equal(upsock_reuse(cli, &srvaddr), 0);
		}
		ports[i] = local_port(cli);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
