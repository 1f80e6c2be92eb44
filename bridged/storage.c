/*
 * storage.c: the storage process, the only one that opens the
 * database. It takes each worker's channel from the parent, learns
 * from the parent which identity that worker serves, and answers the
 * worker's requests for that identity only. Control's channel, also
 * from the parent, may export or purge any identity for bridgectl.
 *
 * Writes that arrive in one round of the event loop share a
 * transaction: BEGIN at the first, COMMIT in a 0 ms timer that runs
 * after every descriptor of the round, and only then the answers, in
 * the order the writes came. A read commits and answers what is
 * pending first, then runs outside the transaction and is answered at
 * once: it sees exactly the writes before it, and a worker gets its
 * answers in the order it asked.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"

/* A worker's channel stops being read while this much waits for it. */
#define STORAGE_QUEUE_HIGH	(4 * 1024 * 1024)
#define STORAGE_QUEUE_POLL	20		/* ms, to look again */
/* A database several instances share: what the others did. */
#define STORAGE_CLUSTER_POLL	2000		/* ms between looks */
#define STORAGE_REVOKE_SLACK	10		/* s: clocks, late commits */
#define STORAGE_REVOKE_BACK	300		/* s looked back at a start */
/* An export goes out a page at a time, while control keeps up. */
#define EXPORT_PAGE_ITEMS	256
#define EXPORT_PAGE_BYTES	(1024 * 1024)
#define EXPORT_QUEUE_HIGH	(2 * 1024 * 1024)

struct wchan;

/* An export in progress: messages (section 0), then summaries. */
struct export {
	TAILQ_ENTRY(export)	 entry;
	struct wchan		*w;
	uint32_t		 id;
	char			 identity[IDENTITY_LEN + 1];
	int			 section;
	int64_t			 after;
	uint64_t		 count;
};
TAILQ_HEAD(export_list, export);

/* A peer's channel: a worker's, control's (wid 0, control set) or the
   provider's for jobs (wid 0, jobs set). */
struct wchan {
	TAILQ_ENTRY(wchan)	 entry;
	struct channel		 ch;
	uint32_t		 wid;
	int			 control;
	int			 jobs;
	char			 identity[IDENTITY_LEN + 1];
	int			 full;	/* paused: answers pile up */
	int			 refs;	/* requests naming it */
	int			 gone;
	struct export_list	 exports;
};
TAILQ_HEAD(wchan_list, wchan);

struct req {
	TAILQ_ENTRY(req)	 entry;
	struct wchan		*w;
	uint32_t		 type;
	uint32_t		 id;	/* the peer's request id */
	const char		*error;	/* answer ERROR with this */
	const char		*refused; /* or REFUSED with this code */
	char			 why[128];	/* and this text */
	int64_t			 rowid;	/* PURGE: rows deleted */
	uint64_t		 count;	/* CONV_DELETE: messages */
	struct db_conv		*conv;	/* CONV_NEW: answered with it */
	char			 identity[IDENTITY_LEN + 1]; /* PURGE */
	int			 dup;	/* SUBMIT: resent, queued before */
	int64_t			 job;	/* a job's end: followers hear */
	char			 errbuf[192];	/* what error points to */
	const char		*code;	/* ADMIT: "" admitted */
	char			 text[LIMITS_TEXT_MAX];
};
TAILQ_HEAD(req_list, req);

/* Where LINE answers of a read go. */
struct line_arg {
	struct wchan	*w;
	uint32_t	 id;
	uint64_t	 n;
};

/* A client following a job's output (RESULT). */
struct follower {
	TAILQ_ENTRY(follower)	 entry;
	struct wchan		*w;
	uint32_t		 id;	/* the RESULT's request id */
	int64_t			 job;
};
TAILQ_HEAD(follower_list, follower);

static struct {
	struct db		*db;
	struct bridged_conf	*conf;
	char			 database[PATH_MAX];
	enum sync_mode		 sync;
	int			 sync_pending;
	struct wchan_list	 chans;
	struct wchan_list	 dead;
	struct wchan		*ctl;		/* control's channel */
	struct wchan		*jobs;		/* the provider's, for jobs */
	struct jdb		*jdb;
	struct follower_list	 followers;
	struct req_list		 round;
	int			 writes;	/* in the open transaction */
	int			 failed;	/* the transaction is lost */
	struct ev_timer		 round_end;
	struct ev_timer		 queue_poll;
	struct ev_timer		 cluster_poll;
	int64_t			 revoked_since;	/* looked for from */
} st;

struct item_arg {
	struct wchan	*w;
	uint32_t	 id;
};

static void	storage_dispatch_parent(struct channel *, struct imsg *);
static void	storage_dispatch_worker(struct channel *, struct imsg *);
static void	storage_dispatch_control(struct channel *, struct imsg *);
static void	storage_worker_closed(struct channel *);
static void	storage_round_end(void *);
static void	storage_queue_poll(void *);
static void	storage_cluster_poll(void *);
static int	admit(const char *, const char *, const char *,
		    const char **, char *, size_t);
static void	storage_dispatch_jobs(struct channel *, struct imsg *);
static void	follow_drop(struct wchan *, uint32_t);
static void	job_flushed(struct req *);

/* The identity a parent names: empty, or hex SHA-256. */
static int
identity_valid(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0)
		return (1);
	if (len != IDENTITY_LEN)
		return (0);
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return (0);
	return (1);
}

/* A worker's channel by the id the parent gave it. */
static struct wchan *
wchan_find(uint32_t wid)
{
	struct wchan	*w;

	TAILQ_FOREACH(w, &st.chans, entry)
		if (!w->control && w->wid == wid)
			return (w);
	return (NULL);
}

/* Read a worker only while its identity is known and it keeps up. */
static void
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
static void
wchan_drop(struct wchan *w)
{
	if (w->gone)
		return;
	w->gone = 1;
	channel_shutdown(&w->ch);
	if (st.ctl == w)
		st.ctl = NULL;
	if (st.jobs == w)
		st.jobs = NULL;
	follow_drop(w, 0);
	TAILQ_REMOVE(&st.chans, w, entry);
	TAILQ_INSERT_TAIL(&st.dead, w, entry);
	/* Never free here: the channel code may still look at it. */
	if (!ev_timer_pending(&st.round_end))
		ev_timer_add(&st.round_end, 0);
}

/* Free what was dropped and is no longer named. */
static void
wchan_reap(void)
{
	struct wchan	*w, *next;
	struct export	*ex;

	for (w = TAILQ_FIRST(&st.dead); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->refs > 0)
			continue;
		while ((ex = TAILQ_FIRST(&w->exports)) != NULL) {
			TAILQ_REMOVE(&w->exports, ex, entry);
			free(ex);
		}
		TAILQ_REMOVE(&st.dead, w, entry);
		free(w);
	}
}

