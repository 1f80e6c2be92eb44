/*
 * proto_models.c: the models of a BRIDGE/1 session: LIST-MODELS, and
 * CHANGE-MODEL with a name or the numbered menu it answers with MORE,
 * over the lists the provider sends (mlist). The session keeps its
 * conversation when the model changes.
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

static int	pmodel_cmp(const void *, const void *);
static void	mlist_copy(struct mlist *, const struct mlist *);
static void	models_request(struct proto *, enum models_for, const char *);
static void	models_print(struct proto *, const struct mlist *);
static void	model_set(struct proto *, const struct pmodel *);

/* qsort(3) order of models: by name. */
static int
pmodel_cmp(const void *a, const void *b)
{
	const struct pmodel	*ma = a, *mb = b;

	return (strcmp(ma->name, mb->name));
}

/* Make dst a copy of src. */
static void
mlist_copy(struct mlist *dst, const struct mlist *src)
{
	mlist_free(dst);
	if (src->n == 0)
		return;
	if ((dst->v = calloc(src->n, sizeof(*dst->v))) == NULL)
		fatal("%s", __func__);
	memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
	dst->n = src->n;
}

/* A fresh list replaces the last one; the model's limit comes with it. */
void
models_received(struct proto *p, struct mlist *l)
{
	const struct pmodel	*m;
	size_t			 i, n;

	/* A token limited to some models sees only those. */
	for (i = n = 0; i < l->n; i++)
		if (limits_model_ok(p->allowed, l->v[i].name))
			l->v[n++] = l->v[i];
	l->n = n;
	if (l->n > 0)
		qsort(l->v, l->n, sizeof(*l->v), pmodel_cmp);
	mlist_free(&p->models);
	p->models = *l;
	l->v = NULL;
	l->n = 0;
	if ((m = mlist_find(&p->models, p->model)) != NULL)
		p->ctx.inlimit = m->inlimit;
}

/* Ask the provider for the model lists, for LIST or CHANGE. */
static void
models_request(struct proto *p, enum models_for mfor, const char *arg)
{
	p->req = proto_reqid(p);
	if (p->ops->models(p->arg, p->req) == -1) {
		out_status(p, "ERR", "upstream provider restarting");
		return;
	}
	p->op = OP_MODELS;
	p->mfor = mfor;
	strlcpy(p->marg, arg != NULL ? arg : "", sizeof(p->marg));
}

/* LIST-MODELS: the models of every provider. */
void
cmd_list(struct proto *p, const char *arg)
{
	(void)arg;
	models_request(p, MF_LIST, NULL);
}

/* CHANGE-MODEL: a model by name or number, or the menu. */
void
cmd_change(struct proto *p, const char *arg)
{
	if (arg == NULL)
		models_request(p, MF_MENU, NULL);
	else if (strlen(arg) >= PROTO_ARG_MAX)
		out_status(p, "ERR", "bad-argument no such model");
	else
		models_request(p, MF_CHANGE, arg);
}

/* The numbered list, the current model marked. */
static void
models_print(struct proto *p, const struct mlist *l)
{
	size_t	 i;
	int	 cur;

	for (i = 0; i < l->n; i++) {
		cur = strcmp(l->v[i].name, p->model) == 0;
		out_line(p, "%zu. %s%s", i + 1, l->v[i].name,
		    cur ? " (current)" : "");
	}
}

/*
 * Switch to a model: the conversation goes on with it (its context
 * kept) and remembers it.
 */
static void
model_set(struct proto *p, const struct pmodel *m)
{
	if (strcmp(p->model, m->name) != 0) {
		strlcpy(p->model, m->name, sizeof(p->model));
		p->ctx.inlimit = m->inlimit;
		proto_event(p, "model %s", p->model);
		if (p->conv != 0)
			(void)conv_set(p, CONV_MODEL, p->model, "", "");
	}
	p->statedirty = 1;
	out_status(p, "OK", "model %s", p->model);
}

/* Answer CHANGE-MODEL's choice: a number of the list, 0, or a name. */
void
model_choose(struct proto *p, const struct mlist *l, const char *arg)
{
	const struct pmodel	*m;
	const char		*errstr;
	char			 word[PROTO_ARG_MAX];
	size_t			 len;
	long long		 k;

	while (is_space(*arg))
		arg++;
	strlcpy(word, arg, sizeof(word));
	len = strlen(word);
	while (len > 0 && is_space(word[len - 1]))
		word[--len] = '\0';
	if (len == 0) {
		out_status(p, "ERR", "bad-argument choose a number or a name");
		return;
	}
	if (strspn(word, "0123456789") == len) {
		k = strtonum(word, 0, (long long)l->n, &errstr);
		if (errstr != NULL) {
			out_status(p, "ERR", "bad-argument no model number"
			    " %.16s, choose 0 to %zu", word, l->n);
			return;
		}
		if (k == 0) {
			out_status(p, "OK", "model %s",
			    p->model[0] != '\0' ? p->model : "none");
			return;
		}
		model_set(p, &l->v[k - 1]);
		return;
	}
	if ((m = mlist_find(l, word)) == NULL) {
		out_status(p, "ERR", "bad-argument no model named %.64s", word);
		return;
	}
	model_set(p, m);
}

/* The lists are in: answer LIST-MODELS or CHANGE-MODEL. */
void
models_end(struct proto *p)
{
	switch (p->mfor) {
	case MF_LIST:
		models_print(p, &p->models);
		/* With several providers, one that failed is named. */
		out_status(p, "OK", "%zu models, current %s%s%s", p->models.n,
		    p->model[0] != '\0' ? p->model : "none",
		    p->mnote[0] != '\0' ? "; " : "", p->mnote);
		break;
	case MF_MENU:
		models_print(p, &p->models);
		out_line(p, "0. cancel");
		out_status(p, "MORE", "choose a number");
		mlist_copy(&p->menulist, &p->models);
		p->menu = 1;
		break;
	case MF_CHANGE:
		model_choose(p, &p->models, p->marg);
		break;
	}
	op_done(p);
}
