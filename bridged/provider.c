/*
 * provider.c: the provider process. It alone holds the API keys and
 * talks to the upstream LLM APIs, every configured provider block at
 * once, with libcurl's multi interface driven by the event loop of
 * lib/: many concurrent streams, no thread per request.  The wire
 * format of each API is in its own file (struct api), the transfers
 * in xfer.c; here are the providers, their model lists, generations
 * (gen_start, for workers and for jobs alike) with their fallback,
 * and the process around them.
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

#define PV_PAGES_MAX	100			/* pages of one listing */
#define PV_MODELS_MAX	10000			/* models of one provider */
#define PV_CHUNK_MAX	(1024 * 1024)		/* text per CHUNK */
#define PV_REQS_MAX	8			/* open requests a channel */
#define PV_TURNS_MAX	100000
#define PV_CONTEXT_MIN	(16 * 1024 * 1024)	/* bytes, over memory limit */
#define PV_KEY_MAX	4096
#define PV_FAIL_CACHE	30			/* s, a failed listing kept */
#define PV_NOTE_MAX	600			/* failures noted */
#define PV_NOTE_LINE	200			/* MODELS_END's note */

/* Every API bridged speaks; a new one is one more line. */
static const struct api *const api_table[] = {
	&api_gemini,
	&api_openai,
	&api_anthropic,
};

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

/* A provider block in use. */
struct pvd {
	TAILQ_ENTRY(pvd)	 entry;
	struct provider_conf	 pc;		/* url without a trailing / */
	const struct api	*api;
	char			*key;		/* NULL: none */
	size_t			 keylen;
	char			 keyerr[160];	/* why a needed key is not */
	/* the model list */
	struct xfer		*listing;	/* being fetched */
	struct api_model	*lmodels;	/* what it brought so far */
	size_t			 nlmodels;
	int			 pages;
	struct api_model	*models;	/* the cached chat models */
	size_t			 nmodels;
	uint64_t		 models_at;	/* ms; 0: none */
	uint64_t		 failed_at;	/* ms; 0: the last one worked */
	const char		*fail_code;
	char			 fail_text[300];
};
TAILQ_HEAD(pvd_list, pvd);

/* A generation (see bridged.h). */
struct gen {
	TAILQ_ENTRY(gen)	 entry;
	struct gen_sink		 sink;
	struct pvd		*p;
	char			 model[MODEL_MAX_LEN];	/* upstream's name */
	char			 shown[MODEL_MAX_LEN];	/* clients' name */
	struct xfer		*x;
	/* kept for a fallback until the answer starts */
	int			 kept;
	char			*system;
	struct api_turn		*turns;
	char			**texts;	/* the turns' own copies */
	size_t			 nturns;
	struct gen_settings	 set;
	int			 fell;		/* on its fallback */
	uint64_t		 started;	/* ms */
};
TAILQ_HEAD(gen_list, gen);

static struct {
	struct bridged_conf	*conf;
	struct pvd_list		 pvds;
	int			 npvds;
	struct ev_timer		 reap_timer;
	struct peer_list	 chans;
	struct peer_list	 dead;
	struct req_list		 waiters;
	struct gen_list		 gens;
	int			 restart;	/* exit once idle */
} pv;

static void	provider_dispatch_parent(struct channel *, struct imsg *);
static void	provider_dispatch_worker(struct channel *, struct imsg *);
static void	provider_idle_check(void);
static void	listing_start(struct pvd *);
static void	listing_answer(void);
static void	preq_free(struct req *);
static void	send_error(struct peer *, uint32_t, const char *,
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

/* Load the key of a provider, if it has one; -1 with p->keyerr set. */
static int
key_load(struct pvd *p)
{
	const struct provider_conf	*pc = &p->pc;
	char				*k = NULL;
	size_t				 len = 0;

	p->keyerr[0] = '\0';
	if (pc->key_file[0] != '\0')
		k = key_from_file(pc->key_file, &len, p->keyerr,
		    sizeof(p->keyerr));
	else if (pc->key_env[0] != '\0')
		k = key_from_env(pc->key_env, &len, p->keyerr,
		    sizeof(p->keyerr));
	else {
		if (p->api->key_required)
			snprintf(p->keyerr, sizeof(p->keyerr), "provider %s "
			    "has no api key", pc->name);
		return (p->api->key_required ? -1 : 0);
	}
	if (k == NULL)
		return (-1);
	p->key = k;
	p->keylen = len;
	return (0);
}

/* Forget every key, leaving nothing of them in memory. */
static void
key_wipe(void)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &pv.pvds, entry) {
		if (p->key != NULL)
			freezero(p->key, p->keylen);
		p->key = NULL;
		p->keylen = 0;
	}
}

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


