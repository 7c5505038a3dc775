/* libFuzzer target: ServiceEntry input from outside (watch event lines and list documents
 * from the API server, the JSON file source), decoded and fed to the store, which stages and
 * publishes the mesh table. The input is taken as several newline-separated watch lines and
 * as one list document. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>

#include "agent/meshtab.h"
#include "k8s/sedecode.h"
#include "k8s/sestore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct meshtab *table;
static struct sestore *store;
static struct se_obj *obj;

static int on_item(void *arg, const struct se_obj *o)
{
	(void)arg;
	return sestore_upsert(store, o) == -ENOMEM ? -ENOMEM : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct se_event ev;
	struct se_list_meta meta;
	const char *text = (const char *)data;

	if (!table) {
		static const char *zones[] = { "global" };
		struct meshtab_opts mo = { .zones = zones, .nzones = 1, .auto_zones = true,
					   .ttl = 30, .neg_ttl = 5 };
		struct sestore_opts so = { .cluster_domain = "cluster.local", .auto_zones = true };
		rcu_register_thread();
		table = meshtab_new(&mo);
		store = sestore_new(&so, table);
		obj = malloc(sizeof(*obj));
		if (!table || !store || !obj)
			abort();
	}
	/* as a stream of watch events */
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		if (i > start && sedecode_event(text + start, i - start, &ev, obj) == 0) {
			if (ev.type == SE_EVENT_ADDED || ev.type == SE_EVENT_MODIFIED)
				sestore_upsert(store, obj);
			else if (ev.type == SE_EVENT_DELETED)
				sestore_delete(store, obj);
		}
		start = i + 1;
	}
	sestore_flush(store);
	/* as a list that replaces the store */
	sestore_replace_begin(store);
	if (sedecode_list(text, size, obj, on_item, NULL, &meta) == 0)
		sestore_replace_commit(store);
	else
		sestore_replace_abort(store);
	return 0;
}
