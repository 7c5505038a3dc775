/* Unit tests for k8s/sedecode.c: hosts (rule 8), addresses (rule 9), exportTo and location
 * (rule 10), objects, watch events and list documents, and broken input of every kind. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "k8s/sedecode.h"

static struct se_obj *obj;

static int setup(void **state)
{
	(void)state;
	obj = malloc(sizeof(*obj));
	return obj ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(obj);
	return 0;
}

/* Decodes the JSON object @text into obj. */
static int decode(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	int r;

	assert_non_null(j);
	r = sedecode_object(j, obj);
	cJSON_Delete(j);
	return r;
}

/* An object in namespace ns with @spec as its spec. */
static int decode_spec(const char *spec)
{
	char text[16384];

	snprintf(text, sizeof(text),
		 "{\"metadata\":{\"namespace\":\"ns\",\"name\":\"se\",\"uid\":\"u1\","
		 "\"resourceVersion\":\"7\",\"creationTimestamp\":\"2020-06-02T14:07:35Z\"},"
		 "\"spec\":%s}",
		 spec);
	return decode(text);
}

static const char *host_norm(const char *in, enum se_reject *why)
{
	static char out[SE_MAX_HOST_LEN + 1];

	return sedecode_host(in, strlen(in), out, why) < 0 ? NULL : out;
}

static void test_rule6_every_served_version_decodes_alike(void **state)
{
	(void)state;
	const char *versions[] = { "networking.istio.io/v1", "networking.istio.io/v1beta1",
				   "networking.istio.io/v1alpha3" };
	char text[1024];

	for (size_t i = 0; i < 3; i++) {
		snprintf(text, sizeof(text),
			 "{\"apiVersion\":\"%s\",\"kind\":\"ServiceEntry\",\"metadata\":{"
			 "\"namespace\":\"istio-system\",\"name\":\"r\"},\"spec\":{\"hosts\":"
			 "[\"reviews.default.cluster-2\"],\"addresses\":[\"240.0.0.3\"],"
			 "\"location\":\"MESH_INTERNAL\"}}",
			 versions[i]);
		assert_int_equal(decode(text), 0);
		assert_int_equal(obj->nhosts, 1);
		assert_int_equal(obj->naddrs, 1);
		assert_true(obj->mesh_internal);
	}
}

static void test_rule8_host_is_lowercased_and_one_trailing_dot_stripped(void **state)
{
	(void)state;
	enum se_reject why;

	assert_string_equal(host_norm("Reviews.Default.CLUSTER-2.", &why),
			    "reviews.default.cluster-2");
	assert_null(host_norm("reviews.default.cluster-2..", &why));
	assert_string_equal(host_norm("single", &why), "single");
}

static void test_rule8_empty_and_long_labels_are_bad_hosts(void **state)
{
	(void)state;
	enum se_reject why;
	char label64[80], name254[300];

	assert_null(host_norm("a..b", &why));
	assert_int_equal(why, SE_REJECT_BAD_HOST);
	assert_null(host_norm(".a", &why));
	assert_null(host_norm("", &why));
	assert_null(host_norm(".", &why));
	memset(label64, 'a', 64);
	memcpy(label64 + 64, ".x", 3);
	assert_null(host_norm(label64, &why));
	memcpy(label64 + 63, ".x", 3); /* 63 octets is fine */
	assert_non_null(host_norm(label64, &why));
	for (int i = 0; i < 254; i++)
		name254[i] = i % 2 ? '.' : 'a';
	name254[253] = 'a';
	name254[254] = 0;
	assert_null(host_norm(name254, &why));
	name254[253] = 0; /* 253 octets ending in "a" */
	assert_non_null(host_norm(name254, &why));
}

