/*
 * sq_sqlite.c: the SQLite backend's base: opening, the schema and its
 * migrations, transactions, and the statements of its family files
 * (sq_sqlite_msg.c, _tokens.c, _usage.c, _events.c, _jobs.c), each
 * prepared once. No process logic lives here.
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

static int	 sq_sync(void *, enum sync_mode);

/* Version 1: the tables of the original bridge, with dedupe keys. */
static const char sq_schema_v1[] =
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
static const char sq_schema_v2[] =
	"ALTER TABLE summaries ADD COLUMN last_msg INTEGER NOT NULL"
	" DEFAULT 0;"
	"UPDATE summaries SET last_msg = coalesce((SELECT max(m.id)"
	" FROM messages m WHERE m.client_id = summaries.client_id"
	" AND m.timestamp <= summaries.created_at), 0);"
	"CREATE INDEX IF NOT EXISTS summaries_client"
	" ON summaries (client_id, id);";

/* Version 3: a summary resent after a storage restart is kept once. */
static const char sq_schema_v3[] =
	"ALTER TABLE summaries ADD COLUMN msgkey INTEGER;"
	"CREATE UNIQUE INDEX IF NOT EXISTS summaries_key"
	" ON summaries (client_id, msgkey);";

/*
 * Version 4: background jobs (SUBMIT, DIALOGUE) and their output,
 * committed in chunks as it streams. jobs_db.c runs their queries.
 * A job's id is never used again, even after it is deleted.
 */
static const char sq_schema_v4[] =
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
static const char sq_schema_v5[] =
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
static const char sq_schema_v6[] =
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

/*
 * Version 7: messages are indexed for search in batches. A stored
 * message waits in search_pending until a batch is whole or a search
 * comes; deleting or changing one that waits does not touch the index.
 * Usage rows live in their key's b-tree alone (WITHOUT ROWID): one
 * page written a prompt, not two.
 */
static const char sq_schema_v7[] =
	"CREATE TABLE usage_v7 ("
	" identity TEXT NOT NULL,"
	" day TEXT NOT NULL,"
	" model TEXT NOT NULL,"
	" prompts INTEGER NOT NULL DEFAULT 0,"
	" tokens_in INTEGER NOT NULL DEFAULT 0,"
	" tokens_out INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (identity, day, model)) WITHOUT ROWID;"
	"INSERT INTO usage_v7 SELECT identity, day, model, prompts,"
	" tokens_in, tokens_out FROM usage;"
	"DROP TABLE usage;"
	"ALTER TABLE usage_v7 RENAME TO usage;"
	"CREATE TABLE search_pending (id INTEGER PRIMARY KEY);"
	"DROP TRIGGER messages_fts_insert;"
	"DROP TRIGGER messages_fts_delete;"
	"DROP TRIGGER messages_fts_update;"
	"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
	" INSERT INTO search_pending (id) VALUES (new.id); END;"
	"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" SELECT 'delete', old.id, old.content WHERE NOT EXISTS"
	" (SELECT 1 FROM search_pending WHERE id = old.id);"
	" DELETE FROM search_pending WHERE id = old.id; END;"
	"CREATE TRIGGER messages_fts_update AFTER UPDATE OF content"
	" ON messages BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" SELECT 'delete', old.id, old.content WHERE NOT EXISTS"
	" (SELECT 1 FROM search_pending WHERE id = old.id);"
	" INSERT OR IGNORE INTO search_pending (id) VALUES (new.id); END;";

/*
 * Version 8: a message's key is unique within its conversation, not
 * among all its client's messages. The keys are random; ordered by
 * client they put each stored message on a page anywhere in the index
 * (read, written, checkpointed), ordered by conversation on the pages
 * the conversation's last messages are on. The client's messages
 * stay indexed by messages_client.
 */
static const char sq_schema_v8[] =
	"CREATE UNIQUE INDEX messages_conv_key"
	" ON messages (conversation_id, msgkey);"
	"DROP INDEX messages_key;";

/*
 * Version 9: what waits to be indexed for search is every message
 * above a mark, not a row of its own in search_pending: a stored
 * message writes no page beyond its own and its indexes'. Every
 * message at or below search_mark.upto is in messages_fts, none above
 * it; one stored at or below it (its id freed by a deletion at the
 * top) is indexed at once, and only those at or below it are taken
 * out when deleted or changed. What waited at version 8 is indexed
 * here.
 */
