/*
 * t_sandbox.c: every sandbox role, entered by a child process. What
 * the role needs must still work; what it must not do must end the
 * process with SIGSYS or fail; from outside, /proc must show the
 * filter, no_new_privs, the user and the root directory. Each case
 * runs twice: directly, and nested as bridged starts its children (a
 * process under the parent's filter executes the test again, which
 * then enters the role), since a filter is inherited across exec.
 *
 * Run as root for the user and chroot cases (the user is "nobody", or
 * $SANDBOX_TEST_USER); as another user those are skipped and the
 * rest runs without them.
 */

#ifndef __linux__
#include <stdio.h>

/* Not Linux: the whole program is a skip. */
int
main(void)
{
	printf("skip sandbox: seccomp and Landlock cases, Linux only\n");
	return (0);
}
#else

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <resolv.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define FD_CTL		10	/* listening unix socket */
#define FD_TCP		11	/* listening TCP socket on loopback */
#define FD_READY	12	/* child: write when sandboxed */
#define FD_GO		13	/* child: read to leave */
#define FD_DNS		14	/* bound UDP socket of the fake resolver */

#define SECRET_ENV	"BRIDGED_TEST_SECRET"

enum expect {
	EXP_OK,		/* exits 0 */
	EXP_SIGSYS,	/* killed by SIGSYS */
	EXP_REFUSE	/* sandbox_enter() returns -1 */
};

#define F_ROOT		0x01	/* needs root */
#define F_DIRECT	0x02	/* not nested */
#define F_NESTED	0x04	/* nested only */
#define F_LANDLOCK	0x08	/* needs Landlock */
#define F_NOUSER	0x10	/* conf: a user that does not exist */
#define F_NOCHROOT	0x20	/* conf: a chroot that does not exist */
#define F_DROPFIRST	0x40	/* become the user before the sandbox */
#define F_IA32		0x80	/* needs the i386 system call entry */
#define F_DBNET		0x100	/* conf: storage of a database server on
				   the test's TCP port (PostgreSQL) */

struct tcase {
	const char		*name;
	enum sandbox_role	 role;
	int			 (*prep)(void);
	int			 (*fn)(void);
	enum expect		 expect;
	const char		*(*inspect)(pid_t, const struct tcase *);
	int			 flags;
};

static char		 base[PATH_MAX / 4], rootdir[PATH_MAX / 2];
static char		 dbdir[PATH_MAX / 2], outside[PATH_MAX / 2];
static char		 ctlpath[PATH_MAX / 2];
static char		 selfpath[PATH_MAX];
static const char	*username = "nobody";
static struct passwd	 tpw;
static int		 isroot, haveuser, landlock, ia32;
static in_port_t	 tcpport, dnsport;
static char		 secret[65];
static int		 failed;

static void	 err_exit(const char *) __attribute__((__noreturn__));

/* Case helpers: a failed step returns its line number. */
#define CHECK(x)	do { if (!(x)) return (__LINE__); } while (0)

/* A connection to the test's TCP listener on loopback, or -1. */
static int
tcp_connect(void)
{
	struct sockaddr_in	 sin;
	int			 s;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(tcpport);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	if (connect(s, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(s);
		return (-1);
	}
	return (s);
}

static int	 wsp[2] = { -1, -1 }, wpipe[2] = { -1, -1 };

/* The worker gets its sockets before the sandbox, as from the parent. */
static int
prep_worker(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, wsp) == -1 ||
	    pipe(wpipe) == -1)
		return (-1);
	return (0);
}

/* worker: imsg with fd passing, pipes, memory, time, randomness. */
static int
fn_worker_io(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 im;
	struct pollfd	 pfd;
	struct timespec	 ts;
	char		 buf[16];
	char		*big;
	int		 r;

	imsgbuf_init(&a, wsp[0]);
	imsgbuf_init(&b, wsp[1]);
	CHECK(imsg_compose(&a, 7, 1, 0, wpipe[1], "hello", 5) == 0);
	CHECK(imsg_flush(&a) == 0);
	pfd.fd = wsp[1];
	pfd.events = POLLIN;
	CHECK(poll(&pfd, 1, 5000) == 1);
	CHECK(imsg_read(&b) > 0);
	CHECK(imsg_get(&b, &im) == 1);
	CHECK(im.hdr.type == 7 && im.datalen == 5 && im.fd != -1);
	CHECK(write(im.fd, "through", 7) == 7);
	CHECK(read(wpipe[0], buf, sizeof(buf)) == 7);
	CHECK(memcmp(buf, "through", 7) == 0);
	imsg_free(&im);
	CHECK((big = malloc(64 << 20)) != NULL);
	memset(big, 1, 64 << 20);
	CHECK((big = realloc(big, 128 << 20)) != NULL);
	free(big);
	CHECK(getrandom(buf, sizeof(buf), 0) == sizeof(buf));
	CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
	CHECK(kill(getpid(), 0) == 0);
	r = fcntl(wsp[0], F_GETFL);
	CHECK(r != -1 && fcntl(wsp[0], F_SETFL, r | O_NONBLOCK) == 0);
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	return (0);
}

/* Time zone conversions after the chroot: no file may be read. */
static int
fn_time(void)
{
	struct tm	 tm, *tp;
	char		 buf[64];
	time_t		 now = time(NULL);

	CHECK(localtime_r(&now, &tm) != NULL);
	CHECK(strftime(buf, sizeof(buf), "%c %Z", &tm) > 0);
	CHECK((tp = localtime(&now)) != NULL);
	CHECK(strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S %z", tp) > 0);
	CHECK(mktime(&tm) != -1);
	tzset();
	return (0);
}

/* Opening a file, which the worker and control may not do. */
static int
fn_open(void)
{
	(void)open("/etc/passwd", O_RDONLY);
	return (__LINE__);
}

/* A TCP socket, which the worker, control and storage may not make. */
static int
fn_socket(void)
{
	(void)socket(AF_INET, SOCK_STREAM, 0);
	return (__LINE__);
}

/* A new socket pair, which the worker may not make. */
static int
fn_socketpair(void)
{
	int	 sp[2];

	(void)socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
	return (__LINE__);
}

/* A unix socket, which storage may not make. */
static int
fn_unix_socket(void)
{
	(void)socket(AF_UNIX, SOCK_STREAM, 0);
	return (__LINE__);
}

/* Connecting to the control socket, which the worker may not do. */
static int
fn_connect(void)
{
	struct sockaddr_un	 sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ctlpath, sizeof(sun.sun_path));
	(void)connect(FD_CTL, (struct sockaddr *)&sun, sizeof(sun));
	return (__LINE__);
}

