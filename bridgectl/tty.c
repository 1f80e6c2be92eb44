/*
 * tty.c: bridgectl connect on a terminal. It edits lines with libedit,
 * keeps a history, shows the mode and the model in its prompt, sends
 * lines pasted together in chat mode as one prompt, and turns Ctrl-C
 * into CANCEL while an answer streams in. What is typed while replies
 * come is read without echo and kept (cl.ahead); at the prompt libedit
 * takes it from there, so each line shows once and goes on its own.
 */

#include <sys/types.h>

#include <err.h>
#include <errno.h>
#include <histedit.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>
#include <wchar.h>

#include "bridgectl.h"

#define PASTE_MS		15	/* input this close is one paste */
#define HISTORY_SIZE		1000
#define CTRL_C			0x03

static int	tty_getc(EditLine *, wchar_t *);
static unsigned char tty_intr(EditLine *, int);
static char	*tty_prompt(EditLine *);
static int	tty_line(char **);
static int	stdin_pending(int);
static void	hist_add(const char *);
static void	paste(char *);
static void	leave(void) __attribute__((__noreturn__));

/* libedit's reader: a key, while the connection is served. */
static int
tty_getc(EditLine *el, wchar_t *wc)
{
	char		 mb[MB_LEN_MAX];
	size_t		 n = 0, r;
	mbstate_t	 mbs;
	ssize_t		 nr;
	int		 ready;

	for (;;) {
		if (got_int) {
			/* The terminal made SIGINT of it: give it back. */
			got_int = 0;
			*wc = CTRL_C;
			return (1);
		}
		if (ibuf_left(cl.ahead) > 0) {
			/* Typed while replies came. */
			mb[n++] = *(char *)ibuf_data(cl.ahead);
			ibuf_consume(cl.ahead, 1);
		} else {
			ready = io_poll(1, -1);
			if (cl.broken && el != NULL)
				prompt_mend();
			if (!ready)
				continue;
			if ((nr = read(STDIN_FILENO, &mb[n], 1)) == -1) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				return (-1);
			}
			if (nr == 0)
				return (0);
			n++;
		}
		memset(&mbs, 0, sizeof(mbs));
		r = mbrtowc(wc, mb, n, &mbs);
		if (r == (size_t)-2 && n < sizeof(mb))
			continue;
		if (r == (size_t)-1 || r == (size_t)-2) {
			n = 0;
			continue;
		}
		return (1);
	}
}

/* Ctrl-C at the prompt: abandon the line, as a shell does. */
static unsigned char
tty_intr(EditLine *el, int ch)
{
	const LineInfo	*li;

	(void)ch;
	cl.intr = 1;
	li = el_line(el);
	el_cursor(el, (int)(li->lastchar - li->cursor));
	el_insertstr(el, "^C");
	el_push(el, "\n");
	return (CC_REFRESH);
}

/* bridge [chat gemini-2.0-flash]> and its variants. */
static char *
tty_prompt(EditLine *el)
{
	static char	 buf[160];

	(void)el;
	if (cl.more[0] != '\0')
		snprintf(buf, sizeof(buf), "%s> ", cl.more);
	else if (cl.block || cl.pasting)
		snprintf(buf, sizeof(buf), "... ");
	else
		snprintf(buf, sizeof(buf), "bridge [%s %s]> ",
		    cl.chat || !cl.cmdmode ? "chat" : "command",
		    cl.model[0] != '\0' ? cl.model : "?");
	return (buf);
}

/* The terminal modes, libedit and the history file. */
void
tty_init(void)
{
	HistEvent	 ev;

	if (tcgetattr(STDIN_FILENO, &cl.tio) == -1)
		err(1, "tcgetattr");
	cl.tio_wait = cl.tio;
	cl.tio_wait.c_lflag &= ~(ICANON | ECHO | ECHONL);
	cl.tio_wait.c_lflag |= ISIG;
	cl.tio_wait.c_cc[VMIN] = 1;
	cl.tio_wait.c_cc[VTIME] = 0;

	if ((cl.ahead = ibuf_open(1024)) == NULL)
		err(1, NULL);
	if ((cl.hist = history_init()) == NULL)
		errx(1, "history_init failed");
	history(cl.hist, &ev, H_SETSIZE, HISTORY_SIZE);
	history(cl.hist, &ev, H_SETUNIQUE, 1);
	if (home_file("history", cl.histfile, sizeof(cl.histfile)) == -1)
		cl.histfile[0] = '\0';
	else
		history(cl.hist, &ev, H_LOAD, cl.histfile);

	if ((cl.el = el_init("bridgectl", stdin, stdout, stderr)) == NULL)
		errx(1, "el_init failed");
	el_set(cl.el, EL_EDITOR, "emacs");
	el_set(cl.el, EL_SIGNAL, 0);
	el_set(cl.el, EL_PROMPT, tty_prompt);
	el_set(cl.el, EL_HIST, history, cl.hist);
	el_source(cl.el, NULL);
	el_set(cl.el, EL_GETCFN, tty_getc);
	el_set(cl.el, EL_ADDFN, "bridge-interrupt",
	    "Abandon the line being edited", tty_intr);
	el_set(cl.el, EL_BIND, "^C", "bridge-interrupt", NULL);
}

