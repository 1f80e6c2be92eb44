/*
 * t_acct.c: what bridged counts per identity, on a real SQLite file:
 * the limit decision (limits.c), issued tokens, usage and the request
 * window and the event log (db.c and its backends), including a daily
 * budget that survives closing and reopening the database. With
 * BRIDGED_TEST_PG the same on PostgreSQL (pg-...), and two instances
 * counting against one limit.
 */

#include <sys/types.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bridged.h"
#include "pgtest.h"

#define A	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" \
		"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define NOW	1764940000LL		/* 2025-12-05T13:06:40Z */

static int	 failures;
static const char *prefix = "";		/* "pg-" for PostgreSQL */
static char	 file[PATH_MAX];

/* One result line: ok, or FAIL with why. */
static void
check(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s%s\n", prefix, name);
	else {
		printf("FAIL %s%s: %s\n", prefix, name, why);
		failures++;
	}
}

/* The decision alone: which limit, and when to try again. */
static void
t_check(void)
{
	struct limits	 l = { 2, 1000, 1 };
	struct limit_use u;
	uint64_t	 allowed = 0, retry = 0;
	const char	*w;
	char		 day[LIMITS_DAY_LEN], text[LIMITS_TEXT_MAX];

	memset(&u, 0, sizeof(u));
	u.requests = 1;
	u.tokens = 999;
	check("limits-under", limits_check(&l, &u, NOW * 1000, &allowed,
	    &retry) == NULL, "refused under the limits");
	u.requests = 2;
	u.oldest_ms = NOW * 1000 - 20500;
	w = limits_check(&l, &u, NOW * 1000, &allowed, &retry);
	check("limits-requests", w != NULL &&
	    strcmp(w, "requests-per-minute") == 0 && allowed == 2 &&
	    retry == 40, "requests per minute not refused for 40 s");
	u.requests = 0;
	u.tokens = 1000;
	w = limits_check(&l, &u, NOW * 1000, &allowed, &retry);
	check("limits-tokens", w != NULL && strcmp(w, "tokens-per-day") ==
	    0 && allowed == 1000 && retry == 86400 - NOW % 86400,
	    "tokens per day not refused until midnight UTC");
	l.requests = l.tokens = 0;
	u.requests = 1000000;
	check("limits-none", limits_check(&l, &u, NOW * 1000, &allowed,
	    &retry) == NULL, "0 is not 'no limit'");
	limits_day(NOW, day);
	check("limits-day", strcmp(day, "2025-12-05") == 0, day);
	limits_text(text, sizeof(text), "tokens-per-day", 5, 7);
	check("limits-text", strcmp(text, "tokens-per-day limit 5 reached,"
	    " retry in 7 s") == 0, text);
	check("models-all", limits_model_ok("", "gemini-2.5-pro"),
	    "an empty list refuses");
	check("models-listed", limits_model_ok("a,gemini-2.5-pro",
	    "gemini-2.5-pro") && limits_model_ok("gemini-2.5-pro",
	    "gemini/gemini-2.5-pro"), "a listed model refused");
	check("models-other", !limits_model_ok("gemini-2.5-pro",
	    "gemini-2.5-pro-x") && !limits_model_ok("gemini-2.5-pro,b",
	    "gemini-2.5"), "a model outside the list accepted");
}

