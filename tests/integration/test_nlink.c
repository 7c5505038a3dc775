/* Integration test of netlink/: nlink_start, the repairs and nlink_stop against the real
 * kernel.
 *
 * Each test runs in a child process of its own, in a network namespace of its own
 * (unshare(CLONE_NEWNET)), with lo up. Whatever a test creates lives in that namespace and
 * goes with it when the child exits, even when the test fails or hangs (the parent kills a
 * child that outlives its deadline). If the namespace cannot be made, the child stops before
 * it touches anything. The state of the link is read with `ip -j -d addr show`, a reader
 * independent of the code under test, and changed with `ip` as an operator would.
 *
 * Needs root; exits 77 (skipped) otherwise. Usage: test_nlink [substring of a test name].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent/log.h"
#include "netlink/nlink.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define IFNAME		 "meshdns"
#define V4		 "169.254.20.10"
#define V6		 "fd00::10"
#define REPAIR_LIMIT_MS	 1000 /* what nlink.h promises users */
#define WAIT_MS		 3000 /* how long to look; below the 5 s periodic check */
#define CHILD_DEADLINE_S 60
#define SKIP_CODE	 77

/* ---- running commands ------------------------------------------------------------------ */

/* Runs @argv (NULL-terminated); stdout goes to @out (NUL-terminated, may be NULL) and
 * stderr to /dev/null. Returns the exit status, or -1. */
static int run_argv(char *const argv[], char *out, size_t outlen)
{
	int pipefd[2] = { -1, -1 };
	size_t used = 0;
	int status;
	pid_t pid;

	if (out && pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (out) {
			dup2(pipefd[1], 1);
			close(pipefd[0]);
			close(pipefd[1]);
		} else {
			dup2(null, 1);
		}
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (out) {
		ssize_t r;

		close(pipefd[1]);
		while (used + 1 < outlen &&
		       (r = read(pipefd[0], out + used, outlen - 1 - used)) > 0)
			used += (size_t)r;
		out[used] = '\0';
		close(pipefd[0]);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define RUN(...) run_argv((char *const[]){ __VA_ARGS__, NULL }, NULL, 0)

/* ---- reading the link's state with ip -j ------------------------------------------------ */

struct link_state {
	bool exists;
	int ifindex;
	bool up;
	char kind[32];
	bool v4;       /* 169.254.20.10/32 scope host */
	bool v6;       /* fd00::10/128 nodad */
	bool v4_other; /* 169.254.20.11/32 */
	int naddrs;
};

static void read_link(const char *ifname, struct link_state *st)
{
	static char buf[1 << 16];
	cJSON *root, *link, *item;

	memset(st, 0, sizeof *st);
	if (run_argv((char *const[]){ "ip", "-j", "-d", "addr", "show", "dev", (char *)ifname,
				      NULL },
		     buf, sizeof buf) != 0)
		return;
	root = cJSON_Parse(buf);
	assert_non_null(root);
	link = cJSON_GetArrayItem(root, 0);
	assert_non_null(link);
	st->exists = true;
	st->ifindex = cJSON_GetObjectItem(link, "ifindex")->valueint;
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(link, "flags"))
	{
		if (cJSON_IsString(item) && strcmp(item->valuestring, "UP") == 0)
			st->up = true;
	}
	item = cJSON_GetObjectItem(cJSON_GetObjectItem(link, "linkinfo"), "info_kind");
	if (cJSON_IsString(item))
		snprintf(st->kind, sizeof st->kind, "%s", item->valuestring);
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(link, "addr_info"))
	{
		const char *local = cJSON_GetStringValue(cJSON_GetObjectItem(item, "local"));
		const char *scope = cJSON_GetStringValue(cJSON_GetObjectItem(item, "scope"));
		int plen = cJSON_GetObjectItem(item, "prefixlen")->valueint;

		st->naddrs++;
		if (!local)
			continue;
		if (strcmp(local, V4) == 0 && plen == 32 && scope && strcmp(scope, "host") == 0)
			st->v4 = true;
		if (strcmp(local, V6) == 0 && plen == 128 &&
		    cJSON_IsTrue(cJSON_GetObjectItem(item, "nodad")))
			st->v6 = true;
		if (strcmp(local, "169.254.20.11") == 0 && plen == 32)
			st->v4_other = true;
	}
	cJSON_Delete(root);
}

/* Whether IFNAME is a bridge, up, with 169.254.20.10 and, unless @v4_only is non-NULL,
 * fd00::10. */
static bool link_complete(void *v4_only)
{
	struct link_state st;

	read_link(IFNAME, &st);
	return st.exists && st.up && st.v4 && (v4_only || st.v6) && strcmp(st.kind, "bridge") == 0;
}

/* ---- driving the module ----------------------------------------------------------------- */

struct harness {
	uv_loop_t loop;
	struct sockaddr_storage addrs[4];
	struct nlink_opts opts;
};

/* Adds listen address @ip (port 53) to the options. */
static void harness_add(struct harness *h, const char *ip)
{
	struct sockaddr_storage *ss = &h->addrs[h->opts.naddrs++];

	assert_true(h->opts.naddrs <= sizeof h->addrs / sizeof h->addrs[0]);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(53);
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	}
}

