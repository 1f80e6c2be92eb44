/*
 * proto_base.c: what every part of a BRIDGE/1 session builds on. A
 * reply is built in p->out and written once per call into the session,
 * so a short reply leaves in one write; a request to storage is an
 * IMSG_WORKER_* payload that begins with its request id; model lists
 * are kept sorted by name. proto.c (lines, modes, prompts, the peers'
 * answers) and the command families (proto_models.c, proto_conv.c,
 * proto_jobs.c) use these; this file uses none of them.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridged.h"

static const char	*model_base(const char *);

/* The error codes of PROTOCOL.md, the only ones a client may see. */
static const char *err_codes[] = {
	"unknown-command", "bad-argument", "too-long", "bad-utf8",
	"no-model", "upstream", "upstream-timeout", "rate-limited", "busy",
	"auth", "cancelled", "storage", "internal", "not-found"
};

/* Body text of the reply being built, dot-stuffed as it goes. */
void
out_body(struct proto *p, const char *s, size_t len)
{
	if (reply_body(&p->rw, p->out, s, len) == -1)
		fatal("%s", __func__);
}

/* One formatted body line of the reply being built. */
void
out_line(struct proto *p, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n == -1)
		fatal("%s", __func__);
	out_body(p, s, n);
	out_body(p, "\n", 1);
	free(s);
}

/* The status line that ends a reply: OK, ERR, MORE or BYE. */
void
out_status(struct proto *p, const char *word, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		fatal("%s", __func__);
	va_end(ap);
	if (reply_status(&p->rw, p->out, word, "%s", s) == -1)
		fatal("%s", __func__);
	free(s);
}

/* Hand what the reply holds so far to the worker to write. */
void
out_flush(struct proto *p)
{
	size_t	 n;

	if ((n = ibuf_left(p->out)) == 0)
		return;
	p->bytes_out += n;
	p->ops->write(p->arg, ibuf_data(p->out), n);
	ibuf_reset(p->out);
}

/* A monitor line for the parent. */
void
proto_event(struct proto *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 line[512];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	p->ops->event(p->arg, line);
}

/* A code from the protocol's list, or NULL. */
const char *
err_code(const char *code)
{
	size_t	 i;

	for (i = 0; i < sizeof(err_codes) / sizeof(err_codes[0]); i++)
		if (strcmp(code, err_codes[i]) == 0)
			return (err_codes[i]);
	return (NULL);
}

