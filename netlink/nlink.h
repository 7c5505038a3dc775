/* The link that holds the listen addresses, kept in place through netlink (libnl-route).
 *
 * nlink_start makes sure the link exists and is up and holds every address, then watches
 * netlink events on the given libuv loop and repairs a removed address or link within a
 * second. nlink_stop stops watching and, when asked, removes what the agent put in place.
 * The operations are idempotent: an address or link that already exists is success.
 */
#ifndef MESHDNS_NLINK_H
#define MESHDNS_NLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct nlink;
struct uv_loop_s;

struct nlink_opts {
	const char *ifname;                   /* --interface, e.g. "meshdns" */
	const char *kind;                     /* --interface-kind, e.g. "dummy" or "bridge" */
	const struct sockaddr_storage *addrs; /* listen addresses (ports ignored) */
	size_t naddrs;
};

/* Puts the link and addresses in place (IPv4 as /32, IPv6 as /128 with NODAD so that a bind
 * works at once) and starts watching on @loop. Returns 0 and sets *@out, or:
 *   -EPERM       no CAP_NET_ADMIN (logged, naming --no-interface);
 *   -EOPNOTSUPP  the kernel cannot create a link of this kind (logged, naming
 *                --interface-kind);
 *   another negative errno (logged with libnl's message).
 * Call from the loop's thread. */
int nlink_start(struct nlink **out, struct uv_loop_s *loop, const struct nlink_opts *opts);

/* Number of repairs made since start (meshdns_interface_repairs_total). Any thread. */
uint64_t nlink_repairs(const struct nlink *n);

/* Stops watching. When @teardown, removes the addresses the agent added and deletes the
 * link if the agent created it or it is of the configured kind. Closes the loop handles and
 * frees @n once they are closed; the loop must run on until then. */
void nlink_stop(struct nlink *n, bool teardown);

#endif
