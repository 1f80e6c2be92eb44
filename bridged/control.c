/*
 * control.c: the control process. Unprivileged, it serves bridgectl on
 * the control socket the parent opened, checks every request and
 * passes it on; the parent acts only on what arrives from here.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"
#include "ctl.h"

#define CONTROL_MAXCONNS	32
#define CTL_JOBS_MAX		1000		/* lines of show jobs */

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn)	 entry;
	uint32_t		 id;
	struct channel		 chan;
	int			 monitor;
};

/* A request passed on to storage or provider, until its end. */
struct ctl_req {
	TAILQ_ENTRY(ctl_req)	 entry;
	uint32_t		 id;
	uint32_t		 conn;
	uint32_t		 kind;		/* CTL_* */
	struct export_state	 ex;
	char			 identity[IDENTITY_LEN + 1];
	char			 token[TOKEN_TEXT_LEN + 1]; /* added */
};

static TAILQ_HEAD(, ctl_conn) conns = TAILQ_HEAD_INITIALIZER(conns);
static TAILQ_HEAD(, ctl_req) reqs = TAILQ_HEAD_INITIALIZER(reqs);
static struct channel		 storage_chan, provider_chan;
static int			 have_storage, have_provider;
static struct bridged_conf	*conf;
static int			 listen_fd = -1;
static int			 nconns;
static uint32_t			 monitors_told;	/* what the parent knows */
static struct ev_timer		 pause_timer;
static struct ev_timer		 reap_timer;

static void	control_accept(int, int, void *);
static int	req_line(struct ctl_req *, char *);

/* The control client of this id, or NULL. */
static struct ctl_conn *
conn_find(uint32_t id)
{
	struct ctl_conn	*c;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->id == id)
			return (c);
	return (NULL);
}

/*
 * The parent sends monitor lines only while a monitor is attached:
 * tell it the count whenever it changes.
 */
static void
monitors_update(void)
{
	struct ctl_conn	*c;
	uint32_t	 n = 0;

	TAILQ_FOREACH(c, &conns, entry)
		if (c->monitor && !c->chan.dead)
			n++;
	if (n == monitors_told)
		return;
	monitors_told = n;
	channel_compose_u32(parent_chan, IMSG_CTL_MONITORS, 0, n);
}

/* Forget a control client; accept again if that was the limit. */
static void
conn_free(struct ctl_conn *c)
{
	TAILQ_REMOVE(&conns, c, entry);
	nconns--;
	free(c);
	monitors_update();
	if (listen_fd != -1 && !ev_timer_pending(&pause_timer))
		ev_set(listen_fd, EV_READ, control_accept, NULL);
}

/* A control client hung up. */
static void
conn_closed(struct channel *ch)
{
	conn_free(ch->arg);
}

/* Free what was shut down inside its own dispatch, once it returned. */
static void
conn_reap(void *arg)
{
	struct ctl_conn	*c, *next;

	(void)arg;
	for (c = TAILQ_FIRST(&conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->chan.dead)
			conn_free(c);
	}
}

/* Answer a client with one line of the given kind. */
static void
conn_reply(struct ctl_conn *c, uint32_t type, const char *text)
{
	struct ibuf	*b;

	if ((b = channel_create(&c->chan, type, 0, strlen(text) + 8)) ==
	    NULL || ibuf_add_str(b, text) == -1) {
		ibuf_free(b);
		return;
	}
	channel_send(&c->chan, b);
}

/* A client that breaks the protocol is dropped; nothing else is. */
static void
conn_drop(struct ctl_conn *c, const char *why)
{
	log_debug("control client %u: %s", c->id, why);
	conn_reply(c, CTL_FAIL, why);
	channel_flush(&c->chan);
	channel_shutdown(&c->chan);
	ev_timer_add(&reap_timer, 0);
}

/* The forwarded request of this id, or NULL. */
static struct ctl_req *
req_find(uint32_t id)
{
	struct ctl_req	*r;

	TAILQ_FOREACH(r, &reqs, entry)
		if (r->id == id)
			return (r);
	return (NULL);
}

/* The request is over: say how, and forget it. */
static void
req_done(struct ctl_req *r, uint32_t type, const char *text)
{
	struct ctl_conn	*c;

	if ((c = conn_find(r->conn)) != NULL)
		conn_reply(c, type, text);
	TAILQ_REMOVE(&reqs, r, entry);
	freezero(r, sizeof(*r));
}