/* A new channel of a worker (wid, identity) or of control. */
static struct wchan *
wchan_new(int fd, uint32_t wid, const char *identity, int control, int jobs)
{
	struct wchan	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s", __func__);
	w->wid = wid;
	w->control = control;
	w->jobs = jobs;
	(void)strlcpy(w->identity, identity, sizeof(w->identity));
	TAILQ_INIT(&w->exports);
	TAILQ_INSERT_TAIL(&st.chans, w, entry);
	channel_init(&w->ch, fd, jobs ? storage_dispatch_jobs : control ?
	    storage_dispatch_control : storage_dispatch_worker,
	    storage_worker_closed, w);
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
static void
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

/* Queue a write of this round; group_flush answers it. */
static struct req *
req_new(struct wchan *w, uint32_t type, uint32_t id)
{
	struct req	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatal("%s", __func__);
	r->w = w;
	r->type = type;
	r->id = id;
	w->refs++;
	TAILQ_INSERT_TAIL(&st.round, r, entry);
	if (!ev_timer_pending(&st.round_end))
		ev_timer_add(&st.round_end, 0);
	return (r);
}

/* An answered write; its channel may go once nothing names it. */
static void
req_free(struct req *r)
{
	TAILQ_REMOVE(&st.round, r, entry);
	r->w->refs--;
	free(r->conv);
	free(r);
}

/* The client asked for what is not there: say so after the round. */
static void
req_refuse(struct req *r, const char *code, const char *fmt, ...)
{
	va_list	 ap;

	r->refused = code;
	va_start(ap, fmt);
	(void)vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* Put a write in the round's transaction, opening it if need be. */
static int
group_join(void)
{
	if (st.failed)
		return (-1);
	if (st.writes == 0 && db_begin(st.db) == -1) {
		st.failed = 1;
		return (-1);
	}
	st.writes++;
	/* A write that nobody waits for is committed at the round's end
	   all the same. */
	if (!ev_timer_pending(&st.round_end))
		ev_timer_add(&st.round_end, 0);
	return (0);
}

/* A failed statement may have cost the transaction: then all of it. */
static void
group_fail_if_lost(void)
{
	if (!db_intx(st.db))
		st.failed = 1;
}

/* IMSG_STORAGE_ERROR: u32 id, str text. */
static void
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
static void
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
static int
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

/* IMSG_STORAGE_DELETED: u32 id, u64 conversation, u64 messages. */
static void
answer_deleted(struct wchan *w, uint32_t id, uint64_t conv, uint64_t n)
{
	struct ibuf	*b;

	if (w->gone)
		return;
	if ((b = channel_create(&w->ch, IMSG_STORAGE_DELETED, 0, 32)) ==
	    NULL || ibuf_add_u32(b, id) == -1 || ibuf_add_u64(b, conv) == -1 ||
	    ibuf_add_u64(b, n) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_IDENTITY: u32 id, str identity (control only). */
static void
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
static void
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

/* IMSG_STORAGE_LINE: u32 id, str line. */
static int
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

/* IMSG_STORAGE_ADMIT: u32 id, str code, str text. */
static void
answer_admit(struct req *r)
{
	struct ibuf	*b;

	if (r->w->gone)
		return;
	if ((b = channel_create(&r->w->ch, IMSG_STORAGE_ADMIT, 0,
	    strlen(r->text) + 64)) == NULL || ibuf_add_u32(b, r->id) == -1 ||
	    ibuf_add_str(b, r->code != NULL ? r->code : "") == -1 ||
	    ibuf_add_str(b, r->text) == -1)
		fatal("%s", __func__);
	channel_send(&r->w->ch, b);
}

/* A time for an operator's table: ISO 8601 UTC, or "never". */
static void
iso(int64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)strlcpy(buf, "never", len);
}

/* Log an event in the round's transaction, which nobody waits for. */
static void
event_store(int64_t when, const char *identity, const char *text)
{
	if (group_join() == -1)
		return;
	if (!ev_timer_pending(&st.round_end))
		ev_timer_add(&st.round_end, 0);
	if (db_event_add(st.db, when, identity, text,
	    st.conf->g.events_keep) == -1)
		group_fail_if_lost();
}

/* An event of storage's own (a limit hit, a token change, a purge). */
static void
event_add(const char *identity, const char *fmt, ...)
{
	char	 text[512];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	event_store((int64_t)time(NULL), identity, text);
}

/* One stored row to the worker that asked. */
static int
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

/* The bound of what one HISTORY or CONTEXT answer may carry. */
static size_t
read_bound(void)
{
	uint64_t	 m = st.conf->g.memory_limit;

	if (m == 0 || m > SIZE_MAX / 2)
		return (SIZE_MAX / 2);
	return ((size_t)m);
}

/*
 * Commit the open transaction, then answer every write waiting for
 * it, in the order they came. Nobody hears STORED before the COMMIT
 * succeeded; if it failed, every writer of the group hears ERROR.
 */
static void
group_flush(void)
{
	struct req	*r;

	if (st.writes > 0) {
		if (!st.failed && db_commit(st.db) == -1)
			st.failed = 1;
		if (st.failed) {
			db_rollback(st.db);
			log_warnx("transaction of %d writes lost", st.writes);
		}
	}
	while ((r = TAILQ_FIRST(&st.round)) != NULL) {
		if (r->refused != NULL)
			answer_refused(r->w, r->id, r->refused, r->why);
		else if (r->error != NULL)
			answer_error(r->w, r->id, r->error);
		else if (st.failed)
			answer_error(r->w, r->id, "database error");
		else if (r->conv != NULL)
			(void)answer_conv(r->w, r->id, r->conv);
		else if (r->type == IMSG_WORKER_CONV_DELETE)
			answer_deleted(r->w, r->id, (uint64_t)r->rowid,
			    r->count);
		else if (r->type == IMSG_CTL_PURGE) {
			answer_identity(r->w, r->id, r->identity);
			answer_u64(r->w, IMSG_STORAGE_END, r->id,
			    (uint64_t)r->rowid);
			log_info("purged %lld rows of identity %s",
			    (long long)r->rowid, r->identity);
		} else if (r->type == IMSG_CTL_TOKEN_REVOKE) {
			answer_identity(r->w, r->id, r->identity);
			answer_u64(r->w, IMSG_STORAGE_END, r->id, 1);
		} else if (r->type == IMSG_CTL_TOKEN_ADD)
			answer_u64(r->w, IMSG_STORAGE_END, r->id,
			    (uint64_t)r->rowid);
		else if (r->type == IMSG_WORKER_ADMIT)
			answer_admit(r);
		else if (r->job != 0)
			job_flushed(r);
		else
			answer_u64(r->w, IMSG_STORAGE_STORED, r->id,
			    (uint64_t)r->rowid);
		req_free(r);
	}
	st.writes = 0;
	st.failed = 0;
	if (st.sync_pending) {
		st.sync_pending = 0;
		if (db_sync(st.db, st.sync) == -1)
			log_warnx("database sync level unchanged");
	}
}


/*
 * Before a read, or a transaction of its own: commit and answer what
 * the round holds, writes nobody waits for (events) included.
 */
static void
round_settle(void)
{
	if (!TAILQ_EMPTY(&st.round) || st.writes > 0)
		group_flush();
}
/*
 * A read sees exactly the writes that came before it: what is pending
 * is committed and answered first, then the read runs, outside any
 * transaction, and is answered at once.
 */
static void
run_read(struct wchan *w, uint32_t type, uint32_t id, int64_t conv,
    uint32_t kind, uint32_t count)
{
	struct item_arg	 ia;
	uint64_t	 n = 0;
	int		 rv, cut = 0;

	round_settle();
	ia.w = w;
	ia.id = id;
	switch (type) {
	case IMSG_WORKER_HISTORY:
		rv = db_history(st.db, w->identity, conv, kind, count,
		    read_bound(), answer_item, &ia, &n, &cut);
		if (rv == 0 && cut == DB_CUT_BYTES)
			log_info("worker %u: history cut to %llu items,"
			    " %zu bytes", w->wid, (unsigned long long)n,
			    read_bound());
		break;
	case IMSG_WORKER_CONTEXT:
		rv = db_context(st.db, w->identity, conv,
		    STORAGE_CONTEXT_MAX, read_bound(), answer_item, &ia, &n,
		    &cut);
		if (rv == 0 && cut != 0)
			log_info("worker %u: context cut to its newest %llu"
			    " items (bounds %d items, %zu bytes)", w->wid,
			    (unsigned long long)n, STORAGE_CONTEXT_MAX,
			    read_bound());
		break;
	case IMSG_WORKER_COUNT:
		rv = db_count(st.db, w->identity, &n);
		break;
	default:
		fatalx("%s: %s", __func__, imsg_type_name(type));
	}
	if (rv == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, n);
}

/* The round is over: commit, answer, and tidy up. */
static void
storage_round_end(void *arg)
{
	struct wchan	*w;

	(void)arg;
	group_flush();
	/* Stop reading a worker that does not read its answers. */
	TAILQ_FOREACH(w, &st.chans, entry) {
		if (!w->full && w->ch.ibuf.queued > STORAGE_QUEUE_HIGH) {
			w->full = 1;
			wchan_update(w);
		}
		if (w->full && !ev_timer_pending(&st.queue_poll))
			ev_timer_add(&st.queue_poll, STORAGE_QUEUE_POLL);
	}
	wchan_reap();
}

/* One row of an export to control. */
static int
export_row(const struct db_item *item, void *arg)
{
	struct export	*ex = arg;
	struct item_arg	 ia;

	ia.w = ex->w;
	ia.id = ex->id;
	if (answer_item(item, &ia) == -1)
		return (-1);
	ex->count++;
	return (0);
}

/*
 * Send exports a page at a time while control reads them, so that no
 * export needs the whole history in memory; the poll timer comes
 * back for the rest.
 */
static void
export_pump(struct wchan *w)
{
	struct export	*ex;
	int		 r;

	while (!w->gone && (ex = TAILQ_FIRST(&w->exports)) != NULL) {
		if (w->ch.ibuf.queued > EXPORT_QUEUE_HIGH) {
			if (!ev_timer_pending(&st.queue_poll))
				ev_timer_add(&st.queue_poll,
				    STORAGE_QUEUE_POLL);
			return;
		}
		/* Reads run outside the write transaction. */
		round_settle();
		r = db_export(st.db, ex->identity, 0, ex->section, &ex->after,
		    EXPORT_PAGE_ITEMS, EXPORT_PAGE_BYTES, export_row, ex);
		if (r == 1)
			continue;
		if (r == -1)
			answer_error(w, ex->id, "database error");
		else if (ex->section == 0) {
			ex->section = 1;
			ex->after = 0;
			continue;
		} else {
			answer_u64(w, IMSG_STORAGE_END, ex->id, ex->count);
			log_info("exported %llu rows of identity %s",
			    (unsigned long long)ex->count, ex->identity);
		}
		TAILQ_REMOVE(&w->exports, ex, entry);
		free(ex);
	}
}

/* Resume the workers whose answers have drained. */
static void
storage_queue_poll(void *arg)
{
	struct wchan	*w, *next;
	int		 again = 0;

	(void)arg;
	for (w = TAILQ_FIRST(&st.chans); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (!w->full)
			continue;
		if (w->ch.ibuf.queued > STORAGE_QUEUE_HIGH / 2) {
			again = 1;
			continue;
		}
		w->full = 0;
		wchan_update(w);
	}
	if (st.ctl != NULL)
		export_pump(st.ctl);
	if (again && !ev_timer_pending(&st.queue_poll))
		ev_timer_add(&st.queue_poll, STORAGE_QUEUE_POLL);
	wchan_reap();
}

/*
 * IMSG_WORKER_STORE: u32 id, u64 key, u32 role, str model, u64 tokens,
 * data text. Returns why it is malformed, or NULL.
 */
static const char *
worker_store(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model, *text;
	uint64_t	 key, tokens, conv;
	uint32_t	 id, role;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	key = ir_u64(&ir);
	conv = ir_u64(&ir);
	role = ir_u32(&ir);
	model = ir_str(&ir);
	tokens = ir_u64(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1)
		return ("length");
	if (conv > INT64_MAX)
		return ("conversation");
	if (role != ROLE_USER && role != ROLE_MODEL)
		return ("role");
	if (strlen(model) >= MODEL_MAX_LEN ||
	    !utf8_valid(model, strlen(model)))
		return ("model");
	if (tokens > INT64_MAX)
		return ("tokens");
	r = req_new(w, imsg->hdr.type, id);
	if (!db_text_valid(text, len)) {
		log_warnx("worker %u: message not stored: too long, not"
		    " UTF-8 or with NUL", w->wid);
		r->error = "invalid text";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	switch (db_store(st.db, w->identity, (int64_t)conv, key, role, model,
	    tokens, text, len, (int64_t)time(NULL), &r->rowid)) {
	case -1:
		r->error = "database error";
		group_fail_if_lost();
		break;
	case 1:
		log_debug("worker %u: request %u resent, already row %lld",
		    w->wid, id, (long long)r->rowid);
		break;
	}
	return (NULL);
}

/* IMSG_WORKER_SUMMARY: u32 id, u64 key, data text. */
static const char *
worker_summary(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*text;
	uint64_t	 key, conv;
	uint32_t	 id;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	key = ir_u64(&ir);
	conv = ir_u64(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1)
		return ("length");
	if (conv > INT64_MAX)
		return ("conversation");
	r = req_new(w, imsg->hdr.type, id);
	if (len == 0 || !db_text_valid(text, len)) {
		log_warnx("worker %u: summary not stored: empty, too long,"
		    " not UTF-8 or with NUL", w->wid);
		r->error = "invalid text";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	/* Both statements or neither: a failure loses the transaction. */
	if (db_summary(st.db, w->identity, (int64_t)conv, key, text, len,
	    (int64_t)time(NULL), st.conf->g.summaries_keep, &r->rowid) == -1)
		st.failed = 1;
	return (NULL);
}

/* IMSG_WORKER_HISTORY: u32 id, u64 conversation, u32 kind, u32 count;
 * _COUNT: u32 id. */
static const char *
worker_read(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	uint64_t	 conv = 0;
	uint32_t	 id, kind = HISTORY_MESSAGES, count = 0;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	if (imsg->hdr.type == IMSG_WORKER_HISTORY) {
		conv = ir_u64(&ir);
		kind = ir_u32(&ir);
		count = ir_u32(&ir);
	}
	if (ir_end(&ir) == -1)
		return ("length");
	if (kind != HISTORY_MESSAGES && kind != HISTORY_SUMMARIES)
		return ("kind");
	if (conv > INT64_MAX)
		return ("conversation");
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	run_read(w, imsg->hdr.type, id, (int64_t)conv, kind, count);
	return (NULL);
}

/*
 * Conversations. A worker names them by id or name; storage looks
 * them up among its identity's only, so another identity's id is as
 * unknown as one that does not exist.
 */

/* A conversation reference the client may have typed. */
static int
conv_ref_ok(const char *ref)
{
	return (strlen(ref) <= CONV_NAME_MAX);
}

/* A text field of a conversation, bounded and UTF-8. */
static int
conv_field_ok(const char *s, size_t max)
{
	return (strlen(s) < max && utf8_valid(s, strlen(s)));
}

/* Make the identity's first conversation, in a transaction of its own. */
static int
conv_make(struct wchan *w, const char *model, struct db_conv *c)
{
	if (db_begin(st.db) == -1)
		return (-1);
	if (db_conv_new(st.db, w->identity, "", model, "", "",
	    (int64_t)time(NULL), c) != 0) {
		db_rollback(st.db);
		return (-1);
	}
	if (db_commit(st.db) == -1)
		return (-1);
	log_debug("worker %u: first conversation %lld", w->wid,
	    (long long)c->id);
	return (DB_FOUND);
}

/* RESUME: the conversation is in use now, in a transaction of its own. */
static int
conv_use(struct db_conv *c)
{
	int64_t	 now = (int64_t)time(NULL);

	if (db_begin(st.db) == -1)
		return (-1);
	if (db_conv_touch(st.db, c->id, now) == -1) {
		db_rollback(st.db);
		return (-1);
	}
	if (db_commit(st.db) == -1)
		return (-1);
	if (now > c->last_used)
		c->last_used = now;
	return (DB_FOUND);
}

/* One conversation of a list to the worker. */
static int
conv_item(const struct db_conv *c, void *arg)
{
	struct item_arg	*ia = arg;

	return (answer_conv(ia->w, ia->id, c));
}

/*
 * IMSG_WORKER_CONTEXT: u32 id, str conversation, str model. That
 * conversation (or the most recently used, made if there is none)
 * comes first, then its context as ITEMs, then END.
 */
static const char *
worker_context(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct item_arg	 ia;
	struct db_conv	*c;
	const char	*ref, *model;
	uint64_t	 n = 0;
	uint32_t	 id;
	int		 r, cut = 0;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	ref = ir_str(&ir);
	model = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (!conv_field_ok(model, MODEL_MAX_LEN))
		return ("model");
	round_settle();
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	if (*ref == '\0') {
		if ((r = db_conv_last(st.db, w->identity, c)) == DB_NONE)
			r = conv_make(w, model, c);
	} else if (!conv_ref_ok(ref))
		r = DB_NONE;
	else if ((r = db_conv_find(st.db, w->identity, ref, c)) == DB_FOUND)
		r = conv_use(c);
	if (r == -1)
		answer_error(w, id, "database error");
	else if (r == DB_NONE)
		answer_refused(w, id, "not-found", "no such conversation");
	else if (answer_conv(w, id, c) == 0) {
		ia.w = w;
		ia.id = id;
		if (db_context(st.db, w->identity, c->id, STORAGE_CONTEXT_MAX,
		    read_bound(), answer_item, &ia, &n, &cut) == -1)
			answer_error(w, id, "database error");
		else
			answer_u64(w, IMSG_STORAGE_END, id, n);
		if (cut != 0)
			log_info("worker %u: context cut to its newest %llu"
			    " items", w->wid, (unsigned long long)n);
	}
	free(c);
	return (NULL);
}

/* IMSG_WORKER_CONV_NEW: u32 id, str name, str model, str role,
 * str system; answered CONV after the commit. */
static const char *
worker_conv_new(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*name, *model, *role, *system;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	name = ir_str(&ir);
	model = ir_str(&ir);
	role = ir_str(&ir);
	system = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (*name != '\0' && !conv_name_valid(name))
		return ("name");
	if (!conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX))
		return ("field");
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	if ((r->conv = malloc(sizeof(*r->conv))) == NULL)
		fatal("%s", __func__);
	switch (db_conv_new(st.db, w->identity, name, model, system, role,
	    (int64_t)time(NULL), r->conv)) {
	case 0:
		break;
	case DB_EXISTS:
		req_refuse(r, "bad-argument", "a conversation named %s"
		    " exists", name);
		break;
	default:
		r->error = "database error";
		group_fail_if_lost();
		break;
	}
	return (NULL);
}

/* IMSG_WORKER_CONV_LIST: u32 id, u32 count; CONV..., END. */
static const char *
worker_conv_list(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct item_arg	 ia;
	uint64_t	 n = 0;
	uint32_t	 id, count;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	count = ir_u32(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	round_settle();
	ia.w = w;
	ia.id = id;
	if (db_conv_list(st.db, w->identity, count, conv_item, &ia,
	    &n) == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, n);
	return (NULL);
}

/* IMSG_WORKER_CONV_SET: u32 id, u64 conversation, u32 mask, str model,
 * str role, str system; STORED with the conversation's id. */
static const char *
worker_conv_set(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model, *role, *system;
	uint64_t	 conv;
	uint32_t	 id, mask;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	conv = ir_u64(&ir);
	mask = ir_u32(&ir);
	model = ir_str(&ir);
	role = ir_str(&ir);
	system = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (conv > INT64_MAX ||
	    (mask & ~(CONV_MODEL | CONV_SYSTEM | CONV_ROLE)) != 0)
		return ("conversation");
	if (!conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX))
		return ("field");
	r = req_new(w, imsg->hdr.type, id);
	r->rowid = (int64_t)conv;
	if (group_join() == -1)
		return (NULL);
	switch (db_conv_set(st.db, w->identity, (int64_t)conv, (int)mask,
	    model, system, role, (int64_t)time(NULL))) {
	case 1:
		break;
	case 0:
		req_refuse(r, "not-found", "no such conversation");
		break;
	default:
		r->error = "database error";
		group_fail_if_lost();
		break;
	}
	return (NULL);
}

/* IMSG_WORKER_CONV_DELETE: u32 id, str conversation; DELETED. */
static const char *
worker_conv_delete(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	struct db_conv	*c;
	const char	*ref;
	uint32_t	 id;
	int		 found;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	ref = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	found = conv_ref_ok(ref) ? db_conv_find(st.db, w->identity, ref, c) :
	    DB_NONE;
	if (found == DB_FOUND)
		found = db_conv_delete(st.db, w->identity, c->id, &r->count);
	if (found == 1) {
		r->rowid = c->id;
		log_debug("worker %u: conversation %lld deleted", w->wid,
		    (long long)c->id);
	} else if (found == DB_NONE)
		req_refuse(r, "not-found", "no such conversation");
	else {
		r->error = "database error";
		st.failed = 1;
	}
	free(c);
	return (NULL);
}

/* One match of a search to the worker. */
static int
answer_match(const struct db_match *m, void *arg)
{
	struct item_arg	*ia = arg;
	struct ibuf	*b;

	if (ia->w->gone)
		return (-1);
	if ((b = channel_create(&ia->w->ch, IMSG_STORAGE_MATCH, 0,
	    m->len + 48)) == NULL || ibuf_add_u32(b, ia->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)m->conv) == -1 ||
	    ibuf_add_u64(b, (uint64_t)m->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)m->time) == -1 ||
	    ibuf_add_u32(b, m->role) == -1 ||
	    ibuf_add_data(b, m->text, m->len) == -1)
		fatal("%s", __func__);
	return (channel_send(&ia->w->ch, b));
}

/* IMSG_WORKER_SEARCH: u32 id, str words; MATCH..., END. */
static const char *
worker_search(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct item_arg	 ia;
	const char	*words;
	uint64_t	 n = 0;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	words = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (*words == '\0' || strlen(words) > DB_SEARCH_MAX ||
	    !utf8_valid(words, strlen(words))) {
		answer_refused(w, id, "bad-argument", "search words must be"
		    " 1 to " DB_SEARCH_MAX_S " bytes of UTF-8");
		return (NULL);
	}
	round_settle();
	ia.w = w;
	ia.id = id;
	if (db_search(st.db, w->identity, words, STORAGE_SEARCH_MAX,
	    answer_match, &ia, &n) == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, n);
	return (NULL);
}

/* IMSG_WORKER_EXPORT: u32 id, str conversation; CONV, ITEM..., END. */
static const char *
worker_export(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct item_arg	 ia;
	struct db_conv	*c;
	const char	*ref;
	int64_t		 after;
	uint64_t	 n = 0;
	uint32_t	 id;
	int		 r, section;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	ref = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	round_settle();
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	r = conv_ref_ok(ref) ? db_conv_find(st.db, w->identity, ref, c) :
	    DB_NONE;
	if (r == -1)
		answer_error(w, id, "database error");
	else if (r == DB_NONE)
		answer_refused(w, id, "not-found", "no such conversation");
	else if (answer_conv(w, id, c) == 0) {
		ia.w = w;
		ia.id = id;
		for (section = 0; r != -1 && section < 2; section++) {
			after = 0;
			while ((r = db_export(st.db, w->identity, c->id,
			    section, &after, EXPORT_PAGE_ITEMS,
			    EXPORT_PAGE_BYTES, answer_item, &ia)) == 1)
				;
		}
		if (r == -1)
			answer_error(w, id, "database error");
		else {
			n = (uint64_t)c->messages;
			answer_u64(w, IMSG_STORAGE_END, id, n);
		}
	}
	free(c);
	return (NULL);
}

/*
 * Jobs. A worker submits (a write, answered after its COMMIT with the
 * job's id), lists, follows and kills; the provider, on its own
 * channel, learns of queued jobs, starts them, and sends their output
 * as it streams: each chunk is a write of the round, passed at once to
 * whoever follows the job. A job's end is committed before anyone
 * hears of it, so `. OK' after RESULT means it is stored.
 */

/* A line for bridgectl monitor, through the parent. */
static void
job_event(const char *fmt, ...)
{
	struct ibuf	*b;
	va_list		 ap;
	char		 line[256];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((b = channel_create(parent_chan, IMSG_STORAGE_EVENT, 0,
	    strlen(line) + 8)) == NULL || ibuf_add_str(b, line) == -1) {
		ibuf_free(b);
		return;
	}
	channel_send(parent_chan, b);
}

/*
 * How many jobs of an identity may run at once: the one place that
 * decides it, for the provider, which runs them. The limits block or
 * the identity's issued token says; no limit is as many as may run.
 */
static uint32_t
jobs_limit(const char *identity)
{
	struct limits	 lim;

	if (db_limits(st.db, identity, &st.conf->g.limits, &lim, NULL,
	    0) == -1)
		lim = st.conf->g.limits;
	if (lim.jobs == 0 || lim.jobs > JOBS_LIMIT_MAX)
		return (JOBS_LIMIT_MAX);
	return ((uint32_t)lim.jobs);
}

/* Tell the provider about a job: u64 id; a queued one's identity and
   limit. */
static void
jobs_tell(uint32_t type, int64_t job, const char *identity)
{
	struct ibuf	*b;

	if (st.jobs == NULL || st.jobs->gone)
		return;		/* it lists them when it comes back */
	if ((b = channel_create(&st.jobs->ch, type, 0, 96)) == NULL ||
	    ibuf_add_u64(b, (uint64_t)job) == -1 ||
	    (identity != NULL && (ibuf_add_str(b, identity) == -1 ||
	    ibuf_add_u32(b, jobs_limit(identity)) == -1)))
		fatal("%s", __func__);
	channel_send(&st.jobs->ch, b);
}

/* A model name as a client may give it: printable, no blanks. */
static int
job_model_valid(const char *m, int empty_ok)
{
	size_t	 i, len = strlen(m);

	if (len == 0)
		return (empty_ok);
	if (len >= MODEL_MAX_LEN)
		return (0);
	for (i = 0; i < len; i++)
		if ((unsigned char)m[i] <= 0x20 || m[i] == 0x7f)
			return (0);
	return (1);
}

/* The model(s) of a job as its status line names them. */
static void
job_models(const struct jdb_job *job, char *buf, size_t len)
{
	if (job->model_b[0] != '\0')
		snprintf(buf, len, "%s,%s", job->model, job->model_b);
	else
		strlcpy(buf, job->model, len);
}

/* IMSG_STORAGE_JOB_END: how a job ended, for its status line. */
static void
answer_job_end(struct wchan *w, uint32_t id, const struct jdb_job *job)
{
	struct ibuf	*b;
	char		 models[2 * MODEL_MAX_LEN];

	if (w->gone)
		return;
	job_models(job, models, sizeof(models));
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_END, 0,
	    512)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job->state) == -1 ||
	    ibuf_add_str(b, models) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tin) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tout) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->ms) == -1 ||
	    ibuf_add_str(b, job->finish) == -1 ||
	    ibuf_add_str(b, job->code) == -1 ||
	    ibuf_add_str(b, job->text) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
}