static void test_rule8_characters_other_than_ldh_are_bad_hosts(void **state)
{
	(void)state;
	enum se_reject why;

	assert_null(host_norm("under_score.x", &why));
	assert_int_equal(why, SE_REJECT_BAD_HOST);
	assert_null(host_norm("sp ace.x", &why));
	assert_null(host_norm("caf\xc3\xa9.x", &why));
	assert_null(host_norm("a.*.b", &why));
	assert_int_equal(why, SE_REJECT_BAD_HOST);
	assert_null(host_norm("*", &why));
	assert_null(host_norm("*.", &why));
	assert_string_equal(host_norm("xn--p1ai-1.x-y.z9", &why), "xn--p1ai-1.x-y.z9");
}

static void test_rule8_wildcard_is_allowed_as_whole_first_label(void **state)
{
	(void)state;
	enum se_reject why;

	assert_string_equal(host_norm("*.Foo.Global", &why), "*.foo.global");
}

static void test_rule8_partial_wildcard_ignored(void **state)
{
	(void)state;
	enum se_reject why;

	assert_null(host_norm("*foo.x", &why));
	assert_int_equal(why, SE_REJECT_PARTIAL_WILDCARD);
	assert_null(host_norm("*-foo.x", &why));
	assert_int_equal(why, SE_REJECT_PARTIAL_WILDCARD);
	assert_null(host_norm("f*o.x", &why));
	assert_int_equal(why, SE_REJECT_PARTIAL_WILDCARD);
}

static void test_rule8_bad_hosts_are_skipped_and_the_rest_kept(void **state)
{
	(void)state;

	assert_int_equal(decode_spec("{\"hosts\":[\"ok.cluster-2\",\"bad_host\",\"*x.y\",7,"
				     "\"OK.cluster-2.\",\"two.cluster-2\"],"
				     "\"addresses\":[\"240.0.0.1\"]}"),
			 0);
	assert_int_equal(obj->nhosts, 2);
	assert_string_equal(obj->hosts[0], "ok.cluster-2");
	assert_string_equal(obj->hosts[1], "two.cluster-2");
	assert_int_equal(obj->rejected[SE_REJECT_BAD_HOST], 2);
	assert_int_equal(obj->rejected[SE_REJECT_PARTIAL_WILDCARD], 1);
	assert_non_null(strstr(obj->reject_note, "bad_host"));
}

static void test_rule9_ipv4_and_ipv6_literals(void **state)
{
	(void)state;
	struct se_addr a;

	assert_int_equal(sedecode_addr("240.0.0.3", 9, &a), 0);
	assert_int_equal(a.v6, 0);
	assert_memory_equal(a.bytes, "\xf0\x00\x00\x03", 4);
	assert_int_equal(sedecode_addr("fd00::1", 7, &a), 0);
	assert_int_equal(a.v6, 1);
	assert_int_equal(a.bytes[15], 1);
	assert_int_equal(sedecode_addr("::ffff:1.2.3.4", 14, &a), 0);
	assert_int_equal(a.v6, 1); /* IPv4-mapped IPv6 stays IPv6, as in Istio */
}

static void test_rule9_full_length_cidr_becomes_an_address(void **state)
{
	(void)state;
	struct se_addr a;

	assert_int_equal(sedecode_addr("240.0.0.9/32", 12, &a), 0);
	assert_int_equal(a.v6, 0);
	assert_int_equal(a.bytes[3], 9);
	assert_int_equal(sedecode_addr("2001:db8::5/128", 15, &a), 0);
	assert_int_equal(a.v6, 1);
}

static void test_rule9_other_cidrs_and_garbage_are_ignored(void **state)
{
	(void)state;
	struct se_addr a;
	const char *bad[] = {
		"10.0.0.0/24",	"2001:db8::/64", "240.0.0.1/33", "240.0.0.1/",	 "240.0.0.1/a",
		"fd00::1/32",	"1.2.3",	 "256.1.1.1",	 "fe80::1%eth0", "",
		"host.example", "1.2.3.4 "
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sedecode_addr(bad[i], strlen(bad[i]), &a), -EINVAL);
	assert_int_equal(sedecode_addr("1.2.3.4\0x", 9, &a), -EINVAL);
}

