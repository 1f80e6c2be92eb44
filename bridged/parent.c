/*
 * parent.c: the privileged parent. It starts every other process by
 * fork and exec, wires them together, restarts what dies, reloads on
 * SIGHUP and stops everything on SIGTERM. It is never on the data path
 * of a conversation.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"

#define RESTART_DELAY	1000	/* ms, for a role that keeps dying */
#define STOP_GRACE	3000	/* ms, then SIGKILL */

struct bridged_conf	*parent_conf;
struct child_list	 children = TAILQ_HEAD_INITIALIZER(children);

static const char	*conffile;
static char		 self_path[PATH_MAX];
static char		 worker_path[PATH_MAX];
static int		 debug, verbose;
static struct tls_material tlsm;
static int		 ctl_fd = -1;
static time_t		 started;
static int		 stopping;
static uint32_t		 next_wid = 1;
static struct ev_timer	 restart_timer, stop_timer, pool_timer;
static uint64_t		 last_spawn[PROC_MAX];
static int		 died_early[PROC_MAX];	/* in a row, before ready */
static int		 worker_failures;	/* died before ready */

static void	parent_dispatch_child(struct channel *, struct imsg *);
static void	parent_child_closed(struct channel *);
static struct child *child_spawn(enum proc_id);
static void	parent_roles_update(void *);

/* The singleton of a role, if it is running. */
static struct child *
role_child(enum proc_id id)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == id && !c->chan.dead)
			return (c);
	return (NULL);
}

struct child *
parent_storage(void)
{
	return (role_child(PROC_STORAGE));
}

struct child *
parent_idle_worker(void)
{
	struct child	*c;

	if (stopping)
		return (NULL);
	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->ready && !c->busy &&
		    !c->retiring && !c->chan.dead)
			return (c);
	return (NULL);
}

/* How a worker's client authenticated, for show identities. */
static const char *
session_how(struct child *w)
{
	char	 h[IDENTITY_LEN + 1];

	switch (parent_conf->g.identity) {
	case IDENTITY_TOKEN:
		return ("token");
	case IDENTITY_CERTIFICATE:
		/* A plain listener falls back to the address. */
		sha256_hex(w->addr, strlen(w->addr), h);
		return (strcmp(h, w->identity) == 0 ? "ip" : "certificate");
	default:
		return ("ip");
	}
}

/* Storage learns which identity a worker's channel now speaks for. */
void
storage_session(struct child *w)
{
	struct child	*storage;
	struct ibuf	*b;

	if ((storage = parent_storage()) == NULL)
		return;		/* the next storage gets it with the channel */
	if ((b = channel_create(&storage->chan, IMSG_PARENT_SESSION, 0,
	    128)) == NULL || ibuf_add_u32(b, w->wid) == -1 ||
	    ibuf_add_str(b, w->identity) == -1 ||
	    ibuf_add_str(b, session_how(w)) == -1)
		fatal("%s", __func__);
	channel_send(&storage->chan, b);
}

/*
 * An event: to `bridgectl monitor' with its time, and to the event
 * log in storage with the identity it concerns (NULL none).
 */
static void
event_send(const char *identity, const char *text)
{
	struct child	*c;
	struct ibuf	*b;
	struct tm	 tm;
	time_t		 now = time(NULL);
	char		 line[600], when[32];

	if ((c = role_child(PROC_CONTROL)) != NULL) {
		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(line, sizeof(line), "%s %s", when, text);
		if ((b = channel_create(&c->chan, IMSG_CTL_MONITOR, 0,
		    strlen(line) + 8)) == NULL || ibuf_add_str(b, line) == -1)
			ibuf_free(b);
		else
			channel_send(&c->chan, b);
	}
	if ((c = role_child(PROC_STORAGE)) != NULL) {
		if ((b = channel_create(&c->chan, IMSG_PARENT_EVENT, 0,
		    strlen(text) + 96)) == NULL ||
		    ibuf_add_u64(b, (uint64_t)now) == -1 ||
		    ibuf_add_str(b, identity != NULL ? identity : "") == -1 ||
		    ibuf_add_str(b, text) == -1)
			ibuf_free(b);
		else
			channel_send(&c->chan, b);
	}
}

