/*
 * term.c: the terminal under bridgectl connect. Everything the client
 * writes goes through here (server text with its control bytes made
 * visible, the client's own dim lines, the activity indicator), as do
 * the signals and the terminal modes between prompts. It calls nothing
 * else of bridgectl: the connection, the replies and the line editor
 * are built on it.
 */

#include <sys/types.h>

#include <err.h>
#include <errno.h>
#include <histedit.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <tls.h>
#include <unistd.h>

#include "bridgectl.h"

#define SPIN_DELAY		150	/* ms before the indicator shows */
#define SPIN_STEP		100
#define INPUT_AHEAD_MAX		(64 * 1024)	/* typed ahead, at most */

static void	on_signal(int);
static void	suspend(void);

struct client		 cl;
int			 sigpipe[2] = { -1, -1 };
volatile sig_atomic_t	 got_int;
static volatile sig_atomic_t got_winch, got_tstp, got_term;

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
void
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
void
show_line(int fd, const char *s)
{
	out(fd, s, strlen(s));
	out(fd, "\n", 1);
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

/* The activity indicator, until the first byte of a reply. */
void
spin_start(void)
{
	if (!cl.interactive)
		return;
	cl.spinning = 1;
	cl.spin_shown = 0;
	cl.spin_next = ev_now_ms() + SPIN_DELAY;
}

/* The next frame, when it is due; the cursor stays where it was. */
void
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
int
spin_timeout(void)
{
	uint64_t	 now;

	if (!cl.spinning)
		return (-1);
	now = ev_now_ms();
	return (now >= cl.spin_next ? 0 : (int)(cl.spin_next - now));
}

/* Note a signal; the loop acts on it through the self-pipe. */
static void
on_signal(int sig)
{
	int	 save_errno = errno;
	ssize_t	 n;

	switch (sig) {
	case SIGINT:
		got_int = 1;
		break;
	case SIGWINCH:
		got_winch = 1;
		break;
	case SIGTSTP:
		got_tstp = 1;
		break;
	default:
		got_term = 1;
		break;
	}
	n = write(sigpipe[1], "", 1);
	(void)n;
	errno = save_errno;
}

/* On a terminal we catch what would leave it in a raw state. */
void
signals_init(void)
{
	struct sigaction	 sa;
	const int		 sigs[] = { SIGINT, SIGWINCH, SIGTSTP,
				    SIGTERM, SIGHUP };
	size_t			 i;

	if (pipe(sigpipe) == -1)
		err(1, "pipe");
	if (fd_nonblock(sigpipe[0]) == -1 || fd_nonblock(sigpipe[1]) == -1 ||
	    fd_cloexec(sigpipe[0]) == -1 || fd_cloexec(sigpipe[1]) == -1)
		err(1, "fcntl");
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) == -1)
			err(1, "sigaction");
}

/* Act on the signals noted since last time, except SIGINT. */
void
signals_run(void)
{
	char	 buf[64];

	while (sigpipe[0] != -1 && read(sigpipe[0], buf, sizeof(buf)) > 0)
		;
	if (got_term)
		cfatalx("terminated by a signal");
	if (got_winch) {
		got_winch = 0;
		if (cl.el != NULL)
			el_resize(cl.el);
	}
	if (got_tstp) {
		got_tstp = 0;
		suspend();
	}
}

/* Ctrl-Z: give the terminal back as we found it, stop, take it again. */
static void
suspend(void)
{
	struct sigaction	 sa;
	struct termios		 cur;
	int			 have;

	spin_stop();
	have = tcgetattr(STDIN_FILENO, &cur) == 0;
	(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	(void)sigaction(SIGTSTP, &sa, NULL);
	(void)kill(getpid(), SIGTSTP);
	sa.sa_handler = on_signal;
	(void)sigaction(SIGTSTP, &sa, NULL);
	if (have)
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cur);
	if (cl.at_prompt && cl.el != NULL)
		el_set(cl.el, EL_REFRESH);
}

/* Server text while the prompt is up: leave the line, without echo. */
void
prompt_break(void)
{
	if (!cl.at_prompt || cl.broken)
		return;
	cl.broken = 1;
	(void)tcgetattr(STDIN_FILENO, &cl.tio_edit);
	(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio_wait);
	write_all(STDOUT_FILENO, "\n", 1);
}

/* Back to libedit's terminal mode and draw the prompt again. */
void
prompt_mend(void)
{
	if (!cl.broken)
		return;
	cl.broken = 0;
	(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio_edit);
	el_set(cl.el, EL_REFRESH);
}

/* Between prompts the terminal neither echoes nor waits for lines. */
void
tty_wait(void)
{
	if (!cl.interactive || cl.tty_waiting)
		return;
	(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &cl.tio_wait);
	cl.tty_waiting = 1;
}

/* Keep what was typed while replies came, for the next prompts. */
void
tty_ahead(void)
{
	char	 buf[1024];
	ssize_t	 n;

	if ((n = read(STDIN_FILENO, buf, sizeof(buf))) == -1) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		cfatalx("read: %s", strerror(errno));
	}
	if (n == 0)
		cfatalx("the terminal is gone");
	if (ibuf_left(cl.ahead) + n > INPUT_AHEAD_MAX)
		return;		/* more than anyone types: dropped */
	if (ibuf_add(cl.ahead, buf, n) == -1)
		cfatalx("out of memory");
}
