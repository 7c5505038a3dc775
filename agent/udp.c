/* UDP serving: one SO_REUSEPORT socket per listen address per worker, read in batches with
 * recvmmsg and answered in batches with sendmmsg. libuv only reports readiness (uv_poll); the
 * receive and send slabs belong to the worker, so a cache hit allocates nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "agent/log.h"
#include "agent/sockaddr.h"
#include "agent/upsock.h"
#include "agent/uring.h"
#include "agent/worker.h"

/* recvmmsg and sendmmsg straight through syscall(2): glibc's wrappers are cancellation
 * points and switch asynchronous cancellation on and off around every call, which costs
 * about 1 % of a cache hit; the agent never cancels threads. */
static inline int udp_recvmmsg(int fd, struct mmsghdr *m, unsigned n)
{
	return (int)syscall(SYS_recvmmsg, fd, m, n, MSG_DONTWAIT, NULL);
}

/* One datagram goes out with sendto, which spares the kernel copying in and walking a
 * message vector (about 1 % of a forwarded answer, which is usually alone in its round).
 * Every msg_name here points at a struct sockaddr_storage. */
static inline int udp_sendmmsg(int fd, struct mmsghdr *m, unsigned n)
{
	if (n == 1) {
		const struct msghdr *h = &m->msg_hdr;
		return upsock_send(fd, h->msg_name, h->msg_iov[0].iov_base,
				   h->msg_iov[0].iov_len) < 0 ? -1 : 1;
	}
	return (int)syscall(SYS_sendmmsg, fd, m, n, MSG_DONTWAIT);
}

#define UDP_TX_SLOT 1280 /* >= WIRE_EDNS_PAYLOAD: every UDP reply fits */
#define UDP_ROUNDS  8    /* batches per readiness event, so other sockets get a turn */

struct udp_batch {
	struct mmsghdr rx[UDP_BATCH];
	struct iovec rxiov[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	struct mmsghdr tx[UDP_BATCH];
	struct iovec txiov[UDP_BATCH];
	uint8_t zone[UDP_BATCH];
	uint8_t qtype[UDP_BATCH];
	const uint8_t *pkt[UDP_BATCH]; /* each datagram: rxbuf, or a ring buffer (uring.c) */
	unsigned nrx; /* datagrams the last read returned */
	uint8_t rxbuf[UDP_BATCH][UDP_RX_SLOT];
	uint8_t txbuf[UDP_BATCH][UDP_TX_SLOT];

	/* Forwarded answers queued while upstream replies are handled, sent in one sendmmsg
	 * per listener by udp_flush. */
	bool queueing;
	unsigned nq;
	struct udp_listener *ql[UDP_BATCH];
	struct sockaddr_storage qto[UDP_BATCH];
	struct mmsghdr qmsg[UDP_BATCH];
	struct iovec qiov[UDP_BATCH];
	uint8_t qbuf[UDP_BATCH][UDP_TX_SLOT];
};

struct udp_batch *udp_batch_new(void)
{
	struct udp_batch *b = calloc(1, sizeof *b);

