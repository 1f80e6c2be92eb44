/*
 * db_sqlite_copy.c: the SQLite side of moving a database
 * (sqlite_copy_ops): every row of a table, and its count. The SQL is
 * made of db_copy.c's constant table and column names only.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

/* Prepare a query of a table made of its constant names; NULL logged. */
static sqlite3_stmt *
sc_prepare(struct sqdb *db, const char *fmt, const struct db_table *t)
{
	sqlite3_stmt	*st;
	char		 sql[512];

	if (snprintf(sql, sizeof(sql), fmt, t->columns, t->name) >=
	    (int)sizeof(sql) || sqlite3_prepare_v2(sq_sqlite(db), sql, -1,
	    &st, NULL) != SQLITE_OK) {
		log_warnx("database %s: cannot read table %s: %s",
		    sq_path(db), t->name, sqlite3_errmsg(sq_sqlite(db)));
		return (NULL);
	}
	return (st);
}

/* Every row of a table, each column as text (NULL for NULL), to cb. */
static int
sc_dump(void *h, const struct db_table *t,
    int (*cb)(const struct db_row *, void *), void *arg)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	struct db_row	 r;
	int		 i, rc, ret = 0;

	if (t->ncols > DB_ROW_MAX ||
	    (st = sc_prepare(db, "SELECT %s FROM %s", t)) == NULL)
		return (-1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&r, 0, sizeof(r));
		r.n = t->ncols;
		for (i = 0; i < t->ncols; i++)
			r.v[i] = (const char *)sqlite3_column_text(st, i);
		if (cb(&r, arg) == -1) {
			ret = -1;
			break;
		}
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		sq_fail(db, st);
		ret = -1;
	}
	sqlite3_finalize(st);
	return (ret);
}

/* How many rows a table has. */
static int
sc_count(void *h, const struct db_table *t, int64_t *n)
{
	struct sqdb	*db = h;
	sqlite3_stmt	*st;
	int		 ok;

	if ((st = sc_prepare(db, "SELECT count(*) %.0s FROM %s", t)) == NULL)
		return (-1);
	if ((ok = sqlite3_step(st) == SQLITE_ROW))
		*n = sqlite3_column_int64(st, 0);
	else
		sq_fail(db, st);
	sqlite3_finalize(st);
	return (ok ? 0 : -1);
}

const struct db_copy_ops sqlite_copy_ops = {
	.dump = sc_dump,
	.load = NULL,		/* into a file: not yet */
	.count = sc_count,
	.loaded = NULL,
};
