/*
 * db_pg_msg.c: the PostgreSQL backend's messages, summaries,
 * conversations, search (tsvector with the 'simple' configuration),
 * export and purge: pg_msg_ops. The schema is db_pg.c's; db.c checks
 * what every backend shares. Every query is a prepared statement.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

/* The columns of a conversation, as pm_conv_row reads them. */
#define CONV_COLUMNS \
	"c.id, c.name, c.model, c.system, c.role, c.created_at," \
	" c.last_used, (SELECT count(*) FROM messages m" \
	" WHERE m.conversation_id = c.id)"

static const char sql_store[] =
    "INSERT INTO messages (client_id, role, content, timestamp, model,"
    " tokens, msgkey, conversation_id) VALUES ($1, $2, $3, $4, $5, $6,"
    " $7, $8) ON CONFLICT (conversation_id, msgkey) DO NOTHING"
    " RETURNING id";
static const char sql_store_dup[] =
    "SELECT id FROM messages WHERE conversation_id = $1 AND msgkey = $2";
static const char sql_summary[] =
    "INSERT INTO summaries (client_id, summary_text, created_at, last_msg,"
    " msgkey, conversation_id) VALUES ($1, $2, $3, (SELECT"
    " coalesce(max(id), 0) FROM messages WHERE conversation_id = $5),"
    " $4, $5) ON CONFLICT (client_id, msgkey) DO NOTHING RETURNING id";
static const char sql_summary_trim[] =
    "DELETE FROM summaries WHERE conversation_id = $1 AND id <="
    " (SELECT id FROM summaries WHERE conversation_id = $1"
    " ORDER BY id DESC LIMIT 1 OFFSET $2)";
static const char sql_msg_sizes[] =
    "SELECT id, octet_length(content) FROM messages"
    " WHERE conversation_id = $1 AND id > $2 ORDER BY id DESC LIMIT $3";
static const char sql_msg_rows[] =
    "SELECT id, timestamp, role, content FROM messages"
    " WHERE conversation_id = $1 AND id >= $2 ORDER BY id ASC LIMIT $3";
static const char sql_sum_sizes[] =
    "SELECT id, octet_length(summary_text) FROM summaries"
    " WHERE conversation_id = $1 AND id > $2 ORDER BY id DESC LIMIT $3";
static const char sql_sum_rows[] =
    "SELECT id, created_at, 'summary', summary_text FROM summaries"
    " WHERE conversation_id = $1 AND id >= $2 ORDER BY id ASC LIMIT $3";
static const char sql_sum_last[] =
    "SELECT id, created_at, summary_text, last_msg FROM summaries"
    " WHERE conversation_id = $1 ORDER BY id DESC LIMIT 1";
static const char sql_count[] =
    "SELECT count(*) FROM messages WHERE client_id = $1";
static const char sql_first[] =
    "SELECT min(c) FROM (SELECT min(client_id) AS c FROM messages"
    " WHERE client_id >= $1 AND client_id < $2 UNION ALL"
    " SELECT min(client_id) FROM summaries"
    " WHERE client_id >= $1 AND client_id < $2) x";
static const char sql_next[] =
    "SELECT min(c) FROM (SELECT min(client_id) AS c FROM messages"
    " WHERE client_id > $1 AND client_id < $2 UNION ALL"
    " SELECT min(client_id) FROM summaries"
    " WHERE client_id > $1 AND client_id < $2) x";
static const char sql_exp_msg[] =
    "SELECT id, timestamp, role, content FROM messages"
    " WHERE client_id = $1 AND id > $2"
    " AND ($4::bigint = 0 OR conversation_id = $4) ORDER BY id ASC"
    " LIMIT $3";
static const char sql_exp_sum[] =
    "SELECT id, created_at, 'summary', summary_text FROM summaries"
    " WHERE client_id = $1 AND id > $2"
    " AND ($4::bigint = 0 OR conversation_id = $4) ORDER BY id ASC"
    " LIMIT $3";
static const char sql_purge_msg[] =
    "DELETE FROM messages WHERE client_id = $1";
static const char sql_purge_sum[] =
    "DELETE FROM summaries WHERE client_id = $1";
static const char sql_purge_conv[] =
    "DELETE FROM conversations WHERE client_id = $1";
