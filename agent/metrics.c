/* Prometheus text exposition. See metrics.h. */
#include "agent/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/cache.h"
#include "agent/meshtab.h"

#define OUT_FIRST 16384 /* first allocation; a typical scrape fits */

/* ---- the buffer ------------------------------------------------------------------------ */

void metrics_out_init(struct metrics_out *o, size_t max)
{
	memset(o, 0, sizeof *o);
	o->max = max;
}

void metrics_out_deinit(struct metrics_out *o)
{
	free(o->buf);
	memset(o, 0, sizeof *o);
}

/* Makes room for @need more bytes and the NUL. Returns 0 or the sticky error. */
static int reserve(struct metrics_out *o, size_t need)
{
	size_t want, cap;
	char *b;

	if (o->err)
		return o->err;
	want = o->len + need + 1;
	if (want <= o->cap)
		return 0;
	if (want > o->max) {
		o->err = -E2BIG;
		return o->err;
	}
	cap = o->cap ? o->cap : OUT_FIRST;
	while (cap < want)
		cap *= 2;
	if (cap > o->max)
		cap = o->max;
	b = realloc(o->buf, cap);
	if (!b) {
		o->err = -ENOMEM;
		return o->err;
	}
	o->buf = b;
	o->cap = cap;
	return 0;
}

