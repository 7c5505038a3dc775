/* The io_uring driver of a worker. See uring.h. */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/uring.h"

#define RING_SQ   64
#define RING_BUFS 64 /* receive buffers, a power of two; when all are in use the multishot
		      * receive ends with ENOBUFS and is armed again once they are back */
#define RING_BGID 0
/* What a multishot recvmsg writes: its header, the source address, then the datagram. */
#define RING_NAME_LEN ((unsigned)sizeof(struct sockaddr_in6))
#define RING_BUF_LEN                                                                         \
	((unsigned)(sizeof(struct io_uring_recvmsg_out) + RING_NAME_LEN + UDP_RX_SLOT))

/* A completion's user_data: a listener's address (its receive), an upstream socket's owner
 * with UD_UPSTREAM set (the owners are aligned, bit 0 is free), or one of the others. */
#define UD_UPSTREAM 1u
#define UD_POLL     2u /* libuv's backend descriptor is readable */
#define UD_IGNORE   4u /* a cancellation's own completion */
#define WATCH_DRAIN_TRIES 20 /* 100 ms waits for the last upstream receives to end, at exit */

struct wring {
	struct io_uring ring;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	struct msghdr tmpl; /* the shape of every receive: address room, no control data */
	struct worker *w;
	bool uv_due;     /* libuv has work: run it before sleeping */
	bool poll_armed; /* the backend descriptor is watched */
	bool deferred;   /* IORING_SETUP_DEFER_TASKRUN: completions come only when asked for */
	unsigned nwatch; /* upstream receives in the ring */
	/* Datagrams read, not yet answered: all from one listener, with their buffers. */
	struct udp_listener *pl;
	unsigned np;
	uint16_t pbid[UDP_BATCH];
};

static struct io_uring_sqe *get_sqe(struct wring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		io_uring_submit(&r->ring);
		sqe = io_uring_get_sqe(&r->ring);
	}
	return sqe;
}

static void give_back(struct wring *r, unsigned bid)
{
	io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * RING_BUF_LEN, RING_BUF_LEN,
			      (unsigned short)bid, io_uring_buf_ring_mask(RING_BUFS), 0);
	io_uring_buf_ring_advance(r->br, 1);
}

static void free_ring(struct wring *r)
{
	io_uring_queue_exit(&r->ring);
	free(r->br);
	free(r->bufs);
	free(r);
}

int wring_new(struct worker *w)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	struct wring *r = calloc(1, sizeof *r);
	int rc;

	if (!r)
		return -ENOMEM;
	/* One thread submits and reaps, and completions' work runs only when it asks for
	 * them (6.1); older kernels take the ring without these hints. */
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	rc = io_uring_queue_init_params(RING_SQ, &r->ring, &p);
	r->deferred = rc == 0;
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof p);
		rc = io_uring_queue_init_params(RING_SQ, &r->ring, &p);
	}
	if (rc < 0) {
		free(r);
		return rc;
	}
	/* Waiting with a timeout in the same call as the submission (5.11). */
	if (!(p.features & IORING_FEAT_EXT_ARG)) {
		free_ring(r);
		return -EOPNOTSUPP;
	}
	/* Each io_uring_enter then finds the ring without looking up its descriptor (5.18);
	 * without it, the descriptor is used. */
	(void)io_uring_register_ring_fd(&r->ring);
	/* The kernel reads the buffer ring from a page of its own. */
	r->bufs = malloc((size_t)RING_BUFS * RING_BUF_LEN);
	if (!r->bufs ||
	    posix_memalign((void **)&r->br, 4096, RING_BUFS * sizeof(struct io_uring_buf))) {
		r->br = NULL;
		free_ring(r);
		return -ENOMEM;
	}
	memset(&reg, 0, sizeof reg);
	reg.ring_addr = (uintptr_t)r->br;
	reg.ring_entries = RING_BUFS;
	reg.bgid = RING_BGID;
	rc = io_uring_register_buf_ring(&r->ring, &reg, 0); /* 5.19 */
	if (rc < 0) {
		free_ring(r);
		return rc;
	}
	io_uring_buf_ring_init(r->br);
	for (unsigned i = 0; i < RING_BUFS; i++)
		give_back(r, i);
	r->tmpl.msg_namelen = RING_NAME_LEN;
	r->w = w;
	w->ring = r;
	return 0;
}

int wring_arm(struct wring *r, struct udp_listener *l)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recvmsg_multishot(sqe, l->fd, &r->tmpl, 0); /* 6.0 */
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RING_BGID;
	io_uring_sqe_set_data(sqe, l);
	l->ring_armed = true;
	return 0;
}

bool wring_reads_upstream(const struct wring *r)
{
	return r->deferred;
}

int wring_watch(struct wring *r, int fd, void *owner)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recvmsg_multishot(sqe, fd, &r->tmpl, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RING_BGID;
	io_uring_sqe_set_data64(sqe, (uintptr_t)owner | UD_UPSTREAM);
	r->nwatch++;
	return 0;
}

