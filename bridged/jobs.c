/*
 * jobs.c: background jobs in the provider process. Storage records
 * them; here they wait their turn and run, so they go on whatever
 * becomes of the client that submitted them.
 *
 * Storage tells of every queued job (IMSG_STORAGE_JOB_QUEUED, for all
 * of them when this process asks with IMSG_PROVIDER_JOB_LIST, as it
 * does whenever its channel to storage is new). A job starts when the
 * server runs fewer than `jobs max' and its identity fewer than its
 * limit, in the order submitted: this process asks storage to start it
 * (JOB_START), storage marks it running and sends what it is answered
 * with (SPEC, PART..., READY). The answer goes back as it streams
 * (JOB_CHUNK) and ends with JOB_DONE or JOB_FAIL; a dialogue sends a
 * JOB_TURN after each turn, its next turn answering the last. A job
 * that storage says is gone (killed) stops. If this process dies,
 * storage still has the job queued or running and the next provider
 * runs it again from the start.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridged.h"

#define JOB_CHUNK_MAX	(1024 * 1024)		/* text per JOB_CHUNK */
#define JOB_CONTEXT_MIN	(16 * 1024 * 1024)	/* over the memory limit */
#define JOB_PARTS_MAX	100000
#define JOB_FLUSH_WAIT	2000			/* ms, at exit */
#define JOB_CONTINUED	"(continued)"
#define JOB_NO_ANSWER	"(no answer)"

enum pjob_state {
	PJ_QUEUED,		/* waiting for a place */
	PJ_LOADING,		/* storage sends what it is answered with */
	PJ_RUNNING		/* a generation is under way */
};

/* A part of what a job is answered with. */
struct jpart {
	int			 role;	/* submit: ROLE_*; dialogue: the
					   writer, 0 (A) or 1 (B), -1 the
					   opening */
	struct ibuf		*text;
};

struct pjob {
	TAILQ_ENTRY(pjob)	 entry;
	int64_t			 id;
	char			 identity[IDENTITY_LEN + 1];
	int			 limit;		/* of its identity at once */
	enum pjob_state		 state;
	int			 kind;
	int			 nturns;
	int			 turn;
	char			 model[2][MODEL_MAX_LEN];
	struct ibuf		*summary;
	struct jpart		*parts;
	size_t			 nparts;
	size_t			 maxparts;
	uint64_t		 bytes;
	struct ibuf		*answer;	/* of the turn under way */
	struct gen		*gen;
	uint64_t		 t0;		/* ms */
	uint64_t		 tin;
	uint64_t		 tout;
	char			 finish[40];
};
TAILQ_HEAD(pjob_list, pjob);

static struct {
	struct channel		 ch;
	int			 have;
	int			 hold;		/* start nothing: restarting */
	struct pjob_list	 queue;		/* in the order submitted */
	int			 max;		/* jobs max */
	uint64_t		 context_max;
} jb;

static void	provider_dispatch_jobs(struct channel *, struct imsg *);
static void	jobs_closed(struct channel *);
static void	job_run_turn(struct pjob *);
static void	sink_chunk(void *, const char *, size_t);
static void	sink_done(void *, const struct gen_result *);
static void	sink_fail(void *, const char *, const char *);
static size_t	sink_queued(void *);

/* The settings of a (new) configuration. */
void
jobs_reload(const struct bridged_conf *conf)
{
	jb.max = conf->g.jobs_max > 0 ? conf->g.jobs_max : BRIDGED_JOBS_MAX;
	jb.context_max = conf->g.memory_limit + JOB_CONTEXT_MIN;
	jobs_schedule();
}

/* A reload restarts the provider once idle: start no more jobs. */
void
jobs_hold(void)
{
	jb.hold = 1;
}

/* Whether a job runs: the provider does not restart under it. */
int
jobs_busy(void)
{
	struct pjob	*j;

	TAILQ_FOREACH(j, &jb.queue, entry)
		if (j->state != PJ_QUEUED)
			return (1);
	return (0);
}

/* A job this process knows, by id. */
static struct pjob *
job_find(int64_t id)
{
	struct pjob	*j;

	TAILQ_FOREACH(j, &jb.queue, entry)
		if (j->id == id)
			return (j);
	return (NULL);
}

/* Drop what a job was to be answered with; prompts are wiped. */
static void
job_drop_parts(struct pjob *j)
{
	size_t	 i;

	for (i = 0; i < j->nparts; i++)
		ibuf_free(j->parts[i].text);
	free(j->parts);
	j->parts = NULL;
	j->nparts = j->maxparts = 0;
	j->bytes = 0;
	ibuf_free(j->summary);
	j->summary = NULL;
}

