/*
 * bench_relay.c: the floor of bridged's chat path for `make bench`: the
 * same processes and the same hops, with nothing else in them. A
 * process per client ends its TLS (libtls, the certificate given) and,
 * for each ASK, has a storage process commit the prompt (one INSERT,
 * its own transaction, in a SQLite file in WAL mode with synchronous
 * NORMAL as bridged's default), has a provider process ask the
 * upstream, writes each piece of the answer to the client as it comes,
 * has storage commit the answer, and writes `. OK`. NEW is answered at
 * once. The hops are blocking reads and writes of a length and the
 * bytes over Unix sockets.
 *
 * With -u, the provider POSTs each prompt (one user turn, as loadgen's
 * http mode) to the upstream on 127.0.0.1 over a keep-alive HTTP/1.1
 * connection of that client's, in one poll loop for every client, and
 * hands each read's body bytes (chunked framing taken off) to the
 * client process as one hop, then an empty hop at the response's end:
 * a wake-up of both per piece, as in bridged. The client gets the body
 * as it is (the SSE text), dot-stuffed. Without -u the provider
 * answers from memory, one piece. Figures only; it never judges.
 *
 * It is also the floor of a process per client: each connection is a
 * fork of a parent that configured libtls once, its handshake done in
 * the child, with no sandbox and no pool of processes made ready; its
 * CPU per connection and memory per idle session are what that shape
 * costs before anything of bridged's own.
 *
 * usage: bench_relay -c cert -k key -d dbfile [-p port]
 *	[-u upstream-port -g api-key -P path]
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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sqlite3.h>
#include <tls.h>

#define RELAY_LINE	4096		/* the longest client line */
#define RELAY_MSG	8192		/* the longest hop */
#define RELAY_LINKS	512		/* clients at once */
#define RELAY_HEAD	4096		/* the longest response head */
#define RELAY_CHUNK	(1U << 30)	/* the largest chunk believed */

static const char answer[] =
    "The relay's answer: about as long as the bench upstream's, one "
    "line of text that the client reads like any other.\n";

/* Where the provider is in a session's request to the upstream. */
enum ustate {
	U_IDLE,			/* no prompt: waiting for its client */
	U_SEND,			/* writing the request */
	U_HEAD,			/* reading the response's head */
	U_BODY			/* reading its body */
};

/* Where the body's chunked framing is. */
enum cstate {
	C_SIZE,			/* the size's hex digits, an extension */
	C_SIZELF,		/* the LF of the size line */
	C_DATA,			/* the chunk's bytes */
	C_CR,			/* the CR after them */
	C_LF,			/* the LF after them */
	C_TRAILER		/* trailer lines, up to an empty one */
};

/* A client process's session in the provider, with its upstream. */
struct sess {
	int		 link;		/* to the client process */
	int		 ufd;		/* to the upstream, or -1 */
	int		 reused;	/* ufd has carried a response */
	int		 got;		/* bytes of this response came */
	enum ustate	 st;
	char		 req[RELAY_MSG];
	size_t		 reqlen, reqoff;
	char		 head[RELAY_HEAD + 1];
	size_t		 hlen;
	int		 chunked;	/* else Content-Length */
	int		 uclose;	/* Connection: close */
	enum cstate	 cst;
	uint64_t	 remain;	/* of the chunk or of the body */
	size_t		 line;		/* bytes of a size or trailer line */
	int		 digits;	/* hex digits of the size */
	int		 ext;		/* in the size's extension */
};

static volatile sig_atomic_t	 quit;
static char			 sname[64], pname[64];	/* abstract names */
static int			 uport;			/* 0: from memory */
static const char		*ukey, *upath;

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

/*
 * Send one hop, its length and then its bytes, and if end the empty hop
 * that ends an answer after it: in one write.
 */
