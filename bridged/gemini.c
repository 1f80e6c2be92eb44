/*
 * gemini.c: the Gemini REST API v1beta (type gemini): request bodies
 * built, stream events, model lists and error bodies parsed with
 * jansson.  Nothing the upstream sends is trusted: every field may be
 * missing, of the wrong type or absurdly large.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bridged.h"

#define GEM_TOKEN_MAX	4096		/* longest page token kept */
#define GEM_DELAY_MAX	86400.0		/* s, longest retry delay */

static void	 gem_parse_details(json_t *, struct api_error *);
static int	 gem_event_tree(const char *, const char *, size_t,
		    struct api_event *);
static void	 gem_error_object(json_t *, struct api_error *);
static unsigned int gem_methods(json_t *);
static int	 gem_name_token(const char *, size_t);

/*
 * The body of a streamGenerateContent request.  Empty turns are left
 * out (the API refuses empty text) and a run of turns of one role
 * becomes one content with several parts.  Returns a string to
 * free(3), NULL with errno EINVAL if no turn has text or a text is
 * not UTF-8.
 */
static char *
gem_request(const struct api_request *rq, size_t *lenp)
{
	struct jsonw	 w;
	const char	*role, *last = NULL;
	size_t		 i;
	uint32_t	 max;

	jw_init(&w, wire_body_hint(rq));
	jw_raw(&w, "{\"contents\":[");
	for (i = 0; i < rq->nturns; i++) {
		if (rq->turns[i].len == 0)
			continue;
		role = rq->turns[i].role == ROLE_MODEL ? "model" : "user";
		if (last != NULL && strcmp(role, last) == 0)
			jw_raw(&w, "\"},{\"text\":\"");
		else {
			jw_raw(&w, last != NULL ? "\"}]},{\"role\":\"" :
			    "{\"role\":\"");
			jw_raw(&w, role);
			jw_raw(&w, "\",\"parts\":[{\"text\":\"");
		}
		jw_text(&w, rq->turns[i].text, rq->turns[i].len);
		last = role;
	}
	if (last == NULL)
		w.bad = EINVAL;
	jw_raw(&w, "\"}]}]");
	if (rq->system != NULL && rq->system[0] != '\0') {
		jw_raw(&w, ",\"systemInstruction\":{\"parts\":[{\"text\":");
		jw_str(&w, rq->system, strlen(rq->system));
		jw_raw(&w, "}]}");
	}
	max = rq->set.max_tokens > 0 ? rq->set.max_tokens : rq->max_tokens;
	if (rq->set.temperature >= 0 || max > 0) {
		jw_raw(&w, ",\"generationConfig\":{");
		if (rq->set.temperature >= 0) {
			jw_raw(&w, "\"temperature\":");
			jw_real(&w, rq->set.temperature);
		}
		if (max > 0) {
			jw_raw(&w, rq->set.temperature >= 0 ?
			    ",\"maxOutputTokens\":" : "\"maxOutputTokens\":");
			jw_u64(&w, max);
		}
		jw_raw(&w, "}");
	}
	jw_raw(&w, "}");
	return (jw_end(&w, lenp));
}

/* Parse a protobuf Duration such as "26s" or "0.25s"; -1 if bad. */
double
gem_parse_duration(const char *s)
{
	double		 v = 0, scale = 1;
	int		 digits = 0;

	if (s == NULL)
		return (-1);
	for (; *s >= '0' && *s <= '9'; s++, digits++) {
		if (digits >= 12)
			return (-1);
		v = v * 10 + (*s - '0');
	}
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
			scale /= 10;
			if (scale >= 1e-9)
				v += (*s - '0') * scale;
		}
	}
	if (digits == 0 || strcmp(s, "s") != 0)
		return (-1);
	return (v > GEM_DELAY_MAX ? GEM_DELAY_MAX : v);
}

