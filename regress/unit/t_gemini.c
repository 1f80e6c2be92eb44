/*
 * t_gemini.c: unit tests of the Gemini wire code (bridged/gemini.c,
 * through its struct api), also fed through the SSE parser
 * (bridged/sse.c) as the provider does.  Fixtures follow the shapes
 * of UPSTREAMS.md.  Prints "ok <case>"
 * or "FAIL <case>: <why>" per case.
 */

#include <sys/types.h>

#include <err.h>
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
static int	 ev(const char *, struct api_event *);
static char	*greq(const struct api_turn *, size_t, const char *,
		    size_t *);
static int	 near(double, double);

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
ev(const char *json, struct api_event *e)
{
	return (api_gemini.parse_event("", json, strlen(json), e));
}

/* A request body, with no settings. */
static char *
greq(const struct api_turn *t, size_t n, const char *sys, size_t *lenp)
{
	struct api_request	 rq;

	memset(&rq, 0, sizeof(rq));
	rq.model = "gemini-2.0-flash";
	rq.system = sys;
	rq.turns = t;
	rq.nturns = n;
	rq.set.temperature = -1;
	return (api_gemini.request(&rq, lenp));
}

/* Doubles equal within rounding. */
static int
near(double a, double b)
{
	return (a - b < 1e-9 && b - a < 1e-9);
}

/* ---- request bodies ------------------------------------------------ */

/* Request bodies: roles, merging, system instruction, refusals. */
static void
t_request(void)
{
	struct api_turn	 t[5] = {
		{ ROLE_USER, "hello \"you\"\n\\ \xf0\x9f\x98\x80", 0 },
		{ ROLE_MODEL, "hi", 2 },
		{ ROLE_SUMMARY, "earlier: x", 10 },
		{ ROLE_USER, "", 0 },
		{ ROLE_USER, "now?", 4 },
	};
	json_t		*root, *c, *si;
	char		*s;
	size_t		 len = 0;
	const char	*txt;

	t[0].len = strlen(t[0].text);
	s = greq(t, 5, "be brief", &len);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	c = json_object_get(root, "contents");
	result("request-shape", root != NULL && len == strlen(s) &&
	    json_array_size(c) == 3, "body %s", s != NULL ? s : "NULL");
	txt = json_string_value(json_object_get(json_array_get(json_object_get(
	    json_array_get(c, 0), "parts"), 0), "text"));
	result("request-text-escaped", txt != NULL &&
	    strcmp(txt, t[0].text) == 0, "got %s", txt ? txt : "NULL");
	result("request-roles", json_array_size(c) == 3 &&
	    strcmp(json_string_value(json_object_get(json_array_get(c, 0),
	    "role")), "user") == 0 &&
	    strcmp(json_string_value(json_object_get(json_array_get(c, 1),
	    "role")), "model") == 0 &&
	    strcmp(json_string_value(json_object_get(json_array_get(c, 2),
	    "role")), "user") == 0, "body %s", s ? s : "NULL");
	/* The summary and the last prompt share one user content. */
	result("request-merge-same-role", json_array_size(json_object_get(
	    json_array_get(c, 2), "parts")) == 2, "body %s", s ? s : "NULL");
	si = json_object_get(root, "systemInstruction");
	txt = json_string_value(json_object_get(json_array_get(
	    json_object_get(si, "parts"), 0), "text"));
	result("request-system", txt != NULL && strcmp(txt, "be brief") == 0,
	    "body %s", s ? s : "NULL");
	json_decref(root);
	free(s);

	s = greq(t + 1, 1, "", NULL);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-no-system", root != NULL &&
	    json_object_get(root, "systemInstruction") == NULL &&
	    json_array_size(json_object_get(root, "contents")) == 1,
	    "body %s", s ? s : "NULL");
	json_decref(root);
	free(s);
	s = greq(t + 1, 1, NULL, NULL);
	result("request-null-system", s != NULL &&
	    strstr(s, "systemInstruction") == NULL, "body %s", s ? s : "NULL");
	free(s);

	s = greq(t + 3, 1, "sys", NULL);
	result("request-all-empty", s == NULL, "body %s", s ? s : "NULL");
	free(s);
	s = greq(t, 0, "sys", NULL);
	result("request-no-turns", s == NULL, "body %s", s ? s : "NULL");
	free(s);
	t[1].text = "bad \xff\xfe utf-8";
	t[1].len = strlen(t[1].text);
	s = greq(t + 1, 1, NULL, NULL);
	result("request-bad-utf8", s == NULL, "body %s", s ? s : "NULL");
	free(s);
	s = greq(t + 4, 1, "bad \xc3", NULL);
	result("request-bad-utf8-system", s == NULL, "body %s",
	    s ? s : "NULL");
	free(s);
	/* The length is taken, not strlen: text may be a slice. */
	t[0].text = "abcdef";
	t[0].len = 3;
	s = greq(t, 1, NULL, NULL);
	result("request-length", s != NULL && strstr(s, "\"abc\"") != NULL,
	    "body %s", s ? s : "NULL");
	free(s);
}

/*
 * The body is written as JSON text: every byte a text may hold reads
 * back as it was (controls escaped, NUL included, UTF-8 as it is), a
 * text far larger than the first guess grows the buffer, a temperature
 * stays a real.
 */
