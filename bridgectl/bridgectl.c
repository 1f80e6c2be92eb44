/*
 * bridgectl.c: the operator's tool. Each command is a short do_*
 * function: send one request over the control socket and print the
 * answer's lines until it ends.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bridgectl.h"

#define BRIDGED_SOCKET	"/var/run/bridged.sock"

static void	usage(int) __attribute__((__noreturn__));

static struct imsgbuf	 ibuf;
static int		 noheader;	/* -H */

/* The tables: their header line, and what an empty one says. */
static const struct table {
	enum action	 action;
	const char	*header;
	const char	*empty;
} tables[] = {
	{ SHOW_SESSIONS, "ID ADDRESS IDENTITY MODEL SINCE MESSAGES BYTES-IN"
	    " BYTES-OUT", "no sessions" },
	{ SHOW_MODELS, "MODEL LIMITS", "no models" },
	{ SHOW_IDENTITIES, "IDENTITY AUTH FIRST-SEEN LAST-SEEN CONVERSATIONS"
	    " MESSAGES TOKENS-TODAY", "no identities" },
	{ SHOW_USAGE, "IDENTITY DAY MODEL PROMPTS TOKENS-IN TOKENS-OUT",
	    "no usage" },
	{ SHOW_EVENTS, "TIME IDENTITY EVENT", "no events" },
	{ SHOW_JOBS, "ID STATE IDENTITY MODEL CREATED TOKENS PROMPT",
	    "no jobs" },
	{ TOKEN_LIST, "ID LABEL CREATED EXPIRES LAST-USED STATE"
	    " REQUESTS/MIN TOKENS/DAY JOBS MODELS", "no tokens" }
};
static const struct table	*table;	/* of the command, or NULL */

/* Both synopses; -h asks for them on standard output. */
static void
usage(int status)
{
	extern char	*__progname;
	FILE		*fp = status ? stderr : stdout;

	fprintf(fp, "usage: %s [-Hh] [-s socket] command [argument ...]\n"
	    "       %s connect [-chkq] [-C cafile] [-p port] "
	    "host[:port] | name\n", __progname, __progname);
	if (status == 0)
		fprintf(fp, "connect opens a chat session (/help there); "
		    "the commands are in bridgectl(8)\n");
	exit(status);
}

/* Connect to the daemon's control socket, or say it is not running. */
static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(1, "socket path too long: %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
		err(1, "socket");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			errx(1, "bridged is not running (no daemon at %s)",
			    path);
		err(1, "connect %s", path);
	}
	return (fd);
}

/* Send one request to the daemon; b (NULL: no payload) is freed. */
static void
ctl_send(uint32_t type, struct ibuf *b)
{
	if (imsg_compose(&ibuf, type, CTL_VERSION, 0, -1,
	    b != NULL ? ibuf_data(b) : NULL, b != NULL ? ibuf_left(b) : 0) ==
	    -1 || imsg_flush(&ibuf) == -1)
		err(1, "send");
	ibuf_free(b);
}

/*
 * Print each line of the answer on out; the exit status follows its
 * end. A reload's lines are the errors of the file: stderr.
 */
static int
ctl_read_answer(FILE *out)
{
	struct imsg	 imsg;
	struct ireader	 ir;
	const char	*text;
	ssize_t		 n;
	size_t		 rows = 0;
	int		 r;

	for (;;) {
		while ((r = imsg_get(&ibuf, &imsg)) == 1) {
			ir_init(&ir, &imsg);
			text = ir_str(&ir);
			if (ir_end(&ir) == -1)
				errx(1, "malformed answer from bridged");
			switch (imsg.hdr.type) {
			case CTL_DATA:
				if (table != NULL && rows++ == 0 && !noheader)
					fprintf(out, "%s\n", table->header);
				fprintf(out, "%s\n", text);
				break;
			case CTL_END:
				if (table != NULL && rows == 0 && !noheader)
					fprintf(out, "%s\n", table->empty);
				if (*text != '\0')
					printf("%s\n", text);
				imsg_free(&imsg);
				return (0);
			case CTL_FAIL:
				fprintf(stderr, "bridgectl: %s\n", text);
				imsg_free(&imsg);
				return (1);
			default:
				errx(1, "unexpected answer from bridged");
			}
			fflush(out);
			imsg_free(&imsg);
		}
		if (r == -1)
			errx(1, "malformed answer from bridged");
		if ((n = imsg_read(&ibuf)) == -1)
			err(1, "read");
		if (n == 0)
			errx(1, "bridged closed the connection");
	}
}

/* A request without an argument. */
static int
do_simple(uint32_t type)
{
	ctl_send(type, NULL);
	return (ctl_read_answer(stdout));
}

/* A request with a number. */
static int
do_u32(uint32_t type, uint32_t v)
{
	struct ibuf	*b;

	if ((b = ibuf_open(8)) == NULL || ibuf_add_u32(b, v) == -1)
		err(1, "request");
	ctl_send(type, b);
	return (ctl_read_answer(stdout));
}

/* A request with a 64-bit number. */
static int
do_u64(uint32_t type, uint64_t v)
{
	struct ibuf	*b;

	if ((b = ibuf_open(8)) == NULL || ibuf_add_u64(b, v) == -1)
		err(1, "request");
	ctl_send(type, b);
	return (ctl_read_answer(stdout));
}

