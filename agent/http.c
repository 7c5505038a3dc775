/* The HTTP endpoints on their own thread and loop. See http.h. */
#include "agent/http.h"

#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/config.h"
#include "agent/log.h"
#include "agent/meshtab.h"
#include "agent/probe.h"
#include "agent/worker.h"
#include "netlink/nlink.h"

#define HTTP_MAX_RENDERS   4	  /* /metrics bodies rendered at once; more get 503 */
#define HTTP_TIMEOUT_S	   5	  /* a request must arrive, and its answer leave, within this */
#define HTTP_MAX_HEADERS   4096 /* request head bytes */
#define HTTP_BACKLOG	   64
#define HTTP_MAX_PROVIDERS 8

#define TEXT "text/plain; charset=utf-8"
#define PROM "text/plain; version=0.0.4; charset=utf-8"

/* One listening socket and the libevent HTTP server on it. */
struct listener {
	struct evhttp *eh;
	struct http *h;
	int fd;
	bool health; /* serves /health and /ready */
	bool metrics;
	char addr[80];
};

struct http {
	struct server *srv;
	const struct nlink *nlink;
	struct event_base *base;
	struct event *stop_ev;
	int stop_fd; /* eventfd: written by http_free, read on the HTTP thread */
	pthread_t thread;
	bool running;
	struct listener lis[2];
	size_t nlis;
	_Atomic unsigned nrenders;
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
	st.listeners = server_workers_running(h->srv) == cfg->threads;
	st.interface = cfg->no_interface || h->nlink != NULL;
	st.synced = info.synced;
	return probe_ready(&st, why, cap) == 0;
}

static bool healthy(struct http *h, char *why, size_t cap)
{
	uint64_t beats[CONFIG_MAX_THREADS];
	unsigned n = server_workers_running(h->srv);

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
	for (unsigned i = 0; i < server_workers_running(srv); i++)
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

/* ---- requests (libevent's evhttp parses them; these only decide the answer) ------------ */

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", "no-store");
	evhttp_add_header(out, "Server", "meshdns/" MESHDNS_VERSION);
	evhttp_send_reply(req, code, NULL, body);
}

/* A one-line text answer. */
static void reply_text(struct evhttp_request *req, int code, const char *line)
{
	struct evbuffer *b = evbuffer_new();

	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(b, "%s\n", line);
	reply(req, code, TEXT, b);
	evbuffer_free(b);
}

static void on_health(struct evhttp_request *req, void *arg)
{
	struct listener *l = arg;
	char why[128];
	bool ok = healthy(l->h, why, sizeof why);

	reply_text(req, ok ? 200 : 503, why);
}

static void on_ready(struct evhttp_request *req, void *arg)
{
	struct listener *l = arg;
	char why[128];
	bool ok = ready(l->h, why, sizeof why);

	reply_text(req, ok ? 200 : 503, why);
}

static void free_body(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
	struct listener *l = arg;
	struct http *h = l->h;
	struct metrics_out o;
	struct evbuffer *b;
	int r;

	if (atomic_fetch_add(&h->nrenders, 1) >= HTTP_MAX_RENDERS) {
		atomic_fetch_sub(&h->nrenders, 1);
		reply_text(req, 503, "busy: too many scrapes at once");
		return;
	}
	r = render_metrics(h, &o);
	atomic_fetch_sub(&h->nrenders, 1);
	b = r < 0 ? NULL : evbuffer_new();
	if (!b) {
		log_warn_rl(&h->rl, wall_ms(), "http", "/metrics: cannot render: %s",
			    r == -E2BIG ? "output over the size cap" : strerror(r < 0 ? -r : ENOMEM));
		metrics_out_deinit(&o);
		reply_text(req, 500, "cannot render the metrics");
		return;
	}
	/* the body is handed over without a copy and freed when sent */
	if (evbuffer_add_reference(b, o.buf, o.len, free_body, o.buf) < 0)
		metrics_out_deinit(&o);
	reply(req, 200, PROM, b);
	evbuffer_free(b);
}

static void on_other(struct evhttp_request *req, void *arg)
{
	(void)arg;
	reply_text(req, 404, "not found");
}