static void
t_request_text(void)
{
	struct api_turn	 t[2];
	struct api_request rq;
	json_t		*root, *parts;
	const char	*txt;
	char		 every[160], *big, *s;
	size_t		 n = 0, i, len, bigl = 300000;
	int		 c;

	for (c = 0; c < 0x80; c++)
		every[n++] = (char)c;
	memcpy(every + n, "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80", 9);
	n += 9;
	t[0].role = ROLE_USER;
	t[0].text = every;
	t[0].len = n;
	s = greq(t, 1, NULL, &len);
	root = s != NULL ? json_loadb(s, len, JSON_ALLOW_NUL, NULL) : NULL;
	parts = json_object_get(json_array_get(json_object_get(root,
	    "contents"), 0), "parts");
	txt = json_string_value(json_object_get(json_array_get(parts, 0),
	    "text"));
	result("request-every-byte", txt != NULL && json_string_length(
	    json_object_get(json_array_get(parts, 0), "text")) == n &&
	    memcmp(txt, every, n) == 0 && len == strlen(s) &&
	    strchr(s, '\n') == NULL && strchr(s, '\t') == NULL,
	    "body %s", s != NULL ? s : "NULL");
	json_decref(root);
	free(s);

	if ((big = malloc(bigl)) == NULL)
		err(1, NULL);
	for (i = 0; i < bigl; i++)
		big[i] = i % 7 == 0 ? '"' : 'a' + i % 26;
	t[0].text = "short";
	t[0].len = 5;
	t[1].role = ROLE_USER;
	t[1].text = big;
	t[1].len = bigl;
	s = greq(t, 2, NULL, &len);
	root = s != NULL ? json_loadb(s, len, 0, NULL) : NULL;
	parts = json_object_get(json_array_get(json_object_get(root,
	    "contents"), 0), "parts");
	txt = json_string_value(json_object_get(json_array_get(parts, 1),
	    "text"));
	result("request-big-text", txt != NULL && strlen(txt) == bigl &&
	    memcmp(txt, big, bigl) == 0 && json_array_size(parts) == 2,
	    "len %zu", s != NULL ? len : 0);
	json_decref(root);
	free(s);
	free(big);

	memset(&rq, 0, sizeof(rq));
	rq.model = "gemini-2.0-flash";
	rq.turns = t;
	rq.nturns = 1;
	rq.set.temperature = 1;
	s = api_gemini.request(&rq, NULL);
	root = s != NULL ? json_loads(s, 0, NULL) : NULL;
	result("request-real", json_is_real(json_object_get(json_object_get(
	    root, "generationConfig"), "temperature")) && strstr(s,
	    "\"temperature\":1.0}") != NULL, "body %s", s ? s : "NULL");
	json_decref(root);
	free(s);
	rq.set.temperature = 0.7;
	s = api_gemini.request(&rq, NULL);
	result("request-real-short", s != NULL &&
	    strstr(s, "\"temperature\":0.7}") != NULL, "body %s",
	    s ? s : "NULL");
	free(s);
}

/* Generation settings: generationConfig only when something is set. */
static void
t_settings(void)
{
	struct api_turn	 t = { ROLE_USER, "hi", 2 };
	struct api_request rq;
	char		*s;

	memset(&rq, 0, sizeof(rq));
	rq.model = "gemini-2.0-flash";
	rq.turns = &t;
	rq.nturns = 1;
	rq.set.temperature = 0.5;
	rq.max_tokens = 300;
	s = api_gemini.request(&rq, NULL);
	result("request-settings", s != NULL && strstr(s,
	    "\"generationConfig\":{\"temperature\":0.5,"
	    "\"maxOutputTokens\":300}") != NULL, "body %s", s ? s : "NULL");
	free(s);
	rq.set.temperature = -1;
	rq.max_tokens = 0;
	s = api_gemini.request(&rq, NULL);
	result("request-no-settings", s != NULL &&
	    strstr(s, "generationConfig") == NULL, "body %s", s ? s : "NULL");
	free(s);
}

/* ---- stream events ------------------------------------------------- */

/* Stream events of every shape UPSTREAMS.md lists. */
static void
t_events(void)
{
	struct api_event e;
	int		 rv;

	rv = ev("{\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
	    "\"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\":"
	    " {\"promptTokenCount\": 9,\"totalTokenCount\": 9},"
	    "\"modelVersion\": \"gemini-2.0-flash\"}", &e);
	result("event-text", rv == 0 && e.textlen == 5 &&
	    strcmp(e.text, "Hello") == 0 && e.finish[0] == '\0' &&
	    e.prompt == 9 && e.answer == -1 &&
	    !e.has_error,
	    "rv %d text %s prompt %lld answer %lld", rv, e.text,
	    (long long)e.prompt, (long long)e.answer);
	wire_event_free(&e);

	rv = ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\" world"
	    "\"}],\"role\":\"model\"},\"finishReason\":\"STOP\",\"index\":0,"
	    "\"safetyRatings\":[]}],\"usageMetadata\":{\"promptTokenCount\":"
	    "9,\"candidatesTokenCount\":2,\"totalTokenCount\":11,"
	    "\"cachedContentTokenCount\":0,\"thoughtsTokenCount\":30},"
	    "\"responseId\":\"abc\"}", &e);
	result("event-final-text-and-stop", rv == 0 &&
	    strcmp(e.text, " world") == 0 && strcmp(e.finish, "STOP") == 0 &&
	    e.answer == 2 && e.stop_error[0] == '\0', "rv %d finish %s",
	    rv, e.finish);
	wire_event_free(&e);

	rv = ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}],"
	    "\"role\":\"model\"},\"finishReason\":\"STOP\"}]}", &e);
	result("event-empty-final-part", rv == 0 && e.text == NULL &&
	    e.textlen == 0 && strcmp(e.finish, "STOP") == 0, "rv %d", rv);
	wire_event_free(&e);

	rv = ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"I "
	    "think\",\"thought\":true},{\"text\":\"A\"},{\"text\":\"B\","
	    "\"thought\":false},{\"functionCall\":{}},{\"text\":\"C\","
	    "\"thoughtSignature\":\"xyz\"}]}}]}", &e);
	result("event-thought-skipped", rv == 0 && e.text != NULL &&
	    strcmp(e.text, "ABC") == 0, "rv %d text %s", rv, e.text);
	wire_event_free(&e);

	rv = ev("{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\","
	    "\"safetyRatings\":[]},\"usageMetadata\":{\"promptTokenCount\":"
	    "12,\"totalTokenCount\":12}}", &e);
	result("event-blocked", rv == 0 && e.text == NULL &&
	    strstr(e.refusal, "blocked the prompt (PROHIBITED_CONTENT)") !=
	    NULL && e.prompt == 12, "rv %d refusal %s", rv, e.refusal);
	wire_event_free(&e);

	rv = ev("{\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0,"
	    "\"safetyRatings\":[{\"category\":\"HARM_CATEGORY_HARASSMENT\","
	    "\"probability\":\"HIGH\",\"blocked\":true}]}]}", &e);
	result("event-safety-no-content", rv == 0 &&
	    strstr(e.stop_error, "safety filter") != NULL &&
	    e.text == NULL && strcmp(e.finish, "SAFETY") == 0, "rv %d", rv);
	wire_event_free(&e);

	rv = ev("{\"candidates\":[{\"content\":{\"role\":\"model\"},"
	    "\"finishReason\":\"MAX_TOKENS\",\"index\":0}],\"usageMetadata\":"
	    "{\"promptTokenCount\":5,\"totalTokenCount\":1029,"
	    "\"thoughtsTokenCount\":1024}}", &e);
	result("event-maxtokens-no-parts", rv == 0 && e.text == NULL &&
	    strcmp(e.finish, "MAX_TOKENS") == 0 && e.stop_error[0] == '\0',
	    "rv %d", rv);
	wire_event_free(&e);

	rv = ev("{\"error\":{\"code\":503,\"message\":\"The model is "
	    "overloaded. Please try again later.\",\"status\":"
	    "\"UNAVAILABLE\"}}", &e);
	result("event-error", rv == 0 && e.has_error && e.err.code == 503 &&
	    strcmp(e.err.type, "UNAVAILABLE") == 0 &&
	    strcmp(e.err.message, "The model is overloaded. Please try again "
	    "later.") == 0 && e.err.overloaded, "rv %d code %d msg %s", rv,
	    e.err.code, e.err.message);
	wire_event_free(&e);

	/* Joined multi-line data, as a pretty-printed error arrives. */
	rv = ev("{\n  \"error\": {\n    \"code\": 500,\n    \"status\": "
	    "\"INTERNAL\"\n  }\n}", &e);
	result("event-error-pretty-no-message", rv == 0 && e.has_error &&
	    e.err.code == 500 && strcmp(e.err.message,
	    "Internal Server Error") == 0, "rv %d msg %s", rv, e.err.message);
	wire_event_free(&e);

	rv = ev("{\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
	    "\"broken", &e);
	result("event-badjson-cut", rv == -1, "rv %d", rv);
	rv = ev("not json at all", &e);
	result("event-badjson-text", rv == -1, "rv %d", rv);
	rv = ev("", &e);
	result("event-empty", rv == -1, "rv %d", rv);
	rv = ev("[{\"candidates\":[]}]", &e);
	result("event-array", rv == -1, "rv %d", rv);
	rv = ev("\"text\"", &e);
	result("event-string", rv == -1, "rv %d", rv);
	rv = ev("{} {}", &e);
	result("event-trailing", rv == -1, "rv %d", rv);
	rv = ev("{}", &e);
	result("event-empty-object", rv == 0 && !e.has_error &&
	    e.text == NULL && e.prompt == -1 && e.finish[0] == '\0',
	    "rv %d", rv);
	wire_event_free(&e);
}

