/* Unit tests for k8s/watchsm.c: the list/watch rules of client-go's reflector
 * (reference/serviceentry-semantics.md 4.4-4.8, SEMANTICS.md rules 39-41). Time and
 * randomness are injected: nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "k8s/watchsm.h"

static uint32_t rnd_value; /* what the injected random source returns */

static uint32_t fake_rand(void *arg)
{
	(void)arg;
	return rnd_value;
}

static struct watchsm *new_sm(uint32_t rnd)
{
	struct watchsm_opts o = { .rand = fake_rand };

	rnd_value = rnd;
	return watchsm_new(&o);
}

static const struct watchsm_failure HTTP_410 = { .kind = WATCHSM_FAIL_HTTP, .status = 410 };
static const struct watchsm_failure HTTP_503 = { .kind = WATCHSM_FAIL_HTTP, .status = 503 };
static const struct watchsm_failure REFUSED = { .kind = WATCHSM_FAIL_TRANSPORT };

/* Start, discovery, one list page at RV 100, and the watch begun at @now. */
static struct watchsm_action to_watching(struct watchsm *sm, uint64_t now)
{
	struct watchsm_action a;

	watchsm_start(sm, now);
	watchsm_discovered(sm, now, "v1");
	a = watchsm_list_page(sm, now, "100", "");
	watchsm_began(sm, now);
	return a;
}

static void test_start_discovers_at_once(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a = watchsm_start(sm, 0);

	(void)state;
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 0);
	watchsm_free(sm);
}

static void test_discovered_version_lists_rv0_with_limit(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	a = watchsm_discovered(sm, 5, "v1beta1");
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "0");
	assert_true(a.limit);
	assert_null(a.cont);
	assert_int_equal(a.delay_ms, 0);
	watchsm_free(sm);
}

static void test_group_absent_is_synced_and_polled_every_minute(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_stats st;
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	a = watchsm_discovered(sm, 0, NULL);
	watchsm_get_stats(sm, &st);
	assert_true(st.synced);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 60000);
	a = watchsm_discovered(sm, 60000, NULL);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 60000);
	watchsm_free(sm);
}

static void test_group_appearing_later_is_listed_from_rv0(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, NULL);
	a = watchsm_discovered(sm, 60000, "v1");
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.rv, "0");
	assert_true(a.limit);
	watchsm_free(sm);
}

static void test_continue_token_fetches_next_page_without_rv(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	a = watchsm_list_page(sm, 1, "100", "tok1");
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_false(a.first_page);
	assert_null(a.rv);
	assert_string_equal(a.cont, "tok1");
	assert_true(a.limit);
	assert_int_equal(a.delay_ms, 0);
	watchsm_free(sm);
}

static void test_last_page_watches_from_list_rv(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_list_page(sm, 2, "100", NULL);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "100");
	assert_int_equal(a.delay_ms, 0);
	watchsm_get_stats(sm, &st);
	assert_true(st.synced);
	watchsm_free(sm);
}

static void test_watch_timeout_is_drawn_from_300_to_600_seconds(void **state)
{
	const uint32_t draws[] = { 0, 1, 300, 301, 12345, 0x7fffffff, 0xffffffff };
	bool saw_min = false, saw_max = false;

	(void)state;
	for (size_t i = 0; i < sizeof(draws) / sizeof(draws[0]); i++) {
		struct watchsm *sm = new_sm(draws[i]);
		struct watchsm_action a = to_watching(sm, 0);
		assert_int_equal(a.op, WATCHSM_WATCH);
		assert_in_range(a.timeout_s, 300, 600);
		saw_min |= a.timeout_s == 300;
		saw_max |= a.timeout_s == 600;
		watchsm_free(sm);
	}
	assert_true(saw_min);
	assert_true(saw_max);
}