static const char sql_conv_owned[] =
    "SELECT 1 FROM conversations WHERE id = $1 AND client_id = $2";
static const char sql_conv_touch[] =
    "UPDATE conversations SET last_used = greatest(last_used, $2),"
    " use_order = nextval('use_order_seq') WHERE id = $1 AND NOT"
    " (last_used >= $2 AND use_order = (SELECT max(o.use_order)"
    " FROM conversations o WHERE o.client_id = conversations.client_id))";
static const char sql_conv_last[] =
    "SELECT " CONV_COLUMNS " FROM conversations c"
    " WHERE c.client_id = $1 ORDER BY c.use_order DESC LIMIT 1";
static const char sql_conv_by_id[] =
    "SELECT " CONV_COLUMNS " FROM conversations c"
    " WHERE c.client_id = $1 AND c.id = $2";
static const char sql_conv_by_name[] =
    "SELECT " CONV_COLUMNS " FROM conversations c"
    " WHERE c.client_id = $1 AND c.name = $2";
static const char sql_conv_new[] =
    "INSERT INTO conversations (client_id, name, model, system, role,"
    " created_at, last_used, use_order) VALUES ($1, $2, $3, $4, $5, $6,"
    " $6, nextval('use_order_seq')) ON CONFLICT (client_id, name)"
    " DO NOTHING RETURNING id";
static const char sql_conv_list[] =
    "SELECT " CONV_COLUMNS " FROM conversations c"
    " WHERE c.client_id = $1 ORDER BY c.use_order DESC LIMIT $2";
static const char sql_conv_set[] =
    "UPDATE conversations SET"
    " model = CASE WHEN $3::integer & 1 <> 0 THEN $4 ELSE model END,"
    " system = CASE WHEN $3::integer & 2 <> 0 THEN $5 ELSE system END,"
    " role = CASE WHEN $3::integer & 4 <> 0 THEN $6 ELSE role END,"
    " last_used = greatest(last_used, $7),"
    " use_order = nextval('use_order_seq')"
    " WHERE id = $1 AND client_id = $2";
static const char sql_conv_del_msg[] =
    "DELETE FROM messages WHERE conversation_id = $1";
/* Finished jobs go with it; queued and running ones run on. */
static const char *const sql_conv_del_rest[] = {
	"DELETE FROM summaries WHERE conversation_id = $1",
	"DELETE FROM conversations WHERE id = $1",
	("DELETE FROM job_chunks WHERE job_id IN (SELECT id FROM jobs"
	" WHERE conversation_id = $1 AND state >= 2)"),
	"DELETE FROM jobs WHERE conversation_id = $1 AND state >= 2",
};
/*
 * Each word of $1 is a phrase of its tokens; all must match. A word
 * without a token ("*") matches nothing, as FTS5's empty string does.
 */
static const char sql_search[] =
    "WITH w AS (SELECT phraseto_tsquery('simple', x) AS q"
    " FROM regexp_split_to_table($1::text, '[ \t]+') x WHERE x <> ''),"
    " q AS (SELECT CASE WHEN bool_and(numnode(w.q) > 0)"
    " THEN words_all(w.q) END AS q FROM w)"
    " SELECT m.conversation_id, m.id, m.timestamp, m.role,"
    " ts_headline('simple', m.content, q.q, 'StartSel=\"\", StopSel=\"\","
    " MaxWords=12, MinWords=4, ShortWord=0')"
    " FROM messages m, q WHERE q.q IS NOT NULL AND m.words @@ q.q"
    " AND m.client_id = $2 ORDER BY m.id DESC LIMIT $3";

/* A conversation was used now: it goes first in the list. */
static int
pm_conv_touch(void *h, int64_t conv, int64_t now)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_int(&a, conv);
	pa_int(&a, now);
	return (pq_cmd(h, sql_conv_touch, &a) == -1 ? -1 : 0);
}

/* The first column of a one-row query's first row: 1, 0 none, -1. */
static int
pm_one_id(struct pgdb *db, const char *sql, const struct pq_args *a,
    int64_t *id)
{
	struct pg_result	*r;
	int			 ret;

	if ((r = pq_query(db, sql, a)) == NULL)
		return (-1);
	ret = pq_rows(r) > 0;
	if (ret)
		*id = pq_int(r, 0, 0);
	pq_clear(r);
	return (ret);
}