/* Executing a program, which no child role may do. */
static int
fn_exec(void)
{
	char	*argv[] = { "true", NULL };

	(void)execve("/bin/true", argv, argv + 1);
	return (__LINE__);
}

/* A fork, which the worker, storage and the provider may not do. */
static int
fn_fork(void)
{
	pid_t	 pid;

	if ((pid = fork()) == 0)
		_exit(0);
	return (__LINE__);
}

/* A new user namespace, which an unprivileged process may make. */
static int
fn_userns(void)
{
	long	 pid;

	pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL,
	    NULL);
	if (pid == 0)
		_exit(0);
	return (__LINE__);
}

/* Executable memory, which the worker may not map. */
static int
fn_execmem(void)
{
	(void)mmap(NULL, 4096, PROT_READ | PROT_EXEC,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return (__LINE__);
}

/* kill on another process (its parent), which the worker may not do. */
static int
fn_kill_other(void)
{
	(void)kill(getppid(), 0);
	return (__LINE__);
}

/* ptrace, which neither the worker nor the parent may call. */
static int
fn_ptrace(void)
{
	(void)ptrace(PTRACE_TRACEME, 0, NULL, NULL);
	return (__LINE__);
}

/* A listening TCP socket, which the provider may not have. */
static int
fn_listen(void)
{
	int	 s;

	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (__LINE__);
	(void)listen(s, 5);
	return (__LINE__);
}

#if defined(__x86_64__)
/* The i386 getpid through int 0x80: another ABI, the filter kills. */
static int
fn_i386(void)
{
	long	 ret = 20;

	__asm__ volatile ("int $0x80" : "+a" (ret) : : "memory");
	return (__LINE__);
}

/* The x32 getpid: another ABI again. */
static int
fn_x32(void)
{
	(void)syscall(0x40000000 | 39);
	return (__LINE__);
}
#endif

static int	 ctl_client = -1;

/* control: bridgectl connects before the sandbox, accepted after. */
static int
prep_control(void)
{
	struct sockaddr_un	 sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ctlpath, sizeof(sun.sun_path));
	if ((ctl_client = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		return (-1);
	return (connect(ctl_client, (struct sockaddr *)&sun, sizeof(sun)));
}

/* control: accept that connection, then read and write on it. */
static int
fn_control_ok(void)
{
	char	 buf[8];
	int	 c;

	CHECK((c = accept4(FD_CTL, NULL, NULL, SOCK_CLOEXEC)) != -1);
	CHECK(write(ctl_client, "status", 6) == 6);
	CHECK(read(c, buf, sizeof(buf)) > 0);
	CHECK(write(c, "ok", 2) == 2);
	CHECK(read(ctl_client, buf, sizeof(buf)) == 2);
	close(c);
	return (0);
}

/*
 * storage: what SQLite does in WAL mode, call for call, on a database
 * opened before the sandbox (the live tests run SQLite itself).
 */
static int	 dbfd = -1;

/* storage: open the database file before the sandbox. */
static int
prep_storage(void)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/test.db", dbdir);
	dbfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	return (dbfd == -1 ? -1 : 0);
}

/* storage: locks, writes, syncs, the WAL and shm files of SQLite. */
static int
fn_storage_ok(void)
{
	struct flock	 fl;
	struct stat	 st;
	char		 path[PATH_MAX], cwd[PATH_MAX], page[4096];
	char		*shm;
	int		 wal, shmfd, dir;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = 1073741824;
	fl.l_len = 1;
	CHECK(fcntl(dbfd, F_SETLK, &fl) == 0);
	CHECK(fstat(dbfd, &st) == 0);
	memset(page, 'p', sizeof(page));
	CHECK(pwrite(dbfd, page, sizeof(page), 0) == sizeof(page));
	CHECK(pread(dbfd, page, 100, 0) == 100);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	snprintf(path, sizeof(path), "%s/test.db-wal", dbdir);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT);
	CHECK(stat(dbdir, &st) == 0);
	CHECK((wal = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0644)) != -1);
	CHECK(fchmod(wal, 0644) == 0);
	CHECK(pwrite(wal, page, sizeof(page), 32) == sizeof(page));
	CHECK(fdatasync(wal) == 0 && fsync(dbfd) == 0);
	snprintf(path, sizeof(path), "%s/test.db-shm", dbdir);
	CHECK((shmfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0644)) != -1);
	CHECK(ftruncate(shmfd, 32768) == 0);
	CHECK((shm = mmap(NULL, 32768, PROT_READ | PROT_WRITE, MAP_SHARED,
	    shmfd, 0)) != MAP_FAILED);
	shm[0] = 1;
	CHECK(munmap(shm, 32768) == 0);
	CHECK((dir = open(dbdir, O_RDONLY | O_CLOEXEC)) != -1);
	CHECK(fsync(dir) == 0);
	close(dir);
	CHECK(ftruncate(wal, 0) == 0);
	close(wal);
	close(shmfd);
	CHECK(unlink(path) == 0);
	snprintf(path, sizeof(path), "%s/test.db-wal", dbdir);
	CHECK(unlink(path) == 0);
	fl.l_type = F_UNLCK;
	CHECK(fcntl(dbfd, F_SETLK, &fl) == 0);
	CHECK(close(dbfd) == 0);
	return (0);
}

