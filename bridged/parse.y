/*
 * parse.y: the grammar of bridged.conf(5), with its own lexer (include
 * stack, macros, -D), and the printer that writes a configuration back
 * in the same grammar.
 */

%{
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

#define LEX_MAX		8192		/* longest word or quoted string */
#define UNGET_MAX	16
#define INCLUDE_DEPTH	16
#define EXPAND_MAX	64		/* macro expansions per line */

#define SUN_PATH_LEN	sizeof(((struct sockaddr_un *)0)->sun_path)

#define KILO		1024LL
#define MEGA		(1024LL * KILO)
#define GIGA		(1024LL * MEGA)

struct file {
	TAILQ_ENTRY(file)	 entry;
	FILE			*stream;
	char			*name;
	int			 lineno;
	int			 startnl;	/* owe the parser a newline */
	int			 eofnl;		/* gave the last newline */
	int			 lastc;		/* last character read */
	dev_t			 dev;
	ino_t			 ino;
	int			 unget[UNGET_MAX];
	int			 nunget;
	char			*expand;	/* macro text being read */
	size_t			 expandpos;
};
TAILQ_HEAD(files, file);

struct sym {
	TAILQ_ENTRY(sym)	 entry;
	char			*name;
	char			*value;
	int			 persist;	/* from -D: the file cannot
						   change it */
};
TAILQ_HEAD(syms, sym);

/* What the last tokens were, to say more than "syntax error". */
struct tokinfo {
	int			 type;
	int			 first;		/* first token of its line */
	int			 kw;		/* a keyword */
	char			 word[64];	/* unquoted word */
};

struct listen_opts {
	int			 port;
	int			 tls;
	int			 insecure;
};

static struct files		 files = TAILQ_HEAD_INITIALIZER(files);
static struct syms		 syms = TAILQ_HEAD_INITIALIZER(syms);
static struct file		*file, *topfile;
static struct bridged_conf	*conf;
static struct provider_conf	*prov;
static int			 prov_line, prov_bad, prov_keys, prov_model;
static struct role_conf		*rolec;
static int			 role_bad;
static struct listen_opts	 listenopts;
static int			 errors;
static int			 expansions;
static int			 atbol;
static char			 lexword[64];	/* the token, if a word */
static struct tokinfo		 tok_prev, tok_cur;

static int	 yylex(void);
static int	 yyerror(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
static void	 lerror(int, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
static void	 syntax_error(void);
static int	 lex(void);
static int	 lgetc(void);
static void	 lungetc(int);
static int	 findeol(void);
static int	 kw_lookup(const char *);
static int	 kw_cmp(const void *, const void *);
static int	 expand_push(const char *);
static struct file *pushfile(const char *, int);
static int	 popfile(void);
static int	 symset(const char *, const char *, int);
static char	*symget(const char *);
static int	 valid_name(const char *);
static int	 valid_provider(const char *);
static int	 setstr(char *, size_t, char *, const char *);
static int	 inrange(const char *, long long, long long, long long);
static int	 parse_size(const char *, long long *);
static int	 sizerange(const char *, long long, long long, long long);
static void	 fmt_size(char *, size_t, uint64_t);
static void	 include_file(char *);
static void	 listen_add(char *, struct listen_opts *);
static int	 listen_one(const char *, struct sockaddr *, socklen_t,
		    struct listen_opts *);
static int	 is_any(const struct sockaddr_storage *);
static int	 same_addr(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);
static void	 print_addr(const struct sockaddr_storage *, char *, size_t);
static void	 provider_begin(char *);
static void	 provider_end(void);
static void	 role_begin(char *);
static void	 role_end(void);
static int	 role_temperature(char *);
static int	 prov_type(enum provider_type);
static void	 conf_defaults(struct bridged_conf *);
static int	 conf_check(struct bridged_conf *);
static void	 print_str(const char *);

typedef struct {
	union {
		long long	 number;
		char		*string;
	} v;
	int lineno;
} YYSTYPE;
#define YYSTYPE_IS_DECLARED 1
/*
 * An action that took its string (freed it or kept it) and fails says
 * so, lest the error recovery's destructor free it again.
 */
#define YYERROR_TAKEN(s)	do { (s) = NULL; YYERROR; } while (0)
/* byacc's destructor, without the message it does not use. */
#define YYDESTRUCT_DECL() \
	yydestruct(const char *msg __attribute__((__unused__)), int psymb, \
	    YYSTYPE *val)

%}

%token	ANTHROPIC API CACHE CERTIFICATE CHROOT CLIENTS CONNECT DATABASE ENV
%token	FALLBACK FILENAME FULL GEMINI HANDSHAKE IDENTITY INCLUDE INSECURE IP
%token	JOBS KEEP KEY LIMIT LINE LISTEN MAXIMUM MEMORY MODEL MODELS NORMAL ON
%token	OPENAI PORT PREFORK PROVIDER RETRIES SOCKET SUMMARIES SYNC TIMEOUT
%token	TLS TOKEN TOKENS TYPE URL USER
%token	AUTH DAY EVENTS FAILURES LIMITS MINUTE PER REQUESTS
%token	RENEW WORKER
%token	DESCRIPTION ROLE SYSTEM TEMPERATURE
%token	ERROR
%token	<v.string>	STRING
%token	<v.number>	NUMBER
%type	<v.number>	size
/* A string the parser throws away while it recovers from an error. */
%destructor	{ free($$); }	<v.string>

%%

grammar		: /* empty */
		| grammar '\n'
		| grammar include '\n'
		| grammar varset '\n'
		| grammar main '\n'
		| grammar provider '\n'
		| grammar role '\n'
		| grammar limits '\n'
		| grammar error '\n'		{ yyerrok; }
		;

include		: INCLUDE STRING		{ include_file($2); }
		;

varset		: STRING '=' STRING		{
			if (!valid_name($1))
				yyerror("invalid macro name \"%s\"", $1);
			else if (symset($1, $3, 0) == -1)
				fatal("%s: symset", __func__);
			free($1);
			free($3);
		}
		| STRING '=' NUMBER		{
			char	num[32];

			(void)snprintf(num, sizeof(num), "%lld", $3);
			if (!valid_name($1))
				yyerror("invalid macro name \"%s\"", $1);
			else if (symset($1, num, 0) == -1)
				fatal("%s: symset", __func__);
			free($1);
		}
		;

main		: LISTEN ON STRING lopts	{ listen_add($3, &listenopts); }
		| TLS CERTIFICATE STRING	{
			if (setstr(conf->g.tls_cert, sizeof(conf->g.tls_cert),
			    $3, "tls certificate") == -1)
				YYERROR_TAKEN($3);
		}
		| TLS KEY STRING		{
			if (setstr(conf->g.tls_key, sizeof(conf->g.tls_key),
			    $3, "tls key") == -1)
				YYERROR_TAKEN($3);
		}
		| USER STRING			{
			if (setstr(conf->g.user, sizeof(conf->g.user),
			    $2, "user") == -1)
				YYERROR_TAKEN($2);
		}
		| CHROOT STRING			{
			if (setstr(conf->g.chroot, sizeof(conf->g.chroot),
			    $2, "chroot") == -1)
				YYERROR_TAKEN($2);
		}
		| DATABASE STRING		{
			if (setstr(conf->g.database, sizeof(conf->g.database),
			    $2, "database") == -1)
				YYERROR_TAKEN($2);
		}
		/* "password" is no keyword: it may be a word elsewhere. */
		| DATABASE STRING FILENAME STRING	{
			if (strcmp($2, "password") != 0) {
				yyerror("database %s file: did you mean"
				    " `database password file'?", $2);
				free($2);
				$2 = NULL;
				free($4);
				YYERROR_TAKEN($4);
			}
			free($2);
			$2 = NULL;
			if (setstr(conf->g.db_password_file,
			    sizeof(conf->g.db_password_file), $4,
			    "database password file") == -1)
				YYERROR_TAKEN($4);
		}
		| DATABASE SYNC NORMAL		{ conf->g.sync = SYNC_NORMAL; }
		| DATABASE SYNC FULL		{ conf->g.sync = SYNC_FULL; }
		| DATABASE SYNC STRING		{
			yyerror("unknown database sync mode \"%s\"", $3);
			free($3);
			YYERROR_TAKEN($3);
		}
		| SOCKET STRING			{
			if (strlen($2) >= SUN_PATH_LEN) {
				yyerror("socket path too long");
				free($2);
				YYERROR_TAKEN($2);
			}
			if (setstr(conf->g.socket, sizeof(conf->g.socket),
			    $2, "socket") == -1)
				YYERROR_TAKEN($2);
		}
		| PREFORK NUMBER		{
			if (!inrange("prefork", $2, 1, 256))
				YYERROR;
			conf->g.prefork = $2;
		}
		| WORKER RENEW NUMBER		{
			if (!inrange("worker renew", $3, 1, 1000000))
				YYERROR;
			conf->g.worker_renew = $3;
		}
		| MAXIMUM CLIENTS NUMBER	{
			if (!inrange("max clients", $3, 1, 100000))
				YYERROR;
			conf->g.max_clients = $3;
		}
		| JOBS MAXIMUM NUMBER		{
			if (!inrange("jobs max", $3, 1, 10000))
				YYERROR;
			conf->g.jobs_max = $3;
		}
		| MAXIMUM LINE size		{
			if (!sizerange("max line", $3, KILO, 16 * MEGA))
				YYERROR;
			conf->g.line_max = $3;
		}
		| TIMEOUT NUMBER		{
			if (!inrange("timeout", $2, 1, 86400))
				YYERROR;
			conf->g.timeout = $2;
		}
		| HANDSHAKE TIMEOUT NUMBER	{
			if (!inrange("handshake timeout", $3, 1, 3600))
				YYERROR;
			conf->g.handshake_timeout = $3;
		}
		| IDENTITY IP			{
			conf->g.identity = IDENTITY_IP;
		}
		| IDENTITY CERTIFICATE		{
			conf->g.identity = IDENTITY_CERTIFICATE;
		}
		| IDENTITY TOKEN FILENAME STRING	{
			conf->g.identity = IDENTITY_TOKEN;
			if (setstr(conf->g.tokens, sizeof(conf->g.tokens),
			    $4, "token file") == -1)
				YYERROR_TAKEN($4);
		}
		| IDENTITY TOKEN		{
			/* Issued tokens only (bridgectl token add). */
			conf->g.identity = IDENTITY_TOKEN;
			conf->g.tokens[0] = '\0';
		}
		| IDENTITY STRING		{
			yyerror("unknown identity \"%s\"", $2);
			free($2);
			YYERROR_TAKEN($2);
		}
		| MEMORY LIMIT size		{
			if (!sizerange("memory limit", $3, 64 * KILO,
			    64 * GIGA))
				YYERROR;
			conf->g.memory_limit = $3;
		}
		| SUMMARIES KEEP NUMBER		{
			if (!inrange("summaries keep", $3, 1, 100000))
				YYERROR;
			conf->g.summaries_keep = $3;
		}
		| MODELS CACHE NUMBER		{
			if (!inrange("models cache", $3, 0, 86400))
				YYERROR;
			conf->g.models_cache = $3;
		}
		| AUTH FAILURES NUMBER PER MINUTE	{
			if (!inrange("auth failures", $3, 1, 100000))
				YYERROR;
			conf->g.auth_failures = $3;
		}
		| EVENTS KEEP NUMBER		{
			if (!inrange("events keep", $3, 100, 100000000))
				YYERROR;
			conf->g.events_keep = $3;
		}
		;

limits		: LIMITS '{' optnl limitopts '}'
		;

limitopts	: /* empty */
		| limitopt
		| limitopt nl limitopts
		| error nl			{ yyerrok; } limitopts
		;

limitopt	: REQUESTS NUMBER PER MINUTE	{
			if (!inrange("requests per minute", $2, 0, 1000000))
				YYERROR;
			conf->g.limits.requests = $2;
		}
		| TOKENS NUMBER PER DAY		{
			if (!inrange("tokens per day", $2, 0,
			    1000000000000LL))
				YYERROR;
			conf->g.limits.tokens = $2;
		}
		| JOBS NUMBER			{
			if (!inrange("jobs", $2, 0, 1000))
				YYERROR;
			conf->g.limits.jobs = $2;
		}
		;

lopts		: /* empty */			{
			memset(&listenopts, 0, sizeof(listenopts));
			listenopts.port = BRIDGED_PORT;
		}
		| lopts lopt
		;

lopt		: PORT NUMBER			{
			if (!inrange("port", $2, 1, 65535))
				YYERROR;
			listenopts.port = $2;
		}
		| TLS				{ listenopts.tls = 1; }
		| INSECURE			{ listenopts.insecure = 1; }
		;

size		: NUMBER
		| STRING			{
			if (parse_size($1, &$$) == -1) {
				yyerror("invalid size \"%s\"", $1);
				free($1);
				YYERROR_TAKEN($1);
			}
			free($1);
		}
		;

provider	: PROVIDER STRING		{
			/* Taken: not the recovery's to free. */
			provider_begin($2);
			$2 = NULL;
		}
		    '{' optnl provopts '}'	{ provider_end(); }
		;

provopts	: /* empty */
		| provopt
		| provopt nl provopts
		| error nl			{ yyerrok; } provopts
		;

provopt		: TYPE GEMINI			{
			prov->type = PROVIDER_GEMINI;
		}
		| TYPE OPENAI			{
			prov->type = PROVIDER_OPENAI;
		}
		| TYPE ANTHROPIC		{
			prov->type = PROVIDER_ANTHROPIC;
		}
		| MODELS provmodels
		| FALLBACK STRING		{
			const char	*sl = strchr($2, '/');

			if (sl == NULL || sl == $2 || sl[1] == '\0') {
				yyerror("fallback must be \"provider/model\"");
				free($2);
				prov_bad = 1;
			} else if (setstr(prov->fallback,
			    sizeof(prov->fallback), $2, "fallback") == -1)
				prov_bad = 1;
		}
		| MAXIMUM TOKENS NUMBER		{
			if (!inrange("max tokens", $3, 1, 10000000))
				prov_bad = 1;
			else
				prov->max_tokens = $3;
		}
		| TYPE STRING			{
			yyerror("unknown provider type \"%s\"", $2);
			free($2);
			prov_bad = 1;
		}
		| URL STRING			{
			if (strncmp($2, "http://", 7) != 0 &&
			    strncmp($2, "https://", 8) != 0) {
				yyerror("url must start with http:// or "
				    "https://");
				free($2);
				prov_bad = 1;
			} else if (setstr(prov->url, sizeof(prov->url), $2,
			    "url") == -1)
				prov_bad = 1;
		}
		| API KEY FILENAME STRING	{
			if (setstr(prov->key_file, sizeof(prov->key_file), $4,
			    "api key file") == -1)
				prov_bad = 1;
			prov_keys |= 1;
		}
		| API KEY ENV STRING		{
			if (!valid_name($4)) {
				yyerror("invalid environment variable name "
				    "\"%s\"", $4);
				free($4);
				prov_bad = 1;
			} else if (setstr(prov->key_env, sizeof(prov->key_env),
			    $4, "api key env") == -1)
				prov_bad = 1;
			prov_keys |= 2;
		}
		| MODEL STRING			{
			if (setstr(prov->model, sizeof(prov->model), $2,
			    "model") == -1)
				prov_bad = 1;
			prov_model = 1;
		}
		| CONNECT TIMEOUT NUMBER	{
			if (!inrange("connect timeout", $3, 1, 3600))
				prov_bad = 1;
			else
				prov->connect_timeout = $3;
		}
		| TIMEOUT NUMBER		{
			if (!inrange("timeout", $2, 1, 86400))
				prov_bad = 1;
			else
				prov->timeout = $2;
		}
		| RETRIES NUMBER		{
			if (!inrange("retries", $2, 0, 10))
				prov_bad = 1;
			else
				prov->retries = $2;
		}
		;

role		: ROLE STRING			{ role_begin($2); }
		    '{' optnl roleopts '}'	{ role_end(); }
		;

roleopts	: /* empty */
		| roleopt
		| roleopt nl roleopts
		| error nl			{ yyerrok; } roleopts
		;

roleopt		: DESCRIPTION STRING		{
			if (setstr(rolec->description,
			    sizeof(rolec->description), $2,
			    "description") == -1)
				role_bad = 1;
		}
		| SYSTEM STRING			{
			if (setstr(rolec->system, sizeof(rolec->system), $2,
			    "system") == -1 ||
			    !utf8_valid(rolec->system, strlen(rolec->system)))
				role_bad = 1;
		}
		| MODEL STRING			{
			if (setstr(rolec->model, sizeof(rolec->model), $2,
			    "model") == -1)
				role_bad = 1;
		}
		| TEMPERATURE NUMBER		{
			if (!inrange("temperature", $2, 0, 2))
				role_bad = 1;
			else
				rolec->temperature = (uint32_t)$2 * 1000;
		}
		| TEMPERATURE STRING		{
			if (role_temperature($2) == -1)
				role_bad = 1;
		}
		| MAXIMUM TOKENS NUMBER		{
			if (!inrange("max tokens", $3, 1, 10000000))
				role_bad = 1;
			else
				rolec->max_tokens = (uint32_t)$3;
		}
		;

provmodels	: provmodel
		| provmodels provmodel
		;

provmodel	: STRING			{
			if (prov->nmodels >= PROVIDER_MODELS_MAX) {
				yyerror("at most %d models in a provider",
				    PROVIDER_MODELS_MAX);
				free($1);
				prov_bad = 1;
			} else if (setstr(prov->models[prov->nmodels],
			    MODEL_MAX_LEN, $1, "model") == -1)
				prov_bad = 1;
			else
				prov->nmodels++;
		}
		;

optnl		: '\n' optnl
		| /* empty */
		;

nl		: '\n' optnl
		;

%%

struct keyword {
	const char	*k_name;
	int		 k_val;
};

/* Report an error at the line of the current token. */
static int
yyerror(const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	/*
	 * byacc and yacc say only "syntax error"; after a lexical error
	 * (the ERROR token) that would repeat what the lexer said.
	 */
	if (strcmp(fmt, "syntax error") == 0) {
		if (tok_cur.type != ERROR)
			syntax_error();
		return (0);
	}
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("%s: vasprintf", __func__);
	va_end(ap);
	lerror(yylval.lineno, "%s", msg);
	free(msg);
	return (0);
}

/* Report an error at a given line of the current file. */
static void
lerror(int lineno, const char *fmt, ...)
{
	va_list	 ap;
	char	*msg;

	errors++;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatal("%s: vasprintf", __func__);
	va_end(ap);
	conf_error("%s:%d: %s", file->name, lineno, msg);
	free(msg);
}

/* Name the word a syntax error is most likely about. */
static void
syntax_error(void)
{
	if (tok_cur.type == 0)
		lerror(yylval.lineno, "unexpected end of file");
	else if (tok_cur.type == '=' && tok_prev.first && tok_prev.kw)
		lerror(yylval.lineno, "\"%s\" is a keyword, not a macro name",
		    tok_prev.word);
	else if (tok_cur.first && tok_cur.kw)
		lerror(yylval.lineno, "\"%s\" is not valid here", tok_cur.word);
	else if (tok_cur.first && tok_cur.word[0] != '\0')
		lerror(yylval.lineno, "unknown keyword \"%s\"", tok_cur.word);
	else if (tok_prev.first && tok_prev.word[0] != '\0' && !tok_prev.kw &&
	    tok_cur.type != '=')
		lerror(yylval.lineno, "unknown keyword \"%s\"", tok_prev.word);
	else if (tok_cur.word[0] != '\0')
		lerror(yylval.lineno, "syntax error near \"%s\"",
		    tok_cur.word);
	else
		lerror(yylval.lineno, "syntax error");
}

/* bsearch(3) order of the keyword table. */
static int
kw_cmp(const void *k, const void *e)
{
	return (strcmp(k, ((const struct keyword *)e)->k_name));
}

/* Map a word to its keyword token, or STRING. */
static int
kw_lookup(const char *s)
{
	/* sorted for bsearch */
	static const struct keyword keywords[] = {
		{ "anthropic",		ANTHROPIC },
		{ "api",		API },
		{ "auth",		AUTH },
		{ "cache",		CACHE },
		{ "certificate",	CERTIFICATE },
		{ "chroot",		CHROOT },
		{ "clients",		CLIENTS },
		{ "connect",		CONNECT },
		{ "database",		DATABASE },
		{ "day",		DAY },
		{ "description",	DESCRIPTION },
		{ "env",		ENV },
		{ "events",		EVENTS },
		{ "failures",		FAILURES },
		{ "fallback",		FALLBACK },
		{ "file",		FILENAME },
		{ "full",		FULL },
		{ "gemini",		GEMINI },
		{ "handshake",		HANDSHAKE },
		{ "identity",		IDENTITY },
		{ "include",		INCLUDE },
		{ "insecure",		INSECURE },
		{ "ip",			IP },
		{ "jobs",		JOBS },
		{ "keep",		KEEP },
		{ "key",		KEY },
		{ "limit",		LIMIT },
		{ "limits",		LIMITS },
		{ "line",		LINE },
		{ "listen",		LISTEN },
		{ "max",		MAXIMUM },
		{ "memory",		MEMORY },
		{ "minute",		MINUTE },
		{ "model",		MODEL },
		{ "models",		MODELS },
		{ "normal",		NORMAL },
		{ "on",			ON },
		{ "openai",		OPENAI },
		{ "per",		PER },
		{ "port",		PORT },
		{ "prefork",		PREFORK },
		{ "provider",		PROVIDER },
		{ "renew",		RENEW },
		{ "requests",		REQUESTS },
		{ "retries",		RETRIES },
		{ "role",		ROLE },
		{ "socket",		SOCKET },
		{ "summaries",		SUMMARIES },
		{ "sync",		SYNC },
		{ "system",		SYSTEM },
		{ "temperature",	TEMPERATURE },
		{ "timeout",		TIMEOUT },
		{ "tls",		TLS },
		{ "token",		TOKEN },
		{ "tokens",		TOKENS },
		{ "type",		TYPE },
		{ "url",		URL },
		{ "user",		USER },
		{ "worker",		WORKER }
	};
	const struct keyword	*p;

	p = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return (p != NULL ? p->k_val : STRING);
}

/* Next character: pushed back, from a macro, or from the file. */
static int
lgetc(void)
{
	int	 c;

	if (file->nunget > 0)
		return (file->unget[--file->nunget]);
	if (file->expand != NULL) {
		c = (unsigned char)file->expand[file->expandpos++];
		if (c != '\0')
			return (c);
		free(file->expand);
		file->expand = NULL;
	}
	if ((c = getc(file->stream)) != EOF)
		file->lastc = c;
	return (c);
}

/* Push a character back for lgetc to read again. */
static void
lungetc(int c)
{
	if (c == EOF)
		return;
	if (file->nunget >= UNGET_MAX)
		fatalx("%s: pushback overflow", __func__);
	file->unget[file->nunget++] = c;
}

/* After a lexical error: drop the rest of the line, keep its newline. */
static int
findeol(void)
{
	int	 c;

	free(file->expand);
	file->expand = NULL;
	while ((c = lgetc()) != EOF && c != '\n')
		;
	lungetc(c);
	return (ERROR);
}

/*
 * Read a macro's value next, ahead of what was pushed back and of the
 * rest of an expansion in progress.
 */
static int
expand_push(const char *val)
{
	char	*buf;
	size_t	 len, rest, i;

	if (++expansions > EXPAND_MAX)
		return (-1);
	rest = file->expand != NULL ? strlen(file->expand + file->expandpos) :
	    0;
	len = strlen(val);
	if (len + rest + file->nunget >= LEX_MAX)
		return (-1);
	if ((buf = malloc(len + file->nunget + rest + 1)) == NULL)
		fatal("%s: malloc", __func__);
	memcpy(buf, val, len);
	for (i = 0; file->nunget > 0; i++)
		buf[len + i] = file->unget[--file->nunget];
	if (rest > 0)
		memcpy(buf + len + i, file->expand + file->expandpos, rest);
	buf[len + i + rest] = '\0';
	free(file->expand);
	file->expand = buf;
	file->expandpos = 0;
	return (0);
}

#define word_char(c) \
	(isalnum(c) || ((c) != '\0' && strchr("-_.:*%/+@", (c)) != NULL))

/* The lexer proper. */
static int
lex(void)
{
	char		 buf[LEX_MAX];
	const char	*errstr;
	char		*val;
	size_t		 n;
	int		 c, next, quotec, digits;

	lexword[0] = '\0';
top:
	if (file->startnl) {
		file->startnl = 0;
		yylval.lineno = file->lineno;
		return ('\n');
	}
	for (;;) {
		c = lgetc();
		if (c == ' ' || c == '\t' || c == '\r')
			continue;
		if (c != '\\')
			break;
		if ((next = lgetc()) != '\n') {
			lungetc(next);
			break;
		}
		file->lineno++;
	}
	yylval.lineno = file->lineno;
	if (c == '#') {
		while ((c = lgetc()) != '\n' && c != EOF)
			;
	}
	if (c == EOF) {
		/* Errors at the end are on the last line. */
		if (file->lastc == '\n')
			yylval.lineno--;
		/* Each file ends its last line, even without a newline. */
		if (!file->eofnl) {
			file->eofnl = 1;
			return ('\n');
		}
		if (file == topfile)
			return (0);
		popfile();
		goto top;
	}
	if (c == '\n') {
		file->lineno++;
		return ('\n');
	}

	if (c == '$') {
		n = 0;
		while ((c = lgetc()) != EOF && (isalnum(c) || c == '_')) {
			if (n >= sizeof(buf) - 1) {
				yyerror("macro name too long");
				return (findeol());
			}
			buf[n++] = c;
		}
		lungetc(c);
		buf[n] = '\0';
		if (n == 0) {
			yyerror("macro name expected after '$'");
			return (findeol());
		}
		if ((val = symget(buf)) == NULL) {
			yyerror("macro \"%s\" not defined", buf);
			return (findeol());
		}
		if (expand_push(val) == -1) {
			yyerror("macro \"%s\" expands too far", buf);
			return (findeol());
		}
		goto top;
	}

	if (c == '"' || c == '\'') {
		quotec = c;
		n = 0;
		for (;;) {
			c = lgetc();
			if (c == EOF || c == '\n') {
				yyerror("unterminated quoted string");
				lungetc(c);
				return (findeol());
			}
			if (c == quotec)
				break;
			if (c == '\\') {
				next = lgetc();
				if (next == '\n') {
					file->lineno++;
					continue;
				}
				if (next == quotec || next == '\\')
					c = next;
				else
					lungetc(next);
			}
			if (iscntrl(c)) {
				yyerror("control character in quoted string");
				return (findeol());
			}
			if (n >= sizeof(buf) - 1) {
				yyerror("string too long");
				return (findeol());
			}
			buf[n++] = c;
		}
		buf[n] = '\0';
		if ((yylval.v.string = strdup(buf)) == NULL)
			fatal("%s: strdup", __func__);
		return (STRING);
	}

	if (word_char(c)) {
		n = 0;
		digits = 1;
		do {
			if (n >= sizeof(buf) - 1) {
				yyerror("string too long");
				return (findeol());
			}
			if (!isdigit(c) && !(c == '-' && n == 0))
				digits = 0;
			buf[n++] = c;
		} while ((c = lgetc()) != EOF && word_char(c));
		lungetc(c);
		buf[n] = '\0';

		if (digits && !(n == 1 && buf[0] == '-')) {
			yylval.v.number = strtonum(buf, LLONG_MIN, LLONG_MAX,
			    &errstr);
			if (errstr != NULL) {
				yyerror("number \"%s\" is %s", buf, errstr);
				return (findeol());
			}
			return (NUMBER);
		}
		(void)strlcpy(lexword, buf, sizeof(lexword));
		if ((c = kw_lookup(buf)) == STRING &&
		    (yylval.v.string = strdup(buf)) == NULL)
			fatal("%s: strdup", __func__);
		return (c);
	}
	if (iscntrl(c)) {
		yyerror("invalid character 0x%02x", c);
		return (findeol());
	}
	return (c);
}

/* The parser's lexer: a token, and a note of it for error messages. */
static int
yylex(void)
{
	int	 t;

	t = lex();
	if (t == '\n')
		expansions = 0;
	tok_prev = tok_cur;
	tok_cur.type = t;
	tok_cur.first = atbol;
	tok_cur.kw = lexword[0] != '\0' && t != STRING;
	(void)strlcpy(tok_cur.word, lexword, sizeof(tok_cur.word));
	atbol = (t == '\n');
	return (t);
}

/* Open a file to be read next; NULL (reported) on failure. */
static struct file *
pushfile(const char *name, int lineno)
{
	struct file	*nfile, *f;
	struct stat	 st;
	FILE		*fp;
	const char	*why = NULL;

	if ((fp = fopen(name, "re")) == NULL || fstat(fileno(fp), &st) == -1)
		why = strerror(errno);
	else if (S_ISDIR(st.st_mode))
		why = "is a directory";
	else {
		TAILQ_FOREACH(f, &files, entry)
			if (f->dev == st.st_dev && f->ino == st.st_ino)
				why = "include loop";
	}
	if (why != NULL) {
		if (file == NULL)
			conf_error("%s: %s", name, why);
		else
			lerror(lineno, "include \"%s\": %s", name, why);
		if (fp != NULL)
			fclose(fp);
		return (NULL);
	}

	if ((nfile = calloc(1, sizeof(*nfile))) == NULL)
		fatal("%s: calloc", __func__);
	if ((nfile->name = strdup(name)) == NULL)
		fatal("%s: strdup", __func__);
	nfile->stream = fp;
	nfile->dev = st.st_dev;
	nfile->ino = st.st_ino;
	nfile->lineno = 1;
	TAILQ_INSERT_TAIL(&files, nfile, entry);
	return (nfile);
}

/* Close the current file and go back to the one that included it. */
static int
popfile(void)
{
	struct file	*prev;

	prev = TAILQ_PREV(file, files, entry);
	TAILQ_REMOVE(&files, file, entry);
	fclose(file->stream);
	free(file->expand);
	free(file->name);
	free(file);
	file = prev;
	return (file != NULL ? 0 : EOF);
}

/*
 * include "path": a relative path is taken from the directory of the
 * file that includes it.
 */
static void
include_file(char *name)
{
	struct file	*nfile;
	const char	*slash;
	char		*path;
	int		 depth = 0;

	TAILQ_FOREACH(nfile, &files, entry)
		depth++;
	if (depth >= INCLUDE_DEPTH) {
		yyerror("include nested too deeply");
		free(name);
		return;
	}
	slash = strrchr(file->name, '/');
	if (name[0] != '/' && slash != NULL) {
		if (asprintf(&path, "%.*s/%s", (int)(slash - file->name),
		    file->name, name) == -1)
			fatal("%s: asprintf", __func__);
		free(name);
	} else
		path = name;
	if ((nfile = pushfile(path, yylval.lineno)) != NULL) {
		/* The include statement still wants its newline. */
		nfile->startnl = 1;
		file = nfile;
	}
	free(path);
}

/* Define a macro; the file cannot redefine one from the command line. */
static int
symset(const char *name, const char *value, int persist)
{
	struct sym	*sym;

	TAILQ_FOREACH(sym, &syms, entry) {
		if (strcmp(name, sym->name) == 0)
			break;
	}
	if (sym != NULL) {
		if (sym->persist && !persist)
			return (0);
		TAILQ_REMOVE(&syms, sym, entry);
		free(sym->name);
		free(sym->value);
		free(sym);
	}
	if ((sym = calloc(1, sizeof(*sym))) == NULL)
		return (-1);
	if ((sym->name = strdup(name)) == NULL) {
		free(sym);
		return (-1);
	}
	if ((sym->value = strdup(value)) == NULL) {
		free(sym->name);
		free(sym);
		return (-1);
	}
	sym->persist = persist;
	TAILQ_INSERT_TAIL(&syms, sym, entry);
	return (0);
}

/* -D name=value */
int
cmdline_symset(char *s)
{
	char		*eq, *name;
	const char	*p;
	int		 ret;

	if ((eq = strchr(s, '=')) == NULL)
		return (-1);
	for (p = eq + 1; *p != '\0'; p++)
		if (iscntrl((unsigned char)*p))
			return (-1);
	if ((name = strndup(s, eq - s)) == NULL)
		return (-1);
	if (!valid_name(name)) {
		free(name);
		return (-1);
	}
	ret = symset(name, eq + 1, 1);
	free(name);
	return (ret);
}

/* The value of a macro, or NULL. */
static char *
symget(const char *name)
{
	struct sym	*sym;

	TAILQ_FOREACH(sym, &syms, entry) {
		if (strcmp(name, sym->name) == 0) {
			return (sym->value);
		}
	}
	return (NULL);
}

/* Macro and environment variable names: letters, digits, '_'. */
static int
valid_name(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return (0);
	return (1);
}

/* Provider names: letters, digits, '-', '_' and '.'. */
static int
valid_provider(const char *s)
{
	if (*s == '\0')
		return (0);
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.", *s) == NULL)
			return (0);
	return (1);
}

/* Copy a string into a fixed field; free it either way. */
static int
setstr(char *dst, size_t len, char *s, const char *what)
{
	int	 ret = 0;

	if (*s == '\0') {
		yyerror("%s cannot be empty", what);
		ret = -1;
	} else if (strlcpy(dst, s, len) >= len) {
		yyerror("%s too long (at most %zu bytes)", what, len - 1);
		ret = -1;
	}
	free(s);
	return (ret);
}

/* A number within its bounds; else an error that says them. */
static int
inrange(const char *what, long long v, long long lo, long long hi)
{
	if (v < lo || v > hi) {
		yyerror("%s %lld is out of range (%lld to %lld)", what, v,
		    lo, hi);
		return (0);
	}
	return (1);
}

/* A size within its bounds; else an error that says them in units. */
static int
sizerange(const char *what, long long v, long long lo, long long hi)
{
	char	 vs[32], los[32], his[32];

	if (v < lo || v > hi) {
		if (v < 0)
			(void)snprintf(vs, sizeof(vs), "%lld", v);
		else
			fmt_size(vs, sizeof(vs), v);
		fmt_size(los, sizeof(los), lo);
		fmt_size(his, sizeof(his), hi);
		yyerror("%s %s is out of range (%s to %s)", what, vs, los,
		    his);
		return (0);
	}
	return (1);
}

/* A size: digits and an optional K, M or G (powers of 1024). */
static int
parse_size(const char *s, long long *v)
{
	char		 num[32];
	const char	*errstr;
	long long	 mult = 1;
	size_t		 len;

	len = strlen(s);
	if (len < 2 || len >= sizeof(num))
		return (-1);
	switch (s[len - 1]) {
	case 'k':
	case 'K':
		mult = KILO;
		break;
	case 'm':
	case 'M':
		mult = MEGA;
		break;
	case 'g':
	case 'G':
		mult = GIGA;
		break;
	default:
		return (-1);
	}
	memcpy(num, s, len - 1);
	num[len - 1] = '\0';
	if (!isdigit((unsigned char)num[0]))
		return (-1);
	*v = strtonum(num, 0, LLONG_MAX / mult, &errstr);
	if (errstr != NULL)
		return (-1);
	*v *= mult;
	return (0);
}

/* A size the way it is best written back. */
static void
fmt_size(char *buf, size_t len, uint64_t v)
{
	if (v != 0 && v % GIGA == 0)
		(void)snprintf(buf, len, "%lluG",
		    (unsigned long long)(v / GIGA));
	else if (v != 0 && v % MEGA == 0)
		(void)snprintf(buf, len, "%lluM",
		    (unsigned long long)(v / MEGA));
	else if (v != 0 && v % KILO == 0)
		(void)snprintf(buf, len, "%lluK",
		    (unsigned long long)(v / KILO));
	else
		(void)snprintf(buf, len, "%llu", (unsigned long long)v);
}

/*
 * listen on ADDR: "*" is both wildcard addresses; a name is every
 * address it resolves to.
 */
static void
listen_add(char *addr, struct listen_opts *o)
{
	struct addrinfo		 hints, *res, *ai, *prev;
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	int			 error;

	if (addr[0] == '\0') {
		yyerror("listen on: empty address");
		goto done;
	}
	if (strlen(addr) >= NI_MAXHOST) {
		yyerror("listen on: address too long");
		goto done;
	}
	if (strcmp(addr, "*") == 0) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		if (listen_one(addr, (struct sockaddr *)&sin, sizeof(sin),
		    o) == -1)
			goto done;
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = in6addr_any;
		(void)listen_one(addr, (struct sockaddr *)&sin6, sizeof(sin6),
		    o);
		goto done;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((error = getaddrinfo(addr, NULL, &hints, &res)) != 0) {
		yyerror("listen on %s: %s", addr, gai_strerror(error));
		goto done;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		/* a name may give one address twice */
		for (prev = res; prev != ai; prev = prev->ai_next)
			if (prev->ai_family == ai->ai_family &&
			    prev->ai_addrlen == ai->ai_addrlen &&
			    memcmp(prev->ai_addr, ai->ai_addr,
			    ai->ai_addrlen) == 0)
				break;
		if (prev != ai)
			continue;
		if (listen_one(addr, ai->ai_addr, ai->ai_addrlen, o) == -1)
			break;
	}
	freeaddrinfo(res);
 done:
	free(addr);
}

/* Add one listener unless it is refused. */
static int
listen_one(const char *name, struct sockaddr *sa, socklen_t salen,
    struct listen_opts *o)
{
	struct listen_conf	*l, *old;
	char			 host[NI_MAXHOST], ohost[NI_MAXHOST];

	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("%s: calloc", __func__);
	memcpy(&l->ss, sa, salen);
	l->sslen = salen;
	l->port = o->port;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&l->ss)->sin_port = htons(o->port);
	else
		((struct sockaddr_in6 *)&l->ss)->sin6_port = htons(o->port);
	l->tls = o->tls;
	l->insecure = o->insecure;
	l->fd = -1;
	(void)strlcpy(l->name, name, sizeof(l->name));
	print_addr(&l->ss, host, sizeof(host));

	if (!l->tls && !l->insecure && !is_loopback(&l->ss)) {
		yyerror("listen on %s: plain TCP off loopback needs "
		    "\"tls\", or \"insecure\" to allow it", host);
		free(l);
		return (-1);
	}
	TAILQ_FOREACH(old, &conf->listeners, entry) {
		if (old->port != l->port ||
		    old->ss.ss_family != l->ss.ss_family)
			continue;
		if (same_addr(&old->ss, &l->ss)) {
			yyerror("duplicate listen on %s port %d", host,
			    o->port);
			free(l);
			return (-1);
		}
		if (is_any(&old->ss) || is_any(&l->ss)) {
			print_addr(&old->ss, ohost, sizeof(ohost));
			yyerror("listen on %s port %d overlaps listen on %s",
			    host, o->port, ohost);
			free(l);
			return (-1);
		}
	}
	TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
	return (0);
}

/* Is the address on the loopback network (check.c asks too)? */
int
is_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	const uint8_t			*a;

	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		return ((ntohl(sin->sin_addr.s_addr) >> 24) == 127);
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return (1);
		a = sin6->sin6_addr.s6_addr;
		return (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127);
	}
	return (0);
}

