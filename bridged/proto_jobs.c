/*
 * proto_jobs.c: the background jobs of a BRIDGE/1 session: SUBMIT and
 * DIALOGUE (storage keeps the job, the provider runs it), JOBS, KILL,
 * and RESULT, which prints a finished job's answer or follows a
 * running one as it streams, until CANCEL. Storage says which of its
 * errors are the client's (a protocol code first).
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bridged.h"

static int	job_id(struct proto *, const char *, uint64_t *);
static void	job_submit(struct proto *, int, int, const char *,
		    const char *, const char *);
static int	dialogue_model(struct proto *, const char *, size_t, char *);
static const char *next_word(const char **, size_t *);
static int	job_request(struct proto *, uint32_t, uint64_t);

/* An error of storage as a status line: its own code, or storage. */
void
job_error(struct proto *p, const char *text)
{
	char	 code[32];
	size_t	 n;

	n = strcspn(text, " ");
	if (n < sizeof(code)) {
		memcpy(code, text, n);
		code[n] = '\0';
		if (err_code(code) != NULL && strcmp(code, "storage") != 0) {
			out_status(p, "ERR", "%s", text);
			return;
		}
	}
	out_status(p, "ERR", "storage %s", text);
}

/* A job id as a client writes it. */
static int
job_id(struct proto *p, const char *arg, uint64_t *id)
{
	const char	*errstr;

	*id = (uint64_t)strtonum(arg, 1, LLONG_MAX, &errstr);
	if (errstr != NULL) {
		out_status(p, "ERR", "bad-argument not a job id: %.32s", arg);
		return (-1);
	}
	return (0);
}