	if (!b)
		return NULL;
	for (int i = 0; i < UDP_BATCH; i++) {
		b->rxiov[i].iov_base = b->rxbuf[i];
		b->rxiov[i].iov_len = UDP_RX_SLOT;
		b->rx[i].msg_hdr.msg_namelen = sizeof b->from[i];
		b->rx[i].msg_hdr.msg_iov = &b->rxiov[i];
		b->rx[i].msg_hdr.msg_iovlen = 1;
		b->rx[i].msg_hdr.msg_name = &b->from[i];
		b->pkt[i] = b->rxbuf[i];
		b->tx[i].msg_hdr.msg_iov = &b->txiov[i];
		b->tx[i].msg_hdr.msg_iovlen = 1;
	}
	return b;
}

int udp_listener_open(struct worker *w, struct udp_listener *l,
		      const struct sockaddr_storage *addr)
{
	int fd = worker_listen_socket(addr, SOCK_DGRAM);

	memset(l, 0, sizeof *l);
	l->w = w;
	l->v6 = addr->ss_family == AF_INET6;
	if (fd < 0)
		return fd;
	int rcvbuf = 4 << 20;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	int r = upsock_dontfrag(fd, addr->ss_family);
	if (r < 0)
		log_warn("udp", "answers may leave as IP fragments: DF not set (%s)", strerror(-r));
	l->fd = fd;
	return 0;
}

static void on_udp_readable(uv_poll_t *h, int status, int events);

void udp_listener_start(struct udp_listener *l)
{
	if (l->w->ring && !l->ring_failed && wring_arm(l->w->ring, l) == 0)
		return;
	uv_poll_init(&l->w->loop, &l->poll, l->fd);
	l->poll.data = l;
	uv_poll_start(&l->poll, UV_READABLE, on_udp_readable);
}

/* A reply that could not leave whole: DF is set (upsock_dontfrag) and it is larger than the
 * MTU of the link towards the client, below 1,280 bytes. It is cut to header, question and
 * OPT with TC set (RFC 9715), so that the client asks again over TCP. Returns whether it was
 * cut (then it is sent again). */
static bool cut_for_mtu(struct msghdr *h)
{
	struct iovec *v = h->msg_iov;
	int n = wire_cut_to_question(v->iov_base, v->iov_len);

	if (n < 0 || (size_t)n >= v->iov_len)
		return false;
	v->iov_len = (size_t)n;
	return true;
}

/* Sends the @n messages of @m from @l's socket, in as few sendmmsg calls as it takes. One
 * that fails is lost (EAGAIN: the socket buffer is full), unless it failed for its size
 * alone: then it goes again, cut (cut_for_mtu). */
static void send_all(struct udp_listener *l, struct mmsghdr *m, unsigned n)
{
	unsigned sent = 0;
	int cut = -1; /* the message cut last, until it is sent */

	while (sent < n) {
		int r = udp_sendmmsg(l->fd, m + sent, n - sent);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EMSGSIZE && cut != (int)sent &&
			    cut_for_mtu(&m[sent].msg_hdr)) {
				cut = (int)sent;
				continue;
			}
			stats_inc(&l->w->stats.dropped[STATS_DROP_SEND]);
			sent++;
			continue;
		}
		if (cut >= (int)sent && cut < (int)sent + r) {
			stats_inc(&l->w->stats.mtu_truncated);
			cut = -1;
		}
		sent += (unsigned)r;
	}
}

void udp_queue_begin(struct worker *w)
{
	w->batch->queueing = true;
}

void udp_flush(struct worker *w)
{
	struct udp_batch *b = w->batch;
	unsigned done = 0;

	b->queueing = false;
	/* one sendmmsg per listener, in queue order */
	while (done < b->nq) {
		struct udp_listener *l = b->ql[done];
		unsigned m = 0;
		for (unsigned i = done; i < b->nq && b->ql[i] == l; i++) {
			b->qmsg[m].msg_hdr.msg_name = &b->qto[i];
			b->qmsg[m].msg_hdr.msg_namelen = sockaddr_len(&b->qto[i]);
			b->qmsg[m].msg_hdr.msg_iov = &b->qiov[i];
			b->qmsg[m].msg_hdr.msg_iovlen = 1;
			m++;
		}
		send_all(l, b->qmsg, m);
		done += m;
	}
	b->nq = 0;
}