/* Whether an address is the wildcard (0.0.0.0 or ::). */
static int
is_any(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;

	switch (ss->ss_family) {
	case AF_INET:
		sin = (const struct sockaddr_in *)ss;
		return (sin->sin_addr.s_addr == htonl(INADDR_ANY));
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)ss;
		return (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr));
	}
	return (0);
}

/* Same address (and scope), ports aside; families already equal. */
static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	const struct sockaddr_in6	*a6, *b6;

	if (a->ss_family == AF_INET)
		return (((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr);
	a6 = (const struct sockaddr_in6 *)a;
	b6 = (const struct sockaddr_in6 *)b;
	return (memcmp(&a6->sin6_addr, &b6->sin6_addr,
	    sizeof(a6->sin6_addr)) == 0 &&
	    a6->sin6_scope_id == b6->sin6_scope_id);
}

/* An address as numbers, for messages and -n. */
static void
print_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	socklen_t	 sslen;

	sslen = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
	if (getnameinfo((const struct sockaddr *)ss, sslen, buf, len, NULL, 0,
	    NI_NUMERICHOST) != 0)
		(void)strlcpy(buf, "?", len);
}

/* provider "name" {: a new provider with the defaults. */
static void
provider_begin(char *name)
{
	struct provider_conf	*p;

	prov_line = yylval.lineno;
	prov_bad = 0;
	prov_keys = 0;
	prov_model = 0;
	/* One whose "{" never came is dropped. */
	free(prov);
	if ((prov = calloc(1, sizeof(*prov))) == NULL)
		fatal("%s: calloc", __func__);
	prov->type = PROVIDER_GEMINI;
	prov->connect_timeout = PROVIDER_CONNECT_TIMEOUT;
	prov->timeout = PROVIDER_TIMEOUT;
	prov->retries = PROVIDER_RETRIES;

	TAILQ_FOREACH(p, &conf->providers, entry) {
		if (strcmp(p->name, name) == 0) {
			yyerror("provider \"%s\" defined twice", name);
			prov_bad = 1;
			break;
		}
	}
	if (!valid_provider(name)) {
		yyerror("invalid provider name \"%s\"", name);
		prov_bad = 1;
	} else if (strlcpy(prov->name, name, sizeof(prov->name)) >=
	    sizeof(prov->name)) {
		yyerror("provider name too long (at most %zu bytes)",
		    sizeof(prov->name) - 1);
		prov->name[0] = '\0';
		prov_bad = 1;
	}
	free(name);
}

