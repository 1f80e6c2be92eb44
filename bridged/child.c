/*
 * child.c: what every process the parent executes has in common: the
 * channel to the parent, logging through it, and receiving the
 * configuration before the role's own setup.
 */

#include <sys/types.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bridged.h"

static struct channel	 parent_channel;
struct channel		*parent_chan = &parent_channel;
int			 foreground;
static struct bridged_conf *pending;

/* Log lines go to the parent, which owns syslog. */
static void
child_log_sink(int pri, const char *line)
{
	struct ibuf	*b;

	if (parent_chan->dead)
		return;
	if ((b = channel_create(parent_chan, IMSG_CHILD_LOG, 0,
	    strlen(line) + 16)) == NULL)
		return;
	if (ibuf_add_u32(b, (uint32_t)pri) == -1 ||
	    ibuf_add_str(b, line) == -1) {
		ibuf_free(b);
		return;
	}
	channel_send(parent_chan, b);
	/* Try now: the line may be the last thing this process does. */
	imsg_write(&parent_chan->ibuf);
}

/* Without a parent there is nothing to serve. */
static void
child_parent_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(PROC_PARENT, NULL, NULL);
	_exit(0);
}

/*
 * A peer other than a worker sent what does not parse (imsg, or NULL
 * for a broken frame): a bug or an attack, and this process cannot
 * trust its state with that peer any more. Say who and what, and
 * leave; the parent starts us again.
 */
void
child_bad(enum proc_id peer, const struct imsg *imsg, const char *why)
{
	fatalx("bad %s from %s%s%s", imsg != NULL ?
	    imsg_type_name(imsg->hdr.type) : "framing", proc_name(peer),
	    why != NULL ? ": " : "", why != NULL ? why : "");
}

/* Before the process is set up nothing may come from the parent. */
static void
child_no_dispatch(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	child_bad(PROC_PARENT, imsg, "unexpected now");
}

/* A child process: logging, title, event loop, its parent channel. */
void
child_init(enum proc_id id, int debug, int verbose)
{
	foreground = debug;
	log_init(debug, LOG_DAEMON);
	log_setverbose(verbose);
	log_procinit(proc_name(id));
	setproctitle("%s", proc_name(id));
	ev_init();
	channel_init(parent_chan, FD_PARENT, child_no_dispatch,
	    child_parent_closed, NULL);
	log_setsink(child_log_sink);
}

/*
 * In a process just forked from a child (a worker from its template):
 * drop the inherited channel to the parent unwritten and the event
 * loop's state, and take a channel of its own on fd. The inherited
 * buffers are left as they are, not freed: wiping them would only copy
 * pages shared with the template (they hold its requests, no secret).
 */
void
child_forked(enum proc_id id, int fd)
{
	int	 i;

	for (i = 0; i < parent_chan->ibuf.nfds; i++)
		close(parent_chan->ibuf.fds[i]);
	close(parent_chan->ibuf.fd);
	ev_fork();
	log_procinit(proc_name(id));
	setproctitle("%s", proc_name(id));
	channel_init(parent_chan, fd, child_no_dispatch,
	    child_parent_closed, NULL);
}

/* Apply one IMSG_CFG_*: 1 when a new configuration is complete. */
int
child_config_imsg(struct bridged_conf **confp, struct tls_material *tls,
    struct imsg *imsg)
{
	int	 r;

	if ((r = config_recv(confp, &pending, tls, imsg)) == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	return (r);
}

/*
 * What every child takes alike from the parent: the configuration and
 * the log level. 1 when a new configuration is complete, 0 when the
 * message was one of these, -1 when it is the role's own.
 */
int
child_imsg(struct bridged_conf **confp, struct tls_material *tls,
    struct imsg *imsg)
{
	struct ireader	 ir;
	uint32_t	 v;

	switch (imsg->hdr.type) {
	case IMSG_CFG_GLOBAL:
	case IMSG_CFG_PROVIDER:
	case IMSG_CFG_ROLE:
	case IMSG_CFG_TLS:
	case IMSG_CFG_DB_PASSWORD:
	case IMSG_CFG_DONE:
		return (child_config_imsg(confp, tls, imsg) == 1 ? 1 : 0);
	case IMSG_PARENT_VERBOSE:
		ir_init(&ir, imsg);
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1)
			child_bad(PROC_PARENT, imsg, NULL);
		log_setverbose(v);
		return (0);
	}
	return (-1);
}

/* Wait for the first configuration; nothing else may come before it. */
struct bridged_conf *
child_config(struct tls_material *tls)
{
	struct bridged_conf	*conf = NULL;
	struct pollfd		 pfd;
	struct imsg		 imsg;
	ssize_t			 n;
	int			 r, done = 0;

	while (!done) {
		pfd.fd = FD_PARENT;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("%s: poll", __func__);
		}
		if ((n = imsg_read(&parent_chan->ibuf)) == -1) {
			if (errno == EAGAIN)
				continue;
			fatal("%s: read", __func__);
		}
		if (n == 0)
			_exit(0);
		while (!done &&
		    (r = imsg_get(&parent_chan->ibuf, &imsg)) != 0) {
			if (r == -1)
				fatalx("%s: bad framing from parent", __func__);
			if ((done = child_imsg(&conf, tls, &imsg)) == -1)
				child_bad(PROC_PARENT, &imsg,
				    "before the configuration");
			imsg_free(&imsg);
		}
	}
	return (conf);
}

/* Tell the parent this process is set up and sandboxed. */
void
child_ready(void)
{
	channel_compose(parent_chan, IMSG_CHILD_READY, 0, -1, NULL, 0);
}

/* From now on the role handles the parent's messages, buffered too. */
void
child_dispatch(void (*dispatch)(struct channel *, struct imsg *))
{
	parent_chan->dispatch = dispatch;
	channel_pause(parent_chan, 0);
}
