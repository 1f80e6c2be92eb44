/*
 * compat.c: small functions some systems lack, and a few descriptor
 * and text helpers every process uses.
 */

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "util.h"

#ifndef HAVE_STRLCPY
/* Copy with truncation; the length of src (OpenBSD's strlcpy). */
size_t
strlcpy(char *dst, const char *src, size_t size)
{
	size_t	 len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return (len);
}

/* Append with truncation; the length tried (OpenBSD's strlcat). */
size_t
strlcat(char *dst, const char *src, size_t size)
{
	size_t	 dlen = strnlen(dst, size);

	if (dlen == size)
		return (size + strlen(src));
	return (dlen + strlcpy(dst + dlen, src, size - dlen));
}
#endif

#ifndef HAVE_STRTONUM
/* A decimal number in [min, max], or 0 with *errstr set. */
long long
strtonum(const char *s, long long min, long long max, const char **errstr)
{
	long long	 v;
	char		*end;
	int		 save = errno;

	*errstr = NULL;
	if (min > max) {
		*errstr = "invalid";
		errno = EINVAL;
		return (0);
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (s == end || *end != '\0') {
		*errstr = "invalid";
		errno = EINVAL;
		return (0);
	}
	if ((v == LLONG_MIN && errno == ERANGE) || v < min) {
		*errstr = "too small";
		errno = ERANGE;
		return (0);
	}
	if ((v == LLONG_MAX && errno == ERANGE) || v > max) {
		*errstr = "too large";
		errno = ERANGE;
		return (0);
	}
	errno = save;
	return (v);
}
#endif

#ifndef HAVE_FREEZERO
/* Wipe, then free. */
void
freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}
#endif

#ifndef HAVE_RECALLOCARRAY
/* Resize, zeroing what is new and wiping what is left behind. */
void *
recallocarray(void *p, size_t oldn, size_t newn, size_t size)
{
	size_t	 oldsize, newsize;
	void	*np;

	if (size != 0 && newn > SIZE_MAX / size) {
		errno = ENOMEM;
		return (NULL);
	}
	newsize = newn * size;
	oldsize = oldn * size;
	if (p == NULL)
		return (calloc(newn, size));
	if ((np = malloc(newsize)) == NULL)
		return (NULL);
	if (newsize > oldsize) {
		memcpy(np, p, oldsize);
		memset((char *)np + oldsize, 0, newsize - oldsize);
	} else
		memcpy(np, p, newsize);
	freezero(p, oldsize);
	return (np);
}
#endif

#ifndef HAVE_SETPROCTITLE
static char	*title_base;
static size_t	 title_size;
static char	*title_name;	/* the program's name, before any title */
extern char	*__progname;

/* Claim argv and environ's space for process titles. */
void
setproctitle_init(int argc, char **argv)
{
	extern char	**environ;
	char		**env, *end;
	int		 i, n;

	if (argc == 0 || argv[0] == NULL)
		return;
	end = argv[0] + strlen(argv[0]) + 1;
	for (i = 1; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	for (n = 0; environ[n] != NULL; n++)
		;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		if ((env[i] = strdup(environ[i])) == NULL)
			return;
	}
	environ = env;
	/* __progname points into argv[0], which titles overwrite. */
	title_name = strdup(__progname);
	title_base = argv[0];
	title_size = end - argv[0];
	/* The strings move to the heap so argv stays usable. */
	for (i = 0; i < argc; i++)
		if ((argv[i] = strdup(argv[i])) == NULL)
			return;
}

/* The title ps(1) shows: "name: text". */
void
setproctitle(const char *fmt, ...)
{
	char		 buf[256];
	va_list		 ap;
	int		 n;

	n = snprintf(buf, sizeof(buf), "%s: ", title_name != NULL ?
	    title_name : __progname);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(buf))
		vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
#ifdef __linux__
	prctl(PR_SET_NAME, buf + n);
#endif
	if (title_base == NULL)
		return;
	memset(title_base, '\0', title_size);
	strlcpy(title_base, buf, title_size);
}
#endif

/* Make a descriptor non-blocking. */
int
fd_nonblock(int fd)
{
	int	 fl;

	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return (-1);
	return (0);
}

/* Close a descriptor on exec. */
int
fd_cloexec(int fd)
{
	return (fcntl(fd, F_SETFD, FD_CLOEXEC));
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
int
utf8_valid(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n, k;
	uint32_t		 cp, min;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else
			return (0);
		if (n > len - i - 1)
			return (0);
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return (0);
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return (0);
		i += n + 1;
	}
	return (1);
}
