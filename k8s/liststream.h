/* Streams a Kubernetes list document item by item (SEMANTICS.md rule 40: the whole list is
 * never held in memory at once).
 *
 * A LIST answer is one JSON object, `{"apiVersion":..,"items":[{..},{..}],"kind":..,
 * "metadata":{..}}`, and with resourceVersion=0 the API server may ignore `limit` and send
 * every item in one page (76 MB for 100,000 ServiceEntries). The splitter follows the JSON
 * structure byte by byte as the body arrives: each element of the top-level "items" array is
 * handed to a callback as soon as it is complete (in place when it arrived in one piece,
 * otherwise from a buffer capped per item), and everything else (the "skeleton", with
 * `"items":[]`) is kept for the end, where sedecode_list reads the list metadata from it.
 * Keys may come in any order (Go sorts them: items before metadata).
 *
 * Pure: no I/O. It checks the structure only; the items themselves are parsed by the callback.
 */
#ifndef MESHDNS_LISTSTREAM_H
#define MESHDNS_LISTSTREAM_H

#include <stddef.h>

struct liststream;

/* Called for each element of "items", @len bytes of JSON text (not NUL-terminated), valid
 * during the call only. A negative return stops the feed and is returned by
 * liststream_feed. */
typedef int (*liststream_item_fn)(void *arg, const char *item, size_t len);

/* Creates a splitter: items up to @max_item bytes, a skeleton up to @max_skel bytes. Returns
 * NULL on allocation failure. */
struct liststream *liststream_new(size_t max_item, size_t max_skel);
void liststream_free(struct liststream *ls);

/* Forgets the document in progress (a new response starts). */
void liststream_reset(struct liststream *ls);

/* Feeds @len bytes, calling @fn for each item they complete. Returns 0; -EINVAL when the text
 * is not a JSON object; -E2BIG past a cap; -ENOMEM; or @fn's error. After an error the
 * splitter must be reset. */
int liststream_feed(struct liststream *ls, const char *data, size_t len, liststream_item_fn fn,
		    void *arg);

/* Ends the document. Returns 0 with the skeleton in *@skel (valid until the next feed or
 * reset) and its length in *@len, or -EINVAL when the document was incomplete. */
int liststream_finish(struct liststream *ls, const char **skel, size_t *len);

#endif
