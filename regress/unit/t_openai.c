/*
 * t_openai.c: unit tests of the OpenAI-compatible wire code
 * (bridged/openai.c through its struct api, and bridged/wire.c), also
 * fed through the SSE parser as the provider does.  Fixtures follow
 * the shapes OpenAI, Ollama, llama.cpp and vLLM send.  Prints "ok
 * <case>" or "FAIL <case>: <why>" per case.
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

/* Parse one event of a given SSE event name. */
static int
ev(const char *name, const char *json, struct api_event *e)
{
	return (api_openai.parse_event(name, json, strlen(json), e));
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

/* Request bodies: roles, joined runs, system, settings, refusals. */
static void
t_request(void)
{
	struct api_turn	 t[5] = {
		{ ROLE_SUMMARY, "earlier: x", 10 },
		{ ROLE_USER, "hello", 5 },
		{ ROLE_MODEL, "hi", 2 },
		{ ROLE_USER, "", 0 },
		{ ROLE_USER, "now? \xf0\x9f\x98\x80", 9 },
	};
	struct api_request rq;
	json_t		*root;
	char		*s;
	size_t		 len = 0;

	memset(&rq, 0, sizeof(rq));
	rq.model = "llama3.2:latest";
	rq.system = "be brief";
	rq.turns = t;
	rq.nturns = 5;
	rq.set.temperature = -1;
	s = api_openai.request(&rq, &len);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-shape", root != NULL && len == strlen(s) &&
	    json_array_size(json_object_get(root, "messages")) == 4 &&
	    json_is_true(json_object_get(root, "stream")) &&
	    json_is_true(json_object_get(json_object_get(root,
	    "stream_options"), "include_usage")) &&
	    strcmp(json_string_value(json_object_get(root, "model")),
	    "llama3.2:latest") == 0 &&
	    json_object_get(root, "max_tokens") == NULL &&
	    json_object_get(root, "temperature") == NULL, "body %s",
	    s != NULL ? s : "NULL");
	result("request-roles", root != NULL &&
	    msg_is(root, 0, "system", "be brief") &&
	    msg_is(root, 1, "user", "earlier: x\n\nhello") &&
	    msg_is(root, 2, "assistant", "hi") &&
	    msg_is(root, 3, "user", "now? \xf0\x9f\x98\x80"), "body %s",
	    s != NULL ? s : "NULL");
	json_decref(root);
	free(s);

	rq.system = NULL;
	rq.set.temperature = 0.25;
	rq.set.max_tokens = 77;
	s = api_openai.request(&rq, NULL);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-settings", root != NULL &&
	    json_real_value(json_object_get(root, "temperature")) == 0.25 &&
	    json_integer_value(json_object_get(root, "max_tokens")) == 77 &&
	    msg_is(root, 0, "user", "earlier: x\n\nhello"), "body %s",
	    s != NULL ? s : "NULL");
	json_decref(root);
	free(s);
	rq.set.max_tokens = 0;
	rq.max_tokens = 500;
	s = api_openai.request(&rq, NULL);
	result("request-block-max-tokens", s != NULL &&
	    strstr(s, "\"max_tokens\":500") != NULL, "body %s",
	    s != NULL ? s : "NULL");
	free(s);

	rq.turns = t + 3;
	rq.nturns = 1;
	rq.system = "sys";
	s = api_openai.request(&rq, NULL);
	result("request-nothing", s == NULL, "body %s", s ? s : "NULL");
	free(s);
	t[2].text = "bad \xff";
	t[2].len = 5;
	rq.turns = t + 2;
	s = api_openai.request(&rq, NULL);
	result("request-bad-utf8", s == NULL, "body %s", s ? s : "NULL");
	free(s);
}