/* Events with wrong types and absurd values. */
static void
t_events_hostile(void)
{
	struct api_event e;
	int		 rv;

	rv = ev("{\"candidates\":{\"content\":1},\"usageMetadata\":[1,2],"
	    "\"promptFeedback\":\"x\"}", &e);
	result("hostile-types-top", rv == 0 && e.text == NULL &&
	    e.prompt == -1 && e.refusal[0] == '\0', "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"candidates\":[{\"content\":{\"parts\":\"text\"},"
	    "\"finishReason\":7}]}", &e);
	result("hostile-types-candidate", rv == 0 &&
	    e.text == NULL && e.finish[0] == '\0', "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"candidates\":[{\"content\":{\"parts\":[1,null,[],"
	    "{\"text\":5},{\"text\":null},{\"text\":\"ok\"}]}}]}", &e);
	result("hostile-types-parts", rv == 0 && e.text != NULL &&
	    strcmp(e.text, "ok") == 0, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"candidates\":[null,{\"content\":{\"parts\":[{\"text\":"
	    "\"second\"}]}}]}", &e);
	result("hostile-null-candidate", rv == 0 &&
	    e.text == NULL, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"usageMetadata\":{\"promptTokenCount\":-5,"
	    "\"candidatesTokenCount\":1e300,\"totalTokenCount\":"
	    "99999999999999999999999999,\"thoughtsTokenCount\":\"42\"}}", &e);
	result("hostile-numbers", rv == 0 && e.prompt == -1 &&
	    e.answer == -1, "rv %d %lld %lld", rv,
	    (long long)e.prompt, (long long)e.answer);
	wire_event_free(&e);
	rv = ev("{\"usageMetadata\":{\"promptTokenCount\":\"12x\","
	    "\"candidatesTokenCount\":\"-3\",\"totalTokenCount\":3.0}}", &e);
	result("hostile-number-strings", rv == 0 && e.prompt == -1 &&
	    e.answer == -1, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"candidates\":[{\"finishReason\":\"ST\\nOP <b>\\u001b[31m"
	    "REALLY_LONG_REASON_THAT_GOES_ON_AND_ON_FOREVER\"}]}", &e);
	result("hostile-finish-reason", rv == 0 && strncmp(e.finish,
	    "STOPb31mREALLY", 14) == 0 && strlen(e.finish) ==
	    sizeof(e.finish) - 1, "finish %s", e.finish);
	wire_event_free(&e);
	rv = ev("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
	    "\"a\\u0000b\"}]}}]}", &e);
	result("hostile-nul-in-text", rv == 0 && e.textlen == 2 &&
	    strcmp(e.text, "ab") == 0, "rv %d len %zu", rv, e.textlen);
	wire_event_free(&e);
	rv = ev("{\"error\":\"just a string\"}", &e);
	result("hostile-error-string", rv == 0 && !e.has_error, "rv %d", rv);
	wire_event_free(&e);
	rv = ev("{\"error\":{\"code\":\"x\",\"message\":[]}}", &e);
	result("hostile-error-types", rv == 0 && e.has_error &&
	    e.err.code == 0 && e.err.message[0] != '\0', "rv %d msg %s", rv,
	    e.err.message);
	wire_event_free(&e);
}

/* ---- model lists --------------------------------------------------- */