/* ---- providers and model names -------------------------------------- */

/* The API of a configured type. */
static const struct api *
api_of(enum provider_type t)
{
	size_t	 i;

	for (i = 0; i < sizeof(api_table) / sizeof(api_table[0]); i++)
		if (api_table[i]->type == t)
			return (api_table[i]);
	return (NULL);
}

/* The provider of this name, or NULL. */
static struct pvd *
pvd_find(const char *name, size_t len)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &pv.pvds, entry)
		if (strlen(p->pc.name) == len &&
		    strncmp(p->pc.name, name, len) == 0)
			return (p);
	return (NULL);
}

/* Whether a provider's cached list has this model. */
static int
pvd_lists(const struct pvd *p, const char *model)
{
	size_t	 i;

	for (i = 0; i < p->nmodels; i++)
		if (strcmp(p->models[i].name, model) == 0)
			return (1);
	return (0);
}

/* Whether a provider's "models" restriction lets this model through. */
static int
pvd_allows(const struct pvd *p, const char *model)
{
	int	 i;

	if (p->pc.nmodels == 0)
		return (1);
	for (i = 0; i < p->pc.nmodels; i++)
		if (strcmp(p->pc.models[i], model) == 0)
			return (1);
	return (0);
}

/*
 * The name clients see for a provider's model: "provider/model" when
 * several providers are configured, the model alone otherwise.
 * -1 if it does not fit.
 */
static int
shown_name(const struct pvd *p, const char *model, char *out, size_t sz)
{
	int	 n;

	if (pv.npvds > 1)
		n = snprintf(out, sz, "%s/%s", p->pc.name, model);
	else
		n = snprintf(out, sz, "%s", model);
	return (n < 0 || (size_t)n >= sz ? -1 : 0);
}

/*
 * Find the provider of a model name as a client gives it: with
 * several providers "provider/model", or a bare name only one
 * provider lists; with one provider the name as is ("provider/model"
 * is understood too, unless the provider lists that very name).
 * 0 with *pp, model (the upstream's name) and shown filled; -1 with
 * code and text.
 */
static int
resolve(const char *name, struct pvd **pp, char *model, char *shown,
    const char **code, char *text, size_t textsz)
{
	struct pvd	*p, *found = NULL;
	const char	*slash;
	int		 n = 0;

	*code = "bad-argument";
	if (name[0] == '\0' || strlen(name) >= MODEL_MAX_LEN) {
		snprintf(text, textsz, "not a model name");
		return (-1);
	}
	if (pv.npvds == 0) {
		*code = "upstream";
		snprintf(text, textsz, "no provider is configured");
		return (-1);
	}
	slash = strchr(name, '/');
	if (slash != NULL && (p = pvd_find(name, slash - name)) != NULL &&
	    (pv.npvds > 1 || !pvd_lists(p, name))) {
		found = p;
		name = slash + 1;
	} else if (pv.npvds == 1)
		found = TAILQ_FIRST(&pv.pvds);
	else {
		TAILQ_FOREACH(p, &pv.pvds, entry)
			if (pvd_lists(p, name) && pvd_allows(p, name)) {
				found = p;
				n++;
			}
		if (n > 1) {
			snprintf(text, textsz, "several providers have "
			    "model %s: say which, as provider/model", name);
			return (-1);
		}
		if (n == 0)
			TAILQ_FOREACH(p, &pv.pvds, entry)
				if (strcmp(p->pc.model, name) == 0) {
					found = p;
					break;
				}
		if (found == NULL) {
			*code = "no-model";
			snprintf(text, textsz, "no provider has model %s; "
			    "name it as provider/model", name);
			return (-1);
		}
	}
	if (!found->api->valid_model(name)) {
		snprintf(text, textsz, "not a model name");
		return (-1);
	}
	if (!pvd_allows(found, name)) {
		*code = "no-model";
		snprintf(text, textsz, "provider %s does not offer model %s",
		    found->pc.name, name);
		return (-1);
	}
	strlcpy(model, name, MODEL_MAX_LEN);
	if (shown_name(found, name, shown, MODEL_MAX_LEN) == -1) {
		snprintf(text, textsz, "the model name is too long");
		return (-1);
	}
	*pp = found;
	return (0);
}

