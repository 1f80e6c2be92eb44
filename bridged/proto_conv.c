/*
 * proto_conv.c: the conversations of a BRIDGE/1 session: NEW,
 * CONVERSATIONS, RESUME, DELETE, HISTORY and SUMMARIES, SYSTEM, ROLES
 * and ROLE, SEARCH, and EXPORT and IMPORT with their bodies. Storage
 * owns every conversation; these commands ask it and proto.c routes
 * its answers back here through the command being answered (p->op).
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

static void	cmd_history(struct proto *, const char *, int);
static void	import_end(struct proto *);

/* HISTORY or SUMMARIES: the last N of the conversation. */
static void
cmd_history(struct proto *p, const char *arg, int kind)
{
	struct ibuf	*b;
	long long	 n;

	if ((n = arg_count(p, arg)) == -1)
		return;
	p->req = proto_reqid(p);
	p->hkind = kind;
	p->hcount = 0;
	b = req_open(p, p->req);
	if (ibuf_add_u64(b, p->conv) == -1 ||
	    ibuf_add_u32(b, (uint32_t)kind) == -1 ||
	    ibuf_add_u32(b, (uint32_t)n) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_HISTORY, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_HISTORY;
}

/* HISTORY [N]: the last messages of the conversation. */
void
cmd_messages(struct proto *p, const char *arg)
{
	cmd_history(p, arg, HISTORY_MESSAGES);
}

/* SUMMARIES [N]: the last summaries of the conversation. */
void
cmd_summaries(struct proto *p, const char *arg)
{
	cmd_history(p, arg, HISTORY_SUMMARIES);
}

/* `. OK conversation <id> <name or ->', the answer of NEW and RESUME. */
void
conv_ok(struct proto *p, uint64_t id, const char *name)
{
	out_status(p, "OK", "conversation %llu %s", (unsigned long long)id,
	    name[0] != '\0' ? name : "-");
}

/* Ask storage for a new conversation (name "" for none). */
int
conv_new(struct proto *p, const char *name)
{
	struct ibuf	*b;

	p->req = proto_reqid(p);
	b = req_open(p, p->req);
	if (ibuf_add_str(b, name) == -1 || ibuf_add_str(b, p->model) == -1 ||
	    ibuf_add_str(b, "") == -1 || ibuf_add_str(b, "") == -1)
		fatal("%s", __func__);
	return (storage_send(p, IMSG_WORKER_CONV_NEW, b));
}

/* NEW [name]: a new, empty conversation becomes the current one. */
void
cmd_new(struct proto *p, const char *arg)
{
	if (arg != NULL && !conv_name_valid(arg)) {
		out_status(p, "ERR", "bad-argument a name is 1 to %d of"
		    " A-Z a-z 0-9 . _ -", CONV_NAME_MAX);
		return;
	}
	if (conv_new(p, arg != NULL ? arg : "") == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_NEW;
}

/* CONVERSATIONS [N]: the identity's last N, most recently used first. */
void
cmd_convs(struct proto *p, const char *arg)
{
	list_request(p, arg, IMSG_WORKER_CONV_LIST, OP_CONVS);
}

/* RESUME <id or name>: that conversation and its context. */
void
cmd_resume(struct proto *p, const char *arg)
{
	if (!conv_name_valid(arg)) {
		out_status(p, "ERR", "not-found no such conversation");
		return;
	}
	if (context_load(p, arg) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->req = p->ctxreq;
	p->op = OP_RESUME;
}

/* DELETE <id or name>: the current one is replaced by a new one. */
void
cmd_delete(struct proto *p, const char *arg)
{
	struct ibuf	*b;

	if (!conv_name_valid(arg)) {
		out_status(p, "ERR", "not-found no such conversation");
		return;
	}
	p->req = proto_reqid(p);
	p->ndeleted = 0;
	b = req_open(p, p->req);
	if (ibuf_add_str(b, arg) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_CONV_DELETE, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_DELETE;
}

/* SEARCH <words>: this identity's messages that have them all. */
void
cmd_search(struct proto *p, const char *arg)
{
	struct ibuf	*b;
	char		*words;
	size_t		 len = strlen(arg);

	while (len > 0 && is_space(arg[len - 1]))
		len--;
	if (len > DB_SEARCH_MAX) {
		out_status(p, "ERR", "bad-argument search words are at most"
		    " %d bytes", DB_SEARCH_MAX);
		return;
	}
	p->req = proto_reqid(p);
	p->hcount = 0;
	b = req_open(p, p->req);
	if ((words = strndup(arg, len)) == NULL ||
	    ibuf_add_str(b, words) == -1)
		fatal("%s", __func__);
	free(words);
	if (storage_send(p, IMSG_WORKER_SEARCH, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_SEARCH;
}

/* EXPORT [json|markdown] [conversation]: the current one by default. */
void
cmd_export(struct proto *p, const char *arg)
{
	struct ibuf	*b;
	char		 ref[32];
	const char	*w = arg != NULL ? arg : "";
	size_t		 wl;

	p->ex.markdown = 0;
	wl = strcspn(w, " \t");
	if ((wl == 4 && strncasecmp(w, "json", 4) == 0) ||
	    (wl == 8 && strncasecmp(w, "markdown", 8) == 0)) {
		p->ex.markdown = wl == 8;
		for (w += wl; is_space(*w); w++)
			;
	}
	if (*w == '\0') {
		snprintf(ref, sizeof(ref), "%llu", (unsigned long long)p->conv);
		w = ref;
	} else if (!conv_name_valid(w)) {
		out_status(p, "ERR", "not-found no such conversation");
		return;
	}
	p->req = proto_reqid(p);
	b = req_open(p, p->req);
	if (ibuf_add_str(b, w) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_EXPORT, b) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_EXPORT;
}

/* Storage set what ROLE asked: the session follows. */
void
role_applied(struct proto *p, const struct role_conf *r)
{
	const struct pmodel	*m;

	strlcpy(p->convrole, r->name, sizeof(p->convrole));
	free(p->system);
	p->system = NULL;
	if (r->system[0] != '\0' && (p->system = strdup(r->system)) == NULL)
		fatal("%s", __func__);
	if (r->model[0] != '\0' && strcmp(r->model, p->model) != 0) {
		strlcpy(p->model, r->model, sizeof(p->model));
		p->ctx.inlimit = 0;
		if ((m = mlist_find(&p->models, p->model)) != NULL)
			p->ctx.inlimit = m->inlimit;
	}
	p->statedirty = 1;
	proto_event(p, "role %s", r->name);
}

/* ROLES: the configured roles. */
void
cmd_roles(struct proto *p, const char *arg)
{
	const struct role_conf	*r;
	size_t			 i;

	(void)arg;
	for (i = 0; i < p->nroles; i++) {
		r = &p->roles[i];
		out_line(p, "%s %s%s%.*s", r->name,
		    r->model[0] != '\0' ? r->model : "-",
		    r->description[0] != '\0' ? " " : "",
		    (int)strcspn(r->description, "\n"), r->description);
	}
	out_status(p, "OK", "%zu roles", p->nroles);
}

/* ROLE <name>: its system prompt, model and settings, for this one. */
void
cmd_role(struct proto *p, const char *arg)
{
	const struct role_conf	*r;
	int			 mask = CONV_SYSTEM | CONV_ROLE;

	if ((r = role_find(p, arg)) == NULL) {
		out_status(p, "ERR", "bad-argument no role named %.64s, see"
		    " ROLES", arg);
		return;
	}
	if (r->model[0] != '\0')
		mask |= CONV_MODEL;
	if ((p->req = conv_set(p, mask, r->model, r->name, r->system)) == 0) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->newrole = r;
	p->op = OP_ROLE;
}

/* IMPORT: the export comes next, dot-stuffed, up to a line ".". */
void
cmd_import(struct proto *p, const char *arg)
{
	(void)arg;
	if (p->impbuf == NULL && (p->impbuf = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(p->impbuf);
	p->imp = 1;
	p->imperr = NULL;
	out_status(p, "MORE", "send the export, end with a line \".\"");
}

/* The export is in: checked whole, then stored as a new conversation. */
static void
import_end(struct proto *p)
{
	struct ibuf	*b;
	const char	*bad;
	char		 why[PROTO_TEXT_MAX];

	p->imp = 0;
	if (p->imperr != NULL) {
		out_status(p, "ERR", "bad-argument %s", p->imperr);
		goto done;
	}
	p->req = proto_reqid(p);
	b = req_open(p, p->req);
	if ((bad = import_build(ibuf_data(p->impbuf), ibuf_left(p->impbuf),
	    b, why, sizeof(why))) != NULL) {
		ibuf_free(b);
		text_copy(why, sizeof(why), bad);
		out_status(p, "ERR", "bad-argument %s", why);
		goto done;
	}
	if (storage_send(p, IMSG_WORKER_IMPORT, b) == -1)
		out_status(p, "ERR", "storage not available");
	else
		p->op = OP_IMPORT;
 done:
	explicit_bzero(ibuf_data(p->impbuf), ibuf_left(p->impbuf));
	ibuf_reset(p->impbuf);
}

/* One line of an export being imported; what is wrong is kept. */
void
import_line(struct proto *p, struct pline *l)
{
	const char	*s = l->text;
	size_t		 len = l->len;

	if (!l->toolong && len == 1 && s[0] == '.') {
		import_end(p);
		return;
	}
	if (p->imperr != NULL)
		return;
	if (l->toolong) {
		p->imperr = "a line of the export is too long";
		return;
	}
	if (len > 0 && s[0] == '.') {		/* dot-stuffed */
		s++;
		len--;
	}
	if (line_bad(s, len) != NULL) {
		p->imperr = "the export is not valid UTF-8";
		return;
	}
	if (ibuf_left(p->impbuf) + len + 1 > IMPORT_MAX) {
		p->imperr = "the export is larger than 8 MiB";
		return;
	}
	if (ibuf_add(p->impbuf, s, len) == -1 ||
	    ibuf_add(p->impbuf, "\n", 1) == -1)
		fatal("%s", __func__);
}

/* A line export.c made: into the body, NULL meaning no memory. */
void
export_out(struct proto *p, char *line)
{
	if (line == NULL)
		fatal("%s", __func__);
	out_body(p, line, strlen(line));
	out_body(p, "\n", 1);
	free(line);
}

/* SYSTEM [text or -]: show, set or clear the system prompt. */
void
cmd_system(struct proto *p, const char *arg)
{
	size_t	 len;

	if (arg == NULL) {
		if (p->system == NULL) {
			out_status(p, "OK", "no system prompt");
			return;
		}
		out_body(p, p->system, strlen(p->system));
		if (p->system[strlen(p->system) - 1] != '\n')
			out_body(p, "\n", 1);
		out_status(p, "OK", "system prompt");
		return;
	}
	len = strlen(arg);
	while (len > 0 && is_space(arg[len - 1]))
		len--;
	if (len >= CONV_SYSTEM_MAX) {
		out_status(p, "ERR", "bad-argument a system prompt is at most"
		    " %d bytes", CONV_SYSTEM_MAX - 1);
		return;
	}
	free(p->newsystem);
	if ((p->newsystem = strndup(arg, len)) == NULL)
		fatal("%s", __func__);
	if (strcmp(p->newsystem, "-") == 0)
		p->newsystem[0] = '\0';
	if ((p->req = conv_set(p, CONV_SYSTEM, "", "", p->newsystem)) == 0) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_SET;
}
