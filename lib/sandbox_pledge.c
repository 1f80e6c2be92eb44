/*
 * sandbox_pledge.c: confine one process of bridged on OpenBSD.
 *
 * In this order: check the user and the chroot directory while they
 * can still be looked up, chroot (worker, control), drop to the user
 * (setgroups, setresgid, setresuid), lower the rlimits, wipe the
 * environment of the roles that have no use for it, unveil what the
 * role may see and lock it, then pledge(2) the role's promises. A
 * pledge violation kills the process with SIGABRT.
 *
 * What each role promises:
 * parent	reload (rpath, getpw, dns), the control socket (wpath cpath
 *		fattr chown unix), listeners (inet), handing out clients
 *		(sendfd), starting children (proc exec). No unveil: a
 *		reload may include any file.
 * control	stdio unix: bridgectl on the socket it was given.
 * storage	files in the database directory and /dev/urandom only
 *		(unveil), with fcntl locks (flock) and fchmod (fattr);
 *		channels (recvfd). With PostgreSQL: no file, its one
 *		connection (inet or unix).
 * provider	TCP and DNS, the CA bundle and resolver files read only.
 * worker	stdio recvfd: nothing but its client and its peers. The
 *		parent sets TCP_NODELAY before it passes the socket:
 *		pledge allows that option with inet only.
 * template	a worker's promises and proc, to fork the workers; each
 *		worker pledges again without proc.
 *
 * SANDBOX_TEST builds make a child attempt a call its role forbids
 * when it receives SIGUSR2, so that a test can watch it die.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct role_sandbox {
	const char	*name;
	const char	*promises;
	int		 chroot;	/* to sc->chroot when root */
	int		 hide;		/* unveil nothing at all */
};

static const struct role_sandbox roles[] = {
	[SANDBOX_PARENT] = { "parent", "stdio rpath wpath cpath fattr "
	    "chown inet unix dns getpw sendfd proc exec", 0, 0 },
	[SANDBOX_CONTROL] = { "control", "stdio unix", 1, 1 },
	[SANDBOX_STORAGE] = { "storage", "stdio rpath wpath cpath flock "
	    "fattr recvfd", 0, 0 },
	[SANDBOX_PROVIDER] = { "provider", "stdio rpath inet dns recvfd",
	    0, 0 },
	[SANDBOX_WORKER] = { "worker", "stdio recvfd", 1, 1 },
	[SANDBOX_TEMPLATE] = { "template", "stdio recvfd proc", 1, 1 },
};

/* Read only, for the provider: resolver and CA bundle. */
static const char *const provider_paths[] = {
	"/etc/resolv.conf", "/etc/hosts", "/etc/services",
	"/etc/ssl/cert.pem",
	NULL
};

/* Unveil one path; one that does not exist is skipped. */
static int
unveil_path(const char *path, const char *perms)
{
	if (unveil(path, perms) == -1 && errno != ENOENT) {
		log_warn("%s: unveil %s", __func__, path);
		return (-1);
	}
	return (0);
}

/* What the role may see of the file system; then no more changes. */
static int
unveil_role(enum sandbox_role role, const struct sandbox_conf *sc)
{
	const char *const	*p;

	switch (role) {
	case SANDBOX_PARENT:
		return (0);
	case SANDBOX_STORAGE:
		if (sc->db_family != 0)
			break;		/* a server's: no file at all */
		/* SQLite seeds its generator from /dev/urandom. */
		if (unveil_path("/dev/urandom", "r") == -1)
			return (-1);
		if (sc->dbdir != NULL && unveil_path(sc->dbdir, "rwc") == -1)
			return (-1);
		break;
	case SANDBOX_PROVIDER:
		for (p = provider_paths; *p != NULL; p++)
			if (unveil_path(*p, "r") == -1)
				return (-1);
		break;
	default:
		if (roles[role].hide && unveil_path("/", "") == -1)
			return (-1);
		break;
	}
	if (unveil(NULL, NULL) == -1) {
		log_warn("%s: unveil lock", __func__);
		return (-1);
	}
	return (0);
}