/* ---- model lists ----------------------------------------------------- */

/* Whether a provider's cached list is young enough to serve. */
static int
models_fresh(const struct pvd *p)
{
	uint64_t	 now = ev_now_ms(), keep, fkeep;

	if (pv.conf == NULL)
		return (0);
	keep = (uint64_t)pv.conf->g.models_cache * 1000;
	fkeep = keep < PV_FAIL_CACHE * 1000 ? keep : PV_FAIL_CACHE * 1000;
	/* A provider that just failed is not asked again at once. */
	if (p->failed_at != 0)
		return (now - p->failed_at < fkeep);
	return (p->models_at != 0 && now - p->models_at < keep);
}

/* Drop a provider's cached list. */
static void
models_forget(struct pvd *p)
{
	free(p->models);
	p->models = NULL;
	p->nmodels = 0;
	p->models_at = 0;
	p->failed_at = 0;
}

/* qsort(3) order of models: by name. */
static int
model_cmp(const void *a, const void *b)
{
	const struct api_model	*ma = a, *mb = b;

	return (strcmp(ma->name, mb->name));
}

/* A provider's listing is over: keep its list or why it failed. */
static void
listing_end(struct pvd *p, const char *code, const char *text)
{
	size_t	 i, j;

	/* text may be the transfer's own: keep it before freeing that. */
	if (code != NULL)
		strlcpy(p->fail_text, text, sizeof(p->fail_text));
	xfer_free(p->listing);
	p->listing = NULL;
	if (code != NULL) {
		p->failed_at = ev_now_ms();
		p->fail_code = code;
		log_warnx("provider %s: model list: %s%s", p->pc.name, text,
		    p->models_at != 0 ? "; answering with the last list" :
		    "");
	} else {
		/* Sorted by name, each name once. */
		if (p->nlmodels > 0)
			qsort(p->lmodels, p->nlmodels, sizeof(*p->lmodels),
			    model_cmp);
		for (i = j = 0; i < p->nlmodels; i++)
			if (j == 0 || strcmp(p->lmodels[j - 1].name,
			    p->lmodels[i].name) != 0)
				p->lmodels[j++] = p->lmodels[i];
		models_forget(p);
		p->models = p->lmodels;
		p->nmodels = j;
		p->models_at = ev_now_ms();
		p->lmodels = NULL;
		log_info("provider %s: model list: %zu chat models in %d "
		    "pages", p->pc.name, p->nmodels, p->pages);
	}
	free(p->lmodels);
	p->lmodels = NULL;
	p->nlmodels = 0;
	listing_answer();
}

/* xfer_ops of a listing: a page arrived, or the transfer failed. */
static void
listing_done(void *arg, struct xfer *x, const char *code, const char *text)
{
	struct pvd	*p = arg;
	struct api_page	 pg;
	struct api_model *m;
	size_t		 i;
	char		*url;
	int		 rv;

	if (code != NULL) {
		listing_end(p, code, text);
		return;
	}
	if (p->api->parse_models(ibuf_data(x->resp), ibuf_left(x->resp),
	    &pg) == -1) {
		listing_end(p, "upstream", "the API sent a model list that "
		    "cannot be read");
		return;
	}
	if (pg.nskipped > 0)
		log_debug("provider %s: model list: %zu entries left out",
		    p->pc.name, pg.nskipped);
	for (i = 0; i < pg.nmodels && p->nlmodels < PV_MODELS_MAX; i++) {
		if ((m = recallocarray(p->lmodels, p->nlmodels,
		    p->nlmodels + 1, sizeof(*m))) == NULL)
			fatal("%s", __func__);
		p->lmodels = m;
		p->lmodels[p->nlmodels++] = pg.models[i];
	}
	p->pages++;
	if (pg.next != NULL) {
		if (p->pages >= PV_PAGES_MAX) {
			wire_page_free(&pg);
			listing_end(p, "upstream", "the model list has too "
			    "many pages");
			return;
		}
		url = p->api->models_url(p->pc.url, pg.next);
		wire_page_free(&pg);
		rv = xfer_restart(x, url);
		free(url);
		if (rv == -1)
			listing_end(p, "upstream-timeout", "no time left");
		return;
	}
	wire_page_free(&pg);
	listing_end(p, NULL, NULL);
}

