/*
 * worker.c: a worker serves exactly one client for its whole life. The
 * template forks it with its own channel to the parent, on which the
 * parent sends its channels to storage and provider and later the
 * client's socket; TLS comes set up from the template. This file owns
 * the I/O: TLS, the three channels and the timers; the session itself
 * is proto.c's.
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <tls.h>
#include <unistd.h>

#include "bridged.h"

#define WORKER_READ		16384		/* bytes a read */
#define WORKER_READ_ROUND	(256 * 1024)	/* then let others run */
#define WORKER_OUT_HIGH		(1024 * 1024)	/* pause the provider */
#define WORKER_OUT_LOW		(256 * 1024)
#define WORKER_IN_HIGH		(1024 * 1024)	/* stop reading */
#define WORKER_PART_MAX		(1024 * 1024)	/* a GEN_PART */
#define WORKER_PIECE_MAX	(WORKER_PART_MAX - 16)	/* of a turn, in one */
#define WORKER_CLOSE_WAIT	10		/* s, to write the last */
#define WORKER_DRAIN_WAIT	3000		/* ms, channels at exit */
#define WORKER_METRIC_HOLD	1000		/* ms a metric may wait */
#define WORKER_STACK_KEEP	4096		/* below the trimming frame */
#define WORKER_STACK_TRIM	(256 * 1024)	/* what may be given back */
#define WORKER_REASON_MAX	256

enum worker_state {
	W_IDLE,			/* waiting for a client */
	W_HANDSHAKE,
	W_SESSION,
	W_CLOSING		/* writing what is left, then exit */
};

/* A storage request kept until answered, to send again after a restart. */
struct sreq {
	TAILQ_ENTRY(sreq)	 entry;
	uint32_t		 id;
	uint32_t		 type;
	struct ibuf		*payload;
	uint64_t		 since;		/* ms */
	int			 got;		/* items came already */
};
TAILQ_HEAD(sreq_list, sreq);

static struct worker {
	struct bridged_conf	*conf;
	struct tls_material	 tlsm;		/* none is expected */
	struct tls		*tlsctx;
	struct tls		*cctx;
	int			 fd;
	int			 tls;
	enum worker_state	 state;
	struct channel		 storage;
	struct channel		 provider;
	int			 provider_paused;
	struct sreq_list	 sreqs;
	struct proto		*proto;
	struct proto_session	 ps;
	uint32_t		 sid;
	char			 refuse[WORKER_REASON_MAX];
	struct ibuf		*out;
	int			 read_wants_write;
	int			 write_wants_read;
	int			 eof;
	int			 events;
	int			 reading;
	int			 busy;		/* a command is answered */
	int			 monitored;	/* a monitor is attached */
	struct ev_timer		 handshake_timer;
	struct ev_timer		 idle_timer;
	struct ev_timer		 storage_timer;
	struct ev_timer		 close_timer;
	struct ev_timer		 read_timer;
} w;

static void	worker_exit(const char *) __attribute__((__noreturn__));
static void	client_event(int, int, void *);
static void	client_update(void);
static void	client_write(void);
static void	client_read(void);
static void	session_begin(void);
static void	worker_dispatch_storage(struct channel *, struct imsg *);
static void	worker_storage_closed(struct channel *);
static void	worker_dispatch_provider(struct channel *, struct imsg *);
static void	worker_provider_closed(struct channel *);
static void	op_event(void *, const char *);
static void	idle_clock(void);

/* Write what a channel holds, for at most ms (a peer may be stuck). */
static void
drain_for(struct channel *ch, uint64_t ms)
{
	uint64_t	 end = ev_now_ms() + ms;

	if (ch->dead)
		return;
	while (ch->ibuf.queued > 0 && ev_now_ms() < end) {
		if (imsg_write(&ch->ibuf) == -1)
			return;
		if (ch->ibuf.queued > 0)
			usleep(1000);
	}
}

/*
 * The end: say so to the parent, hand storage what is queued (a prompt
 * must reach it even when the client has gone), and leave.
 */
static void
worker_exit(const char *why)
{
	uint64_t	 in = 0, out = 0;
	char		 line[WORKER_REASON_MAX + 64];

	if (w.proto != NULL) {
		proto_counters(w.proto, &in, &out);
		snprintf(line, sizeof(line), "disconnect %s in=%llu out=%llu",
		    why, (unsigned long long)in, (unsigned long long)out);
		op_event(NULL, line);
		log_debug("session %u: %s", w.sid, line);
	}
	if (w.cctx != NULL && w.fd != -1)
		(void)tls_close(w.cctx);
	drain_for(&w.storage, WORKER_DRAIN_WAIT);
	drain_for(&w.provider, WORKER_DRAIN_WAIT);
	drain_for(parent_chan, WORKER_DRAIN_WAIT);
	/* What exit(3) would clean up goes with the process. */
	_exit(0);
}

/*
 * The client's socket, read (plain, or by libtls once there is one):
 * bytes, 0 at EOF, -1 on error, TLS_WANT_POLLIN for none yet.
 */
