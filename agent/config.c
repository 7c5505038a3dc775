/* Command-line flags. See config.h and INTERFACE.md. */
#include "agent/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/wire.h"

enum {
	OPT_LISTEN = 256,
	OPT_INTERFACE,
	OPT_INTERFACE_KIND,
	OPT_NO_INTERFACE,
	OPT_SKIP_TEARDOWN,
	OPT_NO_IO_URING,
	OPT_CLUSTER_DOMAIN,
	OPT_CLUSTER_DNS,
	OPT_UPSTREAM,
	OPT_RESOLV_CONF,
	OPT_ZONE,
	OPT_NO_AUTO_ZONES,
	OPT_USE_AUTO_ALLOCATED,
	OPT_SERVICEENTRIES,
	OPT_KUBE_API,
	OPT_KUBE_TOKEN_FILE,
	OPT_KUBE_CA_FILE,
	OPT_MESH_TTL,
	OPT_CACHE_SIZE,
	OPT_MAX_TTL,
	OPT_NEG_TTL,
	OPT_STALE_WINDOW,
	OPT_THREADS,
	OPT_SYNC_WAIT,
	OPT_UPSTREAM_TIMEOUT,
	OPT_TCP_IDLE_TIMEOUT,
	OPT_MAX_TCP_CONNECTIONS,
	OPT_MAX_INFLIGHT,
	OPT_MAX_INFLIGHT_PER_CLIENT,
	OPT_HEALTH,
	OPT_METRICS,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "interface", required_argument, NULL, OPT_INTERFACE },
	{ "interface-kind", required_argument, NULL, OPT_INTERFACE_KIND },
	{ "no-interface", no_argument, NULL, OPT_NO_INTERFACE },
	{ "skip-teardown", no_argument, NULL, OPT_SKIP_TEARDOWN },
	{ "no-io-uring", no_argument, NULL, OPT_NO_IO_URING },
	{ "cluster-domain", required_argument, NULL, OPT_CLUSTER_DOMAIN },
	{ "cluster-dns", required_argument, NULL, OPT_CLUSTER_DNS },
	{ "upstream", required_argument, NULL, OPT_UPSTREAM },
	{ "resolv-conf", required_argument, NULL, OPT_RESOLV_CONF },
	{ "zone", required_argument, NULL, OPT_ZONE },
	{ "no-auto-zones", no_argument, NULL, OPT_NO_AUTO_ZONES },
	{ "use-auto-allocated", no_argument, NULL, OPT_USE_AUTO_ALLOCATED },
	{ "serviceentries", required_argument, NULL, OPT_SERVICEENTRIES },
	{ "kube-api", required_argument, NULL, OPT_KUBE_API },
	{ "kube-token-file", required_argument, NULL, OPT_KUBE_TOKEN_FILE },
	{ "kube-ca-file", required_argument, NULL, OPT_KUBE_CA_FILE },
	{ "mesh-ttl", required_argument, NULL, OPT_MESH_TTL },
	{ "cache-size", required_argument, NULL, OPT_CACHE_SIZE },
	{ "max-ttl", required_argument, NULL, OPT_MAX_TTL },
	{ "neg-ttl", required_argument, NULL, OPT_NEG_TTL },
	{ "stale-window", required_argument, NULL, OPT_STALE_WINDOW },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "sync-wait", required_argument, NULL, OPT_SYNC_WAIT },
	{ "upstream-timeout", required_argument, NULL, OPT_UPSTREAM_TIMEOUT },
	{ "tcp-idle-timeout", required_argument, NULL, OPT_TCP_IDLE_TIMEOUT },
	{ "max-tcp-connections", required_argument, NULL, OPT_MAX_TCP_CONNECTIONS },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "max-inflight-per-client", required_argument, NULL, OPT_MAX_INFLIGHT_PER_CLIENT },
	{ "health", required_argument, NULL, OPT_HEALTH },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static const char usage[] =
	"Usage: meshdns [FLAG]...\n"
	"Node-local DNS caching agent: answers mesh names from Istio ServiceEntries, forwards\n"
	"the cluster domain and reverse zones to cluster DNS and everything else upstream.\n"
	"\n"
	"Serving:\n"
	"  --listen ADDR[:PORT]        serve UDP and TCP here; repeatable; IPv6 as [fd00::10]:53\n"
	"                              (default 169.254.20.10:53)\n"
	"  --interface NAME            link that holds the listen addresses (default meshdns)\n"
	"  --interface-kind KIND       link kind to create when missing (default dummy)\n"
	"  --no-interface              touch no links or addresses (default off)\n"
	"  --skip-teardown             leave link and addresses in place on exit (default off)\n"
	"  --threads N                 worker threads serving queries (default 1)\n"
	"  --no-io-uring               read UDP on epoll even where io_uring works (default off)\n"
	"  --tcp-idle-timeout MS       close idle client TCP connections after MS (default 10000)\n"
	"  --max-tcp-connections N     client TCP connections per thread (default 1024)\n"
	"\n"
	"Forwarding and cache:\n"
	"  --cluster-domain DOMAIN     names sent to cluster DNS (default cluster.local)\n"
	"  --cluster-dns ADDR[:PORT]   cluster DNS servers, repeatable\n"
	"                              (default $KUBE_DNS_SERVICE_HOST)\n"
	"  --upstream ADDR[:PORT]      servers for every other name, repeatable\n"
	"                              (default: nameserver lines of --resolv-conf)\n"
	"  --resolv-conf PATH          where upstreams come from (default /etc/resolv.conf)\n"
	"  --upstream-timeout MS       per-try timeout before the next server (default 2000)\n"
	"  --max-inflight N            upstream queries in flight per thread (default 4096)\n"
	"  --max-inflight-per-client N upstream queries in flight per client address, per thread\n"
	"                              (default 512)\n"
	"  --cache-size BYTES          cache bound; suffixes k, M, G (default 64M)\n"
	"  --max-ttl SECONDS           positive TTL cap outside the cluster domain (default 3600)\n"
	"  --neg-ttl SECONDS           negative TTL cap outside the cluster domain (default 300)\n"
	"                              (the cluster domain and reverse zones: 30 and 5)\n"
	"  --stale-window SECONDS      serve expired answers this long when upstreams fail,\n"
	"                              RFC 8767; 0 turns serve-stale off (default 86400)\n"
	"\n"
	"Mesh names:\n"
	"  --serviceentries SOURCE     kubernetes, a path to a JSON file, or none\n"
	"                              (default kubernetes)\n"
	"  --zone ZONE                 mesh zone answered locally, repeatable (default none;\n"
	"                              zones are also learned from ServiceEntries)\n"
	"  --no-auto-zones             do not learn zones from ServiceEntries (default off)\n"
	"  --use-auto-allocated        use status.addresses of entries without spec.addresses\n"
	"                              (default off)\n"
	"  --mesh-ttl SECONDS          TTL of local mesh answers (default 30)\n"
	"  --sync-wait SECONDS         serve only once ServiceEntries are synced, or after this\n"
	"                              long (default 10)\n"
	"  --kube-api URL              API server (default in-cluster)\n"
	"  --kube-token-file PATH      bearer token (default in-cluster service account token)\n"
	"  --kube-ca-file PATH         CA bundle (default in-cluster ca.crt)\n"
	"\n"
	"Operations:\n"
	"  --health ADDR:PORT|off      /health and /ready (default first listen address, 8054)\n"
	"  --metrics ADDR:PORT|off     /metrics (default 0.0.0.0:9253)\n"
	"  --log-level LEVEL           error, warn, info or debug (default info)\n"
	"  --help                      print this help and exit\n"
	"  --version                   print the version and exit\n";

