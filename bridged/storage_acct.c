/*
 * storage_acct.c: what storage counts and tells about identities:
 * admission of a request under its limits, usage, issued tokens, and
 * control's tables (tokens, usage, identities, events).
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/* A time for an operator's table: ISO 8601 UTC, or "never". */
static void
iso(int64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)strlcpy(buf, "never", len);
}

/* The time of day in ms: limits count across restarts and daemons. */
static int64_t
wall_ms(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return ((int64_t)time(NULL) * 1000);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* A model name as a worker or control sends it: printable, bounded. */
static int
model_valid(const char *model)
{
	size_t	 len = strlen(model);

	return (len > 0 && len < MODEL_MAX_LEN &&
	    strspn(model, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-/:@") == len);
}

/*
 * May this identity send one more request to model (and model_b, a
 * dialogue's other, "" none) now? 0: yes, and it is counted; 1: no,
 * with the reply's code and text; -1 on error.
 * The check and the count are one write of the round's transaction:
 * two sessions of one identity, or two daemons on one database, can
 * not both take the last request of a minute.
 */
int
admit(const char *identity, const char *model, const char *model_b,
    const char **code, char *text, size_t len)
{
	struct limits	 lim;
	struct limit_use use;
	const char	*which;
	char		 models[TOKEN_MODELS_MAX];
	uint64_t	 allowed, retry;
	int64_t		 now_ms = wall_ms();

	if (db_limits(stor.db, identity, &stor.conf->g.limits, &lim, models,
	    sizeof(models)) == -1 ||
	    db_usage_now(stor.db, identity, now_ms, lim.requests,
	    &use) == -1)
		return (-1);
	if (!limits_model_ok(models, model) || (*model_b != '\0' &&
	    !limits_model_ok(models, model_b))) {
		*code = "no-model";
		(void)snprintf(text, len, "model %s is not allowed for this"
		    " token", limits_model_ok(models, model) ? model_b : model);
		return (1);
	}
	if ((which = limits_check(&lim, &use, now_ms, &allowed,
	    &retry)) != NULL) {
		*code = "rate-limited";
		limits_text(text, len, which, allowed, retry);
		event_log(identity, "limit %s %llu reached", which,
		    (unsigned long long)allowed);
		return (1);
	}
	if (db_usage_request(stor.db, identity, model, now_ms,
	    lim.requests > 0) == -1) {
		group_fail_if_lost();
		return (-1);
	}
	return (0);
}

/* IMSG_STORAGE_ADMIT: u32 id, str code, str text. */
static void
answer_admit(struct wreq *r)
{
	struct ibuf	*b;

	if (r->w->gone)
		return;
	if ((b = channel_create(&r->w->ch, IMSG_STORAGE_ADMIT, 0,
	    strlen(r->text) + 64)) == NULL || ibuf_add_u32(b, r->id) == -1 ||
	    ibuf_add_str(b, r->code != NULL ? r->code : "") == -1 ||
	    ibuf_add_str(b, r->text) == -1)
		fatal("%s", __func__);
	channel_send(&r->w->ch, b);
}

/*
 * IMSG_WORKER_ADMIT: u32 id, str model; answered before the COMMIT if
 * it may be (req_answer_early), so that the prompt goes upstream while
 * storage commits.
 */
const char *
worker_admit(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*model;

	model = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (!model_valid(model))
		return ("model");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_admit;
	r->code = "";
	if (admit(w->identity, model, "", &r->code, r->text,
	    sizeof(r->text)) == -1)
		r->error = "database error";
	req_answer_early(r);
	return (NULL);
}

/* IMSG_WORKER_USAGE: u32 id, str model, u64 prompt, u64 answer tokens. */
const char *
worker_usage(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*model;
	uint64_t	 in, out;

	model = ir_str(&a->ir);
	in = ir_u64(&a->ir);
	out = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (!model_valid(model))
		return ("model");
	if (in > INT64_MAX / 4 || out > INT64_MAX / 4)
		return ("tokens");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	if (db_usage_tokens(stor.db, w->identity, model, (int64_t)time(NULL),
	    in, out) == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	return (NULL);
}

/* A usage row as the USAGE command shows it. */
static int
usage_own_row(const struct usage_row *u, void *arg)
{
	return (answer_line(arg, "%s %s %lld %lld %lld", u->day, u->model,
	    (long long)u->prompts, (long long)u->tokens_in,
	    (long long)u->tokens_out));
}

/* The first day of the last `days' days, YYYY-MM-DD. */
static void
since_day(uint32_t days, char day[LIMITS_DAY_LEN])
{
	if (days < 1)
		days = 1;
	limits_day((int64_t)time(NULL) - (int64_t)(days - 1) * 86400, day);
}

/* IMSG_WORKER_USAGE_GET: u32 id, u32 days; LINE..., END. */
const char *
worker_usage_get(struct ask *a)
{
	struct wchan	*w = a->w;
	struct line_arg	 la;
	struct limits	 lim;
	struct limit_use use;
	char		 since[LIMITS_DAY_LEN];
	uint32_t	 days;
	int		 rv;

	days = ir_u32(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (days < 1 || days > 3660)
		return ("days");
	since_day(days, since);
	la.w = w;
	la.id = a->id;
	la.n = 0;
	rv = db_usage_list(stor.db, w->identity, since, usage_own_row, &la);
	if (rv == 0)
		rv = db_limits(stor.db, w->identity, &stor.conf->g.limits, &lim,
		    NULL, 0);
	if (rv == 0)
		rv = db_usage_now(stor.db, w->identity, wall_ms(),
		    lim.requests, &use);
	if (rv == -1) {
		answer_error(w, a->id, "database error");
		return (NULL);
	}
	if (lim.requests > 0)
		answer_line(&la, "limit requests-per-minute %llu used %llu",
		    (unsigned long long)lim.requests,
		    (unsigned long long)use.requests);
	if (lim.tokens > 0)
		answer_line(&la, "limit tokens-per-day %llu used %llu",
		    (unsigned long long)lim.tokens,
		    (unsigned long long)use.tokens);
	if (lim.jobs > 0)
		answer_line(&la, "limit jobs %llu used %llu",
		    (unsigned long long)lim.jobs,
		    (unsigned long long)use.jobs);
	answer_u64(w, IMSG_STORAGE_END, a->id, la.n);
	return (NULL);
}

/* A token added was committed: END with its id. */
static void
answer_token_added(struct wreq *r)
{
	answer_u64(r->w, IMSG_STORAGE_END, r->id, (uint64_t)r->rowid);
}

/* A token revoked was committed: IDENTITY it served, then END. */
static void
answer_token_revoked(struct wreq *r)
{
	answer_identity(r->w, r->id, r->identity);
	answer_u64(r->w, IMSG_STORAGE_END, r->id, 1);
}

/*
 * IMSG_CTL_TOKEN_ADD: u32 id, str hash, str label, u64 expires,
 * str models, u64 requests, u64 tokens, u64 jobs; END with its id.
 */
const char *
control_token_add(struct ask *a)
{
	struct token_info	 t;
	struct wreq		*r;
	const char		*hash, *label, *models;
	uint64_t		 expires;

	memset(&t, 0, sizeof(t));
	hash = ir_str(&a->ir);
	label = ir_str(&a->ir);
	expires = ir_u64(&a->ir);
	models = ir_str(&a->ir);
	t.limits.requests = ir_u64(&a->ir);
	t.limits.tokens = ir_u64(&a->ir);
	t.limits.jobs = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (strlen(hash) != IDENTITY_LEN ||
	    strspn(hash, "0123456789abcdef") != IDENTITY_LEN)
		return ("hash");
	if (!limits_word_valid(label, sizeof(t.label), "") ||
	    !limits_word_valid(models, sizeof(t.models), ",/:") ||
	    expires > INT64_MAX)
		return ("token");
	(void)strlcpy(t.label, label, sizeof(t.label));
	(void)strlcpy(t.models, models, sizeof(t.models));
	t.expires = (int64_t)expires;
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_token_added;
	if (db_token_add(stor.db, hash, &t, (int64_t)time(NULL),
	    &r->rowid) == -1) {
		r->error = "database error (is that token stored already?)";
		group_fail_if_lost();
		return (NULL);
	}
	event_log(hash, "token add %lld label %s", (long long)r->rowid,
	    t.label[0] != '\0' ? t.label : "-");
	return (NULL);
}

/* IMSG_CTL_TOKEN_REVOKE: u32 id, u64 token id; IDENTITY, END. */
const char *
control_token_revoke(struct ask *a)
{
	struct wreq	*r;
	uint64_t	 tid;

	tid = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (tid > INT64_MAX)
		return ("token id");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_token_revoked;
	switch (db_token_revoke(stor.db, (int64_t)tid, (int64_t)time(NULL),
	    r->identity)) {
	case 1:
		event_log(r->identity, "token revoke %llu",
		    (unsigned long long)tid);
		break;
	case 0:
		r->error = "no live token with that id";
		break;
	default:
		r->error = "database error";
		group_fail_if_lost();
		break;
	}
	return (NULL);
}

/* A limit in token list: "-" where the global one applies. */
static void
limit_text(char *buf, size_t len, uint64_t v)
{
	if (v == LIMIT_INHERIT)
		(void)strlcpy(buf, "-", len);
	else
		(void)snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* One line of token list; never the token, which is not stored. */
static int
token_line(const struct token_info *t, void *arg)
{
	char	 c[32], e[32], u[32], rq[24], tk[24], jb[24];
	int64_t	 now = (int64_t)time(NULL);

	iso(t->created, c, sizeof(c));
	iso(t->expires, e, sizeof(e));
	iso(t->last_used, u, sizeof(u));
	limit_text(rq, sizeof(rq), t->limits.requests);
	limit_text(tk, sizeof(tk), t->limits.tokens);
	limit_text(jb, sizeof(jb), t->limits.jobs);
	return (answer_line(arg, "%lld %s %s %s %s %s %s %s %s %s",
	    (long long)t->id, t->label[0] != '\0' ? t->label : "-", c, e, u,
	    t->revoked != 0 ? "revoked" : t->expires != 0 &&
	    t->expires <= now ? "expired" : "live", rq, tk, jb,
	    t->models[0] != '\0' ? t->models : "*"));
}

/* One line of show usage. */
static int
usage_row(const struct usage_row *u, void *arg)
{
	return (answer_line(arg, "%.12s %s %s %lld %lld %lld", u->identity,
	    u->day, u->model, (long long)u->prompts, (long long)u->tokens_in,
	    (long long)u->tokens_out));
}

/* One line of show identities. */
static int
identity_row(const struct identity_row *r, void *arg)
{
	char	 f[32], l[32];

	iso(r->first_seen, f, sizeof(f));
	iso(r->last_seen, l, sizeof(l));
	return (answer_line(arg, "%.12s %s %s %s %lld %lld %lld",
	    r->identity, r->how, f, l, (long long)r->conversations,
	    (long long)r->messages, (long long)r->tokens_today));
}

/* One line of show events. */
static int
event_row(const struct event_row *e, void *arg)
{
	char	 t[32];

	iso(e->time, t, sizeof(t));
	return (answer_line(arg, "%s %.12s %s", t, e->identity[0] != '\0' ?
	    e->identity : "-", e->text));
}

/*
 * IMSG_CTL_TOKEN_LIST: u32 id. IMSG_CTL_USAGE: u32 id, str prefix,
 * u32 days. IMSG_CTL_IDENTITIES: u32 id. IMSG_CTL_EVENTS: u32 id,
 * str prefix, u32 count. Lines, then END with their number.
 */
const char *
control_table(struct ask *a)
{
	struct wchan	*w = a->w;
	struct line_arg	 la;
	const char	*prefix = "";
	char		 since[LIMITS_DAY_LEN];
	uint32_t	 n = 0;
	int		 rv;

	if (a->type == IMSG_CTL_USAGE || a->type == IMSG_CTL_EVENTS) {
		prefix = ir_str(&a->ir);
		n = ir_u32(&a->ir);
	}
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (strlen(prefix) > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != strlen(prefix))
		return ("identity");
	la.w = w;
	la.id = a->id;
	la.n = 0;
	switch (a->type) {
	case IMSG_CTL_TOKEN_LIST:
		rv = db_token_list(stor.db, token_line, &la);
		break;
	case IMSG_CTL_USAGE:
		if (n < 1 || n > 3660)
			return ("days");
		since_day(n, since);
		rv = db_usage_list(stor.db, prefix, since, usage_row, &la);
		break;
	case IMSG_CTL_IDENTITIES:
		rv = db_identities(stor.db, (int64_t)time(NULL), identity_row,
		    &la);
		break;
	default:
		if (n < 1 || n > 100000)
			return ("count");
		rv = db_events(stor.db, prefix, n, event_row, &la);
		break;
	}
	answer_end(w, a->id, rv, la.n);
	return (NULL);
}
