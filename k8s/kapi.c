/* The Kubernetes API source: libcurl's multi socket interface on libuv. See kapi.h. */
#include "k8s/kapi.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "agent/log.h"
#include "k8s/curlfn.h"
#include "k8s/kcurl.h"
#include "k8s/kconf.h"
#include "k8s/linebuf.h"
#include "k8s/liststream.h"
#include "k8s/sedecode.h"
#include "k8s/sestore.h"
#include "k8s/watchsm.h"

#define GROUP_PATH	     "/apis/networking.istio.io"
#define MAX_SKELETON	     (1u << 20)
#define URL_CAP		     (KCONF_MAX_URL + 3 * WATCHSM_MAX_CONTINUE + 512)
#define CONNECT_TIMEOUT_MS   10000L
#define DISCOVERY_TIMEOUT_MS 30000L
#define WATCH_HARD_MARGIN_S  60L /* a watch is cut at timeoutSeconds + this, whatever comes */
#define KEEPALIVE_IDLE_S     30L
#define KEEPALIVE_INTVL_S    15L
#define KEEPALIVE_CNT	     4
#define LIST_BUFFER_SIZE     (256L << 10)
#define LIST_SLICE_BYTES     (2u << 20) /* list bytes decoded per loop turn, then the loop turns */

struct kapi {
	uv_loop_t *loop;
	struct sestore *store;
	const struct curlfn *cf;
	struct kcurl *kc;
	uv_timer_t next_timer;	/* the delay before the next request */
	uv_timer_t token_timer; /* token re-read */
	uv_timer_t watchdog;	/* no byte for too long */
	uv_idle_t resume;	/* a paused list transfer goes on at the next loop turn */
	int live;		/* handles not yet closed */
	bool closing;
	struct watchsm *sm;
	struct watchsm_action next;
	uint32_t idle_override_ms;
	char url_base[KCONF_MAX_URL];
	char token_path[PATH_MAX];
	char ca_path[PATH_MAX];
	char *token; /* KCONF_MAX_TOKEN bytes: the bearer token, never logged */
	char *token_tmp;
	char *url;
	char version[16];
	bool absent;

	/* the request in flight (one at a time) */
	CURL *easy;
	struct curl_slist *hdrs;
	enum watchsm_op op;
	bool fresh_next;
	uint32_t idle_ms;
	uint64_t last_rx_ms;
	long status;
	int abort_err; /* why we cut it: -ETIMEDOUT (dead), -ECANCELED (ERROR event), ... */
	uint64_t bytes;
	size_t slice_bytes; /* list bytes decoded since the loop last turned */
	char *body;	    /* discovery document or error Status, NUL-terminated */
	size_t body_len;
	char errbuf[CURL_ERROR_SIZE];

	/* list */
	struct liststream *ls;
	bool replacing;
	size_t list_items;
	size_t list_pages;
	uint64_t list_started_ms;

	/* watch */
	struct linebuf *lb;
	struct se_event ev;
	bool ev_error;
	uint64_t watch_events;
	struct se_obj *obj;

	/* one rate limit per kind of repeated warning */
	struct log_ratelimit rl_token, rl_line, rl_data, rl_tls, rl_net, rl_401, rl_http;

	/* status, read from other threads */
	atomic_bool st_synced, st_absent, st_watching;
	_Atomic int64_t st_last_success;
	_Atomic uint64_t st_restarts, st_relists, st_backoff;
	_Atomic uint64_t st_requests[KAPI_CODE_COUNT];
};

static const char *const code_names[KAPI_CODE_COUNT] = {
	"none", "200", "401", "403", "404", "410", "429", "500", "503", "504", "other",
};

const char *kapi_code_name(enum kapi_code c)
{
	return (unsigned)c < KAPI_CODE_COUNT ? code_names[c] : "other";
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static int64_t wall_s(void)
{
	uv_timeval64_t tv;

	return uv_gettimeofday(&tv) == 0 ? tv.tv_sec : 0;
}

static uint32_t rand_u32(void *arg)
{
	uint32_t v;

	(void)arg;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v))
		v = (uint32_t)(uv_hrtime() * 2654435761u);
	return v;
}

static void count_code(struct kapi *k, long status)
{
	static const long codes[] = { 0, 200, 401, 403, 404, 410, 429, 500, 503, 504 };
	enum kapi_code c = KAPI_CODE_OTHER;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i] == status)
			c = (enum kapi_code)i;
	atomic_fetch_add_explicit(&k->st_requests[c], 1, memory_order_relaxed);
}