/* IMSG_STORAGE_JOB_CHUNK: output to one follower. */
static int
answer_chunk(struct wchan *w, uint32_t id, int kind, const char *text,
    size_t len)
{
	struct ibuf	*b;

	if (w->gone)
		return (-1);
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_CHUNK, 0,
	    len + 16)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)kind) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	return (channel_send(&w->ch, b));
}

/* Stop following: one request of a channel, or all of its (id 0). */
static void
follow_drop(struct wchan *w, uint32_t id)
{
	struct follower	*f, *next;

	for (f = TAILQ_FIRST(&st.followers); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->w != w || (id != 0 && f->id != id))
			continue;
		TAILQ_REMOVE(&st.followers, f, entry);
		w->refs--;
		free(f);
	}
}

/* A job ended (or restarts): its followers hear how, and stop. */
static void
followers_end(const struct jdb_job *job)
{
	struct follower	*f, *next;

	for (f = TAILQ_FIRST(&st.followers); f != NULL; f = next) {
		next = TAILQ_NEXT(f, entry);
		if (f->job != job->id)
			continue;
		answer_job_end(f->w, f->id, job);
		TAILQ_REMOVE(&st.followers, f, entry);
		f->w->refs--;
		free(f);
	}
}

/* Commit what is pending: chunks wait for no answer, but count. */
static void
jobs_settle(void)
{
	if (!TAILQ_EMPTY(&st.round) || st.writes > 0)
		group_flush();
}

