/* The link that holds the listen addresses. See nlink.h.
 *
 * Two netlink sockets. "cmd" sends one request at a time and waits for the kernel's ack: the
 * kernel handles an rtnetlink request inside the sendmsg call, so the wait is a round trip and
 * never a wait on anything outside the kernel (a receive timeout bounds it all the same).
 * "evt" is subscribed to link and address events, non-blocking, and read from a uv_poll_t.
 *
 * Every way the state can be (re)made goes through nlink_ensure: look the link up by name,
 * create it if missing, bring it up, add each address. Each step treats "already there" as
 * success, so the same function serves start-up, repairs after an event and the periodic
 * check. An event that may mean damage (an address of our link deleted, the link deleted or
 * down) arms a short debounce timer, so that the burst of events one `ip link del` causes
 * becomes a single repair.
 */
#include "netlink/nlink.h"

#include "agent/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/time.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <uv.h>

#define NLINK_GROUP	    "nlink"
#define NLINK_DEBOUNCE_MS   50	 /* one repair per burst of events */
#define NLINK_CHECK_MS	    5000 /* full check, in case events were missed */
#define NLINK_READ_BUDGET   64	 /* datagrams read per poll callback */
#define NLINK_CMD_TIMEOUT_S 1	 /* bound on waiting for an ack */
#define NLINK_KIND_MAX	    32
#define NLINK_HINT_KIND	    "bridge" /* a kind every kernel with a bridge module can create */

struct nlink_addr {
	int family; /* AF_INET or AF_INET6 */
	unsigned char bytes[16];
	bool added; /* added by us, so teardown removes it */
};

struct nlink {
	uv_poll_t poll;	     /* evt is readable */
	uv_timer_t debounce; /* armed by an event, runs one repair */
	uv_timer_t check;    /* periodic full check */
	struct nl_sock *cmd;
	struct nl_sock *evt;
	char ifname[IFNAMSIZ];
	char kind[NLINK_KIND_MAX];
	int ifindex;	   /* of the link as last seen; 0 when unknown */
	bool created_link; /* we created the link (at start or in a repair) */
	bool closing;
	int open_handles;
	struct nlink_addr *addrs;
	size_t naddrs;
	_Atomic uint64_t repairs;
	struct log_ratelimit rl_repair;
	struct log_ratelimit rl_events;
};

/* What one nlink_ensure pass changed. */
struct nlink_changes {
	bool link_created;
	bool link_up;
	size_t addrs_added;
};

static bool changes_any(const struct nlink_changes *ch)
{
	return ch->link_created || ch->link_up || ch->addrs_added > 0;
}