static const char sq_schema_v9[] =
	"INSERT INTO messages_fts (rowid, content) SELECT m.id, m.content"
	" FROM search_pending p JOIN messages m ON m.id = p.id"
	" ORDER BY p.id;"
	"CREATE TABLE search_mark (upto INTEGER NOT NULL);"
	"INSERT INTO search_mark (upto) SELECT coalesce(max(id), 0)"
	" FROM messages;"
	"DROP TRIGGER messages_fts_insert;"
	"DROP TRIGGER messages_fts_delete;"
	"DROP TRIGGER messages_fts_update;"
	"DROP TABLE search_pending;"
	"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages"
	" WHEN new.id <= (SELECT upto FROM search_mark) BEGIN"
	" INSERT INTO messages_fts (rowid, content)"
	" VALUES (new.id, new.content); END;"
	"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages"
	" WHEN old.id <= (SELECT upto FROM search_mark) BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" VALUES ('delete', old.id, old.content); END;"
	"CREATE TRIGGER messages_fts_update AFTER UPDATE OF content"
	" ON messages WHEN old.id <= (SELECT upto FROM search_mark) BEGIN"
	" INSERT INTO messages_fts (messages_fts, rowid, content)"
	" VALUES ('delete', old.id, old.content);"
	" INSERT INTO messages_fts (rowid, content)"
	" VALUES (new.id, new.content); END;";

/* Version v + 1 is sq_steps[v]: a new version is its text and a line. */
static const char *const sq_steps[DB_VERSION] = {
	sq_schema_v1, sq_schema_v2, sq_schema_v3, sq_schema_v4,
	sq_schema_v5, sq_schema_v6, sq_schema_v7, sq_schema_v8,
	sq_schema_v9
};

#define DB_EXTRA_MAX	96		/* statements of the families */

struct sqdb {
	sqlite3		*sq;
	char		 path[PATH_MAX];
	int		 intx;
	/* prepared on first use, by the address of their SQL */
	const char	*extra_sql[DB_EXTRA_MAX];
	sqlite3_stmt	*extra[DB_EXTRA_MAX];
	int		 nextra;
	struct sq_ckpt	*ckpt;		/* checkpoints in a thread, or NULL */
};

/* Log SQLite's own words about the last failure. */
static void
sq_err(struct sqdb *db, const char *what)
{
	log_warnx("database %s: %s: %s", db->path, what,
	    sqlite3_errmsg(db->sq));
}

/* Run SQL that returns no rows we need. */
static int
sq_exec(struct sqdb *db, const char *sql)
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
sq_int(struct sqdb *db, const char *sql, long long *v)
{
	sqlite3_stmt	*st;
	int		 rc;

	if (sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) != SQLITE_OK) {
		sq_err(db, sql);
		return (-1);
	}
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		if (rc == SQLITE_DONE)
			log_warnx("database %s: %s: no result", db->path, sql);
		else
			sq_err(db, sql);
		sqlite3_finalize(st);
		return (-1);
	}
	*v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return (0);
}

/* Whether a table has a column (0 no, 1 yes, -1 error). */
static int
sq_has_column(struct sqdb *db, const char *table, const char *column)
{
	sqlite3_stmt	*st;
	int		 rc, found = 0;

	if (sqlite3_prepare_v2(db->sq, "SELECT name FROM pragma_table_info(?1)",
	    -1, &st, NULL) != SQLITE_OK) {
		sq_err(db, "table_info");
		return (-1);
	}
	sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(st, 0),
		    column) == 0)
			found = 1;
	if (rc != SQLITE_DONE) {
		sq_err(db, "table_info");
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
sq_adopt_legacy(struct sqdb *db)
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

	if ((r = sq_has_column(db, "messages", "id")) != 1)
		return (r);		/* no table: nothing to adopt */
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if ((r = sq_has_column(db, "messages", need[i])) == -1)
			return (-1);
		if (r == 0) {
			log_warnx("database %s: table messages has no column"
			    " %s: not a bridge database", db->path, need[i]);
			return (-1);
		}
	}
	for (i = 0; i < sizeof(add) / sizeof(add[0]); i++) {
		if ((r = sq_has_column(db, "messages", add[i][0])) == -1)
			return (-1);
		if (r == 0 && sq_exec(db, add[i][1]) == -1)
			return (-1);
	}
	log_info("database %s: adopting a database of the original bridge",
	    db->path);
	return (0);
}

