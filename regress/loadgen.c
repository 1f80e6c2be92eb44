/*
 * loadgen.c: the load generator of `make bench`. One process, one poll
 * loop and many non-blocking connections, TLS through libtls, so that
 * its own CPU cost per connection stays small beside the daemon it
 * measures on the same two cores.
 *
 * Client modes (against bridged, or against `loadgen serve`):
 *   connect  each of -n slots loops: connect, TLS handshake, read the
 *            greeting reply, close; times connect-to-greeting.
 *   chat     -n sessions; each loops: ASK, timed up to its `. OK`
 *            status line; every -T prompts (25) it sends NEW first
 *            (not timed), so that conversations grow to -T turns.
 *   stream   as chat, and prints the CLOCK_MONOTONIC time of the first
 *            body byte of every answer: `first <seq> <ns>`.
 *   idle     opens -n sessions, prints `ready <n>` once every greeting
 *            is in, holds them until standard input closes (or -t).
 * Floors:
 *   http     -n plain keep-alive HTTP/1.1 clients, each loops one POST
 *            (-u path, -g API key) and times it to the end of the body;
 *            with -F it prints the first body byte's time as stream does.
 *   serve    a minimal libtls server (-c cert, -k key): handshake, the
 *            same greeting as bridged, then it reads until the client
 *            leaves. -f processes share the listening socket.
 *   fork     the floor of a process per client, without TLS or sockets:
 *            a process holding -A KiB of written memory (a template)
 *            forks a child that writes -W of those pages, reads -R
 *            pages of the libraries this program has mapped (libcrypto
 *            and libssl first, as a worker's handshake does), and
 *            exits; the parent reaps it, and again. The time of each
 *            is one operation; the CPU is the parent's and the
 *            children's.
 *
 * -f runs connect, chat or http in that many processes, so that the
 * load generator can use both cores as the daemon does. -i ms makes
 * each connection of connect wait that long after the one before, so
 * that what the server does between clients is not on the next one's
 * path (one client at a time, not back to back).
 *
 * Cost: the handshake dominates. Measured on the project's two-core
 * machine (libretls on OpenSSL 3.0), a client handshake costs about
 * 1.1 ms of CPU, plus 0.3 ms because libtls makes an SSL_CTX for every
 * connection; verifying the server's chain (-a) costs more, so by
 * default it is not verified. Each result line says what loadgen
 * itself spent per operation.
 * Client results are one line on standard output:
 *   <mode> conns=N ops=N secs=S rate=R p50_us=U p90_us=U p99_us=U
 *   max_us=U errors=N cpu_us_per_op=U ops_all=N
 * ops counts the operations inside the window (after -w seconds of
 * warm-up, for -t seconds); ops_all every one, for CPU per operation.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#define WANT		(-2)	/* c_read/c_write: wait for poll */
#define LINE_MAX_ST	16	/* status text kept by the scanner */
#define OUT_MAX		1024
#define HEAD_MAX	8192
#define SERVE_PROCS_MAX	16

enum mode {
	M_CONNECT,
	M_CHAT,
	M_STREAM,
	M_IDLE,
	M_HTTP,
	M_SERVE,
	M_FORK
};

enum cstate {
	S_FREE,		/* no connection; start one at c->resume */
	S_DONE,		/* no connection; start no more */
	S_CONNECT,	/* TCP connect in progress */
	S_HANDSHAKE,	/* client TLS handshake */
	S_GREETING,	/* waiting for the greeting's status line */
	S_RESET,	/* NEW sent, waiting for its status line */
	S_ASK,		/* ASK sent, waiting for its status line */
	S_HOLD,		/* idle: holding the session */
	S_HTTP,		/* request sent, reading the response */
	S_SHAKE,	/* server TLS handshake */
	S_SERVE		/* server: greeting sent or queued; reading */
};

/* Reply scanner: where in a line we are. */
enum scan {
	SC_START,	/* at the start of a line */
	SC_BODY,	/* in a body line */
	SC_DOT,		/* a line that began with '.' */
	SC_STATUS	/* in a status line `. ...` */
};

struct conn {
	int		 fd;
	struct tls	*tls;
	enum cstate	 state;
	short		 want;
	uint64_t	 t0;		/* start of the timed operation */
	uint64_t	 resume;	/* S_FREE: start again from then */
	uint64_t	 first;		/* stream: first body byte */
	unsigned int	 seq;		/* stream: the prompt's number */
	unsigned int	 turns;		/* chat: prompts in its conversation */
	char		 out[OUT_MAX];
	size_t		 olen, ooff;
	enum scan	 sc;
	char		 st[LINE_MAX_ST];
	size_t		 stlen;
	/* http response parsing */
	char		*head;
	size_t		 hlen;
	int		 hdone, chunked, hclose, cst;
	long long	 remain;
	char		 csz[24];
	size_t		 cszlen;
};

static enum mode	 mode;
static struct conn	*conns;
static struct pollfd	*pfds;
static int		 nconns = 1;
static int		 plain;
static int		 firsts;	/* http: print first body byte times */
static int		 jmax = 16;	/* idle: handshakes at a time */
static const char	*host = "127.0.0.1";
static int		 port;
static const char	*text = "bench";
static const char	*apikey = "";
static const char	*path = "/";
static struct tls_config *cfg;
static struct tls	*srvctx;
static struct sockaddr_storage peer;
static socklen_t	 peerlen;

