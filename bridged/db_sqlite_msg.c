/*
 * db_sqlite_msg.c: the SQLite backend's messages, summaries,
 * conversations, search (FTS5), export and purge: sqlite_msg_ops.
 * The schema is db_sqlite.c's; db.c checks what every backend shares.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

enum msg_stmt {
	ST_STORE,
	ST_STORE_DUP,
	ST_SUMMARY,
	ST_SUMMARY_TRIM,
	ST_MSG_SIZES,
	ST_MSG_ROWS,
	ST_SUM_SIZES,
	ST_SUM_ROWS,
	ST_SUM_LAST,
	ST_COUNT,
	ST_FIRST,
	ST_NEXT,
	ST_EXP_MSG,
	ST_EXP_SUM,
	ST_PURGE_MSG,
	ST_PURGE_SUM,
	ST_PURGE_CONV,
	ST_CONV_OWNED,
	ST_CONV_TOUCH,
	ST_CONV_LAST,
	ST_CONV_BY_ID,
	ST_CONV_BY_NAME,
	ST_CONV_NEW,
	ST_CONV_LIST,
	ST_CONV_SET,
	ST_CONV_DEL_MSG,
	ST_CONV_DEL_SUM,
	ST_CONV_DEL,
	ST_CONV_DEL_CHUNKS,
	ST_CONV_DEL_JOBS,
	ST_SEARCH,
	ST_UNINDEXED,
	ST_INDEX,
	ST_INDEXED,
	ST_INDEX_BEGIN,
	ST_INDEX_COMMIT,
	ST_INDEX_ROLLBACK,
	ST_MAX
};

/*
 * Messages above search_mark wait to be indexed for search together:
 * a batch costs the FTS index about what one message alone would.
 */
#define SEARCH_BATCH	128

/* The order of use: each use of a conversation comes after all others. */
#define USE_NEXT \
	"(SELECT coalesce(max(use_order), 0) + 1 FROM conversations)"

/* The columns of a conversation, as db_conv_row reads them. */
#define CONV_COLUMNS \
	"c.id, c.name, c.model, c.system, c.role, c.created_at," \
	" c.last_used, (SELECT count(*) FROM messages m" \
	" WHERE m.conversation_id = c.id)"


