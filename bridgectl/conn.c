/*
 * conn.c: the connection of bridgectl connect: TCP with a timeout per
 * address, the TLS handshake, and the poll loop that writes what is
 * queued, reads what the server sends (replies.c makes sense of it)
 * and notices signals and typed input. wait_replies() runs it until
 * every reply asked for has come; Ctrl-C meanwhile sends CANCEL.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <err.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "bridgectl.h"

#define CONNECT_TIMEOUT		10000	/* ms, per address */
#define HANDSHAKE_TIMEOUT	10000	/* ms */

static int	connect_wait(int, const struct sockaddr *, socklen_t);
static int	fd_wait(int, int, uint64_t);
static int	server_write(void);
static void	server_read(void);
static void	conn_eof(void) __attribute__((__noreturn__));
static void	cancel(void);

/* Wait until fd is ready for events or the deadline passes. */
static int
fd_wait(int fd, int events, uint64_t deadline)
{
	struct pollfd	 pfd;
	uint64_t	 now;
	int		 n;

	for (;;) {
		now = ev_now_ms();
		if (now >= deadline) {
			errno = ETIMEDOUT;
			return (-1);
		}
		pfd.fd = fd;
		pfd.events = events;
		n = poll(&pfd, 1, (int)(deadline - now));
		if (n == -1 && errno != EINTR)
			return (-1);
		if (n > 0)
			return (0);
	}
}

/* A non-blocking connect that gives up after CONNECT_TIMEOUT. */
static int
connect_wait(int s, const struct sockaddr *sa, socklen_t len)
{
	socklen_t	 elen = sizeof(int);
	int		 e = 0;

	if (connect(s, sa, len) == 0)
		return (0);
	if (errno != EINPROGRESS && errno != EINTR)
		return (-1);
	if (fd_wait(s, POLLOUT, ev_now_ms() + CONNECT_TIMEOUT) == -1)
		return (-1);
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &elen) == -1)
		return (-1);
	if (e != 0) {
		errno = e;
		return (-1);
	}
	return (0);
}

/* Connect to host and port, trying each address; one line if none. */
int
conn_connect(void)
{
	struct addrinfo	 hints, *res, *ai;
	int		 s, error, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((error = getaddrinfo(cl.host, cl.port, &hints, &res)) != 0)
		errx(1, "%s: %s", cl.host, gai_strerror(error));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (s == -1) {
			saved = errno;
			continue;
		}
		if (fd_nonblock(s) == -1 || fd_cloexec(s) == -1)
			err(1, "fcntl");
		if (connect_wait(s, ai->ai_addr, ai->ai_addrlen) == 0) {
			freeaddrinfo(res);
			return (s);
		}
		saved = errno;
		close(s);
	}
	freeaddrinfo(res);
	switch (saved) {
	case ECONNREFUSED:
		errx(1, "connection refused by %s port %s", cl.host, cl.port);
	case ETIMEDOUT:
		errx(1, "connection to %s port %s timed out", cl.host,
		    cl.port);
	default:
		errx(1, "cannot connect to %s port %s: %s", cl.host, cl.port,
		    strerror(saved));
	}
}

/* TLS over the connected socket: a CA file, no checks, or a pin. */
void
conn_tls(const char *cafile, int insecure)
{
	struct tls_config	*cfg;
	uint64_t		 deadline;
	int			 r;

	if (tls_init() == -1)
		errx(1, "tls_init failed");
	if ((cfg = tls_config_new()) == NULL)
		errx(1, "tls_config_new failed");
	if (tls_config_set_protocols(cfg, TLS_PROTOCOL_TLSv1_2 |
	    TLS_PROTOCOL_TLSv1_3) == -1)
		errx(1, "%s", tls_config_error(cfg));
	if (cafile != NULL) {
		if (tls_config_set_ca_file(cfg, cafile) == -1)
			errx(1, "%s: %s", cafile, tls_config_error(cfg));
	} else {
		/* -k checks nothing; a pin is checked after the handshake. */
		tls_config_insecure_noverifycert(cfg);
		tls_config_insecure_noverifyname(cfg);
		if (insecure)
			tls_config_insecure_noverifytime(cfg);
	}
	if ((cl.tls = tls_client()) == NULL)
		errx(1, "tls_client failed");
	if (tls_configure(cl.tls, cfg) == -1)
		errx(1, "%s", tls_error(cl.tls));
	tls_config_free(cfg);
	if (tls_connect_socket(cl.tls, cl.sock, cl.host) == -1)
		errx(1, "%s port %s: %s", cl.host, cl.port, tls_error(cl.tls));
	deadline = ev_now_ms() + HANDSHAKE_TIMEOUT;
	while ((r = tls_handshake(cl.tls)) != 0) {
		if (r != TLS_WANT_POLLIN && r != TLS_WANT_POLLOUT)
			errx(1, "%s port %s: TLS handshake failed: %s",
			    cl.host, cl.port, tls_error(cl.tls));
		if (fd_wait(cl.sock, r == TLS_WANT_POLLIN ? POLLIN : POLLOUT,
		    deadline) == -1) {
			if (errno == ETIMEDOUT)
				errx(1, "TLS handshake with %s port %s timed "
				    "out", cl.host, cl.port);
			err(1, "poll");
		}
	}
}

