/*
 * auth.c: the parent's side of `identity token`: the tokens, read as
 * root from their file and kept only as SHA-256 hashes, and the check
 * of a token a worker passes on. The identity is the token's hash.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

#define TOKENS_MAX	100000

static char	(*hashes)[IDENTITY_LEN + 1];
static size_t	 nhashes;

static int
hash_cmp(const void *a, const void *b)
{
	return (strcmp(a, b));
}

/* Read the token file; the running set stays if it cannot be read. */
int
auth_load(const char *path)
{
	char		(*new)[IDENTITY_LEN + 1] = NULL;
	uint8_t		*buf;
	char		*line, *next, *end;
	size_t		 len, n = 0;

	if (read_file(path, &buf, &len) == -1)
		return (-1);
	if ((new = calloc(TOKENS_MAX, sizeof(*new))) == NULL)
		fatal("%s", __func__);
	for (line = (char *)buf; line < (char *)buf + len; line = next) {
		if ((end = memchr(line, '\n', (char *)buf + len - line)) ==
		    NULL)
			end = (char *)buf + len;
		next = end + 1;
		if (end > line && end[-1] == '\r')
			end--;
		if (end == line || *line == '#')
			continue;
		if (n == TOKENS_MAX) {
			log_warnx("%s: more than %d tokens", path, TOKENS_MAX);
			break;
		}
		sha256_hex(line, end - line, new[n++]);
	}
	freezero(buf, len);
	if (n == 0) {
		log_warnx("%s: no tokens", path);
		free(new);
		return (-1);
	}
	qsort(new, n, sizeof(*new), hash_cmp);
	freezero(hashes, nhashes * sizeof(*hashes));
	hashes = new;
	nhashes = n;
	return (0);
}

/* 0 and the identity when the token is one of ours. */
int
auth_token(const char *token, char identity[IDENTITY_LEN + 1])
{
	sha256_hex(token, strlen(token), identity);
	if (nhashes > 0 && bsearch(identity, hashes, nhashes,
	    sizeof(*hashes), hash_cmp) != NULL)
		return (0);
	identity[0] = '\0';
	return (-1);
}
