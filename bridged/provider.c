/*
 * provider.c: the provider process. It alone holds the API keys and
 * talks to the upstream LLM APIs, every configured provider block at
 * once, with libcurl's multi interface driven by the event loop of
 * lib/: many concurrent streams, no thread per request. The providers,
 * their keys, model lists and generations are upstream.c's, batch jobs
 * jobs.c's; here are the channels of workers and the parent, the
 * requests on them, and the process around them.
 *
 * Workers (and control) reach it over their own channels, which the
 * parent hands over with IMSG_PARENT_CHANNEL. A worker asks for the
 * model list (IMSG_WORKER_MODELS; control IMSG_CTL_MODELS; answered
 * from a cache) or sends a context in parts (IMSG_WORKER_GEN_BEGIN,
 * _PART..., _END); each piece of the answer goes back as
 * IMSG_PROVIDER_CHUNK as soon as it is parsed. Every request gets
 * exactly one last answer: IMSG_PROVIDER_MODELS_END, IMSG_PROVIDER_DONE
 * or IMSG_PROVIDER_ERROR (also after IMSG_WORKER_CANCEL, with code
 * "cancelled"). A worker that breaks the protocol loses its channel
 * and the parent ends it; the provider goes on. Control breaking it
 * is fatal here.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridged.h"

#define PV_CHUNK_MAX	(1024 * 1024)		/* text per CHUNK */
#define PV_REQS_MAX	8			/* open requests a channel */
#define PV_TURNS_MAX	100000
#define PV_CONTEXT_MIN	(16 * 1024 * 1024)	/* bytes, over memory limit */
#define PV_NOTE_MAX	600			/* failures noted */
#define PV_NOTE_LINE	200			/* MODELS_END's note */

struct req;

struct peer {
	TAILQ_ENTRY(peer)	 entry;
	struct channel		 ch;
	uint32_t		 wid;
	TAILQ_HEAD(, req)	 reqs;
	int			 nreqs;
	int			 gone;
};
TAILQ_HEAD(peer_list, peer);

struct turn {
	int			 role;
	struct ibuf		*text;
};

enum req_kind {
	REQ_MODELS,
	REQ_GEN
};

enum req_state {
	RS_BUILDING,		/* parts arrive */
	RS_RUNNING,		/* sent upstream, or waiting for the list */
	RS_DISCARD		/* answered already: swallow parts and END */
};

/* A worker's request. */
struct req {
	TAILQ_ENTRY(req)	 entry;		/* w->reqs */
	TAILQ_ENTRY(req)	 wentry;	/* pv.waiters */
	struct peer		*w;
	uint32_t		 id;
	enum req_kind		 kind;
	enum req_state		 state;
	int			 waiting;	/* for the model lists */
	char			 model[MODEL_MAX_LEN];
	char			*system;
	struct gen_settings	 set;
	struct turn		*turns;
	size_t			 nturns;
	size_t			 maxturns;
	int			 open;		/* the last turn takes more */
	uint64_t		 bytes;
	const char		*err_code;	/* refused: answered at END */
	char			 err_text[128];
	struct gen		*g;
	uint64_t		 sent;
	uint64_t		 started;	/* ms */
};
TAILQ_HEAD(req_list, req);

/* Where send_model() sends: a worker's request. */
struct model_to {
	struct peer		*w;
	uint32_t		 id;
};

static struct {
	struct bridged_conf	*conf;
	struct ev_timer		 reap_timer;
	struct peer_list	 chans;
	struct peer_list	 dead;
	struct req_list		 waiters;
	int			 restart;	/* exit once idle */
} pv;

static void	provider_dispatch_parent(struct channel *, struct imsg *);
static void	provider_dispatch_worker(struct channel *, struct imsg *);
static void	provider_idle_check(void);
static void	listing_answer(void);
static void	preq_free(struct req *);
static void	send_error(struct peer *, uint32_t, const char *,
		    const char *, ...)
		    __attribute__((__format__ (printf, 4, 5)));

/* ---- answers to workers --------------------------------------------- */

/* Whether a channel can take an answer. */
static int
peer_ok(struct peer *w)
{
	return (!w->gone && !w->ch.dead);
}

