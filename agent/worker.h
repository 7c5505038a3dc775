/* The libuv shell: one worker thread per --threads, each with its own loop, its own
 * SO_REUSEPORT sockets on every listen address, its own upstream queries and counters. The
 * threads share only the cache and the mesh table, which they read without locks.
 *
 * Internal to agent/: udp.c, tcp.c, forward.c and worker.c include this header.
 */
#ifndef MESHDNS_WORKER_H
#define MESHDNS_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "agent/config.h"
#include "agent/reply.h"
#include "agent/serve.h"
#include "agent/stats.h"
#include "agent/wire.h"

struct fwd_table;
struct udp_batch;
struct wring;

#define UDP_BATCH   32   /* datagrams read, answered and sent at once */
#define UDP_RX_SLOT 2048 /* larger queries are refused: they need TCP */

/* Servers of one upstream group, in the order they are tried. */
struct upstream_group {
	struct sockaddr_storage addr[CONFIG_MAX_SERVERS];
	size_t n;
	struct reply_policy policy;
};

/* What the threads share. Immutable once the workers run, except through the cache and
 * mesh table's own rules. */
struct server {
	const struct config *cfg;
	struct cache *cache;
	struct meshtab *mesh;
	uint8_t cluster_domain[WIRE_MAX_NAME];
	size_t cluster_domain_len;
	const uint8_t *deny[2];   /* names the general upstream may not speak for */
	uint8_t deny_len[2];
	struct upstream_group groups[STATS_GROUPS];
	struct worker **workers;
	unsigned nworkers;
	_Atomic unsigned running; /* workers whose threads run: published for other threads */
};

/* The number of workers another thread (the HTTP one) may read: their threads all run. */
static inline unsigned server_workers_running(struct server *s)
{
	return atomic_load_explicit(&s->running, memory_order_acquire);
}

struct udp_listener {
	uv_poll_t poll;
	int fd;
	bool v6;
	bool ring_armed;   /* its multishot receive is in the ring */
	bool ring_closing; /* being cancelled: not to be armed again */
	bool ring_failed;  /* the ring cannot read it: uv_poll does (else, with a ring, it does) */
	struct worker *w;
};

struct tcp_listener {
	uv_tcp_t tcp;
	struct worker *w;
};

struct worker {
	struct stats stats; /* first: 64-byte aligned, written only by this thread */
	struct server *srv;
	unsigned index;
	uv_loop_t loop;
	uv_thread_t thread;
	uv_async_t stop_async;
	uv_timer_t tick;
	struct serve_ctx ctx;
	struct udp_listener *udp;
	size_t nudp;
	struct tcp_listener *tcp;
	size_t ntcp;
	struct fwd_table *fwd;
	struct wring *ring; /* NULL: the UDP listeners are read on libuv readiness */
	bool timers_touched; /* it started libuv timers: take the loop's next deadline */
	struct udp_batch *batch;
	uint8_t *scratch;   /* WIRE_MAX_MSG + 2: building replies */
	uint8_t *rxbuf;     /* WIRE_MAX_MSG: upstream UDP replies */
	uint8_t *rxbuf2;    /* WIRE_MAX_MSG: the datagram read with one */
	uint8_t *canon;     /* WIRE_MAX_MSG: canonical replies */
	struct wire_reply *reply;    /* the upstream reply being checked */
	struct reply_canon *rcanon;  /* its canonical form's description */
	unsigned tcp_conns;
	struct tcp_conn *conns; /* every open client connection */
	uint8_t rand_buf[256];
	unsigned rand_pos;
	bool draining;      /* SIGTERM: no new queries, finish what we hold */
	bool stopped;
	bool started;
	uint64_t drain_start_ms;
	uint64_t drain_limit_ms;
	uint64_t batch_us;  /* time the batch or ring round being handled began; 0 outside */
};

/* Creates worker @index with its sockets bound (so that start-up errors surface before any
 * thread runs). Returns 0 or a negative errno, logged with the address. */
int worker_new(struct server *srv, unsigned index, struct worker **out);

/* Runs the worker's loop on a new thread. */
int worker_start(struct worker *w);

/* Asks the worker to stop reading, answer what it holds and end its loop. Any thread. */
void worker_stop(struct worker *w);

/* Waits for the thread to end and frees the worker. */
void worker_join_free(struct worker *w);

/* Monotonic time in seconds and microseconds (CLOCK_MONOTONIC_COARSE / CLOCK_MONOTONIC). */
uint32_t worker_now_sec(void);
uint64_t worker_now_us(void);

/* The worker whose loop is @loop (a handle's loop field). */
static inline struct worker *worker_of_loop(uv_loop_t *loop)
{
	return (struct worker *)(void *)((char *)loop - offsetof(struct worker, loop));
}

