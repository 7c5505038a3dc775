/* meshdns: start-up, the control loop, shutdown.
 *
 * Order at start: flags (exit 2 on a bad one, before anything is touched); upstream servers;
 * the cache and mesh table; the interface and addresses (netlink); the HTTP ports and the
 * sockets of every worker (exit 1 if a port is taken); worker threads; the HTTP endpoints on
 * their own thread; the ServiceEntry source on the control loop. SIGTERM and SIGINT close
 * the HTTP ports, drain the workers (new queries go to a newer instance on the same address,
 * queued ones are answered), remove the interface unless another instance still serves it,
 * and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <urcu/urcu-memb.h>
#include <uv.h>

#include "agent/cache.h"
#include "agent/config.h"
#include "agent/http.h"
#include "agent/log.h"
#include "agent/meshtab.h"
#include "agent/resolvconf.h"
#include "agent/worker.h"
#include "k8s/filesrc.h"
#include "k8s/kapi.h"
#include "k8s/sestore.h"
#include "k8s/srcmetrics.h"
#include "netlink/nlink.h"

struct agent {
	struct config cfg;
	struct server srv;
	uv_loop_t *loop;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	struct nlink *nlink;
	struct sestore *store;
	struct filesrc *filesrc;
	uv_timer_t sync_wait;
	uint64_t sync_deadline;
	int status;
	bool serving;
	struct http *http;
	struct kapi *kapi;
	struct srcmetrics *srcm;
	bool stopping;
};

/* Adds @n servers to @g, skipping our own listen addresses (rule 5: a query sent there would
 * come back to us). */
static void add_servers(struct upstream_group *g, const struct sockaddr_storage *list, size_t n,
			const struct config *cfg, const char *flag)
{
	char text[80];

	for (size_t i = 0; i < n; i++) {
		bool own = false;
		for (size_t k = 0; k < cfg->nlisten; k++)
			own |= config_addr_equal(&list[i], &cfg->listen[k]);
		if (own)
			log_warn("main", "%s %s is one of our own listen addresses: skipped", flag,
				 config_addr_text(&list[i], text, sizeof text));
		else
			g->addr[g->n++] = list[i];
	}
}

/* Called by the workers while they canonicalise a reply, inside rcu_read_lock(). */
static bool in_mesh_zone(void *arg, const uint8_t *name, size_t len)
{
	struct server *srv = arg;

	return meshview_in_zone(meshtab_view(srv->mesh), name, len);
}

static int setup_upstreams(struct agent *a)
{
	struct config *cfg = &a->cfg;
	struct upstream_group *up = &a->srv.groups[STATS_GROUP_UPSTREAM];
	struct upstream_group *cl = &a->srv.groups[STATS_GROUP_CLUSTER];
	char text[80];
	int r;

	if (cfg->nupstream) {
		add_servers(up, cfg->upstream, cfg->nupstream, cfg, "--upstream");
	} else {
		r = resolvconf_read(cfg->resolv_conf, RESOLVCONF_SYSTEMD_PATH, cfg->listen,
				    cfg->nlisten, up->addr, CONFIG_MAX_SERVERS);
		if (r < 0) {
			log_error("main", "cannot read --resolv-conf %s: %s", cfg->resolv_conf,
				  strerror(-r));
			return -ENOENT;
		}
		up->n = (size_t)r;
	}
	if (up->n == 0) {
		log_error("main", "no upstream servers: give --upstream, or a --resolv-conf with "
				  "nameserver lines other than our own addresses");
		return -ENOENT;
	}
	add_servers(cl, cfg->cluster_dns, cfg->ncluster_dns, cfg, "--cluster-dns");
	if (cl->n == 0) {
		log_warn("main", "no cluster DNS (--cluster-dns, $KUBE_DNS_SERVICE_HOST): names "
				 "under %s and reverse zones go to the upstream servers",
			 cfg->cluster_domain);
		memcpy(cl->addr, up->addr, up->n * sizeof cl->addr[0]);
		cl->n = up->n;
	}
	for (size_t i = 0; i < up->n; i++)
		log_info("main", "upstream %s", config_addr_text(&up->addr[i], text, sizeof text));
	for (size_t i = 0; i < cl->n; i++)
		log_info("main", "cluster DNS %s",
			 config_addr_text(&cl->addr[i], text, sizeof text));

	/* TTL caps: NodeLocal DNSCache's for the cluster domain and reverse zones. */
	cl->policy.max_ttl = 30;
	cl->policy.neg_ttl = 5;
	up->policy.max_ttl = cfg->max_ttl;
	up->policy.neg_ttl = cfg->neg_ttl;
	/* The general upstream never speaks for cluster names (MaginotDNS). */
	a->srv.deny[0] = a->srv.cluster_domain;
	a->srv.deny_len[0] = (uint8_t)a->srv.cluster_domain_len;
	a->srv.deny[1] = NULL;
	up->policy.deny = a->srv.deny;
	up->policy.deny_len = a->srv.deny_len;
	/* No upstream speaks for the mesh zones: those names come from ServiceEntries only. */
	up->policy.denied_fn = in_mesh_zone;
	up->policy.denied_arg = &a->srv;
	cl->policy.denied_fn = in_mesh_zone;
	cl->policy.denied_arg = &a->srv;
	return 0;
}