/* Every query storage runs, prepared once at open. */
static const char *const msg_sql[ST_MAX] = {
	[ST_STORE] =
	    "INSERT INTO messages (client_id, role, content, timestamp,"
	    " model, tokens, msgkey, conversation_id) VALUES (?1, ?2, ?3,"
	    " ?4, ?5, ?6, ?7, ?8) ON CONFLICT (conversation_id, msgkey)"
	    " DO NOTHING",
	[ST_STORE_DUP] =
	    "SELECT id FROM messages WHERE conversation_id = ?1"
	    " AND msgkey = ?2",
	[ST_SUMMARY] =
	    "INSERT INTO summaries (client_id, summary_text, created_at,"
	    " last_msg, msgkey, conversation_id) VALUES (?1, ?2, ?3,"
	    " (SELECT coalesce(max(id), 0) FROM messages"
	    " WHERE conversation_id = ?5), ?4, ?5)"
	    " ON CONFLICT (client_id, msgkey) DO NOTHING",
	[ST_SUMMARY_TRIM] =
	    "DELETE FROM summaries WHERE conversation_id = ?1 AND id <="
	    " (SELECT id FROM summaries WHERE conversation_id = ?1"
	    " ORDER BY id DESC LIMIT 1 OFFSET ?2)",
	[ST_MSG_SIZES] =
	    "SELECT id, length(CAST(content AS BLOB)) FROM messages"
	    " WHERE conversation_id = ?1 AND id > ?2"
	    " ORDER BY id DESC LIMIT ?3",
	[ST_MSG_ROWS] =
	    "SELECT id, timestamp, role, content FROM messages"
	    " WHERE conversation_id = ?1 AND id >= ?2"
	    " ORDER BY id ASC LIMIT ?3",
	[ST_SUM_SIZES] =
	    "SELECT id, length(CAST(summary_text AS BLOB)) FROM summaries"
	    " WHERE conversation_id = ?1 AND id > ?2"
	    " ORDER BY id DESC LIMIT ?3",
	[ST_SUM_ROWS] =
	    "SELECT id, created_at, 'summary', summary_text FROM summaries"
	    " WHERE conversation_id = ?1 AND id >= ?2"
	    " ORDER BY id ASC LIMIT ?3",
	[ST_SUM_LAST] =
	    "SELECT id, created_at, summary_text, last_msg FROM summaries"
	    " WHERE conversation_id = ?1 ORDER BY id DESC LIMIT 1",
	[ST_COUNT] =
	    "SELECT count(*) FROM messages WHERE client_id = ?1",
	[ST_FIRST] =
	    "SELECT min(c) FROM (SELECT min(client_id) AS c FROM messages"
	    " WHERE client_id >= ?1 AND client_id < ?2 UNION ALL"
	    " SELECT min(client_id) FROM summaries"
	    " WHERE client_id >= ?1 AND client_id < ?2)",
	[ST_NEXT] =
	    "SELECT min(c) FROM (SELECT min(client_id) AS c FROM messages"
	    " WHERE client_id > ?1 AND client_id < ?2 UNION ALL"
	    " SELECT min(client_id) FROM summaries"
	    " WHERE client_id > ?1 AND client_id < ?2)",
	[ST_EXP_MSG] =
	    "SELECT id, timestamp, role, content FROM messages"
	    " WHERE client_id = ?1 AND id > ?2"
	    " AND (?4 = 0 OR conversation_id = ?4) ORDER BY id ASC LIMIT ?3",
	[ST_EXP_SUM] =
	    "SELECT id, created_at, 'summary', summary_text FROM summaries"
	    " WHERE client_id = ?1 AND id > ?2"
	    " AND (?4 = 0 OR conversation_id = ?4) ORDER BY id ASC LIMIT ?3",
	[ST_PURGE_MSG] =
	    "DELETE FROM messages WHERE client_id = ?1",
	[ST_PURGE_SUM] =
	    "DELETE FROM summaries WHERE client_id = ?1",
	[ST_PURGE_CONV] =
	    "DELETE FROM conversations WHERE client_id = ?1",
	[ST_CONV_OWNED] =
	    "SELECT 1 FROM conversations WHERE id = ?1 AND client_id = ?2",
	[ST_CONV_TOUCH] =
	    "UPDATE conversations SET last_used = max(last_used, ?2),"
	    " use_order = " USE_NEXT " WHERE id = ?1 AND NOT"
	    " (last_used >= ?2 AND use_order = (SELECT max(o.use_order)"
	    " FROM conversations o"
	    " WHERE o.client_id = conversations.client_id))",
	[ST_CONV_LAST] =
	    "SELECT " CONV_COLUMNS " FROM conversations c"
	    " WHERE c.client_id = ?1 ORDER BY c.use_order DESC LIMIT 1",
	[ST_CONV_BY_ID] =
	    "SELECT " CONV_COLUMNS " FROM conversations c"
	    " WHERE c.client_id = ?1 AND c.id = ?2",
	[ST_CONV_BY_NAME] =
	    "SELECT " CONV_COLUMNS " FROM conversations c"
	    " WHERE c.client_id = ?1 AND c.name = ?2",
	[ST_CONV_NEW] =
	    "INSERT INTO conversations (client_id, name, model, system, role,"
	    " created_at, last_used, use_order) VALUES (?1, ?2, ?3, ?4, ?5,"
	    " ?6, ?6, " USE_NEXT ") ON CONFLICT (client_id, name) DO NOTHING",
	[ST_CONV_LIST] =
	    "SELECT " CONV_COLUMNS " FROM conversations c"
	    " WHERE c.client_id = ?1 ORDER BY c.use_order DESC LIMIT ?2",
	[ST_CONV_SET] =
	    "UPDATE conversations SET"
	    " model = CASE WHEN ?3 & 1 THEN ?4 ELSE model END,"
	    " system = CASE WHEN ?3 & 2 THEN ?5 ELSE system END,"
	    " role = CASE WHEN ?3 & 4 THEN ?6 ELSE role END,"
	    " last_used = max(last_used, ?7), use_order = " USE_NEXT
	    " WHERE id = ?1 AND client_id = ?2",
	[ST_CONV_DEL_MSG] =
	    "DELETE FROM messages WHERE conversation_id = ?1",
	[ST_CONV_DEL_SUM] =
	    "DELETE FROM summaries WHERE conversation_id = ?1",
	[ST_CONV_DEL] =
	    "DELETE FROM conversations WHERE id = ?1",
	/* Finished jobs go with it; queued and running ones run on. */
	[ST_CONV_DEL_CHUNKS] =
	    "DELETE FROM job_chunks WHERE job_id IN (SELECT id FROM jobs"
	    " WHERE conversation_id = ?1 AND state >= 2)",
	[ST_CONV_DEL_JOBS] =
	    "DELETE FROM jobs WHERE conversation_id = ?1 AND state >= 2",
	[ST_SEARCH] =
	    "SELECT m.conversation_id, m.id, m.timestamp, m.role,"
	    " snippet(messages_fts, 0, '', '', '...', 12)"
	    " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid"
	    " WHERE messages_fts MATCH ?1 AND m.client_id = ?2"
	    " ORDER BY m.id DESC LIMIT ?3",
	[ST_UNINDEXED] =
	    "SELECT (SELECT max(id) FROM messages) -"
	    " (SELECT upto FROM search_mark)",
	[ST_INDEX] =
	    "INSERT INTO messages_fts (rowid, content) SELECT id, content"
	    " FROM messages WHERE id > (SELECT upto FROM search_mark)"
	    " ORDER BY id",
	[ST_INDEXED] =
	    "UPDATE search_mark SET upto = (SELECT max(id) FROM messages)"
	    " WHERE upto < (SELECT max(id) FROM messages)",
	[ST_INDEX_BEGIN] =
	    "BEGIN IMMEDIATE",
	[ST_INDEX_COMMIT] =
	    "COMMIT",
	[ST_INDEX_ROLLBACK] =
	    "ROLLBACK",
};


