/* The file source of ServiceEntries (--serviceentries PATH) and the empty one (none).
 *
 * The file holds what `kubectl get serviceentries -A -o json` prints (a List) or a single
 * ServiceEntry object. It is read in libuv's thread pool, decoded on the loop thread and
 * replaces the whole store (sestore_replace_begin ... commit), which publishes the table and
 * marks it synced after the first good read. A file that cannot be read or decoded is logged
 * and the last good table kept. The file is watched through its directory (uv_fs_event, so an
 * atomic rename over it, as ConfigMap updates do, is seen) with a uv_fs_poll fallback every
 * 500 ms; content identical to the last applied is skipped.
 *
 * Runs on the loop thread that owns the store (registered with RCU, see meshtab.h).
 */
#ifndef MESHDNS_FILESRC_H
#define MESHDNS_FILESRC_H

#include <stdbool.h>
#include <stdint.h>

struct filesrc;
struct sestore;
struct uv_loop_s;

#define FILESRC_MAX_BYTES (64u << 20) /* larger files are refused */

/* Starts reading and watching @path (copied) for @store on @loop. Returns 0 and the source in
 * *@out, or a negative errno: -ENOMEM, or the error of watching the file's directory (for
 * instance -ENOENT when it does not exist), logged. A missing or broken file is not an error
 * here: the source keeps trying and the table stays unsynced until a good read. */
int filesrc_start(struct uv_loop_s *loop, const char *path, struct sestore *store,
		  struct filesrc **out);

/* Stops watching and frees the source once its handles are closed and any read in flight has
 * finished (run the loop). The store is not touched after this call. */
void filesrc_stop(struct filesrc *f);

/* The "none" source: replaces the store with nothing and marks the table synced. Returns 0
 * or -ENOMEM. */
int filesrc_start_none(struct sestore *store);

/* Counters for /metrics and /ready. */
struct filesrc_status {
	bool synced;	       /* a read succeeded */
	uint64_t reads_ok;     /* reads applied or found unchanged */
	uint64_t reads_failed; /* reads that could not be read or decoded */
	int64_t last_ok_unix;  /* wall-clock seconds of the last good read, 0 before */
};
void filesrc_get_status(const struct filesrc *f, struct filesrc_status *st);

#endif
