/*
 * fuzz_gemini_stream.c: Gemini's streamed answer as the provider reads
 * it: an SSE stream (bridged/sse.c) whose events are parsed by
 * gem_parse_event(), plus the error body parser and the Retry-After
 * and duration parsers (bridged/gemini.c).
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"
#include "fuzz.h"

/* One event of the stream, as xfer.c hands it over. */
static int
on_event(void *arg, const char *event, const char *data, size_t len)
{
	struct gem_event	 ev;

	(void)arg;
	(void)event;
	memset(&ev, 0, sizeof(ev));
	if (gem_parse_event(data, len, &ev) == 0) {
		if (ev.text != NULL && strlen(ev.text) > ev.textlen)
			abort();
		if (strnlen(ev.finish, sizeof(ev.finish)) ==
		    sizeof(ev.finish) ||
		    strnlen(ev.err.message, sizeof(ev.err.message)) ==
		    sizeof(ev.err.message))
			abort();
	}
	gem_event_free(&ev);
	return (0);
}

/* The target: the first byte picks the parser. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct gem_error err;
	struct sse	 s;
	char		*str;
	uint8_t		 which;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	if (size == 0)
		return (0);
	which = data[0] % 4;
	data++;
	size--;
	switch (which) {
	case 0:
	case 1:
		sse_init(&s, 1024 * 1024, on_event, NULL);
		(void)sse_feed(&s, data, size);
		sse_clear(&s);
		break;
	case 2:
		memset(&err, 0, sizeof(err));
		gem_parse_error((const char *)data, size, 429, &err);
		if (strnlen(err.message, sizeof(err.message)) ==
		    sizeof(err.message) ||
		    strnlen(err.status, sizeof(err.status)) ==
		    sizeof(err.status))
			abort();
		break;
	case 3:
		if ((str = malloc(size + 1)) == NULL)
			abort();
		memcpy(str, data, size);
		str[size] = '\0';
		(void)gem_parse_duration(str);
		(void)gem_retry_after(str, 1700000000);
		(void)gem_valid_model_name(str);
		free(str);
		break;
	}
	return (0);
}
