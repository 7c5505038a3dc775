/* Upstream servers from resolv.conf (SEMANTICS.md rule 5).
 *
 * Pure parsing plus one small file read at start.
 */
#ifndef MESHDNS_RESOLVCONF_H
#define MESHDNS_RESOLVCONF_H

#include <stddef.h>
#include <sys/socket.h>

#define RESOLVCONF_SYSTEMD_PATH "/run/systemd/resolve/resolv.conf"

/* Parses the "nameserver" lines of @text (@len bytes) into @out (at most @cap, port 53).
 * Addresses equal to one of @exclude (the agent's own listen addresses) are skipped. Sets
 * *@only_stub when every nameserver found is the systemd-resolved stub (127.0.0.53 or
 * 127.0.0.54). Returns the number of servers stored. */
size_t resolvconf_parse(const char *text, size_t len, const struct sockaddr_storage *exclude,
			size_t nexclude, struct sockaddr_storage *out, size_t cap, int *only_stub);

/* Reads @path and parses it; when it names only the systemd-resolved stub, reads
 * @systemd_path instead (the real upstream list). Returns the number of servers (possibly
 * 0) or a negative errno when @path cannot be read. */
int resolvconf_read(const char *path, const char *systemd_path,
		    const struct sockaddr_storage *exclude, size_t nexclude,
		    struct sockaddr_storage *out, size_t cap);

#endif
