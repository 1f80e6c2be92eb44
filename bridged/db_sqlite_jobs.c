/*
 * db_sqlite_jobs.c: the SQLite side of background jobs (sqlite_job_ops):
 * the jobs table, the chunks of their output, and the context a job
 * is answered with. The schema is db_sqlite.c's (versions 4 and 5);
 * jobs_db.c is the interface storage.c calls. Every query is prepared
 * once, at open.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

/* The columns of a job, as jdb_row reads them. */
#define JOB_COLUMNS \
	"id, client_id, kind, state, turns, model, model_b, created," \
	" tokens_in, tokens_out, ms, finish, err_code, err_text," \
	" substr(prompt, 1, 40), conversation_id, attempts"

enum jdb_stmt {
	JS_SUBMIT,
	JS_SUBMIT_DUP,
	JS_GET,
	JS_LIST,
	JS_LIST_ALL,
	JS_PENDING,
	JS_START,
	JS_CLEAR,
	JS_CHUNK,
	JS_FINISH,
	JS_CHUNKS,
	JS_TURN,
	JS_SUM,
	JS_SIZES,
	JS_ROWS,
	JS_PROMPT,
	JS_WAITING,
	JS_SETCONV,
	JS_DEMOTE,
	JS_TURNS_CLEAR,
	JS_PURGE_CHUNKS,
	JS_PURGE,
	JS_MAX
};

static const char *const jdb_sql[JS_MAX] = {
	[JS_SUBMIT] =
	    "INSERT INTO jobs (client_id, kind, state, turns, model, model_b,"
	    " prompt, upto_msg, upto_sum, created, jobkey, conversation_id)"
	    " VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, (SELECT coalesce(max(id), 0)"
	    " FROM messages WHERE conversation_id = ?9), (SELECT"
	    " coalesce(max(id), 0) FROM summaries WHERE conversation_id = ?9),"
	    " ?7, ?8, ?9) ON CONFLICT (client_id, jobkey) DO NOTHING",
	[JS_SUBMIT_DUP] =
	    "SELECT id FROM jobs WHERE client_id = ?1 AND jobkey = ?2",
	[JS_GET] =
	    "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
	[JS_LIST] =
	    "SELECT " JOB_COLUMNS " FROM jobs"
	    " WHERE client_id = ?1"
	    " ORDER BY id DESC LIMIT ?2",
	[JS_LIST_ALL] =
	    "SELECT " JOB_COLUMNS " FROM jobs"
	    " ORDER BY id DESC LIMIT ?1",
	[JS_PENDING] =
	    "SELECT id, client_id FROM jobs WHERE state < 2 ORDER BY id",
	[JS_START] =
	    "UPDATE jobs SET state = 1, started = ?2, attempts = attempts + 1"
	    " WHERE id = ?1 AND state < 2",
	[JS_CLEAR] =
	    "DELETE FROM job_chunks WHERE job_id = ?1",
	[JS_CHUNK] =
	    "INSERT INTO job_chunks (job_id, seq, turn, kind, text)"
	    " SELECT ?1, coalesce((SELECT max(seq) FROM job_chunks"
	    " WHERE job_id = ?1), 0) + 1, ?2, ?3, ?4"
	    " WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND state = 1)",
	[JS_FINISH] =
	    "UPDATE jobs SET state = ?2, tokens_in = ?3, tokens_out = ?4,"
	    " ms = ?5, finish = ?6, err_code = ?7, err_text = ?8,"
	    " finished = ?9 WHERE id = ?1 AND state < 2",
	[JS_CHUNKS] =
	    "SELECT kind, text FROM job_chunks WHERE job_id = ?1"
	    " AND seq > ?2 ORDER BY seq",
	[JS_TURN] =
	    "SELECT text FROM job_chunks WHERE job_id = ?1 AND turn = ?2"
	    " AND kind = 0 ORDER BY seq",
	[JS_SUM] =
	    "SELECT s.summary_text, s.last_msg FROM summaries s, jobs j"
	    " WHERE j.id = ?1 AND s.conversation_id = j.conversation_id"
	    " AND s.id <= j.upto_sum ORDER BY s.id DESC LIMIT 1",
	[JS_SIZES] =
	    "SELECT m.id, length(CAST(m.content AS BLOB)) FROM messages m,"
	    " jobs j WHERE j.id = ?1 AND m.conversation_id = j.conversation_id"
	    " AND m.id > ?2 AND m.id <= j.upto_msg ORDER BY m.id DESC"
	    " LIMIT ?3",
	[JS_ROWS] =
	    "SELECT m.role, m.content FROM messages m, jobs j"
	    " WHERE j.id = ?1 AND m.conversation_id = j.conversation_id"
	    " AND m.id >= ?2 AND m.id <= j.upto_msg ORDER BY m.id",
	[JS_PROMPT] =
	    "SELECT prompt FROM jobs WHERE id = ?1",
	[JS_SETCONV] =
	    "UPDATE jobs SET conversation_id = ?2 WHERE id = ?1",
	[JS_PURGE_CHUNKS] =
	    "DELETE FROM job_chunks WHERE job_id IN"
	    " (SELECT id FROM jobs WHERE client_id = ?1)",
	[JS_PURGE] =
	    "DELETE FROM jobs WHERE client_id = ?1",
	/* kind 1: JOB_DIALOGUE */
	[JS_TURNS_CLEAR] =
	    "DELETE FROM messages WHERE role <> 'user' AND conversation_id ="
	    " (SELECT conversation_id FROM jobs WHERE id = ?1 AND kind = 1"
	    " AND conversation_id > 0)",
	[JS_DEMOTE] =
	    "UPDATE conversations SET use_order = 0 WHERE id = ?1",
	[JS_WAITING] =
	    "SELECT count(*) FROM jobs WHERE client_id = ?1 AND state < 2",
};

