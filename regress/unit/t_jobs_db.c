/*
 * t_jobs_db.c: bridged/jobs_db.c on a real database file: a job's
 * context is the conversation as stored when it was submitted, a
 * resent SUBMIT is one job, starting again discards the output, output
 * is kept only while a job runs, an ended job ends once, and the
 * pending list keeps the order of submission. With BRIDGED_TEST_PG the
 * same on PostgreSQL (pg-...), and two instances on one database: a
 * job is run by the one that holds its lease, one whose lease ran out
 * is claimed by exactly one other, and the one that lost it can store
 * nothing more of it; a job killed through one instance is stopped by
 * the one that runs it, told at its lease renewal.
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

#define ME	"11111111111111111111111111111111" \
		"11111111111111111111111111111111"
#define OTHER	"22222222222222222222222222222222" \
		"22222222222222222222222222222222"

static int	 failures;
static const char *prefix = "";		/* "pg-" for PostgreSQL */
static int64_t	 ids[3];		/* t_pending's jobs, for t_list */

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

/* What a callback saw, as "role:text|..." */
static int
collect(int role, const char *text, size_t len, void *arg)
{
	struct ibuf	*b = arg;

	if (ibuf_printf(b, "%s%d:%.*s", ibuf_left(b) > 0 ? "|" : "", role,
	    (int)len, text) == -1)
		return (-1);
	return (0);
}

/* The collected text, NUL-terminated; the buffer is emptied. */
static const char *
taken(struct ibuf *b)
{
	static char	 s[4096];
	size_t		 n = ibuf_left(b);

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, ibuf_data(b), n);
	s[n] = '\0';
	ibuf_reset(b);
	return (s);
}

/* A pending job, for the order. */
static int
pending(int64_t id, const char *client, void *arg)
{
	return (ibuf_printf(arg, "%lld:%.1s ", (long long)id, client));
}

/* The client's most recently used conversation, made if it has none. */
static int64_t
cv(struct db *db, const char *client)
{
	static struct db_conv	 c;

	if (db_conv_last(db, client, &c) == DB_FOUND ||
	    db_conv_new(db, client, "", "", "", "", 1, &c) == 0)
		return (c.id);
	fprintf(stderr, "no conversation\n");
	exit(2);
}

/* Store one message in the client's current conversation. */
static void
msg(struct db *db, const char *client, int role, const char *text)
{
	int64_t	 row;

	if (db_store(db, client, cv(db, client), arc4random(), role, "m", 0,
	    text, strlen(text), 1, &row) == -1) {
		fprintf(stderr, "db_store failed\n");
		exit(2);
	}
}

/* The context is the stored conversation at submission, bounded. */
static void
t_context(struct db *db, struct jdb *j, struct ibuf *b)
{
	const char	*got;
	int64_t		 id, id2, row, mine;
	int		 rv;

	msg(db, ME, ROLE_USER, "q1");
	msg(db, ME, ROLE_MODEL, "a1");
	if (db_summary(db, ME, cv(db, ME), 1, "S1", 2, 1, 50, &row) == -1)
		exit(2);
	msg(db, ME, ROLE_USER, "q2");
	msg(db, ME, ROLE_MODEL, "a2");
	msg(db, OTHER, ROLE_USER, "not mine");
	/* Nor is another conversation of the same identity. */
	mine = cv(db, ME);
	{
		struct db_conv	 other;
		int64_t		 r;

		if (db_conv_new(db, ME, "elsewhere", "", "", "", 0, &other) !=
		    0 || db_store(db, ME, other.id, arc4random(), ROLE_USER,
		    "m", 0, "elsewhere", 9, 1, &r) == -1)
			exit(2);
	}
	rv = jdb_submit(j, ME, mine, 77, JOB_SUBMIT, 1, "m", "",
	    "P", 1, 5, &id);
	check("submit_new", rv == 0 && id > 0, "not a new job");
	rv = jdb_submit(j, ME, mine, 77, JOB_SUBMIT, 1, "m", "",
	    "P", 1, 5, &id2);
	check("submit_resent", rv == 1 && id2 == id, "a second job");
	/* What comes after the submission is not part of it. */
	msg(db, ME, ROLE_USER, "q3");
	if (db_summary(db, ME, cv(db, ME), 2, "S2", 2, 1, 50, &row) == -1)
		exit(2);
	rv = jdb_context(j, id, 1000, 1 << 20, collect, b);
	got = taken(b);
	check("context_as_submitted", rv == 0 &&
	    strcmp(got, "2:S1|0:q2|1:a2|0:P") == 0, got);
	/* The newest that fit: a2 alone (2 bytes), then the prompt. */
	rv = jdb_context(j, id, 1000, 2 + 2, collect, b);
	got = taken(b);
	check("context_bounded", rv == 0 &&
	    strcmp(got, "2:S1|1:a2|0:P") == 0, got);
	rv = jdb_opening(j, id, collect, b);
	got = taken(b);
	check("opening", rv == 0 && strcmp(got, "0:P") == 0, got);
}

