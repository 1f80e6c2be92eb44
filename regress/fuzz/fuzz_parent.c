/*
 * fuzz_parent.c: the parent's handlers (bridged/parent.c, included
 * whole to reach its static handlers) of what its children send:
 * workers in session (AUTH, IDENTITY, STATE, EVENT), idle workers,
 * control's requests on behalf of bridgectl, and anything else from
 * any of them. A child that sends something wrong is killed and
 * replaced; the parent goes on. Processes are not really forked or
 * signalled here: fork() fails and kill() is only counted.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"
#include "fuzz.h"

static int	kills;
pid_t		fuzz_fork(void);
int		fuzz_kill(pid_t, int);
void		fuzz_syslog(int, const char *, ...);

#define fork()		fuzz_fork()
#define kill(p, s)	fuzz_kill((p), (s))
#define syslog		fuzz_syslog

#include "../../bridged/parent.c"

#undef fork
#undef kill
#undef syslog

/* No process is started while fuzzing. */
pid_t
fuzz_fork(void)
{
	errno = EAGAIN;
	return (-1);
}

/* No process is signalled: the pids are made up. */
int
fuzz_kill(pid_t pid, int sig)
{
	(void)pid;
	(void)sig;
	kills++;
	return (0);
}

/* Log lines of children go nowhere. */
void
fuzz_syslog(int pri, const char *fmt, ...)
{
	(void)pri;
	(void)fmt;
}

/* An identity: 64 hex digits, as a SHA-256 in hex. */
#define IDENT	"3f1a9c0b22de0123456789abcdef" \
	    "0123456789abcdef0123456789abcdef4567"

static int	 far[16];
static int	 nfar;
static char	 confpath[64];

