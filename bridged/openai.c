/*
 * openai.c: OpenAI-compatible chat completions (type openai), as
 * OpenAI, Ollama, llama.cpp's server, vLLM, LM Studio and OpenRouter
 * serve them: GET {url}/models, POST {url}/chat/completions streamed
 * with the usage in a last chunk, then "data: [DONE]".  Servers differ
 * in their errors (a data: error chunk, llama.cpp's "error:" field,
 * bare error objects) and in where reasoning text goes; every form is
 * accepted, none is trusted.
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

#define OAI_ID_MAX	512		/* longest paging id kept */

/*
 * The body of a streamed chat completion: the system prompt first,
 * then the turns (user, assistant) with empty ones left out and runs
 * of one role joined.  NULL with errno EINVAL if nothing is left.
 */
static char *
oai_request(const struct api_request *rq, size_t *lenp)
{
	struct jsonw	 w;
	uint32_t	 max;

	jw_init(&w, wire_body_hint(rq));
	jw_raw(&w, "{\"model\":");
	jw_str(&w, rq->model, strlen(rq->model));
	jw_raw(&w, ",\"messages\":");
	if (wire_messages(&w, rq, "system") == 0)
		w.bad = EINVAL;
	jw_raw(&w, ",\"stream_options\":{\"include_usage\":true},"
	    "\"stream\":true");
	if (rq->set.temperature >= 0) {
		jw_raw(&w, ",\"temperature\":");
		jw_real(&w, rq->set.temperature);
	}
	max = rq->set.max_tokens > 0 ? rq->set.max_tokens : rq->max_tokens;
	if (max > 0) {
		jw_raw(&w, ",\"max_tokens\":");
		jw_u64(&w, max);
	}
	jw_raw(&w, "}");
	return (jw_end(&w, lenp));
}

/*
 * Fill e from an error object: {"message","type","code","param"},
 * code a number (llama.cpp), a word (OpenAI) or null.
 */
static void
oai_error_object(json_t *err, struct api_error *e)
{
	json_t		*v;
	uint64_t	 code;

	if (json_is_string(err)) {
		wire_copy_line(e->message, sizeof(e->message),
		    json_string_value(err), json_string_length(err));
		return;
	}
	v = json_object_get(err, "code");
	if (wire_u64(v, &code) == 0 && code >= 100 && code <= 599)
		e->code = code;
	else if (json_is_string(v))
		wire_copy_word(e->type, sizeof(e->type), v);
	if (e->type[0] == '\0')
		wire_copy_word(e->type, sizeof(e->type),
		    json_object_get(err, "type"));
	v = json_object_get(err, "message");
	if (json_is_string(v))
		wire_copy_line(e->message, sizeof(e->message),
		    json_string_value(v), json_string_length(v));
	if (e->code == 503 || strstr(e->type, "overload") != NULL)
		e->overloaded = 1;
}

/* The error object of a body: {"error":{...}}, {"error":"..."} or bare. */
static json_t *
oai_find_error(json_t *root)
{
	json_t	*err;

	if (!json_is_object(root))
		return (NULL);
	err = json_object_get(root, "error");
	if (json_is_object(err) || json_is_string(err))
		return (err);
	if (json_is_string(json_object_get(root, "object")) &&
	    strcmp(json_string_value(json_object_get(root, "object")),
	    "error") == 0)
		return (root);
	return (NULL);
}

/* Parse an error body of an HTTP status; always fills e. */
static void
oai_parse_error(const char *body, size_t len, int http, struct api_error *e)
{
	json_t	*root, *err;

	wire_error_init(e, http);
	root = wire_load(body, len);
	if ((err = oai_find_error(root)) != NULL)
		oai_error_object(err, e);
	if (http > 0)
		e->code = http;
	if (e->code == 503)
		e->overloaded = 1;
	if (e->message[0] == '\0')
		strlcpy(e->message, http > 0 ? wire_http_reason(http) :
		    "error without a message", sizeof(e->message));
	json_decref(root);
}

/*
 * A finish_reason (its word, as wire_copy_word leaves it in w) as the
 * status line's word: STOP, MAX_TOKENS, ...
 */
static void
oai_finish(char *w, struct api_event *ev)
{
	size_t	 i;

	if (w[0] == '\0')
		return;
	if (strcmp(w, "stop") == 0 || strcmp(w, "eos") == 0)
		strlcpy(ev->finish, "STOP", sizeof(ev->finish));
	else if (strcmp(w, "length") == 0)
		strlcpy(ev->finish, "MAX_TOKENS", sizeof(ev->finish));
	else {
		for (i = 0; w[i] != '\0'; i++)
			w[i] = toupper((unsigned char)w[i]);
		strlcpy(ev->finish, w, sizeof(ev->finish));
		if (strcmp(w, "ERROR") == 0)
			strlcpy(ev->stop_error, "the API ended the answer "
			    "with an error", sizeof(ev->stop_error));
	}
}