/* storage of a database server: the server's TCP port, no other. */
static int
fn_storage_server(void)
{
	struct sockaddr_in	 sin;
	int			 s;

	CHECK((s = tcp_connect()) != -1);
	close(s);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(tcpport == 65535 ? 1 : tcpport + 1);
	CHECK((s = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	CHECK(connect(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno == EACCES);
	close(s);
	return (0);
}

/* storage of a database server opens no file at all. */
static int
fn_storage_server_file(void)
{
	(void)open("/etc/hostname", O_RDONLY);
	return (__LINE__);
}

/* Landlock: a world-readable file outside the directory is refused. */
static int
fn_storage_outside(void)
{
	char	 path[PATH_MAX];
	int	 fd;

	CHECK(open(outside, O_RDONLY) == -1 && errno == EACCES);
	CHECK(open("/etc/hostname", O_RDONLY) == -1 && errno == EACCES);
	snprintf(path, sizeof(path), "%s/scratch", dbdir);
	CHECK((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) != -1);
	CHECK(write(fd, "x", 1) == 1 && fsync(fd) == 0);
	CHECK(ftruncate(fd, 0) == 0);
	close(fd);
	CHECK(unlink(path) == 0);
	return (0);
}

/* Resolve localhost in a thread; *arg says whether it worked. */
static void *
resolve_thread(void *arg)
{
	struct addrinfo	 hints, *res;
	int		*ok = arg;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	*ok = getaddrinfo("localhost", "443", &hints, &res) == 0;
	if (*ok)
		freeaddrinfo(res);
	return (NULL);
}

/* provider: TCP, a resolver thread, the resolver files, no AF_UNIX. */
static int
fn_provider_ok(void)
{
	pthread_t	 t;
	char		 buf[64];
	int		 s, fd, ok = 0, sp[2];

	CHECK((s = tcp_connect()) != -1);
	close(s);
	CHECK((s = socket(AF_INET6, SOCK_STREAM, 0)) != -1);
	close(s);
	CHECK(socket(AF_UNIX, SOCK_STREAM, 0) == -1 && errno == EACCES);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	close(sp[0]);
	close(sp[1]);
	CHECK(pthread_create(&t, NULL, resolve_thread, &ok) == 0);
	CHECK(pthread_join(t, NULL) == 0);
	CHECK(ok);
	CHECK((fd = open("/etc/hosts", O_RDONLY)) != -1);
	CHECK(read(fd, buf, sizeof(buf)) > 0);
	close(fd);
	return (0);
}

/* The fake resolver answers 127.0.0.2 for any A question. */
static int
prep_dns(void)
{
	res_init();
	_res.nscount = 1;
	_res.nsaddr_list[0].sin_family = AF_INET;
	_res.nsaddr_list[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	_res.nsaddr_list[0].sin_port = htons(dnsport);
	_res.retrans = 2;
	_res.retry = 1;
	return (0);
}

/* provider: a name the fake resolver answers resolves to its address. */
static int
fn_provider_dns(void)
{
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_in	*sin;
	int			 found = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	CHECK(getaddrinfo("api.bridged.test", "443", &hints, &res) == 0);
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET)
			continue;
		sin = (struct sockaddr_in *)ai->ai_addr;
		if (sin->sin_addr.s_addr == htonl(0x7f000002))
			found = 1;
	}
	freeaddrinfo(res);
	CHECK(found);
	return (0);
}

/* Landlock: nothing outside the resolver, certificates and libraries. */
static int
fn_provider_files(void)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/test.db", dbdir);
	CHECK(open(path, O_RDONLY) == -1 && errno == EACCES);
	CHECK(open(outside, O_RDONLY) == -1 && errno == EACCES);
	CHECK(open("/etc/hostname", O_RDONLY) == -1 && errno == EACCES);
	CHECK(open("/etc/ssl/private", O_RDONLY | O_DIRECTORY) == -1);
	return (0);
}

/* A file opened for writing, which the provider may not do. */
static int
fn_provider_write(void)
{
	(void)open("/tmp/bridged-sandbox-test", O_WRONLY | O_CREAT, 0600);
	return (__LINE__);
}

/* parent: fork and exec still work; the child inherits the filter. */
static int
fn_parent_ok(void)
{
	char	*argv[] = { "true", NULL };
	pid_t	 pid;
	int	 st, s;

	CHECK((pid = fork()) != -1);
	if (pid == 0) {
		execve("/bin/true", argv, argv + 1);
		_exit(127);
	}
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK((s = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	close(s);
	return (0);
}

/* mount, which the parent may not call. */
static int
fn_mount(void)
{
	(void)mount("none", "/mnt", "tmpfs", 0, NULL);
	return (__LINE__);
}

/* io_uring setup, which the parent may not call. */
static int
fn_io_uring(void)
{
	char	 params[120];

	memset(params, 0, sizeof(params));
	(void)syscall(SYS_io_uring_setup, 1, params);
	return (__LINE__);
}

/* Nothing: for the cases that inspect or expect a refusal. */
static int
fn_nothing(void)
{
	return (0);
}

/* The environment is given; the sandbox must leave no trace of it. */
static int
fn_env(void)
{
	CHECK(getenv(SECRET_ENV) == NULL);
	return (0);
}

/* One field of /proc/PID/status into out: NULL, or why not. */
static const char *
proc_field(pid_t pid, const char *field, char *out, size_t outlen)
{
	char	 path[64], line[256];
	FILE	*f;
	size_t	 n = strlen(field);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return ("cannot read status");
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			line[strcspn(line, "\n")] = '\0';
			strlcpy(out, line + n + 1 + strspn(line + n + 1,
			    " \t"), outlen);
			fclose(f);
			return (NULL);
		}
	}
	fclose(f);
	return ("field missing");
}

/* Seccomp 2, NoNewPrivs 1, the expected ids and root directory. */
static const char *
inspect_status(pid_t pid, const struct tcase *tc)
{
	static char	 why[PATH_MAX * 3];
	char		 v[128], want[128], path[64], root[PATH_MAX];
	const char	*err, *wroot = "/";
	uid_t		 uid = getuid();
	gid_t		 gid = getgid();
	ssize_t		 n;

	if ((err = proc_field(pid, "Seccomp", v, sizeof(v))) != NULL)
		return (err);
	if (strcmp(v, "2") != 0)
		return ("Seccomp is not 2");
	if ((err = proc_field(pid, "NoNewPrivs", v, sizeof(v))) != NULL)
		return (err);
	if (strcmp(v, "1") != 0)
		return ("NoNewPrivs is not 1");
	if ((isroot && haveuser && tc->role != SANDBOX_PARENT) ||
	    (tc->flags & F_DROPFIRST)) {
		uid = tpw.pw_uid;
		gid = tpw.pw_gid;
	}
	if ((err = proc_field(pid, "Uid", v, sizeof(v))) != NULL)
		return (err);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", uid, uid, uid, uid);
	if (strcmp(v, want) != 0) {
		snprintf(why, sizeof(why), "Uid \"%s\", want \"%s\"", v,
		    want);
		return (why);
	}
	if ((err = proc_field(pid, "Gid", v, sizeof(v))) != NULL)
		return (err);
	snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", gid, gid, gid, gid);
	if (strcmp(v, want) != 0) {
		snprintf(why, sizeof(why), "Gid \"%s\", want \"%s\"", v,
		    want);
		return (why);
	}
	if (isroot && !(tc->flags & F_DROPFIRST) &&
	    (tc->role == SANDBOX_WORKER || tc->role == SANDBOX_CONTROL))
		wroot = rootdir;
	if (!isroot)
		return (NULL);	/* the process is not dumpable */
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	if ((n = readlink(path, root, sizeof(root) - 1)) == -1)
		return ("cannot read root link");
	root[n] = '\0';
	if (strcmp(root, wroot) != 0) {
		snprintf(why, sizeof(why), "root is %s, want %s", root,
		    wroot);
		return (why);
	}
	return (NULL);
}

/* Socket inodes of a table in /proc/net, searched for one inode. */
static int
net_has_inode(const char *table, unsigned long ino)
{
	char		 line[512];
	FILE		*f;
	unsigned long	 i;
	int		 found = 0;

	if ((f = fopen(table, "r")) == NULL)
		return (0);
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu",
		    &i) == 1 && i == ino)
			found = 1;
	}
	fclose(f);
	return (found);
}

