/*
 * t_reply.c: the reply-block codec of BRIDGE/1 (lib/reply.c): the
 * writer's dot-stuffing over fragments, the LF before the status line,
 * status lines kept on one line, and the reader's classification.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int	 failures;

/* One result line: ok, or FAIL with why. */
static void
result(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s\n", name);
	else {
		printf("FAIL %s: %s\n", name, why);
		failures++;
	}
}

/* The buffer as a string (it is reset). */
static char *
take(struct ibuf *b)
{
	char	*s;
	size_t	 n = ibuf_left(b);

	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, ibuf_data(b), n);
	s[n] = '\0';
	ibuf_reset(b);
	return (s);
}

/* The buffer must hold exactly want (it is reset). */
static void
expect(const char *name, struct ibuf *b, const char *want)
{
	char	*got = take(b), why[512];

	snprintf(why, sizeof(why), "got \"%s\", want \"%s\"", got, want);
	result(name, strcmp(got, want) == 0, why);
	free(got);
}

/* Write fragments (NULL-terminated list) then a status. */
static void
block(struct ibuf *b, const char **frags, const char *word,
    const char *text)
{
	struct reply_writer	 rw;
	size_t			 i;

	reply_begin(&rw);
	for (i = 0; frags[i] != NULL; i++)
		if (reply_body(&rw, b, frags[i], strlen(frags[i])) == -1)
			abort();
	if (reply_status(&rw, b, word, text == NULL ? NULL : "%s",
	    text) == -1)
		abort();
}

/* The writer: dot-stuffing over fragments, the LF, status lines. */
static void
t_writer(void)
{
	struct ibuf		*b;
	struct reply_writer	 rw;
	static const char	*none[] = { NULL };
	static const char	*line[] = { "hello\n", NULL };
	static const char	*nolf[] = { "hello", NULL };
	static const char	*dot[] = { ".x\n", NULL };
	static const char	*mid[] = { "a\n.b\nc", NULL };
	static const char	*fr1[] = { "a\n", ".b", NULL };
	static const char	*fr2[] = { "a", ".b", NULL };
	static const char	*fr3[] = { "a", "\n", ".", ".", "\n", NULL };
	static const char	*lone[] = { ".", NULL };
	static const char	*utf[] = { "\xe4\xb8", "\xad\xe6\x96\x87",
				    NULL };
	static const char	*emo[] = { "\xf0", "\x9f", "\x98", "\x80\n",
				    NULL };
	static const char	*cr[] = { "a\r\n.b\r\n", NULL };
	static const char	*empty[] = { "", "", NULL };
	static const char	*blank[] = { "\n\n", NULL };
	static const char	*stat[] = { ". OK fake\n", NULL };
	int			 rv;

	if ((b = ibuf_open(64)) == NULL)
		abort();
	block(b, none, "OK", NULL);
	expect("writer_empty_ok", b, ". OK\n");
	block(b, none, "OK", "");
	expect("writer_empty_text", b, ". OK\n");
	block(b, line, "OK", "done");
	expect("writer_line", b, "hello\n. OK done\n");
	block(b, nolf, "OK", NULL);
	expect("writer_adds_lf", b, "hello\n. OK\n");
	block(b, dot, "OK", NULL);
	expect("writer_stuff_first", b, "..x\n. OK\n");
	block(b, mid, "OK", NULL);
	expect("writer_stuff_middle", b, "a\n..b\nc\n. OK\n");
	block(b, fr1, "OK", NULL);
	expect("writer_stuff_fragment_after_lf", b, "a\n..b\n. OK\n");
	block(b, fr2, "OK", NULL);
	expect("writer_no_stuff_midline", b, "a.b\n. OK\n");
	block(b, fr3, "OK", NULL);
	expect("writer_stuff_single_bytes", b, "a\n...\n. OK\n");
	block(b, lone, "OK", NULL);
	expect("writer_lone_dot", b, "..\n. OK\n");
	block(b, utf, "OK", NULL);
	expect("writer_utf8_split", b, "\xe4\xb8\xad\xe6\x96\x87\n. OK\n");
	block(b, emo, "OK", NULL);
	expect("writer_emoji_bytes", b, "\xf0\x9f\x98\x80\n. OK\n");
	block(b, cr, "OK", NULL);
	expect("writer_cr_passes", b, "a\r\n..b\r\n. OK\n");
	block(b, empty, "OK", NULL);
	expect("writer_empty_fragments", b, ". OK\n");
	block(b, blank, "OK", NULL);
	expect("writer_blank_lines", b, "\n\n. OK\n");
	block(b, stat, "OK", NULL);
	expect("writer_body_status_lookalike", b, ".. OK fake\n. OK\n");
	block(b, none, "ERR", "too-long line longer than 10 bytes");
	expect("writer_err", b, ". ERR too-long line longer than 10 bytes\n");
	block(b, none, "MORE", "choose a number");
	expect("writer_more", b, ". MORE choose a number\n");
	block(b, none, "BYE", "idle timeout");
	expect("writer_bye", b, ". BYE idle timeout\n");
	block(b, none, "ERR", "upstream bad\nthing\r\there\x7f");
	expect("writer_status_flattened", b,
	    ". ERR upstream bad thing  here \n");

	reply_begin(&rw);
	reply_status(&rw, b, "ERR", "%s %d", "bad-argument", 42);
	expect("writer_status_format", b, ". ERR bad-argument 42\n");

	/* Two blocks in a row: the second starts a fresh line. */
	reply_begin(&rw);
	reply_body(&rw, b, "x", 1);
	reply_status(&rw, b, "OK", NULL);
	reply_body(&rw, b, ".y", 2);
	reply_status(&rw, b, "OK", NULL);
	expect("writer_two_blocks", b, "x\n. OK\n..y\n. OK\n");

	reply_begin(&rw);
	rv = reply_status(&rw, b, NULL, NULL);
	result("writer_null_word", rv == -1 && ibuf_left(b) == 0,
	    "accepted a NULL word");
	rv = reply_status(&rw, b, "", NULL);
	result("writer_empty_word", rv == -1 && ibuf_left(b) == 0,
	    "accepted an empty word");
	ibuf_free(b);
}

