/*
 * provider.c: the provider process. It holds the API key and talks to
 * the upstream LLM API with libcurl's multi interface, driven by the
 * event loop of lib/: many concurrent streams, no thread per request.
 * The transfers themselves are in xfer.c; here are the requests, the
 * model list cache and the process around them.
 *
 * Workers (and control) reach it over their own channels, which the
 * parent hands over with IMSG_PARENT_CHANNEL. A worker asks for the
 * model list (IMSG_WORKER_MODELS, answered from a cache) or sends a
 * context in parts (IMSG_WORKER_GEN_BEGIN, _PART..., _END); each event
 * of the upstream's stream goes back as IMSG_PROVIDER_CHUNK as soon as
 * it is parsed. Every request gets exactly one last answer:
 * IMSG_PROVIDER_MODELS_END, IMSG_PROVIDER_DONE or IMSG_PROVIDER_ERROR
 * (also after IMSG_WORKER_CANCEL, with code "cancelled"). A worker
 * that breaks the protocol loses its channel; the provider goes on.
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

#include <curl/curl.h>

#include "bridged.h"

#define PV_PAGES_MAX	100			/* pages of one listing */
#define PV_MODELS_MAX	10000
#define PV_CHUNK_MAX	(1024 * 1024)		/* text per CHUNK */
#define PV_REQS_MAX	8			/* open requests a channel */
#define PV_TURNS_MAX	100000
#define PV_CONTEXT_MIN	(16 * 1024 * 1024)	/* bytes, over memory limit */
#define PV_KEY_MAX	4096

struct req;

struct wchan {
	TAILQ_ENTRY(wchan)	 entry;
	struct channel		 ch;
	uint32_t		 wid;
	TAILQ_HEAD(, req)	 reqs;
	int			 nreqs;
	int			 gone;
};
TAILQ_HEAD(wchan_list, wchan);

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

struct req {
	TAILQ_ENTRY(req)	 entry;		/* w->reqs */
	TAILQ_ENTRY(req)	 wentry;	/* pv.waiters */
	struct wchan		*w;		/* or NULL: a sink's */
	const struct gen_sink	*sink;
	void			*sinkarg;
	uint32_t		 id;
	enum req_kind		 kind;
	enum req_state		 state;
	int			 waiting;	/* for the model list */
	char			 model[MODEL_MAX_LEN];
	char			*system;
	struct turn		*turns;
	size_t			 nturns;
	size_t			 maxturns;
	int			 open;		/* the last turn takes more */
	uint64_t		 bytes;
	const char		*err_code;	/* refused: answered at END */
	char			 err_text[128];
	struct xfer		*x;
	uint64_t		 started;	/* ms */
};
TAILQ_HEAD(req_list, req);

static struct {
	struct bridged_conf	*conf;
	struct provider_conf	 pc;		/* the provider in use */
	int			 have_pc;
	char			*key;
	size_t			 keylen;
	char			 keyerr[160];	/* why there is no key */
	struct ev_timer		 reap_timer;
	struct wchan_list	 chans;
	struct wchan_list	 dead;
	struct req_list		 waiters;
	struct xfer		*listing;
	struct gem_model	*models;	/* the cached chat models */
	size_t			 nmodels;
	uint64_t		 models_at;	/* ms; 0: none */
	int			 restart;	/* exit once idle */
} pv;

static void	provider_dispatch_parent(struct channel *, struct imsg *);
static void	provider_dispatch_worker(struct channel *, struct imsg *);
static void	listing_start(void);
static void	req_free(struct req *);
static void	send_error(struct wchan *, uint32_t, const char *,
		    const char *, ...)
		    __attribute__((__format__ (printf, 4, 5)));

/* ---- the API key ---------------------------------------------------- */

