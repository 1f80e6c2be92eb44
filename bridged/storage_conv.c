/*
 * storage_conv.c: what a worker asks of storage about its identity's
 * conversations: messages and summaries stored, history, context,
 * conversations made, listed, set and deleted, and search. A worker
 * names a conversation by id or name; storage looks it up among its
 * identity's only, so another identity's id is as unknown as one that
 * does not exist.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/*
 * IMSG_WORKER_STORE: u32 id, u64 key, u64 conversation, u32 role, str
 * model, u64 tokens, data text. Returns why it is malformed, or NULL.
 */
const char *
worker_store(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*model, *text;
	uint64_t	 key, tokens, conv;
	uint32_t	 role;
	size_t		 len;

	key = ir_u64(&a->ir);
	conv = ir_u64(&a->ir);
	role = ir_u32(&a->ir);
	model = ir_str(&a->ir);
	tokens = ir_u64(&a->ir);
	text = ir_data(&a->ir, &len);
	if (ir_end(&a->ir) == -1)
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
	r = req_new(a);
	if (!db_text_valid(text, len)) {
		log_warnx("worker %u: message not stored: too long, not"
		    " UTF-8 or with NUL", w->wid);
		r->error = "invalid text";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	switch (db_store(stor.db, w->identity, (int64_t)conv, key, role, model,
	    tokens, text, len, (int64_t)time(NULL), &r->rowid)) {
	case -1:
		r->error = "database error";
		group_fail_if_lost();
		break;
	case 1:
		log_debug("worker %u: request %u resent, already row %lld",
		    w->wid, a->id, (long long)r->rowid);
		break;
	}
	return (NULL);
}

/* IMSG_WORKER_SUMMARY: u32 id, u64 key, u64 conversation, data text. */
const char *
worker_summary(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*text;
	uint64_t	 key, conv;
	size_t		 len;

	key = ir_u64(&a->ir);
	conv = ir_u64(&a->ir);
	text = ir_data(&a->ir, &len);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (conv > INT64_MAX)
		return ("conversation");
	r = req_new(a);
	if (len == 0 || !db_text_valid(text, len)) {
		log_warnx("worker %u: summary not stored: empty, too long,"
		    " not UTF-8 or with NUL", w->wid);
		r->error = "invalid text";
		return (NULL);
	}
	if (group_join() == -1)
		return (NULL);
	/* Both statements or neither: a failure loses the transaction. */
	if (db_summary(stor.db, w->identity, (int64_t)conv, key, text, len,
	    (int64_t)time(NULL), stor.conf->g.summaries_keep, &r->rowid) == -1)
		stor.failed = 1;
	return (NULL);
}

/*
 * IMSG_WORKER_HISTORY: u32 id, u64 conversation, u32 kind, u32 count;
 * IMSG_WORKER_COUNT: u32 id. ITEM..., END with their number.
 */
const char *
worker_read(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	uint64_t	 conv = 0, n = 0;
	uint32_t	 kind = HISTORY_MESSAGES, count = 0;
	int		 rv, cut = 0;

	if (a->type == IMSG_WORKER_HISTORY) {
		conv = ir_u64(&a->ir);
		kind = ir_u32(&a->ir);
		count = ir_u32(&a->ir);
	}
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (kind != HISTORY_MESSAGES && kind != HISTORY_SUMMARIES)
		return ("kind");
	if (conv > INT64_MAX)
		return ("conversation");
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	if (a->type == IMSG_WORKER_COUNT)
		rv = db_count(stor.db, w->identity, &n);
	else {
		ia.w = w;
		ia.id = a->id;
		rv = db_history(stor.db, w->identity, (int64_t)conv, kind,
		    count, read_bound(), answer_item, &ia, &n, &cut);
		if (rv == 0 && cut == DB_CUT_BYTES)
			log_info("worker %u: history cut to %llu items,"
			    " %zu bytes", w->wid, (unsigned long long)n,
			    read_bound());
	}
	answer_end(w, a->id, rv, n);
	return (NULL);
}

/* A conversation reference the client may have typed. */
int
conv_ref_ok(const char *ref)
{
	return (strlen(ref) <= CONV_NAME_MAX);
}

/* A text field of a conversation, bounded and UTF-8. */
int
conv_field_ok(const char *s, size_t max)
{
	return (strlen(s) < max && utf8_valid(s, strlen(s)));
}

/* Make the identity's first conversation, in a transaction of its own. */
static int
conv_make(struct wchan *w, const char *model, struct db_conv *c)
{
	if (db_begin(stor.db) == -1)
		return (-1);
	if (db_conv_new(stor.db, w->identity, "", model, "", "",
	    (int64_t)time(NULL), c) != 0) {
		db_rollback(stor.db);
		return (-1);
	}
	if (db_commit(stor.db) == -1)
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

	if (db_begin(stor.db) == -1)
		return (-1);
	if (db_conv_touch(stor.db, c->id, now) == -1) {
		db_rollback(stor.db);
		return (-1);
	}
	if (db_commit(stor.db) == -1)
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
const char *
worker_context(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	struct db_conv	*c;
	const char	*ref, *model;
	uint64_t	 n = 0;
	int		 r, cut = 0;

	ref = ir_str(&a->ir);
	model = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (!conv_field_ok(model, MODEL_MAX_LEN))
		return ("model");
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	if (*ref == '\0') {
		if ((r = db_conv_last(stor.db, w->identity, c)) == DB_NONE)
			r = conv_make(w, model, c);
	} else if (!conv_ref_ok(ref))
		r = DB_NONE;
	else if ((r = db_conv_find(stor.db, w->identity, ref, c)) == DB_FOUND)
		r = conv_use(c);
	if (r == -1)
		answer_error(w, a->id, "database error");
	else if (r == DB_NONE)
		answer_refused(w, a->id, "not-found", "no such conversation");
	else if (answer_conv(w, a->id, c) == 0) {
		ia.w = w;
		ia.id = a->id;
		r = db_context(stor.db, w->identity, c->id,
		    STORAGE_CONTEXT_MAX, read_bound(), answer_item, &ia, &n,
		    &cut);
		answer_end(w, a->id, r, n);
		if (cut != 0)
			log_info("worker %u: context cut to its newest %llu"
			    " items", w->wid, (unsigned long long)n);
	}
	free(c);
	return (NULL);
}

/* IMSG_WORKER_CONV_NEW: u32 id, str name, str model, str role,
 * str system; answered CONV after the commit. */
const char *
worker_conv_new(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*name, *model, *role, *system;

	name = ir_str(&a->ir);
	model = ir_str(&a->ir);
	role = ir_str(&a->ir);
	system = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (*name != '\0' && !conv_name_valid(name))
		return ("name");
	if (!conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX))
		return ("field");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_req_conv;
	if ((r->conv = malloc(sizeof(*r->conv))) == NULL)
		fatal("%s", __func__);
	switch (db_conv_new(stor.db, w->identity, name, model, system, role,
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
const char *
worker_conv_list(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	uint64_t	 n = 0;
	uint32_t	 count;

	count = ir_u32(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (count > STORAGE_HISTORY_MAX)
		count = STORAGE_HISTORY_MAX;
	ia.w = w;
	ia.id = a->id;
	answer_end(w, a->id, db_conv_list(stor.db, w->identity, count,
	    conv_item, &ia, &n), n);
	return (NULL);
}

/* IMSG_WORKER_CONV_SET: u32 id, u64 conversation, u32 mask, str model,
 * str role, str system; STORED with the conversation's id. */
const char *
worker_conv_set(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	const char	*model, *role, *system;
	uint64_t	 conv;
	uint32_t	 mask;

	conv = ir_u64(&a->ir);
	mask = ir_u32(&a->ir);
	model = ir_str(&a->ir);
	role = ir_str(&a->ir);
	system = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (conv > INT64_MAX ||
	    (mask & ~(CONV_MODEL | CONV_SYSTEM | CONV_ROLE)) != 0)
		return ("conversation");
	if (!conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX))
		return ("field");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->rowid = (int64_t)conv;
	switch (db_conv_set(stor.db, w->identity, (int64_t)conv, (int)mask,
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

/* IMSG_STORAGE_DELETED: u32 id, u64 conversation, u64 messages. */
static void
answer_deleted(struct wreq *r)
{
	struct ibuf	*b;

	if (r->w->gone)
		return;
	if ((b = channel_create(&r->w->ch, IMSG_STORAGE_DELETED, 0, 32)) ==
	    NULL || ibuf_add_u32(b, r->id) == -1 ||
	    ibuf_add_u64(b, (uint64_t)r->rowid) == -1 ||
	    ibuf_add_u64(b, r->count) == -1)
		fatal("%s", __func__);
	channel_send(&r->w->ch, b);
}

/* A conversation made (NEW, IMPORT) was committed: CONV. */
void
answer_req_conv(struct wreq *r)
{
	(void)answer_conv(r->w, r->id, r->conv);
}

/* IMSG_WORKER_CONV_DELETE: u32 id, str conversation; DELETED. */
const char *
worker_conv_delete(struct ask *a)
{
	struct wchan	*w = a->w;
	struct wreq	*r;
	struct db_conv	*c;
	const char	*ref;
	int		 found;

	ref = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_deleted;
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	found = conv_ref_ok(ref) ? db_conv_find(stor.db, w->identity, ref, c) :
	    DB_NONE;
	if (found == DB_FOUND)
		found = db_conv_delete(stor.db, w->identity, c->id, &r->count);
	if (found == 1) {
		r->rowid = c->id;
		log_debug("worker %u: conversation %lld deleted", w->wid,
		    (long long)c->id);
	} else if (found == DB_NONE)
		req_refuse(r, "not-found", "no such conversation");
	else {
		r->error = "database error";
		stor.failed = 1;
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
const char *
worker_search(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	const char	*words;
	uint64_t	 n = 0;

	words = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if (*words == '\0' || strlen(words) > DB_SEARCH_MAX ||
	    !utf8_valid(words, strlen(words))) {
		answer_refused(w, a->id, "bad-argument", "search words must be"
		    " 1 to " DB_SEARCH_MAX_S " bytes of UTF-8");
		return (NULL);
	}
	ia.w = w;
	ia.id = a->id;
	answer_end(w, a->id, db_search(stor.db, w->identity, words,
	    STORAGE_SEARCH_MAX, answer_match, &ia, &n), n);
	return (NULL);
}
