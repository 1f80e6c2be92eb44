/*
 * context.c: a session's memory. The in-memory context is the last
 * summary and the turns since, loaded from storage when the session
 * starts and kept within the memory limit and the model's input limit;
 * when it grows past them, the memory manager (the chat model asked for
 * a summary) condenses it. No I/O: like proto.c, whose session it
 * serves, it asks storage and the provider through the proto_ops.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

#define MEMORY_PROMPT \
	"You are the memory manager of a terminal chat service. Summarize" \
	" the conversation you are given so that the summary can replace" \
	" it as the assistant's memory in later sessions. Keep every fact," \
	" name, number, date, decision, preference and open question;" \
	" drop greetings, filler and repetition. Write compact plain text" \
	" in the language of the conversation, with no preamble."
#define MEMORY_EARLIER \
	"\n\nSummary of the conversation before these messages:\n"
#define MEMORY_ASK	"Write the summary of our conversation now."
#define CONTINUED	"(continued)"
#define NO_ANSWER	"(no answer)"

/* Ask storage for the identity's last summary and what came after. */
void
context_load(struct proto *p)
{
	p->ctxreq = proto_reqid(p);
	if (p->ops->context(p->arg, p->ctxreq) == -1) {
		p->ctxreq = 0;
		p->ctxready = 1;
	}
}

/*
 * The in-memory context: the last summary and the turns since.
 */

void
ctx_drop_first(struct proto *p)
{
	if (p->nturns == 0)
		return;
	p->ctxbytes -= p->turns[0].len;
	freezero(p->turns[0].text, p->turns[0].len + 1);
	memmove(p->turns, p->turns + 1, --p->nturns * sizeof(*p->turns));
}

static void
ctx_drop_last(struct proto *p)
{
	struct cturn	*t;

	if (p->nturns == 0)
		return;
	t = &p->turns[--p->nturns];
	p->ctxbytes -= t->len;
	freezero(t->text, t->len + 1);
	t->text = NULL;
}

/* A stored prompt that got no answer is not part of the conversation. */
void
ctx_drop_unanswered(struct proto *p)
{
	if (p->nturns > 0 && p->turns[p->nturns - 1].role == ROLE_USER)
		ctx_drop_last(p);
}

void
ctx_set_summary(struct proto *p, const char *text, size_t len)
{
	freezero(p->summary, p->summarylen + 1);
	p->summary = NULL;
	p->summarylen = 0;
	if (len == 0)
		return;
	if ((p->summary = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(p->summary, text, len);
	p->summary[len] = '\0';
	p->summarylen = len;
}

void
ctx_clear(struct proto *p)
{
	while (p->nturns > 0)
		ctx_drop_first(p);
	ctx_set_summary(p, NULL, 0);
	p->ctxbytes = 0;
	p->dirty = 0;
	/* What is still loading would bring the old context back. */
	if (!p->ctxready) {
		p->ctxreq = 0;
		p->ctxready = 1;
	}
}

void
ctx_append(struct proto *p, int role, const char *text, size_t len)
{
	struct cturn	*t;
	size_t		 n;

	if (p->nturns == p->maxturns) {
		n = p->maxturns == 0 ? 16 : p->maxturns * 2;
		if ((t = recallocarray(p->turns, p->maxturns, n,
		    sizeof(*t))) == NULL)
			fatal("%s", __func__);
		p->turns = t;
		p->maxturns = n;
	}
	t = &p->turns[p->nturns];
	if ((t->text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(t->text, text, len);
	t->text[len] = '\0';
	t->len = len;
	t->role = role;
	p->nturns++;
	p->ctxbytes += len;
	p->dirty = 1;
}

/* Would the context with add more bytes pass a limit? */
int
ctx_over(const struct proto *p, size_t add)
{
	uint64_t	 bytes;

	bytes = p->ctxbytes + p->summarylen + add;
	if (p->s.memory_limit > 0 && bytes > p->s.memory_limit)
		return (1);
	/* About four bytes a token. */
	if (p->inlimit > 0 && (bytes + 3) / 4 > p->inlimit)
		return (1);
	return (0);
}

/* Without a summary: forget the oldest turns until the prompt fits. */
void
ctx_trim(struct proto *p, size_t add)
{
	size_t	 n = 0;

	while (p->nturns > 0 && ctx_over(p, add)) {
		ctx_drop_first(p);
		n++;
		/* An answer goes with its question. */
		while (p->nturns > 0 && p->turns[0].role != ROLE_USER) {
			ctx_drop_first(p);
			n++;
		}
	}
	if (n > 0)
		proto_event(p, "context dropped=%zu turns", n);
}

/*
 * The turns of a request to the provider: the context, then last.
 * The first is always the user's and none is empty. Roles alternate,
 * as unanswered prompts are not kept; were two of one role to follow
 * each other, the worker would join them (see proto_turn).
 */
struct proto_turn *
turns_build(struct proto *p, const char *last, size_t lastlen, size_t *np)
{
	struct proto_turn	*v;
	size_t			 i, k = 0;

	if ((v = calloc(p->nturns + 2, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < p->nturns; i++) {
		if (k == 0 && p->turns[i].role != ROLE_USER) {
			v[k].role = ROLE_USER;
			v[k].text = CONTINUED;
			v[k++].len = strlen(CONTINUED);
		}
		v[k].role = p->turns[i].role;
		v[k].text = p->turns[i].text;
		v[k].len = p->turns[i].len;
		/* An upstream takes no empty turn: the answer was empty. */
		if (v[k].len == 0) {
			v[k].text = NO_ANSWER;
			v[k].len = strlen(NO_ANSWER);
		}
		k++;
	}
	v[k].role = ROLE_USER;
	v[k].text = last;
	v[k++].len = lastlen;
	*np = k;
	return (v);
}

/*
 * The memory manager.
 */

/* Ask the model for a summary of the context: 0, or -1 if not sent. */
int
summary_request(struct proto *p)
{
	struct proto_turn	*v;
	size_t			 n, len;
	char			*sys;
	int			 rv;

	len = strlen(MEMORY_PROMPT) + 1;
	if (p->summary != NULL)
		len += strlen(MEMORY_EARLIER) + p->summarylen;
	if ((sys = malloc(len)) == NULL)
		fatal("%s", __func__);
	strlcpy(sys, MEMORY_PROMPT, len);
	if (p->summary != NULL) {
		strlcat(sys, MEMORY_EARLIER, len);
		strlcat(sys, p->summary, len);
	}
	if (p->pr.answer == NULL && (p->pr.answer = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(p->pr.answer);
	p->pr.sum = proto_reqid(p);
	v = turns_build(p, MEMORY_ASK, strlen(MEMORY_ASK), &n);
	rv = p->ops->gen(p->arg, p->pr.sum, p->model, sys, v, n);
	free(v);
	freezero(sys, len);
	if (rv == -1)
		p->pr.sum = 0;
	return (rv);
}

/* The summary text, once DONE came: NULL if there is none. */
const char *
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