static void publish_stats(struct kapi *k)
{
	struct watchsm_stats st;

	watchsm_get_stats(k->sm, &st);
	atomic_store_explicit(&k->st_restarts, st.watch_restarts, memory_order_relaxed);
	atomic_store_explicit(&k->st_relists, st.relists, memory_order_relaxed);
	atomic_store_explicit(&k->st_backoff, st.backoff_ms, memory_order_relaxed);
}

static void mark_success(struct kapi *k)
{
	atomic_store_explicit(&k->st_last_success, wall_s(), memory_order_relaxed);
}

/* ---- freeing --------------------------------------------------------------------------- */

static void free_all(struct kapi *k)
{
	if (k->token)
		explicit_bzero(k->token, KCONF_MAX_TOKEN);
	if (k->token_tmp)
		explicit_bzero(k->token_tmp, KCONF_MAX_TOKEN);
	free(k->token);
	free(k->token_tmp);
	free(k->url);
	free(k->body);
	free(k->obj);
	linebuf_free(k->lb);
	liststream_free(k->ls);
	watchsm_free(k->sm);
	free(k);
}

static void maybe_free(struct kapi *k)
{
	if (--k->live > 0)
		return;
	if (k->cf)
		k->cf->global_cleanup();
	free_all(k);
}

static void on_handle_closed(uv_handle_t *h)
{
	maybe_free(h->data);
}

static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	int cnt = KEEPALIVE_CNT;

	(void)arg;
	if (purpose == CURLSOCKTYPE_IPCXN)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	return CURL_SOCKOPT_OK;
}

static void finish(struct kapi *k, CURLcode res);

static void on_done(void *arg, CURL *easy, CURLcode res)
{
	struct kapi *k = arg;

	if (easy == k->easy)
		finish(k, res);
}

static void on_kcurl_closed(void *arg)
{
	maybe_free(arg);
}

/* ---- the token ------------------------------------------------------------------------- */

/* Re-reads the token file (by path: the kubelet swaps a symlink). Keeps the previous token
 * when the file cannot be read. */
static void reload_token(struct kapi *k, const char *why)
{
	int r = kconf_read_token(k->token_path, k->token_tmp, KCONF_MAX_TOKEN);

	if (r < 0) {
		log_warn_rl(&k->rl_token, now_ms(), "k8s",
			    "cannot re-read the token file %s (%s): %s; keeping the previous token",
			    k->token_path, why, strerror(-r));
		return;
	}
	if (strcmp(k->token, k->token_tmp) != 0) {
		memcpy(k->token, k->token_tmp, (size_t)r + 1);
		log_info("k8s", "token file %s changed (%s): using the new token", k->token_path,
			 why);
	}
	explicit_bzero(k->token_tmp, (size_t)r);
}

static void on_token_timer(uv_timer_t *t)
{
	reload_token(t->data, "periodic re-read");
}

/* ---- the store ------------------------------------------------------------------------- */

static void store_abort(struct kapi *k)
{
	if (!k->replacing)
		return;
	sestore_replace_abort(k->store);
	(void)sestore_flush(k->store);
	k->replacing = false;
}

static void store_begin(struct kapi *k)
{
	store_abort(k);
	sestore_replace_begin(k->store);
	k->replacing = true;
	k->list_items = 0;
	k->list_pages = 0;
	k->list_started_ms = now_ms();
}

/* ---- response bodies ------------------------------------------------------------------- */

static int on_list_item(void *arg, const char *item, size_t len)
{
	struct kapi *k = arg;
	cJSON *o = cJSON_ParseWithLength(item, len);
	int r;

	if (!o)
		return -EINVAL;
	(void)sedecode_object(o, k->obj); /* a bad object is counted by the store */
	cJSON_Delete(o);
	k->list_items++;
	r = sestore_upsert(k->store, k->obj);
	return r == -ENOMEM ? r : 0;
}