static void	 sj_close(void *);

struct sqjobs {
	struct sqdb	*db;
	sqlite3		*sq;
	sqlite3_stmt	*st[JS_MAX];
};

/* Log SQLite's words about a failed statement. */
static void
jdb_err(struct sqjobs *j, enum jdb_stmt s)
{
	log_warnx("jobs: %s: %s", jdb_sql[s], sqlite3_errmsg(j->sq));
}

/* Reset a statement for its next use. */
static void
jdb_reset(struct sqjobs *j, enum jdb_stmt s)
{
	sqlite3_reset(j->st[s]);
	sqlite3_clear_bindings(j->st[s]);
}

/* Run a statement that returns no rows; -1 or the rows it changed. */
static int
jdb_step_done(struct sqjobs *j, enum jdb_stmt s)
{
	int	 rc, n = -1;

	rc = sqlite3_step(j->st[s]);
	if (rc == SQLITE_DONE)
		n = sqlite3_changes(j->sq);
	else
		jdb_err(j, s);
	jdb_reset(j, s);
	return (n);
}

/* Prepare the queries on storage's open database; NULL if one fails. */
static void *
sj_open(void *h)
{
	struct sqdb	*db = h;
	struct sqjobs	*j;
	int		 i;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (NULL);
	j->db = db;
	j->sq = sq_sqlite(db);
	for (i = 0; i < JS_MAX; i++) {
		if (sqlite3_prepare_v3(j->sq, jdb_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) != SQLITE_OK) {
			log_warnx("jobs: %s: %s", jdb_sql[i],
			    sqlite3_errmsg(j->sq));
			sj_close(j);
			return (NULL);
		}
	}
	return (j);
}

/* Finalize the queries; NULL is fine. */
static void
sj_close(void *h)
{
	struct sqjobs	*j = h;
	int		 i;

	if (j == NULL)
		return;
	for (i = 0; i < JS_MAX; i++)
		sqlite3_finalize(j->st[i]);
	free(j);
}

/* A text column, never NULL. */
static const char *
col_text(sqlite3_stmt *st, int i)
{
	const char	*s = (const char *)sqlite3_column_text(st, i);

	return (s != NULL ? s : "");
}

/*
 * Queue a job unless (client, key) is queued already: 0 new, 1 a
 * resent one, -1; *id is the job's. Its context is what is stored of
 * the conversation now.
 */
