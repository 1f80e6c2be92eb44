/*
 * db.c: the one storage interface storage.c calls. db_connect picks a
 * backend from the `database' string (db_backends below: a path is
 * SQLite, a postgresql:// URI or a conninfo string is PostgreSQL);
 * every other function checks what is the same for all backends and
 * calls the backend's own. Adding a backend is its files and one line
 * of db_backends.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

struct db {
	const struct db_backend	*be;
	void			*h;
};

/* The backends, asked in order; the last claims every string. */
static const struct db_backend db_backends[] = {
	{ &pg_base_ops, &pg_msg_ops, &pg_acct_ops, &pg_job_ops,
	    &pg_copy_ops },
	{ &sqlite_base_ops, &sqlite_msg_ops, &sqlite_acct_ops,
	    &sqlite_job_ops, &sqlite_copy_ops },
};

/* The backend that claims a database string. */
static const struct db_backend *
db_choose(const char *database)
{
	size_t	 i;

	for (i = 0; i < sizeof(db_backends) / sizeof(db_backends[0]); i++)
		if (db_backends[i].base->claims(database))
			return (&db_backends[i]);
	return (NULL);
}

/* Whether a database string names a server (not a file), for checks. */
int
db_server(const char *database)
{
	const struct db_backend	*be;

	return ((be = db_choose(database)) != NULL && be->base->shared);
}

/* Open a database without a password (every SQLite one). */
struct db *
db_open(const char *database, enum sync_mode sync)
{
	return (db_connect(database, sync, NULL));
}

/*
 * Open the database the string names with the backend that claims
 * it, migrated and ready; NULL (logged) on any failure.
 */
struct db *
db_connect(const char *database, enum sync_mode sync, const char *password)
{
	const struct db_backend	*be;
	struct db		*db;

	if ((be = db_choose(database)) == NULL) {
		log_warnx("database: no backend for this string");
		return (NULL);
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	db->be = be;
	if ((db->h = be->base->open(database, sync, password)) == NULL) {
		free(db);
		return (NULL);
	}
	return (db);
}

/* The backend's name: "sqlite" or "postgresql". */
const char *
db_kind(struct db *db)
{
	return (db->be->base->name);
}

/* Whether several instances may share the database (PostgreSQL). */
int
db_shared(struct db *db)
{
	return (db->be->base->shared);
}

/*
 * The address family and TCP port of the database server storage is
 * connected to, for its sandbox: family 0 when there is none (a file).
 */
int
db_peer(struct db *db, int *family, int *port)
{
	*family = 0;
	*port = 0;
	return (db->be->base->peer(db->h, family, port));
}

/* The backend, for jobs_db.c. */
const struct db_backend *
db_backend(struct db *db)
{
	return (db->be);
}

/* The backend's own handle, for jobs_db.c. */
void *
db_handle(struct db *db)
{
	return (db->h);
}

/* Close; NULL is fine. */
void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	db->be->base->close(db->h);
	free(db);
}

/* How durable a commit is; outside a transaction. */
int
db_sync(struct db *db, enum sync_mode sync)
{
	return (db->be->base->sync(db->h, sync));
}

/* Hand the files (if any) to the user storage runs as. */
int
db_chown(struct db *db, uid_t uid, gid_t gid)
{
	return (db->be->base->chown(db->h, uid, gid));
}

/* Open a write transaction. */
int
db_begin(struct db *db)
{
	return (db->be->base->begin(db->h));
}

/* Several instances share the database: their rounds take turns. */
void
db_take_turns(struct db *db)
{
	if (db->be->base->turns != NULL)
		db->be->base->turns(db->h);
}

/*
 * The open database is storage's from now on (after its sandbox): the
 * work a backend does beside the requests starts (SQLite: checkpoints
 * in a thread of their own).
 */
void
db_background(struct db *db)
{
	if (db->be->base->background != NULL)
		db->be->base->background(db->h);
}

/* How many checkpoints the background work has run (SQLite's thread). */
uint64_t
db_checkpoints(struct db *db)
{
	if (db->be->base->checkpoints == NULL)
		return (0);
	return (db->be->base->checkpoints(db->h));
}

