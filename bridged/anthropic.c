/*
 * anthropic.c: the Anthropic Messages API (type anthropic): GET
 * {url}/models paged with has_more and last_id, POST {url}/messages
 * streamed as typed events (message_start, content_block_start,
 * content_block_delta, content_block_stop, message_delta,
 * message_stop, ping, error), headers x-api-key and anthropic-version.
 * max_tokens is required by the API, so one is always sent.
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

#define ANT_VERSION	"2023-06-01"
#define ANT_ID_MAX	512		/* longest paging id kept */

/*
 * The body of a streamed message: system apart, the turns as user and
 * assistant messages (empty ones left out, runs of one role joined),
 * max_tokens always.  NULL with errno EINVAL if nothing is left.
 */
static char *
ant_request(const struct api_request *rq, size_t *lenp)
{
	struct jsonw	 w;
	uint32_t	 max;

	max = rq->set.max_tokens > 0 ? rq->set.max_tokens : rq->max_tokens;
	if (max == 0)
		max = PROVIDER_MAX_TOKENS;
	jw_init(&w, wire_body_hint(rq));
	jw_raw(&w, "{\"model\":");
	jw_str(&w, rq->model, strlen(rq->model));
	jw_raw(&w, ",\"max_tokens\":");
	jw_u64(&w, max);
	if (rq->system != NULL && rq->system[0] != '\0') {
		jw_raw(&w, ",\"system\":");
		jw_str(&w, rq->system, strlen(rq->system));
	}
	jw_raw(&w, ",\"messages\":");
	if (wire_messages(&w, rq, NULL) == 0)
		w.bad = EINVAL;
	if (rq->set.temperature >= 0) {
		/* Anthropic's range is 0 to 1. */
		jw_raw(&w, ",\"temperature\":");
		jw_real(&w, rq->set.temperature > 1 ? 1 :
		    rq->set.temperature);
	}
	jw_raw(&w, ",\"stream\":true}");
	return (jw_end(&w, lenp));
}

/* The HTTP status an error type stands for, in a stream. */
static int
ant_type_code(const char *type)
{
	static const struct {
		const char	*type;
		int		 code;
	} t[] = {
		{ "invalid_request_error", 400 },
		{ "authentication_error", 401 },
		{ "billing_error", 402 },
		{ "permission_error", 403 },
		{ "not_found_error", 404 },
		{ "request_too_large", 413 },
		{ "rate_limit_error", 429 },
		{ "api_error", 500 },
		{ "timeout_error", 504 },
		{ "overloaded_error", 529 },
	};
	size_t	 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(type, t[i].type) == 0)
			return (t[i].code);
	return (0);
}

/* Fill e from {"type":"error","error":{"type","message"}}. */
static void
ant_error_object(json_t *root, struct api_error *e)
{
	json_t	*err, *v;

	err = json_object_get(root, "error");
	if (!json_is_object(err))
		return;
	wire_copy_word(e->type, sizeof(e->type), json_object_get(err,
	    "type"));
	v = json_object_get(err, "message");
	if (json_is_string(v))
		wire_copy_line(e->message, sizeof(e->message),
		    json_string_value(v), json_string_length(v));
	if (e->code == 0)
		e->code = ant_type_code(e->type);
	if (strcmp(e->type, "overloaded_error") == 0)
		e->overloaded = 1;
}

/* Parse an error body of an HTTP status; always fills e. */
static void
ant_parse_error(const char *body, size_t len, int http, struct api_error *e)
{
	json_t	*root;

	wire_error_init(e, http);
	root = wire_load(body, len);
	if (json_is_object(root))
		ant_error_object(root, e);
	if (http == 529)
		e->overloaded = 1;
	if (e->message[0] == '\0')
		strlcpy(e->message, http > 0 ? wire_http_reason(http) :
		    "error without a message", sizeof(e->message));
	json_decref(root);
}

/*
 * A stop_reason (its word, as wire_copy_word leaves it in w) as the
 * status line's word: STOP, MAX_TOKENS, ...
 */
