/* The HTTP endpoints on their own thread and loop. See http.h. */
#include "agent/http.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>
#include <uv.h>

#include "agent/cache.h"
#include "agent/config.h"
#include "agent/httpmsg.h"
#include "agent/log.h"
#include "agent/meshtab.h"
#include "agent/probe.h"
#include "agent/worker.h"
#include "netlink/nlink.h"

#define HTTP_MAX_CONNS	   64	/* open connections; more are closed at once */
#define HTTP_MAX_RENDERS   4	/* /metrics bodies held at once; more get 503 */
#define HTTP_HEAD_MS	   5000 /* to receive the request head */
#define HTTP_LINGER_MS	   2000 /* after the response, for the client to close */
#define HTTP_BACKLOG	   64
#define HTTP_MAX_PROVIDERS 8
#define HOLDER_WAIT_MS	   1000 /* asking who holds a port */

#define TEXT "text/plain; charset=utf-8"
#define PROM "text/plain; version=0.0.4; charset=utf-8"

struct http;

struct listener {
	uv_tcp_t tcp;
	struct http *h;
	int fd;
	bool health; /* serves /health and /ready */
	bool metrics;
	char addr[80];
};

struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	uv_shutdown_t sd;
	struct http *h;
	struct listener *l;
	unsigned open; /* handles not yet closed */
	bool closing;
	bool responded; /* from then on, reads are discarded */
	bool render;	/* holds one of HTTP_MAX_RENDERS */
	char *body;	/* malloc'd (metrics), or NULL */
	char head[512];
	char small[128]; /* short bodies */
	size_t inlen;
	char in[HTTPMSG_MAX_HEAD];
};

struct http {
	struct server *srv;
	const struct nlink *nlink;
	uv_loop_t loop;
	uv_async_t stop;
	uv_thread_t thread;
	bool loop_ready;
	bool running;
	struct listener lis[2];
	size_t nlis;
	unsigned nconns;
	unsigned nrenders;
	struct metrics_provider prov[HTTP_MAX_PROVIDERS];
	size_t nprov;
	struct stats *sum; /* 64-byte aligned scratch for the snapshot */
	uint64_t start_ms; /* wall clock at http_start: heartbeats of 0 count from here */
	double start_time; /* process start, Unix seconds */
	long ticks;	   /* sysconf(_SC_CLK_TCK) */
	long page;
	char server_label[96];
	char to[STATS_GROUPS][STATS_MAX_SERVERS][80];
	struct log_ratelimit rl;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- state for the probes and the snapshot ------------------------------------------------- */

static bool ready(struct http *h, char *why, size_t cap)
{
	const struct config *cfg = h->srv->cfg;
	struct meshview_info info;
	struct probe_state st;

	rcu_read_lock();
	meshview_get_info(meshtab_view(h->srv->mesh), &info);
	rcu_read_unlock();
	st.listeners = h->srv->nworkers == cfg->threads;
	st.interface = cfg->no_interface || h->nlink != NULL;
	st.synced = info.synced;
	return probe_ready(&st, why, cap) == 0;
}

static bool healthy(struct http *h, char *why, size_t cap)
{
	uint64_t beats[CONFIG_MAX_THREADS];
	unsigned n = h->srv->nworkers;

	for (unsigned i = 0; i < n && i < CONFIG_MAX_THREADS; i++)
		beats[i] = stats_get(&h->srv->workers[i]->stats.heartbeat_ms);
	return probe_health(beats, n, wall_ms(), h->start_ms, PROBE_SILENT_MS, why, cap) == 0;
}

/* Unix time of boot, from /proc/stat, for process_start_time_seconds. */
static double boot_time(void)
{
	char line[256];
	double t = 0;
	FILE *f = fopen("/proc/stat", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "btime ", 6) == 0) {
			t = strtod(line + 6, NULL);
			break;
		}
	fclose(f);
	return t;
}

/* Fields 4 to 24 of /proc/self/stat into @v: v[i] is field i + 3 (utime is v[11], stime
 * v[12], starttime v[19], vsize v[20], rss v[21]). Returns 0 or -EIO. */
