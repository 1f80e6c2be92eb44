/*
 * db_sqlite_usage.c: what each identity uses, in SQLite: prompts and
 * tokens per identity, day (UTC) and model, the requests of the last
 * minute, the identities seen. The check of a limit counts here,
 * where the data is, in the caller's transaction. Its table,
 * sqlite_acct_ops, also holds the tokens' and the events' functions.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

#define WINDOW_MS	60000		/* requests per minute */

static const char sql_recent[] =
    "SELECT count(*), coalesce(min(time), 0) FROM (SELECT time FROM"
    " requests WHERE identity = ?1 AND time > ?2 ORDER BY time LIMIT ?3)";
static const char sql_today[] =
    "SELECT coalesce(sum(tokens_in + tokens_out), 0) FROM usage"
    " WHERE identity = ?1 AND day = ?2";
static const char sql_running[] =
    "SELECT count(*), 0 FROM jobs WHERE client_id = ?1 AND state = ?2";
static const char sql_request[] =
    "INSERT INTO requests (identity, time) VALUES (?1, ?2)";
static const char sql_prune[] =
    "DELETE FROM requests WHERE identity = ?1 AND time <= ?2";
static const char sql_prompt[] =
    "INSERT INTO usage (identity, day, model, prompts) VALUES (?1, ?2, ?3, 1)"
    " ON CONFLICT (identity, day, model) DO UPDATE SET"
    " prompts = prompts + 1";
static const char sql_tokens[] =
    "INSERT INTO usage (identity, day, model, tokens_in, tokens_out)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (identity, day, model)"
    " DO UPDATE SET tokens_in = tokens_in + excluded.tokens_in,"
    " tokens_out = tokens_out + excluded.tokens_out";
static const char sql_list[] =
    "SELECT identity, day, model, prompts, tokens_in, tokens_out FROM usage"
    " WHERE identity >= ?1 AND identity < ?2 AND day >= ?3"
    " ORDER BY identity, day, model";
static const char sql_seen[] =
    "INSERT INTO identities (identity, how, first_seen, last_seen)"
    " VALUES (?1, ?2, ?3, ?3) ON CONFLICT (identity) DO UPDATE SET"
    " how = excluded.how, last_seen = excluded.last_seen"
    " WHERE identities.how <> excluded.how"
    " OR identities.last_seen < excluded.last_seen";
static const char sql_touch[] =
    "UPDATE identities SET last_seen = ?2 WHERE identity = ?1"
    " AND last_seen < ?2";
static const char sql_identities[] =
    "SELECT i.identity, i.how, i.first_seen, i.last_seen,"
    " (SELECT count(*) FROM conversations c"
    " WHERE c.client_id = i.identity),"
    " (SELECT count(*) FROM messages m WHERE m.client_id = i.identity),"
    " (SELECT coalesce(sum(u.tokens_in + u.tokens_out), 0) FROM usage u"
    " WHERE u.identity = i.identity AND u.day = ?1)"
    " FROM identities i ORDER BY i.last_seen DESC, i.identity";

