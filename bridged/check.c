/*
 * check.c: what the parent can find out about the system before it
 * starts, so that a mistake is one line that says what to fix instead
 * of a child that dies over and over: the TLS certificate and key load
 * and belong together, the user exists, the database directory is
 * writable by that user, each provider's API key is there. It also
 * keeps the configuration's error lines (parse.y reports through it),
 * so that a reload asked for by bridgectl can send them back.
 */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "bridged.h"

#define CONF_ERRORS_MAX		32
#define CONF_ERROR_LEN		512

static int	check_readable(const char *, const char *);
static int	check_tls(const struct bridged_conf *);
static int	check_user(const struct bridged_conf *, const char *,
		    struct passwd *);
static int	check_writable_as(const struct passwd *, const char *);
static int	check_database(const struct bridged_conf *,
		    const struct passwd *);
static int	check_keys(const struct bridged_conf *, int);
static void	check_privacy(const struct bridged_conf *);

static char	conf_errs[CONF_ERRORS_MAX][CONF_ERROR_LEN];
static size_t	conf_nerrs;

/* Forget the error lines of the last check. */
void
conf_errors_reset(void)
{
	conf_nerrs = 0;
}

/* How many error lines the last parse and check kept. */
size_t
conf_errors_count(void)
{
	return (conf_nerrs);
}

/* The i-th kept error line. */
const char *
conf_errors_get(size_t i)
{
	return (i < conf_nerrs ? conf_errs[i] : "");
}

/* Log an error of the configuration and keep it for bridgectl. */
void
conf_error(const char *fmt, ...)
{
	va_list	 ap;
	char	 line[CONF_ERROR_LEN];

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warnx("%s", line);
	if (conf_nerrs < CONF_ERRORS_MAX)
		(void)strlcpy(conf_errs[conf_nerrs++], line, CONF_ERROR_LEN);
}

/* A file the parent must read: there, a regular file, readable. */
static int
check_readable(const char *what, const char *path)
{
	struct stat	 st;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_error("%s %s: %s: fix the path or the file's "
		    "permissions", what, path, strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size == 0) {
		conf_error("%s %s is not a file with something in it",
		    what, path);
		close(fd);
		return (-1);
	}
	close(fd);
	return (0);
}

/*
 * The certificate and key load into libtls as a worker loads them,
 * which also proves the key belongs to the certificate.
 */
static int
check_tls(const struct bridged_conf *conf)
{
	struct listen_conf	*l;
	struct tls_config	*cfg = NULL;
	struct tls		*ctx = NULL;
	uint8_t			*cert = NULL, *key = NULL;
	size_t			 certlen = 0, keylen = 0;
	int			 want = 0, bad = 0;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		want |= l->tls;
	if (!want)
		return (0);
	if (check_readable("tls certificate", conf->g.tls_cert) == -1)
		bad++;
	if (check_readable("tls key", conf->g.tls_key) == -1)
		bad++;
	if (bad)
		return (-1);
	if (read_file(conf->g.tls_cert, &cert, &certlen) == -1 ||
	    read_file(conf->g.tls_key, &key, &keylen) == -1) {
		conf_error("cannot read the TLS certificate %s or key %s",
		    conf->g.tls_cert, conf->g.tls_key);
		bad++;
		goto done;
	}
	if (tls_init() == -1 || (cfg = tls_config_new()) == NULL ||
	    (ctx = tls_server()) == NULL)
		fatalx("%s: libtls", __func__);
	if (tls_config_set_keypair_mem(cfg, cert, certlen, key,
	    keylen) == -1 || tls_configure(ctx, cfg) == -1) {
		conf_error("tls certificate %s and tls key %s do not load "
		    "as a pair (%s): the key must be the certificate's; make "
		    "a new pair with: openssl req -x509 -newkey ec -pkeyopt "
		    "ec_paramgen_curve:P-256 -nodes -days 365 -subj "
		    "/CN=$(hostname) -keyout %s -out %s", conf->g.tls_cert,
		    conf->g.tls_key, ctx != NULL && tls_error(ctx) != NULL ?
		    tls_error(ctx) : tls_config_error(cfg), conf->g.tls_key,
		    conf->g.tls_cert);
		bad++;
	}
 done:
	tls_free(ctx);
	tls_config_free(cfg);
	freezero(cert, certlen);
	freezero(key, keylen);
	return (bad ? -1 : 0);
}

/* The user must exist: a copy of its entry in *pw. */
static int
check_user(const struct bridged_conf *conf, const char *file,
    struct passwd *pw)
{
	struct passwd	*p;

	if ((p = getpwnam(conf->g.user)) == NULL) {
		conf_error("user \"%s\" does not exist: create it (useradd "
		    "-r -d /var/empty -s /usr/sbin/nologin %s) or change "
		    "`user' in %s", conf->g.user, conf->g.user, file);
		return (-1);
	}
	*pw = *p;
	return (0);
}

/*
 * May pw write (and search) path? As root we ask as that user does,
 * in a child that becomes it (its group alone, as the sandbox does).
 */
