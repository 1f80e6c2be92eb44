/*
 * sandbox_linux.c: confine one process of bridged on Linux.
 *
 * In this order: check the user and the chroot directory while they
 * can still be looked up, chroot (worker, control), drop to the user
 * (setgroups, setresgid, setresuid) and make sure root cannot come
 * back, lower the rlimits, wipe the environment of the roles that have
 * no use for it, set no_new_privs, restrict the file system with
 * Landlock where the kernel has it, and last load a seccomp-bpf
 * allowlist for the role that kills the process on any other call.
 *
 * The worker template takes the worker's steps and a filter that also
 * lets it fork; each worker it forks stacks the worker's filter on top
 * (sandbox_narrow) before it reads anything.
 *
 * The parent stays root: it forks and executes every child and reloads
 * its configuration. Its filter is inherited by what it executes, so
 * it also allows what a child does between exec and its own sandbox;
 * it denies what no part of bridged does (ptrace, mounts, modules,
 * bpf, io_uring, keyrings, namespaces, clock changes, reboot).
 *
 * Build switches for tests: SANDBOX_DEBUG reports a forbidden call on
 * stderr and lets it fail with ENOSYS instead of killing the process;
 * SANDBOX_TEST makes a child attempt a call its role forbids when it
 * receives SIGUSR2, so that a test can watch it die.
 */

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Landlock rights and fields newer than some kernel headers. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER		(1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE		(1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV		(1ULL << 15)
#endif
#ifndef LANDLOCK_RULE_NET_PORT
#define LANDLOCK_RULE_NET_PORT			2
#endif
#define LL_NET_BIND_TCP				(1ULL << 0)
#define LL_NET_CONNECT_TCP			(1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET		(1ULL << 0)
#define LL_SCOPE_SIGNAL				(1ULL << 1)

/* A network rule (ABI 4), as the kernel reads it. */
struct ll_net_port_attr {
	uint64_t	 allowed_access;
	uint64_t	 port;
};

/* The ruleset attribute as of ABI 6; older kernels read a prefix. */
struct ll_ruleset_attr {
	uint64_t	 fs;
	uint64_t	 net;
	uint64_t	 scoped;
};

/* clone(2) flags that would make namespaces. */
#define CLONE_NEWANY	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | \
	CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#define LL_FS_FILE	(LANDLOCK_ACCESS_FS_EXECUTE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define LL_FS_RO	(LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FS_DB	(LANDLOCK_ACCESS_FS_READ_FILE | \
	LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_TRUNCATE)

static const char *const role_names[] = {
	"parent", "control", "storage", "provider", "worker", "template"
};

/*
 * What every role may call after its sandbox: the event loop, imsg
 * with fd passing, malloc, time, randomness, signals and leaving.
 * mmap, mprotect, ioctl and the kill family have rules of their own.
 */
static const char *const sys_base[] = {
	"brk", "clock_getres", "clock_gettime", "clock_nanosleep", "close",
	"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait",
	"exit", "exit_group", "fcntl", "fstat", "futex", "getegid",
	"geteuid", "getgid", "getpeername", "getpid", "getppid",
	"getrandom", "getsockname", "getsockopt", "gettid",
	"gettimeofday", "getuid", "lseek", "madvise", "mremap", "munmap",
	"nanosleep", "newfstatat", "poll", "ppoll", "read", "readv",
	"recvfrom", "recvmsg", "restart_syscall", "rt_sigaction",
	"rt_sigprocmask", "rt_sigreturn", "sched_yield", "sendmsg",
	"sendto", "setsockopt", "shutdown", "sigaltstack", "time",
	"write", "writev",
	NULL
};

/* control: accepts bridgectl on the socket the parent bound. */
static const char *const sys_control[] = {
	"accept", "accept4",
	NULL
};

/*
 * storage: SQLite on files in the database directory (Landlock), and
 * the thread that checkpoints its WAL.
 */
static const char *const sys_storage[] = {
	"access", "faccessat", "faccessat2", "fchmod", "fchown",
	"fdatasync", "fsync", "ftruncate", "getcwd", "lstat", "openat",
	"pread64", "pwrite64", "readlink", "readlinkat", "rseq",
	"sched_getaffinity", "set_robust_list", "stat", "statx", "unlink",
	"unlinkat",
	NULL
};

/*
 * storage with PostgreSQL: no file at all; the one connection it made
 * before the sandbox (storage_net_rules allow sockets of its family).
 */
static const char *const sys_storage_net[] = {
	"connect",
	NULL
};

/*
 * provider: libcurl and OpenSSL: TCP and DNS, the threads of curl's
 * resolver, reading the resolver and certificate files (Landlock).
 */
static const char *const sys_provider[] = {
	"access", "bind", "connect", "faccessat", "faccessat2",
	"getdents64", "lstat", "pread64", "readlink", "readlinkat", "rseq",
	"sched_getaffinity", "recvmmsg", "sendmmsg", "set_robust_list",
	"socketpair", "stat", "statfs", "statx", "uname",
	NULL
};

/*
 * template: a worker's filter and what forking its workers takes:
 * reaping them, and in each new worker (before its stricter filter)
 * the self-pipe of its event loop, naming itself, its rlimit and
 * loading that filter. clone and prctl
 * have rules of their own.
 */
static const char *const sys_template[] = {
	"pipe2", "prlimit64", "rseq", "seccomp", "set_robust_list",
	"setrlimit", "wait4", "waitid",
	NULL
};

/*
 * parent: accept and hand out connections, fork and exec children
 * (whose start-up, up to their own sandbox, runs under this filter
 * too), reload the configuration, reopen files, bind listeners.
 */
static const char *const sys_parent[] = {
	"accept", "accept4", "access", "arch_prctl", "bind", "chdir",
	"chmod", "chown", "chroot", "close_range", "connect", "creat",
	"dup", "dup2", "dup3", "execve", "execveat", "faccessat",
	"faccessat2", "fadvise64", "fallocate", "fchdir", "fchmod",
	"fchmodat", "fchown", "fchownat", "fdatasync", "flock",
	"fstatfs", "fsync", "ftruncate", "getcwd", "getdents64",
	"getgroups", "getpgid", "getpgrp", "getpriority", "getresgid",
	"getresuid", "getrlimit", "getrusage", "getsid", "ioctl",
	"kill", "landlock_add_rule", "landlock_create_ruleset",
	"landlock_restrict_self", "lchown", "link", "linkat", "listen",
	"lstat", "membarrier", "mkdir", "mkdirat", "mlock", "munlock",
	"open", "openat", "pipe", "pipe2", "prctl", "pread64", "preadv",
	"prlimit64", "pwrite64", "pwritev", "readlink", "readlinkat",
	"recvmmsg", "rename", "renameat", "renameat2", "rmdir", "rseq",
	"sched_getaffinity", "seccomp", "sendfile", "sendmmsg",
	"set_robust_list", "set_tid_address", "setgid", "setgroups",
	"setitimer", "setpgid", "setpriority", "setregid", "setresgid",
	"setresuid", "setreuid", "setrlimit", "setsid", "setuid",
	"socket", "socketpair", "stat", "statfs", "statx", "symlink",
	"symlinkat", "sysinfo", "tgkill", "tkill", "umask", "uname",
	"unlink", "unlinkat", "utimensat", "vfork", "wait4", "waitid",
	NULL
};

#ifdef BRIDGED_SANITIZE
/*
 * Sanitized builds only (make SANITIZE=...). LeakSanitizer's check at
 * exit stops the process with ptrace(2) and reads /proc, which no
 * sandbox allows (and a chroot hides); a sandboxed process skips it,
 * and so does a child still under the filter it inherited from the
 * parent (one that fails before its own sandbox). Leaks are the fuzz
 * targets' and the unit programs' to find, which run unsandboxed
 * under LeakSanitizer.
 */
static int	 san_sandboxed;
int		 __lsan_is_turned_off(void);

/* LeakSanitizer's hook: non-zero, no check at exit. */
int
__lsan_is_turned_off(void)
{
	return (san_sandboxed || prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0);
}
#define SANITIZER_SANDBOXED()	(san_sandboxed = 1)

/*
 * AddressSanitizer's handler of SIGSEGV and SIGBUS opens /proc/self/maps
 * to write its report, which no sandbox allows: the process would die
 * of SIGSYS with nothing said. A crash stays a crash, ended by its own
 * signal as in the normal build (ASAN_OPTIONS can still say otherwise).
 */
const char	*__asan_default_options(void);

/* AddressSanitizer's hook: options before those of ASAN_OPTIONS. */
const char *
__asan_default_options(void)
{
	return ("handle_segv=0:handle_sigbus=0");
}
#else
#define SANITIZER_SANDBOXED()	do { } while (0)
#endif

/* Resolve and allow each named call; a name this arch lacks is skipped. */
static int
allow_list(scmp_filter_ctx ctx, const char *const *names)
{
	int	 nr, rc;

	for (; *names != NULL; names++) {
		nr = seccomp_syscall_resolve_name(*names);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0) {
			log_warnx("%s: %s: %s", __func__, *names,
			    strerror(-rc));
			return (-1);
		}
	}
	return (0);
}

