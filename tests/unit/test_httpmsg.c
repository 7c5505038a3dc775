/* Unit tests for agent/httpmsg.c: what the endpoints accept from probes, scrapers and
 * strangers, and the response heads they send. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/httpmsg.h"

static int parse(const char *text, struct httpmsg_request *rq)
{
	return httpmsg_parse(text, strlen(text), rq);
}

static void test_kubelet_probe_is_parsed(void **state)
{
	(void)state;
	const char *req = "GET /ready HTTP/1.1\r\nHost: 169.254.20.10:8054\r\n"
			  "User-Agent: kube-probe/1.30\r\nAccept: */*\r\nConnection: close\r\n\r\n";
	struct httpmsg_request rq;

	assert_int_equal(parse(req, &rq), 0);
	assert_int_equal(rq.method, HTTPMSG_GET);
	assert_int_equal(rq.path_len, 6);
	assert_memory_equal(rq.path, "/ready", 6);
	assert_int_equal(rq.head_len, strlen(req));
}

static void test_query_string_is_cut_from_the_path(void **state)
{
	(void)state;
	struct httpmsg_request rq;

	assert_int_equal(parse("GET /metrics?name[]=up HTTP/1.0\r\n\r\n", &rq), 0);
	assert_int_equal(rq.path_len, 8);
	assert_memory_equal(rq.path, "/metrics", 8);
}