static int read_stat(unsigned long long v[22])
{
	char buf[1024], *s, *end;
	ssize_t n;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -EIO;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	s = strrchr(buf, ')'); /* the command name may hold anything */
	if (!s || s[1] != ' ' || !s[2])
		return -EIO;
	s += 3; /* past ") " and the state letter */
	v[0] = 0;
	for (int i = 1; i < 22; i++) {
		v[i] = strtoull(s, &end, 10);
		if (end == s)
			return -EIO;
		s = end;
	}
	return 0;
}

static void read_process(struct http *h, struct metrics_process *p)
{
	unsigned long long v[22];
	struct rlimit rl;

	memset(p, 0, sizeof *p);
	if (read_stat(v) < 0)
		return;
	p->cpu_seconds = (double)(v[11] + v[12]) / (double)h->ticks;
	p->start_time = h->start_time;
	p->virtual_bytes = v[20];
	p->rss_bytes = v[21] * (uint64_t)h->page;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		while (readdir(d))
			p->open_fds++;
		closedir(d);
		p->open_fds = p->open_fds > 3 ? p->open_fds - 3 : 0; /* ".", ".." and d's own */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = rl.rlim_cur;
	p->known = true;
}

static int render_metrics(struct http *h, struct metrics_out *o)
{
	struct server *srv = h->srv;
	struct cache_stats cs;
	struct meshview_info mi;
	struct metrics_snapshot s;
	char why[128];

	memset(h->sum, 0, sizeof *h->sum);
	for (unsigned i = 0; i < srv->nworkers; i++)
		stats_sum(h->sum, &srv->workers[i]->stats);
	cache_get_stats(srv->cache, &cs);
	rcu_read_lock();
	meshview_get_info(meshtab_view(srv->mesh), &mi);
	rcu_read_unlock();

	memset(&s, 0, sizeof s);
	s.version = MESHDNS_VERSION;
	s.server = h->server_label;
	s.cluster_zone = srv->cfg->cluster_domain;
	s.st = h->sum;
	s.cache = &cs;
	s.cache_max_bytes = srv->cfg->cache_size;
	s.mesh = &mi;
	for (unsigned g = 0; g < STATS_GROUPS; g++)
		for (size_t i = 0; i < srv->groups[g].n && i < STATS_MAX_SERVERS; i++)
			s.to[g][i] = h->to[g][i];
	s.interface_repairs = h->nlink ? nlink_repairs(h->nlink) : 0;
	s.ready = ready(h, why, sizeof why);
	read_process(h, &s.proc);
	metrics_out_init(o, METRICS_MAX_BYTES);
	return metrics_render(&s, h->prov, h->nprov, o);
}

/* ---- connections ------------------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *hd)
{
	struct conn *c = hd->data;

	if (--c->open)
		return;
	if (c->render)
		c->h->nrenders--;
	c->h->nconns--;
	free(c->body);
	free(c);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *sd, int status)
{
	(void)sd;
	(void)status;
	/* Reading goes on (and discards) until the client closes or the linger timer fires:
	 * closing with unread bytes would reset the connection and could lose the reply. */
}

static void on_written(uv_write_t *wr, int status)
{
	struct conn *c = wr->data;

	if (c->closing)
		return;
	if (status < 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, HTTP_LINGER_MS, 0);
}

/* Sends the head and, unless @head_only, @len bytes of @body. */
static void respond(struct conn *c, int status, const char *type, const char *body, size_t len,
		    bool head_only)
{
	uv_buf_t b[2];
	int n = httpmsg_head(c->head, sizeof c->head, status, type, len, MESHDNS_VERSION);

	c->responded = true;
	if (n < 0) {
		conn_close(c);
		return;
	}
	b[0] = uv_buf_init(c->head, (unsigned)n);
	b[1] = uv_buf_init((char *)body, (unsigned)len);
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, b, head_only ? 1 : 2, on_written) < 0)
		conn_close(c);
}

/* A one-line text body. */
static void respond_text(struct conn *c, int status, const char *line, bool head_only)
{
	int n = snprintf(c->small, sizeof c->small, "%s\n", line);

	respond(c, status, TEXT, c->small, n < 0 ? 0 : strnlen(c->small, sizeof c->small),
		head_only);
}

