/*
 * t_sse.c: unit tests of the Server-Sent Events parser (bridged/sse.c).
 * Prints "ok <case>" or "FAIL <case>: <why>" per case.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

#define MAXEV	64

struct got {
	int	 n;
	char	*data[MAXEV];
	size_t	 len[MAXEV];
	char	 event[MAXEV][64];
	int	 stop_at;	/* return non-zero at this event, or -1 */
};

static int	 failures;

static int	 collect(void *, const char *, const char *, size_t);
static void	 got_init(struct got *);
static void	 got_free(struct got *);
static int	 got_eq(struct got *, const char *const *, int, char *, size_t);
static int	 run(const char *, size_t, size_t, const size_t *, int,
		    struct got *, int *);
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

/* The callback: keep a copy of every event. */
static int
collect(void *arg, const char *event, const char *data, size_t len)
{
	struct got	*g = arg;

	if (g->n >= MAXEV)
		return (-1);
	if (data[len] != '\0')
		return (-1);	/* data must be NUL-terminated */
	if ((g->data[g->n] = malloc(len + 1)) == NULL)
		abort();
	memcpy(g->data[g->n], data, len + 1);
	g->len[g->n] = len;
	strlcpy(g->event[g->n], event, sizeof(g->event[g->n]));
	g->n++;
	if (g->stop_at >= 0 && g->n == g->stop_at)
		return (1);
	return (0);
}

/* An empty collection of events. */
static void
got_init(struct got *g)
{
	memset(g, 0, sizeof(*g));
	g->stop_at = -1;
}

/* Free the collected events. */
static void
got_free(struct got *g)
{
	int	 i;

	for (i = 0; i < g->n; i++)
		free(g->data[i]);
	got_init(g);
}

/* Compare the events with what is expected; describe a difference. */
static int
got_eq(struct got *g, const char *const *want, int nwant, char *why,
    size_t whysz)
{
	int	 i;

	if (g->n != nwant) {
		snprintf(why, whysz, "%d events, want %d", g->n, nwant);
		return (0);
	}
	for (i = 0; i < nwant; i++) {
		if (g->len[i] != strlen(want[i]) ||
		    memcmp(g->data[i], want[i], g->len[i]) != 0) {
			snprintf(why, whysz, "event %d is \"%.60s\", want "
			    "\"%.60s\"", i, g->data[i], want[i]);
			return (0);
		}
	}
	return (1);
}

/*
 * Feed a stream cut at the given positions (sorted) into a parser of
 * max bytes.  Returns what the last sse_feed returned.
 */
static int
run(const char *s, size_t len, size_t max, const size_t *cuts, int ncuts,
    struct got *g, int *pending)
{
	struct sse	 sse;
	size_t		 prev = 0;
	int		 i, rv = 0;

	sse_init(&sse, max, collect, g);
	for (i = 0; i <= ncuts && rv == 0; i++) {
		size_t	 end = i < ncuts ? cuts[i] : len;

		rv = sse_feed(&sse, s + prev, end - prev);
		prev = end;
	}
	if (pending != NULL)
		*pending = sse_pending(&sse);
	sse_clear(&sse);
	return (rv);
}

/* One stream fed whole must give the expected events. */
static void
simple(const char *name, const char *s, const char *const *want, int nwant)
{
	struct got	 g;
	char		 why[256];
	int		 rv;

	got_init(&g);
	rv = run(s, strlen(s), 1 << 20, NULL, 0, &g, NULL);
	if (rv != 0)
		result(name, 0, "sse_feed returned %d", rv);
	else
		result(name, got_eq(&g, want, nwant, why, sizeof(why)), "%s",
		    why);
	got_free(&g);
}

/* Every single split, then every pair of splits, then one byte a time. */
static void
splits(const char *name, const char *s, const char *const *want, int nwant,
    int pairs)
{
	struct got	 g;
	char		 why[256];
	size_t		 len = strlen(s), i, j, cuts[2], *all;
	int		 bad = 0;

	for (i = 0; i <= len && !bad; i++) {
		got_init(&g);
		cuts[0] = i;
		if (run(s, len, 1 << 20, cuts, 1, &g, NULL) != 0 ||
		    !got_eq(&g, want, nwant, why, sizeof(why))) {
			result(name, 0, "split at %zu: %s", i, why);
			bad = 1;
		}
		got_free(&g);
	}
	for (i = 0; pairs && i <= len && !bad; i++) {
		for (j = i; j <= len && !bad; j++) {
			got_init(&g);
			cuts[0] = i;
			cuts[1] = j;
			if (run(s, len, 1 << 20, cuts, 2, &g, NULL) != 0 ||
			    !got_eq(&g, want, nwant, why, sizeof(why))) {
				result(name, 0, "split at %zu,%zu: %s", i, j,
				    why);
				bad = 1;
			}
			got_free(&g);
		}
	}
	if (!bad) {
		if ((all = calloc(len, sizeof(*all))) == NULL)
			abort();
		for (i = 0; i < len; i++)
			all[i] = i + 1;
		got_init(&g);
		if (run(s, len, 1 << 20, all, (int)len, &g, NULL) != 0 ||
		    !got_eq(&g, want, nwant, why, sizeof(why))) {
			result(name, 0, "byte by byte: %s", why);
			bad = 1;
		}
		got_free(&g);
		free(all);
	}
	if (!bad)
		result(name, 1, "%s", "");
}

