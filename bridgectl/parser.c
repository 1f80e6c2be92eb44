/*
 * parser.c: bridgectl's command grammar as token tables, one table per
 * position, each entry naming the table that may follow it.
 */

#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridgectl.h"

enum token_type {
	ENDTOKEN,
	NOKEY,
	KEYWORD,
	SESSIONID,
	JOBID,
	IDENTITY,
	FORMAT,
	FORCE
};

struct token {
	enum token_type		 type;
	const char		*keyword;
	int			 value;
	const struct token	*next;
};

static const struct token t_main[];
static const struct token t_show[];
static const struct token t_kill[];
static const struct token t_sessionid[];
static const struct token t_jobid[];
static const struct token t_log[];
static const struct token t_export[];
static const struct token t_format[];
static const struct token t_purge[];
static const struct token t_purge_id[];

static const struct token t_main[] = {
	{ KEYWORD,	"show",		NONE,		t_show },
	{ KEYWORD,	"kill",		NONE,		t_kill },
	{ KEYWORD,	"reload",	RELOAD,		NULL },
	{ KEYWORD,	"log",		NONE,		t_log },
	{ KEYWORD,	"monitor",	MONITOR,	NULL },
	{ KEYWORD,	"export",	EXPORT,		t_export },
	{ KEYWORD,	"purge",	PURGE,		t_purge },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_show[] = {
	{ KEYWORD,	"status",	SHOW_STATUS,	NULL },
	{ KEYWORD,	"sessions",	SHOW_SESSIONS,	NULL },
	{ KEYWORD,	"models",	SHOW_MODELS,	NULL },
	{ KEYWORD,	"jobs",		SHOW_JOBS,	NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_kill[] = {
	{ KEYWORD,	"session",	KILL_SESSION,	t_sessionid },
	{ KEYWORD,	"job",		KILL_JOB,	t_jobid },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_jobid[] = {
	{ JOBID,	"",		NONE,		NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_sessionid[] = {
	{ SESSIONID,	"",		NONE,		NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_log[] = {
	{ KEYWORD,	"verbose",	LOG_VERBOSE,	NULL },
	{ KEYWORD,	"brief",	LOG_BRIEF,	NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_export[] = {
	{ IDENTITY,	"",		NONE,		t_format },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_format[] = {
	{ NOKEY,	"",		NONE,		NULL },
	{ FORMAT,	"json",		NONE,		NULL },
	{ FORMAT,	"markdown",	NONE,		NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_purge[] = {
	{ FORCE,	"-f",		NONE,		t_purge_id },
	{ IDENTITY,	"",		NONE,		NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_purge_id[] = {
	{ IDENTITY,	"",		NONE,		NULL },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static struct parse_result	 res;

/* Is s a plausible identity: 1 to 64 hex digits? */
static int
is_identity(const char *s)
{
	size_t	 n = strspn(s, "0123456789abcdef");

	return (n > 0 && n <= 64 && s[n] == '\0');
}

static const struct token *
match_token(const char *word, const struct token *table)
{
	const char	*errstr;
	int		 i;

	for (i = 0; table[i].type != ENDTOKEN; i++) {
		switch (table[i].type) {
		case NOKEY:
			if (word == NULL)
				return (&table[i]);
			break;
		case KEYWORD:
		case FORCE:
		case FORMAT:
			if (word == NULL || strcmp(word, table[i].keyword) != 0)
				break;
			if (table[i].type == FORCE)
				res.force = 1;
			else if (table[i].type == FORMAT)
				res.format = table[i].keyword;
			if (table[i].value != NONE)
				res.action = table[i].value;
			return (&table[i]);
		case SESSIONID:
			if (word == NULL)
				break;
			res.session = strtonum(word, 1, UINT32_MAX, &errstr);
			if (errstr != NULL) {
				fprintf(stderr, "bridgectl: bad session id: "
				    "%s\n", word);
				exit(1);
			}
			return (&table[i]);
		case JOBID:
			if (word == NULL)
				break;
			res.job = strtonum(word, 1, LLONG_MAX, &errstr);
			if (errstr != NULL) {
				fprintf(stderr, "bridgectl: bad job id: %s\n",
				    word);
				exit(1);
			}
			return (&table[i]);
		case IDENTITY:
			if (word == NULL || !is_identity(word))
				break;
			res.identity = word;
			return (&table[i]);
		case ENDTOKEN:
			break;
		}
	}
	return (NULL);
}

/* End the error line with what could have come where it went wrong. */
static void
show_valid(const struct token *table)
{
	int	 i;

	fprintf(stderr, " (valid here:");
	for (i = 0; table[i].type != ENDTOKEN; i++) {
		switch (table[i].type) {
		case NOKEY:
			fprintf(stderr, " <end>");
			break;
		case SESSIONID:
			fprintf(stderr, " <session id>");
			break;
		case JOBID:
			fprintf(stderr, " <job id>");
			break;
		case IDENTITY:
			fprintf(stderr, " <identity>");
			break;
		default:
			fprintf(stderr, " %s", table[i].keyword);
			break;
		}
	}
	fprintf(stderr, ")\n");
}

/* Match argv against the tables; NULL after saying what is wrong. */
struct parse_result *
parse(int argc, char *argv[])
{
	const struct token	*table = t_main, *match;
	int			 i;

	memset(&res, 0, sizeof(res));
	res.format = "json";
	for (i = 0; table != NULL; i++) {
		match = match_token(i < argc ? argv[i] : NULL, table);
		if (match == NULL) {
			if (i < argc)
				fprintf(stderr, "bridgectl: unknown command or "
				    "argument: %s", argv[i]);
			else
				fprintf(stderr, "bridgectl: missing argument");
			show_valid(table);
			return (NULL);
		}
		table = match->next;
		if (i >= argc)
			break;
	}
	if (i < argc) {
		fprintf(stderr, "bridgectl: unexpected argument: %s\n",
		    argv[i]);
		return (NULL);
	}
	return (&res);
}
