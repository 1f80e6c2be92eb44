/*
 * fts_check.h: for t_db and fuzz_storage: is a SQLite file's search
 * index exactly its messages at or below search_mark? (SQLite 3.40's
 * integrity-check of an external content index looks at the index
 * alone: a message missing from it, or one deleted and still in it,
 * passes.) The messages are indexed again in a table of the
 * connection's own, and the two indexes' every term, message, column
 * and offset compared (fts5vocab).
 */

/* 1: the index is the messages at or below the mark; 0: it is not, or -1. */
static int
fts_in_step(const char *file)
{
	static const char build[] =
	    "CREATE VIRTUAL TABLE temp.fts_again USING fts5(content);"
	    "INSERT INTO temp.fts_again (rowid, content) SELECT id, content"
	    " FROM main.messages WHERE id <= (SELECT upto FROM"
	    " main.search_mark);"
	    "CREATE VIRTUAL TABLE temp.fts_was USING"
	    " fts5vocab(main, messages_fts, instance);"
	    "CREATE VIRTUAL TABLE temp.fts_now USING"
	    " fts5vocab(temp, fts_again, instance);";
	static const char differ[] =
	    "SELECT (SELECT count(*) FROM (SELECT term, doc, col, offset"
	    " FROM temp.fts_was EXCEPT SELECT term, doc, col, offset FROM"
	    " temp.fts_now)) + (SELECT count(*) FROM (SELECT term, doc, col,"
	    " offset FROM temp.fts_now EXCEPT SELECT term, doc, col, offset"
	    " FROM temp.fts_was))";
	sqlite3		*sq;
	sqlite3_stmt	*st = NULL;
	int		 ret = -1;

	if (sqlite3_open_v2(file, &sq, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		goto done;
	if (sqlite3_exec(sq, build, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(sq, differ, -1, &st, NULL) != SQLITE_OK)
		goto done;
	if (sqlite3_step(st) == SQLITE_ROW)
		ret = sqlite3_column_int64(st, 0) == 0;
 done:
	sqlite3_finalize(st);
	sqlite3_close(sq);
	return (ret);
}
