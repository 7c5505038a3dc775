/* libFuzzer target: ServiceEntry decoding of outside input (watch event lines and list
 * documents from the API server, the JSON file source). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "k8s/sedecode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_item(void *arg, const struct se_obj *o)
{
	(void)arg;
	(void)o;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct se_obj *obj;
	struct se_event ev;
	struct se_list_meta meta;

	if (!obj && !(obj = malloc(sizeof(*obj))))
		return 0;
	(void)sedecode_event((const char *)data, size, &ev, obj);
	(void)sedecode_list((const char *)data, size, obj, on_item, NULL, &meta);
	return 0;
}
