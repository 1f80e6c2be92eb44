/*
 * storage.c: the storage process, the only one that opens the
 * database. It takes each worker's channel from the parent, learns
 * from the parent which identity that worker serves, and answers the
 * worker's requests for that identity only. Control's channel, also
 * from the parent, may export or purge any identity for bridgectl;
 * the provider's runs jobs. A table per peer names what it may send
 * and the handler of each (storage_conv.c, storage_export.c,
 * storage_jobs.c, storage_run.c, storage_acct.c); writes are grouped
 * in one transaction a round (storage_round.c).
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bridged.h"

/* A database several instances share: what the others did. */
#define STORAGE_CLUSTER_POLL	2000		/* ms between looks */
#define STORAGE_REVOKE_SLACK	10		/* s: clocks, late commits */
#define STORAGE_REVOKE_BACK	300		/* s looked back at a start */

/* What a peer may send: the handler of each type, and how it runs. */
struct storage_cmd {
	uint32_t	 type;
	storage_fn	 fn;
	int		 flags;
};
#define CMD_READ	0x01	/* commit and answer the round first */
#define NCMDS(t)	(sizeof(t) / sizeof((t)[0]))

struct storage_state stor;

static void	storage_dispatch_parent(struct channel *, struct imsg *);
static void	storage_dispatch_worker(struct channel *, struct imsg *);
static void	storage_dispatch_control(struct channel *, struct imsg *);
static void	storage_dispatch_jobs(struct channel *, struct imsg *);

/* A worker's requests; who asks is known by the channel, nothing else. */
static const struct storage_cmd worker_cmds[] = {
	{ IMSG_WORKER_STORE,		worker_store,		0 },
	{ IMSG_WORKER_SUMMARY,		worker_summary,		0 },
	{ IMSG_WORKER_HISTORY,		worker_read,		CMD_READ },
	{ IMSG_WORKER_COUNT,		worker_read,		CMD_READ },
	{ IMSG_WORKER_CONTEXT,		worker_context,		CMD_READ },
	{ IMSG_WORKER_CONV_NEW,		worker_conv_new,	0 },
	{ IMSG_WORKER_CONV_LIST,	worker_conv_list,	CMD_READ },
	{ IMSG_WORKER_CONV_SET,		worker_conv_set,	0 },
	{ IMSG_WORKER_CONV_DELETE,	worker_conv_delete,	0 },
	{ IMSG_WORKER_SEARCH,		worker_search,		CMD_READ },
	{ IMSG_WORKER_EXPORT,		worker_export,		CMD_READ },
	{ IMSG_WORKER_IMPORT,		worker_import,		0 },
	{ IMSG_WORKER_SUBMIT,		worker_submit,		0 },
	{ IMSG_WORKER_JOBS,		worker_job_read,	0 },
	{ IMSG_WORKER_RESULT,		worker_job_read,	0 },
	{ IMSG_WORKER_UNFOLLOW,		worker_job_read,	0 },
	{ IMSG_WORKER_KILL,		job_kill,		0 },
	{ IMSG_WORKER_ADMIT,		worker_admit,		0 },
	{ IMSG_WORKER_USAGE,		worker_usage,		0 },
	{ IMSG_WORKER_USAGE_GET,	worker_usage_get,	CMD_READ },
};

/* Control's, on behalf of bridgectl. */
static const struct storage_cmd control_cmds[] = {
	{ IMSG_CTL_EXPORT,		control_history,	CMD_READ },
	{ IMSG_CTL_PURGE,		control_history,	CMD_READ },
	{ IMSG_CTL_JOBS,		worker_job_read,	0 },
	{ IMSG_CTL_JOBKILL,		job_kill,		0 },
	{ IMSG_CTL_TOKEN_ADD,		control_token_add,	0 },
	{ IMSG_CTL_TOKEN_REVOKE,	control_token_revoke,	0 },
	{ IMSG_CTL_TOKEN_LIST,		control_table,		CMD_READ },
	{ IMSG_CTL_USAGE,		control_table,		CMD_READ },
	{ IMSG_CTL_IDENTITIES,		control_table,		CMD_READ },
	{ IMSG_CTL_EVENTS,		control_table,		CMD_READ },
};

