/*
 * t_db.c: the storage interface (bridged/db.c) on real files in a
 * temporary directory: the schema and its migrations, WAL, dedupe,
 * summary trimming, history and context order and bounds, and an
 * integrity check at the end. A second connection of our own looks at
 * the files from outside. With BRIDGED_TEST_PG (a conninfo string or
 * URI of a PostgreSQL database the test may use; it works in a schema
 * t_db of its own, dropped first), the same cases run against
 * PostgreSQL (names pg-...), and its migrations and two instances'
 * view of one database are tested; without it, a skip line says so.
 */

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "bridged.h"
#include "fts_check.h"
#include "pgtest.h"

#define A	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" \
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define MAXITEMS	64

static int	 failures;
static char	 dir[PATH_MAX];
static const char *prefix = "";		/* "pg-" for PostgreSQL */

struct got {
	int		 n;
	int64_t		 id[MAXITEMS];
	int64_t		 time[MAXITEMS];
	enum msg_role	 role[MAXITEMS];
	char		*text[MAXITEMS];
};

/* One result line: ok, or FAIL with why. */
static void
check(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s%s\n", prefix, name);
	else {
		printf("FAIL %s%s: %s\n", prefix, name, why);
		failures++;
	}
}

/* A file in the test directory. */
static void
path_of(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len) {
		fprintf(stderr, "path too long\n");
		exit(2);
	}
}

/* Whether a database string is PostgreSQL's (as db.c decides). */
static int
is_pg(const char *database)
{
	return (strchr(database, '=') != NULL ||
	    strncmp(database, "postgres", 8) == 0);
}

/* A query on our own connection: one integer, or -1 on error. */
static long long
q_int(const char *file, const char *sql)
{
	sqlite3		*sq;
	sqlite3_stmt	*st;
	PGresult	*res;
	long long	 v = -1;

	if (is_pg(file)) {
		if ((res = pgtest_query(file, sql)) == NULL)
			return (-1);
		if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
			v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
		return (v);
	}

	if (sqlite3_open_v2(file, &sq, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(sq);
		return (-1);
	}
	if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(sq);
	return (v);
}

/* One text from our own connection, or "" on error. */
static void
q_text(const char *file, const char *sql, char *out, size_t len)
{
	sqlite3		*sq;
	sqlite3_stmt	*st;
	const char	*t;

	out[0] = '\0';
	if (sqlite3_open_v2(file, &sq, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(sq);
		return;
	}
	if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW &&
		    (t = (const char *)sqlite3_column_text(st, 0)) != NULL)
			(void)strlcpy(out, t, len);
		sqlite3_finalize(st);
	}
	sqlite3_close(sq);
}

/* Run SQL on our own connection; -1 on error. */
static int
q_exec(const char *file, const char *sql)
{
	sqlite3		*sq;
	PGresult	*res;
	int		 rc;

	if (is_pg(file)) {
		if ((res = pgtest_query(file, sql)) == NULL)
			return (-1);
		PQclear(res);
		return (0);
	}

	if (sqlite3_open(file, &sq) != SQLITE_OK) {
		sqlite3_close(sq);
		return (-1);
	}
	rc = sqlite3_exec(sq, sql, NULL, NULL, NULL);
	sqlite3_close(sq);
	return (rc == SQLITE_OK ? 0 : -1);
}

/* A db_item callback that keeps what it is given. */
static int
collect(const struct db_item *item, void *arg)
{
	struct got	*g = arg;

	if (g->n >= MAXITEMS)
		return (-1);
	g->id[g->n] = item->id;
	g->time[g->n] = item->time;
	g->role[g->n] = item->role;
	if ((g->text[g->n] = strndup(item->text, item->len)) == NULL)
		return (-1);
	g->n++;
	return (0);
}

/* Forget what collect() kept. */
static void
got_free(struct got *g)
{
	int	 i;

	for (i = 0; i < g->n; i++)
		free(g->text[i]);
	memset(g, 0, sizeof(*g));
}

/* Whether what came is exactly these texts in this order. */
static int
got_is(struct got *g, const char *const *want, int n)
{
	int	 i;

	if (g->n != n)
		return (0);
	for (i = 0; i < n; i++) {
		if (strcmp(g->text[i], want[i]) != 0)
			return (0);
		if (i > 0 && g->id[i] <= g->id[i - 1] &&
		    g->role[i] != ROLE_SUMMARY)
			return (0);
	}
	return (1);
}

/* The client's most recently used conversation, made if it has none. */
static int64_t
cv(struct db *db, const char *client)
{
	static struct db_conv	 c;

	if (db_conv_last(db, client, &c) == DB_FOUND ||
	    db_conv_new(db, client, "", "", "", "", 1, &c) == 0)
		return (c.id);
	return (-1);
}

/* db_store with a model name and tokens filled in. */
static int
store(struct db *db, const char *client, uint64_t key, enum msg_role role,
    const char *text, int64_t now, int64_t *rowid)
{
	int64_t	 dummy;

	return (db_store(db, client, cv(db, client), key, role, "gemini-test",
	    7, text,
	    strlen(text), now, rowid != NULL ? rowid : &dummy));
}

/* A new file and an empty one become version DB_VERSION, in WAL. */
static void
t_create(void)
{
	char		 file[PATH_MAX], mode[32];
	struct db	*db;
	struct stat	 sb;

	path_of(file, sizeof(file), "new.db");
	db = db_open(file, SYNC_NORMAL);
	check("create", db != NULL, "db_open failed on a new file");
	if (db == NULL)
		return;
	check("create-version", q_int(file, "PRAGMA user_version") ==
	    DB_VERSION, "user_version is not DB_VERSION");
	check("create-tables", q_int(file, "SELECT count(*) FROM"
	    " sqlite_master WHERE type = 'table' AND name IN"
	    " ('messages', 'summaries')") == 2, "tables missing");
	check("create-indexes", q_int(file, "SELECT count(*) FROM"
	    " sqlite_master WHERE type = 'index' AND name IN"
	    " ('messages_conv_key', 'messages_client', 'summaries_client')")
	    == 3 && q_int(file, "SELECT count(*) FROM sqlite_master WHERE"
	    " name = 'messages_key'") == 0, "indexes missing or left over");
	check("create-unique", q_int(file, "SELECT \"unique\" FROM"
	    " pragma_index_list('messages') WHERE name = 'messages_conv_key'")
	    == 1, "messages_conv_key is not unique");
	q_text(file, "PRAGMA journal_mode", mode, sizeof(mode));
	check("wal", strcmp(mode, "wal") == 0, "journal_mode is not wal");
	check("wal-files", store(db, A, 1, ROLE_USER, "x", 1, NULL) == 0 &&
	    (path_of(file, sizeof(file), "new.db-wal"), stat(file, &sb)) == 0,
	    "no -wal file after a write");
	db_close(db);

	/* An empty file that exists is a database of version 0. */
	path_of(file, sizeof(file), "empty.db");
	close(open(file, O_CREAT | O_WRONLY | O_TRUNC, 0600));
	db = db_open(file, SYNC_FULL);
	check("migrate-empty", db != NULL && q_int(file,
	    "PRAGMA user_version") == DB_VERSION, "empty file not migrated");
	db_close(db);

	/* Opening again changes nothing. */
	db = db_open(file, SYNC_NORMAL);
	check("reopen", db != NULL && q_int(file, "PRAGMA user_version") ==
	    DB_VERSION, "second open failed");
	db_close(db);
}

/* Copy a file as it is now, for a crash's view of it. */
static int
copy_file(const char *from, const char *to)
{
	char	 buf[8192];
	ssize_t	 n;
	int	 in, out, rv = 0;

	if ((in = open(from, O_RDONLY)) == -1)
		return (-1);
	if ((out = open(to, O_CREAT | O_WRONLY | O_TRUNC, 0600)) == -1) {
		close(in);
		return (-1);
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			rv = -1;
	if (n == -1)
		rv = -1;
	close(in);
	close(out);
	return (rv);
}

/*
 * A commit's WAL frames go out in one write (db_sqlite_vfs.c): 40
 * commits of several pages each are 40 writes, and a crash's copy of
 * the files, the WAL not yet checkpointed, is recovered by plain
 * SQLite with every commit in it (a frame out of place would end the
 * recovery there). A commit larger than what is held at once, and one
 * that rolls back, leave the same whole file.
 */
static void
t_wal_frames(void)
{
	char		 file[PATH_MAX], wal[PATH_MAX], copy[PATH_MAX];
	char		 cwal[PATH_MAX], ok[32];
	struct db	*db;
	uint64_t	 before, writes;
	char		*big;
	int		 i, stored = 0;

	path_of(file, sizeof(file), "frames.db");
	path_of(wal, sizeof(wal), "frames.db-wal");
	path_of(copy, sizeof(copy), "crash.db");
	path_of(cwal, sizeof(cwal), "crash.db-wal");
	if ((db = db_open(file, SYNC_NORMAL)) == NULL) {
		check("wal-frames", 0, "db_open failed");
		return;
	}
	before = sq_vfs_frames();
	writes = sq_vfs_writes();
	for (i = 0; i < 40; i++)
		stored += db_begin(db) == 0 && store(db, A, 7000 + i,
		    i % 2 ? ROLE_MODEL : ROLE_USER, "a message \"quoted\" and"
		    " long enough to matter", 100 + i, NULL) == 0 &&
		    db_commit(db) == 0;
	check("wal-frames-whole", stored == 40 && sq_vfs_frames() >=
	    before + 80 && sq_vfs_writes() - writes == 40,
	    "not one write of several frames a commit");
	/* 1 MB: more pages than are held at once. */
	if ((big = malloc(1024 * 1024 + 1)) == NULL)
		err(1, NULL);
	memset(big, 'x', 1024 * 1024);
	big[1024 * 1024] = '\0';
	stored += db_begin(db) == 0 && store(db, A, 7040, ROLE_USER, big, 100,
	    NULL) == 0 && db_commit(db) == 0;
	free(big);
	/* A transaction that spilled pages to the WAL, then rolled back. */
	if ((big = malloc(4 * 1024 * 1024 + 1)) == NULL)
		err(1, NULL);
	memset(big, 'y', 4 * 1024 * 1024);
	big[4 * 1024 * 1024] = '\0';
	if (db_begin(db) == 0) {
		(void)store(db, A, 7041, ROLE_USER, big, 100, NULL);
		db_rollback(db);
	}
	free(big);
	stored += store(db, A, 7042, ROLE_USER, "after the rollback", 100,
	    NULL) == 0;
	check("wal-frames-crash", copy_file(file, copy) == 0 &&
	    copy_file(wal, cwal) == 0 && stored == 42 && q_int(copy,
	    "SELECT count(*) FROM messages WHERE msgkey >= 7000") == 42 &&
	    (q_text(copy, "PRAGMA integrity_check", ok, sizeof(ok)),
	    strcmp(ok, "ok") == 0), "the WAL of 42 commits was not recovered");
	db_close(db);
}

/*
 * Storage's checkpoints run in a thread of their own: after 3000
 * commits it has run some, the WAL has started over (it holds far
 * fewer pages than were written), every message is in the file, and
 * closing stops the thread. A writer flat out starts the WAL over at
 * its bound all the same.
 */
static void
t_checkpoint_thread(void)
{
	char		 file[PATH_MAX], wal[PATH_MAX], ok[32];
	struct db	*db;
	struct stat	 sb;
	uint64_t	 before;
	int		 i, stored = 0;

	path_of(file, sizeof(file), "ckpt.db");
	path_of(wal, sizeof(wal), "ckpt.db-wal");
	if ((db = db_open(file, SYNC_NORMAL)) == NULL) {
		check("checkpoint-thread", 0, "db_open failed");
		return;
	}
	db_background(db);
	before = sq_vfs_frames();
	for (i = 0; i < 3000; i++) {
		stored += store(db, A, 9000 + i, ROLE_USER,
		    "a message for the checkpoint thread", 100 + i,
		    NULL) == 0;
		if (i % 100 == 99)
			usleep(20000);	/* as clients do, not flat out */
	}
	for (i = 0; i < 500 && db_checkpoints(db) == 0; i++)
		usleep(10000);
	check("checkpoint-thread-ran", stored == 3000 &&
	    db_checkpoints(db) > 0, "no checkpoint in the thread");
	check("checkpoint-wal-over", stat(wal, &sb) == 0 &&
	    (uint64_t)sb.st_size / 4096 < (sq_vfs_frames() - before) / 2,
	    "the WAL did not start over");
	before = sq_vfs_frames();
	for (i = 0; i < 6000; i++)
		stored += store(db, A, 20000 + i, ROLE_USER,
		    "a message flat out", 100 + i, NULL) == 0;
	check("checkpoint-wal-bound", stored == 9000 && stat(wal, &sb) == 0 &&
	    sb.st_size <= 17000 * 4120 && sq_vfs_frames() - before > 17000,
	    "the WAL grew past its bound");
	db_close(db);
	check("checkpoint-closed", stat(wal, &sb) == -1 &&
	    q_int(file, "SELECT count(*) FROM messages WHERE msgkey >= 9000")
	    == 9000 && (q_text(file, "PRAGMA integrity_check", ok,
	    sizeof(ok)), strcmp(ok, "ok") == 0),
	    "the file after closing is not whole");
}

/* What db_open must not touch. */
static void
t_refuse(void)
{
	char		 file[PATH_MAX], target[PATH_MAX];
	struct db	*db;
	int		 fd;

	path_of(file, sizeof(file), "newer.db");
	q_exec(file, "PRAGMA user_version = 99");
	db = db_open(file, SYNC_NORMAL);
	check("refuse-newer", db == NULL, "opened a newer schema");
	check("refuse-newer-untouched", q_int(file, "PRAGMA user_version") ==
	    99 && q_int(file, "SELECT count(*) FROM sqlite_master") == 0,
	    "a newer database was changed");
	db_close(db);

	path_of(file, sizeof(file), "foreign.db");
	q_exec(file, "PRAGMA application_id = 1234");
	db = db_open(file, SYNC_NORMAL);
	check("refuse-foreign", db == NULL, "opened another program's file");
	db_close(db);

	path_of(file, sizeof(file), "garbage.db");
	if ((fd = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0600)) != -1) {
		(void)write(fd, "this is not a database, not at all....."
		    "...........................................", 80);
		close(fd);
	}
	db = db_open(file, SYNC_NORMAL);
	check("refuse-garbage", db == NULL, "opened a file of garbage");
	db_close(db);

	path_of(file, sizeof(file), "nodir/x.db");
	db = db_open(file, SYNC_NORMAL);
	check("refuse-nodir", db == NULL, "opened in a missing directory");
	db_close(db);

	/* Root opens the database: links are refused, never followed. */
	path_of(file, sizeof(file), "link.db");
	path_of(target, sizeof(target), "new.db");
	db = NULL;
	if (symlink(target, file) == 0)
		db = db_open(file, SYNC_NORMAL);
	check("refuse-symlink", db == NULL, "opened through a symbolic link");
	db_close(db);
}