static void serve_metrics(struct conn *c, bool head_only)
{
	struct http *h = c->h;
	struct metrics_out o;
	int r;

	if (h->nrenders >= HTTP_MAX_RENDERS) {
		respond_text(c, 503, "busy: too many scrapes at once", head_only);
		return;
	}
	r = render_metrics(h, &o);
	if (r < 0) {
		log_warn_rl(&h->rl, wall_ms(), "http", "/metrics: cannot render: %s",
			    r == -E2BIG ? "output over the size cap" : strerror(-r));
		metrics_out_deinit(&o);
		respond_text(c, 500, "cannot render the metrics", head_only);
		return;
	}
	h->nrenders++;
	c->render = true;
	c->body = o.buf; /* freed with the connection */
	respond(c, 200, PROM, o.buf, o.len, head_only);
}

static bool path_is(const struct httpmsg_request *rq, const char *p)
{
	size_t n = strlen(p);
	return rq->path_len == n && memcmp(rq->path, p, n) == 0;
}

static void route(struct conn *c, const struct httpmsg_request *rq)
{
	bool head_only = rq->method == HTTPMSG_HEAD;
	char why[128];

	if (rq->method == HTTPMSG_OTHER) {
		respond_text(c, 405, "method not allowed", false);
	} else if (c->l->health && path_is(rq, "/health")) {
		bool ok = healthy(c->h, why, sizeof why);
		respond_text(c, ok ? 200 : 503, why, head_only);
	} else if (c->l->health && path_is(rq, "/ready")) {
		bool ok = ready(c->h, why, sizeof why);
		respond_text(c, ok ? 200 : 503, why, head_only);
	} else if (c->l->metrics && path_is(rq, "/metrics")) {
		serve_metrics(c, head_only);
	} else {
		respond_text(c, 404, "not found", head_only);
	}
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = hd->data;

	(void)suggested;
	if (c->responded) /* discard whatever else the client sends */
		*buf = uv_buf_init(c->in, sizeof c->in);
	else
		*buf = uv_buf_init(c->in + c->inlen, (unsigned)(sizeof c->in - c->inlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct httpmsg_request rq;
	int r;

	(void)buf;
	if (c->closing)
		return;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (c->responded || nread == 0)
		return;
	c->inlen += (size_t)nread;
	r = httpmsg_parse(c->in, c->inlen, &rq);
	if (r == -EAGAIN)
		return;
	if (r == -E2BIG)
		respond_text(c, 431, "request head too large", false);
	else if (r < 0)
		respond_text(c, 400, "bad request", false);
	else
		route(c, &rq);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct http *h = l->h;
	struct conn *c;

	if (status < 0) {
		log_debug("http", "%s: accept: %s", l->addr, uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof *c);
	if (!c) {
		/* leave it in the backlog; the next connection retries */
		log_warn_rl(&h->rl, wall_ms(), "http", "%s: out of memory", l->addr);
		return;
	}
	c->h = h;
	c->l = l;
	uv_tcp_init(&h->loop, &c->tcp);
	uv_timer_init(&h->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->open = 2;
	h->nconns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0 || h->nconns > HTTP_MAX_CONNS) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, on_timeout, HTTP_HEAD_MS, 0);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
}

/* ---- listeners ----------------------------------------------------------------------------- */

/* Asks whoever listens on @addr for /health and returns true when it says it is meshdns.
 * Blocking, at most HOLDER_WAIT_MS; start-up only. */
static bool holder_is_meshdns(const struct sockaddr_storage *addr)
{
	static const char req[] = "GET /health HTTP/1.0\r\n\r\n";
	struct sockaddr_storage to = *addr;
	char resp[1024];
	size_t got = 0;
	bool sent = false;
	uint64_t deadline = wall_ms() + HOLDER_WAIT_MS;
	int fd;

	/* a wildcard listener is reached through loopback */
	if (to.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&to;
		if (s4->sin_addr.s_addr == htonl(INADDR_ANY))
			s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&to;
		if (IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
			s6->sin6_addr = in6addr_loopback;
	}
	fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	socklen_t alen =
		to.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (connect(fd, (struct sockaddr *)&to, alen) < 0 && errno != EINPROGRESS) {
		close(fd);
		return false;
	}
	for (int rounds = 0; rounds < 64 && got < sizeof resp; rounds++) {
		uint64_t now = wall_ms();
		struct pollfd p = { .fd = fd, .events = sent ? POLLIN : POLLOUT };
		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
			break;
		if (!sent) {
			if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) !=
			    (ssize_t)(sizeof req - 1))
				break;
			sent = true;
			continue;
		}
		ssize_t n = recv(fd, resp + got, sizeof resp - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memmem(resp, got, "\r\n\r\n", 4))
			break;
	}
	close(fd);
	return httpmsg_from_meshdns(resp, got);
}

/* Sends new connections of the SO_REUSEPORT group to its second socket when there is one:
 * the newer instance during a rolling update. With one socket the index is out of range and
 * the kernel picks by hash, i.e. that socket. */
static void prefer_newest(int fd, const char *addr)
{
	struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, 1) };
	struct sock_fprog prog = { .len = 1, .filter = code };

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
		log_debug("http", "%s: SO_ATTACH_REUSEPORT_CBPF: %s (connections spread by hash)",
			  addr, strerror(errno));
}

