/*
 * client.c: bridgectl connect, the terminal client of BRIDGE/1
 * (PROTOCOL.md). It connects, speaks TLS, parses the replies and
 * prints answers as they stream in. Fed by a pipe it sends each line,
 * waits for its reply, prints reply bodies on stdout and errors on
 * stderr, and says in its exit status whether any command failed.
 *
 * On a terminal the line editing, history and signals are tty.c's;
 * the pinning of the server's certificate is pin.c's.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <histedit.h>
#include <locale.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <tls.h>
#include <unistd.h>

#include "bridgectl.h"

#define DEFAULT_PORT		65432
#define CONNECT_TIMEOUT		10000	/* ms, per address */
#define HANDSHAKE_TIMEOUT	10000	/* ms */
#define STATUS_MAX		(64 * 1024)	/* a status or INFO line */
#define INPUT_MAX		(16 * 1024 * 1024)	/* a line of stdin */
#define SPIN_DELAY		150	/* ms before the indicator shows */
#define SPIN_STEP		100

static void	connect_usage(int) __attribute__((__noreturn__));
static int	tcp_connect(void);
static int	connect_wait(int, const struct sockaddr *, socklen_t);
static int	fd_wait(int, int, uint64_t);
static void	tls_start(const char *, int);
static void	out(int, const char *, size_t);
static void	show_line(int, const char *);
static void	spin_start(void);
static void	spin_tick(void);
static int	spin_timeout(void);
static int	server_write(void);
static void	server_read(void);
static void	conn_eof(void) __attribute__((__noreturn__));
static enum expect expect_next(void);
static void	push(enum expect);
static void	set_model(const char *);
static void	track(enum expect, const char *);
static void	reply_feed(void);
static void	body_piece(const char *, size_t);
static void	body_line(const char *);
static void	status_line(enum reply_kind, const char *, const char *);
static void	bye(enum expect, const char *, const char *)
		    __attribute__((__noreturn__));
static void	footer(const char *);
static void	show_ok(enum expect, const char *, const char *);
static void	show_err(enum expect, const char *, const char *);
static void	intro(void);
static int	line_is_word(const char *, const char *);
static void	cancel(void);
static char	*pipe_line(void);
static void	run_pipe(void) __attribute__((__noreturn__));

struct client	 cl;

/* The synopsis of connect, as in bridgectl(8); -h asks for it. */
static void
connect_usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: bridgectl connect "
	    "[-chkq] [-C cafile] [-p port] host[:port] | name\n");
	exit(status);
}

/* Put the terminal back, say goodbye to the server, and exit. */
void
client_exit(int status)
{
	HistEvent	 ev;

	spin_stop();
	if (cl.interactive)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio);
	if (cl.hist != NULL) {
		if (cl.histfile[0] != '\0')
			history(cl.hist, &ev, H_SAVE, cl.histfile);
		history_end(cl.hist);
	}
	if (cl.el != NULL)
		el_end(cl.el);
	if (cl.tls != NULL) {
		(void)tls_close(cl.tls);
		tls_free(cl.tls);
	}
	exit(status);
}

/* An error that ends the session: one line on stderr. */
void
cfatalx(const char *fmt, ...)
{
	va_list	 ap;

	prompt_break();
	spin_stop();
	if (cl.interactive)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio);
	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	client_exit(1);
}

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
static int
tcp_connect(void)
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
static void
tls_start(const char *cafile, int insecure)
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

/* All of it, or we are done: there is nobody left to tell. */
void
write_all(int fd, const char *p, size_t n)
{
	struct pollfd	 pfd;
	ssize_t		 w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EAGAIN) {
				pfd.fd = fd;
				pfd.events = POLLOUT;
				(void)poll(&pfd, 1, -1);
				continue;
			}
			if (errno == EINTR)
				continue;
			client_exit(1);
		}
		p += w;
		n -= w;
	}
}

/*
 * Write server text to fd. A terminal gets no control bytes from the
 * server: C0 controls show as ^X, C1 controls (UTF-8 c2 80-9f) as '?',
 * CR is dropped. Anything else is passed through as it is.
 */
