/* ServiceEntry decoding. See sedecode.h. */
#include "k8s/sedecode.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const reject_names[SE_REJECT_COUNT] = {
	[SE_REJECT_BAD_HOST] = "bad_host",
	[SE_REJECT_PARTIAL_WILDCARD] = "partial_wildcard",
	[SE_REJECT_BAD_ADDRESS] = "bad_address",
	[SE_REJECT_NO_ADDRESS] = "no_address",
	[SE_REJECT_CLUSTER_DOMAIN] = "cluster_domain",
	[SE_REJECT_EXPORT_PRIVATE] = "export_private",
	[SE_REJECT_BAD_OBJECT] = "bad_object",
};

const char *sedecode_reject_name(enum se_reject r)
{
	return (unsigned)r < SE_REJECT_COUNT ? reject_names[r] : "unknown";
}

int sedecode_host(const char *in, size_t len, char *out, enum se_reject *why)
{
	size_t i = 0, label = 0;

	*why = SE_REJECT_BAD_HOST;
	if (len && in[len - 1] == '.')
		len--;
	if (len == 0 || len > SE_MAX_HOST_LEN)
		return -EINVAL;
	if (in[0] == '*') {
		if (len > 1 && in[1] != '.') {
			*why = SE_REJECT_PARTIAL_WILDCARD;
			return -EINVAL;
		}
		if (len <= 2) /* "*" alone, or "*." */
			return -EINVAL;
		out[0] = '*';
		out[1] = '.';
		i = 2;
	}
	for (; i < len; i++) {
		char c = in[i];
		if (c == '.') {
			if (label == 0 || label > 63)
				return -EINVAL;
			label = 0;
			out[i] = c;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (char)(c + 32);
		if (c == '*' && memchr(in, '.', i) == NULL) {
			*why = SE_REJECT_PARTIAL_WILDCARD; /* "foo*.bar": a * inside the first label
							    */
			return -EINVAL;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return -EINVAL;
		label++;
		out[i] = c;
	}
	if (label == 0 || label > 63)
		return -EINVAL;
	out[len] = 0;
	return (int)len;
}

int sedecode_addr(const char *in, size_t len, struct se_addr *out)
{
	char buf[65], *slash;
	long prefix = -1;

	if (len == 0 || len >= sizeof(buf) || memchr(in, 0, len))
		return -EINVAL;
	memcpy(buf, in, len);
	buf[len] = 0;
	slash = strchr(buf, '/');
	if (slash) {
		const char *p = slash + 1;
		if (*p == 0 || strlen(p) > 3)
			return -EINVAL;
		prefix = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -EINVAL;
			prefix = prefix * 10 + (*p - '0');
		}
		*slash = 0;
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->bytes) == 1) {
		out->v6 = 0;
		return prefix < 0 || prefix == 32 ? 0 : -EINVAL;
	}
	if (inet_pton(AF_INET6, buf, out->bytes) == 1) {
		out->v6 = 1;
		return prefix < 0 || prefix == 128 ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/* Reads exactly @n digits at *@p. */
static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

static int expect(const char **p, char a, char b)
{
	if (**p != a && **p != b)
		return -EINVAL;
	(*p)++;
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int sedecode_time(const char *in, int64_t *out)
{
	const char *p = in;
	int y, mo, d, h, mi, s, oh = 0, om = 0, sign = 0;

	if (digits(&p, 4, &y) || expect(&p, '-', '-') || digits(&p, 2, &mo) ||
	    expect(&p, '-', '-') || digits(&p, 2, &d) || expect(&p, 'T', 't') ||
	    digits(&p, 2, &h) || expect(&p, ':', ':') || digits(&p, 2, &mi) ||
	    expect(&p, ':', ':') || digits(&p, 2, &s))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (digits(&p, 2, &oh) || expect(&p, ':', ':') || digits(&p, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || oh > 23 ||
	    om > 59)
		return -EINVAL;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s -
	       sign * (oh * 3600 + om * 60);
	return 0;
}

/* ---- objects ---- */

static const cJSON *child(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* The string at @key, or NULL. */
static const char *string_at(const cJSON *obj, const char *key)
{
	const cJSON *c = child(obj, key);

	return cJSON_IsString(c) && c->valuestring ? c->valuestring : NULL;
}

/* Copies string @key into @out (@cap bytes). Returns 0, -ENOENT or -E2BIG. */
static int copy_string(const cJSON *obj, const char *key, char *out, size_t cap)
{
	const char *s = string_at(obj, key);
	size_t n;

	out[0] = 0;
	if (!s)
		return -ENOENT;
	n = strlen(s);
	if (n >= cap)
		return -E2BIG;
	memcpy(out, s, n + 1);
	return 0;
}

static void reject(struct se_obj *o, enum se_reject why, const char *what, const char *value)
{
	if (o->rejected[why] < UINT16_MAX)
		o->rejected[why]++;
	if (!o->reject_note[0])
		snprintf(o->reject_note, sizeof(o->reject_note), "%s \"%.80s\": %s", what,
			 value ? value : "(not a string)", sedecode_reject_name(why));
}

/* Reads an enum that arrives as a string (or, from ancient objects, as its number). */
static int enum_at(const cJSON *obj, const char *key, const char *const *names, int n)
{
	const cJSON *c = child(obj, key);

	if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble < n)
		return (int)c->valuedouble;
	if (cJSON_IsString(c) && c->valuestring)
		for (int i = 0; i < n; i++)
			if (strcmp(c->valuestring, names[i]) == 0)
				return i;
	return 0;
}

static int find_host(const struct se_obj *o, const char *host)
{
	for (int i = 0; i < o->nhosts; i++)
		if (strcmp(o->hosts[i], host) == 0)
			return i;
	return -1;
}

static void decode_hosts(const cJSON *spec, struct se_obj *o)
{
	const cJSON *item, *arr = child(spec, "hosts");
	enum se_reject why;

	if (!cJSON_IsArray(arr))
		return;
	cJSON_ArrayForEach(item, arr)
	{
		const char *s = cJSON_IsString(item) ? item->valuestring : NULL;
		if (!s) {
			reject(o, SE_REJECT_BAD_HOST, "host", NULL);
			continue;
		}
		if (o->nhosts == SE_MAX_HOSTS) {
			reject(o, SE_REJECT_BAD_HOST, "host over the cap of 256", s);
			continue;
		}
		if (sedecode_host(s, strlen(s), o->hosts[o->nhosts], &why) < 0) {
			reject(o, why, "host", s);
			continue;
		}
		if (find_host(o, o->hosts[o->nhosts]) < 0)
			o->nhosts++;
	}
}

static bool addr_equal(const struct se_addr *a, const struct se_addr *b)
{
	return a->v6 == b->v6 && memcmp(a->bytes, b->bytes, a->v6 ? 16 : 4) == 0;
}

static void decode_addresses(const cJSON *spec, struct se_obj *o)
{
	const cJSON *item, *arr = child(spec, "addresses");
	struct se_addr a;
	int i;

	if (!cJSON_IsArray(arr))
		return;
	cJSON_ArrayForEach(item, arr)
	{
		const char *s = cJSON_IsString(item) ? item->valuestring : NULL;
		if (!s || sedecode_addr(s, strlen(s), &a) < 0) {
			reject(o, SE_REJECT_BAD_ADDRESS, "address", s);
			continue;
		}
		if (o->naddrs == SE_MAX_ADDRS) {
			reject(o, SE_REJECT_BAD_ADDRESS, "address over the cap of 256", s);
			continue;
		}
		for (i = 0; i < o->naddrs && !addr_equal(&o->addrs[i], &a); i++)
			;
		if (i == o->naddrs)
			o->addrs[o->naddrs++] = a;
	}
}

static void decode_status(const cJSON *status, struct se_obj *o)
{
	const cJSON *item, *arr = child(status, "addresses");
	char host[SE_MAX_HOST_LEN + 1];
	enum se_reject why;
	const char *v, *h;
	int idx;

	if (!cJSON_IsArray(arr))
		return;
	cJSON_ArrayForEach(item, arr)
	{
		v = string_at(item, "value");
		h = string_at(item, "host");
		if (!v || !h || o->nstatus == SE_MAX_STATUS)
			continue;
		if (sedecode_host(h, strlen(h), host, &why) < 0 || (idx = find_host(o, host)) < 0)
			continue;
		if (sedecode_addr(v, strlen(v), &o->status[o->nstatus].addr) < 0)
			continue;
		o->status[o->nstatus++].host = (uint16_t)idx;
	}
}

static bool export_private(const cJSON *spec)
{
	const cJSON *arr = child(spec, "exportTo");

	return cJSON_IsArray(arr) && cJSON_GetArraySize(arr) == 1 && cJSON_IsString(arr->child) &&
	       strcmp(arr->child->valuestring, "~") == 0;
}

static int bad_object(struct se_obj *o, const char *why)
{
	o->bad = true;
	o->rejected[SE_REJECT_BAD_OBJECT] = 1;
	snprintf(o->reject_note, sizeof(o->reject_note), "object %.50s/%.50s: %s", o->ns, o->name,
		 why);
	return -EINVAL;
}

int sedecode_object(const cJSON *obj, struct se_obj *o)
{
	static const char *const locations[] = { "MESH_EXTERNAL", "MESH_INTERNAL" };
	static const char *const resolutions[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN",
						   "DYNAMIC_DNS" };
	const cJSON *meta = child(obj, "metadata"), *spec = child(obj, "spec");
	const char *ts, *optout;

	o->bad = false;
	o->ns[0] = o->name[0] = o->uid[0] = o->rv[0] = 0;
	o->created = INT64_MAX;
	o->mesh_internal = o->export_private = o->autoalloc_optout = false;
	o->resolution = SE_RESOLUTION_NONE;
	o->nhosts = o->naddrs = o->nstatus = 0;
	memset(o->rejected, 0, sizeof(o->rejected));
	o->reject_note[0] = 0;

	if (!cJSON_IsObject(meta))
		return bad_object(o, "no metadata");
	if (copy_string(meta, "namespace", o->ns, sizeof(o->ns)) < 0 || !o->ns[0])
		return bad_object(o, "no usable metadata.namespace");
	if (copy_string(meta, "name", o->name, sizeof(o->name)) < 0 || !o->name[0])
		return bad_object(o, "no usable metadata.name");
	if (copy_string(meta, "uid", o->uid, sizeof(o->uid)) == -E2BIG ||
	    copy_string(meta, "resourceVersion", o->rv, sizeof(o->rv)) == -E2BIG)
		return bad_object(o, "uid or resourceVersion too long");
	ts = string_at(meta, "creationTimestamp");
	if (ts && sedecode_time(ts, &o->created) < 0)
		o->created = INT64_MAX;
	optout = string_at(child(meta, "labels"), "networking.istio.io/enable-autoallocate-ip");
	o->autoalloc_optout = optout && strcmp(optout, "false") == 0;
	if (!cJSON_IsObject(spec))
		return bad_object(o, "no spec");

	o->mesh_internal = enum_at(spec, "location", locations, 2) == 1;
	o->resolution = (enum se_resolution)enum_at(spec, "resolution", resolutions, 5);
	o->export_private = export_private(spec);
	decode_hosts(spec, o);
	decode_addresses(spec, o);
	decode_status(child(obj, "status"), o);
	return 0;
}

/* ---- events and lists ---- */

int sedecode_event(const char *line, size_t len, struct se_event *ev, struct se_obj *obj)
{
	static const char *const types[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };
	cJSON *root = cJSON_ParseWithLength(line, len);
	const cJSON *object;
	const char *type, *end;
	int r = -EINVAL, i;

	memset(ev, 0, sizeof(*ev));
	if (!root)
		return -EINVAL;
	type = string_at(root, "type");
	object = child(root, "object");
	if (!type || !cJSON_IsObject(object))
		goto out;
	for (i = 0; i < 5 && strcmp(type, types[i]) != 0; i++)
		;
	if (i == 5)
		goto out;
	ev->type = (enum se_event_type)i;
	switch (ev->type) {
	case SE_EVENT_BOOKMARK:
		if (copy_string(child(object, "metadata"), "resourceVersion", ev->rv,
				sizeof(ev->rv)) < 0)
			goto out;
		end = string_at(child(child(object, "metadata"), "annotations"),
				"k8s.io/initial-events-end");
		ev->initial_events_end = end && strcmp(end, "true") == 0;
		r = 0;
		break;
	case SE_EVENT_ERROR:
		if (cJSON_IsNumber(child(object, "code")))
			ev->code = (int)child(object, "code")->valuedouble;
		(void)copy_string(object, "reason", ev->reason, sizeof(ev->reason));
		if (copy_string(object, "message", ev->message, sizeof(ev->message)) == -E2BIG)
			snprintf(ev->message, sizeof(ev->message), "%.200s...",
				 string_at(object, "message"));
		r = 0;
		break;
	default:
		r = sedecode_object(object, obj);
		memcpy(ev->rv, obj->rv, sizeof(ev->rv));
		break;
	}
out:
	cJSON_Delete(root);
	return r;
}

int sedecode_list(const char *text, size_t len, struct se_obj *scratch, sedecode_item_fn fn,
		  void *arg, struct se_list_meta *meta)
{
	cJSON *root = cJSON_ParseWithLength(text, len);
	const cJSON *items, *item;
	const char *kind;
	int r = -EINVAL;

	memset(meta, 0, sizeof(*meta));
	if (!cJSON_IsObject(root))
		goto out;
	items = child(root, "items");
	kind = string_at(root, "kind");
	if (cJSON_IsArray(items)) {
		if (copy_string(child(root, "metadata"), "resourceVersion", meta->rv,
				sizeof(meta->rv)) == -E2BIG ||
		    copy_string(child(root, "metadata"), "continue", meta->cont,
				sizeof(meta->cont)) == -E2BIG) {
			r = -E2BIG;
			goto out;
		}
		r = 0;
		cJSON_ArrayForEach(item, items)
		{
			if (sedecode_object(item, scratch) < 0)
				meta->bad_items++;
			meta->items++;
			r = fn(arg, scratch);
			if (r < 0)
				break;
		}
	} else if ((kind && strcmp(kind, "ServiceEntry") == 0) ||
		   (!kind && child(root, "spec") && child(root, "metadata"))) {
		meta->single = true;
		if (sedecode_object(root, scratch) < 0)
			meta->bad_items++;
		meta->items = 1;
		(void)copy_string(child(root, "metadata"), "resourceVersion", meta->rv,
				  sizeof(meta->rv));
		r = fn(arg, scratch);
	}
out:
	cJSON_Delete(root);
	return r;
}
