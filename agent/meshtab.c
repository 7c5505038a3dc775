/* Placeholder mesh table: no zones, synced. Replaced by the mesh table implementation. */
#include "agent/meshtab.h"

#include <stdlib.h>

struct meshview {
	int unused;
};

struct meshtab {
	struct meshview view;
};

struct meshtab *meshtab_new(const struct meshtab_opts *opts)
{
	(void)opts;
	return calloc(1, sizeof(struct meshtab));
}

void meshtab_free(struct meshtab *t)
{
	free(t);
}

const struct meshview *meshtab_view(struct meshtab *t)
{
	return &t->view;
}

int meshview_answer(const struct meshview *v, const struct wire_query *q, bool udp, uint8_t *out,
		    size_t cap, enum mesh_result *res)
{
	(void)v;
	(void)q;
	(void)udp;
	(void)out;
	(void)cap;
	*res = MESH_NOT_LOCAL;
	return 0;
}

void meshview_get_info(const struct meshview *v, struct meshview_info *info)
{
	(void)v;
	info->generation = 1;
	info->hosts = 0;
	info->wildcards = 0;
	info->zones = 0;
	info->synced = true;
}