static void put(struct metrics_out *o, const char *s, size_t n)
{
	if (reserve(o, n) < 0)
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void put_str(struct metrics_out *o, const char *s)
{
	put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void put_fmt(struct metrics_out *o, const char *fmt,
							  ...)
{
	va_list ap;
	int n;

	if (reserve(o, 0) < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		o->err = -EINVAL;
		return;
	}
	if ((size_t)n >= o->cap - o->len) {
		if (reserve(o, (size_t)n) < 0)
			return;
		va_start(ap, fmt);
		vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	o->len += (size_t)n;
}

/* Text format escaping: backslash and newline everywhere, the double quote in label values. */
static void put_escaped(struct metrics_out *o, const char *s, bool label)
{
	const char *run = s;

	for (; *s; s++) {
		const char *esc = NULL;
		if (*s == '\\')
			esc = "\\\\";
		else if (*s == '\n')
			esc = "\\n";
		else if (*s == '"' && label)
			esc = "\\\"";
		if (!esc)
			continue;
		put(o, run, (size_t)(s - run));
		put_str(o, esc);
		run = s + 1;
	}
	put(o, run, (size_t)(s - run));
}

/* ---- families and samples ----------------------------------------------------------------- */

void metrics_family(struct metrics_out *o, const char *name, const char *type, const char *help)
{
	put_fmt(o, "# HELP %s ", name);
	put_escaped(o, help, false);
	put_fmt(o, "\n# TYPE %s %s\n", name, type);
}

/* Writes "name{labels,extra} " (no braces without labels). */
static void series(struct metrics_out *o, const char *name, const char *suffix,
		   const struct metrics_label *l, size_t nl, const struct metrics_label *extra)
{
	size_t n = nl + (extra ? 1 : 0);

	put_str(o, name);
	put_str(o, suffix);
	for (size_t i = 0; i < n; i++) {
		const struct metrics_label *x = i < nl ? &l[i] : extra;
		put_str(o, i ? "," : "{");
		put_str(o, x->name);
		put_str(o, "=\"");
		put_escaped(o, x->value ? x->value : "", true);
		put_str(o, "\"");
	}
	put_str(o, n ? "} " : " ");
}

void metrics_sample(struct metrics_out *o, const char *name, const struct metrics_label *labels,
		    size_t nlabels, uint64_t value)
{
	series(o, name, "", labels, nlabels, NULL);
	put_fmt(o, "%" PRIu64 "\n", value);
}

void metrics_sample_f(struct metrics_out *o, const char *name, const struct metrics_label *labels,
		      size_t nlabels, double value)
{
	series(o, name, "", labels, nlabels, NULL);
	if (isnan(value))
		put_str(o, "NaN\n");
	else if (isinf(value))
		put_str(o, value > 0 ? "+Inf\n" : "-Inf\n");
	else
		put_fmt(o, "%.15g\n", value);
}

/* A family with one sample. */
static void single(struct metrics_out *o, const char *name, const char *type, const char *help,
		   const struct metrics_label *l, size_t nl, uint64_t value)
{
	metrics_family(o, name, type, help);
	metrics_sample(o, name, l, nl, value);
}

/* A histogram from per-bucket counts (the last bucket is +Inf) and a sum in microseconds,
 * written exactly as seconds. */
static void histogram(struct metrics_out *o, const char *name, const struct metrics_label *l,
		      size_t nl, const uint64_t *buckets, uint64_t sum_us)
{
	uint64_t cum = 0;
	char le[24];

	for (unsigned i = 0; i < STATS_BUCKETS; i++) {
		struct metrics_label x = { "le", le };
		cum += buckets[i];
		if (i < STATS_BUCKETS - 1)
			snprintf(le, sizeof le, "%g", stats_bucket_bounds[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		series(o, name, "_bucket", l, nl, &x);
		put_fmt(o, "%" PRIu64 "\n", cum);
	}
	series(o, name, "_sum", l, nl, NULL);
	put_fmt(o, "%" PRIu64 ".%06" PRIu64 "\n", sum_us / 1000000u, sum_us % 1000000u);
	series(o, name, "_count", l, nl, NULL);
	put_fmt(o, "%" PRIu64 "\n", cum);
}

/* Copies @n relaxed counters into plain ones. */
static void load(uint64_t *dst, const _Atomic uint64_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = stats_get(&src[i]);
}

/* ---- label values ------------------------------------------------------------------------ */

static const char *const qtype_names[STATS_QTYPES] = {
	[STATS_QTYPE_A] = "A",	       [STATS_QTYPE_AAAA] = "AAAA",   [STATS_QTYPE_ANY] = "ANY",
	[STATS_QTYPE_CNAME] = "CNAME", [STATS_QTYPE_HTTPS] = "HTTPS", [STATS_QTYPE_MX] = "MX",
	[STATS_QTYPE_NS] = "NS",       [STATS_QTYPE_PTR] = "PTR",     [STATS_QTYPE_SOA] = "SOA",
	[STATS_QTYPE_SRV] = "SRV",     [STATS_QTYPE_SVCB] = "SVCB",   [STATS_QTYPE_TXT] = "TXT",
	[STATS_QTYPE_OTHER] = "other",
};

/* CoreDNS's names (miekg/dns RcodeToString, "RCODEn" for the unnamed); 16 can only come
 * with an OPT record, so it is BADVERS here (TSIG's BADSIG is not spoken). */
static const char *const rcode_names[STATS_RCODES] = {
	"NOERROR",  "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP",  "REFUSED",
	"YXDOMAIN", "YXRRSET", "NXRRSET",  "NOTAUTH",  "NOTZONE", "DSOTYPENI",
	"RCODE12",  "RCODE13", "RCODE14",  "RCODE15",  "BADVERS", "other",
};

static const char *const kind_names[2] = { "success", "denial" };

static const char *zone_name(const struct metrics_snapshot *s, unsigned z)
{
	static const char *const names[STATS_ZONES] = {
		[STATS_ZONE_ROOT] = ".",
		[STATS_ZONE_ARPA4] = "in-addr.arpa.",
		[STATS_ZONE_ARPA6] = "ip6.arpa.",
		/* every mesh zone together; no dot, like CoreDNS's "dropped", so it cannot be
		 * taken for a real zone */
		[STATS_ZONE_MESH] = "mesh",
	};
	return z == STATS_ZONE_CLUSTER ? s->cluster_zone : names[z];
}

/* ---- the server: coredns_dns_* -------------------------------------------------------------- */

static void render_dns(const struct metrics_snapshot *s, struct metrics_out *o)
{
	const struct stats *st = s->st;
	static const char *const proto[2] = { "udp", "tcp" };
	static const char *const family[2] = { "1", "2" };

	metrics_family(o, "coredns_dns_requests_total", "counter",
		       "Client queries, by zone, transport, address family and query type.");
	for (unsigned z = 0; z < STATS_ZONES; z++)
		for (unsigned p = 0; p < 2; p++)
			for (unsigned f = 0; f < 2; f++)
				for (unsigned t = 0; t < STATS_QTYPES; t++) {
					uint64_t v = stats_get(&st->requests[p][f][z][t]);
					struct metrics_label l[] = {
						{ "server", s->server },
						{ "zone", zone_name(s, z) },
						{ "proto", proto[p] },
						{ "family", family[f] },
						{ "type", qtype_names[t] },
					};
					if (v)
						metrics_sample(o, "coredns_dns_requests_total", l,
							       5, v);
				}

	metrics_family(o, "coredns_dns_responses_total", "counter",
		       "Responses sent to clients, by zone and rcode.");
	for (unsigned z = 0; z < STATS_ZONES; z++)
		for (unsigned r = 0; r < STATS_RCODES; r++) {
			uint64_t v = stats_get(&st->responses[z][r]);
			struct metrics_label l[] = {
				{ "server", s->server },
				{ "zone", zone_name(s, z) },
				{ "rcode", rcode_names[r] },
			};
			if (v)
				metrics_sample(o, "coredns_dns_responses_total", l, 3, v);
		}

	metrics_family(o, "coredns_dns_request_duration_seconds", "histogram",
		       "Time from reading a client query to sending its answer, by zone and "
		       "query type.");
	for (unsigned z = 0; z < STATS_ZONES; z++)
		for (unsigned t = 0; t < STATS_QTYPES; t++) {
			uint64_t b[STATS_BUCKETS], n = 0;
			struct metrics_label l[] = {
				{ "server", s->server },
				{ "zone", zone_name(s, z) },
				{ "type", qtype_names[t] },
			};
			load(b, st->duration[z][t], STATS_BUCKETS);
			for (unsigned i = 0; i < STATS_BUCKETS; i++)
				n += b[i];
			if (n)
				histogram(o, "coredns_dns_request_duration_seconds", l, 3, b,
					  stats_get(&st->duration_sum_us[z][t]));
		}
}

/* ---- the cache: coredns_cache_* ----------------------------------------------------------- */

static void render_cache(const struct metrics_snapshot *s, struct metrics_out *o)
{
	const struct stats *st = s->st;
	const struct cache_stats *c = s->cache;
	struct metrics_label srv = { "server", s->server };
	uint64_t hits = 0;

	metrics_family(o, "coredns_cache_entries", "gauge", "Answers in the cache, by kind.");
	for (unsigned k = 0; k < 2; k++) {
		struct metrics_label l[] = { srv, { "type", kind_names[k] } };
		metrics_sample(o, "coredns_cache_entries", l, 2, c->entries[k]);
	}
	metrics_family(o, "coredns_cache_hits_total", "counter",
		       "Client queries answered from the cache, by kind of answer.");
	for (unsigned k = 0; k < 2; k++) {
		struct metrics_label l[] = { srv, { "type", kind_names[k] } };
		metrics_sample(o, "coredns_cache_hits_total", l, 2, stats_get(&st->cache_hits[k]));
		hits += stats_get(&st->cache_hits[k]);
	}
	single(o, "coredns_cache_misses_total", "counter",
	       "Client queries the cache could not answer (sent upstream).", &srv, 1,
	       stats_get(&st->cache_misses));
	single(o, "coredns_cache_requests_total", "counter",
	       "Client queries looked up in the cache (hits and misses).", &srv, 1,
	       hits + stats_get(&st->cache_misses));
	metrics_family(o, "coredns_cache_evictions_total", "counter",
		       "Answers removed from the cache to make room, by kind.");
	for (unsigned k = 0; k < 2; k++) {
		struct metrics_label l[] = { srv, { "type", kind_names[k] } };
		metrics_sample(o, "coredns_cache_evictions_total", l, 2, c->evicted[k]);
	}
	single(o, "coredns_cache_served_stale_total", "counter",
	       "Expired answers served because every upstream failed (RFC 8767).", &srv, 1,
	       stats_get(&st->cache_stale));
	single(o, "coredns_cache_prefetch_total", "counter",
	       "Popular answers refreshed before they expired.", &srv, 1,
	       stats_get(&st->prefetches));

	single(o, "meshdns_cache_bytes", "gauge",
	       "Memory the cache accounts for (entries and table).", NULL, 0, c->bytes);
	single(o, "meshdns_cache_max_bytes", "gauge", "The cache bound (--cache-size).", NULL, 0,
	       s->cache_max_bytes);
	single(o, "meshdns_cache_expired_total", "counter",
	       "Answers removed by the sweep once past their stale window.", NULL, 0, c->expired);
}

/* ---- upstreams: coredns_forward_* --------------------------------------------------------- */

/* One `to` series: the counters of every (group, index) with that address. */
struct fwd_sum {
	const char *to;
	uint64_t requests;
	uint64_t timeouts;
	uint64_t responses[STATS_RCODES];
	uint64_t duration[STATS_BUCKETS];
	uint64_t sum_us;
};

static size_t fwd_collect(const struct metrics_snapshot *s,
			  struct fwd_sum u[STATS_GROUPS * STATS_MAX_SERVERS])
{
	const struct stats *st = s->st;
	size_t n = 0;

	for (unsigned g = 0; g < STATS_GROUPS; g++)
		for (unsigned i = 0; i < STATS_MAX_SERVERS && s->to[g][i]; i++) {
			size_t j = 0;
			uint64_t tmp[STATS_BUCKETS > STATS_RCODES ? STATS_BUCKETS : STATS_RCODES];
			while (j < n && strcmp(u[j].to, s->to[g][i]) != 0)
				j++;
			if (j == n) {
				memset(&u[n], 0, sizeof u[n]);
				u[n++].to = s->to[g][i];
			}
			u[j].requests += stats_get(&st->fwd_requests[g][i]);
			u[j].timeouts += stats_get(&st->fwd_timeouts[g][i]);
			u[j].sum_us += stats_get(&st->fwd_duration_sum_us[g][i]);
			load(tmp, st->fwd_responses[g][i], STATS_RCODES);
			for (unsigned r = 0; r < STATS_RCODES; r++)
				u[j].responses[r] += tmp[r];
			load(tmp, st->fwd_duration[g][i], STATS_BUCKETS);
			for (unsigned b = 0; b < STATS_BUCKETS; b++)
				u[j].duration[b] += tmp[b];
		}
	return n;
}

static void render_forward(const struct metrics_snapshot *s, struct metrics_out *o)
{
	struct fwd_sum u[STATS_GROUPS * STATS_MAX_SERVERS];
	size_t n = fwd_collect(s, u);

	metrics_family(o, "coredns_forward_requests_total", "counter",
		       "Queries sent to each upstream server (every try counts).");
	for (size_t j = 0; j < n; j++) {
		struct metrics_label l = { "to", u[j].to };
		metrics_sample(o, "coredns_forward_requests_total", &l, 1, u[j].requests);
	}
	metrics_family(o, "coredns_forward_responses_total", "counter",
		       "Replies from each upstream server, by rcode.");
	for (size_t j = 0; j < n; j++)
		for (unsigned r = 0; r < STATS_RCODES; r++) {
			struct metrics_label l[] = { { "to", u[j].to },
						     { "rcode", rcode_names[r] } };
			if (u[j].responses[r])
				metrics_sample(o, "coredns_forward_responses_total", l, 2,
					       u[j].responses[r]);
		}
	metrics_family(o, "coredns_forward_request_duration_seconds", "histogram",
		       "Time from sending a query to each upstream server to its reply.");
	for (size_t j = 0; j < n; j++) {
		struct metrics_label l = { "to", u[j].to };
		histogram(o, "coredns_forward_request_duration_seconds", &l, 1, u[j].duration,
			  u[j].sum_us);
	}
	metrics_family(o, "meshdns_forward_timeouts_total", "counter",
		       "Queries to each upstream server that got no reply in time.");
	for (size_t j = 0; j < n; j++) {
		struct metrics_label l = { "to", u[j].to };
		metrics_sample(o, "meshdns_forward_timeouts_total", &l, 1, u[j].timeouts);
	}
}

/* ---- the agent's own: meshdns_* ----------------------------------------------------------- */

/* A counter family with one sample per reason. */
static void by_reason(struct metrics_out *o, const char *name, const char *help, const char *label,
		      const char *const *reasons, const _Atomic uint64_t *v, size_t n)
{
	metrics_family(o, name, "counter", help);
	for (size_t i = 0; i < n; i++) {
		struct metrics_label l = { label, reasons[i] };
		metrics_sample(o, name, &l, 1, stats_get(&v[i]));
	}
}

static void render_agent(const struct metrics_snapshot *s, struct metrics_out *o)
{
	const struct stats *st = s->st;
	const struct meshview_info *m = s->mesh;
	static const char *const updrop[STATS_UPDROPS] = {
		[STATS_UPDROP_MALFORMED] = "malformed",	    [STATS_UPDROP_ID] = "wrong_id",
		[STATS_UPDROP_QUESTION] = "wrong_question", [STATS_UPDROP_OVERSIZE] = "oversize",
		[STATS_UPDROP_ERROR] = "error_rcode",	    [STATS_UPDROP_SOURCE] = "wrong_source",
	};
	static const char *const drop[STATS_DROPS] = {
		[STATS_DROP_SHORT] = "malformed",
		[STATS_DROP_OVERSIZE] = "oversize",
		[STATS_DROP_SEND] = "send_failed",
	};
	static const char *const overload[STATS_OVERLOADS] = {
		[STATS_OVERLOAD_INFLIGHT] = "inflight",
		[STATS_OVERLOAD_CLIENT] = "client",
		[STATS_OVERLOAD_TCP] = "tcp_connections",
		[STATS_OVERLOAD_WAITERS] = "waiters",
	};
	static const char *const local[] = {
		[MESH_HOST] = "host",		[MESH_WILDCARD] = "wildcard",
		[MESH_NODATA] = "nodata",	[MESH_NXDOMAIN] = "nxdomain",
		[MESH_NOT_READY] = "not_ready",
	};
	struct metrics_label ver = { "version", s->version };

	single(o, "meshdns_build_info", "gauge", "Always 1; the version is a label.", &ver, 1, 1);
	single(o, "meshdns_ready", "gauge",
	       "1 once every listener is bound, the interface is in place and the first "
	       "ServiceEntry sync is done (what /ready answers).",
	       NULL, 0, s->ready ? 1 : 0);

	single(o, "meshdns_mesh_hosts", "gauge",
	       "Mesh hosts answered locally (exact and wildcard).", NULL, 0,
	       (uint64_t)(m->hosts + m->wildcards));
	single(o, "meshdns_zones", "gauge",
	       "Mesh zones answered locally (given with --zone and learned).", NULL, 0,
	       (uint64_t)m->zones);
	single(o, "meshdns_mesh_generation", "gauge",
	       "Serial of the mesh table served (the SOA serial); bumps on every change.", NULL, 0,
	       m->generation);
	metrics_family(o, "meshdns_mesh_answers_total", "counter",
		       "Client queries answered from the mesh table, by result.");
	for (unsigned r = MESH_HOST; r <= MESH_NOT_READY; r++) {
		struct metrics_label l = { "result", local[r] };
		metrics_sample(o, "meshdns_mesh_answers_total", &l, 1, stats_get(&st->local[r]));
	}

	by_reason(o, "meshdns_upstream_dropped_total",
		  "Upstream replies not used, by reason (an error rcode tries the next server).",
		  "reason", updrop, st->upstream_dropped, STATS_UPDROPS);
	single(o, "meshdns_coalesced_total", "counter",
	       "Client queries that joined an identical query already sent upstream.", NULL, 0,
	       stats_get(&st->coalesced));
	single(o, "meshdns_truncated_retries_total", "counter",
	       "Truncated UDP replies from upstream asked again over TCP.", NULL, 0,
	       stats_get(&st->tcp_retries));
	single(o, "meshdns_truncated_for_mtu_total", "counter",
	       "UDP replies larger than the MTU towards the client, sent as TC=1 instead of "
	       "fragments.",
	       NULL, 0, stats_get(&st->mtu_truncated));
	by_reason(o, "meshdns_dropped_total", "Client queries dropped without a reply, by reason.",
		  "reason", drop, st->dropped, STATS_DROPS);
	by_reason(o, "meshdns_overload_total",
		  "Client queries refused because a limit was reached, by limit.", "limit",
		  overload, st->overload, STATS_OVERLOADS);
	single(o, "meshdns_tcp_connections", "gauge", "Open client TCP connections.", NULL, 0,
	       stats_get(&st->tcp_conns));
	single(o, "meshdns_upstream_inflight", "gauge", "Queries waiting for an upstream.", NULL, 0,
	       stats_get(&st->inflight));
	single(o, "meshdns_interface_repairs_total", "counter",
	       "Times the listen interface or one of its addresses was put back.", NULL, 0,
	       s->interface_repairs);
}

static void render_process(const struct metrics_process *p, struct metrics_out *o)
{
	if (!p->known)
		return;
	single(o, "process_resident_memory_bytes", "gauge", "Resident memory size.", NULL, 0,
	       p->rss_bytes);
	single(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size.", NULL, 0,
	       p->virtual_bytes);
	metrics_family(o, "process_cpu_seconds_total", "counter", "User and system CPU time.");
	metrics_sample_f(o, "process_cpu_seconds_total", NULL, 0, p->cpu_seconds);
	metrics_family(o, "process_start_time_seconds", "gauge",
		       "Start time of the process since the Unix epoch.");
	metrics_sample_f(o, "process_start_time_seconds", NULL, 0, p->start_time);
	single(o, "process_open_fds", "gauge", "Open file descriptors.", NULL, 0, p->open_fds);
	single(o, "process_max_fds", "gauge", "Limit of open file descriptors.", NULL, 0,
	       p->max_fds);
}

/* ---- families that providers own ---------------------------------------------------------- */

struct family_desc {
	const char *name;
	const char *type;
	const char *help;
};

/* INTERFACE.md names counted by the ServiceEntry store and sources. Listed without samples
 * until a provider claims them. */
static const struct family_desc provided[] = {
	{ "meshdns_serviceentries", "gauge", "ServiceEntries that count (not ignored)." },
	{ "meshdns_sync_last_success_timestamp_seconds", "gauge",
	  "Unix time of the last successful ServiceEntry list, watch event or file read." },
	{ "meshdns_watch_restarts_total", "counter",
	  "ServiceEntry watches started again (closed, failed or silent too long)." },
	{ "meshdns_relists_total", "counter", "Full ServiceEntry lists (or file reads) applied." },
	{ "meshdns_rejected_total", "counter",
	  "ServiceEntries, hosts or addresses rejected, by reason." },
};

static bool claimed(const char *name, const struct metrics_provider *p, size_t np)
{
	for (size_t i = 0; i < np; i++)
		for (const char *const *f = p[i].families; f && *f; f++)
			if (strcmp(*f, name) == 0)
				return true;
	return false;
}

int metrics_render(const struct metrics_snapshot *s, const struct metrics_provider *p, size_t np,
		   struct metrics_out *o)
{
	render_dns(s, o);
	render_cache(s, o);
	render_forward(s, o);
	render_agent(s, o);
	render_process(&s->proc, o);
	for (size_t i = 0; i < np; i++)
		p[i].fn(o, p[i].arg);
	for (size_t i = 0; i < sizeof provided / sizeof provided[0]; i++)
		if (!claimed(provided[i].name, p, np))
			metrics_family(o, provided[i].name, provided[i].type, provided[i].help);
	return o->err;
}