/*
 * Walk a process's descriptors: an internet socket is an error when
 * noinet is set; a file under the database directory when nodb is.
 */
static const char *
inspect_fds(pid_t pid, int noinet, int nodb)
{
	static const char *const tables[] = { "/proc/net/tcp",
	    "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6",
	    "/proc/net/raw", "/proc/net/raw6", NULL };
	static char		 why[PATH_MAX * 2];
	const char *const	*t;
	struct dirent		*de;
	char			 dir[64], path[PATH_MAX], link[PATH_MAX];
	unsigned long		 ino;
	DIR			*d;
	ssize_t			 n;

	if (!isroot)
		return (NULL);	/* the process is not dumpable */
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	if ((d = opendir(dir)) == NULL)
		return ("cannot list descriptors");
	why[0] = '\0';
	while (why[0] == '\0' && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((n = readlink(path, link, sizeof(link) - 1)) == -1)
			continue;
		link[n] = '\0';
		if (nodb && strncmp(link, dbdir, strlen(dbdir)) == 0)
			snprintf(why, sizeof(why), "fd %s is %s", de->d_name,
			    link);
		if (noinet && sscanf(link, "socket:[%lu]", &ino) == 1)
			for (t = tables; *t != NULL; t++)
				if (net_has_inode(*t, ino))
					snprintf(why, sizeof(why),
					    "fd %s is in %s", de->d_name, *t);
	}
	closedir(d);
	return (why[0] != '\0' ? why : NULL);
}

/* storage: the status, and no internet socket among its fds. */
static const char *
inspect_storage(pid_t pid, const struct tcase *tc)
{
	const char	*err;

	if ((err = inspect_status(pid, tc)) != NULL)
		return (err);
	return (inspect_fds(pid, 1, 0));
}

/* provider: the status, and no database file among its fds. */
static const char *
inspect_provider(pid_t pid, const struct tcase *tc)
{
	const char	*err;

	if ((err = inspect_status(pid, tc)) != NULL)
		return (err);
	return (inspect_fds(pid, 0, 1));
}

/* The secret must not be in the environment nor anywhere in memory. */
static const char *
inspect_env(pid_t pid, const struct tcase *tc)
{
	static char	 why[128];
	char		 path[64], line[512], *buf;
	unsigned long	 lo, hi, off;
	char		 perm[8];
	size_t		 chunk = 1 << 20, got;
	const char	*err;
	ssize_t		 n;
	FILE		*maps;
	int		 mem, fd;

	if ((err = inspect_status(pid, tc)) != NULL)
		return (err);
	if ((buf = malloc(chunk + sizeof(secret))) == NULL)
		return ("out of memory");
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	if ((fd = open(path, O_RDONLY)) == -1) {
		free(buf);
		return ("cannot read environ");
	}
	got = 0;
	while ((n = read(fd, buf + got, chunk - got)) > 0)
		got += n;
	close(fd);
	if (memmem(buf, got, secret, strlen(secret)) != NULL) {
		free(buf);
		return ("secret in /proc/PID/environ");
	}
#ifdef BRIDGED_SANITIZE
	/*
	 * A sanitized build: the sanitizer runtime read the environment
	 * into memory of its own at start-up, where no wipe reaches; only
	 * /proc/PID/environ is checked.
	 */
	free(buf);
	return (NULL);
#endif
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((maps = fopen(path, "r")) == NULL) {
		free(buf);
		return ("cannot read maps");
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	if ((mem = open(path, O_RDONLY)) == -1) {
		fclose(maps);
		free(buf);
		return ("cannot read mem");
	}
	why[0] = '\0';
	while (why[0] == '\0' && fgets(line, sizeof(line), maps) != NULL) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 ||
		    perm[0] != 'r')
			continue;
		for (off = lo; off < hi; off += chunk) {
			got = hi - off < chunk ? hi - off : chunk;
			if ((n = pread(mem, buf, got, (off_t)off)) <= 0)
				break;
			if (memmem(buf, n, secret, strlen(secret)) != NULL) {
				snprintf(why, sizeof(why), "secret in memory "
				    "at %lx", off);
				break;
			}
		}
	}
	close(mem);
	fclose(maps);
	free(buf);
	return (why[0] != '\0' ? why : NULL);
}