static int
hop_send(int fd, const void *data, uint32_t len, int end)
{
	char		 buf[2 * sizeof(len) + RELAY_MSG];
	uint32_t	 zero = 0;
	size_t		 n;

	if (len > RELAY_MSG)
		return (-1);
	memcpy(buf, &len, sizeof(len));
	memcpy(buf + sizeof(len), data, len);
	n = sizeof(len) + len;
	if (end) {
		memcpy(buf + n, &zero, sizeof(zero));
		n += sizeof(zero);
	}
	return (write(fd, buf, n) == (ssize_t)n ? 0 : -1);
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

/* The storage process: accept links, commit each hop, one at a time. */
static void
storage_run(int lfd, const char *dbpath)
{
	struct pollfd	 pfd[RELAY_LINKS + 1];
	sqlite3		*db;
	sqlite3_stmt	*ins;
	char		 msg[RELAY_MSG];
	ssize_t		 len;
	int		 n = 1, i, fd;

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
			sqlite3_bind_int(ins, 1, pfd[i].fd);
			sqlite3_bind_text(ins, 2, msg, (int)len, SQLITE_STATIC);
			if (sqlite3_step(ins) != SQLITE_DONE)
				errx(1, "insert: %s", sqlite3_errmsg(db));
			sqlite3_reset(ins);
			(void)hop_send(pfd[i].fd, "", 0, 0);
		}
		if ((pfd[0].revents & POLLIN) && n <= RELAY_LINKS &&
		    (fd = accept(lfd, NULL, NULL)) != -1) {
			pfd[n].fd = fd;
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
	}
	sqlite3_finalize(ins);
	sqlite3_close(db);
}

/*
 * The request of one prompt into s->req: a POST of one user turn, its
 * text escaped for JSON. -1 if it does not fit.
 */
static int
req_build(struct sess *s, const char *text, size_t len)
{
	static const char	 pre[] = "{\"contents\": [{\"role\": \"user\", "
	    "\"parts\": [{\"text\": \"", post[] = "\"}]}]}";
	char			 body[RELAY_MSG];
	unsigned char		 ch;
	size_t			 i, b = sizeof(pre) - 1;
	int			 n;

	memcpy(body, pre, b);
	for (i = 0; i < len; i++) {
		if (sizeof(body) - b < 6 + sizeof(post))
			return (-1);
		ch = (unsigned char)text[i];
		if (ch == '"' || ch == '\\') {
			body[b++] = '\\';
			body[b++] = (char)ch;
		} else if (ch < 0x20)
			b += (size_t)snprintf(body + b, 7, "\\u%04x", ch);
		else
			body[b++] = (char)ch;
	}
	memcpy(body + b, post, sizeof(post) - 1);
	b += sizeof(post) - 1;
	n = snprintf(s->req, sizeof(s->req), "POST %s HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\nx-goog-api-key: %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	    upath, uport, ukey, b);
	if (n < 0 || (size_t)n >= sizeof(s->req) ||
	    b > sizeof(s->req) - (size_t)n)
		return (-1);
	memcpy(s->req + n, body, b);
	s->reqlen = (size_t)n + b;
	return (0);
}

/* A nonblocking TCP connection to the upstream, under way. */
static int
up_connect(void)
{
	struct sockaddr_in	 sin;
	int			 fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return (-1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(uport);
	if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
	    sizeof(one)) == -1 ||
	    (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS)) {
		close(fd);
		return (-1);
	}
	return (fd);
}

/*
 * The response's head, whole in s->head: a 200, and how its body ends.
 * -1 if it is not one the relay can read.
 */