/* The provider's, about the jobs it runs; no request id. */
static const struct storage_cmd provider_cmds[] = {
	{ IMSG_PROVIDER_JOB_LIST,	provider_job_list,	CMD_READ },
	{ IMSG_PROVIDER_JOB_START,	provider_job_start,	0 },
	{ IMSG_PROVIDER_JOB_CHUNK,	provider_job_chunk,	0 },
	{ IMSG_PROVIDER_JOB_TURN,	provider_job_turn,	0 },
	{ IMSG_PROVIDER_JOB_DONE,	provider_job_end,	0 },
	{ IMSG_PROVIDER_JOB_FAIL,	provider_job_end,	0 },
};

#include <sys/types.h>
#include <sys/queue.h>


#include "bridged.h"

/* The identity a parent names: empty, or hex SHA-256. */
static int
identity_valid(const char *s)
{
	size_t	 i, len = strlen(s);

	if (len == 0)
		return (1);
	if (len != IDENTITY_LEN)
		return (0);
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return (0);
	return (1);
}


/*
 * A peer's message through its table: a worker's or control's begins
 * with its request id. What breaks the rules rejects the channel.
 */
static void
storage_dispatch(struct wchan *w, struct imsg *imsg,
    const struct storage_cmd *cmds, size_t ncmds)
{
	struct ask	 a;
	const char	*bad = "unexpected type";
	size_t		 i;

	if (w->gone)
		return;
	if (!w->control && !w->jobs && w->identity[0] == '\0')
		bad = "no identity yet";
	else if (imsg->fd != -1)
		bad = "descriptor";
	else
		for (i = 0; i < ncmds; i++) {
			if (cmds[i].type != imsg->hdr.type)
				continue;
			a.w = w;
			a.type = imsg->hdr.type;
			ir_init(&a.ir, imsg);
			a.id = w->jobs ? 0 : ir_u32(&a.ir);
			if (cmds[i].flags & CMD_READ)
				round_settle();
			bad = cmds[i].fn(&a);
			break;
		}
	if (bad != NULL)
		wchan_reject(w, imsg, bad);
}

/* A worker's request. */
static void
storage_dispatch_worker(struct channel *ch, struct imsg *imsg)
{
	struct wchan	*w = ch->arg;

	storage_dispatch(w, imsg, worker_cmds, NCMDS(worker_cmds));
	/* Stop reading a worker whose answers pile up. */
	if (!w->gone && !w->full && w->ch.ibuf.queued > STORAGE_QUEUE_HIGH) {
		w->full = 1;
		wchan_update(w);
		if (!ev_timer_pending(&stor.queue_poll))
			ev_timer_add(&stor.queue_poll, STORAGE_QUEUE_POLL);
	}
}

/* Control's request: anything wrong from it ends storage. */
static void
storage_dispatch_control(struct channel *ch, struct imsg *imsg)
{
	storage_dispatch(ch->arg, imsg, control_cmds, NCMDS(control_cmds));
}

/* The provider's channel for jobs: it is trusted less than the parent. */
static void
storage_dispatch_jobs(struct channel *ch, struct imsg *imsg)
{
	storage_dispatch(ch->arg, imsg, provider_cmds, NCMDS(provider_cmds));
}

/* Resume the workers whose answers have drained. */
static void
storage_queue_poll(void *arg)
{
	struct wchan	*w, *next;
	int		 again = 0;

	(void)arg;
	for (w = TAILQ_FIRST(&stor.chans); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (!w->full)
			continue;
		if (w->ch.ibuf.queued > STORAGE_QUEUE_HIGH / 2) {
			again = 1;
			continue;
		}
		w->full = 0;
		wchan_update(w);
	}
	if (stor.ctl != NULL)
		export_pump(stor.ctl);
	if (again && !ev_timer_pending(&stor.queue_poll))
		ev_timer_add(&stor.queue_poll, STORAGE_QUEUE_POLL);
	wchan_reap();
}




