/* meshdns: entry point. */
#include <stdio.h>

int main(void)
{
	printf("meshdns %s\n", MESHDNS_VERSION);
	return 0;
}