static const char *page1 =
    "{\n  \"models\": [\n"
    "    {\"name\": \"models/gemini-2.5-flash\", \"version\": \"2.5\", "
    "\"displayName\": \"Gemini 2.5 Flash\", \"inputTokenLimit\": 1048576, "
    "\"outputTokenLimit\": 65536, \"supportedGenerationMethods\": "
    "[\"generateContent\", \"countTokens\", \"createCachedContent\"], "
    "\"temperature\": 1, \"thinking\": true, \"future\": {\"a\": [1]}},\n"
    "    {\"name\": \"models/text-embedding-004\", \"inputTokenLimit\": "
    "2048, \"outputTokenLimit\": 1, \"supportedGenerationMethods\": "
    "[\"embedContent\"]},\n"
    "    {\"name\": \"models/gemini-2.5-flash-preview-tts\", "
    "\"inputTokenLimit\": 8192, \"supportedGenerationMethods\": "
    "[\"countTokens\", \"generateContent\"]},\n"
    "    {\"name\": \"models/bad name/../x\", \"supportedGenerationMethods\":"
    " [\"generateContent\"]},\n"
    "    {\"name\": 42},\n"
    "    \"not an object\",\n"
    "    {\"name\": \"models/gemma-3-27b-it\", \"inputTokenLimit\": "
    "\"131072\", \"outputTokenLimit\": -1, \"supportedGenerationMethods\":"
    " [\"generateContent\", 7]}\n"
    "  ],\n  \"nextPageToken\": \"Cg5nZW1pbmktMi4wLWZsYXNo\"\n}\n";

/* Model list pages: chat models kept, tokens, skipped entries, bad pages. */
static void
t_models(void)
{
	struct api_page	 pg;
	int		 rv;
	const char	*s;

	rv = api_gemini.parse_models(page1, strlen(page1), &pg);
	result("models-page", rv == 0 && pg.nmodels == 2 &&
	    pg.nskipped == 5 && pg.next != NULL &&
	    strcmp(pg.next, "Cg5nZW1pbmktMi4wLWZsYXNo") == 0,
	    "rv %d n %zu skipped %zu", rv, pg.nmodels, pg.nskipped);
	result("models-fields", rv == 0 && pg.nmodels == 2 &&
	    strcmp(pg.models[0].name, "gemini-2.5-flash") == 0 &&
	    pg.models[0].input_limit == 1048576 &&
	    pg.models[0].output_limit == 65536 &&
	    strcmp(pg.models[1].name, "gemma-3-27b-it") == 0 &&
	    pg.models[1].input_limit == 131072 &&
	    pg.models[1].output_limit == 0, "%s", "fields differ");
	wire_page_free(&pg);

	s = "{\"models\": [{\"name\": \"models/a\", "
	    "\"supportedGenerationMethods\": [\"generateContent\"]}]}";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-last-no-token", rv == 0 && pg.next == NULL &&
	    pg.nmodels == 1, "rv %d", rv);
	wire_page_free(&pg);
	s = "{\"models\": [{\"name\": \"models/a\"}], \"nextPageToken\": \"\"}";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-last-empty-token", rv == 0 && pg.next == NULL &&
	    pg.nmodels == 0 && pg.nskipped == 1, "rv %d", rv);
	wire_page_free(&pg);
	s = "{\"nextPageToken\": null}";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-empty-page", rv == 0 && pg.nmodels == 0 &&
	    pg.next == NULL, "rv %d", rv);
	wire_page_free(&pg);
	s = "{\"models\": [], \"nextPageToken\": \"a b\"}";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-bad-token", rv == -1, "rv %d", rv);
	s = "{\"models\": {}}";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-not-array", rv == -1, "rv %d", rv);
	s = "<html>502</html>";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-not-json", rv == -1, "rv %d", rv);
	s = "[]";
	rv = api_gemini.parse_models(s, strlen(s), &pg);
	result("models-not-object", rv == -1, "rv %d", rv);
}

/* The fake's model set: which are chat models. */
static void
t_filter(void)
{
	static const struct {
		const char	*name;
		unsigned int	 methods;
		int		 chat;
	} m[] = {
		{ "gemini-2.5-pro", GEM_GENERATE | GEM_COUNT, 1 },
		{ "gemini-2.5-flash", GEM_GENERATE | GEM_COUNT, 1 },
		{ "gemini-2.5-flash-lite", GEM_GENERATE, 1 },
		{ "gemini-2.0-flash", GEM_GENERATE, 1 },
		{ "gemini-2.0-flash-001", GEM_GENERATE, 1 },
		{ "gemini-2.0-flash-lite", GEM_GENERATE, 1 },
		{ "gemma-3-27b-it", GEM_GENERATE, 1 },
		{ "gemini-2.0-flash-thinking-exp", GEM_GENERATE, 1 },
		{ "embedding-001", GEM_EMBED, 0 },
		{ "text-embedding-004", GEM_EMBED, 0 },
		{ "gemini-embedding-001", GEM_EMBED | GEM_COUNT, 0 },
		{ "gemini-embedding-exp", GEM_GENERATE, 0 },
		{ "aqa", GEM_OTHER, 0 },
		{ "aqa", GEM_GENERATE, 0 },
		{ "imagen-4.0-generate-001", GEM_PREDICT, 0 },
		{ "imagen-3.0-generate-002", GEM_GENERATE, 0 },
		{ "veo-3.0-generate-001", GEM_PREDICT, 0 },
		{ "veo-2.0-generate-001", GEM_GENERATE, 0 },
		{ "gemini-2.5-flash-preview-tts", GEM_GENERATE | GEM_COUNT, 0 },
		{ "gemini-2.5-pro-preview-tts", GEM_GENERATE | GEM_COUNT, 0 },
		{ "gemini-2.5-flash-image", GEM_GENERATE, 0 },
		{ "gemini-2.5-flash-image-preview", GEM_GENERATE, 0 },
		{ "gemini-2.0-flash-preview-image-generation", GEM_GENERATE,
		    0 },
		{ "gemini-2.0-flash-exp-image-generation", GEM_GENERATE, 0 },
		{ "gemini-2.5-flash-native-audio-preview-09-2025",
		    GEM_BIDI | GEM_COUNT, 0 },
		{ "gemini-2.5-flash-native-audio-dialog", GEM_GENERATE, 0 },
		{ "gemini-live-2.5-flash-preview", GEM_BIDI, 0 },
		{ "gemini-2.0-flash-live-001", GEM_GENERATE | GEM_BIDI, 0 },
		{ "lyria-realtime-exp", GEM_GENERATE, 0 },
		{ "Gemini-2.5-Flash-TTS", GEM_GENERATE, 0 },
		{ "gemini-olive-1", GEM_GENERATE, 1 },
	};
	size_t		 i;
	int		 bad = 0;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		if (gem_model_is_chat(m[i].name, m[i].methods) != m[i].chat) {
			result("filter-chat-models", 0, "%s: %d, want %d",
			    m[i].name, !m[i].chat, m[i].chat);
			bad = 1;
			break;
		}
	}
	if (!bad)
		result("filter-chat-models", 1, "%s", "");
}

