/*
 * event.c: the one loop every process runs. poll(2) over registered
 * descriptors, one-shot timers in a list kept in order, and signals
 * turned into ordinary callbacks through a self-pipe.
 */

#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct ev_fd {
	int	 events;
	void	(*cb)(int, int, void *);
	void	*arg;
};

struct ev_sig {
	void	(*cb)(int, void *);
	void	*arg;
};

static struct ev_fd	*fds;		/* indexed by descriptor */
static int		 nfds;		/* allocated slots */
static int		 maxfd = -1;
static struct pollfd	*pfds;
static int		 npfds;
static TAILQ_HEAD(, ev_timer) timers = TAILQ_HEAD_INITIALIZER(timers);
static struct ev_sig	 sigs[NSIG];
static volatile sig_atomic_t sig_pending[NSIG];
static int		 sigpipe[2] = { -1, -1 };
static int		 running;

/* Milliseconds of the monotonic clock. */
uint64_t
ev_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* A signal: noted, and the self-pipe wakes the loop. */
static void
ev_sig_handler(int sig)
{
	int	 save = errno;

	sig_pending[sig] = 1;
	(void)write(sigpipe[1], "", 1);
	errno = save;
}

/* The self-pipe is readable: run the handlers of the signals noted. */
static void
ev_sig_drain(int fd, int events, void *arg)
{
	char	 buf[64];
	int	 sig;

	(void)events;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (sig = 1; sig < NSIG; sig++) {
		if (!sig_pending[sig])
			continue;
		sig_pending[sig] = 0;
		if (sigs[sig].cb != NULL)
			sigs[sig].cb(sig, sigs[sig].arg);
	}
}

/* The event loop, with its self-pipe for signals. */
void
ev_init(void)
{
	if (sigpipe[0] != -1)
		return;
	if (pipe(sigpipe) == -1)
		fatal("%s: pipe", __func__);
	fd_nonblock(sigpipe[0]);
	fd_nonblock(sigpipe[1]);
	fd_cloexec(sigpipe[0]);
	fd_cloexec(sigpipe[1]);
	ev_set(sigpipe[0], EV_READ, ev_sig_drain, NULL);
}

/*
 * In a child just forked from a process running this loop: forget its
 * descriptors, timers and signal callbacks, and take a self-pipe of
 * our own. Signals stay caught; one with no callback is dropped.
 */
void
ev_fork(void)
{
	struct ev_timer	*t;
	int		 sig;

	while ((t = TAILQ_FIRST(&timers)) != NULL) {
		TAILQ_REMOVE(&timers, t, entry);
		t->armed = 0;
	}
	if (fds != NULL)
		memset(fds, 0, nfds * sizeof(*fds));
	maxfd = -1;
	for (sig = 1; sig < NSIG; sig++) {
		sigs[sig].cb = NULL;
		sig_pending[sig] = 0;
	}
	if (sigpipe[0] != -1) {
		close(sigpipe[0]);
		close(sigpipe[1]);
		sigpipe[0] = sigpipe[1] = -1;
	}
	running = 0;
	ev_init();
}

/*
 * Watch fd for events (EV_READ|EV_WRITE); 0 events stops watching.
 * EV_EAGER: while EV_WRITE is asked for, the callback is called with
 * EV_WRITE before the loop polls, so that what the round queued goes
 * out at once, in one write, and poll(2) waits only when it did not.
 */
void
ev_set(int fd, int events, void (*cb)(int, int, void *), void *arg)
{
	struct ev_fd	*p;
	int		 n;

	if (fd < 0)
		fatalx("%s: bad descriptor %d", __func__, fd);
	if (fd >= nfds) {
		n = fd + 64;
		if ((p = recallocarray(fds, nfds, n, sizeof(*fds))) == NULL)
			fatal("%s", __func__);
		fds = p;
		nfds = n;
	}
	fds[fd].events = events;
	fds[fd].cb = cb;
	fds[fd].arg = arg;
	if (events != 0 && fd > maxfd)
		maxfd = fd;
}

/* Stop watching a descriptor. */
void
ev_del(int fd)
{
	if (fd < 0 || fd >= nfds)
		return;
	memset(&fds[fd], 0, sizeof(fds[fd]));
	while (maxfd >= 0 && fds[maxfd].events == 0)
		maxfd--;
}

