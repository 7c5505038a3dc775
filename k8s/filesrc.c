/* The file source of ServiceEntries. See filesrc.h. */
#include "k8s/filesrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "agent/log.h"
#include "agent/wire.h"
#include "k8s/sedecode.h"
#include "k8s/sestore.h"

#define POLL_MS	    500
#define DEBOUNCE_MS 50

struct filesrc {
	uv_loop_t *loop;
	struct sestore *store;
	uv_fs_event_t dir_event;
	uv_fs_poll_t poll;
	uv_timer_t debounce;
	uv_work_t work;
	int live; /* handles not yet closed, plus a read in flight */
	bool reading;
	bool again; /* a change came during the read */
	bool closing;
	char *path;
	char *dir;
	/* the read in flight: filled in the thread pool */
	char *buf;
	size_t len;
	int err;
	/* the last content applied */
	bool have_last;
	uint64_t last_hash;
	struct filesrc_status status;
	struct se_obj *obj; /* decoding scratch */
};

static void maybe_free(struct filesrc *f)
{
	if (--f->live > 0)
		return;
	free(f->buf);
	free(f->obj);
	free(f->path);
	free(f->dir);
	free(f);
}

static void on_close(uv_handle_t *h)
{
	maybe_free(h->data);
}

/* Thread pool: reads the whole file. */
static void on_read_work(uv_work_t *w)
{
	struct filesrc *f = w->data;
	struct stat st;
	size_t got = 0;
	ssize_t n;
	int fd;

	f->buf = NULL;
	f->len = 0;
	f->err = 0;
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		f->err = -errno;
		return;
	}
	if (fstat(fd, &st) < 0) {
		f->err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)FILESRC_MAX_BYTES) {
		f->err = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		goto out;
	}
	f->buf = malloc((size_t)st.st_size + 1);
	if (!f->buf) {
		f->err = -ENOMEM;
		goto out;
	}
	/* read to the end (the file may have grown since fstat, up to the size we hold) */
	while (got < (size_t)st.st_size) {
		n = read(fd, f->buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			f->err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	f->len = got;
	f->buf[got] = 0;
out:
	close(fd);
}

static int on_item(void *arg, const struct se_obj *o)
{
	return sestore_upsert(arg, o);
}

/* Loop thread: replaces the store from the bytes read. */
static int apply(struct filesrc *f)
{
	struct se_list_meta meta;
	uint64_t h = wire_hash(f->buf, f->len);
	int r;

	if (f->have_last && h == f->last_hash)
		return 0;
	sestore_replace_begin(f->store);
	r = sedecode_list(f->buf, f->len, f->obj, on_item, f->store, &meta);
	if (r < 0) {
		sestore_replace_abort(f->store);
		(void)sestore_flush(f->store);
		return r;
	}
	r = sestore_replace_commit(f->store);
	if (r < 0)
		return r;
	f->have_last = true;
	f->last_hash = h;
	log_info("mesh", "read %s: %zu ServiceEntries (%zu bad)", f->path, meta.items,
		 meta.bad_items);
	return 0;
}

static void start_read(struct filesrc *f);

static void on_read_done(uv_work_t *w, int status)
{
	struct filesrc *f = w->data;
	int r = status < 0 ? status : f->err;

	f->reading = false;
	if (!f->closing) {
		if (r == 0)
			r = apply(f);
		if (r == 0) {
			f->status.reads_ok++;
			f->status.synced = true;
			uv_timeval64_t tv;
			if (uv_gettimeofday(&tv) == 0)
				f->status.last_ok_unix = tv.tv_sec;
		} else {
			f->status.reads_failed++;
			log_warn("mesh", "cannot use %s (%s); keeping the last table", f->path,
				 r == -EINVAL ? "not a ServiceEntry list or object" : strerror(-r));
		}
	}
	free(f->buf);
	f->buf = NULL;
	if (f->closing) {
		maybe_free(f);
		return;
	}
	f->live--; /* the read held one reference */
	if (f->again) {
		f->again = false;
		start_read(f);
	}
}

static void start_read(struct filesrc *f)
{
	int r;

	if (f->closing)
		return;
	if (f->reading) {
		f->again = true;
		return;
	}
	r = uv_queue_work(f->loop, &f->work, on_read_work, on_read_done);
	if (r < 0) {
		log_error("mesh", "cannot queue a read of %s: %s", f->path, uv_strerror(r));
		return;
	}
	f->reading = true;
	f->live++;
}

static void on_debounce(uv_timer_t *t)
{
	start_read(t->data);
}

static void schedule_read(struct filesrc *f)
{
	if (!f->closing)
		uv_timer_start(&f->debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void on_dir_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
	(void)filename; /* ConfigMap swaps a "..data" link, not our name: any change counts */
	(void)events;
	if (status < 0) {
		log_warn("mesh", "watching %s: %s", ((struct filesrc *)h->data)->dir,
			 uv_strerror(status));
		return;
	}
	schedule_read(h->data);
}

static void on_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
	(void)prev;
	(void)curr;
	if (status < 0) {
		log_debug("mesh", "stat %s: %s", ((struct filesrc *)h->data)->path,
			  uv_strerror(status));
		return;
	}
	schedule_read(h->data);
}

int filesrc_start(uv_loop_t *loop, const char *path, struct sestore *store, struct filesrc **out)
{
	struct filesrc *f = calloc(1, sizeof(*f));
	char *slash;
	int r = -ENOMEM;

	if (!f)
		return -ENOMEM;
	f->loop = loop;
	f->store = store;
	f->path = strdup(path);
	f->dir = strdup(path);
	f->obj = malloc(sizeof(*f->obj));
	if (!f->path || !f->dir || !f->obj)
		goto fail;
	slash = strrchr(f->dir, '/');
	if (!slash)
		memcpy(f->dir, ".", 2);
	else if (slash == f->dir)
		slash[1] = 0;
	else
		*slash = 0;
	f->dir_event.data = f->poll.data = f->debounce.data = f->work.data = f;
	uv_fs_event_init(loop, &f->dir_event);
	uv_fs_poll_init(loop, &f->poll);
	uv_timer_init(loop, &f->debounce);
	f->live = 3;
	r = uv_fs_event_start(&f->dir_event, on_dir_event, f->dir, 0);
	if (r == 0)
		r = uv_fs_poll_start(&f->poll, on_poll, f->path, POLL_MS);
	if (r < 0) {
		log_error("mesh", "cannot watch %s: %s", f->path, uv_strerror(r));
		filesrc_stop(f);
		return r;
	}
	start_read(f);
	*out = f;
	return 0;
fail:
	free(f->obj);
	free(f->dir);
	free(f->path);
	free(f);
	return r;
}

void filesrc_stop(struct filesrc *f)
{
	if (!f || f->closing)
		return;
	f->closing = true;
	uv_close((uv_handle_t *)&f->dir_event, on_close);
	uv_close((uv_handle_t *)&f->poll, on_close);
	uv_close((uv_handle_t *)&f->debounce, on_close);
	if (f->reading)
		uv_cancel((uv_req_t *)&f->work); /* on_read_done still runs, with UV_ECANCELED */
}

int filesrc_start_none(struct sestore *store)
{
	sestore_replace_begin(store);
	return sestore_replace_commit(store);
}

void filesrc_get_status(const struct filesrc *f, struct filesrc_status *st)
{
	*st = f->status;
}