int wring_unwatch(struct wring *r, void *owner)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, (uintptr_t)owner | UD_UPSTREAM, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	return 0;
}

/* A completion of an upstream socket's receive. */
static void on_upstream(struct wring *r, const struct io_uring_cqe *c)
{
	void *owner = (void *)(uintptr_t)(c->user_data & ~(uint64_t)UD_UPSTREAM);

	if (c->flags & IORING_CQE_F_BUFFER) {
		unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
		uint8_t *buf = r->bufs + (size_t)bid * RING_BUF_LEN;
		struct io_uring_recvmsg_out *o =
			c->res >= 0 ? io_uring_recvmsg_validate(buf, c->res, &r->tmpl) : NULL;
		if (o && o->namelen <= RING_NAME_LEN) {
			struct sockaddr_storage from;
			memset(&from, 0, sizeof from);
			memcpy(&from, io_uring_recvmsg_name(o), o->namelen);
			fwd_ring_datagram(r->w, owner, io_uring_recvmsg_payload(o, &r->tmpl),
					  io_uring_recvmsg_payload_length(o, c->res, &r->tmpl),
					  (o->flags & MSG_TRUNC) != 0, &from);
		}
		give_back(r, bid);
	}
	if (c->flags & IORING_CQE_F_MORE)
		return;
	r->nwatch--;
	fwd_ring_ended(r->w, owner, c->res);
}

/* Answers the datagrams held, then gives their buffers back. */
static void serve_pending(struct wring *r)
{
	if (r->np == 0)
		return;
	udp_serve(r->pl, (int)r->np);
	for (unsigned i = 0; i < r->np; i++)
		give_back(r, r->pbid[i]);
	r->np = 0;
}

static void take_datagram(struct wring *r, struct udp_listener *l, const struct io_uring_cqe *c)
{
	unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
	uint8_t *buf = r->bufs + (size_t)bid * RING_BUF_LEN;
	struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, c->res, &r->tmpl);

	/* Read while the listeners close (another one's cancellation ran the ring): dropped,
	 * as epoll would leave it unread, since forwarding is over. */
	if (!o || r->w->stopped || l->ring_closing) {
		give_back(r, bid);
		return;
	}
	if (r->np && (r->pl != l || r->np == UDP_BATCH))
		serve_pending(r);
	udp_batch_set(r->w, r->np, io_uring_recvmsg_payload(o, &r->tmpl),
		      io_uring_recvmsg_payload_length(o, c->res, &r->tmpl), (int)o->flags,
		      io_uring_recvmsg_name(o),
		      o->namelen < RING_NAME_LEN ? o->namelen : RING_NAME_LEN);
	r->pl = l;
	r->pbid[r->np++] = (uint16_t)bid;
}

static void on_completion(struct wring *r, const struct io_uring_cqe *c)
{
	if (c->user_data == UD_POLL) {
		r->poll_armed = false;
		r->uv_due = true;
		return;
	}
	if (c->user_data == UD_IGNORE)
		return;
	if (c->user_data & UD_UPSTREAM) {
		on_upstream(r, c);
		return;
	}

	struct udp_listener *l = io_uring_cqe_get_data(c);
	if (c->flags & IORING_CQE_F_BUFFER) {
		if (c->res >= 0)
			take_datagram(r, l, c);
		else
			give_back(r, c->flags >> IORING_CQE_BUFFER_SHIFT);
	}
	if (c->flags & IORING_CQE_F_MORE)
		return;
	/* The receive ended: all buffers were in use (they are back before the next submit),
	 * it was cancelled, or it cannot work here and the listener goes to libuv. */
	l->ring_armed = false;
	if (l->ring_closing)
		return;
	if (c->res >= 0 || c->res == -ENOBUFS) {
		if (wring_arm(r, l) == 0)
			return;
	} else {
		log_warn("udp", "io_uring receive failed (%s): this listener is read on epoll",
			 strerror(-c->res));
	}
	l->ring_failed = true;
	udp_listener_start(l);
	r->uv_due = true; /* libuv watches the socket from its next poll on */
}

/* Handles one round, which began at @now (worker_now_us): the completions posted when it
 * begins (those that a submission posts meanwhile, when the queue is full, wait for the
 * next). Then the answers it queued are sent and the upstream sockets it answered are
 * recycled (forward.c). The round's stamps and durations all use @now: the clock is read
 * once a round, not once per batch and per upstream reply. */
static void reap(struct wring *r, uint64_t now)
{
	struct io_uring *ring = &r->ring;
	unsigned head = *ring->cq.khead, tail = io_uring_smp_load_acquire(ring->cq.ktail);

	r->w->batch_us = now;
	for (unsigned i = head; i != tail; i++)
		on_completion(r, &ring->cq.cqes[io_uring_cqe_index(ring, i, ring->cq.ring_mask)]);
	io_uring_cq_advance(ring, tail - head);
	serve_pending(r);
	fwd_round_end(r->w);
	r->w->batch_us = 0;
}