/* A loop and options for @ifname of @kind holding 169.254.20.10 (and no address more). */
static void harness_init4(struct harness *h, const char *ifname, const char *kind)
{
	memset(h, 0, sizeof *h);
	assert_int_equal(uv_loop_init(&h->loop), 0);
	h->opts.ifname = ifname;
	h->opts.kind = kind;
	h->opts.addrs = h->addrs;
	harness_add(h, V4);
}

/* A loop and options for @ifname of @kind holding 169.254.20.10 and fd00::10. */
static void harness_init(struct harness *h, const char *ifname, const char *kind)
{
	harness_init4(h, ifname, kind);
	harness_add(h, V6);
}

/* Starts the module on IFNAME of kind bridge with 169.254.20.10 and fd00::10. */
static struct nlink *start_bridge(struct harness *h)
{
	struct nlink *n = NULL;

	harness_init(h, IFNAME, "bridge");
	assert_int_equal(nlink_start(&n, &h->loop, &h->opts), 0);
	assert_non_null(n);
	return n;
}

/* Stops @n and runs the loop until every handle is closed; the loop must then close clean. */
static void harness_stop(struct harness *h, struct nlink *n, bool teardown)
{
	if (n)
		nlink_stop(n, teardown);
	assert_int_equal(uv_run(&h->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&h->loop), 0);
}

struct waiter {
	uv_timer_t timer;
	bool (*pred)(void *);
	void *arg;
	uint64_t deadline;
	bool met;
};

static void on_wait_tick(uv_timer_t *t)
{
	struct waiter *w = t->data;

	if (w->pred(w->arg)) {
		w->met = true;
		uv_stop(t->loop);
	} else if (uv_now(t->loop) >= w->deadline) {
		uv_stop(t->loop);
	}
}

/* Runs the loop until @pred holds (checked every 10 ms) or @timeout_ms passed. Returns
 * whether it held and sets *@elapsed_ms. */
static bool wait_for(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t timeout_ms,
		     uint64_t *elapsed_ms)
{
	struct waiter w = { .pred = pred, .arg = arg };
	uint64_t t0 = uv_hrtime();

	uv_update_time(loop);
	w.deadline = uv_now(loop) + timeout_ms;
	uv_timer_init(loop, &w.timer);
	w.timer.data = &w;
	uv_timer_start(&w.timer, on_wait_tick, 0, 10);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&w.timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT); /* the close callback, before w goes away */
	*elapsed_ms = (uv_hrtime() - t0) / 1000000;
	return w.met;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

/* Runs the loop for @ms, so that whatever the module would still do gets done. */
static void settle(uv_loop_t *loop, uint64_t ms)
{
	uint64_t elapsed;

	wait_for(loop, never, NULL, ms, &elapsed);
}

/* ---- capturing the module's log lines --------------------------------------------------- */

struct capture {
	int fd;
	int saved;
	char text[8192];
};