/* role "name" {: a new role, its name checked. */
static void
role_begin(char *name)
{
	struct role_conf	*r;

	role_bad = 0;
	if ((rolec = calloc(1, sizeof(*rolec))) == NULL)
		fatal("%s: calloc", __func__);
	rolec->temperature = GEN_TEMP_NONE;
	TAILQ_FOREACH(r, &conf->roles, entry) {
		if (strcmp(r->name, name) == 0) {
			yyerror("role \"%s\" defined twice", name);
			role_bad = 1;
			break;
		}
	}
	if (strlen(name) >= sizeof(rolec->name) || !conv_name_valid(name)) {
		yyerror("invalid role name \"%s\" (1 to %zu of A-Z a-z 0-9"
		    " . _ -)", name, sizeof(rolec->name) - 1);
		role_bad = 1;
	} else
		(void)strlcpy(rolec->name, name, sizeof(rolec->name));
	free(name);
}

/* temperature 0.2: a decimal from 0 to 2, kept in thousandths. */
static int
role_temperature(char *s)
{
	char	*end;
	double	 t;

	errno = 0;
	t = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(t >= 0 && t <= 2)) {
		yyerror("temperature \"%s\" is not a number from 0 to 2", s);
		free(s);
		return (-1);
	}
	rolec->temperature = (uint32_t)(t * 1000 + 0.5);
	free(s);
	return (0);
}