static int on_watch_line(void *arg, const char *line, size_t len)
{
	struct kapi *k = arg;
	int r;

	k->obj->bad = false;
	r = sedecode_event(line, len, &k->ev, k->obj);
	if (r == -ENOMEM)
		return r;
	if (r < 0 && !k->obj->bad) {
		log_warn_rl(&k->rl_line, now_ms(), "k8s",
			    "watch: skipped a line that is not an event (%zu bytes)", len);
		return 0;
	}
	switch (k->ev.type) {
	case SE_EVENT_ADDED:
	case SE_EVENT_MODIFIED:
		r = sestore_upsert(k->store, k->obj);
		if (r == -ENOMEM)
			return r;
		break;
	case SE_EVENT_DELETED:
		if (!k->obj->bad)
			(void)sestore_delete(k->store, k->obj);
		break;
	case SE_EVENT_BOOKMARK:
		break;
	case SE_EVENT_ERROR:
	default:
		k->ev_error = true;
		return -ECANCELED; /* stop reading: the server ends this watch */
	}
	k->watch_events++;
	watchsm_event(k->sm, now_ms(), k->ev.rv);
	return 0;
}

static void keep_body(struct kapi *k, const char *data, size_t len, size_t cap)
{
	if (len > cap - k->body_len)
		len = cap - k->body_len;
	memcpy(k->body + k->body_len, data, len);
	k->body_len += len;
	k->body[k->body_len] = 0;
}

/* An idle handle, not a 0 ms timer: one started from a timer callback may run in the same
 * timers pass, and the loop would never reach the poll phase during a long list. */
static void on_resume(uv_idle_t *h)
{
	struct kapi *k = h->data;

	uv_idle_stop(h);
	k->slice_bytes = 0;
	if (k->easy)
		k->cf->easy_pause(k->easy, CURLPAUSE_CONT);
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct kapi *k = userp;
	size_t len = size * n;
	uint64_t events;
	int r = 0;

	k->last_rx_ms = now_ms();
	k->bytes += len;
	if (!k->status)
		k->cf->easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &k->status);
	if (k->status != 200) {
		keep_body(k, data, len, KAPI_MAX_ERROR_BODY);
		return len;
	}
	switch (k->op) {
	case WATCHSM_DISCOVER:
		if (k->body_len + len > KAPI_MAX_SMALL_BODY)
			r = -E2BIG;
		else
			keep_body(k, data, len, KAPI_MAX_SMALL_BODY);
		break;
	case WATCHSM_LIST:
		if (k->slice_bytes >= LIST_SLICE_BYTES) {
			/* let the loop turn (signals, timers, other handles); curl hands the
			 * same bytes again once resumed */
			k->bytes -= len;
			uv_idle_start(&k->resume, on_resume);
			return CURL_WRITEFUNC_PAUSE;
		}
		k->slice_bytes += len;
		if (k->bytes > KAPI_MAX_PAGE)
			r = -E2BIG;
		else
			r = liststream_feed(k->ls, data, len, on_list_item, k);
		break;
	case WATCHSM_WATCH:
		atomic_store_explicit(&k->st_watching, true, memory_order_relaxed);
		events = k->watch_events;
		r = linebuf_feed(k->lb, data, len, on_watch_line, k);
		if (sestore_pending(k->store))
			(void)sestore_flush(k->store); /* once per chunk */
		if (k->watch_events != events)
			mark_success(k);
		break;
	}
	if (r < 0) {
		k->abort_err = r;
		return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
	}
	return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
	struct kapi *k = userp;

	(void)data;
	k->last_rx_ms = now_ms();
	return size * n;
}

/* ---- requests -------------------------------------------------------------------------- */

static int build_url(struct kapi *k, const struct watchsm_action *a)
{
	char rv[3 * WATCHSM_MAX_RV + 1], cont[3 * WATCHSM_MAX_CONTINUE + 1];
	const char *res = "serviceentries";
	int w;

	if (a->op == WATCHSM_DISCOVER) {
		w = snprintf(k->url, URL_CAP, "%s" GROUP_PATH, k->url_base);
		return w > 0 && w < URL_CAP ? 0 : -E2BIG;
	}
	if (kconf_escape(a->rv ? a->rv : "", rv, sizeof(rv)) < 0 ||
	    kconf_escape(a->cont ? a->cont : "", cont, sizeof(cont)) < 0)
		return -E2BIG;
	if (a->op == WATCHSM_WATCH)
		w = snprintf(k->url, URL_CAP,
			     "%s" GROUP_PATH "/%s/%s?watch=1&allowWatchBookmarks=true"
			     "&resourceVersion=%s&timeoutSeconds=%u",
			     k->url_base, k->version, res, rv, a->timeout_s);
	else if (a->cont)
		w = snprintf(k->url, URL_CAP, "%s" GROUP_PATH "/%s/%s?limit=%d&continue=%s",
			     k->url_base, k->version, res, WATCHSM_PAGE_LIMIT, cont);
	else if (a->limit)
		w = snprintf(k->url, URL_CAP, "%s" GROUP_PATH "/%s/%s?resourceVersion=%s&limit=%d",
			     k->url_base, k->version, res, rv, WATCHSM_PAGE_LIMIT);
	else
		w = snprintf(k->url, URL_CAP, "%s" GROUP_PATH "/%s/%s?resourceVersion=%s",
			     k->url_base, k->version, res, rv);
	return w > 0 && w < URL_CAP ? 0 : -E2BIG;
}