/* Add a part to what a job is answered with (text is taken). */
static void
part_add(struct pjob *j, int role, struct ibuf *text)
{
	struct jpart	*p;

	if (j->nparts == j->maxparts) {
		if ((p = recallocarray(j->parts, j->maxparts,
		    j->maxparts * 2 + 8, sizeof(*p))) == NULL)
			fatal("%s", __func__);
		j->parts = p;
		j->maxparts = j->maxparts * 2 + 8;
	}
	j->parts[j->nparts].role = role;
	j->parts[j->nparts++].text = text;
}

/* Forget a job: its generation, if any, stops. */
static void
job_free(struct pjob *j)
{
	if (j->gen != NULL)
		gen_cancel(j->gen);
	job_drop_parts(j);
	ibuf_free(j->answer);
	TAILQ_REMOVE(&jb.queue, j, entry);
	free(j);
}

/* Send a message to storage about a job; nothing if it is gone. */
static struct ibuf *
job_msg(uint32_t type, int64_t id, size_t hint)
{
	struct ibuf	*b;

	if (!jb.have || jb.ch.dead)
		return (NULL);
	if ((b = channel_create(&jb.ch, type, 0, hint + 16)) == NULL ||
	    ibuf_add_u64(b, (uint64_t)id) == -1)
		fatal("%s", __func__);
	return (b);
}

/* Output of a job, in pieces that end on character boundaries. */
static void
job_send_chunk(struct pjob *j, int kind, const char *text, size_t len)
{
	struct ibuf	*b;
	size_t		 n;

	while (len > 0) {
		n = len;
		if (n > JOB_CHUNK_MAX) {
			n = JOB_CHUNK_MAX;
			while (n > 1 && ((unsigned char)text[n] & 0xc0) == 0x80)
				n--;
		}
		if ((b = job_msg(IMSG_PROVIDER_JOB_CHUNK, j->id, n + 8)) ==
		    NULL)
			return;
		if (ibuf_add_u32(b, (uint32_t)j->turn) == -1 ||
		    ibuf_add_u32(b, (uint32_t)kind) == -1 ||
		    ibuf_add_data(b, text, n) == -1)
			fatal("%s", __func__);
		channel_send(&jb.ch, b);
		text += n;
		len -= n;
	}
}

/* The job failed: storage records why, and its place is free. */
static void
job_fail(struct pjob *j, const char *code, const char *text)
{
	struct ibuf	*b;

	log_info("job %lld failed: %s %s", (long long)j->id, code, text);
	if ((b = job_msg(IMSG_PROVIDER_JOB_FAIL, j->id, strlen(text) +
	    64)) != NULL) {
		if (ibuf_add_str(b, code) == -1 ||
		    ibuf_add_str(b, text) == -1)
			fatal("%s", __func__);
		channel_send(&jb.ch, b);
	}
	job_free(j);
	jobs_schedule();
}

/* Jobs running now, of everyone or of one identity. */
static int
jobs_running(const char *identity)
{
	struct pjob	*j;
	int		 n = 0;

	TAILQ_FOREACH(j, &jb.queue, entry)
		if (j->state != PJ_QUEUED && (identity == NULL ||
		    strcmp(j->identity, identity) == 0))
			n++;
	return (n);
}

/* Start what may start, oldest first. */
void
jobs_schedule(void)
{
	struct pjob	*j;
	struct ibuf	*b;
	int		 running;

	if (!jb.have || jb.ch.dead || jb.hold)
		return;
	running = jobs_running(NULL);
	TAILQ_FOREACH(j, &jb.queue, entry) {
		if (running >= jb.max)
			break;
		if (j->state != PJ_QUEUED ||
		    jobs_running(j->identity) >= j->limit)
			continue;
		if ((b = job_msg(IMSG_PROVIDER_JOB_START, j->id, 0)) == NULL)
			return;
		channel_send(&jb.ch, b);
		j->state = PJ_LOADING;
		running++;
	}
}

