/*
 * upstream.c: the provider process's upstreams. Every configured
 * provider block with its API key, its cached model list (fetched page
 * by page) and the generations running on it, with their fallback.
 * gen_start() is how a worker's request (provider.c) and a batch job
 * (jobs.c) alike get an answer; the wire format of each API is in its
 * own file (struct api, listed in api_table below), the transfers in
 * xfer.c. Nothing here knows who asked.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridged.h"

#define PV_PAGES_MAX	100			/* pages of one listing */
#define PV_MODELS_MAX	10000			/* models of one provider */
#define PV_KEY_MAX	4096
#define PV_FAIL_CACHE	30			/* s, a failed listing kept */

/* Every API bridged speaks; a new one is one more line. */
static const struct api *const api_table[] = {
	&api_gemini,
	&api_openai,
	&api_anthropic,
};

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
	const struct bridged_conf *conf;
	struct pvd_list		 pvds;
	int			 npvds;
	struct gen_list		 gens;
	void			(*listed)(void);	/* lists are in */
} up = {
	.pvds = TAILQ_HEAD_INITIALIZER(up.pvds),
	.gens = TAILQ_HEAD_INITIALIZER(up.gens),
};

static void	gen_text(void *, const char *, size_t);
static size_t	gen_queued(void *);
static void	gen_done(void *, struct xfer *, const char *, const char *);

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
void
upstream_wipe(void)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &up.pvds, entry) {
		if (p->key != NULL)
			freezero(p->key, p->keylen);
		p->key = NULL;
		p->keylen = 0;
	}
}

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

	TAILQ_FOREACH(p, &up.pvds, entry)
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

	if (up.npvds > 1)
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
	if (up.npvds == 0) {
		*code = "upstream";
		snprintf(text, textsz, "no provider is configured");
		return (-1);
	}
	slash = strchr(name, '/');
	if (slash != NULL && (p = pvd_find(name, slash - name)) != NULL &&
	    (up.npvds > 1 || !pvd_lists(p, name))) {
		found = p;
		name = slash + 1;
	} else if (up.npvds == 1)
		found = TAILQ_FIRST(&up.pvds);
	else {
		TAILQ_FOREACH(p, &up.pvds, entry)
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
			TAILQ_FOREACH(p, &up.pvds, entry)
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

/* Whether a provider's cached list is young enough to serve. */
static int
models_fresh(const struct pvd *p)
{
	uint64_t	 now = ev_now_ms(), keep, fkeep;

	if (up.conf == NULL)
		return (0);
	keep = (uint64_t)up.conf->g.models_cache * 1000;
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
	if (up.listed != NULL)
		up.listed();
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
	TAILQ_REMOVE(&up.gens, g, entry);
	free(g);
}

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
	TAILQ_INSERT_TAIL(&up.gens, g, entry);
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
		TAILQ_REMOVE(&up.gens, g, entry);
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

/*
 * Take the configuration's provider blocks, each with its key; listed
 * is called whenever a model listing ends. Once, before the sandbox:
 * key files are read here.
 */
void
upstream_load(const struct bridged_conf *conf, void (*listed)(void))
{
	struct provider_conf	*pc;
	struct pvd		*p;
	size_t			 n;

	up.conf = conf;
	up.listed = listed;
	TAILQ_FOREACH(pc, &conf->providers, entry) {
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
		TAILQ_INSERT_TAIL(&up.pvds, p, entry);
		up.npvds++;
		log_debug("provider %s: %s at %s, %d s to connect, %d s per "
		    "request, %d retries%s%s", pc->name, p->api->name,
		    p->pc.url, p->pc.connect_timeout, p->pc.timeout,
		    p->pc.retries, p->pc.fallback[0] != '\0' ?
		    ", fallback " : "", p->pc.fallback);
	}
	if (up.npvds == 0)
		log_warnx("no provider configured");
}

/* The configuration in use (a reload swaps it; the providers stay). */
void
upstream_conf(const struct bridged_conf *conf)
{
	up.conf = conf;
}

/* Whether nothing is fetched or generated: the process may go. */
int
upstream_idle(void)
{
	return (TAILQ_EMPTY(&up.gens) && !upstream_listing());
}

/* Whether some provider's cached model list is too old to answer. */
int
upstream_stale(void)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &up.pvds, entry)
		if (!models_fresh(p))
			return (1);
	return (0);
}

/* Fetch the model list of every provider whose cached one is stale. */
void
upstream_refresh(void)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &up.pvds, entry)
		if (!models_fresh(p))
			listing_start(p);
}

/* Whether a model list is being fetched; listed() says when it ends. */
int
upstream_listing(void)
{
	struct pvd	*p;

	TAILQ_FOREACH(p, &up.pvds, entry)
		if (p->listing != NULL)
			return (1);
	return (0);
}

/*
 * Every provider's models as clients name them, each passed to one();
 * the number passed, or -1 if one() failed. note gets a line on the
 * providers whose list failed; with nothing to list and one failed,
 * *code is set and note says why (that is the answer).
 */
int
upstream_models(int (*one)(const char *, const struct api_model *, void *),
    void *arg, char *note, size_t notesz, const char **code)
{
	struct pvd	*p, *failed = NULL;
	char		 name[MODEL_MAX_LEN], line[400];
	size_t		 i;
	int		 sent = 0;

	*code = NULL;
	note[0] = '\0';
	TAILQ_FOREACH(p, &up.pvds, entry) {
		if (p->models_at == 0 && p->failed_at != 0) {
			if (failed == NULL)
				failed = p;
			snprintf(line, sizeof(line), "%sprovider %s failed: "
			    "%s", note[0] != '\0' ? "; " : "", p->pc.name,
			    p->fail_text);
			strlcat(note, line, notesz);
		}
		for (i = 0; i < p->nmodels; i++) {
			if (!pvd_allows(p, p->models[i].name) ||
			    shown_name(p, p->models[i].name, name,
			    sizeof(name)) == -1)
				continue;
			if (one(name, &p->models[i], arg) == -1)
				return (-1);
			sent++;
		}
	}
	if (sent == 0 && failed != NULL) {
		*code = failed->fail_code;
		if (up.npvds == 1)
			strlcpy(note, failed->fail_text, notesz);
	}
	return (sent);
}
