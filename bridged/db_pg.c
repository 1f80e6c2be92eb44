/*
 * db_pg.c: the PostgreSQL backend's base, with libpq: connecting (the
 * password comes from the parent, never from the configuration text),
 * the schema and its versioned migrations (table schema_version),
 * transactions with synchronous commit, and running the statements of
 * its family files (db_pg_msg.c, db_pg_acct.c, db_pg_jobs.c): each is
 * prepared once with PQprepare and run with PQexecPrepared, its
 * parameters passed apart from the SQL, never logged.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bridged.h"

#define PG_VERSION		3		/* schema_version */
#define PG_LOCK_KEY		0x62726764	/* "brgd": one migrator */
#define PG_WRITE_KEY		0x62726777	/* "brgw": one writer at a time */
#define PG_STMT_MAX		128		/* statements prepared */
#define PG_LABEL_MAX		160

struct pgdb {
	PGconn		*conn;
	char		 label[PG_LABEL_MAX];	/* host, port, database */
	char		 instance[64];		/* this process, for leases */
	int		 intx;
	int		 turns;		/* rounds take the write lock */
	const char	*sql[PG_STMT_MAX];	/* prepared, by address */
	int		 nstmt;
};

/*
 * Version 1: every table of SQLite's schema version 6, and the lease
 * of a job (the instance running it, and until when). Message texts
 * are indexed for SEARCH with the 'simple' configuration (no stemming,
 * no stop words: every word counts, as with FTS5), their first 100000
 * characters (a tsvector holds at most 1 MB).
 */
static const char pg_schema_v1[] =
	"CREATE SEQUENCE use_order_seq;"
	"CREATE TABLE conversations ("
	" id bigserial PRIMARY KEY,"
	" client_id text NOT NULL,"
	" name text,"
	" model text,"
	" system text,"
	" role text,"
	" created_at bigint NOT NULL,"
	" last_used bigint NOT NULL,"
	" use_order bigint NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX conversations_name"
	" ON conversations (client_id, name);"
	"CREATE INDEX conversations_used"
	" ON conversations (client_id, use_order);"
	"CREATE TABLE messages ("
	" id bigserial PRIMARY KEY,"
	" client_id text NOT NULL,"
	" role text NOT NULL,"
	" content text NOT NULL,"
	" timestamp bigint NOT NULL,"
	" model text,"
	" tokens bigint,"
	" msgkey bigint,"
	" conversation_id bigint NOT NULL DEFAULT 0,"
	" words tsvector GENERATED ALWAYS AS"
	" (to_tsvector('simple', left(content, 100000))) STORED);"
	"CREATE UNIQUE INDEX messages_key ON messages (client_id, msgkey);"
	"CREATE INDEX messages_client ON messages (client_id, id);"
	"CREATE INDEX messages_conversation"
	" ON messages (conversation_id, id);"
	"CREATE INDEX messages_words ON messages USING gin (words);"
	"CREATE TABLE summaries ("
	" id bigserial PRIMARY KEY,"
	" client_id text NOT NULL,"
	" summary_text text NOT NULL,"
	" created_at bigint NOT NULL,"
	" last_msg bigint NOT NULL DEFAULT 0,"
	" msgkey bigint,"
	" conversation_id bigint NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX summaries_key ON summaries (client_id, msgkey);"
	"CREATE INDEX summaries_client ON summaries (client_id, id);"
	"CREATE INDEX summaries_conversation"
	" ON summaries (conversation_id, id);"
	"CREATE TABLE jobs ("
	" id bigserial PRIMARY KEY,"
	" client_id text NOT NULL,"
	" kind integer NOT NULL,"
	" state integer NOT NULL,"
	" turns integer NOT NULL,"
	" model text NOT NULL,"
	" model_b text NOT NULL DEFAULT '',"
	" prompt text NOT NULL,"
	" upto_msg bigint NOT NULL,"
	" upto_sum bigint NOT NULL,"
	" created bigint NOT NULL,"
	" started bigint,"
	" finished bigint,"
	" attempts integer NOT NULL DEFAULT 0,"
	" tokens_in bigint NOT NULL DEFAULT 0,"
	" tokens_out bigint NOT NULL DEFAULT 0,"
	" ms bigint NOT NULL DEFAULT 0,"
	" finish text NOT NULL DEFAULT '',"
	" err_code text NOT NULL DEFAULT '',"
	" err_text text NOT NULL DEFAULT '',"
	" jobkey bigint,"
	" conversation_id bigint NOT NULL DEFAULT 0,"
	" owner text,"
	" lease_until bigint NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX jobs_key ON jobs (client_id, jobkey);"
	"CREATE INDEX jobs_client ON jobs (client_id, id);"
	"CREATE INDEX jobs_pending ON jobs (state, id) WHERE state < 2;"
	"CREATE TABLE job_chunks ("
	" job_id bigint NOT NULL,"
	" seq integer NOT NULL,"
	" turn integer NOT NULL,"
	" kind integer NOT NULL,"
	" text text NOT NULL,"
	" PRIMARY KEY (job_id, seq));"
	"CREATE TABLE tokens ("
	" id bigserial PRIMARY KEY,"
	" hash text NOT NULL UNIQUE,"
	" label text NOT NULL DEFAULT '',"
	" created bigint NOT NULL,"
	" expires bigint,"
	" last_used bigint,"
	" revoked bigint,"
	" models text NOT NULL DEFAULT '',"
	" requests bigint,"
	" tokens bigint,"
	" jobs bigint);"
	"CREATE INDEX tokens_revoked ON tokens (revoked)"
	" WHERE revoked IS NOT NULL;"
	"CREATE TABLE usage ("
	" identity text NOT NULL,"
	" day text NOT NULL,"
	" model text NOT NULL,"
	" prompts bigint NOT NULL DEFAULT 0,"
	" tokens_in bigint NOT NULL DEFAULT 0,"
	" tokens_out bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (identity, day, model));"
	"CREATE TABLE requests ("
	" identity text NOT NULL,"
	" time bigint NOT NULL);"
	"CREATE INDEX requests_identity ON requests (identity, time);"
	"CREATE TABLE identities ("
	" identity text PRIMARY KEY,"
	" how text NOT NULL,"
	" first_seen bigint NOT NULL,"
	" last_seen bigint NOT NULL);"
	"CREATE TABLE events ("
	" id bigserial PRIMARY KEY,"
	" time bigint NOT NULL,"
	" identity text,"
	" text text NOT NULL);"
	"CREATE INDEX events_identity ON events (identity, id);"
	"CREATE AGGREGATE words_all (tsquery)"
	" (SFUNC = tsquery_and, STYPE = tsquery);";