/* Add one rule; libseccomp reports errors as negative errno. */
static int
rule(scmp_filter_ctx ctx, uint32_t action, const char *name,
    unsigned int argc, const struct scmp_arg_cmp *args)
{
	int	 nr, rc;

	if ((nr = seccomp_syscall_resolve_name(name)) == __NR_SCMP_ERROR)
		return (0);
	if ((rc = seccomp_rule_add_array(ctx, action, nr, argc, args)) < 0) {
		log_warnx("%s: %s: %s", __func__, name, strerror(-rc));
		return (-1);
	}
	return (0);
}

/*
 * Rules with arguments that every role shares: memory may not become
 * executable (except for roles that load code), signals only to
 * ourselves (abort(3), raise(3)), and the few ioctls stdio and the
 * socket code make.
 */
static int
base_rules(scmp_filter_ctx ctx, enum sandbox_role role, pid_t self)
{
	struct scmp_arg_cmp	 a;
	int			 execmem;

	execmem = role == SANDBOX_PARENT || role == SANDBOX_PROVIDER;
	if (execmem) {
		if (rule(ctx, SCMP_ACT_ALLOW, "mmap", 0, NULL) == -1 ||
		    rule(ctx, SCMP_ACT_ALLOW, "mprotect", 0, NULL) == -1)
			return (-1);
	} else {
		a = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
		if (rule(ctx, SCMP_ACT_ALLOW, "mmap", 1, &a) == -1 ||
		    rule(ctx, SCMP_ACT_ALLOW, "mprotect", 1, &a) == -1)
			return (-1);
	}
	if (role != SANDBOX_PARENT) {
		a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)self);
		if (self != 0 &&
		    (rule(ctx, SCMP_ACT_ALLOW, "kill", 1, &a) == -1 ||
		    rule(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &a) == -1))
			return (-1);
		a = SCMP_A1(SCMP_CMP_EQ, FIONREAD);
		if (rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &a) == -1)
			return (-1);
		a = SCMP_A1(SCMP_CMP_EQ, FIONBIO);
		if (rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &a) == -1)
			return (-1);
		a = SCMP_A1(SCMP_CMP_EQ, TCGETS);
		if (rule(ctx, SCMP_ACT_ERRNO(ENOTTY), "ioctl", 1, &a) == -1)
			return (-1);
	}
	return (0);
}

