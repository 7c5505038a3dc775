/* libcurl, loaded on demand with dlopen.
 *
 * Linking libcurl (with OpenSSL, nghttp2, libssh2, GSSAPI, LDAP ... behind it) costs about
 * 6 MB of resident memory at start, in every mode, while only --serviceentries kubernetes
 * uses it (PERF.md: idle RSS at most 3,000 kB). So the binary does not link it: the
 * Kubernetes source loads "libcurl.so.4" once and resolves the few functions it calls into
 * this table, as systemd does for its optional libraries. <curl/curl.h> is used for types and
 * constants only.
 *
 * Call only through the table. Options are passed as curl documents them: long, pointer or
 * function pointer, never an int.
 */
#ifndef MESHDNS_CURLFN_H
#define MESHDNS_CURLFN_H

#include <stddef.h>

#include <curl/curl.h>

#define CURLFN_SONAME "libcurl.so.4"

struct curlfn {
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	curl_version_info_data *(*version_info)(CURLversion stamp);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *h);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	const char *(*easy_strerror)(CURLcode c);
	CURLcode (*easy_pause)(CURL *h, int bitmask);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_cleanup)(CURLM *m);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev, int *running);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
	const char *(*multi_strerror)(CURLMcode c);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* Loads @soname (CURLFN_SONAME) the first time and resolves the table; later calls return
 * the same table. Returns NULL when the library or a function is missing, with the reason in
 * @err. Not thread-safe: call from the main thread at start. The library stays loaded. */
const struct curlfn *curlfn_load(const char *soname, char *err, size_t errlen);

#endif