/* COMMIT, durable on return; on failure the transaction is rolled back. */
int
db_commit(struct db *db)
{
	return (db->be->base->commit(db->h));
}

/* Give up the open transaction, if there is one. */
void
db_rollback(struct db *db)
{
	db->be->base->rollback(db->h);
}

/* Whether a write failure left the transaction still open. */
int
db_intx(struct db *db)
{
	return (db->be->base->intx(db->h));
}

/* Whether the conversation is the client's, logged when it is not. */
static int
db_owned_logged(struct db *db, const char *client, int64_t conv,
    const char *who)
{
	int	 rc;

	if ((rc = db->be->msg->conv_owned(db->h, client, conv)) == 0)
		log_warnx("%s: conversation %lld is not the client's", who,
		    (long long)conv);
	return (rc);
}

/*
 * Store a message unless its conversation holds its key already;
 * either way *rowid is the row's id and the return is 0 (new), 1
 * (duplicate) or -1. Within a transaction the caller commits.
 */
int
db_store(struct db *db, const char *client, int64_t conv, uint64_t key,
    enum msg_role role, const char *model, uint64_t tokens,
    const char *text, size_t len, int64_t now, int64_t *rowid)
{
	if ((role != ROLE_USER && role != ROLE_MODEL) ||
	    !db_text_valid(text, len) || tokens > INT64_MAX) {
		log_warnx("%s: invalid message", __func__);
		return (-1);
	}
	if (db_owned_logged(db, client, conv, __func__) != 1)
		return (-1);
	return (db->be->msg->store(db->h, client, conv, key, role, model,
	    tokens, text, len, now, rowid));
}

/*
 * Store a summary and keep only the newest `keep' of the conversation;
 * the caller runs it inside a transaction so both happen or neither.
 * *rowid is 0 when the same summary was stored already.
 */
int
db_summary(struct db *db, const char *client, int64_t conv, uint64_t key,
    const char *text, size_t len, int64_t now, int keep, int64_t *rowid)
{
	if (len == 0 || !db_text_valid(text, len)) {
		log_warnx("%s: invalid summary", __func__);
		return (-1);
	}
	if (db_owned_logged(db, client, conv, __func__) != 1)
		return (-1);
	return (db->be->msg->summary(db->h, client, conv, key, text, len,
	    now, keep < 1 ? 1 : keep, rowid));
}

/*
 * The last `count' messages or summaries of a conversation of the
 * client, oldest first, within maxbytes; another client's
 * conversation has none. *cut is DB_CUT_BYTES or DB_CUT_ITEMS when
 * older rows were left out.
 */
int
db_history(struct db *db, const char *client, int64_t conv,
    enum history_kind kind, uint32_t count, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	int	 r;

	*sent = 0;
	*cut = 0;
	if ((r = db->be->msg->conv_owned(db->h, client, conv)) != 1)
		return (r);
	return (db->be->msg->history(db->h, conv, kind, count, maxbytes, cb,
	    arg, sent, cut));
}

/*
 * A session's context: the last summary (role summary), then the
 * messages it does not cover, oldest first, within the bounds; the
 * oldest are the ones left out (*cut, as for db_history).
 */
int
db_context(struct db *db, const char *client, int64_t conv,
    uint32_t maxitems, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg, uint64_t *sent,
    int *cut)
{
	int	 r;

	*sent = 0;
	*cut = 0;
	if (maxitems == 0)
		return (0);
	if ((r = db->be->msg->conv_owned(db->h, client, conv)) != 1)
		return (r);
	return (db->be->msg->context(db->h, conv, maxitems, maxbytes, cb,
	    arg, sent, cut));
}

/* How many messages a client has stored. */
int
db_count(struct db *db, const char *client, uint64_t *count)
{
	return (db->be->msg->count(db->h, client, count));
}

/*
 * The one stored identity that begins with a hex prefix: DB_FOUND,
 * DB_NONE, DB_AMBIGUOUS, or -1. Index seeks only, however many rows.
 */
