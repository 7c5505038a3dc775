/* Unit tests for agent/cache.c: hits patch ID, case and TTLs; keys separate type, DO and CD;
 * expiry, serve-stale, the byte bound with CLOCK eviction, the sweep and prefetch. Time is
 * passed in, so nothing sleeps. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <urcu/urcu-memb.h>

#include "agent/cache.h"
#include "agent/reply.h"
#include "agent/wire.h"
#include "dnsmsg.h"

static const struct reply_policy pol = { .max_ttl = 3600, .neg_ttl = 300 };

struct query {
	uint8_t buf[512];
	struct wire_query q;
	uint64_t key;
};

static void make_q(struct query *q, const char *name, ldns_rr_type type, uint16_t edns,
		   bool do_bit)
{
	size_t l = dnsmsg_query(q->buf, sizeof q->buf, name, type, edns, do_bit);

	assert_int_equal(wire_parse_query(&q->q, q->buf, l), 0);
	q->key = cache_key(&q->q);
}

/* Inserts an answer "NAME TTL IN A ADDR" for @q at @now. */
static void insert_a(struct cache *c, struct query *q, const char *name, uint32_t ttl,
		     const char *addr, uint32_t now)
{
	static uint8_t up[4096], canon[WIRE_MAX_MSG];
	static struct wire_reply r;
	static struct reply_canon rc;
	char line[300];
	const char *rrs[] = { line, NULL };

	snprintf(line, sizeof line, "AN %s %u IN A %s", name, ttl, addr);
	size_t n = dnsmsg_reply(up, sizeof up, name, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR, false,
				rrs);
	assert_int_equal(wire_parse_reply(up, n, &r), 0);
	assert_int_equal(reply_canonicalize(up, &r, &q->q, &pol, canon, sizeof canon, &rc), 0);
	assert_int_equal(cache_insert(c, &q->q, q->key, canon, &rc, now), 0);
}

static int lookup(struct cache *c, struct query *q, uint32_t now, bool stale, uint8_t *out,
		  struct cache_hit *hit)
{
	int n;

	rcu_read_lock();
	n = cache_lookup(c, &q->q, q->key, now, true, stale, out, 4096, hit);
	rcu_read_unlock();
	return n;
}

static int setup(void **state)
{
	*state = cache_new(1 << 20, 86400);
	return *state ? 0 : -1;
}

static int teardown(void **state)
{
	cache_free(*state);
	return 0;
}

static void test_rule33_hit_patches_id_case_and_ttl(void **state)
{
	struct cache *c = *state;
	struct query q, q2;
	struct cache_hit hit;
	uint8_t out[4096];

	make_q(&q, "www.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &q, "www.example.", 300, "10.0.0.1", 1000);
	make_q(&q2, "WWW.Example.", LDNS_RR_TYPE_A, 0, false);
	wire_put16(q2.buf, 0x4242);
	q2.q.id = 0x4242;
	int n = lookup(c, &q2, 1030, false, out, &hit);
	assert_true(n > 0);
	assert_int_equal(wire_get16(out), 0x4242);
	assert_memory_equal(out + 12, "\3WWW\7Example", 12);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 0), 270);
	ldns_pkt_free(p);
	assert_int_equal(hit.remaining, 270);
	assert_false(hit.stale);
}

