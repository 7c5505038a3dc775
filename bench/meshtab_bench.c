/* Benchmark of the mesh table and the ServiceEntry store (not a test).
 *
 * Reports:
 *  - the time and memory to stage and publish N hosts straight into the table, and the
 *    table's own bytes per host;
 *  - the time and peak RSS to decode N ServiceEntries from list pages of 500 items (JSON, as
 *    the API server sends them) into the store and publish them, as a first sync does;
 *  - the cost of publishing one changed host in a table of N;
 *  - nanoseconds per meshview_answer for an exact host, a wildcard, an NXDOMAIN in a zone, and
 *    a name in no zone (the common non-mesh query).
 *
 * Usage: meshtab_bench [N [table|store]]   (default: 100000, both, each in its own process
 * image only when run twice; run the modes separately for clean RSS figures)
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <urcu/urcu-memb.h>

#include "agent/meshtab.h"
#include "agent/wire.h"
#include "k8s/sedecode.h"
#include "k8s/sestore.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size now, in KiB. */
static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;

	if (fp) {
		if (fscanf(fp, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(fp);
	}
	return res * 4;
}

static long peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Builds a query for @name/@type (no EDNS) in @buf and parses it into @q. */
static void make_query(struct wire_query *q, uint8_t *buf, const char *name, uint16_t type)
{
	int n = wire_name_from_text(name, buf + WIRE_HDR_LEN, WIRE_MAX_NAME);

	memset(buf, 0, WIRE_HDR_LEN);
	buf[0] = 0x12;
	buf[2] = WIRE_RD;
	buf[5] = 1;
	wire_put16(buf + WIRE_HDR_LEN + n, type);
	wire_put16(buf + WIRE_HDR_LEN + n + 2, WIRE_CLASS_IN);
	if (n < 0 || wire_parse_query(q, buf, (size_t)(WIRE_HDR_LEN + n + 4)) < 0) {
		fprintf(stderr, "bad query %s\n", name);
		exit(1);
	}
}

static void bench_answer(struct meshtab *t, const char *label, const char *name,
			 enum mesh_result want)
{
	static uint8_t qbuf[512], out[4096];
	struct wire_query q;
	enum mesh_result res = MESH_NOT_LOCAL;
	const int rounds = 200000, batches = 15;
	volatile int sink = 0;
	double t0, dt, best = 1e9;

	make_query(&q, qbuf, name, WIRE_TYPE_A);
	/* the best of several batches: the machines are shared and noisy */
	for (int b = 0; b < batches; b++) {
		urcu_memb_read_lock();
		t0 = now_s();
		for (int i = 0; i < rounds; i++) {
			/* each query re-reads the view, as a worker does per packet */
			sink += meshview_answer(meshtab_view(t), &q, true, out, sizeof(out), &res);
		}
		dt = now_s() - t0;
		urcu_memb_read_unlock();
		if (dt < best)
			best = dt;
	}
	if (res != want)
		fprintf(stderr, "%s: unexpected result %d\n", name, res);
	printf("  %-28s %6.1f ns/answer (%d bytes)\n", label, best * 1e9 / rounds,
	       sink / rounds / batches);
}

static void bench_table(unsigned n)
{
	struct meshtab_opts o = { .auto_zones = true, .ttl = 30, .neg_ttl = 5 };
	struct meshtab *t;
	struct meshtab_stats s;
	struct in_addr a;
	char name[96];
	long rss0 = rss_kib();
	double t0 = now_s(), dt;

	t = meshtab_new(&o);
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "svc-%u.ns-%u.cluster-%u", i, i % 1000, i % 7);
		a.s_addr = htonl(0xf0000000u + i);
		if (meshtab_host_set(t, name, &a, 1, NULL, 0, true) < 0)
			exit(1);
	}
	meshtab_host_set(t, "*.wild.cluster-1", &a, 1, NULL, 0, true);
	meshtab_set_synced(t);
	meshtab_publish(t);
	dt = now_s() - t0;
	meshtab_get_stats(t, &s);
	printf("table: %u hosts staged and published in %.3f s\n", n, dt);
	printf("  records %zu (hosts, empty non-terminals, zones), record bytes %zu\n", s.records,
	       s.record_bytes);
	printf("  table memory %zu bytes = %.1f bytes/host; RSS growth %ld KiB = %.1f bytes/host\n",
	       s.memory, (double)s.memory / n, rss_kib() - rss0,
	       (double)(rss_kib() - rss0) * 1024 / n);

	t0 = now_s();
	a.s_addr = htonl(0xf1000000u);
	meshtab_host_set(t, "svc-4242.ns-242.cluster-0", &a, 1, NULL, 0, true);
	meshtab_publish(t);
	dt = now_s() - t0;
	meshtab_get_stats(t, &s);
	printf("  one change published in %.1f us: %zu bucket, %zu page, %zu dir copied (%zu "
	       "bytes)\n",
	       dt * 1e6, s.buckets_copied, s.pages_copied, s.dirs_copied, s.bytes_copied);

	bench_answer(t, "exact host (A)", "svc-77.ns-77.cluster-0.", MESH_HOST);
	bench_answer(t, "exact host, mixed case", "SVC-77.Ns-77.Cluster-0.", MESH_HOST);
	bench_answer(t, "wildcard (A)", "a.b.wild.cluster-1.", MESH_WILDCARD);
	bench_answer(t, "NXDOMAIN in zone", "nope.ns-1.cluster-3.", MESH_NXDOMAIN);
	bench_answer(t, "name in no zone", "www.example.com.", MESH_NOT_LOCAL);
	bench_answer(t, "cluster domain name", "kubernetes.default.svc.cluster.local.",
		     MESH_NOT_LOCAL);
	meshtab_free(t);
}

