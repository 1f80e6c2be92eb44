/*
 * sse.c: an incremental parser of Server-Sent Events (the HTML
 * "text/event-stream" format).  Bytes arrive split anywhere; lines end
 * in CRLF, LF or CR; an event is dispatched on a blank line.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

static int	sse_grow(char **, size_t *, size_t);
static int	sse_append(struct sse *, const char *, size_t);
static int	sse_data(struct sse *, const char *, size_t);
static int	sse_line(struct sse *);
static int	sse_dispatch(struct sse *);

/* Prepare a parser that refuses events larger than max bytes. */
void
sse_init(struct sse *s, size_t max,
    int (*cb)(void *, const char *, const char *, size_t), void *arg)
{
	memset(s, 0, sizeof(*s));
	if (max > SIZE_MAX / 2)
		max = SIZE_MAX / 2;
	s->max = max;
	s->cb = cb;
	s->arg = arg;
}

/* Free what the parser holds; it can be used again after sse_init. */
void
sse_clear(struct sse *s)
{
	free(s->line);
	free(s->data);
	s->line = s->data = NULL;
	s->linelen = s->linecap = s->datalen = s->datacap = 0;
	s->has_data = 0;
	s->event[0] = '\0';
}

/* Make room for need bytes plus a NUL in a buffer. */
static int
sse_grow(char **buf, size_t *cap, size_t need)
{
	size_t	 ncap;
	char	*p;

	if (need + 1 <= *cap)
		return (0);
	ncap = *cap < 256 ? 256 : *cap;
	while (ncap < need + 1)
		ncap = ncap > need ? need + 1 : ncap * 2;
	if ((p = realloc(*buf, ncap)) == NULL)
		return (-1);
	*buf = p;
	*cap = ncap;
	return (0);
}

/* Hand a complete event to the callback and start the next one. */
static int
sse_dispatch(struct sse *s)
{
	int	 rv = 0;

	if (s->has_data) {
		/* The last data line's LF is not part of the event. */
		if (s->datalen > 0)
			s->datalen--;
		s->data[s->datalen] = '\0';
		s->nevents++;
		if (s->cb != NULL && s->cb(s->arg, s->event, s->data,
		    s->datalen) != 0)
			rv = -1;
	}
	s->datalen = 0;
	s->has_data = 0;
	s->event[0] = '\0';
	return (rv);
}

/* Add bytes to the current line; a data line may hold a whole event. */
static int
sse_append(struct sse *s, const char *p, size_t n)
{
	if (n > s->max + SSE_FIELDMAX - s->linelen) {
		s->error = SSE_ETOOBIG;
		return (-1);
	}
	if (sse_grow(&s->line, &s->linecap, s->linelen + n) == -1) {
		s->error = SSE_ENOMEM;
		return (-1);
	}
	memcpy(s->line + s->linelen, p, n);
	s->linelen += n;
	return (0);
}

/* Add a data line's value to the event being read. */
static int
sse_data(struct sse *s, const char *value, size_t vlen)
{
	if (s->datalen > s->max || vlen > s->max - s->datalen) {
		s->error = SSE_ETOOBIG;
		return (-1);
	}
	if (sse_grow(&s->data, &s->datacap, s->datalen + vlen + 1) == -1) {
		s->error = SSE_ENOMEM;
		return (-1);
	}
	memcpy(s->data + s->datalen, value, vlen);
	s->datalen += vlen;
	s->data[s->datalen++] = '\n';
	s->has_data = 1;
	return (0);
}

/* Act on one complete line (without its end), held in s->line. */
static int
sse_line(struct sse *s)
{
	const char	*field = s->line, *value, *colon;
	size_t		 flen, vlen;

	if (s->linelen == 0)
		return (sse_dispatch(s));
	if (s->line[0] == ':')
		return (0);	/* a comment */
	if ((colon = memchr(s->line, ':', s->linelen)) != NULL) {
		flen = colon - s->line;
		value = colon + 1;
		vlen = s->linelen - flen - 1;
		if (vlen > 0 && value[0] == ' ') {
			value++;
			vlen--;
		}
	} else {
		flen = s->linelen;
		value = "";
		vlen = 0;
	}
	if (flen == 4 && memcmp(field, "data", 4) == 0)
		return (sse_data(s, value, vlen));
	if (flen == 5 && memcmp(field, "error", 5) == 0) {
		/*
		 * Not in the standard: llama.cpp's server reports a failure
		 * as an "error:" field.  It becomes data of an event named
		 * "error".
		 */
		strlcpy(s->event, "error", sizeof(s->event));
		return (sse_data(s, value, vlen));
	}
	if (flen == 5 && memcmp(field, "event", 5) == 0) {
		if (vlen >= sizeof(s->event))
			vlen = sizeof(s->event) - 1;
		memcpy(s->event, value, vlen);
		s->event[vlen] = '\0';
	}
	/* id, retry and unknown fields are ignored. */
	return (0);
}

/*
 * Parse len more bytes.  Returns 0, or -1 when an event is too large,
 * memory ran out or the callback asked to stop (s->error says which);
 * after -1 the parser refuses more input.
 */
int
sse_feed(struct sse *s, const void *buf, size_t len)
{
	const char	*p = buf, *end = p + len, *e;
	size_t		 n;

	if (s->error != 0)
		return (-1);
	while (p < end) {
		if (s->skiplf) {
			s->skiplf = 0;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		/* A byte order mark may open the stream: skip it. */
		if (s->bomcheck < 3) {
			if (*p == "\xef\xbb\xbf"[s->bomcheck]) {
				s->bomcheck++;
				p++;
				continue;
			}
			n = s->bomcheck;
			s->bomcheck = 3;
			if (n > 0 && sse_append(s, "\xef\xbb\xbf", n) == -1)
				return (-1);
		}
		for (e = p; e < end && *e != '\n' && *e != '\r'; e++)
			;
		if (e > p && sse_append(s, p, e - p) == -1)
			return (-1);
		if (e == end)
			break;
		if (*e == '\r')
			s->skiplf = 1;
		p = e + 1;
		if (sse_line(s) == -1) {
			if (s->error == 0)
				s->error = SSE_ESTOPPED;
			s->linelen = 0;
			return (-1);
		}
		s->linelen = 0;
	}
	return (0);
}

/* Whether bytes of an unfinished event are held (a cut stream). */
int
sse_pending(const struct sse *s)
{
	return (s->linelen > 0 || s->has_data);
}