static ssize_t
client_cb_read(struct tls *ctx, void *buf, size_t len, void *arg)
{
	ssize_t	 n;

	(void)ctx;
	(void)arg;
	if ((n = read(w.fd, buf, len)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return (TLS_WANT_POLLIN);
	return (n);
}

/*
 * The client's socket, written (plain, or by libtls). A client gone
 * is an error here, never a SIGPIPE: a worker dead by a signal would
 * retire its template.
 */
static ssize_t
client_cb_write(struct tls *ctx, const void *buf, size_t len, void *arg)
{
	ssize_t	 n;

	(void)ctx;
	(void)arg;
	if ((n = send(w.fd, buf, len, MSG_NOSIGNAL)) == -1 &&
	    (errno == EAGAIN || errno == EINTR))
		return (TLS_WANT_POLLOUT);
	return (n);
}

/*
 * The client's TLS state, made while the worker waits: only the socket
 * is missing then, and the client does not wait for OpenSSL to make a
 * connection (SSL_new is most of a millisecond in a new process).
 */
static void
tls_prepare(void)
{
	if (w.tlsctx != NULL && tls_accept_cbs(w.tlsctx, &w.cctx, client_cb_read,
	    client_cb_write, NULL) == -1) {
		log_warnx("%s: tls_accept_cbs: %s", __func__,
		    tls_error(w.tlsctx));
		w.cctx = NULL;
	}
}

/*
 * The client's socket: TLS or plain, non-blocking. Reads and writes
 * return bytes, 0 at EOF, -1 on error, TLS_WANT_POLLIN/POLLOUT.
 */
static ssize_t
conn_read(void *buf, size_t len)
{
	if (w.tls)
		return (tls_read(w.cctx, buf, len));
	return (client_cb_read(NULL, buf, len, NULL));
}

/* Write to the client, through TLS or not, libtls's way. */
static ssize_t
conn_write(const void *buf, size_t len)
{
	if (w.tls)
		return (tls_write(w.cctx, buf, len));
	return (client_cb_write(NULL, buf, len, NULL));
}

/* May the client's input be read now? */
static int
client_reading(void)
{
	if (w.state != W_SESSION || w.eof)
		return (0);
	if (ibuf_left(w.out) > WORKER_OUT_HIGH)
		return (0);
	return (proto_queued(w.proto) <= WORKER_IN_HIGH);
}

/*
 * The idle time counts from the end of the last reply (PROTOCOL.md):
 * when the session stops being busy, the idle clock starts again.
 */
static void
idle_clock(void)
{
	int	 busy;

	if (w.state != W_SESSION || w.proto == NULL)
		return;
	busy = proto_busy(w.proto);
	if (w.busy && !busy)
		ev_timer_add(&w.idle_timer,
		    (uint64_t)w.conf->g.timeout * 1000);
	w.busy = busy;
}

/* Poll for what reading and writing need; pace the provider. */
static void
client_update(void)
{
	int	 ev = 0;

	/* Before the session the handshake polls for itself. */
	if (w.fd == -1 || w.state == W_HANDSHAKE)
		return;
	idle_clock();
	if (client_reading()) {
		ev |= w.read_wants_write ? EV_WRITE : EV_READ;
		/* Resumed: libtls may hold what poll cannot see. */
		if (!w.reading)
			ev_timer_add(&w.read_timer, 0);
		w.reading = 1;
	} else
		w.reading = 0;
	if (ibuf_left(w.out) > 0)
		ev |= w.write_wants_read ? EV_READ : EV_WRITE;
	if (ev != w.events) {
		w.events = ev;
		if (ev == 0)
			ev_del(w.fd);
		else
			ev_set(w.fd, ev | EV_EAGER, client_event, NULL);
	}
	/* A client that does not read must not make us hoard the answer. */
	if (!w.provider.dead) {
		if (!w.provider_paused && ibuf_left(w.out) > WORKER_OUT_HIGH) {
			w.provider_paused = 1;
			channel_pause(&w.provider, 1);
		} else if (w.provider_paused &&
		    ibuf_left(w.out) < WORKER_OUT_LOW) {
			w.provider_paused = 0;
			channel_pause(&w.provider, 0);
		}
	}
}

/* Exit once everything for the client is written. */
static void
worker_finish(void)
{
	if (ibuf_left(w.out) > 0)
		return;
	worker_exit(w.proto != NULL && proto_closed(w.proto) ? "closed" :
	    "refused");
}

/* Write what the session has for the client, as far as it goes. */
static void
client_write(void)
{
	ssize_t	 n;

	w.write_wants_read = 0;
	while (ibuf_left(w.out) > 0) {
		n = conn_write(ibuf_data(w.out), ibuf_left(w.out));
		if (n == TLS_WANT_POLLIN) {
			w.write_wants_read = 1;
			break;
		}
		if (n == TLS_WANT_POLLOUT)
			break;
		if (n <= 0) {
			log_debug("session %u: write: %s", w.sid, w.tls ?
			    tls_error(w.cctx) : strerror(errno));
			worker_exit("write error");
		}
		ibuf_consume(w.out, n);
	}
	if (w.state == W_CLOSING)
		worker_finish();
}

/* Read from the client into the session, a round at a time. */
static void
client_read(void)
{
	char	 buf[WORKER_READ];
	ssize_t	 n;
	size_t	 got = 0;

	w.read_wants_write = 0;
	while (client_reading()) {
		if (got >= WORKER_READ_ROUND) {
			/* More may wait: come back after the others. */
			ev_timer_add(&w.read_timer, 0);
			break;
		}
		n = conn_read(buf, sizeof(buf));
		if (n == TLS_WANT_POLLIN)
			break;
		if (n == TLS_WANT_POLLOUT) {
			w.read_wants_write = 1;
			break;
		}
		if (n == -1) {
			log_debug("session %u: read: %s", w.sid, w.tls ?
			    tls_error(w.cctx) : strerror(errno));
			worker_exit("read error");
		}
		if (n == 0) {
			w.eof = 1;
			proto_eof(w.proto);
			break;
		}
		got += n;
		ev_timer_add(&w.idle_timer,
		    (uint64_t)w.conf->g.timeout * 1000);
		proto_input(w.proto, buf, n);
		explicit_bzero(buf, n);
		/*
		 * Nothing held back (libssl has no bytes of the client's
		 * left; a plain read did not fill the buffer): the rest
		 * comes when poll says so, without a read that says EAGAIN.
		 */
		if (w.tls ? !tls_client_pending() : (size_t)n < sizeof(buf))
			break;
	}
}

/* The timer of a read that stopped to let others run. */
static void
read_again(void *arg)
{
	(void)arg;
	if (w.state != W_SESSION)
		return;
	client_read();
	client_update();
}

/* One more step of the TLS handshake; the session once it is done. */
static void
handshake(void)
{
	int	 r;

	r = tls_handshake(w.cctx);
	if (r == TLS_WANT_POLLIN || r == TLS_WANT_POLLOUT) {
		w.events = r == TLS_WANT_POLLIN ? EV_READ : EV_WRITE;
		ev_set(w.fd, w.events, client_event, NULL);
		return;
	}
	if (r == -1) {
		log_debug("session %u: handshake: %s", w.sid,
		    tls_error(w.cctx));
		worker_exit("handshake failed");
	}
	ev_timer_del(&w.handshake_timer);
	w.events = 0;
	ev_del(w.fd);
	session_begin();
}

/* The client socket is ready: handshake, write, then read. */
static void
client_event(int fd, int events, void *arg)
{
	(void)fd;
	(void)arg;
	if (w.state == W_HANDSHAKE) {
		handshake();
		return;
	}
	if ((events & (EV_WRITE | EV_READ)) && ibuf_left(w.out) > 0)
		client_write();
	if ((events & EV_READ) || ((events & EV_WRITE) && w.read_wants_write))
		client_read();
	client_update();
}

/* A client that never finishes its handshake is dropped. */
static void
handshake_timeout(void *arg)
{
	(void)arg;
	log_debug("session %u: handshake timed out", w.sid);
	worker_exit("handshake timeout");
}

/* Idle only if nothing is under way: a long answer is not idleness. */
static void
idle_timeout(void *arg)
{
	(void)arg;
	if (w.state != W_SESSION)
		return;
	if (proto_busy(w.proto)) {
		ev_timer_add(&w.idle_timer,
		    (uint64_t)w.conf->g.timeout * 1000);
		return;
	}
	proto_bye(w.proto, "idle timeout");
}

/* A client that does not read its last reply is dropped. */
static void
close_timeout(void *arg)
{
	(void)arg;
	worker_exit("client does not read");
}

/*
 * The output functions of the session (struct proto_ops).
 */

/*
 * proto_ops: bytes for the client. They go out before the loop polls
 * again (EV_EAGER), with whatever else this round writes: one record.
 */
static void
op_write(void *arg, const void *data, size_t len)
{
	(void)arg;
	if (ibuf_add(w.out, data, len) == -1)
		fatal("%s", __func__);
	client_update();
}

/* proto_ops: the session is over; exit once the rest is written. */
static void
op_close(void *arg)
{
	(void)arg;
	w.state = W_CLOSING;
	ev_timer_del(&w.idle_timer);
	ev_timer_add(&w.close_timer, WORKER_CLOSE_WAIT * 1000);
	client_update();
	worker_finish();
}

/* proto_ops: ask the provider for the model lists. */
static int
op_models(void *arg, uint32_t id)
{
	(void)arg;
	if (w.provider.dead)
		return (-1);
	return (channel_compose_u32(&w.provider, IMSG_WORKER_MODELS, 0, id));
}

static int	sreq_add(uint32_t, uint32_t, struct ibuf *);

/*
 * One piece of a turn into the GEN_PART being filled (*part), which is
 * held in the gate first and a new one begun (of hint bytes) if the
 * piece would take it past WORKER_PART_MAX. len is at most
 * WORKER_PIECE_MAX.
 */
static int
gen_piece(struct gate *g, struct ibuf **part, size_t hint, int role,
    int more, const char *text, size_t len)
{
	struct ibuf	*b = *part;

	if (b != NULL && ibuf_left(b) + 12 + len > WORKER_PART_MAX) {
		*part = NULL;
		if (gate_hold(g, IMSG_WORKER_GEN_PART, b) == -1)
			return (-1);
		b = NULL;
	}
	if (b == NULL) {
		if ((b = ibuf_open(hint)) == NULL ||
		    ibuf_add_u32(b, g->id) == -1) {
			ibuf_free(b);
			return (-1);
		}
		*part = b;
	}
	if (ibuf_add_u32(b, (uint32_t)role) == -1 ||
	    ibuf_add_u32(b, more ? 1 : 0) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		return (-1);
	return (0);
}

/*
 * Build the provider's messages of a generation into the gate: BEGIN,
 * the turns in pieces packed into GEN_PARTs of at most WORKER_PART_MAX
 * bytes (a turn longer than a piece is split, more set on all its
 * pieces but the last), END. Turns of one role in a row are joined
 * into one with a blank line between (see proto_turn).
 */
static int
gen_build(struct gate *g, const struct proto_gen *pg)
{
	const struct proto_turn	*t = pg->turns;
	struct ibuf		*b, *part = NULL;
	size_t			 i, off, len, hint, n = pg->nturns;
	int			 join, more;

	if ((b = ibuf_open(strlen(pg->model) + strlen(pg->system) + 32)) ==
	    NULL || ibuf_add_u32(b, g->id) == -1 ||
	    ibuf_add_str(b, pg->model) == -1 ||
	    ibuf_add_str(b, pg->system) == -1 ||
	    ibuf_add_u32(b, pg->max_tokens) == -1 ||
	    ibuf_add_u32(b, pg->temperature) == -1) {
		ibuf_free(b);
		return (-1);
	}
	if (gate_hold(g, IMSG_WORKER_GEN_BEGIN, b) == -1)
		return (-1);
	/* The size of the context, pieces' lengths and joins counted. */
	for (hint = 16, i = 0; i < n && hint < WORKER_PART_MAX; i++)
		hint += t[i].len + 2 * 14;
	if (hint > WORKER_PART_MAX)
		hint = WORKER_PART_MAX;
	for (i = 0; i < n; i++) {
		join = i + 1 < n && t[i + 1].role == t[i].role;
		off = 0;
		do {
			len = t[i].len - off;
			if (len > WORKER_PIECE_MAX)
				len = WORKER_PIECE_MAX;
			more = off + len < t[i].len || join;
			if (gen_piece(g, &part, hint, t[i].role, more,
			    t[i].text + off, len) == -1)
				goto fail;
			off += len;
		} while (off < t[i].len);
		if (join && gen_piece(g, &part, hint, t[i].role, 1, "\n\n",
		    2) == -1)
			goto fail;
	}
	if (part != NULL && gate_hold(g, IMSG_WORKER_GEN_PART, part) == -1)
		return (-1);
	if ((b = ibuf_open(8)) == NULL || ibuf_add_u32(b, g->id) == -1) {
		ibuf_free(b);
		return (-1);
	}
	return (gate_hold(g, IMSG_WORKER_GEN_END, b));
fail:
	ibuf_free(part);	/* wiped: it holds the conversation */
	return (-1);
}

/*
 * A generation, held until storage admits it against the identity's
 * limits; then it goes to the provider.
 */
static int
op_gen(void *arg, uint32_t id, const struct proto_gen *pg)
{
	struct gate	*g;
	struct ibuf	*b;

	(void)arg;
	if (w.provider.dead)
		return (-1);
	if ((g = gate_new(id, pg->model, ev_now_ms())) == NULL)
		return (-1);
	if (gen_build(g, pg) == -1 ||
	    (b = ibuf_open(strlen(pg->model) + 16)) == NULL) {
		gate_free(g);
		return (-1);
	}
	if (ibuf_add_u32(b, id) == -1 || ibuf_add_str(b, pg->model) == -1) {
		ibuf_free(b);
		gate_free(g);
		return (-1);
	}
	if (sreq_add(IMSG_WORKER_ADMIT, id, b) == -1) {
		gate_free(g);
		return (-1);
	}
	return (0);
}

/* Tell the parent how a generation went, for the metrics. */
static void
gen_metric(struct gate *g, const char *code, const char *limit,
    uint64_t in, uint64_t out)
{
	struct ibuf	*b;
	uint64_t	 now = ev_now_ms();

	if ((b = channel_create(parent_chan, IMSG_WORKER_METRIC, 0,
	    strlen(g->model) + 128)) == NULL ||
	    ibuf_add_str(b, g->model) == -1 || ibuf_add_str(b, code) == -1 ||
	    ibuf_add_str(b, limit) == -1 || ibuf_add_u64(b, in) == -1 ||
	    ibuf_add_u64(b, out) == -1 || ibuf_add_u64(b, g->first) == -1 ||
	    ibuf_add_u64(b, g->admitted && now > g->t0 ? now - g->t0 : 0) ==
	    -1) {
		ibuf_free(b);
		return;
	}
	/* Counted only: it goes with the next message, or in a second. */
	channel_send_later(parent_chan, b, WORKER_METRIC_HOLD);
}

/* A generation ended upstream: its tokens count for the identity. */
static void
gen_finish(struct gate *g, const char *code, uint64_t in, uint64_t out)
{
	static uint32_t	 next = 1;
	struct ibuf	*b;
	uint32_t	 id;

	gen_metric(g, code, "", in, out);
	if (in > 0 || out > 0) {
		/* Ids of its own, apart from the session's. */
		id = 0x80000000U | next++;
		if ((b = ibuf_open(strlen(g->model) + 32)) != NULL &&
		    (ibuf_add_u32(b, id) == -1 ||
		    ibuf_add_str(b, g->model) == -1 ||
		    ibuf_add_u64(b, in) == -1 || ibuf_add_u64(b, out) == -1)) {
			ibuf_free(b);
			b = NULL;
		}
		if (b == NULL || sreq_add(IMSG_WORKER_USAGE, id, b) == -1)
			log_warnx("session %u: usage of %llu tokens lost",
			    w.sid, (unsigned long long)(in + out));
	}
	gate_free(g);
}

/* Storage's verdict on a generation: send it, or refuse it. */
static void
gen_admit(uint32_t id, const char *code, const char *text)
{
	struct gate	*g;
	char		 limit[32];

	if ((g = gate_find(id)) == NULL || g->admitted)
		return;		/* cancelled meanwhile */
	if (*code == '\0') {
		if (w.provider.dead ||
		    gate_release(g, &w.provider, ev_now_ms()) == -1) {
			gate_free(g);
			if (w.proto != NULL)
				proto_provider_error(w.proto, id, "upstream",
				    "provider restarting");
		}
		return;
	}
	/* The limit is the first word of the text. */
	(void)strlcpy(limit, text, sizeof(limit));
	limit[strcspn(limit, " ")] = '\0';
	gen_metric(g, code, strcmp(code, "rate-limited") == 0 ? limit : "",
	    0, 0);
	gate_free(g);
	if (w.proto != NULL)
		proto_provider_error(w.proto, id, code, text);
}

/* Stop a generation: still held, it is dropped; else the provider stops. */
static void
op_cancel(void *arg, uint32_t id)
{
	struct gate	*g;

	(void)arg;
	if ((g = gate_find(id)) != NULL) {
		if (!g->admitted) {
			gate_free(g);	/* nothing went upstream */
			return;
		}
		gen_metric(g, "cancelled", "", 0, 0);
		gate_free(g);
	}
	if (!w.provider.dead)
		channel_compose_u32(&w.provider, IMSG_WORKER_CANCEL, 0, id);
}

/* A storage request failed: a generation waiting for it fails too. */
static void
storage_failed(uint32_t id, const char *text)
{
	struct gate	*g;

	if ((g = gate_find(id)) != NULL && !g->admitted) {
		gate_free(g);
		if (w.proto != NULL)
			proto_provider_error(w.proto, id, "storage", text);
		return;
	}
	if (w.proto != NULL)
		proto_storage_error(w.proto, id, text);
}

/*
 * Storage requests are kept until answered: a restarted storage gets
 * them again on its new channel (a STORE carries a key so it is not
 * stored twice), and one that waited past STORAGE_WAIT fails.
 */
static void
storage_check(void *arg)
{
	struct sreq	*r, *next;
	uint64_t	 now = ev_now_ms();

	(void)arg;
	for (r = TAILQ_FIRST(&w.sreqs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		/* A RESULT that was answered follows a job: no time limit. */
		if (now - r->since < STORAGE_WAIT * 1000 ||
		    (r->got && r->type == IMSG_WORKER_RESULT))
			continue;
		TAILQ_REMOVE(&w.sreqs, r, entry);
		log_warnx("session %u: storage did not answer %s in %d s",
		    w.sid, imsg_type_name(r->type), STORAGE_WAIT);
		storage_failed(r->id, "storage did not answer in time");
		ibuf_free(r->payload);
		free(r);
	}
	if (!TAILQ_EMPTY(&w.sreqs))
		ev_timer_add(&w.storage_timer, 1000);
	idle_clock();
}

/* Send a storage request; 0 while storage is away (sent again later). */
static int
sreq_send(struct sreq *r)
{
	if (w.storage.dead)
		return (0);
	return (channel_compose(&w.storage, r->type, 0, -1,
	    ibuf_data(r->payload), ibuf_left(r->payload)));
}

/* Queue a storage request built in b (taken). */
static int
sreq_add(uint32_t type, uint32_t id, struct ibuf *b)
{
	struct sreq	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		ibuf_free(b);
		return (-1);
	}
	r->id = id;
	r->type = type;
	r->payload = b;
	r->since = ev_now_ms();
	if (sreq_send(r) == -1) {
		ibuf_free(b);
		free(r);
		return (-1);
	}
	TAILQ_INSERT_TAIL(&w.sreqs, r, entry);
	if (!ev_timer_pending(&w.storage_timer))
		ev_timer_add(&w.storage_timer, 1000);
	return (0);
}

/* The storage request of this id, or NULL. */
static struct sreq *
sreq_find(uint32_t id)
{
	struct sreq	*r;

	TAILQ_FOREACH(r, &w.sreqs, entry)
		if (r->id == id)
			return (r);
	return (NULL);
}

/* Forget an answered storage request. */
static void
sreq_done(struct sreq *r)
{
	TAILQ_REMOVE(&w.sreqs, r, entry);
	ibuf_free(r->payload);
	free(r);
}

/* A storage request the session built (request id first), taken. */
static int
op_storage(void *arg, uint32_t type, uint32_t id, struct ibuf *b)
{
	(void)arg;
	if (ibuf_left(b) > IMSG_MAXSIZE - 64) {
		ibuf_free(b);
		return (-1);
	}
	return (sreq_add(type, id, b));
}

/*
 * proto_ops: the session's model and counters, for the parent; new
 * counts alone wait as a metric does, so that a prompt does not wake it.
 */
static void
op_state(void *arg, const char *model, uint32_t messages, uint64_t in,
    uint64_t out, int mode, int lazy)
{
	struct ibuf	*b;

	(void)arg;
	if ((b = channel_create(parent_chan, IMSG_WORKER_STATE, 0,
	    strlen(model) + 64)) == NULL ||
	    ibuf_add_str(b, model) == -1 ||
	    ibuf_add_u32(b, messages) == -1 ||
	    ibuf_add_u64(b, in) == -1 ||
	    ibuf_add_u64(b, out) == -1 ||
	    ibuf_add_u32(b, (uint32_t)mode) == -1) {
		ibuf_free(b);
		return;
	}
	if (lazy)
		channel_send_later(parent_chan, b, WORKER_METRIC_HOLD);
	else
		channel_send(parent_chan, b);
}

/* proto_ops: a monitor line, through the parent. */
static void
op_event(void *arg, const char *line)
{
	struct ibuf	*b;

	(void)arg;
	/* Without a monitor the parent would only drop it. */
	if (!w.monitored && !event_stored(line))
		return;
	if ((b = channel_create(parent_chan, IMSG_WORKER_EVENT, 0,
	    strlen(line) + 8)) == NULL || ibuf_add_str(b, line) == -1) {
		ibuf_free(b);
		return;
	}
	channel_send(parent_chan, b);
}

/* proto_ops: the clock, in ms. */
static uint64_t
op_now(void *arg)
{
	(void)arg;
	return (ev_now_ms());
}

/*
 * proto_ops: 64 random bits, a message key (no secret), drawn 32 at a
 * time: a prompt takes two. The pool fills in the worker, never in the
 * template, so no two workers share one.
 */
static uint64_t
op_random(void *arg)
{
	static uint64_t	 pool[32];
	static size_t	 left;
	uint64_t	 v;

	(void)arg;
	if (left == 0) {
		arc4random_buf(pool, sizeof(pool));
		left = sizeof(pool) / sizeof(pool[0]);
	}
	v = pool[--left];
	pool[left] = 0;
	return (v);
}

/* A token for the parent to check: it alone knows the tokens. */
static int
op_auth(void *arg, const char *token)
{
	struct ibuf	*b;

	(void)arg;
	if ((b = channel_create(parent_chan, IMSG_WORKER_AUTH, 0,
	    strlen(token) + 8)) == NULL || ibuf_add_str(b, token) == -1) {
		ibuf_free(b);
		return (-1);
	}
	return (channel_send(parent_chan, b));
}

/* Stop following a job: storage sends no more for that RESULT. */
static void
op_unfollow(void *arg, uint32_t id)
{
	struct sreq	*r;

	(void)arg;
	if ((r = sreq_find(id)) != NULL)
		sreq_done(r);
	if (!w.storage.dead)
		channel_compose_u32(&w.storage, IMSG_WORKER_UNFOLLOW, 0, id);
}

static const struct proto_ops worker_ops = {
	op_write, op_close, op_models, op_gen, op_cancel, op_storage,
	op_state, op_event, op_now, op_random, op_auth, op_unfollow
};

/*
 * The session.
 */

/* In certificate mode the identity is the hash of the client's one. */
static int
cert_identity(void)
{
	struct ibuf	*b;
	const char	*h;

	if ((h = tls_peer_cert_hash(w.cctx)) == NULL ||
	    strncmp(h, "SHA256:", 7) != 0 ||
	    strlen(h + 7) != IDENTITY_LEN)
		return (-1);
	strlcpy(w.ps.identity, h + 7, sizeof(w.ps.identity));
	/* Storage hears of it from the parent, as of every identity. */
	if ((b = channel_create(parent_chan, IMSG_WORKER_IDENTITY, 0, 80)) ==
	    NULL || ibuf_add_str(b, w.ps.identity) == -1) {
		ibuf_free(b);
		return (-1);
	}
	return (channel_send(parent_chan, b));
}

/*
 * The handshake is over and the greeting on its way: what it allocated
 * and freed goes back to the system, so that a session waiting for its
 * next line holds only what it uses.
 */
static void
worker_trim(void)
{
	volatile char	 here;
	uintptr_t	 sp, pg = (uintptr_t)getpagesize();

#ifdef __GLIBC__
	malloc_trim(0);
#endif
	/*
	 * The stack the handshake used below this frame, given back too
	 * (madvise reaches what is mapped of the range, and says ENOMEM
	 * for the rest): a margin of WORKER_STACK_KEEP stays.
	 */
	sp = ((uintptr_t)&here - WORKER_STACK_KEEP) & ~(pg - 1);
	(void)madvise((void *)(sp - WORKER_STACK_TRIM), WORKER_STACK_TRIM,
	    MADV_DONTNEED);
}

/* The handshake is done: greet the client, or refuse it. */
static void
session_begin(void)
{
	struct provider_conf	*pc;
	struct reply_writer	 rw;
	const char		*v, *c;
	char			 line[160];

	w.events = 0;
	if (w.refuse[0] != '\0') {
		reply_begin(&rw);
		if (reply_status(&rw, w.out, "BYE", "%s", w.refuse) == -1)
			fatal("%s", __func__);
		w.state = W_CLOSING;
		ev_timer_add(&w.close_timer, WORKER_CLOSE_WAIT * 1000);
		client_write();
		client_update();
		return;
	}
	if (w.tls) {
		v = tls_conn_version(w.cctx);
		c = tls_conn_cipher(w.cctx);
		snprintf(w.ps.tls, sizeof(w.ps.tls), "%s %s",
		    v != NULL ? v : "unknown", c != NULL ? c : "unknown");
	}
	w.ps.identity_mode = w.conf->g.identity;
	w.ps.line_max = w.conf->g.line_max;
	w.ps.memory_limit = w.conf->g.memory_limit;
	w.ps.roles = &w.conf->roles;
	/* The first provider's model; with several, as provider/model. */
	if ((pc = TAILQ_FIRST(&w.conf->providers)) != NULL) {
		if (TAILQ_NEXT(pc, entry) == NULL)
			strlcpy(w.ps.model, pc->model, sizeof(w.ps.model));
		else if (snprintf(w.ps.model, sizeof(w.ps.model), "%s/%s",
		    pc->name, pc->model) >= (int)sizeof(w.ps.model))
			w.ps.model[0] = '\0';
	}
	if (w.conf->g.identity == IDENTITY_CERTIFICATE && w.tls &&
	    cert_identity() == -1) {
		strlcpy(w.refuse, "auth a client certificate is required",
		    sizeof(w.refuse));
		session_begin();
		return;
	}
	if ((w.proto = proto_new(&worker_ops, NULL, &w.ps)) == NULL)
		fatal("%s", __func__);
	w.state = W_SESSION;
	log_debug("session %u: %s port %u%s%s", w.sid, w.ps.ip, w.ps.port,
	    w.tls ? ", " : "", w.ps.tls);
	snprintf(line, sizeof(line), "connect %s", w.tls ? w.ps.tls :
	    "plain");
	op_event(NULL, line);
	ev_timer_add(&w.idle_timer, (uint64_t)w.conf->g.timeout * 1000);
	proto_start(w.proto);
	/*
	 * The client waits on the greeting: it goes now, before what this
	 * round sent the peers and before the trimming.
	 */
	client_write();
	client_update();
	worker_trim();
}

/* IMSG_PARENT_CLIENT: the socket, who is on it, and whether to serve. */
static void
client_start(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*addr, *laddr, *ident, *refuse;
	uint32_t	 port, lport, tls;
	uint64_t	 since;

	ir_init(&ir, imsg);
	w.sid = ir_u32(&ir);
	addr = ir_str(&ir);
	port = ir_u32(&ir);
	laddr = ir_str(&ir);
	lport = ir_u32(&ir);
	ident = ir_str(&ir);
	since = ir_u64(&ir);
	refuse = ir_str(&ir);
	tls = ir_u32(&ir);
	if (ir_end(&ir) == -1 || imsg->fd == -1 ||
	    strlen(addr) >= sizeof(w.ps.ip) ||
	    strlen(laddr) >= sizeof(w.ps.local) ||
	    strlen(ident) > IDENTITY_LEN ||
	    strlen(refuse) >= sizeof(w.refuse) ||
	    port > 65535 || lport > 65535 || tls > 1)
		child_bad(PROC_PARENT, imsg, NULL);
	if (w.state != W_IDLE) {
		log_warnx("%s: a second client", __func__);
		return;
	}
	strlcpy(w.ps.ip, addr, sizeof(w.ps.ip));
	w.ps.port = port;
	strlcpy(w.ps.local, laddr, sizeof(w.ps.local));
	w.ps.lport = lport;
	strlcpy(w.ps.identity, ident, sizeof(w.ps.identity));
	w.ps.connected = since;
	strlcpy(w.refuse, refuse, sizeof(w.refuse));
	w.tls = tls;
	w.fd = imsg->fd;
	imsg->fd = -1;
	fd_nonblock(w.fd);
	fd_cloexec(w.fd);
	if ((w.out = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	if (!w.tls) {
		if (w.cctx != NULL) {
			tls_free(w.cctx);
			w.cctx = NULL;
		}
		session_begin();
		return;
	}
	if (w.tlsctx == NULL) {
		log_warnx("%s: a TLS client, but no TLS certificate",
		    __func__);
		worker_exit("no TLS");
	}
	if (w.cctx == NULL)
		tls_prepare();
	if (w.cctx == NULL)
		worker_exit("tls_accept_cbs failed");
	w.state = W_HANDSHAKE;
	ev_timer_add(&w.handshake_timer,
	    (uint64_t)w.conf->g.handshake_timeout * 1000);
	handshake();
}

/*
 * Channels.
 */

/* A channel to storage; requests not answered go again. */
static void
worker_storage_open(int fd)
{
	struct sreq	*r;

	if (!w.storage.dead)
		channel_shutdown(&w.storage);
	channel_init(&w.storage, fd, worker_dispatch_storage,
	    worker_storage_closed, NULL);
	TAILQ_FOREACH(r, &w.sreqs, entry)
		if (sreq_send(r) == -1)
			break;
}

/* Reads that had begun to answer cannot be resumed; the rest wait. */
static void
worker_storage_closed(struct channel *ch)
{
	struct sreq	*r, *next;

	if (ch->broken)
		child_bad(PROC_STORAGE, NULL, NULL);
	log_warnx("storage channel closed");
	for (r = TAILQ_FIRST(&w.sreqs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (!r->got)
			continue;
		TAILQ_REMOVE(&w.sreqs, r, entry);
		if (w.proto != NULL)
			proto_storage_error(w.proto, r->id,
			    "storage restarted");
		ibuf_free(r->payload);
		free(r);
	}
}

static void	worker_storage_msg(struct imsg *);

/* Storage's answers about jobs: 0, or -1 if malformed. */
static int
storage_job_answer(struct imsg *imsg, struct ireader *ir, uint32_t id)
{
	struct sreq	*r;
	const char	*model, *head, *finish, *code, *text;
	const void	*data;
	size_t		 len;
	uint64_t	 job, t, tin, tout, ms;
	uint32_t	 state, kind;

	switch (imsg->hdr.type) {
	case IMSG_STORAGE_JOB_LINE:
		job = ir_u64(ir);
		state = ir_u32(ir);
		model = ir_str(ir);
		t = ir_u64(ir);
		tout = ir_u64(ir);
		(void)ir_str(ir);	/* the identity: its own */
		head = ir_str(ir);
		if (ir_end(ir) == -1 || state >= JOB_STATE_MAX)
			return (-1);
		if ((r = sreq_find(id)) != NULL && w.proto != NULL)
			proto_storage_job_line(w.proto, id, job, state, model,
			    t, tout, head);
		return (0);
	case IMSG_STORAGE_JOB_HEAD:
		job = ir_u64(ir);
		state = ir_u32(ir);
		if (ir_end(ir) == -1 || state >= JOB_STATE_MAX)
			return (-1);
		if ((r = sreq_find(id)) == NULL)
			return (0);
		r->got = 1;
		if (w.proto != NULL)
			proto_storage_job_head(w.proto, id, job, state);
		return (0);
	case IMSG_STORAGE_JOB_CHUNK:
		kind = ir_u32(ir);
		data = ir_data(ir, &len);
		if (ir_end(ir) == -1 || kind >= CHUNK_KIND_MAX)
			return (-1);
		if (sreq_find(id) != NULL && w.proto != NULL)
			proto_storage_job_chunk(w.proto, id, kind,
			    len > 0 ? data : "", len);
		return (0);
	case IMSG_STORAGE_JOB_END:
		state = ir_u32(ir);
		model = ir_str(ir);
		tin = ir_u64(ir);
		tout = ir_u64(ir);
		ms = ir_u64(ir);
		finish = ir_str(ir);
		code = ir_str(ir);
		text = ir_str(ir);
		if (ir_end(ir) == -1 || state >= JOB_STATE_MAX)
			return (-1);
		if ((r = sreq_find(id)) == NULL)
			return (0);
		sreq_done(r);
		if (w.proto != NULL)
			proto_storage_job_end(w.proto, id, state, model, tin,
			    tout, ms, finish, code, text);
		return (0);
	}
	return (-1);
}

/* Storage spoke: hand it on, then poll for what changed. */
static void
worker_dispatch_storage(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	worker_storage_msg(imsg);
	client_update();
}

/*
 * IMSG_STORAGE_CONV after the request id, into *c. Field by field, not
 * by clearing it first: *c is 16 KiB, most of it room for a system
 * prompt, and each page written stays with the session.
 */
static int
storage_conv(struct ireader *ir, struct db_conv *c)
{
	const char	*name, *model, *role, *system;

	c->created = 0;
	c->id = (int64_t)ir_u64(ir);
	c->last_used = (int64_t)ir_u64(ir);
	c->messages = (int64_t)ir_u64(ir);
	name = ir_str(ir);
	model = ir_str(ir);
	role = ir_str(ir);
	system = ir_str(ir);
	if (ir_end(ir) == -1 ||
	    strlcpy(c->name, name, sizeof(c->name)) >= sizeof(c->name) ||
	    strlcpy(c->model, model, sizeof(c->model)) >= sizeof(c->model) ||
	    strlcpy(c->role, role, sizeof(c->role)) >= sizeof(c->role) ||
	    strlcpy(c->system, system, sizeof(c->system)) >=
	    sizeof(c->system))
		return (-1);
	return (0);
}

/* One message from storage, to the session's handlers. */
static void
worker_storage_msg(struct imsg *imsg)
{
	static struct db_conv	 conv;
	struct db_match	 m;
	struct ireader	 ir;
	struct sreq	*r;
	const char	*s, *t;
	const void	*text;
	size_t		 len;
	uint64_t	 a, b;
	uint32_t	 id, role;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	switch (imsg->hdr.type) {
	case IMSG_STORAGE_STORED:
	case IMSG_STORAGE_END:
		a = ir_u64(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		sreq_done(r);
		if (w.proto == NULL)
			return;
		if (imsg->hdr.type == IMSG_STORAGE_STORED)
			proto_storage_stored(w.proto, id, a);
		else
			proto_storage_end(w.proto, id, a);
		return;
	case IMSG_STORAGE_ITEM:
		a = ir_u64(&ir);
		b = ir_u64(&ir);
		role = ir_u32(&ir);
		text = ir_data(&ir, &len);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		r->got = 1;
		if (w.proto != NULL)
			proto_storage_item(w.proto, id, a, b, role,
			    len > 0 ? text : "", len);
		return;
	case IMSG_STORAGE_ERROR:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		sreq_done(r);
		storage_failed(id, s);
		return;
	case IMSG_STORAGE_ADMIT:
		s = ir_str(&ir);
		t = ir_str(&ir);
		if (ir_end(&ir) == -1 || strlen(s) > 32)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		sreq_done(r);
		gen_admit(id, s, t);
		return;
	case IMSG_STORAGE_LINE:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		r->got = 1;
		if (w.proto != NULL)
			proto_storage_line(w.proto, id, s);
		return;
	case IMSG_STORAGE_REFUSED:
		s = ir_str(&ir);
		t = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		sreq_done(r);
		if (w.proto != NULL)
			proto_storage_refused(w.proto, id, s, t);
		return;
	case IMSG_STORAGE_DELETED:
		a = ir_u64(&ir);
		b = ir_u64(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		sreq_done(r);
		if (w.proto != NULL)
			proto_storage_deleted(w.proto, id, a, b);
		return;
	case IMSG_STORAGE_CONV:
		if (storage_conv(&ir, &conv) == -1)
			break;
		if ((r = sreq_find(id)) == NULL)
			return;
		/* NEW and IMPORT are answered by the one CONV alone. */
		if (r->type == IMSG_WORKER_CONV_NEW ||
		    r->type == IMSG_WORKER_IMPORT)
			sreq_done(r);
		else
			r->got = 1;
		if (w.proto != NULL)
			proto_storage_conv(w.proto, id, &conv);
		return;
	case IMSG_STORAGE_MATCH:
		memset(&m, 0, sizeof(m));
		m.conv = (int64_t)ir_u64(&ir);
		m.id = (int64_t)ir_u64(&ir);
		m.time = (int64_t)ir_u64(&ir);
		role = ir_u32(&ir);
		text = ir_data(&ir, &len);
		if (ir_end(&ir) == -1 || role >= ROLE_MAX)
			break;
		m.role = role;
		m.text = len > 0 ? text : "";
		m.len = len;
		if ((r = sreq_find(id)) == NULL)
			return;
		r->got = 1;
		if (w.proto != NULL)
			proto_storage_match(w.proto, id, &m);
		return;
	default:
		if (storage_job_answer(imsg, &ir, id) == 0)
			return;
		break;
	}
	child_bad(PROC_STORAGE, imsg, NULL);
}

/* A channel to the provider. */
static void
worker_provider_open(int fd)
{
	if (!w.provider.dead)
		channel_shutdown(&w.provider);
	w.provider_paused = 0;
	channel_init(&w.provider, fd, worker_dispatch_provider,
	    worker_provider_closed, NULL);
}

/* The provider went away: answers in flight fail. */
static void
worker_provider_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(PROC_PROVIDER, NULL, NULL);
	log_warnx("provider channel closed");
	w.provider_paused = 0;
	if (w.proto != NULL)
		proto_provider_lost(w.proto);
}

static void	worker_provider_msg(struct imsg *);

/* The provider spoke: hand it on, then poll for what changed. */
static void
worker_dispatch_provider(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	worker_provider_msg(imsg);
	client_update();
}

/* One message from the provider, to the session's handlers. */
static void
worker_provider_msg(struct imsg *imsg)
{
	struct ireader	 ir;
	struct gate	*g;
	const char	*s, *t;
	const void	*text;
	size_t		 len;
	uint64_t	 a, b;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	switch (imsg->hdr.type) {
	case IMSG_PROVIDER_MODEL:
		s = ir_str(&ir);
		a = ir_u64(&ir);
		b = ir_u64(&ir);
		if (ir_end(&ir) == -1)
			break;
		if (w.proto != NULL)
			proto_provider_model(w.proto, id, s, a, b);
		return;
	case IMSG_PROVIDER_MODELS_END:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if (w.proto != NULL) {
			proto_provider_models_note(w.proto, id, s);
			proto_provider_models_end(w.proto, id);
		}
		return;
	case IMSG_PROVIDER_CHUNK:
		text = ir_data(&ir, &len);
		if (ir_end(&ir) == -1)
			break;
		if ((g = gate_find(id)) != NULL && len > 0)
			gate_chunk(g, ev_now_ms());
		if (w.proto != NULL && len > 0)
			proto_provider_chunk(w.proto, id, text, len);
		return;
	case IMSG_PROVIDER_DONE:
		a = ir_u64(&ir);
		b = ir_u64(&ir);
		s = ir_str(&ir);
		t = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((g = gate_find(id)) != NULL) {
			/* A fallback may have answered: its model counts. */
			if (*t != '\0' && strlen(t) < sizeof(g->model))
				(void)strlcpy(g->model, t, sizeof(g->model));
			gen_finish(g, "", a, b);
		}
		if (w.proto != NULL) {
			proto_provider_answered(w.proto, id, t);
			proto_provider_done(w.proto, id, a, b, s);
		}
		return;
	case IMSG_PROVIDER_ERROR:
		s = ir_str(&ir);
		t = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if ((g = gate_find(id)) != NULL)
			gen_finish(g, strlen(s) < 32 ? s : "upstream", 0, 0);
		if (w.proto != NULL)
			proto_provider_error(w.proto, id, s, t);
		return;
	}
	child_bad(PROC_PROVIDER, imsg, NULL);
}

/* The parent: the client socket, channels, auth, BYE. */
static void
worker_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*s, *m;
	uint32_t	 v;
	int		 fd;

	(void)ch;
	/* A reload reaches only idle workers, and the parent ends those. */
	if (child_imsg(&w.conf, &w.tlsm, imsg) != -1) {
		tls_material_wipe(&w.tlsm);
		return;
	}
	ir_init(&ir, imsg);
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CLIENT:
		client_start(imsg);
		return;
	case IMSG_PARENT_STORAGE:
	case IMSG_PARENT_PROVIDER:
		if (imsg->datalen != 0 || imsg->fd == -1)
			break;
		fd = imsg->fd;
		imsg->fd = -1;
		if (imsg->hdr.type == IMSG_PARENT_STORAGE)
			worker_storage_open(fd);
		else
			worker_provider_open(fd);
		return;
	case IMSG_PARENT_AUTH:
		v = ir_u32(&ir);
		s = ir_str(&ir);
		m = ir_str(&ir);
		if (ir_end(&ir) == -1 || v > AUTH_BANNED ||
		    (v == AUTH_ACCEPTED && strlen(s) != IDENTITY_LEN) ||
		    strlen(m) >= TOKEN_MODELS_MAX || w.state != W_SESSION)
			break;
		proto_auth(w.proto, v, s, m);
		return;
	case IMSG_PARENT_MONITORED:
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1 || v > 1)
			break;
		w.monitored = v;
		return;
	case IMSG_PARENT_KILL:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1)
			break;
		if (w.state == W_SESSION)
			proto_bye(w.proto, s);
		else if (w.state != W_CLOSING)
			worker_exit("killed");
		return;
	}
	child_bad(PROC_PARENT, imsg, NULL);
}

/* The daemon stops: a client in session hears why before we go. */
static void
worker_sigterm(int sig, void *arg)
{
	(void)sig;
	(void)arg;
	if (w.state == W_SESSION && w.proto != NULL)
		proto_bye(w.proto, "server shutting down");
	else if (w.state != W_CLOSING)
		worker_exit("stopped");
}

/*
 * The worker, just forked from the template (signals blocked, old the
 * mask to restore): its own channel to the parent on fd, its stricter
 * filter before anything else, then it waits for its client.
 */
void
worker_main(struct bridged_conf *conf, struct tls *tlsctx, int fd,
    const sigset_t *old)
{
	child_forked(PROC_WORKER, fd);
	w.conf = conf;
	w.tlsctx = tlsctx;
	w.fd = -1;
	w.state = W_IDLE;
	TAILQ_INIT(&w.sreqs);
	w.storage.dead = w.provider.dead = 1;
	ev_timer_set(&w.handshake_timer, handshake_timeout, NULL);
	ev_timer_set(&w.idle_timer, idle_timeout, NULL);
	ev_signal(SIGTERM, worker_sigterm, NULL);
	ev_signal(SIGCHLD, NULL, NULL);
	ev_timer_set(&w.storage_timer, storage_check, NULL);
	ev_timer_set(&w.close_timer, close_timeout, NULL);
	ev_timer_set(&w.read_timer, read_again, NULL);
	if (sandbox_narrow(SANDBOX_WORKER) == -1)
		fatalx("sandbox");
	/* Idle until the parent hears of it: rehearse TLS meanwhile. */
	tls_rehearse(tlsctx);
	tls_prepare();
	sigprocmask(SIG_SETMASK, old, NULL);
	child_ready();
	child_dispatch(worker_dispatch_parent);
	ev_loop();
	fatalx("event loop ended");
}