/* The time for stamps and durations: within a batch of datagrams or a ring round (some
 * microseconds) the time it began, read once; else the clock. */
static inline uint64_t worker_clock_us(const struct worker *w)
{
	return w->batch_us ? w->batch_us : worker_now_us();
}

/* A non-blocking socket of @type (SOCK_DGRAM or SOCK_STREAM) bound to @addr with
 * SO_REUSEPORT and IP_FREEBIND. Returns the descriptor or a negative errno. */
int worker_listen_socket(const struct sockaddr_storage *addr, int type);

/* Two random bytes from getrandom (buffered per worker). */
uint16_t worker_random16(struct worker *w);

/* UDP: bind a listener socket; poll it on the worker's loop. */
int udp_listener_open(struct worker *w, struct udp_listener *l,
		      const struct sockaddr_storage *addr);
void udp_listener_start(struct udp_listener *l);
/* Stops reading: the socket leaves the SO_REUSEPORT group for new datagrams, so another
 * instance on the same address gets them, and whatever is queued is still answered. */
void udp_listener_drain(struct udp_listener *l);
void udp_listener_close(struct udp_listener *l);
/* Sends one reply from the listener's socket, or queues it between udp_queue_begin and
 * udp_flush (which sends the queue with one sendmmsg per listener). */
void udp_send(struct udp_listener *l, const struct sockaddr_storage *to, const uint8_t *msg,
	      size_t len);
void udp_queue_begin(struct worker *w);
void udp_flush(struct worker *w);
/* Describes datagram @i of the batch (a ring buffer's bytes; @namelen at most a
 * sockaddr_storage), then udp_serve answers the first @n described. */
void udp_batch_set(struct worker *w, unsigned i, const uint8_t *pkt, size_t len, int flags,
		   const void *name, socklen_t namelen);
void udp_serve(struct udp_listener *l, int n);
struct udp_batch *udp_batch_new(void);

/* TCP: the listener and its connections. */
struct tcp_conn;
int tcp_listener_open(struct worker *w, struct tcp_listener *l,
		      const struct sockaddr_storage *addr);
int tcp_listener_start(struct tcp_listener *l);
void tcp_listener_close(struct tcp_listener *l);
/* Sends a reply to a forwarded query on @c and drops the query's hold on it. */
void tcp_conn_answer(struct tcp_conn *c, const uint8_t *msg, size_t len);
/* Drops a forwarded query's hold on @c without an answer. */
void tcp_conn_release(struct tcp_conn *c);
bool tcp_conn_v6(const struct tcp_conn *c);
const struct sockaddr_storage *tcp_conn_peer(const struct tcp_conn *c);
/* Closes every client connection (shutdown). */
/* SIGTERM: takes what the listeners' queues hold, closes them; open connections are served
 * until each falls idle. */
void tcp_drain(struct worker *w);
void tcp_close_all(struct worker *w);

/* Forwarding. */
int fwd_table_new(struct worker *w);
/* Closes the table's handle; the table is freed in its close callback. */
void fwd_table_close(struct worker *w);
/* Sends @q (parsed, key @res->key, group @res->group) upstream, or joins an identical query
 * in flight; the client is @udp/@from, or @tcp. */
void fwd_start(struct worker *w, const struct wire_query *q, const struct serve_result *res,
	       struct udp_listener *udp, const struct sockaddr_storage *from,
	       struct tcp_conn *tcp);
/* Refreshes a cache entry in the background (no client waits). */
void fwd_prefetch(struct worker *w, const struct wire_query *q, const struct serve_result *res);
/* Ends every upstream query now: waiting clients get a stale answer or SERVFAIL. */
void fwd_abort_all(struct worker *w);
/* Number of upstream queries in flight. */
unsigned fwd_inflight(const struct worker *w);
/* The ring's side of upstream sockets it reads (uring.h): datagram @pkt (@len bytes, cut
 * when @trunc) from @from reached the socket of @owner; the receive of @owner ended with
 * @res. After a round of completions, fwd_round_end sends the answers they queued. */
void fwd_ring_datagram(struct worker *w, void *owner, const uint8_t *pkt, size_t len,
		       bool trunc, const struct sockaddr_storage *from);
void fwd_ring_ended(struct worker *w, void *owner, int res);
void fwd_round_end(struct worker *w);

/* Before forwarding code starts timers from outside libuv's run (a ring batch): the loop's
 * clock must be now, and the ring must wake for the new timers. */
static inline void worker_timers_touch(struct worker *w)
{
	if (w->ring && !w->timers_touched) {
		uv_update_time(&w->loop);
		w->timers_touched = true;
	}
}


#endif