/* Line ends, fields, comments, empty events. */
static void
t_basic(void)
{
	static const char *const ab[] = { "a", "b" };
	static const char *const one[] = { "x" };
	static const char *const sp[] = { " x", "y " };
	static const char *const ml[] = { "a\nb\n\nc" };
	static const char *const empty[] = { "" };
	static const char *const two_empty[] = { "", "" };

	simple("lf", "data: a\n\ndata: b\n\n", ab, 2);
	simple("crlf", "data: a\r\n\r\ndata: b\r\n\r\n", ab, 2);
	simple("cr", "data: a\r\rdata: b\r\r", ab, 2);
	simple("mixed-ends", "data: a\r\n\ndata: b\n\r\n", ab, 2);
	simple("cr-cr-lf", "data: a\r\r\ndata: b\n\n", ab, 2);
	simple("no-space", "data:x\n\n", one, 1);
	simple("one-space-only", "data:  x\n\ndata:y \n\n", sp, 2);
	simple("multi-line", "data: a\ndata:b\ndata:\ndata: c\n\n", ml, 1);
	simple("comments", ": ping\n:\ndata: x\n: more\n\n: tail\n\n", one, 1);
	simple("other-fields", "id: 7\nretry: 10\nfoo: bar\ndata: x\n"
	    "datax: y\nDATA: z\n\n", one, 1);
	simple("field-no-colon", "data\n\n", empty, 1);
	simple("empty-data", "data:\n\ndata: \n\n", two_empty, 2);
	simple("blank-lines", "\n\n\r\n\rdata: x\n\n\n\n", one, 1);
	simple("no-dispatch-without-blank", "data: x\n\ndata: y\n", one, 1);
	simple("bom", "\xef\xbb\xbf" "data: x\n\n", one, 1);
	simple("event-only", "event: ping\n\ndata: x\n\n", one, 1);
}

/* The event field is passed and reset per event. */
static void
t_event_field(void)
{
	struct got	 g;
	const char	*s = "event: message_start\ndata: {}\n\ndata: 2\n\n"
	    "event:error\ndata: e\n\n";

	got_init(&g);
	run(s, strlen(s), 1024, NULL, 0, &g, NULL);
	result("event-field", g.n == 3 &&
	    strcmp(g.event[0], "message_start") == 0 &&
	    strcmp(g.event[1], "") == 0 && strcmp(g.event[2], "error") == 0,
	    "got %d events, names \"%s\" \"%s\" \"%s\"", g.n, g.event[0],
	    g.event[1], g.event[2]);
	got_free(&g);
}

/* llama.cpp's "error:" field: the data of an event named "error". */
static void
t_error_field(void)
{
	struct got	 g;
	const char	*s = "data: {\"a\":1}\n\nerror: {\"code\":500}\n\n"
	    "data: [DONE]\n\n";

	got_init(&g);
	run(s, strlen(s), 1024, NULL, 0, &g, NULL);
	result("error-field", g.n == 3 && strcmp(g.event[0], "") == 0 &&
	    strcmp(g.event[1], "error") == 0 &&
	    strcmp(g.data[1], "{\"code\":500}") == 0 &&
	    strcmp(g.event[2], "") == 0 && strcmp(g.data[2], "[DONE]") == 0,
	    "got %d events, names \"%s\" \"%s\"", g.n, g.event[0],
	    g.event[1]);
	got_free(&g);
}

/* A leading byte order mark, and bytes that only look like one. */
static void
t_bom_not(void)
{
	static const char *const want[] = { "x" };
	struct got	 g;
	char		 why[256];
	/* Bytes that start like a BOM but are not one: a field "\xef\xbbX". */
	const char	*s = "\xef\xbbX: y\ndata: x\n\n";

	got_init(&g);
	run(s, strlen(s), 1024, NULL, 0, &g, NULL);
	result("bom-prefix-kept", got_eq(&g, want, 1, why, sizeof(why)),
	    "%s", why);
	got_free(&g);

	/* A BOM is only skipped at the very start. */
	got_init(&g);
	s = "data: x\n\n\xef\xbb\xbf" "data: y\n\n";
	run(s, strlen(s), 1024, NULL, 0, &g, NULL);
	result("bom-only-at-start", g.n == 1, "got %d events", g.n);
	got_free(&g);
}

