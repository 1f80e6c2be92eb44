/*
 * parser.c: bridgectl's command grammar as token tables, one table per
 * position, each entry naming the table that may follow it.
 */

#include <sys/types.h>

#include <ctype.h>
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
	FORCE,
	OPTION,			/* a flag and the word after it */
	TOKENID
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
static const struct token t_token[];
static const struct token t_token_add[];
static const struct token t_tokenid[];
static const struct token t_usage[];
static const struct token t_usage_d[];
static const struct token t_events[];

static const struct token t_main[] = {
	{ KEYWORD,	"show",		NONE,		t_show },
	{ KEYWORD,	"kill",		NONE,		t_kill },
	{ KEYWORD,	"reload",	RELOAD,		NULL },
	{ KEYWORD,	"log",		NONE,		t_log },
	{ KEYWORD,	"monitor",	MONITOR,	NULL },
	{ KEYWORD,	"export",	EXPORT,		t_export },
	{ KEYWORD,	"purge",	PURGE,		t_purge },
	{ KEYWORD,	"token",	NONE,		t_token },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_show[] = {
	{ KEYWORD,	"status",	SHOW_STATUS,	NULL },
	{ KEYWORD,	"sessions",	SHOW_SESSIONS,	NULL },
	{ KEYWORD,	"models",	SHOW_MODELS,	NULL },
	{ KEYWORD,	"jobs",		SHOW_JOBS,	NULL },
	{ KEYWORD,	"metrics",	SHOW_METRICS,	NULL },
	{ KEYWORD,	"identities",	SHOW_IDENTITIES, NULL },
	{ KEYWORD,	"usage",	SHOW_USAGE,	t_usage },
	{ KEYWORD,	"events",	SHOW_EVENTS,	t_events },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_usage[] = {
	{ NOKEY,	"",		NONE,		NULL },
	{ IDENTITY,	"",		NONE,		t_usage_d },
	{ OPTION,	"-d",		'd',		t_usage_d },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_usage_d[] = {
	{ NOKEY,	"",		NONE,		NULL },
	{ OPTION,	"-d",		'd',		t_usage_d },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_events[] = {
	{ NOKEY,	"",		NONE,		NULL },
	{ OPTION,	"-n",		'n',		t_events },
	{ OPTION,	"-i",		'i',		t_events },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_token[] = {
	{ KEYWORD,	"add",		TOKEN_ADD,	t_token_add },
	{ KEYWORD,	"list",		TOKEN_LIST,	NULL },
	{ KEYWORD,	"revoke",	TOKEN_REVOKE,	t_tokenid },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_token_add[] = {
	{ NOKEY,	"",		NONE,		NULL },
	{ OPTION,	"-l",		'l',		t_token_add },
	{ OPTION,	"-e",		'e',		t_token_add },
	{ OPTION,	"-m",		'm',		t_token_add },
	{ OPTION,	"-r",		'r',		t_token_add },
	{ OPTION,	"-t",		't',		t_token_add },
	{ OPTION,	"-j",		'j',		t_token_add },
	{ ENDTOKEN,	"",		NONE,		NULL }
};

static const struct token t_tokenid[] = {
	{ TOKENID,	"",		NONE,		NULL },
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

/* A number of an option, within bounds, or exit saying which. */
static long long
number(const char *what, const char *word, long long max)
{
	const char	*errstr;
	long long	 v;

	v = strtonum(word, 0, max, &errstr);
	if (errstr != NULL) {
		fprintf(stderr, "bridgectl: %s %s: %s\n", what, word, errstr);
		exit(1);
	}
	return (v);
}

/* A word for a label or a model list: letters, digits and ._-@,/: */
static int
is_word(const char *s, const char *extra)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("._-@", s[i]) == NULL &&
		    strchr(extra, s[i]) == NULL)
			return (0);
	return (i > 0);
}

/* The value of an option (-l label, -d days, ...). */
static void
set_option(int opt, const char *word)
{
	switch (opt) {
	case 'l':
		if (!is_word(word, "") || strlen(word) > 63) {
			fprintf(stderr, "bridgectl: a label is up to 63 of"
			    " A-Za-z0-9._-@\n");
			exit(1);
		}
		res.label = word;
		break;
	case 'm':
		if (!is_word(word, ",/:") || strlen(word) > 1000) {
			fprintf(stderr, "bridgectl: models are names separated"
			    " by commas\n");
			exit(1);
		}
		res.models = word;
		break;
	case 'e':
		res.expire_days = number("days", word, 36500);
		if (res.expire_days == 0) {
			fprintf(stderr, "bridgectl: -e needs 1 or more days\n");
			exit(1);
		}
		break;
	case 'r':
		res.requests = number("requests per minute", word, 1000000);
		break;
	case 't':
		res.tokens = number("tokens per day", word,
		    1000000000000LL);
		break;
	case 'j':
		res.jobs = number("jobs", word, 1000);
		break;
	case 'd':
		res.days = number("days", word, 3660);
		if (res.days == 0)
			res.days = 1;
		break;
	case 'n':
		res.count = number("count", word, 100000);
		if (res.count == 0)
			res.count = 1;
		break;
	case 'i':
		if (strspn(word, "0123456789abcdef") != strlen(word) ||
		    strlen(word) == 0 || strlen(word) > 64) {
			fprintf(stderr, "bridgectl: bad identity: %s\n", word);
			exit(1);
		}
		res.identity = word;
		break;
	}
}

/* The entry of a token table that a word matches, or NULL. */
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
		case OPTION:
			if (word == NULL || strcmp(word, table[i].keyword) != 0)
				break;
			return (&table[i]);
		case TOKENID:
			if (word == NULL)
				break;
			res.token = strtonum(word, 1, UINT32_MAX, &errstr);
			if (errstr != NULL) {
				fprintf(stderr, "bridgectl: bad token id: "
				    "%s\n", word);
				exit(1);
			}
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
		case TOKENID:
			fprintf(stderr, " <token id>");
			break;
		case OPTION:
			fprintf(stderr, " %s <value>", table[i].keyword);
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
	res.requests = res.tokens = res.jobs = CTL_LIMIT_INHERIT;
	res.days = 7;
	res.count = 50;
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
		if (match->type == OPTION) {
			if (++i >= argc) {
				fprintf(stderr, "bridgectl: %s needs a value\n",
				    match->keyword);
				return (NULL);
			}
			set_option(match->value, argv[i]);
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