/* }: keep the role. */
static void
role_end(void)
{
	if (role_bad)
		free(rolec);
	else
		TAILQ_INSERT_TAIL(&conf->roles, rolec, entry);
	rolec = NULL;
}

/* The defaults of each type: url, model, whether a key is needed. */
static const struct {
	enum provider_type	 type;
	const char		*name;
	const char		*url;
	const char		*model;
	int			 key;
} prov_types[] = {
	{ PROVIDER_GEMINI, "gemini",
	    "https://generativelanguage.googleapis.com/v1beta",
	    "gemini-2.0-flash", 1 },
	{ PROVIDER_OPENAI, "openai", "https://api.openai.com/v1",
	    "gpt-4o-mini", 0 },
	{ PROVIDER_ANTHROPIC, "anthropic", "https://api.anthropic.com/v1",
	    "claude-sonnet-4-5", 1 },
};

/* The defaults of a provider type. */
static int
prov_type(enum provider_type t)
{
	size_t	 i;

	for (i = 0; i < sizeof(prov_types) / sizeof(prov_types[0]); i++)
		if (prov_types[i].type == t)
			return (i);
	fatalx("%s: unknown provider type", __func__);
}

/* }: check the provider, fill in its type's defaults and keep it. */
static void
provider_end(void)
{
	int	 t = prov_type(prov->type);

	if (prov_keys == 0 && prov_types[t].key) {
		lerror(prov_line, "provider \"%s\": \"api key file\" or "
		    "\"api key env\" is required", prov->name);
		prov_bad = 1;
	} else if (prov_keys == 3) {
		lerror(prov_line, "provider \"%s\": \"api key file\" and "
		    "\"api key env\" exclude each other", prov->name);
		prov_bad = 1;
	}
	if (prov->url[0] == '\0')
		(void)strlcpy(prov->url, prov_types[t].url, sizeof(prov->url));
	if (!prov_model)
		(void)strlcpy(prov->model, prov_types[t].model,
		    sizeof(prov->model));
	if (prov_bad)
		free(prov);
	else
		TAILQ_INSERT_TAIL(&conf->providers, prov, entry);
	prov = NULL;
}