/* Fail what waits on the provider (models) or storage that went away. */
static void
req_fail_all(int models)
{
	struct ctl_req	*r, *next;

	for (r = TAILQ_FIRST(&reqs); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if ((r->kind == CTL_MODELS) == (models != 0))
			req_done(r, CTL_FAIL, r->kind == CTL_MODELS ?
			    "the provider is restarting" :
			    "storage is restarting");
	}
}

/* Whether s is a prefix of an identity: lowercase hex. */
static int
is_hex(const char *s)
{
	size_t	 n = strspn(s, "0123456789abcdef");

	return (n > 0 && n <= IDENTITY_LEN && s[n] == '\0');
}

/* A new random token: TOKEN_PREFIX and hex, TOKEN_BITS of chance. */
static void
token_new(char token[TOKEN_TEXT_LEN + 1])
{
	static const char	 hex[] = "0123456789abcdef";
	uint8_t			 rnd[TOKEN_BITS / 8];
	size_t			 i, off;

	arc4random_buf(rnd, sizeof(rnd));
	off = strlcpy(token, TOKEN_PREFIX, TOKEN_TEXT_LEN + 1);
	for (i = 0; i < sizeof(rnd); i++) {
		token[off++] = hex[rnd[i] >> 4];
		token[off++] = hex[rnd[i] & 15];
	}
	token[off] = '\0';
	explicit_bzero(rnd, sizeof(rnd));
}

/*
 * The payload storage gets for a request from bridgectl, after the
 * request id; -1 if the request is malformed.
 */
static int
request_payload(struct ctl_req *r, struct imsg *imsg, struct ibuf *b)
{
	struct ireader	 ir;
	const char	*identity = "", *format = "", *label, *models;
	char		 hash[IDENTITY_LEN + 1];
	uint64_t	 rq, tk, jb;
	uint32_t	 n = 0;
	int		 rv;

	ir_init(&ir, imsg);
	switch (imsg->hdr.type) {
	case CTL_EXPORT:
		identity = ir_str(&ir);
		format = ir_str(&ir);
		if (ir_end(&ir) == -1 || !is_hex(identity) ||
		    (strcmp(format, "json") != 0 &&
		    strcmp(format, "markdown") != 0))
			return (-1);
		r->ex.markdown = strcmp(format, "markdown") == 0;
		return (ibuf_add_str(b, identity));
	case CTL_PURGE:
		identity = ir_str(&ir);
		if (ir_end(&ir) == -1 || !is_hex(identity))
			return (-1);
		return (ibuf_add_str(b, identity));
	case CTL_TOKEN_ADD:
		label = ir_str(&ir);
		n = ir_u32(&ir);
		models = ir_str(&ir);
		rq = ir_u64(&ir);
		tk = ir_u64(&ir);
		jb = ir_u64(&ir);
		if (ir_end(&ir) == -1 || n > 36500 ||
		    !limits_word_valid(label, LABEL_MAX_LEN, "") ||
		    !limits_word_valid(models, TOKEN_MODELS_MAX, ",/:"))
			return (-1);
		token_new(r->token);
		sha256_hex(r->token, strlen(r->token), hash);
		rv = ibuf_add_str(b, hash) == -1 ||
		    ibuf_add_str(b, label) == -1 ||
		    ibuf_add_u64(b, n == 0 ? 0 : (uint64_t)time(NULL) +
		    (uint64_t)n * 86400) == -1 ||
		    ibuf_add_str(b, models) == -1 ||
		    ibuf_add_u64(b, rq) == -1 || ibuf_add_u64(b, tk) == -1 ||
		    ibuf_add_u64(b, jb) == -1 ? -1 : 0;
		explicit_bzero(hash, sizeof(hash));
		return (rv);
	case CTL_TOKEN_REVOKE:
		n = ir_u32(&ir);
		if (ir_end(&ir) == -1 || n == 0)
			return (-1);
		return (ibuf_add_u64(b, n));
	case CTL_JOBS:
		if (ir_end(&ir) == -1)
			return (-1);
		return (ibuf_add_u32(b, CTL_JOBS_MAX));
	case CTL_JOBKILL:
		rq = ir_u64(&ir);
		if (ir_end(&ir) == -1 || rq == 0 || rq > INT64_MAX)
			return (-1);
		return (ibuf_add_u64(b, rq));
	case CTL_USAGE:
	case CTL_EVENTS:
		identity = ir_str(&ir);
		n = ir_u32(&ir);
		if (ir_end(&ir) == -1 || (*identity != '\0' &&
		    !is_hex(identity)) || n == 0)
			return (-1);
		return (ibuf_add_str(b, identity) == -1 ||
		    ibuf_add_u32(b, n) == -1 ? -1 : 0);
	default:	/* CTL_MODELS, CTL_TOKEN_LIST, CTL_IDENTITIES */
		return (ir_end(&ir));
	}
}

