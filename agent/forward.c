/* Forwarding (SEMANTICS.md rules 29-32): each upstream query from a fresh socket (a random
 * source port from the kernel) with a random ID from getrandom; a reply is taken only on
 * that connected socket (so only from the server and port it went to), with the same ID and
 * the same question; anything else is counted and ignored while we keep waiting. Identical
 * questions in flight share one upstream query. TC=1 leads to TCP; a timeout or an error
 * leads to the next server; when every server failed, SERVFAIL with an Extended DNS Error,
 * unless the cache holds a stale answer (RFC 8767).
 *
 * Lifetimes: a struct fwd owns a timer and at most one attempt (UDP or TCP) at a time. An
 * attempt is closed asynchronously and frees itself in its close callback; the fwd is freed
 * when it is done and every attempt has closed (refs). Its timer is only stopped then: a
 * freed fwd kept for reuse keeps it, so that a query costs no handle closing, which only a
 * run of the loop completes. The timer is closed when the fwd is freed for good.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/config.h"
#include "agent/log.h"
#include "agent/upsock.h"
#include "agent/uring.h"
#include "agent/worker.h"

#define FWD_BUCKETS     4096
#define FWD_MAX_WAITERS 1024 /* clients waiting on one upstream query */
#define FWD_UDP_READS   16   /* datagrams read per readiness event */
#define FWD_SPARE_SOCKS 64   /* recycled upstream sockets kept per address family */
/* Freed queries and waiters kept per worker for reuse; none under AddressSanitizer, so that
 * it still sees every use after free. */
#define FWD_FREE_MAX 256
#if defined(__SANITIZE_ADDRESS__)
#define FWD_FREELISTS 0
#else
#define FWD_FREELISTS 1
#endif

/* Freed objects of one size kept for the next allocation (no malloc on a steady miss path). */
struct freelist {
	void *head;
	unsigned n;
};

/* Upstream queries a client address has in flight (--max-inflight-per-client). */
struct client_count {
	struct client_count *next;
	uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d */
	unsigned n;
	unsigned bucket; /* of clients[] */
};

#define CLIENT_BUCKETS 1024

struct fwd_waiter {
	struct fwd_waiter *next;
	struct udp_listener *udp; /* or tcp */
	struct tcp_conn *tcp;
	struct client_count *client;
	struct sockaddr_storage from;
	uint64_t t0_us;
	struct wire_query q;      /* q.pkt points at raw */
	uint8_t raw[WIRE_HDR_LEN + WIRE_MAX_NAME + 4];
};

/* A UDP attempt. Its socket is read by a multishot receive in the worker's ring
 * (uring.h), or watched by the worker's loop (a uv_poll handle); a socket whose attempt got
 * its answer is recycled (upsock.h): it stays watched, on the table's spare list, with no
 * attempt, so that recycling costs no epoll_ctl or new receive. */
struct fwd_udp {
	uv_poll_t poll;            /* unless on_ring */
	struct worker *w;
	int fd;
	struct fwd *f;             /* NULL while spare */
	struct fwd_udp *next_free; /* on the spare list */
	uint8_t fam;               /* spare list: 0 IPv4, 1 IPv6 */
	uint8_t empty;             /* the read that found the answer found nothing after it */
	uint8_t unwatched;         /* it reported an error: the loop or ring stopped reading it */
	uint8_t on_ring;           /* read by the ring, not by uv_poll */
	uint8_t ring_armed;        /* its receive is in the ring: freed only once it ended */
	uint8_t discarded;         /* closed: freed when the receive ends */
	uint8_t recycling;         /* answered: on the recycle or quarantine list */
};

struct fwd_tcp {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	struct fwd *f;
	bool connected;
	uint8_t out[2 + WIRE_HDR_LEN + WIRE_MAX_NAME + 4 + WIRE_OPT_LEN];
	size_t outlen;
	uint8_t *in;
	size_t inlen;
	size_t incap;
};

struct fwd {
	struct fwd *hnext;   /* in-flight table chain */
	struct worker *w;
	uint64_t key;
	uint8_t group;
	uint8_t zone;
	uint8_t qtype;       /* enum stats_qtype */
	uint8_t server;      /* index of the server asked now */
	uint8_t tried;       /* servers asked so far */
	uint8_t done;        /* answered or failed: no more attempts */
	uint8_t in_table;
	uint8_t saw_timeout;
	uint8_t saw_neterr;
	uint8_t udp_answered; /* the UDP attempt read its answer: recycle its socket */
	uint16_t id;         /* ID of the current attempt */
	unsigned refs;       /* 1 until done, + open attempts, + holds while a reply is read */
	unsigned nwaiters;
	uint64_t sent_us;
	struct fwd_udp *udp;
	struct fwd_tcp *tcp;
	struct fwd_waiter *waiters;
	struct wire_query q; /* the question, q.pkt points at raw */
	uint8_t raw[WIRE_HDR_LEN + WIRE_MAX_NAME + 4];
	uv_timer_t timer; /* last: fwd_alloc clears what is before it */
};

struct fwd_table {
	struct fwd *bucket[FWD_BUCKETS];
	unsigned inflight;
	uv_check_t flush;           /* after each round of I/O: sends the queued answers */
	bool queued;                /* upstream replies were handled in this round */
	struct fwd_udp *spare[2];   /* recycled sockets, [0] IPv4 and [1] IPv6 */
	unsigned nspare[2];
	struct fwd_udp *recycle;    /* answered in this round of the ring, to be recycled */
	struct fwd_udp *quarantine; /* recycled in the round before, to be spares */
	struct freelist free_fwd;   /* each with its timer open, stopped */
	struct freelist free_waiter;
	struct freelist free_client;
	struct client_count *clients[CLIENT_BUCKETS];
	bool closing;               /* fwd_table_close: nothing more is kept for reuse */
};