int
db_resolve(struct db *db, const char *prefix, char *out, size_t outlen)
{
	char	 hi[IDENTITY_LEN + 2], next[IDENTITY_LEN + 1];
	size_t	 len = strlen(prefix);
	int	 r;

	if (len == 0 || len > IDENTITY_LEN ||
	    strspn(prefix, "0123456789abcdef") != len) {
		log_warnx("%s: not a hex prefix", __func__);
		return (-1);
	}
	/* A whole identity is itself, stored or not (an empty export). */
	if (len == IDENTITY_LEN) {
		if (strlcpy(out, prefix, outlen) >= outlen)
			return (-1);
		return (DB_FOUND);
	}
	/* Every hex string that starts with the prefix sorts below this. */
	memcpy(hi, prefix, len);
	hi[len] = 'g';
	hi[len + 1] = '\0';
	if ((r = db->be->msg->client_min(db->h, 0, prefix, hi, out,
	    outlen)) != 1)
		return (r == 0 ? DB_NONE : -1);
	if ((r = db->be->msg->client_min(db->h, 1, out, hi, next,
	    sizeof(next))) == -1)
		return (-1);
	return (r == 1 ? DB_AMBIGUOUS : DB_FOUND);
}

/*
 * One page of an export, oldest first: messages (section 0) or
 * summaries (1) of the client (of one of its conversations if conv is
 * not 0) with an id above *after, at most max rows, stopping early
 * once maxbytes were given. 1 when more may follow, 0 when the
 * section is done, -1 on error; *after is the last id given.
 */
int
db_export(struct db *db, const char *client, int64_t conv, int section,
    int64_t *after, uint32_t max, size_t maxbytes,
    int (*cb)(const struct db_item *, void *), void *arg)
{
	return (db->be->msg->export(db->h, client, conv, section, after, max,
	    maxbytes, cb, arg));
}

/* Delete every message, summary and conversation of a client. */
int
db_purge(struct db *db, const char *client, uint64_t *rows)
{
	*rows = 0;
	return (db->be->msg->purge(db->h, client, rows));
}

/* Whether a conversation is the client's: 1 yes, 0 no, -1 error. */
int
db_conv_owned(struct db *db, const char *client, int64_t conv)
{
	return (db->be->msg->conv_owned(db->h, client, conv));
}

/* A conversation was used now: it goes first in the list. */
int
db_conv_touch(struct db *db, int64_t conv, int64_t now)
{
	return (db->be->msg->conv_touch(db->h, conv, now));
}

/* The client's most recently used conversation: DB_FOUND, DB_NONE, -1. */
int
db_conv_last(struct db *db, const char *client, struct db_conv *c)
{
	return (db->be->msg->conv_last(db->h, client, c));
}

/*
 * The client's conversation named by ref: its id (all digits) or
 * else its name. An id of another client's is DB_NONE, as is nothing.
 */
int
db_conv_find(struct db *db, const char *client, const char *ref,
    struct db_conv *c)
{
	const char	*errstr;
	long long	 id;
	int		 r;

	if (*ref != '\0' && strspn(ref, "0123456789") == strlen(ref)) {
		id = strtonum(ref, 1, INT64_MAX, &errstr);
		if (errstr == NULL && (r = db->be->msg->conv_by_id(db->h,
		    client, id, c)) != DB_NONE)
			return (r);
	}
	if (!conv_name_valid(ref))
		return (DB_NONE);
	return (db->be->msg->conv_by_name(db->h, client, ref, c));
}

/*
 * A new conversation of the client (name "" for none): 0 and *c, or
 * DB_EXISTS when the client has one of that name, or -1.
 */
int
db_conv_new(struct db *db, const char *client, const char *name,
    const char *model, const char *system, const char *role, int64_t now,
    struct db_conv *c)
{
	int64_t	 id;
	int	 r;

	if ((*name != '\0' && !conv_name_valid(name)) ||
	    strlen(model) >= sizeof(c->model) ||
	    strlen(system) >= sizeof(c->system) ||
	    strlen(role) >= sizeof(c->role) ||
	    !utf8_valid(system, strlen(system))) {
		log_warnx("%s: invalid conversation", __func__);
		return (-1);
	}
	if ((r = db->be->msg->conv_new(db->h, client, name, model, system,
	    role, now, &id)) != 0)
		return (r);
	memset(c, 0, sizeof(*c));
	c->id = id;
	(void)strlcpy(c->name, name, sizeof(c->name));
	(void)strlcpy(c->model, model, sizeof(c->model));
	(void)strlcpy(c->system, system, sizeof(c->system));
	(void)strlcpy(c->role, role, sizeof(c->role));
	c->created = c->last_used = now;
	return (0);
}