/* Handing the files to the user does not follow a planted link. */
static void
t_chown(void)
{
	char		 file[PATH_MAX], shm[PATH_MAX], victim[PATH_MAX];
	struct db	*db;
	struct stat	 sb;
	int		 fd;

	if (geteuid() != 0) {
		printf("skip chown: needs root\n");
		return;
	}
	path_of(file, sizeof(file), "own.db");
	path_of(shm, sizeof(shm), "own.db-shm");
	path_of(victim, sizeof(victim), "victim");
	if ((fd = open(victim, O_CREAT | O_WRONLY, 0600)) != -1)
		close(fd);
	if ((db = db_open(file, SYNC_NORMAL)) == NULL) {
		check("chown", 0, "db_open failed");
		return;
	}
	check("chown", db_chown(db, 65534, 65534) == 0 &&
	    stat(file, &sb) == 0 && sb.st_uid == 65534 &&
	    stat(shm, &sb) == 0 && sb.st_uid == 65534,
	    "database and -shm not handed over");
	/* The mapping stays; the name now points elsewhere. */
	unlink(shm);
	if (symlink(victim, shm) == -1) {
		check("chown-nofollow", 0, "cannot plant a link");
		db_close(db);
		return;
	}
	(void)db_chown(db, 65534, 65534);
	check("chown-nofollow", stat(victim, &sb) == 0 && sb.st_uid == 0,
	    "chown followed a link to another file");
	unlink(shm);
	db_close(db);
}

/* A file of version 1 as the brief defines it, with rows in it. */
static void
t_migrate_v1(void)
{
	char		 file[PATH_MAX];
	struct db	*db;
	struct got	 g;
	uint64_t	 n = 0;
	int		 cut;
	static const char *const want[] = { "old summary 2", "m3", "m4" };

	path_of(file, sizeof(file), "v1.db");
	if (q_exec(file,
	    "CREATE TABLE messages (id INTEGER PRIMARY KEY, client_id TEXT"
	    " NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, timestamp"
	    " INTEGER NOT NULL, model TEXT, tokens INTEGER, msgkey INTEGER);"
	    "CREATE UNIQUE INDEX messages_key ON messages (client_id, msgkey);"
	    "CREATE INDEX messages_client ON messages (client_id, id);"
	    "CREATE TABLE summaries (id INTEGER PRIMARY KEY, client_id TEXT"
	    " NOT NULL, summary_text TEXT NOT NULL, created_at INTEGER"
	    " NOT NULL);"
	    "INSERT INTO messages VALUES (1, '" A "', 'user', 'm1', 100, NULL,"
	    " NULL, 11), (2, '" A "', 'model', 'm2', 101, 'g', 5, 12),"
	    " (3, '" A "', 'user', 'm3', 200, NULL, NULL, 13),"
	    " (4, '" A "', 'model', 'm4', 201, 'g', 5, 14);"
	    "INSERT INTO summaries VALUES (1, '" A "', 'old summary 1', 50),"
	    " (2, '" A "', 'old summary 2', 150);"
	    "PRAGMA user_version = 1;") == -1) {
		check("migrate-v1", 0, "cannot build a version 1 file");
		return;
	}
	db = db_open(file, SYNC_NORMAL);
	check("migrate-v1", db != NULL && q_int(file, "PRAGMA user_version") ==
	    DB_VERSION, "version 1 not migrated");
	if (db == NULL)
		return;
	check("migrate-v1-rows", q_int(file, "SELECT count(*) FROM messages")
	    == 4 && q_int(file, "SELECT count(*) FROM summaries") == 2,
	    "rows lost");
	check("migrate-v1-last", q_int(file, "SELECT last_msg FROM summaries"
	    " WHERE id = 2") == 2 && q_int(file, "SELECT last_msg FROM"
	    " summaries WHERE id = 1") == 0, "last_msg not derived from time");
	memset(&g, 0, sizeof(g));
	check("migrate-v1-context", db_context(db, A, cv(db, A), 100, 1 << 20,
	    collect,
	    &g, &n, &cut) == 0 && got_is(&g, want, 3) && n == 3 &&
	    g.role[0] == ROLE_SUMMARY && g.role[1] == ROLE_USER &&
	    g.role[2] == ROLE_MODEL, "context after migration is wrong");
	got_free(&g);
	check("migrate-v1-dedupe", store(db, A, 13, ROLE_USER, "again", 300,
	    NULL) == 1, "an old key is not deduped");
	db_close(db);
}

/*
 * A database as bridged 0.1 wrote it (schema version 3): the tables
 * of versions 1 to 3 exactly as that release made them, with the rows
 * of two identities. Kept here so the migration is always tested on
 * the real thing.
 */
static const char v3_schema[] =
	"CREATE TABLE messages ( id INTEGER PRIMARY KEY, client_id TEXT"
	" NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL, timestamp"
	" INTEGER NOT NULL, model TEXT, tokens INTEGER, msgkey INTEGER);"
	"CREATE TABLE summaries ( id INTEGER PRIMARY KEY, client_id TEXT"
	" NOT NULL, summary_text TEXT NOT NULL, created_at INTEGER NOT NULL,"
	" last_msg INTEGER NOT NULL DEFAULT 0, msgkey INTEGER);"
	"CREATE UNIQUE INDEX messages_key ON messages (client_id, msgkey);"
	"CREATE INDEX messages_client ON messages (client_id, id);"
	"CREATE INDEX summaries_client ON summaries (client_id, id);"
	"CREATE UNIQUE INDEX summaries_key ON summaries (client_id, msgkey);"
	"PRAGMA application_id = 1651664740;"
	"PRAGMA user_version = 3;";

/* Make a version 3 file with rows of A and B. */
static int
make_v3(const char *file)
{
	if (q_exec(file, v3_schema) == -1)
		return (-1);
	return (q_exec(file,
	    "INSERT INTO messages VALUES"
	    " (1, '" A "', 'user', 'apples are red', 100, 'g', NULL, 11),"
	    " (2, '" A "', 'model', 'yes they are', 101, 'g', 5, 12),"
	    " (3, '" B "', 'user', 'bananas are yellow', 150, 'g', NULL, 13),"
	    " (4, '" A "', 'user', 'pears are green', 200, 'g', NULL, 14),"
	    " (5, '" A "', 'model', 'indeed', 201, 'g', 5, 15);"
	    "INSERT INTO summaries VALUES"
	    " (1, '" A "', 'A likes apples', 150, 2, 21),"
	    " (2, '" B "', 'B likes bananas', 160, 3, 22);"));
}

/* One search's snippets, joined by "|". */
static int
match_cb(const struct db_match *m, void *arg)
{
	char	*out = arg;

	if (*out != '\0')
		(void)strlcat(out, "|", 512);
	(void)strncat(out, m->text, 511 - strlen(out) < m->len ?
	    511 - strlen(out) : m->len);
	return (0);
}

/* Search: 1 and the snippets in out when no error. */
static int
search(struct db *db, const char *client, const char *words, char *out,
    uint64_t *n)
{
	out[0] = '\0';
	return (db_search(db, client, words, 20, match_cb, out, n) == 0);
}

/* Version 3 (the current release) migrates in place to conversations. */
static void
t_migrate_v3(void)
{
	char		 file[PATH_MAX], out[512];
	struct db	*db;
	struct db_conv	 c;
	struct got	 g;
	uint64_t	 n = 0;
	int		 cut;
	static const char *const want[] = { "A likes apples",
	    "pears are green", "indeed" };

	path_of(file, sizeof(file), "v3.db");
	if (make_v3(file) == -1) {
		check("migrate-v3", 0, "cannot build a version 3 file");
		return;
	}
	db = db_open(file, SYNC_NORMAL);
	check("migrate-v3", db != NULL && q_int(file, "PRAGMA user_version") ==
	    DB_VERSION, "version 3 not migrated");
	if (db == NULL)
		return;
	check("migrate-v3-one-each", q_int(file, "SELECT count(*) FROM"
	    " conversations") == 2 && q_int(file, "SELECT count(DISTINCT"
	    " client_id) FROM conversations") == 2,
	    "not one conversation per identity");
	check("migrate-v3-owned", q_int(file, "SELECT count(*) FROM messages m"
	    " JOIN conversations c ON c.id = m.conversation_id AND"
	    " c.client_id = m.client_id") == 5 && q_int(file, "SELECT count(*)"
	    " FROM summaries s JOIN conversations c ON c.id ="
	    " s.conversation_id AND c.client_id = s.client_id") == 2,
	    "rows not in their identity's conversation");
	check("migrate-v3-last-use", db_conv_last(db, A, &c) == DB_FOUND &&
	    c.last_used == 201 && c.created == 100 && c.messages == 4 &&
	    c.name[0] == '\0' && c.model[0] == '\0',
	    "the first conversation's times or count are wrong");
	memset(&g, 0, sizeof(g));
	check("migrate-v3-context", db_context(db, A, c.id, 100, 1 << 20,
	    collect, &g, &n, &cut) == 0 && got_is(&g, want, 3),
	    "context after migration is wrong");
	got_free(&g);
	check("migrate-v3-search", search(db, A, "green", out, &n) && n == 1 &&
	    strstr(out, "pears") != NULL, "old messages are not searchable");
	check("migrate-v3-search-own", search(db, A, "bananas", out, &n) &&
	    n == 0, "a search found another identity's message");
	check("migrate-v3-dedupe", store(db, A, 14, ROLE_USER, "again", 300,
	    NULL) == 1, "an old key is not deduped");
	db_close(db);
	/* Opened again, nothing more happens. */
	db = db_open(file, SYNC_NORMAL);
	check("migrate-v3-again", db != NULL && q_int(file, "SELECT count(*)"
	    " FROM conversations") == 2, "a second open changed it");
	db_close(db);
}

/*
 * Version 8's search index: messages waiting in search_pending, with
 * the triggers that kept it, as that version made them.
 */
static const char v8_search[] =
	"DROP TRIGGER messages_fts_insert;"
	"DROP TRIGGER messages_fts_delete;"
	"DROP TRIGGER messages_fts_update;"
	"DROP TABLE search_mark;"
	"CREATE TABLE search_pending (id INTEGER PRIMARY KEY);"
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
	" INSERT OR IGNORE INTO search_pending (id) VALUES (new.id); END;"
	"PRAGMA user_version = 8;";

/*
 * Version 8 to 9: what waited in search_pending is indexed, the mark
 * is set above every message, and search_pending goes.
 */
