/*
 * db.c: the SQLite side of storage: opening, the schema and its
 * migrations, and one prepared statement per query. No process logic
 * lives here; storage.c decides when to call what.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bridged.h"

#define DB_APPLICATION_ID	0x62726764	/* "brgd" */
#define DB_BUSY_TIMEOUT		2000		/* ms */

#ifndef SQLITE_OPEN_NOFOLLOW
#define SQLITE_OPEN_NOFOLLOW	0
#endif

enum db_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
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
	ST_MAX
};

/* The order of use: each use of a conversation comes after all others. */
#define USE_NEXT \
	"(SELECT coalesce(max(use_order), 0) + 1 FROM conversations)"

/* The columns of a conversation, as db_conv_row reads them. */
#define CONV_COLUMNS \
	"c.id, c.name, c.model, c.system, c.role, c.created_at," \
	" c.last_used, (SELECT count(*) FROM messages m" \
	" WHERE m.conversation_id = c.id)"


/* Every query storage runs, prepared once at open. */
static const char *const db_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_STORE] =
	    "INSERT INTO messages (client_id, role, content, timestamp,"
	    " model, tokens, msgkey, conversation_id) VALUES (?1, ?2, ?3,"
	    " ?4, ?5, ?6, ?7, ?8) ON CONFLICT (client_id, msgkey) DO NOTHING",
	[ST_STORE_DUP] =
	    "SELECT id FROM messages WHERE client_id = ?1 AND msgkey = ?2",
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
	    " use_order = " USE_NEXT " WHERE id = ?1",
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
};

/* Version 1: the tables of the original bridge, with dedupe keys. */
static const char db_schema_v1[] =
	"CREATE TABLE IF NOT EXISTS messages ("
	" id INTEGER PRIMARY KEY,"
	" client_id TEXT NOT NULL,"
	" role TEXT NOT NULL,"
	" content TEXT NOT NULL,"
	" timestamp INTEGER NOT NULL,"
	" model TEXT,"
	" tokens INTEGER,"
	" msgkey INTEGER);"
	"CREATE TABLE IF NOT EXISTS summaries ("
	" id INTEGER PRIMARY KEY,"
	" client_id TEXT NOT NULL,"
	" summary_text TEXT NOT NULL,"
	" created_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS messages_key"
	" ON messages (client_id, msgkey);"
	"CREATE INDEX IF NOT EXISTS messages_client"
	" ON messages (client_id, id);";

/*
 * Version 2: a summary remembers the last message it covers, so the
 * context after it is exact even within one second; old summaries get
 * it from their time.
 */
static const char db_schema_v2[] =
	"ALTER TABLE summaries ADD COLUMN last_msg INTEGER NOT NULL"
	" DEFAULT 0;"
	"UPDATE summaries SET last_msg = coalesce((SELECT max(m.id)"
	" FROM messages m WHERE m.client_id = summaries.client_id"
	" AND m.timestamp <= summaries.created_at), 0);"
	"CREATE INDEX IF NOT EXISTS summaries_client"
	" ON summaries (client_id, id);";

/* Version 3: a summary resent after a storage restart is kept once. */
static const char db_schema_v3[] =
	"ALTER TABLE summaries ADD COLUMN msgkey INTEGER;"
	"CREATE UNIQUE INDEX IF NOT EXISTS summaries_key"
	" ON summaries (client_id, msgkey);";

/*
 * Version 4: background jobs (SUBMIT, DIALOGUE) and their output,
 * committed in chunks as it streams. jobs_db.c runs their queries.
 * A job's id is never used again, even after it is deleted.
 */
static const char db_schema_v4[] =
	"CREATE TABLE IF NOT EXISTS jobs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" client_id TEXT NOT NULL,"
	" kind INTEGER NOT NULL,"
	" state INTEGER NOT NULL,"
	" turns INTEGER NOT NULL,"
	" model TEXT NOT NULL,"
	" model_b TEXT NOT NULL DEFAULT '',"
	" prompt TEXT NOT NULL,"
	" upto_msg INTEGER NOT NULL,"
	" upto_sum INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" started INTEGER,"
	" finished INTEGER,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" tokens_in INTEGER NOT NULL DEFAULT 0,"
	" tokens_out INTEGER NOT NULL DEFAULT 0,"
	" ms INTEGER NOT NULL DEFAULT 0,"
	" finish TEXT NOT NULL DEFAULT '',"
	" err_code TEXT NOT NULL DEFAULT '',"
	" err_text TEXT NOT NULL DEFAULT '',"
	" jobkey INTEGER);"
	"CREATE UNIQUE INDEX IF NOT EXISTS jobs_key"
	" ON jobs (client_id, jobkey);"
	"CREATE INDEX IF NOT EXISTS jobs_client ON jobs (client_id, id);"
	"CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, id)"
	" WHERE state < 2;"
	"CREATE TABLE IF NOT EXISTS job_chunks ("
	" job_id INTEGER NOT NULL,"
	" seq INTEGER NOT NULL,"
	" turn INTEGER NOT NULL,"
	" kind INTEGER NOT NULL,"
	" text TEXT NOT NULL,"
	" PRIMARY KEY (job_id, seq)) WITHOUT ROWID;";

/*
 * Version 5: conversations. Every message and summary belongs to a
 * conversation of one identity; each identity's rows so far become
 * its first conversation. Messages are indexed for full-text search
 * (FTS5), kept in step by triggers in the writer's own transaction.
 */