static int listen_socket(const struct sockaddr_storage *addr, const char *flag, const char *text)
{
	socklen_t alen = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);
	int one = 1, fd, err;

	/* Is anyone on the port? A plain bind (no SO_REUSEPORT) fails if so. */
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)addr, alen) < 0) {
		err = errno;
		close(fd);
		if (err != EADDRINUSE) {
			errno = err;
			goto fail;
		}
		if (!holder_is_meshdns(addr)) {
			log_error("http", "%s %s: port in use by another program", flag, text);
			return -EADDRINUSE;
		}
		log_info("http",
			 "%s %s: shared with the meshdns instance already there "
			 "(SO_REUSEPORT); new connections come here",
			 flag, text);
	} else {
		close(fd);
	}

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, (const struct sockaddr *)addr, alen) < 0 || listen(fd, HTTP_BACKLOG) < 0) {
		err = errno;
		close(fd);
		errno = err;
		goto fail;
	}
	prefer_newest(fd, text);
	return fd;
fail:
	err = errno;
	if (err == EADDRINUSE)
		log_error("http", "%s %s: port in use (held by a process that does not share it)",
			  flag, text);
	else
		log_error("http", "%s %s: %s", flag, text, strerror(err));
	return -err;
}

static int add_listener(struct http *h, const struct sockaddr_storage *addr, const char *flag,
			bool health, bool metrics)
{
	struct listener *l = &h->lis[h->nlis];
	int fd;

	config_addr_text(addr, l->addr, sizeof l->addr);
	fd = listen_socket(addr, flag, l->addr);
	if (fd < 0)
		return fd;
	l->fd = fd;
	l->h = h;
	l->health = health;
	l->metrics = metrics;
	h->nlis++;
	return 0;
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void on_closed_noop(uv_handle_t *hd)
{
	(void)hd;
}

/* Every TCP handle that is not a listener belongs to a connection. */
static void close_conn_walk(uv_handle_t *hd, void *arg)
{
	struct http *h = arg;

	if (hd->type != UV_TCP || uv_is_closing(hd))
		return;
	for (size_t i = 0; i < h->nlis; i++)
		if (hd == (uv_handle_t *)&h->lis[i].tcp)
			return;
	conn_close(hd->data);
}

static void on_stop(uv_async_t *a)
{
	struct http *h = a->data;

	for (size_t i = 0; i < h->nlis; i++)
		uv_close((uv_handle_t *)&h->lis[i].tcp, on_closed_noop);
	uv_walk(&h->loop, close_conn_walk, h);
	uv_close((uv_handle_t *)&h->stop, on_closed_noop);
}

static void run(void *arg)
{
	struct http *h = arg;

	rcu_register_thread();
	uv_run(&h->loop, UV_RUN_DEFAULT);
	rcu_unregister_thread();
}

int http_new(const struct http_opts *opts, struct http **out)
{
	const struct config *cfg = opts->srv->cfg;
	struct http *h;
	char text[80];
	int r;

	*out = NULL;
	if (cfg->health_off && cfg->metrics_off)
		return 0;
	h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->sum = aligned_alloc(64, sizeof *h->sum);
	if (!h->sum) {
		free(h);
		return -ENOMEM;
	}
	h->srv = opts->srv;
	h->nlink = opts->nlink;
	h->rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 3);
	h->ticks = sysconf(_SC_CLK_TCK);
	h->page = sysconf(_SC_PAGESIZE);
	snprintf(h->server_label, sizeof h->server_label, "dns://%s",
		 config_addr_text(&cfg->listen[0], text, sizeof text));
	for (unsigned g = 0; g < STATS_GROUPS; g++)
		for (size_t i = 0; i < h->srv->groups[g].n && i < STATS_MAX_SERVERS; i++)
			config_addr_text(&h->srv->groups[g].addr[i], h->to[g][i],
					 sizeof h->to[g][i]);

	bool same = !cfg->health_off && !cfg->metrics_off &&
		    config_addr_equal(&cfg->health, &cfg->metrics);
	r = 0;
	if (!cfg->health_off)
		r = add_listener(h, &cfg->health, same ? "--health/--metrics" : "--health", true,
				 same);
	if (r == 0 && !cfg->metrics_off && !same)
		r = add_listener(h, &cfg->metrics, "--metrics", false, true);
	if (r < 0) {
		http_free(h);
		return r;
	}
	*out = h;
	return 0;
}

