/*
 * storage_jobs.c: jobs as clients and control see them. A worker
 * submits (a write, answered after its COMMIT with the job's id),
 * lists, follows and kills; control lists and kills any. A job's end
 * is committed before anyone hears of it, so `. OK' after RESULT
 * means it is stored.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

#define FOLLOW_QUIET	2	/* s without output as it came: read on */

/* A line for bridgectl monitor, through the parent. */
void
job_event(const char *fmt, ...)
{
	struct ibuf	*b;
	va_list		 ap;
	char		 line[256];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((b = channel_create(parent_chan, IMSG_STORAGE_EVENT, 0,
	    strlen(line) + 8)) == NULL || ibuf_add_str(b, line) == -1) {
		ibuf_free(b);
		return;
	}
	channel_send(parent_chan, b);
}

/*
 * How many jobs of an identity may run at once: the one place that
 * decides it, for the provider, which runs them. The limits block or
 * the identity's issued token says; no limit is as many as may run.
 */
static uint32_t
jobs_limit(const char *identity)
{
	struct limits	 lim;

	if (db_limits(stor.db, identity, &stor.conf->g.limits, &lim, NULL,
	    0) == -1)
		lim = stor.conf->g.limits;
	if (lim.jobs == 0 || lim.jobs > JOBS_LIMIT_MAX)
		return (JOBS_LIMIT_MAX);
	return ((uint32_t)lim.jobs);
}

/* Tell the provider about a job: u64 id; a queued one's identity and
   limit. */
void
jobs_tell(uint32_t type, int64_t job, const char *identity)
{
	struct ibuf	*b;

	if (stor.jobs == NULL || stor.jobs->gone)
		return;		/* it lists them when it comes back */
	if ((b = channel_create(&stor.jobs->ch, type, 0, 96)) == NULL ||
	    ibuf_add_u64(b, (uint64_t)job) == -1 ||
	    (identity != NULL && (ibuf_add_str(b, identity) == -1 ||
	    ibuf_add_u32(b, jobs_limit(identity)) == -1)))
		fatal("%s", __func__);
	channel_send(&stor.jobs->ch, b);
}

/* A model name as a client may give it: printable, no blanks. */
int
job_model_valid(const char *m, int empty_ok)
{
	size_t	 i, len = strlen(m);

	if (len == 0)
		return (empty_ok);
	if (len >= MODEL_MAX_LEN)
		return (0);
	for (i = 0; i < len; i++)
		if ((unsigned char)m[i] <= 0x20 || m[i] == 0x7f)
			return (0);
	return (1);
}

/* The model(s) of a job as its status line names them. */
static void
job_models(const struct jdb_job *job, char *buf, size_t len)
{
	if (job->model_b[0] != '\0')
		snprintf(buf, len, "%s,%s", job->model, job->model_b);
	else
		strlcpy(buf, job->model, len);
}

/* IMSG_STORAGE_JOB_END: how a job ended, for its status line. */
static void
answer_job_end(struct wchan *w, uint32_t id, const struct jdb_job *job)
{
	struct ibuf	*b;
	char		 models[2 * MODEL_MAX_LEN];

	if (w->gone)
		return;
	job_models(job, models, sizeof(models));
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_END, 0,
	    512)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job->state) == -1 ||
	    ibuf_add_str(b, models) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tin) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tout) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->ms) == -1 ||
	    ibuf_add_str(b, job->finish) == -1 ||
	    ibuf_add_str(b, job->code) == -1 ||
	    ibuf_add_str(b, job->text) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_JOB_CHUNK: output to one follower. */
int
answer_chunk(struct wchan *w, uint32_t id, int kind, const char *text,
    size_t len)
{
	struct ibuf	*b;

	if (w->gone)
		return (-1);
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_CHUNK, 0,
	    len + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)kind) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	return (channel_send(&w->ch, b));
}

