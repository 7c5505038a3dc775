/* The ServiceEntry store. See sestore.h.
 *
 * Memory: one allocation per entry (header, host pointers, addresses, "ns\0name\0") and one
 * per distinct host (header and name), each in a chained hash table keyed by wire_hash. A
 * typical entry (one host, one address) costs about 200 bytes with its host record.
 */
#include "k8s/sestore.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "agent/meshtab.h"
#include "agent/wire.h"
#include "k8s/tld.h"

#define LOG_LINES_PER_FLUSH 10

#define ENTRY_INTERNAL	0x01 /* location MESH_INTERNAL */
#define ENTRY_AUTOALLOC 0x02 /* may use status.addresses (resolution, opt-out label) */

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

/* A chained hash table of hnodes. */
struct htab {
	struct hnode **b;
	size_t mask;
	size_t count;
};

struct shost;

struct se_entry {
	struct hnode node; /* key: "ns/name" */
	uint64_t uid_hash;
	uint64_t rv_hash;
	int64_t created;
	uint32_t seen; /* replace epoch it was last upserted in */
	uint16_t nhosts;
	uint16_t naddrs;
	uint16_t nstatus;
	uint8_t flags;
	uint8_t ns_len;
	struct shost **hosts;
	struct se_addr *addrs;
	struct se_status_addr *status;
	char *name; /* after ns: key = ns '\0' name '\0' */
	char key[];
};

/* A host name and the entries that list it. */
struct shost {
	struct hnode node;
	uint32_t ncontrib;
	uint32_t cap;
	struct se_entry **contrib;
	bool dirty;
	bool in_table;
	char name[];
};

struct sestore {
	struct meshtab *table;
	struct htab entries;
	struct htab hosts;
	char domain[WIRE_MAX_NAME]; /* cluster domain, lowercase, no trailing dot */
	size_t domain_len;
	const char *domain_label; /* its last label */
	bool auto_zones;
	bool use_auto;
	bool in_replace;
	uint32_t epoch;
	struct shost **dirty;
	size_t ndirty;
	size_t dirty_cap;
	size_t table_hosts;
	uint64_t relists;
	uint64_t rejected[SE_REJECT_COUNT];
	unsigned log_budget;
	size_t log_suppressed;
	struct se_entry **sorted; /* scratch for picking a host's winner */
	size_t sorted_cap;
	size_t n4; /* addresses merged by recompute */
	size_t n6;
	struct in_addr v4[MESHTAB_MAX_ADDRS];
	struct in6_addr v6[MESHTAB_MAX_ADDRS];
};

/* ---- hash tables ---- */

static int htab_init(struct htab *h)
{
	h->mask = 255;
	h->count = 0;
	h->b = calloc(h->mask + 1, sizeof(*h->b));
	return h->b ? 0 : -ENOMEM;
}

static void htab_grow(struct htab *h)
{
	size_t nmask = h->mask * 2 + 1;
	struct hnode **nb = calloc(nmask + 1, sizeof(*nb));

	if (!nb)
		return; /* stays denser */
	for (size_t i = 0; i <= h->mask; i++) {
		struct hnode *n = h->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			n->next = nb[n->hash & nmask];
			nb[n->hash & nmask] = n;
		}
	}
	free(h->b);
	h->b = nb;
	h->mask = nmask;
}

static void htab_add(struct htab *h, struct hnode *n)
{
	if (h->count > h->mask)
		htab_grow(h);
	n->next = h->b[n->hash & h->mask];
	h->b[n->hash & h->mask] = n;
	h->count++;
}

static void htab_remove(struct htab *h, struct hnode *n)
{
	struct hnode **p = &h->b[n->hash & h->mask];

	while (*p && *p != n)
		p = &(*p)->next;
	if (*p) {
		*p = n->next;
		h->count--;
	}
}

static uint64_t key_hash(const char *ns, const char *name)
{
	char key[SE_MAX_NS_LEN + 1 + SE_MAX_NAME_LEN + 1];
	size_t a = strlen(ns), b = strlen(name);

	memcpy(key, ns, a);
	key[a] = '/';
	memcpy(key + a + 1, name, b);
	return wire_hash(key, a + 1 + b);
}

static struct se_entry *entry_find(const struct sestore *s, const char *ns, const char *name)
{
	uint64_t h = key_hash(ns, name);