/* Which model names are safe to use. */
static void
t_names(void)
{
	char	 longname[200];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	result("name-valid", gem_valid_model_name("gemini-2.0-flash_x.1"),
	    "%s", "refused");
	result("name-invalid", !gem_valid_model_name("") &&
	    !gem_valid_model_name("a/b") && !gem_valid_model_name("a b") &&
	    !gem_valid_model_name("-x") && !gem_valid_model_name("..") &&
	    !gem_valid_model_name("a:b") && !gem_valid_model_name("a?b") &&
	    !gem_valid_model_name("\xc3\xa9") &&
	    !gem_valid_model_name(longname), "%s", "accepted a bad name");
}

/* ---- errors -------------------------------------------------------- */

/* Error bodies: JSON, HTML, empty, hostile. */
static void
t_errors(void)
{
	struct api_error e;
	const char	*s;
	char		 big[2048];
	size_t		 i;

	s = "{\n  \"error\": {\n    \"code\": 403,\n    \"message\": \"Method "
	    "doesn't allow unregistered callers (callers without established "
	    "identity). Please use API Key or other form of API consumer "
	    "identity to call this API.\",\n    \"status\": "
	    "\"PERMISSION_DENIED\"\n  }\n}\n";
	api_gemini.parse_error(s, strlen(s), 403, &e);
	result("error-403", e.code == 403 &&
	    strcmp(e.type, "PERMISSION_DENIED") == 0 &&
	    strncmp(e.message, "Method doesn't allow", 20) == 0 &&
	    e.retry_delay < 0 && !e.per_day && !e.key_invalid,
	    "code %d status %s", e.code, e.type);

	s = "{\"error\": {\"code\": 400, \"message\": \"API key not valid. "
	    "Please pass a valid API key.\", \"status\": \"INVALID_ARGUMENT\", "
	    "\"details\": [{\"@type\": \"type.googleapis.com/google.rpc."
	    "ErrorInfo\", \"reason\": \"API_KEY_INVALID\", \"domain\": "
	    "\"googleapis.com\", \"metadata\": {\"service\": \"x\"}}, "
	    "{\"@type\": \"type.googleapis.com/google.rpc.LocalizedMessage\", "
	    "\"locale\": \"en-US\", \"message\": \"API key not valid.\"}]}}";
	api_gemini.parse_error(s, strlen(s), 400, &e);
	result("error-key-invalid", e.code == 400 && e.key_invalid &&
	    strcmp(e.message, "API key not valid. Please pass a valid API "
	    "key.") == 0, "code %d key %d", e.code, e.key_invalid);

	s = "{\"error\": {\"code\": 404, \"message\": \"models/nosuch is not "
	    "found for API version v1beta, or is not supported for "
	    "generateContent. Call ListModels to see the list of available "
	    "models and their supported methods.\", \"status\": "
	    "\"NOT_FOUND\"}}";
	api_gemini.parse_error(s, strlen(s), 404, &e);
	result("error-404", e.code == 404 && strncmp(e.message,
	    "models/nosuch is not found for API version v1beta,", 50) == 0,
	    "msg %s", e.message);

	s = "{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"You "
	    "exceeded your current quota.\",\n    \"status\": "
	    "\"RESOURCE_EXHAUSTED\",\n    \"details\": [\n      {\"@type\": "
	    "\"type.googleapis.com/google.rpc.QuotaFailure\", \"violations\": "
	    "[{\"quotaMetric\": \"m\", \"quotaId\": "
	    "\"GenerateRequestsPerMinutePerProjectPerModel-FreeTier\"}]},\n"
	    "      {\"@type\": \"type.googleapis.com/google.rpc.Help\", "
	    "\"links\": []},\n      {\"@type\": \"type.googleapis.com/google."
	    "rpc.RetryInfo\", \"retryDelay\": \"26s\"}\n    ]\n  }\n}\n";
	api_gemini.parse_error(s, strlen(s), 429, &e);
	result("error-429-retryinfo", e.code == 429 && near(e.retry_delay, 26)
	    && !e.per_day && strcmp(e.type, "RESOURCE_EXHAUSTED") == 0,
	    "delay %f perday %d", e.retry_delay, e.per_day);

	s = "{\"error\": {\"code\": 429, \"status\": \"RESOURCE_EXHAUSTED\", "
	    "\"message\": \"quota\", \"details\": [{\"@type\": \"type."
	    "googleapis.com/google.rpc.RetryInfo\", \"retryDelay\": "
	    "\"0.25s\"}]}}";
	api_gemini.parse_error(s, strlen(s), 429, &e);
	result("error-429-fractional", near(e.retry_delay, 0.25),
	    "delay %f", e.retry_delay);

	s = "{\"error\": {\"code\": 429, \"status\": \"RESOURCE_EXHAUSTED\", "
	    "\"message\": \"quota\", \"details\": [{\"@type\": \"type."
	    "googleapis.com/google.rpc.QuotaFailure\", \"violations\": "
	    "[{\"quotaId\": \"GenerateRequestsPerMinute\"}, {\"quotaId\": "
	    "\"GenerateRequestsPerDayPerProjectPerModel-FreeTier\"}]}, "
	    "{\"@type\": \"type.googleapis.com/google.rpc.RetryInfo\", "
	    "\"retryDelay\": \"30s\"}]}}";
	api_gemini.parse_error(s, strlen(s), 429, &e);
	result("error-429-perday", e.per_day && near(e.retry_delay, 30),
	    "perday %d", e.per_day);

	s = "{\"error\": {\"code\": 503, \"message\": \"The model is "
	    "overloaded. Please try again later.\", \"status\": "
	    "\"UNAVAILABLE\"}}";
	api_gemini.parse_error(s, strlen(s), 503, &e);
	result("error-503", e.code == 503 && strcmp(e.message, "The model is "
	    "overloaded. Please try again later.") == 0, "msg %s", e.message);

	s = "{\"error\": {\"code\": 400, \"message\": \"The input token count "
	    "(1048577) exceeds the maximum number of tokens allowed "
	    "(1048576).\", \"status\": \"INVALID_ARGUMENT\"}}";
	api_gemini.parse_error(s, strlen(s), 400, &e);
	result("error-overflow", e.code == 400 && strstr(e.message,
	    "exceeds the maximum number of tokens") != NULL, "msg %s",
	    e.message);

	s = "<!DOCTYPE html>\n<html lang=en><title>Error 502 (Server Error)!!1"
	    "</title><p><b>502.</b> That's an error.</html>\n";
	api_gemini.parse_error(s, strlen(s), 502, &e);
	result("error-html-502", e.code == 502 && strcmp(e.message,
	    "Bad Gateway") == 0 && e.type[0] == '\0', "msg %s", e.message);
	api_gemini.parse_error(NULL, 0, 500, &e);
	result("error-empty-500", e.code == 500 && strcmp(e.message,
	    "Internal Server Error") == 0, "msg %s", e.message);
	api_gemini.parse_error("", 0, 418, &e);
	result("error-unknown-status", e.code == 418 && strcmp(e.message,
	    "HTTP error") == 0, "msg %s", e.message);

	s = "[{\"error\": {\"code\": 503, \"message\": \"overloaded\", "
	    "\"status\": \"UNAVAILABLE\"}}]";
	api_gemini.parse_error(s, strlen(s), 503, &e);
	result("error-array-wrapped", strcmp(e.message, "overloaded") == 0 &&
	    strcmp(e.type, "UNAVAILABLE") == 0, "msg %s", e.message);

	s = "{\"error\": {\"code\": 400, \"message\": \"* "
	    "GenerateContentRequest.contents[0].parts: contents.parts must "
	    "not be empty.\\n\\n\\t\\u001b[2Jx\\r\\n\", \"status\": "
	    "\"INVALID_ARGUMENT\"}}";
	api_gemini.parse_error(s, strlen(s), 400, &e);
	result("error-one-line", strchr(e.message, '\n') == NULL &&
	    strchr(e.message, '\033') == NULL && strcmp(e.message,
	    "* GenerateContentRequest.contents[0].parts: contents.parts must "
	    "not be empty. [2Jx") == 0, "msg [%s]", e.message);

	s = "{\"error\": {\"code\": 99999, \"message\": \"m\"}}";
	api_gemini.parse_error(s, strlen(s), 500, &e);
	result("error-code-range", e.code == 500, "code %d", e.code);
	s = "{\"error\": {\"code\": \"429\", \"message\": \"m\", \"details\": "
	    "[1, null, {\"@type\": 5}, {\"@type\": \"type.googleapis.com/"
	    "google.rpc.RetryInfo\", \"retryDelay\": 5}, {\"@type\": \"x.Quota"
	    "Failure\", \"violations\": \"PerDay\"}]}}";
	api_gemini.parse_error(s, strlen(s), 500, &e);
	result("error-hostile-details", e.code == 429 && e.retry_delay < 0 &&
	    !e.per_day, "code %d delay %f", e.code, e.retry_delay);

	/* A long message is cut, on a character boundary. */
	i = strlcpy(big, "{\"error\": {\"message\": \"", sizeof(big));
	while (i + 10 < sizeof(big)) {
		memcpy(big + i, "\xe6\xbc\xa2", 3);
		i += 3;
	}
	memcpy(big + i, "\"}}", 4);
	api_gemini.parse_error(big, strlen(big), 500, &e);
	result("error-long-message", strlen(e.message) < API_MSG_MAX &&
	    strlen(e.message) % 3 == 0 && strlen(e.message) > 400 &&
	    utf8_valid(e.message, strlen(e.message)), "len %zu",
	    strlen(e.message));
}