static const struct tcase cases[] = {
	{ "worker-status", SANDBOX_WORKER, NULL, fn_nothing, EXP_OK,
	    inspect_status, 0 },
	{ "worker-io", SANDBOX_WORKER, prep_worker, fn_worker_io, EXP_OK,
	    NULL, 0 },
	{ "worker-time", SANDBOX_WORKER, NULL, fn_time, EXP_OK, NULL, 0 },
	{ "control-time", SANDBOX_CONTROL, NULL, fn_time, EXP_OK, NULL, 0 },
	{ "worker-open", SANDBOX_WORKER, NULL, fn_open, EXP_SIGSYS, NULL, 0 },
	{ "worker-socket", SANDBOX_WORKER, NULL, fn_socket, EXP_SIGSYS,
	    NULL, 0 },
	{ "worker-socketpair", SANDBOX_WORKER, NULL, fn_socketpair,
	    EXP_SIGSYS, NULL, 0 },
	{ "worker-connect", SANDBOX_WORKER, NULL, fn_connect, EXP_SIGSYS,
	    NULL, 0 },
	{ "worker-exec", SANDBOX_WORKER, NULL, fn_exec, EXP_SIGSYS, NULL, 0 },
	{ "worker-fork", SANDBOX_WORKER, NULL, fn_fork, EXP_SIGSYS, NULL, 0 },
	{ "worker-userns", SANDBOX_WORKER, NULL, fn_userns, EXP_SIGSYS,
	    NULL, 0 },
	{ "worker-execmem", SANDBOX_WORKER, NULL, fn_execmem, EXP_SIGSYS,
	    NULL, 0 },
	{ "worker-kill", SANDBOX_WORKER, NULL, fn_kill_other, EXP_SIGSYS,
	    NULL, 0 },
	{ "worker-ptrace", SANDBOX_WORKER, NULL, fn_ptrace, EXP_SIGSYS,
	    NULL, 0 },
#if defined(__x86_64__)
	{ "worker-i386", SANDBOX_WORKER, NULL, fn_i386, EXP_SIGSYS, NULL,
	    F_IA32 },
	{ "worker-x32", SANDBOX_WORKER, NULL, fn_x32, EXP_SIGSYS, NULL, 0 },
#endif
	{ "worker-env", SANDBOX_WORKER, NULL, fn_env, EXP_OK, inspect_env,
	    F_NESTED | F_ROOT },
	{ "worker-notroot", SANDBOX_WORKER, NULL, fn_nothing, EXP_OK,
	    inspect_status, F_ROOT | F_DROPFIRST | F_DIRECT },
	{ "worker-notroot-open", SANDBOX_WORKER, NULL, fn_open, EXP_SIGSYS,
	    NULL, F_ROOT | F_DROPFIRST | F_DIRECT },
	{ "worker-nouser", SANDBOX_WORKER, NULL, fn_nothing, EXP_REFUSE,
	    NULL, F_ROOT | F_NOUSER | F_DIRECT },
	{ "worker-nochroot", SANDBOX_WORKER, NULL, fn_nothing, EXP_REFUSE,
	    NULL, F_ROOT | F_NOCHROOT | F_DIRECT },

	{ "control-status", SANDBOX_CONTROL, NULL, fn_nothing, EXP_OK,
	    inspect_status, 0 },
	{ "control-accept", SANDBOX_CONTROL, prep_control, fn_control_ok,
	    EXP_OK, NULL, 0 },
	{ "control-open", SANDBOX_CONTROL, NULL, fn_open, EXP_SIGSYS, NULL,
	    0 },
	{ "control-socket", SANDBOX_CONTROL, NULL, fn_socket, EXP_SIGSYS,
	    NULL, 0 },
	{ "control-exec", SANDBOX_CONTROL, NULL, fn_exec, EXP_SIGSYS, NULL,
	    0 },

	{ "storage-status", SANDBOX_STORAGE, prep_storage, fn_nothing,
	    EXP_OK, inspect_storage, 0 },
	{ "storage-wal", SANDBOX_STORAGE, prep_storage, fn_storage_ok,
	    EXP_OK, NULL, F_LANDLOCK },
	{ "storage-files", SANDBOX_STORAGE, NULL, fn_storage_outside,
	    EXP_OK, NULL, F_LANDLOCK },
	{ "storage-socket", SANDBOX_STORAGE, NULL, fn_socket, EXP_SIGSYS,
	    NULL, 0 },
	{ "storage-unix-socket", SANDBOX_STORAGE, NULL, fn_unix_socket,
	    EXP_SIGSYS, NULL, 0 },
	{ "storage-exec", SANDBOX_STORAGE, NULL, fn_exec, EXP_SIGSYS, NULL,
	    0 },
	{ "storage-server-net", SANDBOX_STORAGE, NULL, fn_storage_server,
	    EXP_OK, NULL, F_LANDLOCK | F_DBNET },
	{ "storage-server-file", SANDBOX_STORAGE, NULL,
	    fn_storage_server_file, EXP_SIGSYS, NULL, F_DBNET },
	{ "storage-server-unix", SANDBOX_STORAGE, NULL, fn_unix_socket,
	    EXP_SIGSYS, NULL, F_DBNET },
	{ "storage-fork", SANDBOX_STORAGE, NULL, fn_fork, EXP_SIGSYS, NULL,
	    0 },

	{ "provider-status", SANDBOX_PROVIDER, NULL, fn_nothing, EXP_OK,
	    inspect_provider, 0 },
	{ "provider-net", SANDBOX_PROVIDER, NULL, fn_provider_ok, EXP_OK,
	    NULL, 0 },
	{ "provider-dns", SANDBOX_PROVIDER, prep_dns, fn_provider_dns,
	    EXP_OK, NULL, 0 },
	{ "provider-files", SANDBOX_PROVIDER, NULL, fn_provider_files,
	    EXP_OK, NULL, F_LANDLOCK },
	{ "provider-write", SANDBOX_PROVIDER, NULL, fn_provider_write,
	    EXP_SIGSYS, NULL, 0 },
	{ "provider-exec", SANDBOX_PROVIDER, NULL, fn_exec, EXP_SIGSYS,
	    NULL, 0 },
	{ "provider-fork", SANDBOX_PROVIDER, NULL, fn_fork, EXP_SIGSYS,
	    NULL, 0 },
	{ "provider-userns", SANDBOX_PROVIDER, NULL, fn_userns, EXP_SIGSYS,
	    NULL, 0 },
	{ "provider-listen", SANDBOX_PROVIDER, NULL, fn_listen, EXP_SIGSYS,
	    NULL, 0 },

	{ "parent-status", SANDBOX_PARENT, NULL, fn_nothing, EXP_OK,
	    inspect_status, F_DIRECT },
	{ "parent-exec", SANDBOX_PARENT, NULL, fn_parent_ok, EXP_OK, NULL,
	    F_DIRECT },
	{ "parent-ptrace", SANDBOX_PARENT, NULL, fn_ptrace, EXP_SIGSYS,
	    NULL, F_DIRECT },
	{ "parent-userns", SANDBOX_PARENT, NULL, fn_userns, EXP_SIGSYS,
	    NULL, F_DIRECT },
	{ "parent-mount", SANDBOX_PARENT, NULL, fn_mount, EXP_SIGSYS, NULL,
	    F_DIRECT },
	{ "parent-io_uring", SANDBOX_PARENT, NULL, fn_io_uring, EXP_SIGSYS,
	    NULL, F_DIRECT },
	{ "parent-nouser", SANDBOX_PARENT, NULL, fn_nothing, EXP_REFUSE,
	    NULL, F_ROOT | F_NOUSER | F_DIRECT },
};
#define NCASES	(sizeof(cases) / sizeof(cases[0]))