void udp_send(struct udp_listener *l, const struct sockaddr_storage *to, const uint8_t *msg,
	      size_t len)
{
	struct udp_batch *b = l->w->batch;

	if (b->queueing && len <= UDP_TX_SLOT) {
		if (b->nq == UDP_BATCH) {
			udp_flush(l->w);
			b->queueing = true;
		}
		unsigned i = b->nq++;
		b->ql[i] = l;
		b->qto[i] = *to;
		memcpy(b->qbuf[i], msg, len);
		b->qiov[i].iov_base = b->qbuf[i];
		b->qiov[i].iov_len = len;
		return;
	}
	if (upsock_send(l->fd, to, msg, len) >= 0)
		return;
	if (errno == EMSGSIZE && len <= UDP_TX_SLOT) {
		uint8_t cut[UDP_TX_SLOT];
		struct iovec v = { .iov_base = cut, .iov_len = len };
		struct msghdr h = { .msg_iov = &v, .msg_iovlen = 1 };
		memcpy(cut, msg, len);
		if (cut_for_mtu(&h) && upsock_send(l->fd, to, cut, v.iov_len) >= 0) {
			stats_inc(&l->w->stats.mtu_truncated);
			return;
		}
	}
	stats_inc(&l->w->stats.dropped[STATS_DROP_SEND]);
}

/* Answers the @n datagrams the batch describes (pkt, rx[].msg_len, .msg_flags, from and
 * .msg_namelen), read from @l's socket. */
void udp_serve(struct udp_listener *l, int n)
{
	struct worker *w = l->w;
	struct udp_batch *b = w->batch;
	struct wire_query q;
	struct serve_result res;
	int m = 0;

	/* One clock read, or none in a ring round (its stamp): the seconds for TTLs and expiry
	 * come from the same stamp (the coarse clock used elsewhere lags it by at most a tick,
	 * which only ages entries sooner). */
	uint64_t t0 = worker_clock_us(w), outer_us = w->batch_us;
	uint32_t now = (uint32_t)(t0 / 1000000u);
	w->batch_us = t0;
	rcu_read_lock();
	for (int i = 0; i < n; i++) {
		uint8_t *out = b->txbuf[m];
		if (b->rx[i].msg_hdr.msg_flags & MSG_TRUNC) {
			/* larger than we read over UDP: if the question is there, ask the client
			 * to come back over TCP (TC=1), else drop it */
			stats_inc(&w->stats.dropped[STATS_DROP_OVERSIZE]);
			(void)wire_parse_query(&q, b->pkt[i], b->rx[i].msg_len);
			q.edns = 0;
			res.len = wire_write_reply_head(&q, false, WIRE_RCODE_NOERROR, out,
							UDP_TX_SLOT);
			if (res.len <= 0 || (b->pkt[i][2] & WIRE_QR))
				continue;
			out[2] |= WIRE_TC;
			res.verdict = SERVE_REPLY;
			res.zone = STATS_ZONE_ROOT;
			res.prefetch = 0;
			goto reply;
		}
		serve_query(&w->ctx, b->pkt[i], b->rx[i].msg_len, true, l->v6, now, &q, out,
			    UDP_TX_SLOT, &res);
		if (res.verdict == SERVE_REPLY && res.len < 0) {
			/* a large cached answer: build it in the scratch buffer, then cut it */
			serve_query(&w->ctx, b->pkt[i], b->rx[i].msg_len, true, l->v6, now, &q,
				    w->scratch, WIRE_MAX_MSG, &res);
			if (res.verdict == SERVE_REPLY && res.len > 0 && res.len <= UDP_TX_SLOT)
				memcpy(out, w->scratch, (size_t)res.len);
			else
				res.verdict = SERVE_DROP;
		}
reply:
		if (res.verdict == SERVE_REPLY && res.len > 0) {
			b->tx[m].msg_hdr.msg_name = &b->from[i];
			b->tx[m].msg_hdr.msg_namelen = b->rx[i].msg_hdr.msg_namelen;
			b->txiov[m].iov_base = out;
			b->txiov[m].iov_len = (size_t)res.len;
			b->zone[m] = res.zone;
			b->qtype[m] = res.qtype;
			m++;
			if (res.prefetch) {
				worker_timers_touch(w);
				fwd_prefetch(w, &q, &res);
			}
		} else if (res.verdict == SERVE_FORWARD) {
			worker_timers_touch(w);
			fwd_start(w, &q, &res, l, &b->from[i], NULL);
		}
	}
	rcu_read_unlock();
	w->batch_us = outer_us; /* an upstream round this batch ran inside keeps its stamp */
	if (m) {
		send_all(l, b->tx, (unsigned)m);
		uint64_t us = worker_now_us() - t0;
		for (int i = 0; i < m; i++)
			stats_observe(&w->stats, b->zone[i], b->qtype[i], us);
	}
}