/* Stream events of every shape the servers send. */
static void
t_events(void)
{
	struct api_event e;
	int		 rv;

	rv = ev("", "{\"id\":\"c\",\"object\":\"chat.completion.chunk\","
	    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
	    "\"content\":\"Hel\"},\"finish_reason\":null}]}", &e);
	result("event-text", rv == 0 && e.textlen == 3 &&
	    strcmp(e.text, "Hel") == 0 && e.finish[0] == '\0' &&
	    e.prompt == -1 && !e.has_error && !e.end, "rv %d", rv);
	wire_event_free(&e);

	rv = ev("", "{\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}"
	    "]}", &e);
	result("event-reasoning-content", rv == 0 && e.text == NULL,
	    "rv %d", rv);
	wire_event_free(&e);
	rv = ev("", "{\"choices\":[{\"delta\":{\"reasoning\":\"hmm\","
	    "\"content\":\"\"}}]}", &e);
	result("event-reasoning", rv == 0 && e.text == NULL, "rv %d", rv);
	wire_event_free(&e);

	rv = ev("", "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}",
	    &e);
	result("event-stop", rv == 0 && strcmp(e.finish, "STOP") == 0 &&
	    e.stop_error[0] == '\0', "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("", "{\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]"
	    "}", &e);
	result("event-length", rv == 0 && strcmp(e.finish, "MAX_TOKENS") == 0,
	    "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("", "{\"choices\":[{\"delta\":{},\"finish_reason\":"
	    "\"content_filter\"}]}", &e);
	result("event-content-filter", rv == 0 &&
	    strcmp(e.finish, "CONTENT_FILTER") == 0, "finish %s", e.finish);
	wire_event_free(&e);

	rv = ev("", "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
	    "\"completion_tokens\":7,\"total_tokens\":19}}", &e);
	result("event-usage", rv == 0 && e.prompt == 12 && e.answer == 7,
	    "rv %d %lld %lld", rv, (long long)e.prompt, (long long)e.answer);
	wire_event_free(&e);
	rv = ev("", "{\"choices\":null,\"usage\":{\"prompt_tokens\":1,"
	    "\"completion_tokens\":2}}", &e);
	result("event-usage-null-choices", rv == 0 && e.prompt == 1 &&
	    e.answer == 2, "rv %d", rv);
	wire_event_free(&e);

	rv = ev("", "[DONE]", &e);
	result("event-done", rv == 0 && e.end, "rv %d", rv);
	rv = ev("", "[DONE] \n", &e);
	result("event-done-blank", rv == 0 && e.end, "rv %d", rv);

	rv = ev("", "{\"error\":{\"message\":\"The server is overloaded\","
	    "\"type\":\"unavailable_error\",\"code\":503}}", &e);
	result("event-error-chunk", rv == 0 && e.has_error &&
	    e.err.code == 503 && e.err.overloaded &&
	    strcmp(e.err.message, "The server is overloaded") == 0,
	    "rv %d code %d", rv, e.err.code);
	wire_event_free(&e);
	/* llama.cpp's "error:" field: sse.c names the event "error". */
	rv = ev("error", "{\"code\":500,\"message\":\"slot unavailable\","
	    "\"type\":\"server_error\"}", &e);
	result("event-llamacpp-error", rv == 0 && e.has_error &&
	    e.err.code == 500 && strcmp(e.err.type, "server_error") == 0 &&
	    strcmp(e.err.message, "slot unavailable") == 0, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("", "{\"object\":\"error\",\"message\":\"bad\",\"type\":"
	    "\"BadRequestError\",\"code\":400}", &e);
	result("event-bare-error", rv == 0 && e.has_error &&
	    e.err.code == 400, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("", "{\"error\":{\"message\":null,\"code\":null}}", &e);
	result("event-error-empty", rv == 0 && e.has_error &&
	    e.err.message[0] != '\0', "rv %d", rv);
	wire_event_free(&e);

	rv = ev("", "{\"choices\":[{\"delta\":{\"content\":\"broken", &e);
	result("event-badjson", rv == -1, "rv %d", rv);
	rv = ev("", "\"x\"", &e);
	result("event-not-object", rv == -1, "rv %d", rv);
	rv = ev("", "{\"choices\":[{\"delta\":{\"content\":5},"
	    "\"finish_reason\":[]}],\"usage\":{\"prompt_tokens\":-3}}", &e);
	result("event-hostile", rv == 0 && e.text == NULL &&
	    e.finish[0] == '\0' && e.prompt == -1, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("", "{\"choices\":[{\"delta\":{\"content\":\"a\\u0000b\"}}]}",
	    &e);
	result("event-nul", rv == 0 && e.textlen == 2 &&
	    strcmp(e.text, "ab") == 0, "rv %d", rv);
	wire_event_free(&e);
}

/* Error bodies and which are worth a retry. */
static void
t_errors(void)
{
	struct api_error e;
	const char	*s, *code;
	unsigned int	 v;

	s = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":"
	    "\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}";
	api_openai.parse_error(s, strlen(s), 429, &e);
	v = api_openai.classify(&e, &code);
	result("error-429", e.code == 429 && strcmp(e.type,
	    "rate_limit_exceeded") == 0 && (v & API_RETRY) &&
	    (v & API_BUSY) && strcmp(code, "rate-limited") == 0,
	    "code %d type %s v %u", e.code, e.type, v);
	s = "{\"error\":{\"message\":\"You exceeded your current quota\","
	    "\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}";
	api_openai.parse_error(s, strlen(s), 429, &e);
	v = api_openai.classify(&e, &code);
	result("error-quota", v == 0 && strcmp(code, "rate-limited") == 0,
	    "v %u", v);
	s = "{\"error\":{\"message\":\"model \\\"x\\\" not found, try pulling "
	    "it first\",\"type\":\"api_error\",\"param\":null,\"code\":null}}";
	api_openai.parse_error(s, strlen(s), 404, &e);
	v = api_openai.classify(&e, &code);
	result("error-ollama-404", v == 0 && strcmp(code, "no-model") == 0 &&
	    strncmp(e.message, "model \"x\" not found", 19) == 0, "msg %s",
	    e.message);
	s = "{\"error\":\"model requires more system memory\"}";
	api_openai.parse_error(s, strlen(s), 500, &e);
	v = api_openai.classify(&e, &code);
	result("error-string", strcmp(e.message, "model requires more "
	    "system memory") == 0 && (v & API_RETRY), "msg %s", e.message);
	api_openai.parse_error("<html>bad gateway</html>", 24, 502, &e);
	v = api_openai.classify(&e, &code);
	result("error-html", v == 0 && strcmp(e.message, "Bad Gateway") == 0,
	    "msg %s", e.message);
	s = "{\"error\":{\"message\":\"This model's maximum context length is "
	    "8 tokens.\",\"type\":\"invalid_request_error\",\"code\":"
	    "\"context_length_exceeded\"}}";
	api_openai.parse_error(s, strlen(s), 400, &e);
	v = api_openai.classify(&e, &code);
	result("error-overflow", v == 0 && strcmp(code, "upstream") == 0,
	    "v %u", v);
	api_openai.parse_error(NULL, 0, 503, &e);
	v = api_openai.classify(&e, &code);
	result("error-503", v == (API_RETRY | API_BUSY), "v %u", v);
	api_openai.parse_error(NULL, 0, 504, &e);
	v = api_openai.classify(&e, &code);
	result("error-504", v == API_RETRY && strcmp(code,
	    "upstream-timeout") == 0, "v %u", v);
}

/* Model lists: chat models kept, local servers' context lengths. */
static void
t_models(void)
{
	struct api_page	 pg;
	const char	*s;
	int		 rv;

	s = "{\"object\":\"list\",\"data\":["
	    "{\"id\":\"gpt-4o-mini\",\"object\":\"model\",\"created\":1,"
	    "\"owned_by\":\"system\"},"
	    "{\"id\":\"text-embedding-3-small\",\"object\":\"model\"},"
	    "{\"id\":\"whisper-1\"},{\"id\":\"tts-1-hd\"},"
	    "{\"id\":\"dall-e-3\"},"
	    "{\"id\":\"omni-moderation-latest\"},"
	    "{\"id\":\"gpt-4o-realtime-preview\"},"
	    "{\"id\":\"nomic-embed-text:latest\"},"
	    "{\"id\":\"llama3.2:latest\"},"
	    "{\"id\":\"q.gguf\",\"meta\":{\"n_ctx_train\":32768}},"
	    "{\"id\":\"meta-llama/Llama-3.1-8B\",\"max_model_len\":131072},"
	    "{\"id\":\"bad name\"},{\"id\":7},\"x\",{\"id\":\"../x\"}]}";
	rv = api_openai.parse_models(s, strlen(s), &pg);
	result("models-filter", rv == 0 && pg.nmodels == 4 &&
	    strcmp(pg.models[0].name, "gpt-4o-mini") == 0 &&
	    strcmp(pg.models[1].name, "llama3.2:latest") == 0 &&
	    strcmp(pg.models[2].name, "q.gguf") == 0 &&
	    pg.models[2].input_limit == 32768 &&
	    strcmp(pg.models[3].name, "meta-llama/Llama-3.1-8B") == 0 &&
	    pg.models[3].input_limit == 131072 && pg.next == NULL &&
	    pg.nskipped == 11, "rv %d n %zu skipped %zu", rv, pg.nmodels,
	    pg.nskipped);
	wire_page_free(&pg);
	s = "{\"data\":[{\"id\":\"a\"}],\"has_more\":true,\"last_id\":\"a\"}";
	rv = api_openai.parse_models(s, strlen(s), &pg);
	result("models-paged", rv == 0 && pg.next != NULL &&
	    strcmp(pg.next, "a") == 0, "rv %d", rv);
	wire_page_free(&pg);
	s = "{\"models\":[]}";
	rv = api_openai.parse_models(s, strlen(s), &pg);
	result("models-not-a-list", rv == -1, "rv %d", rv);
	rv = api_openai.parse_models("<html>", 6, &pg);
	result("models-html", rv == -1, "rv %d", rv);
}

/* URLs and headers: a key only when there is one. */
static void
t_urls(void)
{
	char	*u;

	u = api_openai.gen_url("http://127.0.0.1:11434/v1", "llama3.2");
	result("url-chat", strcmp(u, "http://127.0.0.1:11434/v1/chat/"
	    "completions") == 0, "%s", u);
	free(u);
	u = api_openai.models_url("https://api.openai.com/v1", NULL);
	result("url-models", strcmp(u, "https://api.openai.com/v1/models") ==
	    0, "%s", u);
	free(u);
	u = api_openai.models_url("http://h/v1", "a b/c");
	result("url-models-after", strcmp(u, "http://h/v1/models?after="
	    "a%20b%2Fc") == 0, "%s", u);
	free(u);
	result("model-names", wire_model_name("llama3.2:8b") &&
	    wire_model_name("meta-llama/Llama-3.1-8B-Instruct") &&
	    wire_model_name("claude-3@20240307") && !wire_model_name("") &&
	    !wire_model_name("a b") && !wire_model_name("../x") &&
	    !wire_model_name("/x") && !wire_model_name("a\nb") &&
	    !wire_model_name("a..b") && !wire_model_name("a+b"), "%s",
	    "accepted a bad name");
	result("chat-filter", oai_model_is_chat("gpt-4o") &&
	    oai_model_is_chat("o3-mini") && oai_model_is_chat("qwen2.5:7b") &&
	    !oai_model_is_chat("text-embedding-ada-002") &&
	    !oai_model_is_chat("mxbai-embed-large:latest") &&
	    !oai_model_is_chat("gpt-4o-mini-tts") &&
	    !oai_model_is_chat("gpt-4o-transcribe") &&
	    !oai_model_is_chat("babbage-002"), "%s", "filter differs");
}

/* Collects a stream as the provider does. */
struct acc {
	char		 text[1024];
	size_t		 len;
	char		 finish[API_FINISH_MAX];
	int64_t		 prompt, answer;
	int		 end, errors, bad;
};

/* One event into the collection. */
static int
acc_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct acc	*a = arg;
	struct api_event e;

	if (api_openai.parse_event(event, data, len, &e) == -1) {
		a->bad++;
		return (0);
	}
	if (e.textlen > 0 && a->len + e.textlen < sizeof(a->text)) {
		memcpy(a->text + a->len, e.text, e.textlen);
		a->len += e.textlen;
		a->text[a->len] = '\0';
	}
	if (e.finish[0] != '\0')
		strlcpy(a->finish, e.finish, sizeof(a->finish));
	if (e.prompt >= 0)
		a->prompt = e.prompt;
	if (e.answer >= 0)
		a->answer = e.answer;
	a->end |= e.end;
	a->errors += e.has_error;
	wire_event_free(&e);
	return (0);
}

/* A whole stream, with llama.cpp's error, cut anywhere. */
static void
t_stream(void)
{
	const char	*s =
	    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\","
	    "\"content\":\"\"}}]}\n\n"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"\xe4\xbd\xa0\"}}]}"
	    "\r\n\r\n"
	    "data: {\"choices\":[{\"delta\":{\"reasoning\":\"no\"}}]}\n\n"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"\xf0\x9f\x98\x80\"}"
	    ",\"finish_reason\":\"stop\"}]}\n\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,"
	    "\"completion_tokens\":2}}\n\n"
	    "error: {\"code\":500,\"message\":\"x\"}\n\n"
	    "data: [DONE]\n\n";
	struct sse	 sse;
	struct acc	 a;
	size_t		 len = strlen(s), i;
	int		 bad = 0;

	for (i = 0; i <= len && !bad; i++) {
		memset(&a, 0, sizeof(a));
		sse_init(&sse, 1024 * 1024, acc_cb, &a);
		sse_feed(&sse, s, i);
		sse_feed(&sse, s + i, len - i);
		if (strcmp(a.text, "\xe4\xbd\xa0\xf0\x9f\x98\x80") != 0 ||
		    strcmp(a.finish, "STOP") != 0 || a.prompt != 4 ||
		    a.answer != 2 || !a.end || a.errors != 1 || a.bad != 0) {
			result("stream-every-split", 0, "split %zu: text %s",
			    i, a.text);
			bad = 1;
		}
		sse_clear(&sse);
	}
	if (!bad)
		result("stream-every-split", 1, "%s", "");
}

/*
 * Chunks jsonr.c reads (fast: jansson allocated nothing) and ones it
 * leaves to jansson: each gives what jansson alone gives.
 */
static void
t_jsonr(void)
{
	static const struct same_case c[] = {
		{ "chunk", "", "{\"id\":\"c1\",\"object\":\"chat.completion.chunk\","
		    "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\\"you\\\""
		    " \\u00e9\"},\"finish_reason\":null}]}", 1 },
		{ "finish-usage", "", "{\"choices\":[{\"delta\":{},\"finish_reason\":"
		    "\"length\"}],\"usage\":{\"prompt_tokens\":9,"
		    "\"completion_tokens\":12}}", 1 },
		{ "finish-other", "", "{\"choices\":[{\"delta\":{\"content\":5},"
		    "\"finish_reason\":\"content_filter\"}]}", 1 },
		{ "error-object", "", "{\"error\":{\"message\":\"no\",\"type\":"
		    "\"x\"}}", 0 },
		{ "error-string", "", "{\"error\":\"no\"}", 0 },
		{ "object-error", "", "{\"object\":\"error\",\"message\":\"no\"}", 0 },
		{ "event-error", "error", "{\"message\":\"no\"}", 0 },
		{ "count-real", "", "{\"usage\":{\"prompt_tokens\":1.5}}", 0 },
	};
	same_cases(&api_openai, c, sizeof(c) / sizeof(c[0]), result);
}

/* The OpenAI-compatible cases, up to a stream split anywhere. */
int
main(void)
{
	t_request();
	t_events();
	t_errors();
	t_models();
	t_urls();
	t_stream();
	t_jsonr();
	return (failures > 0);
}
