/*
 * db_pg_acct.c: issued tokens, usage and the event log in PostgreSQL:
 * pg_acct_ops. Counts go up by atomic upserts in the caller's
 * transaction, so that instances sharing the database count together:
 * two of them pass a limit by at most the prompts they have in flight.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

#define WINDOW_MS	60000		/* requests per minute */

#define TOKEN_COLUMNS \
	"id, label, created, expires, last_used, revoked, models," \
	" requests, tokens, jobs"

static const char sql_tok_add[] =
    "INSERT INTO tokens (hash, label, created, expires, models, requests,"
    " tokens, jobs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
static const char sql_tok_get[] =
    "SELECT " TOKEN_COLUMNS " FROM tokens WHERE hash = $1";
static const char sql_tok_used[] =
    "UPDATE tokens SET last_used = $2 WHERE id = $1";
static const char sql_tok_list[] =
    "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY id";
static const char sql_tok_revoke[] =
    "UPDATE tokens SET revoked = $2 WHERE id = $1 AND revoked IS NULL"
    " RETURNING hash";
static const char sql_tok_revoked[] =
    "SELECT hash FROM tokens WHERE revoked >= $1 ORDER BY revoked";
static const char sql_recent[] =
    "SELECT count(*), coalesce(min(time), 0) FROM (SELECT time FROM"
    " requests WHERE identity = $1 AND time > $2 ORDER BY time LIMIT $3)"
    " AS r";
static const char sql_today[] =
    "SELECT coalesce(sum(tokens_in + tokens_out), 0) FROM usage"
    " WHERE identity = $1 AND day = $2";
static const char sql_running[] =
    "SELECT count(*) FROM jobs WHERE client_id = $1 AND state = $2";
static const char sql_prune[] =
    "DELETE FROM requests WHERE identity = $1 AND time <= $2";
static const char sql_request[] =
    "INSERT INTO requests (identity, time) VALUES ($1, $2)";
static const char sql_prompt[] =
    "INSERT INTO usage AS u (identity, day, model, prompts)"
    " VALUES ($1, $2, $3, 1) ON CONFLICT (identity, day, model)"
    " DO UPDATE SET prompts = u.prompts + 1";
static const char sql_tokens[] =
    "INSERT INTO usage AS u (identity, day, model, tokens_in, tokens_out)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (identity, day, model)"
    " DO UPDATE SET tokens_in = u.tokens_in + excluded.tokens_in,"
    " tokens_out = u.tokens_out + excluded.tokens_out";
static const char sql_touch[] =
    "UPDATE identities SET last_seen = $2 WHERE identity = $1"
    " AND last_seen < $2";
static const char sql_usage_list[] =
    "SELECT identity, day, model, prompts, tokens_in, tokens_out FROM usage"
    " WHERE identity >= $1 AND identity < $2 AND day >= $3"
    " ORDER BY identity, day, model";
static const char sql_seen[] =
    "INSERT INTO identities (identity, how, first_seen, last_seen)"
    " VALUES ($1, $2, $3, $3) ON CONFLICT (identity) DO UPDATE SET"
    " how = excluded.how, last_seen = excluded.last_seen"
    " WHERE identities.how <> excluded.how"
    " OR identities.last_seen < excluded.last_seen";
static const char sql_identities[] =
    "SELECT i.identity, i.how, i.first_seen, i.last_seen,"
    " (SELECT count(*) FROM conversations c"
    " WHERE c.client_id = i.identity),"
    " (SELECT count(*) FROM messages m WHERE m.client_id = i.identity),"
    " (SELECT coalesce(sum(u.tokens_in + u.tokens_out), 0) FROM usage u"
    " WHERE u.identity = i.identity AND u.day = $1)"
    " FROM identities i ORDER BY i.last_seen DESC, i.identity";
static const char sql_ev_add[] =
    "INSERT INTO events (time, identity, text) VALUES ($1, $2, $3)"
    " RETURNING id";
static const char sql_ev_trim[] =
    "DELETE FROM events WHERE id <= $1::bigint - $2::bigint";
static const char sql_ev_all[] =
    "SELECT id, time, identity, text FROM events"
    " ORDER BY id DESC LIMIT $1";
static const char sql_ev_of[] =
    "SELECT id, time, identity, text FROM events"
    " WHERE identity >= $2 AND identity < $3 ORDER BY id DESC LIMIT $1";