/*
 * Threads yes, processes and namespaces no: clone3 cannot be inspected,
 * so it fails and glibc falls back to clone.
 */
static int
thread_rules(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp	 a;

	a = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_NEWANY,
	    CLONE_THREAD);
	if (rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &a) == -1)
		return (-1);
	return (rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL));
}

/*
 * provider: sockets for TCP over IPv4 and IPv6 and for the netlink
 * query getaddrinfo(3) makes; an AF_UNIX socket (nscd) is refused
 * politely. Files open read only. The threads of curl's resolver.
 */
static int
provider_rules(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp	 a[2];

	a[0] = SCMP_A0(SCMP_CMP_EQ, AF_INET);
	if (rule(ctx, SCMP_ACT_ALLOW, "socket", 1, a) == -1)
		return (-1);
	a[0] = SCMP_A0(SCMP_CMP_EQ, AF_INET6);
	if (rule(ctx, SCMP_ACT_ALLOW, "socket", 1, a) == -1)
		return (-1);
	a[0] = SCMP_A0(SCMP_CMP_EQ, AF_NETLINK);
	a[1] = SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE);
	if (rule(ctx, SCMP_ACT_ALLOW, "socket", 2, a) == -1)
		return (-1);
	a[0] = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
	if (rule(ctx, SCMP_ACT_ERRNO(EACCES), "socket", 1, a) == -1)
		return (-1);
	a[0] = SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC,
	    O_RDONLY);
	if (rule(ctx, SCMP_ACT_ALLOW, "openat", 1, a) == -1)
		return (-1);
	return (thread_rules(ctx));
}