/* Log SQLite's words about a failed statement of this file. */
static void
msg_err(struct sqdb *db, enum msg_stmt s)
{
	log_warnx("database %s: %s: %s", sq_path(db), msg_sql[s],
	    sqlite3_errmsg(sq_sqlite(db)));
}

/*
 * Prepare every statement of this file (once; later calls find them
 * in db_sqlite.c's cache): 0, or -1 logged.
 */
static int
msg_ready(struct sqdb *db)
{
	int	 i;

	for (i = 0; i < ST_MAX; i++)
		if (sq_stmt(db, msg_sql[i]) == NULL)
			return (-1);
	return (0);
}

/* A statement of this file; msg_ready made sure it is prepared. */
static sqlite3_stmt *
ms(struct sqdb *db, enum msg_stmt s)
{
	return (sq_stmt(db, msg_sql[s]));
}

/* Reset a statement for its next use. */
static void
msg_reset(struct sqdb *db, enum msg_stmt s)
{
	sqlite3_reset(ms(db, s));
	sqlite3_clear_bindings(ms(db, s));
}

/* Run a statement that returns no rows, then reset it. */
static int
msg_done(struct sqdb *db, enum msg_stmt s)
{
	int	 rc;

	rc = sqlite3_step(ms(db, s));
	if (rc != SQLITE_DONE)
		msg_err(db, s);
	msg_reset(db, s);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/*
 * Index for search the messages above the mark and raise it to the
 * last, in the open transaction.
 */
static int
sm_index(struct sqdb *db)
{
	if (msg_done(db, ST_INDEX) == -1 || msg_done(db, ST_INDEXED) == -1)
		return (-1);
	return (0);
}

/*
 * A message was stored: index the batch once it is whole (the ids
 * above the mark, some perhaps freed since: a batch may be smaller).
 */
static int
sm_index_batch(struct sqdb *db)
{
	sqlite3_stmt	*st = ms(db, ST_UNINDEXED);
	int64_t		 n = 0;
	int		 rc;

	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		msg_err(db, ST_UNINDEXED);
	msg_reset(db, ST_UNINDEXED);
	if (rc != SQLITE_ROW)
		return (-1);
	return (n >= SEARCH_BATCH ? sm_index(db) : 0);
}

/*
 * Before a search: index what waits, in a transaction of its own
 * unless the caller has one open.
 */
static int
sm_index_all(struct sqdb *db)
{
	if (!sqlite3_get_autocommit(sq_sqlite(db)))
		return (sm_index(db));
	if (msg_done(db, ST_INDEX_BEGIN) == -1)
		return (-1);
	if (sm_index(db) == -1 || msg_done(db, ST_INDEX_COMMIT) == -1) {
		if (!sqlite3_get_autocommit(sq_sqlite(db)))
			(void)msg_done(db, ST_INDEX_ROLLBACK);
		return (-1);
	}
	return (0);
}

/*
 * A conversation was used now: it goes first in the list (no write
 * when it is first already and was used this second).
 */
static int
sm_conv_touch(void *h, int64_t conv, int64_t now)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_int64(ms(db, ST_CONV_TOUCH), 1, conv);
	sqlite3_bind_int64(ms(db, ST_CONV_TOUCH), 2, now);
	return (msg_done(db, ST_CONV_TOUCH));
}