static int
sj_submit(void *h, const char *client, int64_t conv, uint64_t key,
    int kind, int turns, const char *model, const char *model_b,
    const char *prompt, size_t len, int64_t now, int64_t *id)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_SUBMIT], *dup = j->st[JS_SUBMIT_DUP];
	int		 rc, ret;

	if (!db_text_valid(prompt, len) || len == 0)
		return (-1);
	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, kind);
	sqlite3_bind_int(st, 3, turns);
	sqlite3_bind_text(st, 4, model, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, model_b, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, prompt, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now);
	sqlite3_bind_int64(st, 8, (int64_t)key);
	sqlite3_bind_int64(st, 9, conv);
	if ((rc = jdb_step_done(j, JS_SUBMIT)) == -1)
		return (-1);
	if (rc == 1) {
		*id = sqlite3_last_insert_rowid(j->sq);
		return (0);
	}
	sqlite3_bind_text(dup, 1, client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(dup, 2, (int64_t)key);
	if ((rc = sqlite3_step(dup)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(dup, 0);
		ret = 1;
	} else {
		jdb_err(j, JS_SUBMIT_DUP);
		ret = -1;
	}
	jdb_reset(j, JS_SUBMIT_DUP);
	return (ret);
}

/* How many jobs of a client are queued or running; -1 on error. */
static int64_t
sj_waiting(void *h, const char *client)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_WAITING];
	int64_t		 n = -1;

	sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		jdb_err(j, JS_WAITING);
	jdb_reset(j, JS_WAITING);
	return (n);
}

/* A dialogue's own conversation: the job is its. */
static int
sj_set_conv(void *h, int64_t id, int64_t conv)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_SETCONV];

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, conv);
	return (jdb_step_done(j, JS_SETCONV) == 1 ? 0 : -1);
}

/*
 * Storing a message makes its conversation the most recently used; a
 * dialogue's is put back last, so sessions keep resuming their own.
 */
static int
sj_demote(void *h, int64_t conv)
{
	struct sqjobs	*j = h;

	sqlite3_bind_int64(j->st[JS_DEMOTE], 1, conv);
	return (jdb_step_done(j, JS_DEMOTE) == 1 ? 0 : -1);
}

/*
 * Delete every job of a client with its output (bridgectl purge);
 * *rows grows by the jobs deleted. One that runs finds itself gone.
 */
static int
sj_purge(void *h, const char *client, uint64_t *rows)
{
	struct sqjobs	*j = h;
	int		 n;

	sqlite3_bind_text(j->st[JS_PURGE_CHUNKS], 1, client, -1,
	    SQLITE_STATIC);
	if (jdb_step_done(j, JS_PURGE_CHUNKS) == -1)
		return (-1);
	sqlite3_bind_text(j->st[JS_PURGE], 1, client, -1, SQLITE_STATIC);
	if ((n = jdb_step_done(j, JS_PURGE)) == -1)
		return (-1);
	*rows += (uint64_t)n;
	return (0);
}

/* Fill a job from a row of JS_GET or JS_LIST. */
static void
jdb_row(sqlite3_stmt *st, struct jdb_job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = sqlite3_column_int64(st, 0);
	strlcpy(job->client, col_text(st, 1), sizeof(job->client));
	job->kind = sqlite3_column_int(st, 2);
	job->state = sqlite3_column_int(st, 3);
	job->turns = sqlite3_column_int(st, 4);
	strlcpy(job->model, col_text(st, 5), sizeof(job->model));
	strlcpy(job->model_b, col_text(st, 6), sizeof(job->model_b));
	job->created = sqlite3_column_int64(st, 7);
	job->tin = sqlite3_column_int64(st, 8);
	job->tout = sqlite3_column_int64(st, 9);
	job->ms = sqlite3_column_int64(st, 10);
	strlcpy(job->finish, col_text(st, 11), sizeof(job->finish));
	strlcpy(job->code, col_text(st, 12), sizeof(job->code));
	strlcpy(job->text, col_text(st, 13), sizeof(job->text));
	strlcpy(job->head, col_text(st, 14), sizeof(job->head));
	job->conv = sqlite3_column_int64(st, 15);
	job->attempts = sqlite3_column_int64(st, 16);
}

/* One job: 1 found, 0 none, -1. */
static int
sj_get(void *h, int64_t id, struct jdb_job *job)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_GET];
	int		 rc, ret = 0;

	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		jdb_row(st, job);
		ret = 1;
	} else if (rc != SQLITE_DONE) {
		jdb_err(j, JS_GET);
		ret = -1;
	}
	jdb_reset(j, JS_GET);
	return (ret);
}