static int
head_parse(struct sess *s)
{
	unsigned long long	 cl;
	char			*line, *next, *v, *ep;
	int			 length = 0;

	if (strncmp(s->head, "HTTP/1.1 200 ", 13) != 0)
		return (-1);
	s->chunked = s->uclose = 0;
	for (line = strstr(s->head, "\r\n") + 2; *line != '\0'; line = next) {
		if ((next = strstr(line, "\r\n")) == NULL)
			return (-1);
		*next = '\0';
		next += 2;
		if ((v = strchr(line, ':')) == NULL)
			return (-1);
		*v++ = '\0';
		v += strspn(v, " \t");
		if (strcasecmp(line, "Content-Length") == 0) {
			errno = 0;
			cl = strtoull(v, &ep, 10);
			if (*v < '0' || *v > '9' || *ep != '\0' ||
			    errno == ERANGE || cl > RELAY_CHUNK)
				return (-1);
			s->remain = cl;
			length = 1;
		} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
			if (strcasecmp(v, "chunked") != 0)
				return (-1);
			s->chunked = 1;
		} else if (strcasecmp(line, "Connection") == 0 &&
		    strcasecmp(v, "close") == 0)
			s->uclose = 1;
	}
	if (!s->chunked && !length)
		return (-1);
	s->cst = C_SIZE;
	s->line = 0;
	s->digits = s->ext = 0;
	if (s->chunked)
		s->remain = 0;
	return (0);
}

/*
 * The body bytes of one read, p and n, their framing taken off into out
 * (room for n bytes), their count in *olen: 1 at the body's end, 0 if
 * more is to come, -1 if it is malformed or goes past its end.
 */
static int
body_decode(struct sess *s, const char *p, size_t n, char *out,
    size_t *olen)
{
	size_t	 k;
	int	 d;
	char	 ch;

	*olen = 0;
	if (!s->chunked) {
		if (n > s->remain)
			return (-1);
		memcpy(out, p, n);
		*olen = n;
		s->remain -= n;
		return (s->remain == 0);
	}
	while (n > 0) {
		if (s->cst == C_DATA) {
			k = n < s->remain ? n : (size_t)s->remain;
			memcpy(out + *olen, p, k);
			*olen += k;
			p += k;
			n -= k;
			if ((s->remain -= k) == 0)
				s->cst = C_CR;
			continue;
		}
		ch = *p++;
		n--;
		switch (s->cst) {
		case C_SIZE:
			if (++s->line > 256)
				return (-1);
			if (ch == '\r')
				s->cst = C_SIZELF;
			else if (ch == ';')
				s->ext = 1;
			if (ch == '\r' || s->ext)
				break;
			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				d = ch - 'a' + 10;
			else if (ch >= 'A' && ch <= 'F')
				d = ch - 'A' + 10;
			else
				return (-1);
			s->remain = s->remain * 16 + (uint64_t)d;
			if (s->remain > RELAY_CHUNK)
				return (-1);
			s->digits++;
			break;
		case C_SIZELF:
			if (ch != '\n' || s->digits == 0)
				return (-1);
			s->line = 0;
			s->cst = s->remain == 0 ? C_TRAILER : C_DATA;
			break;
		case C_CR:
			if (ch != '\r')
				return (-1);
			s->cst = C_LF;
			break;
		case C_LF:
			if (ch != '\n')
				return (-1);
			s->cst = C_SIZE;
			s->line = 0;
			s->digits = s->ext = 0;
			break;
		case C_TRAILER:
			if (ch == '\n') {
				if (s->line == 0)
					return (n == 0 ? 1 : -1);
				s->line = 0;
			} else if (ch != '\r' && ++s->line > RELAY_HEAD)
				return (-1);
			break;
		case C_DATA:	/* taken above */
			break;
		}
	}
	return (0);
}

/*
 * Bytes of the response came, p and n: take the head, then hand the
 * body's bytes to the client process as one piece, and the end.
 */