static void test_rule9_duplicates_removed_first_seen_order_kept(void **state)
{
	(void)state;

	assert_int_equal(decode_spec("{\"hosts\":[\"a.cluster-2\"],\"addresses\":["
				     "\"240.0.0.2\",\"fd00::1\",\"240.0.0.1\",\"240.0.0.2/32\","
				     "\"10.0.0.0/8\",\"FD00::1\",\"240.0.0.1\",null]}"),
			 0);
	assert_int_equal(obj->naddrs, 3);
	assert_int_equal(obj->addrs[0].bytes[3], 2);
	assert_int_equal(obj->addrs[1].v6, 1);
	assert_int_equal(obj->addrs[2].bytes[3], 1);
	assert_int_equal(obj->rejected[SE_REJECT_BAD_ADDRESS], 2);
}

static void test_rule10_export_private_only_when_exactly_tilde(void **state)
{
	(void)state;

	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"exportTo\":[\"~\"]}"), 0);
	assert_true(obj->export_private);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"exportTo\":[\"~\",\"*\"]}"), 0);
	assert_false(obj->export_private);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"exportTo\":[\".\"]}"), 0);
	assert_false(obj->export_private);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"exportTo\":\"~\"}"), 0);
	assert_false(obj->export_private);
}

static void test_rule10_location_and_resolution_are_read(void **state)
{
	(void)state;

	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"]}"), 0);
	assert_false(obj->mesh_internal); /* absent = MESH_EXTERNAL */
	assert_int_equal(obj->resolution, SE_RESOLUTION_NONE);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"location\":\"MESH_INTERNAL\","
				     "\"resolution\":\"DNS\"}"),
			 0);
	assert_true(obj->mesh_internal);
	assert_int_equal(obj->resolution, SE_RESOLUTION_DNS);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"location\":1,\"resolution\":4}"), 0);
	assert_true(obj->mesh_internal);
	assert_int_equal(obj->resolution, SE_RESOLUTION_DYNAMIC_DNS);
	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"],\"location\":\"mesh_internal\","
				     "\"resolution\":99}"),
			 0);
	assert_false(obj->mesh_internal);
	assert_int_equal(obj->resolution, SE_RESOLUTION_NONE);
}

static void test_metadata_and_creation_time_are_read(void **state)
{
	(void)state;

	assert_int_equal(decode_spec("{\"hosts\":[\"a.x\"]}"), 0);
	assert_string_equal(obj->ns, "ns");
	assert_string_equal(obj->name, "se");
	assert_string_equal(obj->uid, "u1");
	assert_string_equal(obj->rv, "7");
	assert_int_equal(obj->created, 1591106855);
	assert_false(obj->bad);
}

