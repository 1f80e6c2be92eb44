/*
 * jsonr.c: a JSON reader for the common events of a streamed answer,
 * without building a tree: jr_check walks the text once to see that it
 * is one value this reader takes, and then members and elements are
 * found and strings decoded where they lie in the text, with nothing
 * allocated.
 *
 * It takes a strict subset of what jansson (wire_load) takes, so that
 * anything it takes reads the same either way: UTF-8 that utf8_valid
 * accepts, no control characters in strings, no \u0000 and no escaped
 * surrogates, numbers without an exponent and with at most 15 digits
 * on either side of the point, nesting at most JR_DEPTH_MAX deep.
 * Whatever it does not take, valid JSON or not, the caller gives to
 * jansson, which decides. A member named twice is read as jansson
 * reads it: the last one counts.
 */

#include <sys/types.h>

#include <stdint.h>
#include <string.h>

#include "bridged.h"

#define JR_DEPTH_MAX	32	/* objects and arrays inside each other */
#define JR_DIGITS_MAX	15	/* on either side of the point: exact */
#define JR_KEY_MAX	64	/* a key decoded to compare (names are short) */

static const char	*jr_value(const char *, const char *, int);

/* Past JSON's white space. */
static const char *
jr_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return (p);
}

/* The value of four hex digits, or -1. */
static long
jr_hex4(const char *p)
{
	long	 v = 0;
	int	 i, c;

	for (i = 0; i < 4; i++) {
		c = (unsigned char)p[i];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return (-1);
		v = v * 16 + c;
	}
	return (v);
}

/* A string from its opening quote: past its closing quote, or NULL. */
static const char *
jr_string_end(const char *p, const char *end)
{
	const char	*run = ++p;
	long		 cp;

	while (p < end) {
		if (*p == '"')
			return (utf8_valid(run, (size_t)(p - run)) ? p + 1 :
			    NULL);
		if ((unsigned char)*p < 0x20)
			return (NULL);
		if (*p != '\\') {
			p++;
			continue;
		}
		/* A character's bytes are never a backslash: runs split. */
		if (!utf8_valid(run, (size_t)(p - run)) || end - p < 2)
			return (NULL);
		if (p[1] == 'u') {
			if (end - p < 6 || (cp = jr_hex4(p + 2)) <= 0 ||
			    (cp >= 0xd800 && cp <= 0xdfff))
				return (NULL);
			p += 6;
		} else if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0')
			p += 2;
		else
			return (NULL);
		run = p;
	}
	return (NULL);
}

/* Digits, 1 to JR_DIGITS_MAX of them: past them, or NULL. */
static const char *
jr_digits(const char *p, const char *end)
{
	const char	*s = p;

	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == s || p - s > JR_DIGITS_MAX)
		return (NULL);
	return (p);
}