static void
t_migrate_v8(void)
{
	char		 file[PATH_MAX], out[512];
	struct db	*db;
	uint64_t	 n = 0;

	path_of(file, sizeof(file), "v8.db");
	if (make_v3(file) == -1 || (db = db_open(file, SYNC_NORMAL)) == NULL) {
		check("migrate-v8", 0, "cannot build a version 8 file");
		return;
	}
	db_close(db);
	if (q_exec(file, v8_search) == -1 || q_exec(file, "INSERT INTO"
	    " messages (client_id, role, content, timestamp, msgkey,"
	    " conversation_id) SELECT client_id, 'user', 'kiwi waiting', 300,"
	    " 31, conversation_id FROM messages WHERE id = 1") == -1 ||
	    q_int(file, "SELECT count(*) FROM search_pending") != 1) {
		check("migrate-v8", 0, "cannot build a version 8 file");
		return;
	}
	db = db_open(file, SYNC_NORMAL);
	check("migrate-v8", db != NULL && q_int(file, "PRAGMA user_version") ==
	    DB_VERSION && q_int(file, "SELECT count(*) FROM sqlite_schema"
	    " WHERE name = 'search_pending'") == 0, "version 8 not migrated");
	if (db == NULL)
		return;
	check("migrate-v8-indexed", q_int(file, "SELECT count(*) FROM"
	    " messages_fts WHERE messages_fts MATCH 'kiwi'") == 1 &&
	    q_int(file, "SELECT upto FROM search_mark") == 6 &&
	    fts_in_step(file) == 1,
	    "what waited in search_pending was not indexed");
	check("migrate-v8-search", search(db, A, "kiwi", out, &n) && n == 1 &&
	    search(db, A, "green", out, &n) && n == 1,
	    "messages are not found after the migration");
	db_close(db);
}

/* Conversations: names, ownership, listing, setting, deleting. */
static void
t_conversations(struct db *db, const char *file)
{
	struct db_conv	 c, d, e;
	struct got	 g;
	char		 ref[32], out[512];
	uint64_t	 n = 0;
	int64_t		 r;
	int		 cut;

	check("conv-new", db_conv_new(db, A, "work", "gm", "", "", 5000, &c) ==
	    0 && c.id > 0 && strcmp(c.name, "work") == 0,
	    "a named conversation was not made");
	check("conv-dup", db_conv_new(db, A, "work", "gm", "", "", 5001, &d) ==
	    DB_EXISTS, "a duplicate name was accepted");
	check("conv-same-name-other", db_conv_new(db, B, "work", "", "", "",
	    5002, &e) == 0 && e.id != c.id,
	    "another identity cannot use the same name");
	check("conv-bad-name", db_conv_new(db, A, "a b", "", "", "", 5003,
	    &d) == -1 && db_conv_new(db, A, "x/y", "", "", "", 5003, &d) ==
	    -1, "a bad name was accepted");
	snprintf(ref, sizeof(ref), "%lld", (long long)c.id);
	check("conv-find-id", db_conv_find(db, A, ref, &d) == DB_FOUND &&
	    d.id == c.id, "not found by id");
	check("conv-find-name", db_conv_find(db, A, "work", &d) == DB_FOUND &&
	    d.id == c.id, "not found by name");
	check("conv-find-other-id", db_conv_find(db, B, ref, &d) == DB_NONE,
	    "another identity's id was found");
	check("conv-find-other-name", db_conv_find(db, B, "work", &d) ==
	    DB_FOUND && d.id == e.id, "a name resolved across identities");
	check("conv-find-none", db_conv_find(db, A, "nope", &d) == DB_NONE &&
	    db_conv_find(db, A, "99999999", &d) == DB_NONE,
	    "a missing conversation was found");

	/* Messages go to the conversation named, only if it is theirs. */
	check("conv-store", db_store(db, A, c.id, 70001, ROLE_USER, "gm", 0,
	    "zebra crossing", 14, 5100, &r) == 0 && db_store(db, A, c.id,
	    70002, ROLE_MODEL, "gm", 0, "stripes", 7, 5101, &r) == 0,
	    "cannot store in a named conversation");
	check("conv-store-other", db_store(db, B, c.id, 70003, ROLE_USER, "",
	    0, "intruder", 8, 5102, &r) == -1,
	    "stored in another identity's conversation");
	check("conv-summary-other", db_summary(db, B, c.id, 70004, "x", 1,
	    5103, 50, &r) == -1, "summary in another's conversation");
	memset(&g, 0, sizeof(g));
	check("conv-history-other", db_history(db, B, c.id,
	    HISTORY_MESSAGES, 10, 1 << 20, collect, &g, &n, &cut) == 0 &&
	    g.n == 0, "history of another identity's conversation");
	got_free(&g);
	check("conv-last-used", db_conv_last(db, A, &d) == DB_FOUND &&
	    d.id == c.id && d.last_used == 5101 && d.messages == 2,
	    "storing did not make it the most recently used");

	check("conv-set", db_conv_set(db, A, c.id, CONV_MODEL | CONV_SYSTEM,
	    "other", "be brief", "", 5200) == 1 && db_conv_find(db, A, "work",
	    &d) == DB_FOUND && strcmp(d.model, "other") == 0 &&
	    strcmp(d.system, "be brief") == 0, "fields not set");
	check("conv-set-mask", db_conv_set(db, A, c.id, CONV_ROLE, "x", "y",
	    "critic", 5201) == 1 && db_conv_find(db, A, "work", &d) ==
	    DB_FOUND && strcmp(d.model, "other") == 0 &&
	    strcmp(d.role, "critic") == 0, "fields outside the mask changed");
	check("conv-set-other", db_conv_set(db, B, c.id, CONV_MODEL, "evil",
	    "", "", 5202) == 0, "another identity set a field");

	check("conv-delete-other", db_conv_delete(db, B, c.id, &n) == 0 &&
	    q_int(file, "SELECT count(*) FROM messages WHERE"
	    " content = 'zebra crossing'") == 1,
	    "another identity deleted a conversation");
	check("conv-search-before", search(db, A, "zebra", out, &n) && n == 1,
	    "a new message is not searchable");
	check("conv-delete", db_conv_delete(db, A, c.id, &n) == 1 && n == 2 &&
	    db_conv_find(db, A, "work", &d) == DB_NONE,
	    "the conversation or its messages remain");
	check("conv-delete-search", search(db, A, "zebra", out, &n) && n == 0,
	    "a deleted message is still found");
	if (!is_pg(file))
		check("conv-delete-fts", fts_in_step(file) == 1,
		    "the full-text index is not in step");
}

/* SEARCH words with FTS5 syntax: searched literally, never an error. */
static void
t_search(struct db *db)
{
	static const char *const words[] = {
		"\"", "*", "NEAR", "NEAR(a b)", "(", ")", "((", "a OR b",
		"-x", "^start", "col:val", "\"unbalanced", "AND", "NOT x",
		"+", "{a b}", "x*y", "'", "\\", "%_"
	};
	char		 out[512];
	uint64_t	 n;
	size_t		 i;
	int		 ok = 1;

	(void)store(db, A, 80001, ROLE_USER, "the C* language (draft) says"
	    " \"quoted\" NEAR the end OR not", 9000, NULL);
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!search(db, A, words[i], out, &n)) {
			ok = 0;
			printf("# search %s failed\n", words[i]);
		}
	check("search-syntax", ok, "a word with FTS5 syntax was an error");
	check("search-literal-near", search(db, A, "NEAR", out, &n) &&
	    n == 1 && strstr(out, "NEAR") != NULL, "NEAR not found as a word");
	check("search-literal-or", search(db, A, "OR", out, &n) && n == 1,
	    "OR not found as a word");
	check("search-literal-quote", search(db, A, "\"quoted\"", out, &n) &&
	    n == 1, "a quoted word not found");
	check("search-literal-paren", search(db, A, "(draft", out, &n) &&
	    n == 1, "a word with a parenthesis not found");
	check("search-and", search(db, A, "language end", out, &n) && n == 1 &&
	    search(db, A, "language zebra", out, &n) && n == 0,
	    "words are not all required");
	check("search-star-alone", search(db, A, "*", out, &n) && n == 0,
	    "a lone star matched");
	check("search-other", search(db, B, "language", out, &n) && n == 0,
	    "another identity's message was found");
	check("search-empty", db_search(db, A, "", 20, match_cb, out, &n) ==
	    -1, "empty words were searched");
}

/* The index follows a rolled back write: nothing of it is found. */
static void
t_search_rollback(struct db *db)
{
	char		 out[512];
	uint64_t	 n;

	if (db_begin(db) == -1) {
		check("search-rollback", 0, "cannot begin");
		return;
	}
	(void)store(db, A, 80002, ROLE_USER, "ephemeral quokka", 9100, NULL);
	db_rollback(db);
	check("search-rollback", search(db, A, "quokka", out, &n) && n == 0,
	    "a rolled back message is found");
}

/* Messages of the file above the search mark: those waiting. */
#define ABOVE_MARK	"SELECT count(*) FROM messages WHERE id >" \
			" (SELECT upto FROM search_mark)"

/*
 * SQLite indexes messages for search in batches: a stored message
 * waits above search_mark until a batch is whole or a search comes;
 * one deleted while it waits leaves the index in step, and one stored
 * below the mark (its id freed at the top) is indexed at once.
 */
static void
t_search_batch(struct db *db, const char *file)
{
	struct db_conv	 c;
	char		 out[512], text[64];
	uint64_t	 n, i;
	int64_t		 r, freed;
	int		 ok = 1;

	if (is_pg(file))
		return;
	/* Ids freed at the top by the tests before come again first. */
	freed = q_int(file, "SELECT upto - (SELECT coalesce(max(id), 0)"
	    " FROM messages) FROM search_mark");
	for (i = 0; (int64_t)i < freed && i < 1000; i++)
		(void)store(db, A, 80500 + i, ROLE_USER, "filler", 9199, NULL);
	(void)store(db, A, 81001, ROLE_USER, "wombat burrow", 9200, NULL);
	check("search-batch-waits", q_int(file, ABOVE_MARK) >= 1 &&
	    q_int(file, "SELECT count(*) FROM messages_fts WHERE"
	    " messages_fts MATCH 'wombat'") == 0 && fts_in_step(file) == 1,
	    "a stored message was indexed one by one");
	check("search-batch-search", search(db, A, "wombat", out, &n) &&
	    n == 1 && q_int(file, ABOVE_MARK) == 0,
	    "a search did not index what waited first");
	if (db_conv_new(db, A, "doomed", "", "", "", 9300, &c) != 0 ||
	    db_store(db, A, c.id, 81002, ROLE_USER, "gm", 0, "numbat den",
	    10, 9301, &r) != 0 || db_conv_delete(db, A, c.id, &n) != 1)
		ok = 0;
	check("search-batch-delete", ok && search(db, A, "numbat", out, &n) &&
	    n == 0 && fts_in_step(file) == 1,
	    "a message deleted before it was indexed broke the index");
	for (i = 0, ok = 1; i < 128 && ok; i++) {
		(void)snprintf(text, sizeof(text), "quoll number %llu",
		    (unsigned long long)i);
		ok = store(db, A, 82000 + i, ROLE_USER, text, 9400, NULL) == 0;
	}
	check("search-batch-whole", ok && q_int(file, ABOVE_MARK) < 128 &&
	    q_int(file, "SELECT count(*) FROM messages_fts WHERE"
	    " messages_fts MATCH 'quoll'") >= 1 && fts_in_step(file) == 1,
	    "a whole batch was not indexed");
	/* The top messages indexed, then deleted: their ids come again. */
	ok = db_conv_new(db, A, "top", "", "", "", 9500, &c) == 0 &&
	    db_store(db, A, c.id, 83001, ROLE_USER, "gm", 0, "dingo one",
	    9, 9501, &r) == 0 && db_store(db, A, c.id, 83002, ROLE_USER,
	    "gm", 0, "dingo two", 9, 9502, &r) == 0 &&
	    search(db, A, "dingo", out, &n) && n == 2 &&
	    db_conv_delete(db, A, c.id, &n) == 1;
	check("search-batch-delete-indexed", ok && search(db, A, "dingo", out,
	    &n) && n == 0 && fts_in_step(file) == 1,
	    "an indexed message deleted is still in the index");
	ok = store(db, A, 83003, ROLE_USER, "echidna spines", 9600, &r) == 0;
	check("search-batch-reused-id", ok && r <= q_int(file, "SELECT upto"
	    " FROM search_mark") && q_int(file, "SELECT count(*) FROM"
	    " messages_fts WHERE messages_fts MATCH 'echidna'") == 1 &&
	    search(db, A, "echidna", out, &n) && n == 1 &&
	    fts_in_step(file) == 1,
	    "a message stored under the mark was not indexed");
}

