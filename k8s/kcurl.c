/* libcurl multi socket on libuv. See kcurl.h. */
#include "k8s/kcurl.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <uv.h>

#include "agent/log.h"

/* A socket libcurl asked us to watch. */
struct ksock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct kcurl *kc;
	struct ksock *prev, *next;
};

struct kcurl {
	uv_loop_t *loop;
	const struct curlfn *cf;
	CURLM *multi;
	uv_timer_t timer;
	struct ksock *socks;
	kcurl_done_fn done;
	void *arg;
	int live; /* handles not yet closed */
	bool closing;
	void (*closed)(void *arg);
	void *closed_arg;
};

static void maybe_free(struct kcurl *kc)
{
	if (--kc->live > 0)
		return;
	if (kc->closed)
		kc->closed(kc->closed_arg);
	free(kc);
}

static void on_timer_closed(uv_handle_t *h)
{
	maybe_free(h->data);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct ksock *s = h->data;
	struct kcurl *kc = s->kc;

	free(s);
	maybe_free(kc);
}

static void close_sock(struct kcurl *kc, struct ksock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		kc->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void check_done(struct kcurl *kc)
{
	CURLMsg *m;
	int left;

	while (!kc->closing && (m = kc->cf->multi_info_read(kc->multi, &left)))
		if (m->msg == CURLMSG_DONE)
			kc->done(kc->arg, m->easy_handle, m->data.result);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	struct ksock *s = p->data;
	struct kcurl *kc = s->kc;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	kc->cf->multi_socket_action(kc->multi, s->fd, flags, &running);
	check_done(kc);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
	struct kcurl *kc = userp;
	struct ksock *s = sockp;
	int events = 0;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			kc->cf->multi_assign(kc->multi, fd, NULL);
			close_sock(kc, s);
		}
		return 0;
	}
	if (!s) {
		if (kc->closing)
			return -1;
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		if (uv_poll_init_socket(kc->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->fd = fd;
		s->kc = kc;
		s->poll.data = s;
		s->next = kc->socks;
		if (kc->socks)
			kc->socks->prev = s;
		kc->socks = s;
		kc->live++;
		kc->cf->multi_assign(kc->multi, fd, s);
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&s->poll, events, on_poll);
	return 0;
}

static void on_timeout(uv_timer_t *t)
{
	struct kcurl *kc = t->data;
	int running;

	kc->cf->multi_socket_action(kc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(kc);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct kcurl *kc = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&kc->timer);
	else if (!kc->closing)
		uv_timer_start(&kc->timer, on_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

int kcurl_new(uv_loop_t *loop, const struct curlfn *cf, kcurl_done_fn done, void *arg,
	      struct kcurl **out)
{
	struct kcurl *kc = calloc(1, sizeof(*kc));
	CURLMcode mc = CURLM_OK;

	if (!kc)
		return -ENOMEM;
	kc->multi = cf->multi_init();
	if (!kc->multi) {
		free(kc);
		return -ENOMEM;
	}
	kc->loop = loop;
	kc->cf = cf;
	kc->done = done;
	kc->arg = arg;
#define MSET(opt, val)                                                                             \
	do {                                                                                       \
		if (mc == CURLM_OK)                                                                \
			mc = cf->multi_setopt(kc->multi, (opt), (val));                            \
	} while (0)
	MSET(CURLMOPT_SOCKETFUNCTION, on_socket);
	MSET(CURLMOPT_SOCKETDATA, (void *)kc);
	MSET(CURLMOPT_TIMERFUNCTION, on_timer);
	MSET(CURLMOPT_TIMERDATA, (void *)kc);
	MSET(CURLMOPT_MAXCONNECTS, 2L);
#undef MSET
	if (mc != CURLM_OK) {
		log_error("k8s", "libcurl: %s", cf->multi_strerror(mc));
		cf->multi_cleanup(kc->multi);
		free(kc);
		return -EINVAL;
	}
	uv_timer_init(loop, &kc->timer);
	kc->timer.data = kc;
	kc->live = 1;
	*out = kc;
	return 0;
}

int kcurl_add(struct kcurl *kc, CURL *easy)
{
	CURLMcode mc = kc->cf->multi_add_handle(kc->multi, easy);

	if (mc != CURLM_OK) {
		log_error("k8s", "libcurl: %s", kc->cf->multi_strerror(mc));
		return -EINVAL;
	}
	return 0;
}

void kcurl_remove(struct kcurl *kc, CURL *easy)
{
	kc->cf->multi_remove_handle(kc->multi, easy);
}

void kcurl_close(struct kcurl *kc, void (*closed)(void *arg), void *arg)
{
	if (kc->closing)
		return;
	kc->closing = true;
	kc->closed = closed;
	kc->closed_arg = arg;
	kc->cf->multi_cleanup(kc->multi); /* may remove sockets through on_socket */
	kc->multi = NULL;
	while (kc->socks)
		close_sock(kc, kc->socks);
	uv_close((uv_handle_t *)&kc->timer, on_timer_closed);
}