/* A line from the terminal: 1, 0 at its end, -1 if abandoned. */
static int
tty_line(char **linep)
{
	const char	*s;
	char		*line;
	int		 n;

	/*
	 * No cooked mode before el_gets: what is typed now would be
	 * echoed twice. libedit leaves the terminal cooked.
	 */
	cl.at_prompt = 1;
	cl.intr = 0;
	s = el_gets(cl.el, &n);
	cl.at_prompt = 0;
	cl.broken = 0;
	cl.tty_waiting = 0;
	if (cl.intr)
		return (-1);
	if (s == NULL || n <= 0)
		return (0);
	if ((line = strdup(s)) == NULL)
		cfatalx("out of memory");
	line[strcspn(line, "\r\n")] = '\0';
	*linep = line;
	return (1);
}

/* Is more input already there, or within ms? Not what came earlier. */
static int
stdin_pending(int ms)
{
	struct pollfd	 pfd;

	if (ibuf_left(cl.ahead) > 0)
		return (0);
	pfd.fd = STDIN_FILENO;
	pfd.events = POLLIN;
	return (poll(&pfd, 1, ms) == 1 && (pfd.revents & POLLIN));
}

/* Remember a line; an AUTH token (or /raw AUTH) is not written to disk. */
static void
hist_add(const char *line)
{
	HistEvent	 ev;

	if (*line == '\0' || first_word(line, "AUTH") ||
	    (strncasecmp(line, "/raw ", 5) == 0 &&
	    first_word(line + 5 + strspn(line + 5, " "), "AUTH")))
		return;
	history(cl.hist, &ev, H_ENTER, line);
	if (cl.histfile[0] != '\0')
		history(cl.hist, &ev, H_SAVE, cl.histfile);
}

/*
 * Lines that arrive together in chat mode were pasted: they go as one
 * """ prompt. A paste that has a """ line of its own is sent as it is,
 * line by line.
 */
static void
paste(char *first)
{
	char	**lines, **nl, *line;
	size_t	 n = 1, i;
	int	 r, marked = 0;

	if ((lines = calloc(1, sizeof(*lines))) == NULL)
		cfatalx("out of memory");
	lines[0] = first;
	cl.pasting = 1;
	while (stdin_pending(PASTE_MS)) {
		if ((r = tty_line(&line)) == 0)
			break;
		if (r == -1) {
			/* Ctrl-C drops the whole paste. */
			for (i = 0; i < n; i++)
				free(lines[i]);
			free(lines);
			cl.pasting = 0;
			return;
		}
		hist_add(line);
		if ((nl = reallocarray(lines, n + 1, sizeof(*lines))) == NULL)
			cfatalx("out of memory");
		lines = nl;
		lines[n++] = line;
	}
	cl.pasting = 0;
	for (i = 0; i < n; i++)
		if (strcmp(lines[i], BLOCK_MARK) == 0)
			marked = 1;
	if (n == 1) {
		submit(lines[0]);
		free(lines[0]);
		free(lines);
	} else if (!marked) {
		submit(BLOCK_MARK);
		for (i = 0; i < n; i++) {
			submit(lines[i]);
			free(lines[i]);
		}
		submit(BLOCK_MARK);
		free(lines);
	} else {
		cl.pend = lines;
		cl.npend = n;
		cl.ipend = 0;
	}
}

/* Ctrl-D: QUIT, unless the server waits for the rest of something. */
static void
leave(void)
{
	write_all(STDOUT_FILENO, "\n", 1);
	block_abandon();
	if (cl.more[0] != '\0')
		client_exit(0);
	send_line("QUIT", EXP_QUIT);
	wait_replies();
	client_exit(0);
}

/* On a terminal: prompt, send, show the replies, again. */
void
run_tty(void)
{
	char	*line;
	int	 r;

	for (;;) {
		wait_replies();
		if (cl.ipend < cl.npend) {
			submit(cl.pend[cl.ipend]);
			free(cl.pend[cl.ipend++]);
			if (cl.ipend == cl.npend) {
				free(cl.pend);
				cl.pend = NULL;
				cl.ipend = cl.npend = 0;
			}
			continue;
		}
		if (cl.token != NULL) {
			send_token();
			continue;
		}
		if (!cl.info_sent) {
			cl.info_sent = 1;
			send_line("INFO", EXP_INFO_QUIET);
			continue;
		}
		if ((r = tty_line(&line)) == 0)
			leave();
		if (r == -1) {
			/* Ctrl-C inside a """ prompt abandons all of it. */
			if (cl.block) {
				block_abandon();
				warnx("the \"\"\" prompt was abandoned; "
				    "nothing of it was sent");
			}
			continue;
		}
		if (*line == '\0' && !cl.block) {
			free(line);
			continue;
		}
		hist_add(line);
		if ((cl.chat || !cl.cmdmode) && !cl.block &&
		    cl.more[0] == '\0' && stdin_pending(PASTE_MS))
			paste(line);
		else {
			submit(line);
			free(line);
		}
	}
}