/* A job ended (or restarts): its followers hear how, and stop. */
void
followers_end(const struct jdb_job *job)
{
	struct follower	*f, *next;

	for (f = TAILQ_FIRST(&stor.followers); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->job != job->id)
			continue;
		answer_job_end(f->w, f->id, job);
		TAILQ_REMOVE(&stor.followers, f, entry);
		f->w->refs--;
		free(f);
	}
}

/* A job runs again from the start: what they saw is gone, they hear. */
void
followers_restart(struct jdb_job *job)
{
	job->state = JOB_FAILED;
	strlcpy(job->code, "upstream", sizeof(job->code));
	snprintf(job->text, sizeof(job->text), "job %lld restarts from the "
	    "start; RESULT %lld follows it again", (long long)job->id,
	    (long long)job->id);
	followers_end(job);
}

/* The job's first run began here: its followers follow that run. */
void
followers_run(const struct jdb_job *job)
{
	struct follower	*f;

	TAILQ_FOREACH(f, &stor.followers, entry)
		if (f->job == job->id)
			f->run = job->attempts;
}

/* A stored chunk past those the follower had. */
static int
follow_stored_chunk(int kind, const char *text, size_t len, void *arg)
{
	struct follower	*f = arg;

	f->sent++;
	return (answer_chunk(f->w, f->id, kind, text, len));
}

/*
 * One follower that had no output as it came for a while: its job runs
 * in another instance (or is quiet here). It gets what is stored past
 * what it had, then the end if the job has ended. A run that began
 * since it had output is another answer: it hears that the job
 * restarts. Either end frees every follower of the job.
 */
static void
follower_poll(struct follower *f)
{
	struct jdb_job	 job;
	char		 err[64];

	switch (job_load(f->job, &job)) {
	case -1:
		return;		/* tried again at the next poll */
	case 0:
		/* Purged with its identity's data meanwhile. */
		snprintf(err, sizeof(err), "not-found no job %lld",
		    (long long)f->job);
		answer_error(f->w, f->id, err);
		follow_drop(f->w, f->id);
		return;
	}
	if (job.attempts != f->run) {
		if (f->sent > 0) {
			followers_restart(&job);
			return;
		}
		f->run = job.attempts;	/* it had nothing of the last */
	}
	if (jdb_chunks(stor.jdb, f->job, f->sent, follow_stored_chunk, f) ==
	    -1)
		return;
	if (job.state != JOB_QUEUED && job.state != JOB_RUNNING)
		followers_end(&job);
}

/*
 * With a database several instances share, every cluster poll: the
 * followers of jobs that another instance runs have what it committed
 * since, and its end. Each follower is looked at once, from the head
 * again after each (an answer can drop followers of a channel).
 */
void
followers_poll(time_t now)
{
	struct follower	*f;

	/* Nothing pending: a read below commits nothing, ends no one. */
	round_settle();
	TAILQ_FOREACH(f, &stor.followers, entry)
		f->polled = 0;
	for (;;) {
		TAILQ_FOREACH(f, &stor.followers, entry)
			if (!f->polled)
				break;
		if (f == NULL)
			return;
		f->polled = 1;
		if (now - f->live >= FOLLOW_QUIET)
			follower_poll(f);
	}
}

/* A job's state now, read after what is pending was committed. */
int
job_load(int64_t id, struct jdb_job *job)
{
	round_settle();
	return (jdb_get(stor.jdb, id, job));
}

/*
 * A dialogue is a conversation of its own, dialogue-<job id> (unnamed
 * if the identity has one of that name already), that starts with the
 * opening; each turn is stored in it as it completes.
 */
static int
dialogue_begin(const char *identity, int64_t job, const char *model,
    const char *text, size_t len)
{
	struct db_conv	 c;
	char		 name[CONV_NAME_MAX + 1];
	int64_t		 row, now = (int64_t)time(NULL);
	int		 rv;

	snprintf(name, sizeof(name), "dialogue-%lld", (long long)job);
	if ((rv = db_conv_new(stor.db, identity, name, model, "", "", now,
	    &c)) == DB_EXISTS)
		rv = db_conv_new(stor.db, identity, "", model, "", "", now, &c);
	if (rv != 0 || db_store(stor.db, identity, c.id, arc4random(),
	    ROLE_USER, model, 0, text, len, now, &row) == -1 ||
	    jdb_dialogue_conv(stor.jdb, job, c.id) == -1) {
		log_warnx("job %lld: cannot begin its conversation",
		    (long long)job);
		return (-1);
	}
	return (0);
}

