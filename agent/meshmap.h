/* A persistent hash map of immutable records: the storage under the mesh table (meshtab.c).
 *
 * Layout: a directory of pages, each page an array of MESHMAP_PAGE_SLOTS bucket pointers, each
 * bucket one allocation holding its records packed one after another (8-byte aligned). The
 * bucket of a hash is its top `bits` bits: page = idx / 256, slot = idx % 256.
 *
 *   meshmap { dir, bits, count }
 *     dir  -> [page 0][page 1]...           8 bytes per 256 buckets
 *     page -> [bucket 0]...[bucket 255]     8 bytes per bucket
 *     bucket -> { epoch, bytes, rec rec rec }   one malloc, records inline
 *
 * Published nodes are never written. The owner stages a new version by path copying: a write
 * copies the bucket, the page holding it and the directory, unless they were already copied in
 * the current batch (their epoch is the staging epoch, so no reader has seen them: they are
 * changed in place). The nodes a batch replaces are listed in the stage's retire list; the
 * caller frees them after a grace period. A batch of k changes copies at most k buckets and
 * pages and one directory, whatever the size of the map.
 *
 * The map doubles when it holds more than two records per bucket; the rehash builds new
 * nodes for everything (amortised O(1) per insert, only during growth).
 *
 * Pure and single-writer: readers use meshmap_find on a published copy of struct meshmap;
 * every other function is for the one owner thread.
 */
#ifndef MESHDNS_MESHMAP_H
#define MESHDNS_MESHMAP_H

#include <stddef.h>
#include <stdint.h>

#define MESHMAP_PAGE_BITS  8
#define MESHMAP_PAGE_SLOTS (1u << MESHMAP_PAGE_BITS)
#define MESHMAP_MIN_BITS   MESHMAP_PAGE_BITS
#define MESHMAP_MAX_BITS   30
#define MESHMAP_MAX_REC	   65536 /* bytes in one record, header included */

/* One record. @data starts with the key (a name in wire format, @name_len bytes); what follows
 * (@size - sizeof header - @name_len bytes) and the meaning of the counters belong to the
 * user. */
struct mm_rec {
	uint64_t hash;
	uint32_t size; /* bytes of the whole record, a multiple of 8 */
	uint32_t refs;
	uint16_t n4;
	uint16_t n6;
	uint8_t name_len;
	uint8_t flags;
	uint16_t aux;
	uint8_t data[];
};

struct mm_dir;

/* A map version. Copied by value into each published view. */
struct meshmap {
	struct mm_dir *dir;
	uint32_t bits;
	size_t count; /* records */
	size_t bytes; /* record bytes */
};

/* What the current batch copied (for tests and metrics). */
struct meshmap_stats {
	size_t buckets_copied; /* published buckets replaced by a copy */
	size_t pages_copied;
	size_t dirs_copied;
	size_t bytes_copied; /* bytes written to make those copies */
	size_t rehashes;
};

/* Owner-side staging state shared by the maps of one table. */
struct meshmap_stage {
	uint32_t epoch; /* nodes stamped with it are unpublished and may be changed in place */
	void **retired; /* published nodes replaced in this batch: free after a grace period */
	size_t nretired;
	size_t retired_cap;
	struct meshmap_stats stats;
};

/* Size in bytes of a record with a @name_len-byte key and @payload bytes after it. */
static inline size_t meshmap_rec_size(size_t name_len, size_t payload)
{
	return (sizeof(struct mm_rec) + name_len + payload + 7) & ~(size_t)7;
}

/* Makes @m an empty map, its nodes stamped with @st's epoch. Returns 0 or -ENOMEM. */
int meshmap_init(struct meshmap *m, struct meshmap_stage *st);

/* Frees every node of @m (owner, when nothing else refers to them). */
void meshmap_destroy(struct meshmap *m);

/* Finds the record with @hash and key @name (@len bytes) or returns NULL. Reader-safe on a
 * published map; allocates nothing. */
const struct mm_rec *meshmap_find(const struct meshmap *m, uint64_t hash, const uint8_t *name,
				  size_t len);

/* Inserts @rec (copied; @rec->size bytes) or replaces the record with the same key. Returns 0,
 * -ENOMEM (the map is unchanged) or -E2BIG (record too large). */
int meshmap_put(struct meshmap *m, struct meshmap_stage *st, const struct mm_rec *rec);

/* Returns a writable pointer to the record with this key, copying its path first when it is
 * published; NULL when absent or on allocation failure (*@err = -ENOENT or -ENOMEM). Only
 * the counters (refs, flags) may be changed through it; valid until the next map call. */
struct mm_rec *meshmap_edit(struct meshmap *m, struct meshmap_stage *st, uint64_t hash,
			    const uint8_t *name, size_t len, int *err);

/* Removes the record with this key. Returns 0, -ENOENT or -ENOMEM (unchanged). */
int meshmap_del(struct meshmap *m, struct meshmap_stage *st, uint64_t hash, const uint8_t *name,
		size_t len);

/* Frees the nodes the batch retired, for a caller that knows no reader can see them. */
void meshmap_stage_free_retired(struct meshmap_stage *st);

/* Bytes of memory held by the nodes of @m (directory, pages, buckets; no malloc overhead). */
size_t meshmap_memory(const struct meshmap *m);

#endif