/*
 * Store a message unless its conversation holds its key already;
 * either way *rowid is the row's id and the return is 0 (new), 1
 * (duplicate) or -1.
 */
static int
pm_store(void *h, const char *client, int64_t conv, uint64_t key,
    enum msg_role role, const char *model, uint64_t tokens,
    const char *text, size_t len, int64_t now, int64_t *rowid)
{
	struct pq_args	 a;
	int		 r;

	pa_init(&a);
	pa_text(&a, client);
	pa_text(&a, db_role_name(role));
	pa_data(&a, text, len);
	pa_int(&a, now);
	pa_opt(&a, model);
	if (tokens > 0)
		pa_int(&a, (int64_t)tokens);
	else
		pa_null(&a);
	pa_int(&a, (int64_t)key);
	pa_int(&a, conv);
	if ((r = pm_one_id(h, sql_store, &a, rowid)) == -1)
		return (-1);
	if (r == 1)
		return (pm_conv_touch(h, conv, now));
	pa_init(&a);
	pa_int(&a, conv);
	pa_int(&a, (int64_t)key);
	if ((r = pm_one_id(h, sql_store_dup, &a, rowid)) == 0)
		log_warnx("%s: key neither new nor stored", __func__);
	return (r == 1 ? 1 : -1);
}

/* Store a summary and keep only the newest `keep' of the conversation. */
static int
pm_summary(void *h, const char *client, int64_t conv, uint64_t key,
    const char *text, size_t len, int64_t now, int keep, int64_t *rowid)
{
	struct pq_args	 a;
	int		 r;

	pa_init(&a);
	pa_text(&a, client);
	pa_data(&a, text, len);
	pa_int(&a, now);
	pa_int(&a, (int64_t)key);
	pa_int(&a, conv);
	*rowid = 0;
	if ((r = pm_one_id(h, sql_summary, &a, rowid)) != 1)
		return (r);	/* 0: the same summary again, stored */
	pa_init(&a);
	pa_int(&a, conv);
	pa_int(&a, keep);
	return (pq_cmd(h, sql_summary_trim, &a) == -1 ? -1 : 0);
}

/* A row (id, time, role, text) into an item: 0, or -1 to skip it. */
static int
pm_item(struct pgdb *db, struct pg_result *r, int i, struct db_item *item)
{
	memset(item, 0, sizeof(*item));
	item->id = pq_int(r, i, 0);
	item->time = pq_int(r, i, 1);
	if (db_role_parse(pq_text(r, i, 2), &item->role) == -1) {
		log_warnx("database %s: row %lld: unknown role", pq_label(db),
		    (long long)item->id);
		return (-1);
	}
	item->text = pq_text(r, i, 3);
	item->len = pq_len(r, i, 3);
	return (0);
}

/*
 * The newest rows after `after' that fit in maxitems and maxbytes,
 * given to cb oldest first: sizes newest first to find where to
 * start, then the rows. *cut is DB_CUT_BYTES when older rows were
 * left out for maxbytes, DB_CUT_ITEMS when for maxitems.
 */
