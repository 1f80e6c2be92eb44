/*
 * wire.c: what the API files (gemini.c, openai.c, anthropic.c) share:
 * counts and words read from untrusted JSON, text made fit for one
 * status line, HTTP Retry-After values, model list pages and URLs.
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

#define WIRE_COUNT_MAX	(1ULL << 53)	/* larger counts are nonsense */
#define WIRE_DELAY_MAX	86400.0		/* s, longest retry delay */
#define WIRE_TEXT_MAX	(256 * 1024 * 1024)	/* text of one event */

/* A non-negative count: a JSON integer, an integral real or digits. */
int
wire_u64(json_t *v, uint64_t *out)
{
	const char	*s, *errstr;
	long long	 ll;
	double		 d;

	if (json_is_integer(v)) {
		ll = json_integer_value(v);
		if (ll < 0 || (unsigned long long)ll > WIRE_COUNT_MAX)
			return (-1);
		*out = ll;
		return (0);
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (!(d >= 0 && d <= (double)WIRE_COUNT_MAX))
			return (-1);
		*out = d;
		return (0);
	}
	if (json_is_string(v)) {
		/* Protobuf's JSON mapping writes int64 as a string. */
		s = json_string_value(v);
		if (s[0] < '0' || s[0] > '9')
			return (-1);
		ll = strtonum(s, 0, WIRE_COUNT_MAX, &errstr);
		if (errstr != NULL)
			return (-1);
		*out = ll;
		return (0);
	}
	return (-1);
}

/* A count field of an object, or -1 when absent or unusable. */
int64_t
wire_count(json_t *obj, const char *key)
{
	uint64_t	 v;

	if (wire_u64(json_object_get(obj, key), &v) == -1)
		return (-1);
	return ((int64_t)v);
}

/* Copy an enum word such as STOP: letters, digits and '_' only. */
void
wire_copy_word(char *dst, size_t dsz, json_t *v)
{
	const char	*s;
	size_t		 i, n = 0;

	dst[0] = '\0';
	if (!json_is_string(v))
		return;
	s = json_string_value(v);
	for (i = 0; s[i] != '\0' && n + 1 < dsz; i++) {
		if (isalnum((unsigned char)s[i]) || s[i] == '_')
			dst[n++] = s[i];
	}
	dst[n] = '\0';
}

/* A word being copied from a string of jsonr.c, as wire_copy_word. */
struct wire_word {
	char	*dst;
	size_t	 dsz, n;
};

/* jr_string's sink: letters, digits and '_' while there is room. */
static int
wire_word_add(void *arg, const char *s, size_t len)
{
	struct wire_word	*w = arg;
	size_t			 i;

	for (i = 0; i < len && w->n + 1 < w->dsz; i++)
		if (isalnum((unsigned char)s[i]) || s[i] == '_')
			w->dst[w->n++] = s[i];
	return (0);
}

/* wire_copy_word for a value read by jsonr.c ("" if it is no string). */
void
wire_copy_word_jr(char *dst, size_t dsz, const struct jr_span *v)
{
	struct wire_word	 w;

	w.dst = dst;
	w.dsz = dsz;
	w.n = 0;
	if (v != NULL)
		(void)jr_string(v, wire_word_add, &w);
	dst[w.n] = '\0';
}

/*
 * wire_count for a member's value read by jsonr.c (NULL: no such
 * member): 0 and the count, or -1 as wire_count says when absent or
 * no number; -1 (and *out untouched) for a count written otherwise
 * than as plain digits, which jansson must read (a sign, a point, a
 * string).
 */
int
wire_count_jr(const struct jr_span *v, int64_t *out)
{
	uint64_t	 n;

	if (v == NULL || (jr_type(v) != '"' && jr_type(v) != '0')) {
		*out = -1;
		return (0);
	}
	if (!jr_digits_value(v, &n))
		return (-1);
	*out = (int64_t)n;	/* at most 15 digits: under WIRE_COUNT_MAX */
	return (0);
}