/*
 * Store a message unless its conversation holds its key already;
 * either way *rowid is the row's id and the return is 0 (new), 1
 * (duplicate) or -1.
 */
static int
sm_store(void *h, const char *client, int64_t conv, uint64_t key,
    enum msg_role role, const char *model, uint64_t tokens,
    const char *text, size_t len, int64_t now, int64_t *rowid)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st, *dup;
	int		 rc, ret;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_STORE);
	dup = ms(db, ST_STORE_DUP);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, db_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	if (model != NULL && *model != '\0')
		sqlite3_bind_text(st, 5, model, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 5);
	if (tokens > 0)
		sqlite3_bind_int64(st, 6, (int64_t)tokens);
	else
		sqlite3_bind_null(st, 6);
	sqlite3_bind_int64(st, 7, (int64_t)key);
	sqlite3_bind_int64(st, 8, conv);
	if (msg_done(db, ST_STORE) == -1)
		return (-1);
	if (sq_changes(db) == 1) {
		*rowid = sq_last_rowid(db);
		if (sm_index_batch(db) == -1)
			return (-1);
		return (sm_conv_touch(db, conv, now));
	}
	sqlite3_bind_int64(dup, 1, conv);
	sqlite3_bind_int64(dup, 2, (int64_t)key);
	if ((rc = sqlite3_step(dup)) == SQLITE_ROW) {
		*rowid = sqlite3_column_int64(dup, 0);
		ret = 1;
	} else {
		if (rc == SQLITE_DONE)
			log_warnx("%s: key neither new nor stored", __func__);
		else
			msg_err(db, ST_STORE_DUP);
		ret = -1;
	}
	msg_reset(db, ST_STORE_DUP);
	return (ret);
}

/* Store a summary and keep only the newest `keep' of the conversation. */
static int
sm_summary(void *h, const char *client, int64_t conv, uint64_t key,
    const char *text, size_t len, int64_t now, int keep, int64_t *rowid)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st, *trim;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_SUMMARY);
	trim = ms(db, ST_SUMMARY_TRIM);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, (int64_t)key);
	sqlite3_bind_int64(st, 5, conv);
	if (msg_done(db, ST_SUMMARY) == -1)
		return (-1);
	if (sq_changes(db) == 0) {
		/* The same summary again: it is stored already. */
		*rowid = 0;
		return (0);
	}
	*rowid = sq_last_rowid(db);
	sqlite3_bind_int64(trim, 1, conv);
	sqlite3_bind_int(trim, 2, keep);
	return (msg_done(db, ST_SUMMARY_TRIM));
}

/* A row (id, time, role, text) into an item: 0, or -1 to skip it. */
static int
sm_item(struct sqdb *db, sqlite3_stmt *st, struct db_item *item)
{
	memset(item, 0, sizeof(*item));
	item->id = sqlite3_column_int64(st, 0);
	item->time = sqlite3_column_int64(st, 1);
	if (db_role_parse((const char *)sqlite3_column_text(st, 2),
	    &item->role) == -1) {
		log_warnx("database %s: row %lld: unknown role", sq_path(db),
		    (long long)item->id);
		return (-1);
	}
	item->text = (const char *)sqlite3_column_text(st, 3);
	item->len = (size_t)sqlite3_column_bytes(st, 3);
	if (item->text == NULL)
		item->text = "";
	return (0);
}