/* The sandbox configuration a case enters its role with. */
static void
conf_for(const struct tcase *tc, struct sandbox_conf *sc)
{
	static char	 missing[PATH_MAX];

	memset(sc, 0, sizeof(*sc));
	sc->user = haveuser ? username : NULL;
	sc->chroot = rootdir;
	sc->dbdir = dbdir;
	if (tc->flags & F_DBNET) {
		sc->dbdir = NULL;
		sc->db_family = AF_INET;
		sc->db_port = tcpport;
	}
	if (tc->flags & F_NOUSER)
		sc->user = "bridged-no-such-user";
	if (tc->flags & F_NOCHROOT) {
		snprintf(missing, sizeof(missing), "%s/missing", base);
		sc->chroot = missing;
	}
}

/* In the child: prepare, enter the role, run the case, wait. */
static void __attribute__((__noreturn__))
child_main(const struct tcase *tc)
{
	struct sandbox_conf	 sc;
	char			 c;
	int			 rc;

	conf_for(tc, &sc);
	if (tc->flags & F_DROPFIRST) {
		if (setgroups(1, &tpw.pw_gid) == -1 ||
		    setresgid(tpw.pw_gid, tpw.pw_gid, tpw.pw_gid) == -1 ||
		    setresuid(tpw.pw_uid, tpw.pw_uid, tpw.pw_uid) == -1)
			_exit(4);
	}
	if (tc->prep != NULL && tc->prep() == -1)
		_exit(5);
	if (sandbox_enter(tc->role, &sc) == -1)
		_exit(3);
	if ((rc = tc->fn()) != 0) {
		(void)write(FD_READY, "f", 1);
		(void)write(FD_READY, &rc, sizeof(rc));
		_exit(2);
	}
	if (tc->inspect != NULL) {
		(void)write(FD_READY, "r", 1);
		(void)read(FD_GO, &c, 1);
	}
	_exit(0);
}

/* Nested: under the parent's filter, execute ourselves for the case. */
static void __attribute__((__noreturn__))
child_nested(const struct tcase *tc)
{
	struct sandbox_conf	 psc;
	char			*argv[4], env[4][PATH_MAX + 32];
	char			 name[64];
	char			*envp[] = { env[0], env[1], env[2], env[3],
				    NULL };

	memset(&psc, 0, sizeof(psc));
	psc.user = haveuser ? username : NULL;
	if (sandbox_enter(SANDBOX_PARENT, &psc) == -1)
		_exit(6);
	snprintf(env[0], sizeof(env[0]), "%s=%s", SECRET_ENV, secret);
	snprintf(env[1], sizeof(env[1]), "T_SANDBOX_BASE=%s", base);
	snprintf(env[2], sizeof(env[2]), "T_SANDBOX_TCP=%u", tcpport);
	snprintf(env[3], sizeof(env[3]), "T_SANDBOX_DNS=%u", dnsport);
	argv[0] = "t_sandbox";
	argv[1] = "-c";
	strlcpy(name, tc->name, sizeof(name));
	argv[2] = name;
	argv[3] = NULL;
	execve(selfpath, argv, envp);
	_exit(7);
}

