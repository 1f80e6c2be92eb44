/*
 * fuzz_reply.c: the reply codec of BRIDGE/1 (lib/reply.c). A body
 * written in fragments and read back line by line with reply_parse()
 * must come back unchanged, its status line too; any line at all
 * must classify without reading past its end.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

/* Write body and status, read them back, compare. */
static void
roundtrip(struct fin *f)
{
	struct reply_writer	 rw;
	struct ibuf		*b, *back;
	const uint8_t		*p;
	const char		*status, *text;
	char			*body, *line, *s, *nl, *want;
	size_t			 len, n, off, i;
	enum reply_kind		 k;
	int			 ended = 0;

	status = fin_str(f, 200);
	p = fin_bytes(f, 8192, &len);
	if ((body = malloc(len + 1)) == NULL)
		abort();
	for (i = 0; i < len; i++)
		body[i] = p[i] != '\0' ? (char)p[i] : 'x';
	body[len] = '\0';
	if ((b = ibuf_open(len + 64)) == NULL ||
	    (back = ibuf_open(len + 64)) == NULL)
		abort();
	reply_begin(&rw);
	for (off = 0; off < len; off += n) {
		n = fin_u8(f) % 64 + 1;
		if (n > len - off)
			n = len - off;
		if (reply_body(&rw, b, body + off, n) == -1)
			abort();
	}
	if (reply_status(&rw, b, "OK", "%s", status) == -1)
		abort();

	/* Read it back as bridgectl would. */
	n = ibuf_left(b);
	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, ibuf_data(b), n);
	s[n] = '\0';
	for (line = s; *line != '\0'; line = nl + 1) {
		if (ended || (nl = strchr(line, '\n')) == NULL)
			abort();	/* every line ends in LF, none after */
		*nl = '\0';
		k = reply_parse(line, &text);
		if (k == REPLY_BODY) {
			if (ibuf_add(back, text, strlen(text)) == -1 ||
			    ibuf_add(back, "\n", 1) == -1)
				abort();
		} else if (k == REPLY_OK) {
			/* The text, flattened to one line, as given. */
			want = strdup(status);
			for (i = 0; want[i] != '\0'; i++)
				if ((unsigned char)want[i] < 0x20 ||
				    want[i] == 0x7f)
					want[i] = ' ';
			if (strcmp(text, want) != 0)
				abort();
			free(want);
			ended = 1;
		} else
			abort();
	}
	if (!ended)
		abort();
	/* The body, with the LF the writer adds to an unended line. */
	n = ibuf_left(back);
	if (len == 0 ? n != 0 :
	    (n != len + (body[len - 1] != '\n') ||
	    memcmp(ibuf_data(back), body, len) != 0))
		abort();
	free(s);
	free(body);
	ibuf_free(b);
	ibuf_free(back);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct fin	 f;
	const char	*line, *text;
	enum reply_kind	 k;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	fin_init(&f, data, size);
	if (fin_u8(&f) & 1) {
		roundtrip(&f);
		return (0);
	}
	line = fin_str(&f, 4096);
	k = reply_parse(line, &text);
	if (text < line || text > line + strlen(line) ||
	    (k != REPLY_BODY && k != REPLY_OK && k != REPLY_ERR &&
	    k != REPLY_MORE && k != REPLY_BYE && k != REPLY_BAD))
		abort();
	return (0);
}