/* An event of no one identity (restarts, reloads, refusals). */
void
parent_monitor(const char *fmt, ...)
{
	char		 line[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	event_send(NULL, line);
}

/* An event of one identity ("" or NULL: not known yet). */
void
parent_event(const char *identity, const char *fmt, ...)
{
	char		 line[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	event_send(identity, line);
}

/* Read a whole file into memory, as root, before anything drops. */
int
read_file(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat	 st;
	uint8_t		*buf;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s: %s", __func__, path);
		return (-1);
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > 1024 * 1024) {
		log_warnx("%s: %s: not a usable file", __func__, path);
		close(fd);
		return (-1);
	}
	if ((buf = malloc(st.st_size)) == NULL)
		fatal("%s", __func__);
	while (off < (size_t)st.st_size) {
		if ((n = read(fd, buf + off, st.st_size - off)) <= 0) {
			log_warn("%s: read %s", __func__, path);
			freezero(buf, st.st_size);
			close(fd);
			return (-1);
		}
		off += n;
	}
	close(fd);
	*bufp = buf;
	*lenp = off;
	return (0);
}

/* Certificate and key for the workers, if any listener wants TLS. */
static int
tls_load(struct bridged_conf *conf, struct tls_material *tls)
{
	struct listen_conf	*l;
	struct tls_material	 new;
	int			 want = 0;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		want |= l->tls;
	memset(&new, 0, sizeof(new));
	if (want) {
		if (read_file(conf->g.tls_cert, &new.cert, &new.certlen) ==
		    -1 || read_file(conf->g.tls_key, &new.key,
		    &new.keylen) == -1) {
			tls_material_wipe(&new);
			return (-1);
		}
		new.loaded = 1;
	}
	/* Every worker shares the ticket key: resumption across them. */
	if (tls->loaded)
		memcpy(new.ticket_key, tls->ticket_key, TLS_TICKET_KEY_LEN);
	else
		arc4random_buf(new.ticket_key, TLS_TICKET_KEY_LEN);
	tls_material_wipe(tls);
	*tls = new;
	return (0);
}

/*
 * Send a worker's (or control's) storage or provider end to that
 * process. Storage is told which channel is control's: only that one
 * may export and purge.
 */
static void
channel_to_role(struct child *role, struct child *w, int fd)
{
	struct ibuf	*b;

	if (role == NULL) {
		close(fd);
		return;
	}
	if (w->id == PROC_CONTROL && role->id == PROC_STORAGE) {
		channel_compose(&role->chan, IMSG_PARENT_CONTROL, 0, fd, NULL,
		    0);
		return;
	}
	if ((b = channel_create(&role->chan, IMSG_PARENT_CHANNEL, 0, 128)) ==
	    NULL || ibuf_add_u32(b, w->wid) == -1 ||
	    ibuf_add_str(b, w->busy ? w->identity : "") == -1)
		fatal("%s", __func__);
	ibuf_fd_set(b, fd);
	channel_send(&role->chan, b);
}

/* A new channel between a worker (or control) and storage or provider. */
static void
wire(struct child *role, struct child *c)
{
	int		 sp[2];
	uint32_t	 type;

	if (role == NULL || c->chan.dead)
		return;
	type = role->id == PROC_STORAGE ? IMSG_PARENT_STORAGE :
	    IMSG_PARENT_PROVIDER;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return;
	}
	channel_to_role(role, c, sp[0]);
	channel_compose(&c->chan, type, 0, sp[1], NULL, 0);
}

/* After storage or provider (re)starts, everyone gets a new line. */
static void
rewire(struct child *role)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER || c->id == PROC_CONTROL)
			wire(role, c);
}

/* Storage and provider get a new channel for jobs whenever one starts. */
static void
wire_jobs(void)
{
	struct child	*storage, *provider;
	int		 sp[2];

	if ((storage = role_child(PROC_STORAGE)) == NULL ||
	    (provider = role_child(PROC_PROVIDER)) == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return;
	}
	channel_compose(&storage->chan, IMSG_PARENT_JOBS, 0, sp[0], NULL, 0);
	channel_compose(&provider->chan, IMSG_PARENT_JOBS, 0, sp[1], NULL, 0);
}

static char *child_env[] = { "PATH=/usr/bin:/bin", NULL };

