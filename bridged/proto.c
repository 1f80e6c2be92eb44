/*
 * proto.c: one client's BRIDGE/1 session (PROTOCOL.md) as a state
 * machine with no I/O. It takes the client's bytes and the answers of
 * storage and provider, and acts through the worker's table of output
 * functions, so every reply can be tested without a socket.
 *
 * Lines are answered one at a time, in order: while a command waits
 * for storage or the provider, what the client sends next waits in a
 * queue. The one exception is CANCEL while an answer streams.
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


static void	proto_run(struct proto *);
static void	prompt_continue(struct proto *);
static void	prompt_send(struct proto *);
static void	prompt_fail(struct proto *, const char *, const char *);
static void	prompt_check_end(struct proto *);

/* The stored name of a message role. */
static const char *
proto_role(uint32_t role)
{
	switch (role) {
	case ROLE_USER:
		return ("user");
	case ROLE_MODEL:
		return ("model");
	case ROLE_SUMMARY:
		return ("summary");
	}
	return ("unknown");
}

/* Does the line, trimmed, equal word (case-insensitive)? */
static int
line_is(const char *s, size_t len, const char *word)
{
	size_t	 wl = strlen(word);

	while (len > 0 && is_space(*s)) {
		s++;
		len--;
	}
	while (len > 0 && is_space(s[len - 1]))
		len--;
	return (len == wl && strncasecmp(s, word, wl) == 0);
}

/* Whether a line is the """ that opens or closes a block. */
static int
is_quotes(const char *s, size_t len)
{
	return (len == 3 && memcmp(s, "\"\"\"", 3) == 0);
}

/* The model that answered the prompt: the session's, or a fallback. */
static const char *
pr_model(const struct proto *p)
{
	return (p->pr.answered[0] != '\0' ? p->pr.answered : p->model);
}

/* Forget the prompt in flight, wiping its text. */
static void
prompt_free(struct proto *p)
{
	freezero(p->pr.text, p->pr.len + 1);
	ibuf_free(p->pr.answer);
	memset(&p->pr, 0, sizeof(p->pr));
}