static int
check_writable_as(const struct passwd *pw, const char *path)
{
	pid_t	 pid;
	int	 status;

	if (geteuid() != 0)
		return (access(path, W_OK));
	switch (pid = fork()) {
	case -1:
		fatal("%s: fork", __func__);
	case 0:
		if (setgroups(1, &pw->pw_gid) == -1 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			_exit(2);
		if (access(path, W_OK) == -1)
			_exit(1);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			fatal("%s: waitpid", __func__);
	return (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1);
}

/*
 * A database server (PostgreSQL): its password only in `database
 * password file', which must be readable here (as the parent reads
 * it). A URI's userinfo with a password or a conninfo password= in
 * the configuration is refused.
 */
static int
check_server(const struct bridged_conf *conf)
{
	const char	*d = conf->g.database, *at, *colon;
	int		 bad = 0;

	at = strchr(d, '@');
	colon = strstr(d, "://") != NULL ? strchr(strstr(d, "://") + 3, ':') :
	    NULL;
	if (strstr(d, "password") != NULL ||
	    (at != NULL && colon != NULL && colon < at)) {
		conf_error("database: the string holds a password; put it in "
		    "a file and name it with `database password file'");
		bad++;
	}
	if (conf->g.db_password_file[0] != '\0' &&
	    check_readable("database password file",
	    conf->g.db_password_file) == -1)
		bad++;
	return (bad ? -1 : 0);
}

/* The database's directory (and file, if there) writable by the user. */
static int
check_database(const struct bridged_conf *conf, const struct passwd *pw)
{
	struct stat	 st;
	struct passwd	*me;
	char		 copy[PATH_MAX], *dir, who[64];

	if (db_server(conf->g.database))
		return (0);	/* check_server's */
	if (conf->g.db_password_file[0] != '\0') {
		conf_error("database password file: %s is a file, not a "
		    "server", conf->g.database);
		return (-1);
	}
	/* Not root, every process runs as the one who started bridged. */
	(void)strlcpy(who, pw->pw_name, sizeof(who));
	if (geteuid() != 0 && (me = getpwuid(geteuid())) != NULL)
		(void)strlcpy(who, me->pw_name, sizeof(who));
	(void)strlcpy(copy, conf->g.database, sizeof(copy));
	dir = dirname(copy);
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		conf_error("database directory %s does not exist: mkdir -p "
		    "%s && chown %s %s", dir, dir, who, dir);
		return (-1);
	}
	if (check_writable_as(pw, dir) == -1) {
		conf_error("database directory %s is not writable by user "
		    "%s: chown %s %s (SQLite writes its journal beside the "
		    "database)", dir, who, who, dir);
		return (-1);
	}
	if (stat(conf->g.database, &st) == 0 &&
	    check_writable_as(pw, conf->g.database) == -1) {
		conf_error("database %s is not writable by user %s: chown "
		    "%s %s", conf->g.database, who, who, conf->g.database);
		return (-1);
	}
	return (0);
}

/* Each provider's key: a warning for -n, an error before starting. */
static int
check_keys(const struct bridged_conf *conf, int how)
{
	struct provider_conf	*p;
	const char		*v;
	int			 bad = 0, fd;

	TAILQ_FOREACH(p, &conf->providers, entry) {
		if (p->key_file[0] != '\0') {
			if ((fd = open(p->key_file, O_RDONLY |
			    O_CLOEXEC)) != -1) {
				close(fd);
				continue;
			}
			if (how == CHECK_NOACTION)
				log_warnx("warning: provider \"%s\": api key "
				    "file %s: %s: bridged will not start "
				    "without it", p->name, p->key_file,
				    strerror(errno));
			else
				conf_error("provider \"%s\": api key file "
				    "%s: %s: put the key there (one line, "
				    "mode 600) or change `api key file'",
				    p->name, p->key_file, strerror(errno));
		} else if (p->key_env[0] != '\0') {
			if ((v = getenv(p->key_env)) != NULL && *v != '\0')
				continue;
			if (how == CHECK_NOACTION)
				log_warnx("warning: provider \"%s\": api key "
				    "env %s is not set here: bridged will not "
				    "start without it", p->name, p->key_env);
			else
				conf_error("provider \"%s\": api key env %s "
				    "is not set: export it before starting "
				    "bridged, or use `api key file'",
				    p->name, p->key_env);
		} else
			continue;
		if (how != CHECK_NOACTION)
			bad++;
	}
	return (bad ? -1 : 0);
}

/* identity ip off loopback: one history for everyone behind an address. */
static void
check_privacy(const struct bridged_conf *conf)
{
	struct listen_conf	*l;

	if (conf->g.identity != IDENTITY_IP)
		return;
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (is_loopback(&l->ss))
			continue;
		log_warnx("warning: identity ip: listen on %s port %u is "
		    "not loopback-only; everyone connecting from one address "
		    "(a NAT, a shared host) shares one history; use identity "
		    "certificate or identity token to tell them apart",
		    l->name, l->port);
		return;
	}
}

/*
 * Check what the configuration names on this system. how is
 * CHECK_START, CHECK_NOACTION (-n: a missing key only warns) or
 * CHECK_RELOAD (user and database change only at the next start).
 * 0 if bridged can run with it; -1 once every problem is reported.
 */
int
check_config(const struct bridged_conf *conf, const char *file, int how)
{
	struct passwd	 pw;
	int		 bad = 0;

	if (check_tls(conf) == -1)
		bad++;
	if (how != CHECK_RELOAD) {
		if (check_user(conf, file, &pw) == -1)
			bad++;
		else if (check_database(conf, &pw) == -1)
			bad++;
		if (db_server(conf->g.database) && check_server(conf) == -1)
			bad++;
	}
	if (conf->g.identity == IDENTITY_TOKEN &&
	    conf->g.tokens[0] != '\0' &&
	    check_readable("identity token file", conf->g.tokens) == -1)
		bad++;
	if (check_keys(conf, how) == -1)
		bad++;
	if (how != CHECK_RELOAD)
		check_privacy(conf);
	return (bad ? -1 : 0);
}