/* A limit: NULL when the global one applies. */
static void
pa_limit(struct pq_args *a, uint64_t v)
{
	if (v == LIMIT_INHERIT || v > INT64_MAX)
		pa_null(a);
	else
		pa_int(a, (int64_t)v);
}

/* A limit field: LIMIT_INHERIT when NULL. */
static uint64_t
pq_limit(struct pg_result *r, int i, int col)
{
	if (pq_null(r, i, col))
		return (LIMIT_INHERIT);
	return ((uint64_t)pq_int(r, i, col));
}

/* A row of TOKEN_COLUMNS. */
static void
pt_row(struct pg_result *r, int i, struct token_info *t)
{
	memset(t, 0, sizeof(*t));
	t->id = pq_int(r, i, 0);
	(void)strlcpy(t->label, pq_text(r, i, 1), sizeof(t->label));
	t->created = pq_int(r, i, 2);
	t->expires = pq_int(r, i, 3);
	t->last_used = pq_int(r, i, 4);
	t->revoked = pq_int(r, i, 5);
	(void)strlcpy(t->models, pq_text(r, i, 6), sizeof(t->models));
	t->limits.requests = pq_limit(r, i, 7);
	t->limits.tokens = pq_limit(r, i, 8);
	t->limits.jobs = pq_limit(r, i, 9);
}

/* Store a new token's hash and settings; *id is its number. */
static int
pt_add(void *h, const char *hash, const struct token_info *t, int64_t now,
    int64_t *id)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ok;

	pa_init(&a);
	pa_text(&a, hash);
	pa_text(&a, t->label);
	pa_int(&a, now);
	if (t->expires > 0)
		pa_int(&a, t->expires);
	else
		pa_null(&a);
	pa_text(&a, t->models);
	pa_limit(&a, t->limits.requests);
	pa_limit(&a, t->limits.tokens);
	pa_limit(&a, t->limits.jobs);
	if ((r = pq_query(h, sql_tok_add, &a)) == NULL)
		return (-1);
	if ((ok = pq_rows(r) == 1))
		*id = pq_int(r, 0, 0);
	pq_clear(r);
	return (ok ? 0 : -1);
}

/* The token with this hash, whatever its state: 1, 0 if none, -1. */
static int
pt_get(void *h, const char *hash, struct token_info *t)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ret;

	pa_init(&a);
	pa_text(&a, hash);
	if ((r = pq_query(h, sql_tok_get, &a)) == NULL)
		return (-1);
	if ((ret = pq_rows(r) == 1))
		pt_row(r, 0, t);
	pq_clear(r);
	return (ret);
}

/* A token was used now. */
static int
pt_used(void *h, int64_t id, int64_t now)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, now);
	return (pq_cmd(h, sql_tok_used, &a) == -1 ? -1 : 0);
}

/* Every token, oldest first. */
static int
pt_list(void *h, int (*cb)(const struct token_info *, void *), void *arg)
{
	struct pg_result	*r;
	struct token_info	 t;
	int			 i, ret = 0;

	if ((r = pq_query(h, sql_tok_list, NULL)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++) {
		pt_row(r, i, &t);
		ret = cb(&t, arg) == -1 ? -1 : 0;
	}
	pq_clear(r);
	return (ret);
}

/* Revoke a live token: 1 and its hash, 0 if there is none, -1. */
static int
pt_revoke(void *h, int64_t id, int64_t now, char hash[IDENTITY_LEN + 1])
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ret = 0;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, now);
	if ((r = pq_query(h, sql_tok_revoke, &a)) == NULL)
		return (-1);
	if (pq_rows(r) == 1 && pq_len(r, 0, 0) == IDENTITY_LEN) {
		(void)strlcpy(hash, pq_text(r, 0, 0), IDENTITY_LEN + 1);
		ret = 1;
	}
	pq_clear(r);
	return (ret);
}

/* The hashes of the tokens revoked at or after a time. */
static int
pt_revoked_since(void *h, int64_t since, int (*cb)(const char *, void *),
    void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, since);
	if ((r = pq_query(h, sql_tok_revoked, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++)
		ret = cb(pq_text(r, i, 0), arg) == -1 ? -1 : 0;
	pq_clear(r);
	return (ret);
}

/* Two integers of a one-row query with parameters (text, x). */
static int
pu_two(struct pgdb *db, const char *sql, const char *s, int64_t bi,
    const char *bs, int64_t *r1, int64_t *r2)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ok;

	pa_init(&a);
	pa_text(&a, s);
	if (bs != NULL)
		pa_text(&a, bs);
	else
		pa_int(&a, bi);
	if ((r = pq_query(db, sql, &a)) == NULL)
		return (-1);
	if ((ok = pq_rows(r) == 1)) {
		*r1 = pq_int(r, 0, 0);
		if (r2 != NULL)
			*r2 = pq_int(r, 0, 1);
	}
	pq_clear(r);
	return (ok ? 0 : -1);
}

