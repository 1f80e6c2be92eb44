/*
 * pgtest.c: what the storage tests share to run against PostgreSQL:
 * the database BRIDGED_TEST_PG names (a conninfo string or a URI),
 * each test program in a schema of its own, made afresh.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgtest.h"

/*
 * The database string of a fresh schema for one test: 1 and out, 0
 * when BRIDGED_TEST_PG is not set (a skip line says so), -1 when the
 * server cannot be used.
 */
int
pgtest_target(const char *test, const char *schema, char *out, size_t len)
{
	const char	*base;
	char		 sql[256];
	PGconn		*c;
	PGresult	*res;
	int		 ok, n;

	if ((base = getenv("BRIDGED_TEST_PG")) == NULL || *base == '\0') {
		printf("skip %s-postgresql: BRIDGED_TEST_PG is not set, no"
		    " PostgreSQL to test against\n", test);
		return (0);
	}
	c = PQconnectdb(base);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("FAIL %s-postgresql: cannot connect: %s", test,
		    PQerrorMessage(c));
		PQfinish(c);
		return (-1);
	}
	(void)snprintf(sql, sizeof(sql), "SET client_min_messages = warning;"
	    " DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
	    schema);
	res = PQexec(c, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		printf("FAIL %s-postgresql: %s", test, PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	if (!ok)
		return (-1);
	/* The schema goes first in the search path of every connection. */
	if (strncmp(base, "postgres", 8) == 0)
		n = snprintf(out, len, "%s%coptions=-csearch_path%%3D%s", base,
		    strchr(base, '?') != NULL ? '&' : '?', schema);
	else
		n = snprintf(out, len, "%s options='-csearch_path=%s'", base,
		    schema);
	if (n < 0 || (size_t)n >= len) {
		printf("FAIL %s-postgresql: BRIDGED_TEST_PG too long\n", test);
		return (-1);
	}
	return (1);
}

/* One integer of a query on a connection of our own; -1 on error. */
long long
pgtest_int(const char *target, const char *sql)
{
	PGconn		*c;
	PGresult	*res;
	long long	 v = -1;

	c = PQconnectdb(target);
	res = PQexec(c, sql);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		printf("# %s", PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return (v);
}
