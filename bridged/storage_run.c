/*
 * storage_run.c: jobs as the provider runs them, on its own channel:
 * it learns of queued jobs, starts them, and sends their output as it
 * streams; each chunk is a write of the round, passed at once to
 * whoever follows the job, and its end a write that followers hear of
 * after the COMMIT.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/* Copy a job's prompt into an ibuf. */
static int
prompt_copy(int role, const char *text, size_t len, void *arg)
{
	(void)role;
	return (ibuf_add(arg, text, len));
}

/*
 * A job of one prompt is done: its prompt and answer go into its
 * conversation as a pair, in the transaction that marks it done.
 */
static int
job_store_pair(const struct jdb_job *job)
{
	struct ibuf	*p, *a;
	int64_t		 row, now = (int64_t)time(NULL);
	int		 rv = -1;

	if ((p = ibuf_open(256)) == NULL ||
	    (a = ibuf_open(4096)) == NULL) {
		ibuf_free(p);
		return (-1);
	}
	if (jdb_opening(stor.jdb, job->id, prompt_copy, p) == 0 &&
	    jdb_turn_text(stor.jdb, job->id, 0, a) == 0 &&
	    db_store(stor.db, job->client, job->conv, arc4random(), ROLE_USER,
	    job->model, 0, ibuf_data(p), ibuf_left(p), now, &row) != -1 &&
	    db_store(stor.db, job->client, job->conv, arc4random(), ROLE_MODEL,
	    job->model, (uint64_t)job->tout, ibuf_left(a) > 0 ?
	    ibuf_data(a) : "", ibuf_left(a), now, &row) != -1)
		rv = 0;
	ibuf_free(p);
	ibuf_free(a);
	return (rv);
}

/* JOB_DONE: u64 job, u64 in, u64 out, u64 ms, str finish; JOB_FAIL:
   u64 job, str code, str text. A write; followers hear after it. */
const char *
provider_job_end(struct ask *a)
{
	struct jdb_job	 job;
	struct wreq	*r;
	const char	*finish = "", *code = "", *text = "";
	uint64_t	 jid, tin = 0, tout = 0, ms = 0;
	int		 rv;

	jid = ir_u64(&a->ir);
	if (a->type == IMSG_PROVIDER_JOB_DONE) {
		tin = ir_u64(&a->ir);
		tout = ir_u64(&a->ir);
		ms = ir_u64(&a->ir);
		finish = ir_str(&a->ir);
	} else {
		code = ir_str(&a->ir);
		text = ir_str(&a->ir);
	}
	if (ir_end(&a->ir) == -1 || jid > INT64_MAX || tin > INT64_MAX ||
	    tout > INT64_MAX || ms > INT64_MAX)
		return ("length or values");
	if ((rv = job_load((int64_t)jid, &job)) != 1 ||
	    job.state != JOB_RUNNING) {
		if (rv == -1)
			log_warnx("job %llu: end not stored",
			    (unsigned long long)jid);
		return (NULL);	/* killed meanwhile */
	}
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = job_flushed;
	r->job = job.id;
	job.tin = (int64_t)tin;
	job.tout = (int64_t)tout;
	job.ms = (int64_t)ms;
	strlcpy(job.finish, finish, sizeof(job.finish));
	strlcpy(job.code, code, sizeof(job.code));
	strlcpy(job.text, text, sizeof(job.text));
	job.state = a->type == IMSG_PROVIDER_JOB_DONE ? JOB_DONE :
	    JOB_FAILED;
	if (job.state == JOB_DONE && job.kind == JOB_SUBMIT &&
	    job_store_pair(&job) == -1) {
		job.state = JOB_FAILED;
		strlcpy(job.code, "storage", sizeof(job.code));
		strlcpy(job.text, "the answer cannot be stored",
		    sizeof(job.text));
		group_fail_if_lost();
		if (stor.failed)
			return (NULL);
	}
	if (jdb_finish(stor.jdb, &job, (int64_t)time(NULL)) == -1)
		stor.failed = 1;
	/* Its tokens count for the identity, under its (first) model. */
	else if ((tin > 0 || tout > 0) && db_usage_tokens(stor.db, job.client,
	    job.model, (int64_t)time(NULL), tin, tout) == -1)
		group_fail_if_lost();
	return (NULL);
}

/* One queued or running job, for the provider's list. */
static int
jobs_list_one(int64_t id, const char *identity, void *arg)
{
	(void)arg;
	jobs_tell(IMSG_STORAGE_JOB_QUEUED, id, identity);
	return (0);
}

/* JOB_LIST: every queued or running job is told of (QUEUED). */
const char *
provider_job_list(struct ask *a)
{
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (jdb_pending(stor.jdb, jobs_list_one, NULL) == -1)
		log_warnx("cannot list the pending jobs");
	return (NULL);
}

