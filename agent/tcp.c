/* TCP serving (RFC 7766): 2-byte length framing, many queries per connection, answers in
 * whatever order they are ready, an idle timeout, and a cap on connections per worker.
 *
 * A connection is freed only when both its handles are closed and no forwarded query still
 * holds it (refs). A query answered after the client left is dropped quietly.
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "agent/log.h"
#include "agent/tcpframe.h"
#include "agent/worker.h"

#define TCP_MAX_PENDING 64       /* forwarded queries per connection before we stop reading */
#define TCP_MAX_QUEUED  (64 << 10) /* reply bytes queued to a client before we stop reading */
#define TCP_DRAIN_IDLE_MS 250    /* draining: an idle connection is closed after this */
#define TCP_DRAIN_ACCEPTS 4096   /* draining: connections taken from a listener's queue */

struct tcp_conn {
	uv_tcp_t tcp;
	struct tcp_conn *next; /* in the worker's list */
	struct tcp_conn *prev;
	uv_timer_t idle;
	struct worker *w;
	struct tcpframe frame;
	struct sockaddr_storage peer;
	unsigned pending;  /* forwarded queries not answered yet */
	unsigned refs;     /* open handles + pending + writes in flight */
	bool v6;
	bool closing;
	bool eof;
	bool reading;
};

static bool write_blocked(struct tcp_conn *c)
{
	return uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > TCP_MAX_QUEUED;
}

static void on_resume(uv_timer_t *t);
static struct tcp_conn *conn_new(struct worker *w);
static void conn_start(struct tcp_conn *c);
static void conn_abort(struct tcp_conn *c);

/* The idle timeout: shorter while draining, so that the drain ends soon after the last
 * answer while a client that just connected still gets its query read. */
static uint64_t idle_ms(const struct worker *w)
{
	return w->draining ? TCP_DRAIN_IDLE_MS : w->srv->cfg->tcp_idle_ms;
}

struct tcp_write {
	uv_write_t req;
	struct tcp_conn *c;
	uint8_t data[];
};

int tcp_listener_open(struct worker *w, struct tcp_listener *l,
		      const struct sockaddr_storage *addr)
{
	int fd = worker_listen_socket(addr, SOCK_STREAM), r;

	memset(l, 0, sizeof *l);
	l->w = w;
	if (fd < 0)
		return fd;
	r = uv_tcp_init(&w->loop, &l->tcp);
	if (r == 0)
		r = uv_tcp_open(&l->tcp, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	l->tcp.data = l;
	return 0;
}

static void conn_unref(struct tcp_conn *c)
{
	if (--c->refs == 0) {
		if (c->prev)
			c->prev->next = c->next;
		else
			c->w->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		stats_add(&c->w->stats.tcp_conns, (uint64_t)-1);
		c->w->tcp_conns--;
		tcpframe_deinit(&c->frame);
		free(c);
	}
}

static void on_conn_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

static void conn_close(struct tcp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->idle, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
	struct tcp_write *wr = (struct tcp_write *)req;
	struct tcp_conn *c = wr->c;

	if (status < 0)
		conn_close(c);
	else if (!c->closing && !c->reading && !write_blocked(c))
		/* the client reads again: serve what waits, on the next loop turn */
		uv_timer_start(&c->idle, on_resume, 0, 0);
	free(wr);
	conn_unref(c);
}

/* Sends @msg with its length prefix: straight into the socket when it takes it, else
 * through a queued write with a copy. */
static void conn_send(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
	uint8_t prefix[2];
	uv_buf_t bufs[2];
	int r;

	if (c->closing || len > WIRE_MAX_MSG)
		return;
	wire_put16(prefix, (uint16_t)len);
	bufs[0] = uv_buf_init((char *)prefix, 2);
	bufs[1] = uv_buf_init((char *)msg, (unsigned)len);
	r = uv_try_write((uv_stream_t *)&c->tcp, bufs, 2);
	if (r == (int)len + 2)
		return;
	if (r < 0 && r != UV_EAGAIN) {
		conn_close(c);
		return;
	}
	size_t done = r > 0 ? (size_t)r : 0, rest = len + 2 - done;
	struct tcp_write *wr = malloc(sizeof *wr + rest);
	if (!wr) {
		conn_close(c);
		return;
	}
	/* copy what is left of prefix + message */
	for (size_t i = done; i < len + 2; i++)
		wr->data[i - done] = i < 2 ? prefix[i] : msg[i - 2];
	wr->c = c;
	uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)rest);
	c->refs++;
	if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
		c->refs--;
		free(wr);
		conn_close(c);
	}
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct tcp_conn *c = h->data;
	uint8_t *p;
	size_t room;

	(void)hint;
	if (tcpframe_reserve(&c->frame, &p, &room) < 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init((char *)p, (unsigned)room);
}

