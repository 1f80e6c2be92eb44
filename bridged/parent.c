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
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <netinet/in.h>

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

#define RESTART_DELAY	1000	/* ms, the first pause for one that keeps dying */
#define RESTART_MAX	30000	/* ms, the longest pause */
#define STOP_GRACE	1500	/* ms, then SIGKILL */

/* Restarts: how many, of which role, and why the last one came. */
struct parent_stats {
	uint64_t		 accepted;
	uint64_t		 refused;
	uint64_t		 restarts;
	char			 last_restart[256];
};

/* A role that keeps dying before it is ready waits longer each time. */
struct backoff {
	int			 failures;	/* in a row */
	uint64_t		 not_before;	/* ms */
};

static const char	*conffile;
static char		 self_path[PATH_MAX];
static char		 worker_path[PATH_MAX];
static int		 debug, verbose;
static struct tls_material tlsm;
static int		 ctl_fd = -1;
static time_t		 started;
static int		 stopping;
static uint32_t		 next_wid = 1;
static uint32_t		 next_gen = 1;
static struct ev_timer	 restart_timer, stop_timer, refill_timer;
static struct backoff	 backoff[PROC_MAX];
static struct parent_stats stats;

static int	parent_dispatch_control(struct child *, struct imsg *);
static int	parent_dispatch_storage(struct child *, struct imsg *);
static int	parent_dispatch_provider(struct child *, struct imsg *);
static struct child *worker_by_wid(uint32_t, uint32_t);
static int	parent_dispatch_worker(struct child *, struct imsg *);
static int	parent_dispatch_template(struct child *, struct imsg *);
static void	parent_dispatch_child(struct channel *, struct imsg *);
static void	parent_child_closed(struct channel *);
static void	child_reject(struct child *, const struct imsg *,
		    const char *);
static void	parent_roles_update(void *);
static void	template_retire(struct child *, const char *);
static void	child_last_words(struct child *);

/*
 * The topology. Besides its channel to the parent, a process talks to
 * the peers this table gives it: for each pair the parent makes a
 * socketpair and sends one end to `from` (IMSG_PARENT_STORAGE or
 * IMSG_PARENT_PROVIDER) and the other to `to` (IMSG_PARENT_CHANNEL,
 * naming the worker; IMSG_PARENT_CONTROL for control's channel to
 * storage, the only one that may export and purge; IMSG_PARENT_JOBS to
 * both ends of the provider's channel to storage, for batch jobs). A
 * pair is wired again whenever either end is new.
 */
static const struct link {
	enum proc_id	 from;
	enum proc_id	 to;
} links[] = {
	{ PROC_CONTROL,	PROC_STORAGE },
	{ PROC_CONTROL,	PROC_PROVIDER },
	{ PROC_WORKER,	PROC_STORAGE },
	{ PROC_WORKER,	PROC_PROVIDER },
	{ PROC_PROVIDER, PROC_STORAGE },
};

/* What each role may send the parent beyond logging and readiness. */
static int (*const role_dispatch[PROC_MAX])(struct child *,
    struct imsg *) = {
	[PROC_CONTROL] = parent_dispatch_control,
	[PROC_STORAGE] = parent_dispatch_storage,
	[PROC_PROVIDER] = parent_dispatch_provider,
	[PROC_WORKER] = parent_dispatch_worker,
	[PROC_TEMPLATE] = parent_dispatch_template,
};

/* The roles of which one always runs, in the order they start. */
static const enum proc_id singletons[] = {
	PROC_STORAGE, PROC_PROVIDER, PROC_CONTROL, PROC_TEMPLATE
};

/* Signal a process of ours; one whose pid is not known yet is not. */
static void
child_kill(struct child *c, int sig)
{
	if (c->pid > 0)
		kill(c->pid, sig);
}

/* An idle worker of the current template, or NULL. */
struct child *
parent_idle_worker(void)
{
	struct child	*c, *t;

	if (stopping || (t = role_child(PROC_TEMPLATE)) == NULL)
		return (NULL);
	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->gen == t->gen && c->ready &&
		    !c->busy && !c->retiring && !c->chan.dead)
			return (c);
	return (NULL);
}

/* Certificate and key for the template, if any listener wants TLS. */
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

/* One pair of the topology: a socketpair, one end to each. */
static void
wire_pair(struct child *from, struct child *to)
{
	struct ibuf	*b;
	int		 sp[2];

	if (from == NULL || to == NULL || from->chan.dead || to->chan.dead)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return;
	}
	if (from->id == PROC_PROVIDER) {
		channel_compose(&to->chan, IMSG_PARENT_JOBS, 0, sp[0], NULL,
		    0);
		channel_compose(&from->chan, IMSG_PARENT_JOBS, 0, sp[1], NULL,
		    0);
		return;
	}
	if (from->id == PROC_CONTROL && to->id == PROC_STORAGE)
		channel_compose(&to->chan, IMSG_PARENT_CONTROL, 0, sp[0],
		    NULL, 0);
	else {
		if ((b = channel_create(&to->chan, IMSG_PARENT_CHANNEL, 0,
		    128)) == NULL || ibuf_add_u32(b, from->wid) == -1 ||
		    ibuf_add_str(b, from->busy ? from->identity : "") == -1)
			fatal("%s", __func__);
		ibuf_fd_set(b, sp[0]);
		channel_send(&to->chan, b);
	}
	channel_compose(&from->chan, to->id == PROC_STORAGE ?
	    IMSG_PARENT_STORAGE : IMSG_PARENT_PROVIDER, 0, sp[1], NULL, 0);
}