static void capture_begin(struct capture *c)
{
	fflush(stderr);
	c->fd = memfd_create("stderr", 0);
	assert_true(c->fd >= 0);
	c->saved = dup(2);
	assert_true(dup2(c->fd, 2) == 2);
}

/* Restores stderr, copies what was written to c->text and echoes it for the test log. */
static void capture_end(struct capture *c)
{
	ssize_t r;

	fflush(stderr);
	dup2(c->saved, 2);
	close(c->saved);
	r = pread(c->fd, c->text, sizeof c->text - 1, 0);
	c->text[r > 0 ? r : 0] = '\0';
	close(c->fd);
	fprintf(stderr, "%s", c->text);
}

static int count_lines_with(const char *text, const char *needle)
{
	int count = 0;

	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		if (memmem(line, len, needle, strlen(needle)))
			count++;
		line = end ? end + 1 : NULL;
	}
	return count;
}

/* No IPv6 on links created from now on in this (the test's own) namespace. */
static void disable_ipv6_on_new_links(void)
{
	FILE *f = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");

	assert_non_null(f);
	assert_true(fputs("1\n", f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* ---- tests -------------------------------------------------------------------------------- */

static bool can_bind_udp(int family, const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int fd, rc;

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(53);
		inet_pton(AF_INET, ip, &sin->sin_addr);
		len = sizeof *sin;
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(53);
		inet_pton(AF_INET6, ip, &sin6->sin6_addr);
		len = sizeof *sin6;
	}
	fd = socket(family, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	rc = bind(fd, (struct sockaddr *)&ss, len);
	if (rc < 0)
		fprintf(stderr, "bind %s: %s\n", ip, strerror(errno));
	close(fd);
	return rc == 0;
}

static void test_start_creates_up_link_with_both_addresses_bindable_at_once(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n = NULL;

	(void)state;
	harness_init(&h, IFNAME, "bridge");
	read_link(IFNAME, &st);
	assert_false(st.exists);

	assert_int_equal(nlink_start(&n, &h.loop, &h.opts), 0);
	assert_non_null(n);
	/* Right after the call returns, before the loop ever runs: no DAD wait. */
	assert_true(can_bind_udp(AF_INET, V4));
	assert_true(can_bind_udp(AF_INET6, V6));
	read_link(IFNAME, &st);
	assert_true(st.exists);
	assert_string_equal(st.kind, "bridge");
	assert_true(st.up);
	assert_true(st.v4);
	assert_true(st.v6);
	assert_int_equal(nlink_repairs(n), 0);
	harness_stop(&h, n, true);
}

/* Counts link and address notifications arriving on a socket of our own. */
static int on_count(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(*(int *)arg)++;
	return NL_OK;
}

static void test_second_start_on_existing_state_succeeds_and_changes_nothing(void **state)
{
	struct link_state before, after;
	struct harness h;
	struct nlink *a, *b = NULL;
	struct nl_sock *mon;
	int events = 0;

	(void)state;
	a = start_bridge(&h);
	read_link(IFNAME, &before);

	mon = nl_socket_alloc();
	assert_non_null(mon);
	nl_socket_disable_seq_check(mon);
	nl_socket_modify_cb(mon, NL_CB_VALID, NL_CB_CUSTOM, on_count, &events);
	assert_int_equal(nl_connect(mon, NETLINK_ROUTE), 0);
	assert_int_equal(nl_socket_add_memberships(mon, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
						   RTNLGRP_IPV6_IFADDR, 0),
			 0);
	assert_int_equal(nl_socket_set_nonblocking(mon), 0);

	assert_int_equal(nlink_start(&b, &h.loop, &h.opts), 0);

	for (int i = 0; i < 100 && nl_recvmsgs_default(mon) != -NLE_AGAIN; i++)
		;
	nl_socket_free(mon);
	assert_int_equal(events, 0);
	read_link(IFNAME, &after);
	assert_int_equal(after.ifindex, before.ifindex);
	assert_int_equal(after.naddrs, before.naddrs);
	assert_true(after.up && after.v4 && after.v6);
	nlink_stop(b, false);
	harness_stop(&h, a, true);
}

/* Runs @argv as an operator would, then measures how long until the link is complete
 * again. With @v4_only the link holds no IPv6 address, whose deletion would also tell. */
static void break_and_expect_repair(char *const argv[], bool v4_only)
{
	void *want = v4_only ? "v4 only" : NULL;
	struct harness h;
	struct nlink *n = NULL;
	uint64_t ms;
	bool ok;

	if (v4_only) {
		/* Not even the link-local address, whose removal on down would tell too. */
		disable_ipv6_on_new_links();
		harness_init4(&h, IFNAME, "bridge");
	} else
		harness_init(&h, IFNAME, "bridge");
	assert_int_equal(nlink_start(&n, &h.loop, &h.opts), 0);
	settle(&h.loop, 100); /* let the events of our own set-up pass */
	assert_int_equal(nlink_repairs(n), 0);

	assert_int_equal(run_argv(argv, NULL, 0), 0);
	assert_false(link_complete(want));
	ok = wait_for(&h.loop, link_complete, want, WAIT_MS, &ms);
	fprintf(stderr, "repaired after `%s %s %s %s`: %s in %llu ms\n", argv[0], argv[1], argv[2],
		argv[3], ok ? "yes" : "NO", (unsigned long long)ms);
	assert_true(ok);
	assert_true(ms < REPAIR_LIMIT_MS);
	settle(&h.loop, 200); /* no second repair for the same damage */
	assert_int_equal(nlink_repairs(n), 1);
	harness_stop(&h, n, true);
}

static void test_deleted_ipv4_address_is_back_within_1s_and_counted(void **state)
{
	(void)state;
	break_and_expect_repair(
		(char *const[]){ "ip", "addr", "del", V4 "/32", "dev", IFNAME, NULL }, false);
}

static void test_deleted_ipv6_address_is_back_within_1s_and_counted(void **state)
{
	(void)state;
	break_and_expect_repair(
		(char *const[]){ "ip", "-6", "addr", "del", V6 "/128", "dev", IFNAME, NULL },
		false);
}

static void test_deleted_link_is_back_with_addresses_within_1s_as_one_repair(void **state)
{
	(void)state;
	break_and_expect_repair((char *const[]){ "ip", "link", "del", IFNAME, NULL }, false);
}

static void test_link_set_down_is_up_again_within_1s(void **state)
{
	(void)state;
	/* IPv4 only: down keeps IPv4 addresses, so only the link's own event tells. */
	break_and_expect_repair((char *const[]){ "ip", "link", "set", IFNAME, "down", NULL }, true);
}

static void test_link_set_down_gets_its_flushed_ipv6_address_back_within_1s(void **state)
{
	(void)state;
	break_and_expect_repair((char *const[]){ "ip", "link", "set", IFNAME, "down", NULL },
				false);
}

static void test_lost_events_trigger_a_full_check_within_1s(void **state)
{
	char batch[64];
	struct capture cap;
	struct harness h;
	struct nlink *n;
	FILE *f;
	uint64_t ms;
	bool ok;

	(void)state;
	n = start_bridge(&h);
	settle(&h.loop, 100);

	/* While the loop does not run, overflow the module's event socket with address events
	 * on lo, then delete our address: that event is dropped, only ENOBUFS tells. */
	snprintf(batch, sizeof batch, "/tmp/meshdns-test-nlink-%d.batch", (int)getpid());
	f = fopen(batch, "w");
	assert_non_null(f);
	for (int i = 0; i < 8000; i++)
		fprintf(f, "addr add 10.77.%d.%d/32 dev lo\n", i / 250, i % 250 + 1);
	fclose(f);
	assert_int_equal(RUN("ip", "-batch", (char *)batch), 0);
	unlink(batch);
	assert_int_equal(RUN("ip", "addr", "del", V4 "/32", "dev", IFNAME), 0);

	capture_begin(&cap);
	ok = wait_for(&h.loop, link_complete, NULL, WAIT_MS, &ms);
	capture_end(&cap);
	fprintf(stderr, "repaired after lost events: %s in %llu ms\n", ok ? "yes" : "NO",
		(unsigned long long)ms);
	/* Without this line the flood did not overflow and the test proves nothing. */
	assert_int_equal(count_lines_with(cap.text, "netlink events were lost"), 1);
	assert_true(ok);
	assert_true(ms < REPAIR_LIMIT_MS);
	assert_int_equal(nlink_repairs(n), 1);

	/* And events are still watched after the overflow. */
	assert_int_equal(RUN("ip", "addr", "del", V4 "/32", "dev", IFNAME), 0);
	ok = wait_for(&h.loop, link_complete, NULL, WAIT_MS, &ms);
	fprintf(stderr, "repaired after the next deletion: %s in %llu ms\n", ok ? "yes" : "NO",
		(unsigned long long)ms);
	assert_true(ok);
	assert_true(ms < REPAIR_LIMIT_MS);
	assert_int_equal(nlink_repairs(n), 2);
	harness_stop(&h, n, true);
}

static void test_stop_with_teardown_removes_the_link_it_created(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n;

	(void)state;
	n = start_bridge(&h);
	harness_stop(&h, n, true);
	read_link(IFNAME, &st);
	assert_false(st.exists);
}

static void test_stop_without_teardown_leaves_link_and_addresses(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n;

	(void)state;
	n = start_bridge(&h);
	harness_stop(&h, n, false);
	read_link(IFNAME, &st);
	assert_true(st.exists && st.up && st.v4 && st.v6);
}

static void test_teardown_deletes_a_leftover_link_of_the_configured_kind(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n;

	(void)state;
	/* As a run killed with SIGKILL leaves it. */
	assert_int_equal(RUN("ip", "link", "add", IFNAME, "type", "bridge"), 0);
	assert_int_equal(RUN("ip", "addr", "add", V4 "/32", "dev", IFNAME, "scope", "host"), 0);
	n = start_bridge(&h);
	assert_true(link_complete(NULL));
	harness_stop(&h, n, true);
	read_link(IFNAME, &st);
	assert_false(st.exists);
}

static void test_teardown_keeps_a_link_of_the_kind_that_holds_someone_elses_address(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n;

	(void)state;
	/* As if --interface named a bridge that another program uses (docker0, say). */
	assert_int_equal(RUN("ip", "link", "add", IFNAME, "type", "bridge"), 0);
	assert_int_equal(RUN("ip", "addr", "add", "10.99.0.1/24", "dev", IFNAME), 0);
	n = start_bridge(&h);
	assert_true(link_complete(NULL));
	harness_stop(&h, n, true);
	read_link(IFNAME, &st);
	assert_true(st.exists);
	assert_false(st.v4); /* ours is gone */
	assert_int_equal(RUN("sh", "-c", "ip -4 addr show dev " IFNAME " | grep -q 10.99.0.1"), 0);
}

static void test_teardown_keeps_a_link_of_another_kind_and_addresses_it_did_not_add(void **state)
{
	struct link_state st;
	struct harness h;
	struct nlink *n = NULL;

	(void)state;
	/* --interface lo: the agent adds .10; .11 was there before and is not the agent's. */
	assert_int_equal(RUN("ip", "addr", "add", "169.254.20.11/32", "dev", "lo"), 0);
	harness_init(&h, "lo", "bridge");
	harness_add(&h, "169.254.20.11");
	assert_int_equal(nlink_start(&n, &h.loop, &h.opts), 0);
	read_link("lo", &st);
	assert_true(st.v4 && st.v6 && st.v4_other);
	harness_stop(&h, n, true);
	read_link("lo", &st);
	assert_true(st.exists);
	assert_true(st.up);
	assert_false(st.v4);
	assert_false(st.v6);
	assert_true(st.v4_other);
}

static void test_failed_start_removes_the_link_it_created(void **state)
{
	struct capture cap;
	struct link_state st;
	struct harness h;
	struct nlink *n = NULL;
	int rc;

	(void)state;
	/* The link can be made but refuses the IPv6 address (EACCES). */
	disable_ipv6_on_new_links();
	harness_init(&h, IFNAME, "bridge");
	capture_begin(&cap);
	rc = nlink_start(&n, &h.loop, &h.opts);
	capture_end(&cap);
	assert_int_equal(rc, -EACCES);
	assert_null(n);
	assert_int_equal(count_lines_with(cap.text, "error [nlink] adding fd00::10"), 1);
	read_link(IFNAME, &st);
	assert_false(st.exists);
	harness_stop(&h, NULL, false);
}

/* Starts with @kind and expects -EOPNOTSUPP with one error line naming --interface-kind. */
static void expect_unsupported_kind(const char *kind)
{
	struct capture cap;
	struct link_state st;
	struct harness h;
	struct nlink *n = NULL;
	int rc;

	harness_init(&h, IFNAME, kind);
	capture_begin(&cap);
	rc = nlink_start(&n, &h.loop, &h.opts);
	capture_end(&cap);
	assert_int_equal(rc, -EOPNOTSUPP);
	assert_null(n);
	assert_int_equal(count_lines_with(cap.text, "error [nlink]"), 1);
	assert_int_equal(count_lines_with(cap.text, "--interface-kind"), 1);
	read_link(IFNAME, &st);
	assert_false(st.exists);
	harness_stop(&h, NULL, false);
}

static void test_kind_dummy_without_kernel_support_fails_naming_interface_kind(void **state)
{
	(void)state;
	if (RUN("ip", "link", "add", "probe0", "type", "dummy") == 0) {
		RUN("ip", "link", "del", "probe0");
		skip(); /* this kernel has dummy: nothing to show here */
	}
	expect_unsupported_kind("dummy");
}

static void test_kind_unknown_to_any_kernel_fails_naming_interface_kind(void **state)
{
	(void)state;
	expect_unsupported_kind("meshdns-nokind");
}

/* Drops CAP_NET_ADMIN from this process for good: bounding set, then effective, permitted
 * and inheritable (what `setpriv --bounding-set=-net_admin` with cleared caps does). */
static void drop_net_admin(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned idx = CAP_TO_INDEX(CAP_NET_ADMIN);
	uint32_t mask = CAP_TO_MASK(CAP_NET_ADMIN);

	assert_int_equal(prctl(PR_CAPBSET_DROP, CAP_NET_ADMIN, 0, 0, 0), 0);
	assert_int_equal(syscall(SYS_capget, &hdr, data), 0);
	data[idx].effective &= ~mask;
	data[idx].permitted &= ~mask;
	data[idx].inheritable &= ~mask;
	assert_int_equal(syscall(SYS_capset, &hdr, data), 0);
	/* The check itself: the kernel now refuses. */
	assert_int_not_equal(RUN("ip", "link", "add", "probe0", "type", "bridge"), 0);
}

/* Starts without CAP_NET_ADMIN; expects -EPERM with one error line naming --no-interface. */
static void expect_eperm(bool link_exists)
{
	struct capture cap;
	struct link_state st;
	struct harness h;
	struct nlink *n = NULL;
	int rc;

	harness_init(&h, IFNAME, "bridge");
	drop_net_admin();
	capture_begin(&cap);
	rc = nlink_start(&n, &h.loop, &h.opts);
	capture_end(&cap);
	assert_int_equal(rc, -EPERM);
	assert_null(n);
	assert_int_equal(count_lines_with(cap.text, "error [nlink]"), 1);
	assert_int_equal(count_lines_with(cap.text, "CAP_NET_ADMIN"), 1);
	assert_int_equal(count_lines_with(cap.text, "--no-interface"), 1);
	read_link(IFNAME, &st);
	assert_int_equal(st.exists, link_exists);
	harness_stop(&h, NULL, false);
}

static void test_without_cap_net_admin_fails_with_eperm_naming_no_interface(void **state)
{
	(void)state;
	expect_eperm(false);
}

static void test_without_cap_net_admin_fails_even_when_all_is_in_place(void **state)
{
	(void)state;
	/* The kernel checks the capability before it looks: --no-interface is the way. */
	assert_int_equal(RUN("ip", "link", "add", IFNAME, "up", "type", "bridge"), 0);
	assert_int_equal(RUN("ip", "addr", "add", V4 "/32", "dev", IFNAME, "scope", "host"), 0);
	assert_int_equal(RUN("ip", "addr", "add", V6 "/128", "dev", IFNAME, "nodad"), 0);
	assert_true(link_complete(NULL));
	expect_eperm(true);
}

/* ---- the harness: one child and one namespace per test ---------------------------------- */

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_start_creates_up_link_with_both_addresses_bindable_at_once),
	cmocka_unit_test(test_second_start_on_existing_state_succeeds_and_changes_nothing),
	cmocka_unit_test(test_deleted_ipv4_address_is_back_within_1s_and_counted),
	cmocka_unit_test(test_deleted_ipv6_address_is_back_within_1s_and_counted),
	cmocka_unit_test(test_deleted_link_is_back_with_addresses_within_1s_as_one_repair),
	cmocka_unit_test(test_link_set_down_is_up_again_within_1s),
	cmocka_unit_test(test_link_set_down_gets_its_flushed_ipv6_address_back_within_1s),
	cmocka_unit_test(test_lost_events_trigger_a_full_check_within_1s),
	cmocka_unit_test(test_stop_with_teardown_removes_the_link_it_created),
	cmocka_unit_test(test_stop_without_teardown_leaves_link_and_addresses),
	cmocka_unit_test(test_teardown_deletes_a_leftover_link_of_the_configured_kind),
	cmocka_unit_test(test_teardown_keeps_a_link_of_the_kind_that_holds_someone_elses_address),
	cmocka_unit_test(test_teardown_keeps_a_link_of_another_kind_and_addresses_it_did_not_add),
	cmocka_unit_test(test_failed_start_removes_the_link_it_created),
	cmocka_unit_test(test_kind_dummy_without_kernel_support_fails_naming_interface_kind),
	cmocka_unit_test(test_kind_unknown_to_any_kernel_fails_naming_interface_kind),
	cmocka_unit_test(test_without_cap_net_admin_fails_with_eperm_naming_no_interface),
	cmocka_unit_test(test_without_cap_net_admin_fails_even_when_all_is_in_place),
};

/* In the child: a namespace of its own with lo up, then the one test. Never returns. */
static void child_run(const struct CMUnitTest *t)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		_exit(SKIP_CODE); /* never run in the host's namespace */
	}
	if (RUN("ip", "link", "set", "lo", "up") != 0) {
		fprintf(stderr, "ip link set lo up failed (is iproute2 installed?)\n");
		_exit(1);
	}
	/* exit, not _exit: LeakSanitizer checks at exit in ASan builds. */
	exit(_cmocka_run_group_tests(t->name, t, 1, NULL, NULL) == 0 ? 0 : 1);
}

/* Runs @t in a child and waits at most CHILD_DEADLINE_S for it. Returns its exit code. */
static int run_isolated(const struct CMUnitTest *t)
{
	struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		child_run(t);
	for (int i = 0; i < CHILD_DEADLINE_S * 100; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
		if (r < 0)
			return 1;
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "%s: no result after %d s, killed\n", t->name, CHILD_DEADLINE_S);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return 1;
}

int main(int argc, char **argv)
{
	int failed = 0, ran = 0;

	if (geteuid() != 0) {
		printf("test_nlink: needs root (network namespaces, netlink); skipped\n");
		return SKIP_CODE;
	}
	log_level_current = LOG_LEVEL_INFO;
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		int rc;

		if (argc > 1 && !strstr(tests[i].name, argv[1]))
			continue;
		rc = run_isolated(&tests[i]);
		if (rc == SKIP_CODE) {
			printf("test_nlink: cannot make a network namespace; skipped\n");
			return SKIP_CODE;
		}
		ran++;
		if (rc != 0)
			failed++;
	}
	printf("test_nlink: %d of %d tests failed\n", failed, ran);
	return failed ? 1 : 0;
}
