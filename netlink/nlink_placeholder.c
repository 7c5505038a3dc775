/* Placeholder until the netlink module lands: no interface management yet. */
#include <errno.h>

#include "agent/log.h"
#include "netlink/nlink.h"

int nlink_start(struct nlink **out, struct uv_loop_s *loop, const struct nlink_opts *opts)
{
	(void)out;
	(void)loop;
	(void)opts;
	log_error("nlink", "interface management is not built yet: run with --no-interface");
	return -EOPNOTSUPP;
}

uint64_t nlink_repairs(const struct nlink *n)
{
	(void)n;
	return 0;
}

void nlink_stop(struct nlink *n, bool teardown)
{
	(void)n;
	(void)teardown;
}