/* One line must read as kind want with text wanttext. */
static void
parse_case(const char *name, const char *line, enum reply_kind want,
    const char *wanttext)
{
	const char	*text = NULL;
	enum reply_kind	 k;
	char		 why[256];

	k = reply_parse(line, &text);
	snprintf(why, sizeof(why), "kind %d text \"%s\", want %d \"%s\"",
	    k, text == NULL ? "(null)" : text, want, wanttext);
	result(name, k == want && text != NULL &&
	    strcmp(text, wanttext) == 0, why);
}

/* The reader's classification of body and status lines. */
static void
t_parse(void)
{
	parse_case("parse_body", "hello", REPLY_BODY, "hello");
	parse_case("parse_body_empty", "", REPLY_BODY, "");
	parse_case("parse_stuffed", "..x", REPLY_BODY, ".x");
	parse_case("parse_stuffed_lone", "..", REPLY_BODY, ".");
	parse_case("parse_stuffed_status", ".. OK", REPLY_BODY, ". OK");
	parse_case("parse_ok", ". OK", REPLY_OK, "");
	parse_case("parse_ok_text", ". OK model gemini", REPLY_OK,
	    "model gemini");
	parse_case("parse_ok_space", ". OK ", REPLY_OK, "");
	parse_case("parse_err", ". ERR too-long line", REPLY_ERR,
	    "too-long line");
	parse_case("parse_more", ". MORE choose a number", REPLY_MORE,
	    "choose a number");
	parse_case("parse_bye", ". BYE", REPLY_BYE, "");
	parse_case("parse_bye_text", ". BYE idle timeout", REPLY_BYE,
	    "idle timeout");
	parse_case("parse_unknown_word", ". FOO bar", REPLY_BAD, "FOO bar");
	parse_case("parse_lowercase_word", ". ok", REPLY_BAD, "ok");
	parse_case("parse_prefix_word", ". OKAY", REPLY_BAD, "OKAY");
	parse_case("parse_lone_dot", ".", REPLY_BAD, "");
	parse_case("parse_dot_other", ".x", REPLY_BODY, ".x");
	parse_case("parse_not_status", "x. OK", REPLY_BODY, "x. OK");
}