/* Start, output, start again, end. */
static void
t_lifecycle(struct jdb *j, struct ibuf *b)
{
	struct jdb_job	 job;
	const char	*got;
	int64_t		 id;
	int		 rv;

	if (jdb_submit(j, ME, 0, 78, JOB_DIALOGUE, 3, "a", "b", "hi", 2, 9,
	    &id) != 0)
		exit(2);
	rv = jdb_chunk(j, id, 0, CHUNK_TEXT, "x", 1);
	check("chunk_queued_refused", rv == 0, "output of a queued job");
	check("start", jdb_start(j, id, 10) == 1, "not started");
	jdb_chunk(j, id, 0, CHUNK_TURN, "a", 1);
	jdb_chunk(j, id, 0, CHUNK_TEXT, "old", 3);
	check("start_again", jdb_start(j, id, 11) == 1, "not started");
	jdb_chunks(j, id, 0, collect, b);
	got = taken(b);
	check("start_again_discards", strcmp(got, "") == 0, got);
	jdb_chunk(j, id, 0, CHUNK_TURN, "a", 1);
	jdb_chunk(j, id, 0, CHUNK_TEXT, "he", 2);
	jdb_chunk(j, id, 0, CHUNK_TEXT, "llo", 3);
	jdb_chunk(j, id, 1, CHUNK_TURN, "b", 1);
	jdb_chunk(j, id, 1, CHUNK_TEXT, "yes", 3);
	jdb_chunks(j, id, 0, collect, b);
	got = taken(b);
	check("chunks_in_order", strcmp(got, "1:a|0:he|0:llo|1:b|0:yes") ==
	    0, got);
	jdb_chunks(j, id, 3, collect, b);
	got = taken(b);
	check("chunks_after", strcmp(got, "1:b|0:yes") == 0, got);
	jdb_chunks(j, id, 5, collect, b);
	got = taken(b);
	check("chunks_after_all", strcmp(got, "") == 0, got);
	jdb_turn_text(j, id, 0, b);
	got = taken(b);
	check("turn_text", strcmp(got, "hello") == 0, got);
	if (jdb_get(j, id, &job) != 1)
		exit(2);
	check("get", job.state == JOB_RUNNING && job.kind == JOB_DIALOGUE &&
	    job.turns == 3 && strcmp(job.model_b, "b") == 0 &&
	    strcmp(job.client, ME) == 0, "fields");
	check("get_attempts", job.attempts == 2, "two runs not counted");
	job.state = JOB_DONE;
	job.tout = 5;
	check("finish", jdb_finish(j, &job, 12) == 1, "not finished");
	job.state = JOB_CANCELLED;
	check("finish_once", jdb_finish(j, &job, 13) == 0, "ended twice");
	check("start_ended", jdb_start(j, id, 14) == 0, "an ended job ran");
	rv = jdb_chunk(j, id, 1, CHUNK_TEXT, "late", 4);
	check("chunk_ended_refused", rv == 0, "output of an ended job");
	if (jdb_get(j, id, &job) != 1)
		exit(2);
	check("state_kept", job.state == JOB_DONE && job.tout == 5,
	    "state changed");
}