/* Write what is queued; -1 if the connection failed. */
static int
server_write(void)
{
	ssize_t	 n;

	while (ibuf_left(cl.wbuf) > 0) {
		n = tls_write(cl.tls, ibuf_data(cl.wbuf), ibuf_left(cl.wbuf));
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT)
			return (0);
		if (n == -1)
			return (-1);
		ibuf_consume(cl.wbuf, n);
	}
	return (0);
}

/* Read what the server sent and show it as it comes. */
static void
server_read(void)
{
	char	 buf[16384];
	ssize_t	 n;

	cl.read_wants_out = 0;
	for (;;) {
		n = tls_read(cl.tls, buf, sizeof(buf));
		if (n == TLS_WANT_POLLIN)
			break;
		if (n == TLS_WANT_POLLOUT) {
			cl.read_wants_out = 1;
			break;
		}
		if (n == 0)
			conn_eof();
		if (n == -1)
			cfatalx("%s port %s: %s", cl.host, cl.port,
			    tls_error(cl.tls));
		if (ibuf_add(cl.rbuf, buf, n) == -1)
			cfatalx("out of memory");
		reply_feed();
	}
}

/* The server closed the connection. */
static void
conn_eof(void)
{
	if (cl.quitting)
		client_exit(!cl.interactive && cl.errors > 0);
	cfatalx("connection closed by %s port %s", cl.host, cl.port);
}

/*
 * Wait for the server, a signal or (when asked) standard input, and do
 * the connection's reading and writing. Returns 1 when standard input
 * is readable.
 */
int
io_poll(int want_stdin, int timeout)
{
	struct pollfd	 pfd[3];
	int		 n, t;

	pfd[0].fd = sigpipe[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = cl.sock;
	pfd[1].events = POLLIN;
	if (ibuf_left(cl.wbuf) > 0 || cl.read_wants_out)
		pfd[1].events |= POLLOUT;
	pfd[2].fd = want_stdin ? STDIN_FILENO : -1;
	pfd[2].events = POLLIN;
	pfd[0].revents = pfd[1].revents = pfd[2].revents = 0;
	t = spin_timeout();
	if (t != -1 && (timeout == -1 || t < timeout))
		timeout = t;
	if ((n = poll(pfd, 3, timeout)) == -1) {
		if (errno != EINTR)
			cfatalx("poll: %s", strerror(errno));
		n = 0;
	}
	signals_run();
	if (n > 0 && pfd[1].revents != 0) {
		if (server_write() == -1) {
			/* Show a BYE the server may have sent first. */
			server_read();
			cfatalx("%s port %s: %s", cl.host, cl.port,
			    tls_error(cl.tls));
		}
		server_read();
	}
	spin_tick();
	return (n > 0 && pfd[2].revents != 0);
}

/* Ctrl-C while replies come: a streaming answer gets CANCEL. */
static void
cancel(void)
{
	if (cl.nq == 0 || cl.q[0].what != EXP_PROMPT || cl.q[0].cancel)
		return;
	cl.q[0].cancel = 1;
	if (ibuf_add(cl.wbuf, "CANCEL\n", 7) == -1)
		cfatalx("out of memory");
}

/*
 * Show replies until none is outstanding and all is sent. On a
 * terminal, what is typed meanwhile is kept for the next prompts.
 */
void
wait_replies(void)
{
	tty_wait();
	while (cl.nq > 0 || ibuf_left(cl.wbuf) > 0) {
		if (io_poll(cl.ahead != NULL, -1))
			tty_ahead();
		if (got_int) {
			got_int = 0;
			cancel();
		}
	}
}

/* AUTH with the token, once; it is wiped as soon as it is queued. */
void
send_token(void)
{
	char	*line;

	if (asprintf(&line, "AUTH %s", cl.token) == -1)
		cfatalx("out of memory");
	send_line(line, EXP_AUTH_AUTO);
	freezero(line, strlen(line));
	freezero(cl.token, strlen(cl.token));
	cl.token = NULL;
}