static int errorf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int errorf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int config_parse_addr(const char *text, uint16_t default_port, struct sockaddr_storage *out)
{
	char host[INET6_ADDRSTRLEN + IFNAMSIZ + 2];
	const char *port = NULL;
	size_t hl;

	memset(out, 0, sizeof *out);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close)
			return -EINVAL;
		hl = (size_t)(close - text - 1);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != 0)
			return -EINVAL;
		text++;
	} else {
		const char *colon = strchr(text, ':');
		if (colon && strchr(colon + 1, ':')) { /* a bare IPv6 address */
			hl = strlen(text);
		} else {
			hl = colon ? (size_t)(colon - text) : strlen(text);
			if (colon)
				port = colon + 1;
		}
	}
	if (hl == 0 || hl >= sizeof host)
		return -EINVAL;
	memcpy(host, text, hl);
	host[hl] = 0;

	unsigned long p = default_port;
	if (port) {
		char *end;
		errno = 0;
		p = strtoul(port, &end, 10);
		if (errno || *end || end == port || p == 0 || p > 65535)
			return -EINVAL;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		return 0;
	}
	char *pct = strchr(host, '%');
	if (pct)
		*pct = 0;
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		if (pct) {
			s6->sin6_scope_id = if_nametoindex(pct + 1);
			if (s6->sin6_scope_id == 0) {
				char *end;
				unsigned long idx = strtoul(pct + 1, &end, 10);
				if (*end || idx == 0)
					return -EINVAL;
				s6->sin6_scope_id = (uint32_t)idx;
			}
		}
		return 0;
	}
	return -EINVAL;
}