/* A messages table of the original bridge, without version or keys. */
static void
t_legacy(void)
{
	char		 file[PATH_MAX];
	struct db	*db;
	struct got	 g;
	uint64_t	 n;
	int		 cut;
	static const char *const want[] = { "hello", "hi there" };

	path_of(file, sizeof(file), "legacy.db");
	q_exec(file, "CREATE TABLE messages (id INTEGER PRIMARY KEY,"
	    " client_id TEXT, role TEXT, content TEXT, timestamp INTEGER);"
	    "INSERT INTO messages VALUES (1, '" B "', 'user', 'hello', 10),"
	    " (2, '" B "', 'assistant', 'hi there', 11);");
	db = db_open(file, SYNC_NORMAL);
	check("legacy", db != NULL && q_int(file, "SELECT count(*) FROM"
	    " pragma_table_info('messages') WHERE name = 'msgkey'") == 1,
	    "original bridge database not adopted");
	if (db == NULL)
		return;
	memset(&g, 0, sizeof(g));
	check("legacy-history", db_history(db, B, cv(db, B), HISTORY_MESSAGES,
	    10,
	    1 << 20, collect, &g, &n, &cut) == 0 && got_is(&g, want, 2) &&
	    g.role[1] == ROLE_MODEL, "old rows not readable");
	got_free(&g);
	db_close(db);
}

/* Messages, dedupe by key, and refused texts. */
static void
t_store(struct db *db, const char *file)
{
	struct db_conv	 c;
	int64_t		 r1 = 0, r2 = 0, r3 = 0;
	uint64_t	 n = 0;
	char		 big[64];

	check("store", store(db, A, 42, ROLE_USER, "question", 1000, &r1) ==
	    0 && r1 > 0, "store failed");
	check("dedupe", store(db, A, 42, ROLE_USER, "question", 1001, &r2) ==
	    1 && r2 == r1, "duplicate key stored twice");
	check("dedupe-per-client", store(db, B, 42, ROLE_USER, "other", 1002,
	    &r3) == 0 && r3 != r1, "same key of another client deduped");
	check("dedupe-per-conversation", db_conv_new(db, A, "keys", "", "",
	    "", 1002, &c) == 0 && db_store(db, A, c.id, 42, ROLE_USER,
	    NULL, 0, "elsewhere", 9, 1002, &r3) == 0 && r3 != r1 &&
	    db_store(db, A, c.id, 42, ROLE_USER, NULL, 0, "elsewhere", 9,
	    1003, &r2) == 1 && r2 == r3,
	    "a key is not one message per conversation");
	(void)db_conv_delete(db, A, c.id, &n);
	check("count", db_count(db, A, &n) == 0 && n == 1,
	    "count of A is not 1");
	check("store-model-row", q_int(file, "SELECT tokens FROM messages"
	    " WHERE msgkey = 42 AND client_id = '" A "'") == 7,
	    "tokens not stored");
	check("store-huge-key", store(db, A, UINT64_MAX, ROLE_MODEL, "k",
	    1003, &r1) == 0 && store(db, A, UINT64_MAX, ROLE_MODEL, "k", 1004,
	    &r2) == 1 && r1 == r2, "a 64-bit key is not deduped");

	check("reject-nul", db_store(db, A, cv(db, A), 50, ROLE_USER, NULL, 0,
	    "a\0b", 3,
	    1, &r1) == -1, "text with NUL stored");
	check("reject-utf8", db_store(db, A, cv(db, A), 51, ROLE_USER, NULL, 0,
	    "\xc3\x28", 2, 1, &r1) == -1, "invalid UTF-8 stored");
	check("reject-role", db_store(db, A, cv(db, A), 52, ROLE_SUMMARY, NULL,
	    0, "s",
	    1, 1, &r1) == -1, "a message with role summary stored");
	check("reject-long", !db_text_valid(big, (size_t)DB_TEXT_MAX + 1),
	    "a text over DB_TEXT_MAX is valid");
	check("reject-nothing-stored", q_int(file, "SELECT count(*) FROM"
	    " messages WHERE msgkey IN (50, 51, 52)") == 0,
	    "a rejected message is in the table");
}

/* Rows are seen by others only after COMMIT; ROLLBACK leaves none. */
static void
t_transaction(struct db *db, const char *file)
{
	int64_t	 r;
	int	 i, ok = 1;

	check("tx-begin", db_begin(db) == 0, "BEGIN failed");
	for (i = 0; i < 10; i++)
		if (store(db, B, 1000 + i, ROLE_USER, "grouped", 2000, &r) != 0)
			ok = 0;
	check("tx-unseen", ok && q_int(file, "SELECT count(*) FROM messages"
	    " WHERE content = 'grouped'") == 0,
	    "rows visible before COMMIT");
	check("tx-commit", db_commit(db) == 0 && q_int(file, "SELECT count(*)"
	    " FROM messages WHERE content = 'grouped'") == 10,
	    "rows not there after COMMIT");

	check("tx-begin2", db_begin(db) == 0, "BEGIN failed");
	store(db, B, 2000, ROLE_USER, "rolled back", 2001, &r);
	db_rollback(db);
	check("tx-rollback", q_int(file, "SELECT count(*) FROM messages"
	    " WHERE content = 'rolled back'") == 0, "rollback kept a row");
	check("tx-rollback-key", store(db, B, 2000, ROLE_USER, "again", 2002,
	    &r) == 0, "a rolled back key still dedupes");
}

/* Summaries kept to the newest `keep' per identity. */
static void
t_summaries(struct db *db, const char *file)
{
	struct got	 g;
	uint64_t	 n;
	int64_t		 r, last = 0;
	int		 i, cut, ok = 1;
	char		 text[32];
	static const char *const want[] = { "summary 4", "summary 5",
	    "summary 6" };

	for (i = 0; i < 7; i++) {
		snprintf(text, sizeof(text), "summary %d", i);
		if (db_summary(db, B, cv(db, B), 100 + i, text, strlen(text),
		    3000 + i,
		    3, &r) != 0 || r <= last)
			ok = 0;
		last = r;
	}
	check("summary-store", ok, "db_summary failed");
	check("summary-trim", q_int(file, "SELECT count(*) FROM summaries"
	    " WHERE client_id = '" B "'") == 3, "not trimmed to 3");
	memset(&g, 0, sizeof(g));
	check("summary-trim-newest", db_history(db, B, cv(db, B),
	    HISTORY_SUMMARIES, 10,
	    1 << 20, collect, &g, &n, &cut) == 0 && got_is(&g, want, 3) &&
	    g.role[0] == ROLE_SUMMARY && g.time[2] == 3006,
	    "the newest three are not what is left");
	got_free(&g);
	check("summary-other-client", db_summary(db, A, cv(db, A), 100, "a's",
	    3, 3100,
	    3, &r) == 0 && q_int(file, "SELECT count(*) FROM summaries WHERE"
	    " client_id = '" B "'") == 3, "trimming touched another client");
	check("summary-empty", db_summary(db, A, cv(db, A), 7, "", 0, 1, 3,
	    &r) == -1,
	    "an empty summary stored");
	check("summary-keep-zero", db_summary(db, A, cv(db, A), 101, "only", 4,
	    3101, 0,
	    &r) == 0 && q_int(file, "SELECT count(*) FROM summaries WHERE"
	    " client_id = '" A "'") == 1, "keep 0 did not keep the new one");
	check("summary-dedupe", db_summary(db, A, cv(db, A), 101, "only", 4,
	    3102, 50,
	    &r) == 0 && r == 0 && q_int(file, "SELECT count(*) FROM summaries"
	    " WHERE client_id = '" A "'") == 1,
	    "a resent summary stored twice");
}

/* HISTORY: the newest N, oldest first, within the bounds. */
static void
t_history(struct db *db)
{
	const char	*c = "cccccccccccccccccccccccccccccccc"
			    "cccccccccccccccccccccccccccccccc";
	struct got	 g;
	uint64_t	 n;
	int		 i, cut;
	char		 text[32];
	static const char *const last3[] = { "h2", "h3", "h4" };
	static const char *const fit[] = { "h3", "h4" };

	for (i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "h%d", i);
		store(db, c, 5000 + i, i % 2 ? ROLE_MODEL : ROLE_USER, text,
		    4000 + i, NULL);
	}
	memset(&g, 0, sizeof(g));
	check("history-order", db_history(db, c, cv(db, c), HISTORY_MESSAGES, 3,
	    1 << 20,
	    collect, &g, &n, &cut) == 0 && got_is(&g, last3, 3) && n == 3 &&
	    g.role[0] == ROLE_USER && g.role[1] == ROLE_MODEL &&
	    g.time[0] == 4002 && cut == DB_CUT_ITEMS,
	    "not the last three, oldest first");
	got_free(&g);
	check("history-all", db_history(db, c, cv(db, c), HISTORY_MESSAGES, 100,
	    1 << 20,
	    collect, &g, &n, &cut) == 0 && g.n == 5 && cut == 0,
	    "not all five");
	got_free(&g);
	check("history-bytes", db_history(db, c, cv(db, c), HISTORY_MESSAGES,
	    100, 5,
	    collect, &g, &n, &cut) == 0 && got_is(&g, fit, 2) &&
	    cut == DB_CUT_BYTES, "byte bound not applied newest first");
	got_free(&g);
	check("history-zero", db_history(db, c, cv(db, c), HISTORY_MESSAGES, 0,
	    1 << 20,
	    collect, &g, &n, &cut) == 0 && g.n == 0, "HISTORY 0 gave rows");
	got_free(&g);
	check("history-none", db_history(db, "nobody", cv(db, "nobody"),
	    HISTORY_MESSAGES, 10,
	    1 << 20, collect, &g, &n, &cut) == 0 && g.n == 0 && n == 0,
	    "rows for an unknown client");
	got_free(&g);
}

/* CONTEXT: the last summary, then what came after it. */
static void
t_context(struct db *db)
{
	const char	*d = "dddddddddddddddddddddddddddddddd"
			    "dddddddddddddddddddddddddddddddd";
	struct got	 g;
	uint64_t	 n;
	int64_t		 r;
	int		 cut;
	static const char *const before[] = { "p1", "a1" };
	static const char *const after[] = { "sum", "p2", "a2" };
	static const char *const newest[] = { "sum", "a2" };

	memset(&g, 0, sizeof(g));
	check("context-empty", db_context(db, d, cv(db, d), 100, 1 << 20,
	    collect, &g,
	    &n, &cut) == 0 && g.n == 0 && n == 0, "context of nobody");
	/* Everything in the same second: the summary still splits it. */
	store(db, d, 1, ROLE_USER, "p1", 7000, NULL);
	store(db, d, 2, ROLE_MODEL, "a1", 7000, NULL);
	check("context-no-summary", db_context(db, d, cv(db, d), 100, 1 << 20,
	    collect,
	    &g, &n, &cut) == 0 && got_is(&g, before, 2) && n == 2,
	    "without a summary, not every message");
	got_free(&g);
	db_summary(db, d, cv(db, d), 1, "sum", 3, 7000, 50, &r);
	store(db, d, 3, ROLE_USER, "p2", 7000, NULL);
	store(db, d, 4, ROLE_MODEL, "a2", 7000, NULL);
	check("context-since-summary", db_context(db, d, cv(db, d), 100,
	    1 << 20,
	    collect, &g, &n, &cut) == 0 && got_is(&g, after, 3) && n == 3 &&
	    g.role[0] == ROLE_SUMMARY && cut == 0,
	    "not the summary and what came after it");
	got_free(&g);
	check("context-items-bound", db_context(db, d, cv(db, d), 2, 1 << 20,
	    collect,
	    &g, &n, &cut) == 0 && got_is(&g, newest, 2) &&
	    cut == DB_CUT_ITEMS, "item bound did not keep the newest");
	got_free(&g);
	check("context-bytes-bound", db_context(db, d, cv(db, d), 100, 5,
	    collect, &g,
	    &n, &cut) == 0 && got_is(&g, newest, 2) && cut == DB_CUT_BYTES,
	    "byte bound did not keep the newest");
	got_free(&g);
	check("context-isolated", db_context(db, A, cv(db, A), 100, 1 << 20,
	    collect,
	    &g, &n, &cut) == 0 && g.n > 0 && strcmp(g.text[0], "only") == 0,
	    "context of one client shows another's");
	got_free(&g);
}