/* A number (no exponent): past it, or NULL. */
static const char *
jr_number_end(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if ((p = jr_digits(p, end)) == NULL)
		return (NULL);
	if (p < end && *p == '.' && (p = jr_digits(p + 1, end)) == NULL)
		return (NULL);
	if (p < end && (*p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
		return (NULL);
	return (p);
}

/* One of true, false, null: past it, or NULL. */
static const char *
jr_word_end(const char *p, const char *end, const char *word)
{
	size_t	 n = strlen(word);

	if ((size_t)(end - p) < n || memcmp(p, word, n) != 0)
		return (NULL);
	return (p + n);
}

/* An object or an array from its bracket: past its end, or NULL. */
static const char *
jr_container_end(const char *p, const char *end, int depth)
{
	char	 close = *p == '{' ? '}' : ']';
	int	 object = *p == '{';

	if (depth >= JR_DEPTH_MAX)
		return (NULL);
	p = jr_ws(p + 1, end);
	if (p < end && *p == close)
		return (p + 1);
	for (;;) {
		if (object) {
			if (p >= end || *p != '"' ||
			    (p = jr_string_end(p, end)) == NULL)
				return (NULL);
			p = jr_ws(p, end);
			if (p >= end || *p != ':')
				return (NULL);
			p = jr_ws(p + 1, end);
		}
		if ((p = jr_value(p, end, depth + 1)) == NULL)
			return (NULL);
		p = jr_ws(p, end);
		if (p < end && *p == close)
			return (p + 1);
		if (p >= end || *p != ',')
			return (NULL);
		p = jr_ws(p + 1, end);
	}
}

/* One value at p (no white space before it): past it, or NULL. */
static const char *
jr_value(const char *p, const char *end, int depth)
{
	if (p >= end)
		return (NULL);
	switch (*p) {
	case '{':
	case '[':
		return (jr_container_end(p, end, depth));
	case '"':
		return (jr_string_end(p, end));
	case 't':
		return (jr_word_end(p, end, "true"));
	case 'f':
		return (jr_word_end(p, end, "false"));
	case 'n':
		return (jr_word_end(p, end, "null"));
	default:
		return (jr_number_end(p, end));
	}
}

/*
 * Whether text is one value this reader takes (white space around it
 * allowed); if so, *root is it. 0: let jansson decide.
 */
int
jr_check(const char *s, size_t len, struct jr_span *root)
{
	const char	*end = s + len, *p, *v;

	p = jr_ws(s, end);
	if ((v = jr_value(p, end, 0)) == NULL || jr_ws(v, end) != end)
		return (0);
	root->p = p;
	root->len = (size_t)(v - p);
	return (1);
}

/* What kind of value: '{', '[', '"', 't', 'f', 'n' (null) or '0'. */
int
jr_type(const struct jr_span *v)
{
	if (v->len == 0)
		return (0);
	if (v->p[0] == '-' || (v->p[0] >= '0' && v->p[0] <= '9'))
		return ('0');
	return (v->p[0]);
}

/* Past a string of checked text, from its opening quote. */
static const char *
jr_skip_string(const char *p)
{
	for (p++; *p != '"'; p++)
		if (*p == '\\')
			p++;
	return (p + 1);
}

/* Past one value of checked text (no white space before it). */
static const char *
jr_skip(const char *p)
{
	int	 depth = 0;

	if (*p == '"')
		return (jr_skip_string(p));
	if (*p != '{' && *p != '[') {
		/* A number or a word: up to what ends it. */
		while (strchr(",]} \t\n\r", *p) == NULL)
			p++;
		return (p);
	}
	for (;;) {
		if (*p == '"') {
			p = jr_skip_string(p);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return (p + 1);
		p++;
	}
}

/* The next value of checked text at p: its span; past it. */
static const char *
jr_take(const char *p, struct jr_span *v)
{
	const char	*e = jr_skip(p);

	v->p = p;
	v->len = (size_t)(e - p);
	return (e);
}

/*
 * The values of an object's members named keys[0..n-1] (of each name
 * the last, as jansson keeps it): a bit for each found, its value in
 * vals[i]. 0 if obj is no object.
 */
unsigned int
jr_members(const struct jr_span *obj, const char *const *keys,
    struct jr_span *vals, size_t n)
{
	const char	*p, *end, *name;
	struct jr_span	 k, v;
	char		 buf[JR_KEY_MAX];
	size_t		 klen[32], len, i;
	unsigned int	 found = 0;

	if (jr_type(obj) != '{' || n > 32)
		return (0);
	end = obj->p + obj->len;
	for (i = 0; i < n; i++)
		klen[i] = strlen(keys[i]);
	p = jr_ws(obj->p + 1, end);
	while (*p == '"') {
		p = jr_ws(jr_take(p, &k), end);
		p = jr_ws(jr_take(jr_ws(p + 1, end), &v), end);
		/* A name without escapes is compared where it lies. */
		name = k.p + 1;
		len = k.len - 2;
		if (memchr(name, '\\', len) != NULL) {
			len = jr_decode(&k, buf, sizeof(buf));
			name = buf;
		}
		for (i = 0; i < n; i++) {
			if (len == klen[i] && len <= JR_KEY_MAX &&
			    memcmp(name, keys[i], len) == 0) {
				vals[i] = v;
				found |= 1U << i;
			}
		}
		if (*p == ',')
			p = jr_ws(p + 1, end);
	}
	return (found);
}

/* The value of the member named key (the last): 1 and *val, or 0. */
int
jr_get(const struct jr_span *obj, const char *key, struct jr_span *val)
{
	return (jr_members(obj, &key, val, 1) != 0);
}

/*
 * The next element of an array: 1 and *val, 0 at its end (or if arr is
 * no array). *it starts at 0.
 */
int
jr_next(const struct jr_span *arr, size_t *it, struct jr_span *val)
{
	const char	*p, *end;

	if (jr_type(arr) != '[')
		return (0);
	end = arr->p + arr->len;
	p = jr_ws(arr->p + (*it == 0 ? 1 : *it), end);
	if (*p == ']')
		return (0);
	p = jr_ws(jr_take(p, val), end);
	if (*p == ',')
		p++;
	*it = (size_t)(p - arr->p);
	return (1);
}

/* The UTF-8 bytes of a code point (not a surrogate) into buf: how many. */
static size_t
jr_utf8(long cp, char *buf)
{
	if (cp < 0x80) {
		buf[0] = (char)cp;
		return (1);
	}
	if (cp < 0x800) {
		buf[0] = (char)(0xc0 | (cp >> 6));
		buf[1] = (char)(0x80 | (cp & 0x3f));
		return (2);
	}
	buf[0] = (char)(0xe0 | (cp >> 12));
	buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	buf[2] = (char)(0x80 | (cp & 0x3f));
	return (3);
}

/*
 * A string value's text, decoded, handed to out in pieces (the runs
 * between escapes as they lie in the text). -1 if out says so or v is
 * no string.
 */
int
jr_string(const struct jr_span *v, int (*out)(void *, const char *, size_t),
    void *arg)
{
	const char	*p, *end, *run;
	char		 buf[4];
	size_t		 n;
	char		 c;

	if (jr_type(v) != '"')
		return (-1);
	p = run = v->p + 1;
	end = v->p + v->len - 1;
	while (p < end) {
		if (*p != '\\') {
			p++;
			continue;
		}
		if (p > run && out(arg, run, (size_t)(p - run)) == -1)
			return (-1);
		c = p[1];
		if (c == 'u') {
			n = jr_utf8(jr_hex4(p + 2), buf);
			p += 6;
		} else {
			buf[0] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ?
			    '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
			n = 1;
			p += 2;
		}
		if (out(arg, buf, n) == -1)
			return (-1);
		run = p;
	}
	if (p > run && out(arg, run, (size_t)(p - run)) == -1)
		return (-1);
	return (0);
}

/* jr_string's sink for jr_decode: bytes while there is room. */
struct jr_buf {
	char	*p;
	size_t	 size, len;
};

/* Append what fits; count all. */
static int
jr_buf_add(void *arg, const char *s, size_t n)
{
	struct jr_buf	*b = arg;
	size_t		 k;

	if (b->len < b->size) {
		k = b->size - b->len < n ? b->size - b->len : n;
		memcpy(b->p + b->len, s, k);
	}
	b->len += n;
	return (0);
}

/*
 * A string decoded into buf (not terminated): its whole length, which
 * may be more than size (then only size bytes are there); 0 for a value
 * that is no string.
 */
size_t
jr_decode(const struct jr_span *v, char *buf, size_t size)
{
	struct jr_buf	 b;

	b.p = buf;
	b.size = size;
	b.len = 0;
	if (jr_string(v, jr_buf_add, &b) == -1)
		return (0);
	return (b.len);
}

/*
 * A number written as digits only (no sign, no point): 1 and *out, 0
 * for any other value.
 */
int
jr_digits_value(const struct jr_span *v, uint64_t *out)
{
	uint64_t	 n = 0;
	size_t		 i;

	if (v->len == 0 || v->len > JR_DIGITS_MAX)
		return (0);
	for (i = 0; i < v->len; i++) {
		if (v->p[i] < '0' || v->p[i] > '9')
			return (0);
		n = n * 10 + (uint64_t)(v->p[i] - '0');
	}
	*out = n;
	return (1);
}