/* What a configuration holds before the file says otherwise. */
static void
conf_defaults(struct bridged_conf *c)
{
	struct global_conf	*g = &c->g;

	(void)strlcpy(g->tls_cert, "/etc/bridged/server.crt",
	    sizeof(g->tls_cert));
	(void)strlcpy(g->tls_key, "/etc/bridged/server.key",
	    sizeof(g->tls_key));
	(void)strlcpy(g->user, BRIDGED_USER, sizeof(g->user));
	(void)strlcpy(g->chroot, BRIDGED_CHROOT, sizeof(g->chroot));
	(void)strlcpy(g->database, BRIDGED_DATABASE, sizeof(g->database));
	(void)strlcpy(g->socket, BRIDGED_SOCKET, sizeof(g->socket));
	g->prefork = BRIDGED_PREFORK;
	g->worker_renew = BRIDGED_RENEW;
	g->max_clients = BRIDGED_MAXCLIENTS;
	g->timeout = BRIDGED_TIMEOUT;
	g->handshake_timeout = BRIDGED_HANDSHAKE;
	g->identity = IDENTITY_IP;
	g->memory_limit = BRIDGED_MEMLIMIT;
	g->summaries_keep = BRIDGED_SUMMARIES;
	g->models_cache = BRIDGED_MODELSCACHE;
	g->line_max = BRIDGED_LINEMAX;
	g->sync = SYNC_NORMAL;
	g->limits.jobs = BRIDGED_JOBS_IDENTITY;
	g->auth_failures = BRIDGED_AUTHFAILS;
	g->events_keep = BRIDGED_EVENTSKEEP;
	g->jobs_max = BRIDGED_JOBS_MAX;
}