/*
 * Version 2: a KILL through another instance than the one running the
 * job asks that one to stop it (when, 0 never asked).
 */
static const char pg_schema_v2[] =
	"ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancel_requested bigint"
	" NOT NULL DEFAULT 0;";

/*
 * Version 3: a message's key is unique within its conversation (as in
 * SQLite's version 8): the index takes each new key beside its
 * conversation's others, not anywhere among its client's.
 */
static const char pg_schema_v3[] =
	"CREATE UNIQUE INDEX IF NOT EXISTS messages_conv_key"
	" ON messages (conversation_id, msgkey);"
	"DROP INDEX IF EXISTS messages_key;";

/* Every version's step, in order: pg_steps[v - 1] makes version v. */
static const char *const pg_steps[PG_VERSION] = {
	pg_schema_v1,
	pg_schema_v2,
	pg_schema_v3,
};

/* Whether a database string is PostgreSQL's: a URI or a conninfo. */
static int
pg_claims(const char *database)
{
	return (strncmp(database, "postgresql://", 13) == 0 ||
	    strncmp(database, "postgres://", 11) == 0 ||
	    strchr(database, '=') != NULL);
}

/* The server's primary words about the last failure; never its detail. */
static const char *
pg_why(PGconn *conn, const PGresult *res)
{
	const char	*m;

	if (res != NULL &&
	    (m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) != NULL)
		return (m);
	if ((m = PQerrorMessage(conn)) != NULL && *m != '\0')
		return (m);
	return ("unknown error");
}

/*
 * A failure: logged with the statement's first words (no parameter is
 * ever part of the SQL); a connection that is gone ends the process,
 * whose parent starts another (its writers resend, with their keys).
 */
static void
pg_fail(struct pgdb *db, const char *what, const PGresult *res)
{
	char	 head[48];
	size_t	 n;

	n = strcspn(what, "\n");
	(void)snprintf(head, sizeof(head), "%.*s", (int)(n < 40 ? n : 40),
	    what);
	log_warnx("database %s: %s: %s", db->label, head,
	    pg_why(db->conn, res));
	if (PQstatus(db->conn) == CONNECTION_BAD)
		fatalx("database %s: connection lost", db->label);
}