/* Look through error details for RetryInfo, quotas and key errors. */
static void
gem_parse_details(json_t *details, struct api_error *e)
{
	json_t		*d, *v, *viol;
	const char	*type, *id;
	size_t		 i, j;
	double		 delay;

	if (!json_is_array(details))
		return;
	json_array_foreach(details, i, d) {
		if (!json_is_object(d))
			continue;
		type = json_string_value(json_object_get(d, "@type"));
		if (type == NULL)
			type = "";
		if (strstr(type, "RetryInfo") != NULL) {
			v = json_object_get(d, "retryDelay");
			delay = gem_parse_duration(json_string_value(v));
			if (delay >= 0)
				e->retry_delay = delay;
		} else if (strstr(type, "QuotaFailure") != NULL) {
			viol = json_object_get(d, "violations");
			if (!json_is_array(viol))
				continue;
			json_array_foreach(viol, j, v) {
				id = json_string_value(json_object_get(v,
				    "quotaId"));
				if (id != NULL && strstr(id, "PerDay") != NULL)
					e->per_day = 1;
			}
		} else if (strstr(type, "ErrorInfo") != NULL) {
			v = json_object_get(d, "reason");
			if (json_is_string(v) && strcmp(json_string_value(v),
			    "API_KEY_INVALID") == 0)
				e->key_invalid = 1;
		}
	}
}


/* Fill e from a JSON error object ({"code","message","status",...}). */
static void
gem_error_object(json_t *err, struct api_error *e)
{
	json_t		*v;
	uint64_t	 code;

	if (wire_u64(json_object_get(err, "code"), &code) == 0 &&
	    code >= 100 && code <= 599)
		e->code = code;
	wire_copy_word(e->type, sizeof(e->type),
	    json_object_get(err, "status"));
	v = json_object_get(err, "message");
	if (json_is_string(v))
		wire_copy_line(e->message, sizeof(e->message),
		    json_string_value(v), json_string_length(v));
	gem_parse_details(json_object_get(err, "details"), e);
	if (e->code == 503 || strcmp(e->type, "UNAVAILABLE") == 0)
		e->overloaded = 1;
}

/*
 * Parse an error body of an HTTP status (or an error event, status 0).
 * Always fills e: what the body does not say comes from the status.
 */
static void
gem_parse_error(const char *body, size_t len, int http, struct api_error *e)
{
	json_t		*root, *err;

	wire_error_init(e, http);
	root = wire_load(body, len);
	/* Without alt=sse errors come wrapped in an array. */
	if (json_is_array(root))
		err = json_object_get(json_array_get(root, 0), "error");
	else
		err = json_object_get(root, "error");
	if (json_is_object(err))
		gem_error_object(err, e);
	if (e->message[0] == '\0')
		strlcpy(e->message, http > 0 ? wire_http_reason(http) :
		    "error without a message", sizeof(e->message));
	json_decref(root);
}

/* What a finishReason means: STOP and MAX_TOKENS end an answer well. */
static void
gem_finish(struct api_event *ev)
{
	const char	*f = ev->finish;

	if (f[0] == '\0' || strcmp(f, "STOP") == 0 ||
	    strcmp(f, "MAX_TOKENS") == 0)
		return;
	if (strcmp(f, "SAFETY") == 0 || strcmp(f, "BLOCKLIST") == 0 ||
	    strcmp(f, "PROHIBITED_CONTENT") == 0 || strcmp(f, "SPII") == 0 ||
	    strcmp(f, "IMAGE_SAFETY") == 0)
		snprintf(ev->stop_error, sizeof(ev->stop_error), "the API's "
		    "safety filter stopped the answer (%s)", f);
	else if (strcmp(f, "RECITATION") == 0)
		snprintf(ev->stop_error, sizeof(ev->stop_error), "the API "
		    "stopped the answer: it would recite a source "
		    "(RECITATION)");
	else
		snprintf(ev->stop_error, sizeof(ev->stop_error), "the API "
		    "stopped the answer (%s)", f);
}