/* A job's state now, read after what is pending was committed. */
static int
job_load(int64_t id, struct jdb_job *job)
{
	jobs_settle();
	return (jdb_get(st.jdb, id, job));
}

/*
 * A dialogue is a conversation of its own, dialogue-<job id> (unnamed
 * if the identity has one of that name already), that starts with the
 * opening; each turn is stored in it as it completes.
 */
static int
dialogue_begin(const char *identity, int64_t job, const char *model,
    const char *text, size_t len)
{
	struct db_conv	 c;
	char		 name[CONV_NAME_MAX + 1];
	int64_t		 row, now = (int64_t)time(NULL);
	int		 rv;

	snprintf(name, sizeof(name), "dialogue-%lld", (long long)job);
	if ((rv = db_conv_new(st.db, identity, name, model, "", "", now,
	    &c)) == DB_EXISTS)
		rv = db_conv_new(st.db, identity, "", model, "", "", now, &c);
	if (rv != 0 || db_store(st.db, identity, c.id, arc4random(),
	    ROLE_USER, model, 0, text, len, now, &row) == -1 ||
	    jdb_dialogue_conv(st.jdb, job, c.id) == -1) {
		log_warnx("job %lld: cannot begin its conversation",
		    (long long)job);
		return (-1);
	}
	return (0);
}

/*
 * IMSG_WORKER_SUBMIT: u32 id, u64 key, u32 kind, u32 turns, str model,
 * str model B, data prompt.
 */
static const char *
worker_submit(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model, *model_b, *text, *code;
	char		 why[LIMITS_TEXT_MAX];
	uint64_t	 key, conv;
	uint32_t	 id, kind, turns;
	size_t		 len;
	int		 rv;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	key = ir_u64(&ir);
	conv = ir_u64(&ir);
	kind = ir_u32(&ir);
	turns = ir_u32(&ir);
	model = ir_str(&ir);
	model_b = ir_str(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1)
		return ("length");
	if (kind >= JOB_KIND_MAX || !job_model_valid(model, 0) ||
	    !job_model_valid(model_b, kind == JOB_SUBMIT) ||
	    (kind == JOB_SUBMIT && (turns != 1 || model_b[0] != '\0')) ||
	    (kind == JOB_DIALOGUE && (turns < 2 || turns > JOB_TURNS_MAX)) ||
	    conv > INT64_MAX || (kind == JOB_DIALOGUE && conv != 0))
		return ("kind, turns, models or conversation");
	r = req_new(w, imsg->hdr.type, id);
	if (len == 0 || !db_text_valid(text, len)) {
		r->error = "bad-argument the prompt cannot be stored";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	/* Within the transaction: a round of SUBMITs counts itself. */
	if (jdb_waiting(st.jdb, w->identity) >= JOB_WAITING_MAX) {
		snprintf(r->errbuf, sizeof(r->errbuf), "busy %d jobs of "
		    "yours are queued or running; wait, or KILL one",
		    JOB_WAITING_MAX);
		r->error = r->errbuf;
		return (NULL);
	}
	/* A prompt is answered in a conversation of the identity's own. */
	if (kind == JOB_SUBMIT && (rv = db_conv_owned(st.db, w->identity,
	    (int64_t)conv)) != 1) {
		if (rv == 0)
			req_refuse(r, "not-found", "no such conversation");
		else {
			r->error = "database error";
			group_fail_if_lost();
		}
		return (NULL);
	}
	/* A job is held to the identity's limits as a prompt is. */
	if ((rv = admit(w->identity, model, model_b, &code, why,
	    sizeof(why))) != 0) {
		if (rv == 1)
			req_refuse(r, code, "%s", why);
		else
			r->error = "database error";
		return (NULL);
	}
	rv = jdb_submit(st.jdb, w->identity, (int64_t)conv, key, kind, turns,
	    model, model_b, text, len, (int64_t)time(NULL), &r->job);
	if (rv == 0 && kind == JOB_DIALOGUE &&
	    dialogue_begin(w->identity, r->job, model, text, len) == -1) {
		/* Both or neither: the job goes with the transaction. */
		st.failed = 1;
		return (NULL);
	}
	if (rv == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	r->dup = rv == 1;
	r->rowid = r->job;
	(void)strlcpy(r->identity, w->identity, sizeof(r->identity));
	return (NULL);
}

/* One line of JOBS or show jobs. */
static int
answer_job_line(const struct jdb_job *job, void *arg)
{
	struct item_arg	*ia = arg;
	struct ibuf	*b;
	char		 models[2 * MODEL_MAX_LEN];

	if (ia->w->gone)
		return (-1);
	job_models(job, models, sizeof(models));
	if ((b = channel_create(&ia->w->ch, IMSG_STORAGE_JOB_LINE, 0,
	    512)) == NULL || ibuf_add_u32(b, ia->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job->state) == -1 ||
	    ibuf_add_str(b, models) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->created) == -1 ||
	    ibuf_add_u64(b, (uint64_t)job->tout) == -1 ||
	    ibuf_add_str(b, job->client) == -1 ||
	    ibuf_add_str(b, job->head) == -1)
		fatal("%s", __func__);
	return (channel_send(&ia->w->ch, b));
}

/* One stored chunk of a job to the client that asked for RESULT. */
static int
answer_stored_chunk(int kind, const char *text, size_t len, void *arg)
{
	struct item_arg	*ia = arg;

	return (answer_chunk(ia->w, ia->id, kind, text, len));
}

/* RESULT: the head, what is stored, then the end or live output. */
static void
job_result(struct wchan *w, uint32_t id, int64_t jid)
{
	struct follower	*f;
	struct item_arg	 ia;
	struct jdb_job	 job;
	struct ibuf	*b;
	char		 err[64];

	switch (job_load(jid, &job)) {
	case -1:
		answer_error(w, id, "database error");
		return;
	case 1:
		if (strcmp(job.client, w->identity) == 0)
			break;
		/* FALLTHROUGH */
	default:
		snprintf(err, sizeof(err), "not-found no job %lld",
		    (long long)jid);
		answer_error(w, id, err);
		return;
	}
	if ((b = channel_create(&w->ch, IMSG_STORAGE_JOB_HEAD, 0,
	    32)) == NULL || ibuf_add_u32(b, id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)jid) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.state) == -1)
		fatal("%s", __func__);
	channel_send(&w->ch, b);
	ia.w = w;
	ia.id = id;
	if (jdb_chunks(st.jdb, jid, answer_stored_chunk, &ia) == -1) {
		answer_error(w, id, "database error");
		return;
	}
	if (job.state != JOB_QUEUED && job.state != JOB_RUNNING) {
		answer_job_end(w, id, &job);
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		fatal("%s", __func__);
	f->w = w;
	f->id = id;
	f->job = jid;
	w->refs++;
	TAILQ_INSERT_TAIL(&st.followers, f, entry);
}

/*
 * IMSG_WORKER_JOBS, IMSG_CTL_JOBS: u32 id, u32 count;
 * IMSG_WORKER_RESULT: u32 id, u64 job; IMSG_WORKER_UNFOLLOW: u32 id.
 */
static const char *
worker_job_read(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct item_arg	 ia;
	uint64_t	 jid = 0, n;
	uint32_t	 id, count = 0, type = imsg->hdr.type;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	if (type == IMSG_WORKER_JOBS || type == IMSG_CTL_JOBS)
		count = ir_u32(&ir);
	else if (type == IMSG_WORKER_RESULT)
		jid = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	switch (type) {
	case IMSG_WORKER_UNFOLLOW:
		follow_drop(w, id);
		return (NULL);
	case IMSG_WORKER_RESULT:
		job_result(w, id, (int64_t)jid);
		return (NULL);
	}
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	jobs_settle();
	ia.w = w;
	ia.id = id;
	if (jdb_list(st.jdb, type == IMSG_CTL_JOBS ? NULL : w->identity,
	    count, answer_job_line, &ia, &n) == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, n);
	return (NULL);
}

/*
 * IMSG_WORKER_KILL (this identity's job), IMSG_CTL_JOBKILL (any): u32
 * id, u64 job. A queued or running job is cancelled; it is a write,
 * answered after its COMMIT.
 */
