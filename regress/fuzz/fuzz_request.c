/*
 * fuzz_request.c: the request bodies of the three APIs (gemini.c,
 * openai.c, anthropic.c, written with jsonw.c). The input chooses the
 * API, a system text, settings and turns of any bytes; the body must
 * parse as JSON with no key twice, hold exactly the keys its API
 * sends, and give back every text as it went in, runs of one role
 * joined as the API joins them. A body refused must have had a reason:
 * a text that is not UTF-8, or no turn with text.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bridged.h"
#include "fuzz.h"

#define FR_TURNS	12
#define FR_TEXT		300

/* What a body must say: a message's role, text and parts. */
struct want {
	const char	*role;
	char		 text[FR_TURNS * (FR_TEXT + 2)];
	size_t		 len;
	size_t		 nparts;
};

/* The messages the turns make, runs of one role joined; their count. */
static size_t
expect(const struct api_request *rq, int gemini, struct want *w)
{
	const char	*role;
	size_t		 i, n = 0;

	for (i = 0; i < rq->nturns; i++) {
		if (rq->turns[i].len == 0)
			continue;
		role = rq->turns[i].role == ROLE_MODEL ?
		    (gemini ? "model" : "assistant") : "user";
		if (n > 0 && strcmp(w[n - 1].role, role) == 0) {
			/* Gemini keeps parts apart: joined here by NUL. */
			memcpy(w[n - 1].text + w[n - 1].len, gemini ? "\0" :
			    "\n\n", gemini ? 1 : 2);
			w[n - 1].len += gemini ? 1 : 2;
		} else {
			w[n].role = role;
			w[n].len = 0;
			w[n].nparts = 0;
			n++;
		}
		memcpy(w[n - 1].text + w[n - 1].len, rq->turns[i].text,
		    rq->turns[i].len);
		w[n - 1].len += rq->turns[i].len;
		w[n - 1].nparts++;
	}
	return (n);
}

/* A string member equal to len bytes of s. */
static int
str_is(json_t *o, const char *key, const char *s, size_t len)
{
	json_t	*v = json_object_get(o, key);

	return (json_is_string(v) && json_string_length(v) == len &&
	    memcmp(json_string_value(v), s, len) == 0);
}

/* Every key of o is one of the names. */
static int
keys_in(json_t *o, const char *const *names)
{
	const char	*k;
	json_t		*v;
	size_t		 i;

	json_object_foreach(o, k, v) {
		for (i = 0; names[i] != NULL; i++)
			if (strcmp(k, names[i]) == 0)
				break;
		if (names[i] == NULL)
			return (0);
	}
	return (1);
}

/* A Gemini body: contents of role and parts, systemInstruction. */
static int
check_gemini(json_t *root, const struct api_request *rq, struct want *w,
    size_t n)
{
	static const char *const top[] = { "contents", "systemInstruction",
	    "generationConfig", NULL };
	json_t		*c, *m, *parts;
	char		 buf[sizeof(w->text)];
	size_t		 i, j, len;

	c = json_object_get(root, "contents");
	if (!keys_in(root, top) || json_array_size(c) != n)
		return (0);
	for (i = 0; i < n; i++) {
		m = json_array_get(c, i);
		parts = json_object_get(m, "parts");
		if (json_object_size(m) != 2 ||
		    !str_is(m, "role", w[i].role, strlen(w[i].role)) ||
		    json_array_size(parts) != w[i].nparts)
			return (0);
		for (j = 0, len = 0; j < w[i].nparts; j++) {
			m = json_array_get(parts, j);
			if (json_object_size(m) != 1 ||
			    !json_is_string(json_object_get(m, "text")))
				return (0);
			if (j > 0)
				buf[len++] = '\0';
			memcpy(buf + len, json_string_value(json_object_get(m,
			    "text")), json_string_length(json_object_get(m,
			    "text")));
			len += json_string_length(json_object_get(m, "text"));
		}
		if (len != w[i].len || memcmp(buf, w[i].text, len) != 0)
			return (0);
	}
	m = json_object_get(json_array_get(json_object_get(json_object_get(
	    root, "systemInstruction"), "parts"), 0), "text");
	if (rq->system[0] != '\0')
		return (json_is_string(m) &&
		    strcmp(json_string_value(m), rq->system) == 0);
	return (m == NULL);
}

