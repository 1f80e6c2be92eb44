/*
 * storage_export.c: history moved out of and into storage: a worker's
 * EXPORT of one conversation and IMPORT of one, and control's export
 * and purge of a whole identity for bridgectl. An export to control
 * goes out a page at a time, while control keeps up.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/* An export goes out a page at a time, while control keeps up. */
#define EXPORT_PAGE_ITEMS	256
#define EXPORT_PAGE_BYTES	(1024 * 1024)
#define EXPORT_QUEUE_HIGH	(2 * 1024 * 1024)

/* IMSG_WORKER_EXPORT: u32 id, str conversation; CONV, ITEM..., END. */
const char *
worker_export(struct ask *a)
{
	struct wchan	*w = a->w;
	struct item_arg	 ia;
	struct db_conv	*c;
	const char	*ref;
	int64_t		 after;
	int		 r, section;

	ref = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	if ((c = malloc(sizeof(*c))) == NULL)
		fatal("%s", __func__);
	r = conv_ref_ok(ref) ? db_conv_find(stor.db, w->identity, ref, c) :
	    DB_NONE;
	if (r == -1)
		answer_error(w, a->id, "database error");
	else if (r == DB_NONE)
		answer_refused(w, a->id, "not-found", "no such conversation");
	else if (answer_conv(w, a->id, c) == 0) {
		ia.w = w;
		ia.id = a->id;
		for (section = 0; r != -1 && section < 2; section++) {
			after = 0;
			while ((r = db_export(stor.db, w->identity, c->id,
			    section, &after, EXPORT_PAGE_ITEMS,
			    EXPORT_PAGE_BYTES, answer_item, &ia)) == 1)
				;
		}
		answer_end(w, a->id, r, (uint64_t)c->messages);
	}
	free(c);
	return (NULL);
}

/* One row of an export to control. */
static int
export_row(const struct db_item *item, void *arg)
{
	struct stor_export	*ex = arg;
	struct item_arg		 ia;

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
void
export_pump(struct wchan *w)
{
	struct stor_export	*ex;
	int			 r;

	while (!w->gone && (ex = TAILQ_FIRST(&w->exports)) != NULL) {
		if (w->ch.ibuf.queued > EXPORT_QUEUE_HIGH) {
			if (!ev_timer_pending(&stor.queue_poll))
				ev_timer_add(&stor.queue_poll,
				    STORAGE_QUEUE_POLL);
			return;
		}
		/* Reads run outside the write transaction. */
		round_settle();
		r = db_export(stor.db, ex->identity, 0, ex->section, &ex->after,
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

/* A purge was committed: IDENTITY, then END with the rows deleted. */
static void
answer_purged(struct wreq *r)
{
	answer_identity(r->w, r->id, r->identity);
	answer_u64(r->w, IMSG_STORAGE_END, r->id, (uint64_t)r->rowid);
	log_info("purged %lld rows of identity %s", (long long)r->rowid,
	    r->identity);
}

/*
 * IMSG_CTL_EXPORT, IMSG_CTL_PURGE: u32 id, str identity or a prefix
 * of one. The first answer names the whole identity.
 */
const char *
control_history(struct ask *a)
{
	struct wchan		*w = a->w;
	struct stor_export	*ex;
	struct wreq		*r;
	const char		*prefix, *err = NULL;
	char			 identity[IDENTITY_LEN + 1];
	uint64_t		 rows = 0;
	size_t			 len;

	prefix = ir_str(&a->ir);
	if (ir_end(&a->ir) == -1)
		return ("length");
	len = strlen(prefix);
	if (len == 0 || len > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != len)
		return ("identity");
	switch (db_resolve(stor.db, prefix, identity, sizeof(identity))) {
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
	if (a->type == IMSG_CTL_EXPORT) {
		if (err != NULL) {
			answer_error(w, a->id, err);
			return (NULL);
		}
		answer_identity(w, a->id, identity);
		if ((ex = calloc(1, sizeof(*ex))) == NULL)
			fatal("%s", __func__);
		ex->w = w;
		ex->id = a->id;
		(void)strlcpy(ex->identity, identity, sizeof(ex->identity));
		TAILQ_INSERT_TAIL(&w->exports, ex, entry);
		export_pump(w);
		return (NULL);
	}
	/* A purge is a write: answered after its COMMIT. */
	r = req_new(a);
	r->answer = answer_purged;
	if ((r->error = err) != NULL)
		return (NULL);
	(void)strlcpy(r->identity, identity, sizeof(r->identity));
	if (group_join() == -1)
		return (NULL);
	if (db_purge(stor.db, identity, &rows) == -1 ||
	    jdb_purge(stor.jdb, identity, &rows) == -1)
		stor.failed = 1;
	r->rowid = (int64_t)rows;
	event_log(identity, "purge %llu rows", (unsigned long long)rows);
	return (NULL);
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
			if (db_summary(stor.db, w->identity, c->id,
			    import_key(), text, len, (int64_t)when,
			    stor.conf->g.summaries_keep, &row) == -1)
				return (-1);
		} else if (db_store(stor.db, w->identity, c->id, import_key(),
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
const char *
worker_import(struct ask *a)
{
	struct wchan	*w = a->w;
	struct ireader	 again;
	struct wreq	*r;
	const char	*name, *model, *role, *system, *text;
	uint64_t	 when;
	uint32_t	 n, i, irole;
	size_t		 len;
	int		 rv;

	name = ir_str(&a->ir);
	model = ir_str(&a->ir);
	role = ir_str(&a->ir);
	system = ir_str(&a->ir);
	n = ir_u32(&a->ir);
	if (a->ir.bad || (*name != '\0' && !conv_name_valid(name)) ||
	    !conv_field_ok(model, MODEL_MAX_LEN) ||
	    !conv_field_ok(role, NAME_MAX_LEN) ||
	    !conv_field_ok(system, CONV_SYSTEM_MAX) || n > IMPORT_ITEMS_MAX)
		return ("conversation");
	again = a->ir;
	for (i = 0; i < n; i++) {
		irole = ir_u32(&a->ir);
		when = ir_u64(&a->ir);
		text = ir_data(&a->ir, &len);
		if (a->ir.bad || irole >= ROLE_MAX || when > INT64_MAX ||
		    !db_text_valid(text, len) ||
		    (irole == ROLE_SUMMARY && len == 0))
			return ("item");
	}
	if (ir_end(&a->ir) == -1)
		return ("length");
	if ((r = req_write(a)) == NULL)
		return (NULL);
	r->answer = answer_req_conv;
	if ((r->conv = malloc(sizeof(*r->conv))) == NULL)
		fatal("%s", __func__);
	rv = db_conv_new(stor.db, w->identity, name, model, system, role,
	    (int64_t)time(NULL), r->conv);
	if (rv == DB_EXISTS)
		rv = db_conv_new(stor.db, w->identity, "", model, system, role,
		    (int64_t)time(NULL), r->conv);
	/* All of it or nothing: a failure loses the round's transaction. */
	if (rv != 0 || import_items(w, &again, n, r->conv) == -1) {
		r->error = "database error";
		stor.failed = 1;
		return (NULL);
	}
	r->conv->messages = n;
	log_info("worker %u: imported %u items as conversation %lld",
	    w->wid, n, (long long)r->conv->id);
	return (NULL);
}