/* What only the whole file can tell. */
static int
conf_check(struct bridged_conf *c)
{
	struct listen_conf	*l;
	struct provider_conf	*p, *q;
	size_t			 n;
	int			 tls = 0, bad = 0;

	TAILQ_FOREACH(l, &c->listeners, entry)
		tls |= l->tls;
	if (TAILQ_EMPTY(&c->listeners)) {
		conf_error("%s: no listen statement", topfile->name);
		bad++;
	}
	if (tls && (c->g.tls_cert[0] == '\0' || c->g.tls_key[0] == '\0')) {
		conf_error("%s: a tls listener needs \"tls certificate\" and "
		    "\"tls key\"", topfile->name);
		bad++;
	}
	if (TAILQ_EMPTY(&c->providers)) {
		conf_error("%s: no provider", topfile->name);
		bad++;
	}
	/* A fallback names a provider of this file. */
	TAILQ_FOREACH(p, &c->providers, entry) {
		if (p->fallback[0] == '\0')
			continue;
		n = strcspn(p->fallback, "/");
		TAILQ_FOREACH(q, &c->providers, entry)
			if (strlen(q->name) == n &&
			    strncmp(q->name, p->fallback, n) == 0)
				break;
		if (q == NULL) {
			conf_error("%s: provider \"%s\": fallback \"%s\" "
			    "names no provider", topfile->name, p->name,
			    p->fallback);
			bad++;
		}
	}
	return (bad);
}