/* IMSG_PARENT_CHANNEL: u32 worker id, str identity; with the fd. */
static void
parent_channel(struct imsg *imsg)
{
	struct ireader	 ir;
	struct wchan	*old;
	const char	*identity;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	identity = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd == -1 || !identity_valid(identity))
		child_bad(PROC_PARENT, imsg, NULL);
	if ((old = wchan_find(wid)) != NULL) {
		log_debug("worker %u: channel replaced", wid);
		wchan_drop(old);
	}
	(void)wchan_new(imsg->fd, wid, identity, 0, 0,
	    storage_dispatch_worker);
	imsg->fd = -1;
}

/*
 * IMSG_PARENT_CONTROL, IMSG_PARENT_JOBS: control's channel, or the
 * provider's for jobs (fd); a new one replaces the old.
 */
static void
parent_peer(struct imsg *imsg)
{
	struct wchan	**wp;
	int		  jobs = imsg->hdr.type == IMSG_PARENT_JOBS;

	if (imsg->datalen != 0 || imsg->fd == -1)
		child_bad(PROC_PARENT, imsg, NULL);
	wp = jobs ? &stor.jobs : &stor.ctl;
	if (*wp != NULL) {
		log_debug("%s: channel replaced", jobs ? "provider: jobs" :
		    "control");
		wchan_drop(*wp);
	}
	*wp = wchan_new(imsg->fd, 0, "", !jobs, jobs, jobs ?
	    storage_dispatch_jobs : storage_dispatch_control);
	imsg->fd = -1;
}

/* An identity begins a session: remember how it authenticated. */
static void
identity_seen(const char *identity, const char *how)
{
	struct token_info	 t;
	char			 buf[32];

	if (*identity == '\0')
		return;
	round_settle();
	if (strcmp(how, "token") == 0) {
		switch (db_token_get(stor.db, identity, &t)) {
		case 1:
			(void)snprintf(buf, sizeof(buf), "token:%lld",
			    (long long)t.id);
			how = buf;
			break;
		case 0:
			how = "token-file";
			break;
		default:
			return;
		}
	}
	if (group_join() == -1)
		return;
	if (db_identity_seen(stor.db, identity, how, (int64_t)time(NULL)) == -1)
		group_fail_if_lost();
}

/* IMSG_PARENT_SESSION: u32 worker id, str identity, str how. */
static void
parent_session(struct imsg *imsg)
{
	struct ireader	 ir;
	struct wchan	*w;
	const char	*identity, *how;
	uint32_t	 wid;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	identity = ir_str(&ir);
	how = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 ||
	    !identity_valid(identity) || strlen(how) > 16)
		child_bad(PROC_PARENT, imsg, NULL);
	identity_seen(identity, how);
	if ((w = wchan_find(wid)) == NULL) {
		/* The worker may have gone already. */
		log_debug("%s: no channel for worker %u", __func__, wid);
		return;
	}
	(void)strlcpy(w->identity, identity, sizeof(w->identity));
	wchan_update(w);
}

/*
 * IMSG_PARENT_TOKEN: u32 worker id, str hash. Is it a live issued
 * token? Answered at once (its last use is stored with the answer).
 */
static void
parent_token(struct imsg *imsg)
{
	struct ireader		 ir;
	struct token_info	 t;
	struct ibuf		*b;
	const char		*hash;
	uint32_t		 wid;
	int			 ok;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	hash = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 ||
	    strlen(hash) != IDENTITY_LEN || !identity_valid(hash))
		child_bad(PROC_PARENT, imsg, NULL);
	round_settle();
	ok = db_token_check(stor.db, hash, (int64_t)time(NULL), &t) == 1;
	if ((b = channel_create(parent_chan, IMSG_STORAGE_TOKEN, 0,
	    IDENTITY_LEN + sizeof(t.models) + 32)) == NULL ||
	    ibuf_add_u32(b, wid) == -1 || ibuf_add_u32(b, ok) == -1 ||
	    ibuf_add_str(b, hash) == -1 ||
	    ibuf_add_str(b, ok ? t.models : "") == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
}

/* IMSG_PARENT_EVENT: u64 time, str identity, str text. */
static void
parent_log_event(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*identity, *text;
	uint64_t	 when;

	ir_init(&ir, imsg);
	when = ir_u64(&ir);
	identity = ir_str(&ir);
	text = ir_str(&ir);
	if (ir_end(&ir) == -1 || imsg->fd != -1 || when > INT64_MAX ||
	    !identity_valid(identity) || !utf8_valid(text, strlen(text)))
		child_bad(PROC_PARENT, imsg, NULL);
	event_store((int64_t)when, identity, text);
}