static uint64_t		 t_start, t_ws, t_we, t_stop;
static uint64_t		*samples;
static size_t		 nsamples, samplecap;
static unsigned long	 ops_total, errors, inprogress, ready;
static unsigned int	 seqno;
static char		 firsterr[256];
static volatile sig_atomic_t quit;
static int		 stdin_open = 1;
static uint64_t		 pace_ms;	/* -i: pause between operations */
static unsigned int	 turns_max = 25;	/* -T: prompts per conversation */
static char		 greeting[128];
static size_t		 greetlen;

static void	usage(void) __attribute__((__noreturn__));
static void	conn_start(struct conn *);
static void	conn_close(struct conn *);
static void	conn_fail(struct conn *, const char *);
static void	conn_read(struct conn *);
static void	conn_io(struct conn *);

/* How to call it; exit 2. */
static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen [-P] [-a cafile] [-f procs] [-h host] [-i ms] "
	    "[-j handshakes] [-m text]\n"
	    "               [-n conns] [-T turns] [-t secs] [-w secs] -p port "
	    "connect|chat|stream|idle\n"
	    "       loadgen [-F] [-f procs] [-h host] [-m text] [-n conns] "
	    "[-t secs]\n"
	    "               [-w secs] [-g apikey] -u path "
	    "-p port http\n"
	    "       loadgen [-f procs] [-h host] [-n conns] -c cert -k key "
	    "-p port serve\n"
	    "       loadgen [-t secs] [-w secs] -A kib -R pages -W pages "
	    "fork\n");
	exit(2);
}

/* Nanoseconds on the monotonic clock, comparable between processes. */
static uint64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec);
}

/* SIGINT, SIGTERM: end the run and report. */
static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

/* Keep one latency sample if the operation lies inside the window. */
static void
record(uint64_t t0, uint64_t t1)
{
	uint64_t	*p;
	size_t		 n;

	ops_total++;
	if (t0 < t_ws || t1 > t_we)
		return;
	if (nsamples == samplecap) {
		n = samplecap ? samplecap * 2 : 4096;
		if ((p = reallocarray(samples, n, sizeof(*p))) == NULL)
			err(1, "reallocarray");
		samples = p;
		samplecap = n;
	}
	samples[nsamples++] = t1 - t0;
}

/* Count an error; the first one is kept to be shown. */
static void
note_error(const char *what)
{
	errors++;
	if (firsterr[0] == '\0')
		snprintf(firsterr, sizeof(firsterr), "%s", what);
}

/* qsort(3) order of the latency samples. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	 x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* Nearest-rank percentile in microseconds. */
static double
pct(double p)
{
	size_t	 i;

	if (nsamples == 0)
		return (0);
	i = (size_t)(p / 100.0 * (double)(nsamples - 1) + 0.5);
	if (i >= nsamples)
		i = nsamples - 1;
	return (samples[i] / 1000.0);
}

/* The result line: rate, percentiles, errors, our own CPU. */
static void
report(const char *name)
{
	struct rusage	 ru, rc;
	double		 secs, cpu;

	getrusage(RUSAGE_SELF, &ru);
	getrusage(RUSAGE_CHILDREN, &rc);
	cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec +
	    rc.ru_utime.tv_sec * 1e6 + rc.ru_utime.tv_usec +
	    rc.ru_stime.tv_sec * 1e6 + rc.ru_stime.tv_usec;
	qsort(samples, nsamples, sizeof(*samples), cmp_u64);
	secs = (t_we - t_ws) / 1e9;
	printf("%s conns=%d ops=%zu secs=%.3f rate=%.1f p50_us=%.1f "
	    "p90_us=%.1f p99_us=%.1f max_us=%.1f errors=%lu "
	    "cpu_us_per_op=%.1f ops_all=%lu\n", name, nconns, nsamples, secs,
	    nsamples / secs, pct(50), pct(90), pct(99), pct(100), errors,
	    ops_total ? cpu / ops_total : 0.0, ops_total);
	if (firsterr[0] != '\0')
		fprintf(stderr, "loadgen: first error: %s\n", firsterr);
	fflush(stdout);
}

/* The loopback or numeric address to connect to or listen on. */
static void
resolve(void)
{
	struct addrinfo	 hints, *res;
	char		 pbuf[16];
	int		 e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (mode == M_SERVE)
		hints.ai_flags |= AI_PASSIVE;
	snprintf(pbuf, sizeof(pbuf), "%d", port);
	if ((e = getaddrinfo(host, pbuf, &hints, &res)) != 0)
		errx(1, "%s: %s", host, gai_strerror(e));
	memcpy(&peer, res->ai_addr, res->ai_addrlen);
	peerlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* ---- byte I/O, TLS or plain ----------------------------------------- */

/* Read from a connection, TLS or plain; WANT with c->want set. */
static ssize_t
c_read(struct conn *c, void *buf, size_t len)
{
	ssize_t	 n;

	if (c->tls == NULL) {
		n = read(c->fd, buf, len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			c->want = POLLIN;
			return (WANT);
		}
		return (n);
	}
	n = tls_read(c->tls, buf, len);
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		c->want = n == TLS_WANT_POLLIN ? POLLIN : POLLOUT;
		return (WANT);
	}
	return (n);
}