/* Issued tokens: stored by hash, checked, expired, revoked. */
static void
t_tokens(struct db *db)
{
	struct token_info	 t, got;
	struct limits		 g = { 60, 5000, 2 }, eff;
	char			 hash[IDENTITY_LEN + 1], models[64];
	int64_t			 id1, id2;

	memset(&t, 0, sizeof(t));
	(void)strlcpy(t.label, "alice", sizeof(t.label));
	(void)strlcpy(t.models, "gemini-2.5-pro", sizeof(t.models));
	t.limits.requests = 3;
	t.limits.tokens = LIMIT_INHERIT;
	t.limits.jobs = 0;
	check("token-add", db_token_add(db, A, &t, NOW, &id1) == 0 &&
	    id1 > 0, "add failed");
	t.expires = NOW + 10;
	t.limits.requests = t.limits.jobs = LIMIT_INHERIT;
	check("token-add-expiring", db_token_add(db, B, &t, NOW, &id2) == 0 &&
	    id2 == id1 + 1, "second add failed");
	check("token-add-twice", db_token_add(db, A, &t, NOW, &id2) == -1,
	    "the same hash stored twice");
	check("token-check", db_token_check(db, A, NOW + 5, &got) == 1 &&
	    got.last_used == NOW + 5 && strcmp(got.label, "alice") == 0,
	    "a live token refused");
	check("token-check-unknown", db_token_check(db,
	    "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
	    NOW, &got) == 0, "an unknown hash accepted");
	check("token-expired", db_token_check(db, B, NOW + 9, &got) == 1 &&
	    db_token_check(db, B, NOW + 10, &got) == 0,
	    "expiry not at its time");
	check("limits-override", db_limits(db, A, &g, &eff, models,
	    sizeof(models)) == 0 && eff.requests == 3 && eff.tokens == 5000 &&
	    eff.jobs == 0 && strcmp(models, "gemini-2.5-pro") == 0,
	    "the token's own limits not applied");
	check("limits-inherit", db_limits(db, B, &g, &eff, NULL, 0) == 0 &&
	    eff.requests == 60 && eff.jobs == 2, "global limits lost");
	check("token-revoke", db_token_revoke(db, id1, NOW, hash) == 1 &&
	    strcmp(hash, A) == 0 && db_token_check(db, A, NOW, &got) == 0,
	    "revoked token still good");
	check("token-revoke-again", db_token_revoke(db, id1, NOW, hash) == 0,
	    "revoked twice");
}

/* Count the usage rows listed. */
static int
count_rows(const struct usage_row *u, void *arg)
{
	int	*n = arg;

	(void)u;
	(*n)++;
	return (0);
}

/* The request window and the day's tokens. */
static void
t_usage(struct db *db)
{
	struct limit_use	 u;
	int64_t			 ms = NOW * 1000;
	int			 n = 0;

	check("usage-request", db_usage_request(db, A, "m1", ms - 61000,
	    1) == 0 && db_usage_request(db, A, "m1", ms - 30000, 1) == 0 &&
	    db_usage_request(db, A, "m2", ms - 1000, 1) == 0 &&
	    db_usage_request(db, B, "m1", ms - 1000, 1) == 0 &&
	    db_usage_request(db, B, "m1", ms - 500, 0) == 0, "request failed");
	check("usage-window", db_usage_now(db, A, ms, 100, &u) == 0 &&
	    u.requests == 2 && u.oldest_ms == ms - 30000,
	    "the minute's requests miscounted");
	check("usage-window-bounded", db_usage_now(db, A, ms, 1, &u) == 0 &&
	    u.requests == 1 && u.oldest_ms == ms - 30000 &&
	    db_usage_now(db, A, ms, 0, &u) == 0 && u.requests == 0,
	    "the count went past the limit it was asked for");
	check("usage-minute-uncounted", db_usage_now(db, B, ms, 100, &u) ==
	    0 && u.requests == 1, "a request no limit counts was counted");
	check("usage-tokens", db_usage_tokens(db, A, "m1", NOW, 100, 250) ==
	    0 && db_usage_tokens(db, A, "m2", NOW, 1, 2) == 0 &&
	    db_usage_tokens(db, A, "m1", NOW - 86400, 1000, 1000) == 0 &&
	    db_usage_now(db, A, ms, 0, &u) == 0 && u.tokens == 353,
	    "today's tokens miscounted");
	check("usage-list", db_usage_list(db, "", "2025-12-05", count_rows,
	    &n) == 0 && n == 3, "usage rows since today");
	n = 0;
	check("usage-list-prefix", db_usage_list(db, "aaa", "2025-12-04",
	    count_rows, &n) == 0 && n == 3, "usage rows of one identity");
}

struct evs {
	int	 n;
	char	 first[64];
};

/* Count the events listed; keep the first one's text. */
static int
count_events(const struct event_row *e, void *arg)
{
	struct evs	*v = arg;

	if (v->n++ == 0)
		(void)strlcpy(v->first, e->text, sizeof(v->first));
	return (0);
}

#define C	"cccccccccccccccccccccccccccccccc" \
		"cccccccccccccccccccccccccccccccc"