/* What is pending, in order; the count of one identity's. */
static void
t_pending(struct db *db, struct jdb *j, struct ibuf *b)
{
	const char	*got;
	char		 want[128];
	int64_t		 a, c, d;

	jdb_submit(j, OTHER, cv(db, OTHER), 1, JOB_SUBMIT, 1, "m", "", "x",
	    1, 20, &a);
	jdb_submit(j, ME, cv(db, ME), 2, JOB_SUBMIT, 1, "m", "", "y", 1, 21,
	    &c);
	jdb_submit(j, OTHER, cv(db, OTHER), 3, JOB_SUBMIT, 1, "m", "", "z",
	    1, 22, &d);
	jdb_start(j, c, 23);
	jdb_pending(j, pending, b);
	/* The first job of t_context (queued), then these three. */
	snprintf(want, sizeof(want), "1:1 %lld:2 %lld:1 %lld:2 ",
	    (long long)a, (long long)c, (long long)d);
	got = taken(b);
	check("pending_in_order", strcmp(got, want) == 0, got);
	check("waiting_count", jdb_waiting(j, OTHER) == 2 &&
	    jdb_waiting(j, ME) == 2, "counts");
	ids[0] = a;
	ids[1] = c;
	ids[2] = d;
}

/* A listed job: its id, to the buffer. */
static int
listed(const struct jdb_job *job, void *arg)
{
	return (ibuf_printf(arg, "%lld ", (long long)job->id));
}

/* The newest jobs of one identity first, or of everyone. */
static void
t_list(struct jdb *j, struct ibuf *b)
{
	const char	*got;
	char		 want[64];
	uint64_t	 n;
	int		 rv;

	rv = jdb_list(j, OTHER, 10, listed, b, &n);
	got = taken(b);
	snprintf(want, sizeof(want), "%lld %lld ", (long long)ids[2],
	    (long long)ids[0]);
	check("list_mine_newest_first", rv == 0 && n == 2 &&
	    strcmp(got, want) == 0, got);
	rv = jdb_list(j, NULL, 2, listed, b, &n);
	got = taken(b);
	snprintf(want, sizeof(want), "%lld %lld ", (long long)ids[2],
	    (long long)ids[1]);
	check("list_all", rv == 0 && n == 2 && strcmp(got, want) == 0, got);
}

/* Purge takes a client's jobs and output; an id is never used again. */
static void
t_purge(struct jdb *j)
{
	uint64_t	 rows = 0;
	int64_t		 a, b;

	jdb_submit(j, OTHER, 0, 40, JOB_SUBMIT, 1, "m", "", "p", 1, 30, &a);
	jdb_start(j, a, 31);
	jdb_chunk(j, a, 0, CHUNK_TEXT, "x", 1);
	check("purge", jdb_purge(j, OTHER, &rows) == 0 && rows == 3 &&
	    jdb_waiting(j, OTHER) == 0 && jdb_waiting(j, ME) == 2,
	    "rows or counts");
	jdb_submit(j, OTHER, 0, 41, JOB_SUBMIT, 1, "m", "", "p", 1, 32, &b);
	check("id_not_reused", b > a, "the id of a deleted job again");
}

/* A pending or claimed job, counted. */
static int
counted(int64_t id, const char *client, void *arg)
{
	(void)id;
	(void)client;
	(*(int *)arg)++;
	return (0);
}

/* A job that renewal says was asked to cancel: seen[0] counts them,
   seen[1] is the last. */
static int
asked(int64_t id, void *arg)
{
	int64_t	*seen = arg;

	seen[0]++;
	seen[1] = id;
	return (0);
}

/*
 * One instance (SQLite) cancels its jobs itself: there is no other
 * to ask, and renewal never says that one was asked of it.
 */
