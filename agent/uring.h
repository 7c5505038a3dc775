/* The io_uring driver of a worker: its UDP listeners and upstream UDP sockets are read by
 * multishot receives into a ring of provided buffers, and the thread sleeps in
 * io_uring_enter, not epoll_wait. libuv keeps the rest (TCP, timers, the stop signal): the
 * ring watches libuv's backend descriptor and runs the loop without blocking when it is
 * ready or a timer is due. A cache hit then costs one io_uring_enter and one sendmmsg per
 * wake-up, where readiness costs epoll_wait, recvmmsg and sendmmsg; a miss, no epoll_wait
 * and no read of the upstream socket.
 *
 * Kernels before 6.0, seccomp profiles that refuse io_uring (Docker's and containerd's
 * defaults do) and kernel.io_uring_disabled make wring_new fail; the worker then runs on
 * libuv alone, as with --no-io-uring.
 *
 * Internal to agent/: worker.c and udp.c include this header.
 */
#ifndef MESHDNS_URING_H
#define MESHDNS_URING_H

#include "agent/worker.h"

/* Sets up the ring of @w; call on the worker's own thread (the ring has a single issuer).
 * Returns 0, or a negative errno when io_uring cannot be used. */
int wring_new(struct worker *w);

/* Arms @l's multishot receive. Returns 0 or a negative errno (the listener then needs
 * uv_poll). */
int wring_arm(struct wring *r, struct udp_listener *l);

/* Cancels @l's receive and waits until the ring holds no reference to its socket, serving
 * whatever it had read. */
void wring_cancel(struct wring *r, struct udp_listener *l);

/* Whether upstream sockets may be read by the ring: only where completions are posted
 * when the thread asks for them (IORING_SETUP_DEFER_TASKRUN, 6.1), so that a round of
 * completions is a snapshot taken before any of its replies was acted on. */
bool wring_reads_upstream(const struct wring *r);

/* Reads upstream socket @fd for @owner with a multishot receive: each datagram goes to
 * fwd_ring_datagram, the receive's end (an error, a cancellation) to fwd_ring_ended.
 * Returns 0 or a negative errno. */
int wring_watch(struct wring *r, int fd, void *owner);

/* Cancels the receive of @owner; its end still comes to fwd_ring_ended. Returns 0 or a
 * negative errno. */
int wring_unwatch(struct wring *r, void *owner);

/* Runs the worker's loop until libuv has nothing left, then frees the ring. */
void wring_run(struct worker *w);

#endif