static const char *
job_kill(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct jdb_job	 job;
	struct req	*r;
	uint64_t	 jid;
	uint32_t	 id;
	int		 rv;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	jid = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	rv = job_load((int64_t)jid, &job);
	r = req_new(w, imsg->hdr.type, id);
	r->job = (int64_t)jid;
	r->rowid = (int64_t)jid;
	if (rv == -1) {
		r->error = "database error";
		return (NULL);
	}
	if (rv == 0 || (!w->control && strcmp(job.client, w->identity) != 0)) {
		snprintf(r->errbuf, sizeof(r->errbuf), "not-found no job %llu",
		    (unsigned long long)jid);
		r->error = r->errbuf;
		return (NULL);
	}
	if (job.state != JOB_QUEUED && job.state != JOB_RUNNING) {
		snprintf(r->errbuf, sizeof(r->errbuf), "bad-argument job %llu "
		    "is %s already", (unsigned long long)jid,
		    job_state_name(job.state));
		r->error = r->errbuf;
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	job.state = JOB_CANCELLED;
	strlcpy(job.code, "cancelled", sizeof(job.code));
	snprintf(job.text, sizeof(job.text), "job %llu cancelled",
	    (unsigned long long)jid);
	if (jdb_finish(st.jdb, &job, (int64_t)time(NULL)) == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	return (NULL);
}

/* A write about a job was committed: answer, tell, and tidy up. */
static void
job_flushed(struct req *r)
{
	struct jdb_job	 job;

	switch (r->type) {
	case IMSG_WORKER_SUBMIT:
		answer_u64(r->w, IMSG_STORAGE_STORED, r->id,
		    (uint64_t)r->job);
		if (r->dup)
			return;
		job_event("job %lld: queued by %.12s", (long long)r->job,
		    r->identity);
		jobs_tell(IMSG_STORAGE_JOB_QUEUED, r->job, r->identity);
		return;
	case IMSG_WORKER_KILL:
	case IMSG_CTL_JOBKILL:
		answer_u64(r->w, r->type == IMSG_WORKER_KILL ?
		    IMSG_STORAGE_STORED : IMSG_STORAGE_END, r->id,
		    (uint64_t)r->job);
		job_event("job %lld: cancelled%s", (long long)r->job,
		    r->type == IMSG_CTL_JOBKILL ? " by the operator" : "");
		jobs_tell(IMSG_STORAGE_JOB_GONE, r->job, NULL);
		break;
	case IMSG_PROVIDER_JOB_DONE:
	case IMSG_PROVIDER_JOB_FAIL:
		break;
	default:
		return;
	}
	if (jdb_get(st.jdb, r->job, &job) == 1) {
		if (r->type == IMSG_PROVIDER_JOB_DONE)
			job_event("job %lld: done in=%lld out=%lld ms=%lld",
			    (long long)job.id, (long long)job.tin,
			    (long long)job.tout, (long long)job.ms);
		else if (r->type == IMSG_PROVIDER_JOB_FAIL)
			job_event("job %lld: failed %s", (long long)job.id,
			    job.code);
		followers_end(&job);
	}
}

/* Copy a job's prompt into an ibuf. */
static int
prompt_copy(int role, const char *text, size_t len, void *arg)
{
	(void)role;
	return (ibuf_add(arg, text, len));
}

/*
 * A job of one prompt is done: its prompt and answer go into its
 * conversation as a pair, in the transaction that marks it done.
 */
static int
job_store_pair(const struct jdb_job *job)
{
	struct ibuf	*p, *a;
	int64_t		 row, now = (int64_t)time(NULL);
	int		 rv = -1;

	if ((p = ibuf_open(256)) == NULL ||
	    (a = ibuf_open(4096)) == NULL) {
		ibuf_free(p);
		return (-1);
	}
	if (jdb_opening(st.jdb, job->id, prompt_copy, p) == 0 &&
	    jdb_turn_text(st.jdb, job->id, 0, a) == 0 &&
	    db_store(st.db, job->client, job->conv, arc4random(), ROLE_USER,
	    job->model, 0, ibuf_data(p), ibuf_left(p), now, &row) != -1 &&
	    db_store(st.db, job->client, job->conv, arc4random(), ROLE_MODEL,
	    job->model, (uint64_t)job->tout, ibuf_left(a) > 0 ?
	    ibuf_data(a) : "", ibuf_left(a), now, &row) != -1)
		rv = 0;
	ibuf_free(p);
	ibuf_free(a);
	return (rv);
}

/* JOB_DONE: u64 job, u64 in, u64 out, u64 ms, str finish; JOB_FAIL:
   u64 job, str code, str text. A write; followers hear after it. */
static const char *
provider_job_end(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct jdb_job	 job;
	struct req	*r;
	const char	*finish = "", *code = "", *text = "";
	uint64_t	 jid, tin = 0, tout = 0, ms = 0;
	int		 rv;

	ir_init(&ir, imsg);
	jid = ir_u64(&ir);
	if (imsg->hdr.type == IMSG_PROVIDER_JOB_DONE) {
		tin = ir_u64(&ir);
		tout = ir_u64(&ir);
		ms = ir_u64(&ir);
		finish = ir_str(&ir);
	} else {
		code = ir_str(&ir);
		text = ir_str(&ir);
	}
	if (ir_end(&ir) == -1 || jid > INT64_MAX || tin > INT64_MAX ||
	    tout > INT64_MAX || ms > INT64_MAX)
		return ("length or values");
	if ((rv = job_load((int64_t)jid, &job)) != 1 ||
	    job.state != JOB_RUNNING) {
		if (rv == -1)
			log_warnx("job %llu: end not stored",
			    (unsigned long long)jid);
		return (NULL);	/* killed meanwhile */
	}
	r = req_new(w, imsg->hdr.type, 0);
	r->job = job.id;
	if (group_join() == -1)
		return (NULL);
	job.tin = (int64_t)tin;
	job.tout = (int64_t)tout;
	job.ms = (int64_t)ms;
	strlcpy(job.finish, finish, sizeof(job.finish));
	strlcpy(job.code, code, sizeof(job.code));
	strlcpy(job.text, text, sizeof(job.text));
	job.state = imsg->hdr.type == IMSG_PROVIDER_JOB_DONE ? JOB_DONE :
	    JOB_FAILED;
	if (job.state == JOB_DONE && job.kind == JOB_SUBMIT &&
	    job_store_pair(&job) == -1) {
		job.state = JOB_FAILED;
		strlcpy(job.code, "storage", sizeof(job.code));
		strlcpy(job.text, "the answer cannot be stored",
		    sizeof(job.text));
		group_fail_if_lost();
		if (st.failed)
			return (NULL);
	}
	if (jdb_finish(st.jdb, &job, (int64_t)time(NULL)) == -1)
		st.failed = 1;
	/* Its tokens count for the identity, under its (first) model. */
	else if ((tin > 0 || tout > 0) && db_usage_tokens(st.db, job.client,
	    job.model, (int64_t)time(NULL), tin, tout) == -1)
		group_fail_if_lost();
	return (NULL);
}

/* One queued or running job, for the provider's list. */
static int
jobs_list_one(int64_t id, const char *identity, void *arg)
{
	(void)arg;
	jobs_tell(IMSG_STORAGE_JOB_QUEUED, id, identity);
	return (0);
}

/* One part of what a job is answered with. */
static int
jobs_part(int role, const char *text, size_t len, void *arg)
{
	struct ibuf	*b;
	int64_t		 jid = *(int64_t *)arg;

	if (st.jobs == NULL || st.jobs->gone)
		return (-1);
	if ((b = channel_create(&st.jobs->ch, IMSG_STORAGE_JOB_PART, 0,
	    len + 32)) == NULL || ibuf_add_u64(b, (uint64_t)jid) == -1 ||
	    ibuf_add_u32(b, (uint32_t)role) == -1 ||
	    ibuf_add_data(b, text, len) == -1)
		fatal("%s", __func__);
	return (channel_send(&st.jobs->ch, b));
}

/*
 * JOB_START: u64 job. The job runs (again) from the start: marked
 * running, its old output gone, in a transaction of its own; then the
 * provider gets what to send, or GONE.
 */
static const char *
provider_job_start(struct imsg *imsg)
{
	struct jdb_job	 job;
	struct ireader	 ir;
	struct ibuf	*b;
	uint64_t	 jid;
	int		 rv, again;

	ir_init(&ir, imsg);
	jid = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (jid > INT64_MAX)
		return ("job id");
	if ((rv = job_load((int64_t)jid, &job)) != 1 ||
	    (job.state != JOB_QUEUED && job.state != JOB_RUNNING)) {
		jobs_tell(IMSG_STORAGE_JOB_GONE, (int64_t)jid, NULL);
		return (NULL);
	}
	again = job.state == JOB_RUNNING;
	if (db_begin(st.db) == -1 ||
	    (rv = jdb_start(st.jdb, job.id, (int64_t)time(NULL))) == -1 ||
	    db_commit(st.db) == -1) {
		db_rollback(st.db);
		log_warnx("job %lld: cannot start it", (long long)job.id);
		jobs_tell(IMSG_STORAGE_JOB_GONE, job.id, NULL);
		return (NULL);
	}
	if (again) {
		/* What they saw is gone: they follow it again. */
		job.state = JOB_FAILED;
		strlcpy(job.code, "upstream", sizeof(job.code));
		snprintf(job.text, sizeof(job.text), "job %lld restarts "
		    "from the start; RESULT %lld follows it again",
		    (long long)job.id, (long long)job.id);
		followers_end(&job);
	}
	job_event("job %lld: running%s", (long long)job.id,
	    again ? " again from the start" : "");
	if ((b = channel_create(&st.jobs->ch, IMSG_STORAGE_JOB_SPEC, 0,
	    2 * MODEL_MAX_LEN + 64)) == NULL ||
	    ibuf_add_u64(b, (uint64_t)job.id) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.kind) == -1 ||
	    ibuf_add_u32(b, (uint32_t)job.turns) == -1 ||
	    ibuf_add_str(b, job.model) == -1 ||
	    ibuf_add_str(b, job.model_b) == -1)
		fatal("%s", __func__);
	channel_send(&st.jobs->ch, b);
	if (job.kind == JOB_SUBMIT)
		rv = jdb_context(st.jdb, job.id, STORAGE_CONTEXT_MAX,
		    read_bound(), jobs_part, &job.id);
	else
		rv = jdb_opening(st.jdb, job.id, jobs_part, &job.id);
	jobs_tell(rv == -1 ? IMSG_STORAGE_JOB_GONE : IMSG_STORAGE_JOB_READY,
	    job.id, NULL);
	return (NULL);
}

/* JOB_CHUNK: u64 job, u32 turn, u32 kind, data text. */
static const char *
provider_job_chunk(struct imsg *imsg)
{
	struct ireader	 ir;
	struct follower	*f;
	const char	*text;
	uint64_t	 jid;
	uint32_t	 turn, kind;
	size_t		 len;

	ir_init(&ir, imsg);
	jid = ir_u64(&ir);
	turn = ir_u32(&ir);
	kind = ir_u32(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1 || jid > INT64_MAX || kind >= CHUNK_KIND_MAX ||
	    turn > JOB_TURNS_MAX)
		return ("length or values");
	if (len == 0)
		return (NULL);
	if (!db_text_valid(text, len))
		return ("text");
	if (group_join() == -1)
		return (NULL);
	switch (jdb_chunk(st.jdb, (int64_t)jid, (int)turn, (int)kind, text,
	    len)) {
	case -1:
		group_fail_if_lost();
		return (NULL);
	case 0:
		return (NULL);	/* not running: killed */
	}
	TAILQ_FOREACH(f, &st.followers, entry)
		if (f->job == (int64_t)jid)
			answer_chunk(f->w, f->id, (int)kind, text, len);
	return (NULL);
}

/*
 * A turn of a running dialogue is complete: its text goes into the
 * dialogue's conversation (if that still exists), under the model
 * that wrote it. A write of the round.
 */
static int
dialogue_turn(int64_t jid, int turn, const char *model, uint64_t tout)
{
	struct jdb_job	 job;
	struct ibuf	*b;
	int64_t		 row;
	int		 rv = -1;

	if (jdb_get(st.jdb, jid, &job) != 1)
		return (-1);
	if (job.state != JOB_RUNNING || job.kind != JOB_DIALOGUE)
		return (0);
	if (group_join() == -1)
		return (-1);
	if (db_conv_owned(st.db, job.client, job.conv) != 1)
		return (0);	/* deleted meanwhile */
	if ((b = ibuf_open(4096)) == NULL)
		return (-1);
	if (jdb_turn_text(st.jdb, jid, turn, b) == 0 &&
	    db_store(st.db, job.client, job.conv, arc4random(), ROLE_MODEL,
	    model, tout, ibuf_left(b) > 0 ? ibuf_data(b) : "", ibuf_left(b),
	    (int64_t)time(NULL), &row) != -1 &&
	    jdb_demote(st.jdb, job.conv) == 0)
		rv = 0;
	else
		group_fail_if_lost();
	ibuf_free(b);
	return (rv);
}

/* JOB_TURN: u64 job, u32 turn, str model, u64 answer tokens. */
static const char *
provider_job_turn(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*model;
	uint64_t	 jid, tout;
	uint32_t	 turn;

	ir_init(&ir, imsg);
	jid = ir_u64(&ir);
	turn = ir_u32(&ir);
	model = ir_str(&ir);
	tout = ir_u64(&ir);
	if (ir_end(&ir) == -1 || jid > INT64_MAX || tout > INT64_MAX ||
	    turn >= JOB_TURNS_MAX || !job_model_valid(model, 0))
		return ("length or values");
	job_event("job %llu: turn %u of %s, out=%llu",
	    (unsigned long long)jid, turn + 1, model,
	    (unsigned long long)tout);
	if (dialogue_turn((int64_t)jid, (int)turn, model, tout) == -1)
		log_warnx("job %llu: turn %u not stored in its conversation",
		    (unsigned long long)jid, turn + 1);
	return (NULL);
}

/* The provider's channel for jobs: it is trusted less than the parent. */
static void
storage_dispatch_jobs(struct channel *ch, struct imsg *imsg)
{
	struct wchan	*w = ch->arg;
	const char	*bad = NULL;

	if (w->gone)
		return;
	if (imsg->fd != -1)
		bad = "descriptor";
	else {
		switch (imsg->hdr.type) {
		case IMSG_PROVIDER_JOB_LIST:
			if (imsg->datalen != 0) {
				bad = "length";
				break;
			}
			jobs_settle();
			if (jdb_pending(st.jdb, jobs_list_one, NULL) == -1)
				log_warnx("cannot list the pending jobs");
			break;
		case IMSG_PROVIDER_JOB_START:
			bad = provider_job_start(imsg);
			break;
		case IMSG_PROVIDER_JOB_CHUNK:
			bad = provider_job_chunk(imsg);
			break;
		case IMSG_PROVIDER_JOB_TURN:
			bad = provider_job_turn(imsg);
			break;
		case IMSG_PROVIDER_JOB_DONE:
		case IMSG_PROVIDER_JOB_FAIL:
			bad = provider_job_end(w, imsg);
			break;
		default:
			bad = "unexpected type";
			break;
		}
	}
	if (bad != NULL)
		wchan_reject(w, imsg, bad);
}

/* A random dedupe key of 64 bits: a new row never meets an old key. */
static uint64_t
import_key(void)
{
	uint64_t	 k;

	arc4random_buf(&k, sizeof(k));
	return (k);
}

/* Store the items of an IMPORT (checked already) in conversation c. */
static int
import_items(struct wchan *w, struct ireader *ir, uint32_t n,
    const struct db_conv *c)
{
	const char	*text;
	uint64_t	 when;
	uint32_t	 i, role;
	int64_t		 row;
	size_t		 len;

	for (i = 0; i < n; i++) {
		role = ir_u32(ir);
		when = ir_u64(ir);
		text = ir_data(ir, &len);
		if (role == ROLE_SUMMARY) {
			if (db_summary(st.db, w->identity, c->id,
			    import_key(), text, len, (int64_t)when,
			    st.conf->g.summaries_keep, &row) == -1)
				return (-1);
		} else if (db_store(st.db, w->identity, c->id, import_key(),
		    role, c->model, 0, text, len, (int64_t)when, &row) != 0)
			return (-1);
	}
	return (0);
}

/*
 * IMSG_WORKER_IMPORT: u32 id, str name, str model, str role,
 * str system, u32 count, then per item u32 role, u64 time, data text.
 * Checked whole first; then all of it or nothing, answered CONV. A
 * name the identity has already is dropped: the import is unnamed.
 */
static const char *
worker_import(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir, again;
	struct req	*r;
	const char	*name, *model, *role, *system, *text;
	uint64_t	 when;
	uint32_t	 id, n, i, irole;
	size_t		 len;
	int		 rv;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	name = ir_str(&ir);
	model = ir_str(&ir);
	role = ir_str(&ir);
	system = ir_str(&ir);
	n = ir_u32(&ir);
	if (ir.bad || (*name != '\0' && !conv_name_valid(name)) ||
	    !conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX) || n > IMPORT_ITEMS_MAX)
		return ("conversation");
	again = ir;
	for (i = 0; i < n; i++) {
		irole = ir_u32(&ir);
		when = ir_u64(&ir);
		text = ir_data(&ir, &len);
		if (ir.bad || irole >= ROLE_MAX || when > INT64_MAX ||
		    !db_text_valid(text, len) ||
		    (irole == ROLE_SUMMARY && len == 0))
			return ("item");
	}
	if (ir_end(&ir) == -1)
		return ("length");
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	if ((r->conv = malloc(sizeof(*r->conv))) == NULL)
		fatal("%s", __func__);
	rv = db_conv_new(st.db, w->identity, name, model, system, role,
	    (int64_t)time(NULL), r->conv);
	if (rv == DB_EXISTS)
		rv = db_conv_new(st.db, w->identity, "", model, system, role,
		    (int64_t)time(NULL), r->conv);
	/* All of it or nothing: a failure loses the round's transaction. */
	if (rv != 0 || import_items(w, &again, n, r->conv) == -1) {
		r->error = "database error";
		st.failed = 1;
		return (NULL);
	}
	r->conv->messages = n;
	log_info("worker %u: imported %u items as conversation %lld",
	    w->wid, n, (long long)r->conv->id);
	return (NULL);
}