/* A zeroed object of @size, from @fl when it has one. */
static void *fl_take(struct freelist *fl, size_t size)
{
	void *p = fl->head;

	if (!p)
		return calloc(1, size);
	fl->head = *(void **)p;
	fl->n--;
	memset(p, 0, size);
	return p;
}

static void fl_give(struct freelist *fl, void *p)
{
	if (!FWD_FREELISTS || fl->n >= FWD_FREE_MAX) {
		free(p);
		return;
	}
	*(void **)p = fl->head;
	fl->head = p;
	fl->n++;
}

static void fl_clear(struct freelist *fl)
{
	while (fl->head) {
		void *p = fl->head;
		fl->head = *(void **)p;
		free(p);
	}
	fl->n = 0;
}

static void client_ip(const struct sockaddr_storage *a, uint8_t ip[16])
{
	if (a->ss_family == AF_INET6) {
		memcpy(ip, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
	} else {
		memset(ip, 0, 10);
		ip[10] = ip[11] = 0xff;
		memcpy(ip + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
	}
}

static unsigned client_bucket(const uint8_t ip[16])
{
	return (unsigned)(wire_hash(ip, 16) & (CLIENT_BUCKETS - 1));
}

/* Takes one in-flight slot for @addr. Returns it, or NULL when the client is at its cap or
 * memory is short. */
static struct client_count *client_take(struct fwd_table *t, const struct sockaddr_storage *addr,
					unsigned cap)
{
	uint8_t ip[16];
	struct client_count *c;

	client_ip(addr, ip);
	unsigned b = client_bucket(ip);
	for (c = t->clients[b]; c; c = c->next)
		if (memcmp(c->ip, ip, 16) == 0)
			break;
	if (!c) {
		c = fl_take(&t->free_client, sizeof *c);
		if (!c)
			return NULL;
		memcpy(c->ip, ip, 16);
		c->bucket = b;
		c->next = t->clients[b];
		t->clients[b] = c;
	}
	if (c->n >= cap)
		return NULL;
	c->n++;
	return c;
}

static void client_put(struct fwd_table *t, struct client_count *c)
{
	if (!c || --c->n > 0)
		return;
	struct client_count **pp = &t->clients[c->bucket];
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	fl_give(&t->free_client, c);
}

static void on_round_done(uv_check_t *h);

int fwd_table_new(struct worker *w)
{
	struct fwd_table *t = calloc(1, sizeof *t);

	if (!t)
		return -ENOMEM;
	uv_check_init(&w->loop, &t->flush);
	t->flush.data = w;
	uv_check_start(&t->flush, on_round_done);
	uv_unref((uv_handle_t *)&t->flush); /* it alone does not keep the loop running */
	w->fwd = t;
	return 0;
}

static void udp_spare_discard(struct fwd_table *t, struct fwd_udp *u);
static void recycle_answered(struct worker *w);

static void on_table_closed(uv_handle_t *h)
{
	struct worker *w = h->data;

	fl_clear(&w->fwd->free_waiter);
	fl_clear(&w->fwd->free_client);
	free(w->fwd);
	w->fwd = NULL;
}

static void on_timer_freed(uv_handle_t *h)
{
	free(h->data);
}

void fwd_table_close(struct worker *w)
{
	struct fwd_table *t = w->fwd;

	t->closing = true;
	recycle_answered(w);
	for (int fam = 0; fam < 2; fam++)
		while (t->spare[fam])
			udp_spare_discard(t, t->spare[fam]);
	while (t->free_fwd.head) {
		struct fwd *f = t->free_fwd.head;
		t->free_fwd.head = f->hnext;
		uv_close((uv_handle_t *)&f->timer, on_timer_freed);
	}
	t->free_fwd.n = 0;
	uv_close((uv_handle_t *)&t->flush, on_table_closed);
}

unsigned fwd_inflight(const struct worker *w)
{
	return w->fwd ? w->fwd->inflight : 0;
}

/* Copies the question part of @q into @raw and points the copy at it. */
static void copy_query(struct wire_query *dst, uint8_t *raw, const struct wire_query *q)
{
	*dst = *q;
	memcpy(raw, q->pkt, q->question_end);
	dst->pkt = raw;
	dst->len = q->question_end;
}

static bool same_question(const struct wire_query *a, const struct wire_query *b)
{
	return a->qtype == b->qtype && a->qclass == b->qclass && a->do_bit == b->do_bit &&
	       a->cd_bit == b->cd_bit && a->qname_len == b->qname_len &&
	       memcmp(a->qname, b->qname, a->qname_len) == 0;
}

static struct fwd *table_find(struct fwd_table *t, const struct wire_query *q, uint64_t key,
			      uint8_t group)
{
	for (struct fwd *f = t->bucket[key & (FWD_BUCKETS - 1)]; f; f = f->hnext)
		if (f->key == key && f->group == group && !f->done && same_question(&f->q, q))
			return f;
	return NULL;
}

static void table_remove(struct fwd_table *t, struct fwd *f)
{
	struct fwd **pp = &t->bucket[f->key & (FWD_BUCKETS - 1)];

	if (!f->in_table)
		return;
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	f->in_table = 0;
	t->inflight--;
	stats_add(&f->w->stats.inflight, (uint64_t)-1);
}

/* Drops a hold on @f; the last one frees it: kept for reuse with its timer, or, when the
 * table keeps enough or is closing, closed for good. */
static void fwd_unref(struct fwd *f)
{
	struct fwd_table *t = f->w->fwd;

	if (--f->refs > 0)
		return;
	if (FWD_FREELISTS && t && !t->closing && t->free_fwd.n < FWD_FREE_MAX) {
		f->hnext = t->free_fwd.head;
		t->free_fwd.head = f;
		t->free_fwd.n++;
		return;
	}
	uv_close((uv_handle_t *)&f->timer, on_timer_freed);
}

/* A zeroed fwd with its timer open, from the table's reuse list when it has one. */
static struct fwd *fwd_alloc(struct worker *w)
{
	struct fwd_table *t = w->fwd;
	struct fwd *f = t->free_fwd.head;

	if (f) {
		t->free_fwd.head = f->hnext;
		t->free_fwd.n--;
		memset(f, 0, offsetof(struct fwd, timer));
		return f;
	}
	if (!(f = calloc(1, sizeof *f)))
		return NULL;
	uv_timer_init(&w->loop, &f->timer);
	f->timer.data = f;
	return f;
}

/* ---- attempts ---------------------------------------------------------------------------- */

/* Frees @u and drops the hold on its query if it has one. */
static void udp_sock_free(struct fwd_udp *u)
{
	struct fwd *f = u->f;

	free(u);
	if (f)
		fwd_unref(f);
}

static void on_udp_sock_closed(uv_handle_t *h)
{
	udp_sock_free(h->data);
}

/* Closes attempt @u's socket and frees @u, with the hold on its query if it has one, once
 * the loop or the ring has let go of it. */
static void udp_sock_discard(struct fwd_udp *u)
{
	if (u->on_ring) {
		/* What the receive still reports is dropped. The descriptor stays open until
		 * the receive has ended: a request still waiting in the submission queue names
		 * it by number, which a new socket could take. */
		u->discarded = 1;
		if (!u->ring_armed) {
			close(u->fd);
			udp_sock_free(u);
		} else if (wring_unwatch(u->w->ring, u) < 0) {
			log_warn("forward", "cannot cancel an upstream receive");
		}
		return;
	}
	/* uv_close takes the descriptor out of the loop's epoll set (and out of the round of
	 * events being handled); only then may it be closed */
	uv_close((uv_handle_t *)&u->poll, on_udp_sock_closed);
	close(u->fd);
	u->fd = -1;
}

static void udp_attempt_close(struct fwd *f)
{
	struct fwd_udp *u = f->udp;

	if (!u)
		return;
	f->udp = NULL;
	udp_sock_discard(u);
}

/* Puts recycled socket @u on the spare list of its family. */
static void spare_put(struct fwd_table *t, struct fwd_udp *u)
{
	u->next_free = t->spare[u->fam];
	t->spare[u->fam] = u;
	t->nspare[u->fam]++;
}

/* Ends the attempt of @f that has just read its answer: its socket goes to the spare list
 * for a later query (on a new port), or is closed when it cannot be emptied or the list is
 * full. */
static void udp_attempt_recycle(struct fwd *f)
{
	struct fwd_udp *u = f->udp;
	struct fwd_table *t = f->w->fwd;

	if (!u)
		return;
	if (u->on_ring) {
		/* The ring may still report what it read with the answer, or before the socket
		 * loses its port: that is dropped, and the socket is recycled once the round is
		 * over (recycle_answered). */
		f->udp = NULL;
		u->f = NULL;
		u->recycling = 1;
		u->next_free = t->recycle;
		t->recycle = u;
		fwd_unref(f);
		return;
	}
	if (u->unwatched || t->nspare[u->fam] >= FWD_SPARE_SOCKS ||
	    upsock_recycle(u->fd, u->empty) < 0) {
		udp_attempt_close(f);
		return;
	}
	f->udp = NULL;
	/* Empty and without a port. A datagram that slipped in while the kernel was unhashing
	 * it is emptied by the event that reports it, or read and refused (wrong ID) by the
	 * next attempt. */
	u->f = NULL;
	spare_put(t, u);
	fwd_unref(f);
}

/* Takes spare @u off its list and closes it. */
static void udp_spare_discard(struct fwd_table *t, struct fwd_udp *u)
{
	for (struct fwd_udp **pp = &t->spare[u->fam]; *pp; pp = &(*pp)->next_free)
		if (*pp == u) {
			*pp = u->next_free;
			t->nspare[u->fam]--;
			udp_sock_discard(u);
			return;
		}
}

/* At the end of a round of the ring. The sockets answered in it lose their port now, and
 * wait one more round: what reached the old port before is read by the ring in that round
 * and dropped. Then they become spares, emptied first if the ring read anything after
 * their answer (a duplicate, a forgery, garbage) or ran out of buffers, so nothing sent to
 * an old port is ever taken for the answer to a later query. One that reported an error is
 * closed. */
static void recycle_answered(struct worker *w)
{
	struct fwd_table *t = w->fwd;
	struct fwd_udp *u;

	while ((u = t->quarantine)) {
		t->quarantine = u->next_free;
		u->recycling = 0;
		u->next_free = NULL;
		if (u->unwatched || t->closing || t->nspare[u->fam] >= FWD_SPARE_SOCKS ||
		    (!u->empty && upsock_drain(u->fd) < 0)) {
			udp_sock_discard(u);
			continue;
		}
		spare_put(t, u);
	}
	while ((u = t->recycle)) {
		t->recycle = u->next_free;
		if (u->unwatched || t->closing || upsock_recycle(u->fd, true) < 0) {
			u->recycling = 0;
			u->next_free = NULL;
			udp_sock_discard(u);
			continue;
		}
		u->next_free = t->quarantine;
		t->quarantine = u;
	}
}

static void on_tcp_closed(uv_handle_t *h)
{
	struct fwd_tcp *t = h->data;
	struct fwd *f = t->f;

	free(t->in);
	free(t);
	fwd_unref(f);
}

static void tcp_attempt_close(struct fwd *f)
{
	struct fwd_tcp *t = f->tcp;

	if (!t)
		return;
	f->tcp = NULL;
	uv_close((uv_handle_t *)&t->tcp, on_tcp_closed);
}

/* Builds the upstream query for the current attempt into @out. Returns its length. */
static size_t build_query(struct fwd *f, uint8_t *out)
{
	size_t n = f->q.question_end;

	memcpy(out, f->raw, n);
	wire_put16(out, f->id);
	out[2] = WIRE_RD;
	out[3] = f->q.cd_bit ? WIRE_CD : 0;
	wire_put16(out + 4, 1);
	wire_put16(out + 6, 0);
	wire_put16(out + 8, 0);
	wire_put16(out + 10, 1);
	memcpy(out + WIRE_HDR_LEN, f->q.qname, f->q.qname_len); /* lowercase */
	n += (size_t)wire_write_opt(out + n, WIRE_OPT_LEN, f->q.do_bit, 0, WIRE_EDE_NONE, NULL);
	return n;
}

static const struct sockaddr_storage *current_server(const struct fwd *f)
{
	return &f->w->srv->groups[f->group].addr[f->server];
}

static void next_server(struct fwd *f);

/* The current attempt failed on the network (refused, reset, unreachable): next server. */
static void neterr(struct fwd *f)
{
	f->saw_neterr = 1;
	next_server(f);
}

static void fwd_finish(struct fwd *f, const uint8_t *pkt, const struct wire_reply *r);
static void tcp_attempt_start(struct fwd *f);

static void on_timeout(uv_timer_t *t);

/* Gives the attempt just started its own full timeout. */
static void arm_timer(struct fwd *f)
{
	uv_timer_start(&f->timer, on_timeout, f->w->srv->cfg->upstream_timeout_ms, 0);
}

static void on_upstream_ready(uv_poll_t *h, int status, int events);

static void udp_attempt_start(struct fwd *f)
{
	struct worker *w = f->w;
	const struct sockaddr_storage *srv = current_server(f);
	uint8_t query[WIRE_HDR_LEN + WIRE_MAX_NAME + 4 + WIRE_OPT_LEN];
	struct fwd_table *t = w->fwd;
	struct fwd_udp *u;
	size_t qlen;
	int fd;

	f->id = worker_random16(w);
	f->udp_answered = 0;
	qlen = build_query(f, query);
	/* A recycled socket or a new one, connected on a random ephemeral port (the kernel
	 * draws it from its CSPRNG); the kernel then delivers only what that server sends from
	 * that port. */
	int fam = srv->ss_family == AF_INET6;
	if ((u = t->spare[fam])) {
		t->spare[fam] = u->next_free;
		t->nspare[fam]--;
		if (upsock_send(u->fd, srv, query, qlen) < 0) {
			udp_sock_discard(u); /* a spare: it holds no query */
			goto neterr;
		}
	} else {
		fd = upsock_open(srv->ss_family);
		if (fd < 0)
			goto neterr;
		if (!(u = calloc(1, sizeof *u))) {
			close(fd);
			goto neterr;
		}
		u->w = w;
		u->fd = fd;
		u->fam = (uint8_t)fam;
		if (w->ring && wring_reads_upstream(w->ring) && wring_watch(w->ring, fd, u) == 0) {
			u->on_ring = 1;
			u->ring_armed = 1;
		} else if (uv_poll_init(&w->loop, &u->poll, fd) < 0) {
			close(fd);
			free(u);
			goto neterr;
		} else {
			u->poll.data = u;
			uv_poll_start(&u->poll, UV_READABLE, on_upstream_ready);
		}
		if (upsock_send(fd, srv, query, qlen) < 0) {
			udp_sock_discard(u);
			goto neterr;
		}
	}
	u->empty = 0;
	u->f = f;
	u->next_free = NULL;
	f->udp = u;
	f->refs++;
	f->sent_us = worker_clock_us(w);
	stats_inc(&w->stats.fwd_requests[f->group][f->server]);
	arm_timer(f);
	return;
neterr:
	neterr(f);
}

/* Whether @pkt, come from the server's address, is the query of @f itself: a query (no
 * QR) with its ID and question, on a socket whose port is the server's. The kernel gave the
 * attempt that port from the ephemeral range, so nothing listens there (a server on this
 * host that is not running), and no answer or ICMP message will come. A forged query from
 * a server on another port is only ignored, as any malformed reply. */
static bool own_query(const struct fwd *f, const uint8_t *pkt, size_t len)
{
	return f->udp && len >= WIRE_HDR_LEN && !(pkt[2] & WIRE_QR) && wire_get16(pkt) == f->id &&
	       wire_get16(pkt + 4) == 1 && wire_reply_question_matches(pkt, len, &f->q) &&
	       upsock_on_port_of(f->udp->fd, current_server(f));
}

/* Checks a reply read from an attempt. Returns 1 when it is the answer (or a verdict on the
 * server), 0 when it must be ignored, -1 when the attempt cannot succeed (it reached
 * itself: nothing listens at the server's address). */
static int check_reply(struct fwd *f, const uint8_t *pkt, size_t len, struct wire_reply *r,
		       bool udp)
{
	struct stats *st = &f->w->stats;

	if (wire_parse_reply(pkt, len, r) < 0) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_MALFORMED]);
		return udp && own_query(f, pkt, len) ? -1 : 0;
	}
	if (r->id != f->id) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_ID]);
		return 0;
	}
	if (!wire_reply_question_matches(pkt, len, &f->q)) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_QUESTION]);
		return 0;
	}
	if (udp && len > WIRE_EDNS_PAYLOAD) {
		/* larger than we said we take: do not trust it, ask over TCP */
		stats_inc(&st->upstream_dropped[STATS_UPDROP_OVERSIZE]);
		r->tc = 1;
	}
	return 1;
}