/* The turns of a job of one prompt, as its session would send them. */
static struct api_turn *
turns_submit(struct pjob *j, size_t *np)
{
	struct api_turn	*v;
	size_t		 i, k = 0;

	if ((v = calloc(j->nparts + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < j->nparts; i++) {
		if (k == 0 && j->parts[i].role != ROLE_USER) {
			v[k].role = ROLE_USER;
			v[k].text = JOB_CONTINUED;
			v[k++].len = strlen(JOB_CONTINUED);
		}
		v[k].role = j->parts[i].role;
		v[k].text = ibuf_data(j->parts[i].text);
		v[k].len = ibuf_left(j->parts[i].text);
		if (v[k].len == 0) {
			v[k].text = JOB_NO_ANSWER;
			v[k].len = strlen(JOB_NO_ANSWER);
		}
		k++;
	}
	*np = k;
	return (v);
}

/*
 * The turns of a dialogue as the model whose turn it is sees them:
 * its own answers are the model's, the opening and the other model's
 * answers the user's (two in a row are one turn upstream).
 */
static struct api_turn *
turns_dialogue(struct pjob *j, size_t *np)
{
	struct api_turn	*v;
	size_t		 i;
	int		 self = j->turn % 2;

	if ((v = calloc(j->nparts, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < j->nparts; i++) {
		v[i].role = j->parts[i].role == self ? ROLE_MODEL : ROLE_USER;
		v[i].text = ibuf_data(j->parts[i].text);
		v[i].len = ibuf_left(j->parts[i].text);
		if (v[i].len == 0) {
			v[i].text = JOB_NO_ANSWER;
			v[i].len = strlen(JOB_NO_ANSWER);
		}
	}
	*np = j->nparts;
	return (v);
}

/* Ask the upstream for the job's next answer. */
static void
job_run_turn(struct pjob *j)
{
	struct api_turn		*v;
	struct gen_request	 rq;
	struct gen_sink		 sink;
	const char		*model = j->model[j->turn % 2];
	char			*sys = NULL, code[32], why[PROTO_TEXT_MAX];
	size_t			 n, len = 0;

	if (j->answer == NULL && (j->answer = ibuf_open(4096)) == NULL)
		fatal("%s", __func__);
	ibuf_reset(j->answer);
	if (j->kind == JOB_DIALOGUE) {
		v = turns_dialogue(j, &n);
		job_send_chunk(j, CHUNK_TURN, model, strlen(model));
	} else {
		v = turns_submit(j, &n);
		if (j->summary != NULL) {
			len = strlen(SUMMARY_INTRO) + ibuf_left(j->summary) + 1;
			if ((sys = malloc(len)) == NULL)
				fatal("%s", __func__);
			strlcpy(sys, SUMMARY_INTRO, len);
			memcpy(sys + strlen(SUMMARY_INTRO),
			    ibuf_data(j->summary), ibuf_left(j->summary));
			sys[len - 1] = '\0';
		}
	}
	j->state = PJ_RUNNING;
	memset(&rq, 0, sizeof(rq));
	rq.model = model;
	rq.system = sys;
	rq.turns = v;
	rq.nturns = n;
	rq.set.temperature = -1;
	sink.text = sink_chunk;
	sink.queued = sink_queued;
	sink.done = sink_done;
	sink.error = sink_fail;
	sink.arg = j;
	j->gen = gen_start(&rq, &sink, code, sizeof(code), why, sizeof(why));
	free(v);
	freezero(sys, len);
	if (j->gen == NULL)
		job_fail(j, code, why);
}

/* Text of the answer, as the stream brings it. */
static void
sink_chunk(void *arg, const char *text, size_t len)
{
	struct pjob	*j = arg;

	job_send_chunk(j, CHUNK_TEXT, text, len);
	if (j->kind == JOB_DIALOGUE && ibuf_add(j->answer, text, len) == -1)
		fatal("%s", __func__);
}

/* Bytes storage has yet to take: the stream waits past a limit. */
static size_t
sink_queued(void *arg)
{
	(void)arg;
	if (!jb.have || jb.ch.dead)
		return (0);
	return (jb.ch.ibuf.queued);
}

/* A turn is answered: the next one, or the end of the job. */
static void
sink_done(void *arg, const struct gen_result *res)
{
	struct pjob	*j = arg;
	struct ibuf	*b;
	const char	*model = j->model[j->turn % 2];
	uint64_t	 tout = res->answer;

	j->gen = NULL;		/* the provider frees it */
	j->tin += res->prompt;
	j->tout += res->answer;
	strlcpy(j->finish, res->finish != NULL ? res->finish : "",
	    sizeof(j->finish));
	if (j->kind == JOB_DIALOGUE) {
		if ((b = job_msg(IMSG_PROVIDER_JOB_TURN, j->id,
		    strlen(model) + 32)) != NULL) {
			if (ibuf_add_u32(b, (uint32_t)j->turn) == -1 ||
			    ibuf_add_str(b, model) == -1 ||
			    ibuf_add_u64(b, tout) == -1)
				fatal("%s", __func__);
			channel_send(&jb.ch, b);
		}
		if (j->turn + 1 < j->nturns) {
			/* The answer becomes a part of the next turn's. */
			part_add(j, j->turn % 2, j->answer);
			j->answer = NULL;
			j->turn++;
			job_run_turn(j);
			return;
		}
	}
	if ((b = job_msg(IMSG_PROVIDER_JOB_DONE, j->id, 64)) != NULL) {
		if (ibuf_add_u64(b, j->tin) == -1 ||
		    ibuf_add_u64(b, j->tout) == -1 ||
		    ibuf_add_u64(b, ev_now_ms() - j->t0) == -1 ||
		    ibuf_add_str(b, j->finish) == -1)
			fatal("%s", __func__);
		channel_send(&jb.ch, b);
	}
	log_debug("job %lld done", (long long)j->id);
	job_free(j);
	jobs_schedule();
}

/* The generation failed: so does the job. */
static void
sink_fail(void *arg, const char *code, const char *text)
{
	struct pjob	*j = arg;

	j->gen = NULL;		/* the provider frees it */
	job_fail(j, code, text);
}

/* JOB_QUEUED: u64 job, str identity, u32 limit. Known ones are known
   already, but their limit may have changed. */
static int
job_queued(struct imsg *imsg)
{
	struct ireader	 ir;
	struct pjob	*j, *after;
	const char	*identity;
	uint64_t	 id;
	uint32_t	 limit;

	ir_init(&ir, imsg);
	id = ir_u64(&ir);
	identity = ir_str(&ir);
	limit = ir_u32(&ir);
	if (ir_end(&ir) == -1 || id == 0 || id > INT64_MAX ||
	    limit > JOBS_LIMIT_MAX ||
	    strlen(identity) != IDENTITY_LEN ||
	    strspn(identity, "0123456789abcdef") != IDENTITY_LEN)
		return (-1);
	if ((j = job_find((int64_t)id)) != NULL) {
		j->limit = (int)limit;
		return (0);
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		fatal("%s", __func__);
	j->id = (int64_t)id;
	j->limit = (int)limit;
	strlcpy(j->identity, identity, sizeof(j->identity));
	/* In the order submitted: after the last older one. */
	after = TAILQ_LAST(&jb.queue, pjob_list);
	while (after != NULL && after->id > j->id)
		after = TAILQ_PREV(after, pjob_list, entry);
	if (after == NULL)
		TAILQ_INSERT_HEAD(&jb.queue, j, entry);
	else
		TAILQ_INSERT_AFTER(&jb.queue, after, j, entry);
	jobs_schedule();
	return (0);
}

/* JOB_SPEC: u64 job, u32 kind, u32 turns, str model, str model B. */
static int
job_spec(struct imsg *imsg)
{
	struct ireader	 ir;
	struct pjob	*j;
	const char	*m, *mb;
	uint64_t	 id;
	uint32_t	 kind, turns;

	ir_init(&ir, imsg);
	id = ir_u64(&ir);
	kind = ir_u32(&ir);
	turns = ir_u32(&ir);
	m = ir_str(&ir);
	mb = ir_str(&ir);
	if (ir_end(&ir) == -1 || kind >= JOB_KIND_MAX || turns < 1 ||
	    turns > JOB_TURNS_MAX || strlen(m) >= MODEL_MAX_LEN ||
	    strlen(mb) >= MODEL_MAX_LEN ||
	    (kind == JOB_DIALOGUE && (turns < 2 || mb[0] == '\0')))
		return (-1);
	if ((j = job_find((int64_t)id)) == NULL || j->state != PJ_LOADING)
		return (0);
	job_drop_parts(j);
	j->kind = kind;
	j->nturns = kind == JOB_SUBMIT ? 1 : turns;
	j->turn = 0;
	j->tin = j->tout = 0;
	strlcpy(j->model[0], m, sizeof(j->model[0]));
	strlcpy(j->model[1], kind == JOB_DIALOGUE ? mb : m,
	    sizeof(j->model[1]));
	j->t0 = ev_now_ms();
	return (0);
}

/* JOB_PART: u64 job, u32 role, data text. */
static int
job_part(struct imsg *imsg)
{
	struct ireader	 ir;
	struct pjob	*j;
	struct ibuf	*b;
	const void	*text;
	uint64_t	 id;
	uint32_t	 role;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u64(&ir);
	role = ir_u32(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1 || role >= ROLE_MAX)
		return (-1);
	if ((j = job_find((int64_t)id)) == NULL || j->state != PJ_LOADING)
		return (0);
	if (len > jb.context_max - j->bytes || j->nparts >= JOB_PARTS_MAX) {
		job_fail(j, "too-long", "the context is too large");
		return (0);
	}
	j->bytes += len;
	if (role == ROLE_SUMMARY) {
		ibuf_free(j->summary);
		if ((j->summary = ibuf_open(len + 1)) == NULL ||
		    ibuf_add(j->summary, text, len) == -1)
			fatal("%s", __func__);
		return (0);
	}
	if ((b = ibuf_open(len + 1)) == NULL ||
	    (len > 0 && ibuf_add(b, text, len) == -1))
		fatal("%s", __func__);
	/* A dialogue's only part is its opening. */
	part_add(j, j->kind == JOB_DIALOGUE ? -1 : (int)role, b);
	return (0);
}

/* JOB_READY, JOB_GONE: u64 job. */
static int
job_ready_gone(struct imsg *imsg)
{
	struct ireader	 ir;
	struct pjob	*j;
	uint64_t	 id;

	ir_init(&ir, imsg);
	id = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return (-1);
	if ((j = job_find((int64_t)id)) == NULL)
		return (0);
	if (imsg->hdr.type == IMSG_STORAGE_JOB_GONE) {
		log_debug("job %lld: gone", (long long)j->id);
		job_free(j);
		jobs_schedule();
		return (0);
	}
	if (j->state != PJ_LOADING)
		return (0);
	if (j->nparts == 0) {
		job_fail(j, "internal", "the job has no prompt");
		return (0);
	}
	job_run_turn(j);
	return (0);
}

/* What storage says about jobs. */
static void
provider_dispatch_jobs(struct channel *ch, struct imsg *imsg)
{
	int	 rv = -1;

	(void)ch;
	if (imsg->fd == -1) {
		switch (imsg->hdr.type) {
		case IMSG_STORAGE_JOB_QUEUED:
			rv = job_queued(imsg);
			break;
		case IMSG_STORAGE_JOB_SPEC:
			rv = job_spec(imsg);
			break;
		case IMSG_STORAGE_JOB_PART:
			rv = job_part(imsg);
			break;
		case IMSG_STORAGE_JOB_READY:
		case IMSG_STORAGE_JOB_GONE:
			rv = job_ready_gone(imsg);
			break;
		}
	}
	if (rv == -1)
		child_bad(PROC_STORAGE, imsg, "on the jobs channel");
}

/*
 * Without storage nothing can be recorded: every job stops here, and
 * runs again from the start when storage is back.
 */
static void
jobs_closed(struct channel *ch)
{
	struct pjob	*j;

	if (ch->broken)
		child_bad(PROC_STORAGE, NULL, NULL);
	if (jb.have)
		log_debug("jobs: the channel to storage closed");
	jb.have = 0;
	while ((j = TAILQ_FIRST(&jb.queue)) != NULL)
		job_free(j);
}

/* IMSG_PARENT_JOBS: a (new) channel to storage; ask for its jobs. */
void
jobs_channel(int fd)
{
	if (jb.have && !jb.ch.dead)
		channel_shutdown(&jb.ch);
	jobs_closed(&jb.ch);
	channel_init(&jb.ch, fd, provider_dispatch_jobs, jobs_closed, NULL);
	jb.have = 1;
	channel_compose(&jb.ch, IMSG_PROVIDER_JOB_LIST, 0, -1, NULL, 0);
}

/* Before the process leaves: what storage is owed is written. */
void
jobs_flush(void)
{
	uint64_t	 end = ev_now_ms() + JOB_FLUSH_WAIT;

	if (!jb.have || jb.ch.dead)
		return;
	/* For a while: storage may not be reading. */
	while (jb.ch.ibuf.queued > 0 && ev_now_ms() < end) {
		if (imsg_write(&jb.ch.ibuf) == -1)
			return;
		if (jb.ch.ibuf.queued > 0)
			usleep(1000);
	}
}

/* Before any channel. */
void
jobs_init(void)
{
	TAILQ_INIT(&jb.queue);
	jb.max = BRIDGED_JOBS_MAX;
	jb.context_max = BRIDGED_MEMLIMIT + JOB_CONTEXT_MIN;
}