/* The message a peer gets for a request of bridgectl. */
static uint32_t
request_type(uint32_t kind)
{
	switch (kind) {
	case CTL_MODELS:
		return (IMSG_CTL_MODELS);
	case CTL_EXPORT:
		return (IMSG_CTL_EXPORT);
	case CTL_PURGE:
		return (IMSG_CTL_PURGE);
	case CTL_TOKEN_ADD:
		return (IMSG_CTL_TOKEN_ADD);
	case CTL_TOKEN_LIST:
		return (IMSG_CTL_TOKEN_LIST);
	case CTL_TOKEN_REVOKE:
		return (IMSG_CTL_TOKEN_REVOKE);
	case CTL_USAGE:
		return (IMSG_CTL_USAGE);
	case CTL_IDENTITIES:
		return (IMSG_CTL_IDENTITIES);
	case CTL_JOBS:
		return (IMSG_CTL_JOBS);
	case CTL_JOBKILL:
		return (IMSG_CTL_JOBKILL);
	default:
		return (IMSG_CTL_EVENTS);
	}
}

/* Requests that storage or the provider answer: checked, passed on. */
static void
control_forward(struct ctl_conn *c, struct imsg *imsg)
{
	static uint32_t	 next_req = 1;
	struct ctl_req	*r;
	struct ibuf	*b, *pl;
	struct channel	*peer;
	int		 models = imsg->hdr.type == CTL_MODELS;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (pl = ibuf_open(256)) == NULL) {
		free(r);
		conn_reply(c, CTL_FAIL, "out of memory");
		return;
	}
	r->id = next_req++;
	r->conn = c->id;
	r->kind = imsg->hdr.type;
	if (ibuf_add_u32(pl, r->id) == -1 ||
	    request_payload(r, imsg, pl) == -1) {
		ibuf_free(pl);
		freezero(r, sizeof(*r));
		conn_drop(c, "malformed request");
		return;
	}
	peer = models ? &provider_chan : &storage_chan;
	if (!(models ? have_provider : have_storage)) {
		ibuf_free(pl);
		freezero(r, sizeof(*r));
		conn_reply(c, CTL_FAIL, models ?
		    "the provider is not running" : "storage is not running");
		return;
	}
	TAILQ_INSERT_TAIL(&reqs, r, entry);
	if ((b = channel_create(peer, request_type(r->kind), 0,
	    ibuf_left(pl))) == NULL ||
	    ibuf_add(b, ibuf_data(pl), ibuf_left(pl)) == -1) {
		ibuf_free(b);
		ibuf_free(pl);
		req_done(r, CTL_FAIL, "out of memory");
		return;
	}
	ibuf_free(pl);
	channel_send(peer, b);
}

