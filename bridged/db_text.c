/*
 * db_text.c: what every storage backend agrees on about stored text:
 * which texts may be stored, the words of roles, and the literal
 * words of a SEARCH.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

static const char *const db_roles[ROLE_MAX] = {
	[ROLE_USER] = "user",
	[ROLE_MODEL] = "model",
	[ROLE_SUMMARY] = "summary",
};

/* Texts are UTF-8 without NUL and small enough to send back. */
int
db_text_valid(const char *text, size_t len)
{
	if (len > DB_TEXT_MAX)
		return (0);
	if (len > 0 && memchr(text, '\0', len) != NULL)
		return (0);
	return (utf8_valid(text, len));
}

/* The stored word of a role. */
const char *
db_role_name(enum msg_role role)
{
	return (role >= 0 && role < ROLE_MAX ? db_roles[role] : "");
}

/* Map a stored role; unknown ones (hand-edited rows) are -1. */
int
db_role_parse(const char *s, enum msg_role *role)
{
	int	 i;

	if (s == NULL)
		return (-1);
	for (i = 0; i < ROLE_MAX; i++) {
		if (strcmp(s, db_roles[i]) == 0) {
			*role = i;
			return (0);
		}
	}
	if (strcmp(s, "assistant") == 0) {	/* the original bridge */
		*role = ROLE_MODEL;
		return (0);
	}
	return (-1);
}

/*
 * The words of a SEARCH, each quoted with its quotes doubled and
 * separated by one space: "" when there are none, NULL when too long
 * or out of memory. Every backend searches these literally.
 */
char *
db_search_words(const char *words)
{
	char		*q, *o;
	const char	*w;
	size_t		 len = strlen(words);

	/* Each word quoted, quotes doubled: at most 3 bytes a byte. */
	if (len == 0 || len > DB_SEARCH_MAX || (q = malloc(len * 3 + 3)) ==
	    NULL)
		return (NULL);
	o = q;
	for (w = words; *w != '\0';) {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0')
			break;
		if (o != q)
			*o++ = ' ';
		*o++ = '"';
		for (; *w != '\0' && *w != ' ' && *w != '\t'; w++) {
			if (*w == '"')
				*o++ = '"';
			*o++ = *w;
		}
		*o++ = '"';
	}
	*o = '\0';
	return (q);
}