/* The client's last `count' conversations, most recently used first. */
int
db_conv_list(struct db *db, const char *client, uint32_t count,
    int (*cb)(const struct db_conv *, void *), void *arg, uint64_t *n)
{
	*n = 0;
	return (db->be->msg->conv_list(db->h, client, count, cb, arg, n));
}

/*
 * Set the fields of mask (CONV_MODEL, CONV_SYSTEM, CONV_ROLE; "" is
 * none) of the client's conversation: 1 set, 0 no such, -1 error.
 */
int
db_conv_set(struct db *db, const char *client, int64_t conv, int mask,
    const char *model, const char *system, const char *role, int64_t now)
{
	if (strlen(model) >= MODEL_MAX_LEN ||
	    strlen(system) >= CONV_SYSTEM_MAX ||
	    strlen(role) >= NAME_MAX_LEN ||
	    !utf8_valid(system, strlen(system))) {
		log_warnx("%s: invalid conversation field", __func__);
		return (-1);
	}
	return (db->be->msg->conv_set(db->h, client, conv, mask, model,
	    system, role, now));
}

/*
 * Delete the client's conversation with its messages, summaries and
 * finished jobs: 1 and *messages, 0 if the client has no such, -1.
 */
int
db_conv_delete(struct db *db, const char *client, int64_t conv,
    uint64_t *messages)
{
	int	 r;

	*messages = 0;
	if ((r = db->be->msg->conv_owned(db->h, client, conv)) != 1)
		return (r);
	if (db->be->msg->conv_delete(db->h, conv, messages) == -1)
		return (-1);
	return (1);
}

/*
 * Full-text search over the client's messages, newest first. Every
 * word is searched for literally, so no character of the words has a
 * meaning of its own and no query is an error.
 */
int
db_search(struct db *db, const char *client, const char *words,
    uint32_t max, int (*cb)(const struct db_match *, void *), void *arg,
    uint64_t *n)
{
	size_t	 len = strlen(words);

	*n = 0;
	if (len == 0 || len > DB_SEARCH_MAX)
		return (-1);
	if (strspn(words, " \t") == len)
		return (0);
	return (db->be->msg->search(db->h, client, words, max, cb, arg, n));
}


/*
 * Tokens, usage and events.
 */

/* Store a new token's hash and settings; *id is its number. */
int
db_token_add(struct db *db, const char *hash, const struct token_info *t,
    int64_t now, int64_t *id)
{
	return (db->be->acct->token_add(db->h, hash, t, now, id));
}

/* The token with this hash, whatever its state: 1, 0 if none, -1. */
int
db_token_get(struct db *db, const char *hash, struct token_info *t)
{
	return (db->be->acct->token_get(db->h, hash, t));
}

/*
 * Is this hash a live token (not revoked, not expired)? 1 and its
 * settings, its last use set to now; 0 if not; -1 on error.
 */
int
db_token_check(struct db *db, const char *hash, int64_t now,
    struct token_info *t)
{
	int	 r;

	if ((r = db_token_get(db, hash, t)) != 1)
		return (r);
	if (t->revoked != 0 || (t->expires != 0 && t->expires <= now))
		return (0);
	if (db->be->acct->token_used(db->h, t->id, now) == -1)
		return (-1);
	t->last_used = now;
	return (1);
}

/* Every token, oldest first. */
int
db_token_list(struct db *db, int (*cb)(const struct token_info *, void *),
    void *arg)
{
	return (db->be->acct->token_list(db->h, cb, arg));
}

/* Revoke a live token: 1 and its hash, 0 if there is none, -1. */
int
db_token_revoke(struct db *db, int64_t id, int64_t now,
    char hash[IDENTITY_LEN + 1])
{
	return (db->be->acct->token_revoke(db->h, id, now, hash));
}

