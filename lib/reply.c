/*
 * reply.c: the reply blocks of BRIDGE/1 (PROTOCOL.md, "Replies").
 *
 * A body goes out as it comes, in fragments of any size: a line that
 * begins with '.' gets one more in front, whatever fragment the line
 * starts in, and bytes are otherwise passed through untouched, so a
 * UTF-8 character split between two fragments arrives whole. The
 * status line ends the block; the body gets its missing LF first.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Start a block: the next body byte begins a line. */
void
reply_begin(struct reply_writer *rw)
{
	rw->bol = 1;
}

/* Append a body fragment, stuffing a '.' that starts a line. */
int
reply_body(struct reply_writer *rw, struct ibuf *b, const char *data,
    size_t len)
{
	const char	*nl;
	size_t		 n;

	while (len > 0) {
		if (rw->bol && data[0] == '.' && ibuf_add(b, ".", 1) == -1)
			return (-1);
		/* Copy up to and including the next LF in one go. */
		if ((nl = memchr(data, '\n', len)) != NULL)
			n = nl - data + 1;
		else
			n = len;
		if (ibuf_add(b, data, n) == -1)
			return (-1);
		rw->bol = (data[n - 1] == '\n');
		data += n;
		len -= n;
	}
	return (0);
}

/* Keep a status line on one line: control bytes become spaces. */
static void
reply_flatten(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* End the block with ". WORD[ text]": a NULL or empty fmt gives none. */
int
reply_status(struct reply_writer *rw, struct ibuf *b, const char *word,
    const char *fmt, ...)
{
	va_list	 ap;
	char	*text = NULL;
	int	 n, rv = -1;

	if (word == NULL || *word == '\0')
		return (-1);
	if (fmt != NULL && *fmt != '\0') {
		va_start(ap, fmt);
		n = vasprintf(&text, fmt, ap);
		va_end(ap);
		if (n == -1)
			return (-1);
		reply_flatten(text);
	}
	if (!rw->bol && ibuf_add(b, "\n", 1) == -1)
		goto done;
	if (ibuf_add(b, ". ", 2) == -1 ||
	    ibuf_add(b, word, strlen(word)) == -1)
		goto done;
	if (text != NULL && *text != '\0' &&
	    (ibuf_add(b, " ", 1) == -1 ||
	    ibuf_add(b, text, strlen(text)) == -1))
		goto done;
	if (ibuf_add(b, "\n", 1) == -1)
		goto done;
	rw->bol = 1;
	rv = 0;
 done:
	free(text);
	return (rv);
}

static const struct {
	const char	*word;
	enum reply_kind	 kind;
} reply_words[] = {
	{ "OK",		REPLY_OK },
	{ "ERR",	REPLY_ERR },
	{ "MORE",	REPLY_MORE },
	{ "BYE",	REPLY_BYE }
};

/*
 * Classify one line (without its LF). A body line's text has its
 * stuffed '.' removed; a status line's text starts after the word and
 * one space. A line of a lone "." ends a block without a known word,
 * and so does an unknown word: both are REPLY_BAD. A line that starts
 * with '.' and neither '.' nor ' ' is never sent by a server: it is
 * taken as a body line, as is.
 */
enum reply_kind
reply_parse(const char *line, const char **text)
{
	const char	*w, *end;
	size_t		 len, i;

	if (line[0] != '.') {
		*text = line;
		return (REPLY_BODY);
	}
	if (line[1] == '.') {
		*text = line + 1;
		return (REPLY_BODY);
	}
	if (line[1] == '\0') {
		*text = line + 1;
		return (REPLY_BAD);
	}
	if (line[1] != ' ') {
		*text = line;
		return (REPLY_BODY);
	}
	w = line + 2;
	if ((end = strchr(w, ' ')) == NULL)
		end = w + strlen(w);
	len = end - w;
	*text = *end == ' ' ? end + 1 : end;
	for (i = 0; i < sizeof(reply_words) / sizeof(reply_words[0]); i++)
		if (strlen(reply_words[i].word) == len &&
		    strncmp(reply_words[i].word, w, len) == 0)
			return (reply_words[i].kind);
	*text = w;
	return (REPLY_BAD);
}
