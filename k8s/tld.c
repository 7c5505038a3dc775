/* Labels that never become a learned zone: binary search in the generated sorted list
 * (tld_list.c, from scripts/gen-tld-list.sh). See tld.h. */
#include "k8s/tld.h"

#include <string.h>

extern const char *const tld_labels[];
extern const size_t tld_count;

bool tld_is_reserved(const char *label, size_t len)
{
	size_t lo = 0, hi = tld_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *s = tld_labels[mid];
		size_t sl = strlen(s);
		int c = memcmp(label, s, len < sl ? len : sl);

		if (c == 0)
			c = len < sl ? -1 : len > sl ? 1 : 0;
		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}