/*
 * The newest rows after `after' that fit in maxitems and maxbytes:
 * the id of the first and how many, sizes read newest first. *cut is
 * DB_CUT_BYTES when older rows were left out for maxbytes,
 * DB_CUT_ITEMS when for maxitems.
 */
static int
sm_fit(struct sqdb *db, enum msg_stmt sizes, int64_t conv, int64_t after,
    uint32_t maxitems, size_t maxbytes, int64_t *first, uint32_t *n,
    int *cut)
{
	sqlite3_stmt	*st = ms(db, sizes);
	size_t		 bytes = 0, sz;
	int		 rc, ret = 0;

	*n = 0;
	*first = -1;
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_int64(st, 2, after);
	/* One more row than wanted tells whether any were left out. */
	sqlite3_bind_int64(st, 3, (int64_t)maxitems + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == maxitems) {
			*cut = DB_CUT_ITEMS;
			break;
		}
		sz = (size_t)sqlite3_column_int64(st, 1);
		if (sz > maxbytes - bytes) {
			*cut = DB_CUT_BYTES;
			break;
		}
		bytes += sz;
		*first = sqlite3_column_int64(st, 0);
		(*n)++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		msg_err(db, sizes);
		ret = -1;
	}
	msg_reset(db, sizes);
	return (ret);
}

/*
 * The newest rows after `after' that fit in maxitems and maxbytes,
 * given to cb oldest first. Two passes: sizes newest first to find
 * where to start, then the rows themselves, so nothing is held here.
 * *sent counts the rows given; *cut as sm_fit says.
 */
static int
sm_newest(struct sqdb *db, enum msg_stmt sizes, enum msg_stmt rows,
    int64_t conv, int64_t after, uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	sqlite3_stmt	*st;
	struct db_item	 item;
	int64_t		 first;
	uint32_t	 n;
	int		 rc, ret = 0;

	*sent = 0;
	*cut = 0;
	if (sm_fit(db, sizes, conv, after, maxitems, maxbytes, &first, &n,
	    cut) == -1)
		return (-1);
	if (n == 0)
		return (0);
	st = ms(db, rows);
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_int64(st, 2, first);
	sqlite3_bind_int64(st, 3, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sm_item(db, st, &item) == -1)
			continue;
		if (cb(&item, arg) == -1) {
			ret = -1;
			break;
		}
		(*sent)++;
	}
	return (sq_rows_end(db, ms(db, rows), rc, ret));
}

/* The last `count' messages or summaries of a conversation. */
static int
sm_history(void *h, int64_t conv, enum history_kind kind, uint32_t count,
    size_t maxbytes, int (*cb)(const struct db_item *, void *), void *arg,
    uint64_t *sent, int *cut)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	if (kind == HISTORY_SUMMARIES)
		return (sm_newest(db, ST_SUM_SIZES, ST_SUM_ROWS, conv, 0,
		    count, maxbytes, cb, arg, sent, cut));
	return (sm_newest(db, ST_MSG_SIZES, ST_MSG_ROWS, conv, 0, count,
	    maxbytes, cb, arg, sent, cut));
}

/*
 * A session's context: the last summary, then the messages it does
 * not cover, oldest first, within the bounds.
 */