/* Sets up @h for the request @a. Returns 0, -ENOMEM, or -EINVAL when libcurl refused an
 * option (logged). */
static int setup_easy(struct kapi *k, CURL *h, const struct watchsm_action *a)
{
	const struct curlfn *cf = k->cf;
	char auth[KCONF_MAX_TOKEN + 32];
	CURLcode c = CURLE_OK;
	int w;

	k->hdrs = cf->slist_append(NULL, "Accept: application/json");
	w = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k->token);
	if (k->hdrs && w > 0 && (size_t)w < sizeof(auth)) {
		struct curl_slist *l = cf->slist_append(k->hdrs, auth);
		if (l)
			k->hdrs = l;
		else
			w = -1;
	}
	explicit_bzero(auth, sizeof(auth));
	if (!k->hdrs || w < 0)
		return -ENOMEM;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (c == CURLE_OK)                                                                 \
			c = cf->easy_setopt(h, (opt), (val));                                      \
	} while (0)
	SET(CURLOPT_URL, k->url);
	SET(CURLOPT_HTTPHEADER, k->hdrs);
	SET(CURLOPT_USERAGENT, "meshdns/" MESHDNS_VERSION);
	SET(CURLOPT_PRIVATE, (void *)k);
	SET(CURLOPT_ERRORBUFFER, k->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_VERBOSE, 0L); /* never: verbose output would show the Authorization header */
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_CAINFO, k->ca_path);
	SET(CURLOPT_CAPATH, (char *)NULL); /* only the cluster CA: not the distribution's CA path */
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_TCP_KEEPIDLE, KEEPALIVE_IDLE_S);
	SET(CURLOPT_TCP_KEEPINTVL, KEEPALIVE_INTVL_S);
	SET(CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)k);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)k);
	SET(CURLOPT_ACCEPT_ENCODING, "gzip");
	if (a->op == WATCHSM_WATCH)
		SET(CURLOPT_TIMEOUT_MS, ((long)a->timeout_s + WATCH_HARD_MARGIN_S) * 1000L);
	else if (a->op == WATCHSM_DISCOVER)
		SET(CURLOPT_TIMEOUT_MS, DISCOVERY_TIMEOUT_MS);
	else
		SET(CURLOPT_BUFFERSIZE, LIST_BUFFER_SIZE);
	if (k->fresh_next)
		SET(CURLOPT_FRESH_CONNECT, 1L);
#undef SET
	if (c != CURLE_OK) {
		log_error("k8s", "libcurl refused an option: %s", cf->easy_strerror(c));
		return -EINVAL;
	}
	/* Newer options: a libcurl without them still works. */
	(void)cf->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	(void)cf->easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 0L); /* a rotated ca.crt is seen */
	return 0;
}

static void on_watchdog(uv_timer_t *t);