static void
exec_child(enum proc_id id, int pfd, int sfd, int vfd)
{
	char	*argv[8], role[16];
	int	 argc = 0, i, fds[3], high[3];

	fds[0] = pfd;
	fds[1] = sfd;
	fds[2] = vfd;
	/* Out of the way first, so no dup2 clobbers another source. */
	for (i = 0; i < 3; i++)
		if (fds[i] != -1 &&
		    (high[i] = fcntl(fds[i], F_DUPFD, 16)) == -1)
			_exit(127);
	for (i = 0; i < 3; i++)
		if (fds[i] != -1 && dup2(high[i], FD_PARENT + i) == -1)
			_exit(127);
	closefrom(id == PROC_WORKER ? FD_PROVIDER + 1 : FD_PARENT + 1);
	/* A worker getting ready yields to those serving clients. */
	if (id == PROC_WORKER)
		(void)setpriority(PRIO_PROCESS, 0, WORKER_PREP_NICE);

	argv[argc++] = "bridged";
	if (id != PROC_WORKER) {
		argv[argc++] = "-P";
		strlcpy(role, proc_name(id), sizeof(role));
		argv[argc++] = role;
	}
	if (debug)
		argv[argc++] = "-d";
	for (i = 0; i < verbose && i < 2; i++)
		argv[argc++] = "-v";
	argv[argc] = NULL;
	/* Only the provider may need the environment (api key env). */
	if (id == PROC_PROVIDER)
		execv(self_path, argv);
	else
		execve(id == PROC_WORKER ? worker_path : self_path, argv,
		    child_env);
	fprintf(stderr, "bridged: exec %s: %s\n", id == PROC_WORKER ?
	    worker_path : self_path, strerror(errno));
	_exit(127);
}

static struct child *
child_spawn(enum proc_id id)
{
	struct child	*c;
	int		 sp[2], ssp[2] = { -1, -1 }, psp[2] = { -1, -1 };
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return (NULL);
	}
	if (id == PROC_WORKER &&
	    (socketpair(AF_UNIX, SOCK_STREAM, 0, ssp) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, psp) == -1)) {
		log_warn("%s: socketpair", __func__);
		close(sp[0]);
		close(sp[1]);
		if (ssp[0] != -1) {
			close(ssp[0]);
			close(ssp[1]);
		}
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	switch (pid = fork()) {
	case -1:
		log_warn("%s: fork", __func__);
		free(c);
		close(sp[0]);
		close(sp[1]);
		if (id == PROC_WORKER) {
			close(ssp[0]);
			close(ssp[1]);
			close(psp[0]);
			close(psp[1]);
		}
		return (NULL);
	case 0:
		exec_child(id, sp[1], ssp[1], psp[1]);
		/* NOTREACHED */
	}
	close(sp[1]);
	c->id = id;
	c->pid = pid;
	c->started = ev_now_ms();
	last_spawn[id] = c->started;
	channel_init(&c->chan, sp[0], parent_dispatch_child,
	    parent_child_closed, c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	if (id == PROC_WORKER) {
		c->wid = next_wid++;
		close(ssp[1]);
		close(psp[1]);
		channel_to_role(role_child(PROC_STORAGE), c, ssp[0]);
		channel_to_role(role_child(PROC_PROVIDER), c, psp[0]);
	}
	if (config_send(&c->chan, parent_conf,
	    id == PROC_WORKER ? &tlsm : NULL) == -1)
		fatal("%s: config", __func__);
	if (id == PROC_CONTROL) {
		channel_compose(&c->chan, IMSG_PARENT_CONTROL, 0,
		    dup(ctl_fd), NULL, 0);
		wire(role_child(PROC_STORAGE), c);
		wire(role_child(PROC_PROVIDER), c);
	}
	if (id == PROC_STORAGE || id == PROC_PROVIDER) {
		rewire(c);
		wire_jobs();
	}
	log_debug("%s: %s started, pid %d", __func__, proc_name(id),
	    (int)pid);
	return (c);
}

static int
count_workers(int busy)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->busy == busy && !c->retiring)
			n++;
	return (n);
}

/* Keep `prefork` idle workers, within the total the limits allow. */
void
parent_pool_update(void)
{
	int	 idle, total, cap;

	if (stopping) {
		listen_update(0);
		return;
	}
	idle = count_workers(0);
	total = idle + count_workers(1);
	cap = parent_conf->g.max_clients + 2 * parent_conf->g.prefork;
	/* Workers that die before they are ready: slow down. */
	if (worker_failures > parent_conf->g.prefork) {
		if (!ev_timer_pending(&pool_timer))
			ev_timer_add(&pool_timer, RESTART_DELAY);
	} else {
		while (idle < parent_conf->g.prefork && total < cap) {
			if (child_spawn(PROC_WORKER) == NULL)
				break;
			idle++;
			total++;
		}
	}
	listen_update(parent_idle_worker() != NULL);
}

