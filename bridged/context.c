/*
 * context.c: a conversation's memory in a session. The context is the
 * conversation's last summary and the turns since, kept within the
 * memory limit and the model's input limit; past them the memory
 * manager (the chat model asked for a summary) condenses it. This
 * file owns the data and the texts of those requests; the session
 * (proto.c) holds a struct context and does the asking.
 */

#include <sys/types.h>

#include <stdarg.h>
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

/* An empty context with its memory limit (bytes, 0 for none). */
void
ctx_init(struct context *c, uint64_t memory_limit)
{
	memset(c, 0, sizeof(*c));
	c->memory_limit = memory_limit;
}

/* Forget everything and give the memory back. */
void
ctx_free(struct context *c)
{
	ctx_clear(c);
	free(c->turns);
	c->turns = NULL;
	c->maxturns = 0;
}

/* Forget the oldest turn. */
void
ctx_drop_first(struct context *c)
{
	if (c->nturns == 0)
		return;
	c->bytes -= c->turns[0].len;
	freezero(c->turns[0].text, c->turns[0].len + 1);
	memmove(c->turns, c->turns + 1, --c->nturns * sizeof(*c->turns));
}

/* Forget the newest turn. */
static void
ctx_drop_last(struct context *c)
{
	struct ctx_turn	*t;

	if (c->nturns == 0)
		return;
	t = &c->turns[--c->nturns];
	c->bytes -= t->len;
	freezero(t->text, t->len + 1);
	t->text = NULL;
}

/* A stored prompt that got no answer is not part of the conversation. */
void
ctx_drop_unanswered(struct context *c)
{
	if (c->nturns > 0 && c->turns[c->nturns - 1].role == ROLE_USER)
		ctx_drop_last(c);
}

/* A summary replaces the turns it covers and any summary before it. */
void
ctx_set_summary(struct context *c, const char *text, size_t len)
{
	while (c->nturns > 0)
		ctx_drop_first(c);
	freezero(c->summary, c->summarylen + 1);
	c->summary = NULL;
	c->summarylen = 0;
	c->dirty = 0;
	if (len == 0)
		return;
	if ((c->summary = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(c->summary, text, len);
	c->summary[len] = '\0';
	c->summarylen = len;
}

/* Empty the context: a new conversation, or another one loading. */
void
ctx_clear(struct context *c)
{
	ctx_set_summary(c, NULL, 0);
	c->bytes = 0;
}

/* A turn at the end. */
void
ctx_append(struct context *c, int role, const char *text, size_t len)
{
	struct ctx_turn	*t;
	size_t		 n;

	if (c->nturns == c->maxturns) {
		n = c->maxturns == 0 ? 16 : c->maxturns * 2;
		if ((t = recallocarray(c->turns, c->maxturns, n,
		    sizeof(*t))) == NULL)
			fatal("%s", __func__);
		c->turns = t;
		c->maxturns = n;
	}
	t = &c->turns[c->nturns];
	if ((t->text = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	memcpy(t->text, text, len);
	t->text[len] = '\0';
	t->len = len;
	t->role = role;
	c->nturns++;
	c->bytes += len;
	c->dirty = 1;
}

/* Whether turns came since the last summary (the memory manager's cue). */
int
ctx_dirty(const struct context *c)
{
	return (c->dirty && c->nturns > 0);
}

/* Would the context with add more bytes pass a limit? */
int
ctx_over(const struct context *c, size_t add)
{
	uint64_t	 bytes;

	bytes = c->bytes + c->summarylen + add;
	if (c->memory_limit > 0 && bytes > c->memory_limit)
		return (1);
	/* About four bytes a token. */
	if (c->inlimit > 0 && (bytes + 3) / 4 > c->inlimit)
		return (1);
	return (0);
}

/* Without a summary: forget the oldest turns until add fits; how many. */
size_t
ctx_trim(struct context *c, size_t add)
{
	size_t	 n = 0;

	while (c->nturns > 0 && ctx_over(c, add)) {
		ctx_drop_first(c);
		n++;
		/* An answer goes with its question. */
		while (c->nturns > 0 && c->turns[0].role != ROLE_USER) {
			ctx_drop_first(c);
			n++;
		}
	}
	return (n);
}

/*
 * The turns of a request to the provider: the context, then last.
 * The first is always the user's and none is empty. Roles alternate,
 * as unanswered prompts are not kept; were two of one role to follow
 * each other, the worker would join them (see proto_turn).
 */
struct proto_turn *
ctx_turns(const struct context *c, const char *last, size_t lastlen,
    size_t *np)
{
	struct proto_turn	*v;
	size_t			 i, k = 0;

	if ((v = calloc(c->nturns + 2, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < c->nturns; i++) {
		if (k == 0 && c->turns[i].role != ROLE_USER) {
			v[k].role = ROLE_USER;
			v[k].text = CONTINUED;
			v[k++].len = strlen(CONTINUED);
		}
		v[k].role = c->turns[i].role;
		v[k].text = c->turns[i].text;
		v[k].len = c->turns[i].len;
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

/* Join texts (a NULL ends the list) into a new string; *lenp its size. */
static char *
join(size_t *lenp, ...)
{
	va_list		 ap;
	const char	*t;
	size_t		 len = 1;
	char		*s;

	va_start(ap, lenp);
	while ((t = va_arg(ap, const char *)) != NULL)
		len += strlen(t);
	va_end(ap);
	if ((s = malloc(len)) == NULL)
		fatal("%s", __func__);
	*s = '\0';
	va_start(ap, lenp);
	while ((t = va_arg(ap, const char *)) != NULL)
		strlcat(s, t, len);
	va_end(ap);
	*lenp = len;
	return (s);
}

/*
 * The system instruction of a prompt: the conversation's system
 * prompt ("" for none), then the summary. Free it with freezero and
 * *lenp.
 */
char *
ctx_system(const struct context *c, const char *system, size_t *lenp)
{
	if (c->summary == NULL)
		return (join(lenp, system, (char *)NULL));
	return (join(lenp, system, *system != '\0' ? "\n\n" : "",
	    SUMMARY_INTRO, c->summary, (char *)NULL));
}

/*
 * The memory manager's request: its system instruction (with the
 * summary so far) and the question after the turns. Free the
 * instruction with freezero and *lenp.
 */
char *
ctx_memory(const struct context *c, size_t *lenp, const char **ask)
{
	*ask = MEMORY_ASK;
	if (c->summary == NULL)
		return (join(lenp, MEMORY_PROMPT, (char *)NULL));
	return (join(lenp, MEMORY_PROMPT, MEMORY_EARLIER, c->summary,
	    (char *)NULL));
}
