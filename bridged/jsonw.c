/*
 * jsonw.c: JSON text written straight into a buffer, for the request
 * bodies the provider sends upstream. A body is built once and sent
 * once, so there is no tree to build and walk: the caller writes the
 * punctuation and keys, jw_str escapes the text. A text that is not
 * UTF-8 spoils the body (jw_end returns NULL, errno EINVAL), as it
 * would have with jansson. The buffer holds prompts: what is dropped
 * or outgrown is wiped.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

/* Make room for n more bytes; a failure spoils the body. */
static int
jw_room(struct jsonw *w, size_t n)
{
	char	*p;
	size_t	 size;

	if (w->bad)
		return (-1);
	if (n <= w->size - w->len)
		return (0);
	if (n > SIZE_MAX / 2 - w->len) {
		w->bad = ENOMEM;
		return (-1);
	}
	size = w->size > 0 ? w->size : 256;
	while (size - w->len < n)
		size *= 2;
	if ((p = recallocarray(w->buf, w->size, size, 1)) == NULL) {
		w->bad = ENOMEM;
		return (-1);
	}
	w->buf = p;
	w->size = size;
	return (0);
}

/* Start a body of about hint bytes. */
void
jw_init(struct jsonw *w, size_t hint)
{
	memset(w, 0, sizeof(*w));
	(void)jw_room(w, hint + 1);
}

/* Bytes written as they are: punctuation, keys, literals. */
void
jw_raw(struct jsonw *w, const char *s)
{
	size_t	 n = strlen(s);

	if (jw_room(w, n) == 0) {
		memcpy(w->buf + w->len, s, n);
		w->len += n;
	}
}

/*
 * Text inside a string already opened with jw_raw("\""): quotes,
 * backslashes and control characters escaped, the rest as it is.
 */
void
jw_text(struct jsonw *w, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, run, need = len;
	char			*o;

	if (!utf8_valid(s, len)) {
		w->bad = EINVAL;
		return;
	}
	/* Room for exactly what it becomes: \" \\ \n and the like, \u00XX. */
	for (i = 0; i < len; i++)
		if (p[i] == '"' || p[i] == '\\' || p[i] == '\b' ||
		    p[i] == '\f' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t')
			need += 1;
		else if (p[i] < 0x20)
			need += 5;
	if (need < len || jw_room(w, need) == -1) {
		if (!w->bad)
			w->bad = ENOMEM;
		return;
	}
	o = w->buf + w->len;
	for (i = 0; i < len; ) {
		for (run = i; run < len && p[run] >= 0x20 && p[run] != '"' &&
		    p[run] != '\\'; run++)
			;
		memcpy(o, p + i, run - i);
		o += run - i;
		if ((i = run) == len)
			break;
		*o++ = '\\';
		switch (p[i]) {
		case '"':
		case '\\':
			*o++ = p[i];
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			memcpy(o, "u00", 3);
			o[3] = hex[p[i] >> 4];
			o[4] = hex[p[i] & 0xf];
			o += 5;
			break;
		}
		i++;
	}
	w->len = o - w->buf;
}

/* A whole string value: quoted and escaped. */
void
jw_str(struct jsonw *w, const char *s, size_t len)
{
	jw_raw(w, "\"");
	jw_text(w, s, len);
	jw_raw(w, "\"");
}

/* A count. */
void
jw_u64(struct jsonw *w, uint64_t v)
{
	char	 num[24];

	(void)snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	jw_raw(w, num);
}

/* A real number, in the shortest form that reads back the same. */
void
jw_real(struct jsonw *w, double v)
{
	char	 num[32];
	int	 prec;

	for (prec = 1; prec < 17; prec++) {
		(void)snprintf(num, sizeof(num), "%.*g", prec, v);
		if (strtod(num, NULL) == v)
			break;
	}
	(void)snprintf(num, sizeof(num), "%.*g", prec, v);
	/* JSON has no inf or nan: such a setting spoils the body. */
	if (strspn(num, "0123456789.eE+-") != strlen(num)) {
		w->bad = EINVAL;
		return;
	}
	/* Still a real when read back, as jansson writes it. */
	if (strcspn(num, ".e") == strlen(num))
		(void)strlcat(num, ".0", sizeof(num));
	jw_raw(w, num);
}

/*
 * The finished body, NUL-terminated, its length in *lenp, for
 * freezero(3); NULL with errno set if anything spoiled it.
 */
char *
jw_end(struct jsonw *w, size_t *lenp)
{
	char	*out;

	if (jw_room(w, 1) == -1) {
		errno = w->bad;
		freezero(w->buf, w->size);
		memset(w, 0, sizeof(*w));
		return (NULL);
	}
	w->buf[w->len] = '\0';
	out = w->buf;
	if (lenp != NULL)
		*lenp = w->len;
	memset(w, 0, sizeof(*w));
	return (out);
}
