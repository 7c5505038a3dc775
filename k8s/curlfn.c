/* libcurl loaded with dlopen. See curlfn.h. */
#include "k8s/curlfn.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static struct curlfn table;
static bool loaded;

/* Where each function goes in the table. */
#define SYM(field, name)                                                                           \
	{                                                                                          \
		offsetof(struct curlfn, field), name                                               \
	}

static const struct {
	size_t off;
	const char *name;
} syms[] = {
	SYM(global_init, "curl_global_init"),
	SYM(global_cleanup, "curl_global_cleanup"),
	SYM(version_info, "curl_version_info"),
	SYM(easy_init, "curl_easy_init"),
	SYM(easy_cleanup, "curl_easy_cleanup"),
	SYM(easy_setopt, "curl_easy_setopt"),
	SYM(easy_getinfo, "curl_easy_getinfo"),
	SYM(easy_strerror, "curl_easy_strerror"),
	SYM(easy_pause, "curl_easy_pause"),
	SYM(multi_init, "curl_multi_init"),
	SYM(multi_cleanup, "curl_multi_cleanup"),
	SYM(multi_setopt, "curl_multi_setopt"),
	SYM(multi_add_handle, "curl_multi_add_handle"),
	SYM(multi_remove_handle, "curl_multi_remove_handle"),
	SYM(multi_socket_action, "curl_multi_socket_action"),
	SYM(multi_info_read, "curl_multi_info_read"),
	SYM(multi_assign, "curl_multi_assign"),
	SYM(multi_strerror, "curl_multi_strerror"),
	SYM(slist_append, "curl_slist_append"),
	SYM(slist_free_all, "curl_slist_free_all"),
};

const struct curlfn *curlfn_load(const char *soname, char *err, size_t errlen)
{
	struct curlfn t;
	void *lib;

	if (loaded)
		return &table;
	lib = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(err, errlen, "cannot load %s (install the libcurl4 package): %s", soname,
			 dlerror());
		return NULL;
	}
	memset(&t, 0, sizeof(t));
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *p = dlsym(lib, syms[i].name);
		if (!p) {
			snprintf(err, errlen, "%s has no %s: too old a libcurl", soname,
				 syms[i].name);
			dlclose(lib);
			return NULL;
		}
		/* POSIX: a data pointer from dlsym converts to a function pointer */
		memcpy((char *)&t + syms[i].off, &p, sizeof(p));
	}
	table = t;
	loaded = true;
	return &table;
}