/* Resolving a prefix, export pages, purge. */
static void
t_control(struct db *db)
{
	char		 id[IDENTITY_LEN + 1];
	const char	*e1 = "e1000000000000000000000000000000"
			    "00000000000000000000000000000000";
	const char	*e2 = "e2000000000000000000000000000000"
			    "00000000000000000000000000000000";
	struct got	 g;
	int64_t		 after = 0, r;
	uint64_t	 rows;
	int		 i, ok = 1, pages = 0, rv;

	store(db, e1, 1, ROLE_USER, "e1 one", 8000, NULL);
	db_summary(db, e2, cv(db, e2), 2, "e2 summary", 10, 8001, 50, &r);
	check("resolve-unique", db_resolve(db, "e1", id, sizeof(id)) ==
	    DB_FOUND && strcmp(id, e1) == 0, "prefix e1 not resolved");
	check("resolve-summaries-only", db_resolve(db, "e2", id, sizeof(id))
	    == DB_FOUND && strcmp(id, e2) == 0,
	    "an identity with only summaries not found");
	check("resolve-full", db_resolve(db, e1, id, sizeof(id)) == DB_FOUND &&
	    strcmp(id, e1) == 0, "a whole identity not resolved");
	check("resolve-ambiguous", db_resolve(db, "e", id, sizeof(id)) ==
	    DB_AMBIGUOUS, "prefix e is not ambiguous");
	check("resolve-none", db_resolve(db, "f", id, sizeof(id)) == DB_NONE,
	    "prefix f found something");
	check("resolve-bad", db_resolve(db, "E1", id, sizeof(id)) == -1 &&
	    db_resolve(db, "", id, sizeof(id)) == -1, "a bad prefix taken");

	/* Pages of 2: five messages take three pages, in order. */
	for (i = 0; i < 4; i++)
		store(db, e1, 10 + i, ROLE_MODEL, "more", 8002 + i, NULL);
	memset(&g, 0, sizeof(g));
	while ((rv = db_export(db, e1, 0, 0, &after, 2, 1 << 20, collect,
	    &g)) == 1)
		if (++pages > 10)
			break;
	if (rv != 0 || g.n != 5 || pages != 2)
		ok = 0;
	for (i = 1; i < g.n; i++)
		if (g.id[i] <= g.id[i - 1])
			ok = 0;
	check("export-pages", ok && strcmp(g.text[0], "e1 one") == 0,
	    "pages of messages wrong");
	got_free(&g);
	after = 0;
	check("export-bytes", db_export(db, e1, 0, 0, &after, 100, 1, collect,
	    &g) == 1 && g.n == 1, "a page does not stop at its byte bound");
	got_free(&g);
	after = 0;
	check("export-summaries", db_export(db, e2, 0, 1, &after, 100, 1 << 20,
	    collect, &g) == 0 && g.n == 1 && g.role[0] == ROLE_SUMMARY,
	    "summaries not exported");
	got_free(&g);
	check("purge", db_purge(db, e1, &rows) == 0 && rows == 5 &&
	    db_resolve(db, "e1", id, sizeof(id)) == DB_NONE &&
	    db_resolve(db, "e", id, sizeof(id)) == DB_FOUND,
	    "purge did not delete exactly one identity's rows");
}

/* PRAGMA integrity_check on our own connection. */
static void
t_integrity(const char *file)
{
	char	 res[64];

	q_text(file, "PRAGMA integrity_check", res, sizeof(res));
	check("integrity", strcmp(res, "ok") == 0, res);
}

/*
 * The storage process itself: bridged -P storage, with this program
 * as its parent on fd 3 and as its workers on channels passed to it.
 */
#define WAIT_MS		5000

struct proc {
	pid_t		 pid;
	struct imsgbuf	 parent;
	char		 file[PATH_MAX];
	const char	*user;
};

struct wk {
	struct imsgbuf	 ib;
	uint32_t	 wid;
	uint64_t	 conv;	/* its conversation, once CONTEXT named it */
};

/* The next message within ms: 1, 0 on timeout, -1 on EOF or error. */
static int
next_msg(struct imsgbuf *ib, struct imsg *m, int ms)
{
	struct pollfd	 pfd;
	ssize_t		 n;
	int		 r;

	for (;;) {
		if ((r = imsg_get(ib, m)) != 0)
			return (r);
		pfd.fd = ib->fd;
		pfd.events = POLLIN;
		if ((r = poll(&pfd, 1, ms)) == -1 && errno != EINTR)
			return (-1);
		if (r == 0)
			return (0);
		if ((n = imsg_read(ib)) == 0 || (n == -1 && errno != EAGAIN &&
		    errno != EINTR))
			return (-1);
	}
}

/* A whole configuration, as the parent sends it. */
static int
send_conf(struct proc *p, int keep, enum sync_mode sync)
{
	struct global_conf	 g;
	struct ibuf		*b;
	const char		*pw;

	memset(&g, 0, sizeof(g));
	(void)strlcpy(g.database, p->file, sizeof(g.database));
	if (p->user != NULL)
		(void)strlcpy(g.user, p->user, sizeof(g.user));
	g.summaries_keep = keep;
	g.memory_limit = 1 << 20;
	g.sync = sync;
	g.line_max = BRIDGED_LINEMAX;
	if (imsg_compose(&p->parent, IMSG_CFG_GLOBAL, 0, 0, -1, &g,
	    sizeof(g)) == -1)
		return (-1);
	/* A server's password comes as the parent sends it: apart. */
	if (is_pg(p->file) && (pw = pgtest_password()) != NULL) {
		if ((b = ibuf_open(strlen(pw) + 8)) == NULL ||
		    ibuf_add_str(b, pw) == -1 ||
		    imsg_compose(&p->parent, IMSG_CFG_DB_PASSWORD, 0, 0, -1,
		    ibuf_data(b), ibuf_left(b)) == -1) {
			ibuf_free(b);
			return (-1);
		}
		ibuf_free(b);
	}
	if (imsg_compose(&p->parent, IMSG_CFG_DONE, 0, 0, -1, NULL, 0) == -1)
		return (-1);
	return (imsg_flush(&p->parent));
}

/* Start storage on a database file; 0 once it said it is ready. */
static int
proc_start(struct proc *p, const char *bridged, const char *name,
    rlim_t fsize, const char *user)
{
	struct rlimit	 rl;
	struct imsg	 m;
	char		 log[PATH_MAX];
	int		 sp[2], fd, r;

	memset(p, 0, sizeof(*p));
	p->user = user;
	if (is_pg(name))
		(void)strlcpy(p->file, name, sizeof(p->file));
	else
		path_of(p->file, sizeof(p->file), name);
	path_of(log, sizeof(log), "storage.log");
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return (-1);
	switch (p->pid = fork()) {
	case -1:
		return (-1);
	case 0:
		close(sp[0]);
		if (sp[1] != FD_PARENT) {
			dup2(sp[1], FD_PARENT);
			close(sp[1]);
		}
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) != -1)
			dup2(fd, 2);
		if (fsize > 0) {
			/* Writes past it fail with EFBIG, not a signal. */
			signal(SIGXFSZ, SIG_IGN);
			rl.rlim_cur = rl.rlim_max = fsize;
			setrlimit(RLIMIT_FSIZE, &rl);
		}
		execl(bridged, "bridged", "-P", "storage", "-d", (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	imsgbuf_init(&p->parent, sp[0]);
	if (send_conf(p, 3, SYNC_NORMAL) == -1)
		return (-1);
	while ((r = next_msg(&p->parent, &m, WAIT_MS)) == 1) {
		r = m.hdr.type;
		imsg_free(&m);
		if (r == IMSG_CHILD_READY)
			return (0);
	}
	return (-1);
}

/* Wait for it to end: its exit status, or -1. */
static int
proc_wait(struct proc *p)
{
	int	 status, i;

	for (i = 0; i < WAIT_MS / 10; i++) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			p->pid = 0;
			return (WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status));
		}
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	p->pid = 0;
	return (-1);
}

/* Whether storage still runs. */
static int
proc_alive(struct proc *p)
{
	int	 status;

	return (p->pid != 0 && waitpid(p->pid, &status, WNOHANG) == 0);
}

/* A worker's channel, handed to storage as the parent does. */
static int
wk_new(struct proc *p, struct wk *w, uint32_t wid, const char *identity)
{
	struct ibuf	*b;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		return (-1);
	imsgbuf_init(&w->ib, sp[1]);
	w->wid = wid;
	if ((b = imsg_create(&p->parent, IMSG_PARENT_CHANNEL, 0, 0, 128)) ==
	    NULL || ibuf_add_u32(b, wid) == -1 ||
	    ibuf_add_str(b, identity) == -1)
		return (-1);
	b->fd = sp[0];
	if (imsg_close(&p->parent, b) == -1)
		return (-1);
	return (imsg_flush(&p->parent));
}

/* IMSG_PARENT_SESSION: the worker now serves identity, by address. */
static int
session(struct proc *p, uint32_t wid, const char *identity)
{
	struct ibuf	*b;

	if ((b = imsg_create(&p->parent, IMSG_PARENT_SESSION, 0, 0, 128)) ==
	    NULL || ibuf_add_u32(b, wid) == -1 ||
	    ibuf_add_str(b, identity) == -1 || ibuf_add_str(b, "ip") == -1 ||
	    imsg_close(&p->parent, b) == -1)
		return (-1);
	return (imsg_flush(&p->parent));
}

/* Queue a STORE; nothing is sent before wk_flush. */
static void
q_store(struct wk *w, uint32_t id, uint64_t key, uint32_t role,
    const char *text, size_t len)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, IMSG_WORKER_STORE, 0, 0, len + 64)) ==
	    NULL || ibuf_add_u32(b, id) == -1 || ibuf_add_u64(b, key) == -1 ||
	    ibuf_add_u64(b, w->conv) == -1 || ibuf_add_u32(b, role) == -1 ||
	    ibuf_add_str(b, "m") == -1 ||
	    ibuf_add_u64(b, 3) == -1 || ibuf_add_data(b, text, len) == -1 ||
	    imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_store\n");
		exit(2);
	}
}

/* Queue a request of u32 fields only. */
static void
q_req(struct wk *w, uint32_t type, uint32_t id, int nargs, uint32_t a1,
    uint32_t a2)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, type, 0, 0, 16)) == NULL ||
	    ibuf_add_u32(b, id) == -1 ||
	    (nargs > 0 && ibuf_add_u32(b, a1) == -1) ||
	    (nargs > 1 && ibuf_add_u32(b, a2) == -1) ||
	    imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_req\n");
		exit(2);
	}
}

/* Queue a SUMMARY. */
static void
q_summary(struct wk *w, uint32_t id, const char *text)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, IMSG_WORKER_SUMMARY, 0, 0, 64)) ==
	    NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u64(b, 0x5eed0000ULL + id) == -1 ||
	    ibuf_add_u64(b, w->conv) == -1 ||
	    ibuf_add_data(b, text, strlen(text)) == -1 ||
	    imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_summary\n");
		exit(2);
	}
}

/* Queue a HISTORY of the worker's conversation. */
static void
q_hist(struct wk *w, uint32_t id, uint32_t kind, uint32_t count)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, IMSG_WORKER_HISTORY, 0, 0, 32)) ==
	    NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u64(b, w->conv) == -1 || ibuf_add_u32(b, kind) == -1 ||
	    ibuf_add_u32(b, count) == -1 || imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_hist\n");
		exit(2);
	}
}

/* Queue a request of an id and two strings. */
static void
q_str2(struct wk *w, uint32_t type, uint32_t id, const char *s1,
    const char *s2)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, type, 0, 0, 128)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_str(b, s1) == -1 ||
	    ibuf_add_str(b, s2) == -1 || imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_str2\n");
		exit(2);
	}
}

