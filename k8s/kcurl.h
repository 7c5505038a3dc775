/* libcurl's multi socket interface on a libuv loop (STYLE.md: curl on the same loop).
 *
 * CURLMOPT_SOCKETFUNCTION maps each socket libcurl wants watched to a uv_poll_t, and
 * CURLMOPT_TIMERFUNCTION to one uv_timer_t; readiness and timeouts go back to libcurl
 * through curl_multi_socket_action, and finished transfers to the owner's callback. Nothing
 * blocks the loop. libcurl is called through the curlfn table (dlopen).
 */
#ifndef MESHDNS_KCURL_H
#define MESHDNS_KCURL_H

#include "k8s/curlfn.h"

struct kcurl;
struct uv_loop_s;

/* A transfer finished with @result. Called from the loop, never from inside libcurl: the
 * callee may remove and clean up @easy and add another transfer. */
typedef void (*kcurl_done_fn)(void *arg, CURL *easy, CURLcode result);

/* Creates the multi handle on @loop. Returns 0 and *@out, -ENOMEM, or -EINVAL when libcurl
 * refuses an option (logged). */
int kcurl_new(struct uv_loop_s *loop, const struct curlfn *cf, kcurl_done_fn done, void *arg,
	      struct kcurl **out);

/* Starts the transfer @easy. Returns 0 or -EINVAL (logged). */
int kcurl_add(struct kcurl *kc, CURL *easy);

/* Abandons or detaches @easy (the caller then cleans it up). */
void kcurl_remove(struct kcurl *kc, CURL *easy);

/* Cleans the multi handle up (remove every transfer first), closes every poll handle and the
 * timer, and frees itself in the last close callback, after which @closed(@arg) runs. */
void kcurl_close(struct kcurl *kc, void (*closed)(void *arg), void *arg);

#endif