/* Streams cut at every position give the same events. */
static void
t_splits(void)
{
	static const char *const gem[] = {
		"{\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
		    "\"Hel\"}],\"role\": \"model\"},\"index\": 0}]}",
		"{\"candidates\": [{\"content\": {\"parts\": [{\"text\": "
		    "\"lo \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80\"}]},"
		    "\"finishReason\": \"STOP\"}]}",
		"x\ny"
	};
	static const char *const small[] = { "a", "\xf0\x9f\x98\x80", "b\nc" };
	char		 s[1024];

	snprintf(s, sizeof(s), "data: %s\r\n\r\n: keep-alive\r\n\r\n"
	    "data:%s\r\n\r\ndata: x\r\ndata: y\r\n\r\n", gem[0], gem[1]);
	splits("split-crlf-every-position", s, gem, 3, 0);
	snprintf(s, sizeof(s), "data: %s\n\ndata: %s\n\ndata: x\ndata: y\n\n",
	    gem[0], gem[1]);
	splits("split-lf-every-position", s, gem, 3, 0);
	snprintf(s, sizeof(s), "data: %s\r\rdata: %s\r\n\ndata: x\rdata: y"
	    "\n\r\n", gem[0], gem[1]);
	splits("split-mixed-every-position", s, gem, 3, 0);
	splits("split-pairs-crlf", "data: a\r\n\r\ndata:\xf0\x9f\x98\x80\r\n"
	    "\r\n: c\r\ndata: b\r\ndata: c\r\n\r\n", small, 3, 1);
	splits("split-pairs-cr", "data: a\r\rdata:\xf0\x9f\x98\x80\r\r"
	    "data: b\rdata: c\r\r", small, 3, 1);
}

/* A multi-byte character split between feeds arrives whole. */
static void
t_utf8(void)
{
	static const char *const want[] = {
		"\xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x87\xab\xf0\x9f\x87\xb7 "
		    "\xf0\x9d\x84\x9e"
	};
	char		 s[256], why[256];
	struct got	 g;
	size_t		 len, i, cuts[3];
	int		 bad = 0;

	snprintf(s, sizeof(s), "data: %s\r\n\r\n", want[0]);
	len = strlen(s);
	/* Cut inside every character, three ways at once. */
	for (i = 6; i + 2 < len && !bad; i++) {
		cuts[0] = i;
		cuts[1] = i + 1;
		cuts[2] = i + 2;
		got_init(&g);
		if (run(s, len, 64, cuts, 3, &g, NULL) != 0 ||
		    !got_eq(&g, want, 1, why, sizeof(why))) {
			result("utf8-4byte-split", 0, "at %zu: %s", i, why);
			bad = 1;
		}
		got_free(&g);
	}
	if (!bad)
		result("utf8-4byte-split", 1, "%s", "");
}

/* The maximum event size, and a data line over 64 KiB. */
static void
t_limits(void)
{
	struct got	 g;
	struct sse	 sse;
	char		*big;
	size_t		 n = 100 * 1024, i;
	int		 rv;

	/* An event of exactly max bytes passes, one more fails. */
	got_init(&g);
	rv = run("data: 0123456789\n\n", 18, 10, NULL, 0, &g, NULL);
	result("max-exact", rv == 0 && g.n == 1 && g.len[0] == 10,
	    "rv %d, %d events", rv, g.n);
	got_free(&g);
	got_init(&g);
	rv = run("data: 0123456789A\n\n", 19, 10, NULL, 0, &g, NULL);
	result("max-over", rv == -1 && g.n == 0, "rv %d, %d events", rv, g.n);
	got_free(&g);
	/* Joined lines count, with their LFs. */
	got_init(&g);
	rv = run("data: 01234\ndata: 5678\n\n", 24, 10, NULL, 0, &g, NULL);
	result("max-multiline-exact", rv == 0 && g.n == 1 && g.len[0] == 10,
	    "rv %d, %d events", rv, g.n);
	got_free(&g);
	got_init(&g);
	rv = run("data: 01234\ndata: 56789\n\n", 25, 10, NULL, 0, &g, NULL);
	result("max-multiline-over", rv == -1, "rv %d", rv);
	got_free(&g);
	/* A line without an end, longer than any event, fails early. */
	got_init(&g);
	sse_init(&sse, 10, collect, &g);
	rv = 0;
	for (i = 0; i < 100 && rv == 0; i++)
		rv = sse_feed(&sse, ": comment comment ", 18);
	result("max-endless-line", rv == -1 && sse.error == SSE_ETOOBIG &&
	    i < 10, "rv %d after %zu feeds", rv, i);
	/* After an error, nothing more is parsed. */
	rv = sse_feed(&sse, "\n\ndata: x\n\n", 11);
	result("error-sticks", rv == -1 && g.n == 0, "rv %d, %d events", rv,
	    g.n);
	sse_clear(&sse);
	got_free(&g);

	/* A data line over 64 KiB in a 64 MiB parser. */
	if ((big = malloc(n + 16)) == NULL)
		abort();
	memcpy(big, "data: ", 6);
	for (i = 0; i < n; i++)
		big[6 + i] = 'a' + i % 26;
	memcpy(big + 6 + n, "\r\n\r\n", 4);
	got_init(&g);
	sse_init(&sse, 64 * 1024 * 1024, collect, &g);
	rv = 0;
	for (i = 0; i < n + 10 && rv == 0; i += 1000)
		rv = sse_feed(&sse, big + i, i + 1000 > n + 10 ?
		    n + 10 - i : 1000);
	result("big-line", rv == 0 && g.n == 1 && g.len[0] == n &&
	    memcmp(g.data[0], big + 6, n) == 0, "rv %d, %d events", rv, g.n);
	sse_clear(&sse);
	got_free(&g);
	free(big);
}