/* A new configuration: apply what can change while running. */
static void
storage_reload(void)
{
	const struct global_conf	*g = &stor.conf->g;

	if (strcmp(g->database, stor.database) != 0)
		log_warnx("database is now %s; restart bridged to use it"
		    " (still using %s)", g->database, stor.database);
	if (g->sync != stor.sync) {
		stor.sync = g->sync;
		if (stor.writes > 0)
			stor.sync_pending = 1;
		else if (db_sync(stor.db, stor.sync) == -1)
			log_warnx("database sync level unchanged");
	}
	log_debug("configuration reloaded: summaries keep %d, sync %s",
	    g->summaries_keep, stor.sync == SYNC_FULL ? "full" : "normal");
}

/* The parent is trusted: anything wrong from it is fatal. */
static void
storage_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	(void)ch;
	switch (child_imsg(&stor.conf, NULL, imsg)) {
	case 1:
		storage_reload();
		return;
	case 0:
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_PARENT_CHANNEL:
		parent_channel(imsg);
		break;
	case IMSG_PARENT_SESSION:
		parent_session(imsg);
		break;
	case IMSG_PARENT_CONTROL:
	case IMSG_PARENT_JOBS:
		parent_peer(imsg);
		break;
	case IMSG_PARENT_TOKEN:
		parent_token(imsg);
		break;
	case IMSG_PARENT_EVENT:
		parent_log_event(imsg);
		break;
	default:
		child_bad(PROC_PARENT, imsg, "unexpected");
	}
}

/* Finish the round's transaction and leave. */
static void
storage_shutdown(void)
{
	if (ev_timer_pending(&stor.round_end)) {
		ev_timer_del(&stor.round_end);
		storage_round_end(NULL);
	}
	if (stor.jdb != NULL && jdb_release(stor.jdb) == -1)
		log_warnx("cannot give back the leases of this instance's"
		    " jobs");
	jdb_close(stor.jdb);
	stor.jdb = NULL;
	db_close(stor.db);
	stor.db = NULL;
}

/* SIGTERM, SIGINT: commit what is pending and leave. */
static void
storage_sig(int sig, void *arg)
{
	(void)arg;
	log_debug("%s: signal %d, stopping", __func__, sig);
	storage_shutdown();
	exit(0);
}

/* Without a parent there is nothing to serve. */
static void
storage_parent_closed(struct channel *ch)
{
	if (ch->broken)
		child_bad(PROC_PARENT, NULL, NULL);
	storage_shutdown();
	exit(0);
}

/*
 * A token revoked (maybe through another instance): its sessions on
 * this one end, through the parent, as a revocation here ends them.
 */