static const char db_schema_v5[] =
	"CREATE TABLE conversations ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" client_id TEXT NOT NULL,"
	" name TEXT,"
	" model TEXT,"
	" system TEXT,"
	" role TEXT,"
	" created_at INTEGER NOT NULL,"
	" last_used INTEGER NOT NULL,"
	" use_order INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX conversations_name"
	" ON conversations (client_id, name);"
	"CREATE INDEX conversations_used"
	" ON conversations (client_id, use_order);"
	"CREATE INDEX conversations_order ON conversations (use_order);"
	"ALTER TABLE messages ADD COLUMN conversation_id INTEGER NOT NULL"
	" DEFAULT 0;"
	"ALTER TABLE summaries ADD COLUMN conversation_id INTEGER NOT NULL"
	" DEFAULT 0;"
	"INSERT INTO conversations (client_id, created_at, last_used,"
	" use_order) SELECT client_id, min(t), max(t), max(t) FROM"
	" (SELECT client_id, timestamp AS t FROM messages UNION ALL"
	" SELECT client_id, created_at FROM summaries)"
	" GROUP BY client_id ORDER BY client_id;"
	"UPDATE messages SET conversation_id = (SELECT c.id FROM"
	" conversations c WHERE c.client_id = messages.client_id);"
	"UPDATE summaries SET conversation_id = (SELECT c.id FROM"
	" conversations c WHERE c.client_id = summaries.client_id);"
	"CREATE INDEX messages_conversation"
	" ON messages (conversation_id, id);"
	"CREATE INDEX summaries_conversation"
	" ON summaries (conversation_id, id);"
	"CREATE VIRTUAL TABLE messages_fts USING fts5(content,"
	" content='messages', content_rowid='id');"
	"INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
	"ALTER TABLE jobs ADD COLUMN conversation_id INTEGER NOT NULL"
	" DEFAULT 0;"
	"UPDATE jobs SET conversation_id = coalesce((SELECT c.id FROM"
	" conversations c WHERE c.client_id = jobs.client_id), 0);"
	"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
	" INSERT INTO messages_fts (rowid, content)"
	" VALUES (new.id, new.content); END;"
	"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" VALUES ('delete', old.id, old.content); END;"
	"CREATE TRIGGER messages_fts_update AFTER UPDATE OF content"
	" ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" VALUES ('delete', old.id, old.content);"
	" INSERT INTO messages_fts (rowid, content)"
	" VALUES (new.id, new.content); END;";

/*
 * Version 6: issued tokens (hash only), usage per identity, day and
 * model, the requests of the last minute, identities seen, the event
 * log.
 */
static const char db_schema_v6[] =
	"CREATE TABLE IF NOT EXISTS tokens ("
	" id INTEGER PRIMARY KEY,"
	" hash TEXT NOT NULL UNIQUE,"
	" label TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" expires INTEGER,"
	" last_used INTEGER,"
	" revoked INTEGER,"
	" models TEXT NOT NULL DEFAULT '',"
	" requests INTEGER,"
	" tokens INTEGER,"
	" jobs INTEGER);"
	"CREATE TABLE IF NOT EXISTS usage ("
	" identity TEXT NOT NULL,"
	" day TEXT NOT NULL,"
	" model TEXT NOT NULL,"
	" prompts INTEGER NOT NULL DEFAULT 0,"
	" tokens_in INTEGER NOT NULL DEFAULT 0,"
	" tokens_out INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (identity, day, model));"
	"CREATE TABLE IF NOT EXISTS requests ("
	" identity TEXT NOT NULL,"
	" time INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS requests_identity"
	" ON requests (identity, time);"
	"CREATE TABLE IF NOT EXISTS identities ("
	" identity TEXT PRIMARY KEY,"
	" how TEXT NOT NULL,"
	" first_seen INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS events ("
	" id INTEGER PRIMARY KEY,"
	" time INTEGER NOT NULL,"
	" identity TEXT,"
	" text TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS events_identity"
	" ON events (identity, id);";

#define DB_EXTRA_MAX	64		/* statements of the db_*.c files */

struct db {
	sqlite3		*sq;
	char		 path[PATH_MAX];
	sqlite3_stmt	*st[ST_MAX];
	int		 intx;
	/* prepared on first use, by the address of their SQL */
	const char	*extra_sql[DB_EXTRA_MAX];
	sqlite3_stmt	*extra[DB_EXTRA_MAX];
	int		 nextra;
};

static const char *const db_roles[ROLE_MAX] = {
	[ROLE_USER] = "user",
	[ROLE_MODEL] = "model",
	[ROLE_SUMMARY] = "summary",
};

/* Log SQLite's own words about the last failure. */
static void
db_err(struct db *db, const char *what)
{
	log_warnx("database %s: %s: %s", db->path, what,
	    sqlite3_errmsg(db->sq));
}

/* Run SQL that returns no rows we need. */
static int
db_exec(struct db *db, const char *sql)
{
	char	*msg = NULL;

	if (sqlite3_exec(db->sq, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_warnx("database %s: %s", db->path,
		    msg != NULL ? msg : sqlite3_errmsg(db->sq));
		sqlite3_free(msg);
		return (-1);
	}
	return (0);
}

/* One integer from a query of one row (a pragma). */
static int
db_int(struct db *db, const char *sql, long long *v)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(db, sql);
		return (-1);
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			log_warnx("database %s: %s: no result", db->path, sql);
		else
			db_err(db, sql);
		sqlite3_finalize(st);
		return (-1);
	}
	*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (0);
}

/* Whether a table has a column (0 no, 1 yes, -1 error). */
static int
db_has_column(struct db *db, const char *table, const char *column)
{
	sqlite3_stmt	*st;
	int		 rc, found = 0;

	if (sqlite3_prepare_v2(db->sq, "SELECT name FROM pragma_table_info(?1)",
	    -1, &st, NULL) != SQLITE_OK) {
		db_err(db, "table_info");
		return (-1);
	}
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(st, 0),
		    column) == 0)
			found = 1;
	if (rc != SQLITE_DONE) {
		db_err(db, "table_info");
		found = -1;
	}
	sqlite3_finalize(st);
	return (found);
}

