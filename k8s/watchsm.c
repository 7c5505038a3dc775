/* The list/watch state machine. See watchsm.h for the rules. */
#include "k8s/watchsm.h"

#include <stdlib.h>
#include <string.h>

struct watchsm {
	struct watchsm_opts opts;
	enum watchsm_op op;		     /* the request of the last action */
	char last_rv[WATCHSM_MAX_RV + 1];    /* the last resourceVersion seen */
	char list_rv[WATCHSM_MAX_RV + 1];    /* the RV the current list started with */
	bool list_limit;		     /* the current list pages */
	char cont[WATCHSM_MAX_CONTINUE + 1]; /* the token of the current page, "" on the first */
	bool listed;			     /* a list completed once */
	uint32_t backoff_n;		     /* failures counted since the last reset */
	bool failed_before;
	uint64_t last_failure_ms;
	bool last_was_401;
	uint64_t began_ms; /* the current request started */
	uint64_t events;   /* events of the current watch */
	struct watchsm_stats stats;
};

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;

	memcpy(dst, src ? src : "", n);
	dst[n] = 0;
}

struct watchsm *watchsm_new(const struct watchsm_opts *opts)
{
	struct watchsm *sm = calloc(1, sizeof(*sm));

	if (!sm)
		return NULL;
	sm->opts = *opts;
	return sm;
}

void watchsm_free(struct watchsm *sm)
{
	free(sm);
}

static uint32_t draw(struct watchsm *sm)
{
	return sm->opts.rand ? sm->opts.rand(sm->opts.rand_arg) : 0;
}

static uint32_t idle_for(const struct watchsm *sm, uint32_t other_ms)
{
	return sm->opts.idle_ms ? sm->opts.idle_ms : other_ms;
}

static struct watchsm_action act_discover(struct watchsm *sm, uint64_t delay_ms)
{
	struct watchsm_action a = { .op = WATCHSM_DISCOVER, .delay_ms = delay_ms };

	sm->op = WATCHSM_DISCOVER;
	a.idle_ms = idle_for(sm, WATCHSM_IDLE_OTHER_MS);
	return a;
}

/* The first page of a list at @rv ("0", the last RV, or "" for a consistent read). */
static struct watchsm_action act_list_first(struct watchsm *sm, uint64_t delay_ms, const char *rv,
					    bool limit)
{
	struct watchsm_action a = { .op = WATCHSM_LIST, .delay_ms = delay_ms, .first_page = true };

	if (rv != sm->list_rv)
		copy_str(sm->list_rv, sizeof(sm->list_rv), rv);
	sm->list_limit = limit;
	sm->cont[0] = 0;
	sm->op = WATCHSM_LIST;
	a.rv = sm->list_rv;
	a.limit = limit;
	a.idle_ms = idle_for(sm, WATCHSM_IDLE_OTHER_MS);
	return a;
}

/* The page of the token in sm->cont. */
static struct watchsm_action act_list_next(struct watchsm *sm, uint64_t delay_ms)
{
	struct watchsm_action a = { .op = WATCHSM_LIST, .delay_ms = delay_ms };

	sm->op = WATCHSM_LIST;
	a.cont = sm->cont;
	a.limit = true;
	a.idle_ms = idle_for(sm, WATCHSM_IDLE_OTHER_MS);
	return a;
}

static struct watchsm_action act_watch(struct watchsm *sm, uint64_t delay_ms)
{
	struct watchsm_action a = { .op = WATCHSM_WATCH, .delay_ms = delay_ms };
	uint32_t span = WATCHSM_WATCH_MAX_S - WATCHSM_WATCH_MIN_S + 1;

	sm->op = WATCHSM_WATCH;
	a.rv = sm->last_rv;
	a.timeout_s = WATCHSM_WATCH_MIN_S + draw(sm) % span;
	a.idle_ms = idle_for(sm, a.timeout_s * 1000u + WATCHSM_IDLE_MARGIN_MS);
	return a;
}

/* The request of the last action again. */
static struct watchsm_action act_same(struct watchsm *sm, uint64_t delay_ms)
{
	switch (sm->op) {
	case WATCHSM_LIST:
		if (sm->cont[0])
			return act_list_next(sm, delay_ms);
		return act_list_first(sm, delay_ms, sm->list_rv, sm->list_limit);
	case WATCHSM_WATCH:
		return act_watch(sm, delay_ms);
	case WATCHSM_DISCOVER:
	default:
		return act_discover(sm, delay_ms);
	}
}

/* Rules 13 and 14: the delay after a failure at @now_ms. */
static uint64_t backoff(struct watchsm *sm, uint64_t now_ms, uint32_t retry_after_s)
{
	uint64_t base, delay;

	if (!sm->failed_before || now_ms - sm->last_failure_ms > WATCHSM_BACKOFF_RESET_MS)
		sm->backoff_n = 0;
	sm->failed_before = true;
	sm->last_failure_ms = now_ms;
	base = (uint64_t)WATCHSM_BACKOFF_INITIAL_MS << sm->backoff_n;
	if (base >= WATCHSM_BACKOFF_CAP_MS)
		base = WATCHSM_BACKOFF_CAP_MS;
	else
		sm->backoff_n++;
	delay = base + ((base * draw(sm)) >> 32);
	if (retry_after_s) {
		uint64_t ra = (uint64_t)(retry_after_s < WATCHSM_RETRY_AFTER_MAX_S
						 ? retry_after_s
						 : WATCHSM_RETRY_AFTER_MAX_S) *
			      1000u;
		if (ra > delay)
			delay = ra;
	}
	sm->stats.failures++;
	sm->stats.backoff_ms = delay;
	return delay;
}