/* RetryInfo durations and Retry-After values. */
static void
t_durations(void)
{
	time_t	 now = 1700000000;

	result("duration-values", near(gem_parse_duration("26s"), 26) &&
	    near(gem_parse_duration("0.2s"), 0.2) &&
	    near(gem_parse_duration("1.500s"), 1.5) &&
	    near(gem_parse_duration("0s"), 0) &&
	    near(gem_parse_duration("3.000000001s"), 3.000000001),
	    "26s=%f 0.2s=%f", gem_parse_duration("26s"),
	    gem_parse_duration("0.2s"));
	result("duration-bad", gem_parse_duration(NULL) < 0 &&
	    gem_parse_duration("") < 0 && gem_parse_duration("s") < 0 &&
	    gem_parse_duration("26") < 0 && gem_parse_duration("-1s") < 0 &&
	    gem_parse_duration("1e3s") < 0 && gem_parse_duration("2m") < 0 &&
	    gem_parse_duration("1s ") < 0 &&
	    gem_parse_duration("1234567890123s") < 0, "%s", "accepted");
	result("duration-cap", near(gem_parse_duration("99999999999s"),
	    86400), "got %f", gem_parse_duration("99999999999s"));
	result("retry-after-seconds", near(wire_retry_after("120", now), 120) &&
	    near(wire_retry_after("1.5", now), 1.5) &&
	    near(wire_retry_after(" 3 ", now), 3) &&
	    near(wire_retry_after("0", now), 0), "got %f",
	    wire_retry_after("120", now));
	result("retry-after-date", near(wire_retry_after(
	    "Tue, 14 Nov 2023 22:13:30 GMT", now), 10) &&
	    near(wire_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), 0),
	    "got %f", wire_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now));
	result("retry-after-bad", wire_retry_after(NULL, now) < 0 &&
	    wire_retry_after("soon", now) < 0 &&
	    wire_retry_after("-3", now) < 0 &&
	    wire_retry_after("12abc", now) < 0, "%s", "accepted");
	result("retry-after-cap", near(wire_retry_after("999999999", now),
	    86400) && near(wire_retry_after("99999999999999", now), 86400),
	    "got %f", wire_retry_after("999999999", now));
}