/* A key goes in a header: printable ASCII, no spaces, no line ends. */
static int
key_valid(const char *k, size_t len)
{
	size_t	 i;

	if (len == 0 || len > PV_KEY_MAX)
		return (0);
	for (i = 0; i < len; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return (0);
	return (1);
}

/* Read the key from a file: one line, surrounding blanks dropped. */
static char *
key_from_file(const char *path, size_t *lenp, char *err, size_t errsz)
{
	struct stat	 sb;
	char		 buf[PV_KEY_MAX + 2], *k = NULL, *p;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "cannot open api key file %s: %s", path,
		    strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errsz, "api key file %s is not a file", path);
		close(fd);
		return (NULL);
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO))
		log_warnx("api key file %s is readable by others", path);
	while (len < sizeof(buf) &&
	    (n = read(fd, buf + len, sizeof(buf) - len)) > 0)
		len += n;
	close(fd);
	p = buf;
	while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' ||
	    p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	while (len > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	if (!key_valid(p, len))
		snprintf(err, errsz, "api key file %s: no usable key (one "
		    "line of printable characters)", path);
	else if ((k = malloc(len + 1)) == NULL)
		snprintf(err, errsz, "out of memory");
	else {
		memcpy(k, p, len);
		k[len] = '\0';
		*lenp = len;
	}
	explicit_bzero(buf, sizeof(buf));
	return (k);
}