static void test_idle_limit_is_watch_timeout_plus_margin(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_opts o = { .rand = fake_rand, .idle_ms = 1500 };
	struct watchsm_action a = to_watching(sm, 0);

	(void)state;
	assert_int_equal(a.idle_ms, a.timeout_s * 1000u + WATCHSM_IDLE_MARGIN_MS);
	watchsm_free(sm);
	sm = watchsm_new(&o);
	a = to_watching(sm, 0);
	assert_int_equal(a.idle_ms, 1500);
	watchsm_free(sm);
}

static void test_events_and_bookmarks_advance_the_rv(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_event(sm, 10, "101");
	watchsm_event(sm, 20, "250"); /* a bookmark */
	assert_string_equal(watchsm_last_rv(sm), "250");
	a = watchsm_watch_ended(sm, 300000);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "250");
	watchsm_free(sm);
}

static void test_watch_normal_end_rewatches_at_once_from_last_rv(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_watch_ended(sm, 400000);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "100");
	assert_int_equal(a.delay_ms, 0);
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.watch_restarts, 1);
	assert_int_equal(st.relists, 0);
	watchsm_free(sm);
}

static void test_very_short_watch_without_events_backs_off(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 1000);
	a = watchsm_watch_ended(sm, 1999);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_short_watch_with_an_event_is_not_very_short(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 1000);
	watchsm_event(sm, 1100, "101");
	a = watchsm_watch_ended(sm, 1200);
	assert_int_equal(a.delay_ms, 0);
	assert_string_equal(a.rv, "101");
	watchsm_free(sm);
}

static void test_watch_410_relists_at_last_rv_without_limit(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	to_watching(sm, 0);
	watchsm_event(sm, 10, "180");
	a = watchsm_failed(sm, 500000, &HTTP_410); /* an ERROR event or HTTP 410 */
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "180");
	assert_false(a.limit);
	assert_null(a.cont);
	assert_int_equal(a.delay_ms, 800);
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.relists, 1);
	watchsm_free(sm);
}

static void test_relist_410_falls_back_to_a_consistent_read(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_failed(sm, 500000, &HTTP_410);
	watchsm_began(sm, 500800);
	a = watchsm_failed(sm, 500900, &HTTP_410);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "");
	assert_false(a.limit);
	assert_int_equal(a.delay_ms, 1600);
	a = watchsm_list_page(sm, 503000, "900", "");
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "900");
	watchsm_free(sm);
}

static void test_too_large_rv_on_relist_falls_back_to_a_consistent_read(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure too_large = { .kind = WATCHSM_FAIL_HTTP,
					     .status = 504,
					     .too_large = true };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_failed(sm, 500000, &HTTP_410);
	a = watchsm_failed(sm, 501000, &too_large);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.rv, "");
	watchsm_free(sm);
}

static void test_too_large_rv_on_watch_relists(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure too_large = { .kind = WATCHSM_FAIL_HTTP,
					     .status = 504,
					     .too_large = true };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 1000, &too_large);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.rv, "100");
	watchsm_free(sm);
}

static void test_continuation_410_restarts_the_list_without_limit_at_once(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_failed(sm, 2, &HTTP_410);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "0");
	assert_false(a.limit);
	assert_null(a.cont);
	assert_int_equal(a.delay_ms, 0);
	watchsm_free(sm);
}

static void test_continuation_5xx_retries_the_same_page_after_backoff(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_failed(sm, 2, &HTTP_503);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_false(a.first_page);
	assert_string_equal(a.cont, "tok1");
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_rejected_continue_token_restarts_the_list(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure bad = { .kind = WATCHSM_FAIL_HTTP, .status = 400 };
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_failed(sm, 2, &bad);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "0");
	assert_true(a.limit);
	watchsm_free(sm);
}

static void test_failed_relist_retries_at_the_same_rv(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_failed(sm, 500000, &HTTP_410);
	a = watchsm_failed(sm, 501000, &HTTP_503);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "100");
	assert_false(a.limit);
	watchsm_free(sm);
}