/* Have the parent end the live sessions of an identity. */
static void
end_sessions(const char *identity, const char *reason)
{
	struct ibuf	*b;

	if ((b = channel_create(parent_chan, IMSG_CTL_END_SESSIONS, 0,
	    strlen(reason) + IDENTITY_LEN + 16)) == NULL ||
	    ibuf_add_str(b, identity) == -1 || ibuf_add_str(b, reason) == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
}

/* Storage's END of a request: the last line, and what follows it. */
static void
req_end(struct ctl_req *r, uint64_t n)
{
	struct ctl_conn	*c;
	char		 msg[128];

	switch (r->kind) {
	case CTL_EXPORT:
		if (req_line(r, export_end(&r->ex)) == 0)
			req_done(r, CTL_END, "");
		return;
	case CTL_PURGE:
		if (r->identity[0] != '\0')
			end_sessions(r->identity, "identity purged");
		snprintf(msg, sizeof(msg), "%llu rows deleted",
		    (unsigned long long)n);
		break;
	case CTL_TOKEN_ADD:
		/* Shown once: bridged keeps only its hash. */
		if ((c = conn_find(r->conn)) != NULL)
			conn_reply(c, CTL_DATA, r->token);
		explicit_bzero(r->token, sizeof(r->token));
		snprintf(msg, sizeof(msg), "token %llu added",
		    (unsigned long long)n);
		break;
	case CTL_TOKEN_REVOKE:
		if (r->identity[0] != '\0')
			end_sessions(r->identity, "token revoked");
		snprintf(msg, sizeof(msg), "token revoked");
		break;
	case CTL_JOBKILL:
		snprintf(msg, sizeof(msg), "job %llu cancelled",
		    (unsigned long long)n);
		break;
	default:
		msg[0] = '\0';
		break;
	}
	req_done(r, CTL_END, msg);
}

/* Send a line we built; -1 (and the request is over) if none was. */
static int
req_line(struct ctl_req *r, char *line)
{
	struct ctl_conn	*c;

	if (line == NULL) {
		req_done(r, CTL_FAIL, "cannot format the answer");
		return (-1);
	}
	if ((c = conn_find(r->conn)) != NULL)
		conn_reply(c, CTL_DATA, line);
	free(line);
	return (0);
}

/* One line of show jobs: id, state, identity, model, created, answer
   tokens, the beginning of the prompt (escaped: it is a client's). */
static int
job_line(struct ctl_req *r, struct ireader *ir)
{
	const char	*model, *identity, *head;
	char		*esc, *line, when[32];
	uint64_t	 id, created, tout;
	uint32_t	 state;

	id = ir_u64(ir);
	state = ir_u32(ir);
	model = ir_str(ir);
	created = ir_u64(ir);
	tout = ir_u64(ir);
	identity = ir_str(ir);
	head = ir_str(ir);
	if (ir_end(ir) == -1 || state >= JOB_STATE_MAX)
		return (-1);
	iso8601(created, when, sizeof(when));
	if ((esc = str_escape(head, strlen(head))) == NULL)
		return (0);
	if (asprintf(&line, "%llu %s %.12s %s %s %llu %s",
	    (unsigned long long)id, job_state_name(state), identity, model,
	    when, (unsigned long long)tout, esc) == -1)
		line = NULL;
	free(esc);
	req_line(r, line);
	return (0);
}

/* Storage's answers, to the control client that asked. */
static void
control_dispatch_storage(struct channel *ch, struct imsg *imsg)
{
	struct ireader	 ir;
	struct ctl_req	*r;
	const char	*s;
	const void	*text;
	size_t		 len;
	uint64_t	 rowid, t, n;
	uint32_t	 role;

	(void)ch;
	ir_init(&ir, imsg);
	r = req_find(ir_u32(&ir));
	switch (imsg->hdr.type) {
	case IMSG_STORAGE_IDENTITY:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1 || r == NULL || !is_hex(s))
			break;
		(void)strlcpy(r->identity, s, sizeof(r->identity));
		if (r->kind == CTL_EXPORT)
			req_line(r, export_begin(&r->ex, s, NULL));
		return;
	case IMSG_STORAGE_LINE:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		req_line(r, strdup(s));
		return;
	case IMSG_STORAGE_ITEM:
		rowid = ir_u64(&ir);
		t = ir_u64(&ir);
		role = ir_u32(&ir);
		text = ir_data(&ir, &len);
		if (ir_end(&ir) == -1 || r == NULL || role >= ROLE_MAX ||
		    r->kind != CTL_EXPORT)
			break;
		req_line(r, export_item(&r->ex, rowid, t, role, text, len));
		return;
	case IMSG_STORAGE_JOB_LINE:
		if (r == NULL || r->kind != CTL_JOBS || job_line(r, &ir) == -1)
			break;
		return;
	case IMSG_STORAGE_END:
		n = ir_u64(&ir);
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		req_end(r, n);
		return;
	case IMSG_STORAGE_ERROR:
		s = ir_str(&ir);
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		req_done(r, CTL_FAIL, s);
		return;
	}
	child_bad(PROC_STORAGE, imsg, r == NULL ? "no such request" : NULL);
}

