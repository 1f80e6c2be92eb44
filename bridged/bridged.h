/*
 * bridged.h: the one header of types of bridged and bridged-worker.
 */

#ifndef BRIDGED_H
#define BRIDGED_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>

#include "util.h"

#define CONF_FILE		"/etc/bridged.conf"
#define BRIDGED_USER		"_bridged"
#define BRIDGED_CHROOT		"/var/empty"
#define BRIDGED_DATABASE	"/var/bridged/bridged.db"
#define BRIDGED_SOCKET		"/var/run/bridged.sock"
#define BRIDGED_PORT		65432
#define BRIDGED_PREFORK		4
#define PARENT_REFILL_WAIT	50		/* ms, a handshake's head start */
#define BRIDGED_RENEW		256		/* clients, then a new template */
#define BRIDGED_MAXCLIENTS	256
#define BRIDGED_TIMEOUT		300		/* s, idle client */
#define BRIDGED_HANDSHAKE	10		/* s, TLS handshake */
#define BRIDGED_MEMLIMIT	(100ULL * 1024 * 1024)
#define BRIDGED_SUMMARIES	50
#define BRIDGED_MODELSCACHE	300		/* s */
#define BRIDGED_LINEMAX		(256 * 1024)
#define PROVIDER_CONNECT_TIMEOUT 10		/* s */
#define PROVIDER_TIMEOUT	300		/* s, whole request */
#define PROVIDER_RETRIES	3
#define PROVIDER_MODELS_MAX	32		/* models "a" "b" ... */
#define PROVIDER_MAX_TOKENS	4096		/* anthropic's default */

#define NAME_MAX_LEN		64
#define MODEL_MAX_LEN		128
#define URL_MAX_LEN		1024
#define IDENTITY_LEN		64		/* hex SHA-256 */
#define TLS_TICKET_KEY_LEN	48
#define WORKER_PREP_NICE	10		/* until a worker is ready */
#define STORAGE_WAIT		10		/* s, a prompt waits for storage */
#define BRIDGED_AUTHFAILS	10		/* wrong tokens a minute */
#define BRIDGED_EVENTSKEEP	100000		/* events kept */
#define LIMIT_INHERIT		UINT64_MAX	/* a token's limit: the global one */
#define TOKEN_MODELS_MAX	1024		/* a token's model list, as text */
#define LABEL_MAX_LEN		64
#define TOKEN_PREFIX		"bt-"		/* an issued token begins so */
#define TOKEN_BITS		160		/* of randomness */
#define TOKEN_TEXT_LEN		(3 + TOKEN_BITS / 4)
#define BRIDGED_JOBS_MAX	16		/* jobs running at once */
#define BRIDGED_JOBS_IDENTITY	2		/* of them, per identity: the
						   default of limits { jobs } */
#define JOBS_LIMIT_MAX		10000		/* "no limit" to the provider */
#define JOB_TURNS_MAX		50		/* turns of a dialogue */
#define JOB_WAITING_MAX		100		/* unfinished, per identity */
#define SUMMARY_INTRO \
	"This is a summary of your earlier conversation with this user;" \
	" use it as context.\n\n"

/* The descriptor of a freshly executed child's channel to the parent. */
#define FD_PARENT		3

enum proc_id {
	PROC_PARENT,
	PROC_CONTROL,
	PROC_STORAGE,
	PROC_PROVIDER,
	PROC_WORKER,
	PROC_TEMPLATE,
	PROC_MAX
};

/*
 * Configuration (parse.y fills it; config.c carries it over imsg).
 */
enum identity_mode {
	IDENTITY_IP,
	IDENTITY_CERTIFICATE,
	IDENTITY_TOKEN
};

enum sync_mode {
	SYNC_NORMAL,
	SYNC_FULL
};

enum provider_type {
	PROVIDER_GEMINI,
	PROVIDER_OPENAI,
	PROVIDER_ANTHROPIC
};

struct listen_conf {
	TAILQ_ENTRY(listen_conf) entry;
	char			 name[NI_MAXHOST];	/* as written */
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	in_port_t		 port;			/* host order */
	int			 tls;
	int			 insecure;	/* plain off loopback allowed */
	int			 fd;		/* bound socket, or -1 */
};
TAILQ_HEAD(listen_list, listen_conf);

struct provider_conf {
	TAILQ_ENTRY(provider_conf) entry;
	char			 name[NAME_MAX_LEN];
	enum provider_type	 type;
	char			 url[URL_MAX_LEN];
	char			 key_file[PATH_MAX];
	char			 key_env[NAME_MAX_LEN];
	char			 model[MODEL_MAX_LEN];	/* the default */
	char			 fallback[MODEL_MAX_LEN];  /* name/model */
	char			 models[PROVIDER_MODELS_MAX][MODEL_MAX_LEN];
	int			 nmodels;		/* 0: all listed */
	int			 max_tokens;		/* 0: API default */
	int			 connect_timeout;	/* s */
	int			 timeout;		/* s */
	int			 retries;
};
TAILQ_HEAD(provider_list, provider_conf);

/* Limits of one identity; 0 is no limit. */
struct limits {
	uint64_t		 requests;	/* a minute */
	uint64_t		 tokens;	/* a day (UTC), in and out */
	uint64_t		 jobs;		/* at once */
};

/* The fixed part, sent as one struct (IMSG_CFG_GLOBAL). */
struct global_conf {
	char			 tls_cert[PATH_MAX];
	char			 tls_key[PATH_MAX];
	char			 user[NAME_MAX_LEN];
	char			 chroot[PATH_MAX];
	char			 database[PATH_MAX];
	char			 db_password_file[PATH_MAX];
	char			 socket[PATH_MAX];
	int			 prefork;
	int			 worker_renew;		/* clients a template */
	int			 max_clients;
	int			 timeout;		/* s */
	int			 handshake_timeout;	/* s */
	enum identity_mode	 identity;
	char			 tokens[PATH_MAX];	/* identity token */
	uint64_t		 memory_limit;		/* bytes */
	int			 summaries_keep;
	int			 models_cache;		/* s */
	size_t			 line_max;		/* bytes */
	enum sync_mode		 sync;
	int			 jobs_max;		/* running at once */
	int			 verbose;
	struct limits		 limits;		/* for every identity */
	int			 auth_failures;		/* a minute, an address */
	int			 events_keep;
};

/* A role block: what ROLE applies to a conversation. */
#define ROLE_DESC_MAX		256
#define ROLE_SYSTEM_MAX		16384		/* as CONV_SYSTEM_MAX */
struct role_conf {
	TAILQ_ENTRY(role_conf)	 entry;
	char			 name[NAME_MAX_LEN];
	char			 description[ROLE_DESC_MAX];
	char			 system[ROLE_SYSTEM_MAX];
	char			 model[MODEL_MAX_LEN];	/* "" none */
	uint32_t		 temperature;	/* thousandths, or
						   GEN_TEMP_NONE */
	uint32_t		 max_tokens;	/* 0 none */
};
TAILQ_HEAD(role_list, role_conf);

struct bridged_conf {
	struct global_conf	 g;
	struct listen_list	 listeners;
	struct provider_list	 providers;
	struct role_list	 roles;
	char			*db_password;	/* storage's only, or NULL */
};

/*
 * Messages. Types are prefixed by their sender; a reply names its
 * sender too. The payload of each is given as the ibuf_add_* calls
 * that build it (u32, u64, str, data) or as a fixed struct.
 */
enum imsg_type {
	IMSG_NONE,

	/* parent -> any child */
	IMSG_CFG_GLOBAL,	/* struct global_conf */
	IMSG_CFG_PROVIDER,	/* struct provider_conf, one per provider */
	IMSG_CFG_ROLE,		/* struct role_conf, one per role */
	IMSG_CFG_TLS,		/* data cert, data key, data ticket key
				   (TLS_TICKET_KEY_LEN bytes) */
	IMSG_CFG_DONE,		/* empty: configuration complete */
	IMSG_PARENT_VERBOSE,	/* u32 level: log verbosely (1) or not */

	/* parent -> storage, provider: a worker's channel (fd) */
	IMSG_PARENT_CHANNEL,	/* u32 worker id, str identity ("" idle) */
	/* parent -> storage: a worker now serves a client */
	IMSG_PARENT_SESSION,	/* u32 worker id, str identity */
	/* parent -> worker: the client socket (fd) */
	IMSG_PARENT_CLIENT,	/* u32 session id, str address, u32 port,
				   str local address, u32 local port,
				   str identity, u64 connected (epoch s),
				   str refuse reason ("" to serve),
				   u32 tls (1: TLS listener, 0: plain) */
	/* parent -> worker, control: a channel to storage or provider (fd) */
	IMSG_PARENT_STORAGE,	/* empty */
	IMSG_PARENT_PROVIDER,	/* empty */
	IMSG_PARENT_KILL,	/* str reason: say BYE and leave */
	IMSG_PARENT_AUTH,	/* u32 verdict (AUTH_*), str identity ("" if
				   not), str models the token may use
				   (comma-separated, "" all) */
	/* parent -> storage: control's channel (fd) */
	IMSG_PARENT_CONTROL,	/* empty */
	/* parent -> storage, provider: their channel for jobs (fd) */
	IMSG_PARENT_JOBS,	/* empty */

	/* parent -> template: fork a worker, whose parent channel is the fd */
	IMSG_PARENT_FORK,	/* u32 worker id */
	/* template -> parent */
	IMSG_TEMPLATE_FORKED,	/* u32 worker id, u32 pid */
	IMSG_TEMPLATE_ENDED,	/* u32 worker id, u32 pid, u32 wait status */

	/* any child -> parent */
	IMSG_CHILD_LOG,		/* u32 priority, str line */
	IMSG_CHILD_READY,	/* empty: initialized and sandboxed */

	/* worker -> parent */
	IMSG_WORKER_AUTH,	/* str token: identity token */
	IMSG_WORKER_IDENTITY,	/* str certificate hash: identity certificate */
	IMSG_WORKER_STATE,	/* str model, u32 messages, u64 bytes in,
				   u64 bytes out, u32 mode */
	IMSG_WORKER_EVENT,	/* str event line for monitor */

	/* worker -> provider */
	IMSG_WORKER_MODELS,	/* u32 request id */
	IMSG_WORKER_GEN_BEGIN,	/* u32 request id, str model,
				   str system instruction ("" for none),
				   u32 max tokens (0: default),
				   u32 temperature in thousandths
				   (GEN_TEMP_NONE: default) */
	IMSG_WORKER_GEN_PART,	/* u32 request id, then one or more
				   pieces: u32 role, u32 more, data text,
				   each appended to the current turn, which
				   stays open while more is set */
	IMSG_WORKER_GEN_END,	/* u32 request id: send it */
	IMSG_WORKER_CANCEL,	/* u32 request id */

	/* provider -> worker */
	IMSG_PROVIDER_MODEL,	/* u32 request id, str name,
				   u64 input limit, u64 output limit */
	IMSG_PROVIDER_MODELS_END, /* u32 request id, str note: which
				   providers failed ("" none) */
	IMSG_PROVIDER_CHUNK,	/* u32 request id, data text */
	IMSG_PROVIDER_DONE,	/* u32 request id, u64 prompt tokens,
				   u64 answer tokens, str finish reason,
				   str the model that answered */
	IMSG_PROVIDER_ERROR,	/* u32 request id, str code, str text */

