/*
 * gemini.c: the wire format of the Gemini REST API v1beta: request
 * bodies built and responses, model lists and error bodies parsed with
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
#define GEM_COUNT_MAX	(1ULL << 53)	/* larger counts are nonsense */
#define GEM_DELAY_MAX	86400.0		/* s, longest retry delay */

static json_t	*gem_text_part(const char *, size_t);
static int	 gem_u64(json_t *, uint64_t *);
static int64_t	 gem_count(json_t *, const char *);
static void	 gem_copy_word(char *, size_t, json_t *);
static void	 gem_copy_line(char *, size_t, const char *, size_t);
static void	 gem_parse_details(json_t *, struct gem_error *);
static void	 gem_error_object(json_t *, struct gem_error *);
static unsigned int gem_methods(json_t *);
static int	 gem_name_token(const char *, size_t);

/* A parts array holding one text part. */
static json_t *
gem_text_part(const char *text, size_t len)
{
	json_t	*parts, *part, *s;

	if ((s = json_stringn(text, len)) == NULL)
		return (NULL);		/* not UTF-8 */
	if ((part = json_object()) == NULL) {
		json_decref(s);
		return (NULL);
	}
	if (json_object_set_new(part, "text", s) == -1 ||
	    (parts = json_array()) == NULL) {
		json_decref(part);
		return (NULL);
	}
	if (json_array_append_new(parts, part) == -1) {
		json_decref(parts);
		return (NULL);
	}
	return (parts);
}

/*
 * The body of a generateContent or streamGenerateContent request.
 * Empty turns are left out (the API refuses empty text) and a run of
 * turns of one role becomes one content with several parts.  Returns
 * a string to free(3), NULL with errno EINVAL if no turn has text or a
 * text is not UTF-8.
 */
char *
gem_request(const struct gem_turn *turns, size_t nturns,
    const char *system, size_t *lenp)
{
	json_t		*root, *contents, *c = NULL, *parts, *si;
	const char	*role, *lastrole = NULL;
	char		*out = NULL;
	size_t		 i;

	if ((root = json_object()) == NULL ||
	    (contents = json_array()) == NULL) {
		json_decref(root);
		return (NULL);
	}
	if (json_object_set_new(root, "contents", contents) == -1)
		goto fail;
	for (i = 0; i < nturns; i++) {
		if (turns[i].len == 0)
			continue;
		role = turns[i].role == ROLE_MODEL ? "model" : "user";
		if (c != NULL && strcmp(role, lastrole) == 0) {
			parts = gem_text_part(turns[i].text, turns[i].len);
			if (parts == NULL || json_array_extend(
			    json_object_get(c, "parts"), parts) == -1) {
				json_decref(parts);
				goto fail;
			}
			json_decref(parts);
			continue;
		}
		if ((c = json_object()) == NULL)
			goto fail;
		if (json_array_append_new(contents, c) == -1)
			goto fail;
		if (json_object_set_new(c, "role", json_string(role)) == -1)
			goto fail;
		if ((parts = gem_text_part(turns[i].text,
		    turns[i].len)) == NULL)
			goto fail;
		if (json_object_set_new(c, "parts", parts) == -1)
			goto fail;
		lastrole = role;
	}
	if (json_array_size(contents) == 0)
		goto fail;
	if (system != NULL && system[0] != '\0') {
		if ((si = json_object()) == NULL)
			goto fail;
		if (json_object_set_new(root, "systemInstruction", si) == -1)
			goto fail;
		if ((parts = gem_text_part(system, strlen(system))) == NULL)
			goto fail;
		if (json_object_set_new(si, "parts", parts) == -1)
			goto fail;
	}
	if ((out = json_dumps(root, JSON_COMPACT)) != NULL && lenp != NULL)
		*lenp = strlen(out);
	json_decref(root);
	return (out);
 fail:
	json_decref(root);
	errno = EINVAL;
	return (NULL);
}

/* A non-negative count: a JSON integer, an integral real or digits. */
static int
gem_u64(json_t *v, uint64_t *out)
{
	const char	*s, *errstr;
	long long	 ll;
	double		 d;

	if (json_is_integer(v)) {
		ll = json_integer_value(v);
		if (ll < 0 || (unsigned long long)ll > GEM_COUNT_MAX)
			return (-1);
		*out = ll;
		return (0);
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (!(d >= 0 && d <= (double)GEM_COUNT_MAX))
			return (-1);
		*out = d;
		return (0);
	}
	if (json_is_string(v)) {
		/* Protobuf's JSON mapping writes int64 as a string. */
		s = json_string_value(v);
		if (s[0] < '0' || s[0] > '9')
			return (-1);
		ll = strtonum(s, 0, GEM_COUNT_MAX, &errstr);
		if (errstr != NULL)
			return (-1);
		*out = ll;
		return (0);
	}
	return (-1);
}

