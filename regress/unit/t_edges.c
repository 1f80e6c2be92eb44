/*
 * t_edges.c: the edges between bridged's processes. Each process is
 * started as the parent starts it (bridged -P role, bridged-worker),
 * with this program as its parent on a real socket pair; its peers are
 * socket pairs handed over as the parent hands them. Each is sent a
 * malformed message of a type it takes (a payload cut short, a string
 * without its NUL):
 *  - from a peer it trusts as much as itself (the parent, storage, the
 *    provider, control), it must log who sent what and exit non-zero;
 *  - from a worker, storage and the provider close that worker's
 *    channel, ask the parent to end it (STORAGE_REJECT, PROVIDER_REJECT)
 *    and go on serving.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bridged.h"

#define WAIT_MS		10000
#define IDENT		"e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0" \
			"e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0"

struct proc {
	pid_t		 pid;
	struct channel	 ch;		/* our end of its FD_PARENT */
	char		 said[512];	/* its last warning or worse */
	char		 log[PATH_MAX];	/* its stderr (it runs with -d) */
};

static int	 failures;
static char	 dir[256];
static char	 bridged[PATH_MAX], worker_prog[PATH_MAX];

/* One result line: ok, or FAIL with why. */
static void
check(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s\n", name);
	else {
		printf("FAIL %s: %s\n", name, why);
		failures++;
	}
}

/* The next message within ms: 1, 0 on timeout, -1 on EOF or error. */
static int
next_msg(struct imsgbuf *ib, struct imsg *m, int ms)
{
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 r;

	for (;;) {
		if ((r = imsg_get(ib, m)) != 0)
			return (r);
		pfd.fd = ib->fd;
		pfd.events = POLLIN;
		if ((r = poll(&pfd, 1, ms)) == -1 && errno != EINTR)
			return (-1);
		if (r == 0)
			return (0);
		if ((n = imsg_read(ib)) == 0 || (n == -1 && errno != EAGAIN &&
		    errno != EINTR))
			return (-1);
	}
}

/*
 * Read what the process sends us until a message of type want (0:
 * until it closes); log lines of warning or worse are kept. 1 when
 * want came (*m holds it, to be freed), 0 otherwise.
 */
static int
proc_read(struct proc *p, uint32_t want, struct imsg *m, int ms)
{
	struct ireader	 ir;
	const char	*line;
	uint32_t	 pri;

	while (next_msg(&p->ch.ibuf, m, ms) == 1) {
		if (m->hdr.type == IMSG_CHILD_LOG) {
			ir_init(&ir, m);
			pri = ir_u32(&ir);
			line = ir_str(&ir);
			if (ir_end(&ir) == 0 && pri <= LOG_WARNING)
				(void)strlcpy(p->said, line, sizeof(p->said));
		} else if (want != 0 && m->hdr.type == want)
			return (1);
		imsg_free(m);
	}
	return (0);
}

/* A configuration as the parent has parsed it: loopback, no TLS. */
static struct bridged_conf *
conf_make(void)
{
	struct bridged_conf	*conf;

	if ((conf = config_new()) == NULL)
		exit(2);
	(void)snprintf(conf->g.database, sizeof(conf->g.database),
	    "%s/edges.db", dir);
	conf->g.prefork = 1;
	conf->g.max_clients = 4;
	conf->g.timeout = 60;
	conf->g.handshake_timeout = 10;
	conf->g.memory_limit = 1 << 20;
	conf->g.line_max = BRIDGED_LINEMAX;
	conf->g.summaries_keep = 3;
	conf->g.models_cache = 60;
	conf->g.jobs_max = 2;
	return (conf);
}

/*
 * Start a process on a channel to us (argv: the program, then its
 * argv from argv[0]), send it the configuration, wait until ready.
 */
static int
proc_start(struct proc *p, const char *name, char *const argv[])
{
	struct bridged_conf	*conf;
	struct imsg		 m;
	int			 sp[2], fd, r;

	memset(p, 0, sizeof(*p));
	(void)snprintf(p->log, sizeof(p->log), "%s/%s.log", dir, name);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return (-1);
	switch (p->pid = fork()) {
	case -1:
		return (-1);
	case 0:
		close(sp[0]);
		if (sp[1] != FD_PARENT) {
			dup2(sp[1], FD_PARENT);
			close(sp[1]);
		}
		if ((fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND,
		    0600)) != -1)
			dup2(fd, 2);
		execv(argv[0], argv + 1);
		_exit(127);
	}
	close(sp[1]);
	channel_init(&p->ch, sp[0], NULL, NULL, NULL);
	conf = conf_make();
	r = config_send(&p->ch, conf, NULL, NULL);
	config_free(conf);
	if (r == -1 || channel_flush(&p->ch) == -1)
		return (-1);
	if (!proc_read(p, IMSG_CHILD_READY, &m, WAIT_MS))
		return (-1);
	imsg_free(&m);
	return (0);
}

