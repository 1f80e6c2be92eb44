/*
 * storage_chan.c: storage's peers' channels (a worker's, control's,
 * the provider's for jobs) and the answers written on them. A channel
 * that a request still names outlives its peer until that request is
 * answered.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

/* A peer closed its channel (or it broke): forget it. */
static void
wchan_closed(struct channel *ch)
{
	struct wchan	*w = ch->arg;

	if (ch->broken) {
		wchan_reject(w, NULL, NULL);
		return;
	}
	if (w->control || w->jobs)
		log_debug("%s: channel closed", w->jobs ? "provider" :
		    "control");
	else
		log_debug("worker %u: channel closed", w->wid);
	wchan_drop(w);
}

/* A worker's channel by the id the parent gave it. */
struct wchan *
wchan_find(uint32_t wid)
{
	struct wchan	*w;

	TAILQ_FOREACH(w, &stor.chans, entry)
		if (!w->control && w->wid == wid)
			return (w);
	return (NULL);
}

/* Read a worker only while its identity is known and it keeps up. */
void
wchan_update(struct wchan *w)
{
	int	 pause;

	if (w->gone)
		return;
	pause = (!w->control && !w->jobs && w->identity[0] == '\0') ||
	    w->full;
	if (pause != w->ch.paused)
		channel_pause(&w->ch, pause);
}

/* Forget a channel; its memory goes once no request names it. */
void
wchan_drop(struct wchan *w)
{
	if (w->gone)
		return;
	w->gone = 1;
	channel_shutdown(&w->ch);
	if (stor.ctl == w)
		stor.ctl = NULL;
	if (stor.jobs == w)
		stor.jobs = NULL;
	follow_drop(w, 0);
	TAILQ_REMOVE(&stor.chans, w, entry);
	TAILQ_INSERT_TAIL(&stor.dead, w, entry);
	/* Never free here: the channel code may still look at it. */
	if (!ev_timer_pending(&stor.round_end))
		ev_timer_add(&stor.round_end, 0);
}

/* Free what was dropped and is no longer named. */
void
wchan_reap(void)
{
	struct wchan	*w, *next;
	struct stor_export	*ex;

	for (w = TAILQ_FIRST(&stor.dead); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->refs > 0)
			continue;
		while ((ex = TAILQ_FIRST(&w->exports)) != NULL) {
			TAILQ_REMOVE(&w->exports, ex, entry);
			free(ex);
		}
		TAILQ_REMOVE(&stor.dead, w, entry);
		free(w);
	}
}

/* A new channel of a worker (wid, identity), control or the provider,
   whose messages go to dispatch. */
struct wchan *
wchan_new(int fd, uint32_t wid, const char *identity, int control, int jobs,
    void (*dispatch)(struct channel *, struct imsg *))
{
	struct wchan	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s", __func__);
	w->wid = wid;
	w->control = control;
	w->jobs = jobs;
	(void)strlcpy(w->identity, identity, sizeof(w->identity));
	TAILQ_INIT(&w->exports);
	TAILQ_INSERT_TAIL(&stor.chans, w, entry);
	channel_init(&w->ch, fd, dispatch, wchan_closed, w);
	/* What an idle worker sends waits in the socket until SESSION. */
	channel_pause(&w->ch, 1);
	wchan_update(w);
	return (w);
}

/*
 * A peer broke the rules (imsg, or NULL for a broken frame). Control
 * or the provider: this process leaves (child_bad). A worker: its
 * channel is closed and the parent told to end it; storage goes on.
 */
void
wchan_reject(struct wchan *w, struct imsg *imsg, const char *why)
{
	if (w->control || w->jobs)
		child_bad(w->jobs ? PROC_PROVIDER : PROC_CONTROL, imsg, why);
	log_warnx("bad %s from worker %u%s%s; closing its channel",
	    imsg != NULL ? imsg_type_name(imsg->hdr.type) : "framing",
	    w->wid, why != NULL ? ": " : "", why != NULL ? why : "");
	channel_compose_u32(parent_chan, IMSG_STORAGE_REJECT, 0, w->wid);
	wchan_drop(w);
}


