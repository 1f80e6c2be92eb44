/*
 * api_same.h: for the API unit tests (t_gemini, t_openai,
 * t_anthropic): an event read with jsonr.c allowed must read as jansson
 * alone reads it.
 */

/*
 * One event of api read with jsonr.c allowed and by jansson alone: the
 * same? *fast: jansson allocated nothing the first time (json_arena_init
 * first).
 */
static int
same_both_ways(const struct api *api, const char *event, const char *data,
    size_t len, int *fast)
{
	struct api_event a, b;
	int		 ra, rb, same;

	json_arena_open();
	ra = api->parse_event(event, data, len, &a);
	json_arena_close();
	*fast = json_arena_peak() == 0;		/* jansson allocated nothing */
	wire_json_fast = 0;
	rb = api->parse_event(event, data, len, &b);
	wire_json_fast = 1;
	same = ra == rb;
	if (same && ra == 0) {
		same = a.textlen == b.textlen && (a.textlen == 0 ||
		    memcmp(a.text, b.text, a.textlen) == 0) &&
		    strcmp(a.finish, b.finish) == 0 &&
		    strcmp(a.stop_error, b.stop_error) == 0 &&
		    strcmp(a.refusal, b.refusal) == 0 &&
		    a.prompt == b.prompt && a.answer == b.answer &&
		    a.has_error == b.has_error && a.end == b.end &&
		    strcmp(a.err.message, b.err.message) == 0;
		wire_event_free(&a);
		wire_event_free(&b);
	}
	return (same);
}

/* A case: an event (named, or "") and whether jsonr.c should read it. */
struct same_case {
	const char	*name, *event, *data;
	int		 fast;
};

/*
 * Each case read both ways: one result line "jsonr-NAME" for each, by
 * the program's own report function.
 */
static void
same_cases(const struct api *api, const struct same_case *c, size_t n,
    void (*report)(const char *, int, const char *, ...))
{
	size_t	 i;
	int	 fast, same;
	char	 name[64];

	json_arena_init();
	for (i = 0; i < n; i++) {
		same = same_both_ways(api, c[i].event, c[i].data,
		    strlen(c[i].data), &fast);
		snprintf(name, sizeof(name), "jsonr-%s", c[i].name);
		report(name, same && fast == c[i].fast, "same %d, %s", same,
		    fast ? "read without jansson" : "read by jansson");
	}
}