/* The time of day in ms: limits count across restarts and daemons. */
static int64_t
wall_ms(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return ((int64_t)time(NULL) * 1000);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* A model name as a worker or control sends it: printable, bounded. */
static int
model_valid(const char *model)
{
	size_t	 len = strlen(model);

	return (len > 0 && len < MODEL_MAX_LEN &&
	    strspn(model, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-/:@") == len);
}

/*
 * May this identity send one more request to model (and model_b, a
 * dialogue's other, "" none) now? 0: yes, and it is counted; 1: no,
 * with the reply's code and text; -1 on error.
 * The check and the count are one write of the round's transaction:
 * two sessions of one identity, or two daemons on one database, can
 * not both take the last request of a minute.
 */
static int
admit(const char *identity, const char *model, const char *model_b,
    const char **code, char *text, size_t len)
{
	struct limits	 lim;
	struct limit_use use;
	const char	*which;
	char		 models[TOKEN_MODELS_MAX];
	uint64_t	 allowed, retry;
	int64_t		 now_ms = wall_ms();

	if (db_limits(st.db, identity, &st.conf->g.limits, &lim, models,
	    sizeof(models)) == -1 ||
	    db_usage_now(st.db, identity, now_ms, lim.requests,
	    &use) == -1)
		return (-1);
	if (!limits_model_ok(models, model) || (*model_b != '\0' &&
	    !limits_model_ok(models, model_b))) {
		*code = "no-model";
		(void)snprintf(text, len, "model %s is not allowed for this"
		    " token", limits_model_ok(models, model) ? model_b : model);
		return (1);
	}
	if ((which = limits_check(&lim, &use, now_ms, &allowed,
	    &retry)) != NULL) {
		*code = "rate-limited";
		limits_text(text, len, which, allowed, retry);
		event_add(identity, "limit %s %llu reached", which,
		    (unsigned long long)allowed);
		return (1);
	}
	if (db_usage_request(st.db, identity, model, now_ms,
	    lim.requests > 0) == -1) {
		group_fail_if_lost();
		return (-1);
	}
	return (0);
}

/* IMSG_WORKER_ADMIT: u32 id, str model; answered after the COMMIT. */
static const char *
worker_admit(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	model = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (!model_valid(model))
		return ("model");
	r = req_new(w, imsg->hdr.type, id);
	r->code = "";
	if (group_join() == -1)
		return (NULL);
	if (admit(w->identity, model, "", &r->code, r->text,
	    sizeof(r->text)) == -1)
		r->error = "database error";
	return (NULL);
}

/* IMSG_WORKER_USAGE: u32 id, str model, u64 prompt, u64 answer tokens. */
static const char *
worker_usage(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	const char	*model;
	uint64_t	 in, out;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	model = ir_str(&ir);
	in = ir_u64(&ir);
	out = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (!model_valid(model))
		return ("model");
	if (in > INT64_MAX / 4 || out > INT64_MAX / 4)
		return ("tokens");
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	if (db_usage_tokens(st.db, w->identity, model, (int64_t)time(NULL),
	    in, out) == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
	return (NULL);
}

/* A usage row as the USAGE command shows it. */
static int
usage_own_row(const struct usage_row *u, void *arg)
{
	return (answer_line(arg, "%s %s %lld %lld %lld", u->day, u->model,
	    (long long)u->prompts, (long long)u->tokens_in,
	    (long long)u->tokens_out));
}

/* The first day of the last `days' days, YYYY-MM-DD. */
static void
since_day(uint32_t days, char day[LIMITS_DAY_LEN])
{
	if (days < 1)
		days = 1;
	limits_day((int64_t)time(NULL) - (int64_t)(days - 1) * 86400, day);
}

/* IMSG_WORKER_USAGE_GET: u32 id, u32 days; LINE..., END. */
static const char *
worker_usage_get(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct line_arg	 la;
	struct limits	 lim;
	struct limit_use use;
	char		 since[LIMITS_DAY_LEN];
	uint32_t	 id, days;
	int		 rv;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	days = ir_u32(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (days < 1 || days > 3660)
		return ("days");
	round_settle();
	since_day(days, since);
	la.w = w;
	la.id = id;
	la.n = 0;
	rv = db_usage_list(st.db, w->identity, since, usage_own_row, &la);
	if (rv == 0)
		rv = db_limits(st.db, w->identity, &st.conf->g.limits, &lim,
		    NULL, 0);
	if (rv == 0)
		rv = db_usage_now(st.db, w->identity, wall_ms(),
		    lim.requests, &use);
	if (rv == -1) {
		answer_error(w, id, "database error");
		return (NULL);
	}
	if (lim.requests > 0)
		answer_line(&la, "limit requests-per-minute %llu used %llu",
		    (unsigned long long)lim.requests,
		    (unsigned long long)use.requests);
	if (lim.tokens > 0)
		answer_line(&la, "limit tokens-per-day %llu used %llu",
		    (unsigned long long)lim.tokens,
		    (unsigned long long)use.tokens);
	if (lim.jobs > 0)
		answer_line(&la, "limit jobs %llu used %llu",
		    (unsigned long long)lim.jobs,
		    (unsigned long long)use.jobs);
	answer_u64(w, IMSG_STORAGE_END, id, la.n);
	return (NULL);
}

/* A worker's request; who asks is known by the channel, nothing else. */
static void
storage_dispatch_worker(struct channel *ch, struct imsg *imsg)
{
	struct wchan	*w = ch->arg;
	const char	*bad;

	if (w->gone)
		return;
	if (w->identity[0] == '\0')
		bad = "no identity yet";
	else if (imsg->fd != -1)
		bad = "descriptor";
	else {
		switch (imsg->hdr.type) {
		case IMSG_WORKER_STORE:
			bad = worker_store(w, imsg);
			break;
		case IMSG_WORKER_SUMMARY:
			bad = worker_summary(w, imsg);
			break;
		case IMSG_WORKER_HISTORY:
		case IMSG_WORKER_COUNT:
			bad = worker_read(w, imsg);
			break;
		case IMSG_WORKER_CONTEXT:
			bad = worker_context(w, imsg);
			break;
		case IMSG_WORKER_CONV_NEW:
			bad = worker_conv_new(w, imsg);
			break;
		case IMSG_WORKER_CONV_LIST:
			bad = worker_conv_list(w, imsg);
			break;
		case IMSG_WORKER_CONV_SET:
			bad = worker_conv_set(w, imsg);
			break;
		case IMSG_WORKER_CONV_DELETE:
			bad = worker_conv_delete(w, imsg);
			break;
		case IMSG_WORKER_SEARCH:
			bad = worker_search(w, imsg);
			break;
		case IMSG_WORKER_EXPORT:
			bad = worker_export(w, imsg);
			break;
		case IMSG_WORKER_IMPORT:
			bad = worker_import(w, imsg);
			break;
		case IMSG_WORKER_SUBMIT:
			bad = worker_submit(w, imsg);
			break;
		case IMSG_WORKER_JOBS:
		case IMSG_WORKER_RESULT:
		case IMSG_WORKER_UNFOLLOW:
			bad = worker_job_read(w, imsg);
			break;
		case IMSG_WORKER_KILL:
			bad = job_kill(w, imsg);
			break;
		case IMSG_WORKER_ADMIT:
			bad = worker_admit(w, imsg);
			break;
		case IMSG_WORKER_USAGE:
			bad = worker_usage(w, imsg);
			break;
		case IMSG_WORKER_USAGE_GET:
			bad = worker_usage_get(w, imsg);
			break;
		default:
			bad = "unexpected type";
			break;
		}
	}
	if (bad != NULL) {
		wchan_reject(w, imsg, bad);
		return;
	}
	/* Stop reading a worker whose answers pile up. */
	if (!w->full && w->ch.ibuf.queued > STORAGE_QUEUE_HIGH) {
		w->full = 1;
		wchan_update(w);
		if (!ev_timer_pending(&st.queue_poll))
			ev_timer_add(&st.queue_poll, STORAGE_QUEUE_POLL);
	}
}

/*
 * IMSG_CTL_EXPORT, IMSG_CTL_PURGE: u32 id, str identity or a prefix
 * of one. The first answer names the whole identity.
 */
static const char *
control_request(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct export	*ex;
	struct req	*r;
	const char	*prefix, *err = NULL;
	char		 identity[IDENTITY_LEN + 1];
	uint64_t	 rows = 0;
	uint32_t	 id;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	prefix = ir_str(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	len = strlen(prefix);
	if (len == 0 || len > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != len)
		return ("identity");
	round_settle();
	switch (db_resolve(st.db, prefix, identity, sizeof(identity))) {
	case DB_FOUND:
		break;
	case DB_NONE:
		err = "no stored history for that identity";
		break;
	case DB_AMBIGUOUS:
		err = "more than one identity begins with that prefix";
		break;
	default:
		err = "database error";
		break;
	}
	if (imsg->hdr.type == IMSG_CTL_EXPORT) {
		if (err != NULL) {
			answer_error(w, id, err);
			return (NULL);
		}
		answer_identity(w, id, identity);
		if ((ex = calloc(1, sizeof(*ex))) == NULL)
			fatal("%s", __func__);
		ex->w = w;
		ex->id = id;
		(void)strlcpy(ex->identity, identity, sizeof(ex->identity));
		TAILQ_INSERT_TAIL(&w->exports, ex, entry);
		export_pump(w);
		return (NULL);
	}
	/* A purge is a write: answered after its COMMIT. */
	r = req_new(w, imsg->hdr.type, id);
	if ((r->error = err) != NULL)
		return (NULL);
	(void)strlcpy(r->identity, identity, sizeof(r->identity));
	if (group_join() == -1)
		return (NULL);
	if (db_purge(st.db, identity, &rows) == -1 ||
	    jdb_purge(st.jdb, identity, &rows) == -1)
		st.failed = 1;
	r->rowid = (int64_t)rows;
	event_add(identity, "purge %llu rows", (unsigned long long)rows);
	return (NULL);
}

/*
 * IMSG_CTL_TOKEN_ADD: u32 id, str hash, str label, u64 expires,
 * str models, u64 requests, u64 tokens, u64 jobs; END with its id.
 */
static const char *
control_token_add(struct wchan *w, struct imsg *imsg)
{
	struct ireader		 ir;
	struct token_info	 t;
	struct req		*r;
	const char		*hash, *label, *models;
	uint64_t		 expires;
	uint32_t		 id;

	memset(&t, 0, sizeof(t));
	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	hash = ir_str(&ir);
	label = ir_str(&ir);
	expires = ir_u64(&ir);
	models = ir_str(&ir);
	t.limits.requests = ir_u64(&ir);
	t.limits.tokens = ir_u64(&ir);
	t.limits.jobs = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (strlen(hash) != IDENTITY_LEN ||
	    strspn(hash, "0123456789abcdef") != IDENTITY_LEN)
		return ("hash");
	if (!limits_word_valid(label, sizeof(t.label), "") ||
	    !limits_word_valid(models, sizeof(t.models), ",/:") ||
	    expires > INT64_MAX)
		return ("token");
	(void)strlcpy(t.label, label, sizeof(t.label));
	(void)strlcpy(t.models, models, sizeof(t.models));
	t.expires = (int64_t)expires;
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	if (db_token_add(st.db, hash, &t, (int64_t)time(NULL),
	    &r->rowid) == -1) {
		r->error = "database error (is that token stored already?)";
		group_fail_if_lost();
		return (NULL);
	}
	event_add(hash, "token add %lld label %s", (long long)r->rowid,
	    t.label[0] != '\0' ? t.label : "-");
	return (NULL);
}

/* IMSG_CTL_TOKEN_REVOKE: u32 id, u64 token id; IDENTITY, END. */
static const char *
control_token_revoke(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	uint64_t	 tid;
	uint32_t	 id;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	tid = ir_u64(&ir);
	if (ir_end(&ir) == -1)
		return ("length");
	if (tid > INT64_MAX)
		return ("token id");
	r = req_new(w, imsg->hdr.type, id);
	if (group_join() == -1)
		return (NULL);
	switch (db_token_revoke(st.db, (int64_t)tid, (int64_t)time(NULL),
	    r->identity)) {
	case 1:
		event_add(r->identity, "token revoke %llu",
		    (unsigned long long)tid);
		break;
	case 0:
		r->error = "no live token with that id";
		break;
	default:
		r->error = "database error";
		group_fail_if_lost();
		break;
	}
	return (NULL);
}

/* A limit in token list: "-" where the global one applies. */
static void
limit_text(char *buf, size_t len, uint64_t v)
{
	if (v == LIMIT_INHERIT)
		(void)strlcpy(buf, "-", len);
	else
		(void)snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* One line of token list; never the token, which is not stored. */
static int
token_line(const struct token_info *t, void *arg)
{
	char	 c[32], e[32], u[32], rq[24], tk[24], jb[24];
	int64_t	 now = (int64_t)time(NULL);

	iso(t->created, c, sizeof(c));
	iso(t->expires, e, sizeof(e));
	iso(t->last_used, u, sizeof(u));
	limit_text(rq, sizeof(rq), t->limits.requests);
	limit_text(tk, sizeof(tk), t->limits.tokens);
	limit_text(jb, sizeof(jb), t->limits.jobs);
	return (answer_line(arg, "%lld %s %s %s %s %s %s %s %s %s",
	    (long long)t->id, t->label[0] != '\0' ? t->label : "-", c, e, u,
	    t->revoked != 0 ? "revoked" : t->expires != 0 &&
	    t->expires <= now ? "expired" : "live", rq, tk, jb,
	    t->models[0] != '\0' ? t->models : "*"));
}

/* One line of show usage. */
static int
usage_row(const struct usage_row *u, void *arg)
{
	return (answer_line(arg, "%.12s %s %s %lld %lld %lld", u->identity,
	    u->day, u->model, (long long)u->prompts, (long long)u->tokens_in,
	    (long long)u->tokens_out));
}

/* One line of show identities. */
static int
identity_row(const struct identity_row *r, void *arg)
{
	char	 f[32], l[32];

	iso(r->first_seen, f, sizeof(f));
	iso(r->last_seen, l, sizeof(l));
	return (answer_line(arg, "%.12s %s %s %s %lld %lld %lld",
	    r->identity, r->how, f, l, (long long)r->conversations,
	    (long long)r->messages, (long long)r->tokens_today));
}

/* One line of show events. */
static int
event_row(const struct event_row *e, void *arg)
{
	char	 t[32];

	iso(e->time, t, sizeof(t));
	return (answer_line(arg, "%s %.12s %s", t, e->identity[0] != '\0' ?
	    e->identity : "-", e->text));
}

/*
 * IMSG_CTL_TOKEN_LIST: u32 id. IMSG_CTL_USAGE: u32 id, str prefix,
 * u32 days. IMSG_CTL_IDENTITIES: u32 id. IMSG_CTL_EVENTS: u32 id,
 * str prefix, u32 count. Lines, then END with their number.
 */
static const char *
control_table(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct line_arg	 la;
	const char	*prefix = "";
	char		 since[LIMITS_DAY_LEN];
	uint32_t	 id, n = 0;
	int		 rv;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	if (imsg->hdr.type == IMSG_CTL_USAGE ||
	    imsg->hdr.type == IMSG_CTL_EVENTS) {
		prefix = ir_str(&ir);
		n = ir_u32(&ir);
	}
	if (ir_end(&ir) == -1)
		return ("length");
	if (strlen(prefix) > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != strlen(prefix))
		return ("identity");
	round_settle();
	la.w = w;
	la.id = id;
	la.n = 0;
	switch (imsg->hdr.type) {
	case IMSG_CTL_TOKEN_LIST:
		rv = db_token_list(st.db, token_line, &la);
		break;
	case IMSG_CTL_USAGE:
		if (n < 1 || n > 3660)
			return ("days");
		since_day(n, since);
		rv = db_usage_list(st.db, prefix, since, usage_row, &la);
		break;
	case IMSG_CTL_IDENTITIES:
		rv = db_identities(st.db, (int64_t)time(NULL), identity_row,
		    &la);
		break;
	default:
		if (n < 1 || n > 100000)
			return ("count");
		rv = db_events(st.db, prefix, n, event_row, &la);
		break;
	}
	if (rv == -1)
		answer_error(w, id, "database error");
	else
		answer_u64(w, IMSG_STORAGE_END, id, la.n);
	return (NULL);
}

/* Control asks for exports and purges on behalf of bridgectl. */
static void
storage_dispatch_control(struct channel *ch, struct imsg *imsg)
{
	struct wchan	*w = ch->arg;
	const char	*bad;

	if (w->gone)
		return;
	if (imsg->fd != -1)
		bad = "descriptor";
	else {
		switch (imsg->hdr.type) {
		case IMSG_CTL_EXPORT:
		case IMSG_CTL_PURGE:
			bad = control_request(w, imsg);
			break;
		case IMSG_CTL_JOBS:
			bad = worker_job_read(w, imsg);
			break;
		case IMSG_CTL_JOBKILL:
			bad = job_kill(w, imsg);
			break;
		case IMSG_CTL_TOKEN_ADD:
			bad = control_token_add(w, imsg);
			break;
		case IMSG_CTL_TOKEN_REVOKE:
			bad = control_token_revoke(w, imsg);
			break;
		case IMSG_CTL_TOKEN_LIST:
		case IMSG_CTL_USAGE:
		case IMSG_CTL_IDENTITIES:
		case IMSG_CTL_EVENTS:
			bad = control_table(w, imsg);
			break;
		default:
			bad = "unexpected type";
			break;
		}
	}
	if (bad != NULL)
		wchan_reject(w, imsg, bad);
}

/* A peer closed its channel (or it broke): forget it. */
static void
storage_worker_closed(struct channel *ch)
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

/* IMSG_PARENT_CHANNEL: u32 worker id, str identity; with the fd. */
static void
parent_channel(struct imsg *imsg)
{
	struct ireader	 ir;
	struct wchan	*old;
	const char	*identity;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	identity = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd == -1 || !identity_valid(identity))
		child_bad(PROC_PARENT, imsg, NULL);
	if ((old = wchan_find(wid)) != NULL) {
		log_debug("worker %u: channel replaced", wid);
		wchan_drop(old);
	}
	(void)wchan_new(imsg->fd, wid, identity, 0, 0);
	imsg->fd = -1;
}

/* IMSG_PARENT_CONTROL: control's channel (fd); a new one replaces it. */
static void
parent_control(struct imsg *imsg)
{
	if (imsg->datalen != 0 || imsg->fd == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	if (st.ctl != NULL) {
		log_debug("control: channel replaced");
		wchan_drop(st.ctl);
	}
	st.ctl = wchan_new(imsg->fd, 0, "", 1, 0);
	imsg->fd = -1;
}

/* IMSG_PARENT_JOBS: the provider's channel for jobs (fd). */
static void
parent_jobs(struct imsg *imsg)
{
	if (imsg->datalen != 0 || imsg->fd == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	if (st.jobs != NULL) {
		log_debug("provider: jobs channel replaced");
		wchan_drop(st.jobs);
	}
	st.jobs = wchan_new(imsg->fd, 0, "", 0, 1);
	imsg->fd = -1;
}

/* An identity begins a session: remember how it authenticated. */
static void
identity_seen(const char *identity, const char *how)
{
	struct token_info	 t;
	char			 buf[32];

	if (*identity == '\0')
		return;
	round_settle();
	if (strcmp(how, "token") == 0) {
		switch (db_token_get(st.db, identity, &t)) {
		case 1:
			(void)snprintf(buf, sizeof(buf), "token:%lld",
			    (long long)t.id);
			how = buf;
			break;
		case 0:
			how = "token-file";
			break;
		default:
			return;
		}
	}
	if (group_join() == -1)
		return;
	if (!ev_timer_pending(&st.round_end))
		ev_timer_add(&st.round_end, 0);
	if (db_identity_seen(st.db, identity, how, (int64_t)time(NULL)) == -1)
		group_fail_if_lost();
}

/* IMSG_PARENT_SESSION: u32 worker id, str identity, str how. */
static void
parent_session(struct imsg *imsg)
{
	struct ireader	 ir;
	struct wchan	*w;
	const char	*identity, *how;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	identity = ir_str(&ir);
	how = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 ||
	    !identity_valid(identity) || strlen(how) > 16)
		child_bad(PROC_PARENT, imsg, NULL);
	identity_seen(identity, how);
	if ((w = wchan_find(wid)) == NULL) {
		/* The worker may have gone already. */
		log_debug("%s: no channel for worker %u", __func__, wid);
		return;
	}
	(void)strlcpy(w->identity, identity, sizeof(w->identity));
	wchan_update(w);
}

/*
 * IMSG_PARENT_TOKEN: u32 worker id, str hash. Is it a live issued
 * token? Answered at once (its last use is stored with the answer).
 */
static void
parent_token(struct imsg *imsg)
{
	struct ireader		 ir;
	struct token_info	 t;
	struct ibuf		*b;
	const char		*hash;
	uint32_t		 wid;
	int			 ok;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	hash = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 ||
	    strlen(hash) != IDENTITY_LEN || !identity_valid(hash))
		child_bad(PROC_PARENT, imsg, NULL);
	round_settle();
	ok = db_token_check(st.db, hash, (int64_t)time(NULL), &t) == 1;
	if ((b = channel_create(parent_chan, IMSG_STORAGE_TOKEN, 0,
	    IDENTITY_LEN + sizeof(t.models) + 32)) == NULL ||
	    ibuf_add_u32(b, wid) == -1 || ibuf_add_u32(b, ok) == -1 ||
	    ibuf_add_str(b, hash) == -1 ||
	    ibuf_add_str(b, ok ? t.models : "") == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
}

/* IMSG_PARENT_EVENT: u64 time, str identity, str text. */
static void
parent_log_event(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*identity, *text;
	uint64_t	 when;

	ir_init(&ir, imsg);
	when = ir_u64(&ir);
	identity = ir_str(&ir);
	text = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 || when > INT64_MAX ||
	    !identity_valid(identity) || !utf8_valid(text, strlen(text)))
		child_bad(PROC_PARENT, imsg, NULL);
	event_store((int64_t)when, identity, text);
}

/* A new configuration: apply what can change while running. */
static void
storage_reload(void)
{
	const struct global_conf	*g = &st.conf->g;

	if (strcmp(g->database, st.database) != 0)
		log_warnx("database is now %s; restart bridged to use it"
		    " (still using %s)", g->database, st.database);
	if (g->sync != st.sync) {
		st.sync = g->sync;
		if (st.writes > 0)
			st.sync_pending = 1;
		else if (db_sync(st.db, st.sync) == -1)
			log_warnx("database sync level unchanged");
	}
	log_debug("configuration reloaded: summaries keep %d, sync %s",
	    g->summaries_keep, st.sync == SYNC_FULL ? "full" : "normal");
}

/* The parent is trusted: anything wrong from it is fatal. */
static void
storage_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	switch (child_imsg(&st.conf, NULL, imsg)) {
	case 1:
		storage_reload();
		return;
	case 0:
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CHANNEL:
		parent_channel(imsg);
		break;
	case IMSG_PARENT_SESSION:
		parent_session(imsg);
		break;
	case IMSG_PARENT_CONTROL:
		parent_control(imsg);
		break;
	case IMSG_PARENT_JOBS:
		parent_jobs(imsg);
		break;
	case IMSG_PARENT_TOKEN:
		parent_token(imsg);
		break;
	case IMSG_PARENT_EVENT:
		parent_log_event(imsg);
		break;
	default:
		child_bad(PROC_PARENT, imsg, "unexpected");
	}
}

/* Finish the round's transaction and leave. */
static void
storage_shutdown(void)
{
	if (ev_timer_pending(&st.round_end)) {
		ev_timer_del(&st.round_end);
		storage_round_end(NULL);
	}
	if (st.jdb != NULL && jdb_release(st.jdb) == -1)
		log_warnx("cannot give back the leases of this instance's"
		    " jobs");
	jdb_close(st.jdb);
	st.jdb = NULL;
	db_close(st.db);
	st.db = NULL;
}

/* SIGTERM, SIGINT: commit what is pending and leave. */
static void
storage_sig(int sig, void *arg)
{
	(void)arg;
	log_debug("%s: signal %d, stopping", __func__, sig);
	storage_shutdown();
	exit(0);
}

/* Without a parent there is nothing to serve. */
static void
storage_parent_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(PROC_PARENT, NULL, NULL);
	storage_shutdown();
	exit(0);
}

/*
 * A token revoked (maybe through another instance): its sessions on
 * this one end, through the parent, as a revocation here ends them.
 */
static int
cluster_revoked(const char *hash, void *arg)
{
	struct ibuf	*b;
	const char	*reason = "token revoked";

	(void)arg;
	if (strlen(hash) != IDENTITY_LEN)
		return (0);
	if ((b = channel_create(parent_chan, IMSG_STORAGE_END_SESSIONS, 0,
	    IDENTITY_LEN + strlen(reason) + 16)) == NULL ||
	    ibuf_add_str(b, hash) == -1 || ibuf_add_str(b, reason) == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
	return (0);
}

/* A job whose instance died is this one's now: the provider runs it. */
static int
cluster_claimed(int64_t id, const char *identity, void *arg)
{
	(void)arg;
	job_event("job %lld: taken over from an instance that is gone",
	    (long long)id);
	jobs_tell(IMSG_STORAGE_JOB_QUEUED, id, identity);
	return (0);
}

/*
 * A database several instances share, every STORAGE_CLUSTER_POLL:
 * keep the leases of this instance's jobs, take the jobs of instances
 * that are gone, and end the sessions of tokens revoked elsewhere.
 */
static void
storage_cluster_poll(void *arg)
{
	int64_t	 now = (int64_t)time(NULL);

	(void)arg;
	round_settle();
	if (jdb_renew(st.jdb) == -1)
		log_warnx("cannot renew the leases of this instance's jobs");
	if (jdb_claim(st.jdb, cluster_claimed, NULL) == -1)
		log_warnx("cannot look for jobs of instances that are gone");
	if (db_revoked_since(st.db, st.revoked_since, cluster_revoked,
	    NULL) == -1)
		log_warnx("cannot look for revoked tokens");
	else
		st.revoked_since = now - STORAGE_REVOKE_SLACK;
	ev_timer_add(&st.cluster_poll, STORAGE_CLUSTER_POLL);
}

/*
 * Open as root (a file) or connect (a server, with the password the
 * parent read), give the files to the user, then sandbox: with a
 * server, no file and no connection but to its address.
 */
static void
storage_open(void)
{
	struct sandbox_conf	 sc;
	struct passwd		*pw;
	const char		*user;
	char			 dir[PATH_MAX];

	(void)strlcpy(st.database, st.conf->g.database, sizeof(st.database));
	st.sync = st.conf->g.sync;
	/* Conversations are nobody else's business. */
	umask(077);
	st.db = db_connect(st.database, st.sync, st.conf->db_password);
	if (st.conf->db_password != NULL) {
		freezero(st.conf->db_password, strlen(st.conf->db_password));
		st.conf->db_password = NULL;
	}
	/* A server's string is not logged: it may name more than needed. */
	if (st.db == NULL)
		fatalx("cannot use database %s", db_server(st.database) ?
		    "(a server; see the line above)" : st.database);
	if ((st.jdb = jdb_open(st.db)) == NULL)
		fatalx("cannot prepare the job queries of %s", st.database);
	db_take_turns(st.db);
	user = st.conf->g.user[0] != '\0' ? st.conf->g.user : NULL;
	if (user != NULL && geteuid() == 0) {
		if ((pw = getpwnam(user)) == NULL)
			fatalx("unknown user %s", user);
		if (db_chown(st.db, pw->pw_uid, pw->pw_gid) == -1)
			fatalx("cannot hand database %s to %s", st.database,
			    user);
	}
	(void)strlcpy(dir, st.database, sizeof(dir));
	memset(&sc, 0, sizeof(sc));
	sc.user = user;
	sc.chroot = NULL;
	if (db_peer(st.db, &sc.db_family, &sc.db_port) == -1)
		fatalx("cannot tell the database's address");
	sc.dbdir = sc.db_family == 0 ? dirname(dir) : NULL;
	if (sandbox_enter(SANDBOX_STORAGE, &sc) == -1)
		fatalx("storage sandbox failed");
	if (db_shared(st.db)) {
		/* Started again: what was revoked while it was away too. */
		st.revoked_since = (int64_t)time(NULL) - STORAGE_REVOKE_BACK;
		ev_timer_add(&st.cluster_poll, STORAGE_CLUSTER_POLL);
	}
}

/* bridged -P storage: never returns. */
void
storage_main(void)
{
	TAILQ_INIT(&st.chans);
	TAILQ_INIT(&st.dead);
	TAILQ_INIT(&st.round);
	TAILQ_INIT(&st.followers);
	ev_timer_set(&st.round_end, storage_round_end, NULL);
	ev_timer_set(&st.queue_poll, storage_queue_poll, NULL);
	ev_timer_set(&st.cluster_poll, storage_cluster_poll, NULL);

	st.conf = child_config(NULL);
	storage_open();
	if (db_server(st.database))
		log_info("database open (%s), commits synchronous",
		    db_kind(st.db));
	else
		log_info("database %s open (%s), sync %s", st.database,
		    db_kind(st.db), st.sync == SYNC_FULL ? "full" : "normal");

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	ev_signal(SIGTERM, storage_sig, NULL);
	ev_signal(SIGINT, storage_sig, NULL);
	parent_chan->closed = storage_parent_closed;
	child_ready();
	child_dispatch(storage_dispatch_parent);
	ev_loop();
	fatalx("storage: event loop ended");
}