/* wire_add_text as jr_string's sink (arg: the event). */
int
wire_add_text_jr(void *arg, const char *s, size_t len)
{
	return (wire_add_text(arg, s, len));
}

/*
 * Copy text meant for one status line: controls become spaces, runs
 * of spaces shrink to one, invalid UTF-8 becomes '?', and a cut never
 * splits a character.
 */
void
wire_copy_line(char *dst, size_t dsz, const char *s, size_t len)
{
	size_t		 i = 0, n = 0, clen;
	unsigned char	 c;

	while (i < len && n + 1 < dsz) {
		c = s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (n > 0 && dst[n - 1] != ' ')
				dst[n++] = ' ';
			i++;
			continue;
		}
		if (c < 0x80)
			clen = 1;
		else if (c >= 0xc2 && c <= 0xdf)
			clen = 2;
		else if (c >= 0xe0 && c <= 0xef)
			clen = 3;
		else if (c >= 0xf0 && c <= 0xf4)
			clen = 4;
		else
			clen = 0;
		if (clen == 0 || clen > len - i || !utf8_valid(s + i, clen)) {
			dst[n++] = '?';
			i++;
			continue;
		}
		if (n + clen >= dsz)
			break;
		memcpy(dst + n, s + i, clen);
		n += clen;
		i += clen;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

/*
 * Parse an HTTP Retry-After value: delay seconds (a fraction is
 * accepted: some servers send one) or an HTTP-date, compared with
 * now.  Returns seconds, or -1 if unusable.
 */
double
wire_retry_after(const char *s, time_t now)
{
	struct tm	 tm;
	const char	*errstr, *end;
	char		 num[16];
	long long	 v;
	size_t		 n, f;
	double		 frac = 0, scale = 1;
	time_t		 t;

	if (s == NULL)
		return (-1);
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s >= '0' && *s <= '9') {
		n = strspn(s, "0123456789");
		f = 0;
		if (s[n] == '.') {
			for (f = 1; s[n + f] >= '0' && s[n + f] <= '9'; f++) {
				scale /= 10;
				frac += (s[n + f] - '0') * scale;
			}
		}
		if (n >= sizeof(num) || s[n + f + strspn(s + n + f, " \t")] !=
		    '\0')
			return (-1);
		memcpy(num, s, n);
		num[n] = '\0';
		v = strtonum(num, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			return (WIRE_DELAY_MAX);
		return (v >= WIRE_DELAY_MAX ? WIRE_DELAY_MAX : (double)v +
		    frac);
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm)) == NULL ||
	    end[strspn(end, " \t")] != '\0')
		return (-1);
	if ((t = timegm(&tm)) == (time_t)-1)
		return (-1);
	if (t <= now)
		return (0);
	return (t - now > WIRE_DELAY_MAX ? WIRE_DELAY_MAX : (double)(t - now));
}

/* The reason phrase of an HTTP status, for bodies that say nothing. */
const char *
wire_http_reason(int code)
{
	switch (code) {
	case 400:
		return ("Bad Request");
	case 401:
		return ("Unauthorized");
	case 403:
		return ("Forbidden");
	case 404:
		return ("Not Found");
	case 408:
		return ("Request Timeout");
	case 413:
		return ("Payload Too Large");
	case 429:
		return ("Too Many Requests");
	case 500:
		return ("Internal Server Error");
	case 502:
		return ("Bad Gateway");
	case 503:
		return ("Service Unavailable");
	case 504:
		return ("Gateway Timeout");
	case 529:
		return ("Overloaded");
	default:
		return ("HTTP error");
	}
}

/* An empty event: no text, no usage. */
void
wire_event_init(struct api_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->prompt = ev->answer = -1;
	ev->err.retry_delay = -1;
}