static int libnl_to_errno(int nlerr)
{
	switch (nlerr < 0 ? -nlerr : nlerr) {
	case NLE_SUCCESS:
		return 0;
	case NLE_INTR:
		return -EINTR;
	case NLE_BAD_SOCK:
		return -EBADF;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM: /* also what libnl makes of ENOBUFS */
		return -ENOMEM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_RANGE:
		return -ERANGE;
	case NLE_MSGSIZE:
		return -EMSGSIZE;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_AF_NOSUPPORT:
		return -EAFNOSUPPORT;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NOADDR:
		return -EADDRNOTAVAIL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_PROTO_MISMATCH:
		return -EPROTONOSUPPORT;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_PERM:
		return -EPERM;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_DUMP_INTR:
		return -EINTR;
	case NLE_SEQ_MISMATCH:
	case NLE_MSG_OVERFLOW:
	case NLE_MSG_TRUNC:
	case NLE_MSG_TOOSHORT:
	case NLE_PARSE_ERR:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* Translates libnl's result @nlerr (0 or -NLE_*) into 0 or a negative errno; the only place
 * in the module that does. A failure other than @expected (a negative errno the caller
 * handles, such as -EEXIST; 0 for none) is logged as one line, "@fmt: error (libnl's
 * message)", followed, for the failures an operator can fix, by what to do. */
static int nlink_result(int nlerr, int expected, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int nlink_result(int nlerr, int expected, const char *fmt, ...)
{
	char what[160];
	const char *hint = "";
	va_list ap;
	int err;

	if (nlerr >= 0)
		return 0;
	err = libnl_to_errno(nlerr);
	if (err == expected || LOG_LEVEL_ERROR > log_level_current)
		return err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (err == -EPERM)
		hint = "; CAP_NET_ADMIN is missing: grant it, or run with --no-interface when the "
		       "listen addresses already exist on the node";
	else if (err == -EACCES)
		hint = "; is IPv6 disabled (sysctl net.ipv6.conf.all.disable_ipv6)? Listen on IPv4 "
		       "only, or enable it";
	else if (err == -EOPNOTSUPP)
		hint = "; this kernel cannot create links of that kind: try "
		       "--interface-kind " NLINK_HINT_KIND;
	log_error(NLINK_GROUP, "%s: %s (libnl: %s)%s", what, strerror(-err), nl_geterror(nlerr),
		  hint);
	return err;
}

static const char *addr_str(const struct nlink_addr *a, char *buf, size_t len)
{
	if (!inet_ntop(a->family, a->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

/* Looks the link up by name. Returns 0 and sets *@out (the caller puts it), -ENODEV when
 * there is no such link, or another negative errno (logged). */
static int link_lookup(struct nlink *n, struct rtnl_link **out)
{
	int err;

	*out = NULL;
	err = nlink_result(rtnl_link_get_kernel(n->cmd, 0, n->ifname, out), -ENODEV,
			   "looking up link %s", n->ifname);
	if (err == -ENOENT)
		err = -ENODEV;
	if (err == 0)
		n->ifindex = rtnl_link_get_ifindex(*out);
	return err;
}

/* Creates the link with the configured kind. Someone else creating it first is success. */
static int link_create(struct nlink *n, struct nlink_changes *ch)
{
	struct rtnl_link *tmpl;
	int err;

	tmpl = rtnl_link_alloc();
	if (!tmpl) {
		log_error(NLINK_GROUP, "creating link %s: out of memory", n->ifname);
		return -ENOMEM;
	}
	rtnl_link_set_name(tmpl, n->ifname);
	err = nlink_result(rtnl_link_set_type(tmpl, n->kind), 0, "creating link %s of kind %s",
			   n->ifname, n->kind);
	if (err < 0)
		goto out;
	err = nlink_result(rtnl_link_add(n->cmd, tmpl, NLM_F_CREATE | NLM_F_EXCL), -EEXIST,
			   "creating link %s of kind %s", n->ifname, n->kind);
	if (err == 0) {
		ch->link_created = true;
		n->created_link = true;
	} else if (err == -EEXIST) {
		err = 0;
	}
out:
	rtnl_link_put(tmpl);
	return err;
}

static int link_set_up(struct nlink *n, struct rtnl_link *link, struct nlink_changes *ch)
{
	struct rtnl_link *change;
	int err;

	if (rtnl_link_get_flags(link) & IFF_UP)
		return 0;
	change = rtnl_link_alloc();
	if (!change) {
		log_error(NLINK_GROUP, "bringing link %s up: out of memory", n->ifname);
		return -ENOMEM;
	}
	rtnl_link_set_flags(change, IFF_UP);
	err = nlink_result(rtnl_link_change(n->cmd, link, change, 0), 0, "bringing link %s up",
			   n->ifname);
	if (err == 0)
		ch->link_up = true;
	rtnl_link_put(change);
	return err;
}

/* Builds the libnl object for @a on link @ifindex: IPv4 /32, IPv6 /128 with NODAD so that a
 * bind works at once. Returns NULL when out of memory.
 *
 * IPv4 gets scope host where node-local-dns leaves the default, global. Local delivery does
 * not look at the scope, so pods reach the address all the same (the integration test binds
 * right after start; a veth "pod" was checked by hand), but the kernel never picks a
 * host-scoped address as the source of the node's own traffic to other hosts, and with
 * arp_ignore=3 does not answer ARP for it. The kernel derives IPv6 scope from the address,
 * so there is nothing to choose there. */
static struct rtnl_addr *addr_build(const struct nlink_addr *a, int ifindex)
{
	struct rtnl_addr *ra;
	struct nl_addr *local;
	bool v4 = a->family == AF_INET;

	ra = rtnl_addr_alloc();
	local = nl_addr_build(a->family, a->bytes, v4 ? 4 : 16);
	if (!ra || !local)
		goto fail;
	nl_addr_set_prefixlen(local, v4 ? 32 : 128);
	rtnl_addr_set_ifindex(ra, ifindex);
	rtnl_addr_set_family(ra, a->family);
	if (rtnl_addr_set_local(ra, local) < 0)
		goto fail;
	rtnl_addr_set_prefixlen(ra, v4 ? 32 : 128);
	if (v4)
		rtnl_addr_set_scope(ra, RT_SCOPE_HOST);
	else
		rtnl_addr_set_flags(ra, IFA_F_NODAD);
	nl_addr_put(local);
	return ra;
fail:
	if (local)
		nl_addr_put(local);
	if (ra)
		rtnl_addr_put(ra);
	return NULL;
}

/* Adds @a to the link; an address already present is success. */
static int addr_ensure(struct nlink *n, struct nlink_addr *a, struct nlink_changes *ch)
{
	char buf[INET6_ADDRSTRLEN];
	struct rtnl_addr *ra;
	int err;

	ra = addr_build(a, n->ifindex);
	if (!ra) {
		log_error(NLINK_GROUP, "adding an address to %s: out of memory", n->ifname);
		return -ENOMEM;
	}
	err = nlink_result(rtnl_addr_add(n->cmd, ra, 0), -EEXIST, "adding %s to link %s",
			   addr_str(a, buf, sizeof buf), n->ifname);
	if (err == 0) {
		a->added = true;
		ch->addrs_added++;
		log_debug(NLINK_GROUP, "added %s to %s", addr_str(a, buf, sizeof buf), n->ifname);
	} else if (err == -EEXIST) {
		err = 0;
	}
	rtnl_addr_put(ra);
	return err;
}

/* Makes the link exist, be up and hold every address; records in @ch what it changed. Safe
 * to call at any time: what is already in place is left alone. */
static int nlink_ensure(struct nlink *n, struct nlink_changes *ch)
{
	struct rtnl_link *link = NULL;
	int err;

	memset(ch, 0, sizeof *ch);
	err = link_lookup(n, &link);
	if (err == -ENODEV) {
		n->ifindex = 0;
		err = link_create(n, ch);
		if (err == 0)
			err = link_lookup(n, &link);
	}
	if (err < 0)
		goto out;
	err = link_set_up(n, link, ch);
	for (size_t i = 0; i < n->naddrs && err == 0; i++)
		err = addr_ensure(n, &n->addrs[i], ch);
out:
	if (link)
		rtnl_link_put(link);
	return err;
}

struct foreign_scan {
	const struct nlink *n;
	bool foreign;
};

static void scan_addr(struct nl_object *obj, void *arg)
{
	struct foreign_scan *fs = arg;
	struct rtnl_addr *ra = (struct rtnl_addr *)obj;
	struct nl_addr *local = rtnl_addr_get_local(ra);
	const unsigned char *b;
	int family;

	if (rtnl_addr_get_ifindex(ra) != fs->n->ifindex || !local)
		return;
	family = nl_addr_get_family(local);
	b = nl_addr_get_binary_addr(local);
	/* the IPv6 link-local address the kernel gives every link that is up */
	if (family == AF_INET6 && b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return;
	for (size_t i = 0; i < fs->n->naddrs; i++)
		if (fs->n->addrs[i].family == family &&
		    memcmp(fs->n->addrs[i].bytes, b, family == AF_INET ? 4 : 16) == 0)
			return;
	fs->foreign = true;
}

/* True when the link holds an address that is not one of ours: someone else uses it. */
static bool holds_foreign_addresses(const struct nlink *n)
{
	struct nl_cache *cache;
	struct foreign_scan fs = { n, false };

	if (rtnl_addr_alloc_cache(n->cmd, &cache) < 0)
		return true; /* cannot tell: keep it */
	nl_cache_foreach(cache, scan_addr, &fs);
	nl_cache_free(cache);
	return fs.foreign;
}

/* Removes the addresses we added, then the link if we created it or, when @all, if it has the
 * configured kind and holds no address of anyone else (a link left by an earlier run that
 * was killed, but never, say, docker0 given by mistake with --interface-kind bridge). */
static void nlink_teardown(struct nlink *n, bool all)
{
	char buf[INET6_ADDRSTRLEN];
	struct rtnl_link *link;
	const char *kind;
	size_t removed = 0;
	bool del_link;

	if (link_lookup(n, &link) < 0)
		return; /* gone already, and the addresses with it */
	for (size_t i = 0; i < n->naddrs; i++) {
		struct nlink_addr *a = &n->addrs[i];
		struct rtnl_addr *ra;

		if (!a->added)
			continue;
		ra = addr_build(a, n->ifindex);
		if (!ra)
			continue;
		if (nlink_result(rtnl_addr_delete(n->cmd, ra, 0), -EADDRNOTAVAIL,
				 "removing %s from link %s", addr_str(a, buf, sizeof buf),
				 n->ifname) == 0)
			removed++;
		a->added = false;
		rtnl_addr_put(ra);
	}
	kind = rtnl_link_get_type(link);
	del_link = n->created_link ||
		   (all && kind && strcmp(kind, n->kind) == 0 && !holds_foreign_addresses(n));
	if (del_link && nlink_result(rtnl_link_delete(n->cmd, link), -ENODEV, "deleting link %s",
				     n->ifname) == 0)
		log_info(NLINK_GROUP, "deleted link %s", n->ifname);
	else if (removed)
		log_info(NLINK_GROUP, "removed %zu address(es) from link %s", removed, n->ifname);
	rtnl_link_put(link);
}

static void nlink_repair(struct nlink *n, const char *why)
{
	struct nlink_changes ch;
	int err;

	err = nlink_ensure(n, &ch);
	if (changes_any(&ch)) {
		atomic_fetch_add_explicit(&n->repairs, 1, memory_order_relaxed);
		log_warn(NLINK_GROUP,
			 "repaired link %s after %s:%s%s re-added %zu of %zu address(es)",
			 n->ifname, why, ch.link_created ? " re-created it," : "",
			 ch.link_up ? " brought it up," : "", ch.addrs_added, n->naddrs);
	}
	if (err < 0)
		log_warn_rl(&n->rl_repair, uv_now(n->poll.loop), NLINK_GROUP,
			    "could not repair link %s: %s; trying again on the next event or "
			    "within %d s",
			    n->ifname, strerror(-err), NLINK_CHECK_MS / 1000);
}

static void on_debounce(uv_timer_t *t)
{
	nlink_repair(t->data, "a netlink event");
}

static void on_check(uv_timer_t *t)
{
	nlink_repair(t->data, "the periodic check");
}

static void schedule_repair(struct nlink *n)
{
	if (n->closing || uv_is_active((uv_handle_t *)&n->debounce))
		return;
	uv_timer_start(&n->debounce, on_debounce, NLINK_DEBOUNCE_MS, 0);
}

/* Whether event @h may mean our link or one of its addresses is gone. */
static bool event_is_damage(const struct nlink *n, const struct nlmsghdr *h)
{
	const struct ifinfomsg *ifi;
	const struct ifaddrmsg *ifa;

	switch (h->nlmsg_type) {
	case RTM_DELADDR:
		if (!nlmsg_valid_hdr(h, sizeof *ifa))
			return false;
		ifa = nlmsg_data(h);
		return n->ifindex == 0 || (int)ifa->ifa_index == n->ifindex;
	case RTM_NEWLINK:
	case RTM_DELLINK:
		if (!nlmsg_valid_hdr(h, sizeof *ifi))
			return false;
		ifi = nlmsg_data(h);
		if (n->ifindex == 0)
			return true; /* our link is missing: any link event is worth a look */
		if (ifi->ifi_index != n->ifindex)
			return false;
		return h->nlmsg_type == RTM_DELLINK || !(ifi->ifi_flags & IFF_UP);
	default:
		return false;
	}
}

static int on_nl_event(struct nl_msg *msg, void *arg)
{
	struct nlink *n = arg;

	if (event_is_damage(n, nlmsg_hdr(msg)))
		schedule_repair(n);
	return NL_OK;
}

static void on_nl_readable(uv_poll_t *p, int status, int events)
{
	struct nlink *n = p->data;
	int err;

	(void)events;
	if (status < 0) {
		/* POLLERR: libuv has stopped the handle. On a netlink socket that is the
		 * overflow (ENOBUFS) that the read below reports and clears; poll again. */
		schedule_repair(n);
		err = uv_poll_start(p, UV_READABLE, on_nl_readable);
		if (err < 0)
			log_error(NLINK_GROUP,
				  "watching netlink events: %s; link %s is now checked every %d s "
				  "only",
				  uv_strerror(err), n->ifname, NLINK_CHECK_MS / 1000);
	}
	for (int i = 0; i < NLINK_READ_BUDGET; i++) {
		err = nl_recvmsgs_default(n->evt);
		if (err == -NLE_AGAIN)
			return;
		if (err < 0) {
			/* Mostly ENOBUFS, which libnl reports as -NLE_NOMEM: the queue overflowed
			 * and events were lost, so check everything. */
			log_warn_rl(&n->rl_events, uv_now(p->loop), NLINK_GROUP,
				    "netlink events were lost (%s); checking link %s",
				    err == -NLE_NOMEM ? "receive queue overflowed"
						      : nl_geterror(err),
				    n->ifname);
			schedule_repair(n);
			return;
		}
	}
}

static int nlink_connect(struct nl_sock **out, const char *what)
{
	*out = nl_socket_alloc();
	if (!*out) {
		log_error(NLINK_GROUP, "opening netlink %s socket: out of memory", what);
		return -ENOMEM;
	}
	return nlink_result(nl_connect(*out, NETLINK_ROUTE), 0, "opening netlink %s socket", what);
}

/* Opens both sockets. The event socket is subscribed before the first nlink_ensure, so that
 * nothing that happens after it goes unseen. */
static int nlink_open(struct nlink *n)
{
	struct timeval tv = { .tv_sec = NLINK_CMD_TIMEOUT_S };
	int err;

	err = nlink_connect(&n->cmd, "request");
	if (err < 0)
		return err;
	if (setsockopt(nl_socket_get_fd(n->cmd), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
		log_warn(NLINK_GROUP, "setting a timeout on the netlink socket: %s",
			 strerror(errno));
	err = nlink_connect(&n->evt, "event");
	if (err < 0)
		return err;
	nl_socket_disable_seq_check(n->evt);
	err = nlink_result(nl_socket_modify_cb(n->evt, NL_CB_VALID, NL_CB_CUSTOM, on_nl_event, n),
			   0, "setting the netlink event handler");
	if (err < 0)
		return err;
	err = nlink_result(nl_socket_add_memberships(n->evt, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
						     RTNLGRP_IPV6_IFADDR, 0),
			   0, "subscribing to link and address events");
	if (err < 0)
		return err;
	return nlink_result(nl_socket_set_nonblocking(n->evt), 0,
			    "making the netlink event socket non-blocking");
}

/* Copies and checks @opts; duplicate addresses (same IP, other port) are kept once. */
static int nlink_new(struct nlink **out, const struct nlink_opts *opts)
{
	char buf[INET6_ADDRSTRLEN];
	struct nlink *n;
	size_t len;

	*out = NULL;
	if (!opts || !opts->ifname || !opts->kind || (opts->naddrs && !opts->addrs))
		return -EINVAL;
	len = strlen(opts->ifname);
	if (len == 0 || len >= IFNAMSIZ) {
		log_error(NLINK_GROUP, "--interface: name must be 1 to %d characters",
			  IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (opts->kind[0] == '\0' || strlen(opts->kind) >= NLINK_KIND_MAX) {
		log_error(NLINK_GROUP, "--interface-kind: kind must be 1 to %d characters",
			  NLINK_KIND_MAX - 1);
		return -EINVAL;
	}
	n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	n->addrs = calloc(opts->naddrs ? opts->naddrs : 1, sizeof *n->addrs);
	if (!n->addrs) {
		free(n);
		return -ENOMEM;
	}
	memcpy(n->ifname, opts->ifname, strlen(opts->ifname) + 1);
	memcpy(n->kind, opts->kind, strlen(opts->kind) + 1);
	n->rl_repair = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	n->rl_events = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	for (size_t i = 0; i < opts->naddrs; i++) {
		const struct sockaddr_storage *ss = &opts->addrs[i];
		struct nlink_addr a = { .family = ss->ss_family };
		bool wild, dup = false;

		if (ss->ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

			memcpy(a.bytes, &sin->sin_addr, 4);
			wild = sin->sin_addr.s_addr == htonl(INADDR_ANY);
		} else if (ss->ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

			memcpy(a.bytes, &sin6->sin6_addr, 16);
			wild = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
		} else {
			log_error(NLINK_GROUP, "listen address %zu is neither IPv4 nor IPv6", i);
			goto fail;
		}
		if (wild) {
			log_error(NLINK_GROUP,
				  "cannot put %s on link %s: use --no-interface with a wildcard "
				  "listen address",
				  addr_str(&a, buf, sizeof buf), n->ifname);
			goto fail;
		}
		for (size_t j = 0; j < n->naddrs && !dup; j++)
			dup = n->addrs[j].family == a.family &&
			      memcmp(n->addrs[j].bytes, a.bytes, sizeof a.bytes) == 0;
		if (!dup)
			n->addrs[n->naddrs++] = a;
	}
	*out = n;
	return 0;
fail:
	free(n->addrs);
	free(n);
	return -EINVAL;
}

static void nlink_free(struct nlink *n)
{
	if (n->evt)
		nl_socket_free(n->evt);
	if (n->cmd)
		nl_socket_free(n->cmd);
	free(n->addrs);
	free(n);
}

static void on_closed(uv_handle_t *h)
{
	struct nlink *n = h->data;

	if (--n->open_handles == 0)
		nlink_free(n);
}

int nlink_start(struct nlink **out, struct uv_loop_s *loop, const struct nlink_opts *opts)
{
	struct nlink_changes ch = { 0 };
	struct nlink *n;
	int err;

	*out = NULL;
	err = nlink_new(&n, opts);
	if (err < 0)
		return err;
	err = nlink_open(n);
	if (err < 0)
		goto fail;
	err = nlink_ensure(n, &ch);
	if (err < 0)
		goto fail;
	err = uv_poll_init(loop, &n->poll, nl_socket_get_fd(n->evt));
	if (err < 0) {
		log_error(NLINK_GROUP, "watching netlink events: %s", uv_strerror(err));
		goto fail;
	}
	uv_timer_init(loop, &n->debounce);
	uv_timer_init(loop, &n->check);
	n->poll.data = n;
	n->debounce.data = n;
	n->check.data = n;
	n->open_handles = 3;
	/* Neither can fail on handles just initialised with a callback. */
	uv_poll_start(&n->poll, UV_READABLE, on_nl_readable);
	uv_timer_start(&n->check, on_check, NLINK_CHECK_MS, NLINK_CHECK_MS);
	log_info(NLINK_GROUP, "link %s (kind %s) in place:%s%s %zu of %zu address(es) added",
		 n->ifname, n->kind, ch.link_created ? " created," : " already there,",
		 ch.link_up ? " brought up," : "", ch.addrs_added, n->naddrs);
	*out = n;
	return 0;
fail:
	/* Undo what this call created, so a failed start leaves the node as it was. */
	if (n->cmd && (ch.link_created || ch.addrs_added))
		nlink_teardown(n, false);
	nlink_free(n);
	return err;
}

uint64_t nlink_repairs(const struct nlink *n)
{
	return atomic_load_explicit(&n->repairs, memory_order_relaxed);
}

void nlink_stop(struct nlink *n, bool teardown)
{
	if (!n || n->closing)
		return;
	n->closing = true;
	uv_poll_stop(&n->poll);
	uv_timer_stop(&n->debounce);
	uv_timer_stop(&n->check);
	if (teardown)
		nlink_teardown(n, true);
	uv_close((uv_handle_t *)&n->poll, on_closed);
	uv_close((uv_handle_t *)&n->debounce, on_closed);
	uv_close((uv_handle_t *)&n->check, on_closed);
}