static void
ant_finish_word(char *w, struct api_event *ev)
{
	size_t	 i;

	if (w[0] == '\0')
		return;
	if (strcmp(w, "end_turn") == 0 || strcmp(w, "stop_sequence") == 0)
		strlcpy(ev->finish, "STOP", sizeof(ev->finish));
	else if (strcmp(w, "max_tokens") == 0 ||
	    strcmp(w, "model_context_window_exceeded") == 0)
		strlcpy(ev->finish, "MAX_TOKENS", sizeof(ev->finish));
	else {
		for (i = 0; w[i] != '\0'; i++)
			w[i] = toupper((unsigned char)w[i]);
		strlcpy(ev->finish, w, sizeof(ev->finish));
	}
}

static int	ant_event_tree(const char *, const char *, size_t,
		    struct api_event *);

/* A stop_reason as the status line's word. */
static void
ant_finish(json_t *v, struct api_event *ev)
{
	char	 w[API_FINISH_MAX];

	wire_copy_word(w, sizeof(w), v);
	ant_finish_word(w, ev);
}

/* Token counts of a usage object; cached input counts as input. */
static void
ant_usage(json_t *u, struct api_event *ev)
{
	int64_t	 in, c;

	if (!json_is_object(u))
		return;
	if ((in = wire_count(u, "input_tokens")) >= 0) {
		if ((c = wire_count(u, "cache_creation_input_tokens")) > 0)
			in += c;
		if ((c = wire_count(u, "cache_read_input_tokens")) > 0)
			in += c;
		ev->prompt = in;
	}
	ev->answer = wire_count(u, "output_tokens");
}

/* Text of a text block or a text delta; other kinds are not answers. */
static int
ant_text(json_t *o, const char *kind, struct api_event *ev)
{
	json_t	*t;

	if (!json_is_string(json_object_get(o, "type")) ||
	    strcmp(json_string_value(json_object_get(o, "type")), kind) != 0)
		return (0);
	t = json_object_get(o, "text");
	if (!json_is_string(t))
		return (0);
	return (wire_add_text(ev, json_string_value(t),
	    json_string_length(t)));
}

/*
 * ant_usage for a usage object read by jsonr.c: 0, or 1 if jansson
 * must read a count written otherwise than in digits.
 */
static int
ant_usage_jr(const struct jr_span *u, struct api_event *ev)
{
	static const char *const keys[] = { "input_tokens",
	    "cache_creation_input_tokens", "cache_read_input_tokens",
	    "output_tokens" };
	struct jr_span	 v[4];
	unsigned int	 has;
	int64_t		 n[4];
	int		 i;

	if (jr_type(u) != '{')
		return (0);
	has = jr_members(u, keys, v, 4);
	for (i = 0; i < 4; i++)
		if (wire_count_jr(has & (1U << i) ? &v[i] : NULL, &n[i]) == -1)
			return (1);
	if (n[0] >= 0) {
		if (n[1] > 0)
			n[0] += n[1];
		if (n[2] > 0)
			n[0] += n[2];
		ev->prompt = n[0];
	}
	ev->answer = n[3];
	return (0);
}

/* ant_text for a block read by jsonr.c. */
static int
ant_text_jr(const struct jr_span *o, const char *kind, struct api_event *ev)
{
	static const char *const keys[] = { "type", "text" };
	struct jr_span	 v[2];
	unsigned int	 has;
	char		 w[32];
	size_t		 n;

	has = jr_members(o, keys, v, 2);
	if (!(has & 1) || jr_type(&v[0]) != '"' ||
	    (n = jr_decode(&v[0], w, sizeof(w))) != strlen(kind) ||
	    memcmp(w, kind, n) != 0 || !(has & 2) || jr_type(&v[1]) != '"')
		return (0);
	return (jr_string(&v[1], wire_add_text_jr, ev));
}