static int
sm_context(void *h, int64_t conv, uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	struct db_item	 item;
	int64_t		 after = 0;
	int		 rc, ret = 0, have = 0, scut = 0;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_SUM_LAST);
	sqlite3_bind_int64(st, 1, conv);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&item, 0, sizeof(item));
		item.id = sqlite3_column_int64(st, 0);
		item.time = sqlite3_column_int64(st, 1);
		item.role = ROLE_SUMMARY;
		item.text = (const char *)sqlite3_column_text(st, 2);
		item.len = (size_t)sqlite3_column_bytes(st, 2);
		if (item.text == NULL)
			item.text = "";
		after = sqlite3_column_int64(st, 3);
		if (item.len > maxbytes)
			scut = DB_CUT_BYTES;	/* send what follows */
		else if (cb(&item, arg) == -1)
			ret = -1;
		else {
			have = 1;
			maxbytes -= item.len;
			maxitems--;
		}
	} else if (rc != SQLITE_DONE) {
		msg_err(db, ST_SUM_LAST);
		ret = -1;
	}
	msg_reset(db, ST_SUM_LAST);
	if (ret == -1)
		return (-1);
	if (sm_newest(db, ST_MSG_SIZES, ST_MSG_ROWS, conv, after,
	    maxitems, maxbytes, cb, arg, sent, cut) == -1)
		return (-1);
	*sent += have;
	if (*cut == 0)
		*cut = scut;
	return (0);
}

/* How many messages a client has stored. */
static int
sm_count(void *h, const char *client, uint64_t *count)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	int		 rc;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_COUNT);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*count = (uint64_t)sqlite3_column_int64(st, 0);
	else
		msg_err(db, ST_COUNT);
	msg_reset(db, ST_COUNT);
	return (rc == SQLITE_ROW ? 0 : -1);
}

/*
 * The smallest client id in [lo, hi) (next 0) or (lo, hi) (next 1):
 * 1 and out, 0 none, -1.
 */
static int
sm_client_min(void *h, int next, const char *lo, const char *hi, char *out,
    size_t outlen)
{
	struct sqdb	*db = h;
	enum msg_stmt	 s = next ? ST_NEXT : ST_FIRST;
	sqlite3_stmt	*st;
	const char	*c;
	int		 rc, ret = 0;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, s);
	sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((c = (const char *)sqlite3_column_text(st, 0)) != NULL) {
			if (strlcpy(out, c, outlen) >= outlen) {
				log_warnx("database %s: client id too long",
				    sq_path(db));
				ret = -1;
			} else
				ret = 1;
		}
	} else {
		msg_err(db, s);
		ret = -1;
	}
	msg_reset(db, s);
	return (ret);
}

/* One page of an export; see db_export. */
static int
sm_export(void *h, const char *client, int64_t conv, int section,
    int64_t *after, uint32_t max, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg)
{
	struct sqdb	*db = h;
	enum msg_stmt	 s = section == 0 ? ST_EXP_MSG : ST_EXP_SUM;
	sqlite3_stmt	*st;
	struct db_item	 item;
	size_t		 bytes = 0;
	uint32_t	 n = 0;
	int		 rc, ret = 0;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, s);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, *after);
	sqlite3_bind_int64(st, 3, max);
	sqlite3_bind_int64(st, 4, conv);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*after = sqlite3_column_int64(st, 0);
		n++;
		if (sm_item(db, st, &item) == -1)
			continue;
		if (cb(&item, arg) == -1) {
			ret = -1;
			break;
		}
		bytes += item.len;
		if (bytes >= maxbytes) {
			ret = 1;
			break;
		}
	}
	if (ret == 0) {
		if (rc != SQLITE_DONE) {
			msg_err(db, s);
			ret = -1;
		} else if (n == max)
			ret = 1;
	}
	msg_reset(db, s);
	return (ret);
}

/* Delete every message and summary of a client; *rows says how many. */
static int
sm_purge(void *h, const char *client, uint64_t *rows)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_text(ms(db, ST_PURGE_MSG), 1, client, -1, SQLITE_STATIC);
	if (msg_done(db, ST_PURGE_MSG) == -1)
		return (-1);
	*rows += (uint64_t)sq_changes(db);
	sqlite3_bind_text(ms(db, ST_PURGE_SUM), 1, client, -1, SQLITE_STATIC);
	if (msg_done(db, ST_PURGE_SUM) == -1)
		return (-1);
	*rows += (uint64_t)sq_changes(db);
	sqlite3_bind_text(ms(db, ST_PURGE_CONV), 1, client, -1,
	    SQLITE_STATIC);
	return (msg_done(db, ST_PURGE_CONV));
}