int config_parse_size(const char *text, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		default:
			return -EINVAL;
		}
		if (end[1] && !((end[1] == 'i' || end[1] == 'B') && (!end[2] || end[2] == 'B')))
			return -EINVAL;
	}
	if (v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *config_addr_text(const struct sockaddr_storage *a, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)a;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		snprintf(out, cap, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)a;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		snprintf(out, cap, "%s:%u", host, ntohs(s4->sin_port));
	} else {
		snprintf(out, cap, "?");
	}
	return out;
}

bool config_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
	}
	return false;
}

static bool is_wildcard(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &in6addr_any,
		      sizeof(struct in6_addr)) == 0;
}

static int parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(text, &end, 10);
	if (errno || *end || *out < min || *out > max)
		return -EINVAL;
	return 0;
}

static void set_defaults(struct config *c)
{
	memset(c, 0, sizeof *c);
	snprintf(c->interface, sizeof c->interface, "meshdns");
	snprintf(c->interface_kind, sizeof c->interface_kind, "dummy");
	snprintf(c->cluster_domain, sizeof c->cluster_domain, "cluster.local.");
	snprintf(c->resolv_conf, sizeof c->resolv_conf, "/etc/resolv.conf");
	c->source = CONFIG_SOURCE_KUBERNETES;
	c->mesh_ttl = 30;
	c->cache_size = 64ULL << 20;
	c->max_ttl = 3600;
	c->neg_ttl = 300;
	c->stale_window = 86400;
	c->threads = 1;
	c->io_uring = true;
	c->sync_wait = 10;
	c->upstream_timeout_ms = 2000;
	c->tcp_idle_ms = 10000;
	c->max_tcp_conns = 1024;
	c->max_inflight = 4096;
	c->max_inflight_per_client = 512;
	c->log_level = LOG_LEVEL_INFO;
}

/* Flags whose value is a number, with their bounds and destination. */
struct num_flag {
	int opt;
	const char *name;
	unsigned long min, max;
};

static const struct num_flag num_flags[] = {
	{ OPT_MESH_TTL, "--mesh-ttl", 0, 86400 },
	{ OPT_MAX_TTL, "--max-ttl", 1, 604800 },
	{ OPT_NEG_TTL, "--neg-ttl", 0, 86400 },
	{ OPT_STALE_WINDOW, "--stale-window", 0, 604800 },
	{ OPT_THREADS, "--threads", 1, CONFIG_MAX_THREADS },
	{ OPT_SYNC_WAIT, "--sync-wait", 0, 3600 },
	{ OPT_UPSTREAM_TIMEOUT, "--upstream-timeout", 10, 60000 },
	{ OPT_TCP_IDLE_TIMEOUT, "--tcp-idle-timeout", 100, 600000 },
	{ OPT_MAX_TCP_CONNECTIONS, "--max-tcp-connections", 1, 1000000 },
	{ OPT_MAX_INFLIGHT, "--max-inflight", 1, 1000000 },
	{ OPT_MAX_INFLIGHT_PER_CLIENT, "--max-inflight-per-client", 1, 1000000 },
};

static void store_num(struct config *c, int opt, unsigned long v)
{
	switch (opt) {
	case OPT_MESH_TTL:
		c->mesh_ttl = (uint32_t)v;
		break;
	case OPT_MAX_TTL:
		c->max_ttl = (uint32_t)v;
		break;
	case OPT_NEG_TTL:
		c->neg_ttl = (uint32_t)v;
		break;
	case OPT_STALE_WINDOW:
		c->stale_window = (uint32_t)v;
		break;
	case OPT_THREADS:
		c->threads = (unsigned)v;
		break;
	case OPT_SYNC_WAIT:
		c->sync_wait = (uint32_t)v;
		break;
	case OPT_UPSTREAM_TIMEOUT:
		c->upstream_timeout_ms = (uint32_t)v;
		break;
	case OPT_TCP_IDLE_TIMEOUT:
		c->tcp_idle_ms = (uint32_t)v;
		break;
	case OPT_MAX_TCP_CONNECTIONS:
		c->max_tcp_conns = (unsigned)v;
		break;
	case OPT_MAX_INFLIGHT:
		c->max_inflight = (unsigned)v;
		break;
	case OPT_MAX_INFLIGHT_PER_CLIENT:
		c->max_inflight_per_client = (unsigned)v;
		break;
	default:
		break;
	}
}