/*
 * IMSG_WORKER_SUBMIT: u32 id, u64 key, u32 kind, u32 turns, str model,
 * str model B, data prompt.
 */
const char *
worker_submit(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*model, *model_b, *text, *code;
	char		 why[LIMITS_TEXT_MAX];
	uint64_t	 key, conv;
	uint32_t	 kind, turns;
	size_t		 len;
	int		 rv;

	key = ir_u64(&a->ir);
	conv = ir_u64(&a->ir);
	kind = ir_u32(&a->ir);
	turns = ir_u32(&a->ir);
	model = ir_str(&a->ir);
	model_b = ir_str(&a->ir);
	text = ir_data(&a->ir, &len);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (kind >= JOB_KIND_MAX || !job_model_valid(model, 0) ||
	    !job_model_valid(model_b, kind == JOB_SUBMIT) ||
	    (kind == JOB_SUBMIT && (turns != 1 || model_b[0] != '\0')) ||
	    (kind == JOB_DIALOGUE && (turns < 2 || turns > JOB_TURNS_MAX)) ||
	    conv > INT64_MAX || (kind == JOB_DIALOGUE && conv != 0))
		return ("kind, turns, models or conversation");
	r = req_new(a);
	r->answer = job_flushed;
	if (len == 0 || !db_text_valid(text, len)) {
		r->error = "bad-argument the prompt cannot be stored";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	/* Within the transaction: a round of SUBMITs counts itself. */
	if (jdb_waiting(stor.jdb, w->identity) >= JOB_WAITING_MAX) {
		snprintf(r->errbuf, sizeof(r->errbuf), "busy %d jobs of "
		    "yours are queued or running; wait, or KILL one",
		    JOB_WAITING_MAX);
		r->error = r->errbuf;
		return (NULL);
	}
	/* A prompt is answered in a conversation of the identity's own. */
	if (kind == JOB_SUBMIT && (rv = db_conv_owned(stor.db, w->identity,
	    (int64_t)conv)) != 1) {
		if (rv == 0)
			req_refuse(r, "not-found", "no such conversation");
		else {
			r->error = "database error";
			group_fail_if_lost();
		}
		return (NULL);
	}
	/* A job is held to the identity's limits as a prompt is. */
	if ((rv = admit(w->identity, model, model_b, &code, why,
	    sizeof(why))) != 0) {
		if (rv == 1)
			req_refuse(r, code, "%s", why);
		else
			r->error = "database error";
		return (NULL);
	}
	rv = jdb_submit(stor.jdb, w->identity, (int64_t)conv, key, kind, turns,
	    model, model_b, text, len, (int64_t)time(NULL), &r->job);
	if (rv == 0 && kind == JOB_DIALOGUE &&
	    dialogue_begin(w->identity, r->job, model, text, len) == -1) {
		/* Both or neither: the job goes with the transaction. */
		stor.failed = 1;
		return (NULL);
	}
	if (rv == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	r->dup = rv == 1;
	r->rowid = r->job;
	(void)strlcpy(r->identity, w->identity, sizeof(r->identity));
	return (NULL);
}

/* One line of JOBS or show jobs. */
static int
answer_job_line(const struct jdb_job *job, void *arg)
{
	struct item_arg	*ia = arg;
	struct ibuf	*b;
	char		 models[2 * MODEL_MAX_LEN];

	if (ia->w->gone)
		return (-1);
	job_models(job, models, sizeof(models));
	if ((b = channel_create(&ia->w->ch, IMSG_STORAGE_JOB_LINE, 0,
	    512)) == NULL || ibuf_add_u32(b, ia->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job->state) == -1 ||
	    ibuf_add_str(b, models) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->created) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tout) == -1 ||
	    ibuf_add_str(b, job->client) == -1 ||
	    ibuf_add_str(b, job->head) == -1)
		fatal("%s", __func__);
	return (channel_send(&ia->w->ch, b));
}