/* An error event: its code, type and message. */
static void
oai_event_error(json_t *err, struct api_event *ev)
{
	ev->has_error = 1;
	wire_error_init(&ev->err, 0);
	oai_error_object(err, &ev->err);
	if (ev->err.message[0] == '\0')
		strlcpy(ev->err.message, ev->err.code > 0 ?
		    wire_http_reason(ev->err.code) : "error without a message",
		    sizeof(ev->err.message));
}

static int	oai_event_tree(const char *, const char *, size_t,
		    struct api_event *);

/*
 * oai_event_tree's reading of a chunk jsonr.c took, without jansson: 0
 * and ev filled, -1 if not an object or the text outgrew its room or
 * memory, 1 if jansson must read it (an error in any of its forms; a
 * count written otherwise than in digits).
 */
static int
oai_event_fast(const char *event, const struct jr_span *root,
    struct api_event *ev)
{
	static const char *const rkeys[] = { "error", "object", "choices",
	    "usage" };
	static const char *const ckeys[] = { "delta", "finish_reason" };
	static const char *const ukeys[] = { "prompt_tokens",
	    "completion_tokens" };
	struct jr_span	 r[4], c[2], u[2], choice, t;
	unsigned int	 has, cm, um;
	size_t		 it = 0;
	char		 w[API_FINISH_MAX];

	if (jr_type(root) != '{')
		return (-1);
	has = jr_members(root, rkeys, r, 4);
	if (strcmp(event, "error") == 0 || ((has & 1) &&
	    (jr_type(&r[0]) == '{' || jr_type(&r[0]) == '"')) ||
	    ((has & 2) && jr_decode(&r[1], w, sizeof(w)) == 5 &&
	    memcmp(w, "error", 5) == 0))
		return (1);
	if ((has & 4) && jr_next(&r[2], &it, &choice) &&
	    jr_type(&choice) == '{') {
		cm = jr_members(&choice, ckeys, c, 2);
		if ((cm & 1) && jr_get(&c[0], "content", &t) &&
		    jr_type(&t) == '"' &&
		    jr_string(&t, wire_add_text_jr, ev) == -1)
			return (-1);
		wire_copy_word_jr(w, sizeof(w), cm & 2 ? &c[1] : NULL);
		oai_finish(w, ev);
	}
	if ((has & 8) && jr_type(&r[3]) == '{') {
		um = jr_members(&r[3], ukeys, u, 2);
		if (wire_count_jr(um & 1 ? &u[0] : NULL, &ev->prompt) == -1 ||
		    wire_count_jr(um & 2 ? &u[1] : NULL, &ev->answer) == -1)
			return (1);
	}
	return (0);
}

/*
 * Parse one event of a chat completion stream: a chunk, [DONE], or an
 * error (a data: chunk holding one, or llama.cpp's "error:" field,
 * which sse.c hands over as an event named "error").  Reasoning text
 * (delta.reasoning, delta.reasoning_content) is never the answer.
 * Returns -1 if the data is not JSON or memory ran out. The common
 * chunks are read by jsonr.c; the rest, and any it does not take, by
 * jansson.
 */
static int
oai_parse_event(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	size_t		 n = len;

	while (n > 0 && (data[n - 1] == ' ' || data[n - 1] == '\n' ||
	    data[n - 1] == '\r' || data[n - 1] == '\t'))
		n--;
	if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
		wire_event_init(ev);
		ev->end = 1;
		return (0);
	}
	return (wire_parse_event(event, data, len, ev, oai_event_fast,
	    oai_event_tree));
}

/* oai_parse_event by jansson's tree: every chunk. */
static int
oai_event_tree(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	json_t		*root, *err, *choice, *delta, *t, *u;
	char		 w[API_FINISH_MAX];

	if ((root = wire_load(data, len)) == NULL)
		return (-1);
	if (!json_is_object(root)) {
		json_decref(root);
		return (-1);
	}
	if (strcmp(event, "error") == 0 &&
	    (err = oai_find_error(root)) == NULL)
		err = root;
	else
		err = oai_find_error(root);
	if (err != NULL)
		oai_event_error(err, ev);
	choice = json_array_get(json_object_get(root, "choices"), 0);
	if (json_is_object(choice)) {
		delta = json_object_get(choice, "delta");
		t = json_object_get(delta, "content");
		if (json_is_string(t) && wire_add_text(ev,
		    json_string_value(t), json_string_length(t)) == -1) {
			json_decref(root);
			wire_event_free(ev);
			return (-1);
		}
		wire_copy_word(w, sizeof(w), json_object_get(choice,
		    "finish_reason"));
		oai_finish(w, ev);
	}
	u = json_object_get(root, "usage");
	if (json_is_object(u)) {
		ev->prompt = wire_count(u, "prompt_tokens");
		ev->answer = wire_count(u, "completion_tokens");
	}
	json_decref(root);
	return (0);
}