/* A new process gets every channel the topology gives its role. */
static void
wire(struct child *c)
{
	struct child	*o;
	size_t		 i;

	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		if (links[i].from == c->id)
			wire_pair(c, role_child(links[i].to));
		if (links[i].to == c->id)
			TAILQ_FOREACH(o, &children, entry)
				if (o->id == links[i].from)
					wire_pair(o, c);
	}
}

static char *child_env[] = { "PATH=/usr/bin:/bin", NULL };
/*
 * The template binds every symbol of every library at its start: else
 * each worker would resolve, on its first call of each function, and
 * write the result into pages it shares with the template.
 */
static char *template_env[] = { "PATH=/usr/bin:/bin", "LD_BIND_NOW=1",
	NULL };

/* In the forked child: the channel on FD_PARENT, and the program. */
static void
exec_child(enum proc_id id, int pfd)
{
	char		*argv[8], role[16];
	const char	*path;
	int		 argc = 0, i;

	if (pfd != FD_PARENT) {
		if (dup2(pfd, FD_PARENT) == -1)
			_exit(127);
	} else if (fcntl(pfd, F_SETFD, 0) == -1)
		_exit(127);
	closefrom(FD_PARENT + 1);
	/* A template getting ready yields to the workers serving clients. */
	if (id == PROC_TEMPLATE)
		(void)setpriority(PRIO_PROCESS, 0, WORKER_PREP_NICE);

	argv[argc++] = "bridged";
	if (id != PROC_TEMPLATE) {
		argv[argc++] = "-P";
		strlcpy(role, proc_name(id), sizeof(role));
		argv[argc++] = role;
	}
	if (debug)
		argv[argc++] = "-d";
	for (i = 0; i < verbose && i < 2; i++)
		argv[argc++] = "-v";
	argv[argc] = NULL;
	path = id == PROC_TEMPLATE ? worker_path : self_path;
	/* Only the provider may need the environment (api key env). */
	if (id == PROC_PROVIDER)
		execv(path, argv);
	else
		execve(path, argv, id == PROC_TEMPLATE ? template_env :
		    child_env);
	fprintf(stderr, "bridged: exec %s: %s\n", path, strerror(errno));
	_exit(127);
}

/*
 * In a child just forked with every signal blocked: what the parent
 * catches goes back to its default before the mask does, so that a
 * SIGTERM sent before the exec ends it instead of running the parent's
 * handler (which would only wake the parent's loop, and the child
 * would never hear of it).
 */