/* One integer pair from a one-row query with bound (text, x). */
static int
query_two(struct sqdb *db, const char *sql, const char *a, int64_t bi,
    const char *bs, int64_t *r1, int64_t *r2)
{
	sqlite3_stmt	*st;
	int		 rc;

	if ((st = sq_stmt(db, sql)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	if (bs != NULL)
		sqlite3_bind_text(st, 2, bs, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 2, bi);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*r1 = sqlite3_column_int64(st, 0);
		if (r2 != NULL)
			*r2 = sqlite3_column_int64(st, 1);
	} else
		sq_fail(db, st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}

/* The oldest `upto' requests of the last minute: how many, the first. */
static int
su_recent(struct sqdb *db, const char *identity, int64_t since,
    uint64_t upto, int64_t *n, int64_t *oldest)
{
	sqlite3_stmt	*st;
	int		 rc;

	*n = *oldest = 0;
	if (upto == 0)
		return (0);
	if ((st = sq_stmt(db, sql_recent)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, since);
	sqlite3_bind_int64(st, 3, (int64_t)upto);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		*oldest = sqlite3_column_int64(st, 1);
	} else
		sq_fail(db, st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}

/*
 * What an identity uses: requests of the last minute (up to `upto'),
 * tokens today, jobs running.
 */
static int
su_usage_now(void *h, const char *identity, int64_t now_ms, uint64_t upto,
    struct limit_use *u)
{
	struct sqdb	*db = h;
	char	 day[LIMITS_DAY_LEN];
	int64_t	 n, oldest, tokens;

	limits_day(now_ms / 1000, day);
	if (su_recent(db, identity, now_ms - WINDOW_MS, upto, &n,
	    &oldest) == -1 ||
	    query_two(db, sql_today, identity, 0, day, &tokens, NULL) == -1)
		return (-1);
	u->requests = (uint64_t)n;
	u->oldest_ms = oldest;
	u->tokens = (uint64_t)tokens;
	if (query_two(db, sql_running, identity, JOB_RUNNING, NULL, &n,
	    NULL) == -1)
		return (-1);
	u->jobs = (uint64_t)n;
	return (0);
}

/* Bind (identity, day, model) of a usage row. */
static void
bind_key(sqlite3_stmt *st, const char *identity, const char *day,
    const char *model)
{
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
}

/* One of the minute's requests; older ones go. */
static int
su_minute(struct sqdb *db, const char *identity, int64_t now_ms)
{
	sqlite3_stmt	*st;

	if ((st = sq_stmt(db, sql_prune)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms - WINDOW_MS);
	if (sq_run(db, st) == -1 || (st = sq_stmt(db, sql_request)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	return (sq_run(db, st));
}

/*
 * An admitted request: a prompt today, and one of the minute's
 * requests while a limit counts them.
 */
static int
su_usage_request(void *h, const char *identity, const char *model,
    int64_t now_ms, int minute)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	char		 day[LIMITS_DAY_LEN];

	limits_day(now_ms / 1000, day);
	if (minute && su_minute(db, identity, now_ms) == -1)
		return (-1);
	if ((st = sq_stmt(db, sql_prompt)) == NULL)
		return (-1);
	bind_key(st, identity, day, model);
	if (sq_run(db, st) == -1 || (st = sq_stmt(db, sql_touch)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms / 1000);
	return (sq_run(db, st));
}

/* Tokens an answer used, as the upstream counted them. */
static int
su_usage_tokens(void *h, const char *identity, const char *model,
    int64_t now, uint64_t in, uint64_t out)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	char		 day[LIMITS_DAY_LEN];

	limits_day(now, day);
	if ((st = sq_stmt(db, sql_tokens)) == NULL)
		return (-1);
	bind_key(st, identity, day, model);
	sqlite3_bind_int64(st, 4, (int64_t)in);
	sqlite3_bind_int64(st, 5, (int64_t)out);
	return (sq_run(db, st));
}

/*
 * Usage rows since a day (YYYY-MM-DD), of the identities that begin
 * with prefix ("" all), by identity, day and model.
 */
static int
su_usage_list(void *h, const char *prefix, const char *since,
    int (*cb)(const struct usage_row *, void *), void *arg)
{
	struct sqdb	*db = h;
	struct usage_row	 u;
	sqlite3_stmt		*st;
	char			 hi[IDENTITY_LEN + 2];
	size_t			 len = strlen(prefix);
	int			 rc, ret = 0;

	memcpy(hi, prefix, len);
	hi[len] = 'g';		/* above every hex digit */
	hi[len + 1] = '\0';
	if ((st = sq_stmt(db, sql_list)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, since, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		u.identity = (const char *)sqlite3_column_text(st, 0);
		u.day = (const char *)sqlite3_column_text(st, 1);
		u.model = (const char *)sqlite3_column_text(st, 2);
		if (u.identity == NULL || u.day == NULL || u.model == NULL)
			continue;
		u.prompts = sqlite3_column_int64(st, 3);
		u.tokens_in = sqlite3_column_int64(st, 4);
		u.tokens_out = sqlite3_column_int64(st, 5);
		if (cb(&u, arg) == -1) {
			ret = -1;
			break;
		}
	}
	return (sq_rows_end(db, st, rc, ret));
}

/* An identity starts a session: seen now, authenticated by how. */
static int
su_identity_seen(void *h, const char *identity, const char *how,
    int64_t now)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;

	if ((st = sq_stmt(db, sql_seen)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, identity, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, how, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	return (sq_run(db, st));
}

/* Every identity seen, the most recent first, with today's tokens. */
static int
su_identities(void *h, int64_t now,
    int (*cb)(const struct identity_row *, void *), void *arg)
{
	struct sqdb	*db = h;
	struct identity_row	 r;
	sqlite3_stmt		*st;
	char			 day[LIMITS_DAY_LEN];
	int			 rc, ret = 0;

	limits_day(now, day);
	if ((st = sq_stmt(db, sql_identities)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.identity = (const char *)sqlite3_column_text(st, 0);
		r.how = (const char *)sqlite3_column_text(st, 1);
		if (r.identity == NULL || r.how == NULL)
			continue;
		r.first_seen = sqlite3_column_int64(st, 2);
		r.last_seen = sqlite3_column_int64(st, 3);
		r.conversations = sqlite3_column_int64(st, 4);
		r.messages = sqlite3_column_int64(st, 5);
		r.tokens_today = sqlite3_column_int64(st, 6);
		if (cb(&r, arg) == -1) {
			ret = -1;
			break;
		}
	}
	return (sq_rows_end(db, st, rc, ret));
}

const struct db_acct_ops sqlite_acct_ops = {
	.token_add = sq_token_add,
	.token_get = sq_token_get,
	.token_used = sq_token_used,
	.token_list = sq_token_list,
	.token_revoke = sq_token_revoke,
	.usage_now = su_usage_now,
	.usage_request = su_usage_request,
	.usage_tokens = su_usage_tokens,
	.usage_list = su_usage_list,
	.identity_seen = su_identity_seen,
	.identities = su_identities,
	.event_add = sq_event_add,
	.events = sq_events,
	.revoked_since = sq_revoked_since,
};