/* Checks the head of a UDP reply longer than the ring's buffer, so longer than the payload
 * we advertise: when it is the answer, as far as its header and question tell, it counts
 * as truncated, as check_reply counts an oversized one. Returns 1 then, with @r filled for
 * handle_reply, else 0. */
static int check_cut_reply(struct fwd *f, const uint8_t *pkt, size_t len, struct wire_reply *r)
{
	struct stats *st = &f->w->stats;

	if (len < WIRE_HDR_LEN || !(pkt[2] & WIRE_QR) || wire_get16(pkt + 4) != 1) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_MALFORMED]);
		return 0;
	}
	if (wire_get16(pkt) != f->id) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_ID]);
		return 0;
	}
	if (!wire_reply_question_matches(pkt, len, &f->q)) {
		stats_inc(&st->upstream_dropped[STATS_UPDROP_QUESTION]);
		return 0;
	}
	stats_inc(&st->upstream_dropped[STATS_UPDROP_OVERSIZE]);
	memset(r, 0, offsetof(struct wire_reply, ttl_off));
	r->id = f->id;
	r->rcode = pkt[3] & WIRE_RCODE_MASK;
	r->tc = 1;
	return 1;
}

/* Acts on a matching reply of the current attempt. */
static void handle_reply(struct fwd *f, const uint8_t *pkt, struct wire_reply *r, bool udp)
{
	struct stats *st = &f->w->stats;
	uint64_t us = worker_clock_us(f->w) - f->sent_us;

	stats_inc(&st->fwd_responses[f->group][f->server][stats_rcode_of(r->rcode)]);
	stats_inc(&st->fwd_duration[f->group][f->server][stats_bucket_of(us)]);
	stats_add(&st->fwd_duration_sum_us[f->group][f->server], us);
	switch (reply_classify(r)) {
	case REPLY_TRUNCATED:
		if (udp) {
			stats_inc(&st->tcp_retries);
			udp_attempt_close(f);
			tcp_attempt_start(f);
			return;
		}
		/* TC over TCP makes no sense: take it as a failure of this server */
		stats_inc(&st->upstream_dropped[STATS_UPDROP_ERROR]);
		next_server(f);
		return;
	case REPLY_FAILED:
		stats_inc(&st->upstream_dropped[STATS_UPDROP_ERROR]);
		next_server(f);
		return;
	case REPLY_OK:
		f->udp_answered = udp;
		fwd_finish(f, pkt, r);
		return;
	}
}