	for (struct hnode *n = s->entries.b[h & s->entries.mask]; n; n = n->next) {
		struct se_entry *e = (struct se_entry *)n;
		if (n->hash == h && strcmp(e->key, ns) == 0 && strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

static struct shost *host_find(const struct sestore *s, const char *name, uint64_t h)
{
	for (struct hnode *n = s->hosts.b[h & s->hosts.mask]; n; n = n->next) {
		struct shost *sh = (struct shost *)n;
		if (n->hash == h && strcmp(sh->name, name) == 0)
			return sh;
	}
	return NULL;
}

/* ---- logging of rejections: a few lines per flush, then a count ---- */

static void count_rejects(struct sestore *s, const struct se_obj *o)
{
	bool any = false;

	for (int i = 0; i < SE_REJECT_COUNT; i++) {
		s->rejected[i] += o->rejected[i];
		any |= o->rejected[i] > 0;
	}
	if (!any)
		return;
	if (s->log_budget > 0) {
		s->log_budget--;
		if (o->bad)
			log_warn("mesh", "ServiceEntry skipped: %s", o->reject_note);
		else
			log_warn("mesh", "ServiceEntry %s/%s: skipped %s", o->ns, o->name,
				 o->reject_note);
	} else {
		s->log_suppressed++;
	}
}

/* ---- host index ---- */

static int mark_dirty(struct sestore *s, struct shost *h)
{
	if (h->dirty)
		return 0;
	if (s->ndirty == s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap * 2 : 64;
		struct shost **d = realloc(s->dirty, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		s->dirty = d;
		s->dirty_cap = cap;
	}
	s->dirty[s->ndirty++] = h;
	h->dirty = true;
	return 0;
}

static struct se_entry **contrib_slots(struct shost *h)
{
	return h->cap <= 1 ? (struct se_entry **)&h->contrib : h->contrib;
}

static int contrib_add(struct shost *h, struct se_entry *e)
{
	if (h->ncontrib == 0 && h->cap <= 1) {
		h->cap = 1;
		h->contrib = (struct se_entry **)(void *)e; /* one contributor: kept inline */
		h->ncontrib = 1;
		return 0;
	}
	if (h->ncontrib == h->cap) {
		uint32_t cap = h->cap * 2;
		struct se_entry **n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memcpy(n, contrib_slots(h), h->ncontrib * sizeof(*n));
		if (h->cap > 1)
			free(h->contrib);
		h->contrib = n;
		h->cap = cap;
	}
	contrib_slots(h)[h->ncontrib++] = e;
	return 0;
}

static void contrib_remove(struct shost *h, struct se_entry *e)
{
	struct se_entry **c = contrib_slots(h);

	for (uint32_t i = 0; i < h->ncontrib; i++) {
		if (c[i] == e) {
			c[i] = c[--h->ncontrib];
			return;
		}
	}
}

static struct shost *host_get(struct sestore *s, const char *name)
{
	size_t len = strlen(name);
	uint64_t hash = wire_hash(name, len);
	struct shost *h = host_find(s, name, hash);

	if (h)
		return h;
	h = calloc(1, sizeof(*h) + len + 1);
	if (!h)
		return NULL;
	h->node.hash = hash;
	memcpy(h->name, name, len + 1);
	htab_add(&s->hosts, &h->node);
	return h;
}

static void host_release(struct sestore *s, struct shost *h)
{
	htab_remove(&s->hosts, &h->node);
	if (h->cap > 1)
		free(h->contrib);
	free(h);
}

/* ---- entries ---- */

/* True when host @name (no "*.") is the cluster domain, clusterset.local or below them. */
static bool under(const char *name, size_t len, const char *domain, size_t dlen)
{
	return len >= dlen && memcmp(name + len - dlen, domain, dlen) == 0 &&
	       (len == dlen || name[len - dlen - 1] == '.');
}

static bool kube_dns_name(const struct sestore *s, const char *host)
{
	const char *n = host[0] == '*' ? host + 2 : host;
	size_t len = strlen(n);

	return under(n, len, s->domain, s->domain_len) || under(n, len, "clusterset.local", 16);
}

/* Addresses entry @e gives host number @i: spec.addresses, else (with --use-auto-allocated)
 * the status addresses allocated to that host. Calls @fn for each. Returns how many. */
static size_t entry_addrs(const struct sestore *s, const struct se_entry *e, unsigned i,
			  void (*fn)(struct sestore *, const struct se_addr *), struct sestore *arg)
{
	size_t n = 0;

	if (e->naddrs) {
		for (unsigned k = 0; k < e->naddrs; k++, n++)
			if (fn)
				fn(arg, &e->addrs[k]);
		return n;
	}
	if (!s->use_auto || !(e->flags & ENTRY_AUTOALLOC))
		return 0;
	for (unsigned k = 0; k < e->nstatus; k++) {
		if (e->status[k].host != i)
			continue;
		n++;
		if (fn)
			fn(arg, &e->status[k].addr);
	}
	return n;
}

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* Builds the compact entry for @o, keeping only the hosts that count (host indexes of the
 * status addresses are renumbered accordingly). */
static struct se_entry *entry_build(struct sestore *s, const struct se_obj *o, uint16_t *map)
{
	size_t ns_len = strlen(o->ns), name_len = strlen(o->name), nh = 0, ns = 0, off;
	struct se_entry *e;

	for (unsigned i = 0; i < o->nhosts; i++) {
		map[i] = UINT16_MAX;
		if (kube_dns_name(s, o->hosts[i])) {
			s->rejected[SE_REJECT_CLUSTER_DOMAIN]++;
			continue;
		}
		map[i] = (uint16_t)nh++;
	}
	for (unsigned k = 0; k < o->nstatus; k++)
		ns += map[o->status[k].host] != UINT16_MAX;
	off = align8(sizeof(*e) + ns_len + 1 + name_len + 1);
	e = malloc(off + nh * sizeof(struct shost *) + o->naddrs * sizeof(struct se_addr) +
		   ns * sizeof(struct se_status_addr));
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	memcpy(e->key, o->ns, ns_len + 1);
	e->name = e->key + ns_len + 1;
	memcpy(e->name, o->name, name_len + 1);
	e->ns_len = (uint8_t)ns_len;
	e->node.hash = key_hash(o->ns, o->name);
	e->uid_hash = wire_hash(o->uid, strlen(o->uid));
	e->rv_hash = wire_hash(o->rv, strlen(o->rv));
	e->created = o->created;
	e->flags =
		(o->mesh_internal ? ENTRY_INTERNAL : 0) |
		(o->resolution != SE_RESOLUTION_NONE && !o->autoalloc_optout ? ENTRY_AUTOALLOC : 0);
	e->hosts = (struct shost **)(void *)((char *)e + off);
	/* pointers, then status addresses (2-byte aligned), then addresses (bytes) */
	e->status = (struct se_status_addr *)(void *)(e->hosts + nh);
	e->addrs = (struct se_addr *)(void *)(e->status + ns);
	e->nhosts = 0; /* hosts are linked by entry_link */
	e->naddrs = o->naddrs;
	memcpy(e->addrs, o->addrs, o->naddrs * sizeof(struct se_addr));
	for (unsigned k = 0; k < o->nstatus; k++) {
		if (map[o->status[k].host] == UINT16_MAX)
			continue;
		e->status[e->nstatus] = o->status[k];
		e->status[e->nstatus++].host = map[o->status[k].host];
	}
	return e;
}

/* Links @e to the hosts of @o that count. On failure @e is linked to none. */
static int entry_link(struct sestore *s, struct se_entry *e, const struct se_obj *o,
		      const uint16_t *map)
{
	for (unsigned i = 0; i < o->nhosts; i++) {
		struct shost *h;
		if (map[i] == UINT16_MAX)
			continue;
		h = host_get(s, o->hosts[i]);
		if (!h || contrib_add(h, e) < 0)
			goto fail;
		e->hosts[e->nhosts++] = h;
		if (mark_dirty(s, h) < 0)
			goto fail;
		if (entry_addrs(s, e, map[i], NULL, NULL) == 0)
			s->rejected[SE_REJECT_NO_ADDRESS]++;
	}
	return 0;
fail:
	for (unsigned i = 0; i < e->nhosts; i++)
		contrib_remove(e->hosts[i], e);
	e->nhosts = 0;
	return -ENOMEM;
}

/* Unlinks @e from its hosts (marking them for recomputation) and frees it. */
static void entry_remove(struct sestore *s, struct se_entry *e)
{
	for (unsigned i = 0; i < e->nhosts; i++) {
		contrib_remove(e->hosts[i], e);
		if (mark_dirty(s, e->hosts[i]) < 0)
			log_error("mesh", "out of memory: host %s may stay stale",
				  e->hosts[i]->name);
	}
	htab_remove(&s->entries, &e->node);
	free(e);
}

int sestore_upsert(struct sestore *s, const struct se_obj *o)
{
	struct se_entry *old, *e;
	uint16_t map[SE_MAX_HOSTS];

	if (o->bad) {
		count_rejects(s, o);
		return 0;
	}
	old = entry_find(s, o->ns, o->name);
	if (old && old->uid_hash == wire_hash(o->uid, strlen(o->uid)) &&
	    old->rv_hash == wire_hash(o->rv, strlen(o->rv)) && o->rv[0]) {
		old->seen = s->epoch; /* unchanged (a relist): nothing to do */
		return 0;
	}
	count_rejects(s, o);
	if (o->export_private) {
		s->rejected[SE_REJECT_EXPORT_PRIVATE]++;
		if (old)
			entry_remove(s, old);
		return 0;
	}
	e = entry_build(s, o, map);
	if (!e)
		return -ENOMEM;
	if (entry_link(s, e, o, map) < 0) {
		free(e);
		return -ENOMEM;
	}
	if (old)
		entry_remove(s, old);
	if (e->nhosts == 0) { /* nothing in it counts */
		free(e);
		return 0;
	}
	e->seen = s->epoch;
	htab_add(&s->entries, &e->node);
	return 0;
}

int sestore_delete(struct sestore *s, const struct se_obj *o)
{
	struct se_entry *e = entry_find(s, o->ns, o->name);

	if (!e)
		return -ENOENT;
	if (o->uid[0] && e->uid_hash != wire_hash(o->uid, strlen(o->uid)))
		return -ESTALE;
	entry_remove(s, e);
	return 0;
}

void sestore_replace_begin(struct sestore *s)
{
	s->epoch++;
	s->in_replace = true;
}

void sestore_replace_abort(struct sestore *s)
{
	s->in_replace = false;
}

int sestore_replace_commit(struct sestore *s)
{
	for (size_t i = 0; s->in_replace && i <= s->entries.mask; i++) {
		struct hnode *n = s->entries.b[i], *next;
		for (; n; n = next) {
			next = n->next;
			if (((struct se_entry *)n)->seen != s->epoch)
				entry_remove(s, (struct se_entry *)n);
		}
	}
	s->in_replace = false;
	s->relists++;
	meshtab_set_synced(s->table);
	return sestore_flush(s);
}

/* ---- recomputing a host ---- */

/* Orders entries by age: creationTimestamp, then name, then namespace (rule 11). */
static int older_first(const void *pa, const void *pb)
{
	const struct se_entry *a = *(struct se_entry *const *)pa;
	const struct se_entry *b = *(struct se_entry *const *)pb;
	int c;

	if (a->created != b->created)
		return a->created < b->created ? -1 : 1;
	c = strcmp(a->name, b->name);
	return c ? c : strcmp(a->key, b->key);
}

static void add_addr(struct sestore *s, const struct se_addr *a)
{
	size_t i;

	if (!a->v6) {
		for (i = 0; i < s->n4 && memcmp(&s->v4[i], a->bytes, 4) != 0; i++)
			;
		if (i == s->n4 && s->n4 < MESHTAB_MAX_ADDRS)
			memcpy(&s->v4[s->n4++], a->bytes, 4);
	} else {
		for (i = 0; i < s->n6 && memcmp(&s->v6[i], a->bytes, 16) != 0; i++)
			;
		if (i == s->n6 && s->n6 < MESHTAB_MAX_ADDRS)
			memcpy(&s->v6[s->n6++], a->bytes, 16);
	}
}

static unsigned host_index(const struct se_entry *e, const struct shost *h)
{
	for (unsigned i = 0; i < e->nhosts; i++)
		if (e->hosts[i] == h)
			return i;
	return UINT16_MAX;
}

/* True when @host's last label may become a learned zone (rule 12). */
static bool learnable(const struct sestore *s, const char *host)
{
	const char *dot = strrchr(host, '.');
	const char *label = dot ? dot + 1 : host;
	size_t len = strlen(label);

	if (!s->auto_zones || label[0] == '*' || tld_is_reserved(label, len))
		return false;
	/* a zone must never contain the cluster domain */
	return strcmp(label, s->domain_label) != 0;
}

static int recompute(struct sestore *s, struct shost *h)
{
	struct se_entry **c = contrib_slots(h), *win = NULL;
	size_t nc = 0;
	bool learn = false;
	int r;

	if (h->ncontrib > s->sorted_cap) {
		struct se_entry **n = realloc(s->sorted, h->ncontrib * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->sorted = n;
		s->sorted_cap = h->ncontrib;
	}
	for (uint32_t i = 0; i < h->ncontrib; i++)
		if (entry_addrs(s, c[i], host_index(c[i], h), NULL, NULL) > 0)
			s->sorted[nc++] = c[i];
	qsort(s->sorted, nc, sizeof(*s->sorted), older_first);
	s->n4 = s->n6 = 0;
	for (size_t i = 0; i < nc; i++) {
		struct se_entry *e = s->sorted[i];
		if (win && strcmp(e->key, win->key) != 0)
			continue; /* another namespace: the oldest entry's namespace wins */
		win = e;
		entry_addrs(s, e, host_index(e, h), add_addr, s);
		learn |= (e->flags & ENTRY_INTERNAL) != 0;
	}
	learn = learn && learnable(s, h->name);
	if (s->n4 + s->n6 == 0) {
		if (!h->in_table)
			return 0;
		r = meshtab_host_del(s->table, h->name);
		if (r < 0 && r != -ENOENT)
			return r;
		h->in_table = false;
		s->table_hosts--;
		return 0;
	}
	r = meshtab_host_set(s->table, h->name, s->v4, s->n4, s->v6, s->n6, learn);
	if (r < 0)
		return r;
	if (!h->in_table)
		s->table_hosts++;
	h->in_table = true;
	return 0;
}

int sestore_flush(struct sestore *s)
{
	size_t i, keep = 0;
	int r = 0;

	for (i = 0; i < s->ndirty; i++) {
		struct shost *h = s->dirty[i];
		if (r == 0)
			r = recompute(s, h);
		if (r < 0) {
			s->dirty[keep++] = h; /* retried at the next flush */
			continue;
		}
		h->dirty = false;
		if (h->ncontrib == 0 && !h->in_table)
			host_release(s, h);
	}
	s->ndirty = keep;
	if (s->log_suppressed)
		log_warn("mesh", "%zu more ServiceEntries with skipped items not logged",
			 s->log_suppressed);
	s->log_suppressed = 0;
	s->log_budget = LOG_LINES_PER_FLUSH;
	if (r < 0) {
		log_error("mesh", "out of memory while updating the mesh table; will retry");
		return r;
	}
	return meshtab_publish(s->table);
}

bool sestore_pending(const struct sestore *s)
{
	return s->ndirty > 0 || meshtab_dirty(s->table);
}

void sestore_get_stats(const struct sestore *s, struct sestore_stats *st)
{
	st->entries = s->entries.count;
	st->hosts = s->table_hosts;
	st->relists = s->relists;
	memcpy(st->rejected, s->rejected, sizeof(st->rejected));
}

/* ---- life cycle ---- */

struct sestore *sestore_new(const struct sestore_opts *opts, struct meshtab *table)
{
	struct sestore *s = calloc(1, sizeof(*s));
	const char *d = opts->cluster_domain ? opts->cluster_domain : "cluster.local";
	size_t len = strlen(d);
	const char *dot;

	if (!s)
		return NULL;
	if (len && d[len - 1] == '.')
		len--;
	if (len == 0 || len >= sizeof(s->domain))
		goto fail;
	for (size_t i = 0; i < len; i++)
		s->domain[i] = (char)(d[i] >= 'A' && d[i] <= 'Z' ? d[i] + 32 : d[i]);
	s->domain_len = len;
	dot = strrchr(s->domain, '.');
	s->domain_label = dot ? dot + 1 : s->domain;
	s->table = table;
	s->auto_zones = opts->auto_zones;
	s->use_auto = opts->use_auto_allocated;
	s->log_budget = LOG_LINES_PER_FLUSH;
	if (htab_init(&s->entries) < 0 || htab_init(&s->hosts) < 0)
		goto fail;
	return s;
fail:
	free(s->entries.b);
	free(s);
	return NULL;
}

void sestore_free(struct sestore *s)
{
	if (!s)
		return;
	for (size_t i = 0; i <= s->entries.mask; i++) {
		struct hnode *n = s->entries.b[i], *next;
		for (; n; n = next) {
			next = n->next;
			free(n);
		}
	}
	for (size_t i = 0; i <= s->hosts.mask; i++) {
		struct hnode *n = s->hosts.b[i], *next;
		for (; n; n = next) {
			struct shost *h = (struct shost *)n;
			next = n->next;
			if (h->cap > 1)
				free(h->contrib);
			free(h);
		}
	}
	free(s->entries.b);
	free(s->hosts.b);
	free(s->dirty);
	free(s->sorted);
	free(s);
}
