/*
 * channel.c: an imsgbuf driven by the event loop. Reading is paced by
 * the owner (channel_pause), writing follows the queue: the channel
 * asks for EV_WRITE exactly while something is queued, eagerly, so
 * that a round's messages leave together before the loop polls.
 */

#include <sys/types.h>

#include <errno.h>
#include <unistd.h>

#include "util.h"

static void	channel_event(int, int, void *);
static void	channel_release(struct channel *);
static void	channel_hold_end(void *);

/* Poll for what the channel needs: read unless paused, write if queued. */
static void
channel_update(struct channel *ch)
{
	int	 ev;

	if (ch->dead)
		return;
	ev = ch->paused ? 0 : EV_READ;
	if (ch->ibuf.queued > 0 && !ch->held)
		ev |= EV_WRITE;
	if (ev != ch->events) {
		ch->events = ev;
		if (ev == 0)
			ev_del(ch->ibuf.fd);
		else
			ev_set(ch->ibuf.fd, ev | EV_EAGER, channel_event,
			    ch);
	}
}

/* A channel over a connected socket, on the event loop. */
void
channel_init(struct channel *ch, int fd,
    void (*dispatch)(struct channel *, struct imsg *),
    void (*closed)(struct channel *), void *arg)
{
	fd_nonblock(fd);
	fd_cloexec(fd);
	imsgbuf_init(&ch->ibuf, fd);
	ch->dispatch = dispatch;
	ch->closed = closed;
	ch->arg = arg;
	ch->events = 0;
	ch->dead = 0;
	ch->paused = 0;
	ch->broken = 0;
	ch->held = 0;
	ev_timer_set(&ch->hold, channel_hold_end, ch);
	channel_update(ch);
}

/* Close it and tell the owner, once. */
static void
channel_fail(struct channel *ch)
{
	if (ch->dead)
		return;
	channel_shutdown(ch);
	if (ch->closed != NULL)
		ch->closed(ch);
}

/*
 * Hand over every whole message; stop when the owner shut it. -1 when
 * the channel failed: closed() ran and ch may be gone.
 */
static int
channel_drain(struct channel *ch)
{
	struct imsg	 imsg;
	int		 r;

	while (!ch->dead && !ch->paused) {
		if ((r = imsg_get(&ch->ibuf, &imsg)) == -1) {
			/* The owner says whose frame it was (closed()). */
			ch->broken = errno == EBADMSG;
			channel_fail(ch);
			return (-1);
		}
		if (r == 0)
			break;
		ch->dispatch(ch, &imsg);
		imsg_free(&imsg);
	}
	return (0);
}

/* The socket is ready: write what is queued, read and dispatch. */
static void
channel_event(int fd, int events, void *arg)
{
	struct channel	*ch = arg;
	ssize_t		 n;

	(void)fd;
	if (events & EV_WRITE) {
		if (imsg_write(&ch->ibuf) == -1) {
			channel_fail(ch);
			return;
		}
	}
	if ((events & EV_READ) && !ch->paused) {
		n = imsg_read(&ch->ibuf);
		if (n == -1 && errno != EAGAIN) {
			channel_fail(ch);
			return;
		}
		if (n > 0 && channel_drain(ch) == -1)
			return;
		if (ch->dead)
			return;
		if (n == 0) {
			channel_fail(ch);
			return;
		}
	}
	channel_update(ch);
}

/* Queue a message with a payload and maybe a descriptor. */
int
channel_compose(struct channel *ch, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (ch->dead) {
		if (fd != -1)
			close(fd);
		errno = EPIPE;
		return (-1);
	}
	if (imsg_compose(&ch->ibuf, type, peerid, 0, fd, data, len) == -1)
		return (-1);
	channel_release(ch);
	channel_update(ch);
	return (0);
}

/* A message to fill with ibuf_add_* and channel_send(). */
struct ibuf *
channel_create(struct channel *ch, uint32_t type, uint32_t peerid,
    size_t hint)
{
	return (imsg_create(&ch->ibuf, type, peerid, 0, hint));
}

/* A message whose payload is one u32 (ibuf_add_u32; ir_u32 reads it). */
int
channel_compose_u32(struct channel *ch, uint32_t type, uint32_t peerid,
    uint32_t v)
{
	struct ibuf	*b;

	if ((b = channel_create(ch, type, peerid, sizeof(v))) == NULL)
		return (-1);
	if (ibuf_add_u32(b, v) == -1) {
		ibuf_free(b);
		return (-1);
	}
	return (channel_send(ch, b));
}

/* What waited goes now, with what is sent at once. */
static void
channel_release(struct channel *ch)
{
	ch->held = 0;
	ev_timer_del(&ch->hold);
}

/* The hold is over: write what waited. */
static void
channel_hold_end(void *arg)
{
	struct channel	*ch = arg;

	channel_release(ch);
	channel_update(ch);
}

/* Queue a message built with channel_create; the buffer is taken. */
int
channel_send(struct channel *ch, struct ibuf *b)
{
	if (ch->dead) {
		ibuf_free(b);
		errno = EPIPE;
		return (-1);
	}
	if (imsg_close(&ch->ibuf, b) == -1)
		return (-1);
	channel_release(ch);
	channel_update(ch);
	return (0);
}

/*
 * Queue a message that may wait up to `ms': it leaves with the next
 * one sent at once, or when the time is up. For what the peer only
 * counts, so that it is not woken for each.
 */
int
channel_send_later(struct channel *ch, struct ibuf *b, uint64_t ms)
{
	if (ch->dead) {
		ibuf_free(b);
		errno = EPIPE;
		return (-1);
	}
	if (ch->ibuf.queued == 0 && !ch->held) {
		ch->held = 1;
		ev_timer_add(&ch->hold, ms);
	}
	if (imsg_close(&ch->ibuf, b) == -1)
		return (-1);
	channel_update(ch);
	return (0);
}

/*
 * Write what is queued now rather than when the event loop comes
 * round: for an answer the peer waits on while this process goes on
 * with work of its own. A write that fails is tried again, and the
 * failure handled, by the event loop.
 */
void
channel_push(struct channel *ch)
{
	if (!ch->dead && ch->ibuf.queued > 0 && imsg_write(&ch->ibuf) == 0)
		channel_update(ch);
}

/* Stop (1) or resume (0) reading: what the peer sends waits. */
void
channel_pause(struct channel *ch, int pause)
{
	ch->paused = pause;
	channel_update(ch);
	if (!pause)
		(void)channel_drain(ch);	/* ch may be gone after this */
}

/* Close the socket and drop the queues; closed() is not called. */
void
channel_shutdown(struct channel *ch)
{
	if (ch->dead)
		return;
	ch->dead = 1;
	channel_release(ch);
	ev_del(ch->ibuf.fd);
	imsgbuf_clear(&ch->ibuf);
	close(ch->ibuf.fd);
	ch->ibuf.fd = -1;
}

/* Write what is queued, waiting if need be (before exit, start-up). */
int
channel_flush(struct channel *ch)
{
	if (ch->dead)
		return (-1);
	fd_nonblock(ch->ibuf.fd);
	while (ch->ibuf.queued > 0) {
		if (imsg_write(&ch->ibuf) == -1)
			return (-1);
		if (ch->ibuf.queued > 0)
			usleep(1000);
	}
	return (0);
}
