/*
 * t_anthropic.c: unit tests of the Anthropic Messages wire code
 * (bridged/anthropic.c through its struct api), also fed through the
 * SSE parser as the provider does.  Fixtures follow the event shapes
 * of the API's streams.  Prints "ok <case>" or "FAIL <case>: <why>".
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bridged.h"
#include "api_same.h"

static int	 failures;

static void	 result(const char *, int, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));

/* Print one result line. */
static void
result(const char *name, int ok, const char *fmt, ...)
{
	va_list	 ap;

	if (ok) {
		printf("ok %s\n", name);
		return;
	}
	failures++;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Parse one event given as a C string. */
static int
ev(const char *name, const char *json, struct api_event *e)
{
	return (api_anthropic.parse_event(name, json, strlen(json), e));
}

/* The role and content of message i of a body. */
static int
msg_is(json_t *root, size_t i, const char *role, const char *content)
{
	json_t	*m = json_array_get(json_object_get(root, "messages"), i);
	const char *r, *c;

	r = json_string_value(json_object_get(m, "role"));
	c = json_string_value(json_object_get(m, "content"));
	return (r != NULL && c != NULL && strcmp(r, role) == 0 &&
	    strcmp(c, content) == 0);
}

/* Request bodies: system apart, roles, max_tokens always, settings. */
static void
t_request(void)
{
	struct api_turn	 t[4] = {
		{ ROLE_SUMMARY, "earlier", 7 },
		{ ROLE_USER, "hello", 5 },
		{ ROLE_MODEL, "hi", 2 },
		{ ROLE_USER, "now", 3 },
	};
	struct api_request rq;
	json_t		*root;
	char		*s;

	memset(&rq, 0, sizeof(rq));
	rq.model = "claude-sonnet-4-5";
	rq.system = "be brief";
	rq.turns = t;
	rq.nturns = 4;
	rq.set.temperature = -1;
	s = api_anthropic.request(&rq, NULL);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-shape", root != NULL &&
	    strcmp(json_string_value(json_object_get(root, "system")),
	    "be brief") == 0 &&
	    json_integer_value(json_object_get(root, "max_tokens")) ==
	    PROVIDER_MAX_TOKENS &&
	    json_is_true(json_object_get(root, "stream")) &&
	    json_array_size(json_object_get(root, "messages")) == 3 &&
	    msg_is(root, 0, "user", "earlier\n\nhello") &&
	    msg_is(root, 1, "assistant", "hi") &&
	    msg_is(root, 2, "user", "now") &&
	    json_object_get(root, "temperature") == NULL, "body %s",
	    s != NULL ? s : "NULL");
	json_decref(root);
	free(s);

	rq.system = "";
	rq.max_tokens = 1000;
	rq.set.temperature = 1.7;
	s = api_anthropic.request(&rq, NULL);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-settings", root != NULL &&
	    json_object_get(root, "system") == NULL &&
	    json_integer_value(json_object_get(root, "max_tokens")) == 1000 &&
	    json_real_value(json_object_get(root, "temperature")) == 1.0,
	    "body %s", s != NULL ? s : "NULL");
	json_decref(root);
	free(s);
	rq.set.max_tokens = 9;
	s = api_anthropic.request(&rq, NULL);
	result("request-asked-max-tokens", s != NULL &&
	    strstr(s, "\"max_tokens\":9,") != NULL, "body %s",
	    s != NULL ? s : "NULL");
	free(s);
	rq.nturns = 0;
	s = api_anthropic.request(&rq, NULL);
	result("request-nothing", s == NULL, "body %s", s ? s : "NULL");
	free(s);
}