static int
pm_newest(struct pgdb *db, const char *sizes, const char *rows,
    int64_t conv, int64_t after, uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct db_item		 item;
	size_t			 bytes = 0, sz;
	int64_t			 first = -1;
	uint32_t		 n = 0;
	int			 i, ret = 0;

	pa_init(&a);
	pa_int(&a, conv);
	pa_int(&a, after);
	/* One more row than wanted tells whether any were left out. */
	pa_int(&a, (int64_t)maxitems + 1);
	if ((r = pq_query(db, sizes, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r); i++) {
		if (n == maxitems) {
			*cut = DB_CUT_ITEMS;
			break;
		}
		sz = (size_t)pq_int(r, i, 1);
		if (sz > maxbytes - bytes) {
			*cut = DB_CUT_BYTES;
			break;
		}
		bytes += sz;
		first = pq_int(r, i, 0);
		n++;
	}
	pq_clear(r);
	if (n == 0)
		return (0);
	pa_init(&a);
	pa_int(&a, conv);
	pa_int(&a, first);
	pa_int(&a, n);
	if ((r = pq_query(db, rows, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r); i++) {
		if (pm_item(db, r, i, &item) == -1)
			continue;
		if (cb(&item, arg) == -1) {
			ret = -1;
			break;
		}
		(*sent)++;
	}
	pq_clear(r);
	return (ret);
}

/* The last `count' messages or summaries of a conversation. */
static int
pm_history(void *h, int64_t conv, enum history_kind kind, uint32_t count,
    size_t maxbytes, int (*cb)(const struct db_item *, void *), void *arg,
    uint64_t *sent, int *cut)
{
	if (kind == HISTORY_SUMMARIES)
		return (pm_newest(h, sql_sum_sizes, sql_sum_rows, conv, 0,
		    count, maxbytes, cb, arg, sent, cut));
	return (pm_newest(h, sql_msg_sizes, sql_msg_rows, conv, 0, count,
	    maxbytes, cb, arg, sent, cut));
}

/*
 * A session's context: the last summary, then the messages it does
 * not cover, oldest first, within the bounds.
 */
static int
pm_context(void *h, int64_t conv, uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct db_item		 item;
	int64_t			 after = 0;
	int			 ret = 0, have = 0, scut = 0;

	pa_init(&a);
	pa_int(&a, conv);
	if ((r = pq_query(h, sql_sum_last, &a)) == NULL)
		return (-1);
	if (pq_rows(r) == 1) {
		memset(&item, 0, sizeof(item));
		item.id = pq_int(r, 0, 0);
		item.time = pq_int(r, 0, 1);
		item.role = ROLE_SUMMARY;
		item.text = pq_text(r, 0, 2);
		item.len = pq_len(r, 0, 2);
		after = pq_int(r, 0, 3);
		if (item.len > maxbytes)
			scut = DB_CUT_BYTES;	/* send what follows */
		else if (cb(&item, arg) == -1)
			ret = -1;
		else {
			have = 1;
			maxbytes -= item.len;
			maxitems--;
		}
	}
	pq_clear(r);
	if (ret == -1 || pm_newest(h, sql_msg_sizes, sql_msg_rows, conv,
	    after, maxitems, maxbytes, cb, arg, sent, cut) == -1)
		return (-1);
	*sent += have;
	if (*cut == 0)
		*cut = scut;
	return (0);
}

/* How many messages a client has stored. */
static int
pm_count(void *h, const char *client, uint64_t *count)
{
	struct pq_args	 a;
	int64_t		 n = 0;

	pa_init(&a);
	pa_text(&a, client);
	if (pm_one_id(h, sql_count, &a, &n) == -1)
		return (-1);
	*count = (uint64_t)n;
	return (0);
}

/*
 * The smallest client id in [lo, hi) (next 0) or (lo, hi) (next 1):
 * 1 and out, 0 none, -1.
 */
static int
pm_client_min(void *h, int next, const char *lo, const char *hi, char *out,
    size_t outlen)
{
	struct pq_args		 a;
	struct pg_result	*r;
	int			 ret = 0;

	pa_init(&a);
	pa_text(&a, lo);
	pa_text(&a, hi);
	if ((r = pq_query(h, next ? sql_next : sql_first, &a)) == NULL)
		return (-1);
	if (pq_rows(r) == 1 && !pq_null(r, 0, 0)) {
		if (strlcpy(out, pq_text(r, 0, 0), outlen) >= outlen) {
			log_warnx("database %s: client id too long",
			    pq_label(h));
			ret = -1;
		} else
			ret = 1;
	}
	pq_clear(r);
	return (ret);
}

/* One page of an export; see db_export. */
static int
pm_export(void *h, const char *client, int64_t conv, int section,
    int64_t *after, uint32_t max, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct db_item		 item;
	size_t			 bytes = 0;
	int			 i, n, ret = 0;

	pa_init(&a);
	pa_text(&a, client);
	pa_int(&a, *after);
	pa_int(&a, max);
	pa_int(&a, conv);
	if ((r = pq_query(h, section == 0 ? sql_exp_msg : sql_exp_sum,
	    &a)) == NULL)
		return (-1);
	n = pq_rows(r);
	for (i = 0; i < n; i++) {
		*after = pq_int(r, i, 0);
		if (pm_item(h, r, i, &item) == -1)
			continue;
		if (cb(&item, arg) == -1) {
			ret = -1;
			break;
		}
		bytes += item.len;
		if (bytes >= maxbytes) {
			ret = 1;
			break;
		}
	}
	pq_clear(r);
	if (ret == 0 && (uint32_t)n == max)
		ret = 1;
	return (ret);
}

/* Delete every message and summary of a client; *rows says how many. */
static int
pm_purge(void *h, const char *client, uint64_t *rows)
{
	struct pq_args	 a;
	int64_t		 n;

	pa_init(&a);
	pa_text(&a, client);
	if ((n = pq_cmd(h, sql_purge_msg, &a)) == -1)
		return (-1);
	*rows += (uint64_t)n;
	if ((n = pq_cmd(h, sql_purge_sum, &a)) == -1)
		return (-1);
	*rows += (uint64_t)n;
	return (pq_cmd(h, sql_purge_conv, &a) == -1 ? -1 : 0);
}

/* Whether a conversation is the client's: 1 yes, 0 no, -1 error. */
static int
pm_conv_owned(void *h, const char *client, int64_t conv)
{
	struct pq_args	 a;
	int64_t		 one;

	pa_init(&a);
	pa_int(&a, conv);
	pa_text(&a, client);
	return (pm_one_id(h, sql_conv_owned, &a, &one));
}

/* Copy a text field into a buffer; -1 if it is too long. */
static int
pm_field(struct pg_result *r, int i, int col, char *buf, size_t len)
{
	return (strlcpy(buf, pq_text(r, i, col), len) >= len ? -1 : 0);
}

/* A row of CONV_COLUMNS into *c. */
static int
pm_conv_row(struct pgdb *db, struct pg_result *r, int i, struct db_conv *c)
{
	memset(c, 0, sizeof(*c));
	c->id = pq_int(r, i, 0);
	if (pm_field(r, i, 1, c->name, sizeof(c->name)) == -1 ||
	    pm_field(r, i, 2, c->model, sizeof(c->model)) == -1 ||
	    pm_field(r, i, 3, c->system, sizeof(c->system)) == -1 ||
	    pm_field(r, i, 4, c->role, sizeof(c->role)) == -1) {
		log_warnx("database %s: conversation %lld: a field is too"
		    " long", pq_label(db), (long long)c->id);
		return (-1);
	}
	c->created = pq_int(r, i, 5);
	c->last_used = pq_int(r, i, 6);
	c->messages = pq_int(r, i, 7);
	return (0);
}

/* One conversation of a query: DB_FOUND, DB_NONE or -1. */
static int
pm_conv_one(struct pgdb *db, const char *sql, const struct pq_args *a,
    struct db_conv *c)
{
	struct pg_result	*r;
	int			 ret = DB_NONE;

	if ((r = pq_query(db, sql, a)) == NULL)
		return (-1);
	if (pq_rows(r) > 0)
		ret = pm_conv_row(db, r, 0, c) == -1 ? -1 : DB_FOUND;
	pq_clear(r);
	return (ret);
}

/* The client's most recently used conversation. */
static int
pm_conv_last(void *h, const char *client, struct db_conv *c)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, client);
	return (pm_conv_one(h, sql_conv_last, &a, c));
}

