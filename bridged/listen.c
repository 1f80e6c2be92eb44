/*
 * listen.c: the parent's listening sockets and its control socket. A
 * connection is accepted only while listening is on (the parent turns
 * it on while an idle worker is ready) and given to the parent's
 * function; out of descriptors, accepting pauses for a second.
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

static int		 listening;	/* accept events are on */
static int		 wanted;	/* what the parent last asked for */
static struct ev_timer	 emfile_timer;	/* out of descriptors: pause */
static listen_cb	 accepted;	/* 0: take no more this round */
static struct listen_list *listeners;

static void	listen_accept(int, int, void *);

/* Bind every listener of conf; -1 if any cannot be. */
int
listen_open(struct bridged_conf *conf, listen_cb cb)
{
	struct listen_conf	*l;
	int			 fd, on = 1;

	accepted = cb;
	listeners = &conf->listeners;
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
	listeners = &new->listeners;
}

/* Turn accepting on or off (it stays off during a pause). */
static void
listen_set(int on)
{
	struct listen_conf	*l;

	if (on == listening || listeners == NULL)
		return;
	listening = on;
	TAILQ_FOREACH(l, listeners, entry) {
		if (l->fd == -1)
			continue;
		/* Off often and briefly (no worker idle): a pause. */
		ev_set(l->fd, on ? EV_READ : 0, listen_accept, l);
	}
}

/* Accept only while a worker can take the connection. */
void
listen_update(int on)
{
	wanted = on;
	listen_set(on && !ev_timer_pending(&emfile_timer));
}

/* The pause after EMFILE is over: accept again. */
static void
listen_resume(void *arg)
{
	(void)arg;
	listen_set(wanted);
}

/* Out of descriptors: stop accepting for a second. */
static void
listen_pause(void)
{
	listen_set(0);
	ev_timer_set(&emfile_timer, listen_resume, NULL);
	ev_timer_add(&emfile_timer, 1000);
}

/* Accept while the parent takes connections (see listen_open). */
static void
listen_accept(int lfd, int events, void *arg)
{
	struct listen_conf	*l = arg;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 fd, on = 1;

	(void)events;
	for (;;) {
		sslen = sizeof(ss);
		if ((fd = accept(lfd, (struct sockaddr *)&ss, &sslen)) == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("%s: pausing for a second", __func__);
				listen_pause();
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
		if (!accepted(l, fd, &ss))
			break;
	}
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