/* A stop_reason read by jsonr.c (NULL: none) as the status line's word. */
static void
ant_finish_jr(const struct jr_span *v, struct api_event *ev)
{
	char	 w[API_FINISH_MAX];

	wire_copy_word_jr(w, sizeof(w), v);
	ant_finish_word(w, ev);
}

/*
 * ant_event_tree's reading of an event jsonr.c took, without jansson:
 * 0 and ev filled, -1 if not an object or the text outgrew its room or
 * memory, 1 if jansson must read it (an error; a count written
 * otherwise than in digits).
 */
static int
ant_event_fast(const char *event, const struct jr_span *root,
    struct api_event *ev)
{
	static const char *const rkeys[] = { "type", "message",
	    "content_block", "delta", "usage", "error" };
	struct jr_span	 r[6], m, v;
	unsigned int	 has;
	char		 type[32];
	size_t		 n;

	if (jr_type(root) != '{')
		return (-1);
	has = jr_members(root, rkeys, r, 6);
	if ((has & 1) && jr_type(&r[0]) == '"') {
		/* A type longer than any known is unknown: "" stands in. */
		if ((n = jr_decode(&r[0], type, sizeof(type))) >= sizeof(type))
			n = 0;
		type[n] = '\0';
	} else
		(void)strlcpy(type, strlen(event) < sizeof(type) ? event : "",
		    sizeof(type));
	if (strcmp(type, "error") == 0 || ((has & 32) &&
	    jr_type(&r[5]) == '{'))
		return (1);
	if (strcmp(type, "message_start") == 0) {
		if ((has & 2) && jr_get(&r[1], "usage", &v) &&
		    ant_usage_jr(&v, ev) == 1)
			return (1);
		ant_finish_jr((has & 2) && jr_get(&r[1], "stop_reason", &m) ?
		    &m : NULL, ev);
	} else if (strcmp(type, "content_block_start") == 0)
		return ((has & 4) ? ant_text_jr(&r[2], "text", ev) : 0);
	else if (strcmp(type, "content_block_delta") == 0)
		return ((has & 8) ? ant_text_jr(&r[3], "text_delta", ev) : 0);
	else if (strcmp(type, "message_delta") == 0) {
		ant_finish_jr((has & 8) && jr_get(&r[3], "stop_reason", &m) ?
		    &m : NULL, ev);
		if ((has & 16) && ant_usage_jr(&r[4], ev) == 1)
			return (1);
	} else if (strcmp(type, "message_stop") == 0)
		ev->end = 1;
	return (0);
}

/*
 * Parse one event of a message stream.  The type is the data's own
 * "type" (the event field when it has none).  Unknown types are
 * skipped, as the API asks.  Returns -1 if the data is not a JSON
 * object or memory ran out. The common events are read by jsonr.c;
 * the rest, and any it does not take, by jansson.
 */
static int
ant_parse_event(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	return (wire_parse_event(event, data, len, ev, ant_event_fast,
	    ant_event_tree));
}

/* ant_parse_event by jansson's tree: every event. */
static int
ant_event_tree(const char *event, const char *data, size_t len,
    struct api_event *ev)
{
	json_t		*root, *msg;
	const char	*type;
	int		 rv = 0;