static void test_rfc3339_times(void **state)
{
	(void)state;
	int64_t t;

	assert_int_equal(sedecode_time("2021-05-11T09:12:44+02:00", &t), 0);
	assert_int_equal(t, 1620717164);
	assert_int_equal(sedecode_time("2020-06-02T14:07:35.123456Z", &t), 0);
	assert_int_equal(t, 1591106855);
	assert_int_equal(sedecode_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(sedecode_time("2020-06-02 14:07:35Z", &t), -EINVAL);
	assert_int_equal(sedecode_time("2020-13-02T14:07:35Z", &t), -EINVAL);
	assert_int_equal(sedecode_time("2020-06-02T14:07:35", &t), -EINVAL);
	assert_int_equal(sedecode_time("2020-06-02T14:07:35Zjunk", &t), -EINVAL);
	assert_int_equal(sedecode_time("", &t), -EINVAL);
}

static void test_bad_creation_time_counts_as_newest(void **state)
{
	(void)state;

	assert_int_equal(decode("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\","
				"\"creationTimestamp\":\"yesterday\"},\"spec\":{}}"),
			 0);
	assert_true(obj->created == INT64_MAX);
}

static void test_object_without_namespace_or_name_or_spec_is_bad(void **state)
{
	(void)state;
	const char *bad[] = {
		"{}",
		"[]",
		"{\"metadata\":[],\"spec\":{}}",
		"{\"metadata\":{\"name\":\"x\"},\"spec\":{}}",
		"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"\"},\"spec\":{}}",
		"{\"metadata\":{\"namespace\":7,\"name\":\"x\"},\"spec\":{}}",
		"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"x\"}}",
		"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"x\"},\"spec\":\"hosts\"}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode(bad[i]), -EINVAL);
		assert_true(obj->bad);
		assert_int_equal(obj->rejected[SE_REJECT_BAD_OBJECT], 1);
	}
}

static void test_wrong_json_types_in_spec_are_tolerated(void **state)
{
	(void)state;
	const char *specs[] = {
		"{\"hosts\":\"a.x\"}",
		"{\"hosts\":{\"a\":1}}",
		"{\"hosts\":[[\"a.x\"]]}",
		"{\"hosts\":[\"a.x\"],\"addresses\":\"1.2.3.4\"}",
		"{\"hosts\":[\"a.x\"],\"addresses\":[1234]}",
		"{\"hosts\":[\"a.x\"],\"location\":[]}",
		"{\"hosts\":[\"a.x\"],\"exportTo\":[7]}",
		"{\"hosts\":null,\"addresses\":null,\"exportTo\":null,\"location\":null}",
	};

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		assert_int_equal(decode_spec(specs[i]), 0);
		assert_false(obj->bad);
		assert_true(obj->nhosts <= 1);
		assert_int_equal(obj->naddrs, 0);
	}
}

static void test_hosts_and_addresses_are_capped_at_256(void **state)
{
	(void)state;
	size_t cap = 300 * 40 + 1024, n = 0;
	char *spec = malloc(cap);

	n += (size_t)snprintf(spec + n, cap - n, "{\"hosts\":[");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(spec + n, cap - n, "%s\"h%d.x\"", i ? "," : "", i);
	n += (size_t)snprintf(spec + n, cap - n, "],\"addresses\":[");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(spec + n, cap - n, "%s\"10.0.%d.%d\"", i ? "," : "", i / 256,
				      i % 256);
	snprintf(spec + n, cap - n, "]}");
	assert_int_equal(decode_spec(spec), 0);
	assert_int_equal(obj->nhosts, SE_MAX_HOSTS);
	assert_int_equal(obj->naddrs, SE_MAX_ADDRS);
	assert_int_equal(obj->rejected[SE_REJECT_BAD_HOST], 44);
	assert_int_equal(obj->rejected[SE_REJECT_BAD_ADDRESS], 44);
	free(spec);
}

static void test_status_addresses_are_matched_to_hosts(void **state)
{
	(void)state;

	assert_int_equal(decode("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\"},"
				"\"spec\":{\"hosts\":[\"one.x\",\"two.x\"],\"resolution\":\"DNS\"},"
				"\"status\":{\"addresses\":["
				"{\"value\":\"240.240.0.1\",\"host\":\"one.x\"},"
				"{\"value\":\"2001:2::f0f0:1\",\"host\":\"One.X\"},"
				"{\"value\":\"240.240.0.2\",\"host\":\"two.x\"},"
				"{\"value\":\"240.240.0.3\",\"host\":\"other.x\"},"
				"{\"value\":\"bad\",\"host\":\"two.x\"},{\"host\":\"two.x\"},7]}}"),
			 0);
	assert_int_equal(obj->nstatus, 3);
	assert_int_equal(obj->status[0].host, 0);
	assert_int_equal(obj->status[1].host, 0);
	assert_int_equal(obj->status[1].addr.v6, 1);
	assert_int_equal(obj->status[2].host, 1);
	assert_false(obj->autoalloc_optout);
}