/*
 * storage with a database server: sockets of the server's family only
 * (Landlock narrows TCP connects to its port).
 */
static int
storage_net_rules(scmp_filter_ctx ctx, int family)
{
	struct scmp_arg_cmp	 a;

	a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)family);
	return (rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &a));
}

/*
 * parent: processes and threads but no namespaces; clone3 is answered
 * ENOSYS so that glibc uses clone, whose flags can be checked.
 */
static int
parent_rules(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp	 a;

	a = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWANY, 0);
	if (rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &a) == -1)
		return (-1);
	return (rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL));
}

/*
 * template: fork only: no threads, no shared memory, no namespaces
 * (clone3 is answered ENOSYS so glibc uses clone, whose flags can be
 * checked); prctl only to name a process and for no_new_privs.
 */
static int
template_rules(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp	 a;

	a = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_VM |
	    CLONE_NEWANY, 0);
	if (rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &a) == -1)
		return (-1);
	if (rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL) == -1)
		return (-1);
	a = SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME);
	if (rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, &a) == -1)
		return (-1);
	a = SCMP_A0(SCMP_CMP_EQ, PR_SET_NO_NEW_PRIVS);
	return (rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, &a));
}

#ifdef SANDBOX_DEBUG
/* Debug builds: name the forbidden call on stderr; it fails ENOSYS. */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *uc)
{
	char	 msg[64] = "sandbox: forbidden system call ";
	char	 num[16];
	size_t	 len, i = sizeof(num);
	int	 save = errno, nr = si->si_syscall;

	(void)sig;
	(void)uc;
	num[--i] = '\n';
	do {
		num[--i] = '0' + nr % 10;
		nr /= 10;
	} while (nr > 0 && i > 0);
	len = strlen(msg);
	memcpy(msg + len, num + i, sizeof(num) - i);
	(void)write(STDERR_FILENO, msg, len + sizeof(num) - i);
	errno = save;
}
#endif

/*
 * Build the role's filter; self is the one pid it may signal (abort(3),
 * raise(3)), 0 for none. NULL if it cannot be built.
 */
static scmp_filter_ctx
filter_build(enum sandbox_role role, pid_t self, const struct sandbox_conf *sc)
{
	scmp_filter_ctx	 ctx;
	uint32_t	 deflt = SCMP_ACT_KILL_PROCESS;
	int		 rc;

#ifdef SANDBOX_DEBUG
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO;
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		log_warn("%s: sigaction", __func__);
		return (NULL);
	}
	deflt = SCMP_ACT_TRAP;
