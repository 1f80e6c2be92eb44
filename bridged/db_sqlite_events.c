/*
 * db_sqlite_events.c: the event log in SQLite: connections, AUTH,
 * limits hit, kills, purges, reloads and token changes, with their
 * time and the identity they concern; only the newest `events keep'
 * stay.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

static const char sql_add[] =
    "INSERT INTO events (time, identity, text) VALUES (?1, ?2, ?3)";
static const char sql_trim[] =
    "DELETE FROM events WHERE id <= ?1 - ?2";
static const char sql_all[] =
    "SELECT id, time, identity, text FROM events"
    " ORDER BY id DESC LIMIT ?1";
static const char sql_of[] =
    "SELECT id, time, identity, text FROM events"
    " WHERE identity >= ?2 AND identity < ?3 ORDER BY id DESC LIMIT ?1";

/* Log one event; identity NULL or "" when it concerns none. */
int
sq_event_add(void *h, int64_t when, const char *identity,
    const char *text, int keep)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	int64_t		 id;

	if ((st = sq_stmt(db, sql_add)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, when);
	if (identity != NULL && *identity != '\0')
		sqlite3_bind_text(st, 2, identity, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
	if (sq_run(db, st) == -1)
		return (-1);
	id = sq_last_rowid(db);
	/* Ids only grow: the newest `keep' are the last ids. */
	if (keep < 1 || id <= keep)
		return (0);
	if ((st = sq_stmt(db, sql_trim)) == NULL)
		return (-1);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, keep);
	return (sq_run(db, st));
}

/*
 * The last `count' events, oldest first, of the identities that begin
 * with prefix ("" every event).
 */
int
sq_events(void *h, const char *prefix, uint32_t count,
    int (*cb)(const struct event_row *, void *), void *arg)
{
	struct sqdb	*db = h;
	struct event_row	*v;
	sqlite3_stmt		*st;
	const char		*s;
	char			 hi[IDENTITY_LEN + 2];
	size_t			 len = strlen(prefix), n = 0, i;
	int			 rc = SQLITE_DONE, ret = 0;

	if ((v = calloc(count, sizeof(*v))) == NULL)
		return (-1);
	if ((st = sq_stmt(db, len > 0 ? sql_of : sql_all)) == NULL) {
		free(v);
		return (-1);
	}
	sqlite3_bind_int64(st, 1, count);
	if (len > 0) {
		memcpy(hi, prefix, len);
		hi[len] = 'g';
		hi[len + 1] = '\0';
		sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
	}
	/* Newest first from the index; given oldest first. */
	while (n < count && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		v[n].id = sqlite3_column_int64(st, 0);
		v[n].time = sqlite3_column_int64(st, 1);
		s = (const char *)sqlite3_column_text(st, 2);
		(void)strlcpy(v[n].identity, s != NULL ? s : "",
		    sizeof(v[n].identity));
		s = (const char *)sqlite3_column_text(st, 3);
		if ((v[n].text = strdup(s != NULL ? s : "")) == NULL) {
			ret = -1;
			break;
		}
		n++;
	}
	if (ret == 0 && n < count && rc != SQLITE_DONE) {
		sq_fail(db, st);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (i = n; ret == 0 && i > 0; i--)
		if (cb(&v[i - 1], arg) == -1)
			ret = -1;
	for (i = 0; i < n; i++)
		free(v[i].text);
	free(v);
	return (ret);
}