static void
child_signals(const sigset_t *old)
{
	struct sigaction	 sa;
	int			 sig;

	for (sig = 1; sig < NSIG; sig++) {
		if (sigaction(sig, NULL, &sa) == -1 ||
		    sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
			continue;
		sa.sa_handler = SIG_DFL;
		sa.sa_flags = 0;
		(void)sigaction(sig, &sa, NULL);
	}
	sigprocmask(SIG_SETMASK, old, NULL);
}

/*
 * The contents of `database password file', read as root now (it may
 * have changed since the last start of storage): its first line, or
 * NULL (logged). Never on a command line, never logged.
 */
char *
parent_db_password(const char *path)
{
	char	 buf[1024], *pw;
	ssize_t	 n;
	size_t	 len;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_warn("database password file %s", path);
		return (NULL);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		log_warnx("database password file %s: %s", path,
		    n == 0 ? "empty" : strerror(errno));
		return (NULL);
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	pw = len > 0 && strlen(buf) == len ? strdup(buf) : NULL;
	if (pw == NULL)
		log_warnx("database password file %s: no password on its "
		    "first line", path);
	explicit_bzero(buf, sizeof(buf));
	return (pw);
}

/*
 * Storage's configuration, with the database password when there is
 * a file for it; without the file's password storage cannot connect,
 * and starts again after the back-off (the file may be fixed).
 */
static void
storage_config(struct child *c)
{
	const char	*path = parent_conf->g.db_password_file;
	char		*pw = NULL;

	if (path[0] != '\0' && (pw = parent_db_password(path)) == NULL)
		log_warnx("storage: no database password");
	if (config_send(&c->chan, parent_conf, NULL, pw) == -1)
		fatal("%s: config", __func__);
	if (pw != NULL)
		freezero(pw, strlen(pw));
}

/* Fork and execute one process of a role that is not a worker. */
static struct child *
child_spawn(enum proc_id id)
{
	struct child	*c;
	sigset_t	 all, old;
	int		 sp[2];
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	switch (pid = fork()) {
	case -1:
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_warn("%s: fork", __func__);
		free(c);
		close(sp[0]);
		close(sp[1]);
		return (NULL);
	case 0:
		child_signals(&old);
		close(sp[0]);
		exec_child(id, sp[1]);
		/* NOTREACHED */
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(sp[1]);
	c->id = id;
	c->pid = pid;
	c->started = ev_now_ms();
	if (id == PROC_TEMPLATE)
		c->gen = next_gen++;
	channel_init(&c->chan, sp[0], parent_dispatch_child,
	    parent_child_closed, c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	if (id == PROC_STORAGE)
		storage_config(c);
	else if (config_send(&c->chan, parent_conf,
	    id == PROC_TEMPLATE ? &tlsm : NULL, NULL) == -1)
		fatal("%s: config", __func__);
	if (id == PROC_CONTROL)
		channel_compose(&c->chan, IMSG_PARENT_CONTROL_SOCKET, 0,
		    dup(ctl_fd), NULL, 0);
	wire(c);
	log_debug("%s: %s started, pid %d", __func__, proc_name(id),
	    (int)pid);
	return (c);
}

/*
 * A worker: the template forks it with the channel the parent made;
 * its channels to storage and provider go to it on that channel
 * directly, queued before it even exists.
 */
static struct child *
worker_fork(struct child *t)
{
	struct child	*c;
	struct ibuf	*b;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		log_warn("%s: socketpair", __func__);
		return (NULL);
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->id = PROC_WORKER;
	c->wid = next_wid++;
	c->gen = t->gen;
	c->started = ev_now_ms();
	channel_init(&c->chan, sp[0], parent_dispatch_child,
	    parent_child_closed, c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	if ((b = channel_create(&t->chan, IMSG_PARENT_FORK, 0, 8)) == NULL ||
	    ibuf_add_u32(b, c->wid) == -1)
		fatal("%s", __func__);
	ibuf_fd_set(b, sp[1]);
	channel_send(&t->chan, b);
	wire(c);
	if (peers_monitored())
		worker_monitored(c);
	return (c);
}

/* Busy workers, or idle ones of the current template. */
static int
count_workers(int busy)
{
	struct child	*c, *t;
	int		 n = 0;

	t = role_child(PROC_TEMPLATE);
	TAILQ_FOREACH(c, &children, entry) {
		if (c->id != PROC_WORKER || c->retiring || c->busy != busy)
			continue;
		/* Idle ones count only if the current template made them. */
		if (busy || (t != NULL && c->gen == t->gen))
			n++;
	}
	return (n);
}

/* Keep `prefork` idle workers, within the total the limits allow. */
void
parent_pool_update(void)
{
	struct child	*t;
	int		 idle, total, cap;

	if (stopping) {
		listen_update(0);
		return;
	}
	idle = count_workers(0);
	total = idle + count_workers(1);
	cap = parent_conf->g.max_clients + 2 * parent_conf->g.prefork;
	t = role_child(PROC_TEMPLATE);
	if (t != NULL && t->ready &&
	    ev_now_ms() >= backoff[PROC_WORKER].not_before) {
		while (idle < parent_conf->g.prefork && total < cap) {
			if (worker_fork(t) == NULL)
				break;
			idle++;
			total++;
		}
	} else if (t != NULL && t->ready &&
	    !ev_timer_pending(&restart_timer))
		ev_timer_add(&restart_timer,
		    backoff[PROC_WORKER].not_before - ev_now_ms());
	listen_update(parent_idle_worker() != NULL);
}

/* The address as text, without the IPv4-in-IPv6 dress. */
static void
addr_text(struct sockaddr_storage *ss, char *buf, size_t len,
    in_port_t *port)
{
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in	 sin;

	if (ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = sin6->sin6_port;
		memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
		memcpy(ss, &sin, sizeof(sin));
	}
	if (getnameinfo((struct sockaddr *)ss, ss->ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6),
	    buf, len, NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy(buf, "unknown", len);
	*port = ntohs(ss->ss_family == AF_INET ?
	    ((struct sockaddr_in *)ss)->sin_port :
	    ((struct sockaddr_in6 *)ss)->sin6_port);
}

/* Give the connection to an idle worker, to serve or to refuse. */
static void
handoff(struct child *w, struct listen_conf *l, int fd,
    struct sockaddr_storage *ss, const char *refuse)
{
	static uint32_t		 next_sid = 1;
	struct sockaddr_storage	 lss;
	socklen_t		 lsslen = sizeof(lss);
	char			 laddr[NI_MAXHOST];
	in_port_t		 lport;
	struct ibuf		*b;

	addr_text(ss, w->addr, sizeof(w->addr), &w->port);
	if (getsockname(fd, (struct sockaddr *)&lss, &lsslen) == -1)
		memcpy(&lss, &l->ss, sizeof(lss));
	addr_text(&lss, laddr, sizeof(laddr), &lport);
	w->sid = next_sid++;
	w->since = time(NULL);
	w->busy = 1;

	/*
	 * The address is the identity, unless a certificate (on TLS) or a
	 * token says later; storage learns it before the worker can ask.
	 */
	w->identity[0] = '\0';
	if (parent_conf->g.identity == IDENTITY_IP ||
	    (parent_conf->g.identity == IDENTITY_CERTIFICATE && !l->tls))
		sha256_hex(w->addr, strlen(w->addr), w->identity);
	if (refuse == NULL && w->identity[0] != '\0')
		storage_session(w);
	if ((b = channel_create(&w->chan, IMSG_PARENT_CLIENT, 0, 512)) ==
	    NULL || ibuf_add_u32(b, w->sid) == -1 ||
	    ibuf_add_str(b, w->addr) == -1 ||
	    ibuf_add_u32(b, w->port) == -1 ||
	    ibuf_add_str(b, laddr) == -1 ||
	    ibuf_add_u32(b, lport) == -1 ||
	    ibuf_add_str(b, w->identity) == -1 ||
	    ibuf_add_u64(b, (uint64_t)w->since) == -1 ||
	    ibuf_add_str(b, refuse != NULL ? refuse : "") == -1 ||
	    ibuf_add_u32(b, l->tls) == -1)
		fatal("%s", __func__);
	ibuf_fd_set(b, fd);
	channel_send(&w->chan, b);
	/* The client waits on this: send it now, not after the next poll. */
	if (imsg_write(&w->chan.ibuf) == -1)
		log_warn("%s: worker %u", __func__, w->wid);
	metrics_connection(refuse == NULL);
	if (refuse != NULL) {
		stats.refused++;
		parent_monitor("refuse %s port %u: %s", w->addr, w->port,
		    refuse);
	} else {
		stats.accepted++;
		parent_event(w->identity, "connect session %u from %s port %u",
		    w->sid, w->addr, w->port);
	}
}

/* Clients being served, by workers of any template. */
static int
busy_clients(void)
{
	struct child	*c;
	int		 n = 0;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->busy)
			n++;
	return (n);
}

/*
 * A connection from listen.c. It goes to an idle worker of the current
 * template; after `worker renew` clients that template is replaced.
 * 1 while another connection can be taken.
 */
static int
parent_accept(struct listen_conf *l, int fd, struct sockaddr_storage *ss)
{
	struct child	*w, *t;
	char		 why[64];

	if ((w = parent_idle_worker()) == NULL ||
	    (t = role_child(PROC_TEMPLATE)) == NULL) {
		close(fd);	/* cannot be: listening is off then */
		return (0);
	}
	if (busy_clients() >= parent_conf->g.max_clients)
		handoff(w, l, fd, ss, "too many clients");
	else
		handoff(w, l, fd, ss, NULL);
	if (++t->served >= (uint32_t)parent_conf->g.worker_renew) {
		snprintf(why, sizeof(why), "renewed after %u clients",
		    t->served);
		template_retire(t, why);
		parent_roles_update(NULL);
	} else if (parent_idle_worker() != NULL) {
		/*
		 * A fork and a new worker's rehearsal now would take the
		 * CPU the client's handshake needs: the pool refills once
		 * the worker says the session began (its first state), or
		 * after PARENT_REFILL_WAIT, unless no worker is left idle.
		 */
		if (!ev_timer_pending(&refill_timer))
			ev_timer_add(&refill_timer, PARENT_REFILL_WAIT);
	} else
		parent_pool_update();
	return (parent_idle_worker() != NULL);
}

/* After a handshake: the pool refills (refill_timer, or a state). */
static void
parent_refill(void *arg)
{
	(void)arg;
	ev_timer_del(&refill_timer);
	parent_pool_update();
}

/* Start what is missing of storage, provider, control and template. */
static void
parent_roles_update(void *arg)
{
	uint64_t	 now = ev_now_ms(), wait = 0;
	size_t		 i;
	enum proc_id	 id;

	(void)arg;
	if (stopping)
		return;
	for (i = 0; i < sizeof(singletons) / sizeof(singletons[0]); i++) {
		id = singletons[i];
		if (role_child(id) != NULL)
			continue;
		/* One that keeps dying before it is ready waits a little. */
		if (now < backoff[id].not_before) {
			if (wait == 0 || backoff[id].not_before - now < wait)
				wait = backoff[id].not_before - now;
			continue;
		}
		child_spawn(id);
	}
	if (wait > 0 && !ev_timer_pending(&restart_timer))
		ev_timer_add(&restart_timer, wait);
	parent_pool_update();
}

/* The next pause of a role whose process died before it was ready. */
static void
backoff_fail(enum proc_id id)
{
	struct backoff	*b = &backoff[id];
	uint64_t	 delay;

	b->failures++;
	if (b->failures < 2)
		return;		/* once may be bad luck */
	delay = RESTART_DELAY;
	for (int i = 2; i < b->failures && delay < RESTART_MAX; i++)
		delay *= 2;
	if (delay > RESTART_MAX)
		delay = RESTART_MAX;
	b->not_before = ev_now_ms() + delay;
	log_warnx("%s died %d times in a row before it was ready; next try "
	    "in %llu ms", proc_name(id), b->failures,
	    (unsigned long long)delay);
}

/* How a process ended, in words. */
static void
wait_reason(int status, char *why, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(why, len, "killed by signal %d%s",
		    WTERMSIG(status), WTERMSIG(status) == SIGSYS ?
		    " (sandbox violation)" : "");
	else if (WIFEXITED(status))
		snprintf(why, len, "exited with status %d",
		    WEXITSTATUS(status));
	else
		snprintf(why, len, "ended");
}

/* Count a restart and keep why, for `bridgectl show status`. */
static void
restart_counted(struct child *c, const char *why)
{
	stats.restarts++;
	snprintf(stats.last_restart, sizeof(stats.last_restart),
	    "%s (pid %d) %s%s%s%s", proc_name(c->id), (int)c->pid, why,
	    c->lastwarn[0] != '\0' ? ": \"" : "", c->lastwarn,
	    c->lastwarn[0] != '\0' ? "\"" : "");
	parent_monitor("restart %s: %s", proc_name(c->id), why);
}

/*
 * Retire a template: it forks no more and leaves once its workers
 * have; its idle workers end now, its busy ones finish their clients.
 */
static void
template_retire(struct child *t, const char *why)
{
	struct child	*c;

	if (t->retiring)
		return;
	log_info("template %u (pid %d) retired: %s", t->gen, (int)t->pid,
	    why);
	t->retiring = 1;
	child_kill(t, SIGTERM);
	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->gen == t->gen && !c->busy &&
		    !c->retiring) {
			c->retiring = 1;
			child_kill(c, SIGTERM);
		}
}

/* The current template of a generation, if it is still the current. */
static struct child *
template_of(uint32_t gen)
{
	struct child	*t;

	if ((t = role_child(PROC_TEMPLATE)) != NULL && t->gen == gen)
		return (t);
	return (NULL);
}

/* A worker ended (status -1: unknown, its template died first). */
static void
worker_gone(struct child *c, int status)
{
	struct child	*t;
	char		 why[64], line[128];
	int		 bad;

	child_last_words(c);
	if (status == -1)
		strlcpy(why, "ended with its template", sizeof(why));
	else
		wait_reason(status, why, sizeof(why));
	bad = status != -1 && (WIFSIGNALED(status) ||
	    WEXITSTATUS(status) != 0);
	if (!c->ready && !c->retiring && !stopping)
		backoff_fail(PROC_WORKER);
	if (bad && !c->retiring && !stopping) {
		log_warnx("worker %u (pid %d) %s", c->wid, (int)c->pid, why);
		restart_counted(c, why);
		/* Its layout may have been learnt: no one else gets it. */
		if ((t = template_of(c->gen)) != NULL) {
			snprintf(line, sizeof(line), "worker %d %s",
			    (int)c->pid, why);
			template_retire(t, line);
		}
	} else
		log_debug("worker %u (pid %d) %s", c->wid, (int)c->pid, why);
	if (c->busy && c->sid != 0)
		parent_event(c->identity, "disconnect session %u", c->sid);
	if (!c->chan.dead)
		channel_shutdown(&c->chan);
	TAILQ_REMOVE(&children, c, entry);
	free(c);
}

/* A process the parent started (not a worker) ended. */
static void
child_gone(struct child *c, int status)
{
	struct child	*w;
	enum proc_id	 id;
	char		 why[64];

	child_last_words(c);
	wait_reason(status, why, sizeof(why));
	if (c->id == PROC_TEMPLATE) {
		/* Its workers live on; the parent reaps them now. */
		TAILQ_FOREACH(w, &children, entry)
			if (w->id == PROC_WORKER && w->gen == c->gen) {
				w->orphan = 1;
				if (!w->busy && !w->retiring) {
					w->retiring = 1;
					child_kill(w, SIGTERM);
				}
			}
	}
	if (c->ready)
		backoff[c->id].failures = 0;
	if (!stopping && !(c->id == PROC_TEMPLATE && c->retiring)) {
		if (!c->ready)
			backoff_fail(c->id);
		log_warnx("%s (pid %d) %s; restarting", proc_name(c->id),
		    (int)c->pid, why);
		restart_counted(c, why);
	} else
		log_debug("%s (pid %d) %s", proc_name(c->id), (int)c->pid,
		    why);
	id = c->id;
	if (!c->chan.dead)
		channel_shutdown(&c->chan);
	TAILQ_REMOVE(&children, c, entry);
	free(c);
	if (id == PROC_STORAGE)
		auth_storage_lost();
	/* A new control has no monitor yet. */
	if (id == PROC_CONTROL)
		peers_monitors(0);
	/* Orphans without a channel cannot be heard of again. */
	for (c = TAILQ_FIRST(&children); c != NULL; c = w) {
		w = TAILQ_NEXT(c, entry);
		if (c->id == PROC_WORKER && c->orphan && c->chan.dead)
			worker_gone(c, -1);
	}
}

/* SIGCHLD: reap the children, restart what must run. */
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
		if (c == NULL)
			continue;
		/* A worker here is one whose template went before it. */
		if (c->id == PROC_WORKER)
			worker_gone(c, status);
		else
			child_gone(c, status);
	}
	if (stopping) {
		if (TAILQ_EMPTY(&children))
			ev_break();
		return;
	}
	parent_roles_update(NULL);
}

/* The channel closed: the process is ending; its reaper tells the rest. */
static void
parent_child_closed(struct channel *ch)
{
	struct child	*c = ch->arg;

	if (ch->broken)
		child_reject(c, NULL, NULL);
	if (c->id != PROC_WORKER)
		return;
	c->busy = 1;	/* never hand it a client again */
	/* No pid: the template refused or failed to fork it. */
	if (c->pid == 0 || c->orphan) {
		worker_gone(c, -1);
		if (stopping && TAILQ_EMPTY(&children))
			ev_break();
		else if (!stopping)
			parent_pool_update();
	}
}

/*
 * Something wrong came from a child: imsg to us (NULL: a broken
 * frame), or a message to the process named by to, which closed the
 * channel there. It goes, as if it had crashed, and is replaced; the
 * parent itself goes on.
 */
static void
child_reject(struct child *c, const struct imsg *imsg, const char *to)
{
	if (to != NULL)
		log_warnx("bad message from %s (pid %d) to %s; killing it",
		    proc_name(c->id), (int)c->pid, to);
	else
		log_warnx("bad %s from %s (pid %d); killing it", imsg != NULL ?
		    imsg_type_name(imsg->hdr.type) : "framing",
		    proc_name(c->id), (int)c->pid);
	child_kill(c, SIGKILL);
	c->busy = 1;
	channel_shutdown(&c->chan);
}

/* STORAGE_REJECT, PROVIDER_REJECT: u32 worker id; that worker goes. */
static int
worker_rejected(struct child *from, struct imsg *imsg)
{
	struct ireader	 ir;
	struct child	*w;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	if (ir_end(&ir) == -1)
		return (-1);
	if ((w = worker_by_wid(wid, 0)) != NULL && !w->chan.dead)
		child_reject(w, NULL, proc_name(from->id));
	return (0);
}

/*
 * A reload: storage, provider and control take the new configuration;
 * a new template is made with it (and the new TLS material).
 */
static void
send_config_all(void)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry) {
		if (c->chan.dead || c->id == PROC_WORKER)
			continue;
		if (c->id == PROC_TEMPLATE)
			template_retire(c, "reload");
		else
			config_send(&c->chan, parent_conf, NULL, NULL);
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
	/* A new layout for what comes: a reload is a good moment. */
	backoff[PROC_TEMPLATE].not_before = 0;
	backoff[PROC_WORKER].not_before = 0;
	send_config_all();
	parent_roles_update(NULL);
	parent_monitor("reload %s", conffile);
	log_info("configuration reloaded");
	return (0);
}