/* ---- a whole stream through the SSE parser ------------------------- */

struct acc {
	char		 text[1024];
	size_t		 len;
	char		 finish[40];
	int64_t		 prompt, answer;
	int		 events, bad;
};

/* Collect a stream as the provider does: text, finish, totals. */
static int
acc_cb(void *arg, const char *event, const char *data, size_t len)
{
	struct acc	*a = arg;
	struct api_event e;

	if (api_gemini.parse_event(event, data, len, &e) == -1) {
		a->bad++;
		return (0);
	}
	a->events++;
	if (e.textlen > 0 && a->len + e.textlen < sizeof(a->text)) {
		memcpy(a->text + a->len, e.text, e.textlen);
		a->len += e.textlen;
		a->text[a->len] = '\0';
	}
	if (e.finish[0] != '\0')
		strlcpy(a->finish, e.finish, sizeof(a->finish));
	/* Running totals: keep the last, never add. */
	if (e.prompt >= 0)
		a->prompt = e.prompt;
	if (e.answer >= 0)
		a->answer = e.answer;
	wire_event_free(&e);
	return (0);
}

/* A whole stream through the SSE parser, cut two ways anywhere. */
static void
t_stream(void)
{
	const char	*s =
	    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
	    "\"Echo: \"}], \"role\": \"model\"}, \"index\": 0}], "
	    "\"usageMetadata\": {\"promptTokenCount\": 4, "
	    "\"candidatesTokenCount\": 2, \"totalTokenCount\": 6}}\r\n\r\n"
	    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
	    "\"\xe4\xbd\xa0\xe5\xa5\xbd \"}], \"role\": \"model\"}, "
	    "\"index\": 0}], \"usageMetadata\": {\"promptTokenCount\": 4, "
	    "\"candidatesTokenCount\": 4, \"totalTokenCount\": 8}}\n\n"
	    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
	    "\"\xf0\x9f\x98\x80\xf0\x9f\x87\xab\xf0\x9f\x87\xb7\"}], \"role\": "
	    "\"model\"}, \"finishReason\": \"STOP\", \"index\": 0}], "
	    "\"usageMetadata\": {\"promptTokenCount\": 4, "
	    "\"candidatesTokenCount\": 7, \"totalTokenCount\": 11}}\r\n\r\n";
	const char	*want = "Echo: \xe4\xbd\xa0\xe5\xa5\xbd "
	    "\xf0\x9f\x98\x80\xf0\x9f\x87\xab\xf0\x9f\x87\xb7";
	struct sse	 sse;
	struct acc	 a;
	size_t		 len = strlen(s), i, j;
	int		 bad = 0;

	for (i = 0; i <= len && !bad; i++) {
		for (j = i; j <= len && !bad; j += 7) {
			memset(&a, 0, sizeof(a));
			sse_init(&sse, 64 * 1024 * 1024, acc_cb, &a);
			sse_feed(&sse, s, i);
			sse_feed(&sse, s + i, j - i);
			sse_feed(&sse, s + j, len - j);
			if (a.events != 3 || a.bad != 0 ||
			    strcmp(a.text, want) != 0 ||
			    strcmp(a.finish, "STOP") != 0 || a.prompt != 4 ||
			    a.answer != 7 || sse_pending(&sse)) {
				result("stream-every-split", 0, "split %zu,%zu:"
				    " %d events, text %s, answer %lld", i, j,
				    a.events, a.text, (long long)a.answer);
				bad = 1;
			}
			sse_clear(&sse);
		}
	}
	if (!bad)
		result("stream-every-split", 1, "%s", "");
}

/*
 * Events parsed by jansson with its memory from the provider's arena
 * (as xfer_event does): the same results, the block used, an event larger
 * than the block spilling to malloc, and jansson outside an event still
 * on malloc.
 */
static void
t_arena(void)
{
	const char	*small = "{\"candidates\": [{\"content\": {\"parts\": "
	    "[{\"text\": \"one \"}, {\"text\": \"two\"}], \"role\": "
	    "\"model\"}, \"finishReason\": \"STOP\"}], \"usageMetadata\": "
	    "{\"promptTokenCount\": 7, \"candidatesTokenCount\": 3}}";
	struct api_event e;
	json_t		*outside;
	char		*big;
	size_t		 n = 200000, i;
	int		 rv, ok;

	json_arena_init();
	wire_json_fast = 0;	/* jansson reads them all here */
	outside = json_pack("{s:s}", "k", "made before any event");
	json_arena_open();
	rv = api_gemini.parse_event("", small, strlen(small), &e);
	json_arena_close();
	result("arena-event", rv == 0 && e.textlen == 7 &&
	    memcmp(e.text, "one two", 7) == 0 && e.prompt == 7 &&
	    e.answer == 3 && strcmp(e.finish, "STOP") == 0 &&
	    json_arena_peak() > 0, "rv %d text %.*s peak %zu", rv,
	    (int)e.textlen, e.text != NULL ? e.text : "", json_arena_peak());
	wire_event_free(&e);

	/* Many parts, each a text of 2 KB: more than the block holds. */
	if ((big = malloc(n + 64)) == NULL)
		err(1, NULL);
	i = (size_t)snprintf(big, n, "{\"candidates\": [{\"content\": "
	    "{\"parts\": [");
	while (i + 2100 < n - 16) {
		i += (size_t)snprintf(big + i, n - i, "%s{\"text\": \"",
		    big[i - 1] == '[' ? "" : ", ");
		memset(big + i, 'x', 2048);
		i += 2048;
		i += (size_t)snprintf(big + i, n - i, "\"}");
	}
	i += (size_t)snprintf(big + i, n - i, "]}}]}");
	json_arena_open();
	rv = api_gemini.parse_event("", big, i, &e);
	json_arena_close();
	ok = rv == 0 && e.textlen > 64 * 1024;
	for (i = 0; ok && i < e.textlen; i++)
		ok = e.text[i] == 'x';
	result("arena-spills", ok, "rv %d textlen %zu", rv, e.textlen);
	wire_event_free(&e);
	free(big);

	/* After events: what was made outside them is whole and freed. */
	result("arena-outside", outside != NULL && strcmp(json_string_value(
	    json_object_get(outside, "k")), "made before any event") == 0,
	    "%s", "");
	json_decref(outside);
	wire_json_fast = 1;
}