static void test_autoallocate_optout_label_is_read(void **state)
{
	(void)state;

	assert_int_equal(
		decode("{\"metadata\":{\"namespace\":\"a\",\"name\":\"b\",\"labels\":{"
		       "\"networking.istio.io/enable-autoallocate-ip\":\"false\"}},\"spec\":{}}"),
		0);
	assert_true(obj->autoalloc_optout);
}

static void test_event_added_decodes_its_object(void **state)
{
	(void)state;
	const char *line =
		"{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"networking.istio.io/v1\","
		"\"kind\":\"ServiceEntry\",\"metadata\":{\"name\":\"reviews.default.cluster-2\","
		"\"namespace\":\"istio-system\",\"uid\":\"7c1c2f4e-4d7b-4c55-9f0e-2b8f0d7a1e11\","
		"\"resourceVersion\":\"1843401\",\"generation\":1,\"creationTimestamp\":"
		"\"2020-06-02T14:07:35Z\"},\"spec\":{\"hosts\":[\"reviews.default.cluster-2\"],"
		"\"addresses\":[\"240.0.0.3\"],\"location\":\"MESH_INTERNAL\",\"resolution\":"
		"\"DNS\",\"ports\":[{\"number\":9080,\"protocol\":\"TCP\",\"name\":\"http\"}]}}}\n";
	struct se_event ev;

	assert_int_equal(sedecode_event(line, strlen(line), &ev, obj), 0);
	assert_int_equal(ev.type, SE_EVENT_ADDED);
	assert_string_equal(ev.rv, "1843401");
	assert_string_equal(obj->ns, "istio-system");
	assert_string_equal(obj->hosts[0], "reviews.default.cluster-2");
	assert_true(obj->mesh_internal);
	assert_int_equal(obj->naddrs, 1);
}

static void test_event_types_modified_and_deleted(void **state)
{
	(void)state;
	const char *mod = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"namespace\":\"a\","
			  "\"name\":\"b\",\"uid\":\"u\"},\"spec\":{}}}";
	const char *del = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"namespace\":\"a\","
			  "\"name\":\"b\",\"uid\":\"u\"},\"spec\":{}}}";
	struct se_event ev;

	assert_int_equal(sedecode_event(mod, strlen(mod), &ev, obj), 0);
	assert_int_equal(ev.type, SE_EVENT_MODIFIED);
	assert_int_equal(sedecode_event(del, strlen(del), &ev, obj), 0);
	assert_int_equal(ev.type, SE_EVENT_DELETED);
	assert_string_equal(obj->uid, "u");
}

static void test_event_bookmark_reads_resource_version(void **state)
{
	(void)state;
	const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ServiceEntry\","
			 "\"metadata\":{\"resourceVersion\":\"1843600\",\"annotations\":{"
			 "\"k8s.io/initial-events-end\":\"true\"}}}}";
	const char *plain = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
			    "\"resourceVersion\":\"9\"}}}";
	struct se_event ev;

	assert_int_equal(sedecode_event(bm, strlen(bm), &ev, obj), 0);
	assert_int_equal(ev.type, SE_EVENT_BOOKMARK);
	assert_string_equal(ev.rv, "1843600");
	assert_true(ev.initial_events_end);
	assert_int_equal(sedecode_event(plain, strlen(plain), &ev, obj), 0);
	assert_false(ev.initial_events_end);
}

static void test_event_error_reads_gone(void **state)
{
	(void)state;
	const char *err = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
			  "\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old "
			  "resource version: 1843390 (1845001)\",\"reason\":\"Expired\","
			  "\"code\":410}}";
	struct se_event ev;

	assert_int_equal(sedecode_event(err, strlen(err), &ev, obj), 0);
	assert_int_equal(ev.type, SE_EVENT_ERROR);
	assert_int_equal(ev.code, 410);
	assert_string_equal(ev.reason, "Expired");
	assert_non_null(strstr(ev.message, "too old"));
}