/* SIGHUP: read the configuration again. */
static void
parent_sighup(int sig, void *arg)
{
	(void)sig;
	(void)arg;
	parent_reload();
}

/* The grace after SIGTERM is over: SIGKILL what still runs. */
static void
parent_kill_all(void *arg)
{
	struct child	*c;

	(void)arg;
	TAILQ_FOREACH(c, &children, entry) {
		log_warnx("%s (pid %d) still running %d ms after SIGTERM: "
		    "killing it", proc_name(c->id), (int)c->pid, STOP_GRACE);
		child_kill(c, SIGKILL);
	}
}

/* SIGTERM, SIGINT: tell every child to stop, then leave. */
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
		child_kill(c, SIGTERM);
	ev_timer_set(&stop_timer, parent_kill_all, NULL);
	ev_timer_add(&stop_timer, STOP_GRACE);
	if (TAILQ_EMPTY(&children))
		ev_break();
}

/* Debug logging on or off, here and in every child. */
static void
set_verbose(int v)
{
	struct child	*c;

	log_setverbose(v);
	parent_conf->g.verbose = v;
	verbose = v;
	TAILQ_FOREACH(c, &children, entry)
		channel_compose_u32(&c->chan, IMSG_PARENT_VERBOSE, 0, v);
}

/* A line of an answer to a control client. */
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