/* Release what a parse_event allocated. */
void
wire_event_free(struct api_event *ev)
{
	free(ev->text);
	ev->text = NULL;
	ev->textlen = 0;
}

/* An error that says nothing yet but its HTTP status (0 in a stream). */
void
wire_error_init(struct api_error *e, int http)
{
	memset(e, 0, sizeof(*e));
	e->code = http;
	e->retry_delay = -1;
}

/* Append answer text to an event; a NUL has no place in a line. */
int
wire_add_text(struct api_event *ev, const char *s, size_t len)
{
	char	*p;
	size_t	 i;

	if (len == 0)
		return (0);
	if (len > WIRE_TEXT_MAX - ev->textlen)
		return (-1);
	if ((p = realloc(ev->text, ev->textlen + len + 1)) == NULL)
		return (-1);
	ev->text = p;
	for (i = 0; i < len; i++)
		if (s[i] != '\0')
			p[ev->textlen++] = s[i];
	p[ev->textlen] = '\0';
	return (0);
}

/*
 * Whether a model name may be sent upstream and shown in a reply
 * line: letters, digits and ._:/@- (Ollama's "llama3:8b", vLLM's
 * "org/model"; what the parent lets operators see), not starting with
 * a mark, no "..".
 */
int
wire_model_name(const char *s)
{
	size_t	 i;

	if (s[0] == '\0' || strchr(".-/:", s[0]) != NULL ||
	    strstr(s, "..") != NULL)
		return (0);
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= MODEL_MAX_LEN - 1)
			return (0);
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("._:/@-", s[i]) == NULL)
			return (0);
	}
	return (1);
}

/* About how long a request body will be: its texts and some. */
size_t
wire_body_hint(const struct api_request *rq)
{
	size_t	 i, n = 512;

	if (rq->system != NULL)
		n += strlen(rq->system);
	for (i = 0; i < rq->nturns; i++)
		n += rq->turns[i].len + 48;
	return (n);
}

/* Events read by jsonr.c where it can (the fuzz target compares 0). */
int	wire_json_fast = 1;

/*
 * One event of a stream, as every API file reads it: by its fast
 * reader (jsonr.c) when jr_check takes the text and the reader does not
 * hand it over (1), else by its jansson reader. ev is filled from
 * nothing either way; -1 as the readers say (ev then released).
 */
int
wire_parse_event(const char *event, const char *data, size_t len,
    struct api_event *ev, wire_fast_reader fast, wire_tree_reader tree)
{
	struct jr_span	 root;
	int		 rv;

	wire_event_init(ev);
	if (wire_json_fast && jr_check(data, len, &root)) {
		if ((rv = fast(event, &root, ev)) != 1) {
			if (rv == -1)
				wire_event_free(ev);
			return (rv);
		}
		wire_event_free(ev);
		wire_event_init(ev);
	}
	return (tree(event, data, len, ev));
}

/* Parse untrusted JSON; integers come as reals, nothing overflows. */
json_t *
wire_load(const char *data, size_t len)
{
	if (data == NULL || len == 0)
		return (NULL);
	return (json_loadb(data, len, JSON_ALLOW_NUL |
	    JSON_DECODE_INT_AS_REAL, NULL));
}

/* Release a parsed page. */
void
wire_page_free(struct api_page *pg)
{
	free(pg->models);
	free(pg->next);
	memset(pg, 0, sizeof(*pg));
}

/* Add a model to a page. */
int
wire_page_add(struct api_page *pg, const char *name, uint64_t in,
    uint64_t out)
{
	struct api_model	*m;

	if ((m = recallocarray(pg->models, pg->nmodels, pg->nmodels + 1,
	    sizeof(*m))) == NULL)
		return (-1);
	pg->models = m;
	m = &pg->models[pg->nmodels++];
	strlcpy(m->name, name, sizeof(m->name));
	m->input_limit = in;
	m->output_limit = out;
	return (0);
}