/* At exit: waits for the receives of the upstream sockets closed last to end, so that their
 * owners are freed. */
static void drain_watches(struct wring *r)
{
	for (int tries = 0; r->nwatch > 0 && tries < WATCH_DRAIN_TRIES; tries++) {
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		struct io_uring_cqe *c;
		int rc = io_uring_submit_and_wait_timeout(&r->ring, &c, 1, &ts, NULL);
		if (rc < 0 && rc != -EINTR && rc != -ETIME)
			break;
		reap(r, worker_now_us());
	}
	if (r->nwatch > 0)
		log_warn("forward", "%u upstream sockets still read by io_uring at exit", r->nwatch);
}

void wring_cancel(struct wring *r, struct udp_listener *l)
{
	l->ring_closing = true;
	if (!l->ring_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(r);
	if (!sqe)
		return;
	io_uring_prep_cancel(sqe, l, 0);
	io_uring_sqe_set_data64(sqe, UD_IGNORE);
	/* The socket's last reference may be the receive's: wait for its final completion,
	 * so the address is free once the descriptor is closed. */
	while (l->ring_armed) {
		int rc = io_uring_submit_and_wait(&r->ring, 1);
		if (rc < 0 && rc != -EINTR) {
			log_warn("udp", "io_uring cancel: %s", strerror(-rc));
			return;
		}
		reap(r, worker_now_us());
	}
}

/* Whether libuv holds watchers it has been asked to start and has not yet given to epoll,
 * which it does at the start of its next poll: until then the thread may not sleep in the
 * ring. The queue is among the loop's fields in uv.h (UV_LOOP_PRIVATE_FIELDS), a circular
 * list that is empty when it points at itself; libuv is linked statically, so the layout
 * is that of the header compiled against. */
static bool uv_watchers_queued(const uv_loop_t *loop)
{
	return loop->watcher_queue[0] != (const void *)&loop->watcher_queue;
}

void wring_run(struct worker *w)
{
	struct wring *r = w->ring;
	uv_loop_t *loop = &w->loop;
	uint64_t deadline = 0, now = 0;

	r->uv_due = true;
	for (;;) {
		bool rerun = false;
		if (r->uv_due) {
			r->uv_due = false;
			if (!uv_run(loop, UV_RUN_NOWAIT))
				break;
			w->timers_touched = false; /* the run took its deadlines into account */
			/* Watchers started in the run (an accepted connection, a write that must
			 * wait) reach epoll at libuv's next poll: run it again, after a look at
			 * the ring that does not sleep. */
			rerun = uv_watchers_queued(loop);
			if (!r->poll_armed) {
				struct io_uring_sqe *sqe = get_sqe(r);
				if (sqe) {
					io_uring_prep_poll_add(sqe, uv_backend_fd(loop), POLLIN);
					io_uring_sqe_set_data64(sqe, UD_POLL);
					r->poll_armed = true;
				}
			}
			int t = uv_backend_timeout(loop);
			now = worker_now_us();
			deadline = t < 0 ? UINT64_MAX : now + (uint64_t)t * 1000u;
		}
		struct __kernel_timespec ts = { 0, 0 }, *tsp = NULL;
		if (rerun) {
			tsp = &ts;
			r->uv_due = true;
		} else if (deadline != UINT64_MAX) {
			/* now: when the last wait ended; the wait is longer by the few
			 * microseconds the round took since */
			if (now >= deadline) {
				r->uv_due = true;
				continue;
			}
			ts.tv_sec = (long long)((deadline - now) / 1000000u);
			ts.tv_nsec = (long long)((deadline - now) % 1000000u) * 1000;
			tsp = &ts;
		}
		struct io_uring_cqe *c;
		int rc = io_uring_submit_and_wait_timeout(&r->ring, &c, 1, tsp, NULL);
		if (rc < 0 && rc != -EINTR)
			r->uv_due = true; /* a timer is due (-ETIME); on any error, libuv's turn */
		now = worker_now_us();
		reap(r, now);
		if (uv_watchers_queued(loop)) {
			/* the batch started watchers: a socket on uv_poll, a TCP connection */
			w->timers_touched = false;
			r->uv_due = true;
		} else if (w->timers_touched && !r->uv_due) {
			/* New timers only: the loop's clock is now (worker_timers_touch), its next
			 * deadline is enough, with no epoll_wait. 0 also means handles are
			 * closing. */
			w->timers_touched = false;
			int t = uv_backend_timeout(loop);
			if (t == 0)
				r->uv_due = true;
			else
				deadline = t < 0 ? UINT64_MAX : now + (uint64_t)t * 1000u;
		}
	}
	/* The loop has nothing left; the upstream sockets closed last are freed when their
	 * receives end, and so are the timers of the queries they held. */
	drain_watches(r);
	uv_run(loop, UV_RUN_DEFAULT);
	w->ring = NULL;
	free_ring(r);
}
