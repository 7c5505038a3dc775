/* HTTP/1.x messages. See httpmsg.h. */
#include "agent/httpmsg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_METHOD 16

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Checks what has arrived of the request line so far (@len bytes, no newline yet), so that
 * a client speaking something else (TLS, HTTP/2) is refused at once instead of timing out. */
static int check_partial_line(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && i <= MAX_METHOD && is_tchar((unsigned char)buf[i]))
		i++;
	if (i == len)
		return -EAGAIN;
	if (buf[i] != ' ' || i == 0 || i > MAX_METHOD)
		return -EINVAL;
	for (i++; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 && buf[i] != '\r')
			return -EINVAL;
	return len >= HTTPMSG_MAX_HEAD ? -E2BIG : -EAGAIN;
}

static int parse_request_line(const char *line, size_t len, struct httpmsg_request *req)
{
	const char *sp1, *sp2, *end = line + len;
	size_t mlen;

	if (len && line[len - 1] == '\r')
		end--;
	sp1 = memchr(line, ' ', (size_t)(end - line));
	if (!sp1)
		return -EINVAL;
	mlen = (size_t)(sp1 - line);
	if (mlen == 0 || mlen > MAX_METHOD)
		return -EINVAL;
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)line[i]))
			return -EINVAL;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1 || sp1[1] != '/')
		return -EINVAL;
	for (const char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return -EINVAL;
	if ((size_t)(end - sp2 - 1) != 8 ||
	    (memcmp(sp2 + 1, "HTTP/1.1", 8) != 0 && memcmp(sp2 + 1, "HTTP/1.0", 8) != 0))
		return -EINVAL;

	if (mlen == 3 && memcmp(line, "GET", 3) == 0)
		req->method = HTTPMSG_GET;
	else if (mlen == 4 && memcmp(line, "HEAD", 4) == 0)
		req->method = HTTPMSG_HEAD;
	else
		req->method = HTTPMSG_OTHER;
	req->path = sp1 + 1;
	req->path_len = 0;
	while (req->path + req->path_len < sp2 && req->path[req->path_len] != '?' &&
	       req->path[req->path_len] != '#')
		req->path_len++;
	return 0;
}

int httpmsg_parse(const char *buf, size_t len, struct httpmsg_request *req)
{
	const char *nl;
	size_t pos;
	int r;

	if (len > HTTPMSG_MAX_HEAD)
		len = HTTPMSG_MAX_HEAD;
	nl = memchr(buf, '\n', len);
	if (!nl)
		return check_partial_line(buf, len);
	r = parse_request_line(buf, (size_t)(nl - buf), req);
	if (r < 0)
		return r;
	/* Header lines up to the blank one ("\r\n" or "\n"). */
	pos = (size_t)(nl - buf) + 1;
	while (pos < len) {
		nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			break;
		size_t line = (size_t)(nl - (buf + pos));
		if (line == 0 || (line == 1 && buf[pos] == '\r')) {
			req->head_len = (size_t)(nl - buf) + 1;
			return 0;
		}
		pos += line + 1;
	}
	return len >= HTTPMSG_MAX_HEAD ? -E2BIG : -EAGAIN;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

int httpmsg_head(char *out, size_t cap, int status, const char *content_type, size_t body_len,
		 const char *version)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 "Connection: close\r\n"
			 "Server: meshdns/%s\r\n"
			 "%s"
			 "\r\n",
			 status, reason(status), content_type, body_len, version,
			 status == 405 ? "Allow: GET, HEAD\r\n" : "");

	if (n < 0 || (size_t)n >= cap)
		return -E2BIG;
	return n;
}

bool httpmsg_from_meshdns(const char *resp, size_t len)
{
	static const char want[] = "\nserver: meshdns/";
	const size_t wlen = sizeof want - 1;

	if (len < 7 || memcmp(resp, "HTTP/1.", 7) != 0)
		return false;
	for (size_t i = 0; i + wlen <= len; i++) {
		if (resp[i] != '\n')
			continue;
		if (strncasecmp(resp + i, want, wlen) == 0)
			return true;
		/* the blank line ends the head */
		if (i + 1 < len && (resp[i + 1] == '\n' || resp[i + 1] == '\r'))
			return false;
	}
	return false;
}