/* Reads what reached attempt @u, two datagrams per call: the answer and, almost always,
 * the news that nothing followed it, which spares the socket a read when it is recycled. */
static void udp_attempt_read(struct fwd_udp *u)
{
	struct fwd *f = u->f;
	struct worker *w = f->w;
	struct wire_reply *r = w->reply;
	const struct sockaddr_storage *srv = current_server(f);
	struct upsock_dgram d[2] = {
		{ .buf = w->rxbuf, .cap = WIRE_MAX_MSG },
		{ .buf = w->rxbuf2, .cap = WIRE_MAX_MSG },
	};

	for (int reads = 0; reads < FWD_UDP_READS && f->udp == u; reads += 2) {
		int n = upsock_read(u->fd, d, 2);
		if (n == -EAGAIN || n == -EINTR)
			break;
		if (n < 0) {
			/* ECONNREFUSED: the server's port is closed (ICMP); try the next one */
			neterr(f);
			return;
		}
		for (int i = 0; i < n && f->udp == u; i++) {
			if (d[i].len > WIRE_MAX_MSG)
				continue;
			if (!config_addr_equal(&d[i].from, srv)) {
				/* not connected: the kernel delivers what anyone sends */
				stats_inc(&w->stats.upstream_dropped[STATS_UPDROP_SOURCE]);
				continue;
			}
			int c = check_reply(f, d[i].buf, d[i].len, r, true);
			if (c < 0) {
				neterr(f);
			} else if (c) {
				u->empty = n == 1;
				handle_reply(f, d[i].buf, r, true);
			}
		}
		if (n < 2)
			break;
	}
	/* The loop no longer watches a socket that reported an error; one with only an ICMP
	 * message on its error queue cannot reach the server either. */
	if (u->unwatched && f->udp == u)
		neterr(f);
}

