/*
 * listen.c: the parent's listening sockets. A connection is accepted
 * only while an idle worker is ready to take it; one over `max clients`
 * is still accepted, and handed to a worker that says BYE.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"

#define LISTEN_BACKLOG	1024

struct parent_stats	 stats;
static int		 listening;	/* accept events are on */
static struct ev_timer	 emfile_timer;	/* out of descriptors: pause */

static void	listen_accept(int, int, void *);

/* Bind every listener of conf; -1 if any cannot be. */
int
listen_open(struct bridged_conf *conf)
{
	struct listen_conf	*l;
	int			 fd, on = 1;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->fd != -1)
			continue;
		if ((fd = socket(l->ss.ss_family, SOCK_STREAM, 0)) == -1) {
			log_warn("%s: socket for %s", __func__, l->name);
			return (-1);
		}
		fd_nonblock(fd);
		fd_cloexec(fd);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (l->ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
			    sizeof(on));
		if (bind(fd, (struct sockaddr *)&l->ss, l->sslen) == -1 ||
		    listen(fd, LISTEN_BACKLOG) == -1) {
			log_warn("%s: %s port %u", __func__, l->name, l->port);
			close(fd);
			return (-1);
		}
		l->fd = fd;
		log_debug("%s: listening on %s port %u%s", __func__, l->name,
		    l->port, l->tls ? " tls" : "");
	}
	return (0);
}

/* A reload keeps the bound sockets; listener changes need a restart. */
void
listen_keep(struct bridged_conf *old, struct bridged_conf *new)
{
	struct listen_conf	*l;

	while ((l = TAILQ_FIRST(&new->listeners)) != NULL) {
		TAILQ_REMOVE(&new->listeners, l, entry);
		free(l);
	}
	while ((l = TAILQ_FIRST(&old->listeners)) != NULL) {
		TAILQ_REMOVE(&old->listeners, l, entry);
		TAILQ_INSERT_TAIL(&new->listeners, l, entry);
	}
}

void
listen_close(struct bridged_conf *conf)
{
	struct listen_conf	*l;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->fd == -1)
			continue;
		ev_del(l->fd);
		close(l->fd);
		l->fd = -1;
	}
	listening = 0;
}

/* Accept only while a worker can take the connection. */
void
listen_update(int on)
{
	struct listen_conf	*l;

	if (ev_timer_pending(&emfile_timer))
		on = 0;
	if (on == listening)
		return;
	listening = on;
	TAILQ_FOREACH(l, &parent_conf->listeners, entry) {
		if (l->fd == -1)
			continue;
		if (on)
			ev_set(l->fd, EV_READ, listen_accept, l);
		else
			ev_del(l->fd);
	}
}

static void
listen_resume(void *arg)
{
	(void)arg;
	parent_pool_update();
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
listen_handoff(struct child *w, struct listen_conf *l, int fd,
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

static void
listen_accept(int lfd, int events, void *arg)
{
	struct listen_conf	*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	struct child		*w;
	int			 fd, on = 1;

	(void)events;
	while ((w = parent_idle_worker()) != NULL) {
		sslen = sizeof(ss);
		if ((fd = accept(lfd, (struct sockaddr *)&ss, &sslen)) == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("%s: pausing for a second", __func__);
				listen_update(0);
				ev_timer_set(&emfile_timer, listen_resume,
				    NULL);
				ev_timer_add(&emfile_timer, 1000);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("%s: accept", __func__);
			break;
		}
		fd_cloexec(fd);
		/* Replies leave in one write each: no Nagle wait behind them. */
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on,
		    sizeof(on)) == -1)
			log_debug("%s: TCP_NODELAY: %s", __func__,
			    strerror(errno));
		if (busy_clients() >= parent_conf->g.max_clients)
			listen_handoff(w, l, fd, &ss, "too many clients");
		else
			listen_handoff(w, l, fd, &ss, NULL);
	}
	parent_pool_update();
}

/*
 * The control socket: created by root before anything is dropped,
 * owned by the daemon's group and not world-writable.
 */
int
control_socket_open(const char *path, uid_t uid, gid_t gid)
{
	struct sockaddr_un	 sun;
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_warnx("%s: socket path too long: %s", __func__, path);
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		log_warn("%s: socket", __func__);
		return (-1);
	}
	/* A live daemon answers on it: do not steal its socket. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		log_warnx("%s: %s is in use: is bridged running?", __func__,
		    path);
		close(fd);
		return (-1);
	}
	close(fd);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		log_warn("%s: socket", __func__);
		return (-1);
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		log_warn("%s: unlink %s", __func__, path);
		close(fd);
		return (-1);
	}
	old = umask(S_IXUSR | S_IXGRP | S_IRWXO);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		log_warn("%s: bind %s", __func__, path);
		umask(old);
		close(fd);
		return (-1);
	}
	umask(old);
	if (geteuid() == 0 && chown(path, uid, gid) == -1)
		log_warn("%s: chown %s", __func__, path);
	if (chmod(path, S_IRUSR | S_IWUSR | S_IRGRP | S_IWGRP) == -1 ||
	    listen(fd, 16) == -1) {
		log_warn("%s: %s", __func__, path);
		close(fd);
		return (-1);
	}
	fd_nonblock(fd);
	fd_cloexec(fd);
	return (fd);
}