void udp_batch_set(struct worker *w, unsigned i, const uint8_t *pkt, size_t len, int flags,
		   const void *name, socklen_t namelen)
{
	struct udp_batch *b = w->batch;

	memcpy(&b->from[i], name, namelen);
	b->rx[i].msg_hdr.msg_namelen = namelen;
	b->rx[i].msg_hdr.msg_flags = flags;
	b->rx[i].msg_len = (unsigned)len;
	b->pkt[i] = pkt;
	if (i >= b->nrx)
		b->nrx = i + 1;
}

/* Reads and serves one batch. Returns the number of datagrams read. */
static int serve_batch(struct udp_listener *l)
{
	struct udp_batch *b = l->w->batch;
	int n;

	/* The kernel changed the address lengths of the datagrams it read last time (and the
	 * ring, the packet pointers), nothing else in the receive vector. */
	for (unsigned i = 0; i < b->nrx; i++) {
		b->rx[i].msg_hdr.msg_namelen = sizeof b->from[i];
		b->pkt[i] = b->rxbuf[i];
	}
	n = udp_recvmmsg(l->fd, b->rx, UDP_BATCH);
	if (n <= 0)
		return 0;
	b->nrx = (unsigned)n;
	udp_serve(l, n);
	return n;
}

static void on_udp_readable(uv_poll_t *h, int status, int events)
{
	struct udp_listener *l = h->data;

	(void)events;
	if (status < 0)
		return;
	/* A batch that did not fill emptied the socket when it was read: going back to epoll
	 * costs no more than a read that would find nothing, and finds what came since. */
	for (int round = 0; round < UDP_ROUNDS; round++)
		if (serve_batch(l) < UDP_BATCH)
			break;
}

void udp_listener_drain(struct udp_listener *l)
{
	/* A connected UDP socket only receives from its peer, and the kernel leaves connected
	 * sockets out when it picks a socket of the SO_REUSEPORT group for a datagram, so new
	 * queries go to the other instance on the same address. Connect to the discard port on
	 * loopback, which is routable in every namespace and never sends DNS queries; what is
	 * already queued stays readable. */
	struct sockaddr_storage peer;
	socklen_t plen;

	memset(&peer, 0, sizeof peer);
	if (l->v6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&peer;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(9);
		s6->sin6_addr = in6addr_loopback;
		plen = sizeof *s6;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&peer;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(9);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		plen = sizeof *s4;
	}
	if (connect(l->fd, (struct sockaddr *)&peer, plen) < 0)
		log_warn("udp", "cannot leave the SO_REUSEPORT group: %s", strerror(errno));
	/* Answer what was queued before the connect. */
	for (int round = 0; round < 64; round++)
		if (serve_batch(l) < UDP_BATCH)
			break;
}

static void on_udp_closed(uv_handle_t *h)
{
	struct udp_listener *l = h->data;

	close(l->fd);
	l->fd = -1;
}

void udp_listener_close(struct udp_listener *l)
{
	if (l->fd < 0)
		return;
	if (l->w->ring)
		wring_cancel(l->w->ring, l); /* nothing to cancel once it went to uv_poll */
	if (uv_is_active((uv_handle_t *)&l->poll) || l->poll.data) {
		uv_poll_stop(&l->poll);
		if (!uv_is_closing((uv_handle_t *)&l->poll))
			uv_close((uv_handle_t *)&l->poll, on_udp_closed);
	} else {
		close(l->fd);
		l->fd = -1;
	}
}
