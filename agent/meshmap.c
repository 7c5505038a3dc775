/* A persistent hash map of immutable records. See meshmap.h for the layout. */
#include "agent/meshmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_MASK (MESHMAP_PAGE_SLOTS - 1)

struct mm_bucket {
	uint32_t epoch;
	uint32_t bytes;	 /* record bytes in @data */
	uint64_t data[]; /* records, each a multiple of 8 bytes */
};

struct mm_page {
	uint32_t epoch;
	uint32_t unused;
	struct mm_bucket *b[MESHMAP_PAGE_SLOTS];
};

struct mm_dir {
	uint32_t epoch;
	uint32_t npages;
	struct mm_page *page[];
};

static size_t npages_for(uint32_t bits)
{
	return bits > MESHMAP_PAGE_BITS ? (size_t)1 << (bits - MESHMAP_PAGE_BITS) : 1;
}

static size_t bucket_index(uint64_t hash, uint32_t bits)
{
	return (size_t)(hash >> (64 - bits));
}

static int retire_reserve(struct meshmap_stage *st, size_t n)
{
	size_t cap;
	void **p;

	if (st->nretired + n <= st->retired_cap)
		return 0;
	cap = st->retired_cap ? st->retired_cap * 2 : 64;
	while (cap < st->nretired + n)
		cap *= 2;
	p = realloc(st->retired, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	st->retired = p;
	st->retired_cap = cap;
	return 0;
}

/* Drops a node replaced in this batch: freed now when no reader has seen it, else retired
 * (capacity was reserved by the caller). */
static void drop_node(struct meshmap_stage *st, void *node, uint32_t epoch)
{
	if (epoch == st->epoch)
		free(node);
	else
		st->retired[st->nretired++] = node;
}

void meshmap_stage_free_retired(struct meshmap_stage *st)
{
	for (size_t i = 0; i < st->nretired; i++)
		free(st->retired[i]);
	st->nretired = 0;
}

static struct mm_dir *dir_new(uint32_t bits, uint32_t epoch)
{
	size_t n = npages_for(bits);
	struct mm_dir *d = calloc(1, sizeof(*d) + n * sizeof(d->page[0]));

	if (!d)
		return NULL;
	d->epoch = epoch;
	d->npages = (uint32_t)n;
	return d;
}

int meshmap_init(struct meshmap *m, struct meshmap_stage *st)
{
	m->bits = MESHMAP_MIN_BITS;
	m->count = 0;
	m->bytes = 0;
	m->dir = dir_new(m->bits, st->epoch);
	return m->dir ? 0 : -ENOMEM;
}

static void free_tree(struct mm_dir *d)
{
	if (!d)
		return;
	for (size_t p = 0; p < d->npages; p++) {
		struct mm_page *pg = d->page[p];
		if (!pg)
			continue;
		for (size_t s = 0; s < MESHMAP_PAGE_SLOTS; s++)
			free(pg->b[s]);
		free(pg);
	}
	free(d);
}

void meshmap_destroy(struct meshmap *m)
{
	free_tree(m->dir);
	m->dir = NULL;
	m->count = 0;
	m->bytes = 0;
}

const struct mm_rec *meshmap_find(const struct meshmap *m, uint64_t hash, const uint8_t *name,
				  size_t len)
{
	size_t idx = bucket_index(hash, m->bits);
	const struct mm_page *pg = m->dir->page[idx >> MESHMAP_PAGE_BITS];
	const struct mm_bucket *b;
	const uint8_t *p, *end;

	if (!pg)
		return NULL;
	b = pg->b[idx & PAGE_MASK];
	if (!b)
		return NULL;
	p = (const uint8_t *)b->data;
	end = p + b->bytes;
	while (p < end) {
		const struct mm_rec *r = (const struct mm_rec *)(const void *)p;
		if (r->hash == hash && r->name_len == len && memcmp(r->data, name, len) == 0)
			return r;
		p += r->size;
	}
	return NULL;
}

/* Returns the slot of bucket @idx in a page and directory that belong to this batch, copying
 * them when they are published. NULL on allocation failure (the map is unchanged). */
static struct mm_bucket **writable_slot(struct meshmap *m, struct meshmap_stage *st, size_t idx)
{
	struct mm_dir *d = m->dir;
	size_t pi = idx >> MESHMAP_PAGE_BITS;
	struct mm_page *pg;

	if (retire_reserve(st, 3) < 0)
		return NULL;
	pg = d->page[pi];
	if (!pg || pg->epoch != st->epoch) {
		struct mm_page *np = malloc(sizeof(*np));
		if (!np)
			return NULL;
		if (pg) {
			memcpy(np, pg, sizeof(*np));
			st->stats.pages_copied++;
			st->stats.bytes_copied += sizeof(*np);
		} else {
			memset(np, 0, sizeof(*np));
		}
		np->epoch = st->epoch;
		if (d->epoch != st->epoch) {
			size_t sz = sizeof(*d) + d->npages * sizeof(d->page[0]);
			struct mm_dir *nd = malloc(sz);
			if (!nd) {
				free(np);
				return NULL;
			}
			memcpy(nd, d, sz);
			nd->epoch = st->epoch;
			st->stats.dirs_copied++;
			st->stats.bytes_copied += sz;
			drop_node(st, d, d->epoch);
			m->dir = d = nd;
		}
		if (pg)
			drop_node(st, pg, pg->epoch);
		d->page[pi] = pg = np;
	}
	return &pg->b[idx & PAGE_MASK];
}

/* Locates the record with this key in @b: its offset, or -1. */
static long find_in_bucket(const struct mm_bucket *b, uint64_t hash, const uint8_t *name,
			   size_t len)
{
	size_t off = 0;

	while (b && off < b->bytes) {
		const struct mm_rec *r =
			(const struct mm_rec *)(const void *)((const uint8_t *)b->data + off);
		if (r->hash == hash && r->name_len == len && memcmp(r->data, name, len) == 0)
			return (long)off;
		off += r->size;
	}
	return -1;
}

/* Replaces the bucket in *@slot by its records minus the @skip_len bytes at @skip, plus @add
 * (may be NULL). The slot is in a page of this batch. Returns 0 or -ENOMEM (unchanged). */
static int bucket_rewrite(struct meshmap_stage *st, struct mm_bucket **slot, size_t skip,
			  size_t skip_len, const struct mm_rec *add)
{
	struct mm_bucket *b = *slot, *nb;
	size_t old = b ? b->bytes : 0;
	size_t add_len = add ? add->size : 0;
	size_t keep = old - skip_len, nbytes = keep + add_len;

	if (nbytes == 0) {
		if (b)
			drop_node(st, b, b->epoch);
		*slot = NULL;
		return 0;
	}
	if (b && b->epoch == st->epoch) {
		/* not published: change in place */
		if (skip_len && skip + skip_len < old)
			memmove((uint8_t *)b->data + skip, (uint8_t *)b->data + skip + skip_len,
				old - skip - skip_len);
		if (nbytes > old) {
			nb = realloc(b, sizeof(*b) + nbytes);
			if (!nb) {
				/* undo the memmove so the bucket is unchanged */
				if (skip_len && skip + skip_len < old)
					memmove((uint8_t *)b->data + skip + skip_len,
						(uint8_t *)b->data + skip, old - skip - skip_len);
				return -ENOMEM;
			}
			b = nb;
		}
		if (add)
			memcpy((uint8_t *)b->data + keep, add, add_len);
		b->bytes = (uint32_t)nbytes;
		*slot = b;
		return 0;
	}
	nb = malloc(sizeof(*nb) + nbytes);
	if (!nb)
		return -ENOMEM;
	nb->epoch = st->epoch;
	nb->bytes = (uint32_t)nbytes;
	if (b) {
		memcpy(nb->data, b->data, skip);
		memcpy((uint8_t *)nb->data + skip, (uint8_t *)b->data + skip + skip_len,
		       old - skip - skip_len);
		st->stats.buckets_copied++;
		st->stats.bytes_copied += sizeof(*nb) + keep;
		drop_node(st, b, b->epoch);
	}
	if (add)
		memcpy((uint8_t *)nb->data + keep, add, add_len);
	*slot = nb;
	return 0;
}

/* Appends @r to bucket @idx of a map under construction (every node of this batch). */
static int append_new(struct meshmap *m, struct meshmap_stage *st, size_t idx,
		      const struct mm_rec *r)
{
	struct mm_dir *d = m->dir;
	struct mm_page **pp = &d->page[idx >> MESHMAP_PAGE_BITS];

	if (!*pp) {
		*pp = calloc(1, sizeof(**pp));
		if (!*pp)
			return -ENOMEM;
		(*pp)->epoch = st->epoch;
	}
	return bucket_rewrite(st, &(*pp)->b[idx & PAGE_MASK], 0, 0, r);
}

/* Rebuilds @m with 2^@bits buckets. On failure the map is unchanged. */
static int rehash(struct meshmap *m, struct meshmap_stage *st, uint32_t bits)
{
	struct meshmap nm = { .bits = bits, .count = m->count, .bytes = m->bytes };
	struct mm_dir *od = m->dir;
	size_t nodes = 1;

	nm.dir = dir_new(bits, st->epoch);
	if (!nm.dir)
		return -ENOMEM;
	for (size_t p = 0; p < od->npages; p++) {
		struct mm_page *pg = od->page[p];
		if (!pg)
			continue;
		nodes++;
		for (size_t s = 0; s < MESHMAP_PAGE_SLOTS; s++) {
			const struct mm_bucket *b = pg->b[s];
			size_t off = 0;
			if (!b)
				continue;
			nodes++;
			while (off < b->bytes) {
				const struct mm_rec *r =
					(const void *)((const uint8_t *)b->data + off);
				if (append_new(&nm, st, bucket_index(r->hash, bits), r) < 0)
					goto fail;
				off += r->size;
			}
		}
	}
	if (retire_reserve(st, nodes) < 0)
		goto fail;
	for (size_t p = 0; p < od->npages; p++) {
		struct mm_page *pg = od->page[p];
		if (!pg)
			continue;
		for (size_t s = 0; s < MESHMAP_PAGE_SLOTS; s++)
			if (pg->b[s])
				drop_node(st, pg->b[s], pg->b[s]->epoch);
		drop_node(st, pg, pg->epoch);
	}
	drop_node(st, od, od->epoch);
	*m = nm;
	st->stats.rehashes++;
	return 0;
fail:
	free_tree(nm.dir);
	return -ENOMEM;
}

int meshmap_put(struct meshmap *m, struct meshmap_stage *st, const struct mm_rec *rec)
{
	struct mm_bucket **slot;
	long off;
	size_t old_size = 0;
	int r;

	if (rec->size > MESHMAP_MAX_REC || rec->size < sizeof(*rec) || (rec->size & 7))
		return -E2BIG;
	if (m->count + 1 > (size_t)2 << m->bits && m->bits < MESHMAP_MAX_BITS)
		(void)rehash(m, st, m->bits + 1); /* on failure the map just stays denser */
	slot = writable_slot(m, st, bucket_index(rec->hash, m->bits));
	if (!slot)
		return -ENOMEM;
	off = find_in_bucket(*slot, rec->hash, rec->data, rec->name_len);
	if (off >= 0)
		old_size = ((const struct mm_rec *)(const void *)((const uint8_t *)(*slot)->data +
								  off))
				   ->size;
	r = bucket_rewrite(st, slot, off >= 0 ? (size_t)off : 0, old_size, rec);
	if (r < 0)
		return r;
	if (off < 0)
		m->count++;
	m->bytes = m->bytes - old_size + rec->size;
	return 0;
}

struct mm_rec *meshmap_edit(struct meshmap *m, struct meshmap_stage *st, uint64_t hash,
			    const uint8_t *name, size_t len, int *err)
{
	struct mm_bucket **slot;
	long off;

	if (!meshmap_find(m, hash, name, len)) {
		*err = -ENOENT;
		return NULL;
	}
	slot = writable_slot(m, st, bucket_index(hash, m->bits));
	if (!slot) {
		*err = -ENOMEM;
		return NULL;
	}
	if ((*slot)->epoch != st->epoch && bucket_rewrite(st, slot, 0, 0, NULL) < 0) {
		*err = -ENOMEM;
		return NULL;
	}
	off = find_in_bucket(*slot, hash, name, len);
	return (struct mm_rec *)(void *)((uint8_t *)(*slot)->data + off);
}

int meshmap_del(struct meshmap *m, struct meshmap_stage *st, uint64_t hash, const uint8_t *name,
		size_t len)
{
	struct mm_bucket **slot;
	long off;
	size_t size;
	int r;

	if (!meshmap_find(m, hash, name, len))
		return -ENOENT;
	slot = writable_slot(m, st, bucket_index(hash, m->bits));
	if (!slot)
		return -ENOMEM;
	off = find_in_bucket(*slot, hash, name, len);
	size = ((const struct mm_rec *)(const void *)((const uint8_t *)(*slot)->data + off))->size;
	r = bucket_rewrite(st, slot, (size_t)off, size, NULL);
	if (r < 0)
		return r;
	m->count--;
	m->bytes -= size;
	return 0;
}

size_t meshmap_memory(const struct meshmap *m)
{
	const struct mm_dir *d = m->dir;
	size_t n;

	if (!d)
		return 0;
	n = sizeof(*d) + d->npages * sizeof(d->page[0]);
	for (size_t p = 0; p < d->npages; p++) {
		const struct mm_page *pg = d->page[p];
		if (!pg)
			continue;
		n += sizeof(*pg);
		for (size_t s = 0; s < MESHMAP_PAGE_SLOTS; s++)
			if (pg->b[s])
				n += sizeof(*pg->b[s]) + pg->b[s]->bytes;
	}
	return n;
}