/* Run SQL without parameters (schema, transactions): 0 or -1. */
static int
pg_exec(struct pgdb *db, const char *sql)
{
	PGresult	*res;
	int		 st, ok;

	res = PQexec(db->conn, sql);
	st = PQresultStatus(res);
	ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok)
		pg_fail(db, sql, res);
	PQclear(res);
	return (ok ? 0 : -1);
}

/* One integer of a query without parameters; -1 for none or NULL. */
static int
pg_int(struct pgdb *db, const char *sql, long long *v)
{
	PGresult	*res;
	int		 ret = -1;

	res = PQexec(db->conn, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		pg_fail(db, sql, res);
	else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
		*v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		ret = 0;
	} else {
		*v = 0;
		ret = 0;
	}
	PQclear(res);
	return (ret);
}

/*
 * Bring the schema to PG_VERSION in one transaction, holding a lock
 * that makes another instance starting now wait for it; refuse a
 * schema newer than this code.
 */
static int
pg_migrate(struct pgdb *db)
{
	char		 sql[96];
	long long	 from;
	int		 v;

	if (pg_exec(db, "BEGIN") == -1)
		return (-1);
	(void)snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)",
	    PG_LOCK_KEY);
	if (pg_exec(db, sql) == -1 || pg_exec(db, "CREATE TABLE IF NOT"
	    " EXISTS schema_version (version integer NOT NULL)") == -1 ||
	    pg_int(db, "SELECT max(version) FROM schema_version", &from) == -1)
		goto fail;
	if (from > PG_VERSION || from < 0) {
		log_warnx("database %s: schema version %lld is not one this"
		    " bridged knows (%d); refusing to use it", db->label, from,
		    PG_VERSION);
		goto fail;
	}
	for (v = (int)from + 1; v <= PG_VERSION; v++)
		if (pg_exec(db, pg_steps[v - 1]) == -1)
			goto fail;
	(void)snprintf(sql, sizeof(sql), "DELETE FROM schema_version;"
	    " INSERT INTO schema_version VALUES (%d)", PG_VERSION);
	if (pg_exec(db, sql) == -1 || pg_exec(db, "COMMIT") == -1)
		goto fail;
	if (from != PG_VERSION)
		log_info("database %s: schema version %lld -> %d", db->label,
		    from, PG_VERSION);
	return (0);
 fail:
	PQclear(PQexec(db->conn, "ROLLBACK"));
	log_warnx("database %s: migration failed", db->label);
	return (-1);
}

/* Commits wait for the disk (and the synchronous standbys, if any). */
static int
pg_sync(void *h, enum sync_mode sync)
{
	struct pgdb	*db = h;
	PGresult	*res;
	int		 ok;

	(void)sync;	/* normal and full alike: never an early OK */
	if (pg_exec(db, "SET synchronous_commit = on") == -1)
		return (-1);
	res = PQexec(db->conn, "SHOW synchronous_commit");
	ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), "on") == 0;
	PQclear(res);
	if (!ok)
		log_warnx("database %s: synchronous_commit is not on",
		    db->label);
	return (ok ? 0 : -1);
}

/* Close the connection; NULL is fine. */
static void
pg_close(void *h)
{
	struct pgdb	*db = h;

	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db);
}

/*
 * The server's notices and warnings go nowhere: their words may quote
 * what was stored (a prompt), which no log line may hold.
 */