/* Begins a round of upstream replies: their answers are queued, and sent by
 * fwd_round_end, one sendmmsg per listener. */
static void round_begin(struct worker *w)
{
	struct fwd_table *t = w->fwd;

	if (t->queued)
		return;
	t->queued = true;
	w->batch_us = worker_clock_us(w); /* a ring round's stamp, else now */
	udp_queue_begin(w);
}

/* An upstream socket is readable, or (status < 0) reported an error, after which the loop
 * no longer watches it. Answers to clients are queued and sent when the round of I/O ends
 * (on_round_done), one sendmmsg per listener. */
static void on_upstream_ready(uv_poll_t *h, int status, int events)
{
	struct fwd_udp *u = h->data;
	struct worker *w = worker_of_loop(u->poll.loop);
	struct fwd_table *t = w->fwd;

	(void)events;
	if (!u->f) {
		/* A spare that something reached in the instant it lost its port: emptied, so
		 * that the level-triggered loop stops reporting it; one that cannot be, or that
		 * holds an ICMP error, is closed. */
		if (status < 0 || upsock_drain(u->fd) < 0)
			udp_spare_discard(t, u);
		return;
	}
	round_begin(w);
	u->unwatched = status < 0; /* then it is not recycled, whatever the read finds */
	struct fwd *f = u->f;
	f->refs++; /* read after the query it answers is done */
	udp_attempt_read(u);
	fwd_unref(f);
}