static int
up_input(struct sess *s, const char *p, size_t n)
{
	char	 out[RELAY_MSG], *e;
	size_t	 k, olen;
	int	 end;

	if (s->st == U_HEAD) {
		k = n < RELAY_HEAD - s->hlen ? n : RELAY_HEAD - s->hlen;
		memcpy(s->head + s->hlen, p, k);
		s->head[s->hlen + k] = '\0';
		/* Look back 3 bytes: the blank line may straddle reads. */
		e = strstr(s->head + (s->hlen > 3 ? s->hlen - 3 : 0),
		    "\r\n\r\n");
		if (e == NULL) {
			s->hlen += k;
			return (s->hlen == RELAY_HEAD ? -1 : 0);
		}
		k = (size_t)(e + 4 - s->head) - s->hlen;
		e[2] = '\0';
		if (head_parse(s) == -1)
			return (-1);
		p += k;
		n -= k;
		s->st = U_BODY;
	}
	if (n > sizeof(out) || (end = body_decode(s, p, n, out, &olen)) == -1)
		return (-1);
	/* A piece if there are body bytes, the end if it came: or both. */
	if ((olen > 0 || end) &&
	    hop_send(s->link, out, (uint32_t)olen, end && olen > 0) == -1)
		return (-1);
	if (end) {
		s->st = U_IDLE;
		s->reused = 1;
		if (s->uclose) {
			close(s->ufd);
			s->ufd = -1;
		}
	}
	return (0);
}

static int	up_start(struct sess *);

/*
 * The upstream's socket is ready: write the request, or read what came.
 * A kept-alive connection the upstream closed before answering is
 * opened anew and the request sent again, once.
 */
static int
up_io(struct sess *s)
{
	char	 buf[RELAY_MSG];
	ssize_t	 n;

	if (s->st == U_SEND)
		n = write(s->ufd, s->req + s->reqoff, s->reqlen - s->reqoff);
	else
		n = read(s->ufd, buf, sizeof(buf));
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return (0);
	if (n <= 0) {
		close(s->ufd);
		s->ufd = -1;
		if (!s->reused || s->got)
			return (-1);
		return (up_start(s));
	}
	if (s->st == U_SEND) {
		if ((s->reqoff += (size_t)n) == s->reqlen)
			s->st = U_HEAD;
		return (0);
	}
	s->got = 1;
	return (up_input(s, buf, (size_t)n));
}

/* Send s->req, on the session's connection or a new one. */
static int
up_start(struct sess *s)
{
	if (s->ufd == -1) {
		if ((s->ufd = up_connect()) == -1)
			return (-1);
		s->reused = 0;
	}
	s->st = U_SEND;
	s->reqoff = 0;
	s->hlen = 0;
	s->got = 0;
	return (up_io(s));
}

/* A prompt from the client process: ask the upstream, or answer. */
static int
link_input(struct sess *s)
{
	char	 msg[RELAY_MSG];
	ssize_t	 len;

	if ((len = hop_recv(s->link, msg)) == -1 || s->st != U_IDLE)
		return (-1);
	if (uport == 0)
		return (hop_send(s->link, answer, sizeof(answer) - 1, 1));
	if (req_build(s, msg, (size_t)len) == -1)
		return (-1);
	return (up_start(s));
}

/*
 * The provider process: one poll loop over every client process's link
 * and its upstream connection; a session that fails is closed, which
 * its client process sees.
 */