static void test_rule33_key_separates_type_do_and_cd(void **state)
{
	struct cache *c = *state;
	struct query q, other;
	struct cache_hit hit;
	uint8_t out[4096];

	make_q(&q, "www.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &q, "www.example.", 300, "10.0.0.1", 1000);
	make_q(&other, "www.example.", LDNS_RR_TYPE_AAAA, 0, false);
	assert_int_equal(lookup(c, &other, 1000, false, out, &hit), 0);
	make_q(&other, "www.example.", LDNS_RR_TYPE_A, 1232, true);
	assert_int_equal(lookup(c, &other, 1000, false, out, &hit), 0);
	make_q(&other, "www.example.", LDNS_RR_TYPE_A, 0, false);
	other.buf[3] |= WIRE_CD;
	assert_int_equal(wire_parse_query(&other.q, other.buf, other.q.len), 0);
	other.key = cache_key(&other.q);
	assert_int_equal(lookup(c, &other, 1000, false, out, &hit), 0);
	/* EDNS without DO shares the entry, and gets its OPT */
	make_q(&other, "www.example.", LDNS_RR_TYPE_A, 1232, false);
	int n = lookup(c, &other, 1000, false, out, &hit);
	assert_true(n > 0);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_true(ldns_pkt_edns(p));
	ldns_pkt_free(p);
}

static void test_expired_entry_misses_unless_stale_allowed(void **state)
{
	struct cache *c = *state;
	struct query q;
	struct cache_hit hit;
	uint8_t out[4096];

	make_q(&q, "www.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &q, "www.example.", 60, "10.0.0.1", 1000);
	assert_true(lookup(c, &q, 1059, false, out, &hit) > 0);
	assert_int_equal(lookup(c, &q, 1060, false, out, &hit), 0);
	int n = lookup(c, &q, 1060 + 3600, true, out, &hit);
	assert_true(n > 0);
	assert_true(hit.stale);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_int_equal(dnsmsg_ttl(p, LDNS_SECTION_ANSWER, 0), REPLY_STALE_TTL);
	ldns_pkt_free(p);
	/* past the stale window: gone */
	assert_int_equal(lookup(c, &q, 1060 + 86400, true, out, &hit), 0);
}

/* The table grows by doubling and is rebuilt in place when replaced entries leave
 * tombstones; a rebuild places each entry again from its key, recomputed from the stored
 * question, and the slot's tag must agree. Every name must still answer with its own
 * record after. */
static void test_every_entry_is_found_after_rebuilds(void **state)
{
	(void)state;
	struct cache *c = cache_new(8 << 20, 0);
	struct cache_stats st;
	struct cache_hit hit;
	struct query q;
	uint8_t out[4096];
	char name[64], want[96], t[128];

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(name, sizeof name, "g%d.grow.example.", i);
			snprintf(want, sizeof want, "10.%d.%d.%d", round, i / 256, i % 256);
			make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
			insert_a(c, &q, name, 300, want, 1000);
		}
	}
	cache_get_stats(c, &st);
	assert_int_equal(st.entries[REPLY_SUCCESS], 5000);
	assert_true(st.slots >= 8192);
	assert_int_equal(st.evictions, 0);
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "g%d.grow.example.", i);
		snprintf(want, sizeof want, "%s IN A 10.2.%d.%d", name, i / 256, i % 256);
		make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
		int n = lookup(c, &q, 1000, false, out, &hit);
		assert_true(n > 0);
		ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
		assert_int_equal(ldns_pkt_ancount(p), 1);
		assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t), want);
		ldns_pkt_free(p);
	}
	cache_free(c);
}

static void test_newer_answer_replaces_entry(void **state)
{
	struct cache *c = *state;
	struct query q;
	struct cache_hit hit;
	struct cache_stats st;
	uint8_t out[4096];
	char t[128];

	make_q(&q, "www.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &q, "www.example.", 300, "10.0.0.1", 1000);
	insert_a(c, &q, "www.example.", 300, "10.0.0.2", 1001);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries[REPLY_SUCCESS], 1);
	int n = lookup(c, &q, 1001, false, out, &hit);
	ldns_pkt *p = dnsmsg_parse(out, (size_t)n);
	assert_string_equal(dnsmsg_rr_text(p, LDNS_SECTION_ANSWER, 0, t, sizeof t),
			    "www.example. IN A 10.0.0.2");
	ldns_pkt_free(p);
}

static void test_rule36_bytes_stay_under_the_bound(void **state)
{
	(void)state;
	struct cache *c = cache_new(256 << 10, 0);
	struct cache_stats st;
	struct query q;
	char name[64];

	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof name, "n%d.example.", i);
		make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
		insert_a(c, &q, name, 300, "10.0.0.1", 1000);
		cache_get_stats(c, &st);
		assert_true(st.bytes <= 256 << 10);
	}
	assert_true(st.evictions > 0);
	assert_true(st.entries[REPLY_SUCCESS] > 500);
	cache_free(c);
}

/* A full cache under a stream of new names (every query a miss, each answer evicting an
 * older one) keeps its probes short: the eviction hand must not clear the table region by
 * region, which left runs of tens of thousands of occupied slots (and a worker spending
 * milliseconds on every lookup) after some hundred thousand evictions. */
static void test_rule36_eviction_keeps_probes_short(void **state)
{
	(void)state;
	struct cache *c = cache_new(2 << 20, 0);
	struct cache_stats st;
	struct query q;
	char name[64];
	size_t longest = 0;

	for (int i = 0; i < 200000; i++) {
		snprintf(name, sizeof name, "u%d-%x.miss.test.", i, (unsigned)i * 2654435761u);
		make_q(&q, name, LDNS_RR_TYPE_A, 1232, false);
		insert_a(c, &q, name, 300, "10.0.0.1", 1000);
		if (i % 10000 == 9999) {
			size_t run = cache_longest_run(c);
			longest = run > longest ? run : longest;
		}
	}
	cache_get_stats(c, &st);
	assert_true(st.evictions > 150000);
	/* random placement at this load gives runs of about a hundred slots */
	assert_in_range(longest, 1, 1000);
	cache_free(c);
}

