/* Worker threads: one libuv loop each. See worker.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/log.h"
#include "agent/uring.h"
#include "agent/worker.h"

#define TICK_MS          100
#define SWEEP_BUDGET     2048 /* slots looked at per tick */
#define DRAIN_POLL_MS    20

uint32_t worker_now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint32_t)ts.tv_sec;
}

uint64_t worker_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int worker_listen_socket(const struct sockaddr_storage *addr, int type)
{
	int one = 1, fd, r;
	socklen_t alen = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);

	fd = socket(addr->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	/* Every worker, and a newer instance during an upgrade, binds the same address. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	/* Bind even if the address is not (yet) on the interface: netlink puts it back. */
	if (addr->ss_family == AF_INET6) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
	} else {
		setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
	}
	if (bind(fd, (const struct sockaddr *)addr, alen) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

uint16_t worker_random16(struct worker *w)
{
	uint16_t v;

	if (w->rand_pos + 2 > sizeof w->rand_buf) {
		size_t got = 0;
		/* getrandom blocks only until the kernel's pool is initialised, once per boot; it
		 * never falls back to anything weaker. */
		while (got < sizeof w->rand_buf) {
			ssize_t n = getrandom(w->rand_buf + got, sizeof w->rand_buf - got, 0);
			if (n > 0)
				got += (size_t)n;
		}
		w->rand_pos = 0;
	}
	memcpy(&v, w->rand_buf + w->rand_pos, 2);
	w->rand_pos += 2;
	return v;
}

static void on_tick(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t now_ms = uv_now(&w->loop);

	atomic_store_explicit(&w->stats.heartbeat_ms, (uint64_t)time(NULL) * 1000,
			      memory_order_relaxed);
	(void)now_ms;
	if (w->index == 0)
		cache_sweep(w->srv->cache, worker_now_sec(), SWEEP_BUDGET);
}

static void on_closed_noop(uv_handle_t *h)
{
	(void)h;
}

/* Closes what is left once nothing is in flight. */
static void close_all(struct worker *w)
{
	w->stopped = true;
	for (size_t i = 0; i < w->nudp; i++)
		udp_listener_close(&w->udp[i]);
	tcp_close_all(w);
	if (w->fwd)
		fwd_table_close(w);
	uv_close((uv_handle_t *)&w->stop_async, on_closed_noop);
	uv_close((uv_handle_t *)&w->tick, on_closed_noop);
}

static void on_drain_poll(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t waited = uv_now(&w->loop) - w->drain_start_ms;

	if ((fwd_inflight(w) > 0 || w->tcp_conns > 0) && waited < w->drain_limit_ms)
		return;
	/* Past the limit: whatever is still out gets SERVFAIL or a stale answer now. */
	fwd_abort_all(w);
	uv_timer_stop(t);
	close_all(w);
}

static void on_stop(uv_async_t *a)
{
	struct worker *w = a->data;

	if (w->draining)
		return;
	w->draining = true;
	/* Stop taking new queries and connections, answer what the sockets already hold. */
	for (size_t i = 0; i < w->nudp; i++)
		udp_listener_drain(&w->udp[i]);
	tcp_drain(w);
	w->drain_start_ms = uv_now(&w->loop);
	w->tick.data = w;
	uv_timer_start(&w->tick, on_drain_poll, 0, DRAIN_POLL_MS);
}

void worker_stop(struct worker *w)
{
	uv_async_send(&w->stop_async);
}

int worker_new(struct server *srv, unsigned index, struct worker **out)
{
	const struct config *cfg = srv->cfg;
	struct worker *w;
	char text[80];
	int r;

	w = aligned_alloc(64, (sizeof *w + 63) & ~(size_t)63);
	if (!w)
		return -ENOMEM;
	memset(w, 0, sizeof *w);
	w->srv = srv;
	w->index = index;
	w->rand_pos = sizeof w->rand_buf;
	w->drain_limit_ms = (uint64_t)cfg->upstream_timeout_ms *
				    (srv->groups[STATS_GROUP_UPSTREAM].n + 1) +
			    1000;
	r = uv_loop_init(&w->loop);
	if (r < 0) {
		free(w);
		return r;
	}
	uv_async_init(&w->loop, &w->stop_async, on_stop);
	w->stop_async.data = w;
	uv_timer_init(&w->loop, &w->tick);
	w->tick.data = w;
	w->scratch = malloc(WIRE_MAX_MSG + 2);
	w->rxbuf = malloc(WIRE_MAX_MSG + 2);
	w->rxbuf2 = malloc(WIRE_MAX_MSG + 2);
	w->canon = malloc(WIRE_MAX_MSG + 2);
	w->reply = malloc(sizeof *w->reply);
	w->rcanon = malloc(sizeof *w->rcanon);
	w->batch = udp_batch_new();
	w->udp = calloc(cfg->nlisten, sizeof *w->udp);
	w->tcp = calloc(cfg->nlisten, sizeof *w->tcp);
	if (!w->scratch || !w->rxbuf || !w->rxbuf2 || !w->canon || !w->reply || !w->rcanon ||
	    !w->batch || !w->udp || !w->tcp || fwd_table_new(w) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < cfg->nlisten; i++) {
		r = udp_listener_open(w, &w->udp[i], &cfg->listen[i]);
		if (r < 0) {
			log_error("main", "cannot serve UDP on %s: %s",
				  config_addr_text(&cfg->listen[i], text, sizeof text), strerror(-r));
			goto fail;
		}
		w->nudp++;
		r = tcp_listener_open(w, &w->tcp[i], &cfg->listen[i]);
		if (r < 0) {
			log_error("main", "cannot serve TCP on %s: %s",
				  config_addr_text(&cfg->listen[i], text, sizeof text),
				  uv_strerror(r));
			goto fail;
		}
		w->ntcp++;
	}
	w->ctx.cache = srv->cache;
	w->ctx.mesh = srv->mesh;
	w->ctx.cluster_domain = srv->cluster_domain;
	w->ctx.cluster_domain_len = srv->cluster_domain_len;
	w->ctx.st = &w->stats;
	*out = w;
	return 0;
fail:
	worker_join_free(w); /* never started: closes what was opened */
	return r;
}

static void worker_main(void *arg)
{
	struct worker *w = arg;

	rcu_register_thread();
	if (w->srv->cfg->io_uring) {
		int r = wring_new(w);
		if (r < 0 && w->index == 0)
			log_info("udp", "io_uring not available (%s): listeners are read on epoll",
				 strerror(-r));
	}
	for (size_t i = 0; i < w->nudp; i++)
		udp_listener_start(&w->udp[i]);
	for (size_t i = 0; i < w->ntcp; i++) {
		int r = tcp_listener_start(&w->tcp[i]);
		if (r < 0)
			log_error("tcp", "listen: %s", uv_strerror(r));
	}
	on_tick(&w->tick);
	uv_timer_start(&w->tick, on_tick, TICK_MS, TICK_MS);
	if (w->ring)
		wring_run(w);
	else
		uv_run(&w->loop, UV_RUN_DEFAULT);
	rcu_unregister_thread();
}

int worker_start(struct worker *w)
{
	w->started = true;
	return uv_thread_create(&w->thread, worker_main, w);
}

void worker_join_free(struct worker *w)
{
	if (!w)
		return;
	if (w->started) {
		uv_thread_join(&w->thread);
	} else if (!w->stopped) {
		/* Made but never run (its own set-up or a later worker failed): close its sockets
		 * here, or they stay bound until exit and look like another instance serving our
		 * addresses. */
		close_all(w);
		uv_run(&w->loop, UV_RUN_DEFAULT);
	}
	if (uv_loop_close(&w->loop) == UV_EBUSY) {
		log_warn("main", "worker %u: handles left open at exit", w->index);
	}
	free(w->scratch);
	free(w->rxbuf);
	free(w->rxbuf2);
	free(w->canon);
	free(w->reply);
	free(w->rcanon);
	free(w->batch);
	free(w->udp);
	free(w->tcp);
	free(w);
}
