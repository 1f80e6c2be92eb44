/*
 * jobs_db.c: the jobs side of the storage interface, what storage.c
 * calls for background jobs; each function calls the open database's
 * backend (db_sqlite_jobs.c, db_pg_jobs.c).
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

struct jdb {
	const struct db_job_ops	*ops;
	void			*h;
};

/* The jobs of storage's open database; NULL (logged) on failure. */
struct jdb *
jdb_open(struct db *db)
{
	struct jdb	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	j->ops = db_backend(db)->jobs;
	if ((j->h = j->ops->open(db_handle(db))) == NULL) {
		free(j);
		return (NULL);
	}
	return (j);
}

/* Close; NULL is fine. */
void
jdb_close(struct jdb *j)
{
	if (j == NULL)
		return;
	j->ops->close(j->h);
	free(j);
}

/*
 * Queue a job unless (client, key) is queued already: 0 new, 1 a
 * resent one, -1; *id is the job's. Its context is what is stored of
 * the conversation now.
 */
int
jdb_submit(struct jdb *j, const char *client, int64_t conv, uint64_t key,
    int kind, int turns, const char *model, const char *model_b,
    const char *prompt, size_t len, int64_t now, int64_t *id)
{
	if (len == 0 || !db_text_valid(prompt, len))
		return (-1);
	return (j->ops->submit(j->h, client, conv, key, kind, turns, model,
	    model_b, prompt, len, now, id));
}

/* One job: 1 found, 0 none, -1. */
int
jdb_get(struct jdb *j, int64_t id, struct jdb_job *job)
{
	return (j->ops->get(j->h, id, job));
}

/* How many jobs of a client are queued or running; -1 on error. */
int64_t
jdb_waiting(struct jdb *j, const char *client)
{
	return (j->ops->waiting(j->h, client));
}

/*
 * A dialogue's own conversation: the job is its, and the conversation
 * does not become the one its identity's next session resumes.
 */
int
jdb_dialogue_conv(struct jdb *j, int64_t id, int64_t conv)
{
	if (j->ops->set_conv(j->h, id, conv) == -1)
		return (-1);
	return (jdb_demote(j, conv));
}

/*
 * Storing a message makes its conversation the most recently used; a
 * dialogue's is put back last, so sessions keep resuming their own.
 */
int
jdb_demote(struct jdb *j, int64_t conv)
{
	return (j->ops->demote(j->h, conv));
}

/*
 * Delete every job of a client with its output (bridgectl purge);
 * *rows grows by the jobs deleted. One that runs finds itself gone.
 */
int
jdb_purge(struct jdb *j, const char *client, uint64_t *rows)
{
	return (j->ops->purge(j->h, client, rows));
}

/* The newest `count' jobs of a client (NULL: of everyone), newest first. */
int
jdb_list(struct jdb *j, const char *client, uint32_t count,
    int (*cb)(const struct jdb_job *, void *), void *arg, uint64_t *n)
{
	*n = 0;
	return (j->ops->list(j->h, client, count, cb, arg, n));
}

/* Every job queued or running, in the order submitted. */
int
jdb_pending(struct jdb *j, int (*cb)(int64_t, const char *, void *),
    void *arg)
{
	return (j->ops->pending(j->h, cb, arg));
}

/*
 * Jobs of another instance that died (its lease on them ran out),
 * now this instance's to run, to cb; none with a database of one.
 */
int
jdb_claim(struct jdb *j, int (*cb)(int64_t, const char *, void *),
    void *arg)
{
	return (j->ops->claim(j->h, cb, arg));
}

/*
 * This instance runs its jobs still: their leases go on. cb gets each
 * of them that another instance asked to cancel (jdb_cancel), in the
 * same query.
 */
int
jdb_renew(struct jdb *j, int (*cb)(int64_t, void *), void *arg)
{
	return (j->ops->renew(j->h, cb, arg));
}

/*
 * Ask the instance that runs a queued or running job to cancel it: it
 * hears at its next jdb_renew. 1 asked, 0 the job has ended (or, with
 * a database of one instance, there is no other to ask), -1.
 */
int
jdb_cancel(struct jdb *j, int64_t id, int64_t now)
{
	return (j->ops->cancel(j->h, id, now));
}

/*
 * This instance stops: its jobs' leases end now, so that the next to
 * look (itself started again, or another) runs them at once.
 */
int
jdb_release(struct jdb *j)
{
	return (j->ops->release(j->h));
}

/*
 * A job (queued, or running before a restart) runs from the start:
 * what it had produced goes. 1 started, 0 not to run, -1.
 */
int
jdb_start(struct jdb *j, int64_t id, int64_t now)
{
	return (j->ops->start(j->h, id, now));
}

/* Append output to a running job: 1 stored, 0 not running, -1. */
int
jdb_chunk(struct jdb *j, int64_t id, int turn, int kind, const char *text,
    size_t len)
{
	return (j->ops->chunk(j->h, id, turn, kind, text, len));
}

/* A queued or running job ends: 1 it did, 0 it had ended, -1. */
int
jdb_finish(struct jdb *j, const struct jdb_job *job, int64_t now)
{
	return (j->ops->finish(j->h, job, now));
}

/* The stored output of a job's run, in order, past its first `after'. */
int
jdb_chunks(struct jdb *j, int64_t id, uint64_t after,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	if (after > INT64_MAX)
		return (0);
	return (j->ops->chunks(j->h, id, after, cb, arg));
}

/* The text of one turn of a job's output, appended to b. */
int
jdb_turn_text(struct jdb *j, int64_t id, int turn, struct ibuf *b)
{
	return (j->ops->turn_text(j->h, id, turn, b));
}

/*
 * What a job of one prompt is answered with, in order: the summary
 * and the messages of its conversation as they were stored when it
 * was submitted (the newest that fit in the bounds), then its prompt.
 * Roles: ROLE_SUMMARY, ROLE_USER, ROLE_MODEL.
 */
int
jdb_context(struct jdb *j, int64_t id, uint32_t maxitems, size_t maxbytes,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	return (j->ops->context(j->h, id, maxitems, maxbytes, cb, arg));
}

/* Only the prompt: a dialogue starts from its opening alone. */
int
jdb_opening(struct jdb *j, int64_t id,
    int (*cb)(int, const char *, size_t, void *), void *arg)
{
	return (j->ops->prompt(j->h, id, cb, arg));
}