/* After a pause for workers that died young, try again. */
static void
parent_pool_retry(void *arg)
{
	(void)arg;
	worker_failures = 0;
	parent_pool_update();
}

/* Start what is missing of storage, provider and control. */
static void
parent_roles_update(void *arg)
{
	static const enum proc_id roles[] = {
		PROC_STORAGE, PROC_PROVIDER, PROC_CONTROL
	};
	struct child	*c;
	uint64_t	 now = ev_now_ms();
	size_t		 i;
	int		 late = 0;

	(void)arg;
	if (stopping)
		return;
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
		TAILQ_FOREACH(c, &children, entry)
			if (c->id == roles[i])
				break;
		if (c != NULL)
			continue;
		/* One that keeps dying before it is ready waits a little. */
		if (died_early[roles[i]] > 1 &&
		    now - last_spawn[roles[i]] < RESTART_DELAY) {
			late = 1;
			continue;
		}
		child_spawn(roles[i]);
	}
	if (late && !ev_timer_pending(&restart_timer))
		ev_timer_add(&restart_timer, RESTART_DELAY);
	parent_pool_update();
}

static void
child_gone(struct child *c, int status)
{
	enum proc_id	 id;
	char		 why[64];

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "killed by signal %d%s",
		    WTERMSIG(status), WTERMSIG(status) == SIGSYS ?
		    " (sandbox violation)" : "");
	else
		snprintf(why, sizeof(why), "exited with status %d",
		    WEXITSTATUS(status));
	if (c->id == PROC_WORKER) {
		if (!c->ready)
			worker_failures++;
		if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0 ||
		    !c->ready)
			log_warnx("worker %u (pid %d) %s", c->wid,
			    (int)c->pid, why);
		else
			log_debug("worker %u (pid %d) %s", c->wid,
			    (int)c->pid, why);
		if (c->busy && c->sid != 0)
			parent_event(c->identity, "disconnect session %u",
			    c->sid);
	} else if (!stopping) {
		died_early[c->id] = c->ready ? 0 : died_early[c->id] + 1;
		log_warnx("%s (pid %d) %s; restarting", proc_name(c->id),
		    (int)c->pid, why);
		parent_monitor("restart %s: %s", proc_name(c->id), why);
		stats.restarts++;
	}
	if (!c->chan.dead)
		channel_shutdown(&c->chan);
	TAILQ_REMOVE(&children, c, entry);
	id = c->id;
	free(c);
	if (id == PROC_STORAGE)
		auth_storage_lost();
}

static void
parent_sigchld(int sig, void *arg)
{
	struct child	*c;
	pid_t		 pid;
	int		 status;

	(void)sig;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH(c, &children, entry)
			if (c->pid == pid)
				break;
		if (c != NULL)
			child_gone(c, status);
	}
	if (stopping) {
		if (TAILQ_EMPTY(&children))
			ev_break();
		return;
	}
	parent_roles_update(NULL);
}

/* The channel closed: the process is ending; SIGCHLD does the rest. */
static void
parent_child_closed(struct channel *ch)
{
	struct child	*c = ch->arg;

	if (c->id == PROC_WORKER) {
		c->ready = 0;
		c->busy = 1;	/* never hand it a client again */
	}
}

/* Something wrong came from a child: it goes, and is replaced. */
static void
child_reject(struct child *c, struct imsg *imsg)
{
	log_warnx("%s (pid %d) sent a bad %s; killing it",
	    proc_name(c->id), (int)c->pid, imsg_type_name(imsg->hdr.type));
	kill(c->pid, SIGKILL);
	channel_shutdown(&c->chan);
	parent_child_closed(&c->chan);
}

static void
send_config_all(void)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry) {
		if (c->chan.dead)
			continue;
		if (c->id == PROC_WORKER) {
			/* Idle workers hold the old TLS setup: renew them. */
			if (!c->busy) {
				c->retiring = 1;
				kill(c->pid, SIGTERM);
			}
			continue;
		}
		config_send(&c->chan, parent_conf, NULL);
	}
}