/* The newest `count' jobs of a client (NULL: of everyone), newest first. */
static int
sj_list(void *h, const char *client, uint32_t count,
    int (*cb)(const struct jdb_job *, void *), void *arg, uint64_t *n)
{
	struct sqjobs	*j = h;
	enum jdb_stmt	 s = client != NULL ? JS_LIST : JS_LIST_ALL;
	sqlite3_stmt	*st = j->st[s];
	struct jdb_job	 job;
	int		 rc, ret = 0;

	*n = 0;
	if (client != NULL) {
		sqlite3_bind_text(st, 1, client, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, count);
	} else
		sqlite3_bind_int64(st, 1, count);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		jdb_row(st, &job);
		if (cb(&job, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		jdb_err(j, s);
		ret = -1;
	}
	jdb_reset(j, s);
	return (ret);
}

/* Every job queued or running, in the order submitted. */
static int
sj_pending(void *h, int (*cb)(int64_t, const char *, void *),
    void *arg)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_PENDING];
	int		 rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(sqlite3_column_int64(st, 0), col_text(st, 1),
		    arg) == -1) {
			ret = -1;
			break;
		}
	if (ret == 0 && rc != SQLITE_DONE) {
		jdb_err(j, JS_PENDING);
		ret = -1;
	}
	jdb_reset(j, JS_PENDING);
	return (ret);
}

/*
 * A job (queued, or running before a restart) runs from the start:
 * what it had produced goes. 1 started, 0 not to run, -1.
 */
static int
sj_start(void *h, int64_t id, int64_t now)
{
	struct sqjobs	*j = h;
	int		 n;

	sqlite3_bind_int64(j->st[JS_START], 1, id);
	sqlite3_bind_int64(j->st[JS_START], 2, now);
	if ((n = jdb_step_done(j, JS_START)) <= 0)
		return (n);
	sqlite3_bind_int64(j->st[JS_CLEAR], 1, id);
	if (jdb_step_done(j, JS_CLEAR) == -1)
		return (-1);
	/* A dialogue's turns stored so far go too: it starts over. */
	sqlite3_bind_int64(j->st[JS_TURNS_CLEAR], 1, id);
	if (jdb_step_done(j, JS_TURNS_CLEAR) == -1)
		return (-1);
	return (1);
}

/* Append output to a running job: 1 stored, 0 not running, -1. */
static int
sj_chunk(void *h, int64_t id, int turn, int kind, const char *text,
    size_t len)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_CHUNK];

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, turn);
	sqlite3_bind_int(st, 3, kind);
	sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
	return (jdb_step_done(j, JS_CHUNK));
}

/* A queued or running job ends: 1 it did, 0 it had ended, -1. */
static int
sj_finish(void *h, const struct jdb_job *job, int64_t now)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_FINISH];

	sqlite3_bind_int64(st, 1, job->id);
	sqlite3_bind_int(st, 2, job->state);
	sqlite3_bind_int64(st, 3, job->tin);
	sqlite3_bind_int64(st, 4, job->tout);
	sqlite3_bind_int64(st, 5, job->ms);
	sqlite3_bind_text(st, 6, job->finish, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, job->code, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, job->text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, now);
	return (jdb_step_done(j, JS_FINISH));
}

/* The stored output of a job, in order. */
static int
sj_chunks(void *h, int64_t id, uint64_t after,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_CHUNKS];
	int		 rc, ret = 0;

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (int64_t)after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (cb(sqlite3_column_int(st, 0), col_text(st, 1),
		    (size_t)sqlite3_column_bytes(st, 1), arg) == -1) {
			ret = -1;
			break;
		}
	if (ret == 0 && rc != SQLITE_DONE) {
		jdb_err(j, JS_CHUNKS);
		ret = -1;
	}
	jdb_reset(j, JS_CHUNKS);
	return (ret);
}

/* The text of one turn of a job's output, appended to b. */
static int
sj_turn_text(void *h, int64_t id, int turn, struct ibuf *b)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_TURN];
	int		 rc, ret = 0;

	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int(st, 2, turn);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (ibuf_add(b, col_text(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0)) == -1) {
			ret = -1;
			break;
		}
	if (ret == 0 && rc != SQLITE_DONE) {
		jdb_err(j, JS_TURN);
		ret = -1;
	}
	jdb_reset(j, JS_TURN);
	return (ret);
}

/* The prompt of a job, to cb with role user. */
static int
sj_prompt(void *h, int64_t id,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st = j->st[JS_PROMPT];
	int		 rc, ret = -1;

	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ret = cb(ROLE_USER, col_text(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), arg);
	else
		jdb_err(j, JS_PROMPT);
	jdb_reset(j, JS_PROMPT);
	return (ret);
}