/* A timer that calls fn(arg); not armed yet. */
void
ev_timer_set(struct ev_timer *t, void (*cb)(void *), void *arg)
{
	memset(t, 0, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
}

/* Arm (or re-arm) a timer to fire once, ms from now. */
void
ev_timer_add(struct ev_timer *t, uint64_t ms)
{
	struct ev_timer	*o;

	ev_timer_del(t);
	t->when = ev_now_ms() + ms;
	t->armed = 1;
	TAILQ_FOREACH(o, &timers, entry)
		if (o->when > t->when)
			break;
	if (o != NULL)
		TAILQ_INSERT_BEFORE(o, t, entry);
	else
		TAILQ_INSERT_TAIL(&timers, t, entry);
}

/* Disarm a timer. */
void
ev_timer_del(struct ev_timer *t)
{
	if (!t->armed)
		return;
	TAILQ_REMOVE(&timers, t, entry);
	t->armed = 0;
}

/* Whether a timer is armed. */
int
ev_timer_pending(const struct ev_timer *t)
{
	return (t->armed);
}

/* Run cb in the loop, not in the handler, when sig arrives. */
void
ev_signal(int sig, void (*cb)(int, void *), void *arg)
{
	struct sigaction	 sa;

	if (sig <= 0 || sig >= NSIG)
		fatalx("%s: bad signal %d", __func__, sig);
	ev_init();
	sigs[sig].cb = cb;
	sigs[sig].arg = arg;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sa.sa_handler = cb != NULL ? ev_sig_handler : SIG_DFL;
	if (sigaction(sig, &sa, NULL) == -1)
		fatal("%s: sigaction", __func__);
}

/* Fire every timer that is due, including those armed with 0 ms. */
static void
ev_run_timers(void)
{
	struct ev_timer	*t;
	uint64_t	 now = ev_now_ms();

	while ((t = TAILQ_FIRST(&timers)) != NULL && t->when <= now) {
		TAILQ_REMOVE(&timers, t, entry);
		t->armed = 0;
		t->cb(t->arg);
	}
}

/* How long poll(2) may sleep: until the next timer, -1 for none. */
static int
ev_poll_timeout(void)
{
	struct ev_timer	*t;
	uint64_t	 now;

	if ((t = TAILQ_FIRST(&timers)) == NULL)
		return (-1);
	now = ev_now_ms();
	if (t->when <= now)
		return (0);
	if (t->when - now > INT32_MAX)
		return (INT32_MAX);
	return ((int)(t->when - now));
}

/* Write for the eager descriptors that have something to write. */
static void
ev_eager(void)
{
	int	 fd;

	for (fd = 0; fd <= maxfd && running; fd++)
		if ((fds[fd].events & (EV_WRITE | EV_EAGER)) ==
		    (EV_WRITE | EV_EAGER))
			fds[fd].cb(fd, EV_WRITE, fds[fd].arg);
}

/* Loop until ev_break() or nothing is left to wait for. */
int
ev_loop(void)
{
	struct pollfd	*p;
	int		 i, n, fd, re;

	ev_init();
	running = 1;
	while (running) {
		ev_eager();
		if (!running)
			break;
		if (maxfd + 1 > npfds) {
			if ((p = recallocarray(pfds, npfds, maxfd + 64,
			    sizeof(*pfds))) == NULL)
				fatal("%s", __func__);
			pfds = p;
			npfds = maxfd + 64;
		}
		for (n = 0, fd = 0; fd <= maxfd; fd++) {
			if (fds[fd].events == 0)
				continue;
			pfds[n].fd = fd;
			pfds[n].events = 0;
			pfds[n].revents = 0;
			if (fds[fd].events & EV_READ)
				pfds[n].events |= POLLIN;
			if (fds[fd].events & EV_WRITE)
				pfds[n].events |= POLLOUT;
			n++;
		}
		if (n == 0 && TAILQ_EMPTY(&timers))
			break;
		if (poll(pfds, n, ev_poll_timeout()) == -1) {
			if (errno == EINTR)
				continue;
			fatal("%s: poll", __func__);
		}
		for (i = 0; i < n && running; i++) {
			if (pfds[i].revents == 0)
				continue;
			fd = pfds[i].fd;
			/* A callback may have dropped or replaced this fd. */
			if (fd >= nfds || fds[fd].events == 0)
				continue;
			re = 0;
			if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
				re |= EV_READ;
			if (pfds[i].revents & POLLOUT)
				re |= EV_WRITE;
			if (pfds[i].revents & (POLLHUP | POLLERR | POLLNVAL))
				re |= EV_HUP;
			re &= fds[fd].events | EV_HUP;
			if (re != 0)
				fds[fd].cb(fd, re, fds[fd].arg);
		}
		ev_run_timers();
	}
	return (0);
}

/* Make ev_loop() return after the current round. */
void
ev_break(void)
{
	running = 0;
}