/* Write to a connection, TLS or plain; WANT with c->want set. */
static ssize_t
c_write(struct conn *c, const void *buf, size_t len)
{
	ssize_t	 n;

	if (c->tls == NULL) {
		n = write(c->fd, buf, len);
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			c->want = POLLOUT;
			return (WANT);
		}
		return (n);
	}
	n = tls_write(c->tls, buf, len);
	if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
		c->want = n == TLS_WANT_POLLIN ? POLLIN : POLLOUT;
		return (WANT);
	}
	return (n);
}

/* Write what is queued. -1 on error, 0 when all is out, 1 to wait. */
static int
flush_out(struct conn *c)
{
	ssize_t	 n;

	while (c->ooff < c->olen) {
		n = c_write(c, c->out + c->ooff, c->olen - c->ooff);
		if (n == WANT)
			return (1);
		if (n <= 0) {
			conn_fail(c, c->tls ? tls_error(c->tls) : strerror(errno));
			return (-1);
		}
		c->ooff += n;
	}
	c->olen = c->ooff = 0;
	c->want = POLLIN;
	return (0);
}

/* Queue a line and start writing it. */
/* Queue one line for the server. */
static int
send_line(struct conn *c, const char *fmt, ...)
    __attribute__((__format__(printf, 2, 3)));

/* Queue one line for the server. */
static int
send_line(struct conn *c, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(c->out, sizeof(c->out), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->out))
		errx(1, "line too long");
	c->olen = n;
	c->ooff = 0;
	return (flush_out(c));
}

/* ---- client sessions ------------------------------------------------- */

/* No new operation after the window, nor after a signal. */
static int
over(void)
{
	return (quit || now_ns() >= t_we);
}