/* Store a prompt or an answer in the current conversation. */
static int
store_message(struct proto *p, uint32_t id, int role, const char *model,
    uint64_t tokens, const char *text, size_t len)
{
	struct ibuf	*b;

	if (len > DB_TEXT_MAX)
		return (-1);
	b = req_open(p, id);
	if (ibuf_add_u64(b, p->ops->random(p->arg)) == -1 ||
	    ibuf_add_u64(b, p->conv) == -1 ||
	    ibuf_add_u32(b, (uint32_t)role) == -1 ||
	    ibuf_add_str(b, model) == -1 ||
	    ibuf_add_u64(b, tokens) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	return (storage_send(p, IMSG_WORKER_STORE, b));
}

/* A conversation storage named becomes the current one. */
static void
conv_adopt(struct proto *p, const struct db_conv *c)
{
	const struct pmodel	*m;

	ctx_clear(&p->ctx);
	p->conv = (uint64_t)c->id;
	strlcpy(p->convname, c->name, sizeof(p->convname));
	strlcpy(p->convrole, c->role, sizeof(p->convrole));
	free(p->system);
	p->system = NULL;
	if (c->system[0] != '\0' && (p->system = strdup(c->system)) == NULL)
		fatal("%s", __func__);
	if (c->model[0] != '\0' && strcmp(c->model, p->model) != 0) {
		strlcpy(p->model, c->model, sizeof(p->model));
		p->ctx.inlimit = 0;
		if ((m = mlist_find(&p->models, p->model)) != NULL)
			p->ctx.inlimit = m->inlimit;
	}
	p->statedirty = 1;
	proto_event(p, "conversation %llu", (unsigned long long)p->conv);
}

/* The generation settings of a request. */
/* A generation of the session's model, with its role's settings. */
static void
gen_setup(struct proto *p, struct proto_gen *g, const char *sys,
    const struct proto_turn *v, size_t n)
{
	const struct role_conf	*r;

	memset(g, 0, sizeof(*g));
	g->model = p->model;
	g->system = sys;
	g->turns = v;
	g->nturns = n;
	g->temperature = GEN_TEMP_NONE;
	g->max_tokens = 0;
	/* The conversation's role brings its generation settings. */
	if ((r = role_find(p, p->convrole)) != NULL) {
		g->temperature = r->temperature;
		g->max_tokens = r->max_tokens;
	}
}

/* Ask the model for a summary of the context: 0, or -1 if not sent. */
static int
summary_request(struct proto *p)
{
	struct proto_gen	 g;
	struct proto_turn	*v;
	const char		*ask;
	char			*sys;
	size_t			 n, len;
	int			 rv;

	sys = ctx_memory(&p->ctx, &len, &ask);
	if (p->pr.answer == NULL && (p->pr.answer = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(p->pr.answer);
	p->pr.sum = proto_reqid(p);
	v = ctx_turns(&p->ctx, ask, strlen(ask), &n);
	gen_setup(p, &g, sys, v, n);
	/* The memory manager writes with the model's own settings. */
	g.temperature = GEN_TEMP_NONE;
	g.max_tokens = 0;
	rv = p->ops->gen(p->arg, p->pr.sum, &g);
	free(v);
	freezero(sys, len);
	if (rv == -1)
		p->pr.sum = 0;
	return (rv);
}

/* The summary text, once DONE came: NULL if there is none. */
static const char *
summary_text(struct proto *p, size_t *lenp)
{
	size_t	 len = ibuf_left(p->pr.answer);

	if (is_blank(ibuf_data(p->pr.answer), len))
		return (NULL);
	if (ibuf_add(p->pr.answer, "", 1) == -1)
		fatal("%s", __func__);
	*lenp = len;
	return (ibuf_data(p->pr.answer));
}

/* No summary: the oldest turns go until the prompt fits. */
static void
prompt_trim(struct proto *p)
{
	size_t	 n;

	if ((n = ctx_trim(&p->ctx, p->pr.len)) > 0)
		proto_event(p, "context dropped=%zu turns", n);
}

/*
 * Commands.
 */

/* HELP: the commands, one line each. */
static void
cmd_help(struct proto *p, const char *arg)
{
	static const char *help[] = {
		"HELP              this list",
		"INFO              this session",
		"LIST-MODELS       the chat models",
		"CHANGE-MODEL [N]  choose a model by number or name",
		"IA, CHAT          chat mode: every line is a prompt",
		"ASK <prompt>      one prompt from command mode",
		"HISTORY [N]       the last N stored messages (20)",
		"SUMMARIES [N]     the last N stored summaries (20)",
		"NEW [name]        a new conversation (alias RESET)",
		"CONVERSATIONS [N] the last N conversations (20)",
		"RESUME <id|name>  go on with a conversation",
		"DELETE <id|name>  delete a conversation",
		"SYSTEM [text|-]   show, set or clear the system prompt",
		"SEARCH <words>    search all your messages",
		"IMPORT            a JSON export becomes a new conversation",
		"ROLES             the configured roles",
		"ROLE <name>       apply a role to this conversation",
		"EXPORT [json|markdown] [id|name]",
		"                  a conversation, the current by default",
		"SUBMIT <prompt>   a background job; RESULT shows it",
		"DIALOGUE <turns> <model A> <model B> <opening>",
		"                  a job: two models answer each other",
		"JOBS [N]          the last N jobs (20)",
		"RESULT <id>       a job's answer, followed while it runs",
		"KILL <id>         stop a queued or running job",
		"USAGE [days]      your use of the last days (7)",
		"AUTH <token>      identify with a token",
		"EXIT, QUIT        close the session",
		"In chat mode: BACK returns here, EXIT or QUIT closes,",
		"a line of \"\"\" starts and ends a multi-line prompt,",
		"CANCEL stops an answer while it streams."
	};
	size_t	 i;

	(void)arg;
	for (i = 0; i < sizeof(help) / sizeof(help[0]); i++)
		out_line(p, "%s", help[i]);
	out_status(p, "OK", "%s", "");
}

/* The INFO lines, with the message count when storage gave one. */
static void
info_reply(struct proto *p, int have, uint64_t count)
{
	char	 when[32];

	iso8601(p->s.connected, when, sizeof(when));
	out_line(p, "id: %s", p->shortid);
	out_line(p, "ip: %s", p->s.ip);
	out_line(p, "port: %u", p->s.port);
	out_line(p, "connected: %s", when);
	out_line(p, "model: %s", p->model[0] != '\0' ? p->model : "none");
	out_line(p, "tls: %s", p->s.tls[0] != '\0' ? p->s.tls : "none");
	if (have)
		out_line(p, "messages: %llu", (unsigned long long)count);
	else
		out_line(p, "messages: unknown");
	out_line(p, "conversation: %llu %s", (unsigned long long)p->conv,
	    p->convname[0] != '\0' ? p->convname : "-");
	out_line(p, "role: %s", p->convrole[0] != '\0' ? p->convrole : "-");
	out_status(p, "OK", "%s", "");
}

/* INFO: asks storage for the count of messages first. */
static void
cmd_info(struct proto *p, const char *arg)
{
	(void)arg;
	p->req = proto_reqid(p);
	if (storage_send(p, IMSG_WORKER_COUNT, req_open(p, p->req)) == -1) {
		info_reply(p, 0, 0);
		return;
	}
	p->op = OP_INFO;
}

/* IA, CHAT: chat mode, every line a prompt until BACK. */
static void
cmd_ia(struct proto *p, const char *arg)
{
	(void)arg;
	p->mode = MODE_CHAT;
	p->statedirty = 1;
	out_status(p, "OK", "chat mode, BACK to return");
}

/* A prompt of the session takes its first step: the context. */
static void
prompt_start(struct proto *p, char *text, size_t len)
{
	if (p->model[0] == '\0') {
		freezero(text, len + 1);
		out_status(p, "ERR", "no-model no model chosen,"
		    " see LIST-MODELS and CHANGE-MODEL");
		return;
	}
	prompt_free(p);
	p->op = OP_PROMPT;
	p->pr.text = text;
	p->pr.len = len;
	p->pr.t0 = p->ops->now(p->arg);
	p->pr.step = STEP_CONTEXT;
	proto_event(p, "prompt bytes=%zu", len);
	prompt_continue(p);
}

/* A prompt from one line: copied, since the line goes away. */
static void
prompt_line(struct proto *p, const char *s, size_t len)
{
	char	*text;

	if (is_blank(s, len)) {
		out_status(p, "ERR", "bad-argument empty prompt");
		return;
	}
	if ((text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(text, s, len);
	text[len] = '\0';
	prompt_start(p, text, len);
}

/* ASK: one line as a prompt, from command mode. */
static void
cmd_ask(struct proto *p, const char *arg)
{
	prompt_line(p, arg, strlen(arg));
}

/* AUTH: a token for the parent to check (token identities only). */
static void
cmd_auth(struct proto *p, const char *arg)
{
	switch (p->s.identity_mode) {
	case IDENTITY_IP:
		out_status(p, "ERR", "auth this server identifies clients"
		    " by address");
		break;
	case IDENTITY_CERTIFICATE:
		out_status(p, "ERR", "auth this server identifies clients"
		    " by certificate");
		break;
	case IDENTITY_TOKEN:
		if (p->s.identity[0] != '\0') {
			out_status(p, "ERR", "auth already authenticated");
			break;
		}
		if (p->ops->auth(p->arg, arg) == -1) {
			out_status(p, "ERR", "internal cannot check the token");
			break;
		}
		p->op = OP_AUTH;
		break;
	}
}

/* USAGE [days]: this identity's use, and its limits, from storage. */
static void
cmd_usage(struct proto *p, const char *arg)
{
	struct ibuf	*b;
	const char	*errstr;
	long long	 n = PROTO_USAGE_DEFAULT;

	if (arg != NULL) {
		n = strtonum(arg, 1, PROTO_USAGE_MAX, &errstr);
		if (errstr != NULL) {
			out_status(p, "ERR", "bad-argument days must be 1 to %d",
			    PROTO_USAGE_MAX);
			return;
		}
	}
	p->req = proto_reqid(p);
	p->hcount = (uint32_t)n;
	b = req_open(p, p->req);
	if (ibuf_add_u32(b, (uint32_t)n) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_USAGE_GET, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_USAGE;
}

/* EXIT, QUIT: BYE and close. */
static void
cmd_exit(struct proto *p, const char *arg)
{
	(void)arg;
	proto_bye(p, NULL);
}

#define ARG_NONE	0	/* none allowed */
#define ARG_OPT		1
#define ARG_NEED	2
#define ARG_PREAUTH	4	/* allowed before AUTH */
#define ARG_RAW		8	/* the argument as typed, however long */

static const struct proto_cmd {
	const char	*name;
	int		 flags;
	void		(*fn)(struct proto *, const char *);
} proto_cmds[] = {
	{ "ASK",		ARG_NEED | ARG_RAW,	cmd_ask },
	{ "AUTH",		ARG_NEED | ARG_PREAUTH,	cmd_auth },
	{ "CHANGE-MODEL",	ARG_OPT,		cmd_change },
	{ "CHAT",		ARG_NONE,		cmd_ia },
	{ "CONVERSATIONS",	ARG_OPT,		cmd_convs },
	{ "DELETE",		ARG_NEED,		cmd_delete },
	{ "DIALOGUE",		ARG_NEED | ARG_RAW,	cmd_dialogue },
	{ "EXPORT",		ARG_OPT,		cmd_export },
	{ "EXIT",		ARG_NONE | ARG_PREAUTH,	cmd_exit },
	{ "HELP",		ARG_NONE | ARG_PREAUTH,	cmd_help },
	{ "HISTORY",		ARG_OPT,		cmd_messages },
	{ "IMPORT",		ARG_NONE,		cmd_import },
	{ "IA",			ARG_NONE,		cmd_ia },
	{ "INFO",		ARG_NONE,		cmd_info },
	{ "JOBS",		ARG_OPT,		cmd_jobs },
	{ "KILL",		ARG_NEED,		cmd_kill },
	{ "LIST-MODELS",	ARG_NONE,		cmd_list },
	{ "NEW",		ARG_OPT,		cmd_new },
	{ "QUIT",		ARG_NONE | ARG_PREAUTH,	cmd_exit },
	{ "RESET",		ARG_OPT,		cmd_new },
	{ "RESULT",		ARG_NEED,		cmd_result },
	{ "RESUME",		ARG_NEED,		cmd_resume },
	{ "ROLE",		ARG_NEED,		cmd_role },
	{ "ROLES",		ARG_NONE,		cmd_roles },
	{ "SEARCH",		ARG_NEED | ARG_RAW,	cmd_search },
	{ "SUBMIT",		ARG_NEED | ARG_RAW,	cmd_submit },
	{ "SUMMARIES",		ARG_OPT,		cmd_summaries },
	{ "SYSTEM",		ARG_OPT | ARG_RAW,	cmd_system },
	{ "USAGE",		ARG_OPT,		cmd_usage }
};

/* A line in command mode: a word, then its argument. */
static void
cmd_line(struct proto *p, const char *line)
{
	const struct proto_cmd	*c = NULL;
	const char		*w, *arg;
	size_t			 wl, i, al;

	for (w = line; is_space(*w); w++)
		;
	for (wl = 0; w[wl] != '\0' && !is_space(w[wl]); wl++)
		;
	for (arg = w + wl; is_space(*arg); arg++)
		;
	for (al = strlen(arg); al > 0 && is_space(arg[al - 1]); al--)
		;
	if (wl == 0) {
		out_status(p, "ERR", "unknown-command empty line, try HELP");
		return;
	}
	for (i = 0; i < sizeof(proto_cmds) / sizeof(proto_cmds[0]); i++) {
		if (strlen(proto_cmds[i].name) == wl &&
		    strncasecmp(proto_cmds[i].name, w, wl) == 0) {
			c = &proto_cmds[i];
			break;
		}
	}
	if (c == NULL) {
		out_status(p, "ERR", "unknown-command %.*s, try HELP",
		    (int)(wl > 64 ? 64 : wl), w);
		return;
	}
	if (p->s.identity_mode == IDENTITY_TOKEN &&
	    p->s.identity[0] == '\0' && !(c->flags & ARG_PREAUTH)) {
		out_status(p, "ERR", "auth send AUTH <token> first");
		return;
	}
	if (al == 0 && (c->flags & ARG_NEED)) {
		out_status(p, "ERR", "bad-argument %s needs an argument",
		    c->name);
		return;
	}
	if (al > 0 && !(c->flags & (ARG_NEED | ARG_OPT))) {
		out_status(p, "ERR", "bad-argument %s takes no argument",
		    c->name);
		return;
	}
	/* ASK keeps its prompt as typed; others drop trailing blanks. */
	if (al == 0)
		c->fn(p, NULL);
	else if (c->flags & ARG_RAW)
		c->fn(p, arg);
	else {
		char	buf[PROTO_ARG_MAX];

		if (al >= sizeof(buf)) {
			out_status(p, "ERR", "bad-argument argument too long");
			return;
		}
		memcpy(buf, arg, al);
		buf[al] = '\0';
		c->fn(p, buf);
	}
}

/*
 * Chat mode.
 */

/* BACK: command mode, after a summary of what was said. */
static void
back_start(struct proto *p)
{
	p->mode = MODE_COMMAND;
	p->statedirty = 1;
	if (!ctx_dirty(&p->ctx) || p->model[0] == '\0') {
		out_status(p, "OK", "back in command mode");
		return;
	}
	prompt_free(p);
	p->op = OP_BACK;
	p->pr.t0 = p->ops->now(p->arg);
	if (summary_request(p) == -1) {
		out_status(p, "OK", "back in command mode, no summary:"
		    " upstream provider restarting");
		prompt_free(p);
		op_done(p);
	}
}

/* BACK is answered OK whatever became of the summary. */
static void
back_end(struct proto *p, const char *what, const char *why)
{
	if (what == NULL)
		out_status(p, "OK", "back in command mode");
	else
		out_status(p, "OK", "back in command mode, %s: %s", what, why);
	prompt_free(p);
	op_done(p);
}

/* A """ block begins: its lines are gathered into one prompt. */
static void
ml_start(struct proto *p)
{
	p->ml = 1;
	p->mlcode = NULL;
	p->mllines = 0;
	if (p->mlbuf == NULL && (p->mlbuf = ibuf_open(1024)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(p->mlbuf);
}

/* The closing """: the block goes as one prompt, or its error. */
static void
ml_end(struct proto *p)
{
	size_t	 len;
	char	*text;

	p->ml = 0;
	if (p->mlcode != NULL) {
		out_status(p, "ERR", "%s %s", p->mlcode, p->mlwhy);
		ibuf_reset(p->mlbuf);
		return;
	}
	len = ibuf_left(p->mlbuf);
	if (is_blank(ibuf_data(p->mlbuf), len)) {
		out_status(p, "ERR", "bad-argument empty prompt");
		ibuf_reset(p->mlbuf);
		return;
	}
	if ((text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(text, ibuf_data(p->mlbuf), len);
	text[len] = '\0';
	explicit_bzero(ibuf_data(p->mlbuf), len);
	ibuf_reset(p->mlbuf);
	prompt_start(p, text, len);
}

/* A line inside a """ block, bounded by the prompt limit. */
static void
ml_line(struct proto *p, struct pline *l)
{
	const char	*why;
	size_t		 have;

	if (!l->toolong && is_quotes(l->text, l->len)) {
		ml_end(p);
		return;
	}
	if (p->mlcode != NULL)
		return;
	if (l->toolong) {
		p->mlcode = "too-long";
		snprintf(p->mlwhy, sizeof(p->mlwhy),
		    "a line is longer than %zu bytes", p->s.line_max);
		return;
	}
	if ((why = line_bad(l->text, l->len)) != NULL) {
		p->mlcode = "bad-utf8";
		snprintf(p->mlwhy, sizeof(p->mlwhy), "%s", why);
		return;
	}
	have = ibuf_left(p->mlbuf);
	if (have + 1 + l->len > PROTO_PROMPT_MAX) {
		p->mlcode = "too-long";
		snprintf(p->mlwhy, sizeof(p->mlwhy),
		    "the prompt is longer than %d bytes", PROTO_PROMPT_MAX);
		return;
	}
	/* Lines are joined with LF; an empty line keeps its place. */
	if (p->mllines > 0 && ibuf_add(p->mlbuf, "\n", 1) == -1)
		fatal("%s", __func__);
	if (ibuf_add(p->mlbuf, l->text, l->len) == -1)
		fatal("%s", __func__);
	p->mllines++;
}

/* A line in chat mode: BACK, EXIT, QUIT, """ or a prompt. */
static void
chat_mode_line(struct proto *p, const char *s, size_t len)
{
	if (line_is(s, len, "BACK"))
		back_start(p);
	else if (line_is(s, len, "EXIT") || line_is(s, len, "QUIT"))
		proto_bye(p, NULL);
	else if (is_quotes(s, len))
		ml_start(p);
	else
		prompt_line(p, s, len);
}

/* One line from the queue, in whatever state the session is. */
static void
proto_line(struct proto *p, struct pline *l)
{
	const char	*why = NULL;

	if (p->ml) {
		ml_line(p, l);
		return;
	}
	if (p->imp) {
		import_line(p, l);
		return;
	}
	if (l->toolong) {
		if (p->menu) {
			p->menu = 0;
			mlist_free(&p->menulist);
		}
		out_status(p, "ERR", "too-long line longer than %zu bytes",
		    p->s.line_max);
		return;
	}
	if ((why = line_bad(l->text, l->len)) != NULL) {
		if (p->menu) {
			p->menu = 0;
			mlist_free(&p->menulist);
		}
		out_status(p, "ERR", "bad-utf8 %s", why);
		return;
	}
	if (p->menu) {
		p->menu = 0;
		model_choose(p, &p->menulist, l->text);
		mlist_free(&p->menulist);
	} else if (p->mode == MODE_CHAT)
		chat_mode_line(p, l->text, l->len);
	else
		cmd_line(p, l->text);
}

/*
 * Prompts: context, maybe a summary first, then the answer, then
 * storage; the status line comes when storage has answered.
 */

/* The next step of a prompt once its context is in. */
static void
prompt_continue(struct proto *p)
{
	if (!p->ctxready)
		return;
	/* Storage could not say which conversation: ask again. */
	if (p->conv == 0 && p->pr.ustate == SS_NONE && !p->pr.ctxretry) {
		p->pr.ctxretry = 1;
		if (context_load(p, "") == 0)
			return;
	}
	if (ctx_dirty(&p->ctx) && ctx_over(&p->ctx, p->pr.len)) {
		proto_event(p, "memory summarize bytes=%llu",
		    (unsigned long long)(p->ctx.bytes + p->ctx.summarylen));
		if (summary_request(p) == 0) {
			p->pr.step = STEP_SUMMARY;
			return;
		}
		prompt_trim(p);
	}
	prompt_send(p);
}

/* Store the user's prompt (once, under its id if one was set aside). */
static void
prompt_store_user(struct proto *p)
{
	if (p->pr.ustate != SS_NONE)
		return;
	if (p->pr.ustore == 0)
		p->pr.ustore = proto_reqid(p);
	p->pr.ustate = SS_PENDING;
	if (store_message(p, p->pr.ustore, ROLE_USER, p->model, 0,
	    p->pr.text, p->pr.len) == -1) {
		p->pr.ustate = SS_FAILED;
		p->pr.ustore = 0;
		strlcpy(p->pr.serr, "not available", sizeof(p->pr.serr));
	}
}

/*
 * Send the context and the prompt to the provider, then store the
 * prompt (its id comes first all the same): storage answers the
 * generation's admission before it commits the prompt, so that both
 * go on at once.
 */
static void
prompt_send(struct proto *p)
{
	struct proto_gen	 g;
	struct proto_turn	*v;
	char			*sys;
	size_t			 n, len;
	int			 rv;

	p->pr.step = STEP_ANSWER;
	if (p->pr.ustate == SS_NONE && p->pr.ustore == 0)
		p->pr.ustore = proto_reqid(p);
	if (p->pr.answer == NULL && (p->pr.answer = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(p->pr.answer);
	sys = ctx_system(&p->ctx, p->system != NULL ? p->system : "", &len);
	p->pr.gen = proto_reqid(p);
	v = ctx_turns(&p->ctx, p->pr.text, p->pr.len, &n);
	gen_setup(p, &g, sys, v, n);
	rv = p->ops->gen(p->arg, p->pr.gen, &g);
	free(v);
	freezero(sys, len);
	if (rv == -1) {
		p->pr.gen = 0;
		prompt_fail(p, "upstream", "provider restarting");
		return;
	}
	prompt_store_user(p);
}

/* The prompt failed: store it all the same, then say why. */
static void
prompt_fail(struct proto *p, const char *code, const char *why)
{
	if (p->pr.code[0] != '\0')
		return;
	strlcpy(p->pr.code, code, sizeof(p->pr.code));
	text_copy(p->pr.why, sizeof(p->pr.why), why);
	if (p->pr.gen != 0)
		p->ops->cancel(p->arg, p->pr.gen);
	if (p->pr.sum != 0)
		p->ops->cancel(p->arg, p->pr.sum);
	p->pr.gen = p->pr.sum = p->pr.sumstore = 0;
	p->pr.step = STEP_STORE;
	prompt_store_user(p);
	prompt_check_end(p);
}

/* The status line of a prompt once storage has answered. */
static void
prompt_check_end(struct proto *p)
{
	struct prompt	*pr = &p->pr;
	uint64_t	 ms;

	if (pr->step != STEP_STORE || pr->ustate == SS_PENDING ||
	    pr->mstate == SS_PENDING)
		return;
	ms = p->ops->now(p->arg) - pr->t0;
	if (pr->code[0] != '\0') {
		out_status(p, "ERR", "%s %s", pr->code, pr->why);
		proto_event(p, "error code=%s ms=%llu", pr->code,
		    (unsigned long long)ms);
	} else {
		/* The answer was seen: the context keeps it either way. */
		ctx_append(&p->ctx, ROLE_USER, pr->text, pr->len);
		ctx_append(&p->ctx, ROLE_MODEL, ibuf_data(pr->answer),
		    ibuf_left(pr->answer));
		if (pr->ustate == SS_FAILED || pr->mstate == SS_FAILED) {
			out_status(p, "ERR", "storage %s", pr->serr);
			proto_event(p, "error code=storage ms=%llu",
			    (unsigned long long)ms);
		} else if (pr->finish[0] != '\0' &&
		    strcmp(pr->finish, "STOP") != 0) {
			out_status(p, "OK", "model=%s in=%llu out=%llu ms=%llu"
			    " finish=%s", pr_model(p),
			    (unsigned long long)pr->tin,
			    (unsigned long long)pr->tout,
			    (unsigned long long)ms, pr->finish);
		} else {
			out_status(p, "OK", "model=%s in=%llu out=%llu ms=%llu",
			    pr_model(p), (unsigned long long)pr->tin,
			    (unsigned long long)pr->tout,
			    (unsigned long long)ms);
		}
		if (pr->ustate != SS_FAILED && pr->mstate != SS_FAILED)
			proto_event(p, "answer model=%s in=%llu out=%llu"
			    " ms=%llu", p->model, (unsigned long long)pr->tin,
			    (unsigned long long)pr->tout,
			    (unsigned long long)ms);
	}
	prompt_free(p);
	op_done(p);
}

/* CANCEL: the prompt in flight stops. */
static void
prompt_cancel(struct proto *p)
{
	prompt_fail(p, "cancelled", "stopped by CANCEL");
}

/*
 * The queue of lines.
 */

/* A whole line from the client: queued, or CANCEL at once. */
static void
queue_add(struct proto *p, const char *s, size_t len, int toolong)
{
	struct pline	*l;

	/* CANCEL acts at once on an answer that streams. */
	if (!toolong && p->op == OP_PROMPT && p->pr.step < STEP_STORE &&
	    p->qquotes % 2 == 0 && line_is(s, len, "CANCEL")) {
		prompt_cancel(p);
		return;
	}
	if (!toolong && p->op == OP_RESULT && p->following &&
	    p->qquotes % 2 == 0 && line_is(s, len, "CANCEL")) {
		result_cancel(p);
		return;
	}
	if ((l = malloc(sizeof(*l) + len + 1)) == NULL)
		fatal("%s", __func__);
	l->toolong = toolong;
	l->len = len;
	memcpy(l->text, s, len);
	l->text[len] = '\0';
	TAILQ_INSERT_TAIL(&p->queue, l, entry);
	p->queued += len + 1;
	if (!toolong && is_quotes(s, len))
		p->qquotes++;
}

/* A whole line was read: CR before LF dropped, length checked. */
static void
line_end(struct proto *p)
{
	size_t	 len = ibuf_left(p->part);
	char	*s = ibuf_data(p->part);

	if (!p->discard && len > 0 && s[len - 1] == '\r')
		len--;
	if (p->discard || len > p->s.line_max)
		queue_add(p, "", 0, 1);
	else
		queue_add(p, s, len, 0);
	explicit_bzero(ibuf_data(p->part), ibuf_left(p->part));
	ibuf_reset(p->part);
	p->discard = 0;
	proto_run(p);
}

/*
 * Whether a line may be answered before the conversation has loaded:
 * a prompt may (it waits for its context itself), a command may not.
 */
static int
line_early(const struct proto *p, const struct pline *l)
{
	size_t	 n;

	if (l->toolong || p->ml || p->menu || p->imp)
		return (1);
	if (p->mode == MODE_CHAT)
		return (!line_is(l->text, l->len, "BACK"));
	for (n = 0; n < l->len && is_space(l->text[n]); n++)
		;
	return (l->len - n > 3 && strncasecmp(l->text + n, "ASK", 3) == 0 &&
	    is_space(l->text[n + 3]));
}

/* Answer queued lines while nothing is awaited. */
static void
proto_run(struct proto *p)
{
	struct pline	*l;

	if (p->running)
		return;
	p->running = 1;
	/* Commands wait while the conversation loads; prompts need not. */
	while (!p->closed && p->op == OP_NONE &&
	    (l = TAILQ_FIRST(&p->queue)) != NULL &&
	    (p->ctxready || line_early(p, l))) {
		TAILQ_REMOVE(&p->queue, l, entry);
		p->queued -= l->len + 1;
		if (!l->toolong && is_quotes(l->text, l->len))
			p->qquotes--;
		proto_line(p, l);
		freezero(l, sizeof(*l) + l->len + 1);
	}
	p->running = 0;
	if (p->closed)
		return;
	/*
	 * A new model or mode at once; new counts between commands, or
	 * once a second while a long run goes on, and those may wait
	 * for the worker's next message to the parent.
	 */
	if (p->statedirty || (p->statelazy && (p->op == OP_NONE ||
	    p->ops->now(p->arg) - p->state_ms >= PROTO_STATE_EVERY))) {
		p->state_ms = p->ops->now(p->arg);
		p->ops->state(p->arg, p->model, p->messages, p->bytes_in,
		    p->bytes_out, p->mode, !p->statedirty);
		p->statedirty = p->statelazy = 0;
	}
	if (p->eof && p->op == OP_NONE && TAILQ_EMPTY(&p->queue)) {
		p->closed = 1;
		out_flush(p);
		p->ops->close(p->arg);
	}
}

/* The end of every entry point: run the queue, write what is due. */
static void
proto_done(struct proto *p)
{
	proto_run(p);
	out_flush(p);
}

/*
 * Entry points.
 */

/* The session keeps its own copy of the roles: a reload may free them. */
static int
roles_copy(struct proto *p, const struct role_list *l)
{
	const struct role_conf	*r;
	size_t			 n = 0;

	TAILQ_FOREACH(r, l, entry)
		n++;
	if (n == 0)
		return (0);
	if ((p->roles = calloc(n, sizeof(*p->roles))) == NULL)
		return (-1);
	TAILQ_FOREACH(r, l, entry)
		p->roles[p->nroles++] = *r;
	return (0);
}

/* A session for a client, nothing sent yet. */
struct proto *
proto_new(const struct proto_ops *ops, void *arg,
    const struct proto_session *s)
{
	struct proto	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (NULL);
	p->ops = ops;
	p->arg = arg;
	p->s = *s;
	if (p->s.line_max == 0 || p->s.line_max > PROTO_PROMPT_MAX)
		p->s.line_max = PROTO_PROMPT_MAX;
	/* Until a token names it (identity token), there is no identity. */
	strlcpy(p->shortid, p->s.identity[0] != '\0' ? p->s.identity : "-",
	    sizeof(p->shortid));
	strlcpy(p->model, p->s.model, sizeof(p->model));
	TAILQ_INIT(&p->queue);
	if ((p->part = ibuf_open(1024)) == NULL ||
	    (p->out = ibuf_open(4096)) == NULL) {
		proto_free(p);
		return (NULL);
	}
	reply_begin(&p->rw);
	p->mode = MODE_COMMAND;
	ctx_init(&p->ctx, p->s.memory_limit);
	p->ctxready = 1;
	if (s->roles != NULL && roles_copy(p, s->roles) == -1) {
		proto_free(p);
		return (NULL);
	}
	p->s.roles = NULL;
	return (p);
}

/* End a session, wiping what it held of the client. */
void
proto_free(struct proto *p)
{
	struct pline	*l;

	if (p == NULL)
		return;
	while ((l = TAILQ_FIRST(&p->queue)) != NULL) {
		TAILQ_REMOVE(&p->queue, l, entry);
		freezero(l, sizeof(*l) + l->len + 1);
	}
	ctx_free(&p->ctx);
	free(p->roles);
	free(p->system);
	free(p->newsystem);
	prompt_free(p);
	mlist_free(&p->menulist);
	mlist_free(&p->models);
	mlist_free(&p->bgfetch);
	mlist_free(&p->fetch);
	ibuf_free(p->part);
	ibuf_free(p->out);
	ibuf_free(p->mlbuf);
	if (p->impbuf != NULL)
		explicit_bzero(ibuf_data(p->impbuf), ibuf_left(p->impbuf));
	ibuf_free(p->impbuf);
	freezero(p, sizeof(*p));
}

/* Greet the client, then load its context and the model list. */
void
proto_start(struct proto *p)
{
	const char	*fmt;
	char		 line[NI_MAXHOST + 32];

	fmt = strchr(p->s.local, ':') != NULL ? "Connected to [%s]:%u" :
	    "Connected to %s:%u";
	out_line(p, "ID:%s", p->shortid);
	snprintf(line, sizeof(line), fmt, p->s.local, p->s.lport);
	out_line(p, "%s", line);
	out_status(p, "OK", "bridged/%s ready", BRIDGE_VERSION);
	if (p->s.identity[0] != '\0')
		(void)context_load(p, "");
	p->bgreq = proto_reqid(p);
	if (p->ops->models(p->arg, p->bgreq) == -1)
		p->bgreq = 0;
	p->statedirty = 1;
	proto_done(p);
}

/* Bytes from the client, split into lines. */
void
proto_input(struct proto *p, const char *data, size_t len)
{
	const char	*nl;
	size_t		 n, room;

	if (p->closed)
		return;
	p->bytes_in += len;
	while (len > 0 && !p->closed) {
		nl = memchr(data, '\n', len);
		n = nl != NULL ? (size_t)(nl - data) : len;
		if (!p->discard) {
			/* One more byte than the limit: a CR may follow. */
			room = p->s.line_max + 1 - ibuf_left(p->part);
			if (n > room) {
				p->discard = 1;
				explicit_bzero(ibuf_data(p->part),
				    ibuf_left(p->part));
				ibuf_reset(p->part);
			} else if (ibuf_add(p->part, data, n) == -1)
				fatal("%s", __func__);
		}
		if (nl != NULL) {
			line_end(p);
			n++;
		}
		data += n;
		len -= n;
	}
	proto_done(p);
}

/* The client sent all it will: a last line without LF still counts. */
void
proto_eof(struct proto *p)
{
	if (p->closed)
		return;
	if (ibuf_left(p->part) > 0 || p->discard)
		line_end(p);
	p->eof = 1;
	proto_done(p);
}

/* Say BYE (after what is written so far) and close. */
void
proto_bye(struct proto *p, const char *reason)
{
	if (p->closed)
		return;
	if (p->op == OP_PROMPT || p->op == OP_BACK) {
		if (p->pr.gen != 0)
			p->ops->cancel(p->arg, p->pr.gen);
		if (p->pr.sum != 0)
			p->ops->cancel(p->arg, p->pr.sum);
		p->pr.gen = p->pr.sum = 0;
	}
	if (reason != NULL && *reason != '\0')
		out_status(p, "BYE", "%s", reason);
	else
		out_status(p, "BYE", "%s", "");
	p->closed = 1;
	out_flush(p);
	p->ops->close(p->arg);
}

/* The parent's verdict on an AUTH token. */
void
proto_auth(struct proto *p, int verdict, const char *identity,
    const char *models)
{
	if (p->closed || p->op != OP_AUTH)
		return;
	op_done(p);
	if (verdict == AUTH_ACCEPTED) {
		strlcpy(p->s.identity, identity, sizeof(p->s.identity));
		strlcpy(p->shortid, identity, sizeof(p->shortid));
		strlcpy(p->allowed, models, sizeof(p->allowed));
		if (!limits_model_ok(p->allowed, p->model)) {
			strlcpy(p->model, p->allowed, sizeof(p->model));
			p->model[strcspn(p->model, ",")] = '\0';
			p->ctx.inlimit = 0;
			p->statedirty = 1;
		}
		models_received(p, &p->models);
		out_status(p, "OK", "authenticated ID:%s", p->shortid);
		proto_event(p, "auth accepted");
		(void)context_load(p, "");
	} else if (verdict == AUTH_BANNED) {
		proto_bye(p, "auth too many wrong tokens from this address");
		return;
	} else if (++p->authfails >= PROTO_AUTH_TRIES) {
		proto_bye(p, "auth too many wrong tokens");
		return;
	} else
		out_status(p, "ERR", "auth unknown token");
	proto_done(p);
}

/* Is a reply under way or a line waiting? (Not idle, then.) */
int
proto_busy(const struct proto *p)
{
	return (p->op != OP_NONE || !TAILQ_EMPTY(&p->queue));
}

/* Whether the session is over (BYE sent or EOF taken). */
int
proto_closed(const struct proto *p)
{
	return (p->closed);
}

/* Bytes of whole lines waiting: the worker stops reading past a limit. */
size_t
proto_queued(const struct proto *p)
{
	return (p->queued);
}

/* Bytes read from and written to the client so far. */
void
proto_counters(const struct proto *p, uint64_t *in, uint64_t *out)
{
	*in = p->bytes_in;
	*out = p->bytes_out;
}

/*
 * Answers of the provider.
 */

/* A model of the list the provider sends. */
void
proto_provider_model(struct proto *p, uint32_t id, const char *name,
    uint64_t inlimit, uint64_t outlimit)
{
	(void)outlimit;
	if (p->closed)
		return;
	if (id != 0 && id == p->bgreq)
		mlist_add(&p->bgfetch, name, inlimit);
	else if (p->op == OP_MODELS && id == p->req)
		mlist_add(&p->fetch, name, inlimit);
}

/* The note of a model list's end: which provider failed ("" none). */
void
proto_provider_models_note(struct proto *p, uint32_t id, const char *note)
{
	if (p->closed || p->op != OP_MODELS || id != p->req)
		return;
	strlcpy(p->mnote, note, sizeof(p->mnote));
}

/* The model that answered (a fallback, maybe), before DONE. */
void
proto_provider_answered(struct proto *p, uint32_t id, const char *model)
{
	if (p->closed || id == 0 || p->op != OP_PROMPT || id != p->pr.gen)
		return;
	strlcpy(p->pr.answered, model, sizeof(p->pr.answered));
}

/* The model list is complete: answer the command. */
void
proto_provider_models_end(struct proto *p, uint32_t id)
{
	if (p->closed)
		return;
	if (id != 0 && id == p->bgreq) {
		p->bgreq = 0;
		models_received(p, &p->bgfetch);
	} else if (p->op == OP_MODELS && id == p->req) {
		models_received(p, &p->fetch);
		models_end(p);
	}
	proto_done(p);
}

/* A piece of an answer or a summary as it streams. */
void
proto_provider_chunk(struct proto *p, uint32_t id, const char *data,
    size_t len)
{
	struct prompt	*pr = &p->pr;

	if (p->closed || id == 0)
		return;
	if (p->op == OP_PROMPT && id == pr->gen && pr->step == STEP_ANSWER) {
		out_body(p, data, len);
		if (!pr->toobig &&
		    ibuf_left(pr->answer) + len > PROTO_ANSWER_MAX)
			pr->toobig = 1;
		if (!pr->toobig && ibuf_add(pr->answer, data, len) == -1)
			fatal("%s", __func__);
	} else if ((p->op == OP_PROMPT || p->op == OP_BACK) &&
	    id == pr->sum) {
		if (ibuf_left(pr->answer) + len <= PROTO_SUMMARY_MAX &&
		    ibuf_add(pr->answer, data, len) == -1)
			fatal("%s", __func__);
	} else
		return;
	proto_done(p);
}

/* The memory manager's summary is in: store it, then go on. */
static void
summary_done(struct proto *p)
{
	struct prompt	*pr = &p->pr;
	struct ibuf	*b;
	const char	*text;
	size_t		 len = 0;

	pr->sum = 0;
	if ((text = summary_text(p, &len)) == NULL) {
		if (p->op == OP_BACK)
			back_end(p, "no summary", "the model gave none");
		else {
			prompt_trim(p);
			prompt_send(p);
		}
		return;
	}
	pr->sumstore = proto_reqid(p);
	b = req_open(p, pr->sumstore);
	if (ibuf_add_u64(b, p->ops->random(p->arg)) == -1 ||
	    ibuf_add_u64(b, p->conv) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_SUMMARY, b) == -1) {
		pr->sumstore = 0;
		if (p->op == OP_BACK) {
			back_end(p, "summary not stored",
			    "storage not available");
			return;
		}
	}
	proto_event(p, "summary bytes=%zu", len);
	if (p->op == OP_PROMPT) {
		/* The context restarts from the summary. */
		ctx_set_summary(&p->ctx, text, len);
		if (pr->sumstore == 0)
			prompt_send(p);
		else
			pr->step = STEP_SUMSTORE;
	} else
		p->ctx.dirty = 0;
}

/* The answer (or summary) is complete: store it. */
void
proto_provider_done(struct proto *p, uint32_t id, uint64_t tin,
    uint64_t tout, const char *finish)
{
	struct prompt	*pr = &p->pr;
	const char	*s;

	if (p->closed || id == 0)
		return;
	if (p->op == OP_PROMPT && id == pr->gen && pr->step == STEP_ANSWER) {
		pr->gen = 0;
		pr->tin = tin;
		pr->tout = tout;
		pr->finish[0] = '\0';
		if (strlen(finish) < sizeof(pr->finish) &&
		    strspn(finish, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") ==
		    strlen(finish))
			strlcpy(pr->finish, finish, sizeof(pr->finish));
		pr->step = STEP_STORE;
		if (pr->toobig) {
			pr->mstate = SS_FAILED;
			strlcpy(pr->serr, "the answer is too large to store",
			    sizeof(pr->serr));
		} else {
			pr->mstore = proto_reqid(p);
			pr->mstate = SS_PENDING;
			s = ibuf_left(pr->answer) > 0 ?
			    ibuf_data(pr->answer) : "";
			if (store_message(p, pr->mstore, ROLE_MODEL,
			    pr_model(p),
			    tout, s, ibuf_left(pr->answer)) == -1) {
				pr->mstate = SS_FAILED;
				pr->mstore = 0;
				strlcpy(pr->serr, "not available",
				    sizeof(pr->serr));
			}
		}
		prompt_check_end(p);
	} else if ((p->op == OP_PROMPT || p->op == OP_BACK) &&
	    id == pr->sum)
		summary_done(p);
	else
		return;
	proto_done(p);
}

/* The provider failed a request: its code and text. */
void
proto_provider_error(struct proto *p, uint32_t id, const char *code,
    const char *text)
{
	struct prompt	*pr = &p->pr;
	const char	*c;
	char		 why[PROTO_TEXT_MAX];

	if (p->closed || id == 0)
		return;
	if ((c = err_code(code)) == NULL)
		c = "upstream";
	text_copy(why, sizeof(why), text);
	if (id == p->bgreq) {
		p->bgreq = 0;
		mlist_free(&p->bgfetch);
		return;
	}
	if (p->op == OP_MODELS && id == p->req) {
		out_status(p, "ERR", "%s %s", c, why);
		op_done(p);
	} else if (p->op == OP_PROMPT && id == pr->gen) {
		pr->gen = 0;
		prompt_fail(p, c, why);
	} else if ((p->op == OP_PROMPT || p->op == OP_BACK) &&
	    id == pr->sum) {
		pr->sum = 0;
		proto_event(p, "summary error code=%s", c);
		if (p->op == OP_BACK)
			back_end(p, "no summary", why);
		else {
			prompt_trim(p);
			prompt_send(p);
		}
	} else
		return;
	proto_done(p);
}

/* The provider went away: what waited on it fails now. */
void
proto_provider_lost(struct proto *p)
{
	uint32_t	 ids[3];
	size_t		 i, n = 0;

	if (p->closed)
		return;
	if (p->bgreq != 0)
		ids[n++] = p->bgreq;
	if (p->op == OP_MODELS)
		ids[n++] = p->req;
	if (p->op == OP_PROMPT || p->op == OP_BACK) {
		if (p->pr.sum != 0)
			ids[n++] = p->pr.sum;
		else if (p->pr.gen != 0)
			ids[n++] = p->pr.gen;
	}
	for (i = 0; i < n; i++)
		proto_provider_error(p, ids[i], "upstream",
		    "provider restarting");
	proto_done(p);
}

/*
 * Answers of storage.
 */

/* Storage committed a message or a summary. */
void
proto_storage_stored(struct proto *p, uint32_t id, uint64_t rowid)
{
	struct prompt	*pr = &p->pr;

	(void)rowid;
	if (p->closed || id == 0)
		return;
	if (p->op == OP_PROMPT && (id == pr->ustore || id == pr->mstore)) {
		if (id == pr->ustore) {
			pr->ustore = 0;
			pr->ustate = SS_OK;
		} else {
			pr->mstore = 0;
			pr->mstate = SS_OK;
		}
		p->messages++;
		p->statelazy = 1;
		prompt_check_end(p);
	} else if (p->op == OP_PROMPT && id == pr->sumstore) {
		pr->sumstore = 0;
		prompt_send(p);
	} else if (p->op == OP_BACK && id == pr->sumstore)
		back_end(p, NULL, NULL);
	else if (p->op == OP_ROLE && id == p->req) {
		role_applied(p, p->newrole);
		out_status(p, "OK", "role %s", p->convrole);
		op_done(p);
	} else if (p->op == OP_SET && id == p->req) {
		free(p->system);
		p->system = NULL;
		if (p->newsystem[0] != '\0') {
			p->system = p->newsystem;
			p->newsystem = NULL;
			out_status(p, "OK", "system prompt set");
		} else
			out_status(p, "OK", "system prompt cleared");
		op_done(p);
	} else if (p->op == OP_SUBMIT && id == p->req) {
		out_status(p, "OK", "job %llu", (unsigned long long)rowid);
		proto_event(p, "job %llu", (unsigned long long)rowid);
		op_done(p);
	} else if (p->op == OP_KILL && id == p->req) {
		out_status(p, "OK", "job %llu cancelled",
		    (unsigned long long)p->job);
		op_done(p);
	} else
		return;
	proto_done(p);
}

/* A stored message or summary: context, history or export. */
void
proto_storage_item(struct proto *p, uint32_t id, uint64_t rowid,
    uint64_t when, uint32_t role, const char *text, size_t len)
{
	char	 t[32];

	if (p->closed || id == 0)
		return;
	if (id == p->ctxreq) {
		if (role == ROLE_SUMMARY) {
			/* Turns before a summary are in it. */
			ctx_set_summary(&p->ctx, text, len);
		} else if (role == ROLE_USER || role == ROLE_MODEL) {
			if (role == ROLE_USER)
				ctx_drop_unanswered(&p->ctx);
			ctx_append(&p->ctx, role, text, len);
		}
		return;
	}
	if (p->op == OP_EXPORT && id == p->req && role < ROLE_MAX) {
		export_out(p, export_item(&p->ex, rowid, when, role, text,
		    len));
		p->hcount++;
		proto_done(p);
		return;
	}
	if (p->op != OP_HISTORY || id != p->req)
		return;
	iso8601(when, t, sizeof(t));
	out_line(p, "--- %llu %s %s", (unsigned long long)rowid, t,
	    proto_role(role));
	out_body(p, text, len);
	if (len > 0 && text[len - 1] != '\n')
		out_body(p, "\n", 1);
	p->hcount++;
	proto_done(p);
}

/* The last of a listing from storage. */
void
proto_storage_end(struct proto *p, uint32_t id, uint64_t count)
{
	if (p->closed || id == 0)
		return;
	if (id == p->ctxreq) {
		p->ctxreq = 0;
		p->ctxready = 1;
		ctx_drop_unanswered(&p->ctx);
		proto_event(p, "context turns=%zu summary=%s", p->ctx.nturns,
		    p->ctx.summary != NULL ? "yes" : "no");
		if (p->op == OP_PROMPT && p->pr.step == STEP_CONTEXT)
			prompt_continue(p);
		else if (p->op == OP_RESUME && id == p->req) {
			conv_ok(p, p->conv, p->convname);
			op_done(p);
		}
	} else if (p->op == OP_CONVS && id == p->req) {
		out_status(p, "OK", "%u conversations", p->hcount);
		op_done(p);
	} else if (p->op == OP_SEARCH && id == p->req) {
		out_status(p, "OK", "%u matches", p->hcount);
		op_done(p);
	} else if (p->op == OP_EXPORT && id == p->req) {
		export_out(p, export_end(&p->ex));
		out_status(p, "OK", "%u items", p->hcount);
		op_done(p);
	} else if (p->op == OP_INFO && id == p->req) {
		info_reply(p, 1, count);
		op_done(p);
	} else if (p->op == OP_HISTORY && id == p->req) {
		out_status(p, "OK", "%u %s", p->hcount,
		    p->hkind == HISTORY_SUMMARIES ? "summaries" : "messages");
		op_done(p);
	} else if (p->op == OP_USAGE && id == p->req) {
		out_status(p, "OK", "usage of the last %u days", p->hcount);
		op_done(p);
	} else if (p->op == OP_JOBS && id == p->req) {
		out_status(p, "OK", "%u jobs", p->hcount);
		op_done(p);
	} else
		return;
	proto_done(p);
}

/* A line of a table storage made (USAGE). */
void
proto_storage_line(struct proto *p, uint32_t id, const char *line)
{
	if (p->closed || id == 0 || p->op != OP_USAGE || id != p->req)
		return;
	out_line(p, "%s", line);
	proto_done(p);
}

/* Storage failed a request. */
void
proto_storage_error(struct proto *p, uint32_t id, const char *text)
{
	struct prompt	*pr = &p->pr;
	char		 why[PROTO_TEXT_MAX];

	if (p->closed || id == 0)
		return;
	text_copy(why, sizeof(why), text);
	if (id == p->ctxreq) {
		/* Go on without the stored context rather than not at all. */
		p->ctxreq = 0;
		p->ctxready = 1;
		proto_event(p, "context error");
		if (p->op == OP_PROMPT && p->pr.step == STEP_CONTEXT)
			prompt_continue(p);
		else if (p->op == OP_RESUME && id == p->req) {
			out_status(p, "ERR", "storage %s", why);
			op_done(p);
		}
	} else if (p->op == OP_INFO && id == p->req) {
		info_reply(p, 0, 0);
		op_done(p);
	} else if ((p->op == OP_HISTORY || p->op == OP_NEW ||
	    p->op == OP_CONVS || p->op == OP_DELETE || p->op == OP_SET ||
	    p->op == OP_SEARCH || p->op == OP_EXPORT ||
	    p->op == OP_IMPORT || p->op == OP_ROLE ||
	    p->op == OP_USAGE) && id == p->req) {
		out_status(p, "ERR", "storage %s", why);
		op_done(p);
	} else if (p->op == OP_PROMPT &&
	    (id == pr->ustore || id == pr->mstore)) {
		if (id == pr->ustore) {
			pr->ustore = 0;
			pr->ustate = SS_FAILED;
		} else {
			pr->mstore = 0;
			pr->mstate = SS_FAILED;
		}
		strlcpy(pr->serr, why, sizeof(pr->serr));
		prompt_check_end(p);
	} else if (p->op == OP_PROMPT && id == pr->sumstore) {
		pr->sumstore = 0;
		proto_event(p, "summary store error");
		prompt_send(p);
	} else if (p->op == OP_BACK && id == pr->sumstore)
		back_end(p, "summary not stored", why);
	else if ((p->op == OP_SUBMIT || p->op == OP_JOBS ||
	    p->op == OP_RESULT || p->op == OP_KILL) && id == p->req) {
		job_error(p, why);
		op_done(p);
	} else
		return;
	proto_done(p);
}

/* A conversation storage sends: the one loaded, made, or listed. */
void
proto_storage_conv(struct proto *p, uint32_t id, const struct db_conv *c)
{
	char	 t[32];

	if (p->closed || id == 0)
		return;
	if (id == p->ctxreq)
		conv_adopt(p, c);
	else if (p->op == OP_NEW && id == p->req) {
		conv_adopt(p, c);
		conv_ok(p, p->conv, p->convname);
		op_done(p);
	} else if (p->op == OP_DELETE && id == p->req) {
		/* The current one was deleted: this one replaces it. */
		conv_adopt(p, c);
		out_status(p, "OK", "deleted %llu messages",
		    (unsigned long long)p->ndeleted);
		op_done(p);
	} else if (p->op == OP_IMPORT && id == p->req) {
		conv_ok(p, (uint64_t)c->id, c->name);
		proto_event(p, "import conversation %lld", (long long)c->id);
		op_done(p);
	} else if (p->op == OP_EXPORT && id == p->req) {
		export_out(p, export_begin(&p->ex, p->s.identity, c));
		p->hcount = 0;
	} else if (p->op == OP_CONVS && id == p->req) {
		iso8601((uint64_t)c->last_used, t, sizeof(t));
		out_line(p, "%c %llu %s %llu %s %s",
		    (uint64_t)c->id == p->conv ? '*' : '-',
		    (unsigned long long)c->id, t,
		    (unsigned long long)c->messages,
		    c->model[0] != '\0' ? c->model : "-",
		    c->name[0] != '\0' ? c->name : "-");
		p->hcount++;
	} else
		return;
	proto_done(p);
}

/* A match of SEARCH: its header, then its context on one line. */
void
proto_storage_match(struct proto *p, uint32_t id, const struct db_match *m)
{
	char	 t[32], *line;
	size_t	 i;

	if (p->closed || p->op != OP_SEARCH || id != p->req)
		return;
	iso8601((uint64_t)m->time, t, sizeof(t));
	out_line(p, "--- %lld %lld %s %s", (long long)m->conv,
	    (long long)m->id, t, proto_role(m->role));
	if ((line = strndup(m->text, m->len)) == NULL)
		fatal("%s", __func__);
	for (i = 0; line[i] != '\0'; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = ' ';
	out_line(p, "%s", line);
	free(line);
	p->hcount++;
	proto_done(p);
}

/* DELETE went through; deleting the current one starts a new one. */
void
proto_storage_deleted(struct proto *p, uint32_t id, uint64_t conv,
    uint64_t n)
{
	if (p->closed || id == 0 || p->op != OP_DELETE || id != p->req)
		return;
	p->ndeleted = n;
	proto_event(p, "conversation %llu deleted", (unsigned long long)conv);
	if (conv == p->conv) {
		ctx_clear(&p->ctx);
		p->conv = 0;
		if (conv_new(p, "") == 0) {
			proto_done(p);
			return;
		}
	}
	out_status(p, "OK", "deleted %llu messages", (unsigned long long)n);
	op_done(p);
	proto_done(p);
}

/* Storage refused what the client asked for: not there, or not so. */
void
proto_storage_refused(struct proto *p, uint32_t id, const char *code,
    const char *text)
{
	const char	*c;
	char		 why[PROTO_TEXT_MAX];

	if (p->closed || id == 0)
		return;
	if ((c = err_code(code)) == NULL)
		c = "storage";
	text_copy(why, sizeof(why), text);
	if (id == p->ctxreq) {
		p->ctxreq = 0;
		p->ctxready = 1;
	}
	if (p->op == OP_NONE || id != p->req)
		return;
	out_status(p, "ERR", "%s %s", c, why);
	op_done(p);
	proto_done(p);
}

/* A line of JOBS from storage. */
void
proto_storage_job_line(struct proto *p, uint32_t id, uint64_t job,
    uint32_t state, const char *model, uint64_t created, uint64_t tout,
    const char *head)
{
	job_answer_line(p, id, job, state, model, created, tout, head);
	proto_done(p);
}

/* Storage found the job RESULT asks for. */
void
proto_storage_job_head(struct proto *p, uint32_t id, uint64_t job,
    uint32_t state)
{
	job_answer_head(p, id, job, state);
}

/* Text of the job RESULT shows, stored or live. */
void
proto_storage_job_chunk(struct proto *p, uint32_t id, uint32_t kind,
    const char *text, size_t len)
{
	job_answer_chunk(p, id, kind, text, len);
	proto_done(p);
}

/* The end of the job RESULT shows. */
void
proto_storage_job_end(struct proto *p, uint32_t id, uint32_t state,
    const char *model, uint64_t tin, uint64_t tout, uint64_t ms,
    const char *finish, const char *code, const char *text)
{
	job_answer_end(p, id, state, model, tin, tout, ms, finish, code,
	    text);
	proto_done(p);
}