/* Take the key from the environment, and wipe it there. */
static char *
key_from_env(const char *name, size_t *lenp, char *err, size_t errsz)
{
	char	*v, *k;
	size_t	 len;

	if ((v = getenv(name)) == NULL) {
		snprintf(err, errsz, "api key env %s is not set", name);
		return (NULL);
	}
	len = strlen(v);
	if (!key_valid(v, len)) {
		snprintf(err, errsz, "api key env %s: no usable key", name);
		return (NULL);
	}
	if ((k = strdup(v)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return (NULL);
	}
	explicit_bzero(v, len);
	unsetenv(name);
	*lenp = len;
	return (k);
}

/* Load the key of pc; 0 with a new key in pv, -1 with pv.keyerr set. */
static int
key_load(const struct provider_conf *pc)
{
	char	*k = NULL;
	size_t	 len = 0;

	if (pc->key_file[0] != '\0')
		k = key_from_file(pc->key_file, &len, pv.keyerr,
		    sizeof(pv.keyerr));
	else if (pc->key_env[0] != '\0')
		k = key_from_env(pc->key_env, &len, pv.keyerr,
		    sizeof(pv.keyerr));
	else
		snprintf(pv.keyerr, sizeof(pv.keyerr), "provider %s has no "
		    "api key", pc->name);
	if (k == NULL)
		return (-1);
	if (pv.key != NULL)
		freezero(pv.key, pv.keylen);
	pv.key = k;
	pv.keylen = len;
	pv.keyerr[0] = '\0';
	return (0);
}

/* Forget the key, leaving nothing of it in memory. */
static void
key_wipe(void)
{
	if (pv.key != NULL)
		freezero(pv.key, pv.keylen);
	pv.key = NULL;
	pv.keylen = 0;
}

/* ---- answers to workers --------------------------------------------- */

/* Whether a channel can take an answer. */
static int
wchan_ok(struct wchan *w)
{
	return (!w->gone && !w->ch.dead);
}

/* Answer a request with IMSG_PROVIDER_ERROR: a code and one line. */
static void
send_error(struct wchan *w, uint32_t id, const char *code,
    const char *fmt, ...)
{
	struct ibuf	*b;
	va_list		 ap;
	char		 text[800];
	size_t		 i;

	if (!wchan_ok(w))
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
send_chunk(struct wchan *w, uint32_t id, const char *text, size_t len)
{
	struct ibuf	*b;
	size_t		 n;

	while (len > 0 && wchan_ok(w)) {
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

/* The answer is complete: its token counts and finish reason. */
static void
send_done(struct wchan *w, uint32_t id, uint64_t prompt, uint64_t answer,
    const char *finish)
{
	struct ibuf	*b;

	if (!wchan_ok(w))
		return;
	if ((b = channel_create(&w->ch, IMSG_PROVIDER_DONE, 0, 64)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_u64(b, prompt) == -1 ||
	    ibuf_add_u64(b, answer) == -1 || ibuf_add_str(b, finish) == -1) {
		ibuf_free(b);
		log_warn("%s", __func__);
		return;
	}
	channel_send(&w->ch, b);
}

/* The cached list, then its end. */
static void
send_models(struct wchan *w, uint32_t id)
{
	struct ibuf	*b;
	size_t		 i;

	for (i = 0; i < pv.nmodels && wchan_ok(w); i++) {
		if ((b = channel_create(&w->ch, IMSG_PROVIDER_MODEL, 0,
		    MODEL_MAX_LEN + 32)) == NULL ||
		    ibuf_add_u32(b, id) == -1 ||
		    ibuf_add_str(b, pv.models[i].name) == -1 ||
		    ibuf_add_u64(b, pv.models[i].input_limit) == -1 ||
		    ibuf_add_u64(b, pv.models[i].output_limit) == -1) {
			ibuf_free(b);
			log_warn("%s", __func__);
			return;
		}
		channel_send(&w->ch, b);
	}
	if (wchan_ok(w))
		channel_compose(&w->ch, IMSG_PROVIDER_MODELS_END, 0, -1, &id,
		    sizeof(id));
}

/* ---- requests and channels ------------------------------------------ */

/* The open request of a channel with this id, or NULL. */
static struct req *
req_find(struct wchan *w, uint32_t id)
{
	struct req	*r;

	TAILQ_FOREACH(r, &w->reqs, entry)
		if (r->id == id)
			return (r);
	return (NULL);
}

/* Open a request on a channel. */
static struct req *
req_new(struct wchan *w, uint32_t id, enum req_kind kind)
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
req_drop_turns(struct req *r)
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
void
provider_idle_check(void)
{
	struct wchan	*w;

	if (!pv.restart || pv.listing != NULL || jobs_busy())
		return;
	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->nreqs > 0)
			return;
	log_info("provider: restarting to load the new api key");
	key_wipe();
	exit(0);
}

/* Forget a request; its transfer, if any, is stopped. */
static void
req_free(struct req *r)
{
	if (r->x != NULL) {
		r->x->req = NULL;
		xfer_free(r->x);
		r->x = NULL;
	}
	if (r->waiting) {
		TAILQ_REMOVE(&pv.waiters, r, wentry);
		r->waiting = 0;
	}
	req_drop_turns(r);
	if (r->w != NULL) {
		TAILQ_REMOVE(&r->w->reqs, r, entry);
		r->w->nreqs--;
	}
	free(r);
}

/* Free what was dropped, outside of the channel's own callbacks. */
static void
wchan_reap(void *arg)
{
	struct wchan	*w;

	(void)arg;
	while ((w = TAILQ_FIRST(&pv.dead)) != NULL) {
		TAILQ_REMOVE(&pv.dead, w, entry);
		free(w);
	}
	provider_idle_check();
}

/* Close a channel and stop everything it asked for. */
static void
wchan_drop(struct wchan *w)
{
	struct req	*r;

	if (w->gone)
		return;
	w->gone = 1;
	channel_shutdown(&w->ch);
	while ((r = TAILQ_FIRST(&w->reqs)) != NULL)
		req_free(r);
	TAILQ_REMOVE(&pv.chans, w, entry);
	TAILQ_INSERT_TAIL(&pv.dead, w, entry);
	if (!ev_timer_pending(&pv.reap_timer))
		ev_timer_add(&pv.reap_timer, 0);
}

/* A worker broke the protocol: log it and close its channel. */
static void
wchan_reject(struct wchan *w, struct imsg *imsg, const char *why)
{
	log_warnx("worker %u: bad %s (%s); closing its channel", w->wid,
	    imsg_type_name(imsg->hdr.type), why);
	wchan_drop(w);
}

/* The worker went away: so do its requests. */
static void
wchan_closed(struct channel *ch)
{
	struct wchan	*w = ch->arg;

	log_debug("worker %u: channel closed", w->wid);
	wchan_drop(w);
}

/* ---- the model list ------------------------------------------------- */

/* Whether the cached model list is young enough to serve. */
static int
models_fresh(void)
{
	uint64_t	 age;

	if (pv.models_at == 0 || pv.conf == NULL)
		return (0);
	age = ev_now_ms() - pv.models_at;
	return (age < (uint64_t)pv.conf->g.models_cache * 1000);
}

/* Drop the cached model list. */
static void
models_forget(void)
{
	free(pv.models);
	pv.models = NULL;
	pv.nmodels = 0;
	pv.models_at = 0;
}

/* The URL of one page of the list. */
static char *
models_url(const char *token)
{
	char	*esc = NULL, *url;

	if (token != NULL && (esc = curl_easy_escape(NULL, token, 0)) == NULL)
		fatalx("%s: curl_easy_escape", __func__);
	if (asprintf(&url, "%s/models?pageSize=1000%s%s", pv.pc.url,
	    esc != NULL ? "&pageToken=" : "", esc != NULL ? esc : "") == -1)
		fatal("%s", __func__);
	curl_free(esc);
	return (url);
}

/* Fetch the list for the requests waiting for it, unless under way. */
static void
listing_start(void)
{
	char	*url;

	if (pv.listing != NULL)
		return;
	if (!pv.have_pc) {
		listing_end("upstream", "no provider is configured");
		return;
	}
	if (pv.key == NULL) {
		listing_end("upstream", pv.keyerr);
		return;
	}
	url = models_url(NULL);
	pv.listing = xfer_new(XFER_MODELS, url, pv.key);
	free(url);
	if (xfer_start(pv.listing) == -1)
		listing_end("upstream-timeout", "no time left");
}

/* One page arrived: keep its chat models, then fetch the next. */
void
listing_page(struct xfer *x)
{
	struct gem_page	 pg;
	struct gem_model *m;
	size_t		 i, j;
	char		*url;

	if (gem_parse_models(ibuf_data(x->resp), ibuf_left(x->resp),
	    &pg) == -1) {
		listing_end("upstream", "the API sent a model list that "
		    "cannot be read");
		return;
	}
	if (pg.nskipped > 0)
		log_debug("model list: %zu entries without a usable name",
		    pg.nskipped);
	for (i = 0; i < pg.nmodels; i++) {
		if (!gem_model_is_chat(&pg.models[i]))
			continue;
		if (x->nmodels >= PV_MODELS_MAX)
			break;
		if ((m = recallocarray(x->models, x->nmodels, x->nmodels + 1,
		    sizeof(*m))) == NULL)
			fatal("%s", __func__);
		x->models = m;
		x->models[x->nmodels++] = pg.models[i];
	}
	x->pages++;
	if (pg.next != NULL) {
		if (x->pages >= PV_PAGES_MAX) {
			gem_page_free(&pg);
			listing_end("upstream", "the model list has too many "
			    "pages");
			return;
		}
		url = models_url(pg.next);
		gem_page_free(&pg);
		free(x->url);
		x->url = url;
		x->attempt = 0;
		x->deadline = ev_now_ms() + (uint64_t)(pv.pc.timeout > 0 ?
		    pv.pc.timeout : PROVIDER_TIMEOUT) * 1000;
		if (xfer_start(x) == -1)
			listing_end("upstream-timeout", "no time left");
		return;
	}
	gem_page_free(&pg);
	/* Sorted by name, each name once. */
	if (x->nmodels > 0)
		qsort(x->models, x->nmodels, sizeof(*x->models),
		    gem_model_cmp);
	for (i = j = 0; i < x->nmodels; i++)
		if (j == 0 || strcmp(x->models[j - 1].name,
		    x->models[i].name) != 0)
			x->models[j++] = x->models[i];
	models_forget();
	pv.models = x->models;
	pv.nmodels = j;
	pv.models_at = ev_now_ms();
	x->models = NULL;
	log_info("model list: %zu chat models in %d pages", pv.nmodels,
	    x->pages);
	listing_end(NULL, NULL);
}

/* The listing is over: answer everyone who waits for it. */
void
listing_end(const char *code, const char *text)
{
	struct xfer	*x = pv.listing;
	struct req	*r;
	int		 stale = 0;

	pv.listing = NULL;
	if (code != NULL) {
		stale = pv.models_at != 0;
		log_warnx("model list: %s%s", text, stale ?
		    "; answering with the last list" : "");
	}
	while ((r = TAILQ_FIRST(&pv.waiters)) != NULL) {
		TAILQ_REMOVE(&pv.waiters, r, wentry);
		r->waiting = 0;
		if (code == NULL || stale)
			send_models(r->w, r->id);
		else
			send_error(r->w, r->id, code, "%s", text);
		req_free(r);
	}
	xfer_free(x);
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
id_only(struct wchan *w, struct imsg *imsg, uint32_t *id)
{
	if (imsg->datalen != sizeof(*id)) {
		wchan_reject(w, imsg, "length");
		return (-1);
	}
	memcpy(id, imsg->data, sizeof(*id));
	return (0);
}

/* IMSG_WORKER_MODELS: the list, from the cache or the API. */
static void
worker_models(struct wchan *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	if (req_find(w, id) != NULL) {
		wchan_reject(w, imsg, "request id in use");
		return;
	}
	if (models_fresh()) {
		send_models(w, id);
		return;
	}
	if (w->nreqs >= PV_REQS_MAX) {
		send_error(w, id, "busy", "too many requests at once");
		return;
	}
	r = req_new(w, id, REQ_MODELS);
	r->state = RS_RUNNING;
	r->waiting = 1;
	TAILQ_INSERT_TAIL(&pv.waiters, r, wentry);
	listing_start();
}

/* IMSG_WORKER_GEN_BEGIN: open a request for a model. */
static void
worker_gen_begin(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model, *system;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	model = ir_str(&ir);
	system = ir_str(&ir);
	if (ir_end(&ir) == -1) {
		wchan_reject(w, imsg, "length or strings");
		return;
	}
	if (req_find(w, id) != NULL) {
		wchan_reject(w, imsg, "request id in use");
		return;
	}
	if (w->nreqs >= 2 * PV_REQS_MAX) {
		wchan_reject(w, imsg, "too many open requests");
		return;
	}
	r = req_new(w, id, REQ_GEN);
	if (w->nreqs > PV_REQS_MAX) {
		send_error(w, id, "busy", "too many requests at once");
		r->state = RS_DISCARD;
		return;
	}
	if (!gem_valid_model_name(model)) {
		r->err_code = "bad-argument";
		strlcpy(r->err_text, "not a model name", sizeof(r->err_text));
		return;
	}
	strlcpy(r->model, model, sizeof(r->model));
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

/* IMSG_WORKER_GEN_PART: text for the current turn. */
static void
worker_gen_part(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	struct turn	*t;
	const void	*data;
	size_t		 len;
	uint32_t	 id, role, more;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	role = ir_u32(&ir);
	more = ir_u32(&ir);
	data = ir_data(&ir, &len);
	if (ir_end(&ir) == -1 || role >= ROLE_MAX || more > 1) {
		wchan_reject(w, imsg, "length or values");
		return;
	}
	if ((r = req_find(w, id)) == NULL || r->kind != REQ_GEN ||
	    r->state == RS_RUNNING) {
		wchan_reject(w, imsg, "no such request being built");
		return;
	}
	if (r->state == RS_DISCARD || r->err_code != NULL)
		return;
	if (r->open && (uint32_t)r->turns[r->nturns - 1].role != role) {
		wchan_reject(w, imsg, "the role changes inside a turn");
		return;
	}
	if (len > context_max() - r->bytes ||
	    (!r->open && r->nturns >= PV_TURNS_MAX)) {
		r->err_code = "too-long";
		strlcpy(r->err_text, "the context is too large",
		    sizeof(r->err_text));
		req_drop_turns(r);
		return;
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
}

/* Tell whoever asked that a generation failed: a worker or a sink. */
static void
req_fail(struct req *r, const char *code, const char *text)
{
	if (r->sink != NULL)
		r->sink->fail(r->sinkarg, code, text);
	else
		send_error(r->w, r->id, code, "%s", text);
}

/* Send a request body upstream: 0, or -1 if there is no time left. */
static int
gen_send(struct req *r, char *body, size_t bodylen)
{
	struct xfer	*x;
	char		*url;

	if (asprintf(&url, "%s/models/%s:streamGenerateContent?alt=sse",
	    pv.pc.url, r->model) == -1)
		fatal("%s", __func__);
	x = xfer_new(XFER_GEN, url, pv.key);
	free(url);
	x->body = body;
	x->bodylen = bodylen;
	x->req = r;
	r->x = x;
	r->state = RS_RUNNING;
	log_debug("%s %u: request %u: model %s, %zu bytes", r->w != NULL ?
	    "worker" : "job", r->w != NULL ? r->w->wid : 0, r->id, r->model,
	    bodylen);
	return (xfer_start(x));
}

/* Why a generation cannot start now, or NULL. */
static const char *
gen_unable(void)
{
	if (!pv.have_pc)
		return ("no provider is configured");
	if (pv.key == NULL)
		return (pv.keyerr);
	return (NULL);
}

/* The context is complete: send it upstream. */
static void
gen_start(struct req *r)
{
	struct gem_turn	*gt;
	const char	*why;
	char		*body;
	size_t		 i, bodylen = 0;

	if ((why = gen_unable()) != NULL) {
		send_error(r->w, r->id, "upstream", "%s", why);
		req_free(r);
		return;
	}
	if (r->system != NULL && !utf8_valid(r->system, strlen(r->system))) {
		send_error(r->w, r->id, "bad-utf8", "the system instruction "
		    "is not valid UTF-8");
		req_free(r);
		return;
	}
	if ((gt = calloc(r->nturns + 1, sizeof(*gt))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < r->nturns; i++) {
		gt[i].role = r->turns[i].role;
		gt[i].text = ibuf_data(r->turns[i].text);
		gt[i].len = ibuf_left(r->turns[i].text);
		if (gt[i].len > 0 && !utf8_valid(gt[i].text, gt[i].len)) {
			free(gt);
			send_error(r->w, r->id, "bad-utf8", "the context is "
			    "not valid UTF-8");
			req_free(r);
			return;
		}
	}
	body = gem_request(gt, r->nturns, r->system, &bodylen);
	free(gt);
	req_drop_turns(r);
	if (body == NULL) {
		if (errno == EINVAL)
			send_error(r->w, r->id, "bad-argument", "nothing to "
			    "send: the prompt is empty");
		else
			send_error(r->w, r->id, "internal", "cannot build the "
			    "request");
		req_free(r);
		return;
	}
	if (gen_send(r, body, bodylen) == -1) {
		send_error(r->w, r->id, "upstream-timeout", "no time left");
		req_free(r);
	}
}

/*
 * A generation for the provider's own use (a job): its text, end or
 * failure go to the sink. NULL, with *code and *why set, when it
 * cannot start; then the sink hears nothing.
 */
struct req *
provider_gen(const char *model, const char *system,
    const struct gem_turn *turns, size_t nturns, const struct gen_sink *sink,
    void *arg, const char **code, const char **why)
{
	struct req	*r;
	char		*body;
	size_t		 i, bodylen = 0;

	*code = "upstream";
	if ((*why = gen_unable()) != NULL)
		return (NULL);
	*code = "bad-argument";
	*why = "not a model name";
	if (!gem_valid_model_name(model))
		return (NULL);
	*code = "bad-utf8";
	*why = "the context is not valid UTF-8";
	if (system != NULL && !utf8_valid(system, strlen(system)))
		return (NULL);
	for (i = 0; i < nturns; i++)
		if (turns[i].len > 0 && !utf8_valid(turns[i].text,
		    turns[i].len))
			return (NULL);
	if ((body = gem_request(turns, nturns, system, &bodylen)) == NULL) {
		*code = errno == EINVAL ? "bad-argument" : "internal";
		*why = errno == EINVAL ? "nothing to send: the prompt is "
		    "empty" : "cannot build the request";
		return (NULL);
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("%s", __func__);
	r->kind = REQ_GEN;
	r->sink = sink;
	r->sinkarg = arg;
	r->started = ev_now_ms();
	strlcpy(r->model, model, sizeof(r->model));
	if (gen_send(r, body, bodylen) == -1) {
		req_free(r);
		*code = "upstream-timeout";
		*why = "no time left";
		return (NULL);
	}
	return (r);
}

/* Stop a generation of provider_gen; its sink hears nothing more. */
void
provider_gen_cancel(struct req *r)
{
	if (r != NULL)
		req_free(r);
}

/* IMSG_WORKER_GEN_END: the context is complete. */
static void
worker_gen_end(struct wchan *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	if ((r = req_find(w, id)) == NULL || r->kind != REQ_GEN ||
	    r->state == RS_RUNNING) {
		wchan_reject(w, imsg, "no such request being built");
		return;
	}
	if (r->state == RS_DISCARD) {
		req_free(r);
		return;
	}
	if (r->err_code != NULL) {
		send_error(w, id, r->err_code, "%s", r->err_text);
		req_free(r);
		return;
	}
	gen_start(r);
}

/* IMSG_WORKER_CANCEL: stop a request, if it is still open. */
static void
worker_cancel(struct wchan *w, struct imsg *imsg)
{
	struct req	*r;
	uint32_t	 id;

	if (id_only(w, imsg, &id) == -1)
		return;
	/* Already answered: the cancel crossed the answer. */
	if ((r = req_find(w, id)) == NULL || r->state == RS_DISCARD)
		return;
	log_debug("worker %u: request %u cancelled", w->wid, id);
	send_error(w, id, "cancelled", "cancelled");
	if (r->state == RS_BUILDING) {
		r->state = RS_DISCARD;
		req_drop_turns(r);
	} else
		req_free(r);
}

/* One message from a worker (or control): validate, copy, call. */
static void
provider_dispatch_worker(struct channel *ch, struct imsg *imsg)
{
	struct wchan	*w = ch->arg;

	if (w->gone)
		return;
	switch (imsg->hdr.type) {
	case IMSG_WORKER_MODELS:
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
		wchan_reject(w, imsg, "unexpected type");
		break;
	}
}

/* ---- what transfers report ----------------------------------------- */

/* Bytes the worker of a generation has yet to take; 0 if none. */
size_t
gen_queued(struct xfer *x)
{
	if (x->req == NULL)
		return (0);
	if (x->req->sink != NULL)
		return (x->req->sink->queued(x->req->sinkarg));
	if (!wchan_ok(x->req->w))
		return (0);
	return (x->req->w->ch.ibuf.queued);
}

/* Text of the answer, as the stream brings it. */
void
gen_chunk(struct xfer *x, const char *text, size_t len)
{
	if (x->req->sink != NULL)
		x->req->sink->chunk(x->req->sinkarg, text, len);
	else
		send_chunk(x->req->w, x->req->id, text, len);
}

/* The backoff ran out of time: the request fails. */
void
gen_fail(struct xfer *x, const char *code, const char *text)
{
	struct req	*r = x->req;

	req_fail(r, code, text);
	req_free(r);
}

/* The generation is over: answered (code NULL) or failed. */
void
gen_end(struct xfer *x, const char *code, const char *text)
{
	struct req	*r;

	if ((r = x->req) == NULL) {
		xfer_free(x);
		return;
	}
	if (code == NULL) {
		log_debug("%s %u: request %u done: %s, %llu bytes, %llu ms",
		    r->w != NULL ? "worker" : "job", r->w != NULL ?
		    r->w->wid : 0, r->id, x->finish,
		    (unsigned long long)x->sent,
		    (unsigned long long)(ev_now_ms() - r->started));
		if (r->sink != NULL)
			r->sink->done(r->sinkarg, x->prompt < 0 ? 0 :
			    x->prompt, x->answer < 0 ? 0 : x->answer,
			    x->finish);
		else
			send_done(r->w, r->id, x->prompt < 0 ? 0 : x->prompt,
			    x->answer < 0 ? 0 : x->answer, x->finish);
		req_free(r);
		return;
	}
	log_info("%s %u: request %u failed: %s %s", r->w != NULL ?
	    "worker" : "job", r->w != NULL ? r->w->wid : 0, r->id, code,
	    text);
	req_fail(r, code, text);
	req_free(r);
}

/* ---- the parent ------------------------------------------------------ */

/* A worker's (or control's) channel; one with the same id is replaced. */
static void
parent_channel(struct imsg *imsg)
{
	struct ireader	 ir;
	struct wchan	*w;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	(void)ir_str(&ir);	/* the identity: not the provider's business */
	if (ir_end(&ir) == -1 || imsg->fd == -1)
		fatalx("%s: bad IMSG_PARENT_CHANNEL", __func__);
	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->wid == wid)
			break;
	if (w != NULL) {
		log_debug("worker %u: channel replaced", wid);
		wchan_drop(w);
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s", __func__);
	w->wid = wid;
	TAILQ_INIT(&w->reqs);
	TAILQ_INSERT_TAIL(&pv.chans, w, entry);
	channel_init(&w->ch, imsg->fd, provider_dispatch_worker,
	    wchan_closed, w);
	imsg->fd = -1;
}

/* Take the (new) configuration: the first provider block is used. */
static void
provider_reload(void)
{
	struct provider_conf	*p, old = pv.pc;
	int			 had = pv.have_pc, newsrc;
	size_t			 n;

	jobs_reload(pv.conf);
	if ((p = TAILQ_FIRST(&pv.conf->providers)) == NULL) {
		if (had)
			log_warnx("no provider configured");
		pv.have_pc = 0;
		key_wipe();
		models_forget();
		return;
	}
	if (TAILQ_NEXT(p, entry) != NULL)
		log_warnx("provider %s: only the first provider block is "
		    "used", p->name);
	pv.pc = *p;
	memset(&pv.pc.entry, 0, sizeof(pv.pc.entry));
	pv.have_pc = 1;
	/* The base URL, without a trailing slash. */
	n = strlen(pv.pc.url);
	while (n > 0 && pv.pc.url[n - 1] == '/')
		pv.pc.url[--n] = '\0';
	newsrc = !had || strcmp(old.key_file, p->key_file) != 0 ||
	    strcmp(old.key_env, p->key_env) != 0;
	/*
	 * The key file is root's and the sandbox hides it: a reload
	 * restarts this process, once idle, so the file is read again.
	 */
	if (had && p->key_file[0] != '\0') {
		pv.restart = 1;
		provider_idle_check();
		return;
	}
	if (key_load(&pv.pc) == -1) {
		if (pv.key == NULL)
			log_warnx("provider %s: %s", p->name, pv.keyerr);
		else if (newsrc) {
			/* The sandbox may hide the new file: start afresh. */
			log_warnx("provider %s: %s; the new key will be read "
			    "when the provider restarts", p->name, pv.keyerr);
			pv.restart = 1;
		}
	}
	if (had)
		models_forget();
	log_debug("provider %s: %s, %d s to connect, %d s per request, %d "
	    "retries", p->name, pv.pc.url, pv.pc.connect_timeout,
	    pv.pc.timeout, pv.pc.retries);
}

/* One message from the parent. */
static void
provider_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	switch (child_imsg(&pv.conf, NULL, imsg)) {
	case 1:
		provider_reload();
		return;
	case 0:
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CHANNEL:
		parent_channel(imsg);
		break;
	case IMSG_PARENT_JOBS:
		if (imsg->datalen != 0 || imsg->fd == -1)
			fatalx("%s: bad IMSG_PARENT_JOBS", __func__);
		jobs_channel(imsg->fd);
		imsg->fd = -1;
		break;
	default:
		fatalx("%s: unexpected %s", __func__,
		    imsg_type_name(imsg->hdr.type));
	}
}

/* Without a parent there is nothing to serve. */
static void
provider_parent_closed(struct channel *ch)
{
	(void)ch;
	key_wipe();
	_exit(0);
}

/* SIGTERM, SIGINT: leave, wiping the key. */
static void
provider_sig(int sig, void *arg)
{
	(void)arg;
	log_debug("provider: signal %d, leaving", sig);
	key_wipe();
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
	ev_timer_set(&pv.reap_timer, wchan_reap, NULL);
	jobs_init();

	/* Everything that needs files comes before the sandbox. */
	pv.conf = child_config(NULL);
	provider_reload();
	xfer_init(&pv.pc);

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
