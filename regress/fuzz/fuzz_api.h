/*
 * fuzz_api.h: the body of the API targets (fuzz_<api>_stream and
 * fuzz_<api>_models): an upstream API's parsers behind the provider's
 * seam (struct api, bridged.h), for the API named by FUZZ_API. Each
 * target file defines FUZZ_API and FUZZ_MODELS (1: the model list
 * target, 0: the stream target) and includes this.
 *
 * Stream target, by the input's first byte: an SSE stream whose events
 * go to parse_event(); an error body for parse_error() and classify();
 * a request built by request() from turns taken from the input, which
 * must be JSON; a model name that valid_model() accepts must give URLs
 * without a byte that would change their meaning, and a key headers
 * without a line break. Models target: a page for parse_models(),
 * whose models must be ones valid_model() accepts and whose next-page
 * token must give a URL of its own.
 */

#include <sys/types.h>

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"
#include "fuzz.h"

#define BASE	"http://127.0.0.1:1/v1"

/* A URL has only what URLs may hold, and no space or line break. */
static void
url_check(const char *url)
{
	const char	*p;

	if (url == NULL || strncmp(url, BASE, strlen(BASE)) != 0)
		abort();
	for (p = url; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("-._~:/?#[]@!$&'()*+,;=%", *p) == NULL)
			abort();
}

/* A header line: one line, no NUL, CR or LF inside. */
static int
header_check(void *arg, const char *line)
{
	(void)arg;
	if (strchr(line, '\r') != NULL || strchr(line, '\n') != NULL ||
	    strchr(line, ':') == NULL)
		abort();
	return (0);
}

/* A string field of a struct is terminated inside it. */
#define TERMINATED(s)	(strnlen((s), sizeof(s)) < sizeof(s))

#if !FUZZ_MODELS
/*
 * The same event read by jansson alone (wire_json_fast 0) must give
 * what it gave: jsonr.c reads only what jansson reads the same.
 */
static void
same_as_jansson(const char *event, const char *data, size_t len, int rv,
    const struct api_event *ev)
{
	struct api_event	 a, b;
	int			 rv2;

	wire_json_fast = 0;
	rv2 = FUZZ_API.parse_event(event, data, len, &b);
	wire_json_fast = 1;
	if (rv2 != rv)
		abort();
	if (rv == -1)
		return;
	a = *ev;
	if (a.textlen != b.textlen || (a.textlen > 0 &&
	    memcmp(a.text, b.text, a.textlen) != 0))
		abort();
	a.text = NULL;
	a.textlen = 0;
	wire_event_free(&b);
	if (memcmp(&a, &b, sizeof(a)) != 0)
		abort();
}

/* One event, as xfer.c hands it to the API. */
static int
on_event(void *arg, const char *event, const char *data, size_t len)
{
	struct api_event	 ev;
	int			 rv;

	(void)arg;
	rv = FUZZ_API.parse_event(event, data, len, &ev);
	same_as_jansson(event, data, len, rv, &ev);
	if (rv == -1)
		return (0);
	if ((ev.text == NULL) != (ev.textlen == 0) ||
	    (ev.text != NULL && strlen(ev.text) != ev.textlen) ||
	    !TERMINATED(ev.finish) || !TERMINATED(ev.stop_error) ||
	    !TERMINATED(ev.refusal) || !TERMINATED(ev.err.message) ||
	    !TERMINATED(ev.err.type))
		abort();
	wire_event_free(&ev);
	return (0);
}

/* A request from turns of the input: JSON, or refused. */
static void
request(struct fin *f)
{
	struct api_turn		 t[8];
	struct api_request	 rq;
	json_t			*j;
	json_error_t		 je;
	char			*body;
	const uint8_t		*p;
	size_t			 n, len, i;

	memset(&rq, 0, sizeof(rq));
	rq.model = fin_str(f, 64);
	rq.system = fin_u8(f) & 1 ? fin_str(f, 300) : NULL;
	rq.set.temperature = fin_u8(f) < 128 ? -1 : fin_u8(f) / 50.0;
	rq.set.max_tokens = fin_u8(f) < 128 ? 0 : fin_u32(f);
	rq.max_tokens = fin_u8(f) < 128 ? 0 : fin_u16(f);
	n = fin_u8(f) % 8;
	for (i = 0; i < n; i++) {
		t[i].role = fin_u8(f) % ROLE_MAX;
		p = fin_bytes(f, 1024, &len);
		t[i].text = (const char *)p;
		t[i].len = len;
		/* The provider lets only UTF-8 this far. */
		if (!utf8_valid(t[i].text, len) ||
		    memchr(t[i].text, '\0', len) != NULL)
			return;
	}
	if (rq.system != NULL && !utf8_valid(rq.system, strlen(rq.system)))
		return;
	if (!utf8_valid(rq.model, strlen(rq.model)))
		return;
	rq.turns = t;
	rq.nturns = n;
	if ((body = FUZZ_API.request(&rq, &len)) == NULL)
		return;
	if ((j = json_loadb(body, len, 0, &je)) == NULL)
		abort();	/* a body that is not JSON */
	json_decref(j);
	free(body);
}
#endif

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 init;
	struct fin		 f;
#if FUZZ_MODELS
	struct api_page		 pg;
	size_t			 i;
	char			*url;
#else
	struct api_error	 err;
	struct sse		 s;
	const char		*code, *str;
	char			*url;
	uint8_t			 which;
#endif

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	fin_init(&f, data, size);
#if FUZZ_MODELS
	memset(&pg, 0, sizeof(pg));
	if (FUZZ_API.parse_models((const char *)data, size, &pg) == 0) {
		/* A model the list offers is one that can be asked for. */
		for (i = 0; i < pg.nmodels; i++)
			if (!TERMINATED(pg.models[i].name) ||
			    !FUZZ_API.valid_model(pg.models[i].name))
				abort();
		if (pg.next != NULL) {
			url = FUZZ_API.models_url(BASE, pg.next);
			url_check(url);
			free(url);
		}
	}
	wire_page_free(&pg);
#else
	which = fin_u8(&f) % 5;
	switch (which) {
	case 0:
	case 1:
		sse_init(&s, 1024 * 1024, on_event, NULL);
		(void)sse_feed(&s, f.p, f.left);
		sse_clear(&s);
		break;
	case 2:
		memset(&err, 0, sizeof(err));
		FUZZ_API.parse_error((const char *)f.p + 2, f.left > 2 ?
		    f.left - 2 : 0, 100 + fin_u16(&f) % 500, &err);
		if (!TERMINATED(err.message) || !TERMINATED(err.type))
			abort();
		code = NULL;
		(void)FUZZ_API.classify(&err, &code);
		if (code == NULL || strlen(code) == 0)
			abort();
		break;
	case 3:
		request(&f);
		break;
	case 4:
		str = fin_str(&f, 200);
		if (FUZZ_API.valid_model(str)) {
			url = FUZZ_API.gen_url(BASE, str);
			url_check(url);
			free(url);
		}
		url = FUZZ_API.models_url(BASE, str);
		url_check(url);
		free(url);
		str = fin_str(&f, 200);
		for (code = str; *code != '\0'; code++)
			if (*code <= ' ' || *code == 0x7f)
				return (0);	/* key_valid() refuses it */
		(void)FUZZ_API.headers(str, fin_u8(&f) & 1, header_check,
		    NULL);
		(void)wire_retry_after(str, 1700000000);
		(void)gem_parse_duration(str);
		break;
	}
#endif
	return (0);
}