static int on_item(void *arg, const struct se_obj *o)
{
	return sestore_upsert(arg, o);
}

/* Decodes @n ServiceEntries from pages of 500, as a first list does, into a store. */
static void bench_store(unsigned n)
{
	struct meshtab_opts o = { .auto_zones = true, .ttl = 30, .neg_ttl = 5 };
	struct sestore_opts so = { .auto_zones = true };
	struct meshtab *t = meshtab_new(&o);
	struct sestore *s = sestore_new(&so, t);
	struct se_obj *obj = malloc(sizeof(*obj));
	size_t cap = 600 * 1024, len;
	char *page = malloc(cap);
	struct se_list_meta meta;
	struct sestore_stats st;
	double t0, gen = 0, dt; /* gen: time spent writing the JSON pages, not counted */

	t0 = now_s();
	sestore_replace_begin(s);
	for (unsigned base = 0; base < n; base += 500) {
		double d0 = now_s();
		len = (size_t)snprintf(page, cap,
				       "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":"
				       "\"ServiceEntryList\",\"metadata\":{\"resourceVersion\":"
				       "\"1843390\",\"continue\":\"x\"},\"items\":[");
		for (unsigned i = base; i < base + 500 && i < n; i++)
			len += (size_t)snprintf(
				page + len, cap - len,
				"%s{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":"
				"\"ServiceEntry\",\"metadata\":{\"name\":\"svc-%u.ns-%u.cluster-%"
				"u\","
				"\"namespace\":\"istio-system\",\"uid\":\"7c1c2f4e-4d7b-4c55-9f0e-"
				"%012u\",\"resourceVersion\":\"%u\",\"generation\":1,"
				"\"creationTimestamp\":\"2020-06-02T14:07:35Z\"},\"spec\":{"
				"\"hosts\":"
				"[\"svc-%u.ns-%u.cluster-%u\"],\"addresses\":[\"240.%u.%u.%u\"],"
				"\"location\":\"MESH_INTERNAL\",\"resolution\":\"DNS\",\"ports\":[{"
				"\"number\":9080,\"protocol\":\"TCP\",\"name\":\"http\"}],"
				"\"endpoints\":[{\"address\":\"34.83.120.17\",\"ports\":{\"http\":"
				"15443}}]}}",
				i == base ? "" : ",", i, i % 1000, i % 7, i, 1843390 + i, i,
				i % 1000, i % 7, i >> 16, (i >> 8) & 255, i & 255);
		len += (size_t)snprintf(page + len, cap - len, "]}");
		gen += now_s() - d0;
		if (sedecode_list(page, len, obj, on_item, s, &meta) < 0) {
			fprintf(stderr, "decode failed\n");
			exit(1);
		}
	}
	sestore_replace_commit(s);
	dt = now_s() - t0 - gen;
	sestore_get_stats(s, &st);
	printf("store: %u ServiceEntries decoded from pages of 500, stored and published in "
	       "%.3f s\n",
	       n, dt);
	printf("  entries %zu, mesh hosts %zu; peak RSS of the process %ld KiB\n", st.entries,
	       st.hosts, peak_rss_kib());
	free(page);
	free(obj);
	sestore_free(s);
	meshtab_free(t);
}

int main(int argc, char **argv)
{
	static const uint8_t key[16] = { 7, 7, 7 };
	unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
	const char *mode = argc > 2 ? argv[2] : "all";

	if (n == 0)
		n = 100000;
	wire_set_hash_key(key);
	urcu_memb_register_thread();
	printf("start RSS %ld KiB\n", rss_kib());
	if (strcmp(mode, "store") != 0)
		bench_table(n);
	if (strcmp(mode, "table") != 0)
		bench_store(n);
	urcu_memb_unregister_thread();
	return 0;
}
