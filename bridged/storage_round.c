/*
 * storage_round.c: storage's writes and their group commit. Writes
 * that arrive in one round of the event loop share a transaction:
 * BEGIN at the first, COMMIT in a 0 ms timer that runs after every
 * descriptor of the round, and only then the answers, in the order
 * the writes came. A read commits and answers what is pending first,
 * then runs outside the transaction and is answered at once: it sees
 * exactly the writes before it, and a peer gets its answers in the
 * order it asked. One answer may go before the COMMIT: a verdict the
 * peer waits on to go on (req_answer_early).
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/* Queue a write of a peer's message; group_flush answers it. */
struct wreq *
req_new(struct ask *a)
{
	struct wreq	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("%s", __func__);
	r->w = a->w;
	r->type = a->type;
	r->id = a->id;
	r->w->refs++;
	r->w->waiting++;
	TAILQ_INSERT_TAIL(&stor.round, r, entry);
	if (!ev_timer_pending(&stor.round_end))
		ev_timer_add(&stor.round_end, 0);
	return (r);
}

/*
 * A write of a peer's message, in the round's transaction: NULL if
 * that is lost (the write is answered ERROR with the round).
 */
struct wreq *
req_write(struct ask *a)
{
	struct wreq	*r;

	r = req_new(a);
	if (group_join() == -1)
		return (NULL);
	return (r);
}

/* An answered write; its channel may go once nothing names it. */
static void
req_free(struct wreq *r)
{
	TAILQ_REMOVE(&stor.round, r, entry);
	r->w->refs--;
	if (!r->answered)
		r->w->waiting--;
	free(r->conv);
	free(r);
}

/*
 * Answer a write now, before its round's COMMIT, when nothing of the
 * peer's is still to be answered before it and the last transaction
 * was not lost: for ADMIT, whose verdict the worker waits on before
 * it sends a prompt upstream. Should the COMMIT then fail, what it
 * counted is lost with it; after that, verdicts wait for the COMMIT
 * again until one succeeds.
 */
void
req_answer_early(struct wreq *r)
{
	if (r->w->waiting > 1 || stor.failed || stor.lost || r->w->gone ||
	    r->error != NULL || r->refused != NULL || r->answer == NULL)
		return;
	r->answer(r);
	r->answered = 1;
	r->w->waiting--;
	channel_push(&r->w->ch);
}

/* The client asked for what is not there: say so after the round. */
void
req_refuse(struct wreq *r, const char *code, const char *fmt, ...)
{
	va_list	 ap;

	r->refused = code;
	va_start(ap, fmt);
	(void)vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* Put a write in the round's transaction, opening it if need be. */
int
group_join(void)
{
	if (stor.failed)
		return (-1);
	if (stor.writes == 0 && db_begin(stor.db) == -1) {
		stor.failed = 1;
		return (-1);
	}
	stor.writes++;
	/* A write that nobody waits for is committed at the round's end
	   all the same. */
	if (!ev_timer_pending(&stor.round_end))
		ev_timer_add(&stor.round_end, 0);
	return (0);
}

/* A failed statement may have cost the transaction: then all of it. */
void
group_fail_if_lost(void)
{
	if (!db_intx(stor.db))
		stor.failed = 1;
}

/*
 * Commit the open transaction, then answer every write waiting for
 * it, in the order they came. Nobody hears STORED before the COMMIT
 * succeeded; if it failed, every writer of the group hears ERROR.
 */
static void
group_flush(void)
{
	struct wreq	*r;

	if (stor.writes > 0) {
		if (!stor.failed && db_commit(stor.db) == -1)
			stor.failed = 1;
		if (stor.failed) {
			db_rollback(stor.db);
			log_warnx("transaction of %d writes lost", stor.writes);
		}
		stor.lost = stor.failed;
	}
	while ((r = TAILQ_FIRST(&stor.round)) != NULL) {
		if (r->answered)
			;	/* before the COMMIT */
		else if (r->refused != NULL)
			answer_refused(r->w, r->id, r->refused, r->why);
		else if (r->error != NULL)
			answer_error(r->w, r->id, r->error);
		else if (stor.failed)
			answer_error(r->w, r->id, "database error");
		else if (r->answer != NULL)
			r->answer(r);
		else
			answer_u64(r->w, IMSG_STORAGE_STORED, r->id,
			    (uint64_t)r->rowid);
		req_free(r);
	}
	stor.writes = 0;
	stor.failed = 0;
	if (stor.sync_pending) {
		stor.sync_pending = 0;
		if (db_sync(stor.db, stor.sync) == -1)
			log_warnx("database sync level unchanged");
	}
}

/*
 * Before a read, or a transaction of its own: commit and answer what
 * the round holds, writes nobody waits for (events) included.
 */
void
round_settle(void)
{
	if (!TAILQ_EMPTY(&stor.round) || stor.writes > 0)
		group_flush();
}

/* The round is over: commit, answer, and tidy up. */
void
storage_round_end(void *arg)
{
	struct wchan	*w;

	(void)arg;
	group_flush();
	/* Stop reading a worker that does not read its answers. */
	TAILQ_FOREACH(w, &stor.chans, entry) {
		if (!w->full && w->ch.ibuf.queued > STORAGE_QUEUE_HIGH) {
			w->full = 1;
			wchan_update(w);
		}
		if (w->full && !ev_timer_pending(&stor.queue_poll))
			ev_timer_add(&stor.queue_poll, STORAGE_QUEUE_POLL);
	}
	wchan_reap();
}

/* Log an event in the round's transaction, which nobody waits for. */
void
event_store(int64_t when, const char *identity, const char *text)
{
	if (group_join() == -1)
		return;
	if (db_event_add(stor.db, when, identity, text,
	    stor.conf->g.events_keep) == -1)
		group_fail_if_lost();
}

/* An event of storage's own (a limit hit, a token change, a purge). */
void
event_log(const char *identity, const char *fmt, ...)
{
	char	 text[512];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	event_store((int64_t)time(NULL), identity, text);
}

/* The bound of what one HISTORY or CONTEXT answer may carry. */
size_t
read_bound(void)
{
	uint64_t	 m = stor.conf->g.memory_limit;

	if (m == 0 || m > SIZE_MAX / 2)
		return (SIZE_MAX / 2);
	return ((size_t)m);
}