static void
out(int fd, const char *p, size_t n)
{
	char		 buf[1024];
	size_t		 o = 0, i;
	unsigned char	 c;

	if (!cl.tty[fd]) {
		write_all(fd, p, n);
		return;
	}
	for (i = 0; i < n; i++) {
		if (o > sizeof(buf) - 4) {
			write_all(fd, buf, o);
			o = 0;
		}
		c = p[i];
		if (cl.c2[fd]) {
			cl.c2[fd] = 0;
			if (c >= 0x80 && c <= 0x9f) {
				buf[o++] = '?';
				continue;
			}
			buf[o++] = (char)0xc2;
		}
		if (c == 0xc2)
			cl.c2[fd] = 1;
		else if (c == '\n' || c == '\t')
			buf[o++] = c;
		else if (c == '\r')
			continue;
		else if (c < 0x20 || c == 0x7f) {
			buf[o++] = '^';
			buf[o++] = c == 0x7f ? '?' : c + '@';
		} else
			buf[o++] = c;
	}
	write_all(fd, buf, o);
}

/* A whole line of server text. */
static void
show_line(int fd, const char *s)
{
	out(fd, s, strlen(s));
	out(fd, "\n", 1);
}

/* The activity indicator, until the first byte of a reply. */
static void
spin_start(void)
{
	if (!cl.interactive)
		return;
	cl.spinning = 1;
	cl.spin_shown = 0;
	cl.spin_next = ev_now_ms() + SPIN_DELAY;
}

/* The next frame, when it is due; the cursor stays where it was. */
static void
spin_tick(void)
{
	static const char	 frames[] = "|/-\\";
	char			 s[2];

	if (!cl.spinning || ev_now_ms() < cl.spin_next)
		return;
	s[0] = frames[cl.spin_frame++ % 4];
	s[1] = '\b';
	write_all(STDERR_FILENO, s, 2);
	cl.spin_shown = 1;
	cl.spin_next = ev_now_ms() + SPIN_STEP;
}

/* Erase the indicator before anything else is written. */
void
spin_stop(void)
{
	if (!cl.spinning)
		return;
	cl.spinning = 0;
	if (cl.spin_shown)
		write_all(STDERR_FILENO, " \b", 2);
}