#endif
	if ((ctx = seccomp_init(deflt)) == NULL) {
		log_warnx("%s: seccomp_init failed", __func__);
		return (NULL);
	}
	/* Calls made through another ABI (i386, x32) end the process. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		log_warnx("%s: seccomp_attr_set: %s", __func__,
		    strerror(-rc));
		goto fail;
	}
	if (allow_list(ctx, sys_base) == -1 ||
	    base_rules(ctx, role, self) == -1)
		goto fail;
	switch (role) {
	case SANDBOX_PARENT:
		if (allow_list(ctx, sys_parent) == -1 ||
		    allow_list(ctx, sys_storage) == -1 ||
		    allow_list(ctx, sys_provider) == -1 ||
		    parent_rules(ctx) == -1)
			goto fail;
		break;
	case SANDBOX_CONTROL:
		if (allow_list(ctx, sys_control) == -1)
			goto fail;
		break;
	case SANDBOX_STORAGE:
		if (sc != NULL && sc->db_family != 0) {
			if (allow_list(ctx, sys_storage_net) == -1 ||
			    storage_net_rules(ctx, sc->db_family) == -1)
				goto fail;
		} else if (allow_list(ctx, sys_storage) == -1 ||
		    thread_rules(ctx) == -1)
			goto fail;
		break;
	case SANDBOX_PROVIDER:
		if (allow_list(ctx, sys_provider) == -1 ||
		    provider_rules(ctx) == -1)
			goto fail;
		break;
	case SANDBOX_WORKER:
		break;
	case SANDBOX_TEMPLATE:
		if (allow_list(ctx, sys_template) == -1 ||
		    template_rules(ctx) == -1)
			goto fail;
		break;
	}
	return (ctx);
 fail:
	seccomp_release(ctx);
	return (NULL);
}

/* Build the role's filter and load it on every thread. */
static int
seccomp_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	scmp_filter_ctx	 ctx;
	int		 rc, ret = 0;

	if ((ctx = filter_build(role, getpid(), sc)) == NULL)
		return (-1);
	if ((rc = seccomp_load(ctx)) < 0) {
		log_warnx("%s: seccomp_load: %s", __func__, strerror(-rc));
		ret = -1;
	}
	seccomp_release(ctx);
	return (ret);
}

/* Allow rights beneath one path; a path that does not exist is skipped. */
static int
ll_path(int rfd, const char *path, uint64_t rights, uint64_t handled)
{
	struct landlock_path_beneath_attr	 pb;
	struct stat				 st;
	int					 fd, rc;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) == -1) {
		if (errno == ENOENT || errno == ENOTDIR)
			return (0);
		log_warn("%s: %s", __func__, path);
		return (-1);
	}
	if (fstat(fd, &st) == -1) {
		log_warn("%s: fstat %s", __func__, path);
		close(fd);
		return (-1);
	}
	if (!S_ISDIR(st.st_mode))
		rights &= LL_FS_FILE;
	memset(&pb, 0, sizeof(pb));
	pb.allowed_access = rights & handled;
	pb.parent_fd = fd;
	rc = syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH,
	    &pb, 0);
	if (rc == -1)
		log_warn("%s: landlock_add_rule %s", __func__, path);
	close(fd);
	return (rc == -1 ? -1 : 0);
}

/*
 * Storage with a database server over TCP may connect to its port and
 * no other (ABI 4); over a unix socket, to no TCP port. No file: no
 * path rule at all.
 */
static int
ll_db_port(int rfd, const struct sandbox_conf *sc, long abi)
{
	struct ll_net_port_attr	 np;

	if (abi < 4 || sc->db_port <= 0 ||
	    (sc->db_family != AF_INET && sc->db_family != AF_INET6))
		return (0);
	memset(&np, 0, sizeof(np));
	np.allowed_access = LL_NET_CONNECT_TCP;
	np.port = (uint64_t)sc->db_port;
	if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_NET_PORT, &np,
	    0) == -1) {
		log_warn("%s: landlock_add_rule port %d", __func__,
		    sc->db_port);
		return (-1);
	}
	return (0);
}

/* Read only, for the provider: resolver, certificates, libraries. */
static const char *const ll_provider_paths[] = {
	"/dev/urandom", "/etc/hosts", "/etc/resolv.conf",
	"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
	"/etc/services", "/etc/protocols", "/etc/localtime",
	"/etc/ld.so.cache", "/etc/ssl/openssl.cnf", "/etc/ssl/certs",
	"/etc/pki/tls/certs", "/etc/pki/ca-trust/extracted",
	"/etc/ca-certificates", "/usr/share/ca-certificates",
	"/usr/local/share/ca-certificates",
	"/lib", "/lib64", "/usr/lib", "/usr/lib64",
	NULL
};

/*
 * Landlock: every role but the parent loses the file system except the
 * storage's database directory and the provider's read-only files, may
 * not bind or connect TCP (the provider may connect), and may neither
 * signal nor reach an abstract socket outside its own domain. A kernel
 * without Landlock is not an error: seccomp and chroot still hold.
 */