/* Close a connection; free its slot for the next one. */
static void
conn_close(struct conn *c)
{
	if (c->tls != NULL) {
		/* One try at close_notify; nothing waits for the peer. */
		(void)tls_close(c->tls);
		tls_free(c->tls);
		c->tls = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->olen = c->ooff = 0;
	c->sc = SC_START;
	c->stlen = 0;
	free(c->head);
	c->head = NULL;
	c->hlen = 0;
	if (c->state == S_CONNECT || c->state == S_HANDSHAKE ||
	    c->state == S_GREETING)
		inprogress--;
	c->state = mode == M_SERVE || mode == M_IDLE || over() ?
	    S_DONE : S_FREE;
	/* Paced: the server is left idle between one and the next. */
	if (c->state == S_FREE && pace_ms > 0)
		c->resume = now_ns() + pace_ms * 1000000ULL;
}

/* A connection failed: count it, close it, wait a little. */
static void
conn_fail(struct conn *c, const char *why)
{
	note_error(why != NULL ? why : "unknown error");
	conn_close(c);
	/* Do not spin on a refusing server. */
	c->resume = now_ns() + 10000000ULL;
}

/* Send the next prompt and start its clock. */
static void
send_ask(struct conn *c)
{
	c->state = S_ASK;
	c->seq = ++seqno;
	c->turns++;
	c->first = 0;
	c->t0 = now_ns();
	(void)send_line(c, "ASK %s #%u\n", text, c->seq);
}

/* The next timed prompt of a chat or stream session. */
static void
next_prompt(struct conn *c)
{
	if (over()) {
		conn_close(c);
		return;
	}
	if (c->turns > 0 && c->turns < turns_max) {
		send_ask(c);
		return;
	}
	c->turns = 0;
	c->state = S_RESET;
	(void)send_line(c, "NEW\n");
}


/* A status line came in; act on it. Returns 1 if c was closed. */
static int
on_status(struct conn *c, const char *st)
{
	uint64_t	 t = now_ns();
	int		 ok = strncmp(st, "OK", 2) == 0;

	switch (c->state) {
	case S_GREETING:
		if (!ok) {
			conn_fail(c, st);
			return (1);
		}
		inprogress--;
		c->state = S_HOLD;	/* not counted as in progress */
		if (mode == M_CONNECT) {
			record(c->t0, t);
			conn_close(c);
			if (c->state == S_FREE && pace_ms == 0)
				conn_start(c);
			return (1);
		}
		if (mode == M_IDLE) {
			ready++;
			return (0);
		}
		next_prompt(c);
		return (c->fd == -1);
	case S_RESET:
		if (!ok)
			note_error(st);
		send_ask(c);
		return (c->fd == -1);
	case S_ASK:
		if (!ok)
			note_error(st);
		else {
			record(c->t0, t);
			if (mode == M_STREAM && c->first != 0)
				printf("first %u %llu\n", c->seq,
				    (unsigned long long)c->first);
		}
		next_prompt(c);
		return (c->fd == -1);
	default:
		note_error("unexpected reply");
		return (0);
	}
}

/* Find status lines in what the server sent. */
static int
scan(struct conn *c, const char *p, size_t n)
{
	size_t	 i;
	char	 ch;

	for (i = 0; i < n; i++) {
		ch = p[i];
		switch (c->sc) {
		case SC_START:
			if (ch == '.')
				c->sc = SC_DOT;
			else if (ch != '\n')
				c->sc = SC_BODY;
			break;
		case SC_BODY:
			if (ch == '\n')
				c->sc = SC_START;
			break;
		case SC_DOT:
			if (ch != '\n' && ch != ' ') {
				c->sc = SC_BODY;	/* "..": dot-stuffed */
				break;
			}
			c->sc = SC_STATUS;
			c->stlen = 0;
			if (ch == ' ')
				break;
			/* A lone "." ends a reply too. */
			/* FALLTHROUGH */
		case SC_STATUS:
			if (ch != '\n') {
				if (c->stlen < sizeof(c->st) - 1)
					c->st[c->stlen++] = ch;
				break;
			}
			c->st[c->stlen] = '\0';
			c->sc = SC_START;
			if (on_status(c, c->st))
				return (1);
			break;
		}
	}
	return (0);
}

/* ---- HTTP floor --------------------------------------------------------- */

/* The floor of chat: one POST to the upstream itself. */
static void
http_send(struct conn *c)
{
	char	 body[256];
	int	 n;

	c->seq = ++seqno;
	c->first = 0;
	n = snprintf(body, sizeof(body), "{\"contents\": [{\"role\": "
	    "\"user\", \"parts\": [{\"text\": \"%s #%u\"}]}]}", text,
	    c->seq);
	if (n < 0 || (size_t)n >= sizeof(body))
		errx(1, "-m text too long");
	c->state = S_HTTP;
	c->hdone = c->chunked = c->hclose = c->cst = 0;
	c->remain = -1;
	c->hlen = 0;
	c->cszlen = 0;
	c->t0 = now_ns();
	(void)send_line(c, "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
	    "x-goog-api-key: %s\r\nContent-Type: application/json\r\n"
	    "Accept: */*\r\nContent-Length: %d\r\n\r\n%s", path, host, port,
	    apikey, n, body);
}

/* The response is complete: time it and go on. */
static int
http_done(struct conn *c)
{
	record(c->t0, now_ns());
	if (firsts && c->first != 0)
		printf("first %u %llu\n", c->seq,
		    (unsigned long long)c->first);
	if (c->hclose || over()) {
		conn_close(c);
		if (c->state == S_FREE)
			conn_start(c);
		return (1);
	}
	http_send(c);
	return (c->fd == -1);
}

/* Parse the response head once it is whole. */
static int
http_head(struct conn *c)
{
	char	*h = c->head, *v;
	size_t	 i;

	for (i = 0; i < c->hlen; i++)
		h[i] = tolower((unsigned char)h[i]);
	h[c->hlen] = '\0';
	if (strncmp(h, "http/1.1 200 ", 13) != 0 &&
	    strncmp(h, "http/1.0 200 ", 13) != 0)
		return (-1);
	if (strstr(h, "\ntransfer-encoding: chunked") != NULL)
		c->chunked = 1;
	else if ((v = strstr(h, "\ncontent-length:")) != NULL)
		c->remain = strtoll(v + 16, NULL, 10);
	if (strstr(h, "\nconnection: close") != NULL ||
	    strncmp(h, "http/1.0", 8) == 0)
		c->hclose = 1;
	c->hdone = 1;
	return (0);
}

/* Body bytes: chunked or counted. 1 when the body ended, -1 if bad. */
static int
http_body(struct conn *c, const char *p, size_t n)
{
	size_t	 i, k;

	if (!c->chunked) {
		if (c->remain < 0)	/* close-delimited: read to EOF */
			return (0);
		c->remain -= n;
		return (c->remain <= 0);
	}
	for (i = 0; i < n; i++) {
		switch (c->cst) {
		case 0:		/* the size line */
			if (p[i] == '\n') {
				c->csz[c->cszlen] = '\0';
				c->remain = strtoll(c->csz, NULL, 16);
				c->cszlen = 0;
				if (c->remain < 0 || c->remain > (1LL << 40))
					return (-1);
				c->cst = c->remain == 0 ? 3 : 1;
			} else if (c->cszlen < sizeof(c->csz) - 1)
				c->csz[c->cszlen++] = p[i];
			break;
		case 1:		/* chunk data */
			k = n - i;
			if ((long long)k > c->remain)
				k = c->remain;
			c->remain -= k;
			i += k - 1;
			if (c->remain == 0)
				c->cst = 2;
			break;
		case 2:		/* the CRLF after the data */
			if (p[i] == '\n')
				c->cst = 0;
			break;
		case 3:		/* trailers, up to an empty line */
			if (p[i] == '\n') {
				if (c->cszlen == 0)
					return (1);
				c->cszlen = 0;
			} else if (p[i] != '\r')
				c->cszlen++;
			break;
		}
	}
	return (0);
}

/* Response bytes arrived. Returns 1 if c was closed or restarted. */
static int
http_input(struct conn *c, const char *p, size_t n)
{
	char	*e;
	size_t	 used, k;

	if (!c->hdone) {
		if (c->head == NULL && (c->head = malloc(HEAD_MAX + 1)) == NULL)
			err(1, "malloc");
		k = n;
		if (k > HEAD_MAX - c->hlen)
			k = HEAD_MAX - c->hlen;
		memcpy(c->head + c->hlen, p, k);
		c->head[c->hlen + k] = '\0';
		if ((e = strstr(c->head, "\r\n\r\n")) == NULL) {
			c->hlen += k;
			if (c->hlen == HEAD_MAX) {
				conn_fail(c, "response head too long");
				return (1);
			}
			return (0);
		}
		used = (e + 4 - c->head) - c->hlen;
		c->hlen = e + 4 - c->head;
		if (http_head(c) == -1) {
			conn_fail(c, "HTTP status not 200");
			return (1);
		}
		p += used;
		n -= used;
	}
	if (n > 0 && c->first == 0)
		c->first = now_ns();
	switch (http_body(c, p, n)) {
	case -1:
		conn_fail(c, "bad chunk size");
		return (1);
	case 1:
		return (http_done(c));
	}
	return (0);
}

/* ---- the state machine ------------------------------------------------ */

/* Open a new connection in this slot. */
static void
conn_start(struct conn *c)
{
	int	 fd, one = 1;

	if (over()) {
		c->state = S_DONE;
		return;
	}
	c->t0 = now_ns();
	fd = socket(peer.ss_family, SOCK_STREAM, 0);
	if (fd == -1) {
		note_error(strerror(errno));
		c->resume = now_ns() + 10000000ULL;
		return;
	}
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->sc = SC_START;
	c->turns = 0;
	inprogress++;
	c->state = S_CONNECT;
	c->want = POLLOUT;
	if (connect(fd, (struct sockaddr *)&peer, peerlen) == 0)
		conn_io(c);
	else if (errno != EINPROGRESS)
		conn_fail(c, strerror(errno));
}

/* The TCP connection is up: start TLS or the first request. */
static void
connected(struct conn *c)
{
	int	 e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1 ||
	    e != 0) {
		conn_fail(c, strerror(e ? e : errno));
		return;
	}
	if (mode == M_HTTP) {
		inprogress--;
		http_send(c);
		return;
	}
	if (plain) {
		c->state = S_GREETING;
		c->want = POLLIN;
		conn_read(c);
		return;
	}
	if ((c->tls = tls_client()) == NULL)
		err(1, "tls_client");
	if (tls_configure(c->tls, cfg) == -1)
		errx(1, "tls_configure: %s", tls_error(c->tls));
	if (tls_connect_socket(c->tls, c->fd, "localhost") == -1) {
		conn_fail(c, tls_error(c->tls));
		return;
	}
	c->state = S_HANDSHAKE;
	conn_io(c);
}