/* Stop following: one request of a channel, or all of its (id 0). */
void
follow_drop(struct wchan *w, uint32_t id)
{
	struct follower	*f, *next;

	for (f = TAILQ_FIRST(&stor.followers); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->w != w || (id != 0 && f->id != id))
			continue;
		TAILQ_REMOVE(&stor.followers, f, entry);
		w->refs--;
		free(f);
	}
}

/* IMSG_STORAGE_ERROR: u32 id, str text. */
void
answer_error(struct wchan *w, uint32_t id, const char *text)
{
	struct ibuf	*b;

	if (w->gone)
		return;
	if ((b = channel_create(&w->ch, IMSG_STORAGE_ERROR, 0,
	    strlen(text) + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_str(b, text) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_REFUSED: u32 id, str code, str text. */
void
answer_refused(struct wchan *w, uint32_t id, const char *code,
    const char *text)
{
	struct ibuf	*b;

	if (w->gone)
		return;
	if ((b = channel_create(&w->ch, IMSG_STORAGE_REFUSED, 0,
	    strlen(code) + strlen(text) + 16)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_str(b, code) == -1 ||
	    ibuf_add_str(b, text) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_CONV: u32 id, u64 conversation, u64 last use,
 * u64 messages, str name, str model, str role, str system. */
int
answer_conv(struct wchan *w, uint32_t id, const struct db_conv *c)
{
	struct ibuf	*b;

	if (w->gone)
		return (-1);
	if ((b = channel_create(&w->ch, IMSG_STORAGE_CONV, 0,
	    strlen(c->system) + 512)) == NULL ||
	    ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)c->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)c->last_used) == -1 ||
	    ibuf_add_u64(b, (uint64_t)c->messages) == -1 ||
	    ibuf_add_str(b, c->name) == -1 ||
	    ibuf_add_str(b, c->model) == -1 ||
	    ibuf_add_str(b, c->role) == -1 ||
	    ibuf_add_str(b, c->system) == -1)
		fatal("%s", __func__);
	return (channel_send(&w->ch, b));
}

/* IMSG_STORAGE_IDENTITY: u32 id, str identity (control only). */
void
answer_identity(struct wchan *w, uint32_t id, const char *identity)
{
	struct ibuf	*b;

	if (w->gone)
		return;
	if ((b = channel_create(&w->ch, IMSG_STORAGE_IDENTITY, 0,
	    strlen(identity) + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_str(b, identity) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_STORED or _END: u32 id, u64 row id or count. */
void
answer_u64(struct wchan *w, uint32_t type, uint32_t id, uint64_t v)
{
	struct ibuf	*b;

	if (w->gone)
		return;
	if ((b = channel_create(&w->ch, type, 0, 16)) == NULL ||
	    ibuf_add_u32(b, id) == -1 || ibuf_add_u64(b, v) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* A read's last answer: END with how many, or ERROR if it failed. */
void
answer_end(struct wchan *w, uint32_t id, int rv, uint64_t n)
{
	if (rv == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, n);
}

/* IMSG_STORAGE_LINE: u32 id, str line. */
int
answer_line(struct line_arg *la, const char *fmt, ...)
{
	struct ibuf	*b;
	char		 line[1024];
	va_list		 ap;

	if (la->w->gone)
		return (-1);
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((b = channel_create(&la->w->ch, IMSG_STORAGE_LINE, 0,
	    strlen(line) + 16)) == NULL || ibuf_add_u32(b, la->id) == -1 ||
	    ibuf_add_str(b, line) == -1)
		fatal("%s", __func__);
	la->n++;
	return (channel_send(&la->w->ch, b));
}

/* One stored row to the worker that asked. */
int
answer_item(const struct db_item *item, void *arg)
{
	struct item_arg	*ia = arg;
	struct ibuf	*b;

	if (ia->w->gone)
		return (-1);
	if ((b = channel_create(&ia->w->ch, IMSG_STORAGE_ITEM, 0,
	    item->len + 32)) == NULL || ibuf_add_u32(b, ia->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)item->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)item->time) == -1 ||
	    ibuf_add_u32(b, item->role) == -1 ||
	    ibuf_add_data(b, item->text, item->len) == -1)
		fatal("%s", __func__);
	return (channel_send(&ia->w->ch, b));
}