/* Copy a peer's text for a status line: bounded, on one line. */
void
text_copy(char *dst, size_t size, const char *src)
{
	char	*s;

	strlcpy(dst, src, size);
	for (s = dst; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* A request id of this session, never 0. */
uint32_t
proto_reqid(struct proto *p)
{
	if (++p->nextid == 0)
		p->nextid = 1;
	return (p->nextid);
}

/* A blank between words: space or tab. */
int
is_space(char c)
{
	return (c == ' ' || c == '\t');
}

/* Whether a line holds nothing but blanks (and a CR). */
int
is_blank(const char *s, size_t len)
{
	while (len > 0 && (is_space(*s) || *s == '\r')) {
		s++;
		len--;
	}
	return (len == 0);
}

/* What is wrong with a line's bytes, or NULL. */
const char *
line_bad(const char *s, size_t len)
{
	if (memchr(s, '\0', len) != NULL)
		return ("line holds a NUL byte");
	if (!utf8_valid(s, len))
		return ("line is not valid UTF-8");
	return (NULL);
}

/* The current command is answered: the next line may come. */
void
op_done(struct proto *p)
{
	p->op = OP_NONE;
	p->req = 0;
	p->statelazy = 1;	/* its counts; what it changed says so */
	p->mnote[0] = '\0';
	mlist_free(&p->fetch);
}

/* A payload that begins with the request id. */
struct ibuf *
req_open(struct proto *p, uint32_t id)
{
	struct ibuf	*b;

	(void)p;
	if ((b = ibuf_open(256)) == NULL || ibuf_add_u32(b, id) == -1)
		fatal("%s", __func__);
	return (b);
}

/* Hand a storage request to the worker: 0, or -1 if it cannot go. */
int
storage_send(struct proto *p, uint32_t type, struct ibuf *b)
{
	struct ireader	 ir;
	struct imsg	 m;
	uint32_t	 id;

	memset(&m, 0, sizeof(m));
	m.data = ibuf_data(b);
	m.datalen = ibuf_left(b);
	m.fd = -1;
	ir_init(&ir, &m);
	id = ir_u32(&ir);
	return (p->ops->storage(p->arg, type, id, b));
}

/*
 * The optional N of HISTORY, SUMMARIES, CONVERSATIONS and JOBS: 1 to
 * PROTO_HISTORY_MAX, PROTO_HISTORY_DEFAULT if absent; -1 after ERR.
 */
long long
arg_count(struct proto *p, const char *arg)
{
	const char	*errstr;
	long long	 n;

	if (arg == NULL)
		return (PROTO_HISTORY_DEFAULT);
	n = strtonum(arg, 1, PROTO_HISTORY_MAX, &errstr);
	if (errstr != NULL) {
		out_status(p, "ERR", "bad-argument N must be 1 to %d",
		    PROTO_HISTORY_MAX);
		return (-1);
	}
	return (n);
}

/*
 * Ask storage for a list of the last [N] (type: u32 id, u32 count);
 * its lines are answered under op.
 */
void
list_request(struct proto *p, const char *arg, uint32_t type,
    enum proto_op op)
{
	struct ibuf	*b;
	long long	 n;

	if ((n = arg_count(p, arg)) == -1)
		return;
	p->req = proto_reqid(p);
	p->hcount = 0;
	b = req_open(p, p->req);
	if (ibuf_add_u32(b, (uint32_t)n) == -1)
		fatal("%s", __func__);
	if (storage_send(p, type, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = op;
}

/* Set fields of the current conversation; the request id, or 0. */
uint32_t
conv_set(struct proto *p, int mask, const char *model, const char *role,
    const char *system)
{
	struct ibuf	*b;
	uint32_t	 id = proto_reqid(p);

	b = req_open(p, id);
	if (ibuf_add_u64(b, p->conv) == -1 ||
	    ibuf_add_u32(b, (uint32_t)mask) == -1 ||
	    ibuf_add_str(b, model) == -1 || ibuf_add_str(b, role) == -1 ||
	    ibuf_add_str(b, system) == -1)
		fatal("%s", __func__);
	return (storage_send(p, IMSG_WORKER_CONV_SET, b) == -1 ? 0 : id);
}

/*
 * Load a conversation (ref "": the identity's most recently used) and
 * its context; lines wait until it is in. 0, or -1 if not sent.
 */
int
context_load(struct proto *p, const char *ref)
{
	struct ibuf	*b;

	p->ctxreq = proto_reqid(p);
	b = req_open(p, p->ctxreq);
	if (ibuf_add_str(b, ref) == -1 || ibuf_add_str(b, p->model) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_CONTEXT, b) == -1) {
		p->ctxreq = 0;
		p->ctxready = 1;
		return (-1);
	}
	p->ctxready = 0;
	return (0);
}

/* A configured role by name, or NULL. */
const struct role_conf *
role_find(const struct proto *p, const char *name)
{
	size_t	 i;

	if (*name == '\0')
		return (NULL);
	for (i = 0; i < p->nroles; i++)
		if (strcmp(p->roles[i].name, name) == 0)
			return (&p->roles[i]);
	return (NULL);
}

/* Empty a model list. */
void
mlist_free(struct mlist *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A name from the provider: printable, no spaces, bounded. */
int
model_name_ok(const char *name)
{
	const unsigned char	*s;

	if (*name == '\0' || strlen(name) >= MODEL_MAX_LEN)
		return (0);
	for (s = (const unsigned char *)name; *s != '\0'; s++)
		if (*s <= 0x20 || *s == 0x7f)
			return (0);
	return (1);
}

/* One more model of a list; -1 if the list is full. */
int
mlist_add(struct mlist *l, const char *name, uint64_t inlimit)
{
	struct pmodel	*v;

	if (!model_name_ok(name) || l->n >= PROTO_MODELS_MAX)
		return (-1);
	if ((v = recallocarray(l->v, l->n, l->n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	l->v = v;
	strlcpy(v[l->n].name, name, sizeof(v[l->n].name));
	v[l->n].inlimit = inlimit;
	l->n++;
	return (0);
}

/* Names match alike with or without the API's "models/" prefix. */
static const char *
model_base(const char *name)
{
	if (strncmp(name, "models/", 7) == 0)
		return (name + 7);
	return (name);
}

/* A model of the list by name, exact, then loosely; NULL if none. */
const struct pmodel *
mlist_find(const struct mlist *l, const char *name)
{
	const struct pmodel	*m = NULL;
	const char		*slash;
	size_t			 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i].name, name) == 0)
			return (&l->v[i]);
	for (i = 0; i < l->n; i++)
		if (strcasecmp(model_base(l->v[i].name),
		    model_base(name)) == 0)
			return (&l->v[i]);
	/* A bare name that only one provider's "provider/model" has. */
	for (i = 0; i < l->n; i++) {
		if ((slash = strchr(l->v[i].name, '/')) == NULL ||
		    strcmp(slash + 1, name) != 0)
			continue;
		if (m != NULL)
			return (NULL);
		m = &l->v[i];
	}
	return (m);
}