/*
 * An upstream's event of 200,000 parts is read in one walk of them, not
 * one walk of the whole for each (which would take hours, and the test
 * runner's limit would stop it): the same as jansson reads it.
 */
static void
t_jsonr_parts(void)
{
	const char	*head = "{\"candidates\": [{\"content\": {\"parts\": [";
	const char	*part = "{\"text\": \"ab\"}, ";
	size_t		 n = 200000, len, i;
	char		*ev;
	int		 fast, same;

	len = strlen(head) + n * strlen(part) + 16;
	if ((ev = malloc(len)) == NULL)
		err(1, NULL);
	strlcpy(ev, head, len);
	for (i = 0; i < n; i++)
		memcpy(ev + strlen(head) + i * strlen(part), part,
		    strlen(part));
	len = strlen(head) + n * strlen(part) - 2;	/* the last ", " */
	memcpy(ev + len, "]}}]}", 6);
	same = same_both_ways(&api_gemini, "", ev, strlen(ev), &fast);
	result("jsonr-many-parts", same && fast, "same %d fast %d", same,
	    fast);
	free(ev);
}

/*
 * Events jsonr.c reads (fast: jansson allocated nothing) and events it
 * leaves to jansson: each gives what jansson alone gives.
 */
static void
t_jsonr(void)
{
	static const struct same_case c[] = {
		{ "common", "", "{\"candidates\": [{\"content\": {\"parts\": "
		    "[{\"text\": \"Echo: \"}], \"role\": \"model\"}, "
		    "\"index\": 0}], \"usageMetadata\": {\"promptTokenCount\""
		    ": 2, \"candidatesTokenCount\": 3, \"promptTokensDetails\": "
		    "[{\"modality\": \"TEXT\", \"tokenCount\": 2}]}, "
		    "\"modelVersion\": \"m\", \"responseId\": \"a0\"}", 1 },
		{ "escapes", "", "{\"candidates\":[{\"content\":{\"parts\":[{"
		    "\"text\":\"a\\\"b\\\\c\\/\\n\\t\\u00e9\\u20ac\\u0041"
		    "\"}]}}]}", 1 },
		{ "escaped-key", "", "{\"c\\u0061ndidates\":[{\"content\":{"
		    "\"parts\":[{\"t\\u0065xt\":\"k\"}]}}]}", 1 },
		{ "last-wins", "", "{\"candidates\":[{\"content\":{\"parts\":"
		    "[{\"text\":\"one\"}]}}],\"candidates\":[{\"content\":"
		    "{\"parts\":[{\"text\":\"two\",\"text\":\"three\"}]}}]}",
		    1 },
		{ "thought", "", "{\"candidates\":[{\"content\":{\"parts\":["
		    "{\"text\":\"x\",\"thought\":true},{\"text\":\"y\","
		    "\"thought\":false},7,{\"text\":5},{\"text\":\"z\"}]}}]}",
		    1 },
		{ "finish-block", "", "{\"candidates\":[{\"finishReason\":"
		    "\"SAF-ETY\\u0000\"}],\"promptFeedback\":{\"blockReason\":"
		    "\"OTHER\"}}", 0 },
		{ "finish-safety", "", "{\"candidates\":[{\"finishReason\":"
		    "\"SAFETY\"}],\"promptFeedback\":{\"blockReason\":"
		    "\"OTHER\"}}", 1 },
		{ "counts-odd", "", "{\"usageMetadata\":{\"promptTokenCount\":"
		    "null,\"candidatesTokenCount\":[1]}}", 1 },
		{ "count-string", "", "{\"usageMetadata\":{\"promptTokenCount\":"
		    "\"12\"}}", 0 },
		{ "count-real", "", "{\"usageMetadata\":{\"promptTokenCount\":"
		    "12.5,\"candidatesTokenCount\":-1}}", 0 },
		{ "exponent", "", "{\"x\":1e999}", 0 },
		{ "long-number", "", "{\"x\":12345678901234567890}", 0 },
		{ "surrogates", "", "{\"candidates\":[{\"content\":{\"parts\":[{"
		    "\"text\":\"\\ud83d\\ude00\"}]}}]}", 0 },
		{ "lone-surrogate", "", "{\"x\":\"\\ud83d\"}", 0 },
		{ "bad-utf8", "", "{\"x\":\"\xc3\x28\"}", 0 },
		{ "control", "", "{\"x\":\"a\tb\"}", 0 },
		{ "trailing", "", "{} x", 0 },
		{ "array", "", "[1, 2]", 1 },
		{ "scalar", "", "\"text\"", 1 },
		{ "deep", "", "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]"
		    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", 0 },
		{ "error", "", "{\"error\":{\"code\":429,\"message\":\"slow\","
		    "\"status\":\"RESOURCE_EXHAUSTED\"}}", 0 },
		{ "error-not-object", "", "{\"error\":\"x\",\"candidates\":[{"
		    "\"content\":{\"parts\":[{\"text\":\"ok\"}]}}]}", 1 },
		{ "white-space", "", " \r\n\t{ \"candidates\" : [ { \"content\" :"
		    " { \"parts\" : [ { \"text\" : \"w\" } ] } } ] } \n", 1 },
	};
	same_cases(&api_gemini, c, sizeof(c) / sizeof(c[0]), result);
	t_jsonr_parts();
}

/* The Gemini cases, from the request body to a stream split anywhere. */
int
main(void)
{
	t_request();
	t_request_text();
	t_settings();
	t_events();
	t_events_hostile();
	t_models();
	t_filter();
	t_names();
	t_errors();
	t_durations();
	t_stream();
	t_arena();
	t_jsonr();
	return (failures > 0);
}