static void
t_cancel_one(struct jdb *j)
{
	int64_t	 x, seen[2] = { 0, 0 };

	if (jdb_submit(j, ME, 0, 950, JOB_SUBMIT, 1, "m", "", "kill", 4, 70,
	    &x) != 0)
		exit(2);
	check("cancel-none-to-ask", jdb_start(j, x, 71) == 1 &&
	    jdb_cancel(j, x, 72) == 0 && jdb_renew(j, asked, seen) == 0 &&
	    seen[0] == 0, "a database of one instance asked another");
}

/* Make a job's lease run out, as if its instance had died. */
static void
expire(const char *target, int64_t id)
{
	char	 sql[128];

	(void)snprintf(sql, sizeof(sql), "UPDATE jobs SET lease_until = 0"
	    " WHERE id = %lld RETURNING 1", (long long)id);
	if (pgtest_int(target, sql) != 1) {
		fprintf(stderr, "cannot expire job %lld\n", (long long)id);
		exit(2);
	}
}

/*
 * Two instances, a and b, on one PostgreSQL database: leases, claims
 * (FOR UPDATE SKIP LOCKED: a job claimed by one in an open transaction
 * is skipped by the other, not waited for), renewal.
 */
static void
t_leases(const char *target, struct db *da, struct jdb *a)
{
	struct db	*db;
	struct jdb	*b;
	struct jdb_job	 job;
	char		 sql[160];
	int64_t		 x, y, z, k, sa[2] = { 0, 0 }, sb[2] = { 0, 0 };
	int		 n = 0, m = 0;

	if ((db = db_connect(target, SYNC_NORMAL, pgtest_password())) == NULL ||
	    (b = jdb_open(db)) == NULL) {
		check("lease-open", 0, "a second instance cannot open");
		db_close(db);
		return;
	}
	/* Nothing of a's to take while a lives. */
	(void)jdb_claim(b, counted, &n);
	if (jdb_submit(a, ME, 0, 900, JOB_SUBMIT, 1, "m", "", "lease", 5, 50,
	    &x) != 0)
		exit(2);
	check("lease-held", jdb_claim(b, counted, &n) == 0 && n == 0 &&
	    jdb_start(b, x, 51) == 0, "another instance took a live lease");
	check("lease-owner-starts", jdb_start(a, x, 52) == 1 &&
	    jdb_chunk(a, x, 0, CHUNK_TEXT, "part", 4) == 1,
	    "the instance that holds the lease cannot run the job");
	/* a dies: its lease runs out; b takes the job, exactly once. */
	expire(target, x);
	n = 0;
	check("lease-claimed", jdb_claim(b, counted, &n) == 0 && n == 1 &&
	    jdb_claim(b, counted, &m) == 0 && m == 0,
	    "a job whose lease ran out not claimed once");
	check("lease-lost", jdb_chunk(a, x, 0, CHUNK_TEXT, "late", 4) == 0 &&
	    jdb_start(a, x, 53) == 0, "the old instance still stores output");
	check("lease-restart", jdb_start(b, x, 54) == 1 &&
	    jdb_get(b, x, &job) == 1 && job.state == JOB_RUNNING,
	    "the new instance cannot start it again");
	job.state = JOB_DONE;
	check("lease-finish", jdb_finish(a, &job, 55) == 0 &&
	    jdb_finish(b, &job, 56) == 1, "not finished by its holder alone");

	/* Two expired jobs; b claims them in a transaction it keeps open. */
	jdb_submit(a, ME, 0, 901, JOB_SUBMIT, 1, "m", "", "y", 1, 60, &y);
	jdb_submit(a, ME, 0, 902, JOB_SUBMIT, 1, "m", "", "z", 1, 60, &z);
	expire(target, y);
	expire(target, z);
	n = m = 0;
	check("lease-skip-locked", db_begin(db) == 0 &&
	    jdb_claim(b, counted, &n) == 0 && n == 2 &&
	    jdb_claim(a, counted, &m) == 0 && m == 0 && db_commit(db) == 0,
	    "a claimed job was taken twice or waited for");
	(void)da;
	/* b renews what it holds: the lease reaches into the future. */
	(void)snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE"
	    " id IN (%lld, %lld) AND lease_until > extract(epoch from now())"
	    " + %d", (long long)y, (long long)z, JOB_LEASE / 2);
	check("lease-renew", jdb_renew(b, asked, sb) == 0 && sb[0] == 0 &&
	    pgtest_int(target, sql) == 2, "leases not renewed");

	/* KILL through b of a job that a runs: b cannot end it, but asks
	   a, which hears at its next renewal, once it ends it. */
	if (jdb_submit(a, ME, 0, 903, JOB_SUBMIT, 1, "m", "", "k", 1, 70,
	    &k) != 0 || jdb_start(a, k, 71) != 1 || jdb_get(b, k, &job) != 1)
		exit(2);
	job.state = JOB_CANCELLED;
	check("cancel-asked", jdb_finish(b, &job, 72) == 0 &&
	    jdb_cancel(b, k, 73) == 1 && jdb_get(b, k, &job) == 1 &&
	    job.state == JOB_RUNNING, "a KILL through b not asked of a");
	job.state = JOB_CANCELLED;
	check("cancel-heard", jdb_renew(b, asked, sb) == 0 && sb[0] == 0 &&
	    jdb_renew(a, asked, sa) == 0 && sa[0] == 1 && sa[1] == k,
	    "the instance running the job did not hear, or another did");
	sa[0] = 0;
	check("cancel-once", jdb_finish(a, &job, 74) == 1 &&
	    jdb_renew(a, asked, sa) == 0 && sa[0] == 0 &&
	    jdb_cancel(b, k, 75) == 0, "a cancelled job is heard of again");
	jdb_close(b);
	db_close(db);
}