/*
 * The limits of an identity: the global ones, each replaced by the
 * issued token's own where it has one, and the models the token may
 * use ("" all). For the prompt check here and for jobs.
 */
int
db_limits(struct db *db, const char *identity, const struct limits *global,
    struct limits *out, char *models, size_t modelslen)
{
	struct token_info	 t;
	int			 r;

	*out = *global;
	if (models != NULL && modelslen > 0)
		models[0] = '\0';
	if ((r = db_token_get(db, identity, &t)) == -1)
		return (-1);
	if (r == 0)
		return (0);
	if (t.limits.requests != LIMIT_INHERIT)
		out->requests = t.limits.requests;
	if (t.limits.tokens != LIMIT_INHERIT)
		out->tokens = t.limits.tokens;
	if (t.limits.jobs != LIMIT_INHERIT)
		out->jobs = t.limits.jobs;
	if (models != NULL && modelslen > 0)
		(void)strlcpy(models, t.models, modelslen);
	return (0);
}

/*
 * What an identity uses: requests of the last minute, tokens today,
 * jobs running. In the caller's transaction, where the counts are, so
 * that several daemons sharing a database count together. Requests
 * are counted up to `upto', the limit that applies (0: not counted),
 * so that the count costs no more than the limit allows.
 */
int
db_usage_now(struct db *db, const char *identity, int64_t now_ms,
    uint64_t upto, struct limit_use *u)
{
	return (db->be->acct->usage_now(db->h, identity, now_ms,
	    upto > INT64_MAX ? INT64_MAX : upto, u));
}

/*
 * An admitted request: a prompt today and, while a requests limit
 * applies to the identity (`minute'), one of the minute's requests.
 */
int
db_usage_request(struct db *db, const char *identity, const char *model,
    int64_t now_ms, int minute)
{
	return (db->be->acct->usage_request(db->h, identity, model, now_ms,
	    minute));
}

/* Tokens an answer used, as the upstream counted them. */
int
db_usage_tokens(struct db *db, const char *identity, const char *model,
    int64_t now, uint64_t in, uint64_t out)
{
	if (in > INT64_MAX / 2 || out > INT64_MAX / 2)
		return (-1);
	return (db->be->acct->usage_tokens(db->h, identity, model, now, in,
	    out));
}

/*
 * Usage rows since a day (YYYY-MM-DD), of the identities that begin
 * with prefix ("" all), by identity, day and model.
 */
int
db_usage_list(struct db *db, const char *prefix, const char *since,
    int (*cb)(const struct usage_row *, void *), void *arg)
{
	if (strlen(prefix) > IDENTITY_LEN)
		return (-1);
	return (db->be->acct->usage_list(db->h, prefix, since, cb, arg));
}

/* An identity starts a session: seen now, authenticated by how. */
int
db_identity_seen(struct db *db, const char *identity, const char *how,
    int64_t now)
{
	return (db->be->acct->identity_seen(db->h, identity, how, now));
}

/* Every identity seen, the most recent first, with today's tokens. */
int
db_identities(struct db *db, int64_t now,
    int (*cb)(const struct identity_row *, void *), void *arg)
{
	return (db->be->acct->identities(db->h, now, cb, arg));
}

/* Log one event; identity NULL or "" when it concerns none. */
int
db_event_add(struct db *db, int64_t when, const char *identity,
    const char *text, int keep)
{
	return (db->be->acct->event_add(db->h, when, identity, text, keep));
}

/*
 * The last `count' events, oldest first, of the identities that begin
 * with prefix ("" every event).
 */
int
db_events(struct db *db, const char *prefix, uint32_t count,
    int (*cb)(const struct event_row *, void *), void *arg)
{
	if (strlen(prefix) > IDENTITY_LEN)
		return (-1);
	if (count == 0)
		return (0);
	return (db->be->acct->events(db->h, prefix, count, cb, arg));
}

/*
 * The hashes of the tokens revoked at or after a time (another
 * instance may have revoked them), to cb.
 */
int
db_revoked_since(struct db *db, int64_t since,
    int (*cb)(const char *, void *), void *arg)
{
	return (db->be->acct->revoked_since(db->h, since, cb, arg));
}
