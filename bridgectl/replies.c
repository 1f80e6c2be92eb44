/*
 * replies.c: what the server answers to bridgectl connect. Each line
 * sent notes the reply it will get (a queue in order); reply_feed()
 * takes the server's bytes, streams body lines as they come and ends
 * the reply at the head of the queue on its status line: shown, sent
 * to an /export file, or answered with an /import file on MORE.
 */

#include <sys/types.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridgectl.h"

#define STATUS_MAX		(64 * 1024)	/* a status or INFO line */

static enum expect expect_next(void);
static void	set_model(const char *);
static void	track(enum expect, const char *);
static void	body_piece(const char *, size_t);
static void	body_line(const char *);
static void	status_line(enum reply_kind, const char *, const char *);
static void	bye(enum expect, const char *, const char *)
		    __attribute__((__noreturn__));
static void	footer(const char *);
static void	show_ok(enum expect, const char *, const char *);
static void	show_err(enum expect, const char *, const char *);
static void	intro(void);
static void	note(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
static void	export_done(int);
static void	import_send(void);

/* What the next reply answers; unasked replies count as commands. */
static enum expect
expect_next(void)
{
	return (cl.nq > 0 ? cl.q[0].what : EXP_COMMAND);
}

/* One more reply to come, in order. */
void
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

/*
 * Consume what the server sent. A body line is shown as its bytes
 * come, so an answer streams; a status line, and the lines of INFO,
 * are taken whole. reply_parse() decides what a line is and how much
 * dot-stuffing to drop.
 */
void
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

/* A line of the client's own, dim, on the terminal only. */
static void
note(const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[1024];

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	prompt_break();
	dim_line(STDOUT_FILENO, buf);
}

/* The end of an export: close the file; a failed one is removed. */
static void
export_done(int ok)
{
	if (cl.exportfp == NULL)
		return;
	if (fclose(cl.exportfp) == EOF && ok) {
		warn("%s", cl.exportpath);
		ok = 0;
		cl.errors++;
	}
	cl.exportfp = NULL;
	if (!ok)
		(void)unlink(cl.exportpath);
	else if (cl.interactive)
		note("exported to %s", cl.exportpath);
}

/* The server said MORE to IMPORT: the file, dot-stuffed, then ".". */
static void
import_send(void)
{
	char	*p, *nl, *end;

	if (cl.import == NULL)
		cfatalx("the server asked for an import nobody sent");
	p = cl.import;
	end = cl.import + cl.importlen;
	while (p < end) {
		if ((nl = memchr(p, '\n', end - p)) == NULL)
			nl = end;
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (*p == '.' && ibuf_add(cl.wbuf, ".", 1) == -1)
			cfatalx("out of memory");
		send_line(p, EXP_NONE);
		p = nl + 1;
	}
	free(cl.import);
	cl.import = NULL;
	cl.importlen = 0;
	send_line(".", EXP_COMMAND);
}