/* Every case again on PostgreSQL, then the ones of two instances. */
static void
t_pg(void)
{
	char		 target[1024];
	struct db	*db;
	struct jdb	*j;
	struct ibuf	*b;

	if (pgtest_target("t_jobs_db", "t_jobs_db", target,
	    sizeof(target)) != 1)
		return;
	prefix = "pg-";
	if ((db = db_connect(target, SYNC_NORMAL, pgtest_password())) ==
	    NULL || (j = jdb_open(db)) == NULL || (b = ibuf_open(1024)) ==
	    NULL) {
		check("open", 0, "cannot open");
		exit(1);
	}
	t_context(db, j, b);
	t_lifecycle(j, b);
	t_pending(db, j, b);
	t_list(j, b);
	t_purge(j);
	t_leases(target, db, j);
	ibuf_free(b);
	jdb_close(j);
	db_close(db);
	prefix = "";
}

/* Every case on a SQLite file, then on PostgreSQL if there is one. */
int
main(void)
{
	char		 dir[PATH_MAX - 32], file[PATH_MAX];
	const char	*tmp;
	struct db	*db;
	struct jdb	*j;
	struct ibuf	*b;

	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	snprintf(dir, sizeof(dir), "%s/t_jobs_db.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL)
		return (2);
	snprintf(file, sizeof(file), "%s/bridged.db", dir);
	if ((db = db_open(file, SYNC_NORMAL)) == NULL ||
	    (j = jdb_open(db)) == NULL || (b = ibuf_open(1024)) == NULL)
		return (2);
	t_context(db, j, b);
	t_lifecycle(j, b);
	t_pending(db, j, b);
	t_list(j, b);
	t_purge(j);
	t_cancel_one(j);
	ibuf_free(b);
	jdb_close(j);
	db_close(db);
	unlink(file);
	snprintf(file, sizeof(file), "%s/bridged.db-wal", dir);
	unlink(file);
	snprintf(file, sizeof(file), "%s/bridged.db-shm", dir);
	unlink(file);
	rmdir(dir);
	t_pg();
	return (failures > 0);
}
