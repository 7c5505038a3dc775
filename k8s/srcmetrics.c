/* Metrics of the ServiceEntry store and its source. See srcmetrics.h. */
#include "k8s/srcmetrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent/http.h"
#include "agent/metrics.h"
#include "k8s/filesrc.h"
#include "k8s/kapi.h"
#include "k8s/sestore.h"

#define COPY_MS 250 /* how stale a scrape may be */

struct srcmetrics {
	uv_timer_t timer;
	const struct sestore *store;
	const struct filesrc *file;
	const struct kapi *kapi;
	pthread_mutex_t lock; /* guards the copies below */
	struct sestore_stats st;
	struct filesrc_status fs;
};

static const char *const families[] = {
	"meshdns_serviceentries",
	"meshdns_relists_total",
	"meshdns_rejected_total",
	"meshdns_sync_last_success_timestamp_seconds",
	"meshdns_watch_restarts_total",
	"meshdns_kube_requests_total",
	"meshdns_kube_backoff_seconds",
	NULL,
};

static void copy(struct srcmetrics *m)
{
	struct sestore_stats st;
	struct filesrc_status fs;

	memset(&fs, 0, sizeof fs);
	sestore_get_stats(m->store, &st);
	if (m->file)
		filesrc_get_status(m->file, &fs);
	pthread_mutex_lock(&m->lock);
	m->st = st;
	m->fs = fs;
	pthread_mutex_unlock(&m->lock);
}

static void on_copy(uv_timer_t *t)
{
	copy(t->data);
}

/* Runs on the HTTP thread. */
static void provide(struct metrics_out *o, void *arg)
{
	struct srcmetrics *m = arg;
	struct sestore_stats st;
	struct filesrc_status fs;
	struct kapi_status ks;
	double last = 0;
	uint64_t relists, restarts = 0;

	pthread_mutex_lock(&m->lock);
	st = m->st;
	fs = m->fs;
	pthread_mutex_unlock(&m->lock);
	memset(&ks, 0, sizeof ks);
	if (m->kapi)
		kapi_get_status(m->kapi, &ks);

	if (m->kapi) {
		last = (double)ks.last_success_unix;
		relists = ks.relists;
		restarts = ks.watch_restarts;
	} else {
		last = (double)fs.last_ok_unix;
		relists = st.relists > 0 ? st.relists - 1 : 0; /* the first read is no relist */
	}
	metrics_family(o, "meshdns_serviceentries", "gauge",
		       "ServiceEntries that count (not ignored).");
	metrics_sample(o, "meshdns_serviceentries", NULL, 0, st.entries);
	metrics_family(o, "meshdns_relists_total", "counter",
		       "Full ServiceEntry lists (or file re-reads) applied after the first one.");
	metrics_sample(o, "meshdns_relists_total", NULL, 0, relists);
	metrics_family(o, "meshdns_rejected_total", "counter",
		       "ServiceEntries, hosts or addresses rejected, by reason.");
	for (int r = 0; r < SE_REJECT_COUNT; r++) {
		struct metrics_label l = { "reason", sedecode_reject_name((enum se_reject)r) };
		metrics_sample(o, "meshdns_rejected_total", &l, 1, st.rejected[r]);
	}
	metrics_family(o, "meshdns_sync_last_success_timestamp_seconds", "gauge",
		       "Unix time of the last successful ServiceEntry list, watch event or file "
		       "read (0: never).");
	metrics_sample_f(o, "meshdns_sync_last_success_timestamp_seconds", NULL, 0, last);
	metrics_family(o, "meshdns_watch_restarts_total", "counter",
		       "ServiceEntry watches started again (closed, failed or silent too long).");
	metrics_sample(o, "meshdns_watch_restarts_total", NULL, 0, restarts);
	if (!m->kapi)
		return;
	metrics_family(o, "meshdns_kube_requests_total", "counter",
		       "Requests to the Kubernetes API, by result.");
	for (int c = 0; c < KAPI_CODE_COUNT; c++) {
		struct metrics_label l = { "code", kapi_code_name(c) };
		metrics_sample(o, "meshdns_kube_requests_total", &l, 1, ks.requests[c]);
	}
	metrics_family(o, "meshdns_kube_backoff_seconds", "gauge",
		       "Delay before the next request to the Kubernetes API after failures (0 "
		       "when healthy).");
	metrics_sample_f(o, "meshdns_kube_backoff_seconds", NULL, 0, (double)ks.backoff_ms / 1000);
}

int srcmetrics_start(struct uv_loop_s *loop, struct http *h, const struct sestore *store,
		     const struct filesrc *file, const struct kapi *kapi, struct srcmetrics **out)
{
	struct srcmetrics *m;
	int r;

	*out = NULL;
	if (!h)
		return 0;
	m = calloc(1, sizeof *m);
	if (!m)
		return -ENOMEM;
	m->store = store;
	m->file = file;
	m->kapi = kapi;
	pthread_mutex_init(&m->lock, NULL);
	copy(m);
	r = http_add_metrics(h, families, provide, m);
	if (r < 0) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return r;
	}
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	uv_timer_start(&m->timer, on_copy, COPY_MS, COPY_MS);
	*out = m;
	return 0;
}

static void on_closed(uv_handle_t *hd)
{
	struct srcmetrics *m = hd->data;

	pthread_mutex_destroy(&m->lock);
	free(m);
}

void srcmetrics_stop(struct srcmetrics *m)
{
	if (m)
		uv_close((uv_handle_t *)&m->timer, on_closed);
}