/* SIGHUP: a new configuration, or the running one if it is broken. */
static int
parent_reload(void)
{
	struct bridged_conf	*new;
	struct tls_material	 tls;

	log_info("reloading %s", conffile);
	if ((new = parse_config(conffile)) == NULL ||
	    check_config(new, conffile, CHECK_RELOAD) == -1) {
		log_warnx("reload failed: keeping the running configuration");
		config_free(new);
		return (-1);
	}
	memset(&tls, 0, sizeof(tls));
	tls = tlsm;
	tls.cert = NULL;
	tls.key = NULL;
	if (tls_load(new, &tls) == -1 || (new->g.identity == IDENTITY_TOKEN &&
	    auth_load(new->g.tokens) == -1)) {
		log_warnx("reload failed: TLS or token files; keeping the "
		    "running configuration");
		tls_material_wipe(&tls);
		config_free(new);
		return (-1);
	}
	tls_material_wipe(&tlsm);
	tlsm = tls;
	if (strcmp(new->g.database, parent_conf->g.database) != 0 ||
	    strcmp(new->g.socket, parent_conf->g.socket) != 0 ||
	    strcmp(new->g.user, parent_conf->g.user) != 0 ||
	    strcmp(new->g.chroot, parent_conf->g.chroot) != 0)
		log_warnx("reload: database, socket, user and chroot "
		    "changes take effect at the next start");
	listen_keep(parent_conf, new);
	new->g.verbose = parent_conf->g.verbose;
	config_free(parent_conf);
	parent_conf = new;
	send_config_all();
	parent_pool_update();
	parent_monitor("reload %s", conffile);
	log_info("configuration reloaded");
	return (0);
}

static void
parent_sighup(int sig, void *arg)
{
	(void)sig;
	(void)arg;
	parent_reload();
}

static void
parent_kill_all(void *arg)
{
	struct child	*c;

	(void)arg;
	TAILQ_FOREACH(c, &children, entry)
		kill(c->pid, SIGKILL);
}

static void
parent_sigterm(int sig, void *arg)
{
	struct child	*c;

	(void)arg;
	if (stopping)
		return;
	log_info("received signal %d, stopping", sig);
	stopping = 1;
	listen_update(0);
	TAILQ_FOREACH(c, &children, entry)
		kill(c->pid, SIGTERM);
	ev_timer_set(&stop_timer, parent_kill_all, NULL);
	ev_timer_add(&stop_timer, STOP_GRACE);
	if (TAILQ_EMPTY(&children))
		ev_break();
}

static void
set_verbose(int v)
{
	struct child	*c;
	uint32_t	 level = v;

	log_setverbose(v);
	parent_conf->g.verbose = v;
	verbose = v;
	TAILQ_FOREACH(c, &children, entry)
		channel_compose(&c->chan, IMSG_CTL_VERBOSE, 0, -1, &level,
		    sizeof(level));
}

static void
ctl_line(struct child *ctl, uint32_t peer, uint32_t type, const char *fmt,
    ...)
{
	struct ibuf	*b;
	char		 line[1024];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((b = channel_create(&ctl->chan, type, peer, strlen(line) + 8)) ==
	    NULL || ibuf_add_str(b, line) == -1)
		fatal("%s", __func__);
	channel_send(&ctl->chan, b);
}

static void
ctl_status(struct child *ctl, uint32_t peer)
{
	struct child	*c;
	time_t		 up = time(NULL) - started;

	ctl_line(ctl, peer, IMSG_CTL_DATA, "version: %s", BRIDGE_VERSION);
	ctl_line(ctl, peer, IMSG_CTL_DATA, "uptime: %lld",
	    (long long)up);
	ctl_line(ctl, peer, IMSG_CTL_DATA, "process: parent %d",
	    (int)getpid());
	TAILQ_FOREACH(c, &children, entry) {
		if (c->id == PROC_WORKER)
			ctl_line(ctl, peer, IMSG_CTL_DATA,
			    "process: worker %d %s", (int)c->pid,
			    !c->ready ? "starting" : c->retiring ? "stopping" :
			    c->busy ? "busy" : "idle");
		else
			ctl_line(ctl, peer, IMSG_CTL_DATA, "process: %s %d%s",
			    proc_name(c->id), (int)c->pid, c->ready ? "" :
			    " starting");
	}
	ctl_line(ctl, peer, IMSG_CTL_DATA, "workers: %d idle, %d busy",
	    count_workers(0), count_workers(1));
	ctl_line(ctl, peer, IMSG_CTL_DATA, "clients: max %d",
	    parent_conf->g.max_clients);
	ctl_line(ctl, peer, IMSG_CTL_DATA, "accepted: %llu",
	    (unsigned long long)stats.accepted);
	ctl_line(ctl, peer, IMSG_CTL_DATA, "refused: %llu",
	    (unsigned long long)stats.refused);
	ctl_line(ctl, peer, IMSG_CTL_DATA, "restarts: %llu",
	    (unsigned long long)stats.restarts);
	ctl_line(ctl, peer, IMSG_CTL_END, "%s", "");
}

