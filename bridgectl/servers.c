/*
 * servers.c: where bridgectl connect goes and what it presents. The
 * argument is a server named in ~/.bridge/config, or host, host:port,
 * [IPv6 address] or [IPv6 address]:port. A named server may give a CA
 * file or a certificate pin, and a token file whose token is sent with
 * AUTH; BRIDGE_TOKEN gives the token otherwise. A token is never taken
 * from the command line, where ps(1) would show it.
 *
 *	# ~/.bridge/config
 *	server work
 *		host bridge.example.com:65432
 *		ca ~/.bridge/work-ca.crt
 *		token-file ~/.bridge/work.token
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
#include <unistd.h>

#include "bridgectl.h"

#define TOKEN_MAX	1024

static int	set_path(const char *, char *, size_t);
static int	set_port(const char *, char *, size_t);
static int	server_line(struct target *, char *, const char **);

/* Split host, host:port, [v6] or [v6]:port; -1 if it is none of them. */
int
target_hostport(const char *arg, struct target *t)
{
	const char	*end, *colon;
	size_t		 len;

	if (arg[0] == '[') {
		if ((end = strchr(arg, ']')) == NULL)
			return (-1);
		len = end - arg - 1;
		if (end[1] == ':') {
			if (set_port(end + 2, t->port, sizeof(t->port)) == -1)
				return (-1);
		} else if (end[1] != '\0')
			return (-1);
		arg++;
	} else if ((colon = strchr(arg, ':')) != NULL &&
	    strchr(colon + 1, ':') == NULL) {
		/* One colon: host:port. More: a bare IPv6 address. */
		len = colon - arg;
		if (set_port(colon + 1, t->port, sizeof(t->port)) == -1)
			return (-1);
	} else
		len = strlen(arg);
	if (len == 0 || len >= sizeof(t->host))
		return (-1);
	memcpy(t->host, arg, len);
	t->host[len] = '\0';
	if (t->host[strcspn(t->host, " \t\r\n#[]/")] != '\0')
		return (-1);
	return (0);
}

/* A port number, 1 to 65535, kept as its decimal string. */
static int
set_port(const char *s, char *buf, size_t len)
{
	const char	*errstr;
	long long	 n;

	n = strtonum(s, 1, 65535, &errstr);
	if (errstr != NULL)
		return (-1);
	(void)snprintf(buf, len, "%lld", n);
	return (0);
}

/* A path of the file, with ~/ meaning the home directory. */
static int
set_path(const char *s, char *buf, size_t len)
{
	const char	*home;
	struct passwd	*pw;
	int		 n;

	if (strncmp(s, "~/", 2) != 0)
		n = snprintf(buf, len, "%s", s);
	else {
		if ((home = getenv("HOME")) == NULL || *home == '\0') {
			if ((pw = getpwuid(getuid())) == NULL)
				return (-1);
			home = pw->pw_dir;
		}
		n = snprintf(buf, len, "%s/%s", home, s + 2);
	}
	return (n > 0 && (size_t)n < len ? 0 : -1);
}

/* One "key value" line of a server; -1 with *why if it is wrong. */
static int
server_line(struct target *t, char *line, const char **why)
{
	char	*key, *val;

	key = line;
	val = key + strcspn(key, " \t");
	if (*val != '\0')
		*val++ = '\0';
	val += strspn(val, " \t");
	val[strcspn(val, " \t")] = '\0';
	if (*val == '\0') {
		*why = "a value is missing";
		return (-1);
	}
	if (strcmp(key, "host") == 0) {
		if (target_hostport(val, t) == -1) {
			*why = "host: not host, host:port or [address]:port";
			return (-1);
		}
	} else if (strcmp(key, "port") == 0) {
		if (set_port(val, t->port, sizeof(t->port)) == -1) {
			*why = "port: not a number from 1 to 65535";
			return (-1);
		}
	} else if (strcmp(key, "ca") == 0) {
		if (set_path(val, t->cafile, sizeof(t->cafile)) == -1) {
			*why = "ca: path too long";
			return (-1);
		}
	} else if (strcmp(key, "pin") == 0) {
		if (!hash_valid(val)) {
			*why = "pin: not SHA256: and 64 lowercase hex digits";
			return (-1);
		}
		(void)strlcpy(t->pin, val, sizeof(t->pin));
	} else if (strcmp(key, "token-file") == 0) {
		if (set_path(val, t->tokenfile, sizeof(t->tokenfile)) == -1) {
			*why = "token-file: path too long";
			return (-1);
		}
	} else {
		*why = "unknown keyword (host, port, ca, pin, token-file)";
		return (-1);
	}
	return (0);
}