static void test_rule36_recently_used_entries_survive_eviction(void **state)
{
	(void)state;
	struct cache *c = cache_new(128 << 10, 0);
	struct cache_hit hit;
	struct query hot, q;
	uint8_t out[4096];
	char name[64];

	make_q(&hot, "hot.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &hot, "hot.example.", 300, "10.0.0.1", 1000);
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "cold%d.example.", i);
		make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
		insert_a(c, &q, name, 300, "10.0.0.2", 1000);
		/* the hot name is asked for all the time */
		assert_true(lookup(c, &hot, 1000, false, out, &hit) > 0);
	}
	/* and an early cold one that nobody asked for again is gone */
	make_q(&q, "cold0.example.", LDNS_RR_TYPE_A, 0, false);
	assert_int_equal(lookup(c, &q, 1000, false, out, &hit), 0);
	cache_free(c);
}

static void test_rule36_sweep_removes_entries_past_the_stale_window(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 100);
	struct cache_stats st;
	struct query q;
	char name[64];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "s%d.example.", i);
		make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
		insert_a(c, &q, name, i < 50 ? 10 : 1000, "10.0.0.1", 1000);
	}
	cache_sweep(c, 1000 + 10 + 50, 100000); /* expired, but inside the stale window */
	cache_get_stats(c, &st);
	assert_int_equal(st.entries[REPLY_SUCCESS], 100);
	cache_sweep(c, 1000 + 10 + 100, 100000);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries[REPLY_SUCCESS], 50);
	assert_int_equal(st.expired, 50);
	cache_free(c);
}

static void test_sweep_works_in_small_steps(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20, 0);
	struct cache_stats st;
	struct query q;
	char name[64];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "t%d.example.", i);
		make_q(&q, name, LDNS_RR_TYPE_A, 0, false);
		insert_a(c, &q, name, 10, "10.0.0.1", 1000);
	}
	cache_get_stats(c, &st);
	cache_sweep(c, 2000, (unsigned)st.slots / 4);
	cache_get_stats(c, &st);
	assert_true(st.entries[REPLY_SUCCESS] > 0 && st.entries[REPLY_SUCCESS] < 100);
	for (int i = 0; i < 4; i++)
		cache_sweep(c, 2000, (unsigned)st.slots / 4);
	cache_get_stats(c, &st);
	assert_int_equal(st.entries[REPLY_SUCCESS], 0);
	cache_free(c);
}

static void test_prefetch_is_asked_once_near_expiry(void **state)
{
	struct cache *c = *state;
	struct cache_hit hit;
	struct query q;
	uint8_t out[4096];

	make_q(&q, "pf.example.", LDNS_RR_TYPE_A, 0, false);
	insert_a(c, &q, "pf.example.", 100, "10.0.0.1", 1000);
	assert_true(lookup(c, &q, 1050, false, out, &hit) > 0);
	assert_false(hit.prefetch);
	assert_true(lookup(c, &q, 1095, false, out, &hit) > 0);
	assert_true(hit.prefetch);
	assert_true(lookup(c, &q, 1096, false, out, &hit) > 0);
	assert_false(hit.prefetch);
}

static void test_entry_larger_than_a_quarter_is_refused(void **state)
{
	(void)state;
	struct cache *c = cache_new(64 << 10, 0);
	static uint8_t up[65535], canon[WIRE_MAX_MSG];
	static struct wire_reply r;
	static struct reply_canon rc;
	static char lines[200][160];
	const char *rrs[201];
	struct query q;

	for (int i = 0; i < 200; i++) {
		snprintf(lines[i], sizeof lines[i], "AN big.example. 300 IN TXT \"%0100d\"", i);
		rrs[i] = lines[i];
	}
	rrs[200] = NULL;
	make_q(&q, "big.example.", LDNS_RR_TYPE_TXT, 0, false);
	size_t n = dnsmsg_reply(up, sizeof up, "big.example.", LDNS_RR_TYPE_TXT,
				LDNS_RCODE_NOERROR, false, rrs);
	assert_int_equal(wire_parse_reply(up, n, &r), 0);
	assert_int_equal(reply_canonicalize(up, &r, &q.q, &pol, canon, sizeof canon, &rc), 0);
	assert_int_equal(cache_insert(c, &q.q, q.key, canon, &rc, 1000), -E2BIG);
	cache_free(c);
}

int main(void)
{
	rcu_register_thread();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rule33_hit_patches_id_case_and_ttl, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rule33_key_separates_type_do_and_cd, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expired_entry_misses_unless_stale_allowed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_answer_replaces_entry, setup, teardown),
		cmocka_unit_test(test_every_entry_is_found_after_rebuilds),
		cmocka_unit_test(test_rule36_bytes_stay_under_the_bound),
		cmocka_unit_test(test_rule36_recently_used_entries_survive_eviction),
		cmocka_unit_test(test_rule36_sweep_removes_entries_past_the_stale_window),
		cmocka_unit_test(test_sweep_works_in_small_steps),
		cmocka_unit_test_setup_teardown(test_prefetch_is_asked_once_near_expiry, setup,
						teardown),
		cmocka_unit_test(test_entry_larger_than_a_quarter_is_refused),
		cmocka_unit_test(test_rule36_eviction_keeps_probes_short),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	rcu_unregister_thread();
	return r;
}