static void set_reading(struct tcp_conn *c, bool on)
{
	if (c->closing || c->eof || c->reading == on)
		return;
	c->reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&c->tcp);
}

/* Answers or forwards every complete query in the buffer. */
static void serve_frames(struct tcp_conn *c)
{
	struct worker *w = c->w;
	struct wire_query q;
	struct serve_result res;
	const uint8_t *msg;
	size_t len;
	int r;

	uint32_t now = worker_now_sec();
	bool served = false;
	rcu_read_lock();
	/* A client that does not read its answers gets no more of them: stop at the queue
	 * cap, so its memory stays bounded. */
	while (!c->closing && c->pending < TCP_MAX_PENDING && !write_blocked(c) &&
	       (r = tcpframe_next(&c->frame, &msg, &len)) > 0) {
		/* draining: open connections are still served until they fall idle */
		served = true;
		uint64_t t0 = worker_now_us();
		serve_query(&w->ctx, msg, len, false, c->v6, now, &q, w->scratch, WIRE_MAX_MSG,
			    &res);
		if (res.verdict == SERVE_REPLY && res.len > 0) {
			conn_send(c, w->scratch, (size_t)res.len);
			stats_observe(&w->stats, res.zone, res.qtype, worker_now_us() - t0);
			if (res.prefetch)
				fwd_prefetch(w, &q, &res);
		} else if (res.verdict == SERVE_FORWARD) {
			c->pending++;
			c->refs++;
			fwd_start(w, &q, &res, NULL, NULL, c);
		}
	}
	rcu_read_unlock();
	/* The idle timer restarts on whole queries only: a client that trickles bytes
	 * (slowloris) is closed after the idle timeout like a silent one. */
	if (served && !c->closing)
		uv_timer_again(&c->idle);
	if (tcpframe_broken(&c->frame))
		conn_close(c);
	else
		set_reading(c, c->pending < TCP_MAX_PENDING && !write_blocked(c));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_conn *c = s->data;

	(void)buf;
	if (nread < 0) {
		/* EOF or error: answer what is pending, then close */
		c->eof = true;
		c->reading = false;
		uv_read_stop(s);
		if (c->pending == 0 || nread != UV_EOF)
			conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	tcpframe_commit(&c->frame, (size_t)nread);
	serve_frames(c);
}

static void on_idle(uv_timer_t *t)
{
	struct tcp_conn *c = t->data;

	/* Draining, answers still queued for a slow reader are let out (until the drain
	 * limit) rather than cut off. */
	if (c->pending == 0 &&
	    !(c->w->draining && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > 0))
		conn_close(c);
}

void tcp_conn_answer(struct tcp_conn *c, const uint8_t *msg, size_t len)
{
	conn_send(c, msg, len);
	tcp_conn_release(c);
}

static void on_resume(uv_timer_t *t)
{
	struct tcp_conn *c = t->data;
	uint64_t ms = idle_ms(c->w);

	uv_timer_start(&c->idle, on_idle, ms, ms);
	serve_frames(c);
}

void tcp_conn_release(struct tcp_conn *c)
{
	c->pending--;
	if (!c->closing) {
		if (c->eof && c->pending == 0)
			conn_close(c);
		else if (c->pending == TCP_MAX_PENDING - 1)
			/* queries may wait in the buffer: serve them on the next loop turn, not
			 * from inside the forwarder that is answering us now */
			uv_timer_start(&c->idle, on_resume, 0, 0);
	}
	conn_unref(c);
}

bool tcp_conn_v6(const struct tcp_conn *c)
{
	return c->v6;
}

const struct sockaddr_storage *tcp_conn_peer(const struct tcp_conn *c)
{
	return &c->peer;
}

/* Takes every connection the kernel has completed on @l's socket, so that closing the
 * listener resets none of them, then closes it. */
static void listener_drain(struct tcp_listener *l)
{
	uv_os_fd_t fd;
	struct tcp_conn *c;

	if (uv_is_closing((uv_handle_t *)&l->tcp))
		return;
	if (uv_fileno((uv_handle_t *)&l->tcp, &fd) == 0) {
		for (int i = 0; i < TCP_DRAIN_ACCEPTS; i++) {
			int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			if (cfd < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				break; /* EAGAIN: the queue is empty */
			}
			if (!(c = conn_new(l->w))) {
				close(cfd);
				continue;
			}
			if (uv_tcp_open(&c->tcp, cfd) < 0) {
				close(cfd);
				conn_abort(c);
				continue;
			}
			conn_start(c);
		}
	}
	tcp_listener_close(l);
}

void tcp_drain(struct worker *w)
{
	for (size_t i = 0; i < w->ntcp; i++)
		listener_drain(&w->tcp[i]);
	/* Open connections are still served; each closes once idle for TCP_DRAIN_IDLE_MS.
	 * Through on_resume, which re-arms the idle timer with the drain's timeout: it also
	 * serves queries already buffered, whose resume this timer may have been holding. */
	for (struct tcp_conn *c = w->conns; c; c = c->next)
		if (!c->closing)
			uv_timer_start(&c->idle, on_resume, 0, 0);
}

void tcp_close_all(struct worker *w)
{
	for (struct tcp_conn *c = w->conns; c; c = c->next)
		conn_close(c);
	for (size_t i = 0; i < w->ntcp; i++)
		tcp_listener_close(&w->tcp[i]);
}

/* A new client connection on the worker's list; its handle is initialised, not open. */
static struct tcp_conn *conn_new(struct worker *w)
{
	struct tcp_conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	c->w = w;
	c->refs = 1;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->tcp_conns++;
	stats_inc(&w->stats.tcp_conns);
	return c;
}

/* Closes new connection @c before it is served (only its handle is open). */
static void conn_abort(struct tcp_conn *c)
{
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Starts serving @c, whose handle holds the accepted socket: or closes it at once when the
 * worker is over its connection cap, rather than leave it in the backlog. */
static void conn_start(struct tcp_conn *c)
{
	struct worker *w = c->w;

	if (w->tcp_conns > w->srv->cfg->max_tcp_conns) {
		stats_inc(&w->stats.overload[STATS_OVERLOAD_TCP]);
		conn_abort(c);
		return;
	}
	int plen = sizeof c->peer;
	uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &plen);
	c->v6 = c->peer.ss_family == AF_INET6;
	tcpframe_init(&c->frame);
	uv_tcp_nodelay(&c->tcp, 1);
	c->refs = 2;
	uv_timer_init(&w->loop, &c->idle);
	c->idle.data = c;
	uv_timer_start(&c->idle, on_idle, idle_ms(w), idle_ms(w));
	set_reading(c, true);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct tcp_listener *l = server->data;
	struct tcp_conn *c;

	if (status < 0 || !(c = conn_new(l->w)))
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_abort(c);
		return;
	}
	conn_start(c);
}

int tcp_listener_start(struct tcp_listener *l)
{
	return uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
}

static void on_listener_closed(uv_handle_t *h)
{
	(void)h;
}

void tcp_listener_close(struct tcp_listener *l)
{
	if (!uv_is_closing((uv_handle_t *)&l->tcp))
		uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}