static void
pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The instance id leases name: host, pid, and a random part. */
static void
pg_instance(struct pgdb *db)
{
	char	 host[32];

	if (gethostname(host, sizeof(host)) == -1)
		(void)strlcpy(host, "host", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	(void)snprintf(db->instance, sizeof(db->instance), "%s:%ld:%08x",
	    host, (long)getpid(), arc4random());
}

/*
 * Connect (the string may be a URI or a conninfo; the password, if
 * any, is the parent's), set up the session and migrate; NULL
 * (logged) on failure.
 */
static void *
pg_open(const char *database, enum sync_mode sync, const char *password)
{
	const char	*kw[6], *val[6];
	struct pgdb	*db;
	int		 n = 0;

	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	kw[n] = "dbname", val[n++] = database;
	if (password != NULL && *password != '\0')
		kw[n] = "password", val[n++] = password;
	kw[n] = "client_encoding", val[n++] = "UTF8";
	kw[n] = "application_name", val[n++] = "bridged";
	kw[n] = "connect_timeout", val[n++] = "10";
	kw[n] = NULL, val[n] = NULL;
	db->conn = PQconnectdbParams(kw, val, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		log_warnx("database postgresql: cannot connect: %s",
		    db->conn != NULL ? PQerrorMessage(db->conn) :
		    "out of memory");
		pg_close(db);
		return (NULL);
	}
	(void)PQsetNoticeProcessor(db->conn, pg_notice, NULL);
	(void)snprintf(db->label, sizeof(db->label), "postgresql %s:%s/%s",
	    PQhost(db->conn), PQport(db->conn), PQdb(db->conn));
	pg_instance(db);
	if (pg_exec(db, "SET client_min_messages = warning") == -1 ||
	    pg_sync(db, sync) == -1 || pg_migrate(db) == -1) {
		pg_close(db);
		return (NULL);
	}
	return (db);
}

/* No files to hand over: the server owns them. */
static int
pg_chown(void *h, uid_t uid, gid_t gid)
{
	(void)h;
	(void)uid;
	(void)gid;
	return (0);
}

/*
 * Instances take turns: a round of one and a round of another would
 * otherwise lock the same rows (an identity's usage, the conversation
 * its sessions share) in different orders, and PostgreSQL would end
 * one of them as a deadlock, failing every request of that round.
 * Rounds are short and commit many requests each.
 */
static void
pg_turns(void *h)
{
	struct pgdb	*db = h;

	db->turns = 1;
}

/* The write lock of pg_turns(), until the transaction ends. */
static int
pg_write_lock(struct pgdb *db)
{
	char	 sql[64];

	(void)snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%d)",
	    PG_WRITE_KEY);
	return (pg_exec(db, sql));
}

/* BEGIN: one transaction for a round of requests. */
static int
pg_begin(void *h)
{
	struct pgdb	*db = h;

	if (db->intx) {
		log_warnx("database %s: transaction already open", db->label);
		return (-1);
	}
	if (pg_exec(db, "BEGIN") == -1)
		return (-1);
	db->intx = 1;
	if (db->turns && pg_write_lock(db) == -1) {
		(void)pg_exec(db, "ROLLBACK");
		db->intx = 0;
		return (-1);
	}
	return (0);
}

/* Give up the open transaction, if there is one. */
static void
pg_rollback(void *h)
{
	struct pgdb	*db = h;

	if (!db->intx)
		return;
	(void)pg_exec(db, "ROLLBACK");
	db->intx = 0;
}

/*
 * COMMIT; with synchronous_commit on, it is on disk when this returns
 * 0. A transaction a failed statement aborted is rolled back, -1.
 */
static int
pg_commit(void *h)
{
	struct pgdb	*db = h;

	if (!db->intx)
		return (0);
	if (PQtransactionStatus(db->conn) != PQTRANS_INTRANS ||
	    pg_exec(db, "COMMIT") == -1) {
		pg_rollback(db);
		return (-1);
	}
	db->intx = 0;
	return (0);
}

/* Whether the transaction is open and no statement of it failed. */
static int
pg_intx(void *h)
{
	struct pgdb	*db = h;

	return (db->intx && PQtransactionStatus(db->conn) == PQTRANS_INTRANS);
}

/*
 * The server's address family and, over TCP, its port: the one
 * address the storage sandbox lets the process reach.
 */
static int
pg_peer(void *h, int *family, int *port)
{
	struct pgdb		*db = h;
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof(ss);
	int			 fd;

	if ((fd = PQsocket(db->conn)) == -1 ||
	    getpeername(fd, (struct sockaddr *)&ss, &len) == -1) {
		log_warn("database %s: getpeername", db->label);
		return (-1);
	}
	*family = ss.ss_family;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*port = 0;
	return (0);
}

const struct db_base_ops pg_base_ops = {
	.name = "postgresql",
	.shared = 1,
	.claims = pg_claims,
	.open = pg_open,
	.close = pg_close,
	.sync = pg_sync,
	.chown = pg_chown,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.intx = pg_intx,
	.peer = pg_peer,
	.turns = pg_turns,
};

/* This instance's id, as leases of jobs name it. */
const char *
pq_instance(struct pgdb *db)
{
	return (db->instance);
}

/* What the log lines name the database by (no password). */
const char *
pq_label(struct pgdb *db)
{
	return (db->label);
}