/* Read everything there is; libtls may hold records poll cannot see. */
static void
conn_read(struct conn *c)
{
	char	 buf[16384];
	ssize_t	 n;

	while (c->fd != -1) {
		n = c_read(c, buf, sizeof(buf));
		if (n == WANT)
			return;
		if (n <= 0) {
			if (mode == M_HTTP && c->hdone && !c->chunked &&
			    c->remain < 0 && n == 0) {
				c->hclose = 1;
				(void)http_done(c);
				return;
			}
			if (mode == M_SERVE) {
				conn_close(c);
				return;
			}
			conn_fail(c, n == 0 ? "connection closed" :
			    c->tls ? tls_error(c->tls) : strerror(errno));
			return;
		}
		if (mode == M_SERVE)
			continue;	/* a floor server reads and forgets */
		if (mode == M_HTTP) {
			if (http_input(c, buf, n))
				return;
			continue;
		}
		if (c->state == S_ASK && c->first == 0)
			c->first = now_ns();
		if (scan(c, buf, n))
			return;
	}
}

/* The connection is ready for what its state waits for. */
static void
conn_io(struct conn *c)
{
	int	 r;

	switch (c->state) {
	case S_CONNECT:
		connected(c);
		return;
	case S_HANDSHAKE:
	case S_SHAKE:
		r = tls_handshake(c->tls);
		if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
			c->want = r == TLS_WANT_POLLIN ? POLLIN : POLLOUT;
			return;
		}
		if (r == -1) {
			if (c->state == S_SHAKE) {
				conn_close(c);
				return;
			}
			conn_fail(c, tls_error(c->tls));
			return;
		}
		if (c->state == S_SHAKE) {
			c->state = S_SERVE;
			memcpy(c->out, greeting, greetlen);
			c->olen = greetlen;
			c->ooff = 0;
			if (flush_out(c) == -1)
				return;
		} else {
			c->state = S_GREETING;
			c->want = POLLIN;
		}
		conn_read(c);
		return;
	default:
		if (c->olen > c->ooff) {
			r = flush_out(c);
			if (r != 0)
				return;
		}
		conn_read(c);
		return;
	}
}

/* ---- the floor server ------------------------------------------------- */

/* The floor server's listening socket; its port is printed. */
static int
serve_listen(void)
{
	int	 fd, one = 1;

	if ((fd = socket(peer.ss_family, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&peer, peerlen) == -1)
		err(1, "bind");
	if (listen(fd, 1024) == -1)
		err(1, "listen");
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
		err(1, "fcntl");
	return (fd);
}

/* Take every waiting connection while there is a free slot. */
static void
serve_accept(int lfd)
{
	struct conn	*c;
	int		 fd, i, one = 1;

	for (i = 0; i < nconns; i++) {
		c = &conns[i];
		if (c->fd != -1)
			continue;
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				note_error(strerror(errno));
			return;
		}
		if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
			err(1, "fcntl");
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		c->fd = fd;
		c->sc = SC_START;
		if (tls_accept_socket(srvctx, &c->tls, fd) == -1) {
			note_error(tls_error(srvctx));
			close(fd);
			c->fd = -1;
			continue;
		}
		c->state = S_SHAKE;
		c->want = POLLIN;
		conn_io(c);
	}
}

