/*
 * db_pg_copy.c: the PostgreSQL side of moving a database into it
 * (pg_copy_ops): rows inserted with their ids (prepared statements,
 * the values parameters), counts, and the sequences set past the ids
 * copied. The SQL is made of db_copy.c's constant names only.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "bridged.h"

#define PC_TABLES	16		/* db_copy.c's list, at most */

/* One statement per table, made once: pq_query knows it by address. */
static char	 pc_insert[PC_TABLES][768];
static char	 pc_count_sql[PC_TABLES][128];

/* The INSERT of a table, made the first time. NULL if it cannot be. */
static const char *
pc_insert_sql(const struct db_table *t)
{
	char	*s;
	size_t	 len;
	int	 i;

	if (t->index < 0 || t->index >= PC_TABLES)
		return (NULL);
	s = pc_insert[t->index];
	if (*s != '\0')
		return (s);
	(void)snprintf(s, sizeof(pc_insert[0]), "INSERT INTO %s (%s)"
	    " VALUES (", t->name, t->columns);
	for (i = 0; i < t->ncols; i++) {
		len = strlen(s);
		(void)snprintf(s + len, sizeof(pc_insert[0]) - len, "%s$%d",
		    i > 0 ? ", " : "", i + 1);
	}
	len = strlen(s);
	if (snprintf(s + len, sizeof(pc_insert[0]) - len, ")") !=
	    1) {
		*s = '\0';
		return (NULL);
	}
	return (s);
}

/* One row, with its ids, in the open transaction. */
static int
pc_load(void *h, const struct db_table *t, const struct db_row *r)
{
	struct pq_args	 a;
	const char	*sql;
	int		 i;

	if ((sql = pc_insert_sql(t)) == NULL || r->n != t->ncols)
		return (-1);
	pa_init(&a);
	for (i = 0; i < r->n; i++)
		if (r->v[i] != NULL)
			pa_text(&a, r->v[i]);
		else
			pa_null(&a);
	/* Text format: the columns' types read the values. */
	for (i = 0; i < a.n; i++)
		a.fmt[i] = 0;
	return (pq_cmd(h, sql, &a) == 1 ? 0 : -1);
}

/* How many rows a table has. */
static int
pc_count(void *h, const struct db_table *t, int64_t *n)
{
	struct pg_result	*r;
	char			*sql;
	int			 ok;

	if (t->index < 0 || t->index >= PC_TABLES)
		return (-1);
	sql = pc_count_sql[t->index];
	if (*sql == '\0')
		(void)snprintf(sql, sizeof(pc_count_sql[0]),
		    "SELECT count(*) FROM %s", t->name);
	if ((r = pq_query(h, sql, NULL)) == NULL)
		return (-1);
	if ((ok = pq_rows(r) == 1))
		*n = pq_int(r, 0, 0);
	pq_clear(r);
	return (ok ? 0 : -1);
}

/* The ids to come follow the ids copied; so does the use order. */
static int
pc_loaded(void *h)
{
	static const char sql[] =
	    "SELECT setval(pg_get_serial_sequence(t, 'id'),"
	    " greatest(m, 1), m > 0) FROM (VALUES"
	    " ('conversations', (SELECT max(id) FROM conversations)),"
	    " ('messages', (SELECT max(id) FROM messages)),"
	    " ('summaries', (SELECT max(id) FROM summaries)),"
	    " ('jobs', (SELECT max(id) FROM jobs)),"
	    " ('tokens', (SELECT max(id) FROM tokens)),"
	    " ('events', (SELECT max(id) FROM events))) v (t, m0),"
	    " LATERAL (SELECT coalesce(m0, 0) AS m) x";
	static const char order[] =
	    "SELECT setval('use_order_seq', greatest(coalesce("
	    "(SELECT max(use_order) FROM conversations), 0), 1))";
	struct pg_result	*r;

	if ((r = pq_query(h, sql, NULL)) == NULL)
		return (-1);
	pq_clear(r);
	if ((r = pq_query(h, order, NULL)) == NULL)
		return (-1);
	pq_clear(r);
	return (0);
}

const struct db_copy_ops pg_copy_ops = {
	.dump = NULL,		/* out of a server: not yet */
	.load = pc_load,
	.count = pc_count,
	.loaded = pc_loaded,
};