static void free_headers(struct kapi *k)
{
	for (struct curl_slist *l = k->hdrs; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	k->cf->slist_free_all(k->hdrs);
	k->hdrs = NULL;
}

static void release_easy(struct kapi *k)
{
	CURL *h = k->easy;

	k->easy = NULL;
	uv_timer_stop(&k->watchdog);
	uv_idle_stop(&k->resume);
	if (h) {
		kcurl_remove(k->kc, h);
		k->cf->easy_cleanup(h);
	}
	free_headers(k);
}

static void schedule(struct kapi *k, struct watchsm_action a);

static void start_request(struct kapi *k)
{
	const struct watchsm_action *a = &k->next;
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_TRANSPORT };
	uint64_t now = now_ms();
	CURL *h;
	int r;

	k->op = a->op;
	k->status = 0;
	k->abort_err = 0;
	k->bytes = 0;
	k->slice_bytes = 0;
	k->body_len = 0;
	k->body[0] = 0;
	k->errbuf[0] = 0;
	k->ev_error = false;
	k->watch_events = 0;
	k->idle_ms = a->idle_ms;
	k->last_rx_ms = now;
	linebuf_reset(k->lb);
	liststream_reset(k->ls);
	if (a->op == WATCHSM_LIST && a->first_page)
		store_begin(k);
	r = build_url(k, a);
	if (r < 0) {
		log_error("k8s", "request URL too long");
		goto fail;
	}
	h = k->cf->easy_init();
	if (!h)
		goto fail;
	k->easy = h;
	r = setup_easy(k, h, a);
	if (r < 0)
		goto fail;
	if (kcurl_add(k->kc, h) < 0)
		goto fail;
	k->fresh_next = false;
	watchsm_began(k->sm, now);
	uv_timer_start(&k->watchdog, on_watchdog, k->idle_ms, 0);
	if (a->op == WATCHSM_WATCH)
		log_debug("k8s", "watch from resourceVersion %s (timeoutSeconds %u)", a->rv,
			  a->timeout_s);
	else
		log_debug("k8s", "GET %s", k->url);
	return;
fail:
	release_easy(k);
	schedule(k, watchsm_failed(k->sm, now, &f));
}

static void on_next(uv_timer_t *t)
{
	start_request(t->data);
}

static void schedule(struct kapi *k, struct watchsm_action a)
{
	k->next = a;
	if (a.fresh_connection)
		k->fresh_next = true;
	if (a.op != WATCHSM_LIST)
		store_abort(k);
	publish_stats(k);
	uv_timer_start(&k->next_timer, on_next, a.delay_ms, 0);
}

static void on_watchdog(uv_timer_t *t)
{
	struct kapi *k = t->data;
	uint64_t idle = now_ms() - k->last_rx_ms;

	if (!k->easy)
		return;
	if (idle < k->idle_ms) {
		uv_timer_start(&k->watchdog, on_watchdog, k->idle_ms - idle, 0);
		return;
	}
	k->abort_err = -ETIMEDOUT;
	finish(k, CURLE_OPERATION_TIMEDOUT);
}

/* ---- results --------------------------------------------------------------------------- */

static struct watchsm_action group_absent(struct kapi *k, uint64_t now)
{
	store_abort(k);
	sestore_replace_begin(k->store);
	(void)sestore_replace_commit(k->store);
	if (!k->absent)
		log_info("k8s",
			 "networking.istio.io is not served: no ServiceEntries (checking "
			 "again every %d s)",
			 WATCHSM_ABSENT_POLL_MS / 1000);
	k->absent = true;
	atomic_store_explicit(&k->st_absent, true, memory_order_relaxed);
	atomic_store_explicit(&k->st_synced, true, memory_order_relaxed);
	mark_success(k);
	return watchsm_discovered(k->sm, now, NULL);
}

/* Picks v1 > v1beta1 > v1alpha3 from an APIGroup document. Returns 0, -ENOENT when none of
 * them is served, -EINVAL for a document that is not JSON. */
static int pick_version(const char *body, size_t len, char *out, size_t cap)
{
	static const char *const pref[] = { "v1", "v1beta1", "v1alpha3" };
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *v;
	int best = -1;

	if (!root)
		return -EINVAL;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "versions"))
	{
		const char *s =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(v, "version"));
		for (int i = 0; s && i < 3; i++)
			if (strcmp(s, pref[i]) == 0 && (best < 0 || i < best))
				best = i;
	}
	cJSON_Delete(root);
	if (best < 0)
		return -ENOENT;
	snprintf(out, cap, "%s", pref[best]);
	return 0;
}

static bool discovery_done(struct kapi *k, uint64_t now, struct watchsm_action *a)
{
	char v[sizeof(k->version)];
	int r = pick_version(k->body, k->body_len, v, sizeof(v));

	if (r == -EINVAL)
		return false;
	if (r == -ENOENT) {
		*a = group_absent(k, now);
		return true;
	}
	if (strcmp(v, k->version) != 0 || k->absent)
		log_info("k8s", "ServiceEntries from networking.istio.io/%s", v);
	memcpy(k->version, v, sizeof(v));
	k->absent = false;
	atomic_store_explicit(&k->st_absent, false, memory_order_relaxed);
	*a = watchsm_discovered(k->sm, now, k->version);
	return true;
}

static int on_skeleton_item(void *arg, const struct se_obj *obj)
{
	(void)arg;
	(void)obj;
	return -EINVAL; /* the items were taken out: a document that still has one is no list */
}