/* Read a configuration file; NULL once every error has been reported. */
struct bridged_conf *
parse_config(const char *filename)
{
	struct sym	*sym, *next;
	int		 bad;

	if ((conf = config_new()) == NULL)
		fatal("%s: config_new", __func__);
	conf_defaults(conf);
	conf_errors_reset();
	errors = 0;
	expansions = 0;
	atbol = 1;
	memset(&tok_prev, 0, sizeof(tok_prev));
	memset(&tok_cur, 0, sizeof(tok_cur));
	file = NULL;

	if ((file = pushfile(filename, 0)) == NULL) {
		config_free(conf);
		conf = NULL;
		return (NULL);
	}
	topfile = file;

	if (yyparse() != 0 && errors == 0)
		errors++;
	free(prov);		/* a block the file did not close */
	prov = NULL;
	bad = errors;
	if (bad == 0)
		bad = conf_check(conf);

	while (file != NULL)
		popfile();
	topfile = NULL;

	for (sym = TAILQ_FIRST(&syms); sym != NULL; sym = next) {
		next = TAILQ_NEXT(sym, entry);
		if (!sym->persist) {
			TAILQ_REMOVE(&syms, sym, entry);
			free(sym->name);
			free(sym->value);
			free(sym);
		}
	}

	if (bad) {
		config_free(conf);
		conf = NULL;
		return (NULL);
	}
	return (conf);
}