static void
ctl_sessions(struct child *ctl, uint32_t peer)
{
	struct child	*c;
	struct tm	 tm;
	char		 since[32];

	TAILQ_FOREACH(c, &children, entry) {
		if (c->id != PROC_WORKER || !c->busy || c->sid == 0)
			continue;
		gmtime_r(&c->since, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		ctl_line(ctl, peer, IMSG_CTL_DATA,
		    "%u %s %.12s %s %s %u %llu %llu", c->sid, c->addr,
		    c->identity[0] != '\0' ? c->identity : "-",
		    c->model[0] != '\0' ? c->model : "-", since,
		    c->messages, (unsigned long long)c->bytes_in,
		    (unsigned long long)c->bytes_out);
	}
	ctl_line(ctl, peer, IMSG_CTL_END, "%s", "");
}

static void
ctl_kill(struct child *ctl, uint32_t peer, uint32_t sid)
{
	struct child	*c;
	struct ibuf	*b;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->busy && c->sid == sid &&
		    !c->chan.dead)
			break;
	if (c == NULL) {
		ctl_line(ctl, peer, IMSG_CTL_FAIL, "no session %u", sid);
		return;
	}
	if ((b = channel_create(&c->chan, IMSG_PARENT_KILL, 0, 64)) ==
	    NULL || ibuf_add_str(b, "session ended by the operator") == -1)
		fatal("%s", __func__);
	channel_send(&c->chan, b);
	parent_event(c->identity, "kill session %u", sid);
	ctl_line(ctl, peer, IMSG_CTL_END, "session %u ended", sid);
}

/*
 * End every session of an identity (a revoked token, a purge) with
 * BYE and the reason; nothing is answered.
 */
static int
ctl_end_sessions(struct imsg *imsg)
{
	struct ireader	 ir;
	struct child	*c;
	struct ibuf	*b;
	const char	*identity, *reason;

	ir_init(&ir, imsg);
	identity = ir_str(&ir);
	reason = ir_str(&ir);
	if (ir_end(&ir) == -1 || strlen(identity) != IDENTITY_LEN ||
	    strspn(identity, "0123456789abcdef") != IDENTITY_LEN ||
	    strlen(reason) > 128 || !utf8_valid(reason, strlen(reason)))
		return (-1);
	TAILQ_FOREACH(c, &children, entry) {
		if (c->id != PROC_WORKER || !c->busy || c->chan.dead ||
		    strcmp(c->identity, identity) != 0)
			continue;
		if ((b = channel_create(&c->chan, IMSG_PARENT_KILL, 0,
		    strlen(reason) + 8)) == NULL ||
		    ibuf_add_str(b, reason) == -1)
			fatal("%s", __func__);
		channel_send(&c->chan, b);
		parent_event(c->identity, "end session %u: %s", c->sid,
		    reason);
	}
	return (0);
}

/* One line of show metrics, to the control client that asked. */
static void
metrics_line(void *arg, const char *line)
{
	uint32_t	*peer = arg;
	struct child	*ctl;

	if ((ctl = role_child(PROC_CONTROL)) != NULL)
		ctl_line(ctl, *peer, IMSG_CTL_DATA, "%s", line);
}

/* show metrics: the counters, and the gauges as they are now. */
static void
ctl_metrics(struct child *ctl, uint32_t peer)
{
	struct metrics_gauges	 g;
	struct child		*c;

	memset(&g, 0, sizeof(g));
	TAILQ_FOREACH(c, &children, entry) {
		if (c->id != PROC_WORKER)
			continue;
		if (c->busy && c->sid != 0 && !c->chan.dead)
			g.sessions++;
		else if (c->ready && !c->busy && !c->retiring)
			g.idle_workers++;
	}
	metrics_write(&g, metrics_line, &peer);
	ctl_line(ctl, peer, IMSG_CTL_END, "%s", "");
}

