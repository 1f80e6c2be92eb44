/*
 * bridgectl.h: the one header of bridgectl. It knows the daemon only
 * through lib/ctl.h.
 */

#ifndef BRIDGECTL_H
#define BRIDGECTL_H

#include <histedit.h>
#include <limits.h>
#include <signal.h>
#include <termios.h>
#include <tls.h>

#include "util.h"
#include "ctl.h"

enum action {
	NONE,
	SHOW_STATUS,
	SHOW_SESSIONS,
	SHOW_MODELS,
	KILL_SESSION,
	RELOAD,
	LOG_VERBOSE,
	LOG_BRIEF,
	MONITOR,
	EXPORT,
	PURGE,
	SHOW_JOBS,
	KILL_JOB,
	SHOW_METRICS,
	SHOW_IDENTITIES,
	SHOW_USAGE,
	SHOW_EVENTS,
	TOKEN_ADD,
	TOKEN_LIST,
	TOKEN_REVOKE
};

struct parse_result {
	enum action	 action;
	uint32_t	 session;
	uint64_t	 job;
	const char	*identity;
	const char	*format;
	int		 force;
	/* token add */
	const char	*label;
	const char	*models;
	uint32_t	 expire_days;	/* 0 never */
	uint64_t	 requests;	/* CTL_LIMIT_INHERIT: global */
	uint64_t	 tokens;
	uint64_t	 jobs;
	/* token revoke */
	uint32_t	 token;
	/* show usage, show events */
	uint32_t	 days;
	uint32_t	 count;
};

#define QUEUE_MAX		8
#define MODEL_MAX		64
#define MORE_MAX		64
#define BLOCK_MARK		"\"\"\""

/* What the reply to a line we sent is, or that none comes. */
enum expect {
	EXP_NONE,		/* a line inside a """ prompt */
	EXP_GREETING,		/* the server's first reply */
	EXP_COMMAND,		/* a command, a MORE answer */
	EXP_PROMPT,		/* a prompt: streamed, CANCEL stops it */
	EXP_INFO,		/* INFO typed by the user */
	EXP_INFO_QUIET,		/* INFO sent for the prompt, not shown */
	EXP_AUTH,
	EXP_AUTH_AUTO,		/* the token of the server or BRIDGE_TOKEN */
	EXP_HIDDEN,		/* IA or BACK the client sent on its own */
	EXP_EXPORT,		/* EXPORT: the body goes to a file */
	EXP_IMPORT,		/* IMPORT: MORE asks for the file */
	EXP_QUIT		/* EXIT or QUIT: BYE is expected */
};

/* Where connect goes: a name of ~/.bridge/config, or host[:port]. */
struct target {
	char		 name[64];
	char		 host[256];
	char		 port[8];
	char		 cafile[PATH_MAX];
	char		 pin[80];
	char		 tokenfile[PATH_MAX];
};

struct pending {
	enum expect	 what;
	int		 cancel;	/* CANCEL was sent while it ran */
};

struct client {
	struct target	 target;
	const char	*host;
	char		 port[8];
	int		 interactive;	/* stdin and stdout are terminals */
	int		 cmdmode;	/* -c: lines are BRIDGE/1 lines */
	int		 quiet;		/* -q: no footer after an answer */
	int		 dim;		/* stdout takes ESC[2m */
	char		*token;		/* sent with AUTH, then wiped */
	int		 auth_hinted;	/* said where a token goes */
	int		 tty[3];	/* fds 0-2 that are terminals */
	int		 c2[3];		/* a 0xc2 byte held back, per fd */

	int		 sock;
	struct tls	*tls;
	struct ibuf	*rbuf;		/* from the server, not yet shown */
	struct ibuf	*wbuf;		/* to the server */
	int		 read_wants_out;

	struct pending	 q[QUEUE_MAX];	/* replies still to come */
	int		 nq;
	int		 midline;	/* inside a streamed body line */
	int		 chat;		/* the server is in chat mode */
	int		 block;		/* inside a """ prompt */
	char		**blk;		/* its lines, sent when it ends */
	size_t		 nblk;
	FILE		*exportfp;	/* /export: where the body goes */
	char		 exportpath[PATH_MAX];
	char		*import;	/* /import: the file to send */
	size_t		 importlen;
	int		 info_sent;
	int		 quitting;	/* QUIT sent: BYE ends us */
	int		 errors;	/* ERR replies seen */
	char		 model[MODEL_MAX];
	char		 more[MORE_MAX];	/* the server waits: MORE */

	struct ibuf	*ibuf;		/* stdin, when not a terminal */
	struct ibuf	*ahead;		/* typed on a terminal while replies
					   came: lines for later */
	int		 in_eof;
	size_t		 in_lineno;

	EditLine	*el;
	History		*hist;
	char		 histfile[PATH_MAX];
	struct termios	 tio;		/* the terminal as we found it */
	struct termios	 tio_wait;	/* while replies come */
	struct termios	 tio_edit;	/* libedit's, while we print */
	int		 tty_waiting;
	int		 at_prompt;	/* inside el_gets */
	int		 broken;	/* printed over the prompt */
	int		 intr;		/* Ctrl-C abandoned the line */
	int		 pasting;
	char		**pend;		/* lines to send one by one */
	size_t		 npend, ipend;

	int		 spinning;
	int		 spin_shown;
	unsigned int	 spin_frame;
	uint64_t	 spin_next;
};

/*
 * bridgectl connect, from the bottom up: term.c (the terminal, signals),
 * replies.c (the reply queue and what the server says), conn.c (the
 * connection and its poll loop), chat.c (a user's line as BRIDGE/1),
 * tty.c (line editing), client.c (the command line, piped input).
 * Each calls only those before it.
 */

/* term.c */
extern struct client		 cl;
extern int			 sigpipe[2];
extern volatile sig_atomic_t	 got_int;
void	 client_exit(int) __attribute__((__noreturn__));
void	 cfatalx(const char *, ...)
	    __attribute__((__format__ (printf, 1, 2), __noreturn__));
void	 write_all(int, const char *, size_t);
void	 out(int, const char *, size_t);
void	 show_line(int, const char *);
void	 dim_line(int, const char *);
void	 spin_start(void);
void	 spin_tick(void);
void	 spin_stop(void);
int	 spin_timeout(void);
void	 signals_init(void);
void	 signals_run(void);
void	 prompt_break(void);
void	 prompt_mend(void);
void	 tty_wait(void);
void	 tty_ahead(void);

/* replies.c */
void	 push(enum expect);
void	 send_line(const char *, enum expect);
void	 reply_feed(void);

/* conn.c */
int	 conn_connect(void);
void	 conn_tls(const char *, int);
int	 io_poll(int, int);
void	 wait_replies(void);
void	 send_token(void);

/* chat.c */
int	 first_word(const char *, const char *);
void	 submit(const char *);
void	 submit_raw(const char *);
void	 chat_line(const char *);
void	 block_start(void);
void	 block_add(const char *);
void	 block_send(void);
void	 block_abandon(void);

/* tty.c */
void	 tty_init(void);
void	 run_tty(void) __attribute__((__noreturn__));

/* client.c */
int	 client_main(int, char *[]);

/* parser.c */
struct parse_result *parse(int, char *[]);

/* pin.c */
int	 home_file(const char *, char *, size_t);
int	 hash_valid(const char *);
void	 pin_check(void);
void	 pin_verify(const char *);

/* servers.c */
int	 target_hostport(const char *, struct target *);
int	 servers_lookup(const char *, struct target *);
char	*token_load(const struct target *);
int	 token_valid(const char *, size_t);

#endif /* BRIDGECTL_H */