/*
 * Find the server called name in ~/.bridge/config: 1 and *t filled
 * in, 0 if the file or the name is not there. A mistake in the file
 * ends bridgectl with file:line.
 */
int
servers_lookup(const char *name, struct target *t)
{
	struct target	 other;
	char		 path[PATH_MAX], *line = NULL, *p, *w;
	const char	*why;
	size_t		 sz = 0, lineno = 0;
	ssize_t		 len;
	FILE		*fp;
	int		 in = 0, found = 0;

	if (home_file("config", path, sizeof(path)) == -1)
		return (0);
	if ((fp = fopen(path, "r")) == NULL) {
		if (errno == ENOENT)
			return (0);
		err(1, "%s", path);
	}
	while ((len = getline(&line, &sz, fp)) != -1) {
		lineno++;
		p = line + strspn(line, " \t");
		p[strcspn(p, "\r\n")] = '\0';
		if (*p == '#' || *p == '\0')
			continue;
		if (strncmp(p, "server", 6) == 0 && (p[6] == ' ' ||
		    p[6] == '\t')) {
			w = p + 6 + strspn(p + 6, " \t");
			w[strcspn(w, " \t")] = '\0';
			if (*w == '\0')
				errx(1, "%s:%zu: server needs a name", path,
				    lineno);
			if (found)
				break;
			in = strcmp(w, name) == 0;
			if (in) {
				found = 1;
				memset(t, 0, sizeof(*t));
				(void)strlcpy(t->name, w, sizeof(t->name));
			}
			continue;
		}
		/* The other servers' lines are checked too. */
		memset(&other, 0, sizeof(other));
		if (server_line(in ? t : &other, p, &why) == -1)
			errx(1, "%s:%zu: %s", path, lineno, why);
	}
	if (ferror(fp))
		err(1, "%s", path);
	free(line);
	fclose(fp);
	if (found && t->host[0] == '\0')
		errx(1, "%s: server %s has no host", path, name);
	if (found && t->cafile[0] != '\0' && t->pin[0] != '\0')
		errx(1, "%s: server %s has both ca and pin; keep one", path,
		    name);
	return (found);
}

/*
 * The token to send with AUTH: the server's token file, else
 * BRIDGE_TOKEN; NULL if neither. A token file others can read is
 * refused, as ssh refuses such a key.
 */
char *
token_load(const struct target *t)
{
	struct stat	 st;
	char		 buf[TOKEN_MAX + 2], *tok;
	const char	*env;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if (t->tokenfile[0] == '\0') {
		if ((env = getenv("BRIDGE_TOKEN")) == NULL || *env == '\0')
			return (NULL);
		len = strlen(env);
		if (len > TOKEN_MAX || !token_valid(env, len))
			errx(1, "BRIDGE_TOKEN is not a token (1 to %d "
			    "printable characters, no spaces)", TOKEN_MAX);
		if ((tok = strdup(env)) == NULL)
			err(1, NULL);
		return (tok);
	}
	if ((fd = open(t->tokenfile, O_RDONLY | O_CLOEXEC)) == -1)
		err(1, "token file %s", t->tokenfile);
	if (fstat(fd, &st) == -1)
		err(1, "token file %s", t->tokenfile);
	if (!S_ISREG(st.st_mode))
		errx(1, "token file %s is not a file", t->tokenfile);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		errx(1, "token file %s can be read by others; fix it with: "
		    "chmod 600 %s", t->tokenfile, t->tokenfile);
	while (len < sizeof(buf) && (n = read(fd, buf + len,
	    sizeof(buf) - len)) > 0)
		len += n;
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0 || len > TOKEN_MAX || !token_valid(buf, len))
		errx(1, "token file %s: no token in it (one line of 1 to %d "
		    "printable characters, no spaces)", t->tokenfile,
		    TOKEN_MAX);
	if ((tok = malloc(len + 1)) == NULL)
		err(1, NULL);
	memcpy(tok, buf, len);
	tok[len] = '\0';
	explicit_bzero(buf, sizeof(buf));
	return (tok);
}

/* Printable ASCII without blanks: what AUTH can carry on one line. */
int
token_valid(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0)
		return (0);
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f)
			return (0);
	return (1);
}