/*
 * A database of the original bridge has a messages table and no
 * version: keep its rows and add the columns version 1 has.
 */
static int
db_adopt_legacy(struct db *db)
{
	static const char *const need[] = {
		"client_id", "role", "content", "timestamp"
	};
	static const char *const add[][2] = {
		{ "model", "ALTER TABLE messages ADD COLUMN model TEXT" },
		{ "tokens", "ALTER TABLE messages ADD COLUMN tokens INTEGER" },
		{ "msgkey", "ALTER TABLE messages ADD COLUMN msgkey INTEGER" },
	};
	size_t	 i;
	int	 r;

	if ((r = db_has_column(db, "messages", "id")) != 1)
		return (r);		/* no table: nothing to adopt */
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if ((r = db_has_column(db, "messages", need[i])) == -1)
			return (-1);
		if (r == 0) {
			log_warnx("database %s: table messages has no column"
			    " %s: not a bridge database", db->path, need[i]);
			return (-1);
		}
	}
	for (i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		if ((r = db_has_column(db, "messages", add[i][0])) == -1)
			return (-1);
		if (r == 0 && db_exec(db, add[i][1]) == -1)
			return (-1);
	}
	log_info("database %s: adopting a database of the original bridge",
	    db->path);
	return (0);
}

/* Bring the schema from version `from' to DB_VERSION in one transaction. */
static int
db_migrate(struct db *db, long long from)
{
	char	 sql[64];

	if (from == DB_VERSION)
		return (0);
	if (db_exec(db, "BEGIN IMMEDIATE") == -1)
		return (-1);
	if (from < 1) {
		if (db_adopt_legacy(db) == -1 ||
		    db_exec(db, db_schema_v1) == -1)
			goto fail;
	}
	if (from < 2) {
		if (db_exec(db, db_schema_v2) == -1)
			goto fail;
	}
	if (from < 3) {
		if (db_exec(db, db_schema_v3) == -1)
			goto fail;
	}
	if (from < 4) {
		if (db_exec(db, db_schema_v4) == -1)
			goto fail;
	}
	if (from < 5) {
		if (db_exec(db, db_schema_v5) == -1)
			goto fail;
	}
	if (from < 6) {
		if (db_exec(db, db_schema_v6) == -1)
			goto fail;
	}
	(void)snprintf(sql, sizeof(sql), "PRAGMA application_id = %d;"
	    " PRAGMA user_version = %d", DB_APPLICATION_ID, DB_VERSION);
	if (db_exec(db, sql) == -1 || db_exec(db, "COMMIT") == -1)
		goto fail;
	log_info("database %s: schema version %lld -> %d", db->path, from,
	    DB_VERSION);
	return (0);
 fail:
	(void)sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	log_warnx("database %s: migration from version %lld failed",
	    db->path, from);
	return (-1);
}

/* Refuse what is not ours or is newer than this code. */
static int
db_check_version(struct db *db, long long *version)
{
	long long	 appid;

	if (db_int(db, "PRAGMA user_version", version) == -1 ||
	    db_int(db, "PRAGMA application_id", &appid) == -1)
		return (-1);
	if (appid != 0 && appid != DB_APPLICATION_ID) {
		log_warnx("database %s: application id %#llx is not bridged's",
		    db->path, appid);
		return (-1);
	}
	if (*version > DB_VERSION) {
		log_warnx("database %s: schema version %lld is newer than"
		    " this bridged knows (%d); refusing to use it",
		    db->path, *version, DB_VERSION);
		return (-1);
	}
	if (*version < 0) {
		log_warnx("database %s: bad schema version %lld", db->path,
		    *version);
		return (-1);
	}
	return (0);
}

/* The directory must exist; the file is created if missing. */
static int
db_check_dir(const char *path)
{
	char		 buf[PATH_MAX], *dir;
	struct stat	 sb;

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		log_warnx("database %s: path too long", path);
		return (-1);
	}
	dir = dirname(buf);
	if (stat(dir, &sb) == -1) {
		log_warn("database directory %s", dir);
		return (-1);
	}
	if (!S_ISDIR(sb.st_mode)) {
		log_warnx("database directory %s: not a directory", dir);
		return (-1);
	}
	return (0);
}

