/*
 * fuzz_config.c: the configuration parser (bridged/parse.y). The
 * input is a bridged.conf; what parses must print (config_print) as a
 * file that parses again to the same configuration. Host names are
 * not looked up (getaddrinfo is wrapped to numeric only).
 */

#include <sys/types.h>
#include <sys/mman.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridged.h"
#include "fuzz.h"

/* A file holding these bytes, and its path. */
static int
memfile(const void *p, size_t n, char *path, size_t len)
{
	int	 fd;

	if ((fd = memfd_create("fuzz.conf", 0)) == -1)
		abort();
	if (n > 0 && write(fd, p, n) != (ssize_t)n)
		abort();
	snprintf(path, len, "/proc/self/fd/%d", fd);
	return (fd);
}

/* What config_print() writes, into a file of its own. */
static int
printed(const struct bridged_conf *c, char *path, size_t len)
{
	int	 fd, saved;

	fflush(stdout);
	if ((fd = memfile(NULL, 0, path, len)) == -1 ||
	    (saved = dup(STDOUT_FILENO)) == -1 ||
	    dup2(fd, STDOUT_FILENO) == -1)
		abort();
	config_print(c);
	fflush(stdout);
	if (dup2(saved, STDOUT_FILENO) == -1)
		abort();
	close(saved);
	return (fd);
}

/* The bytes of a file. */
static char *
slurp(int fd, size_t *lenp)
{
	off_t	 n = lseek(fd, 0, SEEK_END);
	char	*s;

	if (n < 0 || (s = malloc(n + 1)) == NULL ||
	    pread(fd, s, n, 0) != n)
		abort();
	s[n] = '\0';
	*lenp = n;
	return (s);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 init;
	struct bridged_conf	*c, *c2;
	char			 path[64], p1[64], p2[64];
	char			*s1, *s2;
	size_t			 n1, n2;
	int			 fd, fd1, fd2;

	if (!init) {
		fuzz_quiet(1);
		init = 1;
	}
	fd = memfile(data, size, path, sizeof(path));
	c = parse_config(path);
	close(fd);
	if (c == NULL)
		return (0);
	fd1 = printed(c, p1, sizeof(p1));
	if ((c2 = parse_config(p1)) == NULL)
		abort();	/* what it printed does not parse */
	fd2 = printed(c2, p2, sizeof(p2));
	s1 = slurp(fd1, &n1);
	s2 = slurp(fd2, &n2);
	if (n1 != n2 || memcmp(s1, s2, n1) != 0)
		abort();	/* it printed something else */
	free(s1);
	free(s2);
	close(fd1);
	close(fd2);
	config_free(c);
	config_free(c2);
	return (0);
}