/* ---- main loop ---------------------------------------------------- */

/* Idle: has every session its greeting, or failed? */
static int
all_settled(void)
{
	int	 i;

	for (i = 0; i < nconns; i++)
		if (conns[i].state != S_HOLD && conns[i].state != S_DONE)
			return (0);
	return (1);
}

/* The poll loop of every mode (lfd: serve's socket, or -1). */
static void
loop(int lfd)
{
	struct conn	*c;
	uint64_t	 t;
	int		 i, n, timeout, active, extra, announced = 0;
	char		 b[64];

	extra = nconns;
	for (;;) {
		t = now_ns();
		active = 0;
		for (i = 0; i < nconns; i++) {
			c = &conns[i];
			if (c->state == S_FREE && c->resume <= t && !quit &&
			    (mode != M_IDLE || inprogress < (unsigned long)jmax))
				conn_start(c);
			pfds[i].fd = c->fd;
			pfds[i].events = c->want;
			pfds[i].revents = 0;
			if (c->fd != -1 || c->state == S_FREE)
				active++;
		}
		n = nconns;
		if (lfd != -1) {
			pfds[n].fd = quit ? -1 : lfd;
			pfds[n].events = POLLIN;
			pfds[n].revents = 0;
			n++;
		} else if (mode == M_IDLE) {
			pfds[n].fd = stdin_open ? STDIN_FILENO : -1;
			pfds[n].events = POLLIN;
			pfds[n].revents = 0;
			n++;
		}
		if (mode == M_SERVE) {
			if (quit)
				return;
		} else if (active == 0 || quit || t >= t_stop)
			return;
		timeout = mode == M_SERVE ? 1000 : 10;
		if (poll(pfds, n, timeout) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (i = 0; i < nconns; i++) {
			if (pfds[i].revents == 0 || conns[i].fd == -1)
				continue;
			conn_io(&conns[i]);
		}
		if (lfd != -1 && (pfds[extra].revents & POLLIN))
			serve_accept(lfd);
		if (mode == M_IDLE && !announced && all_settled()) {
			announced = 1;
			printf("ready %lu failed %lu\n", ready, errors);
			fflush(stdout);
		}
		if (mode == M_IDLE && stdin_open && pfds[extra].revents) {
			if (read(STDIN_FILENO, b, sizeof(b)) <= 0)
				return;
		}
	}
}

/* The floor server: procs processes on one socket, until signalled. */
static void
serve(int procs, const char *cert, const char *key)
{
	pid_t	 kids[SERVE_PROCS_MAX];
	int	 lfd, i, n = 0;

	if ((cfg = tls_config_new()) == NULL)
		err(1, "tls_config_new");
	if (tls_config_set_keypair_file(cfg, cert, key) == -1)
		errx(1, "%s, %s: %s", cert, key, tls_config_error(cfg));
	if ((srvctx = tls_server()) == NULL)
		err(1, "tls_server");
	if (tls_configure(srvctx, cfg) == -1)
		errx(1, "tls_configure: %s", tls_error(srvctx));
	lfd = serve_listen();
	if (port == 0) {
		struct sockaddr_storage	 ss;
		socklen_t		 len = sizeof(ss);

		if (getsockname(lfd, (struct sockaddr *)&ss, &len) == -1)
			err(1, "getsockname");
		port = ntohs(ss.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	greetlen = snprintf(greeting, sizeof(greeting),
	    "ID:000000000000\nConnected to %s:%d\n. OK bridged/0.1 ready\n",
	    host, port);
	printf("port %d\n", port);
	fflush(stdout);
	for (i = 1; i < procs; i++) {
		switch (kids[n] = fork()) {
		case -1:
			err(1, "fork");
		case 0:
			loop(lfd);
			_exit(0);
		default:
			n++;
		}
	}
	loop(lfd);
	for (i = 0; i < n; i++)
		kill(kids[i], SIGTERM);
	for (i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0);
}

/* A whole number from the command line, within bounds. */
static int
num(const char *s, long lo, long hi, const char *opt)
{
	char	*e;
	long	 v;

	errno = 0;
	v = strtol(s, &e, 10);
	if (errno != 0 || e == s || *e != '\0' || v < lo || v > hi)
		errx(2, "%s %s: not a number from %ld to %ld", opt, s, lo, hi);
	return ((int)v);
}

/* The slots, all in state st. */
static void
alloc_conns(enum cstate st)
{
	int	 i;

	if ((conns = calloc(nconns, sizeof(*conns))) == NULL ||
	    (pfds = calloc(nconns + 1, sizeof(*pfds))) == NULL)
		err(1, "calloc");
	for (i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].state = st;
	}
}

/* Write it all, or die. */
static void
xwrite(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "write");
		}
		p += n;
		len -= n;
	}
}

/* Read exactly len bytes; 0 at once-only EOF, else 1. */
static int
xread(int fd, void *buf, size_t len)
{
	char	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		if ((n = read(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "read");
		}
		if (n == 0)
			return (0);
		p += n;
		len -= n;
	}
	return (1);
}

/*
 * Run the client loop, in procs processes when asked (the kernel then
 * spreads them over the cores), and gather every sample here.
 */