/* Where the newest messages that fit begin: the first id, or 0. */
static int
jdb_first(struct sqjobs *j, int64_t id, int64_t after, uint32_t maxitems,
    size_t maxbytes, int64_t *first)
{
	sqlite3_stmt	*st = j->st[JS_SIZES];
	size_t		 bytes = 0, sz;
	uint32_t	 n = 0;
	int		 rc;

	*first = 0;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, after);
	sqlite3_bind_int64(st, 3, maxitems);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sz = (size_t)sqlite3_column_int64(st, 1);
		if (sz > maxbytes - bytes || n == maxitems)
			break;
		bytes += sz;
		*first = sqlite3_column_int64(st, 0);
		n++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		jdb_err(j, JS_SIZES);
		jdb_reset(j, JS_SIZES);
		return (-1);
	}
	jdb_reset(j, JS_SIZES);
	return (0);
}

/*
 * What a job of one prompt is answered with, in order: the summary
 * and the messages of its conversation as they were stored when it
 * was submitted (the newest that fit in the bounds), then its prompt.
 * Roles: ROLE_SUMMARY, ROLE_USER, ROLE_MODEL.
 */
static int
sj_context(void *h, int64_t id, uint32_t maxitems, size_t maxbytes,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct sqjobs	*j = h;
	sqlite3_stmt	*st;
	const char	*role;
	int64_t		 after = 0, first;
	size_t		 len;
	int		 rc, ret = 0;

	st = j->st[JS_SUM];
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		len = (size_t)sqlite3_column_bytes(st, 0);
		after = sqlite3_column_int64(st, 1);
		if (len <= maxbytes) {
			ret = cb(ROLE_SUMMARY, col_text(st, 0), len, arg);
			maxbytes -= len;
		}
	} else if (rc != SQLITE_DONE) {
		jdb_err(j, JS_SUM);
		ret = -1;
	}
	jdb_reset(j, JS_SUM);
	if (ret == -1 || jdb_first(j, id, after, maxitems, maxbytes,
	    &first) == -1)
		return (-1);
	if (first > 0) {
		st = j->st[JS_ROWS];
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, first);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			role = col_text(st, 0);
			if (strcmp(role, "user") != 0 &&
			    strcmp(role, "model") != 0 &&
			    strcmp(role, "assistant") != 0)
				continue;
			if (cb(strcmp(role, "user") == 0 ? ROLE_USER :
			    ROLE_MODEL, col_text(st, 1),
			    (size_t)sqlite3_column_bytes(st, 1), arg) == -1) {
				ret = -1;
				break;
			}
		}
		if (ret == 0 && rc != SQLITE_DONE) {
			jdb_err(j, JS_ROWS);
			ret = -1;
		}
		jdb_reset(j, JS_ROWS);
		if (ret == -1)
			return (-1);
	}
	return (sj_prompt(j, id, cb, arg));
}

/* One instance has the file: nobody else's jobs to claim. */
static int
sj_claim(void *h, int (*cb)(int64_t, const char *, void *), void *arg)
{
	(void)h;
	(void)cb;
	(void)arg;
	return (0);
}

/* No leases with one instance, and none other to cancel its jobs. */
static int
sj_renew(void *h, int (*cb)(int64_t, void *), void *arg)
{
	(void)h;
	(void)cb;
	(void)arg;
	return (0);
}

/* One instance runs every job: it cancels them itself (jdb_finish). */
static int
sj_cancel(void *h, int64_t id, int64_t now)
{
	(void)h;
	(void)id;
	(void)now;
	return (0);
}

/* No leases to give back. */
static int
sj_release(void *h)
{
	(void)h;
	return (0);
}

const struct db_job_ops sqlite_job_ops = {
	.open = sj_open,
	.close = sj_close,
	.submit = sj_submit,
	.get = sj_get,
	.waiting = sj_waiting,
	.set_conv = sj_set_conv,
	.demote = sj_demote,
	.purge = sj_purge,
	.list = sj_list,
	.pending = sj_pending,
	.claim = sj_claim,
	.renew = sj_renew,
	.cancel = sj_cancel,
	.release = sj_release,
	.start = sj_start,
	.chunk = sj_chunk,
	.finish = sj_finish,
	.chunks = sj_chunks,
	.turn_text = sj_turn_text,
	.context = sj_context,
	.prompt = sj_prompt,
};