/* A child as child_spawn() leaves it, on a socket pair. */
static struct child *
child_add(enum proc_id id, int busy, uint32_t sid)
{
	struct child	*c;
	int		 sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		abort();
	fd_nonblock(sv[0]);
	fd_nonblock(sv[1]);
	far[nfar++] = sv[1];
	c->id = id;
	c->pid = 100000 + nfar;
	c->ready = 1;
	c->busy = busy;
	c->sid = sid;
	c->wid = nfar;
	c->gen = 1;
	if (busy)
		strlcpy(c->addr, "192.0.2.7", sizeof(c->addr));
	channel_init(&c->chan, sv[0], parent_dispatch_child,
	    parent_child_closed, c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	return (c);
}

/* Read and forget what the parent wrote to its children. */
static void
pump(void)
{
	struct child	*c;
	char		 buf[16384];
	int		 i;

	TAILQ_FOREACH(c, &children, entry)
		if (!c->chan.dead)
			(void)imsg_write(&c->chan.ibuf);
	for (i = 0; i < nfar; i++)
		while (read(far[i], buf, sizeof(buf)) > 0)
			;
}

/* One-time set-up: the parent's timers and a configuration file. */
static void
setup(void)
{
	static const char conf[] =
	    "listen on 127.0.0.1 port 1 tls\n"
	    "tls certificate \"/nonexistent.crt\"\n"
	    "tls key \"/nonexistent.key\"\n"
	    "provider \"g\" {\n\tapi key env \"K\"\n}\n";
	int	 fd;

	fuzz_quiet(0);
	signal(SIGPIPE, SIG_IGN);
	ev_timer_set(&restart_timer, parent_roles_update, NULL);
	ev_timer_set(&stop_timer, parent_kill_all, NULL);
	if ((fd = memfd_create("bridged.conf", 0)) == -1 ||
	    write(fd, conf, sizeof(conf) - 1) != sizeof(conf) - 1)
		abort();
	snprintf(confpath, sizeof(confpath), "/proc/self/fd/%d", fd);
	conffile = confpath;
}

/*
 * A message a child may send, well formed or not; *role is the child
 * that sends it (PROC_MAX: any).
 */
static struct ibuf *
message(struct fin *f, uint32_t *type, uint32_t *peer, enum proc_id *role)
{
	struct ibuf	*b;
	uint32_t	 v;
	char		 code[16];
	static const char *models[] = { "gemini-2.0-flash", "a\033[2J",
	    "x y", "g/gemini-2.0-flash" };
	static const char *codes[] = { "", "upstream", "rate-limited",
	    "cancelled", "no-model", "storage", "Bad code" };

	*peer = fin_u8(f);
	*role = PROC_MAX;
	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 22) {
	case 12:
	case 13:
		*role = PROC_TEMPLATE;
		*type = fin_u8(f) & 1 ? IMSG_TEMPLATE_FORKED :
		    IMSG_TEMPLATE_ENDED;
		ibuf_add_u32(b, fin_u8(f) % 12);
		ibuf_add_u32(b, fin_u8(f) < 200 ? 200000 + fin_u8(f) :
		    fin_u32(f));
		if (*type == IMSG_TEMPLATE_ENDED)
			ibuf_add_u32(b, fin_u8(f) & 1 ? 0 : fin_u16(f));
		break;
	case 14:
		*role = PROC_STORAGE;
		*type = IMSG_STORAGE_EVENT;
		ibuf_add_str(b, fin_str(f, 300));
		break;
	case 0:
		*type = IMSG_CHILD_LOG;
		ibuf_add_u32(b, fin_u8(f) % 9);
		ibuf_add_str(b, fin_str(f, 300));
		break;
	case 1:
		*type = IMSG_CHILD_READY;
		break;
	case 2:
		*role = PROC_WORKER;
		*type = IMSG_WORKER_AUTH;
		ibuf_add_str(b, fin_str(f, 80));
		break;
	case 3:
		*role = PROC_WORKER;
		*type = IMSG_WORKER_IDENTITY;
		ibuf_add_str(b, fin_u8(f) < 200 ? IDENT : fin_str(f, 80));
		break;
	case 4:
		*role = PROC_WORKER;
		*type = IMSG_WORKER_STATE;
		ibuf_add_str(b, fin_u8(f) < 200 ? models[fin_u8(f) % 4] :
		    fin_str(f, 140));
		ibuf_add_u32(b, fin_u32(f));
		ibuf_add_u64(b, fin_u64(f));
		ibuf_add_u64(b, fin_u64(f));
		ibuf_add_u32(b, fin_u8(f));
		break;
	case 5:
		*role = PROC_WORKER;
		*type = IMSG_WORKER_EVENT;
		ibuf_add_str(b, fin_str(f, 600));
		break;
	case 6:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_STATUS + fin_u8(f) % 2;	/* SESSIONS */
		break;
	case 7:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_KILL;
		ibuf_add_u32(b, fin_u8(f) % 4);
		break;
	case 8:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_LOG;
		ibuf_add_u32(b, fin_u8(f) % 3);
		break;
	case 9:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_RELOAD;
		break;
	case 15:
		*role = PROC_WORKER;
		*type = IMSG_WORKER_METRIC;
		ibuf_add_str(b, fin_u8(f) < 240 ? models[fin_u8(f) % 4] :
		    fin_str(f, 140));
		/* Mostly known codes; some of many, so the tables fill. */
		v = fin_u8(f);
		(void)snprintf(code, sizeof(code), "code-%u", fin_u8(f));
		ibuf_add_str(b, v < 224 ? codes[v % 7] : code);
		v = fin_u8(f);
		ibuf_add_str(b, v < 192 ? "" : v < 224 ? "requests" :
		    v < 240 ? codes[v % 7] : code);
		ibuf_add_u64(b, fin_u8(f) < 240 ? fin_u16(f) : fin_u64(f));
		ibuf_add_u64(b, fin_u8(f) < 240 ? fin_u16(f) : fin_u64(f));
		ibuf_add_u64(b, fin_u16(f));
		ibuf_add_u64(b, fin_u8(f) < 240 ? fin_u16(f) : fin_u64(f));
		break;
	case 16:
		/* The answer to the PARENT_TOKEN a worker's AUTH asked. */
		*role = PROC_STORAGE;
		*type = IMSG_STORAGE_TOKEN;
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? 5 + v % 3 : fin_u32(f));
		v = fin_u8(f);
		ibuf_add_u32(b, v < 250 ? v & 1 : v);
		ibuf_add_str(b, fin_u8(f) < 240 ? IDENT : fin_str(f, 80));
		v = fin_u8(f);
		ibuf_add_str(b, v < 128 ? "" : v < 240 ? models[v % 4] :
		    fin_text(f, 200));
		break;
	case 17:
		/* From storage (another instance revoked) or control. */
		*role = fin_u8(f) & 1 ? PROC_STORAGE : PROC_CONTROL;
		*type = *role == PROC_STORAGE ? IMSG_STORAGE_END_SESSIONS :
		    IMSG_CTL_END_SESSIONS;
		ibuf_add_str(b, fin_u8(f) < 240 ? IDENT : fin_str(f, 80));
		ibuf_add_str(b, fin_u8(f) < 240 ? fin_text(f, 140) :
		    fin_str(f, 140));
		break;
	case 18:
		*role = fin_u8(f) & 1 ? PROC_STORAGE : PROC_PROVIDER;
		*type = *role == PROC_STORAGE ? IMSG_STORAGE_REJECT :
		    IMSG_PROVIDER_REJECT;
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? 5 + v % 4 : fin_u32(f));
		break;
	case 19:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_METRICS;
		break;
	case 20:
		*role = PROC_CONTROL;
		*type = IMSG_CTL_MONITORS;
		ibuf_add_u32(b, fin_u8(f) < 240 ? fin_u8(f) % 3 : fin_u32(f));
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct fin	 f;
	struct child	*c, *kids[8], *mine[8];
	struct ibuf	*b;
	struct imsg	 imsg;
	enum proc_id	 role;
	uint32_t	 type, peer;
	int		 i, n, v, nkids = 0, steps = 0;

	if (!init) {
		setup();
		init = 1;
	}
	fin_init(&f, data, size);
	if ((parent_conf = config_new()) == NULL)
		abort();
	parent_conf->g.prefork = 1;
	parent_conf->g.max_clients = 4;
	parent_conf->g.identity = fin_u8(&f) % 3;
	memset(backoff, 0, sizeof(backoff));
	(void)child_add(PROC_CONTROL, 0, 0);
	(void)child_add(PROC_STORAGE, 0, 0);
	(void)child_add(PROC_PROVIDER, 0, 0);
	(void)child_add(PROC_TEMPLATE, 0, 0);
	(void)child_add(PROC_WORKER, 1, 1);
	(void)child_add(PROC_WORKER, 1, 2);
	(void)child_add(PROC_WORKER, 0, 0);

	while (f.left > 0 && steps++ < 256) {
		/* A child by its place: a worker may be gone by now. */
		nkids = 0;
		TAILQ_FOREACH(c, &children, entry)
			kids[nkids++ % 8] = c;
		if (nkids == 0)
			break;
		b = message(&f, &type, &peer, &role);
		/* Mostly the child whose message it is. */
		v = fin_u8(&f);
		n = 0;
		for (i = 0; i < nkids && i < 8; i++)
			if (kids[i]->id == role)
				mine[n++] = kids[i];
		if (v < 224 && n > 0)
			c = mine[v % n];
		else
			c = kids[v % (nkids < 8 ? nkids : 8)];
		if (!c->chan.dead) {
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			imsg.hdr.peerid = peer;
			parent_dispatch_child(&c->chan, &imsg);
		}
		ibuf_free(b);
		pump();
	}

	while ((c = TAILQ_FIRST(&children)) != NULL) {
		TAILQ_REMOVE(&children, c, entry);
		if (!c->chan.dead)
			channel_shutdown(&c->chan);
		free(c);
	}
	for (i = 0; i < nfar; i++)
		close(far[i]);
	nfar = 0;
	ev_timer_del(&restart_timer);
	config_free(parent_conf);
	parent_conf = NULL;
	tls_material_wipe(&tlsm);
	return (0);
}