static void
clients(int procs)
{
	struct {
		unsigned long	 ops, errors;
		size_t		 n;
	}		 r;
	pid_t		 kids[SERVE_PROCS_MAX];
	int		 fds[SERVE_PROCS_MAX], p[2], total = nconns, i;
	uint64_t	*v;

	if (procs <= 1) {
		alloc_conns(S_FREE);
		loop(-1);
		return;
	}
	for (i = 0; i < procs; i++) {
		if (pipe(p) == -1)
			err(1, "pipe");
		switch (kids[i] = fork()) {
		case -1:
			err(1, "fork");
		case 0:
			close(p[0]);
			nconns = total / procs + (i < total % procs);
			alloc_conns(S_FREE);
			loop(-1);
			r.ops = ops_total;
			r.errors = errors;
			r.n = nsamples;
			xwrite(p[1], &r, sizeof(r));
			xwrite(p[1], samples, nsamples * sizeof(*samples));
			if (firsterr[0] != '\0')
				fprintf(stderr, "loadgen: first error: %s\n",
				    firsterr);
			_exit(0);
		default:
			close(p[1]);
			fds[i] = p[0];
		}
	}
	for (i = 0; i < procs; i++) {
		if (xread(fds[i], &r, sizeof(r)) == 0 || r.n > 100000000)
			errx(1, "a client process died");
		if ((v = reallocarray(samples, nsamples + r.n + 1,
		    sizeof(*v))) == NULL)
			err(1, "reallocarray");
		samples = v;
		if (r.n > 0 && xread(fds[i], samples + nsamples,
		    r.n * sizeof(*v)) == 0)
			errx(1, "a client process died");
		nsamples += r.n;
		ops_total += r.ops;
		errors += r.errors;
		close(fds[i]);
	}
	for (i = 0; i < procs; i++)
		waitpid(kids[i], NULL, 0);
}

/* A number of seconds from the command line. */
static double
seconds(const char *s)
{
	char	*e;
	double	 d;

	errno = 0;
	d = strtod(s, &e);
	if (errno != 0 || e == s || *e != '\0' || d < 0 || d > 3600)
		errx(2, "bad number of seconds: %s", s);
	return (d);
}

/* ---- fork: the floor of a process per client ---------------------- */

#define FORK_SEGS	128

/* The read-only segments of the loaded objects, crypto first. */
static struct {
	const char	*base;
	size_t		 pages;
	int		 crypto;
}		 segs[FORK_SEGS];
static size_t	 nsegs;

/* dl_iterate_phdr(3): note the read-only segments of an object. */
static int
fork_seg(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t	 a, e, pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	int		 i, crypto;

	(void)size;
	(void)arg;
	crypto = info->dlpi_name != NULL &&
	    (strstr(info->dlpi_name, "libcrypto") != NULL ||
	    strstr(info->dlpi_name, "libssl") != NULL);
	for (i = 0; i < info->dlpi_phnum && nsegs < FORK_SEGS; i++) {
		if (info->dlpi_phdr[i].p_type != PT_LOAD ||
		    (info->dlpi_phdr[i].p_flags & PF_W))
			continue;
		a = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
		e = a + info->dlpi_phdr[i].p_memsz;
		a &= ~(pg - 1);
		segs[nsegs].base = (const char *)a;
		segs[nsegs].pages = (e - a + pg - 1) / pg;
		segs[nsegs].crypto = crypto;
		nsegs++;
	}
	return (0);
}

/* In the child: read one byte of each of n pages, crypto first. */
static unsigned
fork_read(size_t n, const char *anon, size_t anonpages)
{
	volatile const char	*p;
	size_t			 i, j, pg = (size_t)sysconf(_SC_PAGESIZE);
	unsigned		 sum = 0;
	int			 pass;

	for (pass = 1; pass >= 0 && n > 0; pass--)
		for (i = 0; i < nsegs && n > 0; i++) {
			if (segs[i].crypto != pass)
				continue;
			for (j = 0; j < segs[i].pages && n > 0; j++, n--) {
				p = segs[i].base + j * pg;
				sum += *p;
			}
		}
	/* More than the libraries hold: the rest in the written memory. */
	for (i = 0; i < n && i < anonpages; i++) {
		p = anon + i * pg;
		sum += *p;
	}
	return (sum);
}