#ifdef SANDBOX_TEST
static enum sandbox_role test_role;

/* Test builds: on SIGUSR2, make a call this role forbids. */
static void
sandbox_sigusr2(int sig)
{
	(void)sig;
	switch (test_role) {
	case SANDBOX_STORAGE:
		(void)socket(AF_INET, SOCK_STREAM, 0);
		break;
	case SANDBOX_PROVIDER:
		(void)open("/", O_WRONLY | O_CREAT, 0600);
		break;
	case SANDBOX_PARENT:
		(void)chroot("/");
		break;
	default:
		(void)open("/etc/passwd", O_RDONLY);
		break;
	}
}

/* The tests' hook: SIGUSR2 makes a sandboxed process try a forbidden call. */
static int
test_hook(enum sandbox_role role)
{
	struct sigaction	 sa;

	test_role = role;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sandbox_sigusr2;
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGUSR2, &sa, NULL) == -1) {
		log_warn("%s: sigaction", __func__);
		return (-1);
	}
	return (0);
}
#endif

/* Confine this process to what its role needs, for good. */
int
sandbox_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	static const struct sandbox_conf	 none;
	const struct role_sandbox		*r;
	struct passwd				 pw;
	const char				*promises;

	if ((int)role < SANDBOX_PARENT || role > SANDBOX_TEMPLATE) {
		log_warnx("%s: unknown role %d", __func__, role);
		return (-1);
	}
	r = &roles[role];
	if (sc == NULL)
		sc = &none;
	/* The time zone, while /etc/localtime can be read. */
	tzset();

	if (geteuid() == 0) {
		memset(&pw, 0, sizeof(pw));
		if (sandbox_check_conf(sc, &pw) == -1)
			return (-1);
		if (r->chroot && sc->chroot != NULL &&
		    (chroot(sc->chroot) == -1 || chdir("/") == -1)) {
			log_warn("%s: chroot %s", r->name, sc->chroot);
			return (-1);
		}
		if (role != SANDBOX_PARENT && sc->user != NULL &&
		    sandbox_drop_user(&pw) == -1)
			return (-1);
	} else if (sc->user != NULL || sc->chroot != NULL) {
		if (role == SANDBOX_PARENT)
			log_warnx("not running as root: user and chroot "
			    "are not applied; the processes are confined "
			    "by pledge and unveil alone");
		else
			log_debug("%s: not root: no user, no chroot",
			    r->name);
	}

	if (role != SANDBOX_PARENT) {
		if (sandbox_limits(role) == -1)
			return (-1);
		if (role != SANDBOX_PROVIDER)
			sandbox_wipe_environ();
	}
	if (unveil_role(role, sc) == -1)
		return (-1);
#ifdef SANDBOX_TEST
	if (test_hook(role) == -1)
		return (-1);
#endif
	promises = r->promises;
	/* A database server: its connection, no file (nothing unveiled). */
	if (role == SANDBOX_STORAGE && sc->db_family != 0)
		promises = sc->db_family == AF_UNIX ? "stdio unix recvfd" :
		    "stdio inet recvfd";
	if (pledge(promises, NULL) == -1) {
		log_warn("%s: pledge \"%s\"", r->name, promises);
		return (-1);
	}
	log_debug("%s: %s sandboxed", __func__, r->name);
	return (0);
}

/* A worker forked from its template: the same pledge without proc. */
int
sandbox_narrow(enum sandbox_role role)
{
	if (role != SANDBOX_WORKER) {
		log_warnx("%s: role %d cannot be narrowed to", __func__, role);
		return (-1);
	}
	if (sandbox_limits(role) == -1)
		return (-1);
#ifdef SANDBOX_TEST
	test_role = role;
#endif
	if (pledge(roles[role].promises, NULL) == -1) {
		log_warn("%s: pledge \"%s\"", roles[role].name,
		    roles[role].promises);
		return (-1);
	}
	return (0);
}

/* Nothing to prepare: pledge(2) costs a worker nothing to build. */
int
sandbox_prepare(enum sandbox_role role)
{
	(void)role;
	return (0);
}