/* One result line, ok or FAIL with why; a failure is remembered. */
static void
result(const char *name, const char *suffix, const char *why)
{
	if (why == NULL)
		printf("ok %s%s\n", name, suffix);
	else {
		printf("FAIL %s%s: %s\n", name, suffix, why);
		failed = 1;
	}
	fflush(stdout);
}

/* Compare how the child ended with what the case expects. */
static const char *
verdict(const struct tcase *tc, int st, int line, char *buf, size_t len)
{
	static const char *const codes[] = { "", "", "", "sandbox refused",
	    "could not become the user", "preparation failed",
	    "parent sandbox refused", "exec failed" };
	int			 code;

	if (WIFSIGNALED(st)) {
		if (tc->expect == EXP_SIGSYS && WTERMSIG(st) == SIGSYS)
			return (NULL);
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
		return (buf);
	}
	code = WEXITSTATUS(st);
	if (tc->expect == EXP_REFUSE && code == 3)
		return (NULL);
	if (tc->expect == EXP_OK && code == 0)
		return (NULL);
	if (code == 2 && line != 0)
		snprintf(buf, len, "%s at line %d", tc->expect == EXP_SIGSYS ?
		    "not killed" : "failed", line);
	else if (code > 2 && code < (int)(sizeof(codes) / sizeof(codes[0])))
		snprintf(buf, len, "%s", codes[code]);
	else
		snprintf(buf, len, "exit %d", code);
	return (buf);
}

/* Run one case in a child, directly or nested, and print its result. */
static void
run_case(const struct tcase *tc, int nested)
{
	const char	*suffix = nested ? "/nested" : "";
	const char	*why = NULL;
	char		 buf[128], c = 0;
	struct pollfd	 pfd;
	int		 ready[2], go[2], st, line;
	pid_t		 pid;

	if ((tc->flags & F_ROOT) && !isroot) {
		printf("skip %s%s: not root\n", tc->name, suffix);
		return;
	}
	if ((tc->flags & F_ROOT) && !haveuser) {
		printf("skip %s%s: no user %s\n", tc->name, suffix, username);
		return;
	}
	if ((tc->flags & F_IA32) && !ia32) {
		printf("skip %s%s: no i386 system calls in this kernel\n",
		    tc->name, suffix);
		return;
	}
	if ((tc->flags & F_LANDLOCK) && !landlock) {
		printf("skip %s%s: no Landlock in this kernel\n", tc->name,
		    suffix);
		return;
	}
	if (pipe2(ready, O_CLOEXEC) == -1 || pipe2(go, O_CLOEXEC) == -1)
		err_exit("pipe");
	fflush(stdout);
	if ((pid = fork()) == -1)
		err_exit("fork");
	if (pid == 0) {
		if (dup2(ready[1], FD_READY) == -1 || dup2(go[0], FD_GO) == -1)
			_exit(8);
		close(ready[0]);
		close(ready[1]);
		close(go[0]);
		close(go[1]);
		close(FD_TCP);
		close(FD_DNS);
		alarm(20);	/* kept across exec */
		if (nested)
			child_nested(tc);
		child_main(tc);
	}
	close(ready[1]);
	close(go[0]);
	if (tc->inspect != NULL) {
		pfd.fd = ready[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 20000) == 1 && read(ready[0], &c, 1) == 1 &&
		    c == 'r')
			why = tc->inspect(pid, tc);
	}
	close(go[1]);
	if (waitpid(pid, &st, 0) == -1)
		err_exit("waitpid");
	line = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 2 &&
	    read(ready[0], &line, sizeof(line)) != sizeof(line))
		line = 0;
	close(ready[0]);
	if (why == NULL)
		why = verdict(tc, st, line, buf, sizeof(buf));
	result(tc->name, suffix, why);
}

/* Whether int 0x80 reaches the kernel at all, without a filter. */
static int
have_ia32(void)
{
#if defined(__x86_64__)
	pid_t	 pid;
	int	 st;

	if ((pid = fork()) == -1)
		err_exit("fork");
	if (pid == 0) {
		fn_i386();
		_exit(0);
	}
	if (waitpid(pid, &st, 0) == -1)
		err_exit("waitpid");
	return (WIFEXITED(st) && WEXITSTATUS(st) == 0);
#else
	return (0);
#endif
}

/* A resolver on loopback: A questions get 127.0.0.2, others nothing. */
static void __attribute__((__noreturn__))
fake_dns(int s, int ctl)
{
	struct sockaddr_storage	 ss;
	struct pollfd		 pfd[2];
	socklen_t		 sslen;
	unsigned char		 q[512], *p;
	ssize_t			 n;
	size_t			 qend;
	int			 type;

	pfd[0].fd = s;
	pfd[0].events = POLLIN;
	pfd[1].fd = ctl;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) == -1 || (pfd[1].revents != 0))
			_exit(0);
		sslen = sizeof(ss);
		n = recvfrom(s, q, sizeof(q) - 16, 0,
		    (struct sockaddr *)&ss, &sslen);
		if (n < 12 + 5)
			continue;
		for (qend = 12; qend < (size_t)n && q[qend] != 0;
		    qend += q[qend] + 1)
			;
		if (qend + 5 > (size_t)n)
			continue;
		qend += 5;
		type = q[qend - 4] << 8 | q[qend - 3];
		q[2] = 0x81;		/* response, recursion desired */
		q[3] = 0x80;		/* recursion available, no error */
		q[6] = 0;
		q[7] = type == ns_t_a ? 1 : 0;
		memset(q + 8, 0, 4);
		p = q + qend;
		if (type == ns_t_a) {
			static const unsigned char ans[] = { 0xc0, 0x0c,
			    0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2 };
			memcpy(p, ans, sizeof(ans));
			p += sizeof(ans);
		}
		(void)sendto(s, q, p - q, 0, (struct sockaddr *)&ss, sslen);
	}
}