	if ((root = wire_load(data, len)) == NULL)
		return (-1);
	if (!json_is_object(root)) {
		json_decref(root);
		return (-1);
	}
	if ((type = json_string_value(json_object_get(root, "type"))) == NULL)
		type = event;
	if (strcmp(type, "message_start") == 0) {
		msg = json_object_get(root, "message");
		ant_usage(json_object_get(msg, "usage"), ev);
		/* An answer is never in message_start; a stop may be. */
		ant_finish(json_object_get(msg, "stop_reason"), ev);
	} else if (strcmp(type, "content_block_start") == 0)
		rv = ant_text(json_object_get(root, "content_block"), "text",
		    ev);
	else if (strcmp(type, "content_block_delta") == 0)
		rv = ant_text(json_object_get(root, "delta"), "text_delta",
		    ev);
	else if (strcmp(type, "message_delta") == 0) {
		ant_finish(json_object_get(json_object_get(root, "delta"),
		    "stop_reason"), ev);
		ant_usage(json_object_get(root, "usage"), ev);
	} else if (strcmp(type, "message_stop") == 0)
		ev->end = 1;
	else if (strcmp(type, "error") == 0 ||
	    json_is_object(json_object_get(root, "error"))) {
		ev->has_error = 1;
		wire_error_init(&ev->err, 0);
		ant_error_object(root, &ev->err);
		if (ev->err.message[0] == '\0')
			strlcpy(ev->err.message, "error without a message",
			    sizeof(ev->err.message));
	}
	/* ping, content_block_stop and what comes later: nothing. */
	json_decref(root);
	if (rv == -1)
		wire_event_free(ev);
	return (rv);
}

/* Parse a page of the model list; every Claude model is for chat. */
static int
ant_parse_models(const char *body, size_t len, struct api_page *pg)
{
	json_t		*root, *data, *m, *v;
	const char	*id;
	uint64_t	 in, out;
	size_t		 i;

	memset(pg, 0, sizeof(*pg));
	if ((root = wire_load(body, len)) == NULL)
		return (-1);
	data = json_object_get(root, "data");
	if (!json_is_object(root) || !json_is_array(data))
		goto fail;
	json_array_foreach(data, i, m) {
		v = json_object_get(m, "id");
		id = json_string_value(v);
		if (id == NULL || strlen(id) != json_string_length(v) ||
		    !wire_model_name(id)) {
			pg->nskipped++;
			continue;
		}
		if (wire_u64(json_object_get(m, "max_input_tokens"), &in) == -1)
			in = 0;
		if (wire_u64(json_object_get(m, "max_tokens"), &out) == -1)
			out = 0;
		if (wire_page_add(pg, id, in, out) == -1)
			goto fail;
	}
	v = json_object_get(root, "last_id");
	if (json_is_true(json_object_get(root, "has_more"))) {
		/* More pages, but nowhere to start the next: broken. */
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > ANT_ID_MAX ||
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

/* The URL of a page of the model list (after: the last id seen). */
static char *
ant_models_url(const char *base, const char *after)
{
	return (wire_url(base, after != NULL ? "/models?limit=1000&after_id=" :
	    "/models?limit=1000", after));
}

/* The URL of a message. */
static char *
ant_gen_url(const char *base, const char *model)
{
	(void)model;
	return (wire_url(base, "/messages", NULL));
}

/* The key in x-api-key, and the version of the API spoken. */
static int
ant_headers(const char *key, int stream, int (*add)(void *, const char *),
    void *arg)
{
	if (stream && add(arg, "Accept: text/event-stream") == -1)
		return (-1);
	if (add(arg, "anthropic-version: " ANT_VERSION) == -1)
		return (-1);
	return (wire_key_header(add, arg, "x-api-key: ", key));
}

/*
 * Which errors are worth a retry: 429 and 529 (busy, with their
 * retry-after), 500, 503, 504; 400, 401, 403, 404 and 413 never.
 */
static unsigned int
ant_classify(const struct api_error *e, const char **code)
{
	int	 c = e->code;

	*code = wire_error_code(c);
	if (c == 429 || c == 529 || c == 503 || e->overloaded)
		return (API_RETRY | API_BUSY);
	if (c == 500 || c == 504)
		return (API_RETRY);
	return (0);
}

const struct api api_anthropic = {
	.name = "anthropic",
	.type = PROVIDER_ANTHROPIC,
	.key_required = 1,
	.valid_model = wire_model_name,
	.models_url = ant_models_url,
	.gen_url = ant_gen_url,
	.headers = ant_headers,
	.request = ant_request,
	.parse_event = ant_parse_event,
	.parse_error = ant_parse_error,
	.parse_models = ant_parse_models,
	.classify = ant_classify,
};