/* Every event type of a stream. */
static void
t_events(void)
{
	struct api_event e;
	int		 rv;

	rv = ev("message_start", "{\"type\":\"message_start\",\"message\":"
	    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\","
	    "\"content\":[],\"model\":\"claude\",\"stop_reason\":null,"
	    "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":"
	    "3,\"cache_read_input_tokens\":2,\"output_tokens\":1}}}", &e);
	result("event-message-start", rv == 0 && e.prompt == 30 &&
	    e.answer == 1 && e.text == NULL && e.finish[0] == '\0' && !e.end,
	    "rv %d prompt %lld", rv, (long long)e.prompt);
	wire_event_free(&e);
	rv = ev("content_block_start", "{\"type\":\"content_block_start\","
	    "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
	    &e);
	result("event-block-start", rv == 0 && e.text == NULL, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("content_block_delta", "{\"type\":\"content_block_delta\","
	    "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
	    "\"Hello\"}}", &e);
	result("event-text-delta", rv == 0 && e.textlen == 5 &&
	    strcmp(e.text, "Hello") == 0, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("content_block_delta", "{\"type\":\"content_block_delta\","
	    "\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
	    "\"hmm\"}}", &e);
	result("event-thinking-dropped", rv == 0 && e.text == NULL,
	    "rv %d", rv);
	wire_event_free(&e);
	rv = ev("content_block_start", "{\"type\":\"content_block_start\","
	    "\"index\":0,\"content_block\":{\"type\":\"thinking\","
	    "\"thinking\":\"x\"}}", &e);
	result("event-thinking-block-dropped", rv == 0 && e.text == NULL,
	    "rv %d", rv);
	wire_event_free(&e);
	rv = ev("ping", "{\"type\": \"ping\"}", &e);
	result("event-ping", rv == 0 && e.text == NULL && !e.has_error &&
	    !e.end, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("message_delta", "{\"type\":\"message_delta\",\"delta\":"
	    "{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":"
	    "{\"output_tokens\":15}}", &e);
	result("event-message-delta", rv == 0 &&
	    strcmp(e.finish, "STOP") == 0 && e.answer == 15 && e.prompt == -1,
	    "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("message_delta", "{\"type\":\"message_delta\",\"delta\":"
	    "{\"stop_reason\":\"max_tokens\"}}", &e);
	result("event-max-tokens", rv == 0 &&
	    strcmp(e.finish, "MAX_TOKENS") == 0, "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("message_delta", "{\"type\":\"message_delta\",\"delta\":"
	    "{\"stop_reason\":\"refusal\"}}", &e);
	result("event-refusal", rv == 0 && strcmp(e.finish, "REFUSAL") == 0,
	    "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("message_stop", "{\"type\":\"message_stop\"}", &e);
	result("event-message-stop", rv == 0 && e.end, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("error", "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"overloaded_error\",\"message\":\"Overloaded\"}}", &e);
	result("event-overloaded", rv == 0 && e.has_error &&
	    e.err.code == 529 && e.err.overloaded &&
	    strcmp(e.err.type, "overloaded_error") == 0, "rv %d code %d", rv,
	    e.err.code);
	wire_event_free(&e);
	rv = ev("", "{\"type\":\"future_event\",\"x\":1}", &e);
	result("event-unknown-skipped", rv == 0 && !e.has_error &&
	    e.text == NULL && !e.end, "rv %d", rv);
	wire_event_free(&e);
	/* The data's type wins; the event field helps when there is none. */
	rv = ev("message_stop", "{}", &e);
	result("event-type-from-field", rv == 0 && e.end, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("content_block_delta", "{\"type\":\"content_block_delta\","
	    "\"delta\":{\"type\":\"text_delta\",\"text\":\"broken", &e);
	result("event-badjson", rv == -1, "rv %d", rv);
	rv = ev("content_block_delta", "{\"type\":\"content_block_delta\","
	    "\"delta\":{\"type\":\"text_delta\",\"text\":7}}", &e);
	result("event-hostile", rv == 0 && e.text == NULL, "rv %d", rv);
	wire_event_free(&e);
}

/* Error bodies and which are worth a retry. */
static void
t_errors(void)
{
	static const struct {
		int		 http;
		const char	*type;
		unsigned int	 v;
		const char	*code;
	} c[] = {
		{ 400, "invalid_request_error", 0, "upstream" },
		{ 401, "authentication_error", 0, "upstream" },
		{ 403, "permission_error", 0, "upstream" },
		{ 404, "not_found_error", 0, "no-model" },
		{ 413, "request_too_large", 0, "upstream" },
		{ 429, "rate_limit_error", API_RETRY | API_BUSY,
		    "rate-limited" },
		{ 500, "api_error", API_RETRY, "upstream" },
		{ 529, "overloaded_error", API_RETRY | API_BUSY, "upstream" },
	};
	struct api_error e;
	const char	*code;
	char		 body[256];
	size_t		 i;
	unsigned int	 v;
	int		 bad = 0;

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(body, sizeof(body), "{\"type\":\"error\",\"error\":"
		    "{\"type\":\"%s\",\"message\":\"m %d\"},\"request_id\":"
		    "\"req_1\"}", c[i].type, c[i].http);
		api_anthropic.parse_error(body, strlen(body), c[i].http, &e);
		v = api_anthropic.classify(&e, &code);
		if (v != c[i].v || strcmp(code, c[i].code) != 0 ||
		    e.code != c[i].http || strcmp(e.type, c[i].type) != 0) {
			result("error-classes", 0, "%d: v %u code %s",
			    c[i].http, v, code);
			bad = 1;
		}
	}
	if (!bad)
		result("error-classes", 1, "%s", "");
	api_anthropic.parse_error("<html>", 6, 529, &e);
	v = api_anthropic.classify(&e, &code);
	result("error-529-html", v == (API_RETRY | API_BUSY) &&
	    strcmp(e.message, "Overloaded") == 0, "v %u msg %s", v, e.message);
}

/* Model list pages: has_more and last_id. */
static void
t_models(void)
{
	struct api_page	 pg;
	const char	*s;
	char		*u;
	int		 rv;

	s = "{\"data\":[{\"type\":\"model\",\"id\":\"claude-sonnet-4-5\","
	    "\"display_name\":\"Claude Sonnet 4.5\",\"created_at\":"
	    "\"2025-09-29T00:00:00Z\"},{\"id\":\"bad id\"},{\"id\":"
	    "\"claude-3-haiku-20240307\",\"future\":[1]}],\"has_more\":true,"
	    "\"first_id\":\"claude-sonnet-4-5\",\"last_id\":"
	    "\"claude-3-haiku-20240307\"}";
	rv = api_anthropic.parse_models(s, strlen(s), &pg);
	result("models-page", rv == 0 && pg.nmodels == 2 && pg.nskipped == 1 &&
	    pg.next != NULL && strcmp(pg.next, "claude-3-haiku-20240307") == 0,
	    "rv %d n %zu", rv, pg.nmodels);
	wire_page_free(&pg);
	s = "{\"data\":[],\"has_more\":false,\"first_id\":null,\"last_id\":"
	    "null}";
	rv = api_anthropic.parse_models(s, strlen(s), &pg);
	result("models-last", rv == 0 && pg.next == NULL, "rv %d", rv);
	wire_page_free(&pg);
	s = "{\"data\":[],\"has_more\":true,\"last_id\":null}";
	rv = api_anthropic.parse_models(s, strlen(s), &pg);
	result("models-more-nowhere", rv == -1, "rv %d", rv);
	u = api_anthropic.models_url("https://api.anthropic.com/v1",
	    "claude-3-haiku-20240307");
	result("models-url", strcmp(u, "https://api.anthropic.com/v1/models?"
	    "limit=1000&after_id=claude-3-haiku-20240307") == 0, "%s", u);
	free(u);
	u = api_anthropic.gen_url("https://api.anthropic.com/v1", "x");
	result("messages-url", strcmp(u, "https://api.anthropic.com/v1/"
	    "messages") == 0, "%s", u);
	free(u);
}

/* Collects the header lines an API asks for. */
struct hdrs {
	char	 h[4][128];
	int	 n;
};

/* One header line into the collection. */
static int
add_hdr(void *arg, const char *line)
{
	struct hdrs	*h = arg;

	if (h->n >= 4)
		return (-1);
	strlcpy(h->h[h->n++], line, sizeof(h->h[0]));
	return (0);
}

/* The key and the version travel in their own headers. */
static void
t_headers(void)
{
	struct hdrs	 h;
	int		 i, key = 0, ver = 0;

	memset(&h, 0, sizeof(h));
	api_anthropic.headers("sk-ant-x", 1, add_hdr, &h);
	for (i = 0; i < h.n; i++) {
		key |= strcmp(h.h[i], "x-api-key: sk-ant-x") == 0;
		ver |= strcmp(h.h[i], "anthropic-version: 2023-06-01") == 0;
	}
	result("headers", key && ver, "%d headers", h.n);
}

/*
 * Chunks jsonr.c reads (fast: jansson allocated nothing) and ones it
 * leaves to jansson: each gives what jansson alone gives.
 */
static void
t_jsonr(void)
{
	static const struct same_case c[] = {
		{ "delta", "content_block_delta", "{\"type\":\"content_block_delta\","
		    "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":"
		    "\"Hi \\n\"}}", 1 },
		{ "start", "message_start", "{\"type\":\"message_start\",\"message\":"
		    "{\"id\":\"m\",\"usage\":{\"input_tokens\":10,"
		    "\"cache_read_input_tokens\":5,\"output_tokens\":1},"
		    "\"stop_reason\":null}}", 1 },
		{ "message-delta", "message_delta", "{\"type\":\"message_delta\","
		    "\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":"
		    "{\"output_tokens\":7}}", 1 },
		{ "block-start", "", "{\"type\":\"content_block_start\","
		    "\"content_block\":{\"type\":\"text\",\"text\":\"a\"}}", 1 },
		{ "thinking", "", "{\"type\":\"content_block_delta\",\"delta\":"
		    "{\"type\":\"thinking_delta\",\"thinking\":\"hm\"}}", 1 },
		{ "stop", "message_stop", "{\"type\":\"message_stop\"}", 1 },
		{ "type-from-event", "message_stop", "{}", 1 },
		{ "ping", "ping", "{\"type\":\"ping\"}", 1 },
		{ "error", "error", "{\"type\":\"error\",\"error\":{\"type\":"
		    "\"overloaded_error\",\"message\":\"busy\"}}", 0 },
		{ "count-string", "", "{\"type\":\"message_delta\",\"usage\":"
		    "{\"output_tokens\":\"7\"}}", 0 },
	};
	same_cases(&api_anthropic, c, sizeof(c) / sizeof(c[0]), result);
}

/* The Anthropic cases: request, events, errors, models, headers. */
int
main(void)
{
	t_request();
	t_events();
	t_errors();
	t_models();
	t_headers();
	t_jsonr();
	return (failures > 0);
}
