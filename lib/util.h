/*
 * lib/util.h: what bridged and bridgectl share: buffers, imsg framing
 * and marshalling, the event loop, logging, the reply-block codec of
 * BRIDGE/1, the sandbox interface and portability shims.
 */

#ifndef BRIDGE_UTIL_H
#define BRIDGE_UTIL_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define BRIDGE_VERSION		"0.1"

/*
 * buf.c: a growable byte buffer, also the unit of the imsg write queue.
 */
struct ibuf {
	TAILQ_ENTRY(ibuf)	 entry;
	uint8_t			*buf;
	size_t			 size;	/* allocated */
	size_t			 wpos;	/* bytes written */
	size_t			 rpos;	/* bytes consumed */
	int			 fd;	/* passed with the message, or -1 */
};

struct ibuf	*ibuf_open(size_t);
void		 ibuf_free(struct ibuf *);
int		 ibuf_reserve(struct ibuf *, size_t);
int		 ibuf_add(struct ibuf *, const void *, size_t);
int		 ibuf_add_u8(struct ibuf *, uint8_t);
int		 ibuf_add_u32(struct ibuf *, uint32_t);
int		 ibuf_add_u64(struct ibuf *, uint64_t);
int		 ibuf_add_str(struct ibuf *, const char *);
int		 ibuf_add_data(struct ibuf *, const void *, size_t);
int		 ibuf_printf(struct ibuf *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		*ibuf_data(const struct ibuf *);	/* unread part */
size_t		 ibuf_left(const struct ibuf *);	/* unread bytes */
void		 ibuf_consume(struct ibuf *, size_t);
void		 ibuf_reset(struct ibuf *);
void		 ibuf_fd_set(struct ibuf *, int);

/*
 * imsg.c: framed messages over a stream socket, with fd passing.
 * A message is a header followed by at most IMSG_MAXSIZE bytes in all.
 */
#define IMSG_MAXSIZE		(16 * 1024 * 1024)
#define IMSG_HASFD		0x0001

struct imsg_hdr {
	uint32_t	 type;
	uint32_t	 len;		/* header included */
	uint16_t	 flags;
	uint16_t	 _pad;
	uint32_t	 peerid;
	uint32_t	 pid;
};
#define IMSG_HDRSIZE		sizeof(struct imsg_hdr)
#define IMSG_DATASIZE(imsg)	((imsg)->hdr.len - IMSG_HDRSIZE)

struct imsg {
	struct imsg_hdr	 hdr;
	int		 fd;		/* -1 unless IMSG_HASFD */
	uint8_t		*data;
	size_t		 datalen;
};

#define IMSG_MAXFDS		16	/* received but not yet claimed */

struct imsgbuf {
	int			 fd;
	pid_t			 pid;		/* stamped on what we send */
	struct ibuf		*r;		/* bytes read, not yet framed */
	int			 fds[IMSG_MAXFDS];
	int			 nfds;
	TAILQ_HEAD(, ibuf)	 wq;		/* queued messages */
	size_t			 queued;	/* bytes in wq */
};

void		 imsgbuf_init(struct imsgbuf *, int);
void		 imsgbuf_clear(struct imsgbuf *);
ssize_t		 imsg_read(struct imsgbuf *);
int		 imsg_get(struct imsgbuf *, struct imsg *);
void		 imsg_free(struct imsg *);
int		 imsg_compose(struct imsgbuf *, uint32_t, uint32_t, pid_t,
		    int, const void *, size_t);
struct ibuf	*imsg_create(struct imsgbuf *, uint32_t, uint32_t, pid_t,
		    size_t);
int		 imsg_close(struct imsgbuf *, struct ibuf *);
int		 imsg_write(struct imsgbuf *);
int		 imsg_flush(struct imsgbuf *);

/*
 * Reading what ibuf_add_* wrote: every getter checks the length left,
 * strings must be NUL-terminated with no NUL inside; ir_end() fails if
 * any getter failed or bytes are left over.
 */
struct ireader {
	const uint8_t	*p;
	size_t		 left;
	int		 bad;
};

void		 ir_init(struct ireader *, const struct imsg *);
uint8_t		 ir_u8(struct ireader *);
uint32_t	 ir_u32(struct ireader *);
uint64_t	 ir_u64(struct ireader *);
const char	*ir_str(struct ireader *);
const void	*ir_data(struct ireader *, size_t *);
int		 ir_end(struct ireader *);

/*
 * event.c: an epoll(7) (elsewhere poll(2)) loop with fd callbacks,
 * one-shot timers and signals delivered through a self-pipe. A watched
 * descriptor is closed only after ev_del.
 */
#define EV_READ		0x01
#define EV_WRITE	0x02
#define EV_HUP		0x04	/* reported only: hangup or error */
#define EV_EAGER	0x08	/* with EV_WRITE: tried before polling */

struct ev_timer {
	TAILQ_ENTRY(ev_timer)	 entry;
	uint64_t		 when;	/* ms, monotonic */
	int			 armed;
	void			(*cb)(void *);
	void			*arg;
};

void		 ev_init(void);
void		 ev_fork(void);
void		 ev_set(int, int, void (*)(int, int, void *), void *);
void		 ev_del(int);
void		 ev_timer_set(struct ev_timer *, void (*)(void *), void *);
/* A 0 ms timer runs after the fd callbacks of the current round. */
void		 ev_timer_add(struct ev_timer *, uint64_t);
void		 ev_timer_del(struct ev_timer *);
int		 ev_timer_pending(const struct ev_timer *);
void		 ev_signal(int, void (*)(int, void *), void *);
int		 ev_loop(void);
void		 ev_break(void);
uint64_t	 ev_now_ms(void);

/*
 * channel.c: an imsgbuf driven by the event loop. dispatch() gets each
 * whole message; closed() is called once, last, on EOF, a write error
 * or bad framing (broken is set then: whose fault is the owner's to
 * say), and is where the owner may free the channel.
 */
struct channel {
	struct imsgbuf	 ibuf;
	void		(*dispatch)(struct channel *, struct imsg *);
	void		(*closed)(struct channel *);
	void		*arg;
	int		 events;
	int		 paused;
	int		 dead;
	int		 broken;	/* closed for a bad frame */
	int		 held;		/* what is queued may wait */
	struct ev_timer	 hold;		/* until then */
};

/*
 * dispatch() may call channel_shutdown() on its own channel; then
 * closed() is not called, the caller owns the cleanup. A channel is
 * never freed by this code.
 */
void		 channel_init(struct channel *, int,
		    void (*)(struct channel *, struct imsg *),
		    void (*)(struct channel *), void *);
int		 channel_compose(struct channel *, uint32_t, uint32_t, int,
		    const void *, size_t);
struct ibuf	*channel_create(struct channel *, uint32_t, uint32_t, size_t);
int		 channel_compose_u32(struct channel *, uint32_t, uint32_t,
		    uint32_t);
int		 channel_send(struct channel *, struct ibuf *);
int		 channel_send_later(struct channel *, struct ibuf *, uint64_t);
void		 channel_pause(struct channel *, int);
void		 channel_shutdown(struct channel *);
int		 channel_flush(struct channel *);
void		 channel_push(struct channel *);

/*
 * log.c: stderr in the foreground, syslog otherwise; a sandboxed child
 * hands its lines to a sink (the parent, over imsg).
 */
void		 log_init(int, int);
void		 log_procinit(const char *);
void		 log_setverbose(int);
int		 log_getverbose(void);
void		 log_setsink(void (*)(int, const char *));
void		 log_emit(int, const char *);
void		 log_warn(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 log_warnx(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 log_info(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 log_debug(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 fatal(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2), __noreturn__));
void		 fatalx(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2), __noreturn__));
char		*str_escape(const char *, size_t);

/*
 * reply.c: the reply blocks of BRIDGE/1 (PROTOCOL.md, "Replies").
 * The writer dot-stuffs a body that may arrive in fragments and ends
 * it with LF before the status line; the reader undoes that.
 */
struct reply_writer {
	int		 bol;		/* next byte starts a line */
};

void		 reply_begin(struct reply_writer *);
int		 reply_body(struct reply_writer *, struct ibuf *,
		    const char *, size_t);
int		 reply_status(struct reply_writer *, struct ibuf *,
		    const char *, const char *, ...)
		    __attribute__((__format__ (printf, 4, 5)));

enum reply_kind {
	REPLY_BODY,		/* a body line, unstuffed */
	REPLY_OK,
	REPLY_ERR,
	REPLY_MORE,
	REPLY_BYE,
	REPLY_BAD		/* a status line with an unknown word */
};

/* Classify one line (without its LF); *text points past the word. */
enum reply_kind	 reply_parse(const char *, const char **);

/* file.c */
int		 read_file(const char *, uint8_t **, size_t *);

/*
 * sandbox_*.c: one call per role after its setup; one file per system.
 */
enum sandbox_role {
	SANDBOX_PARENT,
	SANDBOX_CONTROL,
	SANDBOX_STORAGE,
	SANDBOX_PROVIDER,
	SANDBOX_WORKER,
	SANDBOX_TEMPLATE	/* a worker's setup, forks the workers */
};

struct sandbox_conf {
	const char	*user;		/* NULL: stay who we are */
	const char	*chroot;	/* NULL: no chroot */
	const char	*dbdir;		/* storage: the database directory */
	int		 db_family;	/* storage: its server's, 0 none */
	int		 db_port;	/* storage: its server's TCP port */
};

int		 sandbox_enter(enum sandbox_role, const struct sandbox_conf *);
/* In a template: its children's stricter role, prepared before its own. */
int		 sandbox_prepare(enum sandbox_role);
/* In a child forked from a sandboxed template: a stricter role on top. */
int		 sandbox_narrow(enum sandbox_role);

/* sandbox.c: steps every implementation shares */
struct passwd;
int		 sandbox_check_conf(const struct sandbox_conf *, struct passwd *);
int		 sandbox_drop_user(const struct passwd *);
int		 sandbox_limits(enum sandbox_role);
void		 sandbox_wipe_environ(void);

/*
 * compat.c: what some systems lack.
 */
#ifndef HAVE_STRLCPY
size_t		 strlcpy(char *, const char *, size_t);
size_t		 strlcat(char *, const char *, size_t);
#endif
#ifndef HAVE_STRTONUM
long long	 strtonum(const char *, long long, long long, const char **);
#endif
#ifndef HAVE_SETPROCTITLE
void		 setproctitle_init(int, char **);
void		 setproctitle(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
#endif
#ifndef HAVE_FREEZERO
void		 freezero(void *, size_t);
#endif
#ifndef HAVE_RECALLOCARRAY
void		*recallocarray(void *, size_t, size_t, size_t);
#endif
int		 fd_nonblock(int);
int		 fd_cloexec(int);
int		 utf8_valid(const char *, size_t);
void		 sha256_hex(const void *, size_t, char [65]);

/* iso8601.c */
void		 iso8601(uint64_t, char *, size_t);

#endif /* BRIDGE_UTIL_H */