/* True when another process has a UDP socket bound to one of our listen addresses (a newer
 * instance during a rolling update): the interface must then stay. */
static bool others_serve(const struct config *cfg)
{
	const char *files[] = { "/proc/net/udp", "/proc/net/udp6" };
	char line[512];
	int found = 0;

	for (int f = 0; f < 2; f++) {
		FILE *fp = fopen(files[f], "re");
		if (!fp)
			continue;
		while (fgets(line, sizeof line, fp)) {
			char local[64];
			unsigned port;
			if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x", local, &port) != 2)
				continue;
			for (size_t i = 0; i < cfg->nlisten; i++) {
				const struct sockaddr_storage *l = &cfg->listen[i];
				char want[40];
				if (l->ss_family == AF_INET && f == 0) {
					const struct sockaddr_in *s4 = (const void *)l;
					if (ntohs(s4->sin_port) != port)
						continue;
					snprintf(want, sizeof want, "%08X", s4->sin_addr.s_addr);
				} else if (l->ss_family == AF_INET6 && f == 1) {
					const struct sockaddr_in6 *s6 = (const void *)l;
					const uint32_t *w32 = (const uint32_t *)&s6->sin6_addr;
					if (ntohs(s6->sin6_port) != port)
						continue;
					snprintf(want, sizeof want, "%08X%08X%08X%08X", w32[0], w32[1],
						 w32[2], w32[3]);
				} else {
					continue;
				}
				if (strcasecmp(want, local) == 0)
					found++;
			}
		}
		fclose(fp);
	}
	return found > 0;
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct agent *a = s->data;

	/* The handlers stay installed until the end: a second signal (Ctrl-C twice, an init
	 * that signals the whole group) must not kill us half way through the teardown. */
	if (a->stopping) {
		log_info("main", "%s: already stopping", strsignal(signum));
		return;
	}
	a->stopping = true;
	log_info("main", "%s: draining and stopping", strsignal(signum));
	for (unsigned i = 0; i < a->srv.nworkers; i++)
		worker_stop(a->srv.workers[i]);
	/* still handled, but no longer a reason for the loop to run */
	uv_unref((uv_handle_t *)&a->sigterm);
	uv_unref((uv_handle_t *)&a->sigint);
	uv_stop(a->loop);
}