/* An OpenAI or Anthropic body: messages of role and content. */
static int
check_messages(json_t *root, const struct api_request *rq, struct want *w,
    size_t n, int openai)
{
	static const char *const oai[] = { "model", "messages",
	    "stream_options", "stream", "temperature", "max_tokens", NULL };
	static const char *const ant[] = { "model", "max_tokens", "system",
	    "messages", "temperature", "stream", NULL };
	json_t		*msgs, *m;
	size_t		 i, first = 0;

	msgs = json_object_get(root, "messages");
	if (!keys_in(root, openai ? oai : ant) ||
	    !str_is(root, "model", rq->model, strlen(rq->model)) ||
	    json_object_get(root, "stream") != json_true())
		return (0);
	if (rq->system[0] != '\0') {
		if (openai) {
			m = json_array_get(msgs, 0);
			if (!str_is(m, "role", "system", 6) ||
			    !str_is(m, "content", rq->system,
			    strlen(rq->system)))
				return (0);
			first = 1;
		} else if (!str_is(root, "system", rq->system,
		    strlen(rq->system)))
			return (0);
	} else if (json_object_get(root, "system") != NULL)
		return (0);
	if (json_array_size(msgs) != first + n)
		return (0);
	for (i = 0; i < n; i++) {
		m = json_array_get(msgs, first + i);
		if (json_object_size(m) != 2 ||
		    !str_is(m, "role", w[i].role, strlen(w[i].role)) ||
		    !str_is(m, "content", w[i].text, w[i].len))
			return (0);
	}
	return (1);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct api *const apis[] = { &api_gemini, &api_openai,
	    &api_anthropic };
	static struct want	 w[FR_TURNS];
	static int		 init;
	struct api_turn		 t[FR_TURNS];
	struct api_request	 rq;
	struct fin		 f;
	const struct api	*api;
	json_t			*root;
	char			*body;
	size_t			 i, len, n, nonempty = 0;
	int			 which, ok = 1;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	fin_init(&f, data, size);
	which = fin_u8(&f) % 3;
	api = apis[which];
	memset(&rq, 0, sizeof(rq));
	rq.model = which == 0 ? "gemini-2.0-flash" : "m\"odel\\x";
	rq.system = fin_str(&f, FR_TEXT);
	ok = utf8_valid(rq.system, strlen(rq.system));
	i = fin_u8(&f);
	rq.set.temperature = i < 128 ? -1 : (double)(i - 128) / 50;
	rq.set.max_tokens = fin_u16(&f);
	rq.max_tokens = fin_u8(&f);
	rq.nturns = fin_u8(&f) % (FR_TURNS + 1);
	for (i = 0; i < rq.nturns; i++) {
		t[i].role = fin_u8(&f) % 2 ? ROLE_MODEL : ROLE_USER;
		t[i].text = (const char *)fin_bytes(&f, FR_TEXT, &t[i].len);
		if (t[i].len > 0) {
			nonempty++;
			ok = ok && utf8_valid(t[i].text, t[i].len);
		}
	}
	rq.turns = t;
	body = api->request(&rq, &len);
	if (body == NULL) {
		/* Refused: only for a text that is not UTF-8, or no text. */
		if (ok && nonempty > 0)
			abort();
		return (0);
	}
	if (!ok || nonempty == 0 || len != strlen(body))
		abort();
	if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES |
	    JSON_ALLOW_NUL, NULL)) == NULL || !json_is_object(root))
		abort();
	n = expect(&rq, which == 0, w);
	if (!(which == 0 ? check_gemini(root, &rq, w, n) :
	    check_messages(root, &rq, w, n, which == 1)))
		abort();
	json_decref(root);
	freezero(body, len);
	return (0);
}