/* Wait for it to end: its exit status, 128 + a signal, or -1. */
static int
proc_wait(struct proc *p)
{
	int	 status, i;

	for (i = 0; i < WAIT_MS / 10; i++) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			return (WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status));
		}
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	p->pid = 0;
	return (-1);
}

/* Done with it: the parent leaves, and so must it. */
static void
proc_end(struct proc *p)
{
	if (!p->ch.dead)
		channel_shutdown(&p->ch);
	if (p->pid != 0)
		(void)proc_wait(p);
}

/* Whether it still runs. */
static int
proc_alive(struct proc *p)
{
	int	 status;

	return (p->pid != 0 && waitpid(p->pid, &status, WNOHANG) == 0);
}

/* Send a message as it is, whatever it holds, and flush. */
static int
send_raw(struct imsgbuf *ib, uint32_t type, int fd, const void *data,
    size_t len)
{
	if (imsg_compose(ib, type, 0, 0, fd, data, len) == -1)
		return (-1);
	return (imsg_flush(ib));
}

/* Send what b holds and free it. */
static int
send_buf(struct imsgbuf *ib, uint32_t type, int fd, struct ibuf *b)
{
	int	 r;

	r = send_raw(ib, type, fd, ibuf_data(b), ibuf_left(b));
	ibuf_free(b);
	return (r);
}

/* A frame too short to be one: a header whose length is 4. */
static int
send_broken(struct imsgbuf *ib)
{
	struct imsg_hdr	 hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = IMSG_NONE + 1;
	hdr.len = 4;
	return (write(ib->fd, &hdr, sizeof(hdr)) == sizeof(hdr) ? 0 : -1);
}

/* A string as ibuf_add_str writes it but without its NUL. */
static struct ibuf *
str_unterminated(uint32_t id, int with_id, const char *s)
{
	struct ibuf	*b;

	if ((b = ibuf_open(64)) == NULL ||
	    (with_id && ibuf_add_u32(b, id) == -1) ||
	    ibuf_add_u32(b, (uint32_t)strlen(s)) == -1 ||
	    ibuf_add(b, s, strlen(s)) == -1)
		exit(2);
	return (b);
}

/*
 * Hand the process a channel (type: PARENT_STORAGE, _PROVIDER,
 * _CONTROL, _JOBS, or _CHANNEL with a worker id); our end in *ib.
 */
static int
hand_channel(struct proc *p, uint32_t type, uint32_t wid,
    struct imsgbuf *ib)
{
	struct ibuf	*b;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return (-1);
	imsgbuf_init(ib, sp[1]);
	if (type != IMSG_PARENT_CHANNEL)
		return (send_raw(&p->ch.ibuf, type, sp[0], NULL, 0));
	if ((b = ibuf_open(64)) == NULL || ibuf_add_u32(b, wid) == -1 ||
	    ibuf_add_str(b, "") == -1)
		exit(2);
	return (send_buf(&p->ch.ibuf, type, sp[0], b));
}

/* Whether our end of a channel was closed by the process. */
static int
closed_by_peer(struct imsgbuf *ib)
{
	struct imsg	 m;
	int		 r;

	while ((r = next_msg(ib, &m, WAIT_MS)) == 1)
		imsg_free(&m);
	return (r == -1);
}