static bool list_page_done(struct kapi *k, uint64_t now, struct watchsm_action *a)
{
	static struct se_list_meta meta; /* 4 KiB: the loop thread only */
	const char *skel;
	size_t len;
	int r;

	r = liststream_finish(k->ls, &skel, &len);
	if (r == 0)
		r = sedecode_list(skel, len, k->obj, on_skeleton_item, k, &meta);
	if (r == 0 && meta.single)
		r = -EINVAL;
	liststream_reset(k->ls);
	if (r < 0) {
		log_warn_rl(&k->rl_data, now, "k8s", "list page from %s could not be decoded: %s",
			    k->url_base, r == -E2BIG ? "continue token too long" : "not a list");
		return false;
	}
	k->list_pages++;
	*a = watchsm_list_page(k->sm, now, meta.rv, meta.cont);
	if (meta.cont[0])
		return true;
	r = sestore_replace_commit(k->store);
	k->replacing = false;
	if (r < 0)
		log_error("k8s", "cannot publish the table: %s (retried with the next event)",
			  strerror(-r));
	atomic_store_explicit(&k->st_synced, true, memory_order_relaxed);
	mark_success(k);
	log_info("k8s", "listed %zu ServiceEntries at resourceVersion %s (%zu page%s, %llu ms)",
		 k->list_items, meta.rv, k->list_pages, k->list_pages == 1 ? "" : "s",
		 (unsigned long long)(now - k->list_started_ms));
	return true;
}

static void log_transport(struct kapi *k, CURLcode res, uint64_t now)
{
	const char *why = k->errbuf[0] ? k->errbuf : k->cf->easy_strerror(res);

	if (res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE ||
	    res == CURLE_SSL_CONNECT_ERROR)
		log_warn_rl(&k->rl_tls, now, "k8s",
			    "TLS with the API server %s failed: its certificate cannot be verified "
			    "with the CA in %s (%s)",
			    k->url_base, k->ca_path, why);
	else
		log_warn_rl(&k->rl_net, now, "k8s", "cannot reach the API server %s: %s",
			    k->url_base, why);
}

static void log_http(struct kapi *k, long status, uint32_t retry_after, uint64_t now)
{
	const char *what = k->op == WATCHSM_WATCH  ? "watch"
			   : k->op == WATCHSM_LIST ? "list"
						   : "discovery";

	if (status == 403)
		log_error("k8s",
			  "%s: 403 Forbidden: the service account may not get/list/watch "
			  "serviceentries.networking.istio.io (RBAC): keeping the last table",
			  what);
	else if (status == 401)
		log_warn_rl(&k->rl_401, now, "k8s", "%s: 401 Unauthorized: re-reading the token",
			    what);
	else if (status == 410)
		log_info("k8s", "%s: 410 Gone: resourceVersion too old, listing again", what);
	else if (retry_after)
		log_warn_rl(&k->rl_http, now, "k8s", "%s: HTTP %ld, Retry-After %u s", what, status,
			    retry_after);
	else
		log_warn_rl(&k->rl_http, now, "k8s", "%s: HTTP %ld", what, status);
}

