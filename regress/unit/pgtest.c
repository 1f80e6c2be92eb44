/*
 * pgtest.c: what the storage tests share to run against PostgreSQL:
 * the database BRIDGED_TEST_PG names (a conninfo string or a URI),
 * with the password in the file BRIDGED_TEST_PG_PASSFILE if there is
 * one, each test program in a schema of its own, made afresh.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pgtest.h"

static char	 password[256];

/* The password of BRIDGED_TEST_PG_PASSFILE, or NULL when none. */
const char *
pgtest_password(void)
{
	const char	*path;
	FILE		*f;

	if (password[0] != '\0')
		return (password);
	if ((path = getenv("BRIDGED_TEST_PG_PASSFILE")) == NULL ||
	    (f = fopen(path, "r")) == NULL)
		return (NULL);
	if (fgets(password, sizeof(password), f) == NULL)
		password[0] = '\0';
	fclose(f);
	password[strcspn(password, "\r\n")] = '\0';
	return (password[0] != '\0' ? password : NULL);
}

/* A connection of our own to the target, with the password. */
static PGconn *
pgtest_connect(const char *target)
{
	const char	*kw[] = { "dbname", "password", NULL };
	const char	*val[] = { target, pgtest_password(), NULL };

	if (val[1] == NULL)
		kw[1] = NULL;
	return (PQconnectdbParams(kw, val, 1));
}

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
	c = pgtest_connect(base);
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

/*
 * A query on a connection of our own: its result (PQclear it), or
 * NULL with the error as a comment line.
 */
PGresult *
pgtest_query(const char *target, const char *sql)
{
	PGconn		*c;
	PGresult	*res;

	c = pgtest_connect(target);
	if (PQstatus(c) != CONNECTION_OK) {
		printf("# %s", PQerrorMessage(c));
		PQfinish(c);
		return (NULL);
	}
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK) {
		printf("# %s", PQerrorMessage(c));
		PQclear(res);
		res = NULL;
	}
	PQfinish(c);
	return (res);
}

/* One integer of a query on a connection of our own; -1 on error. */
long long
pgtest_int(const char *target, const char *sql)
{
	PGresult	*res;
	long long	 v = -1;

	if ((res = pgtest_query(target, sql)) == NULL)
		return (-1);
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return (v);
}