static int add_server(struct sockaddr_storage *list, size_t *n, const char *flag, const char *v,
		      char *err, size_t errlen)
{
	if (*n >= CONFIG_MAX_SERVERS)
		return errorf(err, errlen, "%s: at most %d servers", flag, CONFIG_MAX_SERVERS);
	if (config_parse_addr(v, 53, &list[*n]) < 0)
		return errorf(err, errlen, "%s: '%s' is not an IP address with an optional port",
			      flag, v);
	(*n)++;
	return 0;
}

static int parse_endpoint(struct sockaddr_storage *out, bool *off, const char *flag,
			  const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "off") == 0) {
		*off = true;
		return 0;
	}
	*off = false;
	if (config_parse_addr(v, 0, out) < 0 ||
	    (out->ss_family == AF_INET ? ((struct sockaddr_in *)out)->sin_port
				       : ((struct sockaddr_in6 *)out)->sin6_port) == 0)
		return errorf(err, errlen, "%s: '%s' is not ADDR:PORT or off", flag, v);
	return 0;
}

static int parse_one(struct config *c, int opt, const char *v, bool *health_set, char *err,
		     size_t errlen)
{
	uint8_t wire[WIRE_MAX_NAME];
	unsigned long n;
	int r;

	for (size_t i = 0; i < sizeof num_flags / sizeof num_flags[0]; i++) {
		if (num_flags[i].opt != opt)
			continue;
		if (parse_uint(v, num_flags[i].min, num_flags[i].max, &n) < 0)
			return errorf(err, errlen, "%s: '%s' is not a number from %lu to %lu",
				      num_flags[i].name, v, num_flags[i].min, num_flags[i].max);
		store_num(c, opt, n);
		return 0;
	}
	switch (opt) {
	case OPT_LISTEN:
		if (c->nlisten >= CONFIG_MAX_LISTEN)
			return errorf(err, errlen, "--listen: at most %d addresses",
				      CONFIG_MAX_LISTEN);
		if (config_parse_addr(v, 53, &c->listen[c->nlisten]) < 0)
			return errorf(err, errlen,
				      "--listen: '%s' is not ADDR[:PORT] (IPv6 as [fd00::10]:53)", v);
		if (is_wildcard(&c->listen[c->nlisten]))
			return errorf(err, errlen,
				      "--listen: '%s' is a wildcard address; give the address clients "
				      "send to (replies must come from it)",
				      v);
		c->nlisten++;
		return 0;
	case OPT_INTERFACE:
		if (strlen(v) == 0 || strlen(v) >= IFNAMSIZ || strchr(v, '/') || strchr(v, ' '))
			return errorf(err, errlen, "--interface: '%s' is not a valid link name", v);
		snprintf(c->interface, sizeof c->interface, "%s", v);
		return 0;
	case OPT_INTERFACE_KIND:
		if (strlen(v) == 0 || strlen(v) >= sizeof c->interface_kind)
			return errorf(err, errlen, "--interface-kind: '%s' is not a link kind", v);
		snprintf(c->interface_kind, sizeof c->interface_kind, "%s", v);
		return 0;
	case OPT_NO_INTERFACE:
		c->no_interface = true;
		return 0;
	case OPT_SKIP_TEARDOWN:
		c->skip_teardown = true;
		return 0;
	case OPT_NO_IO_URING:
		c->io_uring = false;
		return 0;
	case OPT_CLUSTER_DOMAIN:
		r = wire_name_from_text(v, wire, sizeof wire);
		if (r <= 1)
			return errorf(err, errlen, "--cluster-domain: '%s' is not a domain name", v);
		wire_name_to_text(wire, (size_t)r, c->cluster_domain, sizeof c->cluster_domain);
		return 0;
	case OPT_CLUSTER_DNS:
		return add_server(c->cluster_dns, &c->ncluster_dns, "--cluster-dns", v, err, errlen);
	case OPT_UPSTREAM:
		return add_server(c->upstream, &c->nupstream, "--upstream", v, err, errlen);
	case OPT_RESOLV_CONF:
		if (strlen(v) == 0 || strlen(v) >= sizeof c->resolv_conf)
			return errorf(err, errlen, "--resolv-conf: '%s' is not a path", v);
		snprintf(c->resolv_conf, sizeof c->resolv_conf, "%s", v);
		return 0;
	case OPT_ZONE:
		if (c->nzones >= CONFIG_MAX_ZONES)
			return errorf(err, errlen, "--zone: at most %d zones", CONFIG_MAX_ZONES);
		r = wire_name_from_text(v, wire, sizeof wire);
		if (r <= 1)
			return errorf(err, errlen, "--zone: '%s' is not a domain name", v);
		c->zones[c->nzones++] = v;
		return 0;
	case OPT_NO_AUTO_ZONES:
		c->no_auto_zones = true;
		return 0;
	case OPT_USE_AUTO_ALLOCATED:
		c->use_auto_allocated = true;
		return 0;
	case OPT_SERVICEENTRIES:
		if (strcmp(v, "kubernetes") == 0) {
			c->source = CONFIG_SOURCE_KUBERNETES;
		} else if (strcmp(v, "none") == 0) {
			c->source = CONFIG_SOURCE_NONE;
		} else if (strlen(v) > 0) {
			c->source = CONFIG_SOURCE_FILE;
			c->source_path = v;
		} else {
			return errorf(err, errlen,
				      "--serviceentries: expected kubernetes, none or a file path");
		}
		return 0;
	case OPT_KUBE_API:
		if (strncmp(v, "https://", 8) != 0 || strlen(v) <= 8)
			return errorf(err, errlen, "--kube-api: '%s' is not an https:// URL", v);
		c->kube_api = v;
		return 0;
	case OPT_KUBE_TOKEN_FILE:
		if (!*v)
			return errorf(err, errlen, "--kube-token-file: empty path");
		c->kube_token_file = v;
		return 0;
	case OPT_KUBE_CA_FILE:
		if (!*v)
			return errorf(err, errlen, "--kube-ca-file: empty path");
		c->kube_ca_file = v;
		return 0;
	case OPT_CACHE_SIZE:
		if (config_parse_size(v, &c->cache_size) < 0 || c->cache_size < (64 << 10))
			return errorf(err, errlen,
				      "--cache-size: '%s' is not a size of at least 64k (suffixes "
				      "k, M, G)",
				      v);
		return 0;
	case OPT_HEALTH:
		*health_set = true;
		return parse_endpoint(&c->health, &c->health_off, "--health", v, err, errlen);
	case OPT_METRICS:
		return parse_endpoint(&c->metrics, &c->metrics_off, "--metrics", v, err, errlen);
	case OPT_LOG_LEVEL:
		r = log_level_parse(v);
		if (r < 0)
			return errorf(err, errlen,
				      "--log-level: '%s' is not error, warn, info or debug", v);
		c->log_level = r;
		return 0;
	default:
		return errorf(err, errlen, "internal error: unhandled flag");
	}
}

