/*
 * client.c: bridgectl connect, the terminal client of BRIDGE/1
 * (PROTOCOL.md). It connects, speaks TLS, parses the replies and
 * prints answers as they stream in. Fed by a pipe it sends each line,
 * waits for its reply, prints reply bodies on stdout and errors on
 * stderr, and says in its exit status whether any command failed.
 *
 * This file is the command line and the loop over piped input; below
 * it, chat.c turns a user's line into BRIDGE/1, conn.c keeps the
 * connection, replies.c shows what comes back and term.c is the
 * terminal; on a terminal tty.c edits the lines, and pin.c checks the
 * server's certificate against its pin.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridgectl.h"

#define DEFAULT_PORT		65432
#define INPUT_MAX		(16 * 1024 * 1024)	/* a line of stdin */

static void	connect_usage(int) __attribute__((__noreturn__));
static char	*pipe_line(void);
static void	run_pipe(void) __attribute__((__noreturn__));

/* The synopsis of connect, as in bridgectl(8); -h asks for it. */
static void
connect_usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: bridgectl connect "
	    "[-chkq] [-C cafile] [-p port] host[:port] | name\n");
	exit(status);
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
	cl.sock = conn_connect();
	conn_tls(cafile, insecure);
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