static void test_head_and_other_methods(void **state)
{
	(void)state;
	struct httpmsg_request rq;

	assert_int_equal(parse("HEAD /health HTTP/1.1\r\n\r\n", &rq), 0);
	assert_int_equal(rq.method, HTTPMSG_HEAD);
	assert_int_equal(parse("POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &rq), 0);
	assert_int_equal(rq.method, HTTPMSG_OTHER);
	assert_int_equal(parse("GETX /health HTTP/1.1\r\n\r\n", &rq), 0);
	assert_int_equal(rq.method, HTTPMSG_OTHER);
}

static void test_bare_newlines_are_accepted(void **state)
{
	(void)state;
	struct httpmsg_request rq;

	assert_int_equal(parse("GET /health HTTP/1.0\nHost: x\n\n", &rq), 0);
	assert_int_equal(rq.head_len, strlen("GET /health HTTP/1.0\nHost: x\n\n"));
}

static void test_a_head_arriving_byte_by_byte_asks_for_more_until_complete(void **state)
{
	(void)state;
	const char *req = "GET /metrics HTTP/1.1\r\nHost: node:9253\r\nAccept: text/plain\r\n\r\n";
	struct httpmsg_request rq;
	size_t len = strlen(req);

	for (size_t i = 0; i < len; i++)
		assert_int_equal(httpmsg_parse(req, i, &rq), -EAGAIN);
	assert_int_equal(httpmsg_parse(req, len, &rq), 0);
	/* bytes after the head (a body, a second request) are not the head's */
	char more[256];
	snprintf(more, sizeof more, "%sGET /x HTTP/1.1\r\n", req);
	assert_int_equal(parse(more, &rq), 0);
	assert_int_equal(rq.head_len, len);
}

static void test_other_protocols_are_refused_at_once(void **state)
{
	(void)state;
	struct httpmsg_request rq;
	static const char tls[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 };

	assert_int_equal(httpmsg_parse(tls, sizeof tls, &rq), -EINVAL);
	assert_int_equal(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &rq), -EINVAL);
	assert_int_equal(parse("GET /health HTTP/2.0\r\n\r\n", &rq), -EINVAL);
	assert_int_equal(parse("GET /health\r\n\r\n", &rq), -EINVAL); /* HTTP/0.9 */
	assert_int_equal(parse("GET http://x/health HTTP/1.1\r\n\r\n", &rq), -EINVAL);
	assert_int_equal(parse("GET  /health HTTP/1.1\r\n\r\n", &rq), -EINVAL);
	assert_int_equal(parse("GET /he\x01lth HTTP/1.1\r\n\r\n", &rq), -EINVAL);
	/* a partial line that already has a control byte */
	assert_int_equal(parse("GET /he\x01", &rq), -EINVAL);
	assert_int_equal(parse("\r\n", &rq), -EINVAL);
}

static void test_an_endless_head_is_refused(void **state)
{
	(void)state;
	static char big[HTTPMSG_MAX_HEAD + 100];
	struct httpmsg_request rq;
	int n = snprintf(big, sizeof big, "GET /metrics HTTP/1.1\r\n");

	while ((size_t)n + 20 < sizeof big)
		n += snprintf(big + n, sizeof big - (size_t)n, "X-Filler: 0123456\r\n");
	assert_int_equal(httpmsg_parse(big, HTTPMSG_MAX_HEAD - 1, &rq), -EAGAIN);
	assert_int_equal(httpmsg_parse(big, HTTPMSG_MAX_HEAD, &rq), -E2BIG);
	assert_int_equal(httpmsg_parse(big, sizeof big, &rq), -E2BIG);

	/* a request line that never ends */
	memset(big, 'a', sizeof big);
	memcpy(big, "GET /", 5);
	assert_int_equal(httpmsg_parse(big, HTTPMSG_MAX_HEAD, &rq), -E2BIG);
}

static void test_response_head(void **state)
{
	(void)state;
	char out[512];
	int n = httpmsg_head(out, sizeof out, 503, "text/plain; charset=utf-8", 37, "0.1.0");

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	assert_string_equal(out, "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n"
				 "Content-Length: 37\r\n"
				 "Cache-Control: no-store\r\n"
				 "Connection: close\r\n"
				 "Server: meshdns/0.1.0\r\n"
				 "\r\n");
	n = httpmsg_head(out, sizeof out, 405, "text/plain", 0, "0.1.0");
	assert_non_null(strstr(out, "\r\nAllow: GET, HEAD\r\n\r\n"));
	assert_int_equal(httpmsg_head(out, 40, 200, "text/plain", 0, "0.1.0"), -E2BIG);
}

static void test_another_meshdns_is_recognised_by_its_server_header(void **state)
{
	(void)state;
	char head[512];
	int n = httpmsg_head(head, sizeof head, 404, "text/plain", 10, "9.9.9");

	assert_true(httpmsg_from_meshdns(head, (size_t)n));
	const char *lower = "HTTP/1.0 200 OK\r\nserver: MeshDNS/1\r\n\r\n";
	assert_true(httpmsg_from_meshdns(lower, strlen(lower)));
	/* CoreDNS (node-local-dns) sends no such header */
	const char *coredns =
		"HTTP/1.1 200 OK\r\nDate: Wed, 26 Nov 2025 10:00:00 GMT\r\n"
		"Content-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOK";
	assert_false(httpmsg_from_meshdns(coredns, strlen(coredns)));
	/* only the head counts, and only an HTTP response */
	const char *body = "HTTP/1.1 200 OK\r\nContent-Length: 25\r\n\r\n\nServer: meshdns/1.0\r\n";
	assert_false(httpmsg_from_meshdns(body, strlen(body)));
	const char *ssh = "SSH-2.0-OpenSSH_9.2\r\nServer: meshdns/1\r\n";
	assert_false(httpmsg_from_meshdns(ssh, strlen(ssh)));
	assert_false(httpmsg_from_meshdns("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubelet_probe_is_parsed),
		cmocka_unit_test(test_query_string_is_cut_from_the_path),
		cmocka_unit_test(test_head_and_other_methods),
		cmocka_unit_test(test_bare_newlines_are_accepted),
		cmocka_unit_test(test_a_head_arriving_byte_by_byte_asks_for_more_until_complete),
		cmocka_unit_test(test_other_protocols_are_refused_at_once),
		cmocka_unit_test(test_an_endless_head_is_refused),
		cmocka_unit_test(test_response_head),
		cmocka_unit_test(test_another_meshdns_is_recognised_by_its_server_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