/* Bodies cut at every place come back whole through the reader. */
static void
t_roundtrip(void)
{
	static const char	*bodies[] = {
		"", "a", ".", "..", "\n", ".\n.", "a\n.b\n..c\n. OK\n.",
		"line one\nline two", ". ERR fake\n. BYE\n",
		"\xe2\x82\xac.\n.\xf0\x9f\x98\x80", "\n\n.\n\n"
	};
	struct ibuf		*b;
	struct reply_writer	 rw;
	const char		*body, *text;
	char			*out, *line, *next, *got;
	char			 name[64], why[256];
	size_t			 i, cut1, cut2, len, gl;
	enum reply_kind		 k;
	int			 ok, bad = 0, n = 0;

	if ((b = ibuf_open(64)) == NULL || (got = malloc(256)) == NULL)
		abort();
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		body = bodies[i];
		len = strlen(body);
		for (cut1 = 0; cut1 <= len; cut1++)
		for (cut2 = cut1; cut2 <= len; cut2++) {
			reply_begin(&rw);
			reply_body(&rw, b, body, cut1);
			reply_body(&rw, b, body + cut1, cut2 - cut1);
			reply_body(&rw, b, body + cut2, len - cut2);
			reply_status(&rw, b, "OK", "x");
			out = take(b);
			gl = 0;
			ok = 0;
			for (line = out; *line != '\0'; line = next) {
				next = strchr(line, '\n');
				*next++ = '\0';
				k = reply_parse(line, &text);
				if (k == REPLY_OK) {
					ok = (*next == '\0' &&
					    strcmp(text, "x") == 0);
					break;
				}
				if (k != REPLY_BODY)
					break;
				gl += snprintf(got + gl, 256 - gl, "%s\n",
				    text);
			}
			got[gl] = '\0';
			/* The writer adds the LF a body lacks. */
			if (len > 0 && body[len - 1] != '\n')
				ok = ok && gl == len + 1 &&
				    strncmp(got, body, len) == 0;
			else
				ok = ok && strcmp(got, body) == 0;
			if (!ok && !bad) {
				snprintf(why, sizeof(why),
				    "body %zu cut %zu,%zu", i, cut1, cut2);
				bad = 1;
			}
			n++;
			free(out);
		}
	}
	snprintf(name, sizeof(name), "roundtrip_%d_cuts", n);
	result(name, !bad, why);
	free(got);
	ibuf_free(b);
}

/* A large body in small fragments: only the line starts change. */
static void
t_large(void)
{
	struct ibuf		*b;
	struct reply_writer	 rw;
	char			*body, *want, *got;
	size_t			 i, len = 1 << 20, w = 0, step;

	if ((b = ibuf_open(64)) == NULL || (body = malloc(len)) == NULL ||
	    (want = malloc(2 * len + 16)) == NULL)
		abort();
	for (i = 0; i < len; i++)
		body[i] = (i % 61 == 60) ? '\n' : (i % 7 == 0 ? '.' : 'a');
	for (i = 0; i < len; i++) {
		if ((i == 0 || body[i - 1] == '\n') && body[i] == '.')
			want[w++] = '.';
		want[w++] = body[i];
	}
	if (body[len - 1] != '\n')
		want[w++] = '\n';
	memcpy(want + w, ". OK\n", 6);
	reply_begin(&rw);
	for (i = 0; i < len; i += step) {
		step = 1 + (i * 7919) % 4093;
		if (step > len - i)
			step = len - i;
		reply_body(&rw, b, body + i, step);
	}
	reply_status(&rw, b, "OK", NULL);
	got = take(b);
	result("writer_large_fragmented", strcmp(got, want) == 0,
	    "the stuffed body differs");
	free(got);
	free(body);
	free(want);
	ibuf_free(b);
}

/* Writer, reader, round trips and a large body. */
int
main(void)
{
	t_writer();
	t_parse();
	t_roundtrip();
	t_large();
	return (failures > 0);
}