/* A setup step failed: say which, with errno, and exit. */
static void
err_exit(const char *what)
{
	printf("FAIL setup: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The control socket, a TCP listener and the fake resolver's socket. */
static void
setup_sockets(void)
{
	struct sockaddr_un	 sun;
	struct sockaddr_in	 sin;
	socklen_t		 len;
	int			 s;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strlcpy(sun.sun_path, ctlpath, sizeof(sun.sun_path));
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(s, 128) == -1 || dup2(s, FD_CTL) == -1)
		err_exit("control socket");
	close(s);
	if (chmod(ctlpath, 0666) == -1)
		err_exit("chmod");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	len = sizeof(sin);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(s, 128) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1 ||
	    dup2(s, FD_TCP) == -1)
		err_exit("tcp socket");
	close(s);
	tcpport = ntohs(sin.sin_port);

	sin.sin_port = 0;
	len = sizeof(sin);
	if ((s = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(s, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(s, (struct sockaddr *)&sin, &len) == -1 ||
	    dup2(s, FD_DNS) == -1)
		err_exit("dns socket");
	close(s);
	dnsport = ntohs(sin.sin_port);
}

/* The paths under base that the cases use. */
static void
set_paths(void)
{
	snprintf(rootdir, sizeof(rootdir), "%s/empty", base);
	snprintf(dbdir, sizeof(dbdir), "%s/db", base);
	snprintf(outside, sizeof(outside), "%s/outside.db", base);
	snprintf(ctlpath, sizeof(ctlpath), "%s/ctl.sock", base);
}

/* Executed for a nested case: what the test parent set up. */
static int
recover_conf(void)
{
	const char	*s, *errstr;

	if ((s = getenv("T_SANDBOX_BASE")) == NULL ||
	    strlcpy(base, s, sizeof(base)) >= sizeof(base))
		return (-1);
	set_paths();
	if ((s = getenv("T_SANDBOX_TCP")) == NULL)
		return (-1);
	tcpport = strtonum(s, 1, 65535, &errstr);
	if (errstr != NULL || (s = getenv("T_SANDBOX_DNS")) == NULL)
		return (-1);
	dnsport = strtonum(s, 1, 65535, &errstr);
	return (errstr != NULL ? -1 : 0);
}

/* Directories: an empty root, a database directory, a file outside. */
static void
setup_dirs(void)
{
	const char	*tmp;
	int		 fd;

	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	snprintf(base, sizeof(base), "%s/t_sandbox.XXXXXX", tmp);
	if (mkdtemp(base) == NULL)
		err_exit("mkdtemp");
	if (chmod(base, 0755) == -1)
		err_exit("chmod");
	set_paths();
	if (mkdir(rootdir, 0755) == -1 || mkdir(dbdir, 0700) == -1)
		err_exit("mkdir");
	if (isroot && haveuser &&
	    chown(dbdir, tpw.pw_uid, tpw.pw_gid) == -1)
		err_exit("chown");
	if ((fd = open(outside, O_WRONLY | O_CREAT, 0644)) == -1)
		err_exit("open");
	close(fd);
}

/* Remove what setup_dirs made and what the cases left. */
static void
cleanup(void)
{
	char		 path[PATH_MAX];
	struct dirent	*de;
	DIR		*d;

	if ((d = opendir(dbdir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dbdir,
			    de->d_name);
			(void)unlink(path);
		}
		closedir(d);
	}
	(void)rmdir(dbdir);
	(void)rmdir(rootdir);
	(void)unlink(outside);
	(void)unlink(ctlpath);
	(void)rmdir(base);
}

/* Every case directly and nested, or one case when executed nested. */
int
main(int argc, char *argv[])
{
	struct passwd	*pw;
	const char	*u;
	unsigned char	 r[32];
	size_t		 i;
	ssize_t		 n;
	int		 dnsctl[2];
	pid_t		 dnspid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((u = getenv("SANDBOX_TEST_USER")) != NULL)
		username = u;
	isroot = geteuid() == 0;
	if ((pw = getpwnam(username)) != NULL) {
		tpw = *pw;
		haveuser = 1;
	}
	landlock = syscall(SYS_landlock_create_ruleset, NULL, 0, 1) > 0;

	/* Executed for one case, nested under the parent's filter. */
	if (argc == 3 && strcmp(argv[1], "-c") == 0) {
		for (i = 0; i < NCASES; i++)
			if (strcmp(cases[i].name, argv[2]) == 0)
				break;
		if (i == NCASES)
			_exit(10);
		if (recover_conf() == -1)
			_exit(11);
		child_main(&cases[i]);
	}
	if ((n = readlink("/proc/self/exe", selfpath,
	    sizeof(selfpath) - 1)) == -1)
		err_exit("readlink");
	selfpath[n] = '\0';
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		err_exit("getrandom");
	for (i = 0; i < sizeof(r); i++)
		snprintf(secret + i * 2, 3, "%02x", r[i]);
	if (!isroot)
		printf("# not root: user, chroot and descriptor checks "
		    "are skipped\n");
	if (!landlock)
		printf("# no Landlock: file confinement cases skipped\n");
	ia32 = have_ia32();
	setup_dirs();
	setup_sockets();
	if (pipe(dnsctl) == -1 || (dnspid = fork()) == -1)
		err_exit("fake resolver");
	if (dnspid == 0) {
		close(dnsctl[1]);
		fake_dns(FD_DNS, dnsctl[0]);
	}
	close(dnsctl[0]);

	for (i = 0; i < NCASES; i++) {
		if (!(cases[i].flags & F_NESTED))
			run_case(&cases[i], 0);
		if (!(cases[i].flags & F_DIRECT))
			run_case(&cases[i], 1);
	}

	close(dnsctl[1]);
	(void)waitpid(dnspid, NULL, 0);
	cleanup();
	return (failed);
}

#endif /* __linux__ */