static void test_event_that_is_not_an_event_is_einval(void **state)
{
	(void)state;
	const char *bad[] = {
		"",
		"not json",
		"{\"type\":\"ADDED\"}",
		"{\"type\":\"RENAMED\",\"object\":{}}",
		"{\"type\":7,\"object\":{}}",
		"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
		"[1,2,3]",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\"},\"spec\":{}}}",
	};
	struct se_event ev;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sedecode_event(bad[i], strlen(bad[i]), &ev, obj), -EINVAL);
}

static void test_every_prefix_of_an_event_is_handled(void **state)
{
	(void)state;
	const char *line =
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"n\",\"namespace\":\"s\","
		"\"creationTimestamp\":\"2020-06-02T14:07:35Z\"},\"spec\":{\"hosts\":[\"a.b\","
		"\"*.c.d\"],\"addresses\":[\"1.2.3.4\",\"fd00::1/128\"],\"exportTo\":[\"~\"]},"
		"\"status\":{\"addresses\":[{\"value\":\"1.1.1.1\",\"host\":\"a.b\"}]}}}";
	size_t len = strlen(line);
	struct se_event ev;

	for (size_t n = 0; n < len; n++) {
		char *copy = malloc(n + 1); /* exactly n bytes readable, for ASan */
		memcpy(copy, line, n);
		assert_int_equal(sedecode_event(copy, n, &ev, obj), -EINVAL);
		free(copy);
	}
	assert_int_equal(sedecode_event(line, len, &ev, obj), 0);
}

struct collected {
	int n;
	int bad;
	int good;
	char names[8][SE_MAX_NS_LEN + SE_MAX_NAME_LEN + 2];
};

static int collect(void *arg, const struct se_obj *o)
{
	struct collected *c = arg;

	if (o->bad)
		c->bad++;
	else if (c->good < 8)
		snprintf(c->names[c->good++], sizeof(c->names[0]), "%s/%s", o->ns, o->name);
	c->n++;
	return 0;
}

static int stop_at_first(void *arg, const struct se_obj *o)
{
	(void)o;
	(*(int *)arg)++;
	return -ECANCELED;
}

static void test_list_calls_back_for_each_item(void **state)
{
	(void)state;
	const char *list = "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":"
			   "\"ServiceEntryList\",\"metadata\":{\"resourceVersion\":\"1843390\","
			   "\"continue\":\"eyJ2Ijoi\",\"remainingItemCount\":1},\"items\":["
			   "{\"metadata\":{\"namespace\":\"a\",\"name\":\"one\"},\"spec\":{}},"
			   "{\"metadata\":{\"name\":\"broken\"}},"
			   "{\"metadata\":{\"namespace\":\"b\",\"name\":\"two\"},\"spec\":{}}]}";
	struct collected c = { 0 };
	struct se_list_meta meta;
	int calls = 0;

	assert_int_equal(sedecode_list(list, strlen(list), obj, collect, &c, &meta), 0);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.bad, 1);
	assert_string_equal(c.names[0], "a/one");
	assert_string_equal(c.names[1], "b/two");
	assert_string_equal(meta.rv, "1843390");
	assert_string_equal(meta.cont, "eyJ2Ijoi");
	assert_int_equal(meta.items, 3);
	assert_int_equal(meta.bad_items, 1);
	assert_false(meta.single);
	assert_int_equal(sedecode_list(list, strlen(list), obj, stop_at_first, &calls, &meta),
			 -ECANCELED);
	assert_int_equal(calls, 1);
}

static void test_document_may_be_one_serviceentry(void **state)
{
	(void)state;
	const char *one = "{\"apiVersion\":\"networking.istio.io/v1alpha3\",\"kind\":"
			  "\"ServiceEntry\",\"metadata\":{\"namespace\":\"a\",\"name\":\"one\"},"
			  "\"spec\":{\"hosts\":[\"x.y\"]}}";
	struct collected c = { 0 };
	struct se_list_meta meta;

	assert_int_equal(sedecode_list(one, strlen(one), obj, collect, &c, &meta), 0);
	assert_true(meta.single);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.names[0], "a/one");
}