/* The client's conversation of this id: DB_FOUND, DB_NONE or -1. */
static int
pm_conv_by_id(void *h, const char *client, int64_t id, struct db_conv *c)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, client);
	pa_int(&a, id);
	return (pm_conv_one(h, sql_conv_by_id, &a, c));
}

/* The client's conversation of this name: DB_FOUND, DB_NONE or -1. */
static int
pm_conv_by_name(void *h, const char *client, const char *name,
    struct db_conv *c)
{
	struct pq_args	 a;

	pa_init(&a);
	pa_text(&a, client);
	pa_text(&a, name);
	return (pm_conv_one(h, sql_conv_by_name, &a, c));
}

/* A new conversation: 0 and *id, DB_EXISTS for a name taken, or -1. */
static int
pm_conv_new(void *h, const char *client, const char *name,
    const char *model, const char *system, const char *role, int64_t now,
    int64_t *id)
{
	struct pq_args	 a;
	int		 r;

	pa_init(&a);
	pa_text(&a, client);
	pa_opt(&a, name);
	pa_opt(&a, model);
	pa_opt(&a, system);
	pa_opt(&a, role);
	pa_int(&a, now);
	if ((r = pm_one_id(h, sql_conv_new, &a, id)) == -1)
		return (-1);
	return (r == 1 ? 0 : DB_EXISTS);
}

