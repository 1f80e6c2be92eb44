/*
 * db_pg_jobs.c: background jobs in PostgreSQL (pg_job_ops). Several
 * instances share the queue: a job is run by the one instance that
 * holds its lease (owner, lease_until). The instance a job was
 * submitted to holds it first and renews it while it runs; jobs
 * whose lease ran out (their instance died) are claimed with FOR
 * UPDATE SKIP LOCKED by another, which runs them again from the
 * start. An instance that lost a lease stores nothing more of it. A
 * job killed through another instance than its holder is marked
 * (cancel_requested); the holder sees the mark when it renews its
 * leases, and stops the job.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

#define JOB_COLUMNS \
	"id, client_id, kind, state, turns, model, model_b, created," \
	" tokens_in, tokens_out, ms, finish, err_code, err_text," \
	" substr(prompt, 1, 40), conversation_id, attempts"

static const char sql_submit[] =
    "INSERT INTO jobs (client_id, kind, state, turns, model, model_b,"
    " prompt, upto_msg, upto_sum, created, jobkey, conversation_id, owner,"
    " lease_until) VALUES ($1, $2, 0, $3, $4, $5, $6, (SELECT"
    " coalesce(max(id), 0) FROM messages WHERE conversation_id = $9),"
    " (SELECT coalesce(max(id), 0) FROM summaries WHERE conversation_id"
    " = $9), $7, $8, $9, $10, $11) ON CONFLICT (client_id, jobkey)"
    " DO NOTHING RETURNING id";
static const char sql_submit_dup[] =
    "SELECT id FROM jobs WHERE client_id = $1 AND jobkey = $2";
static const char sql_get[] =
    "SELECT " JOB_COLUMNS " FROM jobs WHERE id = $1";
static const char sql_list[] =
    "SELECT " JOB_COLUMNS " FROM jobs WHERE client_id = $1"
    " ORDER BY id DESC LIMIT $2";
static const char sql_list_all[] =
    "SELECT " JOB_COLUMNS " FROM jobs ORDER BY id DESC LIMIT $1";
static const char sql_waiting[] =
    "SELECT count(*) FROM jobs WHERE client_id = $1 AND state < 2";
static const char sql_setconv[] =
    "UPDATE jobs SET conversation_id = $2 WHERE id = $1";
static const char sql_demote[] =
    "UPDATE conversations SET use_order = 0 WHERE id = $1";
static const char sql_purge_chunks[] =
    "DELETE FROM job_chunks WHERE job_id IN"
    " (SELECT id FROM jobs WHERE client_id = $1)";
static const char sql_purge[] =
    "DELETE FROM jobs WHERE client_id = $1";
/*
 * Claim the unfinished jobs that are ours, nobody's, or of a lease
 * that ran out; rows another transaction holds are skipped.
 */
static const char sql_claim[] =
    "WITH c AS (UPDATE jobs SET owner = $1, lease_until = $3 WHERE id IN"
    " (SELECT id FROM jobs WHERE state < 2 AND (owner IS NULL"
    " OR owner = $1 OR lease_until < $2) ORDER BY id"
    " FOR UPDATE SKIP LOCKED) AND (owner IS DISTINCT FROM $1"
    " OR $4::integer = 1) RETURNING id, client_id)"
    " SELECT id, client_id FROM c ORDER BY id";
/* The leases go on; the jobs another instance asked to cancel come back. */
static const char sql_renew[] =
    "WITH r AS (UPDATE jobs SET lease_until = $2 WHERE owner = $1"
    " AND state < 2 RETURNING id, cancel_requested)"
    " SELECT id FROM r WHERE cancel_requested > 0 ORDER BY id";
static const char sql_cancel[] =
    "UPDATE jobs SET cancel_requested = $2 WHERE id = $1 AND state < 2";
static const char sql_release[] =
    "UPDATE jobs SET lease_until = 0 WHERE owner = $1 AND state < 2";
static const char sql_start[] =
    "UPDATE jobs SET state = 1, started = $2, attempts = attempts + 1,"
    " lease_until = $4 WHERE id = $1 AND state < 2 AND owner = $3";