/* What is not yet a whole event is kept, and seen at the end. */
static void
t_partial(void)
{
	struct got	 g;
	struct sse	 sse;
	int		 pend;

	got_init(&g);
	sse_init(&sse, 1024, collect, &g);
	sse_feed(&sse, "data: {\"a\":", 11);
	pend = sse_pending(&sse);
	sse_feed(&sse, " 1}\r", 4);
	result("partial-kept", pend && g.n == 0, "pending %d, %d events",
	    pend, g.n);
	sse_feed(&sse, "\n", 1);
	pend = sse_pending(&sse);
	result("partial-data-pending", pend && g.n == 0,
	    "pending %d, %d events", pend, g.n);
	sse_feed(&sse, "\r\n", 2);
	result("partial-complete", !sse_pending(&sse) && g.n == 1 &&
	    strcmp(g.data[0], "{\"a\": 1}") == 0, "pending %d, %d events",
	    sse_pending(&sse), g.n);
	sse_clear(&sse);
	got_free(&g);

	/* A stream cut mid-event is seen at the end. */
	got_init(&g);
	run("data: a\n\ndata: {\"b", 17, 1024, NULL, 0, &g, &pend);
	result("cut-detected", pend && g.n == 1, "pending %d, %d events",
	    pend, g.n);
	got_free(&g);
	got_init(&g);
	run("data: a\n\n", 9, 1024, NULL, 0, &g, &pend);
	result("clean-end", !pend && g.n == 1, "pending %d", pend);
	got_free(&g);
}

/* The callback can stop the parser. */
static void
t_stop(void)
{
	struct got	 g;
	struct sse	 sse;
	int		 rv;

	got_init(&g);
	g.stop_at = 2;
	sse_init(&sse, 1024, collect, &g);
	rv = sse_feed(&sse, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27);
	result("callback-stops", rv == -1 && sse.error == SSE_ESTOPPED &&
	    g.n == 2, "rv %d error %d, %d events", rv, sse.error, g.n);
	rv = sse_feed(&sse, "data: 4\n\n", 9);
	result("stopped-sticks", rv == -1 && g.n == 2, "rv %d", rv);
	sse_clear(&sse);
	got_free(&g);

	/* Cleared and initialized again, it works again. */
	got_init(&g);
	sse_init(&sse, 1024, collect, &g);
	rv = sse_feed(&sse, "data: 5\n\n", 9);
	result("reuse", rv == 0 && g.n == 1 && sse.nevents == 1, "rv %d", rv);
	sse_clear(&sse);
	sse_clear(&sse);
	got_free(&g);
}

/* A NUL inside data is data. */
static void
t_nul(void)
{
	struct got	 g;
	static const char s[] = "data: a\0b\n\n";

	got_init(&g);
	run(s, sizeof(s) - 1, 1024, NULL, 0, &g, NULL);
	result("nul-kept", g.n == 1 && g.len[0] == 3 &&
	    memcmp(g.data[0], "a\0b", 3) == 0, "%d events", g.n);
	got_free(&g);
}

/* The SSE parser's cases; non-zero if one failed. */
int
main(void)
{
	t_basic();
	t_event_field();
	t_error_field();
	t_bom_not();
	t_splits();
	t_utf8();
	t_limits();
	t_partial();
	t_stop();
	t_nul();
	return (failures > 0);
}