/* The oldest `upto' requests of the last minute: how many, the first. */
static int
pu_recent(struct pgdb *db, const char *identity, int64_t since,
    uint64_t upto, int64_t *n, int64_t *oldest)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ok;

	*n = *oldest = 0;
	if (upto == 0)
		return (0);
	pa_init(&a);
	pa_text(&a, identity);
	pa_int(&a, since);
	pa_int(&a, (int64_t)upto);
	if ((r = pq_query(db, sql_recent, &a)) == NULL)
		return (-1);
	if ((ok = pq_rows(r) == 1)) {
		*n = pq_int(r, 0, 0);
		*oldest = pq_int(r, 0, 1);
	}
	pq_clear(r);
	return (ok ? 0 : -1);
}

/* Requests of the last minute (up to `upto'), tokens today, jobs running. */
static int
pu_now(void *h, const char *identity, int64_t now_ms, uint64_t upto,
    struct limit_use *u)
{
	char	 day[LIMITS_DAY_LEN];
	int64_t	 n, oldest, tokens;

	limits_day(now_ms / 1000, day);
	if (pu_recent(h, identity, now_ms - WINDOW_MS, upto, &n,
	    &oldest) == -1 ||
	    pu_two(h, sql_today, identity, 0, day, &tokens, NULL) == -1)
		return (-1);
	u->requests = (uint64_t)n;
	u->oldest_ms = oldest;
	u->tokens = (uint64_t)tokens;
	if (pu_two(h, sql_running, identity, JOB_RUNNING, NULL, &n,
	    NULL) == -1)
		return (-1);
	u->jobs = (uint64_t)n;
	return (0);
}

/* One of the minute's requests; older ones go. */
static int
pu_minute(struct pgdb *db, const char *identity, int64_t now_ms)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, identity);
	pa_int(&a, now_ms - WINDOW_MS);
	if (pq_cmd(db, sql_prune, &a) == -1)
		return (-1);
	pa_init(&a);
	pa_text(&a, identity);
	pa_int(&a, now_ms);
	return (pq_cmd(db, sql_request, &a) == -1 ? -1 : 0);
}

/*
 * An admitted request: a prompt today, and one of the minute's
 * requests while a limit counts them.
 */
static int
pu_request(void *h, const char *identity, const char *model, int64_t now_ms,
    int minute)
{
	struct pq_args	 a;
	char		 day[LIMITS_DAY_LEN];

	limits_day(now_ms / 1000, day);
	if (minute && pu_minute(h, identity, now_ms) == -1)
		return (-1);
	pa_init(&a);
	pa_text(&a, identity);
	pa_text(&a, day);
	pa_text(&a, model);
	if (pq_cmd(h, sql_prompt, &a) == -1)
		return (-1);
	pa_init(&a);
	pa_text(&a, identity);
	pa_int(&a, now_ms / 1000);
	return (pq_cmd(h, sql_touch, &a) == -1 ? -1 : 0);
}

/* Tokens an answer used, as the upstream counted them. */
static int
pu_tokens(void *h, const char *identity, const char *model, int64_t now,
    uint64_t in, uint64_t out)
{
	struct pq_args	 a;
	char		 day[LIMITS_DAY_LEN];

	limits_day(now, day);
	pa_init(&a);
	pa_text(&a, identity);
	pa_text(&a, day);
	pa_text(&a, model);
	pa_int(&a, (int64_t)in);
	pa_int(&a, (int64_t)out);
	return (pq_cmd(h, sql_tokens, &a) == -1 ? -1 : 0);
}

/* The bound above every identity that begins with prefix. */
static void
pu_above(const char *prefix, char hi[IDENTITY_LEN + 2])
{
	size_t	 len = strlen(prefix);

	memcpy(hi, prefix, len);
	hi[len] = 'g';		/* above every hex digit */
	hi[len + 1] = '\0';
}

