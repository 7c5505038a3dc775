/* Command-line flags (INTERFACE.md), parsed and checked before anything is touched.
 *
 * Pure: reads argv and the environment (KUBE_DNS_SERVICE_HOST), nothing else. Files named
 * by flags (resolv.conf, ServiceEntries, token) are read later by their owners.
 */
#ifndef MESHDNS_CONFIG_H
#define MESHDNS_CONFIG_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN  16
#define CONFIG_MAX_SERVERS 8
#define CONFIG_MAX_ZONES   64
#define CONFIG_MAX_THREADS 64

enum config_source {
	CONFIG_SOURCE_KUBERNETES = 0,
	CONFIG_SOURCE_FILE,
	CONFIG_SOURCE_NONE,
};

struct config {
	struct sockaddr_storage listen[CONFIG_MAX_LISTEN];
	size_t nlisten;
	char interface[IFNAMSIZ];
	char interface_kind[32];
	bool no_interface;
	bool skip_teardown;
	bool io_uring; /* read UDP listeners through io_uring where the kernel allows */

	char cluster_domain[256];          /* text, lowercase, with a trailing dot */
	struct sockaddr_storage cluster_dns[CONFIG_MAX_SERVERS];
	size_t ncluster_dns;
	struct sockaddr_storage upstream[CONFIG_MAX_SERVERS];
	size_t nupstream;                  /* 0: read --resolv-conf at start */
	char resolv_conf[PATH_MAX];

	const char *zones[CONFIG_MAX_ZONES]; /* point into argv */
	size_t nzones;
	bool no_auto_zones;
	bool use_auto_allocated;
	enum config_source source;
	const char *source_path;           /* for CONFIG_SOURCE_FILE; points into argv */
	const char *kube_api;              /* NULL: in-cluster */
	const char *kube_token_file;
	const char *kube_ca_file;

	uint32_t mesh_ttl;
	uint64_t cache_size;
	uint32_t max_ttl;
	uint32_t neg_ttl;
	uint32_t stale_window;             /* seconds an expired answer may still be served */
	unsigned threads;
	uint32_t sync_wait;                /* seconds to wait for the first sync before serving */
	uint32_t upstream_timeout_ms;
	uint32_t tcp_idle_ms;
	unsigned max_tcp_conns;            /* per worker thread */
	unsigned max_inflight;             /* upstream queries in flight, per worker thread */
	unsigned max_inflight_per_client;  /* per client address, per worker thread */

	struct sockaddr_storage health;
	bool health_off;
	struct sockaddr_storage metrics;
	bool metrics_off;
	int log_level;
};

/* Parses @argv into @c (defaults first). Returns 0 to run; 1 when --help or --version was
 * printed to stdout (exit 0); -EINVAL with one line naming the flag in @err (exit 2). */
int config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Parses "ADDR", "ADDR:PORT", "[V6]:PORT" or "V6" into @out with @default_port. Returns 0 or
 * -EINVAL. */
int config_parse_addr(const char *text, uint16_t default_port, struct sockaddr_storage *out);

/* Parses a byte count with an optional k, M or G suffix (powers of 1024). Returns 0 or
 * -EINVAL. */
int config_parse_size(const char *text, uint64_t *out);

/* Writes "ADDR:PORT" or "[V6]:PORT" into @out. Returns @out. */
const char *config_addr_text(const struct sockaddr_storage *a, char *out, size_t cap);

/* True when @a and @b are the same address and port. */
bool config_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
