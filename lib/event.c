/*
 * event.c: the one loop every process runs. epoll(7) on Linux, poll(2)
 * elsewhere, over registered descriptors; one-shot timers in a list
 * kept in order; signals turned into ordinary callbacks through a
 * self-pipe.
 *
 * With epoll a wake-up costs what is ready, not what is watched:
 * storage and the provider watch a channel for every session, and
 * poll(2) looked at all of them each time one had a message. What the
 * kernel watches changes only when a round's net change asks it to
 * (a channel that queues a message and writes it at once, EV_EAGER,
 * changes nothing); ev_del tells the kernel at once, since its caller
 * closes the descriptor next.
 */

#include <sys/types.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

#include <errno.h>
#include <fcntl.h>
#ifndef __linux__
#include <poll.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct ev_fd {
	int	 events;
	int	 kernel;	/* EV_READ|EV_WRITE that epoll watches */
	int	 dirty;		/* on the list of changes for epoll */
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
static int		 nwatched;	/* descriptors with events */
#ifdef __linux__
static int		 epfd = -1;
static int		*dirty;		/* descriptors whose events changed */
static int		 ndirty, dirtycap;
#else
static struct pollfd	*pfds;
static int		 npfds;
#endif
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

#ifdef __linux__
#define DIRTY_CHANGED	1	/* on the list: events changed */
#define DIRTY_ANEW	2	/* and told anew (watched after a pause) */

/* The epoll instance; a child forked from us makes its own. */
static void
ev_kernel_open(void)
{
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("%s: epoll_create1", __func__);
}

/*
 * Tell epoll that fd is no longer watched. The descriptor may be
 * closed already (then the kernel forgot it): that is no error.
 */