/* Whether its stderr holds the text. */
static int
log_has(const struct proc *p, const char *text)
{
	char	 buf[8192];
	ssize_t	 n;
	int	 fd;

	if ((fd = open(p->log, O_RDONLY)) == -1)
		return (0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return (0);
	buf[n] = '\0';
	return (strstr(buf, text) != NULL);
}

/*
 * The process must die of the message: exit status 1, and its last
 * words name the type and the peer (on its stderr alone when the
 * channel to us is the one that broke).
 */
static void
expect_fatal(const char *name, struct proc *p, const char *type,
    const char *peer)
{
	struct imsg	 m;
	char		 want[128], why[768];
	int		 st;

	(void)proc_read(p, 0, &m, WAIT_MS);
	st = proc_wait(p);
	(void)snprintf(want, sizeof(want), "bad %s from %s", type, peer);
	(void)snprintf(why, sizeof(why), "exit %d, said \"%s\", want %s",
	    st, p->said, want);
	check(name, st == 1 && (strstr(p->said, want) != NULL ||
	    log_has(p, want)), why);
	channel_shutdown(&p->ch);
}

/*
 * The process must close the worker's channel, ask us (the parent) to
 * end worker wid with reject, name what it got, and go on.
 */
static void
expect_reject(const char *name, struct proc *p, struct imsgbuf *wk,
    uint32_t reject, uint32_t wid, const char *type)
{
	struct ireader	 ir;
	struct imsg	 m;
	char		 want[128], why[768];
	uint32_t	 got = 0;
	int		 ok, told;

	ok = closed_by_peer(wk);
	if ((told = proc_read(p, reject, &m, WAIT_MS))) {
		ir_init(&ir, &m);
		got = ir_u32(&ir);
		told = ir_end(&ir) == 0 && got == wid;
		imsg_free(&m);
	}
	(void)snprintf(want, sizeof(want), "bad %s from worker %u", type,
	    wid);
	(void)snprintf(why, sizeof(why), "channel closed %d, parent told "
	    "%d (worker %u), alive %d, said \"%s\", want %s", ok, told, got,
	    proc_alive(p), p->said, want);
	check(name, ok && told && proc_alive(p) &&
	    strstr(p->said, want) != NULL, why);
	imsgbuf_clear(wk);
	close(wk->fd);
}

static char *const storage_argv[] = { bridged, "bridged", "-P", "storage",
    "-d", NULL };
static char *const provider_argv[] = { bridged, "bridged", "-P", "provider",
    "-d", NULL };
static char *const control_argv[] = { bridged, "bridged", "-P", "control",
    "-d", NULL };
static char *const template_argv[] = { worker_prog, "bridged-worker", "-d",
    NULL };

/* Start one; a failure to start is a failure of the case. */
static int
start(const char *name, struct proc *p, char *const argv[])
{
	char	 why[600];

	if (proc_start(p, name, argv) == 0)
		return (0);
	(void)snprintf(why, sizeof(why), "did not start: \"%s\"", p->said);
	check(name, 0, why);
	if (p->pid != 0)
		proc_end(p);
	return (-1);
}

/* Storage: the parent's, control's, the provider's fatal; a worker's not. */
static void
t_storage(void)
{
	struct proc	 p;
	struct imsgbuf	 peer;
	struct ibuf	*b;

	if (start("storage-parent", &p, storage_argv) == 0) {
		/* SESSION: u32 worker id, str identity, str how; cut. */
		if ((b = ibuf_open(8)) == NULL || ibuf_add_u32(b, 1) == -1)
			exit(2);
		send_buf(&p.ch.ibuf, IMSG_PARENT_SESSION, -1, b);
		expect_fatal("storage-parent", &p, "IMSG_PARENT_SESSION",
		    "parent");
	}
	if (start("storage-control", &p, storage_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_CONTROL, 0, &peer);
		b = str_unterminated(1, 1, "e0e0");
		send_buf(&peer, IMSG_CTL_EXPORT, -1, b);
		expect_fatal("storage-control", &p, "IMSG_CTL_EXPORT",
		    "control");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("storage-parent-framing", &p, storage_argv) == 0) {
		send_broken(&p.ch.ibuf);
		expect_fatal("storage-parent-framing", &p, "framing", "parent");
	}
	if (start("storage-provider", &p, storage_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_JOBS, 0, &peer);
		send_raw(&peer, IMSG_PROVIDER_JOB_START, -1, "\1\0\0\0", 4);
		expect_fatal("storage-provider", &p,
		    "IMSG_PROVIDER_JOB_START", "provider");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("storage-worker", &p, storage_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_CHANNEL, 7, &peer);
		if ((b = ibuf_open(128)) == NULL || ibuf_add_u32(b, 7) == -1 ||
		    ibuf_add_str(b, IDENT) == -1 || ibuf_add_str(b, "ip") == -1)
			exit(2);
		send_buf(&p.ch.ibuf, IMSG_PARENT_SESSION, -1, b);
		/* COUNT: u32 request id; two bytes of it. */
		send_raw(&peer, IMSG_WORKER_COUNT, -1, "\1\0", 2);
		expect_reject("storage-worker", &p, &peer,
		    IMSG_STORAGE_REJECT, 7, "IMSG_WORKER_COUNT");
		/* A broken frame is a bad message too. */
		hand_channel(&p, IMSG_PARENT_CHANNEL, 8, &peer);
		if ((b = ibuf_open(128)) == NULL || ibuf_add_u32(b, 8) == -1 ||
		    ibuf_add_str(b, IDENT) == -1 || ibuf_add_str(b, "ip") == -1)
			exit(2);
		send_buf(&p.ch.ibuf, IMSG_PARENT_SESSION, -1, b);
		send_broken(&peer);
		expect_reject("storage-worker-framing", &p, &peer,
		    IMSG_STORAGE_REJECT, 8, "framing");
		proc_end(&p);
	}
}

/* The provider: the parent's, storage's, control's fatal; a worker's not. */
static void
t_provider(void)
{
	struct proc	 p;
	struct imsgbuf	 peer;
	struct imsg	 m;
	struct ibuf	*b;

	if (start("provider-parent", &p, provider_argv) == 0) {
		/* CHANNEL: u32 worker id, str identity; the str cut. */
		b = str_unterminated(3, 1, "x");
		send_buf(&p.ch.ibuf, IMSG_PARENT_CHANNEL, -1, b);
		expect_fatal("provider-parent", &p, "IMSG_PARENT_CHANNEL",
		    "parent");
	}
	if (start("provider-storage", &p, provider_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_JOBS, 0, &peer);
		/* It asks for the jobs first. */
		if (next_msg(&peer, &m, WAIT_MS) == 1)
			imsg_free(&m);
		send_raw(&peer, IMSG_STORAGE_JOB_READY, -1, "\1\0\0\0", 4);
		expect_fatal("provider-storage", &p, "IMSG_STORAGE_JOB_READY",
		    "storage");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("provider-control", &p, provider_argv) == 0) {
		/* Control's channel is worker id 0. */
		hand_channel(&p, IMSG_PARENT_CHANNEL, 0, &peer);
		send_raw(&peer, IMSG_CTL_MODELS, -1, "\1\0", 2);
		expect_fatal("provider-control", &p, "IMSG_CTL_MODELS",
		    "control");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("provider-control-framing", &p, provider_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_CHANNEL, 0, &peer);
		send_broken(&peer);
		expect_fatal("provider-control-framing", &p, "framing",
		    "control");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("provider-worker", &p, provider_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_CHANNEL, 5, &peer);
		send_raw(&peer, IMSG_WORKER_CANCEL, -1, "\1\0", 2);
		expect_reject("provider-worker", &p, &peer,
		    IMSG_PROVIDER_REJECT, 5, "IMSG_WORKER_CANCEL");
		/* What only control may ask is not a worker's to ask. */
		hand_channel(&p, IMSG_PARENT_CHANNEL, 6, &peer);
		send_raw(&peer, IMSG_CTL_MODELS, -1, "\1\0\0\0", 4);
		expect_reject("provider-worker-type", &p, &peer,
		    IMSG_PROVIDER_REJECT, 6, "IMSG_CTL_MODELS");
		proc_end(&p);
	}
}

/* Control: the parent, storage, the provider: all fatal. */
static void
t_control(void)
{
	struct proc	 p;
	struct imsgbuf	 peer;
	struct ibuf	*b;

	if (start("control-parent", &p, control_argv) == 0) {
		b = str_unterminated(0, 0, "status");
		send_buf(&p.ch.ibuf, IMSG_PARENT_DATA, -1, b);
		expect_fatal("control-parent", &p, "IMSG_PARENT_DATA",
		    "parent");
	}
	if (start("control-storage", &p, control_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_STORAGE, 0, &peer);
		b = str_unterminated(1, 1, "line");
		send_buf(&peer, IMSG_STORAGE_LINE, -1, b);
		expect_fatal("control-storage", &p, "IMSG_STORAGE_LINE",
		    "storage");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	if (start("control-storage-framing", &p, control_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_STORAGE, 0, &peer);
		send_broken(&peer);
		expect_fatal("control-storage-framing", &p, "framing",
		    "storage");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
	/* The provider's too: it used to be only a warning. */
	if (start("control-provider", &p, control_argv) == 0) {
		hand_channel(&p, IMSG_PARENT_PROVIDER, 0, &peer);
		b = str_unterminated(1, 1, "");
		send_buf(&peer, IMSG_PROVIDER_MODELS_END, -1, b);
		expect_fatal("control-provider", &p,
		    "IMSG_PROVIDER_MODELS_END", "provider");
		imsgbuf_clear(&peer);
		close(peer.fd);
	}
}

/*
 * The template, and a worker it forks: from the parent, storage, the
 * provider, fatal. The worker's end comes back as TEMPLATE_ENDED.
 */
static void
t_worker(void)
{
	struct ireader	 ir;
	struct proc	 p, wk;
	struct imsgbuf	 peer;
	struct imsg	 m;
	struct ibuf	*b;
	static const char *names[] = { "worker-parent", "worker-storage",
			    "worker-provider", "worker-provider-framing" };
	static const char *said[] = { "bad IMSG_PARENT_KILL from parent",
			    "bad IMSG_STORAGE_END from storage",
			    "bad IMSG_PROVIDER_MODEL from provider",
			    "bad framing from provider" };
	char		 why[768];
	uint32_t	 wid, pid, status;
	int		 i, sp[2], ok;

	if (start("template-parent", &p, template_argv) == 0) {
		/* FORK: u32 worker id with a descriptor; two bytes. */
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
			exit(2);
		send_raw(&p.ch.ibuf, IMSG_PARENT_FORK, sp[0], "\1\0", 2);
		close(sp[1]);
		expect_fatal("template-parent", &p, "IMSG_PARENT_FORK",
		    "parent");
	}
	if (start("template", &p, template_argv) == -1)
		return;
	for (i = 0; i < 4; i++) {
		memset(&wk, 0, sizeof(wk));
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 ||
		    (b = ibuf_open(8)) == NULL || ibuf_add_u32(b, i + 1) == -1)
			exit(2);
		send_buf(&p.ch.ibuf, IMSG_PARENT_FORK, sp[0], b);
		channel_init(&wk.ch, sp[1], NULL, NULL, NULL);
		if (!proc_read(&wk, IMSG_CHILD_READY, &m, WAIT_MS)) {
			check(names[i], 0, "the worker did not start");
			continue;
		}
		imsg_free(&m);
		switch (i) {
		case 0:
			b = str_unterminated(0, 0, "go away");
			send_buf(&wk.ch.ibuf, IMSG_PARENT_KILL, -1, b);
			break;
		case 1:
			hand_channel(&wk, IMSG_PARENT_STORAGE, 0, &peer);
			send_raw(&peer, IMSG_STORAGE_END, -1, "\1\0\0\0", 4);
			break;
		case 2:
			hand_channel(&wk, IMSG_PARENT_PROVIDER, 0, &peer);
			b = str_unterminated(1, 1, "m");
			send_buf(&peer, IMSG_PROVIDER_MODEL, -1, b);
			break;
		case 3:
			hand_channel(&wk, IMSG_PARENT_PROVIDER, 0, &peer);
			send_broken(&peer);
			break;
		}
		(void)proc_read(&wk, 0, &m, WAIT_MS);
		/* How it ended, as the template tells. */
		ok = 0;
		status = 0;
		while (proc_read(&p, IMSG_TEMPLATE_ENDED, &m, WAIT_MS)) {
			ir_init(&ir, &m);
			wid = ir_u32(&ir);
			pid = ir_u32(&ir);
			status = ir_u32(&ir);
			imsg_free(&m);
			(void)pid;
			if (wid == (uint32_t)i + 1) {
				ok = 1;
				break;
			}
		}
		(void)snprintf(why, sizeof(why), "%s, status %#x, "
		    "said \"%s\"", ok ? "ended" : "no end told", status,
		    wk.said);
		check(names[i], ok && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 1 && strstr(wk.said, said[i]) != NULL,
		    why);
		channel_shutdown(&wk.ch);
		if (i > 0) {
			imsgbuf_clear(&peer);
			close(peer.fd);
		}
	}
	proc_end(&p);
}

/* Each process in turn against malformed messages from its peers. */
int
main(void)
{
	const char	*tmp;
	char		 cmd[PATH_MAX + 16];

	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	signal(SIGPIPE, SIG_IGN);
	ev_init();
	/* The runner starts us in regress/unit. */
	if (realpath("../../bridged/bridged", bridged) == NULL ||
	    realpath("../../bridged/bridged-worker", worker_prog) == NULL) {
		printf("skip edges: the programs are not built\n");
		return (0);
	}
	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/t_edges.XXXXXX", tmp) >=
	    sizeof(dir) || mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (2);
	}
	t_storage();
	t_provider();
	t_control();
	t_worker();
	if (getenv("T_EDGES_KEEP") == NULL) {
		(void)snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		(void)system(cmd);
	}
	return (failures != 0);
}
