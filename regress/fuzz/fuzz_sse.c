/*
 * fuzz_sse.c: the SSE framer (bridged/sse.c). The input's first bytes
 * choose the event limit and where the stream is cut; the events of
 * the stream fed whole and fed in pieces must be the same.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"
#include "fuzz.h"

/* Every event seen, as "event\0data\n" records. */
static int
collect(void *arg, const char *event, const char *data, size_t len)
{
	struct ibuf	*b = arg;

	if (strlen(event) >= 64)
		abort();
	if (ibuf_add(b, event, strlen(event) + 1) == -1 ||
	    ibuf_add(b, data, len) == -1 || ibuf_add(b, "\n", 1) == -1)
		abort();
	return (0);
}

/* One stream; returns what the last sse_feed() said. */
static int
run(struct ibuf *out, size_t max, const uint8_t *p, size_t len,
    const uint8_t *cuts, size_t ncuts)
{
	struct sse	 s;
	size_t		 off = 0, n, i = 0;
	int		 rv = 0;

	sse_init(&s, max, collect, out);
	while (off < len && rv == 0) {
		n = ncuts > 0 ? (size_t)cuts[i++ % ncuts] + 1 : len;
		if (n > len - off)
			n = len - off;
		rv = sse_feed(&s, p + off, n);
		off += n;
	}
	(void)sse_pending(&s);
	sse_clear(&s);
	return (rv);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct fin	 f;
	struct ibuf	*a, *b;
	const uint8_t	*cuts;
	size_t		 max, ncuts;
	int		 ra, rb;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	fin_init(&f, data, size);
	max = fin_u16(&f) + 1;
	cuts = fin_bytes(&f, 16, &ncuts);
	if ((a = ibuf_open(256)) == NULL || (b = ibuf_open(256)) == NULL)
		abort();
	ra = run(a, max, f.p, f.left, NULL, 0);
	rb = run(b, max, f.p, f.left, cuts, ncuts);
	/* Where the stream is cut does not change what it means. */
	if (ra != rb || ibuf_left(a) != ibuf_left(b) ||
	    memcmp(ibuf_data(a), ibuf_data(b), ibuf_left(a)) != 0)
		abort();
	ibuf_free(a);
	ibuf_free(b);
	return (0);
}
