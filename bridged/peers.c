/*
 * peers.c: the parent's children and what it tells them. The list of
 * children and the running configuration live here, with the running
 * process of each role, the session storage learns of when a client's
 * identity is known, and the events that go to the live monitor and
 * the event log. parent.c starts, wires and restarts
 * the children; auth.c decides on tokens; both build on this file.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

struct bridged_conf	*parent_conf;
struct child_list	 children = TAILQ_HEAD_INITIALIZER(children);
static uint32_t		 monitors;	/* bridgectl monitors attached */

/* The running process of a singleton role (a template not retired). */
struct child *
role_child(enum proc_id id)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == id && !c->chan.dead && !c->retiring)
			return (c);
	return (NULL);
}

/* The running storage process, if any. */
struct child *
parent_storage(void)
{
	return (role_child(PROC_STORAGE));
}

/* How a worker's client authenticated, for show identities. */
static const char *
session_how(struct child *w)
{
	char	 h[IDENTITY_LEN + 1];

	switch (parent_conf->g.identity) {
	case IDENTITY_TOKEN:
		return ("token");
	case IDENTITY_CERTIFICATE:
		/* A plain listener falls back to the address. */
		sha256_hex(w->addr, strlen(w->addr), h);
		return (strcmp(h, w->identity) == 0 ? "ip" : "certificate");
	default:
		return ("ip");
	}
}

/* Storage learns which identity a worker's channel now speaks for. */
void
storage_session(struct child *w)
{
	struct child	*storage;
	struct ibuf	*b;

	if ((storage = parent_storage()) == NULL)
		return;		/* the next storage gets it with the channel */
	if ((b = channel_create(&storage->chan, IMSG_PARENT_SESSION, 0,
	    128)) == NULL || ibuf_add_u32(b, w->wid) == -1 ||
	    ibuf_add_str(b, w->identity) == -1 ||
	    ibuf_add_str(b, session_how(w)) == -1)
		fatal("%s", __func__);
	channel_send(&storage->chan, b);
}

/* Whether a monitor is attached. */
int
peers_monitored(void)
{
	return (monitors > 0);
}

/* Tell a worker whether a monitor is attached. */
void
worker_monitored(struct child *w)
{
	uint32_t	 on = monitors > 0;

	if (w->id == PROC_WORKER && !w->chan.dead)
		channel_compose(&w->chan, IMSG_PARENT_MONITORED, 0, -1, &on,
		    sizeof(on));
}

/*
 * How many monitors control has attached (control says; 0 when it is
 * new). Workers hear of it when that changes between none and some.
 */
void
peers_monitors(uint32_t n)
{
	struct child	*c;
	int		 changed = (n > 0) != (monitors > 0);

	monitors = n;
	if (changed)
		TAILQ_FOREACH(c, &children, entry)
			worker_monitored(c);
}

/*
 * An event: to `bridgectl monitor' with its time while one is
 * attached, and, if stored, to the event log in storage with the
 * identity it concerns (NULL none).
 */
static void
event_send(const char *identity, const char *text, int store)
{
	struct child	*c;
	struct ibuf	*b;
	time_t		 now = time(NULL);
	char		 line[600], when[32];

	if (monitors > 0 && (c = role_child(PROC_CONTROL)) != NULL) {
		iso8601((uint64_t)now, when, sizeof(when));
		snprintf(line, sizeof(line), "%s %s", when, text);
		if ((b = channel_create(&c->chan, IMSG_PARENT_MONITOR, 0,
		    strlen(line) + 8)) == NULL || ibuf_add_str(b, line) == -1)
			ibuf_free(b);
		else
			channel_send(&c->chan, b);
	}
	if (store && (c = role_child(PROC_STORAGE)) != NULL) {
		if ((b = channel_create(&c->chan, IMSG_PARENT_EVENT, 0,
		    strlen(text) + 96)) == NULL ||
		    ibuf_add_u64(b, (uint64_t)now) == -1 ||
		    ibuf_add_str(b, identity != NULL ? identity : "") == -1 ||
		    ibuf_add_str(b, text) == -1)
			ibuf_free(b);
		else
			channel_send(&c->chan, b);
	}
}

/* An event of no one identity (restarts, reloads, refusals). */
void
parent_monitor(const char *fmt, ...)
{
	char		 line[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	event_send(NULL, line, 1);
}

/* An event of one identity ("" or NULL: not known yet). */
void
parent_event(const char *identity, const char *fmt, ...)
{
	char		 line[512];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	event_send(identity, line, 1);
}

/*
 * What a session tells. The event log keeps its connection and its
 * authentication (event_stored); the rest (prompts, answers, models,
 * conversations) goes to the monitors alone: the log is for operators'
 * questions about who came and what was done to them, not a second
 * transcript.
 */
void
session_event(struct child *w, const char *text)
{
	char	 line[512];
	int	 store = event_stored(text);

	if (!store && monitors == 0)
		return;
	snprintf(line, sizeof(line), "session %u: %s", w->sid, text);
	event_send(w->identity, line, store);
}