/* Queue a request of an id and a string (control's). */
static void
q_str(struct wk *w, uint32_t type, uint32_t id, const char *str)
{
	struct ibuf	*b;

	if ((b = imsg_create(&w->ib, type, 0, 0, 128)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_str(b, str) == -1 ||
	    imsg_close(&w->ib, b) == -1) {
		fprintf(stderr, "q_str\n");
		exit(2);
	}
}

/* Send what is queued, in as few writes as the socket takes. */
static int
wk_flush(struct wk *w)
{
	return (imsg_flush(&w->ib));
}

/* An answer as (type, request id, number, text). */
struct ans {
	uint32_t	 type;
	uint32_t	 id;
	uint64_t	 v;		/* row id or count */
	uint64_t	 count;		/* CONV, DELETED: messages */
	uint32_t	 role;
	char		 text[128];
};

/* The next answer: 1, 0 on timeout, -1 on EOF or a bad answer. */
static int
wk_answer(struct wk *w, struct ans *a, int ms)
{
	struct imsg	 m;
	struct ireader	 ir;
	const char	*s;
	const void	*d;
	size_t		 len;
	int		 r;

	memset(a, 0, sizeof(*a));
	if ((r = next_msg(&w->ib, &m, ms)) != 1)
		return (r);
	a->type = m.hdr.type;
	ir_init(&ir, &m);
	a->id = ir_u32(&ir);
	switch (m.hdr.type) {
	case IMSG_STORAGE_STORED:
	case IMSG_STORAGE_END:
		a->v = ir_u64(&ir);
		break;
	case IMSG_STORAGE_ITEM:
		a->v = ir_u64(&ir);
		(void)ir_u64(&ir);
		a->role = ir_u32(&ir);
		d = ir_data(&ir, &len);
		if (d != NULL)
			memcpy(a->text, d, len < sizeof(a->text) - 1 ? len :
			    sizeof(a->text) - 1);
		break;
	case IMSG_STORAGE_ERROR:
	case IMSG_STORAGE_IDENTITY:
		s = ir_str(&ir);
		(void)strlcpy(a->text, s, sizeof(a->text));
		break;
	case IMSG_STORAGE_REFUSED:
	case IMSG_STORAGE_ADMIT:	/* the code ("" admitted), the text */
		s = ir_str(&ir);
		(void)strlcpy(a->text, s, sizeof(a->text));
		(void)ir_str(&ir);
		break;
	case IMSG_STORAGE_DELETED:
		a->v = ir_u64(&ir);
		a->count = ir_u64(&ir);
		break;
	case IMSG_STORAGE_CONV:
		a->v = ir_u64(&ir);
		(void)ir_u64(&ir);
		a->count = ir_u64(&ir);
		s = ir_str(&ir);
		(void)strlcpy(a->text, s, sizeof(a->text));
		(void)ir_str(&ir);
		(void)ir_str(&ir);
		(void)ir_str(&ir);
		break;
	case IMSG_STORAGE_MATCH:
		(void)ir_u64(&ir);
		a->v = ir_u64(&ir);
		(void)ir_u64(&ir);
		a->role = ir_u32(&ir);
		d = ir_data(&ir, &len);
		if (d != NULL)
			memcpy(a->text, d, len < sizeof(a->text) - 1 ? len :
			    sizeof(a->text) - 1);
		break;
	default:
		ir.bad = 1;
	}
	r = ir_end(&ir) == 0 ? 1 : -1;
	imsg_free(&m);
	return (r);
}

/* Collect a HISTORY or CONTEXT answer: texts joined by spaces. */
static int
wk_items(struct wk *w, uint32_t id, char *out, size_t len, uint64_t *count)
{
	struct ans	 a;

	out[0] = '\0';
	while (wk_answer(w, &a, WAIT_MS) == 1 && a.id == id) {
		if (a.type == IMSG_STORAGE_CONV)
			continue;
		if (a.type == IMSG_STORAGE_END) {
			*count = a.v;
			return (0);
		}
		if (a.type != IMSG_STORAGE_ITEM)
			return (-1);
		if (out[0] != '\0')
			(void)strlcat(out, " ", len);
		(void)strlcat(out, a.text, len);
	}
	return (-1);
}

/* CONTEXT "": the worker's conversation, made if it has none. */
static int
wk_conv(struct wk *w)
{
	struct ans	 a;

	q_str2(w, IMSG_WORKER_CONTEXT, 999, "", "m");
	wk_flush(w);
	if (wk_answer(w, &a, WAIT_MS) != 1 || a.type != IMSG_STORAGE_CONV)
		return (-1);
	w->conv = a.v;
	while (wk_answer(w, &a, WAIT_MS) == 1)
		if (a.type == IMSG_STORAGE_END)
			return (0);
	return (-1);
}

/* An idle worker is not read until its identity is known. */
static void
t_proc_session(struct proc *p)
{
	struct wk	 w;
	struct ans	 a;
	int		 r;

	if (wk_new(p, &w, 1, "") == -1) {
		check("proc-channel", 0, "cannot hand a channel");
		return;
	}
	q_req(&w, IMSG_WORKER_COUNT, 7, 0, 0, 0);
	wk_flush(&w);
	r = wk_answer(&w, &a, 300);
	check("proc-idle-waits", r == 0, "an idle worker was answered");
	session(p, 1, A);
	r = wk_answer(&w, &a, WAIT_MS);
	check("proc-session-resumes", r == 1 && a.type == IMSG_STORAGE_END &&
	    a.id == 7 && a.v == 0, "no answer once the identity is known");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
}

/* Writes, reads, order, isolation, reload and bad messages. */
static void
t_proc_store(struct proc *p)
{
	struct wk	 w, v;
	struct ans	 a;
	char		 text[32], items[512];
	uint64_t	 last = 0, first = 0, count = 0;
	long long	 frames0, frames1;
	int		 i, ok = 1, seen = 1;
	char		 wal[PATH_MAX + 8];
	struct stat	 sb;

	wk_new(p, &w, 2, A);
	check("proc-first-conversation", wk_conv(&w) == 0 && w.conv > 0,
	    "CONTEXT did not name a conversation");
	snprintf(wal, sizeof(wal), "%s-wal", p->file);
	frames0 = stat(wal, &sb) == 0 ? (long long)sb.st_size : 0;
	/* Many writes in one round: one transaction, answered in order. */
	for (i = 0; i < 60; i++) {
		snprintf(text, sizeof(text), "msg %d", i);
		q_store(&w, 100 + i, 9000 + i, i % 2, text, strlen(text));
	}
	wk_flush(&w);
	for (i = 0; i < 60; i++) {
		if (wk_answer(&w, &a, WAIT_MS) != 1 ||
		    a.type != IMSG_STORAGE_STORED || a.id != 100u + i ||
		    a.v <= last) {
			ok = 0;
			break;
		}
		if (i == 0) {
			/* Answered means committed: another reader sees it. */
			first = a.v;
			snprintf(items, sizeof(items), "SELECT count(*) FROM"
			    " messages WHERE id = %llu AND content = 'msg 0'",
			    (unsigned long long)first);
			seen = q_int(p->file, items) == 1;
		}
		last = a.v;
	}
	check("proc-store-order", ok, "STORED missing, late or out of order");
	check("proc-stored-is-committed", seen,
	    "a STORED row is not visible to another connection");
	frames1 = stat(wal, &sb) == 0 ? (long long)sb.st_size : 0;
	/* One commit per message would write ~3 pages of WAL each. */
	check("proc-group-commit", ok && frames1 - frames0 < 30 * 4120,
	    "the WAL grew as if each message had its own transaction");

	q_store(&w, 200, 9000, ROLE_USER, "msg 0", 5);
	wk_flush(&w);
	check("proc-dedupe", wk_answer(&w, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_STORED && a.id == 200 && a.v == first,
	    "a resent key was not answered with its row");

	/* A read between writes of one round sees the first write. */
	q_store(&w, 300, 9100, ROLE_USER, "before", 6);
	q_hist(&w, 301, HISTORY_MESSAGES, 2);
	q_store(&w, 302, 9101, ROLE_MODEL, "after", 5);
	wk_flush(&w);
	ok = wk_answer(&w, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_STORED && a.id == 300 &&
	    wk_items(&w, 301, items, sizeof(items), &count) == 0 &&
	    strcmp(items, "msg 59 before") == 0 && count == 2 &&
	    wk_answer(&w, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_STORED && a.id == 302;
	check("proc-read-order", ok, "answers of a mixed round out of order");

	q_store(&w, 400, 9200, ROLE_USER, "nul\0inside", 10);
	q_req(&w, IMSG_WORKER_COUNT, 401, 0, 0, 0);
	wk_flush(&w);
	check("proc-invalid-text", wk_answer(&w, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_ERROR && a.id == 400 &&
	    wk_answer(&w, &a, WAIT_MS) == 1 && a.type == IMSG_STORAGE_END &&
	    a.id == 401 && a.v == 62,
	    "a text with NUL was not refused alone");

	/* Another identity sees nothing of A's. */
	wk_new(p, &v, 3, B);
	wk_conv(&v);
	q_hist(&v, 1, HISTORY_MESSAGES, 100);
	wk_flush(&v);
	check("proc-isolation", wk_items(&v, 1, items, sizeof(items),
	    &count) == 0 && count == 0 && items[0] == '\0',
	    "one identity sees another's messages");

	/* Summaries: trimmed to keep (3), context is the last and after. */
	for (i = 0; i < 5; i++) {
		snprintf(text, sizeof(text), "sum%d", i);
		q_summary(&v, 10 + i, text);
	}
	q_store(&v, 20, 1, ROLE_USER, "later", 5);
	q_hist(&v, 21, HISTORY_SUMMARIES, 50);
	q_str2(&v, IMSG_WORKER_CONTEXT, 22, "", "m");
	wk_flush(&v);
	for (i = 0; i < 6; i++)
		if (wk_answer(&v, &a, WAIT_MS) != 1 ||
		    a.type != IMSG_STORAGE_STORED)
			break;
	check("proc-summaries", i == 6 && wk_items(&v, 21, items,
	    sizeof(items), &count) == 0 && strcmp(items, "sum2 sum3 sum4") ==
	    0, "summaries not trimmed to the newest 3");
	check("proc-context", wk_items(&v, 22, items, sizeof(items),
	    &count) == 0 && strcmp(items, "sum4 later") == 0 && count == 2,
	    "context is not the last summary and what follows");

	/* Reload: summaries keep 4 applies at once. */
	send_conf(p, 4, SYNC_FULL);
	usleep(100000);
	q_summary(&v, 30, "sum5");
	q_summary(&v, 31, "sum6");
	q_hist(&v, 32, HISTORY_SUMMARIES, 50);
	wk_flush(&v);
	wk_answer(&v, &a, WAIT_MS);
	wk_answer(&v, &a, WAIT_MS);
	check("proc-reload", wk_items(&v, 32, items, sizeof(items), &count) ==
	    0 && strcmp(items, "sum3 sum4 sum5 sum6") == 0,
	    "summaries keep not changed by a reload");

	/* A malformed message closes that worker only. */
	q_req(&w, IMSG_WORKER_STORE, 500, 1, 1, 0);
	wk_flush(&w);
	check("proc-malformed-closes", wk_answer(&w, &a, WAIT_MS) == -1,
	    "a malformed message did not close the worker's channel");
	q_req(&v, IMSG_WORKER_COUNT, 40, 0, 0, 0);
	wk_flush(&v);
	check("proc-malformed-survives", proc_alive(p) &&
	    wk_answer(&v, &a, WAIT_MS) == 1 && a.type == IMSG_STORAGE_END &&
	    a.id == 40 && a.v == 1, "storage or other workers hurt");
	q_hist(&v, 41, 7, 1);
	wk_flush(&v);
	check("proc-bad-kind-closes", wk_answer(&v, &a, WAIT_MS) == -1,
	    "a HISTORY of unknown kind did not close the channel");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
	close(v.ib.fd);
	imsgbuf_clear(&v.ib);
}

#define BIGLEN		(1024 * 1024)

/* Control's channel: export (paged) and purge, by prefix. */
static void
t_proc_control(struct proc *p)
{
	const char	*c = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0"
			    "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
	struct wk	 ctl, w;
	struct ans	 a;
	char		 text[32], *big;
	uint64_t	 last = 0;
	int		 i, n, ok, sawsum, sp[2];

	/* More rows than one page of an export. */
	wk_new(p, &w, 9, c);
	check("proc-ctl-conversation", wk_conv(&w) == 0, "no conversation");
	for (i = 0; i < 600; i++) {
		snprintf(text, sizeof(text), "c%d", i);
		q_store(&w, i, 20000 + i, ROLE_USER, text, strlen(text));
	}
	/* And more bytes than control's queue takes at once. */
	if ((big = malloc(BIGLEN)) == NULL)
		exit(2);
	memset(big, 'y', BIGLEN);
	for (i = 600; i < 603; i++)
		q_store(&w, i, 20000 + i, ROLE_MODEL, big, BIGLEN);
	free(big);
	wk_flush(&w);
	for (i = 0; i < 603; i++)
		if (wk_answer(&w, &a, WAIT_MS) != 1 ||
		    a.type != IMSG_STORAGE_STORED)
			break;
	check("proc-ctl-setup", i == 603, "603 stores not answered");

	/* A worker that asks much and reads late is paced, not lost. */
	for (i = 0; i < 6; i++)
		q_str2(&w, IMSG_WORKER_CONTEXT, 1000 + i, "", "m");
	wk_flush(&w);
	usleep(200000);
	for (i = 0, ok = 1; ok && i < 6; i++) {
		ok = wk_answer(&w, &a, WAIT_MS) == 1 && a.id == 1000u + i &&
		    a.type == IMSG_STORAGE_CONV;
		for (n = 0; ok && (ok = wk_answer(&w, &a, WAIT_MS) == 1 &&
		    a.id == 1000u + i) && a.type == IMSG_STORAGE_ITEM; n++)
			;
		/* The context is cut at memory limit (1M): the newest. */
		ok = ok && a.type == IMSG_STORAGE_END && a.v == (uint64_t)n &&
		    n == 1;
	}
	check("proc-backpressure", ok, "answers lost while a worker lagged");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 ||
	    imsg_compose(&p->parent, IMSG_PARENT_CONTROL, 0, 0, sp[0], NULL,
	    0) == -1 || imsg_flush(&p->parent) == -1) {
		check("proc-ctl", 0, "cannot hand control's channel");
		return;
	}
	imsgbuf_init(&ctl.ib, sp[1]);

	/* Export by prefix: IDENTITY, 603 items in order, END 603. */
	q_str(&ctl, IMSG_CTL_EXPORT, 1, "c0c");
	wk_flush(&ctl);
	ok = wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_IDENTITY && a.id == 1 &&
	    strcmp(a.text, c) == 0;
	usleep(200000);		/* let the queue fill up */
	for (n = 0; ok && n < 603; n++)
		if (wk_answer(&ctl, &a, WAIT_MS) != 1 ||
		    a.type != IMSG_STORAGE_ITEM || a.v <= last) {
			ok = 0;
			break;
		} else
			last = a.v;
	ok = ok && wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_END && a.v == 603;
	check("proc-ctl-export", ok, "export of 603 rows not in order");

	/* B: its one message, then its summaries. */
	q_str(&ctl, IMSG_CTL_EXPORT, 2, "b");
	wk_flush(&ctl);
	ok = wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_IDENTITY && strcmp(a.text, B) == 0;
	for (n = 0, sawsum = 0; ok && wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_ITEM; n++) {
		if (a.role == ROLE_SUMMARY)
			sawsum = 1;
		else if (sawsum)
			ok = 0;
	}
	check("proc-ctl-export-order", ok && a.type == IMSG_STORAGE_END &&
	    a.v == (uint64_t)n && n == 5 && sawsum,
	    "not the message and then the four summaries");

	q_str(&ctl, IMSG_CTL_EXPORT, 3, "f");
	q_str(&ctl, IMSG_CTL_PURGE, 4, "b");
	q_str(&ctl, IMSG_CTL_EXPORT, 5, "b");
	wk_flush(&ctl);
	check("proc-ctl-unknown", wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_ERROR && a.id == 3,
	    "export of an unknown prefix not refused");
	check("proc-ctl-purge", wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_IDENTITY && a.id == 4 &&
	    wk_answer(&ctl, &a, WAIT_MS) == 1 && a.type == IMSG_STORAGE_END &&
	    a.id == 4 && a.v == 5 && q_int(p->file, "SELECT count(*) FROM"
	    " messages WHERE client_id = '" B "'") == 0,
	    "purge did not delete B's five rows");
	check("proc-ctl-purged", wk_answer(&ctl, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_ERROR && a.id == 5,
	    "a purged identity can still be exported");

	/* Only control's channel may export. */
	q_str(&w, IMSG_CTL_EXPORT, 6, "c");
	wk_flush(&w);
	check("proc-ctl-worker-refused", wk_answer(&w, &a, WAIT_MS) == -1,
	    "a worker's EXPORT did not close its channel");
	/* Control's malformed request ends storage (bridged(8)). */
	q_str(&ctl, IMSG_CTL_EXPORT, 7, "XYZ");
	wk_flush(&ctl);
	check("proc-ctl-malformed", wk_answer(&ctl, &a, WAIT_MS) == -1 &&
	    proc_wait(p) == 1, "a bad prefix from control did not end "
	    "storage with status 1");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
	close(ctl.ib.fd);
	imsgbuf_clear(&ctl.ib);
}

/*
 * A COMMIT that fails (the file size limit stops the WAL growing):
 * nobody of that group hears STORED, and storage goes on afterwards.
 */
static void
t_proc_full(const char *bridged)
{
	struct proc	 p;
	struct wk	 w;
	struct ans	 a[3];
	char		*big, sql[128], res[64];
	size_t		 biglen = 1536 * 1024;
	int		 i, ok = 1;

	if (proc_start(&p, bridged, "full.db", 1024 * 1024, NULL) == -1) {
		check("proc-full-start", 0, "storage did not start");
		return;
	}
	if ((big = malloc(biglen)) == NULL)
		exit(2);
	memset(big, 'x', biglen);
	wk_new(&p, &w, 1, A);
	check("proc-conversation", wk_conv(&w) == 0, "no conversation");
	q_store(&w, 1, 1, ROLE_USER, big, biglen);
	q_store(&w, 2, 2, ROLE_USER, "small", 5);
	wk_flush(&w);
	free(big);
	for (i = 0; i < 2; i++)
		if (wk_answer(&w, &a[i], WAIT_MS) != 1 || a[i].id != 1u + i)
			ok = 0;
	check("proc-full-error", ok && a[0].type == IMSG_STORAGE_ERROR,
	    "a write whose COMMIT failed was answered STORED");
	/* Whatever was answered, the table agrees with it. */
	for (i = 0; ok && i < 2; i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages"
		    " WHERE msgkey = %d", i + 1);
		if (q_int(p.file, sql) != (a[i].type == IMSG_STORAGE_STORED))
			ok = 0;
	}
	check("proc-full-answers-true", ok,
	    "an answer does not match what is in the table");
	q_store(&w, 3, 3, ROLE_USER, "after", 5);
	wk_flush(&w);
	check("proc-full-recovers", wk_answer(&w, &a[2], WAIT_MS) == 1 &&
	    a[2].type == IMSG_STORAGE_STORED && a[2].id == 3 &&
	    q_int(p.file, "SELECT count(*) FROM messages WHERE"
	    " content = 'after'") == 1, "no write works after a failed one");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
	close(p.parent.fd);
	imsgbuf_clear(&p.parent);
	proc_wait(&p);
	q_text(p.file, "PRAGMA integrity_check", res, sizeof(res));
	check("proc-full-integrity", strcmp(res, "ok") == 0, res);
}

/* Queue ADMIT of a prompt and a STORE of it, send both, read both. */
static int
admit_and_store(struct wk *w, uint32_t id, struct ans *a, struct ans *s)
{
	q_str(w, IMSG_WORKER_ADMIT, id, "gemini-test");
	q_store(w, id + 1, id + 1, ROLE_USER, "a prompt", 8);
	wk_flush(w);
	return (wk_answer(w, a, WAIT_MS) == 1 && a->id == id &&
	    wk_answer(w, s, WAIT_MS) == 1 && s->id == id + 1);
}

/* Let storage's WAL grow no more (1), or as far as before (0). */
static int
wal_frozen(struct proc *p, int frozen)
{
#ifdef __linux__
	struct rlimit	 rl;
	struct stat	 sb;
	char		 wal[PATH_MAX + 8];

	if (prlimit(p->pid, RLIMIT_FSIZE, NULL, &rl) == -1)
		return (-1);
	rl.rlim_cur = rl.rlim_max;
	if (frozen) {
		(void)snprintf(wal, sizeof(wal), "%s-wal", p->file);
		if (stat(wal, &sb) == -1)
			return (-1);
		rl.rlim_cur = sb.st_size;
	}
	return (prlimit(p->pid, RLIMIT_FSIZE, &rl, NULL));
#else
	(void)p;
	(void)frozen;
	return (-1);	/* no prlimit(2): t_proc_admit says skip */
#endif
}

/*
 * ADMIT is answered before its round's COMMIT (storage_round.c): a
 * prompt admitted in a round whose COMMIT then fails (the WAL may not
 * grow) was told so at once, and its count is lost with the round;
 * the round after a lost one answers ADMIT only after its COMMIT, so
 * a failing database lets nothing more through; once a round commits
 * again, ADMIT goes early again.
 */
static void
t_proc_admit(const char *bridged)
{
	struct proc	 p;
	struct wk	 w;
	struct ans	 a, s;
	int		 ok;

#ifndef __linux__
	printf("skip proc-admit: no prlimit(2) to freeze storage's WAL\n");
	return;
#endif
	/* A limit, so that storage ignores SIGXFSZ; lowered below. */
	if (proc_start(&p, bridged, "admit.db", 1 << 30, NULL) == -1) {
		check("proc-admit-start", 0, "storage did not start");
		return;
	}
	wk_new(&p, &w, 1, A);
	ok = wk_conv(&w) == 0 && admit_and_store(&w, 1, &a, &s) &&
	    a.type == IMSG_STORAGE_ADMIT && s.type == IMSG_STORAGE_STORED &&
	    wal_frozen(&p, 1) == 0;
	check("proc-admit-start", ok, "a prompt was not admitted and stored");
	ok = admit_and_store(&w, 3, &a, &s);
	check("proc-admit-early", ok && a.type == IMSG_STORAGE_ADMIT &&
	    a.text[0] == '\0' && s.type == IMSG_STORAGE_ERROR,
	    "ADMIT waited for a COMMIT that failed");
	check("proc-admit-lost", q_int(p.file, "SELECT sum(prompts) FROM"
	    " usage") == 1, "a lost round's count is in the table");
	ok = admit_and_store(&w, 5, &a, &s);
	check("proc-admit-after-loss", ok && a.type == IMSG_STORAGE_ERROR &&
	    s.type == IMSG_STORAGE_ERROR, "ADMIT went before the COMMIT"
	    " after a lost round");
	ok = wal_frozen(&p, 0) == 0 && admit_and_store(&w, 7, &a, &s) &&
	    a.type == IMSG_STORAGE_ADMIT && s.type == IMSG_STORAGE_STORED &&
	    wal_frozen(&p, 1) == 0 && admit_and_store(&w, 9, &a, &s);
	check("proc-admit-early-again", ok && a.type == IMSG_STORAGE_ADMIT &&
	    a.text[0] == '\0' && s.type == IMSG_STORAGE_ERROR &&
	    q_int(p.file, "SELECT sum(prompts) FROM usage") == 2,
	    "ADMIT did not go early after a COMMIT");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
	close(p.parent.fd);
	imsgbuf_clear(&p.parent);
	proc_wait(&p);
}

/* The uid a process runs as, from /proc; -1 if unknown. */
static long
proc_uid(pid_t pid)
{
	char	 path[64], line[256];
	FILE	*f;
	long	 uid = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "Uid:", 4) == 0)
			uid = strtol(line + 4, NULL, 10);
	fclose(f);
	return (uid);
}

/*
 * As root with a user: the database is opened as root, handed to the
 * user, and storage goes on as that user inside its directory.
 */
static void
t_proc_user(const char *bridged)
{
	struct passwd	*pw;
	struct proc	 p;
	struct wk	 w;
	struct ans	 a;
	struct stat	 sb;
	char		 sub[PATH_MAX], res[64];
	int		 ok;

	if (geteuid() != 0 || (pw = getpwnam("nobody")) == NULL) {
		printf("skip proc-user: needs root and user nobody\n");
		return;
	}
	path_of(sub, sizeof(sub), "userdb");
	if (chmod(dir, 0755) == -1 || mkdir(sub, 0755) == -1 ||
	    chown(sub, pw->pw_uid, pw->pw_gid) == -1) {
		check("proc-user", 0, "cannot prepare the directory");
		return;
	}
	if (proc_start(&p, bridged, "userdb/u.db", 0, "nobody") == -1) {
		check("proc-user", 0, "storage did not start as nobody");
		return;
	}
	check("proc-user-uid", proc_uid(p.pid) == (long)pw->pw_uid,
	    "storage does not run as nobody");
	check("proc-user-owner", stat(p.file, &sb) == 0 &&
	    sb.st_uid == pw->pw_uid, "the database is not nobody's");
	wk_new(&p, &w, 1, A);
	check("proc-conversation", wk_conv(&w) == 0, "no conversation");
	q_store(&w, 1, 1, ROLE_USER, "as nobody", 9);
	q_req(&w, IMSG_WORKER_COUNT, 2, 0, 0, 0);
	wk_flush(&w);
	ok = wk_answer(&w, &a, WAIT_MS) == 1 &&
	    a.type == IMSG_STORAGE_STORED && wk_answer(&w, &a, WAIT_MS) ==
	    1 && a.type == IMSG_STORAGE_END && a.v == 1;
	check("proc-user-writes", ok, "storage cannot write as nobody");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
	close(p.parent.fd);
	imsgbuf_clear(&p.parent);
	check("proc-user-exit", proc_wait(&p) == 0, "did not exit 0");
	q_text(p.file, "PRAGMA integrity_check", res, sizeof(res));
	check("proc-user-integrity", strcmp(res, "ok") == 0, res);
}

/* Everything that needs the storage process itself. */
static void
t_proc(const char *bridged)
{
	struct proc	 p;
	char		 res[64];
	int		 r;

	if (access(bridged, X_OK) == -1) {
		printf("skip proc: no %s\n", bridged);
		return;
	}
	r = proc_start(&p, bridged, "proc.db", 0, NULL);
	check("proc-start", r == 0, "storage did not say it is ready");
	if (r == -1) {
		if (p.pid > 0)
			kill(p.pid, SIGKILL);
		return;
	}
	t_proc_session(&p);
	t_proc_store(&p);
	t_proc_control(&p);
	/* That ended it; the parent would start it again. */
	close(p.parent.fd);
	imsgbuf_clear(&p.parent);
	r = proc_start(&p, bridged, "proc.db", 0, NULL);
	check("proc-restart", r == 0, "storage did not start again");
	if (r == -1) {
		if (p.pid > 0)
			kill(p.pid, SIGKILL);
		return;
	}
	/* The parent goes away: storage finishes and leaves. */
	close(p.parent.fd);
	imsgbuf_clear(&p.parent);
	check("proc-parent-gone", proc_wait(&p) == 0,
	    "storage did not exit 0 when its parent left");
	q_text(p.file, "PRAGMA integrity_check", res, sizeof(res));
	check("proc-integrity", strcmp(res, "ok") == 0, res);

	/* Anything wrong from the parent is fatal. */
	if (proc_start(&p, bridged, "proc.db", 0, NULL) == 0) {
		imsg_compose(&p.parent, IMSG_PARENT_SESSION, 0, 0, -1, "x", 1);
		imsg_flush(&p.parent);
		r = proc_wait(&p);
		check("proc-parent-malformed", r != 0 && r != -1,
		    "a malformed parent message was not fatal");
		close(p.parent.fd);
		imsgbuf_clear(&p.parent);
	} else
		check("proc-restart", 0, "storage did not start again");
	t_proc_full(bridged);
	t_proc_admit(bridged);
	t_proc_user(bridged);
}

/* The schema version PostgreSQL keeps, and a newer one refused. */
static void
t_pg_migrate(const char *target)
{
	struct db	*db;

	check("migrate-version", q_int(target, "SELECT max(version) FROM"
	    " schema_version") == 3, "schema_version is not 3");
	db = db_connect(target, SYNC_NORMAL, pgtest_password());
	check("migrate-again", db != NULL && q_int(target, "SELECT count(*)"
	    " FROM schema_version") == 1, "a second open failed or changed it");
	db_close(db);
	(void)q_exec(target, "UPDATE schema_version SET version = 99");
	db = db_connect(target, SYNC_NORMAL, pgtest_password());
	check("migrate-newer", db == NULL, "a newer schema was used");
	db_close(db);
	/*
	 * Version 1 (no job has a cancel asked of it, keys unique by
	 * client) is brought to 3.
	 */
	(void)q_exec(target, "ALTER TABLE jobs DROP COLUMN cancel_requested;"
	    " DROP INDEX messages_conv_key;"
	    " CREATE UNIQUE INDEX messages_key ON messages (client_id, msgkey);"
	    " UPDATE schema_version SET version = 1");
	db = db_connect(target, SYNC_NORMAL, pgtest_password());
	check("migrate-v1-v3", db != NULL && q_int(target, "SELECT"
	    " max(version) FROM schema_version") == 3 && q_int(target,
	    "SELECT count(*) FROM information_schema.columns WHERE"
	    " table_schema = current_schema() AND table_name = 'jobs' AND"
	    " column_name = 'cancel_requested'") == 1 && q_int(target,
	    "SELECT count(*) FROM pg_indexes WHERE schemaname ="
	    " current_schema() AND indexname = 'messages_conv_key'") == 1 &&
	    q_int(target, "SELECT count(*) FROM pg_indexes WHERE schemaname ="
	    " current_schema() AND indexname = 'messages_key'") == 0,
	    "version 1 not migrated to 3");
	db_close(db);
}

/*
 * Two instances on one database: what one commits the other sees at
 * once, nothing before; a key stored through one is a duplicate
 * through the other; a search finds what the other stored.
 */
static void
t_pg_two(const char *target)
{
	const char	*f = "f0000000000000000000000000000000"
			    "00000000000000000000000000000000";
	struct db	*a, *b;
	struct db_conv	 c;
	char		 out[512];
	uint64_t	 n = 0;
	int64_t		 r1 = 0, r2 = 0;

	a = db_connect(target, SYNC_FULL, pgtest_password());
	b = db_connect(target, SYNC_FULL, pgtest_password());
	if (a == NULL || b == NULL) {
		check("two-open", 0, "a second handle cannot open");
		db_close(a);
		db_close(b);
		return;
	}
	check("two-conv", db_conv_new(a, f, "shared", "", "", "", 9000, &c) ==
	    0 && db_conv_find(b, f, "shared", &c) == DB_FOUND,
	    "a conversation made by one is not found by the other");
	check("two-begin", db_begin(a) == 0 && db_store(a, f, c.id, 77,
	    ROLE_USER, "", 0, "wombat burrow", 13, 9001, &r1) == 0,
	    "cannot store in a transaction");
	check("two-unseen", db_count(b, f, &n) == 0 && n == 0,
	    "the other saw an uncommitted row");
	check("two-commit", db_commit(a) == 0 && db_count(b, f, &n) == 0 &&
	    n == 1, "the other does not see a committed row");
	check("two-dedupe", db_store(b, f, c.id, 77, ROLE_USER, "", 0,
	    "wombat burrow", 13, 9002, &r2) == 1 && r2 == r1,
	    "a key stored through one is new through the other");
	check("two-search", search(b, f, "wombat", out, &n) && n == 1 &&
	    strstr(out, "wombat") != NULL, "the other's message not found");
	check("two-last", db_conv_last(b, f, &c) == DB_FOUND &&
	    c.messages == 1, "the other's conversation is not the last");
	db_close(a);
	db_close(b);
}

/*
 * A message of many different words, past what one tsvector holds
 * (1 MB): stored whole, found by a word of its beginning.
 */
static void
t_pg_huge(struct db *db)
{
	const char	*h = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
			    "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0";
	char		*text, out[512];
	size_t		 len = 0, cap = 1400000;
	uint64_t	 n = 0;
	int64_t		 r;
	int		 i;

	if ((text = malloc(cap)) == NULL)
		return;
	for (i = 0; len < cap - 32; i++)
		len += (size_t)snprintf(text + len, cap - len, "w%dq ", i);
	check("store-huge", db_store(db, h, cv(db, h), 1, ROLE_USER, "", 0,
	    text, len, 9600, &r) == 0 && search(db, h, "w7q", out, &n) &&
	    n == 1, "a text of many words not stored or not found");
	free(text);
}

/* A server that is not there: no handle, no crash. */
static void
t_pg_refused(void)
{
	struct db	*db;

	db = db_open("host=127.0.0.1 port=1 dbname=x connect_timeout=2",
	    SYNC_NORMAL);
	check("refused", db == NULL, "a handle without a server");
	db_close(db);
}

/*
 * An SQLite file moved into PostgreSQL (bridged -m): every table, with
 * its ids, searchable there, new ids after the copied ones; a target
 * that is not empty refused.
 */
static void
t_pg_copy(const char *file)
{
	char		 target[1024], out[512], sql[128];
	struct db	*src, *dst;
	int64_t		 r, before;
	uint64_t	 n = 0;

	if (pgtest_target("t_db", "t_db", target, sizeof(target)) != 1)
		return;
	src = db_open(file, SYNC_NORMAL);
	dst = db_connect(target, SYNC_NORMAL, pgtest_password());
	if (src == NULL || dst == NULL) {
		check("copy-open", 0, "cannot open both");
		db_close(src);
		db_close(dst);
		return;
	}
	before = q_int(file, "SELECT max(id) FROM messages");
	check("copy", db_copy(src, dst) == 0, "the copy failed");
	check("copy-rows", q_int(target, "SELECT count(*) FROM messages") ==
	    q_int(file, "SELECT count(*) FROM messages") &&
	    q_int(target, "SELECT count(*) FROM conversations") ==
	    q_int(file, "SELECT count(*) FROM conversations") &&
	    q_int(target, "SELECT max(id) FROM messages") == before,
	    "rows or ids differ");
	(void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM messages WHERE"
	    " id = %lld", (long long)before);
	check("copy-search", search(dst, A, "language", out, &n) && n == 1,
	    "a copied message is not searchable");
	check("copy-next-id", store(dst, A, 123456, ROLE_USER, "after the"
	    " move", 9500, &r) == 0 && r > before,
	    "a new row did not get an id after the copied ones");
	check("copy-refuses-nonempty", db_copy(src, dst) == -1 &&
	    q_int(target, sql) == 1, "a second copy was not refused");
	db_close(src);
	db_close(dst);
}

/*
 * A token revoked through another instance (a row changed in the
 * database): storage tells its parent to end that identity's
 * sessions within a few seconds.
 */
static void
t_pg_proc_revoked(struct proc *p, const char *target)
{
	const char	*h = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
			    "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1";
	struct imsg	 m;
	struct ireader	 ir;
	char		 sql[256];
	int		 r, seen = 0;

	(void)snprintf(sql, sizeof(sql), "INSERT INTO tokens (hash, created,"
	    " revoked) VALUES ('%s', 1, extract(epoch from now())::bigint)"
	    " RETURNING 1", h);
	if (pgtest_int(target, sql) != 1) {
		check("proc-revoked", 0, "cannot revoke in the database");
		return;
	}
	while (!seen && (r = next_msg(&p->parent, &m, 6000)) == 1) {
		if (m.hdr.type == IMSG_STORAGE_END_SESSIONS) {
			ir_init(&ir, &m);
			seen = strcmp(ir_str(&ir), h) == 0 &&
			    strcmp(ir_str(&ir), "token revoked") == 0 &&
			    ir_end(&ir) == 0;
		}
		imsg_free(&m);
	}
	check("proc-revoked", seen,
	    "storage did not end the sessions of a token revoked elsewhere");
}

/*
 * The server drops storage's connection: storage ends with a non-zero
 * status at its next query (the parent starts another, which connects
 * anew), rather than answering without its database.
 */
static void
t_pg_proc_lost(struct proc *p, const char *target)
{
	struct wk	 w;
	int		 r;

	if (wk_new(p, &w, 40, A) == -1) {
		check("proc-lost", 0, "cannot hand a channel");
		return;
	}
	if (pgtest_int(target, "SELECT count(pg_terminate_backend(pid)) FROM"
	    " pg_stat_activity WHERE datname = current_database() AND"
	    " application_name = 'bridged' AND pid <> pg_backend_pid()") < 1) {
		check("proc-lost", 0, "cannot end storage's connection");
		return;
	}
	q_req(&w, IMSG_WORKER_COUNT, 41, 0, 0, 0);
	wk_flush(&w);
	r = proc_wait(p);
	check("proc-lost", r != 0 && r != -1,
	    "storage did not end when its connection was lost");
	close(w.ib.fd);
	imsgbuf_clear(&w.ib);
}

/* The cases that are not about files, on PostgreSQL. */
static void
t_pg(const char *bridged, const char *file)
{
	char		 target[1024];
	struct db	*db;
	struct proc	 p;
	int		 r;

	if (pgtest_target("t_db", "t_db", target, sizeof(target)) != 1)
		return;
	prefix = "pg-";
	if ((db = db_connect(target, SYNC_FULL, pgtest_password())) == NULL) {
		check("open", 0, "db_connect failed");
		prefix = "";
		return;
	}
	check("kind", strcmp(db_kind(db), "postgresql") == 0 &&
	    db_shared(db), "not the PostgreSQL backend");
	t_store(db, target);
	t_transaction(db, target);
	t_summaries(db, target);
	t_history(db);
	t_context(db);
	t_control(db);
	t_conversations(db, target);
	t_search(db);
	t_search_rollback(db);
	t_pg_huge(db);
	db_close(db);
	t_pg_migrate(target);
	t_pg_two(target);
	t_pg_refused();
	t_pg_copy(file);
	/* The storage process in its sandbox, on an empty database. */
	if (access(bridged, X_OK) == 0 &&
	    pgtest_target("t_db", "t_db", target, sizeof(target)) == 1) {
		r = proc_start(&p, bridged, target, 0, NULL);
		check("proc-start", r == 0, "storage did not say it is ready");
		if (r == 0) {
			t_proc_session(&p);
			t_proc_store(&p);
			t_pg_proc_revoked(&p, target);
			t_pg_proc_lost(&p, target);
			close(p.parent.fd);
			imsgbuf_clear(&p.parent);
		} else if (p.pid > 0)
			kill(p.pid, SIGKILL);
	}
	prefix = "";
}

/* Unit cases on files, then the process cases. */
int
main(void)
{
	char		 file[PATH_MAX], cmd[PATH_MAX + 16];
	char		 bridged[PATH_MAX];
	struct db	*db;
	const char	*tmp;

	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	/* The runner starts us in regress/unit. */
	if ((tmp = getenv("T_DB_BRIDGED")) != NULL)
		(void)strlcpy(bridged, tmp, sizeof(bridged));
	else if (realpath("../../bridged/bridged", bridged) == NULL)
		(void)strlcpy(bridged, "../../bridged/bridged",
		    sizeof(bridged));
	signal(SIGPIPE, SIG_IGN);
	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/t_db.XXXXXX", tmp) >=
	    sizeof(dir) || mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (2);
	}

	t_create();
	t_wal_frames();
	t_checkpoint_thread();
	t_refuse();
	t_chown();
	t_migrate_v1();
	t_migrate_v3();
	t_migrate_v8();
	t_legacy();

	path_of(file, sizeof(file), "main.db");
	if ((db = db_open(file, SYNC_FULL)) == NULL) {
		check("open", 0, "db_open failed");
		return (1);
	}
	t_store(db, file);
	t_transaction(db, file);
	t_summaries(db, file);
	t_history(db);
	t_context(db);
	t_control(db);
	t_conversations(db, file);
	t_search(db);
	t_search_rollback(db);
	t_search_batch(db, file);
	db_close(db);
	t_integrity(file);
	t_proc(bridged);
	t_pg(bridged, file);

	if (getenv("T_DB_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)system(cmd);
	}
	return (failures > 0);
}