/* Starts the ServiceEntry source on the control loop. */
static int start_source(struct agent *a)
{
	struct sestore_opts sopts = {
		.cluster_domain = a->cfg.cluster_domain,
		.auto_zones = !a->cfg.no_auto_zones,
		.use_auto_allocated = a->cfg.use_auto_allocated,
	};

	a->store = sestore_new(&sopts, a->srv.mesh);
	if (!a->store)
		return -ENOMEM;
	switch (a->cfg.source) {
	case CONFIG_SOURCE_NONE:
		return filesrc_start_none(a->store);
	case CONFIG_SOURCE_FILE:
		return filesrc_start(a->loop, a->cfg.source_path, a->store, &a->filesrc);
	case CONFIG_SOURCE_KUBERNETES:
	default: {
		struct kapi_opts kopts = {
			.api_url = a->cfg.kube_api,
			.token_file = a->cfg.kube_token_file,
			.ca_file = a->cfg.kube_ca_file,
		};
		return kapi_start(a->loop, &kopts, a->store, &a->kapi);
	}
	}
}

static void stop_source(struct agent *a)
{
	kapi_stop(a->kapi);
	a->kapi = NULL;
	if (a->filesrc) {
		filesrc_stop(a->filesrc);
		a->filesrc = NULL;
	}
}

static int start_workers(struct agent *a)
{
	struct server *srv = &a->srv;
	int r;

	srv->workers = calloc(a->cfg.threads, sizeof *srv->workers);
	if (!srv->workers)
		return -ENOMEM;
	for (unsigned i = 0; i < a->cfg.threads; i++) {
		r = worker_new(srv, i, &srv->workers[i]);
		if (r < 0)
			return r;
		srv->nworkers++;
	}
	for (unsigned i = 0; i < srv->nworkers; i++) {
		r = worker_start(srv->workers[i]);
		if (r < 0) {
			log_error("main", "cannot start a worker thread: %s", uv_strerror(r));
			return r;
		}
	}
	atomic_store_explicit(&srv->running, srv->nworkers, memory_order_release);
	return 0;
}

static bool mesh_synced(struct agent *a)
{
	struct meshview_info info;

	rcu_read_lock();
	meshview_get_info(meshtab_view(a->srv.mesh), &info);
	rcu_read_unlock();
	return info.synced;
}

static void on_sync_wait(uv_timer_t *t)
{
	struct agent *a = t->data;
	bool synced = mesh_synced(a);

	if (a->stopping) {
		uv_close((uv_handle_t *)t, on_handle_closed);
		return;
	}
	if (!synced && uv_now(a->loop) < a->sync_deadline)
		return;
	uv_close((uv_handle_t *)t, on_handle_closed);
	if (!synced)
		log_warn("main", "ServiceEntries not synced after %u s (--sync-wait): serving "
				 "anyway; names in --zone zones get SERVFAIL until the first sync",
			 a->cfg.sync_wait);
	if (start_workers(a) < 0) {
		a->status = 1;
		a->stopping = true;
		uv_unref((uv_handle_t *)&a->sigterm);
		uv_unref((uv_handle_t *)&a->sigint);
		uv_stop(a->loop);
		return;
	}
	a->serving = true;
	log_info("main", "meshdns %s serving with %u thread%s", MESHDNS_VERSION, a->cfg.threads,
		 a->cfg.threads == 1 ? "" : "s");
}

static void stop_workers(struct agent *a)
{
	for (unsigned i = 0; i < a->srv.nworkers; i++)
		if (a->srv.workers[i]->started)
			worker_stop(a->srv.workers[i]);
	for (unsigned i = 0; i < a->srv.nworkers; i++)
		worker_join_free(a->srv.workers[i]);
	free(a->srv.workers);
	a->srv.workers = NULL;
	a->srv.nworkers = 0;
}