static void test_429_rewatches_from_the_same_rv_without_relist(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure tmr = { .kind = WATCHSM_FAIL_HTTP, .status = 429 };
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 10, &tmr);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "100");
	assert_int_equal(a.delay_ms, 800);
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.relists, 0);
	watchsm_free(sm);
}

static void test_refused_connection_rewatches_on_a_fresh_connection(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 10, &REFUSED);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "100");
	assert_true(a.fresh_connection);
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_dead_watch_rewatches_from_last_rv_on_a_fresh_connection(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure dead = { .kind = WATCHSM_FAIL_DEAD };
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	to_watching(sm, 0);
	watchsm_event(sm, 10, "120");
	a = watchsm_failed(sm, 700000, &dead);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "120");
	assert_true(a.fresh_connection);
	assert_in_range(a.delay_ms, 800, 1599);
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.watch_restarts, 1);
	assert_int_equal(st.relists, 0);
	watchsm_free(sm);
}

static void test_backoff_doubles_from_800ms_to_a_30s_cap(void **state)
{
	const uint64_t want[] = { 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000 };
	struct watchsm *sm = new_sm(0);
	uint64_t now = 0;

	(void)state;
	to_watching(sm, 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct watchsm_action a = watchsm_failed(sm, now, &REFUSED);
		assert_int_equal(a.delay_ms, want[i]);
		now += a.delay_ms;
	}
	watchsm_free(sm);
}

static void test_backoff_jitter_stays_below_twice_the_step(void **state)
{
	const uint64_t base[] = { 800, 1600, 3200, 6400, 12800, 25600, 30000 };
	struct watchsm *sm = new_sm(0xffffffffu);
	uint64_t now = 0;

	(void)state;
	to_watching(sm, 0);
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		struct watchsm_action a = watchsm_failed(sm, now, &REFUSED);
		assert_in_range(a.delay_ms, base[i], 2 * base[i] - 1);
		assert_true(a.delay_ms > base[i]); /* the random factor is applied */
		now += a.delay_ms;
	}
	watchsm_free(sm);
}

static void test_backoff_resets_after_two_minutes_without_failure(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;
	uint64_t now = 0;

	(void)state;
	to_watching(sm, 0);
	for (int i = 0; i < 5; i++)
		now += watchsm_failed(sm, now, &REFUSED).delay_ms;
	watchsm_began(sm, now);
	now += 120001; /* a healthy watch for over 2 minutes */
	a = watchsm_failed(sm, now, &REFUSED);
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_backoff_keeps_growing_within_two_minutes(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_failed(sm, 0, &REFUSED);
	watchsm_event(sm, 1000, "101"); /* healthy again, briefly */
	a = watchsm_failed(sm, 119000, &REFUSED);
	assert_int_equal(a.delay_ms, 1600);
	watchsm_free(sm);
}

static void test_retry_after_sets_the_least_delay(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 429, .retry_after_s = 5 };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 0, &f);
	assert_int_equal(a.delay_ms, 5000);
	f.status = 503;
	a = watchsm_failed(sm, 5000, &f);
	assert_int_equal(a.delay_ms, 5000);
	watchsm_free(sm);
}

static void test_retry_after_shorter_than_the_backoff_keeps_the_backoff(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 503, .retry_after_s = 1 };
	uint64_t now = 0;
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	for (int i = 0; i < 3; i++)
		now += watchsm_failed(sm, now, &REFUSED).delay_ms;
	a = watchsm_failed(sm, now, &f);
	assert_int_equal(a.delay_ms, 6400);
	watchsm_free(sm);
}

static void test_retry_after_is_honoured_up_to_two_minutes(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP,
				     .status = 429,
				     .retry_after_s = 86400 };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 0, &f);
	assert_int_equal(a.delay_ms, 120000);
	watchsm_free(sm);
}

