/* Small helpers for socket addresses held in a struct sockaddr_storage. */
#ifndef MESHDNS_AGENT_SOCKADDR_H
#define MESHDNS_AGENT_SOCKADDR_H

#include <netinet/in.h>
#include <sys/socket.h>

/* The length to pass with @a to sendto(2) and friends: that of its family's address. */
static inline socklen_t sockaddr_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

#endif