/*
 * Whether a listed model is for chat: not an embedding, speech,
 * transcription, image, moderation or legacy completion model.
 */
int
oai_model_is_chat(const char *name)
{
	static const char *const marks[] = {
		"embedding", "embed", "embeddings", "tts", "whisper",
		"transcribe", "dall", "image", "moderation", "davinci",
		"babbage", "realtime", "audio", "search", "sora", "rerank",
		"reranker", "bge", "minilm"
	};

	if (strcasestr(name, "embed") != NULL)
		return (0);
	return (!wire_name_has(name, marks, sizeof(marks) /
	    sizeof(marks[0])));
}

/* A context length a local server tells about a model, or 0. */
static uint64_t
oai_context(json_t *m)
{
	uint64_t	 v;

	/* vLLM, then llama.cpp. */
	if (wire_u64(json_object_get(m, "max_model_len"), &v) == 0)
		return (v);
	if (wire_u64(json_object_get(json_object_get(m, "meta"),
	    "n_ctx_train"), &v) == 0)
		return (v);
	return (0);
}

/*
 * Parse a model list ({"object":"list","data":[{"id",...}]}), keeping
 * chat models.  A server that pages says has_more and last_id.
 */
static int
oai_parse_models(const char *body, size_t len, struct api_page *pg)
{
	json_t		*root, *data, *m, *v;
	const char	*id;
	size_t		 i;

	memset(pg, 0, sizeof(*pg));
	if ((root = wire_load(body, len)) == NULL)
		return (-1);
	data = json_object_get(root, "data");
	if (!json_is_object(root) || !json_is_array(data))
		goto fail;
	json_array_foreach(data, i, m) {
		id = json_string_value(json_object_get(m, "id"));
		if (id == NULL || strlen(id) != json_string_length(
		    json_object_get(m, "id")) || !wire_model_name(id) ||
		    !oai_model_is_chat(id)) {
			pg->nskipped++;
			continue;
		}
		if (wire_page_add(pg, id, oai_context(m), 0) == -1)
			goto fail;
	}
	v = json_object_get(root, "last_id");
	if (json_is_true(json_object_get(root, "has_more")) &&
	    json_is_string(v) && json_string_length(v) > 0) {
		if (json_string_length(v) > OAI_ID_MAX ||
		    !wire_model_name(json_string_value(v)))
			goto fail;
		if ((pg->next = strdup(json_string_value(v))) == NULL)
			goto fail;
	}
	json_decref(root);
	return (0);
 fail:
	json_decref(root);
	wire_page_free(pg);
	return (-1);
}

/* The URL of the model list (after: where a next page starts). */
static char *
oai_models_url(const char *base, const char *after)
{
	return (wire_url(base, after != NULL ? "/models?after=" : "/models",
	    after));
}

/* The URL of a chat completion. */
static char *
oai_gen_url(const char *base, const char *model)
{
	(void)model;
	return (wire_url(base, "/chat/completions", NULL));
}

/* A bearer token, when there is a key (local servers need none). */
static int
oai_headers(const char *key, int stream, int (*add)(void *, const char *),
    void *arg)
{
	if (stream && add(arg, "Accept: text/event-stream") == -1)
		return (-1);
	return (wire_key_header(add, arg, "Authorization: Bearer ", key));
}

/*
 * Which errors are worth a retry: 429 (unless the quota or billing is
 * spent), 500, 503, 504; 429 and 503 mean busy.
 */
static unsigned int
oai_classify(const struct api_error *e, const char **code)
{
	int	 c = e->code;

	*code = wire_error_code(c);
	if (c == 429 && (strcmp(e->type, "insufficient_quota") == 0 ||
	    strcmp(e->type, "billing_hard_limit_reached") == 0))
		return (0);
	if (c == 429 || c == 503 || (c == 0 && e->overloaded))
		return (API_RETRY | API_BUSY);
	if (c == 500 || c == 504)
		return (API_RETRY);
	return (0);
}

const struct api api_openai = {
	.name = "openai",
	.type = PROVIDER_OPENAI,
	.key_required = 0,
	.valid_model = wire_model_name,
	.models_url = oai_models_url,
	.gen_url = oai_gen_url,
	.headers = oai_headers,
	.request = oai_request,
	.parse_event = oai_parse_event,
	.parse_error = oai_parse_error,
	.parse_models = oai_parse_models,
	.classify = oai_classify,
};