/* Whether a conversation is the client's: 1 yes, 0 no, -1 error. */
static int
sm_conv_owned(void *h, const char *client, int64_t conv)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	int		 rc, ret;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_CONV_OWNED);
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else {
		msg_err(db, ST_CONV_OWNED);
		ret = -1;
	}
	msg_reset(db, ST_CONV_OWNED);
	return (ret);
}

/* Copy a text column into a buffer, "" for NULL; -1 if it is too long. */
static int
sm_col_text(sqlite3_stmt *st, int col, char *buf, size_t len)
{
	const char	*s;

	if ((s = (const char *)sqlite3_column_text(st, col)) == NULL)
		s = "";
	if (strlcpy(buf, s, len) >= len)
		return (-1);
	return (0);
}

/* A row of CONV_COLUMNS into *c. */
static int
sm_conv_row(struct sqdb *db, sqlite3_stmt *st, struct db_conv *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(st, 0);
	if (sm_col_text(st, 1, c->name, sizeof(c->name)) == -1 ||
	    sm_col_text(st, 2, c->model, sizeof(c->model)) == -1 ||
	    sm_col_text(st, 3, c->system, sizeof(c->system)) == -1 ||
	    sm_col_text(st, 4, c->role, sizeof(c->role)) == -1) {
		log_warnx("database %s: conversation %lld: a field is too"
		    " long", sq_path(db), (long long)c->id);
		return (-1);
	}
	c->created = sqlite3_column_int64(st, 5);
	c->last_used = sqlite3_column_int64(st, 6);
	c->messages = sqlite3_column_int64(st, 7);
	return (0);
}

/* One conversation from a bound statement: DB_FOUND, DB_NONE or -1. */
static int
sm_conv_one(struct sqdb *db, enum msg_stmt s, struct db_conv *c)
{
	sqlite3_stmt	*st = ms(db, s);
	int		 rc, ret;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = sm_conv_row(db, st, c) == -1 ? -1 : DB_FOUND;
	else if (rc == SQLITE_DONE)
		ret = DB_NONE;
	else {
		msg_err(db, s);
		ret = -1;
	}
	msg_reset(db, s);
	return (ret);
}

/* The client's most recently used conversation. */
static int
sm_conv_last(void *h, const char *client, struct db_conv *c)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_text(ms(db, ST_CONV_LAST), 1, client, -1, SQLITE_STATIC);
	return (sm_conv_one(db, ST_CONV_LAST, c));
}

/* The client's conversation of this id: DB_FOUND, DB_NONE or -1. */
static int
sm_conv_by_id(void *h, const char *client, int64_t id, struct db_conv *c)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_text(ms(db, ST_CONV_BY_ID), 1, client, -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(ms(db, ST_CONV_BY_ID), 2, id);
	return (sm_conv_one(db, ST_CONV_BY_ID, c));
}

/* The client's conversation of this name: DB_FOUND, DB_NONE or -1. */
static int
sm_conv_by_name(void *h, const char *client, const char *name,
    struct db_conv *c)
{
	struct sqdb	*db = h;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_text(ms(db, ST_CONV_BY_NAME), 1, client, -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(ms(db, ST_CONV_BY_NAME), 2, name, -1,
	    SQLITE_STATIC);
	return (sm_conv_one(db, ST_CONV_BY_NAME, c));
}

/* Bind a text, or NULL when empty. */
static void
sm_bind_opt(sqlite3_stmt *st, int col, const char *s)
{
	if (s != NULL && *s != '\0')
		sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, col);
}

/* A new conversation: 0 and *id, DB_EXISTS for a name taken, or -1. */
static int
sm_conv_new(void *h, const char *client, const char *name,
    const char *model, const char *system, const char *role, int64_t now,
    int64_t *id)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_CONV_NEW);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sm_bind_opt(st, 2, name);
	sm_bind_opt(st, 3, model);
	sm_bind_opt(st, 4, system);
	sm_bind_opt(st, 5, role);
	sqlite3_bind_int64(st, 6, now);
	if (msg_done(db, ST_CONV_NEW) == -1)
		return (-1);
	if (sq_changes(db) == 0)
		return (DB_EXISTS);
	*id = sq_last_rowid(db);
	return (0);
}