/* A request from bridgectl, validated by control, checked again here. */
static int
parent_dispatch_control(struct child *c, struct imsg *imsg)
{
	uint32_t	 peer = imsg->hdr.peerid, v;
	size_t		 i;

	switch (imsg->hdr.type) {
	case IMSG_CTL_STATUS:
		if (imsg->datalen != 0)
			return (-1);
		ctl_status(c, peer);
		return (0);
	case IMSG_CTL_SESSIONS:
		if (imsg->datalen != 0)
			return (-1);
		ctl_sessions(c, peer);
		return (0);
	case IMSG_CTL_KILL:
		if (imsg->datalen != sizeof(v))
			return (-1);
		memcpy(&v, imsg->data, sizeof(v));
		ctl_kill(c, peer, v);
		return (0);
	case IMSG_CTL_RELOAD:
		if (imsg->datalen != 0)
			return (-1);
		if (parent_reload() == -1) {
			/* What is wrong, file:line, for bridgectl to print. */
			for (i = 0; i < conf_errors_count(); i++)
				ctl_line(c, peer, IMSG_CTL_DATA, "%s",
				    conf_errors_get(i));
			ctl_line(c, peer, IMSG_CTL_FAIL, "reload failed: "
			    "the running configuration is kept");
		} else
			ctl_line(c, peer, IMSG_CTL_END, "reloaded");
		return (0);
	case IMSG_CTL_LOG:
		if (imsg->datalen != sizeof(v))
			return (-1);
		memcpy(&v, imsg->data, sizeof(v));
		set_verbose(v ? 2 : 0);
		ctl_line(c, peer, IMSG_CTL_END, "logging %s",
		    v ? "verbose" : "brief");
		return (0);
	case IMSG_CTL_METRICS:
		if (imsg->datalen != 0)
			return (-1);
		ctl_metrics(c, peer);
		return (0);
	case IMSG_CTL_END_SESSIONS:
		return (ctl_end_sessions(imsg));
	}
	return (-1);
}

/* What a worker tells about its session, for show sessions/monitor. */
static int
parent_dispatch_worker(struct child *c, struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*s;
	char		*esc;

	ir_init(&ir, imsg);
	switch (imsg->hdr.type) {
	case IMSG_WORKER_AUTH:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1 || c->identity[0] != '\0' ||
		    c->auth_pending ||
		    parent_conf->g.identity != IDENTITY_TOKEN ||
		    strlen(s) == 0 || strlen(s) > 1024)
			return (-1);
		auth_check(c, s);
		return (0);
	case IMSG_WORKER_IDENTITY:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1 || c->identity[0] != '\0' ||
		    parent_conf->g.identity != IDENTITY_CERTIFICATE ||
		    strlen(s) != IDENTITY_LEN ||
		    strspn(s, "0123456789abcdef") != IDENTITY_LEN)
			return (-1);
		strlcpy(c->identity, s, sizeof(c->identity));
		storage_session(c);
		return (0);
	case IMSG_WORKER_STATE:
		s = ir_str(&ir);
		c->messages = ir_u32(&ir);
		c->bytes_in = ir_u64(&ir);
		c->bytes_out = ir_u64(&ir);
		c->mode = ir_u32(&ir);
		/* It reaches operators' terminals: names only, no controls. */
		if (ir_end(&ir) == -1 || strlen(s) >= sizeof(c->model) ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
		    "WXYZ0123456789._-/:@") != strlen(s))
			return (-1);
		strlcpy(c->model, s, sizeof(c->model));
		return (0);
	case IMSG_WORKER_EVENT:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			return (-1);
		if ((esc = str_escape(s, strlen(s))) == NULL)
			return (0);
		parent_event(c->identity, "session %u: %s", c->sid, esc);
		free(esc);
		return (0);
	case IMSG_WORKER_METRIC:
		return (metrics_generation(imsg));
	}
	return (-1);
}

/* What storage tells: a token it checked, jobs for monitor. */
static int
parent_dispatch_storage(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*s;
	char		*esc;

	if (imsg->hdr.type == IMSG_STORAGE_TOKEN)
		return (auth_storage(imsg));
	if (imsg->hdr.type != IMSG_STORAGE_EVENT)
		return (-1);
	ir_init(&ir, imsg);
	s = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return (-1);
	if ((esc = str_escape(s, strlen(s))) == NULL)
		return (0);
	parent_monitor("%s", esc);
	free(esc);
	return (0);
}