/* ---- listeners ------------------------------------------------------------------------- */

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

/* A listening SO_REUSEPORT socket on @addr. A port held by a process that does not share it
 * (not SO_REUSEPORT, or another user) is an error. */
static int listen_socket(const struct sockaddr_storage *addr, const char *flag, const char *text)
{
	socklen_t alen = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						     : sizeof(struct sockaddr_in);
	int one = 1, fd, err;

	/* Is the port held already? A bind without SO_REUSEPORT says so. */
	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	bool shared = bind(fd, (const struct sockaddr *)addr, alen) < 0 && errno == EADDRINUSE;
	close(fd);

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
	if (shared)
		log_info("http", "%s %s: shared with another instance (SO_REUSEPORT); new "
				 "connections come here", flag, text);
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

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	uint64_t v;

	(void)what;
	if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
		log_debug("http", "stop: %s", strerror(errno));
	event_base_loopbreak(h->base);
}

static void *run(void *arg)
{
	struct http *h = arg;

	rcu_register_thread();
	event_base_dispatch(h->base);
	rcu_unregister_thread();
	return NULL;
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
	h->stop_fd = -1;
	h->sum = aligned_alloc(64, (sizeof *h->sum + 63) & ~(size_t)63);
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

/* Puts an evhttp server on listener @l. */
static int serve_listener(struct http *h, struct listener *l)
{
	l->eh = evhttp_new(h->base);
	if (!l->eh)
		return -ENOMEM;
	evhttp_set_timeout(l->eh, HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(l->eh, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(l->eh, 0);
	evhttp_set_allowed_methods(l->eh, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	if (l->health) {
		evhttp_set_cb(l->eh, "/health", on_health, l);
		evhttp_set_cb(l->eh, "/ready", on_ready, l);
	}
	if (l->metrics)
		evhttp_set_cb(l->eh, "/metrics", on_metrics, l);
	evhttp_set_gencb(l->eh, on_other, l);
	if (!evhttp_accept_socket_with_handle(l->eh, l->fd))
		return -EINVAL;
	l->fd = -1; /* evhttp owns it now and closes it */
	log_info("http", "serving %s on %s",
		 l->health && l->metrics ? "/health, /ready and /metrics"
		 : l->health		 ? "/health and /ready"
					 : "/metrics",
		 l->addr);
	return 0;
}

int http_start(struct http *h)
{
	int r = -ENOMEM;
	unsigned long long v[22];

	if (!h)
		return 0;
	h->start_ms = wall_ms();
	if (read_stat(v) == 0)
		h->start_time = boot_time() + (double)v[19] / (double)h->ticks;
	h->base = event_base_new();
	h->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!h->base || h->stop_fd < 0)
		goto fail;
	h->stop_ev = event_new(h->base, h->stop_fd, EV_READ, on_stop, h);
	if (!h->stop_ev || event_add(h->stop_ev, NULL) < 0)
		goto fail;
	for (size_t i = 0; i < h->nlis; i++) {
		r = serve_listener(h, &h->lis[i]);
		if (r < 0)
			goto fail;
	}
	r = -pthread_create(&h->thread, NULL, run, h);
	if (r < 0)
		goto fail;
	h->running = true;
	return 0;
fail:
	log_error("http", "cannot start the HTTP endpoints: %s", strerror(-r));
	return r;
}

void http_free(struct http *h)
{
	uint64_t one = 1;

	if (!h)
		return;
	if (h->running) {
		if (write(h->stop_fd, &one, sizeof one) < 0)
			log_warn("http", "cannot stop the HTTP thread: %s", strerror(errno));
		pthread_join(h->thread, NULL);
	}
	for (size_t i = 0; i < h->nlis; i++) {
		if (h->lis[i].eh)
			evhttp_free(h->lis[i].eh); /* closes its socket and connections */
		if (h->lis[i].fd >= 0)
			close(h->lis[i].fd);
	}
	if (h->stop_ev)
		event_free(h->stop_ev);
	if (h->base)
		event_base_free(h->base);
	if (h->stop_fd >= 0)
		close(h->stop_fd);
	free(h->sum);
	free(h);
}