/* Queue a job in storage; answered with its id. */
static void
job_submit(struct proto *p, int kind, int turns, const char *a,
    const char *b, const char *text)
{
	struct ibuf	*q;
	size_t		 len = strlen(text);

	if (is_blank(text, len)) {
		out_status(p, "ERR", "bad-argument empty prompt");
		return;
	}
	if (len > PROTO_PROMPT_MAX) {
		out_status(p, "ERR", "too-long the prompt is longer than %d "
		    "bytes", PROTO_PROMPT_MAX);
		return;
	}
	p->req = proto_reqid(p);
	q = req_open(p, p->req);
	/* A dialogue is a conversation of its own, not this one. */
	if (ibuf_add_u64(q, p->ops->random(p->arg)) == -1 ||
	    ibuf_add_u64(q, kind == JOB_SUBMIT ? p->conv : 0) == -1 ||
	    ibuf_add_u32(q, (uint32_t)kind) == -1 ||
	    ibuf_add_u32(q, (uint32_t)turns) == -1 ||
	    ibuf_add_str(q, a) == -1 || ibuf_add_str(q, b) == -1 ||
	    ibuf_add_data(q, text, len) == -1)
		fatal("%s", __func__);
	if (storage_send(p, IMSG_WORKER_SUBMIT, q) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_SUBMIT;
	proto_event(p, "%s bytes=%zu", kind == JOB_SUBMIT ? "submit" :
	    "dialogue", len);
}

/* SUBMIT <prompt>: a job answered with the conversation as stored. */
void
cmd_submit(struct proto *p, const char *arg)
{
	if (p->model[0] == '\0') {
		out_status(p, "ERR", "no-model no model chosen,"
		    " see LIST-MODELS and CHANGE-MODEL");
		return;
	}
	job_submit(p, JOB_SUBMIT, 1, p->model, "", arg);
}

/* A model named by DIALOGUE: one of the list, if there is a list. */
static int
dialogue_model(struct proto *p, const char *w, size_t len, char *out)
{
	const struct pmodel	*m;
	char			 name[MODEL_MAX_LEN];

	if (len == 0 || len >= sizeof(name)) {
		out_status(p, "ERR", "bad-argument no model named %.*s",
		    (int)(len > 64 ? 64 : len), w);
		return (-1);
	}
	memcpy(name, w, len);
	name[len] = '\0';
	if (p->models.n > 0) {
		if ((m = mlist_find(&p->models, name)) == NULL) {
			out_status(p, "ERR", "bad-argument no model named %s",
			    name);
			return (-1);
		}
		strlcpy(out, m->name, MODEL_MAX_LEN);
	} else if (!model_name_ok(name)) {
		out_status(p, "ERR", "bad-argument no model named %s", name);
		return (-1);
	} else
		strlcpy(out, name, MODEL_MAX_LEN);
	return (0);
}

/* The next word of s: its start and length; s moves past it. */
static const char *
next_word(const char **s, size_t *len)
{
	const char	*w;

	while (is_space(**s))
		(*s)++;
	w = *s;
	while (**s != '\0' && !is_space(**s))
		(*s)++;
	*len = *s - w;
	return (w);
}

/* DIALOGUE <turns> <model A> <model B> <opening>. */
void
cmd_dialogue(struct proto *p, const char *arg)
{
	const char	*w, *errstr;
	char		 nb[16], a[MODEL_MAX_LEN], b[MODEL_MAX_LEN];
	size_t		 len;
	long long	 turns;

	w = next_word(&arg, &len);
	if (len == 0 || len >= sizeof(nb))
		goto usage;
	memcpy(nb, w, len);
	nb[len] = '\0';
	turns = strtonum(nb, 2, JOB_TURNS_MAX, &errstr);
	if (errstr != NULL) {
		out_status(p, "ERR", "bad-argument turns must be 2 to %d",
		    JOB_TURNS_MAX);
		return;
	}
	w = next_word(&arg, &len);
	if (len == 0 || dialogue_model(p, w, len, a) == -1)
		goto fail;
	w = next_word(&arg, &len);
	if (len == 0 || dialogue_model(p, w, len, b) == -1)
		goto fail;
	while (is_space(*arg))
		arg++;
	if (*arg == '\0')
		goto usage;
	job_submit(p, JOB_DIALOGUE, (int)turns, a, b, arg);
	return;
 fail:
	if (len > 0)
		return;
 usage:
	out_status(p, "ERR", "bad-argument DIALOGUE <turns> <model A> "
	    "<model B> <opening>");
}

/* JOBS [N]: the identity's last jobs. */
void
cmd_jobs(struct proto *p, const char *arg)
{
	list_request(p, arg, IMSG_WORKER_JOBS, OP_JOBS);
}

/* RESULT and KILL name a job. */
static int
job_request(struct proto *p, uint32_t type, uint64_t id)
{
	struct ibuf	*b;

	b = req_open(p, p->req);
	if (ibuf_add_u64(b, id) == -1)
		fatal("%s", __func__);
	return (storage_send(p, type, b));
}

/* RESULT <id>: a job's output, followed while it runs. */
void
cmd_result(struct proto *p, const char *arg)
{
	uint64_t	 id;

	if (job_id(p, arg, &id) == -1)
		return;
	p->req = proto_reqid(p);
	if (job_request(p, IMSG_WORKER_RESULT, id) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_RESULT;
	p->job = id;
	p->following = 0;
}

/* KILL <id>: stop a queued or running job. */
void
cmd_kill(struct proto *p, const char *arg)
{
	uint64_t	 id;

	if (job_id(p, arg, &id) == -1)
		return;
	p->req = proto_reqid(p);
	if (job_request(p, IMSG_WORKER_KILL, id) == -1) {
		out_status(p, "ERR", "storage not available");
		return;
	}
	p->op = OP_KILL;
	p->job = id;
}

/* CANCEL while following: the job goes on, the client stops reading. */
void
result_cancel(struct proto *p)
{
	p->ops->unfollow(p->arg, p->req);
	out_status(p, "ERR", "cancelled job %llu still running",
	    (unsigned long long)p->job);
	op_done(p);
}

/* One line of JOBS. */
void
job_answer_line(struct proto *p, uint32_t id, uint64_t job,
    uint32_t state, const char *model, uint64_t created, uint64_t tout,
    const char *head)
{
	char	 t[32], h[JOB_HEAD_MAX];

	if (p->closed || p->op != OP_JOBS || id != p->req)
		return;
	iso8601(created, t, sizeof(t));
	text_copy(h, sizeof(h), head);
	out_line(p, "%llu %s %s %s %llu %s", (unsigned long long)job,
	    job_state_name(state), model, t, (unsigned long long)tout, h);
	p->hcount++;
}

/* RESULT found the job: what is stored follows, then maybe live. */
void
job_answer_head(struct proto *p, uint32_t id, uint64_t job,
    uint32_t state)
{
	if (p->closed || p->op != OP_RESULT || id != p->req || job != p->job)
		return;
	p->following = state == JOB_QUEUED || state == JOB_RUNNING;
	proto_event(p, "result job=%llu state=%s", (unsigned long long)job,
	    job_state_name(state));
}

/* Output of the job RESULT shows: text, or a dialogue turn's header. */
void
job_answer_chunk(struct proto *p, uint32_t id, uint32_t kind,
    const char *text, size_t len)
{
	if (p->closed || p->op != OP_RESULT || id != p->req)
		return;
	if (kind == CHUNK_TURN) {
		if (!p->rw.bol)
			out_body(p, "\n", 1);
		out_line(p, "--- %.*s", (int)(len > MODEL_MAX_LEN ?
		    MODEL_MAX_LEN : len), text);
	} else
		out_body(p, text, len);
}

/* The job ended: its own status line ends RESULT. */
void
job_answer_end(struct proto *p, uint32_t id, uint32_t state,
    const char *model, uint64_t tin, uint64_t tout, uint64_t ms,
    const char *finish, const char *code, const char *text)
{
	const char	*c;
	char		 why[PROTO_TEXT_MAX];

	if (p->closed || p->op != OP_RESULT || id != p->req)
		return;
	text_copy(why, sizeof(why), text);
	if (state == JOB_DONE && finish[0] != '\0' &&
	    strcmp(finish, "STOP") != 0 &&
	    strspn(finish, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == strlen(finish))
		out_status(p, "OK", "model=%s in=%llu out=%llu ms=%llu "
		    "finish=%s", model, (unsigned long long)tin,
		    (unsigned long long)tout, (unsigned long long)ms, finish);
	else if (state == JOB_DONE)
		out_status(p, "OK", "model=%s in=%llu out=%llu ms=%llu", model,
		    (unsigned long long)tin, (unsigned long long)tout,
		    (unsigned long long)ms);
	else if (state == JOB_CANCELLED)
		out_status(p, "ERR", "cancelled job %llu was cancelled",
		    (unsigned long long)p->job);
	else {
		if ((c = err_code(code)) == NULL)
			c = "upstream";
		out_status(p, "ERR", "%s %s", c, why);
	}
	op_done(p);
}
