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
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"

/* A worker's channel stops being read while this much waits for it. */
#define STORAGE_QUEUE_HIGH	(4 * 1024 * 1024)
#define STORAGE_QUEUE_POLL	20		/* ms, to look again */
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

/* A peer's channel: a worker's, or control's (wid 0, control set). */
struct wchan {
	TAILQ_ENTRY(wchan)	 entry;
	struct channel		 ch;
	uint32_t		 wid;
	int			 control;
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
	int64_t			 rowid;	/* PURGE: rows deleted */
	char			 identity[IDENTITY_LEN + 1]; /* PURGE */
	const char		*code;	/* ADMIT: "" admitted */
	char			 text[LIMITS_TEXT_MAX];
};

/* Where LINE answers of a read go. */
struct line_arg {
	struct wchan	*w;
	uint32_t	 id;
	uint64_t	 n;
};
TAILQ_HEAD(req_list, req);

static struct {
	struct db		*db;
	struct bridged_conf	*conf;
	char			 database[PATH_MAX];
	enum sync_mode		 sync;
	int			 sync_pending;
	struct wchan_list	 chans;
	struct wchan_list	 dead;
	struct wchan		*ctl;		/* control's channel */
	struct req_list		 round;
	int			 writes;	/* in the open transaction */
	int			 failed;	/* the transaction is lost */
	struct ev_timer		 round_end;
	struct ev_timer		 queue_poll;
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
	pause = (!w->control && w->identity[0] == '\0') || w->full;
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
wchan_new(int fd, uint32_t wid, const char *identity, int control)
{
	struct wchan	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		fatal("%s", __func__);
	w->wid = wid;
	w->control = control;
	(void)strlcpy(w->identity, identity, sizeof(w->identity));
	TAILQ_INIT(&w->exports);
	TAILQ_INSERT_TAIL(&st.chans, w, entry);
	channel_init(&w->ch, fd, control ? storage_dispatch_control :
	    storage_dispatch_worker, storage_worker_closed, w);
	/* What an idle worker sends waits in the socket until SESSION. */
	channel_pause(&w->ch, 1);
	wchan_update(w);
	return (w);
}

/* A worker broke the rules: log it and close its channel. */
static void
wchan_reject(struct wchan *w, struct imsg *imsg, const char *why)
{
	if (w->control)
		log_warnx("control: bad %s (%s); closing its channel",
		    imsg_type_name(imsg->hdr.type), why);
	else
		log_warnx("worker %u: bad %s (%s); closing its channel",
		    w->wid, imsg_type_name(imsg->hdr.type), why);
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
	free(r);
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
		if (r->error != NULL)
			answer_error(r->w, r->id, r->error);
		else if (st.failed)
			answer_error(r->w, r->id, "database error");
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
 * A read sees exactly the writes that came before it: what is pending
 * is committed and answered first, then the read runs, outside any
 * transaction, and is answered at once.
 */
static void
run_read(struct wchan *w, uint32_t type, uint32_t id, uint32_t kind,
    uint32_t count)
{
	struct item_arg	 ia;
	uint64_t	 n = 0;
	int		 rv, cut = 0;

	if (!TAILQ_EMPTY(&st.round))
		group_flush();
	ia.w = w;
	ia.id = id;
	switch (type) {
	case IMSG_WORKER_HISTORY:
		rv = db_history(st.db, w->identity, kind, count,
		    read_bound(), answer_item, &ia, &n, &cut);
		if (rv == 0 && cut == DB_CUT_BYTES)
			log_info("worker %u: history cut to %llu items,"
			    " %zu bytes", w->wid, (unsigned long long)n,
			    read_bound());
		break;
	case IMSG_WORKER_CONTEXT:
		rv = db_context(st.db, w->identity, STORAGE_CONTEXT_MAX,
		    read_bound(), answer_item, &ia, &n, &cut);
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
		if (!TAILQ_EMPTY(&st.round))
			group_flush();
		r = db_export(st.db, ex->identity, ex->section, &ex->after,
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
	uint64_t	 key, tokens;
	uint32_t	 id, role;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	key = ir_u64(&ir);
	role = ir_u32(&ir);
	model = ir_str(&ir);
	tokens = ir_u64(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1)
		return ("length");
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
	switch (db_store(st.db, w->identity, key, role, model, tokens, text,
	    len, (int64_t)time(NULL), &r->rowid)) {
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
	uint64_t	 key;
	uint32_t	 id;
	size_t		 len;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	key = ir_u64(&ir);
	text = ir_data(&ir, &len);
	if (ir_end(&ir) == -1)
		return ("length");
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
	if (db_summary(st.db, w->identity, key, text, len,
	    (int64_t)time(NULL), st.conf->g.summaries_keep, &r->rowid) == -1)
		st.failed = 1;
	return (NULL);
}

/* IMSG_WORKER_HISTORY: u32 id, u32 kind, u32 count; _CONTEXT, _COUNT:
 * u32 id. */
static const char *
worker_read(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	uint32_t	 id, kind = HISTORY_MESSAGES, count = 0;

	ir_init(&ir, imsg);
	id = ir_u32(&ir);
	if (imsg->hdr.type == IMSG_WORKER_HISTORY) {
		kind = ir_u32(&ir);
		count = ir_u32(&ir);
	}
	if (ir_end(&ir) == -1)
		return ("length");
	if (kind != HISTORY_MESSAGES && kind != HISTORY_SUMMARIES)
		return ("kind");
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	run_read(w, imsg->hdr.type, id, kind, count);
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
 * IMSG_WORKER_ADMIT: u32 id, str model. The check of the limits and
 * the count of the request are one write of the round's transaction:
 * two sessions of one identity, or two daemons on one database, can
 * not both take the last request of a minute.
 */
static const char *
worker_admit(struct wchan *w, struct imsg *imsg)
{
	struct ireader	 ir;
	struct req	*r;
	struct limits	 lim;
	struct limit_use use;
	const char	*model, *which;
	char		 models[TOKEN_MODELS_MAX];
	uint64_t	 allowed, retry;
	int64_t		 now_ms;
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
	now_ms = wall_ms();
	if (db_limits(st.db, w->identity, &st.conf->g.limits, &lim, models,
	    sizeof(models)) == -1 ||
	    db_usage_now(st.db, w->identity, now_ms, &use) == -1) {
		r->error = "database error";
		return (NULL);
	}
	if (!limits_model_ok(models, model)) {
		r->code = "no-model";
		(void)snprintf(r->text, sizeof(r->text), "model %s is not"
		    " allowed for this token", model);
		return (NULL);
	}
	if ((which = limits_check(&lim, &use, now_ms, &allowed,
	    &retry)) != NULL) {
		r->code = "rate-limited";
		limits_text(r->text, sizeof(r->text), which, allowed, retry);
		event_add(w->identity, "limit %s %llu reached", which,
		    (unsigned long long)allowed);
		return (NULL);
	}
	if (db_usage_request(st.db, w->identity, model, now_ms) == -1) {
		r->error = "database error";
		group_fail_if_lost();
	}
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
	if (!TAILQ_EMPTY(&st.round))
		group_flush();
	since_day(days, since);
	la.w = w;
	la.id = id;
	la.n = 0;
	rv = db_usage_list(st.db, w->identity, since, usage_own_row, &la);
	if (rv == 0)
		rv = db_limits(st.db, w->identity, &st.conf->g.limits, &lim,
		    NULL, 0);
	if (rv == 0)
		rv = db_usage_now(st.db, w->identity, wall_ms(), &use);
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
		case IMSG_WORKER_CONTEXT:
		case IMSG_WORKER_COUNT:
			bad = worker_read(w, imsg);
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
	if (!TAILQ_EMPTY(&st.round))
		group_flush();
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
	if (db_purge(st.db, identity, &rows) == -1)
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
token_row(const struct token_info *t, void *arg)
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
	return (answer_line(arg, "%.12s %s %s %s %lld %lld", r->identity,
	    r->how, f, l, (long long)r->messages,
	    (long long)r->tokens_today));
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
	if (!TAILQ_EMPTY(&st.round))
		group_flush();
	la.w = w;
	la.id = id;
	la.n = 0;
	switch (imsg->hdr.type) {
	case IMSG_CTL_TOKEN_LIST:
		rv = db_token_list(st.db, token_row, &la);
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

	if (w->control)
		log_debug("control: channel closed");
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
		fatalx("%s: bad IMSG_PARENT_CHANNEL", __func__);
	if ((old = wchan_find(wid)) != NULL) {
		log_debug("worker %u: channel replaced", wid);
		wchan_drop(old);
	}
	(void)wchan_new(imsg->fd, wid, identity, 0);
	imsg->fd = -1;
}

/* IMSG_PARENT_CONTROL: control's channel (fd); a new one replaces it. */
static void
parent_control(struct imsg *imsg)
{
	if (imsg->datalen != 0 || imsg->fd == -1)
		fatalx("%s: bad IMSG_PARENT_CONTROL", __func__);
	if (st.ctl != NULL) {
		log_debug("control: channel replaced");
		wchan_drop(st.ctl);
	}
	st.ctl = wchan_new(imsg->fd, 0, "", 1);
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
	if (!TAILQ_EMPTY(&st.round))
		group_flush();
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
		fatalx("%s: bad IMSG_PARENT_SESSION", __func__);
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
		fatalx("%s: bad IMSG_PARENT_TOKEN", __func__);
	if (!TAILQ_EMPTY(&st.round))
		group_flush();
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
		fatalx("%s: bad IMSG_PARENT_EVENT", __func__);
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
	case IMSG_PARENT_TOKEN:
		parent_token(imsg);
		break;
	case IMSG_PARENT_EVENT:
		parent_log_event(imsg);
		break;
	default:
		fatalx("%s: unexpected %s", __func__,
		    imsg_type_name(imsg->hdr.type));
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
	(void)ch;
	storage_shutdown();
	exit(0);
}

/* Open as root, give the files to the user, then sandbox. */
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
	if ((st.db = db_open(st.database, st.sync)) == NULL)
		fatalx("cannot use database %s", st.database);
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
	sc.dbdir = dirname(dir);
	if (sandbox_enter(SANDBOX_STORAGE, &sc) == -1)
		fatalx("storage sandbox failed");
}

/* bridged -P storage: never returns. */
void
storage_main(void)
{
	TAILQ_INIT(&st.chans);
	TAILQ_INIT(&st.dead);
	TAILQ_INIT(&st.round);
	ev_timer_set(&st.round_end, storage_round_end, NULL);
	ev_timer_set(&st.queue_poll, storage_queue_poll, NULL);

	st.conf = child_config(NULL);
	storage_open();
	log_info("database %s open, schema version %d, sync %s",
	    st.database, DB_VERSION, st.sync == SYNC_FULL ? "full" : "normal");

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