int config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	bool health_set = false;
	int opt, r;

	set_defaults(c);
	optind = 0; /* glibc: re-initialise getopt, so tests may parse several times */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_HELP:
			fputs(usage, stdout);
			return 1;
		case OPT_VERSION:
			printf("meshdns %s\n", MESHDNS_VERSION);
			return 1;
		case ':':
			return errorf(err, errlen, "%s: missing value", argv[optind - 1]);
		case '?':
			return errorf(err, errlen, "unknown flag '%s' (see --help)",
				      argv[optind - 1]);
		default:
			r = parse_one(c, opt, optarg, &health_set, err, errlen);
			if (r < 0)
				return r;
		}
	}
	if (optind < argc)
		return errorf(err, errlen, "unexpected argument '%s' (flags start with --)",
			      argv[optind]);

	if (c->nlisten == 0) {
		config_parse_addr("169.254.20.10", 53, &c->listen[0]);
		c->nlisten = 1;
	}
	if (c->ncluster_dns == 0) {
		const char *host = getenv("KUBE_DNS_SERVICE_HOST");
		const char *port = getenv("KUBE_DNS_SERVICE_PORT");
		if (host && *host) {
			char buf[128];
			if (strchr(host, ':'))
				snprintf(buf, sizeof buf, "[%s]:%s", host, port && *port ? port : "53");
			else
				snprintf(buf, sizeof buf, "%s:%s", host, port && *port ? port : "53");
			if (config_parse_addr(buf, 53, &c->cluster_dns[0]) < 0)
				return errorf(err, errlen,
					      "KUBE_DNS_SERVICE_HOST: '%s' is not an IP address; "
					      "give --cluster-dns",
					      host);
			c->ncluster_dns = 1;
		}
	}
	if (!health_set) {
		c->health = c->listen[0];
		if (c->health.ss_family == AF_INET)
			((struct sockaddr_in *)&c->health)->sin_port = htons(8054);
		else
			((struct sockaddr_in6 *)&c->health)->sin6_port = htons(8054);
	}
	if (c->metrics.ss_family == 0 && !c->metrics_off)
		config_parse_addr("0.0.0.0:9253", 0, &c->metrics);
	return 0;
}
