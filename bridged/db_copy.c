/*
 * db_copy.c: moving a database into another over the storage
 * interface (bridged -m): every table of the schema, row by row with
 * its ids, in one transaction of the target, which must be empty;
 * then the target's counts must be the source's. The tables and
 * columns are these constants, never input.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

/* Every table, parents before the rows that name them. */
static const struct db_table db_tables[] = {
	{ 0, "conversations", "id, client_id, name, model, system, role,"
	    " created_at, last_used, use_order", 9, 1 },
	{ 1, "messages", "id, client_id, role, content, timestamp, model,"
	    " tokens, msgkey, conversation_id", 9, 1 },
	{ 2, "summaries", "id, client_id, summary_text, created_at,"
	    " last_msg, msgkey, conversation_id", 7, 1 },
	{ 3, "jobs", "id, client_id, kind, state, turns, model, model_b,"
	    " prompt, upto_msg, upto_sum, created, started, finished,"
	    " attempts, tokens_in, tokens_out, ms, finish, err_code,"
	    " err_text, jobkey, conversation_id", 22, 1 },
	{ 4, "job_chunks", "job_id, seq, turn, kind, text", 5, 0 },
	{ 5, "tokens", "id, hash, label, created, expires, last_used,"
	    " revoked, models, requests, tokens, jobs", 11, 1 },
	{ 6, "usage", "identity, day, model, prompts, tokens_in,"
	    " tokens_out", 6, 0 },
	{ 7, "requests", "identity, time", 2, 0 },
	{ 8, "identities", "identity, how, first_seen, last_seen", 4, 0 },
	{ 9, "events", "id, time, identity, text", 4, 1 },
};
#define DB_NTABLES	(sizeof(db_tables) / sizeof(db_tables[0]))

struct copy_arg {
	struct db		*to;
	const struct db_table	*t;
	int64_t			 rows;
};

/* One row of the source into the target. */
static int
copy_row(const struct db_row *r, void *arg)
{
	struct copy_arg	*a = arg;

	if (db_backend(a->to)->copy->load(db_handle(a->to), a->t, r) == -1)
		return (-1);
	a->rows++;
	return (0);
}

/* How many rows a table has: 0 and *n, or -1. */
static int
copy_count(struct db *db, const struct db_table *t, int64_t *n)
{
	return (db_backend(db)->copy->count(db_handle(db), t, n));
}

/* Whether the backends can do their part; -1 (logged) if not. */
static int
copy_able(struct db *from, struct db *to)
{
	if (db_backend(from)->copy->dump == NULL) {
		log_warnx("copy: cannot read every row of a %s database",
		    db_kind(from));
		return (-1);
	}
	if (db_backend(to)->copy->load == NULL) {
		log_warnx("copy: cannot write into a %s database",
		    db_kind(to));
		return (-1);
	}
	return (0);
}

/* Refuse a target that has a row in any table. */
static int
copy_target_empty(struct db *to)
{
	int64_t	 n;
	size_t	 i;

	for (i = 0; i < DB_NTABLES; i++) {
		if (copy_count(to, &db_tables[i], &n) == -1)
			return (-1);
		if (n != 0) {
			log_warnx("copy: the target's %s has %lld rows;"
			    " it must be empty", db_tables[i].name,
			    (long long)n);
			return (-1);
		}
	}
	return (0);
}

/* The target's counts must be the source's, table by table. */
static int
copy_verify(struct db *from, struct db *to)
{
	int64_t	 a, b;
	size_t	 i;

	for (i = 0; i < DB_NTABLES; i++) {
		if (copy_count(from, &db_tables[i], &a) == -1 ||
		    copy_count(to, &db_tables[i], &b) == -1)
			return (-1);
		if (a != b) {
			log_warnx("copy: %s: %lld rows, copied %lld",
			    db_tables[i].name, (long long)a, (long long)b);
			return (-1);
		}
		log_info("copy: %s: %lld rows", db_tables[i].name,
		    (long long)a);
	}
	return (0);
}

/*
 * Copy every table of from into to, which must be empty, in one
 * transaction of to: all of it or nothing. 0, or -1 (logged).
 */
int
db_copy(struct db *from, struct db *to)
{
	struct copy_arg	 a;
	size_t		 i;

	if (copy_able(from, to) == -1 || copy_target_empty(to) == -1 ||
	    db_begin(to) == -1)
		return (-1);
	for (i = 0; i < DB_NTABLES; i++) {
		memset(&a, 0, sizeof(a));
		a.to = to;
		a.t = &db_tables[i];
		if (db_backend(from)->copy->dump(db_handle(from), a.t,
		    copy_row, &a) == -1) {
			log_warnx("copy: table %s failed", a.t->name);
			db_rollback(to);
			return (-1);
		}
	}
	if (db_backend(to)->copy->loaded(db_handle(to)) == -1 ||
	    db_commit(to) == -1) {
		db_rollback(to);
		return (-1);
	}
	return (copy_verify(from, to));
}