static void finish(struct kapi *k, CURLcode res)
{
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP };
	struct watchsm_action a;
	uint64_t now = now_ms();
	long status = 0;
	curl_off_t ra = 0;
	bool done = false;

	k->cf->easy_getinfo(k->easy, CURLINFO_RESPONSE_CODE, &status);
	if (k->cf->easy_getinfo(k->easy, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra < 0)
		ra = 0;
	release_easy(k);
	atomic_store_explicit(&k->st_watching, false, memory_order_relaxed);
	count_code(k, status);
	f.retry_after_s = ra > UINT32_MAX ? UINT32_MAX : (uint32_t)ra;

	if (k->abort_err == -ETIMEDOUT) {
		log_warn("k8s", "%s: no byte for %u ms: connection presumed dead, retrying",
			 k->op == WATCHSM_WATCH ? "watch" : "request", k->idle_ms);
		f.kind = WATCHSM_FAIL_DEAD;
	} else if (k->ev_error) {
		log_info("k8s", "watch: ERROR event %d %s: %s", k->ev.code, k->ev.reason,
			 k->ev.message);
		f.status = k->ev.code ? k->ev.code : 500;
		f.too_large = strstr(k->ev.message, "Too large resource version") != NULL;
		f.retry_after_s = 0;
	} else if (k->abort_err) {
		log_warn_rl(&k->rl_data, now, "k8s", "%s response unusable: %s",
			    k->op == WATCHSM_LIST ? "list" : "watch",
			    k->abort_err == -E2BIG ? "over the size cap" : strerror(-k->abort_err));
		f.kind = WATCHSM_FAIL_BAD_DATA;
	} else if (status == 200 && k->op == WATCHSM_WATCH) {
		if (res != CURLE_OK)
			log_info("k8s", "watch stream closed after %llu events: %s",
				 (unsigned long long)k->watch_events,
				 k->errbuf[0] ? k->errbuf : k->cf->easy_strerror(res));
		a = watchsm_watch_ended(k->sm, now);
		done = true;
	} else if (status == 200 && res == CURLE_OK) {
		done = k->op == WATCHSM_DISCOVER ? discovery_done(k, now, &a)
						 : list_page_done(k, now, &a);
		f.kind = WATCHSM_FAIL_BAD_DATA;
	} else if (res != CURLE_OK && (status == 0 || status == 200)) {
		log_transport(k, res, now);
		f.kind = WATCHSM_FAIL_TRANSPORT;
	} else if (k->op == WATCHSM_DISCOVER && status == 404) {
		a = group_absent(k, now);
		done = true;
	} else {
		log_http(k, status, f.retry_after_s, now);
		f.status = (int)status;
		f.too_large = strstr(k->body, "ResourceVersionTooLarge") ||
			      strstr(k->body, "Too large resource version");
		if (status == 401)
			reload_token(k, "after a 401");
	}
	if (!done)
		a = watchsm_failed(k->sm, now, &f);
	schedule(k, a);
}

/* ---- start and stop -------------------------------------------------------------------- */

static int configure(struct kapi *k, const struct kapi_opts *opts)
{
	const char *tok = opts->token_file ? opts->token_file : KCONF_TOKEN_PATH;
	const char *env;
	int r;

	r = kconf_api_url(opts->api_url, getenv("KUBERNETES_SERVICE_HOST"),
			  getenv("KUBERNETES_SERVICE_PORT"), k->url_base, sizeof(k->url_base));
	if (r == -ENOENT) {
		log_error("k8s", "not in a cluster: KUBERNETES_SERVICE_HOST and "
				 "KUBERNETES_SERVICE_PORT are unset; give --kube-api");
		return r;
	}
	if (r < 0) {
		log_error("k8s", "bad API server address (KUBERNETES_SERVICE_HOST/PORT or "
				 "--kube-api)");
		return r;
	}
	if (snprintf(k->token_path, sizeof(k->token_path), "%s", tok) >=
		    (int)sizeof(k->token_path) ||
	    kconf_ca_path(opts->ca_file, tok, k->ca_path, sizeof(k->ca_path)) < 0) {
		log_error("k8s", "token or CA path too long");
		return -E2BIG;
	}
	if (access(k->ca_path, R_OK) != 0) {
		r = -errno;
		log_error("k8s",
			  "cannot read the CA file %s: %s (TLS to the API server is always "
			  "verified; give --kube-ca-file)",
			  k->ca_path, strerror(-r));
		return r;
	}
	r = kconf_read_token(k->token_path, k->token, KCONF_MAX_TOKEN);
	if (r < 0) {
		log_error("k8s", "cannot read the token file %s: %s (give --kube-token-file)",
			  k->token_path, r == -ENODATA ? "empty" : strerror(-r));
		return r;
	}
	env = getenv("MESHDNS_KUBE_IDLE_TIMEOUT_MS");
	if (env && env[0]) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end || v <= 0 || v > 86400000L) {
			log_error("k8s", "MESHDNS_KUBE_IDLE_TIMEOUT_MS: expected milliseconds");
			return -EINVAL;
		}
		k->idle_override_ms = (uint32_t)v;
	}
	return 0;
}

static int setup_curl(struct kapi *k)
{
	char err[256];
	CURLcode c;

	k->cf = curlfn_load(CURLFN_SONAME, err, sizeof(err));
	if (!k->cf) {
		log_error("k8s", "--serviceentries kubernetes needs libcurl: %s", err);
		return -ELIBACC;
	}
	c = k->cf->global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK) {
		log_error("k8s", "libcurl: %s", k->cf->easy_strerror(c));
		k->cf = NULL;
		return -EIO;
	}
	return kcurl_new(k->loop, k->cf, on_done, k, &k->kc);
}