static int
cluster_revoked(const char *hash, void *arg)
{
	struct ibuf	*b;
	const char	*reason = "token revoked";

	(void)arg;
	if (strlen(hash) != IDENTITY_LEN)
		return (0);
	if ((b = channel_create(parent_chan, IMSG_STORAGE_END_SESSIONS, 0,
	    IDENTITY_LEN + strlen(reason) + 16)) == NULL ||
	    ibuf_add_str(b, hash) == -1 || ibuf_add_str(b, reason) == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
	return (0);
}

/* A job whose instance died is this one's now: the provider runs it. */
static int
cluster_claimed(int64_t id, const char *identity, void *arg)
{
	(void)arg;
	job_event("job %lld: taken over from an instance that is gone",
	    (long long)id);
	jobs_tell(IMSG_STORAGE_JOB_QUEUED, id, identity);
	return (0);
}

/*
 * A database several instances share, every STORAGE_CLUSTER_POLL:
 * take the jobs of instances that are gone, keep the leases of this
 * instance's jobs and stop those killed through another instance (the
 * same query), and end the sessions of tokens revoked elsewhere.
 */
static void
storage_cluster_poll(void *arg)
{
	int64_t	 now = (int64_t)time(NULL);

	(void)arg;
	round_settle();
	if (jdb_claim(stor.jdb, cluster_claimed, NULL) == -1)
		log_warnx("cannot look for jobs of instances that are gone");
	if (jdb_renew(stor.jdb, job_cancelled_elsewhere, NULL) == -1)
		log_warnx("cannot renew the leases of this instance's jobs");
	if (db_revoked_since(stor.db, stor.revoked_since, cluster_revoked,
	    NULL) == -1)
		log_warnx("cannot look for revoked tokens");
	else
		stor.revoked_since = now - STORAGE_REVOKE_SLACK;
	followers_poll((time_t)now);
	ev_timer_add(&stor.cluster_poll, STORAGE_CLUSTER_POLL);
}

/*
 * Open as root (a file) or connect (a server, with the password the
 * parent read), give the files to the user, then sandbox: with a
 * server, no file and no connection but to its address.
 */
static void
storage_open(void)
{
	struct sandbox_conf	 sc;
	struct passwd		*pw;
	const char		*user;
	char			 dir[PATH_MAX];

	(void)strlcpy(stor.database, stor.conf->g.database,
	    sizeof(stor.database));
	stor.sync = stor.conf->g.sync;
	/* Conversations are nobody else's business. */
	umask(077);
	stor.db = db_connect(stor.database, stor.sync, stor.conf->db_password);
	if (stor.conf->db_password != NULL) {
		freezero(stor.conf->db_password,
		    strlen(stor.conf->db_password));
		stor.conf->db_password = NULL;
	}
	/* A server's string is not logged: it may name more than needed. */
	if (stor.db == NULL)
		fatalx("cannot use database %s", db_server(stor.database) ?
		    "(a server; see the line above)" : stor.database);
	if ((stor.jdb = jdb_open(stor.db)) == NULL)
		fatalx("cannot prepare the job queries of %s", stor.database);
	db_take_turns(stor.db);
	user = stor.conf->g.user[0] != '\0' ? stor.conf->g.user : NULL;
	if (user != NULL && geteuid() == 0) {
		if ((pw = getpwnam(user)) == NULL)
			fatalx("unknown user %s", user);
		if (db_chown(stor.db, pw->pw_uid, pw->pw_gid) == -1)
			fatalx("cannot hand database %s to %s", stor.database,
			    user);
	}
	(void)strlcpy(dir, stor.database, sizeof(dir));
	memset(&sc, 0, sizeof(sc));
	sc.user = user;
	sc.chroot = NULL;
	if (db_peer(stor.db, &sc.db_family, &sc.db_port) == -1)
		fatalx("cannot tell the database's address");
	sc.dbdir = sc.db_family == 0 ? dirname(dir) : NULL;
	if (sandbox_enter(SANDBOX_STORAGE, &sc) == -1)
		fatalx("storage sandbox failed");
	db_background(stor.db);
	if (db_shared(stor.db)) {
		/* Started again: what was revoked while it was away too. */
		stor.revoked_since = (int64_t)time(NULL) - STORAGE_REVOKE_BACK;
		ev_timer_add(&stor.cluster_poll, STORAGE_CLUSTER_POLL);
	}
}

/* The process's state before anything comes (the fuzzer's too). */
static void
storage_init(void)
{
	TAILQ_INIT(&stor.chans);
	TAILQ_INIT(&stor.dead);
	TAILQ_INIT(&stor.round);
	TAILQ_INIT(&stor.followers);
	ev_timer_set(&stor.round_end, storage_round_end, NULL);
	ev_timer_set(&stor.queue_poll, storage_queue_poll, NULL);
	ev_timer_set(&stor.cluster_poll, storage_cluster_poll, NULL);
}

/* bridged -P storage: never returns. */
void
storage_main(void)
{
	storage_init();

	stor.conf = child_config(NULL);
	storage_open();
	if (db_server(stor.database))
		log_info("database open (%s), commits synchronous",
		    db_kind(stor.db));
	else
		log_info("database %s open (%s), sync %s", stor.database,
		    db_kind(stor.db), stor.sync == SYNC_FULL ? "full" :
		    "normal");

	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	ev_signal(SIGTERM, storage_sig, NULL);
	ev_signal(SIGINT, storage_sig, NULL);
	parent_chan->closed = storage_parent_closed;
	child_ready();
	child_dispatch(storage_dispatch_parent);
	ev_loop();
	fatalx("storage: event loop ended");
}