	/* worker -> storage; a conversation is always the identity's own */
	IMSG_WORKER_STORE,	/* u32 request id, u64 key (random, the
				   storage dedupes a resent request by it),
				   u64 conversation, u32 role, str model,
				   u64 tokens, data text; partial answers
				   are not stored */
	IMSG_WORKER_SUMMARY,	/* u32 request id, u64 key (as STORE's),
				   u64 conversation, data text */
	IMSG_WORKER_HISTORY,	/* u32 request id, u64 conversation,
				   u32 kind, u32 count */
	IMSG_WORKER_CONTEXT,	/* u32 request id, str conversation (id or
				   name; "": the most recently used, made
				   with the model if there is none),
				   str model; CONV, ITEM..., END */
	IMSG_WORKER_COUNT,	/* u32 request id */
	IMSG_WORKER_CONV_NEW,	/* u32 request id, str name ("" none),
				   str model, str role, str system; CONV */
	IMSG_WORKER_CONV_LIST,	/* u32 request id, u32 count; CONV..., END */
	IMSG_WORKER_CONV_SET,	/* u32 request id, u64 conversation,
				   u32 mask (CONV_*), str model, str role,
				   str system; STORED */
	IMSG_WORKER_CONV_DELETE, /* u32 request id, str conversation;
				   DELETED */
	IMSG_WORKER_SEARCH,	/* u32 request id, str words; MATCH..., END */
	IMSG_WORKER_EXPORT,	/* u32 request id, str conversation; CONV,
				   ITEM... (messages, then summaries), END */
	IMSG_WORKER_IMPORT,	/* u32 request id, str name, str model,
				   str role, str system, u32 count, then
				   per item u32 role, u64 time, data text,
				   oldest first; CONV of the new one */
	IMSG_WORKER_SUBMIT,	/* u32 request id, u64 key (as STORE's),
				   u64 conversation (SUBMIT; 0 DIALOGUE),
				   u32 kind (enum job_kind), u32 turns,
				   str model, str model B ("" for none),
				   data prompt; answered STORED (job id) */
	IMSG_WORKER_JOBS,	/* u32 request id, u32 count; answered
				   JOB_LINE..., END */
	IMSG_WORKER_RESULT,	/* u32 request id, u64 job id; answered
				   JOB_HEAD, JOB_CHUNK..., JOB_END */
	IMSG_WORKER_UNFOLLOW,	/* u32 request id of a RESULT: no answer */
	IMSG_WORKER_KILL,	/* u32 request id, u64 job id; answered
				   STORED (job id) */

	/* storage -> worker */
	IMSG_STORAGE_STORED,	/* u32 request id, u64 row id */
	IMSG_STORAGE_ITEM,	/* u32 request id, u64 row id, u64 time,
				   u32 role, data text */
	IMSG_STORAGE_END,	/* u32 request id, u64 count */
	IMSG_STORAGE_ERROR,	/* u32 request id, str text */
	IMSG_STORAGE_CONV,	/* u32 request id, u64 conversation,
				   u64 last use, u64 messages, str name,
				   str model, str role, str system */
	IMSG_STORAGE_MATCH,	/* u32 request id, u64 conversation,
				   u64 message id, u64 time, u32 role,
				   data text around the match */
	IMSG_STORAGE_DELETED,	/* u32 request id, u64 conversation,
				   u64 messages deleted */
	IMSG_STORAGE_REFUSED,	/* u32 request id, str code (PROTOCOL.md's),
				   str text: the client asked for what is
				   not there or not allowed */
	IMSG_STORAGE_JOB_LINE,	/* u32 request id, u64 job id, u32 state,
				   str model, u64 created (epoch s),
				   u64 answer tokens, str identity,
				   str prompt (its first 40 characters) */
	IMSG_STORAGE_JOB_HEAD,	/* u32 request id, u64 job id, u32 state */
	IMSG_STORAGE_JOB_CHUNK,	/* u32 request id, u32 kind (enum
				   chunk_kind), data text */
	IMSG_STORAGE_JOB_END,	/* u32 request id, u32 state, str model,
				   u64 prompt tokens, u64 answer tokens,
				   u64 ms, str finish, str code, str text */

	/* storage -> provider, on the jobs channel */
	IMSG_STORAGE_JOB_QUEUED, /* u64 job id, str identity, u32 how many
				   jobs of that identity may run at once */
	IMSG_STORAGE_JOB_SPEC,	/* u64 job id, u32 kind, u32 turns,
				   str model, str model B */
	IMSG_STORAGE_JOB_PART,	/* u64 job id, u32 role, data text: the
				   context, then the prompt (role user) */
	IMSG_STORAGE_JOB_READY,	/* u64 job id: the parts are complete */
	IMSG_STORAGE_JOB_GONE,	/* u64 job id: not to run (any more) */
	IMSG_STORAGE_EVENT,	/* str event line for monitor (-> parent) */

	/* provider -> storage, on the jobs channel */
	IMSG_PROVIDER_JOB_LIST,	/* empty: send JOB_QUEUED for every job
				   queued or running */
	IMSG_PROVIDER_JOB_START, /* u64 job id: answered SPEC, PART...,
				   READY, or GONE */
	IMSG_PROVIDER_JOB_CHUNK, /* u64 job id, u32 kind, data text */
	IMSG_PROVIDER_JOB_TURN,	/* u64 job id, u32 turn, str model,
				   u64 answer tokens: a dialogue turn
				   is complete */
	IMSG_PROVIDER_JOB_DONE,	/* u64 job id, u64 prompt tokens,
				   u64 answer tokens, u64 ms, str finish */
	IMSG_PROVIDER_JOB_FAIL,	/* u64 job id, str code, str text */

	/* control -> parent (peerid: the control client); answered with
	   PARENT_DATA..., then PARENT_END or PARENT_FAIL */
	IMSG_CTL_STATUS,	/* empty */
	IMSG_CTL_SESSIONS,	/* empty */
	IMSG_CTL_KILL,		/* u32 session id */
	IMSG_CTL_RELOAD,	/* empty */
	IMSG_CTL_LOG,		/* u32 verbose */
	/* parent -> control */
	IMSG_PARENT_MONITOR,	/* str event line, for every monitor */
	IMSG_PARENT_DATA,	/* str line */
	IMSG_PARENT_END,	/* str text ("" for none) */
	IMSG_PARENT_FAIL,	/* str text */

	/* control -> storage; answered with ITEM.../END or ERROR */
	IMSG_CTL_EXPORT,	/* u32 request id, str identity or prefix;
				   ITEM role user/model/summary, then END */
	IMSG_CTL_PURGE,		/* u32 request id, str identity or prefix;
				   END with the rows deleted */
	/* storage -> control: first answer to EXPORT and PURGE */
	IMSG_STORAGE_IDENTITY,	/* u32 request id, str the whole identity */
	/* control -> storage: bridgectl show jobs, kill job */
	IMSG_CTL_JOBS,		/* u32 request id, u32 count; answered
				   JOB_LINE..., END */
	IMSG_CTL_JOBKILL,	/* u32 request id, u64 job id; answered
				   END (job id) or ERROR */

	/* parent -> storage: is this hash an issued token? */
	IMSG_PARENT_TOKEN,	/* u32 worker id, str token hash */
	/* storage -> parent: its answer */
	IMSG_STORAGE_TOKEN,	/* u32 worker id, u32 valid, str hash,
				   str models ("" all) */
	/* parent -> storage: one line of the event log */
	IMSG_PARENT_EVENT,	/* u64 time (epoch s), str identity ("" none),
				   str text */
	/* worker -> storage: may this identity generate now? counted */
	IMSG_WORKER_ADMIT,	/* u32 request id, str model */
	/* storage -> worker */
	IMSG_STORAGE_ADMIT,	/* u32 request id, str code ("" admitted),
				   str text */
	/* worker -> storage: tokens an answer used; answered STORED */
	IMSG_WORKER_USAGE,	/* u32 request id, str model,
				   u64 prompt tokens, u64 answer tokens */
	IMSG_WORKER_USAGE_GET,	/* u32 request id, u32 days: LINE..., END */
	/* storage -> worker, control: one line of a table */
	IMSG_STORAGE_LINE,	/* u32 request id, str line */
	/* worker -> parent: one generation, for the metrics */
	IMSG_WORKER_METRIC,	/* str model, str code ("" success),
				   str limit ("" none reached),
				   u64 tokens in, u64 tokens out,
				   u64 ms to the first byte (0 none),
				   u64 ms in all */
	/* control -> parent */
	IMSG_CTL_METRICS,	/* empty: DATA..., END */
	IMSG_CTL_END_SESSIONS,	/* str identity, str reason: no answer */
	/* control -> storage; LINE.../END or ERROR */
	IMSG_CTL_TOKEN_ADD,	/* u32 id, str hash, str label, u64 expires
				   (epoch s, 0 never), str models,
				   u64 requests, u64 tokens, u64 jobs
				   (LIMIT_INHERIT: the global limit);
				   END with the token's id */
	IMSG_CTL_TOKEN_LIST,	/* u32 id */
	IMSG_CTL_TOKEN_REVOKE,	/* u32 id, u64 token id: IDENTITY, END */
	IMSG_CTL_USAGE,		/* u32 id, str identity prefix or "",
				   u32 days */
	IMSG_CTL_IDENTITIES,	/* u32 id */
	IMSG_CTL_EVENTS,	/* u32 id, str identity prefix or "",
				   u32 count */
	/* control -> parent: how many monitors are attached now */
	IMSG_CTL_MONITORS,	/* u32 count; MONITOR lines only while > 0 */
	/* parent -> storage, before IMSG_CFG_DONE: `database password
	   file''s contents (never logged, never in the configuration) */
	IMSG_CFG_DB_PASSWORD,	/* str password */
	/* storage -> parent: another instance revoked a token */
	IMSG_STORAGE_END_SESSIONS, /* str identity, str reason */
	/* parent -> worker: whether a monitor is attached */
	IMSG_PARENT_MONITORED,	/* u32 1 or 0; with 0 a worker sends only
				   the events the log keeps (event_stored) */

	/* parent -> control: the listening control socket (fd) */
	IMSG_PARENT_CONTROL_SOCKET, /* empty */
	/* control -> provider: the model list (PROVIDER_MODEL...,
	   PROVIDER_MODELS_END, or PROVIDER_ERROR) */
	IMSG_CTL_MODELS,	/* u32 request id */
	/* storage, provider -> parent: this worker sent a malformed
	   message; its channel is closed, the parent ends it */
	IMSG_STORAGE_REJECT,	/* u32 worker id */
	IMSG_PROVIDER_REJECT,	/* u32 worker id */

	IMSG_MAX
};

/* Roles of stored and generated messages. */
enum msg_role {
	ROLE_USER,
	ROLE_MODEL,
	ROLE_SUMMARY,
	ROLE_MAX
};

/* IMSG_PARENT_AUTH verdicts. */
#define AUTH_REFUSED		0
#define AUTH_ACCEPTED		1
#define AUTH_BANNED		2	/* too many from the address: BYE */

/* IMSG_WORKER_HISTORY kinds. */
enum history_kind {
	HISTORY_MESSAGES,
	HISTORY_SUMMARIES
};

