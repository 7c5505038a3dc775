/* Upstream servers from resolv.conf. See resolvconf.h. */
#include "agent/resolvconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "agent/config.h"

static int is_stub(const struct sockaddr_storage *a)
{
	if (a->ss_family != AF_INET)
		return 0;
	uint32_t ip = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
	return ip == 0x7f000035 || ip == 0x7f000036; /* 127.0.0.53, 127.0.0.54 */
}

size_t resolvconf_parse(const char *text, size_t len, const struct sockaddr_storage *exclude,
			size_t nexclude, struct sockaddr_storage *out, size_t cap, int *only_stub)
{
	size_t n = 0, found = 0, stubs = 0;
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
		char line[256], addr[128];
		struct sockaddr_storage sa;

		if (ll < sizeof line) {
			memcpy(line, p, ll);
			line[ll] = 0;
			if (sscanf(line, " nameserver %127s", addr) == 1 &&
			    config_parse_addr(addr, 53, &sa) == 0 && strchr(addr, ']') == NULL) {
				int skip = 0;
				found++;
				if (is_stub(&sa))
					stubs++;
				for (size_t i = 0; i < nexclude; i++)
					if (config_addr_equal(&sa, &exclude[i]))
						skip = 1;
				for (size_t i = 0; i < n; i++)
					if (config_addr_equal(&sa, &out[i]))
						skip = 1;
				if (!skip && n < cap)
					out[n++] = sa;
			}
		}
		p += ll + 1;
	}
	if (only_stub)
		*only_stub = found > 0 && stubs == found;
	return n;
}

static int read_file(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	*len = fread(buf, 1, cap - 1, f);
	buf[*len] = 0;
	fclose(f);
	return 0;
}

int resolvconf_read(const char *path, const char *systemd_path,
		    const struct sockaddr_storage *exclude, size_t nexclude,
		    struct sockaddr_storage *out, size_t cap)
{
	char buf[16384];
	size_t len = 0, n;
	int only_stub = 0, r;

	r = read_file(path, buf, sizeof buf, &len);
	if (r < 0)
		return r;
	n = resolvconf_parse(buf, len, exclude, nexclude, out, cap, &only_stub);
	if (only_stub && systemd_path && read_file(systemd_path, buf, sizeof buf, &len) == 0)
		n = resolvconf_parse(buf, len, exclude, nexclude, out, cap, NULL);
	return (int)n;
}
