/*
 * bench_relay.c: the floor of bridged's chat path for `make bench`: the
 * same processes and the same hops, with nothing else in them. A
 * process per client ends its TLS (libtls, the certificate given) and,
 * for each ASK, has a storage process commit the prompt (one INSERT,
 * its own transaction, in a SQLite file in WAL mode with synchronous
 * NORMAL as bridged's default), has a provider process answer (from
 * memory: the upstream's cost is measured apart), writes the answer to
 * the client, has storage commit the answer, and writes `. OK`. NEW is
 * answered at once. The hops are blocking reads and writes of a length
 * and the bytes over Unix sockets: no event loop, no framing beyond
 * that, no parsing. Figures only; it never judges.
 *
 * It is also the floor of a process per client: each connection is a
 * fork of a parent that configured libtls once, its handshake done in
 * the child, with no sandbox and no pool of processes made ready; its
 * CPU per connection and memory per idle session are what that shape
 * costs before anything of bridged's own.
 *
 * usage: bench_relay -c cert -k key -d dbfile [-p port]
 * It prints "port N" once it listens; SIGTERM ends it and its processes.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <err.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <tls.h>

#define RELAY_LINE	4096		/* the longest client line */
#define RELAY_MSG	8192		/* the longest hop */
#define RELAY_LINKS	512		/* clients at once */

static const char answer[] =
    "The relay's answer: about as long as the bench upstream's, one "
    "line of text that the client reads like any other.\n";

static volatile sig_atomic_t	 quit;
static char			 sname[64], pname[64];	/* abstract names */

/* SIGTERM and SIGINT end the loop that is running. */
static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

/* Read exactly len bytes: 0, or -1 at EOF or error. */
static int
read_full(int fd, void *buf, size_t len)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		if ((n = read(fd, p, len)) == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* Send one hop: its length, then its bytes, in one write. */
static int
hop_send(int fd, const void *data, uint32_t len)
{
	char	 buf[sizeof(len) + RELAY_MSG];

	if (len > RELAY_MSG)
		return (-1);
	memcpy(buf, &len, sizeof(len));
	memcpy(buf + sizeof(len), data, len);
	return (write(fd, buf, sizeof(len) + len) ==
	    (ssize_t)(sizeof(len) + len) ? 0 : -1);
}

/* Receive one hop into buf (at most RELAY_MSG): its length, or -1. */
static ssize_t
hop_recv(int fd, char *buf)
{
	uint32_t	 len;

	if (read_full(fd, &len, sizeof(len)) == -1 || len > RELAY_MSG ||
	    read_full(fd, buf, len) == -1)
		return (-1);
	return ((ssize_t)len);
}

/*
 * A Unix socket of the relay's own, in the abstract namespace:
 * listening on name, or connected to it.
 */
static int
unix_socket(const char *name, int listening)
{
	struct sockaddr_un	 sun;
	socklen_t		 len = sizeof(sun);
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "%s", name);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (listening ? bind(fd, (struct sockaddr *)&sun, len) == -1 ||
	    listen(fd, RELAY_LINKS) == -1 :
	    connect(fd, (struct sockaddr *)&sun, len) == -1)
		err(1, "unix socket %s", name);
	return (fd);
}