static void
ev_kernel_del(int fd)
{
	if (fds[fd].kernel != 0)
		(void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
	fds[fd].kernel = 0;
}

/*
 * Note that fd's events changed; ev_kernel_apply tells epoll. A
 * descriptor watched after a pause is told anew, whatever epoll had.
 */
static void
ev_kernel_mark(int fd)
{
	int	*p;
	int	 n, anew;

	anew = fds[fd].events == 0 && fds[fd].kernel != 0;
	if (fds[fd].dirty) {
		if (anew)
			fds[fd].dirty = DIRTY_ANEW;
		return;
	}
	if (ndirty == dirtycap) {
		n = dirtycap + 64;
		if ((p = recallocarray(dirty, dirtycap, n, sizeof(*p))) ==
		    NULL)
			fatal("%s", __func__);
		dirty = p;
		dirtycap = n;
	}
	dirty[ndirty++] = fd;
	fds[fd].dirty = anew ? DIRTY_ANEW : DIRTY_CHANGED;
}

/* Before waiting: give epoll the round's net changes. */
static void
ev_kernel_apply(void)
{
	struct epoll_event	 ee;
	int			 i, fd, want, op, anew;

	for (i = 0; i < ndirty; i++) {
		fd = dirty[i];
		anew = fds[fd].dirty == DIRTY_ANEW;
		fds[fd].dirty = 0;
		want = fds[fd].events & (EV_READ | EV_WRITE);
		if (want == fds[fd].kernel && !anew)
			continue;
		if (want == 0) {
			ev_kernel_del(fd);
			continue;
		}
		memset(&ee, 0, sizeof(ee));
		ee.events = ((want & EV_READ) ? EPOLLIN : 0) |
		    ((want & EV_WRITE) ? EPOLLOUT : 0);
		ee.data.fd = fd;
		op = fds[fd].kernel != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		if (epoll_ctl(epfd, op, fd, &ee) == -1) {
			/* Closed and reopened meanwhile, or known already. */
			if (errno == ENOENT && op == EPOLL_CTL_MOD)
				op = EPOLL_CTL_ADD;
			else if (errno == EEXIST && op == EPOLL_CTL_ADD)
				op = EPOLL_CTL_MOD;
			else if (errno == EBADF) {
				fds[fd].kernel = 0;
				continue;	/* closed: nothing to watch */
			} else
				fatal("%s: epoll_ctl", __func__);
			if (epoll_ctl(epfd, op, fd, &ee) == -1)
				fatal("%s: epoll_ctl", __func__);
		}
		fds[fd].kernel = want;
	}
	ndirty = 0;
}

/*
 * A new epoll instance watching what the table says: after a fork
 * (the old one is shared with the parent: changing it would change
 * the parent's), or when the old one reports descriptors nobody
 * watches (one closed without ev_del while a child still had it open).
 */
static void
ev_kernel_rebuild(int inherited)
{
	int	 fd;

	if (epfd != -1 && !inherited)
		log_warnx("%s: events of descriptors not watched",
		    __func__);
	if (epfd != -1)
		close(epfd);
	ev_kernel_open();
	ndirty = 0;
	for (fd = 0; fd < nfds; fd++) {
		fds[fd].kernel = fds[fd].dirty = 0;
		if (fds[fd].events != 0)
			ev_kernel_mark(fd);
	}
}
#else
/* poll(2) is given the whole table each time: nothing to tell. */
static void
ev_kernel_open(void)
{
}

/* poll(2) watches nothing between calls. */
static void
ev_kernel_del(int fd)
{
	(void)fd;
}

/* poll(2) reads the table each time. */
static void
ev_kernel_mark(int fd)
{
	(void)fd;
}
#endif

/* The event loop, with its self-pipe for signals. */
void
ev_init(void)
{
	if (sigpipe[0] != -1)
		return;
#ifdef __linux__
	if (epfd == -1)
		ev_kernel_open();
#endif
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
	nwatched = 0;
#ifdef __linux__
	ev_kernel_rebuild(1);
#endif
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
 * ev_set(fd, 0): not watched for now, the descriptor staying open (a
 * connection idle in libcurl's cache between two requests). epoll is
 * not told: a descriptor watched again soon costs one change, not two;
 * if epoll reports it meanwhile, it is told then. It may have been
 * closed and its number reused meanwhile (libcurl closes some sockets
 * without a word): so when watched again it is always told anew.
 */
static void
ev_pause(int fd)
{
	if (fds[fd].events != 0)
		nwatched--;
	fds[fd].events = 0;
	fds[fd].cb = NULL;
	fds[fd].arg = NULL;
	while (maxfd >= 0 && fds[maxfd].events == 0)
		maxfd--;
}

/*
 * Watch fd for events (EV_READ|EV_WRITE); 0: not for now (ev_pause).
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
	if (events == 0) {
		ev_pause(fd);
		return;
	}
	if (fds[fd].events == 0) {
		nwatched++;
		ev_kernel_mark(fd);	/* paused: ask again (see ev_pause) */
	} else if ((fds[fd].events ^ events) & (EV_READ | EV_WRITE))
		ev_kernel_mark(fd);
	fds[fd].events = events;
	fds[fd].cb = cb;
	fds[fd].arg = arg;
	if (fd > maxfd)
		maxfd = fd;
}

/* Stop watching a descriptor; its owner may close it next. */
void
ev_del(int fd)
{
	if (fd < 0 || fd >= nfds)
		return;
	ev_pause(fd);
	ev_kernel_del(fd);
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

/* Call fd's callback for what the kernel reported, if still watched. */
static int
ev_fire(int fd, int re)
{
	if (fd < 0 || fd >= nfds || fds[fd].events == 0)
		return (0);	/* a callback of this round dropped it */
	re &= fds[fd].events | EV_HUP;
	if (re != 0)
		fds[fd].cb(fd, re, fds[fd].arg);
	return (1);
}

#ifdef __linux__
#define EV_BATCH	64

/* Wait for the descriptors (or timeout ms), then run their callbacks. */
static void
ev_wait(int timeout)
{
	struct epoll_event	 evs[EV_BATCH];
	int			 i, n, fd, re, fired = 0;

	ev_kernel_apply();
	if ((n = epoll_wait(epfd, evs, EV_BATCH, timeout)) == -1) {
		if (errno == EINTR)
			return;
		fatal("%s: epoll_wait", __func__);
	}
	for (i = 0; i < n && running; i++) {
		fd = evs[i].data.fd;
		if (fd >= 0 && fd < nfds && fds[fd].events == 0 &&
		    fds[fd].kernel != 0) {
			ev_kernel_del(fd);	/* paused: told now */
			fired++;
			continue;
		}
		re = 0;
		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			re |= EV_READ;
		if (evs[i].events & EPOLLOUT)
			re |= EV_WRITE;
		if (evs[i].events & (EPOLLHUP | EPOLLERR))
			re |= EV_HUP;
		fired += ev_fire(fd, re);
	}
	/*
	 * Only descriptors nobody watches were ready: epoll holds one
	 * that was closed without ev_del while another process had it
	 * open, and would wake us for it forever.
	 */
	if (n > 0 && fired == 0 && running)
		ev_kernel_rebuild(0);
}
#else
/* Wait for the descriptors (or timeout ms), then run their callbacks. */
static void
ev_wait(int timeout)
{
	struct pollfd	*p;
	int		 i, n, fd, re;

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
	if (poll(pfds, n, timeout) == -1) {
		if (errno == EINTR)
			return;
		fatal("%s: poll", __func__);
	}
	for (i = 0; i < n && running; i++) {
		if (pfds[i].revents == 0)
			continue;
		re = 0;
		if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
			re |= EV_READ;
		if (pfds[i].revents & POLLOUT)
			re |= EV_WRITE;
		if (pfds[i].revents & (POLLHUP | POLLERR | POLLNVAL))
			re |= EV_HUP;
		(void)ev_fire(pfds[i].fd, re);
	}
}
#endif

/* Loop until ev_break() or nothing is left to wait for. */
int
ev_loop(void)
{
	ev_init();
	running = 1;
	while (running) {
		ev_eager();
		if (!running)
			break;
		if (nwatched == 0 && TAILQ_EMPTY(&timers))
			break;
		ev_wait(ev_poll_timeout());
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