/* RESULT: the head, what is stored, then the end or live output. */
static void
job_result(struct wchan *w, uint32_t id, int64_t jid)
{
	struct follower	*f;
	struct jdb_job	 job;
	struct ibuf	*b;
	char		 err[64];

	switch (job_load(jid, &job)) {
	case -1:
		answer_error(w, id, "database error");
		return;
	case 1:
		if (strcmp(job.client, w->identity) == 0)
			break;
		/* FALLTHROUGH */
	default:
		snprintf(err, sizeof(err), "not-found no job %lld",
		    (long long)jid);
		answer_error(w, id, err);
		return;
	}
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_HEAD, 0,
	    32)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)jid) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.state) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		fatal("%s", __func__);
	f->w = w;
	f->id = id;
	f->job = jid;
	f->run = job.attempts;
	f->live = time(NULL);
	if (jdb_chunks(stor.jdb, jid, 0, follow_stored_chunk, f) == -1) {
		free(f);
		answer_error(w, id, "database error");
		return;
	}
	if (job.state != JOB_QUEUED && job.state != JOB_RUNNING) {
		free(f);
		answer_job_end(w, id, &job);
		return;
	}
	w->refs++;
	TAILQ_INSERT_TAIL(&stor.followers, f, entry);
}

/*
 * IMSG_WORKER_JOBS, IMSG_CTL_JOBS: u32 id, u32 count;
 * IMSG_WORKER_RESULT: u32 id, u64 job; IMSG_WORKER_UNFOLLOW: u32 id.
 */
const char *
worker_job_read(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	uint64_t	 jid = 0, n;
	uint32_t	 count = 0, type = a->type;

	if (type == IMSG_WORKER_JOBS || type == IMSG_CTL_JOBS)
		count = ir_u32(&a->ir);
	else if (type == IMSG_WORKER_RESULT)
		jid = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	switch (type) {
	case IMSG_WORKER_UNFOLLOW:
		follow_drop(w, a->id);
		return (NULL);
	case IMSG_WORKER_RESULT:
		job_result(w, a->id, (int64_t)jid);
		return (NULL);
	}
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	round_settle();
	ia.w = w;
	ia.id = a->id;
	answer_end(w, a->id, jdb_list(stor.jdb, type == IMSG_CTL_JOBS ? NULL :
	    w->identity, count, answer_job_line, &ia, &n), n);
	return (NULL);
}

/* A job as KILL leaves it: cancelled. */
static void
job_cancel_state(struct jdb_job *job)
{
	job->state = JOB_CANCELLED;
	strlcpy(job->code, "cancelled", sizeof(job->code));
	snprintf(job->text, sizeof(job->text), "job %lld cancelled",
	    (long long)job->id);
}

/* KILL of a job that has ended: say how it ended. */
static void
job_ended_already(struct wreq *r, const struct jdb_job *job)
{
	snprintf(r->errbuf, sizeof(r->errbuf), "bad-argument job %lld is %s"
	    " already", (long long)job->id, job_state_name(job->state));
	r->error = r->errbuf;
}

/*
 * IMSG_WORKER_KILL (this identity's job), IMSG_CTL_JOBKILL (any): u32
 * id, u64 job. A queued or running job is cancelled; it is a write,
 * answered after its COMMIT. One that another instance runs (on a
 * shared database) is marked for that one, which stops it at its next
 * lease renewal.
 */