/* The SQLite file, in WAL mode, synchronous NORMAL, with its table. */
static sqlite3_stmt *
storage_open(const char *path, sqlite3 **db)
{
	sqlite3_stmt	*st;

	if (sqlite3_open(path, db) != SQLITE_OK ||
	    sqlite3_exec(*db, "PRAGMA journal_mode = WAL;"
	    "PRAGMA synchronous = NORMAL;"
	    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY,"
	    " link INTEGER NOT NULL, body TEXT NOT NULL);"
	    "CREATE INDEX IF NOT EXISTS messages_link ON messages(link, id)",
	    NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(*db, "INSERT INTO messages (link, body)"
	    " VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
		errx(1, "%s: %s", path, sqlite3_errmsg(*db));
	return (st);
}

/*
 * The loop of the storage and provider processes: accept links, and
 * answer each hop, one at a time (commit it; or answer from memory).
 */
static void
peer_run(int lfd, const char *dbpath)
{
	struct pollfd	 pfd[RELAY_LINKS + 1];
	sqlite3		*db = NULL;
	sqlite3_stmt	*ins = NULL;
	char		 msg[RELAY_MSG];
	ssize_t		 len;
	int		 n = 1, i, fd;

	if (dbpath != NULL)
		ins = storage_open(dbpath, &db);
	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	while (!quit) {
		if (poll(pfd, n, -1) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (i = n - 1; i >= 1; i--) {
			if (pfd[i].revents == 0)
				continue;
			if ((len = hop_recv(pfd[i].fd, msg)) == -1) {
				close(pfd[i].fd);
				pfd[i] = pfd[--n];
				continue;
			}
			if (ins != NULL) {
				sqlite3_bind_int(ins, 1, pfd[i].fd);
				sqlite3_bind_text(ins, 2, msg, (int)len,
				    SQLITE_STATIC);
				if (sqlite3_step(ins) != SQLITE_DONE)
					errx(1, "insert: %s",
					    sqlite3_errmsg(db));
				sqlite3_reset(ins);
				(void)hop_send(pfd[i].fd, "", 0);
			} else
				(void)hop_send(pfd[i].fd, answer,
				    sizeof(answer) - 1);
		}
		if ((pfd[0].revents & POLLIN) && n <= RELAY_LINKS &&
		    (fd = accept(lfd, NULL, NULL)) != -1) {
			pfd[n].fd = fd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
	}
	if (db != NULL) {
		sqlite3_finalize(ins);
		sqlite3_close(db);
	}
}

/* Write all of buf to the client. */
static int
client_write(struct tls *c, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = tls_write(c, buf, len)) == TLS_WANT_POLLIN ||
		    n == TLS_WANT_POLLOUT)
			continue;
		if (n == -1)
			return (-1);
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

/* One prompt: commit it, ask, answer, commit the answer, say OK. */
static int
client_ask(struct tls *c, int sfd, int pfd, const char *line, size_t len)
{
	char	 msg[RELAY_MSG];
	ssize_t	 n;

	if (hop_send(sfd, line, (uint32_t)len) == -1 ||
	    hop_recv(sfd, msg) == -1 ||
	    hop_send(pfd, line, (uint32_t)len) == -1 ||
	    (n = hop_recv(pfd, msg)) == -1 ||
	    client_write(c, msg, (size_t)n) == -1 ||
	    hop_send(sfd, msg, (uint32_t)n) == -1 ||
	    hop_recv(sfd, msg) == -1)
		return (-1);
	return (client_write(c, ". OK\n", 5));
}

/* The process of one client: handshake, greeting, its lines. */
static void
client_run(struct tls *srv, int fd, const char *greeting)
{
	struct tls	*c;
	char		 buf[RELAY_LINE], *nl;
	size_t		 have = 0, len;
	ssize_t		 n;
	int		 sfd, pfd, r;

	if (tls_accept_socket(srv, &c, fd) == -1)
		errx(1, "tls_accept_socket: %s", tls_error(srv));
	while ((r = tls_handshake(c)) == TLS_WANT_POLLIN ||
	    r == TLS_WANT_POLLOUT)
		;
	if (r == -1)
		_exit(0);
	sfd = unix_socket(sname, 0);
	pfd = unix_socket(pname, 0);
	if (client_write(c, greeting, strlen(greeting)) == -1)
		_exit(0);
	for (;;) {
		if ((nl = memchr(buf, '\n', have)) == NULL) {
			if (have == sizeof(buf))
				_exit(0);
			if ((n = tls_read(c, buf + have, sizeof(buf) - have)) ==
			    TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
				continue;
			if (n <= 0)
				_exit(0);
			have += (size_t)n;
			continue;
		}
		len = (size_t)(nl - buf);
		if (len >= 4 && strncmp(buf, "ASK ", 4) == 0)
			r = client_ask(c, sfd, pfd, buf + 4, len - 4);
		else if (len == 3 && strncmp(buf, "NEW", 3) == 0)
			r = client_write(c, ". OK\n", 5);
		else
			r = client_write(c, ". ERR unknown command\n", 22);
		if (r == -1)
			_exit(0);
		have -= len + 1;
		memmove(buf, nl + 1, have);
	}
}

/* Reap the clients' processes that have ended. */
static void
reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in	 sin;
	socklen_t		 slen = sizeof(sin);
	struct tls_config	*cfg;
	struct tls		*srv;
	struct pollfd		 pl;
	const char		*cert = NULL, *key = NULL, *dbpath = NULL;
	char			 greeting[128], *ep;
	long			 lport;
	pid_t			 peers[2];
	int			 ch, lfd, sl, pl_fd, fd, one = 1, port = 0;

	while ((ch = getopt(argc, argv, "c:d:k:p:")) != -1) {
		switch (ch) {
		case 'c':
			cert = optarg;
			break;
		case 'd':
			dbpath = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'p':
			lport = strtol(optarg, &ep, 10);
			if (*optarg == '\0' || *ep != '\0' || lport < 0 ||
			    lport > 65535)
				errx(2, "-p %s: not a port", optarg);
			port = (int)lport;
			break;
		default:
			goto usage;
		}
	}
	if (cert == NULL || key == NULL || dbpath == NULL || optind != argc)
		goto usage;
	if ((cfg = tls_config_new()) == NULL ||
	    tls_config_set_keypair_file(cfg, cert, key) == -1 ||
	    (srv = tls_server()) == NULL || tls_configure(srv, cfg) == -1)
		errx(1, "TLS set-up failed");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 128) == -1 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen) == -1)
		err(1, "listen");
	port = ntohs(sin.sin_port);
	snprintf(greeting, sizeof(greeting), "ID:000000000000\n"
	    "Connected to 127.0.0.1:%d\n. OK bridged/0.1 ready\n", port);

	snprintf(sname, sizeof(sname), "bench_relay.%d.storage", getpid());
	snprintf(pname, sizeof(pname), "bench_relay.%d.provider", getpid());
	/* A group of its own: SIGTERM at the end reaches only the relay's. */
	(void)setpgid(0, 0);
	sl = unix_socket(sname, 1);
	pl_fd = unix_socket(pname, 1);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	for (ch = 0; ch < 2; ch++) {
		if ((peers[ch] = fork()) == -1)
			err(1, "fork");
		if (peers[ch] == 0) {
			close(lfd);
			peer_run(ch == 0 ? sl : pl_fd, ch == 0 ? dbpath :
			    NULL);
			_exit(0);
		}
	}
	printf("port %d\n", port);
	fflush(stdout);

	pl.fd = lfd;
	pl.events = POLLIN;
	while (!quit) {
		reap();
		if (poll(&pl, 1, 100) <= 0)
			continue;
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			continue;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		switch (fork()) {
		case -1:
			close(fd);
			break;
		case 0:
			signal(SIGTERM, SIG_DFL);
			close(lfd);
			close(sl);
			close(pl_fd);
			client_run(srv, fd, greeting);
			_exit(0);
		default:
			close(fd);
		}
	}
	kill(0, SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return (0);
usage:
	fprintf(stderr, "usage: bench_relay -c cert -k key -d dbfile "
	    "[-p port]\n");
	return (2);
}