/* The client's last `count' conversations, most recently used first. */
static int
sm_conv_list(void *h, const char *client, uint32_t count,
    int (*cb)(const struct db_conv *, void *), void *arg, uint64_t *n)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	struct db_conv	 c;
	int		 rc, ret = 0;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_CONV_LIST);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, count);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sm_conv_row(db, st, &c) == -1)
			continue;
		if (cb(&c, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	return (sq_rows_end(db, ms(db, ST_CONV_LIST), rc, ret));
}

/* Set the fields of mask of the client's conversation: 1, 0 none, -1. */
static int
sm_conv_set(void *h, const char *client, int64_t conv, int mask,
    const char *model, const char *system, const char *role, int64_t now)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;

	if (msg_ready(db) == -1)
		return (-1);
	st = ms(db, ST_CONV_SET);
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, mask);
	sm_bind_opt(st, 4, model);
	sm_bind_opt(st, 5, system);
	sm_bind_opt(st, 6, role);
	sqlite3_bind_int64(st, 7, now);
	if (msg_done(db, ST_CONV_SET) == -1)
		return (-1);
	return (sq_changes(db) == 1 ? 1 : 0);
}

/*
 * Delete a conversation with its messages, summaries and finished
 * jobs; *messages says how many messages went.
 */
static int
sm_conv_delete(void *h, int64_t conv, uint64_t *messages)
{
	struct sqdb	*db = h;
	static const enum msg_stmt rest[] = { ST_CONV_DEL_SUM, ST_CONV_DEL,
	    ST_CONV_DEL_CHUNKS, ST_CONV_DEL_JOBS };
	size_t		 i;

	if (msg_ready(db) == -1)
		return (-1);
	sqlite3_bind_int64(ms(db, ST_CONV_DEL_MSG), 1, conv);
	if (msg_done(db, ST_CONV_DEL_MSG) == -1)
		return (-1);
	*messages = (uint64_t)sq_changes(db);
	for (i = 0; i < sizeof(rest) / sizeof(rest[0]); i++) {
		sqlite3_bind_int64(ms(db, rest[i]), 1, conv);
		if (msg_done(db, rest[i]) == -1)
			return (-1);
	}
	return (0);
}

/*
 * Search the client's messages for the words, each quoted as an FTS5
 * string (db_search_words), so that none is FTS5 syntax.
 */
static int
sm_search(void *h, const char *client, const char *words, uint32_t max,
    int (*cb)(const struct db_match *, void *), void *arg, uint64_t *n)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	struct db_match	 m;
	char		*q;
	int		 rc, ret = 0;

	if (msg_ready(db) == -1 || sm_index_all(db) == -1 ||
	    (q = db_search_words(words)) == NULL)
		return (-1);
	st = ms(db, ST_SEARCH);
	sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&m, 0, sizeof(m));
		m.conv = sqlite3_column_int64(st, 0);
		m.id = sqlite3_column_int64(st, 1);
		m.time = sqlite3_column_int64(st, 2);
		if (db_role_parse((const char *)sqlite3_column_text(st, 3),
		    &m.role) == -1)
			continue;
		if ((m.text = (const char *)sqlite3_column_text(st, 4)) ==
		    NULL)
			m.text = "";
		m.len = (size_t)sqlite3_column_bytes(st, 4);
		if (cb(&m, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		msg_err(db, ST_SEARCH);
		ret = -1;
	}
	msg_reset(db, ST_SEARCH);
	free(q);
	return (ret);
}

const struct db_msg_ops sqlite_msg_ops = {
	.store = sm_store,
	.summary = sm_summary,
	.history = sm_history,
	.context = sm_context,
	.count = sm_count,
	.client_min = sm_client_min,
	.export = sm_export,
	.purge = sm_purge,
	.conv_owned = sm_conv_owned,
	.conv_touch = sm_conv_touch,
	.conv_last = sm_conv_last,
	.conv_by_id = sm_conv_by_id,
	.conv_by_name = sm_conv_by_name,
	.conv_new = sm_conv_new,
	.conv_list = sm_conv_list,
	.conv_set = sm_conv_set,
	.conv_delete = sm_conv_delete,
	.search = sm_search,
};