/* C's row of the identities seen, copied out. */
static int
identity_c(const struct identity_row *r, void *arg)
{
	struct identity_row	*out = arg;
	static char		 how[32];

	if (strcmp(r->identity, C) == 0) {
		*out = *r;
		(void)strlcpy(how, r->how, sizeof(how));
		out->how = how;
	}
	return (0);
}

/* How an identity was last seen, and when: never back in time. */
static void
t_identities(struct db *db)
{
	struct identity_row	 r;

	memset(&r, 0, sizeof(r));
	check("identity-seen", db_identity_seen(db, C, "ip", NOW) == 0 &&
	    db_identity_seen(db, C, "ip", NOW) == 0 &&
	    db_identity_seen(db, C, "token", NOW) == 0 &&
	    db_identities(db, NOW, identity_c, &r) == 0 &&
	    r.first_seen == NOW && r.last_seen == NOW &&
	    strcmp(r.how, "token") == 0, "first sightings wrong");
	memset(&r, 0, sizeof(r));
	check("identity-later", db_identity_seen(db, C, "token", NOW + 5) ==
	    0 && db_identity_seen(db, C, "token", NOW + 3) == 0 &&
	    db_identities(db, NOW, identity_c, &r) == 0 &&
	    r.first_seen == NOW && r.last_seen == NOW + 5,
	    "last seen went back in time, or did not move");
}

/* The event log keeps the newest `keep', filtered by identity. */
static void
t_events(struct db *db)
{
	struct evs	 v;
	char		 text[32];
	int		 i, ok = 1;

	for (i = 0; i < 130; i++) {
		(void)snprintf(text, sizeof(text), "event %d", i);
		if (db_event_add(db, NOW + i, i % 2 ? A : NULL, text,
		    100) == -1)
			ok = 0;
	}
	check("events-add", ok, "add failed");
	memset(&v, 0, sizeof(v));
	check("events-keep", db_events(db, "", 1000, count_events, &v) == 0 &&
	    v.n == 100 && strcmp(v.first, "event 30") == 0,
	    "not the newest 100, oldest first");
	memset(&v, 0, sizeof(v));
	check("events-identity", db_events(db, "aaaa", 10, count_events, &v) ==
	    0 && v.n == 10 && strcmp(v.first, "event 111") == 0,
	    "not the last 10 of one identity");
}

/*
 * One admission as storage makes it, in a transaction of the given
 * handle: the use counted, checked against the limit, the request
 * counted. 1 admitted, 0 refused, -1.
 */
static int
admit_open(struct db *db, const char *who, int64_t ms, uint64_t limit)
{
	struct limit_use	 u;

	if (db_usage_now(db, who, ms, limit, &u) == -1)
		return (-1);
	if (u.requests >= limit)
		return (0);
	return (db_usage_request(db, who, "m", ms, 1) == -1 ? -1 : 1);
}

/*
 * Two instances on one database count together: taking turns, they
 * admit exactly the limit; both checking before either commits, they
 * pass it by no more than the one prompt in flight, and no count is
 * lost.
 */
static void
t_pg_race(const char *target, struct db *a)
{
	const char		*who = "99999999999999999999999999999999"
				    "99999999999999999999999999999999";
	struct db		*b;
	struct limit_use	 ua, ub;
	char			 sql[256];
	int64_t			 ms = NOW * 1000;
	int			 i, r, admitted = 0, ok = 1;

	if ((b = db_connect(target, SYNC_NORMAL, pgtest_password())) == NULL) {
		check("race-open", 0, "a second instance cannot open");
		return;
	}
	for (i = 0; i < 6; i++) {
		struct db	*d = i % 2 ? b : a;

		if (db_begin(d) == -1 || (r = admit_open(d, who, ms + i,
		    3)) == -1 || db_commit(d) == -1)
			ok = 0;
		else
			admitted += r;
	}
	check("race-turns", ok && admitted == 3,
	    "instances taking turns did not admit exactly the limit");
	who = "88888888888888888888888888888888"
	    "88888888888888888888888888888888";
	admitted = 0;
	(void)admit_open(a, who, ms, 3);
	(void)admit_open(b, who, ms, 3);
	/*
	 * Both check while the other's is in flight (two of three used),
	 * then each counts and commits; the second count waits for the
	 * first commit on the usage row, and adds to it.
	 */
	if (db_begin(a) == -1 || db_begin(b) == -1 ||
	    db_usage_now(a, who, ms + 1, 3, &ua) == -1 ||
	    db_usage_now(b, who, ms + 2, 3, &ub) == -1 ||
	    ua.requests >= 3 || ub.requests >= 3 ||
	    db_usage_request(a, who, "m", ms + 1, 1) == -1 ||
	    db_commit(a) == -1 ||
	    db_usage_request(b, who, "m", ms + 2, 1) == -1 ||
	    db_commit(b) == -1)
		ok = 0;
	else
		admitted = 2;
	(void)snprintf(sql, sizeof(sql), "SELECT sum(prompts) FROM usage"
	    " WHERE identity = '%s'", who);
	check("race-in-flight", ok && admitted == 2 &&
	    pgtest_int(target, sql) == 4 &&
	    db_usage_now(a, who, ms + 3, 10, &ua) == 0 && ua.requests == 4 &&
	    admit_open(b, who, ms + 4, 3) == 0,
	    "past the limit by more than the prompt in flight, a count lost,"
	    " or admitted again past it");
	db_close(b);
}