/* The provider's answers (show models), to the client that asked. */
static void
control_dispatch_provider(struct channel *ch, struct imsg *imsg)
{
	struct ireader	 ir;
	struct ctl_req	*r;
	const char	*name, *code, *text;
	uint64_t	 in, out;
	char		 line[256];

	(void)ch;
	ir_init(&ir, imsg);
	r = req_find(ir_u32(&ir));
	switch (imsg->hdr.type) {
	case IMSG_PROVIDER_MODEL:
		name = ir_str(&ir);
		in = ir_u64(&ir);
		out = ir_u64(&ir);
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		snprintf(line, sizeof(line), "%s input %llu output %llu",
		    name, (unsigned long long)in, (unsigned long long)out);
		req_line(r, strdup(line));
		return;
	case IMSG_PROVIDER_MODELS_END:
		text = ir_str(&ir);	/* which providers failed */
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		req_done(r, CTL_END, text);
		return;
	case IMSG_PROVIDER_ERROR:
		code = ir_str(&ir);
		text = ir_str(&ir);
		if (ir_end(&ir) == -1 || r == NULL)
			break;
		snprintf(line, sizeof(line), "%s: %s", code, text);
		req_done(r, CTL_FAIL, line);
		return;
	}
	child_bad(PROC_PROVIDER, imsg, r == NULL ? "no such request" : NULL);
}

/* Storage or the provider went away: what waited on it fails. */
static void
control_peer_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(ch == &storage_chan ? PROC_STORAGE : PROC_PROVIDER,
		    NULL, NULL);
	if (ch == &storage_chan) {
		have_storage = 0;
		req_fail_all(0);
	} else {
		have_provider = 0;
		req_fail_all(1);
	}
}

/* A request from bridgectl, checked and forwarded. */
static void
control_dispatch_client(struct channel *ch, struct imsg *imsg)
{
	struct ctl_conn	*c = ch->arg;
	struct ireader	 ir;
	uint32_t	 v, type;

	if (imsg->hdr.peerid != CTL_VERSION) {
		conn_drop(c, "bridgectl and bridged versions differ");
		return;
	}
	switch (imsg->hdr.type) {
	case CTL_STATUS:
		type = IMSG_CTL_STATUS;
		break;
	case CTL_SESSIONS:
		type = IMSG_CTL_SESSIONS;
		break;
	case CTL_RELOAD:
		type = IMSG_CTL_RELOAD;
		break;
	case CTL_KILL:
		type = IMSG_CTL_KILL;
		break;
	case CTL_LOG:
		type = IMSG_CTL_LOG;
		break;
	case CTL_METRICS:
		type = IMSG_CTL_METRICS;
		break;
	case CTL_MONITOR:
		if (imsg->datalen != 0) {
			conn_drop(c, "malformed request");
			return;
		}
		c->monitor = 1;
		monitors_update();
		return;
	case CTL_MODELS:
	case CTL_EXPORT:
	case CTL_PURGE:
	case CTL_TOKEN_ADD:
	case CTL_TOKEN_LIST:
	case CTL_TOKEN_REVOKE:
	case CTL_USAGE:
	case CTL_IDENTITIES:
	case CTL_EVENTS:
	case CTL_JOBS:
	case CTL_JOBKILL:
		control_forward(c, imsg);
		return;
	default:
		conn_drop(c, "unknown request");
		return;
	}
	if (type == IMSG_CTL_KILL || type == IMSG_CTL_LOG) {
		ir_init(&ir, imsg);
		v = ir_u32(&ir);
		if (ir_end(&ir) == -1) {
			conn_drop(c, "malformed request");
			return;
		}
		channel_compose_u32(parent_chan, type, c->id, v);
	} else {
		if (imsg->datalen != 0) {
			conn_drop(c, "malformed request");
			return;
		}
		channel_compose(parent_chan, type, c->id, -1, NULL, 0);
	}
}

/* The pause after EMFILE is over: accept again. */
static void
control_resume(void *arg)
{
	(void)arg;
	if (listen_fd != -1)
		ev_set(listen_fd, EV_READ, control_accept, NULL);
}