/* export: an identity and a format. */
static int
do_export(const char *identity, const char *format)
{
	struct ibuf	*b;

	if ((b = ibuf_open(128)) == NULL || ibuf_add_str(b, identity) == -1 ||
	    ibuf_add_str(b, format) == -1)
		err(1, "export");
	ctl_send(CTL_EXPORT, b);
	return (ctl_read_answer(stdout));
}

/* Deleting history cannot be undone: ask, unless -f. */
static int
do_purge(const char *identity, int force)
{
	struct ibuf	*b;
	char		 answer[16];

	if (!force) {
		if (!isatty(STDIN_FILENO))
			errx(1, "purge deletes all history of %s; "
			    "confirm with -f", identity);
		printf("Delete all messages and summaries of %s? [y/N] ",
		    identity);
		fflush(stdout);
		if (fgets(answer, sizeof(answer), stdin) == NULL ||
		    (answer[0] != 'y' && answer[0] != 'Y')) {
			printf("nothing deleted\n");
			return (1);
		}
	}
	if ((b = ibuf_open(128)) == NULL || ibuf_add_str(b, identity) == -1)
		err(1, "purge");
	ctl_send(CTL_PURGE, b);
	return (ctl_read_answer(stdout));
}

/* str identity or "", u32 n: show usage, show events. */
static int
do_query(uint32_t type, const char *identity, uint32_t n)
{
	struct ibuf	*b;

	if ((b = ibuf_open(128)) == NULL ||
	    ibuf_add_str(b, identity != NULL ? identity : "") == -1 ||
	    ibuf_add_u32(b, n) == -1)
		err(1, "query");
	ctl_send(type, b);
	return (ctl_read_answer(stdout));
}

/* token add: the new token is printed once, on its own line. */
static int
do_token_add(struct parse_result *res)
{
	struct ibuf	*b;

	if ((b = ibuf_open(256)) == NULL ||
	    ibuf_add_str(b, res->label != NULL ? res->label : "") == -1 ||
	    ibuf_add_u32(b, res->expire_days) == -1 ||
	    ibuf_add_str(b, res->models != NULL ? res->models : "") == -1 ||
	    ibuf_add_u64(b, res->requests) == -1 ||
	    ibuf_add_u64(b, res->tokens) == -1 ||
	    ibuf_add_u64(b, res->jobs) == -1)
		err(1, "token add");
	ctl_send(CTL_TOKEN_ADD, b);
	return (ctl_read_answer(stdout));
}

/* connect, or a control command over the socket. */
int
main(int argc, char *argv[])
{
	struct parse_result	*res;
	const char		*sock = BRIDGED_SOCKET;
	size_t			 i;
	int			 ch;

	log_init(1, LOG_USER);
	/* connect has options of its own: it gets argv before getopt. */
	if (argc > 1 && strcmp(argv[1], "connect") == 0)
		return (client_main(argc - 1, argv + 1));
	while ((ch = getopt(argc, argv, "+Hhs:")) != -1) {
		switch (ch) {
		case 'H':
			noheader = 1;
			break;
		case 'h':
			usage(0);
		case 's':
			sock = optarg;
			break;
		default:
			usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage(1);
	if ((res = parse(argc, argv)) == NULL)
		exit(1);

	imsgbuf_init(&ibuf, ctl_connect(sock));
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (tables[i].action == res->action)
			table = &tables[i];
	switch (res->action) {
	case SHOW_STATUS:
		return (do_simple(CTL_STATUS));
	case SHOW_SESSIONS:
		return (do_simple(CTL_SESSIONS));
	case RELOAD:
		ctl_send(CTL_RELOAD, NULL);
		return (ctl_read_answer(stderr));
	case LOG_VERBOSE:
		return (do_u32(CTL_LOG, 1));
	case LOG_BRIEF:
		return (do_u32(CTL_LOG, 0));
	case KILL_SESSION:
		return (do_u32(CTL_KILL, res->session));
	case MONITOR:
		return (do_simple(CTL_MONITOR));
	case SHOW_MODELS:
		return (do_simple(CTL_MODELS));
	case SHOW_JOBS:
		return (do_simple(CTL_JOBS));
	case KILL_JOB:
		return (do_u64(CTL_JOBKILL, res->job));
	case EXPORT:
		return (do_export(res->identity, res->format));
	case PURGE:
		return (do_purge(res->identity, res->force));
	case SHOW_METRICS:
		return (do_simple(CTL_METRICS));
	case SHOW_IDENTITIES:
		return (do_simple(CTL_IDENTITIES));
	case SHOW_USAGE:
		return (do_query(CTL_USAGE, res->identity, res->days));
	case SHOW_EVENTS:
		return (do_query(CTL_EVENTS, res->identity, res->count));
	case TOKEN_ADD:
		return (do_token_add(res));
	case TOKEN_LIST:
		return (do_simple(CTL_TOKEN_LIST));
	case TOKEN_REVOKE:
		return (do_u32(CTL_TOKEN_REVOKE, res->token));
	case NONE:
		break;
	}
	usage(1);
}
