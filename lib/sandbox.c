/*
 * sandbox.c: the steps every sandbox implementation takes the same
 * way: checking the user and the chroot, becoming the user for good,
 * resource limits, and wiping the environment.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/*
 * Check what must be checked as root: the user exists, the chroot is
 * a directory. The parent does this to refuse to start; a child to
 * get the ids before the chroot hides /etc/passwd.
 */
int
sandbox_check_conf(const struct sandbox_conf *sc, struct passwd *pw)
{
	struct passwd	*p;
	struct stat	 st;

	if (sc->user != NULL) {
		errno = 0;
		if ((p = getpwnam(sc->user)) == NULL) {
			if (errno != 0)
				log_warn("user \"%s\"", sc->user);
			else
				log_warnx("user \"%s\" does not exist; "
				    "create it or set another user in the "
				    "configuration", sc->user);
			return (-1);
		}
		*pw = *p;
	}
	if (sc->chroot != NULL) {
		if (stat(sc->chroot, &st) == -1) {
			log_warn("chroot directory \"%s\"", sc->chroot);
			return (-1);
		}
		if (!S_ISDIR(st.st_mode)) {
			log_warnx("chroot \"%s\" is not a directory",
			    sc->chroot);
			return (-1);
		}
	}
	return (0);
}

/* Become the user for good: groups, gid, uid, and check it holds. */
int
sandbox_drop_user(const struct passwd *pw)
{
	gid_t	 gid = pw->pw_gid;
	uid_t	 uid = pw->pw_uid;

	if (setgroups(1, &gid) == -1) {
		log_warn("%s: setgroups", __func__);
		return (-1);
	}
	if (setresgid(gid, gid, gid) == -1) {
		log_warn("%s: setresgid", __func__);
		return (-1);
	}
	if (setresuid(uid, uid, uid) == -1) {
		log_warn("%s: setresuid", __func__);
		return (-1);
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid) {
		log_warnx("%s: ids did not change", __func__);
		return (-1);
	}
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		log_warnx("%s: could regain root", __func__);
		return (-1);
	}
	return (0);
}

/* Soft and hard limit at once. */
static int
limit(int resource, const char *name, rlim_t value)
{
	struct rlimit	 rl;

	rl.rlim_cur = rl.rlim_max = value;
	if (setrlimit(resource, &rl) == -1) {
		log_warn("%s: %s", __func__, name);
		return (-1);
	}
	return (0);
}

/*
 * No core files anywhere (they would hold keys and conversations), no
 * new processes where the role has no use for them. The provider keeps
 * RLIMIT_NPROC: its resolver starts threads; so does storage, for the
 * thread that checkpoints SQLite's WAL (their filters allow threads,
 * not processes); the worker template forks the workers (each of them
 * loses it). RLIMIT_FSIZE stays: with -d, stderr may be a file.
 */
int
sandbox_limits(enum sandbox_role role)
{
	if (limit(RLIMIT_CORE, "RLIMIT_CORE", 0) == -1)
		return (-1);
	if (role != SANDBOX_PROVIDER && role != SANDBOX_TEMPLATE &&
	    role != SANDBOX_STORAGE &&
	    limit(RLIMIT_NPROC, "RLIMIT_NPROC", 0) == -1)
		return (-1);
	return (0);
}

/* The environment may carry an API key; only the provider needs it. */
void
sandbox_wipe_environ(void)
{
	extern char	**environ;
	char		**e;

	if (environ == NULL)
		return;
	for (e = environ; *e != NULL; e++)
		explicit_bzero(*e, strlen(*e));
	environ[0] = NULL;
}