/* Fork, touch like a worker, exit, reap; again until the time is up. */
static void
fork_floor(size_t kib, size_t rpages, size_t wpages)
{
	size_t	 pg = (size_t)sysconf(_SC_PAGESIZE), i, npages;
	char	*mem;
	pid_t	 pid;
	uint64_t t0;
	int	 status;

	npages = (kib * 1024 + pg - 1) / pg;
	if (wpages > npages)
		wpages = npages;
	if ((mem = mmap(NULL, npages * pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		err(1, "mmap");
	memset(mem, 1, npages * pg);
	dl_iterate_phdr(fork_seg, NULL);
	while (!quit && now_ns() < t_we) {
		t0 = now_ns();
		if ((pid = fork()) == -1)
			err(1, "fork");
		if (pid == 0) {
			for (i = 0; i < wpages; i++)
				mem[i * pg]++;
			_exit(fork_read(rpages, mem, npages) == 1);
		}
		if (waitpid(pid, &status, 0) == -1)
			err(1, "waitpid");
		if (!WIFEXITED(status))
			note_error("child did not exit");
		record(t0, now_ns());
	}
}

/* The mode named last, with the options before it. */
int
main(int argc, char *argv[])
{
	struct sigaction sa;
	struct rlimit	 rl;
	const char	*cafile = NULL, *cert = NULL, *key = NULL;
	double		 secs = 5, warm = 1;
	int		 ch, procs = 1, tset = 0, nset = 0;
	int		 fkib = -1, fread = 0, fwrite = 0;

	while ((ch = getopt(argc, argv, "A:a:c:Ff:g:h:i:j:k:m:n:Pp:R:T:t:u:W:w:"))
	    != -1) {
		switch (ch) {
		case 'A':
			fkib = num(optarg, 0, 16 * 1024 * 1024, "-A");
			break;
		case 'R':
			fread = num(optarg, 0, 1024 * 1024, "-R");
			break;
		case 'W':
			fwrite = num(optarg, 0, 1024 * 1024, "-W");
			break;
		case 'a':
			cafile = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'F':
			firsts = 1;
			break;
		case 'f':
			procs = num(optarg, 1, SERVE_PROCS_MAX, "-f");
			break;
		case 'g':
			apikey = optarg;
			break;
		case 'h':
			host = optarg;
			break;
		case 'i':
			pace_ms = num(optarg, 0, 60000, "-i");
			break;
		case 'T':
			turns_max = num(optarg, 1, 100000, "-T");
			break;
		case 'j':
			jmax = num(optarg, 1, 10000, "-j");
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			text = optarg;
			break;
		case 'n':
			nconns = num(optarg, 1, 100000, "-n");
			nset = 1;
			break;
		case 'P':
			plain = 1;
			break;
		case 'p':
			port = num(optarg, 0, 65535, "-p");
			break;
		case 't':
			secs = seconds(optarg);
			tset = 1;
			break;
		case 'u':
			path = optarg;
			break;
		case 'w':
			warm = seconds(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		usage();
	if (strcmp(argv[0], "connect") == 0)
		mode = M_CONNECT;
	else if (strcmp(argv[0], "chat") == 0)
		mode = M_CHAT;
	else if (strcmp(argv[0], "stream") == 0)
		mode = M_STREAM;
	else if (strcmp(argv[0], "idle") == 0)
		mode = M_IDLE;
	else if (strcmp(argv[0], "http") == 0)
		mode = M_HTTP;
	else if (strcmp(argv[0], "serve") == 0)
		mode = M_SERVE;
	else if (strcmp(argv[0], "fork") == 0)
		mode = M_FORK;
	else
		usage();
	if (mode == M_FORK) {
		if (fkib == -1)
			errx(2, "fork needs -A kib");
		t_start = now_ns();
		t_ws = t_start + (uint64_t)(warm * 1e9);
		t_we = t_ws + (uint64_t)(secs * 1e9);
		nconns = 1;
		fork_floor(fkib, fread, fwrite);
		t_we = t_we < now_ns() ? t_we : now_ns();
		report(argv[0]);
		return (0);
	}
	if (port == 0 && mode != M_SERVE)
		errx(2, "-p port is needed");
	if (mode == M_SERVE && (cert == NULL || key == NULL))
		errx(2, "serve needs -c cert and -k key");
	if (mode == M_SERVE && !nset)
		nconns = 1024;	/* sessions at a time per process */
	if (mode == M_HTTP)
		plain = 1;
	if (strchr(text, '"') != NULL || strchr(text, '\\') != NULL ||
	    strchr(text, '\n') != NULL)
		errx(2, "-m text may not hold quotes, backslashes or newlines");

	/* Many connections need many descriptors. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (tls_init() == -1)
		errx(1, "tls_init");
	resolve();
	if (mode == M_SERVE) {
		alloc_conns(S_DONE);
		serve(procs, cert, key);
		return (0);
	}
	if (procs > 1 && (mode == M_STREAM || mode == M_IDLE))
		errx(2, "-f is for connect, chat, http and serve");
	if (procs > nconns)
		procs = nconns;
	if (!plain) {
		if ((cfg = tls_config_new()) == NULL)
			err(1, "tls_config_new");
		if (cafile != NULL) {
			if (tls_config_set_ca_file(cfg, cafile) == -1)
				errx(1, "%s: %s", cafile,
				    tls_config_error(cfg));
		} else {
			/* The test certificate; and verifying costs CPU. */
			tls_config_insecure_noverifycert(cfg);
			tls_config_insecure_noverifyname(cfg);
		}
	}
	if (mode == M_IDLE) {
		/* Hold until told, or at most -t seconds (default 120). */
		warm = 0;
		if (!tset)
			secs = 120;
	}
	t_start = now_ns();
	t_ws = t_start + (uint64_t)(warm * 1e9);
	t_we = t_ws + (uint64_t)(secs * 1e9);
	t_stop = t_we + 3000000000ULL;	/* in-flight ones may finish */
	clients(procs);
	if (mode == M_IDLE) {
		printf("idle conns=%d ready=%lu errors=%lu\n", nconns, ready,
		    errors);
		if (firsterr[0] != '\0')
			fprintf(stderr, "loadgen: first error: %s\n",
			    firsterr);
		return (0);
	}
	t_we = t_we < now_ns() ? t_we : now_ns();
	report(argv[0]);
	return (0);
}