static void healthy(struct watchsm *sm)
{
	sm->last_was_401 = false;
	sm->stats.backoff_ms = 0;
}

struct watchsm_action watchsm_start(struct watchsm *sm, uint64_t now_ms)
{
	(void)now_ms;
	return act_discover(sm, 0);
}

void watchsm_began(struct watchsm *sm, uint64_t now_ms)
{
	sm->began_ms = now_ms;
	sm->events = 0;
}

struct watchsm_action watchsm_discovered(struct watchsm *sm, uint64_t now_ms, const char *version)
{
	(void)now_ms;
	healthy(sm);
	if (!version) {
		sm->stats.synced = true;
		sm->listed = false; /* the table is empty now: when the group comes back, list */
		sm->last_rv[0] = 0;
		return act_discover(sm, WATCHSM_ABSENT_POLL_MS);
	}
	if (sm->listed)
		sm->stats.relists++;
	return act_list_first(sm, 0, "0", true);
}

struct watchsm_action watchsm_list_page(struct watchsm *sm, uint64_t now_ms, const char *rv,
					const char *cont)
{
	(void)now_ms;
	healthy(sm);
	if (cont && cont[0]) {
		copy_str(sm->cont, sizeof(sm->cont), cont);
		return act_list_next(sm, 0);
	}
	sm->cont[0] = 0;
	copy_str(sm->last_rv, sizeof(sm->last_rv), rv);
	sm->listed = true;
	sm->stats.synced = true;
	return act_watch(sm, 0);
}

void watchsm_event(struct watchsm *sm, uint64_t now_ms, const char *rv)
{
	(void)now_ms;
	if (rv && rv[0])
		copy_str(sm->last_rv, sizeof(sm->last_rv), rv);
	sm->events++;
	healthy(sm);
}

struct watchsm_action watchsm_watch_ended(struct watchsm *sm, uint64_t now_ms)
{
	sm->stats.watch_restarts++;
	if (sm->events == 0 && now_ms - sm->began_ms < WATCHSM_VERY_SHORT_MS)
		return act_watch(sm, backoff(sm, now_ms, 0));
	return act_watch(sm, 0);
}

static struct watchsm_action failed_list(struct watchsm *sm, uint64_t now_ms,
					 const struct watchsm_failure *f)
{
	bool http = f->kind == WATCHSM_FAIL_HTTP;
	bool continuation = sm->cont[0] != 0;

	if (http && f->status == 410 && continuation) {
		sm->stats.relists++;
		return act_list_first(sm, 0, sm->list_rv, false); /* rule 8 */
	}
	uint64_t delay = backoff(sm, now_ms, http ? f->retry_after_s : 0);
	if (http && f->status == 404) {
		sm->stats.relists++;
		return act_discover(sm, delay);
	}
	if ((http && f->status == 410) || f->too_large) {
		sm->stats.relists++;
		return act_list_first(sm, delay, "", false); /* rule 7, second step */
	}
	if (f->kind == WATCHSM_FAIL_BAD_DATA || (http && f->status == 400 && continuation)) {
		sm->stats.relists++;
		return act_list_first(sm, delay, sm->list_rv, sm->list_limit);
	}
	return act_same(sm, delay);
}

static struct watchsm_action failed_watch(struct watchsm *sm, uint64_t now_ms,
					  const struct watchsm_failure *f)
{
	bool http = f->kind == WATCHSM_FAIL_HTTP;
	uint64_t delay = backoff(sm, now_ms, http ? f->retry_after_s : 0);

	if (http && f->status == 404) {
		sm->stats.relists++;
		return act_discover(sm, delay);
	}
	if ((http && f->status == 410) || f->too_large) {
		sm->stats.relists++;
		return act_list_first(sm, delay, sm->last_rv, false); /* rule 7, first step */
	}
	return act_watch(sm, delay);
}

struct watchsm_action watchsm_failed(struct watchsm *sm, uint64_t now_ms,
				     const struct watchsm_failure *f)
{
	bool is401 = f->kind == WATCHSM_FAIL_HTTP && f->status == 401;
	bool fresh = f->kind == WATCHSM_FAIL_TRANSPORT || f->kind == WATCHSM_FAIL_DEAD;
	struct watchsm_action a;

	if (sm->op == WATCHSM_WATCH)
		sm->stats.watch_restarts++;
	if (is401 && !sm->last_was_401) {
		sm->last_was_401 = true;
		return act_same(sm, 0); /* rule 10 */
	}
	sm->last_was_401 = is401;
	switch (sm->op) {
	case WATCHSM_LIST:
		a = failed_list(sm, now_ms, f);
		break;
	case WATCHSM_WATCH:
		a = failed_watch(sm, now_ms, f);
		break;
	case WATCHSM_DISCOVER:
	default:
		if (f->kind == WATCHSM_FAIL_HTTP && f->status == 404)
			return watchsm_discovered(sm, now_ms, NULL);
		a = act_discover(sm, backoff(sm, now_ms,
					     f->kind == WATCHSM_FAIL_HTTP ? f->retry_after_s : 0));
		break;
	}
	a.fresh_connection = fresh;
	return a;
}

const char *watchsm_last_rv(const struct watchsm *sm)
{
	return sm->last_rv;
}

void watchsm_get_stats(const struct watchsm *sm, struct watchsm_stats *st)
{
	*st = sm->stats;
}