static int
landlock_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	struct ll_ruleset_attr	 attr;
	const char *const	*p;
	size_t			 attrlen;
	long			 abi;
	int			 rfd, rc = 0;

	abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi == -1) {
		if (errno == ENOSYS || errno == EOPNOTSUPP) {
			log_debug("%s: %s: Landlock not available, using "
			    "seccomp alone", __func__, role_names[role]);
			return (0);
		}
		log_warn("%s: landlock_create_ruleset", __func__);
		return (-1);
	}

	memset(&attr, 0, sizeof(attr));
	attr.fs = (LANDLOCK_ACCESS_FS_REFER << 1) - 1;
	attrlen = sizeof(attr.fs);
	if (abi < 2)
		attr.fs &= ~LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4) {
		attr.net = LL_NET_BIND_TCP;
		if (role != SANDBOX_PROVIDER)
			attr.net |= LL_NET_CONNECT_TCP;
		attrlen = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 5)
		attr.fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET |
		    LL_SCOPE_SIGNAL;
		attrlen = sizeof(attr);
	}

	if ((rfd = syscall(SYS_landlock_create_ruleset, &attr, attrlen,
	    0)) == -1) {
		log_warn("%s: landlock_create_ruleset", __func__);
		return (-1);
	}
	if (role == SANDBOX_STORAGE && sc->db_family != 0)
		rc = ll_db_port(rfd, sc, abi);
	else if (role == SANDBOX_STORAGE) {
		/* SQLite seeds its generator from /dev/urandom. */
		rc = ll_path(rfd, "/dev/urandom", LL_FS_RO, attr.fs);
		if (rc == 0 && sc->dbdir != NULL)
			rc = ll_path(rfd, sc->dbdir, LL_FS_DB, attr.fs);
	}
	if (role == SANDBOX_PROVIDER)
		for (p = ll_provider_paths; *p != NULL && rc == 0; p++)
			rc = ll_path(rfd, *p, LL_FS_RO, attr.fs);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, rfd, 0) == -1) {
		log_warn("%s: landlock_restrict_self", __func__);
		rc = -1;
	}
	close(rfd);
	if (rc == 0)
		log_debug("%s: %s: Landlock ABI %ld", __func__,
		    role_names[role], abi);
	return (rc);
}

/*
 * glibc reads the time zone file again on every tzset(3) (strftime(3)
 * calls it) while TZ is unset, which a chroot or the filter forbids.
 * Load the zone now and return a TZ value naming what was loaded, for
 * the environment the process keeps.
 */