static const char sql_clear[] =
    "DELETE FROM job_chunks WHERE job_id = $1";
/* kind 1: JOB_DIALOGUE */
static const char sql_turns_clear[] =
    "DELETE FROM messages WHERE role <> 'user' AND conversation_id ="
    " (SELECT conversation_id FROM jobs WHERE id = $1 AND kind = 1"
    " AND conversation_id > 0)";
static const char sql_chunk[] =
    "INSERT INTO job_chunks (job_id, seq, turn, kind, text)"
    " SELECT $1::bigint, coalesce((SELECT max(seq) FROM job_chunks"
    " WHERE job_id = $1), 0) + 1, $2::integer, $3::integer, $4::text"
    " WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND state = 1"
    " AND owner = $5)";
static const char sql_finish[] =
    "UPDATE jobs SET state = $2, tokens_in = $3, tokens_out = $4,"
    " ms = $5, finish = $6, err_code = $7, err_text = $8,"
    " finished = $9 WHERE id = $1 AND state < 2 AND owner = $10";
static const char sql_chunks[] =
    "SELECT kind, text FROM job_chunks WHERE job_id = $1 AND seq > $2"
    " ORDER BY seq";
static const char sql_turn[] =
    "SELECT text FROM job_chunks WHERE job_id = $1 AND turn = $2"
    " AND kind = 0 ORDER BY seq";
static const char sql_sum[] =
    "SELECT s.summary_text, s.last_msg FROM summaries s, jobs j"
    " WHERE j.id = $1 AND s.conversation_id = j.conversation_id"
    " AND s.id <= j.upto_sum ORDER BY s.id DESC LIMIT 1";
static const char sql_sizes[] =
    "SELECT m.id, octet_length(m.content) FROM messages m, jobs j"
    " WHERE j.id = $1 AND m.conversation_id = j.conversation_id"
    " AND m.id > $2 AND m.id <= j.upto_msg ORDER BY m.id DESC LIMIT $3";
static const char sql_rows[] =
    "SELECT m.role, m.content FROM messages m, jobs j"
    " WHERE j.id = $1 AND m.conversation_id = j.conversation_id"
    " AND m.id >= $2 AND m.id <= j.upto_msg ORDER BY m.id";
static const char sql_prompt[] =
    "SELECT prompt FROM jobs WHERE id = $1";

/* The jobs are the connection's own: the handle is the database's. */
static void *
pj_open(void *h)
{
	return (h);
}

/* Nothing of its own to close. */
static void
pj_close(void *h)
{
	(void)h;
}

/* The end of a lease taken or renewed now. */
static int64_t
pj_lease(void)
{
	return ((int64_t)time(NULL) + JOB_LEASE);
}

/* The first column of a query's first row: 1, 0 none, -1. */
static int
pj_one(struct pgdb *db, const char *sql, const struct pq_args *a,
    int64_t *v)
{
	struct pg_result	*r;
	int			 ret;

	if ((r = pq_query(db, sql, a)) == NULL)
		return (-1);
	if ((ret = pq_rows(r) > 0))
		*v = pq_int(r, 0, 0);
	pq_clear(r);
	return (ret);
}

/*
 * Queue a job unless (client, key) is queued already: 0 new, 1 a
 * resent one, -1; this instance holds its lease from now.
 */
static int
pj_submit(void *h, const char *client, int64_t conv, uint64_t key,
    int kind, int turns, const char *model, const char *model_b,
    const char *prompt, size_t len, int64_t now, int64_t *id)
{
	struct pq_args	 a;
	int		 r;

	pa_init(&a);
	pa_text(&a, client);
	pa_int(&a, kind);
	pa_int(&a, turns);
	pa_text(&a, model);
	pa_text(&a, model_b);
	pa_data(&a, prompt, len);
	pa_int(&a, now);
	pa_int(&a, (int64_t)key);
	pa_int(&a, conv);
	pa_text(&a, pq_instance(h));
	pa_int(&a, pj_lease());
	if ((r = pj_one(h, sql_submit, &a, id)) != 0)
		return (r == 1 ? 0 : -1);
	pa_init(&a);
	pa_text(&a, client);
	pa_int(&a, (int64_t)key);
	return (pj_one(h, sql_submit_dup, &a, id) == 1 ? 1 : -1);
}