/* show status: version, uptime, children and counters. */
static void
ctl_status(struct child *ctl, uint32_t peer)
{
	struct child	*c;
	time_t		 up = time(NULL) - started;

	ctl_line(ctl, peer, IMSG_PARENT_DATA, "version: %s", BRIDGE_VERSION);
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "uptime: %lld",
	    (long long)up);
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "process: parent %d",
	    (int)getpid());
	TAILQ_FOREACH(c, &children, entry) {
		if (c->id == PROC_WORKER)
			ctl_line(ctl, peer, IMSG_PARENT_DATA,
			    "process: worker %d %s", (int)c->pid,
			    !c->ready ? "starting" : c->retiring ? "stopping" :
			    c->busy ? "busy" : "idle");
		else if (c->id == PROC_TEMPLATE)
			ctl_line(ctl, peer, IMSG_PARENT_DATA,
			    "process: template %d%s (layout %u, %u clients)",
			    (int)c->pid, c->retiring ? " retired" :
			    c->ready ? "" : " starting", c->gen, c->served);
		else
			ctl_line(ctl, peer, IMSG_PARENT_DATA,
			    "process: %s %d%s", proc_name(c->id), (int)c->pid,
			    c->ready ? "" : " starting");
	}
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "workers: %d idle, %d busy",
	    count_workers(0), count_workers(1));
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "clients: max %d",
	    parent_conf->g.max_clients);
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "accepted: %llu",
	    (unsigned long long)stats.accepted);
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "refused: %llu",
	    (unsigned long long)stats.refused);
	ctl_line(ctl, peer, IMSG_PARENT_DATA, "restarts: %llu",
	    (unsigned long long)stats.restarts);
	if (stats.last_restart[0] != '\0')
		ctl_line(ctl, peer, IMSG_PARENT_DATA, "last restart: %s",
		    stats.last_restart);
	ctl_line(ctl, peer, IMSG_PARENT_END, "%s", "");
}