/* Sends the answers a round of upstream replies queued. */
static void round_flush(struct worker *w)
{
	struct fwd_table *t = w->fwd;

	if (!t->queued)
		return;
	t->queued = false;
	w->batch_us = 0;
	udp_flush(w);
}

/* Only the ring's rounds move answered sockets on: a run of libuv in between reads nothing
 * from them, so it must not end their quarantine. */
void fwd_round_end(struct worker *w)
{
	if (!w->fwd)
		return;
	recycle_answered(w);
	round_flush(w);
}

static void on_round_done(uv_check_t *h)
{
	round_flush(h->data);
}

void fwd_ring_datagram(struct worker *w, void *owner, const uint8_t *pkt, size_t len,
		       bool trunc, const struct sockaddr_storage *from)
{
	struct fwd_udp *u = owner;
	struct fwd *f = u->f;

	/* Dropped: what reaches a closed socket or a spare (as upsock_drain would), and what
	 * the ring read after the answer, before the socket lost its port: it was meant for
	 * the query before, and it may not be all, so the socket is emptied when recycled. */
	if (u->recycling)
		u->empty = 0;
	if (u->discarded || !f || !w->fwd)
		return;
	worker_timers_touch(w);
	round_begin(w);
	if (!config_addr_equal(from, current_server(f))) {
		/* not connected: the kernel delivers what anyone sends */
		stats_inc(&w->stats.upstream_dropped[STATS_UPDROP_SOURCE]);
		return;
	}
	f->refs++;
	int c = trunc ? check_cut_reply(f, pkt, len, w->reply)
		      : check_reply(f, pkt, len, w->reply, true);
	if (c < 0) {
		neterr(f);
	} else if (c) {
		u->empty = 1; /* the receive reads the socket dry, unless more follows */
		handle_reply(f, pkt, w->reply, true);
	}
	fwd_unref(f);
}

void fwd_ring_ended(struct worker *w, void *owner, int res)
{
	struct fwd_udp *u = owner;

	worker_timers_touch(w); /* what follows may close handles or start timers */
	u->ring_armed = 0;
	if (u->discarded) {
		close(u->fd);
		udp_sock_free(u);
		return;
	}
	/* All buffers were in use (they are back before the next submission), or the kernel
	 * ended the receive: read on; what it left is still queued. */
	if ((res >= 0 || res == -ENOBUFS) && wring_watch(w->ring, u->fd, u) == 0) {
		u->ring_armed = 1;
		u->empty = 0;
		return;
	}
	/* An error (ECONNREFUSED: an ICMP message reached the socket): it is not recycled;
	 * its attempt, if any, fails at once, as on epoll (udp_attempt_read). */
	u->unwatched = 1;
	if (u->recycling)
		return; /* closed when the round ends */
	if (!u->f)
		udp_spare_discard(w->fwd, u);
	else if (u->f->udp == u)
		neterr(u->f);
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct fwd_tcp *t = h->data;

	(void)hint;
	if (t->inlen == t->incap) {
		size_t cap = t->incap ? t->incap * 2 : 1024;
		if (cap > (2 + WIRE_MAX_MSG))
			cap = (2 + WIRE_MAX_MSG);
		uint8_t *nb = cap > t->incap ? realloc(t->in, cap) : NULL;
		if (!nb) {
			*b = uv_buf_init(NULL, 0);
			return;
		}
		t->in = nb;
		t->incap = cap;
	}
	*b = uv_buf_init((char *)t->in + t->inlen, (unsigned)(t->incap - t->inlen));
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct fwd_tcp *t = s->data;
	struct fwd *f = t->f;
	struct wire_reply *r = f->w->reply;

	(void)b;
	if (f->tcp != t)
		return;
	if (nread < 0) {
		neterr(f);
		return;
	}
	t->inlen += (size_t)nread;
	if (t->inlen < 2)
		return;
	size_t mlen = wire_get16(t->in);
	if (t->inlen < 2 + mlen)
		return;
	if (check_reply(f, t->in + 2, mlen, r, false))
		handle_reply(f, t->in + 2, r, false);
	else
		next_server(f); /* one message per TCP attempt: a bad one fails it */
}

static void on_tcp_written(uv_write_t *req, int status)
{
	struct fwd_tcp *t = req->data;

	if (status < 0 && t->f->tcp == t) {
		neterr(t->f);
	}
}

static void on_tcp_connected(uv_connect_t *req, int status)
{
	struct fwd_tcp *t = req->data;
	struct fwd *f = t->f;

	if (f->tcp != t)
		return;
	if (status < 0) {
		neterr(f);
		return;
	}
	t->connected = true;
	uv_buf_t buf = uv_buf_init((char *)t->out, (unsigned)t->outlen);
	t->write.data = t;
	if (uv_write(&t->write, (uv_stream_t *)&t->tcp, &buf, 1, on_tcp_written) < 0 ||
	    uv_read_start((uv_stream_t *)&t->tcp, on_tcp_alloc, on_tcp_read) < 0) {
		neterr(f);
	}
}

