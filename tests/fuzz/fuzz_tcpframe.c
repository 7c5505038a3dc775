/* libFuzzer target: TCP framing. The first byte sets the read size, so the same stream is
 * cut at many places; every complete message goes through the query parser. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agent/tcpframe.h"
#include "agent/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tcpframe f;
	struct wire_query q;
	size_t off = 1, step;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	tcpframe_init(&f);
	while (off < size && !tcpframe_broken(&f)) {
		uint8_t *p;
		size_t room;
		if (tcpframe_reserve(&f, &p, &room) < 0)
			break;
		size_t n = size - off < step ? size - off : step;
		if (n > room)
			n = room;
		memcpy(p, data + off, n);
		tcpframe_commit(&f, n);
		off += n;
		const uint8_t *msg;
		size_t len;
		while (tcpframe_next(&f, &msg, &len) == 1) {
			if (len == 0 || len > 65535)
				__builtin_trap();
			(void)wire_parse_query(&q, msg, len);
		}
	}
	tcpframe_deinit(&f);
	return 0;
}