static char *
zone_load(void)
{
	const char	*tz = getenv("TZ");
	char		*s;

	if ((s = strdup(tz != NULL ? tz : ":/etc/localtime")) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	tzset();
	return (s);
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
		(void)openat(AT_FDCWD, "/", O_WRONLY | O_CREAT, 0600);
		break;
	case SANDBOX_PARENT:
		(void)syscall(SYS_ptrace, 0, 0, 0, 0);
		break;
	default:
		(void)openat(AT_FDCWD, "/etc/passwd", O_RDONLY);
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
	struct passwd				 pw;
	const char				*name;
	char					*tz = NULL;
	int					 root, chrooted;

	if ((int)role < SANDBOX_PARENT || role > SANDBOX_TEMPLATE) {
		log_warnx("%s: unknown role %d", __func__, role);
		return (-1);
	}
	name = role_names[role];
	if (sc == NULL)
		sc = &none;
	root = geteuid() == 0;
	chrooted = role == SANDBOX_WORKER || role == SANDBOX_TEMPLATE ||
	    role == SANDBOX_CONTROL;
	if (role != SANDBOX_PARENT && (tz = zone_load()) == NULL)
		return (-1);

	if (root) {
		memset(&pw, 0, sizeof(pw));
		if (sandbox_check_conf(sc, &pw) == -1)
			goto fail;
		if (chrooted && sc->chroot != NULL &&
		    (chroot(sc->chroot) == -1 || chdir("/") == -1)) {
			log_warn("%s: chroot %s", name, sc->chroot);
			goto fail;
		}
		if (role != SANDBOX_PARENT && sc->user != NULL &&
		    sandbox_drop_user(&pw) == -1)
			goto fail;
	} else if (sc->user != NULL || sc->chroot != NULL) {
		if (role == SANDBOX_PARENT)
			log_warnx("not running as root: user and chroot "
			    "are not applied; the processes are confined "
			    "by the system call filter alone");
		else
			log_debug("%s: not root: no user, no chroot", name);
	}

	if (role != SANDBOX_PARENT) {
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
			log_warn("%s: PR_SET_DUMPABLE", name);
			goto fail;
		}
		if (sandbox_limits(role) == -1)
			goto fail;
		if (role != SANDBOX_PROVIDER)
			sandbox_wipe_environ();
		if (setenv("TZ", tz, 1) == -1) {
			log_warn("%s: setenv TZ", name);
			goto fail;
		}
		free(tz);
		tz = NULL;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("%s: PR_SET_NO_NEW_PRIVS", name);
		return (-1);
	}
	if (role != SANDBOX_PARENT && landlock_enter(role, sc) == -1)
		return (-1);
#ifdef SANDBOX_TEST
	if (test_hook(role) == -1)
		return (-1);
#endif
	if (seccomp_enter(role, sc) == -1)
		return (-1);
	SANITIZER_SANDBOXED();
	log_debug("%s: %s sandboxed", __func__, name);
	return (0);
 fail:
	free(tz);
	return (-1);
}

/* The worker's filter as BPF, built by the template (sandbox_prepare). */
static struct sock_fprog	 narrow_prog;

/*
 * In the template, before its own sandbox: build the filter of the
 * role its children narrow to, once, as BPF. A child then loads it
 * with one call instead of building it again in pages it shares with
 * the template (each page it writes is copied: that is most of what a
 * new worker costs). Built without knowing the child's pid, the filter
 * lets it signal no process, not even itself: an abort(3) in a worker
 * ends it by SIGSYS rather than SIGABRT.
 */
int
sandbox_prepare(enum sandbox_role role)
{
	scmp_filter_ctx	 ctx;
	uint8_t		*buf;
	ssize_t		 n;
	size_t		 len = 0, size = 64 * 1024;
	int		 p[2], rc;

	if (role != SANDBOX_WORKER) {
		log_warnx("%s: role %d cannot be prepared", __func__, role);
		return (-1);
	}
	if ((ctx = filter_build(role, 0, NULL)) == NULL)
		return (-1);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) == -1) {
		log_warn("%s: pipe2", __func__);
		seccomp_release(ctx);
		return (-1);
	}
	/* A filter is a few hundred instructions: the pipe holds it. */
	rc = seccomp_export_bpf(ctx, p[1]);
	seccomp_release(ctx);
	close(p[1]);
	if (rc < 0) {
		log_warnx("%s: seccomp_export_bpf: %s", __func__,
		    strerror(-rc));
		close(p[0]);
		return (-1);
	}
	if ((buf = malloc(size)) == NULL) {
		close(p[0]);
		return (-1);
	}
	while (len < size && (n = read(p[0], buf + len, size - len)) > 0)
		len += n;
	close(p[0]);
	if (len == 0 || len == size || len % sizeof(struct sock_filter)) {
		log_warnx("%s: a filter of %zu bytes", __func__, len);
		free(buf);
		return (-1);
	}
	narrow_prog.len = len / sizeof(struct sock_filter);
	narrow_prog.filter = (struct sock_filter *)buf;
	return (0);
}

/*
 * A worker forked from its template: user, chroot, Landlock and the
 * template's filter are inherited; it may start no process, and the
 * worker's filter is stacked on the template's (no fork from here on):
 * the one sandbox_prepare built, or one built now.
 */
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
	if (narrow_prog.filter != NULL) {
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &narrow_prog) == -1) {
			log_warn("%s: seccomp", __func__);
			return (-1);
		}
	} else if (seccomp_enter(role, NULL) == -1)
		return (-1);
	log_debug("%s: %s sandboxed", __func__, role_names[role]);
	return (0);
}