static void tcp_attempt_start(struct fwd *f)
{
	struct worker *w = f->w;
	struct fwd_tcp *t = calloc(1, sizeof *t);

	if (!t) {
		next_server(f);
		return;
	}
	t->f = f;
	f->id = worker_random16(w);
	t->outlen = 2 + build_query(f, t->out + 2);
	wire_put16(t->out, (uint16_t)(t->outlen - 2));
	uv_tcp_init(&w->loop, &t->tcp);
	t->tcp.data = t;
	t->connect.data = t;
	f->tcp = t;
	f->refs++;
	f->sent_us = worker_clock_us(w);
	arm_timer(f);
	if (uv_tcp_connect(&t->connect, &t->tcp, (const struct sockaddr *)current_server(f),
			   on_tcp_connected) < 0) {
		neterr(f);
	}
}

/* ---- answering the clients --------------------------------------------------------------- */

static void answer_waiter(struct fwd *f, struct fwd_waiter *wt, const uint8_t *msg, size_t len)
{
	struct worker *w = f->w;
	uint64_t us = worker_clock_us(w) - wt->t0_us;

	serve_count_response(&w->stats, f->zone, msg[3] & WIRE_RCODE_MASK);
	stats_observe(&w->stats, f->zone, f->qtype, us);
	if (wt->tcp)
		tcp_conn_answer(wt->tcp, msg, len);
	else
		udp_send(wt->udp, &wt->from, msg, len);
}

/* Sends @n bytes of @out to waiter @wt (or, when @n <= 0, only drops its hold on a TCP
 * connection), gives back its in-flight slot and frees it. */
static void waiter_done(struct fwd *f, struct fwd_waiter *wt, const uint8_t *out, int n)
{
	if (n > 0)
		answer_waiter(f, wt, out, (size_t)n);
	else if (wt->tcp)
		tcp_conn_release(wt->tcp);
	client_put(f->w->fwd, wt->client);
	fl_give(&f->w->fwd->free_waiter, wt);
}

/* Ends @f: stops attempts and the timer, takes it out of the table. */
static void fwd_close(struct fwd *f)
{
	f->done = 1;
	table_remove(f->w->fwd, f);
	if (f->udp_answered)
		udp_attempt_recycle(f);
	udp_attempt_close(f);
	tcp_attempt_close(f);
	uv_timer_stop(&f->timer);
	fwd_unref(f);
}

static void fwd_finish(struct fwd *f, const uint8_t *pkt, const struct wire_reply *r)
{
	struct worker *w = f->w;
	struct reply_canon *rc = w->rcanon;
	struct fwd_waiter *wt, *next;
	uint8_t *out = w->rxbuf;

	rcu_read_lock(); /* the policy reads the mesh view */
	int cr = reply_canonicalize(pkt, r, &f->q, &w->srv->groups[f->group].policy, w->canon,
				    WIRE_MAX_MSG, rc);
	rcu_read_unlock();
	if (cr < 0) {
		stats_inc(&w->stats.upstream_dropped[STATS_UPDROP_MALFORMED]);
		next_server(f);
		return;
	}
	if (rc->ttl > 0)
		cache_insert(w->srv->cache, &f->q, f->key, w->canon, rc, worker_now_sec());
	for (wt = f->waiters; wt; wt = next) {
		next = wt->next;
		int n = reply_for_client(w->canon, rc->len, (const uint8_t *)rc->ttl_off, rc->nttl,
					 0, false, &wt->q, wt->tcp == NULL, out, WIRE_MAX_MSG);
		waiter_done(f, wt, out, n);
	}
	f->waiters = NULL;
	fwd_close(f);
}

/* Every server failed: a stale answer if the cache has one, else SERVFAIL with an EDE. */
static void fwd_fail(struct fwd *f)
{
	struct worker *w = f->w;
	struct fwd_waiter *wt, *next;
	struct cache_hit hit;
	uint8_t *out = w->rxbuf;
	int ede = f->saw_timeout ? WIRE_EDE_NO_REACHABLE_AUTHORITY
		  : f->saw_neterr ? WIRE_EDE_NETWORK_ERROR
				  : WIRE_EDE_OTHER;
	const char *text = f->saw_timeout ? "upstream servers timed out"
			   : f->saw_neterr ? "upstream servers unreachable"
					   : "upstream servers answered with errors";

	rcu_read_lock();
	for (wt = f->waiters; wt; wt = next) {
		next = wt->next;
		int n = 0;
		if (w->srv->cfg->stale_window)
			n = cache_lookup(w->srv->cache, &wt->q, f->key, worker_now_sec(),
					 wt->tcp == NULL, true, out, WIRE_MAX_MSG, &hit);
		if (n > 0) {
			stats_inc(&w->stats.cache_stale);
		} else {
			n = wire_write_error(&wt->q, WIRE_RCODE_SERVFAIL, ede, text, out,
					     WIRE_MAX_MSG);
		}
		waiter_done(f, wt, out, n);
	}
	rcu_read_unlock();
	f->waiters = NULL;
	fwd_close(f);
}

static void next_server(struct fwd *f)
{
	struct upstream_group *g = &f->w->srv->groups[f->group];

	udp_attempt_close(f);
	tcp_attempt_close(f);
	if (f->done)
		return;
	if (f->tried >= g->n) {
		fwd_fail(f);
		return;
	}
	f->server = (uint8_t)((f->server + 1) % g->n);
	f->tried++;
	udp_attempt_start(f);
}

/* RFC 8767: a client that has waited one upstream timeout gets the expired answer now, if
 * the cache still holds one (TTL 30, EDE 3); the query goes on in the background and
 * refreshes the cache when an upstream answers. */