static void test_document_neither_list_nor_serviceentry_is_einval(void **state)
{
	(void)state;
	const char *bad[] = { "",
			      "[]",
			      "42",
			      "{\"kind\":\"ConfigMap\",\"data\":{}}",
			      "{\"items\":{}}",
			      "{\"kind\":\"List\",\"items\":[" };
	struct collected c = { 0 };
	struct se_list_meta meta;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sedecode_list(bad[i], strlen(bad[i]), obj, collect, &c, &meta),
				 -EINVAL);
	assert_int_equal(c.n, 0);
}

static void test_reject_names_are_the_metric_labels(void **state)
{
	(void)state;

	assert_string_equal(sedecode_reject_name(SE_REJECT_BAD_HOST), "bad_host");
	assert_string_equal(sedecode_reject_name(SE_REJECT_PARTIAL_WILDCARD), "partial_wildcard");
	assert_string_equal(sedecode_reject_name(SE_REJECT_BAD_ADDRESS), "bad_address");
	assert_string_equal(sedecode_reject_name(SE_REJECT_NO_ADDRESS), "no_address");
	assert_string_equal(sedecode_reject_name(SE_REJECT_CLUSTER_DOMAIN), "cluster_domain");
	assert_string_equal(sedecode_reject_name(SE_REJECT_EXPORT_PRIVATE), "export_private");
	assert_string_equal(sedecode_reject_name(SE_REJECT_BAD_OBJECT), "bad_object");
	assert_string_equal(sedecode_reject_name(SE_REJECT_COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule6_every_served_version_decodes_alike),
		cmocka_unit_test(test_rule8_host_is_lowercased_and_one_trailing_dot_stripped),
		cmocka_unit_test(test_rule8_empty_and_long_labels_are_bad_hosts),
		cmocka_unit_test(test_rule8_characters_other_than_ldh_are_bad_hosts),
		cmocka_unit_test(test_rule8_wildcard_is_allowed_as_whole_first_label),
		cmocka_unit_test(test_rule8_partial_wildcard_ignored),
		cmocka_unit_test(test_rule8_bad_hosts_are_skipped_and_the_rest_kept),
		cmocka_unit_test(test_rule9_ipv4_and_ipv6_literals),
		cmocka_unit_test(test_rule9_full_length_cidr_becomes_an_address),
		cmocka_unit_test(test_rule9_other_cidrs_and_garbage_are_ignored),
		cmocka_unit_test(test_rule9_duplicates_removed_first_seen_order_kept),
		cmocka_unit_test(test_rule10_export_private_only_when_exactly_tilde),
		cmocka_unit_test(test_rule10_location_and_resolution_are_read),
		cmocka_unit_test(test_metadata_and_creation_time_are_read),
		cmocka_unit_test(test_rfc3339_times),
		cmocka_unit_test(test_bad_creation_time_counts_as_newest),
		cmocka_unit_test(test_object_without_namespace_or_name_or_spec_is_bad),
		cmocka_unit_test(test_wrong_json_types_in_spec_are_tolerated),
		cmocka_unit_test(test_hosts_and_addresses_are_capped_at_256),
		cmocka_unit_test(test_status_addresses_are_matched_to_hosts),
		cmocka_unit_test(test_autoallocate_optout_label_is_read),
		cmocka_unit_test(test_event_added_decodes_its_object),
		cmocka_unit_test(test_event_types_modified_and_deleted),
		cmocka_unit_test(test_event_bookmark_reads_resource_version),
		cmocka_unit_test(test_event_error_reads_gone),
		cmocka_unit_test(test_event_that_is_not_an_event_is_einval),
		cmocka_unit_test(test_every_prefix_of_an_event_is_handled),
		cmocka_unit_test(test_list_calls_back_for_each_item),
		cmocka_unit_test(test_document_may_be_one_serviceentry),
		cmocka_unit_test(test_document_neither_list_nor_serviceentry_is_einval),
		cmocka_unit_test(test_reject_names_are_the_metric_labels),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
