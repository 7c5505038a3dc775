/* Kubernetes API access configuration. See kconf.h. */
#include "k8s/kconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kconf_api_url(const char *flag_url, const char *host, const char *port, char *out, size_t cap)
{
	size_t n;
	int w;

	if (flag_url && flag_url[0]) {
		n = strlen(flag_url);
		while (n > 0 && flag_url[n - 1] == '/')
			n--;
		if (strncmp(flag_url, "https://", 8) != 0 || n <= 8)
			return -EINVAL;
		if (n >= cap)
			return -E2BIG;
		memcpy(out, flag_url, n);
		out[n] = 0;
		return 0;
	}
	if (!host || !host[0] || !port || !port[0])
		return -ENOENT;
	for (const char *p = port; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	if (strlen(port) > 5 || strtol(port, NULL, 10) > 65535 || strtol(port, NULL, 10) == 0)
		return -EINVAL;
	for (const char *p = host; *p; p++)
		if (*p == '/' || *p == '@' || *p == '[' || *p == ']' || *p == ' ')
			return -EINVAL;
	if (strchr(host, ':'))
		w = snprintf(out, cap, "https://[%s]:%s", host, port);
	else
		w = snprintf(out, cap, "https://%s:%s", host, port);
	return w < 0 || (size_t)w >= cap ? -E2BIG : 0;
}

int kconf_ca_path(const char *flag_ca, const char *token_path, char *out, size_t cap)
{
	const char *slash;
	int w;

	if (flag_ca && flag_ca[0])
		w = snprintf(out, cap, "%s", flag_ca);
	else if ((slash = strrchr(token_path, '/')))
		w = snprintf(out, cap, "%.*s/ca.crt", (int)(slash - token_path), token_path);
	else
		w = snprintf(out, cap, "ca.crt");
	return w < 0 || (size_t)w >= cap ? -E2BIG : 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

int kconf_read_token(const char *path, char *out, size_t cap)
{
	size_t got = 0, start = 0;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	while (got < cap) {
		n = read(fd, out + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == cap) {
		r = -E2BIG;
		goto out;
	}
	while (got > 0 && is_space(out[got - 1]))
		got--;
	while (start < got && is_space(out[start]))
		start++;
	memmove(out, out + start, got - start);
	got -= start;
	out[got] = 0;
	r = got ? (int)got : -ENODATA;
out:
	if (r < 0)
		explicit_bzero(out, cap);
	close(fd);
	return r;
}

int kconf_escape(const char *in, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		unsigned char c = *p;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
		if (o + (plain ? 1 : 3) >= cap)
			return -E2BIG;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= cap)
		return -E2BIG;
	out[o] = 0;
	return (int)o;
}