/* A new control client, up to the limit. */
static void
control_accept(int fd, int events, void *arg)
{
	static uint32_t	 next_id = 1;
	struct ctl_conn	*c;
	int		 s;

	(void)events;
	(void)arg;
	if ((s = accept(fd, NULL, NULL)) == -1) {
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors: wait instead of spinning. */
			ev_del(fd);
			ev_timer_add(&pause_timer, 1000);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("%s: accept", __func__);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(s);
		return;
	}
	c->id = next_id++;
	if (c->id == 0)
		c->id = next_id++;
	channel_init(&c->chan, s, control_dispatch_client, conn_closed, c);
	TAILQ_INSERT_TAIL(&conns, c, entry);
	if (++nconns >= CONTROL_MAXCONNS)
		ev_del(fd);
}

/* Pass an answer from the parent to the client that asked. */
static void
control_answer(struct imsg *imsg)
{
	struct ctl_conn	*c;
	struct ireader	 ir;
	const char	*text;
	uint32_t	 type;

	ir_init(&ir, imsg);
	text = ir_str(&ir);
	if (ir_end(&ir) == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	if (imsg->hdr.type == IMSG_PARENT_MONITOR) {
		TAILQ_FOREACH(c, &conns, entry)
			if (c->monitor)
				conn_reply(c, CTL_DATA, text);
		return;
	}
	if ((c = conn_find(imsg->hdr.peerid)) == NULL)
		return;		/* the client left */
	type = imsg->hdr.type == IMSG_PARENT_DATA ? CTL_DATA :
	    imsg->hdr.type == IMSG_PARENT_END ? CTL_END : CTL_FAIL;
	conn_reply(c, type, text);
}

/* The parent: the socket, channels, answers and monitor lines. */
static void
control_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	if (child_imsg(&conf, NULL, imsg) != -1)
		return;
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CONTROL_SOCKET:
		if (imsg->fd == -1 || listen_fd != -1)
			child_bad(PROC_PARENT, imsg, "no descriptor or two");
		listen_fd = imsg->fd;
		imsg->fd = -1;
		fd_nonblock(listen_fd);
		ev_set(listen_fd, EV_READ, control_accept, NULL);
		break;
	case IMSG_PARENT_STORAGE:
	case IMSG_PARENT_PROVIDER:
		if (imsg->fd == -1)
			child_bad(PROC_PARENT, imsg, "no descriptor");
		if (imsg->hdr.type == IMSG_PARENT_STORAGE) {
			if (have_storage)
				channel_shutdown(&storage_chan);
			req_fail_all(0);
			channel_init(&storage_chan, imsg->fd,
			    control_dispatch_storage, control_peer_closed,
			    NULL);
			have_storage = 1;
		} else {
			if (have_provider)
				channel_shutdown(&provider_chan);
			req_fail_all(1);
			channel_init(&provider_chan, imsg->fd,
			    control_dispatch_provider, control_peer_closed,
			    NULL);
			have_provider = 1;
		}
		imsg->fd = -1;
		break;
	case IMSG_PARENT_DATA:
	case IMSG_PARENT_END:
	case IMSG_PARENT_FAIL:
	case IMSG_PARENT_MONITOR:
		control_answer(imsg);
		break;
	default:
		child_bad(PROC_PARENT, imsg, "unexpected");
	}
}

/* SIGTERM: leave. */
static void
control_sigterm(int sig, void *arg)
{
	(void)sig;
	(void)arg;
	exit(0);
}

/* The control process: sandbox, then serve the socket. */
void
control_main(void)
{
	struct sandbox_conf	 sc;

	conf = child_config(NULL);
	ev_timer_set(&pause_timer, control_resume, NULL);
	ev_timer_set(&reap_timer, conn_reap, NULL);
	ev_signal(SIGTERM, control_sigterm, NULL);
	signal(SIGPIPE, SIG_IGN);
	memset(&sc, 0, sizeof(sc));
	/* As the other processes: "" is none (not root, or a test). */
	sc.user = conf->g.user[0] != '\0' ? conf->g.user : NULL;
	sc.chroot = conf->g.chroot[0] != '\0' ? conf->g.chroot : NULL;
	export_init();
	if (sandbox_enter(SANDBOX_CONTROL, &sc) == -1)
		fatalx("control: cannot sandbox");
	child_dispatch(control_dispatch_parent);
	child_ready();
	ev_loop();
	exit(0);
}