int kapi_start(uv_loop_t *loop, const struct kapi_opts *opts, struct sestore *store,
	       struct kapi **out)
{
	struct watchsm_opts sopts = { .rand = rand_u32 };
	struct kapi *k = calloc(1, sizeof(*k));
	int r = -ENOMEM;

	if (!k)
		return -ENOMEM;
	k->loop = loop;
	k->store = store;
	struct log_ratelimit *rls[] = { &k->rl_token, &k->rl_line, &k->rl_data, &k->rl_tls,
					&k->rl_net,   &k->rl_401,  &k->rl_http };
	for (size_t i = 0; i < sizeof(rls) / sizeof(rls[0]); i++)
		*rls[i] = (struct log_ratelimit)LOG_RATELIMIT_INIT(60000, 5);
	k->token = calloc(1, KCONF_MAX_TOKEN);
	k->token_tmp = calloc(1, KCONF_MAX_TOKEN);
	k->url = malloc(URL_CAP);
	k->body = malloc(KAPI_MAX_SMALL_BODY + 1);
	k->obj = malloc(sizeof(*k->obj));
	k->lb = linebuf_new(KAPI_MAX_ITEM);
	k->ls = liststream_new(KAPI_MAX_ITEM, MAX_SKELETON);
	if (!k->token || !k->token_tmp || !k->url || !k->body || !k->obj || !k->lb || !k->ls)
		goto fail;
	r = configure(k, opts);
	if (r < 0)
		goto fail;
	sopts.idle_ms = k->idle_override_ms;
	k->sm = watchsm_new(&sopts);
	if (!k->sm) {
		r = -ENOMEM;
		goto fail;
	}
	r = setup_curl(k);
	if (r < 0)
		goto fail;

	/* from here on nothing fails: the handles are closed by kapi_stop */
	uv_idle_init(loop, &k->resume);
	k->resume.data = k;
	k->live++;
	uv_timer_t *timers[] = { &k->next_timer, &k->token_timer, &k->watchdog };
	for (size_t i = 0; i < 3; i++) {
		uv_timer_init(loop, timers[i]);
		timers[i]->data = k;
		k->live++;
	}
	uv_timer_start(&k->token_timer, on_token_timer, KAPI_TOKEN_REREAD_MS, KAPI_TOKEN_REREAD_MS);
	log_info("k8s", "API server %s, CA %s, token %s (%s)", k->url_base, k->ca_path,
		 k->token_path, k->cf->version_info(CURLVERSION_NOW)->ssl_version);
	schedule(k, watchsm_start(k->sm, now_ms()));
	*out = k;
	return 0;
fail:
	if (k->kc)
		kcurl_close(k->kc, NULL, NULL); /* no handle of ours yet: frees itself */
	if (k->cf)
		k->cf->global_cleanup();
	free_all(k);
	return r;
}

void kapi_stop(struct kapi *k)
{
	if (!k || k->closing)
		return;
	k->closing = true;
	release_easy(k);
	if (k->replacing) {
		sestore_replace_abort(k->store);
		k->replacing = false;
	}
	k->live++;
	kcurl_close(k->kc, on_kcurl_closed, k);
	uv_close((uv_handle_t *)&k->next_timer, on_handle_closed);
	uv_close((uv_handle_t *)&k->token_timer, on_handle_closed);
	uv_close((uv_handle_t *)&k->watchdog, on_handle_closed);
	uv_close((uv_handle_t *)&k->resume, on_handle_closed);
}

void kapi_get_status(const struct kapi *k, struct kapi_status *st)
{
	struct kapi *m = (struct kapi *)k; /* atomic loads need a non-const object in C11 */

	memset(st, 0, sizeof(*st));
	st->synced = atomic_load_explicit(&m->st_synced, memory_order_relaxed);
	st->group_absent = atomic_load_explicit(&m->st_absent, memory_order_relaxed);
	st->watching = atomic_load_explicit(&m->st_watching, memory_order_relaxed);
	st->last_success_unix = atomic_load_explicit(&m->st_last_success, memory_order_relaxed);
	st->watch_restarts = atomic_load_explicit(&m->st_restarts, memory_order_relaxed);
	st->relists = atomic_load_explicit(&m->st_relists, memory_order_relaxed);
	st->backoff_ms = atomic_load_explicit(&m->st_backoff, memory_order_relaxed);
	for (int i = 0; i < KAPI_CODE_COUNT; i++)
		st->requests[i] = atomic_load_explicit(&m->st_requests[i], memory_order_relaxed);
}