/* What an event's promptFeedback says: a refusal if it blocked. */
static void
gem_refusal(struct api_event *ev, const char *block)
{
	if (block[0] != '\0')
		snprintf(ev->refusal, sizeof(ev->refusal), "the API blocked "
		    "the prompt (%s); rephrase it", block);
}

/*
 * gem_event_tree's reading of an event jsonr.c took, without jansson:
 * 0 and ev filled, -1 if the text outgrew its room or memory, 1 if
 * jansson must read it after all (an error object; a count written
 * otherwise than in digits).
 */
static int
gem_event_fast(const char *event, const struct jr_span *root,
    struct api_event *ev)
{
	static const char *const rkeys[] = { "error", "candidates",
	    "usageMetadata", "promptFeedback" };
	static const char *const ckeys[] = { "finishReason", "content" };
	static const char *const pkeys[] = { "text", "thought" };
	static const char *const ukeys[] = { "promptTokenCount",
	    "candidatesTokenCount" };
	struct jr_span	 r[4], c[2], p[2], u[2], cand, parts, part, b;
	unsigned int	 has, cm, pm, um;
	size_t		 it = 0;
	char		 block[40];

	(void)event;		/* Gemini's events have no name */
	if (jr_type(root) != '{')
		return (-1);
	has = jr_members(root, rkeys, r, 4);
	if ((has & 1) && jr_type(&r[0]) == '{')
		return (1);
	if ((has & 2) && jr_next(&r[1], &it, &cand) && jr_type(&cand) == '{') {
		cm = jr_members(&cand, ckeys, c, 2);
		wire_copy_word_jr(ev->finish, sizeof(ev->finish),
		    cm & 1 ? &c[0] : NULL);
		gem_finish(ev);
		it = 0;
		if (!(cm & 2) || !jr_get(&c[1], "parts", &parts))
			parts.p = NULL, parts.len = 0;	/* no parts */
		while (jr_next(&parts, &it, &part)) {
			pm = jr_members(&part, pkeys, p, 2);
			if (!(pm & 1) || jr_type(&p[0]) != '"' ||
			    ((pm & 2) && jr_type(&p[1]) == 't'))
				continue;
			if (jr_string(&p[0], wire_add_text_jr, ev) == -1)
				return (-1);
		}
	}
	if ((has & 4) && jr_type(&r[2]) == '{') {
		um = jr_members(&r[2], ukeys, u, 2);
		if (wire_count_jr(um & 1 ? &u[0] : NULL, &ev->prompt) == -1 ||
		    wire_count_jr(um & 2 ? &u[1] : NULL, &ev->answer) == -1)
			return (1);
	}
	wire_copy_word_jr(block, sizeof(block), (has & 8) &&
	    jr_get(&r[3], "blockReason", &b) ? &b : NULL);
	gem_refusal(ev, block);
	return (0);
}

/*
 * Parse one GenerateContentResponse (a stream event; the event field
 * is not used).  Returns -1 if it is not a JSON object or memory ran
 * out, else 0 with ev filled (release it with wire_event_free). The
 * common events are read by jsonr.c; the rest, and any it does not
 * take, by jansson.
 */
static int
gem_parse_event(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	return (wire_parse_event(event, data, len, ev, gem_event_fast,
	    gem_event_tree));
}