/*
 * Instances that take turns (storage's handles) hold the write lock
 * for a round's transaction, and only then: the rounds of two could
 * otherwise lock an identity's usage and its conversation in opposite
 * orders and deadlock.
 */
static void
t_pg_turns(const char *target)
{
	const char	*held = "SELECT count(*) FROM pg_locks WHERE"
			    " locktype = 'advisory' AND classid = 0 AND"
			    " objid = 1651664759 AND granted";
	struct db	*a;
	int		 plain, round, after;

	if ((a = db_connect(target, SYNC_NORMAL, pgtest_password())) == NULL) {
		check("turns-open", 0, "cannot open");
		return;
	}
	plain = db_begin(a) == 0 ? (int)pgtest_int(target, held) : -1;
	db_rollback(a);
	db_take_turns(a);
	round = db_begin(a) == 0 ? (int)pgtest_int(target, held) : -1;
	after = db_commit(a) == 0 ? (int)pgtest_int(target, held) : -1;
	check("turns-lock", plain == 0 && round == 1 && after == 0,
	    "the write lock is not held exactly for a round of an instance"
	    " that takes turns");
	db_close(a);
}

/* The same cases on PostgreSQL, and two instances' counts. */
static void
t_pg(void)
{
	char		 target[1024];
	struct db	*db;

	if (pgtest_target("t_acct", "t_acct", target, sizeof(target)) != 1)
		return;
	prefix = "pg-";
	if ((db = db_connect(target, SYNC_NORMAL, pgtest_password())) ==
	    NULL) {
		check("open", 0, "db_connect failed");
		prefix = "";
		return;
	}
	t_tokens(db);
	t_usage(db);
	t_identities(db);
	t_events(db);
	t_pg_race(target, db);
	t_pg_turns(target);
	db_close(db);
	prefix = "";
}

/* The decision, the counts on SQLite and across a reopen, then PostgreSQL. */
int
main(void)
{
	struct db		*db;
	struct limit_use	 u;
	const char		*tmp;
	char			 dir[PATH_MAX - 64];

	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/t_acct.XXXXXX", tmp) >=
	    sizeof(dir) || mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return (2);
	}
	(void)snprintf(file, sizeof(file), "%s/acct.db", dir);
	t_check();
	if ((db = db_open(file, SYNC_NORMAL)) == NULL) {
		check("open", 0, "db_open failed");
		return (1);
	}
	t_tokens(db);
	t_usage(db);
	t_identities(db);
	t_events(db);
	db_close(db);
	/* A restart: the day's budget is what the file says. */
	db = db_open(file, SYNC_NORMAL);
	check("usage-survives-reopen", db != NULL &&
	    db_usage_now(db, A, NOW * 1000, 100, &u) == 0 &&
	    u.tokens == 353 && u.requests == 2,
	    "usage lost when the database was reopened");
	db_close(db);
	(void)unlink(file);
	(void)snprintf(file, sizeof(file), "%s/acct.db-wal", dir);
	(void)unlink(file);
	(void)snprintf(file, sizeof(file), "%s/acct.db-shm", dir);
	(void)unlink(file);
	(void)rmdir(dir);
	t_pg();
	return (failures != 0);
}