/* Set the journal and sync pragmas; WAL must take. */
static int
db_pragmas(struct db *db, enum sync_mode sync)
{
	sqlite3_stmt	*st;
	const char	*mode;
	int		 ok;

	if (sqlite3_prepare_v2(db->sq, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		db_err(db, "journal_mode");
		return (-1);
	}
	ok = sqlite3_step(st) == SQLITE_ROW &&
	    (mode = (const char *)sqlite3_column_text(st, 0)) != NULL &&
	    strcasecmp(mode, "wal") == 0;
	sqlite3_finalize(st);
	if (!ok) {
		log_warnx("database %s: cannot switch to WAL mode", db->path);
		return (-1);
	}
	/* No temporary files; a WAL grown by a burst shrinks to 64M. */
	if (db_exec(db, "PRAGMA temp_store = MEMORY") == -1 ||
	    db_exec(db, "PRAGMA journal_size_limit = 67108864") == -1)
		return (-1);
	return (db_sync(db, sync));
}

/* Open, migrate and prepare; NULL (logged) on any failure. */
struct db *
db_open(const char *path, enum sync_mode sync)
{
	struct db	*db;
	long long	 version;
	int		 i;

	if (db_check_dir(path) == -1)
		return (NULL);
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	(void)strlcpy(db->path, path, sizeof(db->path));
	/* Opened as root: a symbolic link is refused, not followed. */
	if (sqlite3_open_v2(path, &db->sq, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	    NULL) != SQLITE_OK) {
		if (db->sq == NULL)
			log_warnx("database %s: out of memory", path);
		else
			db_err(db, "open");
		goto fail;
	}
	(void)sqlite3_extended_result_codes(db->sq, 1);
	if (sqlite3_busy_timeout(db->sq, DB_BUSY_TIMEOUT) != SQLITE_OK ||
	    db_check_version(db, &version) == -1 ||
	    db_pragmas(db, sync) == -1 || db_migrate(db, version) == -1)
		goto fail;
	for (i = 0; i < ST_MAX; i++) {
		if (sqlite3_prepare_v3(db->sq, db_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &db->st[i], NULL) != SQLITE_OK) {
			db_err(db, db_sql[i]);
			goto fail;
		}
	}
	return (db);
 fail:
	db_close(db);
	return (NULL);
}

/* The SQLite handle, for the queries of jobs_db.c. */
sqlite3 *
db_sqlite(struct db *db)
{
	return (db->sq);
}

/* Finalize every statement and close; NULL is fine. */
void
db_close(struct db *db)
{
	int	 i;

	if (db == NULL)
		return;
	for (i = 0; i < ST_MAX; i++)
		sqlite3_finalize(db->st[i]);
	for (i = 0; i < db->nextra; i++)
		sqlite3_finalize(db->extra[i]);
	if (db->sq != NULL)
		sqlite3_close(db->sq);
	free(db);
}

/* PRAGMA synchronous; outside a transaction. */
int
db_sync(struct db *db, enum sync_mode sync)
{
	long long	 v;
	int		 want;

	want = sync == SYNC_FULL ? 2 : 1;
	if (db_exec(db, want == 2 ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL") == -1 ||
	    db_int(db, "PRAGMA synchronous", &v) == -1)
		return (-1);
	if (v != want) {
		log_warnx("database %s: synchronous is %lld, not %d",
		    db->path, v, want);
		return (-1);
	}
	return (0);
}

/* Hand the files to the user storage runs as after the sandbox. */
int
db_chown(struct db *db, uid_t uid, gid_t gid)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char	 path[PATH_MAX];
	size_t	 i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (snprintf(path, sizeof(path), "%s%s", db->path, sfx[i]) >=
		    (int)sizeof(path)) {
			log_warnx("database %s: path too long", db->path);
			return (-1);
		}
		/* Never through a link someone put in the directory. */
		if (lchown(path, uid, gid) == -1 && errno != ENOENT) {
			log_warn("chown %s", path);
			return (-1);
		}
	}
	return (0);
}

/*
 * A statement of one of the db_*.c files, prepared the first time it
 * is asked for and kept until db_close; NULL (logged) on failure.
 */
sqlite3_stmt *
db_stmt(struct db *db, const char *sql)
{
	sqlite3_stmt	*st;
	int		 i;

	for (i = 0; i < db->nextra; i++)
		if (db->extra_sql[i] == sql)
			return (db->extra[i]);
	if (db->nextra == DB_EXTRA_MAX) {
		log_warnx("%s: too many statements", __func__);
		return (NULL);
	}
	if (sqlite3_prepare_v3(db->sq, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &st, NULL) != SQLITE_OK) {
		db_err(db, sql);
		return (NULL);
	}
	db->extra_sql[db->nextra] = sql;
	db->extra[db->nextra++] = st;
	return (st);
}

/* Step a statement of db_stmt to its end, then reset it: 0 or -1. */
int
db_run(struct db *db, sqlite3_stmt *st)
{
	int	 rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		db_err(db, sqlite3_sql(st));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1);
}

/* A failed step of a db_stmt statement, logged once. */
void
db_fail(struct db *db, sqlite3_stmt *st)
{
	db_err(db, sqlite3_sql(st));
}

/* Rows the last statement changed. */
int64_t
db_changes(struct db *db)
{
	return (sqlite3_changes(db->sq));
}

/* The row id the last INSERT made. */
int64_t
db_last_rowid(struct db *db)
{
	return (sqlite3_last_insert_rowid(db->sq));
}

/* Run a statement that returns no rows, then reset it. */
static int
db_step_done(struct db *db, enum db_stmt s)
{
	int	 rc;

	rc = sqlite3_step(db->st[s]);
	if (rc != SQLITE_DONE)
		db_err(db, db_sql[s]);
	sqlite3_reset(db->st[s]);
	sqlite3_clear_bindings(db->st[s]);
	return (rc == SQLITE_DONE ? 0 : -1);
}

/* BEGIN IMMEDIATE: the write lock now, not at the first write. */
int
db_begin(struct db *db)
{
	if (db->intx) {
		log_warnx("database %s: transaction already open", db->path);
		return (-1);
	}
	if (db_step_done(db, ST_BEGIN) == -1)
		return (-1);
	db->intx = 1;
	return (0);
}

/* COMMIT; on failure the transaction is rolled back. */
int
db_commit(struct db *db)
{
	if (!db->intx)
		return (0);
	if (db_step_done(db, ST_COMMIT) == -1) {
		db_rollback(db);
		return (-1);
	}
	db->intx = 0;
	return (0);
}

/* Give up the open transaction, if there is one. */
void
db_rollback(struct db *db)
{
	if (!db->intx)
		return;
	/* SQLite may have rolled back already after an I/O error. */
	if (!sqlite3_get_autocommit(db->sq))
		(void)db_step_done(db, ST_ROLLBACK);
	db->intx = 0;
}

/* Whether a write failure left the transaction still open. */
int
db_intx(struct db *db)
{
	return (db->intx && !sqlite3_get_autocommit(db->sq));
}