/* Start a list of parameters. */
void
pa_init(struct pq_args *a)
{
	memset(a, 0, sizeof(*a));
}

/* One more parameter's slot, or -1 (logged) past the maximum. */
static int
pa_next(struct pq_args *a)
{
	if (a->n == PQ_ARGS_MAX) {
		log_warnx("%s: too many parameters", __func__);
		a->overflow = 1;
		return (-1);
	}
	return (a->n++);
}

/* A text of len bytes, sent as is (binary format: no NUL needed). */
void
pa_data(struct pq_args *a, const char *s, size_t len)
{
	int	 i;

	if ((i = pa_next(a)) == -1)
		return;
	if (len > INT32_MAX)
		a->overflow = 1;
	a->v[i] = s;
	a->len[i] = (int)len;
	a->fmt[i] = 1;
}

/* A NUL-terminated text. */
void
pa_text(struct pq_args *a, const char *s)
{
	pa_data(a, s, strlen(s));
}

/* SQL NULL. */
void
pa_null(struct pq_args *a)
{
	int	 i;

	if ((i = pa_next(a)) == -1)
		return;
	a->v[i] = NULL;
}

/* A text, or NULL when it is NULL or empty. */
void
pa_opt(struct pq_args *a, const char *s)
{
	if (s != NULL && *s != '\0')
		pa_text(a, s);
	else
		pa_null(a);
}

/* An integer, in text format. */
void
pa_int(struct pq_args *a, int64_t v)
{
	int	 i;

	if ((i = pa_next(a)) == -1)
		return;
	(void)snprintf(a->num[i], sizeof(a->num[i]), "%" PRId64, v);
	a->v[i] = a->num[i];
}

/* The name of a statement, prepared now if it is new: 0 or -1. */
static int
pq_prepared(struct pgdb *db, const char *sql, char *name, size_t len)
{
	PGresult	*res;
	int		 i, ok;

	for (i = 0; i < db->nstmt; i++)
		if (db->sql[i] == sql)
			break;
	(void)snprintf(name, len, "b%d", i);
	if (i < db->nstmt)
		return (0);
	if (db->nstmt == PG_STMT_MAX) {
		log_warnx("%s: too many statements", __func__);
		return (-1);
	}
	res = PQprepare(db->conn, name, sql, 0, NULL);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		pg_fail(db, sql, res);
	PQclear(res);
	if (!ok)
		return (-1);
	db->sql[db->nstmt++] = sql;
	return (0);
}

/*
 * Run a statement of a family file with its parameters: the result
 * (PQclear it with pq_clear), or NULL (logged without them).
 */
struct pg_result *
pq_query(struct pgdb *db, const char *sql, const struct pq_args *a)
{
	static const struct pq_args	 none;
	PGresult			*res;
	char				 name[16];
	int				 st;

	if (a == NULL)
		a = &none;
	if (a->overflow || pq_prepared(db, sql, name, sizeof(name)) == -1)
		return (NULL);
	res = PQexecPrepared(db->conn, name, a->n, a->v, a->len, a->fmt, 0);
	st = PQresultStatus(res);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		pg_fail(db, sql, res);
		PQclear(res);
		return (NULL);
	}
	return (res);
}

/* Run a statement that returns no rows: the rows it changed, or -1. */
int64_t
pq_cmd(struct pgdb *db, const char *sql, const struct pq_args *a)
{
	PGresult	*res;
	int64_t		 n;

	if ((res = pq_query(db, sql, a)) == NULL)
		return (-1);
	n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return (n);
}

/* Free a result; NULL is fine. */
void
pq_clear(struct pg_result *res)
{
	PQclear(res);
}

/* How many rows a result has. */
int
pq_rows(struct pg_result *res)
{
	return (PQntuples(res));
}

/* Whether a field is NULL. */
int
pq_null(struct pg_result *res, int row, int col)
{
	return (PQgetisnull(res, row, col));
}

/* An integer field; 0 for NULL. */
int64_t
pq_int(struct pg_result *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return (0);
	return (strtoll(PQgetvalue(res, row, col), NULL, 10));
}

/* A text field, "" for NULL; valid until pq_clear. */
const char *
pq_text(struct pg_result *res, int row, int col)
{
	return (PQgetvalue(res, row, col));
}

/* The bytes of a text field. */
size_t
pq_len(struct pg_result *res, int row, int col)
{
	return ((size_t)PQgetlength(res, row, col));
}