/* Whether one '-', '.', '_', ':' or '/' separated word is a mark. */
int
wire_name_has(const char *name, const char *const *marks, size_t n)
{
	const char	*p = name, *w;
	size_t		 i, len;

	while (*p != '\0') {
		w = p;
		p += strcspn(p, "-._:/");
		len = p - w;
		for (i = 0; i < n; i++)
			if (strlen(marks[i]) == len &&
			    strncasecmp(w, marks[i], len) == 0)
				return (1);
		if (*p != '\0')
			p++;
	}
	return (0);
}

/*
 * base, path and value joined into a URL to free(3); value (may be
 * NULL) is percent-encoded.
 */
char *
wire_url(const char *base, const char *path, const char *value)
{
	static const char	 hex[] = "0123456789ABCDEF";
	char			*url, *p;
	size_t			 n = 0, i;

	if (value != NULL)
		n = strlen(value) * 3;
	if ((url = malloc(strlen(base) + strlen(path) + n + 1)) == NULL)
		fatal("%s", __func__);
	p = stpcpy(stpcpy(url, base), path);
	for (i = 0; value != NULL && value[i] != '\0'; i++) {
		if (isalnum((unsigned char)value[i]) ||
		    strchr("-._~", value[i]) != NULL)
			*p++ = value[i];
		else {
			*p++ = '%';
			*p++ = hex[(unsigned char)value[i] >> 4];
			*p++ = hex[(unsigned char)value[i] & 0xf];
		}
	}
	*p = '\0';
	return (url);
}

/*
 * A message list of {role, content} (OpenAI and Anthropic): the system
 * text first under system_role, if both are given; then the turns as
 * user and assistant, empty ones left out and a run of one role joined
 * by a blank line (some chat templates insist that roles alternate).
 * Returns how many messages the turns made.
 */
size_t
wire_messages(struct jsonw *w, const struct api_request *rq,
    const char *system_role)
{
	const char	*role, *last = NULL;
	size_t		 i, n = 0;

	jw_raw(w, "[");
	if (system_role != NULL && rq->system != NULL &&
	    rq->system[0] != '\0') {
		jw_raw(w, "{\"role\":");
		jw_str(w, system_role, strlen(system_role));
		jw_raw(w, ",\"content\":");
		jw_str(w, rq->system, strlen(rq->system));
		jw_raw(w, "}");
		last = system_role;
	}
	for (i = 0; i < rq->nturns; i++) {
		if (rq->turns[i].len == 0)
			continue;
		role = rq->turns[i].role == ROLE_MODEL ? "assistant" : "user";
		if (n > 0 && strcmp(role, last) == 0)
			jw_raw(w, "\\n\\n");
		else {
			if (n > 0)
				jw_raw(w, "\"}");
			jw_raw(w, last != NULL ? ",{\"role\":\"" :
			    "{\"role\":\"");
			jw_raw(w, role);
			jw_raw(w, "\",\"content\":\"");
			n++;
		}
		jw_text(w, rq->turns[i].text, rq->turns[i].len);
		last = role;
	}
	if (n > 0)
		jw_raw(w, "\"}");
	jw_raw(w, "]");
	return (n);
}

/*
 * Add the header that carries an API key (name and value in prefix, the
 * key after it); the formatted copy is wiped.  No key: no header.
 */
int
wire_key_header(int (*add)(void *, const char *), void *arg,
    const char *prefix, const char *key)
{
	char	*h;
	int	 rv;

	if (key == NULL)
		return (0);
	if (asprintf(&h, "%s%s", prefix, key) == -1)
		return (-1);
	rv = add(arg, h);
	freezero(h, strlen(h));
	return (rv);
}

/* The client's error code for an upstream's HTTP status. */
const char *
wire_error_code(int http)
{
	if (http == 429)
		return ("rate-limited");
	if (http == 504)
		return ("upstream-timeout");
	if (http == 404)
		return ("no-model");
	return ("upstream");
}