static void answer_stale(struct fwd *f)
{
	struct worker *w = f->w;
	struct fwd_waiter **pp = &f->waiters, *wt;
	struct cache_hit hit;
	uint8_t *out = w->rxbuf;

	if (!w->srv->cfg->stale_window)
		return;
	rcu_read_lock();
	while ((wt = *pp)) {
		int n = cache_lookup(w->srv->cache, &wt->q, f->key, worker_now_sec(),
				     wt->tcp == NULL, true, out, WIRE_MAX_MSG, &hit);
		if (n <= 0) {
			pp = &wt->next;
			continue;
		}
		stats_inc(&w->stats.cache_stale);
		*pp = wt->next;
		f->nwaiters--;
		waiter_done(f, wt, out, n);
	}
	rcu_read_unlock();
}

static void on_timeout(uv_timer_t *t)
{
	struct fwd *f = t->data;

	answer_stale(f);
	f->saw_timeout = 1;
	stats_inc(&f->w->stats.fwd_timeouts[f->group][f->server]);
	next_server(f);
}

/* ---- starting ---------------------------------------------------------------------------- */

static struct fwd *fwd_new(struct worker *w, const struct wire_query *q,
			   const struct serve_result *res)
{
	struct fwd_table *t = w->fwd;
	struct fwd *f = fwd_alloc(w);

	if (!f)
		return NULL;
	f->w = w;
	f->key = res->key;
	f->group = res->group;
	f->zone = res->zone;
	f->qtype = res->qtype;
	copy_query(&f->q, f->raw, q);
	f->refs = 1; /* until it is done (fwd_close) */
	f->hnext = t->bucket[f->key & (FWD_BUCKETS - 1)];
	t->bucket[f->key & (FWD_BUCKETS - 1)] = f;
	f->in_table = 1;
	t->inflight++;
	stats_inc(&w->stats.inflight);
	/* Start with the first server; each try moves to the next. */
	f->server = (uint8_t)(w->srv->groups[f->group].n - 1);
	return f;
}

static void fwd_go(struct fwd *f)
{
	next_server(f);
}

static void refuse(struct worker *w, const struct wire_query *q, const struct serve_result *res,
		   struct udp_listener *udp, const struct sockaddr_storage *from,
		   struct tcp_conn *tcp, const char *why)
{
	uint8_t *out = w->rxbuf;
	int n = wire_write_error(q, WIRE_RCODE_SERVFAIL, WIRE_EDE_OTHER, why, out, WIRE_MAX_MSG);

	serve_count_response(&w->stats, res->zone, WIRE_RCODE_SERVFAIL);
	if (n <= 0) {
		if (tcp)
			tcp_conn_release(tcp);
		return;
	}
	if (tcp)
		tcp_conn_answer(tcp, out, (size_t)n);
	else
		udp_send(udp, from, out, (size_t)n);
}

void fwd_start(struct worker *w, const struct wire_query *q, const struct serve_result *res,
	       struct udp_listener *udp, const struct sockaddr_storage *from,
	       struct tcp_conn *tcp)
{
	struct fwd_table *t = w->fwd;
	struct fwd *f = table_find(t, q, res->key, res->group);
	struct fwd_waiter *wt;
	bool fresh = false;

	if (f && f->nwaiters >= FWD_MAX_WAITERS) {
		stats_inc(&w->stats.overload[STATS_OVERLOAD_WAITERS]);
		refuse(w, q, res, udp, from, tcp, "too many clients wait for this name");
		return;
	}
	if (!f && t->inflight >= w->srv->cfg->max_inflight) {
		stats_inc(&w->stats.overload[STATS_OVERLOAD_INFLIGHT]);
		refuse(w, q, res, udp, from, tcp, "too many queries in flight");
		return;
	}
	const struct sockaddr_storage *peer = tcp ? tcp_conn_peer(tcp) : from;
	struct client_count *cc = client_take(t, peer, w->srv->cfg->max_inflight_per_client);
	if (!cc) {
		stats_inc(&w->stats.overload[STATS_OVERLOAD_CLIENT]);
		refuse(w, q, res, udp, from, tcp, "too many queries in flight from this client");
		return;
	}
	wt = fl_take(&t->free_waiter, sizeof *wt);
	if (!wt) {
		client_put(t, cc);
		refuse(w, q, res, udp, from, tcp, "out of memory");
		return;
	}
	wt->client = cc;
	wt->udp = udp;
	wt->tcp = tcp;
	if (from)
		wt->from = *from;
	wt->t0_us = worker_clock_us(w);
	copy_query(&wt->q, wt->raw, q);
	if (!f) {
		f = fwd_new(w, q, res);
		if (!f) {
			client_put(t, cc);
			fl_give(&t->free_waiter, wt);
			refuse(w, q, res, udp, from, tcp, "out of memory");
			return;
		}
		fresh = true;
	} else {
		stats_inc(&w->stats.coalesced);
	}
	wt->next = f->waiters;
	f->waiters = wt;
	f->nwaiters++;
	if (fresh)
		fwd_go(f);
}

void fwd_abort_all(struct worker *w)
{
	struct fwd_table *t = w->fwd;

	for (size_t i = 0; i < FWD_BUCKETS; i++)
		while (t->bucket[i]) {
			struct fwd *f = t->bucket[i];
			udp_attempt_close(f);
			tcp_attempt_close(f);
			fwd_fail(f); /* takes it out of the table */
		}
}

void fwd_prefetch(struct worker *w, const struct wire_query *q, const struct serve_result *res)
{
	struct fwd *f;

	if (w->draining || table_find(w->fwd, q, res->key, res->group) ||
	    w->fwd->inflight >= w->srv->cfg->max_inflight)
		return;
	f = fwd_new(w, q, res);
	if (!f)
		return;
	stats_inc(&w->stats.prefetches);
	fwd_go(f);
}