/* Jobs: what they are, where they stand, what their output holds. */
enum job_kind {
	JOB_SUBMIT,		/* one prompt */
	JOB_DIALOGUE,		/* two models answer each other */
	JOB_KIND_MAX
};

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_DONE,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_STATE_MAX
};

enum chunk_kind {
	CHUNK_TEXT,		/* answer text */
	CHUNK_TURN,		/* a dialogue turn begins: the model */
	CHUNK_KIND_MAX
};

/* IMSG_WORKER_STATE modes. */
enum session_mode {
	MODE_COMMAND,
	MODE_CHAT
};

/* child.c: what every executed child shares */
extern struct channel	*parent_chan;	/* FD_PARENT */
extern int		 foreground;	/* -d: log to stderr */

struct tls_material {
	uint8_t		*cert;
	size_t		 certlen;
	uint8_t		*key;
	size_t		 keylen;
	uint8_t		 ticket_key[TLS_TICKET_KEY_LEN];
	int		 loaded;
};

void		 child_init(enum proc_id, int, int);
void		 child_forked(enum proc_id, int);
struct bridged_conf *child_config(struct tls_material *);
int		 child_config_imsg(struct bridged_conf **,
		    struct tls_material *, struct imsg *);
int		 child_imsg(struct bridged_conf **, struct tls_material *,
		    struct imsg *);
void		 child_dispatch(void (*)(struct channel *, struct imsg *));
void		 child_ready(void);
void		 child_bad(enum proc_id, const struct imsg *, const char *)
		    __attribute__((__noreturn__));
void		 tls_material_wipe(struct tls_material *);

/* parent.c: a process the parent started, and its client if a worker */
struct child {
	TAILQ_ENTRY(child)	 entry;
	enum proc_id		 id;
	pid_t			 pid;
	uint32_t		 wid;		/* worker id */
	struct channel		 chan;
	int			 ready;
	int			 busy;		/* has a client */
	int			 retiring;	/* told to stop: no new client */
	int			 auth_pending;	/* storage checks its token */
	int			 orphan;	/* worker: its template died */
	uint32_t		 gen;		/* its template's layout */
	uint32_t		 served;	/* template: clients handed */
	uint64_t		 started;	/* ms */
	char			 lastwarn[160];	/* its last warning logged */
	/* the session, while busy */
	uint32_t		 sid;
	char			 addr[NI_MAXHOST];
	in_port_t		 port;
	char			 identity[IDENTITY_LEN + 1];
	time_t			 since;
	char			 model[MODEL_MAX_LEN];
	uint32_t		 messages;
	uint64_t		 bytes_in;
	uint64_t		 bytes_out;
	uint32_t		 mode;
};
TAILQ_HEAD(child_list, child);

void		 parent_main(struct bridged_conf *, const char *,
		    const char *, int, int) __attribute__((__noreturn__));
struct child	*parent_idle_worker(void);
char		*parent_db_password(const char *);
void		 parent_pool_update(void);

/* peers.c */
extern struct bridged_conf	*parent_conf;
extern struct child_list	 children;