/* How many jobs of a client are queued or running; -1 on error. */
static int64_t
pj_waiting(void *h, const char *client)
{
	struct pq_args	 a;
	int64_t		 n;

	pa_init(&a);
	pa_text(&a, client);
	return (pj_one(h, sql_waiting, &a, &n) == 1 ? n : -1);
}

/* A dialogue's own conversation: the job is its. */
static int
pj_set_conv(void *h, int64_t id, int64_t conv)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, conv);
	return (pq_cmd(h, sql_setconv, &a) == 1 ? 0 : -1);
}

/* A dialogue's conversation goes last in its identity's list. */
static int
pj_demote(void *h, int64_t conv)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, conv);
	return (pq_cmd(h, sql_demote, &a) == 1 ? 0 : -1);
}

/* Delete every job of a client with its output; *rows grows. */
static int
pj_purge(void *h, const char *client, uint64_t *rows)
{
	struct pq_args	 a;
	int64_t		 n;

	pa_init(&a);
	pa_text(&a, client);
	if (pq_cmd(h, sql_purge_chunks, &a) == -1 ||
	    (n = pq_cmd(h, sql_purge, &a)) == -1)
		return (-1);
	*rows += (uint64_t)n;
	return (0);
}

/* A row of JOB_COLUMNS. */
static void
pj_row(struct pg_result *r, int i, struct jdb_job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = pq_int(r, i, 0);
	(void)strlcpy(job->client, pq_text(r, i, 1), sizeof(job->client));
	job->kind = (int)pq_int(r, i, 2);
	job->state = (int)pq_int(r, i, 3);
	job->turns = (int)pq_int(r, i, 4);
	(void)strlcpy(job->model, pq_text(r, i, 5), sizeof(job->model));
	(void)strlcpy(job->model_b, pq_text(r, i, 6), sizeof(job->model_b));
	job->created = pq_int(r, i, 7);
	job->tin = pq_int(r, i, 8);
	job->tout = pq_int(r, i, 9);
	job->ms = pq_int(r, i, 10);
	(void)strlcpy(job->finish, pq_text(r, i, 11), sizeof(job->finish));
	(void)strlcpy(job->code, pq_text(r, i, 12), sizeof(job->code));
	(void)strlcpy(job->text, pq_text(r, i, 13), sizeof(job->text));
	(void)strlcpy(job->head, pq_text(r, i, 14), sizeof(job->head));
	job->conv = pq_int(r, i, 15);
	job->attempts = pq_int(r, i, 16);
}

/* One job: 1 found, 0 none, -1. */
static int
pj_get(void *h, int64_t id, struct jdb_job *job)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ret;

	pa_init(&a);
	pa_int(&a, id);
	if ((r = pq_query(h, sql_get, &a)) == NULL)
		return (-1);
	if ((ret = pq_rows(r) == 1))
		pj_row(r, 0, job);
	pq_clear(r);
	return (ret);
}