const char *
job_kill(struct ask *a)
{
	struct wchan	*w = a->w;
	struct jdb_job	 job;
	struct wreq	*r;
	uint64_t	 jid;
	int		 rv;

	jid = ir_u64(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	rv = job_load((int64_t)jid, &job);
	r = req_new(a);
	r->answer = job_flushed;
	r->job = (int64_t)jid;
	r->rowid = (int64_t)jid;
	if (rv == -1) {
		r->error = "database error";
		return (NULL);
	}
	if (rv == 0 || (!w->control && strcmp(job.client, w->identity) != 0)) {
		snprintf(r->errbuf, sizeof(r->errbuf), "not-found no job %llu",
		    (unsigned long long)jid);
		r->error = r->errbuf;
		return (NULL);
	}
	if (job.state != JOB_QUEUED && job.state != JOB_RUNNING) {
		job_ended_already(r, &job);
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	job_cancel_state(&job);
	if ((rv = jdb_finish(stor.jdb, &job, (int64_t)time(NULL))) == 0) {
		/* Another instance runs it: that one stops it. */
		if ((rv = jdb_cancel(stor.jdb, job.id,
		    (int64_t)time(NULL))) == 1)
			r->elsewhere = 1;
		else if (rv == 0 && jdb_get(stor.jdb, job.id, &job) == 1) {
			job_ended_already(r, &job);
			return (NULL);
		}
	}
	if (rv != 1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	return (NULL);
}

/*
 * A job this instance runs was killed through another one (its lease
 * renewal says so, storage_cluster_poll): it stops as a KILL here
 * stops it. Its end is stored (a statement of its own: the poll runs
 * between rounds) before the provider and its followers hear.
 */
int
job_cancelled_elsewhere(int64_t id, void *arg)
{
	struct jdb_job	 job;
	int		 rv;

	(void)arg;
	if (jdb_get(stor.jdb, id, &job) != 1 ||
	    (job.state != JOB_QUEUED && job.state != JOB_RUNNING))
		return (0);
	job_cancel_state(&job);
	if ((rv = jdb_finish(stor.jdb, &job, (int64_t)time(NULL))) != 1) {
		if (rv == -1)
			log_warnx("job %lld: cannot store its cancellation",
			    (long long)id);
		return (0);
	}
	job_event("job %lld: cancelled through another instance",
	    (long long)id);
	jobs_tell(IMSG_STORAGE_JOB_GONE, id, NULL);
	followers_end(&job);
	return (0);
}

/* A write about a job was committed: answer, tell, and tidy up. */
void
job_flushed(struct wreq *r)
{
	struct jdb_job	 job;

	switch (r->type) {
	case IMSG_WORKER_SUBMIT:
		answer_u64(r->w, IMSG_STORAGE_STORED, r->id,
		    (uint64_t)r->job);
		if (r->dup)
			return;
		job_event("job %lld: queued by %.12s", (long long)r->job,
		    r->identity);
		jobs_tell(IMSG_STORAGE_JOB_QUEUED, r->job, r->identity);
		return;
	case IMSG_WORKER_KILL:
	case IMSG_CTL_JOBKILL:
		answer_u64(r->w, r->type == IMSG_WORKER_KILL ?
		    IMSG_STORAGE_STORED : IMSG_STORAGE_END, r->id,
		    (uint64_t)r->job);
		if (r->elsewhere) {
			job_event("job %lld: cancel asked of the instance that"
			    " runs it%s", (long long)r->job,
			    r->type == IMSG_CTL_JOBKILL ? ", by the operator" :
			    "");
			return;
		}
		job_event("job %lld: cancelled%s", (long long)r->job,
		    r->type == IMSG_CTL_JOBKILL ? " by the operator" : "");
		jobs_tell(IMSG_STORAGE_JOB_GONE, r->job, NULL);
		break;
	case IMSG_PROVIDER_JOB_DONE:
	case IMSG_PROVIDER_JOB_FAIL:
		break;
	default:
		return;
	}
	if (jdb_get(stor.jdb, r->job, &job) == 1) {
		if (r->type == IMSG_PROVIDER_JOB_DONE)
			job_event("job %lld: done in=%lld out=%lld ms=%lld",
			    (long long)job.id, (long long)job.tin,
			    (long long)job.tout, (long long)job.ms);
		else if (r->type == IMSG_PROVIDER_JOB_FAIL)
			job_event("job %lld: failed %s", (long long)job.id,
			    job.code);
		followers_end(&job);
	}
}