struct child	*role_child(enum proc_id);
struct child	*parent_storage(void);
void		 storage_session(struct child *);
void		 parent_monitor(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 parent_event(const char *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 peers_monitors(uint32_t);
void		 worker_monitored(struct child *);
int		 peers_monitored(void);
void		 session_event(struct child *, const char *);

/* auth.c */
int		 auth_load(const char *);
void		 auth_check(struct child *, const char *);
int		 auth_storage(struct imsg *);
void		 auth_storage_lost(void);

/* metrics.c: the parent's counters, in Prometheus text format */
struct metrics_gauges {
	uint64_t	 sessions;
	uint64_t	 idle_workers;
	uint64_t	 jobs_queued;		/* 0 while bridged has no jobs */
	uint64_t	 jobs_running;
};

void		 metrics_connection(int);
void		 metrics_auth_failure(void);
int		 metrics_generation(struct imsg *);
void		 metrics_write(const struct metrics_gauges *,
		    void (*)(void *, const char *), void *);

/* listen.c */
typedef int	(*listen_cb)(struct listen_conf *, int,
		    struct sockaddr_storage *);
int		 listen_open(struct bridged_conf *, listen_cb);
void		 listen_keep(struct bridged_conf *, struct bridged_conf *);
void		 listen_update(int);
int		 control_socket_open(const char *, uid_t, gid_t);

/* control.c */
void		 control_main(void);

/* export.c */
struct db_conv;

struct export_state {
	int		 markdown;
	int		 section;	/* 0, 1 messages, 2 summaries */
	uint64_t	 count;		/* items in this section */
};

void		 export_init(void);
char		*export_begin(struct export_state *, const char *,
		    const struct db_conv *);
char		*export_item(struct export_state *, uint64_t, uint64_t,
		    enum msg_role, const char *, size_t);
char		*export_end(struct export_state *);
#define IMPORT_MAX		(8 * 1024 * 1024)	/* bytes of an IMPORT */
#define IMPORT_ITEMS_MAX	100000
const char	*import_build(const char *, size_t, struct ibuf *, char *,
		    size_t);

/* db.c */
#define DB_VERSION		9		/* PRAGMA user_version */
/* A stored text fits in one IMSG_STORAGE_ITEM. */
#define DB_TEXT_MAX		(IMSG_MAXSIZE - 64)
#define DB_CUT_ITEMS		1		/* left out for the count */
#define DB_CUT_BYTES		2		/* left out for the size */
#define DB_SEARCH_MAX		1024		/* bytes of SEARCH words */
#define DB_SEARCH_MAX_S		"1024"
#define CONV_NAME_MAX		64		/* characters of a name */
#define CONV_SYSTEM_MAX		16384		/* a system prompt, NUL too */
/* The fields of a conversation that IMSG_WORKER_CONV_SET sets. */
#define CONV_MODEL		0x01
#define CONV_SYSTEM		0x02
#define CONV_ROLE		0x04

struct db;
struct db_item {
	int64_t		 id;
	int64_t		 time;		/* epoch s */
	enum msg_role	 role;
	const char	*text;		/* valid during the callback */
	size_t		 len;
};

/* A conversation; "" stands for a field not set. */
struct db_conv {
	int64_t		 id;
	char		 name[CONV_NAME_MAX + 1];
	char		 model[MODEL_MAX_LEN];
	char		 role[NAME_MAX_LEN];
	char		 system[CONV_SYSTEM_MAX];
	int64_t		 created;	/* epoch s */
	int64_t		 last_used;	/* epoch s */
	int64_t		 messages;
};

/* A message SEARCH found: text is a snippet around the match. */
struct db_match {
	int64_t		 conv;
	int64_t		 id;
	int64_t		 time;
	enum msg_role	 role;
	const char	*text;		/* valid during the callback */
	size_t		 len;
};

struct db	*db_open(const char *, enum sync_mode);
struct db	*db_connect(const char *, enum sync_mode, const char *);
const char	*db_kind(struct db *);
int		 db_server(const char *);
int		 db_shared(struct db *);
int		 db_peer(struct db *, int *, int *);
void		 db_close(struct db *);
int		 db_sync(struct db *, enum sync_mode);
int		 db_chown(struct db *, uid_t, gid_t);
int		 db_begin(struct db *);
void		 db_take_turns(struct db *);
void		 db_background(struct db *);
uint64_t	 db_checkpoints(struct db *);
int		 db_commit(struct db *);
void		 db_rollback(struct db *);
int		 db_intx(struct db *);
int		 db_store(struct db *, const char *, int64_t, uint64_t,
		    enum msg_role, const char *, uint64_t, const char *, size_t,
		    int64_t, int64_t *);
int		 db_summary(struct db *, const char *, int64_t, uint64_t,
		    const char *, size_t, int64_t, int, int64_t *);
int		 db_history(struct db *, const char *, int64_t,
		    enum history_kind, uint32_t, size_t,
		    int (*)(const struct db_item *, void *), void *,
		    uint64_t *, int *);
int		 db_context(struct db *, const char *, int64_t, uint32_t,
		    size_t, int (*)(const struct db_item *, void *), void *,
		    uint64_t *, int *);
int		 db_count(struct db *, const char *, uint64_t *);
#define DB_NONE			0
#define DB_FOUND		1
#define DB_AMBIGUOUS		2
#define DB_EXISTS		3
int		 db_resolve(struct db *, const char *, char *, size_t);
int		 db_export(struct db *, const char *, int64_t, int, int64_t *,
		    uint32_t, size_t, int (*)(const struct db_item *, void *),
		    void *);
int		 db_purge(struct db *, const char *, uint64_t *);
int		 db_conv_owned(struct db *, const char *, int64_t);
int		 db_conv_touch(struct db *, int64_t, int64_t);
int		 db_conv_last(struct db *, const char *, struct db_conv *);
int		 db_conv_find(struct db *, const char *, const char *,
		    struct db_conv *);
int		 db_conv_new(struct db *, const char *, const char *,
		    const char *, const char *, const char *, int64_t,
		    struct db_conv *);
int		 db_conv_list(struct db *, const char *, uint32_t,
		    int (*)(const struct db_conv *, void *), void *,
		    uint64_t *);
int		 db_conv_set(struct db *, const char *, int64_t, int,
		    const char *, const char *, const char *, int64_t);
int		 db_conv_delete(struct db *, const char *, int64_t,
		    uint64_t *);
int		 db_search(struct db *, const char *, const char *, uint32_t,
		    int (*)(const struct db_match *, void *), void *,
		    uint64_t *);
void		*db_handle(struct db *);
const struct db_backend *db_backend(struct db *);

/* db_text.c: what every backend agrees on about stored text */
int		 db_text_valid(const char *, size_t);
const char	*db_role_name(enum msg_role);
int		 db_role_parse(const char *, enum msg_role *);
char		*db_search_words(const char *);

/* db.c: tokens, usage, events (db_sqlite_*.c, db_pg_*.c do them) */
struct token_info {
	int64_t		 id;
	char		 label[LABEL_MAX_LEN];
	int64_t		 created;		/* epoch s; 0 none */
	int64_t		 expires;
	int64_t		 last_used;
	int64_t		 revoked;
	char		 models[TOKEN_MODELS_MAX];	/* "" all */
	struct limits	 limits;		/* LIMIT_INHERIT: global */
};

int		 db_token_add(struct db *, const char *,
		    const struct token_info *, int64_t, int64_t *);
int		 db_token_get(struct db *, const char *, struct token_info *);
int		 db_token_check(struct db *, const char *, int64_t,
		    struct token_info *);
int		 db_token_list(struct db *,
		    int (*)(const struct token_info *, void *), void *);
int		 db_token_revoke(struct db *, int64_t, int64_t,
		    char [IDENTITY_LEN + 1]);

/* limits.c */
#define LIMITS_DAY_LEN		11		/* YYYY-MM-DD */
#define LIMITS_TEXT_MAX		160

struct limit_use {
	uint64_t	 requests;	/* in the last minute */
	int64_t		 oldest_ms;	/* the first of them */
	uint64_t	 tokens;	/* today */
	uint64_t	 jobs;		/* running now */
};

void		 limits_day(int64_t, char [LIMITS_DAY_LEN]);
const char	*limits_check(const struct limits *, const struct limit_use *,
		    int64_t, uint64_t *, uint64_t *);
void		 limits_text(char *, size_t, const char *, uint64_t,
		    uint64_t);
int		 limits_model_ok(const char *, const char *);
int		 limits_word_valid(const char *, size_t, const char *);

/* db.c: usage */
struct usage_row {
	const char	*identity;
	const char	*day;
	const char	*model;
	int64_t		 prompts;
	int64_t		 tokens_in;
	int64_t		 tokens_out;
};

struct identity_row {
	const char	*identity;
	const char	*how;
	int64_t		 first_seen;
	int64_t		 last_seen;
	int64_t		 conversations;
	int64_t		 messages;
	int64_t		 tokens_today;
};

int		 db_limits(struct db *, const char *, const struct limits *,
		    struct limits *, char *, size_t);
int		 db_usage_now(struct db *, const char *, int64_t, uint64_t,
		    struct limit_use *);
int		 db_usage_request(struct db *, const char *, const char *,
		    int64_t, int);
int		 db_usage_tokens(struct db *, const char *, const char *,
		    int64_t, uint64_t, uint64_t);
int		 db_usage_list(struct db *, const char *, const char *,
		    int (*)(const struct usage_row *, void *), void *);
int		 db_identity_seen(struct db *, const char *, const char *,
		    int64_t);
int		 db_identities(struct db *, int64_t,
		    int (*)(const struct identity_row *, void *), void *);

/* db.c: events */
struct event_row {
	int64_t		 id;
	int64_t		 time;
	char		 identity[IDENTITY_LEN + 1];	/* "" none */
	char		*text;
};

int		 db_event_add(struct db *, int64_t, const char *,
		    const char *, int);
int		 db_events(struct db *, const char *, uint32_t,
		    int (*)(const struct event_row *, void *), void *);
int		 db_revoked_since(struct db *, int64_t,
		    int (*)(const char *, void *), void *);

/* jobs_db.c: the jobs interface */
#define JOB_HEAD_MAX		(40 * 4 + 1)	/* 40 characters */
#define JOB_TEXT_MAX		256		/* an error's text */

struct jdb;
struct jdb_job {
	int64_t		 id;
	char		 client[IDENTITY_LEN + 1];
	int		 kind;		/* enum job_kind */
	int		 state;		/* enum job_state */
	int		 turns;
	char		 model[MODEL_MAX_LEN];
	char		 model_b[MODEL_MAX_LEN];
	int64_t		 created;	/* epoch s */
	int64_t		 tin;
	int64_t		 tout;
	int64_t		 ms;
	char		 finish[40];
	char		 code[32];	/* of a failure */
	char		 text[JOB_TEXT_MAX];
	char		 head[JOB_HEAD_MAX];	/* the prompt's beginning */
	int64_t		 conv;		/* where a SUBMIT's answer goes */
	int64_t		 attempts;	/* runs started: a new one restarts */
};

struct jdb	*jdb_open(struct db *);
void		 jdb_close(struct jdb *);
int		 jdb_submit(struct jdb *, const char *, int64_t, uint64_t, int,
		    int, const char *, const char *, const char *, size_t,
		    int64_t, int64_t *);
int		 jdb_get(struct jdb *, int64_t, struct jdb_job *);
int64_t		 jdb_waiting(struct jdb *, const char *);
int		 jdb_dialogue_conv(struct jdb *, int64_t, int64_t);
int		 jdb_demote(struct jdb *, int64_t);
int		 jdb_purge(struct jdb *, const char *, uint64_t *);
int		 jdb_list(struct jdb *, const char *, uint32_t,
		    int (*)(const struct jdb_job *, void *), void *,
		    uint64_t *);
int		 jdb_pending(struct jdb *,
		    int (*)(int64_t, const char *, void *), void *);
int		 jdb_claim(struct jdb *,
		    int (*)(int64_t, const char *, void *), void *);
int		 jdb_renew(struct jdb *, int (*)(int64_t, void *), void *);
int		 jdb_cancel(struct jdb *, int64_t, int64_t);
int		 jdb_release(struct jdb *);
#define JOB_LEASE		10	/* s a job's lease lasts */
int		 jdb_start(struct jdb *, int64_t, int64_t);
int		 jdb_chunk(struct jdb *, int64_t, int, int, const char *,
		    size_t);
int		 jdb_finish(struct jdb *, const struct jdb_job *, int64_t);
int		 jdb_chunks(struct jdb *, int64_t, uint64_t,
		    int (*)(int, const char *, size_t, void *), void *);
int		 jdb_turn_text(struct jdb *, int64_t, int, struct ibuf *);
int		 jdb_context(struct jdb *, int64_t, uint32_t, size_t,
		    int (*)(int, const char *, size_t, void *), void *);
int		 jdb_opening(struct jdb *, int64_t,
		    int (*)(int, const char *, size_t, void *), void *);

/*
 * A storage backend: what db.c and jobs_db.c call. The first argument
 * of each is the backend's own handle from open (jobs: from jobs_open).
 */
struct db_msg_ops {
	int	(*store)(void *, const char *, int64_t, uint64_t,
		    enum msg_role, const char *, uint64_t, const char *,
		    size_t, int64_t, int64_t *);
	int	(*summary)(void *, const char *, int64_t, uint64_t,
		    const char *, size_t, int64_t, int, int64_t *);
	int	(*history)(void *, int64_t, enum history_kind, uint32_t,
		    size_t, int (*)(const struct db_item *, void *), void *,
		    uint64_t *, int *);
	int	(*context)(void *, int64_t, uint32_t, size_t,
		    int (*)(const struct db_item *, void *), void *,
		    uint64_t *, int *);
	int	(*count)(void *, const char *, uint64_t *);
	int	(*client_min)(void *, int, const char *, const char *, char *,
		    size_t);
	int	(*export)(void *, const char *, int64_t, int, int64_t *,
		    uint32_t, size_t, int (*)(const struct db_item *, void *),
		    void *);
	int	(*purge)(void *, const char *, uint64_t *);
	int	(*conv_owned)(void *, const char *, int64_t);
	int	(*conv_touch)(void *, int64_t, int64_t);
	int	(*conv_last)(void *, const char *, struct db_conv *);
	int	(*conv_by_id)(void *, const char *, int64_t, struct db_conv *);
	int	(*conv_by_name)(void *, const char *, const char *,
		    struct db_conv *);
	int	(*conv_new)(void *, const char *, const char *, const char *,
		    const char *, const char *, int64_t, int64_t *);
	int	(*conv_list)(void *, const char *, uint32_t,
		    int (*)(const struct db_conv *, void *), void *,
		    uint64_t *);
	int	(*conv_set)(void *, const char *, int64_t, int, const char *,
		    const char *, const char *, int64_t);
	int	(*conv_delete)(void *, int64_t, uint64_t *);
	int	(*search)(void *, const char *, const char *, uint32_t,
		    int (*)(const struct db_match *, void *), void *,
		    uint64_t *);
};

struct db_acct_ops {
	int	(*token_add)(void *, const char *, const struct token_info *,
		    int64_t, int64_t *);
	int	(*token_get)(void *, const char *, struct token_info *);
	int	(*token_used)(void *, int64_t, int64_t);
	int	(*token_list)(void *,
		    int (*)(const struct token_info *, void *), void *);
	int	(*token_revoke)(void *, int64_t, int64_t,
		    char [IDENTITY_LEN + 1]);
	int	(*usage_now)(void *, const char *, int64_t, uint64_t,
		    struct limit_use *);
	int	(*usage_request)(void *, const char *, const char *, int64_t,
		    int);
	int	(*usage_tokens)(void *, const char *, const char *, int64_t,
		    uint64_t, uint64_t);
	int	(*usage_list)(void *, const char *, const char *,
		    int (*)(const struct usage_row *, void *), void *);
	int	(*identity_seen)(void *, const char *, const char *, int64_t);
	int	(*identities)(void *, int64_t,
		    int (*)(const struct identity_row *, void *), void *);
	int	(*event_add)(void *, int64_t, const char *, const char *,
		    int);
	int	(*events)(void *, const char *, uint32_t,
		    int (*)(const struct event_row *, void *), void *);
	int	(*revoked_since)(void *, int64_t,
		    int (*)(const char *, void *), void *);
};

struct db_job_ops {
	void	*(*open)(void *);
	void	 (*close)(void *);
	int	 (*submit)(void *, const char *, int64_t, uint64_t, int, int,
		    const char *, const char *, const char *, size_t, int64_t,
		    int64_t *);
	int	 (*get)(void *, int64_t, struct jdb_job *);
	int64_t	 (*waiting)(void *, const char *);
	int	 (*set_conv)(void *, int64_t, int64_t);
	int	 (*demote)(void *, int64_t);
	int	 (*purge)(void *, const char *, uint64_t *);
	int	 (*list)(void *, const char *, uint32_t,
		    int (*)(const struct jdb_job *, void *), void *,
		    uint64_t *);
	int	 (*pending)(void *, int (*)(int64_t, const char *, void *),
		    void *);
	int	 (*claim)(void *, int (*)(int64_t, const char *, void *),
		    void *);
	int	 (*renew)(void *, int (*)(int64_t, void *), void *);
	int	 (*cancel)(void *, int64_t, int64_t);
	int	 (*release)(void *);
	int	 (*start)(void *, int64_t, int64_t);
	int	 (*chunk)(void *, int64_t, int, int, const char *, size_t);
	int	 (*finish)(void *, const struct jdb_job *, int64_t);
	int	 (*chunks)(void *, int64_t, uint64_t,
		    int (*)(int, const char *, size_t, void *), void *);
	int	 (*turn_text)(void *, int64_t, int, struct ibuf *);
	int	 (*context)(void *, int64_t, uint32_t, size_t,
		    int (*)(int, const char *, size_t, void *), void *);
	int	 (*prompt)(void *, int64_t,
		    int (*)(int, const char *, size_t, void *), void *);
};

struct db_base_ops {
	const char	 *name;
	int		  shared;	/* several instances use one */
	int		(*claims)(const char *);
	void		*(*open)(const char *, enum sync_mode, const char *);
	void		 (*close)(void *);
	int		 (*sync)(void *, enum sync_mode);
	int		 (*chown)(void *, uid_t, gid_t);
	int		 (*begin)(void *);
	int		 (*commit)(void *);
	void		 (*rollback)(void *);
	int		 (*intx)(void *);
	int		 (*peer)(void *, int *, int *);
	void		 (*turns)(void *);	/* NULL: one instance only */
	void		 (*background)(void *);	/* NULL: nothing beside */
	uint64_t	 (*checkpoints)(void *);	/* NULL: none of its own */
};

/* A table as db_copy.c moves it: columns as SQL lists them. */
#define DB_ROW_MAX	24		/* columns */
struct db_table {
	int		 index;		/* in db_copy.c's list */
	const char	*name;
	const char	*columns;
	int		 ncols;
	int		 serial;	/* its id comes from a sequence */
};

/* A row: each column's text, NULL for SQL NULL. */
struct db_row {
	int		 n;
	const char	*v[DB_ROW_MAX];
};

/* What moving a database takes (NULL: this backend cannot). */
struct db_copy_ops {
	int	(*dump)(void *, const struct db_table *,
		    int (*)(const struct db_row *, void *), void *);
	int	(*load)(void *, const struct db_table *,
		    const struct db_row *);
	int	(*count)(void *, const struct db_table *, int64_t *);
	int	(*loaded)(void *);
};

struct db_backend {
	const struct db_base_ops	*base;
	const struct db_msg_ops		*msg;
	const struct db_acct_ops	*acct;
	const struct db_job_ops		*jobs;
	const struct db_copy_ops	*copy;
};

/* db_copy.c */
int		 db_copy(struct db *, struct db *);

/* db_sqlite.c and its families */
struct sqdb;
struct sqlite3;
struct sqlite3_stmt;
extern const struct db_base_ops	 sqlite_base_ops;
extern const struct db_msg_ops	 sqlite_msg_ops;
extern const struct db_acct_ops	 sqlite_acct_ops;
extern const struct db_job_ops	 sqlite_job_ops;
extern const struct db_copy_ops	 sqlite_copy_ops;
struct sqlite3	*sq_sqlite(struct sqdb *);
const char	*sq_path(struct sqdb *);
struct sqlite3_stmt *sq_stmt(struct sqdb *, const char *);
int		 sq_run(struct sqdb *, struct sqlite3_stmt *);
void		 sq_fail(struct sqdb *, struct sqlite3_stmt *);
int		 sq_rows_end(struct sqdb *, struct sqlite3_stmt *, int, int);
int64_t		 sq_changes(struct sqdb *);
int64_t		 sq_last_rowid(struct sqdb *);
/* db_sqlite_vfs.c */
const char	*sq_vfs(void);
uint64_t	 sq_vfs_frames(void);
uint64_t	 sq_vfs_writes(void);
/* db_sqlite_ckpt.c */
struct sq_ckpt;
struct sq_ckpt	*sq_ckpt_start(struct sqlite3 *, const char *);
uint64_t	 sq_ckpt_count(struct sq_ckpt *);
void		 sq_ckpt_stop(struct sqlite3 *, struct sq_ckpt *);
/* db_sqlite_tokens.c, db_sqlite_events.c, for db_sqlite_usage.c's table */
int		 sq_token_add(void *, const char *, const struct token_info *,
		    int64_t, int64_t *);
int		 sq_token_get(void *, const char *, struct token_info *);
int		 sq_token_used(void *, int64_t, int64_t);
int		 sq_token_list(void *,
		    int (*)(const struct token_info *, void *), void *);
int		 sq_token_revoke(void *, int64_t, int64_t,
		    char [IDENTITY_LEN + 1]);
int		 sq_revoked_since(void *, int64_t,
		    int (*)(const char *, void *), void *);
int		 sq_event_add(void *, int64_t, const char *, const char *,
		    int);
int		 sq_events(void *, const char *, uint32_t,
		    int (*)(const struct event_row *, void *), void *);

/* db_pg.c and its families */
#define PQ_ARGS_MAX	24
struct pgdb;
struct pg_result;
struct pq_args {
	int		 n;
	int		 overflow;
	const char	*v[PQ_ARGS_MAX];
	int		 len[PQ_ARGS_MAX];
	int		 fmt[PQ_ARGS_MAX];
	char		 num[PQ_ARGS_MAX][24];
};
extern const struct db_base_ops	 pg_base_ops;
extern const struct db_msg_ops	 pg_msg_ops;
extern const struct db_acct_ops	 pg_acct_ops;
extern const struct db_job_ops	 pg_job_ops;
extern const struct db_copy_ops	 pg_copy_ops;
const char	*pq_instance(struct pgdb *);
const char	*pq_label(struct pgdb *);
void		 pa_init(struct pq_args *);
void		 pa_data(struct pq_args *, const char *, size_t);
void		 pa_text(struct pq_args *, const char *);
void		 pa_null(struct pq_args *);
void		 pa_opt(struct pq_args *, const char *);
void		 pa_int(struct pq_args *, int64_t);
struct pg_result *pq_query(struct pgdb *, const char *,
		    const struct pq_args *);
int64_t		 pq_cmd(struct pgdb *, const char *, const struct pq_args *);
void		 pq_clear(struct pg_result *);
int		 pq_rows(struct pg_result *);
int		 pq_null(struct pg_result *, int, int);
int64_t		 pq_int(struct pg_result *, int, int);
const char	*pq_text(struct pg_result *, int, int);
size_t		 pq_len(struct pg_result *, int, int);

/* storage.c, storage_*.c: the storage process */
#define STORAGE_HISTORY_MAX	10000		/* items per HISTORY */
#define STORAGE_CONTEXT_MAX	100000		/* items per CONTEXT */
#define STORAGE_SEARCH_MAX	20		/* matches per SEARCH */
/* A peer's channel stops being read while this much waits for it. */
#define STORAGE_QUEUE_HIGH	(4 * 1024 * 1024)
#define STORAGE_QUEUE_POLL	20		/* ms, to look again */

/* An export to control in progress: messages (section 0), then
   summaries. */
struct stor_export {
	TAILQ_ENTRY(stor_export) entry;
	struct wchan		*w;
	uint32_t		 id;
	char			 identity[IDENTITY_LEN + 1];
	int			 section;
	int64_t			 after;
	uint64_t		 count;
};
TAILQ_HEAD(stor_export_list, stor_export);

/* A peer's channel: a worker's, control's (wid 0, control set) or the
   provider's for jobs (wid 0, jobs set). */
struct wchan {
	TAILQ_ENTRY(wchan)	 entry;
	struct channel		 ch;
	uint32_t		 wid;
	int			 control;
	int			 jobs;
	char			 identity[IDENTITY_LEN + 1];
	int			 full;	/* paused: answers pile up */
	int			 refs;	/* requests naming it */
	int			 waiting; /* writes of the round unanswered */
	int			 gone;
	struct stor_export_list	 exports;
};
TAILQ_HEAD(wchan_list, wchan);

/* A write of the round, answered after the COMMIT (storage_round.c). */
struct wreq {
	TAILQ_ENTRY(wreq)	 entry;
	struct wchan		*w;
	uint32_t		 type;
	uint32_t		 id;	/* the peer's request id */
	/* How it is answered when it was committed; NULL: STORED rowid. */
	void			(*answer)(struct wreq *);
	const char		*error;	/* answer ERROR with this */
	const char		*refused; /* or REFUSED with this code */
	char			 why[128];	/* and this text */
	int			 answered; /* before the COMMIT */
	int64_t			 rowid;	/* PURGE: rows deleted */
	uint64_t		 count;	/* CONV_DELETE: messages */
	struct db_conv		*conv;	/* CONV_NEW: answered with it */
	char			 identity[IDENTITY_LEN + 1]; /* PURGE */
	int			 dup;	/* SUBMIT: resent, queued before */
	int			 elsewhere; /* KILL: asked of its instance */
	int64_t			 job;	/* a job's end: followers hear */
	char			 errbuf[192];	/* what error points to */
	const char		*code;	/* ADMIT: "" admitted */
	char			 text[LIMITS_TEXT_MAX];
};
TAILQ_HEAD(wreq_list, wreq);

/* A peer's message as a handler gets it: read past the request id. */
struct ask {
	struct wchan		*w;
	struct ireader		 ir;
	uint32_t		 type;
	uint32_t		 id;	/* the peer's request id; 0: provider */
};

/* Where ITEM, CONV, MATCH or JOB_LINE answers of a read go. */
struct item_arg {
	struct wchan		*w;
	uint32_t		 id;
};

/* Where LINE answers of a read go, counted. */
struct line_arg {
	struct wchan		*w;
	uint32_t		 id;
	uint64_t		 n;
};

/* A client following a job's output (RESULT). */
struct follower {
	TAILQ_ENTRY(follower)	 entry;
	struct wchan		*w;
	uint32_t		 id;	/* the RESULT's request id */
	int64_t			 job;
	uint64_t		 sent;	/* chunks of the run it has had */
	int64_t			 run;	/* that run's number (attempts) */
	time_t			 live;	/* when it last had one as it came */
	int			 polled; /* in the poll under way */
};
TAILQ_HEAD(follower_list, follower);

/* The storage process's state (storage.c's). */
struct storage_state {
	struct db		*db;
	struct bridged_conf	*conf;
	char			 database[PATH_MAX];
	enum sync_mode		 sync;
	int			 sync_pending;
	struct wchan_list	 chans;
	struct wchan_list	 dead;
	struct wchan		*ctl;		/* control's channel */
	struct wchan		*jobs;		/* the provider's, for jobs */
	struct jdb		*jdb;
	struct follower_list	 followers;
	struct wreq_list	 round;
	int			 writes;	/* in the open transaction */
	int			 failed;	/* the transaction is lost */
	int			 lost;		/* and so was the last one */
	struct ev_timer		 round_end;
	struct ev_timer		 queue_poll;
	struct ev_timer		 cluster_poll;
	int64_t			 revoked_since;	/* looked for from */
};
extern struct storage_state stor;

/* A handler of a peer's message: NULL, or why it is malformed. */
typedef const char	*(*storage_fn)(struct ask *);

void		 storage_main(void);
/* storage_chan.c */
struct wchan	*wchan_find(uint32_t);
struct wchan	*wchan_new(int, uint32_t, const char *, int, int,
		    void (*)(struct channel *, struct imsg *));
void		 wchan_update(struct wchan *);
void		 wchan_drop(struct wchan *);
void		 wchan_reap(void);
void		 wchan_reject(struct wchan *, struct imsg *, const char *);
void		 follow_drop(struct wchan *, uint32_t);
void		 answer_error(struct wchan *, uint32_t, const char *);
void		 answer_refused(struct wchan *, uint32_t, const char *,
		    const char *);
int		 answer_conv(struct wchan *, uint32_t, const struct db_conv *);
void		 answer_identity(struct wchan *, uint32_t, const char *);
void		 answer_u64(struct wchan *, uint32_t, uint32_t, uint64_t);
void		 answer_end(struct wchan *, uint32_t, int, uint64_t);
int		 answer_line(struct line_arg *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
int		 answer_item(const struct db_item *, void *);
/* storage_round.c */
struct wreq	*req_new(struct ask *);
struct wreq	*req_write(struct ask *);
void		 req_answer_early(struct wreq *);
void		 req_refuse(struct wreq *, const char *, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
int		 group_join(void);
void		 group_fail_if_lost(void);
void		 round_settle(void);
void		 storage_round_end(void *);
void		 event_store(int64_t, const char *, const char *);
void		 event_log(const char *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
size_t		 read_bound(void);
/* storage_conv.c */
int		 conv_ref_ok(const char *);
int		 conv_field_ok(const char *, size_t);
void		 answer_req_conv(struct wreq *);
const char	*worker_store(struct ask *);
const char	*worker_summary(struct ask *);
const char	*worker_read(struct ask *);
const char	*worker_context(struct ask *);
const char	*worker_conv_new(struct ask *);
const char	*worker_conv_list(struct ask *);
const char	*worker_conv_set(struct ask *);
const char	*worker_conv_delete(struct ask *);
const char	*worker_search(struct ask *);
/* storage_export.c */
void		 export_pump(struct wchan *);
const char	*worker_export(struct ask *);
const char	*worker_import(struct ask *);
const char	*control_history(struct ask *);
/* storage_jobs.c */
void		 job_event(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 jobs_tell(uint32_t, int64_t, const char *);
int		 job_model_valid(const char *, int);
int		 answer_chunk(struct wchan *, uint32_t, int, const char *,
		    size_t);
void		 followers_end(const struct jdb_job *);
void		 followers_restart(struct jdb_job *);
void		 followers_run(const struct jdb_job *);
void		 followers_poll(time_t);
int		 job_load(int64_t, struct jdb_job *);
void		 job_flushed(struct wreq *);
int		 job_cancelled_elsewhere(int64_t, void *);
const char	*worker_submit(struct ask *);
const char	*worker_job_read(struct ask *);
const char	*job_kill(struct ask *);
/* storage_run.c */
const char	*provider_job_list(struct ask *);
const char	*provider_job_start(struct ask *);
const char	*provider_job_chunk(struct ask *);
const char	*provider_job_turn(struct ask *);
const char	*provider_job_end(struct ask *);
/* storage_acct.c */
int		 admit(const char *, const char *, const char *,
		    const char **, char *, size_t);
const char	*worker_admit(struct ask *);
const char	*worker_usage(struct ask *);
const char	*worker_usage_get(struct ask *);
const char	*control_token_add(struct ask *);
const char	*control_token_revoke(struct ask *);
const char	*control_table(struct ask *);

/* sse.c */
#define SSE_FIELDMAX		16	/* a data line's field over max */
#define SSE_ETOOBIG		1	/* an event larger than max */
#define SSE_ENOMEM		2
#define SSE_ESTOPPED		3	/* the callback returned non-zero */

/* cb(arg, event field, data, data length) per event; non-zero stops. */
struct sse {
	int		(*cb)(void *, const char *, const char *, size_t);
	void		*arg;
	size_t		 max;		/* largest event accepted */
	char		*line;		/* the line being read */
	size_t		 linelen;
	size_t		 linecap;
	char		*data;		/* data of the event being read */
	size_t		 datalen;
	size_t		 datacap;
	char		 event[64];	/* its event field */
	int		 has_data;
	int		 skiplf;	/* a CR ended the last line */
	int		 bomcheck;	/* bytes of a leading BOM seen */
	int		 error;		/* SSE_E*, 0 if none */
	uint64_t	 nevents;	/* dispatched so far */
};

void		 sse_init(struct sse *, size_t,
		    int (*)(void *, const char *, const char *, size_t),
		    void *);
void		 sse_clear(struct sse *);
int		 sse_feed(struct sse *, const void *, size_t);
int		 sse_pending(const struct sse *);

/*
 * The provider's seam: one struct api per upstream API, one file each
 * (gemini.c, openai.c, anthropic.c), listed in api_table (provider.c).
 * An API file turns a neutral request (turns, system prompt, settings)
 * into a URL, headers and a body, parses its stream event by event,
 * its model list page by page and its error bodies, and says which
 * errors are worth a retry.  The transport (xfer.c: libcurl multi,
 * retries, timeouts) knows no API: it calls the api's parsers and
 * reports to its consumer through struct xfer_ops.  Adding an API is
 * one new file and one entry in api_table.
 *
 * Running a generation inside the provider process (what a worker's
 * GEN_BEGIN/PART/END does, and what a background job does):
 *
 *	struct gen_request rq = { .model = "name/model" (or a bare
 *	    name), .system = "...", .turns = t, .nturns = n,
 *	    .set = { .temperature = -1, .max_tokens = 0 } };
 *	struct gen_sink sk = { on_text, on_queued, on_done, on_error,
 *	    arg };
 *	struct gen *g = gen_start(&rq, &sk, code, sizeof(code), text,
 *	    sizeof(text));
 *
 * gen_start copies what it needs from rq (rq may go at once) and
 * returns NULL with code ("no-model", "bad-argument", "upstream"...)
 * and text set when the request cannot start.  Otherwise, later and
 * never from inside gen_start, text() is called with each piece of
 * the answer as it streams (UTF-8, no NUL), then exactly one of
 * done() or error(); g is freed right after that last call.
 * queued() (may be NULL) says how many bytes the consumer has yet to
 * pass on: over a few MiB the stream pauses until it drains.  gen_cancel(g) stops it at any time before the last call,
 * with no callback.  The provider restarts (a reload) only when no
 * generation runs.
 */
#define API_MSG_MAX		512	/* error text kept, one line */
#define API_FINISH_MAX		40
#define API_RETRY		0x01	/* classify: worth trying again */
#define API_BUSY		0x02	/* rate limit or overload: a
					   fallback may answer instead */
#define GEN_TEMP_NONE		UINT32_MAX	/* GEN_BEGIN: no temperature */

/* One turn of the conversation sent upstream. */
struct api_turn {
	int		 role;		/* enum msg_role: MODEL is the
					   assistant, the rest the user */
	const char	*text;
	size_t		 len;
};

/* Generation settings; what is unset is the API's (or block's) default. */
struct gen_settings {
	double		 temperature;	/* < 0: unset */
	uint32_t	 max_tokens;	/* 0: unset */
};

/* What an API file builds a request body from. */
struct api_request {
	const char		*model;		/* the upstream's own name */
	const char		*system;	/* NULL or "" for none */
	const struct api_turn	*turns;
	size_t			 nturns;
	struct gen_settings	 set;
	uint32_t		 max_tokens;	/* the block's default, or 0 */
};

/* An error: an HTTP status with its body, or an error event. */
struct api_error {
	int		 code;		/* HTTP status, else the error's own */
	char		 type[64];	/* status or type word */
	char		 message[API_MSG_MAX];	/* one printable line */
	double		 retry_delay;	/* s, from the body; -1 if none */
	int		 per_day;	/* a daily quota is exhausted */
	int		 key_invalid;
	int		 overloaded;	/* the API says it is overloaded */
};

/* What one stream event says; API_EVENT_* of api->event. */
struct api_event {
	char		*text;		/* answer text (thoughts left out) */
	size_t		 textlen;
	char		 finish[API_FINISH_MAX];  /* STOP, MAX_TOKENS, ... */
	char		 stop_error[160];  /* the finish is a failure: why */
	char		 refusal[160];	/* no answer will come: why */
	int64_t		 prompt;	/* usage, -1 if not sent */
	int64_t		 answer;
	int		 end;		/* the API's own end of stream */
	int		 has_error;
	struct api_error err;
};

/* A chat model of a list. */
struct api_model {
	char		 name[MODEL_MAX_LEN];
	uint64_t	 input_limit;	/* tokens, 0 if unknown */
	uint64_t	 output_limit;
};

/* One page of a model list, filtered to chat models. */
struct api_page {
	struct api_model *models;
	size_t		 nmodels;
	size_t		 nskipped;	/* unusable or not for chat */
	char		*next;		/* where the next page starts */
};

struct api {
	const char	*name;		/* the configuration's type word */
	enum provider_type type;
	int		 key_required;
	/* the model names it can be asked for */
	int		(*valid_model)(const char *);
	/* URLs to free(3) */
	char		*(*models_url)(const char *, const char *);
	char		*(*gen_url)(const char *, const char *);
	/* "Name: value" header lines for a key (NULL: none) */
	int		(*headers)(const char *, int,
			    int (*)(void *, const char *), void *);
	/* a body to free(3), NULL with errno EINVAL if nothing to send */
	char		*(*request)(const struct api_request *, size_t *);
	int		(*parse_event)(const char *, const char *, size_t,
			    struct api_event *);
	void		(*parse_error)(const char *, size_t, int,
			    struct api_error *);
	int		(*parse_models)(const char *, size_t,
			    struct api_page *);
	/* API_RETRY, API_BUSY; the client's error code in *code */
	unsigned int	(*classify)(const struct api_error *, const char **);
};

/* api tables: gemini.c, openai.c, anthropic.c */
extern const struct api	 api_gemini;
extern const struct api	 api_openai;
extern const struct api	 api_anthropic;

/* jsonw.c: a request body written as JSON text */
struct jsonw {
	char		*buf;
	size_t		 len;
	size_t		 size;
	int		 bad;		/* errno that spoiled the body */
};

void		 jw_init(struct jsonw *, size_t);
void		 jw_raw(struct jsonw *, const char *);
void		 jw_text(struct jsonw *, const char *, size_t);
void		 jw_str(struct jsonw *, const char *, size_t);
void		 jw_u64(struct jsonw *, uint64_t);
void		 jw_real(struct jsonw *, double);
char		*jw_end(struct jsonw *, size_t *);

/* jsonr.c: the common events of a stream read without jansson */
struct jr_span {
	const char	*p;	/* a value's first byte in the text */
	size_t		 len;
};
int		 jr_check(const char *, size_t, struct jr_span *);
int		 jr_type(const struct jr_span *);
unsigned int	 jr_members(const struct jr_span *, const char *const *,
		    struct jr_span *, size_t);
int		 jr_get(const struct jr_span *, const char *, struct jr_span *);
int		 jr_next(const struct jr_span *, size_t *, struct jr_span *);
int		 jr_string(const struct jr_span *,
		    int (*)(void *, const char *, size_t), void *);
size_t		 jr_decode(const struct jr_span *, char *, size_t);
int		 jr_digits_value(const struct jr_span *, uint64_t *);

/* json_arena.c: jansson's memory for one event of a stream */
void		 json_arena_init(void);
void		 json_arena_open(void);
void		 json_arena_close(void);
size_t		 json_arena_peak(void);

/* wire.c: what every API file shares */
struct json_t;

int		 wire_u64(struct json_t *, uint64_t *);
size_t		 wire_messages(struct jsonw *, const struct api_request *,
		    const char *);
size_t		 wire_body_hint(const struct api_request *);
int64_t		 wire_count(struct json_t *, const char *);
int		 wire_key_header(int (*)(void *, const char *), void *,
		    const char *, const char *);
const char	*wire_error_code(int);
void		 wire_copy_word(char *, size_t, struct json_t *);
void		 wire_copy_word_jr(char *, size_t, const struct jr_span *);
int		 wire_count_jr(const struct jr_span *, int64_t *);
int		 wire_add_text_jr(void *, const char *, size_t);
extern int	 wire_json_fast;
typedef int	(*wire_fast_reader)(const char *, const struct jr_span *,
		    struct api_event *);
typedef int	(*wire_tree_reader)(const char *, const char *, size_t,
		    struct api_event *);
int		 wire_parse_event(const char *, const char *, size_t,
		    struct api_event *, wire_fast_reader, wire_tree_reader);
void		 wire_copy_line(char *, size_t, const char *, size_t);
double		 wire_retry_after(const char *, time_t);
const char	*wire_http_reason(int);
void		 wire_event_init(struct api_event *);
void		 wire_event_free(struct api_event *);
void		 wire_error_init(struct api_error *, int);
int		 wire_add_text(struct api_event *, const char *, size_t);
int		 wire_model_name(const char *);
struct json_t	*wire_load(const char *, size_t);
void		 wire_page_free(struct api_page *);
int		 wire_page_add(struct api_page *, const char *, uint64_t,
		    uint64_t);
int		 wire_name_has(const char *, const char *const *, size_t);
char		*wire_url(const char *, const char *, const char *);

/* gemini.c: also for the unit tests */
#define GEM_GENERATE		0x01	/* generateContent */
#define GEM_COUNT		0x02	/* countTokens */
#define GEM_EMBED		0x04	/* embedContent and the like */
#define GEM_BIDI		0x08	/* bidiGenerateContent (live) */
#define GEM_PREDICT		0x10	/* predict, predictLongRunning */
#define GEM_OTHER		0x20

double		 gem_parse_duration(const char *);
int		 gem_valid_model_name(const char *);
int		 gem_model_is_chat(const char *, unsigned int);

/* openai.c, anthropic.c: also for the unit tests */
int		 oai_model_is_chat(const char *);

/* xfer.c */
#define XFER_ERRBUF		256	/* CURL_ERROR_SIZE, or more */

struct curl_slist;
struct xfer;

/* What a transfer reports to whoever started it (arg: xfer_new's). */
struct xfer_ops {
	/* bytes the consumer has yet to pass on; 0 if it never lags */
	size_t		(*queued)(void *);
	/* answer text, as the stream brings it */
	void		(*text)(void *, const char *, size_t);
	/* over: code NULL when complete (a page: x->resp holds it) */
	void		(*done)(void *, struct xfer *, const char *,
			    const char *);
};

/* One HTTP exchange with an upstream API, retried as a whole. */
struct xfer {
	TAILQ_ENTRY(xfer)	 entry;
	const struct api	*api;
	const struct provider_conf *pc;
	const struct xfer_ops	*ops;
	void			*arg;
	int			 stream;	/* a generation, else a GET */
	void			*easy;		/* CURL */
	struct curl_slist	*hdrs;
	char			*url;
	char			*body;		/* request body, for retries */
	size_t			 bodylen;
	struct ibuf		*resp;		/* a page, or an error body */
	struct sse		 sse;
	char			 errbuf[XFER_ERRBUF];
	long			 status;	/* HTTP status, 0 before */
	double			 retry_after;	/* s, Retry-After; -1 none */
	int			 attempt;	/* retries made */
	uint64_t		 started;	/* ms */
	uint64_t		 deadline;	/* ms */
	int			 active;	/* in the multi handle */
	int			 paused;
	struct ev_timer		 retry;
	/* what went wrong, decided in a callback, reported when done */
	const char		*fail_code;
	char			 fail_text[256];
	struct api_error	 err;		/* an error event */
	int			 err_set;
	int			 busy;		/* it failed on API_BUSY */
	/* a generation */
	uint64_t		 sent;		/* bytes of text passed on */
	int			 ended;		/* the API's end mark came */
	char			 finish[API_FINISH_MAX];
	char			 stop_error[160];
	int64_t			 prompt;
	int64_t			 answer;
};
TAILQ_HEAD(xfer_list, xfer);

void		 xfer_init(void (*)(void));
struct xfer	*xfer_new(const struct api *, const struct provider_conf *,
		    const char *, const char *, const struct xfer_ops *,
		    void *);
void		 xfer_free(struct xfer *);
int		 xfer_start(struct xfer *);
int		 xfer_restart(struct xfer *, const char *);

/* upstream.c: the providers, their keys, model lists and generations */
struct gen;

struct gen_request {
	const char		*model;		/* "name/model" or bare */
	const char		*system;	/* NULL or "" for none */
	const struct api_turn	*turns;
	size_t			 nturns;
	struct gen_settings	 set;
};

struct gen_result {
	const char		*model;		/* the model that answered,
						   as clients name it */
	uint64_t		 prompt;	/* tokens */
	uint64_t		 answer;
	const char		*finish;	/* STOP, MAX_TOKENS, ... */
};

struct gen_sink {
	void		(*text)(void *, const char *, size_t);
	size_t		(*queued)(void *);
	void		(*done)(void *, const struct gen_result *);
	void		(*error)(void *, const char *, const char *);
	void		*arg;
};

void		 upstream_load(const struct bridged_conf *, void (*)(void));
void		 upstream_conf(const struct bridged_conf *);
void		 upstream_wipe(void);
int		 upstream_idle(void);
int		 upstream_stale(void);
void		 upstream_refresh(void);
int		 upstream_listing(void);
int		 upstream_models(int (*)(const char *, const struct api_model *,
		    void *), void *, char *, size_t, const char **);
struct gen	*gen_start(const struct gen_request *, const struct gen_sink *,
		    char *, size_t, char *, size_t);
void		 gen_cancel(struct gen *);

/* provider.c */
void		 provider_main(void);

/* jobs.c: the provider's queue of background jobs */
void		 jobs_init(void);
void		 jobs_reload(const struct bridged_conf *);
void		 jobs_hold(void);
void		 jobs_flush(void);
void		 jobs_channel(int);
void		 jobs_schedule(void);
int		 jobs_busy(void);

/* proc.c */
const char	*imsg_type_name(uint32_t);
const char	*proc_name(enum proc_id);
const char	*role_name(enum msg_role);
const char	*job_state_name(int);
int		 role_from_name(const char *);
int		 proc_from_name(const char *);
int		 conv_name_valid(const char *);
int		 event_stored(const char *);

/* check.c */
#define CHECK_START	0	/* before starting: every problem is fatal */
#define CHECK_NOACTION	1	/* -n: a missing API key only warns */
#define CHECK_RELOAD	2	/* user and database wait for a restart */
void		 conf_error(const char *, ...)
		    __attribute__((__format__ (printf, 1, 2)));
void		 conf_errors_reset(void);
size_t		 conf_errors_count(void);
const char	*conf_errors_get(size_t);
int		 check_config(const struct bridged_conf *, const char *, int);

/* config.c */
int		 config_send(struct channel *, const struct bridged_conf *,
		    const struct tls_material *, const char *);
struct bridged_conf *config_new(void);
void		 config_free(struct bridged_conf *);
int		 config_recv(struct bridged_conf **, struct bridged_conf **,
		    struct tls_material *, struct imsg *);

/* proto.c: a client's BRIDGE/1 session, no I/O (the worker's) */
struct proto;

/*
 * One turn of a request to the provider. Turns of one role in a row
 * are one turn upstream: the worker joins them with a blank line.
 */
struct proto_turn {
	int			 role;		/* ROLE_USER, ROLE_MODEL */
	const char		*text;
	size_t			 len;
};

/* A generation the session asks the provider for. */
struct proto_gen {
	const char		*model;
	const char		*system;	/* "" for none */
	const struct proto_turn	*turns;
	size_t			 nturns;
	uint32_t		 temperature;	/* thousandths, GEN_TEMP_NONE */
	uint32_t		 max_tokens;	/* 0: the model's own */
};

struct proto_session {
	char			 identity[IDENTITY_LEN + 1];
	char			 ip[NI_MAXHOST];
	uint32_t		 port;
	char			 local[NI_MAXHOST];
	uint32_t		 lport;
	uint64_t		 connected;	/* epoch s */
	char			 tls[128];	/* version cipher; "" plain */
	enum identity_mode	 identity_mode;
	size_t			 line_max;
	uint64_t		 memory_limit;
	char			 model[MODEL_MAX_LEN];	/* to start with */
	const struct role_list	*roles;		/* copied by proto_new */
};

/*
 * What the session does; a request returns -1 if it cannot be sent.
 * A storage request is an IMSG_WORKER_* payload built by the session
 * (request id first), which the worker takes and forwards.
 */
struct proto_ops {
	void		(*write)(void *, const void *, size_t);
	void		(*close)(void *);	/* after BYE or EOF */
	int		(*models)(void *, uint32_t);
	int		(*gen)(void *, uint32_t, const struct proto_gen *);
	void		(*cancel)(void *, uint32_t);
	int		(*storage)(void *, uint32_t, uint32_t, struct ibuf *);
	void		(*state)(void *, const char *, uint32_t, uint64_t,
			    uint64_t, int, int);
	void		(*event)(void *, const char *);
	uint64_t	(*now)(void *);		/* ms */
	uint64_t	(*random)(void *);
	int		(*auth)(void *, const char *);
	void		(*unfollow)(void *, uint32_t);	/* a RESULT */
};

#define PROTO_TEXT_MAX		256		/* a peer's text shown */
#define PROTO_ARG_MAX		256		/* an argument echoed */

struct proto	*proto_new(const struct proto_ops *, void *,
		    const struct proto_session *);
void		 proto_free(struct proto *);
void		 proto_start(struct proto *);
void		 proto_input(struct proto *, const char *, size_t);
void		 proto_eof(struct proto *);
void		 proto_bye(struct proto *, const char *);
void		 proto_auth(struct proto *, int, const char *, const char *);
int		 proto_busy(const struct proto *);
int		 proto_closed(const struct proto *);
size_t		 proto_queued(const struct proto *);
void		 proto_counters(const struct proto *, uint64_t *,
		    uint64_t *);
void		 proto_provider_model(struct proto *, uint32_t,
		    const char *, uint64_t, uint64_t);
void		 proto_provider_models_note(struct proto *, uint32_t,
		    const char *);
void		 proto_provider_models_end(struct proto *, uint32_t);
void		 proto_provider_answered(struct proto *, uint32_t,
		    const char *);
void		 proto_provider_chunk(struct proto *, uint32_t, const char *,
		    size_t);
void		 proto_provider_done(struct proto *, uint32_t, uint64_t,
		    uint64_t, const char *);
void		 proto_provider_error(struct proto *, uint32_t, const char *,
		    const char *);
void		 proto_provider_lost(struct proto *);
void		 proto_storage_stored(struct proto *, uint32_t, uint64_t);
void		 proto_storage_item(struct proto *, uint32_t, uint64_t,
		    uint64_t, uint32_t, const char *, size_t);
void		 proto_storage_end(struct proto *, uint32_t, uint64_t);
void		 proto_storage_error(struct proto *, uint32_t, const char *);
void		 proto_storage_line(struct proto *, uint32_t, const char *);
void		 proto_storage_conv(struct proto *, uint32_t,
		    const struct db_conv *);
void		 proto_storage_match(struct proto *, uint32_t,
		    const struct db_match *);
void		 proto_storage_deleted(struct proto *, uint32_t, uint64_t,
		    uint64_t);
void		 proto_storage_refused(struct proto *, uint32_t, const char *,
		    const char *);
void		 proto_storage_job_line(struct proto *, uint32_t, uint64_t,
		    uint32_t, const char *, uint64_t, uint64_t, const char *);
void		 proto_storage_job_head(struct proto *, uint32_t, uint64_t,
		    uint32_t);
void		 proto_storage_job_chunk(struct proto *, uint32_t, uint32_t,
		    const char *, size_t);
void		 proto_storage_job_end(struct proto *, uint32_t, uint32_t,
		    const char *, uint64_t, uint64_t, uint64_t, const char *,
		    const char *, const char *);

/* context.c: a conversation's memory in a session (proto.c holds it) */
struct ctx_turn {
	int			 role;
	char			*text;
	size_t			 len;
};

struct context {
	char			*summary;	/* the last one, or NULL */
	size_t			 summarylen;
	struct ctx_turn		*turns;		/* since the summary */
	size_t			 nturns;
	size_t			 maxturns;
	uint64_t		 bytes;		/* of the turns */
	int			 dirty;		/* turns since the summary */
	uint64_t		 memory_limit;	/* bytes, 0: none */
	uint64_t		 inlimit;	/* the model's tokens, 0: ? */
};

void		 ctx_init(struct context *, uint64_t);
void		 ctx_free(struct context *);
void		 ctx_clear(struct context *);
void		 ctx_drop_first(struct context *);
void		 ctx_drop_unanswered(struct context *);
void		 ctx_set_summary(struct context *, const char *, size_t);
void		 ctx_append(struct context *, int, const char *, size_t);
int		 ctx_dirty(const struct context *);
int		 ctx_over(const struct context *, size_t);
size_t		 ctx_trim(struct context *, size_t);
struct proto_turn *ctx_turns(const struct context *, const char *, size_t,
		    size_t *);
char		*ctx_system(const struct context *, const char *, size_t *);
char		*ctx_memory(const struct context *, size_t *, const char **);

/* gate.c: a generation waits for its admission, then is timed */
struct gate_msg;
struct gate {
	TAILQ_ENTRY(gate)	 entry;
	uint32_t		 id;
	char			 model[MODEL_MAX_LEN];
	TAILQ_HEAD(, gate_msg)	 held;
	int			 admitted;
	uint64_t		 t0;		/* ms: sent upstream */
	uint64_t		 first;		/* ms to the first byte */
};

struct gate	*gate_new(uint32_t, const char *, uint64_t);
int		 gate_hold(struct gate *, uint32_t, struct ibuf *);
struct gate	*gate_find(uint32_t);
int		 gate_release(struct gate *, struct channel *, uint64_t);
void		 gate_chunk(struct gate *, uint64_t);
void		 gate_free(struct gate *);

/* worker.c: bridged-worker's main */
/* tls_ticket.c: libtls on OpenSSL 3 */
void		 tls_ticket_nocache(void);
int		 tls_client_pending(void);

/* worker.c: one client, in a process forked from the template */
struct tls;
void		 worker_main(struct bridged_conf *, struct tls *, int,
		    const sigset_t *) __attribute__((__noreturn__));

/* tls_warm.c: handshakes in memory, no client on them */
void		 tls_warm_up(struct tls *);
void		 tls_rehearse(struct tls *);

/* parse.y */
struct bridged_conf *parse_config(const char *);
int		 cmdline_symset(char *);
void		 config_print(const struct bridged_conf *);
int		 is_loopback(const struct sockaddr_storage *);

/*
 * The session's insides, shared by its files only: proto_base.c (replies,
 * requests, model lists), the command families on it (proto_models.c,
 * proto_conv.c, proto_jobs.c) and proto.c over them all (lines, modes,
 * prompts, the command table and the peers' answers).
 */
#define PROTO_PROMPT_MAX	(8 * 1024 * 1024)	/* bytes of a prompt */
#define PROTO_SUMMARY_MAX	(1024 * 1024)	/* bytes of a summary */
#define PROTO_ANSWER_MAX	(IMSG_MAXSIZE - 64 * 1024) /* storable */
#define PROTO_MODELS_MAX	1000
#define PROTO_HISTORY_DEFAULT	20
#define PROTO_HISTORY_MAX	1000

#define PROTO_AUTH_TRIES 3	/* wrong tokens, then BYE */
#define PROTO_USAGE_DEFAULT	7	/* days */
#define PROTO_STATE_EVERY	1000	/* ms: the parent's view while busy */
#define PROTO_USAGE_MAX		366


/* What the session waits for before it reads the next line. */
enum proto_op {
	OP_NONE,
	OP_MODELS,
	OP_INFO,
	OP_HISTORY,
	OP_PROMPT,
	OP_BACK,
	OP_AUTH,
	OP_NEW,		/* NEW: the new conversation */
	OP_RESUME,	/* RESUME: the conversation and its context */
	OP_CONVS,	/* CONVERSATIONS */
	OP_DELETE,	/* DELETE, then maybe NEW */
	OP_SET,		/* SYSTEM: storage stores it */
	OP_SEARCH,
	OP_EXPORT,
	OP_IMPORT,	/* storage makes the imported conversation */
	OP_ROLE,	/* ROLE: storage sets the conversation's fields */
	OP_SUBMIT,
	OP_JOBS,
	OP_RESULT,
	OP_KILL,
	OP_USAGE	/* USAGE: storage's lines */
};

enum models_for {
	MF_LIST,
	MF_MENU,
	MF_CHANGE
};

enum store_state {
	SS_NONE,
	SS_PENDING,
	SS_OK,
	SS_FAILED
};

/* A line the client sent, waiting for its turn. */
struct pline {
	TAILQ_ENTRY(pline)	 entry;
	int			 toolong;
	size_t			 len;
	char			 text[];	/* len bytes and a NUL */
};

struct pmodel {
	char			 name[MODEL_MAX_LEN];
	uint64_t		 inlimit;
};

struct mlist {
	struct pmodel		*v;
	size_t			 n;
};

/* The steps of a prompt, in order; only the first four can be cancelled. */
enum prompt_step {
	STEP_CONTEXT,		/* the stored context is still loading */
	STEP_SUMMARY,		/* the memory manager summarizes first */
	STEP_SUMSTORE,		/* its summary is being stored */
	STEP_ANSWER,		/* the answer streams */
	STEP_STORE		/* the answer ended: waiting for storage */
};

/* A prompt, or the summary BACK asks for. */
struct prompt {
	char			*text;
	size_t			 len;
	enum prompt_step	 step;
	uint64_t		 t0;
	uint32_t		 gen;		/* the answer */
	uint32_t		 sum;		/* the summary */
	uint32_t		 sumstore;
	uint32_t		 ustore;
	uint32_t		 mstore;
	enum store_state	 ustate;
	enum store_state	 mstate;
	struct ibuf		*answer;	/* or the summary */
	int			 toobig;
	uint64_t		 tin;
	uint64_t		 tout;
	char			 finish[32];
	char			 code[32];	/* set: it failed */
	char			 why[PROTO_TEXT_MAX];
	char			 serr[PROTO_TEXT_MAX];	/* storage */
	char			 answered[MODEL_MAX_LEN]; /* "": p->model */
	int			 ctxretry;	/* asked again */
};

struct proto {
	const struct proto_ops	*ops;
	void			*arg;
	struct proto_session	 s;
	char			 shortid[13];
	int			 authfails;	/* wrong tokens */
	char			 allowed[TOKEN_MODELS_MAX];	/* "" all */
	uint32_t		 nextid;
	int			 closed;
	int			 eof;
	int			 running;
	int			 statedirty;	/* model or mode: say now */
	int			 statelazy;	/* counts: may wait */
	uint64_t		 state_ms;	/* when the parent last heard */

	/* input */
	struct ibuf		*part;		/* a line being read */
	int			 discard;	/* it is too long */
	TAILQ_HEAD(, pline)	 queue;
	size_t			 queued;
	int			 qquotes;	/* queued lines of """ */

	/* output */
	struct ibuf		*out;
	struct reply_writer	 rw;
	uint64_t		 bytes_in;
	uint64_t		 bytes_out;

	/* the session */
	int			 mode;
	char			 model[MODEL_MAX_LEN];
	uint32_t		 messages;
	int			 menu;		/* next line answers MORE */
	struct mlist		 menulist;
	struct mlist		 models;	/* the last list received */
	struct mlist		 bgfetch;
	uint32_t		 bgreq;
	char			 mnote[PROTO_TEXT_MAX];	/* providers failed */

	/* a multi-line prompt */
	int			 ml;
	struct ibuf		*mlbuf;
	const char		*mlcode;
	size_t			 mllines;
	char			 mlwhy[80];

	/* the configured roles, copied */
	struct role_conf	*roles;
	size_t			 nroles;
	const struct role_conf	*newrole;	/* ROLE, until stored */

	/* an IMPORT being received */
	int			 imp;
	struct ibuf		*impbuf;
	const char		*imperr;

	/* the conversation and its memory */
	uint64_t		 conv;		/* 0 until storage named it */
	char			 convname[CONV_NAME_MAX + 1];
	char			 convrole[NAME_MAX_LEN];
	char			*system;	/* NULL for none */
	struct context		 ctx;
	uint32_t		 ctxreq;	/* loading it */
	int			 ctxready;

	/* the command being answered */
	enum proto_op		 op;
	uint32_t		 req;
	enum models_for		 mfor;
	char			 marg[PROTO_ARG_MAX];
	struct mlist		 fetch;
	int			 hkind;
	uint32_t		 hcount;
	uint64_t		 ndeleted;	/* DELETE */
	char			*newsystem;	/* SYSTEM, until stored */
	struct export_state	 ex;		/* EXPORT */
	uint64_t		 job;		/* RESULT, KILL */
	int			 following;	/* RESULT streams live */
	struct prompt		 pr;
};

/* proto_base.c */
long long	 arg_count(struct proto *, const char *);
void		 list_request(struct proto *, const char *, uint32_t,
		    enum proto_op);
int		 context_load(struct proto *, const char *);
uint32_t	 conv_set(struct proto *, int, const char *, const char *,
		    const char *);
const char	*err_code(const char *);
int		 is_blank(const char *, size_t);
int		 is_space(char);
const char	*line_bad(const char *, size_t);
int		 mlist_add(struct mlist *, const char *, uint64_t);
const struct pmodel *mlist_find(const struct mlist *, const char *);
void		 mlist_free(struct mlist *);
int		 model_name_ok(const char *);
void		 op_done(struct proto *);
void		 out_body(struct proto *, const char *, size_t);
void		 out_flush(struct proto *);
void		 out_line(struct proto *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
void		 out_status(struct proto *, const char *, const char *, ...)
		    __attribute__((__format__ (printf, 3, 4)));
void		 proto_event(struct proto *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
uint32_t	 proto_reqid(struct proto *);
struct ibuf	*req_open(struct proto *, uint32_t);
const struct role_conf *role_find(const struct proto *, const char *);
int		 storage_send(struct proto *, uint32_t, struct ibuf *);
void		 text_copy(char *, size_t, const char *);

/* proto_models.c */
void		 cmd_change(struct proto *, const char *);
void		 cmd_list(struct proto *, const char *);
void		 model_choose(struct proto *, const struct mlist *,
		    const char *);
void		 models_end(struct proto *);
void		 models_received(struct proto *, struct mlist *);

/* proto_conv.c */
void		 cmd_convs(struct proto *, const char *);
void		 cmd_delete(struct proto *, const char *);
void		 cmd_export(struct proto *, const char *);
void		 cmd_import(struct proto *, const char *);
void		 cmd_messages(struct proto *, const char *);
void		 cmd_new(struct proto *, const char *);
void		 cmd_resume(struct proto *, const char *);
void		 cmd_role(struct proto *, const char *);
void		 cmd_roles(struct proto *, const char *);
void		 cmd_search(struct proto *, const char *);
void		 cmd_summaries(struct proto *, const char *);
void		 cmd_system(struct proto *, const char *);
int		 conv_new(struct proto *, const char *);
void		 conv_ok(struct proto *, uint64_t, const char *);
void		 export_out(struct proto *, char *);
void		 import_line(struct proto *, struct pline *);
void		 role_applied(struct proto *, const struct role_conf *);

/* proto_jobs.c */
void		 cmd_dialogue(struct proto *, const char *);
void		 cmd_jobs(struct proto *, const char *);
void		 cmd_kill(struct proto *, const char *);
void		 cmd_result(struct proto *, const char *);
void		 cmd_submit(struct proto *, const char *);
void		 job_answer_chunk(struct proto *, uint32_t, uint32_t,
		    const char *, size_t);
void		 job_answer_end(struct proto *, uint32_t, uint32_t,
		    const char *, uint64_t, uint64_t, uint64_t, const char *, const char *, const char *);
void		 job_answer_head(struct proto *, uint32_t, uint64_t, uint32_t);
void		 job_answer_line(struct proto *, uint32_t, uint64_t, uint32_t,
		    const char *, uint64_t, uint64_t, const char *);
void		 job_error(struct proto *, const char *);
void		 result_cancel(struct proto *);

#endif /* BRIDGED_H */