int main(int argc, char **argv)
{
	static struct agent agent;
	struct agent *a = &agent;
	char err[256];
	uint8_t key[16];
	int r, status = 1;

	r = config_parse(&a->cfg, argc, argv, err, sizeof err);
	if (r == 1)
		return 0;
	if (r < 0) {
		fprintf(stderr, "meshdns: %s\n", err);
		return 2;
	}
	log_level_current = a->cfg.log_level;
	signal(SIGPIPE, SIG_IGN);
	if (getrandom(key, sizeof key, 0) != (ssize_t)sizeof key) {
		log_error("main", "getrandom: %s", strerror(errno));
		return 1;
	}
	wire_set_hash_key(key);
	rcu_register_thread();

	a->srv.cfg = &a->cfg;
	r = wire_name_from_text(a->cfg.cluster_domain, a->srv.cluster_domain,
				sizeof a->srv.cluster_domain);
	a->srv.cluster_domain_len = (size_t)r;
	if (setup_upstreams(a) < 0)
		goto out;

	a->srv.cache = cache_new(a->cfg.cache_size, a->cfg.stale_window);
	struct meshtab_opts mopts = {
		.zones = a->cfg.zones,
		.nzones = a->cfg.nzones,
		.auto_zones = !a->cfg.no_auto_zones,
		.ttl = a->cfg.mesh_ttl,
		.neg_ttl = 5,
	};
	a->srv.mesh = meshtab_new(&mopts);
	if (!a->srv.cache || !a->srv.mesh) {
		log_error("main", "out of memory");
		goto out;
	}
	a->loop = uv_default_loop();
	if (start_source(a) < 0)
		goto out;
	if (!a->cfg.no_interface) {
		struct nlink_opts nopts = {
			.ifname = a->cfg.interface,
			.kind = a->cfg.interface_kind,
			.addrs = a->cfg.listen,
			.naddrs = a->cfg.nlisten,
		};
		if (nlink_start(&a->nlink, a->loop, &nopts) < 0)
			goto out;
	}
	struct http_opts hopts = { .srv = &a->srv, .nlink = a->nlink };
	if (http_new(&hopts, &a->http) < 0)
		goto out;
	if (srcmetrics_start(a->loop, a->http, a->store, a->filesrc, a->kapi, &a->srcm) < 0)
		goto out;
	uv_signal_init(a->loop, &a->sigterm);
	uv_signal_init(a->loop, &a->sigint);
	a->sigterm.data = a;
	a->sigint.data = a;
	uv_signal_start(&a->sigterm, on_signal, SIGTERM);
	uv_signal_start(&a->sigint, on_signal, SIGINT);
	/* /health and /ready answer from now on: /ready says 503 until the workers serve */
	if (http_start(a->http) < 0)
		goto out;
	/* Bind and serve once the mesh table is synced (or --sync-wait ran out), so that mesh
	 * names are never forwarded upstream while the first list is read: during a rolling
	 * update the previous instance keeps answering them until then. */
	uv_timer_init(a->loop, &a->sync_wait);
	a->sync_wait.data = a;
	a->sync_deadline = uv_now(a->loop) + (uint64_t)a->cfg.sync_wait * 1000;
	a->status = 0;
	uv_timer_start(&a->sync_wait, on_sync_wait, 0, 20);
	uv_run(a->loop, UV_RUN_DEFAULT);
	status = a->status;
out:
	stop_source(a);
	http_free(a->http);
	srcmetrics_stop(a->srcm);
	stop_workers(a);
	if (a->nlink) {
		bool teardown = !a->cfg.skip_teardown;
		if (teardown && others_serve(&a->cfg)) {
			log_info("main", "another instance serves our addresses: interface kept");
			teardown = false;
		}
		nlink_stop(a->nlink, teardown);
	}
	if (a->loop) {
		uv_run(a->loop, UV_RUN_DEFAULT); /* source, netlink: their close callbacks */
		if (uv_is_active((uv_handle_t *)&a->sigterm)) {
			uv_close((uv_handle_t *)&a->sigterm, on_handle_closed);
			uv_close((uv_handle_t *)&a->sigint, on_handle_closed);
			uv_run(a->loop, UV_RUN_DEFAULT);
		}
		uv_loop_close(a->loop);
	}
	sestore_free(a->store);
	meshtab_free(a->srv.mesh);
	cache_free(a->srv.cache);
	rcu_unregister_thread();
	if (status == 0)
		log_info("main", "stopped");
	return status;
}
