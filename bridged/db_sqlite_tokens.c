/*
 * db_sqlite_tokens.c: issued tokens in SQLite. Only a token's SHA-256
 * is stored, with its label, times, allowed models and own limits
 * (NULL: the global limit applies).
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

static const char sql_add[] =
    "INSERT INTO tokens (hash, label, created, expires, models, requests,"
    " tokens, jobs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char sql_get[] =
    "SELECT id, label, created, expires, last_used, revoked, models,"
    " requests, tokens, jobs FROM tokens WHERE hash = ?1";
static const char sql_used[] =
    "UPDATE tokens SET last_used = ?2 WHERE id = ?1";
static const char sql_list[] =
    "SELECT id, label, created, expires, last_used, revoked, models,"
    " requests, tokens, jobs FROM tokens ORDER BY id";
static const char sql_hash[] =
    "SELECT hash FROM tokens WHERE id = ?1 AND revoked IS NULL";
static const char sql_revoked[] =
    "SELECT hash FROM tokens WHERE revoked >= ?1 ORDER BY revoked";
static const char sql_revoke[] =
    "UPDATE tokens SET revoked = ?2 WHERE id = ?1 AND revoked IS NULL";

/* Bind a limit: NULL when the global one applies. */
static void
bind_limit(sqlite3_stmt *st, int col, uint64_t v)
{
	if (v == LIMIT_INHERIT || v > INT64_MAX)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_int64(st, col, (int64_t)v);
}

/* A limit column: LIMIT_INHERIT when NULL. */
static uint64_t
column_limit(sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return (LIMIT_INHERIT);
	return ((uint64_t)sqlite3_column_int64(st, col));
}

/* A row of sql_get or sql_list. */
static void
token_row(sqlite3_stmt *st, struct token_info *t)
{
	const char	*s;

	memset(t, 0, sizeof(*t));
	t->id = sqlite3_column_int64(st, 0);
	if ((s = (const char *)sqlite3_column_text(st, 1)) != NULL)
		(void)strlcpy(t->label, s, sizeof(t->label));
	t->created = sqlite3_column_int64(st, 2);
	t->expires = sqlite3_column_int64(st, 3);
	t->last_used = sqlite3_column_int64(st, 4);
	t->revoked = sqlite3_column_int64(st, 5);
	if ((s = (const char *)sqlite3_column_text(st, 6)) != NULL)
		(void)strlcpy(t->models, s, sizeof(t->models));
	t->limits.requests = column_limit(st, 7);
	t->limits.tokens = column_limit(st, 8);
	t->limits.jobs = column_limit(st, 9);
}

/* Store a new token's hash and settings; *id is its number. */
int
sq_token_add(void *h, const char *hash, const struct token_info *t,
    int64_t now, int64_t *id)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;

	if ((st = sq_stmt(db, sql_add)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->label, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (t->expires > 0)
		sqlite3_bind_int64(st, 4, t->expires);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_text(st, 5, t->models, -1, SQLITE_STATIC);
	bind_limit(st, 6, t->limits.requests);
	bind_limit(st, 7, t->limits.tokens);
	bind_limit(st, 8, t->limits.jobs);
	if (sq_run(db, st) == -1)
		return (-1);
	*id = sq_last_rowid(db);
	return (0);
}

/* The token with this hash, whatever its state: 1, 0 if none, -1. */
int
sq_token_get(void *h, const char *hash, struct token_info *t)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	int		 rc, ret;

	if ((st = sq_stmt(db, sql_get)) == NULL)
		return (-1);
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		token_row(st, t);
		ret = 1;
	} else if (rc == SQLITE_DONE)
		ret = 0;
	else {
		sq_fail(db, st);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/* A token was used now. */
int
sq_token_used(void *h, int64_t id, int64_t now)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;

	if ((st = sq_stmt(db, sql_used)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return (sq_run(db, st));
}

/* Every token, oldest first. */
int
sq_token_list(void *h, int (*cb)(const struct token_info *, void *),
    void *arg)
{
	struct sqdb	*db = h;
	struct token_info	 t;
	sqlite3_stmt		*st;
	int			 rc, ret = 0;

	if ((st = sq_stmt(db, sql_list)) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		token_row(st, &t);
		if (cb(&t, arg) == -1) {
			ret = -1;
			break;
		}
	}
	return (sq_rows_end(db, st, rc, ret));
}

/* Revoke a live token: 1 and its hash, 0 if there is none, -1. */
int
sq_token_revoke(void *h, int64_t id, int64_t now,
    char hash[IDENTITY_LEN + 1])
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	const char	*hh;
	int		 rc, ret = 0;

	if ((st = sq_stmt(db, sql_hash)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hh = (const char *)sqlite3_column_text(st, 0);
		if (hh != NULL && strlen(hh) == IDENTITY_LEN) {
			(void)strlcpy(hash, hh, IDENTITY_LEN + 1);
			ret = 1;
		}
	} else if (rc != SQLITE_DONE) {
		sq_fail(db, st);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (ret != 1)
		return (ret);
	if ((st = sq_stmt(db, sql_revoke)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return (sq_run(db, st) == -1 ? -1 : 1);
}

/* The hashes of the tokens revoked at or after a time. */
int
sq_revoked_since(void *h, int64_t since, int (*cb)(const char *, void *),
    void *arg)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	const char	*hh;
	int		 rc, ret = 0;

	if ((st = sq_stmt(db, sql_revoked)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hh = (const char *)sqlite3_column_text(st, 0);
		if (hh != NULL && cb(hh, arg) == -1) {
			ret = -1;
			break;
		}
	}
	return (sq_rows_end(db, st, rc, ret));
}