/* Usage rows since a day, of the identities that begin with prefix. */
static int
pu_list(void *h, const char *prefix, const char *since,
    int (*cb)(const struct usage_row *, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct usage_row	 u;
	char			 hi[IDENTITY_LEN + 2];
	int			 i, ret = 0;

	pu_above(prefix, hi);
	pa_init(&a);
	pa_text(&a, prefix);
	pa_text(&a, hi);
	pa_text(&a, since);
	if ((r = pq_query(h, sql_usage_list, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++) {
		u.identity = pq_text(r, i, 0);
		u.day = pq_text(r, i, 1);
		u.model = pq_text(r, i, 2);
		u.prompts = pq_int(r, i, 3);
		u.tokens_in = pq_int(r, i, 4);
		u.tokens_out = pq_int(r, i, 5);
		ret = cb(&u, arg) == -1 ? -1 : 0;
	}
	pq_clear(r);
	return (ret);
}

/* An identity starts a session: seen now, authenticated by how. */
static int
pu_seen(void *h, const char *identity, const char *how, int64_t now)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, identity);
	pa_text(&a, how);
	pa_int(&a, now);
	return (pq_cmd(h, sql_seen, &a) == -1 ? -1 : 0);
}

/* Every identity seen, the most recent first, with today's tokens. */
static int
pu_identities(void *h, int64_t now,
    int (*cb)(const struct identity_row *, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct identity_row	 row;
	char			 day[LIMITS_DAY_LEN];
	int			 i, ret = 0;

	limits_day(now, day);
	pa_init(&a);
	pa_text(&a, day);
	if ((r = pq_query(h, sql_identities, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++) {
		row.identity = pq_text(r, i, 0);
		row.how = pq_text(r, i, 1);
		row.first_seen = pq_int(r, i, 2);
		row.last_seen = pq_int(r, i, 3);
		row.conversations = pq_int(r, i, 4);
		row.messages = pq_int(r, i, 5);
		row.tokens_today = pq_int(r, i, 6);
		ret = cb(&row, arg) == -1 ? -1 : 0;
	}
	pq_clear(r);
	return (ret);
}

/* Log one event; identity NULL or "" when it concerns none. */
static int
pe_add(void *h, int64_t when, const char *identity, const char *text,
    int keep)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int64_t			 id;

	pa_init(&a);
	pa_int(&a, when);
	pa_opt(&a, identity);
	pa_text(&a, text);
	if ((r = pq_query(h, sql_ev_add, &a)) == NULL)
		return (-1);
	id = pq_rows(r) == 1 ? pq_int(r, 0, 0) : 0;
	pq_clear(r);
	/* Ids only grow: the newest `keep' are the last ids. */
	if (keep < 1 || id <= keep)
		return (0);
	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, keep);
	return (pq_cmd(h, sql_ev_trim, &a) == -1 ? -1 : 0);
}

/* The last `count' events, oldest first, of the identities of prefix. */
static int
pe_list(void *h, const char *prefix, uint32_t count,
    int (*cb)(const struct event_row *, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct event_row	 e;
	char			 hi[IDENTITY_LEN + 2];
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, count);
	if (*prefix != '\0') {
		pu_above(prefix, hi);
		pa_text(&a, prefix);
		pa_text(&a, hi);
	}
	if ((r = pq_query(h, *prefix != '\0' ? sql_ev_of : sql_ev_all,
	    &a)) == NULL)
		return (-1);
	/* Newest first from the index; given oldest first. */
	for (i = pq_rows(r) - 1; i >= 0 && ret == 0; i--) {
		e.id = pq_int(r, i, 0);
		e.time = pq_int(r, i, 1);
		(void)strlcpy(e.identity, pq_text(r, i, 2),
		    sizeof(e.identity));
		e.text = (char *)(uintptr_t)pq_text(r, i, 3);
		ret = cb(&e, arg) == -1 ? -1 : 0;
	}
	pq_clear(r);
	return (ret);
}

const struct db_acct_ops pg_acct_ops = {
	.token_add = pt_add,
	.token_get = pt_get,
	.token_used = pt_used,
	.token_list = pt_list,
	.token_revoke = pt_revoke,
	.usage_now = pu_now,
	.usage_request = pu_request,
	.usage_tokens = pu_tokens,
	.usage_list = pu_list,
	.identity_seen = pu_seen,
	.identities = pu_identities,
	.event_add = pe_add,
	.events = pe_list,
	.revoked_since = pt_revoked_since,
};
