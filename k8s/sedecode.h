/* ServiceEntry decoding: one object, a watch event line, a list document (SEMANTICS.md rules
 * 6-10). Validates defensively: the API server's schema and Istio's webhook may be absent or
 * older than the data. A bad host or address is skipped and counted; an object without a
 * namespace and name is bad as a whole. Nothing here allocates beyond cJSON's parse tree.
 *
 * Pure: cJSON only; no I/O.
 */
#ifndef MESHDNS_SEDECODE_H
#define MESHDNS_SEDECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define SE_MAX_HOSTS	256 /* per entry, as the CRD caps them */
#define SE_MAX_ADDRS	256
#define SE_MAX_STATUS	512 /* status.addresses: one IPv4 and one IPv6 per host */
#define SE_MAX_HOST_LEN 253
#define SE_MAX_NS_LEN	63
#define SE_MAX_NAME_LEN 253
#define SE_MAX_ID_LEN	127 /* uid and resourceVersion */
#define SE_MAX_CONTINUE 4095

/* Why an item was rejected; the label of meshdns_rejected_total{reason}. */
enum se_reject {
	SE_REJECT_BAD_HOST = 0,
	SE_REJECT_PARTIAL_WILDCARD,
	SE_REJECT_BAD_ADDRESS,
	SE_REJECT_NO_ADDRESS,
	SE_REJECT_CLUSTER_DOMAIN,
	SE_REJECT_EXPORT_PRIVATE,
	SE_REJECT_BAD_OBJECT,
	SE_REJECT_COUNT,
};

/* The metric label of @r ("bad_host", ...). */
const char *sedecode_reject_name(enum se_reject r);

enum se_resolution {
	SE_RESOLUTION_NONE = 0, /* also when absent */
	SE_RESOLUTION_STATIC,
	SE_RESOLUTION_DNS,
	SE_RESOLUTION_DNS_ROUND_ROBIN,
	SE_RESOLUTION_DYNAMIC_DNS,
};

struct se_addr {
	uint8_t v6; /* 0: IPv4 in bytes[0..3]; 1: IPv6 in bytes[0..15] */
	uint8_t bytes[16];
};

/* An auto-allocated address from status.addresses, for hosts[host]. */
struct se_status_addr {
	struct se_addr addr;
	uint16_t host;
};

/* One decoded ServiceEntry. Large (about 80 KiB): allocate one and reuse it. */
struct se_obj {
	bool bad; /* no usable metadata: rejected as a whole (bad_object) */
	char ns[SE_MAX_NS_LEN + 1];
	char name[SE_MAX_NAME_LEN + 1];
	char uid[SE_MAX_ID_LEN + 1];
	char rv[SE_MAX_ID_LEN + 1];
	int64_t created; /* creationTimestamp, Unix seconds; INT64_MAX when absent or invalid */
	bool mesh_internal;
	bool export_private;   /* exportTo is exactly ["~"] */
	bool autoalloc_optout; /* label networking.istio.io/enable-autoallocate-ip: "false" */
	enum se_resolution resolution;
	uint16_t nhosts;
	uint16_t naddrs;
	uint16_t nstatus;
	char hosts[SE_MAX_HOSTS][SE_MAX_HOST_LEN + 1]; /* normalised (rule 8), unique */
	struct se_addr addrs[SE_MAX_ADDRS];	       /* usable spec.addresses, unique */
	struct se_status_addr status[SE_MAX_STATUS];
	uint16_t rejected[SE_REJECT_COUNT]; /* items of this object rejected, by reason */
	char reject_note[160];		    /* the first rejection, for the log */
};

/* Normalises host text @in (@len bytes) per rule 8 into @out (SE_MAX_HOST_LEN + 1 bytes):
 * lowercase, one trailing dot stripped, "*" only as the whole first label. Returns the
 * length, or -EINVAL with *@why set (SE_REJECT_BAD_HOST or SE_REJECT_PARTIAL_WILDCARD). */
int sedecode_host(const char *in, size_t len, char *out, enum se_reject *why);

/* Parses address text (rule 9): an IPv4 or IPv6 literal, or a /32 or /128 CIDR. Returns 0,
 * or -EINVAL for anything else (other CIDRs included). */
int sedecode_addr(const char *in, size_t len, struct se_addr *out);

/* Parses an RFC 3339 time ("2020-06-02T14:07:35Z", fractions and offsets accepted) into Unix
 * seconds. Returns 0 or -EINVAL. */
int sedecode_time(const char *in, int64_t *out);

/* Decodes the ServiceEntry object @obj into @out (overwritten). Returns 0, or -EINVAL when
 * the object is bad as a whole (@out->bad set, rejected[SE_REJECT_BAD_OBJECT] = 1). */
int sedecode_object(const struct cJSON *obj, struct se_obj *out);

enum se_event_type {
	SE_EVENT_ADDED,
	SE_EVENT_MODIFIED,
	SE_EVENT_DELETED,
	SE_EVENT_BOOKMARK,
	SE_EVENT_ERROR,
};

/* A watch event's envelope. */
struct se_event {
	enum se_event_type type;
	char rv[SE_MAX_ID_LEN + 1]; /* BOOKMARK: metadata.resourceVersion; others: the object's */
	bool initial_events_end;    /* BOOKMARK with k8s.io/initial-events-end: "true" */
	int code;		    /* ERROR: status code (410 for Expired/Gone), 0 if absent */
	char reason[64];	    /* ERROR: reason ("Expired") */
	char message[256];	    /* ERROR: message, for the log */
};

/* Decodes one watch event line (@len bytes, one JSON object; a trailing newline is fine).
 * ADDED, MODIFIED and DELETED decode their object into @obj. Returns 0; -EINVAL when the
 * line is not an event (bad JSON, unknown type, missing object) or its object is bad
 * (@ev->type is then set and @obj->bad); -ENOMEM. */
int sedecode_event(const char *line, size_t len, struct se_event *ev, struct se_obj *obj);

/* What a list document said about itself. */
struct se_list_meta {
	bool single;			/* the document was one ServiceEntry, not a List */
	char rv[SE_MAX_ID_LEN + 1];	/* metadata.resourceVersion of the list */
	char cont[SE_MAX_CONTINUE + 1]; /* metadata.continue ("" on the last page) */
	size_t items;			/* items passed to the callback */
	size_t bad_items;		/* of which bad as a whole */
};

/* Called for each item of a list, decoded into the scratch object (bad ones too, with
 * @obj->bad set). A negative return stops the walk and is returned by sedecode_list. */
typedef int (*sedecode_item_fn)(void *arg, const struct se_obj *obj);

/* Decodes a list document (ServiceEntryList, a kubectl "List", or one ServiceEntry object)
 * of @len bytes, calling @fn for each item with @scratch. Returns 0; -EINVAL when the text
 * is not JSON or neither a list nor a ServiceEntry; -E2BIG when the continue token is too
 * long; -ENOMEM; or @fn's error. */
int sedecode_list(const char *text, size_t len, struct se_obj *scratch, sedecode_item_fn fn,
		  void *arg, struct se_list_meta *meta);

#endif