/* Bring the schema from version `from' to DB_VERSION in one transaction. */
static int
sq_migrate(struct sqdb *db, long long from)
{
	char		 sql[64];
	long long	 v;

	if (from == DB_VERSION)
		return (0);
	if (sq_exec(db, "BEGIN IMMEDIATE") == -1)
		return (-1);
	if (from < 1 && sq_adopt_legacy(db) == -1)
		goto fail;
	for (v = from; v < DB_VERSION; v++)
		if (sq_exec(db, sq_steps[v]) == -1)
			goto fail;
	(void)snprintf(sql, sizeof(sql), "PRAGMA application_id = %d;"
	    " PRAGMA user_version = %d", DB_APPLICATION_ID, DB_VERSION);
	if (sq_exec(db, sql) == -1 || sq_exec(db, "COMMIT") == -1)
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
sq_check_version(struct sqdb *db, long long *version)
{
	long long	 appid;

	if (sq_int(db, "PRAGMA user_version", version) == -1 ||
	    sq_int(db, "PRAGMA application_id", &appid) == -1)
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
sq_check_dir(const char *path)
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
sq_pragmas(struct sqdb *db, enum sync_mode sync)
{
	sqlite3_stmt	*st;
	const char	*mode;
	int		 ok;

	if (sqlite3_prepare_v2(db->sq, "PRAGMA journal_mode = WAL", -1, &st,
	    NULL) != SQLITE_OK) {
		sq_err(db, "journal_mode");
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
	if (sq_exec(db, "PRAGMA temp_store = MEMORY") == -1 ||
	    sq_exec(db, "PRAGMA journal_size_limit = 67108864") == -1)
		return (-1);
	return (sq_sync(db, sync));
}

/* Whether a database string is ours: every one is (a path). */
static int
sq_claims(const char *database)
{
	return (database != NULL);
}

/* Close after finalizing every statement; NULL is fine. */
static void
sq_close(void *h)
{
	struct sqdb	*db = h;
	int		 i;

	if (db == NULL)
		return;
	sq_ckpt_stop(db->sq, db->ckpt);
	for (i = 0; i < db->nextra; i++)
		sqlite3_finalize(db->extra[i]);
	if (db->sq != NULL)
		sqlite3_close(db->sq);
	free(db);
}

/* Open and migrate; NULL (logged) on any failure. No password here. */
static void *
sq_open(const char *path, enum sync_mode sync, const char *password)
{
	struct sqdb	*db;
	long long	 version;

	(void)password;
	if (sq_check_dir(path) == -1)
		return (NULL);
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	(void)strlcpy(db->path, path, sizeof(db->path));
	/* Opened as root: a symbolic link is refused, not followed. */
	if (sqlite3_open_v2(path, &db->sq, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
	    sq_vfs()) != SQLITE_OK) {
		if (db->sq == NULL)
			log_warnx("database %s: out of memory", path);
		else
			sq_err(db, "open");
		goto fail;
	}
	(void)sqlite3_extended_result_codes(db->sq, 1);
	if (sqlite3_busy_timeout(db->sq, DB_BUSY_TIMEOUT) != SQLITE_OK ||
	    sq_check_version(db, &version) == -1 ||
	    sq_pragmas(db, sync) == -1 || sq_migrate(db, version) == -1)
		goto fail;
	return (db);
 fail:
	sq_close(db);
	return (NULL);
}

/* The SQLite handle, for the families' own calls. */
sqlite3 *
sq_sqlite(struct sqdb *db)
{
	return (db->sq);
}

/* The file's path, for the families' log lines. */
const char *
sq_path(struct sqdb *db)
{
	return (db->path);
}

/* PRAGMA synchronous; outside a transaction. */
static int
sq_sync(void *h, enum sync_mode sync)
{
	struct sqdb	*db = h;
	long long	 v;
	int		 want;

	want = sync == SYNC_FULL ? 2 : 1;
	if (sq_exec(db, want == 2 ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL") == -1 ||
	    sq_int(db, "PRAGMA synchronous", &v) == -1)
		return (-1);
	if (v != want) {
		log_warnx("database %s: synchronous is %lld, not %d",
		    db->path, v, want);
		return (-1);
	}
	return (0);
}

/* Hand the files to the user storage runs as after the sandbox. */
static int
sq_chown(void *h, uid_t uid, gid_t gid)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	struct sqdb	*db = h;
	char		 path[PATH_MAX];
	size_t		 i;

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
 * A statement of one of the family files, prepared the first time it
 * is asked for and kept until sq_close; NULL (logged) on failure.
 */
sqlite3_stmt *
sq_stmt(struct sqdb *db, const char *sql)
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
		sq_err(db, sql);
		return (NULL);
	}
	db->extra_sql[db->nextra] = sql;
	db->extra[db->nextra++] = st;
	return (st);
}

/* Step a statement of sq_stmt to its end, then reset it: 0 or -1. */
int
sq_run(struct sqdb *db, sqlite3_stmt *st)
{
	int	 rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		sq_err(db, sqlite3_sql(st));
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1);
}

/* A failed step of a sq_stmt statement, logged once. */
void
sq_fail(struct sqdb *db, sqlite3_stmt *st)
{
	sq_err(db, sqlite3_sql(st));
}

/*
 * The end of a loop over a statement's rows (rc its last step, ret the
 * loop's own 0 or -1): a step that failed is logged, the statement
 * reset with its bindings cleared. 0 or -1.
 */
int
sq_rows_end(struct sqdb *db, sqlite3_stmt *st, int rc, int ret)
{
	if (ret == 0 && rc != SQLITE_DONE) {
		sq_fail(db, st);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (ret);
}

/* Rows the last statement changed. */
int64_t
sq_changes(struct sqdb *db)
{
	return (sqlite3_changes(db->sq));
}

/* The row id the last INSERT made. */
int64_t
sq_last_rowid(struct sqdb *db)
{
	return (sqlite3_last_insert_rowid(db->sq));
}

/* Run one of the transaction statements. */
static int
sq_tx(struct sqdb *db, const char *sql)
{
	sqlite3_stmt	*st;

	if ((st = sq_stmt(db, sql)) == NULL)
		return (-1);
	return (sq_run(db, st));
}

static const char sq_sql_begin[] = "BEGIN IMMEDIATE";
static const char sq_sql_commit[] = "COMMIT";
static const char sq_sql_rollback[] = "ROLLBACK";

/* BEGIN IMMEDIATE: the write lock now, not at the first write. */
static int
sq_begin(void *h)
{
	struct sqdb	*db = h;

	if (db->intx) {
		log_warnx("database %s: transaction already open", db->path);
		return (-1);
	}
	if (sq_tx(db, sq_sql_begin) == -1)
		return (-1);
	db->intx = 1;
	return (0);
}

/* Give up the open transaction, if there is one. */
static void
sq_rollback(void *h)
{
	struct sqdb	*db = h;

	if (!db->intx)
		return;
	/* SQLite may have rolled back already after an I/O error. */
	if (!sqlite3_get_autocommit(db->sq))
		(void)sq_tx(db, sq_sql_rollback);
	db->intx = 0;
}

/* COMMIT; on failure the transaction is rolled back. */
static int
sq_commit(void *h)
{
	struct sqdb	*db = h;

	if (!db->intx)
		return (0);
	if (sq_tx(db, sq_sql_commit) == -1) {
		sq_rollback(db);
		return (-1);
	}
	db->intx = 0;
	return (0);
}

/* Whether a write failure left the transaction still open. */
static int
sq_intx(void *h)
{
	struct sqdb	*db = h;

	return (db->intx && !sqlite3_get_autocommit(db->sq));
}

/* A file: no server to connect to. */
static int
sq_peer(void *h, int *family, int *port)
{
	(void)h;
	*family = 0;
	*port = 0;
	return (0);
}

/* Storage's: checkpoints in a thread from now on (db_sqlite_ckpt.c). */
static void
sq_background(void *h)
{
	struct sqdb	*db = h;

	if (db->ckpt == NULL)
		db->ckpt = sq_ckpt_start(db->sq, db->path);
}

/* How many checkpoints the thread has run (0 without one). */
static uint64_t
sq_checkpoints(void *h)
{
	struct sqdb	*db = h;

	return (sq_ckpt_count(db->ckpt));
}

const struct db_base_ops sqlite_base_ops = {
	.name = "sqlite",
	.shared = 0,
	.claims = sq_claims,
	.open = sq_open,
	.close = sq_close,
	.sync = sq_sync,
	.chown = sq_chown,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.intx = sq_intx,
	.peer = sq_peer,
	.background = sq_background,
	.checkpoints = sq_checkpoints,
};