/* A quoted string that the lexer reads back unchanged. */
static void
print_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

/* Print a configuration in the grammar that parse_config() reads. */
void
config_print(const struct bridged_conf *c)
{
	const struct global_conf	*g = &c->g;
	const struct listen_conf	*l;
	const struct provider_conf	*p;
	const struct role_conf		*r;
	char				 host[NI_MAXHOST], size[32];
	int				 i;

	TAILQ_FOREACH(l, &c->listeners, entry) {
		print_addr(&l->ss, host, sizeof(host));
		printf("listen on %s port %d%s%s\n", host, l->port,
		    l->tls ? " tls" : "", l->insecure ? " insecure" : "");
	}
	printf("\ntls certificate ");
	print_str(g->tls_cert);
	printf("\ntls key ");
	print_str(g->tls_key);
	printf("\nuser ");
	print_str(g->user);
	printf("\nchroot ");
	print_str(g->chroot);
	printf("\ndatabase ");
	print_str(g->database);
	printf("\ndatabase sync %s\n", g->sync == SYNC_FULL ? "full" :
	    "normal");
	if (g->db_password_file[0] != '\0') {
		printf("database password file ");
		print_str(g->db_password_file);
		printf("\n");
	}
	printf("socket ");
	print_str(g->socket);
	printf("\nprefork %d\n", g->prefork);
	if (g->worker_renew != BRIDGED_RENEW)
		printf("worker renew %d\n", g->worker_renew);
	printf("max clients %d\n", g->max_clients);
	if (g->jobs_max != BRIDGED_JOBS_MAX)
		printf("jobs max %d\n", g->jobs_max);
	printf("timeout %d\n", g->timeout);
	printf("handshake timeout %d\n", g->handshake_timeout);
	if (g->identity == IDENTITY_TOKEN && g->tokens[0] != '\0')
		printf("identity token file \"%s\"\n", g->tokens);
	else if (g->identity == IDENTITY_TOKEN)
		printf("identity token\n");
	else
		printf("identity %s\n", g->identity == IDENTITY_CERTIFICATE ?
		    "certificate" : "ip");
	fmt_size(size, sizeof(size), g->memory_limit);
	printf("memory limit %s\n", size);
	fmt_size(size, sizeof(size), g->line_max);
	printf("max line %s\n", size);
	printf("summaries keep %d\n", g->summaries_keep);
	printf("models cache %d\n", g->models_cache);
	printf("limits {\n\trequests %llu per minute\n\ttokens %llu per day\n"
	    "\tjobs %llu\n}\n", (unsigned long long)g->limits.requests,
	    (unsigned long long)g->limits.tokens,
	    (unsigned long long)g->limits.jobs);
	printf("auth failures %d per minute\n", g->auth_failures);
	printf("events keep %d\n", g->events_keep);

	TAILQ_FOREACH(p, &c->providers, entry) {
		printf("\nprovider ");
		print_str(p->name);
		printf(" {\n\ttype %s\n\turl ",
		    prov_types[prov_type(p->type)].name);
		print_str(p->url);
		if (p->key_file[0] != '\0') {
			printf("\n\tapi key file ");
			print_str(p->key_file);
		} else if (p->key_env[0] != '\0') {
			printf("\n\tapi key env ");
			print_str(p->key_env);
		}
		printf("\n\tmodel ");
		print_str(p->model);
		if (p->nmodels > 0) {
			printf("\n\tmodels");
			for (i = 0; i < p->nmodels; i++) {
				printf(" ");
				print_str(p->models[i]);
			}
		}
		if (p->fallback[0] != '\0') {
			printf("\n\tfallback ");
			print_str(p->fallback);
		}
		if (p->max_tokens > 0)
			printf("\n\tmax tokens %d", p->max_tokens);
		printf("\n\tconnect timeout %d\n", p->connect_timeout);
		printf("\ttimeout %d\n", p->timeout);
		printf("\tretries %d\n}\n", p->retries);
	}
	TAILQ_FOREACH(r, &c->roles, entry) {
		printf("\nrole ");
		print_str(r->name);
		printf(" {");
		if (r->description[0] != '\0') {
			printf("\n\tdescription ");
			print_str(r->description);
		}
		if (r->system[0] != '\0') {
			printf("\n\tsystem ");
			print_str(r->system);
		}
		if (r->model[0] != '\0') {
			printf("\n\tmodel ");
			print_str(r->model);
		}
		if (r->temperature != GEN_TEMP_NONE)
			printf("\n\ttemperature %u.%03u", r->temperature / 1000,
			    r->temperature % 1000);
		if (r->max_tokens > 0)
			printf("\n\tmax tokens %u", r->max_tokens);
		printf("\n}\n");
	}
}