/* show sessions: one line per client being served. */
static void
ctl_sessions(struct child *ctl, uint32_t peer)
{
	struct child	*c;
	char		 since[32];

	TAILQ_FOREACH(c, &children, entry) {
		if (c->id != PROC_WORKER || !c->busy || c->sid == 0)
			continue;
		iso8601((uint64_t)c->since, since, sizeof(since));
		ctl_line(ctl, peer, IMSG_PARENT_DATA,
		    "%u %s %.12s %s %s %u %llu %llu", c->sid, c->addr,
		    c->identity[0] != '\0' ? c->identity : "-",
		    c->model[0] != '\0' ? c->model : "-", since,
		    c->messages, (unsigned long long)c->bytes_in,
		    (unsigned long long)c->bytes_out);
	}
	ctl_line(ctl, peer, IMSG_PARENT_END, "%s", "");
}

/* kill session: its worker says BYE and ends. */
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
		ctl_line(ctl, peer, IMSG_PARENT_FAIL, "no session %u", sid);
		return;
	}
	if ((b = channel_create(&c->chan, IMSG_PARENT_KILL, 0, 64)) ==
	    NULL || ibuf_add_str(b, "session ended by the operator") == -1)
		fatal("%s", __func__);
	channel_send(&c->chan, b);
	parent_event(c->identity, "kill session %u", sid);
	ctl_line(ctl, peer, IMSG_PARENT_END, "session %u ended", sid);
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
		ctl_line(ctl, *peer, IMSG_PARENT_DATA, "%s", line);
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
	ctl_line(ctl, peer, IMSG_PARENT_END, "%s", "");
}