/* gem_parse_event by jansson's tree: every event. */
static int
gem_event_tree(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	json_t		*root, *cand, *content, *parts, *part, *t, *u, *pf;
	char		 block[40];
	size_t		 i;

	(void)event;
	if ((root = wire_load(data, len)) == NULL)
		return (-1);
	if (!json_is_object(root)) {
		json_decref(root);
		return (-1);
	}
	if (json_is_object(t = json_object_get(root, "error"))) {
		ev->has_error = 1;
		wire_error_init(&ev->err, 0);
		gem_error_object(t, &ev->err);
		if (ev->err.message[0] == '\0')
			strlcpy(ev->err.message, ev->err.code > 0 ?
			    wire_http_reason(ev->err.code) : "error without a "
			    "message", sizeof(ev->err.message));
	}
	cand = json_array_get(json_object_get(root, "candidates"), 0);
	if (json_is_object(cand)) {
		wire_copy_word(ev->finish, sizeof(ev->finish),
		    json_object_get(cand, "finishReason"));
		gem_finish(ev);
		content = json_object_get(cand, "content");
		parts = json_object_get(content, "parts");
		json_array_foreach(parts, i, part) {
			t = json_object_get(part, "text");
			if (!json_is_string(t) ||
			    json_is_true(json_object_get(part, "thought")))
				continue;
			if (wire_add_text(ev, json_string_value(t),
			    json_string_length(t)) == -1) {
				wire_event_free(ev);
				json_decref(root);
				return (-1);
			}
		}
	}
	u = json_object_get(root, "usageMetadata");
	if (json_is_object(u)) {
		ev->prompt = wire_count(u, "promptTokenCount");
		ev->answer = wire_count(u, "candidatesTokenCount");
	}
	pf = json_object_get(root, "promptFeedback");
	wire_copy_word(block, sizeof(block), json_object_get(pf,
	    "blockReason"));
	gem_refusal(ev, block);
	json_decref(root);
	return (0);
}

/* Whether a model name is safe in a URL path and a reply line. */
int
gem_valid_model_name(const char *s)
{
	size_t	 i;

	if (s[0] == '\0' || s[0] == '.' || s[0] == '-')
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= MODEL_MAX_LEN - 1)
			return (0);
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '.' && s[i] != '_')
			return (0);
	}
	return (1);
}

/* The method bits of a supportedGenerationMethods array. */
static unsigned int
gem_methods(json_t *a)
{
	json_t		*v;
	const char	*s;
	size_t		 i;
	unsigned int	 m = 0;

	json_array_foreach(a, i, v) {
		if ((s = json_string_value(v)) == NULL)
			continue;
		if (strcmp(s, "generateContent") == 0)
			m |= GEM_GENERATE;
		else if (strcmp(s, "countTokens") == 0)
			m |= GEM_COUNT;
		else if (strncmp(s, "embed", 5) == 0 ||
		    strcmp(s, "batchEmbedContents") == 0)
			m |= GEM_EMBED;
		else if (strcmp(s, "bidiGenerateContent") == 0)
			m |= GEM_BIDI;
		else if (strncmp(s, "predict", 7) == 0)
			m |= GEM_PREDICT;
		else
			m |= GEM_OTHER;
	}
	return (m);
}


/*
 * Parse one page of a model list, keeping the chat models.  Entries
 * without a usable name or not for chat are counted in nskipped;
 * limits that are missing or unusable are 0.  Returns -1 if the body
 * is not a model list.
 */
static int
gem_parse_models(const char *body, size_t len, struct api_page *pg)
{
	json_t		*root, *models, *m, *v;
	const char	*name, *tok;
	uint64_t	 in, out;
	size_t		 i;

	memset(pg, 0, sizeof(*pg));
	if ((root = wire_load(body, len)) == NULL)
		return (-1);
	models = json_object_get(root, "models");
	if (!json_is_object(root) || (models != NULL &&
	    !json_is_array(models)))
		goto fail;
	json_array_foreach(models, i, m) {
		name = json_string_value(json_object_get(m, "name"));
		if (name != NULL && strncmp(name, "models/", 7) == 0)
			name += 7;
		if (name == NULL || !gem_valid_model_name(name) ||
		    !gem_model_is_chat(name, gem_methods(json_object_get(m,
		    "supportedGenerationMethods")))) {
			pg->nskipped++;
			continue;
		}
		if (wire_u64(json_object_get(m, "inputTokenLimit"), &in) == -1)
			in = 0;
		if (wire_u64(json_object_get(m, "outputTokenLimit"),
		    &out) == -1)
			out = 0;
		if (wire_page_add(pg, name, in, out) == -1)
			goto fail;
	}
	v = json_object_get(root, "nextPageToken");
	if ((tok = json_string_value(v)) != NULL && tok[0] != '\0') {
		if (json_string_length(v) > GEM_TOKEN_MAX ||
		    strlen(tok) != json_string_length(v))
			goto fail;
		for (i = 0; tok[i] != '\0'; i++)
			if (!isalnum((unsigned char)tok[i]) &&
			    strchr("-_=.~+/", tok[i]) == NULL)
				goto fail;
		if ((pg->next = strdup(tok)) == NULL)
			goto fail;
	}
	json_decref(root);
	return (0);
 fail:
	json_decref(root);
	wire_page_free(pg);
	return (-1);
}