/* Texts are UTF-8 without NUL and small enough to send back. */
int
db_text_valid(const char *text, size_t len)
{
	if (len > DB_TEXT_MAX)
		return (0);
	if (len > 0 && memchr(text, '\0', len) != NULL)
		return (0);
	return (utf8_valid(text, len));
}

/*
 * Store a message unless (client, key) is stored already; either way
 * *rowid is the row's id and the return is 0 (new), 1 (duplicate) or
 * -1. Within a transaction the caller commits.
 */
int
db_store(struct db *db, const char *client, int64_t conv, uint64_t key,
    enum msg_role role, const char *model, uint64_t tokens,
    const char *text, size_t len, int64_t now, int64_t *rowid)
{
	sqlite3_stmt	*st = db->st[ST_STORE], *dup = db->st[ST_STORE_DUP];
	int		 rc, ret;

	if ((role != ROLE_USER && role != ROLE_MODEL) ||
	    !db_text_valid(text, len) || tokens > INT64_MAX) {
		log_warnx("%s: invalid message", __func__);
		return (-1);
	}
	if ((rc = db_conv_owned(db, client, conv)) != 1) {
		if (rc == 0)
			log_warnx("%s: conversation %lld is not the client's",
			    __func__, (long long)conv);
		return (-1);
	}
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, db_roles[role], -1, SQLITE_STATIC);
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
	if (db_step_done(db, ST_STORE) == -1)
		return (-1);
	if (sqlite3_changes(db->sq) == 1) {
		*rowid = sqlite3_last_insert_rowid(db->sq);
		return (db_conv_touch(db, conv, now));
	}
	sqlite3_bind_text(dup, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(dup, 2, (int64_t)key);
	if ((rc = sqlite3_step(dup)) == SQLITE_ROW) {
		*rowid = sqlite3_column_int64(dup, 0);
		ret = 1;
	} else {
		if (rc == SQLITE_DONE)
			log_warnx("%s: key neither new nor stored", __func__);
		else
			db_err(db, db_sql[ST_STORE_DUP]);
		ret = -1;
	}
	sqlite3_reset(dup);
	sqlite3_clear_bindings(dup);
	return (ret);
}

/*
 * Store a summary and keep only the newest `keep' of this client's;
 * the caller runs it inside a transaction so both happen or neither.
 */
int
db_summary(struct db *db, const char *client, int64_t conv, uint64_t key,
    const char *text, size_t len, int64_t now, int keep, int64_t *rowid)
{
	sqlite3_stmt	*st = db->st[ST_SUMMARY];
	sqlite3_stmt	*trim = db->st[ST_SUMMARY_TRIM];
	int		 rc;

	if (len == 0 || !db_text_valid(text, len)) {
		log_warnx("%s: invalid summary", __func__);
		return (-1);
	}
	if ((rc = db_conv_owned(db, client, conv)) != 1) {
		if (rc == 0)
			log_warnx("%s: conversation %lld is not the client's",
			    __func__, (long long)conv);
		return (-1);
	}
	if (keep < 1)
		keep = 1;
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int64(st, 4, (int64_t)key);
	sqlite3_bind_int64(st, 5, conv);
	if (db_step_done(db, ST_SUMMARY) == -1)
		return (-1);
	if (sqlite3_changes(db->sq) == 0) {
		/* The same summary again: it is stored already. */
		*rowid = 0;
		return (0);
	}
	*rowid = sqlite3_last_insert_rowid(db->sq);
	sqlite3_bind_int64(trim, 1, conv);
	sqlite3_bind_int(trim, 2, keep);
	return (db_step_done(db, ST_SUMMARY_TRIM));
}

/* Map a stored role; unknown ones (hand-edited rows) are skipped. */
static int
db_role(const char *s, enum msg_role *role)
{
	int	 i;

	if (s == NULL)
		return (-1);
	for (i = 0; i < ROLE_MAX; i++) {
		if (strcmp(s, db_roles[i]) == 0) {
			*role = i;
			return (0);
		}
	}
	if (strcmp(s, "assistant") == 0) {	/* the original bridge */
		*role = ROLE_MODEL;
		return (0);
	}
	return (-1);
}

/*
 * The newest rows after `after' that fit in maxitems and maxbytes,
 * given to cb oldest first. Two passes: sizes newest first to find
 * where to start, then the rows themselves, so nothing is held here.
 * *sent counts the rows given; *cut is DB_CUT_BYTES when older rows
 * were left out for maxbytes, DB_CUT_ITEMS when for maxitems.
 */