/* One part of what a job is answered with. */
static int
jobs_part(int role, const char *text, size_t len, void *arg)
{
	struct ibuf	*b;
	int64_t		 jid = *(int64_t *)arg;

	if (stor.jobs == NULL || stor.jobs->gone)
		return (-1);
	if ((b = channel_create(&stor.jobs->ch, IMSG_STORAGE_JOB_PART, 0,
	    len + 32)) == NULL || ibuf_add_u64(b, (uint64_t)jid) == -1 ||
	    ibuf_add_u32(b, (uint32_t)role) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	return (channel_send(&stor.jobs->ch, b));
}

/*
 * JOB_START: u64 job. The job runs (again) from the start: marked
 * running, its old output gone, in a transaction of its own; then the
 * provider gets what to send, or GONE.
 */
const char *
provider_job_start(struct ask *a)
{
	struct jdb_job	 job;
	struct ibuf	*b;
	uint64_t	 jid;
	int		 rv, again;

	jid = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	if ((rv = job_load((int64_t)jid, &job)) != 1 ||
	    (job.state != JOB_QUEUED && job.state != JOB_RUNNING)) {
		jobs_tell(IMSG_STORAGE_JOB_GONE, (int64_t)jid, NULL);
		return (NULL);
	}
	again = job.state == JOB_RUNNING;
	if (db_begin(stor.db) == -1 ||
	    (rv = jdb_start(stor.jdb, job.id, (int64_t)time(NULL))) == -1 ||
	    db_commit(stor.db) == -1) {
		db_rollback(stor.db);
		log_warnx("job %lld: cannot start it", (long long)job.id);
		jobs_tell(IMSG_STORAGE_JOB_GONE, job.id, NULL);
		return (NULL);
	}
	job.attempts++;		/* the run that just began */
	if (again)
		followers_restart(&job);
	else
		followers_run(&job);
	job_event("job %lld: running%s", (long long)job.id,
	    again ? " again from the start" : "");
	if ((b = channel_create(&stor.jobs->ch, IMSG_STORAGE_JOB_SPEC, 0,
	    2 * MODEL_MAX_LEN + 64)) == NULL ||
	    ibuf_add_u64(b, (uint64_t)job.id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.kind) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.turns) == -1 ||
	    ibuf_add_str(b, job.model) == -1 ||
	    ibuf_add_str(b, job.model_b) == -1)
		fatal("%s", __func__);
	channel_send(&stor.jobs->ch, b);
	if (job.kind == JOB_SUBMIT)
		rv = jdb_context(stor.jdb, job.id, STORAGE_CONTEXT_MAX,
		    read_bound(), jobs_part, &job.id);
	else
		rv = jdb_opening(stor.jdb, job.id, jobs_part, &job.id);
	jobs_tell(rv == -1 ? IMSG_STORAGE_JOB_GONE : IMSG_STORAGE_JOB_READY,
	    job.id, NULL);
	return (NULL);
}

/* JOB_CHUNK: u64 job, u32 turn, u32 kind, data text. */
const char *
provider_job_chunk(struct ask *a)
{
	struct follower	*f;
	const char	*text;
	uint64_t	 jid;
	uint32_t	 turn, kind;
	size_t		 len;

	jid = ir_u64(&a->ir);
	turn = ir_u32(&a->ir);
	kind = ir_u32(&a->ir);
	text = ir_data(&a->ir, &len);
	if (ir_end(&a->ir) == -1 || jid > INT64_MAX || kind >= CHUNK_KIND_MAX ||
	    turn > JOB_TURNS_MAX)
		return ("length or values");
	if (len == 0)
		return (NULL);
	if (!db_text_valid(text, len))
		return ("text");
	if (group_join() == -1)
		return (NULL);
	switch (jdb_chunk(stor.jdb, (int64_t)jid, (int)turn, (int)kind, text,
	    len)) {
	case -1:
		group_fail_if_lost();
		return (NULL);
	case 0:
		return (NULL);	/* not running: killed */
	}
	TAILQ_FOREACH(f, &stor.followers, entry)
		if (f->job == (int64_t)jid) {
			f->sent++;
			f->live = time(NULL);
			answer_chunk(f->w, f->id, (int)kind, text, len);
		}
	return (NULL);
}

/*
 * A turn of a running dialogue is complete: its text goes into the
 * dialogue's conversation (if that still exists), under the model
 * that wrote it. A write of the round.
 */
static int
dialogue_turn(int64_t jid, int turn, const char *model, uint64_t tout)
{
	struct jdb_job	 job;
	struct ibuf	*b;
	int64_t		 row;
	int		 rv = -1;

	if (jdb_get(stor.jdb, jid, &job) != 1)
		return (-1);
	if (job.state != JOB_RUNNING || job.kind != JOB_DIALOGUE)
		return (0);
	if (group_join() == -1)
		return (-1);
	if (db_conv_owned(stor.db, job.client, job.conv) != 1)
		return (0);	/* deleted meanwhile */
	if ((b = ibuf_open(4096)) == NULL)
		return (-1);
	if (jdb_turn_text(stor.jdb, jid, turn, b) == 0 &&
	    db_store(stor.db, job.client, job.conv, arc4random(), ROLE_MODEL,
	    model, tout, ibuf_left(b) > 0 ? ibuf_data(b) : "", ibuf_left(b),
	    (int64_t)time(NULL), &row) != -1 &&
	    jdb_demote(stor.jdb, job.conv) == 0)
		rv = 0;
	else
		group_fail_if_lost();
	ibuf_free(b);
	return (rv);
}

/* JOB_TURN: u64 job, u32 turn, str model, u64 answer tokens. */
const char *
provider_job_turn(struct ask *a)
{
	const char	*model;
	uint64_t	 jid, tout;
	uint32_t	 turn;

	jid = ir_u64(&a->ir);
	turn = ir_u32(&a->ir);
	model = ir_str(&a->ir);
	tout = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1 || jid > INT64_MAX || tout > INT64_MAX ||
	    turn >= JOB_TURNS_MAX || !job_model_valid(model, 0))
		return ("length or values");
	job_event("job %llu: turn %u of %s, out=%llu",
	    (unsigned long long)jid, turn + 1, model,
	    (unsigned long long)tout);
	if (dialogue_turn((int64_t)jid, (int)turn, model, tout) == -1)
		log_warnx("job %llu: turn %u not stored in its conversation",
		    (unsigned long long)jid, turn + 1);
	return (NULL);
}