/* How long poll may sleep before the next frame; -1: forever. */
static int
spin_timeout(void)
{
	uint64_t	 now;

	if (!cl.spinning)
		return (-1);
	now = ev_now_ms();
	return (now >= cl.spin_next ? 0 : (int)(cl.spin_next - now));
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

/* What the next reply answers; unasked replies count as commands. */
static enum expect
expect_next(void)
{
	return (cl.nq > 0 ? cl.q[0].what : EXP_COMMAND);
}

/* One more reply to come, in order. */
static void
push(enum expect what)
{
	if (cl.nq == QUEUE_MAX)
		cfatalx("too many replies outstanding");
	cl.q[cl.nq].what = what;
	cl.q[cl.nq].cancel = 0;
	cl.nq++;
}

/* Keep the model name for the prompt: a word of tame characters. */
static void
set_model(const char *s)
{
	size_t	 n;

	n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-:/@+");
	if (n == 0 || n >= sizeof(cl.model) || (s[n] != '\0' && s[n] != ' '))
		return;
	memcpy(cl.model, s, n);
	cl.model[n] = '\0';
}

/* Follow the mode and the model from an OK status. */
static void
track(enum expect what, const char *text)
{
	if (strncmp(text, "chat mode", 9) == 0)
		cl.chat = 1;
	else if (strncmp(text, "back in command mode", 20) == 0)
		cl.chat = 0;
	else if (strncmp(text, "model ", 6) == 0 ||
	    strncmp(text, "model=", 6) == 0)
		set_model(text + 6);
	if (what == EXP_AUTH && cl.model[0] == '\0')
		cl.info_sent = 0;
}

/*
 * Consume what the server sent. A body line is shown as its bytes
 * come, so an answer streams; a status line, and the lines of INFO,
 * are taken whole. reply_parse() decides what a line is and how much
 * dot-stuffing to drop.
 */
static void
reply_feed(void)
{
	char		 line[STATUS_MAX + 1], first[3];
	const char	*p, *nl, *text;
	size_t		 n, len;
	enum reply_kind	 kind;
	enum expect	 what;

	while ((n = ibuf_left(cl.rbuf)) > 0) {
		p = ibuf_data(cl.rbuf);
		if (cl.midline) {
			nl = memchr(p, '\n', n);
			len = nl != NULL ? (size_t)(nl - p) + 1 : n;
			body_piece(p, len);
			if (nl != NULL)
				cl.midline = 0;
			ibuf_consume(cl.rbuf, len);
			continue;
		}
		what = expect_next();
		if (p[0] == '.' && n < 2 && memchr(p, '\n', n) == NULL)
			break;
		if ((p[0] == '.' && (p[1] == ' ' || p[1] == '\n' ||
		    p[1] == '\r')) || what == EXP_INFO ||
		    what == EXP_INFO_QUIET) {
			if ((nl = memchr(p, '\n', n)) == NULL) {
				if (n > STATUS_MAX)
					cfatalx("%s port %s: a line too long "
					    "in a reply", cl.host, cl.port);
				break;
			}
			len = nl - p;
			if (len > STATUS_MAX)
				cfatalx("%s port %s: a line too long in a "
				    "reply", cl.host, cl.port);
			memcpy(line, p, len);
			if (len > 0 && line[len - 1] == '\r')
				len--;
			line[len] = '\0';
			ibuf_consume(cl.rbuf, nl - p + 1);
			if ((kind = reply_parse(line, &text)) == REPLY_BODY)
				body_line(text);
			else
				status_line(kind, line, text);
			continue;
		}
		/* A body line: drop its stuffed dot, if any, and stream. */
		len = n < 2 ? n : 2;
		memcpy(first, p, len);
		first[len] = '\0';
		(void)reply_parse(first, &text);
		ibuf_consume(cl.rbuf, text - first);
		cl.midline = 1;
	}
}

/* A piece of a streamed body line. */
static void
body_piece(const char *p, size_t n)
{
	enum expect	 what = expect_next();

	spin_stop();
	if (what == EXP_EXPORT && cl.exportfp != NULL) {
		if (fwrite(p, 1, n, cl.exportfp) != n)
			cfatalx("%s: %s", cl.exportpath, strerror(errno));
		return;
	}
	if (what == EXP_GREETING && !cl.interactive)
		return;
	prompt_break();
	out(STDOUT_FILENO, p, n);
}

/* A whole body line (INFO's). */
static void
body_line(const char *text)
{
	enum expect	 what = expect_next();

	spin_stop();
	if ((what == EXP_INFO || what == EXP_INFO_QUIET) &&
	    strncmp(text, "model: ", 7) == 0)
		set_model(text + 7);
	if (what == EXP_INFO_QUIET)
		return;
	if (what == EXP_EXPORT && cl.exportfp != NULL) {
		if (fprintf(cl.exportfp, "%s\n", text) < 0)
			cfatalx("%s: %s", cl.exportpath, strerror(errno));
		return;
	}
	prompt_break();
	show_line(STDOUT_FILENO, text);
}

/* A status line ends the reply at the head of the queue. */
static void
status_line(enum reply_kind kind, const char *line, const char *text)
{
	struct pending	 p = { EXP_COMMAND, 0 };
	int		 cancelled = 0, i;

	spin_stop();
	if (cl.nq > 0) {
		p = cl.q[0];
		for (i = 1; i < cl.nq; i++)
			cl.q[i - 1] = cl.q[i];
		cl.nq--;
	}
	if (p.what != EXP_INFO_QUIET && p.what != EXP_HIDDEN &&
	    p.what != EXP_AUTH_AUTO)
		prompt_break();
	switch (kind) {
	case REPLY_OK:
		track(p.what, text);
		if (p.what == EXP_EXPORT)
			export_done(1);
		show_ok(p.what, line, text);
		break;
	case REPLY_MORE:
		if (p.what == EXP_IMPORT) {
			import_send();
			break;
		}
		for (i = 0; i < MORE_MAX - 1 && text[i] != '\0'; i++)
			cl.more[i] = (text[i] >= 0x20 && text[i] < 0x7f) ?
			    text[i] : '?';
		cl.more[i] = '\0';
		if (i == 0)
			strlcpy(cl.more, "answer", sizeof(cl.more));
		break;
	case REPLY_ERR:
		cancelled = strcmp(text, "cancelled") == 0 ||
		    strncmp(text, "cancelled ", 10) == 0;
		if (p.what == EXP_EXPORT)
			export_done(0);
		if (p.what == EXP_IMPORT) {
			free(cl.import);
			cl.import = NULL;
		}
		if (p.what == EXP_AUTH_AUTO)
			cfatalx("%s port %s refused the token%s%s: %s",
			    cl.host, cl.port, cl.target.tokenfile[0] ?
			    " of " : " of BRIDGE_TOKEN", cl.target.tokenfile,
			    text);
		if (p.what == EXP_HIDDEN)
			cl.chat = 0;	/* IA failed; BACK cannot */
		if (p.what != EXP_INFO_QUIET) {
			cl.errors++;
			show_err(p.what, line, text);
		}
		break;
	case REPLY_BYE:
		bye(p.what, line, text);
	default:
		cl.errors++;
		prompt_break();
		warnx("unexpected line from %s port %s:", cl.host, cl.port);
		show_line(STDERR_FILENO, line);
		break;
	}
	/* A CANCEL that came too late is a line of its own, answered. */
	if (p.cancel && !cancelled)
		push(cl.chat ? EXP_PROMPT : EXP_COMMAND);
	if (cl.quitting && cl.nq == 0)
		client_exit(!cl.interactive && cl.errors > 0);
}

/* A line of the client's own, dim where the terminal can show it. */
void
dim_line(int fd, const char *s)
{
	if (cl.dim && cl.tty[fd])
		write_all(fd, "\033[2m", 4);
	out(fd, s, strlen(s));
	if (cl.dim && cl.tty[fd])
		write_all(fd, "\033[0m", 4);
	out(fd, "\n", 1);
}

/*
 * The status of an answer, model=M in=N out=N ms=N, as a short
 * footer: (M, N+N tokens, N.N s). Another text is shown as it is.
 */
static void
footer(const char *text)
{
	char		 model[MODEL_MAX], buf[256];
	unsigned long	 in, outn, ms;

	if (cl.quiet)
		return;
	if (sscanf(text, "model=%63s in=%lu out=%lu ms=%lu", model, &in,
	    &outn, &ms) != 4) {
		dim_line(STDOUT_FILENO, text);
		return;
	}
	(void)snprintf(buf, sizeof(buf), "(%s, %lu+%lu tokens, %lu.%lu s)",
	    model, in, outn, ms / 1000, (ms % 1000) / 100);
	dim_line(STDOUT_FILENO, buf);
}

/* The ID: line of the greeting, explained the first time only. */
static void
intro(void)
{
	char	 path[PATH_MAX];
	int	 fd;

	if (home_file("greeted", path, sizeof(path)) == 0 &&
	    access(path, F_OK) == -1) {
		dim_line(STDOUT_FILENO, "ID is who this server knows you by "
		    "(from your address, certificate or token):");
		dim_line(STDOUT_FILENO, "your conversations belong to it, "
		    "and nobody else's ID sees them.");
		if ((fd = open(path, O_WRONLY | O_CREAT, 0600)) != -1)
			close(fd);
	}
	dim_line(STDOUT_FILENO, "Type a question; /help lists the "
	    "commands, Ctrl-C stops an answer, Ctrl-D leaves.");
}

/*
 * An OK status: as it is with -c, else a footer or its text, dim. A
 * script sees only what a command did ("job 7"), never a footer.
 */
static void
show_ok(enum expect what, const char *line, const char *text)
{
	if (!cl.interactive) {
		if (!cl.cmdmode && (what == EXP_COMMAND ||
		    what == EXP_INFO) && *text != '\0')
			show_line(STDOUT_FILENO, text);
		return;
	}
	if (what == EXP_INFO_QUIET || what == EXP_HIDDEN ||
	    what == EXP_AUTH_AUTO)
		return;
	if (cl.cmdmode) {
		show_line(STDOUT_FILENO, line);
		return;
	}
	switch (what) {
	case EXP_GREETING:
		intro();
		break;
	case EXP_PROMPT:
		footer(text);
		break;
	case EXP_EXPORT:
		break;
	default:
		if (*text != '\0')
			dim_line(STDOUT_FILENO, text);
		break;
	}
}

/* An ERR status: as it is for scripts and -c, else "error: text". */
static void
show_err(enum expect what, const char *line, const char *text)
{
	char	 buf[STATUS_MAX + 16];

	if (!cl.interactive || cl.cmdmode) {
		show_line(STDERR_FILENO, line);
		return;
	}
	if (strncmp(text, "cancelled", 9) == 0) {
		dim_line(STDERR_FILENO, text);
		return;
	}
	(void)snprintf(buf, sizeof(buf), "error: %s", text);
	show_line(STDERR_FILENO, buf);
	/* A command refused for want of AUTH, not a wrong AUTH. */
	if (strncmp(text, "auth", 4) == 0 && what != EXP_AUTH &&
	    !cl.auth_hinted) {
		cl.auth_hinted = 1;
		dim_line(STDERR_FILENO, "this server wants a token: put it "
		    "in a token-file of ~/.bridge/config, or in BRIDGE_TOKEN "
		    "(see bridgectl(8))");
	}
}

/* The server ends the session. */
static void
bye(enum expect what, const char *line, const char *text)
{
	if (what == EXP_QUIT || cl.quitting) {
		if (cl.interactive && cl.cmdmode)
			show_line(STDOUT_FILENO, line);
		else if (cl.interactive)
			dim_line(STDOUT_FILENO, *text != '\0' ? text : "bye");
		client_exit(!cl.interactive && cl.errors > 0);
	}
	if (what == EXP_GREETING)
		cfatalx("%s port %s refused the session: %s", cl.host,
		    cl.port, *text != '\0' ? text : "no reason given");
	cfatalx("%s port %s closed the session: %s", cl.host, cl.port,
	    *text != '\0' ? text : "no reason given");
}

/* Is the line this word alone, in any case? */
static int
line_is_word(const char *line, const char *word)
{
	return (strcasecmp(line, word) == 0);
}

/* Does the line start with this command word? */
int
first_word(const char *line, const char *word)
{
	size_t	 n = strlen(word);

	return (strncasecmp(line, word, n) == 0 &&
	    (line[n] == '\0' || line[n] == ' '));
}

/* Queue a line for the server and note the reply it will get. */
void
send_line(const char *line, enum expect what)
{
	if (ibuf_add(cl.wbuf, line, strlen(line)) == -1 ||
	    ibuf_add(cl.wbuf, "\n", 1) == -1)
		cfatalx("out of memory");
	if (what == EXP_NONE)
		return;
	push(what);
	if (what == EXP_QUIT)
		cl.quitting = 1;
	if (what != EXP_INFO_QUIET)
		spin_start();
}

/* A line of the user's: a """ prompt's, a MORE answer, chat or -c. */
void
submit(const char *line)
{
	if (cl.block)
		block_add(line);
	else if (cl.more[0] != '\0') {
		cl.more[0] = '\0';
		send_line(line, EXP_COMMAND);
	} else if (!cl.cmdmode)
		chat_line(line);
	else
		submit_raw(line);
}

/* Send a BRIDGE/1 line, knowing what the server will make of it. */
void
submit_raw(const char *line)
{
	enum expect	 what;

	if (cl.chat) {
		if (strcmp(line, BLOCK_MARK) == 0) {
			block_start();
			return;
		} else if (line_is_word(line, "EXIT") ||
		    line_is_word(line, "QUIT"))
			what = EXP_QUIT;
		else if (line_is_word(line, "BACK"))
			what = EXP_COMMAND;
		else
			what = EXP_PROMPT;
	} else {
		if (first_word(line, "INFO"))
			what = EXP_INFO;
		else if (first_word(line, "ASK") ||
		    first_word(line, "RESULT"))
			what = EXP_PROMPT;
		else if (first_word(line, "AUTH"))
			what = EXP_AUTH;
		else if (line_is_word(line, "EXIT") ||
		    line_is_word(line, "QUIT"))
			what = EXP_QUIT;
		else
			what = EXP_COMMAND;
	}
	send_line(line, what);
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

/* The next line of standard input, not a terminal; NULL at its end. */
static char *
pipe_line(void)
{
	char		 buf[65536], *line, *p, *nl;
	size_t		 n, len;
	ssize_t		 nr;

	for (;;) {
		p = ibuf_data(cl.ibuf);
		n = ibuf_left(cl.ibuf);
		nl = memchr(p, '\n', n);
		if (nl != NULL || (cl.in_eof && n > 0)) {
			len = nl != NULL ? (size_t)(nl - p) : n;
			ibuf_consume(cl.ibuf, nl != NULL ? len + 1 : len);
			cl.in_lineno++;
			if (len > 0 && p[len - 1] == '\r')
				len--;
			if (memchr(p, '\0', len) != NULL) {
				warnx("line %zu of the input has a NUL byte; "
				    "not sent", cl.in_lineno);
				cl.errors++;
				continue;
			}
			if ((line = malloc(len + 1)) == NULL)
				cfatalx("out of memory");
			memcpy(line, p, len);
			line[len] = '\0';
			return (line);
		}
		if (cl.in_eof)
			return (NULL);
		if (n > INPUT_MAX)
			cfatalx("line %zu of the input is too long",
			    cl.in_lineno + 1);
		if (!io_poll(1, -1))
			continue;
		if ((nr = read(STDIN_FILENO, buf, sizeof(buf))) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			cfatalx("read: %s", strerror(errno));
		}
		if (nr == 0)
			cl.in_eof = 1;
		else if (ibuf_add(cl.ibuf, buf, nr) == -1)
			cfatalx("out of memory");
	}
}

/* Not on a terminal: each line in turn, then QUIT. */
static void
run_pipe(void)
{
	char	*line;

	if ((cl.ibuf = ibuf_open(65536)) == NULL)
		err(1, NULL);
	for (;;) {
		wait_replies();
		if (cl.token != NULL) {
			send_token();
			continue;
		}
		if ((line = pipe_line()) == NULL) {
			if (cl.block)
				cfatalx("the input ended inside a \"\"\" "
				    "prompt; it was not sent");
			send_line("QUIT", EXP_QUIT);
			continue;
		}
		if (*line != '\0' || cl.block)
			submit(line);
		free(line);
	}
}

/* bridgectl connect [-chkq] [-C cafile] [-p port] host[:port] | name */
int
client_main(int argc, char *argv[])
{
	struct target	*t = &cl.target;
	const char	*cafile = NULL, *errstr, *term;
	long long	 port = 0;
	int		 ch, insecure = 0;

	opterr = 0;
	optind = 1;
	while ((ch = getopt(argc, argv, "C:chkp:q")) != -1) {
		switch (ch) {
		case 'C':
			cafile = optarg;
			break;
		case 'c':
			cl.cmdmode = 1;
			break;
		case 'h':
			connect_usage(0);
		case 'k':
			insecure = 1;
			break;
		case 'p':
			port = strtonum(optarg, 1, 65535, &errstr);
			if (errstr != NULL)
				errx(1, "port %s: %s", optarg, errstr);
			break;
		case 'q':
			cl.quiet = 1;
			break;
		default:
			connect_usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		connect_usage(1);
	if (cafile != NULL && insecure)
		errx(1, "-C and -k cannot be used together");
	if (!servers_lookup(argv[0], t) && target_hostport(argv[0], t) == -1)
		errx(1, "%s: not host, host:port, [address]:port or a server "
		    "of ~/.bridge/config", argv[0]);
	if (port != 0 && t->port[0] != '\0')
		errx(1, "%s gives the port already; drop -p", argv[0]);
	if (port != 0)
		(void)snprintf(t->port, sizeof(t->port), "%lld", port);
	else if (t->port[0] == '\0')
		(void)snprintf(t->port, sizeof(t->port), "%d", DEFAULT_PORT);
	/* -C and -k say better than the file. */
	if (cafile == NULL && !insecure && t->cafile[0] != '\0')
		cafile = t->cafile;
	cl.host = t->host;
	(void)strlcpy(cl.port, t->port, sizeof(cl.port));
	cl.token = token_load(t);

	/* The protocol is UTF-8, whatever the environment says. */
	if (setlocale(LC_CTYPE, "") == NULL || MB_CUR_MAX == 1)
		(void)setlocale(LC_CTYPE, "C.UTF-8");
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	cl.tty[STDOUT_FILENO] = isatty(STDOUT_FILENO);
	cl.tty[STDERR_FILENO] = isatty(STDERR_FILENO);
	cl.interactive = isatty(STDIN_FILENO) && cl.tty[STDOUT_FILENO];
	cl.dim = (term = getenv("TERM")) != NULL && strcmp(term, "dumb") != 0;

	if (insecure)
		warnx("WARNING: -k: the certificate of %s is NOT verified; "
		    "anyone on the way can read and change this session",
		    cl.host);
	cl.sock = tcp_connect();
	tls_start(cafile, insecure);
	if (cafile == NULL && !insecure) {
		if (t->pin[0] != '\0')
			pin_verify(t->pin);
		else
			pin_check();
	}

	if ((cl.rbuf = ibuf_open(16384)) == NULL ||
	    (cl.wbuf = ibuf_open(1024)) == NULL)
		err(1, NULL);
	if (cl.interactive) {
		signals_init();
		tty_init();
	}
	push(EXP_GREETING);
	if (cl.interactive)
		run_tty();
	run_pipe();
}
