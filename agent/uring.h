/* The io_uring driver of a worker: its UDP listeners are read by multishot receives into a
 * ring of provided buffers, and the thread sleeps in io_uring_enter, not epoll_wait. libuv
 * keeps everything else (TCP, upstream sockets, timers, the stop signal): the ring watches
 * libuv's backend descriptor and runs the loop without blocking when it is ready or a
 * timer is due. A cache hit then costs one io_uring_enter and one sendmmsg per wake-up,
 * where readiness costs epoll_wait, recvmmsg and sendmmsg.
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

/* Runs the worker's loop until libuv has nothing left, then frees the ring. */
void wring_run(struct worker *w);

#endif