/* The newest `count' jobs of a client (NULL: of everyone). */
static int
pj_list(void *h, const char *client, uint32_t count,
    int (*cb)(const struct jdb_job *, void *), void *arg, uint64_t *n)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct jdb_job		 job;
	int			 i, ret = 0;

	pa_init(&a);
	if (client != NULL)
		pa_text(&a, client);
	pa_int(&a, count);
	if ((r = pq_query(h, client != NULL ? sql_list : sql_list_all,
	    &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++) {
		pj_row(r, i, &job);
		if ((ret = cb(&job, arg) == -1 ? -1 : 0) == 0)
			(*n)++;
	}
	pq_clear(r);
	return (ret);
}

/*
 * Take the leases of unfinished jobs this instance may run: with all
 * set, its own too (the provider asks for every one at its start),
 * else only the ones it did not hold. cb gets each job taken.
 */
static int
pj_take(struct pgdb *db, int all, int (*cb)(int64_t, const char *, void *),
    void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 i, ret = 0;

	pa_init(&a);
	pa_text(&a, pq_instance(db));
	pa_int(&a, (int64_t)time(NULL));
	pa_int(&a, pj_lease());
	pa_int(&a, all);
	if ((r = pq_query(db, sql_claim, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++)
		ret = cb(pq_int(r, i, 0), pq_text(r, i, 1), arg) == -1 ?
		    -1 : 0;
	pq_clear(r);
	return (ret);
}

/* Every job this instance may run, its own and unclaimed ones. */
static int
pj_pending(void *h, int (*cb)(int64_t, const char *, void *), void *arg)
{
	return (pj_take(h, 1, cb, arg));
}

/* Jobs of instances that died (their lease ran out), now ours. */
static int
pj_claim(void *h, int (*cb)(int64_t, const char *, void *), void *arg)
{
	return (pj_take(h, 0, cb, arg));
}

/*
 * This instance still runs its jobs: their leases go on; cb gets each
 * that another instance asked to cancel.
 */
static int
pj_renew(void *h, int (*cb)(int64_t, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 i, ret = 0;

	pa_init(&a);
	pa_text(&a, pq_instance(h));
	pa_int(&a, pj_lease());
	if ((r = pq_query(h, sql_renew, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++)
		ret = cb(pq_int(r, i, 0), arg) == -1 ? -1 : 0;
	pq_clear(r);
	return (ret);
}

/* Ask whoever runs a job to cancel it: 1 asked, 0 it has ended, -1. */
static int
pj_cancel(void *h, int64_t id, int64_t now)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, now > 0 ? now : 1);
	return ((int)pq_cmd(h, sql_cancel, &a));
}

/* This instance stops: its leases end now, for the next to take. */
static int
pj_release(void *h)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, pq_instance(h));
	return (pq_cmd(h, sql_release, &a) == -1 ? -1 : 0);
}

/*
 * A job whose lease this instance holds runs from the start: what it
 * had produced goes. 1 started, 0 not to run (not ours), -1.
 */
static int
pj_start(void *h, int64_t id, int64_t now)
{
	struct pq_args	 a;
	int64_t		 n;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, now);
	pa_text(&a, pq_instance(h));
	pa_int(&a, pj_lease());
	if ((n = pq_cmd(h, sql_start, &a)) <= 0)
		return ((int)n);
	pa_init(&a);
	pa_int(&a, id);
	/* A dialogue's turns stored so far go too: it starts over. */
	if (pq_cmd(h, sql_clear, &a) == -1 ||
	    pq_cmd(h, sql_turns_clear, &a) == -1)
		return (-1);
	return (1);
}

/* Append output to a job this instance runs: 1 stored, 0 not, -1. */
static int
pj_chunk(void *h, int64_t id, int turn, int kind, const char *text,
    size_t len)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, turn);
	pa_int(&a, kind);
	pa_data(&a, text, len);
	pa_text(&a, pq_instance(h));
	return ((int)pq_cmd(h, sql_chunk, &a));
}

/* A job this instance runs ends: 1 it did, 0 it had ended (or is not ours). */
static int
pj_finish(void *h, const struct jdb_job *job, int64_t now)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, job->id);
	pa_int(&a, job->state);
	pa_int(&a, job->tin);
	pa_int(&a, job->tout);
	pa_int(&a, job->ms);
	pa_text(&a, job->finish);
	pa_text(&a, job->code);
	pa_text(&a, job->text);
	pa_int(&a, now);
	pa_text(&a, pq_instance(h));
	return ((int)pq_cmd(h, sql_finish, &a));
}

