/* HTTP/1.x messages for /health, /ready and /metrics: as much of RFC 9112 as probes and
 * scrapers need. One request per connection; the response always closes it.
 *
 * Pure: bytes in, decisions and bytes out. The I/O is in http.c.
 */
#ifndef MESHDNS_HTTPMSG_H
#define MESHDNS_HTTPMSG_H

#include <stdbool.h>
#include <stddef.h>

#define HTTPMSG_MAX_HEAD 4096 /* request line and headers; larger requests are refused */

enum httpmsg_method {
	HTTPMSG_GET = 0,
	HTTPMSG_HEAD,
	HTTPMSG_OTHER, /* any other valid method: 405 */
};

struct httpmsg_request {
	enum httpmsg_method method;
	const char *path; /* points into the parsed buffer; the query string is cut off */
	size_t path_len;
	size_t head_len; /* bytes up to and including the blank line */
};

/* Parses the request head at the start of @buf (@len bytes). Returns 0 when the head is
 * complete (@req filled), -EAGAIN when more bytes are needed, -EINVAL for a malformed request
 * line or a version other than HTTP/1.0 and 1.1 (known as soon as the bytes show it), or
 * -E2BIG when HTTPMSG_MAX_HEAD bytes hold no complete head. Headers are not interpreted. */
int httpmsg_parse(const char *buf, size_t len, struct httpmsg_request *req);

/* Writes a response head into @out: status line, Content-Type @content_type,
 * Content-Length @body_len, Cache-Control: no-store, Connection: close,
 * Server: meshdns/@version, and Allow: GET, HEAD for 405. Returns its length, or -E2BIG when
 * @cap is too small. */
int httpmsg_head(char *out, size_t cap, int status, const char *content_type, size_t body_len,
		 const char *version);

/* True when @resp (the first @len bytes of a response) is an HTTP/1.x response with a
 * "Server: meshdns/" header, i.e. another meshdns instance holds the port. */
bool httpmsg_from_meshdns(const char *resp, size_t len);

#endif