static void
provider_run(int lfd)
{
	static struct pollfd	 pfd[1 + 2 * RELAY_LINKS];
	static struct sess	*ss[RELAY_LINKS];
	struct sess		*s;
	int			 n = 0, i, fd;

	pfd[0].fd = lfd;
	pfd[0].events = POLLIN;
	while (!quit) {
		for (i = 0; i < n; i++) {
			s = ss[i];
			pfd[1 + 2 * i].fd = s->link;
			pfd[1 + 2 * i].events = POLLIN;
			pfd[2 + 2 * i].fd = s->st == U_IDLE ? -1 : s->ufd;
			pfd[2 + 2 * i].events = s->st == U_SEND ? POLLOUT :
			    POLLIN;
		}
		if (poll(pfd, 1 + 2 * n, -1) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "poll");
		}
		for (i = n - 1; i >= 0; i--) {
			s = ss[i];
			if ((pfd[1 + 2 * i].revents == 0 ||
			    link_input(s) != -1) &&
			    (pfd[2 + 2 * i].revents == 0 || up_io(s) != -1))
				continue;
			close(s->link);
			if (s->ufd != -1)
				close(s->ufd);
			free(s);
			ss[i] = ss[--n];
		}
		if ((pfd[0].revents & POLLIN) && n < RELAY_LINKS &&
		    (fd = accept(lfd, NULL, NULL)) != -1) {
			if ((s = calloc(1, sizeof(*s))) == NULL)
				err(1, "calloc");
			s->link = fd;
			s->ufd = -1;
			s->st = U_IDLE;
			ss[n++] = s;
		}
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

/*
 * Write a piece of the answer to the client at once, a '.' that begins
 * a line doubled; *bol says whether the piece begins a line, and then
 * whether the next one does.
 */
static int
client_piece(struct tls *c, const char *p, size_t len, int *bol)
{
	char	 buf[2 * RELAY_MSG];
	size_t	 i, n = 0;

	if (len > RELAY_MSG)
		return (-1);
	for (i = 0; i < len; i++) {
		if (*bol && p[i] == '.')
			buf[n++] = '.';
		buf[n++] = p[i];
		*bol = p[i] == '\n';
	}
	return (client_write(c, buf, n));
}

/*
 * One prompt: commit it, ask, write each piece of the answer as it
 * comes, commit the answer (up to RELAY_MSG bytes), say OK.
 */
static int
client_ask(struct tls *c, int sfd, int pfd, const char *line, size_t len)
{
	char	 msg[RELAY_MSG], ans[RELAY_MSG];
	size_t	 alen = 0;
	ssize_t	 n;
	int	 bol = 1;

	if (hop_send(sfd, line, (uint32_t)len, 0) == -1 ||
	    hop_recv(sfd, msg) == -1 ||
	    hop_send(pfd, line, (uint32_t)len, 0) == -1)
		return (-1);
	while ((n = hop_recv(pfd, msg)) != 0) {
		if (n == -1 || (size_t)n > sizeof(ans) - alen ||
		    client_piece(c, msg, (size_t)n, &bol) == -1)
			return (-1);
		memcpy(ans + alen, msg, (size_t)n);
		alen += (size_t)n;
	}
	if (hop_send(sfd, ans, (uint32_t)alen, 0) == -1 ||
	    hop_recv(sfd, msg) == -1)
		return (-1);
	return (bol ? client_write(c, ". OK\n", 5) :
	    client_write(c, "\n. OK\n", 6));
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

/* The port given to option opt, from lo to 65535; exits if it is not. */
static int
port_arg(int opt, const char *arg, long lo)
{
	char	*ep;
	long	 n;

	errno = 0;
	n = strtol(arg, &ep, 10);
	if (*arg == '\0' || *ep != '\0' || errno == ERANGE || n < lo ||
	    n > 65535)
		errx(2, "-%c %s: not a port", opt, arg);
	return ((int)n);
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
	char			 greeting[128];
	pid_t			 peers[2];
	int			 ch, lfd, sl, pl_fd, fd, one = 1, port = 0;

	while ((ch = getopt(argc, argv, "c:d:g:k:P:p:u:")) != -1) {
		switch (ch) {
		case 'c':
			cert = optarg;
			break;
		case 'd':
			dbpath = optarg;
			break;
		case 'g':
			ukey = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'P':
			upath = optarg;
			break;
		case 'p':
			port = port_arg(ch, optarg, 0);
			break;
		case 'u':
			uport = port_arg(ch, optarg, 1);
			break;
		default:
			goto usage;
		}
	}
	if (cert == NULL || key == NULL || dbpath == NULL || optind != argc ||
	    (uport != 0) != (ukey != NULL) || (uport != 0) != (upath != NULL))
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
			if (ch == 0)
				storage_run(sl, dbpath);
			else
				provider_run(pl_fd);
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
	    "[-p port]\n\t[-u upstream-port -g api-key -P path]\n");
	return (2);
}