static const struct xfer_ops listing_ops = {
	.queued = NULL,
	.text = NULL,
	.done = listing_done,
};

/* Fetch a provider's list, unless under way. */
static void
listing_start(struct pvd *p)
{
	char	*url;

	if (p->listing != NULL)
		return;
	free(p->lmodels);
	p->lmodels = NULL;
	p->nlmodels = 0;
	p->pages = 0;
	if (p->key == NULL && p->keyerr[0] != '\0') {
		listing_end(p, "upstream", p->keyerr);
		return;
	}
	url = p->api->models_url(p->pc.url, NULL);
	p->listing = xfer_new(p->api, &p->pc, url, p->key, &listing_ops, p);
	free(url);
	if (xfer_start(p->listing) == -1)
		listing_end(p, "upstream-timeout", "no time left");
}

/* Send every provider's models, then the end with a note of failures. */
static void
send_models(struct peer *w, uint32_t id)
{
	struct ibuf	*b;
	struct pvd	*p, *failed = NULL;
	char		 name[MODEL_MAX_LEN], note[PV_NOTE_MAX], one[400];
	size_t		 i, sent = 0;

	note[0] = '\0';
	TAILQ_FOREACH(p, &pv.pvds, entry) {
		if (p->models_at == 0 && p->failed_at != 0) {
			if (failed == NULL)
				failed = p;
			snprintf(one, sizeof(one), "%sprovider %s failed: %s",
			    note[0] != '\0' ? "; " : "", p->pc.name,
			    p->fail_text);
			strlcat(note, one, sizeof(note));
		}
		for (i = 0; i < p->nmodels && peer_ok(w); i++) {
			if (!pvd_allows(p, p->models[i].name) ||
			    shown_name(p, p->models[i].name, name,
			    sizeof(name)) == -1)
				continue;
			if ((b = channel_create(&w->ch, IMSG_PROVIDER_MODEL,
			    0, MODEL_MAX_LEN + 32)) == NULL ||
			    ibuf_add_u32(b, id) == -1 ||
			    ibuf_add_str(b, name) == -1 ||
			    ibuf_add_u64(b, p->models[i].input_limit) == -1 ||
			    ibuf_add_u64(b, p->models[i].output_limit) == -1) {
				ibuf_free(b);
				log_warn("%s", __func__);
				return;
			}
			channel_send(&w->ch, b);
			sent++;
		}
	}
	if (!peer_ok(w))
		return;
	/* Nothing to list and a provider failed: that is the answer. */
	if (sent == 0 && failed != NULL) {
		send_error(w, id, failed->fail_code, "%s", pv.npvds == 1 ?
		    failed->fail_text : note);
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
	struct pvd	*p;
	struct req	*r;

	TAILQ_FOREACH(p, &pv.pvds, entry)
		if (p->listing != NULL)
			return;
	while ((r = TAILQ_FIRST(&pv.waiters)) != NULL) {
		TAILQ_REMOVE(&pv.waiters, r, wentry);
		r->waiting = 0;
		send_models(r->w, r->id);
		preq_free(r);
	}
}

/* ---- generations ----------------------------------------------------- */

/* Forget what a generation kept for its fallback. */
static void
gen_drop_context(struct gen *g)
{
	size_t	 i;

	for (i = 0; i < g->nturns; i++)
		freezero(g->texts[i], g->turns[i].len + 1);
	free(g->texts);
	free(g->turns);
	g->texts = NULL;
	g->turns = NULL;
	g->nturns = 0;
	if (g->system != NULL)
		freezero(g->system, strlen(g->system));
	g->system = NULL;
	g->kept = 0;
}

/* Free a generation, stopping its transfer. */
static void
gen_free(struct gen *g)
{
	xfer_free(g->x);
	gen_drop_context(g);
	TAILQ_REMOVE(&pv.gens, g, entry);
	free(g);
}

static void	gen_text(void *, const char *, size_t);
static size_t	gen_queued(void *);
static void	gen_done(void *, struct xfer *, const char *, const char *);

static const struct xfer_ops gen_ops = {
	.queued = gen_queued,
	.text = gen_text,
	.done = gen_done,
};

/* Build the request for model of p and start its transfer. */
static int
gen_send(struct gen *g, struct pvd *p, const char *model,
    const struct api_request *rq0, const char **code, char *text,
    size_t textsz)
{
	struct api_request	 rq = *rq0;
	char			*body, *url;
	size_t			 bodylen = 0;

	if (p->key == NULL && p->keyerr[0] != '\0') {
		*code = "upstream";
		snprintf(text, textsz, "%s", p->keyerr);
		return (-1);
	}
	rq.model = model;
	rq.max_tokens = p->pc.max_tokens > 0 ? p->pc.max_tokens : 0;
	errno = 0;
	if ((body = p->api->request(&rq, &bodylen)) == NULL) {
		if (errno == EINVAL) {
			*code = "bad-argument";
			snprintf(text, textsz, "nothing to send: the prompt "
			    "is empty");
		} else {
			*code = "internal";
			snprintf(text, textsz, "cannot build the request");
		}
		return (-1);
	}
	url = p->api->gen_url(p->pc.url, model);
	xfer_free(g->x);
	g->x = xfer_new(p->api, &p->pc, url, p->key, &gen_ops, g);
	free(url);
	g->x->body = body;
	g->x->bodylen = bodylen;
	g->p = p;
	strlcpy(g->model, model, sizeof(g->model));
	log_debug("provider %s: model %s, %zu bytes", p->pc.name, model,
	    bodylen);
	if (xfer_start(g->x) == -1) {
		*code = "upstream-timeout";
		snprintf(text, textsz, "no time left");
		return (-1);
	}
	return (0);
}

/* Whether the texts may go upstream: UTF-8 (jansson insists too). */
static int
gen_valid(const struct gen_request *rq, const char **code, char *text,
    size_t textsz)
{
	size_t	 i;

	*code = "bad-utf8";
	if (rq->system != NULL && !utf8_valid(rq->system,
	    strlen(rq->system))) {
		snprintf(text, textsz, "the system instruction is not valid "
		    "UTF-8");
		return (-1);
	}
	for (i = 0; i < rq->nturns; i++)
		if (rq->turns[i].len > 0 && !utf8_valid(rq->turns[i].text,
		    rq->turns[i].len)) {
			snprintf(text, textsz, "the context is not valid "
			    "UTF-8");
			return (-1);
		}
	return (0);
}

/* Keep a copy of the request: a fallback may need to send it again. */
static void
gen_keep(struct gen *g, const struct gen_request *rq)
{
	size_t	 i;

	g->kept = 1;
	if (rq->system != NULL && (g->system = strdup(rq->system)) == NULL)
		fatal("%s", __func__);
	if (rq->nturns == 0)
		return;
	if ((g->turns = calloc(rq->nturns, sizeof(*g->turns))) == NULL ||
	    (g->texts = calloc(rq->nturns, sizeof(*g->texts))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < rq->nturns; i++) {
		if ((g->texts[i] = malloc(rq->turns[i].len + 1)) == NULL)
			fatal("%s", __func__);
		memcpy(g->texts[i], rq->turns[i].text, rq->turns[i].len);
		g->texts[i][rq->turns[i].len] = '\0';
		g->turns[i].role = rq->turns[i].role;
		g->turns[i].text = g->texts[i];
		g->turns[i].len = rq->turns[i].len;
		g->nturns++;
	}
}

/* Start a generation (see bridged.h); NULL with code and text set. */
struct gen *
gen_start(const struct gen_request *rq, const struct gen_sink *sink,
    char *codebuf, size_t codesz, char *text, size_t textsz)
{
	struct api_request	 arq;
	struct gen		*g;
	struct pvd		*p;
	const char		*code;
	char			 model[MODEL_MAX_LEN], shown[MODEL_MAX_LEN];

	if (resolve(rq->model, &p, model, shown, &code, text, textsz) ==
	    -1 || gen_valid(rq, &code, text, textsz) == -1) {
		strlcpy(codebuf, code, codesz);
		return (NULL);
	}
	if ((g = calloc(1, sizeof(*g))) == NULL)
		fatal("%s", __func__);
	g->sink = *sink;
	g->set = rq->set;
	g->started = ev_now_ms();
	strlcpy(g->shown, shown, sizeof(g->shown));
	TAILQ_INSERT_TAIL(&pv.gens, g, entry);
	memset(&arq, 0, sizeof(arq));
	arq.system = rq->system;
	arq.turns = rq->turns;
	arq.nturns = rq->nturns;
	arq.set = rq->set;
	if (gen_send(g, p, model, &arq, &code, text, textsz) == -1) {
		strlcpy(codebuf, code, codesz);
		gen_free(g);
		return (NULL);
	}
	if (p->pc.fallback[0] != '\0')
		gen_keep(g, rq);
	return (g);
}

/* Stop a generation; its sink hears nothing more. */
void
gen_cancel(struct gen *g)
{
	if (g != NULL)
		gen_free(g);
}

/* Text of the answer: no fallback from now on. */
static void
gen_text(void *arg, const char *text, size_t len)
{
	struct gen	*g = arg;

	if (g->kept)
		gen_drop_context(g);
	g->sink.text(g->sink.arg, text, len);
}

/* Bytes the consumer has yet to pass on. */
static size_t
gen_queued(void *arg)
{
	struct gen	*g = arg;

	return (g->sink.queued != NULL ? g->sink.queued(g->sink.arg) : 0);
}

/*
 * The provider was busy to the end (429, 503, 529, overloaded) before
 * any byte of the answer: send the request once to the fallback.
 * 0 if it went.
 */
static int
gen_fallback(struct gen *g)
{
	struct api_request	 arq;
	struct pvd		*p;
	const char		*code, *slash;
	char			 fb[MODEL_MAX_LEN], text[200];

	strlcpy(fb, g->p->pc.fallback, sizeof(fb));
	if (g->fell || !g->kept || (slash = strchr(fb, '/')) == NULL ||
	    (p = pvd_find(fb, slash - fb)) == NULL)
		return (-1);
	if (!p->api->valid_model(slash + 1) || shown_name(p, slash + 1,
	    g->shown, sizeof(g->shown)) == -1)
		return (-1);
	g->fell = 1;
	log_info("provider %s: model %s busy, falling back to %s",
	    g->p->pc.name, g->model, fb);
	memset(&arq, 0, sizeof(arq));
	arq.system = g->system;
	arq.turns = g->turns;
	arq.nturns = g->nturns;
	arq.set = g->set;
	if (gen_send(g, p, slash + 1, &arq, &code, text, sizeof(text)) ==
	    -1) {
		log_warnx("fallback %s: %s", fb, text);
		return (-1);
	}
	return (0);
}

/* xfer_ops: the generation is over, answered (code NULL) or failed. */
static void
gen_done(void *arg, struct xfer *x, const char *code, const char *text)
{
	struct gen		*g = arg;
	struct gen_result	 res;
	struct gen_sink		 sink = g->sink;
	char			 c[32], t[800];

	if (code == NULL) {
		memset(&res, 0, sizeof(res));
		res.model = g->shown;
		res.prompt = x->prompt < 0 ? 0 : x->prompt;
		res.answer = x->answer < 0 ? 0 : x->answer;
		res.finish = x->finish;
		log_debug("provider %s: %s done: %s, %llu bytes, %llu ms",
		    g->p->pc.name, g->model, x->finish,
		    (unsigned long long)x->sent,
		    (unsigned long long)(ev_now_ms() - g->started));
		/* Detached first: the sink may cancel nothing any more. */
		TAILQ_REMOVE(&pv.gens, g, entry);
		sink.done(sink.arg, &res);
		xfer_free(g->x);
		gen_drop_context(g);
		free(g);
		return;
	}
	/* text may be the transfer's own, which a fallback frees. */
	strlcpy(c, code, sizeof(c));
	strlcpy(t, text, sizeof(t));
	if (x->busy && x->sent == 0 && gen_fallback(g) == 0)
		return;
	log_info("provider %s: %s failed: %s %s", g->p->pc.name, g->model,
	    c, t);
	gen_free(g);
	sink.error(sink.arg, c, t);
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
	struct pvd	*p;

	if (!pv.restart || !TAILQ_EMPTY(&pv.gens))
		return;
	TAILQ_FOREACH(p, &pv.pvds, entry)
		if (p->listing != NULL)
			return;
	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->nreqs > 0)
			return;
	log_info("provider: restarting to load the new configuration and "
	    "keys");
	key_wipe();
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
 * A peer broke the protocol. Control (worker id 0): this process
 * leaves (child_bad). A worker: its channel is closed and the parent
 * told to end it; the provider goes on.
 */
static void
peer_reject(struct peer *w, struct imsg *imsg, const char *why)
{
	if (w->wid == 0)
		child_bad(PROC_CONTROL, imsg, why);
	log_warnx("bad %s from worker %u: %s; closing its channel",
	    imsg_type_name(imsg->hdr.type), w->wid, why);
	channel_compose_u32(parent_chan, IMSG_PROVIDER_REJECT, 0, w->wid);
	peer_drop(w);
}

/* The worker went away: so do its requests. */
static void
peer_closed(struct channel *ch)
{
	struct peer	*w = ch->arg;

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
	struct pvd	*p;
	uint32_t	 id;
	int		 stale = 0;

	if (id_only(w, imsg, &id) == -1)
		return;
	if (preq_find(w, id) != NULL) {
		peer_reject(w, imsg, "request id in use");
		return;
	}
	TAILQ_FOREACH(p, &pv.pvds, entry)
		if (!models_fresh(p))
			stale = 1;
	if (!stale) {
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
	TAILQ_FOREACH(p, &pv.pvds, entry)
		if (!models_fresh(p))
			listing_start(p);
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

/* IMSG_WORKER_GEN_PART: text for the current turn. */
static void
worker_gen_part(struct peer *w, struct imsg *imsg)
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
		peer_reject(w, imsg, "length or values");
		return;
	}
	if ((r = preq_find(w, id)) == NULL || r->kind != REQ_GEN ||
	    r->state == RS_RUNNING) {
		peer_reject(w, imsg, "no such request being built");
		return;
	}
	if (r->state == RS_DISCARD || r->err_code != NULL)
		return;
	if (r->open && (uint32_t)r->turns[r->nturns - 1].role != role) {
		peer_reject(w, imsg, "the role changes inside a turn");
		return;
	}
	if (len > context_max() - r->bytes ||
	    (!r->open && r->nturns >= PV_TURNS_MAX)) {
		r->err_code = "too-long";
		strlcpy(r->err_text, "the context is too large",
		    sizeof(r->err_text));
		preq_drop_turns(r);
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
	struct provider_conf	*pc;
	struct pvd		*p;
	size_t			 n;

	if (!first) {
		pv.restart = 1;
		jobs_hold();
		provider_idle_check();
		return;
	}
	TAILQ_FOREACH(pc, &pv.conf->providers, entry) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			fatal("%s", __func__);
		p->pc = *pc;
		memset(&p->pc.entry, 0, sizeof(p->pc.entry));
		if ((p->api = api_of(pc->type)) == NULL)
			fatalx("provider %s: unknown type", pc->name);
		/* The base URL, without a trailing slash. */
		n = strlen(p->pc.url);
		while (n > 0 && p->pc.url[n - 1] == '/')
			p->pc.url[--n] = '\0';
		if (key_load(p) == -1)
			log_warnx("provider %s: %s", pc->name, p->keyerr);
		TAILQ_INSERT_TAIL(&pv.pvds, p, entry);
		pv.npvds++;
		log_debug("provider %s: %s at %s, %d s to connect, %d s per "
		    "request, %d retries%s%s", pc->name, p->api->name,
		    p->pc.url, p->pc.connect_timeout, p->pc.timeout,
		    p->pc.retries, p->pc.fallback[0] != '\0' ?
		    ", fallback " : "", p->pc.fallback);
	}
	if (pv.npvds == 0)
		log_warnx("no provider configured");
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
	(void)ch;
	key_wipe();
	_exit(0);
}

/* SIGTERM, SIGINT: leave, wiping the keys. */
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
	TAILQ_INIT(&pv.pvds);
	TAILQ_INIT(&pv.gens);
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