/* Whether one '-', '.' or '_' separated word of a name is a non-chat mark. */
static int
gem_name_token(const char *w, size_t n)
{
	static const char *const marks[] = {
		"embedding", "embed", "tts", "image", "imagen", "veo",
		"audio", "live", "aqa", "lyria", "native"
	};
	size_t	 i;

	for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strlen(marks[i]) == n && strncasecmp(w, marks[i], n) == 0)
			return (1);
	return (0);
}

/*
 * Whether a model is for chat: it lists generateContent and its name
 * is not one of an embedding, speech, image, video, live/audio or
 * question-answering model (some of those list generateContent too).
 */
int
gem_model_is_chat(const char *name, unsigned int methods)
{
	const char	*p = name, *w;

	if ((methods & GEM_GENERATE) == 0)
		return (0);
	if (strcasestr(name, "embed") != NULL ||
	    strcasestr(name, "image") != NULL)
		return (0);
	while (*p != '\0') {
		w = p;
		p += strcspn(p, "-._");
		if (gem_name_token(w, p - w))
			return (0);
		if (*p != '\0')
			p++;
	}
	return (1);
}

/* The URL of a page of the model list (token NULL: the first). */
static char *
gem_models_url(const char *base, const char *token)
{
	return (wire_url(base, token != NULL ?
	    "/models?pageSize=1000&pageToken=" : "/models?pageSize=1000",
	    token));
}

/* The URL of a streamed generation. */
static char *
gem_gen_url(const char *base, const char *model)
{
	char	*url;

	if (asprintf(&url, "%s/models/%s:streamGenerateContent?alt=sse",
	    base, model) == -1)
		fatal("%s", __func__);
	return (url);
}

/* The key goes in x-goog-api-key, never in the URL. */
static int
gem_headers(const char *key, int stream, int (*add)(void *, const char *),
    void *arg)
{
	(void)stream;
	return (wire_key_header(add, arg, "x-goog-api-key: ", key));
}

/*
 * Which errors are worth a retry: 429 (unless a daily quota), 500,
 * 503, 504; 429 and 503 mean busy (a fallback may answer).
 */
static unsigned int
gem_classify(const struct api_error *e, const char **code)
{
	int	 c = e->code;

	*code = wire_error_code(c);
	if (c == 429 && e->per_day)
		return (0);
	if (c == 429 || c == 503)
		return (API_RETRY | API_BUSY);
	if (c == 500 || c == 504)
		return (API_RETRY);
	return (0);
}

const struct api api_gemini = {
	.name = "gemini",
	.type = PROVIDER_GEMINI,
	.key_required = 1,
	.valid_model = gem_valid_model_name,
	.models_url = gem_models_url,
	.gen_url = gem_gen_url,
	.headers = gem_headers,
	.request = gem_request,
	.parse_event = gem_parse_event,
	.parse_error = gem_parse_error,
	.parse_models = gem_parse_models,
	.classify = gem_classify,
};