/* A count field of an object, or -1 when absent or unusable. */
static int64_t
gem_count(json_t *obj, const char *key)
{
	uint64_t	 v;

	if (gem_u64(json_object_get(obj, key), &v) == -1)
		return (-1);
	return ((int64_t)v);
}

/* Copy an enum word such as STOP: letters, digits and '_' only. */
static void
gem_copy_word(char *dst, size_t dsz, json_t *v)
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

/*
 * Copy text meant for one status line: controls become spaces, runs
 * of spaces shrink to one, invalid UTF-8 becomes '?', and a cut never
 * splits a character.
 */
static void
gem_copy_line(char *dst, size_t dsz, const char *s, size_t len)
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

/*
 * Parse an HTTP Retry-After value: delay seconds or an HTTP-date
 * (compared with now).  Returns seconds, or -1 if unusable.
 */
double
gem_retry_after(const char *s, time_t now)
{
	struct tm	 tm;
	const char	*errstr, *end;
	char		 num[16];
	long long	 v;
	size_t		 n;
	time_t		 t;

	if (s == NULL)
		return (-1);
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s >= '0' && *s <= '9') {
		n = strspn(s, "0123456789");
		if (n >= sizeof(num) || s[n + strspn(s + n, " \t")] != '\0')
			return (-1);
		memcpy(num, s, n);
		num[n] = '\0';
		v = strtonum(num, 0, LLONG_MAX, &errstr);
		if (errstr != NULL)
			return (GEM_DELAY_MAX);
		return (v > GEM_DELAY_MAX ? GEM_DELAY_MAX : (double)v);
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm)) == NULL ||
	    end[strspn(end, " \t")] != '\0')
		return (-1);
	if ((t = timegm(&tm)) == (time_t)-1)
		return (-1);
	if (t <= now)
		return (0);
	return (t - now > GEM_DELAY_MAX ? GEM_DELAY_MAX : (double)(t - now));
}

/* Look through error details for RetryInfo, quotas and key errors. */
static void
gem_parse_details(json_t *details, struct gem_error *e)
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

/* The reason phrase of an HTTP status, for bodies that say nothing. */
const char *
gem_http_reason(int code)
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
	default:
		return ("HTTP error");
	}
}

/* Fill e from a JSON error object ({"code","message","status",...}). */
static void
gem_error_object(json_t *err, struct gem_error *e)
{
	json_t		*v;
	uint64_t	 code;

	if (gem_u64(json_object_get(err, "code"), &code) == 0 &&
	    code >= 100 && code <= 599)
		e->code = code;
	gem_copy_word(e->status, sizeof(e->status),
	    json_object_get(err, "status"));
	v = json_object_get(err, "message");
	if (json_is_string(v))
		gem_copy_line(e->message, sizeof(e->message),
		    json_string_value(v), json_string_length(v));
	gem_parse_details(json_object_get(err, "details"), e);
}

/*
 * Parse an error body of an HTTP status (or an error event, status 0).
 * Always fills e: what the body does not say comes from the status.
 */
void
gem_parse_error(const char *body, size_t len, int http, struct gem_error *e)
{
	json_t		*root = NULL, *err;

	memset(e, 0, sizeof(*e));
	e->code = http;
	e->retry_delay = -1;
	if (body != NULL && len > 0)
		root = json_loadb(body, len, JSON_ALLOW_NUL |
		    JSON_DECODE_INT_AS_REAL, NULL);
	/* Without alt=sse errors come wrapped in an array. */
	if (json_is_array(root))
		err = json_object_get(json_array_get(root, 0), "error");
	else
		err = json_object_get(root, "error");
	if (json_is_object(err))
		gem_error_object(err, e);
	if (e->message[0] == '\0')
		strlcpy(e->message, http > 0 ? gem_http_reason(http) :
		    "error without a message", sizeof(e->message));
	json_decref(root);
}

/*
 * Parse one GenerateContentResponse (a stream event or a whole
 * answer).  Returns -1 if it is not a JSON object, else 0 with ev
 * filled; ev->text is to be released with gem_event_free.
 */