/* A request from bridgectl, validated by control, checked again here. */
static int
parent_dispatch_control(struct child *c, struct imsg *imsg)
{
	struct ireader	 ir;
	uint32_t	 peer = imsg->hdr.peerid, v;
	size_t		 i;

	ir_init(&ir, imsg);
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
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1)
			return (-1);
		ctl_kill(c, peer, v);
		return (0);
	case IMSG_CTL_RELOAD:
		if (imsg->datalen != 0)
			return (-1);
		if (parent_reload() == -1) {
			/* What is wrong, file:line, for bridgectl to print. */
			for (i = 0; i < conf_errors_count(); i++)
				ctl_line(c, peer, IMSG_PARENT_DATA, "%s",
				    conf_errors_get(i));
			ctl_line(c, peer, IMSG_PARENT_FAIL, "reload failed: "
			    "the running configuration is kept");
		} else
			ctl_line(c, peer, IMSG_PARENT_END, "reloaded");
		return (0);
	case IMSG_CTL_LOG:
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1)
			return (-1);
		set_verbose(v ? 2 : 0);
		ctl_line(c, peer, IMSG_PARENT_END, "logging %s",
		    v ? "verbose" : "brief");
		return (0);
	case IMSG_CTL_METRICS:
		if (imsg->datalen != 0)
			return (-1);
		ctl_metrics(c, peer);
		return (0);
	case IMSG_CTL_END_SESSIONS:
		return (ctl_end_sessions(imsg));
	case IMSG_CTL_MONITORS:
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1)
			return (-1);
		peers_monitors(v);
		return (0);
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

	if (!c->busy)
		return (-1);	/* nothing to say before its client */
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
		if (ev_timer_pending(&refill_timer))
			parent_refill(NULL);
		return (0);
	case IMSG_WORKER_EVENT:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			return (-1);
		if ((esc = str_escape(s, strlen(s))) == NULL)
			return (0);
		session_event(c, esc);
		free(esc);
		return (0);
	case IMSG_WORKER_METRIC:
		return (metrics_generation(imsg));
	}
	return (-1);
}

/* What storage tells: a token it checked, jobs for monitor. */
static int
parent_dispatch_storage(struct child *c, struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*s;
	char		*esc;

	if (imsg->hdr.type == IMSG_STORAGE_TOKEN)
		return (auth_storage(imsg));
	if (imsg->hdr.type == IMSG_STORAGE_END_SESSIONS)
		return (ctl_end_sessions(imsg));
	if (imsg->hdr.type == IMSG_STORAGE_REJECT)
		return (worker_rejected(c, imsg));
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

/* The provider tells of a worker it stopped listening to. */
static int
parent_dispatch_provider(struct child *c, struct imsg *imsg)
{
	if (imsg->hdr.type == IMSG_PROVIDER_REJECT)
		return (worker_rejected(c, imsg));
	return (-1);
}

/* The worker of a template, by its id (0: any generation). */
static struct child *
worker_by_wid(uint32_t wid, uint32_t gen)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->wid == wid &&
		    (gen == 0 || c->gen == gen))
			return (c);
	return (NULL);
}