/* The stored output of a job, in order. */
static int
pj_chunks(void *h, int64_t id, uint64_t after,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, (int64_t)after);
	if ((r = pq_query(h, sql_chunks, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++)
		ret = cb((int)pq_int(r, i, 0), pq_text(r, i, 1),
		    pq_len(r, i, 1), arg) == -1 ? -1 : 0;
	pq_clear(r);
	return (ret);
}

/* The text of one turn of a job's output, appended to b. */
static int
pj_turn_text(void *h, int64_t id, int turn, struct ibuf *b)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, turn);
	if ((r = pq_query(h, sql_turn, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++)
		ret = ibuf_add(b, pq_text(r, i, 0), pq_len(r, i, 0));
	pq_clear(r);
	return (ret == 0 ? 0 : -1);
}

/* The prompt of a job, to cb with role user. */
static int
pj_prompt(void *h, int64_t id, int (*cb)(int, const char *, size_t, void *),
    void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ret = -1;

	pa_init(&a);
	pa_int(&a, id);
	if ((r = pq_query(h, sql_prompt, &a)) == NULL)
		return (-1);
	if (pq_rows(r) == 1)
		ret = cb(ROLE_USER, pq_text(r, 0, 0), pq_len(r, 0, 0), arg);
	pq_clear(r);
	return (ret);
}

/* Where the newest messages that fit begin: the first id, or 0. */
static int
pj_first(struct pgdb *db, int64_t id, int64_t after, uint32_t maxitems,
    size_t maxbytes, int64_t *first)
{
	struct pq_args		 a;
	struct pg_result	*r;
	size_t			 bytes = 0, sz;
	int			 i;

	*first = 0;
	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, after);
	pa_int(&a, maxitems);
	if ((r = pq_query(db, sql_sizes, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && (uint32_t)i < maxitems; i++) {
		sz = (size_t)pq_int(r, i, 1);
		if (sz > maxbytes - bytes)
			break;
		bytes += sz;
		*first = pq_int(r, i, 0);
	}
	pq_clear(r);
	return (0);
}

/* The messages of a job's context from id first on, in order. */
static int
pj_rows(struct pgdb *db, int64_t id, int64_t first,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	const char		*role;
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, id);
	pa_int(&a, first);
	if ((r = pq_query(db, sql_rows, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r) && ret == 0; i++) {
		role = pq_text(r, i, 0);
		if (strcmp(role, "user") != 0 && strcmp(role, "model") != 0 &&
		    strcmp(role, "assistant") != 0)
			continue;
		ret = cb(strcmp(role, "user") == 0 ? ROLE_USER : ROLE_MODEL,
		    pq_text(r, i, 1), pq_len(r, i, 1), arg) == -1 ? -1 : 0;
	}
	pq_clear(r);
	return (ret);
}

/*
 * What a job of one prompt is answered with: the summary and the
 * messages of its conversation as stored when it was submitted (the
 * newest that fit), then its prompt.
 */
static int
pj_context(void *h, int64_t id, uint32_t maxitems, size_t maxbytes,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int64_t			 after = 0, first;
	size_t			 len;
	int			 ret = 0;

	pa_init(&a);
	pa_int(&a, id);
	if ((r = pq_query(h, sql_sum, &a)) == NULL)
		return (-1);
	if (pq_rows(r) == 1) {
		len = pq_len(r, 0, 0);
		after = pq_int(r, 0, 1);
		if (len <= maxbytes) {
			ret = cb(ROLE_SUMMARY, pq_text(r, 0, 0), len, arg);
			maxbytes -= len;
		}
	}
	pq_clear(r);
	if (ret == -1 || pj_first(h, id, after, maxitems, maxbytes,
	    &first) == -1)
		return (-1);
	if (first > 0 && pj_rows(h, id, first, cb, arg) == -1)
		return (-1);
	return (pj_prompt(h, id, cb, arg));
}

const struct db_job_ops pg_job_ops = {
	.open = pj_open,
	.close = pj_close,
	.submit = pj_submit,
	.get = pj_get,
	.waiting = pj_waiting,
	.set_conv = pj_set_conv,
	.demote = pj_demote,
	.purge = pj_purge,
	.list = pj_list,
	.pending = pj_pending,
	.claim = pj_claim,
	.renew = pj_renew,
	.cancel = pj_cancel,
	.release = pj_release,
	.start = pj_start,
	.chunk = pj_chunk,
	.finish = pj_finish,
	.chunks = pj_chunks,
	.turn_text = pj_turn_text,
	.context = pj_context,
	.prompt = pj_prompt,
};