/* Answer a request with IMSG_PROVIDER_ERROR: a code and one line. */
static void
send_error(struct peer *w, uint32_t id, const char *code,
    const char *fmt, ...)
{
	struct ibuf	*b;
	va_list		 ap;
	char		 text[800];
	size_t		 i;

	if (!peer_ok(w))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* A status line is one line. */
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	if ((b = channel_create(&w->ch, IMSG_PROVIDER_ERROR, 0,
	    strlen(text) + 64)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_str(b, code) == -1 ||
	    ibuf_add_str(b, text) == -1) {
		ibuf_free(b);
		log_warn("%s", __func__);
		return;
	}
	channel_send(&w->ch, b);
}

/* Forward text, in pieces that end on character boundaries. */
static void
send_chunk(struct peer *w, uint32_t id, const char *text, size_t len)
{
	struct ibuf	*b;
	size_t		 n;

	while (len > 0 && peer_ok(w)) {
		n = len;
		if (n > PV_CHUNK_MAX) {
			n = PV_CHUNK_MAX;
			while (n > 1 && ((unsigned char)text[n] & 0xc0) == 0x80)
				n--;
		}
		if ((b = channel_create(&w->ch, IMSG_PROVIDER_CHUNK, 0,
		    n + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
		    ibuf_add_data(b, text, n) == -1) {
			ibuf_free(b);
			log_warn("%s", __func__);
			return;
		}
		channel_send(&w->ch, b);
		text += n;
		len -= n;
	}
}

/* The answer is complete: tokens, finish reason, who answered. */
static void
send_done(struct peer *w, uint32_t id, const struct gen_result *res)
{
	struct ibuf	*b;

	if (!peer_ok(w))
		return;
	if ((b = channel_create(&w->ch, IMSG_PROVIDER_DONE, 0,
	    MODEL_MAX_LEN + 96)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_u64(b, res->prompt) == -1 ||
	    ibuf_add_u64(b, res->answer) == -1 ||
	    ibuf_add_str(b, res->finish) == -1 ||
	    ibuf_add_str(b, res->model) == -1) {
		ibuf_free(b);
		log_warn("%s", __func__);
		return;
	}
	channel_send(&w->ch, b);
}

/* upstream_models(): one model to a worker, as IMSG_PROVIDER_MODEL. */
static int
send_model(const char *name, const struct api_model *m, void *arg)
{
	struct model_to	*to = arg;
	struct ibuf	*b;

	if (!peer_ok(to->w))
		return (-1);
	if ((b = channel_create(&to->w->ch, IMSG_PROVIDER_MODEL, 0,
	    MODEL_MAX_LEN + 32)) == NULL || ibuf_add_u32(b, to->id) == -1 ||
	    ibuf_add_str(b, name) == -1 ||
	    ibuf_add_u64(b, m->input_limit) == -1 ||
	    ibuf_add_u64(b, m->output_limit) == -1) {
		ibuf_free(b);
		log_warn("%s", __func__);
		return (-1);
	}
	channel_send(&to->w->ch, b);
	return (0);
}

/* Send every provider's models, then the end with a note of failures. */
static void
send_models(struct peer *w, uint32_t id)
{
	struct model_to	 to = { w, id };
	struct ibuf	*b;
	const char	*code;
	char		 note[PV_NOTE_MAX], one[PV_NOTE_LINE + 1];

	if (upstream_models(send_model, &to, note, sizeof(note), &code) ==
	    -1 || !peer_ok(w))
		return;
	/* Nothing to list and a provider failed: that is the answer. */
	if (code != NULL) {
		send_error(w, id, code, "%s", note);
		return;
	}
	/* One line, cut on a character boundary. */
	wire_copy_line(one, PV_NOTE_LINE, note, strlen(note));
	if ((b = channel_create(&w->ch, IMSG_PROVIDER_MODELS_END, 0,
	    strlen(one) + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_str(b, one) == -1) {
		ibuf_free(b);
		log_warn("%s", __func__);
		return;
	}
	channel_send(&w->ch, b);
}

/* Once no listing runs, answer everyone who waits for the lists. */
static void
listing_answer(void)
{
	struct req	*r;

	if (upstream_listing())
		return;
	while ((r = TAILQ_FIRST(&pv.waiters)) != NULL) {
		TAILQ_REMOVE(&pv.waiters, r, wentry);
		r->waiting = 0;
		send_models(r->w, r->id);
		preq_free(r);
	}
}

/* ---- requests and channels ------------------------------------------ */

/* The open request of a channel with this id, or NULL. */
static struct req *
preq_find(struct peer *w, uint32_t id)
{
	struct req	*r;

	TAILQ_FOREACH(r, &w->reqs, entry)
		if (r->id == id)
			return (r);
	return (NULL);
}

/* Open a request on a channel. */
static struct req *
preq_new(struct peer *w, uint32_t id, enum req_kind kind)
{
	struct req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("%s", __func__);
	r->w = w;
	r->id = id;
	r->kind = kind;
	r->started = ev_now_ms();
	TAILQ_INSERT_TAIL(&w->reqs, r, entry);
	w->nreqs++;
	return (r);
}

/* Drop the context of a request; conversations are wiped. */
static void
preq_drop_turns(struct req *r)
{
	size_t	 i;

	for (i = 0; i < r->nturns; i++)
		ibuf_free(r->turns[i].text);
	free(r->turns);
	r->turns = NULL;
	r->nturns = r->maxturns = 0;
	r->open = 0;
	if (r->system != NULL)
		freezero(r->system, strlen(r->system));
	r->system = NULL;
}

/* Whether nothing is in flight: a pending restart may happen. */
static void
provider_idle_check(void)
{
	struct peer	*w;

	if (!pv.restart || !upstream_idle())
		return;
	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->nreqs > 0)
			return;
	log_info("provider: restarting to load the new configuration and "
	    "keys");
	upstream_wipe();
	/* A job's end just sent must reach storage, or it runs again. */
	jobs_flush();
	exit(0);
}

/* Forget a request; its generation, if any, is stopped. */
static void
preq_free(struct req *r)
{
	gen_cancel(r->g);
	r->g = NULL;
	if (r->waiting) {
		TAILQ_REMOVE(&pv.waiters, r, wentry);
		r->waiting = 0;
	}
	preq_drop_turns(r);
	TAILQ_REMOVE(&r->w->reqs, r, entry);
	r->w->nreqs--;
	free(r);
}

/* Free what was dropped, outside of the channel's own callbacks. */
static void
peer_reap(void *arg)
{
	struct peer	*w;

	(void)arg;
	while ((w = TAILQ_FIRST(&pv.dead)) != NULL) {
		TAILQ_REMOVE(&pv.dead, w, entry);
		free(w);
	}
	provider_idle_check();
}

/* Close a channel and stop everything it asked for. */
static void
peer_drop(struct peer *w)
{
	struct req	*r;

	if (w->gone)
		return;
	w->gone = 1;
	channel_shutdown(&w->ch);
	while ((r = TAILQ_FIRST(&w->reqs)) != NULL)
		preq_free(r);
	TAILQ_REMOVE(&pv.chans, w, entry);
	TAILQ_INSERT_TAIL(&pv.dead, w, entry);
	if (!ev_timer_pending(&pv.reap_timer))
		ev_timer_add(&pv.reap_timer, 0);
}

/*
 * A peer broke the protocol (imsg, or NULL for a broken frame).
 * Control (worker id 0): this process leaves (child_bad). A worker:
 * its channel is closed and the parent told to end it; the provider
 * goes on.
 */
static void
peer_reject(struct peer *w, struct imsg *imsg, const char *why)
{
	if (w->wid == 0)
		child_bad(PROC_CONTROL, imsg, why);
	log_warnx("bad %s from worker %u%s%s; closing its channel",
	    imsg != NULL ? imsg_type_name(imsg->hdr.type) : "framing",
	    w->wid, why != NULL ? ": " : "", why != NULL ? why : "");
	channel_compose_u32(parent_chan, IMSG_PROVIDER_REJECT, 0, w->wid);
	peer_drop(w);
}

/* The worker went away: so do its requests. */
static void
peer_closed(struct channel *ch)
{
	struct peer	*w = ch->arg;

	if (ch->broken) {
		peer_reject(w, NULL, NULL);
		return;
	}
	log_debug("worker %u: channel closed", w->wid);
	peer_drop(w);
}

/* ---- what workers ask --------------------------------------------- */

/* The largest context a request may carry. */
static uint64_t
context_max(void)
{
	uint64_t	 m = pv.conf != NULL ? pv.conf->g.memory_limit : 0;

	return (m + PV_CONTEXT_MIN);
}

/* A message that is a request id alone; otherwise the channel goes. */
static int
id_only(struct peer *w, struct imsg *imsg, uint32_t *id)
{
	struct ireader	 ir;

	ir_init(&ir, imsg);
	*id = ir_u32(&ir);
	if (ir_end(&ir) == -1) {
		peer_reject(w, imsg, "length");
		return (-1);
	}
	return (0);
}

/* IMSG_WORKER_MODELS, IMSG_CTL_MODELS: the lists, from caches or APIs. */
static void
worker_models(struct peer *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	if (preq_find(w, id) != NULL) {
		peer_reject(w, imsg, "request id in use");
		return;
	}
	if (!upstream_stale()) {
		send_models(w, id);
		return;
	}
	if (w->nreqs >= PV_REQS_MAX) {
		send_error(w, id, "busy", "too many requests at once");
		return;
	}
	r = preq_new(w, id, REQ_MODELS);
	r->state = RS_RUNNING;
	r->waiting = 1;
	TAILQ_INSERT_TAIL(&pv.waiters, r, wentry);
	upstream_refresh();
	listing_answer();
}

/* IMSG_WORKER_GEN_BEGIN: open a request for a model. */
static void
worker_gen_begin(struct peer *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model, *system;
	uint32_t	 id, max, temp;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	model = ir_str(&ir);
	system = ir_str(&ir);
	max = ir_u32(&ir);
	temp = ir_u32(&ir);
	if (ir_end(&ir) == -1) {
		peer_reject(w, imsg, "length or strings");
		return;
	}
	if (preq_find(w, id) != NULL) {
		peer_reject(w, imsg, "request id in use");
		return;
	}
	if (w->nreqs >= 2 * PV_REQS_MAX) {
		peer_reject(w, imsg, "too many open requests");
		return;
	}
	r = preq_new(w, id, REQ_GEN);
	if (w->nreqs > PV_REQS_MAX) {
		send_error(w, id, "busy", "too many requests at once");
		r->state = RS_DISCARD;
		return;
	}
	if (strlen(model) >= sizeof(r->model)) {
		r->err_code = "bad-argument";
		strlcpy(r->err_text, "not a model name", sizeof(r->err_text));
		return;
	}
	strlcpy(r->model, model, sizeof(r->model));
	r->set.max_tokens = max;
	r->set.temperature = temp == GEN_TEMP_NONE || temp > 100000 ? -1 :
	    temp / 1000.0;
	if (strlen(system) > context_max()) {
		r->err_code = "too-long";
		strlcpy(r->err_text, "the context is too large",
		    sizeof(r->err_text));
		return;
	}
	if (system[0] != '\0' && (r->system = strdup(system)) == NULL)
		fatal("%s", __func__);
	r->bytes = strlen(system);
}

/*
 * The pieces of a GEN_PART after its request id, each a u32 role, a u32
 * more and data: how many, or -1 if one is malformed or there is none.
 */
static int
gen_pieces_check(struct ireader ir)
{
	uint32_t	 role, more;
	size_t		 len;
	int		 n = 0;

	do {
		role = ir_u32(&ir);
		more = ir_u32(&ir);
		(void)ir_data(&ir, &len);
		if (ir.bad || role >= ROLE_MAX || more > 1)
			return (-1);
		n++;
	} while (ir.left > 0);
	return (n);
}

/*
 * One piece of text for the request's turns: appended to the current
 * turn, or the first of a new one, which stays open while more is set.
 * -1 if the worker broke a rule; a context grown too large is the
 * request's error, not the worker's.
 */
static int
preq_add_piece(struct req *r, uint32_t role, uint32_t more,
    const void *data, size_t len)
{
	struct turn	*t;

	if (r->state == RS_DISCARD || r->err_code != NULL)
		return (0);
	if (r->open && (uint32_t)r->turns[r->nturns - 1].role != role)
		return (-1);
	if (len > context_max() - r->bytes ||
	    (!r->open && r->nturns >= PV_TURNS_MAX)) {
		r->err_code = "too-long";
		strlcpy(r->err_text, "the context is too large",
		    sizeof(r->err_text));
		preq_drop_turns(r);
		return (0);
	}
	if (!r->open) {
		if (r->nturns == r->maxturns) {
			if ((t = recallocarray(r->turns, r->maxturns,
			    r->maxturns * 2 + 16, sizeof(*t))) == NULL)
				fatal("%s", __func__);
			r->turns = t;
			r->maxturns = r->maxturns * 2 + 16;
		}
		t = &r->turns[r->nturns++];
		t->role = role;
		if ((t->text = ibuf_open(len)) == NULL)
			fatal("%s", __func__);
	}
	t = &r->turns[r->nturns - 1];
	if (len > 0 && ibuf_add(t->text, data, len) == -1)
		fatal("%s", __func__);
	r->bytes += len;
	r->open = more;
	return (0);
}

/*
 * IMSG_WORKER_GEN_PART: a request id, then pieces of its turns' text in
 * order (one message carries as many as fit, so that a conversation's
 * context is a message or a few, not one for every turn).
 */
static void
worker_gen_part(struct peer *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const void	*data;
	size_t		 len;
	uint32_t	 id, role, more;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	if (ir.bad || ir.left == 0 || gen_pieces_check(ir) == -1) {
		peer_reject(w, imsg, "length or values");
		return;
	}
	if ((r = preq_find(w, id)) == NULL || r->kind != REQ_GEN ||
	    r->state == RS_RUNNING) {
		peer_reject(w, imsg, "no such request being built");
		return;
	}
	while (ir.left > 0) {
		role = ir_u32(&ir);
		more = ir_u32(&ir);
		data = ir_data(&ir, &len);
		if (preq_add_piece(r, role, more, data, len) == -1) {
			peer_reject(w, imsg, "the role changes inside a turn");
			return;
		}
	}
}

/* gen_sink of a worker's request: text goes out as CHUNKs. */
static void
preq_text(void *arg, const char *text, size_t len)
{
	struct req	*r = arg;

	send_chunk(r->w, r->id, text, len);
	r->sent += len;
}

/* gen_sink: bytes the worker has yet to take; 0 if none. */
static size_t
preq_queued(void *arg)
{
	struct req	*r = arg;

	if (!peer_ok(r->w))
		return (0);
	return (r->w->ch.ibuf.queued);
}

/* gen_sink: the answer is complete. */
static void
preq_done(void *arg, const struct gen_result *res)
{
	struct req	*r = arg;

	r->g = NULL;
	log_debug("worker %u: request %u done: %s, %llu bytes, %llu ms",
	    r->w->wid, r->id, res->finish, (unsigned long long)r->sent,
	    (unsigned long long)(ev_now_ms() - r->started));
	send_done(r->w, r->id, res);
	preq_free(r);
}

/* gen_sink: the generation failed. */
static void
preq_error(void *arg, const char *code, const char *text)
{
	struct req	*r = arg;

	r->g = NULL;
	log_info("worker %u: request %u failed: %s %s", r->w->wid, r->id,
	    code, text);
	send_error(r->w, r->id, code, "%s", text);
	preq_free(r);
}

/* The context is complete: send it upstream. */
static void
preq_start(struct req *r)
{
	struct gen_request	 rq;
	struct gen_sink		 sink;
	struct api_turn		*at;
	char			 code[32], text[300];
	size_t			 i;

	if ((at = calloc(r->nturns + 1, sizeof(*at))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < r->nturns; i++) {
		at[i].role = r->turns[i].role;
		at[i].text = ibuf_data(r->turns[i].text);
		at[i].len = ibuf_left(r->turns[i].text);
	}
	memset(&rq, 0, sizeof(rq));
	rq.model = r->model;
	rq.system = r->system;
	rq.turns = at;
	rq.nturns = r->nturns;
	rq.set = r->set;
	sink.text = preq_text;
	sink.queued = preq_queued;
	sink.done = preq_done;
	sink.error = preq_error;
	sink.arg = r;
	r->state = RS_RUNNING;
	r->g = gen_start(&rq, &sink, code, sizeof(code), text, sizeof(text));
	free(at);
	preq_drop_turns(r);
	if (r->g == NULL) {
		send_error(r->w, r->id, code, "%s", text);
		preq_free(r);
	}
}

/* IMSG_WORKER_GEN_END: the context is complete. */
static void
worker_gen_end(struct peer *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	if ((r = preq_find(w, id)) == NULL || r->kind != REQ_GEN ||
	    r->state == RS_RUNNING) {
		peer_reject(w, imsg, "no such request being built");
		return;
	}
	if (r->state == RS_DISCARD) {
		preq_free(r);
		return;
	}
	if (r->err_code != NULL) {
		send_error(w, id, r->err_code, "%s", r->err_text);
		preq_free(r);
		return;
	}
	preq_start(r);
}

/* IMSG_WORKER_CANCEL: stop a request, if it is still open. */
static void
worker_cancel(struct peer *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	/* Already answered: the cancel crossed the answer. */
	if ((r = preq_find(w, id)) == NULL || r->state == RS_DISCARD)
		return;
	log_debug("worker %u: request %u cancelled", w->wid, id);
	send_error(w, id, "cancelled", "cancelled");
	if (r->state == RS_BUILDING) {
		r->state = RS_DISCARD;
		preq_drop_turns(r);
	} else
		preq_free(r);
}

/* One message from a worker (or control): validate, copy, call. */
static void
provider_dispatch_worker(struct channel *ch, struct imsg *imsg)
{
	struct peer	*w = ch->arg;

	if (w->gone)
		return;
	/* Control (worker id 0) asks for the model list alone. */
	if ((w->wid == 0) != (imsg->hdr.type == IMSG_CTL_MODELS)) {
		peer_reject(w, imsg, "not from this peer");
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_WORKER_MODELS:
	case IMSG_CTL_MODELS:
		worker_models(w, imsg);
		break;
	case IMSG_WORKER_GEN_BEGIN:
		worker_gen_begin(w, imsg);
		break;
	case IMSG_WORKER_GEN_PART:
		worker_gen_part(w, imsg);
		break;
	case IMSG_WORKER_GEN_END:
		worker_gen_end(w, imsg);
		break;
	case IMSG_WORKER_CANCEL:
		worker_cancel(w, imsg);
		break;
	default:
		peer_reject(w, imsg, "unexpected type");
		break;
	}
}

/* ---- the parent ------------------------------------------------------ */

/* A worker's (or control's) channel; one with the same id is replaced. */
static void
peer_open(struct imsg *imsg)
{
	struct ireader	 ir;
	struct peer	*w;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	(void)ir_str(&ir);	/* the identity: not the provider's business */
	if (ir_end(&ir) == -1 || imsg->fd == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->wid == wid)
			break;
	if (w != NULL) {
		log_debug("worker %u: channel replaced", wid);
		peer_drop(w);
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s", __func__);
	w->wid = wid;
	TAILQ_INIT(&w->reqs);
	TAILQ_INSERT_TAIL(&pv.chans, w, entry);
	channel_init(&w->ch, imsg->fd, provider_dispatch_worker,
	    peer_closed, w);
	imsg->fd = -1;
}

/*
 * Take the configuration: every provider block, each with its key.
 * A new configuration (a reload) restarts this process once idle, so
 * that key files the sandbox hides are read again.
 */
static void
provider_config(int first)
{
	if (!first) {
		pv.restart = 1;
		upstream_conf(pv.conf);
		jobs_hold();
		provider_idle_check();
		return;
	}
	upstream_load(pv.conf, listing_answer);
	jobs_reload(pv.conf);
}

/* One message from the parent. */
static void
provider_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	switch (child_imsg(&pv.conf, NULL, imsg)) {
	case 1:
		provider_config(0);
		return;
	case 0:
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CHANNEL:
		peer_open(imsg);
		break;
	case IMSG_PARENT_JOBS:
		if (imsg->datalen != 0 || imsg->fd == -1)
			child_bad(PROC_PARENT, imsg, NULL);
		jobs_channel(imsg->fd);
		imsg->fd = -1;
		break;
	default:
		child_bad(PROC_PARENT, imsg, "unexpected");
	}
}

/* Without a parent there is nothing to serve. */
static void
provider_parent_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(PROC_PARENT, NULL, NULL);
	upstream_wipe();
	_exit(0);
}

/* SIGTERM, SIGINT: leave, wiping the keys. */
static void
provider_sig(int sig, void *arg)
{
	(void)arg;
	log_debug("provider: signal %d, leaving", sig);
	upstream_wipe();
	exit(0);
}

/* The provider process: set up, sandbox, serve. */
void
provider_main(void)
{
	struct sandbox_conf	 sc;

	TAILQ_INIT(&pv.chans);
	TAILQ_INIT(&pv.dead);
	TAILQ_INIT(&pv.waiters);
	ev_timer_set(&pv.reap_timer, peer_reap, NULL);
	jobs_init();

	/* Everything that needs files comes before the sandbox. */
	pv.conf = child_config(NULL);
	provider_config(1);
	xfer_init(provider_idle_check);

	memset(&sc, 0, sizeof(sc));
	sc.user = pv.conf->g.user[0] != '\0' ? pv.conf->g.user : NULL;
	if (sandbox_enter(SANDBOX_PROVIDER, &sc) == -1)
		fatalx("provider sandbox failed");

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	ev_signal(SIGTERM, provider_sig, NULL);
	ev_signal(SIGINT, provider_sig, NULL);
	parent_chan->closed = provider_parent_closed;
	child_ready();
	child_dispatch(provider_dispatch_parent);
	ev_loop();
	fatalx("provider: event loop ended");
}