static void test_first_401_retries_at_once_and_a_second_backs_off(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 401 };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 10, &f);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "100");
	assert_int_equal(a.delay_ms, 0);
	a = watchsm_failed(sm, 20, &f);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_401_on_a_list_page_retries_the_same_page(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 401 };
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_failed(sm, 2, &f);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.cont, "tok1");
	assert_int_equal(a.delay_ms, 0);
	watchsm_free(sm);
}

static void test_403_backs_off_and_retries_the_same_request(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 403 };
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	a = watchsm_failed(sm, 1, &f);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.rv, "0");
	assert_int_equal(a.delay_ms, 800);
	a = watchsm_failed(sm, 801, &f);
	assert_int_equal(a.delay_ms, 1600);
	watchsm_free(sm);
}

static void test_404_on_a_watch_runs_discovery_again(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 404 };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	a = watchsm_failed(sm, 10, &f);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 800);
	a = watchsm_discovered(sm, 900, "v1beta1");
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_string_equal(a.rv, "0");
	watchsm_free(sm);
}

static void test_404_on_a_list_runs_discovery_again(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 404 };
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	a = watchsm_failed(sm, 1, &f);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	watchsm_free(sm);
}

static void test_404_on_discovery_means_the_group_is_absent(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure f = { .kind = WATCHSM_FAIL_HTTP, .status = 404 };
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	watchsm_start(sm, 0);
	a = watchsm_failed(sm, 1, &f);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 60000);
	watchsm_get_stats(sm, &st);
	assert_true(st.synced);
	watchsm_free(sm);
}

static void test_discovery_failure_backs_off_and_retries_discovery(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_action a;
	struct watchsm_stats st;

	(void)state;
	watchsm_start(sm, 0);
	a = watchsm_failed(sm, 1, &REFUSED);
	assert_int_equal(a.op, WATCHSM_DISCOVER);
	assert_int_equal(a.delay_ms, 800);
	watchsm_get_stats(sm, &st);
	assert_false(st.synced);
	watchsm_free(sm);
}

static void test_undecodable_list_restarts_from_the_first_page(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure bad = { .kind = WATCHSM_FAIL_BAD_DATA };
	struct watchsm_action a;

	(void)state;
	watchsm_start(sm, 0);
	watchsm_discovered(sm, 0, "v1");
	watchsm_list_page(sm, 1, "100", "tok1");
	a = watchsm_failed(sm, 2, &bad);
	assert_int_equal(a.op, WATCHSM_LIST);
	assert_true(a.first_page);
	assert_string_equal(a.rv, "0");
	assert_true(a.limit);
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_oversized_event_rewatches_after_backoff(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_failure bad = { .kind = WATCHSM_FAIL_BAD_DATA };
	struct watchsm_action a;

	(void)state;
	to_watching(sm, 0);
	watchsm_event(sm, 5, "105");
	a = watchsm_failed(sm, 10, &bad);
	assert_int_equal(a.op, WATCHSM_WATCH);
	assert_string_equal(a.rv, "105");
	assert_int_equal(a.delay_ms, 800);
	watchsm_free(sm);
}

static void test_backoff_is_reported_until_healthy_again(void **state)
{
	struct watchsm *sm = new_sm(0);
	struct watchsm_stats st;

	(void)state;
	to_watching(sm, 0);
	watchsm_failed(sm, 0, &REFUSED);
	watchsm_failed(sm, 800, &REFUSED);
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.backoff_ms, 1600);
	assert_int_equal(st.failures, 2);
	watchsm_event(sm, 3000, "101");
	watchsm_get_stats(sm, &st);
	assert_int_equal(st.backoff_ms, 0);
	watchsm_free(sm);
}

