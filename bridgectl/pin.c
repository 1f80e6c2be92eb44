/*
 * pin.c: without a CA file the server's certificate is pinned on first
 * use in ~/.bridge/known_hosts, as ssh does with host keys, or checked
 * against the pin a named server gives in ~/.bridge/config.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tls.h>
#include <unistd.h>

#include "bridgectl.h"

static int	split_fields(char *, char *[3]);
static void	pin_mismatch(const char *, size_t, const char *,
		    const char *) __attribute__((__noreturn__));

/* The path of ~/.bridge/name, making ~/.bridge if it is missing. */
int
home_file(const char *name, char *buf, size_t len)
{
	const char	*home;
	struct passwd	*pw;
	int		 n;

	home = getenv("HOME");
	if (home == NULL || *home == '\0') {
		if ((pw = getpwuid(getuid())) == NULL)
			return (-1);
		home = pw->pw_dir;
	}
	n = snprintf(buf, len, "%s/.bridge", home);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return (-1);
	n = snprintf(buf, len, "%s/.bridge/%s", home, name);
	if (n < 0 || (size_t)n >= len)
		return (-1);
	return (0);
}

/* Is s what tls_peer_cert_hash gives: "SHA256:" and 64 hex digits? */
int
hash_valid(const char *s)
{
	if (strncmp(s, "SHA256:", 7) != 0)
		return (0);
	s += 7;
	return (strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64);
}

/* Split a known_hosts line into host, port and hash; -1 if it is not one. */
static int
split_fields(char *line, char *f[3])
{
	char	*p;
	int	 n = 0;

	line[strcspn(line, "\r\n")] = '\0';
	line += strspn(line, " \t");
	if (*line == '#' || *line == '\0')
		return (-1);
	while ((p = strsep(&line, " \t")) != NULL) {
		if (*p == '\0')
			continue;
		if (n == 3)
			return (-1);
		f[n++] = p;
	}
	return (n == 3 ? 0 : -1);
}

/* The pin and the certificate differ: refuse, and say how to fix it. */
static void
pin_mismatch(const char *path, size_t lineno, const char *pinned,
    const char *offered)
{
	warnx("WARNING: the certificate of %s port %s has CHANGED",
	    cl.host, cl.port);
	warnx("pinned:  %s", pinned);
	warnx("offered: %s", offered);
	warnx("someone may be intercepting this connection, or the server "
	    "has a new certificate");
	warnx("if you know the change is legitimate, remove line %zu of %s "
	    "and connect again", lineno, path);
	exit(1);
}

/* Trust on first use: the certificate must match its pin, or is pinned. */
void
pin_check(void)
{
	char		 path[PATH_MAX], *line = NULL, *f[3];
	const char	*hash;
	size_t		 sz = 0, lineno = 0;
	ssize_t		 len;
	FILE		*fp;
	int		 fd, n, endsnl = 1;

	if ((hash = tls_peer_cert_hash(cl.tls)) == NULL || !hash_valid(hash))
		errx(1, "%s port %s: cannot hash the server's certificate",
		    cl.host, cl.port);
	if (home_file("known_hosts", path, sizeof(path)) == -1)
		errx(1, "no ~/.bridge to pin the server's certificate in; "
		    "use -C cafile or -k");
	if ((fp = fopen(path, "r")) == NULL && errno != ENOENT)
		err(1, "%s", path);
	while (fp != NULL && (len = getline(&line, &sz, fp)) != -1) {
		lineno++;
		endsnl = line[len - 1] == '\n';
		if (split_fields(line, f) == -1)
			continue;
		if (strcasecmp(f[0], cl.host) != 0 || strcmp(f[1], cl.port))
			continue;
		if (strcmp(f[2], hash) != 0)
			pin_mismatch(path, lineno, f[2], hash);
		free(line);
		fclose(fp);
		return;
	}
	if (fp != NULL) {
		if (ferror(fp))
			err(1, "%s", path);
		fclose(fp);
	}
	free(line);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600)) == -1)
		err(1, "%s", path);
	n = dprintf(fd, "%s%s %s %s\n", endsnl ? "" : "\n", cl.host, cl.port,
	    hash);
	if (n < 0 || close(fd) == -1)
		err(1, "%s", path);
	warnx("first connection to %s port %s: certificate %s pinned in %s",
	    cl.host, cl.port, hash, path);
}

/* A pin from ~/.bridge/config: the certificate must be that one. */
void
pin_verify(const char *pin)
{
	const char	*hash;

	if ((hash = tls_peer_cert_hash(cl.tls)) == NULL || !hash_valid(hash))
		errx(1, "%s port %s: cannot hash the server's certificate",
		    cl.host, cl.port);
	if (strcmp(hash, pin) == 0)
		return;
	warnx("WARNING: the certificate of %s port %s is NOT the one pinned "
	    "in ~/.bridge/config", cl.host, cl.port);
	warnx("pinned:  %s", pin);
	warnx("offered: %s", hash);
	warnx("someone may be intercepting this connection, or the server "
	    "has a new certificate; if you know it is legitimate, change "
	    "the pin of server %s", cl.target.name);
	exit(1);
}