static void
parent_dispatch_child(struct channel *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;
	struct ireader	 ir;
	const char	*line;
	char		*esc;
	uint32_t	 pri;
	int		 r = -1;

	switch (imsg->hdr.type) {
	case IMSG_CHILD_LOG:
		ir_init(&ir, imsg);
		pri = ir_u32(&ir);
		line = ir_str(&ir);
		if (ir_end(&ir) == -1 || pri > LOG_DEBUG)
			break;
		if ((esc = str_escape(line, strlen(line))) != NULL) {
			syslog(pri, "%s[%d]: %s", proc_name(c->id),
			    (int)c->pid, esc);
			free(esc);
		}
		r = 0;
		break;
	case IMSG_CHILD_READY:
		if (imsg->datalen != 0 || c->ready)
			break;
		c->ready = 1;
		if (c->id == PROC_WORKER)
			worker_failures = 0;
		log_debug("%s (pid %d) ready", proc_name(c->id), (int)c->pid);
		parent_pool_update();
		r = 0;
		break;
	default:
		if (c->id == PROC_CONTROL)
			r = parent_dispatch_control(c, imsg);
		else if (c->id == PROC_WORKER && c->busy)
			r = parent_dispatch_worker(c, imsg);
		else if (c->id == PROC_STORAGE)
			r = parent_dispatch_storage(imsg);
		break;
	}
	if (r == -1)
		child_reject(c, imsg);
}

/* Where bridged-worker is: beside this program, else LIBEXECDIR. */
static void
find_programs(const char *argv0)
{
	char	*slash;

	if (realpath("/proc/self/exe", self_path) == NULL &&
	    realpath(argv0, self_path) == NULL)
		fatal("cannot find my own program (%s)", argv0);
	strlcpy(worker_path, self_path, sizeof(worker_path));
	if ((slash = strrchr(worker_path, '/')) != NULL)
		slash[1] = '\0';
	strlcat(worker_path, "bridged-worker", sizeof(worker_path));
	if (access(worker_path, X_OK) == -1 &&
	    snprintf(worker_path, sizeof(worker_path), "%s/bridged-worker",
	    LIBEXECDIR) < 0)
		fatalx("worker path");
	if (access(worker_path, X_OK) == -1)
		fatal("%s", worker_path);
}

void
parent_main(struct bridged_conf *conf, const char *file, const char *argv0,
    int dflag, int vflag)
{
	struct passwd	*pw = NULL;
	uid_t		 uid = 0;
	gid_t		 gid = 0;

	parent_conf = conf;
	conffile = file;
	debug = dflag;
	verbose = vflag;
	started = time(NULL);
	find_programs(argv0);

	if (geteuid() == 0) {
		if ((pw = getpwnam(conf->g.user)) == NULL)
			fatalx("user %s does not exist: create it or change "
			    "`user' in %s", conf->g.user, conffile);
		gid = pw->pw_gid;
	} else
		log_warnx("not running as root: user and chroot are not "
		    "applied, the processes are confined by their syscall "
		    "filters alone");

	if (tls_load(conf, &tlsm) == -1)
		fatalx("cannot load the TLS certificate and key");
	if (conf->g.identity == IDENTITY_TOKEN &&
	    auth_load(conf->g.tokens) == -1)
		fatalx("cannot load the tokens of `identity token'");
	if (listen_open(conf) == -1)
		fatalx("cannot listen");
	if ((ctl_fd = control_socket_open(conf->g.socket, uid, gid)) == -1)
		fatalx("cannot open the control socket %s", conf->g.socket);

	log_init(debug, LOG_DAEMON);
	log_setverbose(verbose);
	if (!debug && daemon(1, 0) == -1)
		fatal("daemon");
	log_procinit("parent");
	setproctitle("parent");
	log_info("bridged %s starting", BRIDGE_VERSION);

	ev_init();
	signal(SIGPIPE, SIG_IGN);
	ev_signal(SIGCHLD, parent_sigchld, NULL);
	ev_signal(SIGHUP, parent_sighup, NULL);
	ev_signal(SIGTERM, parent_sigterm, NULL);
	ev_signal(SIGINT, parent_sigterm, NULL);
	ev_timer_set(&restart_timer, parent_roles_update, NULL);
	ev_timer_set(&pool_timer, parent_pool_retry, NULL);
	if (sandbox_enter(SANDBOX_PARENT, NULL) == -1)
		fatalx("cannot sandbox the parent");

	parent_roles_update(NULL);
	ev_loop();

	unlink(parent_conf->g.socket);
	tls_material_wipe(&tlsm);
	log_info("bridged stopped");
	exit(0);
}