/* The client's last `count' conversations, most recently used first. */
static int
pm_conv_list(void *h, const char *client, uint32_t count,
    int (*cb)(const struct db_conv *, void *), void *arg, uint64_t *n)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct db_conv		 c;
	int			 i, ret = 0;

	pa_init(&a);
	pa_text(&a, client);
	pa_int(&a, count);
	if ((r = pq_query(h, sql_conv_list, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r); i++) {
		if (pm_conv_row(h, r, i, &c) == -1)
			continue;
		if (cb(&c, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	pq_clear(r);
	return (ret);
}

/* Set the fields of mask of the client's conversation: 1, 0 none, -1. */
static int
pm_conv_set(void *h, const char *client, int64_t conv, int mask,
    const char *model, const char *system, const char *role, int64_t now)
{
	struct pq_args	 a;
	int64_t		 n;

	pa_init(&a);
	pa_int(&a, conv);
	pa_text(&a, client);
	pa_int(&a, mask);
	pa_opt(&a, model);
	pa_opt(&a, system);
	pa_opt(&a, role);
	pa_int(&a, now);
	if ((n = pq_cmd(h, sql_conv_set, &a)) == -1)
		return (-1);
	return (n == 1 ? 1 : 0);
}

/*
 * Delete a conversation with its messages, summaries and finished
 * jobs; *messages says how many messages went.
 */
static int
pm_conv_delete(void *h, int64_t conv, uint64_t *messages)
{
	struct pq_args	 a;
	int64_t		 n;
	size_t		 i;

	pa_init(&a);
	pa_int(&a, conv);
	if ((n = pq_cmd(h, sql_conv_del_msg, &a)) == -1)
		return (-1);
	*messages = (uint64_t)n;
	for (i = 0; i < sizeof(sql_conv_del_rest) /
	    sizeof(sql_conv_del_rest[0]); i++)
		if (pq_cmd(h, sql_conv_del_rest[i], &a) == -1)
			return (-1);
	return (0);
}

/*
 * Search the client's messages for every word, each a phrase of its
 * tokens, newest first; the words are a parameter, never SQL.
 */
static int
pm_search(void *h, const char *client, const char *words, uint32_t max,
    int (*cb)(const struct db_match *, void *), void *arg, uint64_t *n)
{
	struct pq_args		 a;
	struct pg_result	*r;
	struct db_match		 m;
	int			 i, ret = 0;

	pa_init(&a);
	pa_text(&a, words);
	pa_text(&a, client);
	pa_int(&a, max);
	if ((r = pq_query(h, sql_search, &a)) == NULL)
		return (-1);
	for (i = 0; i < pq_rows(r); i++) {
		memset(&m, 0, sizeof(m));
		m.conv = pq_int(r, i, 0);
		m.id = pq_int(r, i, 1);
		m.time = pq_int(r, i, 2);
		if (db_role_parse(pq_text(r, i, 3), &m.role) == -1)
			continue;
		m.text = pq_text(r, i, 4);
		m.len = pq_len(r, i, 4);
		if (cb(&m, arg) == -1) {
			ret = -1;
			break;
		}
		(*n)++;
	}
	pq_clear(r);
	return (ret);
}

const struct db_msg_ops pg_msg_ops = {
	.store = pm_store,
	.summary = pm_summary,
	.history = pm_history,
	.context = pm_context,
	.count = pm_count,
	.client_min = pm_client_min,
	.export = pm_export,
	.purge = pm_purge,
	.conv_owned = pm_conv_owned,
	.conv_touch = pm_conv_touch,
	.conv_last = pm_conv_last,
	.conv_by_id = pm_conv_by_id,
	.conv_by_name = pm_conv_by_name,
	.conv_new = pm_conv_new,
	.conv_list = pm_conv_list,
	.conv_set = pm_conv_set,
	.conv_delete = pm_conv_delete,
	.search = pm_search,
};