/*
 * A child's log line: to syslog (in the foreground the child wrote it
 * to stderr itself). A warning is kept, to say why it may be dying: the
 * first one while it starts (the cause, before the fatal error that
 * follows it), the last one once it is ready.
 */
static int
child_log(struct child *c, struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*line;
	char		*esc;
	uint32_t	 pri;

	ir_init(&ir, imsg);
	pri = ir_u32(&ir);
	line = ir_str(&ir);
	if (ir_end(&ir) == -1 || pri > LOG_DEBUG)
		return (-1);
	if ((esc = str_escape(line, strlen(line))) == NULL)
		return (0);
	if (!debug)
		syslog(pri, "%s[%d]: %s", proc_name(c->id), c->pid > 0 ?
		    (int)c->pid : (int)imsg->hdr.pid, esc);
	if (pri <= LOG_WARNING && (c->ready || c->lastwarn[0] == '\0'))
		strlcpy(c->lastwarn, esc, sizeof(c->lastwarn));
	free(esc);
	return (0);
}

/* A process ended: the lines it logged before are still read. */
static void
child_last_words(struct child *c)
{
	struct imsg	 imsg;
	int		 r;

	while (!c->chan.dead && imsg_read(&c->chan.ibuf) > 0) {
		while ((r = imsg_get(&c->chan.ibuf, &imsg)) > 0) {
			if (imsg.hdr.type == IMSG_CHILD_LOG)
				(void)child_log(c, &imsg);
			imsg_free(&imsg);
		}
		if (r == -1)
			break;
	}
}

/* The template says which pid a worker got, and how each one ended. */
static int
parent_dispatch_template(struct child *t, struct imsg *imsg)
{
	struct ireader	 ir;
	struct child	*c, *cur;
	uint32_t	 wid, pid, status;
	char		 why[64], line[128];

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	pid = ir_u32(&ir);
	switch (imsg->hdr.type) {
	case IMSG_TEMPLATE_FORKED:
		if (ir_end(&ir) == -1 || pid <= 1 || pid > INT_MAX)
			return (-1);
		/* Gone already: its channel closed before this came. */
		if ((c = worker_by_wid(wid, t->gen)) == NULL)
			return (0);
		if (c->pid != 0)
			return (-1);
		c->pid = pid;
		if (stopping || c->retiring)
			child_kill(c, SIGTERM);
		return (0);
	case IMSG_TEMPLATE_ENDED:
		status = ir_u32(&ir);
		if (ir_end(&ir) == -1 || pid <= 1 || pid > INT_MAX)
			return (-1);
		if ((c = worker_by_wid(wid, t->gen)) != NULL &&
		    (c->pid == 0 || c->pid == (pid_t)pid)) {
			c->pid = pid;
			worker_gone(c, status);
		} else if ((WIFSIGNALED(status) || WEXITSTATUS(status) != 0) &&
		    (cur = template_of(t->gen)) != NULL) {
			/* One we had forgotten: still, a new layout. */
			wait_reason(status, why, sizeof(why));
			snprintf(line, sizeof(line), "worker %u %s", pid, why);
			template_retire(cur, line);
		}
		if (stopping && TAILQ_EMPTY(&children))
			ev_break();
		else if (!stopping)
			parent_roles_update(NULL);
		return (0);
	}
	return (-1);
}

/* Logging and readiness, from any child; the rest by its role. */
static void
parent_dispatch_child(struct channel *ch, struct imsg *imsg)
{
	struct child	*c = ch->arg;
	int		 r = -1;

	switch (imsg->hdr.type) {
	case IMSG_CHILD_LOG:
		r = child_log(c, imsg);
		break;
	case IMSG_CHILD_READY:
		if (imsg->datalen != 0 || c->ready)
			break;
		c->ready = 1;
		c->lastwarn[0] = '\0';
		backoff[c->id].failures = 0;
		log_debug("%s (pid %d) ready", proc_name(c->id), (int)c->pid);
		parent_pool_update();
		r = 0;
		break;
	default:
		if (role_dispatch[c->id] != NULL)
			r = role_dispatch[c->id](c, imsg);
		break;
	}
	if (r == -1)
		child_reject(c, imsg, NULL);
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

/* The parent: start the children, then serve them until told to stop. */
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
	if (listen_open(conf, parent_accept) == -1)
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
#ifdef PR_SET_CHILD_SUBREAPER
	/* Workers whose template died are ours to reap. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1)
		log_warn("PR_SET_CHILD_SUBREAPER");
#endif
	ev_signal(SIGCHLD, parent_sigchld, NULL);
	ev_signal(SIGHUP, parent_sighup, NULL);
	ev_signal(SIGTERM, parent_sigterm, NULL);
	ev_signal(SIGINT, parent_sigterm, NULL);
	ev_timer_set(&restart_timer, parent_roles_update, NULL);
	ev_timer_set(&refill_timer, parent_refill, NULL);
	if (sandbox_enter(SANDBOX_PARENT, NULL) == -1)
		fatalx("cannot sandbox the parent");

	parent_roles_update(NULL);
	ev_loop();

	unlink(parent_conf->g.socket);
	tls_material_wipe(&tlsm);
	log_info("bridged stopped");
	exit(0);
}