int
gem_parse_event(const char *data, size_t len, struct gem_event *ev)
{
	json_t		*root, *cand, *content, *parts, *part, *t, *u, *pf;
	size_t		 i, n, total = 0;
	char		*p;

	memset(ev, 0, sizeof(*ev));
	ev->usage.prompt = ev->usage.answer = ev->usage.total =
	    ev->usage.thoughts = -1;
	if ((root = json_loadb(data, len, JSON_ALLOW_NUL |
	    JSON_DECODE_INT_AS_REAL, NULL)) == NULL)
		return (-1);
	if (!json_is_object(root)) {
		json_decref(root);
		return (-1);
	}
	if (json_is_object(t = json_object_get(root, "error"))) {
		ev->has_error = 1;
		memset(&ev->err, 0, sizeof(ev->err));
		ev->err.retry_delay = -1;
		gem_error_object(t, &ev->err);
		if (ev->err.message[0] == '\0')
			strlcpy(ev->err.message, ev->err.code > 0 ?
			    gem_http_reason(ev->err.code) : "error without a "
			    "message", sizeof(ev->err.message));
	}
	cand = json_array_get(json_object_get(root, "candidates"), 0);
	if (json_is_object(cand)) {
		ev->has_candidate = 1;
		gem_copy_word(ev->finish, sizeof(ev->finish),
		    json_object_get(cand, "finishReason"));
		content = json_object_get(cand, "content");
		parts = json_object_get(content, "parts");
		/* Two passes: size, then copy. */
		json_array_foreach(parts, i, part) {
			t = json_object_get(part, "text");
			if (!json_is_string(t) ||
			    json_is_true(json_object_get(part, "thought")))
				continue;
			total += json_string_length(t);
		}
		if (total > 0 && (ev->text = malloc(total + 1)) == NULL) {
			json_decref(root);
			return (-1);
		}
		p = ev->text;
		json_array_foreach(parts, i, part) {
			t = json_object_get(part, "text");
			if (!json_is_string(t) ||
			    json_is_true(json_object_get(part, "thought")))
				continue;
			/* Nothing to copy (and nowhere) for "text": "". */
			if ((n = json_string_length(t)) == 0)
				continue;
			memcpy(p, json_string_value(t), n);
			p += n;
		}
		if (ev->text != NULL) {
			/* A NUL has no place in a terminal or a line. */
			for (i = 0, n = 0; i < total; i++)
				if (ev->text[i] != '\0')
					ev->text[n++] = ev->text[i];
			ev->text[n] = '\0';
			ev->textlen = n;
		}
	}
	u = json_object_get(root, "usageMetadata");
	if (json_is_object(u)) {
		ev->usage.prompt = gem_count(u, "promptTokenCount");
		ev->usage.answer = gem_count(u, "candidatesTokenCount");
		ev->usage.total = gem_count(u, "totalTokenCount");
		ev->usage.thoughts = gem_count(u, "thoughtsTokenCount");
	}
	pf = json_object_get(root, "promptFeedback");
	gem_copy_word(ev->block, sizeof(ev->block),
	    json_object_get(pf, "blockReason"));
	json_decref(root);
	return (0);
}

/* Release what gem_parse_event allocated. */
void
gem_event_free(struct gem_event *ev)
{
	free(ev->text);
	ev->text = NULL;
	ev->textlen = 0;
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
 * Parse one page of a model list.  Entries without a usable name are
 * counted in nskipped; limits that are missing or unusable are 0.
 * Returns -1 if the body is not a model list.
 */
int
gem_parse_models(const char *body, size_t len, struct gem_page *pg)
{
	json_t		*root, *models, *m, *v;
	const char	*name, *tok;
	struct gem_model *gm;
	size_t		 i;

	memset(pg, 0, sizeof(*pg));
	if ((root = json_loadb(body, len, JSON_DECODE_INT_AS_REAL,
	    NULL)) == NULL)
		return (-1);
	models = json_object_get(root, "models");
	if (!json_is_object(root) || (models != NULL &&
	    !json_is_array(models)))
		goto fail;
	if (json_array_size(models) > 0 && (pg->models = calloc(
	    json_array_size(models), sizeof(*pg->models))) == NULL)
		goto fail;
	json_array_foreach(models, i, m) {
		name = json_string_value(json_object_get(m, "name"));
		if (name != NULL && strncmp(name, "models/", 7) == 0)
			name += 7;
		if (name == NULL || !gem_valid_model_name(name)) {
			pg->nskipped++;
			continue;
		}
		gm = &pg->models[pg->nmodels++];
		strlcpy(gm->name, name, sizeof(gm->name));
		if (gem_u64(json_object_get(m, "inputTokenLimit"),
		    &gm->input_limit) == -1)
			gm->input_limit = 0;
		if (gem_u64(json_object_get(m, "outputTokenLimit"),
		    &gm->output_limit) == -1)
			gm->output_limit = 0;
		gm->methods = gem_methods(json_object_get(m,
		    "supportedGenerationMethods"));
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
	gem_page_free(pg);
	return (-1);
}

/* Release a parsed page. */
void
gem_page_free(struct gem_page *pg)
{
	free(pg->models);
	free(pg->next);
	memset(pg, 0, sizeof(*pg));
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
gem_model_is_chat(const struct gem_model *m)
{
	const char	*p = m->name, *w;

	if ((m->methods & GEM_GENERATE) == 0)
		return (0);
	if (strcasestr(m->name, "embed") != NULL ||
	    strcasestr(m->name, "image") != NULL)
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

/* qsort(3) order of models: by name. */
int
gem_model_cmp(const void *a, const void *b)
{
	const struct gem_model	*ma = a, *mb = b;

	return (strcmp(ma->name, mb->name));
}