static void test_outage_request_rate_stays_within_client_go_envelope(void **state)
{
	/* 10 minutes of refused connections: client-go aims at about 0.22 requests/s; with
	 * the 30 s cap and a jitter in [1, 2) the rate is at most 1/30 per s in steady state. */
	struct watchsm *sm = new_sm(0);
	uint64_t now = 0;
	unsigned requests = 0;

	(void)state;
	to_watching(sm, 0);
	while (now < 600000) {
		now += watchsm_failed(sm, now, &REFUSED).delay_ms;
		requests++;
	}
	assert_in_range(requests, 10, 30);
	watchsm_free(sm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_discovers_at_once),
		cmocka_unit_test(test_discovered_version_lists_rv0_with_limit),
		cmocka_unit_test(test_group_absent_is_synced_and_polled_every_minute),
		cmocka_unit_test(test_group_appearing_later_is_listed_from_rv0),
		cmocka_unit_test(test_continue_token_fetches_next_page_without_rv),
		cmocka_unit_test(test_last_page_watches_from_list_rv),
		cmocka_unit_test(test_watch_timeout_is_drawn_from_300_to_600_seconds),
		cmocka_unit_test(test_idle_limit_is_watch_timeout_plus_margin),
		cmocka_unit_test(test_events_and_bookmarks_advance_the_rv),
		cmocka_unit_test(test_watch_normal_end_rewatches_at_once_from_last_rv),
		cmocka_unit_test(test_very_short_watch_without_events_backs_off),
		cmocka_unit_test(test_short_watch_with_an_event_is_not_very_short),
		cmocka_unit_test(test_watch_410_relists_at_last_rv_without_limit),
		cmocka_unit_test(test_relist_410_falls_back_to_a_consistent_read),
		cmocka_unit_test(test_too_large_rv_on_relist_falls_back_to_a_consistent_read),
		cmocka_unit_test(test_too_large_rv_on_watch_relists),
		cmocka_unit_test(test_continuation_410_restarts_the_list_without_limit_at_once),
		cmocka_unit_test(test_continuation_5xx_retries_the_same_page_after_backoff),
		cmocka_unit_test(test_rejected_continue_token_restarts_the_list),
		cmocka_unit_test(test_failed_relist_retries_at_the_same_rv),
		cmocka_unit_test(test_429_rewatches_from_the_same_rv_without_relist),
		cmocka_unit_test(test_refused_connection_rewatches_on_a_fresh_connection),
		cmocka_unit_test(test_dead_watch_rewatches_from_last_rv_on_a_fresh_connection),
		cmocka_unit_test(test_backoff_doubles_from_800ms_to_a_30s_cap),
		cmocka_unit_test(test_backoff_jitter_stays_below_twice_the_step),
		cmocka_unit_test(test_backoff_resets_after_two_minutes_without_failure),
		cmocka_unit_test(test_backoff_keeps_growing_within_two_minutes),
		cmocka_unit_test(test_retry_after_sets_the_least_delay),
		cmocka_unit_test(test_retry_after_shorter_than_the_backoff_keeps_the_backoff),
		cmocka_unit_test(test_retry_after_is_honoured_up_to_two_minutes),
		cmocka_unit_test(test_first_401_retries_at_once_and_a_second_backs_off),
		cmocka_unit_test(test_401_on_a_list_page_retries_the_same_page),
		cmocka_unit_test(test_403_backs_off_and_retries_the_same_request),
		cmocka_unit_test(test_404_on_a_watch_runs_discovery_again),
		cmocka_unit_test(test_404_on_a_list_runs_discovery_again),
		cmocka_unit_test(test_404_on_discovery_means_the_group_is_absent),
		cmocka_unit_test(test_discovery_failure_backs_off_and_retries_discovery),
		cmocka_unit_test(test_undecodable_list_restarts_from_the_first_page),
		cmocka_unit_test(test_oversized_event_rewatches_after_backoff),
		cmocka_unit_test(test_backoff_is_reported_until_healthy_again),
		cmocka_unit_test(test_outage_request_rate_stays_within_client_go_envelope),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