static int
db_newest(struct db *db, enum db_stmt sizes, enum db_stmt rows,
    int64_t conv, int64_t after, uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	sqlite3_stmt	*st;
	struct db_item	 item;
	size_t		 bytes = 0, sz;
	int64_t		 first = -1;
	uint32_t	 n = 0;
	int		 rc, ret = 0;

	*sent = 0;
	*cut = 0;
	st = db->st[sizes];
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_int64(st, 2, after);
	/* One more row than wanted tells whether any were left out. */
	sqlite3_bind_int64(st, 3, (int64_t)maxitems + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == maxitems) {
			*cut = DB_CUT_ITEMS;
			break;
		}
		sz = (size_t)sqlite3_column_int64(st, 1);
		if (sz > maxbytes - bytes) {
			*cut = DB_CUT_BYTES;
			break;
		}
		bytes += sz;
		first = sqlite3_column_int64(st, 0);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		db_err(db, db_sql[sizes]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (ret == -1 || n == 0)
		return (ret);

	st = db->st[rows];
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_int64(st, 2, first);
	sqlite3_bind_int64(st, 3, n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&item, 0, sizeof(item));
		item.id = sqlite3_column_int64(st, 0);
		item.time = sqlite3_column_int64(st, 1);
		if (db_role((const char *)sqlite3_column_text(st, 2),
		    &item.role) == -1) {
			log_warnx("database %s: row %lld: unknown role",
			    db->path, (long long)item.id);
			continue;
		}
		item.text = (const char *)sqlite3_column_text(st, 3);
		item.len = (size_t)sqlite3_column_bytes(st, 3);
		if (item.text == NULL)
			item.text = "";
		if (cb(&item, arg) == -1) {
			ret = -1;
			break;
		}
		(*sent)++;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		db_err(db, db_sql[rows]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/*
 * The last `count' messages or summaries of a conversation of the
 * client, oldest first; another client's conversation has none.
 */
int
db_history(struct db *db, const char *client, int64_t conv,
    enum history_kind kind, uint32_t count, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	int	 r;

	*sent = 0;
	*cut = 0;
	if ((r = db_conv_owned(db, client, conv)) != 1)
		return (r);
	if (kind == HISTORY_SUMMARIES)
		return (db_newest(db, ST_SUM_SIZES, ST_SUM_ROWS, conv, 0,
		    count, maxbytes, cb, arg, sent, cut));
	return (db_newest(db, ST_MSG_SIZES, ST_MSG_ROWS, conv, 0, count,
	    maxbytes, cb, arg, sent, cut));
}

/*
 * A session's context: the last summary (role summary), then the
 * messages it does not cover, oldest first, within the bounds; the
 * oldest are the ones left out (*cut, as for db_newest).
 */
int
db_context(struct db *db, const char *client, int64_t conv,
    uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	sqlite3_stmt	*st = db->st[ST_SUM_LAST];
	struct db_item	 item;
	int64_t		 after = 0;
	int		 rc, ret = 0, have = 0, scut = 0;

	*sent = 0;
	*cut = 0;
	if (maxitems == 0)
		return (0);
	if ((rc = db_conv_owned(db, client, conv)) != 1)
		return (rc);
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
		db_err(db, db_sql[ST_SUM_LAST]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (ret == -1)
		return (-1);
	if (db_newest(db, ST_MSG_SIZES, ST_MSG_ROWS, conv, after,
	    maxitems, maxbytes, cb, arg, sent, cut) == -1)
		return (-1);
	*sent += have;
	if (*cut == 0)
		*cut = scut;
	return (0);
}

/* How many messages a client has stored. */
int
db_count(struct db *db, const char *client, uint64_t *count)
{
	sqlite3_stmt	*st = db->st[ST_COUNT];
	int		 rc;

	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*count = (uint64_t)sqlite3_column_int64(st, 0);
	else
		db_err(db, db_sql[ST_COUNT]);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_ROW ? 0 : -1);
}

/* The smallest client id in [lo, hi) (or (lo, hi) for ST_NEXT). */
static int
db_client_min(struct db *db, enum db_stmt s, const char *lo,
    const char *hi, char *out, size_t outlen)
{
	sqlite3_stmt	*st = db->st[s];
	const char	*c;
	int		 rc, ret = 0;

	sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((c = (const char *)sqlite3_column_text(st, 0)) != NULL) {
			if (strlcpy(out, c, outlen) >= outlen) {
				log_warnx("database %s: client id too long",
				    db->path);
				ret = -1;
			} else
				ret = 1;
		}
	} else {
		db_err(db, db_sql[s]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/*
 * The one stored identity that begins with a hex prefix: DB_FOUND,
 * DB_NONE, DB_AMBIGUOUS, or -1. Index seeks only, however many rows.
 */
int
db_resolve(struct db *db, const char *prefix, char *out, size_t outlen)
{
	char	 hi[IDENTITY_LEN + 2], next[IDENTITY_LEN + 1];
	size_t	 len = strlen(prefix);
	int	 r;

	if (len == 0 || len > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != len) {
		log_warnx("%s: not a hex prefix", __func__);
		return (-1);
	}
	/* A whole identity is itself, stored or not (an empty export). */
	if (len == IDENTITY_LEN) {
		if (strlcpy(out, prefix, outlen) >= outlen)
			return (-1);
		return (DB_FOUND);
	}
	/* Every hex string that starts with the prefix sorts below this. */
	memcpy(hi, prefix, len);
	hi[len] = 'g';
	hi[len + 1] = '\0';
	if ((r = db_client_min(db, ST_FIRST, prefix, hi, out, outlen)) != 1)
		return (r == 0 ? DB_NONE : -1);
	if ((r = db_client_min(db, ST_NEXT, out, hi, next,
	    sizeof(next))) == -1)
		return (-1);
	return (r == 1 ? DB_AMBIGUOUS : DB_FOUND);
}

/*
 * One page of an export, oldest first: messages (section 0) or
 * summaries (1) of the client (of one of its conversations if conv is
 * not 0) with an id above *after, at most max rows, stopping early
 * once maxbytes were given. 1 when more may follow, 0 when the
 * section is done, -1 on error; *after is the last id given.
 */
int
db_export(struct db *db, const char *client, int64_t conv, int section,
    int64_t *after, uint32_t max, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg)
{
	enum db_stmt	 s = section == 0 ? ST_EXP_MSG : ST_EXP_SUM;
	sqlite3_stmt	*st = db->st[s];
	struct db_item	 item;
	size_t		 bytes = 0;
	uint32_t	 n = 0;
	int		 rc, ret = 0;

	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, *after);
	sqlite3_bind_int64(st, 3, max);
	sqlite3_bind_int64(st, 4, conv);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&item, 0, sizeof(item));
		item.id = sqlite3_column_int64(st, 0);
		item.time = sqlite3_column_int64(st, 1);
		*after = item.id;
		n++;
		if (db_role((const char *)sqlite3_column_text(st, 2),
		    &item.role) == -1) {
			log_warnx("database %s: row %lld: unknown role",
			    db->path, (long long)item.id);
			continue;
		}
		item.text = (const char *)sqlite3_column_text(st, 3);
		item.len = (size_t)sqlite3_column_bytes(st, 3);
		if (item.text == NULL)
			item.text = "";
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
			db_err(db, db_sql[s]);
			ret = -1;
		} else if (n == max)
			ret = 1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/* Delete every message and summary of a client; *rows says how many. */
int
db_purge(struct db *db, const char *client, uint64_t *rows)
{
	*rows = 0;
	sqlite3_bind_text(db->st[ST_PURGE_MSG], 1, client, -1, SQLITE_STATIC);
	if (db_step_done(db, ST_PURGE_MSG) == -1)
		return (-1);
	*rows += (uint64_t)sqlite3_changes(db->sq);
	sqlite3_bind_text(db->st[ST_PURGE_SUM], 1, client, -1, SQLITE_STATIC);
	if (db_step_done(db, ST_PURGE_SUM) == -1)
		return (-1);
	*rows += (uint64_t)sqlite3_changes(db->sq);
	sqlite3_bind_text(db->st[ST_PURGE_CONV], 1, client, -1,
	    SQLITE_STATIC);
	return (db_step_done(db, ST_PURGE_CONV));
}


/*
 * Conversations.
 */

/* Whether a conversation is the client's: 1 yes, 0 no, -1 error. */
int
db_conv_owned(struct db *db, const char *client, int64_t conv)
{
	sqlite3_stmt	*st = db->st[ST_CONV_OWNED];
	int		 rc, ret;

	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else {
		db_err(db, db_sql[ST_CONV_OWNED]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/* A conversation was used now: it goes first in the list. */
int
db_conv_touch(struct db *db, int64_t conv, int64_t now)
{
	sqlite3_bind_int64(db->st[ST_CONV_TOUCH], 1, conv);
	sqlite3_bind_int64(db->st[ST_CONV_TOUCH], 2, now);
	return (db_step_done(db, ST_CONV_TOUCH));
}

/* Copy a text column into a buffer, "" for NULL; -1 if it is too long. */
static int
db_col_text(sqlite3_stmt *st, int col, char *buf, size_t len)
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
db_conv_row(struct db *db, sqlite3_stmt *st, struct db_conv *c)
{
	memset(c, 0, sizeof(*c));
	c->id = sqlite3_column_int64(st, 0);
	if (db_col_text(st, 1, c->name, sizeof(c->name)) == -1 ||
	    db_col_text(st, 2, c->model, sizeof(c->model)) == -1 ||
	    db_col_text(st, 3, c->system, sizeof(c->system)) == -1 ||
	    db_col_text(st, 4, c->role, sizeof(c->role)) == -1) {
		log_warnx("database %s: conversation %lld: a field is too"
		    " long", db->path, (long long)c->id);
		return (-1);
	}
	c->created = sqlite3_column_int64(st, 5);
	c->last_used = sqlite3_column_int64(st, 6);
	c->messages = sqlite3_column_int64(st, 7);
	return (0);
}

/* One conversation from a bound statement: DB_FOUND, DB_NONE or -1. */
static int
db_conv_one(struct db *db, enum db_stmt s, struct db_conv *c)
{
	sqlite3_stmt	*st = db->st[s];
	int		 rc, ret;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = db_conv_row(db, st, c) == -1 ? -1 : DB_FOUND;
	else if (rc == SQLITE_DONE)
		ret = DB_NONE;
	else {
		db_err(db, db_sql[s]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/* The client's most recently used conversation. */
int
db_conv_last(struct db *db, const char *client, struct db_conv *c)
{
	sqlite3_bind_text(db->st[ST_CONV_LAST], 1, client, -1, SQLITE_STATIC);
	return (db_conv_one(db, ST_CONV_LAST, c));
}

/*
 * The client's conversation named by ref: its id (all digits) or
 * else its name. An id of another client's is DB_NONE, as is nothing.
 */
int
db_conv_find(struct db *db, const char *client, const char *ref,
    struct db_conv *c)
{
	const char	*errstr;
	long long	 id;
	int		 r;

	if (*ref != '\0' && strspn(ref, "0123456789") == strlen(ref)) {
		id = strtonum(ref, 1, INT64_MAX, &errstr);
		if (errstr == NULL) {
			sqlite3_bind_text(db->st[ST_CONV_BY_ID], 1, client, -1,
			    SQLITE_STATIC);
			sqlite3_bind_int64(db->st[ST_CONV_BY_ID], 2, id);
			if ((r = db_conv_one(db, ST_CONV_BY_ID, c)) != DB_NONE)
				return (r);
		}
	}
	if (!conv_name_valid(ref))
		return (DB_NONE);
	sqlite3_bind_text(db->st[ST_CONV_BY_NAME], 1, client, -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(db->st[ST_CONV_BY_NAME], 2, ref, -1, SQLITE_STATIC);
	return (db_conv_one(db, ST_CONV_BY_NAME, c));
}

/* Bind a text, or NULL when empty. */
static void
db_bind_opt(sqlite3_stmt *st, int col, const char *s)
{
	if (s != NULL && *s != '\0')
		sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, col);
}

/*
 * A new conversation of the client (name "" for none): 0 and *c, or
 * DB_EXISTS when the client has one of that name, or -1.
 */
int
db_conv_new(struct db *db, const char *client, const char *name,
    const char *model, const char *system, const char *role, int64_t now,
    struct db_conv *c)
{
	sqlite3_stmt	*st = db->st[ST_CONV_NEW];
	int64_t		 id;

	if ((*name != '\0' && !conv_name_valid(name)) ||
	    strlen(model) >= sizeof(c->model) ||
	    strlen(system) >= sizeof(c->system) ||
	    strlen(role) >= sizeof(c->role) ||
	    !utf8_valid(system, strlen(system))) {
		log_warnx("%s: invalid conversation", __func__);
		return (-1);
	}
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	db_bind_opt(st, 2, name);
	db_bind_opt(st, 3, model);
	db_bind_opt(st, 4, system);
	db_bind_opt(st, 5, role);
	sqlite3_bind_int64(st, 6, now);
	if (db_step_done(db, ST_CONV_NEW) == -1)
		return (-1);
	if (sqlite3_changes(db->sq) == 0)
		return (DB_EXISTS);
	id = sqlite3_last_insert_rowid(db->sq);
	memset(c, 0, sizeof(*c));
	c->id = id;
	(void)strlcpy(c->name, name, sizeof(c->name));
	(void)strlcpy(c->model, model, sizeof(c->model));
	(void)strlcpy(c->system, system, sizeof(c->system));
	(void)strlcpy(c->role, role, sizeof(c->role));
	c->created = c->last_used = now;
	return (0);
}

/* The client's last `count' conversations, most recently used first. */
int
db_conv_list(struct db *db, const char *client, uint32_t count,
    int (*cb)(const struct db_conv *, void *), void *arg, uint64_t *n)
{
	sqlite3_stmt	*st = db->st[ST_CONV_LIST];
	struct db_conv	 c;
	int		 rc, ret = 0;

	*n = 0;
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, count);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (db_conv_row(db, st, &c) == -1)
			continue;
		if (cb(&c, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		db_err(db, db_sql[ST_CONV_LIST]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/*
 * Set the fields of mask (CONV_MODEL, CONV_SYSTEM, CONV_ROLE; "" is
 * none) of the client's conversation: 1 set, 0 no such, -1 error.
 */
int
db_conv_set(struct db *db, const char *client, int64_t conv, int mask,
    const char *model, const char *system, const char *role, int64_t now)
{
	sqlite3_stmt	*st = db->st[ST_CONV_SET];

	if (strlen(model) >= MODEL_MAX_LEN ||
	    strlen(system) >= CONV_SYSTEM_MAX ||
	    strlen(role) >= NAME_MAX_LEN ||
	    !utf8_valid(system, strlen(system))) {
		log_warnx("%s: invalid conversation field", __func__);
		return (-1);
	}
	sqlite3_bind_int64(st, 1, conv);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, mask);
	db_bind_opt(st, 4, model);
	db_bind_opt(st, 5, system);
	db_bind_opt(st, 6, role);
	sqlite3_bind_int64(st, 7, now);
	if (db_step_done(db, ST_CONV_SET) == -1)
		return (-1);
	return (sqlite3_changes(db->sq) == 1 ? 1 : 0);
}

/*
 * Delete the client's conversation with its messages, summaries and
 * finished jobs:
 * 1 and *messages, 0 if the client has no such, -1 error.
 */
int
db_conv_delete(struct db *db, const char *client, int64_t conv,
    uint64_t *messages)
{
	int	 r;

	*messages = 0;
	if ((r = db_conv_owned(db, client, conv)) != 1)
		return (r);
	sqlite3_bind_int64(db->st[ST_CONV_DEL_MSG], 1, conv);
	if (db_step_done(db, ST_CONV_DEL_MSG) == -1)
		return (-1);
	*messages = (uint64_t)sqlite3_changes(db->sq);
	sqlite3_bind_int64(db->st[ST_CONV_DEL_SUM], 1, conv);
	sqlite3_bind_int64(db->st[ST_CONV_DEL], 1, conv);
	sqlite3_bind_int64(db->st[ST_CONV_DEL_CHUNKS], 1, conv);
	sqlite3_bind_int64(db->st[ST_CONV_DEL_JOBS], 1, conv);
	if (db_step_done(db, ST_CONV_DEL_SUM) == -1 ||
	    db_step_done(db, ST_CONV_DEL) == -1 ||
	    db_step_done(db, ST_CONV_DEL_CHUNKS) == -1 ||
	    db_step_done(db, ST_CONV_DEL_JOBS) == -1)
		return (-1);
	return (1);
}

/*
 * Full-text search over the client's messages, newest first. Every
 * word is searched for literally (as an FTS5 string), so no character
 * of the words has a meaning of its own and no query is an error.
 */
int
db_search(struct db *db, const char *client, const char *words,
    uint32_t max, int (*cb)(const struct db_match *, void *), void *arg,
    uint64_t *n)
{
	sqlite3_stmt	*st = db->st[ST_SEARCH];
	struct db_match	 m;
	char		*q, *o;
	const char	*w;
	size_t		 len = strlen(words);
	int		 rc, ret = 0;

	*n = 0;
	/* Each word quoted, quotes doubled: at most 3 bytes a byte. */
	if (len == 0 || len > DB_SEARCH_MAX || (q = malloc(len * 3 + 3)) ==
	    NULL)
		return (-1);
	o = q;
	for (w = words; *w != '\0';) {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0')
			break;
		if (o != q)
			*o++ = ' ';
		*o++ = '"';
		for (; *w != '\0' && *w != ' ' && *w != '\t'; w++) {
			if (*w == '"')
				*o++ = '"';
			*o++ = *w;
		}
		*o++ = '"';
	}
	*o = '\0';
	if (o == q) {
		free(q);
		return (0);
	}
	sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, max);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&m, 0, sizeof(m));
		m.conv = sqlite3_column_int64(st, 0);
		m.id = sqlite3_column_int64(st, 1);
		m.time = sqlite3_column_int64(st, 2);
		if (db_role((const char *)sqlite3_column_text(st, 3),
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
		db_err(db, db_sql[ST_SEARCH]);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	free(q);
	return (ret);
}
