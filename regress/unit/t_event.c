/*
 * t_event.c: lib/event.c's loop over real pipes: what is watched is
 * called back, a paused descriptor is not (and is heard again when
 * watched again, even under a number reused meanwhile), a forked child
 * changing its own loop leaves its parent's alone, and a descriptor
 * closed without ev_del does not make the loop spin.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "util.h"

static int	 failures;
static int	 calls;		/* callbacks since the last reset */
static int	 lastev;	/* the events of the last one */

#define CHECK(name, cond) do {						\
	if (cond)							\
		printf("ok %s\n", name);				\
	else {								\
		printf("FAIL %s: %s (line %d)\n", name, #cond, __LINE__);\
		failures++;						\
	}								\
} while (0)

/* A non-blocking pipe, or exit. */
static void
newpipe(int p[2])
{
	if (pipe(p) == -1) {
		perror("pipe");
		exit(1);
	}
	fd_nonblock(p[0]);
	fd_nonblock(p[1]);
}

/* Watched descriptor ready: count it and read what is there. */
static void
on_ready(int fd, int events, void *arg)
{
	char	 buf[64];

	(void)arg;
	calls++;
	lastev = events;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* The timer of run_for: the loop ends. */
static void
run_stop(void *arg)
{
	(void)arg;
	ev_break();
}

/* ev_loop until a timer of ms breaks it. */
static void
run_for(uint64_t ms)
{
	static struct ev_timer	 t;

	ev_timer_set(&t, run_stop, NULL);
	ev_timer_add(&t, ms);
	ev_loop();
	ev_timer_del(&t);
}

/* CPU this process has used, ms. */
static long
cpu_ms(void)
{
	struct rusage	 ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L);
}

/* One byte into a pipe. */
static void
poke(int fd)
{
	if (write(fd, "x", 1) != 1) {
		perror("write");
		exit(1);
	}
}

/* Readable is called back; nothing ready, no call. */
static void
test_read(void)
{
	int	 p[2];

	newpipe(p);
	calls = 0;
	ev_set(p[0], EV_READ, on_ready, NULL);
	run_for(20);
	CHECK("event.quiet", calls == 0);
	poke(p[1]);
	run_for(20);
	CHECK("event.read", calls == 1 && (lastev & EV_READ));
	ev_del(p[0]);
	close(p[0]);
	close(p[1]);
}

/*
 * ev_set(fd, 0): not called back while paused, and the loop sleeps
 * (it does not spin on what epoll still reports); called back once
 * watched again.
 */
static void
test_pause(void)
{
	long	 c0;
	int	 p[2];

	newpipe(p);
	calls = 0;
	ev_set(p[0], EV_READ, on_ready, NULL);
	run_for(5);
	ev_set(p[0], 0, NULL, NULL);
	poke(p[1]);
	c0 = cpu_ms();
	run_for(200);
	CHECK("event.pause_not_called", calls == 0);
	CHECK("event.pause_sleeps", cpu_ms() - c0 < 100);
	ev_set(p[0], EV_READ, on_ready, NULL);
	run_for(20);
	CHECK("event.pause_resumed", calls == 1);
	ev_del(p[0]);
	close(p[0]);
	close(p[1]);
}

/*
 * A paused descriptor closed without a word (libcurl does that with
 * some of its sockets) and its number taken by a new pipe: watching
 * the new one works.
 */
static void
test_pause_reused(void)
{
	int	 p[2], q[2], num;

	newpipe(p);
	calls = 0;
	num = p[0];
	ev_set(num, EV_READ, on_ready, NULL);
	run_for(5);
	ev_set(num, 0, NULL, NULL);
	close(num);
	newpipe(q);
	if (q[0] != num) {
		if (dup2(q[0], num) == -1) {
			perror("dup2");
			exit(1);
		}
		close(q[0]);
	}
	ev_set(num, EV_READ, on_ready, NULL);
	poke(q[1]);
	run_for(50);
	CHECK("event.pause_number_reused", calls == 1);
	ev_del(num);
	close(num);
	close(p[1]);
	close(q[1]);
}

/*
 * A child forked from a loop (a worker from its template) watches and
 * drops the parent's descriptor in its own loop: the parent still
 * hears of it.
 */
static void
test_fork(void)
{
	pid_t	 pid;
	int	 p[2], status;

	newpipe(p);
	calls = 0;
	ev_set(p[0], EV_READ, on_ready, NULL);
	run_for(5);
	switch (pid = fork()) {
	case -1:
		perror("fork");
		exit(1);
	case 0:
		ev_fork();
		ev_set(p[0], EV_READ, on_ready, NULL);
		run_for(5);
		ev_del(p[0]);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	poke(p[1]);
	run_for(50);
	CHECK("event.fork_parent_untouched", calls == 1);
	ev_del(p[0]);
	close(p[0]);
	close(p[1]);
}

/*
 * A watched descriptor closed without ev_del while a copy of it stays
 * open: epoll keeps reporting a descriptor nobody watches. The loop
 * starts a new epoll instance instead of spinning, and what is
 * watched is still heard.
 */
static void
test_stale(void)
{
	long	 c0;
	int	 p[2], q[2], copy;

	newpipe(p);
	newpipe(q);
	calls = 0;
	ev_set(p[0], EV_READ, on_ready, NULL);
	ev_set(q[0], EV_READ, on_ready, NULL);
	run_for(5);
	if ((copy = dup(p[0])) == -1) {
		perror("dup");
		exit(1);
	}
	close(p[0]);		/* the caller's mistake: no ev_del first */
	ev_del(p[0]);
	poke(p[1]);
	c0 = cpu_ms();
	run_for(200);
	CHECK("event.stale_not_called", calls == 0);
	CHECK("event.stale_no_spin", cpu_ms() - c0 < 100);
	poke(q[1]);
	run_for(20);
	CHECK("event.stale_others_heard", calls == 1);
	ev_del(q[0]);
	close(copy);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

/* Each case in turn; exit 1 if one failed. */
int
main(void)
{
	log_init(1, LOG_DAEMON);
	ev_init();
	test_read();
	test_pause();
	test_pause_reused();
	test_fork();
	test_stale();
	return (failures ? 1 : 0);
}