int http_add_metrics(struct http *h, const char *const *families, metrics_provider_fn fn, void *arg)
{
	if (!h)
		return 0;
	if (h->nprov == HTTP_MAX_PROVIDERS)
		return -ENOSPC;
	h->prov[h->nprov++] = (struct metrics_provider){ fn, arg, families };
	return 0;
}

int http_start(struct http *h)
{
	int r;
	unsigned long long v[22];

	if (!h)
		return 0;
	h->start_ms = wall_ms();
	if (read_stat(v) == 0)
		h->start_time = boot_time() + (double)v[19] / (double)h->ticks;
	r = uv_loop_init(&h->loop);
	if (r < 0)
		goto fail;
	h->loop_ready = true;
	uv_async_init(&h->loop, &h->stop, on_stop);
	h->stop.data = h;
	for (size_t i = 0; i < h->nlis; i++) {
		uv_tcp_init(&h->loop, &h->lis[i].tcp);
		h->lis[i].tcp.data = &h->lis[i];
	}
	for (size_t i = 0; i < h->nlis; i++) {
		struct listener *l = &h->lis[i];
		r = uv_tcp_open(&l->tcp, l->fd);
		if (r < 0)
			goto fail;
		l->fd = -1; /* the handle owns it now */
		r = uv_listen((uv_stream_t *)&l->tcp, HTTP_BACKLOG, on_connection);
		if (r < 0)
			goto fail;
		log_info("http", "serving %s on %s",
			 l->health && l->metrics ? "/health, /ready and /metrics"
			 : l->health		 ? "/health and /ready"
						 : "/metrics",
			 l->addr);
	}
	r = uv_thread_create(&h->thread, run, h);
	if (r < 0)
		goto fail;
	h->running = true;
	return 0;
fail:
	log_error("http", "cannot start the HTTP endpoints: %s", uv_strerror(r));
	return r;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	if (h->running) {
		uv_async_send(&h->stop);
		uv_thread_join(&h->thread);
	} else if (h->loop_ready) {
		/* started half way: close what was opened on this thread */
		on_stop(&h->stop);
		uv_run(&h->loop, UV_RUN_DEFAULT);
	}
	if (h->loop_ready)
		uv_loop_close(&h->loop);
	for (size_t i = 0; i < h->nlis; i++)
		if (h->lis[i].fd >= 0) /* not handed to a handle */
			close(h->lis[i].fd);
	free(h->sum);
	free(h);
}
